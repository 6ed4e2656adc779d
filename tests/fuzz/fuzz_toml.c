/*
 * fuzz_toml.c -- libFuzzer target for the TOML parser (gateway/toml.c):
 * parses the input as a document, looks a key up and, for short inputs,
 * also feeds the text to toml_set_path as a --set value, then frees all.
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Icommon
 *        -Igateway gateway/toml.c common/buf.c common/err.c
 *        tests/fuzz/fuzz_toml.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct toml_node *root = NULL;
    struct toml_error err;
    char *text;

    /* the parser must not read past size: no NUL is added here */
    if (toml_parse(&root, (const char *)data, size, &err) == 0)
        (void)toml_get(root, "a");
    else if (toml_parse(&root, "a = 1\n", 6, &err) != 0)
        abort();

    /* the same bytes as a --set value, when they form a C string */
    if (size < 4096 && memchr(data, 0, size) == NULL &&
        (text = malloc(size + 1)) != NULL) {
        memcpy(text, data, size);
        text[size] = '\0';
        (void)toml_set_path(root, "a.b", text, &err);
        (void)toml_set_path(root, "c", text, &err);
        free(text);
    }
    toml_free(root);
    return 0;
}

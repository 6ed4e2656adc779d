/*
 * fuzz_mustache.c -- libFuzzer target for templates/mustache.c: compiles
 * the input and renders it against a fixed JSON object and a few fixed
 * partials (the input is also the partial "self", so recursion is
 * reachable), in every escaping and strictness mode, with a small output
 * cap. Checks that a failed render leaves the buffer as it was.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Icommon \
 *   -Itemplates templates/mustache.c templates/mustache_json.c \
 *   common/buf.c common/err.c tests/fuzz/fuzz_mustache.c -ljansson
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "templates/mustache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *fz_data;
static struct mu_lib *fz_lib;
static const struct mu_prog *fz_self;

static const struct mu_prog *
find_partial(void *arg, const char *name, size_t len)
{
    if (len == 4 && memcmp(name, "self", 4) == 0)
        return fz_self;
    return mu_lib_get(arg, name, len);
}

static void
setup(void)
{
    static const char *const partials[][2] = {
        { "p", "[{{x}}]\n  {{$b}}d{{/b}}\n" },
        { "layout", "<{{$t}}T{{/t}}>\n  {{$body}}\n    dflt\n  {{/body}}\n" },
        { "li", "{{#.}}\n  - {{.}}\n{{/.}}" },
        { "ind", "a\n  {{>p}}\nb{{{x}}}\n" },
    };
    size_t i;

    fz_data = json_loads(
        "{\"x\":\"<&'\\\">\",\"n\":42,\"r\":1.5,\"t\":true,\"f\":false,"
        "\"z\":null,\"s\":\"\",\"l\":[1,\"two\",{\"x\":\"in\"},[3]],"
        "\"o\":{\"a\":{\"b\":\"c\"}},\"dyn\":\"p\",\"me\":\"self\","
        "\"nl\":\"1\\n2\"}", 0, NULL);
    fz_lib = mu_lib_new();
    if (fz_data == NULL || fz_lib == NULL)
        abort();
    for (i = 0; i < sizeof(partials) / sizeof(partials[0]); i++) {
        struct mu_prog *p;

        if (mu_compile(&p, partials[i][1], strlen(partials[i][1]), NULL) < 0 ||
            mu_lib_add(fz_lib, partials[i][0], strlen(partials[i][0]), p) < 0)
            abort();
    }
}

static int
count_tag(void *arg, const struct mu_tag *tag)
{
    if (tag->name == NULL || strlen(tag->name) != tag->len)
        abort();
    ++*(size_t *)arg;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mu_render_opts opts = { .partial = find_partial,
                                   .max_steps = 200000 };
    struct mu_prog *prog;
    struct mu_error err;
    struct buf out;
    size_t ntags = 0;
    int mode;

    if (fz_data == NULL)
        setup();
    opts.partial_arg = fz_lib;
    if (mu_compile(&prog, (const char *)data, size, &err) < 0) {
        if (err.code == 0 || prog != NULL || memchr(err.msg, 0,
                                                    sizeof(err.msg)) == NULL)
            abort();
        return 0;
    }
    mu_prog_tags(prog, ~0u, count_tag, &ntags);
    fz_self = prog;
    buf_init(&out, 64 * 1024);
    for (mode = 0; mode < 4; mode++) {
        opts.escape = (mode & 1) ? MU_ESC_NONE : MU_ESC_HTML;
        opts.strict = (mode & 2) != 0;
        buf_reset(&out);
        buf_puts(&out, "pre");
        if (mu_render_json(prog, fz_data, &opts, &out, &err) < 0) {
            if (out.len != 3 || strcmp(buf_cstr(&out), "pre") != 0)
                abort();
        } else if (out.data[out.len] != 0) {
            abort();
        }
    }
    buf_free(&out);
    fz_self = NULL;
    mu_prog_free(prog);
    return 0;
}

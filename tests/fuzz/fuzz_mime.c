/*
 * fuzz_mime.c -- libFuzzer target for the MIME writer (channels/mime.c):
 * the input, split at 0xFF bytes, fills subject, display names, addresses,
 * campaign, List-Unsubscribe URIs, list id, key, text and html. Whatever
 * mime_build accepts must be a well-formed message: CRLF line ends only,
 * no line over 998 octets, every header field one we write (no injected
 * field), and the same bytes when built twice. A refusal must carry a
 * reason. Also feeds mime_mailbox_parse and mime_key_token.
 * Build: make build/fuzz/fuzz_mime (with fuzz_mime in FUZZERS), or
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Icommon
 *   $(pkg-config --cflags --libs glib-2.0 libuv jansson) channels/mime.c
 *   common/buf.c common/err.c tests/fuzz/fuzz_mime.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channels/mime.h"
#include "common/buf.h"
#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NFIELDS 12

static const char *const known[] = {
    "Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "List-Id",
    "List-Unsubscribe", "List-Unsubscribe-Post", "X-Campaign-ID",
    "Content-Type", "Content-Transfer-Encoding", NULL
};

static void
check_message(const char *p, size_t n)
{
    const char *end = p + n, *body = NULL;
    int in_head = 1;

    if (n < 2 || p[n - 2] != '\r' || p[n - 1] != '\n')
        abort();
    while (p < end) {
        const char *e = memchr(p, '\r', (size_t)(end - p));
        if (!e || e + 1 >= end || e[1] != '\n')
            abort();                        /* CR without LF */
        if (memchr(p, '\n', (size_t)(e - p)))
            abort();                        /* bare LF */
        if (e - p > 998)
            abort();
        if (in_head) {
            if (e == p) {
                in_head = 0;
                body = e + 2;
            } else if (*p != ' ' && *p != '\t') {
                const char *colon = memchr(p, ':', (size_t)(e - p));
                int ok = 0;
                if (!colon)
                    abort();
                for (size_t i = 0; known[i]; i++)
                    if (strlen(known[i]) == (size_t)(colon - p) &&
                        memcmp(known[i], p, (size_t)(colon - p)) == 0)
                        ok = 1;
                if (!ok)
                    abort();                /* an injected field */
            }
        }
        p = e + 2;
    }
    if (!body)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *f[NFIELDS] = { 0 }, *copy, reason[300], *name, *addr;
    size_t start = 0, k = 0, len[NFIELDS] = { 0 };
    struct mime_msg m;
    struct buf a, b;
    int rc;

    if (size > 65536 || (copy = malloc(size + 1)) == NULL)
        return 0;
    memcpy(copy, data, size);
    copy[size] = 0;
    for (size_t i = 0; i <= size && k < NFIELDS; i++) {
        if (i == size || (unsigned char)copy[i] == 0xff) {
            copy[i] = 0;
            f[k] = copy + start;
            len[k++] = i - start;
            start = i + 1;
        }
    }
    memset(&m, 0, sizeof m);
    m.from_addr = f[0] && *f[0] ? f[0] : "news@example.org";
    m.to_addr = f[1] && *f[1] ? f[1] : "ann@example.org";
    m.subject = f[2];
    m.subject_len = len[2];
    m.to_name = f[3];
    m.from_name = f[4];
    m.campaign = f[5];
    m.unsubscribe_url = f[6];
    m.unsubscribe_mailto = f[7];
    m.list_id = f[8];
    m.key = f[9] && *f[9] ? f[9] : "k";
    m.text = f[10];
    m.text_len = len[10];
    m.html = f[11];
    m.html_len = len[11];
    if (!m.text && !m.html) {
        m.text = "t";
        m.text_len = 1;
    }
    m.one_click = size & 1;
    m.id_domain = "example.org";
    m.date = 1767225600;
    buf_init(&a, 1 << 20);
    buf_init(&b, 1 << 20);
    reason[0] = 0;
    rc = mime_build(&a, &m, reason, sizeof reason);
    if (rc == 0) {
        check_message(a.data, a.len);
        if (mime_build(&b, &m, reason, sizeof reason) != 0 ||
            a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
            abort();
    } else if (rc == GW_EINVAL && !reason[0]) {
        abort();
    }
    buf_reset(&a);
    if (mime_key_token(&a, copy, 40) == 0 && a.len > 40)
        abort();
    if (mime_mailbox_parse(copy, &name, &addr, reason, sizeof reason) == 0) {
        if (mime_check_addr(addr, "a", reason, sizeof reason) != 0)
            abort();
        free(name);
        free(addr);
    }
    buf_free(&a);
    buf_free(&b);
    free(copy);
    return 0;
}

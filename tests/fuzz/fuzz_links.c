/*
 * fuzz_links.c -- libFuzzer target for templates/links.c. The first byte
 * picks the output cap (tiny, small, default), the pixel and the skip
 * URL; the rest is the HTML. A callback that returns a fixed URL (with
 * characters that need escaping) checks what it is given: NUL-terminated,
 * http(s), no tab/CR/LF, nothing to trim, not the skip URL. Checks:
 * no crash; 0 or GW_ETOOBIG, and on error out as it was; the output
 * within its cap and within the size a rewrite can reach; with nothing
 * to do (no callback, or one that refuses) the input comes back byte for
 * byte; and a second rewrite of the output changes nothing (every
 * rewritten href is read back as the fixed URL, the rest is the same).
 * The classifier gets slices of the input as User-Agent and address.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Icommon \
 *   tests/fuzz/fuzz_links.c templates/links.c common/buf.c common/err.c \
 *   common/utf8.c
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "err.h"
#include "templates/links.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIXED "https://t.example/c?x=1&y=\"2\""
#define FIXED_ESC "\"https://t.example/c?x=1&amp;y=&quot;2&quot;\""
#define FIXED_ESC_LEN (sizeof(FIXED_ESC) - 1)
#define SKIP "https://skip.example/u?a=1&b=2"
#define PIXEL "https://t.example/o?a=1&b=2"

struct ctx {
    int calls;
    int refuse;
    const char *skip;
};

static int
fixed_cb(void *arg, const char *url, size_t len, int index, struct buf *out)
{
    struct ctx *c = arg;
    unsigned char first, last;

    if (url == NULL || strlen(url) != len || len < 6 || index != c->calls ||
        out->len != 0)
        abort();
    if (strncasecmp(url, "http:", 5) != 0 && strncasecmp(url, "https:", 6) != 0)
        abort();
    if (memchr(url, '\t', len) || memchr(url, '\n', len) ||
        memchr(url, '\r', len))
        abort();
    first = (unsigned char)url[0];
    last = (unsigned char)url[len - 1];
    if (first <= 0x20 || last <= 0x20 || (c->skip && strcmp(url, c->skip) == 0))
        abort();
    c->calls++;
    if (c->refuse)
        return -1;
    return buf_puts(out, FIXED);
}

static void
classify(const uint8_t *data, size_t size)
{
    char ua[512], ip[64];
    size_t n = size < sizeof(ua) - 1 ? size : sizeof(ua) - 1;
    size_t k = size < sizeof(ip) - 1 ? size : sizeof(ip) - 1;
    int64_t ms = size ? (int64_t)data[0] * 50 - 1000 : -1;
    const char *r;

    memcpy(ua, data, n);
    ua[n] = 0;
    memcpy(ip, data + size - k, k);
    ip[k] = 0;
    r = links_machine_rule(ua, ip, ms, (int)(size & 1));
    if ((r != NULL) != links_is_machine(ua, ip, ms, (int)(size & 1)))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t caps[4] = { 16, 256, 4096, 0 };
    struct ctx c = { 0, 0, NULL };
    struct buf out, again;
    const char *html;
    const char *skip, *pixel;
    size_t len, limit;
    unsigned flags;
    int rc, links;

    if (size == 0)
        return 0;
    classify(data, size);
    flags = data[0];
    html = (const char *)data + 1;
    len = size - 1;
    skip = (flags & 4) ? SKIP : NULL;
    pixel = (flags & 8) ? PIXEL : NULL;
    c.skip = skip;

    /* nothing to do: the same bytes */
    buf_init(&out, 0);
    if (links_rewrite(html, len, skip, NULL, NULL, NULL, &out) != 0 ||
        out.len != len || (len && memcmp(out.data, html, len) != 0))
        abort();
    buf_reset(&out);
    c.refuse = 1;
    if (links_rewrite(html, len, skip, fixed_cb, &c, NULL, &out) != 0 ||
        out.len != len || (len && memcmp(out.data, html, len) != 0))
        abort();
    links = c.calls;
    buf_free(&out);

    /* the rewrite, under a cap */
    buf_init(&out, caps[flags & 3]);
    buf_puts(&out, "pre");
    c.calls = 0;
    c.refuse = 0;
    rc = links_rewrite(html, len, skip, fixed_cb, &c, pixel, &out);
    if (rc == GW_ETOOBIG || rc == -ENOMEM) {
        if (out.len != 3 || memcmp(out.data, "pre", 4) != 0)
            abort();
        buf_free(&out);
        return 0;
    }
    if (rc != 0 || c.calls != links || out.len > out.max ||
        out.data[out.len] != 0)
        abort();
    /* each link grows by at most the escaped URL; plus the pixel */
    limit = 3 + len + (size_t)links * FIXED_ESC_LEN + (pixel ? 256 : 0);
    if (out.len > limit)
        abort();

    /* once more, without the pixel: nothing changes */
    if (pixel == NULL) {
        buf_init(&again, 0);
        c.calls = 0;
        if (links_rewrite(out.data + 3, out.len - 3, skip, fixed_cb, &c, NULL,
                          &again) != 0 ||
            again.len != out.len - 3 ||
            memcmp(again.data, out.data + 3, again.len) != 0)
            abort();
        buf_free(&again);
    }
    buf_free(&out);
    return 0;
}

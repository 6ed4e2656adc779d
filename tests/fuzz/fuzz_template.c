/*
 * fuzz_template.c -- libFuzzer target for templates/template.c and
 * templates/html.c. The first byte holds flags, the rest is cut at 0xfe
 * bytes (never valid UTF-8) into the fields html, subject, text, sms, fax
 * and image:logo.png of a template set; the set is loaded with
 * tpl_load_fields() and rendered for every channel against a fixed
 * recipient, with a small output cap. The whole input also goes through
 * tpl_html_to_text() and tpl_html_rewrite(). Checks: errors are
 * terminated strings, failed renders leave no output, derived text is
 * valid UTF-8 with no trailing spaces and one final newline.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. \
 *   -Icommon $(pkg-config --cflags libxml-2.0 jansson glib-2.0) \
 *   tests/fuzz/fuzz_template.c templates/template.c templates/html.c \
 *   templates/mustache.c templates/mustache_json.c common/buf.c \
 *   common/err.c $(pkg-config --libs libxml-2.0 jansson glib-2.0)
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "templates/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define F_STRICT 0x01
#define F_LINKS  0x02
#define F_PIXEL  0x04
#define F_PNG    0x08           /* give the image a PNG signature */
#define F_NOW    0x10           /* a fixed now (else the clock) */

static json_t *fz_recipient, *fz_vars;
static struct tpl_out fz_out;

static void
setup(void)
{
    fz_recipient = json_loads(
        "{\"customer_id\":\"c1\",\"email\":\"a@example.org\",\"tz\":"
        "\"Europe/Berlin\",\"name\":\"<Anna & Bo>\",\"vars\":{\"x\":"
        "\"<b>&'\\\"\",\"n\":42,\"r\":1.5,\"t\":true,\"f\":false,\"z\":null,"
        "\"nl\":\"a\\r\\nb\",\"l\":[1,\"two\",{\"x\":\"in\",\"campaign_vars\":"
        "{\"x\":\"EVIL\"}}],\"o\":{\"a\":{\"b\":\"c\"}},\"u\":\"https://"
        "example.org/?a=1&b=2\",\"campaign_vars\":{\"x\":\"EVIL\"}}}",
        0, NULL);
    fz_vars = json_loads("{\"x\":\"campaign\",\"banner\":\"<i>b</i>\","
                         "\"offer\":\"20%\"}", 0, NULL);
    if (fz_recipient == NULL || fz_vars == NULL)
        abort();
    tpl_out_init(&fz_out, 64 * 1024);
}

static int
track(const char *url, struct buf *out, void *arg)
{
    (void)arg;
    if (strlen(url) == 13)
        return GW_EINVAL;       /* callbacks may fail */
    return buf_printf(out, "https://t.example/c?n=%zu", strlen(url));
}

static void
check_err(const struct tpl_error *e)
{
    char msg[600];

    if (!memchr(e->template, 0, sizeof(e->template)) ||
        !memchr(e->part, 0, sizeof(e->part)) ||
        !memchr(e->msg, 0, sizeof(e->msg)) || e->msg[0] == 0)
        abort();
    tpl_error_format(e, msg, sizeof(msg));
}

/* An independent UTF-8 check (RFC 3629 table 1). */
static int
utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i], k, lo = 0x80, hi = 0xbf;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            k = 1;
        else if (c >= 0xe0 && c <= 0xef)
            k = 2, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        else if (c >= 0xf0 && c <= 0xf4)
            k = 3, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        else
            return 0;
        if (n - i <= k || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (c = 2; c <= k; c++)
            if ((s[i + c] & 0xc0) != 0x80)
                return 0;
        i += k + 1;
    }
    return 1;
}

static void
check_text(const struct buf *b)
{
    size_t i;

    if (b->len == 0)
        return;
    if (!utf8_ok((const unsigned char *)b->data, b->len) ||
        b->data[b->len - 1] != '\n' ||
        (b->len > 1 && b->data[b->len - 2] == '\n'))
        abort();
    for (i = 0; i + 1 < b->len; i++)
        if ((b->data[i] == ' ' || b->data[i] == '\t') &&
            b->data[i + 1] == '\n')
            abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {
        "html", "subject", "text", "sms", "fax", "image:logo.png",
    };
    struct tpl_render_opts o = { .max_steps = 100000 };
    struct tpl_field f[8];
    struct tpl_error err;
    struct tpl_data d = { 0 };
    struct tpl *t = NULL;
    struct buf text, html, img;
    const char *p, *end;
    unsigned flags;
    size_t n = 0;
    int ch;

    if (fz_recipient == NULL)
        setup();
    if (size == 0)
        return 0;
    flags = data[0];
    p = (const char *)data + 1;
    end = (const char *)data + size;
    buf_init(&img, 0);
    while (n < 6) {
        const char *cut = memchr(p, 0xfe, (size_t)(end - p));
        size_t len = cut ? (size_t)(cut - p) : (size_t)(end - p);

        f[n].name = names[n];
        f[n].data = p;
        f[n].len = len;
        if (n == 5 && (flags & F_PNG)) {
            buf_append(&img, "\x89PNG\r\n\x1a\n", 8);
            buf_append(&img, p, len);
            f[n].data = img.data ? img.data : "";
            f[n].len = img.len;
        }
        n++;
        if (cut == NULL)
            break;
        p = cut + 1;
    }
    if (flags & F_STRICT) {
        f[n].name = "strict";
        f[n].data = "true";
        f[n++].len = 4;
    }
    if (tpl_load_fields(&t, "fuzz", f, n, &err) < 0) {
        if (t != NULL)
            abort();
        check_err(&err);
    } else {
        d.recipient = fz_recipient;
        d.vars = fz_vars;
        d.unsubscribe_url = "https://gw.example/u/x";
        d.now_ms = (flags & F_NOW) ? 1803943800000LL : 0;
        if (flags & F_LINKS)
            o.link_cb = track;
        if (flags & F_PIXEL)
            o.pixel_url = "https://gw.example/o/x?a=1&b=2";
        for (ch = TPL_EMAIL; ch <= TPL_FAX; ch++) {
            if (tpl_render(t, ch, &d, &o, &fz_out, &err) < 0) {
                check_err(&err);
                continue;
            }
            if (ch == TPL_EMAIL && !tpl_has(t, TPL_P_TEXT))
                check_text(&fz_out.text);
            if (fz_out.subject.len &&
                (memchr(fz_out.subject.data, '\n', fz_out.subject.len) ||
                 memchr(fz_out.subject.data, '\r', fz_out.subject.len)))
                abort();
        }
        tpl_free(t);
    }
    buf_free(&img);

    /* the whole input as HTML */
    buf_init(&text, 64 * 1024);
    buf_init(&html, 256 * 1024);
    if (tpl_html_to_text((const char *)data, size, &text, &err) == 0)
        check_text(&text);
    else if (text.len != 0)
        abort();
    buf_reset(&text);
    o.link_cb = track;
    o.pixel_url = "https://gw.example/o/x";
    if (tpl_html_rewrite((const char *)data, size, &o, &html, &text,
                         &err) == 0) {
        check_text(&text);
        if (!utf8_ok((const unsigned char *)html.data, html.len))
            abort();
    } else {
        check_err(&err);
    }
    buf_free(&text);
    buf_free(&html);
    return 0;
}

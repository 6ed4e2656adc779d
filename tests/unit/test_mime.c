/*
 * test_mime.c -- tests for the MIME writer (channels/mime.c): RFC 2047
 * encoded-words (at most 75 characters, never split inside a UTF-8
 * sequence, decoding back to the input exactly), header folding (78
 * columns, unfolding restores the value), quoted-printable (soft breaks,
 * trailing white space, '=', leading dots and "From "), base64 line
 * lengths, boundaries (distinct per level, absent from every body),
 * header injection refused in every field (CR, LF, NUL, U+2028, control
 * characters, encoded-words and %-escapes that decode to CR/LF), the
 * Message-ID (stable for a key, escaped or hashed), List-Unsubscribe and
 * one-click, mailbox and address checks, and no line over 998 octets with
 * a 5,000-character HTML line. Decoders for Q, B, quoted-printable and
 * base64 are written here, independently of the writer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "channels/mime.h"

/* ---- independent decoders ---- */

static int
hexv(int c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int
b64v(int c)
{
    const char *a =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c ? strchr(a, c) : NULL;
    return p ? (int)(p - a) : -1;
}

/* Base64 text (CRLF allowed between groups) into b; -1 on bad input. */
static int
b64_decode(struct buf *b, const char *s, size_t n)
{
    unsigned acc = 0;
    int bits = 0;

    for (size_t i = 0; i < n; i++) {
        int v;
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '=')
            continue;
        if ((v = b64v(s[i])) < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        if ((bits += 6) >= 8) {
            bits -= 8;
            buf_putc(b, (char)((acc >> bits) & 0xff));
        }
    }
    return 0;
}

/* Quoted-printable into b; hard breaks become CRLF. */
static int
qp_decode(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=') {
            if (i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
                i += 2;
                continue;
            }
            if (i + 2 >= n || hexv(s[i + 1]) < 0 || hexv(s[i + 2]) < 0)
                return -1;
            buf_putc(b, (char)(hexv(s[i + 1]) * 16 + hexv(s[i + 2])));
            i += 2;
        } else {
            buf_putc(b, s[i]);
        }
    }
    return 0;
}

static int
utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = s[i] < 0x80 ? 1 : (s[i] & 0xe0) == 0xc0 ? 2
                   : (s[i] & 0xf0) == 0xe0 ? 3 : (s[i] & 0xf8) == 0xf0 ? 4
                   : 0;
        if (!l || i + l > n)
            return 0;
        for (size_t k = 1; k < l; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
        i += l;
    }
    return 1;
}

/* The value of header name in msg, unfolded (CRLF removed), or NULL. */
static char *
header(const char *msg, const char *name)
{
    size_t nl = strlen(name);
    const char *p = msg, *end = strstr(msg, "\r\n\r\n");
    struct buf b;

    buf_init(&b, 0);
    while (p && p < end) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *q = p + nl + 1;
            for (;;) {
                const char *e = strstr(q, "\r\n");
                buf_append(&b, q, (size_t)(e - q));
                if (e[2] != ' ' && e[2] != '\t')
                    break;
                q = e + 2;
            }
            buf_cstr(&b);
            return buf_steal(&b, NULL);
        }
        p = strstr(p, "\r\n");
        if (p)
            p += 2;
    }
    return NULL;
}

/* Decode every encoded-word of v (RFC 2047), checking each: at most 75
 * characters, whole UTF-8 characters; returns the text, whitespace
 * between adjacent words dropped. */
static char *
ew_decode(const char *v)
{
    struct buf out;
    const char *p = v;

    buf_init(&out, 0);
    while (*p) {
        if (p[0] == '=' && p[1] == '?') {
            const char *q = strstr(p + 2, "?");
            char enc = q[1];
            const char *t = q + 3, *e = strstr(t, "?=");
            struct buf w;

            assert_true(e - p + 2 <= 75);
            assert_true(strncmp(p, "=?UTF-8?", 8) == 0);
            buf_init(&w, 0);
            if (enc == 'B') {
                assert_int_equal(b64_decode(&w, t, (size_t)(e - t)), 0);
            } else {
                assert_int_equal(enc, 'Q');
                for (const char *c = t; c < e; c++) {
                    if (*c == '_')
                        buf_putc(&w, ' ');
                    else if (*c == '=') {
                        buf_putc(&w, (char)(hexv(c[1]) * 16 + hexv(c[2])));
                        c += 2;
                    } else
                        buf_putc(&w, *c);
                }
            }
            assert_true(utf8_valid((unsigned char *)w.data, w.len));
            buf_append(&out, w.data, w.len);
            buf_free(&w);
            p = e + 2;
            /* whitespace between two encoded-words is not text */
            const char *s = p;
            while (*s == ' ' || *s == '\t')
                s++;
            if (s[0] == '=' && s[1] == '?')
                p = s;
        } else {
            buf_putc(&out, *p++);
        }
    }
    buf_cstr(&out);
    return buf_steal(&out, NULL);
}

/* Every line: CRLF-terminated, <= 998 octets; header lines <= 78. */
static void
check_lines(const char *msg, size_t len)
{
    const char *p = msg, *end = msg + len, *body = strstr(msg, "\r\n\r\n");

    while (p < end) {
        const char *e = strstr(p, "\r\n");
        assert_non_null(e);
        assert_null(memchr(p, '\n', (size_t)(e - p)));
        assert_null(memchr(p, '\r', (size_t)(e - p)));
        assert_true(e - p <= 998);
        if (p < body && strncmp(p, "List-Unsubscribe:", 17) != 0 &&
            strncmp(p, " <http", 6) != 0)
            assert_true(e - p <= 78);
        p = e + 2;
    }
}

/* ---- fixtures ---- */

static const unsigned char png[] = {
    0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D',
    'R', 0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89
};

static void
base_msg(struct mime_msg *m)
{
    memset(m, 0, sizeof *m);
    m->from_name = "Shop";
    m->from_addr = "news@example.org";
    m->to_name = "Ann Example";
    m->to_addr = "ann@example.org";
    m->subject = "Hello";
    m->text = "Hello Ann\n";
    m->text_len = strlen(m->text);
    m->html = "<p>Hello Ann</p>";
    m->html_len = strlen(m->html);
    m->key = "spring-27:c1:email";
    m->id_domain = "mail.example.org";
    m->date = 1767225600;       /* 2026-01-01 */
}

static char *
build(const struct mime_msg *m, int *rc, char *reason, size_t rlen)
{
    struct buf b;

    buf_init(&b, 0);
    *rc = mime_build(&b, m, reason, rlen);
    if (*rc < 0) {
        assert_true(reason[0] != 0);
        buf_free(&b);
        return NULL;
    }
    check_lines(b.data, b.len);
    return buf_steal(&b, NULL);
}

/* ---- tests ---- */

static void
test_encoded_words(void **state)
{
    static const char *const subjects[] = {
        "Grüße aus Köln – Frühlingsangebot für Sie",
        ("春のセール：全商品２０％オフ！今すぐチェックしてください。"
         "期間限定のお得なキャンペーンです。お見逃しなく！"),
        "🎉🎉🎉 Party 🎉 time 👩‍👩‍👧‍👦 famille 🇫🇷🇩🇪 fin 🎉🎉🎉🎉🎉🎉🎉🎉",
        "  two  spaces and a\ttab  ",
        "looks like =?utf-8?q?an=20encoded?= word",
        "x",
        "",
        "a_b?c=d",
    };
    char reason[200];
    int rc;

    (void)state;
    for (size_t i = 0; i < sizeof subjects / sizeof subjects[0]; i++) {
        struct mime_msg m;
        char *msg, *v, *dec;

        base_msg(&m);
        m.subject = subjects[i];
        m.to_name = subjects[i][0] ? subjects[i] : NULL;
        msg = build(&m, &rc, reason, sizeof reason);
        assert_non_null(msg);
        v = header(msg, "Subject");
        assert_non_null(v);
        dec = ew_decode(v[0] == ' ' ? v + 1 : v);
        assert_string_equal(dec, subjects[i]);
        free(dec);
        free(v);
        free(msg);
    }
}

static void
test_folding(void **state)
{
    struct buf b;
    char reason[100];
    const char *long_ascii =
        "This is a rather long subject line that has to be folded "
        "somewhere because it goes well past seventy-eight columns and "
        "then some more words to fold a second time as well";
    char *v;

    (void)state;
    buf_init(&b, 0);
    assert_int_equal(mime_header(&b, "Subject", long_ascii, reason,
                                 sizeof reason), 0);
    assert_non_null(strstr(b.data, "\r\n "));
    buf_puts(&b, "\r\n");
    check_lines(b.data, b.len);
    v = header(b.data, "Subject");
    assert_string_equal(v + 1, long_ascii);
    free(v);
    buf_free(&b);

    /* A word too long to fold is encoded, so it can be split. */
    char word[200];
    memset(word, 'w', sizeof word - 1);
    word[sizeof word - 1] = 0;
    buf_init(&b, 0);
    assert_int_equal(mime_header(&b, "Subject", word, reason, sizeof reason),
                     0);
    assert_non_null(strstr(b.data, "=?UTF-8?"));
    buf_puts(&b, "\r\n");
    check_lines(b.data, b.len);
    v = header(b.data, "Subject");
    char *dec = ew_decode(v + 1);
    assert_string_equal(dec, word);
    free(dec);
    free(v);
    buf_free(&b);
}

static void
check_qp(const char *in, const char *expect_encoded)
{
    struct buf b, d, norm;

    buf_init(&b, 0);
    buf_init(&d, 0);
    buf_init(&norm, 0);
    assert_int_equal(mime_qp(&b, in, strlen(in)), 0);
    buf_cstr(&b);
    if (expect_encoded)
        assert_string_equal(b.data, expect_encoded);
    /* lines <= 76, soft breaks end in '=', no trailing white space */
    for (const char *p = b.data; *p;) {
        const char *e = strstr(p, "\r\n");
        size_t l = e ? (size_t)(e - p) : strlen(p);
        assert_true(l <= 76);
        if (l)
            assert_true(p[l - 1] != ' ' && p[l - 1] != '\t');
        assert_true(*p != '.');
        assert_false(strncmp(p, "From ", 5) == 0);
        p += l + (e ? 2 : 0);
    }
    assert_int_equal(qp_decode(&d, b.data, b.len), 0);
    for (const char *p = in; *p; p++) {
        if (*p == '\n' && (p == in || p[-1] != '\r'))
            buf_putc(&norm, '\r');
        buf_putc(&norm, *p);
    }
    assert_int_equal(d.len, norm.len);
    assert_memory_equal(d.data, norm.data, d.len);
    buf_free(&b);
    buf_free(&d);
    buf_free(&norm);
}

static void
test_qp(void **state)
{
    char long_line[400];

    (void)state;
    check_qp("a=b\n", "a=3Db\r\n");
    check_qp("trailing space \nand tab\t\nend ", "trailing space=20\r\n"
             "and tab=09\r\nend=20");
    check_qp(".\n..x\nFrom me\nFromage\n", "=2E\r\n=2E.x\r\n=46rom me\r\n"
             "Fromage\r\n");
    check_qp("crlf\r\nkept\r\n", "crlf\r\nkept\r\n");
    check_qp("caf\xc3\xa9 \xe2\x82\xac", "caf=C3=A9 =E2=82=AC");
    memset(long_line, 'x', sizeof long_line - 1);
    long_line[sizeof long_line - 1] = 0;
    check_qp(long_line, NULL);
    /* '=' near the break: never split an escape */
    for (size_t i = 0; i < sizeof long_line - 1; i++)
        long_line[i] = i % 7 == 0 ? '=' : i % 11 == 0 ? ' ' : 'y';
    check_qp(long_line, NULL);
    /* a dot landing at the start of a line after a soft break */
    for (size_t i = 0; i < sizeof long_line - 1; i++)
        long_line[i] = '.';
    check_qp(long_line, NULL);
    check_qp("", "");
}

static void
test_base64(void **state)
{
    unsigned char data[1000];
    struct buf b, d;

    (void)state;
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof data; n += n < 200 ? 1 : 97) {
        buf_init(&b, 0);
        buf_init(&d, 0);
        assert_int_equal(mime_base64(&b, data, n), 0);
        buf_cstr(&b);
        for (const char *p = b.data; *p;) {
            const char *e = strstr(p, "\r\n");
            size_t l = e ? (size_t)(e - p) : strlen(p);
            if (e)
                assert_int_equal(l, 76);
            else
                assert_true(l <= 76);
            p += l + (e ? 2 : 0);
        }
        assert_int_equal(b64_decode(&d, b.data, b.len), 0);
        assert_int_equal(d.len, n);
        if (n)
            assert_memory_equal(d.data, data, n);
        buf_free(&b);
        buf_free(&d);
    }
}

static void
test_structure_and_boundaries(void **state)
{
    struct content_image imgs[2] = {
        { "logo.png", "image/png", "logo.png.1a2b@gateway", png, sizeof png },
        { "b.png", "image/png", "b.png.3c4d@gateway", png, sizeof png },
    };
    struct content_image att = { "Prix d'été.pdf", "application/pdf", NULL,
                                 png, sizeof png };
    struct mime_msg m;
    char reason[200], *msg, *ct;
    const char *bounds[3];
    int rc;

    (void)state;
    base_msg(&m);
    m.html = "<p><img src=\"cid:logo.png.1a2b@gateway\">--=_gw</p>";
    m.html_len = strlen(m.html);
    m.text = "--=_gwa.0000 looks like a boundary\n";
    m.text_len = strlen(m.text);
    m.images = imgs;
    m.nimages = 2;
    m.attachments = &att;
    m.nattachments = 1;
    msg = build(&m, &rc, reason, sizeof reason);
    assert_non_null(msg);
    ct = header(msg, "Content-Type");
    assert_non_null(strstr(ct, "multipart/mixed"));
    free(ct);
    /* the three levels, each its own boundary, in this order */
    bounds[0] = strstr(msg, "multipart/mixed");
    bounds[1] = strstr(msg, "multipart/alternative");
    bounds[2] = strstr(msg, "multipart/related");
    assert_true(bounds[0] && bounds[1] && bounds[2]);
    assert_true(bounds[0] < bounds[1] && bounds[1] < bounds[2]);
    assert_non_null(strstr(bounds[2], "type=\"text/html\""));
    const char *plain = strstr(msg, "text/plain"),
               *html = strstr(msg, "text/html;");
    assert_true(plain && html && plain < html);     /* text first */
    assert_non_null(strstr(msg, "Content-ID: <logo.png.1a2b@gateway>"));
    assert_non_null(strstr(msg, "Content-ID: <b.png.3c4d@gateway>"));
    assert_non_null(strstr(msg, "filename*=utf-8''Prix%20d%27%C3%A9t%C3%A9"
                                ".pdf"));
    /* every boundary starts with "=_"; no body line starts with one */
    char tags[3][64];
    int nt = 0;
    for (const char *p = msg; (p = strstr(p, "boundary=\"")) != NULL;) {
        p += 10;
        const char *e = strchr(p, '"');
        assert_true(nt < 3);
        snprintf(tags[nt++], sizeof tags[0], "%.*s", (int)(e - p), p);
        assert_true(p[0] == '=' && p[1] == '_');
    }
    assert_int_equal(nt, 3);
    assert_string_not_equal(tags[0], tags[1]);
    assert_string_not_equal(tags[1], tags[2]);
    for (int t = 0; t < 3; t++) {
        char delim[256], close_[256];
        int opens = 0, closes = 0;
        snprintf(delim, sizeof delim, "\r\n--%s\r\n", tags[t]);
        snprintf(close_, sizeof close_, "\r\n--%s--", tags[t]);
        for (const char *p = msg; (p = strstr(p, delim)); p++)
            opens++;
        for (const char *p = msg; (p = strstr(p, close_)); p++)
            closes++;
        assert_int_equal(closes, 1);
        assert_int_equal(opens, t == 0 ? 2 : t == 1 ? 2 : 3);
    }
    free(msg);
}

static void
test_single_parts(void **state)
{
    struct mime_msg m;
    char reason[200], *msg, *ct;
    int rc;

    (void)state;
    base_msg(&m);
    m.html = NULL;
    msg = build(&m, &rc, reason, sizeof reason);
    ct = header(msg, "Content-Type");
    assert_string_equal(ct, " text/plain; charset=utf-8");
    free(ct);
    free(msg);
    base_msg(&m);
    m.text = NULL;
    msg = build(&m, &rc, reason, sizeof reason);
    ct = header(msg, "Content-Type");
    assert_string_equal(ct, " text/html; charset=utf-8");
    free(ct);
    free(msg);
    base_msg(&m);
    m.text = m.html = NULL;
    assert_null(build(&m, &rc, reason, sizeof reason));
    assert_int_equal(rc, GW_EINVAL);
}

/* Each case: a field set to a hostile value must be refused. */
static void
test_injection(void **state)
{
    static const char *const bad_text[] = {
        "Hi\r\nBcc: evil@example.org", "Hi\nBcc: evil@example.org",
        "Hi\rBcc: x", "line\xe2\x80\xa8sep", "para\xe2\x80\xa9sep",
        "nel\xc2\x85x", "vt\x0bx", "ff\x0cx", "esc\x1bx", "del\x7fx",
        "=?utf-8?q?a=0D=0ABcc:_evil@example.org?=",
        "=?UTF-8?B?YQ0KQmNjOiBldmls?=", "=?utf-8?Q?nul=00?=",
        "bad utf8 \xc3\x28", "overlong \xc0\xaf", "surrogate \xed\xa0\x80",
    };
    static const char *const bad_addr[] = {
        "ann@example.org\r\nRCPT TO:<evil@example.org>", "ann@example.org\n",
        "ann\r@example.org", "ann@example.org\x01", "ann@example.org>",
        "<ann@example.org>", "\"ann\"@example.org", "ann@@example.org",
        "ann example@example.org", "ann@example..org", ".ann@example.org",
        "ann.@example.org", "a..nn@example.org", "annexample.org", "",
        "ann@-example.org", "ännä@example.org", "ann@exämple.org",
        "ann@example.org\xe2\x80\xa8", "ann\t@example.org",
    };
    static const char *const bad_url[] = {
        "https://x.example.org/u?a=1\r\nBcc: evil", "https://x/u\n",
        "https://x/u?a=%0d%0aBcc:%20evil", "https://x/u?%0A", "https://x/%00",
        "https://x/<a>", "https://x/ a", "javascript:alert(1)",
        "https://x/\xe2\x80\xa8",
    };
    struct mime_msg m;
    char reason[200];
    int rc;

    (void)state;
    for (size_t i = 0; i < sizeof bad_text / sizeof bad_text[0]; i++) {
        for (int field = 0; field < 4; field++) {
            base_msg(&m);
            if (field == 0)
                m.subject = bad_text[i];
            else if (field == 1)
                m.to_name = bad_text[i];
            else if (field == 2)
                m.from_name = bad_text[i];
            else
                m.campaign = bad_text[i];
            reason[0] = 0;
            assert_null(build(&m, &rc, reason, sizeof reason));
            assert_int_equal(rc, GW_EINVAL);
        }
    }
    for (size_t i = 0; i < sizeof bad_addr / sizeof bad_addr[0]; i++) {
        for (int field = 0; field < 2; field++) {
            base_msg(&m);
            if (field == 0)
                m.to_addr = bad_addr[i];
            else
                m.from_addr = bad_addr[i];
            assert_null(build(&m, &rc, reason, sizeof reason));
            assert_int_equal(rc, GW_EINVAL);
        }
        assert_int_equal(mime_check_addr(bad_addr[i], "to", reason,
                                         sizeof reason), GW_EINVAL);
    }
    for (size_t i = 0; i < sizeof bad_url / sizeof bad_url[0]; i++) {
        base_msg(&m);
        m.unsubscribe_url = bad_url[i];
        assert_null(build(&m, &rc, reason, sizeof reason));
        base_msg(&m);
        if (strncmp(bad_url[i], "https://", 8) == 0) {
            m.unsubscribe_mailto = bad_url[i] + 8;
            assert_null(build(&m, &rc, reason, sizeof reason));
        }
    }
    /* the reasons say what and where */
    base_msg(&m);
    m.subject = "Hi\r\nBcc: x";
    build(&m, &rc, reason, sizeof reason);
    assert_string_equal(reason, "subject: contains CR");
    base_msg(&m);
    m.to_name = "a\xe2\x80\xa8" "b";
    build(&m, &rc, reason, sizeof reason);
    assert_string_equal(reason, "to name: contains LINE SEPARATOR U+2028");
    base_msg(&m);
    m.unsubscribe_url = "https://x/?%0d%0a";
    build(&m, &rc, reason, sizeof reason);
    assert_string_equal(reason, "unsubscribe url: %-escape decodes to CR");
    base_msg(&m);
    m.to_addr = "a@b.org\nRCPT TO:<c@d.org>";
    build(&m, &rc, reason, sizeof reason);
    assert_string_equal(reason, "to: contains LF");
    /* NUL inside a counted value */
    assert_int_equal(mime_check_text("a\0b", 3, "subject", reason,
                                     sizeof reason), GW_EINVAL);
    assert_string_equal(reason, "subject: contains NUL");
    /* NUL in a body is refused too (it would end the C string) */
    base_msg(&m);
    m.text = "a\0b";
    m.text_len = 3;
    assert_null(build(&m, &rc, reason, sizeof reason));
    /* and fine values pass */
    assert_int_equal(mime_check_addr("o'brien+tag@mail-1.example.org", "to",
                                     reason, sizeof reason), 0);
    assert_int_equal(mime_check_text("tab\tok", 6, "s", reason,
                                     sizeof reason), 0);
}

static void
test_message_id(void **state)
{
    struct mime_msg m;
    char reason[200], *a, *b, *ida, *idb;
    char longkey[600];
    struct buf t;
    int rc;

    (void)state;
    base_msg(&m);
    a = build(&m, &rc, reason, sizeof reason);
    m.date = 1767225600 + 86400 * 3;
    m.subject = "another attempt, another day";
    b = build(&m, &rc, reason, sizeof reason);
    ida = header(a, "Message-ID");
    idb = header(b, "Message-ID");
    assert_string_equal(ida, idb);
    assert_string_equal(ida, " <spring-27=3Ac1=3Aemail@mail.example.org>");
    free(a);
    free(b);
    free(ida);
    free(idb);

    buf_init(&t, 0);
    mime_message_id(&t, ".a..b c@d.", "x.org");
    assert_string_equal(buf_cstr(&t), "<=2Ea.=2Eb=20c=40d=2E@x.org>");
    buf_reset(&t);
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    mime_message_id(&t, longkey, "x.org");
    assert_int_equal(t.len, strlen("<h.") + 32 + strlen("@x.org>"));
    assert_true(strncmp(t.data, "<h.", 3) == 0);
    char first[80];
    snprintf(first, sizeof first, "%s", t.data);
    buf_reset(&t);
    mime_message_id(&t, longkey, "x.org");
    assert_string_equal(first, t.data);
    /* local-part tokens stay within the budget */
    buf_reset(&t);
    mime_key_token(&t, "spring-27:c1:email", 40);
    assert_string_equal(buf_cstr(&t), "spring-27=3Ac1=3Aemail");
    buf_reset(&t);
    mime_key_token(&t, "spring-2027:c1234567890123:email", 34);
    assert_true(t.len <= 34);
    assert_true(strncmp(t.data, "h.", 2) == 0);
    assert_int_equal(mime_check_addr("bounces+h.0123456789abcdef0123456789a"
                                     "bcdef@x.org", "env", reason,
                                     sizeof reason), 0);
    buf_free(&t);
}

static void
test_list_headers(void **state)
{
    struct mime_msg m;
    char reason[200], *msg, *v;
    int rc;

    (void)state;
    base_msg(&m);
    m.unsubscribe_url = "https://example.org/u/abcdef0123456789abcdef0123456"
                        "789abcdef0123456789";
    m.unsubscribe_mailto = "unsub+c1@example.org?subject=unsubscribe";
    m.one_click = 1;
    m.list_id = "Shop news <news.example.org>";
    m.campaign = "spring-27";
    msg = build(&m, &rc, reason, sizeof reason);
    assert_non_null(msg);
    v = header(msg, "List-Unsubscribe");
    assert_string_equal(v, " <https://example.org/u/abcdef0123456789abcdef01"
                           "23456789abcdef0123456789>, <mailto:unsub+c1@examp"
                           "le.org?subject=unsubscribe>");
    free(v);
    v = header(msg, "List-Unsubscribe-Post");
    assert_string_equal(v, " List-Unsubscribe=One-Click");
    free(v);
    v = header(msg, "List-Id");
    assert_string_equal(v, " Shop news <news.example.org>");
    free(v);
    v = header(msg, "X-Campaign-ID");
    assert_string_equal(v, " spring-27");
    free(v);
    free(msg);

    /* not marketing, or no https URI: no one-click */
    m.one_click = 0;
    msg = build(&m, &rc, reason, sizeof reason);
    assert_null(header(msg, "List-Unsubscribe-Post"));
    free(msg);
    m.one_click = 1;
    m.unsubscribe_url = NULL;
    msg = build(&m, &rc, reason, sizeof reason);
    assert_null(header(msg, "List-Unsubscribe-Post"));
    v = header(msg, "List-Unsubscribe");
    assert_string_equal(v, " <mailto:unsub+c1@example.org?subject=unsubsc"
                           "ribe>");
    free(v);
    free(msg);
    /* non-ASCII list name */
    m.list_id = "Новости магазина <news.example.org>";
    msg = build(&m, &rc, reason, sizeof reason);
    v = header(msg, "List-Id");
    assert_non_null(strstr(v, "=?UTF-8?"));
    assert_non_null(strstr(v, "<news.example.org>"));
    free(v);
    free(msg);
}

static void
test_long_html_line(void **state)
{
    struct mime_msg m;
    char reason[200], *msg, *html;
    int rc;

    (void)state;
    html = malloc(5001 + 20);
    strcpy(html, "<p>");
    for (int i = 0; i < 5000; i++)
        html[3 + i] = (char)("abc def=ghi.jkl\xc3\xa9"[i % 17]);
    strcpy(html + 5003, "</p>");
    base_msg(&m);
    m.html = html;
    m.html_len = strlen(html);
    msg = build(&m, &rc, reason, sizeof reason);   /* checks every line */
    assert_non_null(msg);
    free(msg);
    free(html);
}

static void
test_mailbox_parse(void **state)
{
    static const struct {
        const char *in, *name, *addr;
    } ok[] = {
        { "Shop <news@example.org>", "Shop", "news@example.org" },
        { "\"Shop, Inc.\" <news@example.org>", "Shop, Inc.",
          "news@example.org" },
        { "<news@example.org>", NULL, "news@example.org" },
        { "news@example.org", NULL, "news@example.org" },
        { "  Läden   <a@b.org>  ", "Läden", "a@b.org" },
        { "\"say \\\"hi\\\"\" <a@b.org>", "say \"hi\"", "a@b.org" },
    };
    static const char *const bad[] = {
        "Shop <news@example.org", "Shop news@example.org>",
        "Shop <news@example.org> x", "Shop\r\n <a@b.org>", "<a@b@c>",
        "\"unterminated <a@b.org>",
    };
    char reason[200], *name, *addr;

    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(mime_mailbox_parse(ok[i].in, &name, &addr, reason,
                                            sizeof reason), 0);
        if (ok[i].name)
            assert_string_equal(name, ok[i].name);
        else
            assert_null(name);
        assert_string_equal(addr, ok[i].addr);
        free(name);
        free(addr);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mime_mailbox_parse(bad[i], &name, &addr, reason,
                                            sizeof reason), GW_EINVAL);
}

static void
test_display_names(void **state)
{
    static const struct {
        const char *name, *expect;
    } cases[] = {
        { "Ann Example", "To: Ann Example <ann@example.org>" },
        { "Example, Ann", "To: \"Example, Ann\" <ann@example.org>" },
        { "Ann \"The\" Example",
          "To: \"Ann \\\"The\\\" Example\" <ann@example.org>" },
        { "Zoë", "To: =?UTF-8?Q?Zo=C3=AB?= <ann@example.org>" },
    };
    struct mime_msg m;
    char reason[200], *msg;
    int rc;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        base_msg(&m);
        m.to_name = cases[i].name;
        msg = build(&m, &rc, reason, sizeof reason);
        assert_non_null(strstr(msg, cases[i].expect));
        free(msg);
    }
}

static void
test_cap(void **state)
{
    struct mime_msg m;
    struct buf b;
    char reason[100];

    (void)state;
    base_msg(&m);
    buf_init(&b, 200);
    assert_int_equal(mime_build(&b, &m, reason, sizeof reason), GW_ETOOBIG);
    buf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoded_words),
        cmocka_unit_test(test_folding),
        cmocka_unit_test(test_qp),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_structure_and_boundaries),
        cmocka_unit_test(test_single_parts),
        cmocka_unit_test(test_injection),
        cmocka_unit_test(test_message_id),
        cmocka_unit_test(test_list_headers),
        cmocka_unit_test(test_long_html_line),
        cmocka_unit_test(test_mailbox_parse),
        cmocka_unit_test(test_display_names),
        cmocka_unit_test(test_cap),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

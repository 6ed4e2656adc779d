/*
 * dsn.c -- bounce parser (see dsn.h). GMime 3 builds the MIME tree; we
 * walk it with an explicit, capped stack: a message/delivery-status part
 * is read as header blocks (per-message fields, then one block per
 * recipient) by a small unfolding scanner here; message/rfc822 and
 * text/rfc822-headers give the original Message-ID and Return-Path; text
 * parts of a bounce without a delivery-status part are searched for an
 * SMTP reply ("550 5.1.1 ...", "(#5.1.1)"). Every string copied out is
 * cleaned (no control characters, valid UTF-8) and fits its field.
 */
#include "dsn.h"

#include "../common/err.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define PARTS_MAX     64            /* MIME parts walked */
#define DEPTH_MAX     8             /* multipart nesting walked */
#define TEXTS_MAX     4             /* text parts searched */
#define TEXT_SCAN_MAX (64u * 1024)  /* bytes searched in one text part */
#define DS_SCAN_MAX   (256u * 1024) /* bytes read of a delivery-status */
#define FIELDS_MAX    256           /* fields read in one part */
#define FIELD_MAX     2048          /* unfolded field value kept */
#define HEADERS_MAX   512           /* bounce header fields examined */
#define ADDR_LOOKBACK 2048          /* text searched before a reply */

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

/* ---- small helpers ---- */

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static void
gmime_start(void)
{
    g_mime_init();
}

static int
lc(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int
is_alnum(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_ws(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Case-insensitive search for needle (lower case) in s[0..n). */
static const char *
find_ci(const char *s, size_t n, const char *needle)
{
    size_t m = strlen(needle);

    for (size_t i = 0; m <= n && i <= n - m; i++) {
        size_t j = 0;
        while (j < m && lc((unsigned char)s[i + j]) == needle[j])
            j++;
        if (j == m)
            return s + i;
    }
    return NULL;
}

static int
starts_ci(const char *s, size_t n, const char *prefix)
{
    size_t m = strlen(prefix);

    return n >= m && strncasecmp(s, prefix, m) == 0;
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
    uint32_t c;
    size_t len;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        len = 2, c = p[0] & 0x1F;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        len = 3, c = p[0] & 0x0F;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        len = 4, c = p[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3F);
    }
    if ((len == 3 && (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF))) ||
        (len == 4 && (c < 0x10000 || c > 0x10FFFF)))
        return 0;
    return len;
}

/*
 * Copy s[0..n) into dst (dstlen > 0): white space and control characters
 * become single spaces, the ends are trimmed, a byte that is not valid
 * UTF-8 becomes '?', and a character is never cut.
 */
static void
copy_clean(char *dst, size_t dstlen, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0;
    int space = 0;

    while (i < n && o + 1 < dstlen) {
        if (p[i] < 0x20 || p[i] == 0x7F || p[i] == ' ') {
            space = o > 0;
            i++;
            continue;
        }
        size_t k = utf8_seq(p + i, n - i);
        size_t need = (k ? k : 1) + (space ? 1 : 0);
        if (o + need + 1 > dstlen)
            break;
        if (space)
            dst[o++] = ' ';
        space = 0;
        if (k == 0) {
            dst[o++] = '?';
            i++;
        } else {
            memcpy(dst + o, p + i, k);
            o += k;
            i += k;
        }
    }
    dst[o] = 0;
}

/* ---- enhanced status codes ---- */

/*
 * An enhanced status code "c.s.d" at s[0..n) (c 2, 4 or 5; s and d one to
 * three digits; not followed by a digit or by '.' and a digit). Returns
 * its length, 0 if there is none; *cls, *sub, *det get the numbers.
 */
static size_t
enh_at(const char *s, size_t n, int *cls, int *sub, int *det)
{
    size_t i = 0;
    int v[3] = { 0, 0, 0 };

    for (int f = 0; f < 3; f++) {
        size_t d = 0;
        if (f > 0) {
            if (i >= n || s[i] != '.')
                return 0;
            i++;
        }
        while (i < n && is_digit((unsigned char)s[i]) && d < 4) {
            v[f] = v[f] * 10 + (s[i] - '0');
            i++;
            d++;
        }
        if (d == 0 || d > 3 || (f == 0 && d != 1))
            return 0;
    }
    if (v[0] != 2 && v[0] != 4 && v[0] != 5)
        return 0;
    if (i < n && s[i] == '.' && i + 1 < n && is_digit((unsigned char)s[i + 1]))
        return 0;
    *cls = v[0];
    *sub = v[1];
    *det = v[2];
    return i;
}

/* Parse "5.1.1" (a whole string, surrounding white space allowed). */
static int
enh_parse(const char *s, int *cls, int *sub, int *det)
{
    size_t n, k;

    if (!s)
        return 0;
    while (is_ws((unsigned char)*s))
        s++;
    n = strlen(s);
    if ((k = enh_at(s, n, cls, sub, det)) == 0)
        return 0;
    for (s += k; *s; s++)
        if (!is_ws((unsigned char)*s))
            return 0;
    return 1;
}

/* ---- classification ---- */

static const char *const unknown_user[] = {
    "user unknown",           "unknown user",
    "no such user",           "no such mailbox",
    "no such recipient",      "unknown recipient",
    "recipient unknown",      "recipient not found",
    "user not found",         "mailbox not found",
    "mailbox does not exist", "address does not exist",
    "account does not exist", "user does not exist",
    "user doesn't exist",     "invalid recipient",
    "invalid mailbox",        "unrouteable address",
    "no mailbox here",        "not a valid mailbox",
    "address unknown",        NULL
};

static const char *const mailbox_full[] = {
    "mailbox full",       "mailbox is full",  "quota exceeded",
    "over quota",         "exceeded storage", "storage allocation",
    "mailbox size limit", "exceeds quota",    NULL
};

static int
text_says(const char *text, const char *const *list)
{
    size_t n;

    if (!text)
        return 0;
    if ((n = strlen(text)) > 1024)
        n = 1024; /* a reply or a subject, not a book */
    for (size_t i = 0; list[i]; i++)
        if (find_ci(text, n, list[i]))
            return 1;
    return 0;
}

enum bounce_class
bounce_classify_text(int smtp_code, const char *enhanced, const char *text)
{
    int c = 0, s = 0, d = 0, have = enh_parse(enhanced, &c, &s, &d);

    if ((smtp_code >= 400 && smtp_code < 500) || (have && c == 4))
        return BOUNCE_SOFT;
    if (have && c == 2)
        return BOUNCE_UNKNOWN;
    if (!have && (smtp_code < 500 || smtp_code > 599))
        return BOUNCE_UNKNOWN;
    if (have) {
        switch (s) {
        case 0:
            if (d != 0)
                return BOUNCE_UNKNOWN;
            break; /* 5.0.0: by the text below */
        case 1:
            return d <= 4 || d == 6 || d == 10 ? BOUNCE_HARD : BOUNCE_UNKNOWN;
        case 2:
            if (d == 1)
                return BOUNCE_HARD;
            if (d == 2)
                return BOUNCE_SOFT;
            if (d != 0)
                return BOUNCE_UNKNOWN;
            break; /* 5.2.0: by the text below */
        case 4: return d == 4 ? BOUNCE_HARD : BOUNCE_UNKNOWN;
        case 7:
            return d == 13 || d == 17 || d == 18 ? BOUNCE_HARD : BOUNCE_UNKNOWN;
        default: return BOUNCE_UNKNOWN;
        }
    }
    if (text_says(text, mailbox_full))
        return BOUNCE_SOFT;
    if ((smtp_code == 550 || smtp_code == 551 || smtp_code == 553 ||
         (smtp_code == 0 && have)) &&
        text_says(text, unknown_user))
        return BOUNCE_HARD;
    return BOUNCE_UNKNOWN;
}

enum bounce_class
bounce_classify(int smtp_code, const char *enhanced)
{
    return bounce_classify_text(smtp_code, enhanced, NULL);
}

/* ---- VERP tokens ---- */

static int
hexv(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 55 : -1;
}

/*
 * The exact inverse of mime_key_token: 0 and the key, 1 for the hashed
 * form (copied), GW_EINVAL for a token the encoder cannot have written.
 */
static int
token_decode(const char *t, size_t n, char *key, size_t keylen)
{
    size_t i = 0, k = 0;
    char last = 0;

    if (n == 0)
        return GW_EINVAL;
    if (n == 34 && t[0] == 'h' && t[1] == '.') {
        size_t j = 2;
        while (j < n &&
               (is_digit((unsigned char)t[j]) || (t[j] >= 'a' && t[j] <= 'f')))
            j++;
        if (j == n) {
            if (keylen <= n)
                return GW_ETOOBIG;
            memcpy(key, t, n);
            key[n] = 0;
            return 1;
        }
    }
    while (i < n) {
        int b, esc = t[i] == '=', keep;
        if (esc) {
            if (i + 2 >= n)
                return GW_EINVAL;
            if (hexv((unsigned char)t[i + 1]) < 0 ||
                hexv((unsigned char)t[i + 2]) < 0)
                return GW_EINVAL;
            b = hexv((unsigned char)t[i + 1]) * 16 +
                hexv((unsigned char)t[i + 2]);
            i += 3;
        } else {
            b = (unsigned char)t[i];
            i++;
        }
        /* What the encoder keeps here; i < n: more of the key follows. */
        keep = is_alnum(b) || b == '-' || b == '_' ||
               (b == '.' && last && last != '.' && i < n);
        if (esc ? keep || b == 0 : !keep)
            return GW_EINVAL;
        last = esc ? '=' : (char)b;
        if (k + 1 >= keylen)
            return GW_ETOOBIG;
        key[k++] = (char)b;
    }
    key[k] = 0;
    return 0;
}

int
dsn_verp_key(const char *address, char *key, size_t keylen)
{
    const char *s, *e, *at, *plus;

    if (!address || !key || keylen == 0)
        return GW_EINVAL;
    key[0] = 0;
    s = address;
    e = s + strlen(s);
    if ((plus = memchr(s, '<', (size_t)(e - s))) != NULL) {
        s = plus + 1;
        if ((e = memchr(s, '>', strlen(s))) == NULL)
            return GW_EINVAL;
    }
    while (s < e && is_ws((unsigned char)*s))
        s++;
    while (e > s && is_ws((unsigned char)e[-1]))
        e--;
    at = NULL;
    for (const char *p = s; p < e; p++)
        if (*p == '@')
            at = p;
    if (!at || at == s || at + 1 == e)
        return GW_EINVAL;
    plus = NULL;
    for (const char *p = s; p < at; p++) {
        if (*p == '"' || *p == '\\' || is_ws((unsigned char)*p))
            return GW_EINVAL;
        if (*p == '+')
            plus = p;
    }
    if (!plus)
        return GW_EINVAL;
    return token_decode(plus + 1, (size_t)(at - plus - 1), key, keylen);
}

/* ---- header blocks (delivery-status groups, rfc822-headers) ---- */

/* name == NULL: a blank line (end of a group). */
typedef void (*field_cb)(void *ctx, const char *name, const char *value);

/*
 * Unfold the fields of s[0..n): "Name: value" lines, continued by lines
 * that start with white space, groups separated by blank lines. Lines
 * that are neither are skipped. At most FIELDS_MAX fields; a value is cut
 * at FIELD_MAX bytes.
 */
static void
fields_scan(const char *s, size_t n, field_cb cb, void *ctx)
{
    const char *p = s, *end = s + n;
    char name[64], val[FIELD_MAX];
    size_t vlen = 0, nf = 0;
    int have = 0;

    while (p < end && nf < FIELDS_MAX) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end, *q = p, *le;
        le = eol ? eol : end;
        while (q < le && is_ws((unsigned char)*q))
            q++;
        if (q == le) { /* blank line */
            if (have) {
                val[vlen] = 0;
                cb(ctx, name, val);
                nf++;
            }
            have = 0;
            cb(ctx, NULL, NULL);
        } else if ((*p == ' ' || *p == '\t') && have) {
            if (vlen + 1 < sizeof val)
                val[vlen++] = ' ';
            for (; q < le && vlen + 1 < sizeof val; q++)
                val[vlen++] = *q;
        } else {
            const char *c = p;
            if (have) {
                val[vlen] = 0;
                cb(ctx, name, val);
                nf++;
            }
            have = 0;
            while (c < le && (unsigned char)*c > 0x20 &&
                   (unsigned char)*c < 0x7F && *c != ':')
                c++;
            size_t nl = (size_t)(c - p);
            while (c < le && (*c == ' ' || *c == '\t'))
                c++;
            if (nl > 0 && nl < sizeof name && c < le && *c == ':') {
                memcpy(name, p, nl);
                name[nl] = 0;
                have = 1;
                vlen = 0;
                for (c++; c < le && vlen + 1 < sizeof val; c++)
                    val[vlen++] = *c;
            }
        }
        p = next;
    }
    if (have && nf < FIELDS_MAX) {
        val[vlen] = 0;
        cb(ctx, name, val);
    }
}

/* ---- searching text for an SMTP reply ---- */

struct reply {
    int code;         /* 0: none */
    char enh[16];     /* "" : none */
    const char *line; /* where it was found */
    size_t linelen;
};

/* A basic code "[245]dd" at s[i] that starts a word and is followed by a
 * space, '-', end or (for "(#...") nothing else numeric. */
static int
code_at(const char *s, size_t n, size_t i)
{
    if (i + 3 > n || (s[i] != '2' && s[i] != '4' && s[i] != '5') ||
        !is_digit((unsigned char)s[i + 1]) ||
        !is_digit((unsigned char)s[i + 2]))
        return 0;
    if (i > 0 && (is_alnum((unsigned char)s[i - 1]) || s[i - 1] == '.' ||
                  s[i - 1] == '-' || s[i - 1] == ':' || s[i - 1] == '/'))
        return 0;
    if (i + 3 < n && s[i + 3] != ' ' && s[i + 3] != '-')
        return 0;
    return (s[i] - '0') * 100 + (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
}

/* An enhanced code at s[i] that starts a word: prev is none, white space,
 * '#', '(', '[', '<', '"', ':' or ';'. */
static size_t
enh_word_at(const char *s, size_t n, size_t i, int *c, int *sub, int *det)
{
    if (i > 0 && !is_ws((unsigned char)s[i - 1]) &&
        !strchr("#([<\":;=", s[i - 1]))
        return 0;
    return enh_at(s + i, n - i, c, sub, det);
}

/*
 * Look for a reply in one line. strength 2: "550 5.1.1" / "550-5.1.1" /
 * "550 #5.1.1" (classes agree); 1: a lone "5.1.1" or "(#5.1.1)" with
 * subject <= 7, and the line's basic code if any; 0: nothing.
 */
static int
line_reply(const char *s, size_t n, struct reply *r)
{
    int c, sub, det, code = 0, best = 0;

    for (size_t i = 0; i < n; i++) {
        int k = code_at(s, n, i);
        if (k && !code)
            code = k;
        if (k) {
            size_t j = i + 3;
            if (j < n && (s[j] == ' ' || s[j] == '-'))
                j++;
            if (j < n && s[j] == '#')
                j++;
            size_t m = enh_at(s + j, n - j, &c, &sub, &det);
            if (m && c == k / 100) {
                r->code = k;
                snprintf(r->enh, sizeof r->enh, "%d.%d.%d", c, sub, det);
                return 2;
            }
        }
        if (!best && enh_word_at(s, n, i, &c, &sub, &det) && sub <= 7 &&
            c != 2) {
            snprintf(r->enh, sizeof r->enh, "%d.%d.%d", c, sub, det);
            best = 1;
        }
    }
    if (best)
        r->code = code && code / 100 == r->enh[0] - '0' ? code : 0;
    return best;
}

/* Is s[0..n) a line that begins (after white space and '>') with a basic
 * code, or has one after "said:"? Used when no enhanced code is found. */
static int
line_code(const char *s, size_t n)
{
    size_t i = 0;
    const char *said;
    int k;

    while (i < n && (is_ws((unsigned char)s[i]) || s[i] == '>'))
        i++;
    if ((k = code_at(s, n, i)) >= 400)
        return k;
    if ((said = find_ci(s, n, "said:")) != NULL) {
        i = (size_t)(said - s) + 5;
        while (i < n && s[i] == ' ')
            i++;
        if ((k = code_at(s, n, i)) >= 400)
            return k;
    }
    return 0;
}

/* The first reply in text: strong matches first, then weak, then a basic
 * code alone. 1 found, 0 not. */
static int
text_reply(const char *t, size_t n, struct reply *out)
{
    struct reply weak = { 0 }, bare = { 0 };

    for (const char *p = t, *end = t + n; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((eol ? eol : end) - p);
        struct reply r = { 0 };
        int st = line_reply(p, len, &r);
        r.line = p;
        r.linelen = len;
        if (st == 2) {
            *out = r;
            return 1;
        }
        if (st == 1 && !weak.line)
            weak = r;
        if (!bare.line && (r.code = line_code(p, len)) != 0) {
            bare = r;
            bare.enh[0] = 0;
        }
        p = eol ? eol + 1 : end;
    }
    if (weak.line)
        *out = weak;
    else if (bare.line)
        *out = bare;
    else
        return 0;
    return 1;
}

/* ---- the walk ---- */

struct rcpt_acc {
    char final[320], orig[320], action[16], status[16], diag[512];
    int any;
};

struct ctx {
    struct dsn *out;
    struct rcpt_acc cur;
    int in_headers;       /* rfc822-headers: stop at the blank line */
    char orig_rpath[320]; /* the original's Return-Path */
    int not_bounce;       /* an MDN or a complaint report */
    const char *not_bounce_why;
    int report_ds; /* multipart/report; delivery-status */
    struct {
        char *data; /* g_malloc'd copies */
        size_t len;
        int html;
    } text[TEXTS_MAX];
    size_t ntext;
};

/* After "type;" in "rfc822; a@b" or "smtp; 550 ...", trimmed. */
static const char *
after_type(const char *v)
{
    const char *semi;

    while (is_ws((unsigned char)*v))
        v++;
    if ((semi = strchr(v, ';')) != NULL) {
        int token = 1;
        for (const char *p = v; p < semi; p++)
            if (is_ws((unsigned char)*p) || *p == '<' || *p == '@')
                token = 0;
        if (token)
            v = semi + 1;
    }
    while (is_ws((unsigned char)*v))
        v++;
    return v;
}

static void
copy_addr(char *dst, size_t dstlen, const char *v)
{
    const char *s = after_type(v), *e;

    if (*s == '<') {
        s++;
        e = strchr(s, '>');
    } else {
        e = NULL;
    }
    copy_clean(dst, dstlen, s, e ? (size_t)(e - s) : strlen(s));
}

static void
rcpt_commit(struct ctx *x)
{
    struct rcpt_acc *a = &x->cur;
    struct dsn *d = x->out;
    struct dsn_rcpt *r;
    struct reply dr = { 0 };
    const char *enh = NULL;
    int code = 0, c, sub, det, sc = 0, ss = 0, sd = 0;

    if (!a->any)
        return;
    if (strcmp(a->action, "delivered") == 0 ||
        strcmp(a->action, "relayed") == 0 ||
        strcmp(a->action, "expanded") == 0 || d->nrcpt >= DSN_RCPT_MAX) {
        memset(a, 0, sizeof *a);
        return;
    }
    r = &d->rcpt[d->nrcpt++];
    memset(r, 0, sizeof *r);
    snprintf(r->recipient, sizeof r->recipient, "%s",
             a->final[0] ? a->final : a->orig);
    snprintf(r->action, sizeof r->action, "%s", a->action);
    snprintf(r->diagnostic, sizeof r->diagnostic, "%s", a->diag);
    if (a->diag[0] && line_reply(a->diag, strlen(a->diag), &dr) == 0)
        dr.code = line_code(a->diag, strlen(a->diag));
    if (a->status[0] && enh_parse(a->status, &sc, &ss, &sd))
        enh = a->status;
    /* A generic or missing Status: the diagnostic's code if it agrees. */
    if (dr.enh[0] && enh_parse(dr.enh, &c, &sub, &det) &&
        (!enh || (sc == c && ss == 0 && sd == 0)))
        enh = dr.enh, sc = c;
    code = dr.code;
    if (enh && code / 100 != sc)
        code = 0; /* Status wins over the basic code */
    if (enh)
        snprintf(r->status, sizeof r->status, "%s", enh);
    if (strcmp(a->action, "delayed") == 0)
        r->cls = BOUNCE_SOFT;
    else
        r->cls = bounce_classify_text(code, enh, a->diag);
    memset(a, 0, sizeof *a);
}

static void
ds_field(void *arg, const char *name, const char *value)
{
    struct ctx *x = arg;
    struct rcpt_acc *a = &x->cur;
    int c, s, d;

    if (!name) {
        rcpt_commit(x);
        return;
    }
    if (strcasecmp(name, "Final-Recipient") == 0) {
        if (a->final[0])
            rcpt_commit(x); /* no blank line between recipients */
        copy_addr(a->final, sizeof a->final, value);
        a->any = 1;
    } else if (strcasecmp(name, "Original-Recipient") == 0) {
        if (a->orig[0])
            rcpt_commit(x);
        copy_addr(a->orig, sizeof a->orig, value);
        a->any = 1;
    } else if (strcasecmp(name, "Action") == 0 && !a->action[0]) {
        size_t i = 0;
        while (is_ws((unsigned char)*value))
            value++;
        while (i + 1 < sizeof a->action &&
               ((value[i] >= 'a' && value[i] <= 'z') ||
                (value[i] >= 'A' && value[i] <= 'Z') || value[i] == '-')) {
            a->action[i] = (char)lc((unsigned char)value[i]);
            i++;
        }
        a->action[i] = 0;
        a->any = 1;
    } else if (strcasecmp(name, "Status") == 0 && !a->status[0]) {
        while (is_ws((unsigned char)*value))
            value++;
        if (enh_at(value, strlen(value), &c, &s, &d))
            snprintf(a->status, sizeof a->status, "%d.%d.%d", c, s, d);
        a->any = 1;
    } else if (strcasecmp(name, "Diagnostic-Code") == 0 && !a->diag[0]) {
        const char *v = after_type(value);
        copy_clean(a->diag, sizeof a->diag, v, strlen(v));
        a->any = 1;
    }
}

static void
set_message_id(struct dsn *d, const char *raw_or_decoded, int decoded)
{
    char *id;

    if (d->message_id[0] || !raw_or_decoded)
        return;
    id = decoded ? g_strdup(raw_or_decoded)
                 : g_mime_utils_decode_message_id(raw_or_decoded);
    if (id && *id && strchr(id, '@')) {
        char tmp[sizeof d->message_id - 2];
        copy_clean(tmp, sizeof tmp, id, strlen(id));
        if (tmp[0] && !strchr(tmp, ' '))
            snprintf(d->message_id, sizeof d->message_id, "<%s>", tmp);
    }
    g_free(id);
}

static void
set_rpath(struct ctx *x, const char *v)
{
    if (!x->orig_rpath[0] && v)
        copy_addr(x->orig_rpath, sizeof x->orig_rpath, v);
}

static void
hdr_field(void *arg, const char *name, const char *value)
{
    struct ctx *x = arg;

    if (!name) {
        x->in_headers = 0;
        return;
    }
    if (!x->in_headers)
        return;
    if (strcasecmp(name, "Message-ID") == 0)
        set_message_id(x->out, value, 0);
    else if (strcasecmp(name, "Return-Path") == 0)
        set_rpath(x, value);
}

/* The decoded content of a leaf part, at most max bytes (g_free it). */
static char *
part_bytes(GMimePart *part, size_t max, size_t *len)
{
    GMimeDataWrapper *w = g_mime_part_get_content(part);
    GMimeStream *mem;
    GByteArray *ba;
    char *copy = NULL;

    *len = 0;
    if (!w || (mem = g_mime_stream_mem_new()) == NULL)
        return NULL;
    if (g_mime_data_wrapper_write_to_stream(w, mem) >= 0) {
        ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
        *len = ba->len < max ? ba->len : max;
        copy = g_malloc(*len + 1);
        if (*len)
            memcpy(copy, ba->data, *len);
        copy[*len] = 0;
    }
    g_object_unref(mem);
    return copy;
}

static void
leaf(struct ctx *x, GMimeObject *obj, GMimeContentType *ct)
{
    char *data;
    size_t len;

    if (g_mime_content_type_is_type(ct, "message", "delivery-status") ||
        g_mime_content_type_is_type(ct, "message", "global-delivery-status")) {
        if ((data = part_bytes(GMIME_PART(obj), DS_SCAN_MAX, &len)) == NULL)
            return;
        x->out->is_report = 1;
        memset(&x->cur, 0, sizeof x->cur);
        fields_scan(data, len, ds_field, x);
        rcpt_commit(x);
        g_free(data);
    } else if (g_mime_content_type_is_type(ct, "text", "rfc822-headers") ||
               g_mime_content_type_is_type(ct, "message", "global-headers")) {
        if ((data = part_bytes(GMIME_PART(obj), DS_SCAN_MAX, &len)) == NULL)
            return;
        x->in_headers = 1;
        fields_scan(data, len, hdr_field, x);
        g_free(data);
    } else if (g_mime_content_type_is_type(ct, "message",
                                           "disposition-notification") ||
               g_mime_content_type_is_type(ct, "message", "feedback-report")) {
        x->not_bounce = 1;
    } else if (g_mime_content_type_is_type(ct, "text", "plain") ||
               g_mime_content_type_is_type(ct, "text", "html")) {
        if (x->ntext >= TEXTS_MAX)
            return;
        if ((data = part_bytes(GMIME_PART(obj), TEXT_SCAN_MAX, &len)) == NULL)
            return;
        x->text[x->ntext].data = data;
        x->text[x->ntext].len = len;
        x->text[x->ntext].html =
            g_mime_content_type_is_type(ct, "text", "html");
        x->ntext++;
    }
}

static void
walk(struct ctx *x, GMimeObject *root)
{
    struct {
        GMimeObject *obj;
        int depth;
    } stack[PARTS_MAX];
    size_t sp = 0, seen = 0;

    if (!root)
        return;
    stack[sp].obj = root;
    stack[sp++].depth = 0;
    while (sp > 0 && seen < PARTS_MAX) {
        GMimeObject *obj = stack[--sp].obj;
        int depth = stack[sp].depth;
        GMimeContentType *ct = g_mime_object_get_content_type(obj);

        seen++;
        if (GMIME_IS_MULTIPART(obj)) {
            GMimeMultipart *mp = GMIME_MULTIPART(obj);
            int n = g_mime_multipart_get_count(mp);
            const char *rt =
                ct ? g_mime_content_type_get_parameter(ct, "report-type")
                   : NULL;
            if (ct && g_mime_content_type_is_type(ct, "multipart", "report") &&
                rt) {
                if (strcasecmp(rt, "delivery-status") == 0)
                    x->report_ds = 1;
                else if (strcasecmp(rt, "disposition-notification") == 0 ||
                         strcasecmp(rt, "feedback-report") == 0) {
                    x->not_bounce = 1;
                    x->not_bounce_why = rt;
                }
            }
            /* No parts (a lost boundary): the text is all prologue. */
            if (n == 0 && x->ntext < TEXTS_MAX) {
                const char *pro = g_mime_multipart_get_prologue(mp);
                size_t plen = pro ? strnlen(pro, TEXT_SCAN_MAX) : 0;
                if (plen) {
                    x->text[x->ntext].data = g_strndup(pro, plen);
                    x->text[x->ntext].len = plen;
                    x->text[x->ntext++].html = 0;
                }
            }
            if (depth >= DEPTH_MAX)
                continue;
            /* Children in document order: push the last first. */
            if (n > (int)(PARTS_MAX - sp))
                n = (int)(PARTS_MAX - sp);
            for (int i = n - 1; i >= 0; i--) {
                GMimeObject *child = g_mime_multipart_get_part(mp, i);
                if (child) {
                    stack[sp].obj = child;
                    stack[sp++].depth = depth + 1;
                }
            }
        } else if (GMIME_IS_MESSAGE_PART(obj)) {
            /* The returned original: its headers only. */
            GMimeMessage *m =
                g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
            if (m) {
                set_message_id(x->out, g_mime_message_get_message_id(m), 1);
                set_rpath(x, g_mime_object_get_header(GMIME_OBJECT(m),
                                                      "Return-Path"));
            }
        } else if (GMIME_IS_PART(obj) && ct) {
            leaf(x, obj, ct);
        }
    }
}

/* ---- the bounce's own headers ---- */

static const char *const verp_headers[] = { "Delivered-To",
                                            "X-Original-To",
                                            "Envelope-To",
                                            "X-Envelope-To",
                                            "X-Delivered-To",
                                            "To",
                                            NULL };

/* The key from the first header address that is a VERP address. */
static void
key_from_headers(struct dsn *d, GMimeHeaderList *hl)
{
    int n = hl ? g_mime_header_list_get_count(hl) : 0;

    if (n > HEADERS_MAX)
        n = HEADERS_MAX;
    for (size_t w = 0; verp_headers[w] && !d->msg_key[0]; w++) {
        for (int i = 0; i < n && !d->msg_key[0]; i++) {
            GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
            const char *v;
            InternetAddressList *al;
            if (!h || strcasecmp(g_mime_header_get_name(h), verp_headers[w]))
                continue;
            if ((v = g_mime_header_get_value(h)) == NULL ||
                (al = internet_address_list_parse(NULL, v)) == NULL)
                continue;
            int na = internet_address_list_length(al);
            for (int j = 0; j < na && j < 16 && !d->msg_key[0]; j++) {
                InternetAddress *ia = internet_address_list_get_address(al, j);
                const char *addr;
                if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
                    continue;
                addr = internet_address_mailbox_get_addr(
                    INTERNET_ADDRESS_MAILBOX(ia));
                int rc = addr
                             ? dsn_verp_key(addr, d->msg_key, sizeof d->msg_key)
                             : GW_EINVAL;
                if (rc < 0)
                    d->msg_key[0] = 0;
                else
                    d->key_hashed = rc == 1;
            }
            g_object_unref(al);
        }
    }
}

/* Addresses of X-Failed-Recipients (Exim), one entry each. */
static size_t
failed_recipients(GMimeHeaderList *hl, char addrs[][320], size_t max)
{
    int n = hl ? g_mime_header_list_get_count(hl) : 0;
    size_t k = 0;

    if (n > HEADERS_MAX)
        n = HEADERS_MAX;
    for (int i = 0; i < n && k < max; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *v;
        InternetAddressList *al;
        if (!h ||
            strcasecmp(g_mime_header_get_name(h), "X-Failed-Recipients") ||
            (v = g_mime_header_get_value(h)) == NULL ||
            (al = internet_address_list_parse(NULL, v)) == NULL)
            continue;
        for (int j = 0; j < internet_address_list_length(al) && k < max; j++) {
            InternetAddress *ia = internet_address_list_get_address(al, j);
            const char *a;
            if (INTERNET_ADDRESS_IS_MAILBOX(ia) &&
                (a = internet_address_mailbox_get_addr(
                     INTERNET_ADDRESS_MAILBOX(ia))) != NULL &&
                strchr(a, '@'))
                copy_clean(addrs[k++], 320, a, strlen(a));
        }
        g_object_unref(al);
    }
    return k;
}

static int
local_is(const char *addr, const char *name)
{
    size_t n = strlen(name);

    return addr && strncasecmp(addr, name, n) == 0 && addr[n] == '@';
}

/* 1: the bounce says so in its headers (From the mailer daemon,
 * X-Failed-Recipients); 2: only its subject does; 0: neither. */
static int
bounce_signals(GMimeMessage *msg, GMimeHeaderList *hl)
{
    static const char *const subjects[] = { "undeliver",
                                            "delivery status notification",
                                            "delivery failure",
                                            "failure notice",
                                            "returned mail",
                                            "mail delivery failed",
                                            "delivery has failed",
                                            "could not be delivered",
                                            "non-delivery",
                                            "nondeliverable",
                                            "delivery problem",
                                            "unzustellbar",
                                            NULL };
    InternetAddressList *from =
        g_mime_message_get_addresses(msg, GMIME_ADDRESS_TYPE_FROM);
    const char *subj = g_mime_message_get_subject(msg);

    if (hl && g_mime_header_list_contains(hl, "X-Failed-Recipients"))
        return 1;
    for (int i = 0; from && i < internet_address_list_length(from) && i < 4;
         i++) {
        InternetAddress *ia = internet_address_list_get_address(from, i);
        const char *a;
        if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
            continue;
        a = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
        if (local_is(a, "mailer-daemon") || local_is(a, "mailer_daemon") ||
            local_is(a, "postmaster"))
            return 1;
    }
    if (subj && text_says(subj, subjects))
        return 2;
    return 0;
}

static int
is_autoreply(GMimeMessage *msg)
{
    static const char *const subjects[] = { "auto:",
                                            "automatic reply",
                                            "autoreply",
                                            "auto-reply",
                                            "auto reply",
                                            "out of office",
                                            "out of the office",
                                            "abwesenheit",
                                            "vacation",
                                            NULL };
    GMimeObject *o = GMIME_OBJECT(msg);
    const char *v = g_mime_object_get_header(o, "Auto-Submitted");
    const char *subj = g_mime_message_get_subject(msg);

    if (v && starts_ci(v + strspn(v, " \t"), strlen(v + strspn(v, " \t")),
                       "auto-replied"))
        return 1;
    if (g_mime_object_get_header(o, "X-Autoreply") ||
        g_mime_object_get_header(o, "X-Autorespond"))
        return 1;
    if ((v = g_mime_object_get_header(o, "Precedence")) &&
        find_ci(v, strnlen(v, 64), "auto_reply"))
        return 1;
    if (subj) {
        while (is_ws((unsigned char)*subj))
            subj++;
        for (size_t i = 0; subjects[i]; i++)
            if (starts_ci(subj, strlen(subj), subjects[i]))
                return 1;
    }
    return 0;
}

/* The address a text reply is about: "<a@b>" on its line, else the
 * nearest before it. */
static void
text_rcpt(const char *t, const struct reply *r, char *dst, size_t dstlen)
{
    const char *lo = r->line - t > ADDR_LOOKBACK ? r->line - ADDR_LOOKBACK : t;
    const char *best = NULL, *bend = NULL;

    for (const char *p = lo; p < r->line + r->linelen; p++) {
        const char *e, *at = NULL;
        if (*p != '<')
            continue;
        for (e = p + 1; e < r->line + r->linelen && e - p < 320; e++) {
            if (*e == '>' || is_ws((unsigned char)*e) || *e == '<')
                break;
            if (*e == '@')
                at = e;
        }
        if (e >= r->line + r->linelen || *e != '>' || !at || at == p + 1 ||
            at + 1 == e)
            continue;
        if (local_is(p + 1, "mailer-daemon") || local_is(p + 1, "postmaster"))
            continue;
        if (p >= r->line && best && best >= r->line)
            continue; /* keep the first on the reply's line */
        best = p + 1;
        bend = e;
    }
    if (best)
        copy_clean(dst, dstlen, best, (size_t)(bend - best));
}

/* A "Message-ID: <...>" line of a quoted original. */
static void
text_message_id(struct dsn *d, const char *t, size_t n)
{
    for (const char *p = t, *end = t + n; p < end && !d->message_id[0];) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *q = p, *le = eol ? eol : end;
        while (q < le && (is_ws((unsigned char)*q) || *q == '>'))
            q++;
        if (starts_ci(q, (size_t)(le - q), "message-id:")) {
            char line[600];
            size_t m = (size_t)(le - q) - 11;
            if (m >= sizeof line)
                m = sizeof line - 1;
            memcpy(line, q + 11, m);
            line[m] = 0;
            if (strchr(line, '<') && strchr(line, '>'))
                set_message_id(d, line, 0);
        }
        p = eol ? eol + 1 : end;
    }
}

/* Key from the original's Return-Path, else from its Message-ID; a hashed
 * key becomes the key itself when the Message-ID has it. */
static void
key_from_original(struct ctx *x)
{
    struct dsn *d = x->out;
    const char *id = d->message_id, *at;
    char key[sizeof d->msg_key];
    int rc;

    if (!d->msg_key[0] && x->orig_rpath[0]) {
        rc = dsn_verp_key(x->orig_rpath, d->msg_key, sizeof d->msg_key);
        if (rc < 0)
            d->msg_key[0] = 0;
        else
            d->key_hashed = rc == 1;
    }
    if ((d->msg_key[0] && !d->key_hashed) || id[0] != '<' ||
        (at = strrchr(id, '@')) == NULL)
        return;
    rc = token_decode(id + 1, (size_t)(at - id - 1), key, sizeof key);
    if (rc < 0)
        return;
    if (d->msg_key[0]) {
        /* A hashed VERP key: the Message-ID may hold the key itself. */
        gchar *sum;
        if (rc == 1 || (sum = g_compute_checksum_for_string(G_CHECKSUM_SHA256,
                                                            key, -1)) == NULL)
            return;
        rc = strncmp(sum, d->msg_key + 2, 32) == 0 ? 0 : -1;
        g_free(sum);
        if (rc < 0)
            return;
    }
    memcpy(d->msg_key, key, sizeof key);
    d->key_hashed = rc == 1;
}

/* A bounce without a delivery-status part: one entry per X-Failed-
 * Recipients address (or one), status and diagnostic from the text. */
static void
heuristic(struct ctx *x, GMimeHeaderList *hl)
{
    struct dsn *d = x->out;
    char addrs[DSN_RCPT_MAX][320];
    struct reply r = { 0 };
    size_t na = failed_recipients(hl, addrs, DSN_RCPT_MAX), ti = 0;
    int found = 0;

    /* text/plain before text/html */
    for (int pass = 0; pass < 2 && !found; pass++) {
        for (ti = 0; ti < x->ntext; ti++)
            if (x->text[ti].html == pass &&
                (found = text_reply(x->text[ti].data, x->text[ti].len, &r)))
                break;
    }
    for (size_t i = 0; i < (na ? na : 1); i++) {
        struct dsn_rcpt *e = &d->rcpt[d->nrcpt++];
        memset(e, 0, sizeof *e);
        if (na)
            snprintf(e->recipient, sizeof e->recipient, "%s", addrs[i]);
        else if (found)
            text_rcpt(x->text[ti].data, &r, e->recipient, sizeof e->recipient);
        snprintf(e->action, sizeof e->action, "failed");
        e->cls = BOUNCE_UNKNOWN;
        if (!found)
            continue;
        snprintf(e->status, sizeof e->status, "%s", r.enh);
        copy_clean(e->diagnostic, sizeof e->diagnostic, r.line, r.linelen);
        e->cls = bounce_classify_text(r.code, r.enh[0] ? r.enh : NULL,
                                      e->diagnostic);
    }
    for (size_t i = 0; i < x->ntext && !d->message_id[0]; i++)
        if (!x->text[i].html)
            text_message_id(d, x->text[i].data, x->text[i].len);
}

/* ---- entry point ---- */

static int
classify_message(struct ctx *x, GMimeMessage *msg, char *err, size_t errlen)
{
    struct dsn *d = x->out;
    GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(msg));
    int sig;

    key_from_headers(d, hl);
    walk(x, g_mime_message_get_mime_part(msg));
    if (d->is_report) {
        for (size_t i = 0; i < x->ntext && !d->message_id[0]; i++)
            if (!x->text[i].html)
                text_message_id(d, x->text[i].data, x->text[i].len);
        key_from_original(x);
        if (d->nrcpt == 0)
            return fail(err, errlen, GW_ENOTFOUND,
                        "delivery report without a failed or delayed "
                        "recipient");
    } else {
        if (x->not_bounce)
            return fail(err, errlen, GW_ENOTFOUND, "%s report, not a bounce",
                        x->not_bounce_why ? x->not_bounce_why
                                          : "disposition or feedback");
        sig = x->report_ds ? 1 : bounce_signals(msg, hl);
        if (sig != 1 && is_autoreply(msg))
            return fail(err, errlen, GW_ENOTFOUND, "auto-reply, not a bounce");
        if (sig == 0)
            return fail(err, errlen, GW_ENOTFOUND, "not a bounce");
        heuristic(x, hl);
        key_from_original(x);
    }
    if (!d->msg_key[0] && !d->message_id[0])
        return fail(err, errlen, GW_ENOTFOUND,
                    "bounce without a message key or Message-ID");
    return 0;
}

int
dsn_parse(const char *raw, size_t len, struct dsn *out, char *err,
          size_t errlen)
{
    struct ctx x;
    GMimeStream *st = NULL;
    GMimeParser *parser = NULL;
    GMimeMessage *msg = NULL;
    int rc;

    if (err && errlen)
        err[0] = 0;
    if (!out || (!raw && len))
        return fail(err, errlen, GW_EINVAL, "bad arguments");
    memset(out, 0, sizeof *out);
    if (len > DSN_INPUT_MAX)
        return fail(err, errlen, GW_ETOOBIG, "bounce of %zu bytes (max %u)",
                    len, DSN_INPUT_MAX);
    /* An mbox "From " line is not a header. */
    if (len >= 5 && memcmp(raw, "From ", 5) == 0) {
        const char *nl = memchr(raw, '\n', len);
        size_t skip = nl ? (size_t)(nl - raw) + 1 : len;
        raw += skip;
        len -= skip;
    }
    pthread_once(&gmime_once, gmime_start);
    memset(&x, 0, sizeof x);
    x.out = out;
    if ((st = g_mime_stream_mem_new_with_buffer(raw ? raw : "", len)) == NULL ||
        (parser = g_mime_parser_new_with_stream(st)) == NULL) {
        rc = fail(err, errlen, -ENOMEM, "out of memory");
        goto out;
    }
    if ((msg = g_mime_parser_construct_message(parser, NULL)) == NULL) {
        rc = fail(err, errlen, GW_EPARSE, "not a MIME message");
        goto out;
    }
    rc = classify_message(&x, msg, err, errlen);
out:
    for (size_t i = 0; i < x.ntext; i++)
        g_free(x.text[i].data);
    if (msg)
        g_object_unref(msg);
    if (parser)
        g_object_unref(parser);
    if (st)
        g_object_unref(st);
    return rc;
}

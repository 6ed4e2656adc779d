/*
 * mime.c -- the MIME writer (see mime.h): checks every header value, then
 * writes the header block (RFC 5322, RFC 2047 encoded-words, folding) and
 * the part tree (RFC 2045/2046 quoted-printable and base64, RFC 2387
 * multipart/related) straight into a capped buffer. Output bytes depend
 * only on the input, so a retry or the outbox gets the same message.
 */
#include "mime.h"

#include "../common/utf8.h"

#include "../common/b64.h"
#include "../common/err.h"

#include <errno.h>
#include <glib.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define EW_OVERHEAD 12          /* "=?UTF-8?B?" + "?=" */
#define RAW_WORD_MAX 60         /* longer words get encoded, so they fold */
#define KEY_ID_MAX  128         /* escaped key in a Message-ID */

static const char hexd[] = "0123456789ABCDEF";

static int
why(char *reason, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
why(char *reason, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (reason && len) {
        va_start(ap, fmt);
        vsnprintf(reason, len, fmt, ap);
        va_end(ap);
    }
    return GW_EINVAL;
}

/* A name for a character no header may hold, or NULL if it is fine. Every
 * one of these is a line break somewhere (CR, LF, NEL, U+2028/9, VT and FF
 * for Python's splitlines) or invisible trouble (NUL, other controls). */
static const char *
bad_char(uint32_t c, char *tmp, size_t tmplen)
{
    if (c == 0)
        return "NUL";
    if (c == '\r')
        return "CR";
    if (c == '\n')
        return "LF";
    if (c == 0x2028)
        return "LINE SEPARATOR U+2028";
    if (c == 0x2029)
        return "PARAGRAPH SEPARATOR U+2029";
    if ((c < 0x20 && c != '\t') || c == 0x7f || (c >= 0x80 && c < 0xa0)) {
        snprintf(tmp, tmplen, "control character U+%04X", (unsigned)c);
        return tmp;
    }
    return NULL;
}

static const char *
bad_byte(unsigned char c)
{
    return c == 0 ? "NUL" : c == '\r' ? "CR" : c == '\n' ? "LF" : NULL;
}

/* A reader decodes encoded-words it finds in text, so an input holding
 * "=?utf-8?q?=0D=0ABcc:...?=" must be refused even though we would
 * encode it again: check what each one decodes to. */
static int
check_ewords(const char *s, size_t n, const char *what, char *reason,
             size_t len)
{
    for (size_t i = 0; i + 1 < n; i++) {
        size_t j, t, end;
        const char *bad = NULL;
        int enc;

        if (s[i] != '=' || s[i + 1] != '?')
            continue;
        for (j = i + 2; j < n && s[j] != '?'; j++)
            ;
        if (j + 2 >= n || s[j + 2] != '?')
            continue;
        enc = s[j + 1] | 0x20;
        if (enc != 'q' && enc != 'b')
            continue;
        t = j + 3;
        for (end = t; end + 1 < n && !(s[end] == '?' && s[end + 1] == '=');
             end++)
            ;
        if (end + 1 >= n)
            continue;
        if (enc == 'q') {
            for (size_t k = t; k < end && !bad; k++)
                if (s[k] == '=' && k + 2 < end && hex_digit(s[k + 1]) >= 0 &&
                    hex_digit(s[k + 2]) >= 0)
                    bad = bad_byte((unsigned char)(hex_digit(s[k + 1]) * 16 +
                                                   hex_digit(s[k + 2])));
        } else {
            uint32_t acc = 0;
            int bits = 0, v;
            for (size_t k = t; k < end && !bad; k++) {
                if ((v = b64_std_value(s[k])) < 0)
                    continue;
                acc = (acc << 6) | (uint32_t)v;
                if ((bits += 6) >= 8) {
                    bits -= 8;
                    bad = bad_byte((unsigned char)(acc >> bits));
                }
            }
        }
        if (bad)
            return why(reason, len, "%s: an encoded-word in it decodes to %s",
                       what, bad);
        i = end + 1;
    }
    return 0;
}

int
mime_check_text(const char *s, size_t n, const char *what, char *reason,
                size_t reasonlen)
{
    const unsigned char *u = (const unsigned char *)s;
    char tmp[40];
    const char *bad;
    uint32_t cp;
    size_t l;

    for (size_t i = 0; i < n; i += l) {
        if ((l = utf8_decode(u + i, n - i, &cp)) == 0)
            return why(reason, reasonlen, "%s: not valid UTF-8 at byte %zu",
                       what, i);
        if ((bad = bad_char(cp, tmp, sizeof tmp)) != NULL)
            return why(reason, reasonlen, "%s: contains %s", what, bad);
    }
    return check_ewords(s, n, what, reason, reasonlen);
}

static int
is_atext(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* Control characters first, so an injection attempt gets a clear name. */
static int
check_ascii_field(const char *s, const char *what, char *reason, size_t len)
{
    char tmp[40];
    const char *bad;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x80) {
            uint32_t cp;
            size_t l = utf8_decode(p, strlen((const char *)p), &cp);
            if (l && (bad = bad_char(cp, tmp, sizeof tmp)) != NULL)
                return why(reason, len, "%s: contains %s", what, bad);
            continue;
        }
        if ((bad = bad_char(*p, tmp, sizeof tmp)) != NULL ||
            (*p == '\t' && (bad = "TAB") != NULL))
            return why(reason, len, "%s: contains %s", what, bad);
    }
    return 0;
}

static int
check_domain(const char *d, const char *what, char *reason, size_t len)
{
    size_t label = 0;

    if (!*d)
        return why(reason, len, "%s: empty domain", what);
    for (const char *p = d;; p++) {
        if (*p == '.' || !*p) {
            if (label == 0 || p[-1] == '-' || *(p - label) == '-')
                return why(reason, len, "%s: bad domain '%s'", what, d);
            if (!*p)
                break;
            label = 0;
            continue;
        }
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-'))
            return why(reason, len, "%s: bad domain '%s'", what, d);
        if (++label > 63)
            return why(reason, len, "%s: domain label over 63 characters",
                       what);
    }
    return 0;
}

int
mime_check_addr(const char *addr, const char *what, char *reason,
                size_t reasonlen)
{
    const char *at;
    size_t n;
    int rc;

    if (!addr || !*addr)
        return why(reason, reasonlen, "%s: empty address", what);
    if ((rc = check_ascii_field(addr, what, reason, reasonlen)) < 0)
        return rc;
    for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
        if (*p >= 0x80)
            return why(reason, reasonlen, "%s: non-ASCII address (needs "
                       "SMTPUTF8, not supported)", what);
    n = strlen(addr);
    if (n > MIME_ADDR_MAX)
        return why(reason, reasonlen, "%s: address over %d characters", what,
                   MIME_ADDR_MAX);
    if ((at = strrchr(addr, '@')) == NULL)
        return why(reason, reasonlen, "%s: no '@' in address", what);
    if (addr[0] == '"')
        return why(reason, reasonlen, "%s: quoted local parts are not "
                   "supported", what);
    if (at == addr || (size_t)(at - addr) > MIME_LOCAL_MAX)
        return why(reason, reasonlen, "%s: local part empty or over %d "
                   "characters", what, MIME_LOCAL_MAX);
    for (const char *p = addr; p < at; p++) {
        if (*p == '.') {
            if (p == addr || p + 1 == at || p[1] == '.')
                return why(reason, reasonlen, "%s: misplaced dot in local "
                           "part", what);
        } else if (!is_atext((unsigned char)*p)) {
            return why(reason, reasonlen, "%s: character '%c' not allowed "
                       "in local part", what, *p);
        }
    }
    return check_domain(at + 1, what, reason, reasonlen);
}

/* A URI for List-Unsubscribe: printable ASCII, nothing that ends the <>
 * bracket, no %-escape of CR, LF or NUL (a mail client decodes those when
 * it builds the unsubscribe mail). */
static int
check_uri(const char *u, const char *what, char *reason, size_t len)
{
    size_t n = strlen(u);
    int rc;

    if ((rc = check_ascii_field(u, what, reason, len)) < 0)
        return rc;
    if (n > MIME_URL_MAX)
        return why(reason, len, "%s: over %d characters", what, MIME_URL_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '"')
            return why(reason, len, "%s: character 0x%02X not allowed",
                       what, c);
        if (c == '%' && i + 2 < n && hex_digit(u[i + 1]) >= 0 &&
            hex_digit(u[i + 2]) >= 0) {
            const char *bad = bad_byte((unsigned char)(hex_digit(u[i + 1]) * 16 +
                                                       hex_digit(u[i + 2])));
            if (bad)
                return why(reason, len, "%s: %%-escape decodes to %s", what,
                           bad);
        }
    }
    return 0;
}

/* ---- header writing ---- */

struct hw {                     /* a header line being written */
    struct buf *b;
    size_t      col;
    int         fresh;          /* nothing after the colon yet */
};

static int
hw_start(struct hw *h, struct buf *b, const char *name)
{
    h->b = b;
    h->col = strlen(name) + 1;
    h->fresh = 1;
    return buf_printf(b, "%s:", name);
}

/* Put a token that must not be split, preceded by a space or a fold. */
static int
hw_token(struct hw *h, const char *s, size_t n)
{
    int rc;

    if (h->col + 1 + n > MIME_FOLD_AT && !h->fresh) {
        rc = buf_append(h->b, "\r\n ", 3);
        h->col = 1;
    } else {
        rc = buf_putc(h->b, ' ');
        h->col++;
    }
    if (rc == 0)
        rc = buf_append(h->b, s, n);
    h->col += n;
    h->fresh = 0;
    return rc;
}

static int
hw_end(struct hw *h)
{
    return buf_append(h->b, "\r\n", 2);
}

/* Printable ASCII words separated by single spaces, none too long, no
 * "=?" (a reader would try to decode it): safe to write as it is. atext
 * further limits the words to atoms (for phrases). */
static int
raw_ok(const unsigned char *s, size_t n, int atext)
{
    size_t w = 0;

    if (n && (s[0] == ' ' || s[n - 1] == ' '))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            if (s[i - 1] == ' ')
                return 0;
            w = 0;
            continue;
        }
        if (s[i] < 0x21 || s[i] > 0x7e || (atext && !is_atext(s[i])) ||
            (s[i] == '=' && i + 1 < n && s[i + 1] == '?') ||
            ++w > RAW_WORD_MAX)
            return 0;
    }
    return 1;
}

static int
hw_words(struct hw *h, const char *s, size_t n)
{
    size_t i = 0, j;
    int rc;

    while (i < n) {
        for (j = i; j < n && s[j] != ' '; j++)
            ;
        if ((rc = hw_token(h, s + i, j - i)) < 0)
            return rc;
        i = j + 1;
    }
    return 0;
}

/* Characters an encoded-word in a phrase may carry as they are (RFC 2047
 * 5(3)); we use the same set in unstructured text. */
static int
q_safe(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '!' || c == '*' || c == '+' ||
           c == '-' || c == '/' || c == ' ';
}

static size_t
utf8_len(unsigned char c)
{
    return c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

/* The whole text as encoded-words of at most 75 characters, each holding
 * whole characters, folded between words. Q when it is shorter than B. */
static int
hw_ewords(struct hw *h, const unsigned char *s, size_t n)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t qlen = 0, i = 0;
    int use_b, rc;

    for (size_t k = 0; k < n; k++)
        qlen += q_safe(s[k]) ? 1 : 3;
    use_b = qlen > (n + 2) / 3 * 4;
    do {
        size_t room, budget, k = 0, enc = 0;
        char word[MIME_EWORD_MAX + 1], *w = word;

        if (h->col + 1 + 2 * EW_OVERHEAD > MIME_FOLD_AT) {
            if ((rc = buf_append(h->b, "\r\n", 2)) < 0)
                return rc;
            h->col = 0;
        }
        room = MIME_FOLD_AT - h->col - 1;
        if (room > MIME_EWORD_MAX)
            room = MIME_EWORD_MAX;
        budget = room - EW_OVERHEAD;
        if (use_b) {
            k = budget / 4 * 3;
            if (k > n - i)
                k = n - i;
            while (i + k < n && (s[i + k] & 0xc0) == 0x80)
                k--;
        } else {
            while (i + k < n) {
                size_t cl = utf8_len(s[i + k]), e = 0;
                if (cl > n - i - k)
                    cl = n - i - k;
                for (size_t x = 0; x < cl; x++)
                    e += q_safe(s[i + k + x]) ? 1 : 3;
                if (enc + e > budget)
                    break;
                enc += e;
                k += cl;
            }
        }
        memcpy(w, use_b ? "=?UTF-8?B?" : "=?UTF-8?Q?", 10);
        w += 10;
        if (use_b) {
            for (size_t x = 0; x < k; x += 3) {
                uint32_t v = (uint32_t)s[i + x] << 16;
                if (x + 1 < k)
                    v |= (uint32_t)s[i + x + 1] << 8;
                if (x + 2 < k)
                    v |= s[i + x + 2];
                *w++ = b64[v >> 18];
                *w++ = b64[(v >> 12) & 63];
                *w++ = x + 1 < k ? b64[(v >> 6) & 63] : '=';
                *w++ = x + 2 < k ? b64[v & 63] : '=';
            }
        } else {
            for (size_t x = 0; x < k; x++) {
                unsigned char c = s[i + x];
                if (c == ' ') {
                    *w++ = '_';
                } else if (q_safe(c)) {
                    *w++ = (char)c;
                } else {
                    *w++ = '=';
                    *w++ = hexd[c >> 4];
                    *w++ = hexd[c & 15];
                }
            }
        }
        *w++ = '?';
        *w++ = '=';
        if ((rc = buf_putc(h->b, ' ')) < 0 ||
            (rc = buf_append(h->b, word, (size_t)(w - word))) < 0)
            return rc;
        h->col += 1 + (size_t)(w - word);
        h->fresh = 0;
        i += k;
    } while (i < n);
    return 0;
}

/* Unstructured text (Subject, X-Campaign-ID); already checked. */
static int
hw_text(struct hw *h, const char *s)
{
    size_t n = strlen(s);

    if (raw_ok((const unsigned char *)s, n, 0))
        return hw_words(h, s, n);
    return hw_ewords(h, (const unsigned char *)s, n);
}

/* A display name: atoms as they are, other printable ASCII as a quoted
 * string, anything else as encoded-words. */
static int
hw_phrase(struct hw *h, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), q = 2;
    char quoted[2 * RAW_WORD_MAX + 3], *p = quoted;

    if (raw_ok(u, n, 1))
        return hw_words(h, s, n);
    for (size_t i = 0; i < n && q <= RAW_WORD_MAX; i++) {
        if (u[i] < 0x20 || u[i] > 0x7e ||
            (u[i] == '=' && i + 1 < n && u[i + 1] == '?'))
            q = SIZE_MAX;
        else
            q += (u[i] == '"' || u[i] == '\\') ? 2 : 1;
    }
    if (q > RAW_WORD_MAX)
        return hw_ewords(h, u, n);
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        if (u[i] == '"' || u[i] == '\\')
            *p++ = '\\';
        *p++ = (char)u[i];
    }
    *p++ = '"';
    return hw_token(h, quoted, (size_t)(p - quoted));
}

static int
put_mailbox(struct buf *b, const char *hname, const char *name,
            const char *addr)
{
    struct hw h;
    char br[MIME_ADDR_MAX + 3];
    int rc;

    if ((rc = hw_start(&h, b, hname)) < 0)
        return rc;
    if (name && *name) {
        if ((rc = hw_phrase(&h, name)) < 0)
            return rc;
        rc = hw_token(&h, br, (size_t)snprintf(br, sizeof br, "<%s>", addr));
    } else {
        rc = hw_token(&h, addr, strlen(addr));
    }
    return rc < 0 ? rc : hw_end(&h);
}

int
mime_header(struct buf *out, const char *name, const char *value,
            char *reason, size_t reasonlen)
{
    struct hw h;
    int rc;

    if ((rc = mime_check_text(value, strlen(value), name, reason,
                              reasonlen)) < 0 ||
        (rc = hw_start(&h, out, name)) < 0 ||
        (rc = hw_text(&h, value)) < 0)
        return rc;
    return hw_end(&h);
}

/* ---- keys, ids, addresses ---- */

int
mime_key_token(struct buf *out, const char *key, size_t max)
{
    size_t start = out->len, n = strlen(key);
    char last = 0;
    gchar *sum;
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char c = (unsigned char)key[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '_' ||
            (c == '.' && last && last != '.' && i + 1 < n)) {
            rc = buf_putc(out, (char)c);
            last = (char)c;
        } else {
            rc = buf_printf(out, "=%c%c", hexd[c >> 4], hexd[c & 15]);
            last = '=';
        }
        if (out->len - start > max)
            break;
    }
    if (rc < 0 && rc != GW_ETOOBIG)
        return rc;
    if (rc == 0 && n > 0 && out->len - start <= max)
        return 0;
    /* Too long (or empty): a hash of it instead. */
    out->len = start;
    if (out->data)
        out->data[start] = 0;
    if ((sum = g_compute_checksum_for_string(G_CHECKSUM_SHA256, key, -1)) ==
        NULL)
        return -ENOMEM;
    rc = buf_printf(out, "h.%.32s", sum);
    g_free(sum);
    return rc;
}

int
mime_message_id(struct buf *out, const char *key, const char *domain)
{
    int rc;

    if ((rc = buf_putc(out, '<')) < 0 ||
        (rc = mime_key_token(out, key, KEY_ID_MAX)) < 0)
        return rc;
    return buf_printf(out, "@%s>", domain);
}

static char *
trim_dup(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return strndup(s, n);
}

int
mime_mailbox_parse(const char *s, char **name, char **addr, char *reason,
                   size_t reasonlen)
{
    const char *lt, *gt;
    char *nm = NULL, *ad = NULL;
    int rc;

    *name = *addr = NULL;
    if ((rc = check_ascii_field(s, "mailbox", reason, reasonlen)) < 0)
        return rc;
    lt = strrchr(s, '<');
    gt = strrchr(s, '>');
    if (lt && gt > lt) {
        for (const char *p = gt + 1; *p; p++)
            if (*p != ' ' && *p != '\t')
                return why(reason, reasonlen, "mailbox: text after '>'");
        nm = trim_dup(s, (size_t)(lt - s));
        ad = trim_dup(lt + 1, (size_t)(gt - lt - 1));
    } else if (!lt && !gt) {
        ad = trim_dup(s, strlen(s));
    } else {
        return why(reason, reasonlen, "mailbox: unbalanced '<' '>'");
    }
    if (!ad || (lt && !nm)) {
        rc = -ENOMEM;
        goto out;
    }
    if (nm && nm[0] == '"') {
        size_t n = strlen(nm), o = 0;
        if (n < 2 || nm[n - 1] != '"') {
            rc = why(reason, reasonlen, "mailbox: unterminated quoted name");
            goto out;
        }
        for (size_t i = 1; i + 1 < n; i++) {
            if (nm[i] == '\\' && i + 2 < n)
                i++;
            nm[o++] = nm[i];
        }
        nm[o] = 0;
    }
    if (nm && !*nm) {
        free(nm);
        nm = NULL;
    }
    if ((rc = mime_check_addr(ad, "mailbox", reason, reasonlen)) < 0 ||
        (nm && (rc = mime_check_text(nm, strlen(nm), "mailbox name", reason,
                                     reasonlen)) < 0))
        goto out;
    *name = nm;
    *addr = ad;
    return 0;
out:
    free(nm);
    free(ad);
    return rc;
}

/* ---- bodies ---- */

int
mime_qp(struct buf *out, const char *src, size_t n)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t col = 0;
    char *p;
    int rc;

    if (n > (SIZE_MAX - 64) / 4)
        return GW_ETOOBIG;
    /* Worst case: every byte as =XX and a soft break per 25 of those. */
    if ((rc = buf_reserve(out, n * 3 + (n / 25 + 1) * 3)) < 0)
        return rc;
    p = out->data + out->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        size_t need;
        int lit;

        /* Most bytes: printable, not '=', inside a line. */
        if (c > ' ' && c < 0x7f && c != '=' && col > 0 &&
            col < MIME_QP_LINE - 1) {
            *p++ = (char)c;
            col++;
            continue;
        }
        if (c == '\n' || (c == '\r' && i + 1 < n && s[i + 1] == '\n')) {
            i += c == '\r';
            *p++ = '\r';
            *p++ = '\n';
            col = 0;
            continue;
        }
        if (c == ' ' || c == '\t') {
            /* Never at the end of a line: it could be stripped there. */
            size_t j = i + 1;
            lit = j < n && s[j] != '\n' &&
                  !(s[j] == '\r' && j + 1 < n && s[j + 1] == '\n');
        } else {
            lit = c > ' ' && c < 0x7f && c != '=';
        }
        need = lit ? 1 : 3;
        if (col + need > MIME_QP_LINE - 1) {
            *p++ = '=';
            *p++ = '\r';
            *p++ = '\n';
            col = 0;
        }
        /* A line starting "." or "From " is encoded, so no relay's dot
         * handling or mbox quoting can touch it. */
        if (col == 0 && lit &&
            (c == '.' || (c == 'F' && n - i >= 5 &&
                          memcmp(s + i, "From ", 5) == 0))) {
            lit = 0;
            need = 3;
        }
        if (lit) {
            *p++ = (char)c;
        } else {
            *p++ = '=';
            *p++ = hexd[c >> 4];
            *p++ = hexd[c & 15];
        }
        col += need;
    }
    out->len = (size_t)(p - out->data);
    out->data[out->len] = 0;
    return 0;
}

int
mime_base64(struct buf *out, const unsigned char *src, size_t n)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t lines = n / 57 + 1;
    char *p;
    int rc;

    if (n > (SIZE_MAX - 64) / 2)
        return GW_ETOOBIG;
    if ((rc = buf_reserve(out, (n + 2) / 3 * 4 + lines * 2)) < 0)
        return rc;
    p = out->data + out->len;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16;
        if (i && i % 57 == 0) {
            *p++ = '\r';
            *p++ = '\n';
        }
        if (i + 1 < n)
            v |= (uint32_t)src[i + 1] << 8;
        if (i + 2 < n)
            v |= src[i + 2];
        *p++ = b64[v >> 18];
        *p++ = b64[(v >> 12) & 63];
        *p++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        *p++ = i + 2 < n ? b64[v & 63] : '=';
    }
    out->len = (size_t)(p - out->data);
    out->data[out->len] = 0;
    return 0;
}

struct mw {                     /* one mime_build */
    struct buf *b;
    const struct mime_msg *m;
    char tag[17];               /* boundary suffix from the key */
    const char *domain;
};

static int
put_text_part(struct mw *w, const char *subtype, const char *s, size_t n)
{
    int rc;

    if ((rc = buf_printf(w->b, "Content-Type: text/%s; charset=utf-8\r\n"
                         "Content-Transfer-Encoding: quoted-printable\r\n"
                         "\r\n", subtype)) < 0)
        return rc;
    return mime_qp(w->b, s, n);
}

static int
token_ok(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] >= 0x7f || strchr("()<>@,;:\\\"/[]?=", s[i]))
            return 0;
    return 1;
}

static int
content_type_ok(const char *ct)
{
    const char *sl = ct ? strchr(ct, '/') : NULL;

    return sl && token_ok(ct, (size_t)(sl - ct)) &&
           token_ok(sl + 1, strlen(sl + 1));
}

/* name="..." when printable ASCII will do, else RFC 2231 name*=. */
static int
put_param(struct buf *b, const char *attr, const char *v)
{
    const unsigned char *u = (const unsigned char *)v;
    int plain = 1, rc;

    for (size_t i = 0; u[i]; i++)
        if (u[i] < 0x20 || u[i] > 0x7e || u[i] == '"' || u[i] == '\\' ||
            (u[i] == '=' && u[i + 1] == '?'))
            plain = 0;
    if (plain)
        return buf_printf(b, ";\r\n %s=\"%s\"", attr, v);
    if ((rc = buf_printf(b, ";\r\n %s*=utf-8''", attr)) < 0)
        return rc;
    for (size_t i = 0; u[i] && rc == 0; i++) {
        if ((u[i] >= 'a' && u[i] <= 'z') || (u[i] >= 'A' && u[i] <= 'Z') ||
            (u[i] >= '0' && u[i] <= '9') || strchr("!#$&+-.^_`|~", u[i]))
            rc = buf_putc(b, (char)u[i]);
        else
            rc = buf_printf(b, "%%%c%c", hexd[u[i] >> 4], hexd[u[i] & 15]);
    }
    return rc;
}

static int
put_file_part(struct mw *w, const struct content_image *f, int inline_)
{
    const char *ct = "application/octet-stream";
    int rc;

    if (content_type_ok(f->content_type))
        ct = f->content_type;
    if ((rc = buf_printf(w->b, "Content-Type: %s", ct)) < 0 ||
        (f->name && (rc = put_param(w->b, "name", f->name)) < 0) ||
        (rc = buf_puts(w->b, "\r\nContent-Transfer-Encoding: base64\r\n")) <
            0)
        return rc;
    if (inline_ && (rc = buf_printf(w->b, "Content-ID: <%s>\r\n",
                                    f->content_id)) < 0)
        return rc;
    if ((rc = buf_puts(w->b, inline_ ? "Content-Disposition: inline"
                                     : "Content-Disposition: attachment")) <
            0 ||
        (f->name && (rc = put_param(w->b, "filename", f->name)) < 0) ||
        (rc = buf_puts(w->b, "\r\n\r\n")) < 0)
        return rc;
    return mime_base64(w->b, f->data, f->len);
}

static int
multipart_start(struct mw *w, const char *subtype, char level,
                const char *param)
{
    return buf_printf(w->b, "Content-Type: multipart/%s;%s\r\n"
                      " boundary=\"=_gw%c.%s\"\r\n\r\n--=_gw%c.%s\r\n",
                      subtype, param, level, w->tag, level, w->tag);
}

static int
multipart_next(struct mw *w, char level)
{
    return buf_printf(w->b, "\r\n--=_gw%c.%s\r\n", level, w->tag);
}

static int
multipart_end(struct mw *w, char level)
{
    return buf_printf(w->b, "\r\n--=_gw%c.%s--", level, w->tag);
}

static int
put_html(struct mw *w)
{
    const struct mime_msg *m = w->m;
    int rc;

    if (m->nimages == 0)
        return put_text_part(w, "html", m->html, m->html_len);
    if ((rc = multipart_start(w, "related", 'r', " type=\"text/html\";")) <
            0 ||
        (rc = put_text_part(w, "html", m->html, m->html_len)) < 0)
        return rc;
    for (size_t i = 0; i < m->nimages; i++)
        if ((rc = multipart_next(w, 'r')) < 0 ||
            (rc = put_file_part(w, &m->images[i], 1)) < 0)
            return rc;
    return multipart_end(w, 'r');
}

static int
put_alternative(struct mw *w)
{
    const struct mime_msg *m = w->m;
    int rc;

    if (!m->html)
        return put_text_part(w, "plain", m->text, m->text_len);
    if (!m->text)
        return put_html(w);
    if ((rc = multipart_start(w, "alternative", 'a', "")) < 0 ||
        (rc = put_text_part(w, "plain", m->text, m->text_len)) < 0 ||
        (rc = multipart_next(w, 'a')) < 0 || (rc = put_html(w)) < 0)
        return rc;
    return multipart_end(w, 'a');
}

static int
put_body(struct mw *w)
{
    const struct mime_msg *m = w->m;
    int rc;

    if (m->nattachments == 0)
        return put_alternative(w);
    if ((rc = multipart_start(w, "mixed", 'm', "")) < 0 ||
        (rc = put_alternative(w)) < 0)
        return rc;
    for (size_t i = 0; i < m->nattachments; i++)
        if ((rc = multipart_next(w, 'm')) < 0 ||
            (rc = put_file_part(w, &m->attachments[i], 0)) < 0)
            return rc;
    return multipart_end(w, 'm');
}

/* Content-ID: an id-left "@" id-right of atext and dots. */
static int
cid_ok(const char *s)
{
    const char *at = s ? strchr(s, '@') : NULL;

    if (!at || at == s || !at[1] || strlen(s) > 250)
        return 0;
    for (const char *p = s; *p; p++)
        if (p != at && *p != '.' && !is_atext((unsigned char)*p))
            return 0;
    return s[0] != '.' && !strstr(s, "..") && at[-1] != '.' &&
           at[1] != '.' && s[strlen(s) - 1] != '.';
}

static int
check_files(const struct content_image *f, size_t n, int inline_,
            char *reason, size_t len)
{
    int rc;

    for (size_t i = 0; i < n; i++) {
        const char *nm = f[i].name ? f[i].name : "?";
        if (f[i].name &&
            (rc = mime_check_text(f[i].name, strlen(f[i].name),
                                  inline_ ? "image name" : "attachment name",
                                  reason, len)) < 0)
            return rc;
        if (f[i].name && strlen(f[i].name) > 200)
            return why(reason, len, "file name '%.40s...' too long", nm);
        if (inline_ && !cid_ok(f[i].content_id))
            return why(reason, len, "image %s: bad Content-ID", nm);
        if (!f[i].data && f[i].len)
            return why(reason, len, "image %s: no data", nm);
    }
    return 0;
}

static int
put_date(struct buf *b, int64_t t)
{
    static const char *const wd[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
                                      "Fri", "Sat" };
    static const char *const mo[] = { "Jan", "Feb", "Mar", "Apr", "May",
                                      "Jun", "Jul", "Aug", "Sep", "Oct",
                                      "Nov", "Dec" };
    time_t tt = t ? (time_t)t : time(NULL);
    struct tm tm;

    if (!gmtime_r(&tt, &tm))
        return GW_EINVAL;
    return buf_printf(b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n",
                      wd[tm.tm_wday], tm.tm_mday, mo[tm.tm_mon],
                      tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* List-Id: "Name <id>" or a bare id. */
static int
put_list_id(struct buf *b, const char *v, char *reason, size_t len)
{
    const char *lt = strchr(v, '<'), *gt = strrchr(v, '>');
    char *name = NULL, *id = NULL;
    struct hw h;
    int rc;

    if ((rc = mime_check_text(v, strlen(v), "list id", reason, len)) < 0)
        return rc;
    if (lt && gt > lt && gt[1] == 0) {
        name = trim_dup(v, (size_t)(lt - v));
        id = strndup(lt + 1, (size_t)(gt - lt - 1));
    } else {
        id = trim_dup(v, strlen(v));
    }
    if (!id || (lt && !name)) {
        rc = -ENOMEM;
        goto out;
    }
    for (const char *p = id; *p; p++)
        if (*p != '.' && !is_atext((unsigned char)*p)) {
            rc = why(reason, len, "list id: '%s' is not a dot-atom", id);
            goto out;
        }
    if (!*id || strlen(id) > 200) {
        rc = why(reason, len, "list id: empty or too long");
        goto out;
    }
    if ((rc = hw_start(&h, b, "List-Id")) < 0 ||
        (name && *name && (rc = hw_phrase(&h, name)) < 0) ||
        (rc = buf_printf(b, "%s<%s>\r\n",
                         h.col + strlen(id) + 3 > MIME_FOLD_AT ? "\r\n "
                                                                : " ",
                         id)) < 0)
        goto out;
out:
    free(name);
    free(id);
    return rc;
}

static int
put_unsubscribe(struct buf *b, const struct mime_msg *m, char *reason,
                size_t len)
{
    const char *url = m->unsubscribe_url, *mt = m->unsubscribe_mailto;
    int https = 0, rc;
    struct hw h;
    char tok[MIME_URL_MAX + 16];

    if (url && !*url)
        url = NULL;
    if (mt && !*mt)
        mt = NULL;
    if (!url && !mt)
        return 0;
    if (url) {
        if ((rc = check_uri(url, "unsubscribe url", reason, len)) < 0)
            return rc;
        https = strncasecmp(url, "https://", 8) == 0;
        if (!https && strncasecmp(url, "http://", 7) != 0)
            return why(reason, len, "unsubscribe url: not http(s)");
    }
    if (mt && (rc = check_uri(mt, "unsubscribe mailto", reason, len)) < 0)
        return rc;
    if ((rc = hw_start(&h, b, "List-Unsubscribe")) < 0)
        return rc;
    if (url && (rc = hw_token(&h, tok, (size_t)snprintf(tok, sizeof tok,
                                                         "<%s>%s", url,
                                                         mt ? "," : ""))) <
                   0)
        return rc;
    if (mt &&
        (rc = hw_token(&h, tok, (size_t)snprintf(
                                    tok, sizeof tok, "<%s%s>",
                                    strncasecmp(mt, "mailto:", 7) ? "mailto:"
                                                                  : "",
                                    mt))) < 0)
        return rc;
    if ((rc = hw_end(&h)) < 0)
        return rc;
    /* RFC 8058: one-click needs an https URI to POST to. */
    if (m->one_click && https)
        rc = buf_puts(b, "List-Unsubscribe-Post: List-Unsubscribe=One-Click"
                         "\r\n");
    return rc;
}

static void
make_tag(char tag[17], const struct mime_msg *m)
{
    uint64_t h = 0xcbf29ce484222325ull;     /* FNV-1a */
    const char *parts[] = { m->key, m->to_addr, m->subject };

    for (size_t i = 0; i < 3; i++)
        for (const unsigned char *p = (const unsigned char *)parts[i];
             p && *p; p++)
            h = (h ^ *p) * 0x100000001b3ull;
    snprintf(tag, 17, "%016llx", (unsigned long long)h);
}

int
mime_build(struct buf *out, const struct mime_msg *m, char *reason,
           size_t reasonlen)
{
    struct mw w = { out, m, "", m->id_domain };
    const char *subject = m->subject ? m->subject : "";
    size_t subject_len = m->subject && m->subject_len ? m->subject_len
                                                      : strlen(subject);
    struct hw h;
    int rc;

    /* Everything is checked before the first byte is written. */
    if ((rc = mime_check_addr(m->from_addr, "from", reason, reasonlen)) < 0 ||
        (rc = mime_check_addr(m->to_addr, "to", reason, reasonlen)) < 0 ||
        (m->from_name &&
         (rc = mime_check_text(m->from_name, strlen(m->from_name),
                               "from name", reason, reasonlen)) < 0) ||
        (m->to_name &&
         (rc = mime_check_text(m->to_name, strlen(m->to_name), "to name",
                               reason, reasonlen)) < 0) ||
        (rc = mime_check_text(subject, subject_len, "subject", reason,
                              reasonlen)) < 0 ||
        (m->campaign &&
         (rc = mime_check_text(m->campaign, strlen(m->campaign), "campaign",
                               reason, reasonlen)) < 0) ||
        (rc = check_files(m->images, m->html ? m->nimages : 0, 1, reason,
                          reasonlen)) < 0 ||
        (rc = check_files(m->attachments, m->nattachments, 0, reason,
                          reasonlen)) < 0)
        return rc;
    if (!m->key || !*m->key)
        return why(reason, reasonlen, "no message key");
    if (!w.domain || check_domain(w.domain, "message id domain", reason,
                                  reasonlen) < 0)
        return why(reason, reasonlen, "bad message id domain");
    if (!m->text && !m->html)
        return why(reason, reasonlen, "no text or html body");
    if (m->text && memchr(m->text, 0, m->text_len))
        return why(reason, reasonlen, "text body contains NUL");
    if (m->html && memchr(m->html, 0, m->html_len))
        return why(reason, reasonlen, "html body contains NUL");
    make_tag(w.tag, m);

    if ((rc = put_date(out, m->date)) < 0 ||
        (rc = put_mailbox(out, "From", m->from_name, m->from_addr)) < 0 ||
        (rc = put_mailbox(out, "To", m->to_name, m->to_addr)) < 0 ||
        (rc = hw_start(&h, out, "Subject")) < 0 ||
        (rc = hw_text(&h, subject)) < 0 || (rc = hw_end(&h)) < 0 ||
        (rc = buf_puts(out, "Message-ID: ")) < 0 ||
        (rc = mime_message_id(out, m->key, w.domain)) < 0 ||
        (rc = buf_puts(out, "\r\nMIME-Version: 1.0\r\n")) < 0)
        return rc;
    if (m->list_id && *m->list_id &&
        (rc = put_list_id(out, m->list_id, reason, reasonlen)) < 0)
        return rc;
    if ((rc = put_unsubscribe(out, m, reason, reasonlen)) < 0)
        return rc;
    if (m->campaign &&
        ((rc = hw_start(&h, out, "X-Campaign-ID")) < 0 ||
         (rc = hw_text(&h, m->campaign)) < 0 || (rc = hw_end(&h)) < 0))
        return rc;
    if ((rc = put_body(&w)) < 0)
        return rc;
    return buf_append(out, "\r\n", 2);
}

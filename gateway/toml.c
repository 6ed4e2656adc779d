/*
 * toml.c -- TOML 1.0 parser: turns a document into a tree of struct
 * toml_node (see toml.h) that keeps the line and column of every key, so
 * config errors can say file:line:col. Also applies --set overrides
 * (toml_set_path). Checked against the toml-test vectors by
 * tests/unit/test_toml.c and fuzzed by tests/fuzz/fuzz_toml.c.
 *
 * The whole input is checked for UTF-8 and control characters first;
 * TOML allows no raw control character other than tab and newline
 * anywhere, so the parser proper never has to look for them.
 */
#include "toml.h"

#include "../common/utf8.h"
#include "buf.h"
#include "err.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Deepest container below the root (tables, arrays and inline tables all
 * count), so our recursive value parser and any recursive consumer of the
 * tree stay bounded. A key may therefore have at most this many parts.
 */
#define TOML_MAX_DEPTH 64

/* toml_node.flags: how a table or array came to exist. */
enum {
    F_IMPLICIT = 1u << 0,   /* table made as a parent in a [a.b.c] header */
    F_DEFINED  = 1u << 1,   /* table opened by its own [header]/[[header]] */
    F_DOTTED   = 1u << 2,   /* table made by a dotted key: a.b = 1 */
    F_INLINE   = 1u << 3,   /* inline table: closed to any later addition */
    F_AOT      = 1u << 4,   /* array made by [[header]], not a static one */
};

struct keypart {
    char  *s;               /* NUL-terminated, but may also hold NULs */
    size_t len;
    size_t off;             /* where the part starts in the source */
};

struct parser {
    const char        *src;
    size_t             len;
    size_t             pos;
    struct toml_error *err;
    /* where() turns offsets into line/col incrementally from here */
    size_t             wpos;
    int                wline;
    int                wcol;
};

static int parse_value(struct parser *p, struct toml_node *n, int depth);

static void
parser_init(struct parser *p, const char *src, size_t len,
            struct toml_error *err)
{
    p->src = src;
    p->len = len;
    p->pos = 0;
    p->err = err;
    p->wpos = 0;
    p->wline = 1;
    p->wcol = 1;
}

/* 1-based line and column (in characters) of byte offset off. */
static void
where(struct parser *p, size_t off, int *line, int *col)
{
    size_t i;

    if (off > p->len)
        off = p->len;
    if (off < p->wpos) {
        p->wpos = 0;
        p->wline = 1;
        p->wcol = 1;
    }
    for (i = p->wpos; i < off; i++) {
        unsigned char c = (unsigned char)p->src[i];

        if (c == '\n') {
            if (p->wline < INT_MAX)
                p->wline++;
            p->wcol = 1;
        } else if ((c & 0xC0) != 0x80 && p->wcol < INT_MAX) {
            p->wcol++;
        }
    }
    p->wpos = off;
    *line = p->wline;
    *col = p->wcol;
}

/* Record the error at offset off (the first one wins) and return it. */
static int
fail(struct parser *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct parser *p, size_t off, const char *fmt, ...)
{
    va_list ap;

    if (p->err->msg[0] == '\0') {
        where(p, off, &p->err->line, &p->err->col);
        va_start(ap, fmt);
        vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
        va_end(ap);
    }
    return GW_EPARSE;
}

static int
nomem(struct parser *p)
{
    if (p->err->msg[0] == '\0') {
        p->err->line = p->err->col = 0;
        snprintf(p->err->msg, sizeof p->err->msg, "out of memory");
    }
    return -ENOMEM;
}

/* Map a buf error: either memory or the buffer's size cap. */
static int
buf_fail(struct parser *p, int rc, size_t off)
{
    if (rc == -ENOMEM)
        return nomem(p);
    return fail(p, off, "string too long");
}

/*
 * A printable, shortened copy of a key for messages: control characters
 * become '?', and long keys are cut (at a character boundary) with "...".
 */
static const char *
show(char *dst, size_t n, const char *s, size_t len)
{
    size_t i = 0, o = 0;

    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        size_t w = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;

        if (w > len - i)
            w = len - i;
        if (o + w + 4 > n) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        if (c < 0x20 || c == 0x7F) {
            dst[o++] = '?';
        } else {
            memcpy(dst + o, s + i, w);
            o += w;
        }
        i += w;
    }
    dst[o] = '\0';
    return dst;
}

/*
 * Check the whole input: valid UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF) and no control characters except tab, LF and the
 * CR of a CRLF.
 */
static int
check_text(struct parser *p)
{
    const unsigned char *s = (const unsigned char *)p->src;
    size_t i = 0, n = p->len, need, k;
    unsigned c, cp, min;

    while (i < n) {
        c = s[i];
        if (c < 0x80) {
            if (c == '\r') {
                if (i + 1 >= n || s[i + 1] != '\n')
                    return fail(p, i, "carriage return without newline");
                i += 2;
                continue;
            }
            if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7F)
                return fail(p, i, "control character U+%04X not allowed",
                            c);
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            min = 0x10000;
        } else {
            return fail(p, i, "invalid UTF-8");
        }
        cp = c & (0x3Fu >> need);       /* the lead byte's payload bits */
        if (n - i - 1 < need)
            return fail(p, i, "invalid UTF-8");
        for (k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return fail(p, i, "invalid UTF-8");
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return fail(p, i, "invalid UTF-8");
        i += need + 1;
    }
    return 0;
}

static int
peek_at(const struct parser *p, size_t k)
{
    if (p->pos >= p->len || k >= p->len - p->pos)
        return -1;
    return (unsigned char)p->src[p->pos + k];
}

static int
peek(const struct parser *p)
{
    return peek_at(p, 0);
}

static int
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int
is_bare(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           is_digit(c) || c == '_' || c == '-';
}

static void
skip_ws(struct parser *p)
{
    while (p->pos < p->len &&
           (p->src[p->pos] == ' ' || p->src[p->pos] == '\t'))
        p->pos++;
}

/* Skip a comment, if one starts here, up to (not over) the newline. */
static void
skip_comment(struct parser *p)
{
    if (peek(p) != '#')
        return;
    while (p->pos < p->len && p->src[p->pos] != '\n' &&
           p->src[p->pos] != '\r')
        p->pos++;
}

/* Consume LF or CRLF; 1 if there was one. */
static int
eat_newline(struct parser *p)
{
    if (peek(p) == '\n') {
        p->pos++;
        return 1;
    }
    if (peek(p) == '\r' && peek_at(p, 1) == '\n') {
        p->pos += 2;
        return 1;
    }
    return 0;
}

/* Whitespace, comments and newlines, as allowed between array items. */
static void
skip_ws_nl(struct parser *p)
{
    do {
        skip_ws(p);
        skip_comment(p);
    } while (eat_newline(p));
}

static struct toml_node *
node_new(enum toml_type type)
{
    struct toml_node *n = calloc(1, sizeof *n);

    if (n)
        n->type = type;
    return n;
}

static int
has_str(enum toml_type t)
{
    return t != TOML_TABLE && t != TOML_ARRAY && t != TOML_INT &&
           t != TOML_FLOAT && t != TOML_BOOL;
}

/*
 * Next node of a pre-order walk of the subtree under top, or NULL. Only
 * follows child pointers of tables and arrays.
 */
static struct toml_node *
walk_next(struct toml_node *n, const struct toml_node *top)
{
    if ((n->type == TOML_TABLE || n->type == TOML_ARRAY) && n->child)
        return n->child;
    while (n != top) {
        if (n->next)
            return n->next;
        n = n->parent;
    }
    return NULL;
}

/* Link n as the last child of parent. */
static void
append(struct toml_node *parent, struct toml_node *n)
{
    struct toml_node **pp = &parent->child;

    while (*pp)
        pp = &(*pp)->next;
    *pp = n;
    n->parent = parent;
    parent->nchild++;
}

static struct toml_node *
lookup(const struct toml_node *t, const char *key, size_t len)
{
    struct toml_node *c;

    for (c = t->child; c; c = c->next)
        if (c->keylen == len && memcmp(c->key, key, len) == 0)
            return c;
    return NULL;
}

static int
depth_of(const struct toml_node *n)
{
    int d = 0;

    while (n->parent) {
        n = n->parent;
        d++;
    }
    return d;
}

/*
 * A new node keyed by part (whose string it takes over), positioned at
 * the part, appended to parent.
 */
static struct toml_node *
add_keyed(struct parser *p, struct toml_node *parent, struct keypart *part,
          enum toml_type type, unsigned flags)
{
    struct toml_node *n = node_new(type);

    if (n == NULL)
        return NULL;
    n->key = part->s;
    n->keylen = part->len;
    part->s = NULL;
    n->flags = flags;
    where(p, part->off, &n->line, &n->col);
    append(parent, n);
    return n;
}

/* What n is, with an article, for "already defined as ..." messages. */
static const char *
what(const struct toml_node *n)
{
    switch (n->type) {
    case TOML_TABLE:          return "a table";
    case TOML_ARRAY:          return n->flags & F_AOT ? "an array of tables"
                                                      : "a static array";
    case TOML_STRING:         return "a string";
    case TOML_INT:            return "an integer";
    case TOML_FLOAT:          return "a float";
    case TOML_BOOL:           return "a boolean";
    case TOML_DATETIME:       return "an offset date-time";
    case TOML_DATETIME_LOCAL: return "a local date-time";
    case TOML_DATE_LOCAL:     return "a local date";
    case TOML_TIME_LOCAL:     return "a local time";
    }
    return "a value";
}

static void
free_parts(struct keypart *parts, int n)
{
    int i;

    for (i = 0; i < n; i++)
        free(parts[i].s);
}

/* An escape sequence at p->pos (the backslash), appended to b. */
static int
parse_escape(struct parser *p, struct buf *b)
{
    size_t start = p->pos;
    int c = peek_at(p, 1), ndig = 0, i, h, rc;
    unsigned long cp = 0;
    char ch;

    switch (c) {
    case 'b':  ch = '\b'; break;
    case 't':  ch = '\t'; break;
    case 'n':  ch = '\n'; break;
    case 'f':  ch = '\f'; break;
    case 'r':  ch = '\r'; break;
    case '"':  ch = '"'; break;
    case '\\': ch = '\\'; break;
    case 'u':  ndig = 4; ch = 0; break;
    case 'U':  ndig = 8; ch = 0; break;
    default:
        if (c > 0x20 && c < 0x7F)
            return fail(p, start, "invalid escape \\%c", c);
        return fail(p, start, "invalid escape sequence");
    }
    if (ndig == 0) {
        p->pos += 2;
        if ((rc = buf_append(b, &ch, 1)) < 0)
            return buf_fail(p, rc, start);
        return 0;
    }
    for (i = 0; i < ndig; i++) {
        if ((h = hex_digit(peek_at(p, 2 + (size_t)i))) < 0)
            return fail(p, start, "invalid escape \\%c: expected %d hex "
                        "digits", c, ndig);
        cp = cp << 4 | (unsigned long)h;
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return fail(p, start, "escape \\%c%.*s is not a Unicode scalar "
                    "value", c, ndig, p->src + start + 2);
    p->pos += 2 + (size_t)ndig;
    if ((rc = utf8_put(b, (uint32_t)cp)) < 0)
        return buf_fail(p, rc, start);
    return 0;
}

/* Append the plain bytes from p->pos up to one of the stop bytes. */
static int
copy_run(struct parser *p, struct buf *b, const char *stop)
{
    size_t s = p->pos;
    int rc;

    while (p->pos < p->len && strchr(stop, p->src[p->pos]) == NULL)
        p->pos++;
    if ((rc = buf_append(b, p->src + s, p->pos - s)) < 0)
        return buf_fail(p, rc, s);
    return 0;
}

/*
 * The closing run of quotes of a multi-line string at p->pos: up to two
 * quotes may end the content right before the closing three. Returns 1
 * when the string ended, 0 when the quotes were content.
 */
static int
ml_quotes(struct parser *p, struct buf *b, char q, int *rc)
{
    size_t r = 0;

    while (peek_at(p, r) == q)
        r++;
    if (r > 5) {
        *rc = fail(p, p->pos + 5, "unexpected %c after string", q);
        return 1;
    }
    *rc = 0;
    if (r >= 3) {
        if ((*rc = buf_append(b, p->src + p->pos, r - 3)) < 0)
            *rc = buf_fail(p, *rc, p->pos);
        p->pos += r;
        return 1;
    }
    if ((*rc = buf_append(b, p->src + p->pos, r)) < 0)
        *rc = buf_fail(p, *rc, p->pos);
    p->pos += r;
    return *rc < 0;
}

/* "basic string" at p->pos. */
static int
parse_basic(struct parser *p, struct buf *b)
{
    size_t start = p->pos;
    int c, rc;

    p->pos++;
    for (;;) {
        c = peek(p);
        if (c < 0 || c == '\n' || c == '\r')
            return fail(p, start, "unterminated string");
        if (c == '"') {
            p->pos++;
            return 0;
        }
        if (c == '\\')
            rc = parse_escape(p, b);
        else
            rc = copy_run(p, b, "\"\\\r\n");
        if (rc < 0)
            return rc;
    }
}

/* """multi-line basic string""" at p->pos. */
static int
parse_ml_basic(struct parser *p, struct buf *b)
{
    size_t start = p->pos, q;
    int c, rc;

    p->pos += 3;
    eat_newline(p);                     /* a first newline is trimmed */
    for (;;) {
        c = peek(p);
        if (c < 0)
            return fail(p, start, "unterminated multi-line string");
        if (c == '"') {
            if (ml_quotes(p, b, '"', &rc))
                return rc;
            continue;
        }
        if (c == '\\') {
            /* a backslash ending a line trims all whitespace after it */
            q = p->pos + 1;
            while (q < p->len && (p->src[q] == ' ' || p->src[q] == '\t'))
                q++;
            if (q < p->len && (p->src[q] == '\n' || p->src[q] == '\r')) {
                p->pos = q;
                while (p->pos < p->len && strchr(" \t\r\n",
                                                 p->src[p->pos]) != NULL)
                    p->pos++;
                continue;
            }
            rc = parse_escape(p, b);
        } else if (c == '\r') {
            p->pos += 2;                /* check_text: CR only in CRLF */
            rc = buf_putc(b, '\n');
            if (rc < 0)
                rc = buf_fail(p, rc, p->pos);
        } else {
            rc = copy_run(p, b, "\"\\\r");
        }
        if (rc < 0)
            return rc;
    }
}

/* 'literal string' at p->pos. */
static int
parse_literal(struct parser *p, struct buf *b)
{
    size_t start = p->pos;
    int c, rc;

    p->pos++;
    for (;;) {
        c = peek(p);
        if (c < 0 || c == '\n' || c == '\r')
            return fail(p, start, "unterminated string");
        if (c == '\'') {
            p->pos++;
            return 0;
        }
        if ((rc = copy_run(p, b, "'\r\n")) < 0)
            return rc;
    }
}

/* '''multi-line literal string''' at p->pos. */
static int
parse_ml_literal(struct parser *p, struct buf *b)
{
    size_t start = p->pos;
    int c, rc;

    p->pos += 3;
    eat_newline(p);
    for (;;) {
        c = peek(p);
        if (c < 0)
            return fail(p, start, "unterminated multi-line string");
        if (c == '\'') {
            if (ml_quotes(p, b, '\'', &rc))
                return rc;
            continue;
        }
        if (c == '\r') {
            p->pos += 2;
            rc = buf_putc(b, '\n');
            if (rc < 0)
                rc = buf_fail(p, rc, p->pos);
        } else {
            rc = copy_run(p, b, "'\r");
        }
        if (rc < 0)
            return rc;
    }
}

/* Any of the four string forms at p->pos into n. */
static int
parse_string(struct parser *p, struct toml_node *n)
{
    struct buf b;
    char q = p->src[p->pos];
    int ml = peek_at(p, 1) == q && peek_at(p, 2) == q, rc;

    buf_init(&b, 0);
    if (q == '"')
        rc = ml ? parse_ml_basic(p, &b) : parse_basic(p, &b);
    else
        rc = ml ? parse_ml_literal(p, &b) : parse_literal(p, &b);
    if (rc < 0) {
        buf_free(&b);
        return rc;
    }
    n->type = TOML_STRING;
    if ((n->u.str.s = buf_steal(&b, &n->u.str.len)) == NULL)
        return nomem(p);
    return 0;
}

/* ---- keys ---- */

static int
parse_simple_key(struct parser *p, struct keypart *k)
{
    struct buf b;
    size_t s = p->pos;
    int c = peek(p), rc;

    k->off = p->pos;
    if (c == '"' || c == '\'') {
        if (peek_at(p, 1) == c && peek_at(p, 2) == c)
            return fail(p, s, "a multi-line string cannot be a key");
        buf_init(&b, 0);
        rc = c == '"' ? parse_basic(p, &b) : parse_literal(p, &b);
        if (rc < 0) {
            buf_free(&b);
            return rc;
        }
        if ((k->s = buf_steal(&b, &k->len)) == NULL)
            return nomem(p);
        return 0;
    }
    while (p->pos < p->len && is_bare((unsigned char)p->src[p->pos]))
        p->pos++;
    if (p->pos == s)
        return fail(p, s, "expected a key");
    k->len = p->pos - s;
    if ((k->s = malloc(k->len + 1)) == NULL)
        return nomem(p);
    memcpy(k->s, p->src + s, k->len);
    k->s[k->len] = '\0';
    return 0;
}

/*
 * A possibly dotted key, and the whitespace after it. On failure the
 * caller still frees the *n parts already parsed.
 */
static int
parse_key(struct parser *p, struct keypart *parts, int *n)
{
    int rc;

    *n = 0;
    for (;;) {
        if (*n == TOML_MAX_DEPTH)
            return fail(p, p->pos, "key has too many parts");
        if ((rc = parse_simple_key(p, &parts[*n])) < 0)
            return rc;
        (*n)++;
        skip_ws(p);
        if (peek(p) != '.')
            return 0;
        p->pos++;
        skip_ws(p);
    }
}

/* ---- scalars ---- */

/* Digits in base, single underscores allowed between two digits. */
static size_t
scan_digits(const char *s, size_t len, int base)
{
    size_t i;
    int h;

    if (len == 0 || (h = hex_digit((unsigned char)s[0])) < 0 || h >= base)
        return 0;
    for (i = 1; i < len;) {
        if ((h = hex_digit((unsigned char)s[i])) >= 0 && h < base) {
            i++;
        } else if (s[i] == '_' && i + 1 < len &&
                   (h = hex_digit((unsigned char)s[i + 1])) >= 0 && h < base) {
            i += 2;
        } else {
            break;
        }
    }
    return i;
}

/* Accumulate the digits of s (underscores skipped) up to limit. */
static int
to_uint(const char *s, size_t len, int base, uint64_t limit, uint64_t *out)
{
    uint64_t v = 0, d;
    size_t i;

    for (i = 0; i < len; i++) {
        if (s[i] == '_')
            continue;
        d = (uint64_t)hex_digit((unsigned char)s[i]);
        if (v > (limit - d) / (uint64_t)base)
            return -1;
        v = v * (uint64_t)base + d;
    }
    *out = v;
    return 0;
}

static int
parse_number(struct parser *p, struct toml_node *n, size_t start,
             const char *tok, size_t tlen)
{
    const char *r = tok;
    size_t rlen = tlen, ip, j, k, o;
    int neg = 0, base, isfloat = 0;
    uint64_t v;
    char *clean, *end;
    double d;

    if (tok[0] == '+' || tok[0] == '-') {
        neg = tok[0] == '-';
        r++;
        rlen--;
    }
    if (rlen == 3 && (memcmp(r, "inf", 3) == 0 || memcmp(r, "nan", 3) == 0)) {
        n->type = TOML_FLOAT;
        n->u.f = r[0] == 'i' ? (double)INFINITY : (double)NAN;
        if (neg)
            n->u.f = -n->u.f;
        return 0;
    }
    if (rlen > 2 && r[0] == '0' && (r[1] == 'x' || r[1] == 'o' ||
                                    r[1] == 'b')) {
        base = r[1] == 'x' ? 16 : r[1] == 'o' ? 8 : 2;
        if (r != tok)
            return fail(p, start, "a sign is not allowed on a %s integer",
                        base == 16 ? "hex" : base == 8 ? "octal" : "binary");
        if ((k = scan_digits(r + 2, rlen - 2, base)) == 0 || k != rlen - 2)
            return fail(p, start, "invalid %s integer",
                        base == 16 ? "hex" : base == 8 ? "octal" : "binary");
        if (to_uint(r + 2, k, base, INT64_MAX, &v) < 0)
            return fail(p, start, "integer out of range");
        n->type = TOML_INT;
        n->u.i = (int64_t)v;
        return 0;
    }
    if ((ip = scan_digits(r, rlen, 10)) == 0)
        return fail(p, start, "invalid value");
    if (r[0] == '0' && ip > 1)
        return fail(p, start, "leading zeros are not allowed");
    j = ip;
    if (j < rlen && r[j] == '.') {
        if ((k = scan_digits(r + j + 1, rlen - j - 1, 10)) == 0)
            return fail(p, start, "invalid float");
        j += 1 + k;
        isfloat = 1;
    }
    if (j < rlen && (r[j] == 'e' || r[j] == 'E')) {
        j++;
        if (j < rlen && (r[j] == '+' || r[j] == '-'))
            j++;
        if ((k = scan_digits(r + j, rlen - j, 10)) == 0)
            return fail(p, start, "invalid float exponent");
        j += k;
        isfloat = 1;
    }
    if (j != rlen)
        return fail(p, start, "invalid %s", isfloat ? "float" : "value");
    if (!isfloat) {
        if (to_uint(r, rlen, 10, neg ? (uint64_t)INT64_MAX + 1 : INT64_MAX,
                    &v) < 0)
            return fail(p, start, "integer out of range");
        n->type = TOML_INT;
        /* -(v - 1) - 1 reaches INT64_MIN without overflowing */
        n->u.i = neg && v ? -(int64_t)(v - 1) - 1 : (int64_t)v;
        return 0;
    }
    /* syntax checked above; strtod only sees digits, '.', 'e' and signs */
    if ((clean = malloc(tlen + 1)) == NULL)
        return nomem(p);
    for (k = o = 0; k < tlen; k++)
        if (tok[k] != '_')
            clean[o++] = tok[k];
    clean[o] = '\0';
    errno = 0;
    d = strtod(clean, &end);
    k = (size_t)(end - clean);
    free(clean);
    if (k != o)                     /* only if LC_NUMERIC is not "C" */
        return fail(p, start, "invalid float");
    if (errno == ERANGE && isinf(d))
        return fail(p, start, "float out of range");
    n->type = TOML_FLOAT;
    n->u.f = d;
    return 0;
}

static int
two(const char *s)
{
    if (!is_digit((unsigned char)s[0]) || !is_digit((unsigned char)s[1]))
        return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* YYYY-MM-DD shape, without range checks. */
static int
is_date(const char *s, size_t len)
{
    return len >= 10 && two(s) >= 0 && two(s + 2) >= 0 && s[4] == '-' &&
           two(s + 5) >= 0 && s[7] == '-' && two(s + 8) >= 0;
}

/* HH:MM:SS[.frac] at s, with range checks; the length used, or 0. */
static size_t
scan_time(const char *s, size_t len)
{
    size_t i = 8;

    if (len < 8 || two(s) < 0 || two(s) > 23 || s[2] != ':' ||
        two(s + 3) < 0 || two(s + 3) > 59 || s[5] != ':' ||
        two(s + 6) < 0 || two(s + 6) > 60)    /* 60: leap second */
        return 0;
    if (i < len && s[i] == '.') {
        i++;
        if (i >= len || !is_digit((unsigned char)s[i]))
            return 0;
        while (i < len && is_digit((unsigned char)s[i]))
            i++;
    }
    return i;
}

static int
month_days(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30,
                                 31, 31, 30, 31, 30, 31};

    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
        return 29;
    return days[m - 1];
}

/* Store the token as the node's text: 'T' and 'Z' upper case, 'T' for a
 * space separator. */
static int
set_datetime(struct parser *p, struct toml_node *n, enum toml_type type,
             const char *tok, size_t tlen)
{
    size_t i;
    char *s = malloc(tlen + 1);

    if (s == NULL)
        return nomem(p);
    for (i = 0; i < tlen; i++)
        s[i] = tok[i] == 't' || tok[i] == ' ' ? 'T' :
               tok[i] == 'z' ? 'Z' : tok[i];
    s[tlen] = '\0';
    n->type = type;
    n->u.str.s = s;
    n->u.str.len = tlen;
    return 0;
}

static int
parse_datetime(struct parser *p, struct toml_node *n, size_t start,
               const char *tok, size_t tlen)
{
    int y = two(tok) * 100 + two(tok + 2), m = two(tok + 5),
        d = two(tok + 8);
    size_t i, t;

    if (m < 1 || m > 12 || d < 1 || d > month_days(y, m))
        return fail(p, start, "invalid date");
    if (tlen == 10)
        return set_datetime(p, n, TOML_DATE_LOCAL, tok, tlen);
    if (tok[10] != 'T' && tok[10] != 't' && tok[10] != ' ')
        return fail(p, start, "invalid date-time");
    if ((t = scan_time(tok + 11, tlen - 11)) == 0)
        return fail(p, start, "invalid time");
    i = 11 + t;
    if (i == tlen)
        return set_datetime(p, n, TOML_DATETIME_LOCAL, tok, tlen);
    if ((tok[i] == 'Z' || tok[i] == 'z') && i + 1 == tlen)
        return set_datetime(p, n, TOML_DATETIME, tok, tlen);
    if ((tok[i] == '+' || tok[i] == '-') && tlen - i == 6 &&
        two(tok + i + 1) >= 0 && two(tok + i + 1) <= 23 &&
        tok[i + 3] == ':' && two(tok + i + 4) >= 0 &&
        two(tok + i + 4) <= 59)
        return set_datetime(p, n, TOML_DATETIME, tok, tlen);
    return fail(p, start, "invalid date-time offset");
}

static int
is_tok(int c)
{
    return is_bare(c) || c == '+' || c == '.' || c == ':';
}

/* A bare value at p->pos: boolean, number or date/time. */
static int
parse_scalar(struct parser *p, struct toml_node *n)
{
    size_t start = p->pos, end = start, tlen;
    const char *tok = p->src + start;
    int c = peek(p);

    while (end < p->len && is_tok((unsigned char)p->src[end]))
        end++;
    if (end == start) {
        if (c > 0x20 && c < 0x7F)
            return fail(p, start, "expected a value, found '%c'", c);
        return fail(p, start, "expected a value");
    }
    /* a date, a space and a time make one date-time */
    if (end - start == 10 && is_date(tok, 10) && p->len - end > 3 &&
        p->src[end] == ' ' && two(p->src + end + 1) >= 0 &&
        p->src[end + 3] == ':') {
        end++;
        while (end < p->len && is_tok((unsigned char)p->src[end]))
            end++;
    }
    tlen = end - start;
    p->pos = end;
    if (tlen == 4 && memcmp(tok, "true", 4) == 0) {
        n->type = TOML_BOOL;
        n->u.b = 1;
        return 0;
    }
    if (tlen == 5 && memcmp(tok, "false", 5) == 0) {
        n->type = TOML_BOOL;
        n->u.b = 0;
        return 0;
    }
    if (is_date(tok, tlen))
        return parse_datetime(p, n, start, tok, tlen);
    if (tlen >= 3 && two(tok) >= 0 && tok[2] == ':') {
        if (scan_time(tok, tlen) != tlen)
            return fail(p, start, "invalid time");
        return set_datetime(p, n, TOML_TIME_LOCAL, tok, tlen);
    }
    return parse_number(p, n, start, tok, tlen);
}

/* ---- arrays, tables and key/value pairs ---- */

static int
parse_array(struct parser *p, struct toml_node *n, int depth)
{
    struct toml_node *e, *tail = NULL;
    int rc;

    if (depth > TOML_MAX_DEPTH)
        return fail(p, p->pos, "values nested too deeply");
    n->type = TOML_ARRAY;
    p->pos++;
    for (;;) {
        skip_ws_nl(p);
        if (peek(p) == ']') {
            p->pos++;
            return 0;
        }
        if ((e = node_new(TOML_TABLE)) == NULL)
            return nomem(p);
        where(p, p->pos, &e->line, &e->col);
        /* linked before it is filled in, so an error frees it with n */
        e->parent = n;
        if (tail)
            tail->next = e;
        else
            n->child = e;
        tail = e;
        n->nchild++;
        if ((rc = parse_value(p, e, depth + 1)) < 0)
            return rc;
        skip_ws_nl(p);
        if (peek(p) == ',') {
            p->pos++;
            continue;
        }
        if (peek(p) == ']') {
            p->pos++;
            return 0;
        }
        if (peek(p) < 0)
            return fail(p, p->pos, "unterminated array");
        return fail(p, p->pos, "expected ',' or ']' in array");
    }
}

static int parse_keyval(struct parser *p, struct toml_node *t, int depth);

static int
parse_inline(struct parser *p, struct toml_node *n, int depth)
{
    int rc, c;

    if (depth > TOML_MAX_DEPTH)
        return fail(p, p->pos, "values nested too deeply");
    n->type = TOML_TABLE;
    p->pos++;
    skip_ws(p);
    if (peek(p) == '}') {
        p->pos++;
        n->flags |= F_INLINE;
        return 0;
    }
    for (;;) {
        if ((rc = parse_keyval(p, n, depth)) < 0)
            return rc;
        skip_ws(p);
        c = peek(p);
        if (c == ',') {
            p->pos++;
            skip_ws(p);
            if (peek(p) == '}')
                return fail(p, p->pos, "trailing comma in inline table");
            continue;
        }
        if (c == '}') {
            p->pos++;
            n->flags |= F_INLINE;
            return 0;
        }
        if (c < 0)
            return fail(p, p->pos, "unterminated inline table");
        if (c == '\n' || c == '\r')
            return fail(p, p->pos, "newline in inline table");
        return fail(p, p->pos, "expected ',' or '}' in inline table");
    }
}

static int
parse_value(struct parser *p, struct toml_node *n, int depth)
{
    where(p, p->pos, &n->vline, &n->vcol);
    switch (peek(p)) {
    case '"':
    case '\'':
        return parse_string(p, n);
    case '[':
        return parse_array(p, n, depth);
    case '{':
        return parse_inline(p, n, depth);
    default:
        return parse_scalar(p, n);
    }
}

/* key = value, into table t (at the given depth below the root). */
static int
parse_keyval(struct parser *p, struct toml_node *t, int depth)
{
    struct keypart parts[TOML_MAX_DEPTH];
    struct toml_node *c;
    char kb[64];
    int np = 0, i, rc;

    if ((rc = parse_key(p, parts, &np)) < 0)
        goto out;
    if (peek(p) != '=') {
        rc = fail(p, p->pos, "expected '=' after key");
        goto out;
    }
    p->pos++;
    skip_ws(p);
    for (i = 0; i < np - 1; i++) {
        c = lookup(t, parts[i].s, parts[i].len);
        if (c == NULL) {
            if (depth + 1 > TOML_MAX_DEPTH) {
                rc = fail(p, parts[i].off, "tables nested too deeply");
                goto out;
            }
            c = add_keyed(p, t, &parts[i], TOML_TABLE, F_DOTTED);
            if (c == NULL) {
                rc = nomem(p);
                goto out;
            }
        } else if (c->type != TOML_TABLE) {
            rc = fail(p, parts[i].off, "key '%s' is already defined as %s",
                      show(kb, sizeof kb, c->key, c->keylen), what(c));
            goto out;
        } else if ((c->flags & F_INLINE) || !(c->flags & F_DOTTED)) {
            /* only tables made by dotted keys here may be extended so */
            rc = fail(p, parts[i].off, "table '%s' cannot be extended "
                      "with a dotted key",
                      show(kb, sizeof kb, c->key, c->keylen));
            goto out;
        }
        t = c;
        depth++;
    }
    if ((c = lookup(t, parts[np - 1].s, parts[np - 1].len)) != NULL) {
        rc = fail(p, parts[np - 1].off, "duplicate key '%s'",
                  show(kb, sizeof kb, c->key, c->keylen));
        goto out;
    }
    if ((c = add_keyed(p, t, &parts[np - 1], TOML_TABLE, 0)) == NULL) {
        rc = nomem(p);
        goto out;
    }
    rc = parse_value(p, c, depth + 1);
out:
    free_parts(parts, np);
    return rc;
}

/* The last element of an array of tables. */
static struct toml_node *
last_child(struct toml_node *a)
{
    struct toml_node *c = a->child;

    while (c && c->next)
        c = c->next;
    return c;
}

/* [table] or [[array of tables]] at p->pos; *cur becomes that table. */
static int
parse_header(struct parser *p, struct toml_node *root,
             struct toml_node **cur)
{
    struct keypart parts[TOML_MAX_DEPTH];
    struct toml_node *t = root, *c, *e;
    int aot = peek_at(p, 1) == '[', np = 0, i, d = 0, rc;
    char kb[64];
    size_t off;

    p->pos += aot ? 2 : 1;
    skip_ws(p);
    if ((rc = parse_key(p, parts, &np)) < 0)
        goto out;
    if (aot && !(peek(p) == ']' && peek_at(p, 1) == ']')) {
        rc = fail(p, p->pos, "expected ']]' after array of tables name");
        goto out;
    }
    if (!aot && peek(p) != ']') {
        rc = fail(p, p->pos, "expected ']' after table name");
        goto out;
    }
    p->pos += aot ? 2 : 1;
    for (i = 0; i < np - 1; i++) {
        off = parts[i].off;
        c = lookup(t, parts[i].s, parts[i].len);
        if (c == NULL) {
            if (d + 1 > TOML_MAX_DEPTH) {
                rc = fail(p, off, "tables nested too deeply");
                goto out;
            }
            if ((c = add_keyed(p, t, &parts[i], TOML_TABLE,
                               F_IMPLICIT)) == NULL) {
                rc = nomem(p);
                goto out;
            }
        } else if (c->type == TOML_TABLE && (c->flags & F_INLINE)) {
            rc = fail(p, off, "inline table '%s' cannot be extended",
                      show(kb, sizeof kb, c->key, c->keylen));
            goto out;
        } else if (c->type == TOML_ARRAY && (c->flags & F_AOT)) {
            c = last_child(c);          /* [[a]] then [a.b]: the last a */
            d++;
        } else if (c->type != TOML_TABLE) {
            rc = fail(p, off, "key '%s' is already defined as %s",
                      show(kb, sizeof kb, c->key, c->keylen), what(c));
            goto out;
        }
        t = c;
        d++;
    }
    off = parts[np - 1].off;
    c = lookup(t, parts[np - 1].s, parts[np - 1].len);
    if (!aot) {
        if (c == NULL) {
            if (d + 1 > TOML_MAX_DEPTH) {
                rc = fail(p, off, "tables nested too deeply");
                goto out;
            }
            c = add_keyed(p, t, &parts[np - 1], TOML_TABLE, F_DEFINED);
            if (c == NULL) {
                rc = nomem(p);
                goto out;
            }
        } else if (c->type == TOML_TABLE &&
                   !(c->flags & (F_INLINE | F_DOTTED | F_DEFINED))) {
            /* made implicitly by an earlier [x.y]: define it here */
            c->flags = (c->flags & ~(unsigned)F_IMPLICIT) | F_DEFINED;
            where(p, off, &c->line, &c->col);
        } else if (c->type == TOML_TABLE) {
            rc = fail(p, off, "table '%s' already defined",
                      show(kb, sizeof kb, c->key, c->keylen));
            goto out;
        } else {
            rc = fail(p, off, "key '%s' is already defined as %s",
                      show(kb, sizeof kb, c->key, c->keylen), what(c));
            goto out;
        }
        *cur = c;
        goto out;
    }
    if (c == NULL) {
        if (d + 2 > TOML_MAX_DEPTH) {
            rc = fail(p, off, "tables nested too deeply");
            goto out;
        }
        if ((c = add_keyed(p, t, &parts[np - 1], TOML_ARRAY,
                           F_AOT)) == NULL) {
            rc = nomem(p);
            goto out;
        }
    } else if (c->type != TOML_ARRAY || !(c->flags & F_AOT)) {
        rc = fail(p, off, "key '%s' is already defined as %s",
                  show(kb, sizeof kb, c->key, c->keylen), what(c));
        goto out;
    }
    if ((e = node_new(TOML_TABLE)) == NULL) {
        rc = nomem(p);
        goto out;
    }
    e->flags = F_DEFINED;
    where(p, off, &e->line, &e->col);
    append(c, e);
    *cur = e;
out:
    free_parts(parts, np);
    return rc;
}

static int
parse_document(struct parser *p, struct toml_node *root)
{
    struct toml_node *cur = root;
    int c, rc, header;

    if (p->len >= 3 && memcmp(p->src, "\xEF\xBB\xBF", 3) == 0)
        p->pos = 3;                     /* a byte order mark */
    for (;;) {
        skip_ws(p);
        if ((c = peek(p)) < 0)
            return 0;
        header = c == '[';
        if (header)
            rc = parse_header(p, root, &cur);
        else if (c != '#' && c != '\n' && c != '\r')
            rc = parse_keyval(p, cur, depth_of(cur));
        else
            rc = 0;
        if (rc < 0)
            return rc;
        skip_ws(p);
        skip_comment(p);
        if (peek(p) < 0)
            return 0;
        if (!eat_newline(p))
            return fail(p, p->pos, "expected a newline after %s",
                        header ? "table header" : "value");
    }
}

/* ---- public API ---- */

int
toml_parse(struct toml_node **out, const char *src, size_t len,
           struct toml_error *err)
{
    struct toml_error dummy;
    struct toml_node *root;
    struct parser p;
    int rc;

    if (err == NULL)
        err = &dummy;
    memset(err, 0, sizeof *err);
    *out = NULL;
    if (src == NULL)
        len = 0;
    parser_init(&p, src ? src : "", len, err);
    if ((root = node_new(TOML_TABLE)) == NULL)
        return nomem(&p);
    root->line = root->col = 1;
    root->flags = F_DEFINED;
    if ((rc = check_text(&p)) == 0)
        rc = parse_document(&p, root);
    if (rc < 0) {
        toml_free(root);
        return rc;
    }
    *out = root;
    return 0;
}

void
toml_free(struct toml_node *n)
{
    struct toml_node *cur = n, *c, *next;

    /* iterative, so a deep tree cannot exhaust the stack */
    while (cur) {
        if ((cur->type == TOML_TABLE || cur->type == TOML_ARRAY) &&
            cur->child) {
            c = cur->child;
            cur->child = NULL;
            cur = c;
            continue;
        }
        next = cur == n ? NULL : cur->next ? cur->next : cur->parent;
        if (has_str(cur->type))
            free(cur->u.str.s);
        free(cur->key);
        free(cur);
        cur = next;
    }
}

struct toml_node *
toml_get(const struct toml_node *t, const char *key)
{
    if (t == NULL || key == NULL || t->type != TOML_TABLE)
        return NULL;
    return lookup(t, key, strlen(key));
}

int
toml_set_path(struct toml_node *root, const char *path, const char *v,
              struct toml_error *err)
{
    struct keypart parts[TOML_MAX_DEPTH];
    struct toml_error dummy;
    struct toml_node *t = root, *c, *val = NULL, *tmp = NULL, **pp;
    struct parser p;
    size_t vlen;
    char *doc = NULL, kb[64];
    int np = 0, i, rc;

    if (err == NULL)
        err = &dummy;
    memset(err, 0, sizeof *err);
    parser_init(&p, path ? path : "", path ? strlen(path) : 0, err);
    if (root == NULL || root->type != TOML_TABLE || v == NULL) {
        fail(&p, 0, "nothing to set");
        err->line = err->col = 0;
        return GW_EPARSE;
    }
    if ((rc = check_text(&p)) < 0)
        return rc;
    skip_ws(&p);
    if ((rc = parse_key(&p, parts, &np)) < 0)
        goto out;
    if (p.pos != p.len) {
        rc = fail(&p, p.pos, "invalid key path");
        goto out;
    }

    /* parse the value as the document "x = <v>" */
    vlen = strlen(v);
    if ((doc = malloc(vlen + 5)) == NULL) {
        rc = nomem(&p);
        goto out;
    }
    memcpy(doc, "x = ", 4);
    memcpy(doc + 4, v, vlen + 1);
    if ((rc = toml_parse(&tmp, doc, vlen + 4, err)) < 0) {
        if (err->line == 1)             /* columns within v, not doc */
            err->col = err->col > 4 ? err->col - 4 : 1;
        goto out;
    }
    if (tmp->nchild != 1) {
        rc = fail(&p, 0, "expected a single value, not a document");
        err->line = err->col = 0;
        goto out;
    }
    val = tmp->child;
    tmp->child = NULL;
    tmp->nchild = 0;
    val->next = NULL;
    for (c = val; c; c = walk_next(c, val))
        c->line = c->col = 0;

    for (i = 0; i < np - 1; i++) {
        c = lookup(t, parts[i].s, parts[i].len);
        if (c == NULL) {
            parts[i].off = 0;
            if ((c = add_keyed(&p, t, &parts[i], TOML_TABLE,
                               F_IMPLICIT)) == NULL) {
                rc = nomem(&p);
                goto out;
            }
            c->line = c->col = 0;
        } else if (c->type != TOML_TABLE) {
            rc = fail(&p, parts[i].off, "key '%s' is %s, not a table",
                      show(kb, sizeof kb, c->key, c->keylen), what(c));
            goto out;
        }
        t = c;
    }
    free(val->key);
    val->key = parts[np - 1].s;
    val->keylen = parts[np - 1].len;
    parts[np - 1].s = NULL;
    val->parent = t;
    /* replace in place, so the key keeps its place in document order */
    for (pp = &t->child; *pp; pp = &(*pp)->next) {
        if ((*pp)->keylen == val->keylen &&
            memcmp((*pp)->key, val->key, val->keylen) == 0) {
            c = *pp;
            val->next = c->next;
            *pp = val;
            c->next = NULL;
            toml_free(c);
            val = NULL;
            break;
        }
    }
    if (val) {
        append(t, val);
        val = NULL;
    }
    rc = 0;
out:
    toml_free(val);
    toml_free(tmp);
    free(doc);
    free_parts(parts, np);
    return rc;
}

const char *
toml_type_name(enum toml_type t)
{
    switch (t) {
    case TOML_TABLE:          return "table";
    case TOML_ARRAY:          return "array";
    case TOML_STRING:         return "string";
    case TOML_INT:            return "integer";
    case TOML_FLOAT:          return "float";
    case TOML_BOOL:           return "boolean";
    case TOML_DATETIME:       return "offset date-time";
    case TOML_DATETIME_LOCAL: return "local date-time";
    case TOML_DATE_LOCAL:     return "local date";
    case TOML_TIME_LOCAL:     return "local time";
    }
    return "unknown";
}

/*
 * html.c -- the libxml2 side of templates: parse rendered HTML once
 * (HTML_PARSE_NONET, never entities from a DTD, UTF-8 checked first),
 * derive a readable text/plain from the tree, and rewrite it for
 * tracking: every http(s) link through a callback, an open pixel at the
 * end of <body>. The text rules are listed at tpl_html_to_text() in
 * template.h.
 *
 * The text walk is iterative over the tree with a fixed stack of element
 * frames, so a deeply nested document costs no C stack; elements deeper
 * than MAX_FRAMES still give their text but lose their block structure.
 */
#include "template.h"
#include "html_int.h"
#include "err.h"

#include <errno.h>
#include <libxml/HTMLparser.h>
#include <libxml/HTMLtree.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WIDTH       TPL_TEXT_WIDTH
#define MAX_FRAMES  128
#define MAX_INDENT  40
#define PARSE_OPTS  (HTML_PARSE_RECOVER | HTML_PARSE_NOERROR |             \
                     HTML_PARSE_NOWARNING | HTML_PARSE_NONET |             \
                     HTML_PARSE_NODEFDTD | HTML_PARSE_IGNORE_ENC)

/* What an element does to the text. */
enum kind {
    K_INLINE, K_SKIP, K_BLOCK, K_LINE, K_HEADING, K_LIST, K_LI, K_TABLE,
    K_ROW, K_CELL, K_LINK, K_IMG, K_BR, K_PRE, K_QUOTE,
};

static const struct {
    const char *name;
    enum kind kind;
} kinds[] = {
    { "a", K_LINK }, { "address", K_BLOCK }, { "area", K_SKIP },
    { "article", K_BLOCK }, { "aside", K_BLOCK }, { "audio", K_SKIP },
    { "blockquote", K_QUOTE }, { "br", K_BR }, { "button", K_INLINE },
    { "canvas", K_SKIP }, { "caption", K_BLOCK }, { "center", K_BLOCK },
    { "dd", K_LINE }, { "details", K_BLOCK }, { "dialog", K_SKIP },
    { "div", K_BLOCK }, { "dl", K_BLOCK }, { "dt", K_LINE },
    { "embed", K_SKIP }, { "fieldset", K_BLOCK }, { "figcaption", K_BLOCK },
    { "figure", K_BLOCK }, { "footer", K_BLOCK }, { "form", K_BLOCK },
    { "h1", K_HEADING }, { "h2", K_HEADING }, { "h3", K_HEADING },
    { "h4", K_HEADING }, { "h5", K_HEADING }, { "h6", K_HEADING },
    { "head", K_SKIP }, { "header", K_BLOCK }, { "hr", K_BLOCK },
    { "iframe", K_SKIP }, { "img", K_IMG }, { "li", K_LI },
    { "main", K_BLOCK }, { "map", K_SKIP }, { "nav", K_BLOCK },
    { "noscript", K_SKIP }, { "object", K_SKIP }, { "ol", K_LIST },
    { "option", K_LINE }, { "p", K_BLOCK }, { "pre", K_PRE },
    { "script", K_SKIP }, { "section", K_BLOCK }, { "select", K_SKIP },
    { "style", K_SKIP }, { "summary", K_BLOCK }, { "svg", K_SKIP },
    { "table", K_TABLE }, { "td", K_CELL }, { "template", K_SKIP },
    { "textarea", K_SKIP }, { "th", K_CELL }, { "title", K_SKIP },
    { "tr", K_ROW }, { "ul", K_LIST }, { "video", K_SKIP },
    { "xml", K_SKIP },
};

static enum kind
kind_of(const xmlNode *n)
{
    const char *name = (const char *)n->name;
    size_t lo = 0, hi = sizeof(kinds) / sizeof(kinds[0]);

    if (name == NULL)
        return K_INLINE;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(name, kinds[mid].name);

        if (c == 0)
            return kinds[mid].kind;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return K_INLINE;
}

/* An attribute's value, borrowed from the tree ("" if it has none). */
static const char *
attr(const xmlNode *n, const char *name)
{
    const xmlAttr *a;

    for (a = n->properties; a; a = a->next)
        if (a->name && strcasecmp((const char *)a->name, name) == 0)
            return a->children && a->children->content
                       ? (const char *)a->children->content : "";
    return NULL;
}

/* hidden attribute, or display:none in style. */
static int
hidden(const xmlNode *n)
{
    const char *s = attr(n, "style");
    char tmp[16];
    size_t k = 0;

    if (attr(n, "hidden"))
        return 1;
    for (; s && *s; s++) {
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
            continue;
        if (*s == ';') {
            k = 0;
            continue;
        }
        if (k < sizeof(tmp) - 1)
            tmp[k++] = (char)((*s >= 'A' && *s <= 'Z') ? *s + 32 : *s);
        tmp[k] = 0;
        if (k == 12 && memcmp(tmp, "display:none", 12) == 0)
            return 1;
    }
    return 0;
}

/* ---- UTF-8 helpers ---------------------------------------------------- */

/* Decode the (valid) sequence at s; *n gets its length. */
static unsigned
utf8_next(const char *s, size_t len, size_t *n)
{
    const unsigned char *p = (const unsigned char *)s;

    if (p[0] < 0x80 || len < 2) {
        *n = 1;
        return p[0];
    }
    if (p[0] < 0xe0) {
        *n = 2;
        return ((p[0] & 0x1fu) << 6) | (p[1] & 0x3f);
    }
    if (p[0] < 0xf0 && len >= 3) {
        *n = 3;
        return ((p[0] & 0x0fu) << 12) | ((p[1] & 0x3fu) << 6) | (p[2] & 0x3f);
    }
    if (len >= 4) {
        *n = 4;
        return ((p[0] & 0x07u) << 18) | ((p[1] & 0x3fu) << 12) |
               ((p[2] & 0x3fu) << 6) | (p[3] & 0x3f);
    }
    *n = 1;
    return p[0];
}

static unsigned
utf8_width(const char *s, size_t len)
{
    unsigned w = 0;
    size_t i;

    for (i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            w++;
    return w;
}

static int
is_cjk(unsigned c)
{
    return (c >= 0x1100 && c <= 0x11ff) || (c >= 0x2e80 && c <= 0x2fff) ||
           (c >= 0x3001 && c <= 0x303f) || (c >= 0x3040 && c <= 0x31ff) ||
           (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x4e00 && c <= 0x9fff) ||
           (c >= 0xac00 && c <= 0xd7af) || (c >= 0xf900 && c <= 0xfaff) ||
           (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xffef) ||
           (c >= 0x20000 && c <= 0x3ffff);
}

/* Characters a line must not start with (closing marks, small kana). */
static int
no_break_before(unsigned c)
{
    static const unsigned set[] = {
        0x3001, 0x3002, 0x3005, 0x3009, 0x300b, 0x300d, 0x300f, 0x3011,
        0x3015, 0x3041, 0x3043, 0x3045, 0x3047, 0x3049, 0x3063, 0x3083,
        0x3085, 0x3087, 0x30a1, 0x30a3, 0x30a5, 0x30a7, 0x30a9, 0x30c3,
        0x30e3, 0x30e5, 0x30e7, 0x30fb, 0x30fc, 0xff01, 0xff09, 0xff0c,
        0xff0e, 0xff1a, 0xff1b, 0xff1f,
    };
    size_t i;

    if (c < 0x80)
        return strchr(".,;:!?)]}%", (int)c) != NULL && c != 0;
    for (i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        if (set[i] == c)
            return 1;
    return 0;
}

/* ... or end with (opening marks). */
static int
no_break_after(unsigned c)
{
    return c == '(' || c == '[' || c == '{' || c == 0x3008 || c == 0x300a ||
           c == 0x300c || c == 0x300e || c == 0x3010 || c == 0x3014 ||
           c == 0xff08;
}

/* Append s, with every byte that is not valid UTF-8 as U+FFFD. libxml2
 * 2.9.14 cuts DOCTYPE public/system literals by characters counted as
 * bytes, which can split a sequence; nothing invalid may leave here. */
static int
append_clean(struct buf *out, const char *s, size_t n)
{
    size_t bad, from = 0;
    int rc;

    while (tpl_utf8_check(s + from, n - from, &bad) < 0) {
        if ((rc = buf_append(out, s + from, bad)) < 0 ||
            (rc = buf_append(out, "\xef\xbf\xbd", 3)) < 0)
            return rc;
        from += bad + 1;
    }
    return buf_append(out, s + from, n - from);
}

/* ---- the text writer -------------------------------------------------- */

struct tw {
    struct buf *out;
    struct buf word;            /* the word being collected */
    struct buf tmp;             /* link text */
    unsigned col;               /* characters on the current line */
    unsigned indent;            /* left margin of new lines */
    unsigned nl;                /* newlines owed before the next word */
    unsigned trail;             /* newlines at the end of out */
    int space, sep;             /* " " or " | " owed before the next word */
    char bullet[16];            /* owed at the start of the next line */
    unsigned bullet_at;
    int pre;
    int mark_req;               /* a heading wants the next line start */
    size_t mark;
    unsigned long words, blocks;
    int rc;
};

static void
put(struct tw *w, const char *s, size_t n)
{
    struct buf *b = w->out;
    int rc;

    if (n && n < b->cap - b->len && n <= b->max - b->len) {
        memcpy(b->data + b->len, s, n);         /* the common case */
        b->len += n;
        b->data[b->len] = 0;
    } else if (w->rc == 0 && n && (rc = buf_append(b, s, n)) < 0) {
        w->rc = rc;
    }
}

static void
pad(struct tw *w, unsigned n)
{
    static const char sp[MAX_INDENT + 16] = "                                "
                                            "                        ";

    put(w, sp, n < sizeof(sp) ? n : sizeof(sp) - 1);
}

/* End the line: no trailing spaces. */
static void
line_break(struct tw *w)
{
    struct buf *o = w->out;

    while (o->len && (o->data[o->len - 1] == ' ' ||
                      o->data[o->len - 1] == '\t'))
        o->len--;
    put(w, "\n", 1);
    w->col = 0;
    w->trail++;
}

static void
start_line(struct tw *w)
{
    if (w->mark_req) {
        w->mark = w->out->len;
        w->mark_req = 0;
    }
    if (w->bullet[0]) {
        size_t n = strlen(w->bullet);

        pad(w, w->bullet_at);
        put(w, w->bullet, n);
        w->col = w->bullet_at + (unsigned)n;
        w->bullet[0] = 0;
    } else {
        pad(w, w->indent);
        w->col = w->indent;
    }
}

/* Owed newlines, then the margin; returns 1 when at a line start. */
static int
begin(struct tw *w)
{
    unsigned need = w->words ? w->nl : 0;

    while (w->trail < need)
        line_break(w);
    w->nl = 0;
    if (w->col == 0) {
        start_line(w);
        w->space = w->sep = 0;
        return 1;
    }
    return 0;
}

/* The longest prefix of s that fits in room columns and ends where a
 * CJK line may break; 0 if none. */
static size_t
cjk_break(const char *s, size_t n, unsigned room, unsigned *bw)
{
    size_t i = 0, best = 0, k;
    unsigned w = 0, prev = 0, c;

    *bw = 0;
    while (i < n) {
        c = utf8_next(s + i, n - i, &k);
        if (i > 0 && (is_cjk(c) || is_cjk(prev)) && !no_break_before(c) &&
            !no_break_after(prev)) {
            best = i;
            *bw = w;
        }
        if (++w > room)
            break;
        prev = c;
        i += k;
    }
    if (i >= n && w <= room) {  /* all of it fits */
        *bw = w;
        return n;
    }
    return best;
}

static int
has_cjk(const char *s, size_t n)
{
    size_t i, k;

    for (i = 0; i < n && (unsigned char)s[i] < 0xe1; i++)
        ;                       /* nothing below U+1100 is CJK */
    if (i == n)
        return 0;
    for (i = 0; i < n; i += k)
        if (is_cjk(utf8_next(s + i, n - i, &k)))
            return 1;
    return 0;
}

/* Write one word (no spaces inside, except from &nbsp;). */
static void
put_word(struct tw *w, const char *s, size_t n)
{
    unsigned width = utf8_width(s, n), gw = 0, bw;
    const char *gap = "";
    int cjk = has_cjk(s, n);

    if (!begin(w)) {
        gap = w->sep ? " | " : w->space ? " " : "";
        gw = (unsigned)strlen(gap);
    }
    if (gw && w->col + gw + width > WIDTH && w->col > w->indent && !cjk) {
        line_break(w);
        start_line(w);
        gw = 0;
    }
    put(w, gap, gw);
    w->col += gw;
    while (cjk && w->col + width > WIDTH) {
        size_t b = cjk_break(s, n, w->col < WIDTH ? WIDTH - w->col : 0, &bw);

        if (b == 0 || b == n) {
            if (w->col <= w->indent || b == n)
                break;          /* cannot do better than overflow */
            line_break(w);
            start_line(w);
            continue;
        }
        put(w, s, b);
        line_break(w);
        start_line(w);
        s += b, n -= b, width -= bw;
    }
    put(w, s, n);
    w->col += width;
    w->trail = 0;
    w->words++;
    w->space = w->sep = 0;
}

/* Commit the collected word; &nbsp; at its ends counts as a space. */
static void
flush_word(struct tw *w)
{
    const char *s = w->word.data;
    size_t n = w->word.len;
    int lead = 0, trail = 0;

    if (n == 0)
        return;
    while (n && s[0] == ' ')
        s++, n--, lead = 1;
    while (n && s[n - 1] == ' ')
        n--, trail = 1;
    if (lead)
        w->space = 1;
    if (n)
        put_word(w, s, n);
    if (trail)
        w->space = 1;
    buf_reset(&w->word);
}

static void
word_add(struct tw *w, const char *s, size_t n)
{
    struct buf *b = &w->word;
    int rc;

    if (n < b->cap - b->len && n <= b->max - b->len) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
    } else if (w->rc == 0 && (rc = buf_append(b, s, n)) < 0) {
        w->rc = rc;
    }
}

/* Text inside <pre>: kept as is, lines unwrapped. */
static void
pre_text(struct tw *w, const char *s, size_t n)
{
    while (n) {
        const char *nl = memchr(s, '\n', n);
        size_t k = nl ? (size_t)(nl - s) : n;

        if (k && !(k == 1 && s[0] == '\r')) {
            begin(w);
            put(w, s, s[k - 1] == '\r' ? k - 1 : k);
            w->col += utf8_width(s, k);
            w->trail = 0;
            w->words++;
        }
        if (nl) {
            if (w->nl == 0 && w->words)
                line_break(w);
            k++;
        }
        s += k, n -= k;
    }
}

/* Inline text: whitespace collapses, &nbsp; glues, spacers vanish.
 * Ordinary characters are copied a run at a time. */
static void
text(struct tw *w, const char *s, size_t n)
{
    size_t i = 0, run = 0, k;

    if (w->pre) {
        pre_text(w, s, n);
        return;
    }
    while (i < n) {
        unsigned char b = (unsigned char)s[i];
        unsigned c;

        if (b > 0x20 && b < 0x7f) {
            i++;
            continue;
        }
        c = utf8_next(s + i, n - i, &k);
        if (c >= 0x80 && c != 0x85 && c != 0xa0 && c != 0xad && c != 0x34f &&
            c != 0x1680 && c != 0x180e && !(c >= 0x2000 && c <= 0x2060) &&
            c != 0x3000 && c != 0xfeff) {
            i += k;             /* ordinary: part of the run */
            continue;
        }
        if (i > run)
            word_add(w, s + run, i - run);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
            c == 0x85 || c == 0x1680 || (c >= 0x2000 && c <= 0x2006) ||
            (c >= 0x2008 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
            c == 0x205f || c == 0x3000) {
            flush_word(w);
            w->space = 1;
        } else if (c == 0xa0 || c == 0x2007 || c == 0x202f) {
            word_add(w, " ", 1);
        } else if (c == 0xad || c == 0x34f || c == 0x180e ||
                   (c >= 0x200b && c <= 0x200f) || c == 0x2060 ||
                   c == 0xfeff || c < 0x20 || c == 0x7f) {
            /* invisible: soft hyphen, zero-width spaces and joiners */
        } else {
            word_add(w, s + i, k);      /* the rest of U+2000..U+2060 */
        }
        i += k;
        run = i;
    }
    if (i > run)
        word_add(w, s + run, i - run);
}

/* A block boundary: n = 2 blank line, 1 new line. */
static void
block(struct tw *w, unsigned n)
{
    flush_word(w);
    w->blocks++;
    if (w->bullet[0] && n > 1)
        n = 1;                  /* <li><p>: the bullet's line */
    if (w->nl < n)
        w->nl = n;
    w->space = w->sep = 0;
}

/* <br>: end the line; two in a row leave one blank line, no more. */
static void
newline(struct tw *w)
{
    flush_word(w);
    if (w->words && w->trail < 2)
        line_break(w);
    w->space = w->sep = 0;
}

/* ---- link text -------------------------------------------------------- */

/* The visible text of n (with img alt), whitespace collapsed, in tmp. */
static void
link_text(struct tw *w, const xmlNode *n, int depth)
{
    const xmlNode *c;

    for (c = n->children; c; c = c->next) {
        const char *s = NULL;

        if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
            s = (const char *)c->content;
        else if (c->type == XML_ELEMENT_NODE && !hidden(c) &&
                 kind_of(c) != K_SKIP) {
            if (kind_of(c) == K_IMG)
                s = attr(c, "alt");
            else if (depth < 32)
                link_text(w, c, depth + 1);
        }
        for (; s && *s; s++) {
            int ws = *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' ||
                     *s == '\f';

            if (ws && (w->tmp.len == 0 || w->tmp.data[w->tmp.len - 1] == ' '))
                continue;
            if (w->tmp.len < 4096 && buf_putc(&w->tmp, ws ? ' ' : *s) < 0)
                return;
        }
    }
}

/* s without "scheme://" and a trailing '/', for comparing. */
static void
strip_url(const char **s, size_t *n)
{
    const char *p = *s;
    const char *c = memchr(p, ':', *n);

    if (c && (size_t)(c - p) < *n - 2 && c[1] == '/' && c[2] == '/') {
        *n -= (size_t)(c + 3 - p);
        p = c + 3;
    }
    if (*n && p[*n - 1] == '/')
        (*n)--;
    *s = p;
}

static int
same_url(const char *text, size_t tn, const char *url, size_t un)
{
    strip_url(&text, &tn);
    strip_url(&url, &un);
    return tn == un && strncasecmp(text, url, un) == 0;
}

/* Phone numbers compare without spaces, dashes, dots and brackets. */
static int
same_phone(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i = 0, j = 0;

    for (;;) {
        while (i < an && strchr(" -./()", a[i]))
            i++;
        while (j < bn && strchr(" -./()", b[j]))
            j++;
        if (i == an || j == bn)
            return i == an && j == bn;
        if (a[i++] != b[j++])
            return 0;
    }
}

static int
has_scheme(const char *s, const char *scheme)
{
    size_t n = strlen(scheme);

    return strncasecmp(s, scheme, n) == 0;
}

/* ---- the walk --------------------------------------------------------- */

struct frame {
    const xmlNode *node;
    enum kind kind;
    unsigned indent;            /* restored on leave */
    size_t mark;                /* heading */
    unsigned long words, blocks;
    struct frame *row;          /* the enclosing row, restored on leave */
    struct frame *outer;        /* list: the enclosing list */
    unsigned cells, count;      /* row: inline cells; list: items */
    int ordered;
    char *url;                  /* link: shown after the text (owned) */
};

struct walk {
    struct tw w;
    struct frame f[MAX_FRAMES];
    size_t nf;
    struct frame *row;          /* the row being written, or NULL */
    struct frame *list;         /* the innermost list */
};

static void
underline(struct tw *w, size_t from, char ch)
{
    const char *s = w->out->data + from;
    size_t i, n = w->out->len - from;
    unsigned cur = 0, max = 0;

    for (i = 0; i < n; i++) {
        if (s[i] == '\n')
            cur = 0;
        else if (((unsigned char)s[i] & 0xc0) != 0x80 && ++cur > max)
            max = cur;
    }
    if (max == 0)
        return;
    line_break(w);
    for (i = 0; i < max && i < WIDTH; i++)
        put(w, &ch, 1);
    w->col = (unsigned)i;
    w->trail = 0;
}

/* How a link reads. Returns 1 when the url alone was written in place
 * of the children (their text is the url, or they have none); else 0,
 * with *url = "<url>" to write after the children (malloc), or NULL. */
static int
link_url(struct tw *w, const xmlNode *n, char **url)
{
    const char *href = attr(n, "href"), *show;
    size_t len, i, k = 1;
    char *r;

    *url = NULL;
    if (href == NULL)
        return 0;
    while (*href == ' ' || *href == '\t' || *href == '\n' || *href == '\r')
        href++;
    len = strlen(href);
    while (len && (href[len - 1] == ' ' || href[len - 1] == '\n' ||
                   href[len - 1] == '\t' || href[len - 1] == '\r'))
        len--;
    if (len == 0 || href[0] == '#' || has_scheme(href, "javascript:"))
        return 0;
    /* "<" url ">" as a browser would read it: no control characters
     * (tabs and newlines are dropped), spaces as %20 */
    if ((r = malloc(3 * len + 3)) == NULL) {
        w->rc = -ENOMEM;
        return 0;
    }
    r[0] = '<';
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)href[i];

        if (c == ' ')
            memcpy(r + k, "%20", 3), k += 3;
        else if (c >= 0x20 && c != 0x7f)
            r[k++] = (char)c;
    }
    r[k] = 0;
    show = r + 1;
    len = k - 1;
    if (has_scheme(show, "mailto:") || has_scheme(show, "tel:") ||
        has_scheme(show, "sms:")) {
        const char *q = memchr(show, '?', len);

        if (q != NULL)
            len = (size_t)(q - show);
        k = (size_t)((const char *)memchr(show, ':', len) + 1 - show);
        memmove(r + 1, show + k, len - k);
        len -= k;
        if (len == 0) {
            free(r);
            return 0;
        }
    }
    buf_reset(&w->tmp);
    link_text(w, n, 0);
    while (w->tmp.len && w->tmp.data[w->tmp.len - 1] == ' ')
        w->tmp.len--;
    if (w->tmp.len == 0 || same_url(w->tmp.data, w->tmp.len, show, len) ||
        same_url(w->tmp.data, w->tmp.len, href, strlen(href))) {
        text(w, show, len);
        free(r);
        return 1;
    }
    if (has_scheme(href, "tel:") &&
        same_phone(w->tmp.data, w->tmp.len, show, len)) {
        text(w, w->tmp.data, w->tmp.len);       /* the number as written */
        free(r);
        return 1;
    }
    r[len + 1] = '>';
    r[len + 2] = 0;
    *url = r;
    return 0;
}

/* Entering an element: returns 1 to walk its children. */
static int
enter(struct walk *k, const xmlNode *n, struct frame *f)
{
    struct tw *w = &k->w;
    enum kind kd = kind_of(n);
    const char *s;

    if (kd == K_SKIP || hidden(n))
        return 0;
    if (f == NULL) {            /* too deep: text only */
        if (kd == K_BR) {
            newline(w);
            return 0;
        }
        if (kd != K_INLINE && kd != K_LINK && kd != K_IMG && kd != K_CELL)
            block(w, 1);
        if (kd == K_IMG && (s = attr(n, "alt")) != NULL)
            text(w, s, strlen(s));
        return kd != K_IMG;
    }
    memset(f, 0, sizeof(*f));
    f->node = n;
    f->kind = kd;
    f->indent = w->indent;
    f->row = k->row;
    f->words = w->words;
    f->blocks = w->blocks;
    switch (kd) {
    case K_BLOCK:
    case K_TABLE:
        block(w, 2);
        break;
    case K_LINE:
        block(w, 1);
        break;
    case K_QUOTE:
        block(w, 2);
        if (w->indent + 2 <= MAX_INDENT)
            w->indent += 2;
        break;
    case K_PRE:
        block(w, 2);
        w->pre++;
        break;
    case K_HEADING:
        block(w, 2);
        w->mark_req = 1;
        w->mark = SIZE_MAX;
        break;
    case K_LIST:
        block(w, k->list ? 1 : 2);
        f->ordered = n->name[0] == 'o';
        f->outer = k->list;
        k->list = f;
        break;
    case K_LI:
        block(w, 1);
        if (k->list && k->list->ordered)
            snprintf(w->bullet, sizeof(w->bullet), "%u. ",
                     ++k->list->count % 1000000u);
        else
            snprintf(w->bullet, sizeof(w->bullet), "- ");
        w->bullet_at = w->indent;
        if (w->indent + strlen(w->bullet) <= MAX_INDENT)
            w->indent += (unsigned)strlen(w->bullet);
        break;
    case K_ROW:
        flush_word(w);
        if (w->nl < 1)
            w->nl = 1;
        w->space = w->sep = 0;
        k->row = f;
        break;
    case K_CELL:
        flush_word(w);
        if (k->row && w->words > k->row->words)
            w->sep = 1;
        break;
    case K_LINK:
        if (link_url(w, n, &f->url))
            return 0;
        break;
    case K_IMG:
        if ((s = attr(n, "alt")) != NULL)
            text(w, s, strlen(s));
        return 0;
    case K_BR:
        newline(w);
        return 0;
    default:
        break;
    }
    return 1;
}

static void
leave(struct walk *k, struct frame *f)
{
    struct tw *w = &k->w;

    if (f == NULL)
        return;
    switch (f->kind) {
    case K_BLOCK:
    case K_TABLE:
        block(w, 2);
        break;
    case K_LINE:
        block(w, 1);
        break;
    case K_QUOTE:
        block(w, 2);
        w->indent = f->indent;
        break;
    case K_PRE:
        w->pre--;
        block(w, 2);
        break;
    case K_HEADING:
        flush_word(w);
        if (w->words > f->words && w->mark != SIZE_MAX &&
            (f->node->name[1] == '1' || f->node->name[1] == '2'))
            underline(w, w->mark, f->node->name[1] == '1' ? '=' : '-');
        w->mark_req = 0;
        block(w, 2);
        break;
    case K_LIST:
        k->list = f->outer;
        block(w, k->list ? 1 : 2);
        break;
    case K_LI:
        block(w, 1);
        w->bullet[0] = 0;
        w->indent = f->indent;
        break;
    case K_ROW:
        flush_word(w);
        k->row = f->row;
        if (f->cells >= 2 && w->blocks == f->blocks) {
            if (w->nl < 1)
                w->nl = 1;
        } else {
            block(w, 2);
        }
        w->space = w->sep = 0;
        break;
    case K_CELL:
        flush_word(w);
        if (k->row && w->words > f->words)
            k->row->cells++;
        w->space = 1;
        break;
    case K_LINK:
        if (f->url) {
            flush_word(w);
            w->space = 1;
            word_add(w, f->url, strlen(f->url));
            free(f->url);
            f->url = NULL;
        }
        break;
    default:
        break;
    }
}

static int
walk_text(const xmlDoc *doc, struct buf *out)
{
    struct walk *k = calloc(1, sizeof(*k));
    struct tw *w;
    const xmlNode *n;
    size_t depth = 0, start = out->len;
    int rc;

    if (k == NULL)
        return -ENOMEM;
    w = &k->w;
    w->out = out;
    buf_init(&w->word, out->max);
    buf_init(&w->tmp, 8192);
    n = doc ? doc->children : NULL;
    while (n && w->rc == 0) {
        int down = 0;

        if (n->type == XML_ELEMENT_NODE) {
            struct frame *f = depth < MAX_FRAMES ? &k->f[depth] : NULL;

            down = enter(k, n, f);    /* 0: enter did it all */
        } else if ((n->type == XML_TEXT_NODE ||
                    n->type == XML_CDATA_SECTION_NODE) && n->content) {
            text(w, (const char *)n->content, strlen((char *)n->content));
        }
        if (down && n->children) {
            depth++;
            n = n->children;
            continue;
        }
        if (down)
            leave(k, depth < MAX_FRAMES ? &k->f[depth] : NULL);
        while (n && n->next == NULL) {
            n = n->parent;
            if (n == NULL || n->type == XML_DOCUMENT_NODE ||
                n->type == XML_HTML_DOCUMENT_NODE || depth == 0) {
                n = NULL;
                break;
            }
            depth--;
            leave(k, depth < MAX_FRAMES ? &k->f[depth] : NULL);
        }
        if (n)
            n = n->next;
    }
    flush_word(w);
    /* links left open by an error */
    for (depth = 0; depth < MAX_FRAMES; depth++)
        free(k->f[depth].url);
    while (out->len > start && (out->data[out->len - 1] == '\n' ||
                                out->data[out->len - 1] == ' ' ||
                                out->data[out->len - 1] == '\t'))
        out->len--;
    if (w->rc == 0 && out->len > start)
        put(w, "\n", 1);
    if (w->rc == 0 && out->len > start &&
        tpl_utf8_check(out->data + start, out->len - start, NULL) < 0) {
        /* only if libxml2 handed us a broken sequence */
        buf_reset(&w->word);
        if ((w->rc = buf_append(&w->word, out->data + start,
                                out->len - start)) == 0) {
            out->len = start;
            w->rc = append_clean(out, w->word.data, w->word.len);
        }
    }
    if (out->data)
        out->data[out->len] = 0;
    rc = w->rc;
    buf_free(&w->word);
    buf_free(&w->tmp);
    free(k);
    return rc;
}

/* ---- rewriting -------------------------------------------------------- */

static xmlNode *
find_body(xmlNode *n)
{
    for (; n; n = n->next) {
        xmlNode *b;

        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (strcmp((const char *)n->name, "body") == 0)
            return n;
        if (strcmp((const char *)n->name, "html") == 0 &&
            (b = find_body(n->children)) != NULL)
            return b;
    }
    return NULL;
}

static int
rewrite_links(xmlDoc *doc, const struct tpl_render_opts *o,
              struct tpl_error *err)
{
    xmlNode *n = xmlDocGetRootElement(doc);
    struct buf nu;
    int rc = 0;

    buf_init(&nu, 64 * 1024);
    while (n && rc == 0) {
        if (n->type == XML_ELEMENT_NODE &&
            (strcmp((const char *)n->name, "a") == 0 ||
             strcmp((const char *)n->name, "area") == 0)) {
            const char *href = attr(n, "href");

            while (href && (*href == ' ' || *href == '\t' || *href == '\n' ||
                            *href == '\r'))
                href++;
            if (href && (has_scheme(href, "http:") ||
                         has_scheme(href, "https:"))) {
                buf_reset(&nu);
                if ((rc = o->link_cb(href, &nu, o->link_arg)) < 0) {
                    tpl_err_set(err, NULL, 0, 0, "link callback failed: %s",
                                gw_strerror(rc));
                    break;
                }
                if (nu.len && (memchr(nu.data, 0, nu.len) ||
                               xmlSetProp(n, BAD_CAST "href",
                                          BAD_CAST buf_cstr(&nu)) == NULL)) {
                    tpl_err_set(err, NULL, 0, 0, "cannot set link");
                    rc = GW_EINVAL;
                    break;
                }
            }
        }
        if (n->children && n->type == XML_ELEMENT_NODE) {
            n = n->children;
            continue;
        }
        while (n && n->next == NULL)
            n = n->parent && n->parent->type == XML_ELEMENT_NODE ? n->parent
                                                                 : NULL;
        if (n)
            n = n->next;
    }
    buf_free(&nu);
    return rc;
}

static int
add_pixel(xmlDoc *doc, const char *url, struct tpl_error *err)
{
    xmlNode *root = xmlDocGetRootElement(doc);
    xmlNode *body = find_body(root), *img;

    if (body == NULL)
        body = root;
    if (body == NULL || (img = xmlNewDocNode(doc, NULL, BAD_CAST "img",
                                             NULL)) == NULL) {
        tpl_err_set(err, NULL, 0, 0, "cannot add the open pixel");
        return -ENOMEM;
    }
    if (xmlNewProp(img, BAD_CAST "src", BAD_CAST url) == NULL ||
        xmlNewProp(img, BAD_CAST "width", BAD_CAST "1") == NULL ||
        xmlNewProp(img, BAD_CAST "height", BAD_CAST "1") == NULL ||
        xmlNewProp(img, BAD_CAST "alt", BAD_CAST "") == NULL ||
        xmlAddChild(body, img) == NULL) {
        xmlFreeNode(img);
        tpl_err_set(err, NULL, 0, 0, "cannot add the open pixel");
        return -ENOMEM;
    }
    return 0;
}

/* Serialise as UTF-8 (markup escaped, other characters kept). */
static int
dump(xmlDoc *doc, struct buf *out, struct tpl_error *err)
{
    xmlCharEncodingHandler *h = xmlFindCharEncodingHandler("UTF-8");
    xmlOutputBuffer *ob = xmlAllocOutputBuffer(h);
    xmlBuf *b;
    int rc;

    if (ob == NULL) {
        tpl_err_set(err, NULL, 0, 0, "out of memory");
        return -ENOMEM;
    }
    htmlDocContentDumpFormatOutput(ob, doc, "UTF-8", 0);
    xmlOutputBufferFlush(ob);
    b = ob->conv ? ob->conv : ob->buffer;
    if (ob->error) {
        rc = GW_EINVAL;
        tpl_err_set(err, NULL, 0, 0, "cannot serialise the html");
    } else if ((rc = append_clean(out, (const char *)xmlBufContent(b),
                                  xmlBufUse(b))) < 0) {
        tpl_err_set(err, NULL, 0, 0, "rewritten html: %s", gw_strerror(rc));
    }
    xmlOutputBufferClose(ob);
    return rc;
}

int
html_process(const char *html, size_t len, struct buf *text_out,
             const struct tpl_render_opts *rw, struct buf *html_out,
             struct tpl_error *err)
{
    size_t bad, tstart = text_out ? text_out->len : 0;
    xmlDoc *doc = NULL;
    int rc = 0, line, col;

    if (err)
        err->msg[0] = 0;
    if (tpl_utf8_check(html, len, &bad) < 0) {
        tpl_line_col(html, bad, &line, &col);
        tpl_err_set(err, NULL, line, col, "invalid UTF-8 in html");
        return GW_EINVAL;
    }
    if (len > INT_MAX) {
        tpl_err_set(err, NULL, 0, 0, "html too large");
        return GW_ETOOBIG;
    }
    xmlInitParser();
    if (len > 0)
        doc = htmlReadMemory(html, (int)len, NULL, "UTF-8", PARSE_OPTS);
    if (text_out && (rc = walk_text(doc, text_out)) < 0) {
        tpl_err_set(err, NULL, 0, 0, "text/plain: %s", gw_strerror(rc));
        text_out->len = tstart;
        goto out;
    }
    if (html_out == NULL || rw == NULL)
        goto out;
    if (doc == NULL || xmlDocGetRootElement(doc) == NULL) {
        rc = buf_append(html_out, html, len);   /* nothing to rewrite */
        goto out;
    }
    if (rw->link_cb && (rc = rewrite_links(doc, rw, err)) < 0)
        goto out;
    if (rw->pixel_url && (rc = add_pixel(doc, rw->pixel_url, err)) < 0)
        goto out;
    rc = dump(doc, html_out, err);
out:
    if (rc < 0 && err && err->msg[0] == 0)
        tpl_err_set(err, NULL, 0, 0, "%s", gw_strerror(rc));
    if (rc < 0 && text_out)
        text_out->len = tstart;
    if (text_out && text_out->data)
        text_out->data[text_out->len] = 0;
    xmlFreeDoc(doc);
    return rc;
}

int
tpl_html_to_text(const char *html, size_t len, struct buf *out,
                 struct tpl_error *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
    return html_process(html, len, out, NULL, NULL, err);
}

int
tpl_html_rewrite(const char *html, size_t len,
                 const struct tpl_render_opts *o, struct buf *out,
                 struct buf *text_out, struct tpl_error *err)
{
    static const struct tpl_render_opts none;

    if (err)
        memset(err, 0, sizeof(*err));
    return html_process(html, len, text_out, o ? o : &none, out, err);
}

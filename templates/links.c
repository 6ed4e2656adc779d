/*
 * links.c -- click and open tracking on rendered HTML email (links.h):
 * a single-pass scanner that swaps tracked URLs into <a href> and
 * <area href> and adds the open pixel, and a classifier for opens and
 * clicks made by machines rather than people.
 *
 * The scanner copies the input as it is and only replaces the bytes of a
 * rewritten href value, so the marketer's markup, spacing, comments and
 * Outlook conditionals come out untouched. It follows the WHATWG HTML
 * tokenizer where that decides what is a tag and what is an attribute:
 *   - "<" + letter opens a start tag, "</" + letter an end tag; any other
 *     "<" is text. Tag names end at whitespace, "/" or ">".
 *   - Attribute values are "...", '...' or unquoted (up to whitespace or
 *     ">"); a quoted value may hold ">". The first href of a tag counts,
 *     later duplicates do not (browsers drop them).
 *   - <!-- --> comments (also <!--> and --!>), <!DOCTYPE ...>, <? ...>,
 *     other <! ...> and </ + non-letter are skipped to their end;
 *     <![CDATA[ to "]]>" (to ">" when there is none).
 *   - The content of script, style, xmp, iframe, noembed, noframes,
 *     textarea and title is skipped to the matching end tag (for script
 *     with the "<!--" and "<!--<script>" escapes); everything after
 *     <plaintext> is text.
 *   - Input that ends inside a tag, comment or raw-text element is copied
 *     as it is: nothing in it is rewritten.
 * Differences from a browser, all on the side of leaving a link alone:
 * links inside comments are never rewritten (Outlook's <!--[if mso]>
 * VML buttons included); <![CDATA[ is skipped to "]]>" even outside SVG
 * and MathML; there is no tree, so the few places where the tree builder
 * stops the tokenizer from switching to raw text (<title>, <iframe> or
 * <plaintext> inside <select>, <noscript> with scripting on) are read as
 * raw text; a named character reference that is not in our table (we
 * know the legacy Latin-1 set and the ASCII punctuation names) leaves the
 * link untouched rather than guess. Checked against html5lib's tokenizer
 * on generated markup: these are the only differences.
 *
 * Cost: one scan with memchr between tags, two scratch buffers per call
 * (decoded URL, callback output), nothing allocated per link.
 */
#include "links.h"
#include "err.h"
#include "utf8.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

/* ---- characters ------------------------------------------------------- */

static inline int
is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

static inline int
is_alpha(unsigned char c)
{
    return (unsigned)((c | 0x20) - 'a') < 26;
}

static inline int
is_digit(unsigned char c)
{
    return (unsigned)(c - '0') < 10;
}

static inline int
is_alnum(unsigned char c)
{
    return is_alpha(c) || is_digit(c);
}

static inline unsigned char
lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* s (n bytes, any ASCII case) is the lower-case literal lit. */
static int
name_is(const char *s, size_t n, const char *lit)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (lit[i] == 0 || lower((unsigned char)s[i]) != (unsigned char)lit[i])
            return 0;
    return lit[n] == 0;
}

/* ---- character references --------------------------------------------- */

/* The legacy names, valid without ";": U+00A0..U+00FF in order ... */
static const char *const latin1[96] = {
    "nbsp",   "iexcl",  "cent",   "pound",  "curren", "yen",    "brvbar",
    "sect",   "uml",    "copy",   "ordf",   "laquo",  "not",    "shy",
    "reg",    "macr",   "deg",    "plusmn", "sup2",   "sup3",   "acute",
    "micro",  "para",   "middot", "cedil",  "sup1",   "ordm",   "raquo",
    "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc",
    "Atilde", "Auml",   "Aring",  "AElig",  "Ccedil", "Egrave", "Eacute",
    "Ecirc",  "Euml",   "Igrave", "Iacute", "Icirc",  "Iuml",   "ETH",
    "Ntilde", "Ograve", "Oacute", "Ocirc",  "Otilde", "Ouml",   "times",
    "Oslash", "Ugrave", "Uacute", "Ucirc",  "Uuml",   "Yacute", "THORN",
    "szlig",  "agrave", "aacute", "acirc",  "atilde", "auml",   "aring",
    "aelig",  "ccedil", "egrave", "eacute", "ecirc",  "euml",   "igrave",
    "iacute", "icirc",  "iuml",   "eth",    "ntilde", "ograve", "oacute",
    "ocirc",  "otilde", "ouml",   "divide", "oslash", "ugrave", "uacute",
    "ucirc",  "uuml",   "yacute", "thorn",  "yuml",
};

struct named {
    const char *name;
    unsigned cp;
};

/* ... and these (106 in all, as in the WHATWG table) ... */
static const struct named legacy[] = {
    { "amp", '&' },   { "lt", '<' },   { "gt", '>' }, { "quot", '"' },
    { "AMP", '&' },   { "LT", '<' },   { "GT", '>' }, { "QUOT", '"' },
    { "COPY", 0xa9 }, { "REG", 0xae },
};

/* ... and some that need ";": what turns up in URLs and link text. */
static const struct named semi_only[] = {
    { "apos", '\'' },        { "excl", '!' },
    { "num", '#' },          { "dollar", '$' },
    { "percnt", '%' },       { "lpar", '(' },
    { "rpar", ')' },         { "ast", '*' },
    { "midast", '*' },       { "plus", '+' },
    { "comma", ',' },        { "period", '.' },
    { "sol", '/' },          { "colon", ':' },
    { "semi", ';' },         { "equals", '=' },
    { "quest", '?' },        { "commat", '@' },
    { "lsqb", '[' },         { "lbrack", '[' },
    { "bsol", '\\' },        { "rsqb", ']' },
    { "rbrack", ']' },       { "Hat", '^' },
    { "lowbar", '_' },       { "UnderBar", '_' },
    { "grave", '`' },        { "DiacriticalGrave", '`' },
    { "lcub", '{' },         { "lbrace", '{' },
    { "verbar", '|' },       { "vert", '|' },
    { "VerticalLine", '|' }, { "rcub", '}' },
    { "rbrace", '}' },       { "Tab", '\t' },
    { "NewLine", '\n' },     { "ndash", 0x2013 },
    { "mdash", 0x2014 },     { "lsquo", 0x2018 },
    { "rsquo", 0x2019 },     { "ldquo", 0x201c },
    { "rdquo", 0x201d },     { "bull", 0x2022 },
    { "hellip", 0x2026 },    { "euro", 0x20ac },
    { "trade", 0x2122 },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int
lookup(const struct named *t, size_t nt, const char *s, size_t n, unsigned *cp)
{
    size_t i;

    for (i = 0; i < nt; i++)
        if (strncmp(t[i].name, s, n) == 0 && t[i].name[n] == 0) {
            *cp = t[i].cp;
            return 1;
        }
    return 0;
}

/* A legacy name (valid without ";"). */
static int
lookup_legacy(const char *s, size_t n, unsigned *cp)
{
    size_t i;

    if (lookup(legacy, NELEM(legacy), s, n, cp))
        return 1;
    for (i = 0; i < NELEM(latin1); i++)
        if (strncmp(latin1[i], s, n) == 0 && latin1[i][n] == 0) {
            *cp = 0xa0 + (unsigned)i;
            return 1;
        }
    return 0;
}

/* Numeric references to C1 controls mean windows-1252 (0: keep). */
static const unsigned short cp1252[32] = {
    0x20ac, 0,      0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
    0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017d, 0,
    0,      0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
    0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0,      0x017e, 0x0178,
};

/* The character reference at s[0] == '&' (n bytes), as the tokenizer
 * reads it inside an attribute value. Returns the bytes it takes, with
 * the code point in *cp; 0 when the '&' is a literal; -1 for a named
 * reference we do not know (the caller leaves the link alone). */
static long
char_ref(const char *s, size_t n, unsigned *cp)
{
    size_t i = 1, k;

    if (n > 2 && s[1] == '#') {
        unsigned long v = 0;
        int hex = (s[2] == 'x' || s[2] == 'X');
        size_t start;

        i = hex ? 3 : 2;
        start = i;
        for (; i < n; i++) {
            int d = hex ? hex_digit((unsigned char)s[i])
                        : (is_digit((unsigned char)s[i]) ? s[i] - '0' : -1);

            if (d < 0)
                break;
            v = v * (hex ? 16 : 10) + (unsigned)d;
            if (v > 0x10ffff)
                v = 0x110000; /* stays out of range */
        }
        if (i == start)
            return 0; /* "&#" or "&#x" alone */
        if (i < n && s[i] == ';')
            i++;
        if (v == 0 || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
            v = 0xfffd;
        else if (v >= 0x80 && v <= 0x9f && cp1252[v - 0x80])
            v = cp1252[v - 0x80];
        *cp = (unsigned)v;
        return (long)i;
    }
    while (i < n && is_alnum((unsigned char)s[i]))
        i++;
    k = i - 1; /* the name's length */
    if (k == 0)
        return 0;
    if (i < n && s[i] == ';') {
        if (lookup_legacy(s + 1, k, cp) ||
            lookup(semi_only, NELEM(semi_only), s + 1, k, cp))
            return (long)i + 1;
        return -1;
    }
    /* Without ";" only a whole legacy name not followed by "=" counts
     * (in an attribute a longer run of letters, or "=", keeps it
     * literal: "?a=1&copy=2" stays as written). */
    if ((i < n && s[i] == '=') || !lookup_legacy(s + 1, k, cp))
        return 0;
    return (long)i;
}

/* ---- the rewriter ----------------------------------------------------- */

struct rw {
    const char *s;
    size_t n;
    size_t done; /* s[0..done) is in out */
    struct buf *out;
    const char *skip;
    size_t skip_len;
    links_url_cb *cb;
    void *arg;
    const char *pixel;
    int pixel_done;
    int index;
    struct buf url; /* the decoded href */
    struct buf rep; /* what cb made of it */
    int rc;
};

/* A tag as scan_tag() found it; offsets into the input. */
struct tag {
    size_t name, name_len;
    int href;      /* 0 none, 1 without a value, 2 with one */
    size_t rs, re; /* the bytes to replace (quotes included) */
    size_t vs, ve; /* the value */
};

static void
put(struct rw *w, const char *p, size_t n)
{
    int rc;

    if (w->rc == 0 && n && (rc = buf_append(w->out, p, n)) < 0)
        w->rc = rc;
}

/* Copy the input up to offset to. */
static void
flush(struct rw *w, size_t to)
{
    if (to > w->done) {
        put(w, w->s + w->done, to - w->done);
        w->done = to;
    }
}

/* Write p with "&" and '"' escaped for a double-quoted attribute. */
static void
put_escaped(struct rw *w, const char *p, size_t n)
{
    size_t i, run = 0;

    for (i = 0; i < n; i++) {
        if (p[i] != '&' && p[i] != '"')
            continue;
        put(w, p + run, i - run);
        if (p[i] == '&')
            put(w, "&amp;", 5);
        else
            put(w, "&quot;", 6);
        run = i + 1;
    }
    put(w, p + run, n - run);
}

static void
put_pixel(struct rw *w)
{
    static const char tail[] =
        "\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">";

    put(w, "<img src=\"", 10);
    put_escaped(w, w->pixel, strlen(w->pixel));
    put(w, tail, sizeof(tail) - 1);
    w->pixel_done = 1;
}

/* Scan the tag whose name starts at p (just after "<" or "</"). Returns
 * the offset just past its ">", or 0 when the input ends inside it.
 * want_href: note the first href attribute in t. */
static size_t
scan_tag(const char *s, size_t n, size_t p, int want_href, struct tag *t)
{
    t->name = p;
    while (p < n && !is_ws((unsigned char)s[p]) && s[p] != '/' && s[p] != '>')
        p++;
    t->name_len = p - t->name;
    t->href = 0;
    for (;;) {
        size_t an, al, rs, re, vs, ve;
        int is_href;

        while (p < n && (is_ws((unsigned char)s[p]) || s[p] == '/'))
            p++;
        if (p >= n)
            return 0;
        if (s[p] == '>')
            return p + 1;
        an = p++; /* a leading "=" is part of it */
        while (p < n && !is_ws((unsigned char)s[p]) && s[p] != '/' &&
               s[p] != '>' && s[p] != '=')
            p++;
        al = p - an;
        is_href =
            want_href && t->href == 0 && al == 4 && name_is(s + an, 4, "href");
        while (p < n && is_ws((unsigned char)s[p]))
            p++;
        if (p >= n)
            return 0;
        if (s[p] != '=') { /* no value */
            if (is_href)
                t->href = 1;
            continue;
        }
        p++;
        while (p < n && is_ws((unsigned char)s[p]))
            p++;
        if (p >= n)
            return 0;
        if (s[p] == '"' || s[p] == '\'') {
            const char *q = memchr(s + p + 1, s[p], n - p - 1);

            if (q == NULL)
                return 0;
            rs = p;
            vs = p + 1;
            ve = (size_t)(q - s);
            re = ve + 1;
            p = re;
        } else if (s[p] == '>') { /* "href=>": an empty value */
            if (is_href)
                t->href = 1;
            continue;
        } else {
            rs = vs = p;
            while (p < n && !is_ws((unsigned char)s[p]) && s[p] != '>')
                p++;
            ve = re = p;
        }
        if (is_href) {
            t->href = 2;
            t->rs = rs, t->re = re, t->vs = vs, t->ve = ve;
        }
    }
}

/* Past the ">" that ends a bogus comment or DOCTYPE from p; n if none. */
static size_t
skip_to_gt(const char *s, size_t n, size_t p)
{
    const char *q = p < n ? memchr(s + p, '>', n - p) : NULL;

    return q ? (size_t)(q - s) + 1 : n;
}

/* After "<!" at p: a comment, CDATA, DOCTYPE or bogus comment. */
static size_t
skip_decl(const char *s, size_t n, size_t p)
{
    if (n - p >= 2 && s[p] == '-' && s[p + 1] == '-') {
        size_t q;

        p += 2;
        if (p < n && s[p] == '>')
            return p + 1; /* <!--> */
        if (n - p >= 2 && s[p] == '-' && s[p + 1] == '>')
            return p + 2; /* <!---> */
        for (q = p; q < n; q++) {
            const char *g = memchr(s + q, '>', n - q);

            if (g == NULL)
                return n;
            q = (size_t)(g - s);
            if (q >= p + 2 && s[q - 1] == '-' && s[q - 2] == '-')
                return q + 1; /* --> */
            if (q >= p + 3 && s[q - 1] == '!' && s[q - 2] == '-' &&
                s[q - 3] == '-')
                return q + 1; /* --!> */
        }
        return n;
    }
    if (n - p >= 7 && memcmp(s + p, "[CDATA[", 7) == 0) {
        const char *e = memmem(s + p + 7, n - p - 7, "]]>", 3);

        if (e)
            return (size_t)(e - s) + 3;
    }
    return skip_to_gt(s, n, p);
}

/* Elements whose content holds no tags. */
static const char *const raw_text[] = {
    "script",  "style",    "xmp",      "iframe",
    "noembed", "noframes", "textarea", "title",
};

static const char *
raw_name(const char *s, size_t n)
{
    size_t i;

    if (n < 3 || n > 8)
        return NULL;
    for (i = 0; i < NELEM(raw_text); i++)
        if (name_is(s, n, raw_text[i]))
            return raw_text[i];
    return NULL;
}

/* The "<" of the end tag </name> from p, or n. */
static size_t
find_end_tag(const char *s, size_t n, size_t p, const char *name)
{
    size_t k = strlen(name);

    while (p < n) {
        const char *lt = memchr(s + p, '<', n - p);
        size_t q;

        if (lt == NULL)
            break;
        q = (size_t)(lt - s);
        if (n - q > k + 2 && s[q + 1] == '/' && name_is(s + q + 2, k, name) &&
            (is_ws((unsigned char)s[q + 2 + k]) || s[q + 2 + k] == '/' ||
             s[q + 2 + k] == '>'))
            return q;
        p = q + 1;
    }
    return n;
}

/* "script" (any case) at s[p], then whitespace, "/" or ">". */
static int
script_tag_at(const char *s, size_t n, size_t p)
{
    return n - p > 6 && name_is(s + p, 6, "script") &&
           (is_ws((unsigned char)s[p + 6]) || s[p + 6] == '/' ||
            s[p + 6] == '>');
}

/* The "<" of the </script> that ends script data from p, or n. Inside
 * "<!--" (escaped) a </script> still ends it, but after a further
 * <script> (double-escaped) it only returns to escaped; "-->" goes back
 * to plain script data from either. */
static size_t
script_end(const char *s, size_t n, size_t p)
{
    enum { DATA, ESC, DESC } st = DATA;
    size_t mark = p; /* where the dashes of "-->" may start */

    while (p < n) {
        if (st == DATA) {
            const char *lt = memchr(s + p, '<', n - p);

            if (lt == NULL)
                break;
            p = (size_t)(lt - s);
            if (n - p > 1 && s[p + 1] == '/' && script_tag_at(s, n, p + 2))
                return p;
            if (n - p >= 4 && memcmp(s + p, "<!--", 4) == 0) {
                st = ESC;
                mark = p + 2; /* "<!-->" closes at once */
                p += 4;
            } else {
                p++;
            }
            continue;
        }
        if (s[p] == '>' && p >= mark + 2 && s[p - 1] == '-' &&
            s[p - 2] == '-') {
            st = DATA;
        } else if (s[p] == '<' && n - p > 1 && s[p + 1] == '/' &&
                   script_tag_at(s, n, p + 2)) {
            if (st == ESC)
                return p;
            st = ESC; /* </script> ends the double escape */
            p += 9;
            mark = p;
            continue;
        } else if (s[p] == '<' && st == ESC && script_tag_at(s, n, p + 1)) {
            st = DESC;
            p += 8;
            mark = p;
            continue;
        }
        p++;
    }
    return n;
}

/* Leftovers of a template language that did not run: Mustache and
 * Handlebars, Jinja, ERB/ASP, ${...}, Mailchimp *|...|*, SFMC %%...%%,
 * Template Toolkit [% %], and encoded {{ }}. Never valid in a URL. */
static int
looks_templated(const char *u, size_t n)
{
    static const char pairs[][3] = {
        "{{", "}}", "{%", "%}", "<%", "%>", "${", "*|", "|*", "%%", "[%", "%]",
    };
    size_t i, j;

    for (i = 0; i + 1 < n; i++) {
        if (!strchr("{}%<$*|[", u[i]) || u[i] == 0)
            continue;
        for (j = 0; j < NELEM(pairs); j++)
            if (u[i] == pairs[j][0] && u[i + 1] == pairs[j][1])
                return 1;
        if (u[i] == '%' && n - i >= 6 &&
            (strncasecmp(u + i, "%7b%7b", 6) == 0 ||
             strncasecmp(u + i, "%7d%7d", 6) == 0))
            return 1;
    }
    return 0;
}

/* Decode the href value v (n bytes) into w->url as a browser would follow
 * it. 1: offer it to the callback; 0: leave the link; <0: error. */
static int
take_url(struct rw *w, const char *v, size_t n)
{
    struct buf *u = &w->url;
    size_t i = 0, run = 0, a, b, k;
    char *d;
    int rc = 0;

    buf_reset(u);
    while (i < n && rc == 0) {
        const char *amp = memchr(v + i, '&', n - i);
        unsigned cp;
        long used;

        if (amp == NULL)
            break;
        i = (size_t)(amp - v);
        if ((used = char_ref(v + i, n - i, &cp)) < 0)
            return 0;
        if (used == 0) {
            i++;
            continue;
        }
        if ((rc = buf_append(u, v + run, i - run)) == 0)
            rc = utf8_put(u, cp);
        i += (size_t)used;
        run = i;
    }
    if (rc == 0)
        rc = buf_append(u, v + run, n - run);
    if (rc < 0)
        return rc == GW_ETOOBIG ? 0 : rc;
    if (u->len == 0 || memchr(u->data, 0, u->len))
        return 0;
    /* The URL parser drops leading and trailing C0 controls and spaces,
     * and every tab, CR and LF. */
    d = u->data;
    for (a = 0; a < u->len && (unsigned char)d[a] <= 0x20; a++)
        ;
    for (b = u->len; b > a && (unsigned char)d[b - 1] <= 0x20; b--)
        ;
    for (k = 0, i = a; i < b; i++)
        if (d[i] != '\t' && d[i] != '\n' && d[i] != '\r')
            d[k++] = d[i];
    u->len = k;
    d[k] = 0;
    if (!((k > 5 && strncasecmp(d, "http:", 5) == 0) ||
          (k > 6 && strncasecmp(d, "https:", 6) == 0)))
        return 0;
    if (w->skip_len == k && memcmp(d, w->skip, k) == 0)
        return 0;
    return !looks_templated(d, k);
}

static void
track_link(struct rw *w, const struct tag *t)
{
    struct buf *r = &w->rep;
    int rc;

    if ((rc = take_url(w, w->s + t->vs, t->ve - t->vs)) <= 0) {
        if (rc < 0)
            w->rc = rc;
        return;
    }
    buf_reset(r);
    if (w->cb(w->arg, w->url.data, w->url.len, w->index++, r) < 0 ||
        r->len == 0 || memchr(r->data, 0, r->len))
        return;
    flush(w, t->rs);
    put(w, "\"", 1);
    put_escaped(w, r->data, r->len);
    put(w, "\"", 1);
    w->done = t->re;
}

static void
scan(struct rw *w)
{
    const char *s = w->s;
    size_t n = w->n, i = 0, e;
    struct tag t;

    while (w->rc == 0 && i < n) {
        const char *lt = memchr(s + i, '<', n - i);
        const char *raw;
        unsigned char c;

        if (lt == NULL || (i = (size_t)(lt - s)) + 1 >= n)
            break;
        c = (unsigned char)s[i + 1];
        if (is_alpha(c)) {
            if ((e = scan_tag(s, n, i + 1, w->cb != NULL, &t)) == 0)
                break; /* ends inside the tag */
            if (t.href == 2 && (name_is(s + t.name, t.name_len, "a") ||
                                name_is(s + t.name, t.name_len, "area")))
                track_link(w, &t);
            if (name_is(s + t.name, t.name_len, "plaintext"))
                break;
            raw = raw_name(s + t.name, t.name_len);
            if (raw == raw_text[0])
                i = script_end(s, n, e);
            else
                i = raw ? find_end_tag(s, n, e, raw) : e;
        } else if (c == '/') {
            if (i + 2 >= n)
                break;
            if (!is_alpha((unsigned char)s[i + 2])) {
                i = skip_to_gt(s, n, i + 2); /* </> and bogus */
                continue;
            }
            if ((e = scan_tag(s, n, i + 2, 0, &t)) == 0)
                break;
            if (w->pixel && !w->pixel_done &&
                name_is(s + t.name, t.name_len, "body")) {
                flush(w, i);
                put_pixel(w);
            }
            i = e;
        } else if (c == '!') {
            i = skip_decl(s, n, i + 2);
        } else if (c == '?') {
            i = skip_to_gt(s, n, i + 2);
        } else {
            i++;
        }
    }
    flush(w, n);
    if (w->pixel && !w->pixel_done)
        put_pixel(w);
}

int
links_rewrite(const char *html, size_t len, const char *skip_url,
              links_url_cb *cb, void *arg, const char *pixel_url,
              struct buf *out)
{
    struct rw w = {
        .s = html,
        .n = len,
        .out = out,
        .cb = cb,
        .arg = arg,
        .skip = skip_url ? skip_url : "",
        .pixel = pixel_url && *pixel_url ? pixel_url : NULL,
    };
    size_t start = out->len, want = len + len / 8 + 256;

    if (html == NULL && len)
        return GW_EINVAL;
    w.skip_len = strlen(w.skip);
    buf_init(&w.url, LINKS_URL_MAX);
    buf_init(&w.rep, LINKS_URL_MAX);
    if (want > len && want <= out->max - out->len)
        (void)buf_reserve(out, want); /* one allocation, usually */
    if (len)
        scan(&w);
    else if (w.pixel)
        put_pixel(&w);
    buf_free(&w.url);
    buf_free(&w.rep);
    if (w.rc < 0) {
        out->len = start;
        if (out->data)
            out->data[start] = 0;
    }
    return w.rc;
}

/* ---- machine opens and clicks ----------------------------------------- */

/*
 * Rules, any one of which makes a hit a machine's:
 *
 * time:open, time:click -- an open within LINKS_OPEN_MIN_MS (2 s) or a
 *   click within LINKS_CLICK_MIN_MS (5 s) of our hand-over to the
 *   receiving server. The mail still has to pass the provider's filters
 *   and reach a screen; a person who is waiting for it needs a few
 *   seconds more to open it, and more still to find and press a link.
 *   Gateways that scan on delivery (Microsoft Safe Links, Mimecast,
 *   Proofpoint, Barracuda) fetch every link and image in that window.
 *
 * ua:empty -- no User-Agent (or only spaces): every browser and mail
 *   client sends one; scripts and some scanners do not.
 * ua:apple-mpp -- exactly "Mozilla/5.0" (any version, nothing after):
 *   what Apple Mail Privacy Protection's prefetch sends; no browser or
 *   mail client sends so little.
 * ua:<token> -- the User-Agent contains one of the tokens in ua_rules
 *   below (case-insensitive): image proxies that fetch on the provider's
 *   side (Gmail, Yahoo), link previewers (Bing, Teams/Skype, Facebook,
 *   WhatsApp), Office's link checks that come before the real browser
 *   request, mail security gateways, HTTP libraries and headless
 *   browsers, and anything that calls itself a bot, spider or crawler
 *   (but not Cubot phones). Deliberately absent: "ms-office"/"MSOffice"
 *   (classic Outlook's own image requests, a person opening the mail),
 *   okhttp and Dalvik (Android mail apps loading images).
 *
 * ip:apple -- 17.0.0.0/8 (and Apple's 2620:149::/32, 2a01:b740::/32):
 *   Apple's own network, from which MPP prefetches come. Private Relay's
 *   partner ranges are not listed: people browse through them.
 * ip:microsoft-eop -- Exchange Online Protection's published mail ranges
 *   (SPF of spf.protection.outlook.com): Safe Links and attachment
 *   scanning run there; nobody browses from them.
 */

struct ua_rule {
    const char *token; /* lower case */
    const char *rule;
};

static const struct ua_rule ua_rules[] = {
    /* image proxies: the provider fetches, not the reader */
    { "googleimageproxy", "ua:gmail-proxy" },
    { "ggpht.com", "ua:gmail-proxy" },
    { "yahoomailproxy", "ua:yahoo-proxy" },
    /* link previews and Office link checks */
    { "bingpreview", "ua:bing-preview" },
    { "microsoftpreview", "ua:microsoft-preview" },
    { "skypeuripreview", "ua:skype-preview" },
    { "existence discovery", "ua:office-discovery" },
    { "protocol discovery", "ua:office-discovery" },
    { "facebookexternalhit", "ua:link-preview" },
    { "whatsapp/", "ua:link-preview" },
    /* mail security gateways */
    { "barracuda", "ua:scanner" },
    { "mimecast", "ua:scanner" },
    { "proofpoint", "ua:scanner" },
    { "urldefense", "ua:scanner" },
    { "symantec", "ua:scanner" },
    { "messagelabs", "ua:scanner" },
    { "zscaler", "ua:scanner" },
    /* HTTP libraries and headless browsers */
    { "curl/", "ua:library" },
    { "wget/", "ua:library" },
    { "python", "ua:library" },
    { "go-http-client", "ua:library" },
    { "java/", "ua:library" },
    { "libwww", "ua:library" },
    { "apache-httpclient", "ua:library" },
    { "node-fetch", "ua:library" },
    { "axios/", "ua:library" },
    { "headless", "ua:headless" },
    { "phantomjs", "ua:headless" },
    /* self-declared robots */
    { "spider", "ua:bot" },
    { "crawl", "ua:bot" },
    { "scanner", "ua:bot" },
};

struct net4 {
    uint32_t net;
    unsigned bits;
    const char *rule;
};

#define IP4(a, b, c, d)                                                        \
    (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) |    \
     (uint32_t)(d))

static const struct net4 nets4[] = {
    { IP4(17, 0, 0, 0), 8, "ip:apple" },
    { IP4(40, 92, 0, 0), 15, "ip:microsoft-eop" },
    { IP4(40, 107, 0, 0), 16, "ip:microsoft-eop" },
    { IP4(52, 100, 0, 0), 15, "ip:microsoft-eop" },
    { IP4(52, 102, 0, 0), 16, "ip:microsoft-eop" },
    { IP4(52, 103, 0, 0), 17, "ip:microsoft-eop" },
    { IP4(104, 47, 0, 0), 17, "ip:microsoft-eop" },
};

struct net6 {
    unsigned char net[6];
    unsigned bits; /* at most 48 */
    const char *rule;
};

static const struct net6 nets6[] = {
    { { 0x26, 0x20, 0x01, 0x49 }, 32, "ip:apple" },
    { { 0x2a, 0x01, 0xb7, 0x40 }, 32, "ip:apple" },
    { { 0x2a, 0x01, 0x01, 0x11, 0xf4, 0x00 }, 48, "ip:microsoft-eop" },
    { { 0x2a, 0x01, 0x01, 0x11, 0xf4, 0x03 }, 48, "ip:microsoft-eop" },
};

static const char *
ip_rule(const char *ip)
{
    unsigned char a[16];
    uint32_t v4;
    size_t i;

    if (ip == NULL || *ip == 0)
        return NULL;
    if (inet_pton(AF_INET, ip, a) == 1) {
        v4 = IP4(a[0], a[1], a[2], a[3]);
    } else if (inet_pton(AF_INET6, ip, a) == 1) {
        static const unsigned char mapped[12] = { 0, 0, 0, 0, 0,    0,
                                                  0, 0, 0, 0, 0xff, 0xff };

        if (memcmp(a, mapped, 12) != 0) {
            for (i = 0; i < NELEM(nets6); i++)
                if (memcmp(a, nets6[i].net, nets6[i].bits / 8) == 0)
                    return nets6[i].rule;
            return NULL;
        }
        v4 = IP4(a[12], a[13], a[14], a[15]);
    } else {
        return NULL;
    }
    for (i = 0; i < NELEM(nets4); i++)
        if ((v4 >> (32 - nets4[i].bits)) ==
            (nets4[i].net >> (32 - nets4[i].bits)))
            return nets4[i].rule;
    return NULL;
}

/* "bot" anywhere except in "cubot" (a phone maker's model names). */
static int
has_bot(const char *lc)
{
    const char *p = lc;

    while ((p = strstr(p, "bot")) != NULL) {
        if (!(p - lc >= 2 && p[-2] == 'c' && p[-1] == 'u'))
            return 1;
        p += 3;
    }
    return 0;
}

static const char *
ua_rule(const char *ua)
{
    char lc[1024];
    size_t n, i, a;

    if (ua == NULL)
        return "ua:empty";
    n = strlen(ua);
    for (a = 0; a < n && is_ws((unsigned char)ua[a]); a++)
        ;
    while (n > a && is_ws((unsigned char)ua[n - 1]))
        n--;
    if (n == a)
        return "ua:empty";
    if (n - a >= sizeof(lc))
        n = a + sizeof(lc) - 1; /* real ones are far shorter */
    for (i = a; i < n; i++)
        lc[i - a] = (char)lower((unsigned char)ua[i]);
    n -= a;
    lc[n] = 0;
    if (n > 8 && memcmp(lc, "mozilla/", 8) == 0 &&
        strspn(lc + 8, "0123456789.") == n - 8)
        return "ua:apple-mpp";
    for (i = 0; i < NELEM(ua_rules); i++)
        if (strstr(lc, ua_rules[i].token))
            return ua_rules[i].rule;
    if (has_bot(lc))
        return "ua:bot";
    return NULL;
}

const char *
links_machine_rule(const char *user_agent, const char *ip,
                   int64_t ms_since_delivery, int is_click)
{
    const char *r;

    if ((r = ua_rule(user_agent)) != NULL || (r = ip_rule(ip)) != NULL)
        return r;
    if (ms_since_delivery >= 0 &&
        ms_since_delivery < (is_click ? LINKS_CLICK_MIN_MS : LINKS_OPEN_MIN_MS))
        return is_click ? "time:click" : "time:open";
    return NULL;
}

int
links_is_machine(const char *user_agent, const char *ip,
                 int64_t ms_since_delivery, int is_click)
{
    return links_machine_rule(user_agent, ip, ms_since_delivery, is_click) !=
           NULL;
}

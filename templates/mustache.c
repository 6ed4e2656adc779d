/*
 * mustache.c -- compiler and renderer of the Mustache engine (mustache.h).
 *
 * Compiling makes four passes. tokenize() cuts the source into tags and
 * text pieces that end at a newline, applying delimiter changes as it
 * goes. match_sections() pairs openers with closers; mark_standalone()
 * finds lines holding only whitespace and standalone tags. generate()
 * then emits a flat node array: a section's body is the nodes up to its
 * `end`. Whitespace rules are settled at compile time: a node flagged
 * NF_LINE_START begins a source line and gets the current indentation
 * (from standalone partials, parents and blocks) at render time.
 *
 * Rendering walks the node array recursively; every stack (context,
 * block overrides, indentation) is a fixed array in struct rstate, which
 * lives on the C stack, and every kind of nesting is capped.
 */
#include "mustache.h"
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_TOK     UINT32_MAX
#define MAX_DELIM  16           /* bytes in a custom delimiter */
#define MAX_OVR    64           /* block overrides active at once */
#define MAX_INDENT 1024         /* bytes of accumulated indentation */
#define MAX_SEGS   255          /* parts of a dotted name */
#define CTX_MAX    (MU_MAX_ROOTS + MU_MAX_DEPTH + 1)

/* ---- compiled form ---------------------------------------------------- */

enum {
    OP_TEXT, OP_VAR, OP_RAW, OP_SECTION, OP_INVERTED,
    OP_PARTIAL, OP_PARENT, OP_BLOCK,
};

#define NF_LINE_START 0x01      /* begins a source line: indent first */
#define NF_INNER_NL   0x02      /* TEXT: another line begins inside it */
#define NF_STANDALONE 0x04      /* PARTIAL/PARENT/BLOCK: indentation applies */
#define NF_DYNAMIC    0x08      /* PARTIAL/PARENT: {{>*name}} */

struct node {
    uint8_t op, flags;
    uint16_t nseg;              /* dotted-name parts; 0 is "." */
    uint32_t end;               /* containers: index after the body */
    uint32_t str, len;          /* TEXT bytes or the tag name, in pool */
    uint32_t seg;               /* first part in segs[] */
    uint32_t ind, ind_len;      /* indentation string, in pool */
    uint32_t line, col;
};

struct seg {
    uint32_t off, len;
};

struct mu_prog {
    struct node *nodes;
    struct seg *segs;
    char *pool;
    uint32_t nnode;
};

/* ---- compiler --------------------------------------------------------- */

enum {
    T_TEXT, T_VAR, T_RAW, T_SECTION, T_INVERTED, T_CLOSE, T_COMMENT,
    T_PARTIAL, T_PARENT, T_BLOCK, T_DELIM,
};

#define TF_DROP  0x01           /* text removed with its standalone line */
#define TF_ALONE 0x02           /* tag on a standalone line */
#define TF_PAIR  0x04           /* {{$b}}{{/b}} alone on a line */
#define TF_DYN   0x08           /* {{>*name}} */

struct tok {
    uint8_t kind, flags;
    uint32_t start, end;        /* text, or the whole tag */
    uint32_t ls;                /* start of the line it begins on */
    uint32_t name, nlen;        /* tags: trimmed content */
    uint32_t line, col;
    uint32_t match;             /* opener <-> closer */
    uint32_t lead;              /* standalone tags: leading whitespace */
    uint32_t strip;             /* line-start tokens: dedent width */
};

struct comp {
    const char *src;
    size_t len;
    struct mu_error *err;
    struct tok *toks;
    size_t ntok, ctok;
    size_t at, ls;              /* line/col counted up to at */
    unsigned line, col;
    struct node *nodes;
    size_t nnode, cnode;
    struct seg *segs;
    size_t nseg, cseg;
    char *pool;
    size_t npool, cpool;
};

/* Fill err (may be NULL) from a printf format. */
static void
set_err(struct mu_error *err, int code, unsigned line, unsigned col,
        const char *fmt, va_list ap)
{
    if (err == NULL)
        return;
    err->code = code;
    err->line = line;
    err->col = col;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

static int
cerr(struct comp *c, int code, unsigned line, unsigned col,
     const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int
cerr(struct comp *c, int code, unsigned line, unsigned col,
     const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_err(c->err, code, line, col, fmt, ap);
    va_end(ap);
    return code;
}

/* Make room for need elements of size bytes in a doubling array. */
static int
grow(void **p, size_t *cap, size_t need, size_t size)
{
    size_t ncap = *cap ? *cap : 16;
    void *np;

    if (need <= *cap)
        return 0;
    while (ncap < need)
        ncap *= 2;
    if ((np = realloc(*p, ncap * size)) == NULL)
        return -ENOMEM;
    *p = np;
    *cap = ncap;
    return 0;
}

static int
is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Count lines and UTF-8 columns up to pos (monotonic, so linear). */
static void
advance(struct comp *c, size_t pos)
{
    for (; c->at < pos; c->at++) {
        unsigned char ch = (unsigned char)c->src[c->at];

        if (ch == '\n') {
            c->line++;
            c->col = 1;
            c->ls = c->at + 1;
        } else if ((ch & 0xC0) != 0x80) {
            c->col++;
        }
    }
}

/* Offset of pat in s[from, n), or n; delimiters are short. */
static size_t
find(const char *s, size_t n, size_t from, const char *pat, size_t plen)
{
    while (from < n && plen <= n - from) {
        const char *p = memchr(s + from, pat[0], n - from - plen + 1);

        if (p == NULL)
            break;
        if (memcmp(p, pat, plen) == 0)
            return (size_t)(p - s);
        from = (size_t)(p - s) + 1;
    }
    return n;
}

/* A zeroed token at the end of the array, or NULL. */
static struct tok *
new_tok(struct comp *c)
{
    struct tok *t;

    if (grow((void **)&c->toks, &c->ctok, c->ntok + 1, sizeof(*t)) < 0)
        return NULL;
    t = &c->toks[c->ntok++];
    memset(t, 0, sizeof(*t));
    t->match = t->lead = NO_TOK;
    return t;
}

/* Text [from, to) as tokens that each end at a newline or at to. */
static int
add_text(struct comp *c, size_t from, size_t to)
{
    advance(c, from);
    while (from < to) {
        const char *nl = memchr(c->src + from, '\n', to - from);
        size_t end = nl ? (size_t)(nl - c->src) + 1 : to;
        struct tok *t;

        if ((t = new_tok(c)) == NULL)
            return -ENOMEM;
        t->kind = T_TEXT;
        t->start = (uint32_t)from;
        t->end = (uint32_t)end;
        t->ls = (uint32_t)(from == c->at ? c->ls : from);
        from = end;
    }
    return 0;
}

/* Names hold no whitespace or control bytes (so no NUL either). */
static int
valid_name(const char *s, size_t n)
{
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return 0;
    return 1;
}

/* {{=<% %>=}}: content [a, b) holds the two new delimiters. */
static int
parse_delims(const char *s, size_t a, size_t b, size_t *o, size_t *ol,
             size_t *cl_, size_t *cll)
{
    size_t i, j;

    while (a < b && is_ws(s[a]))
        a++;
    while (b > a && is_ws(s[b - 1]))
        b--;
    for (i = a; i < b && !is_ws(s[i]); i++)
        ;
    for (j = i; j < b && is_ws(s[j]); j++)
        ;
    if (i == a || j == i || j == b)
        return -1;
    if (!valid_name(s + a, i - a) || !valid_name(s + j, b - j) ||
        i - a > MAX_DELIM || b - j > MAX_DELIM)
        return -1;
    if (memchr(s + a, '=', i - a) || memchr(s + j, '=', b - j))
        return -1;
    *o = a;
    *ol = i - a;
    *cl_ = j;
    *cll = b - j;
    return 0;
}

/* Pass 1: tags and newline-terminated text pieces, in source order. */
static int
tokenize(struct comp *c)
{
    const char *s = c->src;
    size_t n = c->len, pos = 0;
    const char *ot = "{{", *ct = "}}";
    size_t ol = 2, cl = 2;

    while (pos < n) {
        size_t tag = find(s, n, pos, ot, ol), p, q, a, b;
        unsigned line, col;
        char closer = 0;
        struct tok *t;
        int kind, rc;

        if ((rc = add_text(c, pos, tag)) < 0)
            return rc;
        if (tag == n)
            break;
        advance(c, tag);
        line = c->line;
        col = c->col;
        p = tag + ol;
        switch (p < n ? s[p] : 0) {
        case '{': kind = T_RAW; closer = '}'; p++; break;
        case '&': kind = T_RAW; p++; break;
        case '#': kind = T_SECTION; p++; break;
        case '^': kind = T_INVERTED; p++; break;
        case '/': kind = T_CLOSE; p++; break;
        case '!': kind = T_COMMENT; p++; break;
        case '>': kind = T_PARTIAL; p++; break;
        case '<': kind = T_PARENT; p++; break;
        case '$': kind = T_BLOCK; p++; break;
        case '=': kind = T_DELIM; closer = '='; p++; break;
        default:  kind = T_VAR; break;
        }
        /* the closer ('}' or '=') must come right before the delimiter */
        for (q = p;; q++) {
            q = find(s, n, q, ct, cl);
            if (q == n || !closer || (q > p && s[q - 1] == closer))
                break;
        }
        if (q == n)
            return cerr(c, GW_EPARSE, line, col, "unclosed tag");
        a = p;
        b = closer ? q - 1 : q;
        if ((t = new_tok(c)) == NULL)
            return -ENOMEM;
        t->kind = (uint8_t)kind;
        t->start = (uint32_t)tag;
        t->end = (uint32_t)(q + cl);
        t->ls = (uint32_t)c->ls;
        t->line = line;
        t->col = col;
        pos = q + cl;
        if (kind == T_COMMENT)
            continue;
        if (kind == T_DELIM) {
            size_t o, oln, cc, ccl;

            if (parse_delims(s, a, b, &o, &oln, &cc, &ccl) < 0)
                return cerr(c, GW_EPARSE, line, col, "bad delimiter tag");
            ot = s + o;
            ol = oln;
            ct = s + cc;
            cl = ccl;
            continue;
        }
        while (a < b && is_ws(s[a]))
            a++;
        while (b > a && is_ws(s[b - 1]))
            b--;
        if ((kind == T_PARTIAL || kind == T_PARENT) && a < b && s[a] == '*') {
            t->flags |= TF_DYN;
            for (a++; a < b && is_ws(s[a]); a++)
                ;
        }
        if (a == b)
            return cerr(c, GW_EPARSE, line, col, "empty tag");
        if (!valid_name(s + a, b - a))
            return cerr(c, GW_EPARSE, line, col, "invalid tag name '%.*s'",
                        (int)(b - a > 60 ? 60 : b - a), s + a);
        t->name = (uint32_t)a;
        t->nlen = (uint32_t)(b - a);
    }
    return 0;
}

static int
is_open(int kind)
{
    return kind == T_SECTION || kind == T_INVERTED || kind == T_PARENT ||
           kind == T_BLOCK;
}

/* Does closer t close opener o? {{<*p}} closes with a star too. */
static int
same_name(const struct comp *c, const struct tok *o, const struct tok *t)
{
    const char *a = c->src + o->name, *b = c->src + t->name;
    size_t n = t->nlen;

    if (o->flags & TF_DYN) {
        if (n == 0 || *b != '*')
            return 0;
        b++;
        n--;
    }
    return n == o->nlen && memcmp(a, b, n) == 0;
}

/* Pass 2: pair section, parent and block openers with their closers. */
static int
match_sections(struct comp *c)
{
    uint32_t stack[MU_MAX_NEST];
    size_t sp = 0, i;

    for (i = 0; i < c->ntok; i++) {
        struct tok *t = &c->toks[i], *o;

        if (is_open(t->kind)) {
            if (sp == MU_MAX_NEST)
                return cerr(c, GW_ETOOBIG, t->line, t->col,
                            "sections nested deeper than %d", MU_MAX_NEST);
            stack[sp++] = (uint32_t)i;
        } else if (t->kind == T_CLOSE) {
            if (sp == 0)
                return cerr(c, GW_EPARSE, t->line, t->col,
                            "unexpected section end '%.*s'",
                            (int)(t->nlen > 60 ? 60 : t->nlen),
                            c->src + t->name);
            o = &c->toks[stack[--sp]];
            if (!same_name(c, o, t))
                return cerr(c, GW_EPARSE, t->line, t->col,
                            "mismatched section end '%.*s', expected '%s%.*s'",
                            (int)(t->nlen > 60 ? 60 : t->nlen),
                            c->src + t->name, (o->flags & TF_DYN) ? "*" : "",
                            (int)(o->nlen > 60 ? 60 : o->nlen),
                            c->src + o->name);
            o->match = (uint32_t)i;
            t->match = stack[sp];
        }
    }
    if (sp > 0) {
        struct tok *o = &c->toks[stack[sp - 1]];

        return cerr(c, GW_EPARSE, o->line, o->col, "unclosed section '%.*s'",
                    (int)(o->nlen > 60 ? 60 : o->nlen), c->src + o->name);
    }
    return 0;
}

/* Only spaces and tabs in s[a, b) (and a line end when nl_ok). */
static int
blank(const char *s, size_t a, size_t b, int nl_ok)
{
    for (; a < b; a++) {
        if (s[a] == ' ' || s[a] == '\t' || (nl_ok && s[a] == '\r'))
            continue;
        if (nl_ok && s[a] == '\n' && a + 1 == b)
            continue;
        return 0;
    }
    return 1;
}

/* May t stand alone on a line (with others when multi)? */
static int
alone_kind(const struct comp *c, const struct tok *t, int multi)
{
    if (!multi)
        return t->kind != T_VAR && t->kind != T_RAW;
    if (t->kind == T_CLOSE)
        t = &c->toks[t->match];
    return t->kind == T_PARENT || t->kind == T_BLOCK;
}

/*
 * One line is tokens [g, e]. It is standalone when it holds whitespace
 * and one standalone tag, or several adjacent parent/block tags (the
 * inheritance spec's "{{<p}}{{$b}}" and "{{/b}}{{/p}}" lines).
 */
static void
check_line(struct comp *c, size_t g, size_t e)
{
    struct tok *tk = c->toks;
    size_t k = g, first, ntags, i;
    uint32_t lead = NO_TOK, trail = NO_TOK;

    if (tk[k].kind == T_TEXT) {
        if (k == e || !blank(c->src, tk[k].start, tk[k].end, 0))
            return;
        lead = (uint32_t)k++;
    }
    for (first = k; k <= e && tk[k].kind != T_TEXT; k++)
        ;
    ntags = k - first;
    if (ntags == 0)
        return;
    if (k <= e) {
        if (k != e || !blank(c->src, tk[k].start, tk[k].end, 1))
            return;
        trail = (uint32_t)k;
    }
    for (i = first; i < first + ntags; i++)
        if (!alone_kind(c, &tk[i], ntags > 1))
            return;
    for (i = first; i < first + ntags; i++) {
        tk[i].flags |= TF_ALONE;
        tk[i].lead = lead;
    }
    if (lead != NO_TOK)
        tk[lead].flags |= TF_DROP;
    if (ntags == 2 && tk[first].kind == T_BLOCK &&
        tk[first].match == first + 1) {
        /* a block pair keeps its newline (spec: "Standalone block") */
        tk[first].flags |= TF_PAIR;
        if (trail != NO_TOK) {
            struct tok *t = &tk[trail];
            uint32_t keep = 0;

            if (c->src[t->end - 1] == '\n')
                keep = (t->end - t->start >= 2 && c->src[t->end - 2] == '\r')
                       ? 2 : 1;
            t->start = t->end - keep;
            if (keep == 0)
                t->flags |= TF_DROP;
        }
    } else if (trail != NO_TOK) {
        tk[trail].flags |= TF_DROP;
    }
}

/* Pass 3: mark standalone lines, one line at a time. */
static void
mark_standalone(struct comp *c)
{
    size_t g = 0, e;

    while (g < c->ntok) {
        for (e = g; e + 1 < c->ntok; e++)
            if (c->toks[e].kind == T_TEXT &&
                c->src[c->toks[e].end - 1] == '\n')
                break;
        check_line(c, g, e);
        g = e + 1;
    }
}

/* Copy n bytes plus a NUL into the string pool; *off is where. */
static int
pool_add(struct comp *c, const char *p, size_t n, uint32_t *off)
{
    int rc;

    if ((rc = grow((void **)&c->pool, &c->cpool, c->npool + n + 1, 1)) < 0)
        return rc;
    memcpy(c->pool + c->npool, p, n);
    c->pool[c->npool + n] = 0;
    *off = (uint32_t)c->npool;
    c->npool += n + 1;
    return 0;
}

/* A node at the end of the array, or NULL; its body is empty. */
static struct node *
new_node(struct comp *c, int op, const struct tok *t)
{
    struct node *n;

    if (grow((void **)&c->nodes, &c->cnode, c->nnode + 1, sizeof(*n)) < 0)
        return NULL;
    n = &c->nodes[c->nnode++];
    memset(n, 0, sizeof(*n));
    n->op = (uint8_t)op;
    n->end = (uint32_t)c->nnode;
    if (t) {
        n->line = t->line;
        n->col = t->col;
    }
    return n;
}

/* Copy the tag name; split dotted names into parts when dotted is set. */
static int
node_name(struct comp *c, struct node *n, const struct tok *t, int dotted)
{
    const char *name = c->src + t->name;
    size_t i, from = 0, nparts = 0;
    int rc;

    if ((rc = pool_add(c, name, t->nlen, &n->str)) < 0)
        return rc;
    n->len = t->nlen;
    if (!dotted || (t->nlen == 1 && name[0] == '.'))
        return 0;
    n->seg = (uint32_t)c->nseg;
    for (i = 0; i <= t->nlen; i++) {
        struct seg *sg;

        if (i < t->nlen && name[i] != '.')
            continue;
        if (i == from)
            return cerr(c, GW_EPARSE, t->line, t->col,
                        "invalid name '%.*s'",
                        (int)(t->nlen > 60 ? 60 : t->nlen), name);
        if (++nparts > MAX_SEGS)
            return cerr(c, GW_ETOOBIG, t->line, t->col,
                        "name has more than %d parts", MAX_SEGS);
        if ((rc = grow((void **)&c->segs, &c->cseg, c->nseg + 1,
                       sizeof(*sg))) < 0)
            return rc;
        sg = &c->segs[c->nseg++];
        sg->off = n->str + (uint32_t)from;
        sg->len = (uint32_t)(i - from);
        from = i + 1;
    }
    n->nseg = (uint16_t)nparts;
    return 0;
}

/* Leading whitespace of a standalone tag's line, minus its dedent. */
static void
lead_ws(const struct comp *c, const struct tok *t, uint32_t *a, uint32_t *b)
{
    const struct tok *l;
    uint32_t strip;

    *a = *b = 0;
    if (t->lead == NO_TOK)
        return;
    l = &c->toks[t->lead];
    strip = l->strip < l->end - l->start ? l->strip : l->end - l->start;
    *a = l->start + strip;
    *b = l->end;
}

/*
 * A block whose opening tag is standalone: its body's common indentation
 * is removed at compile time (raising the strip of each body line), and
 * its own indentation is that width or, when the body has none, the
 * whitespace before the tag. Spec: "Block reindentation".
 */
static int
block_indent(struct comp *c, size_t i, struct node *n)
{
    const char *s = c->src;
    struct tok *t = &c->toks[i], *cl = &c->toks[t->match];
    uint32_t outer = t->lead != NO_TOK ? c->toks[t->lead].strip : 0;
    size_t bs, be, p, dlen = SIZE_MAX, dref = 0, j;
    const char *nl = memchr(s + t->end, '\n', c->len - t->end);
    uint32_t a, b;

    bs = nl ? (size_t)(nl - s) + 1 : c->len;
    be = (cl->flags & TF_ALONE) ? cl->ls : cl->start;
    for (p = bs; p < be;) {
        size_t q = p, le;

        while (q < be && (s[q] == ' ' || s[q] == '\t'))
            q++;
        for (le = q; le < be && s[le] != '\n'; le++)
            ;
        if (!blank(s, q, le, 1)) {
            if (dlen == SIZE_MAX) {
                dlen = q - p;
                dref = p;
            } else {
                size_t k = 0;

                while (k < dlen && k < q - p && s[p + k] == s[dref + k])
                    k++;
                dlen = k;
            }
        }
        p = le + 1;
    }
    if (dlen == SIZE_MAX)
        dlen = 0;
    for (j = i + 1; j < t->match; j++) {
        struct tok *x = &c->toks[j];

        if (x->start == x->ls && x->start >= bs && x->start < be &&
            x->strip < dlen)
            x->strip = (uint32_t)dlen;
    }
    if (dlen > outer) {
        a = (uint32_t)(dref + outer);
        b = (uint32_t)(dref + dlen);
    } else {
        lead_ws(c, t, &a, &b);
    }
    n->ind_len = b - a;
    return pool_add(c, s + a, b - a, &n->ind);
}

/* Pass 4: the node array. at_ls: the next node begins a line. */
static int
generate(struct comp *c)
{
    uint32_t stack[MU_MAX_NEST];
    size_t sp = 0, i;
    int at_ls = 1, merge = 0, rc;

    for (i = 0; i < c->ntok; i++) {
        struct tok *t = &c->toks[i];
        struct node *n;
        uint32_t a, b;
        int op;

        if (sp && c->nodes[stack[sp - 1]].op == OP_PARENT &&
            t->kind != T_BLOCK && t->kind != T_CLOSE) {
            /* a parent's body only passes blocks; skip the rest */
            if (is_open(t->kind)) {
                i = t->match;
                at_ls = (c->toks[i].flags & TF_ALONE) != 0;
            } else if (t->kind == T_TEXT && !(t->flags & TF_DROP)) {
                at_ls = c->src[t->end - 1] == '\n';
            }
            continue;
        }
        switch (t->kind) {
        case T_TEXT:
            if (t->flags & TF_DROP)
                break;
            a = t->start;
            b = t->end;
            if (t->strip && a == t->ls)
                for (uint32_t k = 0; k < t->strip && a < b &&
                     (c->src[a] == ' ' || c->src[a] == '\t'); k++)
                    a++;
            if (a == b)
                break;
            if (merge) {
                n = &c->nodes[c->nnode - 1];
                if ((rc = grow((void **)&c->pool, &c->cpool,
                               c->npool + (b - a), 1)) < 0)
                    return rc;
                /* the node's text ends the pool, before its NUL */
                memcpy(c->pool + c->npool - 1, c->src + a, b - a);
                c->npool += b - a;
                c->pool[c->npool - 1] = 0;
                n->len += b - a;
                if (at_ls)
                    n->flags |= NF_INNER_NL;
            } else {
                if ((n = new_node(c, OP_TEXT, NULL)) == NULL)
                    return -ENOMEM;
                if (at_ls)
                    n->flags |= NF_LINE_START;
                if ((rc = pool_add(c, c->src + a, b - a, &n->str)) < 0)
                    return rc;
                n->len = b - a;
                merge = 1;
            }
            at_ls = c->src[b - 1] == '\n';
            break;
        case T_COMMENT:
        case T_DELIM:
            break;
        case T_CLOSE:
            c->nodes[stack[--sp]].end = (uint32_t)c->nnode;
            merge = 0;
            if (c->toks[t->match].kind == T_PARENT)
                at_ls = (t->flags & TF_ALONE) != 0;
            if (c->toks[t->match].flags & TF_PAIR)
                at_ls = 0;
            break;
        default:
            switch (t->kind) {
            case T_VAR:      op = OP_VAR; break;
            case T_RAW:      op = OP_RAW; break;
            case T_SECTION:  op = OP_SECTION; break;
            case T_INVERTED: op = OP_INVERTED; break;
            case T_PARTIAL:  op = OP_PARTIAL; break;
            case T_PARENT:   op = OP_PARENT; break;
            default:         op = OP_BLOCK; break;
            }
            if ((n = new_node(c, op, t)) == NULL)
                return -ENOMEM;
            merge = 0;
            if (t->flags & TF_DYN)
                n->flags |= NF_DYNAMIC;
            if ((rc = node_name(c, n, t, op < OP_PARTIAL ||
                                (t->flags & TF_DYN))) < 0)
                return rc;
            if (!(t->flags & TF_ALONE) && at_ls) {
                n->flags |= NF_LINE_START;
                at_ls = 0;
            } else if (!(t->flags & TF_ALONE)) {
                at_ls = 0;
            } else if (op == OP_PARTIAL || op == OP_PARENT) {
                n->flags |= NF_STANDALONE;
                lead_ws(c, t, &a, &b);
                n->ind_len = b - a;
                if ((rc = pool_add(c, c->src + a, b - a, &n->ind)) < 0)
                    return rc;
            } else if (op == OP_BLOCK) {
                n->flags |= NF_STANDALONE;
                if ((rc = block_indent(c, i, n)) < 0)
                    return rc;
            }
            if (is_open(t->kind))
                stack[sp++] = (uint32_t)(c->nnode - 1);
            break;
        }
    }
    return 0;
}

static void
comp_free(struct comp *c)
{
    free(c->toks);
    free(c->nodes);
    free(c->segs);
    free(c->pool);
}

int
mu_compile(struct mu_prog **out, const char *src, size_t len,
           struct mu_error *err)
{
    struct comp c;
    struct mu_prog *pg;
    int rc;

    *out = NULL;
    if (err)
        err->code = 0;
    memset(&c, 0, sizeof(c));
    c.src = src;
    c.len = len;
    c.err = err;
    c.line = c.col = 1;
    if (len > MU_MAX_SOURCE)
        return cerr(&c, GW_ETOOBIG, 0, 0, "template larger than %u bytes",
                    MU_MAX_SOURCE);
    if (len > 0 && src == NULL)
        return cerr(&c, GW_EINVAL, 0, 0, "no template");
    if ((rc = tokenize(&c)) < 0 || (rc = match_sections(&c)) < 0)
        goto out;
    mark_standalone(&c);
    if ((rc = generate(&c)) < 0)
        goto out;
    if ((pg = calloc(1, sizeof(*pg))) == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    pg->nodes = c.nodes;
    pg->segs = c.segs;
    pg->pool = c.pool;
    pg->nnode = (uint32_t)c.nnode;
    c.nodes = NULL;
    c.segs = NULL;
    c.pool = NULL;
    *out = pg;
out:
    if (rc == -ENOMEM)
        cerr(&c, rc, 0, 0, "out of memory");
    comp_free(&c);
    return rc;
}

void
mu_prog_free(struct mu_prog *pg)
{
    if (pg == NULL)
        return;
    free(pg->nodes);
    free(pg->segs);
    free(pg->pool);
    free(pg);
}

int
mu_prog_tags(const struct mu_prog *pg, unsigned kinds, mu_tag_cb *cb,
             void *arg)
{
    static const unsigned kind_of[] = {
        [OP_TEXT] = 0, [OP_VAR] = MU_TAG_VAR, [OP_RAW] = MU_TAG_RAW,
        [OP_SECTION] = MU_TAG_SECTION, [OP_INVERTED] = MU_TAG_INVERTED,
        [OP_PARTIAL] = MU_TAG_PARTIAL, [OP_PARENT] = MU_TAG_PARENT,
        [OP_BLOCK] = MU_TAG_BLOCK,
    };
    uint32_t i;
    int rc;

    for (i = 0; i < pg->nnode; i++) {
        const struct node *n = &pg->nodes[i];
        struct mu_tag tag;

        if (!(kind_of[n->op] & kinds))
            continue;
        tag.kind = (enum mu_tag_kind)kind_of[n->op];
        tag.name = pg->pool + n->str;
        tag.len = n->len;
        tag.dynamic = (n->flags & NF_DYNAMIC) != 0;
        tag.line = n->line;
        tag.col = n->col;
        if ((rc = cb(arg, &tag)) != 0)
            return rc;
    }
    return 0;
}

/* ---- renderer --------------------------------------------------------- */

struct frame {
    struct mu_val v;
    enum mu_type type;
};

struct ovr {                    /* a block passed to a parent */
    const struct mu_prog *pg;
    uint32_t node;
    int active;                 /* being rendered: not visible to itself */
};

struct rstate {
    struct buf *out;
    struct mu_error *err;
    mu_partial_cb *partial;
    void *partial_arg;
    int html, strict, failed;
    unsigned long steps, max_steps;
    unsigned depth, includes;
    size_t nctx, novr;
    size_t ind_start, ind_len;  /* the current indentation is ind[start..len) */
    struct frame ctx[CTX_MAX];
    struct ovr ovr[MAX_OVR];
    char ind[MAX_INDENT];
    char scratch[MU_SCRATCH];
};

static int
rfail(struct rstate *st, const struct node *n, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
rfail(struct rstate *st, const struct node *n, int code, const char *fmt, ...)
{
    va_list ap;

    if (st->failed)
        return code;
    st->failed = 1;
    va_start(ap, fmt);
    set_err(st->err, code, n ? n->line : 0, n ? n->col : 0, fmt, ap);
    va_end(ap);
    return code;
}

static int
out_fail(struct rstate *st, const struct node *n, int rc)
{
    if (rc == GW_ETOOBIG)
        return rfail(st, n, rc, "output larger than %zu bytes", st->out->max);
    return rfail(st, n, rc, "cannot grow output: %s", gw_strerror(rc));
}

/* Append to the output; the common case is one memcpy. */
static inline int
put(struct rstate *st, const char *p, size_t n)
{
    struct buf *b = st->out;

    if (n == 0)
        return 0;
    if (n <= b->max - b->len && n < b->cap - b->len) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
    }
    return buf_append(b, p, n);
}

static const char *const html_rep[] = {
    NULL, "&amp;", "&lt;", "&gt;", "&quot;", "&#39;",
};
static const unsigned char html_len[] = { 0, 5, 4, 4, 6, 5 };
static const unsigned char html_idx[256] = {
    ['&'] = 1, ['<'] = 2, ['>'] = 3, ['"'] = 4, ['\''] = 5,
};

/* Append with & < > " ' replaced by entities. */
static int
put_html(struct rstate *st, const char *p, size_t n)
{
    size_t i, from = 0;
    int rc;

    for (i = 0; i < n; i++) {
        unsigned k = html_idx[(unsigned char)p[i]];

        if (k == 0)
            continue;
        if ((rc = put(st, p + from, i - from)) < 0 ||
            (rc = put(st, html_rep[k], html_len[k])) < 0)
            return rc;
        from = i + 1;
    }
    return put(st, p + from, n - from);
}

/* Text with lines beginning inside it: indent each of those lines. */
static int
put_lines(struct rstate *st, const char *p, size_t n)
{
    size_t from = 0;
    int rc;

    while (from < n) {
        const char *nl = memchr(p + from, '\n', n - from);
        size_t end = nl ? (size_t)(nl - p) + 1 : n;

        if ((rc = put(st, p + from, end - from)) < 0)
            return rc;
        if (end < n &&
            (rc = put(st, st->ind + st->ind_start,
                      st->ind_len - st->ind_start)) < 0)
            return rc;
        from = end;
    }
    return 0;
}

/* Push a context frame, caching its type. */
static int
push_ctx(struct rstate *st, const struct node *n, struct mu_val v)
{
    struct frame *f;

    if (st->nctx == CTX_MAX)
        return rfail(st, n, GW_ETOOBIG, "context stack full");
    f = &st->ctx[st->nctx++];
    f->v = v;
    f->type = v.ops ? v.ops->type(v.p) : MU_T_NULL;
    return 0;
}

/* Resolve n's name: first part through the stack, the rest through it. */
static int
lookup(struct rstate *st, const struct mu_prog *pg, const struct node *n,
       struct mu_val *out, enum mu_type *type)
{
    const struct seg *sg;
    struct mu_val v = { NULL, NULL };
    size_t k;
    unsigned s;

    if (n->nseg == 0) {
        if (st->nctx == 0 || st->ctx[st->nctx - 1].v.ops == NULL)
            return 0;
        *out = st->ctx[st->nctx - 1].v;
        *type = st->ctx[st->nctx - 1].type;
        return 1;
    }
    sg = pg->segs + n->seg;     /* segs is NULL when no name has parts */
    for (k = st->nctx; k-- > 0;) {
        const struct frame *f = &st->ctx[k];

        if (f->type != MU_T_OBJECT)
            continue;
        v = f->v.ops->get(f->v.p, pg->pool + sg[0].off, sg[0].len);
        if (v.ops)
            break;
    }
    if (v.ops == NULL)
        return 0;
    for (s = 1; s < n->nseg; s++) {
        if (v.ops->type(v.p) != MU_T_OBJECT)
            return 0;
        v = v.ops->get(v.p, pg->pool + sg[s].off, sg[s].len);
        if (v.ops == NULL)
            return 0;
    }
    *out = v;
    *type = v.ops->type(v.p);
    return 1;
}

/* Text of a value for interpolation ("" for lists and objects). */
static const char *
val_text(struct rstate *st, struct mu_val v, enum mu_type type, size_t *len)
{
    const char *s;

    switch (type) {
    case MU_T_STRING:
    case MU_T_NUMBER:
        *len = 0;
        s = v.ops->text(v.p, st->scratch, len);
        if (s == NULL)
            *len = 0;
        return s ? s : "";
    case MU_T_TRUE:
        *len = 4;
        return "true";
    case MU_T_FALSE:
        *len = 5;
        return "false";
    default:
        *len = 0;
        return "";
    }
}

/* Does a section render for this value? See enum mu_type. */
static int
truthy(struct rstate *st, struct mu_val v, enum mu_type type)
{
    size_t len;

    switch (type) {
    case MU_T_NULL:
    case MU_T_FALSE:
        return 0;
    case MU_T_STRING:
        val_text(st, v, type, &len);
        return len > 0;
    case MU_T_LIST:
        return v.ops->count(v.p) > 0;
    default:
        return 1;
    }
}

static int render_range(struct rstate *st, const struct mu_prog *pg,
                        uint32_t i, uint32_t end);

/* Count one more level of nesting, or fail past MU_MAX_DEPTH. */
static int
enter(struct rstate *st, const struct node *n)
{
    if (st->depth >= MU_MAX_DEPTH)
        return rfail(st, n, GW_ETOOBIG, "templates nested deeper than %d",
                     MU_MAX_DEPTH);
    st->depth++;
    return 0;
}

/* {{#name}}: once for a truthy value, once per item of a list. */
static int
section(struct rstate *st, const struct mu_prog *pg, uint32_t i)
{
    const struct node *n = &pg->nodes[i];
    struct mu_val v;
    enum mu_type type;
    size_t k, cnt;
    int rc = 0;

    if (!lookup(st, pg, n, &v, &type))
        return 0;
    if (!truthy(st, v, type))
        return 0;
    if ((rc = enter(st, n)) < 0)
        return rc;
    cnt = type == MU_T_LIST ? v.ops->count(v.p) : 1;
    for (k = 0; k < cnt && rc == 0; k++) {
        struct mu_val item = type == MU_T_LIST ? v.ops->at(v.p, k) : v;

        if ((rc = push_ctx(st, n, item)) < 0)
            break;
        rc = render_range(st, pg, i + 1, n->end);
        st->nctx--;
    }
    st->depth--;
    return rc;
}

/* The name of a partial or parent; 0 when a dynamic name is missing. */
static int
include_name(struct rstate *st, const struct mu_prog *pg,
             const struct node *n, const char **name, size_t *len)
{
    struct mu_val v;
    enum mu_type type;

    if (!(n->flags & NF_DYNAMIC)) {
        *name = pg->pool + n->str;
        *len = n->len;
        return 1;
    }
    if (!lookup(st, pg, n, &v, &type) ||
        (type != MU_T_STRING && type != MU_T_NUMBER))
        return 0;
    *name = val_text(st, v, type, len);
    return 1;
}

/* Append to the current indentation. */
static int
push_indent(struct rstate *st, const struct node *n, const char *p,
            size_t len)
{
    if (len > MAX_INDENT - st->ind_len)
        return rfail(st, n, GW_ETOOBIG, "indentation longer than %d bytes",
                     MAX_INDENT);
    memcpy(st->ind + st->ind_len, p, len);
    st->ind_len += len;
    return 0;
}

/* Render target for a partial or parent node n of pg. */
static int
include(struct rstate *st, const struct mu_prog *pg, const struct node *n)
{
    const struct mu_prog *target = NULL;
    size_t save_start = st->ind_start, save_len = st->ind_len, len;
    const char *name;
    int rc;

    if (!include_name(st, pg, n, &name, &len)) {
        if (st->strict)
            return rfail(st, n, GW_ENOTFOUND, "missing variable '%.*s'",
                         (int)n->len, pg->pool + n->str);
        return 0;
    }
    if (st->partial)
        target = st->partial(st->partial_arg, name, len);
    if (target == NULL) {
        if (st->strict)
            return rfail(st, n, GW_ENOTFOUND, "missing partial '%.*s'",
                         (int)(len > 60 ? 60 : len), name);
        return 0;
    }
    if (st->includes >= MU_MAX_INCLUDE)
        return rfail(st, n, GW_ETOOBIG, "partials nested deeper than %d",
                     MU_MAX_INCLUDE);
    if ((rc = enter(st, n)) < 0)
        return rc;
    if (n->flags & NF_STANDALONE)
        rc = push_indent(st, n, pg->pool + n->ind, n->ind_len);
    else
        st->ind_start = st->ind_len;
    if (rc == 0) {
        st->includes++;
        rc = render_range(st, target, 0, target->nnode);
        st->includes--;
    }
    st->ind_start = save_start;
    st->ind_len = save_len;
    st->depth--;
    return rc;
}

/* A parent: its blocks override those of the templates it includes. */
static int
parent(struct rstate *st, const struct mu_prog *pg, uint32_t i)
{
    const struct node *n = &pg->nodes[i];
    size_t save = st->novr;
    uint32_t j;
    int rc;

    for (j = i + 1; j < n->end; j = pg->nodes[j].end) {
        if (st->novr == MAX_OVR) {
            st->novr = save;
            return rfail(st, n, GW_ETOOBIG, "more than %d blocks passed",
                         MAX_OVR);
        }
        st->ovr[st->novr].pg = pg;
        st->ovr[st->novr].node = j;
        st->ovr[st->novr].active = 0;
        st->novr++;
    }
    rc = include(st, pg, n);
    st->novr = save;
    return rc;
}

/* A block: the outermost override of its name, else its own body. */
static int
block(struct rstate *st, const struct mu_prog *pg, uint32_t i)
{
    const struct node *n = &pg->nodes[i];
    const struct mu_prog *bp = pg;
    struct ovr *o = NULL;
    size_t save_start = st->ind_start, save_len = st->ind_len, k;
    uint32_t b = i;
    int rc;

    for (k = 0; k < st->novr; k++) {
        const struct ovr *x = &st->ovr[k];
        const struct node *xn = &x->pg->nodes[x->node];

        if (!x->active && xn->len == n->len &&
            memcmp(x->pg->pool + xn->str, pg->pool + n->str, n->len) == 0) {
            o = &st->ovr[k];
            break;
        }
    }
    if ((rc = enter(st, n)) < 0)
        return rc;
    if (n->flags & NF_STANDALONE)
        rc = push_indent(st, n, pg->pool + n->ind, n->ind_len);
    else if (o)
        st->ind_start = st->ind_len;
    if (o) {
        bp = o->pg;
        b = o->node;
        o->active = 1;
    }
    if (rc == 0)
        rc = render_range(st, bp, b + 1, bp->nodes[b].end);
    if (o)
        o->active = 0;
    st->ind_start = save_start;
    st->ind_len = save_len;
    st->depth--;
    return rc;
}

/* Render nodes [i, end) of pg. */
static int
render_range(struct rstate *st, const struct mu_prog *pg, uint32_t i,
             uint32_t end)
{
    const char *s;
    struct mu_val v;
    enum mu_type type;
    size_t len;
    int rc;

    while (i < end) {
        const struct node *n = &pg->nodes[i];

        if (++st->steps > st->max_steps)
            return rfail(st, n, GW_ETOOBIG, "more than %lu render steps",
                         st->max_steps);
        if ((n->flags & NF_LINE_START) && st->ind_len > st->ind_start &&
            (rc = put(st, st->ind + st->ind_start,
                      st->ind_len - st->ind_start)) < 0)
            return out_fail(st, n, rc);
        switch (n->op) {
        case OP_TEXT:
            if ((n->flags & NF_INNER_NL) && st->ind_len > st->ind_start)
                rc = put_lines(st, pg->pool + n->str, n->len);
            else
                rc = put(st, pg->pool + n->str, n->len);
            if (rc < 0)
                return out_fail(st, n, rc);
            i++;
            break;
        case OP_VAR:
        case OP_RAW:
            if (!lookup(st, pg, n, &v, &type)) {
                if (st->strict)
                    return rfail(st, n, GW_ENOTFOUND,
                                 "missing variable '%.*s'", (int)n->len,
                                 pg->pool + n->str);
                i++;
                break;
            }
            s = val_text(st, v, type, &len);
            rc = n->op == OP_VAR && st->html ? put_html(st, s, len)
                                             : put(st, s, len);
            if (rc < 0)
                return out_fail(st, n, rc);
            i++;
            break;
        case OP_SECTION:
            if ((rc = section(st, pg, i)) < 0)
                return rc;
            i = n->end;
            break;
        case OP_INVERTED:
            if (!lookup(st, pg, n, &v, &type) || !truthy(st, v, type)) {
                if ((rc = enter(st, n)) < 0)
                    return rc;
                rc = render_range(st, pg, i + 1, n->end);
                st->depth--;
                if (rc < 0)
                    return rc;
            }
            i = n->end;
            break;
        case OP_PARTIAL:
            if ((rc = include(st, pg, n)) < 0)
                return rc;
            i++;
            break;
        case OP_PARENT:
            if ((rc = parent(st, pg, i)) < 0)
                return rc;
            i = n->end;
            break;
        default:
            if ((rc = block(st, pg, i)) < 0)
                return rc;
            i = n->end;
            break;
        }
    }
    return 0;
}

int
mu_render(const struct mu_prog *pg, const struct mu_val *roots,
          size_t nroots, const struct mu_render_opts *opts, struct buf *out,
          struct mu_error *err)
{
    static const struct mu_render_opts defaults;
    struct rstate st;
    size_t start, k;
    int rc;

    if (err)
        err->code = 0;
    st.err = err;
    st.failed = 0;
    if (pg == NULL || out == NULL || (nroots && roots == NULL) ||
        nroots > MU_MAX_ROOTS || (out->len > out->max))
        return rfail(&st, NULL, GW_EINVAL, "invalid render arguments");
    if (opts == NULL)
        opts = &defaults;
    st.out = out;
    st.partial = opts->partial;
    st.partial_arg = opts->partial_arg;
    st.html = opts->escape == MU_ESC_HTML;
    st.strict = opts->strict;
    st.steps = 0;
    st.max_steps = opts->max_steps ? opts->max_steps : MU_DEFAULT_STEPS;
    st.depth = st.includes = 0;
    st.nctx = st.novr = 0;
    st.ind_start = st.ind_len = 0;
    for (k = nroots; k-- > 0;)
        push_ctx(&st, NULL, roots[k]);
    start = out->len;
    rc = render_range(&st, pg, 0, pg->nnode);
    if (rc < 0)
        out->len = start;
    if (out->data)
        out->data[out->len] = 0;
    return rc;
}

/* ---- a named set of programs ------------------------------------------ */

struct lib_ent {
    char *name;
    size_t len;
    struct mu_prog *prog;
};

struct mu_lib {
    struct lib_ent *ents;
    size_t cap, n;              /* open addressing; cap is a power of two */
};

/* FNV-1a. */
static size_t
name_hash(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    size_t i;

    for (i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return (size_t)h;
}

/* The slot holding name, or the empty slot where it would go. */
static struct lib_ent *
lib_slot(const struct mu_lib *lib, const char *name, size_t len)
{
    size_t i = name_hash(name, len) & (lib->cap - 1);

    for (;; i = (i + 1) & (lib->cap - 1)) {
        struct lib_ent *e = &lib->ents[i];

        if (e->name == NULL ||
            (e->len == len && memcmp(e->name, name, len) == 0))
            return e;
    }
}

struct mu_lib *
mu_lib_new(void)
{
    struct mu_lib *lib = calloc(1, sizeof(*lib));

    if (lib && (lib->ents = calloc(16, sizeof(*lib->ents))) == NULL) {
        free(lib);
        return NULL;
    }
    if (lib)
        lib->cap = 16;
    return lib;
}

void
mu_lib_free(struct mu_lib *lib)
{
    size_t i;

    if (lib == NULL)
        return;
    for (i = 0; i < lib->cap; i++) {
        free(lib->ents[i].name);
        mu_prog_free(lib->ents[i].prog);
    }
    free(lib->ents);
    free(lib);
}

int
mu_lib_add(struct mu_lib *lib, const char *name, size_t len,
           struct mu_prog *prog)
{
    struct lib_ent *e;

    if ((lib->n + 1) * 2 > lib->cap) {
        struct mu_lib big = { NULL, lib->cap * 2, 0 };
        size_t i;

        if ((big.ents = calloc(big.cap, sizeof(*big.ents))) == NULL) {
            mu_prog_free(prog);
            return -ENOMEM;
        }
        for (i = 0; i < lib->cap; i++)
            if (lib->ents[i].name)
                *lib_slot(&big, lib->ents[i].name, lib->ents[i].len) =
                    lib->ents[i];
        free(lib->ents);
        lib->ents = big.ents;
        lib->cap = big.cap;
    }
    e = lib_slot(lib, name, len);
    if (e->name) {
        mu_prog_free(e->prog);
        e->prog = prog;
        return 0;
    }
    if ((e->name = malloc(len + 1)) == NULL) {
        mu_prog_free(prog);
        return -ENOMEM;
    }
    memcpy(e->name, name, len);
    e->name[len] = 0;
    e->len = len;
    e->prog = prog;
    lib->n++;
    return 0;
}

const struct mu_prog *
mu_lib_get(const struct mu_lib *lib, const char *name, size_t len)
{
    return lib_slot(lib, name, len)->prog;
}

const struct mu_prog *
mu_lib_partial(void *lib, const char *name, size_t len)
{
    return lib ? mu_lib_get(lib, name, len) : NULL;
}

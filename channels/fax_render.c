/*
 * fax_render.c -- the fax page renderer (fax_render.h). The markup is
 * parsed by libxml2's HTML parser into a tree, walked into blocks
 * (paragraphs as pango layouts, rules, images, tables with sized columns),
 * and each block is paginated as soon as it is made: paragraphs split
 * between lines, tables between rows (header rows repeated), a heading
 * never left alone at the foot of a page. A second pass draws the pages,
 * now that their number is known, on a cairo PDF surface written to a
 * capped buffer. Fonts come from a per-thread pango font map (pango 1.50's
 * font maps are not thread-safe); each thread also keeps its decoded
 * images, so a template's logo is decoded once. PNGs become grey (or
 * 1-bit) as a fax prints them; JPEGs are embedded as they are.
 */
#include "fax_render.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cairo-pdf.h>
#include <cairo.h>
#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <pango/pangocairo.h>

#include "buf.h"
#include "err.h"
#include "utf8.h"

#define MM          (72.0 / 25.4) /* points per millimetre */
#define MARGIN      (15.0 * MM)
#define HEADER_GAP  6.0 /* below the "Page N of M" line */
#define CELL_PADX   3.0
#define CELL_PADY   2.0
#define BORDER      0.5
#define LIST_INDENT 20.0
#define LIST_LEVELS 6    /* deeper lists indent no further */
#define MARKER_GAP  5.0  /* between a list marker and its text */
#define BOX_PAD     6.0  /* inside the notice box */
#define BOX_GAP     10.0 /* between page 1's text and the notice box */
#define PX          0.75 /* points per CSS pixel (96 dpi) */
#define MAX_BODY_PT 28.0
#define FAMILY_MAX  64
#define SCALE       ((double)PANGO_SCALE)
#define EPS         0.01
#define WORD_MAX    50 /* characters of a word before a break is allowed */
#define ZWSP        "\xe2\x80\x8b"

/* No libm: the Makefile links none. */
static double
dmax(double a, double b)
{
    return a > b ? a : b;
}

static double
dmin(double a, double b)
{
    return a < b ? a : b;
}

enum { ST_B = 1, ST_I = 2, ST_U = 4 };

enum font {
    F_BODY,
    F_H1,
    F_H2,
    F_H3,
    F_H4,
    F_TABLE,
    F_TH,
    F_NOTICE,
    F_HEADER,
    F_N
};

/* ---- per-thread pango state ---- */

/* Decoded images kept per thread: a template's logo is decoded once, not
 * for every fax. The surface owns a copy of the encoded bytes (user data
 * for PNG, mime data for JPEG) so an entry can be checked byte for byte
 * and outlives any caller's buffer. */
#define IMG_CACHE_N      8
#define IMG_CACHE_PIXELS (2 * 1000 * 1000)
#define IMG_CACHE_BYTES  (1024 * 1024) /* larger images are not kept */

struct cached_img {
    cairo_surface_t *s; /* NULL: free slot */
    uint64_t hash, used;
    size_t len;
    int w, h;
};

struct fax_tls {
    PangoFontMap *fm;
    PangoContext *ctx;
    char family[FAMILY_MAX];
    double body;
    PangoFontDescription *fd[F_N];
    double pt[F_N];
    PangoAttrList *base; /* ligatures off: plain letters print
                                     better and need no extra font */
    struct cached_img cache[IMG_CACHE_N];
    uint64_t tick;
};

static PangoAttribute *
no_ligatures(void)
{
    return pango_attr_font_features_new("liga=0, clig=0");
}

/* No hyphen where a long word (a URL, a reference) is broken: it would
 * read as part of it, and it makes pango shape the rest of the paragraph
 * again at every such break. */
static PangoAttribute *
no_hyphens(void)
{
    return pango_attr_insert_hyphens_new(FALSE);
}

static pthread_once_t fax_once = PTHREAD_ONCE_INIT;
static pthread_key_t fax_key;
static int fax_key_ok;

static void
tls_free(void *p)
{
    struct fax_tls *t = p;

    if (t == NULL)
        return;
    for (int i = 0; i < F_N; i++)
        if (t->fd[i])
            pango_font_description_free(t->fd[i]);
    for (int i = 0; i < IMG_CACHE_N; i++)
        if (t->cache[i].s)
            cairo_surface_destroy(t->cache[i].s);
    if (t->base)
        pango_attr_list_unref(t->base);
    if (t->ctx)
        g_object_unref(t->ctx);
    if (t->fm)
        g_object_unref(t->fm);
    free(t);
}

static void
once_init(void)
{
    xmlInitParser();
    fax_key_ok = pthread_key_create(&fax_key, tls_free) == 0;
}

/* This thread's font map and context, made on first use. */
static struct fax_tls *
tls_get(void)
{
    struct fax_tls *t;
    cairo_font_options_t *fo;

    pthread_once(&fax_once, once_init);
    if (!fax_key_ok)
        return NULL;
    if ((t = pthread_getspecific(fax_key)) != NULL)
        return t;
    if ((t = calloc(1, sizeof *t)) == NULL)
        return NULL;
    t->fm = pango_cairo_font_map_new();
    t->ctx = pango_font_map_create_context(t->fm);
    /* Points are PDF user units; no hinting, so that the layout made here
     * is the one drawn on the PDF surface. */
    pango_cairo_context_set_resolution(t->ctx, 72.0);
    fo = cairo_font_options_create();
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
    pango_cairo_context_set_font_options(t->ctx, fo);
    cairo_font_options_destroy(fo);
    pango_context_set_round_glyph_positions(t->ctx, FALSE);
    t->base = pango_attr_list_new();
    pango_attr_list_insert(t->base, no_ligatures());
    pango_attr_list_insert(t->base, no_hyphens());
    if (pthread_setspecific(fax_key, t) != 0) {
        tls_free(t);
        return NULL;
    }
    return t;
}

void
fax_render_thread_done(void)
{
    struct fax_tls *t;

    pthread_once(&fax_once, once_init);
    if (!fax_key_ok || (t = pthread_getspecific(fax_key)) == NULL)
        return;
    pthread_setspecific(fax_key, NULL);
    tls_free(t);
}

/* The font descriptions for a family and body size, kept while the next
 * call asks for the same. No size is under FAX_MIN_PT. */
static void
tls_fonts(struct fax_tls *t, const char *family, double body)
{
    static const struct {
        double scale;
        int bold;
    } spec[F_N] = {
        [F_BODY] = { 1.0, 0 }, [F_H1] = { 1.6, 1 },     [F_H2] = { 1.35, 1 },
        [F_H3] = { 1.15, 1 },  [F_H4] = { 1.0, 1 },     [F_TABLE] = { -1, 0 },
        [F_TH] = { -1, 1 },    [F_NOTICE] = { 1.0, 0 }, [F_HEADER] = { 0, 0 },
    };

    if (t->fd[0] && t->body == body && strcmp(t->family, family) == 0)
        return;
    snprintf(t->family, sizeof t->family, "%s", family);
    t->body = body;
    for (int i = 0; i < F_N; i++) {
        double pt = spec[i].scale > 0   ? body * spec[i].scale
                    : spec[i].scale < 0 ? body - 1.0
                                        : FAX_MIN_PT;
        if (pt < FAX_MIN_PT)
            pt = FAX_MIN_PT;
        pt = (int)(pt * 2 + 0.5) / 2.0;
        if (t->fd[i])
            pango_font_description_free(t->fd[i]);
        t->fd[i] = pango_font_description_new();
        pango_font_description_set_family(t->fd[i], family);
        pango_font_description_set_size(t->fd[i], (int)(pt * PANGO_SCALE));
        pango_font_description_set_weight(
            t->fd[i], spec[i].bold ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL);
        t->pt[i] = pt;
    }
}

/* ---- inline text being gathered for one paragraph or cell ---- */

struct run {
    size_t start, end;
    unsigned style;
};

struct inl {
    struct buf text;
    struct run *runs;
    size_t nruns, caprun;
    int space;      /* a collapsible space would be dropped here */
    int word;       /* characters since the last space or ZWSP */
    int long_words; /* 0: never add a ZWSP (table cells) */
};

static void
inl_init(struct inl *in)
{
    buf_init(&in->text, 4 * (size_t)FAX_MAX_INPUT);
    in->runs = NULL;
    in->nruns = in->caprun = 0;
    in->space = 1;
    in->word = 0;
    in->long_words = 1;
}

static void
inl_free(struct inl *in)
{
    buf_free(&in->text);
    free(in->runs);
    in->runs = NULL;
    in->nruns = in->caprun = 0;
}

static void
inl_reset(struct inl *in)
{
    buf_reset(&in->text);
    in->nruns = 0;
    in->space = 1;
    in->word = 0;
}

/* Mark [start, end) with style, merging with the run before it. */
static int
inl_run(struct inl *in, size_t start, size_t end, unsigned style)
{
    struct run *r;

    if (style == 0 || start >= end)
        return 0;
    if (in->nruns > 0) {
        r = &in->runs[in->nruns - 1];
        if (r->end == start && r->style == style) {
            r->end = end;
            return 0;
        }
    }
    if (in->nruns == in->caprun) {
        size_t n = in->caprun ? in->caprun * 2 : 16;
        if ((r = realloc(in->runs, n * sizeof *r)) == NULL)
            return -ENOMEM;
        in->runs = r;
        in->caprun = n;
    }
    in->runs[in->nruns++] = (struct run){ start, end, style };
    return 0;
}

/* Drop trailing spaces (and newlines too when all is set). */
static void
inl_trim(struct inl *in, int all)
{
    struct buf *b = &in->text;

    while (b->len > 0 &&
           (b->data[b->len - 1] == ' ' || (all && b->data[b->len - 1] == '\n')))
        b->len--;
    if (b->data)
        b->data[b->len] = 0;
    while (in->nruns > 0 && in->runs[in->nruns - 1].start >= b->len)
        in->nruns--;
    if (in->nruns > 0 && in->runs[in->nruns - 1].end > b->len)
        in->runs[in->nruns - 1].end = b->len;
}

/* Append text as HTML shows it: runs of white space collapse to one space,
 * control characters go, malformed UTF-8 becomes U+FFFD. Outside tables a
 * word longer than WORD_MAX characters gets a zero-width space every
 * WORD_MAX: pango breaks a word with no break opportunity in time
 * quadratic in its length (100,000 letters took 5 s). A table's column
 * is at least as wide as its longest word (else the table is refused), so
 * cells never need such breaks. */
static int
inl_text(struct inl *in, const char *s, size_t n, unsigned style)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t start = in->text.len;
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0;) {
        unsigned c = p[i];
        uint32_t cp;
        size_t k;

        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
            if (!in->space)
                rc = buf_putc(&in->text, ' ');
            in->space = 1;
            in->word = 0;
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            i++;
        } else if (in->word >= WORD_MAX && in->long_words) {
            rc = buf_append(&in->text, ZWSP, 3);
            in->word = 0;
        } else if (c < 0x80) {
            size_t j = i + 1;
            while (j < n && p[j] > ' ' && p[j] < 0x7f &&
                   (!in->long_words || in->word + (int)(j - i) < WORD_MAX))
                j++;
            rc = buf_append(&in->text, p + i, j - i);
            in->space = 0;
            in->word += (int)(j - i);
            i = j;
        } else if ((k = utf8_decode(p + i, n - i, &cp)) == 0) {
            rc = buf_append(&in->text, "\xef\xbf\xbd", 3);
            in->space = 0;
            in->word++;
            i++;
        } else {
            if (cp >= 0x80 && cp < 0xa0) { /* C1 controls */
                i += k;
                continue;
            }
            rc = buf_append(&in->text, p + i, k);
            in->space = 0;
            in->word = cp == 0x200b ? 0 : in->word + 1;
            i += k;
        }
    }
    if (rc == 0)
        rc = inl_run(in, start, in->text.len, style);
    return rc;
}

/* A forced line break (<br>). */
static int
inl_newline(struct inl *in)
{
    int rc;

    inl_trim(in, 0);
    rc = buf_putc(&in->text, '\n');
    in->space = 1;
    in->word = 0;
    return rc;
}

/* A block boundary inside a table cell: a line break unless at the start
 * of the cell or of a line. */
static int
inl_break(struct inl *in)
{
    inl_trim(in, 0);
    in->space = 1;
    in->word = 0;
    if (in->text.len == 0 || in->text.data[in->text.len - 1] == '\n')
        return 0;
    return buf_putc(&in->text, '\n');
}

/* The pango attributes for the styled runs, NULL when there are none. */
static PangoAttrList *
inl_attrs(const struct inl *in)
{
    PangoAttrList *al;

    if (in->nruns == 0)
        return NULL;
    al = pango_attr_list_new();
    pango_attr_list_insert(al, no_ligatures());
    pango_attr_list_insert(al, no_hyphens());
    for (size_t i = 0; i < in->nruns; i++) {
        const struct run *r = &in->runs[i];
        size_t end = r->end < in->text.len ? r->end : in->text.len;
        PangoAttribute *a[3];
        int na = 0;

        if (r->start >= end)
            continue;
        if (r->style & ST_B)
            a[na++] = pango_attr_weight_new(PANGO_WEIGHT_BOLD);
        if (r->style & ST_I)
            a[na++] = pango_attr_style_new(PANGO_STYLE_ITALIC);
        if (r->style & ST_U)
            a[na++] = pango_attr_underline_new(PANGO_UNDERLINE_SINGLE);
        for (int k = 0; k < na; k++) {
            a[k]->start_index = (guint)r->start;
            a[k]->end_index = (guint)end;
            pango_attr_list_insert(al, a[k]);
        }
    }
    return al;
}

/* ---- blocks, pages ---- */

enum bkind { B_TEXT, B_RULE, B_IMAGE, B_TABLE };

struct cell {
    PangoLayout *lay;
    int col, span;
    int align; /* PangoAlignment */
    int th;
    double maxw, minw, h;
    double dx; /* alignment offset of a one-line cell */
};

struct row {
    size_t first, n; /* cells */
    int head;        /* from <thead> */
    double h;
};

struct table {
    struct cell *cells;
    size_t ncells, capcells;
    struct row *rows;
    size_t nrows, caprows;
    int ncols;
    double *colx;     /* ncols + 1 column edges from the table's left */
    size_t nhead;     /* leading header rows, repeated on later pages */
    int narrowed;     /* cells were laid out at their narrowest */
    double minh, cap; /* height so far at the least, room left */
    double headh;
};

struct block {
    enum bkind kind;
    double indent, w, h; /* h: rules and images */
    double sb, sa;       /* space before and after */
    int keep;            /* a heading: keep with what follows */
    PangoLayout *lay, *marker;
    int nlines;
    int *ly;   /* 2 * nlines: top and bottom of each line */
    int img;   /* index into images */
    int align; /* image alignment */
    struct table *t;
};

struct frag {
    int page;
    size_t block;
    size_t from, to; /* lines or rows */
    int head;        /* a table's header rows go first */
    double y;
};

struct list {
    int ordered, n;
};

struct imgc {
    cairo_surface_t *s;
    int w, h;
};

/* One render. */
struct rs {
    char *err;
    size_t errlen;
    const char *tname;
    int rc;
    struct fax_tls *tls;
    PangoContext *ctx;
    const struct content_image *images;
    size_t nimages;
    struct imgc *imgc;
    size_t pixels, imgtags, cells;
    double min_pt;
    int max_pages;

    /* geometry, points */
    double page_w, page_h, left, text_w, top, bottom, bottom1;
    double box_h;
    PangoLayout *notice;

    /* the walk */
    struct inl in, cellin;
    struct inl *cur;
    int in_cell;
    unsigned style;
    int font, align, keep;
    double sb, sa;
    double indent;
    int nlists;
    struct list lists[FAX_MAX_DEPTH + 1];
    char marker[16];
    int has_marker;

    /* blocks and their placement */
    struct block *blocks;
    size_t nblocks, capblocks;
    struct frag *frags;
    size_t nfrags, capfrags;
    int page, at_top;
    double y, prev_after;
};

static int fail(struct rs *rs, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct rs *rs, int rc, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    if (rs->rc)
        return rs->rc;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (rs->err && rs->errlen)
        snprintf(rs->err, rs->errlen, "template %s, part fax: %s", rs->tname,
                 msg);
    rs->rc = rc;
    return rc;
}

static int
nomem(struct rs *rs)
{
    return fail(rs, -ENOMEM, "out of memory");
}

/* A name from the markup, safe to quote in a one-line message. */
static const char *
quote(const char *s, char *out, size_t n)
{
    size_t i = 0;

    for (; *s && i + 4 < n; s++)
        out[i++] =
            ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '"' || *s == '\\')
                ? '?'
                : *s;
    if (*s)
        out[i++] = '.', out[i++] = '.', out[i++] = '.';
    out[i] = 0;
    return out;
}

static double
to_mm(double pt)
{
    return pt / MM;
}

static PangoLayout *
new_layout(struct rs *rs, int font, double width, int align)
{
    PangoLayout *l = pango_layout_new(rs->ctx);

    pango_layout_set_font_description(l, rs->tls->fd[font]);
    pango_layout_set_attributes(l, rs->tls->base);
    if (rs->tls->pt[font] < rs->min_pt)
        rs->min_pt = rs->tls->pt[font];
    if (width > 0) {
        pango_layout_set_width(l, (int)(width * SCALE));
        pango_layout_set_wrap(l, PANGO_WRAP_WORD_CHAR);
    }
    pango_layout_set_alignment(l, (PangoAlignment)align);
    return l;
}

static void
logical(PangoLayout *l, double *w, double *h)
{
    PangoRectangle r;

    pango_layout_get_extents(l, NULL, &r);
    if (w)
        *w = r.width / SCALE;
    if (h)
        *h = r.height / SCALE;
}

static void
table_free(struct table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->ncells; i++)
        if (t->cells[i].lay)
            g_object_unref(t->cells[i].lay);
    free(t->cells);
    free(t->rows);
    free(t->colx);
    free(t);
}

static void
block_free(struct block *b)
{
    if (b->lay)
        g_object_unref(b->lay);
    if (b->marker)
        g_object_unref(b->marker);
    free(b->ly);
    table_free(b->t);
}

static struct block *
block_new(struct rs *rs, enum bkind kind)
{
    struct block *b;

    if (rs->nblocks == rs->capblocks) {
        size_t n = rs->capblocks ? rs->capblocks * 2 : 32;
        if ((b = realloc(rs->blocks, n * sizeof *b)) == NULL)
            return NULL;
        rs->blocks = b;
        rs->capblocks = n;
    }
    b = &rs->blocks[rs->nblocks++];
    memset(b, 0, sizeof *b);
    b->kind = kind;
    b->indent = rs->indent;
    b->w = rs->text_w - rs->indent;
    return b;
}

static int
frag_add(struct rs *rs, size_t block, size_t from, size_t to, int head,
         double y)
{
    if (rs->nfrags == rs->capfrags) {
        size_t n = rs->capfrags ? rs->capfrags * 2 : 32;
        struct frag *f = realloc(rs->frags, n * sizeof *f);
        if (f == NULL)
            return nomem(rs);
        rs->frags = f;
        rs->capfrags = n;
    }
    rs->frags[rs->nfrags++] =
        (struct frag){ rs->page, block, from, to, head, y };
    return 0;
}

static double
page_bottom(const struct rs *rs)
{
    return rs->page == 1 ? rs->bottom1 : rs->bottom;
}

/* The height of a fragment as placed. */
static double
frag_height(const struct rs *rs, const struct frag *f)
{
    const struct block *b = &rs->blocks[f->block];
    double h = 0;

    switch (b->kind) {
    case B_TEXT:
        return (b->ly[2 * (f->to - 1) + 1] - b->ly[2 * f->from]) / SCALE;
    case B_TABLE:
        if (f->head)
            h = b->t->headh;
        for (size_t r = f->from; r < f->to; r++)
            h += b->t->rows[r].h;
        return h;
    default: return b->h;
    }
}

/* Start a new page. A whole heading left at the foot of the page goes to
 * the new page with what follows (keep). */
static int
page_break(struct rs *rs, int keep)
{
    struct frag *last = rs->nfrags ? &rs->frags[rs->nfrags - 1] : NULL;
    const struct block *lb = last ? &rs->blocks[last->block] : NULL;

    if (++rs->page > rs->max_pages)
        return fail(rs, GW_ETOOBIG,
                    "the fax needs more than %d pages (max_pages %d)",
                    rs->max_pages, rs->max_pages);
    rs->y = rs->top;
    rs->at_top = 1;
    rs->prev_after = 0;
    if (keep && last && last->page == rs->page - 1 && lb->keep &&
        last->from == 0 && (int)last->to == lb->nlines &&
        last->y > rs->top + EPS &&
        frag_height(rs, last) < (rs->bottom - rs->top) / 2) {
        last->page = rs->page;
        last->y = rs->top;
        rs->y = rs->top + frag_height(rs, last);
        rs->at_top = 0;
        rs->prev_after = lb->sa;
    }
    return 0;
}

static double
gap_before(const struct rs *rs, double sb)
{
    return rs->at_top ? 0 : dmax(rs->prev_after, sb);
}

static int
place_text(struct rs *rs, size_t bi)
{
    struct block *b = &rs->blocks[bi];
    int from = 0, rc;

    while (from < b->nlines) {
        double gap = gap_before(rs, b->sb);
        double room = page_bottom(rs) - (rs->y + gap);
        int top0 = b->ly[2 * from], to = from;

        while (to < b->nlines &&
               (b->ly[2 * to + 1] - top0) / SCALE <= room + EPS)
            to++;
        /* no first line alone at the foot, no last line alone at the top,
         * no heading split */
        if (from == 0 && to == 1 && b->nlines > 1 && !rs->at_top)
            to = 0;
        if (to < b->nlines && b->nlines - to == 1 && to - from >= 3)
            to--;
        if (b->keep && to < b->nlines && !rs->at_top &&
            (b->ly[2 * b->nlines - 1] - b->ly[0]) / SCALE <
                (rs->bottom - rs->top) / 2)
            to = from;
        if (to == from) {
            if (rs->at_top && (rs->page > 1 || rs->bottom1 >= rs->bottom))
                to = from + 1; /* a line taller than a page: let it be */
            else {
                if ((rc = page_break(rs, 1)) < 0)
                    return rc;
                continue;
            }
        }
        if ((rc = frag_add(rs, bi, from, to, 0, rs->y + gap)) < 0)
            return rc;
        rs->y += gap + (b->ly[2 * (to - 1) + 1] - top0) / SCALE;
        rs->prev_after = b->sa;
        rs->at_top = 0;
        from = to;
        if (from < b->nlines && (rc = page_break(rs, 0)) < 0)
            return rc;
    }
    return 0;
}

static int
place_simple(struct rs *rs, size_t bi)
{
    struct block *b = &rs->blocks[bi];
    double gap = gap_before(rs, b->sb);
    int rc;

    if (rs->y + gap + b->h > page_bottom(rs) + EPS) {
        if ((rc = page_break(rs, 1)) < 0)
            return rc;
        if (b->kind == B_RULE)
            return 0; /* a rule at the top of a page says nothing */
        gap = 0;
    }
    if ((rc = frag_add(rs, bi, 0, 1, 0, rs->y + gap)) < 0)
        return rc;
    rs->y += gap + b->h;
    rs->prev_after = b->sa;
    rs->at_top = 0;
    return 0;
}

static int
place_table(struct rs *rs, size_t bi)
{
    struct block *b = &rs->blocks[bi];
    struct table *t = b->t;
    size_t r = 0;
    int first = 1, rc;

    while (r < t->nrows) {
        double gap = gap_before(rs, b->sb);
        double room = page_bottom(rs) - (rs->y + gap);
        int head = !first && t->nhead > 0 && r >= t->nhead;
        double used;
        size_t to;

    again:
        used = head ? t->headh : 0;
        for (to = r; to < t->nrows && used + t->rows[to].h <= room + EPS; to++)
            used += t->rows[to].h;
        /* header rows alone at the foot of a page go with the rest */
        if (r == 0 && to < t->nrows && to <= t->nhead && !rs->at_top)
            to = r;
        if (to == r) {
            if (rs->at_top && head) {
                head = 0;
                goto again;
            }
            if (rs->at_top && (rs->page > 1 || rs->bottom1 >= rs->bottom))
                return fail(rs, GW_ETOOBIG,
                            "a table row is %.0f mm high, the page has %.0f mm",
                            to_mm(t->rows[r].h), to_mm(room));
            if ((rc = page_break(rs, 1)) < 0)
                return rc;
            continue;
        }
        if ((rc = frag_add(rs, bi, r, to, head, rs->y + gap)) < 0)
            return rc;
        rs->y += gap + used;
        rs->prev_after = b->sa;
        rs->at_top = 0;
        r = to;
        first = 0;
        if (r < t->nrows && (rc = page_break(rs, 0)) < 0)
            return rc;
    }
    return 0;
}

static int
place(struct rs *rs, size_t bi)
{
    switch (rs->blocks[bi].kind) {
    case B_TEXT: return place_text(rs, bi);
    case B_TABLE: return place_table(rs, bi);
    default: return place_simple(rs, bi);
    }
}

/* ---- making blocks ---- */

/* Measure each line of a text block, then place it. */
static int
text_block_done(struct rs *rs, struct block *b)
{
    PangoLayoutIter *it;
    int i = 0;

    b->nlines = pango_layout_get_line_count(b->lay);
    if ((b->ly = malloc(2 * (size_t)(b->nlines ? b->nlines : 1) *
                        sizeof *b->ly)) == NULL)
        return nomem(rs);
    it = pango_layout_get_iter(b->lay);
    do {
        if (i < b->nlines)
            pango_layout_iter_get_line_yrange(it, &b->ly[2 * i],
                                              &b->ly[2 * i + 1]);
        i++;
    } while (pango_layout_iter_next_line(it));
    pango_layout_iter_free(it);
    if (i < b->nlines)
        b->nlines = i;
    return place(rs, (size_t)(b - rs->blocks));
}

/* The paragraph gathered so far becomes a text block. An empty one is
 * dropped, unless it carries a pending list marker and force is set. */
static int
flush(struct rs *rs, int force)
{
    struct inl *in = &rs->in;
    struct block *b;
    PangoAttrList *al;

    inl_trim(in, 1);
    if (in->text.len == 0 && !(force && rs->has_marker)) {
        inl_reset(in);
        return 0;
    }
    if (in->text.len > FAX_MAX_PARA)
        return fail(rs, GW_ETOOBIG, "a paragraph of %zu bytes, the limit is %d",
                    in->text.len, FAX_MAX_PARA);
    if ((b = block_new(rs, B_TEXT)) == NULL)
        return nomem(rs);
    b->sb = rs->sb;
    b->sa = rs->sa;
    b->keep = rs->keep;
    b->lay = new_layout(rs, rs->font, b->w, rs->align);
    pango_layout_set_text(b->lay, buf_cstr(&in->text), (int)in->text.len);
    if ((al = inl_attrs(in)) != NULL) {
        pango_layout_set_attributes(b->lay, al);
        pango_attr_list_unref(al);
    }
    if (rs->has_marker) {
        b->marker = new_layout(rs, rs->font == F_TH ? F_BODY : rs->font, 0,
                               PANGO_ALIGN_LEFT);
        pango_layout_set_text(b->marker, rs->marker, -1);
        rs->has_marker = 0;
    }
    inl_reset(in);
    return text_block_done(rs, b);
}

/* Before a block that is not text: the paragraph so far, and an empty
 * line for a list marker still pending. */
static int
flush_all(struct rs *rs)
{
    int rc;

    if ((rc = flush(rs, 0)) < 0)
        return rc;
    return rs->has_marker ? flush(rs, 1) : 0;
}

/* ---- the walk ---- */

enum ek {
    E_INLINE,
    E_SKIP,
    E_B,
    E_I,
    E_U,
    E_BR,
    E_HR,
    E_P,
    E_H1,
    E_H2,
    E_H3,
    E_H4,
    E_DIV,
    E_CENTER,
    E_UL,
    E_OL,
    E_LI,
    E_TABLE,
    E_IMG,
    E_TR,
    E_TD,
    E_SECTION /* thead, tbody, tfoot, caption outside a table */
};

static const struct {
    const char *name;
    enum ek kind;
} elements[] = {
    { "a", E_INLINE },      { "address", E_DIV },   { "article", E_DIV },
    { "aside", E_DIV },     { "b", E_B },           { "blockquote", E_DIV },
    { "body", E_DIV },      { "br", E_BR },         { "caption", E_SECTION },
    { "center", E_CENTER }, { "dd", E_DIV },        { "div", E_DIV },
    { "dl", E_DIV },        { "dt", E_DIV },        { "em", E_I },
    { "embed", E_SKIP },    { "fieldset", E_DIV },  { "figcaption", E_DIV },
    { "figure", E_DIV },    { "footer", E_DIV },    { "form", E_DIV },
    { "h1", E_H1 },         { "h2", E_H2 },         { "h3", E_H3 },
    { "h4", E_H4 },         { "h5", E_H4 },         { "h6", E_H4 },
    { "head", E_SKIP },     { "header", E_DIV },    { "hr", E_HR },
    { "html", E_DIV },      { "i", E_I },           { "iframe", E_SKIP },
    { "img", E_IMG },       { "li", E_LI },         { "main", E_DIV },
    { "nav", E_DIV },       { "noscript", E_SKIP }, { "object", E_SKIP },
    { "ol", E_OL },         { "p", E_P },           { "pre", E_DIV },
    { "script", E_SKIP },   { "section", E_DIV },   { "strong", E_B },
    { "style", E_SKIP },    { "table", E_TABLE },   { "tbody", E_SECTION },
    { "td", E_TD },         { "template", E_SKIP }, { "tfoot", E_SECTION },
    { "th", E_TD },         { "thead", E_SECTION }, { "title", E_SKIP },
    { "tr", E_TR },         { "u", E_U },           { "ul", E_UL },
};

static enum ek
element_kind(const xmlChar *name)
{
    size_t lo = 0, hi = sizeof elements / sizeof elements[0];

    if (name == NULL)
        return E_INLINE;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp((const char *)name, elements[mid].name);
        if (c == 0)
            return elements[mid].kind;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return E_INLINE;
}

static const char *
attr(xmlNode *n, const char *name, char *tmp, size_t tmplen)
{
    for (xmlAttr *a = n->properties; a; a = a->next) {
        if (a->name && strcmp((const char *)a->name, name) == 0) {
            const xmlNode *v = a->children;
            if (v && v->type == XML_TEXT_NODE && v->content && !v->next)
                return (const char *)v->content;
            /* an attribute split into several nodes: copy what fits */
            snprintf(tmp, tmplen, "%s",
                     v && v->content ? (const char *)v->content : "");
            return tmp;
        }
    }
    return NULL;
}

/* A non-negative integer attribute (a trailing "px" is allowed); -1 when
 * absent or not a number. *pct is set for "NN%". */
static long
attr_num(xmlNode *n, const char *name, int *pct)
{
    char tmp[32];
    const char *v = attr(n, name, tmp, sizeof tmp);
    long x = 0;

    if (pct)
        *pct = 0;
    if (v == NULL)
        return -1;
    while (*v == ' ')
        v++;
    if (*v < '0' || *v > '9')
        return -1;
    for (; *v >= '0' && *v <= '9'; v++)
        if ((x = x * 10 + (*v - '0')) > 100000)
            return -1;
    if (*v == '%' && pct)
        *pct = 1;
    return x;
}

static int
attr_align(xmlNode *n, int dflt)
{
    char tmp[16];
    const char *v = attr(n, "align", tmp, sizeof tmp);

    if (v == NULL)
        return dflt;
    if (strcasecmp(v, "center") == 0 || strcasecmp(v, "middle") == 0)
        return PANGO_ALIGN_CENTER;
    if (strcasecmp(v, "right") == 0)
        return PANGO_ALIGN_RIGHT;
    if (strcasecmp(v, "left") == 0 || strcasecmp(v, "justify") == 0)
        return PANGO_ALIGN_LEFT;
    return dflt;
}

static int walk(struct rs *rs, xmlNode *n, int depth);

static int
walk_children(struct rs *rs, xmlNode *n, int depth)
{
    int rc;

    for (xmlNode *c = n->children; c; c = c->next)
        if ((rc = walk(rs, c, depth + 1)) < 0)
            return rc;
    return 0;
}

/* The index of the image an <img src> names, or -1. */
static int
image_find(struct rs *rs, const char *src)
{
    int cid = strncasecmp(src, "cid:", 4) == 0;

    for (size_t i = 0; i < rs->nimages; i++) {
        const struct content_image *im = &rs->images[i];
        if (cid ? im->content_id && strcmp(im->content_id, src + 4) == 0
                : im->name && strcmp(im->name, src) == 0)
            return (int)i;
    }
    return -1;
}

struct rd {
    const unsigned char *p;
    size_t n, off;
};

static cairo_status_t
png_read(void *closure, unsigned char *data, unsigned int len)
{
    struct rd *r = closure;

    if (len > r->n - r->off)
        return CAIRO_STATUS_READ_ERROR;
    memcpy(data, r->p + r->off, len);
    r->off += len;
    return CAIRO_STATUS_SUCCESS;
}

static uint32_t
be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* The size of a JPEG from its frame header (SOF0-2, 8-bit, 1, 3 or 4
 * components), checking the segments up to the scan and the end marker.
 * Like cairo's own reader, which the PDF backend uses to embed it, fill
 * bytes between segments are refused. 0, -1 (corrupt) or -2 (a JPEG
 * kind PDF viewers do not all decode: lossless, arithmetic, 12-bit). */
static int
jpeg_size(const unsigned char *p, size_t n, int *w, int *h)
{
    size_t i = 2;
    int sof = 0;

    if (n < 4 || p[0] != 0xff || p[1] != 0xd8)
        return -1;
    for (;;) {
        unsigned m;
        size_t len;

        if (n - i < 4 || p[i] != 0xff)
            return -1;
        m = p[i + 1];
        i += 2;
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd7))
            continue;
        if (m == 0xd8 || m == 0xd9 || m == 0xff || m == 0x00)
            return -1;
        len = (size_t)p[i] << 8 | p[i + 1];
        if (len < 2 || len > n - i)
            return -1;
        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
            if (sof || m > 0xc2)
                return sof ? -1 : -2;
            if (len < 8 || p[i + 2] != 8)
                return len < 8 ? -1 : -2;
            *h = p[i + 3] << 8 | p[i + 4];
            *w = p[i + 5] << 8 | p[i + 6];
            if (p[i + 7] != 1 && p[i + 7] != 3 && p[i + 7] != 4)
                return -2;
            if (len < 8 + 3 * (size_t)p[i + 7] || *w == 0 || *h == 0)
                return -1;
            sof = 1;
        }
        if (m == 0xda) {
            /* the scan: the data must end with EOI (trailing padding is
             * tolerated) */
            size_t k = n, stop = n > 64 ? n - 64 : 0;
            if (!sof)
                return -1;
            for (; k >= 2 && k > stop + 1; k--)
                if (p[k - 2] == 0xff && p[k - 1] == 0xd9)
                    return k - 2 > i ? 0 : -1;
            return -1;
        }
        i += len;
    }
}

static uint64_t
hash_bytes(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static const cairo_user_data_key_t png_key;

/* The encoded bytes a cached surface was made from. */
static void
cached_bytes(cairo_surface_t *s, const unsigned char **p, unsigned long *n)
{
    *p = cairo_surface_get_user_data(s, &png_key);
    if (*p) {
        memcpy(n, *p, sizeof *n);
        *p += sizeof *n;
        return;
    }
    cairo_surface_get_mime_data(s, CAIRO_MIME_TYPE_JPEG, p, n);
}

static struct cached_img *
cache_find(struct fax_tls *t, const unsigned char *p, size_t n, uint64_t h)
{
    for (int i = 0; i < IMG_CACHE_N; i++) {
        struct cached_img *c = &t->cache[i];
        const unsigned char *cp;
        unsigned long cn;
        if (c->s == NULL || c->hash != h || c->len != n)
            continue;
        cached_bytes(c->s, &cp, &cn);
        if (cp && cn == n && memcmp(cp, p, n) == 0) {
            c->used = ++t->tick;
            return c;
        }
    }
    return NULL;
}

/* Keep s (a new reference) for bytes of hash h, evicting the least
 * recently used entries to stay under the caps. */
static void
cache_put(struct fax_tls *t, cairo_surface_t *s, size_t n, uint64_t h, int w,
          int ht)
{
    size_t pixels = (size_t)w * (size_t)ht;
    struct cached_img *slot;

    if (n > IMG_CACHE_BYTES || pixels > IMG_CACHE_PIXELS)
        return;
    for (;;) {
        size_t total = pixels;
        struct cached_img *lru = NULL, *free_slot = NULL;
        for (int i = 0; i < IMG_CACHE_N; i++) {
            struct cached_img *c = &t->cache[i];
            if (c->s == NULL) {
                free_slot = c;
                continue;
            }
            total += (size_t)c->w * (size_t)c->h;
            if (lru == NULL || c->used < lru->used)
                lru = c;
        }
        if (free_slot && total <= IMG_CACHE_PIXELS) {
            slot = free_slot;
            break;
        }
        cairo_surface_destroy(lru->s); /* a render using it holds a ref */
        lru->s = NULL;
    }
    *slot = (struct cached_img){
        cairo_surface_reference(s), h, ++t->tick, n, w, ht
    };
}

/* A decoded PNG turned opaque grey, as printed on white paper: the PDF
 * then carries one grey channel instead of RGB and alpha. A picture that
 * is nearly all black and white (a logo, with anti-aliased edges) becomes
 * pure black and white, which the PDF holds in 1 bit a pixel: a fax is
 * bilevel anyway, and deflating the bigger image cost more than the rest
 * of the page. */
static void
png_to_grey(cairo_surface_t *s)
{
    cairo_format_t f = cairo_image_surface_get_format(s);
    int w = cairo_image_surface_get_width(s);
    int h = cairo_image_surface_get_height(s);
    int stride = cairo_image_surface_get_stride(s);
    size_t mid = 0;
    unsigned char *d;

    if (f != CAIRO_FORMAT_ARGB32 && f != CAIRO_FORMAT_RGB24)
        return;
    cairo_surface_flush(s);
    d = cairo_image_surface_get_data(s);
    for (int y = 0; y < h; y++) {
        uint32_t *px = (uint32_t *)(void *)(d + (size_t)y * (size_t)stride);
        for (int x = 0; x < w; x++) {
            uint32_t v = px[x];
            uint32_t a = f == CAIRO_FORMAT_ARGB32 ? v >> 24 : 255;
            uint32_t r = ((v >> 16) & 0xff) + 255 - a;
            uint32_t g = ((v >> 8) & 0xff) + 255 - a;
            uint32_t b = (v & 0xff) + 255 - a;
            uint32_t l = (77 * r + 150 * g + 29 * b + 128) >> 8;
            if (l > 255)
                l = 255;
            mid += l >= 48 && l <= 207;
            px[x] = 0xff000000u | l << 16 | l << 8 | l;
        }
    }
    if (mid <= (size_t)w * (size_t)h / 20)
        for (int y = 0; y < h; y++) {
            uint32_t *px = (uint32_t *)(void *)(d + (size_t)y * (size_t)stride);
            for (int x = 0; x < w; x++)
                px[x] = (px[x] & 0xff) >= 128 ? 0xffffffffu : 0xff000000u;
        }
    cairo_surface_mark_dirty(s);
}

/* A surface for a PNG (decoded, grey) or a JPEG (blank, carrying the JPEG
 * as mime data that the PDF backend embeds as it is: cairo cannot decode
 * JPEG). Either owns a copy of the encoded bytes. NULL on corrupt data. */
static cairo_surface_t *
image_surface(const unsigned char *p, size_t n, int w, int h, int png)
{
    cairo_surface_t *s;
    unsigned char *copy;

    if (png) {
        struct rd r = { p, n, 0 };
        s = cairo_image_surface_create_from_png_stream(png_read, &r);
        if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS ||
            cairo_image_surface_get_width(s) != w ||
            cairo_image_surface_get_height(s) != h) {
            cairo_surface_destroy(s);
            return NULL;
        }
        png_to_grey(s);
        if ((copy = malloc(sizeof(unsigned long) + n)) != NULL) {
            unsigned long ln = n;
            memcpy(copy, &ln, sizeof ln);
            memcpy(copy + sizeof ln, p, n);
            if (cairo_surface_set_user_data(s, &png_key, copy, free) !=
                CAIRO_STATUS_SUCCESS)
                free(copy);
        }
        return s;
    }
    s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if ((copy = malloc(n)) == NULL ||
        cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        free(copy);
        cairo_surface_destroy(s);
        return NULL;
    }
    memcpy(copy, p, n);
    if (cairo_surface_set_mime_data(s, CAIRO_MIME_TYPE_JPEG, copy, n, free,
                                    copy) != CAIRO_STATUS_SUCCESS) {
        free(copy);
        cairo_surface_destroy(s);
        return NULL;
    }
    return s;
}

/* Check image i, then find it in this thread's cache or make it; once per
 * render. */
static int
image_load(struct rs *rs, int i, const char *src)
{
    const struct content_image *im = &rs->images[i];
    struct imgc *c = &rs->imgc[i];
    struct cached_img *ce;
    char q[80];
    int w = 0, h = 0, jr, png;
    uint64_t hash;
    cairo_surface_t *s;

    if (c->s)
        return 0;
    quote(src, q, sizeof q);
    if (im->data == NULL || im->len < 8)
        return fail(rs, GW_EINVAL, "image \"%s\" is empty or corrupt", q);
    png = memcmp(im->data, "\x89PNG\r\n\x1a\n", 8) == 0;
    if (png) {
        if (im->len < 33 || memcmp(im->data + 12, "IHDR", 4) != 0)
            return fail(rs, GW_EINVAL, "image \"%s\" is a corrupt PNG", q);
        if (be32(im->data + 16) > FAX_MAX_IMG_DIM ||
            be32(im->data + 20) > FAX_MAX_IMG_DIM)
            return fail(rs, GW_ETOOBIG,
                        "image \"%s\" is %lux%lu pixels, the limit is %dx%d", q,
                        (unsigned long)be32(im->data + 16),
                        (unsigned long)be32(im->data + 20), FAX_MAX_IMG_DIM,
                        FAX_MAX_IMG_DIM);
        w = (int)be32(im->data + 16);
        h = (int)be32(im->data + 20);
    } else if ((jr = jpeg_size(im->data, im->len, &w, &h)) < 0) {
        if (jr == -2)
            return fail(rs, GW_EINVAL,
                        "image \"%s\" is a JPEG of a kind fax PDFs cannot "
                        "carry (use baseline or progressive, 8-bit)",
                        q);
        if (im->data[0] == 0xff && im->data[1] == 0xd8)
            return fail(rs, GW_EINVAL, "image \"%s\" is a corrupt JPEG", q);
        return fail(rs, GW_EINVAL, "image \"%s\" is not PNG or JPEG", q);
    }
    if (w <= 0 || h <= 0 || w > FAX_MAX_IMG_DIM || h > FAX_MAX_IMG_DIM)
        return fail(rs, w <= 0 || h <= 0 ? GW_EINVAL : GW_ETOOBIG,
                    "image \"%s\" is %dx%d pixels, the limit is %dx%d", q, w, h,
                    FAX_MAX_IMG_DIM, FAX_MAX_IMG_DIM);
    if ((rs->pixels += (size_t)w * (size_t)h) > FAX_MAX_IMG_PIXELS)
        return fail(rs, GW_ETOOBIG,
                    "images hold more than %d pixels in all (at \"%s\")",
                    FAX_MAX_IMG_PIXELS, q);
    hash = hash_bytes(im->data, im->len);
    if ((ce = cache_find(rs->tls, im->data, im->len, hash)) != NULL) {
        s = cairo_surface_reference(ce->s);
    } else {
        if ((s = image_surface(im->data, im->len, w, h, png)) == NULL)
            return fail(rs, GW_EINVAL, "image \"%s\" is a corrupt %s", q,
                        png ? "PNG" : "JPEG");
        cache_put(rs->tls, s, im->len, hash, w, h);
    }
    c->s = s;
    c->w = w;
    c->h = h;
    return 0;
}

static int
do_img(struct rs *rs, xmlNode *n)
{
    char tmp[256], q[80];
    const char *src = attr(n, "src", tmp, sizeof tmp);
    struct block *b;
    struct imgc *c;
    double w, h, maxw, maxh;
    long aw, ah;
    int i, wpct, hpct, rc;

    if (src == NULL || *src == 0)
        return 0;
    if (++rs->imgtags > FAX_MAX_IMG_TAGS)
        return fail(rs, GW_ETOOBIG, "more than %d images", FAX_MAX_IMG_TAGS);
    if ((i = image_find(rs, src)) < 0)
        return fail(rs, GW_ENOTFOUND, "image \"%s\" not found",
                    quote(src, q, sizeof q));
    if (rs->in_cell) { /* no images in table cells: their alt text */
        const char *alt = attr(n, "alt", tmp, sizeof tmp);
        return alt ? inl_text(rs->cur, alt, strlen(alt), rs->style) : 0;
    }
    if ((rc = image_load(rs, i, src)) < 0 || (rc = flush_all(rs)) < 0)
        return rc;
    c = &rs->imgc[i];
    aw = attr_num(n, "width", &wpct);
    ah = attr_num(n, "height", &hpct);
    maxw = rs->text_w - rs->indent;
    maxh = dmin(rs->bottom1, rs->bottom) - rs->top;
    w = aw > 0 ? (wpct ? maxw * aw / 100.0 : aw * PX) : -1;
    h = ah > 0 && !hpct ? ah * PX : -1;
    if (w < 0 && h < 0) {
        w = c->w * PX;
        h = c->h * PX;
    } else if (w < 0) {
        w = h * c->w / c->h;
    } else if (h < 0) {
        h = w * c->h / c->w;
    }
    if (w > maxw) {
        h *= maxw / w;
        w = maxw;
    }
    if (h > maxh) {
        w *= maxh / h;
        h = maxh;
    }
    if ((b = block_new(rs, B_IMAGE)) == NULL)
        return nomem(rs);
    b->img = i;
    b->w = w;
    b->h = h;
    b->sb = 4;
    b->sa = 6;
    b->align = attr_align(n, PANGO_ALIGN_LEFT);
    return place(rs, rs->nblocks - 1);
}

/* ---- tables ---- */

static struct row *
row_new(struct table *t, int head)
{
    if (t->nrows == t->caprows) {
        size_t n = t->caprows ? t->caprows * 2 : 16;
        struct row *r = realloc(t->rows, n * sizeof *r);
        if (r == NULL)
            return NULL;
        t->rows = r;
        t->caprows = n;
    }
    t->rows[t->nrows] = (struct row){ t->ncells, 0, head, 0 };
    return &t->rows[t->nrows++];
}

static int
table_cell(struct rs *rs, struct table *t, struct row *r, xmlNode *td,
           int depth)
{
    int th = td->name && strcmp((const char *)td->name, "th") == 0;
    long span = attr_num(td, "colspan", NULL);
    struct inl *saved_cur = rs->cur;
    unsigned saved_style = rs->style;
    int saved_cell = rs->in_cell, col = 0, rc;
    struct cell *c;
    PangoAttrList *al;
    double h;

    if (++rs->cells > FAX_MAX_CELLS)
        return fail(rs, GW_ETOOBIG, "tables hold more than %d cells",
                    FAX_MAX_CELLS);
    if (span < 1)
        span = 1;
    if (span > FAX_MAX_COLS)
        span = FAX_MAX_COLS;
    if (r->n > 0) {
        c = &t->cells[r->first + r->n - 1];
        col = c->col + c->span;
    }
    if (col + span > FAX_MAX_COLS)
        return fail(rs, GW_ETOOBIG,
                    "table of more than %d columns does not fit the page",
                    FAX_MAX_COLS);
    inl_reset(&rs->cellin);
    rs->cur = &rs->cellin;
    rs->in_cell = 1;
    rs->style = th ? ST_B : 0;
    rc = walk_children(rs, td, depth);
    rs->cur = saved_cur;
    rs->style = saved_style;
    rs->in_cell = saved_cell;
    if (rc < 0)
        return rc;
    inl_trim(&rs->cellin, 1);
    if (rs->cellin.text.len > FAX_MAX_CELL)
        return fail(rs, GW_ETOOBIG,
                    "a table cell of %zu bytes, the limit is %d",
                    rs->cellin.text.len, FAX_MAX_CELL);
    if (t->ncells == t->capcells) {
        size_t n = t->capcells ? t->capcells * 2 : 32;
        struct cell *nc = realloc(t->cells, n * sizeof *nc);
        if (nc == NULL)
            return nomem(rs);
        t->cells = nc;
        t->capcells = n;
    }
    c = &t->cells[t->ncells++];
    memset(c, 0, sizeof *c);
    r->n++;
    c->col = col;
    c->span = (int)span;
    c->th = th;
    c->align = attr_align(td, PANGO_ALIGN_LEFT);
    c->lay = new_layout(rs, th ? F_TH : F_TABLE, 0, c->align);
    pango_layout_set_text(c->lay, buf_cstr(&rs->cellin.text),
                          (int)rs->cellin.text.len);
    if ((al = inl_attrs(&rs->cellin)) != NULL) {
        pango_layout_set_attributes(c->lay, al);
        pango_attr_list_unref(al);
    }
    /* a row is at least as high as its cells unwrapped: stop laying out
     * a table that cannot fit the pages left */
    logical(c->lay, &c->maxw, &h);
    if (h + 2 * CELL_PADY > r->h) {
        t->minh += h + 2 * CELL_PADY - r->h;
        r->h = h + 2 * CELL_PADY;
    }
    if (t->minh > t->cap)
        return fail(rs, GW_ETOOBIG,
                    "the fax needs more than %d pages (max_pages %d)",
                    rs->max_pages, rs->max_pages);
    return 0;
}

/* Rows of a table: <tr>s, also inside <thead>/<tbody>/<tfoot>, and cells
 * outside any <tr> as rows of their own. */
static int
table_rows(struct rs *rs, struct table *t, xmlNode *parent, int head, int depth)
{
    struct row *open = NULL;
    int rc;

    if (depth > FAX_MAX_DEPTH)
        return fail(rs, GW_ETOOBIG, "markup is nested deeper than %d elements",
                    FAX_MAX_DEPTH);
    for (xmlNode *c = parent->children; c; c = c->next) {
        enum ek k;
        if (c->type != XML_ELEMENT_NODE)
            continue;
        k = element_kind(c->name);
        if (k == E_TR) {
            struct row *r = row_new(t, head);
            open = NULL;
            if (r == NULL)
                return nomem(rs);
            for (xmlNode *d = c->children; d; d = d->next) {
                if (d->type != XML_ELEMENT_NODE ||
                    element_kind(d->name) != E_TD)
                    continue;
                /* rows may move as cells are added: index, not pointer */
                if ((rc = table_cell(rs, t, &t->rows[t->nrows - 1], d,
                                     depth + 2)) < 0)
                    return rc;
            }
            if (t->rows[t->nrows - 1].n == 0)
                t->nrows--;
        } else if (k == E_TD) {
            if (open == NULL && (open = row_new(t, head)) == NULL)
                return nomem(rs);
            if ((rc = table_cell(rs, t, open, c, depth + 1)) < 0)
                return rc;
        } else if (k == E_SECTION) {
            open = NULL;
            if (strcmp((const char *)c->name, "caption") == 0)
                continue;
            if ((rc = table_rows(rs, t, c,
                                 strcmp((const char *)c->name, "thead") == 0,
                                 depth + 1)) < 0)
                return rc;
        } else if (k != E_SKIP) {
            open = NULL;
            if ((rc = table_rows(rs, t, c, head, depth + 1)) < 0)
                return rc;
        }
    }
    return 0;
}

/* Column widths as HTML's automatic table layout: each column gets its
 * widest content if all fit, else its narrowest (longest word) plus a
 * share of the room left; the narrowest must fit. */
static int
table_columns(struct rs *rs, struct table *t, double avail)
{
    double *mx = calloc((size_t)t->ncols, sizeof *mx);
    double *mn = calloc((size_t)t->ncols, sizeof *mn);
    double smax = 0, smin = 0;
    int rc = 0;

    if (mx == NULL || mn == NULL) {
        free(mx);
        free(mn);
        return nomem(rs);
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int spans = 0; spans < 2; spans++) {
            for (size_t i = 0; i < t->ncells; i++) {
                struct cell *c = &t->cells[i];
                double need = (pass ? c->minw : c->maxw) + 2 * CELL_PADX;
                double *v = pass ? mn : mx, have = 0;
                if ((c->span > 1) != spans)
                    continue;
                for (int k = c->col; k < c->col + c->span; k++)
                    have += v[k];
                if (need > have)
                    for (int k = c->col; k < c->col + c->span; k++)
                        v[k] += (need - have) / c->span;
            }
        }
        if (pass == 0) {
            for (int k = 0; k < t->ncols; k++)
                smax += mx[k];
            if (smax <= avail + EPS)
                break;
            /* the narrowest each cell can be: one word a line */
            t->narrowed = 1;
            for (size_t i = 0; i < t->ncells; i++) {
                struct cell *c = &t->cells[i];
                pango_layout_set_wrap(c->lay, PANGO_WRAP_WORD);
                pango_layout_set_width(c->lay, 1);
                logical(c->lay, &c->minw, NULL);
            }
        } else {
            for (int k = 0; k < t->ncols; k++) {
                if (mx[k] < mn[k])
                    mx[k] = mn[k];
                smin += mn[k];
            }
            smax = 0;
            for (int k = 0; k < t->ncols; k++)
                smax += mx[k];
            if (smin > avail + EPS) {
                rc = fail(rs, GW_EINVAL,
                          "table of %d columns is %.0f mm wide, the page has "
                          "%.0f mm",
                          t->ncols, to_mm(smin), to_mm(avail));
                goto out;
            }
            for (int k = 0; k < t->ncols; k++)
                mx[k] = smax - smin > EPS
                            ? mn[k] + (mx[k] - mn[k]) * (avail - smin) /
                                          (smax - smin)
                            : mn[k];
        }
    }
    t->colx[0] = 0;
    for (int k = 0; k < t->ncols; k++)
        t->colx[k + 1] = t->colx[k] + mx[k];
out:
    free(mx);
    free(mn);
    return rc;
}

static int
do_table(struct rs *rs, xmlNode *n, int depth)
{
    struct table *t;
    struct block *b;
    double avail = rs->text_w - rs->indent, pageh = rs->bottom - rs->top;
    int rc;

    if ((rc = flush_all(rs)) < 0)
        return rc;
    /* a caption: a centred bold line above the table */
    for (xmlNode *c = n->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE && c->name &&
            strcmp((const char *)c->name, "caption") == 0) {
            int saved_align = rs->align;
            unsigned saved_style = rs->style;
            rs->align = PANGO_ALIGN_CENTER;
            rs->style |= ST_B;
            rc = walk_children(rs, c, depth + 1);
            if (rc == 0)
                rc = flush(rs, 0);
            rs->align = saved_align;
            rs->style = saved_style;
            if (rc < 0)
                return rc;
        }
    }
    if ((t = calloc(1, sizeof *t)) == NULL)
        return nomem(rs);
    t->cap = page_bottom(rs) - rs->y + (rs->max_pages - rs->page) * pageh;
    if ((rc = table_rows(rs, t, n, 0, depth + 1)) < 0)
        goto fail;
    if (t->nrows == 0) {
        table_free(t);
        return 0;
    }
    for (size_t r = 0; r < t->nrows; r++) {
        const struct row *row = &t->rows[r];
        const struct cell *c = &t->cells[row->first + row->n - 1];
        if (c->col + c->span > t->ncols)
            t->ncols = c->col + c->span;
    }
    if ((t->colx = calloc((size_t)t->ncols + 1, sizeof *t->colx)) == NULL) {
        rc = nomem(rs);
        goto fail;
    }
    if ((rc = table_columns(rs, t, avail)) < 0)
        goto fail;
    for (size_t r = 0; r < t->nrows; r++) {
        struct row *row = &t->rows[r];
        row->h = 0;
        for (size_t i = row->first; i < row->first + row->n; i++) {
            struct cell *c = &t->cells[i];
            double w =
                t->colx[c->col + c->span] - t->colx[c->col] - 2 * CELL_PADX;
            /* a width makes pango lay the cell out again: only when it
             * must wrap, or align several lines */
            if (c->maxw > w + EPS || t->narrowed ||
                (c->align != PANGO_ALIGN_LEFT &&
                 pango_layout_get_line_count(c->lay) > 1)) {
                pango_layout_set_wrap(c->lay, PANGO_WRAP_WORD_CHAR);
                pango_layout_set_width(c->lay, (int)(w * SCALE));
            } else if (c->align == PANGO_ALIGN_RIGHT) {
                c->dx = w - c->maxw;
            } else if (c->align == PANGO_ALIGN_CENTER) {
                c->dx = (w - c->maxw) / 2;
            }
            logical(c->lay, NULL, &c->h);
            if (c->h + 2 * CELL_PADY > row->h)
                row->h = c->h + 2 * CELL_PADY;
        }
    }
    /* header rows: those of <thead>, else leading rows of <th> only */
    while (t->nhead < t->nrows && t->rows[t->nhead].head)
        t->nhead++;
    if (t->nhead == 0) {
        for (size_t r = 0; r < t->nrows; r++) {
            int allth = 1;
            for (size_t i = t->rows[r].first;
                 i < t->rows[r].first + t->rows[r].n; i++)
                if (!t->cells[i].th)
                    allth = 0;
            if (!allth)
                break;
            t->nhead++;
        }
    }
    for (size_t r = 0; r < t->nhead; r++)
        t->headh += t->rows[r].h;
    if (t->nhead == t->nrows || t->headh > pageh / 3) {
        t->nhead = 0;
        t->headh = 0;
    }
    if ((b = block_new(rs, B_TABLE)) == NULL) {
        rc = nomem(rs);
        goto fail;
    }
    b->t = t;
    b->w = t->colx[t->ncols];
    b->sb = 4;
    b->sa = 8;
    return place(rs, rs->nblocks - 1);
fail:
    table_free(t);
    return rc;
}

/* ---- elements ---- */

/* A block element: its own font, alignment and spacing for the text in
 * it, restored afterwards. */
static int
do_block(struct rs *rs, xmlNode *n, int depth, int font, double sb, double sa,
         int keep, int align)
{
    int sfont = rs->font, salign = rs->align, skeep = rs->keep, rc;
    double ssb = rs->sb, ssa = rs->sa;

    if ((rc = flush(rs, 0)) < 0)
        return rc;
    rs->font = font;
    rs->align = attr_align(n, align);
    rs->keep = keep;
    rs->sb = sb;
    rs->sa = sa;
    if ((rc = walk_children(rs, n, depth)) == 0)
        rc = flush(rs, 0);
    rs->font = sfont;
    rs->align = salign;
    rs->keep = skeep;
    rs->sb = ssb;
    rs->sa = ssa;
    return rc;
}

static int
do_list(struct rs *rs, xmlNode *n, int depth, int ordered)
{
    double sindent = rs->indent, ssa = rs->sa;
    long start = ordered ? attr_num(n, "start", NULL) : -1;
    int rc;

    if ((rc = flush_all(rs)) < 0)
        return rc;
    rs->lists[rs->nlists++] =
        (struct list){ ordered, start > 0 ? (int)start - 1 : 0 };
    if (rs->nlists <= LIST_LEVELS)
        rs->indent += LIST_INDENT;
    rs->sa = 2;
    if ((rc = walk_children(rs, n, depth)) == 0)
        rc = flush_all(rs);
    rs->nlists--;
    rs->indent = sindent;
    rs->sa = ssa;
    if (rs->nlists == 0)
        rs->prev_after = dmax(rs->prev_after, 0.6 * rs->tls->pt[F_BODY]);
    return rc;
}

static int
do_li(struct rs *rs, xmlNode *n, int depth)
{
    static const char *bullets[] = { "\xe2\x80\xa2", "\xe2\x97\xa6",
                                     "\xe2\x96\xaa" };
    double sindent = rs->indent;
    int rc;

    if ((rc = flush_all(rs)) < 0)
        return rc;
    if (rs->nlists == 0) /* a stray <li>: as in a <ul> */
        rs->indent += LIST_INDENT;
    if (rs->nlists > 0 && rs->lists[rs->nlists - 1].ordered)
        snprintf(rs->marker, sizeof rs->marker, "%d.",
                 ++rs->lists[rs->nlists - 1].n);
    else
        snprintf(rs->marker, sizeof rs->marker, "%s",
                 bullets[(rs->nlists ? rs->nlists - 1 : 0) % 3]);
    rs->has_marker = 1;
    if ((rc = walk_children(rs, n, depth)) == 0)
        rc = flush(rs, 1);
    rs->has_marker = 0;
    rs->indent = sindent;
    return rc;
}

static int
do_rule(struct rs *rs)
{
    struct block *b;
    int rc;

    if ((rc = flush_all(rs)) < 0)
        return rc;
    if ((b = block_new(rs, B_RULE)) == NULL)
        return nomem(rs);
    b->h = 1;
    b->sb = b->sa = 6;
    return place(rs, rs->nblocks - 1);
}

/* An element inside a table cell: text only, blocks become lines. */
static int
walk_cell(struct rs *rs, xmlNode *n, enum ek k, int depth)
{
    unsigned saved = rs->style;
    int rc = 0;

    switch (k) {
    case E_BR: return inl_newline(rs->cur);
    case E_HR: return inl_break(rs->cur);
    case E_IMG: return do_img(rs, n);
    case E_TD:
        if ((rc = inl_text(rs->cur, " ", 1, 0)) == 0 &&
            (rc = walk_children(rs, n, depth)) == 0)
            rc = inl_text(rs->cur, " ", 1, 0);
        return rc;
    case E_H1:
    case E_H2:
    case E_H3:
    case E_H4:
        rs->style |= ST_B;
        /* fall through */
    case E_P:
    case E_DIV:
    case E_CENTER:
    case E_UL:
    case E_OL:
    case E_TABLE:
    case E_TR:
    case E_SECTION:
        if ((rc = inl_break(rs->cur)) == 0 &&
            (rc = walk_children(rs, n, depth)) == 0)
            rc = inl_break(rs->cur);
        rs->style = saved;
        return rc;
    case E_LI:
        if ((rc = inl_break(rs->cur)) == 0 &&
            (rc = inl_text(rs->cur, "\xe2\x80\xa2 ", 4, 0)) == 0 &&
            (rc = walk_children(rs, n, depth)) == 0)
            rc = inl_break(rs->cur);
        return rc;
    default: return walk_children(rs, n, depth);
    }
}

static int
walk(struct rs *rs, xmlNode *n, int depth)
{
    unsigned saved = rs->style;
    double body = rs->tls->pt[F_BODY];
    enum ek k;
    int rc;

    if (depth > FAX_MAX_DEPTH)
        return fail(rs, GW_ETOOBIG, "markup is nested deeper than %d elements",
                    FAX_MAX_DEPTH);
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE)
        return n->content
                   ? inl_text(rs->cur, (const char *)n->content,
                              strlen((const char *)n->content), rs->style)
                   : 0;
    if (n->type != XML_ELEMENT_NODE)
        return 0;
    k = element_kind(n->name);
    switch (k) {
    case E_SKIP: return 0;
    case E_B:
    case E_I:
    case E_U:
        rs->style |= k == E_B ? ST_B : k == E_I ? ST_I : ST_U;
        rc = walk_children(rs, n, depth);
        rs->style = saved;
        return rc;
    case E_INLINE: return walk_children(rs, n, depth);
    default: break;
    }
    if (rs->in_cell)
        return walk_cell(rs, n, k, depth);
    switch (k) {
    case E_BR: return inl_newline(rs->cur);
    case E_HR: return do_rule(rs);
    case E_P:
        return do_block(rs, n, depth, rs->font, 0, 0.6 * body, 0, rs->align);
    case E_H1: return do_block(rs, n, depth, F_H1, 12, 6, 1, rs->align);
    case E_H2: return do_block(rs, n, depth, F_H2, 10, 5, 1, rs->align);
    case E_H3: return do_block(rs, n, depth, F_H3, 8, 4, 1, rs->align);
    case E_H4: return do_block(rs, n, depth, F_H4, 6, 3, 1, rs->align);
    case E_DIV:
    case E_TR:
    case E_SECTION:
        return do_block(rs, n, depth, rs->font, rs->sb, rs->sa, 0, rs->align);
    case E_CENTER:
        return do_block(rs, n, depth, rs->font, rs->sb, rs->sa, 0,
                        PANGO_ALIGN_CENTER);
    case E_UL:
    case E_OL: return do_list(rs, n, depth, k == E_OL);
    case E_LI: return do_li(rs, n, depth);
    case E_TABLE: return do_table(rs, n, depth);
    case E_IMG: return do_img(rs, n);
    case E_TD: /* a cell outside a table */
        if ((rc = inl_text(rs->cur, " ", 1, 0)) == 0 &&
            (rc = walk_children(rs, n, depth)) == 0)
            rc = inl_text(rs->cur, " ", 1, 0);
        return rc;
    default: return walk_children(rs, n, depth);
    }
}

/* ---- drawing ---- */

static void
draw_text(struct rs *rs, cairo_t *cr, const struct frag *f)
{
    const struct block *b = &rs->blocks[f->block];
    double x0 = rs->left + b->indent, top0 = b->ly[2 * f->from];
    PangoLayoutIter *it = pango_layout_get_iter(b->lay);
    size_t i = 0;

    do {
        if (i >= f->to)
            break;
        if (i >= f->from) {
            PangoRectangle lr;
            int base = pango_layout_iter_get_baseline(it);
            pango_layout_iter_get_line_extents(it, NULL, &lr);
            cairo_move_to(cr, x0 + lr.x / SCALE, f->y + (base - top0) / SCALE);
            pango_cairo_show_layout_line(
                cr, pango_layout_iter_get_line_readonly(it));
            if (i == 0 && b->marker) {
                double mw;
                int mbase = pango_layout_get_baseline(b->marker);
                logical(b->marker, &mw, NULL);
                cairo_move_to(cr, x0 - MARKER_GAP - mw,
                              f->y + (base - top0 - mbase) / SCALE);
                pango_cairo_show_layout(cr, b->marker);
            }
        }
        i++;
    } while (pango_layout_iter_next_line(it));
    pango_layout_iter_free(it);
}

/* The i-th row drawn in a fragment: repeated header rows first. */
static const struct row *
frag_row(const struct table *t, const struct frag *f, size_t i)
{
    size_t nh = f->head ? t->nhead : 0;

    return &t->rows[i < nh ? i : f->from + (i - nh)];
}

/* A border line as a thin filled rectangle: one fill for the whole grid
 * costs far less in cairo's PDF backend than stroking every cell. */
static void
hline(cairo_t *cr, double x0, double x1, double y)
{
    cairo_rectangle(cr, x0 - BORDER / 2, y - BORDER / 2, x1 - x0 + BORDER,
                    BORDER);
}

static void
draw_table(struct rs *rs, cairo_t *cr, const struct frag *f)
{
    const struct block *b = &rs->blocks[f->block];
    const struct table *t = b->t;
    size_t n = (f->head ? t->nhead : 0) + (f->to - f->from);
    double x0 = rs->left + b->indent, y = f->y, pl = 0, pr = 0;
    double run[FAX_MAX_COLS + 1];
    unsigned char mark[FAX_MAX_COLS + 1];

    /* the grid: above each row a line across it and the row before, the
     * last row's foot, and each column edge as long as rows share it */
    for (int k = 0; k <= t->ncols; k++)
        run[k] = -1;
    for (size_t i = 0; i < n; i++) {
        const struct row *r = frag_row(t, f, i);
        double l = 1e9, rt = -1e9;
        memset(mark, 0, (size_t)t->ncols + 1);
        for (size_t j = r->first; j < r->first + r->n; j++) {
            const struct cell *c = &t->cells[j];
            mark[c->col] = mark[c->col + c->span] = 1;
            l = dmin(l, t->colx[c->col]);
            rt = dmax(rt, t->colx[c->col + c->span]);
        }
        hline(cr, x0 + (i ? dmin(l, pl) : l), x0 + (i ? dmax(rt, pr) : rt), y);
        for (int k = 0; k <= t->ncols; k++) {
            if (mark[k] && run[k] < 0) {
                run[k] = y;
            } else if (!mark[k] && run[k] >= 0) {
                cairo_rectangle(cr, x0 + t->colx[k] - BORDER / 2, run[k],
                                BORDER, y - run[k]);
                run[k] = -1;
            }
        }
        y += r->h;
        pl = l;
        pr = rt;
    }
    hline(cr, x0 + pl, x0 + pr, y);
    for (int k = 0; k <= t->ncols; k++)
        if (run[k] >= 0)
            cairo_rectangle(cr, x0 + t->colx[k] - BORDER / 2, run[k], BORDER,
                            y - run[k]);
    cairo_fill(cr);

    y = f->y;
    for (size_t i = 0; i < n; i++) {
        const struct row *r = frag_row(t, f, i);
        for (size_t j = r->first; j < r->first + r->n; j++) {
            const struct cell *c = &t->cells[j];
            cairo_move_to(cr, x0 + t->colx[c->col] + CELL_PADX + c->dx,
                          y + CELL_PADY);
            pango_cairo_show_layout(cr, c->lay);
        }
        y += r->h;
    }
}

static void
draw_image(struct rs *rs, cairo_t *cr, const struct frag *f)
{
    const struct block *b = &rs->blocks[f->block];
    const struct imgc *c = &rs->imgc[b->img];
    double avail = rs->text_w - b->indent, x = rs->left + b->indent;

    if (b->align == PANGO_ALIGN_CENTER)
        x += (avail - b->w) / 2;
    else if (b->align == PANGO_ALIGN_RIGHT)
        x += avail - b->w;
    cairo_save(cr);
    cairo_translate(cr, x, f->y);
    cairo_scale(cr, b->w / c->w, b->h / c->h);
    cairo_set_source_surface(cr, c->s, 0, 0);
    cairo_rectangle(cr, 0, 0, c->w, c->h);
    cairo_fill(cr);
    cairo_restore(cr);
}

static void
draw_page(struct rs *rs, cairo_t *cr, PangoLayout *hdr, int page, size_t *fi)
{
    char text[64];

    cairo_set_source_rgb(cr, 0, 0, 0);
    snprintf(text, sizeof text, "Page %d of %d", page, rs->page);
    pango_layout_set_text(hdr, text, -1);
    cairo_move_to(cr, rs->left, MARGIN);
    pango_cairo_show_layout(cr, hdr);
    if (page == 1 && rs->notice) {
        double y = rs->bottom - rs->box_h;
        cairo_set_line_width(cr, 1.0);
        cairo_rectangle(cr, rs->left + 0.5, y + 0.5, rs->text_w - 1,
                        rs->box_h - 1);
        cairo_stroke(cr);
        cairo_move_to(cr, rs->left + BOX_PAD, y + BOX_PAD);
        pango_cairo_show_layout(cr, rs->notice);
    }
    for (; *fi < rs->nfrags && rs->frags[*fi].page == page; (*fi)++) {
        const struct frag *f = &rs->frags[*fi];
        const struct block *b = &rs->blocks[f->block];
        switch (b->kind) {
        case B_TEXT: draw_text(rs, cr, f); break;
        case B_TABLE: draw_table(rs, cr, f); break;
        case B_IMAGE: draw_image(rs, cr, f); break;
        case B_RULE:
            cairo_set_line_width(cr, 0.75);
            cairo_move_to(cr, rs->left + b->indent, f->y + 0.5);
            cairo_line_to(cr, rs->left + b->indent + b->w, f->y + 0.5);
            cairo_stroke(cr);
            break;
        }
    }
}

static cairo_status_t
pdf_write(void *closure, const unsigned char *data, unsigned int len)
{
    return buf_append(closure, data, len) < 0 ? CAIRO_STATUS_WRITE_ERROR
                                              : CAIRO_STATUS_SUCCESS;
}

static int
draw(struct rs *rs, struct fax_doc *out)
{
    struct buf pdf;
    cairo_surface_t *s;
    cairo_t *cr;
    cairo_status_t st;
    PangoLayout *hdr;
    size_t fi = 0, len;

    buf_init(&pdf, FAX_MAX_PDF);
    s = cairo_pdf_surface_create_for_stream(pdf_write, &pdf, rs->page_w,
                                            rs->page_h);
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "gatewayd");
    cr = cairo_create(s);
    hdr = new_layout(rs, F_HEADER, rs->text_w, PANGO_ALIGN_RIGHT);
    for (int p = 1; p <= rs->page; p++) {
        draw_page(rs, cr, hdr, p, &fi);
        cairo_show_page(cr);
    }
    g_object_unref(hdr);
    st = cairo_status(cr);
    cairo_destroy(cr);
    cairo_surface_finish(s);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status(s);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS) {
        int big = pdf.len + 65536 > FAX_MAX_PDF;
        buf_free(&pdf);
        if (big)
            return fail(rs, GW_ETOOBIG, "the PDF is larger than %d bytes",
                        FAX_MAX_PDF);
        return fail(rs, st == CAIRO_STATUS_NO_MEMORY ? -ENOMEM : GW_EINVAL,
                    "cairo: %s", cairo_status_to_string(st));
    }
    out->pdf = (unsigned char *)buf_steal(&pdf, &len);
    out->len = len;
    out->pages = rs->page;
    out->min_font_pt = rs->min_pt;
    return 0;
}

/* ---- the notice and the page ---- */

/* The notice, boxed at the foot of page 1: its lines as given, white
 * space within them collapsed, control characters dropped. */
static int
notice_layout(struct rs *rs, const char *notice)
{
    size_t n = strlen(notice);
    struct inl in;
    double h;
    int rc = 0;

    if (n > FAX_MAX_NOTICE)
        return fail(rs, GW_ETOOBIG,
                    "the opt-out notice is %zu bytes, the limit is %d", n,
                    FAX_MAX_NOTICE);
    inl_init(&in);
    for (const char *p = notice, *nl; rc == 0; p = nl + 1) {
        nl = strchr(p, '\n');
        rc = inl_text(&in, p, nl ? (size_t)(nl - p) : strlen(p), 0);
        if (nl == NULL)
            break;
        if (rc == 0)
            rc = inl_newline(&in);
    }
    if (rc < 0) {
        inl_free(&in);
        return fail(rs, rc, "out of memory");
    }
    inl_trim(&in, 1);
    rs->notice =
        new_layout(rs, F_NOTICE, rs->text_w - 2 * BOX_PAD, PANGO_ALIGN_LEFT);
    pango_layout_set_text(rs->notice, buf_cstr(&in.text), (int)in.text.len);
    inl_free(&in);
    logical(rs->notice, NULL, &h);
    rs->box_h = h + 2 * BOX_PAD;
    if (rs->box_h > (rs->bottom - rs->top) / 2)
        return fail(rs, GW_ETOOBIG,
                    "the opt-out notice is %.0f mm high, more than half the "
                    "page",
                    to_mm(rs->box_h));
    rs->bottom1 = rs->bottom - rs->box_h - BOX_GAP;
    return 0;
}

static void
rs_free(struct rs *rs)
{
    for (size_t i = 0; i < rs->nblocks; i++)
        block_free(&rs->blocks[i]);
    free(rs->blocks);
    free(rs->frags);
    if (rs->imgc)
        for (size_t i = 0; i < rs->nimages; i++)
            if (rs->imgc[i].s)
                cairo_surface_destroy(rs->imgc[i].s);
    free(rs->imgc);
    if (rs->notice)
        g_object_unref(rs->notice);
    inl_free(&rs->in);
    inl_free(&rs->cellin);
}

int
fax_render(const char *markup, size_t len, const struct content_image *images,
           size_t nimages, const struct fax_page_opts *o, struct fax_doc *out,
           char *err, size_t errlen)
{
    struct rs rs;
    const char *family;
    double body;
    htmlDocPtr doc = NULL;
    int rc;

    memset(&rs, 0, sizeof rs);
    rs.err = err;
    rs.errlen = errlen;
    rs.tname = o && o->template_name ? o->template_name : "(unnamed)";
    rs.min_pt = 1000;
    inl_init(&rs.in);
    inl_init(&rs.cellin);
    rs.cellin.long_words = 0;
    rs.cur = &rs.in;
    if (err && errlen)
        err[0] = 0;
    if (out)
        memset(out, 0, sizeof *out);
    if (out == NULL || o == NULL || (markup == NULL && len > 0) ||
        (images == NULL && nimages > 0))
        return fail(&rs, GW_EINVAL, "invalid arguments");
    if (len > FAX_MAX_INPUT)
        return fail(&rs, GW_ETOOBIG, "markup of %zu bytes, the limit is %d",
                    len, FAX_MAX_INPUT);
    family = o->font_family && *o->font_family ? o->font_family : "DejaVu Sans";
    if (strlen(family) >= FAMILY_MAX)
        return fail(&rs, GW_EINVAL, "font family name is too long");
    body = o->font_pt == 0 || o->font_pt != o->font_pt ? 11.0 : o->font_pt;
    body = body < FAX_MIN_PT    ? FAX_MIN_PT
           : body > MAX_BODY_PT ? MAX_BODY_PT
                                : body;
    rs.max_pages = o->max_pages <= 0              ? FAX_DEFAULT_PAGES
                   : o->max_pages > FAX_MAX_PAGES ? FAX_MAX_PAGES
                                                  : o->max_pages;
    if ((rs.tls = tls_get()) == NULL)
        return fail(&rs, -ENOMEM, "cannot set up fonts for this thread");
    tls_fonts(rs.tls, family, body);
    rs.ctx = rs.tls->ctx;
    if (nimages && (rs.imgc = calloc(nimages, sizeof *rs.imgc)) == NULL) {
        rc = nomem(&rs);
        goto out;
    }
    rs.images = images;
    rs.nimages = nimages;

    if (o->paper == FAX_LETTER) {
        rs.page_w = 612;
        rs.page_h = 792;
    } else {
        rs.page_w = 210 * MM;
        rs.page_h = 297 * MM;
    }
    rs.left = MARGIN;
    rs.text_w = rs.page_w - 2 * MARGIN;
    {
        PangoLayout *h = new_layout(&rs, F_HEADER, 0, PANGO_ALIGN_LEFT);
        double hh;
        pango_layout_set_text(h, "Page 1 of 1", -1);
        logical(h, NULL, &hh);
        g_object_unref(h);
        rs.top = MARGIN + hh + HEADER_GAP;
    }
    rs.bottom = rs.bottom1 = rs.page_h - MARGIN;
    if (o->notice && *o->notice && (rc = notice_layout(&rs, o->notice)) < 0)
        goto out;
    rs.page = 1;
    rs.y = rs.top;
    rs.at_top = 1;
    rs.font = F_BODY;
    rs.align = PANGO_ALIGN_LEFT;
    rs.sa = 0.6 * rs.tls->pt[F_BODY];

    if (len > 0)
        doc = htmlReadMemory(markup, (int)len, NULL, "UTF-8",
                             HTML_PARSE_NONET | HTML_PARSE_NOERROR |
                                 HTML_PARSE_NOWARNING | HTML_PARSE_COMPACT);
    if (doc != NULL) {
        for (xmlNode *c = doc->children; c; c = c->next)
            if ((rc = walk(&rs, c, 1)) < 0)
                goto out;
        if ((rc = flush_all(&rs)) < 0)
            goto out;
    }
    if (rs.nblocks == 0) {
        rc = fail(&rs, GW_EINVAL, "nothing to render (empty markup)");
        goto out;
    }
    if (rs.min_pt < FAX_MIN_PT) { /* cannot happen: sizes are clamped */
        rc = fail(&rs, GW_EINVAL, "text of %.1f pt", rs.min_pt);
        goto out;
    }
    rc = draw(&rs, out);
out:
    if (doc)
        xmlFreeDoc(doc);
    rs_free(&rs);
    return rc;
}

void
fax_doc_free(struct fax_doc *d)
{
    if (d == NULL)
        return;
    free(d->pdf);
    memset(d, 0, sizeof *d);
}

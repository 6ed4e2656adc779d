/*
 * fax_render.h -- the fax page renderer: a template's fax part (a small,
 * already personalised HTML subset) laid out with pango and drawn by cairo
 * into PDF pages held in memory, with the opt-out notice boxed at the foot
 * of page 1 and "Page N of M" on every page. Reentrant: each thread keeps
 * its own pango font map; nothing is fetched from the network or disk.
 */
#ifndef GW_FAX_RENDER_H
#define GW_FAX_RENDER_H

#include <stddef.h>

#include "channel.h" /* struct content_image */

/* Limits, so that hostile markup cannot use unbounded memory or time. */
#define FAX_MAX_INPUT      (1024 * 1024) /* markup bytes */
#define FAX_MAX_PARA       (128 * 1024)  /* text of one paragraph */
#define FAX_MAX_CELL       (16 * 1024)   /* text of one table cell */
#define FAX_MAX_NOTICE     8192          /* notice bytes */
#define FAX_MAX_DEPTH      100           /* element nesting */
#define FAX_MAX_PAGES      500           /* ceiling on max_pages */
#define FAX_DEFAULT_PAGES  50
#define FAX_MAX_IMG_DIM    4000               /* pixels, each side */
#define FAX_MAX_IMG_PIXELS (16 * 1000 * 1000) /* decoded, per document */
#define FAX_MAX_IMG_TAGS   100                /* <img> elements */
#define FAX_MAX_COLS       100                /* table columns */
#define FAX_MAX_CELLS      20000              /* table cells, per document */
#define FAX_MAX_PDF        (32 * 1024 * 1024) /* PDF bytes */
#define FAX_MIN_PT         10.0               /* no text is smaller */

enum fax_paper { FAX_A4, FAX_LETTER };

struct fax_page_opts {
    enum fax_paper paper;
    const char *font_family;   /* NULL: "DejaVu Sans" */
    double font_pt;            /* body size; < 10 is raised to 10; 0: 11 */
    const char *notice;        /* opt-out notice for page 1, UTF-8 plain
                                  text, boxed at its foot; NULL or "": none */
    int max_pages;             /* 0: 50; at most FAX_MAX_PAGES */
    const char *template_name; /* for error messages: "renewal" */
};

struct fax_doc {
    unsigned char *pdf; /* malloc'd; fax_doc_free() */
    size_t len;
    int pages;
    double min_font_pt; /* smallest text size drawn (>= 10) */
};

/* Render markup (len bytes, UTF-8) to PDF. Borrows every argument; images
 * are matched by <img src="name"> or src="cid:<content_id>". 0 on success
 * (*out filled, free with fax_doc_free); < 0 (GW_EINVAL, GW_ETOOBIG,
 * GW_ENOTFOUND, -ENOMEM) with a one-line reason in err that names the
 * template and the part, e.g. "template renewal, part fax: image
 * \"logo.png\" not found"; *out is then zeroed. */
int fax_render(const char *markup, size_t len,
               const struct content_image *images, size_t nimages,
               const struct fax_page_opts *o, struct fax_doc *out, char *err,
               size_t errlen);
/* Free the PDF; the doc is zeroed. NULL does nothing. */
void fax_doc_free(struct fax_doc *d);

/* Drop the calling thread's font map, pango context and decoded images
 * now (they are also dropped when the thread exits). The next fax_render
 * on this thread makes new ones. */
void fax_render_thread_done(void);

#endif

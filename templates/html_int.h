/*
 * html_int.h -- shared inside templates/ only: UTF-8 checking, error
 * filling and the one-parse HTML pass of html.c (text, links, pixel).
 */
#ifndef GW_HTML_INT_H
#define GW_HTML_INT_H

#include <stddef.h>

#include "buf.h"
#include "template.h"

/* 0 when s[0..len) is valid UTF-8 (no overlongs, surrogates or code
 * points above U+10FFFF); -1 with *bad = offset of the first bad byte. */
int tpl_utf8_check(const char *s, size_t len, size_t *bad);

/* 1-based line and column (in code points) of offset off in s. */
void tpl_line_col(const char *s, size_t off, int *line, int *col);

/* Set part, line, col and msg of e (may be NULL); template is kept. */
void tpl_err_set(struct tpl_error *e, const char *part, int line, int col,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * Parse html once with libxml2. text (may be NULL) gets the text/plain
 * rendering; with rw non-NULL (link_cb and/or pixel_url set), the tree is
 * rewritten afterwards and serialised into html_out. Returns 0 or a
 * negative code with err->msg set (err->part left alone).
 */
int html_process(const char *html, size_t len, struct buf *text,
                 const struct tpl_render_opts *rw, struct buf *html_out,
                 struct tpl_error *err);

#endif

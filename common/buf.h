/*
 * buf.h -- a growable byte buffer with a hard cap, so that rendering a
 * runaway template or reading a hostile peer fails with GW_ETOOBIG instead
 * of eating memory. Used by every module.
 */
#ifndef GW_BUF_H
#define GW_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char  *data;    /* always NUL-terminated when len > 0 or after buf_cstr */
    size_t len;
    size_t cap;     /* allocated */
    size_t max;     /* hard limit on len; 0 = BUF_DEFAULT_MAX */
};

#define BUF_DEFAULT_MAX (64u * 1024 * 1024)

/* Initialise an empty buffer limited to max bytes (0: default). */
void buf_init(struct buf *b, size_t max);
/* Release the memory; the buffer can be reused after buf_init. */
void buf_free(struct buf *b);
/* Forget the contents but keep the memory (the hot path reuses buffers). */
static inline void buf_reset(struct buf *b) { b->len = 0; if (b->data) b->data[0] = 0; }
/* Make room for n more bytes; 0, -ENOMEM or GW_ETOOBIG. */
int buf_reserve(struct buf *b, size_t n);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* A NUL-terminated view of the contents ("" for an empty buffer). */
const char *buf_cstr(struct buf *b);
/* Hand the memory to the caller (free() it); the buffer becomes empty. */
char *buf_steal(struct buf *b, size_t *len);

#endif

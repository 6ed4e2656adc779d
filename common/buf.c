/*
 * buf.c -- growable byte buffer with a hard cap (see buf.h).
 */
#include "buf.h"
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max ? max : BUF_DEFAULT_MAX;
}

void
buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int
buf_reserve(struct buf *b, size_t n)
{
    size_t need, ncap;
    char *p;

    if (n > b->max || b->len > b->max - n)
        return GW_ETOOBIG;
    need = b->len + n + 1;              /* room for the NUL */
    if (need <= b->cap)
        return 0;
    ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap *= 2;
    if (ncap > b->max + 1)
        ncap = b->max + 1;
    if ((p = realloc(b->data, ncap)) == NULL)
        return -ENOMEM;
    b->data = p;
    b->cap = ncap;
    return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
    int rc;

    if (n == 0)
        return 0;
    if ((rc = buf_reserve(b, n)) < 0)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int
buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int
buf_putc(struct buf *b, char c)
{
    return buf_append(b, &c, 1);
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    int n, rc;

    va_copy(cp, ap);
    n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return -EINVAL;
    if ((rc = buf_reserve(b, (size_t)n)) < 0)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

const char *
buf_cstr(struct buf *b)
{
    return b->data ? b->data : "";
}

char *
buf_steal(struct buf *b, size_t *len)
{
    char *p = b->data;

    if (len)
        *len = b->len;
    if (p == NULL)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

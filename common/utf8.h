/*
 * utf8.h -- strict UTF-8 decoding and encoding and hex digits, shared by
 * every parser and encoder (TOML, MIME, SMS, templates) so that they all
 * agree on what well-formed input is.
 */
#ifndef GW_UTF8_H
#define GW_UTF8_H

#include <stddef.h>
#include <stdint.h>

struct buf;

/* Length of the well-formed UTF-8 sequence at s (n > 0 bytes left), its
 * code point in *cp; 0 for anything else (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF, no truncated sequence). */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Append code point cp (at most U+10FFFF) as UTF-8; 0 or buf_append's
 * error. */
int utf8_put(struct buf *b, uint32_t cp);

/* The value of hex digit c, or -1. */
int hex_digit(int c);

#endif

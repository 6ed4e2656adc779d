/*
 * b64.h -- the value of a standard base64 digit (RFC 4648 section 4), for
 * the decoders that take that alphabet: MIME encoded words and the fax
 * webhooks' signatures and keys. (Tokens use base64url: common/token.c.)
 */
#ifndef GW_B64_H
#define GW_B64_H

/* 0..63, or -1 for anything else (padding included). */
static inline int
b64_std_value(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

#endif

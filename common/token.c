/*
 * token.c -- signed tokens for unsubscribe links, open pixels and click
 * redirects (format in token.h): strict base64url, the payload codec,
 * the keyring, and HMAC-SHA256 tags through OpenSSL.
 */
#include "token.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "err.h"

#define HDR_LEN      10 /* version, key id, purpose, issued(5), key_len(2) */
#define ISSUED_LIMIT ((int64_t)1 << 40)
#define SKEW_MAX     TOKEN_DAY

/* ceil(n * 4 / 3): base64url length of n bytes, unpadded */
#define B64LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

_Static_assert(TOKEN_PAYLOAD_MAX == 2572, "payload layout");
_Static_assert(TOKEN_MAX_LEN ==
                   B64LEN(TOKEN_PAYLOAD_MAX) + 1 + B64LEN(TOKEN_TAG_LEN),
               "TOKEN_MAX_LEN");

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b64std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encodes n bytes into out (room for B64LEN(n)); returns the length. */
static size_t
b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i, o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        unsigned long v = (unsigned long)in[i] << 16 |
                          (unsigned long)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
        out[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        out[o++] = b64url[in[i] >> 2];
        out[o++] = b64url[(in[i] & 3) << 4];
    } else if (n - i == 2) {
        out[o++] = b64url[in[i] >> 2];
        out[o++] = b64url[(in[i] & 3) << 4 | in[i + 1] >> 4];
        out[o++] = b64url[(in[i + 1] & 15) << 2];
    }
    return o;
}

/* The value of c in alphabet abc, or -1. */
static int
b64_value(const char *abc, unsigned char c)
{
    const char *p;

    if (c == 0 || !(p = strchr(abc, c)))
        return -1;
    return (int)(p - abc);
}

/* Decodes n unpadded, canonical characters of alphabet abc into out (at
 * most max bytes); -1 on a stray character, an impossible length, unused
 * bits set in the last character, or too much output. */
static int
b64_decode(const char *abc, const char *in, size_t n, unsigned char *out,
           size_t max, size_t *outlen)
{
    unsigned long acc = 0;
    size_t i, o = 0;
    int bits = 0, v;

    if (n % 4 == 1 || (n / 4) * 3 + (n % 4 ? n % 4 - 1 : 0) > max)
        return -1;
    for (i = 0; i < n; i++) {
        if ((v = b64_value(abc, (unsigned char)in[i])) < 0)
            return -1;
        acc = (acc << 6 | (unsigned long)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* 2 or 4 bits left over must be zero (canonical form) */
    if (bits && (acc & ((1ul << bits) - 1)))
        return -1;
    *outlen = o;
    return 0;
}

/* Whether s[0..n) is strict UTF-8 without C0 controls or DEL. */
static int
text_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i];
        size_t k, need;
        uint32_t cp, min;

        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return 0;
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            need = 1, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
            need = 2, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            need = 3, cp = c & 0x07, min = 0x10000;
        else
            return 0;
        if (n - i <= need)
            return 0;
        for (k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

static const struct token_key *
ring_find(const struct token_ring *r, int id)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->keys[i].id == id)
            return &r->keys[i];
    return NULL;
}

/* The truncated tag of payload p[0..n) under k into tag; -1 on failure. */
static int
make_tag(const struct token_key *k, const unsigned char *p, size_t n,
         unsigned char tag[TOKEN_TAG_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int rc = 0;

    if (!HMAC(EVP_sha256(), k->secret, (int)k->len, p, n, md, &mdlen) ||
        mdlen < TOKEN_TAG_LEN)
        rc = -1;
    else
        memcpy(tag, md, TOKEN_TAG_LEN);
    OPENSSL_cleanse(md, sizeof md);
    return rc;
}

static int
purpose_ok(int p)
{
    return p >= TOK_UNSUB_CAMPAIGN && p <= TOK_CLICK;
}

void
token_ring_init(struct token_ring *r)
{
    memset(r, 0, sizeof *r);
    r->current = -1;
    r->max_age_s = TOKEN_MAX_AGE_DEFAULT;
    r->skew_s = TOKEN_SKEW_DEFAULT;
}

int
token_ring_add(struct token_ring *r, uint8_t id, const char *secret_b64,
               char *err, size_t errlen)
{
    unsigned char buf[TOKEN_SECRET_MAX];
    size_t n, len;
    const char *why = NULL;

    if (!err)
        errlen = 0;
    if (!secret_b64) {
        why = "no secret";
        goto fail;
    }
    if (ring_find(r, id)) {
        why = "duplicate key id";
        goto fail;
    }
    if (r->n >= TOKEN_RING_MAX) {
        why = "too many keys";
        goto fail;
    }
    /* padding optional, but then exactly what makes a multiple of 4 */
    n = strlen(secret_b64);
    len = n;
    while (len > 0 && n - len < 2 && secret_b64[len - 1] == '=')
        len--;
    if (len != n && (n % 4 != 0 || len % 4 == 0)) {
        why = "secret: bad base64 padding";
        goto fail;
    }
    if (b64_decode(b64std, secret_b64, len, buf, sizeof buf, &n) < 0) {
        why = "secret: not canonical base64 of at most 64 bytes";
        goto fail;
    }
    if (n < TOKEN_SECRET_MIN) {
        why = "secret: fewer than 32 bytes";
        goto fail;
    }
    r->keys[r->n].id = id;
    memcpy(r->keys[r->n].secret, buf, n);
    r->keys[r->n].len = n;
    r->n++;
    if (r->current < 0)
        r->current = id;
    OPENSSL_cleanse(buf, sizeof buf);
    return 0;
fail:
    OPENSSL_cleanse(buf, sizeof buf);
    if (errlen)
        snprintf(err, errlen, "token key %u: %s", (unsigned)id, why);
    return GW_ECONFIG;
}

int
token_ring_set_current(struct token_ring *r, uint8_t id)
{
    if (!ring_find(r, id))
        return GW_ENOTFOUND;
    r->current = id;
    return 0;
}

int
token_ring_remove(struct token_ring *r, uint8_t id)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->keys[i].id != id)
            continue;
        r->keys[i] = r->keys[r->n - 1];
        OPENSSL_cleanse(&r->keys[r->n - 1], sizeof r->keys[0]);
        r->n--;
        if (r->current == id)
            r->current = -1;
        return 0;
    }
    return GW_ENOTFOUND;
}

int
token_ring_set_limits(struct token_ring *r, int64_t max_age_s, int64_t skew_s)
{
    if (max_age_s < 0 || (max_age_s > 0 && max_age_s < TOKEN_MAX_AGE_MIN) ||
        skew_s < 0 || skew_s > SKEW_MAX)
        return GW_ECONFIG;
    r->max_age_s = max_age_s;
    r->skew_s = skew_s;
    return 0;
}

void
token_ring_clear(struct token_ring *r)
{
    OPENSSL_cleanse(r->keys, sizeof r->keys);
    r->n = 0;
    r->current = -1;
}

int
token_sign(const struct token_ring *r, enum token_purpose p,
           const char *msg_key, const char *url, int64_t now, char *out,
           size_t outlen)
{
    unsigned char pl[TOKEN_PAYLOAD_MAX], tag[TOKEN_TAG_LEN];
    const struct token_key *k;
    size_t klen, ulen = 0, n = 0, o, need;

    if (!r || !msg_key || !out || !purpose_ok(p) || now < 0 ||
        now >= ISSUED_LIMIT || (p == TOK_CLICK) != (url != NULL))
        return GW_EINVAL;
    if (r->current < 0 || !(k = ring_find(r, r->current)))
        return GW_ESTATE;
    klen = strnlen(msg_key, TOKEN_KEY_MAX + 1);
    if (url)
        ulen = strnlen(url, TOKEN_URL_MAX + 1);
    if (klen > TOKEN_KEY_MAX || ulen > TOKEN_URL_MAX)
        return GW_ETOOBIG;
    if (klen == 0 || !text_ok((const unsigned char *)msg_key, klen) ||
        (url && (ulen == 0 || !text_ok((const unsigned char *)url, ulen))))
        return GW_EINVAL;

    pl[n++] = TOKEN_VERSION;
    pl[n++] = k->id;
    pl[n++] = (unsigned char)p;
    for (int s = 32; s >= 0; s -= 8)
        pl[n++] = (unsigned char)((uint64_t)now >> s);
    pl[n++] = (unsigned char)(klen >> 8);
    pl[n++] = (unsigned char)klen;
    memcpy(pl + n, msg_key, klen);
    n += klen;
    if (url) {
        pl[n++] = (unsigned char)(ulen >> 8);
        pl[n++] = (unsigned char)ulen;
        memcpy(pl + n, url, ulen);
        n += ulen;
    }

    need = B64LEN(n) + 1 + B64LEN(TOKEN_TAG_LEN);
    if (outlen <= need)
        return GW_ETOOBIG;
    if (make_tag(k, pl, n, tag) < 0)
        return GW_EINVAL;
    o = b64_encode(pl, n, out);
    out[o++] = '.';
    o += b64_encode(tag, sizeof tag, out + o);
    out[o] = '\0';
    return (int)o;
}

/* Reads a 2-byte length and that many bytes of text at *pos into dst
 * (NUL-terminated); -1 if malformed. */
static int
read_text(const unsigned char *pl, size_t n, size_t *pos, size_t max, char *dst)
{
    size_t len;

    if (n - *pos < 2)
        return -1;
    len = (size_t)pl[*pos] << 8 | pl[*pos + 1];
    *pos += 2;
    if (len == 0 || len > max || n - *pos < len || !text_ok(pl + *pos, len))
        return -1;
    memcpy(dst, pl + *pos, len);
    dst[len] = '\0';
    *pos += len;
    return 0;
}

int
token_verify(const struct token_ring *r, const char *tok, size_t len,
             int64_t now, struct token_claims *c)
{
    unsigned char pl[TOKEN_PAYLOAD_MAX], tag[TOKEN_TAG_LEN + 2];
    unsigned char want[TOKEN_TAG_LEN];
    const struct token_key *k;
    const char *dot;
    size_t n, tn, pos = 3;
    int64_t issued = 0;
    int rc = TOKEN_EFORMAT;

    if (c)
        memset(c, 0, sizeof *c);
    if (!r || !c || (!tok && len) || now < 0)
        return GW_EINVAL;
    /* the text: payload "." tag, both canonical base64url */
    if (len < B64LEN(HDR_LEN + 1) + 1 + B64LEN(TOKEN_TAG_LEN) ||
        len > TOKEN_MAX_LEN || !(dot = memchr(tok, '.', len)))
        return TOKEN_EFORMAT;
    if (b64_decode(b64url, tok, (size_t)(dot - tok), pl, sizeof pl, &n) < 0 ||
        b64_decode(b64url, dot + 1, len - (size_t)(dot - tok) - 1, tag,
                   sizeof tag, &tn) < 0 ||
        tn != TOKEN_TAG_LEN || n < HDR_LEN + 1)
        return TOKEN_EFORMAT;

    /* the payload, strictly; its layout is public, so this may come
     * before the tag check */
    if (pl[0] != TOKEN_VERSION)
        return TOKEN_EVERSION;
    if (!purpose_ok(pl[2]))
        goto fail;
    for (int i = 3; i < 8; i++)
        issued = issued << 8 | pl[i];
    pos = 8;
    if (read_text(pl, n, &pos, TOKEN_KEY_MAX, c->msg_key) < 0)
        goto fail;
    if (pl[2] == TOK_CLICK && read_text(pl, n, &pos, TOKEN_URL_MAX, c->url) < 0)
        goto fail;
    if (pos != n)
        goto fail;

    rc = TOKEN_EKEY;
    if (!(k = ring_find(r, pl[1])))
        goto fail;
    rc = GW_EINVAL;
    if (make_tag(k, pl, n, want) < 0)
        goto fail;
    rc = TOKEN_ETAG;
    if (CRYPTO_memcmp(want, tag, TOKEN_TAG_LEN) != 0)
        goto fail;

    rc = TOKEN_EFUTURE;
    if (issued > now && issued - now > r->skew_s)
        goto fail;
    rc = TOKEN_EEXPIRED;
    if (r->max_age_s > 0 && now > issued && now - issued > r->max_age_s)
        goto fail;

    c->purpose = (enum token_purpose)pl[2];
    c->key_id = pl[1];
    c->issued = issued;
    return 0;
fail:
    memset(c, 0, sizeof *c);
    return rc;
}

const char *
token_purpose_name(enum token_purpose p)
{
    switch (p) {
    case TOK_UNSUB_CAMPAIGN: return "unsub_campaign";
    case TOK_UNSUB_CHANNEL: return "unsub_channel";
    case TOK_UNSUB_ALL: return "unsub_all";
    case TOK_OPEN: return "open";
    case TOK_CLICK: return "click";
    }
    return "?";
}

const char *
token_strerror(int rc)
{
    switch (rc) {
    case TOKEN_EFORMAT: return "malformed token";
    case TOKEN_EVERSION: return "unknown token version";
    case TOKEN_EKEY: return "unknown token key";
    case TOKEN_ETAG: return "bad token signature";
    case TOKEN_EEXPIRED: return "token expired";
    case TOKEN_EFUTURE: return "token issued in the future";
    }
    return gw_strerror(rc);
}

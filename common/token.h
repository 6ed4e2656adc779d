/*
 * token.h -- signed tokens for unsubscribe links, open pixels and click
 * redirects: a small binary payload and an HMAC-SHA256 tag, both in
 * base64url, checked against a keyring that allows key rotation.
 *
 * Token text (only A-Z a-z 0-9 - _ and one '.', safe in a URL path or
 * query without escaping):
 *
 *     base64url(payload) "." base64url(tag)
 *
 * base64url is RFC 4648 section 5 without padding, canonical: the unused
 * low bits of the last character are zero. Anything else is rejected.
 * tag = the first 16 bytes (128 bits, RFC 2104 section 5) of
 * HMAC-SHA256(secret of key_id, payload); 22 characters.
 *
 * Payload (big-endian):
 *     version   1 byte   TOKEN_VERSION (1)
 *     key_id    1 byte   which ring key made the tag
 *     purpose   1 byte   enum token_purpose
 *     issued    5 bytes  unix seconds, unsigned (good until year 36812)
 *     key_len   2 bytes  1..TOKEN_KEY_MAX
 *     msg_key   key_len bytes of UTF-8
 *   and for TOK_CLICK only:
 *     url_len   2 bytes  1..TOKEN_URL_MAX
 *     url       url_len bytes of UTF-8
 * and nothing after. Strings are strict UTF-8 (no overlong forms, no
 * surrogates) with no control characters (U+0000..U+001F, U+007F), so a
 * verified URL can go into a Location header as it is. A token is at most
 * TOKEN_MAX_LEN characters (a click token with the longest key and URL).
 *
 * Verification parses the text and payload strictly, looks the key id up
 * in the ring, compares tags with CRYPTO_memcmp, then checks the age:
 * issued more than skew_s in the future, or older than max_age_s (when
 * not 0), is refused. Every failure has its own code below, for logs and
 * metrics; callers answer them all alike (one 4xx) so nothing leaks.
 * token_verify allocates nothing of its own and writes into the caller's
 * claims (OpenSSL's HMAC() may allocate internally).
 */
#ifndef GW_TOKEN_H
#define GW_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_VERSION     1
#define TOKEN_KEY_MAX     512  /* bytes of message key */
#define TOKEN_URL_MAX     2048 /* bytes of click URL */
#define TOKEN_TAG_LEN     16   /* bytes of tag kept (of 32) */
#define TOKEN_RING_MAX    16   /* keys in a ring */
#define TOKEN_SECRET_MIN  32   /* bytes of secret, decoded */
#define TOKEN_SECRET_MAX  64
#define TOKEN_PAYLOAD_MAX (10 + TOKEN_KEY_MAX + 2 + TOKEN_URL_MAX) /* 2572 */
#define TOKEN_MAX_LEN     3453                /* chars: 3430 + 1 + 22 */
#define TOKEN_BUF_SIZE    (TOKEN_MAX_LEN + 1) /* always enough for sign */

#define TOKEN_DAY             86400
#define TOKEN_MAX_AGE_DEFAULT (400 * (int64_t)TOKEN_DAY) /* RFC 8058 links */
#define TOKEN_MAX_AGE_MIN     (30 * (int64_t)TOKEN_DAY)  /* if not 0 */
#define TOKEN_SKEW_DEFAULT    300 /* seconds a token may be from the future */

/* token_verify's failures, beside GW_EINVAL for a bad argument. In the
 * GW_E* range of err.h, but apart from it; token_strerror names them. */
enum {
    TOKEN_EFORMAT = -10101,  /* not a well-formed token */
    TOKEN_EVERSION = -10102, /* payload version is not ours */
    TOKEN_EKEY = -10103,     /* key id not in the ring */
    TOKEN_ETAG = -10104,     /* tag does not match */
    TOKEN_EEXPIRED = -10105, /* older than max_age_s */
    TOKEN_EFUTURE = -10106,  /* issued more than skew_s from now */
};

enum token_purpose {
    TOK_UNSUB_CAMPAIGN = 1, /* this campaign's list */
    TOK_UNSUB_CHANNEL,      /* every message on this channel */
    TOK_UNSUB_ALL,          /* everything */
    TOK_OPEN,               /* open pixel */
    TOK_CLICK,              /* click redirect; carries the target URL */
};

struct token_key {
    uint8_t id;
    unsigned char secret[TOKEN_SECRET_MAX];
    size_t len;
};

/* A keyring. Set up with token_ring_init and the setters below; holds no
 * pointers, so it may be copied, and needs no freeing (token_ring_clear
 * wipes the secrets). */
struct token_ring {
    struct token_key keys[TOKEN_RING_MAX];
    size_t n;
    int current;       /* key id used by token_sign, or -1 for none */
    int64_t max_age_s; /* 0 = no limit; else >= TOKEN_MAX_AGE_MIN */
    int64_t skew_s;    /* >= 0 */
};

struct token_claims {
    enum token_purpose purpose;
    uint8_t key_id;
    int64_t issued;                  /* unix seconds */
    char msg_key[TOKEN_KEY_MAX + 1]; /* NUL-terminated */
    char url[TOKEN_URL_MAX + 1];     /* TOK_CLICK only; else "" */
};

/* An empty ring: no keys, no current key, default max age and skew. */
void token_ring_init(struct token_ring *r);

/* Adds key id with a secret given as standard base64 (RFC 4648 section 4,
 * as `openssl rand -base64 32` prints; padding optional but exact,
 * canonical, no whitespace) of TOKEN_SECRET_MIN..TOKEN_SECRET_MAX bytes.
 * The first key added becomes current. GW_ECONFIG on a bad secret, a
 * duplicate id or a full ring, with a message in err (when not NULL);
 * secret is borrowed. */
int token_ring_add(struct token_ring *r, uint8_t id, const char *secret_b64,
                   char *err, size_t errlen);

/* Signs with key id from now on; GW_ENOTFOUND if it is not in the ring. */
int token_ring_set_current(struct token_ring *r, uint8_t id);

/* Removes and wipes key id (tokens it signed stop verifying); if it was
 * current, the ring has no current key. GW_ENOTFOUND if absent. */
int token_ring_remove(struct token_ring *r, uint8_t id);

/* max_age_s 0 (no limit) or >= TOKEN_MAX_AGE_MIN, skew_s 0..1 day;
 * GW_ECONFIG otherwise. */
int token_ring_set_limits(struct token_ring *r, int64_t max_age_s,
                          int64_t skew_s);

/* Wipes every secret and empties the ring. */
void token_ring_clear(struct token_ring *r);

/* Writes a NUL-terminated token for msg_key (and url, for TOK_CLICK only;
 * NULL otherwise) issued at now (0..2^40-1) with the current key into
 * out; returns its length (without the NUL), or GW_EINVAL (bad purpose,
 * key or URL: empty, not UTF-8, control characters, url given or missing),
 * GW_ETOOBIG (key or URL too long, or outlen too small: TOKEN_BUF_SIZE is
 * always enough), GW_ESTATE (no current key). Borrows every pointer. */
int token_sign(const struct token_ring *r, enum token_purpose p,
               const char *msg_key, const char *url, int64_t now, char *out,
               size_t outlen);

/* Checks the len bytes at tok (no NUL needed) at time now (>= 0) and on
 * success fills c and returns 0. Otherwise a TOKEN_E* code, or GW_EINVAL
 * for bad arguments; c is then zeroed. Borrows every pointer. */
int token_verify(const struct token_ring *r, const char *tok, size_t len,
                 int64_t now, struct token_claims *c);

/* A static name for a purpose ("unsub_campaign", ...), or "?". */
const char *token_purpose_name(enum token_purpose p);

/* A static description of rc: the TOKEN_E* codes, else gw_strerror. */
const char *token_strerror(int rc);

#endif

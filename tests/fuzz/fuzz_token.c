/*
 * fuzz_token.c -- libFuzzer target for common/token.c. The first byte
 * picks a mode and a ring (a bit for max age 0 or the default):
 *   0  the rest is token text for token_verify;
 *   1  the rest is a payload, signed here with the ring key its key id
 *      byte names (key 1 if none), so the payload parser is reached
 *      behind a right tag;
 *   2  the rest is a keyring secret for token_ring_add.
 * Checks what must always hold: never a crash; an accepted token has
 * claims within the limits (known purpose, key in the ring, age inside
 * the window, non-empty strict UTF-8 strings without controls, a URL on
 * and only on clicks) and token_sign of those claims gives back the very
 * same text (one encoding per token); an accepted secret is 32..64 bytes.
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Icommon
 *        tests/fuzz/fuzz_token.c common/token.c common/err.c
 *        $(pkg-config --cflags --libs openssl)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "err.h"
#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c))                                                              \
            abort();                                                           \
    } while (0)

#define NOW 1700000000

/* bytes 0..31, 100..147, 64 x 0xa5 under ids 1, 7, 2 */
static const char *secrets[3] = {
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoOEhYaHiImKi4yNjo+QkZKT",
    ("paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWl"
     "paWlpaWlpaWlpaWlpaWlpaWlpQ=="),
};
static const uint8_t ids[3] = { 1, 7, 2 };

static struct token_ring rings[2]; /* default limits; no age limit */
static char text[TOKEN_MAX_LEN + 64], again[TOKEN_BUF_SIZE];

static void
setup(void)
{
    static int done;

    if (done)
        return;
    for (int i = 0; i < 2; i++) {
        token_ring_init(&rings[i]);
        for (int k = 0; k < 3; k++)
            CHECK(token_ring_add(&rings[i], ids[k], secrets[k], NULL, 0) == 0);
    }
    CHECK(token_ring_set_limits(&rings[1], 0, TOKEN_SKEW_DEFAULT) == 0);
    done = 1;
}

static int
clean_text(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

/* The invariants of an accepted token (see the file comment). */
static void
check_accepted(const struct token_ring *r, const char *tok, size_t len,
               const struct token_claims *c)
{
    struct token_ring copy = *r;
    struct token_claims c2;
    int n;

    CHECK(c->purpose >= TOK_UNSUB_CAMPAIGN && c->purpose <= TOK_CLICK);
    CHECK(c->key_id == 1 || c->key_id == 2 || c->key_id == 7);
    CHECK(c->issued >= 0 && c->issued <= NOW + r->skew_s);
    CHECK(r->max_age_s == 0 || NOW - c->issued <= r->max_age_s);
    CHECK(clean_text(c->msg_key, TOKEN_KEY_MAX));
    if (c->purpose == TOK_CLICK)
        CHECK(clean_text(c->url, TOKEN_URL_MAX));
    else
        CHECK(c->url[0] == '\0');
    CHECK(len <= TOKEN_MAX_LEN);

    CHECK(token_ring_set_current(&copy, c->key_id) == 0);
    n = token_sign(&copy, c->purpose, c->msg_key,
                   c->purpose == TOK_CLICK ? c->url : NULL, c->issued, again,
                   sizeof again);
    CHECK(n > 0 && (size_t)n == len && memcmp(again, tok, len) == 0);
    CHECK(token_verify(r, again, (size_t)n, NOW, &c2) == 0);
    CHECK(memcmp(c, &c2, sizeof c2) == 0);
}

static void
verify_one(const struct token_ring *r, const char *tok, size_t len)
{
    struct token_claims c;
    int rc = token_verify(r, tok, len, NOW, &c);

    if (rc == 0) {
        check_accepted(r, tok, len, &c);
        return;
    }
    CHECK(rc <= TOKEN_EFORMAT && rc >= TOKEN_EFUTURE);
    CHECK(c.msg_key[0] == '\0' && c.url[0] == '\0' && c.issued == 0);
}

/* base64url, unpadded */
static size_t
enc64(const unsigned char *in, size_t n, char *out)
{
    size_t len = (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);

    for (size_t i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    while (len > 0 && out[len - 1] == '=')
        len--;
    return len;
}

/* The payload p[0..n) with a right tag, verified. */
static void
sign_payload(const struct token_ring *r, const unsigned char *p, size_t n)
{
    const struct token_key *k = &r->keys[0];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t o;

    if (n > TOKEN_PAYLOAD_MAX + 16)
        return;
    for (size_t i = 0; n > 1 && i < r->n; i++)
        if (r->keys[i].id == p[1])
            k = &r->keys[i];
    CHECK(HMAC(EVP_sha256(), k->secret, (int)k->len, p, n, md, &mdlen));
    o = enc64(p, n, text);
    text[o++] = '.';
    o += enc64(md, TOKEN_TAG_LEN, text + o);
    verify_one(r, text, o);
}

static void
ring_secret(const uint8_t *data, size_t size)
{
    static char s[256];
    struct token_ring r;
    char err[128];

    if (size >= sizeof s)
        return;
    memcpy(s, data, size);
    s[size] = '\0';
    token_ring_init(&r);
    if (token_ring_add(&r, 3, s, err, sizeof err) == 0) {
        CHECK(r.n == 1 && r.current == 3);
        CHECK(r.keys[0].len >= TOKEN_SECRET_MIN &&
              r.keys[0].len <= TOKEN_SECRET_MAX);
    } else {
        CHECK(r.n == 0 && strncmp(err, "token key 3: ", 13) == 0);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct token_ring *r;

    setup();
    if (size < 1)
        return 0;
    r = &rings[(data[0] >> 2) & 1];
    switch (data[0] & 3) {
    case 0: verify_one(r, (const char *)data + 1, size - 1); break;
    case 1: sign_payload(r, data + 1, size - 1); break;
    case 2: ring_secret(data + 1, size - 1); break;
    default: verify_one(r, NULL, 0); break;
    }
    return 0;
}

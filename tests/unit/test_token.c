/*
 * test_token.c -- tests for the signed link tokens (common/token.c):
 * known-answer tokens computed apart (Python hmac/base64), round trips
 * for every purpose, the click URL kept byte for byte, the longest key
 * and URL, key rotation and removal, the keyring's secret format, age and
 * future skew, bad arguments, and exactly 1,000 distinct forged or
 * altered tokens, built systematically, that must all be refused (the
 * test builds some with its own HMAC and base64 from OpenSSL, so the
 * strict parser is checked apart from the tag).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "err.h"
#include "token.h"

#define NOW0 1700000000 /* issued-at of the fixed tokens */
#define NOW  (NOW0 + 1000)

/* Secrets: bytes 0..31, 100..147 and 64 x 0xa5 */
static const char sec_a[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
static const char sec_b[] =
    "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoOEhYaHiImKi4yNjo+QkZKT";
static const char sec_c[] =
    "paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWl"
    "paWlpaWlpaWlpaWlpaWlpaWlpQ==";

static const char url1[] = "https://example.com/a?b=1&c=%20d#frag";

/* From Python: hmac.new(secret, payload, sha256).digest()[:16] and
 * urlsafe_b64encode without '=' (see token.h for the payload). */
static const char kat_unsub[] =
    "AQEBAGVT8QAACmMxMjMvZW1haWw.2MC41TLZsEHu_fSizMdlfg";
static const char kat_click[] =
    "AQEFAGVT8QAACmMxMjMvZW1haWwAJWh0dHBzOi8vZXhhbXBsZS5jb20vYT9iPTEmYz0lMjBk"
    "I2ZyYWc.K1gva1Cd92NuTO03EMHlJw";
static const char kat_utf8[] =
    "AQcDAGVT8QAACGvDqXkv4oKs.P8Psrs68O-jTP1mhaZmoBA";

/* The ring of most tests: id 1 = sec_a (current), 2 = sec_c, 7 = sec_b. */
static void
ring_std(struct token_ring *r)
{
    char err[128];

    token_ring_init(r);
    assert_int_equal(token_ring_add(r, 1, sec_a, err, sizeof err), 0);
    assert_int_equal(token_ring_add(r, 2, sec_c, err, sizeof err), 0);
    assert_int_equal(token_ring_add(r, 7, sec_b, err, sizeof err), 0);
    assert_int_equal(r->current, 1);
}

static int
sign_with(struct token_ring *r, uint8_t id, enum token_purpose p,
          const char *key, const char *url, int64_t now, char *out)
{
    assert_int_equal(token_ring_set_current(r, id), 0);
    return token_sign(r, p, key, url, now, out, TOKEN_BUF_SIZE);
}

/* ---- the test's own codec: OpenSSL base64 and HMAC ---- */

/* base64 of n bytes into out, url alphabet or standard, padded or not */
static size_t
enc64(const unsigned char *in, size_t n, char *out, int url, int pad)
{
    size_t len = (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);

    for (size_t i = 0; url && i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    while (!pad && len > 0 && out[len - 1] == '=')
        out[--len] = '\0';
    return len;
}

static void
hmac32(const char *sec_b64, const unsigned char *p, size_t n,
       unsigned char md[32])
{
    unsigned char sec[TOKEN_SECRET_MAX + 3];
    int slen = EVP_DecodeBlock(sec, (const unsigned char *)sec_b64,
                               (int)strlen(sec_b64));
    unsigned int mdlen = 0;

    assert_true(slen > 0);
    slen -= strlen(sec_b64) - strcspn(sec_b64, "="); /* padding */
    assert_non_null(HMAC(EVP_sha256(), sec, slen, p, n, md, &mdlen));
    assert_int_equal(mdlen, 32);
}

/* payload as in token.h; url NULL for no URL section */
static size_t
payload(unsigned char *p, int ver, int kid, int purpose, int64_t iat,
        const void *key, size_t klen, const void *url, size_t ulen)
{
    size_t n = 0;

    p[n++] = (unsigned char)ver;
    p[n++] = (unsigned char)kid;
    p[n++] = (unsigned char)purpose;
    for (int s = 32; s >= 0; s -= 8)
        p[n++] = (unsigned char)((uint64_t)iat >> s);
    p[n++] = (unsigned char)(klen >> 8);
    p[n++] = (unsigned char)klen;
    memcpy(p + n, key, klen);
    n += klen;
    if (url) {
        p[n++] = (unsigned char)(ulen >> 8);
        p[n++] = (unsigned char)ulen;
        memcpy(p + n, url, ulen);
        n += ulen;
    }
    return n;
}

/* "payload.tag" text, url alphabet, no padding, into out */
static size_t
join(const unsigned char *p, size_t n, const unsigned char *tag, size_t tn,
     char *out)
{
    size_t o = enc64(p, n, out, 1, 0);

    out[o++] = '.';
    return o + enc64(tag, tn, out + o, 1, 0);
}

/* ---- known answers and round trips ---- */

static void
test_known_answers(void **state)
{
    struct token_ring r;
    char out[TOKEN_BUF_SIZE];
    unsigned char p[64], md[32];
    char mine[128];
    size_t n;

    (void)state;
    ring_std(&r);
    assert_int_equal(token_sign(&r, TOK_UNSUB_CAMPAIGN, "c123/email", NULL,
                                NOW0, out, sizeof out),
                     (int)strlen(kat_unsub));
    assert_string_equal(out, kat_unsub);
    assert_int_equal(
        token_sign(&r, TOK_CLICK, "c123/email", url1, NOW0, out, sizeof out),
        (int)strlen(kat_click));
    assert_string_equal(out, kat_click);
    sign_with(&r, 7, TOK_UNSUB_ALL, "k\xc3\xa9y/\xe2\x82\xac", NULL, NOW0, out);
    assert_string_equal(out, kat_utf8);

    /* and the test's own codec agrees */
    n = payload(p, 1, 1, TOK_UNSUB_CAMPAIGN, NOW0, "c123/email", 10, NULL, 0);
    hmac32(sec_a, p, n, md);
    mine[join(p, n, md, 16, mine)] = '\0';
    assert_string_equal(mine, kat_unsub);
    token_ring_clear(&r);
}

static void
check_round_trip(struct token_ring *r, enum token_purpose p, const char *key,
                 const char *url, int64_t iat)
{
    char out[TOKEN_BUF_SIZE];
    struct token_claims c;
    int n;

    n = token_sign(r, p, key, url, iat, out, sizeof out);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(out));
    assert_int_equal(strspn(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
                                 "stuvwxyz0123456789-_."),
                     (size_t)n);
    assert_int_equal(token_verify(r, out, (size_t)n, iat + 1000, &c), 0);
    assert_int_equal(c.purpose, p);
    assert_int_equal(c.key_id, r->current);
    assert_int_equal(c.issued, iat);
    assert_string_equal(c.msg_key, key);
    assert_string_equal(c.url, url ? url : "");
}

static void
test_round_trips(void **state)
{
    static const char *keys[] = {
        "c123/email",
        "x",
        "campaign-2026-spring/msg:000042/sms",
        "Gr\303\274\303\237e/\xf0\x9f\x93\xa7/\xe4\xb8\xad",
        "a b\"c'd<e>",
    };
    struct token_ring r;
    char err[128];

    (void)state;
    ring_std(&r);
    for (int p = TOK_UNSUB_CAMPAIGN; p <= TOK_CLICK; p++)
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            for (int id = 0; id < 3; id++) {
                static const uint8_t ids[] = { 1, 2, 7 };

                assert_int_equal(token_ring_set_current(&r, ids[id]), 0);
                check_round_trip(&r, (enum token_purpose)p, keys[k],
                                 p == TOK_CLICK ? url1 : NULL,
                                 NOW0 + (int64_t)k);
            }
    /* issued-at at both ends of its 5 bytes */
    assert_int_equal(token_ring_set_limits(&r, 0, 0), 0);
    check_round_trip(&r, TOK_OPEN, "k", NULL, 0);
    check_round_trip(&r, TOK_OPEN, "k", NULL, ((int64_t)1 << 40) - 1001);
    /* key id 0 and 255 work like any other */
    assert_int_equal(token_ring_add(&r, 0, sec_b, err, sizeof err), 0);
    assert_int_equal(token_ring_add(&r, 255, sec_c, err, sizeof err), 0);
    assert_int_equal(token_ring_set_current(&r, 0), 0);
    check_round_trip(&r, TOK_UNSUB_ALL, "k0", NULL, NOW0);
    assert_int_equal(token_ring_set_current(&r, 255), 0);
    check_round_trip(&r, TOK_CLICK, "k255", url1, NOW0);
    assert_string_equal(token_purpose_name(TOK_UNSUB_CHANNEL), "unsub_channel");
    assert_string_equal(token_purpose_name((enum token_purpose)9), "?");
    token_ring_clear(&r);
}

static void
test_click_url_exact(void **state)
{
    static const char *urls[] = {
        "https://example.com/",
        "https://example.com/p?utm_source=news&utm_medium=email&x=%2F%2e#f",
        "http://[2001:db8::1]:8080/a;b,c?d=e+f&g=h%00i",
        "https://xn--mnchen-3ya.de/stra\303\237e?q=\xe2\x82\xac 1",
        "https://example.com/a b/../c//d?e=\"'<>`{}|\\^",
        "mailto:someone@example.com?subject=hi",
        "https://example.com/trailing-space ",
        "https://example.com/\xf0\x9f\x98\x80?emoji=1",
    };
    struct token_ring r;
    char out[TOKEN_BUF_SIZE];
    struct token_claims c;

    (void)state;
    ring_std(&r);
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        int n =
            token_sign(&r, TOK_CLICK, "c1/m1", urls[i], NOW0, out, sizeof out);

        assert_true(n > 0);
        assert_int_equal(token_verify(&r, out, (size_t)n, NOW, &c), 0);
        assert_int_equal(strlen(c.url), strlen(urls[i]));
        assert_memory_equal(c.url, urls[i], strlen(urls[i]) + 1);
        assert_int_equal(c.purpose, TOK_CLICK);
    }
    token_ring_clear(&r);
}

static void
test_max_lengths(void **state)
{
    static char key[TOKEN_KEY_MAX + 2], url[TOKEN_URL_MAX + 2];
    struct token_ring r;
    char out[TOKEN_BUF_SIZE + 1];
    struct token_claims c;
    int n;

    (void)state;
    ring_std(&r);
    memset(key, 'k', TOKEN_KEY_MAX);
    memcpy(url, "https://example.com/", 20);
    memset(url + 20, 'u', TOKEN_URL_MAX - 20);
    n = token_sign(&r, TOK_CLICK, key, url, NOW0, out, TOKEN_BUF_SIZE);
    assert_int_equal(n, TOKEN_MAX_LEN);
    assert_int_equal(token_verify(&r, out, (size_t)n, NOW, &c), 0);
    assert_string_equal(c.msg_key, key);
    assert_string_equal(c.url, url);
    /* one byte of room short */
    assert_int_equal(
        token_sign(&r, TOK_CLICK, key, url, NOW0, out, TOKEN_BUF_SIZE - 1),
        GW_ETOOBIG);
    /* multi-byte characters up to the limit: 170 x 3 bytes + "ab" */
    for (int i = 0; i < 170; i++)
        memcpy(key + 3 * i, "\xe2\x82\xac", 3);
    memcpy(key + 510, "ab", 3);
    n = token_sign(&r, TOK_UNSUB_ALL, key, NULL, NOW0, out, TOKEN_BUF_SIZE);
    assert_true(n > 0);
    assert_int_equal(token_verify(&r, out, (size_t)n, NOW, &c), 0);
    assert_string_equal(c.msg_key, key);
    /* one byte too many, key or URL */
    memset(key, 'k', TOKEN_KEY_MAX + 1);
    assert_int_equal(
        token_sign(&r, TOK_OPEN, key, NULL, NOW0, out, TOKEN_BUF_SIZE),
        GW_ETOOBIG);
    key[TOKEN_KEY_MAX] = '\0';
    url[TOKEN_URL_MAX] = 'u';
    assert_int_equal(
        token_sign(&r, TOK_CLICK, key, url, NOW0, out, TOKEN_BUF_SIZE),
        GW_ETOOBIG);
    token_ring_clear(&r);
}

/* ---- the keyring ---- */

static void
test_rotation(void **state)
{
    struct token_ring r;
    char old[TOKEN_BUF_SIZE], cur[TOKEN_BUF_SIZE], err[128];
    struct token_claims c;
    int nold, ncur;

    (void)state;
    token_ring_init(&r);
    assert_int_equal(r.current, -1);
    assert_int_equal(token_sign(&r, TOK_OPEN, "k", NULL, NOW0, old, sizeof old),
                     GW_ESTATE);
    assert_int_equal(token_ring_add(&r, 1, sec_a, err, sizeof err), 0);
    nold = token_sign(&r, TOK_UNSUB_CAMPAIGN, "c1/m1", NULL, NOW0, old,
                      sizeof old);
    assert_true(nold > 0);

    /* a new key becomes current; the old one still verifies */
    assert_int_equal(token_ring_add(&r, 2, sec_b, err, sizeof err), 0);
    assert_int_equal(r.current, 1); /* adding does not switch */
    assert_int_equal(token_ring_set_current(&r, 2), 0);
    ncur = token_sign(&r, TOK_UNSUB_CAMPAIGN, "c1/m1", NULL, NOW0, cur,
                      sizeof cur);
    assert_true(ncur > 0);
    assert_string_not_equal(old, cur);
    assert_int_equal(token_verify(&r, old, (size_t)nold, NOW, &c), 0);
    assert_int_equal(c.key_id, 1);
    assert_int_equal(token_verify(&r, cur, (size_t)ncur, NOW, &c), 0);
    assert_int_equal(c.key_id, 2);

    /* the old key removed: its tokens fail, the new ones still work */
    assert_int_equal(token_ring_remove(&r, 1), 0);
    assert_int_equal(token_ring_remove(&r, 1), GW_ENOTFOUND);
    assert_int_equal(token_verify(&r, old, (size_t)nold, NOW, &c), TOKEN_EKEY);
    assert_int_equal(c.msg_key[0], '\0');
    assert_int_equal(token_verify(&r, cur, (size_t)ncur, NOW, &c), 0);

    /* id 1 again with another secret: the old tokens fail on the tag */
    assert_int_equal(token_ring_add(&r, 1, sec_c, err, sizeof err), 0);
    assert_int_equal(token_verify(&r, old, (size_t)nold, NOW, &c), TOKEN_ETAG);

    /* removing the current key leaves nothing to sign with */
    assert_int_equal(token_ring_remove(&r, 2), 0);
    assert_int_equal(r.current, -1);
    assert_int_equal(token_sign(&r, TOK_OPEN, "k", NULL, NOW0, cur, sizeof cur),
                     GW_ESTATE);
    assert_int_equal(token_ring_set_current(&r, 2), GW_ENOTFOUND);
    assert_int_equal(token_ring_set_current(&r, 1), 0);

    /* a full ring, and the ring empties on clear */
    for (int id = 10; r.n < TOKEN_RING_MAX; id++)
        assert_int_equal(
            token_ring_add(&r, (uint8_t)id, sec_a, err, sizeof err), 0);
    assert_int_equal(token_ring_add(&r, 99, sec_a, err, sizeof err),
                     GW_ECONFIG);
    assert_non_null(strstr(err, "too many"));
    token_ring_clear(&r);
    assert_int_equal(r.n, 0);
    assert_int_equal(token_verify(&r, cur, (size_t)ncur, NOW, &c), TOKEN_EKEY);
}

static void
test_ring_secrets(void **state)
{
    static const char *bad[] = {
        "",
        /* 31 bytes */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",
        /* 65 bytes */
        "paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWl"
        "paWlpaWlpaWlpaWlpaWlpaWlpaU=",
        /* padding wrong: one short, one extra, in the middle */
        "paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWl"
        "paWlpaWlpaWlpaWlpaWlpaWlpQ=",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==",
        "AAECAwQFBgcICQoLDA0O=DxAREhMUFRYXGBkaGxwdHh8",
        /* whitespace, newline, url alphabet, non-canonical last char */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= ",
        " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX\nGBkaGxwdHh8=",
        "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo-QkZKT",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=",
        /* hex of 16 bytes (hex of 32 is valid base64 of 48) */
        "000102030405060708090a0b0c0d0e0f",
    };
    struct token_ring r;
    char err[128];

    (void)state;
    token_ring_init(&r);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (token_ring_add(&r, 1, bad[i], err, sizeof err) != GW_ECONFIG)
            print_error("accepted secret %zu: %s\n", i, bad[i]);
        assert_int_equal(token_ring_add(&r, 1, bad[i], err, sizeof err),
                         GW_ECONFIG);
        assert_non_null(strstr(err, "token key 1: "));
        assert_int_equal(r.n, 0);
    }
    assert_int_equal(token_ring_add(&r, 1, NULL, NULL, 0), GW_ECONFIG);
    /* unpadded is fine, 32 and 64 bytes are fine */
    assert_int_equal(token_ring_add(&r, 1,
                                    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGx"
                                    "wdHh8",
                                    err, sizeof err),
                     0);
    assert_int_equal(token_ring_add(&r, 2, sec_c, NULL, 0), 0);
    assert_int_equal(r.keys[1].len, 64);
    assert_int_equal(r.keys[0].len, 32);
    assert_int_equal(r.keys[0].secret[31], 31);
    /* a duplicate id */
    assert_int_equal(token_ring_add(&r, 2, sec_a, err, sizeof err), GW_ECONFIG);
    assert_non_null(strstr(err, "duplicate"));
    /* the unpadded key made the same tokens as the padded one */
    {
        char out[TOKEN_BUF_SIZE];

        assert_true(token_sign(&r, TOK_UNSUB_CAMPAIGN, "c123/email", NULL, NOW0,
                               out, sizeof out) > 0);
        assert_string_equal(out, kat_unsub);
    }
    token_ring_clear(&r);
}

/* ---- age ---- */

static void
test_age(void **state)
{
    struct token_ring r;
    char out[TOKEN_BUF_SIZE];
    struct token_claims c;
    const int64_t day = TOKEN_DAY;
    size_t n;

    (void)state;
    ring_std(&r);
    assert_int_equal(r.max_age_s, 400 * day);
    assert_int_equal(r.skew_s, 300);
    n = (size_t)token_sign(&r, TOK_UNSUB_CHANNEL, "c1/m1", NULL, NOW0, out,
                           sizeof out);
    /* default: 400 days */
    assert_int_equal(token_verify(&r, out, n, NOW0, &c), 0);
    assert_int_equal(token_verify(&r, out, n, NOW0 + 30 * day, &c), 0);
    assert_int_equal(token_verify(&r, out, n, NOW0 + 400 * day, &c), 0);
    assert_int_equal(token_verify(&r, out, n, NOW0 + 400 * day + 1, &c),
                     TOKEN_EEXPIRED);
    assert_int_equal(c.msg_key[0], '\0');
    assert_int_equal(c.issued, 0);
    /* from the future: up to skew_s */
    assert_int_equal(token_verify(&r, out, n, NOW0 - 300, &c), 0);
    assert_int_equal(token_verify(&r, out, n, NOW0 - 301, &c), TOKEN_EFUTURE);
    assert_int_equal(token_verify(&r, out, n, 0, &c), TOKEN_EFUTURE);
    /* limits */
    assert_int_equal(token_ring_set_limits(&r, 30 * day, 0), 0);
    assert_int_equal(token_verify(&r, out, n, NOW0 + 30 * day, &c), 0);
    assert_int_equal(token_verify(&r, out, n, NOW0 + 30 * day + 1, &c),
                     TOKEN_EEXPIRED);
    assert_int_equal(token_verify(&r, out, n, NOW0 - 1, &c), TOKEN_EFUTURE);
    assert_int_equal(token_ring_set_limits(&r, 0, 60), 0);
    assert_int_equal(token_verify(&r, out, n, NOW0 + 100000 * day, &c), 0);
    assert_int_equal(token_verify(&r, out, n, INT64_MAX, &c), 0);
    assert_int_equal(token_verify(&r, out, n, NOW0 - 60, &c), 0);
    assert_int_equal(token_verify(&r, out, n, NOW0 - 61, &c), TOKEN_EFUTURE);
    assert_int_equal(token_ring_set_limits(&r, 30 * day - 1, 0), GW_ECONFIG);
    assert_int_equal(token_ring_set_limits(&r, -1, 0), GW_ECONFIG);
    assert_int_equal(token_ring_set_limits(&r, 0, -1), GW_ECONFIG);
    assert_int_equal(token_ring_set_limits(&r, 0, day + 1), GW_ECONFIG);
    assert_int_equal(r.max_age_s, 0); /* unchanged by the failures */
    assert_int_equal(r.skew_s, 60);
    token_ring_clear(&r);
}

/* ---- bad arguments ---- */

static void
test_bad_args(void **state)
{
    struct token_ring r;
    char out[TOKEN_BUF_SIZE];
    struct token_claims c;
    int n;

    (void)state;
    ring_std(&r);
    n = token_sign(&r, TOK_OPEN, "k", NULL, NOW0, out, sizeof out);
    assert_true(n > 0);
    assert_int_equal(token_verify(NULL, out, (size_t)n, NOW, &c), GW_EINVAL);
    assert_int_equal(token_verify(&r, out, (size_t)n, NOW, NULL), GW_EINVAL);
    assert_int_equal(token_verify(&r, NULL, 5, NOW, &c), GW_EINVAL);
    assert_int_equal(token_verify(&r, NULL, 0, NOW, &c), TOKEN_EFORMAT);
    assert_int_equal(token_verify(&r, out, (size_t)n, -1, &c), GW_EINVAL);

#define SIGN(p, k, u, t) token_sign(&r, p, k, u, t, out, sizeof out)
    assert_int_equal(SIGN(TOK_OPEN, "k", url1, NOW0), GW_EINVAL);
    assert_int_equal(SIGN(TOK_CLICK, "k", NULL, NOW0), GW_EINVAL);
    assert_int_equal(SIGN(TOK_CLICK, "k", "", NOW0), GW_EINVAL);
    assert_int_equal(SIGN(TOK_OPEN, "", NULL, NOW0), GW_EINVAL);
    assert_int_equal(SIGN(TOK_OPEN, NULL, NULL, NOW0), GW_EINVAL);
    assert_int_equal(SIGN((enum token_purpose)0, "k", NULL, NOW0), GW_EINVAL);
    assert_int_equal(SIGN((enum token_purpose)6, "k", NULL, NOW0), GW_EINVAL);
    assert_int_equal(SIGN(TOK_OPEN, "k", NULL, -1), GW_EINVAL);
    assert_int_equal(SIGN(TOK_OPEN, "k", NULL, (int64_t)1 << 40), GW_EINVAL);
    assert_int_equal(SIGN(TOK_OPEN, "a\nb", NULL, NOW0), GW_EINVAL);
    assert_int_equal(SIGN(TOK_OPEN, "a\x7f", NULL, NOW0), GW_EINVAL);
    assert_int_equal(SIGN(TOK_OPEN, "\xc0\xaf", NULL, NOW0), GW_EINVAL);
    assert_int_equal(SIGN(TOK_OPEN, "\xed\xa0\x80", NULL, NOW0), GW_EINVAL);
    assert_int_equal(SIGN(TOK_OPEN, "\xe2\x82", NULL, NOW0), GW_EINVAL);
    assert_int_equal(SIGN(TOK_OPEN, "\xff", NULL, NOW0), GW_EINVAL);
    assert_int_equal(SIGN(TOK_CLICK, "k", "https://a/\r\nSet-Cookie: x", NOW0),
                     GW_EINVAL);
    assert_int_equal(SIGN(TOK_CLICK, "k", "https://a/\t", NOW0), GW_EINVAL);
#undef SIGN
    assert_int_equal(
        token_sign(NULL, TOK_OPEN, "k", NULL, NOW0, out, sizeof out),
        GW_EINVAL);
    assert_int_equal(token_sign(&r, TOK_OPEN, "k", NULL, NOW0, NULL, 100),
                     GW_EINVAL);
    assert_int_equal(token_sign(&r, TOK_OPEN, "k", NULL, NOW0, out, 0),
                     GW_ETOOBIG);
    assert_int_equal(token_sign(&r, TOK_OPEN, "k", NULL, NOW0, out, (size_t)n),
                     GW_ETOOBIG);
    assert_int_equal(
        token_sign(&r, TOK_OPEN, "k", NULL, NOW0, out, (size_t)n + 1), n);
    assert_string_equal(token_strerror(TOKEN_ETAG), "bad token signature");
    assert_string_equal(token_strerror(GW_EINVAL), gw_strerror(GW_EINVAL));
    token_ring_clear(&r);
}

/* ---- 1,000 forgeries ---- */

#define NFORGED 1000

struct forged {
    char *s;
    size_t len;
    const char *what;
    int want; /* the TOKEN_E* expected, or 0 for any refusal */
};

static struct forged forged[NFORGED + 64];
static size_t nforged;

static size_t nsame; /* candidates dropped as already there */

/* Adds a forgery unless the same bytes are already in the list (the
 * categories overlap a little: a substitution may equal a changed key id). */
static void
add(const char *what, int want, const void *s, size_t len)
{
    for (size_t i = 0; i < nforged; i++)
        if (forged[i].len == len && memcmp(forged[i].s, s, len) == 0) {
            nsame++;
            return;
        }
    assert_true(nforged < sizeof forged / sizeof forged[0]);
    forged[nforged].s = malloc(len ? len : 1);
    assert_non_null(forged[nforged].s);
    memcpy(forged[nforged].s, s, len);
    forged[nforged].len = len;
    forged[nforged].what = what;
    forged[nforged].want = want;
    nforged++;
}

static void
add_str(const char *what, int want, const char *s)
{
    add(what, want, s, strlen(s));
}

/* payload bytes p[0..n) with tag bytes tag[0..tn), url alphabet unpadded */
static void
add_join(const char *what, int want, const unsigned char *p, size_t n,
         const unsigned char *tag, size_t tn)
{
    char s[2 * TOKEN_BUF_SIZE];

    add(what, want, s, join(p, n, tag, tn, s));
}

/* payload p[0..n) with its real tag under sec_b64 */
static void
add_signed(const char *what, int want, const char *sec_b64,
           const unsigned char *p, size_t n)
{
    unsigned char md[32];

    hmac32(sec_b64, p, n, md);
    add_join(what, want, p, n, md, TOKEN_TAG_LEN);
}

static int
cmp_forged(const void *a, const void *b)
{
    const struct forged *x = a, *y = b;

    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->s, y->s, x->len);
}

static int
in_ring(int id)
{
    return id == 1 || id == 2 || id == 7;
}

/* The candidates, category by category: 1,023 of them, of which 23 are
 * repeats of earlier ones (add() drops those), leaving 1,000. */
static void
make_forgeries(struct token_ring *r)
{
    static const char evil[] = "https://evil.example/?b=1&c=%20d#frag";
    static const char longer[] = "https://example.com/a?b=1&c=%20d#frag&to=x";
    /* six valid tokens; t = v[0], t2 = v[1] (a click token) */
    static char v[6][TOKEN_BUF_SIZE];
    static unsigned char vp[6][TOKEN_PAYLOAD_MAX], vt[6][TOKEN_TAG_LEN];
    size_t vn[6];
    unsigned char p[TOKEN_PAYLOAD_MAX + 8], md[32];
    char s[2 * TOKEN_BUF_SIZE], big[TOKEN_MAX_LEN + 8];
    const char *t, *t2, *dot;
    size_t tl, t2l, n, i, k;

    assert_int_equal(
        sign_with(r, 1, TOK_UNSUB_CAMPAIGN, "c123/email", NULL, NOW0, v[0]),
        50);
    assert_int_equal(sign_with(r, 1, TOK_CLICK, "c123/email", url1, NOW0, v[1]),
                     102);
    sign_with(r, 7, TOK_UNSUB_ALL, "k\xc3\xa9y/\xe2\x82\xac", NULL, NOW0, v[2]);
    sign_with(r, 2, TOK_OPEN, "c124/sms", NULL, NOW0, v[3]);
    sign_with(r, 1, TOK_UNSUB_CHANNEL, "c123/email", NULL, NOW0 + 1, v[4]);
    sign_with(r, 2, TOK_UNSUB_CAMPAIGN, "c123/email", NULL, NOW0, v[5]);
    assert_int_equal(token_ring_set_current(r, 1), 0);
    vn[0] = payload(vp[0], 1, 1, TOK_UNSUB_CAMPAIGN, NOW0, "c123/email", 10,
                    NULL, 0);
    vn[1] = payload(vp[1], 1, 1, TOK_CLICK, NOW0, "c123/email", 10, url1,
                    strlen(url1));
    vn[2] = payload(vp[2], 1, 7, TOK_UNSUB_ALL, NOW0, "k\xc3\xa9y/\xe2\x82\xac",
                    8, NULL, 0);
    vn[3] = payload(vp[3], 1, 2, TOK_OPEN, NOW0, "c124/sms", 8, NULL, 0);
    vn[4] = payload(vp[4], 1, 1, TOK_UNSUB_CHANNEL, NOW0 + 1, "c123/email", 10,
                    NULL, 0);
    vn[5] = payload(vp[5], 1, 2, TOK_UNSUB_CAMPAIGN, NOW0, "c123/email", 10,
                    NULL, 0);
    for (i = 0; i < 6; i++) {
        static const char *secs[6] = {
            sec_a, sec_a, sec_b, sec_c, sec_a, sec_c
        };

        hmac32(secs[i], vp[i], vn[i], md);
        memcpy(vt[i], md, TOKEN_TAG_LEN);
        s[join(vp[i], vn[i], vt[i], TOKEN_TAG_LEN, s)] = '\0';
        assert_string_equal(s, v[i]);
    }
    t = v[0], tl = strlen(t);
    t2 = v[1], t2l = strlen(t2);
    nforged = nsame = 0;

    /* A: 50 positions x 6 replacements = 300 */
    for (i = 0; i < tl; i++) {
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
                                  "opqrstuvwxyz0123456789-_";
        const char *pos = strchr(b64, t[i]);
        char repl[6] = { '+', '/', '=', ' ', 0, 0 };

        if (t[i] == '.') {
            repl[4] = 'A';
            repl[5] = '-';
        } else {
            assert_non_null(pos);
            repl[4] = b64[(pos - b64 + 1) & 63];
            repl[5] = b64[(pos - b64) ^ 32];
        }
        for (k = 0; k < 6; k++) {
            memcpy(s, t, tl);
            s[i] = repl[k];
            add("substitution", 0, s, tl);
        }
    }
    /* B, C: truncations at every length, 1..49 and 1..101 = 150 */
    for (i = 1; i < tl; i++)
        add("truncation", TOKEN_EFORMAT, t, i);
    for (i = 1; i < t2l; i++)
        add("truncation (click)", TOKEN_EFORMAT, t2, i);
    /* D: one character deleted, at every position = 49 (t has one "AA") */
    for (i = 0; i < tl; i++) {
        if (i > 0 && t[i] == t[i - 1])
            continue; /* the same as deleting t[i - 1] */
        memcpy(s, t, i);
        memcpy(s + i, t + i + 1, tl - i - 1);
        add("deletion", 0, s, tl - 1);
    }
    /* E: one byte appended = 21 */
    {
        static const char app[] = "AQgw-_09.+/\r\t%~!*\x80\xc3\xff";

        for (i = 0; i < sizeof app; i++) { /* the NUL too */
            memcpy(s, t, tl);
            s[tl] = app[i];
            add("appended", TOKEN_EFORMAT, s, tl + 1);
        }
    }
    /* F: payload of one valid token, tag of another = 30 */
    for (i = 0; i < 6; i++)
        for (k = 0; k < 6; k++)
            if (i != k)
                add_join("swapped tag", TOKEN_ETAG, vp[i], vn[i], vt[k],
                         TOKEN_TAG_LEN);
    /* G: purpose byte, every other value = 255 */
    for (i = 0; i < 256; i++) {
        if (i == TOK_UNSUB_CAMPAIGN)
            continue;
        memcpy(p, vp[0], vn[0]);
        p[2] = (unsigned char)i;
        add_join("purpose", i >= 2 && i <= 4 ? TOKEN_ETAG : TOKEN_EFORMAT, p,
                 vn[0], vt[0], TOKEN_TAG_LEN);
    }
    /* H: key id 0..63 but 1 = 63 */
    for (i = 0; i < 64; i++) {
        if (i == 1)
            continue;
        memcpy(p, vp[0], vn[0]);
        p[1] = (unsigned char)i;
        add_join("key id", in_ring((int)i) ? TOKEN_ETAG : TOKEN_EKEY, p, vn[0],
                 vt[0], TOKEN_TAG_LEN);
    }
    /* I: a ring with the wrong secrets under the same ids = 10 */
    {
        struct token_ring bad;
        char err[128];

        token_ring_init(&bad);
        assert_int_equal(token_ring_add(&bad, 1, sec_b, err, sizeof err), 0);
        assert_int_equal(token_ring_add(&bad, 2, sec_a, err, sizeof err), 0);
        for (int id = 1; id <= 2; id++)
            for (int pu = TOK_UNSUB_CAMPAIGN; pu <= TOK_CLICK; pu++) {
                int m = sign_with(&bad, (uint8_t)id, (enum token_purpose)pu,
                                  "c123/email", pu == TOK_CLICK ? url1 : NULL,
                                  NOW0, s);

                assert_true(m > 0);
                add("wrong secret", TOKEN_ETAG, s, (size_t)m);
            }
        token_ring_clear(&bad);
    }
    /* J: version = 6 */
    {
        static const int vers[] = { 0, 2, 3, 0x7f, 0x80, 0xff };

        for (i = 0; i < 6; i++) {
            memcpy(p, vp[0], vn[0]);
            p[0] = (unsigned char)vers[i];
            add_join("version", TOKEN_EVERSION, p, vn[0], vt[0], TOKEN_TAG_LEN);
        }
    }
    /* K: issued-at, every bit of its 5 bytes = 40 */
    for (i = 3; i < 8; i++)
        for (k = 0; k < 8; k++) {
            memcpy(p, vp[0], vn[0]);
            p[i] ^= (unsigned char)(1u << k);
            add_join("issued-at", TOKEN_ETAG, p, vn[0], vt[0], TOKEN_TAG_LEN);
        }
    /* L: length fields = 8 */
    {
        static const unsigned lens[] = { 9, 11, 0, 0xffff };
        static const unsigned ulens[] = { 36, 38, 0, 0xffff };
        size_t uoff = 10 + 10; /* url_len in the click payload */

        assert_int_equal(strlen(url1), 37);
        for (i = 0; i < 4; i++) {
            memcpy(p, vp[0], vn[0]);
            p[8] = (unsigned char)(lens[i] >> 8);
            p[9] = (unsigned char)lens[i];
            add_join("key length", TOKEN_EFORMAT, p, vn[0], vt[0],
                     TOKEN_TAG_LEN);
            memcpy(p, vp[1], vn[1]);
            p[uoff] = (unsigned char)(ulens[i] >> 8);
            p[uoff + 1] = (unsigned char)ulens[i];
            add_join("url length", TOKEN_EFORMAT, p, vn[1], vt[1],
                     TOKEN_TAG_LEN);
        }
    }
    /* L': content under the old tag: key, url same length, url longer = 3 */
    n = payload(p, 1, 1, TOK_UNSUB_CAMPAIGN, NOW0, "c124/email", 10, NULL, 0);
    add_join("other key", TOKEN_ETAG, p, n, vt[0], TOKEN_TAG_LEN);
    n = payload(p, 1, 1, TOK_CLICK, NOW0, "c123/email", 10, evil, strlen(evil));
    add_join("other url", TOKEN_ETAG, p, n, vt[1], TOKEN_TAG_LEN);
    n = payload(p, 1, 1, TOK_CLICK, NOW0, "c123/email", 10, longer,
                strlen(longer));
    add_join("longer url", TOKEN_ETAG, p, n, vt[1], TOKEN_TAG_LEN);
    /* M: padding = 8 */
    for (i = 0; i < 2; i++) {
        const char *tok = v[i];
        size_t pl;

        dot = strchr(tok, '.');
        pl = (size_t)(dot - tok);
        n = (size_t)snprintf(s, sizeof s, "%.*s=.%s", (int)pl, tok, dot + 1);
        add("padding", TOKEN_EFORMAT, s, n);
        n = (size_t)snprintf(s, sizeof s, "%s==", tok);
        add("padding", TOKEN_EFORMAT, s, n);
        n = (size_t)snprintf(s, sizeof s, "%.*s=.%s==", (int)pl, tok, dot + 1);
        add("padding", TOKEN_EFORMAT, s, n);
        n = (size_t)snprintf(s, sizeof s, "%.*s==.%s", (int)pl, tok, dot + 1);
        add("padding", TOKEN_EFORMAT, s, n);
    }
    /* N: '+' and '/' (standard alphabet) = 26 */
    for (i = 0; i < 6; i++) {
        size_t m = strlen(v[i]), o;

        o = enc64(vp[i], vn[i], s, 0, 1);
        s[o++] = '.';
        o += enc64(vt[i], TOKEN_TAG_LEN, s + o, 0, 1);
        add("standard base64", TOKEN_EFORMAT, s, o);
        if (i == 0)
            continue; /* A did these for t */

        memcpy(s, v[i], m);
        s[0] = '+';
        add("alphabet +", TOKEN_EFORMAT, s, m);
        s[0] = '/';
        add("alphabet /", TOKEN_EFORMAT, s, m);
        s[0] = v[i][0];
        s[m - 1] = '+';
        add("alphabet +", TOKEN_EFORMAT, s, m);
        s[m - 1] = '/';
        add("alphabet /", TOKEN_EFORMAT, s, m);
    }
    /* O: shapes = 22 */
    dot = strchr(t, '.');
    add("empty", TOKEN_EFORMAT, "", 0);
    add_str("only a dot", TOKEN_EFORMAT, ".");
    add_str("no payload", TOKEN_EFORMAT, dot);
    n = (size_t)snprintf(s, sizeof s, "%s.%.*s", dot + 1, (int)(dot - t), t);
    add("tag.payload", TOKEN_EFORMAT, s, n);
    n = (size_t)snprintf(s, sizeof s, "%.*s..%s", (int)(dot - t), t, dot + 1);
    add("two dots", TOKEN_EFORMAT, s, n);
    n = (size_t)snprintf(s, sizeof s, "%s%s", t, dot);
    add("two tags", TOKEN_EFORMAT, s, n);
    n = (size_t)snprintf(s, sizeof s, "%s.%s", t, t);
    add("token.token", TOKEN_EFORMAT, s, n);
    n = (size_t)snprintf(s, sizeof s, " %s", t);
    add("leading space", TOKEN_EFORMAT, s, n);
    n = (size_t)snprintf(s, sizeof s, "%s\r\n", t);
    add("CRLF", TOKEN_EFORMAT, s, n);
    n = (size_t)snprintf(s, sizeof s, "%.*s .%s", (int)(dot - t), t, dot + 1);
    add("space before dot", TOKEN_EFORMAT, s, n);
    n = (size_t)snprintf(s, sizeof s, "%.*s%%2E%s", (int)(dot - t), t, dot + 1);
    add("escaped dot", TOKEN_EFORMAT, s, n);
    memcpy(s, t, tl);
    memmove(s + (dot - t) + 2, s + (dot - t) + 1, tl - (size_t)(dot - t) - 1);
    s[dot - t + 1] = '\0';
    add("NUL inside", TOKEN_EFORMAT, s, tl + 1);
    hmac32(sec_a, vp[0], vn[0], md);
    add_join("full 32-byte tag", TOKEN_EFORMAT, vp[0], vn[0], md, 32);
    add_join("14-byte tag", TOKEN_EFORMAT, vp[0], vn[0], md, 14);
    add_join("17-byte tag", TOKEN_EFORMAT, vp[0], vn[0], md, 17);
    memset(md, 0, sizeof md);
    add_join("zero tag", TOKEN_ETAG, vp[0], vn[0], md, TOKEN_TAG_LEN);
    add_join("header only", TOKEN_EFORMAT, vp[0], 10, vt[0], TOKEN_TAG_LEN);
    {
        size_t huge = 1 << 20;
        char *h = malloc(huge);

        assert_non_null(h);
        memset(h, 'A', huge);
        add("huge, 1 MiB", TOKEN_EFORMAT, h, huge);
        free(h);
    }
    memset(big, 'A', sizeof big);
    big[TOKEN_MAX_LEN + 1 - 23] = '.';
    add("TOKEN_MAX_LEN + 1", TOKEN_EFORMAT, big, TOKEN_MAX_LEN + 1);
    memcpy(s, t, tl);
    for (i = 0; i < tl; i++)
        s[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    add("upper case", 0, s, tl);
    for (i = 0; i < tl; i++)
        s[i] = t[tl - 1 - i];
    add("reversed", TOKEN_EFORMAT, s, tl);
    add_str("other purpose's token, key id as text", TOKEN_EFORMAT,
            "1.c123/email");

    /* P: real tags over malformed payloads = 32 */
#define SIGNED(what, want, ...)                                                \
    do {                                                                       \
        n = payload(p, __VA_ARGS__);                                           \
        add_signed(what, want, sec_a, p, n);                                   \
    } while (0)
#define KEY(s) s, sizeof(s) - 1
    n = payload(p, 1, 1, 1, NOW0, KEY("c123/email"), NULL, 0);
    p[n++] = 0;
    add_signed("trailing 00", TOKEN_EFORMAT, sec_a, p, n);
    p[n - 1] = 0xff;
    add_signed("trailing ff", TOKEN_EFORMAT, sec_a, p, n);
    p[n++] = 0x41;
    add_signed("two trailing", TOKEN_EFORMAT, sec_a, p, n);
    SIGNED("url on unsub", TOKEN_EFORMAT, 1, 1, TOK_UNSUB_ALL, NOW0,
           KEY("c123/email"), url1, strlen(url1));
    SIGNED("url on open", TOKEN_EFORMAT, 1, 1, TOK_OPEN, NOW0,
           KEY("c123/email"), url1, strlen(url1));
    SIGNED("click, no url", TOKEN_EFORMAT, 1, 1, TOK_CLICK, NOW0,
           KEY("c123/email"), NULL, 0);
    n = payload(p, 1, 1, TOK_CLICK, NOW0, KEY("c123/email"), KEY(url1));
    p[n++] = 0;
    add_signed("click, trailing", TOKEN_EFORMAT, sec_a, p, n);
    SIGNED("empty key", TOKEN_EFORMAT, 1, 1, 1, NOW0, "", 0, NULL, 0);
    n = payload(p, 1, 1, 1, NOW0, KEY("c123/email"), NULL, 0);
    p[9]++;
    add_signed("key_len past end", TOKEN_EFORMAT, sec_a, p, n);
    p[9] -= 2;
    add_signed("key_len short", TOKEN_EFORMAT, sec_a, p, n);
    {
        static char lk[TOKEN_URL_MAX + 1];

        memset(lk, 'k', sizeof lk);
        SIGNED("key 513", TOKEN_EFORMAT, 1, 1, 1, NOW0, lk, TOKEN_KEY_MAX + 1,
               NULL, 0);
        SIGNED("url 2049", TOKEN_EFORMAT, 1, 1, TOK_CLICK, NOW0, "k", 1, lk,
               TOKEN_URL_MAX + 1);
    }
    SIGNED("empty url", TOKEN_EFORMAT, 1, 1, TOK_CLICK, NOW0, "k", 1, "", 0);
    SIGNED("key NUL", TOKEN_EFORMAT, 1, 1, 1, NOW0, KEY("c1\0x"), NULL, 0);
    SIGNED("key LF", TOKEN_EFORMAT, 1, 1, 1, NOW0, KEY("c1\nx"), NULL, 0);
    SIGNED("key CR", TOKEN_EFORMAT, 1, 1, 1, NOW0, KEY("c1\rx"), NULL, 0);
    SIGNED("key DEL", TOKEN_EFORMAT, 1, 1, 1, NOW0, KEY("c1\x7f"), NULL, 0);
    SIGNED("key US", TOKEN_EFORMAT, 1, 1, 1, NOW0, KEY("\037c1"), NULL, 0);
    SIGNED("url CRLF", TOKEN_EFORMAT, 1, 1, TOK_CLICK, NOW0, "k", 1,
           KEY("https://a/\r\nSet-Cookie: a=b"));
    SIGNED("url NUL", TOKEN_EFORMAT, 1, 1, TOK_CLICK, NOW0, "k", 1,
           KEY("https://a/\0.evil"));
    SIGNED("lone continuation", TOKEN_EFORMAT, 1, 1, 1, NOW0, KEY("a\x80"),
           NULL, 0);
    SIGNED("overlong /", TOKEN_EFORMAT, 1, 1, 1, NOW0, KEY("\xc0\xaf"), NULL,
           0);
    SIGNED("overlong 3-byte", TOKEN_EFORMAT, 1, 1, 1, NOW0, KEY("\xe0\x80\xaf"),
           NULL, 0);
    SIGNED("surrogate", TOKEN_EFORMAT, 1, 1, 1, NOW0, KEY("\xed\xa0\x80"), NULL,
           0);
    SIGNED("above U+10FFFF", TOKEN_EFORMAT, 1, 1, 1, NOW0,
           KEY("\xf4\x90\x80\x80"), NULL, 0);
    SIGNED("F5 byte", TOKEN_EFORMAT, 1, 1, 1, NOW0, KEY("\xf5\x80\x80\x80"),
           NULL, 0);
    SIGNED("cut sequence", TOKEN_EFORMAT, 1, 1, 1, NOW0, KEY("ab\xe2\x82"),
           NULL, 0);
    SIGNED("overlong C1", TOKEN_EFORMAT, 1, 1, 1, NOW0, KEY("\xc1\xbf"), NULL,
           0);
    SIGNED("purpose 0", TOKEN_EFORMAT, 1, 1, 0, NOW0, KEY("c1"), NULL, 0);
    SIGNED("purpose 6", TOKEN_EFORMAT, 1, 1, 6, NOW0, KEY("c1"), NULL, 0);
    SIGNED("purpose 255", TOKEN_EFORMAT, 1, 1, 255, NOW0, KEY("c1"), NULL, 0);
    SIGNED("version 2", TOKEN_EVERSION, 2, 1, 1, NOW0, KEY("c1"), NULL, 0);
#undef SIGNED
#undef KEY
}

static void
test_forgeries(void **state)
{
    struct token_ring r;
    struct token_claims c;
    size_t counts[6] = { 0 }, i;
    struct forged *sorted;
    int failed = 0;

    (void)state;
    ring_std(&r);
    make_forgeries(&r);

    /* all distinct */
    sorted = malloc(nforged * sizeof *sorted);
    assert_non_null(sorted);
    memcpy(sorted, forged, nforged * sizeof *sorted);
    qsort(sorted, nforged, sizeof *sorted, cmp_forged);
    for (i = 1; i < nforged; i++)
        if (cmp_forged(&sorted[i - 1], &sorted[i]) == 0) {
            print_error("duplicate forgery: %s / %s\n", sorted[i - 1].what,
                        sorted[i].what);
            failed = 1;
        }
    free(sorted);

    for (i = 0; i < nforged; i++) {
        int rc;

        memset(&c, 0x5a, sizeof c);
        rc = token_verify(&r, forged[i].s, forged[i].len, NOW, &c);
        if (rc == 0 || (forged[i].want && rc != forged[i].want)) {
            print_error("forgery %zu (%s, %zu bytes): got %d (%s)\n", i,
                        forged[i].what, forged[i].len, rc, token_strerror(rc));
            failed = 1;
        }
        if (rc <= TOKEN_EFORMAT && rc >= TOKEN_EFUTURE)
            counts[TOKEN_EFORMAT - rc]++;
        else
            failed = 1;
        /* nothing of a refused token is left in the claims */
        if (c.purpose != 0 || c.key_id != 0 || c.issued != 0 ||
            c.msg_key[0] != '\0' || c.url[0] != '\0')
            failed = 1;
        free(forged[i].s);
    }
    print_message("%zu forgeries (%zu repeats dropped) refused: format %zu, "
                  "version %zu, key %zu, tag %zu, expired %zu, future %zu\n",
                  nforged, nsame, counts[0], counts[1], counts[2], counts[3],
                  counts[4], counts[5]);
    assert_int_equal(failed, 0);
    assert_int_equal(counts[4] + counts[5], 0);
    assert_int_equal(nforged, NFORGED);
    assert_int_equal(nsame, 23);
    token_ring_clear(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_click_url_exact),
        cmocka_unit_test(test_max_lengths),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_ring_secrets),
        cmocka_unit_test(test_age),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_forgeries),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

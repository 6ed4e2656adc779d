/*
 * fuzz_fax_hook.c -- libFuzzer target for the fax channel's webhook and
 * reply parsers (channels/fax_hook.c). Each input goes to fax_hook_parse
 * as a body, whose result is checked against fax_hook.h's contract (a
 * reason on failure; on success a known event has a lower-case fax_id of
 * [a-z0-9._:-], fax.received a media_url, every string within its cap);
 * then it is signed with a fixed Ed25519 key and must verify, and must not
 * verify with one byte changed or under another timestamp. The same bytes
 * split at the first two newlines (timestamp, signature, body) go to
 * fax_hook_verify as a forger would send them; short inputs also go, as C
 * strings, to the Retry-After, token, base64, E.164, classifier, URL,
 * file-name and notice helpers and to the provider-reply parsers.
 * Build: make build/fuzz/fuzz_fax_hook
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "channels/fax_hook.h"
#include "common/err.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000

static EVP_PKEY *priv;
static unsigned char pub[32];
static const unsigned char tkey[32] = "fuzz-media-token-key-32-bytes!!!";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const unsigned char seed[32] = "fuzz_fax_hook fixed Ed25519 key";
    size_t n = sizeof pub;

    (void)argc;
    (void)argv;
    priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
                                        sizeof seed);
    if (!priv || EVP_PKEY_get_raw_public_key(priv, pub, &n) != 1 || n != 32)
        abort();
    return 0;
}

static void
sign(const char *ts, const uint8_t *body, size_t len, char out[100])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t tl = strlen(ts), siglen = 64;
    unsigned char *msg = malloc(tl + 1 + len + 1), sig[64];

    if (!md || !msg)
        abort();
    memcpy(msg, ts, tl);
    msg[tl] = '|';
    if (len)
        memcpy(msg + tl + 1, body, len);
    if (EVP_DigestSignInit(md, NULL, NULL, NULL, priv) != 1 ||
        EVP_DigestSign(md, sig, &siglen, msg, tl + 1 + len) != 1)
        abort();
    EVP_EncodeBlock((unsigned char *)out, sig, 64);
    EVP_MD_CTX_free(md);
    free(msg);
}

static void
check_str(const char *s, size_t max)
{
    if (!s)
        return;
    if (strlen(s) > max)
        abort();
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            abort();
}

static void
check_event(int rc, const struct fax_event *ev, const char *err)
{
    if (rc != 0) {
        if ((rc != GW_EPARSE && rc != GW_ETOOBIG && rc != -12) || !err[0])
            abort();
        return;
    }
    if (!ev->event_type || fax_event_type_parse(ev->event_type) != ev->type)
        abort();
    if (ev->type != FAX_EV_UNKNOWN) {
        if (!ev->fax_id || !*ev->fax_id || strlen(ev->fax_id) > FAX_ID_MAX)
            abort();
        for (const char *p = ev->fax_id; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                  strchr("._:-", *p)))
                abort();
    }
    if (ev->type == FAX_EV_RECEIVED && !ev->media_url)
        abort();
    if (ev->page_count < 0 || ev->page_count > 100000)
        abort();
    check_str(ev->event_type, 64);
    check_str(ev->id, FAX_ID_MAX);
    check_str(ev->to, FAX_STR_MAX);
    check_str(ev->from, FAX_STR_MAX);
    check_str(ev->failure_reason, FAX_STR_MAX);
    check_str(ev->media_url, FAX_URL_MAX);
    (void)fax_failure_class(ev->failure_reason);
}

static void
helpers(const char *s)
{
    const char *hosts[] = { "127.0.0.1", "example.org" };
    char buf[FAX_TOKEN_MAX], name[FAX_ID_MAX + 1];
    unsigned char raw[64];
    size_t n;
    int64_t ms, exp;
    char *notice;

    ms = fax_retry_after_ms(s, NOW);
    if (ms < 0 || ms > 86400000)
        abort();
    if (fax_token_check(tkey, sizeof tkey, s, NOW, &exp) == 0 && exp < NOW)
        abort();
    if (fax_base64_decode(s, raw, sizeof raw, &n) == 0 && n > sizeof raw)
        abort();
    (void)fax_e164_ok(s);
    (void)fax_failure_class(s);
    (void)fax_url_host_ok(s, hosts, 2);
    if (fax_url_host(s, buf, sizeof buf) == 0 && !*buf)
        abort();
    if (fax_id_file_name(s, name, sizeof name) == 0)
        for (const char *p = name; *p; p++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789_-", *p))
                abort();
    if (fax_notice(s, "+18005550100", "+18005550101", "http://x/u",
                   &notice) == 0) {
        if (strlen(notice) > 4096)
            abort();
        free(notice);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    struct fax_event ev;
    char err[256], sig[100], id[FAX_ID_MAX + 1], text[300];
    int rc;

    /* the body parser */
    err[0] = 0;
    rc = fax_hook_parse(body, size, &ev, err, sizeof err);
    check_event(rc, &ev, err);
    fax_event_free(&ev);

    /* the provider's replies */
    if (fax_api_accept(body, size, id, sizeof id) == 0 && !*id)
        abort();
    fax_api_error(body, size, text, sizeof text);
    if (strlen(text) >= sizeof text)
        abort();

    /* a correct signature verifies; a changed body or timestamp does not */
    if (size <= 4096) {
        sign("1700000000", data, size, sig);
        if (fax_hook_verify(pub, sig, "1700000000", NOW, 300, body, size) != 0)
            abort();
        if (fax_hook_verify(pub, sig, "1700000001", NOW, 300, body, size) ==
            0)
            abort();
        if (size) {
            uint8_t *alt = malloc(size);
            memcpy(alt, data, size);
            alt[size / 2] ^= 0x01;
            if (fax_hook_verify(pub, sig, "1700000000", NOW, 300,
                                (const char *)alt, size) == 0)
                abort();
            free(alt);
        }
    }

    /* as a forger: "ts\nsig\nbody" */
    {
        const uint8_t *nl1 = memchr(data, '\n', size), *nl2;
        if (nl1 && (nl2 = memchr(nl1 + 1, '\n', size - (size_t)(nl1 + 1 -
                                                                  data)))) {
            char ts[32], s[200];
            size_t tl = (size_t)(nl1 - data), sl = (size_t)(nl2 - nl1 - 1);
            if (tl < sizeof ts && sl < sizeof s && !memchr(data, 0, tl) &&
                !memchr(nl1 + 1, 0, sl)) {
                memcpy(ts, data, tl);
                ts[tl] = 0;
                memcpy(s, nl1 + 1, sl);
                s[sl] = 0;
                rc = fax_hook_verify(pub, s, ts, NOW, 300,
                                     (const char *)nl2 + 1,
                                     size - (size_t)(nl2 + 1 - data));
                if (rc != 0 && rc != GW_EPARSE && rc != GW_EINVAL &&
                    rc != GW_ETIMEOUT)
                    abort();
            }
        }
    }

    /* the helpers, on the same bytes as a C string */
    if (size < 512 && memchr(data, 0, size) == NULL) {
        char *s = malloc(size + 1);
        if (!s)
            return 0;
        memcpy(s, data, size);
        s[size] = 0;
        helpers(s);
        free(s);
    }
    return 0;
}

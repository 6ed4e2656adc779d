/*
 * test_fax_hook.c -- the fax channel's pure helpers (channels/fax_hook.c):
 * Telnyx webhook signatures with a key pair made here (good, altered body,
 * altered, stale and future timestamps, bad base64, truncated signature,
 * wrong key), body parsing of every event type and its failures, the
 * failure-reason classifier, E.164, Retry-After, media tokens, the
 * provider's replies, the opt-out notice, inbound hosts and file names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "channels/fax_hook.h"
#include "common/err.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static EVP_PKEY *key_a, *key_b;
static unsigned char pub_a[32], pub_b[32];

static EVP_PKEY *
make_key(unsigned char pub[32])
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    EVP_PKEY *k = NULL;
    size_t n = 32;

    assert_non_null(c);
    assert_int_equal(EVP_PKEY_keygen_init(c), 1);
    assert_int_equal(EVP_PKEY_keygen(c, &k), 1);
    EVP_PKEY_CTX_free(c);
    assert_int_equal(EVP_PKEY_get_raw_public_key(k, pub, &n), 1);
    assert_int_equal(n, 32);
    return k;
}

static int
setup(void **state)
{
    (void)state;
    key_a = make_key(pub_a);
    key_b = make_key(pub_b);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(key_a);
    EVP_PKEY_free(key_b);
    return 0;
}

/* base64(Ed25519(k, ts "|" body)) into out (at least 100 bytes). */
static void
sign(EVP_PKEY *k, const char *ts, const char *body, char *out)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[64];
    size_t siglen = sizeof sig, n = strlen(ts) + 1 + strlen(body);
    char *msg = malloc(n + 1);

    snprintf(msg, n + 1, "%s|%s", ts, body);
    assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, k), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &siglen, (unsigned char *)msg,
                                    n), 1);
    assert_int_equal(siglen, 64);
    EVP_EncodeBlock((unsigned char *)out, sig, 64);
    EVP_MD_CTX_free(md);
    free(msg);
}

static const char delivered_body[] =
    "{\"data\":{\"event_type\":\"fax.delivered\",\"id\":"
    "\"3320554f-6b74-4138-a74b-a1e2ec7eaf8b\",\"occurred_at\":"
    "\"2022-01-07T10:01:43.677850Z\",\"record_type\":\"event\",\"payload\":"
    "{\"call_duration_secs\":79,\"connection_id\":\"1232154810234\","
    "\"direction\":\"outbound\",\"fax_id\":"
    "\"C62BE5BC-9b13-4b6c-abda-34dd8b541287\",\"from\":\"+19459457421\","
    "\"original_media_url\":\"https://example.org/x.pdf\",\"page_count\":2,"
    "\"status\":\"delivered\",\"to\":\"+13129457420\",\"user_id\":"
    "\"bdaa1f9f-1018-4156-867d-6c4ac9f556eb\"}},\"meta\":{\"attempt\":1,"
    "\"delivered_to\":\"http://127.0.0.1:8080/hooks/fax/fax1\"}}";

static void
test_verify(void **state)
{
    const char *body = delivered_body;
    size_t len = strlen(body);
    int64_t now = 1700000000;
    char sig[100], ts[32], sig2[100], bad[100];

    (void)state;
    snprintf(ts, sizeof ts, "%lld", (long long)now);
    sign(key_a, ts, body, sig);
    assert_int_equal(fax_hook_verify(pub_a, sig, ts, now, 300, body, len), 0);
    /* within tolerance, either side */
    assert_int_equal(fax_hook_verify(pub_a, sig, ts, now + 300, 300, body,
                                     len), 0);
    assert_int_equal(fax_hook_verify(pub_a, sig, ts, now - 300, 300, body,
                                     len), 0);

    /* the body altered: one byte, one byte fewer, one more */
    {
        char *alt = strdup(body);
        alt[len - 3] = alt[len - 3] == '1' ? '2' : '1';
        assert_int_equal(fax_hook_verify(pub_a, sig, ts, now, 300, alt, len),
                         GW_EINVAL);
        free(alt);
    }
    assert_int_equal(fax_hook_verify(pub_a, sig, ts, now, 300, body,
                                     len - 1), GW_EINVAL);
    {
        char *more = malloc(len + 2);
        memcpy(more, body, len);
        more[len] = ' ';
        more[len + 1] = 0;
        assert_int_equal(fax_hook_verify(pub_a, sig, ts, now, 300, more,
                                         len + 1), GW_EINVAL);
        free(more);
    }
    /* the timestamp altered (still within tolerance): the MAC covers it */
    {
        char ts2[32];
        snprintf(ts2, sizeof ts2, "%lld", (long long)now + 1);
        assert_int_equal(fax_hook_verify(pub_a, sig, ts2, now, 300, body,
                                         len), GW_EINVAL);
    }
    /* stale and future timestamps, correctly signed */
    {
        char old[32], fut[32];
        snprintf(old, sizeof old, "%lld", (long long)now - 301);
        sign(key_a, old, body, sig2);
        assert_int_equal(fax_hook_verify(pub_a, sig2, old, now, 300, body,
                                         len), GW_ETIMEOUT);
        snprintf(fut, sizeof fut, "%lld", (long long)now + 3600);
        sign(key_a, fut, body, sig2);
        assert_int_equal(fax_hook_verify(pub_a, sig2, fut, now, 300, body,
                                         len), GW_ETIMEOUT);
    }
    /* malformed timestamps */
    assert_int_equal(fax_hook_verify(pub_a, sig, "", now, 300, body, len),
                     GW_EPARSE);
    assert_int_equal(fax_hook_verify(pub_a, sig, "17e8", now, 300, body, len),
                     GW_EPARSE);
    assert_int_equal(fax_hook_verify(pub_a, sig, " 1700000000", now, 300,
                                     body, len), GW_EPARSE);
    assert_int_equal(fax_hook_verify(pub_a, sig, "-1700000000", now, 300,
                                     body, len), GW_EPARSE);
    assert_int_equal(fax_hook_verify(pub_a, sig, "99999999999999999999", now,
                                     300, body, len), GW_EPARSE);
    /* missing headers */
    assert_int_equal(fax_hook_verify(pub_a, NULL, ts, now, 300, body, len),
                     GW_EPARSE);
    assert_int_equal(fax_hook_verify(pub_a, sig, NULL, now, 300, body, len),
                     GW_EPARSE);
    /* bad base64 */
    snprintf(bad, sizeof bad, "%s", sig);
    bad[10] = '!';
    assert_int_equal(fax_hook_verify(pub_a, bad, ts, now, 300, body, len),
                     GW_EPARSE);
    assert_int_equal(fax_hook_verify(pub_a, "not base64 at all", ts, now, 300,
                                     body, len), GW_EPARSE);
    /* truncated signature: fewer than 64 bytes */
    snprintf(bad, sizeof bad, "%.84s", sig);
    assert_int_equal(fax_hook_verify(pub_a, bad, ts, now, 300, body, len),
                     GW_EPARSE);
    snprintf(bad, sizeof bad, "%.86s", sig);   /* "==" gone: 64 bytes */
    assert_int_equal(fax_hook_verify(pub_a, bad, ts, now, 300, body, len), 0);
    /* a valid signature with one bit flipped */
    snprintf(bad, sizeof bad, "%s", sig);
    bad[20] = bad[20] == 'A' ? 'B' : 'A';
    assert_int_equal(fax_hook_verify(pub_a, bad, ts, now, 300, body, len),
                     GW_EINVAL);
    /* the wrong key: signed by b, checked with a, and the other way */
    sign(key_b, ts, body, sig2);
    assert_int_equal(fax_hook_verify(pub_a, sig2, ts, now, 300, body, len),
                     GW_EINVAL);
    assert_int_equal(fax_hook_verify(pub_b, sig2, ts, now, 300, body, len),
                     0);
    assert_int_equal(fax_hook_verify(pub_b, sig, ts, now, 300, body, len),
                     GW_EINVAL);
    /* an empty body can be signed too */
    sign(key_a, ts, "", sig2);
    assert_int_equal(fax_hook_verify(pub_a, sig2, ts, now, 300, "", 0), 0);
    assert_int_equal(fax_hook_verify(pub_a, sig2, ts, now, 300, NULL, 0), 0);
}

static void
test_base64(void **state)
{
    unsigned char out[16];
    size_t n = 0;

    (void)state;
    assert_int_equal(fax_base64_decode("aGVsbG8=", out, sizeof out, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "hello", 5);
    assert_int_equal(fax_base64_decode("aGVsbG8", out, sizeof out, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(fax_base64_decode("aGVsbA==", out, sizeof out, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(fax_base64_decode("aGVs", out, sizeof out, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(fax_base64_decode("+/+/", out, sizeof out, &n), 0);
    assert_int_equal(n, 3);
    /* wrong padding, stray characters, non-zero leftover bits, too long */
    assert_int_equal(fax_base64_decode("aGVsbG8==", out, sizeof out, &n),
                     GW_EPARSE);
    assert_int_equal(fax_base64_decode("aGVsbA=", out, sizeof out, &n),
                     GW_EPARSE);
    assert_int_equal(fax_base64_decode("aGVs=", out, sizeof out, &n),
                     GW_EPARSE);
    assert_int_equal(fax_base64_decode("aGV sbG8=", out, sizeof out, &n),
                     GW_EPARSE);
    assert_int_equal(fax_base64_decode("a=Vs", out, sizeof out, &n),
                     GW_EPARSE);
    assert_int_equal(fax_base64_decode("aGVsbG9=", out, sizeof out, &n),
                     GW_EPARSE);
    assert_int_equal(fax_base64_decode("a", out, sizeof out, &n), GW_EPARSE);
    assert_int_equal(fax_base64_decode("", out, sizeof out, &n), GW_EPARSE);
    assert_int_equal(fax_base64_decode("-_-_", out, sizeof out, &n),
                     GW_EPARSE);
    assert_int_equal(fax_base64_decode(NULL, out, sizeof out, &n), GW_EPARSE);
    assert_int_equal(fax_base64_decode("aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ=",
                                       out, sizeof out, &n), GW_ETOOBIG);
}

/* A body with the given event and payload members. */
static char *
body_of(const char *event, const char *payload)
{
    char *s;

    assert_true(asprintf(&s, "{\"data\":{\"event_type\":\"%s\",\"id\":"
                         "\"ev-1\",\"occurred_at\":\"2024-01-01T00:00:00Z\","
                         "\"payload\":{%s}},\"meta\":{\"attempt\":1}}",
                         event, payload) > 0);
    return s;
}

static void
test_parse_events(void **state)
{
    static const struct {
        const char *event;
        enum fax_event_type type;
    } cases[] = {
        { "fax.queued", FAX_EV_QUEUED },
        { "fax.media.processed", FAX_EV_MEDIA_PROCESSED },
        { "fax.sending.started", FAX_EV_SENDING_STARTED },
        { "fax.delivered", FAX_EV_DELIVERED },
        { "fax.failed", FAX_EV_FAILED },
    };
    struct fax_event ev;
    char err[200];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *b = body_of(cases[i].event,
                          "\"fax_id\":\"AbC-123\",\"connection_id\":\"c1\","
                          "\"direction\":\"outbound\",\"to\":\"+13129457420\","
                          "\"from\":\"+19459457421\",\"status\":\"x\","
                          "\"page_count\":3,\"failure_reason\":null");
        assert_int_equal(fax_hook_parse(b, strlen(b), &ev, err, sizeof err),
                         0);
        assert_int_equal(ev.type, cases[i].type);
        assert_string_equal(ev.event_type, cases[i].event);
        assert_string_equal(ev.fax_id, "abc-123");
        assert_string_equal(ev.id, "ev-1");
        assert_string_equal(ev.connection_id, "c1");
        assert_string_equal(ev.direction, "outbound");
        assert_string_equal(ev.to, "+13129457420");
        assert_string_equal(ev.from, "+19459457421");
        assert_int_equal(ev.page_count, 3);
        assert_null(ev.failure_reason);
        assert_null(ev.media_url);
        fax_event_free(&ev);
        free(b);
    }

    /* the documented example */
    assert_int_equal(fax_hook_parse(delivered_body, strlen(delivered_body),
                                    &ev, err, sizeof err), 0);
    assert_int_equal(ev.type, FAX_EV_DELIVERED);
    assert_string_equal(ev.fax_id, "c62be5bc-9b13-4b6c-abda-34dd8b541287");
    assert_int_equal(ev.page_count, 2);
    fax_event_free(&ev);

    /* fax.failed with its reason */
    {
        char *b = body_of("fax.failed", "\"fax_id\":\"f1\",\"status\":"
                          "\"failed\",\"failure_reason\":\"user_busy\"");
        assert_int_equal(fax_hook_parse(b, strlen(b), &ev, err, sizeof err),
                         0);
        assert_int_equal(ev.type, FAX_EV_FAILED);
        assert_string_equal(ev.failure_reason, "user_busy");
        assert_int_equal(ev.page_count, 0);
        assert_null(ev.to);
        fax_event_free(&ev);
        free(b);
    }
    /* fax.received */
    {
        char *b = body_of("fax.received",
                          "\"fax_id\":\"in-1\",\"direction\":\"inbound\","
                          "\"to\":\"+13125550000\",\"from\":\"+13125550001\","
                          "\"page_count\":4,\"media_url\":"
                          "\"http://127.0.0.1:9000/files/in-1.pdf\"");
        assert_int_equal(fax_hook_parse(b, strlen(b), &ev, err, sizeof err),
                         0);
        assert_int_equal(ev.type, FAX_EV_RECEIVED);
        assert_string_equal(ev.media_url,
                            "http://127.0.0.1:9000/files/in-1.pdf");
        assert_string_equal(ev.direction, "inbound");
        assert_int_equal(ev.page_count, 4);
        fax_event_free(&ev);
        free(b);
    }
    /* unknown event types parse (the caller ignores them), payload or not */
    {
        const char *b = "{\"data\":{\"event_type\":\"fax.something.new\","
                        "\"payload\":[1,2]}}";
        assert_int_equal(fax_hook_parse(b, strlen(b), &ev, err, sizeof err),
                         0);
        assert_int_equal(ev.type, FAX_EV_UNKNOWN);
        assert_string_equal(ev.event_type, "fax.something.new");
        assert_null(ev.fax_id);
        fax_event_free(&ev);
    }
    /* fax_event_free twice and on a zeroed event */
    fax_event_free(&ev);
    fax_event_free(NULL);
    assert_int_equal(fax_event_type_parse("fax.delivered"), FAX_EV_DELIVERED);
    assert_int_equal(fax_event_type_parse("FAX.DELIVERED"), FAX_EV_UNKNOWN);
    assert_int_equal(fax_event_type_parse(NULL), FAX_EV_UNKNOWN);
}

static void
test_parse_errors(void **state)
{
    static const char *const bad[] = {
        "",
        "{",
        "not json",
        "[]",
        "\"data\"",
        "{}",
        "{\"data\":\"fax.delivered\"}",
        "{\"data\":{}}",
        "{\"data\":{\"event_type\":7}}",
        "{\"data\":{\"event_type\":\"\"}}",
        "{\"data\":{\"event_type\":\"fax.delivered\"}}",
        "{\"data\":{\"event_type\":\"fax.delivered\",\"payload\":[]}}",
        "{\"data\":{\"event_type\":\"fax.delivered\",\"payload\":{}}}",
        "{\"data\":{\"event_type\":\"fax.delivered\",\"payload\":"
        "{\"fax_id\":12}}}",
        "{\"data\":{\"event_type\":\"fax.delivered\",\"payload\":"
        "{\"fax_id\":\"\"}}}",
        "{\"data\":{\"event_type\":\"fax.delivered\",\"payload\":"
        "{\"fax_id\":\"a b\"}}}",
        "{\"data\":{\"event_type\":\"fax.delivered\",\"payload\":"
        "{\"fax_id\":\"a/../b\"}}}",
        "{\"data\":{\"event_type\":\"fax.delivered\",\"payload\":"
        "{\"fax_id\":\"a,b\"}}}",
        "{\"data\":{\"event_type\":\"fax.delivered\",\"payload\":"
        "{\"fax_id\":\"f\",\"page_count\":\"2\"}}}",
        "{\"data\":{\"event_type\":\"fax.delivered\",\"payload\":"
        "{\"fax_id\":\"f\",\"page_count\":-1}}}",
        "{\"data\":{\"event_type\":\"fax.delivered\",\"payload\":"
        "{\"fax_id\":\"f\",\"page_count\":2.5}}}",
        "{\"data\":{\"event_type\":\"fax.delivered\",\"payload\":"
        "{\"fax_id\":\"f\",\"to\":[\"+1\"]}}}",
        "{\"data\":{\"event_type\":\"fax.failed\",\"payload\":"
        "{\"fax_id\":\"f\",\"failure_reason\":5}}}",
        "{\"data\":{\"event_type\":\"fax.delivered\",\"payload\":"
        "{\"fax_id\":\"f\",\"from\":\"a\\nb\"}}}",
        "{\"data\":{\"event_type\":\"fax.delivered\",\"payload\":"
        "{\"fax_id\":\"f\",\"from\":\"a\\u0000b\"}}}",
        "{\"data\":{\"event_type\":\"fax.received\",\"payload\":"
        "{\"fax_id\":\"f\"}}}",
        "{\"data\":{\"event_type\":\"fax.received\",\"payload\":"
        "{\"fax_id\":\"f\",\"media_url\":null}}}",
        "{\"data\":{\"event_type\":\"fax.delivered\",\"id\":{},\"payload\":"
        "{\"fax_id\":\"f\"}}}",
        "{\"data\":{\"event_type\":\"fax.delivered\",\"payload\":"
        "{\"fax_id\":\"f\"}},\"meta\":3}",
        /* duplicate keys, at either level */
        "{\"data\":{\"event_type\":\"fax.delivered\",\"payload\":"
        "{\"fax_id\":\"f\",\"fax_id\":\"g\"}}}",
        "{\"data\":{\"event_type\":\"fax.queued\",\"event_type\":"
        "\"fax.delivered\",\"payload\":{\"fax_id\":\"f\"}}}",
        /* trailing garbage */
        "{\"data\":{\"event_type\":\"fax.delivered\",\"payload\":"
        "{\"fax_id\":\"f\"}}} x",
    };
    struct fax_event ev;
    char err[200];

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        int rc = fax_hook_parse(bad[i], strlen(bad[i]), &ev, err, sizeof err);
        if (rc != GW_EPARSE || !err[0])
            fail_msg("case %zu '%s': rc %d err '%s'", i, bad[i], rc, err);
        fax_event_free(&ev);
    }
    /* over-long strings */
    {
        char id[FAX_ID_MAX + 2], *b, *p;
        memset(id, 'a', sizeof id - 1);
        id[sizeof id - 1] = 0;
        assert_true(asprintf(&p, "\"fax_id\":\"%s\"", id) > 0);
        b = body_of("fax.delivered", p);
        assert_int_equal(fax_hook_parse(b, strlen(b), &ev, err, sizeof err),
                         GW_EPARSE);
        fax_event_free(&ev);
        free(b);
        free(p);
        id[FAX_ID_MAX] = 0;        /* exactly the limit */
        assert_true(asprintf(&p, "\"fax_id\":\"%s\"", id) > 0);
        b = body_of("fax.delivered", p);
        assert_int_equal(fax_hook_parse(b, strlen(b), &ev, err, sizeof err),
                         0);
        fax_event_free(&ev);
        free(b);
        free(p);
    }
    /* a body over the cap is refused before it is parsed */
    {
        size_t n = FAX_HOOK_MAX_BODY + 1;
        char *b = malloc(n);
        memset(b, ' ', n);
        assert_int_equal(fax_hook_parse(b, n, &ev, err, sizeof err),
                         GW_ETOOBIG);
        fax_event_free(&ev);
        free(b);
    }
    /* NULL err is allowed */
    assert_int_equal(fax_hook_parse("{", 1, &ev, NULL, 0), GW_EPARSE);
    fax_event_free(&ev);
}

static void
test_failure_class(void **state)
{
    static const char *const temp[] = {
        "user_busy", "busy", "USER_BUSY", "receiver_user_busy", "no_answer",
        "receiver_no_answer", "receiver_no_response", "call_dropped",
        "receiver_call_dropped", "timeout", "fax_initial_communication_timeout",
        "receiver_recovery_on_timer_expire", "fax_signaling_error",
        "invalid_ecm_response_from_receiver", "receiver_communication_error",
        "destination_unreachable", "service_unavailable",
        "connection_channel_limit_exceeded",
        "outbound_profile_channel_limit_exceeded",
        "user_channel_limit_exceeded", "file_download_failed",
        /* unknown, but saying busy / no answer / timeout */
        "line_busy_now", "carrier_timeout", "peer_no_answer",
    };
    static const char *const perm[] = {
        "destination_invalid", "invalid_number",
        "receiver_invalid_number_format", "receiver_unallocated_number",
        "unallocated_number", "destination_not_in_countries_whitelist",
        "destination_not_in_service_plan", "receiver_decline", "rejected",
        "call_rejected", "receiver_incompatible_destination",
        "not_a_fax_machine", "account_disabled", "no_outbound_profile",
        "outbound_profile_daily_spend_limit_exceeded",
        "file_size_limit_exceeded", "page_count_limit_exceeded",
        "file_format_invalid", "forged_by_fake", "something_new", "",
    };

    (void)state;
    for (size_t i = 0; i < sizeof temp / sizeof temp[0]; i++)
        if (fax_failure_class(temp[i]) != RCPT_TEMPFAIL)
            fail_msg("'%s' should be temporary", temp[i]);
    for (size_t i = 0; i < sizeof perm / sizeof perm[0]; i++)
        if (fax_failure_class(perm[i]) != RCPT_UNDELIVERABLE)
            fail_msg("'%s' should be undeliverable", perm[i]);
    assert_int_equal(fax_failure_class(NULL), RCPT_UNDELIVERABLE);
}

static void
test_e164(void **state)
{
    static const char *const good[] = {
        "+12345678", "+13129457420", "+491701234567", "+123456789012345",
    };
    static const char *const bad[] = {
        "", "+", "13129457420", "+1234567", "+1234567890123456",
        "+03129457420", "+1312945742a", "+1 312 945 7420", "++13129457420",
        "+13129457420 ", "tel:+13129457420",
    };

    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!fax_e164_ok(good[i]))
            fail_msg("'%s' should be E.164", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (fax_e164_ok(bad[i]))
            fail_msg("'%s' should not be E.164", bad[i]);
    assert_false(fax_e164_ok(NULL));
}

static void
test_retry_after(void **state)
{
    int64_t now = (int64_t)time(NULL);
    char date[64];
    time_t t;
    struct tm tm;

    (void)state;
    assert_int_equal(fax_retry_after_ms("120", now), 120000);
    assert_int_equal(fax_retry_after_ms(" 5 ", now), 5000);
    assert_int_equal(fax_retry_after_ms("5\r\n", now), 5000);
    assert_int_equal(fax_retry_after_ms("0", now), 0);
    assert_int_equal(fax_retry_after_ms("86400", now), 86400000);
    assert_int_equal(fax_retry_after_ms("999999", now), 86400000);
    assert_int_equal(fax_retry_after_ms("99999999999999999999", now),
                     86400000);
    /* HTTP-date, in the three forms of RFC 9110 */
    t = (time_t)(now + 30);
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    assert_int_equal(fax_retry_after_ms(date, now), 30000);
    strftime(date, sizeof date, "%A, %d-%b-%y %H:%M:%S GMT", &tm);
    assert_int_equal(fax_retry_after_ms(date, now), 30000);
    strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm);
    assert_int_equal(fax_retry_after_ms(date, now), 30000);
    assert_int_equal(fax_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT",
                                        1445412480 - 2), 2000);
    /* in the past */
    assert_int_equal(fax_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", now),
                     0);
    /* garbage */
    assert_int_equal(fax_retry_after_ms("soon", now), 0);
    assert_int_equal(fax_retry_after_ms("-5", now), 0);
    assert_int_equal(fax_retry_after_ms("1.5", now), 0);
    assert_int_equal(fax_retry_after_ms("5s", now), 0);
    assert_int_equal(fax_retry_after_ms("", now), 0);
    assert_int_equal(fax_retry_after_ms("   ", now), 0);
    assert_int_equal(fax_retry_after_ms(NULL, now), 0);
}

static const unsigned char tkey[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char rnd[16] = {
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0xff
};

static void
test_token(void **state)
{
    char tok[FAX_TOKEN_MAX], bad[FAX_TOKEN_MAX + 8];
    int64_t exp = 0;
    size_t n;

    (void)state;
    assert_int_equal(fax_token_make(tkey, sizeof tkey, rnd, 1700000600, tok,
                                     sizeof tok), 0);
    assert_int_equal(strncmp(tok, "0102030405060708090a0b0c0d0e0fff.1700000600"
                             ".", 44), 0);
    n = strlen(tok);
    assert_int_equal(n, 32 + 1 + 10 + 1 + 32);
    assert_int_equal(fax_token_check(tkey, sizeof tkey, tok, 1700000000,
                                     &exp), 0);
    assert_int_equal(exp, 1700000600);
    assert_int_equal(fax_token_check(tkey, sizeof tkey, tok, 1700000600,
                                     NULL), 0);
    /* expired */
    assert_int_equal(fax_token_check(tkey, sizeof tkey, tok, 1700000601,
                                     NULL), GW_ETIMEOUT);
    /* another key */
    {
        unsigned char k2[32];
        memcpy(k2, tkey, 32);
        k2[31] ^= 1;
        assert_int_equal(fax_token_check(k2, sizeof k2, tok, 1700000000,
                                         NULL), GW_EINVAL);
    }
    /* every single character changed */
    for (size_t i = 0; i < n; i++) {
        memcpy(bad, tok, n + 1);
        bad[i] = bad[i] == '0' ? '1' : bad[i] == '.' ? '0' : '0';
        if (fax_token_check(tkey, sizeof tkey, bad, 1700000000, NULL) !=
            GW_EINVAL)
            fail_msg("token changed at %zu accepted: %s", i, bad);
    }
    /* a later expiry put in by hand */
    memcpy(bad, tok, n + 1);
    bad[33] = '2';
    assert_int_equal(fax_token_check(tkey, sizeof tkey, bad, 1700000000,
                                     NULL), GW_EINVAL);
    /* upper case, truncated, extended, empty, path tricks */
    memcpy(bad, tok, n + 1);
    bad[0] = 'A';
    bad[1] = 'B';
    assert_int_equal(fax_token_check(tkey, sizeof tkey, bad, 0, NULL),
                     GW_EINVAL);
    memcpy(bad, tok, n + 1);
    bad[n - 1] = 0;
    assert_int_equal(fax_token_check(tkey, sizeof tkey, bad, 0, NULL),
                     GW_EINVAL);
    snprintf(bad, sizeof bad, "%s0", tok);
    assert_int_equal(fax_token_check(tkey, sizeof tkey, bad, 0, NULL),
                     GW_EINVAL);
    snprintf(bad, sizeof bad, "%s.pdf", tok);
    assert_int_equal(fax_token_check(tkey, sizeof tkey, bad, 0, NULL),
                     GW_EINVAL);
    assert_int_equal(fax_token_check(tkey, sizeof tkey, "", 0, NULL),
                     GW_EINVAL);
    assert_int_equal(fax_token_check(tkey, sizeof tkey, "../../etc/passwd", 0,
                                     NULL), GW_EINVAL);
    assert_int_equal(fax_token_check(tkey, sizeof tkey, NULL, 0, NULL),
                     GW_EINVAL);
    /* no expiry digits */
    snprintf(bad, sizeof bad, "%.32s..%s", tok, tok + 44);
    assert_int_equal(fax_token_check(tkey, sizeof tkey, bad, 0, NULL),
                     GW_EINVAL);
    /* a short buffer and a negative expiry are refused */
    assert_int_equal(fax_token_make(tkey, sizeof tkey, rnd, 1, tok, 40),
                     GW_EINVAL);
    assert_int_equal(fax_token_make(tkey, sizeof tkey, rnd, -1, tok,
                                     sizeof tok), GW_EINVAL);
    /* another random part: another token, both good */
    {
        unsigned char r2[16] = { 0 };
        char tok2[FAX_TOKEN_MAX];
        assert_int_equal(fax_token_make(tkey, sizeof tkey, r2, 1700000600,
                                         tok2, sizeof tok2), 0);
        assert_string_not_equal(tok, tok2);
        assert_int_equal(fax_token_check(tkey, sizeof tkey, tok2, 1700000000,
                                         NULL), 0);
        /* the MAC of one does not fit the other */
        memcpy(bad, tok2, 44);
        memcpy(bad + 44, tok + 44, n - 44 + 1);
        assert_int_equal(fax_token_check(tkey, sizeof tkey, bad, 1700000000,
                                         NULL), GW_EINVAL);
    }
}

static void
test_api_replies(void **state)
{
    char id[FAX_ID_MAX + 1], out[300];
    const char *ok = "{\"data\":{\"connection_id\":\"c-1\",\"id\":"
                     "\"0CCC7B54-4df3-4bca-a65a-3da1ecc777f0\",\"record_type\":"
                     "\"fax\",\"status\":\"queued\"}}";
    const char *err1 = "{\"errors\":[{\"code\":\"10015\",\"title\":"
                       "\"Invalid phone number\",\"detail\":\"The 'to' "
                       "parameter is not E.164\"}]}";
    const char *err2 = "{\"errors\":[{\"code\":10001,\"title\":\"A\"},"
                       "{\"title\":\"B\",\"detail\":\"b\\nb\"}]}";

    (void)state;
    assert_int_equal(fax_api_accept(ok, strlen(ok), id, sizeof id), 0);
    assert_string_equal(id, "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0");
    assert_int_equal(fax_api_accept("{\"data\":{}}", 11, id, sizeof id),
                     GW_EPARSE);
    assert_string_equal(id, "");
    assert_int_equal(fax_api_accept("{\"data\":{\"id\":5}}", 17, id,
                                    sizeof id), GW_EPARSE);
    assert_int_equal(fax_api_accept("{\"data\":{\"id\":\"a b\"}}", 21, id,
                                    sizeof id), GW_EPARSE);
    assert_int_equal(fax_api_accept("<html>", 6, id, sizeof id), GW_EPARSE);
    assert_int_equal(fax_api_accept(ok, strlen(ok), id, 10), GW_EPARSE);
    assert_int_equal(fax_api_accept(NULL, 0, id, sizeof id), GW_EPARSE);

    fax_api_error(err1, strlen(err1), out, sizeof out);
    assert_string_equal(out, "Invalid phone number: The 'to' parameter is "
                        "not E.164 (code 10015)");
    fax_api_error(err2, strlen(err2), out, sizeof out);
    assert_string_equal(out, "A (code 10001); B: b b");
    fax_api_error("{\"error\":{\"message\":\"nope\"}}", 28, out, sizeof out);
    assert_string_equal(out, "nope");
    fax_api_error("{\"message\":\"slow down\"}", 23, out, sizeof out);
    assert_string_equal(out, "slow down");
    fax_api_error("Service\r\nUnavailable ", 21, out, sizeof out);
    assert_string_equal(out, "Service  Unavailable");
    fax_api_error("", 0, out, sizeof out);
    assert_string_equal(out, "");
    fax_api_error(err1, strlen(err1), out, 8);
    assert_string_equal(out, "Invalid");
}

static void
test_notice(void **state)
{
    char *s;

    (void)state;
    assert_int_equal(fax_notice("To opt out of future faxes call {phone}, "
                                "fax {fax} or visit {url}.", "+1 800 555 0100",
                                "+1 800 555 0101", "https://x.org/u/abc", &s),
                     0);
    assert_string_equal(s, "To opt out of future faxes call +1 800 555 0100, "
                        "fax +1 800 555 0101 or visit https://x.org/u/abc.");
    free(s);
    assert_int_equal(fax_notice("{url}{url} {nope} {phone", "p", "f", NULL,
                                &s), 0);
    assert_string_equal(s, " {nope} {phone");
    free(s);
    assert_int_equal(fax_notice("", "p", "f", "u", &s), 0);
    assert_string_equal(s, "");
    free(s);
    {
        char big[5000];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = 0;
        assert_int_equal(fax_notice(big, "p", "f", "u", &s), GW_ETOOBIG);
        assert_null(s);
    }
}

static void
test_hosts_and_names(void **state)
{
    const char *hosts[] = { "127.0.0.1", "media.telnyx.example" };
    char host[64], name[FAX_ID_MAX + 1];

    (void)state;
    assert_true(fax_url_host_ok("http://127.0.0.1:9000/files/a.pdf", hosts,
                                2));
    assert_true(fax_url_host_ok("https://MEDIA.telnyx.example/x?sig=1", hosts,
                                2));
    assert_false(fax_url_host_ok("http://127.0.0.2:9000/files/a.pdf", hosts,
                                 2));
    assert_false(fax_url_host_ok("http://localhost:9000/a.pdf", hosts, 2));
    assert_false(fax_url_host_ok("ftp://127.0.0.1/a.pdf", hosts, 2));
    assert_false(fax_url_host_ok("file:///etc/passwd", hosts, 2));
    assert_false(fax_url_host_ok("http://127.0.0.1@evil.example/a.pdf", hosts,
                                 2));
    assert_false(fax_url_host_ok("http://evil.example#@127.0.0.1/", hosts, 2));
    assert_false(fax_url_host_ok("not a url", hosts, 2));
    assert_false(fax_url_host_ok(NULL, hosts, 2));
    assert_false(fax_url_host_ok("http://127.0.0.1/", hosts, 0));
    assert_int_equal(fax_url_host("http://Example.ORG:8080/p", host,
                                  sizeof host), 0);
    assert_string_equal(host, "example.org");
    assert_int_equal(fax_url_host("smtp://example.org", host, sizeof host),
                     GW_EINVAL);

    assert_int_equal(fax_id_file_name("c62be5bc-9b13_X", name, sizeof name),
                     0);
    assert_string_equal(name, "c62be5bc-9b13_X");
    assert_int_equal(fax_id_file_name("../etc/pass.wd", name, sizeof name), 0);
    assert_string_equal(name, "___etc_pass_wd");
    assert_int_equal(fax_id_file_name("a\xc3\xa9", name, sizeof name), 0);
    assert_string_equal(name, "a__");
    assert_int_equal(fax_id_file_name("", name, sizeof name), GW_EINVAL);
    assert_int_equal(fax_id_file_name(NULL, name, sizeof name), GW_EINVAL);
    assert_int_equal(fax_id_file_name("abcdef", name, 4), GW_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_parse_events),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_failure_class),
        cmocka_unit_test(test_e164),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_api_replies),
        cmocka_unit_test(test_notice),
        cmocka_unit_test(test_hosts_and_names),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}

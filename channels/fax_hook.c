/*
 * fax_hook.c -- the fax channel's pure helpers: Telnyx webhook signature
 * checks (Ed25519, OpenSSL) and body parsing (jansson, every field's type
 * and length checked, duplicate keys refused), the fax.failed reason
 * classifier, the provider's accept and error replies, E.164, Retry-After,
 * HMAC-signed media tokens, the opt-out notice and the host check for
 * inbound media. No I/O: fax.c does that, tests and fuzzers call these.
 */
#include "fax_hook.h"

#include "../common/b64.h"
#include "../common/buf.h"
#include "../common/err.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TS_DIGITS_MAX   12      /* unix seconds, good for 30000 years */
#define DAY_MS          86400000LL

/* ---- signatures ---- */

int
fax_base64_decode(const char *in, unsigned char *out, size_t max,
                  size_t *outlen)
{
    size_t n, pads = 0, data, o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;

    if (!in)
        return GW_EPARSE;
    n = strlen(in);
    while (pads < 2 && n > pads && in[n - 1 - pads] == '=')
        pads++;
    data = n - pads;
    if (data == 0 || (pads && n % 4 != 0) || data % 4 == 1)
        return GW_EPARSE;
    if ((data * 3) / 4 > max)
        return GW_ETOOBIG;
    for (size_t i = 0; i < data; i++) {
        int v = b64_std_value((unsigned char)in[i]);
        if (v < 0)
            return GW_EPARSE;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)               /* leftover bits must be zero */
        return GW_EPARSE;
    if (pads && (data % 4) + pads != 4)
        return GW_EPARSE;
    *outlen = o;
    return 0;
}

int
fax_hook_verify(const unsigned char pubkey[32], const char *sig_b64,
                const char *ts, int64_t now_s, int64_t tolerance_s,
                const char *body, size_t len)
{
    unsigned char sig[72];
    size_t siglen, tslen;
    EVP_PKEY *pk = NULL;
    EVP_MD_CTX *md = NULL;
    unsigned char *msg = NULL;
    int64_t t = 0;
    int rc;

    if (!pubkey || !sig_b64 || !ts || (!body && len))
        return GW_EPARSE;
    tslen = strlen(ts);
    if (tslen == 0 || tslen > TS_DIGITS_MAX)
        return GW_EPARSE;
    for (size_t i = 0; i < tslen; i++) {
        if (ts[i] < '0' || ts[i] > '9')
            return GW_EPARSE;
        t = t * 10 + (ts[i] - '0');
    }
    if (tolerance_s < 0)
        tolerance_s = 0;
    if (t > now_s + tolerance_s || t < now_s - tolerance_s)
        return GW_ETIMEOUT;
    if (fax_base64_decode(sig_b64, sig, sizeof sig, &siglen) < 0 ||
        siglen != 64)
        return GW_EPARSE;
    if ((msg = malloc(tslen + 1 + len + 1)) == NULL)
        return -ENOMEM;
    memcpy(msg, ts, tslen);
    msg[tslen] = '|';
    if (len)
        memcpy(msg + tslen + 1, body, len);
    rc = GW_EINVAL;
    if ((pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pubkey,
                                          32)) == NULL ||
        (md = EVP_MD_CTX_new()) == NULL ||
        EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk) != 1)
        goto out;
    if (EVP_DigestVerify(md, sig, siglen, msg, tslen + 1 + len) == 1)
        rc = 0;
out:
    ERR_clear_error();
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pk);
    free(msg);
    return rc;
}

/* ---- bodies ---- */

static int
why(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
why(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Ids: [A-Za-z0-9._:-], lower-cased into a new string. */
static char *
id_dup(const char *s, size_t n)
{
    char *d;

    if (n == 0 || n > FAX_ID_MAX)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._:-", s[i]))
            return NULL;
    if ((d = malloc(n + 1)) == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        d[i] = (char)tolower((unsigned char)s[i]);
    d[n] = 0;
    return d;
}

/* A string member: absent or null gives NULL (an error when required);
 * anything else must be a string of at most max bytes without control
 * characters. */
static int
get_str(const json_t *o, const char *key, size_t max, int required,
        char **out, const char *where, char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, key);
    const char *s;
    size_t n;

    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required)
            return why(err, errlen, GW_EPARSE, "%s.%s is missing", where,
                       key);
        return 0;
    }
    if (!json_is_string(v))
        return why(err, errlen, GW_EPARSE, "%s.%s must be a string", where,
                   key);
    s = json_string_value(v);
    n = json_string_length(v);
    if (n > max)
        return why(err, errlen, GW_EPARSE, "%s.%s is longer than %zu bytes",
                   where, key, max);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return why(err, errlen, GW_EPARSE,
                       "%s.%s holds a control character", where, key);
    if (required && n == 0)
        return why(err, errlen, GW_EPARSE, "%s.%s is empty", where, key);
    if ((*out = strndup(s, n)) == NULL)
        return -ENOMEM;
    return 0;
}

static const struct {
    const char         *name;
    enum fax_event_type type;
} event_names[] = {
    { "fax.queued", FAX_EV_QUEUED },
    { "fax.media.processed", FAX_EV_MEDIA_PROCESSED },
    { "fax.sending.started", FAX_EV_SENDING_STARTED },
    { "fax.delivered", FAX_EV_DELIVERED },
    { "fax.failed", FAX_EV_FAILED },
    { "fax.received", FAX_EV_RECEIVED },
};

enum fax_event_type
fax_event_type_parse(const char *s)
{
    for (size_t i = 0; s && i < sizeof event_names / sizeof event_names[0];
         i++)
        if (strcmp(s, event_names[i].name) == 0)
            return event_names[i].type;
    return FAX_EV_UNKNOWN;
}

void
fax_event_free(struct fax_event *ev)
{
    if (!ev)
        return;
    free(ev->event_type);
    free(ev->id);
    free(ev->occurred_at);
    free(ev->fax_id);
    free(ev->connection_id);
    free(ev->direction);
    free(ev->to);
    free(ev->from);
    free(ev->status);
    free(ev->failure_reason);
    free(ev->media_url);
    memset(ev, 0, sizeof *ev);
}

static int
parse_payload(const json_t *p, struct fax_event *ev, char *err,
              size_t errlen)
{
    const json_t *v;
    char *fid = NULL;
    int rc;

    if (!json_is_object(p))
        return why(err, errlen, GW_EPARSE, "data.payload must be an object");
    if ((rc = get_str(p, "fax_id", FAX_ID_MAX, 1, &fid, "data.payload", err,
                      errlen)) < 0)
        return rc;
    ev->fax_id = id_dup(fid, strlen(fid));
    free(fid);
    if (!ev->fax_id)
        return why(err, errlen, GW_EPARSE,
                   "data.payload.fax_id must be [A-Za-z0-9._:-]");
    if ((rc = get_str(p, "connection_id", FAX_STR_MAX, 0, &ev->connection_id,
                      "data.payload", err, errlen)) < 0 ||
        (rc = get_str(p, "direction", 32, 0, &ev->direction, "data.payload",
                      err, errlen)) < 0 ||
        (rc = get_str(p, "to", FAX_STR_MAX, 0, &ev->to, "data.payload", err,
                      errlen)) < 0 ||
        (rc = get_str(p, "from", FAX_STR_MAX, 0, &ev->from, "data.payload",
                      err, errlen)) < 0 ||
        (rc = get_str(p, "status", 64, 0, &ev->status, "data.payload", err,
                      errlen)) < 0 ||
        (rc = get_str(p, "failure_reason", FAX_STR_MAX, 0,
                      &ev->failure_reason, "data.payload", err, errlen)) < 0 ||
        (rc = get_str(p, "media_url", FAX_URL_MAX, ev->type == FAX_EV_RECEIVED,
                      &ev->media_url, "data.payload", err, errlen)) < 0)
        return rc;
    v = json_object_get(p, "page_count");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > 100000)
            return why(err, errlen, GW_EPARSE, "data.payload.page_count must "
                       "be an integer in [0, 100000]");
        ev->page_count = (int)json_integer_value(v);
    }
    return 0;
}

int
fax_hook_parse(const char *body, size_t len, struct fax_event *ev, char *err,
               size_t errlen)
{
    json_error_t je;
    json_t *root = NULL;
    const json_t *data, *meta;
    int rc;

    memset(ev, 0, sizeof *ev);
    if (err && errlen)
        err[0] = 0;
    if (len > FAX_HOOK_MAX_BODY)
        return why(err, errlen, GW_ETOOBIG, "body over %u bytes",
                   FAX_HOOK_MAX_BODY);
    if (!body || len == 0)
        return why(err, errlen, GW_EPARSE, "empty body");
    if ((root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je)) == NULL)
        return why(err, errlen, GW_EPARSE, "JSON: %.120s at line %d column "
                   "%d", je.text, je.line, je.column);
    rc = GW_EPARSE;
    if (!json_is_object(root)) {
        why(err, errlen, rc, "body must be an object");
        goto out;
    }
    data = json_object_get(root, "data");
    meta = json_object_get(root, "meta");
    if (!json_is_object(data)) {
        why(err, errlen, rc, "data must be an object");
        goto out;
    }
    if (meta && !json_is_object(meta) && !json_is_null(meta)) {
        why(err, errlen, rc, "meta must be an object");
        goto out;
    }
    if ((rc = get_str(data, "event_type", 64, 1, &ev->event_type, "data", err,
                      errlen)) < 0 ||
        (rc = get_str(data, "id", FAX_ID_MAX, 0, &ev->id, "data", err,
                      errlen)) < 0 ||
        (rc = get_str(data, "occurred_at", 64, 0, &ev->occurred_at, "data",
                      err, errlen)) < 0)
        goto out;
    ev->type = fax_event_type_parse(ev->event_type);
    if (ev->type == FAX_EV_UNKNOWN) {
        rc = 0;                 /* ignored by the caller; payload unread */
        goto out;
    }
    rc = parse_payload(json_object_get(data, "payload"), ev, err, errlen);
out:
    json_decref(root);
    return rc;
}

/* ---- fax.failed reasons ---- */

/* Telnyx's failure_reason words (support.telnyx.com "Programmable Fax
 * errors" and the webhook reference), plus the generic words other fax
 * APIs use. */
static const char *const temp_reasons[] = {
    /* busy */
    "user_busy", "busy", "receiver_user_busy", "receiver_busy",
    /* no answer */
    "no_answer", "receiver_no_answer", "no_response", "receiver_no_response",
    /* the call or the fax session broke off */
    "call_dropped", "receiver_call_dropped", "timeout",
    "fax_initial_communication_timeout", "receiver_recovery_on_timer_expire",
    "fax_signaling_error", "invalid_ecm_response_from_receiver",
    "receiver_communication_error", "communication_error",
    "destination_unreachable", "network_error",
    /* capacity, on their side or ours */
    "service_unavailable", "connection_channel_limit_exceeded",
    "outbound_profile_channel_limit_exceeded",
    "user_channel_limit_exceeded",
    /* they could not fetch our media (the retry gets a new URL) */
    "file_download_failed",
    NULL
};

static const char *const perm_reasons[] = {
    /* the number */
    "destination_invalid", "invalid_number", "receiver_invalid_number_format",
    "receiver_unallocated_number", "unallocated_number",
    "destination_not_in_countries_whitelist",
    "destination_not_in_service_plan",
    /* the far end said no, or is no fax machine */
    "receiver_decline", "rejected", "call_rejected", "refused",
    "receiver_incompatible_destination", "not_a_fax_machine",
    "no_fax_detected",
    /* the account */
    "account_disabled", "no_outbound_profile",
    "outbound_profile_daily_spend_limit_exceeded", "insufficient_funds",
    /* the document */
    "file_size_limit_exceeded", "page_count_limit_exceeded",
    "file_format_invalid",
    NULL
};

/* Unknown reasons that still say busy or no answer. */
static const char *const temp_words[] = {
    "busy", "no_answer", "no_response", "timeout", "timed_out",
    "call_dropped", NULL
};

static int
in_list(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcasecmp(s, list[i]) == 0)
            return 1;
    return 0;
}

enum receipt_state
fax_failure_class(const char *reason)
{
    char low[FAX_STR_MAX + 1];
    size_t n;

    if (!reason || !*reason)
        return RCPT_UNDELIVERABLE;
    if (in_list(reason, temp_reasons))
        return RCPT_TEMPFAIL;
    if (in_list(reason, perm_reasons))
        return RCPT_UNDELIVERABLE;
    n = strlen(reason);
    if (n >= sizeof low)
        return RCPT_UNDELIVERABLE;
    for (size_t i = 0; i <= n; i++)
        low[i] = (char)tolower((unsigned char)reason[i]);
    for (size_t i = 0; temp_words[i]; i++)
        if (strstr(low, temp_words[i]))
            return RCPT_TEMPFAIL;
    return RCPT_UNDELIVERABLE;
}

/* ---- numbers, Retry-After ---- */

int
fax_e164_ok(const char *s)
{
    size_t n = 0;

    if (!s || s[0] != '+' || s[1] < '1' || s[1] > '9')
        return 0;
    for (s++; *s; s++, n++)
        if (*s < '0' || *s > '9')
            return 0;
    return n >= 8 && n <= 15;
}

int64_t
fax_retry_after_ms(const char *v, int64_t now_s)
{
    char tmp[128];
    size_t n;
    int digits = 1;
    int64_t secs = 0;
    time_t t;

    if (!v)
        return 0;
    while (*v == ' ' || *v == '\t')
        v++;
    n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' ||
                 v[n - 1] == '\n'))
        n--;
    if (n == 0 || n >= sizeof tmp)
        return 0;
    memcpy(tmp, v, n);
    tmp[n] = 0;
    for (size_t i = 0; i < n; i++)
        if (tmp[i] < '0' || tmp[i] > '9')
            digits = 0;
    if (digits) {
        if (n > 9)
            return DAY_MS;
        secs = strtoll(tmp, NULL, 10);
    } else {
        if ((t = curl_getdate(tmp, NULL)) == (time_t)-1)
            return 0;
        secs = (int64_t)t - now_s;
    }
    if (secs <= 0)
        return 0;
    return secs >= DAY_MS / 1000 ? DAY_MS : secs * 1000;
}

/* ---- the provider's replies ---- */

int
fax_api_accept(const char *body, size_t len, char *id, size_t idlen)
{
    json_t *root;
    const json_t *v;
    char *d = NULL;
    int rc = GW_EPARSE;

    if (idlen)
        id[0] = 0;
    if (!body || len == 0 || len > FAX_HOOK_MAX_BODY)
        return GW_EPARSE;
    if ((root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL)) == NULL)
        return GW_EPARSE;
    v = json_object_get(json_object_get(root, "data"), "id");
    if (json_is_string(v) &&
        (d = id_dup(json_string_value(v), json_string_length(v))) != NULL &&
        strlen(d) < idlen) {
        memcpy(id, d, strlen(d) + 1);
        rc = 0;
    }
    free(d);
    json_decref(root);
    return rc;
}

/* Appends s (n bytes) to out at *o, control characters as spaces. */
static void
put_text(char *out, size_t outlen, size_t *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *o + 1 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        out[(*o)++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    out[*o] = 0;
}

static void
put_cstr(char *out, size_t outlen, size_t *o, const char *s)
{
    put_text(out, outlen, o, s, strlen(s));
}

static void
put_json_str(char *out, size_t outlen, size_t *o, const json_t *v)
{
    char num[32];

    if (json_is_string(v))
        put_text(out, outlen, o, json_string_value(v), json_string_length(v));
    else if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        put_cstr(out, outlen, o, num);
    }
}

void
fax_api_error(const char *body, size_t len, char *out, size_t outlen)
{
    json_t *root = NULL;
    const json_t *errs, *e, *msg;
    size_t o = 0, i;

    if (!outlen)
        return;
    out[0] = 0;
    if (!body || len == 0)
        return;
    if (len <= FAX_HOOK_MAX_BODY)
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    errs = json_object_get(root, "errors");
    json_array_foreach(errs, i, e) {
        const json_t *title = json_object_get(e, "title"),
                     *detail = json_object_get(e, "detail"),
                     *code = json_object_get(e, "code");
        if (i == 3 || !json_is_object(e))
            break;
        if (o)
            put_cstr(out, outlen, &o, "; ");
        put_json_str(out, outlen, &o, title);
        if (json_is_string(detail) && json_string_length(detail)) {
            if (json_is_string(title))
                put_cstr(out, outlen, &o, ": ");
            put_json_str(out, outlen, &o, detail);
        }
        if (json_is_string(code) || json_is_integer(code)) {
            put_cstr(out, outlen, &o, " (code ");
            put_json_str(out, outlen, &o, code);
            put_cstr(out, outlen, &o, ")");
        }
    }
    if (!o && json_is_object(root)) {
        /* other shapes: {"error": "..."} or {"message": "..."} */
        msg = json_object_get(root, "error");
        if (json_is_object(msg))
            msg = json_object_get(msg, "message");
        if (!json_is_string(msg))
            msg = json_object_get(root, "message");
        put_json_str(out, outlen, &o, msg);
    }
    json_decref(root);
    if (!o)
        put_text(out, outlen, &o, body, len < 200 ? len : 200);
    while (o && out[o - 1] == ' ')
        out[--o] = 0;
}

/* ---- media tokens ---- */

static void
hex_encode(const unsigned char *p, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[p[i] >> 4];
        out[2 * i + 1] = hx[p[i] & 15];
    }
    out[2 * n] = 0;
}

/* mac_hex: 33 bytes. */
static int
token_mac(const unsigned char *key, size_t keylen, const char *prefix,
          size_t n, char *mac_hex)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;

    if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)prefix,
              n, mac, &maclen) || maclen < 16)
        return GW_EINVAL;
    hex_encode(mac, 16, mac_hex);
    OPENSSL_cleanse(mac, sizeof mac);
    return 0;
}

int
fax_token_make(const unsigned char *key, size_t keylen,
               const unsigned char rnd[16], int64_t expiry_s, char *out,
               size_t outlen)
{
    char mac[33];
    int n;

    if (outlen < FAX_TOKEN_MAX || expiry_s < 0 || !key || !keylen)
        return GW_EINVAL;
    hex_encode(rnd, 16, out);
    n = snprintf(out + 32, outlen - 32, ".%lld", (long long)expiry_s);
    if (token_mac(key, keylen, out, 32 + (size_t)n, mac) < 0)
        return GW_EINVAL;
    snprintf(out + 32 + n, outlen - 32 - (size_t)n, ".%s", mac);
    return 0;
}

static int
lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int
fax_token_check(const unsigned char *key, size_t keylen, const char *token,
                int64_t now_s, int64_t *expiry_s)
{
    char mac[33];
    size_t n, d = 0;
    int64_t exp = 0;
    int eq;

    if (!token || !key || !keylen)
        return GW_EINVAL;
    n = strnlen(token, FAX_TOKEN_MAX);
    if (n >= FAX_TOKEN_MAX || n < 32 + 1 + 1 + 1 + 32 ||
        !lower_hex(token, 32) || token[32] != '.')
        return GW_EINVAL;
    for (const char *p = token + 33; *p >= '0' && *p <= '9'; p++, d++)
        exp = exp * 10 + (*p - '0');
    if (d == 0 || d > TS_DIGITS_MAX || token[33 + d] != '.' ||
        n != 33 + d + 1 + 32 || !lower_hex(token + 34 + d, 32))
        return GW_EINVAL;
    if (token_mac(key, keylen, token, 33 + d, mac) < 0)
        return GW_EINVAL;
    eq = CRYPTO_memcmp(mac, token + 34 + d, 32) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    if (!eq)
        return GW_EINVAL;
    if (exp < now_s)
        return GW_ETIMEOUT;
    if (expiry_s)
        *expiry_s = exp;
    return 0;
}

/* ---- the notice, URLs, file names ---- */

int
fax_notice(const char *tmpl, const char *phone, const char *fax,
           const char *url, char **out)
{
    static const char *const names[] = { "{phone}", "{fax}", "{url}" };
    const char *vals[] = { phone ? phone : "", fax ? fax : "",
                           url ? url : "" };
    struct buf b;
    int rc = 0;

    *out = NULL;
    buf_init(&b, 4096);
    for (const char *p = tmpl ? tmpl : ""; *p && rc == 0;) {
        size_t k;
        for (k = 0; k < 3; k++)
            if (strncmp(p, names[k], strlen(names[k])) == 0)
                break;
        if (k < 3) {
            rc = buf_puts(&b, vals[k]);
            p += strlen(names[k]);
        } else {
            rc = buf_putc(&b, *p++);
        }
    }
    if (rc == 0 && (*out = strdup(buf_cstr(&b))) == NULL)
        rc = -ENOMEM;
    buf_free(&b);
    return rc;
}

int
fax_url_host(const char *url, char *out, size_t outlen)
{
    CURLU *u;
    char *scheme = NULL, *host = NULL;
    int rc = GW_EINVAL;

    if (!url || !outlen || (u = curl_url()) == NULL)
        return GW_EINVAL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && *host &&
        strlen(host) < outlen) {
        for (size_t i = 0; host[i]; i++)
            out[i] = (char)tolower((unsigned char)host[i]);
        out[strlen(host)] = 0;
        rc = 0;
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

int
fax_url_host_ok(const char *url, const char *const *hosts, size_t n)
{
    char host[256];

    if (fax_url_host(url, host, sizeof host) < 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (hosts[i] && strcasecmp(host, hosts[i]) == 0)
            return 1;
    return 0;
}

int
fax_id_file_name(const char *id, char *out, size_t outlen)
{
    size_t n = id ? strlen(id) : 0;

    if (n == 0 || n > FAX_ID_MAX || n >= outlen)
        return GW_EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        out[i] = isalnum(c) && c < 0x80 ? (char)c
                 : c == '-' || c == '_' ? (char)c : '_';
    }
    out[n] = 0;
    return 0;
}

/*
 * fax_hook.h -- the fax channel's pure helpers, kept apart from the I/O
 * so that tests and fuzzers reach them: Telnyx webhook signatures
 * (Ed25519 over "timestamp|body") and bodies, the failure-reason
 * classifier, the provider's JSON replies, E.164 numbers, Retry-After,
 * signed media tokens, the opt-out notice and the inbound-media checks.
 * Nothing here touches the loop, the network or the disk.
 */
#ifndef GW_FAX_HOOK_H
#define GW_FAX_HOOK_H

#include <stddef.h>
#include <stdint.h>

#include "channel.h"

#define FAX_HOOK_MAX_BODY   (64u * 1024)    /* larger bodies are refused */
#define FAX_ID_MAX          128             /* fax and event ids */
#define FAX_STR_MAX         256             /* other payload strings */
#define FAX_URL_MAX         2048            /* media_url */

enum fax_event_type {
    FAX_EV_UNKNOWN,             /* any other event_type: ignored */
    FAX_EV_QUEUED,              /* fax.queued */
    FAX_EV_MEDIA_PROCESSED,     /* fax.media.processed */
    FAX_EV_SENDING_STARTED,     /* fax.sending.started */
    FAX_EV_DELIVERED,           /* fax.delivered */
    FAX_EV_FAILED,              /* fax.failed */
    FAX_EV_RECEIVED,            /* fax.received (an inbound fax) */
};

/* A parsed webhook. Every string is owned (fax_event_free) and NULL when
 * the body did not have it (or had null). fax_id is lower-cased and made
 * of [a-z0-9._:-] only; media_url is set for FAX_EV_RECEIVED. */
struct fax_event {
    enum fax_event_type type;
    char   *event_type;         /* the provider's word, as sent */
    char   *id;                 /* the event's id */
    char   *occurred_at;
    char   *fax_id;
    char   *connection_id;
    char   *direction;          /* "outbound" | "inbound" */
    char   *to, *from;
    char   *status;
    char   *failure_reason;
    char   *media_url;
    int     page_count;         /* 0: absent */
};

/* Check a Telnyx webhook signature: sig_b64 (the telnyx-signature-ed25519
 * header, base64 of 64 bytes) over ts + "|" + body with the Ed25519 key
 * pubkey; ts (telnyx-timestamp, unix seconds) must lie within tolerance_s
 * of now_s. All borrowed. 0 when good; GW_EPARSE for a missing or
 * malformed header, GW_ETIMEOUT for a timestamp out of tolerance,
 * GW_EINVAL for a signature that does not match. */
int fax_hook_verify(const unsigned char pubkey[32], const char *sig_b64,
                    const char *ts, int64_t now_s, int64_t tolerance_s,
                    const char *body, size_t len);

/* Parse a webhook body into *ev (zeroed first; free it with
 * fax_event_free whatever the result). 0, or GW_EPARSE / GW_ETOOBIG with
 * a reason in err: malformed JSON, duplicate keys, a field of the wrong
 * type or too long, a known event without its fax_id. An unknown
 * event_type parses (type FAX_EV_UNKNOWN) as long as the envelope is
 * right. */
int fax_hook_parse(const char *body, size_t len, struct fax_event *ev,
                   char *err, size_t errlen);
void fax_event_free(struct fax_event *ev);

/* "fax.delivered" -> FAX_EV_DELIVERED; FAX_EV_UNKNOWN for others. */
enum fax_event_type fax_event_type_parse(const char *s);

/* fax.failed: is failure_reason (borrowed, may be NULL) worth another try
 * (RCPT_TEMPFAIL: busy, no answer, dropped, timeouts, signalling,
 * capacity) or not (RCPT_UNDELIVERABLE: bad or unallocated number,
 * declined, not a fax machine, account and file problems, unknown)? */
enum receipt_state fax_failure_class(const char *reason);

/* '+' then 8-15 digits, the first not 0. */
int fax_e164_ok(const char *s);

/* A Retry-After value (seconds, or an HTTP-date compared with now_s) in
 * milliseconds, capped at one day; 0 for absent, past or garbage. */
int64_t fax_retry_after_ms(const char *v, int64_t now_s);

/* The provider's answer to POST /v2/faxes. fax_api_accept copies data.id
 * (lower-cased, [a-z0-9._:-] only) into id: 0 or GW_EPARSE.
 * fax_api_error writes the errors[] text ("title: detail (code c)", or
 * the body's first printable bytes when it is not Telnyx JSON) into out;
 * out is always NUL-terminated. */
int fax_api_accept(const char *body, size_t len, char *id, size_t idlen);
void fax_api_error(const char *body, size_t len, char *out, size_t outlen);

/* Media tokens: hex(rnd 16) "." expiry_s "." hex(HMAC-SHA256(key,
 * "hex(rnd).expiry_s"))[0..16 bytes]. */
#define FAX_TOKEN_MAX   96
/* 0, or GW_EINVAL when outlen < FAX_TOKEN_MAX or expiry_s < 0. */
int fax_token_make(const unsigned char *key, size_t keylen,
                   const unsigned char rnd[16], int64_t expiry_s, char *out,
                   size_t outlen);
/* 0 when token is well formed, signed by key and not expired at now_s
 * (*expiry_s set when not NULL); GW_EINVAL for a bad form or MAC (the
 * MAC compared in constant time), GW_ETIMEOUT when expired. */
int fax_token_check(const unsigned char *key, size_t keylen,
                    const char *token, int64_t now_s, int64_t *expiry_s);

/* Strict base64 (standard alphabet, padding optional but exact when
 * given, no whitespace): decodes at most max bytes into out. 0 with
 * *outlen, GW_EPARSE or GW_ETOOBIG. */
int fax_base64_decode(const char *in, unsigned char *out, size_t max,
                      size_t *outlen);

/* The opt-out notice: tmpl with every {phone}, {fax} and {url} replaced.
 * *out is new (free it). 0, -ENOMEM or GW_ETOOBIG (over 4 KiB). */
int fax_notice(const char *tmpl, const char *phone, const char *fax,
               const char *url, char **out);

/* Is url http(s) with its host (case-insensitive) one of hosts[0..n)?
 * 1 or 0. */
int fax_url_host_ok(const char *url, const char *const *hosts, size_t n);

/* The host of an http(s) URL into out: 0, or GW_EINVAL. */
int fax_url_host(const char *url, char *out, size_t outlen);

/* A fax id made safe for a file name: [A-Za-z0-9_-] kept, every other
 * byte becomes '_'. 0, or GW_EINVAL for an empty id or one longer than
 * FAX_ID_MAX. */
int fax_id_file_name(const char *id, char *out, size_t outlen);

#endif

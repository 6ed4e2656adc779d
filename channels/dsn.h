/*
 * dsn.h -- bounce messages in: RFC 3464 delivery status notifications
 * (multipart/report; report-type=delivery-status, RFC 6522) and the usual
 * non-standard bounces, parsed (with GMime 3) into a struct dsn; the
 * message key recovered from our VERP return path or from the original
 * Message-ID; and the hard/soft/unknown classification that synchronous
 * SMTP replies share.
 *
 * Classification (bounce_classify_text; bounce_classify is it without
 * text):
 *   basic code 4xx, or enhanced 4.x.x                        soft
 *   5.1.0-5.1.4, 5.1.6, 5.1.10 (no such mailbox/domain,
 *     bad address syntax, moved, null MX)                   hard
 *   5.1.7, 5.1.8 (our sender address is refused), other 5.1.x unknown
 *   5.2.1 mailbox disabled                                   hard
 *   5.2.2 mailbox full                                       soft
 *   5.4.4 unroutable (Postfix: the domain does not exist)    hard
 *   5.7.13 account disabled, 5.7.17/5.7.18 owner changed     hard
 *   other 5.7.x (policy, spam, auth, relay: a verdict on us or
 *     the content, not on the address)                       unknown
 *   5.3.x, 5.5.x, 5.6.x, other 5.2.x/5.4.x                   unknown
 *   5.0.0, 5.2.0, or no enhanced code with a 5xx:
 *     text says the mailbox is full / over quota            soft
 *     550/551/553 (or 5.0.0 with no basic code) and the text
 *     says "user unknown", "no such user", ...               hard
 *     otherwise                                              unknown
 *   2xx / 2.x.x (not a failure), 3xx, nothing usable         unknown
 * In a DSN, Action "delayed" is soft whatever the status; "failed" (or
 * none) goes by the Status field (by the Diagnostic-Code's enhanced code
 * when Status is missing or generic x.0.0); "delivered", "relayed" and
 * "expanded" recipients are success notices and are not reported.
 */
#ifndef GW_DSN_H
#define GW_DSN_H

#include <stddef.h>

#define DSN_INPUT_MAX (10u * 1024 * 1024) /* larger input: GW_ETOOBIG */
#define DSN_RCPT_MAX  16                  /* recipients kept per report */

enum bounce_class { BOUNCE_HARD, BOUNCE_SOFT, BOUNCE_UNKNOWN };

struct dsn_rcpt {
    char recipient[320];  /* address, no "rfc822;" and no <> */
    char action[16];      /* "failed", "delayed" (lower case) */
    char status[16];      /* "5.1.1"; "" when none was found */
    char diagnostic[512]; /* "550 5.1.1 <a@b>: User unknown" */
    enum bounce_class cls;
};

struct dsn {
    int is_report; /* a message/delivery-status part was read */
    /* The message key: from the VERP address the bounce was sent to
     * (Delivered-To, X-Original-To, Envelope-To, X-Envelope-To, To:
     * ...+<token>@...), else from the original message's Return-Path,
     * else from the local part of the original Message-ID. Decoded with
     * dsn_verp_key. "" when none was found. */
    char msg_key[513];
    /* 1: msg_key is "h." and 32 hex digits, the hashed form that
     * mime_key_token writes for a key too long to escape: the key itself
     * is lost; look it up by the first 32 hex digits of SHA-256(key). */
    int key_hashed;
    /* The original message's Message-ID, with its angle brackets, as
     * mime_message_id wrote it: "<spring-27=3Ac1=3Aemail@example.org>".
     * From the message/rfc822 or text/rfc822-headers part, or from a
     * "Message-ID:" line of a quoted original. "" when none was found. */
    char message_id[512];
    struct dsn_rcpt rcpt[DSN_RCPT_MAX];
    size_t nrcpt; /* failed or delayed recipients kept */
};

/*
 * Parse one bounce (raw borrowed, len bytes, at most DSN_INPUT_MAX; need
 * not be NUL-terminated) into *out (cleared first). Returns 0 for a bounce
 * we can use: at least one recipient in out->rcpt (from the delivery-status
 * part; or, for a bounce without one, a single entry with the status and
 * diagnostic found in its text -- status "" and BOUNCE_UNKNOWN when the
 * text has none) and a msg_key or a message_id. Otherwise a negative code
 * and a reason in err (errlen bytes; err may be NULL):
 *   GW_EINVAL    bad arguments
 *   GW_ETOOBIG   len > DSN_INPUT_MAX
 *   GW_EPARSE    not a message at all
 *   GW_ENOTFOUND not a bounce (auto-reply, read receipt, complaint
 *                report, success-only DSN, an ordinary message) or a
 *                bounce with neither key nor Message-ID; *out still holds
 *                what was found (msg_key, message_id) for the log.
 * Thread-safe; initialises GMime once.
 */
int dsn_parse(const char *raw, size_t len, struct dsn *out, char *err,
              size_t errlen);

/* The class of an SMTP reply or DSN status: smtp_code the basic code (0 if
 * unknown), enhanced "5.1.1" or NULL. See the table above. */
enum bounce_class bounce_classify(int smtp_code, const char *enhanced);

/* The same with the reply or diagnostic text (borrowed, may be NULL), used
 * for 5.0.0 and for replies without an enhanced code. */
enum bounce_class bounce_classify_text(int smtp_code, const char *enhanced,
                                       const char *text);

/*
 * The message key from a VERP address "bounces+<token>@domain" (also
 * "<...>" or "Name <...>"): <token> is what follows the last '+' of the
 * local part, decoded as the exact inverse of mime_key_token (letters,
 * digits, '-', '_' and single inner dots as they are, =XX for any other
 * byte; a token the encoder would not have written is refused). Writes a
 * NUL-terminated key into key (keylen bytes). Returns 0 (decoded), 1 (the
 * token is the hashed form "h." + 32 hex digits, copied as is: see
 * struct dsn.key_hashed), GW_EINVAL (not such an address) or GW_ETOOBIG
 * (key too small).
 */
int dsn_verp_key(const char *address, char *key, size_t keylen);

#endif

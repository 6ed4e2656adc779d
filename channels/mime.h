/*
 * mime.h -- our MIME writer: typed header fields and rendered parts in, the
 * exact bytes of an RFC 5322 message out (CRLF line ends, no line over 998
 * octets, header lines folded at 78 where they can be). Used by the SMTP
 * channel and the outbox, so it knows nothing of the transport.
 *
 * What it writes, top to bottom:
 *   Date, From, To, Subject, Message-ID, MIME-Version, List-Id,
 *   List-Unsubscribe (+ List-Unsubscribe-Post on one-click), X-Campaign-ID,
 *   then the body: text/plain and text/html quoted-printable, images and
 *   attachments base64, in multipart/alternative (text first, HTML last),
 *   multipart/related (HTML + inline images by Content-ID) and
 *   multipart/mixed (attachments) as the parts present require.
 * Non-ASCII subjects and display names become RFC 2047 encoded-words of at
 * most 75 characters, never split inside a UTF-8 sequence. Boundaries start
 * with "=_", which neither quoted-printable nor base64 can produce, so no
 * body line can collide with one.
 *
 * Checks: CR, LF, NUL, other control characters, NEL, U+2028 and U+2029 in
 * any header value or address are refused, and so are encoded-words or
 * %-escapes in the input that would decode to CR, LF or NUL. A refusal is
 * GW_EINVAL with a reason ("subject: contains LF"): the message is bad,
 * nothing is sent.
 */
#ifndef GW_MIME_H
#define GW_MIME_H

#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "channel.h"

#define MIME_LINE_MAX   998     /* RFC 5322 2.1.1, without the CRLF */
#define MIME_FOLD_AT    78      /* header lines SHOULD stay within this */
#define MIME_EWORD_MAX  75      /* RFC 2047 2 */
#define MIME_B64_LINE   76      /* RFC 2045 6.8 */
#define MIME_QP_LINE    76      /* RFC 2045 6.7, the soft break included */
#define MIME_ADDR_MAX   254     /* RFC 5321 4.5.3.1.3 path, without <> */
#define MIME_LOCAL_MAX  64      /* RFC 5321 4.5.3.1.1 */
#define MIME_URL_MAX    900     /* one List-Unsubscribe URI */

/* Everything borrowed for the call. Strings are NUL-terminated UTF-8;
 * optional ones are NULL when absent. */
struct mime_msg {
    const char *from_name;      /* display name, or NULL */
    const char *from_addr;      /* required: local@domain, ASCII */
    const char *to_name;
    const char *to_addr;        /* required */
    const char *subject;        /* required (may be "") */
    size_t      subject_len;    /* 0: strlen(subject); a NUL inside the
                                   counted value is refused */
    const char *text;           /* text/plain body, or NULL */
    size_t      text_len;
    const char *html;           /* text/html body, or NULL */
    size_t      html_len;
    /* Inline images (Content-ID set) go with the HTML in
     * multipart/related; they are left out when there is no HTML. */
    const struct content_image *images;
    size_t      nimages;
    /* Attachments (content_id ignored; name is the file name). */
    const struct content_image *attachments;
    size_t      nattachments;
    const char *key;            /* the message key: Message-ID, boundaries */
    const char *id_domain;      /* right side of the Message-ID */
    int64_t     date;           /* Date:, seconds since the epoch; 0: now */
    const char *list_id;        /* "Name <id.example.org>" or bare id */
    const char *unsubscribe_url;    /* https://... */
    const char *unsubscribe_mailto; /* "mailto:..." or a bare address */
    int         one_click;      /* List-Unsubscribe-Post (needs https) */
    const char *campaign;       /* X-Campaign-ID */
};

/*
 * Append the message to out (borrowed; its cap applies). Returns 0;
 * GW_EINVAL when a field is refused, with the reason in reason (may be
 * NULL); GW_ETOOBIG when out's cap is hit; -ENOMEM. On error out may hold
 * a partial message: reset it before reuse.
 */
int mime_build(struct buf *out, const struct mime_msg *m, char *reason,
               size_t reasonlen);

/*
 * Is addr a plain addr-spec we can put into a header and an SMTP command:
 * ASCII, a dot-atom local part (no quoted local parts), a domain of
 * letters, digits, '-' and dots, within the RFC 5321 lengths. what names
 * the field in the reason ("to", "from"). 0 or GW_EINVAL.
 */
int mime_check_addr(const char *addr, const char *what, char *reason,
                    size_t reasonlen);

/*
 * Is s acceptable in a header (UTF-8, no line breaks or control
 * characters, no encoded-word decoding to CR/LF/NUL)? 0 or GW_EINVAL.
 */
int mime_check_text(const char *s, size_t n, const char *what, char *reason,
                    size_t reasonlen);

/*
 * Parse "Name <local@domain>", "\"Name, Inc.\" <local@domain>",
 * "<local@domain>" or "local@domain" (a configured From). *name (NULL if
 * there is none) and *addr are new: free() them. 0 or GW_EINVAL.
 */
int mime_mailbox_parse(const char *s, char **name, char **addr,
                       char *reason, size_t reasonlen);

/* "<escaped-key@domain>", or "<h.HASH@domain>" for a key too long to
 * escape; the same key always gives the same id. */
int mime_message_id(struct buf *out, const char *key, const char *domain);

/*
 * The key made safe for a local part: letters, digits, '-', '_' and
 * single inner dots stay, every other byte becomes =XX. If that is longer
 * than max, "h." and 32 hex digits of its SHA-256 instead (max must be at
 * least 34). Used for VERP return paths.
 */
int mime_key_token(struct buf *out, const char *key, size_t max);

/* One unstructured header field ("Subject", value) folded and encoded as
 * needed, CRLF included. Checks value like mime_check_text. */
int mime_header(struct buf *out, const char *name, const char *value,
                char *reason, size_t reasonlen);

/* Quoted-printable of n bytes (line breaks in src, LF or CRLF, become
 * CRLF hard breaks). No CRLF after the last line. */
int mime_qp(struct buf *out, const char *src, size_t n);

/* Base64 of n bytes in lines of 76, CRLF between lines, none after the
 * last. */
int mime_base64(struct buf *out, const unsigned char *src, size_t n);

#endif

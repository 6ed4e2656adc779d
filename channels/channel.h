/*
 * channel.h -- the channel vtable (DESIGN.md section 5). A backend is a
 * const table of functions chosen by the provider's type; the dispatcher
 * hands it one message at a time and hears the outcome through a callback.
 * Channels never see Redis.
 */
#ifndef GW_CHANNEL_H
#define GW_CHANNEL_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "../common/log.h"
#include "../gateway/config.h"

enum send_result { SEND_OK, SEND_TEMPFAIL, SEND_PERMFAIL };

/* An image sent inline with an HTML part (multipart/related). */
struct content_image {
    const char          *name;          /* file name in the template set */
    const char          *content_type;  /* "image/png", "image/jpeg" */
    const char          *content_id;    /* without <>; html refers to cid: */
    const unsigned char *data;
    size_t               len;
};

/* The rendered content: NUL-terminated UTF-8, NULL when absent. Email
 * uses subject/text/html/images, SMS uses sms, fax uses fax (markup). */
struct message_content {
    const char  *subject, *text, *html, *sms, *fax;
    size_t       subject_len, text_len, html_len, sms_len, fax_len;
    const struct content_image *images;
    size_t       nimages;
};

/* One message to send. Everything is borrowed from the dispatcher and
 * stays valid until the done callback has returned. */
struct message {
    const char     *key;        /* ledger key; stable across retries */
    enum gw_channel channel;
    const char     *campaign;   /* NULL for triggered messages */
    const char     *customer;
    const char     *provider;
    const char     *template;
    const char     *class;
    const json_t   *recipient;
    const json_t   *vars;       /* campaign or message vars, or NULL */
    int             attempt;    /* 1 on the first try */
    int             smart_encoding; /* SMS: -1 the provider's setting, 0 off,
                                       1 on (typographic look-alikes) */
    int64_t         deadline_ms;    /* give up after this (0: none); the
                                       SMPP validity, the fax give-up time */
    const char     *to;         /* the address: email, or E.164 number */
    const char     *to_name;    /* display name, or NULL */
    const char     *unsubscribe_url;    /* https one-click URL, or NULL */
    const char     *unsubscribe_mailto; /* mailto: address, or NULL */
    struct message_content content;     /* rendered; all NULL until the
                                           template layer fills it */
    struct log_ctx  log;
};

struct send_outcome {
    enum send_result result;
    int         final;          /* the provider is the end point: nothing
                                   further (no receipt) will come */
    const char *provider_id;    /* the provider's id for it, or NULL; a
                                   message sent in several parts (SMS
                                   segments) lists every part's id,
                                   separated by ',' -- each id normalised
                                   (lower case, no leading zeros for
                                   decimal ids) so that receipts match */
    const char *reply;          /* the provider's reply text, or NULL */
    int         in_doubt;       /* TEMPFAIL where the provider may have
                                   taken it (no response in time): not
                                   to be resent blindly */
    int         throttled;      /* TEMPFAIL because the provider asked us
                                   to slow down (SMTP 421/451/452, SMPP
                                   0x58/0x14, HTTP 429): halves the rate */
    int64_t     retry_after_ms; /* the provider's Retry-After, or 0 */
    int         units;          /* billable units: SMS segments, fax
                                   pages; 0 = 1 message */
};

/* What a provider tells us on its own: a delivery receipt or an inbound
 * (MO) message. Strings are borrowed for the duration of the callback. */
enum inbound_kind {
    IN_RECEIPT,             /* a delivery receipt or status webhook */
    IN_MO,                  /* an inbound SMS */
    IN_FAX,                 /* an inbound fax, already stored on disk */
};

enum receipt_state {
    RCPT_ENROUTE,           /* intermediate: accepted, en route, unknown */
    RCPT_DELIVERED,
    RCPT_UNDELIVERABLE,
    RCPT_EXPIRED,
    RCPT_REJECTED,          /* also deleted */
    RCPT_TEMPFAIL,          /* not delivered this time, worth another try
                               (fax: busy, no answer): the message goes
                               back to deferred within its deadline */
};

struct inbound {
    enum inbound_kind  kind;
    /* IN_RECEIPT */
    const char        *provider_id;   /* normalised as the send outcome's
                                         ids are (see struct send_outcome) */
    enum receipt_state state;
    const char        *stat;          /* the provider's word: "DELIVRD" */
    const char        *error;         /* network error code / err:, or NULL */
    /* IN_MO */
    const char        *from;          /* E.164 when the provider gives one */
    const char        *to;
    const char        *text;          /* decoded to UTF-8 */
    /* IN_FAX (from/to above are the sender's and our fax numbers) */
    const char        *path;          /* the stored PDF */
    const char        *fax_id;        /* the provider's id of the fax */
    int                pages;         /* 0: unknown */
    /* Optional: the gateway calls done(done_arg, rc) once the event is
     * recorded (rc 0) or could not be (rc < 0), so a webhook can answer
     * only after its effect is durable. NULL: fire and forget. */
    void             (*done)(void *done_arg, int rc);
    void              *done_arg;
};

struct channel;

typedef void channel_inbound_cb(struct channel *ch, const struct inbound *in,
                                void *arg);

/* Runs exactly once per successful send, never inside send(). The outcome
 * and its strings are borrowed for the duration of the call. */
typedef void channel_done_cb(struct message *m, const struct send_outcome *o,
                             void *arg);
typedef void channel_closed_cb(struct channel *ch, void *arg);

struct channel_stats {
    uint64_t sent, tempfail, permfail;
    unsigned inflight;
    unsigned connections;       /* open now (connections, binds) */
    uint64_t connections_opened;
    uint64_t replies[6];        /* provider replies by class: [2] = 2xx */
    unsigned alarm;             /* 1: the provider refuses us (bad
                                   credentials): an operator must act */
};

/* An HTTP request routed to a channel by the gateway's server (for the fax
 * backend: GET /media/<token>, POST /hooks/fax/<provider>). path is what
 * follows the route's prefix. Everything is borrowed until reply runs. */
struct ch_http_req {
    const char *method;         /* "GET", "POST", ... (NUL-terminated) */
    const char *route;          /* "media" or "hooks" */
    const char *path;           /* after "/media/" or "/hooks/fax/<prov>/" */
    const char *body;
    size_t      body_len;       /* capped by the server (http.max_body) */
    /* Header value by lower-case name, NUL-terminated in scratch memory
     * owned by the request; NULL when absent. */
    const char *(*header)(const struct ch_http_req *rq, const char *name);
    void       *server;         /* the server's request, for header() */
    const char *peer;           /* the client's IP address, or "" */
};

/* Answers a ch_http_req exactly once; may be called later (after a Redis
 * write), from the loop. body is copied. A closed client is handled by
 * the server (the answer is dropped). */
typedef void ch_http_reply_fn(void *reply_arg, int status,
                              const char *content_type, const void *body,
                              size_t len);

struct channel_ops {
    const char *name;           /* the provider type: "outbox", ... */
    int  (*open)(struct channel *ch, const struct conf_provider *conf);
    /* 0: cb will run once, later. <0: failed at once, cb never runs. */
    int  (*send)(struct channel *ch, struct message *m, channel_done_cb *cb,
                 void *arg);
    /* Finish or hand back in-flight work, then call channel_closed(). */
    void (*close)(struct channel *ch);
    void (*stats)(struct channel *ch, struct channel_stats *out);
    /* Optional: serve an HTTP request routed to this provider. 0: reply
     * will run once (perhaps inside this call); <0: not handled (404). */
    int  (*http)(struct channel *ch, const struct ch_http_req *rq,
                 ch_http_reply_fn *reply, void *reply_arg);
};

struct channel {
    const struct channel_ops    *ops;
    const struct conf_provider  *conf;  /* borrowed from the config */
    uv_loop_t                   *loop;
    void                        *priv;  /* the backend's state */
    struct log_ctx               log;
    channel_closed_cb           *on_closed;
    void                        *closed_arg;
    channel_inbound_cb          *on_inbound;    /* set by the gateway */
    void                        *inbound_arg;
};

extern const struct channel_ops outbox_ops;
extern const struct channel_ops smtp_ops;
extern const struct channel_ops smpp_ops;
extern const struct channel_ops fax_ops;

/* Open the backend named by conf->type. *out is new; ch_close frees it. */
int ch_open(struct channel **out, uv_loop_t *loop,
            const struct conf_provider *conf);
int ch_send(struct channel *ch, struct message *m, channel_done_cb *cb,
            void *arg);
/* Asynchronous; cb runs once the backend is done; ch is freed right after
 * cb returns. */
void ch_close(struct channel *ch, channel_closed_cb *cb, void *arg);
void ch_stats(struct channel *ch, struct channel_stats *out);
/* Called by a backend when its close has finished. */
void channel_closed(struct channel *ch);

#endif

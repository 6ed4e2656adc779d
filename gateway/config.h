/*
 * config.h -- the gateway's configuration: gateway.toml checked against a
 * schema (types, ranges, allowed values, unknown keys with the nearest
 * known one suggested) and turned into plain structs. Errors are reported
 * as file:line:col: message.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "toml.h"

#define CONF_MAX_PROVIDERS 32
#define CONF_MAX_SETS      64

enum gw_channel { CH_EMAIL, CH_SMS, CH_FAX, CH_COUNT };

/* A backend's own provider keys: each channel backend declares a table
 * (e.g. outbox_conf_keys in channels/outbox.c); config.c checks every
 * [provider.NAME] against the table of its type, and the backend reads the
 * values with conf_str/conf_int/conf_bool/conf_list at open. */
enum conf_key_type { CK_STR, CK_INT, CK_BOOL, CK_CHOICE, CK_LIST };

struct conf_key {
    const char         *name;
    enum conf_key_type  type;
    int                 required;
    int64_t             min, max;   /* CK_INT range */
    const char *const  *choices;    /* CK_CHOICE, NULL-terminated */
    const char         *def;        /* default as text ("5000", "true");
                                       NULL: none */
};

struct conf_provider {
    char        *name;          /* [provider.NAME] */
    char        *type;          /* the backend: "outbox", ... */
    unsigned     channels;      /* bit (1 << enum gw_channel) per channel */
    const struct toml_node *node;   /* the table (borrowed from the root) */
    const struct conf_key  *keys;   /* the backend's table */
};

/* Values of a backend key: the file's, else the table's default. Strings
 * are borrowed from the config. conf_list fills up to max entries and
 * returns how many there are. */
const char *conf_str(const struct conf_provider *p, const char *key);
int64_t conf_int(const struct conf_provider *p, const char *key);
int conf_bool(const struct conf_provider *p, const char *key);
size_t conf_list(const struct conf_provider *p, const char *key,
                 const char **out, size_t max);

/* [[throttle]]: one token bucket (or a bucket per sender / per domain). */
struct conf_throttle {
    char        *scope;         /* global | provider | sender | domain */
    char        *provider;      /* the provider (not for global) */
    char        *match;         /* sender/domain scope: only this one
                                   ("" = each one gets its own bucket) */
    int64_t      rate, per_s;   /* rate messages per per_s seconds */
    int64_t      burst;         /* 0: a tenth of a second's worth, >= 1 */
    int64_t      floor;         /* adaptive floor (same unit as rate);
                                   0: rate / 16 */
    int          shared;        /* kept in Redis across processes */
};

/* [[window]]: when a class of messages may go out, in local time. */
struct conf_window {
    char        *class;         /* marketing | transactional | all */
    unsigned     channels;      /* bit per channel */
    char        *start, *end;   /* "HH:MM" */
    char       **days;          /* "mon".."sun"; NULL-terminated */
    char       **holidays;      /* "YYYY-MM-DD" local dates */
};

/* [[freq_cap]]: at most max messages per window_s per customer. */
struct conf_freq {
    char        *name;
    char        *class;         /* marketing | transactional | all */
    char        *channel;       /* "all" (across channels), "each" (per
                                   channel) or a channel name */
    int64_t      max, window_s;
};

/* [[reminder]]: a customer date field that triggers messages. */
struct conf_reminder {
    char        *name;
    char        *field;         /* the customer's date field */
    char        *kind;          /* yearly | once | inactivity */
    char        *offset;        /* "-30d", "0d" (yearly, once) */
    int64_t      after_days;    /* inactivity: days after the field */
    char        *at;            /* local send time "HH:MM" */
    unsigned     channels;
    char        *template, *class, *provider;
};

#define CONF_MAX_RULES 64
#define CONF_MAX_PRICES 256

/* [price]: what a message costs. */
struct conf_price {
    char        *currency;
    double       email;         /* per email */
    double       fax_page;      /* per fax page */
    double       sms;           /* per SMS segment when no prefix matches */
    char        *sms_prefix[CONF_MAX_PRICES];   /* [price.sms] "+49" = ... */
    double       sms_price[CONF_MAX_PRICES];
    size_t       nsms;
};

struct conf_channel {
    char        *provider;      /* default provider name, or NULL */
    char        *in_doubt;      /* "resend" | "hold": a send cut off by a
                                   crash is sent again, or held as failed */
    int          in_doubt_resend;
    /* SMS: answers to MO keywords ("" = no answer) */
    char        *stop_reply, *help_reply, *start_reply;
    /* retries: -1 = the [dispatch] value */
    int64_t      retry_base_ms, retry_max_ms, max_attempts;
    int64_t      ttl_s;         /* deadline when the job gives none */
};

struct config {
    char        *path;
    struct toml_node *root;     /* owned; providers point into it */

    /* [gateway] */
    char        *consumer;
    char        *log_level;
    int64_t      shutdown_timeout_ms;

    /* [redis] */
    char        *redis_url;
    char        *prefix;
    int64_t      redis_timeout_ms;
    int64_t      reconnect_max_ms;
    int64_t      events_maxlen;
    int64_t      ledger_ttl_s;

    /* [intake] */
    int64_t      intake_batch;
    int64_t      block_ms;
    int64_t      claim_idle_ms;
    int64_t      max_deliveries;
    int64_t      max_job_bytes;
    int64_t      max_recipients_inline;
    int64_t      expand_batch;

    /* [dispatch] */
    int64_t      dispatch_batch;
    int64_t      max_inflight;
    int64_t      retry_base_ms;
    int64_t      retry_max_ms;
    int64_t      max_attempts;

    /* [http] */
    char        *http_listen;
    int64_t      http_max_body;
    char        *api_token;     /* bearer token of /api/; NULL: off */

    /* [templates] */
    char        *templates_dir;
    int64_t      templates_check_ms;

    /* [policy] */
    char        *default_zone;  /* for recipients without a zone */
    char       **zones;         /* without a default: the most restrictive
                                   window across these */

    struct conf_price price;

    /* [tracking] */
    int64_t      touch_max;
    int64_t      attribution_days;
    char        *public_url;    /* base of /u, /o, /c links */
    char       **token_keys;    /* "<id>:<base64 secret>" */
    int64_t      token_current;
    int64_t      token_max_age_days;
    char        *unsubscribe_mailto;    /* "mailto:unsub@example.org" */
    int          track_opens, track_clicks;

    /* [bounces] */
    char        *bounce_mailbox;    /* pop3[s]:// or imap[s]://.../INBOX */
    char        *bounce_user, *bounce_password, *bounce_tls;
    int64_t      bounce_poll_ms;
    int          bounce_delete, bounce_delete_other;
    char        *bounce_secret;     /* bearer secret of /hooks/bounces */

    struct conf_throttle throttle[CONF_MAX_RULES];
    size_t       nthrottle;
    struct conf_window   window[CONF_MAX_RULES];
    size_t       nwindow;
    int          window_set;    /* [[window]] given: no built-in default */
    struct conf_freq     freq[CONF_MAX_RULES];
    size_t       nfreq;
    struct conf_reminder reminder[CONF_MAX_RULES];
    size_t       nreminder;

    struct conf_channel  channel[CH_COUNT];
    struct conf_provider provider[CONF_MAX_PROVIDERS];
    size_t       nprovider;
};

/* Load and validate path, applying the --set overrides ("a.b=value", value
 * in TOML syntax or a bare string) after the file. On error returns
 * GW_ECONFIG and writes "file:line:col: message" into err. */
int conf_load(struct config **out, const char *path, char *const *sets,
              size_t nsets, char *err, size_t errlen);
void conf_free(struct config *c);

/* The price of a message of units (segments, pages; email: 1) to "to"
 * from [price]. */
double conf_price_of(const struct config *c, enum gw_channel ch,
                     const char *to, int units);

/* Provider by name, or NULL. Borrowed. */
const struct conf_provider *conf_provider_find(const struct config *c,
                                               const char *name);

/* "email" | "sms" | "fax" <-> enum gw_channel; -1 if unknown. */
int gw_channel_parse(const char *s);
const char *gw_channel_name(enum gw_channel ch);

/* Smallest edit distance suggestion among candidates (NULL-terminated),
 * or NULL when nothing is close. Exposed for tests. */
const char *conf_suggest(const char *word, const char *const *candidates);

#endif

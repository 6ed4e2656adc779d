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

struct conf_provider {
    char        *name;          /* [provider.NAME] */
    char        *type;          /* "outbox" (later smtp, smpp, fax) */
    unsigned     channels;      /* bit (1 << enum gw_channel) per channel */
    const struct toml_node *node; /* the table, for the backend's own keys */
    /* outbox */
    char        *dir;
    int          fsync;
};

struct conf_channel {
    char        *provider;      /* default provider name, or NULL */
    char        *in_doubt;      /* "resend" | "hold": a send cut off by a
                                   crash is sent again, or held as failed */
    int          in_doubt_resend;
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

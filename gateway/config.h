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

struct conf_channel {
    char        *provider;      /* default provider name, or NULL */
    char        *in_doubt;      /* "resend" | "hold": a send cut off by a
                                   crash is sent again, or held as failed */
    int          in_doubt_resend;
    /* SMS: answers to MO keywords ("" = no answer) */
    char        *stop_reply, *help_reply, *start_reply;
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

    /* [templates] */
    char        *templates_dir;
    int64_t      templates_check_ms;

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

/*
 * config.c -- gateway.toml: parse with our TOML parser, apply --set
 * overrides, check every key against the schema below and fill struct
 * config. The schema is the single list of known keys: gateway.toml.example
 * and docs/config.md document the same list, and a test checks that the
 * example passes --check.
 */
#include "config.h"

#include "../common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

enum key_type { K_STR, K_INT, K_BOOL, K_CHANNELS, K_CHOICE, K_LIST,
                K_MONEY };

struct key_spec {
    const char *name;
    enum key_type type;
    size_t      off;            /* into struct config / conf_provider */
    int64_t     min, max;       /* K_INT */
    const char *def_str;        /* K_STR / K_CHOICE default */
    int64_t     def_int;        /* K_INT / K_BOOL default */
    const char *const *choices; /* K_CHOICE */
};

static const char *const level_choices[] = {
    "error", "warn", "info", "debug", NULL
};
static const char *const in_doubt_choices[] = { "resend", "hold", NULL };
/* The backends and their key tables (defined next to each backend). */
extern const struct conf_key outbox_conf_keys[];
extern const struct conf_key smtp_conf_keys[];
extern const struct conf_key smpp_conf_keys[];
extern const struct conf_key fax_conf_keys[];

static const struct {
    const char            *type;
    const struct conf_key *keys;
} backends[] = {
    { "outbox", outbox_conf_keys },
    { "smtp", smtp_conf_keys },
    { "smpp", smpp_conf_keys },
    { "fax", fax_conf_keys },
};
#define NBACKENDS (sizeof backends / sizeof backends[0])

/* Filled from backends[] by conf_load; the "type" key's choices. */
static const char *provider_types[NBACKENDS + 1];

#define C(f) offsetof(struct config, f)
#define P(f) offsetof(struct conf_provider, f)

static const struct key_spec gateway_keys[] = {
    { "consumer", K_STR, C(consumer), 0, 0, NULL, 0, NULL },
    { "log_level", K_CHOICE, C(log_level), 0, 0, "info", 0, level_choices },
    { "shutdown_timeout_ms", K_INT, C(shutdown_timeout_ms), 0, 3600000,
      NULL, 30000, NULL },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
static const struct key_spec redis_keys[] = {
    { "url", K_STR, C(redis_url), 0, 0, "redis://127.0.0.1:6379/0", 0, NULL },
    { "prefix", K_STR, C(prefix), 0, 0, "gw:", 0, NULL },
    { "timeout_ms", K_INT, C(redis_timeout_ms), 100, 600000, NULL, 5000,
      NULL },
    { "reconnect_max_ms", K_INT, C(reconnect_max_ms), 100, 600000, NULL,
      5000, NULL },
    { "events_maxlen", K_INT, C(events_maxlen), 1000, INT64_C(1) << 40,
      NULL, 1000000, NULL },
    { "ledger_ttl_s", K_INT, C(ledger_ttl_s), 60, INT64_C(1) << 32, NULL,
      30 * 86400, NULL },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
static const struct key_spec intake_keys[] = {
    { "batch", K_INT, C(intake_batch), 1, 10000, NULL, 100, NULL },
    { "block_ms", K_INT, C(block_ms), 10, 60000, NULL, 1000, NULL },
    { "claim_idle_ms", K_INT, C(claim_idle_ms), 1000, INT64_C(1) << 32,
      NULL, 600000, NULL },
    { "max_deliveries", K_INT, C(max_deliveries), 1, 1000, NULL, 5, NULL },
    { "max_job_bytes", K_INT, C(max_job_bytes), 1024, 512 << 20, NULL,
      8 << 20, NULL },
    { "max_recipients_inline", K_INT, C(max_recipients_inline), 1, 1000000,
      NULL, 10000, NULL },
    { "expand_batch", K_INT, C(expand_batch), 1, 10000, NULL, 500, NULL },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
static const struct key_spec dispatch_keys[] = {
    { "batch", K_INT, C(dispatch_batch), 1, 10000, NULL, 256, NULL },
    { "max_inflight", K_INT, C(max_inflight), 1, 1000000, NULL, 2048, NULL },
    { "retry_base_ms", K_INT, C(retry_base_ms), 100, INT64_C(1) << 32, NULL,
      60000, NULL },
    { "retry_max_ms", K_INT, C(retry_max_ms), 100, INT64_C(1) << 32, NULL,
      3600000, NULL },
    { "max_attempts", K_INT, C(max_attempts), 1, 1000, NULL, 10, NULL },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
static const struct key_spec templates_keys[] = {
    { "dir", K_STR, C(templates_dir), 0, 0, "/etc/gatewayd/templates", 0,
      NULL },
    { "check_ms", K_INT, C(templates_check_ms), 0, 3600000, NULL, 1000,
      NULL },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
static const struct key_spec http_keys[] = {
    { "listen", K_STR, C(http_listen), 0, 0, "127.0.0.1:8025", 0, NULL },
    { "max_body", K_INT, C(http_max_body), 1024, 64 << 20, NULL, 1 << 20,
      NULL },
    { "api_token", K_STR, C(api_token), 0, 0, NULL, 0, NULL },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};

#define CH(f) offsetof(struct conf_channel, f)
static const struct key_spec channel_keys[] = {
    { "provider", K_STR, CH(provider), 0, 0, NULL, 0, NULL },
    { "in_doubt", K_CHOICE, CH(in_doubt), 0, 0, "resend", 0, in_doubt_choices },
    { "stop_reply", K_STR, CH(stop_reply), 0, 0,
      "You are unsubscribed and will get no more messages. Reply START to "
      "subscribe again.", 0, NULL },
    { "help_reply", K_STR, CH(help_reply), 0, 0,
      "Help: contact our support. Reply STOP to unsubscribe. Msg&data "
      "rates may apply.", 0, NULL },
    { "start_reply", K_STR, CH(start_reply), 0, 0,
      "You are subscribed again. Reply STOP to unsubscribe.", 0, NULL },
    { "retry_base_ms", K_INT, CH(retry_base_ms), -1, INT64_C(1) << 32, NULL,
      -1, NULL },
    { "retry_max_ms", K_INT, CH(retry_max_ms), -1, INT64_C(1) << 32, NULL,
      -1, NULL },
    { "max_attempts", K_INT, CH(max_attempts), -1, 1000, NULL, -1, NULL },
    { "ttl_s", K_INT, CH(ttl_s), 0, INT64_C(1) << 32, NULL, 3 * 86400,
      NULL },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};

static const char *const scope_choices[] = {
    "global", "provider", "connection", "sender", "domain", NULL
};
static const char *const class_choices[] = {
    "marketing", "transactional", "all", NULL
};
static const char *const kind_choices[] = {
    "yearly", "once", "inactivity", NULL
};

#define T(f) offsetof(struct conf_throttle, f)
static const struct key_spec throttle_keys[] = {
    { "scope", K_CHOICE, T(scope), 0, 0, NULL, 0, scope_choices },
    { "provider", K_STR, T(provider), 0, 0, NULL, 0, NULL },
    { "match", K_STR, T(match), 0, 0, "", 0, NULL },
    { "rate", K_INT, T(rate), 1, 10000000, NULL, 0, NULL },
    { "per_s", K_INT, T(per_s), 1, 86400, NULL, 1, NULL },
    { "burst", K_INT, T(burst), 0, 10000000, NULL, 0, NULL },
    { "floor", K_INT, T(floor), 0, 10000000, NULL, 0, NULL },
    { "shared", K_BOOL, T(shared), 0, 0, NULL, 0, NULL },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
#define W(f) offsetof(struct conf_window, f)
static const struct key_spec window_keys[] = {
    { "class", K_CHOICE, W(class), 0, 0, "marketing", 0, class_choices },
    { "channels", K_CHANNELS, W(channels), 0, 0, NULL, 0, NULL },
    { "start", K_STR, W(start), 0, 0, "00:00", 0, NULL },
    { "end", K_STR, W(end), 0, 0, "24:00", 0, NULL },
    { "days", K_LIST, W(days), 0, 0, NULL, 0, NULL },
    { "holidays", K_LIST, W(holidays), 0, 0, NULL, 0, NULL },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
#define F(f) offsetof(struct conf_freq, f)
static const struct key_spec freq_keys[] = {
    { "name", K_STR, F(name), 0, 0, NULL, 0, NULL },
    { "class", K_CHOICE, F(class), 0, 0, "marketing", 0, class_choices },
    { "channel", K_STR, F(channel), 0, 0, "all", 0, NULL },
    { "max", K_INT, F(max), 0, 1000000, NULL, 0, NULL },
    { "window_s", K_INT, F(window_s), 1, 366 * 86400, NULL, 0, NULL },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
#define R(f) offsetof(struct conf_reminder, f)
static const struct key_spec reminder_keys[] = {
    { "name", K_STR, R(name), 0, 0, NULL, 0, NULL },
    { "field", K_STR, R(field), 0, 0, NULL, 0, NULL },
    { "kind", K_CHOICE, R(kind), 0, 0, "yearly", 0, kind_choices },
    { "offset", K_STR, R(offset), 0, 0, "0d", 0, NULL },
    { "after_days", K_INT, R(after_days), 0, 3660, NULL, 0, NULL },
    { "at", K_STR, R(at), 0, 0, "09:00", 0, NULL },
    { "channels", K_CHANNELS, R(channels), 0, 0, NULL, 0, NULL },
    { "template", K_STR, R(template), 0, 0, NULL, 0, NULL },
    { "class", K_CHOICE, R(class), 0, 0, "marketing", 0, class_choices },
    { "provider", K_STR, R(provider), 0, 0, NULL, 0, NULL },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
static const struct key_spec policy_keys[] = {
    { "default_zone", K_STR, C(default_zone), 0, 0, NULL, 0, NULL },
    { "zones", K_LIST, C(zones), 0, 0, NULL, 0, NULL },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
#define PR(f) offsetof(struct config, price.f)
static const struct key_spec price_keys[] = {
    { "currency", K_STR, PR(currency), 0, 0, "EUR", 0, NULL },
    { "email", K_MONEY, PR(email), 0, 0, NULL, 0, NULL },
    { "fax_page", K_MONEY, PR(fax_page), 0, 0, NULL, 0, NULL },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
static const char *const tls_choices[] = {
    "required", "opportunistic", "off", NULL
};
static const struct key_spec bounces_keys[] = {
    { "mailbox", K_STR, C(bounce_mailbox), 0, 0, NULL, 0, NULL },
    { "user", K_STR, C(bounce_user), 0, 0, NULL, 0, NULL },
    { "password", K_STR, C(bounce_password), 0, 0, NULL, 0, NULL },
    { "tls", K_CHOICE, C(bounce_tls), 0, 0, "required", 0, tls_choices },
    { "poll_ms", K_INT, C(bounce_poll_ms), 1000, 86400000, NULL, 60000,
      NULL },
    { "delete", K_BOOL, C(bounce_delete), 0, 0, NULL, 1, NULL },
    { "delete_other", K_BOOL, C(bounce_delete_other), 0, 0, NULL, 0, NULL },
    { "webhook_secret", K_STR, C(bounce_secret), 0, 0, NULL, 0, NULL },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
static const struct key_spec tracking_keys[] = {
    { "touch_max", K_INT, C(touch_max), 10, 1000000, NULL, 1000, NULL },
    { "attribution_days", K_INT, C(attribution_days), 1, 366, NULL, 30,
      NULL },
    { "public_url", K_STR, C(public_url), 0, 0, NULL, 0, NULL },
    { "token_keys", K_LIST, C(token_keys), 0, 0, NULL, 0, NULL },
    { "token_current", K_INT, C(token_current), 0, 255, NULL, 0, NULL },
    { "token_max_age_days", K_INT, C(token_max_age_days), 30, 3650, NULL,
      400, NULL },
    { "unsubscribe_mailto", K_STR, C(unsubscribe_mailto), 0, 0, NULL, 0,
      NULL },
    { "track_opens", K_BOOL, C(track_opens), 0, 0, NULL, 1, NULL },
    { "track_clicks", K_BOOL, C(track_clicks), 0, 0, NULL, 1, NULL },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};
static const struct key_spec provider_keys[] = {
    { "type", K_CHOICE, P(type), 0, 0, NULL, 0,
      (const char *const *)provider_types },
    { "channels", K_CHANNELS, P(channels), 0, 0, NULL, 0, NULL },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};

static const struct {
    const char *name;
    const struct key_spec *keys;
} sections[] = {
    { "gateway", gateway_keys },
    { "redis", redis_keys },
    { "intake", intake_keys },
    { "dispatch", dispatch_keys },
    { "http", http_keys },
    { "templates", templates_keys },
    { "policy", policy_keys },
    { "price", NULL },          /* [price] and [price.sms] */
    { "tracking", tracking_keys },
    { "bounces", bounces_keys },
    { "throttle", NULL },       /* [[throttle]] */
    { "window", NULL },         /* [[window]] */
    { "freq_cap", NULL },       /* [[freq_cap]] */
    { "reminder", NULL },       /* [[reminder]] */
    { "channel", NULL },        /* [channel.email|sms|fax] */
    { "provider", NULL },       /* [provider.NAME] */
};
#define NSECTIONS (sizeof sections / sizeof sections[0])

/* NULL-terminated so that conf_suggest can walk it. */
static const char *const channel_names[CH_COUNT + 1] = {
    "email", "sms", "fax", NULL
};

struct loader {
    struct config *c;
    char *err;
    size_t errlen;
};

static int
fail(struct loader *ld, const struct toml_node *n, const char *fmt, ...)
{
    char msg[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n && n->line > 0)
        snprintf(ld->err, ld->errlen, "%s:%d:%d: %s", ld->c->path, n->line,
                 n->col, msg);
    else
        snprintf(ld->err, ld->errlen, "%s: %s", ld->c->path, msg);
    return GW_ECONFIG;
}

int
gw_channel_parse(const char *s)
{
    for (int i = 0; i < CH_COUNT; i++)
        if (strcmp(s, channel_names[i]) == 0)
            return i;
    return -1;
}

const char *
gw_channel_name(enum gw_channel ch)
{
    return (unsigned)ch < CH_COUNT ? channel_names[ch] : "?";
}

static size_t
edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64], prev, tmp;

    if (lb >= 64 || la >= 64)
        return (size_t)-1;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            tmp = row[j];
            size_t best = prev + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            prev = tmp;
        }
    }
    return row[lb];
}

const char *
conf_suggest(const char *word, const char *const *candidates)
{
    const char *best = NULL;
    size_t bestd = (size_t)-1, limit;

    for (size_t i = 0; candidates[i]; i++) {
        size_t d = edit_distance(word, candidates[i]);
        if (d < bestd) {
            bestd = d;
            best = candidates[i];
        }
    }
    /* Beyond a third of the word, a "did you mean" is noise. */
    limit = strlen(word) / 3 + 1;
    if (limit < 2)
        limit = 2;
    return bestd <= limit ? best : NULL;
}

/* A bad value: point at the value itself where the parser saw it. */
static int
fail_value(struct loader *ld, const struct toml_node *n, const char *fmt, ...)
{
    char msg[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n && n->vline > 0)
        snprintf(ld->err, ld->errlen, "%s:%d:%d: %s", ld->c->path, n->vline,
                 n->vcol, msg);
    else
        return fail(ld, n, "%s", msg);
    return GW_ECONFIG;
}

static int
unknown_key(struct loader *ld, const struct toml_node *n, const char *where,
            const struct key_spec *keys, const struct key_spec *more)
{
    const char *cand[64];
    size_t nc = 0;
    const char *s;

    for (size_t i = 0; keys && keys[i].name && nc < 62; i++)
        cand[nc++] = keys[i].name;
    for (size_t i = 0; more && more[i].name && nc < 62; i++)
        cand[nc++] = more[i].name;
    cand[nc] = NULL;
    if ((s = conf_suggest(n->key, cand)) != NULL)
        return fail(ld, n, "unknown key '%s' in %s (did you mean '%s'?)",
                    n->key, where, s);
    return fail(ld, n, "unknown key '%s' in %s", n->key, where);
}

static const struct key_spec *
spec_find(const struct key_spec *keys, const char *name)
{
    for (size_t i = 0; keys && keys[i].name; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* Check one value against its spec and store it at base + spec->off. */
static int
store(struct loader *ld, const struct key_spec *k, const struct toml_node *v,
      void *base, const char *where)
{
    char *p = (char *)base + k->off;

    switch (k->type) {
    case K_STR:
    case K_CHOICE:
        if (v->type != TOML_STRING)
            return fail_value(ld, v, "%s.%s must be a string, not %s", where,
                        k->name, toml_type_name(v->type));
        if (strlen(v->u.str.s) != v->u.str.len)
            return fail_value(ld, v, "%s.%s must not contain NUL", where, k->name);
        if (k->type == K_CHOICE) {
            size_t i;
            for (i = 0; k->choices[i]; i++)
                if (strcmp(k->choices[i], v->u.str.s) == 0)
                    break;
            if (!k->choices[i]) {
                const char *s = conf_suggest(v->u.str.s, k->choices);
                return fail_value(ld, v, "%s.%s: '%s' is not one of the allowed "
                            "values%s%s%s", where, k->name, v->u.str.s,
                            s ? " (did you mean '" : "", s ? s : "",
                            s ? "'?)" : "");
            }
        }
        {
            char **dst = (char **)(void *)p;
            free(*dst);
            if ((*dst = strdup(v->u.str.s)) == NULL)
                return -ENOMEM;
        }
        return 0;
    case K_INT:
        if (v->type != TOML_INT)
            return fail_value(ld, v, "%s.%s must be an integer, not %s", where,
                        k->name, toml_type_name(v->type));
        if (v->u.i < k->min || v->u.i > k->max)
            return fail_value(ld, v, "%s.%s = %lld is out of range [%lld, %lld]",
                        where, k->name, (long long)v->u.i,
                        (long long)k->min, (long long)k->max);
        *(int64_t *)(void *)p = v->u.i;
        return 0;
    case K_BOOL:
        if (v->type != TOML_BOOL)
            return fail_value(ld, v, "%s.%s must be true or false, not %s", where,
                        k->name, toml_type_name(v->type));
        *(int *)(void *)p = v->u.b;
        return 0;
    case K_CHANNELS: {
        unsigned mask = 0;
        if (v->type != TOML_ARRAY)
            return fail_value(ld, v, "%s.%s must be an array of channel names",
                        where, k->name);
        for (const struct toml_node *e = v->child; e; e = e->next) {
            int ch;
            if (e->type != TOML_STRING ||
                (ch = gw_channel_parse(e->u.str.s)) < 0)
                return fail_value(ld, e, "%s.%s: channels are \"email\", \"sms\" "
                            "and \"fax\"", where, k->name);
            mask |= 1u << ch;
        }
        if (mask == 0)
            return fail_value(ld, v, "%s.%s must name at least one channel",
                        where, k->name);
        *(unsigned *)(void *)p = mask;
        return 0;
    }
    case K_MONEY:
        /* a price: a number >= 0 (integer or float) */
        if (v->type != TOML_FLOAT && v->type != TOML_INT)
            return fail_value(ld, v, "%s.%s must be a number, not %s", where,
                              k->name, toml_type_name(v->type));
        {
            double d = v->type == TOML_INT ? (double)v->u.i : v->u.f;
            if (!(d >= 0 && d < 1e9))
                return fail_value(ld, v, "%s.%s must be a price >= 0", where,
                                  k->name);
            *(double *)(void *)p = d;
        }
        return 0;
    case K_LIST: {
        char ***dst = (char ***)(void *)p;
        size_t n = 0;
        if (v->type != TOML_ARRAY)
            return fail_value(ld, v, "%s.%s must be an array of strings",
                              where, k->name);
        for (const struct toml_node *e = v->child; e; e = e->next)
            if (e->type != TOML_STRING || strlen(e->u.str.s) != e->u.str.len)
                return fail_value(ld, e, "%s.%s must be an array of strings",
                                  where, k->name);
        g_strfreev(*dst);
        *dst = g_new0(char *, v->nchild + 1);
        for (const struct toml_node *e = v->child; e; e = e->next)
            (*dst)[n++] = g_strdup(e->u.str.s);
        return 0;
    }
    }
    return GW_EINVAL;
}

/* Free the strings a key table stored at base. */
static void
free_table(const struct key_spec *keys, void *base)
{
    for (size_t i = 0; keys[i].name; i++) {
        char *p = (char *)base + keys[i].off;
        if (keys[i].type == K_STR || keys[i].type == K_CHOICE) {
            free(*(char **)(void *)p);
            *(char **)(void *)p = NULL;
        } else if (keys[i].type == K_LIST) {
            g_strfreev(*(char ***)(void *)p);
            *(char ***)(void *)p = NULL;
        }
    }
}

static int
defaults(const struct key_spec *keys, void *base)
{
    for (size_t i = 0; keys[i].name; i++) {
        const struct key_spec *k = &keys[i];
        char *p = (char *)base + k->off;

        if (k->type == K_INT)
            *(int64_t *)(void *)p = k->def_int;
        else if (k->type == K_BOOL)
            *(int *)(void *)p = (int)k->def_int;
        else if ((k->type == K_STR || k->type == K_CHOICE) && k->def_str) {
            if ((*(char **)(void *)p = strdup(k->def_str)) == NULL)
                return -ENOMEM;
        }
    }
    return 0;
}

static int
load_table(struct loader *ld, const struct toml_node *t,
           const struct key_spec *keys, const struct key_spec *more,
           void *base, const char *where)
{
    int rc;

    if (t->type != TOML_TABLE)
        return fail(ld, t, "%s must be a table", where);
    for (const struct toml_node *n = t->child; n; n = n->next) {
        const struct key_spec *k = spec_find(keys, n->key);
        if (!k && more)
            k = spec_find(more, n->key);
        if (!k)
            return unknown_key(ld, n, where, keys, more);
        if ((rc = store(ld, k, n, base, where)) < 0)
            return rc;
    }
    return 0;
}

static int
load_channels(struct loader *ld, const struct toml_node *t)
{
    char where[64];
    int rc;

    if (t->type != TOML_TABLE)
        return fail(ld, t, "[channel] must be a table of channels");
    for (const struct toml_node *n = t->child; n; n = n->next) {
        int ch = gw_channel_parse(n->key);
        if (ch < 0) {
            const char *s = conf_suggest(n->key, channel_names);
            return fail(ld, n, "unknown channel '%s'%s%s%s", n->key,
                        s ? " (did you mean '" : "", s ? s : "",
                        s ? "'?)" : "");
        }
        snprintf(where, sizeof where, "channel.%s", n->key);
        if ((rc = load_table(ld, n, channel_keys, NULL, &ld->c->channel[ch],
                             where)) < 0)
            return rc;
    }
    return 0;
}

/* [price]: the flat prices, and [price.sms] with a price per segment by
 * destination prefix ("+49" = 0.075; the longest prefix wins) and a
 * "default" for the rest. */
static int
load_price(struct loader *ld, const struct toml_node *t)
{
    struct conf_price *pr = &ld->c->price;
    int rc;

    if (t->type != TOML_TABLE)
        return fail(ld, t, "[price] must be a table");
    for (const struct toml_node *n = t->child; n; n = n->next) {
        const struct key_spec *k;
        if (strcmp(n->key, "sms") == 0 && n->type == TOML_TABLE) {
            for (const struct toml_node *e = n->child; e; e = e->next) {
                const char *pfx = e->key;
                double d;
                if (strcmp(pfx, "default") == 0) {
                    static const struct key_spec dk = { "default", K_MONEY,
                        PR(sms), 0, 0, NULL, 0, NULL };
                    if ((rc = store(ld, &dk, e, ld->c, "price.sms")) < 0)
                        return rc;
                    continue;
                }
                if (pr->nsms == CONF_MAX_PRICES)
                    return fail(ld, e, "more than %d SMS prices",
                                CONF_MAX_PRICES);
                if (pfx[0] != '+' || strspn(pfx + 1, "0123456789") !=
                    strlen(pfx + 1) || strlen(pfx) < 2 || strlen(pfx) > 16)
                    return fail(ld, e, "price.sms: '%s' is not a number "
                                "prefix such as \"+49\"", pfx);
                if (e->type != TOML_FLOAT && e->type != TOML_INT)
                    return fail_value(ld, e, "price.sms.\"%s\" must be a "
                                      "number", pfx);
                d = e->type == TOML_INT ? (double)e->u.i : e->u.f;
                if (!(d >= 0 && d < 1e9))
                    return fail_value(ld, e, "price.sms.\"%s\" must be a "
                                      "price >= 0", pfx);
                pr->sms_prefix[pr->nsms] = strdup(pfx);
                pr->sms_price[pr->nsms++] = d;
            }
            continue;
        }
        if ((k = spec_find(price_keys, n->key)) == NULL)
            return unknown_key(ld, n, "price", price_keys, NULL);
        if ((rc = store(ld, k, n, ld->c, "price")) < 0)
            return rc;
    }
    return 0;
}

double
conf_price_of(const struct config *c, enum gw_channel ch, const char *to,
              int units)
{
    const struct conf_price *pr = &c->price;
    size_t best = 0;
    double each;

    if (units < 1)
        units = 1;
    if (ch == CH_EMAIL)
        return pr->email;
    if (ch == CH_FAX)
        return pr->fax_page * units;
    each = pr->sms;
    for (size_t i = 0; to && i < pr->nsms; i++) {
        size_t n = strlen(pr->sms_prefix[i]);
        if (n > best && strncmp(to, pr->sms_prefix[i], n) == 0) {
            best = n;
            each = pr->sms_price[i];
        }
    }
    return each * units;
}

/* [[name]]: an array of tables, each checked against keys and stored in
 * consecutive elements of size elsz at base. */
static int
load_array(struct loader *ld, const struct toml_node *t, const char *name,
           const struct key_spec *keys, void *base, size_t elsz,
           size_t *count)
{
    char where[64];
    size_t i = 0;
    int rc;

    if (t->type != TOML_ARRAY)
        return fail(ld, t, "%s must be written [[%s]] (an array of tables)",
                    name, name);
    for (const struct toml_node *e = t->child; e; e = e->next, i++) {
        void *el = (char *)base + i * elsz;
        if (i == CONF_MAX_RULES)
            return fail(ld, e, "more than %d [[%s]] entries", CONF_MAX_RULES,
                        name);
        snprintf(where, sizeof where, "%s[%zu]", name, i);
        if (e->type != TOML_TABLE)
            return fail(ld, e, "%s must be a table", where);
        if ((rc = defaults(keys, el)) < 0 ||
            (rc = load_table(ld, e, keys, NULL, el, where)) < 0) {
            *count = i + 1;
            return rc;
        }
    }
    *count = i;
    return 0;
}

/* "HH:MM" with 24:00 allowed as an end. */
static int
hhmm_ok(const char *s)
{
    return s && strlen(s) == 5 && s[0] >= '0' && s[0] <= '2' &&
           s[1] >= '0' && s[1] <= '9' && s[2] == ':' && s[3] >= '0' &&
           s[3] <= '5' && s[4] >= '0' && s[4] <= '9' &&
           ((s[0] - '0') * 10 + (s[1] - '0') < 24 ||
            strcmp(s, "24:00") == 0);
}

/* The i-th table of [[sec]], for error positions. */
static const struct toml_node *
nth(const struct config *c, const char *sec, size_t i)
{
    const struct toml_node *t = toml_get(c->root, sec);
    const struct toml_node *x = t ? t->child : NULL;

    for (size_t k = 0; x && k < i; k++)
        x = x->next;
    return x;
}

/* Required keys and cross-field rules of the [[...]] policy tables. */
static int
check_rules(struct loader *ld)
{
    struct config *c = ld->c;
    size_t i;

    for (i = 0; i < c->nthrottle; i++) {
        struct conf_throttle *t = &c->throttle[i];
        if (!t->scope || t->rate == 0)
            return fail(ld, nth(c, "throttle", i), "throttle[%zu] needs 'scope' "
                        "and 'rate'", i);
        if (strcmp(t->scope, "global") != 0 &&
            (!t->provider || !conf_provider_find(c, t->provider)))
            return fail(ld, nth(c, "throttle", i), "throttle[%zu]: scope '%s' "
                        "needs 'provider' naming a configured provider", i,
                        t->scope);
    }
    for (i = 0; i < c->nwindow; i++) {
        struct conf_window *w = &c->window[i];
        static const char *const dn[] = { "mon", "tue", "wed", "thu", "fri",
                                          "sat", "sun", NULL };
        if (!hhmm_ok(w->start) || !hhmm_ok(w->end) ||
            strcmp(w->start, "24:00") == 0)
            return fail(ld, nth(c, "window", i), "window[%zu]: start and end "
                        "are HH:MM (end may be 24:00)", i);
        for (char **d = w->days; d && *d; d++) {
            size_t k;
            for (k = 0; dn[k] && strcmp(dn[k], *d) != 0; k++)
                ;
            if (!dn[k])
                return fail(ld, nth(c, "window", i), "window[%zu].days: '%s' is "
                            "not one of mon tue wed thu fri sat sun", i, *d);
        }
        for (char **d = w->holidays; d && *d; d++) {
            int y, m, dd;
            char tail;
            if (sscanf(*d, "%4d-%2d-%2d%c", &y, &m, &dd, &tail) != 3 ||
                strlen(*d) != 10 || m < 1 || m > 12 || dd < 1 || dd > 31)
                return fail(ld, nth(c, "window", i), "window[%zu].holidays: '%s' "
                            "is not YYYY-MM-DD", i, *d);
        }
    }
    for (i = 0; i < c->nfreq; i++) {
        struct conf_freq *f = &c->freq[i];
        if (!f->name || !*f->name || f->window_s == 0 ||
            !toml_get(nth(c, "freq_cap", i), "max"))
            return fail(ld, nth(c, "freq_cap", i), "freq_cap[%zu] needs 'name', "
                        "'max' and 'window_s'", i);
        if (strcmp(f->channel, "all") != 0 && strcmp(f->channel, "each") != 0 &&
            gw_channel_parse(f->channel) < 0)
            return fail(ld, nth(c, "freq_cap", i), "freq_cap[%zu].channel: "
                        "\"all\", \"each\" or a channel name", i);
    }
    for (i = 0; i < c->nreminder; i++) {
        struct conf_reminder *r = &c->reminder[i];
        const char *o = r->offset;
        char *end;
        if (!r->name || !*r->name || strchr(r->name, ':') || !r->field ||
            !r->template || !r->channels)
            return fail(ld, nth(c, "reminder", i), "reminder[%zu] needs 'name' "
                        "(no ':'), 'field', 'template' and 'channels'", i);
        if (!hhmm_ok(r->at) || strcmp(r->at, "24:00") == 0)
            return fail(ld, nth(c, "reminder", i), "reminder[%zu].at: HH:MM", i);
        if ((strtol(o, &end, 10), end == o) || strcmp(end, "d") != 0)
            return fail(ld, nth(c, "reminder", i), "reminder[%zu].offset: days "
                        "such as \"-30d\" or \"0d\"", i);
        if (strcmp(r->kind, "inactivity") == 0 && r->after_days == 0)
            return fail(ld, nth(c, "reminder", i), "reminder[%zu]: an inactivity "
                        "rule needs 'after_days'", i);
        if (r->provider && !conf_provider_find(c, r->provider))
            return fail(ld, nth(c, "reminder", i), "reminder[%zu].provider: no "
                        "provider named '%s'", i, r->provider);
        for (size_t k = 0; k < i; k++)
            if (strcmp(c->reminder[k].name, r->name) == 0)
                return fail(ld, nth(c, "reminder", i), "reminder[%zu]: name '%s' "
                            "is used twice", i, r->name);
    }
    if (c->default_zone && *c->default_zone) {
        GTimeZone *z = g_time_zone_new_identifier(c->default_zone);
        if (!z)
            return fail(ld, toml_get(toml_get(c->root, "policy"),
                                     "default_zone"),
                        "policy.default_zone: unknown time zone '%s'",
                        c->default_zone);
        g_time_zone_unref(z);
    }
    for (char **zn = c->zones; zn && *zn; zn++) {
        GTimeZone *z = g_time_zone_new_identifier(*zn);
        if (!z)
            return fail(ld, toml_get(toml_get(c->root, "policy"), "zones"),
                        "policy.zones: unknown time zone '%s'", *zn);
        g_time_zone_unref(z);
    }
    return 0;
}

/* Check one backend key's value against its conf_key. */
static int
check_backend_value(struct loader *ld, const struct conf_key *k,
                    const struct toml_node *v, const char *where)
{
    switch (k->type) {
    case CK_STR:
    case CK_CHOICE:
        if (v->type != TOML_STRING)
            return fail_value(ld, v, "%s.%s must be a string, not %s", where,
                              k->name, toml_type_name(v->type));
        if (strlen(v->u.str.s) != v->u.str.len)
            return fail_value(ld, v, "%s.%s must not contain NUL", where,
                              k->name);
        if (k->type == CK_CHOICE) {
            size_t i;
            for (i = 0; k->choices[i]; i++)
                if (strcmp(k->choices[i], v->u.str.s) == 0)
                    return 0;
            const char *s = conf_suggest(v->u.str.s, k->choices);
            return fail_value(ld, v, "%s.%s: '%s' is not one of the allowed "
                              "values%s%s%s", where, k->name, v->u.str.s,
                              s ? " (did you mean '" : "", s ? s : "",
                              s ? "'?)" : "");
        }
        return 0;
    case CK_INT:
        if (v->type != TOML_INT)
            return fail_value(ld, v, "%s.%s must be an integer, not %s",
                              where, k->name, toml_type_name(v->type));
        if (v->u.i < k->min || v->u.i > k->max)
            return fail_value(ld, v, "%s.%s = %lld is out of range [%lld, "
                              "%lld]", where, k->name, (long long)v->u.i,
                              (long long)k->min, (long long)k->max);
        return 0;
    case CK_BOOL:
        if (v->type != TOML_BOOL)
            return fail_value(ld, v, "%s.%s must be true or false, not %s",
                              where, k->name, toml_type_name(v->type));
        return 0;
    case CK_LIST:
        if (v->type != TOML_ARRAY)
            return fail_value(ld, v, "%s.%s must be an array of strings",
                              where, k->name);
        for (const struct toml_node *e = v->child; e; e = e->next)
            if (e->type != TOML_STRING)
                return fail_value(ld, e, "%s.%s must be an array of strings",
                                  where, k->name);
        return 0;
    }
    return GW_EINVAL;
}

static int
load_providers(struct loader *ld, const struct toml_node *t)
{
    struct config *c = ld->c;
    char where[160];
    int rc;

    if (t->type != TOML_TABLE)
        return fail(ld, t, "[provider] must be a table of providers");
    for (const struct toml_node *n = t->child; n; n = n->next) {
        struct conf_provider *p;
        const struct toml_node *ty;

        if (c->nprovider == CONF_MAX_PROVIDERS)
            return fail(ld, n, "more than %d providers", CONF_MAX_PROVIDERS);
        snprintf(where, sizeof where, "provider.%s", n->key);
        if (n->type != TOML_TABLE)
            return fail(ld, n, "%s must be a table", where);
        if ((ty = toml_get(n, "type")) == NULL)
        {
            char types[200] = "";
            for (size_t b = 0; b < NBACKENDS; b++)
                snprintf(types + strlen(types), sizeof types - strlen(types),
                         "%s%s", b ? ", " : "", backends[b].type);
            return fail(ld, n, "%s: missing key 'type' (one of: %s)", where,
                        types);
        }
        p = &c->provider[c->nprovider++];
        if ((p->name = strdup(n->key)) == NULL)
            return -ENOMEM;
        p->node = n;
        p->channels = (1u << CH_COUNT) - 1;
        /* The type decides which other keys exist: check it first. */
        if ((rc = store(ld, &provider_keys[0], ty, p, where)) < 0)
            return rc;
        for (size_t b = 0; b < NBACKENDS; b++)
            if (strcmp(backends[b].type, p->type) == 0)
                p->keys = backends[b].keys;
        for (const struct toml_node *v = n->child; v; v = v->next) {
            const struct key_spec *ks = spec_find(provider_keys, v->key);
            const struct conf_key *k = NULL;

            if (ks) {
                if ((rc = store(ld, ks, v, p, where)) < 0)
                    return rc;
                continue;
            }
            for (size_t i = 0; p->keys[i].name; i++)
                if (strcmp(p->keys[i].name, v->key) == 0)
                    k = &p->keys[i];
            if (!k) {
                const char *cand[64];
                size_t nc = 0;
                for (size_t i = 0; provider_keys[i].name && nc < 62; i++)
                    cand[nc++] = provider_keys[i].name;
                for (size_t i = 0; p->keys[i].name && nc < 62; i++)
                    cand[nc++] = p->keys[i].name;
                cand[nc] = NULL;
                const char *s = conf_suggest(v->key, cand);
                return s ? fail(ld, v, "unknown key '%s' in %s (did you "
                                "mean '%s'?)", v->key, where, s)
                         : fail(ld, v, "unknown key '%s' in %s (a %s "
                                "provider)", v->key, where, p->type);
            }
            if ((rc = check_backend_value(ld, k, v, where)) < 0)
                return rc;
        }
        for (size_t i = 0; p->keys[i].name; i++) {
            const struct toml_node *v = toml_get(n, p->keys[i].name);
            if (p->keys[i].required &&
                (!v || (v->type == TOML_STRING && v->u.str.len == 0)))
                return fail(ld, n, "%s: %s %s provider needs '%s'", where,
                            strchr("aeiou", p->type[0]) ? "an" : "a",
                            p->type, p->keys[i].name);
        }
    }
    return 0;
}

static const struct conf_key *
backend_key(const struct conf_provider *p, const char *key)
{
    for (size_t i = 0; p->keys && p->keys[i].name; i++)
        if (strcmp(p->keys[i].name, key) == 0)
            return &p->keys[i];
    return NULL;
}

const char *
conf_str(const struct conf_provider *p, const char *key)
{
    const struct toml_node *v = toml_get(p->node, key);
    const struct conf_key *k;

    if (v && v->type == TOML_STRING)
        return v->u.str.s;
    k = backend_key(p, key);
    return k ? k->def : NULL;
}

int64_t
conf_int(const struct conf_provider *p, const char *key)
{
    const struct toml_node *v = toml_get(p->node, key);
    const struct conf_key *k;

    if (v && v->type == TOML_INT)
        return v->u.i;
    k = backend_key(p, key);
    return k && k->def ? strtoll(k->def, NULL, 10) : 0;
}

int
conf_bool(const struct conf_provider *p, const char *key)
{
    const struct toml_node *v = toml_get(p->node, key);
    const struct conf_key *k;

    if (v && v->type == TOML_BOOL)
        return v->u.b;
    k = backend_key(p, key);
    return k && k->def && strcmp(k->def, "true") == 0;
}

size_t
conf_list(const struct conf_provider *p, const char *key, const char **out,
          size_t max)
{
    const struct toml_node *v = toml_get(p->node, key);
    size_t n = 0;

    if (!v || v->type != TOML_ARRAY)
        return 0;
    for (const struct toml_node *e = v->child; e; e = e->next, n++)
        if (n < max)
            out[n] = e->u.str.s;
    return n;
}

/* "a.b=value": value is TOML if it parses, else taken as a bare string. */
static int
apply_set(struct loader *ld, const char *set)
{
    struct toml_error te;
    const char *eq = strchr(set, '=');
    char *path, *quoted;
    size_t vlen;
    int rc;

    if (!eq || eq == set) {
        snprintf(ld->err, ld->errlen, "--set %s: expected section.key=value",
                 set);
        return GW_ECONFIG;
    }
    if ((path = strndup(set, (size_t)(eq - set))) == NULL)
        return -ENOMEM;
    rc = toml_set_path(ld->c->root, path, eq + 1, &te);
    if (rc == GW_EPARSE) {
        /* Quote it as a basic string, escaping what TOML requires. */
        vlen = strlen(eq + 1);
        if ((quoted = malloc(vlen * 6 + 3)) == NULL) {
            free(path);
            return -ENOMEM;
        }
        char *q = quoted;
        *q++ = '"';
        for (const unsigned char *s = (const unsigned char *)eq + 1; *s; s++) {
            if (*s == '"' || *s == '\\')
                q += sprintf(q, "\\%c", *s);
            else if (*s < 0x20 || *s == 0x7f)
                q += sprintf(q, "\\u%04x", *s);
            else
                *q++ = (char)*s;
        }
        *q++ = '"';
        *q = 0;
        rc = toml_set_path(ld->c->root, path, quoted, &te);
        free(quoted);
    }
    if (rc < 0)
        snprintf(ld->err, ld->errlen, "--set %s: %s", set, te.msg);
    free(path);
    return rc < 0 ? GW_ECONFIG : 0;
}

static int
read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    size_t n = 0, cap = 0, r;

    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return GW_ECONFIG;
    }
    do {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (16u << 20)) {
                snprintf(err, errlen, "%s: file too large", path);
                fclose(f);
                free(p);
                return GW_ECONFIG;
            }
            char *np = realloc(p, cap);
            if (!np) {
                fclose(f);
                free(p);
                return -ENOMEM;
            }
            p = np;
        }
        r = fread(p + n, 1, cap - n, f);
        n += r;
    } while (r > 0);
    if (ferror(f)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        fclose(f);
        free(p);
        return GW_ECONFIG;
    }
    fclose(f);
    *out = p;
    *len = n;
    return 0;
}

int
conf_load(struct config **out, const char *path, char *const *sets,
          size_t nsets, char *err, size_t errlen)
{
    struct loader ld = { NULL, err, errlen };
    struct toml_error te;
    struct config *c;
    char *src = NULL;
    size_t len;
    int rc;

    for (size_t b = 0; b < NBACKENDS; b++)
        provider_types[b] = backends[b].type;
    if ((c = calloc(1, sizeof *c)) == NULL)
        return -ENOMEM;
    ld.c = c;
    if ((c->path = strdup(path)) == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < CH_COUNT; i++)
        if ((rc = defaults(channel_keys, &c->channel[i])) < 0)
            goto out;
    /* A second SMS or fax costs money and annoys: hold them by default. */
    for (int i = CH_SMS; i <= CH_FAX; i++) {
        free(c->channel[i].in_doubt);
        if ((c->channel[i].in_doubt = strdup("hold")) == NULL) {
            rc = -ENOMEM;
            goto out;
        }
    }
    if ((rc = read_file(path, &src, &len, err, errlen)) < 0)
        goto out;
    if (toml_parse(&c->root, src, len, &te) < 0) {
        snprintf(err, errlen, "%s:%d:%d: %s", path, te.line, te.col, te.msg);
        rc = GW_ECONFIG;
        goto out;
    }
    for (size_t i = 0; i < nsets; i++)
        if ((rc = apply_set(&ld, sets[i])) < 0)
            goto out;

    if ((rc = defaults(gateway_keys, c)) < 0 ||
        (rc = defaults(redis_keys, c)) < 0 ||
        (rc = defaults(intake_keys, c)) < 0 ||
        (rc = defaults(dispatch_keys, c)) < 0 ||
        (rc = defaults(http_keys, c)) < 0 ||
        (rc = defaults(policy_keys, c)) < 0 ||
        (rc = defaults(price_keys, c)) < 0 ||
        (rc = defaults(tracking_keys, c)) < 0 ||
        (rc = defaults(bounces_keys, c)) < 0 ||
        (rc = defaults(templates_keys, c)) < 0)
        goto out;

    for (const struct toml_node *n = c->root->child; n; n = n->next) {
        size_t s;
        const char *names[NSECTIONS + 1];

        for (s = 0; s < NSECTIONS; s++)
            if (strcmp(sections[s].name, n->key) == 0)
                break;
        if (s == NSECTIONS) {
            const char *hint;
            for (s = 0; s < NSECTIONS; s++)
                names[s] = sections[s].name;
            names[NSECTIONS] = NULL;
            hint = conf_suggest(n->key, names);
            rc = hint ? fail(&ld, n, "unknown section '%s' (did you mean "
                             "'%s'?)", n->key, hint)
                      : fail(&ld, n, "unknown section '%s'", n->key);
            goto out;
        }
        if (strcmp(n->key, "channel") == 0)
            rc = load_channels(&ld, n);
        else if (strcmp(n->key, "price") == 0)
            rc = load_price(&ld, n);
        else if (strcmp(n->key, "throttle") == 0)
            rc = load_array(&ld, n, "throttle", throttle_keys, c->throttle,
                            sizeof c->throttle[0], &c->nthrottle);
        else if (strcmp(n->key, "window") == 0) {
            rc = load_array(&ld, n, "window", window_keys, c->window,
                            sizeof c->window[0], &c->nwindow);
            c->window_set = 1;
        } else if (strcmp(n->key, "freq_cap") == 0)
            rc = load_array(&ld, n, "freq_cap", freq_keys, c->freq,
                            sizeof c->freq[0], &c->nfreq);
        else if (strcmp(n->key, "reminder") == 0)
            rc = load_array(&ld, n, "reminder", reminder_keys, c->reminder,
                            sizeof c->reminder[0], &c->nreminder);
        else if (strcmp(n->key, "provider") == 0)
            rc = load_providers(&ld, n);
        else
            rc = load_table(&ld, n, sections[s].keys, NULL, c, n->key);
        if (rc < 0)
            goto out;
    }

    /* Cross-checks. */
    if (!c->consumer || !*c->consumer) {
        char host[256];
        if (gethostname(host, sizeof host) != 0)
            strcpy(host, "gateway");
        host[sizeof host - 1] = 0;
        free(c->consumer);
        if ((c->consumer = strdup(host)) == NULL) {
            rc = -ENOMEM;
            goto out;
        }
    }
    if (strncmp(c->redis_url, "redis://", 8) != 0 &&
        strncmp(c->redis_url, "unix://", 7) != 0) {
        rc = fail(&ld, toml_get(toml_get(c->root, "redis"), "url"),
                  "redis.url must start with redis:// or unix://");
        goto out;
    }
    if ((rc = check_rules(&ld)) < 0)
        goto out;
    if (!c->public_url || !*c->public_url) {
        /* links point at our own listener unless told otherwise */
        free(c->public_url);
        c->public_url = malloc(strlen(c->http_listen) + 8);
        if (!c->public_url) {
            rc = -ENOMEM;
            goto out;
        }
        sprintf(c->public_url, "http://%s", c->http_listen);
    } else if (strncmp(c->public_url, "https://", 8) != 0 &&
               strncmp(c->public_url, "http://", 7) != 0) {
        rc = fail(&ld, toml_get(toml_get(c->root, "tracking"), "public_url"),
                  "tracking.public_url must start with https:// (or http://)");
        goto out;
    } else {
        size_t n = strlen(c->public_url);
        while (n > 8 && c->public_url[n - 1] == '/')
            c->public_url[--n] = 0;
    }
    if (c->bounce_mailbox && *c->bounce_mailbox &&
        strncmp(c->bounce_mailbox, "pop3://", 7) != 0 &&
        strncmp(c->bounce_mailbox, "pop3s://", 8) != 0 &&
        strncmp(c->bounce_mailbox, "imap://", 7) != 0 &&
        strncmp(c->bounce_mailbox, "imaps://", 8) != 0) {
        rc = fail(&ld, toml_get(toml_get(c->root, "bounces"), "mailbox"),
                  "bounces.mailbox must be a pop3(s):// or imap(s):// URL");
        goto out;
    }
    if (c->unsubscribe_mailto && *c->unsubscribe_mailto &&
        strncmp(c->unsubscribe_mailto, "mailto:", 7) != 0) {
        rc = fail(&ld, toml_get(toml_get(c->root, "tracking"),
                                "unsubscribe_mailto"),
                  "tracking.unsubscribe_mailto must be a mailto: URI");
        goto out;
    }
    for (int ch = 0; ch < CH_COUNT; ch++) {
        const struct conf_provider *p;
        const char *name = c->channel[ch].provider;
        struct conf_channel *cc = &c->channel[ch];

        if (cc->retry_base_ms < 0)
            cc->retry_base_ms = c->retry_base_ms;
        if (cc->retry_max_ms < 0)
            cc->retry_max_ms = c->retry_max_ms;
        if (cc->max_attempts < 0)
            cc->max_attempts = c->max_attempts;
        c->channel[ch].in_doubt_resend =
            strcmp(c->channel[ch].in_doubt, "resend") == 0;

        if (!name)
            continue;
        if ((p = conf_provider_find(c, name)) == NULL) {
            const struct toml_node *t = toml_get(c->root, "channel");
            t = t ? toml_get(t, channel_names[ch]) : NULL;
            rc = fail(&ld, t ? toml_get(t, "provider") : NULL,
                      "channel.%s.provider: no provider named '%s'",
                      channel_names[ch], name);
            goto out;
        }
        if (!(p->channels & (1u << ch))) {
            rc = fail(&ld, p->node, "provider '%s' does not serve channel "
                      "'%s' (see its 'channels')", name, channel_names[ch]);
            goto out;
        }
    }
    *out = c;
    c = NULL;
    rc = 0;
out:
    free(src);
    conf_free(c);
    return rc;
}

const struct conf_provider *
conf_provider_find(const struct config *c, const char *name)
{
    for (size_t i = 0; i < c->nprovider; i++)
        if (strcmp(c->provider[i].name, name) == 0)
            return &c->provider[i];
    return NULL;
}

void
conf_free(struct config *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->consumer);
    free(c->log_level);
    free(c->redis_url);
    free(c->prefix);
    free(c->http_listen);
    free(c->api_token);
    free(c->templates_dir);
    for (int i = 0; i < CH_COUNT; i++) {
        free(c->channel[i].provider);
        free(c->channel[i].in_doubt);
        free(c->channel[i].stop_reply);
        free(c->channel[i].help_reply);
        free(c->channel[i].start_reply);
    }
    for (size_t i = 0; i < c->nprovider; i++) {
        free(c->provider[i].name);
        free(c->provider[i].type);
    }
    free(c->default_zone);
    free_table(bounces_keys, c);
    free(c->public_url);
    g_strfreev(c->token_keys);
    free(c->unsubscribe_mailto);
    free(c->price.currency);
    for (size_t i = 0; i < c->price.nsms; i++)
        free(c->price.sms_prefix[i]);
    g_strfreev(c->zones);
    for (size_t i = 0; i < c->nthrottle; i++)
        free_table(throttle_keys, &c->throttle[i]);
    for (size_t i = 0; i < c->nwindow; i++)
        free_table(window_keys, &c->window[i]);
    for (size_t i = 0; i < c->nfreq; i++)
        free_table(freq_keys, &c->freq[i]);
    for (size_t i = 0; i < c->nreminder; i++)
        free_table(reminder_keys, &c->reminder[i]);
    toml_free(c->root);
    free(c);
}

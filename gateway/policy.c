/*
 * policy.c -- the contact policy the dispatcher applies before a message
 * goes out, built from gateway.toml with the scheduler's pure modules:
 * quiet hours ([[window]], a campaign's window, the recipient's zone),
 * token buckets ([[throttle]]: global -> provider -> sender -> recipient
 * domain, adaptive, shared ones leased from Redis by GCRA), retry backoff
 * per channel, and the frequency cap rules handed to the begin script
 * (which counts them atomically in Redis).
 */
#include "gw.h"

#include "../common/buf.h"
#include "../common/err.h"
#include "../scheduler/backoff.h"
#include "../scheduler/throttle.h"
#include "../scheduler/window.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct log_ctx lg = { "policy", NULL };

#define MAX_DYNAMIC_BUCKETS 100000
#define LEASE_RETRY_MS      50

/* One configured [[window]], parsed. */
struct pwin {
    struct window w;
    int           cls;          /* 0 marketing, 1 transactional, 2 all */
    unsigned      channels;
};

/* A shared bucket's lease request state. */
struct lease {
    struct bucket *b;
    char          *key;         /* throttle:<name> */
    double         rate, burst;
    int            asking;
    int64_t        next_ms;     /* no request before this */
    struct gw     *g;
};

struct policy {
    struct pwin   *wins;
    size_t         nwins;
    GTimeZone     *def_zone;
    GTimeZone    **zones;
    size_t         nzones;
    struct throttle *thr;
    struct lease  *leases;
    size_t         nleases;
    char          *sender[CONF_MAX_PROVIDERS];  /* by config index */
    uint64_t       rnd;
};

static int
class_index(const char *c)
{
    if (!c || strcmp(c, "marketing") == 0)
        return 0;
    return strcmp(c, "transactional") == 0 ? 1 : 2;
}

/* How many connections (SMPP binds, SMTP or HTTP connections) the
 * provider's channel spreads its messages over. */
static double
connections(const struct config *c, const char *provider)
{
    const struct conf_provider *p = conf_provider_find(c, provider);

    if (!p)
        return 1;
    for (size_t k = 0; p->keys && p->keys[k].name; k++)
        if (strcmp(p->keys[k].name, "binds") == 0 ||
            strcmp(p->keys[k].name, "max_connections") == 0)
            return (double)conf_int(p, p->keys[k].name);
    return 1;
}

static int
rule_for(const struct config *c, const struct conf_throttle *t,
         struct bucket_rule *r)
{
    /* A per-connection limit: the channel spreads messages evenly over
     * its connections, so n of them together take n times the rate. */
    double n = strcmp(t->scope, "connection") == 0
               ? connections(c, t->provider) : 1;

    memset(r, 0, sizeof *r);
    r->rate = n * (double)t->rate / (double)t->per_s;
    r->burst = n * (double)t->burst;
    r->floor = n * (double)t->floor / (double)t->per_s;
    r->shared = t->shared;
    r->pinned = strcmp(t->scope, "global") == 0 ||
                strcmp(t->scope, "provider") == 0 ||
                strcmp(t->scope, "connection") == 0;
    return 0;
}

int
policy_init(struct gw *g)
{
    const struct config *c = g->conf;
    struct policy *p = calloc(1, sizeof *p);
    char err[200];
    int64_t now_us = gw_now_ms() * 1000;

    if (!p)
        return -1;
    p->rnd = (uint64_t)g_random_int() << 32 | g_random_int();
    if (c->window_set) {
        p->wins = calloc(c->nwindow ? c->nwindow : 1, sizeof *p->wins);
        for (size_t i = 0; i < c->nwindow; i++) {
            const struct conf_window *cw = &c->window[i];
            struct pwin *pw = &p->wins[p->nwins];
            size_t nd = cw->days ? g_strv_length(cw->days) : 0;

            window_init(&pw->w);
            if (window_set_hours(&pw->w, cw->start, cw->end, err,
                                 sizeof err) < 0 ||
                (nd && window_set_days(&pw->w, (const char *const *)cw->days,
                                       nd, err, sizeof err) < 0)) {
                log_error(&lg, "window[%zu]: %s", i, err);
                window_clear(&pw->w);
                continue;
            }
            for (char **h = cw->holidays; h && *h; h++)
                if (window_add_holiday(&pw->w, *h, err, sizeof err) < 0)
                    log_error(&lg, "window[%zu]: %s", i, err);
            pw->cls = class_index(cw->class);
            pw->channels = cw->channels ? cw->channels : (1u << CH_COUNT) - 1;
            p->nwins++;
        }
    } else {
        /* The default: marketing SMS and fax 08:00-21:00, every day. */
        p->wins = calloc(1, sizeof *p->wins);
        window_init(&p->wins[0].w);
        window_set_hours(&p->wins[0].w, "08:00", "21:00", err, sizeof err);
        p->wins[0].cls = 0;
        p->wins[0].channels = (1u << CH_SMS) | (1u << CH_FAX);
        p->nwins = 1;
    }
    if (c->default_zone && *c->default_zone)
        p->def_zone = window_zone(c->default_zone);
    for (char **z = c->zones; z && *z; z++) {
        GTimeZone *tz = window_zone(*z);
        if (!tz)
            continue;
        p->zones = realloc(p->zones, (p->nzones + 1) * sizeof *p->zones);
        p->zones[p->nzones++] = tz;
    }

    /* A provider's sender: its SMS source address, its From domain. */
    for (size_t i = 0; i < c->nprovider; i++) {
        const struct conf_provider *cp = &c->provider[i];
        const char *s = NULL;
        for (size_t k = 0; cp->keys && cp->keys[k].name; k++) {
            if (strcmp(cp->keys[k].name, "source_addr") == 0 ||
                strcmp(cp->keys[k].name, "from") == 0)
                s = conf_str(cp, cp->keys[k].name);
        }
        if (s && strchr(s, '@')) {
            const char *at = strrchr(s, '@') + 1;
            p->sender[i] = g_ascii_strdown(at, (gssize)strcspn(at, ">"));
        } else if (s) {
            p->sender[i] = g_strdup(s);
        }
    }
    p->thr = throttle_new(MAX_DYNAMIC_BUCKETS);
    /* Global and provider buckets exist from the start (pinned); sender
     * and domain buckets are made per key on first use. */
    for (size_t i = 0; i < c->nthrottle; i++) {
        const struct conf_throttle *t = &c->throttle[i];
        struct bucket_rule r;
        char name[THROTTLE_NAME_MAX];
        struct bucket *b;

        rule_for(c, t, &r);
        if (!r.pinned)
            continue;
        if (strcmp(t->scope, "global") == 0)
            snprintf(name, sizeof name, "global");
        else
            snprintf(name, sizeof name, "%s:%s", t->scope, t->provider);
        if ((b = throttle_get(p->thr, name, &r, now_us)) == NULL)
            continue;
        if (t->shared) {
            struct lease *l;
            p->leases = realloc(p->leases, (p->nleases + 1) *
                                sizeof *p->leases);
            l = &p->leases[p->nleases++];
            memset(l, 0, sizeof *l);
            l->b = b;
            l->key = g_strdup_printf("%sthrottle:%s", g->k.prefix, name);
            l->rate = r.rate;
            l->burst = r.burst > 0 ? r.burst : (r.rate / 10 > 1 ? r.rate / 10
                                                                : 1);
            l->g = g;
        }
    }
    g->pol = p;
    return 0;
}

void
policy_free(struct gw *g)
{
    struct policy *p = g->pol;

    if (!p)
        return;
    for (size_t i = 0; i < p->nwins; i++)
        window_clear(&p->wins[i].w);
    free(p->wins);
    if (p->def_zone)
        g_time_zone_unref(p->def_zone);
    for (size_t i = 0; i < p->nzones; i++)
        g_time_zone_unref(p->zones[i]);
    free(p->zones);
    window_zone_cache_clear();
    throttle_free(p->thr);
    for (size_t i = 0; i < p->nleases; i++)
        g_free(p->leases[i].key);
    for (size_t i = 0; i < CONF_MAX_PROVIDERS; i++)
        g_free(p->sender[i]);
    free(p->leases);
    free(p);
    g->pol = NULL;
}

/* Parse a campaign window {"start","end"} (checked at intake). */
static int
campaign_window(const json_t *cw, struct window *w)
{
    char err[120];

    window_init(w);
    if (!cw || !json_is_object(cw))
        return 0;
    if (window_set_hours(w, json_string_value(json_object_get(cw, "start")),
                         json_string_value(json_object_get(cw, "end")), err,
                         sizeof err) < 0) {
        window_clear(w);
        return 0;
    }
    return 1;
}

int64_t
policy_window(struct gw *g, enum gw_channel ch, const char *class,
              const char *tz, const json_t *cwin, int64_t now_ms)
{
    struct policy *p = g->pol;
    const struct window *ws[CONF_MAX_RULES + 1];
    struct window camp;
    size_t n = 0;
    int cls = class_index(class);
    GTimeZone *zone = NULL, *own = NULL;
    int64_t now = now_ms / 1000, t;

    for (size_t i = 0; i < p->nwins; i++)
        if ((p->wins[i].channels & (1u << ch)) &&
            (p->wins[i].cls == 2 || p->wins[i].cls == cls))
            ws[n++] = &p->wins[i].w;
    if (campaign_window(cwin, &camp))
        ws[n++] = &camp;
    if (n == 0)
        return 0;
    if (tz && *tz)
        zone = own = window_zone(tz);
    if (!zone)
        zone = p->def_zone;
    if (zone) {
        t = window_next_open_all(ws, n, zone, now);
    } else if (p->nzones) {
        /* Unknown zone, no default: open only when open everywhere. */
        t = now;
        for (int round = 0; round < 32; round++) {
            int64_t start = t;
            for (size_t i = 0; i < n && t >= 0; i++)
                t = window_next_open_zones(ws[i], p->zones, p->nzones, t);
            if (t < 0 || t == start)
                break;
        }
    } else {
        GTimeZone *utc = g_time_zone_new_utc();
        t = window_next_open_all(ws, n, utc, now);
        g_time_zone_unref(utc);
    }
    if (ws[n - 1] == &camp)
        window_clear(&camp);
    if (own)
        g_time_zone_unref(own);
    if (t < 0)
        return -1;
    return t <= now ? 0 : t * 1000;
}

const char *
provider_sender(struct gw *g, const char *provider)
{
    const struct config *c = g->conf;

    for (size_t i = 0; i < c->nprovider; i++)
        if (strcmp(c->provider[i].name, provider) == 0)
            return g->pol->sender[i];
    return NULL;
}

/* The bucket of a sender or domain rule, made on first use. */
static struct bucket *
keyed_bucket(const struct config *c, struct policy *p,
             const struct conf_throttle *t, const char *key, int64_t now_us)
{
    struct bucket_rule r;
    char name[THROTTLE_NAME_MAX];

    if (!key || !*key)
        return NULL;
    if (*t->match && g_ascii_strcasecmp(t->match, key) != 0)
        return NULL;
    rule_for(c, t, &r);
    r.shared = 0;       /* per-key buckets are local */
    snprintf(name, sizeof name, "%s:%s:%s", t->scope, t->provider, key);
    return throttle_get(p->thr, name, &r, now_us);
}

void
policy_path(struct gw *g, const char *provider, const char *sender,
            const char *domain, struct throttle_path *path, int64_t now_us)
{
    const struct config *c = g->conf;
    struct policy *p = g->pol;
    char name[THROTTLE_NAME_MAX];

    throttle_path_init(path);
    for (size_t i = 0; i < c->nthrottle; i++) {
        const struct conf_throttle *t = &c->throttle[i];
        struct bucket_rule r;
        struct bucket *b = NULL;

        if (strcmp(t->scope, "global") == 0) {
            rule_for(c, t, &r);
            b = throttle_get(p->thr, "global", &r, now_us);
        } else if (strcmp(t->provider, provider) != 0) {
            continue;
        } else if (strcmp(t->scope, "provider") == 0 ||
                   strcmp(t->scope, "connection") == 0) {
            rule_for(c, t, &r);
            snprintf(name, sizeof name, "%s:%s", t->scope, provider);
            b = throttle_get(p->thr, name, &r, now_us);
        } else if (strcmp(t->scope, "sender") == 0) {
            b = keyed_bucket(c, p, t, sender, now_us);
        } else {
            b = keyed_bucket(c, p, t, domain, now_us);
        }
        if (b)
            throttle_path_add(path, b);
    }
}

void
policy_signal(struct gw *g, const char *provider)
{
    static const char *const scopes[] = { "provider", "connection" };
    char name[THROTTLE_NAME_MAX];
    struct bucket *b;

    for (size_t i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "%s:%s", scopes[i], provider);
        if ((b = throttle_get(g->pol->thr, name, NULL, gw_now_ms() * 1000)))
            if (bucket_signal(b, gw_now_ms() * 1000))
                log_info(&lg, "%s asks us to slow down: %.1f msg/s", name,
                         bucket_rate(b));
    }
}

void
policy_sweep(struct gw *g)
{
    throttle_sweep(g->pol->thr, gw_now_ms() * 1000);
}

int64_t
policy_retry_due(struct gw *g, enum gw_channel ch, int attempt,
                 int64_t retry_after_ms, int64_t deadline_ms, int *expired)
{
    const struct conf_channel *cc = &g->conf->channel[ch];
    struct backoff_conf bc = { cc->retry_base_ms, 2.0, cc->retry_max_ms,
                               BACKOFF_JITTER_EQUAL };

    *expired = 0;
    if (attempt >= cc->max_attempts)
        return 0;
    return backoff_next_due(&bc, attempt, gw_now_ms(), retry_after_ms,
                            deadline_ms, backoff_rand(&g->pol->rnd), expired);
}

/* Frequency cap rules for a message of class on channel ch, as lines of
 * "name \t max \t window_ms \t scope \t class" for the begin script
 * (scope: "all" or a channel name; class: the rule's class). */
void
policy_freq_rules(struct gw *g, enum gw_channel ch, const char *class,
                  struct buf *out)
{
    const struct config *c = g->conf;
    int cls = class_index(class);

    buf_reset(out);
    for (size_t i = 0; i < c->nfreq; i++) {
        const struct conf_freq *f = &c->freq[i];
        int fc = class_index(f->class);
        const char *scope = f->channel;

        if (fc != 2 && fc != cls)
            continue;   /* transactional is exempt unless a rule says so */
        if (strcmp(scope, "each") == 0)
            scope = gw_channel_name(ch);
        else if (strcmp(scope, "all") != 0 &&
                 gw_channel_parse(scope) != (int)ch)
            continue;
        buf_printf(out, "%s\t%lld\t%lld\t%s\t%s\n", f->name,
                   (long long)f->max, (long long)f->window_s * 1000, scope,
                   fc == 2 ? "all" : f->class);
    }
}

/* ---- shared buckets: GCRA leases from Redis ---- */

static void
on_lease(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct lease *l = arg;
    int64_t now = gw_now_ms();

    (void)r;
    l->asking = 0;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 2) {
        if (rep && rep->type == REDIS_REPLY_ERROR)
            log_error(&lg, "lease %s: %s", l->key, rep->str);
        l->next_ms = now + 1000;
        return;
    }
    if (rep->element[0]->integer > 0)
        bucket_grant(l->b, (unsigned)rep->element[0]->integer, now * 1000);
    else
        l->next_ms = now + (rep->element[1]->integer > 0
                            ? rep->element[1]->integer : LEASE_RETRY_MS);
}

void
policy_leases(struct gw *g)
{
    struct policy *p = g->pol;
    int64_t now = gw_now_ms();

    for (size_t i = 0; i < p->nleases; i++) {
        struct lease *l = &p->leases[i];
        unsigned want = bucket_want(l->b);
        char n[24], rate[40], burst[40];

        if (l->asking || want == 0 || now < l->next_ms ||
            !gw_redis_is_up(g->cmd))
            continue;
        snprintf(n, sizeof n, "%u", want);
        /* the current (adaptive) rate, so a throttled provider slows every
         * process that leases from this one */
        snprintf(rate, sizeof rate, "%.6f", bucket_rate(l->b));
        snprintf(burst, sizeof burst, "%.6f", l->burst);
        const char *argv[] = { l->key, rate, burst, n };
        if (gw_redis_eval(g->cmd, &gw_scripts.gcra, on_lease, l, 1, 4, argv,
                          NULL) == 0)
            l->asking = 1;
    }
}

static void
stat_line(void *arg, const struct throttle_stat *st)
{
    struct buf *b = arg;

    buf_printf(b, "gw_throttle_rate{bucket=\"%s\"} %.3f\n", st->name,
               st->rate);
}

static void
stat_conf(void *arg, const struct throttle_stat *st)
{
    struct buf *b = arg;

    buf_printf(b, "gw_throttle_configured_rate{bucket=\"%s\"} %.3f\n",
               st->name, st->conf_rate);
}

static void
stat_signals(void *arg, const struct throttle_stat *st)
{
    struct buf *b = arg;

    buf_printf(b, "gw_throttle_signals_total{bucket=\"%s\"} %llu\n",
               st->name, (unsigned long long)st->signals);
}

void
policy_metrics(struct gw *g, struct buf *b)
{
    int64_t now = gw_now_ms() * 1000;

    if (!g->pol)
        return;
    buf_printf(b, "# HELP gw_throttle_rate Current rate of a token bucket "
               "(messages/s), lowered by provider throttle signals.\n"
               "# TYPE gw_throttle_rate gauge\n");
    throttle_foreach(g->pol->thr, now, stat_line, b);
    buf_printf(b, "# HELP gw_throttle_configured_rate Configured rate of a "
               "token bucket (messages/s).\n"
               "# TYPE gw_throttle_configured_rate gauge\n");
    throttle_foreach(g->pol->thr, now, stat_conf, b);
    buf_printf(b, "# HELP gw_throttle_signals_total Throttle signals from "
               "the provider (SMTP 421/451/452, SMPP 0x58/0x14, HTTP 429).\n"
               "# TYPE gw_throttle_signals_total counter\n");
    throttle_foreach(g->pol->thr, now, stat_signals, b);
}

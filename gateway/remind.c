/*
 * remind.c -- customers and reminder rules. A `customer` job upserts the
 * CRM's contact data and date fields (cust:<id>, with contact indexes for
 * matching inbound faxes and MO messages), and schedules each [[reminder]]
 * rule's next firing for that customer in the remind zset. A timer leases
 * due reminders (one process fires each), makes their messages under a
 * key that holds the period -- "<rule>:<customer>:<channel>:<period>" --
 * so each (rule, customer, period) is sent once across restarts and
 * processes, and schedules the next period. The date maths is the
 * scheduler's (scheduler/remind.c).
 */
#include "gw.h"

#include "../common/err.h"
#include "../scheduler/remind.h"
#include "../scheduler/window.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct log_ctx lg = { "remind", NULL };

#define GRACE_S     86400       /* a reminder missed by less still fires */
#define DUE_BATCH   100
#define LEASE_MS    60000

struct reminders {
    struct remind_rule rule[CONF_MAX_RULES];
    int          ok[CONF_MAX_RULES];
    uv_timer_t   timer;
    int          asking;
};

static GTimeZone *
customer_zone(struct gw *g, const json_t *c)
{
    const char *tz = json_string_value(json_object_get(c, "tz"));
    GTimeZone *z = tz ? window_zone(tz) : NULL;

    if (!z && g->conf->default_zone && *g->conf->default_zone)
        z = window_zone(g->conf->default_zone);
    return z ? z : g_time_zone_new_utc();
}

/* The next firing of rule i for customer c strictly after the period
 * `after` (NULL: the first one due). 1, 0 (none) or < 0. */
static int
next_firing(struct gw *g, size_t i, const json_t *c, int64_t now_s,
            const char *after, int64_t *fire_ms, char *period)
{
    const struct conf_reminder *cr = &g->conf->reminder[i];
    const char *date = json_string_value(json_object_get(
        json_object_get(c, "dates"), cr->field));
    GTimeZone *tz;
    char err[160];
    int64_t at = 0, t = now_s;
    int rc = 0;

    if (!date || !g->rm->ok[i])
        return 0;
    tz = customer_zone(g, c);
    for (int k = 0; k < 4; k++) {
        rc = remind_next(&g->rm->rule[i], date, tz, t, &at, period,
                         REMIND_PERIOD_MAX, err, sizeof err);
        if (rc <= 0 || !after || strcmp(period, after) != 0)
            break;
        /* the same period again (within the grace): the one after it */
        t = at + GRACE_S + 1;
        rc = 0;
    }
    g_time_zone_unref(tz);
    if (rc < 0)
        log_warn(&lg, "reminder %s: %s", cr->name, err);
    *fire_ms = at * 1000;
    return rc;
}

int
remind_init(struct gw *g)
{
    struct reminders *rm = calloc(1, sizeof *rm);
    char err[160];

    if (!rm)
        return -1;
    for (size_t i = 0; i < g->conf->nreminder; i++) {
        const struct conf_reminder *cr = &g->conf->reminder[i];
        struct remind_rule *r = &rm->rule[i];

        remind_rule_init(r);
        r->grace_s = GRACE_S;
        r->after_days = (int)cr->after_days;
        if (remind_parse_kind(cr->kind, &r->kind, err, sizeof err) < 0 ||
            remind_parse_days(cr->offset, &r->offset_days, err,
                              sizeof err) < 0 ||
            remind_parse_time(cr->at, &r->send_min, err, sizeof err) < 0) {
            log_error(&lg, "reminder %s: %s (rule disabled)", cr->name, err);
            continue;
        }
        rm->ok[i] = 1;
    }
    uv_timer_init(g->loop, &rm->timer);
    rm->timer.data = g;
    g->rm = rm;
    return 0;
}

static void on_timer(uv_timer_t *t);

void
remind_start(struct gw *g)
{
    if (g->rm && g->conf->nreminder)
        uv_timer_start(&g->rm->timer, on_timer, 1000, 1000);
}

void
remind_close(struct gw *g)
{
    if (g->rm) {
        uv_timer_stop(&g->rm->timer);
        uv_close((uv_handle_t *)&g->rm->timer, NULL);
    }
}

void
remind_free(struct gw *g)
{
    free(g->rm);
    g->rm = NULL;
}

/* ---- customer upserts ---- */

static void
on_customer(struct ops *o, redisReply *rep)
{
    (void)rep;
    stream_done(o->arg);
}

void
customer_job(struct gw *g, struct job *j, struct entry *e)
{
    const json_t *c = j->recipient;
    const char *cid = json_string_value(json_object_get(c, "customer_id"));
    static const char *const contact[] = { "email", "phone", "fax" };
    char *doc = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
    int64_t now_s = gw_now_ms() / 1000;
    struct ops *o;

    if (!doc)
        fatal("out of memory");
    o = ops_new(g, &gw_scripts.customer, on_customer, e);
    ops_key(o, g->k.jobs);
    ops_key(o, g->k.events);
    ops_key(o, g->k.remind);
    ops_head(o);
    ops_arg(o, GW_GROUP);
    ops_arg(o, e->id);
    ops_arg(o, cid);
    ops_arg(o, doc);
    for (size_t i = 0; i < 3; i++) {
        const char *v = json_string_value(json_object_get(c, contact[i]));
        char *low = g_ascii_strdown(v ? v : "", -1);
        ops_arg(o, low);
        g_free(low);
    }
    ops_argi(o, (int64_t)g->conf->nreminder);
    for (size_t i = 0; i < g->conf->nreminder; i++) {
        char period[REMIND_PERIOD_MAX] = "";
        int64_t fire = 0;

        ops_arg(o, g->conf->reminder[i].name);
        if (next_firing(g, i, c, now_s, NULL, &fire, period) == 1) {
            ops_argi(o, fire);
            ops_arg(o, period);
        } else {
            ops_arg(o, "");
            ops_arg(o, "");
        }
    }
    ops_run(o);
    free(doc);
    job_free(j);
}

/* ---- firing ---- */

static const struct conf_reminder *
rule_named(struct gw *g, const char *name, size_t *idx)
{
    for (size_t i = 0; i < g->conf->nreminder; i++)
        if (strcmp(g->conf->reminder[i].name, name) == 0) {
            *idx = i;
            return &g->conf->reminder[i];
        }
    return NULL;
}

static const char *
provider_for(struct gw *g, const struct conf_reminder *cr, int ch)
{
    const struct conf_provider *p;

    if (cr->provider && (p = conf_provider_find(g->conf, cr->provider)) &&
        (p->channels & (1u << ch)))
        return p->name;
    return g->conf->channel[ch].provider;
}

static void
on_fired(struct ops *o, redisReply *rep)
{
    (void)o;
    if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer > 0)
        log_debug(&lg, "reminder fired: %lld messages",
                  (long long)rep->integer);
}

/* One due reminder: its messages and its next firing, in one script. */
static void
fire(struct gw *g, const char *member, const char *docs, const char *period)
{
    static const char *const contact[] = { "email", "phone", "fax" };
    char rule[128], *cust;
    const char *bar = strchr(member, '|');
    const struct conf_reminder *cr;
    json_t *c, *r;
    size_t idx = 0;
    char next_period[REMIND_PERIOD_MAX] = "";
    int64_t next = 0, now = gw_now_ms();
    struct ops *o;
    GPtrArray *keys = g_ptr_array_new_with_free_func(g_free);
    GPtrArray *args = g_ptr_array_new_with_free_func(g_free);

    if (!bar || (size_t)(bar - member) >= sizeof rule)
        goto out;
    memcpy(rule, member, (size_t)(bar - member));
    rule[bar - member] = 0;
    cust = (char *)bar + 1;
    c = json_loads(docs, 0, NULL);
    cr = rule_named(g, rule, &idx);
    if (cr && c && next_firing(g, idx, c, now / 1000, period, &next,
                               next_period) != 1)
        next = 0;
    r = c ? json_deep_copy(c) : NULL;
    if (r)
        json_object_del(r, "dates");
    for (int ch = 0; cr && r && ch < CH_COUNT; ch++) {
        const char *to = json_string_value(json_object_get(r, contact[ch]));
        const char *prov = provider_for(g, cr, ch);
        json_t *p;
        char *key, *payload;

        if (!(cr->channels & (1u << ch)))
            continue;
        if (!to || !prov) {
            log_info(&lg, "reminder %s for %s: no %s%s; channel skipped",
                     rule, cust, !to ? contact[ch] : "provider for ",
                     !to ? "" : gw_channel_name((enum gw_channel)ch));
            continue;
        }
        key = g_strdup_printf("%s:%s:%s:%s", rule, cust,
                              gw_channel_name((enum gw_channel)ch), period);
        p = json_object();
        json_object_set_new(p, "key", json_string(key));
        json_object_set_new(p, "customer", json_string(cust));
        json_object_set_new(p, "template", json_string(cr->template));
        json_object_set_new(p, "provider", json_string(prov));
        json_object_set_new(p, "class", json_string(cr->class));
        json_object_set_new(p, "reminder", json_string(rule));
        if (g->conf->channel[ch].ttl_s)
            json_object_set_new(p, "expires", json_integer(
                now + g->conf->channel[ch].ttl_s * 1000));
        json_object_set(p, "recipient", r);
        payload = json_dumps(p, JSON_COMPACT);
        json_decref(p);
        g_ptr_array_add(keys, g_strdup_printf("%smsg:%s", g->k.prefix, key));
        g_ptr_array_add(keys, g_strdup(g->k.q[ch]));
        g_ptr_array_add(args, key);
        g_ptr_array_add(args, g_strdup(gw_channel_name((enum gw_channel)ch)));
        g_ptr_array_add(args, g_strdup(prov));
        g_ptr_array_add(args, g_strdup(payload));
        free(payload);
    }
    if (!cr)
        log_warn(&lg, "reminder rule '%s' is no longer configured; %s "
                 "dropped", rule, member);
    o = ops_new(g, &gw_scripts.remind_fire, on_fired, NULL);
    ops_key(o, g->k.events);
    ops_key(o, g->k.remind);
    for (size_t i = 0; i < keys->len; i++)
        ops_key(o, keys->pdata[i]);
    ops_head(o);
    ops_arg(o, member);
    ops_arg(o, period);
    if (next)
        ops_argi(o, next);
    else
        ops_arg(o, "");
    ops_arg(o, next_period);
    ops_arg(o, cust);
    ops_argi(o, (int64_t)keys->len / 2);
    for (size_t i = 0; i < args->len; i++)
        ops_arg(o, args->pdata[i]);
    ops_run(o);
    json_decref(c);
    json_decref(r);
out:
    g_ptr_array_free(keys, TRUE);
    g_ptr_array_free(args, TRUE);
}

static void
on_due(struct ops *o, redisReply *rep)
{
    struct gw *g = o->g;

    g->rm->asking = 0;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || g->stopping)
        return;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        if (e->type == REDIS_REPLY_ARRAY && e->elements == 3 &&
            e->element[0]->type == REDIS_REPLY_STRING)
            fire(g, e->element[0]->str,
                 e->element[1]->type == REDIS_REPLY_STRING
                 ? e->element[1]->str : "",
                 e->element[2]->type == REDIS_REPLY_STRING
                 ? e->element[2]->str : "");
    }
}

static void
on_timer(uv_timer_t *t)
{
    struct gw *g = t->data;
    struct ops *o;

    if (g->rm->asking || g->stopping || !gw_redis_is_up(g->cmd))
        return;
    g->rm->asking = 1;
    o = ops_new(g, &gw_scripts.remind_due, on_due, NULL);
    ops_key(o, g->k.remind);
    ops_head(o);
    ops_argi(o, DUE_BATCH);
    ops_argi(o, LEASE_MS);
    ops_run(o);
}

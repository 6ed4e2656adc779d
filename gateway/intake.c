/*
 * intake.c -- reading the streams through the consumer group. On every
 * (re)connect it creates the groups (MKSTREAM), re-reads this consumer's
 * own pending entries, then switches to new ones with a blocking
 * XREADGROUP on its own connection; a timer takes over entries idle past
 * claim_idle from dead consumers (XAUTOCLAIM). An entry delivered more
 * than max_deliveries times is dead-lettered. Jobs from gw:jobs are
 * handled here; queue entries go to dispatch.c.
 */
#include "gw.h"

#include "../common/err.h"
#include "../templates/template.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct log_ctx lg = { "intake", NULL };

static void read_recovery(struct stream *s);
static void on_setup_retry(uv_timer_t *t);
static void jobs_handler(struct gw *g, struct entry **es, size_t n);

void
entry_free(struct entry *e)
{
    if (!e)
        return;
    free(e->id);
    free(e->payload);
    free(e);
}

void
stream_done(struct entry *e)
{
    struct stream *s = e->s;

    g_hash_table_remove(s->ids, e->id);
    s->inflight--;
    entry_free(e);
    intake_kick(s->g);
}

static void
on_ack(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct entry *e = arg;

    (void)r;
    (void)rep;  /* lost: the entry stays pending and is re-read later */
    stream_done(e);
}

void
entry_ack(struct gw *g, struct entry *e)
{
    const char *argv[] = { "XACK", e->s->key, GW_GROUP, e->id };
    const char *argv2[] = { "XDEL", e->s->key, e->id };

    /* Pipelined: the XDEL reply tells us both have been applied. */
    if (gw_redis_cmd(g->cmd, NULL, NULL, 0, 4, argv, NULL) < 0 ||
        gw_redis_cmd(g->cmd, on_ack, e, 0, 3, argv2, NULL) < 0)
        stream_done(e);         /* still pending: re-read after reconnect */
}

static void
on_dead(struct ops *o, redisReply *rep)
{
    struct entry *e = o->arg;

    (void)rep;
    stream_done(e);
}

void
dead_letter(struct gw *g, struct entry *e, enum dead_class cls,
            const char *reason)
{
    struct ops *o = ops_new(g, &gw_scripts.dead, on_dead, e);

    log_warn(&lg, "dead letter %s %s: %s", e->s->key, e->id, reason);
    g->m.jobs_dead[cls]++;
    ops_key(o, e->s->key);
    ops_key(o, g->k.dead);
    ops_key(o, g->k.events);
    ops_head(o);
    ops_arg(o, GW_GROUP);
    ops_argi(o, 1);
    ops_arg(o, e->id);
    ops_arg(o, dead_class_name(cls));
    ops_arg(o, reason);
    if (e->payload)
        ops_argn(o, e->payload, e->len);
    else
        ops_arg(o, "");
    ops_run(o);
}

/* Copy one [id, [field, value, ...]] reply into a new entry. */
static struct entry *
entry_from_reply(struct stream *s, const redisReply *r)
{
    struct entry *e;
    const redisReply *f;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return NULL;
    if ((e = calloc(1, sizeof *e)) == NULL)
        fatal("out of memory");
    e->s = s;
    e->deliveries = 1;
    if ((e->id = strdup(r->element[0]->str)) == NULL)
        fatal("out of memory");
    f = r->element[1];
    if (f->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i + 1 < f->elements; i += 2)
            if (f->element[i]->type == REDIS_REPLY_STRING &&
                strcmp(f->element[i]->str, s->field) == 0 &&
                f->element[i + 1]->type == REDIS_REPLY_STRING) {
                e->len = f->element[i + 1]->len;
                if ((e->payload = malloc(e->len + 1)) == NULL)
                    fatal("out of memory");
                memcpy(e->payload, f->element[i + 1]->str, e->len);
                e->payload[e->len] = 0;
                break;
            }
    return e;
}

/* Hand entries to the stream's handler, skipping ids already in flight
 * here and dead-lettering those delivered too often. */
static void
deliver(struct stream *s, struct entry **es, size_t n)
{
    struct gw *g = s->g;
    size_t k = 0;
    char reason[160];

    for (size_t i = 0; i < n; i++) {
        struct entry *e = es[i];

        if (g_hash_table_contains(s->ids, e->id)) {
            entry_free(e);
            continue;
        }
        g_hash_table_add(s->ids, g_strdup(e->id));
        s->inflight++;
        if (e->deliveries > (unsigned)g->conf->max_deliveries &&
            s == &g->streams[S_JOBS]) {
            snprintf(reason, sizeof reason, "delivered %u times without an "
                     "outcome (max_deliveries = %lld)", e->deliveries,
                     (long long)g->conf->max_deliveries);
            dead_letter(g, e, DEAD_DELIVERIES, reason);
            continue;
        }
        es[k++] = e;
    }
    if (k)
        s->handler(g, es, k);
}

/* Entries that were read before (recovery, claims) carry their delivery
 * counts in XPENDING: look them up, then deliver. */
struct counted {
    struct stream *s;
    struct entry **es;
    size_t         n;
    void         (*then)(struct stream *s);
};

static void
on_pending(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct counted *c = arg;

    (void)r;
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        /* No counts: drop our copies; the entries stay pending. */
        for (size_t i = 0; i < c->n; i++)
            entry_free(c->es[i]);
        if (!rep)
            c->s->recovering = c->s->claiming = 0;
        goto out;
    }
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *p = rep->element[i];
        if (p->type != REDIS_REPLY_ARRAY || p->elements < 4)
            continue;
        for (size_t j = 0; j < c->n; j++)
            if (strcmp(c->es[j]->id, p->element[0]->str) == 0)
                c->es[j]->deliveries = (unsigned)p->element[3]->integer;
    }
    deliver(c->s, c->es, c->n);
    if (c->then)
        c->then(c->s);
out:
    free(c->es);
    free(c);
}

static void
with_counts(struct stream *s, struct entry **es, size_t n,
            void (*then)(struct stream *s))
{
    struct gw *g = s->g;
    struct counted *c = calloc(1, sizeof *c);
    char count[24];

    if (!c)
        fatal("out of memory");
    c->s = s;
    c->es = es;
    c->n = n;
    c->then = then;
    snprintf(count, sizeof count, "%zu", n + s->max_inflight);
    const char *argv[] = { "XPENDING", s->key, GW_GROUP, es[0]->id,
                           es[n - 1]->id, count, g->conf->consumer };
    if (gw_redis_cmd(g->cmd, on_pending, c, 0, 7, argv, NULL) < 0) {
        for (size_t i = 0; i < n; i++)
            entry_free(es[i]);
        free(es);
        free(c);
        s->recovering = s->claiming = 0;
    }
}

static struct entry **
entries_from(struct stream *s, const redisReply *list, size_t *n)
{
    struct entry **es;

    *n = 0;
    if (!list || list->type != REDIS_REPLY_ARRAY || list->elements == 0)
        return NULL;
    if ((es = calloc(list->elements, sizeof *es)) == NULL)
        fatal("out of memory");
    for (size_t i = 0; i < list->elements; i++) {
        struct entry *e = entry_from_reply(s, list->element[i]);
        if (e)
            es[(*n)++] = e;
    }
    if (*n == 0) {
        free(es);
        return NULL;
    }
    return es;
}

static void
recovery_next(struct stream *s)
{
    s->recovering = 0;
    read_recovery(s);
}

static void
on_recovery(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct stream *s = arg;
    struct entry **es;
    size_t n;

    (void)r;
    if (!rep) {
        s->recovering = 0;      /* down: the next up starts over */
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        log_warn(&lg, "recovery read %s: %s; setting up again", s->key,
                 rep->str);
        s->recovering = 0;
        uv_timer_start(&s->g->setup_timer, on_setup_retry, 500, 0);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0 ||
        rep->element[0]->type != REDIS_REPLY_ARRAY ||
        rep->element[0]->elements < 2) {
        s->recovering = 0;      /* nothing pending for us */
        s->live = 1;
        intake_kick(s->g);
        return;
    }
    /* [[key, [entries]]] */
    es = entries_from(s, rep->element[0]->element[1], &n);
    if (!es) {
        s->recovering = 0;
        s->live = 1;
        log_info(&lg, "%s: own pending entries re-read; reading new ones",
                 s->key);
        intake_kick(s->g);
        return;
    }
    free(s->cursor);
    s->cursor = strdup(es[n - 1]->id);
    log_info(&lg, "%s: re-reading %zu pending entries", s->key, n);
    with_counts(s, es, n, recovery_next);
}

static void
read_recovery(struct stream *s)
{
    struct gw *g = s->g;
    char count[24];
    unsigned room;

    if (s->live || s->recovering || !g->groups_ready || g->stopping)
        return;
    room = s->max_inflight > s->inflight ? s->max_inflight - s->inflight : 0;
    if (room == 0)
        return;                 /* stream_done kicks us again */
    snprintf(count, sizeof count, "%u", room < s->batch ? room : s->batch);
    const char *argv[] = { "XREADGROUP", "GROUP", GW_GROUP, g->conf->consumer,
                           "COUNT", count, "STREAMS", s->key, s->cursor };
    if (gw_redis_cmd(g->cmd, on_recovery, s, 0, 9, argv, NULL) == 0)
        s->recovering = 1;
}

static void
on_live(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct gw *g = arg;

    (void)r;
    g->reading = 0;
    if (!rep)
        return;                 /* blk went down; kicked again when up */
    if (rep->type == REDIS_REPLY_ERROR) {
        log_warn(&lg, "XREADGROUP: %s", rep->str);
        if (gw_reply_is_error(rep, "NOGROUP"))
            /* Redis lost its data (restart without persistence): set up
             * again from the start. */
            intake_redis_state(g);
        return;
    }
    if (rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < rep->elements; i++) {
            const redisReply *sr = rep->element[i];
            struct stream *s = NULL;
            struct entry **es;
            size_t n;

            if (sr->type != REDIS_REPLY_ARRAY || sr->elements < 2)
                continue;
            for (int k = 0; k < S_COUNT; k++)
                if (strcmp(g->streams[k].key, sr->element[0]->str) == 0)
                    s = &g->streams[k];
            if (!s || (es = entries_from(s, sr->element[1], &n)) == NULL)
                continue;
            deliver(s, es, n);
            free(es);
        }
    }
    intake_kick(g);
}

/* Issue the blocking read for every live stream that has room. */
static void
read_live(struct gw *g)
{
    const char *argv[9 + 2 * S_COUNT];
    char count[24], block[24];
    unsigned c = (unsigned)-1;
    int argc = 0, ns = 0;
    const char *keys[S_COUNT];

    if (g->reading || !g->groups_ready || g->stopping ||
        !gw_redis_is_up(g->blk))
        return;
    for (int k = 0; k < S_COUNT; k++) {
        struct stream *s = &g->streams[k];
        /* a batch, but never more than half the cap (batch > cap would
         * only read when idle) */
        unsigned want = s->batch < s->max_inflight / 2 ? s->batch
                                                        : s->max_inflight / 2;
        unsigned room;

        if (want == 0)
            want = 1;
        if (!s->live)
            continue;
        if (k != S_JOBS && dispatch_inflight(g) + want >
                               (unsigned)g->conf->max_inflight &&
            dispatch_inflight(g) > 0)
            /* Dispatch is full. No blocking read now, not even for
             * gw:jobs alone: it would hold the connection for block_ms
             * while room frees up. Finishing messages kick us again. */
            return;
        if (k == S_JOBS && expander_busy(g))
            continue;           /* one expansion at a time per process */
        room = s->max_inflight > s->inflight ? s->max_inflight - s->inflight
                                             : 0;
        /* Wait until a whole batch fits rather than reading the few free
         * slots one round trip at a time. */
        if (room == 0 || (room < want && s->inflight > 0)) {
            if (k != S_JOBS)
                return;         /* as above: do not block on the rest */
            continue;
        }
        if (room < c)
            c = room;
        keys[ns++] = s->key;
    }
    if (ns == 0)
        return;
    if (c > g->streams[S_EMAIL].batch)
        c = g->streams[S_EMAIL].batch;
    snprintf(count, sizeof count, "%u", c);
    snprintf(block, sizeof block, "%lld", (long long)g->conf->block_ms);
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = GW_GROUP;
    argv[argc++] = g->conf->consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = count;
    argv[argc++] = "BLOCK";
    argv[argc++] = block;
    argv[argc++] = "STREAMS";
    for (int i = 0; i < ns; i++)
        argv[argc++] = keys[i];
    for (int i = 0; i < ns; i++)
        argv[argc++] = ">";
    if (gw_redis_cmd(g->blk, on_live, g, (uint64_t)g->conf->block_ms, argc,
                     argv, NULL) == 0)
        g->reading = 1;
}

void
intake_kick(struct gw *g)
{
    for (int k = 0; k < S_COUNT; k++)
        read_recovery(&g->streams[k]);
    read_live(g);
}

static void
on_claim(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct stream *s = arg;
    struct entry **es;
    size_t n;

    (void)r;
    s->claiming = 0;
    /* Redis 7: [next-id, [entries], [deleted ids]] */
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 2)
        return;
    if ((es = entries_from(s, rep->element[1], &n)) == NULL)
        return;
    log_info(&lg, "%s: claimed %zu entries idle for more than %lld ms",
             s->key, n, (long long)s->g->conf->claim_idle_ms);
    s->claiming = 1;
    with_counts(s, es, n, NULL);
    s->claiming = 0;
}

static void
on_claim_timer(uv_timer_t *t)
{
    struct gw *g = t->data;
    char idle[24], count[24];

    if (!g->groups_ready || g->stopping)
        return;
    expander_heartbeat(g);
    snprintf(idle, sizeof idle, "%lld", (long long)g->conf->claim_idle_ms);
    for (int k = 0; k < S_COUNT; k++) {
        struct stream *s = &g->streams[k];
        unsigned room = s->max_inflight > s->inflight
                        ? s->max_inflight - s->inflight : 0;

        if (!s->live || s->claiming || room == 0)
            continue;
        snprintf(count, sizeof count, "%u", room < s->batch ? room : s->batch);
        const char *argv[] = { "XAUTOCLAIM", s->key, GW_GROUP,
                               g->conf->consumer, idle, "0-0", "COUNT",
                               count };
        if (gw_redis_cmd(g->cmd, on_claim, s, 0, 8, argv, NULL) == 0)
            s->claiming = 1;
    }
}

static void
on_setup_retry(uv_timer_t *t)
{
    intake_redis_state(t->data);
}

static void
on_group(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct stream *s = arg;
    struct gw *g = s->g;

    (void)r;
    if (!rep)
        return;                 /* down again: the next up starts over */
    if (rep->type == REDIS_REPLY_ERROR && !gw_reply_is_error(rep,
                                                             "BUSYGROUP")) {
        /* LOADING after a restart, or worse: try the setup again soon. */
        log_warn(&lg, "XGROUP CREATE %s: %s; retrying", s->key, rep->str);
        g->setup_failed = 1;
    }
    if (s != &g->streams[S_COUNT - 1])
        return;
    /* Replies come in order: this was the last group. */
    if (g->setup_failed) {
        uv_timer_start(&g->setup_timer, on_setup_retry, 500, 0);
        return;
    }
    g->groups_ready = 1;
    ops_retry_all(g);           /* work whose reply was lost */
    intake_kick(g);
}

/* Every time the command connection comes up is a fresh start: the groups
 * may be gone (a Redis without persistence), entries read just before the
 * drop may have replies we never saw, and parked script batches wait to
 * be resent. So: groups, then our own pending entries, then new ones. */
void
intake_redis_state(struct gw *g)
{
    g->groups_ready = 0;
    g->setup_failed = 0;
    for (int k = 0; k < S_COUNT; k++) {
        struct stream *s = &g->streams[k];
        s->live = 0;
        free(s->cursor);
        s->cursor = strdup("0");
    }
    if (!gw_redis_is_up(g->cmd) || g->stopping)
        return;
    for (int k = 0; k < S_COUNT; k++) {
        struct stream *s = &g->streams[k];
        /* From 0, not $: jobs written before the group existed count. */
        const char *argv[] = { "XGROUP", "CREATE", s->key, GW_GROUP, "0",
                               "MKSTREAM" };
        gw_redis_cmd(g->cmd, on_group, s, 0, 6, argv, NULL);
    }
}

static void
on_retry_timer(uv_timer_t *t)
{
    struct gw *g = t->data;

    if (gw_redis_is_up(g->cmd))
        ops_retry_all(g);
}

void
gw_schedule_retry(struct gw *g)
{
    if (!uv_is_active((uv_handle_t *)&g->retry_timer))
        uv_timer_start(&g->retry_timer, on_retry_timer, 1000, 0);
}

static void
stream_init(struct gw *g, struct stream *s, const char *name, char *key,
            const char *field, stream_handler_cb *h, unsigned batch,
            unsigned max_inflight)
{
    s->g = g;
    s->name = name;
    s->key = key;
    s->field = field;
    s->handler = h;
    s->batch = batch;
    s->max_inflight = max_inflight;
    s->cursor = strdup("0");
    s->ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
}

int
intake_init(struct gw *g)
{
    const struct config *c = g->conf;
    uint64_t every;

    stream_init(g, &g->streams[S_JOBS], "jobs", g->k.jobs, "job",
                jobs_handler, (unsigned)c->intake_batch,
                (unsigned)c->intake_batch * 4);
    for (int ch = 0; ch < CH_COUNT; ch++)
        stream_init(g, &g->streams[S_EMAIL + ch],
                    gw_channel_name((enum gw_channel)ch), g->k.q[ch], "m",
                    dispatch_entries, (unsigned)c->dispatch_batch,
                    (unsigned)c->max_inflight);
    uv_timer_init(g->loop, &g->claim_timer);
    uv_timer_init(g->loop, &g->retry_timer);
    uv_timer_init(g->loop, &g->setup_timer);
    g->claim_timer.data = g->retry_timer.data = g->setup_timer.data = g;
    /* Often enough that a dead consumer's work waits at most about
     * 1.25 x claim_idle, and that heartbeats beat claim_idle. */
    every = (uint64_t)c->claim_idle_ms / 4;
    if (every < 250)
        every = 250;
    uv_timer_start(&g->claim_timer, on_claim_timer, every, every);
    return 0;
}

void
intake_stop(struct gw *g)
{
    uv_timer_stop(&g->claim_timer);
    uv_timer_stop(&g->setup_timer);
}

void
intake_free(struct gw *g)
{
    for (int k = 0; k < S_COUNT; k++) {
        free(g->streams[k].cursor);
        if (g->streams[k].ids)
            g_hash_table_destroy(g->streams[k].ids);
    }
}

/* ---- jobs ---- */

struct enq_batch {
    struct entry **es;
    size_t         n;
};

static void
on_enqueued(struct ops *o, redisReply *rep)
{
    struct enq_batch *b = o->arg;
    struct gw *g = o->g;

    for (size_t i = 0; i < b->n; i++) {
        if (rep && rep->type == REDIS_REPLY_ARRAY && i < rep->elements &&
            rep->element[i]->integer == 0)
            log_info(&lg, "job %s: a message with this id exists; "
                     "not queued again", b->es[i]->id);
        stream_done(b->es[i]);
    }
    (void)g;
    free(b->es);
    free(b);
}

char *
message_payload(const struct job *j, const json_t *recipient,
                const char *key, const char *campaign, int64_t ttl_ms)
{
    json_t *o = json_object();
    const char *cid = json_string_value(json_object_get(recipient,
                                                        "customer_id"));
    char *s;

    json_object_set_new(o, "key", json_string(key));
    if (campaign)
        json_object_set_new(o, "campaign", json_string(campaign));
    json_object_set_new(o, "customer", json_string(cid));
    json_object_set_new(o, "template", json_string(j->template));
    json_object_set_new(o, "provider", json_string(j->provider));
    if (j->class)
        json_object_set_new(o, "class", json_string(j->class));
    if (j->expires_ms) {
        json_object_set_new(o, "expires", json_integer(j->expires_ms));
    } else if (ttl_ms > 0) {
        /* the channel's default deadline, from when it may first go */
        int64_t from = j->send_at_ms > gw_now_ms() ? j->send_at_ms
                                                   : gw_now_ms();
        json_object_set_new(o, "expires", json_integer(from + ttl_ms));
    }
    if (j->send_at_ms)
        json_object_set_new(o, "send_at", json_integer(j->send_at_ms));
    if (j->smart_encoding >= 0)
        json_object_set_new(o, "smart_encoding",
                            json_boolean(j->smart_encoding));
    json_object_set(o, "recipient", (json_t *)recipient);
    if (j->vars && !campaign)
        json_object_set(o, "vars", j->vars);
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        fatal("out of memory");
    return s;
}


/* One triggered message waiting for the batch's enqueue script. */
struct enq_item {
    struct entry *e;
    char         *key, *ledger, *payload;
    const char   *queue, *channel;
    char         *customer, *provider;
};

/* A parsed batch of jobs waiting for its templates to be loaded. */
struct jobs_batch {
    struct gw     *g;
    struct entry **es;
    struct job   **jobs;
    size_t         n;
};

static void route_jobs(void *arg, int ok);

static void
jobs_handler(struct gw *g, struct entry **es, size_t n)
{
    struct jobs_batch *b = calloc(1, sizeof *b);
    GPtrArray *names = g_ptr_array_new();
    char reason[JOB_REASON_MAX];

    if (!b || (b->es = calloc(n, sizeof *b->es)) == NULL ||
        (b->jobs = calloc(n, sizeof *b->jobs)) == NULL)
        fatal("out of memory");
    b->g = g;
    for (size_t i = 0; i < n; i++) {
        struct entry *e = es[i];
        enum dead_class cls;
        struct job *j;

        if (!e->payload) {
            g->m.jobs_received[JOB_INVALID]++;
            dead_letter(g, e, DEAD_JSON, "job: the entry has no 'job' field");
            continue;
        }
        if (job_parse(&j, e->payload, e->len, g->conf, &cls, reason) < 0) {
            g->m.jobs_received[JOB_INVALID]++;
            dead_letter(g, e, cls, reason);
            continue;
        }
        g->m.jobs_received[j->type]++;
        if (j->template)
            g_ptr_array_add(names, (gpointer)j->template);
        b->es[b->n] = e;
        b->jobs[b->n++] = j;
    }
    /* names borrow from the jobs, which live until route_jobs */
    tplcache_ensure(g, names, route_jobs, b);
    g_ptr_array_free(names, TRUE);
}

/* Does the set have what the channel sends? */
static const char *
template_fits(const struct tpl *t, enum gw_channel ch)
{
    switch (ch) {
    case CH_EMAIL:
        if (!tpl_has(t, TPL_P_SUBJECT))
            return "has no subject part (subject.txt)";
        if (!tpl_has(t, TPL_P_HTML) && !tpl_has(t, TPL_P_TEXT))
            return "has no html or text part for email";
        return NULL;
    case CH_SMS:
        return tpl_has(t, TPL_P_SMS) ? NULL : "has no sms part (sms.txt)";
    case CH_FAX:
        return tpl_has(t, TPL_P_FAX) ? NULL : "has no fax part (fax.html)";
    default:
        return "unknown channel";
    }
}

static void
route_jobs(void *arg, int ok)
{
    struct jobs_batch *b = arg;
    struct gw *g = b->g;
    struct enq_item *it = calloc(b->n ? b->n : 1, sizeof *it);
    size_t ni = 0;
    char reason[JOB_REASON_MAX];

    if (!it)
        fatal("out of memory");
    for (size_t i = 0; i < b->n; i++) {
        struct entry *e = b->es[i];
        struct job *j = b->jobs[i];

        if (j->template) {
            const char *err = NULL, *misfit;
            struct tref *tr = NULL;
            int rc = tplcache_get(g, j->template, &tr, &err);

            if (rc == GW_ENOTFOUND || (rc < 0 && !ok)) {
                /* Redis did not answer: try again after the reconnect. */
                job_free(j);
                stream_done(e);
                continue;
            }
            if (!tr) {
                dead_letter(g, e, DEAD_TEMPLATE, err);
                job_free(j);
                continue;
            }
            misfit = template_fits(tref_tpl(tr), j->channel);
            tref_put(tr);
            if (misfit) {
                snprintf(reason, sizeof reason, "template: '%.100s' %s",
                         j->template, misfit);
                dead_letter(g, e, DEAD_TEMPLATE, reason);
                job_free(j);
                continue;
            }
        }
        if (j->type == JOB_CAMPAIGN) {
            campaign_job(g, j, e);      /* takes j */
            continue;
        }
        if (j->type == JOB_CONTROL) {
            control_job(g, j, e);       /* takes j */
            continue;
        }
        if (j->type == JOB_CUSTOMER) {
            customer_job(g, j, e);      /* takes j */
            continue;
        }
        if (j->type == JOB_CONVERSION) {
            conversion_job(g, j, e);    /* takes j */
            continue;
        }
        it[ni].e = e;
        it[ni].key = g_strdup(j->id);
        it[ni].ledger = g_strdup_printf("%smsg:%s", g->k.prefix, j->id);
        it[ni].payload = message_payload(j, j->recipient, it[ni].key, NULL,
            g->conf->channel[j->channel].ttl_s * 1000);
        it[ni].queue = g->k.q[j->channel];
        it[ni].channel = gw_channel_name(j->channel);
        it[ni].customer = g_strdup(json_string_value(
            json_object_get(j->recipient, "customer_id")));
        it[ni].provider = g_strdup(j->provider);
        ni++;
        job_free(j);
    }
    free(b->es);
    free(b->jobs);
    free(b);
    if (ni > 0) {
        /* Ledger + queue + ack for the whole batch in one script. */
        struct enq_batch *eb = calloc(1, sizeof *eb);
        struct ops *o;

        if (!eb || (eb->es = calloc(ni, sizeof *eb->es)) == NULL)
            fatal("out of memory");
        o = ops_new(g, &gw_scripts.enqueue, on_enqueued, eb);
        ops_key(o, g->k.jobs);
        ops_key(o, g->k.events);
        for (size_t i = 0; i < ni; i++) {
            ops_key(o, it[i].ledger);
            ops_key(o, it[i].queue);
        }
        ops_head(o);
        ops_arg(o, GW_GROUP);
        ops_argi(o, (int64_t)ni);
        for (size_t i = 0; i < ni; i++) {
            ops_arg(o, it[i].e->id);
            ops_arg(o, it[i].key);
            ops_arg(o, it[i].customer);
            ops_arg(o, it[i].channel);
            ops_arg(o, it[i].provider);
            ops_arg(o, it[i].payload);
            eb->es[eb->n++] = it[i].e;
            g_free(it[i].key);
            g_free(it[i].ledger);
            free(it[i].payload);
            g_free(it[i].customer);
            g_free(it[i].provider);
        }
        ops_run(o);
    }
    free(it);
}

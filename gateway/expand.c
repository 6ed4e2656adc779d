/*
 * expand.c -- campaigns: create the campaign hash, then expand the
 * audience (inline recipients, or a list or stream of recipient JSON) in
 * batches into gw:q:<channel>. Each batch and the audience cursor are
 * written by one script that first checks the cursor is where we left it,
 * so a restart resumes exactly there and two expanders cannot both write
 * a batch. Only one batch is in memory at a time.
 *
 * The job entry that started an expansion (the campaign job, or the
 * resume control) stays pending until the expansion ends, so a crash
 * hands it to the next reader; a heartbeat (XCLAIM JUSTID) keeps it from
 * being claimed while we work on it.
 */
#include "gw.h"

#include "../common/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EXPANSIONS 4
#define HIGH_WATER     200000   /* queue length that pauses expansion */

static const struct log_ctx lg = { "expand", NULL };

enum audience { AUD_INLINE, AUD_LIST, AUD_STREAM };

struct expansion {
    struct gw        *g;
    struct job       *job;
    struct entry     *driver;
    enum audience     kind;
    char             *cursor;       /* as stored in the campaign hash */
    char             *next_cursor;  /* of the batch in flight */
    int               last;         /* the batch in flight is the last */
    char             *ckey;
    uv_timer_t        wait;         /* back-off while the queue is full */
    struct expansion *next;
};

struct expander {
    struct expansion *list;
    unsigned          n;
};

static void step(struct expansion *x);
static void finish(struct expansion *x, int ack);

static void
on_wait(uv_timer_t *t)
{
    struct expansion *x = t->data;

    if (x->g->stopping)
        finish(x, 0);
    else
        step(x);
}

int
expander_init(struct gw *g)
{
    if ((g->ex = calloc(1, sizeof *g->ex)) == NULL)
        return -1;
    return 0;
}

int
expander_busy(struct gw *g)
{
    return g->ex->n >= MAX_EXPANSIONS;
}

static void
on_wait_closed(uv_handle_t *h)
{
    struct expansion *x = h->data;

    job_free(x->job);
    free(x->cursor);
    free(x->next_cursor);
    free(x->ckey);
    free(x);
}

/* End an expansion: ack its driver (done, paused, cancelled) or leave it
 * pending for whoever expands next (conflict, shutdown, Redis gone). */
static void
finish(struct expansion *x, int ack)
{
    struct gw *g = x->g;
    struct expansion **pp;

    for (pp = &g->ex->list; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            break;
        }
    g->ex->n--;
    if (ack)
        entry_ack(g, x->driver);
    else
        stream_done(x->driver);
    uv_close((uv_handle_t *)&x->wait, on_wait_closed);
}

static void
start(struct gw *g, struct job *j, struct entry *driver, const char *cursor,
      enum audience kind)
{
    struct expansion *x = calloc(1, sizeof *x);

    if (!x)
        fatal("out of memory");
    x->g = g;
    x->job = j;
    x->driver = driver;
    x->cursor = strdup(cursor ? cursor : "");
    x->ckey = g_strdup_printf("%scampaign:%s", g->k.prefix, j->id);
    x->kind = kind;
    uv_timer_init(g->loop, &x->wait);
    x->wait.data = x;
    x->next = g->ex->list;
    g->ex->list = x;
    g->ex->n++;
    log_info(&lg, "campaign %s: expanding from cursor '%s'", j->id,
             x->cursor);
    step(x);
}

/* ---- one batch ---- */

struct batch {
    struct expansion *x;
    GPtrArray *keys, *customers, *payloads, *ledgers;  /* accepted */
    GPtrArray *reasons, *raws;                         /* rejected */
};

static void
batch_free(struct batch *b)
{
    g_ptr_array_free(b->keys, TRUE);
    g_ptr_array_free(b->customers, TRUE);
    g_ptr_array_free(b->payloads, TRUE);
    g_ptr_array_free(b->ledgers, TRUE);
    g_ptr_array_free(b->reasons, TRUE);
    g_ptr_array_free(b->raws, TRUE);
    free(b);
}

static struct batch *
batch_new(struct expansion *x)
{
    struct batch *b = calloc(1, sizeof *b);

    if (!b)
        fatal("out of memory");
    b->x = x;
    b->keys = g_ptr_array_new_with_free_func(g_free);
    b->customers = g_ptr_array_new_with_free_func(g_free);
    b->payloads = g_ptr_array_new_with_free_func(free);
    b->ledgers = g_ptr_array_new_with_free_func(g_free);
    b->reasons = g_ptr_array_new_with_free_func(g_free);
    b->raws = g_ptr_array_new_with_free_func(g_free);
    return b;
}

/* Check one recipient and add it to the batch as accepted or rejected. */
static void
add_recipient(struct batch *b, const json_t *r, const char *raw,
              size_t rawlen, const char *where)
{
    struct expansion *x = b->x;
    struct gw *g = x->g;
    char reason[JOB_REASON_MAX], key[600];
    json_t *parsed = NULL;
    json_error_t e;

    if (!r) {
        parsed = json_loadb(raw, rawlen, JSON_REJECT_DUPLICATES, &e);
        if (!parsed) {
            snprintf(reason, sizeof reason, "%s: not JSON: %s", where,
                     e.text);
            goto reject;
        }
        r = parsed;
    }
    if (job_check_recipient(r, x->job->channel, where, reason) < 0)
        goto reject;
    const char *cid = json_string_value(json_object_get(r, "customer_id"));
    if (job_msg_key(key, sizeof key, x->job->id, cid, x->job->channel) < 0) {
        snprintf(reason, sizeof reason, "%s.customer_id: too long", where);
        goto reject;
    }
    g_ptr_array_add(b->keys, g_strdup(key));
    g_ptr_array_add(b->ledgers, g_strdup_printf("%smsg:%s", g->k.prefix,
                                                key));
    g_ptr_array_add(b->customers, g_strdup(cid));
    g_ptr_array_add(b->payloads, message_payload(x->job, r, key,
                                                 x->job->id,
        g->conf->channel[x->job->channel].ttl_s * 1000));
    json_decref(parsed);
    return;
reject:
    g_ptr_array_add(b->reasons, g_strdup(reason));
    if (raw)
        g_ptr_array_add(b->raws, g_strndup(raw, rawlen));
    else {
        char *s = json_dumps(r, JSON_COMPACT);
        g_ptr_array_add(b->raws, g_strdup(s ? s : ""));
        free(s);
    }
    json_decref(parsed);
}

static void
on_expanded(struct ops *o, redisReply *rep)
{
    struct batch *b = o->arg;
    struct expansion *x = b->x;
    struct gw *g = x->g;
    const char *status;

    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 2) {
        batch_free(b);
        finish(x, 0);
        return;
    }
    status = rep->element[0]->str;
    if (strcmp(status, "conflict") == 0 &&
        strcmp(rep->element[1]->str, x->next_cursor) != 0) {
        log_warn(&lg, "campaign %s: cursor moved to '%s' elsewhere; "
                 "another consumer is expanding it", x->job->id,
                 rep->element[1]->str);
        batch_free(b);
        finish(x, 0);
        return;
    }
    if (strcmp(status, "ok") != 0 && strcmp(status, "conflict") != 0) {
        log_info(&lg, "campaign %s is %s: expansion stops at '%s'",
                 x->job->id, status, x->cursor);
        batch_free(b);
        finish(x, 1);
        return;
    }
    /* "conflict" with our own next cursor: a replay of this very batch
     * after a lost reply. */
    if (strcmp(status, "ok") == 0 && rep->elements >= 4) {
        g->m.recipients_expanded += (uint64_t)rep->element[1]->integer;
        g->m.recipients_duplicate += (uint64_t)rep->element[2]->integer;
    }
    free(x->cursor);
    x->cursor = x->next_cursor;
    x->next_cursor = NULL;
    batch_free(b);
    if (x->last) {
        log_info(&lg, "campaign %s: audience expanded", x->job->id);
        finish(x, 1);
        return;
    }
    if (g->stopping) {
        finish(x, 0);
        return;
    }
    if (strcmp(status, "ok") == 0 && rep->elements >= 4 &&
        rep->element[3]->integer > HIGH_WATER) {
        /* Redis memory is the limit: let dispatch drain the queue. */
        uv_timer_start(&x->wait, on_wait, 200, 0);
        return;
    }
    step(x);
}

static void
write_batch(struct expansion *x, struct batch *b)
{
    struct gw *g = x->g;
    struct ops *o = ops_new(g, &gw_scripts.expand, on_expanded, b);

    ops_key(o, x->ckey);
    ops_key(o, g->k.q[x->job->channel]);
    ops_key(o, g->k.events);
    ops_key(o, g->k.dead);
    for (size_t i = 0; i < b->ledgers->len; i++)
        ops_key(o, g_ptr_array_index(b->ledgers, i));
    ops_head(o);
    ops_arg(o, x->cursor);
    ops_arg(o, x->next_cursor);
    ops_arg(o, x->last ? "1" : "0");
    ops_argi(o, (int64_t)b->keys->len);
    ops_argi(o, (int64_t)b->reasons->len);
    ops_arg(o, x->job->id);
    ops_arg(o, gw_channel_name(x->job->channel));
    ops_arg(o, x->job->provider);
    for (size_t i = 0; i < b->keys->len; i++) {
        ops_arg(o, g_ptr_array_index(b->keys, i));
        ops_arg(o, g_ptr_array_index(b->customers, i));
        ops_arg(o, g_ptr_array_index(b->payloads, i));
    }
    for (size_t i = 0; i < b->reasons->len; i++) {
        ops_arg(o, g_ptr_array_index(b->reasons, i));
        ops_arg(o, g_ptr_array_index(b->raws, i));
    }
    ops_run(o);
}

static void
on_fetched(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct expansion *x = arg;
    struct gw *g = x->g;
    size_t want = (size_t)g->conf->expand_batch, n;
    struct batch *b;
    char where[96];

    (void)r;
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        if (rep)
            log_error(&lg, "campaign %s: reading audience %s: %s",
                      x->job->id, x->job->audience_key,
                      rep->type == REDIS_REPLY_ERROR ? rep->str : "?");
        finish(x, 0);
        return;
    }
    b = batch_new(x);
    n = rep->elements;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = rep->element[i];
        if (x->kind == AUD_LIST) {
            snprintf(where, sizeof where, "audience[%lld]",
                     atoll(x->cursor) + (long long)i);
            add_recipient(b, NULL, e->str ? e->str : "", e->len, where);
        } else {
            /* [id, [field, value, ...]]: the recipient is the value of
             * field "recipient" (or the only field). */
            const redisReply *f = e->element[1], *v = NULL;
            snprintf(where, sizeof where, "audience[%s]", e->element[0]->str);
            if (f->type == REDIS_REPLY_ARRAY)
                for (size_t k = 0; k + 1 < f->elements; k += 2)
                    if (strcmp(f->element[k]->str, "recipient") == 0 ||
                        f->elements == 2)
                        v = f->element[k + 1];
            add_recipient(b, NULL, v ? v->str : "", v ? v->len : 0, where);
        }
    }
    x->last = n < want;
    free(x->next_cursor);
    if (x->kind == AUD_LIST)
        x->next_cursor = g_strdup_printf("%lld", atoll(x->cursor) +
                                                 (long long)n);
    else
        x->next_cursor = strdup(n ? rep->element[n - 1]->element[0]->str
                                  : x->cursor);
    write_batch(x, b);
}

static void
step(struct expansion *x)
{
    struct gw *g = x->g;
    size_t want = (size_t)g->conf->expand_batch;
    char a[32], c[32], start[64];

    if (x->kind == AUD_INLINE) {
        struct batch *b = batch_new(x);
        size_t from = (size_t)atoll(x->cursor), total =
            json_array_size(x->job->recipients), to = from + want;
        char where[48];

        if (to > total)
            to = total;
        for (size_t i = from; i < to; i++) {
            snprintf(where, sizeof where, "recipients[%zu]", i);
            add_recipient(b, json_array_get(x->job->recipients, i), NULL, 0,
                          where);
        }
        x->last = to >= total;
        free(x->next_cursor);
        x->next_cursor = g_strdup_printf("%zu", to);
        write_batch(x, b);
        return;
    }
    if (x->kind == AUD_LIST) {
        long long from = atoll(x->cursor);
        snprintf(a, sizeof a, "%lld", from);
        snprintf(c, sizeof c, "%lld", from + (long long)want - 1);
        const char *argv[] = { "LRANGE", x->job->audience_key, a, c };
        if (gw_redis_cmd(g->cmd, on_fetched, x, 0, 4, argv, NULL) < 0)
            finish(x, 0);
        return;
    }
    snprintf(c, sizeof c, "%zu", want);
    if (x->cursor[0])
        snprintf(start, sizeof start, "(%s", x->cursor);
    else
        strcpy(start, "-");
    const char *argv[] = { "XRANGE", x->job->audience_key, start, "+",
                           "COUNT", c };
    if (gw_redis_cmd(g->cmd, on_fetched, x, 0, 6, argv, NULL) < 0)
        finish(x, 0);
}

void
expander_heartbeat(struct gw *g)
{
    for (struct expansion *x = g->ex->list; x; x = x->next) {
        const char *argv[] = { "XCLAIM", x->driver->s->key, GW_GROUP,
                               g->conf->consumer, "0", x->driver->id,
                               "JUSTID" };
        gw_redis_cmd(g->cmd, NULL, NULL, 0, 7, argv, NULL);
    }
}

void
expander_free(struct gw *g)
{
    free(g->ex);
    g->ex = NULL;
}

/* ---- campaign jobs ---- */

struct pending_job {
    struct gw    *g;
    struct job   *job;
    struct entry *e;
    enum audience kind;
    int           resume;   /* a resume control: the campaign exists */
    char         *cursor;
    enum control_action action;
    char         *campaign;
};

static void
pending_free(struct pending_job *p)
{
    job_free(p->job);
    free(p->cursor);
    free(p->campaign);
    free(p);
}

static void
on_campaign(struct ops *o, redisReply *rep)
{
    struct pending_job *p = o->arg;
    struct gw *g = p->g;
    const char *state, *cursor, *expansion;

    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 4) {
        stream_done(p->e);
        pending_free(p);
        return;
    }
    state = rep->element[1]->str;
    cursor = rep->element[2]->str;
    expansion = rep->element[3]->str;
    if (strcmp(rep->element[0]->str, "new") == 0)
        g->m.campaigns_started++;
    if (strcmp(expansion, "done") == 0 || strcmp(state, "running") != 0) {
        log_info(&lg, "campaign %s exists (%s%s); nothing to expand",
                 p->job->id, state, *expansion ? ", expanded" : "");
        entry_ack(g, p->e);
        pending_free(p);
        return;
    }
    start(g, p->job, p->e, cursor, p->kind);
    p->job = NULL;
    pending_free(p);
}

static void
create_campaign(struct pending_job *p)
{
    struct gw *g = p->g;
    struct ops *o = ops_new(g, &gw_scripts.campaign, on_campaign, p);
    char *ck = g_strdup_printf("%scampaign:%s", g->k.prefix, p->job->id);

    ops_key(o, ck);
    ops_key(o, g->k.events);
    ops_head(o);
    ops_argn(o, p->e->payload, p->e->len);
    ops_arg(o, p->job->id);
    ops_arg(o, gw_channel_name(p->job->channel));
    ops_arg(o, p->job->provider);
    ops_arg(o, p->job->template);
    ops_run(o);
    g_free(ck);
}

static void
on_type(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct pending_job *p = arg;
    char reason[JOB_REASON_MAX];

    (void)r;
    if (!rep || rep->type != REDIS_REPLY_STATUS) {
        stream_done(p->e);
        pending_free(p);
        return;
    }
    if (strcmp(rep->str, "list") == 0 || strcmp(rep->str, "stream") == 0) {
        p->kind = rep->str[0] == 'l' ? AUD_LIST : AUD_STREAM;
        if (!p->resume) {
            create_campaign(p);
            return;
        }
        start(p->g, p->job, p->e, p->cursor, p->kind);
        p->job = NULL;
        pending_free(p);
        return;
    }
    if (strcmp(rep->str, "none") == 0)
        snprintf(reason, sizeof reason, "audience.key: '%.200s' does not "
                 "exist", p->job->audience_key);
    else
        snprintf(reason, sizeof reason, "audience.key: '%.200s' is a %s, "
                 "not a list or stream", p->job->audience_key, rep->str);
    dead_letter(p->g, p->e, DEAD_FIELD, reason);
    pending_free(p);
}

void
campaign_job(struct gw *g, struct job *j, struct entry *e)
{
    struct pending_job *p = calloc(1, sizeof *p);

    if (!p)
        fatal("out of memory");
    p->g = g;
    p->job = j;
    p->e = e;
    p->kind = AUD_INLINE;
    if (!j->audience_key) {
        create_campaign(p);
        return;
    }
    const char *argv[] = { "TYPE", j->audience_key };
    if (gw_redis_cmd(g->cmd, on_type, p, 0, 2, argv, NULL) < 0) {
        stream_done(e);
        pending_free(p);
    }
}

/* ---- control jobs ---- */

static void run_control(struct pending_job *p);

static void
on_def(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct pending_job *p = arg;
    struct gw *g = p->g;
    char reason[JOB_REASON_MAX], why[JOB_REASON_MAX + 64];
    enum dead_class cls;
    struct job *j;

    (void)r;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING) {
        stream_done(p->e);
        pending_free(p);
        return;
    }
    if (job_parse(&j, rep->element[0]->str, rep->element[0]->len, g->conf,
                  &cls, reason) < 0) {
        snprintf(why, sizeof why, "campaign %s cannot resume: %s",
                 p->campaign, reason);
        dead_letter(g, p->e, DEAD_FIELD, why);
        pending_free(p);
        return;
    }
    p->job = j;
    p->resume = 1;
    p->cursor = strdup(rep->element[1]->type == REDIS_REPLY_STRING
                       ? rep->element[1]->str : "");
    if (!j->audience_key) {
        start(g, j, p->e, p->cursor, AUD_INLINE);
        p->job = NULL;
        pending_free(p);
        return;
    }
    const char *argv[] = { "TYPE", j->audience_key };
    if (gw_redis_cmd(g->cmd, on_type, p, 0, 2, argv, NULL) < 0) {
        stream_done(p->e);
        pending_free(p);
    }
}

static void
on_control(struct ops *o, redisReply *rep)
{
    struct pending_job *p = o->arg;
    struct gw *g = p->g;
    char reason[JOB_REASON_MAX], *ck;

    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 4) {
        stream_done(p->e);
        pending_free(p);
        return;
    }
    if (strcmp(rep->element[0]->str, "missing") == 0) {
        snprintf(reason, sizeof reason, "campaign: no campaign '%.100s'",
                 p->campaign);
        dead_letter(g, p->e, DEAD_FIELD, reason);
        pending_free(p);
        return;
    }
    log_info(&lg, "campaign %s is %s (%lld parked messages released)",
             p->campaign, rep->element[0]->str,
             (long long)rep->element[1]->integer);
    if (rep->element[2]->integer > 0) {
        run_control(p);         /* more parked messages to move */
        return;
    }
    if (strcmp(rep->element[0]->str, "running") == 0 &&
        strcmp(rep->element[3]->str, "done") != 0) {
        /* Expansion stopped at the pause: this entry drives the rest. */
        ck = g_strdup_printf("%scampaign:%s", g->k.prefix, p->campaign);
        const char *argv[] = { "HMGET", ck, "def", "cursor" };
        int rc = gw_redis_cmd(g->cmd, on_def, p, 0, 4, argv, NULL);
        g_free(ck);
        if (rc < 0) {
            stream_done(p->e);
            pending_free(p);
        }
        return;
    }
    entry_ack(g, p->e);
    pending_free(p);
}

static void
run_control(struct pending_job *p)
{
    static const char *const actions[] = { "pause", "resume", "cancel" };
    struct gw *g = p->g;
    struct ops *o = ops_new(g, &gw_scripts.control, on_control, p);
    char *ck = g_strdup_printf("%scampaign:%s", g->k.prefix, p->campaign);
    char *pk = g_strdup_printf("%sparked:%s", g->k.prefix, p->campaign);

    ops_key(o, ck);
    ops_key(o, g->k.events);
    ops_key(o, pk);
    for (int c = 0; c < CH_COUNT; c++)
        ops_key(o, g->k.q[c]);
    ops_head(o);
    ops_arg(o, actions[p->action]);
    ops_argi(o, 10000);
    ops_run(o);
    g_free(ck);
    g_free(pk);
}

void
control_job(struct gw *g, struct job *j, struct entry *e)
{
    struct pending_job *p = calloc(1, sizeof *p);

    if (!p)
        fatal("out of memory");
    p->g = g;
    p->e = e;
    p->action = j->action;
    p->campaign = strdup(j->campaign);
    job_free(j);
    run_control(p);
}

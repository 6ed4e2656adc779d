/*
 * dispatch.c -- from gw:q:<channel> to the channel and back to the ledger.
 * A batch of queue entries is moved to `sending` by one script (which also
 * skips messages whose ledger is final, whose campaign is paused or
 * cancelled, whose address opted out, whose customer reached a frequency
 * cap, or whose deadline passed), each message goes to its provider's
 * channel, and the outcomes are written together with their XACKs by one
 * more script, batched per loop iteration. Before the begin script the
 * contact policy (policy.c) holds back what is outside its sending window
 * (deferred to the opening) and what its token buckets do not allow yet
 * (waiting here, per bucket path, so other paths go on).
 */
#include "gw.h"

#include "../common/buf.h"
#include "../common/err.h"
#include "../scheduler/throttle.h"
#include "../templates/template.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct log_ctx lg = { "dispatch", NULL };

#define CACHE_MAX 1024

struct wgroup;

struct dmsg {
    struct gw      *g;
    struct entry   *e;
    enum gw_channel ch;
    json_t         *doc;        /* the queue entry's JSON */
    json_t         *vars;       /* referenced */
    const char     *campaign;
    int64_t         expires, send_at;
    char           *ledger, *ckey, *parked;
    struct message  m;
    struct tref    *tr;         /* the template set it was rendered from
                                   (its images are sent from there) */
    char           *rendered;   /* the rendered parts, one block */
    const char     *body;       /* a system message's text (no template) */
    int             system;     /* a reply we owe (STOP confirmation):
                                   never suppressed */
    char           *address;    /* normalised, as in the suppress sets */
    char           *unsub, *mailto; /* its unsubscribe URL and mailto */
    struct content_image images[TPL_MAX_IMAGES];
    char            logctx[160];
    /* the outcome */
    enum msg_state  state;      /* ST_NONE: ack only */
    char           *reason, *provider_id;
    int             park;
    int             units;      /* pages, segments (0: one message) */
    int             pidx;       /* index of its channel in g->chan */
    double          est;        /* cost committed against the budget */
    double          budget;     /* the campaign's, 0: none */
    double          cost;       /* the price once accepted; < 0: none */
    int             hard_bounce;    /* suppress the address */
    int64_t         due;
    const json_t   *def;        /* the campaign's definition (cached) */
    struct dmsg    *next;
};

/* Messages waiting for tokens on one bucket path, in arrival order. */
struct wgroup {
    char                *key;
    struct throttle_path path;
    GQueue               q;
    double               rate;  /* the slowest bucket's configured rate */
};

struct dispatch {
    GHashTable  *vars;          /* campaign id -> json_t definition (or
                                   null) */
    GHashTable  *waits;         /* path key -> struct wgroup */
    unsigned     nwaiting;
    uv_timer_t   wait_timer;
    int          timer_open;
    struct buf   rules;         /* scratch: frequency cap rules */
    struct buf   scratch;       /* scratch: HTML with tracked links */
    struct tpl_out out;         /* reused by every render: no allocation
                                   once warm, and its zone cache lives */
    unsigned     inflight;      /* dmsgs alive */
    struct dmsg *done[CH_COUNT];    /* outcomes waiting for finish */
    size_t       ndone[CH_COUNT];
};

struct dbatch {
    struct gw    *g;
    struct dmsg **msgs;
    size_t        n;
    unsigned      fetching;     /* campaign definitions outstanding */
};

/* A message's class: its own, else marketing for a campaign and
 * transactional for a triggered message. */
static const char *
msg_class(const struct dmsg *d)
{
    if (d->m.class && *d->m.class)
        return d->m.class;
    return d->campaign ? "marketing" : "transactional";
}

static void begin_batch(struct dbatch *b);
static void admit_batch(struct dbatch *b);

static void
dmsg_free(struct dmsg *d)
{
    d->g->dp->inflight--;
    json_decref(d->doc);
    json_decref(d->vars);
    tref_put(d->tr);
    free(d->rendered);
    g_free(d->ledger);
    g_free(d->ckey);
    g_free(d->parked);
    g_free(d->address);
    g_free(d->unsub);
    g_free(d->mailto);
    free(d->reason);
    free(d->provider_id);
    free(d);
}

static void
wgroup_free(void *p)
{
    struct wgroup *w = p;

    throttle_path_release(&w->path);
    g_free(w->key);
    g_queue_clear(&w->q);
    free(w);
}

int
dispatch_init(struct gw *g)
{
    if ((g->dp = calloc(1, sizeof *g->dp)) == NULL)
        return -1;
    g->dp->vars = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify)json_decref);
    g->dp->waits = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                         wgroup_free);
    buf_init(&g->dp->rules, 64 * 1024);
    buf_init(&g->dp->scratch, 0);
    tpl_out_init(&g->dp->out, 0);
    uv_timer_init(g->loop, &g->dp->wait_timer);
    g->dp->wait_timer.data = g;
    g->dp->timer_open = 1;
    return 0;
}

/* Shutdown: messages still waiting for tokens stay pending in their
 * stream (not acked) and are read again at the next start. */
void
dispatch_release_waiting(struct gw *g)
{
    GHashTableIter it;
    gpointer v;

    if (!g->dp)
        return;
    g_hash_table_iter_init(&it, g->dp->waits);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        struct wgroup *w = v;
        struct dmsg *d;
        while ((d = g_queue_pop_head(&w->q)) != NULL) {
            stream_done(d->e);
            dmsg_free(d);
        }
    }
    g_hash_table_remove_all(g->dp->waits);
    g->dp->nwaiting = 0;
    uv_timer_stop(&g->dp->wait_timer);
}

void
dispatch_close(struct gw *g)
{
    dispatch_release_waiting(g);
    if (g->dp && g->dp->timer_open) {
        g->dp->timer_open = 0;
        uv_close((uv_handle_t *)&g->dp->wait_timer, NULL);
    }
}

void
dispatch_free(struct gw *g)
{
    if (!g->dp)
        return;
    g_hash_table_destroy(g->dp->vars);
    g_hash_table_destroy(g->dp->waits);
    buf_free(&g->dp->rules);
    buf_free(&g->dp->scratch);
    tpl_out_free(&g->dp->out);
    free(g->dp);
    g->dp = NULL;
}

unsigned
dispatch_inflight(struct gw *g)
{
    return g->dp ? g->dp->inflight : 0;
}

/* Queue an outcome for the next finish script. */
static void
outcome(struct dmsg *d, enum msg_state st, const char *reason)
{
    struct dispatch *dp = d->g->dp;

    d->state = st;
    free(d->reason);
    d->reason = reason ? strdup(reason) : NULL;
    d->next = dp->done[d->ch];
    dp->done[d->ch] = d;
    if (++dp->ndone[d->ch] >= (size_t)d->g->conf->dispatch_batch)
        dispatch_flush(d->g);
}

static void
on_finished(struct ops *o, redisReply *rep)
{
    struct dmsg *d = o->arg, *next;

    (void)rep;
    for (; d; d = next) {
        next = d->next;
        if (d->state != ST_NONE)
            d->g->m.messages[d->ch][d->state]++;
        stream_done(d->e);
        dmsg_free(d);
    }
}

static void
flush_channel(struct gw *g, int ch)
{
    struct dispatch *dp = g->dp;
    struct dmsg *list = dp->done[ch];
    struct ops *o;
    size_t n = dp->ndone[ch];

    if (!list)
        return;
    dp->done[ch] = NULL;
    dp->ndone[ch] = 0;
    o = ops_new(g, &gw_scripts.finish, on_finished, list);
    ops_key(o, g->k.events);
    ops_key(o, g->k.q[ch]);
    ops_key(o, g->k.delayed);
    for (struct dmsg *d = list; d; d = d->next) {
        ops_key(o, d->ledger);
        ops_key(o, d->ckey ? d->ckey : d->ledger);
        ops_key(o, d->parked ? d->parked : d->ledger);
    }
    ops_head(o);
    ops_arg(o, GW_GROUP);
    ops_argi(o, (int64_t)n);
    for (struct dmsg *d = list; d; d = d->next) {
        ops_arg(o, d->e->id);
        ops_arg(o, d->ckey ? "1" : "0");
        ops_arg(o, d->state != ST_NONE ? msg_state_name(d->state) : "");
        ops_arg(o, d->reason);
        ops_arg(o, d->provider_id);
        if (d->park)
            ops_argn(o, d->e->payload, d->e->len);
        else
            ops_arg(o, "");
        ops_argi(o, d->due);
        if (d->state == ST_DEFERRED) {
            char *member = g_strdup_printf("%d|%s", ch, d->e->payload);
            ops_arg(o, member);
            g_free(member);
        } else {
            ops_arg(o, "");
        }
        ops_arg(o, d->m.key);
        if (d->state == ST_ACCEPTED && d->ch == CH_FAX)
            ops_argn(o, d->e->payload, d->e->len);
        else
            ops_arg(o, "");
        ops_argi(o, d->expires);
        ops_argi(o, d->units);
        if (d->cost >= 0) {
            char c[40];
            snprintf(c, sizeof c, "%.6f", d->cost);
            ops_arg(o, c);
        } else {
            ops_arg(o, "");
        }
        {
            char c[40];
            /* set aside only when the begin script said go */
            snprintf(c, sizeof c, "%.6f", d->m.attempt ? d->est : 0.0);
            ops_arg(o, c);
        }
        ops_arg(o, d->hard_bounce ? d->address : "");
    }
    ops_run(o);
}

void
dispatch_drop(struct gw *g)
{
    for (int ch = 0; ch < CH_COUNT; ch++) {
        struct dmsg *d = g->dp->done[ch], *next;
        for (; d; d = next) {
            next = d->next;
            stream_done(d->e);
            dmsg_free(d);
        }
        g->dp->done[ch] = NULL;
        g->dp->ndone[ch] = 0;
    }
}

void
dispatch_flush(struct gw *g)
{
    for (int ch = 0; ch < CH_COUNT; ch++)
        flush_channel(g, ch);
}

static void
on_sent(struct message *m, const struct send_outcome *o, void *arg)
{
    struct dmsg *d = arg;
    char reason[600];

    (void)m;
    switch (o->result) {
    case SEND_OK:
        d->units = o->units;
        d->cost = conf_price_of(d->g->conf, d->ch, d->m.to, o->units);
        d->g->m.prov[d->pidx].units += o->units > 0 ? (uint64_t)o->units : 1;
        if (o->provider_id)
            d->provider_id = strdup(o->provider_id);
        outcome(d, o->final ? ST_DELIVERED : ST_ACCEPTED, NULL);
        return;
    case SEND_PERMFAIL:
        metrics_reason(&d->g->m.prov[d->pidx], "permanent");
        if (d->ch == CH_EMAIL && o->reply) {
            /* classified by its enhanced status: 5.1.x hard (suppress),
             * 5.2.2 soft; neither: failed */
            int c = bounce_sync(o->reply, reason, sizeof reason);
            if (c == 0 || c == 1) {
                d->hard_bounce = c == 0;
                outcome(d, ST_BOUNCED, reason);
                return;
            }
        }
        outcome(d, ST_FAILED, o->reply ? o->reply : "permanent failure");
        return;
    case SEND_TEMPFAIL:
        if (o->throttled)
            policy_signal(d->g, d->m.provider);
        break;
    }
    if (o->in_doubt && !d->g->conf->channel[d->ch].in_doubt_resend) {
        /* The provider may have taken it (no response in time): sending
         * again could double it. Held for an operator instead. */
        snprintf(reason, sizeof reason, "in doubt, not resent (in_doubt = "
                 "hold): %s", o->reply ? o->reply : "no response");
        outcome(d, ST_FAILED, reason);
        return;
    }
    {
        int expired = 0;
        d->due = policy_retry_due(d->g, d->ch, d->m.attempt,
                                  o->retry_after_ms, d->expires, &expired);
        if (d->due == 0 || expired) {
            snprintf(reason, sizeof reason, "%s after %d attempts: %s",
                     expired ? "deadline" : "gave up", d->m.attempt,
                     o->reply ? o->reply : "");
            outcome(d, expired ? ST_EXPIRED : ST_FAILED, reason);
            return;
        }
    }
    log_info(&d->m.log, "temporary failure (%s); retry in %lld s",
             o->reply ? o->reply : "?",
             (long long)((d->due - gw_now_ms()) / 1000));
    outcome(d, ST_DEFERRED, o->reply);
}

/* Copy the rendered parts out of the shared tpl_out into one block the
 * message owns while the channel works on it. */
static void
keep_parts(struct dmsg *d, const struct tpl_out *o)
{
    const struct buf *parts[] = { &o->subject, &o->html, &o->text, &o->sms,
                                  &o->fax };
    const char **dst[] = { &d->m.content.subject, &d->m.content.html,
                           &d->m.content.text, &d->m.content.sms,
                           &d->m.content.fax };
    size_t *lens[] = { &d->m.content.subject_len, &d->m.content.html_len,
                       &d->m.content.text_len, &d->m.content.sms_len,
                       &d->m.content.fax_len };
    size_t total = 0;
    char *p;

    for (size_t i = 0; i < 5; i++)
        total += parts[i]->len + 1;
    if ((p = d->rendered = malloc(total)) == NULL)
        fatal("out of memory");
    for (size_t i = 0; i < 5; i++) {
        *lens[i] = parts[i]->len;
        if (parts[i]->len == 0) {
            *dst[i] = NULL;
            continue;
        }
        memcpy(p, parts[i]->data, parts[i]->len);
        p[parts[i]->len] = 0;
        *dst[i] = p;
        p += parts[i]->len + 1;
    }
}

/* Render the message's template and point d->m.content at the result. A render failure (strict miss, CR/LF in the subject) is permanent
 * for this message; a set not loaded yet (Redis away) is retried. */
static int
render(struct dmsg *d)
{
    static const enum tpl_channel tch[CH_COUNT] = { TPL_EMAIL, TPL_SMS,
                                                     TPL_FAX };
    struct gw *g = d->g;
    struct tpl_data td;
    struct tpl_error te;
    struct message_content *c = &d->m.content;
    const char *err = NULL;
    char reason[600];
    int rc;

    d->m.to_name = json_string_value(json_object_get(d->m.recipient,
                                                     "name"));
    d->m.class = msg_class(d);      /* the channels see the effective one */
    d->m.deadline_ms = d->expires;
    /* Checked at intake; again here because it goes into a header. */
    if (d->m.to_name && strpbrk(d->m.to_name, "\r\n")) {
        outcome(d, ST_FAILED, "recipient.name: contains CR or LF");
        return -1;
    }
    if (d->body) {
        /* A system message (e.g. the answer to STOP): text as given. */
        if (d->ch == CH_SMS) {
            c->sms = d->body;
            c->sms_len = strlen(d->body);
        } else {
            c->text = d->body;
            c->text_len = strlen(d->body);
        }
        return 0;
    }
    rc = tplcache_get(g, d->m.template, &d->tr, &err);
    if (rc == GW_ENOTFOUND) {
        d->due = gw_now_ms() + 1000;
        outcome(d, ST_DEFERRED, "template not loaded yet");
        return -1;
    }
    if (rc < 0) {
        outcome(d, ST_FAILED, err);
        return -1;
    }
    memset(&td, 0, sizeof td);
    td.recipient = d->m.recipient;
    td.vars = d->m.vars;
    td.message_id = d->m.key;
    td.campaign = d->campaign;
    td.channel = gw_channel_name(d->ch);
    /* Marketing messages carry an unsubscribe link (and, for email,
     * List-Unsubscribe); every fax does, for its opt-out notice. */
    if (!d->system && (strcmp(msg_class(d), "marketing") == 0 ||
                       d->ch == CH_FAX) && !d->unsub) {
        d->unsub = unsub_url(g, d->ch, d->campaign, d->m.customer,
                             d->address);
        d->m.unsubscribe_url = d->unsub;
        if (d->ch == CH_EMAIL && g->conf->unsubscribe_mailto && d->unsub) {
            const char *tok = strrchr(d->unsub, '/') + 1;
            d->mailto = g_strdup_printf("%s?subject=unsubscribe%%20%s",
                                        g->conf->unsubscribe_mailto, tok);
            d->m.unsubscribe_mailto = d->mailto;
        }
    }
    td.unsubscribe_url = d->m.unsubscribe_url;
    memset(&te, 0, sizeof te);
    if ((rc = tpl_render(tref_tpl(d->tr), tch[d->ch], &td, NULL, &g->dp->out,
                         &te)) < 0) {
        if (rc == -ENOMEM)
            fatal("out of memory");
        snprintf(reason, sizeof reason, "render: %s",
                 tpl_error_format(&te, (char[400]){ 0 }, 400));
        outcome(d, ST_FAILED, reason);
        return -1;
    }
    /* Marketing email: links through /c, an open pixel through /o. */
    if (d->ch == CH_EMAIL && d->unsub && g->dp->out.html.len &&
        (g->conf->track_opens || g->conf->track_clicks) &&
        hits_rewrite(g, d->m.key, d->campaign, d->m.customer, d->unsub,
                     &g->dp->out.html, &g->dp->scratch) == 0) {
        struct buf t = g->dp->out.html;
        g->dp->out.html = g->dp->scratch;
        g->dp->scratch = t;
    }
    keep_parts(d, &g->dp->out);
    for (size_t i = 0; i < g->dp->out.nimages; i++) {
        const struct tpl_image *im = g->dp->out.images[i];
        d->images[i].name = im->name;
        d->images[i].content_type = im->content_type;
        d->images[i].content_id = im->cid;
        d->images[i].data = im->data;
        d->images[i].len = im->len;
    }
    c->images = d->images;
    c->nimages = g->dp->out.nimages;
    return 0;
}

static struct channel *
channel_for(struct gw *g, const char *provider, int *idx)
{
    for (size_t i = 0; i < g->nchan; i++)
        if (strcmp(g->chan[i]->conf->name, provider) == 0) {
            *idx = (int)i;
            return g->chan[i];
        }
    return NULL;
}

static void
send_one(struct dmsg *d, int attempt)
{
    struct gw *g = d->g;
    struct channel *ch;
    char reason[200];
    int rc = 0;

    d->m.attempt = attempt;
    if (d->campaign && !d->vars) {
        json_t *def = g_hash_table_lookup(g->dp->vars, d->campaign);
        json_t *v = def ? json_object_get(def, "vars") : NULL;
        if (!def) {
            /* Its definition could not be read (Redis dropped): retry
             * rather than send without the campaign's variables. */
            d->due = gw_now_ms() + 1000;
            outcome(d, ST_DEFERRED, "campaign definition not loaded");
            return;
        }
        if (v && !json_is_null(v))
            d->m.vars = d->vars = json_incref(v);
    }
    if (render(d) < 0)
        return;                 /* the outcome is recorded */
    if ((ch = channel_for(g, d->m.provider, &d->pidx)) == NULL) {
        snprintf(reason, sizeof reason, "provider '%.100s' is not configured",
                 d->m.provider);
        outcome(d, ST_FAILED, reason);
        return;
    }
    if (g->stopping || (rc = ch_send(ch, &d->m, on_sent, d)) < 0) {
        /* Not sent: hand it back through the delayed queue, due now. */
        d->due = gw_now_ms();
        outcome(d, ST_DEFERRED, g->stopping ? "handed back at shutdown"
                                            : gw_strerror(rc));
    }
}

static void
on_begun(struct ops *o, redisReply *rep)
{
    struct dbatch *b = o->arg;
    struct gw *g = b->g;

    if (!rep) {
        /* Shutting down with Redis away: the entries stay pending. */
        for (size_t i = 0; i < b->n; i++) {
            stream_done(b->msgs[i]->e);
            dmsg_free(b->msgs[i]);
        }
        free(b->msgs);
        free(b);
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        struct dmsg *d = b->msgs[i];
        const char *r = (rep && rep->type == REDIS_REPLY_ARRAY &&
                         i < rep->elements &&
                         rep->element[i]->type == REDIS_REPLY_STRING)
                        ? rep->element[i]->str : "missing";

        if (strncmp(r, "go:", 3) == 0) {
            const char *att = strrchr(r, ':');
            g->m.messages[d->ch][ST_SENDING]++;
            send_one(d, atoi(att + 1));
        } else if (strncmp(r, "skip:", 5) == 0) {
            int st = msg_state_parse(r + 5);
            if (st > 0)
                g->m.messages[d->ch][st]++;
            outcome(d, ST_NONE, NULL);
        } else if (strcmp(r, "paused") == 0) {
            d->park = 1;
            outcome(d, ST_NONE, NULL);
        } else if (strncmp(r, "final:", 6) == 0) {
            log_debug(&d->m.log, "already %s; acked without sending", r + 6);
            outcome(d, ST_NONE, NULL);
        } else {
            g->m.orphans++;
            log_warn(&d->m.log, "no ledger entry; acked without sending");
            outcome(d, ST_NONE, NULL);
        }
    }
    free(b->msgs);
    free(b);
}

static void
begin_batch(struct dbatch *b)
{
    struct gw *g = b->g;
    struct ops *o;

    int64_t maxwin = 0;

    for (size_t i = 0; i < g->conf->nfreq; i++)
        if (g->conf->freq[i].window_s * 1000 > maxwin)
            maxwin = g->conf->freq[i].window_s * 1000;
    o = ops_new(g, &gw_scripts.begin, on_begun, b);
    ops_key(o, g->k.events);
    for (size_t i = 0; i < b->n; i++) {
        struct dmsg *d = b->msgs[i];
        ops_key(o, d->ledger);
        ops_key(o, d->ckey ? d->ckey : d->ledger);
        ops_key(o, g->k.suppress[d->ch]);
        ops_key(o, g->k.suppress_customer);
    }
    ops_head(o);
    ops_argi(o, (int64_t)b->n);
    ops_argi(o, maxwin);
    for (size_t i = 0; i < b->n; i++) {
        struct dmsg *d = b->msgs[i];
        ops_arg(o, d->ckey ? "1" : "0");
        ops_argi(o, d->expires);
        ops_arg(o, g->conf->channel[d->ch].in_doubt_resend ? "1" : "0");
        ops_arg(o, d->address);
        ops_arg(o, d->m.customer);
        ops_arg(o, d->system ? "1" : "0");
        policy_freq_rules(g, d->ch, msg_class(d), &g->dp->rules);
        ops_argn(o, (const char *)g->dp->rules.data, g->dp->rules.len);
        ops_arg(o, msg_class(d));
        ops_arg(o, gw_channel_name(d->ch));
        ops_arg(o, d->m.key);
        {
            const json_t *def = d->campaign
                ? g_hash_table_lookup(g->dp->vars, d->campaign) : NULL;
            const json_t *bm = json_object_get(json_object_get(def,
                                                               "budget"),
                                               "max");
            char c[40];
            d->budget = json_is_number(bm) ? json_number_value(bm) : 0;
            d->est = d->budget > 0 ? conf_price_of(g->conf, d->ch, d->m.to,
                                                   1) : 0;
            snprintf(c, sizeof c, "%.6f", d->est);
            ops_arg(o, c);
            snprintf(c, sizeof c, "%.6f", d->budget);
            ops_arg(o, c);
        }
        ops_arg(o, d->m.template);
        ops_arg(o, d->campaign);
    }
    ops_run(o);
}

static struct dbatch *
dbatch_new(struct gw *g, size_t cap)
{
    struct dbatch *b = calloc(1, sizeof *b);

    if (!b || (b->msgs = calloc(cap ? cap : 1, sizeof *b->msgs)) == NULL)
        fatal("out of memory");
    b->g = g;
    return b;
}

static void
go_batch(struct dbatch *b)
{
    if (b->n == 0) {
        free(b->msgs);
        free(b);
        return;
    }
    begin_batch(b);
}

static void on_wait_timer(uv_timer_t *t);

static void
arm_wait_timer(struct gw *g, int64_t wait_us)
{
    uint64_t ms = wait_us <= 0 ? 1 : (uint64_t)((wait_us + 999) / 1000);

    if (!g->dp->timer_open)
        return;
    if (ms > 1000)
        ms = 1000;
    if (uv_is_active((uv_handle_t *)&g->dp->wait_timer) &&
        uv_timer_get_due_in(&g->dp->wait_timer) <= ms)
        return;
    uv_timer_start(&g->dp->wait_timer, on_wait_timer, ms, 0);
}

/* Release what the buckets allow now, oldest first per path. */
static void
on_wait_timer(uv_timer_t *t)
{
    struct gw *g = t->data;
    struct dispatch *dp = g->dp;
    struct dbatch *b = dbatch_new(g, dp->nwaiting);
    int64_t now = gw_now_ms() * 1000, minwait = INT64_MAX;
    GHashTableIter it;
    gpointer v;

    policy_leases(g);
    g_hash_table_iter_init(&it, dp->waits);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        struct wgroup *w = v;
        struct dmsg *d;
        int64_t wait = 0;

        while ((d = g_queue_peek_head(&w->q)) != NULL &&
               throttle_path_take(&w->path, now, 1, &wait) == 0) {
            g_queue_pop_head(&w->q);
            dp->nwaiting--;
            b->msgs[b->n++] = d;
        }
        if (g_queue_is_empty(&w->q))
            g_hash_table_iter_remove(&it);
        else if (wait < minwait)
            minwait = wait;
    }
    go_batch(b);
    if (dp->nwaiting)
        /* shared buckets wait for their lease: poll at least every 20 ms */
        arm_wait_timer(g, minwait < 20000 ? minwait : 20000);
}

/* Apply the contact policy to a batch whose definitions and templates
 * are at hand: the sending window, then the token buckets. What may go
 * now goes to the begin script. */
static void
admit_batch(struct dbatch *b)
{
    struct gw *g = b->g;
    struct dispatch *dp = g->dp;
    struct dbatch *go = dbatch_new(g, b->n);
    int64_t now_ms = gw_now_ms(), now = now_ms * 1000;
    char reason[200], key[THROTTLE_NAME_MAX * 2];

    for (size_t i = 0; i < b->n; i++) {
        struct dmsg *d = b->msgs[i];
        const json_t *cw = d->campaign
            ? json_object_get(g_hash_table_lookup(dp->vars, d->campaign),
                              "window") : NULL;
        const char *tz = json_string_value(json_object_get(d->m.recipient,
                                                           "tz"));
        struct throttle_path path;
        struct wgroup *w;
        int64_t open, wait = 0;
        char *domain = NULL;
        const char *sender;

        if (!d->system &&
            (open = policy_window(g, d->ch, msg_class(d), tz, cw, now_ms))
                != 0) {
            if (open < 0) {
                outcome(d, ST_FAILED, "no sending window ever opens for "
                        "this message (quiet hours, days, holidays)");
            } else if (d->expires && open > d->expires) {
                outcome(d, ST_EXPIRED, "deadline before its sending window "
                        "opens (quiet hours)");
            } else {
                GDateTime *dt = g_date_time_new_from_unix_utc(open / 1000);
                char *s = g_date_time_format_iso8601(dt);
                snprintf(reason, sizeof reason, "quiet hours: waiting for "
                         "the window to open at %s", s);
                g_free(s);
                g_date_time_unref(dt);
                d->due = open;
                outcome(d, ST_DEFERRED, reason);
            }
            continue;
        }
        if (g->conf->nthrottle == 0) {
            go->msgs[go->n++] = d;
            continue;
        }
        if (d->ch == CH_EMAIL && d->m.to && strchr(d->m.to, '@'))
            domain = g_ascii_strdown(strchr(d->m.to, '@') + 1, -1);
        sender = provider_sender(g, d->m.provider);
        policy_path(g, d->m.provider, sender, domain, &path, now);
        g_free(domain);
        if (path.n == 0) {
            go->msgs[go->n++] = d;
            continue;
        }
        key[0] = 0;
        for (int k = 0; k < path.n; k++)
            g_strlcat(key, path.b[k]->name ? path.b[k]->name : "?",
                      sizeof key);
        w = g_hash_table_lookup(dp->waits, key);
        if (!w && throttle_path_take(&path, now, 1, &wait) == 0) {
            go->msgs[go->n++] = d;
            continue;
        }
        if (!w) {
            if ((w = calloc(1, sizeof *w)) == NULL)
                fatal("out of memory");
            w->key = g_strdup(key);
            w->path = path;
            /* kept across timer ticks: not to be swept meanwhile */
            throttle_path_hold(&w->path);
            g_queue_init(&w->q);
            w->rate = 1e12;
            for (int k = 0; k < path.n; k++)
                if (path.b[k]->conf_rate < w->rate)
                    w->rate = path.b[k]->conf_rate;
            g_hash_table_insert(dp->waits, w->key, w);
        }
        if (g_queue_get_length(&w->q) >= (w->rate * 2 > 64 ? w->rate * 2
                                                            : 64)) {
            /* More than about two seconds of backlog on this path: let
             * the delayed queue hold it rather than our memory. */
            d->due = now_ms + (int64_t)(1000.0 *
                     g_queue_get_length(&w->q) / w->rate);
            outcome(d, ST_DEFERRED, "throttled: waiting for the rate limit");
            continue;
        }
        g_queue_push_tail(&w->q, d);
        dp->nwaiting++;
        arm_wait_timer(g, wait);
    }
    free(b->msgs);
    free(b);
    go_batch(go);
}

struct def_fetch {
    struct dbatch *b;
    char          *campaign;
};

static void
on_def(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct def_fetch *f = arg;
    struct dbatch *b = f->b;
    json_t *vars = json_null();

    (void)r;
    if (rep && rep->type == REDIS_REPLY_STRING) {
        json_t *def = json_loadb(rep->str, rep->len, 0, NULL);
        if (def) {
            json_decref(vars);
            vars = def;
        }
    }
    if (rep) {
        if (g_hash_table_size(b->g->dp->vars) >= CACHE_MAX)
            g_hash_table_remove_all(b->g->dp->vars);
        g_hash_table_replace(b->g->dp->vars, f->campaign, vars);
        f->campaign = NULL;
    } else {
        json_decref(vars);
    }
    g_free(f->campaign);
    free(f);
    /* Without a reply the vars stay unknown; the begin script will find
     * Redis down too and the batch is retried as a whole. */
    if (--b->fetching == 0)
        admit_batch(b);
}

static void
on_templates(void *arg, int ok)
{
    struct dbatch *b = arg;

    (void)ok;   /* a set still missing is deferred by render() */
    if (--b->fetching == 0)
        admit_batch(b);
}

static struct dmsg *
dmsg_new(struct gw *g, struct entry *e, enum gw_channel ch)
{
    struct dmsg *d = calloc(1, sizeof *d);
    json_t *doc = NULL, *exp;
    const char *key;

    if (!d)
        fatal("out of memory");
    d->g = g;
    d->e = e;
    d->ch = ch;
    d->cost = -1;
    g->dp->inflight++;
    if (!e->payload ||
        (doc = json_loadb(e->payload, e->len, 0, NULL)) == NULL ||
        !json_is_string(json_object_get(doc, "key"))) {
        json_decref(doc);
        return d;               /* no ledger: acked as an orphan */
    }
    d->doc = doc;
    key = json_string_value(json_object_get(doc, "key"));
    d->ledger = g_strdup_printf("%smsg:%s", g->k.prefix, key);
    d->campaign = json_string_value(json_object_get(doc, "campaign"));
    if (d->campaign) {
        d->ckey = g_strdup_printf("%scampaign:%s", g->k.prefix, d->campaign);
        d->parked = g_strdup_printf("%sparked:%s", g->k.prefix, d->campaign);
    }
    exp = json_object_get(doc, "expires");
    d->expires = json_is_integer(exp) ? json_integer_value(exp) : 0;
    exp = json_object_get(doc, "send_at");
    d->send_at = json_is_integer(exp) ? json_integer_value(exp) : 0;
    d->m.key = key;
    d->m.channel = ch;
    d->m.campaign = d->campaign;
    d->m.customer = json_string_value(json_object_get(doc, "customer"));
    d->m.provider = json_string_value(json_object_get(doc, "provider"));
    d->m.template = json_string_value(json_object_get(doc, "template"));
    d->m.class = json_string_value(json_object_get(doc, "class"));
    d->m.recipient = json_object_get(doc, "recipient");
    if (!d->campaign && json_object_get(doc, "vars"))
        d->m.vars = d->vars = json_incref(json_object_get(doc, "vars"));
    if (!d->m.customer)
        d->m.customer = "";
    d->body = json_string_value(json_object_get(doc, "body"));
    {
        json_t *se = json_object_get(doc, "smart_encoding");
        d->m.smart_encoding = se ? json_is_true(se) : -1;
    }
    d->system = json_is_true(json_object_get(doc, "system"));
    {
        static const char *const contact[CH_COUNT] = { "email", "phone",
                                                       "fax" };
        const char *to = json_string_value(json_object_get(d->m.recipient,
                                                           contact[ch]));
        d->m.to = to;
        /* email addresses compare case-insensitively in the sets */
        d->address = g_utf8_strdown(to ? to : "", -1);
    }
    if (!d->m.provider)
        d->m.provider = "";
    if (!d->m.template)
        d->m.template = "";
    snprintf(d->logctx, sizeof d->logctx, "msg=%s", key);
    d->m.log.module = gw_channel_name(ch);
    d->m.log.ctx = d->logctx;
    return d;
}

void
dispatch_entries(struct gw *g, struct entry **es, size_t n)
{
    struct dbatch *b = calloc(1, sizeof *b);
    enum gw_channel ch = (enum gw_channel)(es[0]->s - &g->streams[S_EMAIL]);
    GHashTable *want = NULL;
    char reason[160];

    if (!b || (b->msgs = calloc(n, sizeof *b->msgs)) == NULL)
        fatal("out of memory");
    b->g = g;
    for (size_t i = 0; i < n; i++) {
        struct dmsg *d = dmsg_new(g, es[i], ch);

        if (!d->ledger) {
            g->m.orphans++;
            log_error(&lg, "%s %s: not a message entry; acked",
                      es[i]->s->key, es[i]->id);
            outcome(d, ST_NONE, NULL);
            continue;
        }
        if (es[i]->deliveries > (unsigned)g->conf->max_deliveries) {
            snprintf(reason, sizeof reason, "delivered %u times without an "
                     "outcome (max_deliveries = %lld)", es[i]->deliveries,
                     (long long)g->conf->max_deliveries);
            outcome(d, ST_FAILED, reason);
            continue;
        }
        if (d->send_at > gw_now_ms() + 50) {
            /* Not yet: the delayed queue hands it back at send_at. */
            d->due = d->send_at;
            outcome(d, ST_DEFERRED, "waiting for send_at");
            continue;
        }
        b->msgs[b->n++] = d;
        if (d->campaign &&
            !g_hash_table_contains(g->dp->vars, d->campaign)) {
            if (!want)
                want = g_hash_table_new(g_str_hash, g_str_equal);
            g_hash_table_add(want, (gpointer)d->campaign);
        }
    }
    if (b->n == 0) {
        free(b->msgs);
        free(b);
    } else {
        /* fetches first, then admit_batch() */
        GHashTable *tset = g_hash_table_new(g_str_hash, g_str_equal);
        GPtrArray *names = g_ptr_array_new();
        GHashTableIter it;
        gpointer id;

        b->fetching = 1;        /* held until every fetch is sent */
        if (want) {
            g_hash_table_iter_init(&it, want);
            while (g_hash_table_iter_next(&it, &id, NULL)) {
                struct def_fetch *f = calloc(1, sizeof *f);
                char *ck = g_strdup_printf("%scampaign:%s", g->k.prefix,
                                           (char *)id);
                const char *argv[] = { "HGET", ck, "def" };
                f->b = b;
                f->campaign = g_strdup(id);
                if (gw_redis_cmd(g->cmd, on_def, f, 0, 3, argv, NULL) == 0)
                    b->fetching++;
                else {
                    g_free(f->campaign);
                    free(f);
                }
                g_free(ck);
            }
        }
        for (size_t i = 0; i < b->n; i++)
            if (b->msgs[i]->m.template[0] &&
                g_hash_table_add(tset, (gpointer)b->msgs[i]->m.template))
                g_ptr_array_add(names, (gpointer)b->msgs[i]->m.template);
        b->fetching++;
        tplcache_ensure(g, names, on_templates, b);
        g_ptr_array_free(names, TRUE);
        g_hash_table_destroy(tset);
        if (--b->fetching == 0)
            admit_batch(b);
    }
    if (want)
        g_hash_table_destroy(want);
}

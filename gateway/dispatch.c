/*
 * dispatch.c -- from gw:q:<channel> to the channel and back to the ledger.
 * A batch of queue entries is moved to `sending` by one script (which also
 * skips messages whose ledger is final, whose campaign is paused or
 * cancelled, or whose deadline passed), each message goes to its
 * provider's channel, and the outcomes are written together with their
 * XACKs by one more script, batched per loop iteration.
 */
#include "gw.h"

#include "../common/err.h"
#include "../templates/template.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct log_ctx lg = { "dispatch", NULL };

#define CACHE_MAX 1024

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
    struct content_image images[TPL_MAX_IMAGES];
    char            logctx[160];
    /* the outcome */
    enum msg_state  state;      /* ST_NONE: ack only */
    char           *reason, *provider_id;
    int             park;
    int             units;      /* pages, segments (0: one message) */
    int             pidx;       /* index of its channel in g->chan */
    int64_t         due;
    struct dmsg    *next;
};

struct dispatch {
    GHashTable  *vars;          /* campaign id -> json_t vars (or null) */
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

static void begin_batch(struct dbatch *b);

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
    free(d->reason);
    free(d->provider_id);
    free(d);
}

int
dispatch_init(struct gw *g)
{
    if ((g->dp = calloc(1, sizeof *g->dp)) == NULL)
        return -1;
    g->dp->vars = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify)json_decref);
    tpl_out_init(&g->dp->out, 0);
    return 0;
}

void
dispatch_free(struct gw *g)
{
    if (!g->dp)
        return;
    g_hash_table_destroy(g->dp->vars);
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

/* Exponential backoff with jitter, capped; 0 once attempts are used up
 * or the deadline would pass. */
static int64_t
retry_at(struct dmsg *d)
{
    const struct config *c = d->g->conf;
    int64_t delay = c->retry_base_ms, now = gw_now_ms();

    if (d->m.attempt >= c->max_attempts)
        return 0;
    for (int i = 1; i < d->m.attempt && delay < c->retry_max_ms; i++)
        delay *= 2;
    if (delay > c->retry_max_ms)
        delay = c->retry_max_ms;
    delay = delay / 2 + (int64_t)(g_random_double() * (double)(delay / 2));
    if (d->expires && now + delay > d->expires)
        return 0;
    return now + delay;
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
        d->g->m.prov[d->pidx].units += o->units > 0 ? (uint64_t)o->units : 1;
        if (o->provider_id)
            d->provider_id = strdup(o->provider_id);
        outcome(d, o->final ? ST_DELIVERED : ST_ACCEPTED, NULL);
        return;
    case SEND_PERMFAIL:
        metrics_reason(&d->g->m.prov[d->pidx], "permanent");
        outcome(d, ST_FAILED, o->reply ? o->reply : "permanent failure");
        return;
    case SEND_TEMPFAIL:
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
    if ((d->due = retry_at(d)) == 0) {
        snprintf(reason, sizeof reason, "%s after %d attempts: %s",
                 d->expires && gw_now_ms() >= d->expires - 1 ? "deadline"
                 : "gave up", d->m.attempt, o->reply ? o->reply : "");
        outcome(d, d->m.attempt >= d->g->conf->max_attempts ? ST_FAILED
                                                           : ST_EXPIRED,
                reason);
        return;
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
        json_t *v = g_hash_table_lookup(g->dp->vars, d->campaign);
        if (!v) {
            /* Its definition could not be read (Redis dropped): retry
             * rather than send without the campaign's variables. */
            d->due = gw_now_ms() + 1000;
            outcome(d, ST_DEFERRED, "campaign definition not loaded");
            return;
        }
        if (!json_is_null(v))
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
    for (size_t i = 0; i < b->n; i++) {
        struct dmsg *d = b->msgs[i];
        ops_arg(o, d->ckey ? "1" : "0");
        ops_argi(o, d->expires);
        ops_arg(o, g->conf->channel[d->ch].in_doubt_resend ? "1" : "0");
        ops_arg(o, d->address);
        ops_arg(o, d->m.customer);
        ops_arg(o, d->system ? "1" : "0");
    }
    ops_run(o);
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
        json_t *v = def ? json_object_get(def, "vars") : NULL;
        if (v)
            vars = json_incref(v);
        json_decref(def);
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
        begin_batch(b);
}

static void
on_templates(void *arg, int ok)
{
    struct dbatch *b = arg;

    (void)ok;   /* a set still missing is deferred by render() */
    if (--b->fetching == 0)
        begin_batch(b);
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
            begin_batch(b);
    }
    if (want)
        g_hash_table_destroy(want);
}

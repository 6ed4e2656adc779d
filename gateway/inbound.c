/*
 * inbound.c -- what providers send us: delivery receipts are matched to
 * their message through gw:pid:<provider>:<id> (kept under gw:rcpt:... if
 * they beat the submit response) and move it to its final state; MO
 * messages are events, and STOP-type keywords opt the number out of SMS
 * (with one confirmation), HELP answers with the configured text, START
 * lifts the opt-out; inbound faxes are events and touches of the customer
 * whose fax number sent them. All Redis work is one script each, and a
 * channel that asked to hear back (a webhook) hears once it is recorded.
 */
#include "gw.h"

#include "../common/err.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct log_ctx lg = { "inbound", NULL };

/* Keywords, after trimming punctuation and space and folding case. */
static const char *const stop_words[] = {
    "stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit",
    "revoke", "opt out", "optout", "opt-out", NULL
};
static const char *const start_words[] = { "start", "unstop", NULL };
static const char *const help_words[] = { "help", NULL };

static int
in_list(const char *w, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(w, list[i]) == 0)
            return 1;
    return 0;
}

const char *
mo_keyword(const char *text)
{
    char w[32];
    size_t n = 0;
    const char *p = text, *end = text + strlen(text);

    /* Trim anything that is not a letter at both ends (punctuation,
     * spaces, emoji bytes), fold case, collapse inner spaces. */
    while (p < end && !isalpha((unsigned char)*p))
        p++;
    while (end > p && !isalpha((unsigned char)end[-1]))
        end--;
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (n + 1 >= sizeof w)
            return "none";      /* a sentence, not a keyword */
        if (isspace(c)) {
            if (n && w[n - 1] != ' ')
                w[n++] = ' ';
            continue;
        }
        w[n++] = (char)tolower(c);
    }
    w[n] = 0;
    if (in_list(w, stop_words))
        return "stop";
    if (in_list(w, start_words))
        return "start";
    if (in_list(w, help_words))
        return "help";
    return "none";
}

/* Who to tell once the event is in Redis (a webhook answers then). */
struct notify {
    void (*done)(void *arg, int rc);
    void  *arg;
};

static struct notify *
notify_new(const struct inbound *in)
{
    struct notify *n;

    if (!in->done)
        return NULL;
    if ((n = malloc(sizeof *n)) == NULL)
        fatal("out of memory");
    n->done = in->done;
    n->arg = in->done_arg;
    return n;
}

static void
notify(struct notify *n, int rc)
{
    if (n) {
        n->done(n->arg, rc);
        free(n);
    }
}

/* A receipt's state change counts in gw_messages_total like the
 * dispatcher's own. */
static void
on_receipt(struct ops *o, redisReply *rep)
{
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_STRING &&
        rep->element[1]->type == REDIS_REPLY_STRING) {
        const char *what = rep->element[0]->str;
        int st = strcmp(what, "retry") == 0 ? ST_DEFERRED
                                            : msg_state_parse(what);
        int ch = gw_channel_parse(rep->element[1]->str);

        if (strcmp(what, "early") == 0)
            log_debug(&lg, "receipt before its submit response: kept");
        else if (st > ST_NONE && ch >= 0)
            o->g->m.messages[ch][st]++;
    }
    notify(o->arg, rep && rep->type != REDIS_REPLY_ERROR ? 0 : -1);
}

static void
on_done(struct ops *o, redisReply *rep)
{
    /* No reply: dropped at shutdown; an error: the script failed for
     * good. Either way the provider should send it again. */
    notify(o->arg, rep && rep->type != REDIS_REPLY_ERROR ? 0 : -1);
}

static void
receipt(struct gw *g, struct channel *ch, const struct inbound *in)
{
    static const char *const names[] = {
        [RCPT_DELIVERED] = "delivered", [RCPT_UNDELIVERABLE] = "failed",
        [RCPT_EXPIRED] = "expired", [RCPT_REJECTED] = "failed",
        [RCPT_TEMPFAIL] = "retry",
    };
    const struct conf_channel *cc = &g->conf->channel[CH_FAX];
    struct ops *o;

    if (in->state == RCPT_ENROUTE || !in->provider_id || !*in->provider_id) {
        /* intermediate: no state change */
        notify(notify_new(in), 0);
        return;
    }
    o = ops_new(g, &gw_scripts.receipt, on_receipt, notify_new(in));
    ops_key(o, g->k.events);
    ops_key(o, g->k.delayed);
    ops_head(o);
    ops_arg(o, ch->conf->name);
    ops_arg(o, in->provider_id);
    ops_arg(o, names[in->state]);
    ops_arg(o, in->stat ? in->stat : "");
    ops_arg(o, in->error ? in->error : "");
    /* only a fax receipt says "try again" (busy line, no answer) */
    ops_argi(o, cc->retry_base_ms);
    ops_argi(o, cc->retry_max_ms);
    ops_argi(o, cc->max_attempts);
    {
        char j[32];
        snprintf(j, sizeof j, "%.6f", g_random_double());
        ops_arg(o, j);
    }
    ops_run(o);
}

static void
fax_in(struct gw *g, struct channel *ch, const struct inbound *in)
{
    struct ops *o;

    if (!in->fax_id || !*in->fax_id || !in->path) {
        log_warn(&lg, "inbound fax from %s without an id or file: ignored",
                 ch->conf->name);
        notify(notify_new(in), 0);
        return;
    }
    log_info(&lg, "inbound fax %s from %s via %s: %d pages, %s", in->fax_id,
             in->from ? in->from : "?", ch->conf->name, in->pages, in->path);
    o = ops_new(g, &gw_scripts.faxin, on_done, notify_new(in));
    ops_key(o, g->k.events);
    ops_head(o);
    ops_arg(o, ch->conf->name);
    ops_arg(o, in->fax_id);
    ops_arg(o, in->from ? in->from : "");
    ops_arg(o, in->to ? in->to : "");
    ops_arg(o, in->path);
    ops_argi(o, in->pages);
    ops_argi(o, g->conf->touch_max);
    ops_run(o);
}

static void
mo(struct gw *g, struct channel *ch, const struct inbound *in)
{
    const struct conf_channel *cc = &g->conf->channel[CH_SMS];
    const char *act = mo_keyword(in->text ? in->text : "");
    const char *reply = NULL;
    char *key = NULL, *payload = NULL;
    struct ops *o;

    if (!in->from || !*in->from) {
        log_warn(&lg, "MO without a sender from %s: ignored",
                 ch->conf->name);
        notify(notify_new(in), 0);
        return;
    }
    if (strcmp(act, "stop") == 0)
        reply = cc->stop_reply;
    else if (strcmp(act, "help") == 0)
        reply = cc->help_reply;
    else if (strcmp(act, "start") == 0)
        reply = cc->start_reply;
    if (reply && *reply) {
        json_t *p = json_object(), *r = json_object();

        key = g_strdup_printf("mo-reply:%s:%s:%lld", act, in->from,
                              (long long)gw_now_ms());
        json_object_set_new(r, "customer_id", json_string(""));
        json_object_set_new(r, "phone", json_string(in->from));
        json_object_set_new(p, "key", json_string(key));
        json_object_set_new(p, "customer", json_string(""));
        json_object_set_new(p, "provider", json_string(ch->conf->name));
        json_object_set_new(p, "class", json_string("transactional"));
        json_object_set_new(p, "system", json_true());
        json_object_set_new(p, "body", json_string(reply));
        json_object_set_new(p, "recipient", r);
        payload = json_dumps(p, JSON_COMPACT);
        json_decref(p);
    }
    log_info(&lg, "MO from %s via %s: %s", in->from, ch->conf->name, act);
    o = ops_new(g, &gw_scripts.mo, on_done, notify_new(in));
    ops_key(o, g->k.events);
    ops_key(o, g->k.suppress[CH_SMS]);
    ops_key(o, g->k.q[CH_SMS]);
    ops_head(o);
    ops_arg(o, act);
    ops_arg(o, in->from);
    ops_arg(o, in->to ? in->to : "");
    ops_arg(o, in->text ? in->text : "");
    ops_arg(o, ch->conf->name);
    ops_arg(o, key ? key : "");
    ops_arg(o, payload ? payload : "");
    ops_run(o);
    g_free(key);
    free(payload);
}

void
inbound_cb(struct channel *ch, const struct inbound *in, void *arg)
{
    struct gw *g = arg;

    for (size_t i = 0; i < g->nchan; i++) {
        struct prov_metrics *pm = &g->m.prov[i];
        if (g->chan[i] != ch)
            continue;
        pm->inbound[in->kind <= IN_FAX ? in->kind : 0]++;
        if (in->kind == IN_RECEIPT && in->state <= RCPT_TEMPFAIL) {
            pm->receipts[in->state]++;
            if (in->state != RCPT_ENROUTE && in->state != RCPT_DELIVERED)
                metrics_reason(pm, in->error && *in->error ? in->error
                                                           : in->stat);
        }
    }

    if (in->kind == IN_RECEIPT)
        receipt(g, ch, in);
    else if (in->kind == IN_FAX)
        fax_in(g, ch, in);
    else
        mo(g, ch, in);
}

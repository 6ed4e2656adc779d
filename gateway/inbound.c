/*
 * inbound.c -- what providers send us: delivery receipts are matched to
 * their message through gw:pid:<provider>:<id> (kept under gw:rcpt:... if
 * they beat the submit response) and move it to its final state; MO
 * messages are events, and STOP-type keywords opt the number out of SMS
 * (with one confirmation), HELP answers with the configured text, START
 * lifts the opt-out. All Redis work is one script each.
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

static void
on_done(struct ops *o, redisReply *rep)
{
    (void)o;
    if (rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "early")
        == 0)
        log_debug(&lg, "receipt before its submit response: kept");
}

static void
receipt(struct gw *g, struct channel *ch, const struct inbound *in)
{
    static const char *const names[] = {
        [RCPT_DELIVERED] = "delivered", [RCPT_UNDELIVERABLE] = "failed",
        [RCPT_EXPIRED] = "expired", [RCPT_REJECTED] = "failed",
    };
    struct ops *o;

    if (in->state == RCPT_ENROUTE || !in->provider_id || !*in->provider_id)
        return;                 /* intermediate: no state change */
    o = ops_new(g, &gw_scripts.receipt, on_done, NULL);
    ops_key(o, g->k.events);
    ops_head(o);
    ops_arg(o, ch->conf->name);
    ops_arg(o, in->provider_id);
    ops_arg(o, names[in->state]);
    ops_arg(o, in->stat ? in->stat : "");
    ops_arg(o, in->error ? in->error : "");
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
    o = ops_new(g, &gw_scripts.mo, on_done, NULL);
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

    if (in->kind == IN_RECEIPT)
        receipt(g, ch, in);
    else
        mo(g, ch, in);
}

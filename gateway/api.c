/*
 * api.c -- the admin API under /api/, behind a bearer token from the
 * config ([http] api_token; without one the API is off). JSON in and out,
 * errors as {"error": "..."}. Every answer comes after Redis has answered;
 * writes go through the same keys and jobs the rest of the gateway uses
 * (a pause is a control job on gw:jobs, so it is ordered with the rest).
 *
 *   GET    /api/customers/<id>/touches[?limit=N]  touch history + counts
 *   GET    /api/campaigns/<id>                    state and counters
 *   POST   /api/campaigns/<id>/<pause|resume|cancel>
 *   POST   /api/suppress    {"channel":"email","address":"a@b"} or
 *                           {"customer":"c1"}
 *   DELETE /api/suppress    same body: lifts it (resubscribe)
 *   POST   /api/conversions {"id","customer_id","amount","currency","at"}
 *   GET    /api/reports/roi[?format=csv]
 */
#include "gw.h"

#include "../common/err.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct call {
    struct gw        *g;
    ch_http_reply_fn *reply;
    void             *arg;
    char             *id;
};

static void
answer(ch_http_reply_fn *reply, void *arg, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT);

    json_decref(body);
    reply(arg, status, "application/json", s ? s : "{}", s ? strlen(s) : 2);
    free(s);
}

static void
error(ch_http_reply_fn *reply, void *arg, int status, const char *msg)
{
    answer(reply, arg, status, json_pack("{s:s}", "error", msg));
}

static struct call *
call_new(struct gw *g, ch_http_reply_fn *reply, void *arg, const char *id)
{
    struct call *c = calloc(1, sizeof *c);

    if (!c)
        fatal("out of memory");
    c->g = g;
    c->reply = reply;
    c->arg = arg;
    c->id = g_strdup(id);
    return c;
}

static void
call_free(struct call *c)
{
    g_free(c->id);
    free(c);
}

/* A path segment that is an id: printable, no '/', at most 200 bytes. */
static int
id_ok(const char *s, size_t n)
{
    if (n == 0 || n > 200)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f || s[i] == '/')
            return 0;
    return 1;
}

/* ---- touches ---- */

static void
on_touches(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct call *c = arg;
    json_t *list = json_array(), *by_ch = json_object(),
           *by_tpl = json_object(), *by_type = json_object();

    (void)r;
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        error(c->reply, c->arg, 503, "redis unavailable");
        json_decref(list);
        json_decref(by_ch);
        json_decref(by_tpl);
        json_decref(by_type);
        call_free(c);
        return;
    }
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        json_t *t;
        const char *ch = NULL, *tpl = NULL, *ty = NULL;

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        t = json_pack("{s:s}", "id", e->element[0]->str);
        for (size_t k = 0; k + 1 < e->element[1]->elements; k += 2) {
            const char *f = e->element[1]->element[k]->str;
            const char *v = e->element[1]->element[k + 1]->str;
            json_object_set_new(t, f, json_string(v));
            if (strcmp(f, "channel") == 0)
                ch = v;
            else if (strcmp(f, "template") == 0)
                tpl = v;
            else if (strcmp(f, "type") == 0)
                ty = v;
        }
        /* counts of what was sent: one per message */
        if (ty && strcmp(ty, "send") == 0) {
            if (ch && *ch)
                json_object_set_new(by_ch, ch, json_integer(
                    json_integer_value(json_object_get(by_ch, ch)) + 1));
            if (tpl && *tpl)
                json_object_set_new(by_tpl, tpl, json_integer(
                    json_integer_value(json_object_get(by_tpl, tpl)) + 1));
        }
        if (ty)
            json_object_set_new(by_type, ty, json_integer(
                json_integer_value(json_object_get(by_type, ty)) + 1));
        json_array_append_new(list, t);
    }
    answer(c->reply, c->arg, 200,
           json_pack("{s:s,s:o,s:{s:o,s:o,s:o}}", "customer", c->id,
                     "touches", list, "counts", "sent_by_channel", by_ch,
                     "sent_by_template", by_tpl, "by_type", by_type));
    call_free(c);
}

static int
touches(struct gw *g, const char *id, const char *query,
        ch_http_reply_fn *reply, void *arg)
{
    char *key = g_strdup_printf("%stouch:%s", g->k.prefix, id);
    char count[24];
    long limit = 1000;
    const char *l = query ? strstr(query, "limit=") : NULL;

    if (l) {
        limit = strtol(l + 6, NULL, 10);
        if (limit < 1 || limit > 100000)
            limit = 1000;
    }
    snprintf(count, sizeof count, "%ld", limit);
    const char *argv[] = { "XREVRANGE", key, "+", "-", "COUNT", count };
    struct call *c = call_new(g, reply, arg, id);
    if (gw_redis_cmd(g->cmd, on_touches, c, 0, 6, argv, NULL) < 0) {
        call_free(c);
        error(reply, arg, 503, "redis unavailable");
    }
    g_free(key);
    return 0;
}

/* ---- campaigns ---- */

static void
on_campaign(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct call *c = arg;
    json_t *o;

    (void)r;
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        error(c->reply, c->arg, 503, "redis unavailable");
    } else if (rep->elements == 0) {
        error(c->reply, c->arg, 404, "no such campaign");
    } else {
        json_t *counts = json_object();
        o = json_object();
        for (size_t k = 0; k + 1 < rep->elements; k += 2) {
            const char *f = rep->element[k]->str;
            const char *v = rep->element[k + 1]->str;
            if (strcmp(f, "def") == 0) {
                json_t *d = json_loads(v, 0, NULL);
                json_object_set_new(o, "definition", d ? d : json_null());
            } else if (strncmp(f, "n_", 2) == 0) {
                json_object_set_new(counts, f + 2,
                                    json_integer(strtoll(v, NULL, 10)));
            } else {
                json_object_set_new(o, f, json_string(v));
            }
        }
        json_object_set_new(o, "messages", counts);
        answer(c->reply, c->arg, 200, o);
    }
    call_free(c);
}

static void
on_control(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct call *c = arg;

    (void)r;
    if (!rep || rep->type == REDIS_REPLY_ERROR)
        error(c->reply, c->arg, 503, "redis unavailable");
    else
        answer(c->reply, c->arg, 202,
               json_pack("{s:s,s:s}", "queued", "control", "job",
                         rep->type == REDIS_REPLY_STRING ? rep->str : ""));
    call_free(c);
}

static int
campaign(struct gw *g, const char *method, const char *id,
         const char *action, ch_http_reply_fn *reply, void *arg)
{
    struct call *c;

    if (!action && strcmp(method, "GET") == 0) {
        char *key = g_strdup_printf("%scampaign:%s", g->k.prefix, id);
        const char *argv[] = { "HGETALL", key };
        c = call_new(g, reply, arg, id);
        if (gw_redis_cmd(g->cmd, on_campaign, c, 0, 2, argv, NULL) < 0) {
            call_free(c);
            error(reply, arg, 503, "redis unavailable");
        }
        g_free(key);
        return 0;
    }
    if (action && strcmp(method, "POST") == 0 &&
        (strcmp(action, "pause") == 0 || strcmp(action, "resume") == 0 ||
         strcmp(action, "cancel") == 0)) {
        char jid[64];
        json_t *j;
        char *s;

        snprintf(jid, sizeof jid, "api-%s-%lld-%08x", action,
                 (long long)gw_now_ms(), g_random_int());
        j = json_pack("{s:s,s:s,s:s,s:s}", "type", "control", "id", jid,
                      "campaign", id, "action", action);
        s = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        const char *argv[] = { "XADD", g->k.jobs, "*", "job", s };
        c = call_new(g, reply, arg, id);
        if (gw_redis_cmd(g->cmd, on_control, c, 0, 5, argv, NULL) < 0) {
            call_free(c);
            error(reply, arg, 503, "redis unavailable");
        }
        free(s);
        return 0;
    }
    error(reply, arg, 405, "GET /api/campaigns/<id> or POST "
          "/api/campaigns/<id>/pause|resume|cancel");
    return 0;
}

/* ---- suppression ---- */

static void
on_suppress(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct call *c = arg;

    (void)r;
    if (!rep || rep->type != REDIS_REPLY_INTEGER)
        error(c->reply, c->arg, 503, "redis unavailable");
    else
        answer(c->reply, c->arg, 200,
               json_pack("{s:b}", "changed", rep->integer > 0));
    call_free(c);
}

static int
suppress(struct gw *g, const char *method, const char *body, size_t len,
         ch_http_reply_fn *reply, void *arg)
{
    int add = strcmp(method, "POST") == 0;
    json_error_t je;
    json_t *j;
    const char *ch, *addr, *cust, *key;
    char *low = NULL;
    int chn = -1;

    if (!add && strcmp(method, "DELETE") != 0) {
        error(reply, arg, 405, "POST or DELETE");
        return 0;
    }
    j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        error(reply, arg, 400, "body: a JSON object with channel and "
              "address, or customer");
        return 0;
    }
    ch = json_string_value(json_object_get(j, "channel"));
    addr = json_string_value(json_object_get(j, "address"));
    cust = json_string_value(json_object_get(j, "customer"));
    if (cust && !ch && !addr && id_ok(cust, strlen(cust))) {
        key = g->k.suppress_customer;
        addr = cust;
    } else if (ch && addr && (chn = gw_channel_parse(ch)) >= 0 &&
               ((chn == CH_EMAIL && job_email_valid(addr)) ||
                (chn != CH_EMAIL && job_e164_valid(addr)))) {
        key = g->k.suppress[chn];
        /* as the begin script compares them */
        addr = low = g_utf8_strdown(addr, -1);
    } else {
        json_decref(j);
        error(reply, arg, 400, "give {\"channel\": email|sms|fax, "
              "\"address\": a valid address or E.164 number} or "
              "{\"customer\": id}");
        return 0;
    }
    const char *argv[] = { add ? "SADD" : "SREM", key, addr };
    struct call *c = call_new(g, reply, arg, addr);
    if (gw_redis_cmd(g->cmd, on_suppress, c, 0, 3, argv, NULL) < 0) {
        call_free(c);
        error(reply, arg, 503, "redis unavailable");
    }
    g_free(low);
    json_decref(j);
    return 0;
}

/* "Authorization: Bearer <want>", compared in constant time; never with
 * an empty or missing secret. */
int
bearer_ok(const struct ch_http_req *rq, const char *want)
{
    const char *h = rq->header(rq, "authorization");
    size_t wl, hl;

    if (!want || !*want || !h || strncmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    wl = strlen(want);
    hl = strlen(h);
    return hl == wl && CRYPTO_memcmp(h, want, wl) == 0;
}

int
api_handle(struct gw *g, const struct ch_http_req *rq, const char *query,
           ch_http_reply_fn *reply, void *arg)
{
    const char *p = rq->path, *slash;
    char id[256];

    if (!g->conf->api_token || !*g->conf->api_token) {
        error(reply, arg, 404, "the admin API is off ([http] api_token)");
        return 0;
    }
    if (!bearer_ok(rq, g->conf->api_token)) {
        error(reply, arg, 401, "a valid bearer token is required");
        return 0;
    }
    if (strncmp(p, "customers/", 10) == 0) {
        p += 10;
        slash = strchr(p, '/');
        if (!slash || !id_ok(p, (size_t)(slash - p)) ||
            strcmp(slash, "/touches") != 0 ||
            strcmp(rq->method, "GET") != 0) {
            error(reply, arg, 404, "GET /api/customers/<id>/touches");
            return 0;
        }
        snprintf(id, sizeof id, "%.*s", (int)(slash - p), p);
        return touches(g, id, query, reply, arg);
    }
    if (strncmp(p, "campaigns/", 10) == 0) {
        p += 10;
        slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (!id_ok(p, n)) {
            error(reply, arg, 404, "no such campaign");
            return 0;
        }
        snprintf(id, sizeof id, "%.*s", (int)n, p);
        return campaign(g, rq->method, id, slash ? slash + 1 : NULL, reply,
                        arg);
    }
    if (strcmp(p, "suppress") == 0)
        return suppress(g, rq->method, rq->body, rq->body_len, reply, arg);
    if (strcmp(p, "conversions") == 0) {
        if (strcmp(rq->method, "POST") != 0) {
            error(reply, arg, 405, "POST a conversion");
            return 0;
        }
        return api_conversion(g, rq->body, rq->body_len, reply, arg);
    }
    if (strcmp(p, "reports/roi") == 0) {
        if (strcmp(rq->method, "GET") != 0) {
            error(reply, arg, 405, "GET");
            return 0;
        }
        return api_roi(g, query, reply, arg);
    }
    error(reply, arg, 404, "no such endpoint");
    return 0;
}

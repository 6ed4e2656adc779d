/*
 * roi.c -- conversions and the ROI report. A conversion (a `conversion`
 * job, or POST /api/conversions) is attributed by one script to the
 * campaigns whose messages reached the customer inside the attribution
 * window, both last-touch and linear; the report reads every campaign's
 * counters in one script and works out ROI = (revenue - cost) / cost for
 * each model, as JSON or CSV.
 */
#include "gw.h"

#include "../common/buf.h"
#include "../common/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_MAX 10000        /* campaigns in one report */

struct conv {
    struct gw        *g;
    struct entry     *e;        /* from the queue, or NULL */
    ch_http_reply_fn *reply;    /* from the API, or NULL */
    void             *arg;
    char             *id;
};

static void
on_conversion(struct ops *o, redisReply *rep)
{
    struct conv *c = o->arg;

    if (c->e)
        stream_done(c->e);
    if (c->reply) {
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3) {
            c->reply(c->arg, 503, "application/json",
                     "{\"error\":\"redis unavailable\"}", 29);
        } else {
            json_t *j = json_pack("{s:s,s:b,s:s,s:I}", "id", c->id,
                                  "duplicate", strcmp(rep->element[0]->str,
                                                      "duplicate") == 0,
                                  "last_touch", rep->element[1]->str,
                                  "touches",
                                  (json_int_t)rep->element[2]->integer);
            char *s = json_dumps(j, JSON_COMPACT);
            c->reply(c->arg, 200, "application/json", s, strlen(s));
            free(s);
            json_decref(j);
        }
    }
    g_free(c->id);
    free(c);
}

static void
run(struct gw *g, struct conv *c, const json_t *o, double amount,
    int64_t at_ms)
{
    char amt[48];
    struct ops *op = ops_new(g, &gw_scripts.conversion, on_conversion, c);

    snprintf(amt, sizeof amt, "%.6f", amount);
    ops_key(op, g->k.events);
    ops_key(op, c->e ? g->k.jobs : g->k.events);
    ops_head(op);
    ops_arg(op, GW_GROUP);
    ops_arg(op, c->e ? c->e->id : "");
    ops_arg(op, c->id);
    ops_arg(op, json_string_value(json_object_get(o, "customer_id")));
    ops_arg(op, amt);
    ops_arg(op, json_string_value(json_object_get(o, "currency")));
    ops_argi(op, at_ms ? at_ms : gw_now_ms());
    ops_argi(op, g->conf->attribution_days * 86400000);
    ops_argi(op, g->conf->touch_max);
    ops_run(op);
}

void
conversion_job(struct gw *g, struct job *j, struct entry *e)
{
    struct conv *c = calloc(1, sizeof *c);

    if (!c)
        fatal("out of memory");
    c->g = g;
    c->e = e;
    c->id = g_strdup(j->id);
    run(g, c, j->root, j->amount, j->at_ms);
    job_free(j);
}

int
api_conversion(struct gw *g, const char *body, size_t len,
               ch_http_reply_fn *reply, void *arg)
{
    char reason[JOB_REASON_MAX], msg[JOB_REASON_MAX + 32];
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    double amount = 0;
    int64_t at = 0;
    struct conv *c;

    /* the same shape as the job; "type" may be left out */
    if (json_is_object(o) && !json_object_get(o, "type"))
        json_object_set_new(o, "type", json_string("conversion"));
    if (!json_is_object(o) ||
        job_check_conversion(o, g->conf, &amount, &at, reason) < 0) {
        json_t *err;
        char *s;
        snprintf(msg, sizeof msg, "%s", json_is_object(o) ? reason
                 : "body: a JSON object");
        err = json_pack("{s:s}", "error", msg);
        s = json_dumps(err, JSON_COMPACT);
        reply(arg, 400, "application/json", s, strlen(s));
        free(s);
        json_decref(err);
        json_decref(o);
        return 0;
    }
    if ((c = calloc(1, sizeof *c)) == NULL)
        fatal("out of memory");
    c->g = g;
    c->reply = reply;
    c->arg = arg;
    c->id = g_strdup(json_string_value(json_object_get(o, "id")));
    run(g, c, o, amount, at);
    json_decref(o);
    return 0;
}

/* ---- the report ---- */

struct report {
    ch_http_reply_fn *reply;
    void             *arg;
    int               csv;
    char             *currency;
};

static double
num(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING && r->len ? strtod(r->str, NULL)
                                                   : 0.0;
}

static json_t *
roi_value(double revenue, double cost)
{
    return cost > 0 ? json_real((revenue - cost) / cost) : json_null();
}

static void
csv_num(struct buf *b, double v, int last)
{
    buf_printf(b, "%.6g%s", v, last ? "\r\n" : ",");
}

static void
on_report(struct ops *o, redisReply *rep)
{
    struct report *rp = o->arg;
    static const char *const cols[] = {
        "recipients", "sent", "delivered", "bounced", "unsubscribed",
        "human_opens", "machine_opens", "clicks", "machine_clicks",
        "conversions_last_touch", "conversions_linear",
        "revenue_last_touch", "revenue_linear", "cost"
    };
    /* row: id, channel, then the values in roi script order */
    static const int from[] = { 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                                15 };
    struct buf b;

    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        rp->reply(rp->arg, 503, "application/json",
                  "{\"error\":\"redis unavailable\"}", 29);
        goto out;
    }
    buf_init(&b, 64u << 20);
    if (rp->csv) {
        buf_puts(&b, "campaign,channel");
        for (size_t k = 0; k < 14; k++)
            buf_printf(&b, ",%s", cols[k]);
        buf_puts(&b, ",roi_last_touch,roi_linear\r\n");
    }
    {
        json_t *rows = json_array();
        for (size_t i = 0; i < rep->elements; i++) {
            const redisReply *r = rep->element[i];
            double v[14];
            if (r->type != REDIS_REPLY_ARRAY || r->elements < 16)
                continue;
            for (size_t k = 0; k < 14; k++)
                v[k] = num(r->element[from[k]]);
            if (rp->csv) {
                /* ids and channels are printable without commas or
                 * quotes (checked at intake), so no quoting is needed */
                buf_printf(&b, "%s,%s,", r->element[0]->str,
                           r->element[1]->str);
                for (size_t k = 0; k < 14; k++)
                    csv_num(&b, v[k], 0);
                if (v[13] > 0)
                    buf_printf(&b, "%.6g,%.6g\r\n", (v[11] - v[13]) / v[13],
                               (v[12] - v[13]) / v[13]);
                else
                    buf_puts(&b, ",\r\n");
            } else {
                json_t *row = json_pack("{s:s,s:s}", "campaign",
                                        r->element[0]->str, "channel",
                                        r->element[1]->str);
                for (size_t k = 0; k < 14; k++)
                    json_object_set_new(row, cols[k],
                                        k < 10
                                        ? json_integer((json_int_t)v[k])
                                        : json_real(v[k]));
                json_object_set_new(row, "roi_last_touch",
                                    roi_value(v[11], v[13]));
                json_object_set_new(row, "roi_linear",
                                    roi_value(v[12], v[13]));
                json_array_append_new(rows, row);
            }
        }
        if (rp->csv) {
            rp->reply(rp->arg, 200, "text/csv; charset=utf-8", b.data, b.len);
            json_decref(rows);
        } else {
            json_t *top = json_pack("{s:s,s:o}", "currency", rp->currency,
                                    "campaigns", rows);
            char *s = json_dumps(top, JSON_COMPACT | JSON_REAL_PRECISION(10));
            rp->reply(rp->arg, 200, "application/json", s, strlen(s));
            free(s);
            json_decref(top);
        }
    }
    buf_free(&b);
out:
    g_free(rp->currency);
    free(rp);
}

int
api_roi(struct gw *g, const char *query, ch_http_reply_fn *reply, void *arg)
{
    struct report *rp = calloc(1, sizeof *rp);
    struct ops *o;

    if (!rp)
        fatal("out of memory");
    rp->reply = reply;
    rp->arg = arg;
    rp->csv = query && strstr(query, "format=csv") != NULL;
    rp->currency = g_strdup(g->conf->price.currency);
    o = ops_new(g, &gw_scripts.roi, on_report, rp);
    ops_key(o, g->k.campaigns);
    ops_head(o);
    ops_argi(o, REPORT_MAX);
    ops_run(o);
    return 0;
}

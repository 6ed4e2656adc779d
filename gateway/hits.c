/*
 * hits.c -- opens and clicks. At render time the links of a marketing
 * email's HTML are rewritten to /c/<token> (the token signs the original
 * URL, so /c redirects only where the message pointed: no open redirect)
 * and a 1x1 pixel /o/<token> is added (templates/links.c). A hit is
 * answered at once (the GIF, the 302) and recorded by one script, as
 * `machine` when a privacy proxy, an image proxy or a scanner made it, or
 * when it came within seconds of the hand-over, so reports count human
 * opens apart.
 */
#include "gw.h"

#include "../common/buf.h"
#include "../common/token.h"
#include "../templates/links.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct log_ctx lg = { "hits", NULL };

/* The smallest transparent GIF: 1x1, one colour. */
static const unsigned char gif[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00,
    0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
    0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
};

/* What a hit token names: [message key, campaign, customer]. */
static char *
what(const char *key, const char *campaign, const char *customer)
{
    json_t *a = json_pack("[s,s,s]", key, campaign ? campaign : "",
                          customer ? customer : "");
    char *s = json_dumps(a, JSON_COMPACT | JSON_ENSURE_ASCII);

    json_decref(a);
    return s;
}

struct rw {
    struct gw  *g;
    const char *what;
};

static int
on_link(void *arg, const char *url, size_t len, int index, struct buf *out)
{
    struct rw *rw = arg;
    char tok[TOKEN_BUF_SIZE];

    (void)len;
    (void)index;
    if (token_sign(unsub_ring(rw->g), TOK_CLICK, rw->what, url,
                   gw_now_ms() / 1000, tok, sizeof tok) <= 0)
        return -1;              /* left as it was */
    return buf_printf(out, "%s/c/%s", rw->g->conf->public_url, tok);
}

int
hits_rewrite(struct gw *g, const char *key, const char *campaign,
             const char *customer, const char *skip_url,
             const struct buf *html, struct buf *out)
{
    char tok[TOKEN_BUF_SIZE], *pixel = NULL;
    struct rw rw = { g, NULL };
    int rc;

    if ((rw.what = what(key, campaign, customer)) == NULL)
        return -1;
    if (g->conf->track_opens &&
        token_sign(unsub_ring(g), TOK_OPEN, rw.what, NULL,
                   gw_now_ms() / 1000, tok, sizeof tok) > 0)
        pixel = g_strdup_printf("%s/o/%s", g->conf->public_url, tok);
    buf_reset(out);
    rc = links_rewrite((const char *)html->data, html->len, skip_url,
                       g->conf->track_clicks ? on_link : NULL, &rw, pixel,
                       out);
    g_free(pixel);
    free((char *)rw.what);
    return rc;
}

static void
on_recorded(struct ops *o, redisReply *rep)
{
    (void)o;
    if (rep && rep->type == REDIS_REPLY_ERROR)
        log_warn(&lg, "hit not recorded: %s", rep->str);
}

static void
record(struct gw *g, const char *kind, const struct token_claims *c,
       const json_t *w, const struct ch_http_req *rq)
{
    const char *ua = rq->header(rq, "user-agent");
    const char *rule = links_machine_rule(ua, rq->peer, -1,
                                          strcmp(kind, "click") == 0);
    struct ops *o = ops_new(g, &gw_scripts.hit, on_recorded, NULL);

    ops_key(o, g->k.events);
    ops_head(o);
    ops_arg(o, kind);
    ops_arg(o, json_string_value(json_array_get(w, 0)));
    ops_arg(o, json_string_value(json_array_get(w, 1)));
    ops_arg(o, json_string_value(json_array_get(w, 2)));
    ops_arg(o, rule ? rule : "");
    ops_arg(o, c->url);
    ops_argi(o, strcmp(kind, "click") == 0 ? LINKS_CLICK_MIN_MS
                                           : LINKS_OPEN_MIN_MS);
    ops_argi(o, g->conf->touch_max);
    ops_run(o);
}

int
hits_handle(struct gw *g, const struct ch_http_req *rq, int click,
            ch_http_reply_fn *reply, void *arg)
{
    struct token_claims c;
    json_t *w = NULL;

    if (token_verify(unsub_ring(g), rq->path, strlen(rq->path),
                     gw_now_ms() / 1000, &c) == 0 &&
        c.purpose == (click ? TOK_CLICK : TOK_OPEN))
        w = json_loads(c.msg_key, 0, NULL);
    if (!json_is_array(w) || json_array_size(w) != 3 ||
        !json_is_string(json_array_get(w, 0)) ||
        !json_is_string(json_array_get(w, 1)) ||
        !json_is_string(json_array_get(w, 2))) {
        json_decref(w);
        if (click)
            reply(arg, 400, "text/plain", "this link is not valid\n", 23);
        else    /* a broken image, nothing more */
            reply(arg, 404, "text/plain", "not found\n", 10);
        return 0;
    }
    record(g, click ? "click" : "open", &c, w, rq);
    json_decref(w);
    if (click)
        reply(arg, 302, NULL, c.url, strlen(c.url));    /* see http.c */
    else
        reply(arg, 200, "image/gif", gif, sizeof gif);
    return 0;
}

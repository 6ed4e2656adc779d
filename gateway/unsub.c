/*
 * unsub.c -- unsubscribe links. Each marketing message (and every fax, for
 * its opt-out notice) gets a signed token (common/token.c: HMAC-SHA256,
 * key id for rotation) naming its channel, campaign, customer and address,
 * so the link works for as long as the token is valid, not only as long
 * as the ledger lives. GET /u/<token> shows a confirmation page and
 * changes nothing (mail scanners prefetch links); POST /u/<token> -- the
 * RFC 8058 one-click body or the page's button -- unsubscribes at the
 * chosen scope (this campaign's list, the channel, or everything), once,
 * in one script. A forged, altered or expired token changes nothing.
 */
#include "gw.h"

#include "../common/err.h"
#include "../common/token.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct log_ctx lg = { "unsub", NULL };

struct unsub {
    struct token_ring ring;
};

int
unsub_init(struct gw *g)
{
    struct unsub *u = calloc(1, sizeof *u);
    const struct config *c = g->conf;
    char err[200];

    if (!u)
        return -1;
    token_ring_init(&u->ring);
    for (char **k = c->token_keys; k && *k; k++) {
        char *colon = strchr(*k, ':');
        long id = colon ? strtol(*k, NULL, 10) : -1;
        if (!colon || id < 0 || id > 255 ||
            token_ring_add(&u->ring, (uint8_t)id, colon + 1, err,
                           sizeof err) < 0) {
            log_error(&lg, "tracking.token_keys: '%.8s...': %s", *k,
                      colon ? err : "expected \"<id>:<base64 secret>\"");
            free(u);
            return GW_ECONFIG;
        }
    }
    if (u->ring.n == 0) {
        unsigned char s[32];
        gchar *b64;
        RAND_bytes(s, sizeof s);
        b64 = g_base64_encode(s, sizeof s);
        token_ring_add(&u->ring, 0, b64, err, sizeof err);
        g_free(b64);
        token_ring_set_current(&u->ring, 0);
        log_warn(&lg, "no [tracking] token_keys: unsubscribe links are "
                 "signed with a key made for this run only and stop "
                 "working at the next start");
    } else if (token_ring_set_current(&u->ring,
                                      (uint8_t)c->token_current) < 0) {
        log_error(&lg, "tracking.token_current = %lld is not in "
                  "token_keys", (long long)c->token_current);
        token_ring_clear(&u->ring);
        free(u);
        return GW_ECONFIG;
    }
    token_ring_set_limits(&u->ring, c->token_max_age_days * 86400,
                          TOKEN_SKEW_DEFAULT);
    g->unsub = u;
    return 0;
}

void
unsub_free(struct gw *g)
{
    if (g->unsub) {
        token_ring_clear(&g->unsub->ring);
        free(g->unsub);
        g->unsub = NULL;
    }
}

const struct token_ring *
unsub_ring(struct gw *g)
{
    return &g->unsub->ring;
}

/* "<public_url>/u/<token>" for a message (new string), or NULL. */
char *
unsub_url(struct gw *g, enum gw_channel ch, const char *campaign,
          const char *customer, const char *address)
{
    char tok[TOKEN_BUF_SIZE], *what, *url = NULL;
    json_t *a = json_pack("[s,s,s,s]", gw_channel_name(ch),
                          campaign ? campaign : "", customer ? customer : "",
                          address ? address : "");

    what = json_dumps(a, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(a);
    if (what && token_sign(&g->unsub->ring, campaign ? TOK_UNSUB_CAMPAIGN
                                                     : TOK_UNSUB_CHANNEL,
                           what, NULL, gw_now_ms() / 1000, tok,
                           sizeof tok) > 0)
        url = g_strdup_printf("%s/u/%s", g->conf->public_url, tok);
    free(what);
    return url;
}

/* ---- the page ---- */

struct req {
    ch_http_reply_fn *reply;
    void             *arg;
    int               one_click;
};

static const char page_head[] =
    "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width\">"
    "<meta name=\"robots\" content=\"noindex\">"
    "<title>Unsubscribe</title><style>body{font:16px sans-serif;"
    "max-width:34em;margin:3em auto;padding:0 1em}button{font-size:1em;"
    "margin:.3em 0;padding:.5em 1em}</style></head><body>";

static void
page(ch_http_reply_fn *reply, void *arg, int status, const char *body)
{
    char *s = g_strdup_printf("%s%s</body></html>\n", page_head, body);

    reply(arg, status, "text/html; charset=utf-8", s, strlen(s));
    g_free(s);
}

static void
on_unsub(struct ops *o, redisReply *rep)
{
    struct req *q = o->arg;

    if (!rep || rep->type != REDIS_REPLY_INTEGER)
        page(q->reply, q->arg, 503, "<p>We could not record this right "
             "now. Please try again in a minute.</p>");
    else if (q->one_click)
        q->reply(q->arg, 200, "text/plain; charset=utf-8",
                 "unsubscribed\n", 13);
    else
        page(q->reply, q->arg, 200, "<h1>You are unsubscribed</h1>"
             "<p>You will not get these messages any more. It can take a "
             "moment for messages already on their way.</p>");
    free(q);
}

static const char *
scope_name(enum token_purpose p)
{
    return p == TOK_UNSUB_CAMPAIGN ? "campaign"
           : p == TOK_UNSUB_ALL ? "all" : "channel";
}

int
unsub_handle(struct gw *g, const struct ch_http_req *rq,
             ch_http_reply_fn *reply, void *arg)
{
    struct token_claims c;
    json_t *what = NULL;
    const char *ch, *camp, *cust, *addr, *scope;
    char *esc;
    int rc;

    rc = token_verify(&g->unsub->ring, rq->path, strlen(rq->path),
                      gw_now_ms() / 1000, &c);
    if (rc == 0 && (c.purpose == TOK_UNSUB_CAMPAIGN ||
                    c.purpose == TOK_UNSUB_CHANNEL ||
                    c.purpose == TOK_UNSUB_ALL))
        what = json_loads(c.msg_key, 0, NULL);
    if (!json_is_array(what) || json_array_size(what) != 4 ||
        !(ch = json_string_value(json_array_get(what, 0))) ||
        gw_channel_parse(ch) < 0 ||
        !(camp = json_string_value(json_array_get(what, 1))) ||
        !(cust = json_string_value(json_array_get(what, 2))) ||
        !(addr = json_string_value(json_array_get(what, 3))) ||
        (!*cust && !*addr)) {
        json_decref(what);
        page(reply, arg, 400, "<h1>This link is not valid</h1><p>It may "
             "have been cut short or changed. Use the link in the message "
             "exactly as it came, or reply to the sender.</p>");
        return 0;
    }
    scope = scope_name(c.purpose);
    if (strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0) {
        /* Changes nothing: link scanners fetch this. */
        esc = g_markup_printf_escaped(
            "<h1>Unsubscribe</h1><p>Stop messages to <b>%s</b>?</p>"
            "<form method=\"post\">%s"
            "<button name=\"scope\" value=\"channel\">Stop all %s "
            "messages</button><br>"
            "<button name=\"scope\" value=\"all\">Stop everything from "
            "us</button></form>", *addr ? addr : cust,
            *camp ? "<button name=\"scope\" value=\"campaign\">Only this "
                    "list</button><br>" : "",
            strcmp(ch, "email") == 0 ? "email" : strcmp(ch, "sms") == 0
                                                 ? "text" : "fax");
        page(reply, arg, 200, esc);
        g_free(esc);
        json_decref(what);
        return 0;
    }
    if (strcmp(rq->method, "POST") != 0) {
        json_decref(what);
        reply(arg, 405, "text/plain", "GET or POST\n", 12);
        return 0;
    }
    {
        struct req *q = calloc(1, sizeof *q);
        struct ops *o;
        const char *body = rq->body;

        if (!q)
            fatal("out of memory");
        q->reply = reply;
        q->arg = arg;
        /* RFC 8058: the body is List-Unsubscribe=One-Click (form or
         * multipart encoded); the page's buttons send a scope. */
        q->one_click = body && strstr(body, "List-Unsubscribe=One-Click");
        if (body && strstr(body, "scope=all"))
            scope = "all";
        else if (body && strstr(body, "scope=channel"))
            scope = "channel";
        else if (body && strstr(body, "scope=campaign") && *camp)
            scope = "campaign";
        log_info(&lg, "unsubscribe %s scope %s (%s)", *addr ? addr : cust,
                 scope, q->one_click ? "one-click" : "page");
        o = ops_new(g, &gw_scripts.unsub, on_unsub, q);
        ops_key(o, g->k.events);
        ops_head(o);
        ops_arg(o, scope);
        ops_arg(o, ch);
        ops_arg(o, camp);
        ops_arg(o, cust);
        ops_arg(o, addr);
        ops_argi(o, g->conf->touch_max);
        ops_arg(o, q->one_click ? "one-click" : "page");
        ops_run(o);
    }
    json_decref(what);
    return 0;
}

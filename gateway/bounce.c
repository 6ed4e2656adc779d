/*
 * bounce.c -- bounces. Three ways in, one way to record:
 *  - a synchronous SMTP 5xx (the channel's refusal) is classified by its
 *    enhanced status by the dispatcher (bounce_sync);
 *  - delivery status notifications (RFC 3464) are read from a bounce
 *    mailbox over POP3 or IMAP with libcurl on libuv's thread pool, parsed
 *    with GMime (channels/dsn.c) and matched to the message through the
 *    VERP return path or the Message-ID; a message is deleted from the
 *    mailbox only after its bounce is recorded;
 *  - an ESP's JSON webhook (POST /hooks/bounces, bearer secret).
 * The bounce script moves the message to `bounced` once, with class,
 * status and diagnostic, and puts a hard bounce's address on the email
 * suppression set.
 */
#include "gw.h"

#include "../channels/dsn.h"
#include "../common/buf.h"
#include "../common/err.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct log_ctx lg = { "bounce", NULL };

#define POLL_MAX_MESSAGES 200
#define MESSAGE_MAX       (10u << 20)
#define HOOK_MAX_ITEMS    1000

static const char *const class_names[] = { "hard", "soft", "unknown" };

/* ---- synchronous: an SMTP reply ---- */

int
bounce_sync(const char *reply, char *why, size_t whylen)
{
    const char *p = reply ? reply : "";
    char enh[16] = "";
    int code = 0;
    enum bounce_class c;

    /* "RCPT: 550 5.1.1 <a@b>: user unknown" -> 550, "5.1.1" */
    for (; *p; p++)
        if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
            isdigit((unsigned char)p[2]) && (p[3] == ' ' || p[3] == '-') &&
            (p == reply || !isdigit((unsigned char)p[-1]))) {
            code = atoi(p);
            break;
        }
    for (const char *q = *p ? p + 3 : p; *q; q++) {
        int a, b, d, n = 0;
        if ((q[0] == '4' || q[0] == '5') && q[1] == '.' &&
            (q == reply || !isdigit((unsigned char)q[-1])) &&
            sscanf(q, "%1d.%3d.%3d%n", &a, &b, &d, &n) == 3) {
            snprintf(enh, sizeof enh, "%d.%d.%d", a, b, d);
            break;
        }
    }
    c = bounce_classify_text(code, enh[0] ? enh : NULL, reply);
    snprintf(why, whylen, "%s bounce %s: %s", class_names[c],
             enh[0] ? enh : "-", reply ? reply : "");
    return (int)c;
}

/* ---- recording ---- */

struct rec {
    void (*done)(void *arg, int ok, int known);
    void  *arg;
};

static void
on_recorded(struct ops *o, redisReply *rep)
{
    struct rec *r = o->arg;
    int ok = rep && rep->type == REDIS_REPLY_STRING;

    if (ok && strcmp(rep->str, "unknown") == 0)
        log_info(&lg, "a bounce for a message we do not know (expired "
                 "ledger, or not ours)");
    if (r->done)
        r->done(r->arg, ok, ok && strcmp(rep->str, "unknown") != 0);
    free(r);
}

/* One bounce for a message key; done runs after Redis answered. */
static void
record(struct gw *g, const char *key, const char *cls, const char *status,
       const char *diag, const char *rcpt, const char *source,
       void (*done)(void *, int, int), void *arg)
{
    struct rec *r = calloc(1, sizeof *r);
    struct ops *o;
    char *low = g_ascii_strdown(rcpt ? rcpt : "", -1);

    if (!r)
        fatal("out of memory");
    r->done = done;
    r->arg = arg;
    o = ops_new(g, &gw_scripts.bounce, on_recorded, r);
    ops_key(o, g->k.events);
    ops_key(o, g->k.suppress[CH_EMAIL]);
    ops_head(o);
    ops_arg(o, key);
    ops_arg(o, cls);
    ops_arg(o, status);
    ops_arg(o, diag);
    ops_arg(o, low);
    ops_arg(o, source);
    ops_run(o);
    g_free(low);
}

/* ---- the ESP webhook ---- */

struct hook {
    ch_http_reply_fn *reply;
    void             *arg;
    unsigned          pending, recorded, unknown, failed;
};

static void
hook_done(void *arg, int ok, int known)
{
    struct hook *h = arg;
    char body[120];

    if (!ok)
        h->failed++;
    else if (known)
        h->recorded++;
    else
        h->unknown++;
    if (--h->pending)
        return;
    if (h->failed) {
        h->reply(h->arg, 503, "application/json",
                 "{\"error\":\"redis unavailable\"}", 29);
    } else {
        snprintf(body, sizeof body, "{\"recorded\":%u,\"unknown\":%u}",
                 h->recorded, h->unknown);
        h->reply(h->arg, 200, "application/json", body, strlen(body));
    }
    free(h);
}

static void
hook_error(ch_http_reply_fn *reply, void *arg, int status, const char *msg)
{
    json_t *j = json_pack("{s:s}", "error", msg);
    char *s = json_dumps(j, JSON_COMPACT);

    reply(arg, status, "application/json", s, strlen(s));
    free(s);
    json_decref(j);
}

/* The message key of an item: given, or from a VERP address, or from our
 * Message-ID's local part. */
static int
item_key(const json_t *it, char *key, size_t keylen)
{
    const char *k = json_string_value(json_object_get(it, "message_key"));
    const char *rp = json_string_value(json_object_get(it, "return_path"));
    const char *mid = json_string_value(json_object_get(it, "message_id"));

    if (k && *k && strlen(k) < keylen) {
        snprintf(key, keylen, "%s", k);
        return 0;
    }
    if (rp && dsn_verp_key(rp, key, keylen) == 0)
        return 0;
    if (mid) {
        char local[600];
        const char *at;
        size_t n;
        if (*mid == '<')
            mid++;
        at = strrchr(mid, '@');
        n = at ? (size_t)(at - mid) : 0;
        if (n && n < sizeof local - 16) {
            /* dsn_verp_key reads the local part of an address */
            snprintf(local, sizeof local, "x+%.*s@x", (int)n, mid);
            if (dsn_verp_key(local, key, keylen) == 0)
                return 0;
        }
    }
    return -1;
}

int
bounce_hook(struct gw *g, const struct ch_http_req *rq,
            ch_http_reply_fn *reply, void *arg)
{
    json_t *body, *items;
    struct hook *h;
    size_t i, n;
    json_t *it;

    if (!bearer_ok(rq, g->conf->bounce_secret)) {
        hook_error(reply, arg, 401, "a valid bearer secret is required");
        return 0;
    }
    if (strcmp(rq->method, "POST") != 0) {
        hook_error(reply, arg, 405, "POST");
        return 0;
    }
    body = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, NULL);
    items = json_is_array(body) ? body : NULL;
    if (!items && json_is_object(body)) {
        items = json_array();
        json_array_append(items, body);
    }
    n = items ? json_array_size(items) : 0;
    if (!items || n == 0 || n > HOOK_MAX_ITEMS) {
        if (items != body)
            json_decref(items);
        json_decref(body);
        hook_error(reply, arg, 400, "a bounce object or an array of 1-1000");
        return 0;
    }
    /* check everything first: a bad item refuses the whole request */
    json_array_foreach(items, i, it) {
        char key[600];
        const char *ty = json_string_value(json_object_get(it, "type"));
        if (!json_is_object(it) || item_key(it, key, sizeof key) < 0 ||
            (ty && strcmp(ty, "hard") && strcmp(ty, "soft") &&
             strcmp(ty, "delayed"))) {
            char msg[120];
            snprintf(msg, sizeof msg, "item %zu: needs message_key, "
                     "return_path or message_id (ours); type hard, soft or "
                     "delayed", i);
            if (items != body)
                json_decref(items);
            json_decref(body);
            hook_error(reply, arg, 400, msg);
            return 0;
        }
    }
    if ((h = calloc(1, sizeof *h)) == NULL)
        fatal("out of memory");
    h->reply = reply;
    h->arg = arg;
    h->pending = (unsigned)n;
    json_array_foreach(items, i, it) {
        char key[600];
        const char *ty = json_string_value(json_object_get(it, "type"));
        const char *st = json_string_value(json_object_get(it, "status"));
        const char *dg = json_string_value(json_object_get(it,
                                                           "diagnostic"));
        const char *rc = json_string_value(json_object_get(it, "recipient"));

        item_key(it, key, sizeof key);
        if (!ty)
            ty = class_names[bounce_classify_text(0, st, dg)];
        record(g, key, ty, st ? st : "", dg ? dg : "", rc ? rc : "",
               "webhook", hook_done, h);
    }
    if (items != body)
        json_decref(items);
    json_decref(body);
    return 0;
}

/* ---- the bounce mailbox ---- */

struct mail {
    char  *id;          /* POP3 message number or IMAP UID */
    char  *raw;
    size_t len;
    struct dsn dsn;
    int    usable;      /* parsed, with a message key */
    int    recorded;    /* every bounce of it is in Redis */
};

struct poll {
    uv_work_t   work;
    struct gw  *g;
    int         imap;
    char       *url, *user, *pass;
    int         tls;    /* 0 off, 1 opportunistic, 2 required */
    int         deleting;       /* this run deletes ids[] */
    GPtrArray  *mails;  /* struct mail * */
    GPtrArray  *dels;   /* ids to delete */
    char        err[256];
    unsigned    pending;
};

struct bounces {
    uv_timer_t  timer;
    int         busy;
    uint64_t    polls, fetched, recorded, errors;
};

static size_t
on_data(char *p, size_t sz, size_t n, void *arg)
{
    struct buf *b = arg;

    return buf_append(b, p, sz * n) < 0 ? 0 : sz * n;
}

/* One session (connection) for a whole pass: POP3 message numbers are
 * only stable within one, and deletions are committed at its QUIT. */
static CURL *
session(struct poll *pl, struct buf *out)
{
    CURL *c = curl_easy_init();

    if (!c)
        return NULL;
    curl_easy_setopt(c, CURLOPT_USERNAME, pl->user);
    curl_easy_setopt(c, CURLOPT_PASSWORD, pl->pass);
    curl_easy_setopt(c, CURLOPT_USE_SSL, pl->tls == 2 ? CURLUSESSL_ALL
                     : pl->tls == 1 ? CURLUSESSL_TRY : CURLUSESSL_NONE);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    return c;
}

/* One request on the session: 0 or -1 with pl->err. */
static int
run(struct poll *pl, CURL *c, const char *url, const char *custom,
    int nobody)
{
    CURLcode rc;

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, custom);
    curl_easy_setopt(c, CURLOPT_NOBODY, nobody ? 1L : 0L);
    if ((rc = curl_easy_perform(c)) != CURLE_OK) {
        snprintf(pl->err, sizeof pl->err, "%s", curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

/* Ids of the messages in the mailbox: POP3 LIST or IMAP UID SEARCH. */
static int
list_ids(struct poll *pl, CURL *c, struct buf *b, GPtrArray *ids)
{
    char *s, *save = NULL;

    buf_reset(b);
    if (run(pl, c, pl->url, pl->imap ? "UID SEARCH ALL" : NULL, 0) < 0)
        return -1;
    s = g_strdup(buf_cstr(b));
    if (pl->imap) {
        /* "* SEARCH 3 4 5" */
        char *p = strstr(s, "SEARCH");
        for (char *t = p ? strtok_r(p + 6, " \r\n", &save) : NULL; t;
             t = strtok_r(NULL, " \r\n", &save))
            if (isdigit((unsigned char)*t) && ids->len < POLL_MAX_MESSAGES)
                g_ptr_array_add(ids, g_strdup(t));
    } else {
        /* "1 1234\r\n2 567\r\n" */
        for (char *t = strtok_r(s, "\r\n", &save); t;
             t = strtok_r(NULL, "\r\n", &save))
            if (isdigit((unsigned char)*t) && ids->len < POLL_MAX_MESSAGES)
                g_ptr_array_add(ids, g_strndup(t, strcspn(t, " ")));
    }
    g_free(s);
    return 0;
}

static char *
item_url(struct poll *pl, const char *id)
{
    size_t n = strlen(pl->url);
    int slash = n && pl->url[n - 1] == '/';

    return pl->imap ? g_strdup_printf("%s;UID=%s", pl->url, id)
                    : g_strdup_printf("%s%s%s", pl->url, slash ? "" : "/",
                                      id);
}

static void
poll_work(uv_work_t *w)
{
    struct poll *pl = w->data;
    struct buf b;
    CURL *c;

    buf_init(&b, MESSAGE_MAX);
    if ((c = session(pl, &b)) == NULL) {
        buf_free(&b);
        return;
    }
    if (pl->deleting) {
        for (size_t i = 0; i < pl->dels->len; i++) {
            char cmd[64], *u;
            if (pl->imap) {
                snprintf(cmd, sizeof cmd, "UID STORE %s +FLAGS (\\Deleted)",
                         (char *)pl->dels->pdata[i]);
                run(pl, c, pl->url, cmd, 0);
            } else {
                u = item_url(pl, pl->dels->pdata[i]);
                run(pl, c, u, "DELE", 1);
                g_free(u);
            }
        }
        if (pl->imap)
            run(pl, c, pl->url, "EXPUNGE", 0);
    } else {
        GPtrArray *ids = g_ptr_array_new_with_free_func(g_free);
        if (list_ids(pl, c, &b, ids) == 0) {
            for (size_t i = 0; i < ids->len; i++) {
                struct mail *m = calloc(1, sizeof *m);
                char *u = item_url(pl, ids->pdata[i]);
                char err[200];

                buf_reset(&b);
                m->id = g_strdup(ids->pdata[i]);
                if (run(pl, c, u, NULL, 0) == 0 && b.len) {
                    m->len = b.len;
                    m->raw = malloc(b.len + 1);
                    memcpy(m->raw, b.data, b.len);
                    m->raw[b.len] = 0;
                    /* a hashed key (too long for VERP) cannot be matched
                     * without an index: not used */
                    m->usable = dsn_parse(m->raw, m->len, &m->dsn, err,
                                          sizeof err) == 0 &&
                                m->dsn.msg_key[0] && !m->dsn.key_hashed;
                }
                g_free(u);
                g_ptr_array_add(pl->mails, m);
            }
        }
        g_ptr_array_free(ids, TRUE);
    }
    curl_easy_cleanup(c);       /* QUIT / LOGOUT: deletions are committed */
    buf_free(&b);
}

static void
mail_free(void *p)
{
    struct mail *m = p;

    g_free(m->id);
    free(m->raw);
    free(m);
}

static void
poll_free(struct poll *pl)
{
    g_free(pl->url);
    g_free(pl->user);
    g_free(pl->pass);
    g_ptr_array_free(pl->mails, TRUE);
    g_ptr_array_free(pl->dels, TRUE);
    free(pl);
}

static void poll_done(uv_work_t *w, int status);

/* Every bounce of the poll is recorded (or not): delete what is done. */
static void
maybe_delete(struct poll *pl)
{
    struct gw *g = pl->g;

    if (pl->pending)
        return;
    for (size_t i = 0; i < pl->mails->len; i++) {
        struct mail *m = pl->mails->pdata[i];
        /* unusable mail (not a bounce of ours) is deleted too when
         * configured: it would otherwise be read on every poll */
        if (m->recorded || (!m->usable && m->raw && g->conf->bounce_delete_other))
            g_ptr_array_add(pl->dels, g_strdup(m->id));
    }
    if (pl->dels->len == 0 || !g->conf->bounce_delete || g->stopping) {
        g->bounces->busy = 0;
        poll_free(pl);
        return;
    }
    pl->deleting = 1;
    pl->work.data = pl;
    if (uv_queue_work(g->loop, &pl->work, poll_work, poll_done) != 0) {
        g->bounces->busy = 0;
        poll_free(pl);
    }
}

struct mrec {
    struct poll *pl;
    struct mail *m;
    unsigned     left;
    int          ok;
};

static void
mail_recorded(void *arg, int ok, int known)
{
    struct mrec *r = arg;

    (void)known;
    if (!ok)
        r->ok = 0;
    if (--r->left)
        return;
    r->m->recorded = r->ok;
    if (r->ok)
        r->pl->g->bounces->recorded++;
    r->pl->pending--;
    maybe_delete(r->pl);
    free(r);
}

static void
poll_done(uv_work_t *w, int status)
{
    struct poll *pl = w->data;
    struct gw *g = pl->g;

    if (status != 0 || pl->deleting) {
        g->bounces->busy = 0;
        poll_free(pl);
        return;
    }
    if (pl->err[0]) {
        g->bounces->errors++;
        log_warn(&lg, "bounce mailbox %s: %s", pl->url, pl->err);
    }
    for (size_t i = 0; i < pl->mails->len; i++) {
        struct mail *m = pl->mails->pdata[i];
        struct mrec *r;
        size_t nr = m->dsn.nrcpt ? m->dsn.nrcpt : 1;

        if (!m->raw)
            continue;
        g->bounces->fetched++;
        if (!m->usable) {
            log_info(&lg, "mailbox message %s is not a bounce of ours", m->id);
            continue;
        }
        if ((r = calloc(1, sizeof *r)) == NULL)
            fatal("out of memory");
        r->pl = pl;
        r->m = m;
        r->left = (unsigned)nr;
        r->ok = 1;
        pl->pending++;
        for (size_t k = 0; k < nr; k++) {
            const struct dsn_rcpt *d = m->dsn.nrcpt ? &m->dsn.rcpt[k] : NULL;
            const char *cls = !d ? "unknown"
                : strcmp(d->action, "delayed") == 0 ? "delayed"
                : class_names[d->cls];
            record(g, m->dsn.msg_key, cls, d ? d->status : "",
                   d ? d->diagnostic : "", d ? d->recipient : "", "dsn",
                   mail_recorded, r);
        }
    }
    maybe_delete(pl);
}

static void
on_poll(uv_timer_t *t)
{
    struct gw *g = t->data;
    const struct config *c = g->conf;
    struct poll *pl;

    if (g->bounces->busy || g->stopping || !gw_redis_is_up(g->cmd))
        return;
    if ((pl = calloc(1, sizeof *pl)) == NULL)
        return;
    pl->g = g;
    pl->imap = strncmp(c->bounce_mailbox, "imap", 4) == 0;
    pl->url = g_strdup(c->bounce_mailbox);
    pl->user = g_strdup(c->bounce_user ? c->bounce_user : "");
    pl->pass = g_strdup(c->bounce_password ? c->bounce_password : "");
    pl->tls = strcmp(c->bounce_tls, "required") == 0 ? 2
              : strcmp(c->bounce_tls, "opportunistic") == 0 ? 1 : 0;
    pl->mails = g_ptr_array_new_with_free_func(mail_free);
    pl->dels = g_ptr_array_new_with_free_func(g_free);
    pl->work.data = pl;
    g->bounces->polls++;
    if (uv_queue_work(g->loop, &pl->work, poll_work, poll_done) == 0)
        g->bounces->busy = 1;
    else
        poll_free(pl);
}

int
bounce_init(struct gw *g)
{
    const struct config *c = g->conf;

    if ((g->bounces = calloc(1, sizeof *g->bounces)) == NULL)
        return -1;
    uv_timer_init(g->loop, &g->bounces->timer);
    g->bounces->timer.data = g;
    if (c->bounce_mailbox && *c->bounce_mailbox)
        uv_timer_start(&g->bounces->timer, on_poll, 1000,
                       (uint64_t)c->bounce_poll_ms);
    return 0;
}

void
bounce_close(struct gw *g)
{
    if (g->bounces) {
        uv_timer_stop(&g->bounces->timer);
        uv_close((uv_handle_t *)&g->bounces->timer, NULL);
    }
}

void
bounce_free(struct gw *g)
{
    free(g->bounces);
    g->bounces = NULL;
}

void
bounce_metrics(struct gw *g, struct buf *b)
{
    if (!g->bounces)
        return;
    buf_printf(b, "# HELP gw_bounce_mailbox_polls_total Polls of the bounce "
               "mailbox.\n# TYPE gw_bounce_mailbox_polls_total counter\n"
               "gw_bounce_mailbox_polls_total %llu\n"
               "# HELP gw_bounce_mailbox_messages_total Messages read from "
               "the bounce mailbox, by outcome.\n"
               "# TYPE gw_bounce_mailbox_messages_total counter\n"
               "gw_bounce_mailbox_messages_total{outcome=\"fetched\"} %llu\n"
               "gw_bounce_mailbox_messages_total{outcome=\"recorded\"} %llu\n"
               "# HELP gw_bounce_mailbox_errors_total Polls that failed.\n"
               "# TYPE gw_bounce_mailbox_errors_total counter\n"
               "gw_bounce_mailbox_errors_total %llu\n",
               (unsigned long long)g->bounces->polls,
               (unsigned long long)g->bounces->fetched,
               (unsigned long long)g->bounces->recorded,
               (unsigned long long)g->bounces->errors);
}

/*
 * http.c -- the gateway's HTTP server: h2o (its libuv build) on the
 * daemon's own loop. GET /metrics (Prometheus text), GET /healthz
 * (whether Redis is reachable), and the routes a channel serves itself
 * (GET /media/<token>, POST /hooks/fax/<provider>) through the channel's
 * http op, which may answer later (after its effect is in Redis).
 */
#include "gw.h"

#include "../common/buf.h"
#include "../common/err.h"

#include <arpa/inet.h>
#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct log_ctx lg = { "http", NULL };

#define IDLE_MS 3000

struct http {
    struct gw        *g;
    h2o_globalconf_t  config;
    h2o_context_t     ctx;
    h2o_accept_ctx_t  accept;
    uv_tcp_t          listener;
    uv_timer_t        closing;      /* waits for connections at shutdown */
    unsigned          conns;        /* accepted and not yet closed */
    uint64_t          deadline;
};

/* A connection's handle; h2o closes it, we count it. */
struct conn {
    uv_tcp_t          tcp;
    struct http      *h;
};

struct gw_handler {
    h2o_handler_t     super;        /* first: h2o hands us this pointer */
    struct gw        *g;
};

static int stopping;

static int
reply(h2o_req_t *req, int status, const char *reason, const char *type,
      const char *body, size_t len)
{
    if (stopping)
        req->http1_is_persistent = 0;   /* no new idle connections */
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE,
                   NULL, type, strlen(type));
    h2o_send_inline(req, body, len);
    return 0;
}

static int
is_get(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len,
                     H2O_STRLIT("GET")) ||
           h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
}

static int
on_metrics(h2o_handler_t *self, h2o_req_t *req)
{
    struct gw *g = ((struct gw_handler *)self)->g;
    struct buf b;
    int rc;

    if (!is_get(req))
        return reply(req, 405, "Method Not Allowed", "text/plain",
                     H2O_STRLIT("GET only\n"));
    buf_init(&b, 4u << 20);
    metrics_render(g, &b);
    /* h2o_send_inline copies the body into the request's pool. */
    rc = reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
               buf_cstr(&b), b.len);
    buf_free(&b);
    return rc;
}

/* A request handed to a channel. It owns copies of what the channel
 * reads, so the channel may answer after the client went away; the slot in
 * the request's pool tells us when h2o disposed of the request. */
struct chreq {
    struct ch_http_req  rq;
    h2o_req_t          *req;        /* NULL once h2o disposed of it */
    struct chreq      **slot;       /* in req->pool */
    char               *method, *path, *body;
    char                peer[INET6_ADDRSTRLEN];
};

static void
on_req_disposed(void *p)
{
    struct chreq **slot = p;

    if (*slot) {
        (*slot)->req = NULL;
        (*slot)->slot = NULL;
    }
}

static const char *
chreq_header(const struct ch_http_req *rq, const char *name)
{
    struct chreq *c = (struct chreq *)(void *)rq;
    ssize_t i;
    char *v;

    if (!c->req)
        return NULL;
    i = h2o_find_header_by_str(&c->req->headers, name, strlen(name), -1);
    if (i < 0)
        return NULL;
    {
        h2o_iovec_t val = c->req->headers.entries[i].value;
        v = h2o_mem_alloc_pool(&c->req->pool, val.len + 1);
        memcpy(v, val.base, val.len);
        v[val.len] = 0;
    }
    return v;
}

static void
chreq_free(struct chreq *c)
{
    free(c->method);
    free(c->path);
    free(c->body);
    free(c);
}

static void
chreq_reply(void *arg, int status, const char *type, const void *body,
            size_t len)
{
    struct chreq *c = arg;
    h2o_req_t *req = c->req;

    if (req) {
        *c->slot = NULL;
        /* tracking answers are per request: never from a cache */
        h2o_add_header(&req->pool, &req->res.headers,
                       H2O_TOKEN_CACHE_CONTROL, NULL,
                       H2O_STRLIT("no-store"));
        if (status >= 300 && status < 400 && !type) {
            /* a redirect: body is the Location */
            h2o_add_header(&req->pool, &req->res.headers,
                           H2O_TOKEN_LOCATION, NULL,
                           h2o_strdup(&req->pool, body, len).base, len);
            reply(req, status, "Found", "text/plain", "", 0);
        } else {
            reply(req, status, status < 300 ? "OK" : status == 404
                  ? "Not Found" : "Error", type ? type : "application/json",
                  body ? body : "", len);
        }
    }
    chreq_free(c);
}

static struct chreq *
chreq_new(h2o_req_t *req, const char *route, const char *path, size_t plen)
{
    struct chreq *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->req = req;
    c->method = strndup(req->method.base, req->method.len);
    c->path = strndup(path, plen);
    c->body = malloc(req->entity.len + 1);
    if (!c->method || !c->path || !c->body) {
        chreq_free(c);
        return NULL;
    }
    if (req->entity.len)
        memcpy(c->body, req->entity.base, req->entity.len);
    c->body[req->entity.len] = 0;
    c->rq.method = c->method;
    c->rq.route = route;
    c->rq.path = c->path;
    c->rq.body = c->body;
    c->rq.body_len = req->entity.len;
    c->rq.header = chreq_header;
    c->rq.server = req;
    {
        struct sockaddr_storage ss;
        socklen_t n = req->conn->callbacks->get_peername
            ? req->conn->callbacks->get_peername(req->conn,
                                                 (struct sockaddr *)&ss) : 0;
        if (n && ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr,
                      c->peer, sizeof c->peer);
        else if (n && ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
                      c->peer, sizeof c->peer);
    }
    c->rq.peer = c->peer;
    c->slot = h2o_mem_alloc_shared(&req->pool, sizeof *c->slot,
                                   on_req_disposed);
    *c->slot = c;
    return c;
}

/* Offer the request to ch; 0 if it took it (and will answer). */
static int
to_channel(struct channel *ch, h2o_req_t *req, const char *route,
           const char *path, size_t plen)
{
    struct chreq *c;

    if (!ch->ops->http)
        return -1;
    if ((c = chreq_new(req, route, path, plen)) == NULL)
        return -1;
    if (ch->ops->http(ch, &c->rq, chreq_reply, c) < 0) {
        *c->slot = NULL;
        chreq_free(c);
        return -1;
    }
    return 0;
}

/* GET /media/<token>: whichever channel issued the token serves it. */
static int
on_media(h2o_handler_t *self, h2o_req_t *req)
{
    struct gw *g = ((struct gw_handler *)self)->g;
    size_t pre = sizeof "/media/" - 1;
    const char *path = req->path_normalized.base + pre;
    size_t plen = req->path_normalized.len - pre;

    if (req->path_normalized.len > pre && !stopping)
        for (size_t i = 0; i < g->nchan; i++)
            if (to_channel(g->chan[i], req, "media", path, plen) == 0)
                return 0;
    return reply(req, 404, "Not Found", "text/plain",
                 H2O_STRLIT("not found\n"));
}

/* GET|POST /u/<token>: unsubscribe (unsub.c). */
static int
on_unsub(h2o_handler_t *self, h2o_req_t *req)
{
    struct gw *g = ((struct gw_handler *)self)->g;
    size_t pre = sizeof "/u/" - 1;
    struct chreq *c;

    if (req->path_normalized.len <= pre || stopping ||
        (c = chreq_new(req, "u", req->path_normalized.base + pre,
                       req->path_normalized.len - pre)) == NULL)
        return reply(req, 404, "Not Found", "text/plain",
                     H2O_STRLIT("not found\n"));
    unsub_handle(g, &c->rq, chreq_reply, c);
    return 0;
}

/* GET /o/<token> (open pixel), GET /c/<token> (click redirect). */
static int
on_hit(h2o_handler_t *self, h2o_req_t *req)
{
    struct gw *g = ((struct gw_handler *)self)->g;
    size_t pre = sizeof "/o/" - 1;
    int click = req->path_normalized.len > 1 &&
                req->path_normalized.base[1] == 'c';
    struct chreq *c;

    if (req->path_normalized.len <= pre || stopping || !is_get(req) ||
        (c = chreq_new(req, click ? "c" : "o",
                       req->path_normalized.base + pre,
                       req->path_normalized.len - pre)) == NULL)
        return reply(req, 404, "Not Found", "text/plain",
                     H2O_STRLIT("not found\n"));
    hits_handle(g, &c->rq, click, chreq_reply, c);
    return 0;
}

/* /api/...: the admin API (api.c), answered after Redis. */
static int
on_api(h2o_handler_t *self, h2o_req_t *req)
{
    struct gw *g = ((struct gw_handler *)self)->g;
    size_t pre = sizeof "/api/" - 1;
    struct chreq *c;
    char *query = NULL;

    if (req->path_normalized.len < pre || stopping)
        return reply(req, 404, "Not Found", "application/json",
                     H2O_STRLIT("{\"error\":\"no such endpoint\"}\n"));
    if ((c = chreq_new(req, "api", req->path_normalized.base + pre,
                       req->path_normalized.len - pre)) == NULL)
        return reply(req, 503, "Service Unavailable", "text/plain",
                     H2O_STRLIT("out of memory\n"));
    if (req->query_at != SIZE_MAX)
        query = strndupa(req->path.base + req->query_at + 1,
                         req->path.len - req->query_at - 1);
    api_handle(g, &c->rq, query, chreq_reply, c);
    return 0;
}

/* POST /hooks/<channel>/<provider>[/...]: the provider's channel. */
static int
on_hook(h2o_handler_t *self, h2o_req_t *req)
{
    struct gw *g = ((struct gw_handler *)self)->g;
    const char *p = req->path_normalized.base + sizeof "/hooks/" - 1;
    const char *end = req->path_normalized.base + req->path_normalized.len;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *prov, *pend, *rest;
    char chname[8];
    int chn;

    if (end - p >= 7 && memcmp(p, "bounces", 7) == 0 &&
        (end - p == 7 || p[7] == '/')) {
        struct chreq *c = chreq_new(req, "hooks", "", 0);
        if (!c)
            goto none;
        bounce_hook(g, &c->rq, chreq_reply, c);
        return 0;
    }
    if (!slash || (size_t)(slash - p) >= sizeof chname)
        goto none;
    memcpy(chname, p, (size_t)(slash - p));
    chname[slash - p] = 0;
    if ((chn = gw_channel_parse(chname)) < 0)
        goto none;
    prov = slash + 1;
    pend = memchr(prov, '/', (size_t)(end - prov));
    if (!pend)
        pend = end;
    rest = pend < end ? pend + 1 : end;
    for (size_t i = 0; i < g->nchan; i++) {
        const struct conf_provider *cp = g->chan[i]->conf;
        if (!(cp->channels & (1u << chn)) ||
            strlen(cp->name) != (size_t)(pend - prov) ||
            memcmp(cp->name, prov, (size_t)(pend - prov)) != 0)
            continue;
        if (to_channel(g->chan[i], req, "hooks", rest,
                       (size_t)(end - rest)) == 0)
            return 0;
    }
none:
    return reply(req, 404, "Not Found", "application/json",
                 H2O_STRLIT("{\"error\":\"no such webhook\"}\n"));
}

static int
on_healthz(h2o_handler_t *self, h2o_req_t *req)
{
    struct gw *g = ((struct gw_handler *)self)->g;

    if (!is_get(req))
        return reply(req, 405, "Method Not Allowed", "text/plain",
                     H2O_STRLIT("GET only\n"));
    if (gw_redis_is_up(g->cmd) && g->groups_ready)
        return reply(req, 200, "OK", "text/plain", H2O_STRLIT("ok\n"));
    return reply(req, 503, "Service Unavailable", "text/plain",
                 H2O_STRLIT("redis unreachable\n"));
}

static void
add_path(struct http *h, h2o_hostconf_t *host, const char *path,
         int (*fn)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pc = h2o_config_register_path(host, path, 0);
    struct gw_handler *hd = (struct gw_handler *)h2o_create_handler(
        pc, sizeof *hd);

    hd->super.on_req = fn;
    hd->g = h->g;
}

static void
on_conn_closed(uv_handle_t *hd)
{
    struct conn *c = (struct conn *)(void *)hd;

    c->h->conns--;
    free(c);
}

static void
on_accept(uv_stream_t *listener, int status)
{
    struct http *h = listener->data;
    struct conn *c;
    h2o_socket_t *sock;

    if (status < 0 || (c = malloc(sizeof *c)) == NULL)
        return;
    c->h = h;
    h->conns++;
    uv_tcp_init(listener->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    h2o_accept(&h->accept, sock);
}

static void
on_failed_closed(uv_handle_t *hd)
{
    free(hd->data);
}

static int
parse_listen(const char *s, struct sockaddr_storage *ss)
{
    char host[128];
    const char *colon = strrchr(s, ':');
    int port;

    if (!colon || (size_t)(colon - s) >= sizeof host)
        return GW_EINVAL;
    port = atoi(colon + 1);
    if (port < 0 || port > 65535)
        return GW_EINVAL;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 2 || host[n - 1] != ']')
            return GW_EINVAL;
        host[n - 1] = 0;
        return uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)ss) == 0
               ? 0 : GW_EINVAL;
    }
    return uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0
           ? 0 : GW_EINVAL;
}

int
http_start(struct gw *g)
{
    struct http *h = calloc(1, sizeof *h);
    struct sockaddr_storage ss;
    h2o_hostconf_t *host;
    int rc;

    if (!h)
        return -1;
    h->g = g;
    if (parse_listen(g->conf->http_listen, &ss) < 0) {
        log_error(&lg, "http.listen '%s': expected IP:PORT",
                  g->conf->http_listen);
        free(h);
        return GW_ECONFIG;
    }
    h2o_config_init(&h->config);
    /* Idle connections end after this, which bounds the wait at shutdown
     * (h2o 2.2 does not close idle HTTP/1 connections on request). */
    h->config.http1.req_timeout = IDLE_MS;
    h->config.http2.idle_timeout = IDLE_MS;
    h->config.http2.graceful_shutdown_timeout = IDLE_MS;
    /* Webhook and API bodies; h2o answers 413 beyond this. */
    h->config.max_request_entity_size = (size_t)g->conf->http_max_body;
    host = h2o_config_register_host(&h->config,
                                    h2o_iovec_init(H2O_STRLIT("default")),
                                    65535);
    add_path(h, host, "/metrics", on_metrics);
    add_path(h, host, "/healthz", on_healthz);
    add_path(h, host, "/media", on_media);
    add_path(h, host, "/hooks", on_hook);
    add_path(h, host, "/api", on_api);
    add_path(h, host, "/u", on_unsub);
    add_path(h, host, "/o", on_hit);
    add_path(h, host, "/c", on_hit);
    h2o_context_init(&h->ctx, g->loop, &h->config);
    h->accept.ctx = &h->ctx;
    h->accept.hosts = h->config.hosts;

    uv_tcp_init(g->loop, &h->listener);
    h->listener.data = h;
    if ((rc = uv_tcp_bind(&h->listener, (struct sockaddr *)&ss, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&h->listener, 128, on_accept)) < 0) {
        log_error(&lg, "cannot listen on %s: %s", g->conf->http_listen,
                  uv_strerror(rc));
        h2o_context_dispose(&h->ctx);
        h2o_config_dispose(&h->config);
        uv_close((uv_handle_t *)&h->listener, on_failed_closed);
        return rc;
    }
    uv_timer_init(g->loop, &h->closing);
    h->closing.data = h;
    g->http = h;
    log_info(&lg, "listening on %s", g->conf->http_listen);
    return 0;
}

static void
on_timer_closed(uv_handle_t *hd)
{
    struct http *h = hd->data;

    /* h2o's HTTP/2 shutdown request links a graceful-shutdown timeout
     * entry; with no connection left it has nothing to do. */
    if (h2o_timeout_is_linked(&h->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&h->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&h->ctx);
    h2o_config_dispose(&h->config);
    free(h);
}

/* Idle keep-alive connections close on h2o's shutdown request; the context
 * is disposed only once they have, since its timeouts still hold them. */
static void
on_closing(uv_timer_t *t)
{
    struct http *h = t->data;

    if (h->conns > 0 && uv_now(t->loop) < h->deadline)
        return;
    if (h->conns > 0) {
        /* Disposing now would free what their timeouts point at. */
        log_error(&lg, "%u connections did not close; leaving them",
                  h->conns);
        uv_timer_stop(t);
        return;
    }
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, on_timer_closed);
}

void
http_stop(struct gw *g)
{
    struct http *h = g->http;

    if (!h)
        return;
    g->http = NULL;
    stopping = 1;
    uv_close((uv_handle_t *)&h->listener, NULL);
    h2o_context_request_shutdown(&h->ctx);
    h->deadline = uv_now(g->loop) + 3 * IDLE_MS;
    uv_timer_start(&h->closing, on_closing, 10, 10);
}

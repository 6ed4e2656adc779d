/*
 * redis.c -- a Redis connection that survives Redis going away: connect,
 * AUTH, SELECT and PING before it calls itself up; a watchdog timer that
 * drops the connection when a reply is overdue or the connect hangs; and
 * reconnects with capped exponential backoff plus jitter, so a dead Redis
 * costs a few wake-ups per second at most, never a busy loop.
 */
#include "redis.h"

#include "../common/err.h"
#include "../common/log.h"

#include <errno.h>
#include <hiredis/async.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gw_redis_attach(redisAsyncContext *ac, uv_loop_t *loop);

enum rstate { R_DOWN, R_CONNECTING, R_HANDSHAKE, R_UP, R_CLOSED };

struct req {
    struct gw_redis *r;
    gw_redis_cb     *cb;
    void            *arg;
    uint64_t         deadline;
    struct req      *prev, *next;
    /* EVALSHA requests keep their arguments for the EVAL fallback, in
     * one block (argv, argvlen, then the strings); argv[0..1] point at the
     * script's sha or source, argv[2] at nk. */
    const struct gw_script *script;
    int              argc;
    const char     **argv;
    size_t          *argvlen;
    char             nk[16];
    int              internal;  /* handshake command, not the user's */
};

struct gw_redis {
    uv_loop_t        *loop;
    const char       *name;
    const struct redis_addr *addr;
    redisAsyncContext *ac;
    enum rstate       state;
    uv_timer_t        watchdog;
    uv_timer_t        retry;
    int               nclosing;       /* handles still closing */
    uint64_t          timeout_ms;
    uint64_t          backoff_ms, backoff_max_ms;
    uint64_t          connect_deadline;
    struct req       *head, *tail;    /* outstanding, oldest first */
    gw_redis_state_cb *on_state;
    void             *arg;
    int               dropped_up;     /* drop() of an up connection:
                                         on_disconnect must still say
                                         it went down */
    struct log_ctx    log;
    struct gw_redis_stats st;
};

static void connect_now(struct gw_redis *r);

static void
on_retry(uv_timer_t *t)
{
    connect_now(t->data);
}

static void
link_req(struct gw_redis *r, struct req *q)
{
    q->prev = r->tail;
    q->next = NULL;
    if (r->tail)
        r->tail->next = q;
    else
        r->head = q;
    r->tail = q;
    r->st.pending++;
}

static void
unlink_req(struct gw_redis *r, struct req *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        r->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        r->tail = q->prev;
    q->prev = q->next = NULL;
    r->st.pending--;
}

static void
req_free(struct req *q)
{
    if (!q)
        return;
    free(q->argv);
    free(q);
}

static void
schedule_retry(struct gw_redis *r)
{
    uint64_t d;

    if (r->state == R_CLOSED)
        return;
    /* Jitter in [50%, 100%] so a fleet does not reconnect in lockstep. */
    d = r->backoff_ms / 2 + (uint64_t)rand() % (r->backoff_ms / 2 + 1);
    uv_timer_start(&r->retry, on_retry, d, 0);
    r->backoff_ms *= 2;
    if (r->backoff_ms > r->backoff_max_ms)
        r->backoff_ms = r->backoff_max_ms;
}

static void
went_down(struct gw_redis *r, int was_up)
{
    r->ac = NULL;
    if (r->state != R_CLOSED)
        r->state = R_DOWN;
    r->st.disconnects++;
    if (was_up && r->on_state)
        r->on_state(r, 0, r->arg);
    schedule_retry(r);
}

/* Drop the connection now; hiredis runs pending callbacks with NULL. */
static void
drop(struct gw_redis *r, const char *why)
{
    redisAsyncContext *ac = r->ac;
    int was_up = r->state == R_UP;

    if (!ac)
        return;
    log_warn(&r->log, "dropping connection: %s", why);
    /* Down first, so callbacks run by the free cannot send on it. */
    if (r->state != R_CLOSED)
        r->state = R_DOWN;
    r->dropped_up = was_up;
    redisAsyncFree(ac);
    /* onDisconnect only runs for a connection that was established. */
    if (r->ac == ac)
        went_down(r, was_up);
    r->dropped_up = 0;
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
    struct gw_redis *r = ac->data;

    if (status == REDIS_OK) {
        log_debug(&r->log, "connected");
        if (r->state == R_CONNECTING)
            r->state = R_HANDSHAKE;
        return;
    }
    log_warn(&r->log, "connect failed: %s", ac->errstr);
    /* hiredis frees the context after this returns. */
    if (r->ac == ac)
        went_down(r, 0);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    struct gw_redis *r = ac->data;

    if (status != REDIS_OK)
        log_warn(&r->log, "connection lost: %s", ac->errstr);
    if (r->ac == ac)
        went_down(r, r->state == R_UP || r->dropped_up);
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct req *q = priv;
    struct gw_redis *r = q->r;
    redisReply *rep = reply;

    (void)ac;
    unlink_req(r, q);
    if (rep && q->script && gw_reply_is_error(rep, "NOSCRIPT") &&
        r->state == R_UP) {
        /* Script cache flushed (or a new server): send the source once. */
        const struct gw_script *s = q->script;
        q->script = NULL;
        q->argv[0] = "EVAL";
        q->argvlen[0] = 4;
        q->argv[1] = s->src;
        q->argvlen[1] = strlen(s->src);
        if (redisAsyncCommandArgv(r->ac, on_reply, q, q->argc, q->argv,
                                  q->argvlen) == REDIS_OK) {
            q->deadline = uv_now(r->loop) + r->timeout_ms;
            link_req(r, q);
            return;
        }
        rep = NULL;
    }
    if (q->cb)
        q->cb(r, rep, q->arg);
    req_free(q);
}

static int
send_argv(struct gw_redis *r, struct req *q, int argc, const char **argv,
          const size_t *argvlen, uint64_t extra_ms)
{
    if (redisAsyncCommandArgv(r->ac, on_reply, q, argc, argv, argvlen) !=
        REDIS_OK)
        return GW_ENOCONN;
    q->r = r;
    q->deadline = uv_now(r->loop) + r->timeout_ms + extra_ms;
    link_req(r, q);
    r->st.commands++;
    return 0;
}

static void
on_handshake(struct gw_redis *r, redisReply *rep, void *arg)
{
    const char *what = arg;

    if (!rep)
        return;                 /* the drop already scheduled a retry */
    if (rep->type == REDIS_REPLY_ERROR) {
        log_error(&r->log, "%s refused: %s", what, rep->str);
        /* Bad credentials will not fix themselves: back off to the cap. */
        r->backoff_ms = r->backoff_max_ms;
        drop(r, "handshake failed");
        return;
    }
    if (strcmp(what, "PING") == 0 && r->state == R_HANDSHAKE) {
        r->state = R_UP;
        r->backoff_ms = 100;
        r->st.connects++;
        log_info(&r->log, "up");
        if (r->on_state)
            r->on_state(r, 1, r->arg);
    }
}

static void
handshake_cmd(struct gw_redis *r, const char *what, int argc,
              const char **argv)
{
    struct req *q = calloc(1, sizeof *q);

    if (!q)
        return;
    q->cb = on_handshake;
    q->arg = (void *)what;
    q->internal = 1;
    if (send_argv(r, q, argc, argv, NULL, 0) < 0)
        req_free(q);
}

static void
connect_now(struct gw_redis *r)
{
    const struct redis_addr *a = r->addr;
    redisAsyncContext *ac;
    char db[16];

    if (r->state == R_CLOSED || r->ac)
        return;
    ac = a->path ? redisAsyncConnectUnix(a->path)
                 : redisAsyncConnect(a->host, a->port);
    if (!ac || ac->err) {
        log_warn(&r->log, "connect: %s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(r);
        return;
    }
    ac->data = r;
    if (gw_redis_attach(ac, r->loop) < 0) {
        redisAsyncFree(ac);
        schedule_retry(r);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    r->state = R_CONNECTING;
    r->connect_deadline = uv_now(r->loop) + r->timeout_ms;
    /* hiredis buffers these until the socket is connected. */
    if (a->password) {
        const char *argv[] = { "AUTH", a->password };
        handshake_cmd(r, "AUTH", 2, argv);
    }
    if (a->db) {
        snprintf(db, sizeof db, "%d", a->db);
        const char *argv[] = { "SELECT", db };
        handshake_cmd(r, "SELECT", 2, argv);
    }
    const char *ping[] = { "PING" };
    handshake_cmd(r, "PING", 1, ping);
}

static void
on_watchdog(uv_timer_t *t)
{
    struct gw_redis *r = t->data;
    uint64_t now = uv_now(r->loop);

    if (r->state == R_CONNECTING && now > r->connect_deadline)
        drop(r, "connect timed out");
    else if (r->head && now > r->head->deadline) {
        r->st.timeouts++;
        drop(r, "reply overdue");
    }
}

struct gw_redis *
gw_redis_new(uv_loop_t *loop, const char *name, const struct redis_addr *addr,
             uint64_t timeout_ms, uint64_t backoff_max_ms,
             gw_redis_state_cb *on_state, void *arg)
{
    struct gw_redis *r = calloc(1, sizeof *r);
    uint64_t tick;

    if (!r)
        return NULL;
    r->loop = loop;
    r->name = name;
    r->addr = addr;
    r->timeout_ms = timeout_ms;
    r->backoff_ms = 100;
    r->backoff_max_ms = backoff_max_ms < 100 ? 100 : backoff_max_ms;
    r->on_state = on_state;
    r->arg = arg;
    r->log.module = "redis";
    r->log.ctx = name;
    uv_timer_init(loop, &r->watchdog);
    uv_timer_init(loop, &r->retry);
    r->watchdog.data = r->retry.data = r;
    tick = timeout_ms / 4 < 50 ? 50 : timeout_ms / 4;
    if (tick > 1000)
        tick = 1000;
    uv_timer_start(&r->watchdog, on_watchdog, tick, tick);
    r->state = R_DOWN;
    connect_now(r);
    return r;
}

static void
on_handle_closed(uv_handle_t *h)
{
    struct gw_redis *r = h->data;

    if (--r->nclosing == 0)
        free(r);
}

void
gw_redis_close(struct gw_redis *r)
{
    if (!r || r->state == R_CLOSED)
        return;
    r->state = R_CLOSED;
    r->on_state = NULL;
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        redisAsyncFree(ac);     /* pending callbacks see NULL */
        r->ac = NULL;
    }
    r->nclosing = 2;
    uv_close((uv_handle_t *)&r->watchdog, on_handle_closed);
    uv_close((uv_handle_t *)&r->retry, on_handle_closed);
}

int
gw_redis_is_up(const struct gw_redis *r)
{
    return r && r->state == R_UP;
}

int
gw_redis_cmd(struct gw_redis *r, gw_redis_cb *cb, void *arg,
             uint64_t extra_ms, int argc, const char **argv,
             const size_t *argvlen)
{
    struct req *q;
    int rc;

    if (r->state != R_UP)
        return GW_ENOCONN;
    if ((q = calloc(1, sizeof *q)) == NULL)
        return -ENOMEM;
    q->cb = cb;
    q->arg = arg;
    if ((rc = send_argv(r, q, argc, argv, argvlen, extra_ms)) < 0)
        req_free(q);
    return rc;
}

int
gw_redis_cmdf(struct gw_redis *r, gw_redis_cb *cb, void *arg,
              const char *fmt, ...)
{
    struct req *q;
    va_list ap;
    int rc;

    if (r->state != R_UP)
        return GW_ENOCONN;
    if ((q = calloc(1, sizeof *q)) == NULL)
        return -ENOMEM;
    q->cb = cb;
    q->arg = arg;
    q->r = r;
    va_start(ap, fmt);
    rc = redisvAsyncCommand(r->ac, on_reply, q, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        req_free(q);
        return GW_ENOCONN;
    }
    q->deadline = uv_now(r->loop) + r->timeout_ms;
    link_req(r, q);
    r->st.commands++;
    return 0;
}

int
gw_script_init(struct gw_script *s, const char *name, const char *src)
{
    unsigned char md[SHA_DIGEST_LENGTH];

    s->name = name;
    if ((s->src = strdup(src)) == NULL)
        return -ENOMEM;
    SHA1((const unsigned char *)src, strlen(src), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
    return 0;
}

void
gw_script_free(struct gw_script *s)
{
    free(s->src);
    s->src = NULL;
}

int
gw_redis_eval(struct gw_redis *r, const struct gw_script *s, gw_redis_cb *cb,
              void *arg, int numkeys, int argc, const char **argv,
              const size_t *argvlen)
{
    struct req *q;
    int n = argc + 3, rc;
    size_t total = 0;
    char *p;

    if (r->state != R_UP)
        return GW_ENOCONN;
    for (int i = 0; i < argc; i++)
        total += (argvlen ? argvlen[i] : strlen(argv[i])) + 1;
    if ((q = calloc(1, sizeof *q)) == NULL)
        return -ENOMEM;
    /* One allocation for the copy: a batch carries thousands of args. */
    q->argv = malloc((size_t)n * (sizeof *q->argv + sizeof *q->argvlen) +
                     total);
    if (!q->argv) {
        free(q);
        return -ENOMEM;
    }
    q->argvlen = (size_t *)(void *)(q->argv + n);
    p = (char *)(q->argvlen + n);
    q->cb = cb;
    q->arg = arg;
    q->script = s;
    q->argc = n;
    snprintf(q->nk, sizeof q->nk, "%d", numkeys);
    q->argv[0] = "EVALSHA";
    q->argv[1] = s->sha;
    q->argv[2] = q->nk;
    q->argvlen[0] = 7;
    q->argvlen[1] = 40;
    q->argvlen[2] = strlen(q->nk);
    for (int i = 0; i < argc; i++) {
        size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
        memcpy(p, argv[i], len);
        p[len] = 0;
        q->argv[i + 3] = p;
        q->argvlen[i + 3] = len;
        p += len + 1;
    }
    if ((rc = send_argv(r, q, n, q->argv, q->argvlen, 0)) < 0)
        req_free(q);
    return rc;
}

void
gw_redis_stats(const struct gw_redis *r, struct gw_redis_stats *out)
{
    *out = r->st;
}

int
gw_reply_is_error(const redisReply *r, const char *prefix)
{
    return r && r->type == REDIS_REPLY_ERROR &&
           strncmp(r->str, prefix, strlen(prefix)) == 0;
}

int
gw_redis_addr_parse(struct redis_addr *a, const char *url, char *err,
                    size_t errlen)
{
    char host[256] = "127.0.0.1";
    const char *p, *at, *slash, *colon;
    struct addrinfo hints, *res = NULL;
    char ip[INET6_ADDRSTRLEN];
    int gai;

    memset(a, 0, sizeof *a);
    a->port = 6379;
    if (strncmp(url, "unix://", 7) == 0) {
        const char *q = strchr(url + 7, '?');
        a->path = q ? strndup(url + 7, (size_t)(q - url - 7))
                    : strdup(url + 7);
        if (q && strncmp(q, "?db=", 4) == 0)
            a->db = atoi(q + 4);
        return a->path ? 0 : -ENOMEM;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "redis url must start with redis:// or unix://");
        return GW_EINVAL;
    }
    p = url + 8;
    if ((at = strchr(p, '@')) != NULL) {
        const char *pc = memchr(p, ':', (size_t)(at - p));
        /* redis://[user]:password@ -- 0.14 has no ACL users: password only */
        if (pc)
            a->password = strndup(pc + 1, (size_t)(at - pc - 1));
        p = at + 1;
    }
    slash = strchr(p, '/');
    colon = strchr(p, ':');
    if (colon && (!slash || colon < slash)) {
        if ((size_t)(colon - p) >= sizeof host)
            goto bad;
        memcpy(host, p, (size_t)(colon - p));
        host[colon - p] = 0;
        a->port = atoi(colon + 1);
    } else if (p[0] && p != slash) {
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n >= sizeof host)
            goto bad;
        memcpy(host, p, n);
        host[n] = 0;
    }
    if (slash && slash[1])
        a->db = atoi(slash + 1);
    if (a->port <= 0 || a->port > 65535 || a->db < 0)
        goto bad;
    /* Resolve once, here, because hiredis would resolve blocking. */
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((gai = getaddrinfo(host, NULL, &hints, &res)) != 0) {
        snprintf(err, errlen, "redis host %s: %s", host, gai_strerror(gai));
        gw_redis_addr_free(a);
        return GW_EINVAL;
    }
    if (res->ai_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)res->ai_addr)
                  ->sin_addr, ip, sizeof ip);
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)res->ai_addr)
                  ->sin6_addr, ip, sizeof ip);
    freeaddrinfo(res);
    if ((a->host = strdup(ip)) == NULL)
        return -ENOMEM;
    return 0;
bad:
    snprintf(err, errlen, "redis url '%s' is malformed", url);
    gw_redis_addr_free(a);
    return GW_EINVAL;
}

void
gw_redis_addr_free(struct redis_addr *a)
{
    free(a->host);
    free(a->path);
    free(a->password);
    memset(a, 0, sizeof *a);
}

/*
 * redis_uv.c -- drives a hiredis async context from the libuv loop: one
 * uv_poll on its socket. Ours rather than hiredis's adapters/libuv.h
 * because that one drops poll errors on the floor, so a refused connect
 * or a reset socket waits for our watchdog instead of failing at once;
 * here an error is handed to hiredis, which reads the socket error and
 * reports it through its connect or disconnect callback.
 */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <uv.h>

int gw_redis_attach(redisAsyncContext *ac, uv_loop_t *loop);

struct poller {
    redisAsyncContext *ac;      /* NULL once hiredis has cleaned up */
    uv_poll_t          poll;
    int                events;
};

static void
on_poll(uv_poll_t *h, int status, int events)
{
    struct poller *p = h->data;

    if (!p->ac)
        return;
    if (status < 0) {
        /* Let hiredis find the error: a pending connect is completed by
         * the write handler, an established socket fails its read. */
        if (!(p->ac->c.flags & REDIS_CONNECTED))
            redisAsyncHandleWrite(p->ac);
        else
            redisAsyncHandleRead(p->ac);
        return;
    }
    if (p->ac && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void
update(struct poller *p, int add, int del)
{
    p->events = (p->events | add) & ~del;
    if (p->events)
        uv_poll_start(&p->poll, p->events, on_poll);
    else
        uv_poll_stop(&p->poll);
}

static void add_read(void *d) { update(d, UV_READABLE, 0); }
static void del_read(void *d) { update(d, 0, UV_READABLE); }
static void add_write(void *d) { update(d, UV_WRITABLE, 0); }
static void del_write(void *d) { update(d, 0, UV_WRITABLE); }

static void
on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void
cleanup(void *d)
{
    struct poller *p = d;

    p->ac = NULL;               /* hiredis frees the context after this */
    uv_close((uv_handle_t *)&p->poll, on_closed);
}

int
gw_redis_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    struct poller *p;

    if (ac->ev.data != NULL || (p = calloc(1, sizeof *p)) == NULL)
        return -1;
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return -1;
    }
    p->ac = ac;
    p->poll.data = p;
    ac->ev.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}

/*
 * curl_uv.c -- libcurl multi on the libuv loop; see curl_uv.h.
 */
#include "curl_uv.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

struct curl_uv_sock {           /* a socket libcurl asked us to watch */
    uv_poll_t            poll;
    curl_socket_t        fd;
    struct curl_uv      *cu;
    struct curl_uv_sock *next, *prev;
};

static void
on_sock_closed(uv_handle_t *h)
{
    struct curl_uv_sock *k = h->data;
    struct curl_uv *cu = k->cu;

    free(k);
    cu->closed(cu->owner);
}

static void
sock_close(struct curl_uv *cu, struct curl_uv_sock *k)
{
    uv_poll_stop(&k->poll);
    if (k->prev)
        k->prev->next = k->next;
    else
        cu->socks = k->next;
    if (k->next)
        k->next->prev = k->prev;
    uv_close((uv_handle_t *)&k->poll, on_sock_closed);
}

void
curl_uv_close_socks(struct curl_uv *cu)
{
    while (cu->socks)
        sock_close(cu, cu->socks);
}

static void
on_poll(uv_poll_t *p, int status, int events)
{
    struct curl_uv_sock *k = p->data;
    struct curl_uv *cu = k->cu;
    int flags = 0, running;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    /* k may be closed by what follows: nothing of it is used after. */
    curl_multi_socket_action(cu->multi, k->fd, flags, &running);
    cu->progress(cu->owner);
}

static int
on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct curl_uv *cu = userp;
    struct curl_uv_sock *k = socketp;
    int events = 0;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (k) {
            curl_multi_assign(cu->multi, fd, NULL);
            sock_close(cu, k);
        }
        return 0;
    }
    if (!k) {
        if ((k = calloc(1, sizeof *k)) == NULL)
            return -1;
        if (uv_poll_init_socket(cu->loop, &k->poll, fd) < 0) {
            free(k);
            return -1;
        }
        k->poll.data = k;
        k->fd = fd;
        k->cu = cu;
        k->next = cu->socks;
        if (cu->socks)
            cu->socks->prev = k;
        cu->socks = k;
        cu->opened(cu->owner);
        curl_multi_assign(cu->multi, fd, k);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&k->poll, events, on_poll);
    return 0;
}

static void
on_curl_timeout(uv_timer_t *t)
{
    struct curl_uv *cu = (struct curl_uv *)(void *)
        ((char *)t - offsetof(struct curl_uv, timer));
    int running;

    curl_multi_socket_action(cu->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    cu->progress(cu->owner);
}

static int
on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct curl_uv *cu = userp;

    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&cu->timer);
    else
        uv_timer_start(&cu->timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

int
curl_uv_init(struct curl_uv *cu, uv_loop_t *loop, void *owner,
             void (*progress)(void *), void (*opened)(void *),
             void (*closed)(void *))
{
    if ((cu->multi = curl_multi_init()) == NULL)
        return -ENOMEM;
    cu->loop = loop;
    cu->socks = NULL;
    cu->owner = owner;
    cu->progress = progress;
    cu->opened = opened;
    cu->closed = closed;
    curl_multi_setopt(cu->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(cu->multi, CURLMOPT_SOCKETDATA, cu);
    curl_multi_setopt(cu->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(cu->multi, CURLMOPT_TIMERDATA, cu);
    uv_timer_init(loop, &cu->timer);
    cu->timer.data = owner;
    return 0;
}

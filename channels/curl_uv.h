/*
 * curl_uv.h -- libcurl's multi interface driven by a libuv loop (the shape
 * of curl's multi-uv example): one uv_poll per socket libcurl asks us to
 * watch and one uv_timer for its timeouts. Shared by the SMTP and fax
 * backends, which keep their own transfers and their own teardown.
 */
#ifndef GW_CURL_UV_H
#define GW_CURL_UV_H

#include <curl/curl.h>
#include <uv.h>

struct curl_uv_sock;

struct curl_uv {
    CURLM               *multi;
    uv_loop_t           *loop;
    uv_timer_t           timer;     /* libcurl's timeouts; data is the
                                       owner's (its close callback) */
    struct curl_uv_sock *socks;     /* watched now */
    void                *owner;
    /* after libcurl ran: the owner reads finished transfers */
    void               (*progress)(void *owner);
    /* a socket watcher (a uv handle) was opened / has closed */
    void               (*opened)(void *owner);
    void               (*closed)(void *owner);
};

/* Make the multi handle and the timer (timer.data = owner). 0 or -ENOMEM;
 * on failure nothing is left to close. */
int  curl_uv_init(struct curl_uv *cu, uv_loop_t *loop, void *owner,
                  void (*progress)(void *), void (*opened)(void *),
                  void (*closed)(void *));
/* Teardown, after curl_multi_cleanup(): stop watching every socket (each
 * close ends in closed()). The timer is the owner's to close. */
void curl_uv_close_socks(struct curl_uv *cu);

#endif

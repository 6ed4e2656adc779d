/*
 * redis.h -- one Redis connection on the loop: hiredis 0.14 async with our
 * own watchdog (0.14 has no async timeouts), reconnect with capped
 * exponential backoff and jitter, AUTH/SELECT on connect, and Lua scripts
 * called by EVALSHA with a fallback to EVAL on NOSCRIPT.
 *
 * Replies are borrowed: a callback gets a redisReply owned by hiredis, or
 * NULL when the connection was lost before the reply came (the caller
 * retries after the next on_up).
 */
#ifndef GW_REDIS_H
#define GW_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <hiredis/hiredis.h>

struct gw_redis;
struct redisAsyncContext;

typedef void gw_redis_cb(struct gw_redis *r, redisReply *reply, void *arg);
typedef void gw_redis_state_cb(struct gw_redis *r, int up, void *arg);

struct redis_addr {
    char    *host;      /* numeric IP (hiredis resolves names blocking) */
    int      port;
    char    *path;      /* unix socket, or NULL */
    char    *password;
    int      db;
};

/* A Lua script; sha is filled by gw_redis_script_init. */
struct gw_script {
    const char *name;
    char       *src;    /* owned */
    char        sha[41];
};

/* Parse redis://[:password@]host[:port][/db] or unix:///path[?db=N].
 * Names are resolved once here (start-up only). 0 or GW_EINVAL. */
int gw_redis_addr_parse(struct redis_addr *a, const char *url, char *err,
                        size_t errlen);
void gw_redis_addr_free(struct redis_addr *a);

/* A new connection object; it connects at once and keeps reconnecting
 * until gw_redis_close. name is for logs ("cmd", "block"). addr is
 * borrowed and must outlive the connection. */
struct gw_redis *gw_redis_new(uv_loop_t *loop, const char *name,
                              const struct redis_addr *addr,
                              uint64_t timeout_ms, uint64_t backoff_max_ms,
                              gw_redis_state_cb *on_state, void *arg);

/* Disconnect and free once every handle is closed. Pending callbacks run
 * with NULL replies. */
void gw_redis_close(struct gw_redis *r);

int gw_redis_is_up(const struct gw_redis *r);

/* Send a command. extra_ms extends the watchdog for blocking commands.
 * Returns 0 (cb runs exactly once, later) or GW_ENOCONN (cb never runs). */
int gw_redis_cmd(struct gw_redis *r, gw_redis_cb *cb, void *arg,
                 uint64_t extra_ms, int argc, const char **argv,
                 const size_t *argvlen);
/* printf-style variant for small fixed commands. */
int gw_redis_cmdf(struct gw_redis *r, gw_redis_cb *cb, void *arg,
                  const char *fmt, ...);

/* Compute the script's SHA1 (start-up). */
int gw_script_init(struct gw_script *s, const char *name, const char *src);
void gw_script_free(struct gw_script *s);

/* EVALSHA script numkeys args...; argv/argvlen hold keys then arguments
 * and are copied. NOSCRIPT is retried once as EVAL. */
int gw_redis_eval(struct gw_redis *r, const struct gw_script *s,
                  gw_redis_cb *cb, void *arg, int numkeys, int argc,
                  const char **argv, const size_t *argvlen);

/* Counters for metrics. */
struct gw_redis_stats {
    uint64_t connects, disconnects, timeouts, commands;
    unsigned pending;
};
void gw_redis_stats(const struct gw_redis *r, struct gw_redis_stats *out);

/* An error reply's text starts with prefix ("NOGROUP", "BUSYGROUP"). */
int gw_reply_is_error(const redisReply *r, const char *prefix);

#endif

/*
 * throttle.h -- token buckets for outbound rate limits: one bucket with an
 * adaptive (AIMD) rate, a path of buckets taken all-or-nothing, and a
 * registry of named buckets created on demand from a rule.
 *
 * Pure computation for the dispatcher's thread: no I/O, no clock. Every
 * call that depends on time takes now_us (microseconds on any monotonic
 * clock the caller likes, the same one for every call on a bucket).
 *
 * Refill mode: tokens flow in at the current rate up to burst.
 * Lease mode (rule.shared): tokens come only from bucket_grant(), with
 * leases the caller obtained from Redis; bucket_want() says how many to
 * ask for next.
 *
 * Adaptive rate: bucket_signal() (a provider said "throttled") halves the
 * current rate, not below the floor; more signals within hold_ms of the
 * last halving are the same episode and do not halve again. Once
 * recover_ms have passed since the last signal the rate rises by step,
 * and again every further recover_ms, until it is back at the configured
 * rate (never beyond). Applied lazily by every call that takes now_us.
 */
#ifndef GW_THROTTLE_H
#define GW_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

#define THROTTLE_PATH_MAX 6   /* global, provider, bind, sender, ... */
#define THROTTLE_NAME_MAX 256 /* bytes of a registry name, with NUL */
#define THROTTLE_IDLE_US  (60 * INT64_C(1000000)) /* default idle time */

/* How a bucket is made. A zero field takes its default. */
struct bucket_rule {
    double rate;        /* tokens per second, > 0 (required) */
    double burst;       /* capacity; 0: max(1, rate / 10) */
    double floor;       /* lowest adaptive rate; 0: max(1, rate / 16),
                         * never above rate */
    double step;        /* additive recovery per recover_ms;
                         * 0: rate / 10 (at least rate / 1000) */
    int64_t hold_ms;    /* signals this close count once; 0: 1000 */
    int64_t recover_ms; /* quiet time per recovery step; 0: 1000 */
    int shared;         /* lease mode: tokens from Redis leases */
    int pinned;         /* registry: never swept, not counted against
                         * max_buckets (global, provider, bind); its
                         * pointer stays valid until throttle_free() */
};

/*
 * A token bucket. The caller may embed one (bucket_init) or get one from
 * the registry (throttle_get). Fields are read-only outside throttle.c.
 */
struct bucket {
    const char *name; /* registry name, or NULL */
    double conf_rate; /* configured rate */
    double rate;      /* current (adaptive) rate */
    double burst, floor, step;
    double tokens;         /* may go below 0 after an oversized take */
    double demand;         /* lease mode: largest refused request */
    int64_t last_us;       /* tokens and rate are accounted to here */
    int64_t used_us;       /* last take (refused too), grant or signal */
    int64_t halved_us;     /* last halving */
    int64_t recover_at_us; /* next recovery step, if rate < conf_rate */
    int64_t hold_us, recover_us;
    double rule_floor, rule_step; /* as given, for bucket_set_rate */
    uint64_t signals;             /* throttle signals seen */
    uint64_t halvings;            /* of which halved the rate */
    int lease;                    /* tokens come from bucket_grant only */
    int halved;                   /* halved_us is valid */
    unsigned refs;                /* holds: never swept while > 0 */
    int pinned;
};

/* Set up b from rule at now_us: full in refill mode, empty in lease mode.
 * Borrows rule. 0, or GW_EINVAL for a bad rule (rate not > 0, a negative
 * or non-finite value). */
int bucket_init(struct bucket *b, const struct bucket_rule *rule,
                int64_t now_us);

/* Take n tokens: 0 when they were taken, else the microseconds until they
 * should be there (> 0; nothing taken). A request larger than burst is
 * granted once the bucket is full and leaves the bucket in debt, so it is
 * delayed, never refused forever. In lease mode the wait is an estimate
 * at the current rate, and a refused request raises bucket_want(). */
int64_t bucket_take(struct bucket *b, int64_t now_us, unsigned n);

/* As bucket_take, but takes nothing. */
int64_t bucket_peek_wait(struct bucket *b, int64_t now_us, unsigned n);

/* Bring tokens and the adaptive rate up to now_us. */
void bucket_tick(struct bucket *b, int64_t now_us);

/* A new configured rate (config reload); burst and the state of a
 * throttle episode are kept, the floor and step follow the rule's
 * defaults if it had none. 0, or GW_EINVAL. */
int bucket_set_rate(struct bucket *b, double rate, int64_t now_us);

/* The provider throttled us: 1 if this halved the rate, 0 if it was part
 * of the episode already counted (within hold_ms of the last halving)
 * or the rate was at the floor already. */
int bucket_signal(struct bucket *b, int64_t now_us);

/* The current rate, as of the last call that took now_us (for metrics;
 * bucket_tick first for an up-to-date value). */
double bucket_rate(const struct bucket *b);

/* Lease mode: n tokens leased from Redis arrived. In refill mode it adds
 * them too, up to burst. */
void bucket_grant(struct bucket *b, unsigned n, int64_t now_us);

/* Lease mode: how many tokens to ask Redis for now; 0 when enough are
 * held. The target is about 50 ms worth, max(1, rate / 20), at most
 * burst, or the largest request refused since the last take if that is
 * more. The caller keeps one request per bucket outstanding at a time.
 * Always 0 in refill mode. */
unsigned bucket_want(const struct bucket *b);

/* A path of buckets, from the widest (global) to the narrowest. Borrows
 * the buckets. */
struct throttle_path {
    struct bucket *b[THROTTLE_PATH_MAX];
    int n;
};

void throttle_path_init(struct throttle_path *p);

/* Append b; a bucket already on the path is not added twice. 0, or
 * GW_EINVAL for NULL, GW_ETOOBIG when the path is full. */
int throttle_path_add(struct throttle_path *p, struct bucket *b);

/* Take n tokens from every bucket of the path, or from none: 0 when
 * taken (*wait_us = 0), else 1 with *wait_us the longest wait of any
 * bucket (then nothing was consumed anywhere). A throttle signal goes to
 * one bucket of the path (the provider's or the bind's) with
 * bucket_signal. */
int throttle_path_take(struct throttle_path *p, int64_t now_us, unsigned n,
                       int64_t *wait_us);

/* Keep a registry bucket from being swept while its pointer is stored
 * beyond the next throttle_sweep() (e.g. a queue of messages waiting on a
 * path); every hold needs one release, before throttle_free(). The path
 * versions hold or release each bucket of the path. */
void bucket_hold(struct bucket *b);
void bucket_release(struct bucket *b);
void throttle_path_hold(struct throttle_path *p);
void throttle_path_release(struct throttle_path *p);

/*
 * The registry: buckets by name ("global", "provider:sms1",
 * "bind:sms1:0", "sender:sms1:+4470000", "domain:mail:gmail.com").
 * At most max_buckets unpinned buckets; throttle_sweep() drops those idle
 * for longer than the idle time (default 60 s) whose tokens are full and
 * whose rate is back at the configured one, so one recreated later
 * behaves the same. Lease buckets idle that long are dropped with their
 * leftover leases (an under-use, never an over-use).
 */
struct throttle;

/* A new registry; max_buckets 0 means 100000. NULL on ENOMEM. */
struct throttle *throttle_new(size_t max_buckets);

/* Free it and all its buckets; NULL does nothing. */
void throttle_free(struct throttle *t);

/* Idle time before a bucket may be swept (default THROTTLE_IDLE_US). */
void throttle_set_idle(struct throttle *t, int64_t idle_us);

/*
 * The bucket called name, made from rule at now_us if there is none (the
 * rule of an existing bucket is not compared: use bucket_set_rate). rule
 * NULL only looks up. Borrows name and rule; the registry owns the
 * bucket, which stays valid until the next throttle_sweep() (held or
 * pinned: until bucket_release() or throttle_free()). NULL with errno: ENOENT (rule NULL, absent), ENOSPC
 * (max_buckets reached; the caller decides whether to go on without this
 * level), ENAMETOOLONG, EINVAL (bad rule), ENOMEM.
 */
struct bucket *throttle_get(struct throttle *t, const char *name,
                            const struct bucket_rule *rule, int64_t now_us);

/* Drop idle buckets (see above); returns how many. Call it from a timer,
 * every few seconds. */
size_t throttle_sweep(struct throttle *t, int64_t now_us);

/* Unpinned (counted) and pinned buckets held. */
size_t throttle_count(const struct throttle *t);
size_t throttle_count_pinned(const struct throttle *t);

/* Creations refused because max_buckets was reached. */
uint64_t throttle_refused(const struct throttle *t);

/* One bucket for metrics. name is borrowed for the callback only. */
struct throttle_stat {
    const char *name;
    double conf_rate; /* configured rate */
    double rate;      /* current rate */
    double tokens;
    double burst;
    uint64_t signals, halvings;
    int lease;
};

typedef void throttle_stat_cb(void *arg, const struct throttle_stat *st);

/* Call cb for every bucket, each brought up to now_us first. cb must not
 * call throttle_get or throttle_sweep. */
void throttle_foreach(struct throttle *t, int64_t now_us, throttle_stat_cb *cb,
                      void *arg);

#endif

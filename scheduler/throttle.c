/*
 * throttle.c -- token buckets with an adaptive (AIMD) rate, paths of
 * buckets taken all-or-nothing, and the registry of named buckets (a
 * chained hash table keyed by SipHash-2-4 with a random key, so sender
 * addresses and domains chosen by outsiders cannot pile into one chain).
 * See throttle.h for the rules; time always comes in as now_us.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "err.h"
#include "scheduler/throttle.h"

#define DEFAULT_MAX_BUCKETS 100000
#define DEFAULT_HOLD_MS     1000
#define DEFAULT_RECOVER_MS  1000
#define MAX_VALUE           1e15 /* sanity bound for rates and bursts */
#define MAX_MS              (INT64_C(1000) * 86400 * 366) /* a year */
#define INITIAL_SLOTS       64
#define LEASE_BATCH_DIV     20 /* lease about 50 ms worth at a time */

struct entry {
    struct entry *next; /* hash chain */
    uint64_t hash;
    struct bucket b;
    char name[];
};

struct throttle {
    struct entry **slots;
    size_t nslots; /* a power of two */
    size_t count;  /* unpinned buckets */
    size_t pinned;
    size_t max;
    int64_t idle_us;
    uint64_t refused;
    uint64_t k0, k1; /* SipHash key */
};

/* A finite value in (0, MAX_VALUE]. */
static int
good_positive(double x)
{
    return x > 0 && x <= MAX_VALUE;
}

/* A finite value in [0, MAX_VALUE]. */
static int
good_optional(double x)
{
    return x >= 0 && x <= MAX_VALUE;
}

static double
dmax(double a, double b)
{
    return a > b ? a : b;
}

static double
dmin(double a, double b)
{
    return a < b ? a : b;
}

/* The configured rate and what derives from it. */
static void
apply_rate(struct bucket *b, double rate)
{
    b->conf_rate = rate;
    b->floor = b->rule_floor > 0 ? b->rule_floor : dmax(1.0, rate / 16);
    if (b->floor > rate)
        b->floor = rate;
    b->step = b->rule_step > 0 ? b->rule_step : rate / 10;
    if (b->step < rate / 1000) /* bounds the steps of one recovery */
        b->step = rate / 1000;
}

int
bucket_init(struct bucket *b, const struct bucket_rule *r, int64_t now_us)
{
    if (!b || !r || !good_positive(r->rate) || !good_optional(r->burst) ||
        !good_optional(r->floor) || !good_optional(r->step) || r->hold_ms < 0 ||
        r->hold_ms > MAX_MS || r->recover_ms < 0 || r->recover_ms > MAX_MS)
        return GW_EINVAL;
    memset(b, 0, sizeof *b);
    b->rule_floor = r->floor;
    b->rule_step = r->step;
    apply_rate(b, r->rate);
    b->rate = b->conf_rate;
    b->burst = r->burst > 0 ? r->burst : dmax(1.0, r->rate / 10);
    b->hold_us = (r->hold_ms ? r->hold_ms : DEFAULT_HOLD_MS) * 1000;
    b->recover_us = (r->recover_ms ? r->recover_ms : DEFAULT_RECOVER_MS) * 1000;
    b->lease = r->shared != 0;
    b->pinned = r->pinned != 0;
    b->tokens = b->lease ? 0 : b->burst;
    b->last_us = now_us;
    b->used_us = now_us;
    return 0;
}

/* Tokens earned at the current rate from last_us to t (refill mode). */
static void
accrue(struct bucket *b, int64_t t)
{
    if (t <= b->last_us)
        return;
    if (!b->lease && b->tokens < b->burst) {
        b->tokens += b->rate * (double)(t - b->last_us) / 1e6;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
    }
    b->last_us = t;
}

void
bucket_tick(struct bucket *b, int64_t now_us)
{
    /* recovery steps due by now, each with the tokens earned before it */
    while (b->rate < b->conf_rate && b->recover_at_us <= now_us) {
        accrue(b, b->recover_at_us);
        b->rate = dmin(b->conf_rate, b->rate + b->step);
        if (b->recover_at_us > INT64_MAX - b->recover_us)
            break;
        b->recover_at_us += b->recover_us;
    }
    accrue(b, now_us);
}

/* Microseconds until n tokens are there, 0 if they are. */
static int64_t
wait_for(struct bucket *b, int64_t now_us, unsigned n)
{
    double need = dmin((double)n, b->burst), us;
    int64_t w;

    bucket_tick(b, now_us);
    if (b->tokens + 1e-9 * (1 + need) >= need)
        return 0;
    /* at the current rate: recovery can only make it sooner */
    /* rounded up, but not for a rounding error in the last digits */
    us = (need - b->tokens) * 1e6 / b->rate - 1e-6;
    if (us >= 9e18)
        return INT64_MAX;
    w = (int64_t)us;
    if ((double)w < us)
        w++;
    return w < 1 ? 1 : w;
}

/* A refused take is use too: someone is waiting on b. */
static void
refused(struct bucket *b, unsigned n, int64_t now_us)
{
    double need = dmin((double)n, b->burst);

    if (b->lease && need > b->demand)
        b->demand = need;
    if (now_us > b->used_us)
        b->used_us = now_us;
}

static void
consume(struct bucket *b, unsigned n, int64_t now_us)
{
    b->tokens -= (double)n;
    b->demand = 0;
    if (now_us > b->used_us)
        b->used_us = now_us;
}

int64_t
bucket_peek_wait(struct bucket *b, int64_t now_us, unsigned n)
{
    return wait_for(b, now_us, n);
}

int64_t
bucket_take(struct bucket *b, int64_t now_us, unsigned n)
{
    int64_t w = wait_for(b, now_us, n);

    if (w > 0) {
        refused(b, n, now_us);
        return w;
    }
    consume(b, n, now_us);
    return 0;
}

int
bucket_set_rate(struct bucket *b, double rate, int64_t now_us)
{
    int reduced;

    if (!good_positive(rate))
        return GW_EINVAL;
    bucket_tick(b, now_us);
    reduced = b->rate < b->conf_rate;
    apply_rate(b, rate);
    /* an episode in progress goes on recovering towards the new rate */
    if (!reduced || b->rate > b->conf_rate)
        b->rate = b->conf_rate;
    if (b->rate < b->floor)
        b->rate = b->floor;
    return 0;
}

int
bucket_signal(struct bucket *b, int64_t now_us)
{
    double next;

    bucket_tick(b, now_us);
    b->signals++;
    if (now_us > b->used_us)
        b->used_us = now_us;
    /* recovery starts only after recover_ms without any signal */
    b->recover_at_us = now_us + b->recover_us;
    if (b->halved && now_us - b->halved_us < b->hold_us)
        return 0; /* the same episode */
    next = dmax(b->floor, b->rate / 2);
    if (next >= b->rate)
        return 0; /* at the floor already */
    b->rate = next;
    b->halved = 1;
    b->halved_us = now_us;
    b->halvings++;
    return 1;
}

double
bucket_rate(const struct bucket *b)
{
    return b->rate;
}

void
bucket_grant(struct bucket *b, unsigned n, int64_t now_us)
{
    bucket_tick(b, now_us);
    b->tokens += (double)n;
    if (!b->lease && b->tokens > b->burst)
        b->tokens = b->burst;
    if (now_us > b->used_us)
        b->used_us = now_us;
}

unsigned
bucket_want(const struct bucket *b)
{
    double target, w;
    unsigned u;

    if (!b->lease)
        return 0;
    target = dmin(b->burst, dmax(1.0, b->rate / LEASE_BATCH_DIV));
    if (b->demand > target)
        target = b->demand;
    w = target - b->tokens;
    if (w <= 0)
        return 0;
    if (w >= 4e9)
        return 4000000000u;
    u = (unsigned)w;
    return (double)u < w ? u + 1 : u;
}

void
throttle_path_init(struct throttle_path *p)
{
    memset(p, 0, sizeof *p);
}

int
throttle_path_add(struct throttle_path *p, struct bucket *b)
{
    if (!b)
        return GW_EINVAL;
    for (int i = 0; i < p->n; i++)
        if (p->b[i] == b)
            return 0;
    if (p->n >= THROTTLE_PATH_MAX)
        return GW_ETOOBIG;
    p->b[p->n++] = b;
    return 0;
}

int
throttle_path_take(struct throttle_path *p, int64_t now_us, unsigned n,
                   int64_t *wait_us)
{
    int64_t longest = 0, w;

    for (int i = 0; i < p->n; i++) {
        if ((w = wait_for(p->b[i], now_us, n)) > 0) {
            refused(p->b[i], n, now_us);
            if (w > longest)
                longest = w;
        }
    }
    if (wait_us)
        *wait_us = longest;
    if (longest > 0)
        return 1; /* nothing consumed anywhere */
    for (int i = 0; i < p->n; i++)
        consume(p->b[i], n, now_us);
    return 0;
}

void
bucket_hold(struct bucket *b)
{
    b->refs++;
}

void
bucket_release(struct bucket *b)
{
    if (b->refs > 0)
        b->refs--;
}

void
throttle_path_hold(struct throttle_path *p)
{
    for (int i = 0; i < p->n; i++)
        bucket_hold(p->b[i]);
}

void
throttle_path_release(struct throttle_path *p)
{
    for (int i = 0; i < p->n; i++)
        bucket_release(p->b[i]);
}

/* SipHash-2-4 of s with the registry's key. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
    do {                                                                       \
        v0 += v1;                                                              \
        v1 = ROTL(v1, 13);                                                     \
        v1 ^= v0;                                                              \
        v0 = ROTL(v0, 32);                                                     \
        v2 += v3;                                                              \
        v3 = ROTL(v3, 16);                                                     \
        v3 ^= v2;                                                              \
        v0 += v3;                                                              \
        v3 = ROTL(v3, 21);                                                     \
        v3 ^= v0;                                                              \
        v2 += v1;                                                              \
        v1 = ROTL(v1, 17);                                                     \
        v1 ^= v2;                                                              \
        v2 = ROTL(v2, 32);                                                     \
    } while (0)

static uint64_t
siphash(const struct throttle *t, const char *s, size_t len)
{
    uint64_t v0 = t->k0 ^ UINT64_C(0x736f6d6570736575);
    uint64_t v1 = t->k1 ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = t->k0 ^ UINT64_C(0x6c7967656e657261);
    uint64_t v3 = t->k1 ^ UINT64_C(0x7465646279746573);
    uint64_t m, last = (uint64_t)len << 56;
    const unsigned char *p = (const unsigned char *)s;
    size_t i, full = len & ~(size_t)7;

    for (i = 0; i < full; i += 8) {
        m = 0;
        for (int k = 0; k < 8; k++)
            m |= (uint64_t)p[i + k] << (8 * k);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (int k = 0; i + (size_t)k < len; k++)
        last |= (uint64_t)p[i + k] << (8 * k);
    v3 ^= last;
    SIPROUND;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t
mix64(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

struct throttle *
throttle_new(size_t max_buckets)
{
    struct throttle *t = calloc(1, sizeof *t);
    uint64_t key[2];

    if (!t)
        return NULL;
    t->nslots = INITIAL_SLOTS;
    if (!(t->slots = calloc(t->nslots, sizeof *t->slots))) {
        free(t);
        return NULL;
    }
    t->max = max_buckets ? max_buckets : DEFAULT_MAX_BUCKETS;
    t->idle_us = THROTTLE_IDLE_US;
    if (getrandom(key, sizeof key, GRND_NONBLOCK) != (ssize_t)sizeof key) {
        key[0] = mix64((uint64_t)(uintptr_t)t);
        key[1] = mix64(key[0] ^ (uint64_t)(uintptr_t)&key);
    }
    t->k0 = key[0];
    t->k1 = key[1];
    return t;
}

void
throttle_free(struct throttle *t)
{
    struct entry *e, *next;

    if (!t)
        return;
    for (size_t i = 0; i < t->nslots; i++)
        for (e = t->slots[i]; e; e = next) {
            next = e->next;
            free(e);
        }
    free(t->slots);
    free(t);
}

void
throttle_set_idle(struct throttle *t, int64_t idle_us)
{
    t->idle_us = idle_us < 0 ? 0 : idle_us;
}

/* Double the table; on ENOMEM keep the old one (longer chains). */
static void
grow(struct throttle *t)
{
    size_t n = t->nslots * 2;
    struct entry **slots, *e, *next;

    if (n < t->nslots || !(slots = calloc(n, sizeof *slots)))
        return;
    for (size_t i = 0; i < t->nslots; i++)
        for (e = t->slots[i]; e; e = next) {
            next = e->next;
            e->next = slots[e->hash & (n - 1)];
            slots[e->hash & (n - 1)] = e;
        }
    free(t->slots);
    t->slots = slots;
    t->nslots = n;
}

struct bucket *
throttle_get(struct throttle *t, const char *name,
             const struct bucket_rule *rule, int64_t now_us)
{
    struct entry *e;
    size_t len;
    uint64_t h;

    if (!t || !name) {
        errno = EINVAL;
        return NULL;
    }
    if ((len = strnlen(name, THROTTLE_NAME_MAX)) >= THROTTLE_NAME_MAX) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    h = siphash(t, name, len);
    for (e = t->slots[h & (t->nslots - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->name, name) == 0)
            return &e->b;
    if (!rule) {
        errno = ENOENT;
        return NULL;
    }
    if (!rule->pinned && t->count >= t->max) {
        t->refused++;
        errno = ENOSPC;
        return NULL;
    }
    if (!(e = malloc(sizeof *e + len + 1))) {
        errno = ENOMEM;
        return NULL;
    }
    if (bucket_init(&e->b, rule, now_us) < 0) {
        free(e);
        errno = EINVAL;
        return NULL;
    }
    memcpy(e->name, name, len + 1);
    e->b.name = e->name;
    e->hash = h;
    if (t->count + t->pinned + 1 > t->nslots)
        grow(t);
    e->next = t->slots[h & (t->nslots - 1)];
    t->slots[h & (t->nslots - 1)] = e;
    if (e->b.pinned)
        t->pinned++;
    else
        t->count++;
    return &e->b;
}

/* Dropping b changes nothing: a bucket made again later is the same. */
static int
evictable(const struct throttle *t, struct bucket *b, int64_t now_us)
{
    if (b->pinned || b->refs > 0 || now_us - b->used_us <= t->idle_us)
        return 0;
    bucket_tick(b, now_us);
    if (b->rate < b->conf_rate)
        return 0; /* still recovering from a throttle */
    return b->lease || b->tokens >= b->burst;
}

size_t
throttle_sweep(struct throttle *t, int64_t now_us)
{
    struct entry **pp, *e;
    size_t dropped = 0;

    for (size_t i = 0; i < t->nslots; i++) {
        pp = &t->slots[i];
        while ((e = *pp)) {
            if (evictable(t, &e->b, now_us)) {
                *pp = e->next;
                free(e);
                t->count--;
                dropped++;
            } else {
                pp = &e->next;
            }
        }
    }
    return dropped;
}

size_t
throttle_count(const struct throttle *t)
{
    return t->count;
}

size_t
throttle_count_pinned(const struct throttle *t)
{
    return t->pinned;
}

uint64_t
throttle_refused(const struct throttle *t)
{
    return t->refused;
}

void
throttle_foreach(struct throttle *t, int64_t now_us, throttle_stat_cb *cb,
                 void *arg)
{
    struct throttle_stat st;

    for (size_t i = 0; i < t->nslots; i++)
        for (struct entry *e = t->slots[i]; e; e = e->next) {
            bucket_tick(&e->b, now_us);
            st.name = e->name;
            st.conf_rate = e->b.conf_rate;
            st.rate = e->b.rate;
            st.tokens = e->b.tokens;
            st.burst = e->b.burst;
            st.signals = e->b.signals;
            st.halvings = e->b.halvings;
            st.lease = e->b.lease;
            cb(arg, &st);
        }
}

/*
 * backoff.c -- capped exponential retry delays with jitter, the due time
 * of a retry (Retry-After, deadline) and splitmix64. See backoff.h.
 */
#include "scheduler/backoff.h"

#define DEFAULT_BASE_MS 1000
#define DEFAULT_FACTOR  2.0
#define DEFAULT_MAX_MS  (INT64_C(3600) * 1000)

/* base * factor^(attempt - 1), stopping at max (square and multiply, so
 * a huge attempt costs 31 rounds and never overflows). */
static int64_t
delay(int64_t base, double factor, int attempt, int64_t max)
{
    double d = (double)base, f = factor, cap = (double)max;
    unsigned e = attempt > 1 ? (unsigned)attempt - 1 : 0;

    while (e && d < cap) {
        if (e & 1)
            d *= f;
        e >>= 1;
        if (e && f < cap) /* f beyond cap: the next bit ends it */
            f *= f;
    }
    return d >= cap ? max : (int64_t)d;
}

/* rnd to a uniform integer in [0, n]. */
static int64_t
uniform(uint64_t rnd, int64_t n)
{
    double u = (double)(rnd >> 11) * (1.0 / 9007199254740992.0); /* [0,1) */
    int64_t v = (int64_t)(u * ((double)n + 1));

    return v > n ? n : v;
}

int64_t
backoff_ms(const struct backoff_conf *c, int attempt, uint64_t rnd)
{
    int64_t base = c && c->base_ms > 0 ? c->base_ms : DEFAULT_BASE_MS;
    int64_t max = c && c->max_ms > 0 ? c->max_ms : DEFAULT_MAX_MS;
    double factor = c && c->factor > 0 ? c->factor : DEFAULT_FACTOR;
    enum backoff_jitter j = c ? c->jitter : BACKOFF_JITTER_EQUAL;
    int64_t d;

    if (!(factor >= 1)) /* shrinking makes no sense; NaN too */
        factor = 1;
    if (factor > 1e300)
        factor = 1e300;
    if (base > max)
        base = max;
    d = delay(base, factor, attempt, max);
    switch (j) {
    case BACKOFF_JITTER_FULL: return uniform(rnd, d);
    case BACKOFF_JITTER_NONE: return d;
    case BACKOFF_JITTER_EQUAL:
    default: return d - d / 2 + uniform(rnd, d / 2);
    }
}

int64_t
backoff_next_due(const struct backoff_conf *c, int attempt, int64_t now_ms,
                 int64_t retry_after_ms, int64_t deadline_ms, uint64_t rnd,
                 int *expired)
{
    int64_t d = backoff_ms(c, attempt, rnd), due;

    if (retry_after_ms > d)
        d = retry_after_ms;
    due = now_ms > INT64_MAX - d ? INT64_MAX : now_ms + d;
    if (expired)
        *expired = deadline_ms > 0 && due > deadline_ms;
    return due;
}

uint64_t
backoff_rand(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

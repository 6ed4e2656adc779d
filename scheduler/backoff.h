/*
 * backoff.h -- retry delays: exponential, capped, with jitter, honouring a
 * provider's Retry-After and the message's deadline; and a small seeded
 * random generator (splitmix64) to feed the jitter, so tests can fix it.
 *
 * Pure computation: the clock (now_ms) and the random number (rnd) are
 * passed in.
 *
 * Jitter: BACKOFF_JITTER_EQUAL (the default) waits d/2 + uniform[0, d/2].
 * Full jitter (uniform[0, d]) spreads a herd best but may retry at once,
 * right after a provider said "slow down" or a connection failed, and
 * gives no minimum spacing between attempts; equal jitter keeps the
 * exponential growth as a floor (at least half the delay) while still
 * spreading the retries of a burst of failures over the other half.
 */
#ifndef GW_BACKOFF_H
#define GW_BACKOFF_H

#include <stdint.h>

enum backoff_jitter {
    BACKOFF_JITTER_EQUAL = 0, /* d/2 + uniform[0, d/2] (default) */
    BACKOFF_JITTER_FULL,      /* uniform[0, d] */
    BACKOFF_JITTER_NONE,      /* d */
};

/* A zero field takes its default. */
struct backoff_conf {
    int64_t base_ms; /* first delay; 0: 1000 */
    double factor;   /* growth per attempt, >= 1; 0: 2 */
    int64_t max_ms;  /* cap on the delay; 0: 3600000 */
    enum backoff_jitter jitter;
};

/*
 * The delay before retry number attempt (1 = the first retry, after the
 * first failed try; < 1 counts as 1): d = min(max, base * factor^(attempt
 * - 1)), then jittered with rnd (any 64-bit value, e.g. backoff_rand()).
 * Never negative, never above max_ms, no overflow for any attempt.
 */
int64_t backoff_ms(const struct backoff_conf *c, int attempt, uint64_t rnd);

/*
 * When to try again: now_ms + backoff_ms(), or later if the provider's
 * Retry-After (retry_after_ms, relative; 0 = none) asks for more; the
 * Retry-After is honoured even beyond max_ms. If deadline_ms > 0 and the
 * due time is past it, *expired = 1 (the message should end `expired`),
 * else 0; expired may be NULL. Saturates at INT64_MAX.
 */
int64_t backoff_next_due(const struct backoff_conf *c, int attempt,
                         int64_t now_ms, int64_t retry_after_ms,
                         int64_t deadline_ms, uint64_t rnd, int *expired);

/* splitmix64: the next number from *state (any seed, 0 too). */
uint64_t backoff_rand(uint64_t *state);

#endif

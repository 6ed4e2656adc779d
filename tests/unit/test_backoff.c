/*
 * test_backoff.c -- tests for scheduler/backoff.c: exponential growth and
 * the cap, defaults, the bounds of equal and full jitter (and that they
 * are reached), Retry-After as a minimum, the deadline turning a retry
 * into `expired`, no overflow for huge attempts or times, and splitmix64.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>

#include "scheduler/backoff.h"

static void
test_growth_and_cap(void **state)
{
    struct backoff_conf c = { .base_ms = 100, .factor = 2, .max_ms = 10000,
                              .jitter = BACKOFF_JITTER_NONE };
    int64_t want = 100;

    (void)state;
    for (int a = 1; a <= 7; a++, want *= 2)
        assert_int_equal(backoff_ms(&c, a, 0), want);       /* ... 6400 */
    assert_int_equal(backoff_ms(&c, 8, 0), 10000);          /* 12800 */
    assert_int_equal(backoff_ms(&c, 0, 0), 100);            /* as 1 */
    assert_int_equal(backoff_ms(&c, -7, 0), 100);
    assert_int_equal(backoff_ms(&c, 1000, 0), 10000);
    assert_int_equal(backoff_ms(&c, INT_MAX, 0), 10000);

    c.factor = 1.5;
    assert_int_equal(backoff_ms(&c, 3, 0), 225);
    c.factor = 1;                                           /* constant */
    assert_int_equal(backoff_ms(&c, 1000000, 0), 100);
    c.factor = 0.5;                                         /* as 1 */
    assert_int_equal(backoff_ms(&c, 5, 0), 100);
    c.factor = 2;
    c.base_ms = 50000;                                      /* > max */
    assert_int_equal(backoff_ms(&c, 1, 0), 10000);

    /* defaults: 1 s doubling up to an hour, equal jitter */
    struct backoff_conf z = { 0 };
    assert_int_equal(backoff_ms(&z, 1, 0), 500);
    assert_int_equal(backoff_ms(&z, 1, UINT64_MAX), 1000);
    assert_int_equal(backoff_ms(&z, 4, UINT64_MAX), 8000);
    assert_int_equal(backoff_ms(&z, 100, UINT64_MAX), 3600000);
    assert_int_equal(backoff_ms(NULL, 2, UINT64_MAX), 2000);
}

static void
test_jitter_bounds(void **state)
{
    struct backoff_conf eq = { .base_ms = 1000, .factor = 2,
                               .max_ms = 60000 };
    struct backoff_conf full = eq;
    uint64_t seed = 42, r;
    int64_t d, lo_eq = INT64_MAX, hi_eq = 0, lo_full = INT64_MAX,
               hi_full = 0;
    double sum_eq = 0, sum_full = 0;
    const int n = 20000;

    (void)state;
    full.jitter = BACKOFF_JITTER_FULL;
    assert_int_equal(eq.jitter, BACKOFF_JITTER_EQUAL);      /* the default */
    for (int i = 0; i < n; i++) {
        r = backoff_rand(&seed);
        d = backoff_ms(&eq, 3, r);                          /* d = 4000 */
        assert_true(d >= 2000 && d <= 4000);
        lo_eq = d < lo_eq ? d : lo_eq;
        hi_eq = d > hi_eq ? d : hi_eq;
        sum_eq += (double)d;
        d = backoff_ms(&full, 3, r);
        assert_true(d >= 0 && d <= 4000);
        lo_full = d < lo_full ? d : lo_full;
        hi_full = d > hi_full ? d : hi_full;
        sum_full += (double)d;
    }
    print_message("equal [%lld, %lld] mean %.0f; full [%lld, %lld] mean "
                  "%.0f\n", (long long)lo_eq, (long long)hi_eq, sum_eq / n,
                  (long long)lo_full, (long long)hi_full, sum_full / n);
    /* spread over the whole range, means near 3/4 d and d/2 */
    assert_true(lo_eq < 2020 && hi_eq > 3980);
    assert_true(lo_full < 40 && hi_full > 3960);
    assert_true(sum_eq / n > 2950 && sum_eq / n < 3050);
    assert_true(sum_full / n > 1950 && sum_full / n < 2050);
    /* the extremes are reached exactly */
    assert_int_equal(backoff_ms(&eq, 3, 0), 2000);
    assert_int_equal(backoff_ms(&eq, 3, UINT64_MAX), 4000);
    assert_int_equal(backoff_ms(&full, 3, 0), 0);
    assert_int_equal(backoff_ms(&full, 3, UINT64_MAX), 4000);
    /* an odd delay: still within [d/2, d] */
    eq.base_ms = 5;
    assert_int_equal(backoff_ms(&eq, 1, 0), 3);
    assert_int_equal(backoff_ms(&eq, 1, UINT64_MAX), 5);
    eq.base_ms = 1;
    assert_int_equal(backoff_ms(&eq, 1, 0), 1);
}

static void
test_retry_after_and_deadline(void **state)
{
    struct backoff_conf c = { .base_ms = 1000, .factor = 2, .max_ms = 30000,
                              .jitter = BACKOFF_JITTER_NONE };
    int expired = -1;

    (void)state;
    /* the backoff alone */
    assert_int_equal(backoff_next_due(&c, 2, 100000, 0, 0, 0, &expired),
                     102000);
    assert_int_equal(expired, 0);
    /* Retry-After as a minimum, beyond max_ms too */
    assert_int_equal(backoff_next_due(&c, 2, 100000, 60000, 0, 0, &expired),
                     160000);
    assert_int_equal(expired, 0);
    /* a shorter Retry-After changes nothing */
    assert_int_equal(backoff_next_due(&c, 2, 100000, 500, 0, 0, &expired),
                     102000);
    /* the deadline: at it is fine, past it is expired */
    assert_int_equal(backoff_next_due(&c, 2, 100000, 0, 102000, 0, &expired),
                     102000);
    assert_int_equal(expired, 0);
    assert_int_equal(backoff_next_due(&c, 2, 100000, 0, 101999, 0, &expired),
                     102000);
    assert_int_equal(expired, 1);
    /* a Retry-After beyond the deadline expires it */
    backoff_next_due(&c, 1, 100000, 3600000, 200000, 0, &expired);
    assert_int_equal(expired, 1);
    /* no deadline: never expired; expired may be NULL */
    backoff_next_due(&c, 1000, 100000, INT64_MAX / 2, 0, 0, &expired);
    assert_int_equal(expired, 0);
    assert_int_equal(backoff_next_due(&c, 1, 5, 0, 1, 0, NULL), 1005);
}

static void
test_no_overflow(void **state)
{
    struct backoff_conf c = { .base_ms = 1000, .factor = 10,
                              .max_ms = INT64_MAX };
    int expired = 0;
    int64_t d;

    (void)state;
    /* attempt 1000 with no useful cap: saturates at max_ms */
    c.jitter = BACKOFF_JITTER_NONE;
    assert_int_equal(backoff_ms(&c, 1000, 0), INT64_MAX);
    c.jitter = BACKOFF_JITTER_EQUAL;
    d = backoff_ms(&c, 1000, UINT64_MAX);
    assert_true(d > INT64_MAX / 2 && d <= INT64_MAX);
    c.jitter = BACKOFF_JITTER_FULL;
    d = backoff_ms(&c, 1000, UINT64_MAX);
    assert_true(d >= 0 && d <= INT64_MAX);
    c.factor = 1e300;
    assert_true(backoff_ms(&c, 1000, 1) >= 0);
    c.factor = 1.0000001;
    assert_true(backoff_ms(&c, INT_MAX, 7) >= 0);
    /* the due time saturates instead of wrapping */
    c.jitter = BACKOFF_JITTER_NONE;
    c.factor = 2;
    assert_int_equal(backoff_next_due(&c, 1000, INT64_MAX - 10, 0,
                                      INT64_MAX - 5, 0, &expired),
                     INT64_MAX);
    assert_int_equal(expired, 1);
    assert_int_equal(backoff_next_due(&c, 1, 0, INT64_MAX, 0, 0, &expired),
                     INT64_MAX);
    /* and the usual configuration for attempt 1000 */
    struct backoff_conf u = { .base_ms = 30000, .factor = 2,
                              .max_ms = 3600000 };
    d = backoff_ms(&u, 1000, 12345);
    assert_true(d >= 1800000 && d <= 3600000);
}

static void
test_rand(void **state)
{
    uint64_t s = 0, t = 0, a, b;

    (void)state;
    /* the reference splitmix64 sequence from seed 0 */
    assert_true(backoff_rand(&s) == UINT64_C(0xe220a8397b1dcdaf));
    assert_true(backoff_rand(&s) == UINT64_C(0x6e789e6aa1b965f4));
    /* deterministic per seed, different per seed */
    a = backoff_rand(&t);
    t = 0;
    assert_true(backoff_rand(&t) == a);
    t = 1;
    b = backoff_rand(&t);
    assert_true(a != b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_growth_and_cap),
        cmocka_unit_test(test_jitter_bounds),
        cmocka_unit_test(test_retry_after_and_deadline),
        cmocka_unit_test(test_no_overflow),
        cmocka_unit_test(test_rand),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

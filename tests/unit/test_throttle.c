/*
 * test_throttle.c -- tests for scheduler/throttle.c with a fake clock:
 * rate accuracy over simulated seconds, the burst cap, the waits
 * returned, oversized requests, all-or-nothing path takes, AIMD (one
 * halving per hold interval, the floor, step-wise recovery to the
 * configured rate and not beyond), rate changes, the registry (create,
 * get, lookup, idle eviction, the capacity bound, metrics) and lease mode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>     /* NAN, INFINITY */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "scheduler/throttle.h"

#define SEC  INT64_C(1000000)
#define MSEC INT64_C(1000)

/* |x| tiny */
static int
near0(double x)
{
    return x > -1e-6 && x < 1e-6;
}

static void
init(struct bucket *b, double rate, double burst, int64_t now)
{
    struct bucket_rule r = { .rate = rate, .burst = burst };

    assert_int_equal(bucket_init(b, &r, now), 0);
}

/* Take one token whenever there is one for secs simulated seconds,
 * jumping the clock by the wait returned; the tokens taken. */
static long
drain(struct bucket *b, int64_t start, int64_t secs)
{
    int64_t now = start, end = start + secs * SEC, w;
    long taken = 0;

    while (now <= end) {
        if ((w = bucket_take(b, now, 1)) == 0)
            taken++;
        else
            now += w;
    }
    return taken;
}

static void
test_rate_accuracy(void **state)
{
    struct bucket b;
    long taken;

    (void)state;
    /* 1,000/s over 10 s: 10,000 plus at most the initial burst */
    init(&b, 1000, 0, 0);
    assert_true(b.burst == 100);    /* default: a tenth of a second */
    taken = drain(&b, 0, 10);
    print_message("1000/s for 10 s: %ld taken\n", taken);
    assert_true(taken >= 10000 && taken <= 10000 + 100 + 1);

    /* polled in fixed 1 ms steps, taking all there is each time */
    init(&b, 1000, 50, 5 * SEC);
    taken = 0;
    for (int64_t now = 5 * SEC; now <= 15 * SEC; now += MSEC)
        while (bucket_take(&b, now, 1) == 0)
            taken++;
    assert_true(taken >= 10000 && taken <= 10000 + 50 + 1);

    /* a slow rate: 3/s over 100 s */
    init(&b, 3, 1, 0);
    taken = drain(&b, 0, 100);
    assert_true(taken >= 300 && taken <= 302);
}

static void
test_burst_cap(void **state)
{
    struct bucket b;
    int taken = 0;

    (void)state;
    init(&b, 100, 20, 0);
    /* an hour idle still holds only burst */
    while (bucket_take(&b, 3600 * SEC, 1) == 0)
        taken++;
    assert_int_equal(taken, 20);
    assert_true(b.tokens >= 0 && b.tokens < 1);
    /* and n at once beyond what is there waits, taking nothing */
    assert_true(bucket_take(&b, 3600 * SEC, 5) > 0);
    assert_true(b.tokens >= 0 && b.tokens < 1);
}

static void
test_waits(void **state)
{
    struct bucket b;

    (void)state;
    init(&b, 10, 1, 0);
    assert_int_equal(bucket_take(&b, 0, 1), 0);
    assert_int_equal(bucket_take(&b, 0, 1), 100000);
    assert_int_equal(bucket_peek_wait(&b, 50000, 1), 50000);
    assert_int_equal(bucket_peek_wait(&b, 50000, 1), 50000); /* no change */
    assert_int_equal(bucket_take(&b, 99999, 1), 1);
    assert_int_equal(bucket_take(&b, 100000, 1), 0);
    assert_int_equal(bucket_take(&b, 100000, 0), 0);   /* n = 0: free */

    /* more than burst at once: granted when full, leaving a debt */
    init(&b, 10, 2, 0);
    assert_int_equal(bucket_take(&b, 0, 1), 0);
    assert_int_equal(bucket_take(&b, 0, 5), 100000);    /* until full */
    assert_int_equal(bucket_take(&b, 100000, 5), 0);
    assert_true(near0(b.tokens + 3));
    assert_int_equal(bucket_take(&b, 100000, 1), 400000);

    /* time going backwards earns nothing and breaks nothing */
    init(&b, 10, 1, SEC);
    assert_int_equal(bucket_take(&b, SEC, 1), 0);
    assert_true(bucket_take(&b, 0, 1) > 0);
    assert_int_equal(bucket_take(&b, SEC + 100000, 1), 0);
}

static void
test_bad_rules(void **state)
{
    struct bucket b;
    struct bucket_rule r = { .rate = 0 };

    (void)state;
    assert_int_equal(bucket_init(&b, &r, 0), GW_EINVAL);
    r.rate = -5;
    assert_int_equal(bucket_init(&b, &r, 0), GW_EINVAL);
    r.rate = NAN;
    assert_int_equal(bucket_init(&b, &r, 0), GW_EINVAL);
    r.rate = INFINITY;
    assert_int_equal(bucket_init(&b, &r, 0), GW_EINVAL);
    r.rate = 10;
    r.burst = -1;
    assert_int_equal(bucket_init(&b, &r, 0), GW_EINVAL);
    r.burst = 0;
    r.hold_ms = -1;
    assert_int_equal(bucket_init(&b, &r, 0), GW_EINVAL);
    r.hold_ms = 0;
    assert_int_equal(bucket_init(&b, &r, 0), 0);
    assert_int_equal(bucket_set_rate(&b, 0, 0), GW_EINVAL);
    assert_int_equal(bucket_set_rate(&b, NAN, 0), GW_EINVAL);
    assert_true(bucket_rate(&b) == 10);
}

static void
test_path_all_or_nothing(void **state)
{
    struct bucket g, p, s, extra[THROTTLE_PATH_MAX];
    struct throttle_path path;
    int64_t wait = -1;

    (void)state;
    init(&g, 1000, 10, 0);
    init(&p, 100, 5, 0);
    init(&s, 1, 1, 0);
    throttle_path_init(&path);
    assert_int_equal(throttle_path_add(&path, &g), 0);
    assert_int_equal(throttle_path_add(&path, &p), 0);
    assert_int_equal(throttle_path_add(&path, &s), 0);
    assert_int_equal(throttle_path_add(&path, &p), 0);  /* not twice */
    assert_int_equal(path.n, 3);
    assert_int_equal(throttle_path_add(&path, NULL), GW_EINVAL);

    assert_int_equal(throttle_path_take(&path, 0, 1, &wait), 0);
    assert_int_equal(wait, 0);
    assert_true(g.tokens == 9 && p.tokens == 4 && s.tokens == 0);

    /* the sender is empty: nothing is consumed anywhere, wait 1 s */
    assert_int_equal(throttle_path_take(&path, 0, 1, &wait), 1);
    assert_int_equal(wait, SEC);
    assert_true(g.tokens == 9 && p.tokens == 4 && s.tokens == 0);

    /* the longest wait of all: the sender's half second (global and
     * provider are full again by then) */
    assert_int_equal(throttle_path_take(&path, SEC / 2, 5, &wait), 1);
    assert_int_equal(wait, SEC / 2);        /* the sender's is longest */
    assert_int_equal(throttle_path_take(&path, SEC, 5, &wait), 0);
    assert_true(near0(g.tokens - 5));
    assert_true(near0(p.tokens));
    assert_true(near0(s.tokens + 4));  /* oversized for the sender */

    /* holds go to every bucket of the path, once each */
    throttle_path_hold(&path);
    assert_true(g.refs == 1 && p.refs == 1 && s.refs == 1);
    throttle_path_release(&path);
    throttle_path_release(&path);               /* no underflow */
    assert_true(g.refs == 0 && p.refs == 0 && s.refs == 0);

    /* the path has room for THROTTLE_PATH_MAX */
    throttle_path_init(&path);
    for (int i = 0; i < THROTTLE_PATH_MAX; i++) {
        init(&extra[i], 10, 1, 0);
        assert_int_equal(throttle_path_add(&path, &extra[i]), 0);
    }
    assert_int_equal(throttle_path_add(&path, &g), GW_ETOOBIG);
    assert_int_equal(throttle_path_take(&path, 0, 1, NULL), 0);
    assert_int_equal(throttle_path_take(&path, 0, 1, &wait), 1);
    assert_int_equal(wait, 100000);

    /* an empty path always gives */
    throttle_path_init(&path);
    assert_int_equal(throttle_path_take(&path, 0, 100, &wait), 0);
}

static void
test_aimd_halving(void **state)
{
    struct bucket b;
    struct bucket_rule r = { .rate = 100 };
    int halved = 0;

    (void)state;
    assert_int_equal(bucket_init(&b, &r, 0), 0);
    assert_true(b.floor == 6.25);           /* rate / 16 */
    /* 30 throttled replies within the hold interval: one halving */
    for (int i = 0; i < 30; i++)
        halved += bucket_signal(&b, 10 * SEC + i * 30 * MSEC);
    assert_int_equal(halved, 1);
    assert_true(bucket_rate(&b) == 50);
    assert_int_equal(b.signals, 30);
    assert_int_equal(b.halvings, 1);
    /* a second after the halving: the next one */
    assert_int_equal(bucket_signal(&b, 11 * SEC), 1);
    assert_true(bucket_rate(&b) == 25);
    assert_int_equal(bucket_signal(&b, 11 * SEC + 999 * MSEC), 0);
    assert_true(bucket_rate(&b) == 25);
    /* a throttle storm (a signal every 100 ms): one halving a second,
     * no recovery in between, down to the floor and no further */
    halved = 0;
    for (int64_t now = 12 * SEC; now < 20 * SEC; now += 100 * MSEC) {
        halved += bucket_signal(&b, now);
        if (now == 12 * SEC)
            assert_true(bucket_rate(&b) == 12.5);
    }
    assert_int_equal(halved, 2);
    assert_true(bucket_rate(&b) == 6.25);
    /* the hold is over but the rate is at the floor already */
    assert_int_equal(bucket_signal(&b, 20 * SEC + 500 * MSEC), 0);
    assert_true(bucket_rate(&b) == 6.25);

    /* the floor is at least 1/s, never above the rate */
    r.rate = 8;
    assert_int_equal(bucket_init(&b, &r, 0), 0);
    assert_true(b.floor == 1);
    for (int i = 0; i < 100; i++)
        bucket_signal(&b, i * 100 * MSEC);
    assert_true(bucket_rate(&b) == 1);
    r.rate = 0.5;
    assert_int_equal(bucket_init(&b, &r, 0), 0);
    assert_true(b.floor == 0.5);
    assert_int_equal(bucket_signal(&b, 0), 0);
    assert_true(bucket_rate(&b) == 0.5);

    /* a configured floor and hold */
    r.rate = 100;
    r.floor = 40;
    r.hold_ms = 5000;
    r.recover_ms = 10000;
    assert_int_equal(bucket_init(&b, &r, 0), 0);
    assert_int_equal(bucket_signal(&b, 0), 1);
    assert_int_equal(bucket_signal(&b, 4 * SEC), 0);
    assert_true(bucket_rate(&b) == 50);
    assert_int_equal(bucket_signal(&b, 5 * SEC), 1);
    assert_true(bucket_rate(&b) == 40);

    /* the halved rate is what refills */
    init(&b, 100, 1, 0);
    bucket_signal(&b, 0);
    assert_int_equal(bucket_take(&b, 0, 1), 0);
    assert_int_equal(bucket_take(&b, 0, 1), 20000);   /* 1 / 50 s */
}

static void
test_recovery(void **state)
{
    struct bucket b;
    struct bucket_rule r = { .rate = 100, .burst = 1000 };
    long taken;

    (void)state;
    assert_int_equal(bucket_init(&b, &r, 0), 0);
    assert_true(b.step == 10);                  /* rate / 10 */
    bucket_signal(&b, 0);
    assert_true(bucket_rate(&b) == 50);
    bucket_tick(&b, 999 * MSEC);
    assert_true(bucket_rate(&b) == 50);
    bucket_tick(&b, SEC);                       /* recover_ms quiet */
    assert_true(bucket_rate(&b) == 60);
    bucket_tick(&b, 2 * SEC + 500 * MSEC);
    assert_true(bucket_rate(&b) == 70);
    /* a signal within recovery (hold over) halves again and restarts it */
    assert_int_equal(bucket_signal(&b, 2 * SEC + 500 * MSEC), 1);
    assert_true(bucket_rate(&b) == 35);
    /* a signal inside the hold does not halve, but delays recovery */
    assert_int_equal(bucket_signal(&b, 3 * SEC + 200 * MSEC), 0);
    assert_true(bucket_rate(&b) == 35);
    bucket_tick(&b, 3 * SEC + 500 * MSEC);
    assert_true(bucket_rate(&b) == 35);
    bucket_tick(&b, 4 * SEC + 199 * MSEC);
    assert_true(bucket_rate(&b) == 35);
    bucket_tick(&b, 4 * SEC + 200 * MSEC);
    assert_true(bucket_rate(&b) == 45);
    /* step by step back to 100, lazily inside take, not beyond */
    assert_int_equal(bucket_take(&b, 7 * SEC + 200 * MSEC, 1), 0);
    assert_true(bucket_rate(&b) == 75);
    bucket_tick(&b, 9 * SEC + 200 * MSEC);
    assert_true(bucket_rate(&b) == 95);
    bucket_tick(&b, 10 * SEC + 200 * MSEC);
    assert_true(bucket_rate(&b) == 100);
    bucket_tick(&b, 3600 * SEC);
    assert_true(bucket_rate(&b) == 100);

    /* tokens earned piecewise at each step's rate: empty the bucket,
     * halve, and count over the next 3 s: 50 + 60 + 70 = 180 (+1) */
    assert_int_equal(bucket_init(&b, &r, 0), 0);
    b.tokens = 0;
    bucket_signal(&b, 0);
    taken = 0;
    for (int64_t now = 0; now <= 3 * SEC; now += MSEC)
        while (bucket_take(&b, now, 1) == 0)
            taken++;
    print_message("recovering over 3 s: %ld taken\n", taken);
    assert_true(taken >= 180 && taken <= 181);

    /* a configured step and interval; a long quiet time recovers fully */
    r.step = 5;
    r.recover_ms = 200;
    assert_int_equal(bucket_init(&b, &r, 0), 0);
    bucket_signal(&b, 0);
    bucket_tick(&b, 400 * MSEC);
    assert_true(bucket_rate(&b) == 60);
    bucket_tick(&b, 3600 * SEC);
    assert_true(bucket_rate(&b) == 100);
}

static void
test_set_rate(void **state)
{
    struct bucket b;
    struct bucket_rule r = { .rate = 100 };

    (void)state;
    assert_int_equal(bucket_init(&b, &r, 0), 0);
    assert_int_equal(bucket_set_rate(&b, 200, 0), 0);
    assert_true(bucket_rate(&b) == 200 && b.conf_rate == 200);
    assert_true(b.floor == 12.5 && b.step == 20);
    assert_true(b.burst == 10);                 /* kept */
    /* in an episode: stays reduced and recovers towards the new rate */
    bucket_signal(&b, 0);
    assert_true(bucket_rate(&b) == 100);
    assert_int_equal(bucket_set_rate(&b, 400, 0), 0);
    assert_true(bucket_rate(&b) == 100);
    bucket_tick(&b, SEC);
    assert_true(bucket_rate(&b) == 140);
    /* lowered below the current rate: capped at once */
    assert_int_equal(bucket_set_rate(&b, 50, SEC), 0);
    assert_true(bucket_rate(&b) == 50);
}

/* ---- the registry ---- */

static void
test_registry(void **state)
{
    struct throttle *t = throttle_new(0);
    struct bucket_rule prov = { .rate = 100, .pinned = 1 };
    struct bucket_rule each = { .rate = 10, .burst = 1 };
    struct bucket *a, *b, *c;
    char longname[THROTTLE_NAME_MAX + 8];

    (void)state;
    assert_non_null(t);
    a = throttle_get(t, "provider:sms1", &prov, 0);
    assert_non_null(a);
    assert_string_equal(a->name, "provider:sms1");
    assert_ptr_equal(throttle_get(t, "provider:sms1", &prov, 0), a);
    assert_ptr_equal(throttle_get(t, "provider:sms1", NULL, 0), a);
    b = throttle_get(t, "sender:sms1:+4470000", &each, 0);
    c = throttle_get(t, "sender:sms1:+4470001", &each, 0);
    assert_non_null(b);
    assert_non_null(c);
    assert_ptr_not_equal(b, c);
    assert_true(b->conf_rate == 10 && b->burst == 1);
    assert_int_equal(throttle_count(t), 2);
    assert_int_equal(throttle_count_pinned(t), 1);

    errno = 0;
    assert_null(throttle_get(t, "sender:sms1:+4479999", NULL, 0));
    assert_int_equal(errno, ENOENT);
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    errno = 0;
    assert_null(throttle_get(t, longname, &each, 0));
    assert_int_equal(errno, ENAMETOOLONG);
    struct bucket_rule bad = { .rate = -1 };
    errno = 0;
    assert_null(throttle_get(t, "sender:x", &bad, 0));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(throttle_count(t), 2);

    /* idle eviction: b was used, c was not; both refill in 0.1 s */
    assert_int_equal(bucket_take(b, 10 * SEC, 1), 0);
    assert_int_equal(throttle_sweep(t, 30 * SEC), 0);
    assert_int_equal(throttle_sweep(t, 60 * SEC + 1), 1);    /* c */
    assert_null(throttle_get(t, "sender:sms1:+4470001", NULL, 60 * SEC));
    assert_int_equal(throttle_sweep(t, 70 * SEC), 0);        /* b: 60 s */
    assert_int_equal(throttle_sweep(t, 70 * SEC + 1), 1);
    assert_int_equal(throttle_count(t), 0);
    /* the pinned provider stays, however idle */
    assert_int_equal(throttle_sweep(t, 7200 * SEC), 0);
    assert_ptr_equal(throttle_get(t, "provider:sms1", NULL, 0), a);

    /* not full of tokens, or still recovering: kept */
    struct bucket_rule slow = { .rate = 0.01, .burst = 1 };
    b = throttle_get(t, "sender:slow", &slow, 0);
    assert_int_equal(bucket_take(b, 0, 1), 0);
    struct bucket_rule dom = { .rate = 10, .burst = 1, .recover_ms = 90000 };
    c = throttle_get(t, "domain:mail:gmail.com", &dom, 0);
    bucket_signal(c, 0);            /* 5/s, +1/s at 90 s, 180 s, ... */
    /* the rule of an existing bucket is not re-read */
    assert_ptr_equal(throttle_get(t, "domain:mail:gmail.com", &each, 0), c);
    assert_true(c->recover_us == 90 * SEC);
    assert_int_equal(throttle_sweep(t, 61 * SEC), 0);
    assert_true(bucket_rate(c) == 5);
    assert_int_equal(throttle_sweep(t, 110 * SEC), 1);    /* b: full */
    assert_null(throttle_get(t, "sender:slow", NULL, 110 * SEC));
    assert_true(bucket_rate(c) == 6);
    assert_int_equal(throttle_sweep(t, 449 * SEC), 0);
    assert_true(bucket_rate(c) == 9);
    assert_int_equal(throttle_sweep(t, 450 * SEC), 1);    /* c: 10/s */
    /* a recreated bucket behaves like the dropped one: full, configured */
    b = throttle_get(t, "sender:slow", &slow, 500 * SEC);
    assert_true(b->tokens == 1 && bucket_rate(b) == 0.01);

    /* held (a queue waits on it): not swept until released */
    bucket_hold(b);
    assert_int_equal(throttle_sweep(t, 7000 * SEC), 0);
    bucket_release(b);
    assert_int_equal(throttle_sweep(t, 7000 * SEC), 1);
    b = throttle_get(t, "sender:slow", &slow, 500 * SEC);

    /* a refused take counts as use: a waiting path is not idle */
    assert_int_equal(bucket_take(b, 500 * SEC, 1), 0);
    assert_true(bucket_take(b, 540 * SEC, 1) > 0);
    assert_int_equal(throttle_sweep(t, 600 * SEC), 0);
    assert_int_equal(throttle_sweep(t, 700 * SEC + 1), 1);
    b = throttle_get(t, "sender:slow", &slow, 500 * SEC);

    /* a shorter idle time */
    throttle_set_idle(t, SEC);
    assert_int_equal(throttle_sweep(t, 501 * SEC), 0);
    assert_int_equal(throttle_sweep(t, 501 * SEC + 1), 1);

    throttle_free(t);
    throttle_free(NULL);
}

static void
test_capacity(void **state)
{
    struct throttle *t = throttle_new(100);
    struct bucket_rule each = { .rate = 10 };
    struct bucket_rule pin = { .rate = 10, .pinned = 1 };
    struct bucket *b;
    char name[64];

    (void)state;
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "sender:sms1:+44700%05d", i);
        assert_non_null(throttle_get(t, name, &each, 0));
    }
    errno = 0;
    assert_null(throttle_get(t, "sender:sms1:one-more", &each, 0));
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(throttle_refused(t), 1);
    /* existing ones are still found; pinned ones do not count */
    assert_non_null(throttle_get(t, "sender:sms1:+4470000042", &each, 0));
    assert_non_null(throttle_get(t, "bind:sms1:0", &pin, 0));
    assert_int_equal(throttle_count(t), 100);
    /* once the idle ones are swept there is room again */
    snprintf(name, sizeof name, "sender:sms1:+44700%05d", 7);
    b = throttle_get(t, name, NULL, 0);
    assert_int_equal(bucket_take(b, 30 * SEC, 1), 0);
    assert_int_equal(throttle_sweep(t, 61 * SEC), 99);
    assert_non_null(throttle_get(t, "sender:sms1:one-more", &each, 61 * SEC));
    assert_ptr_equal(throttle_get(t, name, NULL, 61 * SEC), b);
    throttle_free(t);

    /* many: the table grows and every name is found again */
    t = throttle_new(50000);
    for (int i = 0; i < 50000; i++) {
        snprintf(name, sizeof name, "domain:mail:d%d.example", i);
        assert_non_null(throttle_get(t, name, &each, 0));
    }
    assert_null(throttle_get(t, "domain:mail:more.example", &each, 0));
    for (int i = 0; i < 50000; i += 7) {
        snprintf(name, sizeof name, "domain:mail:d%d.example", i);
        b = throttle_get(t, name, NULL, 0);
        assert_non_null(b);
        assert_string_equal(b->name, name);
    }
    assert_int_equal(throttle_sweep(t, 61 * SEC), 50000);
    assert_int_equal(throttle_count(t), 0);
    throttle_free(t);
}

struct seen {
    int    n;
    double rate_sum, conf_sum;
    int    lease;
};

static void
count_stat(void *arg, const struct throttle_stat *st)
{
    struct seen *s = arg;

    assert_non_null(st->name);
    s->n++;
    s->rate_sum += st->rate;
    s->conf_sum += st->conf_rate;
    s->lease += st->lease;
    if (strcmp(st->name, "provider:sms1") == 0) {
        assert_true(st->rate == 50 && st->conf_rate == 100);
        assert_int_equal(st->signals, 2);
        assert_int_equal(st->halvings, 1);
    }
}

static void
test_foreach(void **state)
{
    struct throttle *t = throttle_new(10);
    struct bucket_rule pr = { .rate = 100, .pinned = 1 };
    struct bucket_rule gl = { .rate = 1000, .pinned = 1, .shared = 1 };
    struct bucket_rule each = { .rate = 10 };
    struct seen s = { 0 };
    struct bucket *p;

    (void)state;
    p = throttle_get(t, "provider:sms1", &pr, 0);
    throttle_get(t, "global", &gl, 0);
    throttle_get(t, "sender:sms1:a", &each, 0);
    bucket_signal(p, 0);
    bucket_signal(p, 1);
    throttle_foreach(t, 500 * MSEC, count_stat, &s);
    assert_int_equal(s.n, 3);
    assert_true(s.rate_sum == 1060 && s.conf_sum == 1110);
    assert_int_equal(s.lease, 1);
    throttle_free(t);
}

/* ---- lease mode ---- */

static void
test_lease(void **state)
{
    struct bucket b;
    struct bucket_rule r = { .rate = 200, .burst = 50, .shared = 1 };
    int64_t w;

    (void)state;
    assert_int_equal(bucket_init(&b, &r, 0), 0);
    assert_true(b.lease && b.tokens == 0);
    assert_int_equal(bucket_want(&b), 10);      /* 50 ms worth */
    w = bucket_take(&b, 0, 1);
    assert_int_equal(w, 5000);                  /* an estimate: 1 / 200 s */
    /* time alone brings nothing */
    assert_true(bucket_take(&b, 3600 * SEC, 1) > 0);
    bucket_grant(&b, 10, 3600 * SEC);
    assert_int_equal(bucket_want(&b), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(bucket_take(&b, 3600 * SEC, 1), 0);
    assert_true(bucket_take(&b, 3600 * SEC, 1) > 0);
    assert_int_equal(bucket_want(&b), 10);
    bucket_grant(&b, 3, 3600 * SEC);
    assert_int_equal(bucket_want(&b), 7);

    /* halving the rate shrinks the batches */
    bucket_signal(&b, 3600 * SEC);
    assert_true(bucket_rate(&b) == 100);
    assert_int_equal(bucket_want(&b), 2);       /* 5 - 3 held */

    /* a slow lease: at least 1, and a refused bigger request is asked for */
    struct bucket_rule slow = { .rate = 10, .burst = 5, .shared = 1 };
    assert_int_equal(bucket_init(&b, &slow, 0), 0);
    assert_int_equal(bucket_want(&b), 1);
    bucket_grant(&b, 1, 0);
    assert_int_equal(bucket_want(&b), 0);
    assert_true(bucket_take(&b, 0, 3) > 0);
    assert_int_equal(bucket_want(&b), 2);
    bucket_grant(&b, 2, 0);
    assert_int_equal(bucket_take(&b, 0, 3), 0);
    assert_int_equal(bucket_want(&b), 1);       /* demand met: back to 1 */
    /* oversized (8 > burst 5): asks for burst, then goes into debt */
    assert_true(bucket_take(&b, 0, 8) > 0);
    assert_int_equal(bucket_want(&b), 5);
    bucket_grant(&b, 5, 0);
    assert_int_equal(bucket_take(&b, 0, 8), 0);
    assert_true(b.tokens == -3);
    assert_int_equal(bucket_want(&b), 4);       /* the debt and one more */

    /* in a path: a lease bucket without leases consumes nothing else */
    struct bucket g;
    struct throttle_path path;
    int64_t wait;
    init(&g, 100, 10, 0);
    assert_int_equal(bucket_init(&b, &slow, 0), 0);
    throttle_path_init(&path);
    throttle_path_add(&path, &g);
    throttle_path_add(&path, &b);
    assert_int_equal(throttle_path_take(&path, 0, 2, &wait), 1);
    assert_int_equal(wait, 200000);
    assert_true(g.tokens == 10);
    assert_int_equal(bucket_want(&b), 2);
    bucket_grant(&b, 2, 0);
    assert_int_equal(throttle_path_take(&path, 0, 2, &wait), 0);
    assert_true(g.tokens == 8 && b.tokens == 0);

    /* refill buckets take grants too, up to burst; never want */
    init(&g, 100, 10, 0);
    assert_int_equal(bucket_want(&g), 0);
    assert_int_equal(bucket_take(&g, 0, 10), 0);
    bucket_grant(&g, 100, 0);
    assert_true(g.tokens == 10);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_accuracy),
        cmocka_unit_test(test_burst_cap),
        cmocka_unit_test(test_waits),
        cmocka_unit_test(test_bad_rules),
        cmocka_unit_test(test_path_all_or_nothing),
        cmocka_unit_test(test_aimd_halving),
        cmocka_unit_test(test_recovery),
        cmocka_unit_test(test_set_rate),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_foreach),
        cmocka_unit_test(test_lease),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_remind.c -- tests for reminder date maths (scheduler/remind.c):
 * yearly birthdays with offsets -30d/-7d/0d/+7d, across a year boundary,
 * Feb 29, birth years; once rules in the past and the future; inactivity
 * with a newer purchase changing the period; the grace window; malformed
 * dates and rules; a send time on DST days. The clock is injected; every
 * expected instant is a literal computed independently with Python's
 * zoneinfo (the comment gives the local time).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "scheduler/remind.h"
#include "scheduler/window.h"

static GTimeZone *
zone(const char *name)
{
    GTimeZone *tz = window_zone(name);

    if (tz == NULL)
        fail_msg("zone %s not found (tzdata installed?)", name);
    return tz;
}

/* A rule; fails the test on a parse error. */
static void
mkrule(struct remind_rule *r, const char *kind, const char *offset,
       const char *at, const char *after, int64_t grace)
{
    char err[128];

    remind_rule_init(r);
    if (remind_parse_kind(kind, &r->kind, err, sizeof err) < 0 ||
        remind_parse_days(offset, &r->offset_days, err, sizeof err) < 0 ||
        remind_parse_time(at, &r->send_min, err, sizeof err) < 0 ||
        (after != NULL &&
         remind_parse_days(after, &r->after_days, err, sizeof err) < 0))
        fail_msg("%s", err);
    r->grace_s = grace;
}

/* remind_next, expecting rc; on 1, the instant and the period too. */
static void
expect(const struct remind_rule *r, const char *value, GTimeZone *tz,
       int64_t now, int rc, int64_t at, const char *period)
{
    char per[REMIND_PERIOD_MAX], err[160];
    int64_t fire = -12345;
    int got;

    per[0] = err[0] = '\0';
    got = remind_next(r, value, tz, now, &fire, per, sizeof per, err,
                      sizeof err);
    if (got != rc)
        fail_msg("remind_next(%s, \"%s\", now=%lld) = %d (%s), want %d",
                 remind_kind_name(r->kind), value, (long long)now, got, err,
                 rc);
    if (rc == 1) {
        if (fire != at || strcmp(per, period) != 0)
            fail_msg("remind_next(%s, \"%s\", now=%lld) = %lld \"%s\", want "
                     "%lld \"%s\"",
                     remind_kind_name(r->kind), value, (long long)now,
                     (long long)fire, per, (long long)at, period);
    } else if (rc < 0 && err[0] == '\0') {
        fail_msg("no error message for \"%s\"", value);
    }
}

static void
test_parse(void **state)
{
    char err[128];
    int d, m;
    enum remind_kind k;

    (void)state;
    assert_int_equal(remind_parse_days("-30d", &d, err, sizeof err), 0);
    assert_int_equal(d, -30);
    assert_int_equal(remind_parse_days("0d", &d, err, sizeof err), 0);
    assert_int_equal(d, 0);
    assert_int_equal(remind_parse_days("+7d", &d, err, sizeof err), 0);
    assert_int_equal(d, 7);
    assert_int_equal(remind_parse_days("90d", &d, err, sizeof err), 0);
    assert_int_equal(d, 90);
    static const char *const bad[] = { "30", "d", "-d", "+-3d", "3dd", "3 d",
                                       "", "99999999d", "3D", "1.5d" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(remind_parse_days(bad[i], &d, err, sizeof err),
                         GW_EPARSE);
    assert_int_equal(remind_parse_days(NULL, &d, NULL, 0), GW_EPARSE);
    assert_int_equal(remind_parse_time("09:30", &m, err, sizeof err), 0);
    assert_int_equal(m, 570);
    assert_int_equal(remind_parse_time("24:00", &m, err, sizeof err),
                     GW_EPARSE);
    assert_int_equal(remind_parse_time("9h30", &m, err, sizeof err),
                     GW_EPARSE);
    assert_int_equal(remind_parse_kind("inactivity", &k, err, sizeof err), 0);
    assert_int_equal(k, REMIND_INACTIVITY);
    assert_int_equal(remind_parse_kind("weekly", &k, err, sizeof err),
                     GW_EPARSE);
    assert_non_null(strstr(err, "weekly"));
    assert_string_equal(remind_kind_name(REMIND_ONCE), "once");
}

/* A birthday 1990-05-17 at 09:30 Europe/Berlin, now 2026-03-01 00:00. */
static void
test_yearly(void **state)
{
    GTimeZone *be = zone("Europe/Berlin");
    struct remind_rule r;

    (void)state;
    mkrule(&r, "yearly", "0d", "09:30", NULL, 3600);
    expect(&r, "1990-05-17", be, 1772319600, 1, 1779003000, "2026");
    expect(&r, "--05-17", be, 1772319600, 1, 1779003000, "2026");
    expect(&r, "05-17", be, 1772319600, 1, 1779003000, "2026");
    /* the instant itself, and just after it (still within grace) */
    expect(&r, "05-17", be, 1779003000, 1, 1779003000, "2026");
    mkrule(&r, "yearly", "-30d", "09:30", NULL, 3600);
    expect(&r, "1990-05-17", be, 1772319600, 1, 1776411000, "2026");
    mkrule(&r, "yearly", "-7d", "09:30", NULL, 3600);
    expect(&r, "1990-05-17", be, 1772319600, 1, 1778398200, "2026");
    /* after this year's: next year's, 2027-05-10 09:30 CEST */
    expect(&r, "1990-05-17", be, 1779003000, 1, 1810539000 - 7 * 86400,
           "2027");
    /* a birth year in the future of its own: only later years count */
    mkrule(&r, "yearly", "0d", "09:30", NULL, 3600);
    expect(&r, "2026-05-17", be, 1772319600, 1, 1810539000, "2027");
    g_time_zone_unref(be);
}

/* An anniversary on 01-10 with -30d fires on 12-11 of the year before,
 * labelled with the anniversary's year; 12-28 with +7d fires in January,
 * labelled with December's year. */
static void
test_year_boundary(void **state)
{
    GTimeZone *be = zone("Europe/Berlin");
    struct remind_rule r;

    (void)state;
    mkrule(&r, "yearly", "-30d", "09:30", NULL, 3600);
    /* now 2026-12-01: 2026-12-11 09:30 CET for the 2027 anniversary */
    expect(&r, "--01-10", be, 1796079600, 1, 1796977800, "2027");
    /* now 2026-01-05: the 2026 one fired 2025-12-11; next is 2027's */
    expect(&r, "--01-10", be, 1767567600, 1, 1796977800, "2027");
    /* now 2026-12-12: 2027-12-11 for 2028 */
    expect(&r, "1985-01-10", be, 1797030000, 1, 1828513800, "2028");
    mkrule(&r, "yearly", "+7d", "09:30", NULL, 3600);
    /* now 2026-12-30: 2027-01-04 09:30 CET for the 2026 anniversary */
    expect(&r, "12-28", be, 1798585200, 1, 1799051400, "2026");
    g_time_zone_unref(be);
}

/* Feb 29 falls on Feb 28 in non-leap years. */
static void
test_feb29(void **state)
{
    GTimeZone *be = zone("Europe/Berlin");
    struct remind_rule r;

    (void)state;
    mkrule(&r, "yearly", "0d", "09:30", NULL, 3600);
    /* now 2026-01-01: 2026-02-28 09:30 CET */
    expect(&r, "2000-02-29", be, 1767222000, 1, 1772267400, "2026");
    expect(&r, "--02-29", be, 1767222000, 1, 1772267400, "2026");
    /* now 2028-01-01: 2028-02-29 */
    expect(&r, "2000-02-29", be, 1830294000, 1, 1835425800, "2028");
    /* -7d in 2027: a week before the 28th, 2027-02-21 */
    mkrule(&r, "yearly", "-7d", "09:30", NULL, 3600);
    expect(&r, "02-29", be, 1798758000, 1, 1803198600, "2027");
    /* 1990 was not a leap year */
    expect(&r, "1990-02-29", be, 1798758000, GW_EPARSE, 0, NULL);
    g_time_zone_unref(be);
}

/* A renewal on 2027-03-01, reminded 30 days before at 09:00 New York. */
static void
test_once(void **state)
{
    GTimeZone *ny = zone("America/New_York");
    struct remind_rule r;

    (void)state;
    mkrule(&r, "once", "-30d", "09:00", NULL, 3600);
    /* now 2026-06-01: 2027-01-30 09:00 EST */
    expect(&r, "2027-03-01", ny, 1780286400, 1, 1801317600, "2027-03-01");
    /* 30 minutes late: still due, with its own instant */
    expect(&r, "2027-03-01", ny, 1801317600 + 1800, 1, 1801317600,
           "2027-03-01");
    /* exactly the grace late: gone */
    expect(&r, "2027-03-01", ny, 1801317600 + 3600, 0, 0, NULL);
    /* now 2027-02-01: in the past, nothing left */
    expect(&r, "2027-03-01", ny, 1801458000, 0, 0, NULL);
    /* a renewed date is a new period */
    expect(&r, "2028-03-01", ny, 1801458000, 1,
           1801317600 + 366 * 86400 /* 2028-01-31 09:00 EST */, "2028-03-01");
    expect(&r, "--03-01", ny, 1801458000, GW_EPARSE, 0, NULL);
    g_time_zone_unref(ny);
}

/* 90 days after the last purchase, 09:30 Berlin. */
static void
test_inactivity(void **state)
{
    GTimeZone *be = zone("Europe/Berlin");
    struct remind_rule r;

    (void)state;
    mkrule(&r, "inactivity", "0d", "09:30", "90d", 3600);
    /* purchase 2026-01-15, now 2026-02-01: 2026-04-15 09:30 CEST */
    expect(&r, "2026-01-15", be, 1769900400, 1, 1776238200, "2026-01-15");
    /* a newer purchase 2026-03-01 18:20Z (19:20 CET): 2026-05-30, and the
     * period changes with it */
    expect(&r, "2026-03-01T18:20:00Z", be, 1769900400, 1, 1780126200,
           "2026-03-01T18:20:00Z");
    /* 23:30 at -05:00 is 04:30Z on 03-02, 05:30 in Berlin: 2026-05-31 */
    expect(&r, "2026-03-01T23:30:00-05:00", be, 1769900400, 1, 1780212600,
           "2026-03-02T04:30:00Z");
    expect(&r, "2026-03-01T23:30-0500", be, 1769900400, 1, 1780212600,
           "2026-03-02T04:30:00Z");
    expect(&r, "2026-03-01 23:30:00.250-05", be, 1769900400, 1, 1780212600,
           "2026-03-02T04:30:00Z");
    /* no offset: local time in the zone, labelled as written */
    expect(&r, "2026-03-01T23:30:00", be, 1769900400, 1, 1780126200,
           "2026-03-01T23:30:00");
    /* now 2026-05-01: the January purchase's reminder is long gone */
    expect(&r, "2026-01-15", be, 1777586400, 0, 0, NULL);
    g_time_zone_unref(be);
}

/* Grace: a missed firing still fires when less than grace_s late. */
static void
test_grace(void **state)
{
    GTimeZone *be = zone("Europe/Berlin");
    struct remind_rule r;

    (void)state;
    mkrule(&r, "yearly", "0d", "09:30", NULL, 3600);
    /* 2026-05-17 09:30 CEST; the daemon was down until 10:00 */
    expect(&r, "1990-05-17", be, 1779003000 + 1800, 1, 1779003000, "2026");
    expect(&r, "1990-05-17", be, 1779003000 + 3599, 1, 1779003000, "2026");
    /* down until 11:30: this year's is skipped, next year's comes */
    expect(&r, "1990-05-17", be, 1779003000 + 7200, 1, 1810539000, "2027");
    r.grace_s = 0;
    expect(&r, "1990-05-17", be, 1779003000 + 1, 1, 1810539000, "2027");
    g_time_zone_unref(be);
}

static void
test_malformed(void **state)
{
    GTimeZone *be = zone("Europe/Berlin");
    struct remind_rule r;
    static const char *const yearly_bad[] = {
        "", "1990-5-17", "1990/05/17", "1990-13-01", "1990-04-31", "--02-30",
        "02-30", "13-01", "00-10", "5-17", "-05-17", "1990-05-17T09:00",
        "abcd-ef-gh", "05-17 ", "0990-05-17",
    };
    static const char *const purchase_bad[] = {
        "2026-01-15T", "2026-01-15T25:00", "2026-01-15T10", "2026-01-15X10:00",
        "2026-01-15T10:00Zx", "2026-01-15T10:00+1", "2026-01-15T10:00+01:0",
        "2026-01-15T10:00:00.", "2026-02-30", "yesterday",
    };
    char per[REMIND_PERIOD_MAX], err[128];
    int64_t at;

    (void)state;
    mkrule(&r, "yearly", "0d", "09:30", NULL, 3600);
    for (size_t i = 0; i < sizeof yearly_bad / sizeof *yearly_bad; i++)
        expect(&r, yearly_bad[i], be, 1772319600, GW_EPARSE, 0, NULL);
    expect(&r, NULL, be, 1772319600, GW_EPARSE, 0, NULL);
    mkrule(&r, "inactivity", "0d", "09:30", "90d", 3600);
    for (size_t i = 0; i < sizeof purchase_bad / sizeof *purchase_bad; i++)
        expect(&r, purchase_bad[i], be, 1772319600, GW_EPARSE, 0, NULL);
    /* a bad rule, no zone, no room for the period */
    r.send_min = 1440;
    expect(&r, "2026-01-15", be, 1772319600, GW_EINVAL, 0, NULL);
    mkrule(&r, "yearly", "+400d", "09:30", NULL, 3600);
    expect(&r, "05-17", be, 1772319600, GW_EINVAL, 0, NULL);
    mkrule(&r, "yearly", "0d", "09:30", NULL, 3600);
    err[0] = '\0';
    assert_int_equal(remind_next(&r, "05-17", NULL, 1772319600, &at, per,
                                 sizeof per, err, sizeof err),
                     GW_EINVAL);
    assert_true(err[0] != '\0');
    assert_int_equal(remind_next(&r, "05-17", be, 1772319600, &at, per, 4,
                                 err, sizeof err),
                     GW_ETOOBIG);
    assert_int_equal(remind_next(&r, "05-17", be, 1772319600, &at, per, 5,
                                 NULL, 0),
                     1);
    assert_string_equal(per, "2026");
    g_time_zone_unref(be);
}

/* A send time of 02:30 in New York: on 2024-03-10 it does not exist and
 * fires at 03:00 EDT; on 2024-11-03 it fires at the first 01:30 for a
 * 01:30 send time. */
static void
test_dst_send_time(void **state)
{
    GTimeZone *ny = zone("America/New_York");
    GTimeZone *be = zone("Europe/Berlin");
    struct remind_rule r;

    (void)state;
    mkrule(&r, "once", "0d", "02:30", NULL, 3600);
    expect(&r, "2024-03-10", ny, 1704085200, 1, 1710054000, "2024-03-10");
    mkrule(&r, "yearly", "0d", "02:30", NULL, 3600);
    expect(&r, "1980-03-10", ny, 1704085200, 1, 1710054000, "2024");
    mkrule(&r, "once", "0d", "01:30", NULL, 3600);
    expect(&r, "2024-11-03", ny, 1717214400, 1, 1730611800, "2024-11-03");
    /* Berlin 2024-03-31 02:30 -> 03:00 CEST; reached from a -1d offset */
    mkrule(&r, "once", "-1d", "02:30", NULL, 3600);
    expect(&r, "2024-04-01", be, 1704085200, 1, 1711846800, "2024-04-01");
    /* 09:30 on the same days is ordinary: 2024-03-10 09:30 EDT */
    mkrule(&r, "once", "0d", "09:30", NULL, 3600);
    expect(&r, "2024-03-10", ny, 1704085200, 1, 1710077400, "2024-03-10");
    g_time_zone_unref(ny);
    g_time_zone_unref(be);
}

static int
teardown_cache(void **state)
{
    (void)state;
    window_zone_cache_clear();
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_yearly),
        cmocka_unit_test(test_year_boundary),
        cmocka_unit_test(test_feb29),
        cmocka_unit_test(test_once),
        cmocka_unit_test(test_inactivity),
        cmocka_unit_test(test_grace),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_dst_send_time),
    };

    return cmocka_run_group_tests(tests, NULL, teardown_cache);
}

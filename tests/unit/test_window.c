/*
 * test_window.c -- tests for send windows (scheduler/window.c): parsers
 * and their errors, next-open across DST in America/New_York,
 * Europe/Berlin and Australia/Lord_Howe (spring-forward gaps and
 * fall-back overlaps, windows touching 02:00-03:00), the +05:30 and +05:45
 * offsets, windows crossing midnight, weekday masks, holidays, never-open
 * windows, intersections, the most restrictive reading across zones and
 * zone lookup. The clock is injected; every expected instant is a literal
 * computed independently with Python's zoneinfo (the comment gives the
 * local time).
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
#include "scheduler/window.h"

static GTimeZone *
zone(const char *name)
{
    GTimeZone *tz = window_zone(name);

    if (tz == NULL)
        fail_msg("zone %s not found (tzdata installed?)", name);
    return tz;
}

/* A window from an hours spec and day names; fails the test on error. */
static void
mkwin(struct window *w, const char *hours, const char *const *days, size_t n)
{
    char err[128];

    window_init(w);
    if (window_parse_hours(w, hours, err, sizeof err) < 0)
        fail_msg("%s", err);
    if (n > 0 && window_set_days(w, days, n, err, sizeof err) < 0)
        fail_msg("%s", err);
}

static void
test_parse(void **state)
{
    struct window w;
    char err[128];
    int m;
    unsigned bit;
    int64_t day;

    (void)state;
    assert_int_equal(window_parse_time("08:00", &m, err, sizeof err), 0);
    assert_int_equal(m, 480);
    assert_int_equal(window_parse_time("8:05", &m, err, sizeof err), 0);
    assert_int_equal(m, 485);
    assert_int_equal(window_parse_time("24:00", &m, err, sizeof err), 0);
    assert_int_equal(m, 1440);
    assert_int_equal(window_parse_time("21:00", &m, err, sizeof err), 0);
    assert_int_equal(m, 1260);
    static const char *const bad_times[] = {
        "", "8", "08:0", "08:60", "24:01", "25:00", "08:00 ", "0800",
        "-1:00", "08:00:00", "ab:cd",
    };
    for (size_t i = 0; i < sizeof bad_times / sizeof *bad_times; i++) {
        err[0] = '\0';
        assert_int_equal(window_parse_time(bad_times[i], &m, err, sizeof err),
                         GW_EPARSE);
        assert_true(err[0] != '\0');
    }
    assert_int_equal(window_parse_time(NULL, &m, NULL, 0), GW_EPARSE);

    assert_int_equal(window_parse_weekday("mon", &bit, err, sizeof err), 0);
    assert_int_equal(bit, WINDOW_MON);
    assert_int_equal(window_parse_weekday("Sunday", &bit, err, sizeof err), 0);
    assert_int_equal(bit, WINDOW_SUN);
    assert_int_equal(window_parse_weekday("FRI", &bit, err, sizeof err), 0);
    assert_int_equal(bit, WINDOW_FRI);
    assert_int_equal(window_parse_weekday("mo", &bit, err, sizeof err),
                     GW_EPARSE);
    assert_int_equal(window_parse_weekday("mond", &bit, err, sizeof err),
                     GW_EPARSE);
    assert_non_null(strstr(err, "mond"));

    assert_int_equal(window_parse_date("1970-01-01", &day, err, sizeof err),
                     0);
    assert_int_equal(day, 0);
    assert_int_equal(window_parse_date("2024-02-29", &day, err, sizeof err),
                     0);
    assert_int_equal(day, 19782);
    static const char *const bad_dates[] = {
        "2023-02-29", "2024-13-01", "2024-04-31", "2024-00-10", "2024-1-10",
        "24-01-10",   "2024/01/10", "2024-01-10x", "", "0999-01-01",
    };
    for (size_t i = 0; i < sizeof bad_dates / sizeof *bad_dates; i++)
        assert_int_equal(window_parse_date(bad_dates[i], &day, err, sizeof err),
                         GW_EPARSE);

    window_init(&w);
    assert_int_equal(window_parse_hours(&w, "08:00-21:00", err, sizeof err),
                     0);
    assert_int_equal(w.start, 480);
    assert_int_equal(w.end, 1260);
    assert_int_equal(window_parse_hours(&w, "22:00-06:00", err, sizeof err),
                     0);
    assert_int_equal(w.start, 1320);
    assert_int_equal(w.end, 360);
    assert_int_equal(window_parse_hours(&w, "18:00-00:00", err, sizeof err),
                     0);
    assert_int_equal(w.end, 1440); /* midnight as an end is the day's end */
    assert_int_equal(window_parse_hours(&w, "always", err, sizeof err), 0);
    assert_int_equal(w.start, 0);
    assert_int_equal(w.end, 1440);
    assert_int_equal(window_parse_hours(&w, "08:00-08:00", err, sizeof err),
                     GW_EINVAL);
    assert_non_null(strstr(err, "empty window"));
    assert_int_equal(window_parse_hours(&w, "24:00-08:00", err, sizeof err),
                     GW_EINVAL);
    assert_int_equal(window_parse_hours(&w, "08:00", err, sizeof err),
                     GW_EPARSE);
    assert_int_equal(window_parse_hours(&w, "08:00-21:00:00", err, sizeof err),
                     GW_EPARSE);

    static const char *const days[] = { "mon", "Wednesday", "weekend" };
    assert_int_equal(window_set_days(&w, days, 3, err, sizeof err), 0);
    assert_int_equal(w.days, WINDOW_MON | WINDOW_WED | WINDOW_SAT | WINDOW_SUN);
    static const char *const bad_days[] = { "mon", "funday" };
    assert_int_equal(window_set_days(&w, bad_days, 2, err, sizeof err),
                     GW_EPARSE);
    assert_non_null(strstr(err, "funday"));
    assert_int_equal(window_set_days(&w, days, 0, err, sizeof err), GW_EINVAL);

    /* holidays: kept sorted and unique */
    assert_int_equal(window_add_holiday(&w, "2025-12-25", err, sizeof err), 0);
    assert_int_equal(window_add_holiday(&w, "2025-01-01", err, sizeof err), 0);
    assert_int_equal(window_add_holiday(&w, "2025-07-04", err, sizeof err), 0);
    assert_int_equal(window_add_holiday(&w, "2025-07-04", err, sizeof err), 0);
    assert_int_equal(window_add_holiday(&w, "2025-02-30", err, sizeof err),
                     GW_EPARSE);
    assert_int_equal(w.nholidays, 3);
    assert_true(w.holidays[0] < w.holidays[1]);
    assert_true(w.holidays[1] < w.holidays[2]);
    window_clear(&w);
    assert_null(w.holidays);
    window_clear(NULL);
}

static void
test_calendar(void **state)
{
    int y, m, d;

    (void)state;
    assert_int_equal(window_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(window_days_from_civil(1969, 12, 31), -1);
    window_civil_from_days(-1, &y, &m, &d);
    assert_int_equal(y * 10000 + m * 100 + d, 19691231);
    for (int64_t day = -800000; day < 800000; day += 37) {
        window_civil_from_days(day, &y, &m, &d);
        assert_int_equal(window_days_from_civil(y, m, d), day);
    }
    assert_int_equal(window_weekday(0), 3);     /* 1970-01-01 Thursday */
    assert_int_equal(window_weekday(-3), 0);    /* 1969-12-29 Monday */
    assert_int_equal(window_weekday(20251), 3); /* 2025-06-12 Thursday */
    assert_int_equal(window_weekday(20254), 6); /* 2025-06-15 Sunday */
}

/* An ordinary summer day in New York: before, inside, at the end. */
static void
test_simple(void **state)
{
    GTimeZone *ny = zone("America/New_York");
    struct window w;

    (void)state;
    mkwin(&w, "08:00-21:00", NULL, 0);
    /* 2024-06-12 07:00 EDT -> 08:00 EDT */
    assert_int_equal(window_next_open(&w, ny, 1718190000), 1718193600);
    /* 12:00 EDT: open now */
    assert_int_equal(window_next_open(&w, ny, 1718208000), 1718208000);
    assert_true(window_is_open(&w, ny, 1718208000));
    assert_int_equal(window_next_close(&w, ny, 1718208000), 1718240400);
    /* 21:00 EDT is closed (end excluded) -> 2024-06-13 08:00 EDT */
    assert_false(window_is_open(&w, ny, 1718240400));
    assert_int_equal(window_next_open(&w, ny, 1718240400), 1718280000);
    assert_int_equal(window_next_open(&w, ny, 1718240400 - 1), 1718240400 - 1);
    /* always: open now, never closes within the bound */
    mkwin(&w, "always", NULL, 0);
    assert_int_equal(window_next_open(&w, ny, 1718240400), 1718240400);
    assert_int_equal(window_next_close(&w, ny, 1718240400), -1);
    g_time_zone_unref(ny);
}

/* New York, spring forward 2024-03-10: 02:00 EST -> 03:00 EDT. */
static void
test_ny_spring(void **state)
{
    GTimeZone *ny = zone("America/New_York");
    struct window w;

    (void)state;
    /* opening at 02:30, which does not exist: opens at 03:00 EDT */
    mkwin(&w, "02:30-05:00", NULL, 0);
    assert_int_equal(window_next_open(&w, ny, 1710046800), 1710054000);
    assert_int_equal(window_next_open(&w, ny, 1710053999), 1710054000);
    /* 02:00-03:00 lies wholly in the gap: not that day; 2024-03-11 02:00 */
    mkwin(&w, "02:00-03:00", NULL, 0);
    assert_int_equal(window_next_open(&w, ny, 1710046800), 1710136800);
    mkwin(&w, "02:10-02:50", NULL, 0);
    assert_int_equal(window_next_open(&w, ny, 1710046800), 1710137400);
    /* 01:00-02:30 opens at 01:00 EST and closes at 03:00 EDT, one real
     * hour later */
    mkwin(&w, "01:00-02:30", NULL, 0);
    assert_int_equal(window_next_open(&w, ny, 1710046800), 1710050400);
    assert_int_equal(window_next_close(&w, ny, 1710050400), 1710054000);
    assert_false(window_is_open(&w, ny, 1710054000));
    /* 03:00-04:00 opens at 03:00 EDT */
    mkwin(&w, "03:00-04:00", NULL, 0);
    assert_int_equal(window_next_open(&w, ny, 1710046800), 1710054000);
    g_time_zone_unref(ny);
}

/* New York, fall back 2024-11-03: 02:00 EDT -> 01:00 EST. */
static void
test_ny_fall(void **state)
{
    GTimeZone *ny = zone("America/New_York");
    struct window w;

    (void)state;
    /* opens at the first 01:30 (EDT, 05:30Z) */
    mkwin(&w, "01:30-21:00", NULL, 0);
    assert_int_equal(window_next_open(&w, ny, 1730606400), 1730611800);
    /* and stays open through the repeated hour */
    assert_true(window_is_open(&w, ny, 1730614200)); /* 01:10 EST */
    assert_int_equal(window_next_close(&w, ny, 1730611800), 1730689200 - 3600);
    /* 22:00-01:30 closes at the first 01:30 and does not reopen at
     * 01:00 EST: the next opening is 22:00 EST */
    mkwin(&w, "22:00-01:30", NULL, 0);
    assert_int_equal(window_next_open(&w, ny, 1730606400), 1730606400);
    assert_int_equal(window_next_close(&w, ny, 1730606400), 1730611800);
    assert_int_equal(window_next_open(&w, ny, 1730612400), 1730689200);
    assert_int_equal(window_next_open(&w, ny, 1730614200), 1730689200);
    /* 01:00-02:00 covers both passes of the repeated hour: 2 real hours */
    mkwin(&w, "01:00-02:00", NULL, 0);
    assert_int_equal(window_next_open(&w, ny, 1730606400), 1730610000);
    assert_int_equal(window_next_close(&w, ny, 1730610000), 1730617200);
    /* 01:30-02:30: from the first 01:30 (EDT) to 02:30 EST, one interval */
    mkwin(&w, "01:30-02:30", NULL, 0);
    assert_int_equal(window_next_open(&w, ny, 1730606400), 1730611800);
    assert_int_equal(window_next_close(&w, ny, 1730611800), 1730619000);
    g_time_zone_unref(ny);
}

/* Berlin: spring forward 2024-03-31 02:00 CET -> 03:00 CEST; fall back
 * 2024-10-27 03:00 CEST -> 02:00 CET. */
static void
test_berlin(void **state)
{
    GTimeZone *be = zone("Europe/Berlin");
    struct window w;

    (void)state;
    mkwin(&w, "02:30-06:00", NULL, 0);
    /* 00:00 CET -> 03:00 CEST (01:00Z) */
    assert_int_equal(window_next_open(&w, be, 1711839600), 1711846800);
    assert_int_equal(window_next_open(&w, be, 1711846740), 1711846800);
    /* fall back: the first 02:30 (CEST, 00:30Z) */
    assert_int_equal(window_next_open(&w, be, 1729980000), 1729989000);
    assert_true(window_is_open(&w, be, 1729992600)); /* second 02:30 CET */
    /* 03:00-20:00 on the fall-back day: wall 03:00 first happens at
     * 03:00 CET (02:00Z), an hour after the first 02:40 */
    mkwin(&w, "03:00-20:00", NULL, 0);
    assert_int_equal(window_next_open(&w, be, 1729989600), 1729994400);
    /* 20:00-02:30 on the fall-back night: closed at the first 02:30 and
     * not reopened during the repeated hour */
    mkwin(&w, "20:00-02:30", NULL, 0);
    assert_int_equal(window_next_close(&w, be, 1729980000), 1729989000);
    assert_false(window_is_open(&w, be, 1729992600 - 1200)); /* 02:10 CET */
    g_time_zone_unref(be);
}

/* +05:30 and +05:45: no DST, odd offsets. */
static void
test_odd_offsets(void **state)
{
    GTimeZone *ko = zone("Asia/Kolkata");
    GTimeZone *ka = zone("Asia/Kathmandu");
    struct window w;

    (void)state;
    mkwin(&w, "09:00-18:00", NULL, 0);
    /* 2024-06-12 00:00Z: 09:00 IST = 03:30Z, 09:00 NPT = 03:15Z */
    assert_int_equal(window_next_open(&w, ko, 1718150400), 1718163000);
    assert_int_equal(window_next_open(&w, ka, 1718150400), 1718162100);
    assert_int_equal(window_next_close(&w, ka, 1718162100), 1718194500);
    /* both at once: from 03:30Z */
    GTimeZone *both[] = { ko, ka };
    assert_int_equal(window_next_open_zones(&w, both, 2, 1718150400),
                     1718163000);
    g_time_zone_unref(ko);
    g_time_zone_unref(ka);
}

/* Lord Howe: +10:30 standard, +11:00 summer (a 30-minute DST).
 * Spring 2024-10-06 02:00 -> 02:30; fall 2024-04-07 02:00 -> 01:30. */
static void
test_lord_howe(void **state)
{
    GTimeZone *lh = zone("Australia/Lord_Howe");
    struct window w;

    (void)state;
    mkwin(&w, "02:15-05:00", NULL, 0);
    assert_int_equal(window_next_open(&w, lh, 1728135000), 1728142200);
    mkwin(&w, "01:45-05:00", NULL, 0);
    assert_int_equal(window_next_open(&w, lh, 1712408400), 1712414700);
    assert_true(window_is_open(&w, lh, 1712416500)); /* the second 01:45 */
    g_time_zone_unref(lh);
}

/* 22:00-06:00 in Berlin, week of Monday 2024-06-10; each part belongs to
 * its own date's weekday. */
static void
test_midnight(void **state)
{
    GTimeZone *be = zone("Europe/Berlin");
    struct window w;
    static const char *const weekdays[] = { "weekdays" };

    (void)state;
    mkwin(&w, "22:00-06:00", NULL, 0);
    assert_int_equal(window_next_open(&w, be, 1718186400), 1718222400);
    assert_int_equal(window_next_open(&w, be, 1718226000), 1718226000);
    assert_int_equal(window_next_open(&w, be, 1718240400), 1718240400);
    /* open from Wednesday 22:00 through Thursday 06:00 */
    assert_int_equal(window_next_close(&w, be, 1718226000), 1718251200);

    mkwin(&w, "22:00-06:00", weekdays, 1);
    /* Friday 23:00 is open until Saturday 00:00 */
    assert_int_equal(window_next_open(&w, be, 1718398800), 1718398800);
    assert_int_equal(window_next_close(&w, be, 1718398800), 1718402400);
    /* Saturday 03:00 is not: next Monday 00:00 */
    assert_int_equal(window_next_open(&w, be, 1718413200), 1718575200);
    g_time_zone_unref(be);
}

/* Weekdays 09:00-17:00 in New York with Friday 2025-07-04 a holiday. */
static void
test_holiday(void **state)
{
    GTimeZone *ny = zone("America/New_York");
    struct window w;
    char err[128];
    static const char *const weekdays[] = { "mon", "tue", "wed", "thu",
                                            "fri" };

    (void)state;
    mkwin(&w, "09:00-17:00", weekdays, 5);
    /* Thursday 18:00 -> Friday 09:00 without the holiday */
    assert_int_equal(window_next_open(&w, ny, 1751580000), 1751634000);
    assert_int_equal(window_add_holiday(&w, "2025-07-04", err, sizeof err), 0);
    /* with it: Monday 2025-07-07 09:00 EDT */
    assert_int_equal(window_next_open(&w, ny, 1751580000), 1751893200);
    window_clear(&w);
    g_time_zone_unref(ny);
}

static void
test_never(void **state)
{
    GTimeZone *ny = zone("America/New_York");
    struct window w, a, b;

    (void)state;
    window_init(&w);
    w.days = 0;
    assert_int_equal(window_next_open(&w, ny, 1718190000), -1);
    assert_false(window_is_open(&w, ny, 1718190000));
    window_init(&w);
    w.start = w.end = 600;
    assert_int_equal(window_next_open(&w, ny, 1718190000), -1);
    /* disjoint hours never meet */
    mkwin(&a, "08:00-12:00", NULL, 0);
    mkwin(&b, "13:00-17:00", NULL, 0);
    const struct window *ws[] = { &a, &b };
    assert_int_equal(window_next_open_all(ws, 2, ny, 1718190000), -1);
    /* weekends only against weekdays only */
    static const char *const we[] = { "weekend" };
    static const char *const wd[] = { "weekdays" };
    mkwin(&a, "always", we, 1);
    mkwin(&b, "always", wd, 1);
    assert_int_equal(window_next_open_all(ws, 2, ny, 1718190000), -1);
    g_time_zone_unref(ny);
}

/* A campaign window 10:00-20:00 Mon-Sat within a class policy 08:00-21:00
 * weekdays with Friday 2025-07-04 a holiday, New York. */
static void
test_intersection(void **state)
{
    GTimeZone *ny = zone("America/New_York");
    struct window camp, cls;
    char err[128];
    static const char *const monsat[] = { "mon", "tue", "wed", "thu", "fri",
                                          "sat" };
    static const char *const wd[] = { "weekdays" };

    (void)state;
    mkwin(&camp, "10:00-20:00", monsat, 6);
    mkwin(&cls, "08:00-21:00", wd, 1);
    assert_int_equal(window_add_holiday(&cls, "2025-07-04", err, sizeof err),
                     0);
    const struct window *ws[] = { &camp, &cls };
    /* Thursday 07:00 -> 10:00 */
    assert_int_equal(window_next_open_all(ws, 2, ny, 1751540400), 1751551200);
    /* Thursday 19:30: both open */
    assert_int_equal(window_next_open_all(ws, 2, ny, 1751585400), 1751585400);
    /* Thursday 20:30: Friday is a holiday, Saturday not a weekday, Sunday
     * not a campaign day: Monday 2025-07-07 10:00 EDT */
    assert_int_equal(window_next_open_all(ws, 2, ny, 1751589000), 1751896800);
    /* order does not matter */
    const struct window *sw[] = { &cls, &camp };
    assert_int_equal(window_next_open_all(sw, 2, ny, 1751589000), 1751896800);
    /* no windows: now */
    assert_int_equal(window_next_open_all(ws, 0, ny, 1751589000), 1751589000);
    window_clear(&cls);
    g_time_zone_unref(ny);
}

/* 08:00-21:00 in both New York and Berlin. Summer (EDT, CEST): NY is open
 * 12:00Z-01:00Z, Berlin 06:00Z-19:00Z, together 12:00Z-19:00Z. Winter
 * (EST, CET): 13:00Z-20:00Z. Between the US and EU changes (EDT, CET):
 * 12:00Z-20:00Z. */
static void
test_zones(void **state)
{
    GTimeZone *ny = zone("America/New_York");
    GTimeZone *be = zone("Europe/Berlin");
    GTimeZone *ko = zone("Asia/Kolkata");
    struct window w;
    GTimeZone *z[] = { ny, be };

    (void)state;
    mkwin(&w, "08:00-21:00", NULL, 0);
    assert_int_equal(window_next_open_zones(&w, z, 2, 1718150400), 1718193600);
    assert_int_equal(window_next_open_zones(&w, z, 2, 1718218800 - 1),
                     1718218800 - 1);
    /* 19:00Z Berlin closes: next day 12:00Z */
    assert_int_equal(window_next_open_zones(&w, z, 2, 1718218800), 1718280000);
    /* winter */
    assert_int_equal(window_next_open_zones(&w, z, 2, 1704844800), 1704891600);
    assert_int_equal(window_next_open_zones(&w, z, 2, 1704916800 - 1),
                     1704916800 - 1);
    assert_int_equal(window_next_open_zones(&w, z, 2, 1704916800),
                     1704891600 + 86400);
    /* 2024-03-20: NY already on EDT, Berlin still on CET */
    assert_int_equal(window_next_open_zones(&w, z, 2, 1710892800), 1710936000);
    assert_int_equal(window_next_open_zones(&w, z, 2, 1710964800 - 1),
                     1710964800 - 1);
    /* New York and Kolkata (+05:30): 12:00Z-15:30Z */
    GTimeZone *z2[] = { ny, ko };
    assert_int_equal(window_next_open_zones(&w, z2, 2, 1718150400),
                     1718193600);
    assert_int_equal(window_next_open_zones(&w, z2, 2, 1718206200),
                     1718193600 + 86400);
    /* one zone is just window_next_open: NY is open at 20:00 EDT, Berlin
     * opens at 08:00 CEST (06:00Z) */
    assert_int_equal(window_next_open_zones(&w, z, 1, 1718150400), 1718150400);
    assert_int_equal(window_next_open_zones(&w, z + 1, 1, 1718150400),
                     1718172000);
    /* New York, Berlin and Kolkata: 12:00Z-15:30Z too */
    GTimeZone *z3[] = { ny, be, ko };
    assert_int_equal(window_next_open_zones(&w, z3, 3, 1718206200 - 1),
                     1718206200 - 1);
    assert_int_equal(window_next_open_zones(&w, z3, 3, 1718206200),
                     1718193600 + 86400);
    /* a window too short to meet anywhere in both */
    mkwin(&w, "09:00-10:00", NULL, 0);
    assert_int_equal(window_next_open_zones(&w, z, 2, 1718150400), -1);
    g_time_zone_unref(ny);
    g_time_zone_unref(be);
    g_time_zone_unref(ko);
}

static void
test_zone_lookup(void **state)
{
    static const char *const bad[] = {
        "Mars/Olympus", "", "../etc/passwd", "/etc/localtime", "ABC5",
        "+05:30", "+0530", "America/new_york", "localtime", "zone.tab",
        "leapseconds", "Europe//Berlin", "Europe/", "/UTC", "Europe/Berlin ",
        "CET-1CEST,M3.5.0,M10.5.0/3", "America/../Europe/Berlin",
        "Europe/Berlin\n",
    };
    GTimeZone *a, *b;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        a = window_zone(bad[i]);
        if (a != NULL)
            fail_msg("zone \"%s\" accepted", bad[i]);
    }
    /* twice: the negative answer comes from the cache */
    assert_null(window_zone("Mars/Olympus"));
    assert_null(window_zone(NULL));
    a = window_zone("Europe/Berlin");
    b = window_zone("Europe/Berlin");
    assert_non_null(a);
    assert_ptr_equal(a, b);
    assert_string_equal(g_time_zone_get_identifier(a), "Europe/Berlin");
    g_time_zone_unref(a);
    g_time_zone_unref(b);
    a = window_zone("UTC");
    assert_non_null(a);
    assert_int_equal(window_utc_offset(a, 1718150400), 0);
    g_time_zone_unref(a);
    a = window_zone("Etc/GMT+5");
    assert_non_null(a);
    assert_int_equal(window_utc_offset(a, 1718150400), -5 * 3600);
    g_time_zone_unref(a);
    /* more names than cache slots: entries are replaced, references stay
     * valid */
    static const char *const many[] = {
        "Europe/Paris", "Europe/Rome", "Europe/Madrid", "Europe/Vienna",
        "Europe/Oslo", "Europe/Lisbon", "Europe/Dublin", "Europe/London",
        "Asia/Tokyo", "Asia/Seoul", "Asia/Kolkata", "Asia/Kathmandu",
        "America/Chicago", "America/Denver", "America/Phoenix",
        "America/Los_Angeles", "America/Sao_Paulo", "America/Havana",
        "Africa/Cairo", "Africa/Lagos", "Australia/Sydney",
        "Australia/Lord_Howe", "Pacific/Auckland", "Pacific/Chatham",
        "Pacific/Kiritimati", "Asia/Tehran", "Asia/Dubai", "Asia/Singapore",
        "Europe/Helsinki", "Europe/Athens", "Europe/Kyiv", "Europe/Warsaw",
        "Europe/Prague", "America/St_Johns",
    };
    a = window_zone("Europe/Berlin");
    for (size_t i = 0; i < sizeof many / sizeof *many; i++) {
        b = window_zone(many[i]);
        if (b == NULL)
            fail_msg("zone %s not found", many[i]);
        g_time_zone_unref(b);
    }
    assert_int_equal(window_utc_offset(a, 1718150400), 7200);
    g_time_zone_unref(a);
    window_zone_cache_clear();
    window_zone_cache_clear();
}

/* window_local_time against the offsets (the DST rules every search above
 * relies on). */
static void
test_local_time(void **state)
{
    GTimeZone *ny = zone("America/New_York");
    int sec;

    (void)state;
    /* 2024-03-10 is day 19792 */
    assert_int_equal(window_local_time(ny, 19792, 2 * 3600 + 1800),
                     1710054000);
    assert_int_equal(window_local_time(ny, 19792, 3600 + 3599), 1710053999);
    /* 2024-11-03 is day 20030: first 01:30 */
    assert_int_equal(window_local_time(ny, 20030, 5400), 1730611800);
    assert_int_equal(window_local_time(ny, 20030, 86400),
                     window_local_time(ny, 20031, 0));
    assert_int_equal(window_local_day(ny, 1730615400, &sec), 20030);
    assert_int_equal(sec, 5400); /* the second 01:30 */
    assert_int_equal(window_local_day(ny, 1730606400 - 1, &sec), 20029);
    assert_int_equal(sec, 86399);
    g_time_zone_unref(ny);
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
        cmocka_unit_test(test_calendar),
        cmocka_unit_test(test_local_time),
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_ny_spring),
        cmocka_unit_test(test_ny_fall),
        cmocka_unit_test(test_berlin),
        cmocka_unit_test(test_odd_offsets),
        cmocka_unit_test(test_lord_howe),
        cmocka_unit_test(test_midnight),
        cmocka_unit_test(test_holiday),
        cmocka_unit_test(test_never),
        cmocka_unit_test(test_intersection),
        cmocka_unit_test(test_zones),
        cmocka_unit_test(test_zone_lookup),
    };

    return cmocka_run_group_tests(tests, NULL, teardown_cache);
}

/*
 * window.h -- send windows (quiet hours) in a recipient's local wall time:
 * an allowed time of day, allowed weekdays and holidays, and when a window
 * next opens. Zones come from the system tzdata through GLib's GTimeZone;
 * the clock is always passed in (unix seconds), never read here.
 *
 * How local wall time maps to instants (DST):
 *  - a local time is placed at the first instant whose wall clock reads
 *    that time or later: in a spring-forward gap (02:30 that never happens)
 *    that is the end of the gap (03:00); in a fall-back overlap it is the
 *    first occurrence. Window edges (opening and closing) both follow this
 *    rule, so a window 22:00-01:30 on a fall-back night closes at the first
 *    01:30 and does not reopen during the repeated hour (never sends in
 *    quiet time), and a window that lies wholly inside a gap does not open
 *    that day. Between its edges a window is open in real time: 01:30-02:30
 *    on a New York fall-back day opens at 01:30 EDT and closes at 02:30 EST,
 *    two real hours, without a pause in the repeated hour.
 *  - every local date D owns the instants [midnight(D), midnight(D+1)); the
 *    weekday mask and the holidays are judged by that date. A window that
 *    crosses midnight (22:00-06:00) is, on each allowed date, the two parts
 *    00:00-06:00 and 22:00-24:00 of that date: with Mon-Fri allowed, Friday
 *    22:00 to Saturday 00:00 is open, Saturday 00:00-06:00 is not.
 *
 * Not thread-safe (the zone cache is a static table): use from one thread.
 */
#ifndef GW_SCHED_WINDOW_H
#define GW_SCHED_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#define WINDOW_DAY_MINUTES  1440
#define WINDOW_SEARCH_DAYS  400 /* how far ahead a next-open search looks */
#define WINDOW_MAX_HOLIDAYS 4096
#define WINDOW_ZONE_MAX     64 /* longest zone name accepted, without NUL */

/* Weekday bits of struct window.days; Monday first. */
enum {
    WINDOW_MON = 1 << 0,
    WINDOW_TUE = 1 << 1,
    WINDOW_WED = 1 << 2,
    WINDOW_THU = 1 << 3,
    WINDOW_FRI = 1 << 4,
    WINDOW_SAT = 1 << 5,
    WINDOW_SUN = 1 << 6,
    WINDOW_WEEKDAYS = 0x1f,
    WINDOW_ALL_DAYS = 0x7f,
};

/*
 * A policy. start/end are minutes after local midnight: start 0..1439,
 * end 1..1440; start < end is a same-day window, start > end crosses
 * midnight, start 0 and end 1440 is "always"; start == end is never open.
 * Holidays are local dates as day numbers (days since 1970-01-01), sorted
 * and unique; the window owns that array (window_clear frees it).
 */
struct window {
    int start;
    int end;
    unsigned days;     /* WINDOW_MON | ...; 0 = never open */
    int64_t *holidays; /* owned, sorted, unique */
    size_t nholidays;
    size_t capholidays;
};

/* Always open, every day, no holidays. */
void window_init(struct window *w);
/* Free the holiday list; w is then as after window_init. NULL is fine. */
void window_clear(struct window *w);

/*
 * Parsers. Each returns 0, or GW_EPARSE / GW_EINVAL / -ENOMEM with a
 * message in err (when err is not NULL; errlen bytes, NUL-terminated).
 * Strings are borrowed.
 */
/* "08:00", "8:00", "24:00" (the end of the day) -> minutes 0..1440. */
int window_parse_time(const char *s, int *minutes, char *err, size_t errlen);
/* "mon".."sun" or "monday".."sunday", any case -> one WINDOW_* bit. */
int window_parse_weekday(const char *s, unsigned *bit, char *err,
                         size_t errlen);
/* "YYYY-MM-DD" (a real calendar date, years 1000-9999) -> day number. */
int window_parse_date(const char *s, int64_t *day, char *err, size_t errlen);

/* Hours from two times: ("08:00", "21:00"), ("22:00", "06:00") crosses
 * midnight, ("00:00", "24:00") is always. Equal times are refused. */
int window_set_hours(struct window *w, const char *start, const char *end,
                     char *err, size_t errlen);
/* Hours from one string: "08:00-21:00", "22:00-06:00" or "always". */
int window_parse_hours(struct window *w, const char *spec, char *err,
                       size_t errlen);
/* Allowed weekdays from names (see window_parse_weekday) and the groups
 * "weekdays" (Mon-Fri), "weekend" (Sat, Sun) and "all". n == 0 refuses:
 * a window that is never open is almost surely a configuration mistake. */
int window_set_days(struct window *w, const char *const *names, size_t n,
                    char *err, size_t errlen);
/* Add one holiday "YYYY-MM-DD" (kept sorted; a repeat is ignored). */
int window_add_holiday(struct window *w, const char *date, char *err,
                       size_t errlen);

/*
 * The earliest instant >= now at which w is open in tz (now itself if it
 * is open now); -1 if it does not open within WINDOW_SEARCH_DAYS local
 * days (no weekday allowed, start == end, everything a holiday). tz is
 * borrowed.
 */
int64_t window_next_open(const struct window *w, GTimeZone *tz, int64_t now);
/* 1 if w is open at t in tz, else 0. */
int window_is_open(const struct window *w, GTimeZone *tz, int64_t t);
/* The first instant > t at which w, open at t, closes; -1 if it stays
 * open past the search bound (always, every day); t itself if closed. */
int64_t window_next_close(const struct window *w, GTimeZone *tz, int64_t t);

/*
 * The earliest instant >= now at which every one of ws[0..n) is open in
 * tz (a campaign's window and its class policy, say); -1 if there is none
 * within WINDOW_SEARCH_DAYS days of now. n == 0 returns now. Borrowed.
 */
int64_t window_next_open_all(const struct window *const *ws, size_t n,
                             GTimeZone *tz, int64_t now);
/*
 * The most restrictive reading of w across zones (used when a recipient's
 * zone is unknown and no default zone is configured): the earliest instant
 * >= now at which w is open in every one of zones[0..n); -1 if none
 * within WINDOW_SEARCH_DAYS days. n == 0 returns now. Borrowed.
 */
int64_t window_next_open_zones(const struct window *w, GTimeZone *const *zones,
                               size_t n, int64_t now);

/*
 * A zone by IANA name ("Europe/Berlin", "UTC"): a new reference the caller
 * releases with g_time_zone_unref(), or NULL if the name is malformed
 * (characters other than letters, digits, '_', '-', '+' and '/', a part
 * that does not start with a letter, too long) or names no TZif file of the
 * system tzdata ($TZDIR, else /usr/share/zoneinfo). POSIX TZ strings
 * ("EST5", "CET-1CEST,...") and offsets ("+05:30") are refused here, so
 * a typo never silently becomes a fixed offset. Answers (unknown names
 * too) are cached by name; window_zone_cache_clear() drops the cache.
 */
GTimeZone *window_zone(const char *name);
void window_zone_cache_clear(void);

/*
 * Calendar helpers (proleptic Gregorian), shared with remind.c.
 * Day numbers count days since 1970-01-01.
 */
int64_t window_days_from_civil(int y, int m, int d);
void window_civil_from_days(int64_t day, int *y, int *m, int *d);
/* 0 = Monday .. 6 = Sunday. */
int window_weekday(int64_t day);
int window_is_leap(int y);
int window_month_days(int y, int m);
/* UTC offset of tz at instant t, in seconds. tz borrowed. */
int32_t window_utc_offset(GTimeZone *tz, int64_t t);
/* The local date of instant t in tz; *sec (if not NULL) gets the local
 * seconds after midnight, 0..86399. */
int64_t window_local_day(GTimeZone *tz, int64_t t, int *sec);
/* The instant of local wall time (day, sec) in tz, sec 0..86400: the first
 * instant whose wall clock reads that time or later (see the top). */
int64_t window_local_time(GTimeZone *tz, int64_t day, int sec);

#endif

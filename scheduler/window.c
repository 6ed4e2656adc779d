/*
 * window.c -- send windows (quiet hours): parsing, the segments a window
 * is open on each local date, next-open searches (one window, the
 * intersection of several, one window across several zones) and zone
 * lookup with a small cache. Offsets come from GLib's GTimeZone (system
 * tzdata); the calendar maths is ours, so no GDateTime is allocated.
 */
#include "scheduler/window.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define DAY_S            86400
#define ZONE_CACHE_SLOTS 32
#define ALL_MAX_STEPS    100000 /* bound on next_open_all's advances */

/* Write a message into err, if there is one. */
static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Floor division for a positive divisor. */
static int64_t
floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if ((a % b) != 0 && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* Days since 1970-01-01 of y-m-d (H. Hinnant's days_from_civil). */
int64_t
window_days_from_civil(int y, int m, int d)
{
    int64_t yy = (int64_t)y - (m <= 2);
    int64_t era = floordiv(yy, 400);
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}

/* The y-m-d of a day number (H. Hinnant's civil_from_days). */
void
window_civil_from_days(int64_t day, int *y, int *m, int *d)
{
    int64_t z = day + 719468;
    int64_t era = floordiv(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t dd = doy - (153 * mp + 2) / 5 + 1;
    int64_t mm = mp < 10 ? mp + 3 : mp - 9;

    *y = (int)(yoe + era * 400 + (mm <= 2));
    *m = (int)mm;
    *d = (int)dd;
}

/* 0 = Monday; 1970-01-01 was a Thursday. */
int
window_weekday(int64_t day)
{
    return (int)(day + 3 - floordiv(day + 3, 7) * 7);
}

/* 1 if y is a leap year. */
int
window_is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days in month m of year y. */
int
window_month_days(int y, int m)
{
    static const int n[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    if (m < 1 || m > 12)
        return 0;
    return m == 2 && window_is_leap(y) ? 29 : n[m - 1];
}

/* UTC offset at instant t; the UNIVERSAL lookup always finds an interval. */
int32_t
window_utc_offset(GTimeZone *tz, int64_t t)
{
    gint i = g_time_zone_find_interval(tz, G_TIME_TYPE_UNIVERSAL, t);

    return g_time_zone_get_offset(tz, i);
}

/* The local date (and seconds after midnight) of instant t. */
int64_t
window_local_day(GTimeZone *tz, int64_t t, int *sec)
{
    int64_t wall = t + window_utc_offset(tz, t);
    int64_t day = floordiv(wall, DAY_S);

    if (sec != NULL)
        *sec = (int)(wall - day * DAY_S);
    return day;
}

/*
 * The first instant whose wall clock reads (day, sec) or later. The
 * offsets a day before and a day after are the candidates; a candidate is
 * real if the zone has that offset at it. Both real: an overlap, take the
 * earlier. Neither: a gap, whose end (the transition) is found by
 * bisection, the wall clock being t + offset(t) on either side.
 */
int64_t
window_local_time(GTimeZone *tz, int64_t day, int sec)
{
    int64_t wall = day * DAY_S + sec;
    int32_t ob = window_utc_offset(tz, wall - DAY_S);
    int32_t oa = window_utc_offset(tz, wall + DAY_S);
    int64_t tb = wall - ob, ta = wall - oa;
    int vb = window_utc_offset(tz, tb) == ob;
    int va = window_utc_offset(tz, ta) == oa;
    int64_t lo, hi;

    if (vb && va)
        return tb < ta ? tb : ta;
    if (vb)
        return tb;
    if (va)
        return ta;
    /* a gap: the wall clock is below `wall` at lo and at or above it at hi */
    lo = tb < ta ? tb : ta;
    hi = tb < ta ? ta : tb;
    if (hi + window_utc_offset(tz, hi) < wall)
        return hi; /* more than one transition around here: give up nicely */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;

        if (mid + window_utc_offset(tz, mid) >= wall)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

/* Two decimal digits at s, or -1. */
static int
two_digits(const char *s)
{
    if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]))
        return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

int
window_parse_time(const char *s, int *minutes, char *err, size_t errlen)
{
    int h, m;
    const char *p = s;

    if (s == NULL) {
        seterr(err, errlen, "missing time (want HH:MM)");
        return GW_EPARSE;
    }
    if (isdigit((unsigned char)p[0]) && p[1] == ':') {
        h = p[0] - '0';
        p += 2;
    } else if ((h = two_digits(p)) >= 0 && p[2] == ':') {
        p += 3;
    } else {
        seterr(err, errlen, "bad time \"%.32s\" (want HH:MM)", s);
        return GW_EPARSE;
    }
    if ((m = two_digits(p)) < 0 || p[2] != '\0') {
        seterr(err, errlen, "bad time \"%.32s\" (want HH:MM)", s);
        return GW_EPARSE;
    }
    if (h > 24 || m > 59 || (h == 24 && m != 0)) {
        seterr(err, errlen, "time \"%.32s\" out of range (00:00-24:00)", s);
        return GW_EPARSE;
    }
    *minutes = h * 60 + m;
    return 0;
}

static const char *const wday_names[7] = {
    "monday", "tuesday",  "wednesday", "thursday",
    "friday", "saturday", "sunday",
};

int
window_parse_weekday(const char *s, unsigned *bit, char *err, size_t errlen)
{
    char low[16];
    size_t len = s != NULL ? strlen(s) : 0;

    if (len >= 3 && len < sizeof low) {
        for (size_t i = 0; i <= len; i++)
            low[i] = (char)tolower((unsigned char)s[i]);
        for (int d = 0; d < 7; d++) {
            if ((len == 3 && strncmp(low, wday_names[d], 3) == 0) ||
                strcmp(low, wday_names[d]) == 0) {
                *bit = 1u << d;
                return 0;
            }
        }
    }
    seterr(err, errlen, "unknown weekday \"%.32s\" (want mon..sun)",
           s != NULL ? s : "");
    return GW_EPARSE;
}

int
window_parse_date(const char *s, int64_t *day, char *err, size_t errlen)
{
    int y1, y2, m, d;

    if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-' ||
        (y1 = two_digits(s)) < 0 || (y2 = two_digits(s + 2)) < 0 ||
        (m = two_digits(s + 5)) < 0 || (d = two_digits(s + 8)) < 0) {
        seterr(err, errlen, "bad date \"%.32s\" (want YYYY-MM-DD)",
               s != NULL ? s : "");
        return GW_EPARSE;
    }
    if (y1 < 10 || m < 1 || m > 12 || d < 1 ||
        d > window_month_days(y1 * 100 + y2, m)) {
        seterr(err, errlen, "no such date \"%.32s\"", s);
        return GW_EPARSE;
    }
    *day = window_days_from_civil(y1 * 100 + y2, m, d);
    return 0;
}

void
window_init(struct window *w)
{
    w->start = 0;
    w->end = WINDOW_DAY_MINUTES;
    w->days = WINDOW_ALL_DAYS;
    w->holidays = NULL;
    w->nholidays = 0;
    w->capholidays = 0;
}

void
window_clear(struct window *w)
{
    if (w == NULL)
        return;
    free(w->holidays);
    window_init(w);
}

int
window_set_hours(struct window *w, const char *start, const char *end,
                 char *err, size_t errlen)
{
    int s, e, rc;

    if ((rc = window_parse_time(start, &s, err, errlen)) < 0 ||
        (rc = window_parse_time(end, &e, err, errlen)) < 0)
        return rc;
    if (s == WINDOW_DAY_MINUTES) {
        seterr(err, errlen, "a window cannot start at 24:00");
        return GW_EINVAL;
    }
    if (e == 0)
        e = WINDOW_DAY_MINUTES; /* "22:00"-"00:00" ends at midnight */
    if (s == e) {
        seterr(err, errlen,
               "empty window %s-%s (for all day use "
               "00:00-24:00 or \"always\")",
               start, end);
        return GW_EINVAL;
    }
    w->start = s;
    w->end = e;
    return 0;
}

int
window_parse_hours(struct window *w, const char *spec, char *err, size_t errlen)
{
    char a[8], b[8];
    const char *dash;

    if (spec != NULL && strcmp(spec, "always") == 0) {
        w->start = 0;
        w->end = WINDOW_DAY_MINUTES;
        return 0;
    }
    if (spec == NULL || (dash = strchr(spec, '-')) == NULL ||
        (size_t)(dash - spec) >= sizeof a || strlen(dash + 1) >= sizeof b) {
        seterr(err, errlen,
               "bad hours \"%.32s\" (want HH:MM-HH:MM or "
               "always)",
               spec != NULL ? spec : "");
        return GW_EPARSE;
    }
    memcpy(a, spec, (size_t)(dash - spec));
    a[dash - spec] = '\0';
    strcpy(b, dash + 1);
    return window_set_hours(w, a, b, err, errlen);
}

int
window_set_days(struct window *w, const char *const *names, size_t n, char *err,
                size_t errlen)
{
    unsigned mask = 0, bit;
    int rc;

    if (n == 0) {
        seterr(err, errlen, "no weekday allowed: the window never opens");
        return GW_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = names[i];

        if (s != NULL && g_ascii_strcasecmp(s, "weekdays") == 0)
            mask |= WINDOW_WEEKDAYS;
        else if (s != NULL && g_ascii_strcasecmp(s, "weekend") == 0)
            mask |= WINDOW_SAT | WINDOW_SUN;
        else if (s != NULL && g_ascii_strcasecmp(s, "all") == 0)
            mask |= WINDOW_ALL_DAYS;
        else if ((rc = window_parse_weekday(s, &bit, err, errlen)) < 0)
            return rc;
        else
            mask |= bit;
    }
    w->days = mask;
    return 0;
}

/* Index of the first holiday >= day. */
static size_t
holiday_lower(const struct window *w, int64_t day)
{
    size_t lo = 0, hi = w->nholidays;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (w->holidays[mid] < day)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int
window_add_holiday(struct window *w, const char *date, char *err, size_t errlen)
{
    int64_t day;
    size_t at;
    int rc;

    if ((rc = window_parse_date(date, &day, err, errlen)) < 0)
        return rc;
    at = holiday_lower(w, day);
    if (at < w->nholidays && w->holidays[at] == day)
        return 0;
    if (w->nholidays >= WINDOW_MAX_HOLIDAYS) {
        seterr(err, errlen, "more than %d holidays", WINDOW_MAX_HOLIDAYS);
        return GW_ETOOBIG;
    }
    if (w->nholidays == w->capholidays) {
        size_t cap = w->capholidays ? w->capholidays * 2 : 16;
        int64_t *p = realloc(w->holidays, cap * sizeof *p);

        if (p == NULL) {
            seterr(err, errlen, "out of memory");
            return -ENOMEM;
        }
        w->holidays = p;
        w->capholidays = cap;
    }
    memmove(w->holidays + at + 1, w->holidays + at,
            (w->nholidays - at) * sizeof *w->holidays);
    w->holidays[at] = day;
    w->nholidays++;
    return 0;
}

/* 1 if sending is allowed at all on local date day. */
static int
day_allowed(const struct window *w, int64_t day)
{
    size_t at;

    if (!(w->days & (1u << window_weekday(day))))
        return 0;
    at = holiday_lower(w, day);
    return !(at < w->nholidays && w->holidays[at] == day);
}

/* The open segments [seg[i][0], seg[i][1]) of an allowed date, in order;
 * returns how many (0..2). Segments may be empty inside a DST gap. */
static int
day_segments(const struct window *w, GTimeZone *tz, int64_t day,
             int64_t seg[2][2])
{
    int64_t m0 = window_local_time(tz, day, 0);
    int64_t m1 = window_local_time(tz, day + 1, 0);
    int s = w->start * 60, e = w->end * 60;

    if (w->start < w->end) {
        seg[0][0] = s == 0 ? m0 : window_local_time(tz, day, s);
        seg[0][1] = e == DAY_S ? m1 : window_local_time(tz, day, e);
        return 1;
    }
    seg[0][0] = m0;
    seg[0][1] = window_local_time(tz, day, e);
    seg[1][0] = window_local_time(tz, day, s);
    seg[1][1] = m1;
    return 2;
}

/* 1 if w can ever be open (some weekday, a non-empty time range). */
static int
can_open(const struct window *w)
{
    return (w->days & WINDOW_ALL_DAYS) != 0 && w->start != w->end &&
           w->start >= 0 && w->start < WINDOW_DAY_MINUTES && w->end > 0 &&
           w->end <= WINDOW_DAY_MINUTES;
}

int64_t
window_next_open(const struct window *w, GTimeZone *tz, int64_t now)
{
    int64_t first, seg[2][2];

    if (!can_open(w))
        return -1;
    /* a date owns [midnight, next midnight); the date before now's wall
     * date may still own now after a fall-back across midnight */
    first = window_local_day(tz, now, NULL) - 1;
    for (int64_t day = first; day <= first + WINDOW_SEARCH_DAYS; day++) {
        int k;

        if (!day_allowed(w, day))
            continue;
        k = day_segments(w, tz, day, seg);
        for (int i = 0; i < k; i++)
            if (seg[i][0] < seg[i][1] && seg[i][1] > now)
                return seg[i][0] > now ? seg[i][0] : now;
    }
    return -1;
}

int
window_is_open(const struct window *w, GTimeZone *tz, int64_t t)
{
    return window_next_open(w, tz, t) == t;
}

int64_t
window_next_close(const struct window *w, GTimeZone *tz, int64_t t)
{
    int64_t first, end = -1, seg[2][2];

    if (!can_open(w))
        return t;
    /* find the segment holding t, then follow segments that start exactly
     * where the last one ended (midnight of an allowed next day) */
    first = window_local_day(tz, t, NULL) - 1;
    for (int64_t day = first; day <= first + WINDOW_SEARCH_DAYS; day++) {
        int k;

        if (!day_allowed(w, day)) {
            if (end >= 0)
                return end;
            continue;
        }
        k = day_segments(w, tz, day, seg);
        for (int i = 0; i < k; i++) {
            if (seg[i][0] >= seg[i][1])
                continue;
            if (end < 0) {
                if (seg[i][0] <= t && t < seg[i][1])
                    end = seg[i][1];
                else if (seg[i][0] > t)
                    return t; /* closed at t */
                continue;
            }
            if (seg[i][0] > end)
                return end;
            if (seg[i][1] > end)
                end = seg[i][1];
        }
    }
    return end >= 0 ? -1 : t;
}

/*
 * The earliest instant >= now at which window i is open in zone i for every
 * i < n; window i is ws[i] (or w1 when ws is NULL), zone i zs[i] (or z1).
 */
static int64_t
next_open_every(const struct window *const *ws, const struct window *w1,
                GTimeZone *const *zs, GTimeZone *z1, size_t n, int64_t now)
{
    int64_t t = now, limit = now + (int64_t)WINDOW_SEARCH_DAYS * DAY_S;
    long steps = 0;
    size_t agreed = 0, i = 0;

    /* advance t to each window's next opening in turn until n windows in
     * a row agree; no instant skipped over can be open in all of them */
    while (agreed < n) {
        int64_t u = window_next_open(ws ? ws[i] : w1, zs ? zs[i] : z1, t);

        if (u < 0 || u > limit || ++steps > ALL_MAX_STEPS)
            return -1;
        if (u == t) {
            agreed++;
        } else {
            t = u;
            agreed = 1;
        }
        i = (i + 1) % n;
    }
    return t;
}

int64_t
window_next_open_all(const struct window *const *ws, size_t n, GTimeZone *tz,
                     int64_t now)
{
    return next_open_every(ws, NULL, NULL, tz, n, now);
}

int64_t
window_next_open_zones(const struct window *w, GTimeZone *const *zones,
                       size_t n, int64_t now)
{
    return next_open_every(NULL, w, zones, NULL, n, now);
}

/* 1 if name looks like an IANA zone name: parts of [A-Za-z0-9_+-] that
 * start with a letter, separated by single '/'. */
static int
zone_name_ok(const char *name)
{
    size_t len = strlen(name);
    int part_start = 1;

    if (len == 0 || len > WINDOW_ZONE_MAX || strcmp(name, "localtime") == 0)
        return 0;
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;

        if (part_start) {
            if (!isalpha(c))
                return 0;
            part_start = 0;
        } else if (c == '/') {
            part_start = 1;
        } else if (!isalnum(c) && c != '_' && c != '-' && c != '+') {
            return 0;
        }
    }
    return !part_start;
}

/* 1 if the tzdata holds a TZif file by that name (so GLib will not fall
 * back to reading the name as a POSIX TZ string, nor choke on a table). */
static int
zone_file_ok(const char *name)
{
    const char *dir = getenv("TZDIR");
    char path[512], magic[4];
    FILE *f;
    int ok;

    if (dir == NULL || *dir == '\0')
        dir = "/usr/share/zoneinfo";
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return 0;
    if ((f = fopen(path, "rb")) == NULL)
        return 0;
    ok = fread(magic, 1, sizeof magic, f) == sizeof magic &&
         memcmp(magic, "TZif", 4) == 0;
    fclose(f);
    return ok;
}

/* The cache: names with their zone (NULL for a name known to be bad),
 * replaced round robin when full. */
static struct {
    char name[WINDOW_ZONE_MAX + 1];
    GTimeZone *tz;
    int used;
} zone_cache[ZONE_CACHE_SLOTS];
static size_t zone_cache_next;

GTimeZone *
window_zone(const char *name)
{
    GTimeZone *tz = NULL;
    size_t slot;

    if (name == NULL || strlen(name) > WINDOW_ZONE_MAX)
        return NULL;
    for (size_t i = 0; i < ZONE_CACHE_SLOTS; i++)
        if (zone_cache[i].used && strcmp(zone_cache[i].name, name) == 0)
            return zone_cache[i].tz ? g_time_zone_ref(zone_cache[i].tz) : NULL;
    if (zone_name_ok(name) && zone_file_ok(name))
        tz = g_time_zone_new_identifier(name);
    slot = zone_cache_next;
    zone_cache_next = (zone_cache_next + 1) % ZONE_CACHE_SLOTS;
    if (zone_cache[slot].tz != NULL)
        g_time_zone_unref(zone_cache[slot].tz);
    strcpy(zone_cache[slot].name, name);
    zone_cache[slot].tz = tz;
    zone_cache[slot].used = 1;
    return tz ? g_time_zone_ref(tz) : NULL;
}

void
window_zone_cache_clear(void)
{
    for (size_t i = 0; i < ZONE_CACHE_SLOTS; i++) {
        if (zone_cache[i].tz != NULL)
            g_time_zone_unref(zone_cache[i].tz);
        zone_cache[i].tz = NULL;
        zone_cache[i].used = 0;
        zone_cache[i].name[0] = '\0';
    }
    zone_cache_next = 0;
}

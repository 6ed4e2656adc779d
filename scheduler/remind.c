/*
 * remind.c -- reminder date maths: parse a rule's parts and a customer's
 * date value, find the next firing instant (local send time in a zone,
 * DST through window_local_time) and its period label. No clock is read:
 * now is passed in.
 */
#include "scheduler/remind.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "scheduler/window.h"

#define DAY_S     86400
#define GRACE_MAX (31 * DAY_S)

/* A parsed date value. */
struct dval {
    int has_year;
    int y, m, d;
    int has_time; /* inactivity: a time of day was given */
    int sec;      /* local seconds after midnight as written */
    int has_off;  /* an offset or Z was given */
    int off;      /* its seconds east of UTC */
};

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

/* n decimal digits at s, or -1. */
static int
digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

void
remind_rule_init(struct remind_rule *r)
{
    r->kind = REMIND_YEARLY;
    r->offset_days = 0;
    r->after_days = 0;
    r->send_min = 9 * 60;
    r->grace_s = REMIND_GRACE_DEFAULT;
}

static const char *const kind_names[] = { "yearly", "once", "inactivity" };

const char *
remind_kind_name(enum remind_kind kind)
{
    if ((unsigned)kind >= sizeof kind_names / sizeof kind_names[0])
        return "?";
    return kind_names[kind];
}

int
remind_parse_kind(const char *s, enum remind_kind *kind, char *err,
                  size_t errlen)
{
    for (size_t i = 0; s != NULL && i < sizeof kind_names / sizeof *kind_names;
         i++) {
        if (strcmp(s, kind_names[i]) == 0) {
            *kind = (enum remind_kind)i;
            return 0;
        }
    }
    seterr(err, errlen,
           "unknown reminder kind \"%.32s\" (want yearly, once "
           "or inactivity)",
           s != NULL ? s : "");
    return GW_EPARSE;
}

int
remind_parse_days(const char *s, int *days, char *err, size_t errlen)
{
    const char *p = s;
    int sign = 1;
    long v = 0;
    size_t nd = 0;

    if (p != NULL && (*p == '+' || *p == '-'))
        sign = *p++ == '-' ? -1 : 1;
    while (p != NULL && isdigit((unsigned char)*p) && nd < 7) {
        v = v * 10 + (*p++ - '0');
        nd++;
    }
    if (p == NULL || nd == 0 || p[0] != 'd' || p[1] != '\0') {
        seterr(err, errlen, "bad day count \"%.32s\" (want -30d, 0d, +7d)",
               s != NULL ? s : "");
        return GW_EPARSE;
    }
    if (v > REMIND_MAX_DAYS) {
        seterr(err, errlen, "day count \"%.32s\" out of range (at most %d)", s,
               REMIND_MAX_DAYS);
        return GW_EPARSE;
    }
    *days = (int)(sign * v);
    return 0;
}

int
remind_parse_time(const char *s, int *minutes, char *err, size_t errlen)
{
    int rc, m;

    if ((rc = window_parse_time(s, &m, err, errlen)) < 0)
        return rc;
    if (m >= WINDOW_DAY_MINUTES) {
        seterr(err, errlen, "send time \"%.32s\" out of range (00:00-23:59)",
               s);
        return GW_EPARSE;
    }
    *minutes = m;
    return 0;
}

/* "YYYY-MM-DD" at s (10 chars), calendar-checked. */
static int
parse_ymd(const char *s, struct dval *v)
{
    if ((v->y = digits(s, 4)) < 1000 || s[4] != '-' ||
        (v->m = digits(s + 5, 2)) < 1 || v->m > 12 || s[7] != '-' ||
        (v->d = digits(s + 8, 2)) < 1 || v->d > window_month_days(v->y, v->m))
        return -1;
    v->has_year = 1;
    return 0;
}

/* A yearly date: "1990-05-17", "--05-17" or "05-17". */
static int
parse_yearly(const char *s, struct dval *v)
{
    size_t len = strlen(s);

    memset(v, 0, sizeof *v);
    if (len == 10)
        return parse_ymd(s, v);
    if (len == 7 && s[0] == '-' && s[1] == '-')
        s += 2;
    else if (len != 5)
        return -1;
    if ((v->m = digits(s, 2)) < 1 || v->m > 12 || s[2] != '-' ||
        (v->d = digits(s + 3, 2)) < 1 || v->d > window_month_days(2000, v->m))
        return -1;
    return 0;
}

/* A date, optionally followed by a time and an offset:
 * "2026-01-15", "2026-01-15T10:20[:30[.123]]" then "Z", "+01:00", "+0100",
 * "+01" or nothing (local time). A space may replace the T. */
static int
parse_datetime(const char *s, struct dval *v)
{
    const char *p = s + 10;
    int h, mi, se = 0, sign, oh, om = 0;

    memset(v, 0, sizeof *v);
    if (strlen(s) < 10 || parse_ymd(s, v) < 0)
        return -1;
    if (*p == '\0')
        return 0;
    if ((*p != 'T' && *p != 't' && *p != ' ') || (h = digits(p + 1, 2)) < 0 ||
        h > 23 || p[3] != ':' || (mi = digits(p + 4, 2)) < 0 || mi > 59)
        return -1;
    p += 6;
    if (*p == ':') {
        if ((se = digits(p + 1, 2)) < 0 || se > 60)
            return -1;
        if (se == 60)
            se = 59; /* a leap second: close enough for a reminder */
        p += 3;
        if (*p == '.' || *p == ',') {
            if (!isdigit((unsigned char)p[1]))
                return -1;
            for (p++; isdigit((unsigned char)*p); p++)
                ;
        }
    }
    v->has_time = 1;
    v->sec = h * 3600 + mi * 60 + se;
    if (*p == '\0')
        return 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        v->has_off = 1;
        return 0;
    }
    if (*p != '+' && *p != '-')
        return -1;
    sign = *p == '-' ? -1 : 1;
    if ((oh = digits(p + 1, 2)) < 0 || oh > 23)
        return -1;
    p += 3;
    if (*p == ':')
        p++;
    if (*p != '\0') {
        if ((om = digits(p, 2)) < 0 || om > 59 || p[2] != '\0')
            return -1;
    }
    v->has_off = 1;
    v->off = sign * (oh * 3600 + om * 60);
    return 0;
}

/* Copy a label into period; GW_ETOOBIG if it does not fit. */
static int
put_period(char *period, size_t periodlen, char *err, size_t errlen,
           const char *fmt, ...)
{
    va_list ap;
    int n;

    if (period == NULL || periodlen == 0) {
        seterr(err, errlen, "no room for the period label");
        return GW_ETOOBIG;
    }
    va_start(ap, fmt);
    n = vsnprintf(period, periodlen, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= periodlen) {
        seterr(err, errlen, "period label needs %d bytes", n + 1);
        return GW_ETOOBIG;
    }
    return 0;
}

/* 1 if a firing at t is still to be done at now: not yet passed, or
 * passed less than the grace ago. */
static int
due(const struct remind_rule *r, int64_t t, int64_t now)
{
    return t >= now || now - t < r->grace_s;
}

/* The rule's fields in range. */
static int
rule_ok(const struct remind_rule *r, char *err, size_t errlen)
{
    if ((unsigned)r->kind > REMIND_INACTIVITY) {
        seterr(err, errlen, "bad reminder kind %d", (int)r->kind);
        return 0;
    }
    if (r->send_min < 0 || r->send_min >= WINDOW_DAY_MINUTES ||
        r->grace_s < 0 || r->grace_s > GRACE_MAX ||
        r->offset_days < -REMIND_MAX_DAYS || r->offset_days > REMIND_MAX_DAYS ||
        r->after_days < 0 || r->after_days > REMIND_MAX_DAYS ||
        (r->kind == REMIND_YEARLY && (r->offset_days < -REMIND_MAX_OFFSET ||
                                      r->offset_days > REMIND_MAX_OFFSET))) {
        seterr(err, errlen,
               "reminder rule out of range (send time, grace "
               "0-%d s, offset, days)",
               GRACE_MAX);
        return 0;
    }
    return 1;
}

/* Yearly: the first anniversary year whose firing is not too old. */
static int
next_yearly(const struct remind_rule *r, const struct dval *v, GTimeZone *tz,
            int64_t now, int64_t *fire_at, int *year)
{
    int y_now, mm, dd, y0;

    window_civil_from_days(window_local_day(tz, now, NULL), &y_now, &mm, &dd);
    y0 = y_now - 2;
    if (v->has_year && y0 < v->y + 1)
        y0 = v->y + 1;
    for (int y = y0; y <= y0 + 5 && y <= 9999; y++) {
        int d = v->m == 2 && v->d == 29 && !window_is_leap(y) ? 28 : v->d;
        int64_t day = window_days_from_civil(y, v->m, d) + r->offset_days;
        int64_t t = window_local_time(tz, day, r->send_min * 60);

        if (due(r, t, now)) {
            *fire_at = t;
            *year = y;
            return 1;
        }
    }
    return 0;
}

int
remind_next(const struct remind_rule *r, const char *date_value, GTimeZone *tz,
            int64_t now, int64_t *fire_at, char *period, size_t periodlen,
            char *err, size_t errlen)
{
    struct dval v;
    int64_t day, t;
    int rc, year;

    if (r == NULL || tz == NULL || fire_at == NULL) {
        seterr(err, errlen, "no rule, zone or result");
        return GW_EINVAL;
    }
    if (!rule_ok(r, err, errlen))
        return GW_EINVAL;
    if (date_value == NULL || strlen(date_value) > 64) {
        seterr(err, errlen, "missing or overlong date for a %s reminder",
               remind_kind_name(r->kind));
        return GW_EPARSE;
    }
    switch (r->kind) {
    case REMIND_YEARLY:
        if (parse_yearly(date_value, &v) < 0) {
            seterr(err, errlen,
                   "bad date \"%s\" for a yearly reminder (want "
                   "YYYY-MM-DD, --MM-DD or MM-DD)",
                   date_value);
            return GW_EPARSE;
        }
        if (!next_yearly(r, &v, tz, now, fire_at, &year))
            return 0; /* a birth year beyond 9998 */
        if ((rc = put_period(period, periodlen, err, errlen, "%04d", year)) < 0)
            return rc;
        return 1;
    case REMIND_ONCE:
        memset(&v, 0, sizeof v);
        if (strlen(date_value) != 10 || parse_ymd(date_value, &v) < 0) {
            seterr(err, errlen,
                   "bad date \"%s\" for a once reminder (want "
                   "YYYY-MM-DD)",
                   date_value);
            return GW_EPARSE;
        }
        day = window_days_from_civil(v.y, v.m, v.d) + r->offset_days;
        t = window_local_time(tz, day, r->send_min * 60);
        if (!due(r, t, now))
            return 0;
        if ((rc = put_period(period, periodlen, err, errlen, "%04d-%02d-%02d",
                             v.y, v.m, v.d)) < 0)
            return rc;
        *fire_at = t;
        return 1;
    case REMIND_INACTIVITY:
        if (parse_datetime(date_value, &v) < 0) {
            seterr(err, errlen,
                   "bad last purchase \"%s\" (want YYYY-MM-DD "
                   "or YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM])",
                   date_value);
            return GW_EPARSE;
        }
        day = window_days_from_civil(v.y, v.m, v.d);
        if (v.has_off) {
            /* an instant: its local date in tz, labelled in UTC */
            int64_t at = day * DAY_S + v.sec - v.off;
            int64_t uday = at >= 0 ? at / DAY_S : -((-at + DAY_S - 1) / DAY_S);
            int usec = (int)(at - uday * DAY_S);
            int y, m, d;

            day = window_local_day(tz, at, NULL);
            window_civil_from_days(uday, &y, &m, &d);
            rc = put_period(period, periodlen, err, errlen,
                            "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d,
                            usec / 3600, usec % 3600 / 60, usec % 60);
        } else if (v.has_time) {
            rc = put_period(period, periodlen, err, errlen,
                            "%04d-%02d-%02dT%02d:%02d:%02d", v.y, v.m, v.d,
                            v.sec / 3600, v.sec % 3600 / 60, v.sec % 60);
        } else {
            rc = put_period(period, periodlen, err, errlen, "%04d-%02d-%02d",
                            v.y, v.m, v.d);
        }
        if (rc < 0)
            return rc;
        day += r->after_days + r->offset_days;
        t = window_local_time(tz, day, r->send_min * 60);
        if (!due(r, t, now))
            return 0;
        *fire_at = t;
        return 1;
    }
    seterr(err, errlen, "bad reminder kind");
    return GW_EINVAL;
}

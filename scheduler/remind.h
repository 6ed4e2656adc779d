/*
 * remind.h -- reminder date maths: from a rule (yearly anniversary, a
 * one-off date, inactivity since a last purchase), a customer's date
 * value, a zone and the time now, the next instant a reminder fires and a
 * period label that makes (rule, customer, period) unique, so a reminder
 * is sent once per period however often it is computed.
 *
 * Choices:
 *  - Feb 29 anniversaries fall on Feb 28 in non-leap years (the reminder
 *    stays in the customer's own month, and "-7d" means a week before the
 *    28th). A year-bearing Feb 29 must be a leap year ("1990-02-29" is
 *    malformed).
 *  - The period of a yearly rule is the year of the anniversary being
 *    reminded about: "-30d" before 2027-01-10 fires on 2026-12-11 with
 *    period "2027". With a year in the date ("1990-05-17"), only later
 *    years count (the birth date itself is not an anniversary).
 *  - Grace: a firing whose instant passed less than grace_s ago is still
 *    returned (with its own instant, < now: fire it now) instead of moving
 *    on to the next period, so an hour's outage does not skip a year. One
 *    missed by grace_s or more is skipped: the next period for yearly
 *    rules, nothing (0) for once and inactivity rules.
 *  - The send time is local wall time in the given zone; a time that does
 *    not exist on the day (02:30 on a spring-forward day) fires at the end
 *    of the gap (03:00), a repeated one at its first occurrence (see
 *    window.h, window_local_time).
 *  - Inactivity fires on the local date of the last purchase plus
 *    after_days (plus offset_days) at the send time, not after_days * 24 h
 *    to the second.
 */
#ifndef GW_SCHED_REMIND_H
#define GW_SCHED_REMIND_H

#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#define REMIND_PERIOD_MAX    32    /* a period label fits in this, with NUL */
#define REMIND_MAX_OFFSET    366   /* |offset_days| of a yearly rule */
#define REMIND_MAX_DAYS      36600 /* |days| any rule field accepts */
#define REMIND_GRACE_DEFAULT (6 * 3600)

enum remind_kind {
    REMIND_YEARLY,     /* date "1990-05-17", "--05-17" or "05-17" */
    REMIND_ONCE,       /* date "2027-03-01" */
    REMIND_INACTIVITY, /* last purchase "2026-01-15" or an ISO 8601 time */
};

struct remind_rule {
    enum remind_kind kind;
    int offset_days; /* added to the anchor date: -30, -7, 0, +7 */
    int after_days;  /* INACTIVITY: days after the last purchase */
    int send_min;    /* local send time, minutes after midnight, < 1440 */
    int64_t grace_s; /* a firing missed by less than this still fires */
};

/* Yearly, offset 0, 09:00, after_days 0, grace REMIND_GRACE_DEFAULT. */
void remind_rule_init(struct remind_rule *r);

/*
 * Parsers: 0, or GW_EPARSE with a message in err (if not NULL). Borrowed.
 */
/* "yearly" | "once" | "inactivity". */
int remind_parse_kind(const char *s, enum remind_kind *kind, char *err,
                      size_t errlen);
/* "-30d", "0d", "+7d", "90d" -> days, |days| <= REMIND_MAX_DAYS. */
int remind_parse_days(const char *s, int *days, char *err, size_t errlen);
/* "09:30" -> minutes 0..1439 (24:00 is refused for a send time). */
int remind_parse_time(const char *s, int *minutes, char *err, size_t errlen);
/* The kind's name ("yearly", ...). */
const char *remind_kind_name(enum remind_kind kind);

/*
 * The next firing of rule r for a customer whose date field holds
 * date_value, with the send time in tz (the recipient's zone, else the
 * configured default), at time now (unix seconds).
 *
 * Returns 1 with *fire_at = the first firing instant not yet past or past
 * by less than r->grace_s (so it is < now when the firing was missed
 * within the grace: fire it now) and period = its label: the anniversary's year ("2027") for yearly,
 * the date ("2027-03-01") for once, the normalised last purchase for
 * inactivity ("2026-01-15", or "2026-01-15T09:20:00Z" for a date-time
 * given with or without an offset), so a newer purchase is a new period.
 * Returns 0 when there is nothing left to fire (a once or inactivity
 * firing grace_s or more in the past). Returns GW_EPARSE for a
 * malformed date_value, GW_EINVAL for a bad rule or NULL tz, GW_ETOOBIG if
 * period (periodlen bytes) is too small (REMIND_PERIOD_MAX is enough);
 * err (if not NULL) then says why. Everything is borrowed.
 */
int remind_next(const struct remind_rule *r, const char *date_value,
                GTimeZone *tz, int64_t now, int64_t *fire_at, char *period,
                size_t periodlen, char *err, size_t errlen);

#endif

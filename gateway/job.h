/*
 * job.h -- jobs from the queue (DESIGN.md section 3): parse the JSON of one
 * gw:jobs entry and check every field, so that a bad job is rejected with
 * a reason naming the field before anything is written. Pure functions: no
 * Redis, no loop; the intake decides what to do with the result.
 */
#ifndef GW_JOB_H
#define GW_JOB_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum job_type { JOB_CAMPAIGN, JOB_MESSAGE, JOB_CONTROL, JOB_CUSTOMER,
                JOB_CONVERSION, JOB_INVALID };
enum control_action { CTL_PAUSE, CTL_RESUME, CTL_CANCEL };

/* Why a job went to gw:dead: the metric label (bounded set). */
enum dead_class {
    DEAD_JSON,          /* not JSON, duplicate keys, not an object */
    DEAD_FIELD,         /* a field missing, mistyped or invalid */
    DEAD_UNSUPPORTED,   /* a job type this gateway does not handle */
    DEAD_TOO_LARGE,
    DEAD_RECIPIENT,     /* one audience recipient rejected */
    DEAD_DELIVERIES,    /* delivered max_deliveries times, no outcome */
    DEAD_TEMPLATE,      /* its template is missing or broken */
    DEAD_COUNT
};

struct job {
    enum job_type   type;
    json_t         *root;       /* owned */
    const char     *id;         /* the rest borrow from root */
    enum gw_channel channel;
    const char     *provider;   /* resolved: the job's or the default */
    const char     *template;
    const char     *class;      /* "marketing" | "transactional" */
    int             smart_encoding; /* -1 unset, 0, 1 */
    int64_t         send_at_ms; /* 0 = now */
    int64_t         expires_ms; /* 0 = none */
    /* campaign */
    const char     *audience_key;
    json_t         *recipients; /* inline array, or NULL */
    json_t         *vars;       /* campaign (or message) vars, or NULL */
    /* message */
    json_t         *recipient;
    /* customer: recipient (the customer without dates) and dates */
    json_t         *dates;      /* object of date strings, or NULL */
    /* conversion */
    double          amount;
    int64_t         at_ms;      /* 0: now */
    /* control */
    const char     *campaign;
    enum control_action action;
};

#define JOB_REASON_MAX 256

/* Parse and check one job. On success *out is new (job_free). On failure
 * returns GW_EINVAL, *cls says the class and reason names the field. conf
 * is borrowed (providers, channel defaults, limits). */
int job_parse(struct job **out, const char *json, size_t len,
              const struct config *conf, enum dead_class *cls,
              char reason[JOB_REASON_MAX]);
void job_free(struct job *j);

/* Check one recipient object for channel ch; path prefixes the reason
 * ("recipient", "recipients[3]"). 0 or GW_EINVAL. */
int job_check_recipient(const json_t *r, enum gw_channel ch, const char *path,
                        char reason[JOB_REASON_MAX]);

/* The key of a campaign message: "<campaign>:<customer>:<channel>" (a
 * triggered message's key is its job id). Campaign ids cannot hold ':'. */
int job_msg_key(char *out, size_t outlen, const char *campaign,
                const char *customer, enum gw_channel ch);

int job_email_valid(const char *s);
/* A conversion (job or POST /api/conversions body): id, customer_id,
 * amount >= 0, currency (the [price] one), optional at. */
int job_check_conversion(const json_t *o, const struct config *conf,
                         double *amount, int64_t *at_ms,
                         char reason[JOB_REASON_MAX]);
/* A customer date field: YYYY-MM-DD, --MM-DD or RFC 3339. */
int job_date_valid(const char *s);
int job_e164_valid(const char *s);
/* RFC 3339 date-time with offset, or local "YYYY-MM-DDTHH:MM:SS" read in
 * time zone tz (IANA name; NULL = UTC). Milliseconds since the epoch in
 * *ms; 0 or GW_EINVAL. */
int job_time_parse(const char *s, const char *tz, int64_t *ms);

const char *dead_class_name(enum dead_class c);

#endif

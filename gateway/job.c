/*
 * job.c -- parse and check queue jobs (see job.h). Every rejection names
 * the field, so a marketer reading gw:dead knows what to fix.
 */
#include "job.h"

#include "../common/err.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <glib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ID_MAX 200

static const char *const dead_names[DEAD_COUNT] = {
    "json", "field", "unsupported", "too_large", "recipient", "deliveries",
    "template"
};

const char *
dead_class_name(enum dead_class c)
{
    return (unsigned)c < DEAD_COUNT ? dead_names[c] : "other";
}

/* Reasons quote user data: control characters are escaped so that a
 * hostile value cannot forge log lines or fields where a reason is shown. */
static int
why(char reason[JOB_REASON_MAX], const char *fmt, ...)
{
    char raw[JOB_REASON_MAX];
    size_t o = 0;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    for (const unsigned char *p = (const unsigned char *)raw;
         *p && o + 5 < JOB_REASON_MAX; p++) {
        if (*p < 0x20 || *p == 0x7f)
            o += (size_t)snprintf(reason + o, JOB_REASON_MAX - o, "\\x%02x",
                                  *p);
        else
            reason[o++] = (char)*p;
    }
    reason[o] = 0;
    return GW_EINVAL;
}

/* A printable identifier: 1..max bytes of valid UTF-8, no controls. */
static int
ident_ok(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max || !g_utf8_validate(s, (gssize)n, NULL))
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

/* An IANA zone name such as "America/Argentina/Buenos_Aires" or "UTC".
 * GLib would also take a file path or a POSIX TZ string, and a job must
 * not make the daemon open files of its choosing. */
static int
tz_name_ok(const char *s)
{
    size_t part = 0, n = strlen(s);

    if (n == 0 || n > 64 || s[0] == '/' || s[n - 1] == '/')
        return 0;
    for (; *s; s++) {
        if (*s == '/') {
            if (part == 0)
                return 0;
            part = 0;
            continue;
        }
        if (!isalnum((unsigned char)*s) && !strchr("_+-", *s))
            return 0;
        if (part == 0 && !isalpha((unsigned char)*s))
            return 0;           /* no "..", no "+05:00" */
        part++;
    }
    return 1;
}

int
job_email_valid(const char *s)
{
    const char *at = strrchr(s, '@'), *p;
    size_t local, total = strlen(s), label = 0;

    if (!at || total > 254)
        return 0;
    local = (size_t)(at - s);
    if (local == 0 || local > 64 || s[0] == '.' || at[-1] == '.')
        return 0;
    /* dot-atom local part only: quoted local parts are legal but are how
     * header and command injection slips through, so we refuse them. */
    for (p = s; p < at; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '.' && p[1] == '.')
            return 0;
        if (!(isalnum(c) || strchr("!#$%&'*+/=?^_`{|}~.-", c)))
            return 0;
    }
    p = at + 1;
    if (!*p || *p == '.' || !strchr(p, '.'))
        return 0;
    for (; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '.') {
            if (label == 0 || p[-1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!(isalnum(c) || c == '-') || (label == 0 && c == '-'))
            return 0;
        if (++label > 63)
            return 0;
    }
    return label > 0 && p[-1] != '-';
}

int
job_e164_valid(const char *s)
{
    size_t n;

    if (s[0] != '+' || s[1] < '1' || s[1] > '9')
        return 0;
    for (n = 0, s++; *s; s++, n++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return n >= 7 && n <= 15;
}

int
job_time_parse(const char *s, const char *tz, int64_t *ms)
{
    GTimeZone *zone;
    GDateTime *dt;
    size_t n = strlen(s);

    /* GLib accepts more ISO 8601 shapes than we promise; insist on
     * YYYY-MM-DDTHH:MM:SS first. */
    if (n < 19 || n > 35)
        return GW_EINVAL;
    for (int i = 0; i < 19; i++) {
        int digit = isdigit((unsigned char)s[i]);
        if ((i == 4 || i == 7) ? s[i] != '-' : i == 10 ? s[i] != 'T'
            : (i == 13 || i == 16) ? s[i] != ':' : !digit)
            return GW_EINVAL;
    }
    if (tz && !tz_name_ok(tz))
        return GW_EINVAL;
    zone = tz ? g_time_zone_new_identifier(tz) : g_time_zone_new_utc();
    if (!zone)
        return GW_EINVAL;
    dt = g_date_time_new_from_iso8601(s, zone);
    g_time_zone_unref(zone);
    if (!dt)
        return GW_EINVAL;
    *ms = g_date_time_to_unix(dt) * 1000 +
          g_date_time_get_microsecond(dt) / 1000;
    g_date_time_unref(dt);
    return 0;
}

int
job_msg_key(char *out, size_t outlen, const char *campaign,
            const char *customer, enum gw_channel ch)
{
    int n = snprintf(out, outlen, "%s:%s:%s", campaign, customer,
                     gw_channel_name(ch));
    return n < 0 || (size_t)n >= outlen ? GW_ETOOBIG : 0;
}

/* Field access with a typed check; *out is borrowed. */
static int
get_str(const json_t *o, const char *path, const char *name, int required,
        const char **out, char reason[JOB_REASON_MAX])
{
    json_t *v = json_object_get(o, name);

    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required)
            return why(reason, "%s%s%s: missing", path, *path ? "." : "",
                       name);
        return 0;
    }
    if (!json_is_string(v))
        return why(reason, "%s%s%s: must be a string", path,
                   *path ? "." : "", name);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return why(reason, "%s%s%s: must not contain NUL", path,
                   *path ? "." : "", name);
    *out = json_string_value(v);
    return 0;
}

static int
only_fields(const json_t *o, const char *path, const char *const *allowed,
            char reason[JOB_REASON_MAX])
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)o, k, v) {
        size_t i;
        for (i = 0; allowed[i]; i++)
            if (strcmp(allowed[i], k) == 0)
                break;
        if (!allowed[i])
            return why(reason, "%s%s%.64s: unknown field", path,
                       *path ? "." : "", k);
    }
    return 0;
}

static int
get_obj(const json_t *o, const char *name, json_t **out,
        char reason[JOB_REASON_MAX])
{
    json_t *v = json_object_get(o, name);

    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return why(reason, "%s: must be an object", name);
    *out = v;
    return 0;
}

static const char *const recipient_fields[] = {
    "customer_id", "email", "phone", "fax", "tz", "locale", "vars", "name",
    NULL
};

int
job_check_recipient(const json_t *r, enum gw_channel ch, const char *path,
                    char reason[JOB_REASON_MAX])
{
    const char *cid, *email, *phone, *fax, *tz, *locale, *name;
    json_t *vars;
    GTimeZone *zone;

    if (!json_is_object(r))
        return why(reason, "%s: must be an object", path);
    if (only_fields(r, path, recipient_fields, reason) < 0 ||
        get_str(r, path, "customer_id", 1, &cid, reason) < 0 ||
        get_str(r, path, "email", 0, &email, reason) < 0 ||
        get_str(r, path, "phone", 0, &phone, reason) < 0 ||
        get_str(r, path, "fax", 0, &fax, reason) < 0 ||
        get_str(r, path, "tz", 0, &tz, reason) < 0 ||
        get_str(r, path, "locale", 0, &locale, reason) < 0 ||
        get_str(r, path, "name", 0, &name, reason) < 0)
        return GW_EINVAL;
    if (!ident_ok(cid, 128))
        return why(reason, "%s.customer_id: must be 1-128 printable "
                   "characters", path);
    if (email && !job_email_valid(email))
        return why(reason, "%s.email: '%.64s' is not a valid address", path,
                   email);
    if (phone && !job_e164_valid(phone))
        return why(reason, "%s.phone: '%.32s' is not an E.164 number", path,
                   phone);
    if (fax && !job_e164_valid(fax))
        return why(reason, "%s.fax: '%.32s' is not an E.164 number", path,
                   fax);
    if (name && !ident_ok(name, 256))
        return why(reason, "%s.name: must be 1-256 printable characters",
                   path);
    if (tz) {
        if (!tz_name_ok(tz) || (zone = g_time_zone_new_identifier(tz)) == NULL)
            return why(reason, "%s.tz: unknown time zone '%.64s'", path, tz);
        g_time_zone_unref(zone);
    }
    vars = json_object_get(r, "vars");
    if (vars && !json_is_object(vars))
        return why(reason, "%s.vars: must be an object", path);
    if (ch == CH_EMAIL && !email)
        return why(reason, "%s.email: missing (channel email)", path);
    if (ch == CH_SMS && !phone)
        return why(reason, "%s.phone: missing (channel sms)", path);
    if (ch == CH_FAX && !fax)
        return why(reason, "%s.fax: missing (channel fax)", path);
    return 0;
}

static int
check_channel_provider(struct job *j, const struct config *conf,
                       char reason[JOB_REASON_MAX])
{
    const char *ch, *prov;
    const struct conf_provider *p;
    int c;

    if (get_str(j->root, "", "channel", 1, &ch, reason) < 0)
        return GW_EINVAL;
    if ((c = gw_channel_parse(ch)) < 0)
        return why(reason, "channel: unknown channel '%.32s' (email, sms, "
                   "fax)", ch);
    j->channel = (enum gw_channel)c;
    if (get_str(j->root, "", "provider", 0, &prov, reason) < 0)
        return GW_EINVAL;
    if (!prov && !(prov = conf->channel[c].provider))
        return why(reason, "provider: missing, and channel %s has no "
                   "default provider", ch);
    if ((p = conf_provider_find(conf, prov)) == NULL)
        return why(reason, "provider: unknown provider '%.64s'", prov);
    if (!(p->channels & (1u << c)))
        return why(reason, "provider: '%.64s' does not serve channel %s",
                   prov, ch);
    j->provider = p->name;
    return 0;
}

static int
check_time(const json_t *o, const char *name, const char *tz, int64_t *ms,
           char reason[JOB_REASON_MAX])
{
    const char *s;

    *ms = 0;
    if (get_str(o, "", name, 0, &s, reason) < 0)
        return GW_EINVAL;
    if (s && job_time_parse(s, tz, ms) < 0)
        return why(reason, "%s: '%.40s' is not a date-time "
                   "(YYYY-MM-DDTHH:MM:SS with Z or an offset%s)", name, s,
                   tz ? ", or local to the recipient" : "");
    return 0;
}

static int
check_common(struct job *j, char reason[JOB_REASON_MAX])
{
    const char *cls;

    if (get_str(j->root, "", "template", 1, &j->template, reason) < 0)
        return GW_EINVAL;
    if (!ident_ok(j->template, 128) || strchr(j->template, '/'))
        return why(reason, "template: must be a name of 1-128 printable "
                   "characters without '/'");
    if (get_str(j->root, "", "class", 0, &cls, reason) < 0)
        return GW_EINVAL;
    if (cls && strcmp(cls, "marketing") && strcmp(cls, "transactional"))
        return why(reason, "class: must be \"marketing\" or "
                   "\"transactional\"");
    j->class = cls;
    if (get_obj(j->root, "vars", &j->vars, reason) < 0)
        return GW_EINVAL;
    {
        json_t *se = json_object_get(j->root, "smart_encoding");
        j->smart_encoding = -1;
        if (se && !json_is_boolean(se))
            return why(reason, "smart_encoding: must be true or false");
        if (se)
            j->smart_encoding = json_is_true(se);
    }
    return 0;
}

static int
check_window(const json_t *w, char reason[JOB_REASON_MAX])
{
    const char *const fields[] = { "start", "end", "days", NULL };
    const char *names[] = { "start", "end" };

    if (!w)
        return 0;
    if (!json_is_object(w))
        return why(reason, "window: must be an object");
    if (only_fields(w, "window", fields, reason) < 0)
        return GW_EINVAL;
    for (int i = 0; i < 2; i++) {
        const char *s;
        if (get_str(w, "window", names[i], 1, &s, reason) < 0)
            return GW_EINVAL;
        if (strlen(s) != 5 || !isdigit((unsigned char)s[0]) ||
            !isdigit((unsigned char)s[1]) || s[2] != ':' ||
            !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]) ||
            (s[0] - '0') * 10 + (s[1] - '0') > 24 ||
            (s[3] - '0') * 10 + (s[4] - '0') > 59 ||
            (s[0] == '2' && s[1] == '4' && (s[3] != '0' || s[4] != '0')))
            return why(reason, "window.%s: must be HH:MM", names[i]);
    }
    return 0;
}

static int
parse_campaign(struct job *j, const struct config *conf,
               char reason[JOB_REASON_MAX])
{
    static const char *const fields[] = {
        "type", "id", "channel", "template", "provider", "audience",
        "send_at", "expires", "window", "budget", "class", "fallback",
        "vars", "variants", "smart_encoding", NULL
    };
    json_t *aud, *budget, *fb, *var;

    if (only_fields(j->root, "", fields, reason) < 0 ||
        check_channel_provider(j, conf, reason) < 0 ||
        check_common(j, reason) < 0 ||
        check_time(j->root, "send_at", NULL, &j->send_at_ms, reason) < 0 ||
        check_time(j->root, "expires", NULL, &j->expires_ms, reason) < 0 ||
        check_window(json_object_get(j->root, "window"), reason) < 0)
        return GW_EINVAL;
    if (strchr(j->id, ':') || strchr(j->id, '/'))
        return why(reason, "id: a campaign id must not contain ':' or '/'");

    aud = json_object_get(j->root, "audience");
    if (!aud)
        return why(reason, "audience: missing");
    if (!json_is_object(aud))
        return why(reason, "audience: must be an object with \"key\" or "
                   "\"recipients\"");
    {
        static const char *const af[] = { "key", "recipients", NULL };
        json_t *rs = json_object_get(aud, "recipients");
        if (only_fields(aud, "audience", af, reason) < 0 ||
            get_str(aud, "audience", "key", 0, &j->audience_key, reason) < 0)
            return GW_EINVAL;
        if (j->audience_key && rs)
            return why(reason, "audience: give either \"key\" or "
                       "\"recipients\", not both");
        if (j->audience_key) {
            if (!ident_ok(j->audience_key, 512))
                return why(reason, "audience.key: must be a Redis key name");
        } else if (!rs) {
            return why(reason, "audience: missing \"key\" or \"recipients\"");
        } else if (!json_is_array(rs)) {
            return why(reason, "audience.recipients: must be an array");
        } else if (json_array_size(rs) == 0) {
            return why(reason, "audience.recipients: is empty");
        } else if ((int64_t)json_array_size(rs) > conf->max_recipients_inline) {
            return why(reason, "audience.recipients: %zu recipients exceed "
                       "max_recipients_inline (%lld); use an audience key",
                       json_array_size(rs),
                       (long long)conf->max_recipients_inline);
        } else {
            j->recipients = rs;
        }
    }
    if (j->expires_ms && j->send_at_ms && j->expires_ms <= j->send_at_ms)
        return why(reason, "expires: must be after send_at");

    if ((budget = json_object_get(j->root, "budget")) != NULL) {
        json_t *max = json_object_get(budget, "max");
        json_t *cur = json_object_get(budget, "currency");
        if (!json_is_object(budget))
            return why(reason, "budget: must be an object");
        if (!json_is_number(max) || json_number_value(max) < 0)
            return why(reason, "budget.max: must be a number >= 0");
        if (!json_is_string(cur) || json_string_length(cur) != 3)
            return why(reason, "budget.currency: must be a 3-letter code");
        if (strcmp(json_string_value(cur), conf->price.currency) != 0)
            return why(reason, "budget.currency: prices are in %s ([price] "
                       "currency), not %s", conf->price.currency,
                       json_string_value(cur));
    }
    if ((fb = json_object_get(j->root, "fallback")) != NULL) {
        size_t i;
        json_t *e;
        if (!json_is_array(fb))
            return why(reason, "fallback: must be an array of channels");
        json_array_foreach(fb, i, e)
            if (!json_is_string(e) || gw_channel_parse(json_string_value(e))
                                          < 0)
                return why(reason, "fallback[%zu]: unknown channel", i);
    }
    if ((var = json_object_get(j->root, "variants")) != NULL &&
        !json_is_array(var))
        return why(reason, "variants: must be an array");
    return 0;
}

static int
parse_message(struct job *j, const struct config *conf,
              char reason[JOB_REASON_MAX])
{
    static const char *const fields[] = {
        "type", "id", "channel", "template", "provider", "recipient",
        "send_at", "deliver_by", "expires", "class", "vars", "smart_encoding",
        NULL
    };
    const char *tz = NULL;
    int64_t deliver_by = 0;

    if (only_fields(j->root, "", fields, reason) < 0 ||
        check_channel_provider(j, conf, reason) < 0 ||
        check_common(j, reason) < 0)
        return GW_EINVAL;
    j->recipient = json_object_get(j->root, "recipient");
    if (!j->recipient)
        return why(reason, "recipient: missing");
    if (job_check_recipient(j->recipient, j->channel, "recipient",
                            reason) < 0)
        return GW_EINVAL;
    /* Local times in a trigger are in the recipient's zone. */
    if (json_is_string(json_object_get(j->recipient, "tz")))
        tz = json_string_value(json_object_get(j->recipient, "tz"));
    if (check_time(j->root, "send_at", tz, &j->send_at_ms, reason) < 0 ||
        check_time(j->root, "deliver_by", tz, &deliver_by, reason) < 0 ||
        check_time(j->root, "expires", tz, &j->expires_ms, reason) < 0)
        return GW_EINVAL;
    if (j->send_at_ms && j->expires_ms && j->expires_ms <= j->send_at_ms)
        return why(reason, "expires: must be after send_at");
    if (j->send_at_ms && deliver_by && deliver_by <= j->send_at_ms)
        return why(reason, "deliver_by: must be after send_at");
    /* The earlier of the two is the message's deadline. */
    if (deliver_by && (!j->expires_ms || deliver_by < j->expires_ms))
        j->expires_ms = deliver_by;
    return 0;
}

/* A customer date: "YYYY-MM-DD", a yearly "--MM-DD", or an RFC 3339
 * date-time (a last purchase). */
int
job_date_valid(const char *s)
{
    int64_t ms;
    size_t n = strlen(s);
    int y, m, d, mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    if (n == 10 && s[4] == '-' && s[7] == '-' &&
        sscanf(s, "%4d-%2d-%2d", &y, &m, &d) == 3 && y >= 1800) {
        if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
            return 0;
        return m != 2 || d != 29 || (y % 4 == 0 && (y % 100 != 0 ||
                                                    y % 400 == 0));
    }
    if (n == 7 && s[0] == '-' && s[1] == '-' && s[4] == '-' &&
        sscanf(s + 2, "%2d-%2d", &m, &d) == 2)
        return m >= 1 && m <= 12 && d >= 1 && d <= mdays[m - 1];
    return n > 10 && job_time_parse(s, NULL, &ms) == 0;
}

static int
parse_customer(struct job *j, char reason[JOB_REASON_MAX])
{
    static const char *const fields[] = { "type", "id", "customer", NULL };
    json_t *c, *copy, *v;
    const char *k;
    int rc;

    if (only_fields(j->root, "", fields, reason) < 0)
        return GW_EINVAL;
    c = json_object_get(j->root, "customer");
    if (!json_is_object(c))
        return why(reason, "customer: missing or not an object");
    j->dates = json_object_get(c, "dates");
    if (j->dates) {
        if (!json_is_object(j->dates))
            return why(reason, "customer.dates: must be an object");
        if (json_object_size(j->dates) > 32)
            return why(reason, "customer.dates: more than 32 dates");
        json_object_foreach(j->dates, k, v) {
            if (!ident_ok(k, 64))
                return why(reason, "customer.dates: a name must be 1-64 "
                           "printable characters");
            if (!json_is_string(v) || !job_date_valid(json_string_value(v)))
                return why(reason, "customer.dates.%.64s: not a date "
                           "(YYYY-MM-DD, --MM-DD or an RFC 3339 time)", k);
        }
    }
    /* The rest is a recipient, without a channel to require. */
    copy = json_copy(c);
    json_object_del(copy, "dates");
    rc = job_check_recipient(copy, CH_COUNT, "customer", reason);
    json_decref(copy);
    if (rc < 0)
        return rc;
    j->recipient = c;
    return 0;
}

int
job_check_conversion(const json_t *o, const struct config *conf,
                     double *amount, int64_t *at_ms,
                     char reason[JOB_REASON_MAX])
{
    static const char *const fields[] = {
        "type", "id", "customer_id", "amount", "currency", "at", NULL
    };
    const char *id, *cust, *cur;
    json_t *a;

    if (only_fields(o, "", fields, reason) < 0 ||
        get_str(o, "", "id", 1, &id, reason) < 0 ||
        get_str(o, "", "customer_id", 1, &cust, reason) < 0 ||
        get_str(o, "", "currency", 1, &cur, reason) < 0)
        return GW_EINVAL;
    if (!ident_ok(id, ID_MAX))
        return why(reason, "id: must be 1-%d printable characters", ID_MAX);
    if (!ident_ok(cust, 128))
        return why(reason, "customer_id: must be 1-128 printable characters");
    a = json_object_get(o, "amount");
    if (!json_is_number(a) || !(json_number_value(a) >= 0) ||
        json_number_value(a) > 1e12)
        return why(reason, "amount: must be a number >= 0");
    *amount = json_number_value(a);
    if (strcmp(cur, conf->price.currency) != 0)
        return why(reason, "currency: revenue is counted in %s ([price] "
                   "currency), not %.8s", conf->price.currency, cur);
    *at_ms = 0;
    return check_time(o, "at", NULL, at_ms, reason);
}

static int
parse_control(struct job *j, char reason[JOB_REASON_MAX])
{
    static const char *const fields[] = {
        "type", "id", "campaign", "action", NULL
    };
    const char *a;

    if (only_fields(j->root, "", fields, reason) < 0 ||
        get_str(j->root, "", "campaign", 1, &j->campaign, reason) < 0 ||
        get_str(j->root, "", "action", 1, &a, reason) < 0)
        return GW_EINVAL;
    if (!ident_ok(j->campaign, ID_MAX))
        return why(reason, "campaign: must be a campaign id");
    if (strcmp(a, "pause") == 0)
        j->action = CTL_PAUSE;
    else if (strcmp(a, "resume") == 0)
        j->action = CTL_RESUME;
    else if (strcmp(a, "cancel") == 0)
        j->action = CTL_CANCEL;
    else
        return why(reason, "action: must be \"pause\", \"resume\" or "
                   "\"cancel\"");
    return 0;
}

int
job_parse(struct job **out, const char *json, size_t len,
          const struct config *conf, enum dead_class *cls,
          char reason[JOB_REASON_MAX])
{
    struct job *j;
    json_error_t e;
    const char *type;
    int rc;

    *out = NULL;
    *cls = DEAD_FIELD;
    if ((int64_t)len > conf->max_job_bytes) {
        *cls = DEAD_TOO_LARGE;
        return why(reason, "job: %zu bytes exceed max_job_bytes (%lld)", len,
                   (long long)conf->max_job_bytes);
    }
    if ((j = calloc(1, sizeof *j)) == NULL)
        return -ENOMEM;
    j->root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &e);
    if (!j->root) {
        *cls = DEAD_JSON;
        rc = why(reason, "json: %s at line %d column %d", e.text, e.line,
                 e.column);
        goto out;
    }
    if (!json_is_object(j->root)) {
        *cls = DEAD_JSON;
        rc = why(reason, "json: a job must be an object");
        goto out;
    }
    if ((rc = get_str(j->root, "", "type", 1, &type, reason)) < 0 ||
        (rc = get_str(j->root, "", "id", 1, &j->id, reason)) < 0)
        goto out;
    if (!ident_ok(j->id, ID_MAX)) {
        rc = why(reason, "id: must be 1-%d printable characters", ID_MAX);
        goto out;
    }
    if (strcmp(type, "campaign") == 0) {
        j->type = JOB_CAMPAIGN;
        rc = parse_campaign(j, conf, reason);
    } else if (strcmp(type, "message") == 0) {
        j->type = JOB_MESSAGE;
        rc = parse_message(j, conf, reason);
    } else if (strcmp(type, "control") == 0) {
        j->type = JOB_CONTROL;
        rc = parse_control(j, reason);
    } else if (strcmp(type, "customer") == 0) {
        j->type = JOB_CUSTOMER;
        rc = parse_customer(j, reason);
    } else if (strcmp(type, "conversion") == 0) {
        j->type = JOB_CONVERSION;
        rc = job_check_conversion(j->root, conf, &j->amount, &j->at_ms,
                                  reason);
    } else {
        rc = why(reason, "type: unknown job type '%.32s' (campaign, message, "
                 "control, customer, conversion)", type);
    }
    if (rc == 0) {
        *out = j;
        j = NULL;
    }
out:
    job_free(j);
    return rc < 0 ? GW_EINVAL : 0;
}

void
job_free(struct job *j)
{
    if (!j)
        return;
    json_decref(j->root);
    free(j);
}

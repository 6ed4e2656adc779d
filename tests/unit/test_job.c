/*
 * test_job.c -- tests for job parsing and checking (gateway/job.c): valid
 * campaign, message and control jobs and the fields they yield; a table of
 * malformed jobs, each with its dead class and the field path its reason
 * must start with (one cmocka test per case); job_check_recipient with a
 * path; the size cap; and job_email_valid, job_e164_valid, job_time_parse
 * and job_msg_key directly. The config comes from conf_load on a small
 * file in a mkdtemp directory: providers "outbox" (all channels) and
 * "mailonly" (email), every channel defaulting to "outbox"; a second load
 * adds --set limits for the inline-recipient and size caps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "gateway/config.h"
#include "gateway/job.h"

static char tmpdir[64];
static char conf_path[128];
static struct config *conf;         /* providers and channel defaults */
static struct config *conf_small;   /* the same with tight limits */

static const char conf_text[] =
    "# test_job.c\n"
    "[provider.outbox]\n"
    "type = \"outbox\"\n"
    "dir = \"/tmp/test_job-outbox\"\n"
    "[provider.mailonly]\n"
    "type = \"outbox\"\n"
    "channels = [\"email\"]\n"
    "dir = \"/tmp/test_job-mail\"\n"
    "[channel.email]\n"
    "provider = \"outbox\"\n"
    "[channel.sms]\n"
    "provider = \"outbox\"\n"
    "in_doubt = \"hold\"\n"
    "[channel.fax]\n"
    "provider = \"outbox\"\n";

static int
load_configs(void)
{
    static char *const limits[] = {
        "intake.max_recipients_inline=2",
        "intake.max_job_bytes=1024",
    };
    char err[512];
    FILE *f;

    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_job.XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(conf_path, sizeof conf_path, "%s/gateway.toml", tmpdir);
    if ((f = fopen(conf_path, "w")) == NULL)
        return -1;
    fputs(conf_text, f);
    if (fclose(f) != 0)
        return -1;
    if (conf_load(&conf, conf_path, NULL, 0, err, sizeof err) != 0 ||
        conf_load(&conf_small, conf_path, limits, 2, err, sizeof err) != 0) {
        fprintf(stderr, "test config: %s\n", err);
        return -1;
    }
    return 0;
}

static void
free_configs(void)
{
    conf_free(conf);
    conf_free(conf_small);
    conf = conf_small = NULL;
    unlink(conf_path);
    rmdir(tmpdir);
}

/* Parse s against c and expect success; the caller frees. */
static struct job *
parse_ok(const char *s, const struct config *c)
{
    char reason[JOB_REASON_MAX] = "";
    enum dead_class cls = DEAD_COUNT;
    struct job *j = NULL;
    int rc = job_parse(&j, s, strlen(s), c, &cls, reason);

    if (rc != 0)
        print_error("rejected (%s): %s\n  job: %s\n", dead_class_name(cls),
                    reason, s);
    assert_int_equal(rc, 0);
    assert_non_null(j);
    assert_non_null(j->root);
    return j;
}

/* Parse s and expect a rejection of class cls whose reason starts with
 * prefix. */
static void
parse_bad(const char *s, size_t len, const struct config *c,
          enum dead_class cls, const char *prefix)
{
    char reason[JOB_REASON_MAX] = "";
    enum dead_class got = DEAD_COUNT;
    static struct job sentinel;
    struct job *j = &sentinel;              /* must be reset to NULL */
    int rc = job_parse(&j, s, len, c, &got, reason);

    if (rc == 0) {
        print_error("accepted: %.200s\n", s);
        job_free(j);
    }
    assert_int_equal(rc, GW_EINVAL);
    assert_null(j);
    if (got != cls || strncmp(reason, prefix, strlen(prefix)) != 0)
        print_error("job:    %.300s\nclass:  %s (expected %s)\n"
                    "reason: %s\nexpected to start with: %s\n", s,
                    dead_class_name(got), dead_class_name(cls), reason,
                    prefix);
    assert_string_equal(dead_class_name(got), dead_class_name(cls));
    assert_int_equal(strncmp(reason, prefix, strlen(prefix)), 0);
    /* a field path is followed by its message */
    assert_true(strlen(reason) > strlen(prefix));
}

/* ------------------------------------------------------------------ */
/* valid jobs */

#define MS(sec) ((int64_t)(sec) * 1000)

static void
test_campaign_inline(void **state)
{
    struct job *j;

    (void)state;
    j = parse_ok("{\"type\":\"campaign\",\"id\":\"spring-27\","
                 "\"channel\":\"email\",\"template\":\"spring-offer\","
                 "\"audience\":{\"recipients\":["
                 "{\"customer_id\":\"c1\",\"email\":\"anna@example.org\"},"
                 "{\"customer_id\":\"c2\",\"email\":\"ben@example.org\","
                 "\"tz\":\"Europe/Berlin\",\"vars\":{\"plan\":\"Gold\"}}]},"
                 "\"send_at\":\"2027-03-01T09:00:00Z\","
                 "\"expires\":\"2027-03-03T00:00:00Z\","
                 "\"window\":{\"start\":\"09:00\",\"end\":\"20:00\"},"
                 "\"budget\":{\"currency\":\"EUR\",\"max\":500.0},"
                 "\"class\":\"marketing\",\"fallback\":[\"sms\"],"
                 "\"vars\":{\"offer\":\"20%\"},\"variants\":[]}", conf);
    assert_int_equal(j->type, JOB_CAMPAIGN);
    assert_string_equal(j->id, "spring-27");
    assert_int_equal(j->channel, CH_EMAIL);
    /* the channel's default provider, as the config's own string */
    assert_string_equal(j->provider, "outbox");
    assert_ptr_equal(j->provider, conf_provider_find(conf, "outbox")->name);
    assert_string_equal(j->template, "spring-offer");
    assert_string_equal(j->class, "marketing");
    assert_true(j->send_at_ms == MS(1803891600));
    assert_true(j->expires_ms == MS(1804032000));
    assert_null(j->audience_key);
    assert_non_null(j->recipients);
    assert_int_equal(json_array_size(j->recipients), 2);
    assert_string_equal(json_string_value(json_object_get(
        json_array_get(j->recipients, 1), "customer_id")), "c2");
    assert_non_null(j->vars);
    assert_string_equal(json_string_value(json_object_get(j->vars, "offer")),
                        "20%");
    assert_null(j->recipient);
    job_free(j);

    /* the inline limit itself is allowed */
    j = parse_ok("{\"type\":\"campaign\",\"id\":\"c\",\"channel\":\"sms\","
                 "\"template\":\"t\",\"audience\":{\"recipients\":["
                 "{\"customer_id\":\"1\"},{\"customer_id\":\"2\"}]}}",
                 conf_small);
    assert_int_equal(j->channel, CH_SMS);
    assert_int_equal(json_array_size(j->recipients), 2);
    assert_true(j->send_at_ms == 0);
    assert_true(j->expires_ms == 0);
    assert_null(j->class);
    assert_null(j->vars);
    job_free(j);
    job_free(NULL);
}

static void
test_campaign_audience_key(void **state)
{
    struct job *j;

    (void)state;
    j = parse_ok("{\"type\":\"campaign\",\"id\":\"autumn.27\","
                 "\"channel\":\"email\",\"template\":\"autumn\","
                 "\"provider\":\"mailonly\","
                 "\"audience\":{\"key\":\"gw:aud:autumn.27\"},"
                 "\"class\":\"transactional\"}", conf);
    assert_int_equal(j->type, JOB_CAMPAIGN);
    assert_string_equal(j->id, "autumn.27");
    assert_string_equal(j->provider, "mailonly");
    assert_ptr_equal(j->provider,
                     conf_provider_find(conf, "mailonly")->name);
    assert_string_equal(j->audience_key, "gw:aud:autumn.27");
    assert_null(j->recipients);
    assert_string_equal(j->class, "transactional");
    job_free(j);

    /* null fields count as absent */
    j = parse_ok("{\"type\":\"campaign\",\"id\":\"x\",\"channel\":\"fax\","
                 "\"template\":\"t\",\"provider\":null,\"class\":null,"
                 "\"audience\":{\"key\":\"k\"}}", conf);
    assert_int_equal(j->channel, CH_FAX);
    assert_string_equal(j->provider, "outbox");
    assert_null(j->class);
    job_free(j);
}

static void
test_message(void **state)
{
    struct job *j;

    (void)state;
    /* local times are in the recipient's zone: CEST in May */
    j = parse_ok("{\"type\":\"message\",\"id\":\"birthday:c123:2027\","
                 "\"channel\":\"sms\",\"template\":\"birthday\","
                 "\"recipient\":{\"customer_id\":\"c123\","
                 "\"phone\":\"+4915112345678\",\"tz\":\"Europe/Berlin\","
                 "\"locale\":\"de\",\"name\":\"Anna\","
                 "\"vars\":{\"first_name\":\"Anna\"}},"
                 "\"send_at\":\"2027-05-17T09:00:00\","
                 "\"deliver_by\":\"2027-05-17T20:00:00\"}", conf);
    assert_int_equal(j->type, JOB_MESSAGE);
    assert_string_equal(j->id, "birthday:c123:2027");
    assert_int_equal(j->channel, CH_SMS);
    assert_string_equal(j->provider, "outbox");
    assert_string_equal(j->template, "birthday");
    assert_true(j->send_at_ms == MS(1810537200));
    /* deliver_by becomes the deadline */
    assert_true(j->expires_ms == MS(1810576800));
    assert_non_null(j->recipient);
    assert_string_equal(json_string_value(json_object_get(j->recipient,
                                                          "phone")),
                        "+4915112345678");
    assert_null(j->recipients);
    job_free(j);

    /* an explicit expires earlier than deliver_by wins */
    j = parse_ok("{\"type\":\"message\",\"id\":\"m2\",\"channel\":\"email\","
                 "\"template\":\"t\",\"recipient\":{\"customer_id\":\"c\","
                 "\"email\":\"c@example.org\"},"
                 "\"send_at\":\"2027-05-17T07:00:00Z\","
                 "\"deliver_by\":\"2027-05-18T00:00:00Z\","
                 "\"expires\":\"2027-05-17T18:00:00Z\"}", conf);
    assert_true(j->send_at_ms == MS(1810537200));
    assert_true(j->expires_ms == MS(1810576800));
    job_free(j);

    /* fax */
    j = parse_ok("{\"type\":\"message\",\"id\":\"inv-1\",\"channel\":\"fax\","
                 "\"template\":\"invoice\",\"recipient\":{"
                 "\"customer_id\":\"c9\",\"fax\":\"+4930123456\"}}", conf);
    assert_int_equal(j->channel, CH_FAX);
    job_free(j);
}

static void
test_control(void **state)
{
    static const struct {
        const char *action;
        enum control_action want;
    } cases[] = {
        { "pause", CTL_PAUSE }, { "resume", CTL_RESUME },
        { "cancel", CTL_CANCEL },
    };
    char buf[256];
    struct job *j;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(buf, sizeof buf, "{\"type\":\"control\",\"id\":\"ctl-%zu\","
                 "\"campaign\":\"spring-27\",\"action\":\"%s\"}", i,
                 cases[i].action);
        j = parse_ok(buf, conf);
        assert_int_equal(j->type, JOB_CONTROL);
        assert_string_equal(j->campaign, "spring-27");
        assert_int_equal(j->action, cases[i].want);
        job_free(j);
    }
}

/* Only len bytes are read: the input need not be NUL-terminated. */
static void
test_len_respected(void **state)
{
    static const char s[] = "{\"type\":\"control\",\"id\":\"c\","
                            "\"campaign\":\"x\",\"action\":\"pause\"}"
                            "GARBAGE";
    char reason[JOB_REASON_MAX];
    enum dead_class cls;
    struct job *j = NULL;

    (void)state;
    assert_int_equal(job_parse(&j, s, strlen(s) - 7, conf, &cls, reason), 0);
    assert_non_null(j);
    assert_int_equal(j->action, CTL_PAUSE);
    job_free(j);
    parse_bad(s, strlen(s), conf, DEAD_JSON, "json:");
}

/* max_job_bytes (1024 in conf_small): the limit passes, one more byte is
 * DEAD_TOO_LARGE before any parsing. */
static void
test_too_large(void **state)
{
    static const char job[] = "{\"type\":\"control\",\"id\":\"c\","
                              "\"campaign\":\"x\",\"action\":\"pause\"}";
    char buf[1100];
    struct job *j;

    (void)state;
    memcpy(buf, job, sizeof job - 1);
    memset(buf + sizeof job - 1, ' ', sizeof buf - (sizeof job - 1));
    buf[1024] = 0;
    j = parse_ok(buf, conf_small);
    job_free(j);
    buf[1024] = ' ';
    buf[1025] = 0;
    parse_bad(buf, 1025, conf_small, DEAD_TOO_LARGE, "job:");
    /* even when it is not JSON at all */
    memset(buf, 'x', 1025);
    parse_bad(buf, 1025, conf_small, DEAD_TOO_LARGE, "job:");
    /* the default limit is much larger */
    buf[0] = '{';
    memcpy(buf, job, sizeof job - 1);
    memset(buf + sizeof job - 1, ' ', 1025 - (sizeof job - 1));
    j = parse_ok(buf, conf);
    job_free(j);
}

/* ------------------------------------------------------------------ */
/* malformed jobs */

#define A10  "aaaaaaaaaa"
#define A100 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10
#define CAMP(id, ch) "{\"type\":\"campaign\",\"id\":\"" id "\"," \
                     "\"channel\":\"" ch "\",\"template\":\"offer\","
#define AUD "\"audience\":{\"key\":\"gw:aud:x\"}"
#define MSG(ch) "{\"type\":\"message\",\"id\":\"m1\",\"channel\":\"" ch \
                "\",\"template\":\"t\","
#define RCPT(fields) "\"recipient\":{\"customer_id\":\"c1\"," fields "}"
#define CTL "{\"type\":\"control\",\"id\":\"k1\","

struct bad_case {
    const char *name;
    const char *json;
    int small;                  /* against conf_small */
    enum dead_class cls;
    const char *prefix;
};

static const struct bad_case bad_cases[] = {
    /* not a JSON object */
    { "json_syntax", "{\"type\":\"campaign\",", 0, DEAD_JSON, "json:" },
    { "json_empty", "", 0, DEAD_JSON, "json:" },
    { "json_trailing", CTL "\"campaign\":\"x\",\"action\":\"pause\"} x", 0,
      DEAD_JSON, "json:" },
    { "json_duplicate_key", CTL "\"campaign\":\"x\",\"action\":\"pause\","
      "\"action\":\"cancel\"}", 0, DEAD_JSON, "json:" },
    { "json_duplicate_nested", CAMP("c", "email") "\"audience\":{"
      "\"key\":\"a\",\"key\":\"b\"}}", 0, DEAD_JSON, "json:" },
    { "json_array", "[{\"type\":\"control\"}]", 0, DEAD_JSON, "json:" },
    { "json_string", "\"campaign\"", 0, DEAD_JSON, "json:" },
    { "json_nul_escape", CTL "\"campaign\":\"spr\\u0000ing\","
      "\"action\":\"pause\"}", 0, DEAD_JSON, "json:" },
    { "json_bad_utf8", CTL "\"campaign\":\"\xff\xfe\",\"action\":\"pause\"}",
      0, DEAD_JSON, "json:" },
    /* type */
    { "type_missing", "{\"id\":\"x\"}", 0, DEAD_FIELD, "type:" },
    { "type_not_string", "{\"type\":[\"campaign\"],\"id\":\"x\"}", 0,
      DEAD_FIELD, "type:" },
    { "type_unknown", "{\"type\":\"newsletter\",\"id\":\"x\"}", 0,
      DEAD_FIELD, "type:" },
    { "customer_bad_date", "{\"type\":\"customer\",\"id\":\"c123\","
      "\"customer\":{\"customer_id\":\"c123\",\"dates\":{\"birthday\":"
      "\"1990-02-30\"}}}", 0, DEAD_FIELD, "customer.dates.birthday:" },
    { "customer_no_id", "{\"type\":\"customer\",\"id\":\"c123\","
      "\"customer\":{\"email\":\"a@example.org\"}}", 0, DEAD_FIELD,
      "customer.customer_id:" },
    { "customer_bad_phone", "{\"type\":\"customer\",\"id\":\"c1\","
      "\"customer\":{\"customer_id\":\"c1\",\"phone\":\"12\"}}", 0,
      DEAD_FIELD, "customer.phone:" },
    { "conversion_no_amount", "{\"type\":\"conversion\",\"id\":\"o-1\","
      "\"customer_id\":\"c123\",\"currency\":\"EUR\"}", 0, DEAD_FIELD,
      "amount:" },
    { "conversion_currency", "{\"type\":\"conversion\",\"id\":\"o-1\","
      "\"customer_id\":\"c123\",\"amount\":5,\"currency\":\"USD\"}", 0,
      DEAD_FIELD, "currency:" },
    { "conversion_negative", "{\"type\":\"conversion\",\"id\":\"o-1\","
      "\"customer_id\":\"c123\",\"amount\":-5,\"currency\":\"EUR\"}", 0,
      DEAD_FIELD, "amount:" },
    /* id */
    { "id_missing", "{\"type\":\"control\",\"campaign\":\"x\","
      "\"action\":\"pause\"}", 0, DEAD_FIELD, "id:" },
    { "id_not_string", "{\"type\":\"control\",\"id\":42,\"campaign\":\"x\","
      "\"action\":\"pause\"}", 0, DEAD_FIELD, "id:" },
    { "id_empty", "{\"type\":\"control\",\"id\":\"\",\"campaign\":\"x\","
      "\"action\":\"pause\"}", 0, DEAD_FIELD, "id:" },
    { "id_control_char", "{\"type\":\"control\",\"id\":\"a\\u0007b\","
      "\"campaign\":\"x\",\"action\":\"pause\"}", 0, DEAD_FIELD, "id:" },
    { "id_newline", "{\"type\":\"control\",\"id\":\"a\\r\\nb\","
      "\"campaign\":\"x\",\"action\":\"pause\"}", 0, DEAD_FIELD, "id:" },
    { "id_del", "{\"type\":\"control\",\"id\":\"a\\u007f\","
      "\"campaign\":\"x\",\"action\":\"pause\"}", 0, DEAD_FIELD, "id:" },
    { "id_too_long", "{\"type\":\"control\",\"id\":\"" A100 A100 "a\","
      "\"campaign\":\"x\",\"action\":\"pause\"}", 0, DEAD_FIELD, "id:" },
    { "campaign_id_colon", CAMP("spring:27", "email") AUD "}", 0, DEAD_FIELD,
      "id:" },
    { "campaign_id_slash", CAMP("spring/27", "email") AUD "}", 0, DEAD_FIELD,
      "id:" },
    /* channel and provider */
    { "channel_unknown", CAMP("c", "pigeon") AUD "}", 0, DEAD_FIELD,
      "channel:" },
    { "channel_missing", "{\"type\":\"campaign\",\"id\":\"c\","
      "\"template\":\"t\"," AUD "}", 0, DEAD_FIELD, "channel:" },
    { "channel_not_string", "{\"type\":\"campaign\",\"id\":\"c\","
      "\"channel\":1,\"template\":\"t\"," AUD "}", 0, DEAD_FIELD,
      "channel:" },
    { "channel_case", CAMP("c", "EMAIL") AUD "}", 0, DEAD_FIELD, "channel:" },
    { "provider_wrong_channel", CAMP("c", "sms") "\"provider\":\"mailonly\","
      AUD "}", 0, DEAD_FIELD, "provider:" },
    { "provider_wrong_channel_msg", MSG("fax") "\"provider\":\"mailonly\","
      RCPT("\"fax\":\"+4930123456\"") "}", 0, DEAD_FIELD, "provider:" },
    { "provider_unknown", CAMP("c", "email") "\"provider\":\"smtp-eu\","
      AUD "}", 0, DEAD_FIELD, "provider:" },
    { "provider_not_string", CAMP("c", "email") "\"provider\":[\"outbox\"],"
      AUD "}", 0, DEAD_FIELD, "provider:" },
    /* template, class, vars, unknown fields */
    { "template_missing", "{\"type\":\"campaign\",\"id\":\"c\","
      "\"channel\":\"email\"," AUD "}", 0, DEAD_FIELD, "template:" },
    { "template_slash", "{\"type\":\"campaign\",\"id\":\"c\","
      "\"channel\":\"email\",\"template\":\"../../etc/passwd\"," AUD "}", 0,
      DEAD_FIELD, "template:" },
    { "template_empty", "{\"type\":\"campaign\",\"id\":\"c\","
      "\"channel\":\"email\",\"template\":\"\"," AUD "}", 0, DEAD_FIELD,
      "template:" },
    { "template_control", "{\"type\":\"campaign\",\"id\":\"c\","
      "\"channel\":\"email\",\"template\":\"off\\u0001er\"," AUD "}", 0,
      DEAD_FIELD, "template:" },
    { "class_bad", CAMP("c", "email") "\"class\":\"promo\"," AUD "}", 0,
      DEAD_FIELD, "class:" },
    { "vars_not_object", CAMP("c", "email") "\"vars\":\"offer=20\"," AUD "}",
      0, DEAD_FIELD, "vars:" },
    { "vars_array_message", MSG("email") "\"vars\":[1],"
      RCPT("\"email\":\"a@b.org\"") "}", 0, DEAD_FIELD, "vars:" },
    { "unknown_field", CAMP("c", "email") "\"colour\":\"red\"," AUD "}", 0,
      DEAD_FIELD, "colour:" },
    { "unknown_field_message", MSG("email") "\"audience\":{},"
      RCPT("\"email\":\"a@b.org\"") "}", 0, DEAD_FIELD, "audience:" },
    /* times */
    { "send_at_garbage", CAMP("c", "email") "\"send_at\":\"tomorrow\"," AUD
      "}", 0, DEAD_FIELD, "send_at:" },
    { "send_at_feb30", CAMP("c", "email")
      "\"send_at\":\"2027-02-30T09:00:00Z\"," AUD "}", 0, DEAD_FIELD,
      "send_at:" },
    { "send_at_number", CAMP("c", "email") "\"send_at\":1803891600," AUD "}",
      0, DEAD_FIELD, "send_at:" },
    { "send_at_date_only", CAMP("c", "email") "\"send_at\":\"2027-03-01\","
      AUD "}", 0, DEAD_FIELD, "send_at:" },
    { "expires_before_send_at", CAMP("c", "email")
      "\"send_at\":\"2027-03-01T09:00:00Z\","
      "\"expires\":\"2027-02-28T09:00:00Z\"," AUD "}", 0, DEAD_FIELD,
      "expires:" },
    { "expires_equal_send_at", CAMP("c", "email")
      "\"send_at\":\"2027-03-01T09:00:00Z\","
      "\"expires\":\"2027-03-01T10:00:00+01:00\"," AUD "}", 0, DEAD_FIELD,
      "expires:" },
    { "expires_garbage", CAMP("c", "email") "\"expires\":\"never\"," AUD "}",
      0, DEAD_FIELD, "expires:" },
    /* window, budget, fallback, variants */
    { "window_start_hour", CAMP("c", "email")
      "\"window\":{\"start\":\"25:00\",\"end\":\"20:00\"}," AUD "}", 0,
      DEAD_FIELD, "window.start:" },
    { "window_start_short", CAMP("c", "email")
      "\"window\":{\"start\":\"9:00\",\"end\":\"20:00\"}," AUD "}", 0,
      DEAD_FIELD, "window.start:" },
    { "window_end_minute", CAMP("c", "email")
      "\"window\":{\"start\":\"09:00\",\"end\":\"20:60\"}," AUD "}", 0,
      DEAD_FIELD, "window.end:" },
    { "window_end_missing", CAMP("c", "email")
      "\"window\":{\"start\":\"09:00\"}," AUD "}", 0, DEAD_FIELD,
      "window.end:" },
    { "window_not_object", CAMP("c", "email") "\"window\":\"09-20\"," AUD
      "}", 0, DEAD_FIELD, "window:" },
    { "window_unknown_field", CAMP("c", "email")
      "\"window\":{\"start\":\"09:00\",\"end\":\"20:00\",\"tz\":\"UTC\"},"
      AUD "}", 0, DEAD_FIELD, "window.tz:" },
    { "budget_max_negative", CAMP("c", "email")
      "\"budget\":{\"currency\":\"EUR\",\"max\":-1}," AUD "}", 0, DEAD_FIELD,
      "budget.max:" },
    { "budget_max_string", CAMP("c", "email")
      "\"budget\":{\"currency\":\"EUR\",\"max\":\"500\"}," AUD "}", 0,
      DEAD_FIELD, "budget.max:" },
    { "budget_currency", CAMP("c", "email")
      "\"budget\":{\"currency\":\"EURO\",\"max\":5}," AUD "}", 0, DEAD_FIELD,
      "budget.currency:" },
    { "budget_not_object", CAMP("c", "email") "\"budget\":500," AUD "}", 0,
      DEAD_FIELD, "budget:" },
    { "fallback_unknown", CAMP("c", "email")
      "\"fallback\":[\"sms\",\"pigeon\"]," AUD "}", 0, DEAD_FIELD,
      "fallback[1]:" },
    { "fallback_not_array", CAMP("c", "email") "\"fallback\":\"sms\"," AUD
      "}", 0, DEAD_FIELD, "fallback:" },
    { "variants_not_array", CAMP("c", "email") "\"variants\":{}," AUD "}", 0,
      DEAD_FIELD, "variants:" },
    /* audience */
    { "audience_missing", CAMP("c", "email") "\"class\":\"marketing\"}", 0,
      DEAD_FIELD, "audience:" },
    { "audience_not_object", CAMP("c", "email") "\"audience\":\"gw:aud\"}",
      0, DEAD_FIELD, "audience:" },
    { "audience_both", CAMP("c", "email") "\"audience\":{\"key\":\"k\","
      "\"recipients\":[{\"customer_id\":\"c1\"}]}}", 0, DEAD_FIELD,
      "audience:" },
    { "audience_neither", CAMP("c", "email") "\"audience\":{}}", 0,
      DEAD_FIELD, "audience:" },
    { "audience_unknown_field", CAMP("c", "email")
      "\"audience\":{\"key\":\"k\",\"filter\":\"x\"}}", 0, DEAD_FIELD,
      "audience.filter:" },
    { "audience_key_empty", CAMP("c", "email") "\"audience\":{\"key\":\"\"}}",
      0, DEAD_FIELD, "audience.key:" },
    { "audience_key_not_string", CAMP("c", "email")
      "\"audience\":{\"key\":7}}", 0, DEAD_FIELD, "audience.key:" },
    { "recipients_empty", CAMP("c", "email") "\"audience\":{"
      "\"recipients\":[]}}", 0, DEAD_FIELD, "audience.recipients:" },
    { "recipients_not_array", CAMP("c", "email") "\"audience\":{"
      "\"recipients\":{\"customer_id\":\"c1\"}}}", 0, DEAD_FIELD,
      "audience.recipients:" },
    { "recipients_too_many", CAMP("c", "email") "\"audience\":{"
      "\"recipients\":[{\"customer_id\":\"1\"},{\"customer_id\":\"2\"},"
      "{\"customer_id\":\"3\"}]}}", 1, DEAD_FIELD, "audience.recipients:" },
    /* message recipient */
    { "recipient_missing", MSG("email") "\"send_at\":\"2027-03-01T09:00:00Z\""
      "}", 0, DEAD_FIELD, "recipient:" },
    { "recipient_not_object", MSG("email") "\"recipient\":\"a@b.org\"}", 0,
      DEAD_FIELD, "recipient:" },
    { "recipient_customer_missing", MSG("email")
      "\"recipient\":{\"email\":\"a@b.org\"}}", 0, DEAD_FIELD,
      "recipient.customer_id:" },
    { "recipient_customer_control", MSG("email")
      "\"recipient\":{\"customer_id\":\"c\\u001b1\",\"email\":\"a@b.org\"}}",
      0, DEAD_FIELD, "recipient.customer_id:" },
    { "recipient_unknown_field", MSG("email")
      RCPT("\"email\":\"a@b.org\",\"age\":40") "}", 0, DEAD_FIELD,
      "recipient.age:" },
    { "email_no_at", MSG("email") RCPT("\"email\":\"anna.example.org\"") "}",
      0, DEAD_FIELD, "recipient.email:" },
    { "email_double_dot", MSG("email")
      RCPT("\"email\":\"anna..b@example.org\"") "}", 0, DEAD_FIELD,
      "recipient.email:" },
    { "email_domain_double_dot", MSG("email")
      RCPT("\"email\":\"anna@example..org\"") "}", 0, DEAD_FIELD,
      "recipient.email:" },
    { "email_quoted_local", MSG("email")
      RCPT("\"email\":\"\\\"anna smith\\\"@example.org\"") "}", 0,
      DEAD_FIELD, "recipient.email:" },
    { "email_crlf_injection", MSG("email")
      RCPT("\"email\":\"a@b.org\\r\\nBcc: x@y.org\"") "}", 0, DEAD_FIELD,
      "recipient.email:" },
    { "email_trailing_dot", MSG("email")
      RCPT("\"email\":\"anna@example.org.\"") "}", 0, DEAD_FIELD,
      "recipient.email:" },
    { "email_not_string", MSG("email") RCPT("\"email\":[\"a@b.org\"]") "}",
      0, DEAD_FIELD, "recipient.email:" },
    { "email_missing_for_email", MSG("email")
      RCPT("\"phone\":\"+4915112345678\"") "}", 0, DEAD_FIELD,
      "recipient.email:" },
    { "email_invalid_on_sms", MSG("sms")
      RCPT("\"phone\":\"+4915112345678\",\"email\":\"nope\"") "}", 0,
      DEAD_FIELD, "recipient.email:" },
    { "phone_not_e164", MSG("sms") RCPT("\"phone\":\"015112345678\"") "}", 0,
      DEAD_FIELD, "recipient.phone:" },
    { "phone_spaces", MSG("sms") RCPT("\"phone\":\"+49 151 12345678\"") "}",
      0, DEAD_FIELD, "recipient.phone:" },
    { "phone_missing_for_sms", MSG("sms") RCPT("\"email\":\"a@b.org\"") "}",
      0, DEAD_FIELD, "recipient.phone:" },
    { "fax_missing_for_fax", MSG("fax") RCPT("\"phone\":\"+4930123456\"")
      "}", 0, DEAD_FIELD, "recipient.fax:" },
    { "fax_invalid", MSG("fax") RCPT("\"fax\":\"030-123456\"") "}", 0,
      DEAD_FIELD, "recipient.fax:" },
    { "tz_unknown", MSG("email")
      RCPT("\"email\":\"a@b.org\",\"tz\":\"Mars/Olympus_Mons\"") "}", 0,
      DEAD_FIELD, "recipient.tz:" },
    { "recipient_vars_not_object", MSG("email")
      RCPT("\"email\":\"a@b.org\",\"vars\":[\"Anna\"]") "}", 0, DEAD_FIELD,
      "recipient.vars:" },
    { "recipient_name_empty", MSG("email")
      RCPT("\"email\":\"a@b.org\",\"name\":\"\"") "}", 0, DEAD_FIELD,
      "recipient.name:" },
    { "message_send_at_local_garbage", MSG("email")
      RCPT("\"email\":\"a@b.org\",\"tz\":\"Europe/Berlin\"")
      ",\"send_at\":\"2027-05-17T09:00\"}", 0, DEAD_FIELD, "send_at:" },
    { "message_deliver_by_before_send_at", MSG("email")
      RCPT("\"email\":\"a@b.org\"") ",\"send_at\":\"2027-05-17T09:00:00Z\","
      "\"deliver_by\":\"2027-05-17T08:00:00Z\"}", 0, DEAD_FIELD,
      "deliver_by:" },
    /* control */
    { "control_bad_action", CTL "\"campaign\":\"spring-27\","
      "\"action\":\"stop\"}", 0, DEAD_FIELD, "action:" },
    { "control_action_missing", CTL "\"campaign\":\"spring-27\"}", 0,
      DEAD_FIELD, "action:" },
    { "control_campaign_missing", CTL "\"action\":\"pause\"}", 0, DEAD_FIELD,
      "campaign:" },
    { "control_campaign_empty", CTL "\"campaign\":\"\",\"action\":\"pause\"}",
      0, DEAD_FIELD, "campaign:" },
    { "control_unknown_field", CTL "\"campaign\":\"x\",\"action\":\"pause\","
      "\"channel\":\"email\"}", 0, DEAD_FIELD, "channel:" },
};

static void
test_bad_job(void **state)
{
    const struct bad_case *c = *state;

    parse_bad(c->json, strlen(c->json), c->small ? conf_small : conf,
              c->cls, c->prefix);
}

/* ------------------------------------------------------------------ */
/* Cases that show bugs (see the report): they assert the intended
 * behaviour. */

/* A message with expires before send_at and no deliver_by: the reason must
 * name expires, the field that is wrong (not deliver_by, which is absent). */
static void
test_message_expires_before_send_at(void **state)
{
    static const char s[] = MSG("email") RCPT("\"email\":\"a@b.org\"")
        ",\"send_at\":\"2027-05-17T09:00:00Z\","
        "\"expires\":\"2027-05-17T08:00:00Z\"}";

    (void)state;
    parse_bad(s, strlen(s), conf, DEAD_FIELD, "expires:");
}

/* 24:30 is no time of day. */
static void
test_window_hour_24(void **state)
{
    static const char s[] = CAMP("c", "email")
        "\"window\":{\"start\":\"24:30\",\"end\":\"20:00\"}," AUD "}";

    (void)state;
    parse_bad(s, strlen(s), conf, DEAD_FIELD, "window.start:");
}

/* recipient.tz is an IANA zone name taken from untrusted job data; GLib
 * treats '/'-rooted and relative names as file paths, so a job must not
 * be able to make the gateway open files outside the zone database. */
static void
test_tz_not_a_path(void **state)
{
    static const char *const tzs[] = {
        "/usr/share/zoneinfo/UTC",
        "../../../../usr/share/zoneinfo/UTC",
    };
    char buf[512];

    (void)state;
    for (size_t i = 0; i < sizeof tzs / sizeof tzs[0]; i++) {
        snprintf(buf, sizeof buf, MSG("email") RCPT("\"email\":\"a@b.org\","
                 "\"tz\":\"%s\"") "}", tzs[i]);
        parse_bad(buf, strlen(buf), conf, DEAD_FIELD, "recipient.tz:");
    }
}

/* An unknown field with a long name: the reason must still say what is
 * wrong, i.e. the quoted name is capped like every other quoted value. */
static void
test_unknown_field_long_key(void **state)
{
    static const char s[] = CAMP("c", "email") AUD ",\"" A100 A100 A100
        "\":1}";
    char reason[JOB_REASON_MAX] = "";
    enum dead_class cls;
    struct job *j;

    (void)state;
    assert_int_equal(job_parse(&j, s, strlen(s), conf, &cls, reason),
                     GW_EINVAL);
    assert_int_equal(cls, DEAD_FIELD);
    assert_int_equal(strncmp(reason, "aaaa", 4), 0);
    if (!strstr(reason, "unknown field"))
        print_error("reason: %s\n", reason);
    assert_non_null(strstr(reason, ": unknown field"));
}

/* Reasons quote job data: control characters in it come out escaped, so a
 * reason cannot forge log lines. */
static void
test_reason_escaped(void **state)
{
    static const char s[] = MSG("email")
        RCPT("\"email\":\"a@b.org\\r\\nBcc: x@y.org\"") "}";
    char reason[JOB_REASON_MAX] = "";
    enum dead_class cls;
    struct job *j;

    (void)state;
    assert_int_equal(job_parse(&j, s, strlen(s), conf, &cls, reason),
                     GW_EINVAL);
    assert_int_equal(strncmp(reason, "recipient.email:", 16), 0);
    assert_null(strchr(reason, '\r'));
    assert_null(strchr(reason, '\n'));
    assert_non_null(strstr(reason, "a@b.org\\x0d\\x0aBcc: x@y.org"));
}

/* ------------------------------------------------------------------ */
/* job_check_recipient with a path */

static json_t *
load_json(const char *s)
{
    json_error_t e;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &e);

    if (!v)
        print_error("test JSON: %s\n", e.text);
    assert_non_null(v);
    return v;
}

static void
check_recipient(const char *s, enum gw_channel ch, const char *prefix)
{
    char reason[JOB_REASON_MAX] = "";
    json_t *r = load_json(s);
    int rc = job_check_recipient(r, ch, "recipients[3]", reason);

    json_decref(r);
    if (!prefix) {
        if (rc != 0)
            print_error("%s: %s\n", s, reason);
        assert_int_equal(rc, 0);
        return;
    }
    if (rc != GW_EINVAL || strncmp(reason, prefix, strlen(prefix)) != 0)
        print_error("%s\n  reason %s, expected %s...\n", s, reason, prefix);
    assert_int_equal(rc, GW_EINVAL);
    assert_int_equal(strncmp(reason, prefix, strlen(prefix)), 0);
}

static void
test_check_recipient(void **state)
{
    static const char full[] = "{\"customer_id\":\"c123\","
        "\"email\":\"anna@example.org\",\"phone\":\"+4915112345678\","
        "\"fax\":\"+4930123456\",\"tz\":\"Europe/Berlin\",\"locale\":\"de\","
        "\"name\":\"Anna Schmidt\",\"vars\":{\"plan\":\"Gold\"}}";

    (void)state;
    check_recipient(full, CH_EMAIL, NULL);
    check_recipient(full, CH_SMS, NULL);
    check_recipient(full, CH_FAX, NULL);
    check_recipient("{\"customer_id\":\"c1\",\"email\":\"a@b.org\"}", CH_SMS,
                    "recipients[3].phone: missing");
    check_recipient("{\"customer_id\":\"c1\",\"email\":\"a@b.org\"}", CH_FAX,
                    "recipients[3].fax: missing");
    check_recipient("{\"customer_id\":\"c1\"}", CH_EMAIL,
                    "recipients[3].email: missing");
    check_recipient("[\"c1\"]", CH_EMAIL, "recipients[3]: must be an object");
    check_recipient("\"c1\"", CH_EMAIL, "recipients[3]: must be an object");
    check_recipient("{\"email\":\"a@b.org\"}", CH_EMAIL,
                    "recipients[3].customer_id: missing");
    check_recipient("{\"customer_id\":5,\"email\":\"a@b.org\"}", CH_EMAIL,
                    "recipients[3].customer_id: must be a string");
    check_recipient("{\"customer_id\":\"c1\",\"email\":\"a@@b.org\"}",
                    CH_EMAIL, "recipients[3].email: ");
    check_recipient("{\"customer_id\":\"c1\",\"phone\":\"+49\"}", CH_SMS,
                    "recipients[3].phone: ");
    check_recipient("{\"customer_id\":\"c1\",\"fax\":\"+0301234567\"}",
                    CH_FAX, "recipients[3].fax: ");
    check_recipient("{\"customer_id\":\"c1\",\"email\":\"a@b.org\","
                    "\"tz\":\"Nowhere/City\"}", CH_EMAIL,
                    "recipients[3].tz: unknown time zone");
    check_recipient("{\"customer_id\":\"c1\",\"email\":\"a@b.org\","
                    "\"locale\":7}", CH_EMAIL,
                    "recipients[3].locale: must be a string");
    check_recipient("{\"customer_id\":\"c1\",\"email\":\"a@b.org\","
                    "\"vars\":\"x\"}", CH_EMAIL,
                    "recipients[3].vars: must be an object");
    check_recipient("{\"customer_id\":\"c1\",\"email\":\"a@b.org\","
                    "\"dates\":{}}", CH_EMAIL,
                    "recipients[3].dates: unknown field");
    check_recipient("{\"customer_id\":\"c1\",\"email\":\"a@b.org\","
                    "\"name\":\"a\\tb\"}", CH_EMAIL, "recipients[3].name: ");
    /* null optional fields are absent */
    check_recipient("{\"customer_id\":\"c1\",\"email\":\"a@b.org\","
                    "\"phone\":null,\"tz\":null}", CH_EMAIL, NULL);
}

/* ------------------------------------------------------------------ */
/* address, number and time helpers */

static void
test_email_valid(void **state)
{
    static const char *const good[] = {
        "anna@example.org",
        "a.b+tag@sub.example.co.uk",
        "o'hara@example.ie",
        "x_y-z@a-b.example",
        "!#$%&'*+/=?^_`{|}~-@example.org",
        "A@EXAMPLE.ORG",
        "1@2.de",
        /* 64-character local part */
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "@example.org",
        /* 63-character label */
        "a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        ".org",
    };
    static const char *const bad[] = {
        "",
        "@",
        "anna.example.org",
        "@example.org",
        "anna@",
        "anna@example",
        "anna..b@example.org",
        ".anna@example.org",
        "anna.@example.org",
        "anna@example..org",
        "anna@.example.org",
        "anna@example.org.",
        "anna@-example.org",
        "anna@example-.org",
        "\"anna\"@example.org",
        "\"a b\"@example.org",
        "a@b.org\r\nBcc: x@y.org",
        "a@b.org\n",
        "anna smith@example.org",
        "anna@exa mple.org",
        "anna@exa_mple.org",
        "anna(comment)@example.org",
        "anna@[127.0.0.1]",
        "<anna@example.org>",
        "anna,ben@example.org",
        "anna@example.org,ben@example.org",
        "an\xc3\xa4@example.org",
        /* 65-character local part */
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "@example.org",
        /* 64-character label */
        "a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        ".org",
    };
    char big[300];

    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (!job_email_valid(good[i]))
            print_error("rejected: %s\n", good[i]);
        assert_true(job_email_valid(good[i]));
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (job_email_valid(bad[i]))
            print_error("accepted: %s\n", bad[i]);
        assert_false(job_email_valid(bad[i]));
    }
    /* total length: 254 allowed, 255 not (labels of 49 + '.') */
    strcpy(big, "a@");
    while (strlen(big) < 250)
        strcat(big, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.");
    big[250] = 0;                   /* ends in a label */
    strcat(big, "corg");            /* 254 */
    assert_int_equal(strlen(big), 254);
    assert_true(job_email_valid(big));
    strcat(big, "x");
    assert_false(job_email_valid(big));
}

static void
test_e164_valid(void **state)
{
    static const char *const good[] = {
        "+4915112345678", "+14155552671", "+1234567", "+123456789012345",
        "+4930123456",
    };
    static const char *const bad[] = {
        "", "+", "4915112345678", "+0123456789", "+49 151 12345678",
        "+49-151-12345678", "+123456", "+1234567890123456", "++4915112345",
        "+4915112345abc", "+49151123456\n", "00491511234567", "+\xd9\xa1"
        "23456789",
    };

    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (!job_e164_valid(good[i]))
            print_error("rejected: %s\n", good[i]);
        assert_true(job_e164_valid(good[i]));
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (job_e164_valid(bad[i]))
            print_error("accepted: %s\n", bad[i]);
        assert_false(job_e164_valid(bad[i]));
    }
}

static void
test_time_parse(void **state)
{
    static const struct {
        const char *s;
        const char *tz;
        int64_t ms;
    } good[] = {
        { "2027-03-01T09:00:00Z", NULL, MS(1803891600) },
        { "2027-03-01T10:00:00+01:00", NULL, MS(1803891600) },
        { "2027-03-01T04:00:00-05:00", NULL, MS(1803891600) },
        { "2027-03-01T14:30:00+05:30", NULL, MS(1803891600) },
        { "2027-03-01T09:00:00.250Z", NULL, MS(1803891600) + 250 },
        /* an offset wins over the zone */
        { "2027-07-15T07:00:00Z", "Europe/Berlin", MS(1815634800) },
        /* local time without a zone is UTC */
        { "2027-03-01T09:00:00", NULL, MS(1803891600) },
        /* Berlin: CET (+1) in January, CEST (+2) in July */
        { "2027-01-15T09:00:00", "Europe/Berlin", MS(1800000000) },
        { "2027-07-15T09:00:00", "Europe/Berlin", MS(1815634800) },
        { "2027-03-01T09:00:00", "UTC", MS(1803891600) },
        { "2028-02-29T12:00:00Z", NULL, MS(1835438400) },
        { "1970-01-01T00:00:01Z", NULL, 1000 },
    };
    static const struct {
        const char *s;
        const char *tz;
    } bad[] = {
        { "2027-02-30T09:00:00Z", NULL },
        { "2027-02-29T09:00:00Z", NULL },
        { "2027-13-01T09:00:00Z", NULL },
        { "2027-00-10T09:00:00Z", NULL },
        { "2027-03-01T25:00:00Z", NULL },
        { "2027-03-01T09:61:00Z", NULL },
        { "2027-03-01T09:00:00+25:00", NULL },
        { "2027-03-01 09:00:00Z", NULL },
        { "2027-03-01t09:00:00Z", NULL },
        { "2027-03-01T09:00Z", NULL },
        { "2027-03-01", NULL },
        { "20270301T090000Z", NULL },
        { "2027-03-01T09:00:00 Z", NULL },
        { "2027-03-01T09:00:00Zjunk", NULL },
        { "garbage", NULL },
        { "", NULL },
        { "2027-03-01T09:00:00", "Mars/Olympus_Mons" },
        { "2027-03-01T09:00:00", "" },
    };
    int64_t ms;

    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ms = -1;
        if (job_time_parse(good[i].s, good[i].tz, &ms) != 0 ||
            ms != good[i].ms)
            print_error("%s (%s): %lld, expected %lld\n", good[i].s,
                        good[i].tz ? good[i].tz : "UTC", (long long)ms,
                        (long long)good[i].ms);
        assert_int_equal(job_time_parse(good[i].s, good[i].tz, &ms), 0);
        assert_true(ms == good[i].ms);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = job_time_parse(bad[i].s, bad[i].tz, &ms);
        if (rc != GW_EINVAL)
            print_error("accepted: '%s' (%s)\n", bad[i].s,
                        bad[i].tz ? bad[i].tz : "UTC");
        assert_int_equal(rc, GW_EINVAL);
    }
}

static void
test_msg_key(void **state)
{
    char buf[64];

    (void)state;
    assert_int_equal(job_msg_key(buf, sizeof buf, "spring-27", "c123",
                                 CH_EMAIL), 0);
    assert_string_equal(buf, "spring-27:c123:email");
    assert_int_equal(job_msg_key(buf, sizeof buf, "s", "c", CH_SMS), 0);
    assert_string_equal(buf, "s:c:sms");
    assert_int_equal(job_msg_key(buf, sizeof buf, "s", "c", CH_FAX), 0);
    assert_string_equal(buf, "s:c:fax");
    /* exactly fits: 7 characters and the NUL */
    assert_int_equal(job_msg_key(buf, 8, "s", "c", CH_FAX), 0);
    assert_string_equal(buf, "s:c:fax");
    /* one short */
    assert_int_equal(job_msg_key(buf, 7, "s", "c", CH_FAX), GW_ETOOBIG);
    assert_int_equal(job_msg_key(buf, 1, "s", "c", CH_FAX), GW_ETOOBIG);
}

static void
test_dead_class_names(void **state)
{
    (void)state;
    assert_string_equal(dead_class_name(DEAD_JSON), "json");
    assert_string_equal(dead_class_name(DEAD_FIELD), "field");
    assert_string_equal(dead_class_name(DEAD_UNSUPPORTED), "unsupported");
    assert_string_equal(dead_class_name(DEAD_TOO_LARGE), "too_large");
    assert_string_equal(dead_class_name(DEAD_RECIPIENT), "recipient");
    assert_string_equal(dead_class_name(DEAD_DELIVERIES), "deliveries");
    assert_string_equal(dead_class_name(DEAD_COUNT), "other");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_campaign_inline),
        cmocka_unit_test(test_campaign_audience_key),
        cmocka_unit_test(test_message),
        cmocka_unit_test(test_control),
        cmocka_unit_test(test_len_respected),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_message_expires_before_send_at),
        cmocka_unit_test(test_window_hour_24),
        cmocka_unit_test(test_tz_not_a_path),
        cmocka_unit_test(test_unknown_field_long_key),
        cmocka_unit_test(test_reason_escaped),
        cmocka_unit_test(test_check_recipient),
        cmocka_unit_test(test_email_valid),
        cmocka_unit_test(test_e164_valid),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_msg_key),
        cmocka_unit_test(test_dead_class_names),
    };
    size_t nbad = sizeof bad_cases / sizeof bad_cases[0];
    struct CMUnitTest *bad;
    int failed;

    if (load_configs() < 0)
        return 1;
    failed = cmocka_run_group_tests_name("job", tests, NULL, NULL);
    if ((bad = calloc(nbad, sizeof *bad)) == NULL)
        return 1;
    for (size_t i = 0; i < nbad; i++) {
        bad[i].name = bad_cases[i].name;
        bad[i].test_func = test_bad_job;
        bad[i].initial_state = (void *)&bad_cases[i];
    }
    failed += _cmocka_run_group_tests("malformed jobs", bad, nbad, NULL,
                                      NULL);
    free(bad);
    free_configs();
    return failed;
}

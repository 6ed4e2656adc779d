/*
 * test_config.c -- tests for the configuration loader (gateway/config.c):
 * gateway.toml.example loads, defaults of absent sections, type and range
 * errors reported as file:line:col, unknown keys, sections and channels
 * with a "did you mean", provider checks, the channel/provider
 * cross-checks, --set overrides (replacing, bare strings, new tables, bad
 * --set, type errors), conf_suggest itself, TOML syntax errors and
 * in_doubt. Config files are written into a mkdtemp directory; the tests
 * run from the repo root so the example is found as gateway.toml.example.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "gateway/config.h"

#define ERRLEN 512

static char tmpdir[64];
static int nfile;

static int
group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_config.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int
group_teardown(void **state)
{
    DIR *d;
    struct dirent *e;
    char p[PATH_MAX + 300];

    (void)state;
    if ((d = opendir(tmpdir)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    return rmdir(tmpdir);
}

/* Write text into a new file of tmpdir; its path goes into path. */
static void
write_conf(const char *text, char path[PATH_MAX])
{
    FILE *f;

    snprintf(path, PATH_MAX, "%s/c%d.toml", tmpdir, ++nfile);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Load text (plus sets) and expect success; the caller frees. */
static struct config *
load_ok(const char *text, char *const *sets, size_t nsets)
{
    char path[PATH_MAX], err[ERRLEN] = "";
    struct config *c = NULL;
    int rc;

    write_conf(text, path);
    rc = conf_load(&c, path, sets, nsets, err, sizeof err);
    if (rc != 0)
        print_error("unexpected error: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(c);
    assert_string_equal(c->path, path);
    return c;
}

/* Load text (plus sets) and expect GW_ECONFIG; the message goes into err
 * and the file's path into path. */
static void
load_err(const char *text, char *const *sets, size_t nsets,
         char path[PATH_MAX], char err[ERRLEN])
{
    struct config *c = NULL;
    int rc;

    write_conf(text, path);
    err[0] = 0;
    rc = conf_load(&c, path, sets, nsets, err, ERRLEN);
    if (rc == 0)
        conf_free(c);
    assert_int_equal(rc, GW_ECONFIG);
    assert_null(c);
    assert_true(err[0] != 0);
}

static void
assert_has(const char *err, const char *needle)
{
    if (strstr(err, needle) == NULL)
        print_error("message: %s\nexpected to contain: %s\n", err, needle);
    assert_non_null(strstr(err, needle));
}

static void
assert_lacks(const char *err, const char *needle)
{
    if (strstr(err, needle) != NULL)
        print_error("message: %s\nexpected not to contain: %s\n", err,
                    needle);
    assert_null(strstr(err, needle));
}

/* err starts with "<path>:<line>:<col>: " (col 0: "<path>:<line>:"). */
static void
assert_at(const char *err, const char *path, int line, int col)
{
    char want[PATH_MAX + 40];

    if (col > 0)
        snprintf(want, sizeof want, "%s:%d:%d: ", path, line, col);
    else
        snprintf(want, sizeof want, "%s:%d:", path, line);
    if (strncmp(err, want, strlen(want)) != 0)
        print_error("message: %s\nexpected to start with: %s\n", err, want);
    assert_int_equal(strncmp(err, want, strlen(want)), 0);
}

/* A loaded config with the five plain sections at their defaults. */
static void
assert_plain_defaults(const struct config *c)
{
    assert_string_equal(c->log_level, "info");
    assert_int_equal(c->shutdown_timeout_ms, 30000);
    assert_string_equal(c->redis_url, "redis://127.0.0.1:6379/0");
    assert_string_equal(c->prefix, "gw:");
    assert_int_equal(c->redis_timeout_ms, 5000);
    assert_int_equal(c->reconnect_max_ms, 5000);
    assert_int_equal(c->events_maxlen, 1000000);
    assert_int_equal(c->ledger_ttl_s, 2592000);
    assert_int_equal(c->intake_batch, 100);
    assert_int_equal(c->block_ms, 1000);
    assert_int_equal(c->claim_idle_ms, 600000);
    assert_int_equal(c->max_deliveries, 5);
    assert_int_equal(c->max_job_bytes, 8388608);
    assert_int_equal(c->max_recipients_inline, 10000);
    assert_int_equal(c->expand_batch, 500);
    assert_int_equal(c->dispatch_batch, 256);
    assert_int_equal(c->max_inflight, 2048);
    assert_int_equal(c->retry_base_ms, 60000);
    assert_int_equal(c->retry_max_ms, 3600000);
    assert_int_equal(c->max_attempts, 10);
    assert_string_equal(c->http_listen, "127.0.0.1:8025");
}

static void
test_example_loads(void **state)
{
    const char *path = "gateway.toml.example";
    char err[ERRLEN] = "", host[256];
    struct config *c = NULL;
    const struct conf_provider *p;
    int rc;

    (void)state;
    rc = conf_load(&c, path, NULL, 0, err, sizeof err);
    if (rc != 0)
        print_error("%s (tests run from the repo root)\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(c);
    assert_string_equal(c->path, path);
    /* the example documents the defaults: same values as an empty file */
    assert_plain_defaults(c);
    /* consumer is commented out: the host name */
    assert_int_equal(gethostname(host, sizeof host), 0);
    host[sizeof host - 1] = 0;
    assert_string_equal(c->consumer, host);
    for (int ch = 0; ch < CH_COUNT; ch++)
        assert_string_equal(c->channel[ch].provider, "outbox");
    assert_string_equal(c->channel[CH_EMAIL].in_doubt, "resend");
    assert_int_equal(c->channel[CH_EMAIL].in_doubt_resend, 1);
    assert_string_equal(c->channel[CH_SMS].in_doubt, "hold");
    assert_int_equal(c->channel[CH_SMS].in_doubt_resend, 0);
    assert_string_equal(c->channel[CH_FAX].in_doubt, "hold");
    assert_int_equal(c->channel[CH_FAX].in_doubt_resend, 0);
    /* the outbox, and documented examples of an SMTP and an SMPP one */
    assert_int_equal(c->nprovider, 3);
    assert_string_equal(conf_provider_find(c, "mail")->type, "smtp");
    assert_string_equal(conf_provider_find(c, "sms1")->type, "smpp");
    p = conf_provider_find(c, "outbox");
    assert_non_null(p);
    assert_ptr_equal(p, &c->provider[0]);
    assert_string_equal(p->type, "outbox");
    assert_int_equal(p->channels, 7);
    assert_string_equal(conf_str(p, "dir"), "/var/spool/gatewayd/outbox");
    assert_int_equal(conf_bool(p, "fsync"), 1);
    assert_non_null(p->node);
    assert_null(conf_provider_find(c, "Outbox"));
    conf_free(c);
}

static void
test_defaults(void **state)
{
    struct config *c;
    char host[256];

    (void)state;
    /* an empty file */
    c = load_ok("", NULL, 0);
    assert_plain_defaults(c);
    assert_int_equal(gethostname(host, sizeof host), 0);
    host[sizeof host - 1] = 0;
    assert_string_equal(c->consumer, host);
    /* email is resent with the same Message-ID; a second SMS or fax
     * costs money, so those are held by default */
    for (int ch = 0; ch < CH_COUNT; ch++) {
        assert_null(c->channel[ch].provider);
        assert_string_equal(c->channel[ch].in_doubt,
                            ch == CH_EMAIL ? "resend" : "hold");
        assert_int_equal(c->channel[ch].in_doubt_resend, ch == CH_EMAIL);
    }
    assert_int_equal(c->nprovider, 0);
    assert_null(conf_provider_find(c, "outbox"));
    conf_free(c);

    /* one section given: only its keys change, the rest keep defaults */
    c = load_ok("# only intake\n[intake]\nbatch = 7\n"
                "[gateway]\nconsumer = \"gw-1\"\n", NULL, 0);
    assert_int_equal(c->intake_batch, 7);
    assert_int_equal(c->block_ms, 1000);
    assert_int_equal(c->max_job_bytes, 8388608);
    assert_string_equal(c->consumer, "gw-1");
    assert_string_equal(c->log_level, "info");
    assert_string_equal(c->redis_url, "redis://127.0.0.1:6379/0");
    assert_int_equal(c->dispatch_batch, 256);
    assert_string_equal(c->http_listen, "127.0.0.1:8025");
    conf_free(c);

    /* an empty consumer also means the host name */
    c = load_ok("[gateway]\nconsumer = \"\"\n", NULL, 0);
    assert_string_equal(c->consumer, host);
    conf_free(c);

    /* an outbox provider: channels default to all, fsync to true */
    c = load_ok("[provider.o]\ntype = \"outbox\"\ndir = \"/tmp/o\"\n", NULL,
                0);
    assert_int_equal(c->nprovider, 1);
    assert_string_equal(c->provider[0].name, "o");
    assert_int_equal(c->provider[0].channels, 7);
    assert_int_equal(conf_bool(&c->provider[0], "fsync"), 1);
    conf_free(c);

    conf_free(NULL);
}

/* Type errors: the message names the key and the types, and points at
 * the value (line, and the column where the value starts). */
static void
test_type_errors(void **state)
{
    static const struct {
        const char *text;
        int line, col;          /* of the value */
        int key_col;            /* of the key, for the diagnostic */
        const char *msg;
    } cases[] = {
        { "# type error\n[intake]\nbatch = \"x\"\n", 3, 9, 1,
          "intake.batch must be an integer, not string" },
        { "[redis]\nurl = 5\n", 2, 7, 1,
          "redis.url must be a string, not integer" },
        { "[gateway]\nlog_level = 3\n", 2, 13, 1,
          "gateway.log_level must be a string, not integer" },
        { "[dispatch]\nmax_attempts = 2.5\n", 2, 16, 1,
          "dispatch.max_attempts must be an integer, not float" },
        { "[http]\n  listen = [\"a\"]\n", 2, 12, 3,
          "http.listen must be a string, not array" },
        { "[provider.o]\ntype = \"outbox\"\ndir = \"/tmp\"\n"
          "fsync = \"yes\"\n", 4, 9, 1,
          "provider.o.fsync must be true or false, not string" },
        { "[provider.o]\ntype = \"outbox\"\ndir = \"/tmp\"\n"
          "channels = \"email\"\n", 4, 12, 1,
          "provider.o.channels must be an array of channel names" },
        { "[channel.sms]\nin_doubt = true\n", 2, 12, 1,
          "channel.sms.in_doubt must be a string, not boolean" },
    };
    char path[PATH_MAX], err[ERRLEN], want[PATH_MAX + 40];
    int bad = 0;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        load_err(cases[i].text, NULL, 0, path, err);
        assert_has(err, cases[i].msg);
        snprintf(want, sizeof want, "%s:%d:%d: ", path, cases[i].line,
                 cases[i].col);
        if (strncmp(err, want, strlen(want)) != 0) {
            snprintf(want, sizeof want, "%s:%d:%d: ", path, cases[i].line,
                     cases[i].key_col);
            print_error("case %zu: %s\n  expected position %d:%d (the "
                        "value)%s\n", i, err, cases[i].line, cases[i].col,
                        strncmp(err, want, strlen(want)) == 0 ?
                        "; got the key's column" : "");
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* An array element is located at the element itself. */
static void
test_channels_element_error(void **state)
{
    char path[PATH_MAX], err[ERRLEN];

    (void)state;
    load_err("[provider.o]\ntype = \"outbox\"\ndir = \"/tmp\"\n"
             "channels = [\"email\", \"pager\"]\n", NULL, 0, path, err);
    assert_at(err, path, 4, 22);
    assert_has(err, "provider.o.channels: channels are \"email\", \"sms\" "
               "and \"fax\"");

    load_err("[provider.o]\ntype = \"outbox\"\ndir = \"/tmp\"\n"
             "channels = []\n", NULL, 0, path, err);
    assert_at(err, path, 4, 0);
    assert_has(err, "provider.o.channels must name at least one channel");
}

static void
test_out_of_range(void **state)
{
    static const struct {
        const char *text;
        int line;
        const char *msg;
    } cases[] = {
        { "[intake]\nbatch = 0\n", 2,
          "intake.batch = 0 is out of range [1, 10000]" },
        { "[intake]\nbatch = 10001\n", 2,
          "intake.batch = 10001 is out of range [1, 10000]" },
        { "[redis]\nurl = \"redis://h\"\ntimeout_ms = 99\n", 3,
          "redis.timeout_ms = 99 is out of range [100, 600000]" },
        { "[dispatch]\nmax_attempts = -1\n", 2,
          "dispatch.max_attempts = -1 is out of range [1, 1000]" },
        { "[intake]\nmax_job_bytes = 1023\n", 2,
          "intake.max_job_bytes = 1023 is out of range [1024, 536870912]" },
        { "[redis]\nevents_maxlen = 1099511627777\n", 2,
          "redis.events_maxlen = 1099511627777 is out of range [1000, "
          "1099511627776]" },
        { "[gateway]\nshutdown_timeout_ms = -9223372036854775808\n", 2,
          "gateway.shutdown_timeout_ms = -9223372036854775808 is out of "
          "range [0, 3600000]" },
    };
    char path[PATH_MAX], err[ERRLEN];
    struct config *c;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        load_err(cases[i].text, NULL, 0, path, err);
        assert_at(err, path, cases[i].line, 0);
        assert_has(err, cases[i].msg);
    }
    /* both ends of a range are allowed */
    c = load_ok("[intake]\nbatch = 1\nmax_job_bytes = 1024\n"
                "[dispatch]\nbatch = 10000\n"
                "[redis]\nevents_maxlen = 1099511627776\n", NULL, 0);
    assert_int_equal(c->intake_batch, 1);
    assert_int_equal(c->max_job_bytes, 1024);
    assert_int_equal(c->dispatch_batch, 10000);
    assert_true(c->events_maxlen == INT64_C(1099511627776));
    conf_free(c);
}

static void
test_unknown_key(void **state)
{
    char path[PATH_MAX], err[ERRLEN];

    (void)state;
    load_err("[redis]\nurl = \"redis://x\"\nprefx = \"a:\"\n", NULL, 0, path,
             err);
    assert_at(err, path, 3, 1);
    assert_has(err, "unknown key 'prefx' in redis (did you mean 'prefix'?)");

    /* nothing close: no suggestion */
    load_err("[redis]\nzzzzzzzz = 1\n", NULL, 0, path, err);
    assert_at(err, path, 2, 1);
    assert_has(err, "unknown key 'zzzzzzzz' in redis");
    assert_lacks(err, "did you mean");

    /* a provider's own keys are candidates too */
    load_err("[provider.o]\ntype = \"outbox\"\n  dri = \"/tmp\"\n", NULL, 0,
             path, err);
    assert_at(err, path, 3, 3);
    assert_has(err, "unknown key 'dri' in provider.o (did you mean 'dir'?)");

    load_err("[channel.sms]\nin_dobut = \"hold\"\n", NULL, 0, path, err);
    assert_at(err, path, 2, 1);
    assert_has(err, "unknown key 'in_dobut' in channel.sms (did you mean "
               "'in_doubt'?)");

    /* a key of another section is unknown here */
    load_err("[intake]\nurl = \"redis://x\"\n", NULL, 0, path, err);
    assert_at(err, path, 2, 1);
    assert_has(err, "unknown key 'url' in intake");
}

static void
test_unknown_section(void **state)
{
    char path[PATH_MAX], err[ERRLEN];

    (void)state;
    load_err("[redsi]\nurl = \"redis://x\"\n", NULL, 0, path, err);
    assert_at(err, path, 1, 2);
    assert_has(err, "unknown section 'redsi' (did you mean 'redis'?)");

    load_err("[gateway]\n\n[ intkae ]\n", NULL, 0, path, err);
    assert_at(err, path, 3, 3);
    assert_has(err, "unknown section 'intkae' (did you mean 'intake'?)");

    load_err("frobnicate.x = 1\n", NULL, 0, path, err);
    assert_at(err, path, 1, 1);
    assert_has(err, "unknown section 'frobnicate'");
    assert_lacks(err, "did you mean");

    /* a known section must be a table */
    load_err("gateway = 1\n", NULL, 0, path, err);
    assert_at(err, path, 1, 1);
    assert_has(err, "gateway must be a table");
}

/*
 * Unknown channels: run in a child process, because an out-of-bounds read
 * in the loader would abort the whole program under ASan; the child's
 * verdict comes back as its exit status.
 */
static int
unknown_channel_child(void)
{
    static const struct {
        const char *text;
        const char *msg;
        int suggests;
    } cases[] = {
        { "[channel.emial]\nprovider = \"x\"\n",
          "unknown channel 'emial' (did you mean 'email'?)", 1 },
        { "[channel.pigeon]\n", "unknown channel 'pigeon'", 0 },
        { "[channel]\nfaks = {}\n",
          "unknown channel 'faks' (did you mean 'fax'?)", 1 },
    };
    char path[PATH_MAX], err[ERRLEN], want[PATH_MAX + 40];
    struct config *c;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, "%s/chan%zu.toml", tmpdir, i);
        FILE *f = fopen(path, "w");
        if (!f || fputs(cases[i].text, f) < 0 || fclose(f) != 0)
            return 2;
        c = NULL;
        if (conf_load(&c, path, NULL, 0, err, sizeof err) != GW_ECONFIG) {
            conf_free(c);
            fprintf(stderr, "case %zu: loaded\n", i);
            return 1;
        }
        snprintf(want, sizeof want, "%s:%d:%d: ", path, i == 2 ? 2 : 1,
                 i == 2 ? 1 : 10);
        if (strncmp(err, want, strlen(want)) != 0 ||
            strstr(err, cases[i].msg) == NULL ||
            (!cases[i].suggests && strstr(err, "did you mean"))) {
            fprintf(stderr, "case %zu: %s\n  expected %s%s\n", i, err, want,
                    cases[i].msg);
            return 1;
        }
    }
    return 0;
}

static void
test_unknown_channel(void **state)
{
    pid_t pid;
    int status;

    (void)state;
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(unknown_channel_child());
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        print_error("unknown-channel child: %s %d\n",
                    WIFEXITED(status) ? "exit" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status)
                                      : WTERMSIG(status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_provider_errors(void **state)
{
    char path[PATH_MAX], err[ERRLEN];

    (void)state;
    /* missing type: located at the provider's name in the header */
    load_err("[provider.p]\ndir = \"/tmp\"\n", NULL, 0, path, err);
    assert_at(err, path, 1, 11);
    assert_has(err, "provider.p: missing key 'type' (one of: outbox");

    /* unknown type */
    load_err("[provider.p]\ntype = \"carrier-pigeon\"\n", NULL, 0, path,
             err);
    assert_at(err, path, 2, 0);
    assert_has(err, "provider.p.type: 'carrier-pigeon' is not one of the "
               "allowed values");
    assert_lacks(err, "did you mean");

    load_err("[provider.p]\ntype = \"outbx\"\n", NULL, 0, path, err);
    assert_at(err, path, 2, 0);
    assert_has(err, "provider.p.type: 'outbx' is not one of the allowed "
               "values (did you mean 'outbox'?)");

    load_err("[provider.p]\ntype = 1\n", NULL, 0, path, err);
    assert_at(err, path, 2, 0);
    assert_has(err, "provider.p.type must be a string, not integer");

    /* outbox without dir, or with an empty one */
    load_err("[provider.box]\ntype = \"outbox\"\n", NULL, 0, path, err);
    assert_at(err, path, 1, 11);
    assert_has(err, "provider.box: an outbox provider needs 'dir'");

    load_err("[provider.box]\ntype = \"outbox\"\ndir = \"\"\n", NULL, 0,
             path, err);
    assert_at(err, path, 1, 11);
    assert_has(err, "provider.box: an outbox provider needs 'dir'");

    /* a provider must be a table */
    load_err("[provider]\nbox = 1\n", NULL, 0, path, err);
    assert_at(err, path, 2, 1);
    assert_has(err, "provider.box must be a table");
}

/*
 * An unknown type written after a backend key: the error should still be
 * about the type (the key only looks unknown because the type is).
 */
static void
test_provider_unknown_type_after_key(void **state)
{
    char path[PATH_MAX], err[ERRLEN];

    (void)state;
    load_err("[provider.p]\ndir = \"/tmp\"\ntype = \"carrier-pigeon\"\n", NULL,
             0, path, err);
    assert_has(err, "provider.p.type: 'carrier-pigeon' is not one of the "
               "allowed values");
    assert_at(err, path, 3, 0);
}

static void
test_channel_provider_checks(void **state)
{
    char path[PATH_MAX], err[ERRLEN];
    struct config *c;

    (void)state;
    /* a channel names a provider that does not exist */
    load_err("[provider.outbox]\ntype = \"outbox\"\ndir = \"/tmp\"\n"
             "[channel.email]\nprovider = \"nope\"\n", NULL, 0, path, err);
    assert_at(err, path, 5, 0);
    assert_has(err, "channel.email.provider: no provider named 'nope'");

    /* the same with no [provider] at all */
    load_err("[channel.fax]\nin_doubt = \"hold\"\nprovider = \"outbox\"\n",
             NULL, 0, path, err);
    assert_at(err, path, 3, 0);
    assert_has(err, "channel.fax.provider: no provider named 'outbox'");

    /* the provider exists but its channels exclude this one: located at
     * the provider */
    load_err("[provider.mailonly]\ntype = \"outbox\"\ndir = \"/tmp\"\n"
             "channels = [\"email\"]\n"
             "[channel.email]\nprovider = \"mailonly\"\n"
             "[channel.sms]\nprovider = \"mailonly\"\n", NULL, 0, path, err);
    assert_at(err, path, 1, 11);
    assert_has(err, "provider 'mailonly' does not serve channel 'sms'");

    /* and the valid combination loads */
    c = load_ok("[provider.mailonly]\ntype = \"outbox\"\ndir = \"/tmp\"\n"
                "channels = [\"email\", \"email\"]\nfsync = false\n"
                "[provider.all]\ntype = \"outbox\"\ndir = \"/tmp/all\"\n"
                "[channel.email]\nprovider = \"mailonly\"\n"
                "[channel.sms]\nprovider = \"all\"\n", NULL, 0);
    assert_int_equal(c->nprovider, 2);
    assert_string_equal(c->channel[CH_EMAIL].provider, "mailonly");
    assert_string_equal(c->channel[CH_SMS].provider, "all");
    assert_null(c->channel[CH_FAX].provider);
    assert_int_equal(conf_provider_find(c, "mailonly")->channels,
                     1u << CH_EMAIL);
    assert_int_equal(conf_bool(conf_provider_find(c, "mailonly"), "fsync"), 0);
    assert_string_equal(conf_str(conf_provider_find(c, "all"), "dir"), "/tmp/all");
    conf_free(c);

    /* redis.url must be redis:// or unix:// */
    load_err("[redis]\nurl = \"http://127.0.0.1:6379\"\n", NULL, 0, path,
             err);
    assert_at(err, path, 2, 0);
    assert_has(err, "redis.url must start with redis:// or unix://");
    c = load_ok("[redis]\nurl = \"unix:///run/redis.sock?db=2\"\n", NULL, 0);
    assert_string_equal(c->redis_url, "unix:///run/redis.sock?db=2");
    conf_free(c);
}

static void
test_set_overrides(void **state)
{
    char *sets[8];
    char err[ERRLEN] = "";
    struct config *c = NULL;
    int rc;

    (void)state;
    /* replacing a value of the example: not TOML, so a bare string */
    sets[0] = "redis.url=redis://10.0.0.1:7000/2";
    sets[1] = "intake.batch=42";
    sets[2] = "gateway.consumer=gw-7";
    sets[3] = "redis.prefix=\"{gw}:\"";
    sets[4] = "channel.sms.in_doubt=resend";
    sets[5] = "dispatch.max_attempts=3";
    sets[6] = "dispatch.max_attempts=4";   /* the last one wins */
    rc = conf_load(&c, "gateway.toml.example", sets, 7, err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(c->redis_url, "redis://10.0.0.1:7000/2");
    assert_int_equal(c->intake_batch, 42);
    assert_string_equal(c->consumer, "gw-7");
    assert_string_equal(c->prefix, "{gw}:");
    assert_int_equal(c->channel[CH_SMS].in_doubt_resend, 1);
    assert_int_equal(c->max_attempts, 4);
    /* untouched keys keep the file's values */
    assert_int_equal(c->block_ms, 1000);
    assert_int_equal(c->channel[CH_FAX].in_doubt_resend, 0);
    conf_free(c);

    /* bare strings keep quotes, backslashes and brackets as written */
    sets[0] = "redis.prefix=a\"b\\c";
    sets[1] = "http.listen=[::1]:8025";
    c = load_ok("", sets, 2);
    assert_string_equal(c->prefix, "a\"b\\c");
    assert_string_equal(c->http_listen, "[::1]:8025");
    conf_free(c);

    /* creating missing tables, down to a whole provider */
    sets[0] = "dispatch.max_attempts=3";
    sets[1] = "provider.x.type=outbox";
    sets[2] = "provider.x.dir=/tmp/x";
    sets[3] = "provider.x.channels=[\"sms\"]";
    sets[4] = "channel.sms.provider=x";
    sets[5] = "channel.fax.in_doubt=hold";
    c = load_ok("[gateway]\nlog_level = \"warn\"\n", sets, 6);
    assert_int_equal(c->max_attempts, 3);
    assert_int_equal(c->nprovider, 1);
    assert_string_equal(c->provider[0].name, "x");
    assert_string_equal(c->provider[0].type, "outbox");
    assert_string_equal(conf_str(&c->provider[0], "dir"), "/tmp/x");
    assert_int_equal(c->provider[0].channels, 1u << CH_SMS);
    assert_string_equal(c->channel[CH_SMS].provider, "x");
    assert_int_equal(c->channel[CH_FAX].in_doubt_resend, 0);
    assert_string_equal(c->log_level, "warn");
    conf_free(c);

    /* a value in TOML syntax that is not a string */
    sets[0] = "provider.outbox.fsync=false";
    c = load_ok("[provider.outbox]\ntype = \"outbox\"\ndir = \"/tmp\"\n",
                sets, 1);
    assert_int_equal(conf_bool(&c->provider[0], "fsync"), 0);
    conf_free(c);
}

static void
test_set_invalid(void **state)
{
    char path[PATH_MAX], err[ERRLEN];
    char *sets[1];

    (void)state;
    sets[0] = "intakebatch";
    load_err("", sets, 1, path, err);
    assert_string_equal(err, "--set intakebatch: expected section.key=value");

    sets[0] = "=5";
    load_err("", sets, 1, path, err);
    assert_string_equal(err, "--set =5: expected section.key=value");

    sets[0] = "a..b=1";
    load_err("", sets, 1, path, err);
    assert_int_equal(strncmp(err, "--set a..b=1: ", 14), 0);

    /* a path through a value that is not a table */
    sets[0] = "redis.url.x=1";
    load_err("[redis]\nurl = \"redis://x\"\n", sets, 1, path, err);
    assert_int_equal(strncmp(err, "--set redis.url.x=1: ", 21), 0);
    assert_has(err, "url");
}

static void
test_set_type_error(void **state)
{
    static const struct {
        const char *set;
        const char *msg;
    } cases[] = {
        { "intake.batch=abc", "intake.batch must be an integer, not string" },
        { "redis.prefix=true", "redis.prefix must be a string, not boolean" },
        { "intake.batch=0", "intake.batch = 0 is out of range [1, 10000]" },
        { "gateway.log_level=verbose",
          "gateway.log_level: 'verbose' is not one of the allowed values" },
        { "redis.url=http://x",
          "redis.url must start with redis:// or unix://" },
        { "redis.prefx=a",
          "unknown key 'prefx' in redis (did you mean 'prefix'?)" },
        { "channel.email.provider=nope",
          "channel.email.provider: no provider named 'nope'" },
    };
    char path[PATH_MAX], err[ERRLEN], want[PATH_MAX + 4];
    char *sets[1];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sets[0] = (char *)cases[i].set;
        load_err("[intake]\nbatch = 5\n", sets, 1, path, err);
        /* the error is reported against the file */
        snprintf(want, sizeof want, "%s:", path);
        if (strncmp(err, want, strlen(want)) != 0)
            print_error("%s: %s\n", cases[i].set, err);
        assert_int_equal(strncmp(err, want, strlen(want)), 0);
        assert_has(err, cases[i].msg);
    }
}

static void
test_conf_suggest(void **state)
{
    static const char *const keys[] = {
        "url", "prefix", "timeout_ms", "reconnect_max_ms", NULL
    };
    static const char *const none[] = { NULL };
    static const char *const doubt[] = { "resend", "hold", NULL };
    char longw[80];

    (void)state;
    assert_string_equal(conf_suggest("prefx", keys), "prefix");
    assert_string_equal(conf_suggest("prefi", keys), "prefix");
    assert_string_equal(conf_suggest("prefix", keys), "prefix");
    assert_null(conf_suggest("PREFIX", keys));
    assert_string_equal(conf_suggest("urll", keys), "url");
    assert_string_equal(conf_suggest("ulr", keys), "url");
    assert_string_equal(conf_suggest("timeoutms", keys), "timeout_ms");
    assert_string_equal(conf_suggest("reconect_max", keys),
                        "reconnect_max_ms");
    assert_null(conf_suggest("xyz", keys));
    assert_null(conf_suggest("", keys));
    assert_null(conf_suggest("completely_different", keys));
    assert_null(conf_suggest("prefix", none));
    assert_string_equal(conf_suggest("hodl", doubt), "hold");
    assert_string_equal(conf_suggest("resnd", doubt), "resend");
    assert_null(conf_suggest("maybe", doubt));
    /* very long words are never close */
    memset(longw, 'a', sizeof longw - 1);
    longw[sizeof longw - 1] = 0;
    assert_null(conf_suggest(longw, keys));
}

static void
test_syntax_error(void **state)
{
    char path[PATH_MAX], err[ERRLEN];

    (void)state;
    load_err("[intake]\nbatch = = 1\n", NULL, 0, path, err);
    assert_at(err, path, 2, 9);
    assert_has(err, "expected a value");

    load_err("[redis]\nurl = \"unterminated\n", NULL, 0, path, err);
    assert_at(err, path, 2, 7);
    assert_has(err, "unterminated string");

    /* the same key twice is a TOML error, at the second one */
    load_err("[intake]\nbatch = 1\nbatch = 2\n", NULL, 0, path, err);
    assert_at(err, path, 3, 1);

    /* a missing file */
    {
        struct config *c = NULL;
        char e[ERRLEN];
        assert_int_equal(conf_load(&c, "/nonexistent/gw.toml", NULL, 0, e,
                                   sizeof e), GW_ECONFIG);
        assert_null(c);
        assert_string_equal(e, "/nonexistent/gw.toml: No such file or "
                            "directory");
    }
}

static void
test_in_doubt(void **state)
{
    char path[PATH_MAX], err[ERRLEN];
    struct config *c;

    (void)state;
    c = load_ok("[channel.email]\nin_doubt = \"hold\"\n"
                "[channel.sms]\nin_doubt = \"resend\"\n", NULL, 0);
    assert_string_equal(c->channel[CH_EMAIL].in_doubt, "hold");
    assert_int_equal(c->channel[CH_EMAIL].in_doubt_resend, 0);
    assert_string_equal(c->channel[CH_SMS].in_doubt, "resend");
    assert_int_equal(c->channel[CH_SMS].in_doubt_resend, 1);
    assert_string_equal(c->channel[CH_FAX].in_doubt, "hold");
    assert_int_equal(c->channel[CH_FAX].in_doubt_resend, 0);
    conf_free(c);

    load_err("[channel.email]\nin_doubt = \"hodl\"\n", NULL, 0, path, err);
    assert_at(err, path, 2, 0);
    assert_has(err, "channel.email.in_doubt: 'hodl' is not one of the "
               "allowed values (did you mean 'hold'?)");

    load_err("[channel.fax]\nin_doubt = \"maybe\"\n", NULL, 0, path, err);
    assert_at(err, path, 2, 0);
    assert_has(err, "channel.fax.in_doubt: 'maybe' is not one of the "
               "allowed values");
    assert_lacks(err, "did you mean");

    /* case matters */
    load_err("[channel.sms]\nin_doubt = \"HOLD\"\n", NULL, 0, path, err);
    assert_has(err, "'HOLD' is not one of the allowed values");
}

static void
test_channel_names(void **state)
{
    (void)state;
    assert_int_equal(gw_channel_parse("email"), CH_EMAIL);
    assert_int_equal(gw_channel_parse("sms"), CH_SMS);
    assert_int_equal(gw_channel_parse("fax"), CH_FAX);
    assert_int_equal(gw_channel_parse("Email"), -1);
    assert_int_equal(gw_channel_parse(""), -1);
    assert_string_equal(gw_channel_name(CH_EMAIL), "email");
    assert_string_equal(gw_channel_name(CH_SMS), "sms");
    assert_string_equal(gw_channel_name(CH_FAX), "fax");
    assert_string_equal(gw_channel_name(CH_COUNT), "?");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_channels_element_error),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_unknown_section),
        cmocka_unit_test(test_unknown_channel),
        cmocka_unit_test(test_provider_errors),
        cmocka_unit_test(test_provider_unknown_type_after_key),
        cmocka_unit_test(test_channel_provider_checks),
        cmocka_unit_test(test_set_overrides),
        cmocka_unit_test(test_set_invalid),
        cmocka_unit_test(test_set_type_error),
        cmocka_unit_test(test_conf_suggest),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_in_doubt),
        cmocka_unit_test(test_channel_names),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

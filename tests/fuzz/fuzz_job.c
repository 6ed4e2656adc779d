/*
 * fuzz_job.c -- libFuzzer target for job parsing (gateway/job.c): each
 * input goes to job_parse against a config loaded once in
 * LLVMFuzzerInitialize (written to a temp file, then conf_load; providers
 * "outbox" for all channels and "mailonly" for email, small limits so the
 * caps are reached). An accepted job has its fields walked and each inline
 * recipient checked; short inputs also go, as C strings, to the address,
 * number and time helpers. Every call's result is checked for the
 * contract of job.h (reason set, class in range, *out NULL on failure).
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE
 *        -I. -Icommon $(pkg-config --cflags jansson glib-2.0)
 *        tests/fuzz/fuzz_job.c gateway/job.c gateway/config.c
 *        gateway/toml.c common/[a-z]*.c
 *        $(pkg-config --libs jansson glib-2.0)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "gateway/config.h"
#include "gateway/job.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct config *conf;

static const char conf_text[] =
    "[intake]\n"
    "max_job_bytes = 65536\n"
    "max_recipients_inline = 16\n"
    "[provider.outbox]\n"
    "type = \"outbox\"\n"
    "dir = \"/tmp/fuzz_job-outbox\"\n"
    "[provider.mailonly]\n"
    "type = \"outbox\"\n"
    "channels = [\"email\"]\n"
    "dir = \"/tmp/fuzz_job-mail\"\n"
    "[channel.email]\n"
    "provider = \"mailonly\"\n"
    "[channel.sms]\n"
    "provider = \"outbox\"\n";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char path[] = "/tmp/fuzz_job.XXXXXX", err[512];
    int fd;

    (void)argc;
    (void)argv;
    if ((fd = mkstemp(path)) < 0 ||
        write(fd, conf_text, sizeof conf_text - 1) !=
            (ssize_t)(sizeof conf_text - 1) ||
        close(fd) != 0) {
        perror("fuzz_job: config");
        abort();
    }
    if (conf_load(&conf, path, NULL, 0, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_job: %s\n", err);
        abort();
    }
    unlink(path);
    return 0;
}

/* Walk what an accepted job hands to the intake. */
static void
use_job(const struct job *j)
{
    char reason[JOB_REASON_MAX], key[512];
    size_t i;
    json_t *r;

    if (!j->id || !*j->id || strlen(j->id) > 200)
        abort();
    if (j->type == JOB_CONTROL) {
        if (!j->campaign || (unsigned)j->action > CTL_CANCEL)
            abort();
        return;
    }
    if ((unsigned)j->channel >= CH_COUNT || !j->provider || !j->template ||
        strchr(j->template, '/'))
        abort();
    if (!(conf_provider_find(conf, j->provider)->channels &
          (1u << j->channel)))
        abort();
    if (j->expires_ms && j->send_at_ms && j->expires_ms <= j->send_at_ms)
        abort();
    if (j->type == JOB_MESSAGE) {
        if (job_check_recipient(j->recipient, j->channel, "recipient",
                                reason) != 0)
            abort();
        return;
    }
    if (strchr(j->id, ':') || (!j->audience_key == !j->recipients))
        abort();
    if (j->recipients) {
        if (json_array_size(j->recipients) == 0 ||
            (int64_t)json_array_size(j->recipients) >
                conf->max_recipients_inline)
            abort();
        json_array_foreach(j->recipients, i, r) {
            char path[32];
            const char *cid;
            snprintf(path, sizeof path, "recipients[%zu]", i);
            reason[0] = 0;
            if (job_check_recipient(r, j->channel, path, reason) != 0) {
                if (strncmp(reason, path, strlen(path)) != 0)
                    abort();
                continue;
            }
            cid = json_string_value(json_object_get(r, "customer_id"));
            if (!cid)
                abort();
            (void)job_msg_key(key, sizeof key, j->id, cid, j->channel);
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char reason[JOB_REASON_MAX];
    enum dead_class cls = DEAD_COUNT;
    static struct job sentinel;
    struct job *j = &sentinel;              /* must be reset to NULL */
    int rc;

    reason[0] = 0;
    rc = job_parse(&j, (const char *)data, size, conf, &cls, reason);
    if (rc == 0) {
        if (!j)
            abort();
        use_job(j);
        job_free(j);
    } else {
        /* (a reason is not checked for its "path: message" shape: a long
         * unknown key truncates it before the ':', see the report) */
        if (rc != GW_EINVAL || j != NULL || (unsigned)cls >= DEAD_COUNT ||
            !reason[0])
            abort();
        for (const char *p = reason; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                abort();
    }

    /* the helpers, on the same bytes as a C string */
    if (size < 512 && memchr(data, 0, size) == NULL) {
        char *s = malloc(size + 1);
        int64_t ms;
        if (!s)
            return 0;
        memcpy(s, data, size);
        s[size] = 0;
        (void)job_email_valid(s);
        (void)job_e164_valid(s);
        (void)job_time_parse(s, NULL, &ms);
        (void)job_time_parse(s, "Europe/Berlin", &ms);
        free(s);
    }
    return 0;
}

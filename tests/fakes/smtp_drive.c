/*
 * smtp_drive.c -- drives one channel backend without the daemon: loads a
 * gateway.toml, opens the named provider on a libuv loop, sends messages
 * built from JSON lines (or writes their MIME bytes with --mime) and
 * prints every outcome as a JSON line, then a summary with the rate. Used
 * by tests/integration/test_smtp.py against aiosmtpd and smtp-sink, and
 * by hand for benchmarks. Exits 3 if the loop does not close cleanly.
 *
 *   smtp_drive -c gw.toml -p PROVIDER [-j specs.jsonl] [-n N] [-i INFLIGHT]
 *              [-C CLOSE_AFTER_MS] [-q]
 *   smtp_drive --mime DIR [-j specs.jsonl] [-n N]
 *
 * A spec line: {"key","to","to_name","subject","text","html","class",
 * "campaign","unsubscribe_url","unsubscribe_mailto","images":[{"name",
 * "content_type","content_id","data_b64"}]}; in --mime mode also "from",
 * "from_name", "id_domain", "list_id", "date". "{i}" in key, to, to_name
 * and subject becomes the message's number. Without -j one plain spec.
 */
#include "channels/channel.h"
#include "channels/mime.h"
#include "common/buf.h"
#include "common/err.h"
#include "gateway/config.h"

#include <getopt.h>
#include <glib.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct spec {
    json_t *j;
    struct content_image *images;
    unsigned char **data;
    size_t nimages;
};

struct item {
    struct message m;
    char *key, *to, *to_name, *subject;
    size_t n;
    uint64_t sent_at;
};

static struct spec *specs;
static size_t nspecs;
static size_t total = 1, next, done_n, inflight_max = 1000, inflight;
static uint64_t counts[3], t0;
static int quiet;
static struct channel *ch;
static uv_loop_t loop;
static uv_timer_t close_timer;
static int closing;
static const char *const res_names[] = { "ok", "tempfail", "permfail" };

static const char *
js(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* s with "{i}" replaced by n; new string, or NULL for NULL. */
static char *
subst(const char *s, size_t n)
{
    GString *g;
    const char *p;

    if (!s)
        return NULL;
    g = g_string_new(NULL);
    while ((p = strstr(s, "{i}")) != NULL) {
        g_string_append_len(g, s, p - s);
        g_string_append_printf(g, "%zu", n);
        s = p + 3;
    }
    g_string_append(g, s);
    return g_string_free(g, FALSE);
}

static void
load_specs(const char *path)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    char line[1 << 20];
    json_error_t je;

    if (path && !f) {
        perror(path);
        exit(2);
    }
    while (f && fgets(line, sizeof line, f)) {
        json_t *j, *imgs;
        struct spec *sp;

        if (line[0] == '\n' || line[0] == '#')
            continue;
        if ((j = json_loads(line, JSON_ALLOW_NUL, &je)) == NULL) {
            fprintf(stderr, "%s: %s\n", path, je.text);
            exit(2);
        }
        specs = realloc(specs, (nspecs + 1) * sizeof *specs);
        sp = &specs[nspecs++];
        memset(sp, 0, sizeof *sp);
        sp->j = j;
        imgs = json_object_get(j, "images");
        sp->nimages = json_array_size(imgs);
        sp->images = calloc(sp->nimages + 1, sizeof *sp->images);
        sp->data = calloc(sp->nimages + 1, sizeof *sp->data);
        for (size_t i = 0; i < sp->nimages; i++) {
            json_t *im = json_array_get(imgs, i);
            gsize len = 0;
            sp->data[i] = g_base64_decode(js(im, "data_b64") ?
                                          js(im, "data_b64") : "", &len);
            sp->images[i].name = js(im, "name");
            sp->images[i].content_type = js(im, "content_type");
            sp->images[i].content_id = js(im, "content_id");
            sp->images[i].data = sp->data[i];
            sp->images[i].len = len;
        }
    }
    if (f)
        fclose(f);
    if (nspecs == 0) {
        specs = calloc(1, sizeof *specs);
        specs[0].j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "key",
                               "drive-{i}", "to", "user{i}@example.org",
                               "subject", "Test {i}", "text",
                               "Hello,\nthis is message {i}.\n", "html",
                               "<p>Hello, this is message {i}.</p>");
        nspecs = 1;
    }
}

static const char *
jstr_len(json_t *o, const char *k, size_t *len)
{
    json_t *v = json_object_get(o, k);

    *len = json_is_string(v) ? json_string_length(v) : 0;
    return json_string_value(v);
}

static struct item *
item_new(size_t n)
{
    struct item *it = calloc(1, sizeof *it);
    struct spec *sp = &specs[n % nspecs];
    json_t *j = sp->j;
    struct message *m = &it->m;

    it->n = n;
    it->key = subst(js(j, "key") ? js(j, "key") : "drive-{i}", n);
    it->to = subst(js(j, "to"), n);
    it->to_name = subst(js(j, "to_name"), n);
    it->subject = subst(js(j, "subject"), n);
    m->key = it->key;
    m->channel = CH_EMAIL;
    m->campaign = js(j, "campaign");
    m->customer = "c";
    m->provider = "p";
    m->template = "t";
    m->class = js(j, "class");
    m->attempt = 1;
    m->to = it->to;
    m->to_name = it->to_name;
    m->unsubscribe_url = js(j, "unsubscribe_url");
    m->unsubscribe_mailto = js(j, "unsubscribe_mailto");
    m->content.subject = it->subject;
    m->content.subject_len = it->subject ? strlen(it->subject) : 0;
    /* a NUL inside the spec's subject reaches the channel as a length */
    if (it->subject && strstr(js(j, "subject"), "{i}") == NULL)
        m->content.subject_len = json_string_length(json_object_get(j,
                                                                    "subject"));
    if (it->subject && m->content.subject_len != strlen(it->subject)) {
        g_free(it->subject);
        it->subject = g_malloc(m->content.subject_len + 1);
        memcpy(it->subject, js(j, "subject"), m->content.subject_len + 1);
        m->content.subject = it->subject;
    }
    m->content.text = jstr_len(j, "text", &m->content.text_len);
    m->content.html = jstr_len(j, "html", &m->content.html_len);
    m->content.images = sp->images;
    m->content.nimages = sp->nimages;
    m->log.module = "email";
    m->log.ctx = it->key;
    return it;
}

static void
item_free(struct item *it)
{
    g_free(it->key);
    g_free(it->to);
    g_free(it->to_name);
    g_free(it->subject);
    free(it);
}

static void pump(void);

static void
on_closed(struct channel *c, void *arg)
{
    (void)c;
    (void)arg;
    ch = NULL;
    if (uv_is_active((uv_handle_t *)&close_timer))
        uv_timer_stop(&close_timer);
    uv_close((uv_handle_t *)&close_timer, NULL);
}

static void
finish_all(void)
{
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    struct channel_stats st;

    ch_stats(ch, &st);
    printf("{\"summary\":true,\"messages\":%zu,\"ok\":%llu,\"tempfail\":%llu,"
           "\"permfail\":%llu,\"seconds\":%.3f,\"rate\":%.1f}\n", done_n,
           (unsigned long long)counts[0], (unsigned long long)counts[1],
           (unsigned long long)counts[2], secs,
           secs > 0 ? (double)done_n / secs : 0.0);
    fflush(stdout);
    if (!closing) {
        closing = 1;
        ch_close(ch, on_closed, NULL);
    }
}

static void
on_done(struct message *m, const struct send_outcome *o, void *arg)
{
    struct item *it = arg;

    (void)m;
    counts[o->result]++;
    done_n++;
    inflight--;
    if (!quiet) {
        json_t *j = json_pack("{s:I, s:s, s:s, s:s?, s:s?, s:i, s:i}", "i",
                              (json_int_t)it->n, "key", it->key, "result",
                              res_names[o->result], "provider_id",
                              o->provider_id, "reply", o->reply, "final",
                              o->final, "in_doubt", o->in_doubt);
        char *s = json_dumps(j, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    }
    item_free(it);
    if (done_n == total || (closing && inflight == 0)) {
        if (!closing)
            finish_all();
        return;
    }
    pump();
}

static void
pump(void)
{
    while (!closing && next < total && inflight < inflight_max) {
        struct item *it = item_new(next);
        int rc = ch_send(ch, &it->m, on_done, it);
        if (rc < 0) {
            fprintf(stderr, "send %zu: %s\n", next, gw_strerror(rc));
            item_free(it);
            exit(2);
        }
        next++;
        inflight++;
    }
}

static void
on_close_timer(uv_timer_t *t)
{
    (void)t;
    if (!closing) {
        fprintf(stderr, "closing early with %zu in flight\n", inflight);
        closing = 1;
        ch_close(ch, on_closed, NULL);
    }
}

static int
mime_mode(const char *dir)
{
    char path[4096], reason[400];
    struct buf b;
    size_t bad = 0;

    buf_init(&b, 0);
    for (size_t n = 0; n < total; n++) {
        struct item *it = item_new(n);
        json_t *j = specs[n % nspecs].j;
        struct mime_msg mm;
        FILE *f;
        int rc;

        memset(&mm, 0, sizeof mm);
        mm.from_name = js(j, "from_name");
        mm.from_addr = js(j, "from") ? js(j, "from") : "news@example.org";
        mm.to_name = it->m.to_name;
        mm.to_addr = it->m.to;
        mm.subject = it->m.content.subject;
        mm.subject_len = it->m.content.subject_len;
        mm.text = it->m.content.text;
        mm.text_len = it->m.content.text_len;
        mm.html = it->m.content.html;
        mm.html_len = it->m.content.html_len;
        mm.images = it->m.content.images;
        mm.nimages = it->m.content.nimages;
        mm.key = it->key;
        mm.id_domain = js(j, "id_domain") ? js(j, "id_domain")
                                          : "example.org";
        mm.date = json_integer_value(json_object_get(j, "date"));
        mm.list_id = js(j, "list_id");
        mm.unsubscribe_url = it->m.unsubscribe_url;
        mm.unsubscribe_mailto = it->m.unsubscribe_mailto;
        mm.one_click = it->m.class && strcmp(it->m.class, "marketing") == 0;
        mm.campaign = it->m.campaign;
        buf_reset(&b);
        reason[0] = 0;
        rc = mime_build(&b, &mm, reason, sizeof reason);
        if (rc < 0) {
            json_t *o = json_pack("{s:I, s:s, s:s}", "i", (json_int_t)n,
                                  "error", gw_strerror(rc), "reason",
                                  reason);
            char *s = json_dumps(o, JSON_COMPACT);
            printf("%s\n", s);
            free(s);
            json_decref(o);
            bad++;
        } else {
            snprintf(path, sizeof path, "%s/%zu.eml", dir, n);
            if ((f = fopen(path, "wb")) == NULL ||
                fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0) {
                perror(path);
                return 2;
            }
            printf("{\"i\":%zu,\"file\":\"%s\"}\n", n, path);
        }
        item_free(it);
    }
    buf_free(&b);
    return 0;
}

int
main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "mime", required_argument, NULL, 'M' }, { NULL, 0, NULL, 0 }
    };
    const char *conf_path = NULL, *provider = NULL, *spec_path = NULL;
    const char *mime_dir = NULL;
    long close_after = -1;
    struct config *conf;
    char err[512];
    int c, rc;

    while ((c = getopt_long(argc, argv, "c:p:j:n:i:C:qv", lo, NULL)) != -1) {
        switch (c) {
        case 'c': conf_path = optarg; break;
        case 'p': provider = optarg; break;
        case 'j': spec_path = optarg; break;
        case 'n': total = strtoul(optarg, NULL, 10); break;
        case 'i': inflight_max = strtoul(optarg, NULL, 10); break;
        case 'C': close_after = strtol(optarg, NULL, 10); break;
        case 'q': quiet = 1; break;
        case 'v': log_threshold = LOG_DEBUG; break;
        case 'M': mime_dir = optarg; break;
        default:
            fprintf(stderr, "usage: see the comment at the top of "
                    "smtp_drive.c\n");
            return 2;
        }
    }
    load_specs(spec_path);
    if (mime_dir)
        return mime_mode(mime_dir);
    if (!conf_path || !provider) {
        fprintf(stderr, "-c CONFIG and -p PROVIDER are required\n");
        return 2;
    }
    if ((rc = conf_load(&conf, conf_path, NULL, 0, err, sizeof err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    const struct conf_provider *p = conf_provider_find(conf, provider);
    if (!p) {
        fprintf(stderr, "no provider %s\n", provider);
        return 2;
    }
    uv_loop_init(&loop);
    uv_timer_init(&loop, &close_timer);
    if ((rc = ch_open(&ch, &loop, p)) < 0) {
        fprintf(stderr, "open: %s\n", gw_strerror(rc));
        return 2;
    }
    t0 = uv_hrtime();
    if (close_after >= 0)
        uv_timer_start(&close_timer, on_close_timer, (uint64_t)close_after,
                       0);
    if (total == 0)
        finish_all();
    else
        pump();
    uv_run(&loop, UV_RUN_DEFAULT);
    if (ch == NULL && closing && done_n < total)
        printf("{\"summary\":true,\"closed_early\":true,\"messages\":%zu,"
               "\"ok\":%llu,\"tempfail\":%llu,\"permfail\":%llu}\n", done_n,
               (unsigned long long)counts[0], (unsigned long long)counts[1],
               (unsigned long long)counts[2]);
    rc = uv_loop_close(&loop);
    conf_free(conf);
    for (size_t i = 0; i < nspecs; i++) {
        for (size_t k = 0; k < specs[i].nimages; k++)
            g_free(specs[i].data[k]);
        free(specs[i].images);
        free(specs[i].data);
        json_decref(specs[i].j);
    }
    free(specs);
    if (rc != 0) {
        fprintf(stderr, "uv_loop_close: %s\n", uv_strerror(rc));
        return 3;
    }
    return 0;
}

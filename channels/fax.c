/*
 * fax.c -- the fax channel, shaped like Telnyx Programmable Fax. Each
 * message's markup becomes a PDF on libuv's pool (fax_render.c, with the
 * opt-out notice); the provider gets it either as a signed, short-lived
 * URL we serve ourselves (GET /media/<token>, from an in-memory store) or
 * uploaded as multipart/form-data, in one POST /v2/faxes made through
 * libcurl's multi interface on our loop (a uv_poll per socket, one
 * uv_timer, as in smtp.c). The provider's answer is the send outcome;
 * delivery comes later as signed webhooks (POST /hooks/fax/<provider>,
 * checked and parsed by fax_hook.c) that become receipts; fax.received
 * makes us download the inbound PDF (allowed hosts only, size-capped),
 * store it under inbound_dir and report it.
 */
#include "channel.h"
#include "curl_uv.h"
#include "fax_hook.h"

#include "fax_render.h"

#include "../common/buf.h"
#include "../common/err.h"
#include "../common/fsutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RESP_MAX        (64u * 1024)    /* provider reply body kept */
#define REPLY_MAX       600             /* outcome reply text */
#define MEDIA_BUCKETS   256
#define REFETCH_MS      60000           /* a second fetch within this */
#define SWEEP_MS        5000
#define FETCH_MAX       4               /* inbound downloads at once */
#define HOSTS_MAX       32
#define CONNECT_MAX_MS  10000

#ifndef GW_VERSION
#define GW_VERSION "dev"
#endif

static const char *const api_choices[] = { "telnyx", NULL };
static const char *const paper_choices[] = { "a4", "letter", NULL };
static const char *const media_choices[] = { "url", "upload", NULL };

const struct conf_key fax_conf_keys[] = {
    /* the provider's API dialect */
    { "api", CK_CHOICE, 0, 0, 0, api_choices, "telnyx" },
    /* http(s)://host[:port][/prefix]; we POST {base_url}/v2/faxes */
    { "base_url", CK_STR, 1, 0, 0, NULL, NULL },
    /* sent as Authorization: Bearer <api_key> */
    { "api_key", CK_STR, 1, 0, 0, NULL, NULL },
    { "connection_id", CK_STR, 1, 0, 0, NULL, NULL },
    /* E.164 number we send from */
    { "from", CK_STR, 1, 0, 0, NULL, NULL },
    { "paper", CK_CHOICE, 0, 0, 0, paper_choices, "a4" },
    /* url: the provider fetches {public_url}/media/<token>; upload:
     * multipart/form-data with the PDF */
    { "media", CK_CHOICE, 0, 0, 0, media_choices, "url" },
    /* the gateway's base URL as the provider reaches it (media = url) */
    { "public_url", CK_STR, 0, 0, 0, NULL, NULL },
    { "media_ttl_ms", CK_INT, 0, 1000, 86400000, NULL, "600000" },
    /* PDFs held for fetching, at most (sends beyond wait: TEMPFAIL) */
    { "media_max_bytes", CK_INT, 0, 1 << 20, (int64_t)1 << 34, NULL,
      "268435456" },
    /* one POST, connect to the end of the reply */
    { "timeout_ms", CK_INT, 0, 100, 600000, NULL, "30000" },
    { "max_connections", CK_INT, 0, 1, 256, NULL, "8" },
    /* messages accepted and not yet answered (render, wait, POST) */
    { "max_inflight", CK_INT, 0, 1, 100000, NULL, "64" },
    /* at close, POSTs still running after this are cut off (in doubt) */
    { "close_grace_ms", CK_INT, 0, 0, 600000, NULL, "5000" },
    /* base64 of the raw 32-byte Ed25519 key; absent: every webhook gets
     * 401 unless webhook_insecure */
    { "webhook_public_key", CK_STR, 0, 0, 0, NULL, NULL },
    { "webhook_insecure", CK_BOOL, 0, 0, 0, NULL, "false" },
    { "webhook_tolerance_s", CK_INT, 0, 1, 86400, NULL, "300" },
    { "inbound_dir", CK_STR, 0, 0, 0, NULL, "var/fax-in" },
    { "inbound_max_bytes", CK_INT, 0, 1024, 1 << 30, NULL, "20971520" },
    /* hosts inbound media may come from (default: base_url's) */
    { "inbound_hosts", CK_LIST, 0, 0, 0, NULL, NULL },
    { "optout_text", CK_STR, 0, 0, 0, NULL,
      "To opt out of future faxes call {phone}, fax {fax} or visit {url}. "
      "Requests are honoured within 30 days." },
    { "optout_phone", CK_STR, 1, 0, 0, NULL, NULL },
    { "optout_fax", CK_STR, 1, 0, 0, NULL, NULL },
    { "font", CK_STR, 0, 0, 0, NULL, "DejaVu Sans" },
    { "font_pt", CK_INT, 0, 6, 48, NULL, "11" },
    { "max_pages", CK_INT, 0, 1, 350, NULL, "20" },
    /* libcurl's protocol trace on stderr */
    { "verbose", CK_BOOL, 0, 0, 0, NULL, "false" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

/* What CURLINFO_PRIVATE points to: the first member of both. */
enum owner { OWN_JOB = 1, OWN_FETCH };

enum job_state { JS_NEW, JS_RENDER, JS_WAIT, JS_RUN, JS_DONE };

static const char *const job_state_names[] = {
    "new", "render", "wait", "run", "done"
};

struct fax;

struct media {                  /* a PDF the provider will fetch */
    struct media    *next;      /* in its bucket */
    char             token[FAX_TOKEN_MAX];
    struct fax_doc   doc;
    uint64_t         expires;   /* loop time (ms) */
    int              fetched;
};

struct job {                    /* one message */
    enum owner       kind;      /* OWN_JOB */
    struct job      *next, *prev;
    struct fax      *f;
    enum job_state   state;
    struct message  *m;
    channel_done_cb *cb;
    void            *arg;
    uv_work_t        work;
    char            *notice;
    struct fax_doc   doc;       /* rendered; moves to the media store */
    int              render_rc;
    char             render_err[256];
    int              pages;
    char             token[FAX_TOKEN_MAX];  /* media = url */
    char            *json;      /* the request body (media = url) */
    curl_mime       *mime;      /* the request body (media = upload) */
    CURL            *easy;
    struct buf       resp;
    char             retry_after[64];
    char             errbuf[CURL_ERROR_SIZE];
    /* the outcome */
    enum send_result res;
    int              in_doubt, throttled;
    int64_t          retry_after_ms;
    char             reply[REPLY_MAX];
    char             provider_id[FAX_ID_MAX + 1];
};

struct jlist {
    struct job      *head, *tail;
    unsigned         n;
};

struct fetch {                  /* an inbound fax: download and store */
    enum owner       kind;      /* OWN_FETCH */
    struct fetch    *next, *prev;
    struct fax      *f;
    CURL            *easy;
    ch_http_reply_fn *reply;
    void            *reply_arg;
    struct buf       body;
    int              over;      /* the cap was hit */
    uv_work_t        work;
    int              werr;      /* the store's -errno */
    char            *url, *dir, *path, *tmp;
    char            *from, *to, *fax_id;
    int              pages;
    char             errbuf[CURL_ERROR_SIZE];
};

struct ack {                    /* answers a webhook once it is recorded */
    ch_http_reply_fn *reply;
    void            *arg;
};

struct fax {
    struct channel  *ch;
    struct curl_uv   cu;        /* libcurl multi on the loop */
    uv_timer_t       later;     /* outcomes outside send(), teardown */
    uv_timer_t       grace;     /* the close grace period */
    uv_timer_t       sweep;     /* media expiry */
    unsigned         nhandles;  /* our uv handles not closed yet */

    /* configuration */
    char            *url;       /* {base_url}/v2/faxes */
    char            *public_url;    /* without a trailing '/' */
    const char      *connection_id, *from, *font, *optout_text;
    const char      *optout_phone, *optout_fax;
    struct curl_slist *hdr_json, *hdr_mime;
    enum fax_paper   paper;
    int              media_url;
    uint64_t         media_ttl_ms, media_max, grace_ms;
    long             timeout_ms;
    unsigned         max_conns, max_inflight;
    int              have_key, insecure, verbose;
    unsigned char    pubkey[32];
    int64_t          tolerance_s;
    char            *inbound_dir;
    size_t           inbound_max;
    char            *hosts[HOSTS_MAX];
    size_t           nhosts;
    double           font_pt;
    int              max_pages;
    unsigned char    key[32];   /* signs media tokens */

    /* state */
    struct jlist     fresh, rendering, waiting, running, done;
    unsigned         ninflight;
    struct fetch    *fetches;   /* downloading */
    unsigned         nfetch, nwrites;
    CURL           **pool;      /* idle easy handles */
    unsigned         npool;
    struct media    *buckets[MEDIA_BUCKETS];
    size_t           media_bytes;
    unsigned         nmedia;
    int              closing, torn;

    /* counters */
    struct channel_stats st;
    unsigned         conns_open;
    uint64_t         hooks_ok, hooks_refused;
};

static void kick(struct fax *f);
static void check_done(struct fax *f);
static void teardown(struct fax *f);
static void on_later(uv_timer_t *t);

/* ---- small things ---- */

static void
jl_push(struct jlist *l, struct job *j)
{
    j->next = NULL;
    j->prev = l->tail;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
}

static void
jl_del(struct jlist *l, struct job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        l->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        l->tail = j->prev;
    j->next = j->prev = NULL;
    l->n--;
}

static struct jlist *
job_list(struct fax *f, enum job_state st)
{
    switch (st) {
    case JS_NEW:
        return &f->fresh;
    case JS_RENDER:
        return &f->rendering;
    case JS_WAIT:
        return &f->waiting;
    case JS_RUN:
        return &f->running;
    case JS_DONE:
        break;
    }
    return &f->done;
}

/* Every move of a job goes through here: out of its list, into the next. */
static void
job_set_state(struct job *j, enum job_state next)
{
    struct fax *f = j->f;

    log_debug(&j->m->log, "fax %s -> %s", job_state_names[j->state],
              job_state_names[next]);
    jl_del(job_list(f, j->state), j);
    j->state = next;
    jl_push(job_list(f, next), j);
}

static void
later(struct fax *f)
{
    if (!f->torn && !uv_is_active((uv_handle_t *)&f->later))
        uv_timer_start(&f->later, on_later, 0, 0);
}

static void
doc_free(struct fax_doc *d)
{
    if (d->pdf)
        fax_doc_free(d);
    memset(d, 0, sizeof *d);
}

static void
job_free(struct job *j)
{
    if (!j)
        return;
    free(j->notice);
    doc_free(&j->doc);
    free(j->json);
    curl_mime_free(j->mime);
    buf_free(&j->resp);
    free(j);
}

static int64_t
now_s(void)
{
    return (int64_t)time(NULL);
}

/* A new string, or NULL. */
static char *
str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
str_printf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

static char *
join(const char *a, const char *b)
{
    return str_printf("%s%s", a, b);
}

/* ---- the media store ---- */

static unsigned
media_bucket(const char *token)
{
    unsigned h = 2166136261u;

    for (int i = 0; i < 32 && token[i]; i++)
        h = (h ^ (unsigned char)token[i]) * 16777619u;
    return h % MEDIA_BUCKETS;
}

static struct media **
media_find(struct fax *f, const char *token)
{
    struct media **pp = &f->buckets[media_bucket(token)];

    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->token, token) == 0)
            return pp;
    return NULL;
}

static void
media_unlink(struct fax *f, struct media **pp)
{
    struct media *me = *pp;

    *pp = me->next;
    f->media_bytes -= me->doc.len;
    f->nmedia--;
    doc_free(&me->doc);
    free(me);
}

static void
media_drop(struct fax *f, const char *token)
{
    struct media **pp;

    if (token[0] && (pp = media_find(f, token)) != NULL)
        media_unlink(f, pp);
}

/* Takes the job's document; the token goes into j->token. */
static int
media_add(struct fax *f, struct job *j)
{
    unsigned char rnd[16];
    struct media *me;
    int64_t expiry;

    if (f->media_bytes + j->doc.len > f->media_max)
        return GW_ETOOBIG;
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return GW_EINVAL;
    if ((me = calloc(1, sizeof *me)) == NULL)
        return -ENOMEM;
    expiry = now_s() + (int64_t)((f->media_ttl_ms + 999) / 1000);
    if (fax_token_make(f->key, sizeof f->key, rnd, expiry, me->token,
                       sizeof me->token) < 0) {
        free(me);
        return GW_EINVAL;
    }
    me->doc = j->doc;
    memset(&j->doc, 0, sizeof j->doc);
    me->expires = uv_now(f->ch->loop) + f->media_ttl_ms;
    memcpy(j->token, me->token, sizeof j->token);
    me->next = f->buckets[media_bucket(me->token)];
    f->buckets[media_bucket(me->token)] = me;
    f->media_bytes += me->doc.len;
    f->nmedia++;
    return 0;
}

static void
media_sweep(struct fax *f, int all)
{
    uint64_t now = uv_now(f->ch->loop);

    for (unsigned b = 0; b < MEDIA_BUCKETS; b++) {
        struct media **pp = &f->buckets[b];
        while (*pp) {
            if (all || (*pp)->expires <= now)
                media_unlink(f, pp);
            else
                pp = &(*pp)->next;
        }
    }
}

static void
on_sweep(uv_timer_t *t)
{
    media_sweep(t->data, 0);
}

/* ---- outcomes ---- */

/* The outcome is known: report it on the next loop turn. */
static void
finish(struct fax *f, struct job *j, enum send_result res, const char *fmt,
       ...) __attribute__((format(printf, 4, 5)));

static void
finish(struct fax *f, struct job *j, enum send_result res, const char *fmt,
       ...)
{
    va_list ap;

    j->res = res;
    va_start(ap, fmt);
    vsnprintf(j->reply, sizeof j->reply, fmt, ap);
    va_end(ap);
    /* A PDF nobody will fetch goes now; an in-doubt one may still be. */
    if (res != SEND_OK && !j->in_doubt)
        media_drop(f, j->token);
    job_set_state(j, JS_DONE);
    later(f);
}

static void
report(struct fax *f, struct job *j)
{
    struct send_outcome o = {
        .result = j->res,
        .final = 0,
        .provider_id = j->provider_id[0] ? j->provider_id : NULL,
        .reply = j->reply[0] ? j->reply : NULL,
        .in_doubt = j->in_doubt,
        .throttled = j->throttled,
        .retry_after_ms = j->retry_after_ms,
        .units = j->res == SEND_OK ? j->pages : 0,
    };

    switch (j->res) {
    case SEND_OK:
        f->st.sent++;
        log_debug(&j->m->log, "accepted: %s", j->reply);
        break;
    case SEND_TEMPFAIL:
        f->st.tempfail++;
        log_info(&j->m->log, "not sent%s: %s",
                 j->in_doubt ? " (in doubt)" : "", j->reply);
        break;
    case SEND_PERMFAIL:
        f->st.permfail++;
        log_info(&j->m->log, "refused: %s", j->reply);
        break;
    }
    jl_del(&f->done, j);
    f->ninflight--;
    j->cb(j->m, &o, j->arg);
    job_free(j);
}

/* ---- libcurl multi on the uv loop (channels/curl_uv.c) ---- */

static void
cu_progress(void *arg)
{
    check_done(arg);
}

static void
cu_opened(void *arg)
{
    ((struct fax *)arg)->nhandles++;
}

static void
cu_closed(void *arg)
{
    struct fax *f = arg;

    if (--f->nhandles == 0 && f->torn)
        teardown(f);
}

/* Sockets are counted for the stats: connections open and opened. */
static curl_socket_t
on_open_socket(void *clientp, curlsocktype purpose,
               struct curl_sockaddr *a)
{
    struct fax *f = clientp;
    curl_socket_t fd;

    (void)purpose;
    fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd != CURL_SOCKET_BAD) {
        f->conns_open++;
        f->st.connections_opened++;
    }
    return fd;
}

static int
on_close_socket(void *clientp, curl_socket_t fd)
{
    struct fax *f = clientp;

    if (f->conns_open)
        f->conns_open--;
    return close(fd);
}

static size_t
on_resp(char *p, size_t size, size_t n, void *userp)
{
    struct job *j = userp;
    size_t len = size * n, room = RESP_MAX - j->resp.len;

    /* Past the cap the rest is read and dropped. */
    buf_append(&j->resp, p, len < room ? len : room);
    return len;
}

static size_t
on_header(char *p, size_t size, size_t n, void *userp)
{
    struct job *j = userp;
    size_t len = size * n, v;

    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        j->retry_after[0] = 0;      /* a new response begins */
    } else if (len > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
        for (v = 12; v < len && (p[v] == ' ' || p[v] == '\t'); v++)
            ;
        len -= v;
        while (len && (p[v + len - 1] == '\r' || p[v + len - 1] == '\n'))
            len--;
        if (len >= sizeof j->retry_after)
            len = sizeof j->retry_after - 1;
        memcpy(j->retry_after, p + v, len);
        j->retry_after[len] = 0;
    }
    return size * n;
}

/* ---- sending ---- */

static CURL *
easy_get(struct fax *f)
{
    CURL *e;

    if (f->npool) {
        e = f->pool[--f->npool];
        curl_easy_reset(e);
        return e;
    }
    return curl_easy_init();
}

static void
easy_put(struct fax *f, CURL *e)
{
    if (f->npool < f->max_conns)
        f->pool[f->npool++] = e;
    else
        curl_easy_cleanup(e);
}

static CURLcode
easy_common(struct fax *f, CURL *e, const char *url, long timeout_ms)
{
    CURLcode rc = CURLE_OK;

#define SET(opt, val) \
    do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS,
        timeout_ms < CONNECT_MAX_MS ? timeout_ms : (long)CONNECT_MAX_MS);
    SET(CURLOPT_USERAGENT, "gatewayd/" GW_VERSION);
    SET(CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    SET(CURLOPT_OPENSOCKETDATA, f);
    SET(CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    SET(CURLOPT_CLOSESOCKETDATA, f);
    SET(CURLOPT_VERBOSE, (long)f->verbose);
    return rc;
}

static int
job_start(struct fax *f, struct job *j)
{
    const struct message *m = j->m;
    CURL *e = easy_get(f);
    curl_mimepart *part;
    CURLcode rc = CURLE_OK;

    if (!e)
        return -ENOMEM;
    j->easy = e;
    if (!f->media_url) {
        if ((j->mime = curl_mime_init(e)) == NULL)
            return -ENOMEM;
#define PART(name, data, len, file, type) \
    do { \
        if (rc == CURLE_OK && (part = curl_mime_addpart(j->mime)) == NULL) \
            rc = CURLE_OUT_OF_MEMORY; \
        if (rc == CURLE_OK) rc = curl_mime_name(part, name); \
        if (rc == CURLE_OK) rc = curl_mime_data(part, data, len); \
        if (rc == CURLE_OK && file) rc = curl_mime_filename(part, file); \
        if (rc == CURLE_OK && type) rc = curl_mime_type(part, type); \
    } while (0)
        PART("connection_id", f->connection_id, CURL_ZERO_TERMINATED, NULL,
             NULL);
        PART("to", m->to, CURL_ZERO_TERMINATED, NULL, NULL);
        PART("from", f->from, CURL_ZERO_TERMINATED, NULL, NULL);
        PART("media", (const char *)j->doc.pdf, j->doc.len, "fax.pdf",
             "application/pdf");
#undef PART
        doc_free(&j->doc);      /* the mime holds a copy */
    }
    if (rc == CURLE_OK)
        rc = easy_common(f, e, f->url, f->timeout_ms);
    SET(CURLOPT_PRIVATE, j);
    SET(CURLOPT_ERRORBUFFER, j->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_resp);
    SET(CURLOPT_WRITEDATA, j);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, j);
    if (f->media_url) {
        SET(CURLOPT_HTTPHEADER, f->hdr_json);
        SET(CURLOPT_POSTFIELDS, j->json);
        SET(CURLOPT_POSTFIELDSIZE, (long)strlen(j->json));
    } else {
        SET(CURLOPT_HTTPHEADER, f->hdr_mime);
        SET(CURLOPT_MIMEPOST, j->mime);
    }
    if (rc != CURLE_OK) {
        log_warn(&j->m->log, "curl: %s", curl_easy_strerror(rc));
        return GW_EINVAL;
    }
    j->errbuf[0] = 0;
    if (curl_multi_add_handle(f->cu.multi, e) != CURLM_OK)
        return GW_EINVAL;
    job_set_state(j, JS_RUN);
    return 0;
}

/* A job that cannot start gives its easy handle back. */
static void
job_unstart(struct fax *f, struct job *j)
{
    if (j->easy)
        easy_put(f, j->easy);
    j->easy = NULL;
}

/* Start what the connection limit allows. */
static void
kick(struct fax *f)
{
    struct job *j;
    int rc;

    if (f->closing)
        return;
    while (f->running.n < f->max_conns && (j = f->waiting.head) != NULL) {
        if ((rc = job_start(f, j)) < 0) {
            job_unstart(f, j);
            finish(f, j, SEND_TEMPFAIL, "cannot start the request: %s",
                   gw_strerror(rc));
        }
    }
}

static int
curl_no_connection(CURLcode res)
{
    return res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST ||
           res == CURLE_COULDNT_RESOLVE_PROXY;
}

/* The request went (or may have gone) out: no resend without a look. */
static int
request_sent(CURL *e)
{
    curl_off_t pre = 0, up = 0;
    long req = 0;

    curl_easy_getinfo(e, CURLINFO_PRETRANSFER_TIME_T, &pre);
    curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &up);
    curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &req);
    return pre > 0 || up > 0 || req > 0;
}

/* The transfer ended: the provider's answer becomes the outcome. */
static void
job_done(struct fax *f, struct job *j, CURLcode res)
{
    char text[REPLY_MAX - 16], id[FAX_ID_MAX + 1];
    long status = 0;
    int sent = request_sent(j->easy);

    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(f->cu.multi, j->easy);
    job_unstart(f, j);
    curl_mime_free(j->mime);
    j->mime = NULL;

    if (res != CURLE_OK) {
        const char *why = j->errbuf[0] ? j->errbuf : curl_easy_strerror(res);
        if (curl_no_connection(res)) {
            finish(f, j, SEND_TEMPFAIL, "no connection: %s", why);
        } else {
            j->in_doubt = sent;
            finish(f, j, SEND_TEMPFAIL, "%s%s",
                   res == CURLE_OPERATION_TIMEDOUT ? "timeout: " : "", why);
        }
        return;
    }
    f->st.replies[status / 100 < 6 ? status / 100 : 0]++;
    fax_api_error(j->resp.data, j->resp.len, text, sizeof text);
    if (status >= 200 && status < 300) {
        f->st.alarm = 0;
        if (fax_api_accept(j->resp.data, j->resp.len, id, sizeof id) < 0) {
            j->in_doubt = 1;
            finish(f, j, SEND_TEMPFAIL, "%ld without data.id", status);
            return;
        }
        memcpy(j->provider_id, id, strlen(id) + 1);
        finish(f, j, SEND_OK, "%ld queued %s", status, id);
        return;
    }
    if (status == 429 || status == 408 || status >= 500) {
        j->throttled = status == 429;
        j->retry_after_ms = fax_retry_after_ms(j->retry_after, now_s());
        finish(f, j, SEND_TEMPFAIL, "%ld %s", status,
               text[0] ? text : "(no error text)");
        return;
    }
    if (status >= 400) {
        if (status == 401 || status == 403) {
            if (!f->st.alarm)
                log_error(&f->ch->log, "the provider refuses our "
                          "credentials: %ld %s", status, text);
            f->st.alarm = 1;
        }
        finish(f, j, SEND_PERMFAIL, "%ld %s", status,
               text[0] ? text : "(no error text)");
        return;
    }
    /* 1xx/3xx as a final answer: we follow no redirects. */
    finish(f, j, SEND_TEMPFAIL, "%ld unexpected answer %s", status, text);
}

/* ---- rendering, on libuv's pool ---- */

static void
render_work(uv_work_t *w)
{
    struct job *j = w->data;
    struct fax *f = j->f;
    const struct message_content *c = &j->m->content;
    struct fax_page_opts o = {
        .paper = f->paper,
        .font_family = f->font,
        .font_pt = f->font_pt,
        .notice = j->notice,
        .max_pages = f->max_pages,
        .template_name = j->m->template,
    };

    j->render_rc = fax_render(c->fax, c->fax_len, c->images, c->nimages, &o,
                              &j->doc, j->render_err, sizeof j->render_err);
}

static int
request_json(struct fax *f, struct job *j)
{
    char *url = join(f->public_url, "/media/");
    char *full = url ? join(url, j->token) : NULL;
    json_t *o;

    free(url);
    if (!full)
        return -ENOMEM;
    o = json_pack("{s:s, s:s, s:s, s:s}", "connection_id", f->connection_id,
                  "to", j->m->to, "from", f->from, "media_url", full);
    free(full);
    if (!o)
        return -ENOMEM;
    j->json = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return j->json ? 0 : -ENOMEM;
}

static void
render_done(uv_work_t *w, int status)
{
    struct job *j = w->data;
    struct fax *f = j->f;
    int rc;

    if (status == UV_ECANCELED || f->closing) {
        finish(f, j, SEND_TEMPFAIL, "shutdown: not sent");
        return;
    }
    if (j->render_rc < 0) {
        finish(f, j, j->render_rc == -ENOMEM ? SEND_TEMPFAIL : SEND_PERMFAIL,
               "render: %s", j->render_err[0] ? j->render_err
                                              : gw_strerror(j->render_rc));
        return;
    }
    j->pages = j->doc.pages;
    log_debug(&j->m->log, "rendered %d pages, %zu bytes", j->doc.pages,
              j->doc.len);
    if (f->media_url) {
        if ((rc = media_add(f, j)) == GW_ETOOBIG) {
            j->throttled = 1;
            j->retry_after_ms = 5000;
            finish(f, j, SEND_TEMPFAIL, "media store full (%zu bytes held)",
                   f->media_bytes);
            return;
        }
        if (rc < 0 || (rc = request_json(f, j)) < 0) {
            finish(f, j, SEND_TEMPFAIL, "media: %s", gw_strerror(rc));
            return;
        }
    }
    job_set_state(j, JS_WAIT);
    kick(f);
}

static int
fax_send(struct channel *ch, struct message *m, channel_done_cb *cb,
         void *arg)
{
    struct fax *f = ch->priv;
    const char *url;
    char *u = NULL;
    struct job *j;
    int rc;

    if (f->closing)
        return GW_ESTATE;
    if ((j = calloc(1, sizeof *j)) == NULL)
        return -ENOMEM;
    j->kind = OWN_JOB;
    j->f = f;
    j->m = m;
    j->cb = cb;
    j->arg = arg;
    j->work.data = j;
    j->state = JS_NEW;
    buf_init(&j->resp, RESP_MAX + 1);
    jl_push(&f->fresh, j);
    f->ninflight++;

    if (f->ninflight > f->max_inflight) {
        j->throttled = 1;
        j->retry_after_ms = 1000;
        finish(f, j, SEND_TEMPFAIL, "fax: %u messages in flight already",
               f->max_inflight);
        return 0;
    }
    if (!fax_e164_ok(m->to)) {
        finish(f, j, SEND_PERMFAIL, "invalid fax number");
        return 0;
    }
    if (!m->content.fax) {
        finish(f, j, SEND_PERMFAIL, "no rendered fax content");
        return 0;
    }
    url = m->unsubscribe_url;
    if (!url && f->public_url)
        url = u = join(f->public_url, "/u");
    rc = fax_notice(f->optout_text, f->optout_phone, f->optout_fax, url,
                    &j->notice);
    free(u);
    if (rc < 0) {
        finish(f, j, rc == -ENOMEM ? SEND_TEMPFAIL : SEND_PERMFAIL,
               "opt-out notice: %s", gw_strerror(rc));
        return 0;
    }
    job_set_state(j, JS_RENDER);
    if ((rc = uv_queue_work(ch->loop, &j->work, render_work,
                            render_done)) < 0)
        finish(f, j, SEND_TEMPFAIL, "render: %s", uv_strerror(rc));
    return 0;
}

/* ---- HTTP: answers ---- */

/* Takes o. */
static void
answer_json(ch_http_reply_fn *reply, void *arg, int status, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

    json_decref(o);
    if (s)
        reply(arg, status, "application/json", s, strlen(s));
    else
        reply(arg, status, "application/json", "{}", 2);
    free(s);
}

static void
answer_error(ch_http_reply_fn *reply, void *arg, int status,
             const char *text)
{
    answer_json(reply, arg, status, json_pack("{s:s}", "error", text));
}

static void
answer_ok(ch_http_reply_fn *reply, void *arg, const char *ignored)
{
    answer_json(reply, arg, 200,
                ignored ? json_pack("{s:b, s:s}", "ok", 1, "ignored", ignored)
                        : json_pack("{s:b}", "ok", 1));
}

static void
on_recorded(void *arg, int rc)
{
    struct ack *a = arg;

    if (rc < 0)
        answer_error(a->reply, a->arg, 503, "not recorded, try again");
    else
        answer_ok(a->reply, a->arg, NULL);
    free(a);
}

/* Hands in to the gateway; the webhook is answered once it is recorded. */
static void
record(struct fax *f, struct inbound *in, ch_http_reply_fn *reply,
       void *arg)
{
    struct channel *ch = f->ch;
    struct ack *a;

    if (!ch->on_inbound) {
        answer_error(reply, arg, 503, "not ready");
        return;
    }
    if ((a = malloc(sizeof *a)) == NULL) {
        answer_error(reply, arg, 503, "out of memory");
        return;
    }
    a->reply = reply;
    a->arg = arg;
    in->done = on_recorded;
    in->done_arg = a;
    f->hooks_ok++;
    ch->on_inbound(ch, in, ch->inbound_arg);
}

/* ---- HTTP: media ---- */

/* Every fax channel is offered GET /media/<token>: a token that is not
 * ours (a bad MAC, expired, unknown: all alike) is left to the others, and
 * the server answers 404 when nobody takes it. */
static int
serve_media(struct fax *f, const struct ch_http_req *rq,
            ch_http_reply_fn *reply, void *arg)
{
    uint64_t now = uv_now(f->ch->loop);
    struct media **pp;
    struct media *me;

    if (strcmp(rq->method, "GET") != 0) {
        answer_error(reply, arg, 405, "method not allowed");
        return 0;
    }
    if (fax_token_check(f->key, sizeof f->key, rq->path, now_s(), NULL) < 0 ||
        (pp = media_find(f, rq->path)) == NULL) {
        log_debug(&f->ch->log, "media %.40s: not ours", rq->path);
        return GW_ENOTFOUND;
    }
    me = *pp;
    if (me->expires <= now) {
        media_unlink(f, pp);
        return GW_ENOTFOUND;
    }
    if (!me->fetched) {
        me->fetched = 1;        /* one retry within REFETCH_MS */
        if (me->expires > now + REFETCH_MS)
            me->expires = now + REFETCH_MS;
    }
    log_debug(&f->ch->log, "media %.32s: %zu bytes served", me->token,
              me->doc.len);
    reply(arg, 200, "application/pdf", me->doc.pdf, me->doc.len);
    return 0;
}

/* ---- HTTP: inbound faxes ---- */

static void
fetch_free(struct fetch *x)
{
    if (!x)
        return;
    if (x->easy)
        curl_easy_cleanup(x->easy);
    buf_free(&x->body);
    free(x->url);
    free(x->dir);
    free(x->path);
    free(x->tmp);
    free(x->from);
    free(x->to);
    free(x->fax_id);
    free(x);
}

static void
fetch_unlink(struct fax *f, struct fetch *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        f->fetches = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->next = x->prev = NULL;
    f->nfetch--;
}

static void
fetch_record(struct fax *f, struct fetch *x)
{
    struct inbound in = {
        .kind = IN_FAX,
        .from = x->from,
        .to = x->to,
        .path = x->path,
        .fax_id = x->fax_id,
        .pages = x->pages,
    };

    log_info(&f->ch->log, "inbound fax %s from %s: %s", x->fax_id,
             x->from ? x->from : "?", x->path);
    record(f, &in, x->reply, x->reply_arg);
}

/* On the pool: temporary file, fsync, rename, fsync the directory. */
static void
store_work(uv_work_t *w)
{
    struct fetch *x = w->data;
    size_t off = 0;
    int fd, dfd, rc;

    if ((rc = gw_mkdir_p(x->dir)) < 0) {
        x->werr = rc;
        return;
    }
    if ((fd = open(x->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) <
        0) {
        x->werr = -errno;
        return;
    }
    while (off < x->body.len) {
        ssize_t n = write(fd, x->body.data + off, x->body.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            x->werr = n < 0 ? -errno : -EIO;
            break;
        }
        off += (size_t)n;
    }
    if (!x->werr && fsync(fd) < 0)
        x->werr = -errno;
    if (close(fd) < 0 && !x->werr)
        x->werr = -errno;
    if (!x->werr && rename(x->tmp, x->path) < 0)
        x->werr = -errno;
    if (x->werr) {
        unlink(x->tmp);
        return;
    }
    if ((dfd = open(x->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

static void
store_done(uv_work_t *w, int status)
{
    struct fetch *x = w->data;
    struct fax *f = x->f;

    f->nwrites--;
    if (status < 0 && !x->werr)
        x->werr = status;
    if (x->werr) {
        log_error(&f->ch->log, "inbound fax %s: cannot store %s: %s",
                  x->fax_id, x->path, gw_strerror(x->werr));
        answer_error(x->reply, x->reply_arg, 503, "cannot store the fax");
    } else if (f->closing) {
        answer_error(x->reply, x->reply_arg, 503, "shutting down");
    } else {
        fetch_record(f, x);
    }
    fetch_free(x);
    later(f);
}

static size_t
on_fetch_data(char *p, size_t size, size_t n, void *userp)
{
    struct fetch *x = userp;
    size_t len = size * n;

    if (x->over || buf_append(&x->body, p, len) < 0) {
        x->over = 1;
        return 0;               /* aborts the transfer */
    }
    return len;
}

static void
fetch_done(struct fax *f, struct fetch *x, CURLcode res)
{
    long status = 0;
    int rc;

    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(f->cu.multi, x->easy);
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
    fetch_unlink(f, x);
    if (res != CURLE_OK || status != 200 || x->body.len < 5 ||
        memcmp(x->body.data, "%PDF-", 5) != 0) {
        log_warn(&f->ch->log, "inbound fax %s: download from %s failed: %s",
                 x->fax_id, x->url,
                 x->over || res == CURLE_FILESIZE_EXCEEDED
                     ? "over inbound_max_bytes"
                 : res != CURLE_OK
                     ? (x->errbuf[0] ? x->errbuf : curl_easy_strerror(res))
                 : status != 200 ? "HTTP status not 200"
                                 : "not a PDF");
        answer_error(x->reply, x->reply_arg, 502, "media download failed");
        fetch_free(x);
        later(f);
        return;
    }
    if (f->closing) {
        answer_error(x->reply, x->reply_arg, 503, "shutting down");
        fetch_free(x);
        later(f);
        return;
    }
    x->work.data = x;
    if ((rc = uv_queue_work(f->ch->loop, &x->work, store_work,
                            store_done)) < 0) {
        answer_error(x->reply, x->reply_arg, 503, "cannot store the fax");
        fetch_free(x);
        later(f);
        return;
    }
    f->nwrites++;
}

static void
inbound_fax(struct fax *f, const struct fax_event *ev,
            ch_http_reply_fn *reply, void *arg)
{
    static unsigned long long seq;
    char name[FAX_ID_MAX + 1];
    struct fetch *x;
    struct stat sb;
    CURLcode rc = CURLE_OK;
    CURL *e;

    if (!fax_url_host_ok(ev->media_url, (const char *const *)f->hosts,
                         f->nhosts)) {
        log_warn(&f->ch->log, "inbound fax %s: media_url %.200s is not on "
                 "an allowed host (inbound_hosts)", ev->fax_id,
                 ev->media_url);
        answer_error(reply, arg, 400, "media_url host not allowed");
        return;
    }
    if (fax_id_file_name(ev->fax_id, name, sizeof name) < 0) {
        answer_error(reply, arg, 400, "bad fax_id");
        return;
    }
    if (f->closing) {
        answer_error(reply, arg, 503, "shutting down");
        return;
    }
    if ((x = calloc(1, sizeof *x)) == NULL) {
        answer_error(reply, arg, 503, "out of memory");
        return;
    }
    x->kind = OWN_FETCH;
    x->f = f;
    x->reply = reply;
    x->reply_arg = arg;
    x->pages = ev->page_count;
    buf_init(&x->body, f->inbound_max);
    if ((x->url = strdup(ev->media_url)) == NULL ||
        (x->dir = strdup(f->inbound_dir)) == NULL ||
        (x->fax_id = strdup(ev->fax_id)) == NULL ||
        (ev->from && (x->from = strdup(ev->from)) == NULL) ||
        (ev->to && (x->to = strdup(ev->to)) == NULL) ||
        (x->path = str_printf("%s/%s.pdf", f->inbound_dir, name)) == NULL ||
        (x->tmp = str_printf("%s/.tmp-%s-%ld-%llu", f->inbound_dir, name,
                             (long)getpid(), seq++)) == NULL) {
        answer_error(reply, arg, 503, "out of memory");
        fetch_free(x);
        return;
    }
    /* A repeated fax.received: the file is there, record it again. */
    if (stat(x->path, &sb) == 0 && S_ISREG(sb.st_mode)) {
        log_debug(&f->ch->log, "inbound fax %s: %s exists, not fetched",
                  x->fax_id, x->path);
        fetch_record(f, x);
        fetch_free(x);
        return;
    }
    if (f->nfetch >= FETCH_MAX) {
        answer_error(reply, arg, 503, "busy, try again");
        fetch_free(x);
        return;
    }
    if ((e = x->easy = curl_easy_init()) == NULL) {
        answer_error(reply, arg, 503, "out of memory");
        fetch_free(x);
        return;
    }
    rc = easy_common(f, e, x->url, f->timeout_ms);
    SET(CURLOPT_PRIVATE, x);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->inbound_max);
    SET(CURLOPT_WRITEFUNCTION, on_fetch_data);
    SET(CURLOPT_WRITEDATA, x);
    if (rc != CURLE_OK || curl_multi_add_handle(f->cu.multi, e) != CURLM_OK) {
        answer_error(reply, arg, 503, "cannot start the download");
        fetch_free(x);
        return;
    }
    x->next = f->fetches;
    if (f->fetches)
        f->fetches->prev = x;
    f->fetches = x;
    f->nfetch++;
    log_debug(&f->ch->log, "inbound fax %s: fetching %s", x->fax_id, x->url);
}

/* ---- HTTP: webhooks ---- */

static const char *
verify_why(int rc)
{
    switch (rc) {
    case GW_ETIMEOUT:
        return "timestamp outside tolerance";
    case GW_EPARSE:
        return "missing or malformed signature headers";
    default:
        return "bad signature";
    }
}

static int
serve_hook(struct fax *f, const struct ch_http_req *rq,
           ch_http_reply_fn *reply, void *arg)
{
    struct fax_event ev;
    struct inbound in;
    char err[200];
    int rc;

    if (strcmp(rq->method, "POST") != 0) {
        answer_error(reply, arg, 405, "method not allowed");
        return 0;
    }
    if (f->have_key) {
        rc = fax_hook_verify(
            f->pubkey,
            rq->header ? rq->header(rq, "telnyx-signature-ed25519") : NULL,
            rq->header ? rq->header(rq, "telnyx-timestamp") : NULL, now_s(),
            f->tolerance_s, rq->body, rq->body_len);
        if (rc < 0) {
            f->hooks_refused++;
            log_warn(&f->ch->log, "webhook refused: %s", verify_why(rc));
            answer_error(reply, arg, 401, verify_why(rc));
            return 0;
        }
    } else if (!f->insecure) {
        f->hooks_refused++;
        log_warn(&f->ch->log, "webhook refused: no webhook_public_key "
                 "configured");
        answer_error(reply, arg, 401, "webhook verification not "
               "configured");
        return 0;
    }
    if ((rc = fax_hook_parse(rq->body, rq->body_len, &ev, err,
                             sizeof err)) < 0) {
        f->hooks_refused++;
        log_warn(&f->ch->log, "webhook refused: %s", err);
        answer_error(reply, arg, 400, err);
        fax_event_free(&ev);
        return 0;
    }
    memset(&in, 0, sizeof in);
    in.kind = IN_RECEIPT;
    in.provider_id = ev.fax_id;
    in.stat = ev.event_type;
    switch (ev.type) {
    case FAX_EV_UNKNOWN:
        log_debug(&f->ch->log, "webhook %s ignored", ev.event_type);
        answer_ok(reply, arg, ev.event_type);
        break;
    case FAX_EV_QUEUED:
    case FAX_EV_MEDIA_PROCESSED:
    case FAX_EV_SENDING_STARTED:
        in.state = RCPT_ENROUTE;
        record(f, &in, reply, arg);
        break;
    case FAX_EV_DELIVERED:
        in.state = RCPT_DELIVERED;
        log_debug(&f->ch->log, "fax %s delivered, %d pages", ev.fax_id,
                  ev.page_count);
        record(f, &in, reply, arg);
        break;
    case FAX_EV_FAILED:
        in.state = fax_failure_class(ev.failure_reason);
        in.error = ev.failure_reason;
        log_debug(&f->ch->log, "fax %s failed: %s (%s)", ev.fax_id,
                  ev.failure_reason ? ev.failure_reason : "no reason",
                  in.state == RCPT_TEMPFAIL ? "temporary" : "permanent");
        record(f, &in, reply, arg);
        break;
    case FAX_EV_RECEIVED:
        inbound_fax(f, &ev, reply, arg);
        break;
    }
    fax_event_free(&ev);
    return 0;
}

static int
fax_http(struct channel *ch, const struct ch_http_req *rq,
         ch_http_reply_fn *reply, void *reply_arg)
{
    struct fax *f = ch->priv;

    if (f->torn || !rq->route || !rq->method)
        return GW_ENOTFOUND;
    if (strcmp(rq->route, "media") == 0 && rq->path)
        return serve_media(f, rq, reply, reply_arg);
    if (strcmp(rq->route, "hooks") == 0)
        return serve_hook(f, rq, reply, reply_arg);
    return GW_ENOTFOUND;
}

/* ---- completion, close ---- */

static void
check_done(struct fax *f)
{
    CURLMsg *msg;
    int left;

    while (f->cu.multi && (msg = curl_multi_info_read(f->cu.multi, &left))) {
        CURLcode res = msg->data.result;
        char *priv;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        if (*(enum owner *)(void *)priv == OWN_FETCH)
            fetch_done(f, (struct fetch *)(void *)priv, res);
        else
            job_done(f, (struct job *)(void *)priv, res);
    }
    kick(f);
}

/* Grace period over: cut off what still runs. */
static void
on_grace_end(uv_timer_t *t)
{
    struct fax *f = t->data;
    struct job *j;

    while ((j = f->running.head) != NULL) {
        curl_multi_remove_handle(f->cu.multi, j->easy);
        job_unstart(f, j);
        j->in_doubt = 1;
        finish(f, j, SEND_TEMPFAIL, "shutdown: cancelled");
    }
}

static void
on_later(uv_timer_t *t)
{
    struct fax *f = t->data;

    while (f->done.head)
        report(f, f->done.head);
    kick(f);
    if (f->closing && !f->torn && !f->running.n && !f->rendering.n &&
        !f->waiting.n && !f->done.n && !f->nfetch && !f->nwrites)
        teardown(f);
}

static void
fax_free(struct fax *f)
{
    if (!f)
        return;
    media_sweep(f, 1);
    free(f->url);
    free(f->public_url);
    free(f->inbound_dir);
    for (size_t i = 0; i < f->nhosts; i++)
        free(f->hosts[i]);
    curl_slist_free_all(f->hdr_json);
    curl_slist_free_all(f->hdr_mime);
    free(f->pool);
    OPENSSL_cleanse(f->key, sizeof f->key);
    free(f);
}

static void
on_timer_closed(uv_handle_t *h)
{
    struct fax *f = h->data;

    if (--f->nhandles == 0)
        teardown(f);
}

/* Runs twice: first to release libcurl and close every handle, then, from
 * the last close callback, to free everything and tell the channel. */
static void
teardown(struct fax *f)
{
    struct channel *ch = f->ch;

    if (!f->torn) {
        f->torn = 1;
        log_info(&ch->log, "closed: %llu sent, %llu temporary and %llu "
                 "permanent failures; replies 2xx %llu 4xx %llu 5xx %llu; "
                 "webhooks %llu taken, %llu refused",
                 (unsigned long long)f->st.sent,
                 (unsigned long long)f->st.tempfail,
                 (unsigned long long)f->st.permfail,
                 (unsigned long long)f->st.replies[2],
                 (unsigned long long)f->st.replies[4],
                 (unsigned long long)f->st.replies[5],
                 (unsigned long long)f->hooks_ok,
                 (unsigned long long)f->hooks_refused);
        uv_timer_stop(&f->grace);
        uv_timer_stop(&f->sweep);
        while (f->npool)
            curl_easy_cleanup(f->pool[--f->npool]);
        curl_multi_cleanup(f->cu.multi);
        f->cu.multi = NULL;
        curl_uv_close_socks(&f->cu);
        uv_close((uv_handle_t *)&f->cu.timer, on_timer_closed);
        uv_close((uv_handle_t *)&f->later, on_timer_closed);
        uv_close((uv_handle_t *)&f->grace, on_timer_closed);
        uv_close((uv_handle_t *)&f->sweep, on_timer_closed);
        return;
    }
    fax_free(f);
    curl_global_cleanup();
    channel_closed(ch);
}

static void
fax_close(struct channel *ch)
{
    struct fax *f = ch->priv;
    struct job *j;

    f->closing = 1;
    while ((j = f->waiting.head) != NULL)
        finish(f, j, SEND_TEMPFAIL, "shutdown: not sent");
    /* Renders not begun are cancelled; the others end as "not sent". */
    for (j = f->rendering.head; j; j = j->next)
        uv_cancel((uv_req_t *)&j->work);
    while (f->fetches) {
        struct fetch *x = f->fetches;
        curl_multi_remove_handle(f->cu.multi, x->easy);
        fetch_unlink(f, x);
        answer_error(x->reply, x->reply_arg, 503, "shutting down");
        fetch_free(x);
    }
    if (f->running.n) {
        log_info(&ch->log, "closing: %u requests to finish within %llu ms",
                 f->running.n, (unsigned long long)f->grace_ms);
        uv_timer_start(&f->grace, on_grace_end, f->grace_ms, 0);
    }
    later(f);
}

static void
fax_stats(struct channel *ch, struct channel_stats *out)
{
    struct fax *f = ch->priv;

    *out = f->st;
    out->inflight = f->ninflight;
    out->connections = f->conns_open;
}

/* ---- open ---- */

static int
bad_conf(struct channel *ch, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
bad_conf(struct channel *ch, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_error(&ch->log, "provider %s: %s", ch->conf->name, msg);
    return GW_ECONFIG;
}

/* An http(s) base URL, returned without its trailing slashes. */
static int
conf_base(struct channel *ch, const char *key, const char *v, char **out)
{
    char host[256];
    size_t n;

    if (!v || fax_url_host(v, host, sizeof host) < 0 || strchr(v, '?') ||
        strchr(v, '#'))
        return bad_conf(ch, "%s '%s' is not an http:// or https:// URL",
                        key, v ? v : "");
    if ((*out = strdup(v)) == NULL)
        return -ENOMEM;
    n = strlen(*out);
    while (n && (*out)[n - 1] == '/')
        (*out)[--n] = 0;
    return 0;
}

static int
header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

static int
conf_webhook(struct channel *ch, struct fax *f)
{
    const char *k = conf_str(ch->conf, "webhook_public_key");
    EVP_PKEY *pk;
    size_t n = 0;

    f->insecure = conf_bool(ch->conf, "webhook_insecure");
    f->tolerance_s = conf_int(ch->conf, "webhook_tolerance_s");
    if (!k) {
        if (f->insecure)
            log_warn(&ch->log, "provider %s: webhooks are NOT verified "
                     "(webhook_insecure = true, no webhook_public_key)",
                     ch->conf->name);
        else
            log_warn(&ch->log, "provider %s: no webhook_public_key: every "
                     "webhook will be refused (401)", ch->conf->name);
        return 0;
    }
    if (fax_base64_decode(k, f->pubkey, sizeof f->pubkey, &n) < 0 ||
        n != 32)
        return bad_conf(ch, "webhook_public_key must be the base64 of a raw "
                        "32-byte Ed25519 key (got %zu bytes)", n);
    pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, f->pubkey, 32);
    if (!pk)
        return bad_conf(ch, "webhook_public_key is not an Ed25519 key");
    EVP_PKEY_free(pk);
    f->have_key = 1;
    return 0;
}

static int
conf_hosts(struct channel *ch, struct fax *f, const char *base)
{
    const char *list[HOSTS_MAX];
    char host[256];
    size_t n = conf_list(ch->conf, "inbound_hosts", list, HOSTS_MAX);

    if (n > HOSTS_MAX)
        return bad_conf(ch, "inbound_hosts: at most %d hosts", HOSTS_MAX);
    if (n == 0) {
        if (fax_url_host(base, host, sizeof host) < 0)
            return bad_conf(ch, "base_url has no host");
        list[0] = host;
        n = 1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *h = list[i];
        if (!*h || strlen(h) >= sizeof host || strpbrk(h, "/@ ?#") ||
            (h[0] != '[' && strchr(h, ':')))
            return bad_conf(ch, "inbound_hosts: '%s' is not a host name "
                            "(no scheme, port or path)", h);
        if ((f->hosts[i] = strdup(list[i])) == NULL)
            return -ENOMEM;
        f->nhosts = i + 1;
    }
    return 0;
}

static int
fax_open(struct channel *ch, const struct conf_provider *conf)
{
    struct fax *f = calloc(1, sizeof *f);
    const char *v, *base = conf_str(conf, "base_url");
    const char *api_key = conf_str(conf, "api_key");
    char *auth = NULL;
    int rc;

    if (!f)
        return -ENOMEM;
    f->ch = ch;
    f->connection_id = conf_str(conf, "connection_id");
    f->from = conf_str(conf, "from");
    f->font = conf_str(conf, "font");
    f->optout_text = conf_str(conf, "optout_text");
    f->optout_phone = conf_str(conf, "optout_phone");
    f->optout_fax = conf_str(conf, "optout_fax");
    f->paper = strcmp(conf_str(conf, "paper"), "letter") == 0 ? FAX_LETTER
                                                               : FAX_A4;
    f->media_url = strcmp(conf_str(conf, "media"), "url") == 0;
    f->media_ttl_ms = (uint64_t)conf_int(conf, "media_ttl_ms");
    f->media_max = (uint64_t)conf_int(conf, "media_max_bytes");
    f->grace_ms = (uint64_t)conf_int(conf, "close_grace_ms");
    f->timeout_ms = (long)conf_int(conf, "timeout_ms");
    f->max_conns = (unsigned)conf_int(conf, "max_connections");
    f->max_inflight = (unsigned)conf_int(conf, "max_inflight");
    f->inbound_max = (size_t)conf_int(conf, "inbound_max_bytes");
    f->font_pt = (double)conf_int(conf, "font_pt");
    f->max_pages = (int)conf_int(conf, "max_pages");
    f->verbose = conf_bool(conf, "verbose");

    if ((rc = conf_base(ch, "base_url", base, &f->url)) < 0)
        goto fail;
    if ((rc = conf_hosts(ch, f, base)) < 0)
        goto fail;
    {
        char *full = join(f->url, "/v2/faxes");
        free(f->url);
        if ((f->url = full) == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    if ((v = conf_str(conf, "public_url")) != NULL &&
        (rc = conf_base(ch, "public_url", v, &f->public_url)) < 0)
        goto fail;
    if (f->media_url && !f->public_url) {
        rc = bad_conf(ch, "media = \"url\" needs public_url (the gateway's "
                      "URL as the provider reaches it)");
        goto fail;
    }
    if (!api_key || !*api_key || !header_safe(api_key)) {
        rc = bad_conf(ch, "api_key must be non-empty printable text");
        goto fail;
    }
    if (!f->connection_id || !*f->connection_id) {
        rc = bad_conf(ch, "connection_id must not be empty");
        goto fail;
    }
    if (!fax_e164_ok(f->from)) {
        rc = bad_conf(ch, "from '%s' is not an E.164 number (+ and 8-15 "
                      "digits)", f->from ? f->from : "");
        goto fail;
    }
    if (!f->optout_text || !*f->optout_text || !f->optout_phone ||
        !*f->optout_phone || !f->optout_fax || !*f->optout_fax) {
        rc = bad_conf(ch, "optout_text, optout_phone and optout_fax must "
                      "not be empty");
        goto fail;
    }
    if (!f->font || !*f->font) {
        rc = bad_conf(ch, "font must not be empty");
        goto fail;
    }
    if ((rc = conf_webhook(ch, f)) < 0)
        goto fail;
    if ((f->inbound_dir = strdup(conf_str(conf, "inbound_dir"))) == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    {
        size_t n = strlen(f->inbound_dir);
        while (n > 1 && f->inbound_dir[n - 1] == '/')
            f->inbound_dir[--n] = 0;
        if (n == 0) {
            rc = bad_conf(ch, "inbound_dir must not be empty");
            goto fail;
        }
    }
    if ((auth = str_printf("Authorization: Bearer %s", api_key)) == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    f->hdr_json = curl_slist_append(NULL, auth);
    f->hdr_mime = curl_slist_append(NULL, auth);
    OPENSSL_cleanse(auth, strlen(auth));
    free(auth);
    if (!f->hdr_json || !f->hdr_mime ||
        !curl_slist_append(f->hdr_json, "Content-Type: application/json") ||
        !curl_slist_append(f->hdr_json, "Accept: application/json") ||
        !curl_slist_append(f->hdr_json, "Expect:") ||
        !curl_slist_append(f->hdr_mime, "Accept: application/json") ||
        !curl_slist_append(f->hdr_mime, "Expect:")) {
        rc = -ENOMEM;
        goto fail;
    }
    if (RAND_bytes(f->key, sizeof f->key) != 1) {
        rc = bad_conf(ch, "no random bytes for the media key");
        goto fail;
    }
    if ((f->pool = calloc(f->max_conns, sizeof *f->pool)) == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = bad_conf(ch, "curl_global_init failed");
        goto fail;
    }
    if (curl_uv_init(&f->cu, ch->loop, f, cu_progress, cu_opened,
                     cu_closed) < 0) {
        curl_global_cleanup();
        rc = -ENOMEM;
        goto fail;
    }
    curl_multi_setopt(f->cu.multi, CURLMOPT_MAXCONNECTS,
                      (long)f->max_conns + FETCH_MAX);
    uv_timer_init(ch->loop, &f->later);
    uv_timer_init(ch->loop, &f->grace);
    uv_timer_init(ch->loop, &f->sweep);
    f->cu.timer.data = f->later.data = f->grace.data = f->sweep.data = f;
    f->nhandles = 4;
    uv_timer_start(&f->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)&f->sweep);     /* housekeeping only */
    ch->priv = f;
    log_info(&ch->log, "provider %s: %s, media by %s, %u connections, "
             "webhooks %s", conf->name, f->url,
             f->media_url ? "url" : "upload", f->max_conns,
             f->have_key ? "verified (Ed25519)"
             : f->insecure ? "NOT verified" : "refused (no key)");
    return 0;
fail:
    fax_free(f);
    return rc;
}

const struct channel_ops fax_ops = {
    .name  = "fax",
    .open  = fax_open,
    .send  = fax_send,
    .close = fax_close,
    .stats = fax_stats,
    .http  = fax_http,
};

/*
 * smtp.c -- the SMTP channel: each message becomes MIME bytes (mime.c) and
 * one SMTP transaction over a pool of reused connections to the provider,
 * all on our libuv loop through libcurl's multi interface (curl's multi-uv
 * shape: a uv_poll per socket, one uv_timer). Every reply is captured, so
 * the RCPT result, the final "250 ... queued as X" and the enhanced status
 * codes reach the ledger: 2xx is accepted, 4xx a temporary and 5xx a
 * permanent failure; 421, a refused session or a dropped connection also
 * pause the provider for a moment (backoff).
 *
 * Two transports sit behind one seam -- a transaction is a sender,
 * recipients and bytes in, a reply per command (txn_reply) and an end
 * (txn_end) out; the outcome rules live on this side of it:
 *   "pipelined" (default): libcurl opens each connection (TCP, TLS or
 *     STARTTLS with verification, EHLO, AUTH: CURLOPT_CONNECT_ONLY) and
 *     we run the transactions on it with curl_easy_send/recv: MAIL, RCPT
 *     and DATA in one write when the server offers PIPELINING (RFC 2920),
 *     dot-stuffing ours, RSET after a refusal, never blocking the loop.
 *   "libcurl": libcurl runs each transaction (CURLOPT_READFUNCTION uploads
 *     the bytes and libcurl dot-stuffs them), lock-step. libcurl 7.88
 *     waits for the reply to the end of data inside the loop (smtp_done
 *     runs a blocking state machine), so a slow server stalls the daemon:
 *     kept for comparison and as a fallback.
 */
#include "channel.h"
#include "curl_uv.h"
#include "mime.h"

#include "../common/buf.h"
#include "../common/err.h"

#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define REPLY_MAX   512         /* text kept of one reply */
#define ERR_MAX     600         /* the reply handed to the dispatcher */
#define IN_MAX      8192        /* one reply line, at most */
#define EXPECT_MAX  16          /* commands awaiting a reply */

static const char *const tls_choices[] = {
    "required", "opportunistic", "off", NULL
};
static const char *const transport_choices[] = {
    "pipelined", "libcurl", NULL
};

const struct conf_key smtp_conf_keys[] = {
    /* smtp://host[:port] (STARTTLS) or smtps://host[:port] (implicit TLS,
     * RFC 8314) */
    { "url", CK_STR, 1, 0, 0, NULL, NULL },
    { "username", CK_STR, 0, 0, 0, NULL, NULL },
    { "password", CK_STR, 0, 0, 0, NULL, NULL },
    /* required: TLS (STARTTLS or smtps) with peer and host verified, or
     * nothing is sent; opportunistic: STARTTLS when offered, unverified;
     * off: plain text (test sinks) */
    { "tls", CK_CHOICE, 0, 0, 0, tls_choices, "required" },
    /* CA bundle for tls = "required" (default: the system's) */
    { "ca_file", CK_STR, 0, 0, 0, NULL, NULL },
    /* EHLO name (default: this host's name) */
    { "helo", CK_STR, 0, 0, 0, NULL, NULL },
    /* the From header: "Shop <news@example.org>" */
    { "from", CK_STR, 1, 0, 0, NULL, NULL },
    /* MAIL FROM; "{key}" is replaced by the message key made safe for a
     * local part (VERP: bounces+{key}@example.org). Default: From's */
    { "envelope_from", CK_STR, 0, 0, 0, NULL, NULL },
    /* right side of Message-ID (default: From's domain) */
    { "message_id_domain", CK_STR, 0, 0, 0, NULL, NULL },
    /* List-Id: "Shop news <news.example.org>" */
    { "list_id", CK_STR, 0, 0, 0, NULL, NULL },
    /* pipelined | libcurl: see the top of channels/smtp.c */
    { "transport", CK_CHOICE, 0, 0, 0, transport_choices, "pipelined" },
    { "max_connections", CK_INT, 0, 1, 256, NULL, "4" },
    /* transactions on one connection before it is replaced (0: no cap) */
    { "max_messages_per_connection", CK_INT, 0, 0, 1000000, NULL, "100" },
    /* TCP, TLS, greeting, EHLO and AUTH */
    { "connect_timeout_ms", CK_INT, 0, 100, 600000, NULL, "10000" },
    /* one transaction, MAIL to the reply to the end of data */
    { "timeout_ms", CK_INT, 0, 1000, 3600000, NULL, "120000" },
    /* an unused connection is closed (QUIT) after this */
    { "idle_timeout_ms", CK_INT, 0, 100, 3600000, NULL, "30000" },
    /* pause after 421, a refused session or a dropped connection; doubles
     * while it keeps happening */
    { "backoff_ms", CK_INT, 0, 10, 600000, NULL, "1000" },
    { "backoff_max_ms", CK_INT, 0, 10, 3600000, NULL, "60000" },
    /* a message waiting this long for a connection while the provider is
     * paused is handed back as a temporary failure */
    { "queue_timeout_ms", CK_INT, 0, 100, 3600000, NULL, "30000" },
    /* at close, transactions still running after this are cancelled */
    { "close_grace_ms", CK_INT, 0, 0, 600000, NULL, "5000" },
    { "max_message_bytes", CK_INT, 0, 1024, 1 << 30, NULL, "26214400" },
    /* libcurl's protocol trace on stderr */
    { "verbose", CK_BOOL, 0, 0, 0, NULL, "false" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

enum tls_mode { TLS_REQUIRED, TLS_TRY, TLS_OFF };

/* What a reply answers. */
enum step {
    STEP_SESSION, STEP_MAIL, STEP_RCPT, STEP_DATA, STEP_END,
    STEP_DOT, STEP_RSET, STEP_QUIT      /* pipelined transport only */
};

static const char *const step_names[] = {
    "session", "MAIL", "RCPT", "DATA", "end of data", "end of data",
    "RSET", "QUIT"
};

/* What CURLINFO_PRIVATE points to: the first member of both. */
enum owner { OWN_XFER = 1, OWN_SESS };

/* txn_end flags */
#define TE_CONN     1u      /* the connection failed: back off */
#define TE_RETRY    2u      /* never began on a reused connection */
#define TE_DOUBT    4u      /* the data went out, no answer came */

struct smtp;
struct sess;

struct conn {                   /* libcurl transport: a socket it opened */
    curl_socket_t    fd;
    int              port;      /* local port, once known (0: not yet) */
    unsigned         msgs;      /* transactions begun on it */
};

struct xfer {                   /* one message */
    enum owner       kind;      /* OWN_XFER */
    struct xfer     *next, *prev;
    struct smtp     *s;
    struct message  *m;
    channel_done_cb *cb;
    void            *arg;
    struct buf       body;      /* the MIME bytes */
    char            *mail_from; /* "<...>" */
    struct curl_slist *rcpt;    /* "<...>" each */
    unsigned         nrcpt;
    uint64_t         queued_at;
    int              retried;
    /* where it runs */
    CURL            *easy;      /* libcurl transport */
    struct sess     *sess;      /* pipelined transport */
    size_t           off;       /* upload position (libcurl transport) */
    int              port;      /* local port of its connection */
    int              last_on_conn;
    char             errbuf[CURL_ERROR_SIZE];
    /* the transaction, as the replies tell it */
    int              begun;     /* session set up: replies are ours */
    unsigned         nreplies;  /* complete replies since */
    unsigned         rcpt_ok;
    int              mail_ok;
    int              cur_code;
    size_t           cur_len;
    char             cur[REPLY_MAX];    /* the reply being read */
    int              fail_code;
    enum step        fail_step;
    char             fail[REPLY_MAX + 8];   /* first reply >= 400 */
    int              final_code;
    char             final[REPLY_MAX + 8];  /* reply to the end of data */
    /* the outcome */
    enum send_result res;
    int              in_doubt;
    char             reply[ERR_MAX];
    char             provider_id[128];
};

enum sess_state { SS_CONNECTING, SS_IDLE, SS_BUSY, SS_CLOSING };

struct sess {                   /* pipelined transport: one connection */
    enum owner       kind;      /* OWN_SESS */
    struct sess     *next, *prev;
    struct smtp     *s;
    CURL            *easy;      /* CONNECT_ONLY: owns the connection */
    enum sess_state  state;
    curl_socket_t    fd;
    uv_poll_t        poll;
    uv_timer_t       timer;     /* reply and idle timeouts */
    int              polling;   /* poll initialised */
    int              events;
    unsigned         closes;    /* handle closes outstanding */
    int              pipelining, size_ext;
    unsigned         msgs;      /* transactions begun */
    struct xfer     *x;         /* the transaction, or the one waiting */
    enum step        expect[EXPECT_MAX];
    unsigned         nexp, exp_head;
    unsigned         rcpt_next; /* lock-step: RCPTs sent */
    struct buf       out, more; /* to write; more while a write waits */
    size_t           out_off;
    int              again;     /* a write returned CURLE_AGAIN */
    int              eob_queued, eob_sent;  /* the end of data */
    char             errbuf[CURL_ERROR_SIZE];
    char             in[IN_MAX];
    size_t           in_len;
    int              cur_code;
    size_t           cur_len;
    char             cur[REPLY_MAX];
};

struct smtp {
    struct channel  *ch;
    struct curl_uv   cu;        /* libcurl multi on the loop */
    uv_timer_t       later;     /* outcomes outside send(), teardown */
    uv_timer_t       pause;     /* backoff; at close the grace period */
    unsigned         nhandles;  /* our uv handles not closed yet */

    /* configuration */
    int              pipelined;
    char            *url;
    const char      *username, *password, *ca_file, *list_id;
    enum tls_mode    tls;
    char            *from_name, *from_addr, *mid_domain;
    char            *env_pre, *env_post;    /* envelope around {key} */
    int              env_key;
    size_t           env_budget;    /* characters {key} may become */
    unsigned         max_conns, max_per_conn;
    long             connect_timeout_ms, timeout_ms, idle_timeout_ms;
    uint64_t         backoff_min, backoff_max, queue_timeout, grace_ms;
    size_t           max_bytes;
    int              verbose;

    /* state */
    struct xfer     *qhead, *qtail;     /* waiting for a connection */
    struct xfer     *running;           /* libcurl transport: in the multi */
    unsigned         nrunning;          /* transactions under way */
    struct xfer     *dhead, *dtail;     /* outcomes to report */
    unsigned         ninflight;         /* accepted, not yet reported */
    CURL           **pool;              /* idle easy handles */
    unsigned         npool;
    struct conn     *conns;
    size_t           nconns, capconns;
    struct sess     *sessions;
    unsigned         nsess;
    uint64_t         backoff;           /* the next pause */
    int              paused, probing;
    int              closing, cancelled, torn;

    /* counters */
    struct channel_stats st;
    uint64_t         conns_opened, transactions, replies[6];
};

static void kick(struct smtp *s);
static void check_done(struct smtp *s);
static void teardown(struct smtp *s);
static void on_later(uv_timer_t *t);
static void on_pause_end(uv_timer_t *t);
static void sess_close(struct sess *ss, int quit);

/* ---- small things ---- */

static void
later(struct smtp *s)
{
    if (!s->torn && !uv_is_active((uv_handle_t *)&s->later))
        uv_timer_start(&s->later, on_later, 0, 0);
}

static void
xfer_free(struct xfer *x)
{
    if (!x)
        return;
    buf_free(&x->body);
    free(x->mail_from);
    curl_slist_free_all(x->rcpt);
    free(x);
}

static void
list_unlink(struct xfer **head, struct xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        *head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->next = x->prev = NULL;
}

static void
queue_push(struct smtp *s, struct xfer *x, int front)
{
    x->prev = x->next = NULL;
    if (!s->qhead) {
        s->qhead = s->qtail = x;
    } else if (front) {
        x->next = s->qhead;
        s->qhead->prev = x;
        s->qhead = x;
    } else {
        x->prev = s->qtail;
        s->qtail->next = x;
        s->qtail = x;
    }
}

static struct xfer *
queue_pop(struct smtp *s)
{
    struct xfer *x = s->qhead;

    if (!x)
        return NULL;
    if (x == s->qtail)
        s->qtail = x->prev;
    list_unlink(&s->qhead, x);
    return x;
}

/* The outcome is known: report it on the next loop turn. */
static void
finish(struct smtp *s, struct xfer *x, enum send_result res,
       const char *reply)
{
    x->res = res;
    snprintf(x->reply, sizeof x->reply, "%s", reply ? reply : "");
    x->next = NULL;
    x->prev = s->dtail;
    if (s->dtail)
        s->dtail->next = x;
    else
        s->dhead = x;
    s->dtail = x;
    later(s);
}

static void
report(struct smtp *s, struct xfer *x)
{
    struct send_outcome o = { .result = x->res, .final = 0,
                              .in_doubt = x->in_doubt };

    /* 421 (closing), 451 and 452 (local error, insufficient storage) are
     * how SMTP servers ask a sender to slow down. */
    o.throttled = x->res == SEND_TEMPFAIL &&
                  (x->fail_code == 421 || x->fail_code == 451 ||
                   x->fail_code == 452);

    o.provider_id = x->provider_id[0] ? x->provider_id : NULL;
    o.reply = x->reply[0] ? x->reply : NULL;
    switch (x->res) {
    case SEND_OK:
        s->st.sent++;
        log_debug(&x->m->log, "accepted: %s", x->reply);
        break;
    case SEND_TEMPFAIL:
        s->st.tempfail++;
        break;
    case SEND_PERMFAIL:
        s->st.permfail++;
        log_info(&x->m->log, "refused: %s", x->reply);
        break;
    }
    s->ninflight--;
    x->cb(x->m, &o, x->arg);
    xfer_free(x);
}

/* Reply lines, one at a time ("250-..." or "250 ..."): the text is joined
 * into cur; returns the code when the reply is complete, else 0, or -1
 * for a line that is not a reply. */
static int
reply_line(const char *p, size_t l, int *cur_code, char *cur, size_t *cur_len,
           size_t cur_max)
{
    size_t t;

    while (l && (p[l - 1] == '\n' || p[l - 1] == '\r'))
        l--;
    if (l < 3 || p[0] < '1' || p[0] > '5' || p[1] < '0' || p[1] > '9' ||
        p[2] < '0' || p[2] > '9' || (l > 3 && p[3] != ' ' && p[3] != '-'))
        return -1;
    t = l > 4 ? l - 4 : 0;
    if (*cur_len && *cur_len < cur_max - 1)
        cur[(*cur_len)++] = ' ';
    if (t > cur_max - 1 - *cur_len)
        t = cur_max - 1 - *cur_len;
    memcpy(cur + *cur_len, p + 4, t);
    *cur_len += t;
    cur[*cur_len] = 0;
    *cur_code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    return l == 3 || p[3] == ' ' ? *cur_code : 0;
}

/* ---- the seam: replies in, outcome out ---- */

/* One complete reply to step (multi-line replies joined by spaces). */
static void
txn_reply(struct xfer *x, enum step st, int code, const char *text)
{
    struct smtp *s = x->s;

    s->replies[code / 100 < 6 ? code / 100 : 0]++;
    log_debug(&x->m->log, "%s: %d %s", step_names[st], code, text);
    if (st == STEP_MAIL && code < 400)
        x->mail_ok = 1;
    if (st == STEP_RCPT && code < 400)
        x->rcpt_ok++;
    /* The first refusal says why (a pipelined DATA refused after it only
     * says there was no valid recipient); a session refusal that libcurl
     * got round (EHLO -> HELO) gives way to a later one. */
    if (code >= 400 && (x->fail_code == 0 || x->fail_step == STEP_SESSION)) {
        x->fail_code = code;
        x->fail_step = st;
        snprintf(x->fail, sizeof x->fail, "%d %s", code, text);
    }
    if (st == STEP_END) {
        x->final_code = code;
        snprintf(x->final, sizeof x->final, "%d %s", code, text);
    }
}

/* "queued as X" (Postfix), "id=X" (Exim), else the text after the
 * enhanced status code unless it is just "OK". */
static void
queue_id(const char *reply, char *out, size_t outlen)
{
    const char *p = reply, *q;
    size_t n;

    out[0] = 0;
    if ((q = strcasestr(p, "queued as ")) != NULL)
        p = q + 10;
    else if ((q = strstr(p, "id=")) != NULL)
        p = q + 3;
    else {
        p += strspn(p, "0123456789");          /* the code */
        p += strspn(p, " ");
        if (p[0] >= '2' && p[0] <= '5' && p[1] == '.')
            p += strcspn(p, " ");           /* 2.0.0 */
        p += strspn(p, " ");
        if (strcasecmp(p, "ok") == 0 || strcasecmp(p, "ok.") == 0)
            return;
        snprintf(out, outlen, "%s", p);
        return;
    }
    n = strcspn(p, " ;,)>");
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, p, n);
    out[n] = 0;
}

static void
start_backoff(struct smtp *s, const char *why)
{
    uint64_t now = uv_now(s->ch->loop);
    char r[400];

    if (s->closing || s->paused)
        return;
    log_warn(&s->ch->log, "pausing %llu ms: %s",
             (unsigned long long)s->backoff, why);
    s->paused = 1;
    uv_timer_start(&s->pause, on_pause_end, s->backoff, 0);
    s->backoff = s->backoff * 2 > s->backoff_max ? s->backoff_max
                                                 : s->backoff * 2;
    /* Messages that have waited too long go back to the scheduler. */
    for (struct xfer *x = s->qhead, *nx; x; x = nx) {
        nx = x->next;
        if (now - x->queued_at < s->queue_timeout)
            continue;
        if (x == s->qtail)
            s->qtail = x->prev;
        list_unlink(&s->qhead, x);
        snprintf(r, sizeof r, "not sent, provider paused: %s", why);
        finish(s, x, SEND_TEMPFAIL, r);
    }
}

static void
txn_reset(struct xfer *x)
{
    x->begun = 0;
    x->nreplies = x->rcpt_ok = 0;
    x->mail_ok = 0;
    x->off = 0;
    x->port = 0;
    x->last_on_conn = 0;
    x->cur_len = 0;
    x->fail_code = x->final_code = 0;
    x->fail_step = STEP_SESSION;
    x->easy = NULL;
    x->sess = NULL;
}

/* The transaction is over; x is no longer on a connection. terr: the
 * transport's error text, NULL when the dialogue ran its course (the
 * replies say how). */
static void
txn_end(struct xfer *x, const char *terr, unsigned flags)
{
    struct smtp *s = x->s;
    char r[ERR_MAX];
    int healthy = 0;

    /* Broken before anything was answered on a reused connection: the
     * message never left; again at once (each try leaves a dead
     * connection behind, so a few reach a fresh one). */
    if (terr && (flags & TE_RETRY) && x->retried <= (int)s->max_conns &&
        !s->closing) {
        log_debug(&x->m->log, "reused connection failed (%s); again", terr);
        x->retried++;
        txn_reset(x);
        queue_push(s, x, 1);
        return;
    }
    if (!terr && x->final_code / 100 == 2) {
        queue_id(x->final, x->provider_id, sizeof x->provider_id);
        finish(s, x, SEND_OK, x->final);
        healthy = 1;
    } else if (x->fail_code >= 400 && x->fail_step != STEP_SESSION) {
        snprintf(r, sizeof r, "%s: %s", step_names[x->fail_step], x->fail);
        finish(s, x, x->fail_code >= 500 ? SEND_PERMFAIL : SEND_TEMPFAIL, r);
        if (x->fail_code == 421)
            start_backoff(s, r);
        else
            healthy = 1;
    } else if (x->fail_code >= 400) {
        /* Greeting, EHLO, STARTTLS or AUTH refused: the provider's
         * trouble or ours, never the message's. */
        snprintf(r, sizeof r, "session refused: %s", x->fail);
        finish(s, x, SEND_TEMPFAIL, r);
        start_backoff(s, r);
    } else {
        snprintf(r, sizeof r, "%s", terr ? terr
                                         : "no reply to the end of data");
        x->in_doubt = (flags & TE_DOUBT) != 0;
        finish(s, x, SEND_TEMPFAIL, r);
        if (flags & TE_CONN)
            start_backoff(s, r);
    }
    if (healthy) {
        s->backoff = s->backoff_min;
        s->probing = 0;
    }
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
    ((struct smtp *)arg)->nhandles++;
}

static void
cu_closed(void *arg)
{
    struct smtp *s = arg;

    if (--s->nhandles == 0 && s->torn)
        teardown(s);
}

/* Options both transports set on a new easy handle. */
static CURLcode
easy_common(struct smtp *s, CURL *e)
{
    CURLcode rc = CURLE_OK;

#define SET(opt, val) \
    do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); } while (0)
    SET(CURLOPT_URL, s->url);
    SET(CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
    if (s->username) {
        SET(CURLOPT_USERNAME, s->username);
        SET(CURLOPT_PASSWORD, s->password ? s->password : "");
    }
    switch (s->tls) {
    case TLS_REQUIRED:
        SET(CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
        SET(CURLOPT_SSL_VERIFYPEER, 1L);
        SET(CURLOPT_SSL_VERIFYHOST, 2L);
        if (s->ca_file)
            SET(CURLOPT_CAINFO, s->ca_file);
        break;
    case TLS_TRY:
        SET(CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
        SET(CURLOPT_SSL_VERIFYPEER, 0L);
        SET(CURLOPT_SSL_VERIFYHOST, 0L);
        break;
    case TLS_OFF:
        SET(CURLOPT_USE_SSL, (long)CURLUSESSL_NONE);
        break;
    }
    if (s->verbose)
        SET(CURLOPT_VERBOSE, 1L);
#undef SET
    return rc;
}

/* ---- transport "libcurl": a transfer per message ---- */

static struct conn *
conn_by_fd(struct smtp *s, curl_socket_t fd)
{
    for (size_t i = 0; i < s->nconns; i++)
        if (s->conns[i].fd == fd)
            return &s->conns[i];
    return NULL;
}

static struct conn *
conn_by_port(struct smtp *s, int port)
{
    struct sockaddr_storage ss;
    socklen_t sl;

    for (size_t i = 0; i < s->nconns; i++)
        if (s->conns[i].port == port)
            return &s->conns[i];
    /* A new connection: learn the ports of the sockets not yet known. */
    for (size_t i = 0; i < s->nconns; i++) {
        struct conn *c = &s->conns[i];
        if (c->port)
            continue;
        sl = sizeof ss;
        if (getsockname(c->fd, (struct sockaddr *)&ss, &sl) < 0)
            continue;
        if (ss.ss_family == AF_INET)
            c->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            c->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        if (c->port == port)
            return c;
    }
    return NULL;
}

/* Close a connection under libcurl without its blocking QUIT exchange
 * (libcurl 7.88 waits for the 221 inside the loop when it closes a
 * connection itself): shut the socket down; libcurl then finds it dead. */
static void
conn_drop(struct smtp *s, struct conn *c)
{
    if (!c || c->fd == CURL_SOCKET_BAD)
        return;
    if (s->tls == TLS_OFF)          /* plain text: a polite QUIT first */
        (void)!send(c->fd, "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(c->fd, SHUT_RDWR);
}

static curl_socket_t
on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct smtp *s = clientp;
    curl_socket_t fd;

    (void)purpose;
    fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    if (s->nconns == s->capconns) {
        size_t n = s->capconns ? s->capconns * 2 : 16;
        struct conn *nc = realloc(s->conns, n * sizeof *nc);
        if (!nc) {
            close(fd);
            return CURL_SOCKET_BAD;
        }
        s->conns = nc;
        s->capconns = n;
    }
    s->conns[s->nconns++] = (struct conn){ fd, 0, 0 };
    s->conns_opened++;
    return fd;
}

static int
on_close_socket(void *clientp, curl_socket_t fd)
{
    struct smtp *s = clientp;
    struct conn *c = conn_by_fd(s, fd);

    if (c)
        *c = s->conns[--s->nconns];
    return close(fd);
}

static size_t
on_read(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct xfer *x = userdata;
    size_t n = size * nitems, left = x->body.len - x->off;

    if (n > left)
        n = left;
    memcpy(buf, x->body.data + x->off, n);
    x->off += n;
    return n;
}

/* Every reply line of the transfer. Replies before on_prereq belong to
 * the session; after it they answer MAIL, each RCPT, DATA, the end. */
static size_t
on_header(char *p, size_t size, size_t nitems, void *userdata)
{
    struct xfer *x = userdata;
    struct smtp *s = x->s;
    size_t n = size * nitems;
    enum step st = STEP_SESSION;
    int code;

    code = reply_line(p, n, &x->cur_code, x->cur, &x->cur_len, sizeof x->cur);
    if (code <= 0)
        return n;
    if (x->begun) {
        unsigned k = ++x->nreplies;
        st = k == 1 ? STEP_MAIL : k <= 1 + x->nrcpt ? STEP_RCPT
             : k == 2 + x->nrcpt ? STEP_DATA : STEP_END;
    }
    txn_reply(x, st, code, x->cur);
    x->cur_len = 0;
    /* A transaction refused before the data ends its connection: libcurl
     * closes it with a QUIT and blocks the loop for the answer; cut it
     * short instead. (A refused recipient among accepted ones does not end
     * the transaction; a refusal of the data itself leaves the connection
     * usable, and libcurl keeps it.) 421 means the server is closing. The
     * last transaction allowed on a connection closes it the same way. */
    if (x->begun &&
        ((code >= 400 &&
          (code == 421 || st == STEP_MAIL || st == STEP_DATA ||
           (st == STEP_RCPT && x->nreplies == 1 + x->nrcpt && !x->rcpt_ok))) ||
         (st == STEP_END && x->last_on_conn)))
        conn_drop(s, conn_by_port(s, x->port));
    return n;
}

/* Called once the session is set up (greeting, EHLO, STARTTLS, AUTH) on a
 * new connection, or at once on a reused one: what follows is ours. */
static int
on_prereq(void *clientp, char *peer_ip, char *local_ip, int peer_port,
          int local_port)
{
    struct xfer *x = clientp;
    struct smtp *s = x->s;
    struct conn *c;

    (void)peer_ip;
    (void)local_ip;
    (void)peer_port;
    x->begun = 1;
    x->nreplies = 0;
    x->port = local_port;
    s->transactions++;
    if ((c = conn_by_port(s, local_port)) != NULL) {
        c->msgs++;
        x->last_on_conn = s->max_per_conn && c->msgs >= s->max_per_conn;
    }
    /* Its last transaction: libcurl must not hand the connection to
     * another transfer (it can, before we hear this one is done). */
    if (x->last_on_conn)
        curl_easy_setopt(x->easy, CURLOPT_FORBID_REUSE, 1L);
    return CURL_PREREQFUNC_OK;
}

static CURL *
easy_new(struct smtp *s)
{
    CURL *e = curl_easy_init();
    CURLcode rc;

    if (!e)
        return NULL;
    rc = easy_common(s, e);
#define SET(opt, val) \
    do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); } while (0)
    SET(CURLOPT_UPLOAD, 1L);
    SET(CURLOPT_READFUNCTION, on_read);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_PREREQFUNCTION, on_prereq);
    SET(CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    SET(CURLOPT_OPENSOCKETDATA, s);
    SET(CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    SET(CURLOPT_CLOSESOCKETDATA, s);
    /* 7.88's spelling; a refused RCPT is reported, not fatal, when
     * others were accepted. */
    SET(CURLOPT_MAIL_RCPT_ALLLOWFAILS, 1L);
    SET(CURLOPT_TIMEOUT_MS, s->connect_timeout_ms + s->timeout_ms);
    /* Also bounds how long libcurl 7.88 blocks the loop waiting for the
     * reply to the end of data. */
    SET(CURLOPT_SERVER_RESPONSE_TIMEOUT,
        s->timeout_ms / 1000 > 0 ? s->timeout_ms / 1000 : 1L);
    SET(CURLOPT_MAXAGE_CONN, s->idle_timeout_ms / 1000 > 0
                             ? s->idle_timeout_ms / 1000 : 1L);
#undef SET
    if (rc != CURLE_OK) {
        log_error(&s->ch->log, "libcurl option: %s", curl_easy_strerror(rc));
        curl_easy_cleanup(e);
        return NULL;
    }
    return e;
}

static void
easy_put(struct smtp *s, CURL *e)
{
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, NULL);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
    if (s->npool < s->max_conns && !s->torn)
        s->pool[s->npool++] = e;
    else
        curl_easy_cleanup(e);
}

static int
xfer_start(struct smtp *s, struct xfer *x)
{
    CURL *e = s->npool ? s->pool[--s->npool] : easy_new(s);

    if (!e)
        return -ENOMEM;
    x->errbuf[0] = 0;
    x->off = 0;
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, x->mail_from);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, x->rcpt);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->body.len);
    curl_easy_setopt(e, CURLOPT_READDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 0L);
    if (curl_multi_add_handle(s->cu.multi, e) != CURLM_OK) {
        easy_put(s, e);
        return GW_ESTATE;
    }
    x->easy = e;
    x->prev = NULL;
    x->next = s->running;
    if (s->running)
        s->running->prev = x;
    s->running = x;
    s->nrunning++;
    return 0;
}

/* Take x out of the multi handle; its easy handle goes back to the pool. */
static void
xfer_detach(struct smtp *s, struct xfer *x)
{
    curl_multi_remove_handle(s->cu.multi, x->easy);
    easy_put(s, x->easy);
    x->easy = NULL;
    list_unlink(&s->running, x);
    s->nrunning--;
}

static int
conn_error(CURLcode res)
{
    switch (res) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_USE_SSL_FAILED:
    case CURLE_LOGIN_DENIED:
    case CURLE_WEIRD_SERVER_REPLY:
        return 1;
    default:
        return 0;
    }
}

static void
xfer_done(struct smtp *s, struct xfer *x, CURLcode res)
{
    char terr[ERR_MAX];
    unsigned flags = 0;
    long nconn = 0;

    curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &nconn);
    xfer_detach(s, x);
    if (res == CURLE_OK) {
        txn_end(x, NULL, 0);
        return;
    }
    snprintf(terr, sizeof terr, "%s%s%s", curl_easy_strerror(res),
             x->errbuf[0] ? ": " : "", x->errbuf);
    if (conn_error(res))
        flags |= TE_CONN;
    if (x->fail_code == 0 && x->nreplies == 0 && nconn == 0)
        flags |= TE_RETRY;
    /* DATA was answered 354 and every byte handed over: the server may
     * have the message although it never said so. */
    if (x->nreplies >= 2 + x->nrcpt && x->off == x->body.len)
        flags |= TE_DOUBT;
    txn_end(x, terr, flags);
}

/* ---- transport "pipelined": our transactions on libcurl's sessions ---- */

static void
on_sess_closed(uv_handle_t *h)
{
    struct sess *ss = h->data;
    struct smtp *s = ss->s;

    if (--ss->closes > 0)
        return;
    /* Both handles are closed: now libcurl may close the socket. */
    curl_multi_remove_handle(s->cu.multi, ss->easy);
    curl_easy_cleanup(ss->easy);
    buf_free(&ss->out);
    buf_free(&ss->more);
    if (ss->prev)
        ss->prev->next = ss->next;
    else
        s->sessions = ss->next;
    if (ss->next)
        ss->next->prev = ss->prev;
    s->nsess--;
    s->nhandles--;
    free(ss);
    if (s->closing)
        later(s);
    else
        kick(s);
}

/* Close the session; its transaction (if any) must be ended already. */
static void
sess_close(struct sess *ss, int quit)
{
    size_t n;

    if (ss->state == SS_CLOSING)
        return;
    if (quit && ss->polling && !ss->again)
        curl_easy_send(ss->easy, "QUIT\r\n", 6, &n);
    ss->state = SS_CLOSING;
    ss->closes = 1 + ss->polling;
    uv_close((uv_handle_t *)&ss->timer, on_sess_closed);
    if (ss->polling)
        uv_close((uv_handle_t *)&ss->poll, on_sess_closed);
}

/* The connection failed: end its transaction with err, close it. */
static void
sess_fail(struct sess *ss, const char *err)
{
    struct smtp *s = ss->s;
    struct xfer *x = ss->x;
    unsigned flags = TE_CONN;

    if (ss->state == SS_CLOSING)
        return;
    log_debug(&s->ch->log, "connection lost: %s", err);
    ss->x = NULL;
    if (x) {
        x->sess = NULL;
        s->nrunning--;
        if (x->nreplies == 0 && ss->msgs > 1 && x->begun)
            flags |= TE_RETRY;
        if (ss->eob_sent)
            flags |= TE_DOUBT;
        txn_end(x, err, flags);
    }
    sess_close(ss, 0);
}

static void sess_flush(struct sess *ss);

/* Queue bytes for the server; while a write waits (TLS needs the same
 * buffer again) they go to the second buffer. */
static int
sess_put(struct sess *ss, const char *p, size_t n)
{
    return buf_append(ss->again ? &ss->more : &ss->out, p, n);
}

static int
sess_cmd(struct sess *ss, enum step st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
sess_cmd(struct sess *ss, enum step st, const char *fmt, ...)
{
    va_list ap;
    int rc;

    if (ss->nexp == EXPECT_MAX)
        return GW_ETOOBIG;
    va_start(ap, fmt);
    rc = buf_vprintf(ss->again ? &ss->more : &ss->out, fmt, ap);
    va_end(ap);
    if (rc == 0)
        ss->expect[(ss->exp_head + ss->nexp++) % EXPECT_MAX] = st;
    return rc;
}

/* The body, dot-stuffed (RFC 5321 4.5.2), then the end of data. */
static int
sess_put_body(struct sess *ss, const struct buf *b)
{
    const char *p = b->data, *end = b->data + b->len, *q;
    int rc = 0;

    if (p < end && *p == '.')
        rc = sess_put(ss, ".", 1);
    /* Our MIME bytes have no line starting with '.': one copy. */
    while (rc == 0 && p < end) {
        /* memchr is vectorised; memmem with a 2-byte needle is not */
        for (q = p; (q = memchr(q, '\n', (size_t)(end - q))) != NULL &&
                    (q + 1 >= end || q[1] != '.'); q++)
            ;
        size_t n = q ? (size_t)(q - p) + 1 : (size_t)(end - p);
        rc = sess_put(ss, p, n);
        p += n;
        if (rc == 0 && q)
            rc = sess_put(ss, ".", 1);
    }
    if (rc == 0 && (b->len < 2 || end[-2] != '\r' || end[-1] != '\n'))
        rc = sess_put(ss, "\r\n", 2);
    if (rc == 0 && (rc = sess_put(ss, ".\r\n", 3)) == 0) {
        ss->expect[(ss->exp_head + ss->nexp++) % EXPECT_MAX] = STEP_END;
        ss->eob_queued = 1;
    }
    return rc;
}

static void
on_sess_timeout(uv_timer_t *t)
{
    struct sess *ss = t->data;
    char err[200];

    if (ss->state == SS_IDLE) {         /* unused for a while: goodbye */
        sess_close(ss, 1);
        return;
    }
    snprintf(err, sizeof err, "no reply to %s within %ld ms",
             ss->nexp ? step_names[ss->expect[ss->exp_head]] : "?",
             ss->s->timeout_ms);
    sess_fail(ss, err);
}

static void on_sess_poll(uv_poll_t *p, int status, int events);

static void
sess_want(struct sess *ss, int events)
{
    if (ss->state == SS_CLOSING || !ss->polling || events == ss->events)
        return;
    ss->events = events;
    uv_poll_start(&ss->poll, events, on_sess_poll);
}

static void
sess_flush(struct sess *ss)
{
    size_t n;
    CURLcode rc;

    while (ss->state != SS_CLOSING) {
        if (ss->out_off == ss->out.len) {
            struct buf t;
            buf_reset(&ss->out);
            ss->out_off = 0;
            ss->again = 0;
            if (ss->more.len == 0) {
                /* All written: the end of data, if queued, went out. */
                ss->eob_sent = ss->eob_queued;
                break;
            }
            t = ss->out;
            ss->out = ss->more;
            ss->more = t;
            continue;
        }
        rc = curl_easy_send(ss->easy, ss->out.data + ss->out_off,
                            ss->out.len - ss->out_off, &n);
        if (rc == CURLE_AGAIN) {
            ss->again = 1;
            break;
        }
        if (rc != CURLE_OK) {
            sess_fail(ss, curl_easy_strerror(rc));
            return;
        }
        ss->out_off += n;
    }
    if (ss->state != SS_CLOSING)
        sess_want(ss, UV_READABLE | (ss->again ? UV_WRITABLE : 0));
}

static void sess_idle(struct sess *ss);

/* Begin x on the session: MAIL, RCPT, DATA -- one write when the server
 * pipelines, else MAIL alone and the rest as the replies come. */
static void
sess_begin(struct sess *ss, struct xfer *x)
{
    struct smtp *s = ss->s;
    char size[40] = "";
    int rc;

    ss->x = x;
    x->sess = ss;
    x->begun = 1;
    x->nreplies = 0;
    ss->state = SS_BUSY;
    ss->msgs++;
    ss->rcpt_next = 0;
    ss->eob_queued = ss->eob_sent = 0;
    s->transactions++;
    if (ss->size_ext)
        snprintf(size, sizeof size, " SIZE=%zu", x->body.len);
    rc = sess_cmd(ss, STEP_MAIL, "MAIL FROM:%s%s\r\n", x->mail_from, size);
    if (ss->pipelining) {
        for (struct curl_slist *r = x->rcpt; r && rc == 0; r = r->next) {
            rc = sess_cmd(ss, STEP_RCPT, "RCPT TO:%s\r\n", r->data);
            ss->rcpt_next++;
        }
        if (rc == 0)
            rc = sess_cmd(ss, STEP_DATA, "DATA\r\n");
    }
    if (rc < 0) {
        sess_fail(ss, gw_strerror(rc));
        return;
    }
    uv_timer_start(&ss->timer, on_sess_timeout, (uint64_t)s->timeout_ms, 0);
    sess_flush(ss);
}

/* The transaction is over (its outcome taken); the session goes on. */
static void
sess_txn_over(struct sess *ss)
{
    struct smtp *s = ss->s;
    struct xfer *x = ss->x;

    ss->x = NULL;
    if (x) {
        x->sess = NULL;
        s->nrunning--;
        txn_end(x, NULL, 0);
    }
}

static void
sess_idle(struct sess *ss)
{
    struct smtp *s = ss->s;

    if (ss->state == SS_CLOSING)
        return;
    if (s->closing || (s->max_per_conn && ss->msgs >= s->max_per_conn)) {
        sess_close(ss, 1);
        return;
    }
    ss->state = SS_IDLE;
    uv_timer_start(&ss->timer, on_sess_timeout,
                   (uint64_t)s->idle_timeout_ms, 0);
    kick(s);
}

/* A transaction that cannot go on: its outcome is the refusal already
 * recorded; RSET clears the server's state before the next one. */
static void
sess_abandon(struct sess *ss)
{
    sess_txn_over(ss);
    if (ss->state == SS_CLOSING)
        return;
    if (sess_cmd(ss, STEP_RSET, "RSET\r\n") < 0) {
        sess_close(ss, 0);
        return;
    }
    sess_flush(ss);
}

static void
sess_reply(struct sess *ss, int code, const char *text)
{
    struct smtp *s = ss->s;
    struct xfer *x = ss->x;
    enum step st;

    if (ss->nexp == 0) {
        /* Unasked: a 421 before closing, or noise. */
        log_debug(&s->ch->log, "unexpected reply %d %s", code, text);
        if (code == 421)
            sess_close(ss, 0);
        return;
    }
    st = ss->expect[ss->exp_head];
    ss->exp_head = (ss->exp_head + 1) % EXPECT_MAX;
    ss->nexp--;
    if (st == STEP_RSET || st == STEP_QUIT || st == STEP_DOT) {
        s->replies[code / 100 < 6 ? code / 100 : 0]++;
        if (st == STEP_RSET) {
            if (code / 100 == 2)
                sess_idle(ss);
            else
                sess_close(ss, 1);
        }
        return;
    }
    if (!x)
        return;
    x->nreplies++;
    txn_reply(x, st, code, text);
    if (code == 421) {                  /* the server is going away */
        ss->x = NULL;
        x->sess = NULL;
        s->nrunning--;
        txn_end(x, NULL, 0);
        sess_close(ss, 0);
        return;
    }
    switch (st) {
    case STEP_MAIL:
        if (ss->pipelining)
            break;
        if (code >= 400)
            sess_abandon(ss);
        else if (sess_cmd(ss, STEP_RCPT, "RCPT TO:%s\r\n",
                          x->rcpt->data) == 0) {
            ss->rcpt_next = 1;
            sess_flush(ss);
        }
        break;
    case STEP_RCPT:
        if (ss->pipelining)
            break;
        if (ss->rcpt_next < x->nrcpt) {
            struct curl_slist *r = x->rcpt;
            for (unsigned i = 0; i < ss->rcpt_next; i++)
                r = r->next;
            ss->rcpt_next++;
            if (sess_cmd(ss, STEP_RCPT, "RCPT TO:%s\r\n", r->data) == 0)
                sess_flush(ss);
        } else if (!x->rcpt_ok) {
            sess_abandon(ss);
        } else if (sess_cmd(ss, STEP_DATA, "DATA\r\n") == 0) {
            sess_flush(ss);
        }
        break;
    case STEP_DATA:
        if (code != 354) {
            sess_abandon(ss);
        } else if (!x->mail_ok || !x->rcpt_ok) {
            /* Pipelined, nothing valid, yet the server wants the data:
             * give it an empty message and take it back. */
            ss->expect[(ss->exp_head + ss->nexp++) % EXPECT_MAX] = STEP_DOT;
            if (sess_put(ss, ".\r\n", 3) == 0)
                sess_abandon(ss);
        } else if (sess_put_body(ss, &x->body) == 0) {
            sess_flush(ss);
        } else {
            sess_fail(ss, "out of memory");
        }
        break;
    case STEP_END:
        sess_txn_over(ss);
        sess_idle(ss);
        break;
    default:
        break;
    }
}

static void
sess_read(struct sess *ss)
{
    while (ss->state != SS_CLOSING) {
        size_t n = 0, start = 0;
        CURLcode rc = curl_easy_recv(ss->easy, ss->in + ss->in_len,
                                     sizeof ss->in - ss->in_len, &n);
        if (rc == CURLE_AGAIN)
            return;
        if (rc != CURLE_OK) {
            sess_fail(ss, curl_easy_strerror(rc));
            return;
        }
        if (n == 0) {
            sess_fail(ss, ss->state == SS_IDLE ? "closed by the server "
                      "while idle" : "connection closed by the server");
            return;
        }
        ss->in_len += n;
        for (size_t i = 0; i < ss->in_len && ss->state != SS_CLOSING; i++) {
            int code;
            if (ss->in[i] != '\n')
                continue;
            code = reply_line(ss->in + start, i + 1 - start, &ss->cur_code,
                              ss->cur, &ss->cur_len, sizeof ss->cur);
            start = i + 1;
            if (code < 0) {
                sess_fail(ss, "not an SMTP reply");
                return;
            }
            if (code > 0) {
                ss->cur_len = 0;
                sess_reply(ss, code, ss->cur);
            }
        }
        if (ss->state == SS_CLOSING)
            return;
        memmove(ss->in, ss->in + start, ss->in_len - start);
        ss->in_len -= start;
        if (ss->in_len == sizeof ss->in) {
            sess_fail(ss, "reply line too long");
            return;
        }
    }
}

static void
on_sess_poll(uv_poll_t *p, int status, int events)
{
    struct sess *ss = p->data;

    if (status < 0) {
        sess_fail(ss, uv_strerror(status));
        return;
    }
    if (events & UV_WRITABLE)
        sess_flush(ss);
    if ((events & UV_READABLE) && ss->state != SS_CLOSING)
        sess_read(ss);
}

/* Session set-up replies: the capabilities, or why it was refused. */
static size_t
on_sess_header(char *p, size_t size, size_t nitems, void *userdata)
{
    struct sess *ss = userdata;
    size_t n = size * nitems, l = n;
    int code;

    while (l && (p[l - 1] == '\n' || p[l - 1] == '\r'))
        l--;
    if (l >= 4 && memcmp(p, "220", 3) == 0)
        ss->pipelining = ss->size_ext = 0;  /* EHLO (again) follows */
    if (l >= 4 && memcmp(p, "250", 3) == 0) {
        if (l == 14 && strncasecmp(p + 4, "PIPELINING", 10) == 0)
            ss->pipelining = 1;
        if (l >= 8 && strncasecmp(p + 4, "SIZE", 4) == 0 &&
            (l == 8 || p[8] == ' '))
            ss->size_ext = 1;
    }
    code = reply_line(p, n, &ss->cur_code, ss->cur, &ss->cur_len,
                      sizeof ss->cur);
    if (code <= 0)
        return n;
    ss->cur_len = 0;
    if (ss->x)
        txn_reply(ss->x, STEP_SESSION, code, ss->cur);
    return n;
}

static int
sess_new(struct smtp *s, struct xfer *x)
{
    struct sess *ss = calloc(1, sizeof *ss);
    CURLcode rc;

    if (!ss)
        return -ENOMEM;
    if ((ss->easy = curl_easy_init()) == NULL) {
        free(ss);
        return -ENOMEM;
    }
    ss->kind = OWN_SESS;
    ss->s = s;
    ss->fd = CURL_SOCKET_BAD;
    ss->x = x;
    x->sess = ss;
    buf_init(&ss->out, 0);
    buf_init(&ss->more, 0);
    rc = easy_common(s, ss->easy);
#define SET(opt, val) \
    do { if (rc == CURLE_OK) rc = curl_easy_setopt(ss->easy, opt, val); } \
    while (0)
    SET(CURLOPT_CONNECT_ONLY, 1L);
    SET(CURLOPT_HEADERFUNCTION, on_sess_header);
    SET(CURLOPT_HEADERDATA, ss);
    SET(CURLOPT_PRIVATE, ss);
    SET(CURLOPT_ERRORBUFFER, ss->errbuf);
    SET(CURLOPT_TIMEOUT_MS, s->connect_timeout_ms);
    SET(CURLOPT_SERVER_RESPONSE_TIMEOUT,
        s->connect_timeout_ms / 1000 > 0 ? s->connect_timeout_ms / 1000 : 1L);
#undef SET
    if (rc != CURLE_OK || curl_multi_add_handle(s->cu.multi, ss->easy) !=
                              CURLM_OK) {
        log_error(&s->ch->log, "libcurl: %s", curl_easy_strerror(rc));
        curl_easy_cleanup(ss->easy);
        buf_free(&ss->out);
        buf_free(&ss->more);
        x->sess = NULL;
        free(ss);
        return GW_ESTATE;
    }
    uv_timer_init(s->ch->loop, &ss->timer);
    ss->timer.data = ss;
    ss->next = s->sessions;
    if (s->sessions)
        s->sessions->prev = ss;
    s->sessions = ss;
    s->nsess++;
    s->nhandles++;          /* the session counts as one until freed */
    s->nrunning++;          /* its message is under way */
    s->conns_opened++;
    return 0;
}

/* libcurl is done setting the session up (or failed to). */
static void
sess_connected(struct smtp *s, struct sess *ss, CURLcode res)
{
    struct xfer *x = ss->x;
    curl_socket_t fd = CURL_SOCKET_BAD;
    char err[ERR_MAX];

    if (ss->state == SS_CLOSING)        /* cancelled meanwhile */
        return;
    if (res == CURLE_OK &&
        (curl_easy_getinfo(ss->easy, CURLINFO_ACTIVESOCKET, &fd) !=
             CURLE_OK || fd == CURL_SOCKET_BAD))
        res = CURLE_COULDNT_CONNECT;
    if (res == CURLE_OK &&
        uv_poll_init_socket(s->ch->loop, &ss->poll, fd) < 0)
        res = CURLE_COULDNT_CONNECT;
    if (res != CURLE_OK) {
        snprintf(err, sizeof err, "%s%s%s", curl_easy_strerror(res),
                 ss->errbuf[0] ? ": " : "", ss->errbuf);
        sess_fail(ss, err);
        return;
    }
    ss->fd = fd;
    ss->poll.data = ss;
    ss->polling = 1;
    ss->events = 0;
    log_debug(&s->ch->log, "connected: pipelining %s, size %s",
              ss->pipelining ? "yes" : "no", ss->size_ext ? "yes" : "no");
    if (x && !s->closing) {
        sess_begin(ss, x);
    } else {
        if (x) {                        /* closing: hand it back */
            ss->x = NULL;
            x->sess = NULL;
            s->nrunning--;
            finish(s, x, SEND_TEMPFAIL, "shutdown: not sent");
        }
        sess_want(ss, UV_READABLE);
        sess_idle(ss);
    }
}

/* ---- both ---- */

static void
check_done(struct smtp *s)
{
    CURLMsg *msg;
    int left;

    while (s->cu.multi && (msg = curl_multi_info_read(s->cu.multi, &left))) {
        CURLcode res = msg->data.result;
        char *priv;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        if (*(enum owner *)(void *)priv == OWN_SESS)
            sess_connected(s, (struct sess *)(void *)priv, res);
        else
            xfer_done(s, (struct xfer *)(void *)priv, res);
    }
    kick(s);
}

/* Start what the connection limit (one while probing) allows. */
static void
kick(struct smtp *s)
{
    unsigned limit = s->probing ? 1 : s->max_conns;
    struct xfer *x;
    int rc;

    if (s->closing || s->paused)
        return;
    if (!s->pipelined) {
        while (s->nrunning < limit && (x = queue_pop(s)) != NULL)
            if ((rc = xfer_start(s, x)) < 0)
                finish(s, x, SEND_TEMPFAIL, gw_strerror(rc));
        return;
    }
    while (s->qhead && s->nrunning < limit && !s->paused) {
        struct sess *ss;
        for (ss = s->sessions; ss && ss->state != SS_IDLE; ss = ss->next)
            ;
        if (ss) {
            s->nrunning++;
            sess_begin(ss, queue_pop(s));
        } else if (s->nsess < s->max_conns) {
            x = queue_pop(s);
            if ((rc = sess_new(s, x)) < 0)
                finish(s, x, SEND_TEMPFAIL, gw_strerror(rc));
        } else {
            break;
        }
    }
}

static void
on_pause_end(uv_timer_t *t)
{
    struct smtp *s = t->data;

    s->paused = 0;
    s->probing = 1;         /* one transaction until one goes through */
    kick(s);
}

/* Grace period over: cancel what still runs. */
static void
on_grace_end(uv_timer_t *t)
{
    struct smtp *s = t->data;

    s->cancelled = 1;
    for (size_t i = 0; i < s->nconns; i++)
        shutdown(s->conns[i].fd, SHUT_RDWR);
    while (s->running) {
        struct xfer *x = s->running;
        xfer_detach(s, x);
        finish(s, x, SEND_TEMPFAIL, "shutdown: cancelled");
    }
    for (struct sess *ss = s->sessions; ss; ss = ss->next) {
        struct xfer *x = ss->x;
        if (ss->state == SS_CLOSING)
            continue;
        if (x) {
            ss->x = NULL;
            x->sess = NULL;
            s->nrunning--;
            finish(s, x, SEND_TEMPFAIL, "shutdown: cancelled");
        }
        sess_close(ss, 0);
    }
}

static void
on_later(uv_timer_t *t)
{
    struct smtp *s = t->data;

    while (s->dhead) {
        struct xfer *x = s->dhead;
        s->dhead = x->next;
        if (!s->dhead)
            s->dtail = NULL;
        report(s, x);
    }
    kick(s);
    if (s->closing && !s->nrunning && !s->qhead && !s->dhead && !s->torn) {
        /* Idle sessions say goodbye; teardown once they are gone. */
        for (struct sess *ss = s->sessions; ss; ss = ss->next)
            if (ss->state == SS_IDLE)
                sess_close(ss, 1);
        if (!s->sessions)
            teardown(s);
    }
}

/* ---- the channel ---- */

static void
smtp_free(struct smtp *s)
{
    free(s->url);
    free(s->from_name);
    free(s->from_addr);
    free(s->mid_domain);
    free(s->env_pre);
    free(s->env_post);
    free(s->pool);
    free(s->conns);
    free(s);
}

static void
on_timer_closed(uv_handle_t *h)
{
    struct smtp *s = h->data;

    if (--s->nhandles == 0)
        teardown(s);
}

/* Runs twice: first to release libcurl and close every handle, then, from
 * the last close callback, to free everything and tell the channel. */
static void
teardown(struct smtp *s)
{
    struct channel *ch = s->ch;

    if (!s->torn) {
        s->torn = 1;
        log_info(&ch->log, "closed: %llu sent, %llu temporary and %llu "
                 "permanent failures, %llu transactions on %llu "
                 "connections; replies 2xx %llu 3xx %llu 4xx %llu 5xx %llu",
                 (unsigned long long)s->st.sent,
                 (unsigned long long)s->st.tempfail,
                 (unsigned long long)s->st.permfail,
                 (unsigned long long)s->transactions,
                 (unsigned long long)s->conns_opened,
                 (unsigned long long)s->replies[2],
                 (unsigned long long)s->replies[3],
                 (unsigned long long)s->replies[4],
                 (unsigned long long)s->replies[5]);
        uv_timer_stop(&s->pause);
        if (s->cancelled)   /* no QUIT exchange with a peer that hangs */
            for (size_t i = 0; i < s->nconns; i++)
                shutdown(s->conns[i].fd, SHUT_RDWR);
        while (s->npool)
            curl_easy_cleanup(s->pool[--s->npool]);
        /* Sends QUIT on libcurl's idle connections and closes them. */
        curl_multi_cleanup(s->cu.multi);
        s->cu.multi = NULL;
        curl_uv_close_socks(&s->cu);
        uv_close((uv_handle_t *)&s->cu.timer, on_timer_closed);
        uv_close((uv_handle_t *)&s->later, on_timer_closed);
        uv_close((uv_handle_t *)&s->pause, on_timer_closed);
        return;
    }
    smtp_free(s);
    curl_global_cleanup();
    channel_closed(ch);
}

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

/* url + EHLO name as its path; the scheme decides implicit TLS. */
static int
conf_url(struct channel *ch, struct smtp *s, const char *url,
         const char *helo)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *full = NULL, path[300];
    int rc = GW_ECONFIG;

    if (!u)
        return -ENOMEM;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
        bad_conf(ch, "url '%s' does not parse", url);
        goto out;
    }
    if (strcmp(scheme, "smtp") != 0 && strcmp(scheme, "smtps") != 0) {
        bad_conf(ch, "url must be smtp:// or smtps://, not %s://", scheme);
        goto out;
    }
    if (strcmp(scheme, "smtps") == 0 && s->tls == TLS_OFF) {
        bad_conf(ch, "smtps:// is TLS: tls = \"off\" contradicts it");
        goto out;
    }
    if (helo) {
        char reason[200];
        if (strlen(helo) > 255 ||
            mime_check_text(helo, strlen(helo), "helo", reason,
                            sizeof reason) < 0 ||
            strpbrk(helo, " /?#@<>[]\\\"")) {
            bad_conf(ch, "helo '%s' is not a host name", helo);
            goto out;
        }
        snprintf(path, sizeof path, "/%s", helo);
        if (curl_url_set(u, CURLUPART_PATH, path, 0) != CURLUE_OK) {
            bad_conf(ch, "helo '%s' is not a host name", helo);
            goto out;
        }
    }
    if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK ||
        (s->url = strdup(full)) == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    rc = 0;
out:
    curl_free(scheme);
    curl_free(full);
    curl_url_cleanup(u);
    return rc;
}

static int
conf_envelope(struct channel *ch, struct smtp *s, const char *env)
{
    const char *k = env ? strstr(env, "{key}") : NULL;
    char reason[300], probe[400];
    const char *at;

    if (!env) {
        s->env_pre = strdup(s->from_addr);
        s->env_post = strdup("");
        return s->env_pre && s->env_post ? 0 : -ENOMEM;
    }
    if (k) {
        s->env_key = 1;
        s->env_pre = strndup(env, (size_t)(k - env));
        s->env_post = strdup(k + 5);
        if (!s->env_pre || !s->env_post)
            return -ENOMEM;
        if (strstr(s->env_post, "{key}"))
            return bad_conf(ch, "envelope_from: {key} more than once");
        at = strchr(s->env_post, '@');
        if (!at)
            return bad_conf(ch, "envelope_from: {key} must be in the local "
                            "part");
        /* The key may take what the local part has left, at least the
         * 34 characters of its hashed form. */
        size_t fixed = strlen(s->env_pre) + (size_t)(at - s->env_post);
        if (fixed + 34 > MIME_LOCAL_MAX)
            return bad_conf(ch, "envelope_from: the local part leaves %d "
                            "characters for {key}, 34 are needed",
                            (int)(MIME_LOCAL_MAX - (fixed > 64 ? 64 : fixed)));
        s->env_budget = MIME_LOCAL_MAX - fixed;
        snprintf(probe, sizeof probe, "%sh.0123456789abcdef0123456789abcdef%s",
                 s->env_pre, s->env_post);
    } else {
        if ((s->env_pre = strdup(env)) == NULL ||
            (s->env_post = strdup("")) == NULL)
            return -ENOMEM;
        snprintf(probe, sizeof probe, "%s", env);
    }
    if (mime_check_addr(probe, "envelope_from", reason, sizeof reason) < 0)
        return bad_conf(ch, "%s", reason);
    return 0;
}

static int
smtp_open(struct channel *ch, const struct conf_provider *conf)
{
    struct smtp *s = calloc(1, sizeof *s);
    const char *tls = conf_str(conf, "tls"), *v;
    char reason[300];
    int rc;

    if (!s)
        return -ENOMEM;
    s->ch = ch;
    s->tls = strcmp(tls, "required") == 0 ? TLS_REQUIRED
             : strcmp(tls, "opportunistic") == 0 ? TLS_TRY : TLS_OFF;
    s->pipelined = strcmp(conf_str(conf, "transport"), "pipelined") == 0;
    s->username = conf_str(conf, "username");
    s->password = conf_str(conf, "password");
    s->ca_file = conf_str(conf, "ca_file");
    s->list_id = conf_str(conf, "list_id");
    s->max_conns = (unsigned)conf_int(conf, "max_connections");
    s->max_per_conn = (unsigned)conf_int(conf, "max_messages_per_connection");
    s->connect_timeout_ms = (long)conf_int(conf, "connect_timeout_ms");
    s->timeout_ms = (long)conf_int(conf, "timeout_ms");
    s->idle_timeout_ms = (long)conf_int(conf, "idle_timeout_ms");
    s->backoff_min = s->backoff = (uint64_t)conf_int(conf, "backoff_ms");
    s->backoff_max = (uint64_t)conf_int(conf, "backoff_max_ms");
    s->queue_timeout = (uint64_t)conf_int(conf, "queue_timeout_ms");
    s->grace_ms = (uint64_t)conf_int(conf, "close_grace_ms");
    s->max_bytes = (size_t)conf_int(conf, "max_message_bytes");
    s->verbose = conf_bool(conf, "verbose");
    if (s->backoff_max < s->backoff_min)
        s->backoff_max = s->backoff_min;

    if ((rc = conf_url(ch, s, conf_str(conf, "url"),
                       conf_str(conf, "helo"))) < 0)
        goto fail;
    if (mime_mailbox_parse(conf_str(conf, "from"), &s->from_name,
                           &s->from_addr, reason, sizeof reason) < 0) {
        rc = bad_conf(ch, "from: %s", reason);
        goto fail;
    }
    if ((rc = conf_envelope(ch, s, conf_str(conf, "envelope_from"))) < 0)
        goto fail;
    v = conf_str(conf, "message_id_domain");
    if ((s->mid_domain = strdup(v ? v : strrchr(s->from_addr, '@') + 1)) ==
        NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    snprintf(reason, sizeof reason, "x@%s", s->mid_domain);
    if (mime_check_addr(reason, "message_id_domain", reason,
                        sizeof reason) < 0) {
        rc = bad_conf(ch, "message_id_domain '%s' is not a domain",
                      s->mid_domain);
        goto fail;
    }
    if (s->list_id && mime_check_text(s->list_id, strlen(s->list_id),
                                      "list_id", reason, sizeof reason) < 0) {
        rc = bad_conf(ch, "%s", reason);
        goto fail;
    }
    if (s->username && s->tls != TLS_REQUIRED)
        log_warn(&ch->log, "provider %s: credentials without tls = "
                 "\"required\" may cross the network in plain text",
                 conf->name);
    if ((s->pool = calloc(s->max_conns, sizeof *s->pool)) == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = bad_conf(ch, "curl_global_init failed");
        goto fail;
    }
    if (curl_uv_init(&s->cu, ch->loop, s, cu_progress, cu_opened,
                     cu_closed) < 0) {
        curl_global_cleanup();
        rc = -ENOMEM;
        goto fail;
    }
    curl_multi_setopt(s->cu.multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long)s->max_conns);
    curl_multi_setopt(s->cu.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      (long)s->max_conns);
    curl_multi_setopt(s->cu.multi, CURLMOPT_MAXCONNECTS, (long)s->max_conns);
    uv_timer_init(ch->loop, &s->later);
    uv_timer_init(ch->loop, &s->pause);
    s->cu.timer.data = s->later.data = s->pause.data = s;
    s->nhandles = 3;
    ch->priv = s;
    log_info(&ch->log, "provider %s: %s, tls %s, %s transport, %u "
             "connections, %u messages each", conf->name, s->url, tls,
             s->pipelined ? "pipelined" : "libcurl", s->max_conns,
             s->max_per_conn);
    return 0;
fail:
    smtp_free(s);
    return rc;
}

/* Message -> MIME bytes, envelope and recipient. GW_EINVAL with a reason
 * when the message itself is at fault. */
static int
prepare(struct smtp *s, struct xfer *x, char *reason, size_t len)
{
    const struct message *m = x->m;
    const struct message_content *c = &m->content;
    struct mime_msg mm;
    struct buf env;
    char rc_addr[MIME_ADDR_MAX + 3];
    int rc;

    if (!c->text && !c->html) {
        snprintf(reason, len, "no rendered content");
        return GW_EINVAL;
    }
    if (!m->to || !*m->to) {
        snprintf(reason, len, "no recipient address");
        return GW_EINVAL;
    }
    memset(&mm, 0, sizeof mm);
    mm.from_name = s->from_name;
    mm.from_addr = s->from_addr;
    mm.to_name = m->to_name;
    mm.to_addr = m->to;
    mm.subject = c->subject;
    mm.subject_len = c->subject ? c->subject_len : 0;
    mm.text = c->text;
    mm.text_len = c->text ? c->text_len : 0;
    mm.html = c->html;
    mm.html_len = c->html ? c->html_len : 0;
    mm.images = c->images;
    mm.nimages = c->nimages;
    mm.key = m->key;
    mm.id_domain = s->mid_domain;
    mm.list_id = s->list_id;
    mm.unsubscribe_url = m->unsubscribe_url;
    mm.unsubscribe_mailto = m->unsubscribe_mailto;
    mm.one_click = m->class && strcmp(m->class, "marketing") == 0;
    mm.campaign = m->campaign;
    if ((rc = mime_build(&x->body, &mm, reason, len)) < 0) {
        if (rc == GW_ETOOBIG)
            snprintf(reason, len, "message over %zu bytes", s->max_bytes);
        return rc == -ENOMEM ? rc : GW_EINVAL;
    }
    buf_init(&env, MIME_ADDR_MAX + 8);
    if ((rc = buf_putc(&env, '<')) < 0 ||
        (rc = buf_puts(&env, s->env_pre)) < 0 ||
        (s->env_key && (rc = mime_key_token(&env, m->key, s->env_budget)) <
                           0) ||
        (rc = buf_puts(&env, s->env_post)) < 0 ||
        (rc = buf_putc(&env, '>')) < 0) {
        buf_free(&env);
        return rc;
    }
    x->mail_from = buf_steal(&env, NULL);
    snprintf(rc_addr, sizeof rc_addr, "<%s>", m->to);
    if ((x->rcpt = curl_slist_append(NULL, rc_addr)) == NULL)
        return -ENOMEM;
    x->nrcpt = 1;
    return 0;
}

static int
smtp_send(struct channel *ch, struct message *m, channel_done_cb *cb,
          void *arg)
{
    struct smtp *s = ch->priv;
    char reason[400];
    struct xfer *x;
    int rc;

    if (s->closing)
        return GW_ESTATE;
    if ((x = calloc(1, sizeof *x)) == NULL)
        return -ENOMEM;
    x->kind = OWN_XFER;
    x->s = s;
    x->m = m;
    x->cb = cb;
    x->arg = arg;
    buf_init(&x->body, s->max_bytes);
    reason[0] = 0;
    if ((rc = prepare(s, x, reason, sizeof reason)) == -ENOMEM) {
        xfer_free(x);
        return rc;
    }
    s->ninflight++;
    if (rc < 0) {
        /* The message is at fault: nothing goes on the wire. */
        finish(s, x, SEND_PERMFAIL, reason[0] ? reason : gw_strerror(rc));
        return 0;
    }
    x->queued_at = uv_now(ch->loop);
    queue_push(s, x, 0);
    kick(s);
    return 0;
}

static void
smtp_close(struct channel *ch)
{
    struct smtp *s = ch->priv;
    struct xfer *x;

    s->closing = 1;
    uv_timer_stop(&s->pause);
    s->paused = 0;
    while ((x = queue_pop(s)) != NULL)
        finish(s, x, SEND_TEMPFAIL, "shutdown: not sent");
    if (s->nrunning) {
        log_info(&ch->log, "closing: %u transactions to finish within %llu "
                 "ms", s->nrunning, (unsigned long long)s->grace_ms);
        uv_timer_start(&s->pause, on_grace_end, s->grace_ms, 0);
    }
    later(s);
}

static void
smtp_stats(struct channel *ch, struct channel_stats *out)
{
    struct smtp *s = ch->priv;

    *out = s->st;
    out->inflight = s->ninflight;
    out->connections = (unsigned)s->nconns;
    out->connections_opened = s->conns_opened;
    memcpy(out->replies, s->replies, sizeof out->replies);
}

const struct channel_ops smtp_ops = {
    .name  = "smtp",
    .open  = smtp_open,
    .send  = smtp_send,
    .close = smtp_close,
    .stats = smtp_stats,
};

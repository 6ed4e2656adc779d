/*
 * smpp.c -- SMPP 3.4 client channel: binds, a window of outstanding
 * submit_sm, enquire_link, delivery receipts and MO messages.
 * PDUs with a body that we send (bind_*, submit_sm) are packed by
 * libsmpp34, header-only ones by hand; all socket I/O is ours, on the
 * loop; what the SMSC sends is decoded by the validating walks of
 * smpp_pdu.c and never reaches libsmpp34.
 *
 * A provider has `binds` sessions (plus `receiver_binds` receive-only
 * ones). send() plans the text with sms_plan (parts, encoding, UDH/SAR/
 * payload) and queues the message in the channel; each bound session
 * with a free window slot takes messages in turn and submits all parts
 * of a message itself. Outstanding submit_sm are matched by sequence
 * number: the low bits of a sequence number are the window slot, the
 * high bits a per-bind counter, so a late response never matches a
 * reused slot. The outcome is reported once every part is answered:
 *   all OK                     -> SEND_OK, every part's id, normalised
 *                                 (smpp_id_norm), separated by ','
 *   0x58 / 0x14                -> SEND_TEMPFAIL; the bind pauses for
 *                                 throttle_pause_ms and halves its window
 *                                 (+1 again per window of OKs)
 *   0x08, 0x64, 0x04           -> SEND_TEMPFAIL
 *   no response in time, link
 *   lost, shutdown             -> SEND_TEMPFAIL, in_doubt = 1: never
 *                                 resent by us; the gateway decides
 *   any other status           -> SEND_PERMFAIL, "ESME_R... (0x...)"
 * A throttled part of a multipart message is submitted again on the same
 * bind (at most 3 times) instead of failing a half-sent message. After a
 * part fails, the message's unsent parts are not sent; a message of which
 * some parts were accepted and others not is reported in doubt.
 *
 * Sessions: connect (connect_timeout_ms), bind (response_timeout_ms),
 * enquire_link every enquire_link_ms with enquire_link_timeout_ms for the
 * answer; a silent link, a socket error, EOF or an unbind from the SMSC
 * takes the bind down and it reconnects after reconnect_min_ms doubling
 * up to reconnect_max_ms, with jitter (half fixed, half random). A bind
 * refused for its credentials (0x0D, 0x0E, 0x0F) logs an error, raises
 * the alarm flag and waits reconnect_max_ms. close() hands queued work
 * back, waits up to close_grace_ms for outstanding responses (the rest:
 * in doubt, "no response before shutdown"), unbinds and closes.
 *
 * Inbound: deliver_sm / data_sm are always answered. Receipts (esm_class
 * 0x04/0x08/0x20, or receipted_message_id + message_state TLVs) go to
 * ch->on_inbound as IN_RECEIPT with the id normalised like the submit
 * ids; a receipt that beats its submit_sm_resp is reported all the same.
 * Anything else is an MO message, decoded to UTF-8 (UDH cut); the parts
 * of a concatenated MO are reported one by one. A PDU that cannot be
 * decoded is answered with an error status and the bind is dropped.
 */
#include <stdint.h>
#include "smpp34.h"
#include "smpp34_structs.h"
#include "smpp34_params.h"

#include "channel.h"
#include "sms_encode.h"
#include "smpp_int.h"

#include "../common/buf.h"
#include "../common/err.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define container_of(p, type, m) \
    ((type *)(void *)((char *)(p) - offsetof(type, m)))

#define OUT_FLUSH   (64u * 1024)        /* write the batch beyond this */
#define WQ_HIGH     (4u * 1024 * 1024)  /* stop reading / sending beyond */
#define PDU_ROOM    2048                /* the largest PDU we pack */
#define MAX_REQUEUE 3                   /* throttled parts sent again */
#define TICK_MS     250

static const char *const bind_choices[] = {
    "transceiver", "transmitter", "receiver", NULL
};
static const char *const coding_choices[] = {
    "gsm", "gsm_packed", "ucs2", NULL
};
static const char *const concat_choices[] = {
    "udh8", "udh16", "sar", "payload", NULL
};
static const char *const idfmt_choices[] = { "text", "hex", "dec", NULL };

const struct conf_key smpp_conf_keys[] = {
    /* the SMSC: an IPv4 or IPv6 address (no name lookups on the loop) */
    { "host", CK_STR, 1, 0, 0, NULL, NULL },
    { "port", CK_INT, 0, 1, 65535, NULL, "2775" },
    { "system_id", CK_STR, 1, 0, 0, NULL, NULL },      /* <= 15 chars */
    { "password", CK_STR, 0, 0, 0, NULL, "" },         /* <= 8 */
    { "system_type", CK_STR, 0, 0, 0, NULL, "" },      /* <= 12 */
    { "bind", CK_CHOICE, 0, 0, 0, bind_choices, "transceiver" },
    /* sessions that send (messages are spread over them) */
    { "binds", CK_INT, 0, 1, 64, NULL, "1" },
    /* extra receive-only sessions (receipts, MO) */
    { "receiver_binds", CK_INT, 0, 0, 64, NULL, "0" },
    /* outstanding submit_sm per bind */
    { "window", CK_INT, 0, 1, 10000, NULL, "10" },
    { "response_timeout_ms", CK_INT, 0, 100, 600000, NULL, "10000" },
    { "connect_timeout_ms", CK_INT, 0, 100, 600000, NULL, "10000" },
    { "enquire_link_ms", CK_INT, 0, 100, 3600000, NULL, "30000" },
    { "enquire_link_timeout_ms", CK_INT, 0, 100, 600000, NULL, "10000" },
    { "reconnect_min_ms", CK_INT, 0, 10, 3600000, NULL, "1000" },
    { "reconnect_max_ms", CK_INT, 0, 10, 3600000, NULL, "60000" },
    /* the sender: "+4930...", "12345", or alphanumeric "Shop" */
    { "source_addr", CK_STR, 0, 0, 0, NULL, "" },
    /* -1: from the address (+digits 1/1, digits 0/1, letters 5/0) */
    { "source_ton", CK_INT, 0, -1, 255, NULL, "-1" },
    { "source_npi", CK_INT, 0, -1, 255, NULL, "-1" },
    { "dest_ton", CK_INT, 0, 0, 255, NULL, "1" },
    { "dest_npi", CK_INT, 0, 0, 255, NULL, "1" },
    { "service_type", CK_STR, 0, 0, 0, NULL, "" },      /* <= 5 */
    /* gsm: GSM 03.38 when the text fits it, else UCS-2; gsm_packed: the
     * same with 7-bit packed bodies; ucs2: always UCS-2 */
    { "data_coding", CK_CHOICE, 0, 0, 0, coding_choices, "gsm" },
    { "concat", CK_CHOICE, 0, 0, 0, concat_choices, "udh8" },
    /* typographic look-alikes to GSM when that saves UCS-2 */
    { "smart_encoding", CK_BOOL, 0, 0, 0, NULL, "false" },
    /* longer texts fail permanently */
    { "max_parts", CK_INT, 0, 1, 255, NULL, "10" },
    { "max_pdu_bytes", CK_INT, 0, 1024, 16777216, NULL, "65536" },
    { "registered_delivery", CK_BOOL, 0, 0, 0, NULL, "true" },
    { "throttle_pause_ms", CK_INT, 0, 0, 600000, NULL, "1000" },
    /* messages waiting for a window slot; beyond, send() fails at once */
    { "queue_max", CK_INT, 0, 1, 10000000, NULL, "10000" },
    /* a message waiting this long (no bind up) is a temporary failure */
    { "queue_timeout_ms", CK_INT, 0, 100, 3600000, NULL, "60000" },
    /* close() waits this long for outstanding responses */
    { "close_grace_ms", CK_INT, 0, 0, 600000, NULL, "5000" },
    /* how the SMSC writes message ids in submit_sm_resp and in receipts;
     * set both only when they differ (smpp_int.h, smpp_id_norm) */
    { "submit_id_format", CK_CHOICE, 0, 0, 0, idfmt_choices, "text" },
    { "receipt_id_format", CK_CHOICE, 0, 0, 0, idfmt_choices, "text" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

enum bstate { B_DOWN, B_CONNECTING, B_BINDING, B_BOUND, B_UNBINDING };

static const char *const bstate_names[] = {
    "down", "connecting", "binding", "bound", "unbinding"
};

enum pstate { P_UNSENT, P_INFLIGHT, P_DONE };
enum pres { PR_OK, PR_THROTTLE, PR_TEMP, PR_PERM, PR_NORESP, PR_CANCEL };

struct smpp;
struct bind;

struct smsg {                   /* one message and its parts */
    struct smsg     *next, *prev;   /* channel queue, a bind's queue or
                                       the done list */
    int              where;         /* 0 none, 1 queue, 2 bind, 3 done */
    struct smpp     *s;
    struct message  *m;
    channel_done_cb *cb;
    void            *arg;
    struct bind     *b;
    uint64_t         queued_at;
    unsigned         nparts, cursor, nsent, nresolved, requeues;
    unsigned         nok, nthrottle, ntemp, nperm, nnoresp, ncancel;
    uint32_t         perm_status, temp_status;
    unsigned         perm_part;
    enum send_result res;
    int              in_doubt;
    char             reply[256];
    char             why[160];
    struct sms_plan  plan;
    char             validity[17];
    char             dst[21];
    struct sms_part *parts;
    uint8_t         *pst;           /* enum pstate per part */
    char            *ids;           /* nparts * SMPP_ID_MAX */
    uint8_t         *bytes;
};

struct slot {                   /* an outstanding submit_sm */
    struct smsg *msg;           /* NULL: free */
    uint32_t     seq;
    unsigned     part;
    uint64_t     sent_at;
    struct slot *older, *newer;
};

struct wreq {
    uv_write_t   req;
    struct bind *b;
    char         data[];
};

struct bind {
    struct smpp  *s;
    unsigned      idx;
    uint32_t      bind_cmd;
    int           can_tx;
    enum bstate   state;
    uv_tcp_t      tcp;
    uv_connect_t  creq;
    uv_timer_t    timer;        /* reconnect; connect, bind, unbind limits */
    uv_timer_t    enq;          /* enquire_link */
    uv_timer_t    rto;          /* the oldest submit's response deadline */
    uv_timer_t    pause;        /* end of a throttle pause */
    int           tcp_live;     /* tcp initialised and not closed yet */
    int           want_connect; /* the reconnect time came while closing */
    int           reading, rpaused, paused, enq_pending;
    int           auth_refused; /* the last bind was refused for its
                                   credentials: wait the maximum */
    uint8_t      *rbuf;
    size_t        rlen, rcap;
    struct buf    out;
    unsigned      writes;
    uint32_t      counter;
    unsigned      bits, nslots;
    struct slot  *slots;
    unsigned     *freel;
    unsigned      nfree;
    struct slot  *oldest, *newest;
    unsigned      inflight, window, ok_run;
    struct smsg  *mq_head, *mq_tail;
    unsigned      failures;
    uint64_t      bound_at;
    char          name[16];
};

struct smpp_ext {               /* beyond struct channel_stats */
    uint64_t binds_ok, bind_failures, auth_failures, link_losses,
             throttled, noresp, late_resps, receipts, bad_receipts, mos,
             bad_pdus, nacks_sent;
    unsigned binds_up;
    int      alarm;             /* the last refusal was for credentials */
};

struct smpp {
    struct channel  *ch;
    /* configuration */
    struct sockaddr_storage addr;
    char             host[64];
    int              port;
    char             system_id[16], password[9], system_type[13],
                     service_type[6], source_addr[21];
    uint8_t          src_ton, src_npi, dst_ton, dst_npi, reg_delivery;
    unsigned         window, ntx, nrx, queue_max;
    uint64_t         resp_timeout, connect_timeout, enq_interval,
                     enq_timeout, rc_min, rc_max, throttle_pause,
                     queue_timeout, close_grace;
    size_t           max_pdu;
    struct sms_opts  opts;
    enum smpp_id_fmt submit_fmt, receipt_fmt;
    /* state */
    struct bind     *binds;
    unsigned         nbinds, rr;
    struct smsg     *q_head, *q_tail, *d_head, *d_tail;
    unsigned         qlen, nmsgs;
    uv_timer_t       later, tick;
    uv_prepare_t     flush;
    unsigned         handles;
    uint16_t         ref;
    int              closing, torn, unbinding;
    uint64_t         close_deadline, rng;
    struct buf       idbuf, mo;
    struct channel_stats st;
    struct smpp_ext  x;
};

static void kick(struct smpp *s);
static void check_close(struct smpp *s);
static void link_down(struct bind *b, const char *why);
static void connect_bind(struct bind *b);
static void flush_bind(struct bind *b);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void part_done(struct bind *b, struct smsg *g, unsigned i,
                      enum pres r, uint32_t status, const char *id,
                      const char *why);

/* ---- small things ---- */

/* xorshift64: jitter for the reconnect delays. */
static uint64_t
rnd(struct smpp *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

/* The loop's clock in milliseconds. */
static uint64_t
now_ms(struct smpp *s)
{
    return uv_now(s->ch->loop);
}

/* The one setter of a bind's state; logs old -> new. */
static void
set_state(struct bind *b, enum bstate next)
{
    log_debug(&b->s->ch->log, "%s: %s -> %s", b->name,
              bstate_names[b->state], bstate_names[next]);
    b->state = next;
}

static void on_later(uv_timer_t *t);

/* Report settled messages on the next loop turn, never inside send(). */
static void
later(struct smpp *s)
{
    if (!s->torn && !uv_is_active((uv_handle_t *)&s->later))
        uv_timer_start(&s->later, on_later, 0, 0);
}

static void on_flush(uv_prepare_t *p);

/* Output is batched: written before the loop next waits for I/O. */
static void
want_flush(struct smpp *s)
{
    if (!s->torn && !uv_is_active((uv_handle_t *)&s->flush))
        uv_prepare_start(&s->flush, on_flush);
}

/* ---- message lists ---- */

/* Put g at the head (front) or tail of a list. */
static void
list_push(struct smsg **head, struct smsg **tail, struct smsg *g, int front)
{
    g->next = g->prev = NULL;
    if (!*head) {
        *head = *tail = g;
    } else if (front) {
        g->next = *head;
        (*head)->prev = g;
        *head = g;
    } else {
        g->prev = *tail;
        (*tail)->next = g;
        *tail = g;
    }
}

/* Take g out of a list. */
static void
list_unlink(struct smsg **head, struct smsg **tail, struct smsg *g)
{
    if (g->prev)
        g->prev->next = g->next;
    else
        *head = g->next;
    if (g->next)
        g->next->prev = g->prev;
    else
        *tail = g->prev;
    g->next = g->prev = NULL;
}

/* Take g off whichever list holds it. */
static void
msg_detach(struct smsg *g)
{
    struct smpp *s = g->s;

    switch (g->where) {
    case 1:
        list_unlink(&s->q_head, &s->q_tail, g);
        s->qlen--;
        break;
    case 2:
        list_unlink(&g->b->mq_head, &g->b->mq_tail, g);
        break;
    case 3:
        list_unlink(&s->d_head, &s->d_tail, g);
        break;
    default:
        break;
    }
    g->where = 0;
}

/* The outcome is known: report it on the next loop turn. */
static void
msg_report(struct smsg *g)
{
    struct smpp *s = g->s;

    msg_detach(g);
    list_push(&s->d_head, &s->d_tail, g, 0);
    g->where = 3;
    later(s);
}

/* An outcome decided without the SMSC (bad input, queue timeout,
 * shutdown). */
static void
msg_fail(struct smsg *g, enum send_result res, const char *reply)
{
    g->res = res;
    g->in_doubt = 0;
    snprintf(g->reply, sizeof g->reply, "%s", reply);
    msg_report(g);
}

/* ---- writing ---- */

/* A queued write is done: free it; a failure takes the bind down. */
static void
on_write(uv_write_t *req, int status)
{
    struct wreq *w = container_of(req, struct wreq, req);
    struct bind *b = w->b;

    free(w);
    b->writes--;
    if (status < 0) {
        if (status != UV_ECANCELED && b->state != B_DOWN) {
            char why[128];

            snprintf(why, sizeof why, "write: %s", uv_strerror(status));
            link_down(b, why);
        }
        return;
    }
    if (b->rpaused && b->state != B_DOWN &&
        uv_stream_get_write_queue_size((uv_stream_t *)&b->tcp) <
            WQ_HIGH / 4) {
        b->rpaused = 0;
        if (uv_read_start((uv_stream_t *)&b->tcp, on_alloc, on_read) < 0) {
            link_down(b, "read restart failed");
            return;
        }
        kick(b->s);
    }
}

/* Write what is batched: directly if the socket takes it, else queued. */
static void
flush_bind(struct bind *b)
{
    uv_stream_t *st = (uv_stream_t *)&b->tcp;
    struct wreq *w;
    uv_buf_t ub;
    int n;

    if (b->out.len == 0)
        return;
    if (b->state == B_DOWN || b->state == B_CONNECTING) {
        buf_reset(&b->out);
        return;
    }
    ub = uv_buf_init(b->out.data, (unsigned)b->out.len);
    n = uv_try_write(st, &ub, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS)
        n = 0;
    if (n < 0) {
        char why[128];

        buf_reset(&b->out);
        snprintf(why, sizeof why, "write: %s", uv_strerror(n));
        link_down(b, why);
        return;
    }
    if ((size_t)n < b->out.len) {
        size_t rest = b->out.len - (size_t)n;

        if ((w = malloc(sizeof *w + rest)) == NULL) {
            buf_reset(&b->out);
            link_down(b, "out of memory");
            return;
        }
        w->b = b;
        memcpy(w->data, b->out.data + n, rest);
        ub = uv_buf_init(w->data, (unsigned)rest);
        if ((n = uv_write(&w->req, st, &ub, 1, on_write)) < 0) {
            char why[128];

            free(w);
            buf_reset(&b->out);
            snprintf(why, sizeof why, "write: %s", uv_strerror(n));
            link_down(b, why);
            return;
        }
        b->writes++;
        if (uv_stream_get_write_queue_size(st) > WQ_HIGH && !b->rpaused) {
            b->rpaused = 1;     /* the SMSC does not read: stop too */
            uv_read_stop(st);
        }
    }
    buf_reset(&b->out);
}

/* Every bind's batch, written once per loop turn before the poll. */
static void
on_flush(uv_prepare_t *p)
{
    struct smpp *s = container_of(p, struct smpp, flush);

    uv_prepare_stop(p);
    for (unsigned i = 0; i < s->nbinds; i++)
        flush_bind(&s->binds[i]);
}

/* Room for one more PDU in the batch; flushes a full batch first. */
static uint8_t *
out_room(struct bind *b)
{
    if (b->out.len > OUT_FLUSH)
        flush_bind(b);
    if (b->state == B_DOWN)
        return NULL;
    if (buf_reserve(&b->out, PDU_ROOM) < 0)
        return NULL;
    want_flush(b->s);
    return (uint8_t *)b->out.data + b->out.len;
}

/* A header-only PDU (a response, enquire_link, unbind, generic_nack). */
static void
send_ctl(struct bind *b, uint32_t cmd, uint32_t status, uint32_t seq,
         int nul_body)
{
    uint8_t *p = out_room(b);

    if (p)
        b->out.len += smpp_pack_header(p, cmd, status, seq, nul_body);
}

/* Answer with generic_nack. */
static void
send_nack(struct bind *b, uint32_t status, uint32_t seq)
{
    b->s->x.nacks_sent++;
    send_ctl(b, SMPP_GENERIC_NACK, status, seq, 0);
}

/* A sequence number for window slot idx (0: not a submit). */
static uint32_t
next_seq(struct bind *b, unsigned idx)
{
    uint32_t seq;

    do {
        b->counter++;
        seq = ((b->counter << b->bits) | idx) & SMPP_SEQ_MAX;
    } while (seq == 0 || (seq >> b->bits) == 0);
    return seq;
}

/* ---- sessions ---- */

/* The next reconnect delay: doubling from reconnect_min_ms (or the
 * maximum after a refusal for credentials), half of it random. */
static uint64_t
backoff(struct bind *b, int to_max)
{
    struct smpp *s = b->s;
    uint64_t d = s->rc_min;

    if (to_max) {
        d = s->rc_max;
    } else {
        for (unsigned i = 1; i < b->failures && d < s->rc_max; i++)
            d *= 2;
        if (d > s->rc_max)
            d = s->rc_max;
    }
    return d / 2 + rnd(s) % (d / 2 + 1);
}

/* The socket is closed: reconnect if that is due, or finish a close. */
static void
on_tcp_closed(uv_handle_t *h)
{
    struct bind *b = container_of(h, struct bind, tcp);

    b->tcp_live = 0;
    if (b->s->closing) {
        check_close(b->s);
        return;
    }
    if (b->want_connect) {
        b->want_connect = 0;
        connect_bind(b);
    }
}

static void on_timer(uv_timer_t *t);

/* Mark a slot free and take it off the age list. */
static void
slot_free(struct bind *b, struct slot *sl)
{
    if (sl->older)
        sl->older->newer = sl->newer;
    else
        b->oldest = sl->newer;
    if (sl->newer)
        sl->newer->older = sl->older;
    else
        b->newest = sl->older;
    sl->older = sl->newer = NULL;
    sl->msg = NULL;
    b->freel[b->nfree++] = (unsigned)(sl - b->slots);
    b->inflight--;
}

/* Answer for the part in slot sl. */
static void
slot_resolve(struct bind *b, struct slot *sl, enum pres r, uint32_t status,
             const char *id, const char *why)
{
    struct smsg *g = sl->msg;
    unsigned part = sl->part;

    slot_free(b, sl);
    part_done(b, g, part, r, status, id, why);
}

/* Mark g's unsent parts as never sent. */
static void
cancel_rest(struct smsg *g, const char *why)
{
    for (unsigned j = 0; j < g->nparts; j++)
        if (g->pst[j] == P_UNSENT) {
            g->pst[j] = P_DONE;
            g->ncancel++;
            g->nresolved++;
            if (!g->why[0])
                snprintf(g->why, sizeof g->why, "%s", why);
        }
    if (g->where == 2)
        msg_detach(g);
}

static void finish(struct smsg *g);

/* The bind is gone (or going): close the socket, settle what it held,
 * plan the reconnect. */
static void
link_down(struct bind *b, const char *why)
{
    struct smpp *s = b->s;
    enum bstate prev = b->state;
    struct smsg *g, *nx, *back_head = NULL, *back_tail = NULL;
    char w[200];
    int auth = 0;

    if (prev == B_DOWN)
        return;
    set_state(b, B_DOWN);
    uv_timer_stop(&b->timer);
    uv_timer_stop(&b->enq);
    uv_timer_stop(&b->rto);
    uv_timer_stop(&b->pause);
    b->paused = b->rpaused = b->enq_pending = 0;
    if (b->tcp_live && !uv_is_closing((uv_handle_t *)&b->tcp))
        uv_close((uv_handle_t *)&b->tcp, on_tcp_closed);
    b->reading = 0;
    b->rlen = 0;
    buf_reset(&b->out);
    if (prev == B_BOUND || prev == B_UNBINDING) {
        s->x.binds_up--;
        if (prev == B_BOUND && !s->closing)
            s->x.link_losses++;
        if (s->closing)
            log_info(&s->ch->log, "%s closed: %s", b->name, why);
        else
            log_warn(&s->ch->log, "%s down: %s", b->name, why);
    } else if (!s->closing) {
        log_warn(&s->ch->log, "%s: %s", b->name, why);
    }
    auth = b->auth_refused;
    b->auth_refused = 0;
    if (prev == B_BOUND && now_ms(s) - b->bound_at >= 10 * s->rc_min)
        b->failures = 0;
    b->failures++;

    /* outstanding submits: the SMSC may have them */
    snprintf(w, sizeof w, "%s: %s", s->closing ? "no response before "
             "shutdown" : "link lost before the response", why);
    while (b->oldest) {
        s->x.noresp++;
        slot_resolve(b, b->oldest, PR_NORESP, 0, NULL, w);
    }
    /* messages not started go back to the channel queue, in order;
     * started ones are not continued elsewhere */
    for (g = b->mq_head; g; g = nx) {
        nx = g->next;
        if (g->nsent == 0 && g->nresolved == 0) {
            msg_detach(g);
            g->b = NULL;
            list_push(&back_head, &back_tail, g, 0);
        } else {
            cancel_rest(g, w);
            if (g->nresolved == g->nparts)
                finish(g);
        }
    }
    for (g = back_tail; g; g = nx) {
        nx = g->prev;
        list_push(&s->q_head, &s->q_tail, g, 1);
        g->where = 1;
        s->qlen++;
    }
    if (!s->closing) {
        uint64_t d = backoff(b, auth);

        log_info(&s->ch->log, "%s: reconnecting in %llu ms", b->name,
                 (unsigned long long)d);
        uv_timer_start(&b->timer, on_timer, d, 0);
    }
    kick(s);
    check_close(s);
}

/* Pack and queue our bind_* PDU. */
static int
send_bind(struct bind *b)
{
    struct smpp *s = b->s;
    union {
        bind_transmitter_t  tx;
        bind_receiver_t     rx;
        bind_transceiver_t  trx;
    } u;
    uint8_t *p = out_room(b);
    int len = 0;

    if (!p)
        return -ENOMEM;
    memset(&u, 0, sizeof u);
    u.trx.command_id = b->bind_cmd;
    u.trx.sequence_number = next_seq(b, 0);
    memcpy(u.trx.system_id, s->system_id, sizeof s->system_id);
    memcpy(u.trx.password, s->password, sizeof s->password);
    memcpy(u.trx.system_type, s->system_type, sizeof s->system_type);
    u.trx.interface_version = 0x34;
    if (smpp34_pack(b->bind_cmd, p, PDU_ROOM, &len, &u) != 0) {
        log_error(&s->ch->log, "cannot pack the bind: %s", smpp34_strerror);
        return GW_EINVAL;
    }
    b->out.len += (size_t)len;
    return 0;
}

/* Connected: start reading and send the bind. */
static void
on_connect(uv_connect_t *req, int status)
{
    struct bind *b = req->data;
    struct smpp *s = b->s;
    char why[160];
    int rc;

    if (status == UV_ECANCELED || b->state != B_CONNECTING)
        return;
    if (status < 0) {
        snprintf(why, sizeof why, "connect to %s:%d: %s", s->host, s->port,
                 uv_strerror(status));
        link_down(b, why);
        return;
    }
    uv_tcp_nodelay(&b->tcp, 1);
    if ((rc = uv_read_start((uv_stream_t *)&b->tcp, on_alloc, on_read)) <
        0) {
        snprintf(why, sizeof why, "read: %s", uv_strerror(rc));
        link_down(b, why);
        return;
    }
    b->reading = 1;
    set_state(b, B_BINDING);
    if (send_bind(b) < 0) {
        link_down(b, "cannot send the bind");
        return;
    }
    uv_timer_start(&b->timer, on_timer, s->resp_timeout, 0);
}

/* Open a new connection for b (when its old socket is closed). */
static void
connect_bind(struct bind *b)
{
    struct smpp *s = b->s;
    char why[160];
    int rc;

    if (s->closing)
        return;
    if (b->tcp_live) {              /* the old socket is still closing */
        b->want_connect = 1;
        return;
    }
    if ((rc = uv_tcp_init(s->ch->loop, &b->tcp)) < 0) {
        snprintf(why, sizeof why, "tcp: %s", uv_strerror(rc));
        set_state(b, B_CONNECTING);
        link_down(b, why);
        return;
    }
    b->tcp_live = 1;
    b->creq.data = b;
    set_state(b, B_CONNECTING);
    if ((rc = uv_tcp_connect(&b->creq, &b->tcp,
                             (const struct sockaddr *)&s->addr,
                             on_connect)) < 0) {
        snprintf(why, sizeof why, "connect to %s:%d: %s", s->host, s->port,
                 uv_strerror(rc));
        link_down(b, why);
        return;
    }
    uv_timer_start(&b->timer, on_timer, s->connect_timeout, 0);
}

/* Send unbind and wait (a little) for unbind_resp. */
static void
start_unbind(struct bind *b)
{
    struct smpp *s = b->s;

    set_state(b, B_UNBINDING);
    uv_timer_stop(&b->enq);
    send_ctl(b, SMPP_UNBIND, 0, next_seq(b, 0), 0);
    uv_timer_start(&b->timer, on_timer, s->resp_timeout < 5000
                   ? s->resp_timeout : 5000, 0);
}

/* The bind's one timer: what it means depends on the state. */
static void
on_timer(uv_timer_t *t)
{
    struct bind *b = container_of(t, struct bind, timer);
    struct smpp *s = b->s;
    char why[160];

    switch (b->state) {
    case B_DOWN:
        connect_bind(b);
        break;
    case B_CONNECTING:
        snprintf(why, sizeof why, "connect to %s:%d: no answer within "
                 "%llu ms", s->host, s->port,
                 (unsigned long long)s->connect_timeout);
        link_down(b, why);
        break;
    case B_BINDING:
        snprintf(why, sizeof why, "no bind response within %llu ms",
                 (unsigned long long)s->resp_timeout);
        s->x.bind_failures++;
        link_down(b, why);
        break;
    case B_UNBINDING:
        link_down(b, "no unbind_resp");
        break;
    case B_BOUND:
        break;
    }
}

/* enquire_link time: send one, or give up on a silent link. */
static void
on_enq(uv_timer_t *t)
{
    struct bind *b = container_of(t, struct bind, enq);
    struct smpp *s = b->s;
    char why[128];

    if (b->state != B_BOUND)
        return;
    if (b->enq_pending) {
        snprintf(why, sizeof why, "no enquire_link_resp within %llu ms",
                 (unsigned long long)s->enq_timeout);
        link_down(b, why);
        return;
    }
    b->enq_pending = 1;
    send_ctl(b, SMPP_ENQUIRE_LINK, 0, next_seq(b, 0), 0);
    uv_timer_start(&b->enq, on_enq, s->enq_timeout, 0);
}

/* The throttle pause is over: send again. */
static void
on_pause_end(uv_timer_t *t)
{
    struct bind *b = container_of(t, struct bind, pause);

    b->paused = 0;
    kick(b->s);
}

/* Responses that did not come: in doubt. */
static void
on_rto(uv_timer_t *t)
{
    struct bind *b = container_of(t, struct bind, rto);
    struct smpp *s = b->s;
    uint64_t now = now_ms(s);
    char why[128];

    snprintf(why, sizeof why, "no submit_sm_resp within %llu ms",
             (unsigned long long)s->resp_timeout);
    while (b->oldest && b->oldest->sent_at + s->resp_timeout <= now) {
        s->x.noresp++;
        log_warn(&s->ch->log, "%s: %s (seq %u)", b->name, why,
                 b->oldest->seq);
        slot_resolve(b, b->oldest, PR_NORESP, 0, NULL, why);
    }
    if (b->oldest)
        uv_timer_start(&b->rto, on_rto,
                       b->oldest->sent_at + s->resp_timeout - now, 0);
    kick(s);
}

/* ---- submitting ---- */

/* Pack part i of g as submit_sm with sequence number seq into p. */
static int
pack_submit(struct smpp *s, struct smsg *g, unsigned i, uint32_t seq,
            uint8_t *p, int *len)
{
    static submit_sm_t sub;
    static tlv_t t_ref, t_total, t_seq, t_payload;
    const struct sms_part *pt = &g->parts[i];

    memset(&sub, 0, offsetof(submit_sm_t, short_message));
    sub.command_id = SMPP_SUBMIT_SM;
    sub.sequence_number = seq;
    memcpy(sub.service_type, s->service_type, sizeof s->service_type);
    sub.source_addr_ton = s->src_ton;
    sub.source_addr_npi = s->src_npi;
    memcpy(sub.source_addr, s->source_addr, sizeof s->source_addr);
    sub.dest_addr_ton = s->dst_ton;
    sub.dest_addr_npi = s->dst_npi;
    memcpy(sub.destination_addr, g->dst, sizeof g->dst);
    sub.esm_class = g->plan.esm_class;
    memcpy(sub.validity_period, g->validity, sizeof g->validity);
    sub.registered_delivery = s->reg_delivery;
    sub.data_coding = g->plan.data_coding;
    sub.tlv = NULL;
    if (g->plan.in_payload) {
        sub.sm_length = 0;
        memset(&t_payload, 0, offsetof(tlv_t, value));
        t_payload.tag = SMPP_TLV_MESSAGE_PAYLOAD;
        t_payload.length = (uint16_t)pt->len;
        memcpy(t_payload.value.octet, g->bytes + pt->off, pt->len);
        t_payload.next = NULL;
        sub.tlv = &t_payload;
    } else {
        sub.sm_length = (uint8_t)pt->len;
        memcpy(sub.short_message, g->bytes + pt->off, pt->len);
    }
    if (g->plan.sar) {
        memset(&t_ref, 0, sizeof t_ref);
        memset(&t_total, 0, sizeof t_total);
        memset(&t_seq, 0, sizeof t_seq);
        t_ref.tag = SMPP_TLV_SAR_MSG_REF_NUM;
        t_ref.length = 2;
        t_ref.value.val16 = g->plan.ref;
        t_total.tag = SMPP_TLV_SAR_TOTAL_SEGMENTS;
        t_total.length = 1;
        t_total.value.val08 = (uint8_t)g->nparts;
        t_seq.tag = SMPP_TLV_SAR_SEGMENT_SEQNUM;
        t_seq.length = 1;
        t_seq.value.val08 = pt->seq;
        t_ref.next = &t_total;
        t_total.next = &t_seq;
        t_seq.next = sub.tlv;
        sub.tlv = &t_ref;
    }
    if (smpp34_pack(SMPP_SUBMIT_SM, p, PDU_ROOM, len, &sub) != 0)
        return GW_EINVAL;
    return 0;
}

/* Submit part i of g on b. */
static void
send_part(struct bind *b, struct smsg *g, unsigned i)
{
    struct smpp *s = b->s;
    struct slot *sl;
    uint8_t *p;
    unsigned idx;
    int len = 0;

    g->pst[i] = P_INFLIGHT;
    g->nsent++;
    if ((p = out_room(b)) == NULL) {
        part_done(b, g, i, PR_TEMP, SMPP_RSYSERR, NULL, NULL);
        return;
    }
    idx = b->freel[--b->nfree];
    sl = &b->slots[idx];
    sl->seq = next_seq(b, idx);
    if (pack_submit(s, g, i, sl->seq, p, &len) < 0) {
        char why[160];

        b->nfree++;
        snprintf(why, sizeof why, "cannot pack submit_sm: %.100s",
                 smpp34_strerror);
        log_error(&s->ch->log, "%s", why);
        g->pst[i] = P_INFLIGHT;
        part_done(b, g, i, PR_PERM, SMPP_RSYSERR, NULL, why);
        return;
    }
    b->out.len += (size_t)len;
    sl->msg = g;
    sl->part = i;
    sl->sent_at = now_ms(s);
    sl->newer = NULL;
    sl->older = b->newest;
    if (b->newest)
        b->newest->newer = sl;
    else
        b->oldest = sl;
    b->newest = sl;
    b->inflight++;
    if (!uv_is_active((uv_handle_t *)&b->rto))
        uv_timer_start(&b->rto, on_rto, s->resp_timeout, 0);
}

/* Can b submit one more part now? */
static int
can_send(struct bind *b)
{
    return b->state == B_BOUND && b->can_tx && !b->paused && !b->rpaused &&
           !b->s->closing && b->inflight < b->window && b->nfree > 0;
}

/* Send the parts b has queued, as far as its window lets it. */
static void
pump(struct bind *b)
{
    while (b->mq_head && can_send(b)) {
        struct smsg *g = b->mq_head;
        unsigned i = g->cursor;

        while (i < g->nparts && g->pst[i] != P_UNSENT)
            i++;
        if (i >= g->nparts) {
            msg_detach(g);
            continue;
        }
        g->cursor = i + 1;
        send_part(b, g, i);
        if (g->where == 2 && g->cursor >= g->nparts)
            msg_detach(g);
    }
}

/* Give queued messages to binds with room, one each in turn. */
static void
kick(struct smpp *s)
{
    int progress = 1;

    if (s->torn)
        return;
    for (unsigned k = 0; k < s->nbinds; k++)
        pump(&s->binds[k]);
    while (progress && s->q_head) {
        progress = 0;
        for (unsigned k = 0; k < s->nbinds && s->q_head; k++) {
            struct bind *b = &s->binds[(s->rr + k) % s->nbinds];
            struct smsg *g;

            if (b->mq_head || !can_send(b))
                continue;
            g = s->q_head;
            msg_detach(g);
            g->b = b;
            g->where = 2;
            list_push(&b->mq_head, &b->mq_tail, g, 0);
            pump(b);
            progress = 1;
        }
        s->rr++;
    }
    if (s->closing)
        for (unsigned k = 0; k < s->nbinds; k++) {
            struct bind *b = &s->binds[k];

            if (b->state == B_BOUND && b->inflight == 0)
                start_unbind(b);
        }
}

/* A throttle answer: pause the bind, halve its window (once a pause;
 * it grows back by one per window of accepted parts). */
static void
throttle(struct bind *b, uint32_t status)
{
    struct smpp *s = b->s;

    s->x.throttled++;
    if (b->paused)
        return;                 /* once per pause: the burst is one signal */
    b->window = b->window > 1 ? b->window / 2 : 1;
    b->ok_run = 0;
    if (s->throttle_pause) {
        log_info(&s->ch->log, "%s: 0x%02X from the SMSC: pausing %llu ms, "
                 "window now %u", b->name, status,
                 (unsigned long long)s->throttle_pause, b->window);
        b->paused = 1;
        uv_timer_start(&b->pause, on_pause_end, s->throttle_pause, 0);
    }
}

/* One part is settled. */
static void
part_done(struct bind *b, struct smsg *g, unsigned i, enum pres r,
          uint32_t status, const char *id, const char *why)
{
    struct smpp *s = g->s;
    char *slot_id = g->ids + (size_t)i * SMPP_ID_MAX;

    switch (r) {
    case PR_OK:
        slot_id[0] = '\0';
        if (id && *id &&
            smpp_id_norm(slot_id, SMPP_ID_MAX, (const uint8_t *)id,
                         strlen(id), s->submit_fmt) < 0)
            slot_id[0] = '\0';
        g->nok++;
        if (b && b->window < s->window && ++b->ok_run >= b->window) {
            b->window++;
            b->ok_run = 0;
        }
        break;
    case PR_THROTTLE:
        if (b)
            throttle(b, status);
        if (b && g->nparts > 1 && g->requeues < MAX_REQUEUE &&
            !s->closing && b->state == B_BOUND) {
            /* again on the same bind, after the pause */
            g->requeues++;
            g->pst[i] = P_UNSENT;
            g->nsent--;
            if (g->cursor > i)
                g->cursor = i;
            if (g->where != 2) {
                g->where = 2;
                list_push(&b->mq_head, &b->mq_tail, g, 1);
            }
            return;
        }
        g->nthrottle++;
        g->temp_status = status;
        break;
    case PR_TEMP:
        g->ntemp++;
        g->temp_status = status;
        break;
    case PR_PERM:
        if (!g->nperm) {
            g->perm_status = status;
            g->perm_part = i + 1;
            if (why)
                snprintf(g->why, sizeof g->why, "%s", why);
        }
        g->nperm++;
        break;
    case PR_NORESP:
    case PR_CANCEL:
        if (r == PR_NORESP)
            g->nnoresp++;
        else
            g->ncancel++;
        if (why && !g->why[0])
            snprintf(g->why, sizeof g->why, "%s", why);
        break;
    }
    g->pst[i] = P_DONE;
    g->nresolved++;
    if (r != PR_OK)
        cancel_rest(g, "an earlier part failed");
    if (g->nresolved == g->nparts)
        finish(g);
}

/* Every part is settled: the outcome. */
static void
finish(struct smsg *g)
{
    char st[96];
    size_t n;

    if (g->nok == g->nparts) {
        g->res = SEND_OK;
        snprintf(g->reply, sizeof g->reply, "%u part%s accepted", g->nparts,
                 g->nparts == 1 ? "" : "s");
    } else if (g->nperm) {
        g->res = SEND_PERMFAIL;
        if (g->why[0] && g->perm_status == SMPP_RSYSERR)
            snprintf(g->reply, sizeof g->reply, "%s", g->why);
        else
            smpp_status_text(g->reply, sizeof g->reply, g->perm_status);
        if (g->nparts > 1) {
            n = strlen(g->reply);
            snprintf(g->reply + n, sizeof g->reply - n, " (part %u of %u)",
                     g->perm_part, g->nparts);
        }
    } else if (g->nnoresp) {
        g->res = SEND_TEMPFAIL;
        g->in_doubt = 1;
        snprintf(g->reply, sizeof g->reply, "%s", g->why);
    } else {
        g->res = SEND_TEMPFAIL;
        g->in_doubt = g->nok > 0;
        if (g->nthrottle || g->ntemp) {
            smpp_status_text(st, sizeof st, g->temp_status);
            snprintf(g->reply, sizeof g->reply, "%s", st);
        } else {
            snprintf(g->reply, sizeof g->reply, "not sent: %s", g->why);
        }
    }
    if (g->res != SEND_OK && g->nok > 0) {
        n = strlen(g->reply);
        snprintf(g->reply + n, sizeof g->reply - n,
                 "; %u of %u parts were accepted", g->nok, g->nparts);
    }
    msg_report(g);
}

/* Report the settled messages. */
static void
on_later(uv_timer_t *t)
{
    struct smpp *s = container_of(t, struct smpp, later);
    struct smsg *g;

    while ((g = s->d_head) != NULL) {
        struct send_outcome o = { .result = g->res, .reply = g->reply,
                                  .in_doubt = g->in_doubt,
                                  .throttled = g->res == SEND_TEMPFAIL &&
                                               g->nthrottle > 0,
                                  .units = (int)g->nparts };

        msg_detach(g);
        if (g->res == SEND_OK) {
            buf_reset(&s->idbuf);
            for (unsigned i = 0; i < g->nparts; i++) {
                const char *id = g->ids + (size_t)i * SMPP_ID_MAX;

                if (!*id)
                    continue;
                if (s->idbuf.len)
                    buf_putc(&s->idbuf, ',');
                buf_puts(&s->idbuf, id);
            }
            o.provider_id = s->idbuf.len ? buf_cstr(&s->idbuf) : NULL;
            s->st.sent++;
        } else if (g->res == SEND_TEMPFAIL) {
            s->st.tempfail++;
        } else {
            s->st.permfail++;
        }
        s->nmsgs--;
        g->cb(g->m, &o, g->arg);
        free(g);
    }
    check_close(s);
}

/* Queue timeouts; the end of the grace period at close. */
static void
on_tick(uv_timer_t *t)
{
    struct smpp *s = container_of(t, struct smpp, tick);
    uint64_t now = now_ms(s);
    char why[160];

    while (s->q_head && s->q_head->queued_at + s->queue_timeout <= now) {
        snprintf(why, sizeof why, "no SMPP bind free for %llu ms",
                 (unsigned long long)s->queue_timeout);
        msg_fail(s->q_head, SEND_TEMPFAIL, why);
    }
    if (s->closing && now >= s->close_deadline) {
        for (unsigned k = 0; k < s->nbinds; k++) {
            struct bind *b = &s->binds[k];

            while (b->oldest) {
                s->x.noresp++;
                slot_resolve(b, b->oldest, PR_NORESP, 0, NULL,
                             "no response before shutdown");
            }
        }
        kick(s);
    }
}

/* ---- what the SMSC sends ---- */

/* Read into the free tail of the bind's fixed buffer. */
static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct bind *b = container_of(h, struct bind, tcp);

    (void)suggested;
    buf->base = (char *)b->rbuf + b->rlen;
    buf->len = b->rcap - b->rlen;
}

/* bind_*_resp: bound, or refused (credentials: alarm, long wait). */
static void
on_bind_resp(struct bind *b, const struct smpp_hdr *h, const uint8_t *pdu)
{
    struct smpp *s = b->s;
    char sysid[20], st[96], why[200];

    if (b->state != B_BINDING) {
        log_warn(&s->ch->log, "%s: unexpected bind response", b->name);
        return;
    }
    if (h->status == SMPP_ROK) {
        if (smpp_resp_id(pdu, h->len, 16, sysid, sizeof sysid) < 0)
            snprintf(sysid, sizeof sysid, "?");
        uv_timer_stop(&b->timer);
        set_state(b, B_BOUND);
        b->bound_at = now_ms(s);
        b->window = s->window;
        b->ok_run = 0;
        s->x.binds_up++;
        s->x.binds_ok++;
        if (s->x.alarm)
            log_info(&s->ch->log, "%s: bind accepted again: alarm cleared",
                     b->name);
        s->x.alarm = 0;
        log_info(&s->ch->log, "%s up: bound to %s:%d as %s (SMSC %s)",
                 b->name, s->host, s->port, s->system_id, sysid);
        uv_timer_start(&b->enq, on_enq, s->enq_interval, 0);
        kick(s);
        return;
    }
    smpp_status_text(st, sizeof st, h->status);
    s->x.bind_failures++;
    if (h->status == SMPP_RBINDFAIL || h->status == SMPP_RINVPASWD ||
        h->status == SMPP_RINVSYSID) {
        s->x.auth_failures++;
        s->x.alarm = 1;
        log_error(&s->ch->log, "%s: bind refused: %s: check system_id and "
                  "password; alarm raised, next try in about %llu ms",
                  b->name, st, (unsigned long long)s->rc_max);
        snprintf(why, sizeof why, "bind refused for credentials: %s", st);
        b->auth_refused = 1;
    } else {
        snprintf(why, sizeof why, "bind refused: %s", st);
    }
    link_down(b, why);
}

/* submit_sm_resp: settle the part in its window slot. */
static void
on_submit_resp(struct bind *b, const struct smpp_hdr *h, const uint8_t *pdu)
{
    struct smpp *s = b->s;
    unsigned idx = h->seq & (b->nslots - 1);
    struct slot *sl = &b->slots[idx];
    char id[SMPP_ID_IN_MAX + 1];
    enum smpp_status_class c;
    int bad = 0;

    if (idx == 0 || !sl->msg || sl->seq != h->seq) {
        s->x.late_resps++;
        log_debug(&s->ch->log, "%s: response to unknown or expired seq %u",
                  b->name, h->seq);
        return;
    }
    c = smpp_status_class(h->status);
    id[0] = '\0';
    if (c == SMPP_ST_OK &&
        smpp_resp_id(pdu, h->len, SMPP_ID_IN_MAX, id, sizeof id) < 0) {
        bad = 1;
        id[0] = '\0';
    }
    slot_resolve(b, sl, c == SMPP_ST_OK ? PR_OK : c == SMPP_ST_THROTTLE
                 ? PR_THROTTLE : c == SMPP_ST_TEMP ? PR_TEMP : PR_PERM,
                 h->status, id, NULL);
    if (bad) {
        s->x.bad_pdus++;
        link_down(b, "submit_sm_resp with an undecodable message_id");
    }
}

/* generic_nack: to our bind, to a submit_sm, or to something else. */
static void
on_nack(struct bind *b, const struct smpp_hdr *h)
{
    struct smpp *s = b->s;
    unsigned idx = h->seq & (b->nslots - 1);
    struct slot *sl = &b->slots[idx];
    uint32_t st = h->status ? h->status : SMPP_RSYSERR;
    char txt[96], why[160];
    enum smpp_status_class c;

    smpp_status_text(txt, sizeof txt, h->status);
    if (b->state == B_BINDING) {
        snprintf(why, sizeof why, "generic_nack to the bind: %s", txt);
        s->x.bind_failures++;
        link_down(b, why);
        return;
    }
    if (idx != 0 && sl->msg && sl->seq == h->seq) {
        c = smpp_status_class(st);
        log_warn(&s->ch->log, "%s: generic_nack to submit_sm: %s", b->name,
                 txt);
        slot_resolve(b, sl, c == SMPP_ST_THROTTLE ? PR_THROTTLE
                     : c == SMPP_ST_TEMP ? PR_TEMP : PR_PERM, st, NULL, NULL);
        return;
    }
    log_warn(&s->ch->log, "%s: generic_nack (seq %u): %s", b->name, h->seq,
             txt);
}

/* A delivery receipt to the gateway (ch->on_inbound). */
static void
report_receipt(struct bind *b, const struct smpp_deliver *d)
{
    struct smpp *s = b->s;
    struct smpp_dlr r;
    struct inbound in;

    if (smpp_dlr_decode(&r, d, s->receipt_fmt) < 0) {
        s->x.bad_receipts++;
        log_warn(&s->ch->log, "%s: receipt without a usable message id "
                 "from %s: ignored", b->name, d->src);
        return;
    }
    s->x.receipts++;
    memset(&in, 0, sizeof in);
    in.kind = IN_RECEIPT;
    in.provider_id = r.id;
    in.state = r.state;
    in.stat = r.stat[0] ? r.stat : NULL;
    in.error = r.err[0] ? r.err : NULL;
    log_debug(&s->ch->log, "%s: receipt id=%s stat=%s err=%s", b->name,
              r.id, r.stat, r.err);
    if (s->ch->on_inbound)
        s->ch->on_inbound(s->ch, &in, s->ch->inbound_arg);
}

/* An MO message to the gateway (ch->on_inbound). */
static void
report_mo(struct bind *b, const struct smpp_deliver *d)
{
    struct smpp *s = b->s;
    struct inbound in;
    char from[80], to[80];

    buf_reset(&s->mo);
    if (smpp_mo_text(&s->mo, d) < 0)
        log_warn(&s->ch->log, "%s: MO text cut at %zu bytes", b->name,
                 s->mo.len);
    smpp_addr_format(from, sizeof from, d->src, d->src_ton);
    smpp_addr_format(to, sizeof to, d->dst, d->dst_ton);
    s->x.mos++;
    memset(&in, 0, sizeof in);
    in.kind = IN_MO;
    in.from = from;
    in.to = to;
    in.text = buf_cstr(&s->mo);
    log_debug(&s->ch->log, "%s: MO from %s to %s (%zu bytes)", b->name, from,
              to, s->mo.len);
    if (s->ch->on_inbound)
        s->ch->on_inbound(s->ch, &in, s->ch->inbound_arg);
}

/* deliver_sm / data_sm: decode, report, always answer. */
static void
on_deliver(struct bind *b, const struct smpp_hdr *h, const uint8_t *pdu)
{
    struct smpp *s = b->s;
    struct smpp_deliver d;
    uint32_t st = smpp_parse_deliver(&d, pdu, h->len);
    char txt[96], why[160];

    if (st != 0) {
        s->x.bad_pdus++;
        smpp_status_text(txt, sizeof txt, st);
        snprintf(why, sizeof why, "undecodable %s from the SMSC (%s)",
                 h->cmd == SMPP_DATA_SM ? "data_sm" : "deliver_sm", txt);
        send_ctl(b, h->cmd | SMPP_RESP, st, h->seq, 1);
        flush_bind(b);
        link_down(b, why);
        return;
    }
    if (smpp_is_receipt(&d))
        report_receipt(b, &d);
    else
        report_mo(b, &d);
    send_ctl(b, h->cmd | SMPP_RESP, 0, h->seq, 1);
}

/* One whole PDU from the SMSC. */
static void
handle_pdu(struct bind *b, const struct smpp_hdr *h, const uint8_t *pdu)
{
    struct smpp *s = b->s;

    switch (h->cmd) {
    case SMPP_BIND_TRANSCEIVER | SMPP_RESP:
    case SMPP_BIND_TRANSMITTER | SMPP_RESP:
    case SMPP_BIND_RECEIVER | SMPP_RESP:
        on_bind_resp(b, h, pdu);
        break;
    case SMPP_SUBMIT_SM | SMPP_RESP:
        on_submit_resp(b, h, pdu);
        break;
    case SMPP_DELIVER_SM:
    case SMPP_DATA_SM:
        on_deliver(b, h, pdu);
        break;
    case SMPP_ENQUIRE_LINK:
        send_ctl(b, SMPP_ENQUIRE_LINK | SMPP_RESP, 0, h->seq, 0);
        break;
    case SMPP_ENQUIRE_LINK | SMPP_RESP:
        if (b->enq_pending && b->state == B_BOUND) {
            b->enq_pending = 0;
            uv_timer_start(&b->enq, on_enq, s->enq_interval, 0);
        }
        break;
    case SMPP_UNBIND:
        send_ctl(b, SMPP_UNBIND | SMPP_RESP, 0, h->seq, 0);
        flush_bind(b);
        link_down(b, "unbind from the SMSC");
        break;
    case SMPP_UNBIND | SMPP_RESP:
        if (b->state == B_UNBINDING)
            link_down(b, "unbound");
        break;
    case SMPP_GENERIC_NACK:
        on_nack(b, h);
        break;
    case SMPP_ALERT_NOTIFICATION:
    case SMPP_OUTBIND:
        break;                  /* no response is defined */
    default:
        if (!smpp_cmd_known(h->cmd)) {
            s->x.bad_pdus++;
            log_warn(&s->ch->log, "%s: unknown command_id 0x%08X: "
                     "generic_nack", b->name, h->cmd);
            send_nack(b, SMPP_RINVCMDID, h->seq);
        } else if (!(h->cmd & SMPP_RESP)) {
            log_warn(&s->ch->log, "%s: command_id 0x%08X is not served "
                     "here: generic_nack", b->name, h->cmd);
            send_nack(b, SMPP_RINVCMDID, h->seq);
        } else {
            log_debug(&s->ch->log, "%s: unexpected response 0x%08X",
                      b->name, h->cmd);
        }
        break;
    }
}

/* Bytes from the SMSC: cut them into PDUs and handle each. */
static void
on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct bind *b = container_of(st, struct bind, tcp);
    struct smpp *s = b->s;
    struct smpp_hdr h;
    size_t off = 0;
    char why[160];
    int rc;

    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF)
            snprintf(why, sizeof why, "connection closed by the SMSC");
        else
            snprintf(why, sizeof why, "read: %s",
                     uv_strerror((int)nread));
        link_down(b, why);
        return;
    }
    b->rlen += (size_t)nread;
    while (b->state != B_DOWN &&
           (rc = smpp_frame(b->rbuf + off, b->rlen - off, s->max_pdu, &h)) !=
               0) {
        if (rc < 0) {
            s->x.bad_pdus++;
            snprintf(why, sizeof why, "command_length %u (cap %zu): "
                     "generic_nack and drop", h.len, s->max_pdu);
            send_nack(b, SMPP_RINVCMDLEN, h.seq);
            flush_bind(b);
            link_down(b, why);
            return;
        }
        handle_pdu(b, &h, b->rbuf + off);
        off += h.len;
    }
    if (b->state == B_DOWN)
        return;
    if (off > 0) {
        memmove(b->rbuf, b->rbuf + off, b->rlen - off);
        b->rlen -= off;
    }
    kick(s);
}

/* ---- the channel ---- */

/* Log a configuration error. */
static int
bad_conf(struct channel *ch, const char *what)
{
    log_error(&ch->log, "%s", what);
    return GW_ECONFIG;
}

/* Copy a string key into dst (cap includes the NUL). */
static int
conf_copy(struct channel *ch, const struct conf_provider *conf,
          const char *key, char *dst, size_t cap)
{
    const char *v = conf_str(conf, key);
    char msg[160];

    if (!v)
        v = "";
    if (strlen(v) >= cap) {
        snprintf(msg, sizeof msg, "%s is longer than %zu characters", key,
                 cap - 1);
        return bad_conf(ch, msg);
    }
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

/* submit_id_format / receipt_id_format by name. */
static enum smpp_id_fmt
id_fmt(const char *v)
{
    return strcmp(v, "hex") == 0 ? SMPP_ID_HEX
         : strcmp(v, "dec") == 0 ? SMPP_ID_DEC : SMPP_ID_TEXT;
}

/* Free the memory (handles are closed by then); NULL is fine. */
static void
smpp_free(struct smpp *s)
{
    if (!s)
        return;
    for (unsigned i = 0; s->binds && i < s->nbinds; i++) {
        free(s->binds[i].rbuf);
        free(s->binds[i].slots);
        free(s->binds[i].freel);
        buf_free(&s->binds[i].out);
    }
    free(s->binds);
    buf_free(&s->idbuf);
    buf_free(&s->mo);
    free(s);
}

/* Read the provider's keys into s; GW_ECONFIG when one is unusable. */
static int
configure(struct smpp *s, struct channel *ch, const struct conf_provider *c)
{
    const char *v;
    const char *coding = conf_str(c, "data_coding");
    const char *concat = conf_str(c, "concat");
    int64_t ton, npi;
    int rc;

    if ((rc = conf_copy(ch, c, "host", s->host, sizeof s->host)) < 0 ||
        (rc = conf_copy(ch, c, "system_id", s->system_id,
                        sizeof s->system_id)) < 0 ||
        (rc = conf_copy(ch, c, "password", s->password,
                        sizeof s->password)) < 0 ||
        (rc = conf_copy(ch, c, "system_type", s->system_type,
                        sizeof s->system_type)) < 0 ||
        (rc = conf_copy(ch, c, "service_type", s->service_type,
                        sizeof s->service_type)) < 0)
        return rc;
    s->port = (int)conf_int(c, "port");
    if (uv_ip4_addr(s->host, s->port, (struct sockaddr_in *)&s->addr) != 0 &&
        uv_ip6_addr(s->host, s->port, (struct sockaddr_in6 *)&s->addr) != 0)
        return bad_conf(ch, "host must be an IPv4 or IPv6 address");

    v = conf_str(c, "source_addr");
    if (!v)
        v = "";
    if (v[0] == '+')
        v++;
    if (strlen(v) >= sizeof s->source_addr)
        return bad_conf(ch, "source_addr is longer than 20 characters");
    memcpy(s->source_addr, v, strlen(v) + 1);
    ton = conf_int(c, "source_ton");
    npi = conf_int(c, "source_npi");
    if (ton < 0 || npi < 0) {
        const char *raw = conf_str(c, "source_addr");
        int digits = *v && strspn(v, "0123456789") == strlen(v);
        int64_t at = !*v ? 0 : digits ? (raw && raw[0] == '+' ? 1 : 0) : 5;
        int64_t an = !*v ? 0 : digits ? 1 : 0;

        if (ton < 0)
            ton = at;
        if (npi < 0)
            npi = an;
    }
    s->src_ton = (uint8_t)ton;
    s->src_npi = (uint8_t)npi;
    s->dst_ton = (uint8_t)conf_int(c, "dest_ton");
    s->dst_npi = (uint8_t)conf_int(c, "dest_npi");
    s->reg_delivery = conf_bool(c, "registered_delivery") ? 1 : 0;

    v = conf_str(c, "bind");
    s->ntx = (unsigned)conf_int(c, "binds");
    s->nrx = (unsigned)conf_int(c, "receiver_binds");
    if (strcmp(v, "receiver") == 0) {
        s->nrx += s->ntx;
        s->ntx = 0;
        log_warn(&ch->log, "bind = \"receiver\": this provider cannot "
                 "send; its binds take receipts and MO only");
    }
    s->window = (unsigned)conf_int(c, "window");
    s->resp_timeout = (uint64_t)conf_int(c, "response_timeout_ms");
    s->connect_timeout = (uint64_t)conf_int(c, "connect_timeout_ms");
    s->enq_interval = (uint64_t)conf_int(c, "enquire_link_ms");
    s->enq_timeout = (uint64_t)conf_int(c, "enquire_link_timeout_ms");
    s->rc_min = (uint64_t)conf_int(c, "reconnect_min_ms");
    s->rc_max = (uint64_t)conf_int(c, "reconnect_max_ms");
    if (s->rc_max < s->rc_min)
        s->rc_max = s->rc_min;
    s->throttle_pause = (uint64_t)conf_int(c, "throttle_pause_ms");
    s->queue_max = (unsigned)conf_int(c, "queue_max");
    s->queue_timeout = (uint64_t)conf_int(c, "queue_timeout_ms");
    s->close_grace = (uint64_t)conf_int(c, "close_grace_ms");
    s->max_pdu = (size_t)conf_int(c, "max_pdu_bytes");
    s->submit_fmt = id_fmt(conf_str(c, "submit_id_format"));
    s->receipt_fmt = id_fmt(conf_str(c, "receipt_id_format"));

    memset(&s->opts, 0, sizeof s->opts);
    s->opts.max_parts = (unsigned)conf_int(c, "max_parts");
    if (conf_bool(c, "smart_encoding"))
        s->opts.flags |= SMS_SMART;
    if (strcmp(coding, "ucs2") == 0)
        s->opts.flags |= SMS_FORCE_UCS2;
    else if (strcmp(coding, "gsm_packed") == 0)
        s->opts.flags |= SMS_PACK7;
    s->opts.concat = strcmp(concat, "udh16") == 0 ? SMS_CONCAT_UDH16
                   : strcmp(concat, "sar") == 0 ? SMS_CONCAT_SAR
                   : strcmp(concat, "payload") == 0 ? SMS_CONCAT_PAYLOAD
                   : SMS_CONCAT_UDH8;
    return 0;
}

static void on_handle_closed(uv_handle_t *h);

/* Memory for bind idx; its handles come later (bind_start). */
static int
bind_alloc(struct smpp *s, struct bind *b, unsigned idx, uint32_t cmd,
           int can_tx)
{
    b->s = s;
    b->idx = idx;
    b->bind_cmd = cmd;
    b->can_tx = can_tx;
    snprintf(b->name, sizeof b->name, "bind %u", idx + 1);
    for (b->nslots = 2, b->bits = 1; b->nslots < s->window + 1;
         b->nslots *= 2, b->bits++)
        ;
    b->rcap = s->max_pdu + 65536;
    buf_init(&b->out, 2 * OUT_FLUSH + 2 * PDU_ROOM);
    if ((b->rbuf = malloc(b->rcap)) == NULL ||
        (b->slots = calloc(b->nslots, sizeof *b->slots)) == NULL ||
        (b->freel = malloc(b->nslots * sizeof *b->freel)) == NULL)
        return -ENOMEM;
    /* slot 0 is never a submit; low slots are handed out first */
    for (unsigned i = b->nslots - 1; i >= 1; i--)
        b->freel[b->nfree++] = i;
    b->window = s->window;
    return 0;
}

/* Initialise a handle we own and count it. */
static void
own(struct smpp *s, uv_handle_t *h)
{
    h->data = s;
    s->handles++;
}

/* channel_ops.open: configure, allocate, start connecting. */
static int
smpp_open(struct channel *ch, const struct conf_provider *conf)
{
    struct smpp *s = calloc(1, sizeof *s);
    uv_loop_t *loop = ch->loop;
    unsigned i;
    uint32_t cmd;
    int rc;

    if (!s)
        return -ENOMEM;
    s->ch = ch;
    buf_init(&s->idbuf, 255u * SMPP_ID_MAX);
    buf_init(&s->mo, SMPP_MO_MAX);
    if ((rc = configure(s, ch, conf)) < 0) {
        smpp_free(s);
        return rc;
    }
    s->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)s;
    if (s->rng == 0)
        s->rng = 1;
    s->ref = (uint16_t)rnd(s);
    s->nbinds = s->ntx + s->nrx;
    if ((s->binds = calloc(s->nbinds, sizeof *s->binds)) == NULL) {
        smpp_free(s);
        return -ENOMEM;
    }
    cmd = strcmp(conf_str(conf, "bind"), "transmitter") == 0
              ? SMPP_BIND_TRANSMITTER : SMPP_BIND_TRANSCEIVER;
    for (i = 0; i < s->nbinds; i++)
        if ((rc = bind_alloc(s, &s->binds[i], i, i < s->ntx ? cmd
                             : SMPP_BIND_RECEIVER, i < s->ntx)) < 0) {
            smpp_free(s);
            return rc;
        }
    /* nothing below fails: uv_timer_init and uv_prepare_init cannot */
    for (i = 0; i < s->nbinds; i++) {
        struct bind *b = &s->binds[i];

        uv_timer_init(loop, &b->timer);
        uv_timer_init(loop, &b->enq);
        uv_timer_init(loop, &b->rto);
        uv_timer_init(loop, &b->pause);
        own(s, (uv_handle_t *)&b->timer);
        own(s, (uv_handle_t *)&b->enq);
        own(s, (uv_handle_t *)&b->rto);
        own(s, (uv_handle_t *)&b->pause);
    }
    uv_timer_init(loop, &s->later);
    uv_timer_init(loop, &s->tick);
    uv_prepare_init(loop, &s->flush);
    own(s, (uv_handle_t *)&s->later);
    own(s, (uv_handle_t *)&s->tick);
    own(s, (uv_handle_t *)&s->flush);
    uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
    ch->priv = s;
    for (i = 0; i < s->nbinds; i++)     /* connect on the first loop turn */
        uv_timer_start(&s->binds[i].timer, on_timer, 0, 0);
    log_info(&ch->log, "%u bind%s (%u sending, window %u) to %s:%d as %s",
             s->nbinds, s->nbinds == 1 ? "" : "s", s->ntx, s->window, s->host,
             s->port, s->system_id);
    return 0;
}

/* Validity period in the absolute form, UTC: YYMMDDhhmmss000+. */
static void
validity(char *out, size_t cap, int64_t deadline_ms)
{
    time_t t = (time_t)(deadline_ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    if (strftime(out, cap, "%y%m%d%H%M%S000+", &tm) == 0)
        out[0] = '\0';
}

/* channel_ops.send: plan the text, queue the message, kick. */
static int
smpp_send(struct channel *ch, struct message *m, channel_done_cb *cb,
          void *arg)
{
    struct smpp *s = ch->priv;
    struct sms_plan plan;
    struct sms_opts o = s->opts;
    struct smsg *g;
    const char *to = m->to ? m->to : "", *text = m->content.sms;
    const char *fail = NULL;
    size_t need, nbytes = 0, tl;
    char reason[160];
    int rc;

    /* The campaign may switch smart encoding either way. */
    if (m->smart_encoding > 0)
        o.flags |= SMS_SMART;
    else if (m->smart_encoding == 0)
        o.flags &= ~(unsigned)SMS_SMART;
    if (s->closing)
        return GW_ESTATE;
    if (s->ntx == 0)
        return GW_ESTATE;
    if (s->qlen >= s->queue_max)
        return GW_ETOOBIG;      /* the caller retries later */
    o.ref = s->ref++;
    if (to[0] == '+')
        to++;
    tl = strlen(to);
    memset(&plan, 0, sizeof plan);
    if (tl == 0 || tl > 20 || strspn(to, "0123456789") != tl) {
        snprintf(reason, sizeof reason, "invalid destination number '%.40s'",
                 m->to ? m->to : "");
        fail = reason;
    } else if (!text) {
        fail = "no SMS text was rendered";
    } else if ((rc = sms_plan(&plan, text, m->content.sms_len, &o, NULL, 0,
                              NULL, 0)) < 0) {
        snprintf(reason, sizeof reason, "%s", plan.reason[0] ? plan.reason
                 : gw_strerror(rc));
        fail = reason;
    } else if (m->deadline_ms > 0 &&
               m->deadline_ms <= (int64_t)time(NULL) * 1000 + 1000) {
        snprintf(reason, sizeof reason, "deadline passed");
        fail = reason;
    }
    if (!fail) {
        need = plan.in_payload ? 2 * plan.units + 16
                               : (size_t)plan.nparts * SMS_PART_MAX;
        nbytes = need;
    }
    g = calloc(1, sizeof *g + (fail ? 0 : plan.nparts *
                               (sizeof(struct sms_part) + 1 + SMPP_ID_MAX) +
                               nbytes));
    if (!g)
        return -ENOMEM;
    g->s = s;
    g->m = m;
    g->cb = cb;
    g->arg = arg;
    g->queued_at = now_ms(s);
    s->nmsgs++;
    if (fail) {
        msg_fail(g, fail == reason && strcmp(reason, "deadline passed") == 0
                 ? SEND_TEMPFAIL : SEND_PERMFAIL, fail);
        return 0;
    }
    g->nparts = plan.nparts;
    g->parts = (struct sms_part *)(void *)(g + 1);
    g->ids = (char *)(g->parts + g->nparts);
    g->pst = (uint8_t *)(g->ids + (size_t)g->nparts * SMPP_ID_MAX);
    g->bytes = g->pst + g->nparts;
    if ((rc = sms_plan(&g->plan, text, m->content.sms_len, &o, g->parts,
                       g->nparts, g->bytes, nbytes)) < 0) {
        msg_fail(g, SEND_PERMFAIL, g->plan.reason[0] ? g->plan.reason
                 : gw_strerror(rc));
        return 0;
    }
    memcpy(g->dst, to, tl + 1);
    if (m->deadline_ms > 0)
        validity(g->validity, sizeof g->validity, m->deadline_ms);
    list_push(&s->q_head, &s->q_tail, g, 0);
    g->where = 1;
    s->qlen++;
    kick(s);
    return 0;
}

/* Close every handle; the last close callback frees s. */
static void
teardown(struct smpp *s)
{
    s->torn = 1;
    for (unsigned i = 0; i < s->nbinds; i++) {
        uv_close((uv_handle_t *)&s->binds[i].timer, on_handle_closed);
        uv_close((uv_handle_t *)&s->binds[i].enq, on_handle_closed);
        uv_close((uv_handle_t *)&s->binds[i].rto, on_handle_closed);
        uv_close((uv_handle_t *)&s->binds[i].pause, on_handle_closed);
    }
    uv_close((uv_handle_t *)&s->later, on_handle_closed);
    uv_close((uv_handle_t *)&s->tick, on_handle_closed);
    uv_close((uv_handle_t *)&s->flush, on_handle_closed);
}

/* One handle closed; after the last, free and tell the channel. */
static void
on_handle_closed(uv_handle_t *h)
{
    struct smpp *s = h->data;
    struct channel *ch;

    if (--s->handles > 0)
        return;
    ch = s->ch;
    log_info(&ch->log, "closed: %llu sent, %llu temporary and %llu permanent "
             "failures, %llu in doubt; %llu receipts, %llu MO; %llu bind "
             "failures (%llu for credentials), %llu links lost",
             (unsigned long long)s->st.sent,
             (unsigned long long)s->st.tempfail,
             (unsigned long long)s->st.permfail,
             (unsigned long long)s->x.noresp,
             (unsigned long long)s->x.receipts,
             (unsigned long long)s->x.mos,
             (unsigned long long)s->x.bind_failures,
             (unsigned long long)s->x.auth_failures,
             (unsigned long long)s->x.link_losses);
    smpp_free(s);
    channel_closed(ch);
}

/* Closed once every bind is down, its socket closed, every outcome
 * reported. */
static void
check_close(struct smpp *s)
{
    if (!s->closing || s->torn || s->nmsgs > 0 || s->d_head)
        return;
    for (unsigned i = 0; i < s->nbinds; i++)
        if (s->binds[i].state != B_DOWN || s->binds[i].tcp_live ||
            s->binds[i].writes)
            return;
    teardown(s);
}

/* channel_ops.close: hand back queued work, drain, unbind. */
static void
smpp_close(struct channel *ch)
{
    struct smpp *s = ch->priv;
    struct smsg *g, *nx;

    s->closing = 1;
    s->close_deadline = now_ms(s) + s->close_grace;
    while (s->q_head)
        msg_fail(s->q_head, SEND_TEMPFAIL, "handed back at shutdown");
    for (unsigned i = 0; i < s->nbinds; i++) {
        struct bind *b = &s->binds[i];

        for (g = b->mq_head; g; g = nx) {
            nx = g->next;
            if (g->nsent == 0 && g->nresolved == 0) {
                msg_fail(g, SEND_TEMPFAIL, "handed back at shutdown");
            } else {
                cancel_rest(g, "shutdown");
                if (g->nresolved == g->nparts)
                    finish(g);
            }
        }
        if (b->state == B_DOWN) {
            uv_timer_stop(&b->timer);
            b->want_connect = 0;
        } else if (b->state != B_BOUND) {
            link_down(b, "shutdown");
        }
    }
    if (s->close_grace == 0)
        on_tick(&s->tick);
    kick(s);
    check_close(s);
}

/* channel_ops.stats. The session counters (binds up, bind failures, the
 * credentials alarm: s->x) wait for struct channel_stats to have fields
 * for them; until then they are in the log (bind refusals at error
 * level) and in the summary line at close. */
static void
smpp_stats(struct channel *ch, struct channel_stats *out)
{
    struct smpp *s = ch->priv;

    *out = s->st;
    out->inflight = s->nmsgs;
    out->connections = s->x.binds_up;
    out->connections_opened = s->x.binds_ok;
    out->alarm = s->x.alarm != 0;
}

const struct channel_ops smpp_ops = {
    .name  = "smpp",
    .open  = smpp_open,
    .send  = smpp_send,
    .close = smpp_close,
    .stats = smpp_stats,
};

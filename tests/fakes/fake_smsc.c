/*
 * fake_smsc.c -- a fake SMSC for tests and benchmarks: an SMPP 3.4 server
 * on 127.0.0.1 (libuv). It binds ESMEs, answers submit_sm with message
 * ids, sends delivery receipts and MO messages as deliver_sm, and injects
 * faults on request (throttling, rejects, missing responses, dropped
 * connections, a full window, slow responses, a silent link, raw bytes).
 * Framing is ours: the 4-byte length is read and capped before anything
 * else; submit_sm and bind bodies are walked here (bounds, C-string
 * terminators, TLV lengths) before libsmpp34 sees them, so hostile input
 * cannot make the library overread or leak. PDUs we send are packed by
 * libsmpp34; a status or sequence number it refuses is written by hand.
 *
 * Control lines on stdin (a pipe or tty): stats | mo FROM[>TO] TEXT |
 * dlr ID [STAT] | raw HEX | unbind | drop | silent on|off | throttle P |
 * quit.
 * Every line is answered on stdout ("ok ..." / "error ..." / JSON).
 * Run with --help for the options.
 */
#include <stdint.h>
#include "smpp34.h"
#include "smpp34_structs.h"
#include "smpp34_params.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "buf.h"

#define HDR_LEN      16
#define PACK_MAX     4096
#define OUT_FLUSH    (64u * 1024)        /* flush the batch beyond this */
#define WQ_HIGH      (4u * 1024 * 1024)  /* stop reading a peer beyond this */
#define LINE_MAX_LEN (64u * 1024)
#define SEQ_MAX      0x7FFFFFFFu

#define container_of(p, type, m) \
    ((type *)(void *)((char *)(p) - offsetof(type, m)))

enum { CAN_TX = 1, CAN_RX = 2 };
enum dlr_form { FORM_BOTH, FORM_TEXT, FORM_TLV, FORM_PAYLOAD };
enum id_fmt { ID_HEX, ID_HEX_UPPER, ID_HEX8, ID_DEC, ID_DEC10 };

static struct {
    int           port;
    const char   *system_id, *password;
    enum id_fmt   id_fmt, dlr_id_fmt;
    int           dlr_id_fmt_set;
    uint64_t      id_start;
    long          dlr_delay_ms;          /* -1: no receipts */
    int           dlr_always, dlr_before_resp;
    enum dlr_form dlr_form;
    char         *dlr_stats[16];
    unsigned      ndlr_stats, dlr_err;
    unsigned      throttle_every, reject_every, no_resp_every, drop_after;
    unsigned      throttle_percent;     /* 0..100 */
    uint64_t      throttle_seed;
    uint32_t      reject_status;
    int           no_enquire_resp, no_lib_check;
    unsigned      window, slow_ms, max_conns, enquire_ms, lifetime_s;
    size_t        max_pdu, max_queue;
    const char   *log_path, *mo_to;
} opt = {
    .id_start = 1, .dlr_delay_ms = -1, .reject_status = ESME_RSUBMITFAIL,
    .max_conns = 64, .lifetime_s = 900, .max_pdu = 65536,
    .max_queue = 100000, .mo_to = "12345", .throttle_seed = 1,
};

static struct {
    uint64_t binds, bind_fails, submits, submit_ok, throttled, rejected,
             swallowed, window_full, bad_state, bad_pdus, lib_unpack_fail,
             dlrs, dlr_dropped, deliver_resps, mos, enquire_links,
             enquire_link_resps, unbinds, nacks_sent, nacks_recv,
             unknown_cmds, bad_lengths, connections, refused, drops,
             bytes_in, bytes_out, silenced;
} st;

struct delayed {            /* a response held back by --slow-ms */
    struct delayed *next;
    uint64_t        due;
    int             is_submit;
    size_t          len;
    uint8_t         data[];
};

struct dlr {                /* a receipt waiting for --dlr-delay-ms */
    struct dlr *next;
    uint64_t    due, conn_id;
    uint64_t    msgno;
    char        system_id[16];  /* of the submitting bind */
    char        src[21], dst[21];
    uint8_t     src_ton, src_npi, dst_ton, dst_npi;
    char        text[21];
    time_t      submitted;
    const char *stat;
};

struct conn {
    uv_tcp_t        tcp;
    uv_timer_t      timer;          /* --slow-ms queue */
    struct conn    *prev, *next;
    uint64_t        id;
    int             handles, closing, drain_close, paused;
    int             drop_now;       /* --drop-after reached: hang up */
    int             close_idle;     /* unbound: close once answered */
    unsigned        bound;          /* CAN_TX | CAN_RX */
    char            system_id[16];
    uint8_t        *rbuf;
    size_t          rlen, rcap;
    struct buf      out;
    uint32_t        seq;            /* ours, for deliver_sm etc. */
    unsigned        answered;       /* submit responses sent */
    unsigned        writes;         /* uv_write requests in flight */
    struct delayed *dq_head, *dq_tail;
    size_t          dq_len, dq_submits;
};

struct wreq {
    uv_write_t   req;
    struct conn *c;
    char         data[];
};

static uv_loop_t   *loop;
static uv_tcp_t     server;
static uv_signal_t  sig_term, sig_int;
static uv_timer_t   dlr_timer, life_timer, enq_timer;
static union { uv_pipe_t pipe; uv_tty_t tty; } in;
static int          have_in, stopping, silent;
static struct buf   line;
static struct conn *conns;
static unsigned     nconns;
static uint64_t     next_conn_id = 1, next_msgno;
static struct dlr  *dq_head, *dq_tail;
static size_t       dq_len;
static unsigned     stat_idx;
static FILE        *logf;
static int          log_dirty;

static void conn_close(struct conn *c);
static void conn_flush(struct conn *c);
static void conn_resume_read(struct conn *c);
static void stop_all(void);
static int num(const char *s, unsigned long long max,
               unsigned long long *v);

/* A big-endian 32-bit value. */
static uint32_t
be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* Store v big-endian. */
static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- output ---------------------------------------------------------- */

/* A queued write is done: free it, resume reading or finish a close. */
static void
on_write(uv_write_t *req, int status)
{
    struct wreq *w = container_of(req, struct wreq, req);
    struct conn *c = w->c;

    free(w);
    c->writes--;
    if (status < 0 && !c->closing) {
        conn_close(c);
        return;
    }
    if (c->closing)
        return;
    if (c->writes == 0 && c->drain_close) {
        conn_close(c);
        return;
    }
    if (c->paused &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < WQ_HIGH / 4) {
        c->paused = 0;
        if (!c->drain_close)
            conn_resume_read(c);
    }
}

/* Send the batched output: try a direct write, queue what is left. */
static void
conn_flush(struct conn *c)
{
    uv_stream_t *s = (uv_stream_t *)&c->tcp;
    uv_buf_t b;
    struct wreq *w;
    int n;

    if (logf && log_dirty) {
        fflush(logf);
        log_dirty = 0;
    }
    if (c->closing || c->out.len == 0)
        goto drained;
    b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    n = uv_try_write(s, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS)
        n = 0;
    if (n < 0) {
        buf_reset(&c->out);
        conn_close(c);
        return;
    }
    st.bytes_out += (uint64_t)n;
    if ((size_t)n < c->out.len) {
        size_t rest = c->out.len - (size_t)n;

        if ((w = malloc(sizeof *w + rest)) == NULL) {
            buf_reset(&c->out);
            conn_close(c);
            return;
        }
        w->c = c;
        memcpy(w->data, c->out.data + n, rest);
        b = uv_buf_init(w->data, (unsigned)rest);
        if (uv_write(&w->req, s, &b, 1, on_write) < 0) {
            free(w);
            buf_reset(&c->out);
            conn_close(c);
            return;
        }
        c->writes++;
        st.bytes_out += rest;
        if (uv_stream_get_write_queue_size(s) > WQ_HIGH && !c->paused) {
            c->paused = 1;
            uv_read_stop(s);
        }
    }
    buf_reset(&c->out);
drained:
    if (!c->closing && c->drain_close && c->writes == 0)
        conn_close(c);
}

/* Queue n bytes for the peer (flushed at the end of the callback). */
static void
conn_send(struct conn *c, const void *p, size_t n)
{
    if (c->closing)
        return;
    if (silent) {
        st.silenced++;
        return;
    }
    if (c->out.len + n > OUT_FLUSH)
        conn_flush(c);
    if (c->closing || buf_append(&c->out, p, n) < 0) {
        if (!c->closing)
            conn_close(c);
    }
}

/* Close after what is queued has been written. */
static void
conn_close_drained(struct conn *c)
{
    if (c->closing)
        return;
    c->drain_close = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    conn_flush(c);
}

/* Our next sequence number on c (1..0x7FFFFFFF). */
static uint32_t
conn_seq(struct conn *c)
{
    if (++c->seq > SEQ_MAX)
        c->seq = 1;
    return c->seq;
}

/* A header-only PDU by hand: for what libsmpp34 refuses to pack (a
 * sequence number of 0, a status outside its list). */
static size_t
pack_header(uint8_t *b, uint32_t cmd, uint32_t status, uint32_t seq,
            const char *cstr)
{
    size_t n = HDR_LEN;

    if (cstr) {
        size_t l = strlen(cstr) + 1;

        memcpy(b + HDR_LEN, cstr, l);
        n += l;
    }
    put32(b, (uint32_t)n);
    put32(b + 4, cmd);
    put32(b + 8, status);
    put32(b + 12, seq);
    return n;
}

/* Pack a response: command cmd with status and seq; body is the
 * message_id (submit_sm_resp, only when status is 0) or system_id
 * (bind_*_resp), NULL otherwise. Returns the length in b. */
static size_t
pack_resp(uint8_t *b, uint32_t cmd, uint32_t status, uint32_t seq,
          const char *body)
{
    union {
        submit_sm_resp_t        sub;
        bind_transmitter_resp_t bind;
        generic_nack_t          hdr;
    } u;
    int len = 0, rc;

    memset(&u, 0, sizeof u);
    u.hdr.command_id = cmd;
    u.hdr.command_status = status;
    u.hdr.sequence_number = seq;
    if (cmd == SUBMIT_SM_RESP) {
        snprintf((char *)u.sub.message_id, sizeof u.sub.message_id, "%s",
                 body ? body : "");
        rc = smpp34_pack(cmd, b, PACK_MAX, &len, &u.sub);
    } else if (cmd == BIND_TRANSMITTER_RESP || cmd == BIND_RECEIVER_RESP ||
               cmd == BIND_TRANSCEIVER_RESP) {
        snprintf((char *)u.bind.system_id, sizeof u.bind.system_id, "%s",
                 body ? body : "");
        rc = smpp34_pack(cmd, b, PACK_MAX, &len, &u.bind);
    } else {
        rc = smpp34_pack(cmd, b, PACK_MAX, &len, &u.hdr);
        body = NULL;
    }
    if (rc == 0)
        return (size_t)len;
    if (cmd == SUBMIT_SM_RESP && status != 0)
        body = NULL;
    return pack_header(b, cmd, status, seq, body);
}

/* Queue a generic_nack. */
static void
send_nack(struct conn *c, uint32_t status, uint32_t seq)
{
    uint8_t b[PACK_MAX];

    st.nacks_sent++;
    conn_send(c, b, pack_resp(b, GENERIC_NACK, status, seq, NULL));
}

/* ---- responses, delayed by --slow-ms ----------------------------------- */

/* Count a submit response sent on c; --drop-after hangs up. */
static void
submit_answered(struct conn *c)
{
    c->answered++;
    if (opt.drop_after && c->answered == opt.drop_after) {
        c->drop_now = 1;
        st.drops++;
    }
}

/* Send the --slow-ms responses that are due. */
static void
on_slow_timer(uv_timer_t *t)
{
    struct conn *c = container_of(t, struct conn, timer);
    uint64_t now = uv_now(loop);
    struct delayed *d;

    while ((d = c->dq_head) != NULL && d->due <= now) {
        c->dq_head = d->next;
        if (c->dq_head == NULL)
            c->dq_tail = NULL;
        c->dq_len--;
        conn_send(c, d->data, d->len);
        if (d->is_submit) {
            c->dq_submits--;
            submit_answered(c);
        }
        free(d);
    }
    if (c->drop_now || (c->close_idle && c->dq_head == NULL))
        conn_close_drained(c);
    else
        conn_flush(c);
    if (c->dq_head && !c->closing && !c->drain_close)
        uv_timer_start(&c->timer, on_slow_timer, c->dq_head->due - now, 0);
}

/* Send a response now, or after --slow-ms. */
static void
emit_resp(struct conn *c, const uint8_t *b, size_t n, int is_submit)
{
    struct delayed *d;

    if (opt.slow_ms == 0 && c->dq_head == NULL) {
        conn_send(c, b, n);
        if (is_submit)
            submit_answered(c);
        return;
    }
    if ((d = malloc(sizeof *d + n)) == NULL) {
        conn_close(c);
        return;
    }
    d->next = NULL;
    d->due = uv_now(loop) + opt.slow_ms;
    d->is_submit = is_submit;
    d->len = n;
    memcpy(d->data, b, n);
    if (c->dq_tail)
        c->dq_tail->next = d;
    else
        c->dq_head = d;
    c->dq_tail = d;
    c->dq_len++;
    c->dq_submits += is_submit != 0;
    if (!uv_is_active((uv_handle_t *)&c->timer))
        uv_timer_start(&c->timer, on_slow_timer, opt.slow_ms, 0);
}

/* ---- the submit_sm log ------------------------------------------------- */

/* A JSON string; bytes outside printable ASCII escaped as u00XX. */
static void
json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7F)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* Bytes as a JSON string of hex digits. */
static void
json_hex(FILE *f, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char chunk[512];
    size_t k = 0;

    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        chunk[k++] = digits[p[i] >> 4];
        chunk[k++] = digits[p[i] & 15];
        if (k == sizeof chunk) {
            fwrite(chunk, 1, k, f);
            k = 0;
        }
    }
    fwrite(chunk, 1, k, f);
    fputc('"', f);
}

/* A submit_sm as walked by parse_submit: pointers into the PDU. */
struct submit {
    uint32_t       seq;
    const char    *service_type, *src, *dst, *sched, *validity;
    uint8_t        src_ton, src_npi, dst_ton, dst_npi, esm_class,
                   protocol_id, priority, registered_delivery, replace,
                   data_coding, default_msg_id, sm_length;
    const uint8_t *sm, *tlv, *payload;
    size_t         tlv_len, payload_len, udh_len;
    int            lib_safe;    /* libsmpp34 can unpack it without risk */
};

/* One --log line for a submit_sm (status -1: not answered). */
static void
log_submit(const struct conn *c, const struct submit *s, long status,
           const char *msgid, int lib_ok)
{
    const uint8_t *p = s->tlv, *end = s->tlv + s->tlv_len;
    int first = 1;

    if (!logf)
        return;
    fprintf(logf, "{\"conn\":%llu,\"seq\":%u,\"system_id\":",
            (unsigned long long)c->id, s->seq);
    json_str(logf, c->system_id);
    fputs(",\"service_type\":", logf);
    json_str(logf, s->service_type);
    fprintf(logf, ",\"source_addr_ton\":%u,\"source_addr_npi\":%u,"
            "\"source_addr\":", s->src_ton, s->src_npi);
    json_str(logf, s->src);
    fprintf(logf, ",\"dest_addr_ton\":%u,\"dest_addr_npi\":%u,"
            "\"destination_addr\":", s->dst_ton, s->dst_npi);
    json_str(logf, s->dst);
    fprintf(logf, ",\"esm_class\":%u,\"protocol_id\":%u,\"priority_flag\":%u,"
            "\"schedule_delivery_time\":", s->esm_class, s->protocol_id,
            s->priority);
    json_str(logf, s->sched);
    fputs(",\"validity_period\":", logf);
    json_str(logf, s->validity);
    fprintf(logf, ",\"registered_delivery\":%u,\"data_coding\":%u,"
            "\"sm_length\":%u,\"udh\":", s->registered_delivery,
            s->data_coding, s->sm_length);
    json_hex(logf, s->sm, s->udh_len);
    fputs(",\"short_message\":", logf);
    json_hex(logf, s->sm, s->sm_length);
    fputs(",\"body\":", logf);
    json_hex(logf, s->sm + s->udh_len, s->sm_length - s->udh_len);
    fputs(",\"tlvs\":[", logf);
    while (p + 4 <= end) {
        unsigned tag = (unsigned)p[0] << 8 | p[1], len = (unsigned)p[2] << 8 |
                                                         p[3];

        fprintf(logf, "%s{\"tag\":%u,\"len\":%u,\"value\":", first ? "" : ",",
                tag, len);
        json_hex(logf, p + 4, len);
        fputc('}', logf);
        first = 0;
        p += 4 + len;
    }
    fprintf(logf, "],\"status\":%ld,\"message_id\":", status);
    json_str(logf, msgid ? msgid : "");
    fprintf(logf, ",\"lib_ok\":%s}\n",
            lib_ok < 0 ? "null" : lib_ok ? "true" : "false");
    log_dirty = 1;
}

/* ---- walking PDU bodies ------------------------------------------------ */

struct rd {
    const uint8_t *p, *end;
};

/* One octet. */
static int
rd_u8(struct rd *r, uint8_t *v)
{
    if (r->p >= r->end)
        return -1;
    *v = *r->p++;
    return 0;
}

/* A C-octet string of at most max bytes with its NUL. */
static int
rd_cstr(struct rd *r, size_t max, const char **s)
{
    size_t n = (size_t)(r->end - r->p);
    const uint8_t *z;

    if (n > max)
        n = max;
    if ((z = memchr(r->p, 0, n)) == NULL)
        return -1;
    *s = (const char *)r->p;
    r->p = z + 1;
    return 0;
}

/* Whether libsmpp34's submit_sm TLV table reads exactly len bytes for
 * tag (it reads fixed sizes for integer tags whatever the length says). */
static int
lib_tlv_ok(unsigned tag, unsigned len)
{
    switch (tag) {
    case TLVID_user_message_reference: case TLVID_source_port:
    case TLVID_destination_port: case TLVID_sar_msg_ref_num:
    case TLVID_sms_signal: case TLVID_its_session_info:
        return len == 2;
    case TLVID_source_addr_subunit: case TLVID_dest_addr_subunit:
    case TLVID_sar_total_segments: case TLVID_sar_segment_seqnum:
    case TLVID_more_messages_to_send: case TLVID_payload_type:
    case TLVID_privacy_indicator: case TLVID_callback_num_pres_ind:
    case TLVID_user_response_code: case TLVID_display_time:
    case TLVID_ms_validity: case TLVID_ms_msg_wait_facilities:
    case TLVID_number_of_messages: case TLVID_language_indicator:
    case TLVID_its_reply_type:
        return len == 1;
    case TLVID_callback_num:
        return len <= 19;
    case TLVID_callback_num_atag:
        return len <= 65;
    case TLVID_source_subaddress: case TLVID_dest_subaddress:
        return len <= 23;
    case TLVID_alert_on_message_delivery:
        return len == 0;
    case TLVID_ussd_service_op:
        return len <= 1;
    default:
        return len <= MAX_TLV_SIZE;
    }
}

/* Walk a submit_sm body. Returns 0 or the ESME status to answer. */
static uint32_t
parse_submit(struct submit *s, const uint8_t *pdu, size_t len)
{
    struct rd r = { pdu + HDR_LEN, pdu + len };
    const uint8_t *p;

    memset(s, 0, sizeof *s);
    s->seq = be32(pdu + 12);
    if (rd_cstr(&r, 6, &s->service_type) < 0)
        return ESME_RINVSERTYP;
    if (rd_u8(&r, &s->src_ton) < 0 || rd_u8(&r, &s->src_npi) < 0 ||
        rd_cstr(&r, 21, &s->src) < 0)
        return ESME_RINVSRCADR;
    if (rd_u8(&r, &s->dst_ton) < 0 || rd_u8(&r, &s->dst_npi) < 0 ||
        rd_cstr(&r, 21, &s->dst) < 0)
        return ESME_RINVDSTADR;
    if (rd_u8(&r, &s->esm_class) < 0 || rd_u8(&r, &s->protocol_id) < 0 ||
        rd_u8(&r, &s->priority) < 0)
        return ESME_RINVMSGLEN;
    if (rd_cstr(&r, 17, &s->sched) < 0)
        return ESME_RINVSCHED;
    if (rd_cstr(&r, 17, &s->validity) < 0)
        return ESME_RINVEXPIRY;
    if (rd_u8(&r, &s->registered_delivery) < 0 || rd_u8(&r, &s->replace) < 0 ||
        rd_u8(&r, &s->data_coding) < 0 || rd_u8(&r, &s->default_msg_id) < 0 ||
        rd_u8(&r, &s->sm_length) < 0 ||
        (size_t)(r.end - r.p) < s->sm_length)
        return ESME_RINVMSGLEN;
    s->sm = r.p;
    r.p += s->sm_length;
    if ((s->esm_class & 0x40) && s->sm_length > 0) {
        s->udh_len = (size_t)s->sm[0] + 1;
        if (s->udh_len > s->sm_length)
            return ESME_RINVESMCLASS;
    }
    s->tlv = r.p;
    s->tlv_len = (size_t)(r.end - r.p);
    s->lib_safe = s->sm_length < 254;
    for (p = s->tlv; p < r.end;) {
        unsigned tag, tl;

        if (r.end - p < 4)
            return ESME_RINVOPTPARSTREAM;
        tag = (unsigned)p[0] << 8 | p[1];
        tl = (unsigned)p[2] << 8 | p[3];
        if ((size_t)(r.end - p - 4) < tl)
            return ESME_RINVPARLEN;
        if (!lib_tlv_ok(tag, tl))
            s->lib_safe = 0;
        if (tag == TLVID_message_payload) {
            s->payload = p + 4;
            s->payload_len = tl;
        }
        p += 4 + tl;
    }
    return 0;
}

/* The text of a receipt: the first 20 bytes of the message, printable
 * ASCII, '.' for anything else. */
static void
receipt_text(char *dst, const struct submit *s)
{
    const uint8_t *p = s->sm + s->udh_len;
    size_t n = s->sm_length - s->udh_len, i;

    if (n == 0 && s->payload) {
        p = s->payload;
        n = s->payload_len;
    }
    for (i = 0; i < n && i < 20; i++)
        dst[i] = p[i] >= 0x20 && p[i] < 0x7F ? (char)p[i] : '.';
    dst[i] = '\0';
}

/* A message id in notation f. */
static void
format_id(char *dst, size_t n, uint64_t v, enum id_fmt f)
{
    switch (f) {
    case ID_HEX:       snprintf(dst, n, "%llx", (unsigned long long)v); break;
    case ID_HEX_UPPER: snprintf(dst, n, "%llX", (unsigned long long)v); break;
    case ID_HEX8:      snprintf(dst, n, "%08llx", (unsigned long long)v); break;
    case ID_DEC:       snprintf(dst, n, "%llu", (unsigned long long)v); break;
    case ID_DEC10:     snprintf(dst, n, "%010llu", (unsigned long long)v);
                       break;
    }
}

/* ---- delivery receipts and MO messages --------------------------------- */

/* The message_state TLV value for a stat: word. */
static int
message_state(const char *stat)
{
    static const char *const names[] = {
        "ENROUTE", "DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD",
        "UNKNOWN", "REJECTD",
    };

    for (int i = 0; i < 8; i++)
        if (strcmp(stat, names[i]) == 0)
            return i + 1;
    return 7;
}

/* YYMMDDhhmm in UTC, as receipts carry it. */
static void
smpp_time(char *dst, size_t n, time_t t)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(dst, n, "%y%m%d%H%M", &tm);
}

/* Pack a deliver_sm: a receipt (d != NULL) or an MO (body in sm/len with
 * data_coding dc). Returns the length, or 0 if libsmpp34 refused it. */
static size_t
pack_deliver(uint8_t *b, uint32_t seq, const struct dlr *d, const char *src,
             const char *dst, uint8_t src_ton, uint8_t src_npi,
             uint8_t dst_ton, uint8_t dst_npi, uint8_t dc, const uint8_t *sm,
             size_t smlen)
{
    static deliver_sm_t pdu;
    static tlv_t t_id, t_state, t_err, t_payload;
    char text[256], id[32], sd[16], dd[16];
    tlv_t *head = NULL;
    int len = 0;

    memset(&pdu, 0, sizeof pdu);
    pdu.command_id = DELIVER_SM;
    pdu.sequence_number = seq;
    snprintf((char *)pdu.source_addr, sizeof pdu.source_addr, "%s", src);
    snprintf((char *)pdu.destination_addr, sizeof pdu.destination_addr, "%s",
             dst);
    pdu.source_addr_ton = src_ton;
    pdu.source_addr_npi = src_npi;
    pdu.dest_addr_ton = dst_ton;
    pdu.dest_addr_npi = dst_npi;
    pdu.data_coding = dc;
    if (d) {
        int ms = message_state(d->stat);

        pdu.esm_class = SMPP34_DELIVERY_RECEIPT;
        format_id(id, sizeof id, d->msgno,
                  opt.dlr_id_fmt_set ? opt.dlr_id_fmt : opt.id_fmt);
        smpp_time(sd, sizeof sd, d->submitted);
        smpp_time(dd, sizeof dd, time(NULL));
        snprintf(text, sizeof text, "id:%s sub:001 dlvrd:%s submit date:%s "
                 "done date:%s stat:%s err:%03u text:%s", id,
                 ms == 2 ? "001" : "000", sd, dd, d->stat, opt.dlr_err,
                 d->text);
        if (opt.dlr_form == FORM_BOTH || opt.dlr_form == FORM_TEXT) {
            pdu.sm_length = (uint8_t)strlen(text);
            memcpy(pdu.short_message, text, pdu.sm_length);
        }
        if (opt.dlr_form == FORM_BOTH || opt.dlr_form == FORM_TLV) {
            memset(&t_id, 0, sizeof t_id);
            t_id.tag = TLVID_receipted_message_id;
            t_id.length = (uint16_t)(strlen(id) + 1);
            memcpy(t_id.value.octet, id, t_id.length);
            memset(&t_state, 0, sizeof t_state);
            t_state.tag = TLVID_message_state;
            t_state.length = 1;
            t_state.value.val08 = (uint8_t)ms;
            t_state.next = head;
            t_id.next = &t_state;
            head = &t_id;
            if (opt.dlr_err) {
                memset(&t_err, 0, sizeof t_err);
                t_err.tag = TLVID_network_error_code;
                t_err.length = 3;
                t_err.value.octet[0] = 3;   /* GSM */
                t_err.value.octet[1] = (uint8_t)(opt.dlr_err >> 8);
                t_err.value.octet[2] = (uint8_t)opt.dlr_err;
                t_err.next = head;
                head = &t_err;
            }
        }
        if (opt.dlr_form == FORM_PAYLOAD) {
            sm = (const uint8_t *)text;
            smlen = strlen(text);
        } else {
            smlen = 0;
        }
    }
    if (smlen > 0 && smlen < 254 && !(d && opt.dlr_form == FORM_PAYLOAD)) {
        pdu.sm_length = (uint8_t)smlen;
        memcpy(pdu.short_message, sm, smlen);
    } else if (smlen > 0) {
        if (smlen > MAX_TLV_SIZE)
            return 0;
        memset(&t_payload, 0, sizeof t_payload);
        t_payload.tag = TLVID_message_payload;
        t_payload.length = (uint16_t)smlen;
        memcpy(t_payload.value.octet, sm, smlen);
        t_payload.next = head;
        head = &t_payload;
    }
    pdu.tlv = head;
    if (smpp34_pack(DELIVER_SM, b, PACK_MAX, &len, &pdu) != 0) {
        fprintf(stderr, "fake_smsc: cannot pack deliver_sm: %s\n",
                smpp34_strerror);
        return 0;
    }
    return (size_t)len;
}

/* The open connection with this id, or NULL. */
static struct conn *
conn_by_id(uint64_t id)
{
    for (struct conn *c = conns; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

/* Where a receipt goes: the submitting connection if it is still there
 * and can receive, else a receiver bound with the same system_id (round
 * robin; sysid NULL: any receiver). */
static struct conn *
receiver_for(struct conn *from, const char *sysid)
{
    static uint64_t rr;
    struct conn *c, *pick = NULL;
    unsigned n = 0, k;

    if (from && !from->closing && (from->bound & CAN_RX))
        return from;
    for (c = conns; c; c = c->next)
        if (!c->closing && (c->bound & CAN_RX) &&
            (!sysid || strcmp(c->system_id, sysid) == 0))
            n++;
    if (n == 0)
        return NULL;
    k = (unsigned)(rr++ % n);
    for (c = conns; c && !pick; c = c->next)
        if (!c->closing && (c->bound & CAN_RX) &&
            (!sysid || strcmp(c->system_id, sysid) == 0) && k-- == 0)
            pick = c;
    return pick;
}

/* Send one receipt now (sysid NULL: to any receiver); 0, or -1 when the
 * receiver is backed up. */
static int
dlr_send(struct dlr *d, const char *sysid)
{
    uint8_t b[PACK_MAX];
    struct conn *to = receiver_for(conn_by_id(d->conn_id), sysid);
    size_t n;

    if (to == NULL) {
        st.dlr_dropped++;
        return 0;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&to->tcp) > WQ_HIGH)
        return -1;
    if ((n = pack_deliver(b, conn_seq(to), d, d->dst, d->src, d->dst_ton,
                          d->dst_npi, d->src_ton, d->src_npi, 0, NULL, 0)) ==
        0) {
        st.dlr_dropped++;
        return 0;
    }
    st.dlrs++;
    conn_send(to, b, n);
    return 0;
}

/* Send the receipts that are due; retry later when backed up. */
static void
on_dlr_timer(uv_timer_t *t)
{
    uint64_t now = uv_now(loop);
    struct dlr *d;
    struct conn *c;

    (void)t;
    while ((d = dq_head) != NULL && d->due <= now) {
        if (dlr_send(d, d->system_id) < 0) {
            uv_timer_start(&dlr_timer, on_dlr_timer, 20, 0);
            goto flush;
        }
        dq_head = d->next;
        if (dq_head == NULL)
            dq_tail = NULL;
        dq_len--;
        free(d);
    }
    if (dq_head)
        uv_timer_start(&dlr_timer, on_dlr_timer, dq_head->due - now, 0);
flush:
    for (c = conns; c; c = c->next)
        conn_flush(c);
}

/* A receipt for submit s on c with message number no. */
static void
dlr_fill(struct dlr *d, struct conn *c, const struct submit *s, uint64_t no)
{
    memset(d, 0, sizeof *d);
    d->conn_id = c->id;
    d->msgno = no;
    snprintf(d->system_id, sizeof d->system_id, "%s", c->system_id);
    snprintf(d->src, sizeof d->src, "%s", s->src);
    snprintf(d->dst, sizeof d->dst, "%s", s->dst);
    d->src_ton = s->src_ton;
    d->src_npi = s->src_npi;
    d->dst_ton = s->dst_ton;
    d->dst_npi = s->dst_npi;
    receipt_text(d->text, s);
    d->submitted = time(NULL);
    d->stat = opt.dlr_stats[stat_idx++ % opt.ndlr_stats];
}

/* Schedule (or, --dlr-before-resp, send right away) a receipt. */
static void
dlr_schedule(struct conn *c, const struct submit *s, uint64_t no)
{
    struct dlr *d;

    if (opt.dlr_delay_ms < 0 ||
        (!opt.dlr_always && (s->registered_delivery & 0x03) == 0))
        return;
    if (opt.dlr_before_resp) {
        struct dlr now;

        dlr_fill(&now, c, s, no);
        if (dlr_send(&now, now.system_id) < 0)
            st.dlr_dropped++;
        return;
    }
    if (dq_len >= opt.max_queue || (d = malloc(sizeof *d)) == NULL) {
        st.dlr_dropped++;
        return;
    }
    dlr_fill(d, c, s, no);
    d->due = uv_now(loop) + (uint64_t)opt.dlr_delay_ms;
    if (dq_tail)
        dq_tail->next = d;
    else
        dq_head = d;
    dq_tail = d;
    dq_len++;
    if (!uv_is_active((uv_handle_t *)&dlr_timer))
        uv_timer_start(&dlr_timer, on_dlr_timer, (uint64_t)opt.dlr_delay_ms,
                       0);
}

/* ---- PDU handlers -------------------------------------------------------- */

/* bind_transmitter/receiver/transceiver: check, answer. */
static void
handle_bind(struct conn *c, const uint8_t *pdu, size_t len, uint32_t cmd)
{
    struct rd r = { pdu + HDR_LEN, pdu + len };
    const char *sysid = "", *pw = "", *systype = "", *range = "";
    uint8_t ver = 0, ton = 0, npi = 0;
    uint32_t status = ESME_ROK, seq = be32(pdu + 12);
    uint8_t b[PACK_MAX];

    if (rd_cstr(&r, 16, &sysid) < 0)
        status = ESME_RINVSYSID;
    else if (rd_cstr(&r, 9, &pw) < 0)
        status = ESME_RINVPASWD;
    else if (rd_cstr(&r, 13, &systype) < 0)
        status = ESME_RINVSYSTYP;
    else if (rd_u8(&r, &ver) < 0 || rd_u8(&r, &ton) < 0 ||
             rd_u8(&r, &npi) < 0 || rd_cstr(&r, 41, &range) < 0 ||
             r.p != r.end)
        status = ESME_RBINDFAIL;
    else if (c->bound)
        status = ESME_RALYBND;
    else if (opt.system_id && strcmp(sysid, opt.system_id) != 0)
        status = ESME_RBINDFAIL;
    else if (opt.password && strcmp(pw, opt.password) != 0)
        status = ESME_RINVPASWD;
    if (status == ESME_ROK) {
        c->bound = cmd == BIND_TRANSMITTER ? CAN_TX
                 : cmd == BIND_RECEIVER    ? CAN_RX
                                           : CAN_TX | CAN_RX;
        snprintf(c->system_id, sizeof c->system_id, "%s", sysid);
        st.binds++;
    } else {
        st.bind_fails++;
    }
    emit_resp(c, b, pack_resp(b, cmd | 0x80000000u, status, seq, "FAKESMSC"),
              0);
}

/*
 * --throttle-percent P: exactly P of every block of 100 consecutive
 * submit_sm numbers are throttled, at positions shuffled by an xorshift
 * generator seeded with --throttle-seed, so a run is repeatable. A new P
 * ("throttle P" on stdin) takes effect at once: the pattern is redrawn.
 */
static struct {
    uint64_t      rng;
    uint64_t      block;        /* block the pattern was drawn for, + 1 */
    unsigned char hit[100];
} tp;

static uint64_t
tp_next(void)
{
    uint64_t x = tp.rng;

    if (x == 0)
        x = opt.throttle_seed * UINT64_C(0x9E3779B97F4A7C15) | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    tp.rng = x;
    return x * UINT64_C(2685821657736338717);
}

/* Whether submit_sm number n (from 1) is one to throttle. */
static int
throttle_pick(uint64_t n)
{
    uint64_t blk = (n - 1) / 100 + 1;

    if (opt.throttle_percent == 0)
        return 0;
    if (tp.block != blk) {
        memset(tp.hit, 0, sizeof tp.hit);
        memset(tp.hit, 1, opt.throttle_percent);
        for (unsigned i = 99; i > 0; i--) {
            unsigned j = (unsigned)(tp_next() % (i + 1));
            unsigned char t = tp.hit[i];

            tp.hit[i] = tp.hit[j];
            tp.hit[j] = t;
        }
        tp.block = blk;
    }
    return tp.hit[(n - 1) % 100];
}

/* submit_sm: walk, cross-check, inject faults, answer. */
static void
handle_submit(struct conn *c, const uint8_t *pdu, size_t len)
{
    struct submit s;
    uint8_t b[PACK_MAX];
    uint32_t status, seq = be32(pdu + 12);
    char id[32] = "";
    int lib_ok = -1;
    uint64_t n, no = 0;
    int now = 0;

    if (!(c->bound & CAN_TX)) {
        st.bad_state++;
        emit_resp(c, b, pack_resp(b, SUBMIT_SM_RESP, ESME_RINVBNDSTS, seq,
                                  NULL), 1);
        return;
    }
    if ((status = parse_submit(&s, pdu, len)) != 0) {
        st.bad_pdus++;
        emit_resp(c, b, pack_resp(b, SUBMIT_SM_RESP, status, seq, NULL), 1);
        return;
    }
    if (!opt.no_lib_check && s.lib_safe) {
        static submit_sm_t u;

        memset(&u, 0, sizeof u);
        lib_ok = smpp34_unpack(SUBMIT_SM, &u, pdu, (int)len) == 0;
        destroy_tlv(u.tlv);
        if (!lib_ok)
            st.lib_unpack_fail++;
    }
    n = ++st.submits;
    if ((opt.window && c->dq_submits >= opt.window) ||
        c->dq_len >= opt.max_queue) {
        /* a full window is answered at once, ahead of the slow queue */
        status = ESME_RMSGQFUL;
        st.window_full++;
        now = 1;
    } else if (opt.no_resp_every && n % opt.no_resp_every == 0) {
        st.swallowed++;
        log_submit(c, &s, -1, NULL, lib_ok);
        return;
    } else if ((opt.throttle_every && n % opt.throttle_every == 0) ||
               throttle_pick(n)) {
        status = ESME_RTHROTTLED;
        st.throttled++;
    } else if (opt.reject_every && n % opt.reject_every == 0) {
        status = opt.reject_status;
        st.rejected++;
    }
    if (status == 0) {
        no = opt.id_start + next_msgno++;
        format_id(id, sizeof id, no, opt.id_fmt);
        st.submit_ok++;
    }
    log_submit(c, &s, (long)status, id, lib_ok);
    if (status == 0)
        dlr_schedule(c, &s, no);
    if (now) {
        conn_send(c, b, pack_resp(b, SUBMIT_SM_RESP, status, seq, NULL));
        submit_answered(c);
        return;
    }
    emit_resp(c, b, pack_resp(b, SUBMIT_SM_RESP, status, seq, id), 1);
}

/* Dispatch one complete PDU. */
static void
handle_pdu(struct conn *c, const uint8_t *pdu, size_t len)
{
    uint32_t cmd = be32(pdu + 4), seq = be32(pdu + 12);
    uint8_t b[PACK_MAX];

    switch (cmd) {
    case BIND_TRANSMITTER:
    case BIND_RECEIVER:
    case BIND_TRANSCEIVER:
        handle_bind(c, pdu, len, cmd);
        break;
    case SUBMIT_SM:
        handle_submit(c, pdu, len);
        break;
    case ENQUIRE_LINK:
        st.enquire_links++;
        if (!opt.no_enquire_resp)
            emit_resp(c, b, pack_resp(b, ENQUIRE_LINK_RESP, 0, seq, NULL), 0);
        break;
    case ENQUIRE_LINK_RESP:
        st.enquire_link_resps++;
        break;
    case UNBIND:
        st.unbinds++;
        c->bound = 0;
        emit_resp(c, b, pack_resp(b, UNBIND_RESP, 0, seq, NULL), 0);
        c->close_idle = 1;
        break;
    case UNBIND_RESP:
        c->bound = 0;
        c->close_idle = 1;
        break;
    case DELIVER_SM_RESP:
        st.deliver_resps++;
        break;
    case GENERIC_NACK:
        st.nacks_recv++;
        break;
    default:
        /* unknown, or a valid command this fake does not implement */
        st.unknown_cmds++;
        send_nack(c, ESME_RINVCMDID, seq);
        break;
    }
}

/* Take complete PDUs off the read buffer. */
static void
conn_process(struct conn *c)
{
    size_t off = 0;

    while (!c->closing && !c->drain_close && c->rlen - off >= 4) {
        uint32_t len = be32(c->rbuf + off);

        if (len < HDR_LEN || len > opt.max_pdu) {
            /* cannot resynchronise: nack and hang up */
            uint32_t seq = c->rlen - off >= HDR_LEN ? be32(c->rbuf + off + 12)
                                                    : 0;

            st.bad_lengths++;
            send_nack(c, ESME_RINVCMDLEN, seq);
            conn_close_drained(c);
            off = c->rlen;
            break;
        }
        if (c->rlen - off < len)
            break;
        handle_pdu(c, c->rbuf + off, len);
        off += len;
        if (c->drop_now || (c->close_idle && c->dq_head == NULL)) {
            conn_close_drained(c);  /* what follows is not answered */
            off = c->rlen;
        }
    }
    if (off > 0) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
}

/* ---- connections --------------------------------------------------------- */

/* Read into the free tail of the connection's fixed buffer. */
static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct conn *c = container_of(h, struct conn, tcp);

    (void)suggested;
    b->base = (char *)c->rbuf + c->rlen;
    b->len = c->rcap - c->rlen;
}

/* Bytes from the peer: take PDUs off, answer in one batch. */
static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = container_of(s, struct conn, tcp);

    (void)b;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->rlen += (size_t)nread;
    st.bytes_in += (uint64_t)nread;
    conn_process(c);
    conn_flush(c);
}

/* Start (or restart) reading from c. */
static void
conn_resume_read(struct conn *c)
{
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

/* Free c after the last of its two handles has closed. */
static void
on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct delayed *d;

    if (--c->handles > 0)
        return;
    while ((d = c->dq_head) != NULL) {
        c->dq_head = d->next;
        free(d);
    }
    buf_free(&c->out);
    free(c->rbuf);
    free(c);
}

/* Close c now; memory goes in on_conn_closed. */
static void
conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    nconns--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

/* Free a refused connection's handle. */
static void
on_refused_closed(uv_handle_t *h)
{
    free(h);
}

/* Accept a connection, or refuse it beyond --max-conns. */
static void
on_connection(uv_stream_t *srv, int status)
{
    struct conn *c;

    if (status < 0)
        return;
    if (nconns >= opt.max_conns || stopping) {
        uv_tcp_t *t = malloc(sizeof *t);

        st.refused++;
        if (t == NULL || uv_tcp_init(loop, t) < 0) {
            free(t);
            return;
        }
        if (uv_accept(srv, (uv_stream_t *)t) < 0) {
            uv_close((uv_handle_t *)t, on_refused_closed);
            return;
        }
        uv_close((uv_handle_t *)t, on_refused_closed);
        return;
    }
    if ((c = calloc(1, sizeof *c)) == NULL)
        return;
    c->rcap = opt.max_pdu + 65536;
    if ((c->rbuf = malloc(c->rcap)) == NULL) {
        free(c);
        return;
    }
    buf_init(&c->out, OUT_FLUSH + PACK_MAX * 4);
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->id = next_conn_id++;
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    nconns++;
    st.connections++;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    conn_resume_read(c);
}

/* ---- enquire_link from our side ------------------------------------------ */

/* --enquire-ms: an enquire_link to every bound ESME. */
static void
on_enq_timer(uv_timer_t *t)
{
    uint8_t b[PACK_MAX];

    (void)t;
    for (struct conn *c = conns; c; c = c->next)
        if (c->bound) {
            conn_send(c, b, pack_resp(b, ENQUIRE_LINK, 0, conn_seq(c), NULL));
            conn_flush(c);
        }
}

/* ---- control lines on stdin ---------------------------------------------- */

/* The counters as one JSON line on stdout. */
static void
print_stats(void)
{
    printf("{\"binds\":%llu,\"bind_fails\":%llu,\"submits\":%llu,"
           "\"submit_ok\":%llu,\"throttled\":%llu,\"rejected\":%llu,"
           "\"swallowed\":%llu,\"window_full\":%llu,\"bad_state\":%llu,"
           "\"bad_pdus\":%llu,\"lib_unpack_fail\":%llu,\"dlrs\":%llu,"
           "\"dlr_dropped\":%llu,\"dlrs_queued\":%zu,\"deliver_resps\":%llu,"
           "\"mos\":%llu,\"enquire_links\":%llu,\"enquire_link_resps\":%llu,"
           "\"unbinds\":%llu,\"nacks_sent\":%llu,\"nacks_recv\":%llu,"
           "\"unknown_cmds\":%llu,\"bad_lengths\":%llu,\"connections\":%llu,"
           "\"open\":%u,\"refused\":%llu,\"drops\":%llu,\"silenced\":%llu,"
           "\"bytes_in\":%llu,\"bytes_out\":%llu}\n",
           (unsigned long long)st.binds, (unsigned long long)st.bind_fails,
           (unsigned long long)st.submits, (unsigned long long)st.submit_ok,
           (unsigned long long)st.throttled, (unsigned long long)st.rejected,
           (unsigned long long)st.swallowed,
           (unsigned long long)st.window_full,
           (unsigned long long)st.bad_state, (unsigned long long)st.bad_pdus,
           (unsigned long long)st.lib_unpack_fail,
           (unsigned long long)st.dlrs, (unsigned long long)st.dlr_dropped,
           dq_len, (unsigned long long)st.deliver_resps,
           (unsigned long long)st.mos, (unsigned long long)st.enquire_links,
           (unsigned long long)st.enquire_link_resps,
           (unsigned long long)st.unbinds, (unsigned long long)st.nacks_sent,
           (unsigned long long)st.nacks_recv,
           (unsigned long long)st.unknown_cmds,
           (unsigned long long)st.bad_lengths,
           (unsigned long long)st.connections, nconns,
           (unsigned long long)st.refused, (unsigned long long)st.drops,
           (unsigned long long)st.silenced, (unsigned long long)st.bytes_in,
           (unsigned long long)st.bytes_out);
    fflush(stdout);
}

/* UTF-8 text to an SMS body: GSM 03.38 (one septet per octet) when it is
 * plain ASCII that GSM has, else UTF-16BE. Returns the length. */
static size_t
mo_encode(uint8_t *dst, size_t cap, const char *s, uint8_t *dc)
{
    static const char ext_from[] = "^{}\\[~]|";
    static const uint8_t ext_to[] = { 0x14, 0x28, 0x29, 0x2F, 0x3C, 0x3D,
                                      0x3E, 0x40 };
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    int gsm = 1;

    for (; *p; p++)
        if (*p >= 0x80 || *p == '`' || (*p < 0x20 && *p != '\n' && *p != '\r'))
            gsm = 0;
    *dc = gsm ? 0x00 : 0x08;
    for (p = (const unsigned char *)s; *p && n + 4 <= cap;) {
        if (gsm) {
            const char *e = *p ? strchr(ext_from, *p) : NULL;

            if (e) {
                dst[n++] = 0x1B;
                dst[n++] = ext_to[e - ext_from];
            } else {
                dst[n++] = *p == '@' ? 0x00 : *p == '$' ? 0x02
                         : *p == '_' ? 0x11 : *p;
            }
            p++;
            continue;
        }
        {   /* UTF-8 -> UTF-16BE; a bad byte becomes U+FFFD */
            uint32_t cp = 0xFFFD;
            size_t k = 1;

            if (*p < 0x80)
                cp = *p;
            else if ((*p & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80)
                cp = (uint32_t)(*p & 0x1F) << 6 | (p[1] & 0x3F), k = 2;
            else if ((*p & 0xF0) == 0xE0 && (p[1] & 0xC0) == 0x80 &&
                     (p[2] & 0xC0) == 0x80)
                cp = (uint32_t)(*p & 0x0F) << 12 |
                     (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F), k = 3;
            else if ((*p & 0xF8) == 0xF0 && (p[1] & 0xC0) == 0x80 &&
                     (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80)
                cp = (uint32_t)(*p & 0x07) << 18 |
                     (uint32_t)(p[1] & 0x3F) << 12 |
                     (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F), k = 4;
            if (cp > 0xFFFF) {
                cp -= 0x10000;
                dst[n++] = (uint8_t)(0xD8 | (cp >> 18));
                dst[n++] = (uint8_t)(cp >> 10);
                cp = 0xDC00 | (cp & 0x3FF);
            }
            dst[n++] = (uint8_t)(cp >> 8);
            dst[n++] = (uint8_t)cp;
            p += k;
        }
    }
    return n;
}

/* TON/NPI for an address: +digits international, digits unknown/ISDN,
 * anything else alphanumeric. Strips the '+'. */
static const char *
addr_kind(const char *a, uint8_t *ton, uint8_t *npi)
{
    const char *d = a[0] == '+' ? a + 1 : a;

    if (*d && strspn(d, "0123456789") == strlen(d)) {
        *ton = a[0] == '+' ? TON_International : TON_Unknown;
        *npi = NPI_ISDN_E163_E164;
        return d;
    }
    *ton = TON_Alphanumeric;
    *npi = NPI_Unknown;
    return a;
}

/* mo FROM[>TO] TEXT: a deliver_sm to every receiver. */
static int
cmd_mo(char *args)
{
    char *from = args, *to = (char *)opt.mo_to, *text, *gt;
    uint8_t body[MAX_TLV_SIZE + 8], dc, sft, sfn, dtt, dtn;
    uint8_t b[PACK_MAX];
    const char *src, *dst;
    size_t n, pk;
    int sent = 0;

    if ((text = strchr(args, ' ')) == NULL)
        return -1;
    *text++ = '\0';
    if ((gt = strchr(from, '>')) != NULL) {
        *gt = '\0';
        to = gt + 1;
    }
    if (strlen(from) > 20 || strlen(to) > 20)
        return -1;
    n = mo_encode(body, sizeof body - 8, text, &dc);
    src = addr_kind(from, &sft, &sfn);
    dst = addr_kind(to, &dtt, &dtn);
    for (struct conn *c = conns; c; c = c->next) {
        if (c->closing || !(c->bound & CAN_RX))
            continue;
        if ((pk = pack_deliver(b, conn_seq(c), NULL, src, dst, sft, sfn, dtt,
                               dtn, dc, body, n)) == 0)
            return -1;
        conn_send(c, b, pk);
        conn_flush(c);
        sent++;
        st.mos++;
    }
    return sent;
}

/* dlr ID [STAT]: a receipt for any id to one receiver. */
static int
cmd_dlr(char *args)
{
    char *stat = strchr(args, ' '), *end;
    struct dlr d;
    unsigned long long v;

    if (stat)
        *stat++ = '\0';
    memset(&d, 0, sizeof d);
    /* the id is given in --dlr-id-format's notation, as a number */
    errno = 0;
    v = strtoull(args, &end, (opt.dlr_id_fmt_set ? opt.dlr_id_fmt
                                                 : opt.id_fmt) <= ID_HEX8
                                 ? 16 : 10);
    if (errno || end == args || *end)
        return -1;
    d.msgno = v;
    snprintf(d.src, sizeof d.src, "%s", "0");
    snprintf(d.dst, sizeof d.dst, "%s", opt.mo_to);
    d.submitted = time(NULL);
    d.stat = stat && *stat ? stat : opt.dlr_stats[0];
    if (strlen(d.stat) > 7)
        return -1;
    if (receiver_for(NULL, NULL) == NULL)
        return 0;
    if (dlr_send(&d, NULL) < 0)
        return -1;
    for (struct conn *c = conns; c; c = c->next)
        conn_flush(c);
    return 1;
}

/* raw HEX: these bytes, unframed, to every connection. */
static int
cmd_raw(const char *hex)
{
    static const char digits[] = "0123456789abcdef";
    uint8_t bytes[LINE_MAX_LEN / 2];
    size_t n = 0, i;
    int sent = 0, half = -1;

    for (i = 0; hex[i]; i++) {     /* hex digits; spaces are ignored */
        const char *d = strchr(digits, tolower((unsigned char)hex[i]));

        if (hex[i] == ' ')
            continue;
        if (d == NULL || n >= sizeof bytes)
            return -1;
        if (half < 0) {
            half = (int)(d - digits);
        } else {
            bytes[n++] = (uint8_t)(half << 4 | (int)(d - digits));
            half = -1;
        }
    }
    if (half >= 0 || n == 0)
        return -1;
    for (struct conn *c = conns; c; c = c->next) {
        if (c->closing)
            continue;
        conn_send(c, bytes, n);
        conn_flush(c);
        sent++;
    }
    return sent;
}

/* One control line from stdin; answers on stdout. */
static void
control_line(char *s)
{
    char *arg = strchr(s, ' ');
    int n = 0;

    if (arg)
        *arg++ = '\0';
    if (strcmp(s, "stats") == 0) {
        print_stats();
        return;
    } else if (strcmp(s, "mo") == 0 && arg) {
        n = cmd_mo(arg);
    } else if (strcmp(s, "dlr") == 0 && arg) {
        n = cmd_dlr(arg);
    } else if (strcmp(s, "raw") == 0 && arg) {
        n = cmd_raw(arg);
    } else if (strcmp(s, "unbind") == 0) {
        uint8_t b[PACK_MAX];

        for (struct conn *c = conns; c; c = c->next)
            if (!c->closing && c->bound) {
                conn_send(c, b, pack_resp(b, UNBIND, 0, conn_seq(c), NULL));
                conn_flush(c);
                n++;
            }
    } else if (strcmp(s, "drop") == 0) {
        while (conns) {
            st.drops++;
            conn_close(conns);
            n++;
        }
    } else if (strcmp(s, "silent") == 0 && arg &&
               (strcmp(arg, "on") == 0 || strcmp(arg, "off") == 0)) {
        silent = strcmp(arg, "on") == 0;
        n = silent;
    } else if (strcmp(s, "throttle") == 0 && arg) {
        unsigned long long v;

        if (num(arg, 100, &v) < 0) {
            n = -1;
        } else {
            opt.throttle_percent = (unsigned)v;
            tp.block = 0;       /* redraw the pattern at once */
            n = (int)v;
        }
    } else if (strcmp(s, "quit") == 0) {
        printf("ok quit\n");
        fflush(stdout);
        stop_all();
        return;
    } else if (*s == '\0') {
        return;
    } else {
        n = -1;
    }
    if (n < 0)
        printf("error %s\n", s);
    else
        printf("ok %s %d\n", s, n);
    fflush(stdout);
}

/* stdin is read in small chunks. */
static void
on_in_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    static char chunk[4096];

    (void)h;
    (void)suggested;
    b->base = chunk;
    b->len = sizeof chunk;
}

/* Split stdin into lines (capped); EOF stops the fake. */
static void
on_in_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    static int skipping;

    (void)s;
    if (nread < 0) {            /* EOF: whoever drives us is gone */
        stop_all();
        return;
    }
    for (ssize_t i = 0; i < nread && !stopping; i++) {
        char ch = b->base[i];

        if (ch == '\n') {
            if (!skipping) {
                if (line.len && line.data[line.len - 1] == '\r')
                    line.data[--line.len] = '\0';
                control_line((char *)buf_cstr(&line));
            }
            buf_reset(&line);
            skipping = 0;
        } else if (!skipping && buf_putc(&line, ch) < 0) {
            printf("error line too long\n");
            fflush(stdout);
            buf_reset(&line);
            skipping = 1;
        }
    }
}

/* ---- start and stop ---------------------------------------------------- */

/* Nothing to free: the handle is static. */
static void
on_closed_quiet(uv_handle_t *h)
{
    (void)h;
}

/* Print the stats and close every handle; uv_run then returns. */
static void
stop_all(void)
{
    struct dlr *d;

    if (stopping)
        return;
    stopping = 1;
    print_stats();
    while (conns)
        conn_close(conns);
    while ((d = dq_head) != NULL) {
        dq_head = d->next;
        free(d);
    }
    dq_tail = NULL;
    dq_len = 0;
    uv_close((uv_handle_t *)&server, on_closed_quiet);
    uv_close((uv_handle_t *)&sig_term, on_closed_quiet);
    uv_close((uv_handle_t *)&sig_int, on_closed_quiet);
    uv_close((uv_handle_t *)&dlr_timer, on_closed_quiet);
    uv_close((uv_handle_t *)&life_timer, on_closed_quiet);
    uv_close((uv_handle_t *)&enq_timer, on_closed_quiet);
    if (have_in)
        uv_close((uv_handle_t *)&in, on_closed_quiet);
}

/* SIGTERM/SIGINT: stop. */
static void
on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    stop_all();
}

/* --lifetime-s is over: stop. */
static void
on_lifetime(uv_timer_t *t)
{
    (void)t;
    fprintf(stderr, "fake_smsc: lifetime of %u s is over\n", opt.lifetime_s);
    stop_all();
}

/* The option summary. */
static void
usage(FILE *f)
{
    fputs(
"usage: fake_smsc --port N [options]     (listens on 127.0.0.1 only)\n"
"  --port N              0 picks a free port; prints\n"
"                        'listening on 127.0.0.1:PORT'\n"
"  --system-id S         required system_id (else any; wrong: 0x0D)\n"
"  --password P          required password (else any; wrong: 0x0E)\n"
"  --id-format F         message ids: hex (default), HEX, hex8, dec, dec10\n"
"  --id-start N          first message id number (default 1)\n"
"  --dlr-delay-ms D      send receipts D ms after the submit_sm_resp\n"
"                        (to submits with registered_delivery set)\n"
"  --dlr-always          receipts even without registered_delivery\n"
"  --dlr-form F          both (text + TLVs, default), text, tlv, payload\n"
"  --dlr-stat LIST       stat values, cycled: DELIVRD (default), UNDELIV..\n"
"  --dlr-err N           err: field and network_error_code (default 0)\n"
"  --dlr-id-format F     the id notation in receipts (default: --id-format)\n"
"  --dlr-before-resp     send each receipt before its submit_sm_resp\n"
"  --throttle-every N    every Nth submit_sm: ESME_RTHROTTLED (0x58)\n"
"  --throttle-percent P  exactly P of every 100 submit_sm: 0x58, at\n"
"                        shuffled positions (stdin 'throttle P' changes P)\n"
"  --throttle-seed N     seed of that shuffle (default 1)\n"
"  --reject-every N      every Nth submit_sm: --reject-status\n"
"  --reject-status S     default 0x45 (ESME_RSUBMITFAIL)\n"
"  --no-resp-every N     every Nth submit_sm gets no response\n"
"  --drop-after N        close a connection after its Nth submit response\n"
"  --no-enquire-resp     never answer enquire_link\n"
"  --window N            at most N submit responses held by --slow-ms per\n"
"                        connection; beyond: ESME_RMSGQFUL (0x14) at once\n"
"  --slow-ms D           delay every response by D ms\n"
"  --enquire-ms D        send enquire_link to bound ESMEs every D ms\n"
"  --max-pdu BYTES       command_length cap (default 65536)\n"
"  --max-conns N         connections beyond N are closed (default 64)\n"
"  --max-queue N         queued receipts / slow responses cap (100000)\n"
"  --log FILE            one JSON line per submit_sm received\n"
"  --mo-to ADDR          destination of 'mo' lines (default 12345)\n"
"  --lifetime-s N        exit after N s (default 900; 0: never)\n"
"  --no-lib-check        skip the libsmpp34 unpack cross-check\n"
"stdin: stats | mo FROM[>TO] TEXT | dlr ID [STAT] | raw HEX | unbind |\n"
"       drop | silent on|off | throttle P | quit\n"
"       (SIGTERM/SIGINT: stats, exit)\n",
          f);
}

/* An unsigned number (decimal, 0x hex) up to max. */
static int
num(const char *s, unsigned long long max, unsigned long long *v)
{
    char *end;

    errno = 0;
    *v = strtoull(s, &end, 0);
    return errno || end == s || *end || *v > max ? -1 : 0;
}

/* The id notation called s. */
static int
id_format(const char *s, enum id_fmt *f)
{
    static const char *const names[] = { "hex", "HEX", "hex8", "dec",
                                         "dec10" };

    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0) {
            *f = (enum id_fmt)i;
            return 0;
        }
    return -1;
}

/* Fill opt from argv; -1 on a bad option. */
static int
parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        { "port", 1, 0, 'p' },           { "system-id", 1, 0, 's' },
        { "password", 1, 0, 'w' },       { "id-format", 1, 0, 'i' },
        { "id-start", 1, 0, 'I' },       { "dlr-delay-ms", 1, 0, 'd' },
        { "dlr-always", 0, 0, 'A' },     { "dlr-form", 1, 0, 'F' },
        { "dlr-stat", 1, 0, 'S' },       { "dlr-err", 1, 0, 'E' },
        { "dlr-id-format", 1, 0, 'J' },  { "dlr-before-resp", 0, 0, 'B' },
        { "throttle-every", 1, 0, 't' }, { "reject-every", 1, 0, 'r' },
        { "reject-status", 1, 0, 'R' },  { "no-resp-every", 1, 0, 'n' },
        { "drop-after", 1, 0, 'D' },     { "no-enquire-resp", 0, 0, 'N' },
        { "window", 1, 0, 'W' },         { "slow-ms", 1, 0, 'l' },
        { "enquire-ms", 1, 0, 'e' },     { "max-pdu", 1, 0, 'm' },
        { "max-conns", 1, 0, 'c' },      { "max-queue", 1, 0, 'q' },
        { "log", 1, 0, 'L' },            { "mo-to", 1, 0, 'o' },
        { "lifetime-s", 1, 0, 'T' },     { "no-lib-check", 0, 0, 'C' },
        { "throttle-percent", 1, 0, 'P' }, { "throttle-seed", 1, 0, 'X' },
        { "help", 0, 0, 'h' },           { 0, 0, 0, 0 },
    };
    static char stats_copy[256];
    unsigned long long v;
    int ch, port_set = 0;
    char *tok, *save;

    opt.dlr_stats[0] = "DELIVRD";
    opt.ndlr_stats = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'p':
            if (num(optarg, 65535, &v) < 0)
                return -1;
            opt.port = (int)v;
            port_set = 1;
            break;
        case 's':
            opt.system_id = optarg;
            break;
        case 'w':
            opt.password = optarg;
            break;
        case 'i':
            if (id_format(optarg, &opt.id_fmt) < 0)
                return -1;
            break;
        case 'J':
            if (id_format(optarg, &opt.dlr_id_fmt) < 0)
                return -1;
            opt.dlr_id_fmt_set = 1;
            break;
        case 'I':
            if (num(optarg, UINT64_MAX / 2, &v) < 0)
                return -1;
            opt.id_start = v;
            break;
        case 'd':
            if (num(optarg, 86400000, &v) < 0)
                return -1;
            opt.dlr_delay_ms = (long)v;
            break;
        case 'A':
            opt.dlr_always = 1;
            break;
        case 'B':
            opt.dlr_before_resp = 1;
            if (opt.dlr_delay_ms < 0)
                opt.dlr_delay_ms = 0;
            break;
        case 'F':
            if (strcmp(optarg, "both") == 0)
                opt.dlr_form = FORM_BOTH;
            else if (strcmp(optarg, "text") == 0)
                opt.dlr_form = FORM_TEXT;
            else if (strcmp(optarg, "tlv") == 0)
                opt.dlr_form = FORM_TLV;
            else if (strcmp(optarg, "payload") == 0)
                opt.dlr_form = FORM_PAYLOAD;
            else
                return -1;
            break;
        case 'S':
            snprintf(stats_copy, sizeof stats_copy, "%s", optarg);
            opt.ndlr_stats = 0;
            for (tok = strtok_r(stats_copy, ",", &save); tok && opt.ndlr_stats
                 < 16; tok = strtok_r(NULL, ",", &save)) {
                if (strlen(tok) > 7)
                    return -1;
                opt.dlr_stats[opt.ndlr_stats++] = tok;
            }
            if (opt.ndlr_stats == 0)
                return -1;
            break;
        case 'E':
            if (num(optarg, 65535, &v) < 0)
                return -1;
            opt.dlr_err = (unsigned)v;
            break;
        case 't': case 'r': case 'n': case 'D': case 'W': case 'l':
        case 'e': case 'c': case 'T':
            if (num(optarg, 1000000000, &v) < 0)
                return -1;
            *(ch == 't' ? &opt.throttle_every : ch == 'r' ? &opt.reject_every
              : ch == 'n' ? &opt.no_resp_every : ch == 'D' ? &opt.drop_after
              : ch == 'W' ? &opt.window : ch == 'l' ? &opt.slow_ms
              : ch == 'e' ? &opt.enquire_ms : ch == 'c' ? &opt.max_conns
              : &opt.lifetime_s) = (unsigned)v;
            break;
        case 'P':
            if (num(optarg, 100, &v) < 0)
                return -1;
            opt.throttle_percent = (unsigned)v;
            break;
        case 'X':
            if (num(optarg, UINT64_MAX, &v) < 0)
                return -1;
            opt.throttle_seed = v;
            break;
        case 'R':
            if (num(optarg, 0xFFFFFFFFull, &v) < 0 || v == 0)
                return -1;
            opt.reject_status = (uint32_t)v;
            break;
        case 'N':
            opt.no_enquire_resp = 1;
            break;
        case 'm':
            if (num(optarg, 16u << 20, &v) < 0 || v < 64)
                return -1;
            opt.max_pdu = (size_t)v;
            break;
        case 'q':
            if (num(optarg, 100000000, &v) < 0 || v == 0)
                return -1;
            opt.max_queue = (size_t)v;
            break;
        case 'L':
            opt.log_path = optarg;
            break;
        case 'o':
            if (strlen(optarg) > 20)
                return -1;
            opt.mo_to = optarg;
            break;
        case 'C':
            opt.no_lib_check = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    return port_set && optind == argc && opt.max_conns > 0 ? 0 : -1;
}

/* Listen, print the port, run the loop, check it closed cleanly. */
int
main(int argc, char **argv)
{
    struct sockaddr_in addr;
    struct sockaddr_storage ss;
    int namelen = sizeof ss, rc;
    uv_handle_type t;

    if (parse_args(argc, argv) < 0) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (opt.log_path && (logf = fopen(opt.log_path, "w")) == NULL) {
        fprintf(stderr, "fake_smsc: %s: %s\n", opt.log_path, strerror(errno));
        return 1;
    }
    loop = uv_default_loop();
    buf_init(&line, LINE_MAX_LEN);
    uv_tcp_init(loop, &server);
    uv_ip4_addr("127.0.0.1", opt.port, &addr);
    if ((rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&server, 128, on_connection)) < 0 ||
        (rc = uv_tcp_getsockname(&server, (struct sockaddr *)&ss,
                                 &namelen)) < 0) {
        fprintf(stderr, "fake_smsc: 127.0.0.1:%d: %s\n", opt.port,
                uv_strerror(rc));
        return 1;
    }
    printf("listening on 127.0.0.1:%d\n",
           ntohs(((struct sockaddr_in *)&ss)->sin_port));
    fflush(stdout);

    uv_signal_init(loop, &sig_term);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_timer_init(loop, &dlr_timer);
    uv_timer_init(loop, &life_timer);
    uv_timer_init(loop, &enq_timer);
    if (opt.lifetime_s)
        uv_timer_start(&life_timer, on_lifetime, opt.lifetime_s * 1000ull, 0);
    if (opt.enquire_ms)
        uv_timer_start(&enq_timer, on_enq_timer, opt.enquire_ms,
                       opt.enquire_ms);
    t = uv_guess_handle(0);
    if (t == UV_TTY && uv_tty_init(loop, &in.tty, 0, 1) == 0)
        have_in = 1;
    else if (t == UV_NAMED_PIPE && uv_pipe_init(loop, &in.pipe, 0) == 0) {
        if (uv_pipe_open(&in.pipe, 0) == 0)
            have_in = 1;
        else
            uv_close((uv_handle_t *)&in.pipe, NULL);
    }
    if (have_in)
        uv_read_start((uv_stream_t *)&in, on_in_alloc, on_in_read);

    uv_run(loop, UV_RUN_DEFAULT);
    buf_free(&line);
    if (logf)
        fclose(logf);
    rc = uv_loop_close(loop);
    if (rc != 0) {
        fprintf(stderr, "fake_smsc: uv_loop_close: %s\n", uv_strerror(rc));
        return 1;
    }
    return 0;
}

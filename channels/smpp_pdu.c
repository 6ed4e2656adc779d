/*
 * smpp_pdu.c -- the SMPP channel's PDU layer, without I/O: framing,
 * validating walks over the bodies an SMSC sends us (deliver_sm, data_sm,
 * the responses), delivery receipt text, message id normalisation and
 * status names. Kept apart from smpp.c so that it can be unit-tested and
 * fuzzed on its own (tests/unit/test_smpp_pdu.c, tests/fuzz/).
 *
 * Inbound PDUs are decoded here and never handed to libsmpp34: the walk
 * that proves a body safe for the library already reads every field, and
 * the library rejects receipts real SMSCs send (network_error_code not 3
 * octets, addresses over 21 octets), reads integer TLVs at fixed sizes
 * whatever their length says and leaks on malformed TLVs. libsmpp34
 * packs what we send (smpp.c); the fuzzer and the unit test use its
 * unpack as a second opinion on the bodies it can read.
 */
#include "smpp_int.h"
#include "sms_encode.h"

#include "../common/buf.h"
#include "../common/err.h"

#include <stdio.h>
#include <string.h>

uint32_t
smpp_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

void
smpp_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* See smpp_int.h: the 4-byte length is checked before anything. */
int
smpp_frame(const uint8_t *p, size_t n, size_t max_pdu, struct smpp_hdr *h)
{
    uint32_t len;

    if (n < 4)
        return 0;
    len = smpp_get32(p);
    if (len < SMPP_HDR_LEN || len > max_pdu) {
        memset(h, 0, sizeof *h);
        h->len = len;
        if (n >= 8)
            h->cmd = smpp_get32(p + 4);
        if (n >= SMPP_HDR_LEN)
            h->seq = smpp_get32(p + 12);
        return GW_EPARSE;
    }
    if (n < len)
        return 0;
    h->len = len;
    h->cmd = smpp_get32(p + 4);
    h->status = smpp_get32(p + 8);
    h->seq = smpp_get32(p + 12);
    return 1;
}

/* See smpp_int.h. */
int
smpp_cmd_known(uint32_t cmd)
{
    uint32_t c = cmd & ~SMPP_RESP;

    if (cmd == SMPP_GENERIC_NACK)
        return 1;
    switch (c) {
    case SMPP_BIND_RECEIVER: case SMPP_BIND_TRANSMITTER: case SMPP_QUERY_SM:
    case SMPP_SUBMIT_SM: case SMPP_DELIVER_SM: case SMPP_UNBIND:
    case SMPP_REPLACE_SM: case SMPP_CANCEL_SM: case SMPP_BIND_TRANSCEIVER:
    case SMPP_ENQUIRE_LINK: case SMPP_SUBMIT_MULTI: case SMPP_DATA_SM:
        return 1;
    case SMPP_OUTBIND: case SMPP_ALERT_NOTIFICATION:
        return cmd == c;        /* requests without a response */
    default:
        return 0;
    }
}

/* See smpp_int.h. */
size_t
smpp_pack_header(uint8_t *b, uint32_t cmd, uint32_t status, uint32_t seq,
                 int nul_body)
{
    size_t n = SMPP_HDR_LEN + (nul_body ? 1 : 0);

    smpp_put32(b, (uint32_t)n);
    smpp_put32(b + 4, cmd);
    smpp_put32(b + 8, status);
    smpp_put32(b + 12, seq);
    if (nul_body)
        b[SMPP_HDR_LEN] = 0;
    return n;
}

/* See smpp_int.h. */
int
smpp_resp_id(const uint8_t *pdu, size_t len, size_t max, char *id,
             size_t cap)
{
    const uint8_t *body = pdu + SMPP_HDR_LEN, *z;
    size_t blen = len > SMPP_HDR_LEN ? len - SMPP_HDR_LEN : 0, n;

    id[0] = '\0';
    if (blen == 0)
        return 0;
    if ((z = memchr(body, 0, blen < max ? blen : max)) != NULL)
        n = (size_t)(z - body);
    else if (blen < max)
        n = blen;               /* no terminator: the whole body */
    else
        return GW_EPARSE;
    if (n >= cap)
        return GW_EPARSE;
    memcpy(id, body, n);
    id[n] = '\0';
    return 0;
}

/* ---- deliver_sm / data_sm ---- */

struct rd {
    const uint8_t *p, *end;
};

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

/* A big-endian unsigned of 1..4 octets. */
static uint32_t
be_uint(const uint8_t *p, size_t n)
{
    uint32_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* One TLV of a deliver_sm / data_sm: keep what we read. */
static void
take_tlv(struct smpp_deliver *d, unsigned tag, const uint8_t *v, size_t l)
{
    const uint8_t *z;

    d->ntlv++;
    switch (tag) {
    case SMPP_TLV_RECEIPTED_MESSAGE_ID:
        if (d->rmid)
            break;
        if ((z = memchr(v, 0, l)) != NULL)
            l = (size_t)(z - v);
        if (l > 0) {
            d->rmid = v;
            d->rmid_len = l;
        }
        break;
    case SMPP_TLV_MESSAGE_STATE:
        if (!d->has_state && l >= 1 && l <= 4 && be_uint(v, l) <= 0xFF) {
            d->has_state = 1;
            d->message_state = (uint8_t)be_uint(v, l);
        }
        break;
    case SMPP_TLV_NETWORK_ERROR_CODE:
        if (!d->neterr && l > 0) {
            d->neterr = v;
            d->neterr_len = l;
        }
        break;
    case SMPP_TLV_MESSAGE_PAYLOAD:
        if (!d->payload) {
            d->payload = v;
            d->payload_len = l;
        }
        break;
    case SMPP_TLV_SAR_MSG_REF_NUM:
        if (l == 2) {
            d->sar_ref = (uint16_t)be_uint(v, 2);
            d->has_sar |= 1;
        }
        break;
    case SMPP_TLV_SAR_TOTAL_SEGMENTS:
        if (l == 1) {
            d->sar_total = v[0];
            d->has_sar |= 2;
        }
        break;
    case SMPP_TLV_SAR_SEGMENT_SEQNUM:
        if (l == 1) {
            d->sar_seq = v[0];
            d->has_sar |= 4;
        }
        break;
    default:
        break;
    }
}

/* See smpp_int.h: the mandatory fields, then the TLVs. */
uint32_t
smpp_parse_deliver(struct smpp_deliver *d, const uint8_t *pdu, size_t len)
{
    struct rd r = { pdu + SMPP_HDR_LEN, pdu + len };
    uint8_t skip;
    const char *ignored;

    memset(d, 0, sizeof *d);
    if (len < SMPP_HDR_LEN)
        return SMPP_RINVCMDLEN;
    d->cmd = smpp_get32(pdu + 4);
    if (rd_cstr(&r, 6, &d->service_type) < 0 ||
        rd_u8(&r, &d->src_ton) < 0 || rd_u8(&r, &d->src_npi) < 0 ||
        rd_cstr(&r, 65, &d->src) < 0 ||
        rd_u8(&r, &d->dst_ton) < 0 || rd_u8(&r, &d->dst_npi) < 0 ||
        rd_cstr(&r, 65, &d->dst) < 0 ||
        rd_u8(&r, &d->esm_class) < 0)
        return SMPP_RINVMSGLEN;
    if (d->cmd == SMPP_DATA_SM) {
        if (rd_u8(&r, &d->registered_delivery) < 0 ||
            rd_u8(&r, &d->data_coding) < 0)
            return SMPP_RINVMSGLEN;
    } else {
        uint8_t sm_length;

        if (rd_u8(&r, &d->protocol_id) < 0 || rd_u8(&r, &skip) < 0 ||
            rd_cstr(&r, 17, &ignored) < 0 || rd_cstr(&r, 17, &ignored) < 0 ||
            rd_u8(&r, &d->registered_delivery) < 0 ||
            rd_u8(&r, &skip) < 0 || rd_u8(&r, &d->data_coding) < 0 ||
            rd_u8(&r, &skip) < 0 || rd_u8(&r, &sm_length) < 0 ||
            (size_t)(r.end - r.p) < sm_length)
            return SMPP_RINVMSGLEN;
        d->sm = r.p;
        d->sm_len = sm_length;
        r.p += sm_length;
    }
    while (r.p < r.end) {
        unsigned tag, l;

        if (r.end - r.p < 4)
            return SMPP_RINVOPTPARSTREAM;
        tag = (unsigned)r.p[0] << 8 | r.p[1];
        l = (unsigned)r.p[2] << 8 | r.p[3];
        if ((size_t)(r.end - r.p - 4) < l)
            return SMPP_RINVPARLEN;
        take_tlv(d, tag, r.p + 4, l);
        r.p += 4 + l;
    }
    return 0;
}

/* See smpp_int.h. */
int
smpp_is_receipt(const struct smpp_deliver *d)
{
    if (d->esm_class & (0x04 | 0x08 | 0x20))
        return 1;
    return (d->esm_class & 0x3C) == 0 && d->rmid && d->has_state;
}

/* ---- receipt text ---- */

/* Space, tab, CR or LF. */
static int
blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* ASCII lower case. */
static int
lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Case-insensitive: does p (n bytes) start with key? */
static int
starts(const char *p, size_t n, const char *key, size_t klen)
{
    if (n < klen)
        return 0;
    for (size_t i = 0; i < klen; i++)
        if (lower((unsigned char)p[i]) != key[i])
            return 0;
    return 1;
}

/* See smpp_int.h: key by key, values up to the next blank. */
int
smpp_rtext_parse(struct smpp_rtext *r, const uint8_t *p, size_t n)
{
    static const struct {
        const char *key;
        size_t      len;
        unsigned    bit;
    } keys[] = {
        { "id:", 3, SMPP_RT_ID },
        { "sub:", 4, SMPP_RT_SUB },
        { "dlvrd:", 6, SMPP_RT_DLVRD },
        { "submit date:", 12, SMPP_RT_SUBMIT_DATE },
        { "submit_date:", 12, SMPP_RT_SUBMIT_DATE },
        { "done date:", 10, SMPP_RT_DONE_DATE },
        { "done_date:", 10, SMPP_RT_DONE_DATE },
        { "stat:", 5, SMPP_RT_STAT },
        { "err:", 4, SMPP_RT_ERR },
        { "text:", 5, SMPP_RT_TEXT },
    };
    const char *s = (const char *)p;
    const uint8_t *z;
    size_t i = 0;

    memset(r, 0, sizeof *r);
    if ((z = memchr(p, 0, n)) != NULL)
        n = (size_t)(z - p);
    while (i < n) {
        size_t k, j;
        struct smpp_slice *v = NULL;

        while (i < n && blank(p[i]))
            i++;
        if (i >= n)
            break;
        for (k = 0; k < sizeof keys / sizeof keys[0]; k++)
            if (starts(s + i, n - i, keys[k].key, keys[k].len))
                break;
        if (k == sizeof keys / sizeof keys[0]) {
            while (i < n && !blank(p[i]))
                i++;
            continue;
        }
        i += keys[k].len;
        switch (keys[k].bit) {
        case SMPP_RT_ID: v = &r->id; break;
        case SMPP_RT_SUB: v = &r->sub; break;
        case SMPP_RT_DLVRD: v = &r->dlvrd; break;
        case SMPP_RT_SUBMIT_DATE: v = &r->submit_date; break;
        case SMPP_RT_DONE_DATE: v = &r->done_date; break;
        case SMPP_RT_STAT: v = &r->stat; break;
        case SMPP_RT_ERR: v = &r->err; break;
        default: v = &r->text; break;
        }
        if (keys[k].bit == SMPP_RT_TEXT) {
            j = n;              /* the rest, trailing blanks cut */
            while (j > i && blank(p[j - 1]))
                j--;
        } else {
            for (j = i; j < n && !blank(p[j]); j++)
                ;
        }
        if (!(r->fields & keys[k].bit)) {   /* the first one counts */
            r->fields |= keys[k].bit;
            v->p = s + i;
            v->n = j - i;
        }
        i = j;
    }
    if (!(r->fields & SMPP_RT_ID) || r->id.n == 0)
        return GW_EPARSE;
    return 0;
}

/* See smpp_int.h: the first five letters decide. */
enum receipt_state
smpp_stat_state(const char *w, size_t n, int *known)
{
    static const struct {
        const char        *prefix;
        enum receipt_state st;
    } words[] = {
        { "deliv", RCPT_DELIVERED }, { "undel", RCPT_UNDELIVERABLE },
        { "expir", RCPT_EXPIRED },   { "delet", RCPT_REJECTED },
        { "rejec", RCPT_REJECTED },  { "accep", RCPT_ENROUTE },
        { "enrou", RCPT_ENROUTE },   { "unkno", RCPT_UNDELIVERABLE },
        { "faile", RCPT_UNDELIVERABLE }, { "skipp", RCPT_REJECTED },
    };

    *known = 0;
    if (n >= 5)
        for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
            if (starts(w, n, words[i].prefix, 5)) {
                *known = 1;
                return words[i].st;
            }
    return RCPT_ENROUTE;
}

/* See smpp_int.h. */
enum receipt_state
smpp_msgstate_state(uint8_t v)
{
    switch (v) {
    case 2: return RCPT_DELIVERED;
    case 3: return RCPT_EXPIRED;
    case 4: return RCPT_REJECTED;        /* deleted */
    case 5: return RCPT_UNDELIVERABLE;
    case 7: return RCPT_UNDELIVERABLE;   /* unknown: a final state */
    case 8: return RCPT_REJECTED;
    case 9: return RCPT_REJECTED;        /* skipped (SMPP 5.0) */
    default: return RCPT_ENROUTE;        /* 1 enroute, 6 accepted, ... */
    }
}

/* See smpp_int.h. */
const char *
smpp_msgstate_word(uint8_t v)
{
    static const char *const words[] = {
        "UNKNOWN", "ENROUTE", "DELIVRD", "EXPIRED", "DELETED", "UNDELIV",
        "ACCEPTD", "UNKNOWN", "REJECTD", "SKIPPED",
    };

    return v < sizeof words / sizeof words[0] ? words[v] : "UNKNOWN";
}

/* See smpp_int.h. */
void
smpp_neterr_format(char *out, size_t cap, const uint8_t *p, size_t n)
{
    size_t k = 0;

    if (cap == 0)
        return;
    out[0] = '\0';
    if (n == 0)
        return;
    if (n <= 2) {
        snprintf(out, cap, "%u", (unsigned)be_uint(p, n));
    } else if (n <= 5) {
        snprintf(out, cap, "%u:%u", p[0], (unsigned)be_uint(p + 1, n - 1));
    } else {
        for (size_t i = 0; i < n && k + 3 <= cap; i++)
            k += (size_t)snprintf(out + k, cap - k, "%02x", p[i]);
    }
}

/* ---- ids ---- */

/* A hex digit? */
static int
is_hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

/* The value of a hex digit. */
static unsigned
hex_val(uint8_t c)
{
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)(lower(c) - 'a' + 10);
}

/* See smpp_int.h for the rule. */
int
smpp_id_norm(char *out, size_t cap, const uint8_t *id, size_t n,
             enum smpp_id_fmt fmt)
{
    static const char hexd[] = "0123456789ABCDEF";
    size_t i, k = 0, hex = 0, dec = 0;

    while (n > 0 && (blank(id[0]) || id[0] == 0)) {
        id++;
        n--;
    }
    while (n > 0 && (blank(id[n - 1]) || id[n - 1] == 0))
        n--;
    if (n == 0 || n > 64 || cap < SMPP_ID_MAX)
        return GW_EINVAL;
    for (i = 0; i < n; i++) {
        hex += is_hex(id[i]);
        dec += id[i] >= '0' && id[i] <= '9';
    }
    if ((fmt == SMPP_ID_HEX && hex == n) || (fmt == SMPP_ID_DEC && dec == n)) {
        /* the value in decimal: little-endian decimal digits, any size */
        uint8_t d[SMPP_ID_MAX];
        size_t nd = 1;
        unsigned base = fmt == SMPP_ID_HEX ? 16 : 10;

        d[0] = 0;
        for (i = 0; i < n; i++) {
            unsigned carry = hex_val(id[i]);

            for (size_t j = 0; j < nd; j++) {
                unsigned v = d[j] * base + carry;
                d[j] = (uint8_t)(v % 10);
                carry = v / 10;
            }
            while (carry) {
                d[nd++] = (uint8_t)(carry % 10);
                carry /= 10;
            }
        }
        while (nd > 1 && d[nd - 1] == 0)
            nd--;
        for (i = 0; i < nd; i++)
            out[i] = (char)('0' + d[nd - 1 - i]);
        out[nd] = '\0';
        return (int)nd;
    }
    if (hex == n) {
        while (n > 1 && id[0] == '0') {
            id++;
            n--;
        }
    }
    for (i = 0; i < n; i++) {
        uint8_t c = id[i];

        if (c < 0x21 || c > 0x7E || c == ',' || c == '%') {
            out[k++] = '%';
            out[k++] = hexd[c >> 4];
            out[k++] = hexd[c & 15];
        } else {
            out[k++] = (char)lower(c);
        }
    }
    out[k] = '\0';
    return (int)k;
}

/* ---- receipts and MO, decoded ---- */

/* Copy a word as printable ASCII (others become '?'). */
static void
copy_word(char *dst, size_t cap, const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n && i + 1 < cap; i++)
        dst[i] = p[i] > 0x20 && p[i] < 0x7F ? p[i] : '?';
    dst[i] = '\0';
}

/* See smpp_int.h: TLVs first, then the text. */
int
smpp_dlr_decode(struct smpp_dlr *r, const struct smpp_deliver *d,
                enum smpp_id_fmt fmt)
{
    struct smpp_rtext t;
    int have_text = 0, known;

    memset(r, 0, sizeof *r);
    if (d->sm_len > 0 && smpp_rtext_parse(&t, d->sm, d->sm_len) == 0)
        have_text = 1;
    else if (d->payload && smpp_rtext_parse(&t, d->payload,
                                            d->payload_len) == 0)
        have_text = 1;
    if (have_text)
        r->fields = t.fields;
    if (d->rmid && smpp_id_norm(r->id, sizeof r->id, d->rmid, d->rmid_len,
                                fmt) > 0)
        r->from_tlv = 1;
    else if (!have_text ||
             smpp_id_norm(r->id, sizeof r->id, (const uint8_t *)t.id.p,
                          t.id.n, fmt) <= 0)
        return GW_EPARSE;
    if (d->has_state) {
        r->state = smpp_msgstate_state(d->message_state);
        if (have_text && (t.fields & SMPP_RT_STAT) && t.stat.n)
            copy_word(r->stat, sizeof r->stat, t.stat.p, t.stat.n);
        else
            copy_word(r->stat, sizeof r->stat,
                      smpp_msgstate_word(d->message_state),
                      strlen(smpp_msgstate_word(d->message_state)));
    } else if (have_text && (t.fields & SMPP_RT_STAT)) {
        r->state = smpp_stat_state(t.stat.p, t.stat.n, &known);
        copy_word(r->stat, sizeof r->stat, t.stat.p, t.stat.n);
    } else {
        r->state = RCPT_ENROUTE;
    }
    if (d->neterr)
        smpp_neterr_format(r->err, sizeof r->err, d->neterr, d->neterr_len);
    else if (have_text && (t.fields & SMPP_RT_ERR))
        copy_word(r->err, sizeof r->err, t.err.p, t.err.n);
    return 0;
}

/* An SMPP data_coding as one sms_decode knows (0x00, 0x01, 0x03, 0x08). */
static uint8_t
decode_coding(uint8_t dc)
{
    if (dc <= 0x0F) {
        switch (dc) {
        case 0x00: return 0x00;
        case 0x01: return 0x01;
        case 0x08: return 0x08;
        default: return 0x03;           /* 8-bit, binary, Latin-*, ... */
        }
    }
    if ((dc & 0xC0) == 0x00) {          /* general data coding group */
        switch ((dc >> 2) & 3) {
        case 0: return (dc & 0x20) ? 0x03 : 0x00;   /* compressed: bytes */
        case 2: return (dc & 0x20) ? 0x03 : 0x08;
        default: return 0x03;
        }
    }
    if ((dc & 0xF0) == 0xC0 || (dc & 0xF0) == 0xD0)
        return 0x00;                    /* message waiting, GSM */
    if ((dc & 0xF0) == 0xE0)
        return 0x08;                    /* message waiting, UCS-2 */
    if ((dc & 0xF0) == 0xF0)
        return (dc & 0x04) ? 0x03 : 0x00;
    return 0x03;
}

/* See smpp_int.h. */
int
smpp_mo_text(struct buf *out, const struct smpp_deliver *d)
{
    const uint8_t *b = d->sm;
    size_t n = d->sm_len;

    if (n == 0 && d->payload) {
        b = d->payload;
        n = d->payload_len;
    }
    if ((d->esm_class & 0x40) && n > 0 && (size_t)b[0] + 1 <= n) {
        n -= (size_t)b[0] + 1;
        b += (size_t)b[0] + 1;
    }
    return sms_decode(out, decode_coding(d->data_coding), b, n);
}

/* See smpp_int.h. */
void
smpp_addr_format(char *out, size_t cap, const char *addr, uint8_t ton)
{
    size_t n = strlen(addr);

    if (cap == 0)
        return;
    if (ton == 1 && n > 0 && addr[0] != '+' &&
        strspn(addr, "0123456789") == n)
        snprintf(out, cap, "+%s", addr);
    else
        snprintf(out, cap, "%s", addr);
}

/* ---- statuses ---- */

/* See smpp_int.h. */
const char *
smpp_status_name(uint32_t st)
{
    static const struct {
        uint32_t    v;
        const char *name;
    } names[] = {
        { 0x00, "ESME_ROK" }, { 0x01, "ESME_RINVMSGLEN" },
        { 0x02, "ESME_RINVCMDLEN" }, { 0x03, "ESME_RINVCMDID" },
        { 0x04, "ESME_RINVBNDSTS" }, { 0x05, "ESME_RALYBND" },
        { 0x06, "ESME_RINVPRTFLG" }, { 0x07, "ESME_RINVREGDLVFLG" },
        { 0x08, "ESME_RSYSERR" }, { 0x0A, "ESME_RINVSRCADR" },
        { 0x0B, "ESME_RINVDSTADR" }, { 0x0C, "ESME_RINVMSGID" },
        { 0x0D, "ESME_RBINDFAIL" }, { 0x0E, "ESME_RINVPASWD" },
        { 0x0F, "ESME_RINVSYSID" }, { 0x11, "ESME_RCANCELFAIL" },
        { 0x13, "ESME_RREPLACEFAIL" }, { 0x14, "ESME_RMSGQFUL" },
        { 0x15, "ESME_RINVSERTYP" }, { 0x33, "ESME_RINVNUMDESTS" },
        { 0x34, "ESME_RINVDLNAME" }, { 0x40, "ESME_RINVDESTFLAG" },
        { 0x42, "ESME_RINVSUBREP" }, { 0x43, "ESME_RINVESMCLASS" },
        { 0x44, "ESME_RCNTSUBDL" }, { 0x45, "ESME_RSUBMITFAIL" },
        { 0x48, "ESME_RINVSRCTON" }, { 0x49, "ESME_RINVSRCNPI" },
        { 0x50, "ESME_RINVDSTTON" }, { 0x51, "ESME_RINVDSTNPI" },
        { 0x53, "ESME_RINVSYSTYP" }, { 0x54, "ESME_RINVREPFLAG" },
        { 0x55, "ESME_RINVNUMMSGS" }, { 0x58, "ESME_RTHROTTLED" },
        { 0x61, "ESME_RINVSCHED" }, { 0x62, "ESME_RINVEXPIRY" },
        { 0x63, "ESME_RINVDFTMSGID" }, { 0x64, "ESME_RX_T_APPN" },
        { 0x65, "ESME_RX_P_APPN" }, { 0x66, "ESME_RX_R_APPN" },
        { 0x67, "ESME_RQUERYFAIL" }, { 0xC0, "ESME_RINVOPTPARSTREAM" },
        { 0xC1, "ESME_ROPTPARNOTALLWD" }, { 0xC2, "ESME_RINVPARLEN" },
        { 0xC3, "ESME_RMISSINGOPTPARAM" }, { 0xC4, "ESME_RINVOPTPARAMVAL" },
        { 0xFE, "ESME_RDELIVERYFAILURE" }, { 0xFF, "ESME_RUNKNOWNERR" },
    };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].v == st)
            return names[i].name;
    return NULL;
}

/* See smpp_int.h: Kannel's split, plus RINVBNDSTS. */
enum smpp_status_class
smpp_status_class(uint32_t st)
{
    switch (st) {
    case SMPP_ROK:
        return SMPP_ST_OK;
    case SMPP_RTHROTTLED:
    case SMPP_RMSGQFUL:
        return SMPP_ST_THROTTLE;
    case SMPP_RSYSERR:
    case SMPP_RX_T_APPN:
    case SMPP_RINVBNDSTS:
        return SMPP_ST_TEMP;
    default:
        return SMPP_ST_PERM;
    }
}

/* See smpp_int.h. */
void
smpp_status_text(char *out, size_t cap, uint32_t st)
{
    const char *name = smpp_status_name(st);

    if (name)
        snprintf(out, cap, "%s (0x%08X)", name, st);
    else
        snprintf(out, cap, "status 0x%08X", st);
}

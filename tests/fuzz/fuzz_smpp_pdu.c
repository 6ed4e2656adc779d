/*
 * fuzz_smpp_pdu.c -- libFuzzer target for channels/smpp_pdu.c: the bytes
 * an SMSC could send. The first byte picks the command_length cap; the
 * rest is read as a TCP stream and cut into PDUs by smpp_frame exactly as
 * smpp.c does. Each PDU is copied into a buffer of its own size (so ASan
 * sees any overread) and goes through the decoders the channel uses:
 * smpp_resp_id, smpp_parse_deliver, smpp_is_receipt, smpp_dlr_decode (all
 * three id formats), smpp_mo_text and smpp_addr_format. Checked: framing
 * never returns a length it was not given, normalised ids are printable,
 * comma-free and never empty, decoded MO text stays under its cap.
 * Second opinion: a deliver_sm inside what libsmpp34's deliver_sm frame
 * can read (short fields, no schedule/validity, the TLVs it sizes the way
 * the spec does) must also unpack in libsmpp34 with the same fields.
 * The whole input also goes to the receipt text parser and the id
 * normaliser (case and leading zeros must not change the result).
 * Build: make build/fuzz/fuzz_smpp_pdu; run: build/fuzz/fuzz_smpp_pdu
 *        -max_total_time=60
 */
#include <stdint.h>
#include "smpp34.h"
#include "smpp34_structs.h"
#include "smpp34_params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "channels/smpp_int.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) \
    do { \
        if (!(c)) { \
            fprintf(stderr, "check failed: %s (line %d)\n", #c, __LINE__); \
            abort(); \
        } \
    } while (0)

static void
check_id(const char *id)
{
    size_t n = strlen(id);

    CHECK(n > 0 && n < SMPP_ID_MAX);
    for (size_t i = 0; i < n; i++)
        CHECK(id[i] > 0x20 && id[i] < 0x7F && id[i] != ',');
}

/* Does libsmpp34's deliver_sm frame read this PDU the way the spec does?
 * (Its limits: command_status 0, a valid sequence number, TON and NPI
 * from its lists, addresses 21 octets, schedule and validity empty,
 * short_message 254, fixed sizes for the TLVs below.) */
static int
lib_ton_npi(uint8_t ton, uint8_t npi)
{
    return ton <= 6 && (npi == 0 || npi == 1 || npi == 3 || npi == 4 ||
                        npi == 6 || npi == 8 || npi == 9 || npi == 10 ||
                        npi == 14 || npi == 18);
}

static int
lib_readable(const struct smpp_deliver *d, const uint8_t *pdu, size_t len)
{
    const uint8_t *t;
    const char *sched;
    size_t tl;

    uint32_t seq = smpp_get32(pdu + 12);

    if (d->cmd != SMPP_DELIVER_SM || smpp_get32(pdu + 8) != 0 ||
        seq == 0 || seq > SMPP_SEQ_MAX ||
        !lib_ton_npi(d->src_ton, d->src_npi) ||
        !lib_ton_npi(d->dst_ton, d->dst_npi) || strlen(d->src) > 20 ||
        strlen(d->dst) > 20 || d->sm_len > 254)
        return 0;
    sched = d->dst + strlen(d->dst) + 1 + 3;
    if (sched[0] != '\0' || sched[1] != '\0')
        return 0;
    t = d->sm + d->sm_len;
    tl = (size_t)(pdu + len - t);
    while (tl >= 4) {
        unsigned tag = (unsigned)t[0] << 8 | t[1];
        unsigned l = (unsigned)t[2] << 8 | t[3];

        switch (tag) {
        case SMPP_TLV_RECEIPTED_MESSAGE_ID:
            if (l < 1 || l > 65)
                return 0;
            break;
        case SMPP_TLV_MESSAGE_STATE:
        case SMPP_TLV_SAR_TOTAL_SEGMENTS:
        case SMPP_TLV_SAR_SEGMENT_SEQNUM:
            if (l != 1)
                return 0;
            break;
        case SMPP_TLV_SAR_MSG_REF_NUM:
            if (l != 2)
                return 0;
            break;
        case SMPP_TLV_NETWORK_ERROR_CODE:
            if (l != 3)
                return 0;
            break;
        case SMPP_TLV_MESSAGE_PAYLOAD:
            if (l > 1024)
                return 0;
            break;
        default:
            return 0;
        }
        t += 4 + l;
        tl -= 4 + l;
    }
    return 1;
}

/* Unpack with libsmpp34 and compare. */
static void
second_opinion(const struct smpp_deliver *d, const uint8_t *pdu, size_t len)
{
    static deliver_sm_t u;
    unsigned n = 0;
    int rc;

    memset(&u, 0, sizeof u);
    rc = smpp34_unpack(DELIVER_SM, &u, pdu, (int)len);
    if (rc != 0) {
        fprintf(stderr, "libsmpp34 refused what it should read: %s\n",
                smpp34_strerror);
        abort();
    }
    CHECK(strcmp(d->src, (const char *)u.source_addr) == 0);
    CHECK(strcmp(d->dst, (const char *)u.destination_addr) == 0);
    CHECK(d->esm_class == u.esm_class && d->data_coding == u.data_coding &&
          d->src_ton == u.source_addr_ton && d->dst_npi == u.dest_addr_npi);
    CHECK(d->sm_len == u.sm_length);
    CHECK(memcmp(d->sm, u.short_message, d->sm_len) == 0);
    for (tlv_t *t = u.tlv; t; t = t->next)
        n++;
    CHECK(n == d->ntlv);
    destroy_tlv(u.tlv);
}

static void
one_pdu(const uint8_t *pdu, size_t len)
{
    struct smpp_deliver d;
    struct smpp_dlr r;
    struct buf out;
    char id[SMPP_ID_IN_MAX + 1], a[80];
    uint32_t cmd = smpp_get32(pdu + 4), st;

    (void)smpp_cmd_known(cmd);
    if (smpp_resp_id(pdu, len, SMPP_ID_IN_MAX, id, sizeof id) == 0)
        CHECK(strlen(id) < SMPP_ID_IN_MAX);
    if (cmd != SMPP_DELIVER_SM && cmd != SMPP_DATA_SM)
        return;
    st = smpp_parse_deliver(&d, pdu, len);
    if (st != 0) {
        CHECK(smpp_status_name(st) != NULL);
        return;
    }
    CHECK(d.sm_len <= 255 && d.payload_len <= len);
    (void)smpp_is_receipt(&d);
    for (int f = SMPP_ID_TEXT; f <= SMPP_ID_DEC; f++)
        if (smpp_dlr_decode(&r, &d, (enum smpp_id_fmt)f) == 0) {
            check_id(r.id);
            CHECK(strlen(r.stat) < sizeof r.stat &&
                  strlen(r.err) < sizeof r.err);
            CHECK(r.state <= RCPT_REJECTED);
        }
    buf_init(&out, 4096);
    (void)smpp_mo_text(&out, &d);
    CHECK(out.len <= 4096);
    buf_free(&out);
    smpp_addr_format(a, sizeof a, d.src, d.src_ton);
    smpp_addr_format(a, sizeof a, d.dst, d.dst_ton);
    if (lib_readable(&d, pdu, len))
        second_opinion(&d, pdu, len);
}

static int
is_hex_digit(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

/* Case never changes a normalised id; leading zeros do not either when
 * the id is all hex digits. */
static void
ids(const uint8_t *p, size_t n)
{
    char a[SMPP_ID_MAX], b[SMPP_ID_MAX];
    uint8_t up[70], z[70];
    size_t k, e;
    int ra, rb;

    if (n > 61)
        n = 61;
    for (e = n; e > 0 && (p[e - 1] == ' ' || p[e - 1] == '\t' ||
                          p[e - 1] == '\r' || p[e - 1] == '\n' ||
                          p[e - 1] == 0);
         e--)
        ;
    for (k = 0; k < e && is_hex_digit(p[k]); k++)
        ;
    for (int f = SMPP_ID_TEXT; f <= SMPP_ID_DEC; f++) {
        ra = smpp_id_norm(a, sizeof a, p, n, (enum smpp_id_fmt)f);
        if (ra < 0)
            continue;
        check_id(a);
        CHECK((size_t)ra == strlen(a));
        for (size_t i = 0; i < n; i++)
            up[i] = p[i] >= 'a' && p[i] <= 'z' ? (uint8_t)(p[i] - 32) : p[i];
        rb = smpp_id_norm(b, sizeof b, up, n, (enum smpp_id_fmt)f);
        CHECK(rb == ra && strcmp(a, b) == 0);
        if (e > 0 && k == e) {
            z[0] = z[1] = z[2] = '0';
            memcpy(z + 3, p, n);
            rb = smpp_id_norm(b, sizeof b, z, n + 3, (enum smpp_id_fmt)f);
            CHECK(rb == ra && strcmp(a, b) == 0);
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t *copy;
    const uint8_t *p;
    size_t n, max_pdu, off = 0;
    struct smpp_rtext rt;
    struct smpp_hdr h;
    int rc;

    if (size < 1)
        return 0;
    max_pdu = data[0] == 255 ? 65536 : 16 + (size_t)data[0] * 64;
    p = data + 1;
    n = size - 1;
    while (off < n) {
        rc = smpp_frame(p + off, n - off, max_pdu, &h);
        if (rc == 0)
            break;
        if (rc < 0) {
            CHECK(h.len < SMPP_HDR_LEN || h.len > max_pdu);
            break;
        }
        CHECK(h.len >= SMPP_HDR_LEN && h.len <= max_pdu &&
              h.len <= n - off);
        copy = malloc(h.len);
        memcpy(copy, p + off, h.len);
        one_pdu(copy, h.len);
        free(copy);
        off += h.len;
    }
    if (smpp_rtext_parse(&rt, p, n) == 0) {
        CHECK(rt.id.n > 0 && (const uint8_t *)rt.id.p >= p &&
              (const uint8_t *)rt.id.p + rt.id.n <= p + n);
        ids((const uint8_t *)rt.id.p, rt.id.n);
    }
    ids(p, n);
    return 0;
}

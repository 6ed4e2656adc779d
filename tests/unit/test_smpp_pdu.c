/*
 * test_smpp_pdu.c -- tests for channels/smpp_pdu.c, the SMPP channel's
 * PDU layer: the delivery receipt text parser (every subset of the
 * optional fields, real carrier shapes without sub/dlvrd/text, keys in
 * other cases and orders), stat words and message_state values, odd
 * network_error_code lengths, message id normalisation (case, leading
 * zeros, hex vs decimal, any length), framing (short, bad and huge
 * command_length), deliver_sm / data_sm validation (truncated TLVs,
 * overrunning lengths, missing terminators) with libsmpp34's own unpack
 * as a second opinion on a PDU it packed, receipt and MO decoding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "smpp34.h"
#include "smpp34_structs.h"
#include "smpp34_params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "channels/smpp_int.h"
#include "err.h"

/* ---- building PDUs ---- */

struct pb {
    uint8_t b[70000];
    size_t  n;
};

static void
pb_start(struct pb *p, uint32_t cmd, uint32_t seq)
{
    p->n = 16;
    smpp_put32(p->b + 4, cmd);
    smpp_put32(p->b + 8, 0);
    smpp_put32(p->b + 12, seq);
}

static void
pb_raw(struct pb *p, const void *d, size_t n)
{
    memcpy(p->b + p->n, d, n);
    p->n += n;
}

static void
pb_u8(struct pb *p, uint8_t v)
{
    p->b[p->n++] = v;
}

static void
pb_cstr(struct pb *p, const char *s)
{
    pb_raw(p, s, strlen(s) + 1);
}

static void
pb_tlv(struct pb *p, uint16_t tag, const void *v, uint16_t len)
{
    pb_u8(p, (uint8_t)(tag >> 8));
    pb_u8(p, (uint8_t)tag);
    pb_u8(p, (uint8_t)(len >> 8));
    pb_u8(p, (uint8_t)len);
    pb_raw(p, v, len);
}

static size_t
pb_end(struct pb *p)
{
    smpp_put32(p->b, (uint32_t)p->n);
    return p->n;
}

/* The mandatory part of a deliver_sm up to and including short_message. */
static void
pb_deliver(struct pb *p, const char *src, uint8_t src_ton, const char *dst,
           uint8_t esm, uint8_t dc, const void *sm, uint8_t smlen)
{
    pb_start(p, SMPP_DELIVER_SM, 7);
    pb_cstr(p, "");
    pb_u8(p, src_ton);
    pb_u8(p, 1);
    pb_cstr(p, src);
    pb_u8(p, 0);
    pb_u8(p, 0);
    pb_cstr(p, dst);
    pb_u8(p, esm);
    pb_u8(p, 0);
    pb_u8(p, 0);
    pb_cstr(p, "");
    pb_cstr(p, "");
    pb_u8(p, 0);
    pb_u8(p, 0);
    pb_u8(p, dc);
    pb_u8(p, 0);
    pb_u8(p, smlen);
    pb_raw(p, sm, smlen);
}

static struct pb pb;

/* ---- receipt text ---- */

static void
assert_slice(struct smpp_slice s, const char *want)
{
    char got[256];

    assert_true(s.n < sizeof got);
    memcpy(got, s.p, s.n);
    got[s.n] = '\0';
    assert_string_equal(got, want);
}

static int
rt(struct smpp_rtext *r, const char *s)
{
    return smpp_rtext_parse(r, (const uint8_t *)s, strlen(s));
}

static void
test_rtext_full(void **state)
{
    struct smpp_rtext r;

    (void)state;
    assert_int_equal(rt(&r, "id:0123456789 sub:001 dlvrd:001 submit date:"
                        "2701011200 done date:2701011201 stat:DELIVRD "
                        "err:000 text:Hello there  "), 0);
    assert_int_equal(r.fields, 0xFFu);
    assert_slice(r.id, "0123456789");
    assert_slice(r.sub, "001");
    assert_slice(r.dlvrd, "001");
    assert_slice(r.submit_date, "2701011200");
    assert_slice(r.done_date, "2701011201");
    assert_slice(r.stat, "DELIVRD");
    assert_slice(r.err, "000");
    assert_slice(r.text, "Hello there");
}

/* Every subset of the seven optional fields, id always there. */
static void
test_rtext_subsets(void **state)
{
    static const char *const parts[] = {
        "sub:001", "dlvrd:001", "submit date:2701011200",
        "done date:2701011201", "stat:UNDELIV", "err:034", "text:a b c",
    };
    static const unsigned bits[] = {
        SMPP_RT_SUB, SMPP_RT_DLVRD, SMPP_RT_SUBMIT_DATE, SMPP_RT_DONE_DATE,
        SMPP_RT_STAT, SMPP_RT_ERR, SMPP_RT_TEXT,
    };
    char s[512];
    struct smpp_rtext r;

    (void)state;
    for (unsigned mask = 0; mask < 128; mask++) {
        unsigned want = SMPP_RT_ID;
        size_t n = (size_t)snprintf(s, sizeof s, "id:abc");

        for (unsigned k = 0; k < 7; k++)
            if (mask & (1u << k)) {
                n += (size_t)snprintf(s + n, sizeof s - n, " %s", parts[k]);
                want |= bits[k];
            }
        assert_int_equal(rt(&r, s), 0);
        assert_int_equal(r.fields, want);
        assert_slice(r.id, "abc");
        if (mask & 0x10)
            assert_slice(r.stat, "UNDELIV");
        if (mask & 0x20)
            assert_slice(r.err, "034");
        if (mask & 0x40)
            assert_slice(r.text, "a b c");
    }
}

static void
test_rtext_carriers(void **state)
{
    struct smpp_rtext r;
    static const uint8_t with_nul[] = "id:1891273321 sub:001 dlvrd:001 "
        "submit date:1305050826 done date:1305050826 stat:DELIVRD err:000 "
        "Text:DLVRD TO MOBILE\0garbage after the NUL stat:UNDELIV";

    (void)state;
    /* no sub, dlvrd or text (jasmin's carrier samples) */
    assert_int_equal(rt(&r, "id:c449ab9744f47b6af1879e49e75e4f40 submit "
                        "date:1510201155 done date:1510201155 stat:DELIVRD "
                        "err:0"), 0);
    assert_slice(r.id, "c449ab9744f47b6af1879e49e75e4f40");
    assert_slice(r.stat, "DELIVRD");
    assert_slice(r.err, "0");
    assert_false(r.fields & (SMPP_RT_SUB | SMPP_RT_DLVRD | SMPP_RT_TEXT));
    /* capitalised keys, NUL ending, text cut at the NUL */
    assert_int_equal(smpp_rtext_parse(&r, with_nul, sizeof with_nul - 1), 0);
    assert_slice(r.text, "DLVRD TO MOBILE");
    assert_slice(r.stat, "DELIVRD");
    /* other order, tabs, underscores, upper case */
    assert_int_equal(rt(&r, "STAT:EXPIRED\tERR:001  ID:FFEE \r\n"
                        "SUBMIT_DATE:2701011200 DONE_DATE:2701011300"), 0);
    assert_slice(r.id, "FFEE");
    assert_slice(r.stat, "EXPIRED");
    assert_slice(r.submit_date, "2701011200");
    assert_slice(r.done_date, "2701011300");
    /* the first id counts; unknown tokens are skipped */
    assert_int_equal(rt(&r, "foo bar:1 msgid:9 id:1 id:2"), 0);
    assert_slice(r.id, "1");
    /* text comes last and keeps what looks like keys */
    assert_int_equal(rt(&r, "id:7 text:stat:REJECTD err:9"), 0);
    assert_false(r.fields & SMPP_RT_STAT);
    assert_slice(r.text, "stat:REJECTD err:9");
    /* an empty text */
    assert_int_equal(rt(&r, "id:7 stat:DELIVRD text:"), 0);
    assert_true(r.fields & SMPP_RT_TEXT);
    assert_int_equal(r.text.n, 0);
}

static void
test_rtext_no_id(void **state)
{
    struct smpp_rtext r;

    (void)state;
    assert_int_equal(rt(&r, ""), GW_EPARSE);
    assert_int_equal(rt(&r, "stat:DELIVRD err:000"), GW_EPARSE);
    assert_int_equal(rt(&r, "id: stat:DELIVRD"), GW_EPARSE);
    assert_int_equal(rt(&r, "hello world"), GW_EPARSE);
    assert_int_equal(smpp_rtext_parse(&r, (const uint8_t *)"\0id:1", 5),
                     GW_EPARSE);
    assert_int_equal(rt(&r, "id"), GW_EPARSE);
    assert_int_equal(rt(&r, "i"), GW_EPARSE);
}

static void
test_stat_words(void **state)
{
    static const struct {
        const char        *w;
        enum receipt_state st;
        int                known;
    } cases[] = {
        { "DELIVRD", RCPT_DELIVERED, 1 }, { "delivered", RCPT_DELIVERED, 1 },
        { "UNDELIV", RCPT_UNDELIVERABLE, 1 },
        { "UNDELIVERABLE", RCPT_UNDELIVERABLE, 1 },
        { "EXPIRED", RCPT_EXPIRED, 1 }, { "DELETED", RCPT_REJECTED, 1 },
        { "REJECTD", RCPT_REJECTED, 1 }, { "Rejected", RCPT_REJECTED, 1 },
        { "ACCEPTD", RCPT_ENROUTE, 1 }, { "ENROUTE", RCPT_ENROUTE, 1 },
        { "UNKNOWN", RCPT_UNDELIVERABLE, 1 },
        { "FAILED", RCPT_UNDELIVERABLE, 1 }, { "SKIPPED", RCPT_REJECTED, 1 },
        { "BOGUS", RCPT_ENROUTE, 0 }, { "DEL", RCPT_ENROUTE, 0 },
        { "", RCPT_ENROUTE, 0 },
    };
    int known;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(smpp_stat_state(cases[i].w, strlen(cases[i].w),
                                         &known), cases[i].st);
        assert_int_equal(known, cases[i].known);
    }
    assert_int_equal(smpp_msgstate_state(1), RCPT_ENROUTE);
    assert_int_equal(smpp_msgstate_state(2), RCPT_DELIVERED);
    assert_int_equal(smpp_msgstate_state(3), RCPT_EXPIRED);
    assert_int_equal(smpp_msgstate_state(4), RCPT_REJECTED);
    assert_int_equal(smpp_msgstate_state(5), RCPT_UNDELIVERABLE);
    assert_int_equal(smpp_msgstate_state(6), RCPT_ENROUTE);
    assert_int_equal(smpp_msgstate_state(7), RCPT_UNDELIVERABLE);
    assert_int_equal(smpp_msgstate_state(8), RCPT_REJECTED);
    assert_int_equal(smpp_msgstate_state(0), RCPT_ENROUTE);
    assert_int_equal(smpp_msgstate_state(200), RCPT_ENROUTE);
    assert_string_equal(smpp_msgstate_word(2), "DELIVRD");
    assert_string_equal(smpp_msgstate_word(8), "REJECTD");
    assert_string_equal(smpp_msgstate_word(77), "UNKNOWN");
}

static void
test_neterr(void **state)
{
    char s[48];

    (void)state;
    smpp_neterr_format(s, sizeof s, (const uint8_t *)"\x03\x00\x0B", 3);
    assert_string_equal(s, "3:11");
    smpp_neterr_format(s, sizeof s, (const uint8_t *)"\x01\x01", 2);
    assert_string_equal(s, "257");
    smpp_neterr_format(s, sizeof s, (const uint8_t *)"\x22", 1);
    assert_string_equal(s, "34");
    smpp_neterr_format(s, sizeof s, (const uint8_t *)"\x08\x00\x00\x01\x00",
                       5);
    assert_string_equal(s, "8:256");
    smpp_neterr_format(s, sizeof s, (const uint8_t *)"\x03\x00\x00\x00\x01",
                       4);
    assert_string_equal(s, "3:0");
    smpp_neterr_format(s, sizeof s, (const uint8_t *)"\x01\x02\x03\x04\x05"
                       "\x06", 6);
    assert_string_equal(s, "010203040506");
    smpp_neterr_format(s, 5, (const uint8_t *)"\x01\x02\x03\x04\x05\x06", 6);
    assert_string_equal(s, "0102");
    smpp_neterr_format(s, sizeof s, NULL, 0);
    assert_string_equal(s, "");
}

/* ---- ids ---- */

static const char *
norm(const char *id, enum smpp_id_fmt f)
{
    static char out[SMPP_ID_MAX];

    if (smpp_id_norm(out, sizeof out, (const uint8_t *)id, strlen(id), f) < 0)
        return "(error)";
    return out;
}

static void
test_id_norm(void **state)
{
    (void)state;
    /* text: case and leading zeros */
    assert_string_equal(norm("00001A2B", SMPP_ID_TEXT), "1a2b");
    assert_string_equal(norm("1a2b", SMPP_ID_TEXT), "1a2b");
    assert_string_equal(norm("0000012345", SMPP_ID_TEXT), "12345");
    assert_string_equal(norm("000", SMPP_ID_TEXT), "0");
    assert_string_equal(norm(" 42\r\n", SMPP_ID_TEXT), "42");
    assert_string_equal(norm("0ABC-DEF", SMPP_ID_TEXT), "0abc-def");
    assert_string_equal(norm("C449AB97-44F4-7B6A", SMPP_ID_TEXT),
                        "c449ab97-44f4-7b6a");
    assert_string_equal(norm("a,b%c d", SMPP_ID_TEXT), "a%2Cb%25c%20d");
    assert_string_equal(norm("\xc3\xa9", SMPP_ID_TEXT), "%C3%A9");
    /* hex and dec: the value, in decimal */
    assert_string_equal(norm("1A2B", SMPP_ID_HEX), "6699");
    assert_string_equal(norm("00001a2b", SMPP_ID_HEX), "6699");
    assert_string_equal(norm("0006699", SMPP_ID_DEC), "6699");
    assert_string_equal(norm("0", SMPP_ID_HEX), "0");
    assert_string_equal(norm("ffffffffffffffff", SMPP_ID_HEX),
                        "18446744073709551615");
    assert_string_equal(norm("10000000000000000", SMPP_ID_HEX),
                        "18446744073709551616");
    assert_string_equal(norm("99999999999999999999999999", SMPP_ID_DEC),
                        "99999999999999999999999999");
    assert_string_equal(
        norm("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
             SMPP_ID_HEX),
        "115792089237316195423570985008687907853269984665640564039457584007"
        "913129639935");
    /* ids that do not fit the format fall back to text */
    assert_string_equal(norm("1A2G", SMPP_ID_HEX), "1a2g");
    assert_string_equal(norm("00AB", SMPP_ID_DEC), "ab");
    /* the same id from both sides matches */
    assert_string_equal(norm("000019A7", SMPP_ID_HEX),
                        norm("0000006567", SMPP_ID_DEC));
    /* refused */
    assert_string_equal(norm("", SMPP_ID_TEXT), "(error)");
    assert_string_equal(norm("  \t", SMPP_ID_TEXT), "(error)");
    assert_string_equal(
        norm("0123456789012345678901234567890123456789012345678901234567890"
             "12345", SMPP_ID_TEXT), "(error)");
    {
        char small[10];

        assert_int_equal(smpp_id_norm(small, sizeof small,
                                      (const uint8_t *)"1", 1, SMPP_ID_TEXT),
                         GW_EINVAL);
    }
}

/* ---- framing and responses ---- */

static void
test_frame(void **state)
{
    struct smpp_hdr h;
    uint8_t b[32];

    (void)state;
    memset(b, 0, sizeof b);
    assert_int_equal(smpp_frame(b, 3, 65536, &h), 0);
    smpp_put32(b, 16);
    smpp_put32(b + 4, SMPP_ENQUIRE_LINK);
    smpp_put32(b + 12, 99);
    assert_int_equal(smpp_frame(b, 15, 65536, &h), 0);
    assert_int_equal(smpp_frame(b, 16, 65536, &h), 1);
    assert_int_equal(h.len, 16);
    assert_int_equal(h.cmd, SMPP_ENQUIRE_LINK);
    assert_int_equal(h.seq, 99);
    smpp_put32(b, 15);
    assert_int_equal(smpp_frame(b, 16, 65536, &h), GW_EPARSE);
    assert_int_equal(h.len, 15);
    assert_int_equal(h.seq, 99);
    smpp_put32(b, 0);
    assert_int_equal(smpp_frame(b, 4, 65536, &h), GW_EPARSE);
    assert_int_equal(h.seq, 0);
    smpp_put32(b, 0xFFFFFFFFu);
    assert_int_equal(smpp_frame(b, 20, 65536, &h), GW_EPARSE);
    smpp_put32(b, 65537);
    assert_int_equal(smpp_frame(b, 20, 65536, &h), GW_EPARSE);
    smpp_put32(b, 65536);
    assert_int_equal(smpp_frame(b, 20, 65536, &h), 0);     /* wait */
}

static void
test_cmd_known(void **state)
{
    (void)state;
    assert_true(smpp_cmd_known(SMPP_GENERIC_NACK));
    assert_true(smpp_cmd_known(SMPP_SUBMIT_SM | SMPP_RESP));
    assert_true(smpp_cmd_known(SMPP_DELIVER_SM));
    assert_true(smpp_cmd_known(SMPP_DATA_SM | SMPP_RESP));
    assert_true(smpp_cmd_known(SMPP_ALERT_NOTIFICATION));
    assert_false(smpp_cmd_known(SMPP_ALERT_NOTIFICATION | SMPP_RESP));
    assert_false(smpp_cmd_known(SMPP_OUTBIND | SMPP_RESP));
    assert_false(smpp_cmd_known(0x00000777));
    assert_false(smpp_cmd_known(0x0000000A));
    assert_false(smpp_cmd_known(0));
    assert_false(smpp_cmd_known(0xFFFFFFFFu));
}

static void
test_pack_header(void **state)
{
    uint8_t b[32];

    (void)state;
    assert_int_equal(smpp_pack_header(b, SMPP_DELIVER_SM | SMPP_RESP, 0, 5,
                                      1), 17);
    assert_memory_equal(b, "\0\0\0\x11\x80\0\0\x05\0\0\0\0\0\0\0\x05\0", 17);
    assert_int_equal(smpp_pack_header(b, SMPP_GENERIC_NACK, 3, 9, 0), 16);
    assert_int_equal(smpp_get32(b + 8), 3);
}

static void
test_resp_id(void **state)
{
    char id[80];

    (void)state;
    pb_start(&pb, SMPP_SUBMIT_SM | SMPP_RESP, 1);
    pb_end(&pb);
    assert_int_equal(smpp_resp_id(pb.b, pb.n, 65, id, sizeof id), 0);
    assert_string_equal(id, "");
    pb_start(&pb, SMPP_SUBMIT_SM | SMPP_RESP, 1);
    pb_cstr(&pb, "00AB12");
    pb_tlv(&pb, 0x0425, "\x01", 1);         /* a 5.0 TLV after it */
    pb_end(&pb);
    assert_int_equal(smpp_resp_id(pb.b, pb.n, 65, id, sizeof id), 0);
    assert_string_equal(id, "00AB12");
    pb_start(&pb, SMPP_SUBMIT_SM | SMPP_RESP, 1);
    pb_raw(&pb, "abc", 3);                  /* no terminator */
    pb_end(&pb);
    assert_int_equal(smpp_resp_id(pb.b, pb.n, 65, id, sizeof id), 0);
    assert_string_equal(id, "abc");
    pb_start(&pb, SMPP_SUBMIT_SM | SMPP_RESP, 1);
    for (int i = 0; i < 70; i++)
        pb_u8(&pb, 'x');
    pb_end(&pb);
    assert_int_equal(smpp_resp_id(pb.b, pb.n, 65, id, sizeof id), GW_EPARSE);
    assert_int_equal(smpp_resp_id(pb.b, pb.n, 65, id, 10), GW_EPARSE);
}

/* ---- deliver_sm / data_sm ---- */

static void
test_deliver_receipt_tlvs(void **state)
{
    struct smpp_deliver d;
    struct smpp_dlr r;

    (void)state;
    pb_deliver(&pb, "4915112345678", 1, "Shop", 0x04, 0, "", 0);
    pb_tlv(&pb, SMPP_TLV_RECEIPTED_MESSAGE_ID, "00001A2B\0", 9);
    pb_tlv(&pb, SMPP_TLV_MESSAGE_STATE, "\x05", 1);
    pb_tlv(&pb, SMPP_TLV_NETWORK_ERROR_CODE, "\x03\x00\x22", 3);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), 0);
    assert_string_equal(d.src, "4915112345678");
    assert_string_equal(d.dst, "Shop");
    assert_int_equal(d.ntlv, 3);
    assert_true(smpp_is_receipt(&d));
    assert_int_equal(smpp_dlr_decode(&r, &d, SMPP_ID_TEXT), 0);
    assert_string_equal(r.id, "1a2b");
    assert_int_equal(r.state, RCPT_UNDELIVERABLE);
    assert_string_equal(r.stat, "UNDELIV");
    assert_string_equal(r.err, "3:34");
    assert_true(r.from_tlv);
    assert_int_equal(smpp_dlr_decode(&r, &d, SMPP_ID_HEX), 0);
    assert_string_equal(r.id, "6699");
}

static void
test_deliver_receipt_text_forms(void **state)
{
    static const char text[] = "id:0000006699 sub:001 dlvrd:001 submit "
        "date:2701011200 done date:2701011201 stat:DELIVRD err:000 text:Hi";
    struct smpp_deliver d;
    struct smpp_dlr r;

    (void)state;
    /* in short_message */
    pb_deliver(&pb, "4915112345678", 1, "Shop", 0x04, 0, text,
               sizeof text - 1);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), 0);
    assert_int_equal(smpp_dlr_decode(&r, &d, SMPP_ID_DEC), 0);
    assert_string_equal(r.id, "6699");
    assert_int_equal(r.state, RCPT_DELIVERED);
    assert_string_equal(r.stat, "DELIVRD");
    assert_string_equal(r.err, "000");
    assert_false(r.from_tlv);
    assert_int_equal(r.fields, 0xFFu);
    /* in message_payload */
    pb_deliver(&pb, "4915112345678", 1, "Shop", 0x04, 0, "", 0);
    pb_tlv(&pb, SMPP_TLV_MESSAGE_PAYLOAD, text, sizeof text - 1);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), 0);
    assert_int_equal(smpp_dlr_decode(&r, &d, SMPP_ID_TEXT), 0);
    assert_string_equal(r.id, "6699");
    assert_int_equal(r.state, RCPT_DELIVERED);
    /* both: the TLVs win for id and state, the text gives the word */
    pb_deliver(&pb, "4915112345678", 1, "Shop", 0x04, 0, text,
               sizeof text - 1);
    pb_tlv(&pb, SMPP_TLV_RECEIPTED_MESSAGE_ID, "1a2b", 4);  /* no NUL */
    pb_tlv(&pb, SMPP_TLV_MESSAGE_STATE, "\x00\x03", 2);     /* 2 octets */
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), 0);
    assert_int_equal(smpp_dlr_decode(&r, &d, SMPP_ID_TEXT), 0);
    assert_string_equal(r.id, "1a2b");
    assert_int_equal(r.state, RCPT_EXPIRED);
    assert_string_equal(r.stat, "DELIVRD");
    /* a receipt without any id */
    pb_deliver(&pb, "4915112345678", 1, "Shop", 0x04, 0, "stat:DELIVRD", 12);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), 0);
    assert_int_equal(smpp_dlr_decode(&r, &d, SMPP_ID_TEXT), GW_EPARSE);
    /* no state anywhere: en route */
    pb_deliver(&pb, "4915112345678", 1, "Shop", 0x04, 0, "id:5", 4);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), 0);
    assert_int_equal(smpp_dlr_decode(&r, &d, SMPP_ID_TEXT), 0);
    assert_int_equal(r.state, RCPT_ENROUTE);
    assert_string_equal(r.stat, "");
    assert_string_equal(r.err, "");
}

static void
test_deliver_odd_lengths(void **state)
{
    struct smpp_deliver d;
    struct smpp_dlr r;
    char addr[70];

    (void)state;
    /* network_error_code of 2, 4 and 7 octets; message_state of 4 */
    pb_deliver(&pb, "1", 0, "2", 0x04, 0, "", 0);
    pb_tlv(&pb, SMPP_TLV_RECEIPTED_MESSAGE_ID, "\0\0", 2);  /* empty */
    pb_tlv(&pb, SMPP_TLV_RECEIPTED_MESSAGE_ID, "77\0", 3);
    pb_tlv(&pb, SMPP_TLV_MESSAGE_STATE, "\0\0\0\x02", 4);
    pb_tlv(&pb, SMPP_TLV_NETWORK_ERROR_CODE, "\x00\x0B", 2);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), 0);
    assert_int_equal(smpp_dlr_decode(&r, &d, SMPP_ID_TEXT), 0);
    assert_string_equal(r.id, "77");
    assert_int_equal(r.state, RCPT_DELIVERED);
    assert_string_equal(r.err, "11");
    pb_deliver(&pb, "1", 0, "2", 0x04, 0, "", 0);
    pb_tlv(&pb, SMPP_TLV_RECEIPTED_MESSAGE_ID, "77", 2);
    pb_tlv(&pb, SMPP_TLV_MESSAGE_STATE, "\0\0\x01\x02", 4); /* > 255 */
    pb_tlv(&pb, SMPP_TLV_MESSAGE_STATE, "", 0);
    pb_tlv(&pb, SMPP_TLV_NETWORK_ERROR_CODE, "\x03\x00\x00\x00\x0B\x01\x02",
           7);
    pb_tlv(&pb, 0x1403, "", 0);                 /* a vendor TLV, empty */
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), 0);
    assert_false(d.has_state);
    assert_int_equal(smpp_dlr_decode(&r, &d, SMPP_ID_TEXT), 0);
    assert_int_equal(r.state, RCPT_ENROUTE);
    assert_string_equal(r.err, "030000000b0102");
    /* 64-character addresses (data_sm allows 65 with the NUL) */
    memset(addr, '9', 64);
    addr[64] = '\0';
    pb_deliver(&pb, addr, 1, addr, 0, 0, "x", 1);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), 0);
    memset(addr, '9', 65);
    addr[65] = '\0';
    pb_deliver(&pb, addr, 1, "2", 0, 0, "x", 1);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), SMPP_RINVMSGLEN);
}

static void
test_deliver_malformed(void **state)
{
    struct smpp_deliver d;
    size_t n;

    (void)state;
    /* a TLV header cut short */
    pb_deliver(&pb, "1", 0, "2", 0, 0, "hi", 2);
    pb_raw(&pb, "\x04\x24\x00", 3);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n),
                     SMPP_RINVOPTPARSTREAM);
    /* a TLV value running past the end */
    pb_deliver(&pb, "1", 0, "2", 0, 0, "hi", 2);
    pb_raw(&pb, "\x04\x24\x00\x50" "abc", 7);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), SMPP_RINVPARLEN);
    /* a huge TLV length */
    pb_deliver(&pb, "1", 0, "2", 0, 0, "hi", 2);
    pb_raw(&pb, "\x00\x1E\xFF\xFF", 4);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), SMPP_RINVPARLEN);
    /* sm_length past the end */
    pb_deliver(&pb, "1", 0, "2", 0, 0, "hi", 2);
    pb.b[pb.n - 3] = 200;
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), SMPP_RINVMSGLEN);
    /* every truncation of a valid PDU fails cleanly, none reads past */
    pb_deliver(&pb, "4915112345678", 1, "12345", 0, 0, "hello", 5);
    pb_tlv(&pb, SMPP_TLV_MESSAGE_STATE, "\x02", 1);
    n = pb_end(&pb);
    for (size_t k = 16; k < n; k++) {
        uint8_t *copy = malloc(k);
        uint32_t st;

        memcpy(copy, pb.b, k);
        st = smpp_parse_deliver(&d, copy, k);
        assert_true(st != 0 || k == n - 5);     /* without the TLV: fine */
        free(copy);
    }
    /* a service_type without its NUL inside 6 bytes */
    pb_start(&pb, SMPP_DELIVER_SM, 1);
    pb_raw(&pb, "ABCDEFGH", 8);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), SMPP_RINVMSGLEN);
    /* the header alone */
    pb_start(&pb, SMPP_DELIVER_SM, 1);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), SMPP_RINVMSGLEN);
}

static void
test_data_sm(void **state)
{
    struct smpp_deliver d;
    struct smpp_dlr r;

    (void)state;
    pb_start(&pb, SMPP_DATA_SM, 3);
    pb_cstr(&pb, "");
    pb_u8(&pb, 1);
    pb_u8(&pb, 1);
    pb_cstr(&pb, "4915112345678");
    pb_u8(&pb, 0);
    pb_u8(&pb, 0);
    pb_cstr(&pb, "Shop");
    pb_u8(&pb, 0x04);
    pb_u8(&pb, 0);
    pb_u8(&pb, 0);
    pb_tlv(&pb, SMPP_TLV_RECEIPTED_MESSAGE_ID, "ABC\0", 4);
    pb_tlv(&pb, SMPP_TLV_MESSAGE_STATE, "\x08", 1);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), 0);
    assert_int_equal(d.cmd, SMPP_DATA_SM);
    assert_int_equal(d.sm_len, 0);
    assert_true(smpp_is_receipt(&d));
    assert_int_equal(smpp_dlr_decode(&r, &d, SMPP_ID_TEXT), 0);
    assert_string_equal(r.id, "abc");
    assert_int_equal(r.state, RCPT_REJECTED);
    assert_string_equal(r.stat, "REJECTD");
    /* data_sm cut after esm_class */
    pb_start(&pb, SMPP_DATA_SM, 3);
    pb_cstr(&pb, "");
    pb_raw(&pb, "\x01\x01" "1\0" "\0\0" "2\0" "\x04", 9);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), SMPP_RINVMSGLEN);
}

static void
test_is_receipt(void **state)
{
    struct smpp_deliver d;

    (void)state;
    memset(&d, 0, sizeof d);
    d.esm_class = 0x04;
    assert_true(smpp_is_receipt(&d));
    d.esm_class = 0x08;
    assert_true(smpp_is_receipt(&d));
    d.esm_class = 0x20;
    assert_true(smpp_is_receipt(&d));
    d.esm_class = 0x40;
    assert_false(smpp_is_receipt(&d));
    d.esm_class = 0x00;
    assert_false(smpp_is_receipt(&d));
    d.rmid = (const uint8_t *)"1";
    d.rmid_len = 1;
    assert_false(smpp_is_receipt(&d));
    d.has_state = 1;
    assert_true(smpp_is_receipt(&d));
    d.esm_class = 0x10;                 /* a user acknowledgement */
    assert_false(smpp_is_receipt(&d));
}

/* A deliver_sm packed by libsmpp34 reads the same here and there. */
static void
test_libsmpp34_agrees(void **state)
{
    static deliver_sm_t in, out;
    static tlv_t t_id, t_state;
    static uint8_t b[4096];
    struct smpp_deliver d;
    struct smpp_dlr r;
    int len = 0;

    (void)state;
    memset(&in, 0, sizeof in);
    in.command_id = DELIVER_SM;
    in.sequence_number = 42;
    in.source_addr_ton = 1;
    in.source_addr_npi = 1;
    strcpy((char *)in.source_addr, "4915112345678");
    strcpy((char *)in.destination_addr, "Shop");
    in.esm_class = 0x04;
    in.sm_length = 16;
    memcpy(in.short_message, "id:abc stat:DELI", 16);
    memset(&t_id, 0, sizeof t_id);
    t_id.tag = TLVID_receipted_message_id;
    t_id.length = 4;
    memcpy(t_id.value.octet, "ABC", 4);
    memset(&t_state, 0, sizeof t_state);
    t_state.tag = TLVID_message_state;
    t_state.length = 1;
    t_state.value.val08 = 2;
    t_id.next = &t_state;
    in.tlv = &t_id;
    assert_int_equal(smpp34_pack(DELIVER_SM, b, sizeof b, &len, &in), 0);
    assert_int_equal(smpp_parse_deliver(&d, b, (size_t)len), 0);
    memset(&out, 0, sizeof out);
    assert_int_equal(smpp34_unpack(DELIVER_SM, &out, b, len), 0);
    assert_string_equal(d.src, (char *)out.source_addr);
    assert_string_equal(d.dst, (char *)out.destination_addr);
    assert_int_equal(d.esm_class, out.esm_class);
    assert_int_equal(d.sm_len, out.sm_length);
    assert_memory_equal(d.sm, out.short_message, d.sm_len);
    assert_int_equal(d.ntlv, 2);
    destroy_tlv(out.tlv);
    assert_int_equal(smpp_dlr_decode(&r, &d, SMPP_ID_TEXT), 0);
    assert_string_equal(r.id, "abc");
    assert_int_equal(r.state, RCPT_DELIVERED);
}

/* ---- MO ---- */

static struct buf mo_out;

static const char *
mo(uint8_t esm, uint8_t dc, const void *sm, uint8_t n)
{
    struct smpp_deliver d;

    pb_deliver(&pb, "4915112345678", 1, "12345", esm, dc, sm, n);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), 0);
    assert_false(smpp_is_receipt(&d));
    buf_free(&mo_out);
    buf_init(&mo_out, 4096);
    assert_int_equal(smpp_mo_text(&mo_out, &d), 0);
    return buf_cstr(&mo_out);
}

static void
test_mo_text(void **state)
{
    struct smpp_deliver d;
    struct buf out;

    (void)state;
    assert_string_equal(mo(0, 0x00, "STOP", 4), "STOP");
    assert_string_equal(mo(0, 0x00, "\x00" "a\x1b\x65", 4), "@a\xe2\x82\xac");
    assert_string_equal(mo(0, 0x08, "\x04\x1f\x04\x40", 4), "Пр");
    assert_string_equal(mo(0, 0x08, "\xd8\x3d\xde\x00", 4),
                        "\xf0\x9f\x98\x80");
    assert_string_equal(mo(0, 0x03, "caf\xe9", 4), "caf\xc3\xa9");
    assert_string_equal(mo(0, 0x01, "help", 4), "help");
    assert_string_equal(mo(0, 0xF0, "stop", 4), "stop");
    assert_string_equal(mo(0, 0x18, "\x00h\x00i", 4), "hi");
    assert_string_equal(mo(0, 0x04, "AB", 2), "AB");
    /* UDH cut: a concatenated part */
    assert_string_equal(mo(0x40, 0x00, "\x05\x00\x03\x07\x02\x01" "Part", 10),
                        "Part");
    /* a UDH length past the message: taken as text */
    assert_string_equal(mo(0x40, 0x00, "\x09" "ab", 3), "\xc3\x87" "ab");
    /* the text in message_payload */
    pb_deliver(&pb, "4915112345678", 1, "12345", 0, 0x08, "", 0);
    pb_tlv(&pb, SMPP_TLV_MESSAGE_PAYLOAD, "\x00S\x00T\x00O\x00P", 8);
    pb_end(&pb);
    assert_int_equal(smpp_parse_deliver(&d, pb.b, pb.n), 0);
    buf_init(&out, 4096);
    assert_int_equal(smpp_mo_text(&out, &d), 0);
    assert_string_equal(buf_cstr(&out), "STOP");
    buf_free(&out);
    assert_string_equal(mo(0, 0, "", 0), "");
    buf_free(&mo_out);
}

static void
test_addr_format(void **state)
{
    char s[80];

    (void)state;
    smpp_addr_format(s, sizeof s, "4915112345678", 1);
    assert_string_equal(s, "+4915112345678");
    smpp_addr_format(s, sizeof s, "+4915112345678", 1);
    assert_string_equal(s, "+4915112345678");
    smpp_addr_format(s, sizeof s, "015112345678", 2);
    assert_string_equal(s, "015112345678");
    smpp_addr_format(s, sizeof s, "Shop", 5);
    assert_string_equal(s, "Shop");
    smpp_addr_format(s, sizeof s, "12a", 1);
    assert_string_equal(s, "12a");
    smpp_addr_format(s, sizeof s, "", 1);
    assert_string_equal(s, "");
}

static void
test_status(void **state)
{
    char s[96];

    (void)state;
    assert_string_equal(smpp_status_name(0x0B), "ESME_RINVDSTADR");
    assert_string_equal(smpp_status_name(0x58), "ESME_RTHROTTLED");
    assert_null(smpp_status_name(0x401));
    assert_int_equal(smpp_status_class(0), SMPP_ST_OK);
    assert_int_equal(smpp_status_class(0x58), SMPP_ST_THROTTLE);
    assert_int_equal(smpp_status_class(0x14), SMPP_ST_THROTTLE);
    assert_int_equal(smpp_status_class(0x08), SMPP_ST_TEMP);
    assert_int_equal(smpp_status_class(0x64), SMPP_ST_TEMP);
    assert_int_equal(smpp_status_class(0x0B), SMPP_ST_PERM);
    assert_int_equal(smpp_status_class(0x45), SMPP_ST_PERM);
    assert_int_equal(smpp_status_class(0x401), SMPP_ST_PERM);
    smpp_status_text(s, sizeof s, 0x0B);
    assert_string_equal(s, "ESME_RINVDSTADR (0x0000000B)");
    smpp_status_text(s, sizeof s, 0x401);
    assert_string_equal(s, "status 0x00000401");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rtext_full),
        cmocka_unit_test(test_rtext_subsets),
        cmocka_unit_test(test_rtext_carriers),
        cmocka_unit_test(test_rtext_no_id),
        cmocka_unit_test(test_stat_words),
        cmocka_unit_test(test_neterr),
        cmocka_unit_test(test_id_norm),
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_cmd_known),
        cmocka_unit_test(test_pack_header),
        cmocka_unit_test(test_resp_id),
        cmocka_unit_test(test_deliver_receipt_tlvs),
        cmocka_unit_test(test_deliver_receipt_text_forms),
        cmocka_unit_test(test_deliver_odd_lengths),
        cmocka_unit_test(test_deliver_malformed),
        cmocka_unit_test(test_data_sm),
        cmocka_unit_test(test_is_receipt),
        cmocka_unit_test(test_libsmpp34_agrees),
        cmocka_unit_test(test_mo_text),
        cmocka_unit_test(test_addr_format),
        cmocka_unit_test(test_status),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * fuzz_sms_encode.c -- libFuzzer target for channels/sms_encode.c. The
 * first two bytes pick flags, concatenation mode and reference; the rest
 * is the text. Checks what must always hold: parts are contiguous slices
 * of the input, no part is over 140 octets on the air, no escape pair or
 * surrogate pair is split, unchanged texts decode back to the input, and
 * the packed form unpacks to the unpacked one. Also feeds the bytes to
 * sms_decode and sms_udh_parse.
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Icommon
 *        tests/fuzz/fuzz_sms_encode.c channels/sms_encode.c common/buf.c
 *        common/err.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "channels/sms_encode.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sms_part parts[SMS_MAX_PARTS], pparts[SMS_MAX_PARTS];
static uint8_t out[SMS_BUF_MAX], pout[SMS_BUF_MAX];

#define CHECK(c) do { if (!(c)) abort(); } while (0)

/* The invariants of a successful plan (see the file comment). */
static void
check_parts(const struct sms_plan *pl, const struct sms_opts *o,
            const char *text, size_t len)
{
    size_t src = 0, units = 0, chars = 0, i;
    struct buf b;

    buf_init(&b, 1 << 20);
    for (i = 0; i < pl->nparts; i++) {
        const struct sms_part *p = &parts[i];
        const uint8_t *body = out + p->off + p->udh_len;
        size_t blen = p->len - p->udh_len;

        CHECK(p->src_off == src);
        CHECK(p->seq == i + 1);
        src += p->src_len;
        units += p->units;
        chars += p->chars;
        if (!pl->in_payload) {
            CHECK(p->air_octets <= 140);
            CHECK(p->len <= SMS_PART_MAX);
        }
        if (p->udh_len) {
            CHECK(out[p->off] == p->udh_len - 1);
            CHECK(out[p->off + p->udh_len - 2] == pl->nparts);
            CHECK(out[p->off + p->udh_len - 1] == i + 1);
        }
        if (pl->coding == SMS_GSM7) {
            CHECK(blen == p->units);
            for (size_t k = 0; k < blen; k++)
                CHECK(body[k] < 0x80);
            CHECK(blen == 0 || body[blen - 1] != 0x1B);
        } else {
            CHECK(blen == 2 * (size_t)p->units);
            CHECK(blen == 0 || !(body[0] >= 0xDC && body[0] <= 0xDF));
            CHECK(blen == 0 ||
                  !(body[blen - 2] >= 0xD8 && body[blen - 2] <= 0xDB));
        }
        CHECK(sms_decode(&b, pl->data_coding, body, blen) == 0);
    }
    CHECK(src == len);
    CHECK(units == pl->units && chars == pl->chars);
    if (pl->replaced == 0) {
        CHECK(b.len == len);
        CHECK(len == 0 || memcmp(b.data, text, len) == 0);
    }
    buf_free(&b);

    /* packed: same boundaries, <= 140 octets, unpacks to the same */
    if (pl->coding == SMS_GSM7 && o->concat != SMS_CONCAT_PAYLOAD) {
        struct sms_opts po = *o;
        struct sms_plan pp;
        uint8_t sept[SMS_PART_MAX];

        po.flags |= SMS_PACK7;
        CHECK(sms_plan(&pp, text, len, &po, pparts, SMS_MAX_PARTS, pout,
                       sizeof pout) == 0);
        CHECK(pp.nparts == pl->nparts);
        for (i = 0; i < pp.nparts; i++) {
            size_t h = pparts[i].udh_len;
            unsigned fill = (unsigned)((7 - (h * 8) % 7) % 7);

            if (h == 0)
                fill = 0;
            CHECK(pparts[i].len <= 140);
            CHECK(pparts[i].units == parts[i].units);
            CHECK(sms_unpack7(sept, pparts[i].units, pout + pparts[i].off + h,
                              pparts[i].len - h, fill) == 0);
            CHECK(memcmp(sept, out + parts[i].off + h, pparts[i].units) == 0);
        }
    }
}

/* One input: options from 2 bytes, text from the rest. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned fl[] = { 0, SMS_SMART, SMS_FORCE_GSM,
                                   SMS_SMART | SMS_FORCE_GSM, SMS_FORCE_UCS2,
                                   SMS_CAP16, SMS_SMART | SMS_CAP16, 0 };
    struct sms_opts o = { 0 };
    struct sms_plan pl, cnt;
    struct sms_udh u;
    const char *text;
    size_t len;
    struct buf b;
    int rc;

    if (size < 2)
        return 0;
    o.flags = fl[data[0] & 7];
    o.concat = (enum sms_concat)((data[0] >> 3) & 3);
    o.ref = data[1];
    o.replacement = (char)(data[0] & 0x40 ? ' ' : 0);
    o.max_parts = data[0] & 0x80 ? 4 : 0;
    text = (const char *)data + 2;
    len = size - 2;

    rc = sms_plan(&pl, text, len, &o, parts, SMS_MAX_PARTS, out, sizeof out);
    CHECK(sms_plan(&cnt, text, len, &o, NULL, 0, NULL, 0) == rc);
    if (rc == GW_EINVAL) {
        CHECK(pl.err_off < len);
    } else if (rc == 0) {
        CHECK(cnt.segments == pl.segments && cnt.nparts == pl.nparts);
        CHECK(pl.nparts >= 1 && pl.segments >= pl.nparts);
        check_parts(&pl, &o, text, len);
    } else {
        CHECK(rc == GW_ETOOBIG);
    }

    buf_init(&b, 1 << 20);
    for (unsigned dc = 0; dc <= 8; dc++)
        (void)sms_decode(&b, (uint8_t)dc, data, size);
    buf_free(&b);
    (void)sms_udh_parse(&u, data, size);
    return 0;
}

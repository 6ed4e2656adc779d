/*
 * test_sms_encode.c -- tests for channels/sms_encode.c: every entry of the
 * sms-split vectors (github.com/Codesleuth/split-sms test data, in
 * $SMS_SPLIT_DIR, by default ../shared/vectors/sms-split relative to the
 * repository root where tests run), then the edge cases: escape pair and
 * surrogate pair at a part boundary, '@' as 0x00, 0x09 as Ç, smart
 * encoding on and off, invalid UTF-8, 8- vs 16-bit reference capacities
 * and UDH bytes, SAR, message_payload, 7-bit packing, decoding.
 *
 * Adapted vectors: two gsm.test.json entries feed non-GSM text (snowmen,
 * whales) and expect upstream's forced GSM, each character replaced by a
 * space. sms_plan picks UCS-2 for such text; the runner checks that it
 * does, then re-plans with SMS_FORCE_GSM and replacement ' ' and checks
 * the expected parts. Those entries are reported as "adapted".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "channels/sms_encode.h"
#include "err.h"

static struct sms_part parts[SMS_MAX_PARTS];
static uint8_t out[SMS_BUF_MAX];
static uint8_t out2[SMS_BUF_MAX];

static const char *const adapted_names[] = {
    "Split 160 two-byte character message",
    "Split 160 surrogate-pairs character message",
};

/* A string of n copies of the UTF-8 character s. */
static char *
rep(const char *s, size_t n)
{
    size_t l = strlen(s);
    char *p = malloc(l * n + 1);

    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        memcpy(p + i * l, s, l);
    p[l * n] = '\0';
    return p;
}

/* Concatenate up to three strings into a new one. */
static char *
cat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *p = malloc(la + lb + lc + 1);

    assert_non_null(p);
    memcpy(p, a, la);
    memcpy(p + la, b, lb);
    memcpy(p + la + lb, c, lc + 1);
    return p;
}

/* sms_plan on a C string into the shared arrays. */
static int
plan_str(struct sms_plan *pl, const char *s, const struct sms_opts *o)
{
    return sms_plan(pl, s, strlen(s), o, parts, SMS_MAX_PARTS, out,
                    sizeof out);
}

/* The decoded text of part i's body (without UDH) into b. */
static void
part_text(struct buf *b, const struct sms_plan *pl, const uint8_t *base,
          size_t i)
{
    const struct sms_part *p = &parts[i];

    buf_reset(b);
    assert_int_equal(sms_decode(b, pl->data_coding, base + p->off +
                                p->udh_len, p->len - p->udh_len), 0);
}

/* Check the packed variant of the current plan: same boundaries, every
 * part <= 140 octets and unpacking gives the unpacked septets back. */
static int
check_packed(const struct sms_plan *pl, const char *msg, size_t len,
             const struct sms_opts *o)
{
    static struct sms_part pp[SMS_MAX_PARTS];
    struct sms_opts po = *o;
    struct sms_plan p2;
    uint8_t sept[SMS_PART_MAX];

    if (pl->coding != SMS_GSM7 || o->concat == SMS_CONCAT_PAYLOAD)
        return 1;
    po.flags |= SMS_PACK7;
    if (sms_plan(&p2, msg, len, &po, pp, SMS_MAX_PARTS, out2,
                 sizeof out2) != 0 || p2.nparts != pl->nparts)
        return 0;
    for (size_t i = 0; i < p2.nparts; i++) {
        size_t h = pp[i].udh_len, fill = h ? (7 - (h * 8) % 7) % 7 : 0;

        if (pp[i].units != parts[i].units || pp[i].len > 140 ||
            pp[i].len != pp[i].air_octets ||
            memcmp(out2 + pp[i].off, out + parts[i].off, h) != 0)
            return 0;
        if (sms_unpack7(sept, pp[i].units, out2 + pp[i].off + h,
                        pp[i].len - h, (unsigned)fill) != 0 ||
            memcmp(sept, out + parts[i].off + h, pp[i].units) != 0)
            return 0;
    }
    return 1;
}

/* One vector: 1 if it passes, else 0 with the reason printed. */
static int
run_case(const char *file, int gsm_file, json_t *tc, int *adapted)
{
    const char *desc = json_string_value(json_object_get(tc, "description"));
    json_t *msgj = json_object_get(tc, "message");
    json_t *want = json_object_get(tc, "parts");
    const char *msg = json_string_value(msgj);
    size_t len = json_string_length(msgj), i, n, tl = 0, tb = 0;
    struct sms_opts o = { .concat = SMS_CONCAT_UDH8, .ref = 7 };
    struct sms_plan pl;
    struct buf b;
    int ok = 0, is_adapted = 0, k;

    buf_init(&b, 1 << 16);
    if (desc == NULL || msg == NULL || !json_is_array(want)) {
        printf("  FAIL %s: malformed entry\n", file);
        goto out;
    }
    if (plan_str(&pl, msg, &o) != 0 || strlen(msg) != len) {
        printf("  FAIL %s: %s: sms_plan: %s\n", file, desc, pl.reason);
        goto out;
    }
    if (gsm_file && pl.coding == SMS_UCS2) {
        for (i = 0; i < sizeof adapted_names / sizeof adapted_names[0]; i++)
            if (strcmp(desc, adapted_names[i]) == 0)
                is_adapted = 1;
        if (!is_adapted) {
            printf("  FAIL %s: %s: not GSM\n", file, desc);
            goto out;
        }
        o.flags |= SMS_FORCE_GSM;
        o.replacement = ' ';
        if (plan_str(&pl, msg, &o) != 0 || pl.coding != SMS_GSM7) {
            printf("  FAIL %s: %s: forced GSM: %s\n", file, desc, pl.reason);
            goto out;
        }
    }
    if (!gsm_file && len > 0 && pl.coding != SMS_UCS2) {
        printf("  FAIL %s: %s: expected UCS-2\n", file, desc);
        goto out;
    }
    n = json_array_size(want);
    if (pl.nparts != n || pl.segments != n) {
        printf("  FAIL %s: %s: %u parts, want %zu\n", file, desc, pl.nparts,
               n);
        goto out;
    }
    k = pl.coding == SMS_UCS2 ? 2 : 1;
    for (i = 0; i < n; i++) {
        json_t *wp = json_array_get(want, i);
        const char *content = json_string_value(json_object_get(wp,
                                                                "content"));
        json_int_t wl = json_integer_value(json_object_get(wp, "length"));
        json_int_t wb = json_integer_value(json_object_get(wp, "bytes"));

        part_text(&b, &pl, out, i);
        if (content == NULL || parts[i].chars != wl ||
            (json_int_t)parts[i].units * k != wb ||
            strcmp(buf_cstr(&b), content) != 0 || parts[i].air_octets > 140 ||
            (!is_adapted &&
             (parts[i].src_len != strlen(content) ||
              memcmp(msg + parts[i].src_off, content, parts[i].src_len)))) {
            printf("  FAIL %s: %s: part %zu: %u chars %u units, want %lld "
                   "%lld\n", file, desc, i + 1, parts[i].chars,
                   parts[i].units, (long long)wl, (long long)wb);
            goto out;
        }
        tl += parts[i].chars;
        tb += parts[i].units * (size_t)k;
    }
    if ((json_int_t)tl !=
            json_integer_value(json_object_get(tc, "totalLength")) ||
        (json_int_t)tb != json_integer_value(json_object_get(tc,
                                                             "totalBytes")) ||
        tl != pl.chars || tb != pl.units * (size_t)k) {
        printf("  FAIL %s: %s: totals %zu/%zu\n", file, desc, tl, tb);
        goto out;
    }
    if (!check_packed(&pl, msg, len, &o)) {
        printf("  FAIL %s: %s: packed 7-bit variant\n", file, desc);
        goto out;
    }
    printf("  ok   %s: %s%s\n", file, desc,
           is_adapted ? " (adapted: forced GSM, non-GSM -> ' ')" : "");
    *adapted += is_adapted;
    ok = 1;
out:
    buf_free(&b);
    return ok;
}

/* Every sms-split vector; prints the summary line. */
static void
test_vectors(void **state)
{
    const char *dir = getenv("SMS_SPLIT_DIR");
    static const char *const files[] = { "gsm.test.json", "unicode.test.json" };
    int total = 0, passed = 0, adapted = 0;

    (void)state;
    if (dir == NULL)
        dir = "../shared/vectors/sms-split";
    for (size_t f = 0; f < 2; f++) {
        char path[1024];
        json_error_t jerr;
        json_t *root, *tc;
        size_t i;

        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        root = json_load_file(path, 0, &jerr);
        if (root == NULL)
            fail_msg("%s: %s", path, jerr.text);
        json_array_foreach(root, i, tc) {
            total++;
            passed += run_case(files[f], f == 0, tc, &adapted);
        }
        json_decref(root);
    }
    printf("sms-split: %d/%d passed\n", passed, total);
    printf("sms-split: %d adapted (forced GSM on non-GSM text)\n", adapted);
    assert_int_equal(total, 21);
    assert_int_equal(passed, total);
    assert_int_equal(adapted, 2);
}

/* '€' (ESC 0x65) where part 1 would end: the pair moves to part 2. */
static void
test_esc_pair_at_boundary(void **state)
{
    struct sms_opts o = { .concat = SMS_CONCAT_UDH8 };
    struct sms_plan pl;
    char *a152 = rep("a", 152), *a151 = rep("a", 151), *b10 = rep("b", 10);
    char *s1 = cat3(a152, "\xe2\x82\xac", b10);
    char *s2 = cat3(a151, "\xe2\x82\xac", b10);

    (void)state;
    assert_int_equal(plan_str(&pl, s1, &o), 0);
    assert_int_equal(pl.coding, SMS_GSM7);
    assert_int_equal(pl.units, 164);
    assert_int_equal(pl.nparts, 2);
    assert_int_equal(parts[0].units, 152);
    assert_int_equal(parts[0].chars, 152);
    assert_int_not_equal(out[parts[0].off + parts[0].len - 1], 0x1B);
    assert_int_equal(out[parts[1].off + 6], 0x1B);
    assert_int_equal(out[parts[1].off + 7], 0x65);
    assert_int_equal(parts[1].units, 12);
    assert_int_equal(parts[1].chars, 11);
    assert_int_equal(parts[1].src_off, 152);

    /* one septet earlier it fits exactly: 151 + 2 = 153 */
    assert_int_equal(plan_str(&pl, s2, &o), 0);
    assert_int_equal(parts[0].units, 153);
    assert_int_equal(out[parts[0].off + parts[0].len - 2], 0x1B);
    assert_int_equal(parts[0].air_octets, 140);

    /* the 16-bit reference: 152 per part, so the pair moves again */
    o.concat = SMS_CONCAT_UDH16;
    assert_int_equal(plan_str(&pl, s2, &o), 0);
    assert_int_equal(parts[0].units, 151);
    assert_int_equal(out[parts[1].off + 7], 0x1B);
    free(a152), free(a151), free(b10), free(s1), free(s2);
}

/* An emoji (surrogate pair) where part 1 would end. */
static void
test_surrogate_at_boundary(void **state)
{
    struct sms_opts o = { .concat = SMS_CONCAT_UDH8 };
    struct sms_plan pl;
    char *zh66 = rep("\xd0\xb6", 66), *zh5 = rep("\xd0\xb6", 5);
    char *s = cat3(zh66, "\xf0\x9f\x98\x80", zh5);
    const uint8_t *p1, *p2;
    struct buf b;

    (void)state;
    assert_int_equal(plan_str(&pl, s, &o), 0);
    assert_int_equal(pl.coding, SMS_UCS2);
    assert_int_equal(pl.data_coding, 0x08);
    assert_int_equal(pl.units, 73);
    assert_int_equal(pl.chars, 72);
    assert_int_equal(pl.nparts, 2);
    assert_int_equal(parts[0].units, 66);
    assert_int_equal(parts[0].len, 6 + 132);
    p1 = out + parts[0].off + parts[0].len - 2;
    assert_false(p1[0] >= 0xD8 && p1[0] <= 0xDB);
    p2 = out + parts[1].off + 6;
    assert_memory_equal(p2, "\xd8\x3d\xde\x00", 4);
    assert_int_equal(parts[1].units, 7);
    assert_int_equal(parts[1].chars, 6);
    for (size_t i = 0; i < pl.nparts; i++)
        assert_true(parts[i].len <= 140 && parts[i].air_octets <= 140);

    /* the parts decode back to the input */
    buf_init(&b, 4096);
    for (size_t i = 0; i < pl.nparts; i++)
        assert_int_equal(sms_decode(&b, 0x08, out + parts[i].off + 6,
                                    parts[i].len - 6), 0);
    assert_string_equal(buf_cstr(&b), s);
    buf_free(&b);
    free(zh66), free(zh5), free(s);
}

/* '@' is septet 0x00: counted, written and split like any character. */
static void
test_at_sign(void **state)
{
    struct sms_opts o = { .concat = SMS_CONCAT_UDH8 };
    struct sms_plan pl;
    char *at = rep("@", 200);
    static const uint8_t zeros[153];
    struct buf b;

    (void)state;
    assert_int_equal(plan_str(&pl, "a@b$_", &o), 0);
    assert_int_equal(pl.coding, SMS_GSM7);
    assert_int_equal(pl.units, 5);
    assert_memory_equal(out, "\x61\x00\x62\x02\x11", 5);
    assert_int_equal(parts[0].len, 5);

    assert_int_equal(plan_str(&pl, at, &o), 0);
    assert_int_equal(pl.nparts, 2);
    assert_int_equal(parts[0].len, 6 + 153);
    assert_memory_equal(out + 6, zeros, 153);
    assert_int_equal(parts[1].len, 6 + 47);
    buf_init(&b, 4096);
    assert_int_equal(sms_decode(&b, 0x00, out + 6, 153), 0);
    assert_int_equal(b.len, 153);
    assert_int_equal(strspn(buf_cstr(&b), "@"), 153);
    buf_free(&b);
    free(at);
}

/* 0x09 is capital Ç; ç is not GSM; TAB is not 0x09. */
static void
test_c_cedilla(void **state)
{
    struct sms_opts o = { 0 };
    struct sms_plan pl;
    struct buf b;

    (void)state;
    assert_int_equal(plan_str(&pl, "\xc3\x87", &o), 0);
    assert_int_equal(pl.coding, SMS_GSM7);
    assert_int_equal(out[0], 0x09);
    assert_int_equal(plan_str(&pl, "\xc3\xa7", &o), 0);
    assert_int_equal(pl.coding, SMS_UCS2);
    assert_memory_equal(out, "\x00\xe7", 2);
    assert_int_equal(plan_str(&pl, "a\tb", &o), 0);
    assert_int_equal(pl.coding, SMS_UCS2);
    o.flags = SMS_SMART;
    assert_int_equal(plan_str(&pl, "a\tb", &o), 0);
    assert_int_equal(pl.coding, SMS_GSM7);
    assert_memory_equal(out, "a b", 3);
    buf_init(&b, 64);
    assert_int_equal(sms_decode(&b, 0x00, (const uint8_t *)"\x09", 1), 0);
    assert_string_equal(buf_cstr(&b), "\xc3\x87");
    buf_free(&b);
}

/* Smart encoding keeps typographic text in GSM, only when switched on,
 * and never touches a text that needs UCS-2 anyway. */
static void
test_smart_encoding(void **state)
{
    /* “Hello” – it’s… (non-breaking space before the dash) */
    const char *s = "\xe2\x80\x9cHello\xe2\x80\x9d\xc2\xa0\xe2\x80\x93 "
                    "it\xe2\x80\x99s\xe2\x80\xa6";
    const char *emoji = "\xe2\x80\x9cHi\xe2\x80\x9d \xf0\x9f\x90\xb3";
    struct sms_opts o = { 0 };
    struct sms_plan pl;
    struct buf b;

    (void)state;
    assert_int_equal(plan_str(&pl, s, &o), 0);
    assert_int_equal(pl.coding, SMS_UCS2);
    assert_int_equal(pl.replaced, 0);

    o.flags = SMS_SMART;
    assert_int_equal(plan_str(&pl, s, &o), 0);
    assert_int_equal(pl.coding, SMS_GSM7);
    assert_int_equal(pl.replaced, 6);
    assert_int_equal(pl.chars, 15);
    assert_int_equal(pl.units, 17);         /* "..." is 3 septets */
    assert_int_equal(parts[0].src_len, strlen(s));
    buf_init(&b, 256);
    part_text(&b, &pl, out, 0);
    assert_string_equal(buf_cstr(&b), "\"Hello\" - it's...");

    /* a whale needs UCS-2: the quotes stay as they are */
    assert_int_equal(plan_str(&pl, emoji, &o), 0);
    assert_int_equal(pl.coding, SMS_UCS2);
    assert_int_equal(pl.replaced, 0);
    part_text(&b, &pl, out, 0);
    assert_string_equal(buf_cstr(&b), emoji);

    /* smart + forced: look-alikes first, the rest replaced */
    o.flags = SMS_SMART | SMS_FORCE_GSM;
    assert_int_equal(plan_str(&pl, emoji, &o), 0);
    assert_int_equal(pl.coding, SMS_GSM7);
    assert_int_equal(pl.replaced, 3);
    part_text(&b, &pl, out, 0);
    assert_string_equal(buf_cstr(&b), "\"Hi\" ?");

    /* zero-width space and soft hyphen disappear; caret via ESC */
    o.flags = SMS_SMART;
    assert_int_equal(plan_str(&pl, "a\xe2\x80\x8b" "b\xc2\xad" "c\xcb\x86", &o),
                     0);
    assert_int_equal(pl.coding, SMS_GSM7);
    assert_int_equal(pl.units, 5);
    assert_memory_equal(out, "abc\x1b\x14", 5);
    buf_free(&b);
}

/* Invalid UTF-8 fails with the offset and a reason. */
static void
test_invalid_utf8(void **state)
{
    static const struct { const char *s; size_t len, off; } bad[] = {
        { "ab\xc0\xaf", 4, 2 },           /* overlong '/' */
        { "\xe0\x80\xaf", 3, 0 },         /* overlong, 3 bytes */
        { "x\xed\xa0\x80", 4, 1 },        /* UTF-16 surrogate */
        { "\xf4\x90\x80\x80", 4, 0 },     /* above U+10FFFF */
        { "abc\xe2\x82", 5, 3 },          /* truncated */
        { "\xff", 1, 0 },
        { "a\x80", 2, 1 },                /* lone continuation */
        { "\xc3\x28", 2, 0 },             /* bad continuation */
        { "ok\xf8\x88\x80\x80\x80", 7, 2 }, /* 5-byte form */
    };
    struct sms_opts o = { .flags = SMS_SMART | SMS_FORCE_GSM };
    struct sms_plan pl;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = sms_plan(&pl, bad[i].s, bad[i].len, &o, parts,
                          SMS_MAX_PARTS, out, sizeof out);

        assert_int_equal(rc, GW_EINVAL);
        assert_int_equal(pl.err_off, bad[i].off);
        assert_non_null(strstr(pl.reason, "invalid UTF-8"));
    }
    /* NUL is valid UTF-8 but not GSM; it does not end the text */
    assert_int_equal(sms_plan(&pl, "a\0b", 3, NULL, parts, SMS_MAX_PARTS,
                              out, sizeof out), 0);
    assert_int_equal(pl.coding, SMS_UCS2);
    assert_int_equal(pl.units, 3);
}

/* 8- vs 16-bit reference: capacities, UDH bytes, esm_class. */
static void
test_udh_capacities(void **state)
{
    struct sms_opts o = { .concat = SMS_CONCAT_UDH8, .ref = 0x1234 };
    struct sms_plan pl;
    char *a306 = rep("a", 306), *zh134 = rep("\xd0\xb6", 134);

    (void)state;
    assert_int_equal(plan_str(&pl, a306, &o), 0);
    assert_int_equal(pl.nparts, 2);
    assert_int_equal(pl.esm_class, 0x40);
    assert_int_equal(pl.ref, 0x34);
    assert_memory_equal(out + parts[0].off, "\x05\x00\x03\x34\x02\x01", 6);
    assert_memory_equal(out + parts[1].off, "\x05\x00\x03\x34\x02\x02", 6);
    assert_int_equal(parts[0].udh_len, 6);
    assert_int_equal(parts[0].units, 153);
    assert_int_equal(parts[1].units, 153);
    assert_int_equal(parts[1].off, 159);
    assert_int_equal(pl.bytes, 2 * 159);

    o.concat = SMS_CONCAT_UDH16;
    assert_int_equal(plan_str(&pl, a306, &o), 0);
    assert_int_equal(pl.nparts, 3);
    assert_int_equal(pl.ref, 0x1234);
    for (unsigned i = 0; i < 3; i++) {
        uint8_t want[7] = { 6, 8, 4, 0x12, 0x34, 3, (uint8_t)(i + 1) };

        assert_memory_equal(out + parts[i].off, want, 7);
        assert_int_equal(parts[i].udh_len, 7);
        assert_int_equal(parts[i].seq, i + 1);
        assert_true(parts[i].air_octets <= 140);
    }
    assert_int_equal(parts[0].units, 152);
    assert_int_equal(parts[2].units, 2);
    assert_int_equal(parts[0].air_octets, 140);

    /* UCS-2: 67 per part with 8-bit, 66 with 16-bit */
    o.concat = SMS_CONCAT_UDH8;
    assert_int_equal(plan_str(&pl, zh134, &o), 0);
    assert_int_equal(pl.nparts, 2);
    assert_int_equal(parts[0].len, 6 + 134);
    assert_int_equal(parts[0].air_octets, 140);
    o.concat = SMS_CONCAT_UDH16;
    assert_int_equal(plan_str(&pl, zh134, &o), 0);
    assert_int_equal(pl.nparts, 3);
    assert_int_equal(parts[0].len, 7 + 132);
    assert_int_equal(parts[2].units, 2);

    /* one part: no UDH whatever the mode */
    assert_int_equal(plan_str(&pl, "short", &o), 0);
    assert_int_equal(pl.nparts, 1);
    assert_int_equal(pl.esm_class, 0);
    assert_int_equal(parts[0].udh_len, 0);
    free(a306), free(zh134);
}

/* SAR: no UDH, same capacities; payload: one part. */
static void
test_sar_and_payload(void **state)
{
    struct sms_opts o = { .concat = SMS_CONCAT_SAR, .ref = 0xBEEF };
    struct sms_plan pl;
    char *a306 = rep("a", 306), *a500 = rep("a", 500), *a2000;

    (void)state;
    assert_int_equal(plan_str(&pl, a306, &o), 0);
    assert_int_equal(pl.nparts, 2);
    assert_int_equal(pl.sar, 1);
    assert_int_equal(pl.esm_class, 0);
    assert_int_equal(pl.ref, 0xBEEF);
    assert_int_equal(parts[0].udh_len, 0);
    assert_int_equal(parts[0].len, 153);
    assert_int_equal(parts[1].off, 153);
    o.flags = SMS_CAP16;
    assert_int_equal(plan_str(&pl, a306, &o), 0);
    assert_int_equal(pl.nparts, 3);
    assert_int_equal(parts[0].len, 152);

    o = (struct sms_opts){ .concat = SMS_CONCAT_PAYLOAD };
    assert_int_equal(plan_str(&pl, a500, &o), 0);
    assert_int_equal(pl.nparts, 1);
    assert_int_equal(pl.segments, 4);   /* 153 * 3 + 41 */
    assert_int_equal(pl.in_payload, 1);
    assert_int_equal(pl.esm_class, 0);
    assert_int_equal(parts[0].len, 500);
    assert_int_equal(plan_str(&pl, "hi", &o), 0);
    assert_int_equal(pl.in_payload, 0);
    assert_int_equal(pl.segments, 1);
    a2000 = rep("a", 2000);
    assert_int_equal(plan_str(&pl, a2000, &o), GW_ETOOBIG);
    o.payload_max = 4096;
    assert_int_equal(plan_str(&pl, a2000, &o), 0);
    assert_int_equal(pl.segments, 14);
    free(a306), free(a500), free(a2000);
}

/* Counting without output, limits, and arrays that are too small. */
static void
test_count_and_limits(void **state)
{
    struct sms_opts o = { .concat = SMS_CONCAT_UDH8 };
    struct sms_plan pl;
    char *a400 = rep("a", 400), *huge = rep("a", 153 * 255 + 1);
    char *max = rep("a", 153 * 255);

    (void)state;
    assert_int_equal(sms_plan(&pl, a400, 400, &o, NULL, 0, NULL, 0), 0);
    assert_int_equal(pl.segments, 3);
    assert_int_equal(pl.units, 400);
    assert_int_equal(sms_plan(&pl, a400, 400, &o, parts, 2, out, sizeof out),
                     GW_ETOOBIG);
    assert_int_equal(pl.nparts, 3);
    assert_int_equal(sms_plan(&pl, a400, 400, &o, parts, 3, out, 400),
                     GW_ETOOBIG);
    assert_int_equal(sms_plan(&pl, a400, 400, &o, parts, 3, out, 418), 0);
    assert_int_equal(sms_plan(&pl, a400, 400, &o, parts, 3, NULL, 0), 0);
    assert_int_equal(parts[2].src_off, 306);
    assert_int_equal(pl.bytes, 0);
    o.max_parts = 2;
    assert_int_equal(plan_str(&pl, a400, &o), GW_ETOOBIG);
    assert_int_equal(pl.nparts, 3);
    assert_non_null(strstr(pl.reason, "3 parts"));
    o.max_parts = 0;
    assert_int_equal(plan_str(&pl, huge, &o), GW_ETOOBIG);
    assert_int_equal(plan_str(&pl, max, &o), 0);
    assert_int_equal(pl.nparts, 255);
    assert_int_equal(out[parts[254].off + 4], 255);
    assert_int_equal(out[parts[254].off + 5], 255);

    assert_int_equal(plan_str(&pl, "", &o), 0);
    assert_int_equal(pl.nparts, 1);
    assert_int_equal(parts[0].len, 0);
    assert_int_equal(pl.coding, SMS_GSM7);
    free(a400), free(huge), free(max);
}

/* 7-bit packing: a known vector, fill bits after a UDH, round trip. */
static void
test_pack7(void **state)
{
    struct sms_opts o = { .flags = SMS_PACK7, .concat = SMS_CONCAT_UDH8 };
    struct sms_plan pl;
    uint8_t sept[160];
    char *ext = rep("x{}[]\xe2\x82\xac", 50);

    (void)state;
    assert_int_equal(plan_str(&pl, "hello", &o), 0);
    assert_int_equal(parts[0].len, 5);
    assert_memory_equal(out, "\xe8\x32\x9b\xfd\x06", 5);
    assert_int_equal(sms_unpack7(sept, 5, out, 5, 0), 0);
    assert_memory_equal(sept, "hello", 5);
    assert_int_equal(sms_unpack7(sept, 6, out, 5, 0), GW_EPARSE);

    /* 160 septets pack into exactly 140 octets */
    {
        char *a160 = rep("a", 160);

        assert_int_equal(plan_str(&pl, a160, &o), 0);
        assert_int_equal(parts[0].len, 140);
        free(a160);
    }
    /* ext-heavy text, 8- and 16-bit UDH: each part <= 140 and unpacks */
    for (int c = 0; c < 2; c++) {
        o.concat = c ? SMS_CONCAT_UDH16 : SMS_CONCAT_UDH8;
        assert_int_equal(plan_str(&pl, ext, &o), 0);
        for (size_t i = 0; i < pl.nparts; i++) {
            size_t h = parts[i].udh_len;
            unsigned fill = (unsigned)((7 - (h * 8) % 7) % 7);

            assert_true(parts[i].len <= 140);
            assert_int_equal(parts[i].len, parts[i].air_octets);
            assert_int_equal(sms_unpack7(sept, parts[i].units,
                                         out + parts[i].off + h,
                                         parts[i].len - h, fill), 0);
            assert_int_not_equal(sept[parts[i].units - 1], 0x1B);
        }
        /* UDH8: 6 octets = 48 bits, so 1 fill bit (bit 0) comes first */
        if (!c)
            assert_int_equal(out[parts[0].off + 6] & 1, 0);
    }
    free(ext);
}

/* sms_decode for each data_coding and the odd cases. */
static void
test_decode(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 256);
    /* unknown escape -> basic character; lone escape -> space */
    assert_int_equal(sms_decode(&b, 0x00, (const uint8_t *)"\x1b\x65\x1b"
                                "\x41\x1b", 5), 0);
    assert_string_equal(buf_cstr(&b), "\xe2\x82\xac" "A ");
    buf_reset(&b);
    /* UTF-16BE: a pair, a lone high surrogate, an odd byte */
    assert_int_equal(sms_decode(&b, 0x08, (const uint8_t *)"\xd8\x3d\xdc\x33"
                                "\xd8\x3d\x00\x41\x00", 9), 0);
    assert_string_equal(buf_cstr(&b), "\xf0\x9f\x90\xb3\xef\xbf\xbd" "A"
                        "\xef\xbf\xbd");
    buf_reset(&b);
    assert_int_equal(sms_decode(&b, 0x03, (const uint8_t *)"\xe9", 1), 0);
    assert_string_equal(buf_cstr(&b), "\xc3\xa9");
    buf_reset(&b);
    assert_int_equal(sms_decode(&b, 0x01, (const uint8_t *)"a\xe9", 2), 0);
    assert_string_equal(buf_cstr(&b), "a\xef\xbf\xbd");
    assert_int_equal(sms_decode(&b, 0x04, (const uint8_t *)"a", 1),
                     GW_EINVAL);
    buf_free(&b);
}

/* sms_udh_parse: 8- and 16-bit elements, bad lengths. */
static void
test_udh_parse(void **state)
{
    struct sms_udh u;

    (void)state;
    assert_int_equal(sms_udh_parse(&u, (const uint8_t *)"\x05\x00\x03\x2a"
                                   "\x03\x02hi", 8), 0);
    assert_int_equal(u.len, 6);
    assert_true(u.concat);
    assert_int_equal(u.ref, 0x2a);
    assert_int_equal(u.total, 3);
    assert_int_equal(u.seq, 2);
    /* a port element, then a 16-bit concatenation element */
    assert_int_equal(sms_udh_parse(&u, (const uint8_t *)"\x0c\x05\x04\x0b"
                                   "\x84\x23\xf0\x08\x04\x12\x34\x02\x01", 13),
                     0);
    assert_int_equal(u.ref, 0x1234);
    assert_int_equal(u.seq, 1);
    assert_int_equal(sms_udh_parse(&u, (const uint8_t *)"\x05\x00\x03\x2a",
                                   4), GW_EPARSE);
    assert_int_equal(sms_udh_parse(&u, (const uint8_t *)"\x03\x00\x04\x01",
                                   4), GW_EPARSE);
    assert_int_equal(sms_udh_parse(&u, (const uint8_t *)"", 0), GW_EPARSE);
}

/* Forced GSM and forced UCS-2. */
static void
test_forced(void **state)
{
    struct sms_opts o = { .flags = SMS_FORCE_GSM };
    struct sms_plan pl;

    (void)state;
    assert_int_equal(plan_str(&pl, "Hi \xe2\x98\x83 \xf0\x9f\x90\xb3", &o), 0);
    assert_int_equal(pl.coding, SMS_GSM7);
    assert_int_equal(pl.replaced, 2);
    assert_memory_equal(out, "Hi ? ?", 6);
    o.replacement = '`';            /* not GSM: falls back to '?' */
    assert_int_equal(plan_str(&pl, "\xe2\x98\x83", &o), 0);
    assert_int_equal(out[0], '?');
    o.replacement = '@';
    assert_int_equal(plan_str(&pl, "\xe2\x98\x83", &o), 0);
    assert_int_equal(out[0], 0x00);
    o = (struct sms_opts){ .flags = SMS_FORCE_UCS2 };
    assert_int_equal(plan_str(&pl, "ab", &o), 0);
    assert_int_equal(pl.coding, SMS_UCS2);
    assert_memory_equal(out, "\x00\x61\x00\x62", 4);
    assert_string_equal(sms_coding_name(pl.coding), "ucs2");
}

/* Not a timed test: prints what planning a ~100-character text costs. */
static void
test_speed(void **state)
{
    const char *s = "Hi Anna, your appointment at Dr. Smith's is on 12 May "
                    "at 10:30. Reply STOP to opt out. Info: 0800 123 456";
    struct sms_opts o = { .flags = SMS_SMART, .concat = SMS_CONCAT_UDH8 };
    struct sms_plan pl;
    struct timespec t0, t1;
    int n = 100000;
    double ns;

    (void)state;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++)
        assert_int_equal(plan_str(&pl, s, &o), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ns = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n;
    printf("sms_plan: %.0f ns per %zu-character text\n", ns, strlen(s));
}

/* All tests. */
int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_esc_pair_at_boundary),
        cmocka_unit_test(test_surrogate_at_boundary),
        cmocka_unit_test(test_at_sign),
        cmocka_unit_test(test_c_cedilla),
        cmocka_unit_test(test_smart_encoding),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_udh_capacities),
        cmocka_unit_test(test_sar_and_payload),
        cmocka_unit_test(test_count_and_limits),
        cmocka_unit_test(test_pack7),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_udh_parse),
        cmocka_unit_test(test_forced),
        cmocka_unit_test(test_speed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

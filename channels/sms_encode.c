/*
 * sms_encode.c -- GSM 03.38 / UCS-2 encoding and segmentation of SMS text
 * (see sms_encode.h for the rules). Three linear passes over the input:
 * validate the UTF-8 and see which encodings can carry it, count units
 * and parts, then (if asked) write the parts. Septet buffers hold 0x00
 * for '@', so nothing here uses str* on them.
 */
#include "sms_encode.h"

#include "../common/utf8.h"

#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "err.h"

#define NONE    (-1)
#define EXT     0x100           /* ESC + code, 2 septets */
#define ESC     0x1B

#define GSM_SINGLE   160
#define GSM_MULTI8   153
#define GSM_MULTI16  152
#define UCS2_SINGLE  70
#define UCS2_MULTI8  67
#define UCS2_MULTI16 66
#define AIR_MAX      140

#define UDH8_LEN  6
#define UDH16_LEN 7

/* GSM 03.38 default alphabet, code -> Unicode. 0x1B (escape) is mapped to
 * U+00A0 as the spec suggests for display; it never decodes alone here. */
static const uint16_t gsm_basic[128] = {
    0x0040, 0x00A3, 0x0024, 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC,
    0x00F2, 0x00C7, 0x000A, 0x00D8, 0x00F8, 0x000D, 0x00C5, 0x00E5,
    0x0394, 0x005F, 0x03A6, 0x0393, 0x039B, 0x03A9, 0x03A0, 0x03A8,
    0x03A3, 0x0398, 0x039E, 0x00A0, 0x00C6, 0x00E6, 0x00DF, 0x00C9,
    0x0020, 0x0021, 0x0022, 0x0023, 0x00A4, 0x0025, 0x0026, 0x0027,
    0x0028, 0x0029, 0x002A, 0x002B, 0x002C, 0x002D, 0x002E, 0x002F,
    0x0030, 0x0031, 0x0032, 0x0033, 0x0034, 0x0035, 0x0036, 0x0037,
    0x0038, 0x0039, 0x003A, 0x003B, 0x003C, 0x003D, 0x003E, 0x003F,
    0x00A1, 0x0041, 0x0042, 0x0043, 0x0044, 0x0045, 0x0046, 0x0047,
    0x0048, 0x0049, 0x004A, 0x004B, 0x004C, 0x004D, 0x004E, 0x004F,
    0x0050, 0x0051, 0x0052, 0x0053, 0x0054, 0x0055, 0x0056, 0x0057,
    0x0058, 0x0059, 0x005A, 0x00C4, 0x00D6, 0x00D1, 0x00DC, 0x00A7,
    0x00BF, 0x0061, 0x0062, 0x0063, 0x0064, 0x0065, 0x0066, 0x0067,
    0x0068, 0x0069, 0x006A, 0x006B, 0x006C, 0x006D, 0x006E, 0x006F,
    0x0070, 0x0071, 0x0072, 0x0073, 0x0074, 0x0075, 0x0076, 0x0077,
    0x0078, 0x0079, 0x007A, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0,
};

/* The extension table (after ESC). */
static const struct { uint8_t code; uint16_t cp; } gsm_ext[] = {
    { 0x0A, 0x000C }, { 0x14, 0x005E }, { 0x28, 0x007B }, { 0x29, 0x007D },
    { 0x2F, 0x005C }, { 0x3C, 0x005B }, { 0x3D, 0x007E }, { 0x3E, 0x005D },
    { 0x40, 0x007C }, { 0x65, 0x20AC },
};

/* Unicode -> GSM for ASCII: a code, EXT | code, or NONE. Note '@' -> 0x00,
 * '$' -> 0x02, '_' -> 0x11, no '`', and TAB is not 0x09 (that is Ç). */
static const int16_t ascii_gsm[128] = {
    NONE, NONE, NONE, NONE, NONE, NONE, NONE, NONE,
    NONE, NONE, 0x0A, NONE, EXT | 0x0A, 0x0D, NONE, NONE,
    NONE, NONE, NONE, NONE, NONE, NONE, NONE, NONE,
    NONE, NONE, NONE, NONE, NONE, NONE, NONE, NONE,
    0x20, 0x21, 0x22, 0x23, 0x02, 0x25, 0x26, 0x27,
    0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x2D, 0x2E, 0x2F,
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F,
    0x00, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
    0x48, 0x49, 0x4A, 0x4B, 0x4C, 0x4D, 0x4E, 0x4F,
    0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57,
    0x58, 0x59, 0x5A, EXT | 0x3C, EXT | 0x2F, EXT | 0x3E, EXT | 0x14, 0x11,
    NONE, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
    0x68, 0x69, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F,
    0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77,
    0x78, 0x79, 0x7A, EXT | 0x28, EXT | 0x40, EXT | 0x29, EXT | 0x3D, NONE,
};

/* Non-ASCII characters of the basic table, sorted by code point. */
static const struct { uint16_t cp; uint8_t code; } gsm_hi[] = {
    { 0x00A1, 0x40 }, { 0x00A3, 0x01 }, { 0x00A4, 0x24 }, { 0x00A5, 0x03 },
    { 0x00A7, 0x5F }, { 0x00BF, 0x60 }, { 0x00C4, 0x5B }, { 0x00C5, 0x0E },
    { 0x00C6, 0x1C }, { 0x00C7, 0x09 }, { 0x00C9, 0x1F }, { 0x00D1, 0x5D },
    { 0x00D6, 0x5C }, { 0x00D8, 0x0B }, { 0x00DC, 0x5E }, { 0x00DF, 0x1E },
    { 0x00E0, 0x7F }, { 0x00E4, 0x7B }, { 0x00E5, 0x0F }, { 0x00E6, 0x1D },
    { 0x00E8, 0x04 }, { 0x00E9, 0x05 }, { 0x00EC, 0x07 }, { 0x00F1, 0x7D },
    { 0x00F2, 0x08 }, { 0x00F6, 0x7C }, { 0x00F8, 0x0C }, { 0x00F9, 0x06 },
    { 0x00FC, 0x7E }, { 0x0393, 0x13 }, { 0x0394, 0x10 }, { 0x0398, 0x19 },
    { 0x039B, 0x14 }, { 0x039E, 0x1A }, { 0x03A0, 0x16 }, { 0x03A3, 0x18 },
    { 0x03A6, 0x12 }, { 0x03A8, 0x17 }, { 0x03A9, 0x15 },
};

/* Smart encoding: look-alikes, each replaced by GSM characters (ASCII
 * here, so the replacement is looked up like input). "" drops the
 * character (zero-width and soft hyphen). Letters are left alone: a
 * smart-mapped text still reads the same. Sorted by code point. */
static const struct { uint32_t cp; const char *to; } smart_map[] = {
    { 0x0009, " " },   { 0x0060, "'" },   { 0x00A0, " " },
    { 0x00AB, "\"" },  { 0x00AD, "" },    { 0x00B4, "'" },
    { 0x00BB, "\"" },  { 0x00D7, "x" },   { 0x02BB, "'" },
    { 0x02BC, "'" },   { 0x02C6, "^" },   { 0x02DC, "~" },
    { 0x2000, " " },   { 0x2001, " " },   { 0x2002, " " },
    { 0x2003, " " },   { 0x2004, " " },   { 0x2005, " " },
    { 0x2006, " " },   { 0x2007, " " },   { 0x2008, " " },
    { 0x2009, " " },   { 0x200A, " " },   { 0x200B, "" },
    { 0x200C, "" },    { 0x200D, "" },    { 0x2010, "-" },
    { 0x2011, "-" },   { 0x2012, "-" },   { 0x2013, "-" },
    { 0x2014, "-" },   { 0x2015, "-" },   { 0x2018, "'" },
    { 0x2019, "'" },   { 0x201A, "," },   { 0x201B, "'" },
    { 0x201C, "\"" },  { 0x201D, "\"" },  { 0x201E, "\"" },
    { 0x201F, "\"" },  { 0x2022, "*" },   { 0x2026, "..." },
    { 0x2028, "\n" },  { 0x2029, "\n" },  { 0x202F, " " },
    { 0x2032, "'" },   { 0x2033, "\"" },  { 0x2039, "<" },
    { 0x203A, ">" },   { 0x2044, "/" },   { 0x205F, " " },
    { 0x2060, "" },    { 0x2212, "-" },   { 0x3000, " " },
    { 0xFEFF, "" },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* One input character as it will be sent: up to 6 septets (a smart
 * mapping like "..." gives 3) or 1-2 UTF-16 units. It is atomic: a part
 * boundary never falls inside it. */
struct item {
    uint8_t  n;        /* septets or units */
    uint8_t  replaced;
    uint8_t  sept[6];
    uint16_t unit[2];
};

enum mode { M_GSM, M_GSM_SMART, M_GSM_FORCED, M_UCS2 };

/* The GSM code of a code point: 0..127, EXT|code, or NONE. */
static int
gsm_lookup(uint32_t cp)
{
    size_t lo = 0, hi = NELEM(gsm_hi);

    if (cp < 128)
        return ascii_gsm[cp];
    if (cp == 0x20AC)
        return EXT | 0x65;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (gsm_hi[mid].cp == cp)
            return gsm_hi[mid].code;
        if (gsm_hi[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NONE;
}

/* The look-alike replacement for cp, or NULL. */
static const char *
smart_lookup(uint32_t cp)
{
    size_t lo = 0, hi = NELEM(smart_map);

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (smart_map[mid].cp == cp)
            return smart_map[mid].to;
        if (smart_map[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Append the septets of GSM code g (not NONE) to it. */
static void
item_put(struct item *it, int g)
{
    if (g & EXT) {
        it->sept[it->n++] = ESC;
        it->sept[it->n++] = (uint8_t)(g & 0x7F);
    } else {
        it->sept[it->n++] = (uint8_t)g;
    }
}

/* Build the item for code point cp in mode m; smart: look-alikes may be
 * used (M_GSM_SMART always, M_GSM_FORCED with SMS_SMART). */
static void
item_make(struct item *it, uint32_t cp, enum mode m, int smart, char repl)
{
    const char *s;
    int g;

    it->n = 0;
    it->replaced = 0;
    if (m == M_UCS2) {
        if (cp > 0xFFFF) {
            cp -= 0x10000;
            it->unit[0] = (uint16_t)(0xD800 | (cp >> 10));
            it->unit[1] = (uint16_t)(0xDC00 | (cp & 0x3FF));
            it->n = 2;
        } else {
            it->unit[0] = (uint16_t)cp;
            it->n = 1;
        }
        return;
    }
    if ((g = gsm_lookup(cp)) != NONE) {
        item_put(it, g);
        return;
    }
    it->replaced = 1;
    if (smart && (s = smart_lookup(cp)) != NULL) {
        for (; *s; s++)
            item_put(it, gsm_lookup((uint8_t)*s));
        return;
    }
    /* M_GSM_FORCED; M_GSM never gets here (pass 1 saw only GSM) */
    item_put(it, gsm_lookup((uint8_t)repl));
}

/* Pack n septets LSB first, starting fill bits into dst (zeroed here).
 * Returns the octets written: (fill + 7n + 7) / 8. */
static size_t
pack7(uint8_t *dst, const uint8_t *sept, size_t n, unsigned fill)
{
    size_t bits = fill + 7 * n, octets = (bits + 7) / 8, i;

    memset(dst, 0, octets);
    for (i = 0; i < n; i++) {
        size_t pos = fill + 7 * i, b = pos / 8;
        unsigned sh = pos % 8;

        dst[b] |= (uint8_t)((sept[i] & 0x7F) << sh);
        if (sh > 1)
            dst[b + 1] |= (uint8_t)((sept[i] & 0x7F) >> (8 - sh));
    }
    return octets;
}

/* See sms_encode.h: septet i starts at bit fill + 7i, LSB first. */
int
sms_unpack7(uint8_t *dst, size_t nsept, const uint8_t *src, size_t srclen,
            unsigned fill)
{
    size_t i;

    if (fill > 6 || (fill + 7 * nsept + 7) / 8 > srclen)
        return GW_EPARSE;
    for (i = 0; i < nsept; i++) {
        size_t pos = fill + 7 * i, b = pos / 8;
        unsigned sh = pos % 8, v = src[b] >> sh;

        if (sh > 1)
            v |= (unsigned)src[b + 1] << (8 - sh);
        dst[i] = (uint8_t)(v & 0x7F);
    }
    return 0;
}

/* Format the failure reason into the plan. */
static void
set_reason(struct sms_plan *p, const char *fmt, size_t a, size_t b)
{
    snprintf(p->reason, sizeof p->reason, fmt, a, b);
}

/* What pass 1 learns about the text. */
struct scan {
    enum mode m;
    size_t chars;
    size_t gsm_units;   /* septets, when every character is GSM */
    size_t ucs2_units;  /* UTF-16 units */
};

/* Pass 1: validate and choose the mode. */
static int
scan(struct sms_plan *plan, const uint8_t *t, size_t len, unsigned flags,
     struct scan *sc)
{
    int strict = 1, smart = 1, g;
    size_t i = 0, k;
    uint32_t cp;

    memset(sc, 0, sizeof *sc);
    while (i < len) {
        if (t[i] < 0x80) {          /* the common case, no decoding */
            cp = t[i];
            k = 1;
        } else if ((k = utf8_decode(t + i, len - i, &cp)) == 0) {
            plan->err_off = i;
            set_reason(plan, "invalid UTF-8 at byte %zu (0x%02zx)", i,
                       (size_t)t[i]);
            return GW_EINVAL;
        }
        sc->chars++;
        sc->ucs2_units += cp > 0xFFFF ? 2 : 1;
        if ((g = gsm_lookup(cp)) == NONE) {
            strict = 0;
            if (smart_lookup(cp) == NULL)
                smart = 0;
        } else {
            sc->gsm_units += g & EXT ? 2 : 1;
        }
        i += k;
    }
    if (flags & SMS_FORCE_UCS2)
        sc->m = M_UCS2;
    else if (strict)
        sc->m = M_GSM;
    else if ((flags & SMS_SMART) && smart)
        sc->m = M_GSM_SMART;
    else if (flags & SMS_FORCE_GSM)
        sc->m = M_GSM_FORCED;
    else
        sc->m = M_UCS2;
    return 0;
}

/* The SMS_FORCE_GSM replacement: opts.replacement if it is a one-septet
 * GSM character, else '?'. */
static char
replacement(const struct sms_opts *o)
{
    int g;

    if (o->replacement <= 0)
        return '?';
    g = gsm_lookup((uint8_t)o->replacement);
    return g != NONE && !(g & EXT) ? o->replacement : '?';
}

/* State of a walk over the items, shared by the count and write passes. */
struct walk {
    const uint8_t *t;
    size_t len, pos;
    enum mode m;
    char repl;
    int smart;      /* look-alikes allowed */
};

/* The next item and its source bytes; 0 at the end. */
static size_t
walk_next(struct walk *w, struct item *it)
{
    uint32_t cp;
    size_t k;

    if (w->pos >= w->len)
        return 0;
    if (w->t[w->pos] < 0x80) {
        cp = w->t[w->pos];
        k = 1;
    } else {    /* valid: pass 1 checked it */
        k = utf8_decode(w->t + w->pos, w->len - w->pos, &cp);
    }
    item_make(it, cp, w->m, w->smart, w->repl);
    w->pos += k;
    return k;
}

/* Write a concatenation UDH (8- or 16-bit reference). */
static void
put_udh(uint8_t *p, enum sms_concat c, uint16_t ref, unsigned total,
        unsigned seq)
{
    if (c == SMS_CONCAT_UDH16) {
        p[0] = 0x06;
        p[1] = 0x08;
        p[2] = 0x04;
        p[3] = (uint8_t)(ref >> 8);
        p[4] = (uint8_t)ref;
        p[5] = (uint8_t)total;
        p[6] = (uint8_t)seq;
    } else {
        p[0] = 0x05;
        p[1] = 0x00;
        p[2] = 0x03;
        p[3] = (uint8_t)ref;
        p[4] = (uint8_t)total;
        p[5] = (uint8_t)seq;
    }
}

/* Fill bits between an h-octet UDH and the first septet. */
static unsigned
fill_bits(size_t h)
{
    return h ? (unsigned)((7 - (h * 8) % 7) % 7) : 0;
}

/* Air octets of a body of u units with an h-octet UDH (capped at 65535:
 * only a message_payload body gets near it). */
static uint16_t
air_size(enum mode m, size_t u, size_t h)
{
    size_t n = m == M_UCS2 ? h + 2 * u : h + (fill_bits(h) + 7 * u + 7) / 8;

    return n > 0xFFFF ? 0xFFFF : (uint16_t)n;
}

/* Start part pn (0-based) at byte out: its UDH, if any, goes first. */
static void
part_open(struct sms_part *p, size_t pn, size_t out, size_t udh,
          uint8_t *buf, enum sms_concat c, const struct sms_plan *plan)
{
    memset(p, 0, sizeof *p);
    p->seq = (uint8_t)(pn + 1);
    p->off = out;
    p->udh_len = (uint8_t)udh;
    if (udh && buf)
        put_udh(buf + out, c, plan->ref, plan->nparts, (unsigned)(pn + 1));
}

/* Pass 3: walk the text again and fill parts[] and, when buf is not NULL,
 * their bytes. cap: units per part ((size_t)-1 for one part); udh: the
 * UDH length per part; pack: GSM bodies 7-bit packed. */
static void
write_parts(struct sms_plan *plan, struct walk *w, enum sms_concat c,
            size_t cap, size_t udh, int pack, struct sms_part *parts,
            uint8_t *buf)
{
    uint8_t sept[GSM_SINGLE];
    size_t out = 0, ns = 0, pn = 0, k, i;
    struct sms_part *p = &parts[0];
    struct item it;

    part_open(p, 0, 0, udh, buf, c, plan);
    out = udh;
    for (;;) {
        size_t at = w->pos;

        k = walk_next(w, &it);
        if (k == 0 || p->units + it.n > cap) {
            /* close the current part */
            p->src_len = at - p->src_off;
            if (pack && buf)
                out += pack7(buf + out, sept, ns, fill_bits(udh));
            else if (pack)
                out += (fill_bits(udh) + 7 * ns + 7) / 8;
            p->len = out - p->off;
            p->air_octets = air_size(w->m, p->units, udh);
            if (k == 0)
                break;
            p = &parts[++pn];
            part_open(p, pn, out, udh, buf, c, plan);
            p->src_off = at;
            out += udh;
            ns = 0;
        }
        p->units += it.n;
        p->chars++;
        if (w->m == M_UCS2) {
            for (i = 0; i < it.n; i++, out += 2)
                if (buf) {
                    buf[out] = (uint8_t)(it.unit[i] >> 8);
                    buf[out + 1] = (uint8_t)it.unit[i];
                }
        } else if (pack) {
            memcpy(sept + ns, it.sept, it.n);
            ns += it.n;
        } else {
            if (buf)
                memcpy(buf + out, it.sept, it.n);
            out += it.n;
        }
    }
    plan->bytes = buf ? out : 0;
}

/* See sms_encode.h: pass 1 (scan), pass 2 (count), pass 3 (write). */
int
sms_plan(struct sms_plan *plan, const char *text, size_t len,
         const struct sms_opts *opts, struct sms_part *parts,
         size_t parts_cap, uint8_t *buf, size_t buf_cap)
{
    static const struct sms_opts defaults = { 0 };
    const struct sms_opts *o = opts ? opts : &defaults;
    const uint8_t *t = (const uint8_t *)text;
    unsigned max_parts = o->max_parts, count = 1;
    size_t single, multi, used = 0, udh = 0, need, payload_max;
    int cap16, rc, multipart;
    struct walk w;
    struct item it;
    struct scan sc;
    enum mode m;

    memset(plan, 0, sizeof *plan);
    if (text == NULL && len > 0)
        return GW_EINVAL;
    if (max_parts == 0 || max_parts > SMS_MAX_PARTS)
        max_parts = SMS_MAX_PARTS;
    payload_max = o->payload_max ? o->payload_max : SMS_PAYLOAD_MAX;
    if ((rc = scan(plan, t, len, o->flags, &sc)) < 0)
        return rc;
    m = sc.m;

    cap16 = o->concat == SMS_CONCAT_UDH16 || (o->flags & SMS_CAP16);
    if (m == M_UCS2) {
        plan->coding = SMS_UCS2;
        plan->data_coding = 0x08;
        single = UCS2_SINGLE;
        multi = cap16 ? UCS2_MULTI16 : UCS2_MULTI8;
    } else {
        plan->coding = SMS_GSM7;
        plan->data_coding = 0x00;
        single = GSM_SINGLE;
        multi = cap16 ? GSM_MULTI16 : GSM_MULTI8;
    }

    /* pass 2: units and the greedy multipart count; arithmetic when every
     * character is one unit (nothing to keep together) */
    w = (struct walk){ .t = t, .len = len, .m = m, .repl = replacement(o),
                       .smart = m == M_GSM_SMART ||
                                (o->flags & SMS_SMART) != 0 };
    if ((m == M_GSM && sc.gsm_units == sc.chars) ||
        (m == M_UCS2 && sc.ucs2_units == sc.chars)) {
        plan->chars = plan->units = sc.chars;
        count = sc.chars ? (unsigned)((sc.chars + multi - 1) / multi) : 1;
        w.pos = len;
    }
    while (walk_next(&w, &it) > 0) {
        plan->chars++;
        plan->units += it.n;
        plan->replaced += it.replaced;
        if (used + it.n > multi) {
            count++;
            used = it.n;
        } else {
            used += it.n;
        }
    }
    multipart = plan->units > single;
    plan->segments = multipart ? count : 1;
    plan->ref = o->concat == SMS_CONCAT_UDH8 ? (uint16_t)(o->ref & 0xff)
                                             : o->ref;

    if (o->concat == SMS_CONCAT_PAYLOAD) {
        plan->nparts = 1;
        plan->in_payload = multipart;
        need = m == M_UCS2 ? 2 * plan->units : plan->units;
        if (multipart && need > payload_max) {
            set_reason(plan, "message_payload of %zu bytes is over %zu",
                       need, payload_max);
            return GW_ETOOBIG;
        }
    } else {
        plan->nparts = plan->segments;
        if (plan->nparts > max_parts) {
            set_reason(plan, "text needs %zu parts, the limit is %zu",
                       plan->nparts, max_parts);
            return GW_ETOOBIG;
        }
        if (multipart && o->concat != SMS_CONCAT_SAR)
            udh = o->concat == SMS_CONCAT_UDH16 ? UDH16_LEN : UDH8_LEN;
        plan->sar = multipart && o->concat == SMS_CONCAT_SAR;
        plan->esm_class = udh ? 0x40 : 0;
        need = plan->nparts * udh +
               (m == M_UCS2 ? 2 * plan->units : plan->units);
    }
    if (parts == NULL)
        return 0;
    if (parts_cap < plan->nparts) {
        set_reason(plan, "%zu parts do not fit an array of %zu",
                   plan->nparts, parts_cap);
        return GW_ETOOBIG;
    }
    if (buf != NULL && buf_cap < need) {
        set_reason(plan, "parts need %zu bytes, the buffer has %zu", need,
                   buf_cap);
        return GW_ETOOBIG;
    }

    /* pass 3: the parts; one part when it all fits or goes as payload */
    if (!multipart || o->concat == SMS_CONCAT_PAYLOAD)
        multi = (size_t)-1;
    w.pos = 0;
    write_parts(plan, &w, o->concat, multi, udh,
                (o->flags & SMS_PACK7) && m != M_UCS2 &&
                    o->concat != SMS_CONCAT_PAYLOAD,
                parts, buf);
    return 0;
}

/* The character for ESC + code: the extension table, else (per 23.038)
 * the basic table's character for code. */
static uint32_t
gsm_ext_cp(uint8_t code)
{
    size_t i;

    for (i = 0; i < NELEM(gsm_ext); i++)
        if (gsm_ext[i].code == code)
            return gsm_ext[i].cp;
    return code == ESC ? 0x20 : gsm_basic[code];
}

/* See sms_encode.h. */
int
sms_decode(struct buf *out, uint8_t dc, const uint8_t *p, size_t n)
{
    size_t i;
    int rc = 0;

    if (dc != 0x00 && dc != 0x01 && dc != 0x03 && dc != 0x08)
        return GW_EINVAL;
    for (i = 0; i < n && rc == 0; i++) {
        uint32_t cp;

        switch (dc) {
        case 0x00:
            if (p[i] > 0x7F)
                cp = 0xFFFD;
            else if (p[i] != ESC)
                cp = gsm_basic[p[i]];
            else if (i + 1 < n && p[i + 1] <= 0x7F)
                cp = gsm_ext_cp(p[++i]);
            else
                cp = 0x20;  /* a lone escape shows as a space */
            break;
        case 0x01:
            cp = p[i] < 0x80 ? p[i] : 0xFFFD;
            break;
        case 0x03:
            cp = p[i];
            break;
        default:
            if (i + 1 >= n) {
                cp = 0xFFFD;
                break;
            }
            cp = (uint32_t)p[i] << 8 | p[i + 1];
            i++;
            if (cp >= 0xD800 && cp <= 0xDBFF && i + 2 < n) {
                uint32_t lo = (uint32_t)p[i + 1] << 8 | p[i + 2];

                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 2;
                }
            }
            if (cp >= 0xD800 && cp <= 0xDFFF)
                cp = 0xFFFD;
            break;
        }
        rc = utf8_put(out, cp);
    }
    return rc;
}

/* See sms_encode.h: walks the information elements. */
int
sms_udh_parse(struct sms_udh *u, const uint8_t *p, size_t n)
{
    size_t i, end;

    memset(u, 0, sizeof *u);
    if (n < 1 || (size_t)p[0] + 1 > n)
        return GW_EPARSE;
    end = (size_t)p[0] + 1;
    u->len = end;
    for (i = 1; i < end;) {
        uint8_t iei, iel;

        if (i + 2 > end)
            return GW_EPARSE;
        iei = p[i];
        iel = p[i + 1];
        if (i + 2 + iel > end)
            return GW_EPARSE;
        if (iei == 0x00 || iei == 0x08) {
            size_t want = iei == 0x00 ? 3 : 4;
            const uint8_t *d = p + i + 2;

            if (iel != want)
                return GW_EPARSE;
            u->concat = 1;
            u->ref = iei == 0x00 ? d[0] : (uint16_t)(d[0] << 8 | d[1]);
            u->total = d[want - 2];
            u->seq = d[want - 1];
        }
        i += 2 + (size_t)iel;
    }
    return 0;
}

/* See sms_encode.h. */
const char *
sms_coding_name(enum sms_coding c)
{
    return c == SMS_UCS2 ? "ucs2" : "gsm7";
}

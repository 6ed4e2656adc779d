/*
 * sms_encode.h -- SMS text encoding for the SMPP channel: picks GSM 03.38
 * 7-bit (with the extension table) or UCS-2/UTF-16BE for a UTF-8 text,
 * optionally maps typographic look-alikes to GSM ("smart encoding"), and
 * splits the text into parts for concatenation by UDH (8- or 16-bit
 * reference), by SAR TLVs, or into one message_payload. The segment count
 * is known before anything is sent. No allocation: the caller supplies
 * the part array and the output buffer (or neither, to count only).
 *
 * Sizes follow the air interface (3GPP TS 23.040): a part holds at most
 * 140 octets with its UDH, i.e. 160 septets / 70 UTF-16 units alone,
 * 153 / 67 with an 8-bit reference UDH and 152 / 66 with a 16-bit one.
 * SAR parts carry no UDH over SMPP, but the SMSC adds one on the air, so
 * they are sized like UDH parts (153 / 67; 152 / 66 with SMS_CAP16).
 * Escape pairs and surrogate pairs are never split across parts.
 *
 * Output bytes per part are what goes into submit_sm short_message:
 * the UDH (if any) followed by the body, which is one septet per octet
 * for GSM (unpacked, as SMSCs expect with data_coding 0x00), or the GSM
 * septets packed 7-bit with the fill bits after the UDH (SMS_PACK7, air
 * format), or UTF-16BE for UCS-2.
 */
#ifndef GW_SMS_ENCODE_H
#define GW_SMS_ENCODE_H

#include <stddef.h>
#include <stdint.h>

struct buf;

enum sms_coding {
    SMS_GSM7,   /* data_coding 0x00: GSM 03.38 default alphabet */
    SMS_UCS2,   /* data_coding 0x08: UTF-16BE (surrogate pairs allowed) */
};

enum sms_concat {
    SMS_CONCAT_UDH8,    /* UDH 05 00 03 ref total seq; esm_class 0x40 */
    SMS_CONCAT_UDH16,   /* UDH 06 08 04 refHi refLo total seq; 0x40 */
    SMS_CONCAT_SAR,     /* no UDH; sar_msg_ref_num/total/seqnum TLVs */
    SMS_CONCAT_PAYLOAD, /* one submit_sm, the text in message_payload */
};

/* sms_opts.flags */
#define SMS_SMART      0x01u /* map look-alikes (quotes, dashes, ...) when
                                that keeps the whole text in GSM */
#define SMS_FORCE_GSM  0x02u /* always GSM: characters outside it become
                                opts.replacement (after SMS_SMART) */
#define SMS_FORCE_UCS2 0x04u /* always UCS-2 */
#define SMS_PACK7      0x08u /* GSM bodies packed 7-bit (air format) */
#define SMS_CAP16      0x10u /* size SAR/payload parts for a 16-bit ref */

#define SMS_MAX_PARTS   255          /* the UDH "total" field is one octet */
#define SMS_PART_MAX    160          /* most short_message bytes of a part */
#define SMS_PAYLOAD_MAX 1024         /* libsmpp34's TLV value limit */
#define SMS_BUF_MAX     (SMS_MAX_PARTS * SMS_PART_MAX)  /* always enough
                                        for concatenated parts */

struct sms_opts {
    unsigned        flags;       /* SMS_* above */
    enum sms_concat concat;      /* how a long text is sent */
    uint16_t        ref;         /* concatenation reference (UDH8: low 8
                                    bits); the caller picks it per message */
    unsigned        max_parts;   /* refuse longer texts; 0 or >255: 255 */
    size_t          payload_max; /* SMS_CONCAT_PAYLOAD body limit in bytes;
                                    0: SMS_PAYLOAD_MAX */
    char            replacement; /* SMS_FORCE_GSM: an ASCII character that
                                    is in GSM; 0 (or not in GSM): '?' */
};

/* One submit_sm's worth. Offsets point into the caller's buffer and the
 * input text; both stay owned by the caller. */
struct sms_part {
    size_t   off, len;         /* short_message bytes: UDH + body */
    size_t   src_off, src_len; /* the slice of the UTF-8 input it carries */
    uint32_t units;            /* septets (GSM) or UTF-16 units (UCS-2) */
    uint32_t chars;            /* input characters (code points) */
    uint16_t air_octets;       /* size on the air: UDH + packed body; <= 140
                                  except for a message_payload body */
    uint8_t  udh_len;          /* UDH bytes at the start of the slice */
    uint8_t  seq;              /* 1..nparts (sar_segment_seqnum) */
};

struct sms_plan {
    enum sms_coding coding;
    uint8_t  data_coding;   /* 0x00 or 0x08, for submit_sm */
    uint8_t  esm_class;     /* 0x40 (UDHI) when parts start with a UDH */
    uint8_t  in_payload;    /* 1: send parts[0] as message_payload with
                               sm_length 0 (PAYLOAD mode, > 1 segment) */
    uint8_t  sar;           /* 1: add sar_msg_ref_num = ref,
                               sar_total_segments = nparts and
                               sar_segment_seqnum = part.seq */
    uint16_t ref;           /* the reference written (UDH8: ref & 0xff) */
    unsigned nparts;        /* submit_sm PDUs to send */
    unsigned segments;      /* SMS on the air: what the text costs */
    size_t   units;         /* all septets / UTF-16 units */
    size_t   chars;         /* all input characters */
    size_t   replaced;      /* characters changed by smart or forced GSM */
    size_t   bytes;         /* bytes written to the caller's buffer */
    size_t   err_off;       /* GW_EINVAL: byte offset of the bad UTF-8 */
    char     reason[96];    /* why it failed, for the permanent failure */
};

/*
 * Plan a text: pick the encoding, count the segments and, when parts is
 * not NULL, fill parts[0..nparts) and write their bytes to buf (buf may
 * be NULL to get only the slices). Borrows text (len bytes, no NUL
 * needed), opts (NULL: defaults, UDH8 ref 0) and the arrays; fills plan.
 * An empty text is one empty part. Returns 0; GW_EINVAL for invalid UTF-8
 * (plan->err_off, plan->reason: fail the message permanently);
 * GW_ETOOBIG when the text needs more than max_parts parts, the payload
 * is over payload_max, or parts_cap / buf_cap are too small (plan->nparts
 * and plan->segments are set, so the caller can size and retry).
 */
int sms_plan(struct sms_plan *plan, const char *text, size_t len,
             const struct sms_opts *opts, struct sms_part *parts,
             size_t parts_cap, uint8_t *buf, size_t buf_cap);

/* Append the UTF-8 text of an SMS body (without its UDH) to out.
 * data_coding 0x00 is GSM 03.38 one septet per octet, 0x01 IA5/ASCII,
 * 0x03 Latin-1, 0x08 UCS-2/UTF-16BE; undecodable bytes become U+FFFD.
 * Returns 0, GW_EINVAL (other data_coding) or a buf error. */
int sms_decode(struct buf *out, uint8_t data_coding, const uint8_t *p,
               size_t n);

/* Unpack nsept septets from 7-bit packed data that starts fill bits into
 * src (the fill after a UDH: (7 - (udh_octets * 8) % 7) % 7). Returns 0 or
 * GW_EPARSE when srclen is too short. */
int sms_unpack7(uint8_t *dst, size_t nsept, const uint8_t *src,
                size_t srclen, unsigned fill);

/* A UDH's concatenation element, as read by sms_udh_parse. */
struct sms_udh {
    size_t   len;      /* UDH octets including the UDHL byte */
    int      concat;   /* 1 if IEI 0x00 or 0x08 was present */
    uint16_t ref;
    uint8_t  total, seq;
};

/* Parse the UDH at the start of a short_message (esm_class 0x40).
 * Returns 0 or GW_EPARSE when it overruns n or an element is malformed. */
int sms_udh_parse(struct sms_udh *u, const uint8_t *p, size_t n);

const char *sms_coding_name(enum sms_coding c);

#endif

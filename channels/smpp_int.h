/*
 * smpp_int.h -- inside the SMPP channel: the pure PDU layer of
 * smpp_pdu.c (framing, body validation and decoding, delivery receipt
 * text, message id normalisation, status names) shared by smpp.c, its
 * unit test and its fuzzer. No I/O, no allocation except into a caller's
 * struct buf. Never included from outside channels/ and tests/.
 *
 * Every decoder walks the bytes itself: bounds, C-string terminators and
 * every TLV length are checked before a field is read, so a hostile or
 * broken SMSC can neither make us overread nor leak. Decoded strings and
 * byte slices point into the caller's PDU and live as long as it does.
 */
#ifndef GW_SMPP_INT_H
#define GW_SMPP_INT_H

#include <stddef.h>
#include <stdint.h>

#include "channel.h"

struct buf;

#define SMPP_HDR_LEN    16
#define SMPP_SEQ_MAX    0x7FFFFFFFu
#define SMPP_RESP       0x80000000u
#define SMPP_ID_IN_MAX  65      /* message_id C-octet string, with NUL */
#define SMPP_ID_MAX     200     /* a normalised id with its NUL */
#define SMPP_MO_MAX     (256u * 1024)   /* decoded MO text cap (UTF-8) */

/* Command ids and statuses we use by name (the values of SMPP 3.4). */
enum {
    SMPP_GENERIC_NACK = 0x80000000u,
    SMPP_BIND_RECEIVER = 0x00000001u,
    SMPP_BIND_TRANSMITTER = 0x00000002u,
    SMPP_QUERY_SM = 0x00000003u,
    SMPP_SUBMIT_SM = 0x00000004u,
    SMPP_DELIVER_SM = 0x00000005u,
    SMPP_UNBIND = 0x00000006u,
    SMPP_REPLACE_SM = 0x00000007u,
    SMPP_CANCEL_SM = 0x00000008u,
    SMPP_BIND_TRANSCEIVER = 0x00000009u,
    SMPP_OUTBIND = 0x0000000Bu,
    SMPP_ENQUIRE_LINK = 0x00000015u,
    SMPP_SUBMIT_MULTI = 0x00000021u,
    SMPP_ALERT_NOTIFICATION = 0x00000102u,
    SMPP_DATA_SM = 0x00000103u,
};

enum {
    SMPP_ROK = 0x00,
    SMPP_RINVMSGLEN = 0x01,
    SMPP_RINVCMDLEN = 0x02,
    SMPP_RINVCMDID = 0x03,
    SMPP_RINVBNDSTS = 0x04,
    SMPP_RSYSERR = 0x08,
    SMPP_RBINDFAIL = 0x0D,
    SMPP_RINVPASWD = 0x0E,
    SMPP_RINVSYSID = 0x0F,
    SMPP_RMSGQFUL = 0x14,
    SMPP_RTHROTTLED = 0x58,
    SMPP_RX_T_APPN = 0x64,
    SMPP_RINVOPTPARSTREAM = 0xC0,
    SMPP_RINVPARLEN = 0xC2,
};

/* TLV tags read or written here. */
enum {
    SMPP_TLV_RECEIPTED_MESSAGE_ID = 0x001E,
    SMPP_TLV_SAR_MSG_REF_NUM = 0x020C,
    SMPP_TLV_SAR_TOTAL_SEGMENTS = 0x020E,
    SMPP_TLV_SAR_SEGMENT_SEQNUM = 0x020F,
    SMPP_TLV_NETWORK_ERROR_CODE = 0x0423,
    SMPP_TLV_MESSAGE_PAYLOAD = 0x0424,
    SMPP_TLV_MESSAGE_STATE = 0x0427,
};

struct smpp_hdr {
    uint32_t len, cmd, status, seq;
};

/* ---- framing ---- */

/* Look at the front of a read buffer. Returns 0 when fewer than 4 bytes,
 * or fewer than the announced length, are there; 1 when a whole PDU of
 * h->len bytes is there (h filled); GW_EPARSE when command_length is
 * under 16 or over max_pdu (h->len set; h->seq when 16 bytes are there,
 * else 0): the stream cannot be resynchronised, answer generic_nack
 * ESME_RINVCMDLEN and drop the bind. Borrows p. */
int smpp_frame(const uint8_t *p, size_t n, size_t max_pdu,
               struct smpp_hdr *h);

/* 1 if cmd is a command id (request or response) of SMPP 3.4. */
int smpp_cmd_known(uint32_t cmd);

/* Big-endian helpers. */
uint32_t smpp_get32(const uint8_t *p);
void smpp_put32(uint8_t *p, uint32_t v);

/* Write a header-only PDU (16 bytes; plus one NUL body byte when
 * nul_body, as deliver_sm_resp / data_sm_resp carry an empty
 * message_id). Returns the length written into b (>= 17 bytes). */
size_t smpp_pack_header(uint8_t *b, uint32_t cmd, uint32_t status,
                        uint32_t seq, int nul_body);

/* ---- response bodies ---- */

/* The message_id of a submit_sm_resp / data_sm_resp (or the system_id of
 * a bind_*_resp: max 16), copied NUL-terminated into id (cap >= max).
 * An empty body gives "" (SMSCs omit it on errors). A body without a NUL
 * within max bytes is taken whole if it is shorter than max (some SMSCs
 * forget the terminator); bytes after the NUL (SMPP 5.0 TLVs) are
 * ignored. Returns 0 or GW_EPARSE. */
int smpp_resp_id(const uint8_t *pdu, size_t len, size_t max, char *id,
                 size_t cap);

/* ---- deliver_sm and data_sm ---- */

struct smpp_deliver {
    uint32_t       cmd;             /* SMPP_DELIVER_SM or SMPP_DATA_SM */
    const char    *service_type, *src, *dst;    /* NUL-terminated, in the
                                                   PDU */
    uint8_t        src_ton, src_npi, dst_ton, dst_npi;
    uint8_t        esm_class, protocol_id, registered_delivery,
                   data_coding;
    const uint8_t *sm;              /* short_message (deliver_sm only) */
    size_t         sm_len;
    const uint8_t *payload;         /* message_payload TLV, or NULL */
    size_t         payload_len;
    const uint8_t *rmid;            /* receipted_message_id, trailing NULs
                                       cut; NULL if absent or empty */
    size_t         rmid_len;
    int            has_state;       /* message_state TLV seen */
    uint8_t        message_state;
    const uint8_t *neterr;          /* network_error_code, any length */
    size_t         neterr_len;
    int            has_sar;
    uint16_t       sar_ref;
    uint8_t        sar_total, sar_seq;
    unsigned       ntlv;
};

/* Walk and decode a whole deliver_sm or data_sm PDU (header included,
 * len = command_length). Tolerant where real SMSCs differ from the spec
 * (addresses up to 65 octets, any TLV length for network_error_code,
 * message_state of 1-4 octets, receipted_message_id without its NUL),
 * strict about bounds: every C-string must end inside its field limit
 * and the PDU, sm_length must fit, TLVs must tile the rest exactly.
 * Returns 0, or the ESME status to answer with (the PDU cannot be
 * decoded: drop the bind). */
uint32_t smpp_parse_deliver(struct smpp_deliver *d, const uint8_t *pdu,
                            size_t len);

/* 1 if d is a delivery receipt: esm_class message type 0x04 (SMSC
 * delivery receipt), 0x08 (SME delivery acknowledgement) or 0x20
 * (intermediate notification), or no type bits but both the
 * receipted_message_id and message_state TLVs. */
int smpp_is_receipt(const struct smpp_deliver *d);

/* ---- delivery receipt text (SMPP 3.4 appendix B) ---- */

enum {
    SMPP_RT_ID = 1u << 0, SMPP_RT_SUB = 1u << 1, SMPP_RT_DLVRD = 1u << 2,
    SMPP_RT_SUBMIT_DATE = 1u << 3, SMPP_RT_DONE_DATE = 1u << 4,
    SMPP_RT_STAT = 1u << 5, SMPP_RT_ERR = 1u << 6, SMPP_RT_TEXT = 1u << 7,
};

struct smpp_slice {
    const char *p;
    size_t      n;
};

struct smpp_rtext {
    unsigned          fields;       /* SMPP_RT_* present */
    struct smpp_slice id, sub, dlvrd, submit_date, done_date, stat, err,
                      text;
};

/* Parse `id:... sub:... dlvrd:... submit date:... done date:... stat:...
 * err:... text:...` in any order, any field missing, keys in any case
 * (also submit_date / done_date), values up to the next blank (text: to
 * the end). A NUL ends the input. Borrows p; slices point into it.
 * Returns 0 when an id was found, GW_EPARSE otherwise. */
int smpp_rtext_parse(struct smpp_rtext *r, const uint8_t *p, size_t n);

/* The receipt state for a stat word (DELIVRD, UNDELIV, EXPIRED, DELETED,
 * REJECTD, ACCEPTD, ENROUTE, UNKNOWN; also the long spellings, any case).
 * Unknown words are RCPT_ENROUTE with *known = 0. */
enum receipt_state smpp_stat_state(const char *w, size_t n, int *known);
/* The same for a message_state TLV value (SMPP 3.4 5.3.2.35). */
enum receipt_state smpp_msgstate_state(uint8_t v);
/* Its stat word ("DELIVRD"), or "UNKNOWN". */
const char *smpp_msgstate_word(uint8_t v);

/* network_error_code as text: 3 octets (the spec) "T:CODE" (network type,
 * 16-bit code, decimal); 1-2 octets "CODE"; 4-5 octets "T:CODE" with the
 * code in the remaining octets; longer: hex digits. Writes at most cap-1
 * characters. */
void smpp_neterr_format(char *out, size_t cap, const uint8_t *p, size_t n);

/* ---- message ids ---- */

enum smpp_id_fmt { SMPP_ID_TEXT, SMPP_ID_HEX, SMPP_ID_DEC };

/*
 * Normalise a message id so that the submit_sm_resp id and the receipt's
 * id compare equal as strings. The exact rule:
 *  1. Blanks and NULs at both ends are cut. Empty -> GW_EINVAL.
 *  2. fmt HEX and the id is all hex digits, or fmt DEC and it is all
 *     decimal digits: the result is the number's value in decimal with
 *     no leading zeros (any length: no 64-bit limit). So an SMSC that
 *     answers "1A2B" and receipts "6699" matches when the provider says
 *     submit_id_format = "hex", receipt_id_format = "dec".
 *  3. Otherwise (fmt TEXT, or the id does not fit its fmt): ASCII letters
 *     are lower-cased; if every character is a hex digit, leading zeros
 *     are cut (one "0" stays for an all-zero id). "00001A2B" -> "1a2b",
 *     "0000012345" -> "12345".
 *  4. Bytes outside 0x21..0x7E, ',' (the part separator) and '%' become
 *     %XX (upper-case hex), so the result is printable and comma-free.
 * Input over 64 bytes is GW_EINVAL. Writes a NUL-terminated id into out
 * (cap >= SMPP_ID_MAX always suffices); returns its length or GW_EINVAL.
 */
int smpp_id_norm(char *out, size_t cap, const uint8_t *id, size_t n,
                 enum smpp_id_fmt fmt);

/* ---- receipts and MO, decoded ---- */

struct smpp_dlr {
    char               id[SMPP_ID_MAX];     /* normalised */
    enum receipt_state state;
    char               stat[16];            /* the provider's word */
    char               err[48];             /* "" when none */
    unsigned           fields;              /* SMPP_RT_* of the text */
    int                from_tlv;            /* id from the TLV */
};

/* A receipt from a decoded deliver_sm / data_sm: id from
 * receipted_message_id, else from the text (short_message, else
 * message_payload); state from message_state, else the text's stat:;
 * error from network_error_code, else err:. Ids are normalised with fmt.
 * Returns 0, or GW_EPARSE when no usable id is there. */
int smpp_dlr_decode(struct smpp_dlr *r, const struct smpp_deliver *d,
                    enum smpp_id_fmt fmt);

/* The UTF-8 text of an MO message (short_message, else message_payload;
 * the UDH cut when esm_class has UDHI), by its data_coding: GSM 03.38
 * (0x00 and the GSM groups), IA5 (0x01), Latin-1 (0x03, and 8-bit/binary
 * codings, byte for byte), UCS-2 (0x08 and the UCS-2 groups). Appends to
 * out. Returns 0 or a buf error. */
int smpp_mo_text(struct buf *out, const struct smpp_deliver *d);

/* An address as we report it: "+" and the digits for TON international
 * with a digits-only address (a '+' already there is kept), else as
 * given. Writes at most cap-1 bytes. */
void smpp_addr_format(char *out, size_t cap, const char *addr, uint8_t ton);

/* ---- statuses ---- */

/* "ESME_RTHROTTLED", or NULL for a status without a name. */
const char *smpp_status_name(uint32_t status);
/* The outcome class of a submit_sm_resp status. */
enum smpp_status_class {
    SMPP_ST_OK, SMPP_ST_THROTTLE, SMPP_ST_TEMP, SMPP_ST_PERM,
};
enum smpp_status_class smpp_status_class(uint32_t status);
/* "ESME_RINVDSTADR (0x0000000B)" or "status 0x00000401". */
void smpp_status_text(char *out, size_t cap, uint32_t status);

#endif

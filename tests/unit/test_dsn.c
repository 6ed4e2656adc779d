/*
 * test_dsn.c -- tests for the bounce parser (channels/dsn.c): the
 * classification table (enhanced codes, basic codes, reply text), the VERP
 * key as the exact inverse of mime_key_token (round trips over random
 * keys, hashed tokens, tokens the encoder cannot write), the sample
 * bounces in tests/unit/data/dsn (or $DSN_TEST_DATA): Postfix, Exim,
 * Sendmail, Gmail, Exchange mailbox full, a delay warning, a 5.7.1 policy
 * block, a multi-recipient report, qmail, an auto-reply, a read receipt
 * and malformed messages; and the limits: input size, recipients, nesting,
 * garbage, output fields always terminated and valid UTF-8, several
 * threads at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "channels/dsn.h"
#include "channels/mime.h"

static const char *
data_dir(void)
{
    const char *d = getenv("DSN_TEST_DATA");

    return d ? d : "tests/unit/data/dsn";
}

static char *
load(const char *name, size_t *len)
{
    char path[512];
    FILE *f;
    char *p;
    long n;

    snprintf(path, sizeof path, "%s/%s", data_dir(), name);
    f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* Independent UTF-8 check of an output field. */
static int
valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        int n = *p < 0x80                  ? 0
                : *p >= 0xC2 && *p <= 0xDF ? 1
                : *p >= 0xE0 && *p <= 0xEF ? 2
                : *p >= 0xF0 && *p <= 0xF4 ? 3
                                           : -1;
        if (n < 0 || *p < 0x20 || *p == 0x7F)
            return 0;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xC0) != 0x80)
                return 0;
    }
    return 1;
}

static void
check_fields(const struct dsn *d)
{
    assert_true(d->nrcpt <= DSN_RCPT_MAX);
    assert_non_null(memchr(d->msg_key, 0, sizeof d->msg_key));
    assert_non_null(memchr(d->message_id, 0, sizeof d->message_id));
    assert_true(valid_utf8(d->message_id));
    for (size_t i = 0; i < d->nrcpt; i++) {
        const struct dsn_rcpt *r = &d->rcpt[i];
        assert_non_null(memchr(r->recipient, 0, sizeof r->recipient));
        assert_non_null(memchr(r->diagnostic, 0, sizeof r->diagnostic));
        assert_non_null(memchr(r->status, 0, sizeof r->status));
        assert_non_null(memchr(r->action, 0, sizeof r->action));
        assert_true(valid_utf8(r->recipient));
        assert_true(valid_utf8(r->diagnostic));
        assert_true(r->cls == BOUNCE_HARD || r->cls == BOUNCE_SOFT ||
                    r->cls == BOUNCE_UNKNOWN);
    }
}

static int
parse_file(const char *name, struct dsn *d, char *err, size_t errlen)
{
    size_t len;
    char *raw = load(name, &len);
    int rc = dsn_parse(raw, len, d, err, errlen);

    free(raw);
    check_fields(d);
    return rc;
}

/* ---- classification ---- */

static void
test_classify(void **state)
{
    static const struct {
        int code;
        const char *enh, *text;
        enum bounce_class want;
    } t[] = {
        { 550, "5.1.1", NULL, BOUNCE_HARD },
        { 0, "5.1.1", NULL, BOUNCE_HARD },
        { 550, "5.1.2", NULL, BOUNCE_HARD },
        { 553, "5.1.3", NULL, BOUNCE_HARD },
        { 550, "5.1.10", NULL, BOUNCE_HARD },
        { 550, "5.1.6", NULL, BOUNCE_HARD },
        { 550, "5.1.0", NULL, BOUNCE_HARD },
        { 553, "5.1.8", NULL, BOUNCE_UNKNOWN }, /* our sender */
        { 550, "5.1.7", NULL, BOUNCE_UNKNOWN },
        { 552, "5.2.2", NULL, BOUNCE_SOFT },
        { 0, "5.2.2", NULL, BOUNCE_SOFT },
        { 550, "5.2.1", NULL, BOUNCE_HARD },
        { 552, "5.2.3", NULL, BOUNCE_UNKNOWN }, /* message too big */
        { 550, "5.4.4", NULL, BOUNCE_HARD },
        { 554, "5.4.7", NULL, BOUNCE_UNKNOWN },
        { 450, "4.2.2", NULL, BOUNCE_SOFT },
        { 421, NULL, NULL, BOUNCE_SOFT },
        { 451, "4.7.1", NULL, BOUNCE_SOFT },
        { 0, "4.4.1", NULL, BOUNCE_SOFT },
        { 450, "5.1.1", NULL, BOUNCE_SOFT }, /* 4xx reply wins */
        { 550, "5.7.1", NULL, BOUNCE_UNKNOWN },
        { 550, "5.7.1", "user unknown", BOUNCE_UNKNOWN },
        { 554, "5.7.26", NULL, BOUNCE_UNKNOWN }, /* DMARC */
        { 550, "5.7.13", NULL, BOUNCE_HARD },
        { 550, "5.7.17", NULL, BOUNCE_HARD },
        { 550, "5.7.18", NULL, BOUNCE_HARD },
        { 550, "5.5.0", "user unknown", BOUNCE_UNKNOWN },
        { 554, "5.3.4", NULL, BOUNCE_UNKNOWN },
        { 550, "5.6.0", NULL, BOUNCE_UNKNOWN },
        { 550, "5.0.0", NULL, BOUNCE_UNKNOWN },
        { 550, "5.0.0", "<a@b>... User unknown", BOUNCE_HARD },
        { 0, "5.0.0", "unknown user: \"alice\"", BOUNCE_HARD },
        { 550, "5.0.0", "Mailbox full", BOUNCE_SOFT },
        { 550, "5.2.0", "No such user", BOUNCE_HARD },
        { 550, NULL, "Requested action not taken: mailbox unavailable",
          BOUNCE_UNKNOWN },
        { 550, NULL, "No Such User Here", BOUNCE_HARD },
        { 551, NULL, "User not local; user unknown", BOUNCE_HARD },
        { 553, NULL, "sorry, no mailbox here by that name", BOUNCE_HARD },
        { 554, NULL, "no such user", BOUNCE_UNKNOWN },
        { 550, NULL, NULL, BOUNCE_UNKNOWN },
        { 552, NULL,
          "Requested mail action aborted: exceeded storage "
          "allocation",
          BOUNCE_SOFT },
        { 550, NULL, "mailbox quota exceeded", BOUNCE_SOFT },
        { 550, NULL, "spam detected", BOUNCE_UNKNOWN },
        { 250, "2.0.0", NULL, BOUNCE_UNKNOWN },
        { 0, "2.1.5", NULL, BOUNCE_UNKNOWN },
        { 354, NULL, NULL, BOUNCE_UNKNOWN },
        { 0, NULL, "user unknown", BOUNCE_UNKNOWN },
        { 0, NULL, NULL, BOUNCE_UNKNOWN },
        { 550, "garbage", "user unknown", BOUNCE_HARD }, /* as no code */
        { 550, "5.1", NULL, BOUNCE_UNKNOWN },
        { 550, "5.1.1.1", NULL, BOUNCE_UNKNOWN },
        { 550, "6.1.1", NULL, BOUNCE_UNKNOWN },
        { 550, " 5.1.1 ", NULL, BOUNCE_HARD },
        { -1, "5.1.1", NULL, BOUNCE_HARD },
        { 99999, NULL, NULL, BOUNCE_UNKNOWN },
    };

    (void)state;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        enum bounce_class got =
            bounce_classify_text(t[i].code, t[i].enh, t[i].text);
        if (got != t[i].want)
            fail_msg("%d %s \"%s\": got %d, want %d", t[i].code,
                     t[i].enh ? t[i].enh : "(null)", t[i].text ? t[i].text : "",
                     got, t[i].want);
        if (!t[i].text)
            assert_int_equal(bounce_classify(t[i].code, t[i].enh), t[i].want);
    }
}

/* ---- VERP keys ---- */

static void
test_verp_key(void **state)
{
    static const struct {
        const char *addr, *key;
        int rc;
    } t[] = {
        { "bounces+spring-27=3Ac1=3Aemail@bounce.example.org",
          "spring-27:c1:email", 0 },
        { "<bounces+spring-27=3Ac1=3Aemail@bounce.example.org>",
          "spring-27:c1:email", 0 },
        { "Bounces <bounces+a.b_c-d@x.org>", "a.b_c-d", 0 },
        { "  bounces+k@x.org  ", "k", 0 },
        { "b+c+digest=2F2027=2B1@x.org", "digest/2027+1", 0 },
        { "bounces+=2Ea.=2Eb=20c=40d=2E@x.org", ".a..b c@d.", 0 },
        { "bounces+a.=2E@x.org", "a..", 0 },
        { "bounces+=C3=A9t=C3=A9@x.org", "\xc3\xa9t\xc3\xa9", 0 },
        { "bounces+h.0123456789abcdef0123456789abcdef@x.org",
          "h.0123456789abcdef0123456789abcdef", 1 },
        /* not ours, or not what mime_key_token writes */
        { "bounces@x.org", "", GW_EINVAL },
        { "bounces+@x.org", "", GW_EINVAL },
        { "bounces+abc", "", GW_EINVAL },
        { "bounces+abc@", "", GW_EINVAL },
        { "<bounces+abc@x.org", "", GW_EINVAL },
        { "bounces+=3a@x.org", "", GW_EINVAL },   /* lower-case hex */
        { "bounces+=41@x.org", "", GW_EINVAL },   /* 'A' is kept */
        { "bounces+a=2Eb@x.org", "", GW_EINVAL }, /* inner dot kept */
        { "bounces+.a@x.org", "", GW_EINVAL },
        { "bounces+a.@x.org", "", GW_EINVAL },
        { "bounces+a..b@x.org", "", GW_EINVAL },
        { "bounces+=00@x.org", "", GW_EINVAL },
        { "bounces+ab=3@x.org", "", GW_EINVAL },
        { "bounces+a!b@x.org", "", GW_EINVAL },
        { "\"bounces+ab\"@x.org", "", GW_EINVAL },
        { "", "", GW_EINVAL },
    };
    char key[600];

    (void)state;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int rc = dsn_verp_key(t[i].addr, key, sizeof key);
        if (rc != t[i].rc)
            fail_msg("%s: rc %d, want %d", t[i].addr, rc, t[i].rc);
        if (rc >= 0)
            assert_string_equal(key, t[i].key);
    }
    assert_int_equal(dsn_verp_key("bounces+abcdef@x.org", key, 6), GW_ETOOBIG);
    assert_int_equal(dsn_verp_key("bounces+abcdef@x.org", key, 7), 0);
    assert_int_equal(dsn_verp_key(NULL, key, sizeof key), GW_EINVAL);
    assert_int_equal(dsn_verp_key("a+b@c", NULL, 10), GW_EINVAL);
    assert_int_equal(dsn_verp_key("a+b@c", key, 0), GW_EINVAL);
}

/* Random keys through the real encoder and back. */
static void
test_verp_roundtrip(void **state)
{
    static const char alpha[] = "abcXYZ019-_.:/=+@ \x01\x7f\xc3\xa9\xff";
    char key[64], got[600], addr[700];
    struct buf b;
    unsigned seed = 12345;

    (void)state;
    buf_init(&b, 0);
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 1 + (seed = seed * 1103515245 + 12345) % 40;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245 + 12345;
            key[i] = alpha[(seed >> 16) % (sizeof alpha - 1)];
        }
        key[n] = 0;
        buf_reset(&b);
        assert_int_equal(mime_key_token(&b, key, 500), 0);
        snprintf(addr, sizeof addr, "bounces+%s@bounce.example.org",
                 buf_cstr(&b));
        if (dsn_verp_key(addr, got, sizeof got) != 0 || strcmp(got, key))
            fail_msg("key \"%s\" -> %s -> \"%s\"", key, addr, got);
        /* and as a Message-ID local part, via a minimal bounce */
        if (iter % 500 == 0) {
            char msg[1500], err[200];
            struct dsn d;
            buf_reset(&b);
            assert_int_equal(mime_message_id(&b, key, "mail.example.org"), 0);
            snprintf(msg, sizeof msg,
                     "From: MAILER-DAEMON@mx.example\nSubject: failure "
                     "notice\n\n550 5.1.1 no such user\n\n"
                     "Message-ID: %s\n",
                     buf_cstr(&b));
            assert_int_equal(dsn_parse(msg, strlen(msg), &d, err, sizeof err),
                             0);
            assert_string_equal(d.message_id, buf_cstr(&b));
            assert_string_equal(d.msg_key, key);
        }
    }
    /* Too long for the budget: hashed, and said so. */
    buf_reset(&b);
    assert_int_equal(mime_key_token(&b, "spring-2027:c1234567890123:email", 34),
                     0);
    snprintf(addr, sizeof addr, "bounces+%s@x.org", buf_cstr(&b));
    assert_int_equal(dsn_verp_key(addr, got, sizeof got), 1);
    assert_string_equal(got, buf_cstr(&b));
    buf_free(&b);
}

/* ---- the samples ---- */

struct want_rcpt {
    const char *recipient, *action, *status;
    enum bounce_class cls;
    const char *diag_has;
};

static void
expect(const struct dsn *d, const struct want_rcpt *w, size_t n)
{
    assert_int_equal(d->nrcpt, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(d->rcpt[i].recipient, w[i].recipient);
        assert_string_equal(d->rcpt[i].action, w[i].action);
        assert_string_equal(d->rcpt[i].status, w[i].status);
        assert_int_equal(d->rcpt[i].cls, w[i].cls);
        if (w[i].diag_has && !strstr(d->rcpt[i].diagnostic, w[i].diag_has))
            fail_msg("diagnostic \"%s\" lacks \"%s\"", d->rcpt[i].diagnostic,
                     w[i].diag_has);
    }
}

static void
test_postfix_hard(void **state)
{
    struct dsn d;
    char err[200];
    static const struct want_rcpt w[] = {
        { "alice.nosuch@example.net", "failed", "5.1.1", BOUNCE_HARD,
          "550 5.1.1 <alice.nosuch@example.net>: Recipient address "
          "rejected: User unknown in virtual mailbox table" },
    };

    (void)state;
    assert_int_equal(parse_file("postfix-hard.eml", &d, err, sizeof err), 0);
    assert_int_equal(d.is_report, 1);
    assert_string_equal(d.msg_key, "spring-27:c1:email");
    assert_int_equal(d.key_hashed, 0);
    assert_string_equal(d.message_id,
                        "<spring-27=3Ac1=3Aemail@mail.example.org>");
    expect(&d, w, 1);
}

static void
test_exim(void **state)
{
    struct dsn d;
    char err[200];
    static const struct want_rcpt w[] = {
        { "bob@example.com", "failed", "5.1.1", BOUNCE_HARD,
          "550 5.1.1 <bob@example.com>: Recipient address rejected" },
    };

    (void)state;
    assert_int_equal(parse_file("exim.eml", &d, err, sizeof err), 0);
    assert_int_equal(d.is_report, 0);
    assert_string_equal(d.msg_key, "spring-27:c2:email");
    /* from the copy of the message in the text */
    assert_string_equal(d.message_id,
                        "<spring-27=3Ac2=3Aemail@mail.example.org>");
    expect(&d, w, 1);
}

static void
test_sendmail_hashed(void **state)
{
    struct dsn d;
    char err[200];
    static const struct want_rcpt w[] = {
        { "carol@example.edu", "failed", "5.1.1", BOUNCE_HARD, "User unknown" },
    };

    (void)state;
    assert_int_equal(parse_file("sendmail.eml", &d, err, sizeof err), 0);
    assert_int_equal(d.is_report, 1);
    /* VERP held the hash; the Message-ID holds the key that hashes to it */
    assert_string_equal(d.msg_key, "newsletter-autumn-2027-extended-edition:"
                                   "c1234567890:email");
    assert_int_equal(d.key_hashed, 0);
    expect(&d, w, 1);
}

static void
test_gmail_message_id(void **state)
{
    struct dsn d;
    char err[200];
    static const struct want_rcpt w[] = {
        { "dave.gone@gmail.com", "failed", "5.1.1", BOUNCE_HARD,
          "550-5.1.1 The email account that you tried to reach does not "
          "exist." },
    };

    (void)state;
    /* CRLF, no VERP (To: news@example.org): the key comes from the
     * text/rfc822-headers part's folded Message-ID */
    assert_int_equal(parse_file("gmail.eml", &d, err, sizeof err), 0);
    assert_int_equal(d.is_report, 1);
    assert_string_equal(d.msg_key, "spring-27:c4:email");
    assert_string_equal(d.message_id,
                        "<spring-27=3Ac4=3Aemail@mail.example.org>");
    expect(&d, w, 1);
}

static void
test_mailbox_full(void **state)
{
    struct dsn d;
    char err[200];
    static const struct want_rcpt w[] = {
        { "erin@outlook.example.com", "failed", "5.2.2", BOUNCE_SOFT,
          "554 5.2.2 mailbox full; STOREDRV" },
    };

    (void)state;
    assert_int_equal(parse_file("mailbox-full.eml", &d, err, sizeof err), 0);
    /* hashed VERP and no original to recover the key from */
    assert_string_equal(d.msg_key, "h.7e987152552418fd046ecb07ddbad5b8");
    assert_int_equal(d.key_hashed, 1);
    assert_string_equal(d.message_id, "");
    expect(&d, w, 1);
}

static void
test_delayed(void **state)
{
    struct dsn d;
    char err[200];
    static const struct want_rcpt w[] = {
        { "frank@slow.example", "delayed", "4.4.1", BOUNCE_SOFT,
          "Connection timed out" },
    };

    (void)state;
    assert_int_equal(parse_file("delayed.eml", &d, err, sizeof err), 0);
    /* X-Original-To has the VERP address, Delivered-To does not */
    assert_string_equal(d.msg_key, "spring-27:c6:email");
    assert_string_equal(d.message_id,
                        "<spring-27=3Ac6=3Aemail@mail.example.org>");
    expect(&d, w, 1);
}

static void
test_policy(void **state)
{
    struct dsn d;
    char err[200];
    static const struct want_rcpt w[] = {
        { "grace@strict.example", "failed", "5.7.1", BOUNCE_UNKNOWN,
          "blocked using zen.spamhaus.org" },
    };

    (void)state;
    assert_int_equal(parse_file("policy-5.7.1.eml", &d, err, sizeof err), 0);
    assert_string_equal(d.msg_key, "spring-27:c7:email");
    expect(&d, w, 1);
}

static void
test_multi(void **state)
{
    struct dsn d;
    char err[200];
    static const struct want_rcpt w[] = {
        { "henry@a.example", "failed", "5.1.1", BOUNCE_HARD, "User unknown" },
        /* no blank line before the next group; Original- first */
        { "ivy@b.example", "failed", "5.2.2", BOUNCE_SOFT, "Over quota" },
        /* 5.0.0 made specific by the folded Diagnostic-Code */
        { "jack@c.example", "failed", "5.1.1", BOUNCE_HARD,
          "550 5.1.1 unknown user <jack@c.example>" },
        /* kate: delivered, not reported; len: <> and a QP soft break */
        { "len@e.example", "delayed", "4.7.0", BOUNCE_SOFT,
          "try again later (greylisted)" },
        { "mia@f.example", "failed", "", BOUNCE_UNKNOWN,
          "mailbox unavailable" },
    };

    (void)state;
    assert_int_equal(parse_file("multi-rcpt.eml", &d, err, sizeof err), 0);
    assert_int_equal(d.is_report, 1);
    assert_string_equal(d.msg_key, "digest/2027-03:c8:email");
    assert_string_equal(d.message_id,
                        "<digest=2F2027-03=3Ac8=3Aemail@mail.example.org>");
    expect(&d, w, 5);
}

static void
test_qmail(void **state)
{
    struct dsn d;
    char err[200];
    static const struct want_rcpt w[] = {
        { "nick@example.info", "failed", "5.1.1", BOUNCE_HARD,
          "550 5.1.1 <nick@example.info>... No such user here" },
    };

    (void)state;
    assert_int_equal(parse_file("qmail.eml", &d, err, sizeof err), 0);
    assert_int_equal(d.is_report, 0);
    assert_string_equal(d.msg_key, "spring-27:c9:email");
    assert_string_equal(d.message_id,
                        "<spring-27=3Ac9=3Aemail@mail.example.org>");
    expect(&d, w, 1);
}

static void
test_not_bounces(void **state)
{
    struct dsn d;
    char err[200];

    (void)state;
    /* an auto-reply that even says "550 5.1.1" */
    assert_int_equal(parse_file("autoreply.eml", &d, err, sizeof err),
                     GW_ENOTFOUND);
    assert_non_null(strstr(err, "auto-reply"));
    assert_string_equal(d.msg_key, "spring-27:c10:email");
    assert_int_equal(d.nrcpt, 0);
    /* a read receipt */
    assert_int_equal(parse_file("mdn.eml", &d, err, sizeof err), GW_ENOTFOUND);
    assert_non_null(strstr(err, "disposition-notification"));
    assert_int_equal(d.nrcpt, 0);
}

static void
test_malformed(void **state)
{
    struct dsn d;
    char err[200];
    static const struct want_rcpt w8[] = {
        { "paul@?xample.test", "failed", "5.1.1", BOUNCE_HARD,
          "no such user ? here" },
    };
    static const struct want_rcpt wnb[] = {
        { "", "failed", "5.1.2", BOUNCE_HARD, "Host unknown" },
    };

    (void)state;
    /* 8-bit bytes, control characters, no closing boundary, a truncated
     * original, lines without a colon */
    assert_int_equal(parse_file("malformed-8bit.eml", &d, err, sizeof err), 0);
    assert_int_equal(d.is_report, 1);
    assert_string_equal(d.msg_key, "spring-27:c11:email");
    assert_string_equal(d.message_id,
                        "<spring-27=3Ac11=3Aemail@mail.example.org>");
    expect(&d, w8, 1);
    /* multipart/report without a boundary: the text is all prologue */
    assert_int_equal(
        parse_file("malformed-noboundary.eml", &d, err, sizeof err), 0);
    assert_int_equal(d.is_report, 0);
    assert_string_equal(d.msg_key, "spring-27:c12:email");
    expect(&d, wnb, 1);
}

/* ---- built messages ---- */

static int
parse_str(const char *s, struct dsn *d, char *err, size_t errlen)
{
    int rc = dsn_parse(s, strlen(s), d, err, errlen);

    check_fields(d);
    return rc;
}

static void
test_text_scan(void **state)
{
    struct dsn d;
    char err[200];
    const char *head = "From: Mail Delivery System <MAILER-DAEMON@mx.x>\n"
                       "To: bounces+k1@bounce.example.org\n"
                       "Subject: Undeliverable\n\n";
    static const struct {
        const char *body, *status;
        enum bounce_class cls;
        const char *rcpt;
    } t[] = {
        /* version numbers, IPs and dates are not status codes */
        { "Postfix 3.7.11 on 192.0.2.5.1.1, Exim 4.96.2, v5.1.1, "
          "5.1.2024\n",
          "", BOUNCE_UNKNOWN, "" },
        { "<a@b.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n",
          "5.1.1", BOUNCE_HARD, "a@b.example" },
        { "host said: 550 No such user here\n", "", BOUNCE_HARD, "" },
        { "host said: 452 Too many recipients\n", "", BOUNCE_SOFT, "" },
        { "  550-5.2.2 The user's mailbox is full\n", "5.2.2", BOUNCE_SOFT,
          "" },
        { "Status: 5.7.1\n", "5.7.1", BOUNCE_UNKNOWN, "" },
        /* a weak match first, the strong one wins */
        { "see 5.1.1 below\nRCPT TO:<z@y.example>: 550 5.7.1 relay "
          "denied\n",
          "5.7.1", BOUNCE_UNKNOWN, "z@y.example" },
        { "550 4.4.1 mismatched classes\n4.4.1 later\n", "4.4.1", BOUNCE_SOFT,
          "" },
    };
    char msg[1000];

    (void)state;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        snprintf(msg, sizeof msg, "%s%s", head, t[i].body);
        assert_int_equal(parse_str(msg, &d, err, sizeof err), 0);
        assert_string_equal(d.msg_key, "k1");
        assert_int_equal(d.nrcpt, 1);
        if (strcmp(d.rcpt[0].status, t[i].status) ||
            d.rcpt[0].cls != t[i].cls || strcmp(d.rcpt[0].recipient, t[i].rcpt))
            fail_msg("%zu: status \"%s\" cls %d rcpt \"%s\"", i,
                     d.rcpt[0].status, d.rcpt[0].cls, d.rcpt[0].recipient);
    }
    /* no bounce signal: an ordinary message */
    assert_int_equal(parse_str("From: a@b.example\nTo: bounces+k1@x.org\n"
                               "Subject: hello\n\n550 5.1.1 hi\n",
                               &d, err, sizeof err),
                     GW_ENOTFOUND);
    assert_string_equal(d.msg_key, "k1");
    /* a bounce with neither key nor Message-ID */
    assert_int_equal(parse_str("From: MAILER-DAEMON@x.example\nTo: "
                               "news@example.org\nSubject: failure notice"
                               "\n\n550 5.1.1 no\n",
                               &d, err, sizeof err),
                     GW_ENOTFOUND);
    assert_int_equal(d.nrcpt, 1);
    assert_string_equal(d.rcpt[0].status, "5.1.1");
    /* a delivery report with only a success */
    assert_int_equal(parse_str("From: MAILER-DAEMON@x.example\nTo: "
                               "bounces+k2@x.org\nContent-Type: multipart/"
                               "report; report-type=delivery-status; "
                               "boundary=b\n\n--b\nContent-Type: message/"
                               "delivery-status\n\nReporting-MTA: dns; x\n\n"
                               "Final-Recipient: rfc822; a@b\nAction: "
                               "delivered\nStatus: 2.0.0\n--b--\n",
                               &d, err, sizeof err),
                     GW_ENOTFOUND);
    assert_int_equal(d.is_report, 1);
    assert_string_equal(d.msg_key, "k2");
}

static char *
many_rcpts(size_t n)
{
    struct buf b;

    buf_init(&b, 0);
    buf_puts(&b, "From: MAILER-DAEMON@x.example\nTo: bounces+k3@x.org\n"
                 "Content-Type: multipart/report; report-type=delivery-"
                 "status; boundary=b\n\n--b\nContent-Type: message/"
                 "delivery-status\n\nReporting-MTA: dns; x\n");
    for (size_t i = 0; i < n; i++)
        buf_printf(&b,
                   "\nFinal-Recipient: rfc822; r%zu@x.example\n"
                   "Action: failed\nStatus: 5.1.1\n",
                   i);
    buf_puts(&b, "--b--\n");
    return buf_steal(&b, NULL);
}

static void
test_limits(void **state)
{
    struct dsn d;
    char err[200], *s;
    size_t big = DSN_INPUT_MAX + 1;
    struct buf b;

    (void)state;
    s = many_rcpts(40);
    assert_int_equal(parse_str(s, &d, err, sizeof err), 0);
    assert_int_equal(d.nrcpt, DSN_RCPT_MAX);
    assert_string_equal(d.rcpt[15].recipient, "r15@x.example");
    free(s);

    s = malloc(big);
    assert_non_null(s);
    memset(s, 'a', big);
    assert_int_equal(dsn_parse(s, big, &d, err, sizeof err), GW_ETOOBIG);
    assert_non_null(strstr(err, "bytes"));
    free(s);

    assert_int_equal(dsn_parse(NULL, 1, &d, err, sizeof err), GW_EINVAL);
    assert_int_equal(dsn_parse("x", 1, NULL, err, sizeof err), GW_EINVAL);
    assert_true(dsn_parse("", 0, &d, NULL, 0) < 0);
    assert_true(dsn_parse(NULL, 0, &d, err, sizeof err) < 0);

    /* Deep nesting, and a delivery-status part below the walked depth */
    buf_init(&b, 0);
    buf_puts(&b, "From: MAILER-DAEMON@x.example\nTo: bounces+k4@x.org\n"
                 "Content-Type: multipart/mixed; boundary=b0\n\n");
    for (int i = 1; i < 3000; i++)
        buf_printf(&b,
                   "--b%d\nContent-Type: multipart/mixed; boundary=b%d"
                   "\n\n",
                   i - 1, i);
    buf_puts(&b, "--b2999\nContent-Type: message/delivery-status\n\n"
                 "Final-Recipient: rfc822; deep@x.example\nAction: failed\n"
                 "Status: 5.1.1\n");
    assert_int_equal(dsn_parse(b.data, b.len, &d, err, sizeof err), 0);
    assert_int_equal(d.is_report, 0);
    assert_string_equal(d.msg_key, "k4");
    check_fields(&d);
    buf_free(&b);

    /* Wide: the parts after the first PARTS_MAX are not walked. */
    buf_init(&b, 0);
    buf_puts(&b, "From: MAILER-DAEMON@x.example\nTo: bounces+k6@x.org\n"
                 "Content-Type: multipart/mixed; boundary=b\n\n");
    for (int i = 0; i < 100; i++)
        buf_printf(&b, "--b\nContent-Type: image/png\n\n%d\n", i);
    buf_puts(&b, "--b\nContent-Type: message/delivery-status\n\n"
                 "Final-Recipient: rfc822; wide@x.example\nAction: failed\n"
                 "Status: 5.1.1\n--b--\n");
    assert_int_equal(dsn_parse(b.data, b.len, &d, err, sizeof err), 0);
    assert_int_equal(d.is_report, 0);
    buf_free(&b);

    /* Long folded fields are cut to fit, on a character boundary. */
    buf_init(&b, 0);
    buf_puts(&b, "From: MAILER-DAEMON@x.example\nTo: bounces+k5@x.org\n"
                 "Content-Type: multipart/report; report-type=delivery-"
                 "status; boundary=b\n\n--b\nContent-Type: message/"
                 "delivery-status\n\nFinal-Recipient: rfc822; ");
    for (int i = 0; i < 500; i++)
        buf_puts(&b, "\xc3\xa9");
    buf_puts(&b, "@x.example\nAction: failedfailedfailedfailed\n"
                 "Diagnostic-Code: smtp; 550 5.1.1 ");
    for (int i = 0; i < 3000; i++)
        buf_puts(&b, i % 7 ? "\xe2\x82\xac" : "\n ");
    buf_puts(&b, "\n--b--\n");
    assert_int_equal(dsn_parse(b.data, b.len, &d, err, sizeof err), 0);
    check_fields(&d);
    assert_int_equal(d.nrcpt, 1);
    assert_true(strlen(d.rcpt[0].recipient) <= 319);
    assert_true(strlen(d.rcpt[0].diagnostic) <= 511);
    assert_string_equal(d.rcpt[0].action, "failedfailedfai");
    assert_string_equal(d.rcpt[0].status, "5.1.1");
    assert_int_equal(d.rcpt[0].cls, BOUNCE_HARD);
    buf_free(&b);
}

static void
test_garbage(void **state)
{
    unsigned seed = 99;
    char buf[4096], err[200];
    struct dsn d;
    size_t len;
    char *sample = load("multi-rcpt.eml", &len);

    (void)state;
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = (seed = seed * 1103515245 + 12345) % sizeof buf;
        if (iter % 2) {
            /* random bytes */
            for (size_t i = 0; i < n; i++)
                buf[i] = (char)((seed = seed * 1103515245 + 12345) >> 16);
        } else {
            /* a real report with bytes flipped */
            n = len < sizeof buf ? len : sizeof buf;
            memcpy(buf, sample, n);
            for (int k = 0; k < 8; k++) {
                seed = seed * 1103515245 + 12345;
                buf[(seed >> 8) % n] = (char)(seed >> 20);
            }
        }
        (void)dsn_parse(buf, n, &d, err, sizeof err);
        check_fields(&d);
    }
    free(sample);
}

static void *
parse_thread(void *arg)
{
    const char *raw = arg;
    struct dsn d;
    char err[200];
    intptr_t bad = 0;

    for (int i = 0; i < 200; i++)
        if (dsn_parse(raw, strlen(raw), &d, err, sizeof err) != 0 ||
            strcmp(d.msg_key, "digest/2027-03:c8:email") || d.nrcpt != 5)
            bad++;
    return (void *)bad;
}

static void
test_threads(void **state)
{
    pthread_t th[4];
    size_t len;
    char *raw = load("multi-rcpt.eml", &len);

    (void)state;
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, parse_thread, raw), 0);
    for (int i = 0; i < 4; i++) {
        void *bad;
        assert_int_equal(pthread_join(th[i], &bad), 0);
        assert_true(bad == NULL);
    }
    free(raw);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_verp_key),
        cmocka_unit_test(test_verp_roundtrip),
        cmocka_unit_test(test_postfix_hard),
        cmocka_unit_test(test_exim),
        cmocka_unit_test(test_sendmail_hashed),
        cmocka_unit_test(test_gmail_message_id),
        cmocka_unit_test(test_mailbox_full),
        cmocka_unit_test(test_delayed),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_multi),
        cmocka_unit_test(test_qmail),
        cmocka_unit_test(test_not_bounces),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_text_scan),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

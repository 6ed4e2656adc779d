/*
 * fuzz_dsn.c -- libFuzzer target for the bounce parser (channels/dsn.c):
 * the input is a whole message for dsn_parse. Whatever comes back, every
 * output string must be NUL-terminated inside its field and valid UTF-8
 * without control characters, nrcpt within DSN_RCPT_MAX, the result one of
 * the documented codes, and a 0 must carry a recipient and a key or a
 * Message-ID. The input's first line also goes to dsn_verp_key: a key it
 * accepts must encode back (mime_key_token) to the very same token, and
 * to bounce_classify_text.
 * Build: make build/fuzz/fuzz_dsn (with gmime-3.0 in PKGS), or
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Icommon
 *   tests/fuzz/fuzz_dsn.c channels/dsn.c channels/mime.c common/utf8.c
 *   common/buf.c common/err.c
 *   $(pkg-config --cflags --libs gmime-3.0 jansson libuv)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channels/dsn.h"
#include "channels/mime.h"
#include "common/buf.h"
#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_str(const char *s, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s;

    if (!memchr(s, 0, cap))
        abort();
    while (*p) {
        int n = *p < 0x80                  ? 0
                : *p >= 0xC2 && *p <= 0xDF ? 1
                : *p >= 0xE0 && *p <= 0xEF ? 2
                : *p >= 0xF0 && *p <= 0xF4 ? 3
                                           : -1;
        if (n < 0 || *p < 0x20 || *p == 0x7F)
            abort();
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xC0) != 0x80)
                abort();
    }
}

static void
check_verp(const uint8_t *data, size_t size)
{
    char addr[256], key[600];
    const char *plus, *at;
    size_t n = 0;
    struct buf b;
    int rc;

    while (n < size && n + 1 < sizeof addr && data[n] != '\n' && data[n])
        n++;
    memcpy(addr, data, n);
    addr[n] = 0;
    rc = dsn_verp_key(addr, key, sizeof key);
    if (rc != 0 && rc != 1 && rc != GW_EINVAL && rc != GW_ETOOBIG)
        abort();
    (void)bounce_classify_text(550, addr, addr);
    if (rc != 0 || strpbrk(addr, "<> \t\r\f\v"))
        return;
    /* The token is what follows the last '+' before the last '@'. */
    if ((at = strrchr(addr, '@')) == NULL)
        abort();
    plus = NULL;
    for (const char *p = addr; p < at; p++)
        if (*p == '+')
            plus = p;
    if (!plus)
        abort();
    buf_init(&b, 0);
    if (mime_key_token(&b, key, 1000) < 0 ||
        strlen(buf_cstr(&b)) != (size_t)(at - plus - 1) ||
        memcmp(buf_cstr(&b), plus + 1, (size_t)(at - plus - 1)) != 0)
        abort();
    buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dsn d;
    char err[200];
    int rc;

    rc = dsn_parse((const char *)data, size, &d, err, sizeof err);
    if (rc != 0 && rc != GW_ENOTFOUND && rc != GW_EPARSE && rc != GW_ETOOBIG &&
        rc != GW_EINVAL)
        abort();
    if (!memchr(err, 0, sizeof err))
        abort();
    if (rc < 0 && !err[0])
        abort();
    if (d.nrcpt > DSN_RCPT_MAX)
        abort();
    if (rc == 0 && (d.nrcpt == 0 || (!d.msg_key[0] && !d.message_id[0])))
        abort();
    if (!memchr(d.msg_key, 0, sizeof d.msg_key))
        abort();
    check_str(d.message_id, sizeof d.message_id);
    for (size_t i = 0; i < d.nrcpt; i++) {
        const struct dsn_rcpt *r = &d.rcpt[i];
        check_str(r->recipient, sizeof r->recipient);
        check_str(r->action, sizeof r->action);
        check_str(r->status, sizeof r->status);
        check_str(r->diagnostic, sizeof r->diagnostic);
        if (r->cls != BOUNCE_HARD && r->cls != BOUNCE_SOFT &&
            r->cls != BOUNCE_UNKNOWN)
            abort();
    }
    check_verp(data, size);
    return 0;
}

/*
 * fuzz_fax_render.c -- libFuzzer target for the fax page renderer
 * (channels/fax_render.c): arbitrary bytes as the fax part's markup, with
 * one small PNG in the template set. Rendering must succeed with a PDF and
 * a page count, or fail with a reason that names template and part; never
 * crash, never exceed the renderer's limits. Inputs are kept small (the
 * renderer caps size, nesting, pages and images; large inputs only spend
 * the fuzzer's time in cairo's compressor).
 * Build: make build/fuzz/fuzz_fax_render
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channels/fax_render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A 1x1 grey PNG. */
static const unsigned char png[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d,
    0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,
    0x08, 0x00, 0x00, 0x00, 0x00, 0x3a, 0x7e, 0x9b, 0x55, 0x00, 0x00, 0x00,
    0x0a, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0x68, 0x00, 0x00, 0x00,
    0x82, 0x00, 0x81, 0xdd, 0x43, 0x6a, 0xf4, 0x00, 0x00, 0x00, 0x00, 0x49,
    0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};

const char *__lsan_default_suppressions(void);
const char *
__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n";
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct content_image img = { "logo.png", "image/png", "logo", png,
                                 sizeof png };
    struct fax_page_opts o = { FAX_A4, NULL, 11, "Opt out: call 0800 1",
                               3, "fuzz" };
    struct fax_doc d;
    char err[300];
    int rc;

    if (size > 16384)
        return 0;
    memset(&d, 0, sizeof d);
    rc = fax_render((const char *)data, size, &img, 1, &o, &d, err,
                    sizeof err);
    if (rc == 0) {
        if (!d.pdf || d.len < 5 || memcmp(d.pdf, "%PDF-", 5) != 0 ||
            d.pages < 1 || d.pages > 3)
            abort();
        fax_doc_free(&d);
    } else if (strncmp(err, "template fuzz, part fax", 23) != 0) {
        abort();
    }
    return 0;
}

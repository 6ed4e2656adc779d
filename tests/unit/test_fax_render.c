/*
 * test_fax_render.c -- tests for the fax page renderer
 * (channels/fax_render.c). Every PDF is checked with poppler's tools (run
 * through popen on a mkstemp file; a missing tool fails loudly): the page
 * count equals pdfinfo's, page 1 carries the personalised name and the
 * opt-out notice, A4 and Letter sizes, PNG and JPEG logos embedded (the
 * JPEG as DCT data), long paragraphs and tables split across pages with
 * the table header repeated, no word under 10 pt (pdftotext -bbox) even
 * when 4 pt is asked for. Errors name the template and the part: a missing
 * image, a corrupt or oversized one, a table too wide, too many pages, deep
 * nesting, oversized input. Malformed markup (unclosed tags, binary
 * garbage, empty input) renders or fails cleanly. Two threads render at
 * once, and the per-thread state can be dropped and made again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cairo.h>

#include "buf.h"
#include "err.h"
#include "channels/fax_render.h"

#define NOTICE                                                                 \
    "To stop faxes from Acme call 0800 555 0100, fax 0800 555 0101 or "        \
    "visit https://acme.example/u/7f3a. Not opting out within 30 days of "     \
    "a request is unlawful."

/* A 16x16 grey baseline JPEG: one quantisation table, a one-code Huffman
 * table each for DC and AC, four blocks of mid grey. */
static const unsigned char tiny_jpeg[] = {
    0xff, 0xd8, 0xff, 0xdb, 0x00, 0x43, 0x00, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0xff,
    0xc0, 0x00, 0x0b, 0x08, 0x00, 0x10, 0x00, 0x10, 0x01, 0x01, 0x11, 0x00,
    0xff, 0xc4, 0x00, 0x14, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xc4,
    0x00, 0x14, 0x10, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xda, 0x00, 0x08,
    0x01, 0x01, 0x00, 0x00, 0x3f, 0x00, 0x00, 0xff, 0xd9,
};

/* ---- helpers ---- */

static struct fax_page_opts
opts(void)
{
    struct fax_page_opts o;

    memset(&o, 0, sizeof o);
    o.paper = FAX_A4;
    o.notice = NOTICE;
    o.template_name = "renewal";
    return o;
}

static int
render(const char *markup, const struct content_image *im, size_t nim,
       const struct fax_page_opts *o, struct fax_doc *d, char *err,
       size_t errlen)
{
    return fax_render(markup, strlen(markup), im, nim, o, d, err, errlen);
}

static void
need_tool(const char *tool)
{
    char cmd[128];

    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    if (system(cmd) != 0)
        fail_msg("%s not found: install poppler-utils (make deps); the fax "
                 "tests need it to read the PDFs back",
                 tool);
}

/* Run "tool [args] <pdf> [tail]" on d and return its stdout (and stderr
 * when errs is set), malloc'd. */
static char *
run_tool(const struct fax_doc *d, const char *tool, const char *args,
         const char *tail, int errs)
{
    char path[] = "/tmp/test_fax_render-XXXXXX", cmd[512];
    struct buf out;
    FILE *p;
    char chunk[4096];
    size_t n;
    int fd;

    need_tool(tool);
    assert_true((fd = mkstemp(path)) >= 0);
    assert_int_equal(write(fd, d->pdf, d->len), (ssize_t)d->len);
    close(fd);
    snprintf(cmd, sizeof cmd, "%s %s '%s' %s %s", tool, args, path, tail,
             errs ? "2>&1" : "2>/dev/null");
    assert_non_null(p = popen(cmd, "r"));
    buf_init(&out, 0);
    while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
        buf_append(&out, chunk, n);
    pclose(p);
    unlink(path);
    buf_cstr(&out);
    return buf_steal(&out, &n);
}

static int
pdfinfo_pages(const struct fax_doc *d)
{
    char *s = run_tool(d, "pdfinfo", "", "", 0);
    char *p = strstr(s, "Pages:");
    int n = p ? atoi(p + 6) : -1;

    free(s);
    return n;
}

/* The text of pages [from, to], all white space removed. */
static char *
page_text(const struct fax_doc *d, int from, int to)
{
    char args[64];
    char *s, *w, *r;

    snprintf(args, sizeof args, "-f %d -l %d", from, to);
    s = run_tool(d, "pdftotext", args, "-", 0);
    for (r = w = s; *r; r++)
        if (!isspace((unsigned char)*r))
            *w++ = *r;
    *w = 0;
    return s;
}

static char *
squeeze(const char *in)
{
    char *s = strdup(in), *w = s;

    for (const char *r = in; *r; r++)
        if (!isspace((unsigned char)*r))
            *w++ = *r;
    *w = 0;
    return s;
}

static void
assert_contains(const char *hay, const char *needle)
{
    if (strstr(hay, needle) == NULL)
        fail_msg("\"%s\" not found in \"%.400s\"", needle, hay);
}

static void
assert_lacks(const char *hay, const char *needle)
{
    if (strstr(hay, needle) != NULL)
        fail_msg("\"%s\" found in \"%.400s\"", needle, hay);
}

static void
check_pdf(const struct fax_doc *d)
{
    assert_non_null(d->pdf);
    assert_true(d->len > 100);
    assert_memory_equal(d->pdf, "%PDF-", 5);
    assert_true(d->pages >= 1);
    assert_true(d->min_font_pt >= FAX_MIN_PT);
    assert_int_equal(pdfinfo_pages(d), d->pages);
}

static cairo_status_t
png_write(void *closure, const unsigned char *data, unsigned int len)
{
    return buf_append(closure, data, len) < 0 ? CAIRO_STATUS_WRITE_ERROR
                                              : CAIRO_STATUS_SUCCESS;
}

/* A w x h PNG logo made with cairo: a black square on white, with a
 * transparent corner; malloc'd. */
static unsigned char *
make_png(int w, int h, size_t *len)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, w, h);
    cairo_t *cr = cairo_create(s);
    struct buf b;

    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_rectangle(cr, 0, 0, w, h / 2.0);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, w / 4.0, h / 4.0, w / 2.0, h / 2.0);
    cairo_fill(cr);
    cairo_destroy(cr);
    buf_init(&b, 0);
    assert_int_equal(cairo_surface_write_to_png_stream(s, png_write, &b),
                     CAIRO_STATUS_SUCCESS);
    cairo_surface_destroy(s);
    return (unsigned char *)buf_steal(&b, len);
}

/* n paragraphs of filler, each naming its number. */
static char *
paragraphs(int n)
{
    struct buf b;
    size_t len;

    buf_init(&b, 0);
    buf_puts(&b, "<h1>Statement for Jane Doe</h1>");
    for (int i = 1; i <= n; i++)
        buf_printf(&b,
                   "<p>Paragraph %d. Lorem ipsum dolor sit amet, consectetur "
                   "adipiscing elit, sed do eiusmod tempor incididunt ut "
                   "labore et dolore magna aliqua.</p>",
                   i);
    return buf_steal(&b, &len);
}

/* ---- tests ---- */

static void
test_one_page(void **state)
{
    struct fax_page_opts o = opts();
    struct fax_doc d;
    char err[256], *t;

    (void)state;
    assert_int_equal(render("<h1>Your renewal</h1><p>Dear <b>Jane Doe</b>, "
                            "your policy renews on 1 June.</p>",
                            NULL, 0, &o, &d, err, sizeof err),
                     0);
    check_pdf(&d);
    assert_int_equal(d.pages, 1);
    t = page_text(&d, 1, 1);
    assert_contains(t, "DearJaneDoe,");
    assert_contains(t, "Page1of1");
    {
        char *n = squeeze(NOTICE);
        assert_contains(t, n);
        free(n);
    }
    free(t);
    fax_doc_free(&d);
    assert_null(d.pdf);
    fax_doc_free(NULL);
}

static void
test_multi_page(void **state)
{
    struct fax_page_opts o = opts();
    struct fax_doc d;
    char err[256], *t, *m = paragraphs(60), want[32];
    char *n = squeeze(NOTICE);

    (void)state;
    assert_int_equal(render(m, NULL, 0, &o, &d, err, sizeof err), 0);
    check_pdf(&d);
    assert_true(d.pages >= 3);
    t = page_text(&d, 1, 1);
    assert_contains(t, "StatementforJaneDoe");
    assert_contains(t, n);
    snprintf(want, sizeof want, "Page1of%d", d.pages);
    assert_contains(t, want);
    free(t);
    t = page_text(&d, 2, 2);
    assert_lacks(t, n); /* the notice is on page 1 only */
    free(t);
    t = page_text(&d, d.pages, d.pages);
    snprintf(want, sizeof want, "Page%dof%d", d.pages, d.pages);
    assert_contains(t, want);
    assert_contains(t, "Paragraph60.");
    free(t);
    /* every paragraph is there once, in order */
    t = page_text(&d, 1, d.pages);
    {
        const char *at = t;
        for (int i = 1; i <= 60; i++) {
            char p[32];
            snprintf(p, sizeof p, "Paragraph%d.", i);
            assert_non_null(at = strstr(at, p));
        }
    }
    free(t);
    fax_doc_free(&d);
    free(m);
    free(n);
}

/* One paragraph longer than a page is split between lines. */
static void
test_long_paragraph(void **state)
{
    struct fax_page_opts o = opts();
    struct fax_doc d;
    struct buf b;
    char err[256], *t, *m;
    size_t len;

    (void)state;
    buf_init(&b, 0);
    buf_puts(&b, "<p>");
    for (int i = 1; i <= 1500; i++)
        buf_printf(&b, "w%d ", i);
    buf_puts(&b, "</p>");
    m = buf_steal(&b, &len);
    assert_int_equal(render(m, NULL, 0, &o, &d, err, sizeof err), 0);
    check_pdf(&d);
    assert_true(d.pages >= 2);
    t = page_text(&d, 1, 1);
    assert_contains(t, "w1w2w3");
    free(t);
    t = page_text(&d, 2, 2);
    assert_contains(t, "w1000w1001"); /* somewhere past page 1 */
    free(t);
    t = page_text(&d, 1, d.pages);
    assert_contains(t, "w1499w1500");
    free(t);
    fax_doc_free(&d);
    free(m);
}

static void
test_paper(void **state)
{
    struct fax_page_opts o = opts();
    struct fax_doc d;
    char err[256], *s;

    (void)state;
    assert_int_equal(render("<p>A4</p>", NULL, 0, &o, &d, err, sizeof err), 0);
    s = run_tool(&d, "pdfinfo", "", "", 0);
    assert_contains(s, "595.276 x 841.89 pts (A4)");
    free(s);
    fax_doc_free(&d);
    o.paper = FAX_LETTER;
    assert_int_equal(render("<p>Letter</p>", NULL, 0, &o, &d, err, sizeof err),
                     0);
    s = run_tool(&d, "pdfinfo", "", "", 0);
    assert_contains(s, "612 x 792 pts (letter)");
    free(s);
    fax_doc_free(&d);
}

static void
test_images(void **state)
{
    struct fax_page_opts o = opts();
    struct fax_doc d;
    size_t plen;
    unsigned char *png = make_png(120, 40, &plen);
    struct content_image im[2] = {
        { "logo.png", "image/png", "logo-1", png, plen },
        { "photo.jpg", "image/jpeg", "photo-1", tiny_jpeg, sizeof tiny_jpeg },
    };
    char err[256], *s;

    (void)state;
    assert_int_equal(render("<img src=\"logo.png\"><p>Dear Jane Doe</p>"
                            "<img src=\"cid:photo-1\" width=\"64\">",
                            im, 2, &o, &d, err, sizeof err),
                     0);
    check_pdf(&d);
    s = run_tool(&d, "pdfimages", "-list", "", 1);
    /* page num type width height color comp bpc enc ... */
    assert_contains(s, "image     120    40");
    assert_contains(s, "image      16    16  gray    1   8  jpeg");
    assert_lacks(s, "rror");
    free(s);
    /* the JPEG is carried as it is */
    assert_non_null(memmem(d.pdf, d.len, tiny_jpeg, sizeof tiny_jpeg));
    /* and both draw without complaint */
    s = run_tool(&d, "pdftoppm", "-r 30 -png", "/dev/null", 1);
    assert_lacks(s, "rror");
    free(s);
    fax_doc_free(&d);

    /* the same bytes in another buffer come from the cache, and again
     * after the thread's state is dropped */
    for (int round = 0; round < 2; round++) {
        unsigned char *copy = malloc(plen);
        memcpy(copy, png, plen);
        im[0].data = copy;
        assert_int_equal(render("<img src=\"logo.png\" width=\"50%\">", im, 1,
                                &o, &d, err, sizeof err),
                         0);
        check_pdf(&d);
        fax_doc_free(&d);
        free(copy);
        fax_render_thread_done();
    }
    free(png);
}

static void
test_image_errors(void **state)
{
    struct fax_page_opts o = opts();
    struct fax_doc d;
    size_t plen;
    unsigned char *png = make_png(30, 30, &plen), *bad;
    unsigned char big[64], jbad[sizeof tiny_jpeg], gif[] = "GIF89a....";
    struct content_image im[4] = {
        { "a.png", "image/png", NULL, NULL, 0 },
        { "big.png", "image/png", NULL, big, sizeof big },
        { "b.jpg", "image/jpeg", NULL, jbad, sizeof jbad },
        { "c.gif", "image/gif", NULL, gif, sizeof gif },
    };
    char err[256];

    (void)state;
    assert_int_equal(render("<p>x</p><img src=\"logo.png\">", im, 4, &o, &d,
                            err, sizeof err),
                     GW_ENOTFOUND);
    assert_string_equal(err,
                        "template renewal, part fax: image \"logo.png\" not "
                        "found");
    assert_null(d.pdf);
    assert_int_equal(
        render("<img src=\"cid:nope\">", im, 4, &o, &d, err, sizeof err),
        GW_ENOTFOUND);
    assert_string_equal(err,
                        "template renewal, part fax: image \"cid:nope\" not "
                        "found");
    /* also inside a table cell, where only the alt text is drawn */
    assert_int_equal(render("<table><tr><td><img src=\"x.png\" alt=\"X\">"
                            "</td></tr></table>",
                            im, 4, &o, &d, err, sizeof err),
                     GW_ENOTFOUND);

    /* a PNG cut short after its header */
    bad = malloc(plen);
    memcpy(bad, png, plen);
    im[0].data = bad;
    im[0].len = plen / 2;
    assert_int_equal(
        render("<img src=\"a.png\">", im, 4, &o, &d, err, sizeof err),
        GW_EINVAL);
    assert_string_equal(err, "template renewal, part fax: image \"a.png\" is a "
                             "corrupt PNG");
    /* garbage in the middle */
    im[0].len = plen;
    memset(bad + 40, 0x5a, plen - 60 > 40 ? plen - 60 - 40 : 1);
    assert_true(render("<img src=\"a.png\">", im, 4, &o, &d, err, sizeof err) <
                0);
    assert_contains(err, "corrupt PNG");

    /* a header claiming 5000x5000 pixels is refused before decoding */
    memcpy(big, png, sizeof big);
    big[16] = 0, big[17] = 0, big[18] = 0x13, big[19] = 0x88;
    big[20] = 0, big[21] = 0, big[22] = 0x13, big[23] = 0x88;
    assert_int_equal(
        render("<img src=\"big.png\">", im, 4, &o, &d, err, sizeof err),
        GW_ETOOBIG);
    assert_string_equal(err, "template renewal, part fax: image \"big.png\" is "
                             "5000x5000 pixels, the limit is 4000x4000");

    /* a JPEG whose segment lengths run off the end */
    memcpy(jbad, tiny_jpeg, sizeof jbad);
    jbad[4] = 0x7f;
    assert_int_equal(
        render("<img src=\"b.jpg\">", im, 4, &o, &d, err, sizeof err),
        GW_EINVAL);
    assert_string_equal(err, "template renewal, part fax: image \"b.jpg\" is a "
                             "corrupt JPEG");
    /* a JPEG without its end */
    memcpy(jbad, tiny_jpeg, sizeof jbad);
    im[2].len = sizeof jbad - 2;
    assert_int_equal(
        render("<img src=\"b.jpg\">", im, 4, &o, &d, err, sizeof err),
        GW_EINVAL);
    /* every truncation of the JPEG fails cleanly */
    for (size_t n = 0; n < sizeof jbad - 2; n++) {
        im[2].len = n;
        assert_true(
            render("<img src=\"b.jpg\">", im, 4, &o, &d, err, sizeof err) < 0);
    }
    assert_int_equal(
        render("<img src=\"c.gif\">", im, 4, &o, &d, err, sizeof err),
        GW_EINVAL);
    assert_string_equal(err,
                        "template renewal, part fax: image \"c.gif\" is not "
                        "PNG or JPEG");
    free(bad);
    free(png);
}

static void
test_table(void **state)
{
    struct fax_page_opts o = opts();
    struct fax_doc d;
    struct buf b;
    char err[256], *t, *m;
    size_t len;

    (void)state;
    buf_init(&b, 0);
    buf_puts(&b, "<p>Your items, Jane Doe:</p><table><thead><tr>"
                 "<th>Item</th><th>Cover</th><th align=right>Sum</th>"
                 "<th>Note</th></tr></thead><tbody>");
    for (int i = 1; i <= 120; i++)
        buf_printf(&b,
                   "<tr><td>Row%d</td><td>Accidental damage</td>"
                   "<td align=right>%d.00</td><td>%s</td></tr>",
                   i, i * 100,
                   i % 10 ? ""
                          : "A long note that has to wrap inside its "
                            "cell because the column cannot grow any "
                            "wider than the page allows it to be.");
    buf_puts(&b, "<tr><td colspan=3>Total</td><td>all</td></tr>"
                 "</tbody></table><p>End of table.</p>");
    m = buf_steal(&b, &len);
    assert_int_equal(render(m, NULL, 0, &o, &d, err, sizeof err), 0);
    check_pdf(&d);
    assert_true(d.pages >= 3);
    t = page_text(&d, 1, 1);
    assert_contains(t, "ItemCoverSumNote");
    assert_contains(t, "Row1Accidentaldamage100.00");
    free(t);
    /* rows continue on the next page under a repeated header */
    t = page_text(&d, 2, 2);
    assert_contains(t, "ItemCoverSumNote");
    free(t);
    t = page_text(&d, 1, d.pages);
    assert_contains(t, "Row120");
    assert_contains(t, "12000.00");
    assert_contains(t, "Endoftable.");
    free(t);
    t = run_tool(&d, "pdftotext", "-layout", "-", 0);
    assert_non_null(strstr(t, "Total"));
    assert_contains(strstr(t, "Total"), "all");
    free(t);
    fax_doc_free(&d);
    free(m);
}

static void
test_table_too_wide(void **state)
{
    struct fax_page_opts o = opts();
    struct fax_doc d;
    struct buf b;
    char err[256], *m;
    size_t len;

    (void)state;
    buf_init(&b, 0);
    buf_puts(&b, "<table><tr>");
    for (int i = 0; i < 9; i++)
        buf_printf(&b, "<td>Unbreakable%dWordThatIsLong</td>", i);
    buf_puts(&b, "</tr></table>");
    m = buf_steal(&b, &len);
    assert_int_equal(render(m, NULL, 0, &o, &d, err, sizeof err), GW_EINVAL);
    assert_contains(err, "template renewal, part fax: table of 9 columns is ");
    assert_contains(err, " mm wide, the page has 180 mm");
    assert_null(d.pdf);
    free(m);

    /* many narrow columns wrap instead */
    buf_init(&b, 0);
    buf_puts(&b, "<table><tr>");
    for (int i = 0; i < 8; i++)
        buf_printf(&b, "<td>a few short words in column %d</td>", i);
    buf_puts(&b, "</tr></table>");
    m = buf_steal(&b, &len);
    assert_int_equal(render(m, NULL, 0, &o, &d, err, sizeof err), 0);
    check_pdf(&d);
    fax_doc_free(&d);
    free(m);

    /* Letter is wider */
    o.paper = FAX_LETTER;
    m = "<table><tr><td>ThisIsAnUnbreakableWordOfGreatLengthThatCannotFitOn"
        "AnyPageAtAllNotEvenOnLetterPaperWhichIsWiderThanA4</td><td>x</td>"
        "</tr></table>";
    assert_int_equal(render(m, NULL, 0, &o, &d, err, sizeof err), GW_EINVAL);
    assert_contains(err, "table of 2 columns is ");
    assert_contains(err, "the page has 186 mm");
}

static void
test_max_pages(void **state)
{
    struct fax_page_opts o = opts();
    struct fax_doc d;
    char err[256], *m = paragraphs(80);

    (void)state;
    o.max_pages = 2;
    assert_int_equal(render(m, NULL, 0, &o, &d, err, sizeof err), GW_ETOOBIG);
    assert_string_equal(err,
                        "template renewal, part fax: the fax needs more than 2 "
                        "pages (max_pages 2)");
    assert_null(d.pdf);
    o.max_pages = 0; /* 50 */
    assert_int_equal(render(m, NULL, 0, &o, &d, err, sizeof err), 0);
    assert_true(d.pages > 2 && d.pages <= 50);
    fax_doc_free(&d);
    free(m);
}

static void
test_text_rules(void **state)
{
    struct fax_page_opts o = opts();
    struct fax_doc d;
    char err[256], *t, *raw;

    (void)state;
    o.notice = NULL;
    assert_int_equal(
        render("<html><head><title>T1tle</title><style>p{color:red}</style>"
               "<script>var secret=1;</script></head><body>"
               "<p>Fish &amp; chips &eacute;t&#233; &lt;ok&gt;</p>"
               "<p>spaced     out\n\n\ttext</p>"
               "<blink>unknown element</blink> <span>inline</span>"
               "<ul><li>one</li><li>two<ol><li>deep</li></ol></li></ul>"
               "<ol start=\"7\"><li>seventh</li></ol><hr>"
               "<p>line<br>break</p><h2>Heading</h2><h3>Sub</h3>"
               "<p align=\"center\"><i>it</i> <u>ul</u></p></body></html>",
               NULL, 0, &o, &d, err, sizeof err),
        0);
    check_pdf(&d);
    raw = run_tool(&d, "pdftotext", "-layout", "-", 0);
    assert_contains(raw, "Fish & chips été <ok>");
    assert_contains(raw, "spaced out text");
    assert_contains(raw, "unknown element inline");
    assert_contains(raw, "7. seventh");
    assert_contains(raw, "1. deep");
    assert_lacks(raw, "T1tle");
    assert_lacks(raw, "secret");
    assert_lacks(raw, "color");
    free(raw);
    t = page_text(&d, 1, 1);
    assert_contains(t, "one");
    assert_contains(t, "linebreak");
    free(t);
    fax_doc_free(&d);
}

/* Every word is at least 10 pt: poppler's word boxes are font-size high
 * (ascent to descent), so none may be under 10. */
static void
check_min_size(const struct fax_doc *d)
{
    char *s = run_tool(d, "pdftotext", "-bbox", "-", 0), *p = s;
    int words = 0;

    while ((p = strstr(p, "<word ")) != NULL) {
        double y0, y1;
        char *a = strstr(p, "yMin=\""), *b = strstr(p, "yMax=\"");
        assert_non_null(a);
        assert_non_null(b);
        y0 = atof(a + 6);
        y1 = atof(b + 6);
        if (y1 - y0 < 10.0)
            fail_msg("a word %.2f pt high: %.80s", y1 - y0, p);
        words++;
        p++;
    }
    assert_true(words > 5);
    free(s);
}

static void
test_font_sizes(void **state)
{
    struct fax_page_opts o = opts();
    struct fax_doc d;
    char err[256];
    const char *m = "<h1>Big</h1><p>body text</p><table><tr><th>head</th>"
                    "<td>cell</td></tr></table><ul><li>item</li></ul>";

    (void)state;
    o.font_pt = 4; /* raised to 10 */
    assert_int_equal(render(m, NULL, 0, &o, &d, err, sizeof err), 0);
    assert_true(d.min_font_pt >= 10.0);
    check_pdf(&d);
    check_min_size(&d);
    fax_doc_free(&d);
    o.font_pt = 0; /* 11; the table is 10 */
    o.font_family = "DejaVu Sans";
    assert_int_equal(render(m, NULL, 0, &o, &d, err, sizeof err), 0);
    assert_true(d.min_font_pt >= 10.0);
    check_min_size(&d);
    fax_doc_free(&d);
    o.font_pt = 1e9; /* capped */
    assert_int_equal(render(m, NULL, 0, &o, &d, err, sizeof err), 0);
    check_pdf(&d);
    fax_doc_free(&d);
}

static void
expect_clean(const char *m, size_t len)
{
    struct fax_page_opts o = opts();
    struct fax_doc d;
    char err[256];
    int rc;

    err[0] = 'x';
    rc = fax_render(m, len, NULL, 0, &o, &d, err, sizeof err);
    if (rc == 0) {
        assert_memory_equal(d.pdf, "%PDF-", 5);
        assert_true(d.pages >= 1);
        fax_doc_free(&d);
    } else {
        assert_true(rc < 0);
        assert_null(d.pdf);
        if (strncmp(err, "template renewal, part fax: ", 28) != 0)
            fail_msg("rc %d, err \"%s\"", rc, err);
    }
}

static void
test_malformed(void **state)
{
    static const char *cases[] = {
        "<p>unclosed <b>bold <i>italic",
        "<table><tr><td>a<td>b<tr><td>c</table>",
        "<table><td>no row</td>text<p>para in table</table>",
        "<ul><li>a<li>b</ul></li></li></ol>",
        "</p></div></table>",
        "<",
        "<<<>>>",
        "&",
        "&#0;&#xd800;&#x110000;&bogus;",
        "<img>",
        "<img src=\"\">",
        "<td>stray</td><th>cells</th><tr>",
        "<li>stray item</li>",
        "<ol start=\"-5\"><li>x</li></ol>",
        "<table></table>",
        "<table><caption>Cap</caption></table>",
        "<p>\xff\xfe bad utf8 \xc3\x28 \xed\xa0\x80</p>",
        "<p>\x01\x02\x1b[31m control \x7f</p>",
        "<![CDATA[cdata]]><!-- comment --><?pi x?><!DOCTYPE html>",
        "<table><tr><td colspan=\"99999\">wide span</td></tr></table>",
        "<img src=\"cid:\">",
        "<hr><hr><hr>",
    };
    struct fax_page_opts o = opts();
    struct fax_doc d;
    char err[256], garbage[4096];
    uint32_t x = 12345;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_clean(cases[i], strlen(cases[i]));
    /* binary garbage, NULs included */
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < sizeof garbage; i++) {
            x = x * 1103515245 + 12345;
            garbage[i] = (char)(x >> 16);
        }
        expect_clean(garbage, sizeof garbage);
    }
    /* empty input is an error that says so */
    assert_int_equal(fax_render("", 0, NULL, 0, &o, &d, err, sizeof err),
                     GW_EINVAL);
    assert_string_equal(err,
                        "template renewal, part fax: nothing to render (empty "
                        "markup)");
    assert_int_equal(fax_render(NULL, 0, NULL, 0, &o, &d, err, sizeof err),
                     GW_EINVAL);
    assert_int_equal(render("  \n <p> </p> ", NULL, 0, &o, &d, err, sizeof err),
                     GW_EINVAL);
    /* no template name, no room for the reason */
    o.template_name = NULL;
    assert_int_equal(render("", NULL, 0, &o, &d, err, sizeof err), GW_EINVAL);
    assert_contains(err, "template (unnamed), part fax:");
    assert_int_equal(render("", NULL, 0, &o, &d, NULL, 0), GW_EINVAL);
    assert_int_equal(render("<p>x</p>", NULL, 0, NULL, &d, err, sizeof err),
                     GW_EINVAL);
}

static void
test_limits(void **state)
{
    struct fax_page_opts o = opts();
    struct fax_doc d;
    struct buf b;
    char err[256], *m;
    size_t len;
    static const char *tags[] = { "div", "b", "ol><li", "table><tr><td",
                                  "blockquote" };

    (void)state;
    /* nesting far past the limit, by several kinds of element */
    for (size_t k = 0; k < sizeof tags / sizeof tags[0]; k++) {
        buf_init(&b, 0);
        for (int i = 0; i < 20000; i++)
            buf_printf(&b, "<%s>", tags[k]);
        buf_puts(&b, "deep");
        m = buf_steal(&b, &len);
        assert_int_equal(fax_render(m, len, NULL, 0, &o, &d, err, sizeof err),
                         GW_ETOOBIG);
        assert_string_equal(err, "template renewal, part fax: markup is nested "
                                 "deeper than 100 elements");
        free(m);
    }
    /* 40 levels are fine, lists included */
    buf_init(&b, 0);
    for (int i = 0; i < 20; i++)
        buf_puts(&b, "<ul><li>level");
    buf_puts(&b, "<div><b><i>deep</i></b></div>");
    m = buf_steal(&b, &len);
    assert_int_equal(fax_render(m, len, NULL, 0, &o, &d, err, sizeof err), 0);
    check_pdf(&d);
    fax_doc_free(&d);
    free(m);

    /* input over 1 MiB */
    len = FAX_MAX_INPUT + 1;
    m = malloc(len);
    memset(m, 'a', len);
    assert_int_equal(fax_render(m, len, NULL, 0, &o, &d, err, sizeof err),
                     GW_ETOOBIG);
    assert_contains(err, "the limit is 1048576");
    free(m);

    /* a word of 60,000 letters wraps (pango alone takes seconds) */
    buf_init(&b, 0);
    buf_puts(&b, "<p>");
    for (int i = 0; i < 60000; i++)
        buf_putc(&b, 'x');
    buf_puts(&b, "</p>");
    m = buf_steal(&b, &len);
    assert_int_equal(fax_render(m, len, NULL, 0, &o, &d, err, sizeof err), 0);
    assert_true(d.pages >= 5);
    fax_doc_free(&d);
    free(m);
    /* the same in a table cell: too long */
    buf_init(&b, 0);
    buf_puts(&b, "<table><tr><td>");
    for (int i = 0; i < 60000; i++)
        buf_putc(&b, 'x');
    buf_puts(&b, "</td></tr></table>");
    m = buf_steal(&b, &len);
    assert_int_equal(fax_render(m, len, NULL, 0, &o, &d, err, sizeof err),
                     GW_ETOOBIG);
    assert_string_equal(err, "template renewal, part fax: a table cell of "
                             "60000 bytes, the limit is 16384");
    free(m);
    /* a paragraph over 128 KiB */
    buf_init(&b, 0);
    for (int i = 0; i < 30000; i++)
        buf_puts(&b, "word ");
    m = buf_steal(&b, &len);
    assert_int_equal(fax_render(m, len, NULL, 0, &o, &d, err, sizeof err),
                     GW_ETOOBIG);
    assert_string_equal(err, "template renewal, part fax: a paragraph of "
                             "149999 bytes, the limit is 131072");
    free(m);

    /* a notice taller than half the page */
    buf_init(&b, 0);
    for (int i = 0; i < 400; i++)
        buf_puts(&b, "opt out ");
    m = buf_steal(&b, &len);
    o.notice = m;
    assert_int_equal(render("<p>x</p>", NULL, 0, &o, &d, err, sizeof err),
                     GW_ETOOBIG);
    assert_contains(err, "opt-out notice is");
    free(m);

    /* a notice with newlines and bad bytes is fine */
    o.notice = "Opt out:\ncall 0800\x01 555 \xff 0100";
    assert_int_equal(render("<p>x</p>", NULL, 0, &o, &d, err, sizeof err), 0);
    fax_doc_free(&d);
    o.notice = NULL;
    assert_int_equal(render("<p>x</p>", NULL, 0, &o, &d, err, sizeof err), 0);
    check_pdf(&d);
    fax_doc_free(&d);
}

struct worker {
    int ok, pages;
};

static void *
worker(void *arg)
{
    struct worker *w = arg;
    struct fax_page_opts o = opts();
    char err[256], *m = paragraphs(25);
    size_t plen;
    unsigned char *png = make_png(60, 20, &plen);
    struct content_image im = { "logo.png", "image/png", NULL, png, plen };
    struct buf b;
    size_t len;

    buf_init(&b, 0);
    buf_puts(&b, "<img src=\"logo.png\">");
    buf_puts(&b, m);
    buf_puts(&b, "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td>"
                 "<td>2</td></tr></table>");
    free(m);
    m = buf_steal(&b, &len);
    w->ok = 1;
    for (int i = 0; i < 15; i++) {
        struct fax_doc d;
        if (fax_render(m, len, &im, 1, &o, &d, err, sizeof err) != 0) {
            w->ok = 0;
            break;
        }
        if (w->pages && w->pages != d.pages)
            w->ok = 0;
        w->pages = d.pages;
        fax_doc_free(&d);
    }
    free(m);
    free(png);
    fax_render_thread_done();
    return NULL;
}

static void
test_threads(void **state)
{
    pthread_t th[3];
    struct worker w[3];

    (void)state;
    memset(w, 0, sizeof w);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, &w[i]), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_true(w[i].ok);
        assert_int_equal(w[i].pages, w[0].pages);
    }
    assert_true(w[0].pages >= 2);
}

/* LeakSanitizer (the -san build): fontconfig leaks 288 bytes once while
 * parsing its configuration, in the thread pango starts to run FcInit.
 * Nothing of ours; the fast unwinder stops inside fontconfig, so the
 * suppression names the library. */
const char *__lsan_default_suppressions(void);

const char *
__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n";
}

static int
teardown(void **state)
{
    (void)state;
    fax_render_thread_done();
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_page),
        cmocka_unit_test(test_multi_page),
        cmocka_unit_test(test_long_paragraph),
        cmocka_unit_test(test_paper),
        cmocka_unit_test(test_images),
        cmocka_unit_test(test_image_errors),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_table_too_wide),
        cmocka_unit_test(test_max_pages),
        cmocka_unit_test(test_text_rules),
        cmocka_unit_test(test_font_sizes),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, NULL, teardown);
}

/*
 * test_html.c -- the libxml2 side of templates (templates/html.c):
 * HTML->text on real-world-shaped newsletters compared with expected
 * files (tests/unit/data/newsletters, or $TPL_TEST_DATA/newsletters),
 * wrapping, link rewriting through a callback, the open pixel, invalid
 * UTF-8, and DOCTYPE tricks (entity bombs, external entities and DTDs)
 * that must neither expand, nor read a file, nor touch the network.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "templates/template.h"

static const char *const newsletters[] = {
    "tables-layout", "nested-lists", "entities-de", "multilingual", "junk",
    "order-receipt",
};
#define NNEWS (sizeof(newsletters) / sizeof(newsletters[0]))

static const char *
data_dir(void)
{
    const char *d = getenv("TPL_TEST_DATA");

    return d ? d : "tests/unit/data";
}

static char *
read_fixture(const char *name, const char *ext, size_t *len)
{
    char path[512];
    struct buf b;
    FILE *f;
    char tmp[4096];
    size_t n;

    snprintf(path, sizeof(path), "%s/newsletters/%s.%s", data_dir(), name,
             ext);
    if ((f = fopen(path, "rb")) == NULL)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    buf_init(&b, 0);
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        assert_int_equal(buf_append(&b, tmp, n), 0);
    fclose(f);
    *len = b.len;
    buf_cstr(&b);
    return buf_steal(&b, &n);
}

static char *
to_text(const char *html, size_t len)
{
    struct tpl_error err;
    struct buf out;
    size_t n;

    buf_init(&out, 0);
    if (tpl_html_to_text(html, len, &out, &err) < 0)
        fail_msg("html_to_text: %s", err.msg);
    buf_cstr(&out);
    return buf_steal(&out, &n);
}

/* Code points of s[0..n). */
static size_t
chars(const char *s, size_t n)
{
    size_t i, c = 0;

    for (i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

/* The rules every derived text keeps. */
static void
check_shape(const char *name, const char *t)
{
    const char *line = t;
    size_t len = strlen(t);
    struct tpl_error err;
    struct buf again;

    if (len == 0)
        return;
    assert_true(t[len - 1] == '\n');
    assert_false(len >= 2 && t[len - 2] == '\n');
    assert_false(t[0] == '\n');
    while (*line) {
        const char *nl = strchr(line, '\n');
        size_t n = (size_t)(nl - line);

        if (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
            fail_msg("%s: trailing space in \"%.*s\"", name, (int)n, line);
        if (chars(line, n) > TPL_TEXT_WIDTH) {
            /* only a URL alone on its line (after the margin) may be */
            const char *w = line;

            while (*w == ' ')
                w++;
            if (strncmp(w, "- ", 2) == 0)
                w += 2;
            if (memchr(w, ' ', (size_t)(nl - w)) != NULL ||
                strstr(w, "://") == NULL || strstr(w, "://") > nl)
                fail_msg("%s: line of %zu characters that is not one URL: "
                         "\"%.*s\"", name, chars(line, n), (int)n, line);
        }
        line = nl + 1;
    }
    /* valid UTF-8: nothing split; checked by parsing it as html again */
    buf_init(&again, 0);
    assert_int_equal(tpl_html_to_text(t, len, &again, &err), 0);
    buf_free(&again);
}

static void
test_newsletters(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NNEWS; i++) {
        size_t hl, tl, line = 1, k;
        char *html = read_fixture(newsletters[i], "html", &hl);
        char *want = read_fixture(newsletters[i], "txt", &tl);
        char *got = to_text(html, hl);

        if (strcmp(got, want) != 0) {
            for (k = 0; got[k] && got[k] == want[k]; k++)
                line += got[k] == '\n';
            fail_msg("%s.txt differs at line %zu:\n got: %.80s\nwant: %.80s",
                     newsletters[i], line, got + k, want + k);
        }
        check_shape(newsletters[i], got);
        free(html);
        free(want);
        free(got);
    }
}

static void
expect_text(const char *html, const char *want)
{
    char *got = to_text(html, strlen(html));

    if (strcmp(got, want) != 0)
        fail_msg("html: %s\n got: [%s]\nwant: [%s]", html, got, want);
    check_shape("inline", got);
    free(got);
}

static void
test_rules(void **state)
{
    (void)state;
    expect_text("", "");
    expect_text("   \n ", "");
    expect_text("<p>a</p><p>b</p>", "a\n\nb\n");
    expect_text("<p>a<br>b<br><br><br><br>c</p>", "a\nb\n\nc\n");
    expect_text("<h1>T&amp;C</h1>x", "T&C\n===\n\nx\n");
    expect_text("<h2>Sub</h2><h3>Plain</h3>", "Sub\n---\n\nPlain\n");
    expect_text("<ul><li>a<ol><li>b</li><li>c</li></ol></li></ul>",
                "- a\n  1. b\n  2. c\n");
    expect_text("<p><a href=\"https://x.org/\">https://x.org</a></p>",
                "https://x.org/\n");
    expect_text("<p><a href=\"https://x.org/a\">see</a>.</p>",
                "see <https://x.org/a>.\n");
    expect_text("<a href=\"mailto:a@b.org?subject=Hi\">Write</a>",
                "Write <a@b.org>\n");
    expect_text("<a href=\"mailto:a@b.org\">a@b.org</a>", "a@b.org\n");
    expect_text("<a href=\"https://x.org/p\"><img src=x alt=\"\"></a>",
                "https://x.org/p\n");
    expect_text("<p>a<img alt=\"[logo]\">b <img src=\"s.gif\"></p>",
                "a[logo]b\n");
    expect_text("<table><tr><td>a</td><td></td><td>b</td></tr>"
                "<tr><td>c</td><td>d</td></tr></table>", "a | b\nc | d\n");
    expect_text("<p>x&nbsp;&nbsp;y &euro;&#8217;&#x263A; &lt;tag&gt;</p>",
                "x  y \xe2\x82\xac\xe2\x80\x99\xe2\x98\xba <tag>\n");
    expect_text("<div>a<div>b</div>c</div>", "a\n\nb\n\nc\n");
    expect_text("<p>a</p><!-- c --><script>x</script><style>y</style>"
                "<p style=\"DISPLAY: None\">h</p><p>b</p>", "a\n\nb\n");
    expect_text("<pre> a  b\n\n   c</pre>", " a  b\n\n   c\n");
}

static void
test_wrapping(void **state)
{
    static const char *const words[] = {
        "a", "gr\xc3\xb6\xc3\x9f" "er", "internationalisation", "\xe2\x82\xac",
        "x", "https://example.org/a/very/long/path/that/is/longer/than/"
        "seventy/eight/characters/in/total/really", "bc", "d\xc3\xa9j\xc3\xa0",
        "of", "\xe6\x9d\xb1\xe4\xba\xac",
    };
    struct buf html;
    char *t;
    const char *p;
    size_t i;

    (void)state;
    buf_init(&html, 0);
    buf_puts(&html, "<ul><li><p>");
    for (i = 0; i < 400; i++)
        buf_printf(&html, "%s%s", words[(i * 7) % 10], i % 13 ? " " : "\n");
    buf_puts(&html, "</p></li></ul><p>");
    for (i = 0; i < 300; i++)
        buf_puts(&html, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x80\x82");
    buf_puts(&html, "</p>");
    t = to_text(html.data, html.len);
    check_shape("wrapping", t);
    /* the URL is never broken */
    p = strstr(t, "https://example.org/");
    assert_non_null(p);
    assert_int_equal(strncmp(p, words[5], strlen(words[5])), 0);
    /* CJK text wraps between characters */
    assert_non_null(strstr(t, "\xe3\x80\x82\n\xe6\x97\xa5"));
    /* list continuation lines are indented */
    assert_non_null(strstr(t, "\n  "));
    free(t);
    buf_free(&html);
}

/* ---- rewriting -------------------------------------------------------- */

struct calls {
    int n;
    char seen[8][128];
};

static int
track(const char *url, struct buf *out, void *arg)
{
    struct calls *c = arg;

    if (c->n < 8)
        snprintf(c->seen[c->n], sizeof(c->seen[0]), "%s", url);
    c->n++;
    return buf_printf(out, "https://t.example/c/%d?x=1&y=2", c->n);
}

static const char links_html[] =
    "<html><head><title>t</title></head><body>\n"
    "<p>Hello J\xc3\xbcrgen, <a href=\"https://shop.example/a?x=1&amp;y=2\">"
    "shop</a>\n"
    "<a href=\"HTTP://old.example/\">old</a>\n"
    "<a href=\" https://spaces.example/ \">spaced</a>\n"
    "<a href=\"mailto:help@shop.example\">mail us</a>\n"
    "<a href=\"tel:+491234\">call</a>\n"
    "<a href=\"/relative\">rel</a> <a href=\"#top\">top</a>\n"
    "<a name=\"x\">anchor</a>\n"
    "<map><area href=\"http://map.example/\" alt=\"m\"></map>\n"
    "</p></body></html>\n";

static void
test_rewrite_links(void **state)
{
    struct tpl_render_opts o = { .link_cb = track };
    struct calls c = { 0 };
    struct tpl_error err;
    struct buf out, text;
    const char *h;

    (void)state;
    o.link_arg = &c;
    buf_init(&out, 0);
    buf_init(&text, 0);
    assert_int_equal(tpl_html_rewrite(links_html, strlen(links_html), &o,
                                      &out, &text, &err), 0);
    h = buf_cstr(&out);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.seen[0], "https://shop.example/a?x=1&y=2");
    assert_string_equal(c.seen[1], "HTTP://old.example/");
    assert_string_equal(c.seen[2], "https://spaces.example/ ");
    assert_string_equal(c.seen[3], "http://map.example/");
    assert_non_null(strstr(h, "<a href=\"https://t.example/c/1?x=1&amp;y=2\">"
                              "shop</a>"));
    assert_non_null(strstr(h, "href=\"https://t.example/c/2?x=1&amp;y=2\""));
    assert_non_null(strstr(h, "href=\"https://t.example/c/3?x=1&amp;y=2\""));
    assert_non_null(strstr(h, "href=\"https://t.example/c/4?x=1&amp;y=2\""));
    assert_null(strstr(h, "https://shop.example"));
    assert_null(strstr(h, "old.example"));
    assert_non_null(strstr(h, "href=\"mailto:help@shop.example\""));
    assert_non_null(strstr(h, "href=\"tel:+491234\""));
    assert_non_null(strstr(h, "href=\"/relative\""));
    assert_non_null(strstr(h, "href=\"#top\""));
    assert_non_null(strstr(h, "J\xc3\xbcrgen"));        /* kept as UTF-8 */
    /* the text part shows where links really go */
    assert_string_equal(buf_cstr(&text),
                        "Hello J\xc3\xbcrgen, shop "
                        "<https://shop.example/a?x=1&y=2> old "
                        "<HTTP://old.example/>\nspaced "
                        "<https://spaces.example/> mail us "
                        "<help@shop.example> call <+491234>\nrel </relative>"
                        " top anchor\n");
    buf_free(&out);
    buf_free(&text);
}

static void
test_pixel(void **state)
{
    struct tpl_render_opts o = { .pixel_url = "https://t.example/o/1?a=b&c=d" };
    struct tpl_error err;
    struct buf out;
    const char *h;

    (void)state;
    buf_init(&out, 0);
    assert_int_equal(tpl_html_rewrite(links_html, strlen(links_html), &o,
                                      &out, NULL, &err), 0);
    h = buf_cstr(&out);
    assert_non_null(strstr(h, "<img src=\"https://t.example/o/1?a=b&amp;c=d\""
                              " width=\"1\" height=\"1\" alt=\"\"></body>"));
    assert_non_null(strstr(h, "https://shop.example/a?x=1&amp;y=2"));
    assert_null(strstr(h, "<!DOCTYPE"));
    /* a fragment gets a body from the parser, and the pixel inside it */
    buf_reset(&out);
    assert_int_equal(tpl_html_rewrite("<p>hi</p> tail", 14, &o, &out, NULL,
                                      &err), 0);
    assert_non_null(strstr(buf_cstr(&out), "<body><p>hi</p> tail<img src="));
    assert_non_null(strstr(buf_cstr(&out), "alt=\"\"></body></html>"));
    /* nothing to parse: kept as is */
    buf_reset(&out);
    assert_int_equal(tpl_html_rewrite("", 0, &o, &out, NULL, &err), 0);
    assert_int_equal(out.len, 0);
    buf_free(&out);
}

static int
fail_cb(const char *url, struct buf *out, void *arg)
{
    (void)url;
    (void)out;
    (void)arg;
    return -ENOMEM;
}

static void
test_errors(void **state)
{
    struct tpl_render_opts o = { .link_cb = fail_cb };
    struct tpl_error err;
    struct buf out;

    (void)state;
    buf_init(&out, 0);
    buf_puts(&out, "keep");
    assert_int_equal(tpl_html_to_text("<p>ok</p>\n<p>b\xff</p>", 19, &out,
                                      &err), GW_EINVAL);
    assert_int_equal(err.line, 2);
    assert_int_equal(err.col, 5);
    assert_non_null(strstr(err.msg, "invalid UTF-8"));
    assert_string_equal(buf_cstr(&out), "keep");
    /* truncated sequence, surrogate, overlong */
    assert_int_equal(tpl_html_to_text("a\xc3", 2, &out, &err), GW_EINVAL);
    assert_int_equal(tpl_html_to_text("\xed\xb0\x80", 3, &out, &err),
                     GW_EINVAL);
    assert_int_equal(tpl_html_to_text("\xe0\x80\xaf", 3, &out, &err),
                     GW_EINVAL);
    assert_int_equal(tpl_html_rewrite("\xf5\x80\x80\x80", 4, &o, &out, NULL,
                                      &err), GW_EINVAL);
    assert_int_equal(tpl_html_rewrite("<a href=\"http://x\">x</a>", 24, &o,
                                      &out, NULL, &err), -ENOMEM);
    assert_string_equal(buf_cstr(&out), "keep");
    /* an output cap */
    buf_free(&out);
    buf_init(&out, 8);
    assert_int_equal(tpl_html_to_text("<p>0123456789</p>", 17, &out, &err),
                     GW_ETOOBIG);
    assert_int_equal(out.len, 0);
    buf_free(&out);
}

/* ---- hostile DOCTYPEs ------------------------------------------------- */

/* libxml2 2.9.14 cuts DOCTYPE literals by a character count used as a
 * byte count; the serialised html must still be valid UTF-8. */
static void
test_doctype_utf8(void **state)
{
    static const char html[] =
        "<!DOCTYPE html PUBLIC \"x\" \"http:/\xe6\x97\xa5\xe6\x9c\xac"
        "\xe8\xaa\x9e\xe6\x97\xa5\xe6\x9c\xac\">\n<p>hi</p>";
    struct tpl_render_opts o = { .pixel_url = "https://t.example/o" };
    struct tpl_error err;
    struct buf out, text;

    (void)state;
    buf_init(&out, 0);
    buf_init(&text, 0);
    assert_int_equal(tpl_html_rewrite(html, sizeof(html) - 1, &o, &out,
                                      NULL, &err), 0);
    assert_non_null(strstr(buf_cstr(&out), "<p>hi</p>"));
    assert_int_equal(tpl_html_to_text(out.data, out.len, &text, &err), 0);
    assert_string_equal(buf_cstr(&text), "hi\n");
    buf_free(&out);
    buf_free(&text);
}

static void
test_entity_bomb(void **state)
{
    struct buf html;
    char *t;
    int i;

    (void)state;
    buf_init(&html, 0);
    buf_puts(&html, "<!DOCTYPE html [\n<!ENTITY lol \"lol\">\n");
    for (i = 1; i < 10; i++)
        buf_printf(&html, "<!ENTITY lol%d \"&lol%d;&lol%d;&lol%d;&lol%d;"
                   "&lol%d;&lol%d;&lol%d;&lol%d;&lol%d;&lol%d;\">\n", i,
                   i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
                   i - 1, i - 1);
    buf_puts(&html, "]>\n<html><body><p>&lol9;</p></body></html>");
    t = to_text(html.data, html.len);
    assert_true(strlen(t) < 2 * html.len);
    assert_null(strstr(t, "lollollol"));
    free(t);
    buf_free(&html);
}

static void
test_external_entities(void **state)
{
    char file[] = "/tmp/tpl-xxe-XXXXXX";
    struct tpl_render_opts o = { .pixel_url = "https://t.example/o" };
    struct sockaddr_in sa = { 0 };
    socklen_t sl = sizeof(sa);
    struct tpl_error err;
    struct buf html, out, text;
    int fd, lsock, c;

    (void)state;
    /* a secret file and a listening port nobody may touch */
    fd = mkstemp(file);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "TOP-SECRET-42", 13), 13);
    close(fd);
    lsock = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lsock >= 0);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lsock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lsock, 4), 0);
    assert_int_equal(getsockname(lsock, (struct sockaddr *)&sa, &sl), 0);
    fcntl(lsock, F_SETFL, O_NONBLOCK);

    buf_init(&html, 0);
    buf_printf(&html,
               "<!DOCTYPE html SYSTEM \"http://127.0.0.1:%d/evil.dtd\" [\n"
               "<!ENTITY xxe SYSTEM \"file://%s\">\n"
               "<!ENTITY net SYSTEM \"http://127.0.0.1:%d/x\">\n"
               "<!ENTITY %% pe SYSTEM \"file://%s\"> %%pe;\n]>\n"
               "<html><body><p>a &xxe; b &net; c</p>"
               "<a href=\"http://x.example/\">l</a></body></html>",
               ntohs(sa.sin_port), file, ntohs(sa.sin_port), file);
    buf_init(&out, 0);
    buf_init(&text, 0);
    assert_int_equal(tpl_html_rewrite(html.data, html.len, &o, &out, &text,
                                      &err), 0);
    assert_null(strstr(buf_cstr(&text), "TOP-SECRET"));
    assert_null(strstr(buf_cstr(&out), "TOP-SECRET"));
    assert_non_null(strstr(buf_cstr(&text), "&xxe;"));   /* left as text */
    c = accept(lsock, NULL, NULL);
    assert_int_equal(c, -1);                             /* no network */
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    close(lsock);
    unlink(file);
    buf_free(&html);
    buf_free(&out);
    buf_free(&text);
}

static void
test_deep_nesting(void **state)
{
    struct buf html;
    char *t;
    int i;

    (void)state;
    /* deeper than the walker's frames (its text survives), within
     * libxml2's own limit of 256 levels */
    buf_init(&html, 0);
    for (i = 0; i < 150; i++)                  /* 200 levels */
        buf_puts(&html, i % 3 ? "<div>" : "<ul><li>");
    buf_puts(&html, "deep text <a href=\"https://x.example/\">link</a>");
    for (i = 149; i >= 0; i--)
        buf_puts(&html, i % 3 ? "</div>" : "</li></ul>");
    buf_puts(&html, "<p>after</p>");
    t = to_text(html.data, html.len);
    assert_non_null(strstr(t, "deep text link"));
    assert_non_null(strstr(t, "\n\nafter\n"));
    check_shape("deep", t);
    free(t);
    /* far deeper: libxml2 stops parsing, nothing breaks */
    buf_reset(&html);
    for (i = 0; i < 5000; i++)
        buf_puts(&html, "<div><span>");
    buf_puts(&html, "x");
    t = to_text(html.data, html.len);
    check_shape("deeper", t);
    free(t);
    buf_free(&html);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newsletters),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_wrapping),
        cmocka_unit_test(test_rewrite_links),
        cmocka_unit_test(test_pixel),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_doctype_utf8),
        cmocka_unit_test(test_entity_bomb),
        cmocka_unit_test(test_external_entities),
        cmocka_unit_test(test_deep_nesting),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

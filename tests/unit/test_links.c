/*
 * test_links.c -- click and open tracking (templates/links.c): hrefs
 * rewritten with every other byte kept (whole outputs compared), quoting,
 * character references, what is not tracked, comments and raw text, the
 * open pixel, malformed input, the output cap; the newsletter fixtures
 * checked against libxml2's reading of the same links; the machine
 * classifier on real User-Agent strings, addresses and timings. Prints a
 * micro-benchmark (not asserted).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <libxml/HTMLparser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "err.h"
#include "templates/links.h"

/* ---- helpers ---------------------------------------------------------- */

struct calls {
    int n;
    int fail_at;                /* this index returns -1 */
    int empty_at;               /* this index writes nothing */
    const char *fixed;          /* write this instead */
    char seen[32][512];
};

/* The replacement for link i, as it appears escaped in the output. */
#define T(i) "\"https://t.example/" #i "?s=1&amp;k=a\""

static int
track(void *arg, const char *url, size_t len, int index, struct buf *out)
{
    struct calls *c = arg;

    assert_int_equal(strlen(url), len);
    assert_int_equal(out->len, 0);
    assert_int_equal(index, c->n);
    if (c->n < 32)
        snprintf(c->seen[c->n], sizeof(c->seen[0]), "%s", url);
    c->n++;
    if (index == c->fail_at)
        return -1;
    if (index == c->empty_at)
        return 0;
    if (c->fixed)
        return buf_puts(out, c->fixed);
    return buf_printf(out, "https://t.example/%d?s=1&k=a", index);
}

static struct calls last;

/* Rewrite html after "PRE" in out; it must give exactly want. */
static void
check_full(const char *html, const char *skip, const char *pixel,
           const char *want, int nlinks)
{
    struct buf out;

    memset(&last, 0, sizeof(last));
    last.fail_at = last.empty_at = -1;
    buf_init(&out, 0);
    buf_puts(&out, "PRE");
    assert_int_equal(links_rewrite(html, strlen(html), skip, track, &last,
                                   pixel, &out), 0);
    assert_memory_equal(out.data, "PRE", 3);
    assert_string_equal(out.data + 3, want);
    assert_int_equal(out.len, 3 + strlen(want));
    if (nlinks >= 0)
        assert_int_equal(last.n, nlinks);
    buf_free(&out);
}

#define check(html, want, n) check_full(html, NULL, NULL, want, n)
#define unchanged(html) check_full(html, NULL, NULL, html, 0)

/* ---- rewriting -------------------------------------------------------- */

static void
test_quoting(void **state)
{
    (void)state;
    check("<p><a href=\"https://ex.com/a\">x</a></p>",
          "<p><a href=" T(0) ">x</a></p>", 1);
    assert_string_equal(last.seen[0], "https://ex.com/a");
    check("<a href='https://ex.com/a?q=\"x\"'>x</a>",
          "<a href=" T(0) ">x</a>", 1);
    assert_string_equal(last.seen[0], "https://ex.com/a?q=\"x\"");
    check("<a href=https://ex.com/a>x</a>", "<a href=" T(0) ">x</a>", 1);
    check("<a href=https://ex.com/a/>x</a>", "<a href=" T(0) ">x</a>", 1);
    assert_string_equal(last.seen[0], "https://ex.com/a/");
    check("<a href=https://ex.com/a class=b>", "<a href=" T(0) " class=b>", 1);
    check("<a  href = \"https://ex.com/\"  >", "<a  href = " T(0) "  >", 1);
    check("<a\nhref\n=\n'https://ex.com/'\n>", "<a\nhref\n=\n" T(0) "\n>", 1);
    check("<a/href=\"https://ex.com/\">", "<a/href=" T(0) ">", 1);
    check("<a href=\"https://ex.com/\"title=x>", "<a href=" T(0) "title=x>", 1);
    check("<a href=\"https://ex.com/\"/>", "<a href=" T(0) "/>", 1);
    /* a quoted value may hold '>' and '<' */
    check("<a title=\"a>b<c\" href=\"https://ex.com/?a>b\">",
          "<a title=\"a>b<c\" href=" T(0) ">", 1);
    assert_string_equal(last.seen[0], "https://ex.com/?a>b");
    /* several links, indexes in document order, UTF-8 kept */
    check("<p>J\xc3\xbcrgen <a href=\"http://a.example/\">a</a>"
          "<a href='https://b.example/\xc3\xa4'>b</a>"
          "<map><area shape=rect href=http://c.example/ alt=c></map>",
          "<p>J\xc3\xbcrgen <a href=" T(0) ">a</a><a href=" T(1) ">b</a>"
          "<map><area shape=rect href=" T(2) " alt=c></map>", 3);
    assert_string_equal(last.seen[1], "https://b.example/\xc3\xa4");
    assert_string_equal(last.seen[2], "http://c.example/");
}

static void
test_escaping(void **state)
{
    struct calls c = { .fail_at = -1, .empty_at = -1,
                       .fixed = "https://t.example/?a=1&b=\"2\"<3>" };
    struct buf out;
    const char *in = "<a href=https://ex.com/>x</a>";

    (void)state;
    buf_init(&out, 0);
    assert_int_equal(links_rewrite(in, strlen(in), NULL, track, &c, NULL,
                                   &out), 0);
    assert_string_equal(buf_cstr(&out),
                        "<a href=\"https://t.example/?a=1&amp;b=&quot;2&quot;"
                        "<3>\">x</a>");
    buf_free(&out);
}

static void
test_entities(void **state)
{
    (void)state;
    check("<a href=\"https://ex.com/?a=1&amp;b=2&#38;c=3&#x26;d=4&#X26;e\">",
          "<a href=" T(0) ">", 1);
    assert_string_equal(last.seen[0], "https://ex.com/?a=1&b=2&c=3&d=4&e");
    /* legacy names without ';' only when not followed by '=' or a letter */
    check("<a href=\"https://ex.com/?x=1&copy=2&not&amp&ampx&lt;&eacute\">",
          "<a href=" T(0) ">", 1);
    assert_string_equal(last.seen[0], "https://ex.com/?x=1&copy=2\xc2\xac&"
                                      "&ampx<\xc3\xa9");
    /* named ones that need ';', and a bare '&' */
    check("<a href=\"https&colon;&sol;&sol;ex.com&sol;?q=a&plus;b&quest;&\">",
          "<a href=" T(0) ">", 1);
    assert_string_equal(last.seen[0], "https://ex.com/?q=a+b?&");
    /* numeric edge cases: C1 as windows-1252, NUL and out of range to
     * U+FFFD, no digits, no ';' */
    check("<a href=\"https://ex.com/&#128;&#0;&#x110000;&#xD800;&#;&#x;&#65"
          "&#99999999999999999999;\">",
          "<a href=" T(0) ">", 1);
    assert_string_equal(last.seen[0], "https://ex.com/\xe2\x82\xac"
                                      "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                      "&#;&#x;A\xef\xbf\xbd");
    /* an encoded scheme counts; unknown names leave the link alone */
    check("<a href=\"&#104;ttps://ex.com/\">", "<a href=" T(0) ">", 1);
    unchanged("<a href=\"https://ex.com/&hellip2;\">");
    unchanged("<a href=\"https://ex.com/&notin;\">");
    /* every legacy name */
    {
        static const char *const names[] = { "nbsp", "iexcl", "szlig",
                                             "Yacute", "yuml", "AMP", "COPY",
                                             "REG", "QUOT", "LT", "GT" };
        static const char *const utf8[] = { "\xc2\xa0", "\xc2\xa1", "\xc3\x9f",
                                            "\xc3\x9d", "\xc3\xbf", "&",
                                            "\xc2\xa9", "\xc2\xae", "\"", "<",
                                            ">" };
        size_t i;
        char html[128], want[128];

        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            snprintf(html, sizeof(html), "<a href='http://e/&%s;&%s'>",
                     names[i], names[i]);
            snprintf(want, sizeof(want), "http://e/%s%s", utf8[i], utf8[i]);
            check(html, "<a href=" T(0) ">", 1);
            assert_string_equal(last.seen[0], want);
        }
    }
}

static void
test_not_tracked(void **state)
{
    (void)state;
    unchanged("<a href=\"mailto:a@ex.com?subject=https://x\">m</a>"
              "<a href=\"tel:+4912345\">t</a><a href=\"#top\">t</a>"
              "<a href=\"/relative/https://x\">r</a><a href=\"x.html\">r</a>"
              "<a href=\"//ex.com/\">n</a><a href=\"javascript:go('http://x')\">"
              "j</a><a href=\"ftp://ex.com/\">f</a><a href=\"http:\">h</a>"
              "<a href=\"\">e</a><a href>e</a><a href=>e</a><a>none</a>"
              "<a name=x>n</a><a data-href=\"https://ex.com/\">d</a>"
              "<abbr href=\"https://ex.com/\">b</abbr>"
              "<link href=\"https://ex.com/s.css\"><img src=\"https://ex.com/\">"
              "<base href=\"https://ex.com/\"><form action=\"https://ex.com/\">");
    /* template leftovers */
    unchanged("<a href=\"https://ex.com/{{id}}\">1</a>"
              "<a href=\"https://ex.com/?u=*|EMAIL|*\">2</a>"
              "<a href=\"https://ex.com/%%=v(@x)=%%\">3</a>"
              "<a href=\"https://ex.com/{% url %}\">4</a>"
              "<a href=\"https://ex.com/<%= id %>\">5</a>"
              "<a href=\"https://ex.com/${id}\">6</a>"
              "<a href=\"https://ex.com/%7B%7Bid%7d%7D\">7</a>"
              "<a href=\"https://ex.com/[% id %]\">8</a>");
    /* the first href counts; a duplicate does not */
    unchanged("<a href href=\"https://ex.com/\">x</a>");
    check("<a href=\"https://a.example/\" HREF=\"https://b.example/\">",
          "<a href=" T(0) " HREF=\"https://b.example/\">", 1);
    /* spaces and controls around the URL, tabs and newlines inside */
    check("<a href=\"  \n https://ex.com/a\tb\nc\r\n  \">",
          "<a href=" T(0) ">", 1);
    assert_string_equal(last.seen[0], "https://ex.com/abc");
    check("<a href=\"HTTPS://EX.COM/\">", "<a href=" T(0) ">", 1);
}

static void
test_skip_url(void **state)
{
    const char *skip = "https://gw.example/u/abc?m=1&t=2";

    (void)state;
    check_full("<a href=\"https://ex.com/\">x</a> "
               "<a href=\"https://gw.example/u/abc?m=1&amp;t=2\">unsub</a> "
               "<a href=\"https://gw.example/u/abc?m=1&amp;t=22\">other</a>",
               skip, NULL,
               "<a href=" T(0) ">x</a> "
               "<a href=\"https://gw.example/u/abc?m=1&amp;t=2\">unsub</a> "
               "<a href=" T(1) ">other</a>", 2);
    check_full("<a href=\"https://ex.com/\">x</a>", "", NULL,
               "<a href=" T(0) ">x</a>", 1);
}

static void
test_skipped_markup(void **state)
{
    (void)state;
    unchanged("<!-- <a href=\"https://a.example/\"> -->"
              "<!--[if mso]><a href=\"https://b.example/\">b</a>"
              "<![endif]-->"
              "<script>document.write('<a href=\"https://c.example/\">')"
              "</script>"
              "<SCRIPT type=x>\"</scriptx> <a href=https://d.example/>"
              "</SCRIPT >"
              "<style>a[href=\"https://e.example/\"]{}</style>"
              "<title><a href=https://f.example/></title>"
              "<textarea><a href=https://g.example/></textarea>"
              "<iframe><a href=https://h.example/></iframe>"
              "<xmp><a href=https://i.example/></xmp>"
              "<![CDATA[ x > <a href=\"https://j.example/\"> ]]>"
              "<!DOCTYPE html PUBLIC \"<a href=https://k.example/>\">"
              "<? <a href=https://l.example/ ?>"
              "</ <a href=https://m.example/>"
              "<!--> <!---> <!-- a --!> <!-- --->");
    /* after all of them, links count again */
    check("<!-- x --><script>var a = '<a href=\"http://s/\">';</script>"
          "<!--[if mso]><a href=\"http://m/\"><![endif]-->"
          "<a href=\"http://x/\">x</a><!-- y -- -> still comment -->"
          "<a href=\"http://y/\">y</a>",
          "<!-- x --><script>var a = '<a href=\"http://s/\">';</script>"
          "<!--[if mso]><a href=\"http://m/\"><![endif]-->"
          "<a href=" T(0) ">x</a><!-- y -- -> still comment -->"
          "<a href=" T(1) ">y</a>", 2);
    assert_string_equal(last.seen[0], "http://x/");
    assert_string_equal(last.seen[1], "http://y/");
    /* <!--> ends at once; <![CDATA[ without ]]> ends at '>' */
    check("<!--><a href=http://x/><![CDATA[ x ><a href=http://y/>",
          "<!--><a href=" T(0) "><![CDATA[ x ><a href=" T(1) ">", 2);
    /* script ends at </script followed by space, '/' or '>' only */
    unchanged("<script></scripts><a href=http://x/></script>");
    check("<script></script/><a href=http://x/>",
          "<script></script/><a href=" T(0) ">", 1);
    /* script data: after "<!--<script>" a </script> does not end it */
    unchanged("<script><!--<script></script><a href=http://x/></script>");
    unchanged("<script><!-- <SCRIPT/></script --><a href=http://x/>");
    check("<script><!--<script></script>--><a href=http://s/></script>"
          "<a href=http://x/>",
          "<script><!--<script></script>--><a href=http://s/></script>"
          "<a href=" T(0) ">", 1);
    check("<script><!--</script><a href=http://x/>",
          "<script><!--</script><a href=" T(0) ">", 1);
    check("<script><!--><script></script><a href=http://x/>",
          "<script><!--><script></script><a href=" T(0) ">", 1);
    check("<script><!--<scripts></script><a href=http://x/>",
          "<script><!--<scripts></script><a href=" T(0) ">", 1);
    /* noscript and template are markup in a mail client */
    check("<noscript><a href=http://x/>x</a></noscript>",
          "<noscript><a href=" T(0) ">x</a></noscript>", 1);
    /* everything after <plaintext> is text */
    unchanged("<plaintext><a href=http://x/></plaintext><a href=http://y/>");
}

static void
test_case(void **state)
{
    (void)state;
    check_full("<HTML><BODY><A HREF=\"https://ex.com/\">X</A>"
               "<AREA Href='http://ex.com/'><aReA hReF=http://e/></BODY>"
               "</HTML>",
               NULL, "https://t.example/o",
               "<HTML><BODY><A HREF=" T(0) ">X</A><AREA Href=" T(1) ">"
               "<aReA hReF=" T(2) "><img src=\"https://t.example/o\" "
               "width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">"
               "</BODY></HTML>", 3);
}

#define PIXEL(u) "<img src=\"" u "\" width=\"1\" height=\"1\" alt=\"\" " \
                 "style=\"display:none\">"

static void
test_pixel(void **state)
{
    (void)state;
    check_full("<html><body><p>hi</p>\n</body>\n</html>\n", NULL,
               "https://t.example/o?a=1&b=\"2\"",
               "<html><body><p>hi</p>\n"
               PIXEL("https://t.example/o?a=1&amp;b=&quot;2&quot;")
               "</body>\n</html>\n", 0);
    /* no </body>: appended; </body> in a comment or script does not count;
     * only the first real one gets it */
    check_full("<p>hi</p><!-- </body> --><script>'</body>'</script>", NULL,
               "http://o/",
               "<p>hi</p><!-- </body> --><script>'</body>'</script>"
               PIXEL("http://o/"), 0);
    check_full("<body>a</body >b</body>", NULL, "http://o/",
               "<body>a" PIXEL("http://o/") "</body >b</body>", 0);
    check_full("", NULL, "http://o/", PIXEL("http://o/"), 0);
    /* no pixel: NULL or "" */
    check_full("<body></body>", NULL, "", "<body></body>", 0);
    /* links and pixel together */
    check_full("<body><a href=http://x/>x</a></body>", NULL, "http://o/",
               "<body><a href=" T(0) ">x</a>" PIXEL("http://o/") "</body>", 1);
    /* a body-ish end tag is not </body> */
    check_full("</bodyx></body", NULL, "http://o/",
               "</bodyx></body" PIXEL("http://o/"), 0);
}

static void
test_callback_refuses(void **state)
{
    struct calls c = { .fail_at = 0, .empty_at = 1 };
    struct buf out;
    const char *in = "<a href=http://a/>a</a><a href=http://b/>b</a>"
                     "<a href=http://c/>c</a>";

    (void)state;
    buf_init(&out, 0);
    assert_int_equal(links_rewrite(in, strlen(in), NULL, track, &c, NULL,
                                   &out), 0);
    assert_int_equal(c.n, 3);
    assert_string_equal(buf_cstr(&out), "<a href=http://a/>a</a>"
                                        "<a href=http://b/>b</a>"
                                        "<a href=" T(2) ">c</a>");
    /* no callback: only the pixel */
    buf_reset(&out);
    assert_int_equal(links_rewrite(in, strlen(in), NULL, NULL, NULL, "p",
                                   &out), 0);
    assert_string_equal(buf_cstr(&out), "<a href=http://a/>a</a>"
                                        "<a href=http://b/>b</a>"
                                        "<a href=http://c/>c</a>" PIXEL("p"));
    buf_free(&out);
}

static void
test_malformed(void **state)
{
    (void)state;
    /* input that ends inside a tag, value or comment: copied as is */
    unchanged("<a href=\"https://ex.com/>text</a> and more");
    unchanged("<a href='https://ex.com/");
    unchanged("<a href=https://ex.com/");
    unchanged("<a href=\"https://ex.com/\"");
    unchanged("<a href=");
    unchanged("<a href");
    unchanged("<a");
    unchanged("<");
    unchanged("</");
    unchanged("<!");
    unchanged("<!-");
    unchanged("<!-- <a href=http://x/>");
    unchanged("<script><a href=http://x/>");
    unchanged("<![CDATA[");
    unchanged("</a");
    /* stray '<' and '&' in text */
    check("1 < 2 <3 <= 4 <-> &x &amp; <a href=http://x/>x</a> <",
          "1 < 2 <3 <= 4 <-> &x &amp; <a href=" T(0) ">x</a> <", 1);
    /* junk in tags */
    check("<a =x \"y\" 'z' href=\"http://x/\" <b>",
          "<a =x \"y\" 'z' href=" T(0) " <b>", 1);
    check("<a href=\"http://x/\"\"http://y/\">",
          "<a href=" T(0) "\"http://y/\">", 1);
    check("<a title=\"x\"href=http://x/>", "<a title=\"x\"href=" T(0) ">", 1);
    /* a NUL byte inside an href leaves the link alone */
    {
        static const char in[] = "<a href=\"http://x/\0y\">";
        struct calls c = { .fail_at = -1, .empty_at = -1 };
        struct buf out;

        buf_init(&out, 0);
        assert_int_equal(links_rewrite(in, sizeof(in) - 1, NULL, track, &c,
                                       NULL, &out), 0);
        assert_int_equal(c.n, 0);
        assert_int_equal(out.len, sizeof(in) - 1);
        assert_memory_equal(out.data, in, sizeof(in) - 1);
        buf_free(&out);
    }
    /* NUL bytes and invalid UTF-8 elsewhere pass through */
    {
        static const char in[] = "\xff\xfe<a href=http://x/>\0\xc3</a>";
        struct calls c = { .fail_at = -1, .empty_at = -1 };
        struct buf out;
        static const char want[] = "\xff\xfe<a href=" T(0) ">\0\xc3</a>";

        buf_init(&out, 0);
        assert_int_equal(links_rewrite(in, sizeof(in) - 1, NULL, track, &c,
                                       NULL, &out), 0);
        assert_int_equal(out.len, sizeof(want) - 1);
        assert_memory_equal(out.data, want, sizeof(want) - 1);
        buf_free(&out);
    }
    /* a huge href is left alone */
    {
        struct buf in, out;
        struct calls c = { .fail_at = -1, .empty_at = -1 };

        buf_init(&in, 0);
        buf_init(&out, 0);
        buf_puts(&in, "<a href=\"http://x/");
        for (int i = 0; i < 20000; i++)
            buf_putc(&in, 'a');
        buf_puts(&in, "\">x</a>");
        assert_int_equal(links_rewrite(in.data, in.len, NULL, track, &c, NULL,
                                       &out), 0);
        assert_int_equal(c.n, 0);
        assert_int_equal(out.len, in.len);
        assert_memory_equal(out.data, in.data, in.len);
        buf_free(&in);
        buf_free(&out);
    }
}

static void
test_cap(void **state)
{
    const char *in = "<body><a href=http://x/>x</a></body>";
    const char *want = "<body><a href=" T(0) ">x</a></body>";
    struct calls c = { .fail_at = -1, .empty_at = -1 };
    struct buf out;
    size_t need = 3 + strlen(want);

    (void)state;
    /* one byte short: an error, and out as it was */
    buf_init(&out, need - 1);
    buf_puts(&out, "PRE");
    assert_int_equal(links_rewrite(in, strlen(in), NULL, track, &c, NULL,
                                   &out), GW_ETOOBIG);
    assert_int_equal(out.len, 3);
    assert_string_equal(buf_cstr(&out), "PRE");
    buf_free(&out);
    /* exactly enough */
    c.n = 0;
    buf_init(&out, need);
    buf_puts(&out, "PRE");
    assert_int_equal(links_rewrite(in, strlen(in), NULL, track, &c, NULL,
                                   &out), 0);
    assert_string_equal(buf_cstr(&out) + 3, want);
    buf_free(&out);
    /* the pixel is what overflows */
    c.n = 0;
    buf_init(&out, need + 10);
    buf_puts(&out, "PRE");
    assert_int_equal(links_rewrite(in, strlen(in), NULL, track, &c, "http://o",
                                   &out), GW_ETOOBIG);
    assert_string_equal(buf_cstr(&out), "PRE");
    buf_free(&out);
}

/* ---- the fixtures, against libxml2 ------------------------------------ */

static const char *const newsletters[] = {
    "tables-layout", "nested-lists", "entities-de", "multilingual", "junk",
    "order-receipt",
};

static char *
read_fixture(const char *name, size_t *len)
{
    const char *dir = getenv("TPL_TEST_DATA");
    char path[512], tmp[4096];
    struct buf b;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/newsletters/%s.html",
             dir ? dir : "tests/unit/data", name);
    if ((f = fopen(path, "rb")) == NULL)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    buf_init(&b, 0);
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        assert_int_equal(buf_append(&b, tmp, n), 0);
    fclose(f);
    buf_cstr(&b);
    return buf_steal(&b, len);
}

/* The http(s) hrefs of <a> and <area> as libxml2 reads them. */
static void
xml_links(xmlNode *n, char list[][512], int *k)
{
    for (; n; n = n->next) {
        if (n->type == XML_ELEMENT_NODE &&
            (strcmp((const char *)n->name, "a") == 0 ||
             strcmp((const char *)n->name, "area") == 0)) {
            xmlChar *h = xmlGetProp(n, BAD_CAST "href");

            if (h && (strncmp((char *)h, "http:", 5) == 0 ||
                      strncmp((char *)h, "https:", 6) == 0) && *k < 32)
                snprintf(list[(*k)++], 512, "%s", (char *)h);
            xmlFree(h);
        }
        if (n->type == XML_ELEMENT_NODE)
            xml_links(n->children, list, k);
    }
}

static int
parsed_links(const char *html, size_t len, char list[][512])
{
    htmlDocPtr doc = htmlReadMemory(html, (int)len, NULL, "UTF-8",
                                    HTML_PARSE_RECOVER | HTML_PARSE_NOERROR |
                                        HTML_PARSE_NOWARNING |
                                        HTML_PARSE_NONET);
    int k = 0;

    assert_non_null(doc);
    xml_links(xmlDocGetRootElement(doc), list, &k);
    xmlFreeDoc(doc);
    return k;
}

static void
test_fixtures(void **state)
{
    static char before[32][512], after[32][512];
    const char *skip = "https://gw.northwind.example/u/eyJtIjoiYzEyMyJ9";
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(newsletters) / sizeof(newsletters[0]); i++) {
        struct calls c = { .fail_at = -1, .empty_at = -1 };
        size_t len;
        char *html = read_fixture(newsletters[i], &len);
        struct buf out;
        int nb, na, j, k;

        buf_init(&out, 0);
        /* nothing to do: byte for byte the same */
        assert_int_equal(links_rewrite(html, len, NULL, NULL, NULL, NULL,
                                       &out), 0);
        assert_int_equal(out.len, len);
        assert_memory_equal(out.data, html, len);
        buf_reset(&out);
        assert_int_equal(links_rewrite(html, len, skip, track, &c, "http://o/",
                                       &out), 0);
        nb = parsed_links(html, len, before);
        na = parsed_links(out.data, out.len, after);
        /* libxml2 sees the same links we offered, decoded the same way,
         * and after the rewrite only ours (and the skipped one) */
        for (j = k = 0; j < nb; j++) {
            if (strcmp(before[j], skip) == 0)
                continue;
            assert_true(k < c.n);
            assert_string_equal(before[j], c.seen[k]);
            k++;
        }
        assert_int_equal(k, c.n);
        assert_int_equal(na, nb);
        for (j = k = 0; j < na; j++) {
            char want[64];

            if (strcmp(after[j], skip) == 0)
                continue;
            snprintf(want, sizeof(want), "https://t.example/%d?s=1&k=a", k++);
            assert_string_equal(after[j], want);
        }
        assert_non_null(strstr(out.data, PIXEL("http://o/") "</body>"));
        free(html);
        buf_free(&out);
    }
}

/* ---- the classifier --------------------------------------------------- */

static const struct {
    const char *ua;
    int machine;
} agents[] = {
    /* Apple Mail Privacy Protection prefetch */
    { "Mozilla/5.0", 1 },
    { "  Mozilla/5.0 ", 1 },
    /* Gmail, Yahoo image proxies */
    { "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
      "(via ggpht.com GoogleImageProxy)", 1 },
    { "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749"
      ".html", 1 },
    /* Microsoft: previews and Office link checks */
    { "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
      "like Gecko) BingPreview/1.0b", 1 },
    { "Microsoft Office Existence Discovery", 1 },
    { "Microsoft Office Protocol Discovery", 1 },
    { "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5", 1 },
    /* security gateways */
    { "Barracuda Sentinel (EE)", 1 },
    { "Mozilla/5.0 (compatible; Mimecast Security Agent/1.0)", 1 },
    { "Proofpoint URL Defense", 1 },
    { "urldefense.proofpoint.com", 1 },
    { "Symantec Email Security.cloud link scanner", 1 },
    { "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Zscaler/1.0", 1 },
    /* libraries, headless browsers, bots */
    { "curl/8.4.0", 1 },
    { "Wget/1.21.3", 1 },
    { "python-requests/2.31.0", 1 },
    { "Python-urllib/3.11", 1 },
    { "Go-http-client/1.1", 1 },
    { "Go-http-client/2.0", 1 },
    { "Java/1.8.0_292", 1 },
    { "libwww-perl/6.67", 1 },
    { "Apache-HttpClient/4.5.13 (Java/17.0.2)", 1 },
    { "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
      "Gecko) HeadlessChrome/120.0.6099.109 Safari/537.36", 1 },
    { "Mozilla/5.0 (compatible; Googlebot/2.1; "
      "+http://www.google.com/bot.html)", 1 },
    { "Mozilla/5.0 (compatible; bingbot/2.0; "
      "+http://www.bing.com/bingbot.htm)", 1 },
    { "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", 1 },
    { "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext"
      ".php)", 1 },
    { "WhatsApp/2.23.20.0", 1 },
    { "Mozilla/5.0 (compatible; YandexSpider/3.0)", 1 },
    { "ia_archiver crawler", 1 },
    { "", 1 },
    { "   ", 1 },
    /* people */
    { "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
      "(KHTML, like Gecko)", 0 },                       /* Apple Mail, Mac */
    { "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) "
      "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148", 0 },
    { "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 "
      "Thunderbird/115.5.0", 0 },
    { "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook "
      "16.0.17029; Pro)", 0 },                          /* Outlook desktop */
    { "Mozilla/4.0 (compatible; ms-office; MSOffice 16)", 0 },
    { "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
      "like Gecko) Chrome/120.0.0.0 Safari/537.36", 0 },
    { "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
      "like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0", 0 },
    { "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 "
      "(KHTML, like Gecko) Version/17.1 Safari/605.1.15", 0 },
    { "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 "
      "Firefox/121.0", 0 },
    { "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, "
      "like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36", 0 },
    { "Mozilla/5.0 (Linux; Android 10; CUBOT_X30) AppleWebKit/537.36 "
      "(KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36", 0 },
    { "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) "
      "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 "
      "Safari/604.1", 0 },
};

static void
test_machine_agents(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(agents) / sizeof(agents[0]); i++) {
        int got = links_is_machine(agents[i].ua, "203.0.113.9", 3600000, 0);

        if (got != agents[i].machine)
            fail_msg("\"%s\": %d, want %d (rule %s)", agents[i].ua, got,
                     agents[i].machine,
                     links_machine_rule(agents[i].ua, NULL, -1, 0)
                         ? links_machine_rule(agents[i].ua, NULL, -1, 0)
                         : "none");
        assert_int_equal(links_is_machine(agents[i].ua, NULL, -1, 1),
                         agents[i].machine);
    }
    assert_int_equal(links_is_machine(NULL, NULL, -1, 0), 1);
    assert_string_equal(links_machine_rule(NULL, NULL, -1, 0), "ua:empty");
    assert_string_equal(links_machine_rule("Mozilla/5.0", NULL, -1, 0),
                        "ua:apple-mpp");
    assert_string_equal(links_machine_rule(agents[2].ua, NULL, -1, 0),
                        "ua:gmail-proxy");
    assert_string_equal(links_machine_rule("Go-http-client/1.1", NULL, -1, 1),
                        "ua:library");
}

static void
test_machine_ips(void **state)
{
    static const struct {
        const char *ip;
        const char *rule;
    } ips[] = {
        { "17.0.0.1", "ip:apple" },
        { "17.255.255.255", "ip:apple" },
        { "::ffff:17.58.1.2", "ip:apple" },
        { "2620:149:a44::1", "ip:apple" },
        { "2a01:b740:a41::10", "ip:apple" },
        { "40.92.0.1", "ip:microsoft-eop" },
        { "40.93.255.254", "ip:microsoft-eop" },
        { "40.107.22.33", "ip:microsoft-eop" },
        { "52.100.1.1", "ip:microsoft-eop" },
        { "52.101.255.255", "ip:microsoft-eop" },
        { "52.102.0.9", "ip:microsoft-eop" },
        { "52.103.127.1", "ip:microsoft-eop" },
        { "104.47.127.255", "ip:microsoft-eop" },
        { "2a01:111:f400:7c00::1", "ip:microsoft-eop" },
        { "2a01:111:f403:c000::5", "ip:microsoft-eop" },
        /* not listed */
        { "16.255.255.255", NULL },
        { "18.0.0.0", NULL },
        { "40.94.0.1", NULL },
        { "52.103.128.1", NULL },
        { "52.104.0.1", NULL },
        { "104.47.128.1", NULL },
        { "203.0.113.9", NULL },
        { "2001:db8::17", NULL },
        { "2a01:111:f401::1", NULL },
        { "::ffff:18.0.0.1", NULL },
        { "17.0.0", NULL },             /* not an address: ignored */
        { "17.0.0.1:443", NULL },
        { "", NULL },
        { "garbage", NULL },
    };
    const char *chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) "
                         "AppleWebKit/537.36 (KHTML, like Gecko) "
                         "Chrome/120.0.0.0 Safari/537.36";
    size_t i;

    (void)state;
    assert_int_equal(links_is_machine(chrome, NULL, -1, 0), 0);
    for (i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
        const char *r = links_machine_rule(chrome, ips[i].ip, -1, 1);

        if ((r == NULL) != (ips[i].rule == NULL) ||
            (r && strcmp(r, ips[i].rule) != 0))
            fail_msg("%s: %s, want %s", ips[i].ip, r ? r : "none",
                     ips[i].rule ? ips[i].rule : "none");
    }
}

static void
test_machine_time(void **state)
{
    const char *ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) "
                     "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
                     "Safari/537.36";

    (void)state;
    assert_int_equal(links_is_machine(ua, "203.0.113.9", 0, 0), 1);
    assert_int_equal(links_is_machine(ua, "203.0.113.9", 1999, 0), 1);
    assert_int_equal(links_is_machine(ua, "203.0.113.9", 2000, 0), 0);
    assert_int_equal(links_is_machine(ua, "203.0.113.9", 4999, 1), 1);
    assert_int_equal(links_is_machine(ua, "203.0.113.9", 5000, 1), 0);
    assert_int_equal(links_is_machine(ua, "203.0.113.9", 2500, 0), 0);
    assert_int_equal(links_is_machine(ua, "203.0.113.9", 2500, 1), 1);
    assert_int_equal(links_is_machine(ua, "203.0.113.9", -1, 1), 0);
    assert_int_equal(links_is_machine(ua, "203.0.113.9", INT64_MIN, 1), 0);
    assert_int_equal(links_is_machine(ua, "203.0.113.9", INT64_MAX, 1), 0);
    assert_string_equal(links_machine_rule(ua, NULL, 100, 0), "time:open");
    assert_string_equal(links_machine_rule(ua, NULL, 100, 1), "time:click");
}

/* ---- a micro-benchmark (printed, not asserted) ------------------------ */

static int
bench_cb(void *arg, const char *url, size_t len, int index, struct buf *out)
{
    (void)arg;
    (void)len;
    return buf_printf(out, "https://t.example/c/c123/%d?u=%.40s", index, url);
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
test_bench(void **state)
{
    struct buf html, out;
    int i, iters = 50000;
    double t0, dt;
    const char *ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) "
                     "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148";

    (void)state;
    buf_init(&html, 0);
    buf_init(&out, 0);
    buf_puts(&html, "<!doctype html><html><head><style>p{margin:0}</style>"
                    "</head><body><table role=\"presentation\" width=\"100%\">");
    for (i = 0; html.len < 3900; i++)
        buf_printf(&html, "<tr><td class=\"c\" style=\"padding:8px 16px;"
                          "font-family:Arial,sans-serif\"><p>Item %d: lorem "
                          "ipsum dolor sit amet &amp; more text here.</p>%s"
                          "</td></tr>\n", i, i < 10 ?
                          "<a href=\"https://shop.example/p?id=42&amp;"
                          "utm_source=mail\" style=\"color:#06c\">Buy</a>" :
                          "");
    buf_puts(&html, "</table></body></html>\n");
    for (i = 0; i < 1000; i++) {        /* warm up */
        buf_reset(&out);
        links_rewrite(html.data, html.len, NULL, bench_cb, NULL,
                      "https://t.example/o/c123", &out);
    }
    t0 = now();
    for (i = 0; i < iters; i++) {
        buf_reset(&out);
        assert_int_equal(links_rewrite(html.data, html.len, NULL, bench_cb,
                                       NULL, "https://t.example/o/c123", &out),
                         0);
    }
    dt = now() - t0;
    printf("bench: links_rewrite %zu-byte email, 10 links + pixel: "
           "%.2f us/email (%.0f MB/s)\n", html.len, dt / iters * 1e6,
           (double)html.len * iters / dt / 1e6);
    t0 = now();
    for (i = 0; i < iters; i++)
        links_is_machine(ua, "203.0.113.9", 60000, i & 1);
    dt = now() - t0;
    printf("bench: links_is_machine (person, full scan): %.0f ns\n",
           dt / iters * 1e9);
    buf_free(&html);
    buf_free(&out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_entities),
        cmocka_unit_test(test_not_tracked),
        cmocka_unit_test(test_skip_url),
        cmocka_unit_test(test_skipped_markup),
        cmocka_unit_test(test_case),
        cmocka_unit_test(test_pixel),
        cmocka_unit_test(test_callback_refuses),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_machine_agents),
        cmocka_unit_test(test_machine_ips),
        cmocka_unit_test(test_machine_time),
        cmocka_unit_test(test_bench),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

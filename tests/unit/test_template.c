/*
 * test_template.c -- template sets (templates/template.c): loading folders
 * (tests/unit/data/templates, or $TPL_TEST_DATA/templates) and Redis-style
 * field sets, every load error with its part and position, escaping per
 * part, strict mode, header-field rejection, the lookup chain and its
 * reserved name, {{today}} across midnight in a zone, inline images and
 * repeated renders.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "err.h"
#include "templates/template.h"

/* 2027-03-01T23:30:00Z */
#define NOW_MS 1803943800000LL

static const char *
data_dir(void)
{
    const char *d = getenv("TPL_TEST_DATA");

    return d ? d : "tests/unit/data";
}

static struct tpl *
load_dir_ok(const char *name)
{
    char path[512];
    struct tpl_error err;
    struct tpl *t = NULL;

    snprintf(path, sizeof(path), "%s/templates/%s", data_dir(), name);
    if (tpl_load_dir(&t, name, path, &err) < 0) {
        char msg[512];

        fail_msg("%s", tpl_error_format(&err, msg, sizeof(msg)));
    }
    return t;
}

static void
expect_dir_error(const char *name, int rc, const char *part, int line,
                 int col, const char *msg)
{
    char path[512], full[512];
    struct tpl_error err;
    struct tpl *t = (struct tpl *)1;

    snprintf(path, sizeof(path), "%s/templates/%s", data_dir(), name);
    assert_int_equal(tpl_load_dir(&t, name, path, &err), rc);
    assert_null(t);
    assert_string_equal(err.template, name);
    assert_string_equal(err.part, part);
    assert_int_equal(err.line, line);
    assert_int_equal(err.col, col);
    tpl_error_format(&err, full, sizeof(full));
    if (strstr(full, msg) == NULL)
        fail_msg("%s: \"%s\" lacks \"%s\"", name, full, msg);
}

/* A set from NULL-terminated name/value pairs of C strings. */
static int
load_pairs(struct tpl **t, struct tpl_error *err, ...)
{
    struct tpl_field f[16];
    size_t n = 0;
    const char *name;
    va_list ap;

    va_start(ap, err);
    while ((name = va_arg(ap, const char *)) != NULL && n < 16) {
        f[n].name = name;
        f[n].data = va_arg(ap, const char *);
        f[n].len = strlen(f[n].data);
        n++;
    }
    va_end(ap);
    return tpl_load_fields(t, "unit", f, n, err);
}

static void
expect_fields_error(const char *part, int line, int col, const char *msg,
                    int rc, const char *f1, const char *v1, const char *f2,
                    const char *v2)
{
    struct tpl_error err;
    struct tpl *t = (struct tpl *)1;

    assert_int_equal(load_pairs(&t, &err, f1, v1, f2, v2, NULL), rc);
    assert_null(t);
    assert_string_equal(err.template, "unit");
    assert_string_equal(err.part, part);
    assert_int_equal(err.line, line);
    assert_int_equal(err.col, col);
    if (strstr(err.msg, msg) == NULL)
        fail_msg("\"%s\" lacks \"%s\"", err.msg, msg);
}

static json_t *
js(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);

    if (j == NULL)
        fail_msg("bad test JSON: %s", je.text);
    return j;
}

/* ---- loading ---------------------------------------------------------- */

static void
test_load_dir_good(void **state)
{
    struct tpl *t = load_dir_ok("good");
    const struct tpl_image *logo, *photo;

    (void)state;
    assert_string_equal(tpl_name(t), "good");
    assert_true(tpl_has(t, TPL_P_SUBJECT));
    assert_true(tpl_has(t, TPL_P_HTML));
    assert_false(tpl_has(t, TPL_P_TEXT));
    assert_true(tpl_has(t, TPL_P_SMS));
    assert_true(tpl_has(t, TPL_P_FAX));
    assert_false(tpl_strict(t));
    assert_int_equal(tpl_image_count(t), 2);      /* .notes is skipped */
    logo = tpl_image_at(t, 0);
    photo = tpl_image_at(t, 1);
    assert_string_equal(logo->name, "logo.png");
    assert_string_equal(logo->content_type, "image/png");
    assert_int_equal(logo->len, 70);
    assert_int_equal(memcmp(logo->data, "\x89PNG", 4), 0);
    assert_string_equal(photo->name, "photo.jpg");
    assert_string_equal(photo->content_type, "image/jpeg");
    assert_int_equal(strncmp(logo->cid, "logo.png.", 9), 0);
    assert_int_equal(strlen(logo->cid), strlen("logo.png.12345678@gateway"));
    assert_string_equal(logo->cid + strlen(logo->cid) - 8, "@gateway");
    assert_null(tpl_image_at(t, 2));
    tpl_free(t);
    tpl_free(NULL);
}

static void
test_cid_stable(void **state)
{
    struct tpl *a = load_dir_ok("good"), *b = load_dir_ok("good"), *c;
    struct tpl_field f[2] = {
        { "html", "<img src=\"logo.png\">", 20 },
        { "image:logo.png", tpl_image_at(a, 0)->data, tpl_image_at(a, 0)->len },
    };
    struct tpl_error err;

    (void)state;
    assert_string_equal(tpl_image_at(a, 0)->cid, tpl_image_at(b, 0)->cid);
    assert_string_not_equal(tpl_image_at(a, 0)->cid,
                            tpl_image_at(a, 1)->cid);
    /* another set, same file: another cid */
    assert_int_equal(tpl_load_fields(&c, "other", f, 2, &err), 0);
    assert_string_not_equal(tpl_image_at(a, 0)->cid, tpl_image_at(c, 0)->cid);
    tpl_free(a);
    tpl_free(b);
    tpl_free(c);
}

static void
test_load_dir_errors(void **state)
{
    (void)state;
    expect_dir_error("bad-syntax", GW_EPARSE, "html", 3, 7,
                     "template bad-syntax, part html, line 3, col 7: "
                     "unclosed section 'items'");
    expect_dir_error("unknown-part", GW_EPARSE, "", 0, 0,
                     "unknown part 'notes.md'");
    expect_dir_error("bad-magic", GW_EPARSE, "image:logo.png", 0, 0,
                     "image 'logo.png' is not a PNG file");
    expect_dir_error("missing-image", GW_EPARSE, "html", 3, 26,
                     "image 'banner.png' in <img src> is not in the "
                     "template set");
    expect_dir_error("raw-recipient", GW_EPARSE, "html", 1, 10,
                     "unescaped tag 'first_name'");
    expect_dir_error("no-parts", GW_EPARSE, "", 0, 0, "no content");
    expect_dir_error("does-not-exist", -ENOENT, "", 0, 0,
                     "cannot open folder");
}

static void
test_load_fields_good(void **state)
{
    static const unsigned char png[] = "\x89PNG\r\n\x1a\n rest";
    struct tpl_field f[] = {
        { "subject", "Hi {{first_name}}\n", 18 },
        { "text", "Dear {{first_name}}", 19 },
        { "html", "<p>{{{campaign_vars.banner}}}</p>", 33 },
        { "strict", "true", 4 },
        { "version", "42", 2 },
        { "image:Logo-2.PNG", png, sizeof(png) - 1 },
        { "sms", "", 0 },                         /* empty: absent */
    };
    struct tpl_error err;
    struct tpl *t = NULL;

    (void)state;
    assert_int_equal(tpl_load_fields(&t, "redis-set", f, 7, &err), 0);
    assert_true(tpl_strict(t));
    assert_true(tpl_has(t, TPL_P_TEXT));
    assert_false(tpl_has(t, TPL_P_SMS));
    assert_int_equal(tpl_image_count(t), 1);
    assert_string_equal(tpl_image_at(t, 0)->content_type, "image/png");
    tpl_free(t);
    /* strict false, raw tags outside html are fine */
    assert_int_equal(load_pairs(&t, &err, "strict", "false\n", "text",
                                "{{{first_name}}} {{& x}}", NULL), 0);
    assert_false(tpl_strict(t));
    tpl_free(t);
}

static void
test_load_fields_errors(void **state)
{
    char big[TPL_MAX_PART + 2];
    struct tpl_field f[2];
    struct tpl_error err;
    struct tpl *t;

    (void)state;
    expect_fields_error("", 0, 0, "unknown part 'body'", GW_EPARSE, "body",
                        "x", NULL, NULL);
    expect_fields_error("html", 0, 0, "part given twice", GW_EPARSE, "html",
                        "a", "html", "b");
    expect_fields_error("strict", 0, 0, "must be true or false", GW_EPARSE,
                        "strict", "yes", "text", "x");
    expect_fields_error("image:logo.gif", 0, 0, "must end in .png",
                        GW_EPARSE, "image:logo.gif", "GIF89a", "text", "x");
    expect_fields_error("image:a b.png", 0, 0, "only letters", GW_EPARSE,
                        "image:a b.png", "\x89PNG\r\n\x1a\n", "text", "x");
    expect_fields_error("image:x.jpg", 0, 0, "not a JPEG file", GW_EPARSE,
                        "image:x.jpg", "\x89PNG\r\n\x1a\n", "text", "x");
    expect_fields_error("", 0, 0, "no content", GW_EPARSE, "subject", "x",
                        "version", "1");
    expect_fields_error("html", 2, 3, "unclosed section 'items'", GW_EPARSE,
                        "html", "<ul>\n  {{#items}}<li>{{.}}</li>\n</ul>",
                        NULL, NULL);
    expect_fields_error("subject", 1, 4, "unclosed tag", GW_EPARSE,
                        "subject", "Hi {{name", "text", "x");
    /* raw recipient data in html and fax; &-form; campaign_vars alone */
    expect_fields_error("html", 1, 4, "unescaped tag 'name'", GW_EPARSE,
                        "html", "<p>{{& name}}</p>", NULL, NULL);
    expect_fields_error("fax", 2, 1, "unescaped tag 'x'", GW_EPARSE, "fax",
                        "<p>\n{{{x}}}</p>", NULL, NULL);
    expect_fields_error("html", 1, 1, "unescaped tag 'campaign_vars'",
                        GW_EPARSE, "html", "{{{campaign_vars}}}", NULL, NULL);
    expect_fields_error("html", 1, 1, "unescaped tag 'campaign_varsx.y'",
                        GW_EPARSE, "html", "{{{campaign_varsx.y}}}", NULL,
                        NULL);
    expect_fields_error("text", 1, 3, "partials are not supported",
                        GW_EPARSE, "text", "a {{> footer}}", NULL, NULL);
    /* encoding */
    expect_fields_error("text", 2, 3, "invalid UTF-8 (byte 0xff)",
                        GW_EPARSE, "text", "\xc3\xa9t\xc3\xa9\nab\xff", NULL,
                        NULL);
    expect_fields_error("html", 1, 1, "invalid UTF-8", GW_EPARSE, "html",
                        "\xed\xa0\x80", NULL, NULL);     /* a surrogate */
    expect_fields_error("text", 1, 1, "invalid UTF-8", GW_EPARSE, "text",
                        "\xc0\xaf", NULL, NULL);         /* overlong '/' */
    expect_fields_error("subject", 1, 6, "one line", GW_EPARSE, "subject",
                        "Hello\nBcc: x@example.org", "text", "x");
    expect_fields_error("html", 1, 21, "image 'x.png'", GW_EPARSE, "html",
                        "<p><IMG width=1 src=x.png></p>", NULL, NULL);
    expect_fields_error("html", 2, 11, "image 'y.png'", GW_EPARSE, "html",
                        "{{! <img src=x.png> }}<!-- <img src=x.png> -->\n"
                        "<img src=\"y.png\"/>", NULL, NULL);
    f[0].name = "text";
    f[0].data = "a\0b";
    f[0].len = 3;
    assert_int_equal(tpl_load_fields(&t, "unit", f, 1, &err), GW_EPARSE);
    assert_string_equal(err.msg, "NUL byte in template");
    assert_int_equal(err.col, 2);
    memset(big, 'x', sizeof(big));
    f[0].data = big;
    f[0].len = TPL_MAX_PART + 1;
    assert_int_equal(tpl_load_fields(&t, "unit", f, 1, &err), GW_ETOOBIG);
    assert_string_equal(err.part, "text");
}

static void
test_error_format(void **state)
{
    struct tpl_error e = { "spring-offer", "html", 3, 14,
                           "unclosed section 'items'" };
    struct tpl_error e2 = { "x", "", 0, 0, "no content" };
    char buf[256], tiny[12];

    (void)state;
    assert_string_equal(tpl_error_format(&e, buf, sizeof(buf)),
                        "template spring-offer, part html, line 3, col 14: "
                        "unclosed section 'items'");
    assert_string_equal(tpl_error_format(&e2, buf, sizeof(buf)),
                        "template x: no content");
    assert_string_equal(tpl_error_format(&e, tiny, sizeof(tiny)),
                        "template sp");
}

/* ---- rendering -------------------------------------------------------- */

struct fx {
    struct tpl *t;
    struct tpl_out out;
    struct tpl_error err;
    json_t *recipient, *vars;
    struct tpl_data d;
};

static struct fx *
fx_new(void)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    tpl_out_init(&f->out, 0);
    f->d.now_ms = NOW_MS;
    return f;
}

static void
fx_free(struct fx *f)
{
    tpl_free(f->t);
    tpl_out_free(&f->out);
    json_decref(f->recipient);
    json_decref(f->vars);
    free(f);
}

static void
fx_data(struct fx *f, const char *recipient, const char *vars)
{
    json_decref(f->recipient);
    json_decref(f->vars);
    f->recipient = recipient ? js(recipient) : NULL;
    f->vars = vars ? js(vars) : NULL;
    f->d.recipient = f->recipient;
    f->d.vars = f->vars;
}

/* One part source (field name), rendered for a channel; returns rc. */
static int
render_one(struct fx *f, const char *field, const char *src,
           enum tpl_channel ch)
{
    struct tpl_field fl[2] = { { field, src, strlen(src) },
                               { "subject", "s", 1 } };

    tpl_free(f->t);
    f->t = NULL;
    if (tpl_load_fields(&f->t, "unit", fl, 2, &f->err) < 0)
        fail_msg("load: %s", f->err.msg);
    return tpl_render(f->t, ch, &f->d, NULL, &f->out, &f->err);
}

static const char *
render_text(struct fx *f, const char *src)
{
    assert_int_equal(render_one(f, "text", src, TPL_EMAIL), 0);
    return buf_cstr(&f->out.text);
}

static void
test_render_good(void **state)
{
    struct fx *f = fx_new();
    const char *html, *text;

    (void)state;
    f->t = load_dir_ok("good");
    fx_data(f, "{\"customer_id\":\"c1\",\"email\":\"anna@example.org\","
               "\"tz\":\"Europe/Berlin\",\"vars\":{\"first_name\":\"Anna\","
               "\"plan\":\"Gold\",\"renewal_date\":\"2027-05-10\","
               "\"items\":[{\"name\":\"Shoe\",\"price\":\"40 \\u20ac\"},"
               "{\"name\":\"Hat\",\"price\":\"15 \\u20ac\"}]}}",
            "{\"offer\":\"20%\",\"banner_html\":\"<b>Spring!</b>\"}");
    f->d.unsubscribe_url = "https://gw.example/u/tok";
    assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, NULL, &f->out,
                                &f->err), 0);
    assert_string_equal(buf_cstr(&f->out.subject),
                        "Anna, your Gold plan: 20% off");
    html = buf_cstr(&f->out.html);
    assert_non_null(strstr(html, "<b>Spring!</b>"));
    assert_non_null(strstr(html, "Today is 2027-03-02."));
    assert_non_null(strstr(html, "<p>Hat: 15 \xe2\x82\xac</p>"));
    assert_non_null(strstr(html, "src=\"cid:logo.png."));
    assert_non_null(strstr(html, "src='cid:photo.jpg."));
    assert_non_null(strstr(html, "src=\"https://cdn.example.org/x.png\""));
    assert_non_null(strstr(html, "<img src=\"not-checked.png\">"));
    assert_non_null(strstr(html, "href=\"https://gw.example/u/tok\""));
    assert_non_null(strstr(html, "renew?c=c1"));
    /* no text part: derived from the html */
    text = buf_cstr(&f->out.text);
    assert_non_null(strstr(text, "Dear Anna,\n==========\n"));
    assert_non_null(strstr(text, "Renew now <https://example.org/renew?c=c1>"));
    assert_non_null(strstr(text, "ACME\n"));
    assert_null(strstr(text, "<p>"));
    assert_int_equal(f->out.nimages, 2);
    assert_string_equal(f->out.images[0]->name, "logo.png");
    assert_string_equal(f->out.images[1]->name, "photo.jpg");
    assert_int_equal(f->out.sms.len, 0);

    assert_int_equal(tpl_render(f->t, TPL_SMS, &f->d, NULL, &f->out,
                                &f->err), 0);
    assert_string_equal(buf_cstr(&f->out.sms),
                        "Hi Anna, 20% off your Gold plan. STOP to opt out");
    assert_int_equal(f->out.html.len, 0);        /* reset by render */
    assert_int_equal(f->out.nimages, 0);

    assert_int_equal(tpl_render(f->t, TPL_FAX, &f->d, NULL, &f->out,
                                &f->err), 0);
    assert_non_null(strstr(buf_cstr(&f->out.fax), "<img src=\"cid:logo.png."));
    assert_int_equal(f->out.nimages, 1);
    fx_free(f);
}

static void
test_escaping(void **state)
{
    static const char *const val = "{\"vars\":{\"x\":\"<b>&\\\"'\"}}";
    static const char *const esc = "&lt;b&gt;&amp;&quot;&#39;";
    struct fx *f = fx_new();

    (void)state;
    fx_data(f, val, NULL);
    assert_int_equal(render_one(f, "html", "[{{x}}]", TPL_EMAIL), 0);
    assert_string_equal(buf_cstr(&f->out.html), "[&lt;b&gt;&amp;&quot;"
                                                "&#39;]");
    assert_int_equal(render_one(f, "fax", "{{x}}", TPL_FAX), 0);
    assert_string_equal(buf_cstr(&f->out.fax), esc);
    assert_int_equal(render_one(f, "sms", "{{x}}", TPL_SMS), 0);
    assert_string_equal(buf_cstr(&f->out.sms), "<b>&\"'");
    assert_string_equal(render_text(f, "{{x}}"), "<b>&\"'");
    assert_int_equal(render_one(f, "text", "t", TPL_EMAIL), 0);
    {
        struct tpl_field fl[2] = { { "subject", "{{x}}", 5 },
                                   { "text", "t", 1 } };

        tpl_free(f->t);
        assert_int_equal(tpl_load_fields(&f->t, "u", fl, 2, &f->err), 0);
        assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, NULL, &f->out,
                                    &f->err), 0);
        assert_string_equal(buf_cstr(&f->out.subject), "<b>&\"'");
    }
    /* campaign_vars is raw in html, by design */
    fx_data(f, val, "{\"b\":\"<i>x</i>\"}");
    assert_int_equal(render_one(f, "html", "{{{campaign_vars.b}}}{{b}}",
                                TPL_EMAIL), 0);
    assert_string_equal(buf_cstr(&f->out.html), "<i>x</i>&lt;i&gt;x&lt;/i&gt;");
    fx_free(f);
}

static void
test_strict(void **state)
{
    struct fx *f = fx_new();
    char msg[512];

    (void)state;
    f->t = load_dir_ok("strict");
    fx_data(f, "{\"vars\":{\"first_name\":\"Anna\"}}", NULL);
    assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, NULL, &f->out,
                                &f->err), GW_ENOTFOUND);
    assert_string_equal(f->err.part, "text");
    assert_string_equal(f->err.msg, "missing variable 'code'");
    assert_string_equal(tpl_error_format(&f->err, msg, sizeof(msg)),
                        "template strict, part text, line 1, col 35: "
                        "missing variable 'code'");
    fx_data(f, "{\"vars\":{\"code\":\"X1\"}}", NULL);
    assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, NULL, &f->out,
                                &f->err), GW_ENOTFOUND);
    assert_string_equal(f->err.part, "subject");
    assert_string_equal(f->err.msg, "missing variable 'first_name'");
    fx_data(f, "{\"vars\":{\"code\":\"X1\"}}", "{\"first_name\":\"Bo\"}");
    assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, NULL, &f->out,
                                &f->err), 0);
    assert_string_equal(buf_cstr(&f->out.text),
                        "Dear Bo, your code is X1.\n");
    /* not strict: empty, as the spec says */
    fx_data(f, NULL, NULL);
    assert_string_equal(render_text(f, "[{{first_name}}]"), "[]");
    fx_free(f);
}

static void
test_header_injection(void **state)
{
    static const char *const bad[] = {
        "{\"vars\":{\"n\":\"Anna\\r\\nBcc: all@example.org\"}}",
        "{\"vars\":{\"n\":\"Anna\\nX\"}}",
        "{\"vars\":{\"n\":\"Anna\\rX\"}}",
    };
    struct tpl_field fl[2] = { { "subject", "Hi {{n}}", 8 },
                               { "text", "{{n}}", 5 } };
    struct fx *f = fx_new();
    json_t *r;
    size_t i;

    (void)state;
    assert_int_equal(tpl_load_fields(&f->t, "u", fl, 2, &f->err), 0);
    for (i = 0; i < 3; i++) {
        fx_data(f, bad[i], NULL);
        assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, NULL, &f->out,
                                    &f->err), GW_EINVAL);
        assert_string_equal(f->err.part, "subject");
        assert_non_null(strstr(f->err.msg, "CR, LF or NUL"));
    }
    /* NUL through a jansson string */
    fx_data(f, "{\"vars\":{}}", NULL);
    r = json_object_get(f->recipient, "vars");
    json_object_set_new(r, "n", json_stringn("a\0b", 3));
    assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, NULL, &f->out,
                                &f->err), GW_EINVAL);
    assert_string_equal(f->err.part, "subject");
    /* an empty subject and sms into fresh buffers (no memory yet) */
    {
        struct tpl_field e[3] = { { "subject", "{{none}}", 8 },
                                  { "sms", "{{none}}", 8 },
                                  { "text", "{{none}}", 8 } };
        struct tpl *t2;
        struct tpl_out o2;

        assert_int_equal(tpl_load_fields(&t2, "u", e, 3, &f->err), 0);
        tpl_out_init(&o2, 0);
        assert_int_equal(tpl_render(t2, TPL_SMS, &f->d, NULL, &o2, &f->err),
                         0);
        tpl_out_free(&o2);
        tpl_out_init(&o2, 0);
        assert_int_equal(tpl_render(t2, TPL_EMAIL, &f->d, NULL, &o2,
                                    &f->err), 0);
        assert_int_equal(o2.subject.len + o2.text.len, 0);
        tpl_out_free(&o2);
        tpl_free(t2);
    }
    /* the text part may hold line breaks */
    fx_data(f, "{\"vars\":{\"n\":\"ok\"}}", NULL);
    assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, NULL, &f->out,
                                &f->err), 0);
    assert_string_equal(buf_cstr(&f->out.subject), "Hi ok");
    fx_free(f);
}

static void
test_lookup_chain(void **state)
{
    struct fx *f = fx_new();

    (void)state;
    fx_data(f, "{\"customer_id\":\"c7\",\"email\":\"anna@example.org\","
               "\"phone\":\"+4915112345678\",\"name\":\"Anna M\","
               "\"locale\":\"de\",\"secret\":\"hidden\","
               "\"vars\":{\"plan\":\"Gold\",\"phone\":\"private\","
               "\"campaign_vars\":{\"x\":\"EVIL\"},"
               "\"list\":[{\"campaign_vars\":{\"x\":\"EVIL2\"},\"n\":1}]}}",
            "{\"plan\":\"Basic\",\"offer\":\"20%\",\"x\":\"good\","
            "\"email\":\"campaign@example.org\",\"campaign\":\"var\"}");
    f->d.unsubscribe_url = "https://u.example/1";
    f->d.message_id = "m-1";
    f->d.campaign = "spring-27";
    /* recipient var shadows the campaign var and the contact field */
    assert_string_equal(render_text(f, "{{plan}} {{offer}} {{phone}}"),
                        "Gold 20% private");
    /* contact fields, and nothing else of the recipient object */
    assert_string_equal(render_text(f, "{{email}} {{customer_id}} {{name}} "
                                       "{{locale}} [{{secret}}] [{{vars}}]"),
                        "anna@example.org c7 Anna M de [] []");
    /* built-ins come last: a campaign var named campaign wins */
    assert_string_equal(render_text(f, "{{unsubscribe_url}} {{message_id}} "
                                       "{{campaign}} {{channel}}"),
                        "https://u.example/1 m-1 var email");
    /* the reserved name cannot be shadowed, not even from a section */
    assert_string_equal(render_text(f, "{{campaign_vars.x}} "
                                       "{{#list}}{{n}}:{{campaign_vars.x}}"
                                       "{{/list}} {{campaign_vars.plan}}"),
                        "good 1:good Basic");
    assert_int_equal(render_one(f, "html", "{{#list}}{{{campaign_vars.x}}}"
                                "{{/list}}", TPL_EMAIL), 0);
    assert_string_equal(buf_cstr(&f->out.html), "good");
    /* no campaign vars: campaign_vars.x is missing, not the recipient's */
    fx_data(f, "{\"vars\":{\"campaign_vars\":{\"x\":\"EVIL\"}}}", NULL);
    assert_string_equal(render_text(f, "[{{campaign_vars.x}}]"), "[]");
    /* channel built-in follows the channel */
    assert_int_equal(render_one(f, "sms", "{{channel}}", TPL_SMS), 0);
    assert_string_equal(buf_cstr(&f->out.sms), "sms");
    f->d.channel = "whatsapp";
    assert_int_equal(render_one(f, "sms", "{{channel}}", TPL_SMS), 0);
    assert_string_equal(buf_cstr(&f->out.sms), "whatsapp");
    /* no data at all */
    assert_int_equal(render_one(f, "text", "[{{a}}]", TPL_EMAIL), 0);
    assert_int_equal(tpl_render(f->t, TPL_EMAIL, NULL, NULL, &f->out,
                                &f->err), 0);
    assert_string_equal(buf_cstr(&f->out.text), "[]");
    fx_free(f);
}

static void
expect_today(struct fx *f, const char *tz_json, int64_t now,
             const char *want)
{
    char rec[256];

    snprintf(rec, sizeof(rec), "{\"tz\":%s}", tz_json);
    fx_data(f, rec, NULL);
    f->d.now_ms = now;
    if (strcmp(render_text(f, "{{today}}"), want) != 0)
        fail_msg("tz %s: got %s, want %s", tz_json, buf_cstr(&f->out.text),
                 want);
}

static void
test_today(void **state)
{
    struct fx *f = fx_new();
    char today[16];
    time_t now = time(NULL);
    struct tm tm;

    (void)state;
    expect_today(f, "\"Europe/Berlin\"", NOW_MS, "2027-03-02");
    expect_today(f, "\"UTC\"", NOW_MS, "2027-03-01");
    expect_today(f, "\"America/New_York\"", NOW_MS, "2027-03-01");
    expect_today(f, "\"Pacific/Kiritimati\"", NOW_MS - 9 * 3600000LL,
                 "2027-03-02");                    /* UTC+14 */
    expect_today(f, "\"Asia/Kolkata\"", NOW_MS - 3600000LL, "2027-03-02");
    expect_today(f, "\"Asia/Kolkata\"", NOW_MS - 6 * 3600000LL,
                 "2027-03-01");                    /* 17:30 + 5:30 */
    /* summer time: 2027-07-01T22:30Z is 00:30 in Berlin (+2) */
    expect_today(f, "\"Europe/Berlin\"", 1814481000000LL, "2027-07-02");
    /* unknown, missing, not a string, a path: UTC */
    expect_today(f, "\"Mars/Olympus\"", NOW_MS, "2027-03-01");
    expect_today(f, "null", NOW_MS, "2027-03-01");
    expect_today(f, "42", NOW_MS, "2027-03-01");
    expect_today(f, "\"/etc/localtime\"", NOW_MS, "2027-03-01");
    expect_today(f, "\"../../etc/localtime\"", NOW_MS, "2027-03-01");
    /* leap day */
    expect_today(f, "\"UTC\"", 1709208000000LL, "2024-02-29");
    /* the clock when now is 0 */
    gmtime_r(&now, &tm);
    strftime(today, sizeof(today), "%Y-%m-%d", &tm);
    expect_today(f, "\"UTC\"", 0, today);
    fx_free(f);
}

static int
track(const char *url, struct buf *out, void *arg)
{
    ++*(int *)arg;
    return buf_printf(out, "https://t.example/c?u=%zu", strlen(url));
}

static void
test_render_rewrite(void **state)
{
    struct tpl_field fl[2] = {
        { "subject", "s", 1 },
        { "html", "<p>Hi {{n}} <a href=\"https://example.org/{{n}}\">go</a> "
                  "<a href=\"mailto:x@example.org\">mail</a></p>", 0 },
    };
    struct tpl_render_opts o = { 0 };
    struct fx *f = fx_new();
    const char *html;
    int calls = 0;

    (void)state;
    fl[1].len = strlen(fl[1].data);
    assert_int_equal(tpl_load_fields(&f->t, "u", fl, 2, &f->err), 0);
    fx_data(f, "{\"vars\":{\"n\":\"J\\u00fcrgen\"}}", NULL);
    o.link_cb = track;
    o.link_arg = &calls;
    o.pixel_url = "https://t.example/o/1";
    assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, &o, &f->out,
                                &f->err), 0);
    html = buf_cstr(&f->out.html);
    assert_int_equal(calls, 1);
    assert_non_null(strstr(html, "href=\"https://t.example/c?u=27\""));
    assert_non_null(strstr(html, "href=\"mailto:x@example.org\""));
    assert_non_null(strstr(html, "J\xc3\xbcrgen"));
    assert_non_null(strstr(html, "<img src=\"https://t.example/o/1\" "
                                 "width=\"1\" height=\"1\" alt=\"\"></body>"));
    assert_string_equal(buf_cstr(&f->out.text),
                        "Hi J\xc3\xbcrgen go <https://example.org/J\xc3\xbc"
                        "rgen> mail <x@example.org>\n");
    /* without the options the bytes stay as rendered */
    assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, NULL, &f->out,
                                &f->err), 0);
    assert_string_equal(buf_cstr(&f->out.html),
                        "<p>Hi J\xc3\xbcrgen <a href=\"https://example.org/"
                        "J\xc3\xbcrgen\">go</a> <a href=\"mailto:x@example."
                        "org\">mail</a></p>");
    fx_free(f);
}

static int
fail_cb(const char *url, struct buf *out, void *arg)
{
    (void)url;
    (void)out;
    (void)arg;
    return GW_EINVAL;
}

static void
test_render_errors(void **state)
{
    struct tpl_render_opts o = { .link_cb = fail_cb };
    struct fx *f = fx_new();
    struct tpl_out small;

    (void)state;
    fx_data(f, NULL, NULL);
    /* a set without the channel's part */
    assert_int_equal(render_one(f, "text", "t", TPL_SMS), GW_ENOTFOUND);
    assert_string_equal(f->err.part, "sms");
    assert_int_equal(render_one(f, "sms", "t", TPL_EMAIL), GW_ENOTFOUND);
    assert_int_equal(render_one(f, "sms", "t", TPL_FAX), GW_ENOTFOUND);
    /* an email without a subject */
    {
        struct tpl_field fl[1] = { { "text", "t", 1 } };

        tpl_free(f->t);
        assert_int_equal(tpl_load_fields(&f->t, "u", fl, 1, &f->err), 0);
        assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, NULL, &f->out,
                                    &f->err), GW_ENOTFOUND);
        assert_string_equal(f->err.part, "subject");
    }
    /* the output cap */
    tpl_out_init(&small, 16);
    assert_int_equal(render_one(f, "text", "{{#a}}{{/a}}0123456789abcdefgh",
                                TPL_EMAIL), 0);
    assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, NULL, &small,
                                &f->err), GW_ETOOBIG);
    assert_string_equal(f->err.part, "text");
    tpl_out_free(&small);
    /* a failing link callback fails the render */
    assert_int_equal(render_one(f, "html", "<a href=\"http://x.org\">x</a>",
                                TPL_EMAIL), 0);
    assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, &o, &f->out,
                                &f->err), GW_EINVAL);
    assert_string_equal(f->err.part, "html");
    fx_free(f);
}

static void
test_parts_mask(void **state)
{
    struct tpl_render_opts o = { .parts = 1u << TPL_P_HTML };
    struct fx *f = fx_new();

    (void)state;
    f->t = load_dir_ok("good");
    fx_data(f, "{\"vars\":{\"first_name\":\"Anna\"}}", NULL);
    assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, &o, &f->out,
                                &f->err), 0);
    assert_true(f->out.html.len > 0);
    assert_int_equal(f->out.subject.len, 0);
    assert_int_equal(f->out.text.len, 0);
    o.parts = 1u << TPL_P_TEXT;
    assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, &o, &f->out,
                                &f->err), 0);
    assert_non_null(strstr(buf_cstr(&f->out.text), "Dear Anna,"));
    assert_int_equal(f->out.nimages, 0);
    o.parts = 1u << TPL_P_SMS;          /* not an email part: nothing */
    assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, &o, &f->out,
                                &f->err), 0);
    assert_int_equal(f->out.html.len + f->out.text.len, 0);
    fx_free(f);
}

static void
test_repeated(void **state)
{
    struct fx *f = fx_new();
    char *first_html, *first_text;
    int i;

    (void)state;
    f->t = load_dir_ok("good");
    fx_data(f, "{\"tz\":\"Europe/Berlin\",\"vars\":{\"first_name\":\"Anna\","
               "\"items\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}",
            "{\"offer\":\"5%\"}");
    assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, NULL, &f->out,
                                &f->err), 0);
    first_html = strdup(buf_cstr(&f->out.html));
    first_text = strdup(buf_cstr(&f->out.text));
    for (i = 0; i < 50; i++) {
        assert_int_equal(tpl_render(f->t, TPL_EMAIL, &f->d, NULL, &f->out,
                                    &f->err), 0);
        assert_string_equal(buf_cstr(&f->out.html), first_html);
        assert_string_equal(buf_cstr(&f->out.text), first_text);
        /* another recipient in between must not leak into the next */
        if (i == 10) {
            struct fx *g = fx_new();

            fx_data(g, "{\"vars\":{\"first_name\":\"Bo\"}}", NULL);
            assert_int_equal(tpl_render(f->t, TPL_EMAIL, &g->d, NULL,
                                        &f->out, &f->err), 0);
            assert_null(strstr(buf_cstr(&f->out.html), "Anna"));
            fx_free(g);
        }
    }
    free(first_html);
    free(first_text);
    fx_free(f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_dir_good),
        cmocka_unit_test(test_cid_stable),
        cmocka_unit_test(test_load_dir_errors),
        cmocka_unit_test(test_load_fields_good),
        cmocka_unit_test(test_load_fields_errors),
        cmocka_unit_test(test_error_format),
        cmocka_unit_test(test_render_good),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_header_injection),
        cmocka_unit_test(test_lookup_chain),
        cmocka_unit_test(test_today),
        cmocka_unit_test(test_render_rewrite),
        cmocka_unit_test(test_render_errors),
        cmocka_unit_test(test_parts_mask),
        cmocka_unit_test(test_repeated),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

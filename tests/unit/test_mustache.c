/*
 * test_mustache.c -- focused tests of the Mustache engine beyond the spec:
 * compile error positions, strict mode, the unescaped-tag listing, the
 * output cap, nesting caps, the caller's chain of root frames (with a
 * non-jansson backend), escaping modes and repeated renders.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "templates/mustache.h"

static struct mu_prog *
compile_ok(const char *src)
{
    struct mu_prog *p = NULL;
    struct mu_error err;
    int rc = mu_compile(&p, src, strlen(src), &err);

    if (rc < 0)
        fail_msg("compile \"%s\": %d:%d: %s", src, err.line, err.col, err.msg);
    return p;
}

/* Render src against JSON text data; returns the rc, output in *out. */
static int
render(const char *src, const char *data, const struct mu_render_opts *opts,
       struct buf *out, struct mu_error *err)
{
    struct mu_prog *p = compile_ok(src);
    json_t *j = json_loads(data, 0, NULL);
    int rc;

    assert_non_null(j);
    rc = mu_render_json(p, j, opts, out, err);
    json_decref(j);
    mu_prog_free(p);
    return rc;
}

static void
expect_render(const char *src, const char *data, enum mu_escape esc,
              const char *want)
{
    struct mu_render_opts opts = { .escape = esc };
    struct mu_error err;
    struct buf out;

    buf_init(&out, 0);
    assert_int_equal(render(src, data, &opts, &out, &err), 0);
    assert_string_equal(buf_cstr(&out), want);
    buf_free(&out);
}

static void
expect_parse_error(const char *src, int code, unsigned line, unsigned col,
                   const char *msg)
{
    struct mu_prog *p = (struct mu_prog *)1;
    struct mu_error err;

    assert_int_equal(mu_compile(&p, src, strlen(src), &err), code);
    assert_null(p);
    assert_int_equal(err.code, code);
    assert_int_equal(err.line, line);
    assert_int_equal(err.col, col);
    if (strstr(err.msg, msg) == NULL)
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", src, err.msg, msg);
}

static void
test_error_positions(void **state)
{
    (void)state;
    expect_parse_error("Hello {{name", GW_EPARSE, 1, 7, "unclosed tag");
    expect_parse_error("a\nb {{{x}}", GW_EPARSE, 2, 3, "unclosed tag");
    expect_parse_error("x\n  {{#sec}}\ny\n", GW_EPARSE, 2, 3,
                       "unclosed section 'sec'");
    expect_parse_error("{{#a}}\n{{#b}}x{{/a}}\n{{/b}}", GW_EPARSE, 2, 8,
                       "mismatched section end 'a', expected 'b'");
    expect_parse_error("ok\n\n  {{/a}}", GW_EPARSE, 3, 3,
                       "unexpected section end 'a'");
    expect_parse_error("x\n{{=<% %>}}", GW_EPARSE, 2, 1, "unclosed tag");
    expect_parse_error("x\n {{=<%=}}", GW_EPARSE, 2, 2, "bad delimiter");
    expect_parse_error("{{=a=b c=}}", GW_EPARSE, 1, 1, "bad delimiter");
    /* columns count UTF-8 characters, not bytes */
    expect_parse_error("\xc3\xa4\xc3\xb6 {{x", GW_EPARSE, 1, 4,
                       "unclosed tag");
    expect_parse_error("{{=<% %>=}}\n<%#a%>\n<%/b%>", GW_EPARSE, 3, 1,
                       "mismatched");
    expect_parse_error("a {{ }}", GW_EPARSE, 1, 3, "empty tag");
    expect_parse_error("{{first name}}", GW_EPARSE, 1, 1, "invalid tag name");
    expect_parse_error("{{a..b}}", GW_EPARSE, 1, 1, "invalid name 'a..b'");
    expect_parse_error("{{<p}}{{/*p}}", GW_EPARSE, 1, 7, "mismatched");
}

static void
test_nesting_limit(void **state)
{
    struct buf src;
    int i;

    (void)state;
    buf_init(&src, 0);
    for (i = 0; i <= MU_MAX_NEST; i++)
        buf_puts(&src, "{{#a}}");
    expect_parse_error(buf_cstr(&src), GW_ETOOBIG, 1,
                       1 + 6 * MU_MAX_NEST, "nested deeper");
    buf_free(&src);
}

static void
test_strict(void **state)
{
    struct mu_render_opts opts = { .strict = 1 };
    struct mu_error err;
    struct buf out;

    (void)state;
    buf_init(&out, 0);
    buf_puts(&out, "kept|");
    assert_int_equal(render("Hi\n  {{first_name}}!", "{\"x\":1}", &opts, &out,
                            &err), GW_ENOTFOUND);
    assert_string_equal(err.msg, "missing variable 'first_name'");
    assert_int_equal(err.line, 2);
    assert_int_equal(err.col, 3);
    assert_string_equal(buf_cstr(&out), "kept|");   /* output rolled back */

    assert_int_equal(render("{{a.b.c}}", "{\"a\":{\"b\":{}}}", &opts, &out,
                            &err), GW_ENOTFOUND);
    assert_string_equal(err.msg, "missing variable 'a.b.c'");

    /* null is present; sections treat missing names as false */
    buf_reset(&out);
    assert_int_equal(render("[{{n}}{{#m}}x{{/m}}{{^m}}y{{/m}}]",
                            "{\"n\":null}", &opts, &out, &err), 0);
    assert_string_equal(buf_cstr(&out), "[y]");

    assert_int_equal(render("{{>nope}}", "{}", &opts, &out, &err),
                     GW_ENOTFOUND);
    assert_string_equal(err.msg, "missing partial 'nope'");

    /* not strict: missing renders empty */
    opts.strict = 0;
    buf_reset(&out);
    assert_int_equal(render("Hi {{first_name}}!{{>nope}}", "{}", &opts, &out,
                            &err), 0);
    assert_string_equal(buf_cstr(&out), "Hi !");
    buf_free(&out);
}

struct seen {
    char text[512];
    int n;
};

static int
collect(void *arg, const struct mu_tag *tag)
{
    struct seen *s = arg;
    size_t used = strlen(s->text);

    snprintf(s->text + used, sizeof(s->text) - used, "%s%x:%s@%u:%u;",
             tag->dynamic ? "*" : "", (unsigned)tag->kind, tag->name,
             tag->line, tag->col);
    return ++s->n == 100 ? 7 : 0;
}

static void
test_unescaped_tags(void **state)
{
    struct mu_prog *p = compile_ok(
        "<p>{{name}} {{{raw}}}</p>\n"
        "{{#list}}\n"
        "  {{& item.html }}\n"
        "{{/list}}\n"
        "{{<layout}}{{$body}}{{{body_html}}}{{/body}}{{/layout}}\n"
        "{{=<% %>=}}<%{x}%> <%>*dyn%>");
    struct seen s = { "", 0 };

    (void)state;
    assert_int_equal(mu_prog_tags(p, MU_TAG_RAW, collect, &s), 0);
    assert_string_equal(s.text, "2:raw@1:13;2:item.html@3:3;"
                                "2:body_html@5:21;2:x@6:12;");
    memset(&s, 0, sizeof(s));
    assert_int_equal(mu_prog_tags(p, MU_TAG_VAR | MU_TAG_PARTIAL |
                                  MU_TAG_PARENT | MU_TAG_BLOCK, collect, &s),
                     0);
    assert_string_equal(s.text, "1:name@1:4;20:layout@5:1;40:body@5:12;"
                                "*10:dyn@6:20;");
    /* the callback's non-zero result stops the walk */
    s.n = 99;
    assert_int_equal(mu_prog_tags(p, MU_TAG_RAW, collect, &s), 7);
    mu_prog_free(p);
}

static void
test_output_cap(void **state)
{
    struct mu_prog *p = compile_ok("{{#l}}0123456789{{/l}}");
    json_t *data = json_pack("{s:[]}", "l"), *l = json_object_get(data, "l");
    struct mu_error err;
    struct buf out;
    int i;

    (void)state;
    for (i = 0; i < 100000; i++)
        json_array_append_new(l, json_integer(i));
    buf_init(&out, 4096);
    buf_puts(&out, "prefix");
    assert_int_equal(mu_render_json(p, data, NULL, &out, &err), GW_ETOOBIG);
    assert_int_equal(err.code, GW_ETOOBIG);
    assert_non_null(strstr(err.msg, "4096"));
    assert_string_equal(buf_cstr(&out), "prefix");
    assert_true(out.cap <= 4097);
    /* exactly at the cap is fine */
    buf_reset(&out);
    while (json_array_size(l) > 409)
        json_array_remove(l, json_array_size(l) - 1);
    buf_puts(&out, "123456");
    assert_int_equal(mu_render_json(p, data, NULL, &out, &err), 0);
    assert_int_equal(out.len, 4096);
    json_decref(data);
    buf_free(&out);
    mu_prog_free(p);
}

static void
test_recursion_caps(void **state)
{
    struct mu_lib *lib = mu_lib_new();
    struct mu_render_opts opts = { .partial = mu_lib_partial };
    json_t *list = json_loads("{\"t\":true,\"l\":[1,2,3,4,5,6,7,8,9,10,11,"
                              "12,13,14,15,16,17,18,19,20]}", 0, NULL);
    struct mu_prog *p;
    struct mu_error err;
    struct buf out, src;
    int i;

    (void)state;
    opts.partial_arg = lib;
    buf_init(&out, 0);
    buf_init(&src, 0);
    mu_lib_add(lib, "self", 4, compile_ok("x{{>self}}"));
    mu_lib_add(lib, "blk", 3, compile_ok("{{$b}}d{{/b}}"));

    p = compile_ok("{{>self}}");
    assert_int_equal(mu_render_json(p, NULL, &opts, &out, &err), GW_ETOOBIG);
    assert_string_equal(err.msg, "partials nested deeper than 32");
    assert_int_equal(out.len, 0);
    mu_prog_free(p);

    /* 20^5 iterations: stopped by the step budget */
    p = compile_ok("{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}x{{/l}}{{/l}}{{/l}}{{/l}}"
                   "{{/l}}");
    opts.max_steps = 100000;
    assert_int_equal(mu_render_json(p, list, &opts, &out, &err), GW_ETOOBIG);
    assert_string_equal(err.msg, "more than 100000 render steps");
    assert_int_equal(out.len, 0);
    opts.max_steps = 0;
    mu_prog_free(p);

    /* a block overriding itself does not recurse */
    p = compile_ok("{{<blk}}{{$b}}<{{$b}}in{{/b}}>{{/b}}{{/blk}}");
    assert_int_equal(mu_render_json(p, NULL, &opts, &out, &err), 0);
    assert_string_equal(buf_cstr(&out), "<in>");
    mu_prog_free(p);

    /* sections inside partials stop at MU_MAX_DEPTH, whatever the data */
    buf_reset(&src);
    for (i = 0; i < 60; i++)
        buf_puts(&src, "{{#t}}");
    buf_puts(&src, "{{>deep}}");
    for (i = 0; i < 60; i++)
        buf_puts(&src, "{{/t}}");
    mu_lib_add(lib, "deep", 4, compile_ok(buf_cstr(&src)));
    p = compile_ok("{{>deep}}");
    assert_int_equal(mu_render_json(p, list, &opts, &out, &err), GW_ETOOBIG);
    assert_string_equal(err.msg, "templates nested deeper than 256");
    mu_prog_free(p);
    buf_free(&src);
    json_decref(list);
    buf_free(&out);
    mu_lib_free(lib);
}

/* A backend that is not jansson: objects are NULL-terminated lists of
 * key/value C strings; each kind of value has its own ops table. */
struct kv {
    const char *const *pairs;
};

static enum mu_type
kv_obj_type(const void *p)
{
    (void)p;
    return MU_T_OBJECT;
}

static enum mu_type
kv_str_type(const void *p)
{
    (void)p;
    return MU_T_STRING;
}

static const char *
kv_str_text(const void *p, char *scratch, size_t *len)
{
    (void)scratch;
    *len = strlen(p);
    return p;
}

static const struct mu_ops kv_str_ops = {
    .type = kv_str_type,
    .text = kv_str_text,
};

static struct mu_val
kv_get(const void *obj, const char *name, size_t len)
{
    const struct kv *o = obj;
    struct mu_val v = { NULL, NULL };
    size_t i;

    for (i = 0; o->pairs[i]; i += 2)
        if (strlen(o->pairs[i]) == len &&
            memcmp(o->pairs[i], name, len) == 0) {
            v.ops = &kv_str_ops;
            v.p = o->pairs[i + 1];
            break;
        }
    return v;
}

static const struct mu_ops kv_obj_ops = {
    .type = kv_obj_type,
    .get = kv_get,
};

static void
test_root_chain(void **state)
{
    static const char *const recipient[] = { "first_name", "Anna", NULL };
    static const char *const contact[] = {
        "first_name", "Wrong", "city", "Berlin", NULL,
    };
    static const struct kv rk = { recipient }, ck = { contact };
    json_t *campaign = json_pack("{s:s,s:s,s:{s:s}}", "offer", "20%",
                                 "city", "Paris", "person", "first_name",
                                 "Person");
    json_t *builtins = json_pack("{s:i,s:s}", "year", 2027, "offer", "none");
    struct mu_val roots[4] = {
        { &kv_obj_ops, &rk }, { &kv_obj_ops, &ck }, mu_json_val(campaign),
        mu_json_val(builtins),
    };
    struct mu_prog *p = compile_ok(
        "{{first_name}} {{city}} {{offer}} {{year}}|"
        "{{#person}}{{first_name}} {{city}}{{/person}}|{{.}}");
    struct mu_error err;
    struct buf out;

    (void)state;
    buf_init(&out, 0);
    /* closest frame wins; a section's frame is closer still; "." is the
     * closest frame, an object, which renders empty */
    assert_int_equal(mu_render(p, roots, 4, NULL, &out, &err), 0);
    assert_string_equal(buf_cstr(&out),
                        "Anna Berlin 20% 2027|Person Berlin|");
    buf_reset(&out);
    assert_int_equal(mu_render(p, roots + 2, 2, NULL, &out, &err), 0);
    assert_string_equal(buf_cstr(&out), " Paris 20% 2027|Person Paris|");
    assert_int_equal(mu_render(p, roots, MU_MAX_ROOTS + 1, NULL, &out, &err),
                     GW_EINVAL);
    json_decref(campaign);
    json_decref(builtins);
    buf_free(&out);
    mu_prog_free(p);
}

static void
test_repeat(void **state)
{
    struct mu_lib *lib = mu_lib_new();
    struct mu_render_opts opts = { .partial = mu_lib_partial };
    struct mu_prog *p;
    json_t *data = json_loads(
        "{\"name\":\"<Anna & Co>\",\"items\":[{\"n\":1},{\"n\":2.5},"
        "{\"n\":-3}],\"flag\":true}", 0, NULL);
    struct buf out;
    char *first;
    size_t cap;
    int i;

    (void)state;
    opts.partial_arg = lib;
    mu_lib_add(lib, "row", 3, compile_ok("- {{n}}\n"));
    p = compile_ok("Dear {{name}},\n{{#items}}\n  {{>row}}\n{{/items}}\n"
                   "{{#flag}}{{flag}}{{/flag}}\n");
    buf_init(&out, 0);
    assert_int_equal(mu_render_json(p, data, &opts, &out, NULL), 0);
    assert_string_equal(buf_cstr(&out),
                        "Dear &lt;Anna &amp; Co&gt;,\n  - 1\n  - 2.5\n"
                        "  - -3\ntrue\n");
    first = strdup(buf_cstr(&out));
    cap = out.cap;
    for (i = 0; i < 1000; i++) {
        buf_reset(&out);
        assert_int_equal(mu_render_json(p, data, &opts, &out, NULL), 0);
        assert_string_equal(buf_cstr(&out), first);
    }
    assert_int_equal(out.cap, cap);     /* the buffer never had to grow */
    free(first);
    json_decref(data);
    buf_free(&out);
    mu_prog_free(p);
    mu_lib_free(lib);
}

static void
test_escaping(void **state)
{
    const char *data = "{\"x\":\"<a href='u'>&\\\"</a>\"}";

    (void)state;
    expect_render("{{x}}", data, MU_ESC_HTML,
                  "&lt;a href=&#39;u&#39;&gt;&amp;&quot;&lt;/a&gt;");
    expect_render("{{x}}", data, MU_ESC_NONE, "<a href='u'>&\"</a>");
    expect_render("{{{x}}}{{&x}}", data, MU_ESC_HTML,
                  "<a href='u'>&\"</a><a href='u'>&\"</a>");
}

static void
test_values(void **state)
{
    (void)state;
    /* empty strings are false, numbers (even 0) are true */
    expect_render("{{#s}}S{{/s}}{{^s}}s{{/s}}{{#z}}[{{z}}]{{/z}}",
                  "{\"s\":\"\",\"z\":0}", MU_ESC_HTML, "s[0]");
    expect_render("{{a.b.c}}|{{#a}}{{b.c}}{{/a}}|{{a.x.c}}",
                  "{\"a\":{\"b\":{\"c\":\"deep\"}},\"b\":{\"c\":\"no\"}}",
                  MU_ESC_HTML, "deep|deep|");
    expect_render("{{#l}}{{.}},{{/l}} {{big}} {{r}} {{t}}/{{f}}",
                  "{\"l\":[\"a\",1,1.5],\"big\":-9223372036854775807,"
                  "\"r\":0.1,\"t\":true,\"f\":false}",
                  MU_ESC_HTML, "a,1,1.5, -9223372036854775807 0.1 true/false");
    expect_render("{{o}}{{l}}", "{\"o\":{\"a\":1},\"l\":[1]}", MU_ESC_HTML,
                  "");
}

static void
test_inheritance_indent(void **state)
{
    struct mu_lib *lib = mu_lib_new();
    struct mu_render_opts opts = { .partial = mu_lib_partial };
    struct mu_prog *p;
    json_t *data = json_pack("{s:[s,s]}", "l", "a", "b");
    struct buf out;

    (void)state;
    opts.partial_arg = lib;
    mu_lib_add(lib, "layout", 6, compile_ok(
        "<html>\n  <body>\n    {{$content}}\n    {{/content}}\n"
        "  </body>\n</html>\n"));
    mu_lib_add(lib, "li", 2, compile_ok("<li>\n  {{.}}\n</li>\n"));
    p = compile_ok("{{<layout}}\n{{$content}}\n<ul>\n  {{#l}}\n  {{>li}}\n"
                   "  {{/l}}\n</ul>\n{{/content}}\n{{/layout}}\n");
    buf_init(&out, 0);
    assert_int_equal(mu_render_json(p, data, &opts, &out, NULL), 0);
    assert_string_equal(buf_cstr(&out),
                        "<html>\n  <body>\n    <ul>\n      <li>\n"
                        "        a\n      </li>\n      <li>\n        b\n"
                        "      </li>\n    </ul>\n  </body>\n</html>\n");
    json_decref(data);
    buf_free(&out);
    mu_prog_free(p);
    mu_lib_free(lib);
}

static void
test_lib_and_free(void **state)
{
    struct mu_lib *lib = mu_lib_new();
    char name[16];
    int i;

    (void)state;
    mu_prog_free(NULL);
    mu_lib_free(NULL);
    assert_null(mu_lib_partial(NULL, "x", 1));
    for (i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "p%d", i);
        assert_int_equal(mu_lib_add(lib, name, strlen(name),
                                    compile_ok(name)), 0);
    }
    /* replacing frees the old program (ASan would report a leak) */
    assert_int_equal(mu_lib_add(lib, "p7", 2, compile_ok("new")), 0);
    for (i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "p%d", i);
        assert_non_null(mu_lib_get(lib, name, strlen(name)));
    }
    assert_null(mu_lib_get(lib, "p100", 4));
    assert_null(mu_lib_get(lib, "p7x", 2 + 1));
    mu_lib_free(lib);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_positions),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_unescaped_tags),
        cmocka_unit_test(test_output_cap),
        cmocka_unit_test(test_recursion_caps),
        cmocka_unit_test(test_root_chain),
        cmocka_unit_test(test_repeat),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_inheritance_indent),
        cmocka_unit_test(test_lib_and_free),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

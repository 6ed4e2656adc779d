/*
 * test_toml.c -- tests for the TOML parser (gateway/toml.c): values,
 * error positions and messages, toml_set_path, NULs in strings, inputs
 * that are not NUL-terminated, the nesting cap, and the toml-test vectors
 * listed in files-toml-1.0.0 under $TOML_TEST_DIR (default
 * ../shared/vectors/toml-test, relative to the repo root where tests run).
 *
 * Vector comparison: our tree is turned into toml-test's tagged JSON and
 * compared with the expected .json by json_equal, after the same
 * normalisation on both sides:
 *   - integer and float values are re-printed from their numeric value
 *     (the suite writes e.g. "1e+06" or "3.0e14" for floats);
 *   - date/time values drop trailing zeros of the fractional seconds: the
 *     suite pads to milliseconds ("56.6Z" is expected as "56.600Z") while
 *     we keep the digits as written;
 *   - NUL characters become U+10FFFD, because jansson cannot load NULs in
 *     object keys (no vector uses U+10FFFD).
 * Set TOML_TEST_VERBOSE=1 to also print the message for each rejected
 * invalid case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gateway/toml.h"

/* U+10FFFD in UTF-8, and as a JSON escape: stands in for NUL (see top). */
#define NUL_UTF8 "\xF4\x8F\xBF\xBD"
#define NUL_JSON "\\uDBFF\\uDFFD"

static struct toml_node *
parse_ok(const char *src)
{
    struct toml_node *root = NULL;
    struct toml_error err;
    int rc = toml_parse(&root, src, strlen(src), &err);

    if (rc != 0)
        print_error("unexpected error %d:%d: %s\n", err.line, err.col,
                    err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(root);
    return root;
}

static void
test_values(void **state)
{
    struct toml_node *root, *n, *c;
    struct toml_error err;

    (void)state;
    /* only the 0x/0o/0b forms refuse a sign */
    assert_int_equal(toml_parse(&root, "a = -0\nb = -0x0\n", 16, &err),
                     GW_EPARSE);
    assert_null(root);
    assert_int_equal(err.line, 2);
    assert_int_equal(err.col, 5);

    root = parse_ok(
        "title = \"gw\"\n"
        "port = 8_080\n"
        "hex = 0xDEAD_beef\noct = 0o755\nbin = 0b1010\n"
        "max = 9223372036854775807\nmin = -9223372036854775808\n"
        "pi = 3.141_592\nexp = -1e-3\nnz = -0.0\npinf = +inf\nqnan = nan\n"
        "yes = true\nno = false\n"
        "odt = 1979-05-27 07:32:00.5z\nldt = 1979-05-27t07:32:00\n"
        "ld = 2000-02-29\nlt = 23:59:60\n"
        "arr = [1, 'two', [3.0], {x = 4}]\n"
        "[tbl]\nk = 1\n");
    assert_int_equal(root->type, TOML_TABLE);
    assert_int_equal(root->nchild, 20);
    n = toml_get(root, "title");
    assert_int_equal(n->type, TOML_STRING);
    assert_string_equal(n->u.str.s, "gw");
    assert_int_equal(n->u.str.len, 2);
    assert_int_equal(toml_get(root, "port")->u.i, 8080);
    assert_int_equal(toml_get(root, "hex")->u.i, 0xDEADBEEF);
    assert_int_equal(toml_get(root, "oct")->u.i, 0755);
    assert_int_equal(toml_get(root, "bin")->u.i, 10);
    assert_true(toml_get(root, "max")->u.i == INT64_MAX);
    assert_true(toml_get(root, "min")->u.i == INT64_MIN);
    assert_true(toml_get(root, "pi")->u.f == 3.141592);
    assert_true(toml_get(root, "exp")->u.f == -1e-3);
    assert_true(toml_get(root, "nz")->u.f == 0.0);
    assert_true(signbit(toml_get(root, "nz")->u.f));
    assert_true(isinf(toml_get(root, "pinf")->u.f));
    assert_true(isnan(toml_get(root, "qnan")->u.f));
    assert_int_equal(toml_get(root, "yes")->u.b, 1);
    assert_int_equal(toml_get(root, "no")->u.b, 0);
    n = toml_get(root, "odt");
    assert_int_equal(n->type, TOML_DATETIME);
    assert_string_equal(n->u.str.s, "1979-05-27T07:32:00.5Z");
    n = toml_get(root, "ldt");
    assert_int_equal(n->type, TOML_DATETIME_LOCAL);
    assert_string_equal(n->u.str.s, "1979-05-27T07:32:00");
    assert_int_equal(toml_get(root, "ld")->type, TOML_DATE_LOCAL);
    assert_int_equal(toml_get(root, "lt")->type, TOML_TIME_LOCAL);
    n = toml_get(root, "arr");
    assert_int_equal(n->type, TOML_ARRAY);
    assert_int_equal(n->nchild, 4);
    c = n->child;
    assert_null(c->key);
    assert_int_equal(c->u.i, 1);
    assert_ptr_equal(c->parent, n);
    assert_string_equal(c->next->u.str.s, "two");
    assert_int_equal(c->next->next->type, TOML_ARRAY);
    assert_int_equal(toml_get(c->next->next->next, "x")->u.i, 4);
    /* document order, and toml_get on a non-table */
    assert_string_equal(root->child->key, "title");
    assert_string_equal(root->child->next->key, "port");
    assert_null(toml_get(n, "x"));
    assert_null(toml_get(root, "missing"));
    assert_int_equal(toml_get(toml_get(root, "tbl"), "k")->u.i, 1);
    assert_string_equal(toml_type_name(TOML_INT), "integer");
    assert_string_equal(toml_type_name(TOML_TABLE), "table");
    assert_string_equal(toml_type_name(TOML_DATE_LOCAL), "local date");
    toml_free(root);
    toml_free(NULL);
}

static void
test_positions(void **state)
{
    struct toml_node *root, *t, *b, *arr;

    (void)state;
    root = parse_ok("a = 1\n"
                    "  [t]  # comment\n"
                    "  b.c = 2\n"
                    "\"é\" = [\n"
                    "  10,\n"
                    "    20 ]\n"
                    "[[aot]]\n"
                    "[[aot]]\n");
    assert_int_equal(toml_get(root, "a")->line, 1);
    assert_int_equal(toml_get(root, "a")->col, 1);
    t = toml_get(root, "t");
    assert_int_equal(t->line, 2);
    assert_int_equal(t->col, 4);
    b = toml_get(t, "b");
    assert_int_equal(b->line, 3);
    assert_int_equal(b->col, 3);
    assert_int_equal(toml_get(b, "c")->line, 3);
    assert_int_equal(toml_get(b, "c")->col, 5);
    arr = toml_get(t, "é");
    assert_non_null(arr);
    assert_int_equal(arr->line, 4);
    assert_int_equal(arr->col, 1);
    assert_int_equal(arr->child->line, 5);
    assert_int_equal(arr->child->col, 3);
    assert_int_equal(arr->child->next->line, 6);
    assert_int_equal(arr->child->next->col, 5);
    arr = toml_get(root, "aot");
    assert_int_equal(arr->nchild, 2);
    assert_int_equal(arr->line, 7);
    assert_int_equal(arr->col, 3);
    assert_int_equal(arr->child->next->line, 8);
    toml_free(root);
}

struct err_case {
    const char *src;
    int         line;
    int         col;
    const char *msg;    /* a substring of the message */
};

static void
test_errors(void **state)
{
    static const struct err_case cases[] = {
        {"a = 1\nb 2\n", 2, 3, "expected '=' after key"},
        {"port = 1\nport = 2\n", 2, 1, "duplicate key 'port'"},
        {"[s]\nport = 1\n[s]\n", 3, 2, "table 's' already defined"},
        {"s = \"a\\qb\"\n", 1, 7, "invalid escape \\q"},
        {"s = \"\\uD800\"\n", 1, 6, "not a Unicode scalar"},
        {"x = \"\xC3\xA9\" \xC3\xA9\n", 1, 9, "expected a newline"},
        {"a = 1\nb = \xFF\n", 2, 5, "invalid UTF-8"},
        {"a = \"\xED\xA0\x80\"\n", 1, 6, "invalid UTF-8"},   /* surrogate */
        {"a = \"\xC0\xAF\"\n", 1, 6, "invalid UTF-8"},       /* overlong */
        {"a = \"\xE0\x80\x80\"\n", 1, 6, "invalid UTF-8"},   /* overlong */
        {"a = \"\xF4\x90\x80\x80\"\n", 1, 6, "invalid UTF-8"},  /* > max */
        {"a = \"\xE2\x82\"\n", 1, 6, "invalid UTF-8"},       /* cut short */
        {"a = 1\rb = 2\n", 1, 6, "carriage return"},
        {"# \x01\n", 1, 3, "control character U+0001"},
        {"a = 9223372036854775808\n", 1, 5, "out of range"},
        {"a = 0xFFFFFFFFFFFFFFFF\n", 1, 5, "out of range"},
        {"a = 1e999\n", 1, 5, "out of range"},
        {"a = 012\n", 1, 5, "leading zeros"},
        {"a = 1__0\n", 1, 5, "invalid"},
        {"d = 2023-02-29\n", 1, 5, "invalid date"},
        {"d = 2024-02-29T24:00:00\n", 1, 5, "invalid time"},
        {"d = 2024-02-29T23:00:00+24:00\n", 1, 5, "offset"},
        {"a = {x = 1}\na.y = 2\n", 2, 1, "cannot be extended"},
        {"a = {x = 1}\n[a]\n", 2, 2, "already defined"},
        {"a.b = 1\n[a]\n", 2, 2, "already defined"},
        {"a = [1]\n[[a]]\n", 2, 3, "static array"},
        {"[[a]]\n[a]\n", 2, 2, "array of tables"},
        {"a = [1 2]\n", 1, 8, "expected ',' or ']'"},
        {"a = {x = 1,}\n", 1, 12, "trailing comma"},
        {"a = {x = 1\n}\n", 1, 11, "newline in inline table"},
        {"s = \"abc\n", 1, 5, "unterminated string"},
        {"s = '''abc\n\n", 1, 5, "unterminated multi-line"},
        {"a = \n", 1, 5, "expected a value"},
        {"= 1\n", 1, 1, "expected a key"},
        {"[a\n", 1, 3, "expected ']'"},
    };
    struct toml_node *root;
    struct toml_error err;
    size_t i;
    int rc;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        root = (struct toml_node *)1;
        rc = toml_parse(&root, cases[i].src, strlen(cases[i].src), &err);
        if (rc != GW_EPARSE || err.line != cases[i].line ||
            err.col != cases[i].col || !strstr(err.msg, cases[i].msg))
            print_error("case %zu: rc %d at %d:%d \"%s\", want %d:%d "
                        "\"%s\"\n", i, rc, err.line, err.col, err.msg,
                        cases[i].line, cases[i].col, cases[i].msg);
        assert_int_equal(rc, GW_EPARSE);
        assert_null(root);
        assert_int_equal(err.line, cases[i].line);
        assert_int_equal(err.col, cases[i].col);
        assert_non_null(strstr(err.msg, cases[i].msg));
    }
    /* no error struct at all is allowed too */
    assert_int_equal(toml_parse(&root, "a =", 3, NULL), GW_EPARSE);
}

static void
test_nul_in_strings(void **state)
{
    struct toml_node *root, *n;
    const char *src = "s = \"a\\u0000b\"\n\"k\\u0000\" = 1\nk = 2\n";

    (void)state;
    root = parse_ok(src);
    n = toml_get(root, "s");
    assert_int_equal(n->u.str.len, 3);
    assert_memory_equal(n->u.str.s, "a\0b", 4);
    /* "k\0" and "k" are different keys */
    n = root->child->next;
    assert_int_equal(n->keylen, 2);
    assert_memory_equal(n->key, "k\0", 3);
    assert_int_equal(toml_get(root, "k")->u.i, 2);
    toml_free(root);
}

static void
test_not_nul_terminated(void **state)
{
    struct toml_node *root;
    struct toml_error err;
    const char *text = "a = 123";
    char *exact;

    (void)state;
    /* an exact-size heap copy: ASan would catch a read past the end */
    exact = malloc(7);
    assert_non_null(exact);
    memcpy(exact, text, 7);
    assert_int_equal(toml_parse(&root, exact, 7, &err), 0);
    assert_int_equal(toml_get(root, "a")->u.i, 123);
    toml_free(root);
    assert_int_equal(toml_parse(&root, exact, 6, &err), 0);
    assert_int_equal(toml_get(root, "a")->u.i, 12);
    toml_free(root);
    memcpy(exact, "s='abc", 6);
    assert_int_equal(toml_parse(&root, exact, 6, &err), GW_EPARSE);
    assert_non_null(strstr(err.msg, "unterminated"));
    memcpy(exact, "d=10:3", 6);
    assert_int_equal(toml_parse(&root, exact, 6, &err), GW_EPARSE);
    assert_non_null(strstr(err.msg, "invalid time"));
    free(exact);
    /* an empty document, even with a NULL pointer */
    assert_int_equal(toml_parse(&root, NULL, 0, &err), 0);
    assert_int_equal(root->nchild, 0);
    toml_free(root);
}

/* "a = " + n times open + "1" + n times close. */
static int
parse_nested(int n, const char *open, const char *close)
{
    struct toml_node *root = NULL;
    struct toml_error err;
    size_t lo = strlen(open), lc = strlen(close), len = 0;
    char *s = malloc(8 + (size_t)n * (lo + lc));
    int i, rc;

    assert_non_null(s);
    memcpy(s, "a = ", 4);
    len = 4;
    for (i = 0; i < n; i++, len += lo)
        memcpy(s + len, open, lo);
    s[len++] = '1';
    for (i = 0; i < n; i++, len += lc)
        memcpy(s + len, close, lc);
    rc = toml_parse(&root, s, len, &err);
    if (rc != 0)
        assert_non_null(strstr(err.msg, "too deeply"));
    toml_free(root);
    free(s);
    return rc;
}

/* "pre" + a key of n parts "k.k.k" + "post", parsed; the return code. */
static int
parse_key_parts(const char *pre, int n, const char *post)
{
    struct toml_node *root = NULL;
    struct toml_error err;
    size_t lp = strlen(pre), lq = strlen(post), len = 0;
    char *s = malloc(lp + 2 * (size_t)n + lq + 1);
    int i, rc;

    assert_non_null(s);
    memcpy(s, pre, lp);
    len = lp;
    for (i = 0; i < n; i++) {
        if (i > 0)
            s[len++] = '.';
        s[len++] = 'k';
    }
    memcpy(s + len, post, lq);
    len += lq;
    rc = toml_parse(&root, s, len, &err);
    toml_free(root);
    free(s);
    return rc;
}

static void
test_depth_cap(void **state)
{
    (void)state;
    /* containers may nest 64 deep below the root, not 65 */
    assert_int_equal(parse_nested(64, "[", "]"), 0);
    assert_int_equal(parse_nested(65, "[", "]"), GW_EPARSE);
    assert_int_equal(parse_nested(100000, "[", "]"), GW_EPARSE);
    assert_int_equal(parse_nested(64, "{b = ", "}"), 0);
    assert_int_equal(parse_nested(65, "{b = ", "}"), GW_EPARSE);
    assert_int_equal(parse_nested(100000, "{b = ", "}"), GW_EPARSE);
    assert_int_equal(parse_nested(100000, "[{b = ", "}]"), GW_EPARSE);

    /* tables made by headers and dotted keys count too */
    assert_int_equal(parse_key_parts("[", 64, "]\n"), 0);
    assert_int_equal(parse_key_parts("[", 65, "]\n"), GW_EPARSE);
    assert_int_equal(parse_key_parts("[[", 63, "]]\n"), 0);
    assert_int_equal(parse_key_parts("[[", 64, "]]\n"), GW_EPARSE);
    assert_int_equal(parse_key_parts("", 64, " = 1\n"), 0);
    assert_int_equal(parse_key_parts("", 64, " = []\n"), 0);
    assert_int_equal(parse_key_parts("[t]\n", 64, " = 1\n"), 0);
    assert_int_equal(parse_key_parts("[t]\n", 65, " = 1\n"), GW_EPARSE);
    assert_int_equal(parse_key_parts("[t]\n", 63, " = []\n"), 0);
    assert_int_equal(parse_key_parts("[t]\n", 64, " = []\n"), GW_EPARSE);
    assert_int_equal(parse_key_parts("", 100000, " = 1\n"), GW_EPARSE);
}

static void
test_set_path(void **state)
{
    struct toml_node *root, *srv, *n;
    struct toml_error err;

    (void)state;
    root = parse_ok("[server]\nport = 80\nhost = \"a\"\n[other]\n");
    srv = toml_get(root, "server");

    /* replace keeps the key's place in document order */
    assert_int_equal(toml_set_path(root, "server.port", "8080", &err), 0);
    n = toml_get(srv, "port");
    assert_int_equal(n->type, TOML_INT);
    assert_int_equal(n->u.i, 8080);
    assert_ptr_equal(srv->child, n);
    assert_ptr_equal(n->parent, srv);
    assert_int_equal(n->line, 0);
    assert_int_equal(srv->nchild, 2);

    /* any type may replace any other */
    assert_int_equal(toml_set_path(root, "server.host", "[1, {a = 'x'}]",
                                   &err), 0);
    n = toml_get(srv, "host");
    assert_int_equal(n->type, TOML_ARRAY);
    assert_int_equal(n->nchild, 2);
    assert_int_equal(n->child->line, 0);
    assert_string_equal(toml_get(n->child->next, "a")->u.str.s, "x");
    assert_int_equal(toml_set_path(root, "other", "\"flat\"", &err), 0);
    assert_string_equal(toml_get(root, "other")->u.str.s, "flat");
    assert_ptr_equal(root->child->next, toml_get(root, "other"));

    /* missing tables are created; quoted parts work */
    assert_int_equal(toml_set_path(root, "server.tls . \"a.b\"",
                                   "1979-05-27", &err), 0);
    n = toml_get(toml_get(srv, "tls"), "a.b");
    assert_non_null(n);
    assert_int_equal(n->type, TOML_DATE_LOCAL);
    assert_int_equal(toml_set_path(root, "new", "{x = 1}", &err), 0);
    assert_int_equal(toml_get(toml_get(root, "new"), "x")->u.i, 1);
    assert_int_equal(root->nchild, 3);

    /* errors: value positions are within the value text */
    assert_int_equal(toml_set_path(root, "server.port", "1 2", &err),
                     GW_EPARSE);
    assert_int_equal(err.line, 1);
    assert_int_equal(err.col, 3);
    assert_int_equal(toml_set_path(root, "server.port", "\"\\q\"", &err),
                     GW_EPARSE);
    assert_int_equal(err.col, 2);
    assert_non_null(strstr(err.msg, "invalid escape \\q"));
    assert_int_equal(toml_set_path(root, "x", "1\ny = 2", &err), GW_EPARSE);
    assert_int_equal(err.line, 0);
    assert_non_null(strstr(err.msg, "single value"));
    assert_int_equal(toml_set_path(root, "x", "", &err), GW_EPARSE);
    assert_int_equal(toml_set_path(root, "server.port.x", "1", &err),
                     GW_EPARSE);
    assert_non_null(strstr(err.msg, "not a table"));
    assert_int_equal(toml_set_path(root, "", "1", &err), GW_EPARSE);
    assert_int_equal(toml_set_path(root, "a b", "1", &err), GW_EPARSE);
    assert_int_equal(toml_set_path(root, "a.", "1", &err), GW_EPARSE);
    /* failures left the tree as it was */
    assert_int_equal(toml_get(srv, "port")->u.i, 8080);
    assert_null(toml_get(root, "x"));
    toml_free(root);
}

/* ---- toml-test vectors ---- */

static const char *
vectors_dir(void)
{
    const char *d = getenv("TOML_TEST_DIR");

    return d && *d ? d : "../shared/vectors/toml-test";
}

/* dir/name into out; a path that does not fit fails the test. */
static void
join(char *out, size_t n, const char *dir, const char *name)
{
    int r = snprintf(out, n, "%s/%s", dir, name);

    assert_true(r > 0 && (size_t)r < n);
}

/* The whole file in an exact-size buffer (not NUL-terminated). */
static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL, *q;
    size_t cap = 0, n = 0, r;

    if (f == NULL)
        return NULL;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            if ((q = realloc(p, cap)) == NULL)
                break;
            p = q;
        }
        if ((r = fread(p + n, 1, cap - n, f)) == 0)
            break;
        n += r;
    }
    fclose(f);
    if (p && (q = realloc(p, n ? n : 1)) != NULL)
        p = q;
    *len = n;
    return p;
}

static void
fmt_float(char *out, size_t n, double d)
{
    if (isnan(d))
        snprintf(out, n, "nan");
    else if (isinf(d))
        snprintf(out, n, d < 0 ? "-inf" : "inf");
    else
        snprintf(out, n, "%.17g", d);
}

/* s with each NUL replaced by U+10FFFD (see the top of the file). */
static char *
nul_to_mark(const char *s, size_t len, size_t *olen)
{
    char *o = malloc(len * 4 + 1);
    size_t i, k = 0;

    assert_non_null(o);
    for (i = 0; i < len; i++) {
        if (s[i] == '\0') {
            memcpy(o + k, NUL_UTF8, 4);
            k += 4;
        } else {
            o[k++] = s[i];
        }
    }
    o[k] = '\0';
    *olen = k;
    return o;
}

static json_t *
tagged(const char *type, const char *s, size_t len)
{
    size_t n;
    char *m = nul_to_mark(s, len, &n);
    json_t *j = json_pack("{s:s, s:s%}", "type", type, "value", m, n);

    free(m);
    return j;
}

/* Our tree in toml-test's tagged JSON. */
static json_t *
to_json(const struct toml_node *n)
{
    const struct toml_node *c;
    json_t *j;
    char num[64], *k;
    size_t klen;

    switch (n->type) {
    case TOML_TABLE:
        j = json_object();
        for (c = n->child; c; c = c->next) {
            k = nul_to_mark(c->key, c->keylen, &klen);
            json_object_setn_new(j, k, klen, to_json(c));
            free(k);
        }
        return j;
    case TOML_ARRAY:
        j = json_array();
        for (c = n->child; c; c = c->next)
            json_array_append_new(j, to_json(c));
        return j;
    case TOML_STRING:
        return tagged("string", n->u.str.s, n->u.str.len);
    case TOML_INT:
        snprintf(num, sizeof num, "%" PRId64, n->u.i);
        return tagged("integer", num, strlen(num));
    case TOML_FLOAT:
        fmt_float(num, sizeof num, n->u.f);
        return tagged("float", num, strlen(num));
    case TOML_BOOL:
        return tagged("bool", n->u.b ? "true" : "false", n->u.b ? 4 : 5);
    case TOML_DATETIME:
        return tagged("datetime", n->u.str.s, n->u.str.len);
    case TOML_DATETIME_LOCAL:
        return tagged("datetime-local", n->u.str.s, n->u.str.len);
    case TOML_DATE_LOCAL:
        return tagged("date-local", n->u.str.s, n->u.str.len);
    case TOML_TIME_LOCAL:
        return tagged("time-local", n->u.str.s, n->u.str.len);
    }
    return NULL;
}

/* Normalise one tagged value in place (see the top of the file). */
static void
normalise_value(json_t *obj, const char *type, const char *v)
{
    char out[128], *end;
    size_t i, o = 0, z;

    if (strcmp(type, "integer") == 0) {
        snprintf(out, sizeof out, "%lld", strtoll(v, &end, 10));
    } else if (strcmp(type, "float") == 0) {
        fmt_float(out, sizeof out, strtod(v, &end));
    } else if (strncmp(type, "date", 4) == 0 ||
               strcmp(type, "time-local") == 0) {
        for (i = 0; v[i] && o < sizeof out - 1; i++) {
            out[o++] = (char)toupper((unsigned char)v[i]);
            if (v[i] != '.')
                continue;
            z = o - 1;                  /* drop the '.' if no digit stays */
            for (i++; isdigit((unsigned char)v[i]) && o < sizeof out - 1;
                 i++) {
                out[o++] = v[i];
                if (v[i] != '0')
                    z = o;
            }
            o = z;
            i--;
        }
        out[o] = '\0';
    } else {
        return;
    }
    json_object_set_new(obj, "value", json_string(out));
}

static void
normalise(json_t *j)
{
    json_t *t, *v;
    const char *k;
    size_t i;

    if (json_is_object(j)) {
        t = json_object_get(j, "type");
        v = json_object_get(j, "value");
        if (json_object_size(j) == 2 && json_is_string(t) &&
            json_is_string(v)) {
            normalise_value(j, json_string_value(t), json_string_value(v));
            return;
        }
        json_object_foreach(j, k, v)
            normalise(v);
    } else if (json_is_array(j)) {
        for (i = 0; i < json_array_size(j); i++)
            normalise(json_array_get(j, i));
    }
}

/* Expected JSON text with every \u0000 escape replaced (see top). */
static json_t *
load_expected(const char *path, char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *j;
    size_t len, i, o = 0;
    char *text = slurp(path, &len), *m;

    if (text == NULL) {
        snprintf(why, whylen, "cannot read the expected .json");
        return NULL;
    }
    m = malloc(len * 3 + 1);
    assert_non_null(m);
    for (i = 0; i < len; i++) {
        if (text[i] == '\\' && len - i >= 6 &&
            memcmp(text + i, "\\u0000", 6) == 0) {
            memcpy(m + o, NUL_JSON, 12);
            o += 12;
            i += 5;
        } else if (text[i] == '\\' && i + 1 < len) {
            m[o++] = text[i++];         /* an escaped char, e.g. "\\" */
            m[o++] = text[i];
        } else {
            m[o++] = text[i];
        }
    }
    j = json_loadb(m, o, JSON_ALLOW_NUL, &jerr);
    if (j == NULL)
        snprintf(why, whylen, "bad expected JSON: %s", jerr.text);
    free(text);
    free(m);
    return j;
}

static void
print_json(const char *label, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS |
                            JSON_ENCODE_ANY);

    printf("    %s: %.600s\n", label, s ? s : "(null)");
    free(s);
}

/* One valid case: 1 if it parses to the expected values. */
static int
run_valid(const char *dir, const char *name)
{
    struct toml_node *root;
    struct toml_error err;
    json_t *got, *want;
    char path[8192], why[256];
    size_t len;
    char *src;
    int ok;

    join(path, sizeof path, dir, name);
    if ((src = slurp(path, &len)) == NULL) {
        printf("FAIL %s: cannot read\n", name);
        return 0;
    }
    if (toml_parse(&root, src, len, &err) != 0) {
        printf("FAIL %s: rejected at %d:%d: %s\n", name, err.line, err.col,
               err.msg);
        free(src);
        return 0;
    }
    free(src);
    /* name.toml -> name.json */
    snprintf(path + strlen(path) - 5, 6, ".json");
    want = load_expected(path, why, sizeof why);
    got = to_json(root);
    toml_free(root);
    if (want == NULL) {
        printf("FAIL %s: %s\n", name, why);
        json_decref(got);
        return 0;
    }
    normalise(got);
    normalise(want);
    ok = json_equal(got, want);
    if (!ok) {
        printf("FAIL %s: values differ\n", name);
        print_json("got ", got);
        print_json("want", want);
    }
    json_decref(got);
    json_decref(want);
    return ok;
}

/* One invalid case: 1 if it is rejected. */
static int
run_invalid(const char *dir, const char *name, int verbose)
{
    struct toml_node *root;
    struct toml_error err;
    char path[8192];
    size_t len;
    char *src;
    int rc;

    join(path, sizeof path, dir, name);
    if ((src = slurp(path, &len)) == NULL) {
        printf("FAIL %s: cannot read\n", name);
        return 0;
    }
    rc = toml_parse(&root, src, len, &err);
    free(src);
    if (rc == 0) {
        printf("FAIL %s: accepted\n", name);
        toml_free(root);
        return 0;
    }
    if (rc != GW_EPARSE || err.msg[0] == '\0') {
        printf("FAIL %s: rc %d, message \"%s\"\n", name, rc, err.msg);
        return 0;
    }
    if (verbose)
        printf("ok   %s: %d:%d: %s\n", name, err.line, err.col, err.msg);
    return 1;
}

static void
test_vectors(void **state)
{
    const char *dir = vectors_dir(), *v = getenv("TOML_TEST_VERBOSE");
    int verbose = v && *v && strcmp(v, "0") != 0;
    int nvalid = 0, okvalid = 0, ninvalid = 0, okinvalid = 0;
    char list[8192], line[1024];
    size_t n;
    FILE *f;

    (void)state;
    join(list, sizeof list, dir, "files-toml-1.0.0");
    if ((f = fopen(list, "r")) == NULL)
        fail_msg("cannot open %s (set TOML_TEST_DIR)", list);
    while (fgets(line, sizeof line, f)) {
        n = strcspn(line, "\r\n");
        line[n] = '\0';
        if (n < 5 || strcmp(line + n - 5, ".toml") != 0)
            continue;                   /* the .json files of valid cases */
        if (strncmp(line, "valid/", 6) == 0) {
            nvalid++;
            okvalid += run_valid(dir, line);
        } else if (strncmp(line, "invalid/", 8) == 0) {
            ninvalid++;
            okinvalid += run_invalid(dir, line, verbose);
        }
    }
    fclose(f);
    printf("toml-test: %d/%d valid, %d/%d invalid, 0 skipped\n", okvalid,
           nvalid, okinvalid, ninvalid);
    assert_true(nvalid > 0 && ninvalid > 0);
    assert_int_equal(okvalid, nvalid);
    assert_int_equal(okinvalid, ninvalid);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_nul_in_strings),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_depth_cap),
        cmocka_unit_test(test_set_path),
        cmocka_unit_test(test_vectors),
    };

    setvbuf(stdout, NULL, _IOLBF, 0);   /* keep order with cmocka's stderr */
    return cmocka_run_group_tests(tests, NULL, NULL);
}

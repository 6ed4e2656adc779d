/*
 * test_mustache_spec.c -- runs the Mustache spec vectors (the JSON files
 * of github.com/mustache/spec) through templates/mustache.c: every case of
 * the core files, inheritance and dynamic names; lambdas are out of scope.
 * The directory is $MUSTACHE_SPEC_DIR, by default ../shared/vectors/mustache
 * relative to the repository root, where tests run. Prints one line per
 * case and a summary; exits non-zero when any case fails.
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

static const char *const spec_files[] = {
    "interpolation.json", "sections.json", "inverted.json", "comments.json",
    "partials.json", "delimiters.json", "~inheritance.json",
    "~dynamic-names.json",
};

static int total, passed;

static void
print_quoted(const char *label, const char *s)
{
    printf("        %s \"", label);
    for (; *s; s++) {
        if (*s == '\n')
            fputs("\\n", stdout);
        else if (*s == '\r')
            fputs("\\r", stdout);
        else if (*s == '\t')
            fputs("\\t", stdout);
        else
            putchar(*s);
    }
    puts("\"");
}

/* One case: 1 if it passes, else 0 with the reason printed. */
static int
run_case(const char *file, json_t *tc)
{
    const char *name = json_string_value(json_object_get(tc, "name"));
    const char *tpl = json_string_value(json_object_get(tc, "template"));
    const char *want = json_string_value(json_object_get(tc, "expected"));
    json_t *partials = json_object_get(tc, "partials"), *pv;
    struct mu_render_opts opts = { .escape = MU_ESC_HTML };
    struct mu_prog *prog = NULL, *pp;
    struct mu_lib *lib = mu_lib_new();
    struct mu_error err;
    struct buf out;
    const char *pname;
    int ok = 0, rc;

    buf_init(&out, 1 << 20);
    if (name == NULL || tpl == NULL || want == NULL || lib == NULL) {
        printf("  FAIL %s: malformed case\n", file);
        goto out;
    }
    json_object_foreach(partials, pname, pv) {
        const char *src = json_string_value(pv);

        if ((rc = mu_compile(&pp, src, strlen(src), &err)) < 0) {
            printf("  FAIL %s: %s: partial %s: %d:%d: %s\n", file, name, pname,
                   err.line, err.col, err.msg);
            goto out;
        }
        if (mu_lib_add(lib, pname, strlen(pname), pp) < 0)
            goto out;
    }
    opts.partial = mu_lib_partial;
    opts.partial_arg = lib;
    if ((rc = mu_compile(&prog, tpl, strlen(tpl), &err)) < 0) {
        printf("  FAIL %s: %s: compile %d:%d: %s\n", file, name, err.line,
               err.col, err.msg);
        goto out;
    }
    if ((rc = mu_render_json(prog, json_object_get(tc, "data"), &opts, &out,
                             &err)) < 0) {
        printf("  FAIL %s: %s: render: %s\n", file, name, err.msg);
        goto out;
    }
    ok = out.len == strlen(want) && memcmp(buf_cstr(&out), want, out.len) == 0;
    printf("  %s %s: %s\n", ok ? "ok  " : "FAIL", file, name);
    if (!ok) {
        print_quoted("template:", tpl);
        print_quoted("expected:", want);
        print_quoted("got:     ", buf_cstr(&out));
    }
out:
    buf_free(&out);
    mu_prog_free(prog);
    mu_lib_free(lib);
    return ok;
}

static void
test_spec_file(void **state)
{
    const char *file = *state, *dir = getenv("MUSTACHE_SPEC_DIR");
    char path[1024];
    json_error_t jerr;
    json_t *doc, *tests, *tc;
    size_t i;
    int fails = 0;

    if (dir == NULL || *dir == 0)
        dir = "../shared/vectors/mustache";
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    doc = json_load_file(path, 0, &jerr);
    if (doc == NULL)
        fail_msg("cannot load %s: %s", path, jerr.text);
    tests = json_object_get(doc, "tests");
    if (!json_is_array(tests) || json_array_size(tests) == 0) {
        json_decref(doc);
        fail_msg("%s has no tests", path);
    }
    json_array_foreach(tests, i, tc) {
        total++;
        if (run_case(file, tc))
            passed++;
        else
            fails++;
    }
    json_decref(doc);
    assert_int_equal(fails, 0);
}

int
main(void)
{
    struct CMUnitTest tests[sizeof(spec_files) / sizeof(spec_files[0])];
    size_t i;
    int failed;

    for (i = 0; i < sizeof(spec_files) / sizeof(spec_files[0]); i++) {
        memset(&tests[i], 0, sizeof(tests[i]));
        tests[i].name = spec_files[i];
        tests[i].test_func = test_spec_file;
        tests[i].initial_state = (void *)spec_files[i];
    }
    failed = _cmocka_run_group_tests("mustache_spec", tests, i, NULL, NULL);
    printf("mustache spec: %d/%d passed (lambdas out of scope)\n", passed,
           total);
    return failed || passed != total || total == 0;
}

/*
 * bench_mustache.c -- not a test: renders a 3 KB template with 10
 * variables (jansson data) in a loop, prints renders/s for 3 rounds and
 * their median, and counts malloc/calloc/realloc calls made during the
 * rounds (by interposing the allocator) to show a render allocates
 * nothing once the output buffer has grown.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "templates/mustache.h"

#define RENDERS 1000000

static unsigned long nalloc;

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

void *
malloc(size_t n)
{
    nalloc++;
    return __libc_malloc(n);
}

void *
calloc(size_t n, size_t size)
{
    nalloc++;
    return __libc_calloc(n, size);
}

void *
realloc(void *p, size_t n)
{
    nalloc++;
    return __libc_realloc(p, n);
}

void
free(void *p)
{
    __libc_free(p);
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

int
main(void)
{
    static const char *const vars[] = {
        "first_name", "last_name", "city", "offer", "code", "url",
        "expires", "plan", "points", "company",
    };
    json_t *data = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s}", "first_name", "Anna",
        "last_name", "M\xc3\xbcller", "city", "Berlin", "offer", "20% off",
        "code", "SPRING-27", "url", "https://example.org/o?c=1&u=2",
        "expires", "2027-03-03", "plan", "Gold", "points", 1250,
        "company", "Acme <GmbH>");
    struct mu_prog *prog;
    struct mu_error err;
    struct buf src, out;
    double rate[3];
    unsigned long before;
    size_t i;
    int r;

    buf_init(&src, 0);
    buf_puts(&src, "<html><body>\n");
    for (i = 0; i < 10; i++)
        buf_printf(&src, "<p class=\"c%zu\">Lorem ipsum dolor sit amet, "
                   "consectetur adipiscing elit, {{%s}} sed do eiusmod "
                   "tempor incididunt ut labore et dolore magna aliqua. Ut "
                   "enim ad minim veniam, quis nostrud exercitation ullamco "
                   "laboris nisi ut aliquip ex ea commodo consequat. Duis "
                   "aute irure dolor in reprehenderit.</p>\n", i, vars[i]);
    buf_puts(&src, "</body></html>\n");
    if (mu_compile(&prog, src.data, src.len, &err) < 0) {
        fprintf(stderr, "compile: %s\n", err.msg);
        return 1;
    }
    buf_init(&out, 0);
    if (mu_render_json(prog, data, NULL, &out, &err) < 0) {
        fprintf(stderr, "render: %s\n", err.msg);
        return 1;
    }
    /* non-zero here shows the counting works */
    printf("template %zu bytes, %zu variable tags, output %zu bytes, "
           "%lu allocations to set up\n", src.len, i, out.len, nalloc);
    before = nalloc;
    for (r = 0; r < 3; r++) {
        double t0 = now();

        for (i = 0; i < RENDERS; i++) {
            buf_reset(&out);
            if (mu_render_json(prog, data, NULL, &out, &err) < 0)
                return 1;
        }
        rate[r] = RENDERS / (now() - t0);
        printf("round %d: %.0f renders/s\n", r + 1, rate[r]);
    }
    printf("allocations during %d renders: %lu\n", 3 * RENDERS,
           nalloc - before);
    qsort(rate, 3, sizeof(rate[0]), cmp_double);
    printf("median: %.0f renders/s (%.2f us/render)\n", rate[1],
           1e6 / rate[1]);
    buf_free(&out);
    buf_free(&src);
    mu_prog_free(prog);
    json_decref(data);
    return nalloc != before;
}

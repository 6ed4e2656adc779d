/*
 * bench_template.c -- not a test: renders a template set through
 * tpl_render() in a loop and prints renders/s (3 rounds and their median)
 * plus the malloc/calloc/realloc calls made during the rounds (the
 * allocator is interposed), for:
 *   html    the 3 KB html part alone (10 variables from every level of the
 *           lookup chain, {{today}} in the recipient's zone, one section)
 *   email   subject + html + text/plain derived with libxml2
 *   track   email with click tracking and the open pixel (libxml2 twice)
 * The html figure is the hot path: it must allocate nothing once warm.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "templates/template.h"

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

static int
track(const char *url, struct buf *out, void *arg)
{
    (void)arg;
    return buf_printf(out, "https://gw.example/c/tok?u=%zu", strlen(url));
}

/* 3 rounds of n renders; prints and returns the median renders/s. */
static double
bench(const char *label, const struct tpl *t, const struct tpl_data *d,
      const struct tpl_render_opts *o, struct tpl_out *out, long n)
{
    struct tpl_error err;
    double rate[3];
    unsigned long before;
    long i;
    int r;

    if (tpl_render(t, TPL_EMAIL, d, o, out, &err) < 0) {   /* warm up */
        fprintf(stderr, "render: %s\n", err.msg);
        exit(1);
    }
    before = nalloc;
    for (r = 0; r < 3; r++) {
        double t0 = now();

        for (i = 0; i < n; i++)
            if (tpl_render(t, TPL_EMAIL, d, o, out, &err) < 0)
                exit(1);
        rate[r] = (double)n / (now() - t0);
    }
    qsort(rate, 3, sizeof(rate[0]), cmp_double);
    printf("%-6s %9.0f renders/s (%.2f us/render; rounds %.0f %.0f %.0f), "
           "%lu allocations in %ld renders\n", label, rate[1], 1e6 / rate[1],
           rate[0], rate[1], rate[2], nalloc - before, 3 * n);
    return (double)(nalloc - before);
}

int
main(void)
{
    static const char *const lorem =
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do "
        "eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim "
        "ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut "
        "aliquip ex ea commodo consequat. Duis aute irure dolor in "
        "reprehenderit.";
    static const char *const vars[] = {
        "first_name", "plan", "email", "customer_id", "offer", "code",
        "expires", "unsubscribe_url", "message_id", "today",
    };
    json_t *recipient = json_loads(
        "{\"customer_id\":\"c0042\",\"email\":\"anna.mueller@example.org\","
        "\"tz\":\"Europe/Berlin\",\"vars\":{\"first_name\":\"Anna\","
        "\"plan\":\"Gold\",\"items\":[{\"name\":\"Rain jacket\",\"price\":"
        "\"126 EUR\"},{\"name\":\"Boots\",\"price\":\"147 EUR\"},{\"name\":"
        "\"Socks\",\"price\":\"18 EUR\"}]}}", 0, NULL);
    json_t *cvars = json_loads(
        "{\"offer\":\"20% off\",\"code\":\"SPRING-27\",\"expires\":"
        "\"31 March\"}", 0, NULL);
    struct tpl_data d = {
        .recipient = recipient, .vars = cvars,
        .unsubscribe_url = "https://gw.example/u/eyJtIjoiYzAwNDIifQ",
        .message_id = "spring-27:c0042:email", .campaign = "spring-27",
    };
    struct tpl_render_opts html_only = { .parts = 1u << TPL_P_HTML };
    struct tpl_render_opts tracking = {
        .link_cb = track, .pixel_url = "https://gw.example/o/tok",
    };
    struct tpl_field f[2];
    struct tpl_error err;
    struct tpl_out out;
    struct tpl *t;
    struct buf src;
    double html_allocs;
    size_t i;

    buf_init(&src, 0);
    buf_puts(&src, "<html><body>\n");
    for (i = 0; i < 10; i++)
        buf_printf(&src, "<p class=\"c%zu\">%.*s {{%s}} %s</p>\n", i,
                   (int)(i % 2 ? 140 : 128), lorem, vars[i], lorem + 150);
    buf_puts(&src, "<ul>{{#items}}<li><a href=\"https://shop.example/p?c="
                   "{{customer_id}}\">{{name}}</a>: {{price}}</li>{{/items}}"
                   "</ul>\n</body></html>\n");
    f[0].name = "html";
    f[0].data = src.data;
    f[0].len = src.len;
    f[1].name = "subject";
    f[1].data = "{{first_name}}, {{offer}} on your {{plan}} plan";
    f[1].len = strlen(f[1].data);
    if (tpl_load_fields(&t, "bench", f, 2, &err) < 0) {
        fprintf(stderr, "load: %s\n", err.msg);
        return 1;
    }
    tpl_out_init(&out, 0);
    tpl_render(t, TPL_EMAIL, &d, &html_only, &out, &err);
    printf("html part: template %zu bytes, 10 variables + 1 section "
           "(3 items), output %zu bytes\n", src.len, out.html.len);
    html_allocs = bench("html", t, &d, &html_only, &out, 1000000);
    bench("email", t, &d, NULL, &out, 5000);
    bench("track", t, &d, &tracking, &out, 5000);
    tpl_out_free(&out);
    tpl_free(t);
    buf_free(&src);
    json_decref(recipient);
    json_decref(cvars);
    return html_allocs != 0;
}

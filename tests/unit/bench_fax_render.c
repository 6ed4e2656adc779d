/*
 * bench_fax_render.c -- throughput of the fax page renderer
 * (channels/fax_render.c) on a realistic two-page fax: a PNG logo, a
 * heading, paragraphs, a 4-column table of 30 rows and the opt-out notice
 * on page 1. Renders it N times on one thread, then on 2 threads at once,
 * and prints renders/s, ms per render (wall and CPU) and the PDF size.
 * Usage: build/bench/bench_fax_render [N]   (default 2000)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cairo.h>

#include "buf.h"
#include "channels/fax_render.h"

static struct buf markup;
static unsigned char *logo;
static size_t logo_len;
static struct content_image images[1];
static struct fax_page_opts opts;

static double
now(clockid_t clk)
{
    struct timespec ts;

    clock_gettime(clk, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static cairo_status_t
png_write(void *closure, const unsigned char *data, unsigned int len)
{
    return buf_append(closure, data, len) < 0 ? CAIRO_STATUS_WRITE_ERROR
                                              : CAIRO_STATUS_SUCCESS;
}

/* A 360x90 logo: a frame, a filled square and a word. */
static void
make_logo(void)
{
    cairo_surface_t *s =
        cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 360, 90);
    cairo_t *cr = cairo_create(s);
    struct buf b;

    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 4);
    cairo_rectangle(cr, 4, 4, 352, 82);
    cairo_stroke(cr);
    cairo_rectangle(cr, 16, 16, 58, 58);
    cairo_fill(cr);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 44);
    cairo_move_to(cr, 92, 62);
    cairo_show_text(cr, "ACME Ins.");
    cairo_destroy(cr);
    buf_init(&b, 0);
    cairo_surface_write_to_png_stream(s, png_write, &b);
    cairo_surface_destroy(s);
    logo = (unsigned char *)buf_steal(&b, &logo_len);
}

static void
make_markup(void)
{
    buf_init(&markup, 0);
    buf_puts(&markup,
             "<html><body><img src=\"logo.png\" width=\"240\">"
             "<h1>Your policy renewal, Jane Doe</h1>"
             "<p>Dear <b>Jane Doe</b>,</p>"
             "<p>Thank you for being with ACME Insurance since 2014. Your "
             "home policy <b>HP-2291-7781</b> renews on <b>1 June 2025</b>. "
             "The table below lists the cover and the premium for each item "
             "of the coming year; nothing needs doing if it is right. Should "
             "anything have changed, call us on 0800 555 0199 and we will "
             "update your cover the same day.</p>"
             "<h2>Your cover</h2><table><thead><tr><th>Item</th>"
             "<th>Cover</th><th align=\"right\">Sum insured</th>"
             "<th align=\"right\">Premium</th></tr></thead><tbody>");
    for (int i = 1; i <= 30; i++)
        buf_printf(&markup,
                   "<tr><td>Item %d: contents of room %d</td>"
                   "<td>%s</td><td align=\"right\">%d,000.00</td>"
                   "<td align=\"right\">%d.%02d</td></tr>",
                   i, i, i % 3 ? "Accidental damage" : "Fire, theft, flood",
                   5 * i, 10 + i, i * 7 % 100);
    buf_puts(&markup,
             "</tbody></table>"
             "<p>The premium is collected by direct debit in 12 monthly "
             "instalments. <i>Your no-claims discount of 5 years is "
             "protected.</i></p>"
             "<ul><li>Keep this fax with your policy documents.</li>"
             "<li>Tell us about any change of address.</li></ul>"
             "<p>Yours sincerely,<br>Customer Care, ACME Insurance</p>"
             "</body></html>");
    images[0] = (struct content_image){ "logo.png", "image/png", "logo1", logo,
                                        logo_len };
    opts.paper = FAX_A4;
    opts.template_name = "renewal";
    opts.notice = "You may opt out of future faxes from ACME Insurance: call "
                  "0800 555 0100, fax 0800 555 0101 (both free, any time) or "
                  "visit https://acme.example/optout/7f3a9c. We will honour "
                  "your request within 30 days; failing to do so is unlawful.";
}

struct job {
    int n, pages, failed;
    size_t bytes;
};

static void *
run(void *arg)
{
    struct job *j = arg;
    char err[256];

    for (int i = 0; i < j->n; i++) {
        struct fax_doc d;
        if (fax_render(markup.data, markup.len, images, 1, &opts, &d, err,
                       sizeof err) < 0) {
            fprintf(stderr, "bench_fax_render: %s\n", err);
            j->failed = 1;
            break;
        }
        j->pages = d.pages;
        j->bytes = d.len;
        fax_doc_free(&d);
    }
    fax_render_thread_done();
    return NULL;
}

int
main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    struct job one = { 20, 0, 0, 0 }, two[2];
    pthread_t th[2];
    double t0, c0, wall, cpu;

    if (n < 2)
        n = 2;
    make_logo();
    make_markup();
    run(&one); /* warm up: fontconfig, the font map */
    if (one.failed)
        return 1;
    printf("fax: %d pages, %zu bytes of PDF, %zu bytes of markup, "
           "logo %zu bytes\n",
           one.pages, one.bytes, markup.len, logo_len);

    one.n = n;
    t0 = now(CLOCK_MONOTONIC);
    c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    run(&one);
    wall = now(CLOCK_MONOTONIC) - t0;
    cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    printf("1 thread:  %d renders in %.2f s: %.0f renders/s, %.2f ms/render "
           "(cpu %.2f ms)\n",
           n, wall, n / wall, wall * 1000 / n, cpu * 1000 / n);

    t0 = now(CLOCK_MONOTONIC);
    c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < 2; i++) {
        two[i] = (struct job){ n / 2, 0, 0, 0 };
        pthread_create(&th[i], NULL, run, &two[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    wall = now(CLOCK_MONOTONIC) - t0;
    cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    printf("2 threads: %d renders in %.2f s: %.0f renders/s, %.2f ms/render "
           "(cpu %.2f ms)\n",
           2 * (n / 2), wall, 2 * (n / 2) / wall, wall * 1000 / (2 * (n / 2)),
           cpu * 1000 / (2 * (n / 2)));

    free(logo);
    buf_free(&markup);
    return one.failed || two[0].failed || two[1].failed;
}

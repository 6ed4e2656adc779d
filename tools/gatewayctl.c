/*
 * gatewayctl.c -- the operator and marketer CLI. For now one command:
 * `gatewayctl render` previews what a recipient would get from a template
 * folder, with the same code the daemon renders with (templates/).
 * Exit status: 0 done, 1 template or render error, 2 usage or bad input.
 */
#include <errno.h>
#include <getopt.h>
#include <glib.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "err.h"
#include "templates/template.h"

#define EXIT_TEMPLATE 1
#define EXIT_USAGE    2

static const char usage_text[] =
    "usage: gatewayctl render --template NAME|DIR --data FILE.json\n"
    "                         [--part subject|html|text|sms|fax]\n"
    "                         [--templates-dir DIR]\n"
    "       gatewayctl --help\n"
    "\n"
    "render  prints what one recipient would get from a template set.\n"
    "  --template NAME|DIR  a folder (a path with '/' or an existing\n"
    "                       directory), else NAME under --templates-dir\n"
    "  --templates-dir DIR  default examples/templates\n"
    "  --data FILE.json     {\"recipient\": {...}, \"vars\": {...},\n"
    "                       \"campaign\", \"channel\", \"unsubscribe_url\",\n"
    "                       \"message_id\",\n"
    "                       \"now\": \"2027-03-01T09:00:00Z\"}\n"
    "                       (all optional; previews use placeholders for\n"
    "                       unsubscribe_url and message_id)\n"
    "  --part P             print only that part, without a header; text\n"
    "                       is derived from html when the set has none\n"
    "Without --part every part of the set is printed under a\n"
    "'--- name ---' header, then its inline images.\n"
    "Exit status: 0 ok, 1 template or render error, 2 usage or bad data.\n";

static int
usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "gatewayctl: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see gatewayctl --help)\n");
    return EXIT_USAGE;
}

static int
is_dir(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The last path component of dir without trailing slashes, into out. */
static void
base_name(const char *dir, char *out, size_t len)
{
    size_t n = strlen(dir);
    const char *s;

    while (n > 1 && dir[n - 1] == '/')
        n--;
    for (s = dir + n; s > dir && s[-1] != '/'; s--)
        ;
    snprintf(out, len, "%.*s", (int)(n - (size_t)(s - dir)), s);
}

struct preview {
    json_t *root;               /* the data file */
    struct tpl_data d;
};

/* Read the data file; 0 or EXIT_USAGE with a message printed. */
static int
load_data(const char *file, struct preview *p)
{
    static const char *const keys[] = {
        "recipient", "vars", "campaign", "channel", "unsubscribe_url",
        "message_id", "now", NULL,
    };
    json_error_t je;
    const char *k;
    json_t *v;
    size_t i;

    memset(p, 0, sizeof(*p));
    p->root = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
    if (p->root == NULL) {
        fprintf(stderr, "gatewayctl: %s:%d:%d: %s\n", file, je.line,
                je.column, je.text);
        return EXIT_USAGE;
    }
    if (!json_is_object(p->root)) {
        fprintf(stderr, "gatewayctl: %s: not a JSON object\n", file);
        return EXIT_USAGE;
    }
    json_object_foreach(p->root, k, v) {
        for (i = 0; keys[i] && strcmp(keys[i], k) != 0; i++)
            ;
        if (keys[i] == NULL) {
            fprintf(stderr, "gatewayctl: %s: unknown key '%s' (expected "
                    "recipient, vars, campaign, channel, unsubscribe_url, "
                    "message_id, now)\n", file, k);
            return EXIT_USAGE;
        }
        if (i < 2 ? !json_is_object(v) : !json_is_string(v)) {
            fprintf(stderr, "gatewayctl: %s: '%s' must be %s\n", file, k,
                    i < 2 ? "an object" : "a string");
            return EXIT_USAGE;
        }
    }
    p->d.recipient = json_object_get(p->root, "recipient");
    p->d.vars = json_object_get(p->root, "vars");
    p->d.campaign = json_string_value(json_object_get(p->root, "campaign"));
    p->d.channel = json_string_value(json_object_get(p->root, "channel"));
    p->d.unsubscribe_url =
        json_string_value(json_object_get(p->root, "unsubscribe_url"));
    p->d.message_id =
        json_string_value(json_object_get(p->root, "message_id"));
    if (p->d.unsubscribe_url == NULL)
        p->d.unsubscribe_url = "https://unsubscribe.invalid/u/preview";
    if (p->d.message_id == NULL)
        p->d.message_id = "preview";
    if (p->d.campaign == NULL)
        p->d.campaign = "preview";
    if ((k = json_string_value(json_object_get(p->root, "now"))) != NULL) {
        GDateTime *dt = g_date_time_new_from_iso8601(k, NULL);

        if (dt == NULL) {
            fprintf(stderr, "gatewayctl: %s: 'now' is not an ISO 8601 time "
                    "with a zone: %s\n", file, k);
            return EXIT_USAGE;
        }
        p->d.now_ms = g_date_time_to_unix(dt) * 1000 +
                      g_date_time_get_microsecond(dt) / 1000;
        if (p->d.now_ms == 0)
            p->d.now_ms = 1;
        g_date_time_unref(dt);
    }
    return 0;
}

static void
print_part(const char *title, const struct buf *b, int header)
{
    if (header)
        printf("--- %s ---\n", title);
    fwrite(b->data ? b->data : "", 1, b->len, stdout);
    if (b->len == 0 || b->data[b->len - 1] != '\n')
        putchar('\n');
}

static int
render_failed(const struct tpl_error *e)
{
    char msg[512];

    fprintf(stderr, "gatewayctl: %s\n", tpl_error_format(e, msg, sizeof(msg)));
    return EXIT_TEMPLATE;
}

static int
cmd_render(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "template", required_argument, NULL, 't' },
        { "data", required_argument, NULL, 'd' },
        { "part", required_argument, NULL, 'p' },
        { "templates-dir", required_argument, NULL, 'D' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *tname = NULL, *data = NULL, *part = NULL;
    const char *tdir = "examples/templates";
    struct tpl_render_opts ro = { 0 };
    struct tpl_error err;
    struct tpl_out out;
    struct preview pv = { 0 };
    struct tpl *t = NULL;
    char path[4096], name[256];
    int c, rc = 0, p = -1;
    size_t i;

    optind = 1;
    while ((c = getopt_long(argc, argv, "t:d:p:D:h", longopts, NULL)) != -1) {
        switch (c) {
        case 't': tname = optarg; break;
        case 'd': data = optarg; break;
        case 'p': part = optarg; break;
        case 'D': tdir = optarg; break;
        case 'h': fputs(usage_text, stdout); return 0;
        default:  return usage_error("%s", "bad option");
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (tname == NULL || data == NULL)
        return usage_error("%s", "render needs --template and --data");
    if (part) {
        for (p = 0; p < TPL_P_COUNT; p++)
            if (strcmp(part, tpl_part_name(p)) == 0)
                break;
        if (p == TPL_P_COUNT)
            return usage_error("unknown part '%s' (subject, html, text, sms "
                               "or fax)", part);
    }
    if (strchr(tname, '/') || is_dir(tname)) {
        snprintf(path, sizeof(path), "%s", tname);
        base_name(tname, name, sizeof(name));
    } else {
        snprintf(path, sizeof(path), "%s/%s", tdir, tname);
        snprintf(name, sizeof(name), "%s", tname);
    }
    if ((rc = load_data(data, &pv)) != 0)
        goto out;
    if (tpl_load_dir(&t, name, path, &err) < 0) {
        rc = render_failed(&err);
        goto out;
    }
    tpl_out_init(&out, 0);
    if (p >= 0) {
        enum tpl_channel ch = p == TPL_P_SMS ? TPL_SMS
                            : p == TPL_P_FAX ? TPL_FAX : TPL_EMAIL;
        const struct buf *bufs[TPL_P_COUNT] = {
            &out.subject, &out.html, &out.text, &out.sms, &out.fax,
        };

        if (!tpl_has(t, p) && !(p == TPL_P_TEXT && tpl_has(t, TPL_P_HTML))) {
            fprintf(stderr, "gatewayctl: template %s has no %s part\n", name,
                    part);
            rc = EXIT_TEMPLATE;
        } else {
            ro.parts = 1u << p;
            if (tpl_render(t, ch, &pv.d, &ro, &out, &err) < 0)
                rc = render_failed(&err);
            else
                print_part(part, bufs[p], 0);
        }
    } else {
        int email = tpl_has(t, TPL_P_HTML) || tpl_has(t, TPL_P_TEXT);

        /* the email parts the set has (a subject-less set previews) */
        ro.parts = (1u << TPL_P_TEXT) |
                   (tpl_has(t, TPL_P_SUBJECT) ? 1u << TPL_P_SUBJECT : 0) |
                   (tpl_has(t, TPL_P_HTML) ? 1u << TPL_P_HTML : 0);
        if (email && tpl_render(t, TPL_EMAIL, &pv.d, &ro, &out, &err) < 0)
            rc = render_failed(&err);
        if (rc == 0 && email) {
            if (tpl_has(t, TPL_P_SUBJECT))
                print_part("subject", &out.subject, 1);
            if (tpl_has(t, TPL_P_HTML))
                print_part("html", &out.html, 1);
            print_part(tpl_has(t, TPL_P_TEXT) ? "text"
                                               : "text (derived from html)",
                       &out.text, 1);
        }
        if (rc == 0 && tpl_has(t, TPL_P_SMS)) {
            if (tpl_render(t, TPL_SMS, &pv.d, NULL, &out, &err) < 0)
                rc = render_failed(&err);
            else
                print_part("sms", &out.sms, 1);
        }
        if (rc == 0 && tpl_has(t, TPL_P_FAX)) {
            if (tpl_render(t, TPL_FAX, &pv.d, NULL, &out, &err) < 0)
                rc = render_failed(&err);
            else
                print_part("fax", &out.fax, 1);
        }
        if (rc == 0 && tpl_image_count(t)) {
            printf("--- images ---\n");
            for (i = 0; i < tpl_image_count(t); i++) {
                const struct tpl_image *im = tpl_image_at(t, i);

                printf("%s  %s  %zu bytes  cid:%s\n", im->name,
                       im->content_type, im->len, im->cid);
            }
        }
    }
    tpl_out_free(&out);
out:
    tpl_free(t);
    json_decref(pv.root);
    return rc;
}

int
main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("%s", "missing command");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(argv[1], "render") == 0)
        return cmd_render(argc - 1, argv + 1);
    return usage_error("unknown command '%s'", argv[1]);
}

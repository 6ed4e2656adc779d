/*
 * template.h -- template sets: the subject, HTML, text, SMS and fax parts
 * of one marketing template plus its inline images, compiled once (from a
 * folder or from the fields of a Redis hash gw:tpl:NAME) and rendered for
 * one recipient into the content each channel sends.
 *
 * Rendering looks names up through one chain, closest first:
 *   1. campaign_vars  the reserved name: {{{campaign_vars.banner}}} always
 *                     reads the campaign's vars and nothing can shadow it
 *   2. recipient.vars
 *   3. contact fields customer_id email phone fax name tz locale
 *   4. campaign vars  (or a triggered message's vars)
 *   5. built-ins      unsubscribe_url message_id campaign channel today
 * HTML and fax parts are HTML-escaped; subject, text and SMS are raw.
 * Recipient data can never reach an HTML or fax part unescaped: raw tags
 * ({{{x}}}, {{& x}}) are refused at load time there unless they name
 * campaign_vars.*, and recipient values cannot hold a "campaign_vars" key.
 *
 * HTML work (text/plain derivation, link rewriting, the open pixel) is
 * done with libxml2 in html.c; see tpl_html_to_text() for the text rules.
 */
#ifndef GW_TEMPLATE_H
#define GW_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct json_t;                      /* jansson; borrowed, never kept */
struct tpl;                         /* a compiled template set */
struct tpl_tzcache;                 /* time zones kept by a struct tpl_out */

/* Limits. Going over one fails the load with GW_ETOOBIG. */
#define TPL_MAX_PART     (1024u * 1024)      /* bytes of one file or field */
#define TPL_MAX_SET      (16u * 1024 * 1024) /* bytes of all of them */
#define TPL_MAX_IMAGES   64
#define TPL_MAX_NAME     100                 /* bytes of an image file name */
#define TPL_TEXT_WIDTH   78                  /* derived text/plain columns */
#define TPL_OUT_MAX      (4u * 1024 * 1024)  /* tpl_out_init(o, 0) */

enum tpl_part {
    TPL_P_SUBJECT,                  /* subject.txt  | field subject */
    TPL_P_HTML,                     /* body.html    | field html */
    TPL_P_TEXT,                     /* body.txt     | field text */
    TPL_P_SMS,                      /* sms.txt      | field sms */
    TPL_P_FAX,                      /* fax.html     | field fax (markup) */
    TPL_P_COUNT
};

enum tpl_channel { TPL_EMAIL, TPL_SMS, TPL_FAX };

/* Where and why a load or render failed. Empty strings / 0: n/a. */
struct tpl_error {
    char template[128];
    char part[64];                  /* "html", "image:logo.png", ... */
    int  line, col;                 /* 1-based; col counts UTF-8 chars */
    char msg[256];
};

/* An inline image of a set. Everything belongs to the set. */
struct tpl_image {
    const char *name;               /* "logo.png" */
    const char *content_type;       /* "image/png" | "image/jpeg" */
    const char *cid;                /* "logo.png.1a2b3c4d@gateway": the
                                       html says src="cid:<cid>", the MIME
                                       part says Content-ID: <<cid>>; the
                                       same for a set name + file name */
    const unsigned char *data;
    size_t len;
};

/* One field of a Redis hash gw:tpl:NAME (all borrowed). */
struct tpl_field {
    const char *name;               /* NUL-terminated */
    const void *data;
    size_t len;
};

/*
 * Load the folder dir (borrowed) as template set name. Files: subject.txt,
 * body.html, body.txt, sms.txt, fax.html, an optional file strict (empty,
 * "true" or "false"; empty means true) and images *.png, *.jpg, *.jpeg
 * (checked by magic bytes). Names starting with '.' are ignored; any
 * other name is an error. On success *out is new (tpl_free). Returns 0,
 * GW_EPARSE (syntax, unknown part, bad image, ...), GW_ETOOBIG, -errno;
 * err (may be NULL) says where.
 */
int tpl_load_dir(struct tpl **out, const char *name, const char *dir,
                 struct tpl_error *err);

/*
 * The same from the fields of gw:tpl:NAME: subject, html, text, sms, fax,
 * strict ("true" | "false"), version (ignored here) and image:<file> with
 * the raw bytes of <file>.png|jpg|jpeg. fields is borrowed: the set keeps
 * copies. Unknown or repeated fields are errors.
 */
int tpl_load_fields(struct tpl **out, const char *name,
                    const struct tpl_field *fields, size_t n,
                    struct tpl_error *err);

void tpl_free(struct tpl *t);

/* Accessors. tpl_has(t, p): does the set have part p. */
const char *tpl_name(const struct tpl *t);
int tpl_has(const struct tpl *t, enum tpl_part p);
int tpl_strict(const struct tpl *t);
size_t tpl_image_count(const struct tpl *t);
const struct tpl_image *tpl_image_at(const struct tpl *t, size_t i);

/* The data of one render; every pointer is borrowed for the call. */
struct tpl_data {
    const struct json_t *recipient; /* object: vars, contact fields, tz */
    const struct json_t *vars;      /* campaign or message vars */
    const char *unsubscribe_url;    /* built-ins; NULL = missing */
    const char *message_id;
    const char *campaign;
    const char *channel;            /* NULL: "email" | "sms" | "fax" */
    int64_t now_ms;                 /* for {{today}}; 0 = the clock */
};

/* Click tracking: put the URL to use instead of url into out (leaving
 * out empty keeps url). Return 0, or < 0 to fail the render. */
typedef int tpl_link_cb(const char *url, struct buf *out, void *arg);

struct tpl_render_opts {
    unsigned parts;                 /* bits (1u << enum tpl_part); 0 = all
                                       the channel uses */
    tpl_link_cb *link_cb;           /* rewrite every http(s) <a href> */
    void *link_arg;
    const char *pixel_url;          /* append an open pixel to <body> */
    unsigned long max_steps;        /* per part; 0 = the engine default */
};

/* A render's output, reused between renders (no allocation once warm). */
struct tpl_out {
    struct buf subject, html, text, sms, fax;
    const struct tpl_image *images[TPL_MAX_IMAGES]; /* into the set */
    size_t nimages;
    struct buf scratch;             /* internal */
    struct tpl_tzcache *tz;         /* internal */
};

/* Every buffer capped at max bytes (0: TPL_OUT_MAX). */
void tpl_out_init(struct tpl_out *o, size_t max);
void tpl_out_reset(struct tpl_out *o);
void tpl_out_free(struct tpl_out *o);

/*
 * Render t for channel ch into out (reset first). TPL_EMAIL fills
 * subject, html and text (derived from the rendered html when the set
 * has no text part) and lists the images the html uses; TPL_SMS fills
 * sms; TPL_FAX fills fax and its images. o may be NULL. With link_cb or
 * pixel_url the html is parsed and serialised again by libxml2 (after the
 * text is derived, so text keeps the original URLs); without them the
 * rendered bytes are kept as they are and nothing is allocated once out
 * is warm. Returns 0; GW_ENOTFOUND (strict: missing variable; or the set
 * lacks the channel's part), GW_EINVAL (CR, LF or NUL in the subject),
 * GW_ETOOBIG, -ENOMEM, or what link_cb returned; err says which part.
 */
int tpl_render(const struct tpl *t, enum tpl_channel ch,
               const struct tpl_data *d, const struct tpl_render_opts *o,
               struct tpl_out *out, struct tpl_error *err);

/*
 * text/plain from len bytes of HTML (UTF-8, checked), appended to out.
 * Skips head, script, style, elements hidden by display:none or the
 * hidden attribute, and comments. Paragraphs, divs, lists, tables and
 * headings are blocks with one blank line between; h1 is underlined with
 * '=' and h2 with '-'; br ends a line; list items start with "- " (ol:
 * "1. "), nested lists indent two more spaces; links read "text <url>",
 * or "url" when the text is the url, mailto: and tel: show the address;
 * images give their alt text; table cells are joined by " | ", a row of
 * two or more inline cells ends a line and other rows are blocks.
 * Whitespace collapses, &nbsp; joins words, invisible spacers (U+200B,
 * U+200C, U+034F, soft hyphen, ...) are dropped. Lines wrap at 78
 * characters (code points) on spaces and between CJK characters; a word
 * longer than that (a URL) gets a line of its own. No trailing spaces;
 * the result ends with one newline (or is empty). Returns 0, GW_EINVAL
 * (invalid UTF-8), GW_ETOOBIG, -ENOMEM.
 */
int tpl_html_to_text(const char *html, size_t len, struct buf *out,
                     struct tpl_error *err);

/*
 * Rewrite len bytes of HTML: every <a href> with an http or https URL
 * through o->link_cb, and an <img src=pixel_url width=1 height=1 alt="">
 * at the end of <body>. The result (serialised by libxml2: non-ASCII as
 * entities unless the document declares a charset) is appended to out.
 * text, when not NULL, gets tpl_html_to_text() of the original, from the
 * same parse.
 */
int tpl_html_rewrite(const char *html, size_t len,
                     const struct tpl_render_opts *o, struct buf *out,
                     struct buf *text, struct tpl_error *err);

/* "template T, part P, line L, col C: MSG" into buf (always terminated);
 * returns buf. */
const char *tpl_error_format(const struct tpl_error *e, char *buf,
                             size_t len);

/* "subject", "html", ... */
const char *tpl_part_name(enum tpl_part p);

#endif

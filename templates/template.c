/*
 * template.c -- template sets (template.h): loading a folder or the fields
 * of gw:tpl:NAME, checking every part (UTF-8, Mustache syntax, no raw
 * recipient data in HTML, images present), and rendering a set for one
 * recipient through the lookup chain, into reusable capped buffers.
 *
 * Relative <img src> in the html and fax parts are turned into cid:
 * references at load time, on the marketer's template source (a careful
 * scan of <img ...> tags, outside comments), so the hot path keeps the
 * rendered bytes as they are; only link rewriting goes through libxml2.
 */
#include "template.h"
#include "html_int.h"
#include "mustache.h"
#include "utf8.h"
#include "err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RESERVED     "campaign_vars"
#define RESERVED_LEN (sizeof(RESERVED) - 1)
#define MAX_FILES    (TPL_MAX_IMAGES + 16)
#define TZ_SLOTS     16

struct tpl {
    char *name;
    int strict;
    struct mu_prog *prog[TPL_P_COUNT];
    uint64_t uses[TPL_P_COUNT];     /* images referenced by html and fax */
    struct tpl_image images[TPL_MAX_IMAGES];
    size_t nimages;
};

static const char *const part_names[TPL_P_COUNT] = {
    "subject", "html", "text", "sms", "fax",
};

static const char *const part_files[TPL_P_COUNT] = {
    "subject.txt", "body.html", "body.txt", "sms.txt", "fax.html",
};

const char *
tpl_part_name(enum tpl_part p)
{
    return (unsigned)p < TPL_P_COUNT ? part_names[p] : "?";
}

/* ---- errors and UTF-8 ------------------------------------------------- */

void
tpl_err_set(struct tpl_error *e, const char *part, int line, int col,
            const char *fmt, ...)
{
    va_list ap;

    if (e == NULL)
        return;
    snprintf(e->part, sizeof(e->part), "%s", part ? part : "");
    e->line = line;
    e->col = col;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
}

static void
err_begin(struct tpl_error *e, const char *name)
{
    if (e == NULL)
        return;
    memset(e, 0, sizeof(*e));
    snprintf(e->template, sizeof(e->template), "%s", name ? name : "");
}

const char *
tpl_error_format(const struct tpl_error *e, char *buf, size_t len)
{
    size_t n = 0;

    if (len == 0)
        return buf;
    buf[0] = 0;
#define ADD(...)                                                            \
    do {                                                                    \
        int k_ = snprintf(buf + n, len - n, __VA_ARGS__);                   \
        n = k_ < 0 ? n : n + (size_t)k_ >= len ? len - 1 : n + (size_t)k_;  \
    } while (0)
    ADD("template %s", e->template[0] ? e->template : "?");
    if (e->part[0])
        ADD(", part %s", e->part);
    if (e->line > 0)
        ADD(", line %d, col %d", e->line, e->col);
    ADD(": %s", e->msg[0] ? e->msg : "error");
#undef ADD
    return buf;
}

int
tpl_utf8_check(const char *s, size_t len, size_t *bad)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n;
    uint32_t cp;

    while (i < len) {
        if ((n = utf8_decode(p + i, len - i, &cp)) == 0) {
            if (bad)
                *bad = i;
            return -1;
        }
        i += n;
    }
    return 0;
}

void
tpl_line_col(const char *s, size_t off, int *line, int *col)
{
    size_t i;
    int l = 1, c = 1;

    for (i = 0; i < off; i++) {
        if (s[i] == '\n')
            l++, c = 1;
        else if (((unsigned char)s[i] & 0xc0) != 0x80)
            c++;
    }
    *line = l;
    *col = c;
}

/* ---- building a set --------------------------------------------------- */

void
tpl_free(struct tpl *t)
{
    size_t i;

    if (t == NULL)
        return;
    for (i = 0; i < TPL_P_COUNT; i++)
        mu_prog_free(t->prog[i]);
    for (i = 0; i < t->nimages; i++) {
        free((char *)t->images[i].name);
        free((char *)t->images[i].cid);
        free((void *)t->images[i].data);
    }
    free(t->name);
    free(t);
}

const char *
tpl_name(const struct tpl *t)
{
    return t->name;
}

int
tpl_has(const struct tpl *t, enum tpl_part p)
{
    return (unsigned)p < TPL_P_COUNT && t->prog[p] != NULL;
}

int
tpl_strict(const struct tpl *t)
{
    return t->strict;
}

size_t
tpl_image_count(const struct tpl *t)
{
    return t->nimages;
}

const struct tpl_image *
tpl_image_at(const struct tpl *t, size_t i)
{
    return i < t->nimages ? &t->images[i] : NULL;
}

/* Image file names stay within [A-Za-z0-9._-] so they are safe in a
 * Content-ID, a MIME header and an attribute. NULL or the content type. */
static const char *
image_type(const char *file, size_t len)
{
    size_t i;

    if (len == 0 || len > TPL_MAX_NAME || file[0] == '.')
        return NULL;
    for (i = 0; i < len; i++) {
        char c = file[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return NULL;
    }
    if (len > 4 && strncasecmp(file + len - 4, ".png", 4) == 0)
        return "image/png";
    if ((len > 4 && strncasecmp(file + len - 4, ".jpg", 4) == 0) ||
        (len > 5 && strncasecmp(file + len - 5, ".jpeg", 5) == 0))
        return "image/jpeg";
    return NULL;
}

/* Does the file name look like an image (right extension)? */
static int
image_ext(const char *file)
{
    size_t len = strlen(file);

    return (len > 4 && (strcasecmp(file + len - 4, ".png") == 0 ||
                        strcasecmp(file + len - 4, ".jpg") == 0)) ||
           (len > 5 && strcasecmp(file + len - 5, ".jpeg") == 0);
}

/* FNV-1a of "set/file": the cid stays the same across reloads. */
static uint32_t
cid_hash(const char *set, const char *file)
{
    uint32_t h = 2166136261u;
    const char *s;

    for (s = set; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    h = (h ^ '/') * 16777619u;
    for (s = file; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int
add_image(struct tpl *t, const char *file, const void *data, size_t len,
          struct tpl_error *err, const char *part)
{
    static const unsigned char png[8] = { 0x89, 'P', 'N', 'G', '\r', '\n',
                                          0x1a, '\n' };
    static const unsigned char jpg[3] = { 0xff, 0xd8, 0xff };
    const char *type = image_type(file, strlen(file));
    struct tpl_image *im;
    char cid[TPL_MAX_NAME + 32];
    int ispng;

    if (type == NULL) {
        tpl_err_set(err, part, 0, 0,
                    "image name '%.100s' must end in .png, .jpg or .jpeg "
                    "and use only letters, digits, '.', '_' and '-'",
                    file);
        return GW_EPARSE;
    }
    ispng = strcmp(type, "image/png") == 0;
    if (ispng ? len < sizeof(png) || memcmp(data, png, sizeof(png)) != 0
              : len < sizeof(jpg) || memcmp(data, jpg, sizeof(jpg)) != 0) {
        tpl_err_set(err, part, 0, 0, "image '%s' is not a %s file", file,
                    ispng ? "PNG" : "JPEG");
        return GW_EPARSE;
    }
    if (t->nimages == TPL_MAX_IMAGES) {
        tpl_err_set(err, part, 0, 0, "more than %d images", TPL_MAX_IMAGES);
        return GW_ETOOBIG;
    }
    snprintf(cid, sizeof(cid), "%s.%08x@gateway", file,
             cid_hash(t->name, file));
    im = &t->images[t->nimages];
    im->content_type = type;
    im->len = len;
    im->name = strdup(file);
    im->cid = strdup(cid);
    im->data = malloc(len);
    t->nimages++;               /* so tpl_free releases what was made */
    if (im->name == NULL || im->cid == NULL || im->data == NULL)
        return -ENOMEM;
    memcpy((void *)im->data, data, len);
    return 0;
}

static int
image_cmp(const void *a, const void *b)
{
    return strcmp(((const struct tpl_image *)a)->name,
                  ((const struct tpl_image *)b)->name);
}

static int
find_image(const struct tpl *t, const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < t->nimages; i++)
        if (strlen(t->images[i].name) == len &&
            memcmp(t->images[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

/* ---- <img src> to cid: on the template source ------------------------- */

static int
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static size_t
find_str(const char *s, size_t len, size_t from, const char *pat)
{
    size_t n = strlen(pat);

    for (; from + n <= len; from++)
        if (memcmp(s + from, pat, n) == 0)
            return from;
    return len;
}

/* Has the value a URL scheme ("https:", "cid:", "data:") or is it "//x"? */
static int
not_relative(const char *v, size_t n)
{
    size_t i;

    if (n >= 2 && v[0] == '/' && v[1] == '/')
        return 1;
    if (n == 0 || !((v[0] >= 'a' && v[0] <= 'z') ||
                    (v[0] >= 'A' && v[0] <= 'Z')))
        return 0;
    for (i = 1; i < n; i++) {
        char c = v[i];

        if (c == ':')
            return 1;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '+' || c == '.' || c == '-'))
            return 0;
    }
    return 0;
}

struct scan {
    struct tpl *t;
    enum tpl_part part;
    const char *src;
    size_t len, copied;             /* src[0..copied) is in out */
    struct buf *out;
    struct tpl_error *err;
};

/* One src value src[a..b): a relative one must name an image of the set
 * and becomes cid:<cid>. */
static int
img_src(struct scan *s, size_t a, size_t b)
{
    const char *v;
    size_t n;
    int k, line, col, rc;

    while (a < b && is_space(s->src[a]))
        a++;
    while (b > a && is_space(s->src[b - 1]))
        b--;
    v = s->src + a;
    n = b - a;
    if (n == 0 || find_str(v, n, 0, "{{") < n || not_relative(v, n))
        return 0;
    if (n > 2 && v[0] == '.' && v[1] == '/')
        v += 2, n -= 2;
    if ((k = find_image(s->t, v, n)) < 0) {
        tpl_line_col(s->src, a, &line, &col);
        tpl_err_set(s->err, part_names[s->part], line, col,
                    "image '%.*s' in <img src> is not in the template set",
                    (int)(n > 100 ? 100 : n), v);
        return GW_EPARSE;
    }
    s->t->uses[s->part] |= 1ull << k;
    if ((rc = buf_append(s->out, s->src + s->copied, a - s->copied)) < 0 ||
        (rc = buf_puts(s->out, "cid:")) < 0 ||
        (rc = buf_puts(s->out, s->t->images[k].cid)) < 0)
        return rc;
    s->copied = b;
    return 0;
}

/* Walk the attributes of the tag starting at src[i] ("<img"); returns
 * the offset after it, or a negative code. */
static long
img_tag(struct scan *s, size_t i)
{
    const char *p = s->src;
    size_t len = s->len, j = i + 4;
    int rc;

    for (;;) {
        size_t na, nb;

        while (j < len && (is_space(p[j]) || p[j] == '/'))
            j++;
        if (j >= len || p[j] == '>')
            return (long)j;
        if (j + 1 < len && p[j] == '{' && p[j + 1] == '{') {
            size_t e = find_str(p, len, j + 2, "}}");

            j = e + 2 < len && p[e + 2] == '}' ? e + 3 : e + 2;
            continue;
        }
        na = j;
        while (j < len && !is_space(p[j]) && p[j] != '=' && p[j] != '>' &&
               p[j] != '/')
            j++;
        nb = j;
        if (nb == na && j < len && p[j] != '=') {
            j++;                /* a stray character: move on */
            continue;
        }
        while (j < len && is_space(p[j]))
            j++;
        if (j >= len || p[j] != '=')
            continue;
        j++;
        while (j < len && is_space(p[j]))
            j++;
        if (j < len && (p[j] == '"' || p[j] == '\'')) {
            const char *q = memchr(p + j + 1, p[j], len - j - 1);
            size_t a = j + 1, b = q ? (size_t)(q - p) : len;

            if (nb - na == 3 && strncasecmp(p + na, "src", 3) == 0 &&
                (rc = img_src(s, a, b)) < 0)
                return rc;
            j = b < len ? b + 1 : len;
        } else {
            size_t a = j;

            while (j < len && !is_space(p[j]) && p[j] != '>')
                j++;
            if (nb - na == 3 && strncasecmp(p + na, "src", 3) == 0 &&
                (rc = img_src(s, a, j)) < 0)
                return rc;
        }
    }
}

/* Rewrite relative <img src> of an html or fax part into out. Sets
 * *changed when out differs from src. */
static int
rewrite_imgs(struct tpl *t, enum tpl_part part, const char *src, size_t len,
             struct buf *out, int *changed, struct tpl_error *err)
{
    struct scan s = { t, part, src, len, 0, out, err };
    size_t i = 0, bang = find_str(src, len, 0, "{{!");
    int rc;

    while (i < len) {
        const char *lt = memchr(src + i, '<', len - i);

        if (bang < i)           /* only ever moves forward: linear */
            bang = find_str(src, len, i, "{{!");
        if (bang < len && (lt == NULL || bang < (size_t)(lt - src))) {
            i = find_str(src, len, bang + 3, "}}");   /* a comment */
            i = i < len ? i + 2 : len;
            continue;
        }
        if (lt == NULL)
            break;
        i = (size_t)(lt - src);
        if (len - i >= 4 && memcmp(src + i, "<!--", 4) == 0) {
            i = find_str(src, len, i + 4, "-->");
            i = i < len ? i + 3 : len;
        } else if (len - i >= 4 && strncasecmp(src + i + 1, "img", 3) == 0 &&
                   (len - i == 4 || is_space(src[i + 4]) ||
                    src[i + 4] == '/' || src[i + 4] == '>')) {
            long r = img_tag(&s, i);

            if (r < 0)
                return (int)r;
            i = (size_t)r;
        } else {
            i++;
        }
    }
    *changed = s.copied > 0;
    if (*changed && (rc = buf_append(out, src + s.copied, len - s.copied)) < 0)
        return rc;
    return 0;
}

/* ---- checking and compiling a part ------------------------------------ */

struct tagcheck {
    const char *part;
    int html;
    struct tpl_error *err;
};

static int
check_tag(void *arg, const struct mu_tag *tag)
{
    struct tagcheck *c = arg;

    if (tag->kind & (MU_TAG_PARTIAL | MU_TAG_PARENT)) {
        tpl_err_set(c->err, c->part, (int)tag->line, (int)tag->col,
                    "partials are not supported in template sets "
                    "('%s%.60s')", tag->kind == MU_TAG_PARENT ? "<" : ">",
                    tag->name);
        return GW_EPARSE;
    }
    if (c->html && (tag->kind & MU_TAG_RAW) &&
        !(tag->len > RESERVED_LEN + 1 &&
          memcmp(tag->name, RESERVED ".", RESERVED_LEN + 1) == 0)) {
        tpl_err_set(c->err, c->part, (int)tag->line, (int)tag->col,
                    "unescaped tag '%.60s' in %s: recipient data must be "
                    "escaped (use {{%.60s}}); only campaign_vars.NAME may be "
                    "raw", tag->name, c->part, tag->name);
        return GW_EPARSE;
    }
    return 0;
}

static int
compile_part(struct tpl *t, enum tpl_part p, const char *src, size_t len,
             struct tpl_error *err)
{
    const char *pn = part_names[p];
    int html = p == TPL_P_HTML || p == TPL_P_FAX;
    struct tagcheck tc = { pn, html, err };
    struct mu_error me;
    const char *nul;
    struct buf rw;
    size_t bad;
    int rc, line, col, changed = 0;

    if (tpl_utf8_check(src, len, &bad) < 0) {
        tpl_line_col(src, bad, &line, &col);
        tpl_err_set(err, pn, line, col, "invalid UTF-8 (byte 0x%02x)",
                    (unsigned char)src[bad]);
        return GW_EPARSE;
    }
    if ((nul = memchr(src, 0, len)) != NULL) {
        tpl_line_col(src, (size_t)(nul - src), &line, &col);
        tpl_err_set(err, pn, line, col, "NUL byte in template");
        return GW_EPARSE;
    }
    if (p == TPL_P_SUBJECT || p == TPL_P_SMS) {
        /* editors end files with a newline: it is not content */
        if (len && src[len - 1] == '\n')
            len--;
        if (len && src[len - 1] == '\r')
            len--;
    }
    if (p == TPL_P_SUBJECT) {
        const char *nl = memchr(src, '\n', len);
        const char *cr = memchr(src, '\r', len);

        if (nl || cr) {
            const char *at = nl && (!cr || nl < cr) ? nl : cr;

            tpl_line_col(src, (size_t)(at - src), &line, &col);
            tpl_err_set(err, pn, line, col, "the subject must be one line");
            return GW_EPARSE;
        }
    }
    if ((rc = mu_compile(&t->prog[p], src, len, &me)) < 0) {
        tpl_err_set(err, pn, (int)me.line, (int)me.col, "%s", me.msg);
        return rc;
    }
    if ((rc = mu_prog_tags(t->prog[p], MU_TAG_RAW | MU_TAG_PARTIAL |
                           MU_TAG_PARENT, check_tag, &tc)) != 0)
        return rc;
    if (!html)
        return 0;
    buf_init(&rw, TPL_MAX_PART * 2);
    rc = rewrite_imgs(t, p, src, len, &rw, &changed, err);
    if (rc == 0 && changed) {
        mu_prog_free(t->prog[p]);
        t->prog[p] = NULL;
        if ((rc = mu_compile(&t->prog[p], rw.data, rw.len, &me)) < 0)
            tpl_err_set(err, pn, (int)me.line, (int)me.col,
                        "after turning <img src> into cid: %s", me.msg);
    }
    if (rc < 0 && rc != GW_EPARSE && err && err->msg[0] == 0)
        tpl_err_set(err, pn, 0, 0, "%s", gw_strerror(rc));
    buf_free(&rw);
    return rc;
}

/* Which part or image a field name is; -1 unknown. */
static int
field_part(const char *name)
{
    int i;

    for (i = 0; i < TPL_P_COUNT; i++)
        if (strcmp(name, part_names[i]) == 0)
            return i;
    return -1;
}

int
tpl_load_fields(struct tpl **out, const char *name,
                const struct tpl_field *fields, size_t n,
                struct tpl_error *err)
{
    const struct tpl_field *src[TPL_P_COUNT] = { 0 };
    struct tpl *t = NULL;
    size_t i, total = 0;
    int rc = 0, have_strict = 0, have_version = 0, p;

    *out = NULL;
    err_begin(err, name);
    if (name == NULL || (fields == NULL && n)) {
        tpl_err_set(err, NULL, 0, 0, "invalid arguments");
        return GW_EINVAL;
    }
    if ((t = calloc(1, sizeof(*t))) == NULL ||
        (t->name = strdup(name)) == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (i = 0; i < n; i++) {
        const struct tpl_field *f = &fields[i];
        const char *fn = f->name ? f->name : "";

        if (f->len > TPL_MAX_PART || (total += f->len) > TPL_MAX_SET) {
            tpl_err_set(err, fn, 0, 0, f->len > TPL_MAX_PART
                        ? "larger than %u bytes" : "the set is larger than "
                        "%u bytes", f->len > TPL_MAX_PART ? TPL_MAX_PART
                        : TPL_MAX_SET);
            rc = GW_ETOOBIG;
            goto out;
        }
        if (f->data == NULL && f->len) {
            tpl_err_set(err, fn, 0, 0, "no data");
            rc = GW_EINVAL;
            goto out;
        }
        if ((p = field_part(fn)) >= 0) {
            if (src[p]) {
                tpl_err_set(err, fn, 0, 0, "part given twice");
                rc = GW_EPARSE;
                goto out;
            }
            src[p] = f;
        } else if (strcmp(fn, "strict") == 0) {
            size_t l = f->len;
            const char *v = f->data;

            while (l && (v[l - 1] == '\n' || v[l - 1] == '\r' ||
                         v[l - 1] == ' '))
                l--;
            if (have_strict++) {
                tpl_err_set(err, fn, 0, 0, "part given twice");
                rc = GW_EPARSE;
                goto out;
            }
            if (l == 0 || (l == 4 && memcmp(v, "true", 4) == 0)) {
                t->strict = 1;
            } else if (!(l == 5 && memcmp(v, "false", 5) == 0)) {
                tpl_err_set(err, fn, 0, 0, "must be true or false");
                rc = GW_EPARSE;
                goto out;
            }
        } else if (strcmp(fn, "version") == 0) {
            if (have_version++) {
                tpl_err_set(err, fn, 0, 0, "part given twice");
                rc = GW_EPARSE;
                goto out;
            }
        } else if (strncmp(fn, "image:", 6) == 0) {
            if (find_image(t, fn + 6, strlen(fn + 6)) >= 0) {
                tpl_err_set(err, fn, 0, 0, "part given twice");
                rc = GW_EPARSE;
                goto out;
            }
            if ((rc = add_image(t, fn + 6, f->data, f->len, err, fn)) < 0)
                goto out;
        } else {
            tpl_err_set(err, NULL, 0, 0, "unknown part '%.64s' (expected "
                        "subject, html, text, sms, fax, strict, version or "
                        "image:<file>)", fn);
            rc = GW_EPARSE;
            goto out;
        }
    }
    /* an empty part counts as absent */
    for (p = 0; p < TPL_P_COUNT; p++)
        if (src[p] && src[p]->len == 0)
            src[p] = NULL;
    if (!src[TPL_P_HTML] && !src[TPL_P_TEXT] && !src[TPL_P_SMS] &&
        !src[TPL_P_FAX]) {
        tpl_err_set(err, NULL, 0, 0,
                    "no content: a set needs html, text, sms or fax");
        rc = GW_EPARSE;
        goto out;
    }
    qsort(t->images, t->nimages, sizeof(t->images[0]), image_cmp);
    for (p = 0; p < TPL_P_COUNT; p++)
        if (src[p] &&
            (rc = compile_part(t, p, src[p]->data, src[p]->len, err)) < 0)
            goto out;
    *out = t;
    t = NULL;
out:
    if (rc == -ENOMEM && err && err->msg[0] == 0)
        tpl_err_set(err, NULL, 0, 0, "out of memory");
    tpl_free(t);
    return rc;
}

/* ---- loading a folder ------------------------------------------------- */

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read dir/file into *data (malloc), at most TPL_MAX_PART bytes. */
static int
read_file(const char *dir, const char *file, char **data, size_t *len,
          struct tpl_error *err, const char *part)
{
    char path[4096];
    struct stat st;
    size_t got = 0;
    char *p = NULL;
    int fd, rc = 0;

    *data = NULL;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >=
        sizeof(path)) {
        tpl_err_set(err, part, 0, 0, "path too long");
        return GW_EINVAL;
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = -errno;
        tpl_err_set(err, part, 0, 0, "cannot read '%s': %s", file,
                    strerror(errno));
        return rc;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = S_ISREG(st.st_mode) ? -errno : GW_EPARSE;
        tpl_err_set(err, part, 0, 0, "'%s' is not a regular file", file);
        goto out;
    }
    if ((unsigned long long)st.st_size > TPL_MAX_PART) {
        tpl_err_set(err, part, 0, 0, "'%s' is larger than %u bytes", file,
                    TPL_MAX_PART);
        rc = GW_ETOOBIG;
        goto out;
    }
    if ((p = malloc((size_t)st.st_size + 1)) == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, p + got, (size_t)st.st_size - got);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            tpl_err_set(err, part, 0, 0, "cannot read '%s': %s", file,
                        strerror(errno));
            goto out;
        }
        if (r == 0)
            break;              /* shrank meanwhile */
        got += (size_t)r;
    }
    *data = p;
    *len = got;
    p = NULL;
out:
    free(p);
    close(fd);
    return rc;
}

int
tpl_load_dir(struct tpl **out, const char *name, const char *dir,
             struct tpl_error *err)
{
    char *files[MAX_FILES];
    struct tpl_field fields[MAX_FILES];
    char *fnames[MAX_FILES];
    char *data[MAX_FILES];
    size_t nfiles = 0, nf = 0, i, total = 0;
    struct dirent *de;
    DIR *d;
    int rc = 0, k;

    *out = NULL;
    err_begin(err, name);
    if ((d = opendir(dir)) == NULL) {
        rc = -errno;
        tpl_err_set(err, NULL, 0, 0, "cannot open folder '%.100s': %s", dir,
                    strerror(errno));
        return rc;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;           /* ., .., .DS_Store, editor swap files */
        if (nfiles == MAX_FILES) {
            tpl_err_set(err, NULL, 0, 0, "more than %d files", MAX_FILES);
            rc = GW_ETOOBIG;
            break;
        }
        if ((files[nfiles] = strdup(de->d_name)) == NULL) {
            rc = -ENOMEM;
            break;
        }
        nfiles++;
    }
    closedir(d);
    if (rc < 0)
        goto out;
    qsort(files, nfiles, sizeof(files[0]), name_cmp);
    for (i = 0; i < nfiles; i++) {
        const char *f = files[i];
        char *fname;

        for (k = 0; k < TPL_P_COUNT; k++)
            if (strcmp(f, part_files[k]) == 0)
                break;
        if (k < TPL_P_COUNT) {
            fname = strdup(part_names[k]);
        } else if (strcmp(f, "strict") == 0) {
            fname = strdup("strict");
        } else if (image_ext(f)) {
            fname = malloc(strlen(f) + 7);
            if (fname)
                sprintf(fname, "image:%s", f);
        } else {
            tpl_err_set(err, NULL, 0, 0, "unknown part '%.64s' (expected "
                        "subject.txt, body.html, body.txt, sms.txt, "
                        "fax.html, strict or *.png/*.jpg images)", f);
            rc = GW_EPARSE;
            goto out;
        }
        if (fname == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        fnames[nf] = fname;
        data[nf] = NULL;
        nf++;
        if ((rc = read_file(dir, f, &data[nf - 1], &fields[nf - 1].len, err,
                            fname)) < 0)
            goto out;
        if ((total += fields[nf - 1].len) > TPL_MAX_SET) {
            tpl_err_set(err, fname, 0, 0, "the set is larger than %u bytes",
                        TPL_MAX_SET);
            rc = GW_ETOOBIG;
            goto out;
        }
        fields[nf - 1].name = fname;
        fields[nf - 1].data = data[nf - 1];
    }
    rc = tpl_load_fields(out, name, fields, nf, err);
out:
    if (rc == -ENOMEM && err && err->msg[0] == 0)
        tpl_err_set(err, NULL, 0, 0, "out of memory");
    for (i = 0; i < nf; i++) {
        free(fnames[i]);
        free(data[i]);
    }
    for (i = 0; i < nfiles; i++)
        free(files[i]);
    return rc;
}

/* ---- the lookup chain ------------------------------------------------- */

/* Recipient data: jansson values that never answer "campaign_vars", at
 * any depth, so the reserved name cannot be shadowed from a section. */
static struct mu_val safe_val(const json_t *v);

static struct mu_val
safe_get(const void *obj, const char *name, size_t len)
{
    struct mu_val none = { NULL, NULL };

    if (len == RESERVED_LEN && memcmp(name, RESERVED, len) == 0)
        return none;
    return safe_val(json_object_getn(obj, name, len));
}

static struct mu_val
safe_at(const void *list, size_t i)
{
    return safe_val(json_array_get(list, i));
}

static enum mu_type
safe_type(const void *p)
{
    return mu_json_ops.type(p);
}

static const char *
safe_text(const void *p, char *scratch, size_t *len)
{
    return mu_json_ops.text(p, scratch, len);
}

static size_t
safe_count(const void *list)
{
    return json_array_size(list);
}

static const struct mu_ops safe_ops = {
    .type  = safe_type,
    .text  = safe_text,
    .get   = safe_get,
    .count = safe_count,
    .at    = safe_at,
};

static struct mu_val
safe_val(const json_t *v)
{
    struct mu_val r = { v ? &safe_ops : NULL, v };

    return r;
}

/* The contact fields of a recipient object, nothing else of it. */
static struct mu_val
contact_get(const void *obj, const char *name, size_t len)
{
    static const struct {
        const char *s;
        size_t len;
    } names[] = {
        { "customer_id", 11 }, { "email", 5 }, { "phone", 5 }, { "fax", 3 },
        { "name", 4 }, { "tz", 2 }, { "locale", 6 },
    };
    struct mu_val none = { NULL, NULL };
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].len == len && memcmp(names[i].s, name, len) == 0)
            return safe_val(json_object_getn(obj, name, len));
    return none;
}

static enum mu_type
obj_type(const void *p)
{
    (void)p;
    return MU_T_OBJECT;
}

static const struct mu_ops contact_ops = {
    .type = obj_type,
    .get  = contact_get,
};

/* The reserved frame { "campaign_vars": <vars> }; p is vars (or NULL). */
static struct mu_val
reserved_get(const void *obj, const char *name, size_t len)
{
    struct mu_val none = { NULL, NULL };

    if (obj && len == RESERVED_LEN && memcmp(name, RESERVED, len) == 0)
        return mu_json_val(obj);
    return none;
}

static const struct mu_ops reserved_ops = {
    .type = obj_type,
    .get  = reserved_get,
};

/* Built-ins: a struct on tpl_render's stack, strings made on demand. */
struct strval {
    const char *s;
    size_t len;
};

struct tpl_tzcache {
    struct {
        char name[64];
        GTimeZone *tz;          /* NULL: unknown zone, read as UTC */
    } slot[TZ_SLOTS];
    unsigned used, next;
};

struct builtins {
    struct strval unsub, msgid, campaign, channel, today;
    const struct tpl_data *d;
    struct tpl_tzcache **cache;
    int today_done;
    char today_buf[16];
};

static enum mu_type
str_type(const void *p)
{
    (void)p;
    return MU_T_STRING;
}

static const char *
str_text(const void *p, char *scratch, size_t *len)
{
    const struct strval *v = p;

    (void)scratch;
    *len = v->len;
    return v->s;
}

static const struct mu_ops str_ops = {
    .type = str_type,
    .text = str_text,
};

/* A zone name we hand to GLib: no paths (GLib reads "/x" as a file). */
static int
tz_name_ok(const char *s)
{
    size_t i, n = strlen(s);

    if (n == 0 || n >= 64 || s[0] == '/' || s[0] == '.' ||
        strstr(s, "..") != NULL)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '/' || c == '_' || c == '+' ||
              c == '-'))
            return 0;
    }
    return 1;
}

/* The zone named s from the cache (loaded once per tpl_out); NULL: UTC. */
static GTimeZone *
tz_get(struct tpl_tzcache **cp, const char *s)
{
    struct tpl_tzcache *c = *cp;
    unsigned i;

    if (s == NULL || !tz_name_ok(s))
        return NULL;
    if (c == NULL && (c = *cp = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    for (i = 0; i < c->used; i++)
        if (strcmp(c->slot[i].name, s) == 0)
            return c->slot[i].tz;
    if (c->used < TZ_SLOTS) {
        i = c->used++;
    } else {
        i = c->next;
        c->next = (c->next + 1) % TZ_SLOTS;
        if (c->slot[i].tz)
            g_time_zone_unref(c->slot[i].tz);
    }
    snprintf(c->slot[i].name, sizeof(c->slot[i].name), "%s", s);
    c->slot[i].tz = g_time_zone_new_identifier(s);
    return c->slot[i].tz;
}

static void
put_digits(char *p, long v, int n)
{
    while (n-- > 0) {
        p[n] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* YYYY-MM-DD of now in the recipient's zone (UTC when unknown). */
static void
make_today(struct builtins *b)
{
    const json_t *tzj = b->d->recipient
                            ? json_object_get(b->d->recipient, "tz") : NULL;
    GTimeZone *tz = tz_get(b->cache, json_string_value(tzj));
    int64_t ms = b->d->now_ms, secs, days;
    long y, m, d, era, doe, yoe, doy, mp;

    if (ms == 0) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    if (tz) {
        int iv = g_time_zone_find_interval(tz, G_TIME_TYPE_UNIVERSAL, secs);

        if (iv >= 0)
            secs += g_time_zone_get_offset(tz, iv);
    }
    days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    /* civil_from_days, H. Hinnant */
    days += 719468;
    era = (long)((days >= 0 ? days : days - 146096) / 146097);
    doe = (long)(days - (int64_t)era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    if (y < 0 || y > 9999)
        y = 0;
    put_digits(b->today_buf, y, 4);
    b->today_buf[4] = '-';
    put_digits(b->today_buf + 5, m, 2);
    b->today_buf[7] = '-';
    put_digits(b->today_buf + 8, d, 2);
    b->today.s = b->today_buf;
    b->today.len = 10;
    b->today_done = 1;
}

static struct mu_val
builtin_get(const void *obj, const char *name, size_t len)
{
    struct builtins *b = (struct builtins *)obj;
    struct mu_val r = { NULL, NULL };
    const struct strval *v = NULL;

#define IS(lit) (len == sizeof(lit) - 1 && memcmp(name, lit, len) == 0)
    if (IS("unsubscribe_url"))
        v = &b->unsub;
    else if (IS("message_id"))
        v = &b->msgid;
    else if (IS("campaign"))
        v = &b->campaign;
    else if (IS("channel"))
        v = &b->channel;
    else if (IS("today")) {
        if (!b->today_done)
            make_today(b);
        v = &b->today;
    }
#undef IS
    if (v && v->s) {
        r.ops = &str_ops;
        r.p = v;
    }
    return r;
}

static const struct mu_ops builtin_ops = {
    .type = obj_type,
    .get  = builtin_get,
};

static void
strval_set(struct strval *v, const char *s)
{
    v->s = s;
    v->len = s ? strlen(s) : 0;
}

/* ---- rendering -------------------------------------------------------- */

void
tpl_out_init(struct tpl_out *o, size_t max)
{
    memset(o, 0, sizeof(*o));
    if (max == 0)
        max = TPL_OUT_MAX;
    buf_init(&o->subject, max);
    buf_init(&o->html, max);
    buf_init(&o->text, max);
    buf_init(&o->sms, max);
    buf_init(&o->fax, max);
    buf_init(&o->scratch, max);
}

void
tpl_out_reset(struct tpl_out *o)
{
    buf_reset(&o->subject);
    buf_reset(&o->html);
    buf_reset(&o->text);
    buf_reset(&o->sms);
    buf_reset(&o->fax);
    buf_reset(&o->scratch);
    o->nimages = 0;
}

void
tpl_out_free(struct tpl_out *o)
{
    unsigned i;

    buf_free(&o->subject);
    buf_free(&o->html);
    buf_free(&o->text);
    buf_free(&o->sms);
    buf_free(&o->fax);
    buf_free(&o->scratch);
    if (o->tz) {
        for (i = 0; i < o->tz->used; i++)
            if (o->tz->slot[i].tz)
                g_time_zone_unref(o->tz->slot[i].tz);
        free(o->tz);
        o->tz = NULL;
    }
    o->nimages = 0;
}

struct env {
    struct mu_val roots[5];
    size_t nroots;
    const struct tpl *t;
    const struct tpl_render_opts *o;
    struct tpl_error *err;
};

static int
render_part(const struct env *e, enum tpl_part p, struct buf *out)
{
    struct mu_render_opts mo = { 0 };
    struct mu_error me;
    int rc;

    mo.escape = p == TPL_P_HTML || p == TPL_P_FAX ? MU_ESC_HTML : MU_ESC_NONE;
    mo.strict = e->t->strict;
    mo.max_steps = e->o->max_steps;
    rc = mu_render(e->t->prog[p], e->roots, e->nroots, &mo, out, &me);
    if (rc < 0) {
        tpl_err_set(e->err, part_names[p], (int)me.line, (int)me.col, "%s",
                    me.code ? me.msg : gw_strerror(rc));
        return rc;
    }
    return 0;
}

static void
add_images(const struct tpl *t, enum tpl_part p, struct tpl_out *out)
{
    size_t i;

    for (i = 0; i < t->nimages; i++)
        if (t->uses[p] & (1ull << i))
            out->images[out->nimages++] = &t->images[i];
}

static int
email(const struct env *e, unsigned want, struct tpl_out *out)
{
    const struct tpl *t = e->t;
    const struct tpl_render_opts *o = e->o;
    int rewrite = o->link_cb != NULL || o->pixel_url != NULL;
    int derive = (want & (1u << TPL_P_TEXT)) && !t->prog[TPL_P_TEXT] &&
                 t->prog[TPL_P_HTML];
    struct buf tmp;
    int rc = 0;

    if (!t->prog[TPL_P_HTML] && !t->prog[TPL_P_TEXT]) {
        tpl_err_set(e->err, NULL, 0, 0, "no email part (html or text)");
        return GW_ENOTFOUND;
    }
    if (want & (1u << TPL_P_SUBJECT)) {
        if (!t->prog[TPL_P_SUBJECT]) {
            tpl_err_set(e->err, "subject", 0, 0, "an email needs a subject");
            return GW_ENOTFOUND;
        }
        if ((rc = render_part(e, TPL_P_SUBJECT, &out->subject)) < 0)
            return rc;
        if (out->subject.len &&
            (memchr(out->subject.data, '\r', out->subject.len) ||
             memchr(out->subject.data, '\n', out->subject.len) ||
             memchr(out->subject.data, 0, out->subject.len))) {
            tpl_err_set(e->err, "subject", 0, 0, "rendered subject contains "
                        "CR, LF or NUL (a header field cannot)");
            return GW_EINVAL;
        }
    }
    if ((want & (1u << TPL_P_TEXT)) && t->prog[TPL_P_TEXT] &&
        (rc = render_part(e, TPL_P_TEXT, &out->text)) < 0)
        return rc;
    if (!t->prog[TPL_P_HTML] || !(want & (1u << TPL_P_HTML) || derive))
        return 0;
    if ((rc = render_part(e, TPL_P_HTML, &out->html)) < 0)
        return rc;
    if (rewrite && (want & (1u << TPL_P_HTML))) {
        rc = html_process(out->html.data, out->html.len,
                          derive ? &out->text : NULL, o, &out->scratch,
                          e->err);
        tmp = out->html;
        out->html = out->scratch;
        out->scratch = tmp;
        buf_reset(&out->scratch);
    } else if (derive) {
        rc = html_process(out->html.data, out->html.len, &out->text, NULL,
                          NULL, e->err);
    }
    if (rc < 0) {
        if (e->err)
            snprintf(e->err->part, sizeof(e->err->part), "html");
        return rc;
    }
    if (want & (1u << TPL_P_HTML))
        add_images(t, TPL_P_HTML, out);
    return 0;
}

/* err is filled only on failure: a render that works costs nothing. */
static int
render(const struct tpl *t, enum tpl_channel ch, const struct tpl_data *d,
       const struct tpl_render_opts *o, struct tpl_out *out,
       struct tpl_error *err)
{
    static const struct tpl_render_opts no_opts;
    static const struct tpl_data no_data;
    static const char *const ch_names[] = { "email", "sms", "fax" };
    struct builtins b;
    struct env e;
    const json_t *rv;
    enum tpl_part only;
    unsigned want;
    int rc;

    tpl_out_reset(out);
    if (d == NULL)
        d = &no_data;
    if (o == NULL)
        o = &no_opts;
    e.t = t;
    e.o = o;
    e.err = err;
    e.nroots = 0;
    /* closest first: reserved, recipient.vars, contact, vars, built-ins */
    e.roots[e.nroots].ops = &reserved_ops;
    e.roots[e.nroots++].p = json_is_object(d->vars) ? d->vars : NULL;
    if (json_is_object(d->recipient)) {
        rv = json_object_get(d->recipient, "vars");
        if (json_is_object(rv))
            e.roots[e.nroots++] = safe_val(rv);
        e.roots[e.nroots].ops = &contact_ops;
        e.roots[e.nroots++].p = d->recipient;
    }
    if (json_is_object(d->vars))
        e.roots[e.nroots++] = mu_json_val(d->vars);
    memset(&b, 0, sizeof(b));
    b.d = d;
    b.cache = &out->tz;
    strval_set(&b.unsub, d->unsubscribe_url);
    strval_set(&b.msgid, d->message_id);
    strval_set(&b.campaign, d->campaign);
    strval_set(&b.channel, d->channel ? d->channel : ch_names[ch]);
    e.roots[e.nroots].ops = &builtin_ops;
    e.roots[e.nroots++].p = &b;

    if (ch == TPL_EMAIL) {
        want = (1u << TPL_P_SUBJECT) | (1u << TPL_P_HTML) |
               (1u << TPL_P_TEXT);
        if (o->parts)
            want &= o->parts;
        return email(&e, want, out);
    }
    only = ch == TPL_SMS ? TPL_P_SMS : TPL_P_FAX;
    if (o->parts && !(o->parts & (1u << only)))
        return 0;
    if (!t->prog[only]) {
        tpl_err_set(err, part_names[only], 0, 0, "the template has no %s "
                    "part", part_names[only]);
        return GW_ENOTFOUND;
    }
    if (only == TPL_P_SMS) {
        if ((rc = render_part(&e, TPL_P_SMS, &out->sms)) < 0)
            return rc;
        if (out->sms.len && memchr(out->sms.data, 0, out->sms.len)) {
            tpl_err_set(err, "sms", 0, 0, "rendered SMS contains NUL");
            return GW_EINVAL;
        }
        return 0;
    }
    if ((rc = render_part(&e, TPL_P_FAX, &out->fax)) < 0)
        return rc;
    add_images(t, TPL_P_FAX, out);
    return 0;
}

int
tpl_render(const struct tpl *t, enum tpl_channel ch,
           const struct tpl_data *d, const struct tpl_render_opts *o,
           struct tpl_out *out, struct tpl_error *err)
{
    int rc;

    if (t == NULL || out == NULL || (unsigned)ch > TPL_FAX) {
        err_begin(err, t ? t->name : NULL);
        tpl_err_set(err, NULL, 0, 0, "invalid arguments");
        return GW_EINVAL;
    }
    if ((rc = render(t, ch, d, o, out, err)) < 0 && err)
        snprintf(err->template, sizeof(err->template), "%s", t->name);
    return rc;
}

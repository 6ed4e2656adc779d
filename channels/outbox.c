/*
 * outbox.c -- the outbox channel: writes each message as a file under the
 * provider's dir, one subdirectory per channel, named by the message key.
 * It is the demo's channel and the dry-run mode for real campaigns. Files
 * are written under a temporary name and renamed, so a reader never sees
 * half a message, and a resend after a crash replaces the file instead of
 * adding a second one. File I/O runs on libuv's pool, off the loop.
 */
#include "channel.h"

#include "../common/buf.h"
#include "../common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct outbox {
    struct channel      *ch;
    char                *dir;
    int                  fsync;
    unsigned             inflight;
    int                  closing;
    struct channel_stats st;
    uint64_t             seq;   /* makes temporary names unique */
};

struct write_req {
    uv_fs_t          fs;
    struct outbox   *ob;
    struct message  *m;
    channel_done_cb *cb;
    void            *arg;
    uv_file          fd;
    struct buf       body;
    char            *path, *tmp;
    int              err;       /* first error, as -errno */
    const char      *step;
};

static void step_write(uv_fs_t *fs);
static void step_sync(uv_fs_t *fs);
static void step_close(uv_fs_t *fs);
static void step_rename(uv_fs_t *fs);
static void step_renamed(uv_fs_t *fs);
static void step_done(struct write_req *w);

static int
mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);

    if (n >= sizeof tmp)
        return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

const struct conf_key outbox_conf_keys[] = {
    /* where the files go: dir/<channel>/<message key>.json */
    { "dir", CK_STR, 1, 0, 0, NULL, NULL },
    /* fsync each file before it counts as delivered */
    { "fsync", CK_BOOL, 0, 0, 0, NULL, "true" },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static int
outbox_open(struct channel *ch, const struct conf_provider *conf)
{
    struct outbox *ob = calloc(1, sizeof *ob);
    char sub[4096];
    int rc;

    if (!ob)
        return -ENOMEM;
    ob->ch = ch;
    ob->fsync = conf_bool(conf, "fsync");
    if ((ob->dir = strdup(conf_str(conf, "dir"))) == NULL) {
        free(ob);
        return -ENOMEM;
    }
    for (int c = 0; c < CH_COUNT; c++) {
        if (!(conf->channels & (1u << c)))
            continue;
        snprintf(sub, sizeof sub, "%s/%s", ob->dir,
                 gw_channel_name((enum gw_channel)c));
        if ((rc = mkdir_p(sub)) < 0) {
            log_error(&ch->log, "cannot create %s: %s", sub, gw_strerror(rc));
            free(ob->dir);
            free(ob);
            return rc;
        }
    }
    ch->priv = ob;
    return 0;
}

/* Keys may hold any printable text: keep a safe set, %XX the rest, and
 * never let a name start with a dot. */
static int
file_name(struct buf *b, const char *key)
{
    int rc = 0;

    for (const unsigned char *p = (const unsigned char *)key; *p && !rc;
         p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
            (*p >= '0' && *p <= '9') || strchr("_-:@+=,", *p) ||
            (*p == '.' && p != (const unsigned char *)key))
            rc = buf_putc(b, (char)*p);
        else
            rc = buf_printf(b, "%%%02X", *p);
    }
    return rc;
}

static void
set_part(json_t *o, const char *name, const char *s, size_t len)
{
    if (s)
        json_object_set_new(o, name, json_stringn(s, len));
}

/* The rendered message as JSON: what the channel would have sent. */
static int
render_json(struct buf *b, const struct message *m)
{
    const struct message_content *c = &m->content;
    json_t *o = json_object(), *imgs;
    char *s;
    int rc;

    if (!o)
        return -ENOMEM;
    json_object_set_new(o, "key", json_string(m->key));
    json_object_set_new(o, "channel", json_string(gw_channel_name(m->channel)));
    if (m->campaign)
        json_object_set_new(o, "campaign", json_string(m->campaign));
    json_object_set_new(o, "customer", json_string(m->customer));
    if (m->to)
        json_object_set_new(o, "to", json_string(m->to));
    if (m->to_name)
        json_object_set_new(o, "to_name", json_string(m->to_name));
    json_object_set_new(o, "provider", json_string(m->provider));
    json_object_set_new(o, "template", json_string(m->template));
    if (m->class)
        json_object_set_new(o, "class", json_string(m->class));
    json_object_set_new(o, "attempt", json_integer(m->attempt));
    set_part(o, "subject", c->subject, c->subject_len);
    set_part(o, "text", c->text, c->text_len);
    set_part(o, "html", c->html, c->html_len);
    set_part(o, "sms", c->sms, c->sms_len);
    set_part(o, "fax", c->fax, c->fax_len);
    if (c->nimages) {
        imgs = json_array();
        for (size_t i = 0; i < c->nimages; i++) {
            json_t *im = json_object();
            json_object_set_new(im, "name", json_string(c->images[i].name));
            json_object_set_new(im, "content_type",
                                json_string(c->images[i].content_type));
            json_object_set_new(im, "content_id",
                                json_string(c->images[i].content_id));
            json_object_set_new(im, "bytes",
                                json_integer((json_int_t)c->images[i].len));
            json_array_append_new(imgs, im);
        }
        json_object_set_new(o, "images", imgs);
    }
    s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    if (!s)
        return -ENOMEM;
    rc = buf_puts(b, s);
    if (rc == 0)
        rc = buf_putc(b, '\n');
    free(s);
    return rc;
}

static void
write_req_free(struct write_req *w)
{
    buf_free(&w->body);
    free(w->path);
    free(w->tmp);
    free(w);
}

static int
outbox_send(struct channel *ch, struct message *m, channel_done_cb *cb,
            void *arg)
{
    struct outbox *ob = ch->priv;
    struct write_req *w;
    struct buf name;
    int rc;

    if (ob->closing)
        return GW_ESTATE;
    if ((w = calloc(1, sizeof *w)) == NULL)
        return -ENOMEM;
    w->ob = ob;
    w->m = m;
    w->cb = cb;
    w->arg = arg;
    w->fd = -1;
    buf_init(&w->body, 16u << 20);
    buf_init(&name, 8192);
    if ((rc = buf_printf(&name, "%s/%s/", ob->dir,
                         gw_channel_name(m->channel))) < 0 ||
        (rc = file_name(&name, m->key)) < 0 ||
        (rc = buf_puts(&name, ".json")) < 0 ||
        (rc = render_json(&w->body, m)) < 0)
        goto fail;
    w->path = buf_steal(&name, NULL);
    if (asprintf(&w->tmp, "%s/%s/.tmp-%ld-%llu", ob->dir,
                 gw_channel_name(m->channel), (long)getpid(),
                 (unsigned long long)ob->seq++) < 0) {
        w->tmp = NULL;
        rc = -ENOMEM;
        goto fail;
    }
    w->fs.data = w;
    w->step = "open";
    rc = uv_fs_open(ch->loop, &w->fs, w->tmp, O_WRONLY | O_CREAT | O_EXCL |
                    O_CLOEXEC, 0644, step_write);
    if (rc < 0)
        goto fail;
    ob->inflight++;
    return 0;
fail:
    buf_free(&name);
    write_req_free(w);
    return rc;
}

static void
step_write(uv_fs_t *fs)
{
    struct write_req *w = fs->data;
    uv_buf_t b;
    int rc;

    if (fs->result < 0) {
        w->err = (int)fs->result;
        uv_fs_req_cleanup(fs);
        step_done(w);
        return;
    }
    w->fd = (uv_file)fs->result;
    uv_fs_req_cleanup(fs);
    b = uv_buf_init(w->body.data, (unsigned)w->body.len);
    w->step = "write";
    /* One write: libuv loops over short writes for regular files. */
    if ((rc = uv_fs_write(w->ob->ch->loop, fs, w->fd, &b, 1, 0,
                          step_sync)) < 0) {
        w->err = rc;
        step_close(fs);
    }
}

static void
step_sync(uv_fs_t *fs)
{
    struct write_req *w = fs->data;
    int rc;

    if (fs->result < 0 && !w->err)
        w->err = (int)fs->result;
    else if (fs->result >= 0 && (size_t)fs->result != w->body.len)
        w->err = -EIO;
    uv_fs_req_cleanup(fs);
    if (w->err || !w->ob->fsync) {
        step_close(fs);
        return;
    }
    w->step = "fsync";
    if ((rc = uv_fs_fsync(w->ob->ch->loop, fs, w->fd, step_close)) < 0) {
        w->err = rc;
        step_close(fs);
    }
}

static void
step_close(uv_fs_t *fs)
{
    struct write_req *w = fs->data;
    int rc;

    if (fs->fs_type == UV_FS_FSYNC) {
        if (fs->result < 0 && !w->err)
            w->err = (int)fs->result;
        uv_fs_req_cleanup(fs);
    }
    w->step = w->err ? w->step : "close";
    rc = uv_fs_close(w->ob->ch->loop, fs, w->fd, step_rename);
    w->fd = -1;
    if (rc < 0) {
        if (!w->err)
            w->err = rc;
        step_done(w);
    }
}

static void
step_rename(uv_fs_t *fs)
{
    struct write_req *w = fs->data;
    int rc;

    if (fs->result < 0 && !w->err)
        w->err = (int)fs->result;
    uv_fs_req_cleanup(fs);
    if (w->err) {
        unlink(w->tmp);     /* best effort: the file is incomplete */
        step_done(w);
        return;
    }
    w->step = "rename";
    if ((rc = uv_fs_rename(w->ob->ch->loop, fs, w->tmp, w->path,
                           step_renamed)) < 0) {
        w->err = rc;
        unlink(w->tmp);
        step_done(w);
    }
}

static void
step_renamed(uv_fs_t *fs)
{
    struct write_req *w = fs->data;

    if (fs->result < 0) {
        w->err = (int)fs->result;
        unlink(w->tmp);
    }
    uv_fs_req_cleanup(fs);
    step_done(w);
}

static void
step_done(struct write_req *w)
{
    struct outbox *ob = w->ob;
    struct send_outcome o = { .result = SEND_OK, .final = 1 };
    char reply[512];

    if (w->err) {
        /* Disk full, permissions: an operator can fix it; retry later. */
        snprintf(reply, sizeof reply, "outbox %s %s: %s", w->step, w->path,
                 uv_strerror(w->err));
        o.result = SEND_TEMPFAIL;
        o.final = 0;
        o.reply = reply;
        ob->st.tempfail++;
    } else {
        o.reply = w->path;
        ob->st.sent++;
    }
    ob->inflight--;
    w->cb(w->m, &o, w->arg);
    write_req_free(w);
    if (ob->closing && ob->inflight == 0) {
        struct channel *ch = ob->ch;
        free(ob->dir);
        free(ob);
        channel_closed(ch);
    }
}

static void
outbox_close(struct channel *ch)
{
    struct outbox *ob = ch->priv;

    ob->closing = 1;
    if (ob->inflight == 0) {
        free(ob->dir);
        free(ob);
        channel_closed(ch);
    }
}

static void
outbox_stats(struct channel *ch, struct channel_stats *out)
{
    struct outbox *ob = ch->priv;

    *out = ob->st;
    out->inflight = ob->inflight;
}

const struct channel_ops outbox_ops = {
    .name  = "outbox",
    .open  = outbox_open,
    .send  = outbox_send,
    .close = outbox_close,
    .stats = outbox_stats,
};

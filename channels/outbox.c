/*
 * outbox.c -- the outbox channel: writes each message as a file under the
 * provider's dir, one subdirectory per channel, named by the message key.
 * It is the demo's channel and the dry-run mode for real campaigns. Files
 * are written under a temporary name and renamed, so a reader never sees
 * half a message, and a resend after a crash replaces the file instead of
 * adding a second one. The JSON and the file I/O run on libuv's pool, off
 * the loop, in batches of what queued up while the last batch was written.
 */
#include "channel.h"

#include "../common/buf.h"
#include "../common/err.h"
#include "../common/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct write_req;

struct outbox {
    struct channel      *ch;
    char                *dir;
    int                  fsync;
    unsigned             inflight;  /* queued or being written */
    unsigned             working;   /* batches on the pool */
    int                  closing;
    struct channel_stats st;
    uint64_t             seq;       /* makes temporary names unique */
    struct write_req    *head, *tail;   /* waiting for a batch */
    unsigned             waiting;
};

/* One message. The worker only reads the message (borrowed until the
 * done callback) and fills path/err/step. */
struct write_req {
    struct write_req *next;
    struct message   *m;
    channel_done_cb  *cb;
    void             *arg;
    char             *path;
    int               err;      /* first error, as -errno */
    const char       *step;
};

/* Messages written by one pool task: a handoff to the pool and back costs
 * more than writing a small file on tmpfs, so it is paid once per batch. */
struct batch {
    uv_work_t         work;
    struct outbox    *ob;
    struct write_req *list;
    uint64_t          seq;
};

enum {
    BATCH_MAX   = 256,  /* messages per pool task */
    WORKING_MAX = 2,    /* pool tasks at once: leaves threads to others */
};

static void kick(struct outbox *ob);

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
        if ((rc = gw_mkdir_p(sub)) < 0) {
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

/* Worker: the file for one message, synchronously. */
static void
write_one(struct outbox *ob, struct write_req *w, const char *tmp)
{
    struct buf name, body;
    int fd = -1, rc, made = 0;

    buf_init(&name, 8192);
    buf_init(&body, 16u << 20);
    w->step = "render";
    if ((rc = buf_printf(&name, "%s/%s/", ob->dir,
                         gw_channel_name(w->m->channel))) < 0 ||
        (rc = file_name(&name, w->m->key)) < 0 ||
        (rc = buf_puts(&name, ".json")) < 0 ||
        (rc = render_json(&body, w->m)) < 0)
        goto out;
    w->path = buf_steal(&name, NULL);
    w->step = "open";
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
        rc = -errno;
        goto out;
    }
    made = 1;
    w->step = "write";
    for (size_t off = 0; off < body.len; ) {
        ssize_t n = write(fd, body.data + off, body.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            goto out;
        }
        off += (size_t)n;
    }
    w->step = "fsync";
    if (ob->fsync && fsync(fd) < 0) {
        rc = -errno;
        goto out;
    }
    w->step = "close";
    rc = close(fd) < 0 ? -errno : 0;
    fd = -1;
    if (rc < 0)
        goto out;
    w->step = "rename";
    if (rename(tmp, w->path) < 0)
        rc = -errno;
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0 && made)
        unlink(tmp);    /* best effort: ours, and incomplete */
    w->err = rc;
    buf_free(&name);
    buf_free(&body);
}

static void
batch_work(uv_work_t *work)
{
    struct batch *b = work->data;
    char tmp[4200];
    unsigned i = 0;

    for (struct write_req *w = b->list; w; w = w->next, i++) {
        snprintf(tmp, sizeof tmp, "%s/%s/.tmp-%ld-%llu-%u", b->ob->dir,
                 gw_channel_name(w->m->channel), (long)getpid(),
                 (unsigned long long)b->seq, i);
        write_one(b->ob, w, tmp);
    }
}

static void
outbox_free(struct outbox *ob)
{
    struct channel *ch = ob->ch;

    free(ob->dir);
    free(ob);
    channel_closed(ch);
}

static void
req_done(struct outbox *ob, struct write_req *w)
{
    struct send_outcome o = { .result = SEND_OK, .final = 1 };
    char reply[512];

    if (w->err) {
        /* Disk full, permissions: an operator can fix it; retry later. */
        snprintf(reply, sizeof reply, "outbox %s %s: %s", w->step,
                 w->path ? w->path : w->m->key, uv_strerror(w->err));
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
    free(w->path);
    free(w);
}

static void
batch_done(uv_work_t *work, int status)
{
    struct batch *b = work->data;
    struct outbox *ob = b->ob;
    struct write_req *w, *next;

    for (w = b->list; w; w = next) {
        next = w->next;
        if (status == UV_ECANCELED && !w->err) {
            w->err = UV_ECANCELED;
            w->step = "queue";
        }
        req_done(ob, w);
    }
    free(b);
    ob->working--;
    if (ob->closing && ob->inflight == 0)
        outbox_free(ob);
    else
        kick(ob);
}

/* Hand waiting messages to the pool, up to WORKING_MAX batches. */
static void
kick(struct outbox *ob)
{
    while (ob->head && ob->working < WORKING_MAX) {
        struct batch *b = calloc(1, sizeof *b);
        struct write_req **tailp;
        unsigned n = 0;
        int rc;

        if (!b)
            return;     /* retried when the next batch finishes or send */
        b->ob = ob;
        b->seq = ob->seq++;
        b->work.data = b;
        b->list = ob->head;
        for (tailp = &b->list; *tailp && n < BATCH_MAX; n++)
            tailp = &(*tailp)->next;
        ob->head = *tailp;
        *tailp = NULL;
        if (!ob->head)
            ob->tail = NULL;
        ob->waiting -= n;
        ob->working++;
        if ((rc = uv_queue_work(ob->ch->loop, &b->work, batch_work,
                                batch_done)) < 0) {
            for (struct write_req *w = b->list; w; w = w->next) {
                w->err = rc;
                w->step = "queue";
            }
            batch_done(&b->work, 0);
            return;
        }
    }
}

static int
outbox_send(struct channel *ch, struct message *m, channel_done_cb *cb,
            void *arg)
{
    struct outbox *ob = ch->priv;
    struct write_req *w;

    if (ob->closing)
        return GW_ESTATE;
    if ((w = calloc(1, sizeof *w)) == NULL)
        return -ENOMEM;
    w->m = m;
    w->cb = cb;
    w->arg = arg;
    if (ob->tail)
        ob->tail->next = w;
    else
        ob->head = w;
    ob->tail = w;
    ob->waiting++;
    ob->inflight++;
    kick(ob);
    return 0;
}

static void
outbox_close(struct channel *ch)
{
    struct outbox *ob = ch->priv;

    ob->closing = 1;
    if (ob->inflight == 0)
        outbox_free(ob);
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

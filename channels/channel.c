/*
 * channel.c -- picks a backend by provider type and forwards to its table.
 */
#include "channel.h"

#include "../common/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct channel_ops *const backends[] = {
    &outbox_ops,
    &smtp_ops,
    &smpp_ops,
    &fax_ops,
};

int
ch_open(struct channel **out, uv_loop_t *loop,
        const struct conf_provider *conf)
{
    const struct channel_ops *ops = NULL;
    struct channel *ch;
    int rc;

    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i]->name, conf->type) == 0)
            ops = backends[i];
    if (!ops)
        return GW_ENOTFOUND;
    if ((ch = calloc(1, sizeof *ch)) == NULL)
        return -ENOMEM;
    ch->ops = ops;
    ch->conf = conf;
    ch->loop = loop;
    ch->log.module = ops->name;
    ch->log.ctx = conf->name;
    if ((rc = ops->open(ch, conf)) < 0) {
        free(ch);
        return rc;
    }
    *out = ch;
    return 0;
}

int
ch_send(struct channel *ch, struct message *m, channel_done_cb *cb, void *arg)
{
    return ch->ops->send(ch, m, cb, arg);
}

void
ch_close(struct channel *ch, channel_closed_cb *cb, void *arg)
{
    ch->on_closed = cb;
    ch->closed_arg = arg;
    ch->ops->close(ch);
}

void
ch_stats(struct channel *ch, struct channel_stats *out)
{
    memset(out, 0, sizeof *out);
    if (ch->ops->stats)
        ch->ops->stats(ch, out);
}

void
channel_closed(struct channel *ch)
{
    if (ch->on_closed)
        ch->on_closed(ch, ch->closed_arg);
    free(ch);
}

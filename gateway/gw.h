/*
 * gw.h -- the daemon's shared context and the interfaces between the
 * gateway's internal modules (intake, expansion, dispatch, track, http,
 * metrics). Internal to gateway/: channels, templates and scheduler never
 * include it.
 */
#ifndef GW_GW_H
#define GW_GW_H

#include <glib.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "../channels/channel.h"
#include "../common/log.h"
#include "config.h"
#include "job.h"
#include "metrics.h"
#include "redis.h"
#include "state.h"

#define GW_GROUP "gateway"

/* One stream entry we read, owned until stream_done(). */
struct entry {
    struct stream *s;
    char          *id;
    char          *payload;     /* the job / message JSON, or NULL */
    size_t         len;
    unsigned       deliveries;  /* 1 for a first read */
    struct entry  *next;        /* free for the handler's lists */
};

typedef void stream_handler_cb(struct gw *g, struct entry **e, size_t n);

/* A stream this consumer reads through the group. */
struct stream {
    struct gw         *g;
    const char        *name;    /* metric label: "jobs", "email", ... */
    char              *key;
    const char        *field;   /* the entry field holding the payload */
    stream_handler_cb *handler;
    unsigned           batch;
    unsigned           max_inflight;
    unsigned           inflight;
    int                live;    /* own pending entries re-read */
    int                recovering;  /* a recovery read is outstanding */
    int                claiming;
    char              *cursor;  /* recovery position in our PEL */
    GHashTable        *ids;     /* ids in flight here, so a re-read after a
                                   reconnect does not run them twice */
    int64_t            length, pending;  /* for metrics */
};

enum { S_JOBS, S_EMAIL, S_SMS, S_FAX, S_COUNT };

struct keys {
    char *jobs, *dead, *events, *delayed, *remind, *campaigns;
    char *q[CH_COUNT];
    char *suppress[CH_COUNT], *suppress_customer;
    char *prefix;
};

struct gw {
    uv_loop_t        *loop;
    struct config    *conf;
    struct redis_addr raddr;
    struct gw_redis  *cmd;      /* commands and scripts */
    struct gw_redis  *blk;      /* blocking XREADGROUP only */
    struct keys       k;
    struct stream     streams[S_COUNT];
    int               groups_ready;
    int               setup_failed;
    int               reading;  /* a blocking read is outstanding */
    int               stopping;
    uv_timer_t        claim_timer, stats_timer, lag_timer, retry_timer,
                      promote_timer, setup_timer;
    uv_check_t        flush_check;
    uv_signal_t       sig_term, sig_int, sig_hup;
    uint64_t          lag_expected;
    struct channel   *chan[CONF_MAX_PROVIDERS];
    size_t            nchan;
    struct metrics    m;
    struct dispatch  *dp;
    struct policy    *pol;
    struct reminders *rm;
    struct unsub     *unsub;
    struct bounces   *bounces;
    struct expander  *ex;
    struct http      *http;
    struct tplcache  *tc;
    struct ops       *retry;    /* Redis work to resend after a reconnect */
    char             *config_path;
    char            **sets;
    size_t            nsets;
    int               exit_code;
};

/* A batch of Redis work that must not be lost when the connection drops:
 * it is resent when Redis is back. */
struct ops {
    struct gw   *g;
    const struct gw_script *script;
    int          numkeys;
    /* keys, then arguments: NUL-terminated, back to back in buf; their
     * offsets and lengths (a batch has thousands: no malloc per arg) */
    char        *buf;
    size_t       len, cap;
    size_t      *off, *lens;
    size_t       nargs, capargs;
    void       (*done)(struct ops *o, redisReply *r);
    void        *arg;
    struct ops  *next;
    int          tries;
};

/* track.c: the Lua scripts and the ledger */
struct scripts {
    struct gw_script expand, enqueue, dead, campaign, control, begin, finish,
                     promote, receipt, mo, faxin, customer,
                     remind_due, remind_fire, gcra, conversion, roi,
                     unsub, hit, bounce;
};
extern struct scripts gw_scripts;
/* Build the scripts for the key prefix. */
int  track_init(const char *prefix, int64_t touch_max);
/* SCRIPT LOAD them all (a script that does not compile is logged). */
void track_load_scripts(struct gw *g);
void track_free(void);
struct ops *ops_new(struct gw *g, const struct gw_script *s,
                    void (*done)(struct ops *, redisReply *), void *arg);
void ops_key(struct ops *o, const char *k);
void ops_arg(struct ops *o, const char *a);
void ops_argn(struct ops *o, const char *a, size_t len);
void ops_argi(struct ops *o, int64_t v);
/* Send; on a lost connection it is kept and resent after a reconnect. */
void ops_run(struct ops *o);
void ops_free(struct ops *o);
void ops_retry_all(struct gw *g);
/* Forced shutdown: run every parked batch's callback with no reply. */
void ops_drop_all(struct gw *g);
/* Resend parked work in a second (after a script error). */
void gw_schedule_retry(struct gw *g);
/* The common ARGV head of every ledger script: now, events maxlen, ttl. */
void ops_head(struct ops *o);
int64_t gw_now_ms(void);

/* intake.c: streams, recovery, claims, dead letters, jobs */
int  intake_init(struct gw *g);
void intake_redis_state(struct gw *g);
void intake_kick(struct gw *g);
void intake_stop(struct gw *g);
void intake_free(struct gw *g);
void stream_done(struct entry *e);
void entry_free(struct entry *e);
/* Dead-letter entries of s with one reason each (acks them). */
void dead_letter(struct gw *g, struct entry *e, enum dead_class cls,
                 const char *reason);
/* XACK + XDEL an entry, then stream_done(). */
void entry_ack(struct gw *g, struct entry *e);

/* The queue entry of one message (new string; free). */
char *message_payload(const struct job *j, const json_t *recipient,
                      const char *key, const char *campaign, int64_t ttl_ms);

/* expand.c: campaign and control jobs, audience expansion. Both take j. */
void campaign_job(struct gw *g, struct job *j, struct entry *e);
void control_job(struct gw *g, struct job *j, struct entry *e);
int  expander_init(struct gw *g);
void expander_heartbeat(struct gw *g);
int  expander_busy(struct gw *g);
void expander_free(struct gw *g);

/* remind.c: customer upserts and reminder rules */
int  remind_init(struct gw *g);
void remind_start(struct gw *g);
void remind_close(struct gw *g);
void remind_free(struct gw *g);
void customer_job(struct gw *g, struct job *j, struct entry *e);

/* policy.c: windows, buckets, backoff, frequency cap rules */
struct throttle_path;
int  policy_init(struct gw *g);
void policy_free(struct gw *g);
/* 0: may go now; else the time (ms) its window opens; -1: never. */
int64_t policy_window(struct gw *g, enum gw_channel ch, const char *class,
                      const char *tz, const json_t *campaign_window,
                      int64_t now_ms);
void policy_path(struct gw *g, const char *provider, const char *sender,
                 const char *domain, struct throttle_path *path,
                 int64_t now_us);
const char *provider_sender(struct gw *g, const char *provider);
void policy_signal(struct gw *g, const char *provider);
void policy_sweep(struct gw *g);
void policy_leases(struct gw *g);
/* Due time of the next attempt (0: attempts used up; *expired: past the
 * deadline). */
int64_t policy_retry_due(struct gw *g, enum gw_channel ch, int attempt,
                         int64_t retry_after_ms, int64_t deadline_ms,
                         int *expired);
struct buf;
void policy_freq_rules(struct gw *g, enum gw_channel ch, const char *class,
                       struct buf *out);
void policy_metrics(struct gw *g, struct buf *b);

/* dispatch.c: queues -> channels -> ledger */
int  dispatch_init(struct gw *g);
void dispatch_entries(struct gw *g, struct entry **e, size_t n);
void dispatch_flush(struct gw *g);
/* Forced shutdown: forget outcomes not yet written (entries stay
 * pending, and are re-read by the next start). */
void dispatch_drop(struct gw *g);
void dispatch_release_waiting(struct gw *g);
void dispatch_close(struct gw *g);
unsigned dispatch_inflight(struct gw *g);
void dispatch_free(struct gw *g);

/* tplcache.c: compiled template sets, reference-counted */
struct tref;
struct tpl;
int  tplcache_init(struct gw *g);
void tplcache_free(struct gw *g);
/* SIGHUP: forget every set (in-flight messages keep theirs). */
void tplcache_clear(struct gw *g);
/* Load or refresh names (char *), then cb(arg, ok); ok = 0 when Redis
 * could not be asked. */
void tplcache_ensure(struct gw *g, GPtrArray *names,
                     void (*cb)(void *arg, int ok), void *arg);
/* A new reference to name's set in *out. GW_ENOTFOUND: not loaded (ask
 * tplcache_ensure); GW_EINVAL: missing or broken, *error (borrowed) says
 * why, with template, part, line and column. */
int tplcache_get(struct gw *g, const char *name, struct tref **out,
                 const char **error);
struct tref *tref_get(struct tref *r);
void tref_put(struct tref *r);
const struct tpl *tref_tpl(const struct tref *r);

/* inbound.c: receipts and MO messages from the channels */
void inbound_cb(struct channel *ch, const struct inbound *in, void *arg);
/* Words of an MO message: "stop", "start", "help" or "none". */
const char *mo_keyword(const char *text);

/* api.c: the admin API; answers through reply exactly once */
int bearer_ok(const struct ch_http_req *rq, const char *want);
int api_handle(struct gw *g, const struct ch_http_req *rq, const char *query,
               ch_http_reply_fn *reply, void *arg);

/* unsub.c: signed unsubscribe links and /u/<token> */
int  unsub_init(struct gw *g);
void unsub_free(struct gw *g);
char *unsub_url(struct gw *g, enum gw_channel ch, const char *campaign,
                const char *customer, const char *address);
int  unsub_handle(struct gw *g, const struct ch_http_req *rq,
                  ch_http_reply_fn *reply, void *arg);

struct token_ring;
const struct token_ring *unsub_ring(struct gw *g);

/* hits.c: opens and clicks */
struct buf;
int  hits_rewrite(struct gw *g, const char *key, const char *campaign,
                  const char *customer, const char *skip_url,
                  const struct buf *html, struct buf *out);
int  hits_handle(struct gw *g, const struct ch_http_req *rq, int click,
                 ch_http_reply_fn *reply, void *arg);

/* bounce.c: bounces from SMTP replies, a mailbox and a webhook */
int  bounce_init(struct gw *g);
void bounce_close(struct gw *g);
void bounce_free(struct gw *g);
/* 0 hard, 1 soft, 2 neither; why gets the ledger reason. */
int  bounce_sync(const char *reply, char *why, size_t whylen);
int  bounce_hook(struct gw *g, const struct ch_http_req *rq,
                 ch_http_reply_fn *reply, void *arg);
void bounce_metrics(struct gw *g, struct buf *b);

/* roi.c: conversions and the ROI report */
void conversion_job(struct gw *g, struct job *j, struct entry *e);
int  api_conversion(struct gw *g, const char *body, size_t len,
                    ch_http_reply_fn *reply, void *arg);
int  api_roi(struct gw *g, const char *query, ch_http_reply_fn *reply,
             void *arg);

/* http.c: /metrics, /healthz */
int  http_start(struct gw *g);
void http_stop(struct gw *g);

#endif

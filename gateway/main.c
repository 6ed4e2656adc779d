/*
 * main.c -- gatewayd: argv, configuration, the loop, signals and the
 * shutdown order. SIGTERM/SIGINT stop the reads, let in-flight messages
 * finish and their outcomes reach Redis (handing back what did not start),
 * close the channels, the HTTP server and Redis, and return from the loop
 * with no handle left open. SIGHUP re-reads the config and applies what is
 * safe to change at run time.
 */
#include "gw.h"

#include "../common/buf.h"
#include "../common/err.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef GW_VERSION
#define GW_VERSION "dev"
#endif

static const struct log_ctx lg = { "gatewayd", NULL };

static void
usage(FILE *f)
{
    fprintf(f,
        "usage: gatewayd -c FILE [--check] [--set section.key=value]...\n"
        "  -c, --config FILE   configuration (see gateway.toml.example)\n"
        "      --check         validate the configuration and exit\n"
        "      --set K=V       override a key (TOML value or bare string);\n"
        "                      repeatable, applied after the file\n"
        "  -V, --version       print the version\n");
}

static char *
key(const char *prefix, const char *name)
{
    return g_strdup_printf("%s%s", prefix, name);
}

static void
keys_init(struct keys *k, const char *prefix)
{
    k->prefix = g_strdup(prefix);
    k->jobs = key(prefix, "jobs");
    k->dead = key(prefix, "dead");
    k->events = key(prefix, "events");
    k->delayed = key(prefix, "delayed");
    k->remind = key(prefix, "remind");
    k->campaigns = key(prefix, "campaigns");
    for (int c = 0; c < CH_COUNT; c++) {
        k->q[c] = g_strdup_printf("%sq:%s", prefix,
                                  gw_channel_name((enum gw_channel)c));
        k->suppress[c] = g_strdup_printf("%ssuppress:%s", prefix,
                                         gw_channel_name((enum gw_channel)c));
    }
    k->suppress_customer = key(prefix, "suppress:customer");
}

static void
keys_free(struct keys *k)
{
    g_free(k->prefix);
    g_free(k->jobs);
    g_free(k->dead);
    g_free(k->events);
    g_free(k->delayed);
    g_free(k->remind);
    g_free(k->campaigns);
    for (int c = 0; c < CH_COUNT; c++) {
        g_free(k->q[c]);
        g_free(k->suppress[c]);
    }
    g_free(k->suppress_customer);
}

/* ---- Redis state ---- */

static void
on_cmd_state(struct gw_redis *r, int up, void *arg)
{
    struct gw *g = arg;

    (void)r;
    if (up)
        track_load_scripts(g);
    intake_redis_state(g);
}

static void
on_blk_state(struct gw_redis *r, int up, void *arg)
{
    struct gw *g = arg;

    (void)r;
    if (up)
        intake_kick(g);
    else
        g->reading = 0;
}

/* ---- timers ---- */

static void
on_flush(uv_check_t *c)
{
    /* Outcomes that arrived during this loop turn go out in one script. */
    dispatch_flush(c->data);
}

static void
on_lag(uv_timer_t *t)
{
    struct gw *g = t->data;
    uint64_t now = uv_hrtime();

    if (g->lag_expected && now > g->lag_expected)
        metrics_lag(&g->m, (double)(now - g->lag_expected) / 1e9);
    else if (g->lag_expected)
        metrics_lag(&g->m, 0);
    g->lag_expected = now + 100 * 1000000ull;
}

static void
on_xlen(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct stream *s = arg;

    (void)r;
    if (rep && rep->type == REDIS_REPLY_INTEGER)
        s->length = rep->integer;
}

static void
on_xpending(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct stream *s = arg;

    (void)r;
    /* Summary form: [count, min-id, max-id, [[consumer, count]...]] */
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER)
        s->pending = rep->element[0]->integer;
}

static void
on_zcard(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct gw *g = arg;

    (void)r;
    if (rep && rep->type == REDIS_REPLY_INTEGER)
        g->m.delayed = rep->integer;
}

static void
on_stats(uv_timer_t *t)
{
    struct gw *g = t->data;

    policy_sweep(g);    /* idle sender/domain buckets */
    if (!g->groups_ready)
        return;
    for (int k = 0; k < S_COUNT; k++) {
        struct stream *s = &g->streams[k];
        const char *xl[] = { "XLEN", s->key };
        const char *xp[] = { "XPENDING", s->key, GW_GROUP };
        gw_redis_cmd(g->cmd, on_xlen, s, 0, 2, xl, NULL);
        gw_redis_cmd(g->cmd, on_xpending, s, 0, 3, xp, NULL);
    }
    const char *zc[] = { "ZCARD", g->k.delayed };
    gw_redis_cmd(g->cmd, on_zcard, g, 0, 2, zc, NULL);
}

static int promoting;

static void
on_promoted(struct ops *o, redisReply *rep)
{
    struct gw *g = o->g;

    promoting = 0;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
        g->m.delayed = rep->element[1]->integer;
        if (rep->element[0]->integer > 0)
            log_debug(&lg, "%lld delayed messages due",
                      (long long)rep->element[0]->integer);
    }
}

static void
on_promote(uv_timer_t *t)
{
    struct gw *g = t->data;
    struct ops *o;

    if (promoting || !g->groups_ready || g->stopping)
        return;
    promoting = 1;
    o = ops_new(g, &gw_scripts.promote, on_promoted, NULL);
    ops_key(o, g->k.delayed);
    for (int c = 0; c < CH_COUNT; c++)
        ops_key(o, g->k.q[c]);
    ops_head(o);
    ops_argi(o, 1000);
    ops_run(o);
}

/* ---- shutdown ---- */

static uv_timer_t shutdown_timer;
static uint64_t shutdown_deadline;
static unsigned channels_open;

/* The sanitizer build's leak check: fontconfig (under pango, for fax
 * pages) keeps its parsed configuration and font patterns for the life of
 * the process, reachable only from the pool threads' font maps, which
 * libuv never ends. Ours are checked; its caches are not leaks. */
const char *__lsan_default_suppressions(void);
const char *
__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n";
}

static void
on_closed_handle(uv_handle_t *h)
{
    (void)h;
}

static void
close_rest(struct gw *g)
{
    http_stop(g);
    gw_redis_close(g->cmd);
    gw_redis_close(g->blk);
    g->blk = NULL;
    /* Closing cmd ran every pending callback with no reply. */
    ops_drop_all(g);
    dispatch_drop(g);
    dispatch_close(g);
    remind_close(g);
    bounce_close(g);
    uv_close((uv_handle_t *)&g->claim_timer, on_closed_handle);
    uv_close((uv_handle_t *)&g->retry_timer, on_closed_handle);
    uv_close((uv_handle_t *)&g->setup_timer, on_closed_handle);
    uv_close((uv_handle_t *)&g->stats_timer, on_closed_handle);
    uv_close((uv_handle_t *)&g->lag_timer, on_closed_handle);
    uv_close((uv_handle_t *)&g->promote_timer, on_closed_handle);
    uv_close((uv_handle_t *)&g->flush_check, on_closed_handle);
    uv_close((uv_handle_t *)&g->sig_term, on_closed_handle);
    uv_close((uv_handle_t *)&g->sig_int, on_closed_handle);
    uv_close((uv_handle_t *)&g->sig_hup, on_closed_handle);
    uv_close((uv_handle_t *)&shutdown_timer, on_closed_handle);
}

static void
on_channel_closed(struct channel *ch, void *arg)
{
    struct gw *g = arg;

    (void)ch;
    if (--channels_open == 0)
        close_rest(g);
}

static int
drained(struct gw *g)
{
    for (int k = 0; k < S_COUNT; k++)
        if (g->streams[k].inflight)
            return 0;
    return dispatch_inflight(g) == 0 && g->retry == NULL;
}

static void
on_shutdown_tick(uv_timer_t *t)
{
    struct gw *g = t->data;

    dispatch_flush(g);
    if (!drained(g) && uv_now(g->loop) < shutdown_deadline)
        return;
    if (!drained(g))
        log_warn(&lg, "shutdown timeout: %u messages in flight stay pending "
                 "and are re-read at the next start", dispatch_inflight(g));
    uv_timer_stop(t);
    channels_open = (unsigned)g->nchan;
    if (channels_open == 0) {
        close_rest(g);
        return;
    }
    for (size_t i = 0; i < g->nchan; i++)
        ch_close(g->chan[i], on_channel_closed, g);
    g->nchan = 0;
}

static void
begin_shutdown(struct gw *g, const char *why)
{
    if (g->stopping)
        return;
    log_info(&lg, "%s: stopping reads, finishing in-flight work", why);
    g->stopping = 1;
    intake_stop(g);
    uv_timer_stop(&g->promote_timer);
    dispatch_release_waiting(g);
    /* The blocking read is abandoned: what it returns stays pending. */
    gw_redis_close(g->blk);
    g->blk = NULL;
    g->reading = 0;
    shutdown_deadline = uv_now(g->loop) +
                        (uint64_t)g->conf->shutdown_timeout_ms;
    uv_timer_start(&shutdown_timer, on_shutdown_tick, 0, 50);
}

static void
on_signal(uv_signal_t *s, int signum)
{
    struct gw *g = s->data;
    struct config *c;
    char err[512];
    int lv;

    if (signum != SIGHUP) {
        begin_shutdown(g, signum == SIGTERM ? "SIGTERM" : "SIGINT");
        return;
    }
    if (conf_load(&c, g->config_path, g->sets, g->nsets, err, sizeof err)
        < 0) {
        log_error(&lg, "SIGHUP: keeping the running config: %s", err);
        return;
    }
    if ((lv = log_level_parse(c->log_level)) >= 0)
        log_threshold = (enum log_level)lv;
    /* Templates are compiled again on next use; messages being sent keep
     * the set they were rendered from. */
    tplcache_clear(g);
    log_info(&lg, "SIGHUP: config re-read; log_level = %s applied, "
             "templates reloaded (other changes take effect at the next "
             "start)", c->log_level);
    conf_free(c);
}

static int
open_channels(struct gw *g)
{
    int rc;

    for (size_t i = 0; i < g->conf->nprovider; i++) {
        if ((rc = ch_open(&g->chan[g->nchan], g->loop,
                          &g->conf->provider[i])) < 0) {
            log_error(&lg, "provider %s: %s", g->conf->provider[i].name,
                      gw_strerror(rc));
            return rc;
        }
        g->chan[g->nchan]->on_inbound = inbound_cb;
        g->chan[g->nchan]->inbound_arg = g;
        g->nchan++;
    }
    return 0;
}

static void
walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    log_error(&lg, "handle left open at exit: %s",
              uv_handle_type_name(uv_handle_get_type(h)));
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check", no_argument, NULL, 'k' },
        { "set", required_argument, NULL, 's' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    struct gw g;
    char err[1024];
    const char *path = NULL;
    char **sets = calloc((size_t)argc, sizeof *sets);
    size_t nsets = 0;
    int check = 0, opt, rc, lv;
    uv_loop_t loop;

    memset(&g, 0, sizeof g);
    while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 'k': check = 1; break;
        case 's': sets[nsets++] = optarg; break;
        case 'V': printf("gatewayd %s\n", GW_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return 2;
    }
    if ((rc = conf_load(&g.conf, path, sets, nsets, err, sizeof err)) < 0) {
        fprintf(stderr, "%s\n", err);
        free(sets);
        return 1;
    }
    if (gw_redis_addr_parse(&g.raddr, g.conf->redis_url, err, sizeof err)
        < 0) {
        fprintf(stderr, "%s: redis.url: %s\n", path, err);
        conf_free(g.conf);
        free(sets);
        return 1;
    }
    if (check) {
        printf("%s: ok\n", path);
        gw_redis_addr_free(&g.raddr);
        conf_free(g.conf);
        free(sets);
        return 0;
    }
    if ((lv = log_level_parse(g.conf->log_level)) >= 0)
        log_threshold = (enum log_level)lv;
    g.config_path = (char *)path;
    g.sets = sets;
    g.nsets = nsets;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());

    if (uv_loop_init(&loop) < 0)
        fatal("uv_loop_init failed");
    g.loop = &loop;
    keys_init(&g.k, g.conf->prefix);
    if (track_init(g.conf->prefix, g.conf->touch_max) < 0)
        fatal("cannot build the Lua scripts");
    if (open_channels(&g) < 0)
        fatal("cannot open the channels");
    if (policy_init(&g) < 0 || dispatch_init(&g) < 0 ||
        expander_init(&g) < 0 || remind_init(&g) < 0 ||
        unsub_init(&g) < 0 || bounce_init(&g) < 0 ||
        intake_init(&g) < 0 || tplcache_init(&g) < 0)
        fatal("out of memory");
    if (http_start(&g) < 0)
        fatal("cannot start the HTTP server on %s", g.conf->http_listen);

    uv_timer_init(&loop, &g.stats_timer);
    uv_timer_init(&loop, &g.lag_timer);
    uv_timer_init(&loop, &g.promote_timer);
    uv_timer_init(&loop, &shutdown_timer);
    uv_check_init(&loop, &g.flush_check);
    g.stats_timer.data = g.lag_timer.data = g.promote_timer.data =
        shutdown_timer.data = g.flush_check.data = &g;
    uv_timer_start(&g.stats_timer, on_stats, 100, 2000);
    uv_timer_start(&g.lag_timer, on_lag, 100, 100);
    uv_timer_start(&g.promote_timer, on_promote, 250, 250);
    remind_start(&g);
    uv_check_start(&g.flush_check, on_flush);
    uv_signal_init(&loop, &g.sig_term);
    uv_signal_init(&loop, &g.sig_int);
    uv_signal_init(&loop, &g.sig_hup);
    g.sig_term.data = g.sig_int.data = g.sig_hup.data = &g;
    uv_signal_start(&g.sig_term, on_signal, SIGTERM);
    uv_signal_start(&g.sig_int, on_signal, SIGINT);
    uv_signal_start(&g.sig_hup, on_signal, SIGHUP);
    signal(SIGPIPE, SIG_IGN);

    g.cmd = gw_redis_new(&loop, "cmd", &g.raddr,
                         (uint64_t)g.conf->redis_timeout_ms,
                         (uint64_t)g.conf->reconnect_max_ms, on_cmd_state, &g);
    g.blk = gw_redis_new(&loop, "block", &g.raddr,
                         (uint64_t)g.conf->redis_timeout_ms,
                         (uint64_t)g.conf->reconnect_max_ms, on_blk_state, &g);
    if (!g.cmd || !g.blk)
        fatal("out of memory");
    log_info(&lg, "gatewayd %s started: consumer %s, redis %s, prefix %s",
             GW_VERSION, g.conf->consumer, g.conf->redis_url, g.conf->prefix);

    uv_run(&loop, UV_RUN_DEFAULT);

    rc = uv_loop_close(&loop);
    if (rc != 0) {
        uv_walk(&loop, walk_cb, NULL);
        log_error(&lg, "loop closed with handles open: %s", uv_strerror(rc));
    }
    log_info(&lg, "stopped");
    intake_free(&g);
    tplcache_free(&g);
    expander_free(&g);
    dispatch_free(&g);
    policy_free(&g);
    remind_free(&g);
    unsub_free(&g);
    bounce_free(&g);
    track_free();
    keys_free(&g.k);
    gw_redis_addr_free(&g.raddr);
    conf_free(g.conf);
    free(sets);
    return rc == 0 ? g.exit_code : 1;
}

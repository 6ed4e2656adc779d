/*
 * metrics.c -- GET /metrics in the Prometheus text format (checked with
 * promtool in the tests). Counters are this process's; stream lengths and
 * pending counts are sampled from Redis every couple of seconds.
 */
#include "gw.h"

#include "../common/buf.h"

#include <stdio.h>
#include <string.h>

#ifndef GW_VERSION
#define GW_VERSION "dev"
#endif
#ifndef GW_COMMIT
#define GW_COMMIT "unknown"
#endif

const double lag_bounds[LAG_BUCKETS] = {
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0
};

void
metrics_lag(struct metrics *m, double s)
{
    int i;

    for (i = 0; i < LAG_BUCKETS && s > lag_bounds[i]; i++)
        ;
    m->lag_bucket[i]++;
    m->lag_count++;
    m->lag_sum += s;
    m->lag_last = s;
    if (s > m->lag_max)
        m->lag_max = s;
}

static void
head(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int
metrics_render(struct gw *g, struct buf *b)
{
    static const char *const job_types[] = {
        "campaign", "message", "control", "customer", "conversion",
        "invalid"
    };
    const struct metrics *m = &g->m;
    struct gw_redis_stats rs;
    uint64_t cum = 0;

    head(b, "gw_jobs_received_total", "counter",
         "Jobs read from the jobs stream, by type (invalid: not parseable).");
    for (int i = 0; i <= JOB_INVALID; i++)
        buf_printf(b, "gw_jobs_received_total{type=\"%s\"} %llu\n",
                   job_types[i], (unsigned long long)m->jobs_received[i]);

    head(b, "gw_jobs_dead_total", "counter",
         "Jobs and audience recipients written to the dead-letter stream, "
         "by reason.");
    for (int i = 0; i < DEAD_COUNT; i++)
        buf_printf(b, "gw_jobs_dead_total{reason=\"%s\"} %llu\n",
                   dead_class_name((enum dead_class)i),
                   (unsigned long long)m->jobs_dead[i]);

    head(b, "gw_messages_total", "counter",
         "Message state transitions made by this process, by channel and "
         "new state.");
    for (int c = 0; c < CH_COUNT; c++)
        for (int s = ST_QUEUED; s < ST_COUNT; s++)
            buf_printf(b, "gw_messages_total{channel=\"%s\",state=\"%s\"} "
                       "%llu\n", gw_channel_name((enum gw_channel)c),
                       msg_state_name((enum msg_state)s),
                       (unsigned long long)m->messages[c][s]);

    head(b, "gw_stream_length", "gauge",
         "Entries in each stream (sampled).");
    for (int k = 0; k < S_COUNT; k++)
        buf_printf(b, "gw_stream_length{stream=\"%s\"} %lld\n",
                   g->streams[k].name, (long long)g->streams[k].length);
    head(b, "gw_stream_pending", "gauge",
         "Entries read by the consumer group but not yet acknowledged "
         "(sampled).");
    for (int k = 0; k < S_COUNT; k++)
        buf_printf(b, "gw_stream_pending{stream=\"%s\"} %lld\n",
                   g->streams[k].name, (long long)g->streams[k].pending);
    head(b, "gw_delayed_messages", "gauge",
         "Messages waiting in the delayed queue (sampled).");
    buf_printf(b, "gw_delayed_messages %lld\n", (long long)m->delayed);
    head(b, "gw_inflight_messages", "gauge",
         "Messages between dispatch and their recorded outcome.");
    buf_printf(b, "gw_inflight_messages %u\n", dispatch_inflight(g));

    head(b, "gw_campaigns_started_total", "counter",
         "Campaigns created by this process.");
    buf_printf(b, "gw_campaigns_started_total %llu\n",
               (unsigned long long)m->campaigns_started);
    head(b, "gw_recipients_expanded_total", "counter",
         "Audience recipients queued as messages.");
    buf_printf(b, "gw_recipients_expanded_total %llu\n",
               (unsigned long long)m->recipients_expanded);
    head(b, "gw_recipients_duplicate_total", "counter",
         "Audience recipients skipped because their message existed.");
    buf_printf(b, "gw_recipients_duplicate_total %llu\n",
               (unsigned long long)m->recipients_duplicate);
    head(b, "gw_orphan_entries_total", "counter",
         "Queue entries acked without a send because they had no ledger.");
    buf_printf(b, "gw_orphan_entries_total %llu\n",
               (unsigned long long)m->orphans);

    head(b, "gw_redis_up", "gauge",
         "1 when the command connection to Redis is up.");
    buf_printf(b, "gw_redis_up %d\n", gw_redis_is_up(g->cmd));
    gw_redis_stats(g->cmd, &rs);
    head(b, "gw_redis_connects_total", "counter",
         "Successful (re)connections of the command connection.");
    buf_printf(b, "gw_redis_connects_total %llu\n",
               (unsigned long long)rs.connects);
    head(b, "gw_redis_timeouts_total", "counter",
         "Connections dropped because a reply was overdue.");
    buf_printf(b, "gw_redis_timeouts_total %llu\n",
               (unsigned long long)rs.timeouts);
    head(b, "gw_redis_batches_resent_total", "counter",
         "Script batches resent because the connection dropped.");
    buf_printf(b, "gw_redis_batches_resent_total %llu\n",
               (unsigned long long)m->redis_retries);

    head(b, "gw_event_loop_lag_seconds", "histogram",
         "How late a 100 ms timer fires: time the loop spent elsewhere.");
    for (int i = 0; i < LAG_BUCKETS; i++) {
        cum += m->lag_bucket[i];
        buf_printf(b, "gw_event_loop_lag_seconds_bucket{le=\"%g\"} %llu\n",
                   lag_bounds[i], (unsigned long long)cum);
    }
    buf_printf(b, "gw_event_loop_lag_seconds_bucket{le=\"+Inf\"} %llu\n",
               (unsigned long long)m->lag_count);
    buf_printf(b, "gw_event_loop_lag_seconds_sum %.6f\n", m->lag_sum);
    buf_printf(b, "gw_event_loop_lag_seconds_count %llu\n",
               (unsigned long long)m->lag_count);
    head(b, "gw_event_loop_lag_max_seconds", "gauge",
         "Largest event-loop lag seen since start.");
    buf_printf(b, "gw_event_loop_lag_max_seconds %.6f\n", m->lag_max);

    {
        struct channel_stats cs[CONF_MAX_PROVIDERS];

        for (size_t i = 0; i < g->nchan; i++)
            ch_stats(g->chan[i], &cs[i]);
        head(b, "gw_provider_messages_total", "counter",
             "Sends by provider and outcome, as the channel saw them.");
        for (size_t i = 0; i < g->nchan; i++) {
            const char *p = g->chan[i]->conf->name;
            buf_printf(b, "gw_provider_messages_total{provider=\"%s\","
                       "outcome=\"sent\"} %llu\n", p,
                       (unsigned long long)cs[i].sent);
            buf_printf(b, "gw_provider_messages_total{provider=\"%s\","
                       "outcome=\"tempfail\"} %llu\n", p,
                       (unsigned long long)cs[i].tempfail);
            buf_printf(b, "gw_provider_messages_total{provider=\"%s\","
                       "outcome=\"permfail\"} %llu\n", p,
                       (unsigned long long)cs[i].permfail);
        }
        head(b, "gw_provider_inflight", "gauge",
             "Messages handed to the provider's channel, not yet answered.");
        for (size_t i = 0; i < g->nchan; i++)
            buf_printf(b, "gw_provider_inflight{provider=\"%s\"} %u\n",
                       g->chan[i]->conf->name, cs[i].inflight);
        head(b, "gw_provider_connections", "gauge",
             "Connections (SMTP) or binds (SMPP) open to the provider.");
        for (size_t i = 0; i < g->nchan; i++)
            buf_printf(b, "gw_provider_connections{provider=\"%s\"} %u\n",
                       g->chan[i]->conf->name, cs[i].connections);
        head(b, "gw_provider_connections_opened_total", "counter",
             "Connections (or binds) opened to the provider.");
        for (size_t i = 0; i < g->nchan; i++)
            buf_printf(b, "gw_provider_connections_opened_total{provider="
                       "\"%s\"} %llu\n", g->chan[i]->conf->name,
                       (unsigned long long)cs[i].connections_opened);
        head(b, "gw_provider_replies_total", "counter",
             "Provider replies by class (2xx, 4xx, 5xx for SMTP).");
        for (size_t i = 0; i < g->nchan; i++)
            for (int c = 2; c <= 5; c++)
                buf_printf(b, "gw_provider_replies_total{provider=\"%s\","
                           "class=\"%dxx\"} %llu\n", g->chan[i]->conf->name,
                           c, (unsigned long long)cs[i].replies[c]);
        head(b, "gw_provider_alarm", "gauge",
             "1 when the provider refuses our credentials.");
        for (size_t i = 0; i < g->nchan; i++)
            buf_printf(b, "gw_provider_alarm{provider=\"%s\"} %u\n",
                       g->chan[i]->conf->name, cs[i].alarm);
    }

    {
        static const char *const rs[] = { "enroute", "delivered",
            "undeliverable", "expired", "rejected", "retry" };
        static const char *const ik[] = { "receipt", "mo", "fax" };

        head(b, "gw_provider_units_total", "counter",
             "Billable units accepted by the provider: fax pages, SMS "
             "segments, emails.");
        for (size_t i = 0; i < g->nchan; i++)
            buf_printf(b, "gw_provider_units_total{provider=\"%s\"} %llu\n",
                       g->chan[i]->conf->name,
                       (unsigned long long)m->prov[i].units);
        head(b, "gw_provider_receipts_total", "counter",
             "Delivery receipts and status webhooks by outcome.");
        for (size_t i = 0; i < g->nchan; i++)
            for (size_t k = 0; k < 6; k++)
                buf_printf(b, "gw_provider_receipts_total{provider=\"%s\","
                           "state=\"%s\"} %llu\n", g->chan[i]->conf->name,
                           rs[k], (unsigned long long)m->prov[i].receipts[k]);
        head(b, "gw_provider_inbound_total", "counter",
             "What the provider sent us on its own: receipts, MO "
             "messages, inbound faxes.");
        for (size_t i = 0; i < g->nchan; i++)
            for (size_t k = 0; k < 3; k++)
                buf_printf(b, "gw_provider_inbound_total{provider=\"%s\","
                           "kind=\"%s\"} %llu\n", g->chan[i]->conf->name,
                           ik[k], (unsigned long long)m->prov[i].inbound[k]);
        head(b, "gw_provider_failures_total", "counter",
             "Failures reported by the provider, by its reason.");
        for (size_t i = 0; i < g->nchan; i++) {
            const struct prov_metrics *pm = &m->prov[i];
            for (size_t k = 0; k < REASONS_MAX && pm->reason[k][0]; k++)
                buf_printf(b, "gw_provider_failures_total{provider=\"%s\","
                           "reason=\"%s\"} %llu\n", g->chan[i]->conf->name,
                           pm->reason[k], (unsigned long long)pm->reason_n[k]);
            if (pm->reason_n[REASONS_MAX])
                buf_printf(b, "gw_provider_failures_total{provider=\"%s\","
                           "reason=\"other\"} %llu\n", g->chan[i]->conf->name,
                           (unsigned long long)pm->reason_n[REASONS_MAX]);
        }
    }

    policy_metrics(g, b);
    bounce_metrics(g, b);
    head(b, "gw_build_info", "gauge", "Version and commit of this build.");
    return buf_printf(b, "gw_build_info{version=\"%s\",commit=\"%s\"} 1\n",
                      GW_VERSION, GW_COMMIT);
}

void
metrics_reason(struct prov_metrics *pm, const char *reason)
{
    char w[40];
    size_t n = 0, k;

    /* A label value: keep [A-Za-z0-9_.-], so it needs no escaping. */
    for (const char *p = reason ? reason : ""; *p && n + 1 < sizeof w; p++)
        if (g_ascii_isalnum(*p) || *p == '_' || *p == '.' || *p == '-')
            w[n++] = *p;
    w[n] = 0;
    if (n == 0)
        strcpy(w, "unknown");
    for (k = 0; k < REASONS_MAX && pm->reason[k][0]; k++)
        if (strcmp(pm->reason[k], w) == 0)
            break;
    if (k < REASONS_MAX && !pm->reason[k][0])
        strcpy(pm->reason[k], w);
    pm->reason_n[k]++;
}

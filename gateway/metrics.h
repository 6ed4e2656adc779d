/*
 * metrics.h -- the daemon's counters and gauges, rendered as Prometheus
 * text by metrics.c for GET /metrics. Plain integers: one thread.
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdint.h>

#include "config.h"
#include "job.h"
#include "state.h"

#define LAG_BUCKETS 10
#define REASONS_MAX 16

/* What the gateway saw of one provider (by index in g->chan). */
struct prov_metrics {
    uint64_t units;                     /* pages, segments accepted */
    uint64_t receipts[6];               /* by enum receipt_state */
    uint64_t inbound[3];                /* by enum inbound_kind */
    char     reason[REASONS_MAX][40];   /* failure reasons seen (first
                                           REASONS_MAX, then "other") */
    uint64_t reason_n[REASONS_MAX + 1];
};

struct metrics {
    uint64_t jobs_received[JOB_INVALID + 1];  /* by type; invalid last */
    uint64_t jobs_dead[DEAD_COUNT];
    uint64_t messages[CH_COUNT][ST_COUNT];  /* transitions into a state */
    uint64_t campaigns_started, recipients_expanded, recipients_duplicate;
    uint64_t redis_retries;             /* batches resent after a drop */
    uint64_t orphans;                   /* queue entries without a ledger */
    uint64_t lag_bucket[LAG_BUCKETS + 1];
    uint64_t lag_count;
    double   lag_sum, lag_last, lag_max;
    int64_t  delayed;                   /* gw:delayed size */
    struct prov_metrics prov[CONF_MAX_PROVIDERS];
};

struct gw;
struct buf;

extern const double lag_bounds[LAG_BUCKETS];

void metrics_lag(struct metrics *m, double seconds);
/* Count a failure reason: a short word such as "user_busy". */
void metrics_reason(struct prov_metrics *pm, const char *reason);
int  metrics_render(struct gw *g, struct buf *out);

#endif

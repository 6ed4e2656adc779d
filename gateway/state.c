/*
 * state.c -- the transition table of the delivery state machine.
 */
#include "state.h"

#include "../common/err.h"

#include <stdio.h>
#include <string.h>

static const char *const names[ST_COUNT] = {
    "", "queued", "deferred", "sending", "accepted", "delivered", "bounced",
    "failed", "expired", "suppressed", "capped", "cancelled"
};

#define B(s) (1u << (s))
#define SKIPS (B(ST_SUPPRESSED) | B(ST_CAPPED) | B(ST_CANCELLED))

/* allowed[from] = set of states it may move to. */
static const unsigned allowed[ST_COUNT] = {
    [ST_NONE]     = B(ST_QUEUED) | B(ST_FAILED),
    [ST_QUEUED]   = B(ST_DEFERRED) | B(ST_SENDING) | B(ST_FAILED) |
                    B(ST_EXPIRED) | SKIPS,
    [ST_DEFERRED] = B(ST_SENDING) | B(ST_FAILED) | B(ST_EXPIRED) | SKIPS,
    [ST_SENDING]  = B(ST_SENDING) | B(ST_DEFERRED) | B(ST_ACCEPTED) |
                    B(ST_DELIVERED) | B(ST_BOUNCED) | B(ST_FAILED) |
                    B(ST_EXPIRED),
    /* deferred: the provider took it but could not deliver this time
     * (a busy fax line); it is sent again as a new attempt */
    [ST_ACCEPTED] = B(ST_DELIVERED) | B(ST_BOUNCED) | B(ST_FAILED) |
                    B(ST_EXPIRED) | B(ST_DEFERRED),
    /* final states go nowhere */
};

const char *
msg_state_name(enum msg_state s)
{
    return (unsigned)s < ST_COUNT ? names[s] : "?";
}

int
msg_state_parse(const char *s)
{
    for (int i = 0; i < ST_COUNT; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

int
msg_state_final(enum msg_state s)
{
    return s >= ST_DELIVERED && s < ST_COUNT;
}

int
msg_transition_ok(enum msg_state from, enum msg_state to)
{
    if ((unsigned)from >= ST_COUNT || (unsigned)to >= ST_COUNT)
        return 0;
    return (allowed[from] & B(to)) != 0;
}

int
msg_state_lua(char *out, size_t outlen)
{
    size_t n = 0;
    int w;

#define PUT(...) do { \
        w = snprintf(out + n, outlen - n, __VA_ARGS__); \
        if (w < 0 || (size_t)w >= outlen - n) return GW_ETOOBIG; \
        n += (size_t)w; \
    } while (0)

    PUT("local ALLOWED = {");
    for (int f = 0; f < ST_COUNT; f++) {
        PUT("[\"%s\"]={", names[f]);
        for (int t = 0; t < ST_COUNT; t++)
            if (allowed[f] & B(t))
                PUT("[\"%s\"]=true,", names[t]);
        PUT("},");
    }
    PUT("}\nlocal FINAL = {");
    for (int s = 0; s < ST_COUNT; s++)
        if (msg_state_final((enum msg_state)s))
            PUT("[\"%s\"]=true,", names[s]);
    PUT("}\n");
#undef PUT
    return 0;
}

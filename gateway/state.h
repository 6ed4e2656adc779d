/*
 * state.h -- the delivery state machine of DESIGN.md section 4. One table
 * of allowed transitions; the Lua setter in the ledger scripts is generated
 * from it, so the C checks and Redis agree on what "never backwards" means.
 */
#ifndef GW_STATE_H
#define GW_STATE_H

#include <stddef.h>

enum msg_state {
    ST_NONE,        /* no ledger entry yet */
    ST_QUEUED,
    ST_DEFERRED,
    ST_SENDING,
    ST_ACCEPTED,
    ST_DELIVERED,
    ST_BOUNCED,
    ST_FAILED,
    ST_EXPIRED,
    ST_SUPPRESSED,
    ST_CAPPED,
    ST_CANCELLED,
    ST_COUNT
};

const char *msg_state_name(enum msg_state s);
/* -1 if unknown; "" is ST_NONE. */
int msg_state_parse(const char *s);
int msg_state_final(enum msg_state s);
/* Whether from -> to is a legal transition. sending -> sending is legal: it
 * is the resend of a message left in doubt by a crash. */
int msg_transition_ok(enum msg_state from, enum msg_state to);

/* Writes the Lua tables ALLOWED and FINAL for the ledger scripts into out
 * (NUL-terminated). Returns 0 or GW_ETOOBIG. */
int msg_state_lua(char *out, size_t outlen);

#endif

/*
 * err.h -- error codes. Functions return 0 or a negative code: -errno, or
 * one of ours below (kept far from the errno range).
 */
#ifndef GW_ERR_H
#define GW_ERR_H

enum {
    GW_ETOOBIG   = -10001,  /* a capped buffer or input limit was hit */
    GW_EPARSE    = -10002,  /* malformed input */
    GW_ECONFIG   = -10003,  /* invalid configuration */
    GW_EREDIS    = -10004,  /* Redis replied with an error */
    GW_ENOCONN   = -10005,  /* not connected (Redis, peer) */
    GW_ETIMEOUT  = -10006,
    GW_ESTATE    = -10007,  /* call not allowed in the current state */
    GW_ENOTFOUND = -10008,
    GW_EINVAL    = -10009,  /* invalid argument or data */
};

/* A static description of rc (ours or -errno). */
const char *gw_strerror(int rc);

#endif

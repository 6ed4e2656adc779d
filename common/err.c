/*
 * err.c -- names for our error codes and errno values.
 */
#include "err.h"

#include <string.h>

const char *
gw_strerror(int rc)
{
    switch (rc) {
    case 0:            return "success";
    case GW_ETOOBIG:   return "size limit exceeded";
    case GW_EPARSE:    return "malformed input";
    case GW_ECONFIG:   return "invalid configuration";
    case GW_EREDIS:    return "redis error";
    case GW_ENOCONN:   return "not connected";
    case GW_ETIMEOUT:  return "timed out";
    case GW_ESTATE:    return "not allowed in this state";
    case GW_ENOTFOUND: return "not found";
    case GW_EINVAL:    return "invalid argument";
    }
    return rc < 0 ? strerror(-rc) : "unknown error";
}

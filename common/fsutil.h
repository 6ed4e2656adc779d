/*
 * fsutil.h -- small file-system helpers shared by the channels that write
 * files (the outbox, stored inbound faxes).
 */
#ifndef GW_FSUTIL_H
#define GW_FSUTIL_H

/* mkdir -p with mode 0755: 0, or -errno (-ENAMETOOLONG past 4095 bytes
 * or for an empty path). */
int gw_mkdir_p(const char *path);

#endif

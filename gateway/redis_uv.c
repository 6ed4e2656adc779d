/*
 * redis_uv.c -- attaches a hiredis async context to the libuv loop. Kept
 * apart because hiredis's adapter header defines static functions (such as
 * on_close) that would clash with names in any other file.
 */
#include <hiredis/adapters/libuv.h>

int gw_redis_attach(redisAsyncContext *ac, uv_loop_t *loop);

int
gw_redis_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    return redisLibuvAttach(ac, loop) == REDIS_OK ? 0 : -1;
}

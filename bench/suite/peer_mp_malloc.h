/*
 * peer_mp_malloc.h: mempool's mp_malloc/mp_free, the process-wide thread-safe heap (size classes
 * over thread-safe pools, large blocks mapped one by one), as a suite peer of the malloc family:
 * any size from any handle (the handle is a token), shared by every thread. mp_free finds the
 * block's class from its address, as free() does; the size is not passed (see peer_mp_heap.h for
 * the sized free).
 */
#ifndef MP_BENCH_PEER_MP_MALLOC_H
#define MP_BENCH_PEER_MP_MALLOC_H

#include <mempool.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define PEER_NAME "mp_malloc"
#define PEER_FIXED_SIZE 0
#define PEER_THREAD_SAFE 1

typedef char peer_handle;
static char peer_token;

/* MEMPOOL_CHECKED=1 would make the heap a checked one: measured, that is another peer. */
static bool peer_init(char *about, size_t n)
{
    const char *env = getenv("MEMPOOL_CHECKED");
    if (env != NULL && env[0] == '1') {
        snprintf(about, n, "MEMPOOL_CHECKED=1 is set: mp_malloc would be the checked heap");
        return false;
    }
    snprintf(about, n,
             "mempool %d.%d.%d mp_malloc/mp_free, libmempool.a: the process-wide thread-safe heap "
             "(size classes over thread-safe pools with per-thread caches)",
             MP_VERSION_MAJOR, MP_VERSION_MINOR, MP_VERSION_PATCH);
    return true;
}

static peer_handle *peer_open(size_t size, size_t max_live)
{
    (void)size, (void)max_live;
    return &peer_token;
}

static inline void *peer_alloc(peer_handle *h, size_t size)
{
    (void)h;
    return mp_malloc(size);
}

static inline void peer_free(peer_handle *h, void *p, size_t size)
{
    (void)h, (void)size;
    mp_free(p);
}

static void peer_close(peer_handle *h)
{
    (void)h;
}

#endif /* MP_BENCH_PEER_MP_MALLOC_H */

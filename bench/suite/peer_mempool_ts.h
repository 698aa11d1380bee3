/*
 * peer_mempool_ts.h: mempool's thread-safe fixed-size pools (MP_THREAD_SAFE) as a suite peer: the
 * same adapter as peer_mempool.h with the flag set. alloc and free are the same inline
 * mp_pool_alloc/mp_pool_free; off their plain fast path they go through this thread's cache of the
 * pool (default size), inline too, and to the pool's lock only when the cache is empty or full.
 * One handle is shared by every thread of a thread workload.
 */
#ifndef MP_BENCH_PEER_MEMPOOL_TS_H
#define MP_BENCH_PEER_MEMPOOL_TS_H

#include <mempool.h>

#include <stdbool.h>
#include <stdio.h>

#define PEER_NAME "mempool_ts"
#define PEER_FIXED_SIZE 1
#define PEER_THREAD_SAFE 1

typedef mp_pool peer_handle;

static bool peer_init(char *about, size_t n)
{
    snprintf(about, n, "mempool %d.%d.%d thread-safe fixed pools (MP_THREAD_SAFE), libmempool.a: inline "
                       "mp_pool_alloc/mp_pool_free over per-thread caches (default size), growing",
             MP_VERSION_MAJOR, MP_VERSION_MINOR, MP_VERSION_PATCH);
    return true;
}

static peer_handle *peer_open(size_t size, size_t max_live)
{
    (void)max_live; /* the pool grows */
    return mp_pool_create(&(mp_pool_opts){ .block_size = size, .flags = MP_THREAD_SAFE, .name = "suite_ts" });
}

static inline void *peer_alloc(peer_handle *h, size_t size)
{
    (void)size;
    return mp_pool_alloc(h);
}

static inline void peer_free(peer_handle *h, void *p, size_t size)
{
    (void)size;
    mp_pool_free(h, p);
}

static void peer_close(peer_handle *h)
{
    mp_pool_destroy(h);
}

#endif /* MP_BENCH_PEER_MEMPOOL_TS_H */

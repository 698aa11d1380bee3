/*
 * peer_mempool.h: mempool's fixed-size pools (mp_pool_alloc/mp_pool_free, inline fast paths) as a
 * suite peer. One growing pool (capacity 0) per block size, default alignment, no flags.
 *
 * peer_mempool_ts.h is the same adapter with MP_THREAD_SAFE: it defines PEER_MEMPOOL_TS and
 * includes this file.
 */
#ifndef MP_BENCH_PEER_MEMPOOL_H
#define MP_BENCH_PEER_MEMPOOL_H

#include <mempool.h>

#include <stdbool.h>
#include <stdio.h>

#ifdef PEER_MEMPOOL_TS
#define PEER_NAME "mempool_ts"
#define PEER_THREAD_SAFE 1
#define PEER_POOL_FLAGS MP_THREAD_SAFE
#define PEER_ABOUT                                                                                 \
    "thread-safe fixed pools (MP_THREAD_SAFE), libmempool.a: inline mp_pool_alloc/mp_pool_free "   \
    "over per-thread caches (default size), growing"
#else
#define PEER_NAME "mempool"
#define PEER_THREAD_SAFE 0
#define PEER_POOL_FLAGS 0u
#define PEER_ABOUT                                                                                 \
    "fixed pools, libmempool.a: inline mp_pool_alloc/mp_pool_free, growing (capacity 0)"
#endif
#define PEER_FIXED_SIZE 1

typedef mp_pool peer_handle;

static bool peer_init(char *about, size_t n)
{
    snprintf(about, n, "mempool %d.%d.%d " PEER_ABOUT, MP_VERSION_MAJOR, MP_VERSION_MINOR,
             MP_VERSION_PATCH);
    return true;
}

static peer_handle *peer_open(size_t size, size_t max_live)
{
    (void)max_live; /* the pool grows */
    return mp_pool_create(
        &(mp_pool_opts){.block_size = size, .flags = PEER_POOL_FLAGS, .name = PEER_NAME});
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

/* The region workload's release: every block at once (mp_pool_reset). */
#define PEER_RELEASE_ALL 1
static void peer_release_all(peer_handle *h)
{
    mp_pool_reset(h);
}

static void peer_close(peer_handle *h)
{
    mp_pool_destroy(h);
}

#endif /* MP_BENCH_PEER_MEMPOOL_H */

/*
 * peer_tbb.h: oneTBB's scalable allocator through its own API, scalable_malloc/scalable_free from
 * libtbbmalloc (which, unlike libtbbmalloc_proxy, leaves the program's malloc alone).
 */
#ifndef MP_BENCH_PEER_TBB_H
#define MP_BENCH_PEER_TBB_H

#include <tbb/scalable_allocator.h>

#include <stdbool.h>
#include <stdio.h>

#define PEER_NAME "tbb"
#define PEER_FIXED_SIZE 0
#define PEER_THREAD_SAFE 1

typedef char peer_handle;
static char peer_token;

static bool peer_init(char *about, size_t n)
{
    snprintf(about, n, "oneTBB scalable_malloc/scalable_free, libtbbmalloc (no malloc replacement)");
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
    return scalable_malloc(size);
}

static inline void peer_free(peer_handle *h, void *p, size_t size)
{
    (void)h, (void)size;
    scalable_free(p);
}

static void peer_close(peer_handle *h)
{
    (void)h;
}

#endif /* MP_BENCH_PEER_TBB_H */

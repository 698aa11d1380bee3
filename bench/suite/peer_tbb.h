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

static bool peer_init(char *about, size_t n)
{
    snprintf(about, n,
             "oneTBB scalable_malloc/scalable_free, libtbbmalloc (no malloc replacement)");
    return true;
}

#define PEER_MALLOC(size) scalable_malloc(size)
#define PEER_FREE(p) scalable_free(p)
#include "peer_malloc_like.h"

#endif /* MP_BENCH_PEER_TBB_H */

/*
 * peer_malloc_like.h: the handle side of a peer that is a general-purpose allocator, for the
 * peer_<name>.h files of glibc, jemalloc, tcmalloc, mimalloc and TBB. Such a peer serves any size
 * from any handle, so its handle is a token; define PEER_MALLOC(size) and PEER_FREE(p) as its
 * allocator's calls, then include this file.
 */
#ifndef MP_BENCH_PEER_MALLOC_LIKE_H
#define MP_BENCH_PEER_MALLOC_LIKE_H

#include <stddef.h>

#define PEER_FIXED_SIZE 0
#define PEER_THREAD_SAFE 1

typedef char peer_handle;
static char peer_token;

static peer_handle *peer_open(size_t size, size_t max_live)
{
    (void)size, (void)max_live;
    return &peer_token;
}

static inline void *peer_alloc(peer_handle *h, size_t size)
{
    (void)h;
    return PEER_MALLOC(size);
}

static inline void peer_free(peer_handle *h, void *p, size_t size)
{
    (void)h, (void)size;
    PEER_FREE(p);
}

static void peer_close(peer_handle *h)
{
    (void)h;
}

#endif /* MP_BENCH_PEER_MALLOC_LIKE_H */

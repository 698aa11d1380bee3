/*
 * peer_mimalloc.h: mimalloc through its own API, mi_malloc/mi_free. Debian's libmimalloc also
 * exports malloc and so replaces glibc's in this peer's program; the loops call mi_malloc/mi_free
 * directly either way.
 */
#ifndef MP_BENCH_PEER_MIMALLOC_H
#define MP_BENCH_PEER_MIMALLOC_H

#include <mimalloc.h>

#include <stdbool.h>
#include <stdio.h>

#define PEER_NAME "mimalloc"
#define PEER_FIXED_SIZE 0
#define PEER_THREAD_SAFE 1

typedef char peer_handle;
static char peer_token;

static bool peer_init(char *about, size_t n)
{
    int v = mi_version();
    snprintf(about, n, "mimalloc %d.%d.%d mi_malloc/mi_free, default options", v / 100, v / 10 % 10, v % 10);
    return v > 0;
}

static peer_handle *peer_open(size_t size, size_t max_live)
{
    (void)size, (void)max_live;
    return &peer_token;
}

static inline void *peer_alloc(peer_handle *h, size_t size)
{
    (void)h;
    return mi_malloc(size);
}

static inline void peer_free(peer_handle *h, void *p, size_t size)
{
    (void)h, (void)size;
    mi_free(p);
}

static void peer_close(peer_handle *h)
{
    (void)h;
}

#endif /* MP_BENCH_PEER_MIMALLOC_H */

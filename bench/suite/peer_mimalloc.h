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

static bool peer_init(char *about, size_t n)
{
    int v = mi_version();
    snprintf(about, n, "mimalloc %d.%d.%d mi_malloc/mi_free, default options", v / 100, v / 10 % 10,
             v % 10);
    return v > 0;
}

#define PEER_MALLOC(size) mi_malloc(size)
#define PEER_FREE(p) mi_free(p)
#include "peer_malloc_like.h"

#endif /* MP_BENCH_PEER_MIMALLOC_H */

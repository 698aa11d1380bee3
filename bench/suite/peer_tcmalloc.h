/*
 * peer_tcmalloc.h: gperftools' tcmalloc through its own API, tc_malloc/tc_free, from
 * libtcmalloc_minimal (the build without the heap profiler and checker, the one meant for speed).
 * The library also exports malloc and so replaces glibc's in this peer's program; the loops call
 * tc_malloc/tc_free directly either way.
 */
#ifndef MP_BENCH_PEER_TCMALLOC_H
#define MP_BENCH_PEER_TCMALLOC_H

#include <gperftools/tcmalloc.h>

#include <stdbool.h>
#include <stdio.h>

#define PEER_NAME "tcmalloc"

static bool peer_init(char *about, size_t n)
{
    int major = 0, minor = 0;
    const char *patch = "";
    tc_version(&major, &minor, &patch);
    snprintf(about, n, "gperftools tcmalloc %d.%d%s tc_malloc/tc_free, libtcmalloc_minimal", major,
             minor, patch ? patch : "");
    return major > 0;
}

#define PEER_MALLOC(size) tc_malloc(size)
#define PEER_FREE(p) tc_free(p)
#include "peer_malloc_like.h"

#endif /* MP_BENCH_PEER_TCMALLOC_H */

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
#define PEER_FIXED_SIZE 0
#define PEER_THREAD_SAFE 1

typedef char peer_handle;
static char peer_token;

static bool peer_init(char *about, size_t n)
{
    int major = 0, minor = 0;
    const char *patch = "";
    tc_version(&major, &minor, &patch);
    snprintf(about, n, "gperftools tcmalloc %d.%d%s tc_malloc/tc_free, libtcmalloc_minimal", major, minor,
             patch ? patch : "");
    return major > 0;
}

static peer_handle *peer_open(size_t size, size_t max_live)
{
    (void)size, (void)max_live;
    return &peer_token;
}

static inline void *peer_alloc(peer_handle *h, size_t size)
{
    (void)h;
    return tc_malloc(size);
}

static inline void peer_free(peer_handle *h, void *p, size_t size)
{
    (void)h, (void)size;
    tc_free(p);
}

static void peer_close(peer_handle *h)
{
    (void)h;
}

#endif /* MP_BENCH_PEER_TCMALLOC_H */

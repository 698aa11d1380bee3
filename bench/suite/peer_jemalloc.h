/*
 * peer_jemalloc.h: jemalloc's malloc/free, as a suite peer.
 *
 * Debian's libjemalloc exports its functions without a prefix (nm -D shows malloc, free, mallocx,
 * ... and no je_malloc), so there is no separate API to call: its program is linked with
 * -ljemalloc, whose malloc and free replace glibc's in that process (the suite runs every peer in
 * its own program for this reason). peer_init checks the replacement took: jemalloc's per-thread
 * counter must see a malloc. (mallocx/dallocx would also be jemalloc's own, but they skip the
 * malloc/free fast paths programs use.)
 */
#ifndef MP_BENCH_PEER_JEMALLOC_H
#define MP_BENCH_PEER_JEMALLOC_H

#include <jemalloc/jemalloc.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define PEER_NAME "jemalloc"

static bool peer_init(char *about, size_t n)
{
    const char *version = "?";
    size_t len = sizeof version;
    if (mallctl("version", &version, &len, NULL, 0) != 0) {
        snprintf(about, n, "jemalloc's mallctl(\"version\") failed");
        return false;
    }
    uint64_t before = 0, after = 0;
    len = sizeof before;
    mallctl("thread.allocated", &before, &len, NULL, 0);
    void *p = malloc(1000);
    __asm__ __volatile__("" : : "r"(p) : "memory");
    len = sizeof after;
    mallctl("thread.allocated", &after, &len, NULL, 0);
    free(p);
    if (after < before + 1000) {
        snprintf(about, n, "malloc is not jemalloc's here (a sanitizer or LD_PRELOAD replaced it)");
        return false;
    }
    snprintf(about, n,
             "jemalloc %s malloc/free: unprefixed in Debian, so its program links -ljemalloc "
             "and it replaces glibc's malloc there",
             version);
    return true;
}

#define PEER_MALLOC(size) malloc(size)
#define PEER_FREE(p) free(p)
#include "peer_malloc_like.h"

#endif /* MP_BENCH_PEER_JEMALLOC_H */

/*
 * peer_glibc.h: the C library's malloc/free (glibc's ptmalloc2 with its per-thread cache), as a
 * suite peer. Its program links no other allocator, so malloc is glibc's; peer_init checks that.
 * Any size from any handle (PEER_FIXED_SIZE 0); the handle is a token.
 */
#ifndef MP_BENCH_PEER_GLIBC_H
#define MP_BENCH_PEER_GLIBC_H

#include <gnu/libc-version.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define PEER_NAME "glibc"

/* glibc's own statistics must see a malloc: otherwise another allocator has replaced it. */
static bool peer_init(char *about, size_t n)
{
    size_t before = mallinfo2().uordblks;
    void *p = malloc(1000);
    __asm__ __volatile__("" : : "r"(p) : "memory");
    bool ours = mallinfo2().uordblks >= before + 1000;
    free(p);
    if (!ours)
        snprintf(about, n, "malloc is not glibc's here (a sanitizer or LD_PRELOAD replaced it)");
    else
        snprintf(about, n, "glibc %s malloc/free (ptmalloc2 + tcache), default tunables",
                 gnu_get_libc_version());
    return ours;
}

#define PEER_MALLOC(size) malloc(size)
#define PEER_FREE(p) free(p)
#include "peer_malloc_like.h"

#endif /* MP_BENCH_PEER_GLIBC_H */

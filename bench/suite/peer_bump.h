/*
 * peer_bump.h: a bare bump pointer over one region, as a suite peer: the limit of the region
 * workload. Its region is fixed at open (max_live blocks of the handle's size, mapped and touched
 * up front, as the floor's), alloc is an add and a compare, and releasing everything at once puts
 * the pointer back at the start. Nothing else runs it.
 */
#ifndef MP_BENCH_PEER_BUMP_H
#define MP_BENCH_PEER_BUMP_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define PEER_NAME "bump"
#define PEER_FIXED_SIZE 1
#define PEER_THREAD_SAFE 0
#define PEER_RELEASE_ALL 1

typedef struct peer_handle {
    char *next, *end, *base;
    size_t bytes;
} peer_handle;

static bool peer_init(char *about, size_t n)
{
    snprintf(about, n,
             "a bare bump pointer over one region mapped and touched at open, reset to "
             "its start (the limit)");
    return true;
}

static peer_handle *peer_open(size_t size, size_t max_live)
{
    peer_handle *h = malloc(sizeof *h);
    size_t bytes = (size + 15) / 16 * 16 * (max_live > 0 ? max_live : 1);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (h == NULL || p == MAP_FAILED) {
        free(h);
        return NULL;
    }
    memset(p, 0, bytes);
    *h = (peer_handle){p, (char *)p + bytes, p, bytes};
    return h;
}

static inline void *peer_alloc(peer_handle *h, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (__builtin_expect((size_t)(h->end - h->next) < size, 0))
        return NULL;
    void *p = h->next;
    h->next += size;
    return p;
}

static inline void peer_free(peer_handle *h, void *p, size_t size)
{
    (void)h, (void)p, (void)size; /* a bump pointer frees nothing one by one */
}

static void peer_release_all(peer_handle *h)
{
    h->next = h->base;
}

static void peer_close(peer_handle *h)
{
    munmap(h->base, h->bytes);
    free(h);
}

#endif /* MP_BENCH_PEER_BUMP_H */

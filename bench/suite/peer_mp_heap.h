/*
 * peer_mp_heap.h: a plain mempool heap (mp_heap_create with no flags) as a suite peer of the malloc
 * family: mp_heap_alloc, and mp_heap_free_sized with the size the workload asked for, so the free
 * skips the lookup of the block's class. A plain heap is not thread-safe (PEER_THREAD_SAFE 0): in
 * varsize with two threads each thread has a heap of its own, as a program whose threads share no
 * objects may; the other thread workloads leave it out.
 */
#ifndef MP_BENCH_PEER_MP_HEAP_H
#define MP_BENCH_PEER_MP_HEAP_H

#include <mempool.h>

#include <stdbool.h>
#include <stdio.h>

#define PEER_NAME "mp_heap"
#define PEER_FIXED_SIZE 0
#define PEER_THREAD_SAFE 0

typedef mp_heap peer_handle;

static bool peer_init(char *about, size_t n)
{
    snprintf(about, n,
             "mempool %d.%d.%d plain mp_heap, libmempool.a: mp_heap_alloc/mp_heap_free_sized, "
             "a heap per thread (not thread-safe)",
             MP_VERSION_MAJOR, MP_VERSION_MINOR, MP_VERSION_PATCH);
    return true;
}

static peer_handle *peer_open(size_t size, size_t max_live)
{
    (void)size, (void)max_live;
    return mp_heap_create(&(mp_heap_opts){.name = "suite"});
}

static inline void *peer_alloc(peer_handle *h, size_t size)
{
    return mp_heap_alloc(h, size);
}

static inline void peer_free(peer_handle *h, void *p, size_t size)
{
    mp_heap_free_sized(h, p, size);
}

static void peer_close(peer_handle *h)
{
    mp_heap_destroy(h);
}

#endif /* MP_BENCH_PEER_MP_HEAP_H */

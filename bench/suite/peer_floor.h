/*
 * peer_floor.h: the floor (bench/floor.h), the original design's free-list pool, as a suite peer.
 * One pool per block size; alloc and free are its inline pop and push. Its region is fixed at
 * creation, so the workload says how many blocks can be live at once (max_live) and the floor
 * takes, links and so touches all of them up front: that is its design, and its memory figures
 * show it.
 */
#ifndef MP_BENCH_PEER_FLOOR_H
#define MP_BENCH_PEER_FLOOR_H

#include "../floor.h"

#include <stdbool.h>
#include <stdio.h>

#define PEER_NAME "floor"
#define PEER_FIXED_SIZE 1
#define PEER_THREAD_SAFE 0

typedef floor_pool peer_handle;

static bool peer_init(char *about, size_t n)
{
    snprintf(about, n,
             "bench/floor.h, the original free-list pool: fixed region linked at creation, "
             "inline pop/push");
    return true;
}

static peer_handle *peer_open(size_t size, size_t max_live)
{
    return floor_pool_create(size, max_live);
}

static inline void *peer_alloc(peer_handle *h, size_t size)
{
    (void)size;
    return floor_pool_alloc(h);
}

static inline void peer_free(peer_handle *h, void *p, size_t size)
{
    (void)size;
    floor_pool_free(h, p);
}

static void peer_close(peer_handle *h)
{
    floor_pool_destroy(h);
}

#endif /* MP_BENCH_PEER_FLOOR_H */

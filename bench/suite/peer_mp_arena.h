/*
 * peer_mp_arena.h: mempool's arena (mp_arena_alloc, inline bump; mp_arena_reset) as a suite peer,
 * for the region workload only: default options (64 KiB chunks; a reset keeps what the round
 * used). Freeing one block does nothing; the region releases everything with a reset.
 */
#ifndef MP_BENCH_PEER_MP_ARENA_H
#define MP_BENCH_PEER_MP_ARENA_H

#include <mempool.h>

#include <stdbool.h>
#include <stdio.h>

#define PEER_NAME "mp_arena"
#define PEER_FIXED_SIZE 1
#define PEER_THREAD_SAFE 0
#define PEER_RELEASE_ALL 1

typedef mp_arena peer_handle;

static bool peer_init(char *about, size_t n)
{
    snprintf(about, n,
             "mempool %d.%d.%d arena, libmempool.a: inline mp_arena_alloc, mp_arena_reset "
             "(default options)",
             MP_VERSION_MAJOR, MP_VERSION_MINOR, MP_VERSION_PATCH);
    return true;
}

static peer_handle *peer_open(size_t size, size_t max_live)
{
    (void)size, (void)max_live; /* the arena grows */
    return mp_arena_create(&(mp_arena_opts){.name = PEER_NAME});
}

static inline void *peer_alloc(peer_handle *h, size_t size)
{
    return mp_arena_alloc(h, size);
}

static inline void peer_free(peer_handle *h, void *p, size_t size)
{
    (void)h, (void)p, (void)size; /* an arena frees nothing one by one */
}

static void peer_release_all(peer_handle *h)
{
    mp_arena_reset(h);
}

static void peer_close(peer_handle *h)
{
    mp_arena_destroy(h);
}

#endif /* MP_BENCH_PEER_MP_ARENA_H */

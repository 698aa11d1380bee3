/*
 * counting_source.h: the tests' chunk source (mp_source) that counts. Memory comes from
 * posix_memalign(); every map and unmap is counted, so a test can see that a pool, heap or arena
 * gave back every byte it took, never held more than a bound, and kept the source contract (align a
 * power of two >= 4096, size a positive multiple of 4096). A test can cap it or make it refuse,
 * or make it break the contract itself: with `skew` set, every map returns memory that many bytes
 * past an aligned address (so misaligned for any alignment above the skew's lowest bit).
 * Any thread may call it: the counters are atomic.
 *
 * posix_memalign(), not aligned_alloc(): the contract makes size a multiple of 4096 but not of
 * align (a heap maps a large block of a few pages aligned to its 2 MiB chunk size), and
 * aligned_alloc() with such a size is undefined before C17 and refused by ASan.
 *
 * Sources with more to check (test_heap.c's, which dirties memory and matches every unmap to its
 * map; test_arena.c's; test_source.c's) keep their own.
 */
#ifndef MP_TEST_COUNTING_SOURCE_H
#define MP_TEST_COUNTING_SOURCE_H

#include "mempool.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

typedef struct counting_source {
    atomic_ullong calls;    /* map calls, refused ones included */
    atomic_ullong maps;     /* maps that gave memory */
    atomic_ullong unmaps;
    atomic_ullong refused;  /* maps refused: dead, over the cap, or the C library's */
    atomic_size_t bytes_out; /* mapped and not yet unmapped */
    atomic_size_t peak;      /* the most bytes_out ever was */
    atomic_uint violations;  /* maps against the source contract */
    size_t cap;              /* maps that would take bytes_out past this are refused; 0: none */
    atomic_bool dead;        /* every map is refused while set */
    size_t skew;             /* set before the first map and kept: maps return memory this far
                                past an aligned address (a multiple of 4096 keeps pages aligned) */
} counting_source;

static inline void counting_peak(counting_source *cs, size_t out)
{
    size_t seen = atomic_load(&cs->peak);
    while (out > seen && !atomic_compare_exchange_weak(&cs->peak, &seen, out)) {
    }
}

static inline void *counting_map(void *ctx, size_t size, size_t align)
{
    counting_source *cs = ctx;
    atomic_fetch_add(&cs->calls, 1);
    if (align < 4096 || (align & (align - 1)) != 0 || size == 0 || size % 4096 != 0)
        atomic_fetch_add(&cs->violations, 1);
    void *p = NULL;
    if (atomic_load(&cs->dead) || (cs->cap != 0 && atomic_load(&cs->bytes_out) + size > cs->cap) ||
        posix_memalign(&p, align, size + cs->skew) != 0) {
        atomic_fetch_add(&cs->refused, 1);
        return NULL;
    }
    atomic_fetch_add(&cs->maps, 1);
    counting_peak(cs, atomic_fetch_add(&cs->bytes_out, size) + size);
    return (char *)p + cs->skew;
}

static inline void counting_unmap(void *ctx, void *p, size_t size)
{
    counting_source *cs = ctx;
    free((char *)p - cs->skew);
    atomic_fetch_add(&cs->unmaps, 1);
    atomic_fetch_sub(&cs->bytes_out, size);
}

/* A source over `cs` (which must outlive what uses it). */
static inline mp_source counting_source_of(counting_source *cs)
{
    mp_source s = {counting_map, counting_unmap, cs};
    return s;
}

/* Everything mapped went back, and the contract was kept. */
static inline bool counting_all_back(counting_source *cs)
{
    return atomic_load(&cs->bytes_out) == 0 && atomic_load(&cs->maps) == atomic_load(&cs->unmaps) &&
           atomic_load(&cs->violations) == 0;
}

#endif /* MP_TEST_COUNTING_SOURCE_H */

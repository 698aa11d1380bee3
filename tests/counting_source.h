/*
 * counting_source.h: the tests' one fake chunk source (mp_source). Memory comes from
 * posix_memalign(); every map and unmap is counted and checked, so a test can see that a pool,
 * heap or arena gave back every byte it took, never held more than a bound, and kept the source
 * contract: align a power of two >= 4096, size a positive multiple of 4096 (with `page` set:
 * align exactly the page, size a multiple of it), ctx passed through, unmap given exactly a
 * region map returned, with its size.
 * Every region map gives is on a list (its record sits just before it, inside the allocation), so
 * an unmap of anything else is caught without touching it, and a test can ask whether a block lies
 * in a region (counting_holds). Set before the first map and kept, a test can make it:
 *   - fail: refuse the fail_at-th map call, or every call from fail_from on (1-based), every call
 *     while `dead`, or any map that would take bytes_out past `cap`;
 *   - break the contract itself: with `skew`, maps (from the skew_from-th call on; 0 = all) return
 *     memory that many bytes past an aligned address;
 *   - hand out dirty memory (the contract says it need not be zeroed): the first `dirty` bytes of
 *     each region, and with `stripes` also 64 bytes of every later page and the last page;
 *   - carve regions from a caller's buffer [base, top) from the top down, as mmap usually places
 *     mappings, giving nothing back (top != 0; no dirtying, no list).
 * Zero-initialise it (or counting_reset()). Any thread may call it: the counters are atomic and
 * the list has a lock.
 *
 * posix_memalign(), not aligned_alloc(): the contract makes size a multiple of 4096 but not of
 * align (a heap maps a large block of a few pages aligned to its 2 MiB chunk size), and
 * aligned_alloc() with such a size is undefined before C17 and refused by ASan.
 */
#ifndef MP_TEST_COUNTING_SOURCE_H
#define MP_TEST_COUNTING_SOURCE_H

#include "mempool.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* What precedes each region on the list: what posix_memalign gave, and the size map was asked. */
typedef struct counting_region {
    struct counting_region *prev, *next;
    void *base, *p;
    size_t size;
} counting_region;

typedef struct counting_source {
    atomic_ullong calls;     /* map calls, refused ones included */
    atomic_ullong maps;      /* maps that gave memory */
    atomic_ullong unmaps;    /* unmap calls, bad ones included */
    atomic_ullong refused;   /* maps refused: failing, dead, over the cap, or the C library's */
    atomic_size_t bytes_out; /* mapped and not yet given back */
    atomic_size_t peak;      /* the most bytes_out ever was */
    atomic_ullong unmapped;  /* bytes given back */
    atomic_size_t regions;   /* regions out */
    atomic_uint violations;  /* maps against the source contract */
    atomic_uint bad_unmaps;  /* unmaps of no region, or with another size (the region stays out) */
    atomic_uint bad_ctx;     /* calls with another ctx than `self` (when self is set) */
    size_t cap;              /* maps that would take bytes_out past this are refused; 0: none */
    atomic_bool dead;        /* every map is refused while set */
    unsigned long long fail_at, fail_from; /* 1-based map calls refused (above); 0: none */
    size_t skew, skew_from;                /* above */
    size_t dirty;                          /* bytes dirtied at the start of each region */
    bool stripes;                          /* and a stripe of every later page, and the last page */
    size_t page;                           /* when set, map's align must be exactly this */
    const void *self;                      /* when set, the ctx every call must get */
    uintptr_t base, top;     /* when top != 0: regions carved from [base, top), top down */
    atomic_bool locked;      /* the list's lock */
    counting_region *live;   /* the regions out, newest first */
    counting_region *oldest; /* the list's last */
} counting_source;

static inline void counting_peak(counting_source *cs, size_t out)
{
    size_t seen = atomic_load(&cs->peak);
    while (out > seen && !atomic_compare_exchange_weak(&cs->peak, &seen, out)) {
    }
}

static inline void counting_lock(counting_source *cs)
{
    while (atomic_exchange_explicit(&cs->locked, true, memory_order_acquire)) {
    }
}

static inline void counting_unlock(counting_source *cs)
{
    atomic_store_explicit(&cs->locked, false, memory_order_release);
}

/* Dirties a fresh region as configured: the contract says "need not be zeroed". */
static inline void counting_dirty(const counting_source *cs, unsigned char *p, size_t size)
{
    size_t head = size < cs->dirty ? size : cs->dirty;
    memset(p, 0xA5, head);
    if (!cs->stripes)
        return;
    for (size_t i = head; i + 64 <= size; i += 4096)
        memset(p + i, 0xA5, 64);
    if (size >= 4096)
        memset(p + size - 4096, 0xA5, 4096);
}

/* The region from the C library, its record before it, put on the list; NULL if refused. */
static inline void *counting_take(counting_source *cs, size_t size, size_t align, size_t skew)
{
    /* Room for the record before the region, keeping the region aligned. */
    size_t pad = align > sizeof(counting_region) ? align : 64;
    void *base = NULL;
    /* Absurd sizes are refused before the C library sees them: ASan aborts instead of failing. */
    if (size / 1024 > ((size_t)1 << 26) || align > ((size_t)1 << 30) ||
        posix_memalign(&base, align, pad + size + skew) != 0)
        return NULL;
    char *p = (char *)base + pad + skew;
    counting_region *r = (counting_region *)(void *)((char *)base + pad - sizeof *r);
    *r = (counting_region){NULL, NULL, base, p, size};
    counting_dirty(cs, (unsigned char *)p, size);
    counting_lock(cs);
    r->next = cs->live;
    if (cs->live != NULL)
        cs->live->prev = r;
    else
        cs->oldest = r;
    cs->live = r;
    counting_unlock(cs);
    return p;
}

/* The region from the caller's buffer, top down; NULL if it does not fit. */
static inline void *counting_carve(counting_source *cs, size_t size, size_t align)
{
    uintptr_t top = cs->top;
    if (top - cs->base < size || ((top - size) & ~(uintptr_t)(align - 1)) < cs->base)
        return NULL;
    cs->top = (top - size) & ~(uintptr_t)(align - 1);
    return (void *)cs->top;
}

static inline void *counting_map(void *ctx, size_t size, size_t align)
{
    counting_source *cs = ctx;
    if (cs->self != NULL && cs->self != ctx)
        atomic_fetch_add(&cs->bad_ctx, 1);
    unsigned long long k = atomic_fetch_add(&cs->calls, 1) + 1;
    if (align < 4096 || (align & (align - 1)) != 0 || size == 0 || size % 4096 != 0 ||
        (cs->page != 0 && (align != cs->page || size % cs->page != 0)))
        atomic_fetch_add(&cs->violations, 1);
    size_t skew = cs->skew_from == 0 || k >= cs->skew_from ? cs->skew : 0;
    void *p = NULL;
    if (k != cs->fail_at && (cs->fail_from == 0 || k < cs->fail_from) && !atomic_load(&cs->dead) &&
        (cs->cap == 0 || atomic_load(&cs->bytes_out) + size <= cs->cap))
        p = cs->top != 0 ? counting_carve(cs, size, align) : counting_take(cs, size, align, skew);
    if (p == NULL) {
        atomic_fetch_add(&cs->refused, 1);
        return NULL;
    }
    atomic_fetch_add(&cs->maps, 1);
    atomic_fetch_add(&cs->regions, 1);
    counting_peak(cs, atomic_fetch_add(&cs->bytes_out, size) + size);
    return p;
}

/* Takes p's region off the list and returns it; NULL (and counted) if p is no region or its size
 * is another, when the region stays out. */
static inline counting_region *counting_find(counting_source *cs, void *p, size_t size)
{
    counting_lock(cs);
    /* from both ends at once: pools give back their newest regions, and tests destroy thousands
     * of pools oldest first, where a walk from one end would be quadratic */
    counting_region *r = NULL;
    for (counting_region *n = cs->live, *o = cs->oldest; n != NULL; n = n->next, o = o->prev) {
        if (n->p == p || o->p == p) {
            r = n->p == p ? n : o;
            break;
        }
        if (n == o || n->next == o)
            break;
    }
    if (r != NULL && r->size == size) {
        if (r->prev != NULL)
            r->prev->next = r->next;
        else
            cs->live = r->next;
        if (r->next != NULL)
            r->next->prev = r->prev;
        else
            cs->oldest = r->prev;
    }
    counting_unlock(cs);
    if (r == NULL || r->size != size) {
        atomic_fetch_add(&cs->bad_unmaps, 1);
        return NULL;
    }
    return r;
}

static inline void counting_unmap(void *ctx, void *p, size_t size)
{
    counting_source *cs = ctx;
    if (cs->self != NULL && cs->self != ctx)
        atomic_fetch_add(&cs->bad_ctx, 1);
    atomic_fetch_add(&cs->unmaps, 1);
    if (cs->top == 0) {
        counting_region *r = counting_find(cs, p, size);
        if (r == NULL)
            return;
        free(r->base);
    }
    atomic_fetch_sub(&cs->regions, 1);
    atomic_fetch_sub(&cs->bytes_out, size);
    atomic_fetch_add(&cs->unmapped, size);
}

/* A source over `cs` (which must outlive what uses it). */
static inline mp_source counting_source_of(counting_source *cs)
{
    mp_source s = {counting_map, counting_unmap, cs};
    return s;
}

/* Whether [p, p + n) lies inside one region out. */
static inline bool counting_holds(counting_source *cs, const void *p, size_t n)
{
    counting_lock(cs);
    const counting_region *r = cs->live;
    while (r != NULL && !((const char *)p >= (const char *)r->p &&
                          (const char *)p + n <= (const char *)r->p + r->size))
        r = r->next;
    counting_unlock(cs);
    return r != NULL;
}

/* Frees what a failed test left out, then zeroes everything (the settings too). */
static inline void counting_reset(counting_source *cs)
{
    for (counting_region *r = cs->live, *next; r != NULL; r = next) {
        next = r->next;
        free(r->base);
    }
    memset(cs, 0, sizeof *cs);
}

/* Everything mapped went back, and the contract was kept. */
static inline bool counting_all_back(counting_source *cs)
{
    return atomic_load(&cs->bytes_out) == 0 && atomic_load(&cs->maps) == atomic_load(&cs->unmaps) &&
           atomic_load(&cs->violations) == 0 && atomic_load(&cs->bad_unmaps) == 0 &&
           atomic_load(&cs->bad_ctx) == 0;
}

#endif /* MP_TEST_COUNTING_SOURCE_H */

/*
 * bench_handles.c: handle pools (MP_HANDLES) beside a plain pool and beside the slot map a user
 * would write by hand (a dense array of {generation, pointer} with a free list of indices, over a
 * plain pool), as medians of interleaved runs.
 *   1. pairs: alloc (and make a handle) + free, ns per pair, on a 64-byte pool; the plain pool,
 *      the handle pool, the slot map. Goal: handle pool <= 1.5 x plain.
 *   2. deref: random lookups over N live handles (N = 1K and 1M), ns per deref, mempool against
 *      the slot map. Goal: <= 2 ns, and below the slot map.
 * Usage: bench_handles [--quick]. The exit status is 0 unless a lookup gives a wrong block: the
 * machine may be noisy, the code is not.
 */
#define _POSIX_C_SOURCE 200809L

#include "bench_util.h"

#include <mempool.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 64
#define BARRIER() __asm__ __volatile__("" ::: "memory")

/* ------------------------------------------------------------------------------------------------
 * The hand-written slot map: handle = index << 32 | generation; the generation is odd while the
 * entry is used, as in the library, so both check the same thing.
 * ---------------------------------------------------------------------------------------------- */

typedef struct slot_entry {
    uint32_t gen;
    uint32_t next_free; /* free entries: the next one on the free list */
    void *ptr;
} slot_entry;

typedef struct slot_map {
    slot_entry *e;
    uint32_t cap, n, free_head; /* free_head: UINT32_MAX when empty */
} slot_map;

static void sm_init(slot_map *m, uint32_t cap)
{
    m->e = calloc(cap, sizeof *m->e);
    m->cap = cap;
    m->n = 0;
    m->free_head = UINT32_MAX;
}

static inline uint64_t sm_insert(slot_map *m, void *p)
{
    uint32_t i = m->free_head;
    if (i != UINT32_MAX)
        m->free_head = m->e[i].next_free;
    else
        i = m->n++;
    slot_entry *e = &m->e[i];
    e->gen |= 1u;
    e->ptr = p;
    return (uint64_t)i << 32 | e->gen;
}

static inline void *sm_get(const slot_map *m, uint64_t h)
{
    uint32_t i = (uint32_t)(h >> 32);
    if (i >= m->n || m->e[i].gen != (uint32_t)h)
        return NULL;
    return m->e[i].ptr;
}

static inline void *sm_remove(slot_map *m, uint64_t h)
{
    uint32_t i = (uint32_t)(h >> 32);
    slot_entry *e = &m->e[i];
    void *p = e->ptr;
    e->gen++;
    e->next_free = m->free_head;
    m->free_head = i;
    return p;
}

/* ------------------------------------------------------------------------------------------------
 * Timed loops
 * ---------------------------------------------------------------------------------------------- */

static double pairs_plain(mp_pool *pool, uint64_t n)
{
    double t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        char *p = mp_pool_alloc(pool);
        if (p == NULL)
            abort();
        p[0] = 1;
        BARRIER();
        mp_pool_free(pool, p);
    }
    return (now_ns() - t0) / (double)n;
}

static double pairs_handles(mp_pool *pool, uint64_t n)
{
    double t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        char *p = mp_pool_alloc(pool);
        if (p == NULL)
            abort();
        mp_handle h = mp_pool_handle(pool, p);
        p[0] = (char)h;
        BARRIER();
        mp_pool_free(pool, p);
    }
    return (now_ns() - t0) / (double)n;
}

static double pairs_slot_map(mp_pool *pool, slot_map *m, uint64_t n)
{
    double t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        char *p = mp_pool_alloc(pool);
        if (p == NULL)
            abort();
        uint64_t h = sm_insert(m, p);
        p[0] = (char)h;
        BARRIER();
        mp_pool_free(pool, sm_remove(m, h));
    }
    return (now_ns() - t0) / (double)n;
}

static double deref_pool(const mp_pool *pool, const mp_handle *h, const uint32_t *order, uint64_t n,
                         size_t live, uintptr_t *sum)
{
    uintptr_t s = 0;
    double t0 = now_ns();
    for (uint64_t i = 0, j = 0; i < n; i++) { /* no division in the loop: j is i % live */
        s += (uintptr_t)mp_pool_deref(pool, h[order[j]]);
        j = j + 1 == live ? 0 : j + 1;
    }
    double t = (now_ns() - t0) / (double)n;
    *sum = s;
    return t;
}

static double deref_slot_map(const slot_map *m, const uint64_t *h, const uint32_t *order,
                             uint64_t n, size_t live, uintptr_t *sum)
{
    uintptr_t s = 0;
    double t0 = now_ns();
    for (uint64_t i = 0, j = 0; i < n; i++) { /* no division in the loop: j is i % live */
        s += (uintptr_t)sm_get(m, h[order[j]]);
        j = j + 1 == live ? 0 : j + 1;
    }
    double t = (now_ns() - t0) / (double)n;
    *sum = s;
    return t;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

#define RUNS_MAX 31

int main(int argc, char **argv)
{
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int runs = quick ? 3 : 11;
    uint64_t pairs = quick ? 200000 : 20000000, derefs = quick ? 200000 : 20000000;
    int failed = 0;

    mp_pool *plain = mp_pool_create(&(mp_pool_opts){.block_size = BLOCK, .name = "plain"});
    mp_pool *hpool =
        mp_pool_create(&(mp_pool_opts){.block_size = BLOCK, .flags = MP_HANDLES, .name = "h"});
    slot_map m;
    sm_init(&m, 1u << 20);
    double tp[RUNS_MAX], th[RUNS_MAX], ts[RUNS_MAX];
    for (int r = 0; r < runs; r++) { /* interleaved: drift hits all three alike */
        tp[r] = pairs_plain(plain, pairs);
        th[r] = pairs_handles(hpool, pairs);
        ts[r] = pairs_slot_map(plain, &m, pairs);
    }
    double mp = median(tp, runs), mh = median(th, runs), ms = median(ts, runs);
    printf("bench_handles%s: medians of %d interleaved runs (a shared, noisy machine: compare "
           "ratios)\n",
           quick ? " --quick (a smoke test)" : "", runs);
    printf("  pairs  plain %.2f ns   handles %.2f ns (%.2fx plain, goal <= 1.5x)   slot map over a "
           "plain pool %.2f ns (%.2fx)\n",
           mp, mh, mh / mp, ms, ms / mp);
    mp_pool_destroy(plain);
    mp_pool_destroy(hpool);
    free(m.e);

    static const size_t sizes[] = {1000, 1000000};
    for (size_t si = 0; si < 2; si++) {
        size_t live = quick ? sizes[si] / (si + 1) : sizes[si];
        mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = BLOCK, .flags = MP_HANDLES});
        mp_pool *backing = mp_pool_create(&(mp_pool_opts){.block_size = BLOCK});
        mp_handle *h = malloc(live * sizeof *h);
        uint64_t *sh = malloc(live * sizeof *sh);
        uint32_t *order = malloc(live * sizeof *order);
        void **blocks = malloc(live * sizeof *blocks);
        sm_init(&m, (uint32_t)live);
        uintptr_t want = 0, want_sm = 0;
        for (size_t i = 0; i < live; i++) {
            blocks[i] = mp_pool_alloc(pool);
            h[i] = mp_pool_handle(pool, blocks[i]);
            void *q = mp_pool_alloc(backing);
            sh[i] = sm_insert(&m, q);
            order[i] = (uint32_t)i;
        }
        uint64_t x = 12345;
        for (size_t i = live - 1; i > 0; i--) { /* a random order of lookups */
            x = rng_step(x);
            size_t j = rng_index(x, i + 1);
            uint32_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (uint64_t i = 0; i < derefs; i++) {
            want += (uintptr_t)blocks[order[i % live]];
            want_sm += (uintptr_t)m.e[(uint32_t)(sh[order[i % live]] >> 32)].ptr;
        }
        double dp[RUNS_MAX], ds[RUNS_MAX];
        for (int r = 0; r < runs; r++) {
            uintptr_t s1, s2;
            dp[r] = deref_pool(pool, h, order, derefs, live, &s1);
            ds[r] = deref_slot_map(&m, sh, order, derefs, live, &s2);
            if (s1 != want || s2 != want_sm)
                failed = 1;
        }
        double a = median(dp, runs), b = median(ds, runs);
        printf("  deref  N=%-8zu mp_pool_deref %.2f ns (goal <= 2 ns)   slot map %.2f ns   "
               "(%.2fx the slot map)\n",
               live, a, b, a / b);
        mp_pool_destroy(pool);
        mp_pool_destroy(backing);
        free(h);
        free(sh);
        free(order);
        free(blocks);
        free(m.e);
    }
    if (failed)
        printf("bench_handles: a lookup gave a wrong block\n");
    return failed;
}

/*
 * visit.h: what the visiting tests (test_visit.c, test_heap_visit.c) share: a callback that
 * records every block it is given, and the comparison of what it saw with a model's live set.
 * Only the public API is used.
 */
#ifndef MP_TEST_VISIT_H
#define MP_TEST_VISIT_H

#include "mempool.h"
#include "test.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* What a visit saw: each block with the size it was given, up to `cap`; `stop_after` > 0 makes
 * the callback return false at that call; `free_pool`/`free_heap` make it free each block. */
typedef struct visit_log {
    void **blocks;
    size_t *sizes;
    size_t n, cap;
    size_t stop_after;
    mp_pool *free_pool;
    mp_heap *free_heap;
} visit_log;

static inline bool visit_log_init(visit_log *v, size_t cap)
{
    memset(v, 0, sizeof *v);
    v->cap = cap;
    v->blocks = (void **)malloc((cap + 1) * sizeof *v->blocks);
    v->sizes = (size_t *)malloc((cap + 1) * sizeof *v->sizes);
    return v->blocks != NULL && v->sizes != NULL;
}

static inline void visit_log_done(visit_log *v)
{
    free(v->blocks);
    free(v->sizes);
}

static inline bool visit_record(void *block, size_t size, void *ctx)
{
    visit_log *v = (visit_log *)ctx;
    if (v->n < v->cap) {
        v->blocks[v->n] = block;
        v->sizes[v->n] = size;
    }
    v->n++;
    if (v->free_pool != NULL)
        mp_pool_free(v->free_pool, block);
    if (v->free_heap != NULL)
        mp_heap_free(v->free_heap, block);
    return v->stop_after == 0 || v->n < v->stop_after;
}

/* Counts its calls in visit_ctxless_calls, never reading ctx: for visits given a NULL ctx. */
static size_t visit_ctxless_calls;
static inline bool visit_count_ctxless(void *block, size_t size, void *ctx)
{
    (void)block, (void)size, (void)ctx;
    visit_ctxless_calls++;
    return true;
}

static inline int visit_cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return (x > y) - (x < y);
}

/* Whether the blocks seen are exactly live[0..nlive) (sorted here, a copy), each once, each given
 * size(block) (NULL: not checked) bytes, or `size` when size_of is NULL. */
static inline bool visit_log_equals(visit_log *v, void *const *live, size_t nlive, size_t size,
                                    size_t (*size_of)(void *ctx, const void *block), void *ctx)
{
    if (v->n != nlive || v->n > v->cap)
        return false;
    for (size_t i = 0; i < v->n; i++) {
        size_t want = size_of != NULL ? size_of(ctx, v->blocks[i]) : size;
        if (v->sizes[i] != want)
            return false;
    }
    void **want = (void **)malloc((nlive + 1) * sizeof *want);
    if (want == NULL)
        return false;
    memcpy(want, live, nlive * sizeof *want);
    qsort(want, nlive, sizeof *want, visit_cmp_ptr);
    qsort(v->blocks, v->n, sizeof *v->blocks, visit_cmp_ptr);
    bool same = memcmp(want, v->blocks, nlive * sizeof *want) == 0;
    free(want);
    return same;
}

/* ------------------------------------------------------------------------------------------------
 * The model run both suites make: random allocs and frees (and now and then a reset or a trim)
 * against a live set, visiting every `every` ops; the object is a pool or a heap.
 * ---------------------------------------------------------------------------------------------- */

static uint64_t visit_rng_state;

static inline uint64_t visit_rng(void)
{
    uint64_t x = (visit_rng_state += 0x9E3779B97F4A7C15u);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
    return x ^ (x >> 31);
}

typedef struct visit_model {
    const char *name;
    void *obj;
    void *(*alloc)(void *obj);
    void (*free)(void *obj, void *p);
    bool (*visit_is)(void *obj, void *const *live, size_t n);
    void (*reset)(void *obj); /* NULL: none */
    void (*trim)(void *obj);  /* NULL: none */
    size_t maxlive;
    uint64_t every;
} visit_model;

/* Runs the model for `ops` operations; true if the visited set was the live set at every visit.
 * Frees what is left live. */
static inline bool visit_model_run(const visit_model *m, uint64_t ops)
{
    void **live = (void **)malloc(m->maxlive * sizeof *live);
    size_t n = 0;
    tally t = {0};
    if (live == NULL)
        return false;
    for (uint64_t op = 0; op < ops; op++) {
        uint64_t r = visit_rng() % 1000;
        if (r == 0 && m->reset != NULL) {
            m->reset(m->obj);
            n = 0;
        } else if (r == 1 && m->trim != NULL) {
            m->trim(m->obj);
        } else if (n < m->maxlive && (n == 0 || r < 500 + (op / 4096 % 2) * 200)) {
            void *p = m->alloc(m->obj);
            if (p != NULL)
                live[n++] = p;
        } else if (n != 0) {
            size_t i = (size_t)(visit_rng() % n);
            m->free(m->obj, live[i]);
            live[i] = live[--n];
        }
        if (op % m->every == 0 || op + 1 == ops)
            tally_expect(&t, m->visit_is(m->obj, live, n), "%s: op %llu, %zu live", m->name,
                         (unsigned long long)op, n);
    }
    for (size_t i = 0; i < n; i++)
        m->free(m->obj, live[i]);
    free(live);
    return t.bad == 0;
}

#endif /* MP_TEST_VISIT_H */

/*
 * test_source.c: the failing-backend test, through mp_pool_opts.source.
 *
 * The source here (counting_source.h) hands out dirty memory (the contract says it need not
 * be zeroed), keeps a table of the regions it handed out, and can fail (return NULL) at its k-th
 * call or at every call from the k-th on. With it the tests check:
 *   - the pool keeps the source's contract: align a power of two >= 4096, size a multiple of 4096,
 *     unmap given exactly a region map returned with the same size, ctx passed through;
 *   - the pool's accounting matches the source's: bytes_reserved == bytes the source has out,
 *     source_maps == regions the source gave, at least one chunk per run held;
 *   - for every k from 1 to past the last call of a growing scenario: create fails with ENOMEM and
 *     leaks nothing when k is its call; the alloc that makes the k-th call returns NULL with
 * ENOMEM, is counted in failed_allocs, and the next alloc succeeds; with the source dead from k on,
 *     blocks on the free list are still handed out; after destroy nothing is left outstanding;
 *   - free, reset, owns, check and stats never call the source; a buffer pool never does;
 *   - a map that breaks the alignment contract is refused and given back, for the pool's own page
 *     (create fails with ENOMEM) and for a run (the alloc fails with ENOMEM).
 *
 * Usage: test_source [GROWTHS]   (chunk runs the scenarios grow through; default 8 times the
 *                                 environment's MP_TEST_SCALE, at least 2)
 */
#define _POSIX_C_SOURCE 200809L

#include "counting_source.h"
#include "mempool.h"
#include "test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------
 * The counting, failing source
 * ---------------------------------------------------------------------------------------------- */

/* The source (counting_source.h), reset for each scenario: it checks that ctx is passed through
 * and dirties the first 4 MiB of each region (the pool must not rely on zeroed memory; that covers
 * every block the scenarios below touch, and keeps huge runs cheap). */
static counting_source ctx_storage;
static const mp_source test_source = {counting_map, counting_unmap, &ctx_storage};

static counting_source *source_reset(void)
{
    counting_reset(&ctx_storage);
    ctx_storage.self = &ctx_storage;
    ctx_storage.dirty = (size_t)4 << 20;
    return &ctx_storage;
}

/* ------------------------------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------------------------------- */

static size_t page_size(void)
{
    long n = sysconf(_SC_PAGESIZE);
    return n > 0 ? (size_t)n : 4096;
}

static mp_pool *make(size_t block_size, size_t align, unsigned flags)
{
    return mp_pool_create(&(mp_pool_opts){
        .block_size = block_size, .align = align, .flags = flags, .source = &test_source});
}

static mp_stats stats_of(const mp_pool *pool)
{
    mp_stats s;
    memset(&s, 0xEE, sizeof s);
    CHECK("stats: returns 0", mp_pool_stats(pool, &s) == 0);
    return s;
}

/* The pool's accounting agrees with the source's. source_maps counts the regions map has given
 * (failed calls not included); chunks counts chunks, of which each run holds at least one. */
static bool accounting_agrees(const mp_pool *pool, const counting_source *c)
{
    mp_stats s = stats_of(pool);
    bool ok = true;
    ok = CHECK("source: bytes_reserved == bytes the source has out",
               s.bytes_reserved == c->bytes_out) &&
         ok;
    ok = CHECK("source: chunks: at least one per run out, none without a run",
               c->regions >= 1 && s.chunks >= c->regions - 1 &&
                   (s.chunks == 0) == (c->regions == 1)) &&
         ok;
    ok = CHECK("source: source_maps == regions map has given", s.source_maps == c->maps) && ok;
    ok = CHECK("source: map called within its contract", c->violations == 0 && c->bad_ctx == 0) &&
         ok;
    ok = CHECK("source: unmap given exactly a region map returned", c->bad_unmaps == 0) && ok;
    return ok;
}

static void fill(void *p, size_t n, unsigned seed)
{
    memset(p, (int)(seed & 0xFF) | 1, n);
}

static bool filled(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != ((seed & 0xFF) | 1))
            return false;
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * Accounting with a working source
 * ---------------------------------------------------------------------------------------------- */

static void test_accounting(void)
{
    counting_source *c = source_reset();
    mp_pool *pool = make(64, 0, 0);
    if (!CHECK("source: create with a source", pool != NULL))
        return;
    CHECK("source: create takes one map, of one page",
          c->calls == 1 && c->regions == 1 && c->bytes_out == page_size());
    accounting_agrees(pool, c);
    CHECK("source: no chunk before the first alloc", stats_of(pool).chunks == 0);

    enum { N = 40000 };
    static void *ps[N];
    bool inside = true;
    uint64_t calls = c->calls;
    for (unsigned i = 0; i < N; i++) {
        ps[i] = mp_pool_alloc(pool);
        if (!ps[i])
            break;
        inside = inside && counting_holds(c, ps[i], 64);
        fill(ps[i], 64, i);
        if (c->calls != calls) {
            CHECK("source: an alloc makes at most one map call", c->calls == calls + 1);
            accounting_agrees(pool, c);
            calls = c->calls;
        }
    }
    CHECK("source: 40000 allocs succeed", ps[N - 1] != NULL);
    CHECK("source: every block lies in a region the source gave", inside);
    CHECK("source: the pool grew through several runs", c->calls >= 4);
    bool intact = true;
    for (unsigned i = 0; i < N && ps[i]; i++)
        intact = intact && filled(ps[i], 64, i);
    CHECK("source: blocks intact, bookkeeping in dirty memory not confused", intact);

    /* Free, reset, owns, check, stats: never a source call. */
    uint64_t before_calls = c->calls, before_unmaps = c->unmaps;
    for (unsigned i = 0; i < N; i += 2)
        mp_pool_free(pool, ps[i]);
    for (unsigned i = 0; i < N; i += 2)
        ps[i] = mp_pool_alloc(pool);
    mp_pool_owns(pool, ps[0]);
    CHECK("source: check passes", mp_pool_check(pool));
    stats_of(pool);
    mp_pool_reset(pool);
    for (unsigned i = 0; i < N; i++)
        ps[i] = mp_pool_alloc(pool);
    CHECK("source: free, reuse, owns, check, stats, reset, refill call no source",
          c->calls == before_calls && c->unmaps == before_unmaps);
    accounting_agrees(pool, c);

    /* Trim gives back exactly what it says, in exact regions. */
    for (unsigned i = 0; i < N; i++)
        mp_pool_free(pool, ps[i]);
    uint64_t unmapped = c->unmapped;
    size_t got = mp_pool_trim(pool);
    CHECK("source: trim returns the bytes it unmapped", got > 0 && got == c->unmapped - unmapped);
    CHECK("source: after a full trim only the bookkeeping page is out",
          c->regions == 1 && c->bytes_out == page_size());
    accounting_agrees(pool, c);
    CHECK("source: the pool works after the trim", (ps[0] = mp_pool_alloc(pool)) != NULL);
    accounting_agrees(pool, c);

    /* Destroy with a live block: everything goes back. */
    mp_pool_destroy(pool);
    CHECK("source: destroy gives everything back", c->bytes_out == 0 && c->regions == 0);
    CHECK("source: one unmap per successful map", c->unmaps == c->maps && c->bad_unmaps == 0);
}

/* Geometric growth: "O(log(peak bytes))" runs for a growing pool. */
static void test_growth_is_geometric(void)
{
    counting_source *c = source_reset();
    mp_pool *pool = make(64, 0, 0);
    if (!pool)
        return;
    enum { N = 1 << 18 }; /* 16 MiB of blocks */
    bool ok = true;
    for (unsigned i = 0; i < N; i++)
        ok = ok && mp_pool_alloc(pool) != NULL;
    CHECK("source: 2^18 blocks allocated", ok);
    CHECK("source: 16 MiB of 64-byte blocks take O(log) runs (<= 24 maps)", c->maps <= 24);
    accounting_agrees(pool, c);
    mp_pool_destroy(pool);
    CHECK("source: destroy of a grown pool gives everything back",
          c->bytes_out == 0 && c->bad_unmaps == 0);
}

/* ------------------------------------------------------------------------------------------------
 * A failure at every call
 * ---------------------------------------------------------------------------------------------- */

typedef struct scenario {
    size_t block_size, align;
    unsigned flags;
    size_t blocks;  /* allocs that must succeed */
    uint64_t calls; /* map calls the scenario makes with a working source */
} scenario;

/* With a working source: how many blocks make the pool grow through `growths` runs. */
static void scenario_measure(scenario *sc, unsigned growths)
{
    counting_source *c = source_reset();
    mp_pool *pool = make(sc->block_size, sc->align, sc->flags);
    sc->blocks = 0;
    while (pool && c->calls < 1 + (uint64_t)growths && sc->blocks < 2000000) {
        if (!mp_pool_alloc(pool))
            break;
        sc->blocks++;
    }
    sc->blocks += 3; /* a few more, into the last run */
    mp_pool_destroy(pool);
    c = source_reset();
    pool = make(sc->block_size, sc->align, sc->flags);
    for (size_t i = 0; pool && i < sc->blocks; i++)
        mp_pool_alloc(pool);
    sc->calls = c->calls;
    mp_pool_destroy(pool);
    source_reset();
}

/* The k-th map call fails once. */
static void scenario_fail_once(const scenario *sc, uint64_t k)
{
    counting_source *c = source_reset();
    c->fail_at = k;
    errno = 0;
    mp_pool *pool = make(sc->block_size, sc->align, sc->flags);
    if (pool == NULL) {
        CHECK("fail: only the first call (bookkeeping) can fail create", k == 1);
        CHECK("fail: create fails with ENOMEM", errno == ENOMEM);
        CHECK("fail: a failed create leaks nothing", c->bytes_out == 0 && c->regions == 0);
        return;
    }
    CHECK("fail: create succeeds when its call does", k != 1);

    void **ps = malloc(sc->blocks * sizeof *ps);
    size_t got = 0, refused = 0, attempts = 0;
    bool inside = true, zero = true;
    while (got < sc->blocks && attempts++ < sc->blocks + 4) {
        uint64_t calls = c->calls;
        errno = 0;
        void *p = mp_pool_alloc(pool);
        if (p == NULL) {
            refused++;
            CHECK("fail: the refused alloc is the one whose map call failed",
                  calls + 1 == k && c->calls == k);
            CHECK("fail: a refused alloc sets ENOMEM", errno == ENOMEM);
            CHECK("fail: the pool is healthy after a refused alloc", mp_pool_check(pool));
            accounting_agrees(pool, c);
            continue;
        }
        inside = inside && counting_holds(c, p, sc->block_size);
        if (sc->flags & MP_ZERO)
            zero = zero && all_zero(p, sc->block_size);
        fill(p, sc->block_size, (unsigned)got);
        ps[got++] = p;
    }
    CHECK("fail: every block the scenario needs is had", got == sc->blocks);
    CHECK("fail: exactly the failing call's alloc was refused",
          refused == (k >= 2 && k <= sc->calls ? 1u : 0u));
    CHECK("fail: blocks lie in regions the source gave", inside);
    CHECK("fail: MP_ZERO blocks are zero over dirty memory", zero);
    mp_stats s = stats_of(pool);
    CHECK("fail: failed_allocs counts the refusal", s.failed_allocs == refused);
    CHECK("fail: allocs counts the successes", s.allocs == got && s.blocks_in_use == got);
    accounting_agrees(pool, c);
    bool intact = true;
    for (size_t i = 0; i < got; i++)
        intact = intact && filled(ps[i], sc->block_size, (unsigned)i);
    CHECK("fail: every block intact", intact);

    /* Free half, trim what can go, and destroy with the rest live: nothing may leak. */
    for (size_t i = 0; i < got; i += 2)
        mp_pool_free(pool, ps[i]);
    mp_pool_trim(pool);
    CHECK("fail: healthy after frees and a trim", mp_pool_check(pool));
    accounting_agrees(pool, c);
    mp_pool_destroy(pool);
    CHECK("fail: destroy gives back everything", c->bytes_out == 0 && c->regions == 0);
    CHECK("fail: every unmap exact", c->bad_unmaps == 0);
    free(ps);
}

/* Every call from the k-th on fails: free blocks still come back; the pool recovers with the
 * source. */
static void scenario_fail_from(const scenario *sc, uint64_t k)
{
    counting_source *c = source_reset();
    c->fail_from = k;
    mp_pool *pool = make(sc->block_size, sc->align, sc->flags);
    if (pool == NULL) {
        CHECK("dead: only a dead first call fails create", k == 1 && c->regions == 0);
        return;
    }
    void **ps = malloc((sc->blocks + 1) * sizeof *ps);
    size_t got = 0;
    while (got < sc->blocks && (ps[got] = mp_pool_alloc(pool)) != NULL)
        got++;
    bool dead = k <= sc->calls;
    CHECK("dead: allocs succeed until the source dies, then ENOMEM",
          dead ? got < sc->blocks && errno == ENOMEM : got == sc->blocks);
    if (dead) {
        errno = 0;
        CHECK("dead: and go on failing while it is dead",
              mp_pool_alloc(pool) == NULL && errno == ENOMEM);
        if (got > 0) {
            void *last = ps[got - 1];
            mp_pool_free(pool, last);
            CHECK("dead: a freed block is still handed out", mp_pool_alloc(pool) == last);
        }
        CHECK("dead: healthy while the source is dead", mp_pool_check(pool));
        accounting_agrees(pool, c);
        c->fail_from = 0; /* the source comes back */
        while (got < sc->blocks && (ps[got] = mp_pool_alloc(pool)) != NULL)
            got++;
        CHECK("dead: the pool grows again once the source works", got == sc->blocks);
    }
    CHECK("dead: failed_allocs counts every refusal",
          stats_of(pool).failed_allocs == (dead ? 2u : 0u));
    accounting_agrees(pool, c);
    mp_pool_destroy(pool);
    CHECK("dead: destroy gives back everything",
          c->bytes_out == 0 && c->regions == 0 && c->bad_unmaps == 0);
    free(ps);
}

static void test_fail_every_call(unsigned growths)
{
    scenario scs[] = {
        {.block_size = 64},
        {.block_size = 4000, .flags = MP_ZERO},
        {.block_size = 24, .align = 65536},
        {.block_size = 100000},
    };
    for (size_t i = 0; i < sizeof scs / sizeof *scs; i++) {
        scenario *sc = &scs[i];
        scenario_measure(sc, growths);
        CHECK("fail: the scenario grows through the runs asked",
              sc->calls >= 1 + (uint64_t)growths);
        for (uint64_t k = 1; k <= sc->calls + 1; k++) {
            scenario_fail_once(sc, k);
            scenario_fail_from(sc, k);
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * Buffer pools never call the source
 * ---------------------------------------------------------------------------------------------- */

static void test_buffer_ignores_source(void)
{
    counting_source *c = source_reset();
    static unsigned char buf[64 * 1024];
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){
        .block_size = 64, .buffer = buf, .buffer_size = sizeof buf, .source = &test_source});
    if (!CHECK("source: buffer pool with a source given", pool != NULL))
        return;
    size_t n = 0;
    while (mp_pool_alloc(pool) != NULL)
        n++;
    mp_pool_trim(pool);
    mp_pool_reset(pool);
    mp_pool_alloc(pool);
    mp_stats s = stats_of(pool);
    mp_pool_destroy(pool);
    CHECK("source: a buffer pool filled, trimmed, reset and destroyed calls no source",
          n > 0 && c->calls == 0 && c->unmaps == 0 && s.source_maps == 0);
}

/* A misaligned map is refused and given back, whether for the pool's own page or for a run. */
static void test_misaligned_source(void)
{
    /* A source that breaks its contract: its maps return memory 64 bytes past an aligned address.
     * */
    static counting_source s;
    counting_reset(&s);
    s.skew = 64;
    mp_source src = counting_source_of(&s);
    errno = 0;
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 64, .source = &src});
    CHECK("source: a misaligned page for the pool itself: create fails with ENOMEM, keeps nothing",
          pool == NULL && errno == ENOMEM && s.calls == 1 && s.regions == 0);
    counting_reset(&s);
    s.skew = 64;
    s.skew_from = 2; /* the first map, for the pool's own page, is aligned */
    pool = mp_pool_create(&(mp_pool_opts){.block_size = 64, .source = &src});
    errno = 0;
    void *b = pool != NULL ? mp_pool_alloc(pool) : NULL;
    CHECK("source: a misaligned run: the alloc fails with ENOMEM and the run is given back",
          pool != NULL && b == NULL && errno == ENOMEM && s.calls == 2 && s.regions == 1);
    mp_pool_destroy(pool);
    CHECK("source: after a misaligned run, destroy gives back the rest", s.regions == 0);
}

int main(int argc, char **argv)
{
    unsigned growths =
        argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : (unsigned)(8 * test_scale() + 0.5);
    if (growths < 2)
        growths = 2;
    test_accounting();
    test_growth_is_geometric();
    test_fail_every_call(growths);
    test_buffer_ignores_source();
    test_misaligned_source();
    source_reset();
    return TEST_DONE();
}

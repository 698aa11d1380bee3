/*
 * test_source.c: the failing-backend test, through mp_pool_opts.source.
 *
 * The source here wraps aligned_alloc/free, hands out dirty memory (the contract says it need not
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

#include "mempool.h"
#include "test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------
 * The counting, failing source
 * ---------------------------------------------------------------------------------------------- */

enum { MAX_REGIONS = 4096, MAGIC = 0x5EC7 };

typedef struct region {
    void *p;
    size_t size;
} region;

typedef struct source_ctx {
    int magic;
    region regions[MAX_REGIONS];
    size_t nregions;
    size_t outstanding; /* bytes handed out and not given back */
    uint64_t calls;     /* map calls, failed ones included */
    uint64_t maps;      /* map calls that returned memory */
    uint64_t unmaps;
    uint64_t unmapped;  /* bytes given back */
    uint64_t fail_at;   /* this call (1-based) fails; 0 = none */
    uint64_t fail_from; /* this call and every later one fail; 0 = none */
    bool bad_args;      /* map called against the contract (align, size) */
    bool bad_unmap;     /* unmap of a region not handed out, or with another size */
    bool bad_ctx;       /* called with another ctx */
} source_ctx;

static source_ctx ctx_storage;

static void *source_map(void *ctx, size_t size, size_t align)
{
    source_ctx *c = ctx;
    if (c != &ctx_storage || c->magic != MAGIC) {
        ctx_storage.bad_ctx = true;
        return NULL;
    }
    c->calls++;
    if (align < 4096 || (align & (align - 1)) != 0 || size == 0 || size % 4096 != 0)
        c->bad_args = true;
    if (c->calls == c->fail_at || (c->fail_from != 0 && c->calls >= c->fail_from))
        return NULL;
    if (c->nregions == MAX_REGIONS)
        return NULL;
    void *p = aligned_alloc(align, size);
    if (p == NULL)
        return NULL;
    /* Dirty: the pool must not rely on zeroed memory. The first 4 MiB are enough to cover every
     * block the scenarios below touch, and keep huge runs cheap. */
    memset(p, 0xA5, size < ((size_t)4 << 20) ? size : ((size_t)4 << 20));
    c->regions[c->nregions++] = (region){p, size};
    c->outstanding += size;
    c->maps++;
    return p;
}

static void source_unmap(void *ctx, void *p, size_t size)
{
    source_ctx *c = ctx;
    if (c != &ctx_storage || c->magic != MAGIC) {
        ctx_storage.bad_ctx = true;
        return;
    }
    c->unmaps++;
    for (size_t i = 0; i < c->nregions; i++) {
        if (c->regions[i].p != p)
            continue;
        if (c->regions[i].size != size) {
            c->bad_unmap = true; /* keep it: it is still out */
            return;
        }
        c->outstanding -= size;
        c->unmapped += size;
        c->regions[i] = c->regions[--c->nregions];
        free(p);
        return;
    }
    c->bad_unmap = true;
}

static const mp_source test_source = {source_map, source_unmap, &ctx_storage};

static source_ctx *source_reset(void)
{
    source_ctx *c = &ctx_storage;
    if (c->nregions != 0) /* a previous scenario leaked: free it so the next ones stand alone */
        for (size_t i = 0; i < c->nregions; i++)
            free(c->regions[i].p);
    memset(c, 0, sizeof *c);
    c->magic = MAGIC;
    return c;
}

static bool in_some_region(const source_ctx *c, const void *p, size_t n)
{
    for (size_t i = 0; i < c->nregions; i++) {
        const char *r = c->regions[i].p;
        if ((const char *)p >= r && (const char *)p + n <= r + c->regions[i].size)
            return true;
    }
    return false;
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
static bool accounting_agrees(const mp_pool *pool, const source_ctx *c)
{
    mp_stats s = stats_of(pool);
    bool ok = true;
    ok = CHECK("source: bytes_reserved == bytes the source has out",
               s.bytes_reserved == c->outstanding) &&
         ok;
    ok = CHECK("source: chunks: at least one per run out, none without a run",
               c->nregions >= 1 && s.chunks >= c->nregions - 1 &&
                   (s.chunks == 0) == (c->nregions == 1)) &&
         ok;
    ok = CHECK("source: source_maps == regions map has given", s.source_maps == c->maps) && ok;
    ok = CHECK("source: map called within its contract", !c->bad_args && !c->bad_ctx) && ok;
    ok = CHECK("source: unmap given exactly a region map returned", !c->bad_unmap) && ok;
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
    source_ctx *c = source_reset();
    mp_pool *pool = make(64, 0, 0);
    if (!CHECK("source: create with a source", pool != NULL))
        return;
    CHECK("source: create takes one map, of one page",
          c->calls == 1 && c->nregions == 1 && c->regions[0].size == page_size());
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
        inside = inside && in_some_region(c, ps[i], 64);
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
          c->nregions == 1 && c->outstanding == page_size());
    accounting_agrees(pool, c);
    CHECK("source: the pool works after the trim", (ps[0] = mp_pool_alloc(pool)) != NULL);
    accounting_agrees(pool, c);

    /* Destroy with a live block: everything goes back. */
    mp_pool_destroy(pool);
    CHECK("source: destroy gives everything back", c->outstanding == 0 && c->nregions == 0);
    CHECK("source: one unmap per successful map", c->unmaps == c->maps && !c->bad_unmap);
}

/* Geometric growth: "O(log(peak bytes))" runs for a growing pool. */
static void test_growth_is_geometric(void)
{
    source_ctx *c = source_reset();
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
          c->outstanding == 0 && !c->bad_unmap);
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
    source_ctx *c = source_reset();
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
    source_ctx *c = source_reset();
    c->fail_at = k;
    errno = 0;
    mp_pool *pool = make(sc->block_size, sc->align, sc->flags);
    if (pool == NULL) {
        CHECK("fail: only the first call (bookkeeping) can fail create", k == 1);
        CHECK("fail: create fails with ENOMEM", errno == ENOMEM);
        CHECK("fail: a failed create leaks nothing", c->outstanding == 0 && c->nregions == 0);
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
        inside = inside && in_some_region(c, p, sc->block_size);
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
    CHECK("fail: destroy gives back everything", c->outstanding == 0 && c->nregions == 0);
    CHECK("fail: every unmap exact", !c->bad_unmap);
    free(ps);
}

/* Every call from the k-th on fails: free blocks still come back; the pool recovers with the
 * source. */
static void scenario_fail_from(const scenario *sc, uint64_t k)
{
    source_ctx *c = source_reset();
    c->fail_from = k;
    mp_pool *pool = make(sc->block_size, sc->align, sc->flags);
    if (pool == NULL) {
        CHECK("dead: only a dead first call fails create", k == 1 && c->nregions == 0);
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
          c->outstanding == 0 && c->nregions == 0 && !c->bad_unmap);
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
    source_ctx *c = source_reset();
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

/* A source that breaks its contract after its first `maps_ok` maps: it returns memory 64 bytes past
 * an aligned address. Its unmap finds the real start by rounding down to 4096. */
typedef struct skewed {
    unsigned maps_ok, calls, outstanding;
} skewed;

static void *skewed_map(void *ctx, size_t size, size_t align)
{
    skewed *s = ctx;
    char *p = aligned_alloc(align, size);
    if (p == NULL)
        return NULL;
    s->outstanding++;
    return ++s->calls <= s->maps_ok ? p : p + 64;
}

static void skewed_unmap(void *ctx, void *p, size_t size)
{
    (void)size;
    skewed *s = ctx;
    s->outstanding--;
    free((void *)((uintptr_t)p & ~(uintptr_t)4095));
}

/* A misaligned map is refused and given back, whether for the pool's own page or for a run. */
static void test_misaligned_source(void)
{
    skewed s = {0};
    mp_source src = {skewed_map, skewed_unmap, &s};
    errno = 0;
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 64, .source = &src});
    CHECK("source: a misaligned page for the pool itself: create fails with ENOMEM, keeps nothing",
          pool == NULL && errno == ENOMEM && s.calls == 1 && s.outstanding == 0);
    s = (skewed){.maps_ok = 1};
    pool = mp_pool_create(&(mp_pool_opts){.block_size = 64, .source = &src});
    errno = 0;
    void *b = pool != NULL ? mp_pool_alloc(pool) : NULL;
    CHECK("source: a misaligned run: the alloc fails with ENOMEM and the run is given back",
          pool != NULL && b == NULL && errno == ENOMEM && s.calls == 2 && s.outstanding == 1);
    mp_pool_destroy(pool);
    CHECK("source: after a misaligned run, destroy gives back the rest", s.outstanding == 0);
}

int main(int argc, char **argv)
{
    const char *scale = getenv("MP_TEST_SCALE");
    double f = scale ? strtod(scale, NULL) : 1.0;
    unsigned growths =
        argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : (unsigned)(8 * (f > 0 ? f : 1.0) + 0.5);
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

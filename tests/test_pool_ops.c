/*
 * test_pool_ops.c: contract tests of using pools: mp_pool_alloc and mp_pool_free (capacity, LIFO
 * reuse, zeroing, NULL arguments), mp_pool_reset (and the order blocks come back in after it),
 * mp_pool_trim, mp_pool_owns and mp_pool_check, and thread-safe pools used from one thread, where
 * the header lets them differ from plain pools. The one piece of layout relied on is the one the
 * header states, that a plain pool's free block holds its free-list link in its first word (the
 * corruption cases of mp_pool_check); cases that write into free blocks are skipped under ASan and
 * Valgrind, where the library poisons free blocks.
 * Only the public API is used (the helpers they share: test_pool.h). The misuse tests of
 * checked and secure pools are test_checked.c and test_secure.c.
 *
 * Usage: test_pool_ops            (no arguments; under a second)
 */
#define _POSIX_C_SOURCE 200809L

#include "test_pool.h"

/* ------------------------------------------------------------------------------------------------
 * mp_pool_alloc / mp_pool_free
 * ---------------------------------------------------------------------------------------------- */

static void test_capacity(void)
{
    size_t caps[] = {1, 3, 100, 5000};
    for (size_t c = 0; c < sizeof caps / sizeof *caps; c++) {
        size_t cap = caps[c];
        for (unsigned flags = 0; flags <= MP_ZERO; flags += MP_ZERO) {
            mp_pool *pool = make(48, 0, cap, flags);
            if (!CHECK("create: pool with capacity", pool != NULL))
                continue;
            void **ps = calloc(cap, sizeof *ps);
            bool ok = true;
            for (size_t i = 0; i < cap; i++)
                ok = ok && (ps[i] = mp_pool_alloc(pool)) != NULL;
            CHECK("alloc: capacity blocks all succeed", ok);
            errno = 0;
            void *p = mp_pool_alloc(pool);
            CHECK("alloc: past capacity gives NULL, ENOMEM", p == NULL && errno == ENOMEM);
            errno = 0;
            p = mp_pool_alloc(pool);
            CHECK("alloc: again past capacity gives NULL, ENOMEM", p == NULL && errno == ENOMEM);
            mp_stats s = stats_of(pool);
            CHECK("stats: failed_allocs counts the refusals", s.failed_allocs == 2);
            CHECK("stats: refusals are not allocs", s.allocs == cap && s.blocks_in_use == cap);
            CHECK("stats: capacity as created", s.capacity == cap);
            mp_pool_free(pool, ps[cap / 2]);
            p = mp_pool_alloc(pool);
            CHECK("alloc: after a free at capacity, the freed block comes back", p == ps[cap / 2]);
            errno = 0;
            CHECK("alloc: full again: ENOMEM", mp_pool_alloc(pool) == NULL && errno == ENOMEM);
            for (size_t i = 0; i < cap; i++)
                mp_pool_free(pool, ps[i]);
            ok = true;
            for (size_t i = 0; i < cap; i++)
                ok = ok && (ps[i] = mp_pool_alloc(pool)) != NULL;
            CHECK("alloc: after freeing all, capacity blocks succeed again", ok);
            CHECK("alloc: capacity holds after refill", mp_pool_alloc(pool) == NULL);
            s = stats_of(pool);
            CHECK("stats: failed_allocs 4 after the refill's refusal", s.failed_allocs == 4);
            CHECK("check: pool at capacity healthy", mp_pool_check(pool));
            free(ps);
            mp_pool_destroy(pool);
        }
    }
}

/* "The most recently freed block is reused first", for plain and MP_ZERO pools. */
static void test_lifo(void)
{
    for (unsigned flags = 0; flags <= MP_ZERO; flags += MP_ZERO) {
        mp_pool *pool = make(32, 0, 0, flags);
        if (!CHECK("create: LIFO pool", pool != NULL))
            continue;
        void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool), *c = mp_pool_alloc(pool);
        CHECK("alloc: three distinct blocks", a && b && c && a != b && b != c && a != c);
        mp_pool_free(pool, a);
        mp_pool_free(pool, c);
        mp_pool_free(pool, b);
        CHECK("alloc: LIFO reuse, last freed first", mp_pool_alloc(pool) == b);
        CHECK("alloc: LIFO reuse, then the one before", mp_pool_alloc(pool) == c);
        CHECK("alloc: LIFO reuse, then the first freed", mp_pool_alloc(pool) == a);
        void *d = mp_pool_alloc(pool);
        CHECK("alloc: free list empty: a new block", d && d != a && d != b && d != c);
        mp_pool_free(pool, a);
        mp_pool_free(pool, b);
        mp_pool_free(pool, c);
        mp_pool_free(pool, d);
        mp_pool_destroy(pool);
    }
}

/* Freeing writes the link into the freed block only: its neighbours keep every byte. */
static void test_free_touches_only_block(void)
{
    size_t sizes[] = {8, 9, 16, 24, 100};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t bs = sizes[i];
        mp_pool *pool = make(bs, 0, 0, 0);
        if (!pool)
            continue;
        void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool), *c = mp_pool_alloc(pool);
        pattern_fill(a, bs, 1);
        pattern_fill(b, bs, 2);
        pattern_fill(c, bs, 3);
        mp_pool_free(pool, b);
        CHECK("free: neighbours of a freed block untouched",
              pattern_ok(a, bs, 1) && pattern_ok(c, bs, 3));
        void *b2 = mp_pool_alloc(pool);
        CHECK("free+alloc: neighbours still untouched",
              b2 == b && pattern_ok(a, bs, 1) && pattern_ok(c, bs, 3));
        mp_pool_destroy(pool);
    }
}

static void test_zero(void)
{
    size_t sizes[] = {1, 13, 64, 100, 4096, 70000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t bs = sizes[i];
        mp_pool *pool = make(bs, 0, 0, MP_ZERO);
        if (!CHECK("create: MP_ZERO pool", pool != NULL))
            continue;
        void *ps[20];
        bool zero = true;
        for (int k = 0; k < 20; k++) {
            ps[k] = mp_pool_alloc(pool);
            zero = zero && ps[k] && all_zero(ps[k], bs);
            if (ps[k])
                memset(ps[k], 0xAB, bs);
        }
        CHECK("zero: fresh blocks are zeroed", zero);
        for (int k = 0; k < 20; k += 2)
            mp_pool_free(pool, ps[k]);
        zero = true;
        for (int k = 0; k < 20; k += 2) {
            ps[k] = mp_pool_alloc(pool);
            zero = zero && ps[k] && all_zero(ps[k], bs);
            if (ps[k])
                memset(ps[k], 0xCD, bs);
        }
        CHECK("zero: reused blocks are zeroed", zero);
        bool kept = true;
        for (int k = 1; k < 20; k += 2)
            for (size_t j = 0; j < bs; j++)
                kept = kept && ((unsigned char *)ps[k])[j] == 0xAB;
        CHECK("zero: zeroing a reused block leaves live ones alone", kept);
        mp_pool_reset(pool);
        zero = true;
        for (int k = 0; k < 20; k++) {
            ps[k] = mp_pool_alloc(pool);
            zero = zero && ps[k] && all_zero(ps[k], bs);
        }
        CHECK("zero: blocks after reset are zeroed", zero);
        CHECK("check: MP_ZERO pool healthy", mp_pool_check(pool));
        mp_pool_destroy(pool);
    }
}

static void test_null_args(void)
{
    errno = 0;
    CHECK("alloc: NULL pool gives NULL, EINVAL", mp_pool_alloc(NULL) == NULL && errno == EINVAL);
    mp_pool_free(NULL, NULL); /* must do nothing (and not crash) */
    mp_pool_destroy(NULL);
    mp_pool_reset(NULL);
    CHECK("trim: NULL pool gives 0", mp_pool_trim(NULL) == 0);
    int x;
    CHECK("owns: NULL pool is false", !mp_pool_owns(NULL, &x));
    CHECK("check: NULL pool is false", !mp_pool_check(NULL));
    CHECK("block_size: NULL pool is 0", mp_pool_block_size(NULL) == 0);
    CHECK("align: NULL pool is 0", mp_pool_align(NULL) == 0);
    CHECK("name: NULL pool is \"\"", mp_pool_name(NULL) && strcmp(mp_pool_name(NULL), "") == 0);

    mp_stats s, before;
    memset(&s, 0x5A, sizeof s);
    before = s;
    CHECK("stats: NULL pool gives EINVAL", mp_pool_stats(NULL, &s) == EINVAL);
    CHECK("stats: NULL pool leaves out untouched", memcmp(&s, &before, sizeof s) == 0);

    mp_pool *pool = make(16, 0, 0, 0);
    if (!pool)
        return;
    CHECK("stats: NULL out gives EINVAL", mp_pool_stats(pool, NULL) == EINVAL);
    void *p = mp_pool_alloc(pool);
    mp_stats s1 = stats_of(pool);
    mp_pool_free(pool, NULL);
    mp_stats s2 = stats_of(pool);
    CHECK("free: NULL block does nothing (frees unchanged)", s2.frees == s1.frees);
    CHECK("free: NULL block does nothing (free list unchanged)",
          s2.blocks_free == s1.blocks_free && s2.blocks_in_use == s1.blocks_in_use);
    CHECK("owns: NULL pointer is false", !mp_pool_owns(pool, NULL));
    CHECK("free: NULL block leaves the pool healthy", mp_pool_check(pool));
    CHECK("alloc: after free(NULL) the next block is a new one", mp_pool_alloc(pool) != p);
    mp_pool_destroy(pool);

    mp_pool *zpool = make(16, 0, 0, MP_ZERO);
    if (zpool) {
        mp_pool_free(zpool, NULL);
        CHECK("free: NULL block on an MP_ZERO pool does nothing", stats_of(zpool).frees == 0);
        mp_pool_destroy(zpool);
    }
}

/* ------------------------------------------------------------------------------------------------
 * mp_pool_reset
 * ---------------------------------------------------------------------------------------------- */

static void test_reset(void)
{
    for (unsigned flags = 0; flags <= MP_ZERO; flags += MP_ZERO) {
        /* One chunk run: after the reset, the same addresses come back, lowest first. */
        mp_pool *pool = make(40, 0, 0, flags);
        if (!CHECK("create: reset pool", pool != NULL))
            continue;
        void *first[10], *again[10];
        for (int i = 0; i < 10; i++)
            first[i] = mp_pool_alloc(pool);
        mp_pool_free(pool, first[3]);
        mp_pool_free(pool, first[7]);
        mp_stats before = stats_of(pool);
        mp_pool_reset(pool);
        mp_stats after = stats_of(pool);
        CHECK("reset: no block in use", after.blocks_in_use == 0 && after.bytes_used == 0);
        CHECK("reset: allocs kept", after.allocs == before.allocs);
        CHECK("reset: frees count the reset blocks", after.frees == before.frees + 8);
        CHECK("reset: blocks_peak kept", after.blocks_peak == 10);
        CHECK("reset: resets counted", after.resets == 1);
        CHECK("reset: memory kept", after.bytes_reserved == before.bytes_reserved &&
                                        after.chunks == before.chunks &&
                                        after.source_maps == before.source_maps);
        CHECK("reset: pool healthy", mp_pool_check(pool));
        CHECK("owns: a block from before the reset is no longer handed out",
              !mp_pool_owns(pool, first[0]));
        for (int i = 0; i < 10; i++)
            again[i] = mp_pool_alloc(pool);
        qsort(first, 10, sizeof *first, cmp_ptr);
        CHECK("reset: the same blocks come back, lowest address first",
              memcmp(first, again, sizeof first) == 0);
        CHECK("owns: a block handed out again after the reset", mp_pool_owns(pool, again[0]));
        CHECK("reset: refilling takes no new memory",
              stats_of(pool).source_maps == before.source_maps);
        mp_pool_reset(pool);
        mp_pool_reset(pool);
        CHECK("reset: twice more counted", stats_of(pool).resets == 3);
        CHECK("reset: an empty reset frees nothing more",
              stats_of(pool).frees == before.frees + 18);
        mp_pool_destroy(pool);
    }

    /* Many chunk runs: the pool keeps them all and refills without calling the source. */
    mp_pool *pool = make(64, 0, 0, 0);
    if (!pool)
        return;
    enum { N = 50000 };
    for (int i = 0; i < N; i++)
        mp_pool_alloc(pool);
    mp_stats before = stats_of(pool);
    CHECK("alloc: 50000 blocks of 64 bytes take more than one run", before.chunks > 1);
    mp_pool_reset(pool);
    bool ok = true;
    for (int i = 0; i < N; i++)
        ok = ok && mp_pool_alloc(pool) != NULL;
    mp_stats after = stats_of(pool);
    CHECK("reset: refilling a grown pool succeeds", ok);
    CHECK("reset: refilling a grown pool takes no new run",
          after.source_maps == before.source_maps && after.chunks == before.chunks);
    CHECK("reset: stats add up after refill", after.allocs == 2 * N && after.frees == N &&
                                                  after.blocks_in_use == N &&
                                                  after.blocks_peak == N);
    CHECK("check: grown pool healthy after reset and refill", mp_pool_check(pool));
    mp_pool_destroy(pool);
}

/* Several runs, each below the one before: after a reset the blocks come back in the order they
 * were first carved (the oldest run's first block first), not lowest address first. */
static void test_reset_run_order(void)
{
    enum { MAX = 1 << 14 };
    void *space = NULL, **first = malloc(MAX * sizeof *first);
    if (!CHECK("reset: room for the test", first && posix_memalign(&space, MiB, 4 * MiB) == 0)) {
        free(first);
        return;
    }
    for (unsigned flags = 0; flags <= MP_ZERO; flags += MP_ZERO) {
        /* A source that hands out the space from the top down, as mmap usually places
         * mappings, so that each run lies below the run taken before it. */
        counting_source d = {.base = (uintptr_t)space, .top = (uintptr_t)space + 4 * MiB};
        mp_source src = counting_source_of(&d);
        mp_pool *pool =
            mp_pool_create(&(mp_pool_opts){.block_size = 64, .flags = flags, .source = &src});
        if (!CHECK("create: a pool over a top-down source", pool != NULL))
            continue;
        size_t n = 0; /* until three runs are taken (the bookkeeping page is a map too) */
        while (n < MAX && stats_of(pool).source_maps < 4 && (first[n] = mp_pool_alloc(pool)))
            n++;
        uintptr_t lowest = UINTPTR_MAX;
        for (size_t i = 0; i < n; i++)
            lowest = (uintptr_t)first[i] < lowest ? (uintptr_t)first[i] : lowest;
        CHECK("reset: three runs taken, a later one below the first block",
              stats_of(pool).source_maps == 4 && lowest < (uintptr_t)first[0]);
        mp_pool_reset(pool);
        bool same = true;
        for (size_t i = 0; i < n; i++)
            same = same && mp_pool_alloc(pool) == first[i];
        CHECK("reset: the first block is the oldest run's first, then the order first carved",
              n > 0 && same);
        mp_pool_destroy(pool);
    }
    free(space);
    free(first);
}

/* ------------------------------------------------------------------------------------------------
 * mp_pool_trim
 * ---------------------------------------------------------------------------------------------- */

static void test_trim(void)
{
    enum { N = 60000 };
    static void *ps[N];
    mp_pool *pool = make(64, 0, 0, 0);
    if (!CHECK("create: trim pool", pool != NULL))
        return;
    size_t fresh_reserved = (size_t)stats_of(pool).bytes_reserved;
    CHECK("trim: fresh pool gives back nothing", mp_pool_trim(pool) == 0);
    for (int i = 0; i < N; i++)
        ps[i] = mp_pool_alloc(pool);
    CHECK("trim: all blocks live gives back nothing", mp_pool_trim(pool) == 0);

    /* Free all but one block: only runs without a live block may go. */
    for (int i = 1; i < N; i++)
        mp_pool_free(pool, ps[i]);
    pattern_fill(ps[0], 64, 9);
    mp_stats before = stats_of(pool);
    CHECK("alloc: 60000 blocks of 64 bytes take more than one run", before.chunks > 1);
    size_t got = mp_pool_trim(pool);
    mp_stats after = stats_of(pool);
    CHECK("trim: with one live block, something is given back", got > 0);
    CHECK("trim: bytes_reserved drops by what trim returned",
          after.bytes_reserved == before.bytes_reserved - got);
    CHECK("trim: the run holding the live block is kept",
          after.chunks >= 1 && after.chunks < before.chunks);
    CHECK("trim: the live block survives", pattern_ok(ps[0], 64, 9));
    CHECK("trim: counts kept", after.blocks_in_use == 1 && after.allocs == N &&
                                   after.frees == N - 1 && after.trims == 3);
    CHECK("check: healthy after a partial trim", mp_pool_check(pool));
    mp_pool_free(pool, ps[0]);

    /* Everything free: every run goes; only the bookkeeping page stays. */
    before = stats_of(pool);
    got = mp_pool_trim(pool);
    after = stats_of(pool);
    CHECK("trim: everything free gives back bytes", got > 0);
    CHECK("trim: bytes_reserved drops by the amount",
          after.bytes_reserved == before.bytes_reserved - got);
    CHECK("trim: no run left", after.chunks == 0);
    CHECK("trim: only the bookkeeping page left", after.bytes_reserved == fresh_reserved);
    CHECK("trim: nothing free left on the list", after.blocks_free == 0);
    CHECK("owns: blocks of given-back runs are not the pool's", !mp_pool_owns(pool, ps[N / 2]));
    CHECK("check: healthy after a full trim", mp_pool_check(pool));
    CHECK("trim: again gives back nothing", mp_pool_trim(pool) == 0);
    CHECK("trim: trims counted", stats_of(pool).trims == 5);

    /* Still usable, and grows again. */
    bool ok = true;
    for (int i = 0; i < N; i++) {
        ps[i] = mp_pool_alloc(pool);
        ok = ok && ps[i] && is_aligned(ps[i], 16);
    }
    CHECK("trim: the pool still allocates afterwards", ok);
    CHECK("check: healthy after regrowing", mp_pool_check(pool));
    mp_stats s = stats_of(pool);
    CHECK("trim: peak kept across trims", s.blocks_peak == N && s.blocks_in_use == N);
    mp_pool_destroy(pool);
}

/* ------------------------------------------------------------------------------------------------
 * mp_pool_owns and mp_pool_check
 * ---------------------------------------------------------------------------------------------- */

static char static_bytes[64];

static void test_owns(void)
{
    mp_pool *pool = make(32, 0, 0, 0), *other = make(32, 0, 0, 0);
    if (!CHECK("create: owns pools", pool && other)) {
        mp_pool_destroy(pool);
        mp_pool_destroy(other);
        return;
    }
    void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool), *o = mp_pool_alloc(other);
    size_t stride = (size_t)stats_of(pool).stride;
    int local = 0;
    CHECK("owns: a live block", mp_pool_owns(pool, a) && mp_pool_owns(pool, b));
    CHECK("owns: an interior pointer is false", !mp_pool_owns(pool, (char *)a + 1));
    CHECK("owns: an interior pointer at 8 is false", !mp_pool_owns(pool, (char *)a + 8));
    CHECK("owns: just before the first block is false",
          !mp_pool_owns(pool, (void *)((uintptr_t)a - stride)));
    CHECK("owns: a block never handed out is false",
          !mp_pool_owns(pool, (void *)((uintptr_t)b + stride)));
    CHECK("owns: a stack address is false", !mp_pool_owns(pool, &local));
    CHECK("owns: a static address is false", !mp_pool_owns(pool, static_bytes));
    CHECK("owns: another pool's block is false", !mp_pool_owns(pool, o));
    CHECK("owns: own block in the other pool is false", !mp_pool_owns(other, a));
    mp_pool_free(pool, a);
    CHECK("owns: a freed block is still the pool's", mp_pool_owns(pool, a));
    CHECK("owns: never dereferences: a pool-sized distance off is false",
          !mp_pool_owns(pool, (void *)((uintptr_t)a + 64 * MiB)));
    mp_pool_free(pool, b);
    mp_pool_free(other, o);
    mp_pool_destroy(pool);
    mp_pool_destroy(other);
}

static void test_check(void)
{
    mp_pool *pool = make(32, 0, 0, 0);
    if (!CHECK("create: check pool", pool != NULL))
        return;
    CHECK("check: fresh pool healthy", mp_pool_check(pool));
    void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool), *c = mp_pool_alloc(pool);
    CHECK("check: healthy with live blocks", mp_pool_check(pool));
    mp_pool_free(pool, a);
    mp_pool_free(pool, b); /* free list: b -> a */
    CHECK("check: healthy with free blocks", mp_pool_check(pool));
    if (!free_blocks_touchable()) {
        printf("test_pool: sanitizer or Valgrind: mp_pool_check corruption cases skipped\n");
        mp_pool_destroy(pool);
        return;
    }

    /*
     * Corrupt the head's link (its first word) in several ways, restoring it each time. A truncated
     * list (a link set to NULL early) is not among them: blocks in use are derived from the list's
     * length (mp_pool_stats), so the counts add up by construction and no validator can see it.
     */
    void *saved, *bogus;
    memcpy(&saved, b, sizeof saved);
    alignas(64) static char outside[64];
    void *links[] = {
        outside,                               /* outside the pool, aligned */
        (char *)a + 1,                         /* inside the pool, misaligned */
        (char *)c + 4 * stats_of(pool).stride, /* a block never handed out */
        b,                                     /* a cycle of one */
    };
    const char *what[] = {
        "check: a free link outside the pool is caught",
        "check: a misaligned free link is caught",
        "check: a free link to a never-used block is caught",
        "check: a self-cycle in the free list is caught",
    };
    for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
        bogus = links[i];
        memcpy(b, &bogus, sizeof bogus);
        CHECK(what[i], !mp_pool_check(pool));
        memcpy(b, &saved, sizeof saved);
        CHECK("check: healthy again once the link is restored", mp_pool_check(pool));
    }
    /* A two-block cycle: a's link (the list's tail) pointed back at b. */
    memcpy(&saved, a, sizeof saved);
    bogus = b;
    memcpy(a, &bogus, sizeof bogus);
    CHECK("check: a two-block cycle in the free list is caught", !mp_pool_check(pool));
    memcpy(a, &saved, sizeof saved);
    CHECK("check: healthy again after the cycle is undone", mp_pool_check(pool));
    mp_pool_free(pool, c);
    mp_pool_destroy(pool);

    /* Healthy pools of every other kind pass. */
    mp_pool *z = make(24, 64, 10, MP_ZERO);
    if (z) {
        void *p = mp_pool_alloc(z);
        mp_pool_free(z, p);
        CHECK("check: MP_ZERO pool healthy", mp_pool_check(z));
        mp_pool_reset(z);
        CHECK("check: MP_ZERO pool healthy after reset", mp_pool_check(z));
        mp_pool_destroy(z);
    }
    unsigned flags[] = {MP_CHECKED, MP_SECURE, MP_CHECKED | MP_SECURE | MP_ZERO};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        mp_pool *q = make(40, 0, 0, flags[i]);
        if (!q)
            continue;
        void *ps[100];
        for (int k = 0; k < 100; k++)
            ps[k] = mp_pool_alloc(q);
        for (int k = 0; k < 100; k += 3)
            mp_pool_free(q, ps[k]);
        CHECK("check: checked/secure pool healthy", mp_pool_check(q));
        mp_pool_reset(q);
        CHECK("check: checked/secure pool healthy after reset", mp_pool_check(q));
        mp_pool_destroy(q);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Thread-safe pools used from one thread: the same contract as any pool
 * ---------------------------------------------------------------------------------------------- */

static mp_pool *make_ts(size_t block_size)
{
    return mp_pool_create(&(mp_pool_opts){.block_size = block_size, .flags = MP_THREAD_SAFE});
}

static void test_thread_safe_one_thread(void)
{
    /* "Blocks taken into a cache count as handed out (mp_pool_owns() is true for them) and count
     * in blocks_peak": so the peak is at least what was in use, and owns holds for handed-out
     * blocks; exact values belong to plain pools. */
    mp_pool *pool = make_ts(64);
    if (!CHECK("create: thread-safe pool", pool != NULL))
        return;
    void *a = mp_pool_alloc(pool);
    mp_stats s = stats_of(pool);
    CHECK("thread-safe: one alloc: one block in use", s.blocks_in_use == 1 && s.allocs == 1);
    CHECK("thread-safe: one alloc: blocks_peak at least 1", s.blocks_peak >= 1);
    CHECK("thread-safe: owns a handed-out block, not an interior pointer",
          mp_pool_owns(pool, a) && !mp_pool_owns(pool, (char *)a + 8));
    mp_pool_free(pool, a);
    s = stats_of(pool);
    CHECK("thread-safe: freed: none in use, one free", s.blocks_in_use == 0 && s.frees == 1);
    mp_pool_destroy(pool);

    /* "Reuse is LIFO within a thread's cache": free N blocks in order, N within the cache's size,
     * and take them back: each must be the last one freed. */
    enum { CACHE = 32, N = 24 };
    pool = mp_pool_create(
        &(mp_pool_opts){.block_size = 64, .flags = MP_THREAD_SAFE, .thread_cache = CACHE});
    if (!pool)
        return;
    void *b[N];
    for (int i = 0; i < N; i++)
        b[i] = mp_pool_alloc(pool);
    for (int i = 0; i < N; i++)
        mp_pool_free(pool, b[i]);
    int first_wrong = -1;
    for (int i = N - 1; i >= 0; i--)
        if (mp_pool_alloc(pool) != b[i] && first_wrong < 0)
            first_wrong = N - i;
    CHECK("thread-safe: within a thread's cache, the most recently freed block is reused first",
          first_wrong < 0);
    if (first_wrong >= 0)
        printf("  thread-safe LIFO: alloc #%d after freeing b[0..%d] in order was not b[%d]\n",
               first_wrong, N - 1, N - first_wrong);
    s = stats_of(pool);
    CHECK("thread-safe: blocks_peak at least the most in use at once", s.blocks_peak >= N);
    CHECK("thread-safe: counts after the round trip",
          s.allocs == 2 * N && s.frees == N && s.blocks_in_use == N);
    mp_pool_destroy(pool);

    /* At most one source call per alloc; lowest addresses first, fresh and after a reset. */
    pool = make_ts(2077);
    if (!pool)
        return;
    uint64_t maps = stats_of(pool).source_maps;
    void *p = mp_pool_alloc(pool);
    CHECK("thread-safe: an alloc makes at most one source call",
          stats_of(pool).source_maps - maps <= 1);
    mp_pool_free(pool, p);
    mp_pool_destroy(pool);

    pool = make_ts(48);
    if (!pool)
        return;
    void *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = mp_pool_alloc(pool);
    CHECK("thread-safe: a fresh pool hands out the lowest addresses first, one stride apart",
          (char *)c[1] - (char *)c[0] == 48 && (char *)c[2] - (char *)c[1] == 48);
    void *lowest = c[0];
    for (int i = 1; i < 3; i++)
        if ((uintptr_t)c[i] < (uintptr_t)lowest)
            lowest = c[i];
    for (int i = 0; i < 3; i++)
        mp_pool_free(pool, c[i]);
    mp_pool_reset(pool);
    CHECK("thread-safe: after a reset the lowest address comes first",
          mp_pool_alloc(pool) == lowest);
    s = stats_of(pool);
    CHECK("thread-safe: reset counted, one block in use",
          s.resets == 1 && s.blocks_in_use == 1 && s.allocs == 4 && s.frees == 3);
    CHECK("check: thread-safe pool healthy", mp_pool_check(pool));
    mp_pool_destroy(pool);

    /* "Thread-safe pools that have a capacity keep no cache": exact like a plain pool. */
    pool =
        mp_pool_create(&(mp_pool_opts){.block_size = 32, .capacity = 3, .flags = MP_THREAD_SAFE});
    if (!pool)
        return;
    void *d[3];
    for (int i = 0; i < 3; i++)
        d[i] = mp_pool_alloc(pool);
    errno = 0;
    CHECK("thread-safe: capacity refuses the fourth block with ENOMEM",
          d[2] != NULL && mp_pool_alloc(pool) == NULL && errno == ENOMEM);
    mp_pool_free(pool, d[1]);
    CHECK("thread-safe with capacity: the freed block comes back", mp_pool_alloc(pool) == d[1]);
    s = stats_of(pool);
    CHECK("thread-safe with capacity: exact stats",
          s.blocks_peak == 3 && s.blocks_free == 0 && s.failed_allocs == 1 && s.allocs == 4);
    mp_pool_destroy(pool);
}

/* ------------------------------------------------------------------------------------------------
 * Main
 * ---------------------------------------------------------------------------------------------- */

int main(void)
{
    test_capacity();
    test_lifo();
    test_free_touches_only_block();
    test_zero();
    test_null_args();
    test_reset();
    test_reset_run_order();
    test_trim();
    test_owns();
    test_check();
    test_thread_safe_one_thread();
    return TEST_DONE();
}

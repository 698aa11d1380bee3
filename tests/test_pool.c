/*
 * test_pool.c: contract tests for every public pool function of mempool.h, errors included.
 *
 * Each section below takes one declaration of the header and checks what it promises, case by case:
 * the "Returns NULL if and only if" lists (both directions: each listed case fails with its errno,
 * and nearby valid cases succeed), the guarantees (alignment, zeroing, LIFO reuse, lowest addresses
 * after a reset), the NULL-argument behaviour and the statistics, with exact values in scenarios
 * small enough to count by hand; then the stats writers (text, and JSON through a small validator),
 * buffer pools (guard bytes around the buffer), the error handler with checked and secure pools
 * (the default handler in a child process), and thread-safe pools used from one thread, where the
 * header lets them differ from plain pools.
 *
 * Only the public API is used; the one piece of layout relied on is the one the header states, that
 * a plain pool's free block holds its free-list link in its first word (the corruption cases of
 * mp_pool_check). Cases that write into free blocks are skipped under ASan and Valgrind, where the
 * library poisons free blocks. The thorough misuse tests of checked and secure pools are
 * test_checked.c and test_secure.c; here only the handler's contract is checked.
 *
 * Usage: test_pool            (no arguments; about a second)
 */
#define _POSIX_C_SOURCE 200809L

#include "mempool.h"
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------------------------------- */

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

/*
 * Whether a test may touch free blocks (read or write them), as the corruption cases of
 * mp_pool_check and the misuse cases of checked and secure pools do. Not in an AddressSanitizer
 * build, nor under Valgrind: there the library poisons free blocks (and a plain pool keeps its list
 * out of them), so touching one is a tool error rather than the corruption the test means.
 */
static bool free_blocks_touchable(void)
{
    return !TEST_ASAN && !TEST_ON_VALGRIND();
}

static size_t page_size(void)
{
    long n = sysconf(_SC_PAGESIZE);
    return n > 0 ? (size_t)n : 4096;
}

static bool is_aligned(const void *p, size_t align)
{
    return ((uintptr_t)p & (align - 1)) == 0;
}

static size_t round_up(size_t n, size_t align)
{
    return (n + align - 1) / align * align;
}

static mp_pool *make(size_t block_size, size_t align, size_t capacity, unsigned flags)
{
    return mp_pool_create(&(mp_pool_opts){
        .block_size = block_size, .align = align, .capacity = capacity, .flags = flags});
}

static mp_stats stats_of(const mp_pool *pool)
{
    mp_stats s;
    memset(&s, 0xEE, sizeof s);
    int rc = mp_pool_stats(pool, &s);
    CHECK("stats: mp_pool_stats of a live pool returns 0", rc == 0);
    return s;
}

/* Creates a pool that must fail; true if it did with errno == err. Destroys it if it did not. */
static bool create_fails(const mp_pool_opts *opts, int err)
{
    errno = 0;
    mp_pool *pool = mp_pool_create(opts);
    int e = errno;
    mp_pool_destroy(pool);
    return pool == NULL && e == err;
}

/* The default alignment as the header defines it, computed independently of the library. */
static size_t default_align(size_t block_size)
{
    size_t a = block_size & (~block_size + 1); /* largest power of two dividing block_size */
    if (a > alignof(max_align_t))
        a = alignof(max_align_t);
    if (a < alignof(void *))
        a = alignof(void *);
    return a;
}

/* Fills n bytes with a pattern seeded by `seed`; pattern_ok verifies it. */
static void pattern_fill(void *p, size_t n, unsigned seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed * 131u + i * 7u + (i >> 8));
}

static bool pattern_ok(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed * 131u + i * 7u + (i >> 8)))
            return false;
    return true;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return (x > y) - (x < y);
}

/* True if the n blocks of `size` bytes at ps[] are pairwise disjoint (sorts ps). */
static bool disjoint(void **ps, size_t n, size_t size)
{
    qsort(ps, n, sizeof *ps, cmp_ptr);
    for (size_t i = 1; i < n; i++)
        if ((uintptr_t)ps[i - 1] + size > (uintptr_t)ps[i])
            return false;
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * mp_pool_create: every EINVAL case, and its valid neighbours
 * ---------------------------------------------------------------------------------------------- */

/* Halves of a source, for the "lacks map or unmap" cases; never called. */
static void *dummy_map(void *ctx, size_t size, size_t align)
{
    (void)ctx, (void)size, (void)align;
    return NULL;
}

static void dummy_unmap(void *ctx, void *p, size_t size)
{
    (void)ctx, (void)p, (void)size;
}

static void test_create_einval(void)
{
    CHECK("create: NULL opts gives EINVAL", create_fails(NULL, EINVAL));
    CHECK("create: block_size 0 gives EINVAL",
          create_fails(&(mp_pool_opts){.block_size = 0}, EINVAL));
    CHECK("create: align 3 gives EINVAL",
          create_fails(&(mp_pool_opts){.block_size = 16, .align = 3}, EINVAL));
    CHECK("create: align 6 gives EINVAL",
          create_fails(&(mp_pool_opts){.block_size = 16, .align = 6}, EINVAL));
    CHECK("create: align 24 gives EINVAL",
          create_fails(&(mp_pool_opts){.block_size = 16, .align = 24}, EINVAL));
    CHECK("create: align SIZE_MAX gives EINVAL",
          create_fails(&(mp_pool_opts){.block_size = 16, .align = SIZE_MAX}, EINVAL));

    unsigned bad_flags[] = {1u << 4, 1u << 15, 1u << 31, MP_ZERO | (1u << 5),
                            MP_THREAD_SAFE | (1u << 8)};
    for (size_t i = 0; i < sizeof bad_flags / sizeof *bad_flags; i++)
        CHECK("create: unknown flag bits give EINVAL",
              create_fails(&(mp_pool_opts){.block_size = 16, .flags = bad_flags[i]}, EINVAL));
    /* Every combination of the four known flags is accepted. */
    for (unsigned f = 0; f < 16; f++) {
        mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 16, .flags = f});
        CHECK("create: every combination of known flags is accepted", pool != NULL);
        void *p = mp_pool_alloc(pool);
        CHECK("alloc: works with every combination of flags", p != NULL);
        mp_pool_free(pool, p);
        mp_pool_destroy(pool);
    }
    static unsigned char tsbuf[8192];
    CHECK("create: MP_THREAD_SAFE with a buffer gives EINVAL",
          create_fails(&(mp_pool_opts){.block_size = 16,
                                       .flags = MP_THREAD_SAFE,
                                       .buffer = tsbuf,
                                       .buffer_size = sizeof tsbuf},
                       EINVAL));

    static const mp_source no_map = {NULL, dummy_unmap, NULL}, no_unmap = {dummy_map, NULL, NULL};
    CHECK("create: a source without map gives EINVAL",
          create_fails(&(mp_pool_opts){.block_size = 16, .source = &no_map}, EINVAL));
    CHECK("create: a source without unmap gives EINVAL",
          create_fails(&(mp_pool_opts){.block_size = 16, .source = &no_unmap}, EINVAL));

    /* Overflow of round_up(block_size, align) * capacity, at and around the edge. */
    CHECK("create: block_size SIZE_MAX/2, capacity 4 overflows: EINVAL",
          create_fails(&(mp_pool_opts){.block_size = SIZE_MAX / 2, .capacity = 4}, EINVAL));
    CHECK("create: block_size SIZE_MAX/2 (stride 2^63), capacity 2 overflows: EINVAL",
          create_fails(&(mp_pool_opts){.block_size = SIZE_MAX / 2, .capacity = 2}, EINVAL));
    CHECK("create: block_size SIZE_MAX rounded up to align overflows: EINVAL",
          create_fails(&(mp_pool_opts){.block_size = SIZE_MAX, .capacity = 1}, EINVAL));
    CHECK("create: align 2^63 (size_t's top bit) with capacity 2 overflows: EINVAL",
          create_fails(&(mp_pool_opts){.block_size = 1, .align = SIZE_MAX / 2 + 1, .capacity = 2},
                       EINVAL));
    CHECK("create: stride 64 * capacity (SIZE_MAX/64 + 1) overflows: EINVAL",
          create_fails(&(mp_pool_opts){.block_size = 64, .capacity = SIZE_MAX / 64 + 1}, EINVAL));

    /* The valid neighbours of those cases. */
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 64, .capacity = SIZE_MAX / 64});
    CHECK("create: stride 64 * capacity SIZE_MAX/64 does not overflow: a pool", pool != NULL);
    mp_pool_destroy(pool);
    pool = mp_pool_create(&(mp_pool_opts){.block_size = 1, .align = 1});
    CHECK("create: align 1 is a power of two: a pool", pool != NULL);
    mp_pool_destroy(pool);
    pool = mp_pool_create(&(mp_pool_opts){.block_size = 16, .flags = MP_ZERO});
    CHECK("create: MP_ZERO is implemented: a pool", pool != NULL);
    mp_pool_destroy(pool);
}

/* A stride of 2^63 bytes with capacity 1 does not overflow, so create succeeds; but no source can
 * give 2^63 bytes, so every alloc fails with ENOMEM and the pool stays consistent. */
static void test_create_huge_block(void)
{
    /* No chunk of at most SIZE_MAX / 4 bytes holds a block of 2^63 bytes. */
    CHECK("create: block_size SIZE_MAX/2, capacity 1: no chunk can hold it: EINVAL",
          create_fails(&(mp_pool_opts){.block_size = SIZE_MAX / 2, .capacity = 1}, EINVAL));
    /* 2^60 bytes fit a chunk (and capacity 1 does not overflow), so create succeeds; but no source
     * can give 2^60 bytes, so every alloc fails with ENOMEM and the pool stays consistent. */
    if (sizeof(size_t) < 8)
        return; /* a 32-bit system could give a chunk of a 2^28-byte block */
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = SIZE_MAX / 16 + 1, .capacity = 1});
    if (!CHECK("create: block_size 2^60, capacity 1 fits a chunk: a pool", pool != NULL))
        return;
    for (int i = 0; i < 2; i++) {
        errno = 0;
        void *p = mp_pool_alloc(pool);
        CHECK("alloc: a 2^60-byte block cannot be had: NULL, ENOMEM", p == NULL && errno == ENOMEM);
    }
    mp_stats s = stats_of(pool);
    CHECK("alloc: both failures counted in failed_allocs", s.failed_allocs == 2);
    CHECK("alloc: nothing counted as allocated", s.allocs == 0 && s.blocks_in_use == 0);
    CHECK("check: pool healthy after failed huge allocs", mp_pool_check(pool));
    mp_pool_destroy(pool);

    /* Unbounded capacity: create may accept SIZE_MAX (the product has no capacity to overflow
     * with) or refuse it; what it must not do is hand out a block. */
    errno = 0;
    pool = mp_pool_create(&(mp_pool_opts){.block_size = SIZE_MAX});
    if (pool == NULL) {
        CHECK("create: block_size SIZE_MAX, capacity 0 refused with EINVAL", errno == EINVAL);
    } else {
        errno = 0;
        void *p = mp_pool_alloc(pool);
        CHECK("alloc: block_size SIZE_MAX: NULL, ENOMEM", p == NULL && errno == ENOMEM);
        mp_pool_destroy(pool);
    }
}

/* A pool with room for 4 GiB of blocks takes only its bookkeeping page at create time. */
static void test_create_lazy(void)
{
    mp_pool *pool = make(4096, 0, (4 * KiB * MiB) / 4096, 0);
    if (!CHECK("create: capacity for 4 GiB of blocks: a pool", pool != NULL))
        return;
    mp_stats s = stats_of(pool);
    CHECK("create: no chunk taken before the first alloc", s.chunks == 0);
    CHECK("create: bytes_reserved is the one bookkeeping page", s.bytes_reserved == page_size());
    CHECK("create: one source map, for the bookkeeping", s.source_maps == 1);
    void *p = mp_pool_alloc(pool);
    CHECK("alloc: first alloc of the 4 GiB pool works", p != NULL);
    s = stats_of(pool);
    CHECK("alloc: first alloc takes one chunk run (one map, some chunks)",
          s.chunks >= 1 && s.source_maps == 2);
    CHECK("alloc: chunks grow lazily, not the whole capacity (< 64 MiB reserved)",
          s.bytes_reserved < 64 * MiB);
    mp_pool_free(pool, p);
    mp_pool_destroy(pool);

    pool = make(64, 0, (4 * KiB * MiB) / 64, MP_ZERO);
    CHECK("create: 2^26 blocks of 64 bytes with MP_ZERO: a pool", pool != NULL);
    if (pool) {
        s = stats_of(pool);
        CHECK("create: no chunk taken (MP_ZERO)", s.chunks == 0 && s.bytes_reserved <= page_size());
    }
    mp_pool_destroy(pool);
}

/* ------------------------------------------------------------------------------------------------
 * Alignment, block sizes and stride
 * ---------------------------------------------------------------------------------------------- */

static void test_default_align(void)
{
    size_t sizes[] = {1,  2,  3,  4,  7,   8,   12,   16,   24,     32,
                      40, 48, 64, 96, 100, 128, 4096, 4097, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t bs = sizes[i], want = default_align(bs);
        mp_pool *pool = make(bs, 0, 0, 0);
        if (!CHECK("create: default-aligned pool", pool != NULL))
            continue;
        CHECK("align: default is lowbit(block_size) in [alignof(void *), alignof(max_align_t)]",
              mp_pool_align(pool) == want);
        CHECK("stats: align as used equals mp_pool_align", stats_of(pool).align == want);
        void *ps[8];
        for (int k = 0; k < 8; k++) {
            ps[k] = mp_pool_alloc(pool);
            CHECK("alloc: block aligned to the default alignment",
                  ps[k] && is_aligned(ps[k], want));
        }
        for (int k = 0; k < 8; k++)
            mp_pool_free(pool, ps[k]);
        mp_pool_destroy(pool);
    }
    /* The two examples the contract is usually read by. */
    mp_pool *p24 = make(24, 0, 0, 0), *p64 = make(64, 0, 0, 0);
    CHECK("align: block_size 24 gets 8", p24 && mp_pool_align(p24) == 8);
    CHECK("align: block_size 64 gets alignof(max_align_t)",
          p64 && mp_pool_align(p64) == alignof(max_align_t));
    mp_pool_destroy(p24);
    mp_pool_destroy(p64);
}

/* Every power of two from 8 to 4 MiB, with block sizes below, at and above it. */
static void test_explicit_align(void)
{
    for (size_t align = 8; align <= 4 * MiB; align *= 2) {
        size_t sizes[] = {1, 24, align - 1, align, align + 1};
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            size_t bs = sizes[i];
            mp_pool *pool = make(bs, align, 0, 0);
            if (!CHECK("create: explicitly aligned pool", pool != NULL))
                continue;
            CHECK("align: explicit alignment reported as given", mp_pool_align(pool) == align);
            mp_stats s = stats_of(pool);
            CHECK("stats: stride is block_size rounded up to align",
                  s.stride == round_up(bs < sizeof(void *) ? sizeof(void *) : bs, align));
            /* Enough blocks to span more than one chunk run when blocks are small. */
            size_t n = align <= 4096 ? 300 : 8;
            void *ps[300];
            bool aligned = true, got = true;
            for (size_t k = 0; k < n; k++) {
                ps[k] = mp_pool_alloc(pool);
                got = got && ps[k] != NULL;
                aligned = aligned && is_aligned(ps[k], align);
                if (ps[k]) {
                    memset(ps[k], (int)k, bs < 64 ? bs : 64);
                    memset((char *)ps[k] + bs - (bs < 64 ? bs : 64), (int)k, bs < 64 ? bs : 64);
                }
            }
            CHECK("alloc: every alloc of an aligned pool succeeds", got);
            CHECK("alloc: every block aligned to the explicit alignment", aligned);
            CHECK("check: aligned pool healthy after writing its blocks", mp_pool_check(pool));
            if (got)
                CHECK("alloc: aligned blocks are disjoint", disjoint(ps, n, bs));
            for (size_t k = 0; k < n; k++)
                mp_pool_free(pool, ps[k]);
            mp_pool_destroy(pool);
        }
    }
    /* Alignments below a pointer are valid; blocks still hold the free-list link, which the
     * inline mp_pool_free writes as a void *, so they are at least pointer-aligned too. */
    for (size_t align = 1; align < sizeof(void *); align *= 2) {
        mp_pool *pool = make(3, align, 0, 0);
        if (!CHECK("create: align below a pointer: a pool", pool != NULL))
            continue;
        size_t used = mp_pool_align(pool);
        CHECK("align: small alignment: used is a power of two >= the one asked",
              used >= align && (used & (used - 1)) == 0 && stats_of(pool).align == used);
        void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool);
        CHECK("alloc: small-align blocks are pointer-aligned and distinct",
              a && b && a != b && is_aligned(a, alignof(void *)) && is_aligned(b, alignof(void *)));
        mp_pool_free(pool, a);
        mp_pool_free(pool, b);
        CHECK("check: small-align pool healthy", mp_pool_check(pool));
        mp_pool_destroy(pool);
    }
}

/* Every block size from 1 to 4100 bytes, then large ones; blocks written over their whole size. */
static void test_block_sizes(void)
{
    size_t big[] = {8 * KiB - 1, 64 * KiB + 8, MiB, MiB + 1, 5 * MiB + 3};
    for (size_t i = 1; i <= 4100 + sizeof big / sizeof *big; i++) {
        size_t bs = i <= 4100 ? i : big[i - 4101];
        mp_pool *pool = make(bs, 0, 0, 0);
        if (!CHECK("create: pool of this block size", pool != NULL))
            continue;
        mp_stats s = stats_of(pool);
        size_t want_stride = round_up(bs < sizeof(void *) ? sizeof(void *) : bs, default_align(bs));
        CHECK("stats: stride is block_size (with pointer room) rounded up to align",
              s.stride == want_stride);
        CHECK("block_size: as created", mp_pool_block_size(pool) == bs && s.block_size == bs);
        void *ps[3];
        bool ok = true;
        for (unsigned k = 0; k < 3; k++) {
            ps[k] = mp_pool_alloc(pool);
            ok = ok && ps[k] != NULL && is_aligned(ps[k], default_align(bs));
            if (ps[k])
                pattern_fill(ps[k], bs, k + (unsigned)bs);
        }
        CHECK("alloc: three aligned blocks of this size", ok);
        for (unsigned k = 0; k < 3 && ok; k++)
            CHECK("alloc: a block's whole contents survive writing its neighbours",
                  pattern_ok(ps[k], bs, k + (unsigned)bs));
        /* Blocks carved in a row from a fresh pool sit one stride apart, lowest first. */
        if (ok && want_stride <= 4096)
            CHECK("alloc: fresh pool carves upward, one stride apart",
                  (char *)ps[1] - (char *)ps[0] == (ptrdiff_t)want_stride &&
                      (char *)ps[2] - (char *)ps[1] == (ptrdiff_t)want_stride);
        for (unsigned k = 0; k < 3; k++)
            mp_pool_free(pool, ps[k]);
        CHECK("check: healthy after alloc/free of this size", mp_pool_check(pool));
        mp_pool_destroy(pool);
    }
}

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
 * Errors caught by checked and secure pools: mp_error_name, mp_set_error_handler
 * ---------------------------------------------------------------------------------------------- */

typedef struct seen {
    int n;
    mp_error last; /* its pointers are compared, never followed, after the call */
    char message[256];
    char pool_name[MP_NAME_MAX];
} seen;

static void record_error(const mp_error *e, void *ctx)
{
    seen *s = ctx;
    s->n++;
    s->last = *e;
    snprintf(s->message, sizeof s->message, "%s", e->message ? e->message : "(null)");
    snprintf(s->pool_name, sizeof s->pool_name, "%s", e->pool_name ? e->pool_name : "(null)");
}

/* Exactly one error since *s was cleared, of this kind, about this pool and block. */
static bool saw_one(const seen *s, mp_error_kind kind, const mp_pool *pool, const void *addr)
{
    return s->n == 1 && s->last.kind == kind && s->last.pool == pool && s->last.addr == addr;
}

/* The message is one line beginning "mempool: ", with the kind's name as mp_error_name() gives it
 * (the header's example puts it first; a leak message may count first: "2 blocks leaked") and the
 * pool as `in pool "<name>"`. */
static bool message_names(const seen *s, mp_error_kind kind, const char *name)
{
    char tail[64];
    snprintf(tail, sizeof tail, "in pool \"%s\"", name);
    return strncmp(s->message, "mempool: ", 9) == 0 && strstr(s->message, mp_error_name(kind)) &&
           strstr(s->message, tail) != NULL && strchr(s->message, '\n') == NULL;
}

static void test_error_names(void)
{
    static const struct {
        mp_error_kind kind;
        const char *name;
    } names[] = {
        {MP_ERR_DOUBLE_FREE, "double free"},
        {MP_ERR_INVALID_FREE, "invalid free"},
        {MP_ERR_WRITE_AFTER_FREE, "write after free"},
        {MP_ERR_OVERFLOW, "overflow"},
        {MP_ERR_LEAK, "leak"},
        {MP_ERR_CORRUPT_FREE_LIST, "corrupted free list"},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        CHECK("errors: mp_error_name gives the documented name",
              strcmp(mp_error_name(names[i].kind), names[i].name) == 0);
    CHECK("errors: mp_error_name of 0 is \"unknown\"",
          strcmp(mp_error_name((mp_error_kind)0), "unknown") == 0);
    CHECK("errors: mp_error_name of 99 is \"unknown\"",
          strcmp(mp_error_name((mp_error_kind)99), "unknown") == 0);
}

static void test_checked_errors(void)
{
    static seen s;
    mp_set_error_handler(record_error, &s);
    mp_pool *pool =
        mp_pool_create(&(mp_pool_opts){.block_size = 24, .flags = MP_CHECKED, .name = "conns"});
    mp_pool *other = make(24, 0, 0, 0);
    if (!CHECK("create: checked pool", pool && other)) {
        mp_pool_destroy(pool);
        mp_pool_destroy(other);
        mp_set_error_handler(NULL, NULL);
        return;
    }
    void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool), *o = mp_pool_alloc(other);

    mp_pool_free(pool, a);
    memset(&s, 0, sizeof s);
    mp_pool_free(pool, a);
    CHECK("errors: a checked pool reports a double free", saw_one(&s, MP_ERR_DOUBLE_FREE, pool, a));
    char want[160];
    snprintf(want, sizeof want, "mempool: double free of %p in pool \"conns\"", a);
    CHECK("errors: the message is the documented line", strcmp(s.message, want) == 0);
    CHECK("errors: pool_name and count", strcmp(s.pool_name, "conns") == 0 && s.last.count == 1);
    mp_stats st = stats_of(pool);
    CHECK("errors: an ignored double free frees nothing more",
          st.frees == 1 && st.blocks_in_use == 1);
    void *x = mp_pool_alloc(pool), *y = mp_pool_alloc(pool);
    CHECK("errors: the double-freed block comes back once, not twice",
          x == a && y != a && y != NULL);

    int local = 0;
    void *invalid[] = {(char *)b + 8, (char *)b + 1, &local, o, static_bytes};
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        memset(&s, 0, sizeof s);
        mp_pool_free(pool, invalid[i]);
        CHECK(
            "errors: a checked pool reports an invalid free (interior, stack, other pool, static)",
            saw_one(&s, MP_ERR_INVALID_FREE, pool, invalid[i]) &&
                message_names(&s, MP_ERR_INVALID_FREE, "conns"));
    }
    mp_stats st2 = stats_of(pool);
    CHECK("errors: ignored invalid frees change nothing",
          st2.frees == st.frees && st2.blocks_in_use == st.blocks_in_use + 2);
    CHECK("errors: the pool is healthy after the ignored errors", mp_pool_check(pool));

    if (free_blocks_touchable()) {
        mp_pool_free(pool, y);
        ((unsigned char *)y)[10] = 0x00; /* after the link: the pool filled it with MP_FILL_FREED */
        memset(&s, 0, sizeof s);
        void *z = mp_pool_alloc(pool);
        CHECK("errors: a write after free is reported when the block is handed out again",
              z == y && saw_one(&s, MP_ERR_WRITE_AFTER_FREE, pool, y) &&
                  message_names(&s, MP_ERR_WRITE_AFTER_FREE, "conns"));
        memset(&s, 0, sizeof s);
        ((unsigned char *)z)[24] = 0x00; /* one past block_size: the canary */
        uint64_t frees = stats_of(pool).frees;
        mp_pool_free(pool, z);
        CHECK("errors: an overflow is reported at free",
              saw_one(&s, MP_ERR_OVERFLOW, pool, z) && message_names(&s, MP_ERR_OVERFLOW, "conns"));
        CHECK("errors: an overflowed block is still freed", stats_of(pool).frees == frees + 1);
    } else {
        mp_pool_free(pool, y);
    }
    mp_pool_free(pool, x);
    mp_pool_free(pool, b);
    memset(&s, 0, sizeof s);
    mp_pool_destroy(pool);
    CHECK("errors: no leak reported when every block was freed", s.n == 0);

    /* Leaks: blocks still live at destroy are reported once, with their count. */
    mp_pool *leaky =
        mp_pool_create(&(mp_pool_opts){.block_size = 13, .flags = MP_CHECKED, .name = "leaky"});
    if (leaky) {
        void *p0 = mp_pool_alloc(leaky), *p1 = mp_pool_alloc(leaky), *p2 = mp_pool_alloc(leaky);
        mp_pool_free(leaky, p1);
        if (free_blocks_touchable()) {
            memset(&s, 0, sizeof s);
            ((unsigned char *)p2)[13] = 0x00; /* overflow an odd block size by one */
            mp_pool_free(leaky, p2);
            CHECK("errors: an overflow of a 13-byte block by one byte is reported",
                  saw_one(&s, MP_ERR_OVERFLOW, leaky, p2));
            p2 = mp_pool_alloc(leaky);
        }
        memset(&s, 0, sizeof s);
        mp_pool_destroy(leaky);
        CHECK("errors: a checked pool reports its live blocks as one leak at destroy",
              s.n == 1 && s.last.kind == MP_ERR_LEAK && s.last.pool == leaky && s.last.count == 2 &&
                  (s.last.addr == p0 || s.last.addr == p2));
        CHECK("errors: the leak message names the pool", message_names(&s, MP_ERR_LEAK, "leaky"));
    }
    mp_pool_free(other, o);
    mp_pool_destroy(other);
    mp_set_error_handler(NULL, NULL);
}

static void test_secure_errors(void)
{
    static seen s;
    mp_set_error_handler(record_error, &s);
    mp_pool *pool =
        mp_pool_create(&(mp_pool_opts){.block_size = 32, .flags = MP_SECURE, .name = "sec"});
    if (!CHECK("create: secure pool", pool != NULL)) {
        mp_set_error_handler(NULL, NULL);
        return;
    }
    void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool), *c = mp_pool_alloc(pool);
    mp_pool_free(pool, a);
    memset(&s, 0, sizeof s);
    mp_pool_free(pool, a);
    CHECK("errors: a secure pool reports a double free",
          saw_one(&s, MP_ERR_DOUBLE_FREE, pool, a) && message_names(&s, MP_ERR_DOUBLE_FREE, "sec"));
    memset(&s, 0, sizeof s);
    mp_pool_free(pool, (char *)b + 8);
    CHECK("errors: a secure pool reports an invalid free",
          saw_one(&s, MP_ERR_INVALID_FREE, pool, (char *)b + 8));
    CHECK("errors: secure pool healthy after ignored errors", mp_pool_check(pool));

    if (free_blocks_touchable()) {
        /* Plant a pointer to a live block over every word of a free block: the list is b -> a. */
        mp_pool_free(pool, b);
        for (size_t off = 0; off + sizeof c <= 32; off += sizeof c)
            memcpy((char *)b + off, &c, sizeof c);
        memset(&s, 0, sizeof s);
        void *x1 = mp_pool_alloc(pool), *x2 = mp_pool_alloc(pool);
        CHECK("errors: a planted free-list link is reported as a corrupted free list",
              s.n == 1 && s.last.kind == MP_ERR_CORRUPT_FREE_LIST && s.last.pool == pool);
        CHECK("errors: the planted pointer is never handed out",
              x1 && x2 && x1 != c && x2 != c && x1 != x2);
        CHECK("errors: secure pool healthy after the cut", mp_pool_check(pool));
    }
    mp_pool_destroy(pool);
    mp_set_error_handler(NULL, NULL);
}

/* The default handler prints the one line to stderr and aborts: in a child process. */
static void test_default_handler(void)
{
    int fds[2];
    if (pipe(fds) != 0)
        return;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        mp_set_error_handler(NULL, NULL);
        mp_pool *pool =
            mp_pool_create(&(mp_pool_opts){.block_size = 24, .flags = MP_CHECKED, .name = "conns"});
        void *a = mp_pool_alloc(pool);
        mp_pool_free(pool, a);
        mp_pool_free(pool, a);
        _exit(0); /* only if the handler returned */
    }
    close(fds[1]);
    char out[512];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof out - 1 && (n = read(fds[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
    char *emulator = strchr(out, '\n'); /* qemu-user adds a line after the one, if it runs this */
    if (emulator != NULL && test_emulator_line(emulator + 1))
        len = (size_t)(emulator + 1 - out), out[len] = '\0';
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK("errors: the default handler aborts", WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    const char *head = "mempool: double free of 0x", *tail = " in pool \"conns\"\n";
    CHECK("errors: the default handler prints exactly the one line",
          strncmp(out, head, strlen(head)) == 0 && len > strlen(tail) &&
              strcmp(out + len - strlen(tail), tail) == 0 && strchr(out, '\n') == out + len - 1);
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
 * Accessors and names
 * ---------------------------------------------------------------------------------------------- */

static void test_accessors(void)
{
    char name[100];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    name[0] = 'N';
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 5, .align = 32, .name = name});
    if (!CHECK("create: pool with a long name", pool != NULL))
        return;
    CHECK("block_size: as created (5, not the stride)", mp_pool_block_size(pool) == 5);
    CHECK("align: as created", mp_pool_align(pool) == 32);
    const char *got = mp_pool_name(pool);
    CHECK("name: truncated to MP_NAME_MAX - 1 bytes",
          got && strlen(got) == MP_NAME_MAX - 1 && strncmp(got, name, MP_NAME_MAX - 1) == 0);
    name[0] = 'M';
    CHECK("name: copied, not referenced", got && got[0] == 'N');
    mp_stats s = stats_of(pool);
    CHECK("stats: name truncated the same way",
          strlen(s.name) == MP_NAME_MAX - 1 && s.name[0] == 'N');
    mp_pool_destroy(pool);

    char exact[MP_NAME_MAX];
    memset(exact, 'e', sizeof exact - 1);
    exact[sizeof exact - 1] = '\0';
    pool = mp_pool_create(&(mp_pool_opts){.block_size = 8, .name = exact});
    CHECK("name: MP_NAME_MAX - 1 bytes kept whole", pool && strcmp(mp_pool_name(pool), exact) == 0);
    mp_pool_destroy(pool);

    pool = mp_pool_create(&(mp_pool_opts){.block_size = 8, .name = NULL});
    CHECK("name: NULL name is \"\"",
          pool && strcmp(mp_pool_name(pool), "") == 0 && stats_of(pool).name[0] == '\0');
    mp_pool_destroy(pool);
    pool = mp_pool_create(&(mp_pool_opts){.block_size = 8, .name = "conns"});
    CHECK("name: short name kept", pool && strcmp(mp_pool_name(pool), "conns") == 0 &&
                                       strcmp(stats_of(pool).name, "conns") == 0);
    mp_pool_destroy(pool);
}

/* ------------------------------------------------------------------------------------------------
 * Statistics: exact values in a small scenario
 * ---------------------------------------------------------------------------------------------- */

static bool stats_invariants(const mp_stats *s)
{
    return s->allocs - s->frees == s->blocks_in_use && s->blocks_in_use <= s->blocks_peak &&
           s->bytes_used <= s->bytes_reserved && s->bytes_used == s->blocks_in_use * s->block_size;
}

static void test_stats_exact(void)
{
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 24, .capacity = 10, .name = "s"});
    if (!CHECK("create: stats pool", pool != NULL))
        return;
    mp_stats s = stats_of(pool);
    CHECK("stats: fresh name", strcmp(s.name, "s") == 0);
    CHECK("stats: fresh block_size/align/stride/capacity",
          s.block_size == 24 && s.align == 8 && s.stride == 24 && s.capacity == 10);
    CHECK("stats: fresh counts all zero", s.blocks_in_use == 0 && s.blocks_peak == 0 &&
                                              s.blocks_free == 0 && s.allocs == 0 && s.frees == 0 &&
                                              s.failed_allocs == 0 && s.bytes_used == 0 &&
                                              s.resets == 0 && s.trims == 0);
    CHECK("stats: fresh pool holds no chunk, one map", s.chunks == 0 && s.source_maps == 1);

    void *p[10];
    for (int i = 0; i < 3; i++)
        p[i] = mp_pool_alloc(pool);
    s = stats_of(pool);
    CHECK("stats: 3 allocs", s.allocs == 3 && s.blocks_in_use == 3 && s.blocks_peak == 3 &&
                                 s.blocks_free == 0 && s.frees == 0 && s.bytes_used == 72);
    CHECK("stats: first alloc took one run",
          s.chunks >= 1 && s.source_maps == 2 && s.bytes_reserved > page_size());
    uint64_t reserved = s.bytes_reserved, chunks = s.chunks;

    mp_pool_free(pool, p[1]);
    s = stats_of(pool);
    CHECK("stats: 1 free", s.frees == 1 && s.blocks_in_use == 2 && s.blocks_free == 1 &&
                               s.blocks_peak == 3 && s.bytes_used == 48);
    p[1] = mp_pool_alloc(pool);
    s = stats_of(pool);
    CHECK("stats: reuse from the free list",
          s.allocs == 4 && s.blocks_free == 0 && s.blocks_in_use == 3 && s.blocks_peak == 3);
    for (int i = 3; i < 10; i++)
        p[i] = mp_pool_alloc(pool);
    CHECK("stats: full pool refuses", mp_pool_alloc(pool) == NULL);
    s = stats_of(pool);
    CHECK("stats: at capacity", s.allocs == 11 && s.blocks_in_use == 10 && s.blocks_peak == 10 &&
                                    s.failed_allocs == 1 && s.bytes_used == 240);
    CHECK("stats: 10 small blocks fit the first run",
          s.chunks == chunks && s.source_maps == 2 && s.bytes_reserved == reserved);
    for (int i = 0; i < 10; i += 2)
        mp_pool_free(pool, p[i]);
    s = stats_of(pool);
    CHECK("stats: after 5 frees",
          s.frees == 6 && s.blocks_in_use == 5 && s.blocks_free == 5 && s.blocks_peak == 10);
    mp_pool_reset(pool);
    s = stats_of(pool);
    CHECK("stats: after reset", s.frees == 11 && s.allocs == 11 && s.blocks_in_use == 0 &&
                                    s.blocks_peak == 10 && s.resets == 1 && s.failed_allocs == 1);
    mp_pool_trim(pool);
    s = stats_of(pool);
    CHECK("stats: after trim",
          s.trims == 1 && s.chunks == 0 && s.blocks_free == 0 && s.bytes_reserved == page_size());
    CHECK("stats: invariants hold", stats_invariants(&s));
    mp_pool_destroy(pool);

    /* MP_ZERO pools count the same way. */
    pool = make(100, 0, 0, MP_ZERO);
    if (!pool)
        return;
    for (int i = 0; i < 4; i++)
        p[i] = mp_pool_alloc(pool);
    mp_pool_free(pool, p[0]);
    mp_pool_free(pool, p[2]);
    s = stats_of(pool);
    CHECK("stats: MP_ZERO counts", s.allocs == 4 && s.frees == 2 && s.blocks_in_use == 2 &&
                                       s.blocks_free == 2 && s.blocks_peak == 4 &&
                                       s.bytes_used == 200);
    /* 100's own alignment is 4; the default is at least a pointer's (8 on 64-bit systems) */
    size_t a = alignof(void *) > 4 ? alignof(void *) : 4;
    CHECK("stats: MP_ZERO stride (100 rounded up to the default alignment)",
          s.stride == (100 + a - 1) / a * a && s.align == a);
    mp_pool_destroy(pool);
}

/* ------------------------------------------------------------------------------------------------
 * mp_stats_write / mp_stats_print
 * ---------------------------------------------------------------------------------------------- */

typedef struct capture {
    char buf[16384];
    size_t len;
    int calls;
    bool overflow;
} capture;

static void capture_write(void *ctx, const char *text, size_t len)
{
    capture *c = ctx;
    c->calls++;
    if (c->len + len >= sizeof c->buf) {
        c->overflow = true;
        return;
    }
    memcpy(c->buf + c->len, text, len);
    c->len += len;
    c->buf[c->len] = '\0';
}

/* A minimal JSON validator (RFC 8259 grammar; no semantic checks): true if the input is exactly
 * one JSON value with optional whitespace around it. */
typedef struct json_in {
    const char *s;
    size_t n, i;
} json_in;

static bool json_value(json_in *j, int depth);

static void json_ws(json_in *j)
{
    while (j->i < j->n &&
           (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r'))
        j->i++;
}

static bool json_eat(json_in *j, char c)
{
    json_ws(j);
    if (j->i < j->n && j->s[j->i] == c) {
        j->i++;
        return true;
    }
    return false;
}

static bool json_string(json_in *j)
{
    if (!json_eat(j, '"'))
        return false;
    while (j->i < j->n) {
        unsigned char c = (unsigned char)j->s[j->i++];
        if (c == '"')
            return true;
        if (c < 0x20)
            return false;
        if (c != '\\')
            continue;
        if (j->i >= j->n)
            return false;
        c = (unsigned char)j->s[j->i++];
        if (c == 'u') {
            for (int k = 0; k < 4; k++, j->i++)
                if (j->i >= j->n || !strchr("0123456789abcdefABCDEF", j->s[j->i]) || !j->s[j->i])
                    return false;
        } else if (!c || !strchr("\"\\/bfnrt", c)) {
            return false;
        }
    }
    return false;
}

static size_t json_digits(json_in *j)
{
    size_t k = 0;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9')
        j->i++, k++;
    return k;
}

static bool json_number(json_in *j)
{
    json_ws(j);
    if (j->i < j->n && j->s[j->i] == '-')
        j->i++;
    size_t start = j->i, k = json_digits(j);
    if (k == 0 || (k > 1 && j->s[start] == '0'))
        return false;
    if (j->i < j->n && j->s[j->i] == '.') {
        j->i++;
        if (json_digits(j) == 0)
            return false;
    }
    if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
        j->i++;
        if (j->i < j->n && (j->s[j->i] == '+' || j->s[j->i] == '-'))
            j->i++;
        if (json_digits(j) == 0)
            return false;
    }
    return true;
}

static bool json_list(json_in *j, char close, bool keyed, int depth)
{
    if (json_eat(j, close))
        return true;
    do {
        if (keyed && !(json_string(j) && json_eat(j, ':')))
            return false;
        if (!json_value(j, depth + 1))
            return false;
    } while (json_eat(j, ','));
    return json_eat(j, close);
}

static bool json_value(json_in *j, int depth)
{
    json_ws(j);
    if (depth > 32 || j->i >= j->n)
        return false;
    const char *lit[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t len = strlen(lit[k]);
        if (j->n - j->i >= len && memcmp(j->s + j->i, lit[k], len) == 0) {
            j->i += len;
            return true;
        }
    }
    switch (j->s[j->i]) {
    case '{':
        j->i++;
        return json_list(j, '}', true, depth);
    case '[':
        j->i++;
        return json_list(j, ']', false, depth);
    case '"':
        return json_string(j);
    default:
        return json_number(j);
    }
}

static bool json_valid(const char *s, size_t n)
{
    json_in j = {s, n, 0};
    json_ws(&j);
    if (j.i >= n || s[j.i] != '{') /* "one JSON object" */
        return false;
    if (!json_value(&j, 0))
        return false;
    json_ws(&j);
    return j.i == n;
}

/* True if the JSON text has the key "key" (quoted) followed by ':' and the number `value`. */
static bool json_has_number(const char *s, const char *key, uint64_t value)
{
    char q[64];
    snprintf(q, sizeof q, "\"%s\"", key);
    for (const char *at = strstr(s, q); at; at = strstr(at + 1, q)) {
        const char *v = at + strlen(q);
        while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
            v++;
        if (*v++ != ':')
            continue;
        while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
            v++;
        if (*v < '0' || *v > '9')
            continue;
        char *end;
        errno = 0;
        unsigned long long got = strtoull(v, &end, 10);
        if (errno == 0 && got == value && strchr(",} \t\r\n", *end) && *end)
            return true;
    }
    return false;
}

/* True if some line of the text is "<key>: <value>" for some key (with optional spaces). */
static bool text_has_value(const char *s, uint64_t value)
{
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)value);
    for (const char *line = s; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : "") {
        const char *colon = strchr(line, ':'), *eol = strchr(line, '\n');
        if (!colon || (eol && colon > eol))
            continue;
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t n = strlen(want);
        if (strncmp(v, want, n) == 0 && (v[n] == '\n' || v[n] == '\0' || v[n] == ' '))
            return true;
    }
    return false;
}

#define NUM_FIELDS 16

/* The numeric fields of mp_stats, by name and address, so tests can loop over them. */
static void stats_fields(mp_stats *s, const char *names[NUM_FIELDS], uint64_t vals[NUM_FIELDS],
                         uint64_t base)
{
    static const char *const n[NUM_FIELDS] = {
        "block_size",  "align",       "stride", "capacity",      "blocks_in_use",  "blocks_peak",
        "blocks_free", "allocs",      "frees",  "failed_allocs", "bytes_reserved", "bytes_used",
        "chunks",      "source_maps", "resets", "trims"};
    for (int i = 0; i < NUM_FIELDS; i++) {
        names[i] = n[i];
        vals[i] = base + (uint64_t)i;
    }
    s->block_size = (size_t)vals[0];
    s->align = (size_t)vals[1];
    s->stride = (size_t)vals[2];
    s->capacity = (size_t)vals[3];
    s->blocks_in_use = vals[4];
    s->blocks_peak = vals[5];
    s->blocks_free = vals[6];
    s->allocs = vals[7];
    s->frees = vals[8];
    s->failed_allocs = vals[9];
    s->bytes_reserved = vals[10];
    s->bytes_used = vals[11];
    s->chunks = vals[12];
    s->source_maps = vals[13];
    s->resets = vals[14];
    s->trims = vals[15];
}

static void test_stats_write(void)
{
    static capture c;
    mp_stats s;
    const char *names[NUM_FIELDS];
    uint64_t vals[NUM_FIELDS];
    memset(&s, 0, sizeof s);
    strcpy(s.name, "conns");

    /* Text: the name first, then "key: value" lines carrying every value (distinct, < 1000). */
    stats_fields(&s, names, vals, 101);
    memset(&c, 0, sizeof c);
    CHECK("write: text returns 0", mp_stats_write(&s, MP_FORMAT_TEXT, capture_write, &c) == 0);
    CHECK("write: text produced output", c.calls > 0 && c.len > 0 && !c.overflow);
    const char *eol = strchr(c.buf, '\n');
    CHECK("write: text is headed by the name",
          eol && strstr(c.buf, "conns") && strstr(c.buf, "conns") < eol);
    for (int i = 0; i < NUM_FIELDS; i++)
        CHECK("write: text has a \"key: value\" line for every field",
              text_has_value(c.buf, vals[i]));
    int lines = 0;
    for (const char *p = c.buf; *p; p++)
        lines += *p == '\n';
    CHECK("write: text is one line per field plus the header", lines >= NUM_FIELDS + 1);
    CHECK("write: text ends with a newline", c.len > 0 && c.buf[c.len - 1] == '\n');

    /* JSON: one object with the field names of mp_stats; values up to UINT64_MAX exact. */
    stats_fields(&s, names, vals, UINT64_MAX - NUM_FIELDS + 1);
    s.block_size = s.align = s.stride = s.capacity = SIZE_MAX; /* size_t may be narrower */
    for (int i = 0; i < 4; i++)
        vals[i] = SIZE_MAX;
    memset(&c, 0, sizeof c);
    CHECK("write: json returns 0", mp_stats_write(&s, MP_FORMAT_JSON, capture_write, &c) == 0);
    CHECK("write: json is one well-formed object", c.len > 0 && json_valid(c.buf, c.len));
    CHECK("write: json has the name", strstr(c.buf, "\"name\"") && strstr(c.buf, "\"conns\""));
    for (int i = 4; i < NUM_FIELDS; i++)
        CHECK("write: json has every field with its exact 64-bit value",
              json_has_number(c.buf, names[i], vals[i]));
    for (int i = 0; i < 4; i++)
        CHECK("write: json has every size_t field exactly",
              json_has_number(c.buf, names[i], vals[i]));

    /* JSON escapes the name: quote, backslash and control characters. */
    strcpy(s.name, "a\"b\\c\nd\te\x01");
    memset(&c, 0, sizeof c);
    mp_stats_write(&s, MP_FORMAT_JSON, capture_write, &c);
    CHECK("write: json stays well-formed with quotes, backslashes and controls in the name",
          json_valid(c.buf, c.len));
    CHECK("write: json escapes the quote and backslash", strstr(c.buf, "a\\\"b\\\\c") != NULL);

    /* Real stats of a real pool round-trip too. */
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 40, .name = "real"});
    if (pool) {
        void *p = mp_pool_alloc(pool);
        mp_pool_alloc(pool);
        mp_pool_free(pool, p);
        mp_stats r = stats_of(pool);
        memset(&c, 0, sizeof c);
        CHECK("write: real stats as json",
              mp_stats_write(&r, MP_FORMAT_JSON, capture_write, &c) == 0 &&
                  json_valid(c.buf, c.len));
        CHECK("write: real json values",
              json_has_number(c.buf, "allocs", 2) && json_has_number(c.buf, "frees", 1) &&
                  json_has_number(c.buf, "block_size", 40) &&
                  json_has_number(c.buf, "bytes_used", 40) && strstr(c.buf, "\"real\""));
        mp_pool_destroy(pool);
    }

    /* EINVAL cases write nothing. */
    strcpy(s.name, "x");
    memset(&c, 0, sizeof c);
    CHECK("write: NULL stats gives EINVAL",
          mp_stats_write(NULL, MP_FORMAT_TEXT, capture_write, &c) == EINVAL);
    CHECK("write: NULL write gives EINVAL", mp_stats_write(&s, MP_FORMAT_TEXT, NULL, &c) == EINVAL);
    CHECK("write: format 2 gives EINVAL", mp_stats_write(&s, 2, capture_write, &c) == EINVAL);
    CHECK("write: format -1 gives EINVAL", mp_stats_write(&s, -1, capture_write, &c) == EINVAL);
    CHECK("write: nothing written on EINVAL", c.calls == 0);

    /* mp_stats_print writes the same bytes to a stream. */
    stats_fields(&s, names, vals, 500);
    for (int format = MP_FORMAT_TEXT; format <= MP_FORMAT_JSON; format++) {
        memset(&c, 0, sizeof c);
        mp_stats_write(&s, format, capture_write, &c);
        FILE *f = tmpfile();
        if (!f)
            continue;
        CHECK("print: returns 0 on a good stream", mp_stats_print(&s, format, f) == 0);
        rewind(f);
        static char back[16384];
        size_t n = fread(back, 1, sizeof back, f);
        CHECK("print: writes exactly what mp_stats_write does",
              n == c.len && memcmp(back, c.buf, n) == 0);
        CHECK("print: NULL stats gives EINVAL", mp_stats_print(NULL, format, f) == EINVAL);
        fclose(f);
        CHECK("print: NULL stream gives EINVAL", mp_stats_print(&s, format, NULL) == EINVAL);
    }
    FILE *f = tmpfile();
    if (f) {
        CHECK("print: unknown format gives EINVAL", mp_stats_print(&s, 7, f) == EINVAL);
        CHECK("print: nothing written on EINVAL", ftell(f) == 0);
        fclose(f);
    }
    /* A stream that fails: opened read-only, or unbuffered onto a full device. */
    f = fopen("/dev/null", "r");
    if (f) {
        CHECK("print: a read-only stream gives EIO", mp_stats_print(&s, MP_FORMAT_TEXT, f) == EIO);
        fclose(f);
    }
    f = fopen("/dev/full", "w");
    if (f) {
        setvbuf(f, NULL, _IONBF, 0);
        CHECK("print: an unbuffered stream on a full device gives EIO",
              mp_stats_print(&s, MP_FORMAT_JSON, f) == EIO);
        fclose(f);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Buffer pools
 * ---------------------------------------------------------------------------------------------- */

enum { GUARD = 64 };

/* A buffer with GUARD canary bytes on each side, so writes outside it show. */
static unsigned char *guarded(size_t size, size_t offset, unsigned char fill)
{
    unsigned char *raw = malloc(size + offset + 2 * GUARD);
    if (!raw)
        return NULL;
    memset(raw, 0xC3, GUARD + offset);
    memset(raw + GUARD + offset, fill, size);
    memset(raw + GUARD + offset + size, 0xC3, GUARD);
    return raw;
}

static bool guards_intact(const unsigned char *raw, size_t size, size_t offset)
{
    for (size_t i = 0; i < GUARD + offset; i++)
        if (raw[i] != 0xC3)
            return false;
    for (size_t i = 0; i < GUARD; i++)
        if (raw[GUARD + offset + size + i] != 0xC3)
            return false;
    return true;
}

static void test_buffer_too_small(void)
{
    static unsigned char buf[8192];
    CHECK("buffer: size 0 gives EINVAL",
          create_fails(&(mp_pool_opts){.block_size = 64, .buffer = buf, .buffer_size = 0}, EINVAL));
    CHECK("buffer: size 1 gives EINVAL",
          create_fails(&(mp_pool_opts){.block_size = 64, .buffer = buf, .buffer_size = 1}, EINVAL));
    CHECK(
        "buffer: one block's room, no bookkeeping, gives EINVAL",
        create_fails(&(mp_pool_opts){.block_size = 64, .buffer = buf, .buffer_size = 64}, EINVAL));
    /* For every size up to 8 KiB: create fails only with EINVAL, and once it succeeds the pool
     * has room for one block (the contract's threshold); sizes above a working one work too. */
    size_t smallest = 0;
    bool consistent = true, one_block = true;
    for (size_t size = 0; size <= sizeof buf; size++) {
        errno = 0;
        mp_pool *pool =
            mp_pool_create(&(mp_pool_opts){.block_size = 64, .buffer = buf, .buffer_size = size});
        if (!pool) {
            consistent = consistent && errno == EINVAL && smallest == 0;
            continue;
        }
        if (smallest == 0)
            smallest = size;
        void *p = mp_pool_alloc(pool);
        one_block =
            one_block && p && (unsigned char *)p >= buf && (unsigned char *)p + 64 <= buf + size;
        mp_pool_destroy(pool);
    }
    CHECK("buffer: some buffer under 8 KiB holds a 64-byte pool", smallest > 0);
    CHECK("buffer: too small is EINVAL, and every larger size works", consistent);
    CHECK("buffer: a buffer create accepts holds at least one block", one_block);
}

static void test_buffer_pool(size_t block_size, size_t align, size_t size, size_t offset,
                             unsigned flags)
{
    unsigned char *raw = guarded(size, offset, 0xFF);
    if (!raw)
        return;
    unsigned char *buf = raw + GUARD + offset;
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = block_size,
                                                   .align = align,
                                                   .flags = flags,
                                                   .buffer = buf,
                                                   .buffer_size = size,
                                                   .name = "buf"});
    if (!CHECK("buffer: pool in a buffer", pool != NULL)) {
        free(raw);
        return;
    }
    size_t used_align = mp_pool_align(pool), max = size / block_size + 1, n = 0;
    void **ps = malloc(max * sizeof *ps);
    bool inside = true, aligned = true, zero = true;
    for (;;) {
        errno = 0;
        void *p = mp_pool_alloc(pool);
        if (!p)
            break;
        if (n == max) {
            inside = false;
            break;
        }
        ps[n++] = p;
        inside =
            inside && (unsigned char *)p >= buf && (unsigned char *)p + block_size <= buf + size;
        aligned = aligned && is_aligned(p, used_align);
        if (flags & MP_ZERO)
            zero = zero && all_zero(p, block_size);
        if (inside)
            pattern_fill(p, block_size, (unsigned)n);
    }
    CHECK("buffer: a full buffer gives ENOMEM", errno == ENOMEM);
    CHECK("buffer: holds at least one block", n >= 1);
    CHECK("buffer: every block lies inside the buffer", inside);
    CHECK("buffer: every block aligned", aligned);
    CHECK("buffer: MP_ZERO blocks zeroed though the buffer was not", zero);
    CHECK("buffer: nothing written outside the buffer", guards_intact(raw, size, offset));
    if (!inside) {
        free(ps);
        free(raw); /* leak the pool; its memory is gone */
        return;
    }
    bool kept = true;
    for (size_t i = 0; i < n; i++)
        kept = kept && pattern_ok(ps[i], block_size, (unsigned)(i + 1));
    CHECK("buffer: every block keeps its contents when all are written", kept);
    CHECK("buffer: blocks are disjoint", disjoint(ps, n, block_size));
    mp_stats s = stats_of(pool);
    CHECK("buffer: stats after filling",
          s.blocks_in_use == n && s.allocs == n && s.failed_allocs == 1 && s.blocks_peak == n);
    CHECK("buffer: reserves within the buffer, one chunk, no source call",
          s.bytes_reserved <= size && s.chunks == 1 && s.source_maps == 0);
    CHECK("check: buffer pool healthy when full (bookkeeping not overwritten)",
          mp_pool_check(pool));
    CHECK("trim: a buffer pool gives back nothing", mp_pool_trim(pool) == 0);
    CHECK("trim: counted though", stats_of(pool).trims == 1);

    /* ps[] is sorted now: free the middle one, get it back, then fill again after a reset. */
    mp_pool_free(pool, ps[n / 2]);
    CHECK("buffer: the freed block comes back", mp_pool_alloc(pool) == ps[n / 2]);
    mp_pool_reset(pool);
    size_t m = 0;
    bool same = true;
    void *p;
    while ((p = mp_pool_alloc(pool)) != NULL && m < n)
        same = same && p == ps[m++];
    CHECK("buffer: after reset, the same blocks come back lowest first",
          same && m == n && p == NULL);
    CHECK("buffer: nothing written outside the buffer after reset",
          guards_intact(raw, size, offset));
    CHECK("check: buffer pool healthy after refill", mp_pool_check(pool));
    mp_pool_destroy(pool);
    CHECK("buffer: destroy leaves the caller's bytes around it alone",
          guards_intact(raw, size, offset));
    free(ps);
    free(raw); /* the pool did not free the buffer: this must not be a double free */
}

/* ------------------------------------------------------------------------------------------------
 * Main
 * ---------------------------------------------------------------------------------------------- */

int main(void)
{
    test_create_einval();
    test_create_huge_block();
    test_create_lazy();
    test_default_align();
    test_explicit_align();
    test_block_sizes();
    test_capacity();
    test_lifo();
    test_free_touches_only_block();
    test_zero();
    test_null_args();
    test_reset();
    test_trim();
    test_owns();
    test_check();
    test_accessors();
    test_error_names();
    test_checked_errors();
    test_secure_errors();
    test_default_handler();
    test_thread_safe_one_thread();
    test_stats_exact();
    test_stats_write();
    test_buffer_too_small();
    test_buffer_pool(64, 0, 64 * KiB, 0, 0);
    test_buffer_pool(64, 64, 64 * KiB, 1, 0);    /* misaligned buffer, aligned blocks */
    test_buffer_pool(100, 4096, 64 * KiB, 8, 0); /* page-aligned blocks in a buffer */
    test_buffer_pool(13, 0, 10000, 3, MP_ZERO);  /* MP_ZERO over a dirty buffer */
    test_buffer_pool(1, 1, 5000, 7, 0);          /* smallest blocks */
    test_buffer_pool(3000, 0, 20000, 0, MP_ZERO);
    return TEST_DONE();
}

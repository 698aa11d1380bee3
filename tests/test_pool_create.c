/*
 * test_pool_create.c: contract tests of making pools: mp_pool_create (every EINVAL case and its
 * valid neighbours, capacity with flags, a huge block, nothing touched before the first alloc),
 * alignment, block sizes and stride, the accessors and names, and buffer pools (too small, and
 * guard bytes around the buffer that nothing writes).
 * Only the public API is used (the helpers they share: test_pool.h). The misuse tests of
 * checked and secure pools are test_checked.c and test_secure.c.
 *
 * Usage: test_pool_create            (no arguments; under a second)
 */
#define _POSIX_C_SOURCE 200809L

#include "test_pool.h"

/* ------------------------------------------------------------------------------------------------
 * mp_pool_create: every EINVAL case, and its valid neighbours
 * ---------------------------------------------------------------------------------------------- */

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

    unsigned bad_flags[] = {1u << 5, 1u << 15, 1u << 31, MP_ZERO | (1u << 6),
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

    /* Halves of a source, for the "lacks map or unmap" cases; never called. */
    static const mp_source no_map = {NULL, counting_unmap, NULL},
                           no_unmap = {counting_map, NULL, NULL};
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

/* The capacity only bounds live blocks, and memory is taken as they are carved: what may not
 * overflow is block_size rounded up to align, times capacity, whatever the flags (a checked pool's
 * guard bytes are not counted), and the pool works. */
static void test_create_capacity_flags(void)
{
    static const unsigned flags[] = {0,       MP_CHECKED,     MP_SECURE,
                                     MP_ZERO, MP_THREAD_SAFE, MP_CHECKED | MP_THREAD_SAFE};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        mp_pool *pool = make(16, 0, SIZE_MAX / 16, flags[i]);
        CHECK("create: 16 * capacity SIZE_MAX/16 does not overflow: a pool with every flag",
              pool != NULL);
        if (pool == NULL)
            continue;
        void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool);
        CHECK("alloc: a pool of capacity SIZE_MAX/16 hands out blocks", a && b && a != b);
        mp_pool_free(pool, a);
        mp_pool_free(pool, b);
        mp_stats st = stats_of(pool);
        CHECK("stats: the capacity as asked for", st.capacity == SIZE_MAX / 16 && st.frees == 2);
        mp_pool_destroy(pool);
        CHECK(
            "create: 16 * capacity (SIZE_MAX/16 + 1) overflows: EINVAL with every flag",
            create_fails(
                &(mp_pool_opts){.block_size = 16, .capacity = SIZE_MAX / 16 + 1, .flags = flags[i]},
                EINVAL));
    }
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
    test_create_capacity_flags();
    test_create_huge_block();
    test_create_lazy();
    test_default_align();
    test_explicit_align();
    test_block_sizes();
    test_accessors();
    test_buffer_too_small();
    test_buffer_pool(64, 0, 64 * KiB, 0, 0);
    test_buffer_pool(64, 64, 64 * KiB, 1, 0);    /* misaligned buffer, aligned blocks */
    test_buffer_pool(100, 4096, 64 * KiB, 8, 0); /* page-aligned blocks in a buffer */
    test_buffer_pool(13, 0, 10000, 3, MP_ZERO);  /* MP_ZERO over a dirty buffer */
    test_buffer_pool(1, 1, 5000, 7, 0);          /* smallest blocks */
    test_buffer_pool(3000, 0, 20000, 0, MP_ZERO);
    return TEST_DONE();
}

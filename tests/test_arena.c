/*
 * test_arena.c: the contract of arenas (mp_arena_* in mempool.h), through the public API only.
 *
 * Usage: test_arena [SEED [OPS]]
 *   SEED  the model test's random seed (default 1), printed at start and on failure.
 *   OPS   the model test's operations (default 400,000 times the environment's MP_TEST_SCALE).
 * The same SEED and OPS give the same operations; outcomes that depend on where the source's
 * memory lands (the padding before a block aligned above the page) may differ between runs.
 *
 * Every arena here that is not in a buffer takes its memory from a counting source (wrapping
 * aligned_alloc, handing out dirty memory) that checks the source contract on each call (size a
 * multiple of the page, align the page size, unmap of exactly a region it gave, with its size),
 * knows the bytes it has out, and can fail at its k-th call or from its k-th call on. The parts:
 *   - contracts of each function: options and their errors, NULL arguments, alignment of every
 *     power of two from 1 to 64 KiB, size 0, sizes that overflow, capacity exhaustion, buffer
 *     arenas (exact byte counts, no source call, nothing written outside), marks and rewinds
 *     nested and invalid, reset, large requests, statistics, the bound on chunks kept after
 *     rewinds;
 *   - the failing source: for each k, the source fails at call k (then from call k on) of a
 *     scenario that grows, rewinds, regrows and resets; each failure is NULL + ENOMEM, counted,
 *     and the arena stays usable; nothing is left outstanding after destroy;
 *   - a model test: random allocations (filled with a pattern from their serial number, verified
 *     before they are rewound away and at random times, checked against every live block for
 *     overlap), marks, rewinds to random marks (and to stale ones), resets, on arenas of random
 *     geometry (source or buffer, chunk size, capacity), with every statistic compared after each
 *     operation, and the address of a request repeated after a rewind predicted exactly.
 */
#define _POSIX_C_SOURCE 200809L

#include "counting_source.h"
#include "mempool.h"
#include "test.h"
#include "utf8.h"

#include <errno.h>
#include <inttypes.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ================================================================================================
 * The counting, failing source
 * ============================================================================================== */

static counting_source src_ctx;
static mp_source src;

/* The source of the arenas here: maps must ask the page as alignment; 64 KiB of each dirtied. */
static counting_source *source_reset(void)
{
    counting_reset(&src_ctx);
    long n = sysconf(_SC_PAGESIZE);
    src_ctx.page = n > 0 ? (size_t)n : 4096;
    src_ctx.dirty = 65536;
    src = counting_source_of(&src_ctx);
    return &src_ctx;
}

static bool source_is_clean(const char *what)
{
    bool ok = CHECK("source: map called within the contract (page align, page multiple)",
                    src_ctx.violations == 0);
    ok = CHECK("source: unmap given exactly a region map returned", src_ctx.bad_unmaps == 0) && ok;
    if (!ok)
        printf("  (%s)\n", what);
    return ok;
}

/* ================================================================================================
 * Helpers
 * ============================================================================================== */

static size_t page;

static struct mp_arena_stats stats_of(const mp_arena *a)
{
    struct mp_arena_stats s;
    memset(&s, 0xEE, sizeof s);
    CHECK("stats: returns 0", mp_arena_stats(a, &s) == 0);
    return s;
}

static mp_arena *make_keep(size_t chunk_size, size_t capacity, size_t max_keep)
{
    return mp_arena_create(&(mp_arena_opts){.chunk_size = chunk_size,
                                            .capacity = capacity,
                                            .source = &src,
                                            .name = "test",
                                            .max_keep = max_keep});
}

static mp_arena *make(size_t chunk_size, size_t capacity)
{
    return make_keep(chunk_size, capacity, 0);
}

/* The bytes of an arena's own page: what an arena with no chunk has taken from the source. */
static size_t meta_bytes(void)
{
    source_reset();
    mp_arena *a = make(0, 0);
    size_t n = src_ctx.bytes_out;
    mp_arena_destroy(a);
    return n;
}

static bool is_aligned(const void *p, size_t align)
{
    return ((uintptr_t)p & (align - 1)) == 0;
}

static bool overlaps(const void *a, size_t an, const void *b, size_t bn)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y + bn && y < x + an;
}

static bool same_pos(mp_arena_pos a, mp_arena_pos b)
{
    return a.chunk == b.chunk && a.used == b.used;
}

/* splitmix64: the model's random numbers and the fill patterns. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    return mix64(rng_state += 0x9E3779B97F4A7C15u);
}

static uint64_t rng_below(uint64_t n)
{
    return n != 0 ? rng_next() % n : 0;
}

/* Byte i of the pattern of block `serial`. Blocks above 4 KiB are patterned at both ends only. */
static unsigned char pattern(uint64_t serial, size_t i)
{
    uint64_t w = mix64(serial * 0x9E3779B97F4A7C15u + (i >> 3));
    return (unsigned char)(w >> ((i & 7) * 8));
}

enum { PATTERN_END = 2048 };

static void fill(void *p, size_t n, uint64_t serial)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        if (n > 2 * PATTERN_END && i == PATTERN_END)
            i = n - PATTERN_END;
        b[i] = pattern(serial, i);
    }
}

static bool intact(const void *p, size_t n, uint64_t serial)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        if (n > 2 * PATTERN_END && i == PATTERN_END)
            i = n - PATTERN_END;
        if (b[i] != pattern(serial, i))
            return false;
    }
    return true;
}

/* ================================================================================================
 * Creation
 * ============================================================================================== */

static void test_create(void)
{
    mp_arena *a = mp_arena_create(NULL);
    CHECK("create: NULL opts gives an arena with the defaults", a != NULL);
    struct mp_arena_stats s = stats_of(a);
    CHECK("create: a new arena has no chunk and nothing counted",
          s.chunks == 0 && s.allocs == 0 && s.bytes_used == 0 && s.bytes_peak == 0 &&
              s.failed_allocs == 0 && s.resets == 0 && s.rewinds == 0 && s.name[0] == '\0');
    CHECK("create: the system arena allocates", mp_arena_alloc(a, 100) != NULL);
    mp_arena_destroy(a);

    size_t meta = meta_bytes();
    counting_source *t = source_reset();
    a = make(0, 0);
    s = stats_of(a);
    CHECK("create: takes one page-multiple region for itself and no chunk",
          a != NULL && t->calls == 1 && t->regions == 1 && meta % page == 0 && s.chunks == 0);
    CHECK("create: bytes_reserved == what the source has out", s.bytes_reserved == t->bytes_out);
    CHECK("create: the name is copied", strcmp(s.name, "test") == 0);
    mp_arena_destroy(a);
    CHECK("destroy: everything given back", t->bytes_out == 0 && t->regions == 0);

    char longname[100];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    a = mp_arena_create(&(mp_arena_opts){.name = longname, .source = &src});
    s = stats_of(a);
    CHECK("create: a long name is truncated to MP_NAME_MAX - 1",
          strlen(s.name) == MP_NAME_MAX - 1 && strncmp(s.name, longname, MP_NAME_MAX - 1) == 0);
    mp_arena_destroy(a);
    for (size_t i = 0; i < sizeof utf8_names / sizeof *utf8_names; i++) {
        a = mp_arena_create(&(mp_arena_opts){.name = utf8_names[i], .source = &src});
        CHECK("create: a UTF-8 name is cut to its longest prefix of whole characters that fits",
              a != NULL && name_is_longest_prefix(stats_of(a).name, utf8_names[i]));
        mp_arena_destroy(a);
    }

    mp_source no_map = {NULL, counting_unmap, &src_ctx}, no_unmap = {counting_map, NULL, &src_ctx};
    struct {
        const char *what;
        mp_arena_opts o;
    } bad[] = {
        {"a source without map", {.source = &no_map}},
        {"a source without unmap", {.source = &no_unmap}},
        {"chunk_size SIZE_MAX", {.chunk_size = SIZE_MAX, .source = &src}},
        {"chunk_size above PTRDIFF_MAX", {.chunk_size = (size_t)PTRDIFF_MAX + 1, .source = &src}},
        {"capacity 1", {.capacity = 1, .source = &src}},
        {"capacity of one page", {.capacity = 4096, .source = &src}},
        {"capacity of the arena's page and one byte less than a chunk page",
         {.capacity = meta + page - 1, .source = &src}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = source_reset();
        errno = 0;
        a = mp_arena_create(&bad[i].o);
        if (!CHECK("create: bad options give NULL + EINVAL, no source call",
                   a == NULL && errno == EINVAL && t->calls == 0))
            printf("  (%s)\n", bad[i].what);
        mp_arena_destroy(a);
    }

    t = source_reset();
    a = make(0, meta + page);
    CHECK("create: the smallest capacity (own page and a chunk page) is accepted", a != NULL);
    void *p = mp_arena_alloc(a, 100);
    CHECK("capacity: the smallest one holds a small allocation", p != NULL);
    CHECK("capacity: and never more than it allows", t->bytes_out <= meta + page);
    mp_arena_destroy(a);

    t = source_reset();
    t->fail_at = 1;
    errno = 0;
    a = make(0, 0);
    CHECK("create: a source with no memory gives NULL + ENOMEM and leaks nothing",
          a == NULL && errno == ENOMEM && t->bytes_out == 0);

    t = source_reset();
    errno = 1234;
    a = make(0, 0);
    CHECK("create: errno is untouched on success", a != NULL && errno == 1234);
    mp_arena_destroy(a);
    source_is_clean("create");
}

/* ================================================================================================
 * NULL arguments
 * ============================================================================================== */

static void test_null(void)
{
    errno = 0;
    CHECK("alloc: a NULL arena gives NULL + EINVAL",
          mp_arena_alloc(NULL, 8) == NULL && errno == EINVAL);
    errno = 0;
    CHECK("alloc_aligned: a NULL arena gives NULL + EINVAL",
          mp_arena_alloc_aligned(NULL, 8, 8) == NULL && errno == EINVAL);
    errno = 0;
    CHECK("alloc_aligned: a NULL arena with a bad align gives EINVAL",
          mp_arena_alloc_aligned(NULL, 8, 3) == NULL && errno == EINVAL);
    mp_arena_pos pos = mp_arena_mark(NULL);
    CHECK("mark: a NULL arena gives {NULL, 0}", pos.chunk == NULL && pos.used == 0);
    CHECK("rewind: a NULL arena gives EINVAL", mp_arena_rewind(NULL, pos) == EINVAL);
    mp_arena_reset(NULL);
    mp_arena_destroy(NULL);
    struct mp_arena_stats s;
    CHECK("stats: a NULL arena gives EINVAL", mp_arena_stats(NULL, &s) == EINVAL);
    source_reset();
    mp_arena *a = make(0, 0);
    CHECK("stats: a NULL out gives EINVAL", mp_arena_stats(a, NULL) == EINVAL);
    CHECK("rewind: {NULL, 0} is no position of an arena", mp_arena_rewind(a, pos) == EINVAL);
    mp_arena_destroy(a);
}

/* ================================================================================================
 * Alignment, size 0, overflow
 * ============================================================================================== */

static void test_alignment(void)
{
    counting_source *t = source_reset();
    mp_arena *a = make(0, 0);
    bool ok = true;
    for (size_t size = 0; size <= 300; size++) {
        char *p = mp_arena_alloc(a, size);
        ok = ok && p != NULL && is_aligned(p, alignof(max_align_t));
        if (p != NULL)
            memset(p, 0x11, size);
    }
    CHECK("alloc: aligned to alignof(max_align_t) for sizes 0..300", ok);

    enum { PER_ALIGN = 5, MAXN = 17 * PER_ALIGN };
    void *blocks[MAXN];
    size_t sizes[MAXN], n = 0;
    ok = true;
    for (size_t align = 1; align <= 65536; align *= 2) {
        size_t try[PER_ALIGN] = {0, 1, 7, align, 3 * align + 1};
        for (size_t i = 0; i < PER_ALIGN; i++) {
            unsigned char *p = mp_arena_alloc_aligned(a, try[i], align);
            ok = CHECK("alloc_aligned: every power of two from 1 to 64 KiB is honoured",
                       p != NULL && is_aligned(p, align)) &&
                 ok;
            if (p == NULL)
                continue;
            size_t len = try[i] != 0 ? try[i] : 1;
            memset(p, (int)(n & 0xFF), len);
            for (size_t j = 0; j < n; j++)
                ok = ok && !overlaps(p, len, blocks[j], sizes[j]);
            blocks[n] = p;
            sizes[n++] = len;
        }
    }
    CHECK("alloc_aligned: no two blocks overlap", ok);
    bool kept = true;
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < sizes[j]; i++)
            kept = kept && ((unsigned char *)blocks[j])[i] == (unsigned char)(j & 0xFF);
    CHECK("alloc_aligned: every block keeps what was written to it", kept);

    char *big = mp_arena_alloc_aligned(a, 10, (size_t)1 << 20);
    CHECK("alloc_aligned: 1 MiB alignment", big != NULL && is_aligned(big, (size_t)1 << 20));

    struct mp_arena_stats before = stats_of(a);
    size_t bad[] = {0, 3, 6, 12, 24, 100, 4095, SIZE_MAX, ((size_t)1 << 20) + 1};
    ok = true;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        ok = ok && mp_arena_alloc_aligned(a, 8, bad[i]) == NULL && errno == EINVAL;
    }
    struct mp_arena_stats after = stats_of(a);
    CHECK("alloc_aligned: an align that is no power of two gives NULL + EINVAL", ok);
    CHECK("alloc_aligned: each bad align is a failed alloc, and nothing else changes",
          after.failed_allocs == before.failed_allocs + sizeof bad / sizeof bad[0] &&
              after.allocs == before.allocs && after.bytes_used == before.bytes_used);
    mp_arena_destroy(a);
    CHECK("alignment: nothing left outstanding", t->bytes_out == 0);
    source_is_clean("alignment");
}

static int ptr_cmp(const void *x, const void *y)
{
    uintptr_t a = (uintptr_t) * (char *const *)x, b = (uintptr_t) * (char *const *)y;
    return (a > b) - (a < b);
}

static void test_size_zero(void)
{
    source_reset();
    mp_arena *a = make(page, 0);
    const size_t n = 3 * page / 4; /* enough for several chunks of a page, whatever its size */
    char **p = malloc(n * sizeof *p);
    bool ok = CHECK("alloc: size 0: room for the test", p != NULL);
    for (size_t i = 0; i < n && ok; i++) {
        p[i] = i % 2 ? mp_arena_alloc(a, 0) : mp_arena_alloc_aligned(a, 0, 1);
        ok = ok && p[i] != NULL;
    }
    CHECK("alloc: size 0 succeeds", ok);
    if (ok)
        qsort(p, n, sizeof *p, ptr_cmp);
    for (size_t i = 1; i < n && ok; i++)
        ok = p[i] != p[i - 1];
    CHECK("alloc: size 0 gives a unique pointer each time, across chunks", ok);
    struct mp_arena_stats s = stats_of(a);
    CHECK("alloc: size 0 takes at least a byte",
          s.bytes_used >= n && s.allocs == n && s.chunks > 1);
    free(p);
    mp_arena_destroy(a);
}

static void overflow_sizes(mp_arena *a, const char *kind)
{
    size_t sizes[] = {SIZE_MAX,         SIZE_MAX - 1,        SIZE_MAX - 4096,
                      SIZE_MAX / 2 + 1, (size_t)PTRDIFF_MAX, (size_t)PTRDIFF_MAX - 16};
    struct mp_arena_stats before = stats_of(a);
    uint64_t calls = src_ctx.calls;
    bool ok = true;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        errno = 0;
        ok = ok && mp_arena_alloc(a, sizes[i]) == NULL && errno == ENOMEM;
        errno = 0;
        ok = ok && mp_arena_alloc_aligned(a, sizes[i], 4096) == NULL && errno == ENOMEM;
    }
    errno = 0;
    ok = ok && mp_arena_alloc_aligned(a, 1, (size_t)1 << (sizeof(size_t) * 8 - 1)) == NULL &&
         errno == ENOMEM;
    errno = 0;
    ok = ok && mp_arena_alloc_aligned(a, SIZE_MAX / 2, SIZE_MAX / 2 + 1) == NULL && errno == ENOMEM;
    struct mp_arena_stats after = stats_of(a);
    if (!CHECK("alloc: sizes that overflow with their padding give NULL + ENOMEM", ok))
        printf("  (%s)\n", kind);
    CHECK("alloc: an overflowing size never reaches the source", src_ctx.calls == calls);
    CHECK("alloc: overflow failures are counted, nothing else changes",
          after.failed_allocs == before.failed_allocs + 2 * (sizeof sizes / sizeof sizes[0]) + 2 &&
              after.bytes_used == before.bytes_used && after.chunks == before.chunks);
    char *p = mp_arena_alloc(a, 100);
    CHECK("alloc: the arena is usable after an overflow", p != NULL);
    if (p != NULL)
        memset(p, 1, 100);
}

static void test_overflow(void)
{
    counting_source *t = source_reset();
    /* A size the arena's arithmetic takes but its source refuses: past the source's cap, not past
     * the address space, which a 32-bit process may fill to any fixed fraction of SIZE_MAX. */
    t->cap = 16 * 1024 * 1024;
    mp_arena *a = make(0, 0);
    overflow_sizes(a, "an arena with no chunk yet");
    overflow_sizes(a, "an arena with a chunk");
    uint64_t refused = t->refused, failed = stats_of(a).failed_allocs;
    errno = 0;
    CHECK("alloc: a size the source refuses fails with ENOMEM",
          mp_arena_alloc(a, 2 * t->cap) == NULL && errno == ENOMEM);
    CHECK("alloc: the source was asked, and the failure counted",
          t->refused == refused + 1 && stats_of(a).failed_allocs == failed + 1);
    mp_arena_destroy(a);
    CHECK("overflow: nothing left outstanding", t->bytes_out == 0);

    static alignas(max_align_t) unsigned char buf[8192];
    a = mp_arena_create(&(mp_arena_opts){.buffer = buf, .buffer_size = sizeof buf});
    overflow_sizes(a, "a buffer arena");
    mp_arena_destroy(a);
}

/* ================================================================================================
 * Capacity
 * ============================================================================================== */

static void test_capacity(void)
{
    size_t meta = meta_bytes();
    size_t cap = meta + 5 * page;
    counting_source *t = source_reset();
    mp_arena *a = make(2 * page, cap);
    size_t total = 0, n = 0;
    bool within = true;
    void *p;
    mp_arena_pos start = mp_arena_mark(a);
    while ((p = mp_arena_alloc(a, 96)) != NULL) { /* 96: no padding between blocks */
        memset(p, 7, 96);
        total += 96;
        n++;
        within = within && t->bytes_out <= cap;
    }
    CHECK("capacity: exhaustion gives NULL + ENOMEM", errno == ENOMEM);
    CHECK("capacity: the source never has more than capacity out", within && t->bytes_out <= cap);
    struct mp_arena_stats s = stats_of(a);
    CHECK("capacity: a short last chunk fills the capacity exactly", s.bytes_reserved == cap);
    CHECK("capacity: nearly all of it was handed out (all but headers and tails)",
          total > 5 * page - 3 * 256);
    CHECK("capacity: the failure is counted", s.failed_allocs == 1 && s.allocs == n);
    errno = 0;
    CHECK("capacity: a larger request fails too",
          mp_arena_alloc(a, 3 * page) == NULL && errno == ENOMEM);
    CHECK("capacity: still usable: rewind to the start", mp_arena_rewind(a, start) == 0);
    p = mp_arena_alloc(a, 100);
    CHECK("capacity: still usable: alloc after the rewind succeeds", p != NULL);
    CHECK("capacity: the rewound chunks were reused, not mapped", t->bytes_out == cap);
    /* Everything is kept but the cursor's chunk; a request larger than any kept chunk needs them
     * back: 2 pages and a header need 3 pages, which only giving back both kept chunks leaves. */
    p = mp_arena_alloc(a, 2 * page);
    CHECK("capacity: kept chunks are given back to make room for a larger one", p != NULL);
    if (p != NULL)
        memset(p, 9, 2 * page);
    CHECK("capacity: and the capacity still holds", t->bytes_out <= cap);
    mp_arena_reset(a);
    s = stats_of(a);
    CHECK("capacity: reset keeps what it used, within the capacity",
          s.chunks >= 1 && s.bytes_used == 0 && t->bytes_out <= cap);
    CHECK("capacity: usable after reset", mp_arena_alloc(a, 100) != NULL);
    errno = 0;
    CHECK("capacity: a request larger than the capacity fails at once",
          mp_arena_alloc(a, 6 * page) == NULL && errno == ENOMEM);
    mp_arena_destroy(a);
    CHECK("capacity: nothing left outstanding", t->bytes_out == 0);

    /* A capacity that is not a page multiple: the last chunk is cut to the page below it. */
    t = source_reset();
    a = make(0, meta + 3 * page + 100);
    while (mp_arena_alloc(a, 1000) != NULL)
        ;
    CHECK("capacity: an odd capacity is never passed", t->bytes_out <= meta + 3 * page + 100);
    CHECK("capacity: an odd capacity is used to its last page", t->bytes_out == meta + 3 * page);
    mp_arena_destroy(a);
    source_is_clean("capacity");
}

/* ================================================================================================
 * Buffer arenas
 * ============================================================================================== */

static void test_buffer(void)
{
    static alignas(max_align_t) unsigned char buf[16384];
    counting_source *t = source_reset();

    /* The smallest buffer: creation succeeds exactly from some size on, and that arena holds one
     * byte aligned to 1 and nothing more. */
    size_t nmin = 0;
    bool monotone = true, einval = true;
    for (size_t n = 0; n <= 2048; n++) {
        errno = 0;
        mp_arena *a =
            mp_arena_create(&(mp_arena_opts){.buffer = buf, .buffer_size = n, .source = &src});
        if (a == NULL)
            einval = einval && errno == EINVAL;
        if (a != NULL && nmin == 0)
            nmin = n;
        monotone = monotone && (a != NULL) == (nmin != 0);
        mp_arena_destroy(a);
    }
    CHECK("buffer: a buffer too small gives NULL + EINVAL", nmin > 0 && einval);
    CHECK("buffer: every buffer from the smallest size on is accepted", monotone);
    mp_arena *a = mp_arena_create(&(mp_arena_opts){.buffer = buf, .buffer_size = nmin});
    unsigned char *p = mp_arena_alloc_aligned(a, 1, 1);
    CHECK("buffer: the smallest buffer holds one byte", p != NULL && p >= buf && p < buf + nmin);
    errno = 0;
    CHECK("buffer: and no more", mp_arena_alloc_aligned(a, 0, 1) == NULL && errno == ENOMEM);
    mp_arena_destroy(a);

    /* Exact: a buffer arena hands out every byte from its first allocation to the buffer's end. */
    size_t lo = 64, size = 8192;
    memset(buf, 0xEE, sizeof buf);
    a = mp_arena_create(&(mp_arena_opts){
        .buffer = buf + lo, .buffer_size = size, .source = &src, .chunk_size = 1, .capacity = 1});
    CHECK("buffer: chunk_size and capacity do not matter", a != NULL);
    unsigned char *first = mp_arena_alloc_aligned(a, 1, 1), *q;
    size_t count = first != NULL, expect = (size_t)(buf + lo + size - first);
    bool inside = first != NULL && first >= buf + lo;
    while ((q = mp_arena_alloc_aligned(a, 1, 1)) != NULL) {
        inside = inside && q >= buf + lo && q < buf + lo + size;
        *q = 0x42;
        count++;
    }
    CHECK("buffer: full gives NULL + ENOMEM", errno == ENOMEM);
    CHECK("buffer: every byte up to the buffer's end is handed out, inside it",
          count == expect && inside);
    struct mp_arena_stats s = stats_of(a);
    CHECK("buffer: stats: one chunk, the buffer reserved, every byte used",
          s.chunks == 1 && s.bytes_reserved == size && s.bytes_used == count &&
              s.failed_allocs == 1);
    bool guards = true;
    for (size_t i = 0; i < lo; i++)
        guards = guards && buf[i] == 0xEE;
    for (size_t i = lo + size; i < sizeof buf; i++)
        guards = guards && buf[i] == 0xEE;
    CHECK("buffer: nothing is written outside the buffer", guards);
    errno = 0;
    CHECK("buffer: a large request fails with ENOMEM",
          mp_arena_alloc(a, 100000) == NULL && errno == ENOMEM);
    mp_arena_reset(a);
    s = stats_of(a);
    CHECK("buffer: reset goes back to the start",
          s.bytes_used == 0 && s.resets == 1 && s.chunks == 1);
    CHECK("buffer: the first address again after reset",
          mp_arena_alloc_aligned(a, expect, 1) == first);
    errno = 0;
    CHECK("buffer: exactly the whole payload fits, then nothing",
          mp_arena_alloc_aligned(a, 0, 1) == NULL && errno == ENOMEM);
    mp_arena_pos m = mp_arena_mark(a);
    mp_arena_reset(a);
    CHECK("buffer: a mark past the cursor after reset is refused", mp_arena_rewind(a, m) == EINVAL);
    mp_arena_pos m0 = mp_arena_mark(a);
    q = mp_arena_alloc(a, 100);
    CHECK("buffer: rewind to a mark",
          q != NULL && mp_arena_rewind(a, m0) == 0 && mp_arena_alloc(a, 100) == q);
    mp_arena_destroy(a);
    CHECK("buffer: never calls the source", t->calls == 0 && t->unmaps == 0);

    /* An unaligned buffer start, and a buffer whose end would wrap around the address space. */
    a = mp_arena_create(&(mp_arena_opts){.buffer = buf + 3, .buffer_size = 4000});
    p = mp_arena_alloc(a, 10);
    CHECK("buffer: an unaligned buffer still gives aligned blocks inside it",
          p != NULL && is_aligned(p, alignof(max_align_t)) && p >= buf + 3 && p + 10 <= buf + 4003);
    mp_arena_destroy(a);
    errno = 0;
    a = mp_arena_create(&(mp_arena_opts){.buffer = buf, .buffer_size = SIZE_MAX});
    CHECK("buffer: a size that wraps the address space gives EINVAL", a == NULL && errno == EINVAL);
}

/* ================================================================================================
 * Marks and rewinds
 * ============================================================================================== */

/* The inline bump's one compare: in a buffer whose end is not aligned, a cursor a few bytes short
 * of the end aligns past it, and nothing aligned fits; the bytes before the end still do. */
static void test_buffer_tail(void)
{
    static alignas(max_align_t) unsigned char buf[4096 + 64];
    unsigned char *end = buf + 4096 + 7, *q = NULL;
    mp_arena *a =
        mp_arena_create(&(mp_arena_opts){.buffer = buf, .buffer_size = (size_t)(end - buf)});
    while (a != NULL && (q = mp_arena_alloc_aligned(a, 1, 1)) != NULL && q < buf + 4096)
        ;
    CHECK("buffer tail: bytes up to an aligned address short of the end", q == buf + 4096);
    errno = 0;
    CHECK("buffer tail: an aligned cursor past the end gives NULL + ENOMEM",
          mp_arena_alloc(a, 1) == NULL && errno == ENOMEM && mp_arena_alloc(a, 0) == NULL);
    q = mp_arena_alloc_aligned(a, 6, 1);
    CHECK("buffer tail: the unaligned bytes before the end are still handed out",
          q == buf + 4097 && mp_arena_alloc_aligned(a, 1, 1) == NULL);
    mp_arena_destroy(a);
}

static void test_mark_rewind(void)
{
    counting_source *t = source_reset();
    mp_arena *a = make(page, 0), *other = mp_arena_create(NULL); /* not on the counting source */
    mp_arena_pos m0 = mp_arena_mark(a);
    CHECK("rewind: to the start of an empty arena", mp_arena_rewind(a, m0) == 0);
    CHECK("rewind: the other arena's start is no position of this one",
          mp_arena_rewind(a, mp_arena_mark(other)) == EINVAL);

    enum { N = 60 };
    char *first[N], *again[N];
    for (int i = 0; i < N; i++) /* several chunks of page size */
        first[i] = mp_arena_alloc(a, 300);
    char *p0 = first[0];
    mp_arena_pos m1 = mp_arena_mark(a);
    uint64_t used1 = stats_of(a).bytes_used;
    char *b[N];
    for (int i = 0; i < N; i++)
        b[i] = mp_arena_alloc(a, 200);
    mp_arena_pos m2 = mp_arena_mark(a);
    uint64_t used2 = stats_of(a).bytes_used;
    char *c = mp_arena_alloc(a, 50);
    struct mp_arena_stats full = stats_of(a);
    uint64_t calls = t->calls;

    CHECK("rewind: to the latest mark", mp_arena_rewind(a, m2) == 0);
    CHECK("rewind: bytes_used is as at the mark", stats_of(a).bytes_used == used2);
    CHECK("rewind: the mark is the position again", same_pos(mp_arena_mark(a), m2));
    CHECK("rewind: the same request gets the same address", mp_arena_alloc(a, 50) == c);
    CHECK("rewind: to an earlier mark", mp_arena_rewind(a, m1) == 0);
    struct mp_arena_stats s = stats_of(a);
    CHECK("rewind: chunks after the mark are kept", s.chunks == full.chunks &&
                                                        s.bytes_reserved == full.bytes_reserved &&
                                                        t->bytes_out == s.bytes_reserved);
    CHECK("rewind: bytes_used as at the earlier mark, peak kept",
          s.bytes_used == used1 && s.bytes_peak == full.bytes_used && s.rewinds == 3);

    /* A mark past the cursor: refused, nothing changes. */
    mp_arena_pos forged[] = {
        m2,
        {m1.chunk, m1.used + 1},
        {m1.chunk, SIZE_MAX},
        {m1.chunk, 0},
        {(char *)m1.chunk + 16, m1.used},
        {NULL, 0},
        {a, 1},
        mp_arena_mark(other),
    };
    bool refused = true;
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++)
        refused = refused && mp_arena_rewind(a, forged[i]) == EINVAL;
    CHECK("rewind: a position past the cursor or outside the arena gives EINVAL", refused);
    struct mp_arena_stats s2 = stats_of(a);
    CHECK("rewind: a refused rewind changes nothing", s2.rewinds == s.rewinds &&
                                                          s2.bytes_used == s.bytes_used &&
                                                          same_pos(mp_arena_mark(a), m1));

    /* Growing again reuses the kept chunks in order: the same addresses, no source call. */
    bool same = true;
    for (int i = 0; i < N; i++)
        same = same && mp_arena_alloc(a, 200) == b[i];
    CHECK("rewind: regrowing reuses the kept chunks, at the same addresses", same);
    CHECK("rewind: regrowing takes nothing from the source", t->calls == calls);

    CHECK("rewind: to the start after chunks exist", mp_arena_rewind(a, m0) == 0);
    CHECK("rewind: the start gives the very first address again", mp_arena_alloc(a, 300) == p0);
    CHECK("rewind: bytes_used counts from zero again", stats_of(a).bytes_used == 300);
    for (int i = 1; i < N; i++)
        again[i] = mp_arena_alloc(a, 300);
    same = true;
    for (int i = 1; i < N; i++)
        same = same && again[i] == first[i];
    CHECK("rewind: the whole sequence repeats", same && t->calls == calls);

    /* Nested marks, rewound innermost first: each gives back exactly its own. */
    enum { DEPTH = 100 };
    mp_arena_pos marks[DEPTH];
    uint64_t used[DEPTH];
    for (int i = 0; i < DEPTH; i++) {
        marks[i] = mp_arena_mark(a);
        used[i] = stats_of(a).bytes_used;
        for (int j = 0; j <= i % 7; j++)
            mp_arena_alloc(a, (size_t)(i * 13 % 500));
    }
    bool nested = true;
    for (int i = DEPTH - 1; i >= 0; i--) {
        nested = nested && mp_arena_rewind(a, marks[i]) == 0 && stats_of(a).bytes_used == used[i];
        if (i + 1 < DEPTH && used[i + 1] > used[i])
            nested = nested && mp_arena_rewind(a, marks[i + 1]) == EINVAL;
    }
    CHECK("rewind: nested marks rewound innermost first; the rewound-past mark is refused", nested);
    nested = true;
    for (int i = 0; i < DEPTH; i++) /* outermost first: one rewind frees everything nested in it */
        marks[i] = mp_arena_mark(a), mp_arena_alloc(a, 1000);
    nested = mp_arena_rewind(a, marks[0]) == 0;
    for (int i = 1; i < DEPTH; i++)
        nested = nested && mp_arena_rewind(a, marks[i]) == EINVAL;
    CHECK("rewind: after the outermost rewind, every inner mark is refused", nested);

    /* After a reset, marks into chunks given back, and past the cursor, are refused. */
    mp_arena_reset(a);
    CHECK("rewind: after reset, a mark in a chunk given back is refused",
          mp_arena_rewind(a, m2) == EINVAL && mp_arena_rewind(a, m1) == EINVAL);
    CHECK("rewind: after reset, the start mark is still good", mp_arena_rewind(a, m0) == 0);
    mp_arena_destroy(a);
    mp_arena_destroy(other);
    CHECK("marks: nothing left outstanding", t->bytes_out == 0);
    source_is_clean("marks");
}

/* ================================================================================================
 * Reset, large requests, statistics, the bound on kept chunks
 * ============================================================================================== */

static void test_reset(void)
{
    size_t meta = meta_bytes();
    counting_source *t = source_reset();
    mp_arena *a = make_keep(0, 0, 1); /* a bound below any chunk: a reset keeps the first only */
    mp_arena_reset(a);
    struct mp_arena_stats s = stats_of(a);
    CHECK("reset: an arena with no chunk", s.resets == 1 && s.chunks == 0 && s.bytes_used == 0);
    char *p0 = mp_arena_alloc(a, 1000);
    for (int i = 0; i < 300; i++)
        mp_arena_alloc(a, 1000);
    mp_arena_alloc(a, 500000);
    s = stats_of(a);
    CHECK("reset: the arena grew", s.chunks >= 6 && s.bytes_used >= 800000);
    uint64_t peak = s.bytes_used;
    mp_arena_reset(a);
    s = stats_of(a);
    CHECK("reset: one chunk kept, the others given back",
          s.chunks == 1 && s.bytes_reserved == meta + 65536 && t->bytes_out == s.bytes_reserved);
    CHECK("reset: bytes_used 0, peak kept, counted",
          s.bytes_used == 0 && s.bytes_peak == peak && s.resets == 2);
    CHECK("reset: the first address again", mp_arena_alloc(a, 1000) == p0);
    uint64_t calls = t->calls;
    for (int i = 0; i < 300; i++)
        mp_arena_alloc(a, 1000);
    CHECK("reset: growing again maps again", t->calls > calls && stats_of(a).chunks > 1);
    mp_arena_destroy(a);
    CHECK("reset: nothing left outstanding", t->bytes_out == 0);
    source_is_clean("reset");
}

static void test_large(void)
{
    size_t meta = meta_bytes();
    counting_source *t = source_reset();
    mp_arena *a = make(0, 0);
    char *small = mp_arena_alloc(a, 100);
    char *big = mp_arena_alloc(a, 200000);
    struct mp_arena_stats s = stats_of(a);
    CHECK("large: a request above a chunk gets a chunk of its own", big != NULL && s.chunks == 2);
    size_t own = s.bytes_reserved - meta - 65536;
    CHECK("large: sized to fit, to the page", own >= 200000 && own < 200000 + 2 * page);
    if (big != NULL)
        memset(big, 3, 200000);
    char *after = mp_arena_alloc(a, 100);
    CHECK("large: small requests go on after it",
          after != NULL && small != NULL && !overlaps(after, 100, big, 200000));
    mp_arena_destroy(a);

    /* A loop that rewinds and allocates one ever larger block: the chunks held stay near the
     * largest, not the sum (the bound in arena.c's header). */
    t = source_reset();
    a = make(0, 0);
    mp_arena_alloc(a, 10);
    uint64_t worst = 0;
    for (size_t i = 1; i <= 64; i++) {
        mp_arena_pos m = mp_arena_mark(a);
        char *p = mp_arena_alloc(a, i * page);
        if (p != NULL)
            memset(p, (int)i, i * page);
        if (t->bytes_out > worst)
            worst = t->bytes_out;
        mp_arena_rewind(a, m);
    }
    CHECK("large: kept chunks do not pile up in a loop of growing requests",
          worst <= meta + 65536 + 66 * page);

    /* Small and large mixed, the large one at a random place: after a few rounds, no more maps. */
    mp_arena_destroy(a);
    t = source_reset();
    a = make_keep(page, 0, SIZE_MAX);
    mp_arena_pos start = mp_arena_mark(a);
    uint64_t calls = 0;
    rng_state = 7;
    for (int round = 0; round < 50; round++) {
        uint64_t at = rng_below(40);
        for (uint64_t i = 0; i < 40; i++) {
            if (i == at)
                mp_arena_alloc(a, 3 * page);
            mp_arena_alloc(a, 1000);
        }
        if (round == 10)
            calls = t->calls;
        mp_arena_rewind(a, start);
    }
    CHECK("large: a repeating mix of small and large requests reuses its chunks",
          t->calls == calls);
    mp_arena_destroy(a);
    CHECK("large: nothing left outstanding", t->bytes_out == 0);
    source_is_clean("large");
}

static void test_stats(void)
{
    source_reset();
    mp_arena *a = make(0, 0);
    char *p1 = mp_arena_alloc_aligned(a, 1, 1);
    char *p2 = mp_arena_alloc_aligned(a, 1, 64);
    struct mp_arena_stats s = stats_of(a);
    CHECK("stats: bytes_used counts alignment padding", s.bytes_used == (uint64_t)(p2 + 1 - p1));
    CHECK("stats: allocs", s.allocs == 2 && s.failed_allocs == 0 && s.chunks == 1);
    mp_arena_pos m = mp_arena_mark(a);
    mp_arena_alloc(a, 5000);
    uint64_t high = stats_of(a).bytes_used;
    mp_arena_rewind(a, m);
    mp_arena_alloc(a, 10);
    s = stats_of(a);
    CHECK("stats: bytes_peak is the high-water mark across rewinds",
          s.bytes_peak == high && s.bytes_used < high && s.rewinds == 1);
    mp_arena_reset(a);
    mp_arena_alloc(a, 10);
    s = stats_of(a);
    CHECK("stats: and across resets", s.bytes_peak == high && s.resets == 1 && s.allocs == 5);
    CHECK("stats: bytes_used <= bytes_reserved", s.bytes_used <= s.bytes_reserved);
    mp_arena_destroy(a);
}

/* ================================================================================================
 * The failing source
 * ============================================================================================== */

/* One allocation of the scenario: NULL + ENOMEM only when this very call made the source fail,
 * counted, and then the same request succeeds. */
static char *scenario_alloc(mp_arena *a, size_t size, size_t align, uint64_t *fails, bool dead)
{
    uint64_t calls = src_ctx.calls, failed = stats_of(a).failed_allocs;
    errno = 0;
    char *p = align ? mp_arena_alloc_aligned(a, size, align) : mp_arena_alloc(a, size);
    if (p == NULL) {
        bool this_call = src_ctx.calls > calls &&
                         (src_ctx.calls == src_ctx.fail_at ||
                          (src_ctx.fail_from != 0 && src_ctx.calls >= src_ctx.fail_from));
        CHECK("failing source: a failed alloc is NULL + ENOMEM from a failed source call, counted",
              errno == ENOMEM && this_call && stats_of(a).failed_allocs == failed + 1);
        ++*fails;
        if (dead)
            return NULL;
        p = align ? mp_arena_alloc_aligned(a, size, align) : mp_arena_alloc(a, size);
        CHECK("failing source: the arena is usable after the failure", p != NULL);
    }
    if (p != NULL)
        memset(p, 0x5C, size);
    return p;
}

/*
 * Grows through chunks and large requests, rewinds, regrows, rewinds to the start and takes a
 * request no kept chunk holds (kept chunks given back, then a map), resets and regrows. Returns the
 * source's map calls, create's included. How many there are depends on the chunks' addresses (a
 * block aligned above the page lands at a different offset, leaving a different tail).
 */
static uint64_t scenario(uint64_t fail_at, uint64_t fail_from, uint64_t *fails)
{
    counting_source *t = source_reset();
    t->fail_at = fail_at;
    t->fail_from = fail_from;
    bool dead = fail_from != 0;
    errno = 0;
    mp_arena *a = make_keep(2 * page, 0, SIZE_MAX); /* a rewind keeps every chunk */
    if (a == NULL) {
        CHECK("failing source: create fails with ENOMEM, leaking nothing",
              errno == ENOMEM && t->bytes_out == 0);
        ++*fails;
        return t->calls;
    }
    size_t k = page / 4096; /* small requests scale with the page, so they span as many chunks */
    mp_arena_pos start = mp_arena_mark(a);
    for (int i = 0; i < 30; i++)
        scenario_alloc(a, 500 * k, 0, fails, dead);
    mp_arena_pos m = mp_arena_mark(a);
    scenario_alloc(a, 5 * page, 0, fails, dead);
    scenario_alloc(a, 100, page * 2, fails, dead);
    for (int i = 0; i < 20; i++)
        scenario_alloc(a, 700 * k, 64, fails, dead);
    CHECK("failing source: rewind never fails", mp_arena_rewind(a, m) == 0);
    for (int i = 0; i < 40; i++)
        scenario_alloc(a, 600 * k, 0, fails, dead);
    CHECK("failing source: rewind to the start", mp_arena_rewind(a, start) == 0);
    scenario_alloc(a, 9 * page, 0, fails, dead);
    scenario_alloc(a, 100 * k, 0, fails, dead);
    mp_arena_reset(a);
    for (int i = 0; i < 30; i++)
        scenario_alloc(a, 900 * k, 0, fails, dead);
    struct mp_arena_stats s = stats_of(a);
    CHECK("failing source: bytes_reserved == what the source has out",
          s.bytes_reserved == t->bytes_out);
    uint64_t calls = t->calls;
    mp_arena_destroy(a);
    CHECK("failing source: nothing left outstanding after destroy",
          t->bytes_out == 0 && t->regions == 0);
    source_is_clean("failing source");
    return calls;
}

static void test_failing_source(void)
{
    uint64_t fails = 0;
    CHECK("failing source: the scenario without failures fails nothing",
          scenario(0, 0, &fails) > 4 && fails == 0);
    /* For each k until a run makes fewer than k calls: a run that reached call k failed exactly one
     * request (the source fails that call only), or some (the source is dead from k on). */
    uint64_t k, runs = 0;
    for (int dead = 0; dead <= 1; dead++) {
        for (k = 1; k < 1000; k++) {
            uint64_t before = fails;
            bool reached = scenario(dead ? 0 : k, dead ? k : 0, &fails) >= k;
            runs++;
            if (!CHECK("failing source: a run that reaches the failing call fails as it should",
                       dead ? (fails > before) == reached : fails == before + reached))
                printf("  (k = %" PRIu64 ", dead from k on: %d)\n", k, dead);
            if (!reached)
                break;
        }
    }
    printf("test_arena: failing source: %" PRIu64 " runs\n", runs);
}

/* ================================================================================================
 * What a reset and a rewind keep, mp_arena_trim()
 * ============================================================================================== */

/* Builds a list of n 16-byte nodes, as a region workload does; returns its length walked. */
static size_t build_list(mp_arena *a, size_t n)
{
    void **head = NULL;
    for (size_t i = 0; i < n; i++) {
        void **node = mp_arena_alloc(a, 16);
        if (node == NULL)
            return 0;
        node[0] = head;
        head = node;
    }
    size_t len = 0;
    for (void **p = head; p != NULL; p = *p)
        len++;
    return len;
}

static void test_keep(void)
{
    size_t meta = meta_bytes();
    counting_source *t = source_reset();
    mp_arena *a = make(0, 0);
    CHECK("keep: a round builds its list", build_list(a, 20000) == 20000);
    struct mp_arena_stats s0 = stats_of(a);
    uint64_t calls = t->calls;
    mp_arena_reset(a);
    struct mp_arena_stats s = stats_of(a);
    CHECK("keep: by default a reset keeps every chunk it used",
          s.bytes_reserved == s0.bytes_reserved && s.chunks == s0.chunks && s0.chunks > 3);
    CHECK("keep: the kept bytes are the chunks after the first",
          s.bytes_kept == s.bytes_reserved - meta - 65536 && s.bytes_used == 0);
    for (int round = 0; round < 5; round++) {
        build_list(a, 20000);
        mp_arena_reset(a);
    }
    CHECK("keep: rounds of the same size map nothing more", t->calls == calls);
    build_list(a, 1000); /* a smaller round: the chunks it did not reach go back at the reset */
    mp_arena_reset(a);
    s = stats_of(a);
    CHECK("keep: a smaller round keeps only what it used",
          s.chunks == 1 && s.bytes_reserved == meta + 65536 && t->bytes_out == s.bytes_reserved &&
              s.bytes_kept == 0);
    mp_arena_destroy(a);

    /* An explicit bound: three chunks in all. */
    t = source_reset();
    a = make_keep(0, 0, 3 * 65536);
    build_list(a, 20000);
    mp_arena_reset(a);
    s = stats_of(a);
    CHECK("keep: max_keep bounds the chunks kept, the first included",
          s.chunks == 3 && s.bytes_reserved == meta + 3 * 65536 && s.bytes_kept == 2 * 65536);
    calls = t->calls;
    CHECK("keep: and the next round uses them first",
          build_list(a, 3 * 65536 / 32) != 0 && t->calls == calls);
    mp_arena_destroy(a);

    /* SIZE_MAX: a small round keeps every chunk all the same. */
    t = source_reset();
    a = make_keep(0, 0, SIZE_MAX);
    build_list(a, 20000);
    s0 = stats_of(a);
    mp_arena_reset(a);
    build_list(a, 10);
    mp_arena_reset(a);
    s = stats_of(a);
    CHECK("keep: max_keep SIZE_MAX keeps every chunk", s.bytes_reserved == s0.bytes_reserved);
    mp_arena_destroy(a);

    /* A rewind by default keeps the chunks up to where the cursor was, gives back the rest. */
    t = source_reset();
    a = make(0, 0);
    mp_arena_pos m = mp_arena_mark(a);
    build_list(a, 20000);
    s0 = stats_of(a);
    CHECK("keep: rewind keeps the chunks the round used",
          mp_arena_rewind(a, m) == 0 && stats_of(a).bytes_reserved == s0.bytes_reserved);
    calls = t->calls;
    build_list(a, 20000);
    CHECK("keep: and the same round again maps nothing", t->calls == calls);
    mp_arena_rewind(a, m);
    build_list(a, 10);
    mp_arena_rewind(a, m);
    CHECK("keep: a smaller round's rewind gives the chunks it did not reach back",
          stats_of(a).chunks == 1 && t->bytes_out == meta + 65536);
    mp_arena_destroy(a);
    CHECK("keep: nothing left outstanding", t->bytes_out == 0);
    source_is_clean("keep");
}

static void test_trim(void)
{
    size_t meta = meta_bytes();
    counting_source *t = source_reset();
    CHECK("trim: NULL gives back nothing", mp_arena_trim(NULL) == 0);
    mp_arena *a = make_keep(0, 0, SIZE_MAX);
    CHECK("trim: an arena with no chunk gives back nothing", mp_arena_trim(a) == 0);
    mp_arena_pos m = mp_arena_mark(a);
    char *keep = mp_arena_alloc(a, 100);
    memset(keep, 0x3C, 100);
    mp_arena_pos m2 = mp_arena_mark(a);
    build_list(a, 20000);
    mp_arena_rewind(a, m2);
    struct mp_arena_stats s0 = stats_of(a);
    size_t got = mp_arena_trim(a);
    struct mp_arena_stats s = stats_of(a);
    CHECK("trim: gives back the kept chunks and says how many bytes",
          got == s0.bytes_kept && got > 0 && s.bytes_reserved == s0.bytes_reserved - got &&
              s.bytes_kept == 0 && s.chunks == 1 && t->bytes_out == s.bytes_reserved);
    CHECK("trim: allocations stay valid", keep[0] == 0x3C && keep[99] == 0x3C);
    CHECK("trim: bytes_used and the counters unchanged",
          s.bytes_used == s0.bytes_used && s.allocs == s0.allocs && s.bytes_peak == s0.bytes_peak);
    CHECK("trim: a second trim gives nothing", mp_arena_trim(a) == 0);
    mp_arena_rewind(a, m);
    got = mp_arena_trim(a);
    s = stats_of(a);
    CHECK("trim: an empty arena gives back every chunk",
          got == 65536 && s.chunks == 0 && s.bytes_reserved == meta && t->bytes_out == meta);
    CHECK("trim: the start mark is still valid", mp_arena_rewind(a, m) == 0);
    CHECK("trim: the arena is usable after", build_list(a, 5000) == 5000);
    mp_arena_destroy(a);

    static char buf[8192];
    a = mp_arena_create(&(mp_arena_opts){.buffer = buf, .buffer_size = sizeof buf});
    mp_arena_alloc(a, 10);
    mp_arena_reset(a);
    CHECK("trim: an arena in a buffer gives back nothing",
          mp_arena_trim(a) == 0 && stats_of(a).bytes_reserved == sizeof buf);
    mp_arena_destroy(a);
    CHECK("trim: nothing left outstanding", t->bytes_out == 0);
    source_is_clean("trim");
}

/* ================================================================================================
 * Cleanups
 * ============================================================================================== */

static int cleanup_order[64];
static int ncleanup_order;

static void note_cleanup(void *ctx)
{
    if (ncleanup_order < 64)
        cleanup_order[ncleanup_order++] = *(int *)ctx;
}

/* Adds cleanups with ids [from, to), each id in memory of the arena itself. */
static bool add_cleanups(mp_arena *a, int from, int to)
{
    bool ok = true;
    for (int i = from; i < to; i++) {
        int *id = mp_arena_alloc(a, sizeof *id);
        ok = ok && id != NULL;
        if (id != NULL) {
            *id = i;
            ok = ok && mp_arena_add_cleanup(a, note_cleanup, id) == 0;
        }
    }
    return ok;
}

/* The cleanups run since the last check were ids hi-1 down to lo. */
static bool ran_down(int hi, int lo)
{
    bool ok = ncleanup_order == hi - lo;
    for (int i = 0; ok && i < ncleanup_order; i++)
        ok = cleanup_order[i] == hi - 1 - i;
    ncleanup_order = 0;
    return ok;
}

static void test_cleanups(void)
{
    counting_source *t = source_reset();
    int x = 0;
    CHECK("cleanup: NULL arena is EINVAL", mp_arena_add_cleanup(NULL, note_cleanup, &x) == EINVAL);
    mp_arena *a = make(0, 0);
    CHECK("cleanup: NULL fn is EINVAL", mp_arena_add_cleanup(a, NULL, &x) == EINVAL);
    CHECK("cleanup: NULL fn registers nothing, allocates nothing", stats_of(a).allocs == 0);

    ncleanup_order = 0;
    CHECK("cleanup: registered", add_cleanups(a, 0, 5));
    struct mp_arena_stats s = stats_of(a);
    CHECK("cleanup: a record is an allocation of the arena", s.allocs == 10);
    mp_arena_reset(a);
    CHECK("cleanup: a reset runs all, newest first", ran_down(5, 0));
    mp_arena_reset(a);
    CHECK("cleanup: and only once", ncleanup_order == 0);

    /* Rewind: only those added after the mark, and not at a failed rewind. */
    add_cleanups(a, 0, 3);
    mp_arena_pos m = mp_arena_mark(a);
    add_cleanups(a, 3, 7);
    mp_arena_pos m2 = mp_arena_mark(a);
    build_list(a, 10000); /* over several chunks */
    add_cleanups(a, 7, 9);
    CHECK("cleanup: a rewind to a mark after every cleanup runs none",
          mp_arena_rewind(a, mp_arena_mark(a)) == 0 && ncleanup_order == 0);
    CHECK("cleanup: a rewind runs those added after its mark, newest first",
          mp_arena_rewind(a, m2) == 0 && ran_down(9, 7));
    CHECK("cleanup: rewound further, the next ones", mp_arena_rewind(a, m) == 0 && ran_down(7, 3));
    mp_arena *other = mp_arena_create(NULL);
    mp_arena_alloc(other, 8);
    CHECK("cleanup: a refused rewind runs none",
          mp_arena_rewind(a, mp_arena_mark(other)) == EINVAL && ncleanup_order == 0);
    mp_arena_destroy(other);
    add_cleanups(a, 3, 4);
    CHECK("cleanup: destroy runs the rest, newest first", (mp_arena_destroy(a), ran_down(4, 0)));

    /* A cleanup added right at a mark: a rewind to that mark runs it; to {arena, 0}, all. */
    a = make(0, 0);
    m = mp_arena_mark(a);
    add_cleanups(a, 0, 2);
    CHECK("cleanup: a rewind to the start runs all", mp_arena_rewind(a, m) == 0 && ran_down(2, 0));
    mp_arena_destroy(a);

    /* ENOMEM: an arena in a buffer that is full, and a source that refuses. */
    static char buf[1024];
    a = mp_arena_create(&(mp_arena_opts){.buffer = buf, .buffer_size = sizeof buf});
    while (mp_arena_alloc(a, 8) != NULL)
        ;
    s = stats_of(a);
    CHECK("cleanup: a full arena refuses the record with ENOMEM, counted as a failed alloc",
          mp_arena_add_cleanup(a, note_cleanup, &x) == ENOMEM &&
              stats_of(a).failed_allocs == s.failed_allocs + 1);
    mp_arena_reset(a);
    CHECK("cleanup: nothing was registered", ncleanup_order == 0);
    CHECK("cleanup: the arena in a buffer runs its cleanups at destroy",
          add_cleanups(a, 0, 2) && (mp_arena_destroy(a), ran_down(2, 0)));
    t = source_reset();
    a = make(0, 0);
    t->dead = true;
    CHECK("cleanup: a source that refuses gives ENOMEM",
          mp_arena_add_cleanup(a, note_cleanup, &x) == ENOMEM);
    t->dead = false;
    mp_arena_destroy(a);
    CHECK("cleanup: and nothing runs", ncleanup_order == 0);
    CHECK("cleanup: nothing left outstanding", t->bytes_out == 0);
    source_is_clean("cleanup");
}

/* ================================================================================================
 * The model test
 * ============================================================================================== */

enum { MAX_LIVE = 1024, MAX_MARKS = 64 };

static uint64_t cleanup_log[MAX_LIVE]; /* the ids of the cleanups run, in order */
static size_t ncleanup_log;
static size_t meta_page; /* meta_bytes(), taken once */

/* A live block, or a cleanup registered at that point (p NULL, serial its id). */
typedef struct mblock {
    char *p;
    size_t n; /* bytes filled: max(size, 1); 0 for a cleanup */
    uint64_t serial;
} mblock;

typedef struct mmark {
    mp_arena_pos pos;
    size_t nlive;  /* blocks live when it was taken */
    uint64_t used; /* bytes_used then */
    char *next_p;  /* the first block allocated after it (NULL: none yet) */
    size_t next_size, next_align;
} mmark;

typedef struct model {
    mp_arena *a;
    mp_arena *other; /* for marks of another arena */
    bool in_buffer, bounded;
    unsigned char *buf; /* the buffer arena's region, with guards around it */
    size_t buf_size, buf_lo, buf_total;
    mblock live[MAX_LIVE];
    size_t nlive;
    mmark marks[MAX_MARKS];
    size_t nmarks;
    uint64_t serial;
    struct mp_arena_stats expect; /* allocs, failed_allocs, resets, rewinds, bytes_used, peak */
    size_t cap;
    size_t max_keep;
} model;

static uint64_t model_ops, model_arenas;

static bool model_stats_agree(model *m)
{
    struct mp_arena_stats s = stats_of(m->a);
    const struct mp_arena_stats *e = &m->expect;
    bool ok = CHECK("model: allocs, failed_allocs, resets, rewinds as counted",
                    s.allocs == e->allocs && s.failed_allocs == e->failed_allocs &&
                        s.resets == e->resets && s.rewinds == e->rewinds);
    ok = CHECK("model: bytes_used and bytes_peak as the model has them",
               s.bytes_used == e->bytes_used && s.bytes_peak == e->bytes_peak) &&
         ok;
    if (m->in_buffer)
        ok = CHECK("model: a buffer arena: one chunk, the buffer reserved",
                   s.chunks == 1 && s.bytes_reserved == m->buf_size && src_ctx.calls == 0) &&
             ok;
    else
        ok = CHECK("model: reserved == the source's bytes out, chunks == its regions but the "
                   "arena's page",
                   s.bytes_reserved == src_ctx.bytes_out && s.chunks + 1 == src_ctx.regions &&
                       (m->cap == 0 || s.bytes_reserved <= m->cap)) &&
             ok;
    ok = CHECK("model: bytes_used <= bytes_reserved", s.bytes_used <= s.bytes_reserved) && ok;
    ok = CHECK("model: bytes_kept lies in bytes_reserved (none in a buffer)",
               s.bytes_kept + s.bytes_used <= s.bytes_reserved &&
                   (!m->in_buffer || s.bytes_kept == 0)) &&
         ok;
    return ok;
}

static void model_create(model *m)
{
    static const size_t chunks[] = {0, 1, 4096, 3 * 4096, 16384, 65536, 200000};
    source_reset();
    m->nlive = m->nmarks = 0;
    memset(&m->expect, 0, sizeof m->expect);
    m->in_buffer = rng_below(4) == 0;
    m->cap = 0;
    m->bounded = m->in_buffer;
    if (m->in_buffer) {
        m->buf_size = 256 + (size_t)rng_below(rng_below(2) ? 4096 : 262144);
        m->buf_lo = 64 + (size_t)rng_below(64);
        m->buf_total = m->buf_lo + m->buf_size + 64;
        m->buf = malloc(m->buf_total);
        memset(m->buf, 0xEE, m->buf_total);
        m->a = mp_arena_create(&(mp_arena_opts){
            .buffer = m->buf + m->buf_lo, .buffer_size = m->buf_size, .source = &src});
    } else {
        if (rng_below(3) == 0) {
            m->cap = meta_bytes() + page + (size_t)rng_below(64 * page);
            source_reset();
            m->bounded = true;
        }
        static const size_t keeps[] = {0, 0, 1, SIZE_MAX, 65536, 300000};
        m->max_keep = keeps[rng_below(sizeof keeps / sizeof keeps[0])];
        m->a = make_keep(chunks[rng_below(sizeof chunks / sizeof chunks[0])], m->cap, m->max_keep);
    }
    CHECK("model: create", m->a != NULL);
    m->other = mp_arena_create(NULL);
    mp_arena_alloc(m->other, 10);
    model_arenas++;
}

static bool model_verify_block(const mblock *b)
{
    return b->p == NULL ||
           CHECK("model: a live block keeps its pattern", intact(b->p, b->n, b->serial));
}

static bool model_verify_all(model *m)
{
    bool ok = true;
    for (size_t i = 0; i < m->nlive && ok; i++)
        ok = model_verify_block(&m->live[i]);
    if (m->in_buffer) {
        bool guards = true;
        for (size_t i = 0; i < m->buf_lo; i++)
            guards = guards && m->buf[i] == 0xEE;
        for (size_t i = m->buf_lo + m->buf_size; i < m->buf_total; i++)
            guards = guards && m->buf[i] == 0xEE;
        ok = CHECK("model: nothing written outside the buffer", guards) && ok;
    }
    return ok;
}

static size_t model_pick_size(void)
{
    uint64_t r = rng_below(1000);
    if (r < 20)
        return 0;
    if (r < 800)
        return (size_t)rng_below(257);
    if (r < 990)
        return (size_t)rng_below(8193);
    return (size_t)rng_below(300001);
}

static size_t model_pick_align(void)
{
    uint64_t r = rng_below(100);
    if (r < 60)
        return 0; /* mp_arena_alloc */
    if (r < 99)
        return (size_t)1 << rng_below(17);
    return (size_t)1 << 20;
}

static void model_alloc(model *m)
{
    size_t size = model_pick_size(), align = model_pick_align();
    mmark *last = m->nmarks > 0 ? &m->marks[m->nmarks - 1] : NULL;
    bool replay = last != NULL && last->nlive == m->nlive && last->next_p != NULL;
    if (replay) { /* the same request as the first one after the mark: the same address */
        size = last->next_size;
        align = last->next_align;
    }
    errno = 0;
    char *p = align != 0 ? mp_arena_alloc_aligned(m->a, size, align) : mp_arena_alloc(m->a, size);
    size_t eff = align != 0 ? align : alignof(max_align_t), n = size != 0 ? size : 1;
    if (p == NULL) {
        CHECK("model: only a bounded arena refuses, with ENOMEM", m->bounded && errno == ENOMEM);
        m->expect.failed_allocs++;
        return;
    }
    m->expect.allocs++;
    struct mp_arena_stats s = stats_of(m->a);
    CHECK("model: aligned", is_aligned(p, eff));
    CHECK("model: bytes_used grows by the size and less than an alignment of padding",
          s.bytes_used >= m->expect.bytes_used + n &&
              s.bytes_used <= m->expect.bytes_used + n + eff - 1);
    /* Only when every chunk is kept: by default a second rewind to the same mark, with nothing
     * allocated between, gives back the chunks the first one kept (the last round used none). */
    if (replay && m->max_keep == SIZE_MAX)
        CHECK("model: after a rewind the same request gets the same address", p == last->next_p);
    /* Every mark at this position records this request: a different request from here may have
     * taken another kept chunk (moved next in line), so only the latest one replays exactly. */
    for (size_t j = m->nmarks; j-- > 0 && m->marks[j].nlive == m->nlive;)
        m->marks[j].next_p = p, m->marks[j].next_size = size, m->marks[j].next_align = align;
    m->expect.bytes_used = s.bytes_used;
    if (s.bytes_used > m->expect.bytes_peak)
        m->expect.bytes_peak = s.bytes_used;
    if (m->in_buffer)
        CHECK("model: a buffer arena's block lies in the buffer",
              (unsigned char *)p >= m->buf + m->buf_lo &&
                  (unsigned char *)p + n <= m->buf + m->buf_lo + m->buf_size);
    bool apart = true;
    for (size_t i = 0; i < m->nlive; i++)
        apart = apart && (m->live[i].p == NULL || !overlaps(p, n, m->live[i].p, m->live[i].n));
    CHECK("model: a new block overlaps no live block", apart);
    mblock *b = &m->live[m->nlive++];
    *b = (mblock){p, n, ++m->serial};
    fill(p, n, b->serial);
}

static void model_cleanup_fn(void *ctx)
{
    if (ncleanup_log < MAX_LIVE)
        cleanup_log[ncleanup_log++] = (uint64_t)(uintptr_t)ctx;
}

/* The cleanups the log must show after releasing back to live entry `from`: newest first. */
static void model_check_cleanups(model *m, size_t from, const char *what)
{
    size_t k = 0;
    bool ok = true;
    for (size_t j = m->nlive; j-- > from;) {
        if (m->live[j].p == NULL)
            ok = ok && k < ncleanup_log && cleanup_log[k++] == m->live[j].serial;
    }
    if (!CHECK("model: a release runs the cleanups after its point, newest first, once",
               ok && k == ncleanup_log))
        printf("  (at %s)\n", what);
}

/* What a reset or rewind kept, against the bound (reserved: before it). */
static void model_check_kept(model *m, uint64_t reserved, bool reset)
{
    struct mp_arena_stats s = stats_of(m->a);
    if (m->in_buffer)
        return;
    if (m->max_keep == SIZE_MAX)
        CHECK("model: max_keep SIZE_MAX keeps every chunk", s.bytes_reserved == reserved);
    else
        CHECK("model: a release takes nothing", s.bytes_reserved <= reserved);
    if (reset && m->max_keep == 1)
        CHECK("model: max_keep 1: a reset keeps the first chunk only", s.chunks <= 1);
    if (reset && m->max_keep > 1 && m->max_keep != SIZE_MAX)
        CHECK("model: a reset keeps within max_keep, or the first chunk",
              s.chunks <= 1 || s.bytes_reserved - meta_page <= m->max_keep);
}

/* Registers a cleanup, recorded as a live entry of its own (marks are ordered with it as with
 * blocks). */
static void model_add_cleanup(model *m)
{
    uint64_t id = m->serial + 1;
    int rc = mp_arena_add_cleanup(m->a, model_cleanup_fn, (void *)(uintptr_t)id);
    if (rc != 0) {
        CHECK("model: only a bounded arena refuses a cleanup, with ENOMEM",
              m->bounded && rc == ENOMEM);
        m->expect.failed_allocs++;
        return;
    }
    struct mp_arena_stats s = stats_of(m->a);
    m->expect.allocs++;
    CHECK("model: a cleanup's record is an allocation", s.bytes_used > m->expect.bytes_used);
    m->expect.bytes_used = s.bytes_used;
    if (s.bytes_used > m->expect.bytes_peak)
        m->expect.bytes_peak = s.bytes_used;
    for (size_t j = m->nmarks; j-- > 0 && m->marks[j].nlive == m->nlive;)
        m->marks[j].next_p = NULL;
    m->live[m->nlive++] = (mblock){NULL, 0, ++m->serial};
}

static void model_mark(model *m)
{
    if (m->nmarks == MAX_MARKS)
        m->nmarks--; /* forget the innermost */
    m->marks[m->nmarks++] =
        (mmark){mp_arena_mark(m->a), m->nlive, m->expect.bytes_used, NULL, 0, 0};
}

/* Rewinds to mark i: the blocks after it are verified, then forgotten; the marks after it are
 * refused at once (those past the cursor) and forgotten. */
static void model_rewind(model *m, size_t i)
{
    mmark mk = m->marks[i];
    for (size_t j = mk.nlive; j < m->nlive; j++)
        model_verify_block(&m->live[j]);
    uint64_t reserved = stats_of(m->a).bytes_reserved;
    ncleanup_log = 0;
    CHECK("model: rewind to a mark", mp_arena_rewind(m->a, mk.pos) == 0);
    model_check_cleanups(m, mk.nlive, "rewind");
    model_check_kept(m, reserved, false);
    m->expect.rewinds++;
    m->nlive = mk.nlive;
    m->expect.bytes_used = mk.used;
    CHECK("model: the mark is the position after the rewind",
          same_pos(mp_arena_mark(m->a), mk.pos));
    for (size_t j = i + 1; j < m->nmarks; j++) {
        if (m->marks[j].nlive > mk.nlive) {
            CHECK("model: a mark rewound past is refused",
                  mp_arena_rewind(m->a, m->marks[j].pos) == EINVAL);
            break;
        }
    }
    m->nmarks = i + 1;
}

/* Trims: the kept bytes go back, nothing allocated moves; the replays recorded may not hold. */
static void model_trim(model *m)
{
    struct mp_arena_stats s0 = stats_of(m->a);
    size_t got = mp_arena_trim(m->a);
    struct mp_arena_stats s1 = stats_of(m->a);
    CHECK("model: trim returns the bytes it gave back, all that was kept",
          got == s0.bytes_reserved - s1.bytes_reserved && got >= s0.bytes_kept &&
              s1.bytes_kept == 0 && s1.bytes_used == s0.bytes_used);
    CHECK("model: trim of an empty arena gives back every chunk (none in a buffer)",
          m->in_buffer ? got == 0 : s1.bytes_used != 0 || s1.chunks == 0);
    for (size_t j = 0; j < m->nmarks; j++)
        m->marks[j].next_p = NULL;
    model_verify_all(m);
}

static void model_reset(model *m)
{
    model_verify_all(m);
    uint64_t reserved = stats_of(m->a).bytes_reserved;
    ncleanup_log = 0;
    mp_arena_reset(m->a);
    model_check_cleanups(m, 0, "reset");
    model_check_kept(m, reserved, true);
    m->expect.resets++;
    m->expect.bytes_used = 0;
    m->nlive = 0;
    for (size_t j = 0; j < m->nmarks; j++) {
        if (m->marks[j].nlive > 0) {
            CHECK("model: a mark from before a reset is refused",
                  mp_arena_rewind(m->a, m->marks[j].pos) == EINVAL);
            break;
        }
    }
    m->nmarks = 0;
}

static void model_step(model *m)
{
    uint64_t r = rng_below(1000);
    if (m->nlive == MAX_LIVE)
        r = 900;
    if (r < 760)
        model_alloc(m);
    else if (r < 780)
        model_add_cleanup(m);
    else if (r < 870)
        model_mark(m);
    else if (r < 970) {
        if (m->nmarks > 0)
            model_rewind(m, (size_t)rng_below(m->nmarks));
        else
            model_reset(m);
    } else if (r < 978)
        model_reset(m);
    else if (r < 985) {
        ncleanup_log = 0;
        CHECK("model: another arena's mark is refused, running no cleanup",
              mp_arena_rewind(m->a, mp_arena_mark(m->other)) == EINVAL && ncleanup_log == 0);
    } else if (r < 988)
        model_verify_all(m);
    else if (r < 990)
        model_trim(m);
    else if (m->nlive > 0) /* a random live block, verified */
        model_verify_block(&m->live[rng_below(m->nlive)]);
    model_ops++;
    model_stats_agree(m);
}

static void model_destroy(model *m)
{
    model_verify_all(m);
    ncleanup_log = 0;
    mp_arena_destroy(m->a);
    model_check_cleanups(m, 0, "destroy");
    mp_arena_destroy(m->other);
    if (m->in_buffer)
        free(m->buf);
    else
        CHECK("model: destroy gives everything back",
              src_ctx.bytes_out == 0 && src_ctx.regions == 0);
    source_is_clean("model");
}

static void test_model(uint64_t seed, uint64_t ops)
{
    static model m;
    meta_page = meta_bytes();
    rng_state = seed;
    uint64_t failures = TEST_FAILURES(); /* the model runs even when a test above failed */
    while (model_ops < ops && TEST_FAILURES() == failures) {
        model_create(&m);
        if (m.a == NULL)
            break;
        uint64_t end = model_ops + 500 + rng_below(20000);
        while (model_ops < end && model_ops < ops && TEST_FAILURES() == failures)
            model_step(&m);
        if (TEST_FAILURES() != failures)
            printf("test_arena: model FAILED at op %" PRIu64 "; replay: test_arena %" PRIu64
                   " %" PRIu64 "\n",
                   model_ops, seed, ops);
        model_destroy(&m);
    }
    printf("test_arena: model: %" PRIu64 " arenas, %" PRIu64 " ops\n", model_arenas, model_ops);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
    uint64_t ops = argc > 2 ? strtoull(argv[2], NULL, 0) : (uint64_t)(400000 * test_scale());
    if (ops < 1000)
        ops = 1000;
    printf("test_arena: seed %" PRIu64 ", %" PRIu64 " model ops (replay: test_arena %" PRIu64
           " %" PRIu64 ")\n",
           seed, ops, seed, ops);
    fflush(stdout);
    long n = sysconf(_SC_PAGESIZE);
    page = n > 0 ? (size_t)n : 4096;

    test_create();
    test_null();
    test_alignment();
    test_size_zero();
    test_overflow();
    test_capacity();
    test_buffer();
    test_buffer_tail();
    test_mark_rewind();
    test_reset();
    test_large();
    test_stats();
    test_failing_source();
    test_keep();
    test_trim();
    test_cleanups();
    test_model(seed, ops);
    return TEST_DONE();
}

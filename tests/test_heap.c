/*
 * test_heap.c: the contract of heaps (mp_heap_*) and of the process-wide heap (mp_malloc & co.),
 * checked the way a malloc test suite checks malloc.
 *
 * One suite of contract tests runs on every kind of heap ("targets"): the process-wide heap, a
 * plain heap, one over a source that hands out dirty memory and counts every byte, a thread-safe, a
 * checked, a secure and an MP_ZERO heap, a heap inside a caller's buffer with guard bytes around
 * it, and a capacity-limited heap. The suite covers:
 *   - sizes 0, 1, every size up to 4096, then each class's size, its neighbours and a stride up to
 *     MP_HEAP_MAX_CLASS: the block is at least the size asked, its usable size is its class's, it
 * is aligned (16 for sizes above 8, else 8), no two live blocks overlap, every usable byte keeps
 *     what was written, and the per-class statistics count each block in its class;
 *   - large blocks: 2^k - 32, 2^k, 2^k + 32 for k <= 20 and 5..25 MiB;
 *   - aligned_alloc with every power of two from 1 to 64 KiB and 1 MiB, and invalid alignments;
 *   - calloc: zeroing (also over reused dirty blocks and a source's dirty memory) and overflow;
 *   - sizes above PTRDIFF_MAX and other impossible requests: NULL and ENOMEM, counted as failed;
 *   - realloc up and down across class boundaries and into and out of large blocks, keeping
 *     min(old usable size, new size) bytes; realloc(NULL, n); realloc(p, 0); failed realloc;
 *   - free(NULL), free_sized with the size asked and with the usable size.
 * Then what belongs to one kind: options and EINVAL at create, the class table against the header,
 * statistics output, reset and destroy (every byte back to the source), capacity exhaustion,
 * buffer exhaustion and reset, a source that fails at every step in turn, the pages of a fresh
 * block (over the system source all resident before the program writes them, and no others; over
 * the caller's source left alone: mincore), the errors a checked heap
 * reports (in child processes, so a crash fails one check) and MEMPOOL_CHECKED=1.
 * Statistics are compared as deltas, so the same code checks the process-wide heap.
 *
 * Usage: test_heap. Nothing here is random. Runs in a few seconds in a Release build (most of it
 * the kernel faulting in fresh chunks and large blocks), about 30 s under valgrind.
 */
#define _DEFAULT_SOURCE /* mincore, MAP_ANONYMOUS, MADV_POPULATE_WRITE */

#include "mempool.h"
#include "test.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

/* ------------------------------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------------------------------- */

/* Seconds since the previous call, for the per-section times printed. */
static double lap(void)
{
    static struct timespec last;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double d = (double)(now.tv_sec - last.tv_sec) + (double)(now.tv_nsec - last.tv_nsec) / 1e9;
    last = now;
    return d;
}

static bool aligned_to(const void *p, size_t align)
{
    return ((uintptr_t)p & (align - 1)) == 0;
}

/* The alignment the header promises for a request of n bytes. */
static size_t natural_align(size_t n)
{
    return n > 8 ? 16 : 8;
}

/* Block contents. Blocks up to FULL bytes are patterned in full; larger ones at both ends (EDGE
 * bytes) and every STEP bytes between, which catches a lost page or a short copy at far less cost.
 */
enum { FULL = 256 * 1024, EDGE = 4096, STEP = 509 };

static unsigned char pat(uint64_t seed, size_t i)
{
    return (unsigned char)(seed * 131u + i * 7u + (i >> 8) + (i >> 16) + (seed >> 7));
}

static void fill(unsigned char *p, size_t n, uint64_t seed)
{
    if (n <= FULL) {
        for (size_t i = 0; i < n; i++)
            p[i] = pat(seed, i);
        return;
    }
    for (size_t i = 0; i < EDGE; i++)
        p[i] = pat(seed, i);
    for (size_t i = EDGE; i < n - EDGE; i += STEP)
        p[i] = pat(seed, i);
    for (size_t i = n - EDGE; i < n; i++)
        p[i] = pat(seed, i);
}

/* True if the first n bytes of p hold the pattern of a block filled with `seed` over >= n bytes. */
static bool filled(const unsigned char *p, size_t n, size_t filled_size, uint64_t seed)
{
    if (filled_size <= FULL) {
        for (size_t i = 0; i < n; i++)
            if (p[i] != pat(seed, i))
                return false;
        return true;
    }
    for (size_t i = 0; i < EDGE && i < n; i++)
        if (p[i] != pat(seed, i))
            return false;
    for (size_t i = EDGE; i < filled_size - EDGE && i < n; i += STEP)
        if (p[i] != pat(seed, i))
            return false;
    for (size_t i = filled_size - EDGE; i < n; i++)
        if (p[i] != pat(seed, i))
            return false;
    return true;
}

/* Writes a byte a tool may be guarding (a canary, a freed block). */
static void stray_write(unsigned char *p, unsigned char value)
{
#if TEST_ASAN
    __asan_unpoison_memory_region(p, 1);
#endif
#if TEST_VALGRIND
    VALGRIND_MAKE_MEM_DEFINED(p, 1);
#endif
    *(volatile unsigned char *)p = value;
}

/* ------------------------------------------------------------------------------------------------
 * A source of dirty memory that counts and checks everything (mp_source contract)
 * ---------------------------------------------------------------------------------------------- */

enum { SRC_MAX_MAPS = 4096 };

typedef struct src {
    size_t tries, maps, unmaps;
    size_t out, peak;             /* bytes mapped and not given back; the most at once */
    long fail_at;                 /* the map call (0-based) that fails; -1 = none */
    bool fail_after;              /* every call from fail_at on fails, not just that one */
    bool clean;                   /* hand out memory as aligned_alloc gives it, not dirtied */
    unsigned contract_violations; /* align not a power of two >= 4096, size not a multiple of 4096,
                                     an unmap of no map or with another size */
    struct {
        void *p;
        size_t size;
    } live[SRC_MAX_MAPS];
    size_t nlive;
} src;

/* Dirties fresh memory where blocks land first (the first 256 KiB, the last page) and a stripe of
 * every other page: a 2 MiB chunk dirtied in full every time would be most of the run's time. */
static void dirty(unsigned char *p, size_t size)
{
    size_t head = size < 256 * KiB ? size : 256 * KiB;
    memset(p, 0xA5, head);
    for (size_t i = head; i + 64 <= size; i += 4096)
        memset(p + i, 0xA5, 64);
    if (size >= 4096)
        memset(p + size - 4096, 0xA5, 4096);
}

static void *src_map(void *ctx, size_t size, size_t align)
{
    src *s = ctx;
    long k = (long)s->tries++;
    if (s->fail_at >= 0 && (k == s->fail_at || (s->fail_after && k > s->fail_at)))
        return NULL;
    if (align < 4096 || (align & (align - 1)) != 0 || size == 0 || size % 4096 != 0)
        s->contract_violations++;
    /* Refused before the C library sees it: ASan aborts on absurd sizes instead of failing. */
    if (size / 1024 > ((size_t)1 << 26) || align > ((size_t)1 << 30) || s->nlive == SRC_MAX_MAPS)
        return NULL;
    /* posix_memalign, not aligned_alloc: the contract does not make size a multiple of align, which
     * C11's aligned_alloc demands (and ASan's enforces by aborting). */
    void *p = NULL;
    if (posix_memalign(&p, align, size) != 0)
        return NULL;
    if (!s->clean) /* the contract says "need not be zeroed": make sure nothing assumes it */
        dirty(p, size);
    s->live[s->nlive].p = p;
    s->live[s->nlive].size = size;
    s->nlive++;
    s->maps++;
    s->out += size;
    if (s->out > s->peak)
        s->peak = s->out;
    return p;
}

static void src_unmap(void *ctx, void *p, size_t size)
{
    src *s = ctx;
    for (size_t i = 0; i < s->nlive; i++) {
        if (s->live[i].p == p) {
            if (s->live[i].size != size)
                s->contract_violations++;
            s->live[i] = s->live[--s->nlive];
            s->unmaps++;
            s->out -= size;
            free(p);
            return;
        }
    }
    s->contract_violations++; /* not a region map gave: leave it alone */
}

static src *src_new(void)
{
    src *s = calloc(1, sizeof *s);
    if (s != NULL)
        s->fail_at = -1;
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Errors reported by checked and secure heaps: recorded, so correct use can be seen to report none
 * ---------------------------------------------------------------------------------------------- */

enum { MAX_ERRS = 32 };

static struct {
    unsigned n;
    mp_error_kind kind[MAX_ERRS];
    const void *addr[MAX_ERRS];
    uint64_t count[MAX_ERRS];
} errs;

static void record_error(const mp_error *e, void *ctx)
{
    (void)ctx;
    if (errs.n < MAX_ERRS) {
        errs.kind[errs.n] = e->kind;
        errs.addr[errs.n] = e->addr;
        errs.count[errs.n] = e->count;
    }
    errs.n++;
}

static void errs_clear(void)
{
    memset(&errs, 0, sizeof errs);
}

static void errs_show(void)
{
    for (unsigned i = 0; i < errs.n && i < MAX_ERRS; i++)
        printf("  error %u: %s at %p, count %" PRIu64 "\n", i, mp_error_name(errs.kind[i]),
               errs.addr[i], errs.count[i]);
}

/* ------------------------------------------------------------------------------------------------
 * Targets: the heaps the contract suite runs on
 * ---------------------------------------------------------------------------------------------- */

typedef struct target {
    const char *name;
    mp_heap *heap; /* NULL: the process-wide heap, through mp_malloc & co. */
    unsigned flags;
    unsigned char *lo, *hi; /* a buffer heap's buffer: every block must lie inside it */
    size_t max_large;       /* the largest block the suite asks of it */
    src *source;            /* the counting source under it, if any */
} target;

static mp_heap *heap_of(const target *t)
{
    return t->heap != NULL ? t->heap : mp_default_heap();
}

static void *t_alloc(const target *t, size_t n)
{
    return t->heap != NULL ? mp_heap_alloc(t->heap, n) : mp_malloc(n);
}

static void *t_calloc(const target *t, size_t n, size_t size)
{
    return t->heap != NULL ? mp_heap_calloc(t->heap, n, size) : mp_calloc(n, size);
}

static void *t_realloc(const target *t, void *p, size_t n)
{
    return t->heap != NULL ? mp_heap_realloc(t->heap, p, n) : mp_realloc(p, n);
}

static void *t_aligned(const target *t, size_t align, size_t n)
{
    return t->heap != NULL ? mp_heap_aligned_alloc(t->heap, align, n) : mp_aligned_alloc(align, n);
}

static void t_free(const target *t, void *p)
{
    if (t->heap != NULL)
        mp_heap_free(t->heap, p);
    else
        mp_free(p);
}

/* free_sized where the target has it (the process-wide heap has no mp_free_sized). */
static void t_free_sized(const target *t, void *p, size_t n)
{
    if (t->heap != NULL)
        mp_heap_free_sized(t->heap, p, n);
    else
        mp_free(p);
}

static size_t t_usable(const target *t, const void *p)
{
    return t->heap != NULL ? mp_heap_usable_size(t->heap, p) : mp_usable_size(p);
}

static struct mp_heap_stats t_stats(const target *t)
{
    struct mp_heap_stats s;
    memset(&s, 0, sizeof s);
    int rc = mp_heap_stats(heap_of(t), &s);
    if (rc != 0)
        printf("  %s: mp_heap_stats returned %d\n", t->name, rc);
    return s;
}

static bool in_buffer(const target *t, const void *p, size_t n)
{
    const unsigned char *b = p;
    return t->lo == NULL || (b >= t->lo && b <= t->hi && n <= (size_t)(t->hi - b));
}

/* The equations the statistics keep in any state: what is in use is what was allocated and not
 * freed, and is split exactly between the classes and the large blocks. */
static bool stats_sane(const target *t, const struct mp_heap_stats *s)
{
    tally ta = {0};
    uint64_t in_classes = 0;
    for (size_t i = 0; i < MP_HEAP_CLASSES; i++) {
        const mp_heap_class_stats *c = &s->classes[i];
        in_classes += c->blocks_in_use;
        tally_expect(&ta,
               c->blocks_in_use <= c->blocks_peak && c->frees <= c->allocs &&
                   c->allocs - c->frees == c->blocks_in_use,
               "%s: class %zu (%zu bytes): in use %" PRIu64 ", peak %" PRIu64 ", allocs %" PRIu64
               ", frees %" PRIu64,
               t->name, i, c->size, c->blocks_in_use, c->blocks_peak, c->allocs, c->frees);
    }
    tally_expect(&ta, s->frees <= s->allocs && s->allocs - s->frees == s->blocks_in_use,
           "%s: allocs %" PRIu64 " - frees %" PRIu64 " != blocks_in_use %" PRIu64, t->name,
           s->allocs, s->frees, s->blocks_in_use);
    tally_expect(&ta, in_classes + s->large_in_use == s->blocks_in_use,
           "%s: blocks in classes %" PRIu64 " + large %" PRIu64 " != blocks_in_use %" PRIu64,
           t->name, in_classes, s->large_in_use, s->blocks_in_use);
    tally_expect(&ta, s->bytes_in_use <= s->bytes_reserved,
           "%s: bytes_in_use %" PRIu64 " > bytes_reserved %" PRIu64, t->name, s->bytes_in_use,
           s->bytes_reserved);
    if (t->lo != NULL)
        tally_expect(&ta, s->bytes_reserved <= (uint64_t)(t->hi - t->lo),
               "%s: bytes_reserved %" PRIu64 " beyond the buffer's %zu", t->name, s->bytes_reserved,
               (size_t)(t->hi - t->lo));
    return ta.bad == 0;
}

/* The class table as the heap reports it (filled by test_classes; the header's when it agrees). */
static size_t cls[MP_HEAP_CLASSES];

/* The index of the smallest class of at least n bytes (MP_HEAP_CLASSES for a large request). */
static size_t class_of(size_t n)
{
    for (size_t i = 0; i < MP_HEAP_CLASSES; i++)
        if (cls[i] >= n)
            return i;
    return MP_HEAP_CLASSES;
}

/* The header's table: 8, 16, multiples of 16 up to 128, then 8 classes per doubling up to
 * MP_HEAP_MAX_CLASS. */
static size_t header_classes(size_t *out)
{
    size_t n = 0;
    out[n++] = 8;
    for (size_t s = 16; s <= 128; s += 16)
        out[n++] = s;
    for (size_t base = 128; base < MP_HEAP_MAX_CLASS; base *= 2)
        for (size_t j = 1; j <= 8 && n < MP_HEAP_CLASSES; j++)
            out[n++] = base + j * (base / 8);
    return n;
}

/* ------------------------------------------------------------------------------------------------
 * The contract suite, part 1: every size up to MP_HEAP_MAX_CLASS
 * ---------------------------------------------------------------------------------------------- */

typedef struct blk {
    unsigned char *p;
    size_t size, usable;
    uint64_t seed;
} blk;

static int blk_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const blk *)a)->p, y = (uintptr_t)((const blk *)b)->p;
    return (x > y) - (x < y);
}

/* True if no two of the blocks' usable ranges overlap (sorts b). */
static bool disjoint(blk *b, size_t n, const char *what)
{
    qsort(b, n, sizeof *b, blk_cmp);
    for (size_t i = 0; i + 1 < n; i++) {
        if (b[i].p + (b[i].usable ? b[i].usable : 1) > b[i + 1].p) {
            printf("  %s: blocks %p (+%zu) and %p overlap\n", what, (void *)b[i].p, b[i].usable,
                   (void *)b[i + 1].p);
            return false;
        }
    }
    return true;
}

/* The sizes of the sweep: 0..4096, then each class's size and its neighbours, and a stride of
 * about 1/32 of the size, up to MP_HEAP_MAX_CLASS. Returns the count; *out is malloc'd. */
static size_t sweep_sizes(size_t **out)
{
    size_t cap = 8192, n = 0;
    size_t *s = malloc(cap * sizeof *s);
    if (s == NULL)
        return 0;
    for (size_t i = 0; i <= 4096; i++)
        s[n++] = i;
    size_t next = 4097;
    for (size_t c = 0; c < MP_HEAP_CLASSES && n + 8 < cap; c++) {
        if (cls[c] <= 4096)
            continue;
        while (next < cls[c] - 1 && n + 8 < cap) {
            s[n++] = next;
            next += next / 32 + 13;
        }
        s[n++] = cls[c] - 1;
        s[n++] = cls[c];
        if (cls[c] < MP_HEAP_MAX_CLASS)
            s[n++] = cls[c] + 1;
        next = cls[c] + 2;
    }
    *out = s;
    return n;
}

typedef struct sweep {
    const target *t;
    struct mp_heap_stats base; /* before the batch */
    blk *b;
    size_t nb;
    uint64_t per_class[MP_HEAP_CLASSES];
    uint64_t bytes, total;
    tally usable, align, place, klass, waste, content, stats;
} sweep;

/* Checks the live batch (statistics, overlap, contents), frees it three ways and checks again. */
static void sweep_batch_end(sweep *w)
{
    const target *t = w->t;
    struct mp_heap_stats s = t_stats(t);
    tally_expect(&w->stats,
           s.blocks_in_use - w->base.blocks_in_use == w->nb &&
               s.bytes_in_use - w->base.bytes_in_use == w->bytes &&
               s.large_in_use == w->base.large_in_use,
           "%s: batch of %zu blocks, %" PRIu64 " bytes: stats say %" PRIu64 " blocks, %" PRIu64
           " bytes, %" PRIu64 " large more",
           t->name, w->nb, w->bytes, s.blocks_in_use - w->base.blocks_in_use,
           s.bytes_in_use - w->base.bytes_in_use, s.large_in_use - w->base.large_in_use);
    for (size_t c = 0; c < MP_HEAP_CLASSES; c++)
        tally_expect(&w->klass,
               s.classes[c].blocks_in_use - w->base.classes[c].blocks_in_use == w->per_class[c] &&
                   s.classes[c].allocs - w->base.classes[c].allocs == w->per_class[c],
               "%s: class %zu bytes: %" PRIu64 " blocks in use more, %" PRIu64
               " allocs more; the batch put %" PRIu64 " there",
               t->name, cls[c], s.classes[c].blocks_in_use - w->base.classes[c].blocks_in_use,
               s.classes[c].allocs - w->base.classes[c].allocs, w->per_class[c]);
    tally_expect(&w->stats, stats_sane(t, &s), "%s: statistics inconsistent", t->name);
    for (size_t i = 0; i < w->nb; i++)
        tally_expect(&w->content, filled(w->b[i].p, w->b[i].usable, w->b[i].usable, w->b[i].seed),
               "%s: block of %zu bytes at %p lost its contents", t->name, w->b[i].size,
               (void *)w->b[i].p);
    /* Free in address order (not allocation order): free, free_sized(asked), free_sized(usable). */
    tally_expect(&w->place, disjoint(w->b, w->nb, t->name), "%s: live blocks overlap", t->name);
    for (size_t i = 0; i < w->nb; i++) {
        if (i % 3 == 0)
            t_free(t, w->b[i].p);
        else
            t_free_sized(t, w->b[i].p, i % 3 == 1 ? w->b[i].size : w->b[i].usable);
    }
    s = t_stats(t);
    tally_expect(&w->stats,
           s.blocks_in_use == w->base.blocks_in_use && s.bytes_in_use == w->base.bytes_in_use &&
               s.frees - w->base.frees == w->nb && s.allocs - w->base.allocs == w->nb,
           "%s: after freeing a batch of %zu: in use %" PRIu64 " (was %" PRIu64
           "), allocs +%" PRIu64 ", frees +%" PRIu64,
           t->name, w->nb, s.blocks_in_use, w->base.blocks_in_use, s.allocs - w->base.allocs,
           s.frees - w->base.frees);
    for (size_t c = 0; c < MP_HEAP_CLASSES; c++)
        tally_expect(&w->klass, s.classes[c].blocks_in_use == w->base.classes[c].blocks_in_use,
               "%s: class %zu bytes keeps %" PRIu64 " blocks in use after freeing all", t->name,
               cls[c], s.classes[c].blocks_in_use - w->base.classes[c].blocks_in_use);
    w->base = s;
    w->nb = 0;
    w->bytes = 0;
    memset(w->per_class, 0, sizeof w->per_class);
}

static void test_sizes(const target *t)
{
    size_t *sizes = NULL;
    size_t nsizes = sweep_sizes(&sizes);
    static sweep w;
    memset(&w, 0, sizeof w);
    w.t = t;
    w.b = malloc(nsizes * sizeof *w.b);
    if (!CHECK("sizes: test memory", sizes != NULL && w.b != NULL)) {
        free(sizes);
        free(w.b);
        return;
    }
    w.base = t_stats(t);
    tally got = {0};
    for (size_t i = 0; i <= nsizes; i++) {
        if (i == nsizes || w.bytes > 6 * MiB)
            sweep_batch_end(&w);
        if (i == nsizes)
            break;
        size_t n = sizes[i];
        blk x = {t_alloc(t, n), n, 0, i + 1};
        if (!tally_expect(&got, x.p != NULL, "%s: alloc(%zu) failed, errno %d", t->name, n, errno))
            continue;
        x.usable = t_usable(t, x.p);
        size_t c = class_of(n);
        tally_expect(&w.usable, x.usable >= n, "%s: usable size %zu < %zu asked", t->name, x.usable, n);
        tally_expect(&w.usable, x.usable == cls[c],
               "%s: alloc(%zu): usable size %zu, not its class's %zu", t->name, n, x.usable,
               cls[c]);
        /* "requests of 65 to 128 bytes may waste up to 15/80 (18.75%) of their block; above 128
         * bytes no request wastes more than 12.5%" */
        tally_expect(&w.waste,
               n <= 64 || (n <= 128 ? 80 * (x.usable - n) <= 15 * x.usable
                                    : 8 * (x.usable - n) <= x.usable),
               "%s: alloc(%zu) wastes %zu of %zu bytes", t->name, n, x.usable - n, x.usable);
        tally_expect(&w.align, aligned_to(x.p, natural_align(n)), "%s: alloc(%zu) = %p not %zu-aligned",
               t->name, n, (void *)x.p, natural_align(n));
        tally_expect(&w.place, in_buffer(t, x.p, x.usable), "%s: alloc(%zu) = %p outside the buffer",
               t->name, n, (void *)x.p);
        fill(x.p, x.usable, x.seed);
        w.b[w.nb++] = x;
        w.bytes += x.usable;
        w.total++;
        if (c < MP_HEAP_CLASSES)
            w.per_class[c]++;
    }
    CHECK("sizes: every size up to MP_HEAP_MAX_CLASS allocates", got.bad == 0);
    CHECK("sizes: usable size >= size asked, and the class's size", w.usable.bad == 0);
    CHECK("sizes: waste at most 18.75% for 65..128 bytes, 12.5% above", w.waste.bad == 0);
    CHECK("sizes: blocks aligned to 16 (8 for sizes <= 8)", w.align.bad == 0);
    CHECK("sizes: blocks disjoint (and inside the buffer)", w.place.bad == 0);
    CHECK("sizes: every usable byte keeps what was written", w.content.bad == 0);
    CHECK("sizes: per-class statistics count each block in its class", w.klass.bad == 0);
    CHECK("sizes: allocs, frees, blocks_in_use, bytes_in_use exact", w.stats.bad == 0);
    free(sizes);
    free(w.b);
}

/* alloc(0) gives unique, freeable blocks; so do calloc(0, n) and realloc(NULL, 0). */
static void test_zero_size(const target *t)
{
    enum { N = 100 };
    blk b[N];
    tally ta = {0};
    struct mp_heap_stats s0 = t_stats(t);
    for (size_t i = 0; i < N; i++) {
        b[i].p = i % 3 == 0   ? t_alloc(t, 0)
                 : i % 3 == 1 ? t_calloc(t, 0, 16)
                              : t_realloc(t, NULL, 0);
        b[i].usable = 1; /* a unique address: one byte's room for the overlap check */
        tally_expect(&ta, b[i].p != NULL && aligned_to(b[i].p, 8), "%s: zero-size block %zu = %p",
               t->name, i, (void *)b[i].p);
        if (b[i].p == NULL) {
            CHECK("zero size: alloc(0) gives a block", 0);
            return;
        }
    }
    CHECK("zero size: alloc(0), calloc(0, n), realloc(NULL, 0) give 8-aligned blocks", ta.bad == 0);
    struct mp_heap_stats s1 = t_stats(t);
    CHECK("zero size: each is a block in use", s1.blocks_in_use - s0.blocks_in_use == N);
    CHECK("zero size: the blocks are unique", disjoint(b, N, t->name));
    for (size_t i = 0; i < N; i++)
        t_free(t, b[i].p);
    s1 = t_stats(t);
    CHECK("zero size: all freed", s1.blocks_in_use == s0.blocks_in_use);
}

/* ------------------------------------------------------------------------------------------------
 * The contract suite, part 2: large blocks
 * ---------------------------------------------------------------------------------------------- */

static void test_large(const target *t)
{
    size_t sizes[80], n = 0;
    for (unsigned k = 5; k <= 20; k++) {
        size_t p2 = (size_t)1 << k;
        sizes[n++] = p2 - 32;
        sizes[n++] = p2;
        sizes[n++] = p2 + 32;
    }
    const size_t big[] = {5 * MiB, 5 * MiB + 1, 9 * MiB + 4095, 17 * MiB - 1, 25 * MiB};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        if (big[i] <= t->max_large)
            sizes[n++] = big[i];

    blk b[80];
    size_t nb = 0, large = 0;
    uint64_t bytes = 0;
    tally ta = {0}, content = {0};
    struct mp_heap_stats s0 = t_stats(t);
    for (size_t i = 0; i < n; i++) {
        blk x = {t_alloc(t, sizes[i]), sizes[i], 0, 1000 + i};
        if (!tally_expect(&ta, x.p != NULL, "%s: alloc(%zu) failed, errno %d", t->name, sizes[i], errno))
            continue;
        x.usable = t_usable(t, x.p);
        tally_expect(&ta,
               x.usable >= x.size && aligned_to(x.p, natural_align(x.size)) &&
                   in_buffer(t, x.p, x.usable),
               "%s: alloc(%zu) = %p, usable %zu", t->name, x.size, (void *)x.p, x.usable);
        fill(x.p, x.usable, x.seed);
        b[nb++] = x;
        bytes += x.usable;
        large += x.size > MP_HEAP_MAX_CLASS;
    }
    CHECK("large: 2^k +- 32 and 5..25 MiB allocate, usable >= size, aligned", ta.bad == 0);
    struct mp_heap_stats s1 = t_stats(t);
    CHECK("large: large_in_use counts the blocks above MP_HEAP_MAX_CLASS",
          s1.large_in_use - s0.large_in_use == large);
    CHECK("large: blocks_in_use and bytes_in_use exact",
          s1.blocks_in_use - s0.blocks_in_use == nb && s1.bytes_in_use - s0.bytes_in_use == bytes);
    CHECK("large: statistics consistent", stats_sane(t, &s1));
    for (size_t i = 0; i < nb; i++)
        tally_expect(&content, filled(b[i].p, b[i].usable, b[i].usable, b[i].seed),
               "%s: block of %zu lost its contents", t->name, b[i].size);
    CHECK("large: contents kept", content.bad == 0);
    CHECK("large: blocks disjoint", disjoint(b, nb, t->name));
    for (size_t i = 0; i < nb; i++) {
        if (i % 2)
            t_free(t, b[i].p);
        else
            t_free_sized(t, b[i].p, b[i].size);
    }
    s1 = t_stats(t);
    CHECK("large: all freed: no block, byte or large block in use",
          s1.blocks_in_use == s0.blocks_in_use && s1.bytes_in_use == s0.bytes_in_use &&
              s1.large_in_use == s0.large_in_use);
    CHECK("large: frees exact", s1.frees - s0.frees == nb && s1.allocs - s0.allocs == nb);

    /* A freed large block may be kept for reuse; reused, it must still come zeroed from calloc. */
    size_t sz = MiB + 1;
    unsigned char *p = t_alloc(t, sz);
    if (!CHECK("large: 1 MiB + 1", p != NULL))
        return;
    size_t u = t_usable(t, p);
    memset(p, 0xAB, u);
    t_free(t, p);
    struct mp_heap_stats s2 = t_stats(t);
    if (t->lo == NULL && t->heap != NULL)
        printf("  %s: after freeing a 1 MiB block: large_cached %" PRIu64 "\n", t->name,
               s2.large_cached);
    unsigned char *q = t_calloc(t, 1, sz);
    if (CHECK("large: calloc after a dirty large free", q != NULL)) {
        CHECK("large: calloc'd large block is zero, reused or not", all_zero(q, sz));
        t_free(t, q);
    }
    if (t->flags & MP_ZERO) {
        q = t_alloc(t, sz);
        if (CHECK("zero heap: large alloc", q != NULL)) {
            CHECK("zero heap: a large block comes zeroed", all_zero(q, sz));
            memset(q, 0x5A, sz);
            t_free(t, q);
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * The contract suite, part 3: aligned_alloc
 * ---------------------------------------------------------------------------------------------- */

static void test_aligned(const target *t)
{
    tally ta = {0}, klass = {0}, content = {0};
    size_t aligns[24], na = 0;
    for (size_t a = 1; a <= 64 * KiB; a *= 2)
        aligns[na++] = a;
    if (t->max_large >= 4 * MiB)
        aligns[na++] = MiB;
    for (size_t ai = 0; ai < na; ai++) {
        size_t a = aligns[ai];
        const size_t sizes[] = {0,
                                1,
                                7,
                                8,
                                9,
                                16,
                                17,
                                24,
                                40,
                                100,
                                a - 1 ? a - 1 : 1,
                                a,
                                a + 1,
                                3 * a + 5,
                                4097,
                                MP_HEAP_MAX_CLASS,
                                MP_HEAP_MAX_CLASS + 1};
        enum { NS = sizeof sizes / sizeof sizes[0] };
        blk b[NS];
        size_t nb = 0, large = 0;
        struct mp_heap_stats s0 = t_stats(t);
        for (size_t i = 0; i < NS; i++) {
            size_t n = sizes[i];
            blk x = {t_aligned(t, a, n), n, 0, 7 * ai + i};
            if (!tally_expect(&ta, x.p != NULL, "%s: aligned_alloc(%zu, %zu) failed, errno %d", t->name,
                        a, n, errno))
                continue;
            x.usable = t_usable(t, x.p);
            tally_expect(&ta,
                   aligned_to(x.p, a) && aligned_to(x.p, natural_align(n)) && x.usable >= n &&
                       in_buffer(t, x.p, x.usable),
                   "%s: aligned_alloc(%zu, %zu) = %p, usable %zu", t->name, a, n, (void *)x.p,
                   x.usable);
            /* "Alignments up to 4096 come from the size classes (the smallest class that is a
             * multiple of align); larger ones are large blocks." Exact from 32 on, where no other
             * class would do; below it only the size and the alignment are promised. */
            bool is_large = a > 4096 || n > MP_HEAP_MAX_CLASS;
            large += is_large;
            if (!is_large && a >= 32) {
                size_t c = 0;
                while (c < MP_HEAP_CLASSES && (cls[c] < n || cls[c] % a != 0))
                    c++;
                struct mp_heap_stats s = t_stats(t);
                tally_expect(&klass,
                       c < MP_HEAP_CLASSES &&
                           s.classes[c].blocks_in_use > s0.classes[c].blocks_in_use,
                       "%s: aligned_alloc(%zu, %zu) not from class %zu", t->name, a, n,
                       c < MP_HEAP_CLASSES ? cls[c] : 0);
            }
            fill(x.p, x.usable, x.seed);
            b[nb++] = x;
        }
        struct mp_heap_stats s1 = t_stats(t);
        tally_expect(&klass, s1.large_in_use - s0.large_in_use == large,
               "%s: align %zu: %" PRIu64 " large blocks in use more, expected %zu", t->name, a,
               s1.large_in_use - s0.large_in_use, large);
        for (size_t i = 0; i < nb; i++)
            tally_expect(&content, filled(b[i].p, b[i].usable, b[i].usable, b[i].seed),
                   "%s: aligned block (%zu, %zu) lost its contents", t->name, a, b[i].size);
        tally_expect(&content, disjoint(b, nb, t->name), "%s: aligned blocks overlap", t->name);
        for (size_t i = 0; i < nb; i++)
            t_free(t, b[i].p);
        s1 = t_stats(t);
        tally_expect(&ta, s1.blocks_in_use == s0.blocks_in_use && s1.large_in_use == s0.large_in_use,
               "%s: align %zu: blocks left in use after freeing all", t->name, a);
    }
    CHECK("aligned: 1 .. 64 KiB and 1 MiB alignments honoured, usable >= size", ta.bad == 0);
    CHECK("aligned: up to 4096 from the classes, larger alignments are large blocks",
          klass.bad == 0);
    CHECK("aligned: contents kept, blocks disjoint", content.bad == 0);

    /* Not a power of two: EINVAL. */
    const size_t bad[] = {0, 3, 24, 48, 100, 4095, 65537, 3 * MiB, SIZE_MAX,
                         ((size_t)1 << (sizeof(size_t) * 8 - 24)) + 1}; /* 2^40 + 1 */
    tally inval = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        void *p = t_aligned(t, bad[i], 64);
        tally_expect(&inval, p == NULL && errno == EINVAL, "%s: aligned_alloc(%zu, 64) = %p, errno %d",
               t->name, bad[i], p, errno);
        if (p != NULL)
            t_free(t, p);
    }
    CHECK("aligned: alignments 0, 3, 24, ... (not powers of two) give EINVAL", inval.bad == 0);

    /* Above 1 MiB: ENOMEM ("a block so aligned would leave no room for the header"); 2^62 and 2^63
     * (size_t's top bits) could not be had in any address space anyway. */
    const size_t huge_align[] = {2 * MiB, 64 * MiB, SIZE_MAX / 4 + 1, SIZE_MAX / 2 + 1};
    tally nomem = {0};
    for (size_t i = 0; i < sizeof huge_align / sizeof huge_align[0]; i++) {
        errno = 0;
        void *p = t_aligned(t, huge_align[i], 1);
        tally_expect(&nomem, p == NULL && errno == ENOMEM, "%s: aligned_alloc(%zu, 1) = %p, errno %d",
               t->name, huge_align[i], p, errno);
    }
    errno = 0;
    void *p = t_aligned(t, 64, (size_t)PTRDIFF_MAX + 1);
    tally_expect(&nomem, p == NULL && errno == ENOMEM, "%s: aligned_alloc(64, PTRDIFF_MAX + 1): errno %d",
           t->name, errno);
    errno = 0;
    p = t_aligned(t, 4096, SIZE_MAX - 100);
    tally_expect(&nomem, p == NULL && errno == ENOMEM,
           "%s: aligned_alloc(4096, SIZE_MAX - 100): errno %d", t->name, errno);
    CHECK("aligned: alignment above 1 MiB or a size above PTRDIFF_MAX gives ENOMEM",
          nomem.bad == 0);
}

/* ------------------------------------------------------------------------------------------------
 * The contract suite, part 4: calloc, impossible sizes, realloc, free
 * ---------------------------------------------------------------------------------------------- */

static void test_calloc(const target *t)
{
    tally ta = {0};
    const size_t shapes[][2] = {{1, 1},
                                {1, 8},
                                {3, 5},
                                {2, 24},
                                {16, 16},
                                {7, 100},
                                {1, 4096},
                                {100, 100},
                                {1, 65537},
                                {3, 70000},
                                {1, MP_HEAP_MAX_CLASS},
                                {4, MP_HEAP_MAX_CLASS},
                                {1000, 3000}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        size_t n = shapes[i][0] * shapes[i][1];
        /* Dirty a block of the same class first, so a reused block must be cleared. */
        unsigned char *d = t_alloc(t, n);
        if (d != NULL) {
            memset(d, 0xEE, t_usable(t, d));
            t_free(t, d);
        }
        unsigned char *p = t_calloc(t, shapes[i][0], shapes[i][1]);
        if (!tally_expect(&ta, p != NULL, "%s: calloc(%zu, %zu) failed", t->name, shapes[i][0],
                    shapes[i][1]))
            continue;
        tally_expect(&ta, all_zero(p, n) && t_usable(t, p) >= n && aligned_to(p, natural_align(n)),
               "%s: calloc(%zu, %zu) = %p not zeroed, short or misaligned", t->name, shapes[i][0],
               shapes[i][1], (void *)p);
        t_free(t, p);
    }
    CHECK("calloc: n * size zeroed bytes, even over a reused dirty block", ta.bad == 0);

    const size_t half_bits = (size_t)1 << (sizeof(size_t) * 4); /* 2^32: squared, it overflows */
    const size_t over[][2] = {
        {SIZE_MAX / 2, 3}, {SIZE_MAX, SIZE_MAX},         {half_bits, half_bits},
        {3, SIZE_MAX / 2}, {1, (size_t)PTRDIFF_MAX + 1}, {2, (size_t)PTRDIFF_MAX / 2 + 1}};
    tally ov = {0};
    for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
        errno = 0;
        void *p = t_calloc(t, over[i][0], over[i][1]);
        tally_expect(&ov, p == NULL && errno == ENOMEM, "%s: calloc(%zu, %zu) = %p, errno %d", t->name,
               over[i][0], over[i][1], p, errno);
    }
    CHECK("calloc: n * size overflowing (or above PTRDIFF_MAX) gives NULL, ENOMEM", ov.bad == 0);
}

static void test_huge(const target *t)
{
    const size_t sizes[] = {(size_t)PTRDIFF_MAX + 1, SIZE_MAX, SIZE_MAX - 15, SIZE_MAX - 4096,
                            (size_t)PTRDIFF_MAX};
    enum { N = sizeof sizes / sizeof sizes[0] };
    tally ta = {0};
    struct mp_heap_stats s0 = t_stats(t);
    for (size_t i = 0; i < N; i++) {
        errno = 0;
        void *p = t_alloc(t, sizes[i]);
        tally_expect(&ta, p == NULL && errno == ENOMEM, "%s: alloc(%zu) = %p, errno %d", t->name,
               sizes[i], p, errno);
    }
    CHECK("huge: sizes above PTRDIFF_MAX (and PTRDIFF_MAX itself) give NULL, ENOMEM", ta.bad == 0);
    struct mp_heap_stats s1 = t_stats(t);
    if (!CHECK("huge: each refused alloc counted in failed_allocs",
               s1.failed_allocs - s0.failed_allocs == N))
        printf("  %s: failed_allocs +%" PRIu64 " for %d refusals\n", t->name,
               s1.failed_allocs - s0.failed_allocs, (int)N);
    CHECK("huge: nothing allocated by refusals",
          s1.allocs == s0.allocs && s1.blocks_in_use == s0.blocks_in_use);
}

/* The realloc ladder: up across every kind of boundary, then down, then jumps. */
static void test_realloc(const target *t)
{
    size_t steps[64], n = 0;
    const size_t up[] = {1,
                         2,
                         8,
                         9,
                         16,
                         17,
                         24,
                         25,
                         48,
                         64,
                         65,
                         100,
                         128,
                         129,
                         1000,
                         4096,
                         4097,
                         10000,
                         65536,
                         65537,
                         MP_HEAP_MAX_CLASS - 1,
                         MP_HEAP_MAX_CLASS,
                         MP_HEAP_MAX_CLASS + 1,
                         MP_HEAP_MAX_CLASS + 4096,
                         MiB,
                         3 * MiB + 7,
                         5 * MiB};
    const size_t nup = sizeof up / sizeof up[0];
    for (size_t i = 0; i < nup; i++)
        if (up[i] <= t->max_large)
            steps[n++] = up[i];
    for (size_t i = n - 1; i-- > 0;)
        steps[n++] = steps[i];
    const size_t jumps[] = {MiB + 3, 5, 2 * MiB, 300, MP_HEAP_MAX_CLASS + 1, MP_HEAP_MAX_CLASS, 17};
    for (size_t i = 0; i < sizeof jumps / sizeof jumps[0]; i++)
        if (jumps[i] <= t->max_large)
            steps[n++] = jumps[i];

    tally ta = {0}, content = {0}, st = {0};
    struct mp_heap_stats s0 = t_stats(t);
    unsigned char *p = t_realloc(t, NULL, steps[0]);
    if (!CHECK("realloc: realloc(NULL, n) allocates", p != NULL))
        return;
    size_t usable = t_usable(t, p);
    uint64_t seed = 1;
    fill(p, usable, seed);
    for (size_t i = 1; i < n; i++) {
        size_t size = steps[i];
        unsigned char *q = t_realloc(t, p, size);
        if (!tally_expect(&ta, q != NULL, "%s: realloc(%zu -> %zu) failed, errno %d", t->name,
                    steps[i - 1], size, errno))
            break;
        size_t qu = t_usable(t, q);
        tally_expect(&ta, qu >= size && aligned_to(q, natural_align(size)) && in_buffer(t, q, qu),
               "%s: realloc to %zu = %p, usable %zu", t->name, size, (void *)q, qu);
        size_t keep = usable < size ? usable : size;
        tally_expect(&content, filled(q, keep, usable, seed),
               "%s: realloc %zu -> %zu (usable %zu) lost the first %zu bytes", t->name,
               steps[i - 1], size, usable, keep);
        struct mp_heap_stats s = t_stats(t);
        tally_expect(&st,
               s.blocks_in_use - s0.blocks_in_use == 1 &&
                   s.large_in_use - s0.large_in_use ==
                       (q == p ? s.large_in_use - s0.large_in_use : (size > MP_HEAP_MAX_CLASS)) &&
                   s.bytes_in_use - s0.bytes_in_use == qu && stats_sane(t, &s),
               "%s: after realloc to %zu: %" PRIu64 " blocks, %" PRIu64 " large, %" PRIu64
               " bytes in use more (usable %zu)",
               t->name, size, s.blocks_in_use - s0.blocks_in_use, s.large_in_use - s0.large_in_use,
               s.bytes_in_use - s0.bytes_in_use, qu);
        p = q;
        usable = qu;
        fill(p, usable, ++seed);
    }
    CHECK("realloc: every step succeeds, aligned, usable >= size", ta.bad == 0);
    CHECK("realloc: keeps min(old usable size, new size) bytes, across classes and large",
          content.bad == 0);
    CHECK("realloc: one block in use throughout, bytes_in_use its usable size", st.bad == 0);

    /* Growing within the block's class (or large size) keeps the block where it is. */
    unsigned char *r = t_realloc(t, p, usable);
    CHECK("realloc: to its own usable size, the block stays", r == p);
    t_free(t, r);
    unsigned char *a = t_alloc(t, 65), *b2;
    if (CHECK("realloc: alloc(65)", a != NULL)) {
        size_t au = t_usable(t, a);
        b2 = t_realloc(t, a, au);
        CHECK("realloc: growing within the class keeps the block", b2 == a);
        t_free(t, b2);
    }
    a = t_alloc(t, MiB + 100);
    if (t->max_large >= 2 * MiB && CHECK("realloc: large alloc", a != NULL)) {
        size_t au = t_usable(t, a);
        b2 = t_realloc(t, a, au);
        CHECK("realloc: a large block grown within its usable size stays", b2 == a);
        t_free(t, b2);
    } else if (a != NULL) {
        t_free(t, a);
    }

    /* realloc(p, 0) frees p and returns NULL, errno untouched; for a class and a large block. */
    const size_t zs[] = {100, MP_HEAP_MAX_CLASS + 1};
    for (size_t i = 0; i < 2; i++) {
        struct mp_heap_stats sa = t_stats(t);
        void *z = t_alloc(t, zs[i]);
        errno = 4321;
        void *zr = t_realloc(t, z, 0);
        int e = errno;
        struct mp_heap_stats sb = t_stats(t);
        CHECK("realloc: realloc(p, 0) frees p, returns NULL, errno untouched",
              z != NULL && zr == NULL && e == 4321 && sb.blocks_in_use == sa.blocks_in_use &&
                  sb.large_in_use == sa.large_in_use);
    }

    /* free_sized may name "the size it asked for", which after a realloc is the size given to
     * realloc, even when realloc kept the block where it was (in its old, larger class, or as a
     * large block). The smaller class exists, so a wrong lookup would find a pool. */
    const size_t shrink[][2] = {{150000, 90000}, {4000, 2100}, {MP_HEAP_MAX_CLASS + 50000, 200000}};
    for (size_t i = 0; i < 3; i++) {
        t_free(t, t_alloc(t, shrink[i][1]));
        struct mp_heap_stats sa = t_stats(t);
        unsigned char *big = t_alloc(t, shrink[i][0]), *r2;
        if (!CHECK("realloc: alloc for a shrink", big != NULL))
            continue;
        r2 = t_realloc(t, big, shrink[i][1]);
        if (!CHECK("realloc: shrink", r2 != NULL))
            continue;
        t_free_sized(t, r2, shrink[i][1]);
        struct mp_heap_stats sb = t_stats(t);
        if (!CHECK("realloc: free_sized with the size given to realloc frees the block",
                   sb.blocks_in_use == sa.blocks_in_use && sb.bytes_in_use == sa.bytes_in_use &&
                       sb.large_in_use == sa.large_in_use))
            printf("  %s: alloc(%zu), realloc to %zu (%s), free_sized(%zu): %" PRIu64
                   " blocks, %" PRIu64 " bytes left in use\n",
                   t->name, shrink[i][0], shrink[i][1], r2 == big ? "in place" : "moved",
                   shrink[i][1], sb.blocks_in_use - sa.blocks_in_use,
                   sb.bytes_in_use - sa.bytes_in_use);
    }

    /* A zero-size block with a large alignment is a block like any other: realloc grows it. */
    for (size_t al = 16; al <= 64 * KiB; al *= 4) {
        unsigned char *z = t_aligned(t, al, 0), *z2;
        if (!CHECK("realloc: aligned_alloc(a, 0)", z != NULL))
            continue;
        errno = 0;
        z2 = t_realloc(t, z, 100);
        if (!CHECK("realloc: an aligned zero-size block grows", z2 != NULL)) {
            printf("  %s: aligned_alloc(%zu, 0) = %p (usable %zu); realloc to 100: errno %d\n",
                   t->name, al, (void *)z, t_usable(t, z), errno);
            t_free(t, z);
            continue;
        }
        t_free(t, z2);
    }

    /* A refused realloc leaves the block as it was. */
    unsigned char *f = t_alloc(t, 300);
    if (CHECK("realloc: alloc(300)", f != NULL)) {
        size_t fu = t_usable(t, f);
        fill(f, fu, 99);
        const size_t no[] = {(size_t)PTRDIFF_MAX + 1, SIZE_MAX, SIZE_MAX - 8};
        tally keep = {0};
        for (size_t i = 0; i < 3; i++) {
            errno = 0;
            void *g = t_realloc(t, f, no[i]);
            tally_expect(&keep,
                   g == NULL && errno == ENOMEM && t_usable(t, f) == fu && filled(f, fu, fu, 99),
                   "%s: realloc(p, %zu) = %p, errno %d", t->name, no[i], g, errno);
        }
        CHECK("realloc: beyond PTRDIFF_MAX gives NULL, ENOMEM, and leaves p untouched",
              keep.bad == 0);
        t_free(t, f);
    }
    struct mp_heap_stats s1 = t_stats(t);
    CHECK("realloc: all freed", s1.blocks_in_use == s0.blocks_in_use &&
                                    s1.bytes_in_use == s0.bytes_in_use &&
                                    s1.large_in_use == s0.large_in_use);
}

static void test_free_null(const target *t)
{
    struct mp_heap_stats s0 = t_stats(t);
    t_free(t, NULL);
    t_free(t, NULL);
    struct mp_heap_stats s1 = t_stats(t);
    CHECK("free(NULL) does nothing", s1.frees == s0.frees && s1.blocks_in_use == s0.blocks_in_use);
    CHECK("usable size of NULL is 0", t_usable(t, NULL) == 0);
}

/* MP_ZERO: every block, reused or fresh, class or aligned, comes zeroed. */
static void test_zero_flag(const target *t)
{
    tally ta = {0};
    const size_t sizes[] = {1, 8, 24, 100, 1000, 4096, 50000, MP_HEAP_MAX_CLASS};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            unsigned char *p = round ? t_aligned(t, 256, sizes[i]) : t_alloc(t, sizes[i]);
            if (!tally_expect(&ta, p != NULL, "%s: alloc(%zu) failed", t->name, sizes[i]))
                continue;
            size_t u = t_usable(t, p);
            tally_expect(&ta, all_zero(p, sizes[i]), "%s: MP_ZERO block of %zu not zero", t->name,
                   sizes[i]);
            memset(p, 0xC7, u);
            t_free(t, p);
        }
    }
    CHECK("zero heap: blocks come zeroed, also when reused", ta.bad == 0);
}

/* Everything a target runs: the whole contract suite. */
static void suite(const target *t)
{
    lap();
    errs_clear();
    struct mp_heap_stats s0 = t_stats(t);
    test_sizes(t);
    test_zero_size(t);
    test_large(t);
    test_aligned(t);
    test_calloc(t);
    test_huge(t);
    test_realloc(t);
    test_free_null(t);
    if (t->flags & MP_ZERO)
        test_zero_flag(t);
    struct mp_heap_stats s1 = t_stats(t);
    CHECK("suite: nothing left in use", s1.blocks_in_use == s0.blocks_in_use &&
                                            s1.bytes_in_use == s0.bytes_in_use &&
                                            s1.large_in_use == s0.large_in_use);
    CHECK("suite: statistics consistent", stats_sane(t, &s1));
    if (!CHECK("suite: correct use reports no error", errs.n == 0))
        errs_show();
    if (t->source != NULL)
        CHECK("suite: the source contract kept (sizes and alignments asked, regions given back)",
              t->source->contract_violations == 0);
    printf("-- %s: %.2f s\n", t->name, lap());
}

/* ------------------------------------------------------------------------------------------------
 * Creating heaps, the class table, statistics output
 * ---------------------------------------------------------------------------------------------- */

static void test_create(void)
{
    mp_heap *h = mp_heap_create(NULL);
    CHECK("create: NULL options give a default heap", h != NULL);
    mp_heap_destroy(h);
    mp_heap_destroy(NULL); /* does nothing */

    const unsigned bad_flags[] = {1u << 4, 1u << 8, 1u << 31};
    for (size_t i = 0; i < 3; i++) {
        errno = 0;
        h = mp_heap_create(&(mp_heap_opts){.flags = bad_flags[i]});
        CHECK("create: an unknown flag gives EINVAL", h == NULL && errno == EINVAL);
        mp_heap_destroy(h);
    }
    static alignas(64) unsigned char buf[1 << 20];
    errno = 0;
    h = mp_heap_create(
        &(mp_heap_opts){.flags = MP_THREAD_SAFE, .buffer = buf, .buffer_size = sizeof buf});
    CHECK("create: MP_THREAD_SAFE with a buffer gives EINVAL", h == NULL && errno == EINVAL);
    mp_heap_destroy(h);
    errno = 0;
    h = mp_heap_create(&(mp_heap_opts){.buffer = buf, .buffer_size = 16});
    CHECK("create: a buffer too small for the bookkeeping gives EINVAL",
          h == NULL && errno == EINVAL);
    mp_heap_destroy(h);
    src *s = src_new();
    mp_source half = {src_map, NULL, s}, other = {NULL, src_unmap, s};
    errno = 0;
    h = mp_heap_create(&(mp_heap_opts){.source = &half});
    CHECK("create: a source without unmap gives EINVAL", h == NULL && errno == EINVAL);
    mp_heap_destroy(h);
    errno = 0;
    h = mp_heap_create(&(mp_heap_opts){.source = &other});
    CHECK("create: a source without map gives EINVAL", h == NULL && errno == EINVAL);
    mp_heap_destroy(h);

    /* Flags that are fine together. */
    const unsigned good[] = {
        0,         MP_ZERO,        MP_CHECKED,
        MP_SECURE, MP_THREAD_SAFE, MP_THREAD_SAFE | MP_CHECKED | MP_SECURE | MP_ZERO};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        h = mp_heap_create(&(mp_heap_opts){.flags = good[i]});
        void *p = mp_heap_alloc(h, 100);
        CHECK("create: every combination of known flags works", h != NULL && p != NULL);
        mp_heap_free(h, p);
        mp_heap_destroy(h);
    }

    /* The name: kept, truncated to MP_NAME_MAX - 1 bytes. */
    const char *longname = "a-heap-name-much-longer-than-thirty-two-bytes";
    h = mp_heap_create(&(mp_heap_opts){.name = longname});
    struct mp_heap_stats st;
    if (CHECK("create: a long name", h != NULL && mp_heap_stats(h, &st) == 0))
        CHECK("create: the name is truncated to MP_NAME_MAX - 1 bytes",
              strlen(st.name) == MP_NAME_MAX - 1 &&
                  strncmp(st.name, longname, MP_NAME_MAX - 1) == 0);
    CHECK("stats: NULL out gives EINVAL", mp_heap_stats(h, NULL) == EINVAL);
    CHECK("stats: NULL heap gives EINVAL", mp_heap_stats(NULL, &st) == EINVAL);
    mp_heap_destroy(h);

    /* A NULL heap. */
    errno = 0;
    void *p = mp_heap_alloc(NULL, 10);
    CHECK("alloc: a NULL heap gives EINVAL", p == NULL && errno == EINVAL);
    errno = 0;
    p = mp_heap_aligned_alloc(NULL, 64, 10);
    CHECK("aligned_alloc: a NULL heap gives EINVAL", p == NULL && errno == EINVAL);
    /* Creating a heap takes no class chunk: class pools come on first use. */
    h = mp_heap_create(&(mp_heap_opts){.source = &(mp_source){src_map, src_unmap, s}});
    size_t before = s->out;
    p = mp_heap_alloc(h, 24);
    CHECK("create: classes are made on first use", h != NULL && p != NULL && s->out > before);
    mp_heap_free(h, p);
    mp_heap_destroy(h);
    CHECK("create: destroy gives back every byte", s->out == 0 && s->maps == s->unmaps);
    free(s);
}

static void test_classes(void)
{
    size_t want[MP_HEAP_CLASSES + 8];
    size_t n = header_classes(want);
    CHECK("classes: the header's description gives MP_HEAP_CLASSES classes, the last "
          "MP_HEAP_MAX_CLASS",
          n == MP_HEAP_CLASSES && want[n - 1] == MP_HEAP_MAX_CLASS);
    mp_heap *h = mp_heap_create(NULL);
    struct mp_heap_stats s;
    if (!CHECK("classes: a heap and its stats", h != NULL && mp_heap_stats(h, &s) == 0)) {
        memcpy(cls, want, sizeof cls);
        mp_heap_destroy(h);
        return;
    }
    bool increasing = true, as_header = true;
    for (size_t i = 0; i < MP_HEAP_CLASSES; i++) {
        cls[i] = s.classes[i].size;
        if (i > 0 && cls[i] <= cls[i - 1])
            increasing = false;
        if (cls[i] != want[i])
            as_header = false;
    }
    CHECK("classes: stats list every class by increasing size, last MP_HEAP_MAX_CLASS",
          increasing && cls[MP_HEAP_CLASSES - 1] == MP_HEAP_MAX_CLASS);
    if (!CHECK("classes: the sizes are the header's (8, 16, 32..128 step 16, 8 per doubling)",
               as_header)) {
        printf("  classes reported:");
        for (size_t i = 0; i < 20; i++)
            printf(" %zu", cls[i]);
        printf(" ...\n");
    }
    if (!increasing) /* the rest would be meaningless: test against the header's */
        memcpy(cls, want, sizeof cls);
    mp_heap_destroy(h);
}

typedef struct textbuf {
    char text[1 << 16];
    size_t len;
} textbuf;

static void text_write(void *ctx, const char *text, size_t len)
{
    textbuf *b = ctx;
    if (b->len + len < sizeof b->text) {
        memcpy(b->text + b->len, text, len);
        b->len += len;
        b->text[b->len] = '\0';
    }
}

static void test_stats_write(void)
{
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.name = "writer"});
    void *p = mp_heap_alloc(h, 100), *q = mp_heap_alloc(h, MiB);
    struct mp_heap_stats s;
    static textbuf b;
    if (!CHECK("stats write: a heap", h && p && q && mp_heap_stats(h, &s) == 0))
        return;
    b.len = 0;
    CHECK("stats write: text", mp_heap_stats_write(&s, MP_FORMAT_TEXT, text_write, &b) == 0);
    CHECK("stats write: text names the heap and its counts",
          b.len > 0 && strstr(b.text, "writer") && strstr(b.text, "allocs"));
    b.len = 0;
    CHECK("stats write: JSON", mp_heap_stats_write(&s, MP_FORMAT_JSON, text_write, &b) == 0);
    size_t end = b.len;
    while (end > 0 && (b.text[end - 1] == '\n' || b.text[end - 1] == ' '))
        end--;
    CHECK("stats write: JSON is one object with the field names",
          b.len > 0 && b.text[0] == '{' && end > 0 && b.text[end - 1] == '}' &&
              strstr(b.text, "\"blocks_in_use\"") && strstr(b.text, "\"large_in_use\""));
    b.len = 0;
    CHECK("stats write: an unknown format gives EINVAL and writes nothing",
          mp_heap_stats_write(&s, 7, text_write, &b) == EINVAL && b.len == 0);
    CHECK("stats write: NULL stats or writer give EINVAL",
          mp_heap_stats_write(NULL, MP_FORMAT_TEXT, text_write, &b) == EINVAL &&
              mp_heap_stats_write(&s, MP_FORMAT_TEXT, NULL, &b) == EINVAL);
    mp_heap_free(h, p);
    mp_heap_free(h, q);
    mp_heap_destroy(h);
}

/* ------------------------------------------------------------------------------------------------
 * Reset, destroy, capacity, buffers, a failing source
 * ---------------------------------------------------------------------------------------------- */

/* Allocates a mix of class and large blocks (and a cached large block); the count allocated. */
static size_t alloc_mix(mp_heap *h, void **out, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t size = i % 97 == 5 ? MP_HEAP_MAX_CLASS + 1 + i : (i * 37) % 3000;
        out[k] = i % 11 == 0 ? mp_heap_aligned_alloc(h, 64, size) : mp_heap_alloc(h, size);
        if (out[k] != NULL)
            memset(out[k], (int)i, size < 64 ? size : 64);
        k += out[k] != NULL;
    }
    return k;
}

static void test_reset_destroy(void)
{
    src *s = src_new();
    mp_source source = {src_map, src_unmap, s};
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.source = &source, .name = "reset"});
    static void *ps[1000];
    if (!CHECK("reset: heap", h != NULL && s != NULL))
        return;
    size_t k = alloc_mix(h, ps, 1000);
    CHECK("reset: a mix allocates", k == 1000);
    struct mp_heap_stats s0, s1;
    mp_heap_stats(h, &s0);
    mp_heap_reset(h);
    mp_heap_stats(h, &s1);
    bool classes_empty = true;
    for (size_t i = 0; i < MP_HEAP_CLASSES; i++)
        classes_empty = classes_empty && s1.classes[i].blocks_in_use == 0;
    CHECK("reset: nothing in use afterwards",
          s1.blocks_in_use == 0 && s1.bytes_in_use == 0 && s1.large_in_use == 0 && classes_empty);
    CHECK("reset: the reset blocks count as freed",
          s1.allocs == s0.allocs && s1.frees == s1.allocs);
    CHECK("reset: the heap keeps its class chunks", s1.bytes_reserved > 0 && s->out > 0);
    CHECK("reset: large blocks are unmapped", s1.bytes_reserved < s0.bytes_reserved);
    size_t k2 = alloc_mix(h, ps, 1000);
    CHECK("reset: the heap works afterwards", k2 == 1000);
    static blk b[1000];
    for (size_t i = 0; i < k2; i++)
        b[i] = (blk){ps[i], 0, mp_heap_usable_size(h, ps[i]), 0};
    CHECK("reset: blocks after a reset are disjoint", disjoint(b, k2, "reset"));

    /* Destroy with blocks live, one of them large, and a large block freed (perhaps cached). */
    void *big = mp_heap_alloc(h, 2 * MiB);
    mp_heap_free(h, big);
    mp_heap_destroy(h);
    CHECK("destroy: with blocks live, every byte goes back to the source",
          s->out == 0 && s->maps == s->unmaps && s->nlive == 0);
    CHECK("destroy: the source contract kept", s->contract_violations == 0);
    free(s);
}

static void test_capacity(void)
{
    /* Class blocks: fill a 4 MiB heap with 1000-byte blocks. */
    src *s = src_new();
    mp_source source = {src_map, src_unmap, s};
    const size_t cap = 4 * MiB;
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.capacity = cap, .source = &source, .name = "cap"});
    if (!CHECK("capacity: heap", h != NULL))
        return;
    enum { MAXB = 1 << 14 };
    static void *ps[MAXB];
    size_t n = 0;
    errno = 0;
    while (n < MAXB && (ps[n] = mp_heap_alloc(h, 1000)) != NULL)
        n++;
    int e = errno;
    struct mp_heap_stats st;
    mp_heap_stats(h, &st);
    printf("  capacity 4 MiB: %zu blocks of 1000 bytes, reserved %" PRIu64 ", source peak %zu\n", n,
           st.bytes_reserved, s->peak);
    CHECK("capacity: 1000-byte blocks until ENOMEM", n > 0 && n < MAXB && e == ENOMEM);
    CHECK("capacity: counted in failed_allocs", st.failed_allocs == 1);
    CHECK("capacity: the source never holds more than the capacity", s->peak <= cap);
    CHECK("capacity: bytes_reserved <= capacity", st.bytes_reserved <= cap);
    errno = 0;
    void *big = mp_heap_alloc(h, 2 * MiB);
    CHECK("capacity: a large block past the capacity gives ENOMEM", big == NULL && errno == ENOMEM);
    errno = 0;
    void *big2 = mp_heap_realloc(h, ps[0], 3 * MiB);
    CHECK("capacity: a realloc past the capacity gives ENOMEM and keeps the block",
          big2 == NULL && errno == ENOMEM && mp_heap_usable_size(h, ps[0]) >= 1000);
    mp_heap_free(h, ps[n - 1]);
    void *again = mp_heap_alloc(h, 1000);
    CHECK("capacity: after a free the heap is usable again", again != NULL);
    ps[n - 1] = again;
    for (size_t i = 0; i < n; i++)
        mp_heap_free(h, ps[i]);
    size_t n2 = 0;
    while (n2 < n && (ps[n2] = mp_heap_alloc(h, 1000)) != NULL)
        n2++;
    CHECK("capacity: after freeing all, as many blocks again", n2 == n);
    for (size_t i = 0; i < n2; i++)
        mp_heap_free(h, ps[i]);
    mp_heap_destroy(h);
    CHECK("capacity: destroy gives back every byte", s->out == 0 && s->maps == s->unmaps);

    /* Large blocks: a 16 MiB heap, 1 MiB blocks. */
    memset(s, 0, sizeof *s);
    s->fail_at = -1;
    const size_t cap2 = 16 * MiB;
    h = mp_heap_create(&(mp_heap_opts){.capacity = cap2, .source = &source, .name = "cap-large"});
    size_t k = 0;
    errno = 0;
    while (k < 64 && (ps[k] = mp_heap_alloc(h, MiB)) != NULL)
        k++;
    e = errno;
    CHECK("capacity: 1 MiB large blocks until ENOMEM", k > 0 && k < 16 && e == ENOMEM);
    CHECK("capacity: the source never holds more than the capacity (large)", s->peak <= cap2);
    void *small = mp_heap_alloc(h, 64);
    printf("  capacity 16 MiB: %zu large blocks of 1 MiB; a small block after: %s\n", k,
           small ? "yes" : "no");
    mp_heap_free(h, small);
    for (size_t i = 0; i < k; i++)
        mp_heap_free(h, ps[i]);
    size_t k2 = 0;
    while (k2 < k && (ps[k2] = mp_heap_alloc(h, MiB)) != NULL)
        k2++;
    CHECK("capacity: freed large blocks leave room for as many again", k2 == k);
    for (size_t i = 0; i < k2; i++)
        mp_heap_free(h, ps[i]);
    /* Freed large blocks kept for reuse must not lock the capacity up for other sizes: with no
     * block in use, 12 MiB of a 16 MiB heap are free to have. */
    void *other = mp_heap_alloc(h, 12 * MiB);
    CHECK("capacity: cached large blocks give way to a different size", other != NULL);
    mp_heap_free(h, other);
    struct mp_heap_stats st2;
    mp_heap_stats(h, &st2);
    CHECK("capacity: statistics consistent",
          st2.blocks_in_use == 0 && st2.large_in_use == 0 && st2.bytes_reserved <= cap2);
    mp_heap_destroy(h);
    CHECK("capacity: destroy gives back every byte (large)", s->out == 0 && s->maps == s->unmaps);
    CHECK("capacity: the source contract kept", s->contract_violations == 0);
    free(s);
}

enum { GUARD = 4096 };

static bool guards_ok(const unsigned char *raw, size_t before, size_t size)
{
    for (size_t i = 0; i < before; i++)
        if (raw[i] != 0xC3)
            return false;
    for (size_t i = before + size; i < before + size + GUARD; i++)
        if (raw[i] != 0xC3)
            return false;
    return true;
}

/* A buffer heap: exhausted by large blocks (whose memory is not reused until a reset), then reset.
 */
static void test_buffer_exhaustion(void)
{
    const size_t size = 24 * MiB, off = GUARD + 5;
    unsigned char *raw = malloc(size + off + GUARD);
    if (!CHECK("buffer: memory", raw != NULL))
        return;
    memset(raw, 0xC3, size + off + GUARD);
    unsigned char *buf = raw + off;
    memset(buf, 0x5C, size); /* dirty, for calloc */
    src *s = src_new();
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.buffer = buf,
                                                .buffer_size = size,
                                                .name = "buf",
                                                .source = &(mp_source){src_map, src_unmap, s}});
    if (!CHECK("buffer: heap in an odd-aligned buffer", h != NULL)) {
        free(raw);
        free(s);
        return;
    }
    target t = {"buffer-exhaustion", h, 0, buf, buf + size, 2 * MiB, NULL};
    const size_t zs[] = {1, 24, 100, 3000, 70000, MP_HEAP_MAX_CLASS + 5};
    bool zero = true;
    for (size_t i = 0; i < sizeof zs / sizeof zs[0]; i++) {
        unsigned char *z = mp_heap_calloc(h, 1, zs[i]);
        zero = zero && z != NULL && all_zero(z, zs[i]) && in_buffer(&t, z, zs[i]);
        mp_heap_free(h, z);
    }
    CHECK("buffer: calloc zeroes the buffer's dirty memory", zero);
    mp_heap_reset(h);
    /* Each size a third above the last, so that no freed (cached) block fits the next request. */
    size_t rounds = 0, k = 0, sz = 300 * KiB;
    void *p;
    errno = 0;
    while (rounds < 1000 && (p = mp_heap_alloc(h, sz)) != NULL) {
        CHECK("buffer: large block inside the buffer", in_buffer(&t, p, sz));
        memset(p, 0x77, sz);
        mp_heap_free(h, p);
        rounds++;
        sz += sz / 3;
    }
    int e = errno;
    printf("  buffer of 24 MiB: %zu large alloc+free before ENOMEM\n", rounds);
    CHECK("buffer: large blocks exhaust the buffer, then ENOMEM",
          rounds > 0 && rounds < 1000 && e == ENOMEM);
    void *small = mp_heap_alloc(h, 16);
    mp_heap_free(h, small);
    mp_heap_reset(h);
    sz = 300 * KiB;
    while (k < rounds && (p = mp_heap_alloc(h, sz)) != NULL) {
        memset(p, 0x78, sz);
        mp_heap_free(h, p);
        k++;
        sz += sz / 3;
    }
    CHECK("buffer: after a reset the buffer serves as many again", k == rounds);
    struct mp_heap_stats st;
    mp_heap_stats(h, &st);
    CHECK("buffer: bytes_reserved within the buffer", st.bytes_reserved <= size);
    mp_heap_destroy(h);
    CHECK("buffer: nothing written outside the buffer", guards_ok(raw, off, size));
    CHECK("buffer: the source is never called", s->tries == 0);
    free(raw);
    free(s);
}

/* A fixed workload under a source that fails at map k (once, or from k on), for every k until it
 * runs without a failure: every NULL comes with ENOMEM, a refused realloc keeps its block, the
 * statistics stay consistent and destroy gives every byte back. */
static bool failing_workload(mp_heap *h, size_t *refused)
{
    enum { N = 30 };
    blk b[N];
    memset(b, 0, sizeof b);
    const size_t sizes[] = {1, 100, 3000, MP_HEAP_MAX_CLASS + 1, 20000, 2 * MiB};
    bool ok = true;
    for (size_t i = 0; i < N; i++) {
        size_t n = sizes[i % 6] + i % 3;
        errno = 0;
        unsigned char *p = i % 7 == 3   ? mp_heap_calloc(h, 1, n)
                           : i % 7 == 5 ? mp_heap_aligned_alloc(h, i % 2 ? 8192 : 128, n)
                                        : mp_heap_alloc(h, n);
        if (p == NULL) {
            ok = ok && errno == ENOMEM;
            ++*refused;
            continue;
        }
        if (i % 7 == 3)
            ok = ok && all_zero(p, n);
        b[i] = (blk){p, n, mp_heap_usable_size(h, p), i};
        fill(p, b[i].usable, i);
    }
    for (size_t i = 0; i < N; i += 3) {
        if (b[i].p == NULL)
            continue;
        size_t n = b[i].size * 3 + MP_HEAP_MAX_CLASS / 2;
        errno = 0;
        unsigned char *q = mp_heap_realloc(h, b[i].p, n);
        if (q == NULL) {
            ok = ok && errno == ENOMEM && filled(b[i].p, b[i].usable, b[i].usable, b[i].seed);
            ++*refused;
            continue;
        }
        ok = ok && filled(q, b[i].usable < n ? b[i].usable : n, b[i].usable, b[i].seed);
        b[i] = (blk){q, n, mp_heap_usable_size(h, q), i + 1000};
        fill(q, b[i].usable, b[i].seed);
    }
    struct mp_heap_stats st;
    mp_heap_stats(h, &st);
    target t = {"failing", h, 0, NULL, NULL, 0, NULL};
    ok = ok && stats_sane(&t, &st);
    size_t live = 0;
    for (size_t i = 0; i < N; i++) {
        if (b[i].p == NULL)
            continue;
        ok = ok && filled(b[i].p, b[i].usable, b[i].usable, b[i].seed);
        live++;
        if (i % 4 != 0) { /* the rest stay live for destroy */
            mp_heap_free(h, b[i].p);
            live--;
        }
    }
    mp_heap_stats(h, &st);
    return ok && st.blocks_in_use == live;
}

static void test_failing_source(void)
{
    tally ta = {0};
    size_t runs = 0, violations = 0;
    for (int mode = 0; mode < 2; mode++) {
        for (long k = 0; k < 400; k++) {
            src *s = src_new();
            s->clean = true; /* 2 MiB chunks dirtied hundreds of times take too long */
            s->fail_at = k;
            s->fail_after = mode == 1;
            mp_source source = {src_map, src_unmap, s};
            errno = 0;
            mp_heap *h = mp_heap_create(&(mp_heap_opts){.source = &source, .name = "failing"});
            size_t refused = 0;
            if (h == NULL) {
                tally_expect(&ta, errno == ENOMEM, "create with map %ld failing: errno %d", k, errno);
            } else {
                tally_expect(&ta, failing_workload(h, &refused),
                       "map %ld failing%s: a refusal without ENOMEM, a block lost or miscounted", k,
                       mode ? " and after" : "");
                if (mode == 1) { /* the source recovers: the heap must serve again */
                    s->fail_at = -1;
                    void *p = mp_heap_alloc(h, 5000), *q = mp_heap_alloc(h, 3 * MiB);
                    tally_expect(&ta, p != NULL && q != NULL, "map %ld: no recovery", k);
                    mp_heap_free(h, p);
                    mp_heap_free(h, q);
                }
                mp_heap_destroy(h);
            }
            tally_expect(&ta, s->out == 0 && s->maps == s->unmaps,
                   "map %ld failing: %zu bytes not given back, %zu maps, %zu unmaps", k, s->out,
                   s->maps, s->unmaps);
            violations += s->contract_violations;
            bool done = h != NULL && refused == 0;
            free(s);
            runs++;
            if (done)
                break;
        }
    }
    printf("  failing source: %zu runs\n", runs);
    CHECK("failing source: every refusal ENOMEM, blocks kept, every byte given back", ta.bad == 0);
    CHECK("failing source: the source contract kept", violations == 0);
}

/* ------------------------------------------------------------------------------------------------
 * Checked heaps: each user bug reported (in a child process: a crash fails one check)
 * ---------------------------------------------------------------------------------------------- */

/* Runs fn(arg) in a child with the recording handler; true if it exited 0. */
static bool in_child(const char *what, bool (*fn)(void *), void *arg)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return false;
    }
    if (pid == 0) {
        alarm(60);
        errs_clear();
        bool ok = fn(arg);
        if (!ok) {
            printf("  %s: child saw %u errors\n", what, errs.n);
            errs_show();
        }
        fflush(stdout);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status))
        printf("  %s: child killed by signal %d\n", what, WTERMSIG(status));
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static bool one_error(mp_error_kind kind, const void *addr)
{
    return errs.n == 1 && errs.kind[0] == kind && (addr == NULL || errs.addr[0] == addr);
}

static mp_heap *checked_heap(void)
{
    return mp_heap_create(&(mp_heap_opts){.flags = MP_CHECKED, .name = "checked"});
}

/* "reported in a checked one: ... a block freed twice". A large block freed twice may be reported
 * as an invalid free (its address is no longer one of the heap's blocks); a class block, as for
 * pools, as a double free. */
static bool bug_double_free(void *arg)
{
    size_t n = *(size_t *)arg;
    mp_heap *h = checked_heap();
    void *keep = mp_heap_alloc(h, n), *p = mp_heap_alloc(h, n);
    mp_heap_free(h, p);
    mp_heap_free(h, p);
    bool ok = one_error(MP_ERR_DOUBLE_FREE, p) ||
              (n > MP_HEAP_MAX_CLASS && one_error(MP_ERR_INVALID_FREE, p));
    errs_clear();
    mp_heap_free(h, keep); /* the heap goes on */
    void *q = mp_heap_alloc(h, n);
    mp_heap_free(h, q);
    mp_heap_destroy(h);
    return ok && errs.n == 0;
}

static bool bug_interior(void *arg)
{
    (void)arg;
    mp_heap *h = checked_heap();
    unsigned char *p = mp_heap_alloc(h, 100);
    mp_heap_free(h, p + 16);
    bool ok = one_error(MP_ERR_INVALID_FREE, NULL);
    errs_clear();
    mp_heap_free(h, p);
    mp_heap_destroy(h);
    return ok && errs.n == 0;
}

static bool bug_other_heap(void *arg)
{
    (void)arg;
    mp_heap *h = checked_heap(), *other = checked_heap();
    void *p = mp_heap_alloc(other, 48);
    mp_heap_free(h, p);
    bool ok = one_error(MP_ERR_INVALID_FREE, NULL);
    errs_clear();
    mp_heap_free(other, p);
    mp_heap_destroy(other);
    mp_heap_destroy(h);
    return ok && errs.n == 0;
}

static char static_bytes[256];

static bool bug_foreign(void *arg)
{
    int which = *(int *)arg;
    mp_heap *h = checked_heap();
    void *keep = mp_heap_alloc(h, 32); /* so the heap has chunks to confuse with */
    char stack_bytes[64];
    void *libc = malloc(100);
    void *p = which == 0 ? (void *)stack_bytes : which == 1 ? (void *)(static_bytes + 16) : libc;
    mp_heap_free(h, p);
    bool ok = one_error(MP_ERR_INVALID_FREE, NULL);
    errs_clear();
    free(libc);
    mp_heap_free(h, keep);
    mp_heap_destroy(h);
    return ok && errs.n == 0;
}

static bool bug_overflow(void *arg)
{
    size_t n = *(size_t *)arg;
    mp_heap *h = checked_heap();
    unsigned char *p = mp_heap_alloc(h, n);
    size_t u = mp_heap_usable_size(h, p);
    memset(p, 1, u); /* the usable size is the user's */
    stray_write(p + u, 0);
    mp_heap_free(h, p);
    bool ok = one_error(MP_ERR_OVERFLOW, p);
    errs_clear();
    mp_heap_destroy(h);
    return ok && errs.n == 0;
}

static bool bug_write_after_free(void *arg)
{
    (void)arg;
    mp_heap *h = checked_heap();
    unsigned char *p = mp_heap_alloc(h, 64);
    mp_heap_free(h, p);
    stray_write(p + 24, 0x11);
    void *q = mp_heap_alloc(h, 64); /* verified when handed out again, or at destroy */
    mp_heap_free(h, q);
    mp_heap_destroy(h);
    return errs.n == 1 && errs.kind[0] == MP_ERR_WRITE_AFTER_FREE;
}

static bool bug_leak(void *arg)
{
    bool with_large = *(bool *)arg;
    mp_heap *h = checked_heap();
    for (int i = 0; i < 3; i++)
        (void)mp_heap_alloc(h, 32);
    for (int i = 0; i < 2; i++)
        (void)mp_heap_alloc(h, 1000);
    if (with_large)
        (void)mp_heap_alloc(h, MP_HEAP_MAX_CLASS + 1);
    mp_heap_destroy(h);
    uint64_t leaked = 0;
    bool all_leaks = errs.n > 0;
    for (unsigned i = 0; i < errs.n && i < MAX_ERRS; i++) {
        all_leaks = all_leaks && errs.kind[i] == MP_ERR_LEAK;
        leaked += errs.count[i];
    }
    return all_leaks && leaked == (with_large ? 6u : 5u);
}

/* The default handler: one line "mempool: double free of 0x..." on stderr, then abort(). */
static bool default_handler_aborts(void)
{
    int fds[2];
    if (pipe(fds) != 0)
        return false;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(60);
        dup2(fds[1], 2);
        close(fds[0]);
        mp_set_error_handler(NULL, NULL);
        mp_heap *h = checked_heap();
        void *p = mp_heap_alloc(h, 40);
        mp_heap_free(h, p);
        mp_heap_free(h, p);
        _exit(0);
    }
    close(fds[1]);
    char text[1024];
    size_t len = 0;
    ssize_t r;
    while (len < sizeof text - 1 && (r = read(fds[0], text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)r;
    text[len] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    bool ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT &&
              strncmp(text, "mempool: double free of 0x", 26) == 0;
    if (!ok)
        printf("  default handler: status %#x, stderr: %s\n", status, text);
    return ok;
}

/* ------------------------------------------------------------------------------------------------
 * Pages of never-used blocks: asked for in one call over the system, left alone over a source
 * ---------------------------------------------------------------------------------------------- */

/* Pages of [p, p + n) resident, by mincore(); -1 if it fails. */
static long resident_pages(const void *p, size_t n)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), lo = (uintptr_t)p & ~(page - 1);
    size_t npages = ((uintptr_t)p + n - lo + page - 1) / page;
    unsigned char v[64];
    if (npages > sizeof v || mincore((void *)lo, npages * page, v) != 0)
        return -1;
    long in = 0;
    for (size_t i = 0; i < npages; i++)
        in += v[i] & 1;
    return in;
}

/* Whether the kernel can populate (MADV_POPULATE_WRITE, Linux 5.14: a page it populates is then
 * resident; qemu-user accepts the advice and ignores it) and gives huge pages only where asked:
 * with transparent huge pages "always", a first write makes a whole 2 MiB resident. */
static bool can_populate(bool *thp_always)
{
    char buf[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f != NULL) {
        if (fgets(buf, sizeof buf, f) == NULL)
            buf[0] = '\0';
        fclose(f);
    }
    *thp_always = strstr(buf, "[always]") != NULL;
#ifdef MADV_POPULATE_WRITE
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *m = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return false;
    bool ok = madvise(m, page, MADV_POPULATE_WRITE) == 0 && resident_pages(m, page) == 1;
    munmap(m, page);
    return ok;
#else
    return false;
#endif
}

/* A source of fresh anonymous mappings, as the system source's but the caller's own. */
static void *anon_map(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    int prot = PROT_READ | PROT_WRITE;
    char *raw = mmap(NULL, size + align, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    char *p = (char *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
    if (p != raw)
        munmap(raw, (size_t)(p - raw));
    munmap(p + size, (size_t)(raw + align - p));
    return p;
}

static void anon_unmap(void *ctx, void *p, size_t size)
{
    (void)ctx;
    munmap(p, size);
}

/* A heap over the system source asks for a never-used block's pages as it hands the block out
 * (docs/design.md, "The heap"): every page of the block is resident before the program writes to
 * it, and the pages after it are not (nothing is asked ahead). Over the caller's source it asks
 * for nothing: a fresh block's pages past its first fault in as the program writes them. */
static void test_populate(void)
{
    bool thp_always;
    if (!can_populate(&thp_always)) {
        printf("  populate: skipped, the kernel cannot populate (MADV_POPULATE_WRITE)\n");
        return;
    }
    const size_t n = 100 * KiB; /* a class block, 26 pages: its stride is its class's size */
    const unsigned kinds[] = {0, MP_THREAD_SAFE};
    /* Under ASan or Valgrind every pool tells the tool about its blocks, and a thread-safe pool
     * that does keeps no caches: each call takes the lock, where nothing is populated. */
    size_t nkinds = TEST_ASAN || TEST_ON_VALGRIND() ? 1 : 2;
    for (size_t i = 0; i < nkinds; i++) {
        mp_heap *h = mp_heap_create(&(mp_heap_opts){.flags = kinds[i]});
        unsigned char *p = h != NULL ? mp_heap_alloc(h, n) : NULL;
        if (!CHECK("populate: heap and block", p != NULL)) {
            mp_heap_destroy(h);
            continue;
        }
        size_t usable = mp_heap_usable_size(h, p), page = (size_t)sysconf(_SC_PAGESIZE);
        long want = (long)((((uintptr_t)p + usable + page - 1) & ~(page - 1)) / page -
                           ((uintptr_t)p & ~(page - 1)) / page);
        long in = resident_pages(p, usable);
        CHECK(i == 0 ? "populate: every page of a fresh block resident before a write"
                     : "populate: the same in a thread-safe heap (its caches' refill)",
              in == want);
        if (!thp_always) {
            uintptr_t after = ((uintptr_t)p + usable + page - 1) & ~(page - 1);
            CHECK("populate: no page after the block asked for",
                  resident_pages((void *)after, 8 * page) == 0);
        }
        if (in != want)
            printf("  %ld of %ld pages resident\n", in, want);
        memset(p, 1, n);
        mp_heap_free(h, p);
        mp_heap_destroy(h);
    }
    mp_source anon = {anon_map, anon_unmap, NULL};
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.source = &anon});
    unsigned char *p = h != NULL ? mp_heap_alloc(h, n) : NULL;
    if (CHECK("populate: heap over the caller's source and a block", p != NULL) && !thp_always) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        unsigned char *second = (unsigned char *)(((uintptr_t)p + page) & ~(page - 1));
        CHECK("populate: over the caller's source, the block's later pages left alone",
              resident_pages(second, n - page) == 0);
    }
    mp_heap_destroy(h);
}

static void test_checked_bugs(void)
{
    size_t small = 48, large = MP_HEAP_MAX_CLASS + 1;
    CHECK("checked: double free of a class block reported",
          in_child("double free", bug_double_free, &small));
    CHECK("checked: double free of a large block reported",
          in_child("double free large", bug_double_free, &large));
    CHECK("checked: free of an interior pointer reported",
          in_child("interior", bug_interior, NULL));
    CHECK("checked: free of another heap's block reported",
          in_child("other heap", bug_other_heap, NULL));
    const int which[] = {0, 1, 2};
    CHECK("checked: free of a stack address reported",
          in_child("stack", bug_foreign, (void *)&which[0]));
    CHECK("checked: free of a static address reported",
          in_child("static", bug_foreign, (void *)&which[1]));
    CHECK("checked: free of a C-library block reported",
          in_child("libc", bug_foreign, (void *)&which[2]));
    size_t sizes[] = {24, 100, 5000};
    for (size_t i = 0; i < 3; i++)
        CHECK("checked: a write past the usable size reported at free",
              in_child("overflow", bug_overflow, &sizes[i]));
    CHECK("checked: a write after free reported",
          in_child("write after free", bug_write_after_free, NULL));
    bool no = false, yes = true;
    CHECK("checked: live class blocks reported as leaks at destroy",
          in_child("leak", bug_leak, &no));
    CHECK("checked: a live large block is reported as a leak too",
          in_child("leak large", bug_leak, &yes));
    CHECK("checked: the default handler prints one line and aborts", default_handler_aborts());
}

/* MEMPOOL_CHECKED=1 when the process-wide heap is first used makes it a checked heap. Runs first,
 * in a child that has not touched the process-wide heap yet. */
static bool env_checked_child(void *arg)
{
    (void)arg;
    setenv("MEMPOOL_CHECKED", "1", 1);
    void *p = mp_malloc(40);
    mp_free(p);
    mp_free(p);
    return one_error(MP_ERR_DOUBLE_FREE, p);
}

/* ------------------------------------------------------------------------------------------------
 * The run
 * ---------------------------------------------------------------------------------------------- */

static mp_heap *make(unsigned flags, const char *name, src *s, size_t capacity)
{
    static mp_source sources[8];
    static int used;
    mp_heap_opts o = {.flags = flags, .name = name, .capacity = capacity};
    if (s != NULL && used < 8) {
        sources[used] = (mp_source){src_map, src_unmap, s};
        o.source = &sources[used++];
    }
    mp_heap *h = mp_heap_create(&o);
    if (h == NULL)
        printf("  create %s failed: errno %d\n", name, errno);
    return h;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    mp_set_error_handler(record_error, NULL);
    CHECK("MEMPOOL_CHECKED=1 makes the process-wide heap checked",
          in_child("env checked", env_checked_child, NULL));

    lap();
    test_classes();
    test_create();
    test_stats_write();
    printf("-- classes, create, stats output: %.2f s\n", lap());

    /* The process-wide heap. */
    CHECK("default heap: mp_default_heap() is the same heap each time",
          mp_default_heap() != NULL && mp_default_heap() == mp_default_heap());
    target def = {"process-wide heap (mp_malloc)", NULL, 0, NULL, NULL, 25 * MiB, NULL};
    suite(&def);
    void *p = mp_malloc(1234);
    CHECK("default heap: mp_usable_size agrees with the heap's",
          p && mp_usable_size(p) == mp_heap_usable_size(mp_default_heap(), p));
    mp_free(p);

    src *ds = src_new(), *cs = src_new();
    const struct {
        const char *name;
        unsigned flags;
        src *s;
        size_t capacity;
    } kinds[] = {
        {"plain heap", 0, NULL, 0},
        {"heap over a dirty counting source", 0, ds, 0},
        {"thread-safe heap", MP_THREAD_SAFE, NULL, 0},
        {"checked heap", MP_CHECKED, NULL, 0},
        {"secure heap", MP_SECURE, NULL, 0},
        {"zeroing heap", MP_ZERO, ds, 0},
        {"checked thread-safe heap", MP_CHECKED | MP_THREAD_SAFE, NULL, 0},
        {"capacity-limited heap (512 MiB)", 0, cs, 512 * MiB},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        mp_heap *h = make(kinds[i].flags, kinds[i].name, kinds[i].s, kinds[i].capacity);
        if (!CHECK("heap created", h != NULL))
            continue;
        /* Blocks of 5..25 MiB on the plain heap (and the process-wide one); up to 6 MiB on the
         * others, whose large-block code is the same: page faults are most of the suite's time. */
        target t = {kinds[i].name, h, kinds[i].flags, NULL, NULL, i == 0 ? 25 * MiB : 6 * MiB,
                    kinds[i].s};
        suite(&t);
        mp_heap_destroy(h);
        if (kinds[i].s != NULL)
            CHECK("destroy: every byte back to the source",
                  kinds[i].s->out == 0 && kinds[i].s->maps == kinds[i].s->unmaps);
    }
    CHECK("capacity-limited heap: the source never held more than the capacity",
          cs->peak <= 512 * MiB);
    free(ds);
    free(cs);

    /* A heap in a buffer, at an odd address, with guard bytes around it. Every class takes a 2 MiB
     * chunk (docs/design.md) and large blocks are not given back to a buffer before a reset, so
     * the whole suite needs room for every class and then some; the buffer is left as malloc gives
     * it (untouched pages cost nothing); test_buffer_exhaustion() checks calloc over dirty memory.
     */
    const size_t bsize = 640 * MiB, off = GUARD + 3;
    unsigned char *raw = malloc(bsize + off + GUARD);
    if (CHECK("buffer heap: memory", raw != NULL)) {
        memset(raw, 0xC3, off);
        memset(raw + off + bsize, 0xC3, GUARD);
        mp_heap *h = mp_heap_create(
            &(mp_heap_opts){.buffer = raw + off, .buffer_size = bsize, .name = "buffer heap"});
        if (CHECK("buffer heap created", h != NULL)) {
            target t = {"buffer heap", h, 0, raw + off, raw + off + bsize, 2 * MiB, NULL};
            suite(&t);
            struct mp_heap_stats st;
            mp_heap_stats(h, &st);
            printf("  buffer heap: %" PRIu64 " bytes reserved of %zu\n", st.bytes_reserved, bsize);
            CHECK("buffer heap: nothing written outside the buffer", guards_ok(raw, off, bsize));
            mp_heap_reset(h);
            suite(&t); /* again, after a reset */
            mp_heap_destroy(h);
            CHECK("buffer heap: nothing written outside the buffer (after reset and destroy)",
                  guards_ok(raw, off, bsize));
        }
        free(raw);
    }

    const struct {
        const char *name;
        void (*fn)(void);
    } parts[] = {{"reset and destroy", test_reset_destroy},
                 {"capacity", test_capacity},
                 {"buffer exhaustion", test_buffer_exhaustion},
                 {"failing source", test_failing_source},
                 {"pages of fresh blocks", test_populate},
                 {"checked heap bugs", test_checked_bugs}};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        lap();
        parts[i].fn();
        printf("-- %s: %.2f s\n", parts[i].name, lap());
    }
    return TEST_DONE();
}

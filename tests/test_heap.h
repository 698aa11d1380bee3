/*
 * test_heap.h: what the heap suites (test_heap.c, test_heap_create.c, test_heap_memory.c) share:
 * small helpers (timing, patterns, one-line heaps), the counting source set up for heaps, and an
 * error handler that records what checked and secure heaps report, so correct use can be seen to
 * report none. Only the public API is used.
 */
#ifndef MP_TEST_HEAP_H
#define MP_TEST_HEAP_H

#include "counting_source.h"
#include "mempool.h"
#include "test.h"
#include "utf8.h"

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
static inline double lap(void)
{
    static struct timespec last;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double d = (double)(now.tv_sec - last.tv_sec) + (double)(now.tv_nsec - last.tv_nsec) / 1e9;
    last = now;
    return d;
}

static inline bool aligned_to(const void *p, size_t align)
{
    return ((uintptr_t)p & (align - 1)) == 0;
}

/* The alignment the header promises for a request of n bytes. */
static inline size_t natural_align(size_t n)
{
    return n > 8 ? 16 : 8;
}

/* Block contents. Blocks up to FULL bytes are patterned in full; larger ones at both ends (EDGE
 * bytes) and every STEP bytes between, which catches a lost page or a short copy at far less cost.
 */
enum { FULL = 256 * 1024, EDGE = 4096, STEP = 509 };

static inline unsigned char pat(uint64_t seed, size_t i)
{
    return (unsigned char)(seed * 131u + i * 7u + (i >> 8) + (i >> 16) + (seed >> 7));
}

static inline void fill(unsigned char *p, size_t n, uint64_t seed)
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
static inline bool filled(const unsigned char *p, size_t n, size_t filled_size, uint64_t seed)
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
static inline void stray_write(unsigned char *p, unsigned char value)
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

/* A heap's source (counting_source.h) hands out dirty memory where blocks land first (the first
 * 256 KiB, the last page) and a stripe of every other page: a 2 MiB chunk dirtied in full every
 * time would be most of the run's time. */
static inline counting_source *src_new(void)
{
    counting_source *s = calloc(1, sizeof *s);
    if (s != NULL) {
        s->dirty = 256 * KiB;
        s->stripes = true;
    }
    return s;
}

/* The source contract kept: sizes and alignments asked, regions given back exactly. */
static inline bool src_kept_contract(counting_source *s)
{
    return s->violations == 0 && s->bad_unmaps == 0;
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

static inline void record_error(const mp_error *e, void *ctx)
{
    (void)ctx;
    if (errs.n < MAX_ERRS) {
        errs.kind[errs.n] = e->kind;
        errs.addr[errs.n] = e->addr;
        errs.count[errs.n] = e->count;
    }
    errs.n++;
}

static inline void errs_clear(void)
{
    memset(&errs, 0, sizeof errs);
}

static inline void errs_show(void)
{
    for (unsigned i = 0; i < errs.n && i < MAX_ERRS; i++)
        printf("  error %u: %s at %p, count %" PRIu64 "\n", i, mp_error_name(errs.kind[i]),
               errs.addr[i], errs.count[i]);
}

/* Guard bytes around a buffer heap's buffer (0xC3), so writes outside it show. */
enum { GUARD = 4096 };

static inline bool guards_ok(const unsigned char *raw, size_t before, size_t size)
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

/* ------------------------------------------------------------------------------------------------
 * Targets: the heaps the contract suite runs on
 * ---------------------------------------------------------------------------------------------- */

typedef struct target {
    const char *name;
    mp_heap *heap; /* NULL: the process-wide heap, through mp_malloc & co. */
    unsigned flags;
    unsigned char *lo, *hi;  /* a buffer heap's buffer: every block must lie inside it */
    size_t max_large;        /* the largest block the suite asks of it */
    counting_source *source; /* the counting source under it, if any */
} target;

static inline mp_heap *heap_of(const target *t)
{
    return t->heap != NULL ? t->heap : mp_default_heap();
}

static inline void *t_alloc(const target *t, size_t n)
{
    return t->heap != NULL ? mp_heap_alloc(t->heap, n) : mp_malloc(n);
}

static inline void *t_calloc(const target *t, size_t n, size_t size)
{
    return t->heap != NULL ? mp_heap_calloc(t->heap, n, size) : mp_calloc(n, size);
}

static inline void *t_realloc(const target *t, void *p, size_t n)
{
    return t->heap != NULL ? mp_heap_realloc(t->heap, p, n) : mp_realloc(p, n);
}

static inline void *t_aligned(const target *t, size_t align, size_t n)
{
    return t->heap != NULL ? mp_heap_aligned_alloc(t->heap, align, n) : mp_aligned_alloc(align, n);
}

static inline void t_free(const target *t, void *p)
{
    if (t->heap != NULL)
        mp_heap_free(t->heap, p);
    else
        mp_free(p);
}

/* free_sized where the target has it (the process-wide heap has no mp_free_sized). */
static inline void t_free_sized(const target *t, void *p, size_t n)
{
    if (t->heap != NULL)
        mp_heap_free_sized(t->heap, p, n);
    else
        mp_free(p);
}

static inline size_t t_usable(const target *t, const void *p)
{
    return t->heap != NULL ? mp_heap_usable_size(t->heap, p) : mp_usable_size(p);
}

static inline struct mp_heap_stats t_stats(const target *t)
{
    struct mp_heap_stats s;
    memset(&s, 0, sizeof s);
    int rc = mp_heap_stats(heap_of(t), &s);
    if (rc != 0)
        printf("  %s: mp_heap_stats returned %d\n", t->name, rc);
    return s;
}

static inline bool in_buffer(const target *t, const void *p, size_t n)
{
    const unsigned char *b = p;
    return t->lo == NULL || (b >= t->lo && b <= t->hi && n <= (size_t)(t->hi - b));
}

/* The equations the statistics keep in any state: what is in use is what was allocated and not
 * freed, and is split exactly between the classes and the large blocks. */
static inline bool stats_sane(const target *t, const struct mp_heap_stats *s)
{
    tally ta = {0};
    uint64_t in_classes = 0;
    for (size_t i = 0; i < MP_HEAP_CLASSES; i++) {
        const mp_heap_class_stats *c = &s->classes[i];
        in_classes += c->blocks_in_use;
        tally_expect(&ta,
                     c->blocks_in_use <= c->blocks_peak && c->frees <= c->allocs &&
                         c->allocs - c->frees == c->blocks_in_use,
                     "%s: class %zu (%zu bytes): in use %" PRIu64 ", peak %" PRIu64
                     ", allocs %" PRIu64 ", frees %" PRIu64,
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
                     "%s: bytes_reserved %" PRIu64 " beyond the buffer's %zu", t->name,
                     s->bytes_reserved, (size_t)(t->hi - t->lo));
    return ta.bad == 0;
}

/* The class table as the heap reports it (filled by test_classes; the header's when it agrees). */
static size_t cls[MP_HEAP_CLASSES];

/* The index of the smallest class of at least n bytes (MP_HEAP_CLASSES for a large request). */
static inline size_t class_of(size_t n)
{
    for (size_t i = 0; i < MP_HEAP_CLASSES; i++)
        if (cls[i] >= n)
            return i;
    return MP_HEAP_CLASSES;
}

/* The header's table: 8, 16, multiples of 16 up to 128, then 8 classes per doubling up to
 * MP_HEAP_MAX_CLASS. */
static inline size_t header_classes(size_t *out)
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

typedef struct blk {
    unsigned char *p;
    size_t size, usable;
    uint64_t seed;
} blk;

static inline int blk_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const blk *)a)->p, y = (uintptr_t)((const blk *)b)->p;
    return (x > y) - (x < y);
}

/* True if no two of the blocks' usable ranges overlap (sorts b). */
static inline bool disjoint(blk *b, size_t n, const char *what)
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

/* A program's parts, run in order, each one's time printed. */
typedef struct heap_part {
    const char *name;
    void (*fn)(void);
} heap_part;

static inline void run_parts(const heap_part *parts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        lap();
        parts[i].fn();
        printf("-- %s: %.2f s\n", parts[i].name, lap());
    }
}

#endif /* MP_TEST_HEAP_H */

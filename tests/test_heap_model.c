/*
 * test_heap_model.c: heaps against a reference model, then under many threads.
 *
 * Usage: test_heap_model [SEED [OPS]]
 *   SEED  the random seed (default 1), printed with the line that replays the run.
 *   OPS   operations of part 1 (default 200,000 times the environment's MP_TEST_SCALE, e.g.
 *         MP_TEST_SCALE=0.02 under valgrind); part 2 runs OPS / 2 over all its threads.
 *
 * 1. The model. A run is a sequence of 8 heaps, one of each kind: plain, MP_ZERO, checked, secure,
 *    thread-safe (used from one thread: it must behave the same), checked thread-safe, one inside
 *    a caller's buffer with guard bytes around it, and one with a capacity over a counting source.
 *    Each takes random alloc, calloc, aligned_alloc, realloc (grow, shrink, to and from large
 *    blocks, from NULL, to 0), free and free_sized, with sizes from 0 to 1 MiB skewed to small
 * ones, steered toward a wandering number of live blocks; rarely reset, drain-all, a check of every
 *    live block. The model knows after every operation:
 *      - the live blocks, in an array for picking one and in a treap keyed by address, so that a
 *        new block's usable range [p, p + usable) is checked against its two neighbours: no
 * overlap;
 *      - each block's contents: filled at allocation with a pattern from (seed, serial number) over
 *        its whole usable size (its two ends and every STEP bytes between for large ones), verified
 *        at free and before realloc, and after realloc over min(old usable size, new size) bytes;
 *      - alignment (16 above 8 bytes, 8 below, the asked alignment for aligned_alloc), zeroing
 *        (calloc; every alloc of an MP_ZERO heap), the usable size (>= the size asked, and the same
 *        whenever asked again), the buffer's bounds;
 *      - the statistics, compared every STATS_EVERY operations and after every rare one: allocs
 *        (each allocation, and each realloc that moved), frees, failed_allocs, blocks_in_use,
 *        bytes_in_use (the sum of usable sizes), large_in_use, and each class's blocks in use;
 *      - whether an allocation may fail: only in the buffer and capacity heaps, and then with
 * ENOMEM. Checked and secure heaps must report nothing for this correct program.
 * 2. Threads. 4 threads on one MP_THREAD_SAFE heap, then on mp_malloc, then on a checked
 *    thread-safe heap: allocate (alloc, calloc, aligned_alloc), free, free_sized, realloc, and swap
 *    blocks through a shared exchange of atomic slots, so that most blocks are freed (or
 *    realloc'd) by a thread other than the one that allocated them, and many outlive it. Blocks
 *    carry a stamp and a pattern over their usable size, found from mp_heap_usable_size() in
 *    whichever thread holds the block, and verified before every free and realloc. An observer
 *    thread reads the statistics meanwhile (allocs - frees == blocks_in_use in every snapshot).
 *    At the end, with every thread gone: blocks_in_use, bytes_in_use and large_in_use are 0, and
 *    allocs == frees == the allocations the threads counted.
 * Runs in about 4 s in a Release build at MP_TEST_SCALE=1 (2 cores); 2 s under valgrind at 0.05.
 */
#define _POSIX_C_SOURCE 200809L

#include "threads.h"

#include <time.h>

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

/* ------------------------------------------------------------------------------------------------
 * Randomness for part 1: one stream, from the seed
 * ---------------------------------------------------------------------------------------------- */

static rng R;
static uint64_t run_seed;

static uint64_t below(uint64_t n)
{
    return n ? rng_next(&R) % n : 0;
}

static size_t between(size_t lo, size_t hi)
{
    return lo + (size_t)below((uint64_t)(hi - lo) + 1);
}

/* A request size from 0 to 1 MiB, skewed to small ones, and sometimes right at a class boundary. */
static size_t pick_size(void)
{
    uint64_t r = below(1000);
    if (r < 550)
        return between(0, 128);
    if (r < 800)
        return between(129, 1024);
    if (r < 920)
        return between(1025, 16 * KiB);
    if (r < 975)
        return between(16 * KiB + 1, MP_HEAP_MAX_CLASS);
    if (r < 988)
        return between(MP_HEAP_MAX_CLASS + 1, MiB);
    size_t p2 = (size_t)1 << between(3, 18); /* 2^k and its neighbours: class boundaries */
    return p2 + between(0, 2) - 1;
}

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------------------------------
 * Block contents: a pattern from (seed, serial), over all of a block up to FULL bytes, else over
 * both ends and every STEP bytes between
 * ---------------------------------------------------------------------------------------------- */

enum { FULL = 16 * 1024, EDGE = 1024, STEP = 4093 };

/* Byte i of block `serial`: a 64-bit value of the block's own, so no two blocks agree on 8 bytes
 * running, plus the position, so a shifted copy does not match either. Cheap: no hash per byte. */
static uint64_t pat_key(uint64_t serial)
{
    return mix64(run_seed ^ (serial * 0x9E3779B97F4A7C15u));
}

static unsigned char pat(uint64_t key, size_t i)
{
    return (unsigned char)((key >> (8 * (i & 7))) + i + (i >> 8) * 7);
}

/* Calls BODY with i over the patterned bytes below `limit` of a block patterned over `n` bytes. */
#define FOR_PATTERNED(i, n, limit, BODY)                                                           \
    do {                                                                                           \
        size_t n_ = (n), lim_ = (limit) < n_ ? (limit) : n_;                                       \
        if (n_ <= FULL) {                                                                          \
            for (size_t i = 0; i < lim_; i++)                                                      \
                BODY;                                                                              \
        } else {                                                                                   \
            for (size_t i = 0; i < EDGE && i < lim_; i++)                                          \
                BODY;                                                                              \
            for (size_t i = EDGE; i < n_ - EDGE && i < lim_; i += STEP)                            \
                BODY;                                                                              \
            for (size_t i = n_ - EDGE; i < lim_; i++)                                              \
                BODY;                                                                              \
        }                                                                                          \
    } while (0)

static void pattern_fill(unsigned char *p, size_t n, uint64_t serial)
{
    uint64_t key = pat_key(serial);
    FOR_PATTERNED(i, n, n, p[i] = pat(key, i));
}

/* The first `limit` bytes of a block patterned over n bytes are intact. */
static bool pattern_ok(const unsigned char *p, size_t n, size_t limit, uint64_t serial)
{
    uint64_t key = pat_key(serial);
    unsigned char diff = 0;
    FOR_PATTERNED(i, n, limit, diff |= (unsigned char)(p[i] ^ pat(key, i)));
    return diff == 0;
}

static bool zero_ok(const unsigned char *p, size_t n)
{
    unsigned char any = 0;
    FOR_PATTERNED(i, n, n, any |= p[i]);
    return any == 0;
}

/* ------------------------------------------------------------------------------------------------
 * A treap of live blocks keyed by address: insert, delete, neighbours
 * ---------------------------------------------------------------------------------------------- */

enum { MAX_LIVE = 4096 };

typedef struct tnode {
    uintptr_t key, end; /* the block's usable range [key, end) */
    uint64_t prio;
    int32_t l, r;
} tnode;

static tnode tn[MAX_LIVE];
static int32_t tfree_list[MAX_LIVE], ntfree, troot = -1;

static void treap_clear(void)
{
    troot = -1;
    ntfree = MAX_LIVE;
    for (int32_t i = 0; i < MAX_LIVE; i++)
        tfree_list[i] = MAX_LIVE - 1 - i;
}

static void treap_split(int32_t t, uintptr_t key, int32_t *a, int32_t *b)
{
    if (t < 0) {
        *a = *b = -1;
    } else if (tn[t].key < key) {
        treap_split(tn[t].r, key, &tn[t].r, b);
        *a = t;
    } else {
        treap_split(tn[t].l, key, a, &tn[t].l);
        *b = t;
    }
}

static int32_t treap_merge(int32_t a, int32_t b)
{
    if (a < 0 || b < 0)
        return a < 0 ? b : a;
    if (tn[a].prio > tn[b].prio) {
        tn[a].r = treap_merge(tn[a].r, b);
        return a;
    }
    tn[b].l = treap_merge(a, tn[b].l);
    return b;
}

static void treap_insert(uintptr_t key, uintptr_t end)
{
    int32_t n = tfree_list[--ntfree], a, b;
    tn[n] = (tnode){key, end, mix64(key ^ 0x7EA9), -1, -1};
    treap_split(troot, key, &a, &b);
    troot = treap_merge(treap_merge(a, n), b);
}

/* Removes key; false if it was not there exactly once. */
static bool treap_delete(uintptr_t key)
{
    int32_t a, b, m, c;
    treap_split(troot, key, &a, &b);
    treap_split(b, key + 1, &m, &c);
    troot = treap_merge(a, c);
    if (m < 0)
        return false;
    bool single = tn[m].l < 0 && tn[m].r < 0;
    tfree_list[ntfree++] = m;
    return single;
}

/* True if [key, end) overlaps no live block's usable range. */
static bool treap_range_free(uintptr_t key, uintptr_t end)
{
    int32_t below_n = -1, above_n = -1;
    for (int32_t t = troot; t >= 0;) {
        if (tn[t].key <= key) {
            below_n = t;
            t = tn[t].r;
        } else {
            above_n = t;
            t = tn[t].l;
        }
    }
    if (below_n >= 0 && (tn[below_n].key == key || tn[below_n].end > key))
        return false;
    return above_n < 0 || tn[above_n].key >= end;
}

/* ------------------------------------------------------------------------------------------------
 * The model of one heap
 * ---------------------------------------------------------------------------------------------- */

typedef struct live {
    unsigned char *p;
    size_t size, usable, align;
    uint64_t serial;
    bool large;
    bool sized; /* may be freed with free_sized(size): not from aligned_alloc */
} live;

typedef struct model {
    const char *kind;
    unsigned flags;
    mp_heap *heap;
    bool bounded;                 /* a buffer or a capacity: an allocation may be refused */
    unsigned char *raw, *lo, *hi; /* a buffer heap's buffer (and its guards) */
    size_t capacity;
    counting_source cs;
    mp_source source;
    live *b;
    size_t n, max_live, target;
    /* What the statistics should say, relative to `base` (taken at creation and at each reset). */
    struct mp_heap_stats base;
    uint64_t allocs, frees, failed;
    uint64_t serial, ops, refused, refused_since_reset;
} model;

/* Errors reported by checked and secure heaps: a correct program causes none. */
static atomic_uint errors_seen;

static void record_error(const mp_error *e, void *ctx)
{
    (void)ctx;
    if (atomic_fetch_add(&errors_seen, 1) < 5)
        printf("  reported: %s\n", e->message);
}

static bool bad(model *m, const char *what, const live *x)
{
    if (TEST_FAILURES() < 10)
        printf("  %s heap, op %" PRIu64 ": %s (block %p, size %zu, usable %zu, align %zu)\n",
               m->kind, m->ops, what, x ? (void *)x->p : NULL, x ? x->size : 0, x ? x->usable : 0,
               x ? x->align : 0);
    return false;
}

static struct mp_heap_stats stats_now(const model *m)
{
    struct mp_heap_stats s;
    memset(&s, 0, sizeof s);
    if (mp_heap_stats(m->heap, &s) != 0)
        memset(&s, 0xEE, sizeof s);
    return s;
}

static bool guards_ok(const model *m)
{
    if (m->raw == NULL)
        return true;
    for (const unsigned char *g = m->raw; g < m->lo; g++)
        if (*g != 0xC3)
            return false;
    for (size_t i = 0; i < 4096; i++)
        if (m->hi[i] != 0xC3)
            return false;
    return true;
}

/* Every figure the model knows, against the heap's statistics. */
static void stats_compare(model *m)
{
    struct mp_heap_stats s = stats_now(m);
    uint64_t in_use = m->n, bytes = 0, large = 0;
    static uint64_t per_class[MP_HEAP_CLASSES];
    memset(per_class, 0, sizeof per_class);
    for (size_t i = 0; i < m->n; i++) {
        const live *x = &m->b[i];
        bytes += x->usable;
        if (x->large) {
            large++;
            continue;
        }
        size_t c = 0;
        while (c < MP_HEAP_CLASSES && s.classes[c].size != x->usable)
            c++;
        if (c == MP_HEAP_CLASSES) {
            CHECK("model: a class block's usable size is a class's size", false);
            bad(m, "usable size of no class", x);
        } else {
            per_class[c]++;
        }
    }
    bool ok =
        CHECK("model: stats blocks_in_use", s.blocks_in_use == in_use) &
        CHECK("model: stats bytes_in_use (sum of usable sizes)", s.bytes_in_use == bytes) &
        CHECK("model: stats large_in_use", s.large_in_use == large) &
        CHECK("model: stats allocs (allocations and moving reallocs)",
              s.allocs - m->base.allocs == m->allocs) &
        CHECK("model: stats frees", s.frees - m->base.frees == m->frees) &
        CHECK("model: stats failed_allocs", s.failed_allocs - m->base.failed_allocs == m->failed) &
        CHECK("model: stats bytes_in_use <= bytes_reserved", s.bytes_in_use <= s.bytes_reserved);
    bool classes = true;
    for (size_t c = 0; c < MP_HEAP_CLASSES; c++)
        classes = classes && s.classes[c].blocks_in_use == per_class[c];
    ok &= CHECK("model: each class's blocks_in_use", classes);
    if (m->capacity != 0)
        ok &= CHECK("model: capacity: reserved and the source's bytes within it",
                    s.bytes_reserved <= m->capacity && m->cs.peak <= m->capacity);
    if (m->lo != NULL)
        ok &= CHECK("model: buffer: reserved within it, nothing written outside",
                    s.bytes_reserved <= (uint64_t)(m->hi - m->lo) && guards_ok(m));
    ok &= CHECK("model: no error reported for correct use", atomic_load(&errors_seen) == 0);
    if (!ok)
        printf("  %s heap, op %" PRIu64 ": stats in use %" PRIu64 " (model %" PRIu64
               "), bytes %" PRIu64 " (%" PRIu64 "), large %" PRIu64 " (%" PRIu64
               "), allocs +%" PRIu64 " (%" PRIu64 "), frees +%" PRIu64 " (%" PRIu64
               "), failed +%" PRIu64 " (%" PRIu64 ")\n",
               m->kind, m->ops, s.blocks_in_use, in_use, s.bytes_in_use, bytes, s.large_in_use,
               large, s.allocs - m->base.allocs, m->allocs, s.frees - m->base.frees, m->frees,
               s.failed_allocs - m->base.failed_allocs, m->failed);
}

/* Checks a block just handed out and takes it into the model. */
static bool take(model *m, live x, bool zeroed)
{
    x.usable = mp_heap_usable_size(m->heap, x.p);
    size_t want = x.size > 8 ? 16 : 8;
    if (x.align > want)
        want = x.align;
    bool ok = true;
    if (x.usable < x.size)
        ok = bad(m, "usable size below the size asked", &x);
    if (((uintptr_t)x.p & (want - 1)) != 0)
        ok = bad(m, "misaligned", &x);
    if (m->lo != NULL && (x.p < m->lo || x.p > m->hi || x.usable > (size_t)(m->hi - x.p)))
        ok = bad(m, "outside the buffer", &x);
    if (!treap_range_free((uintptr_t)x.p, (uintptr_t)x.p + (x.usable ? x.usable : 1)))
        ok = bad(m, "overlaps a live block", &x);
    if (zeroed && !zero_ok(x.p, x.size))
        ok = bad(m, "not zeroed", &x);
    CHECK("model: a new block is sound (size, alignment, no overlap, zeroing)", ok);
    x.serial = ++m->serial;
    pattern_fill(x.p, x.usable, x.serial);
    treap_insert((uintptr_t)x.p, (uintptr_t)x.p + (x.usable ? x.usable : 1));
    m->b[m->n++] = x;
    return ok;
}

/* Verifies block i (its contents and usable size) before it is freed or moved. */
static bool verify(model *m, size_t i)
{
    live *x = &m->b[i];
    bool ok = true;
    if (mp_heap_usable_size(m->heap, x->p) != x->usable)
        ok = bad(m, "usable size changed", x);
    if (!pattern_ok(x->p, x->usable, x->usable, x->serial))
        ok = bad(m, "contents changed while live", x);
    return CHECK("model: a live block keeps its usable size and contents", ok);
}

/* Forgets block i (already freed, or moved by realloc). */
static void forget(model *m, size_t i)
{
    CHECK("model: the treap holds each live block once", treap_delete((uintptr_t)m->b[i].p));
    m->b[i] = m->b[--m->n];
}

/* A refused allocation: allowed only in a bounded heap, and only with ENOMEM. */
static void refused(model *m, int err, size_t size)
{
    if (!CHECK("model: only a buffer or capacity heap refuses, with ENOMEM",
               m->bounded && err == ENOMEM))
        printf("  %s heap, op %" PRIu64 ": %zu bytes refused, errno %d\n", m->kind, m->ops, size,
               err);
    m->failed++;
    m->refused++;
    m->refused_since_reset++;
}

/* ------------------------------------------------------------------------------------------------
 * Operations
 * ---------------------------------------------------------------------------------------------- */

static void op_alloc(model *m)
{
    uint64_t r = below(100);
    size_t size = pick_size(), align = 0;
    unsigned char *p;
    bool zeroed = (m->flags & MP_ZERO) != 0, sized = true;
    errno = 0;
    if (r < 10) {
        size_t k = between(1, 4);
        size = size / k;
        p = mp_heap_calloc(m->heap, k, size);
        size *= k;
        zeroed = true;
    } else if (r < 20) {
        align = below(20) == 0 ? (size_t)1 << between(13, 20) : (size_t)1 << between(0, 12);
        p = mp_heap_aligned_alloc(m->heap, align, size);
        sized = false;
    } else if (r < 23) {
        p = mp_heap_realloc(m->heap, NULL, size); /* is alloc: MP_ZERO still zeroes */
    } else {
        p = mp_heap_alloc(m->heap, size);
    }
    if (p == NULL) {
        refused(m, errno, size);
        return;
    }
    m->allocs++;
    bool large = size > MP_HEAP_MAX_CLASS || align > 4096;
    take(m, (live){p, size, 0, align, 0, large, sized}, zeroed);
}

static void op_free(model *m, size_t i)
{
    if (!verify(m, i))
        return;
    live x = m->b[i];
    uint64_t r = below(100);
    if (r < 40 && x.sized)
        mp_heap_free_sized(m->heap, x.p, r < 20 ? x.size : x.usable);
    else if (r < 45)
        (void)mp_heap_realloc(m->heap, x.p, 0); /* frees, returns NULL */
    else
        mp_heap_free(m->heap, x.p);
    m->frees++;
    forget(m, i);
}

static void op_realloc(model *m, size_t i)
{
    if (!verify(m, i))
        return;
    live x = m->b[i];
    size_t size = below(2) ? pick_size() : x.size / 2 + (size_t)below(x.size * 2 + 2);
    if (size == 0)
        size = 1; /* realloc(p, 0) frees: op_free does that */
    errno = 0;
    unsigned char *q = mp_heap_realloc(m->heap, x.p, size);
    if (q == NULL) {
        if (errno != ENOMEM)
            bad(m, "realloc refused this block", &x);
        refused(m, errno, size);
        CHECK("model: a refused realloc leaves the block untouched",
              pattern_ok(x.p, x.usable, x.usable, x.serial));
        return;
    }
    size_t keep = x.usable < size ? x.usable : size;
    if (!CHECK("model: realloc keeps min(old usable size, new size) bytes",
               pattern_ok(q, x.usable, keep, x.serial)))
        bad(m, "realloc lost contents", &x);
    forget(m, i);
    if (q != x.p) {
        m->allocs++;
        m->frees++;
    }
    bool large = q == x.p ? x.large : size > MP_HEAP_MAX_CLASS;
    /* In place, the block keeps its alignment and its kind (an aligned_alloc block is never freed
     * with free_sized); moved, it is a plain block. Then free_sized names the size asked of
     * realloc: "the size it asked for". */
    take(m, (live){q, size, 0, q == x.p ? x.align : 0, 0, large, q == x.p ? x.sized : true}, false);
}

static void op_reset(model *m)
{
    mp_heap_reset(m->heap);
    m->n = 0;
    treap_clear();
    struct mp_heap_stats s = stats_now(m);
    CHECK("model: after a reset nothing is in use",
          s.blocks_in_use == 0 && s.bytes_in_use == 0 && s.large_in_use == 0);
    m->base = s;
    m->allocs = m->frees = m->failed = 0;
    m->refused_since_reset = 0;
}

static void check_all(model *m)
{
    for (size_t i = 0; i < m->n && !TEST_FAILURES(); i++)
        verify(m, i);
}

enum { STATS_EVERY = 128 };

static void step(model *m)
{
    m->ops++;
    if (m->ops % 4096 == 0)
        m->target = (size_t)below(m->max_live + 1);
    uint64_t r = below(100000);
    if (r < 15 || (m->lo != NULL && m->refused_since_reset > 100)) {
        op_reset(m);     /* and a buffer heap whose large blocks used the buffer up starts over */
    } else if (r < 30) { /* drain */
        while (m->n > 0 && !TEST_FAILURES())
            op_free(m, (size_t)below(m->n));
        stats_compare(m);
    } else if (r < 40) {
        check_all(m);
    } else if (r < 60) {
        mp_heap_free(m->heap, NULL);
        CHECK("model: usable size of NULL is 0", mp_heap_usable_size(m->heap, NULL) == 0);
    } else if (r < 15000 && m->n > 0) {
        op_realloc(m, (size_t)below(m->n));
    } else {
        bool up = m->n < m->target ? below(100) < 65 : below(100) < 35;
        if (m->n == 0 || (up && m->n < m->max_live))
            op_alloc(m);
        else
            op_free(m, (size_t)below(m->n));
    }
    if (m->ops % STATS_EVERY == 0 || r < 60)
        stats_compare(m);
}

/* ------------------------------------------------------------------------------------------------
 * Heaps of each kind
 * ---------------------------------------------------------------------------------------------- */

enum { GUARD = 4096 };
/* Each class in use takes a 2 MiB chunk in a buffer (and up to 2 MiB of alignment padding), and
 * large blocks are not given back before a reset: from 48 MiB, which runs out often (and is reset
 * after 100 refusals), to 768 MiB, which holds every class and a working set. Capacities likewise.
 */
static size_t pick_room(void)
{
    return below(2) ? between(48, 128) * MiB : between(129, 768) * MiB;
}

static bool model_create(model *m, int kind)
{
    static const struct {
        const char *name;
        unsigned flags;
        int buffer, capacity;
    } kinds[] = {
        {"plain", 0, 0, 0},
        {"zeroing", MP_ZERO, 0, 0},
        {"checked", MP_CHECKED, 0, 0},
        {"secure", MP_SECURE, 0, 0},
        {"thread-safe", MP_THREAD_SAFE, 0, 0},
        {"checked thread-safe", MP_CHECKED | MP_THREAD_SAFE, 0, 0},
        {"buffer", 0, 1, 0},
        {"capacity", 0, 0, 1},
    };
    int k = kind % (int)(sizeof kinds / sizeof kinds[0]);
    memset(m, 0, sizeof *m);
    m->kind = kinds[k].name;
    m->flags = kinds[k].flags;
    mp_heap_opts o = {.flags = m->flags, .name = m->kind};
    if (kinds[k].buffer) {
        /* Placed at a fixed offset from a 2 MiB boundary, so that a seed replays exactly (how much
         * of a buffer goes to aligning 2 MiB chunks depends on where it starts). */
        size_t off = GUARD + (size_t)below(64), size = pick_room(), two = 2 * MiB;
        m->raw = aligned_alloc(two, (size + off + GUARD + two - 1) / two * two);
        if (m->raw == NULL)
            return CHECK("model: buffer memory", false);
        m->lo = m->raw + off;
        m->hi = m->lo + size;
        memset(m->raw, 0xC3, off);
        memset(m->hi, 0xC3, GUARD);
        o.buffer = m->lo;
        o.buffer_size = size;
        m->bounded = true;
    }
    if (kinds[k].capacity) {
        m->capacity = pick_room();
        m->source = counting_source_of(&m->cs);
        o.source = &m->source;
        o.capacity = m->capacity;
        m->bounded = true;
    }
    m->heap = mp_heap_create(&o);
    if (!CHECK("model: heap created", m->heap != NULL))
        return false;
    m->max_live = below(4) == 0 ? between(1, 64) : between(64, 3000);
    m->target = (size_t)below(m->max_live + 1);
    m->b = malloc(MAX_LIVE * sizeof *m->b);
    m->base = stats_now(m);
    treap_clear();
    return CHECK("model: memory", m->b != NULL);
}

static void model_destroy(model *m)
{
    check_all(m);
    while (m->n > 0 && !TEST_FAILURES()) /* freed first: leak reports are test_heap's business */
        op_free(m, m->n - 1);
    stats_compare(m);
    mp_heap_destroy(m->heap);
    if (m->capacity != 0)
        CHECK("model: the source contract kept (alignment and size asked)", m->cs.violations == 0);
    CHECK("model: nothing written outside the buffer", guards_ok(m));
    if (m->capacity != 0)
        CHECK("model: destroy gives every byte back to the source",
              m->cs.bytes_out == 0 && m->cs.maps == m->cs.unmaps);
    free(m->raw);
    free(m->b);
}

static void part_model(uint64_t seed, uint64_t ops)
{
    double t0 = seconds();
    R = rng_make(seed, 0);
    run_seed = seed;
    static model m;
    uint64_t done = 0, refusals = 0;
    unsigned heaps = 0;
    int first = (int)below(8);
    while (done < ops && !TEST_FAILURES()) {
        double t_heap = seconds();
        if (!model_create(&m, first + (int)heaps++))
            break;
        /* Every kind once in a run of 8 heaps (kinds in turn from a random first), at least 250 ops
         * each; longer runs go round again. */
        uint64_t n = ops / 8 < 250 ? 250 : ops / 8;
        if (n > ops - done)
            n = ops - done;
        while (m.ops < n && !TEST_FAILURES())
            step(&m);
        if (TEST_FAILURES())
            printf("  FAILED in heap #%u (%s) at op %" PRIu64 "; replay: test_heap_model %" PRIu64
                   " %" PRIu64 "\n",
                   heaps, m.kind, m.ops, seed, ops);
        done += m.ops;
        refusals += m.refused;
        printf("  heap #%u: %s, %" PRIu64 " ops, at most %zu live, %" PRIu64 " refused, %.2f s\n",
               heaps, m.kind, m.ops, m.max_live, m.refused, seconds() - t_heap);
        model_destroy(&m);
    }
    printf("part 1: %u heaps, %" PRIu64 " ops, %" PRIu64 " refused in bounded heaps, %.2f s\n",
           heaps, done, refusals, seconds() - t0);
}

/* ------------------------------------------------------------------------------------------------
 * Part 2: threads
 * ---------------------------------------------------------------------------------------------- */

enum { THREADS = 4, SLOTS = 256, LOCAL = 32, PREFIX = 256 };

typedef struct mt_shared {
    mp_heap *heap; /* NULL: mp_malloc & co. */
    _Atomic(void *) slots[SLOTS];
    atomic_bool stop;
    atomic_ullong snapshots;
} mt_shared;

typedef struct mt_worker {
    mt_shared *sh;
    uint64_t seed, ops;
    uint32_t no;
    uint64_t allocs; /* allocations, and reallocs that moved */
    uint64_t moved, in_place;
} mt_worker;

static void *mt_alloc(const mt_shared *sh, size_t size)
{
    return sh->heap ? mp_heap_alloc(sh->heap, size) : mp_malloc(size);
}
static void *mt_calloc(const mt_shared *sh, size_t n, size_t size)
{
    return sh->heap ? mp_heap_calloc(sh->heap, n, size) : mp_calloc(n, size);
}
static void *mt_aligned(const mt_shared *sh, size_t align, size_t size)
{
    return sh->heap ? mp_heap_aligned_alloc(sh->heap, align, size) : mp_aligned_alloc(align, size);
}
static void *mt_realloc(const mt_shared *sh, void *p, size_t size)
{
    return sh->heap ? mp_heap_realloc(sh->heap, p, size) : mp_realloc(p, size);
}
static void mt_free(const mt_shared *sh, void *p, size_t size_hint)
{
    if (sh->heap == NULL)
        mp_free(p);
    else if (size_hint != 0)
        mp_heap_free_sized(sh->heap, p, size_hint);
    else
        mp_heap_free(sh->heap, p);
}
static size_t mt_usable(const mt_shared *sh, const void *p)
{
    return sh->heap ? mp_heap_usable_size(sh->heap, p) : mp_usable_size(p);
}

/* A stamped block: the stamp in the first 8 bytes and the last 8 of the usable size, a pattern from
 * the stamp (not the address: realloc moves blocks) over the first PREFIX bytes. Blocks are >= 16.
 */
static void mt_fill(unsigned char *p, size_t usable, uint64_t stamp)
{
    memcpy(p, &stamp, 8);
    for (size_t i = 8; i < usable - 8 && i < PREFIX; i++)
        p[i] = (unsigned char)(mix64(stamp + (i >> 3)) >> (8 * (i & 7)));
    memcpy(p + usable - 8, &stamp, 8);
}

/* Verifies the stamp and the pattern over the first `limit` bytes, and with `tail` the stamp at the
 * end of the usable size (not after a shrinking realloc, which keeps only the first bytes). */
static bool mt_ok(const unsigned char *p, size_t usable, size_t limit, bool tail,
                  uint64_t *stamp_out)
{
    uint64_t stamp, last;
    memcpy(&stamp, p, 8);
    *stamp_out = stamp;
    for (size_t i = 8; i < usable - 8 && i < PREFIX && i < limit; i++)
        if (p[i] != (unsigned char)(mix64(stamp + (i >> 3)) >> (8 * (i & 7))))
            return false;
    if (!tail)
        return stamp != 0;
    memcpy(&last, p + usable - 8, 8);
    return stamp != 0 && last == stamp;
}

static size_t mt_size(rng *r)
{
    uint32_t k = rng_below(r, 1000);
    if (k < 700)
        return 16 + rng_below(r, 240);
    if (k < 950)
        return 256 + rng_below(r, 8 * 1024);
    if (k < 995)
        return 8 * 1024 + rng_below(r, (uint32_t)MP_HEAP_MAX_CLASS);
    return MP_HEAP_MAX_CLASS + 1 + rng_below(r, (uint32_t)MiB);
}

/* Verifies and frees a block this thread holds (from any thread). */
static void mt_release(mt_worker *w, unsigned char *p, rng *r)
{
    size_t u = mt_usable(w->sh, p);
    uint64_t stamp;
    if (u < 16 || !mt_ok(p, u, u, true, &stamp))
        tfail("thread %u: block %p (usable %zu) damaged before free", w->no, (void *)p, u);
    mt_free(w->sh, p, rng_below(r, 2) ? u : 0);
}

static void *mt_run(void *arg)
{
    mt_worker *w = arg;
    mt_shared *sh = w->sh;
    rng r = rng_make(w->seed, w->no + 1);
    unsigned char *local[LOCAL];
    size_t nlocal = 0;
    uint64_t count = 0;
    for (uint64_t op = 0; op < w->ops; op++) {
        uint32_t k = rng_below(&r, 100);
        if (k < 35) { /* allocate */
            size_t size = mt_size(&r);
            uint32_t how = rng_below(&r, 100);
            unsigned char *p = how < 15   ? mt_calloc(sh, 1, size)
                               : how < 30 ? mt_aligned(sh, (size_t)16 << rng_below(&r, 9), size)
                                          : mt_alloc(sh, size);
            if (p == NULL) {
                tfail("thread %u: allocation of %zu failed, errno %d", w->no, size, errno);
                continue;
            }
            w->allocs++;
            size_t u = mt_usable(sh, p);
            if (u < size)
                tfail("thread %u: usable %zu < %zu", w->no, u, size);
            if (how < 15 && !all_zero(p, size < 4096 ? size : 4096))
                tfail("thread %u: calloc block not zero", w->no);
            mt_fill(p, u, stamp_make(w->no, ++count));
            if (nlocal < LOCAL) {
                local[nlocal++] = p;
            } else {
                unsigned char *old = atomic_exchange(&sh->slots[rng_below(&r, SLOTS)], p);
                if (old != NULL)
                    mt_release(w, old, &r);
            }
        } else if (k < 60) { /* free one of ours */
            if (nlocal > 0) {
                size_t i = rng_below(&r, (uint32_t)nlocal);
                mt_release(w, local[i], &r);
                local[i] = local[--nlocal];
            }
        } else if (k < 70) { /* realloc one of ours (often allocated by another thread) */
            if (nlocal > 0) {
                size_t i = rng_below(&r, (uint32_t)nlocal);
                unsigned char *p = local[i];
                size_t u = mt_usable(sh, p), size = mt_size(&r);
                uint64_t stamp, stamp2;
                if (!mt_ok(p, u, u, true, &stamp))
                    tfail("thread %u: block damaged before realloc", w->no);
                unsigned char *q = mt_realloc(sh, p, size);
                if (q == NULL) {
                    tfail("thread %u: realloc to %zu failed", w->no, size);
                    continue;
                }
                size_t qu = mt_usable(sh, q);
                if (qu < size || !mt_ok(q, qu, u < size ? u - 8 : size, false, &stamp2) ||
                    stamp2 != stamp)
                    tfail("thread %u: realloc %zu -> %zu lost contents", w->no, u, size);
                if (q != p) {
                    w->moved++;
                    w->allocs++;
                } else {
                    w->in_place++;
                }
                mt_fill(q, qu, stamp);
                local[i] = q;
            }
        } else { /* swap with the exchange */
            unsigned char *give = nlocal > 0 && rng_below(&r, 2) ? local[--nlocal] : NULL;
            unsigned char *got = atomic_exchange(&sh->slots[rng_below(&r, SLOTS)], give);
            if (got != NULL) {
                if (nlocal < LOCAL && rng_below(&r, 2))
                    local[nlocal++] = got;
                else
                    mt_release(w, got, &r);
            }
        }
    }
    /* What the thread still holds outlives it: into the exchange. */
    while (nlocal > 0) {
        unsigned char *old = atomic_exchange(&sh->slots[rng_below(&r, SLOTS)], local[--nlocal]);
        if (old != NULL)
            mt_release(w, old, &r);
    }
    return NULL;
}

static mp_heap *mt_heap(const mt_shared *sh)
{
    return sh->heap ? sh->heap : mp_default_heap();
}

static void *mt_observe(void *arg)
{
    mt_shared *sh = arg;
    while (!atomic_load(&sh->stop)) {
        struct mp_heap_stats s;
        if (mp_heap_stats(mt_heap(sh), &s) != 0)
            tfail("observer: mp_heap_stats failed");
        else if (s.frees > s.allocs || s.allocs - s.frees != s.blocks_in_use)
            tfail("observer: allocs %" PRIu64 " - frees %" PRIu64 " != blocks_in_use %" PRIu64,
                  s.allocs, s.frees, s.blocks_in_use);
        atomic_fetch_add(&sh->snapshots, 1);
        sched_yield();
    }
    return NULL;
}

static void part_threads(const char *what, mp_heap *heap, uint64_t seed, uint64_t ops)
{
    double t0 = seconds();
    static mt_shared sh;
    memset(&sh, 0, sizeof sh);
    sh.heap = heap;
    struct mp_heap_stats s0, s1;
    mp_heap_stats(mt_heap(&sh), &s0);
    mt_worker w[THREADS];
    pthread_t t[THREADS], obs;
    for (uint32_t i = 0; i < THREADS; i++)
        w[i] = (mt_worker){&sh, seed, ops / THREADS, i, 0, 0, 0};
    bool observer = thread_start(&obs, mt_observe, &sh);
    /* Two rounds: blocks the first round's threads leave in the exchange are freed by the second's.
     */
    uint64_t allocs = 0, moved = 0, in_place = 0;
    for (int round = 0; round < 2; round++) {
        for (uint32_t i = 0; i < THREADS; i++)
            w[i].no = (uint32_t)round * THREADS + i;
        if (!CHECK("threads: started", threads_start(t, THREADS, mt_run, w, sizeof w[0])))
            break;
        threads_join(t, THREADS);
        for (uint32_t i = 0; i < THREADS; i++) {
            allocs += w[i].allocs;
            moved += w[i].moved;
            in_place += w[i].in_place;
            w[i].allocs = w[i].moved = w[i].in_place = 0;
        }
    }
    atomic_store(&sh.stop, true);
    if (observer)
        pthread_join(obs, NULL);
    rng r = rng_make(seed, 999);
    mt_worker main_w = {&sh, seed, 0, 99, 0, 0, 0};
    for (size_t i = 0; i < SLOTS; i++) {
        unsigned char *p = atomic_exchange(&sh.slots[i], NULL);
        if (p != NULL)
            mt_release(&main_w, p, &r);
    }
    mp_heap_stats(mt_heap(&sh), &s1);
    CHECK("threads: no block damaged, every allocation served", tfail_take() == 0);
    bool exact = s1.blocks_in_use == s0.blocks_in_use && s1.bytes_in_use == s0.bytes_in_use &&
                 s1.large_in_use == s0.large_in_use && s1.failed_allocs == s0.failed_allocs;
    CHECK("threads: at the end nothing in use (blocks, bytes, large blocks), nothing refused",
          exact);
    bool counted = s1.allocs - s0.allocs == allocs && s1.frees - s0.frees == allocs;
    CHECK("threads: allocs == frees == the allocations the threads counted", counted);
    if (!exact || !counted)
        printf("  %s: in use %" PRIu64 " -> %" PRIu64 ", bytes %" PRIu64 " -> %" PRIu64
               ", large %" PRIu64 " -> %" PRIu64 ", allocs +%" PRIu64 ", frees +%" PRIu64
               " (threads counted %" PRIu64 ")\n",
               what, s0.blocks_in_use, s1.blocks_in_use, s0.bytes_in_use, s1.bytes_in_use,
               s0.large_in_use, s1.large_in_use, s1.allocs - s0.allocs, s1.frees - s0.frees,
               allocs);
    printf("part 2, %s: %d threads x 2 rounds, %" PRIu64 " ops, %" PRIu64 " allocations, %" PRIu64
           " reallocs moved, %" PRIu64 " in place, %llu stats snapshots, %.2f s\n",
           what, THREADS, ops * 2, allocs, moved, in_place,
           (unsigned long long)atomic_load(&sh.snapshots), seconds() - t0);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
    uint64_t ops = argc > 2 ? strtoull(argv[2], NULL, 0) : scaled_at_least(200000, 2000);
    printf("test_heap_model: seed %" PRIu64 ", %" PRIu64 " ops (replay: test_heap_model %" PRIu64
           " %" PRIu64 ")\n",
           seed, ops, seed, ops);
    mp_set_error_handler(record_error, NULL);

    part_model(seed, ops);

    uint64_t mt_ops = ops / 2 < 2000 ? 2000 : ops / 2;
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.flags = MP_THREAD_SAFE, .name = "threads"});
    if (CHECK("threads: heap", h != NULL))
        part_threads("thread-safe heap", h, seed, mt_ops);
    mp_heap_destroy(h);
    part_threads("mp_malloc", NULL, seed, mt_ops);
    h = mp_heap_create(
        &(mp_heap_opts){.flags = MP_THREAD_SAFE | MP_CHECKED, .name = "checked-threads"});
    if (CHECK("threads: checked heap", h != NULL))
        part_threads("checked thread-safe heap", h, seed, mt_ops / 4 < 2000 ? 2000 : mt_ops / 4);
    mp_heap_destroy(h);
    CHECK("threads: no error reported for correct use", atomic_load(&errors_seen) == 0);
    return TEST_DONE();
}

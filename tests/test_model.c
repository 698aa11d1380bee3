/*
 * test_model.c: a model-based randomized test of pools against a reference model.
 *
 * Usage: test_model [SEED [OPS]]
 *   SEED  the random seed (default 1); printed at start and on failure so any run replays exactly.
 *   OPS   pool operations to run (default 2,000,000 times the environment's MP_TEST_SCALE, e.g.
 *         MP_TEST_SCALE=0.02 under valgrind). The same SEED and OPS give the same run.
 *
 * A run is a sequence of pools with random geometry: block sizes 1..64 KiB (rarely 1 MiB), the
 * default or an explicit alignment up to 1 MiB, a capacity or none, MP_ZERO or not, plain, checked
 * or secure, memory from the system or from a caller's buffer at a random offset with guard bytes
 * around it. Checked and secure pools must behave exactly like plain ones for a correct program and
 * report nothing, except a checked pool's one leak report at a destroy with blocks still live. Each
 * pool takes random mp_pool_alloc / mp_pool_free (steered toward a wandering target of live
 * blocks), and rarely reset, trim, check, owns, free(NULL), drain-all and fill-until-refused.
 *
 * The model knows, after every operation:
 *   - the live blocks (an array for picking one at random, and a treap keyed by address so that a
 *     new block is checked against its two neighbours for overlap in O(log n));
 *   - what the free list holds: the blocks freed since the last reset or trim, most recent on top,
 *     so it predicts the exact address of the next alloc ("the most recently freed block is reused
 *     first"), plus a count of free blocks of unknown order (resynchronised from the stats after a
 *     reset or trim, the only times the contract leaves the order open);
 *   - whether the next alloc must succeed (a free block exists, or the memory is the system's) or
 *     must fail with ENOMEM (capacity reached; a buffer pool past the block count it held before);
 *   - every statistics counter, compared field by field after every operation, and which
 *     operations may not touch memory (free, alloc from the free list, reset) or may touch it only
 *     once (alloc: "at most one source call").
 * Every block is filled at alloc with a pattern derived from (seed, block serial number) and
 * verified at free, so a write by the library into a live block, or an overlap the treap missed,
 * shows up.
 *
 * Thread-safe pools (used from this one thread) refill a thread's cache with a batch of blocks at
 * once, and the header lets that show: reuse is LIFO only within a thread's cache, and blocks taken
 * into a cache count as handed out and in blocks_peak. For them the model checks bounds instead of
 * exact values: the reuse order (a set of free blocks instead of a stack), blocks_free and
 * blocks_peak (at least the model's), memory taken by an alloc that found a free block, source
 * calls per alloc and the lowest-address-first order after a reset (both of which test_pool's
 * thread-safe section checks exactly).
 */
#define _POSIX_C_SOURCE 200809L

#include "mempool.h"
#include "test.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * Random numbers: splitmix64, small and good enough for choosing operations
 * ---------------------------------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static uint64_t rng_next(void)
{
    return mix64(rng_state += 0x9E3779B97F4A7C15u);
}

/* Uniform in [0, n); 0 when n is 0. The modulo bias is irrelevant here. */
static uint64_t rng_below(uint64_t n)
{
    return n ? rng_next() % n : 0;
}

static size_t rng_between(size_t lo, size_t hi)
{
    return lo + (size_t)rng_below((uint64_t)(hi - lo) + 1);
}

/* ------------------------------------------------------------------------------------------------
 * Treaps of block addresses: insert, delete, and the neighbours of an address
 * ---------------------------------------------------------------------------------------------- */

enum { MAX_LIVE = 1 << 14 };

typedef struct tnode {
    uintptr_t key;
    uint64_t prio;
    int32_t l, r;
} tnode;

typedef struct treap {
    tnode nodes[MAX_LIVE];
    int32_t unused[MAX_LIVE]; /* a stack of free node indexes */
    int32_t nunused, root;
} treap;

/* The live blocks; and, for thread-safe pools, whose reuse order is open, the free ones. */
static treap live_set, free_set;

static void treap_clear(treap *t)
{
    t->root = -1;
    t->nunused = MAX_LIVE;
    for (int32_t i = 0; i < MAX_LIVE; i++)
        t->unused[i] = MAX_LIVE - 1 - i;
}

/* Splits n into keys < key (*a) and keys >= key (*b). */
static void treap_split(treap *t, int32_t n, uintptr_t key, int32_t *a, int32_t *b)
{
    if (n < 0) {
        *a = *b = -1;
    } else if (t->nodes[n].key < key) {
        treap_split(t, t->nodes[n].r, key, &t->nodes[n].r, b);
        *a = n;
    } else {
        treap_split(t, t->nodes[n].l, key, a, &t->nodes[n].l);
        *b = n;
    }
}

/* Joins a and b, every key of a below every key of b. */
static int32_t treap_merge(treap *t, int32_t a, int32_t b)
{
    if (a < 0 || b < 0)
        return a < 0 ? b : a;
    if (t->nodes[a].prio > t->nodes[b].prio) {
        t->nodes[a].r = treap_merge(t, t->nodes[a].r, b);
        return a;
    }
    t->nodes[b].l = treap_merge(t, a, t->nodes[b].l);
    return b;
}

static void treap_insert(treap *t, uintptr_t key)
{
    int32_t n = t->unused[--t->nunused], a, b;
    t->nodes[n] = (tnode){key, mix64(key ^ 0x5EED), -1, -1};
    treap_split(t, t->root, key, &a, &b);
    t->root = treap_merge(t, treap_merge(t, a, n), b);
}

/* Removes key; false if it was not there. */
static bool treap_delete(treap *t, uintptr_t key)
{
    int32_t a, b, m, c;
    treap_split(t, t->root, key, &a, &b);
    treap_split(t, b, key + 1, &m, &c);
    t->root = treap_merge(t, a, c);
    if (m < 0)
        return false;
    bool single = t->nodes[m].l < 0 && t->nodes[m].r < 0;
    t->unused[t->nunused++] = m;
    return single;
}

static size_t treap_size(const treap *t)
{
    return (size_t)(MAX_LIVE - t->nunused);
}

/* The largest key <= key (floor) and the smallest key > key (above); 0 when there is none. */
static uintptr_t treap_floor(const treap *t, uintptr_t key)
{
    uintptr_t best = 0;
    for (int32_t n = t->root; n >= 0;)
        if (t->nodes[n].key <= key)
            best = t->nodes[n].key, n = t->nodes[n].r;
        else
            n = t->nodes[n].l;
    return best;
}

static uintptr_t treap_above(const treap *t, uintptr_t key)
{
    uintptr_t best = 0;
    for (int32_t n = t->root; n >= 0;)
        if (t->nodes[n].key > key)
            best = t->nodes[n].key, n = t->nodes[n].l;
        else
            n = t->nodes[n].r;
    return best;
}

/* ------------------------------------------------------------------------------------------------
 * The model of one pool
 * ---------------------------------------------------------------------------------------------- */

typedef struct live_block {
    unsigned char *p;
    uint64_t serial; /* seeds the block's fill pattern */
    uint64_t epoch;  /* resets + trims when it was handed out */
} live_block;

typedef struct model {
    mp_pool *pool;
    unsigned id; /* the pool's number in the run, for messages */
    /* Geometry as asked for, and as the pool reports it at creation. */
    size_t block_size, align_asked, align, stride, capacity;
    unsigned flags;
    unsigned char *raw, *buf; /* buffer pools: the malloc'd area, the buffer inside its guards */
    size_t buf_size, buf_off;
    char name[MP_NAME_MAX];
    /* Blocks. */
    live_block *live;
    size_t nlive, max_live, target;
    unsigned char **known; /* freed since the last reset or trim; the top is reused next */
    size_t nknown;
    uint64_t free_unknown; /* other free blocks, order unknown (after a reset or trim) */
    uint64_t buf_blocks;   /* buffer pools: the blocks it held when first full; 0 = not yet known */
    bool lifo;             /* the reuse order is known: not a thread-safe pool (see op_alloc) */
    mp_stats last;         /* the stats after the last operation */
    /* Counters as the statistics should show them. */
    uint64_t allocs, frees, failed, peak, resets, trims, serial;
    /* For "after a reset the lowest addresses come first". */
    uintptr_t lowest;
    bool trimmed, expect_lowest;
} model;

static uint64_t run_seed;
static uint64_t ops_done;
/* While set, operations keep the model but read no statistics (stats_compare does nothing), so the
 * next operation is the first to look at the pool after them. Only around operations that take no
 * memory, so that operation's "before" stays right. */
static bool stats_quiet;
static const char *last_op = "none"; /* for the failure message */

/* Errors reported by checked and secure pools; a correct program sees none but leaks. */
static int errors_seen;
static mp_error last_error;

static char last_message[256];

static void record_error(const mp_error *e, void *ctx)
{
    (void)ctx;
    errors_seen++;
    last_error = *e;
    snprintf(last_message, sizeof last_message, "%s", e->message ? e->message : "(no message)");
    last_error.message = last_message; /* the library's text is valid only during the call */
}

/* ------------------------------------------------------------------------------------------------
 * Block contents: a pattern from (seed, serial); large blocks are patterned at both ends only
 * ---------------------------------------------------------------------------------------------- */

enum { PATTERN_EDGE = 512 };

static uint64_t pattern_word(uint64_t serial, size_t i)
{
    return mix64(run_seed ^ (serial * 0x9E3779B97F4A7C15u)) + (uint64_t)i * 0xD1B54A32D192ED03u;
}

/* Calls fn on each patterned byte range [from, to) of a block of n bytes. */
#define PATTERN_RANGES(n, from0, to0, from1, to1)                                                  \
    size_t from0 = 0, to0 = (n) <= 2 * PATTERN_EDGE ? (n) : PATTERN_EDGE;                          \
    size_t from1 = (n) <= 2 * PATTERN_EDGE ? (n) : (n)-PATTERN_EDGE, to1 = (n)

/* Byte i of the pattern is byte i % 8 of word i / 8; each word is computed once. */
static void fill_range(unsigned char *p, size_t from, size_t to, uint64_t serial)
{
    uint64_t w = pattern_word(serial, from / 8);
    for (size_t i = from; i < to; i++) {
        if (i % 8 == 0)
            w = pattern_word(serial, i / 8);
        p[i] = (unsigned char)(w >> (8 * (i % 8)));
    }
}

static bool range_ok(const unsigned char *p, size_t from, size_t to, uint64_t serial)
{
    uint64_t w = pattern_word(serial, from / 8);
    for (size_t i = from; i < to; i++) {
        if (i % 8 == 0)
            w = pattern_word(serial, i / 8);
        if (p[i] != (unsigned char)(w >> (8 * (i % 8))))
            return false;
    }
    return true;
}

static bool range_zero(const unsigned char *p, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (p[i] != 0)
            return false;
    return true;
}

static void pattern_fill(unsigned char *p, size_t n, uint64_t serial)
{
    PATTERN_RANGES(n, a0, a1, b0, b1);
    fill_range(p, a0, a1, serial);
    fill_range(p, b0, b1, serial);
}

static bool pattern_ok(const unsigned char *p, size_t n, uint64_t serial)
{
    PATTERN_RANGES(n, a0, a1, b0, b1);
    return range_ok(p, a0, a1, serial) && range_ok(p, b0, b1, serial);
}

/* Quick: the first and last 16 bytes only, for checks over all live blocks. */
static bool pattern_quick_ok(const unsigned char *p, size_t n, uint64_t serial)
{
    size_t k = n < 16 ? n : 16;
    return range_ok(p, 0, k, serial) && range_ok(p, n - k, n, serial);
}

static bool pattern_zero(const unsigned char *p, size_t n)
{
    PATTERN_RANGES(n, a0, a1, b0, b1);
    return range_zero(p, a0, a1) && range_zero(p, b0, b1);
}

/* ------------------------------------------------------------------------------------------------
 * Statistics against the model
 * ---------------------------------------------------------------------------------------------- */

/* What an operation may do to the pool's memory. */
enum mem_effect {
    MEM_KEEP, /* no source call, nothing reserved or given back */
    MEM_GROW, /* at most one source call, reserve only grows */
    MEM_TRIM, /* no source call; reserve drops by exactly the bytes trim returned */
};

static mp_stats stats_now(const model *m)
{
    mp_stats s;
    memset(&s, 0xEE, sizeof s);
    CHECK("model: mp_pool_stats returns 0", mp_pool_stats(m->pool, &s) == 0);
    return s;
}

/* Compares the stats with the model after an operation, and keeps them as the next one's "before"
 * (reading stats walks the free list: reading them once per operation halves the test's time). */
static void stats_compare(model *m, const mp_stats *before, enum mem_effect effect, size_t trimmed)
{
    if (stats_quiet)
        return;
    mp_stats s = stats_now(m);
    m->last = s;
    CHECK("model: stats blocks_in_use", s.blocks_in_use == m->nlive);
    CHECK("model: stats allocs", s.allocs == m->allocs);
    CHECK("model: stats frees", s.frees == m->frees);
    CHECK("model: stats failed_allocs", s.failed_allocs == m->failed);
    if (m->flags & MP_THREAD_SAFE) {
        /* A thread's cache is refilled with a batch of blocks carved at once: they count as free
         * (ready for reuse, never used), and the pool's peak, derived from blocks carved, counts
         * them too. test_pool checks the peak's contract strictly; here only the bounds. */
        CHECK("model: stats blocks_peak (thread-safe: at least the model's)",
              s.blocks_peak >= m->peak);
        CHECK("model: stats blocks_free (thread-safe: at least the model's)",
              s.blocks_free >= m->nknown + m->free_unknown + treap_size(&free_set));
    } else {
        CHECK("model: stats blocks_peak", s.blocks_peak == m->peak);
        CHECK("model: stats blocks_free", s.blocks_free == m->nknown + m->free_unknown);
    }
    CHECK("model: stats resets", s.resets == m->resets);
    CHECK("model: stats trims", s.trims == m->trims);
    CHECK("model: stats bytes_used", s.bytes_used == (uint64_t)m->nlive * m->block_size);
    CHECK("model: stats bytes_used <= bytes_reserved", s.bytes_used <= s.bytes_reserved);
    CHECK("model: no error reported for correct use", errors_seen == 0);
    CHECK("model: stats geometry constant",
          s.block_size == m->block_size && s.align == m->align && s.stride == m->stride &&
              s.capacity == m->capacity && strcmp(s.name, m->name) == 0);
    if (m->buf) {
        CHECK("model: buffer pool: one chunk, no source call, within the buffer",
              s.chunks == 1 && s.source_maps == 0 && s.bytes_reserved <= m->buf_size);
    }
    switch (effect) {
    case MEM_KEEP:
        CHECK("model: operation left the pool's memory alone",
              s.bytes_reserved == before->bytes_reserved && s.source_maps == before->source_maps &&
                  s.chunks == before->chunks);
        break;
    case MEM_GROW:
        CHECK("model: alloc only grows the pool's memory",
              s.bytes_reserved >= before->bytes_reserved && s.chunks >= before->chunks &&
                  s.source_maps >= before->source_maps);
        if (m->lifo) /* thread-safe pools: see the file header */
            CHECK("model: alloc makes at most one source call",
                  s.source_maps - before->source_maps <= 1);
        break;
    case MEM_TRIM:
        CHECK("model: trim gives back exactly what it returns, with no source map",
              s.bytes_reserved == before->bytes_reserved - trimmed &&
                  s.source_maps == before->source_maps && s.chunks <= before->chunks);
        break;
    }
}

/* ------------------------------------------------------------------------------------------------
 * Operations
 * ---------------------------------------------------------------------------------------------- */

static void op_alloc(model *m)
{
    last_op = "alloc";
    mp_stats before = m->last;
    uint64_t carved = m->nlive + m->nknown + m->free_unknown;
    bool full = m->capacity != 0 && m->nlive == m->capacity;
    bool has_free = m->nknown + m->free_unknown + treap_size(&free_set) > 0;
    errno = 0;
    unsigned char *p = mp_pool_alloc(m->pool);
    int err = errno;

    if (full)
        CHECK("model: alloc at capacity gives NULL", p == NULL);
    else if (has_free)
        CHECK("model: alloc with a free block on the list succeeds", p != NULL);
    else if (!m->buf)
        CHECK("model: alloc from the system succeeds", p != NULL);
    else if (m->buf_blocks != 0)
        CHECK("model: a buffer pool holds the same number of blocks every time",
              (p != NULL) == (carved < m->buf_blocks));

    if (p == NULL) {
        CHECK("model: a refused alloc sets ENOMEM", err == ENOMEM);
        if (m->buf && !full && !has_free && m->buf_blocks == 0) {
            CHECK("model: a buffer pool create accepted holds at least one block", carved >= 1);
            m->buf_blocks = carved;
        }
        m->failed++;
        stats_compare(m, &before, MEM_KEEP, 0);
        return;
    }

    if (m->nknown > 0) {
        CHECK("model: the most recently freed block is reused first", p == m->known[m->nknown - 1]);
        m->nknown--;
    } else if (!m->lifo && treap_delete(&free_set, (uintptr_t)p)) {
        /* A thread-safe pool: a freed block came back, in an order the model does not predict. */
    } else if (m->free_unknown > 0) {
        m->free_unknown--;
    }
    if (m->expect_lowest) {
        CHECK("model: after a reset the lowest address comes first", (uintptr_t)p == m->lowest);
        m->expect_lowest = false;
    }
    if ((uintptr_t)p < m->lowest)
        m->lowest = (uintptr_t)p;

    CHECK("model: block aligned to the pool's alignment", ((uintptr_t)p & (m->align - 1)) == 0);
    if (m->align_asked)
        CHECK("model: block aligned as asked", ((uintptr_t)p & (m->align_asked - 1)) == 0);
    if (m->buf)
        CHECK("model: buffer pool block inside the buffer",
              p >= m->buf && p + m->block_size <= m->buf + m->buf_size);
    uintptr_t lo = treap_floor(&live_set, (uintptr_t)p), hi = treap_above(&live_set, (uintptr_t)p);
    CHECK("model: new block does not overlap the live block below it",
          lo == 0 || lo + m->block_size <= (uintptr_t)p);
    CHECK("model: new block does not overlap the live block above it",
          hi == 0 || (uintptr_t)p + m->block_size <= hi);
    if (m->flags & MP_ZERO)
        CHECK("model: MP_ZERO block is zero", pattern_zero(p, m->block_size));
    if (TEST_FAILURES())
        return; /* do not write into memory the pool may not have given */

    uint64_t serial = ++m->serial;
    pattern_fill(p, m->block_size, serial);
    treap_insert(&live_set, (uintptr_t)p);
    m->live[m->nlive++] = (live_block){p, serial, m->resets + m->trims};
    m->allocs++;
    if (m->nlive > m->peak)
        m->peak = m->nlive;
    /* A free block is handed out with no memory taken; a thread-safe pool may refill its cache
     * from new memory even then (the batching of the file header). */
    stats_compare(m, &before, has_free && m->lifo ? MEM_KEEP : MEM_GROW, 0);
}

static void op_free(model *m, size_t i)
{
    last_op = "free";
    mp_stats before = m->last;
    live_block b = m->live[i];
    CHECK("model: a live block keeps its contents until freed",
          pattern_ok(b.p, m->block_size, b.serial));
    mp_pool_free(m->pool, b.p);
    CHECK("model: freed block was in the live set", treap_delete(&live_set, (uintptr_t)b.p));
    m->live[i] = m->live[--m->nlive];
    if (m->lifo)
        m->known[m->nknown++] = b.p;
    else
        treap_insert(&free_set, (uintptr_t)b.p);
    m->frees++;
    stats_compare(m, &before, MEM_KEEP, 0);
}

static void op_free_null(model *m)
{
    last_op = "free(NULL)";
    mp_stats before = m->last;
    mp_pool_free(m->pool, NULL);
    stats_compare(m, &before, MEM_KEEP, 0);
}

/* After a reset or trim the free list's order is open: resynchronise its size from the stats. */
static void forget_order(model *m, uint64_t free_before)
{
    mp_stats s = stats_now(m);
    if (m->lifo) /* a thread-safe pool carves blocks into its cache unseen by the model */
        CHECK("model: free blocks after reset/trim no more than carved before",
              s.blocks_free <= free_before);
    m->nknown = 0;
    treap_clear(&free_set);
    m->free_unknown = s.blocks_free <= free_before || !m->lifo ? s.blocks_free : 0;
}

static void op_reset(model *m)
{
    last_op = "reset";
    mp_stats before = m->last;
    uint64_t carved = m->nlive + m->nknown + m->free_unknown + treap_size(&free_set);
    mp_pool_reset(m->pool);
    m->frees += m->nlive;
    m->nlive = 0;
    treap_clear(&live_set);
    treap_clear(&free_set);
    m->resets++;
    forget_order(m, carved);
    m->expect_lowest = m->lifo && !m->trimmed && before.chunks == 1 && carved > 0;
    stats_compare(m, &before, MEM_KEEP, 0);
}

static bool live_all_quick_ok(const model *m)
{
    for (size_t i = 0; i < m->nlive; i++)
        if (!pattern_quick_ok(m->live[i].p, m->block_size, m->live[i].serial))
            return false;
    return true;
}

static void op_trim(model *m)
{
    last_op = "trim";
    mp_stats before = m->last;
    size_t got = mp_pool_trim(m->pool);
    if (m->buf)
        CHECK("model: trim of a buffer pool gives back 0", got == 0);
    CHECK("model: trim keeps every live block intact", live_all_quick_ok(m));
    m->trims++;
    m->trimmed = true;
    m->expect_lowest = false;
    forget_order(m, m->nknown + m->free_unknown + treap_size(&free_set));
    stats_compare(m, &before, MEM_TRIM, got);
}

static void op_check(model *m)
{
    last_op = "check";
    mp_stats before = m->last;
    CHECK("model: mp_pool_check passes on a healthy pool", mp_pool_check(m->pool));
    CHECK("model: live blocks intact at check", live_all_quick_ok(m));
    stats_compare(m, &before, MEM_KEEP, 0);
}

static void op_owns(model *m)
{
    last_op = "owns";
    mp_stats before = m->last;
    int local = 0;
    CHECK("model: owns is false for a stack address", !mp_pool_owns(m->pool, &local));
    if (m->nlive == 0)
        return;
    live_block b = m->live[rng_below(m->nlive)];
    /* Only blocks handed out since the last reset or trim are the pool's by the contract's words.
     */
    if (b.epoch == m->resets + m->trims)
        CHECK("model: owns a live block", mp_pool_owns(m->pool, b.p));
    CHECK("model: owns is false for an interior pointer", !mp_pool_owns(m->pool, b.p + 1));
    if (m->nknown > 0)
        CHECK("model: owns a block freed since the last reset/trim",
              mp_pool_owns(m->pool, m->known[rng_below(m->nknown)]));
    stats_compare(m, &before, MEM_KEEP, 0);
}

/* ------------------------------------------------------------------------------------------------
 * Pools: random geometry, creation and destruction
 * ---------------------------------------------------------------------------------------------- */

enum { GUARD = 64 };

static bool guards_ok(const model *m)
{
    for (size_t i = 0; i < GUARD + m->buf_off; i++)
        if (m->raw[i] != 0xC3)
            return false;
    for (size_t i = 0; i < GUARD; i++)
        if (m->buf[m->buf_size + i] != 0xC3)
            return false;
    return true;
}

static size_t round_up(size_t n, size_t align)
{
    return (n + align - 1) / align * align;
}

static size_t pow2_between(unsigned lo, unsigned hi)
{
    return (size_t)1 << rng_between(lo, hi);
}

static void model_pick_geometry(model *m)
{
    uint64_t r = rng_below(100);
    m->block_size = r < 50   ? rng_between(1, 64)
                    : r < 80 ? rng_between(65, 512)
                    : r < 95 ? rng_between(513, 4096)
                    : r < 99 ? rng_between(4097, 65536)
                             : rng_between(1 << 20, (1 << 20) + 100);
    r = rng_below(100);
    m->align_asked = r < 60 ? 0 : r < 95 ? pow2_between(0, 12) : pow2_between(13, 20);
    m->flags = rng_below(100) < 30 ? MP_ZERO : 0;
    r = rng_below(100);
    m->flags |= r < 15 ? MP_CHECKED : r < 25 ? MP_SECURE : r < 30 ? MP_CHECKED | MP_SECURE : 0;
    if (rng_below(100) < 20)
        m->flags |= MP_THREAD_SAFE; /* used from this thread only: must behave the same */
    size_t room = m->block_size > m->align_asked ? m->block_size : m->align_asked;
    /* 8 MiB of live blocks at most; it also bounds the free list each stats read walks. */
    size_t by_memory = (8u << 20) / (room + 8);
    m->max_live = rng_below(4) == 0 ? rng_between(1, 64) : rng_between(1, 4000);
    if (m->max_live > by_memory)
        m->max_live = by_memory ? by_memory : 1;
    m->capacity = rng_below(2) ? 0 : rng_between(1, m->max_live + m->max_live / 4);
    m->buf = NULL;
    m->buf_size = m->buf_off = 0;
    if (rng_below(100) < 25 && room <= 65536 && !(m->flags & MP_THREAD_SAFE)) {
        m->buf_off = (size_t)rng_below(64);
        m->buf_size =
            (size_t)rng_between(1, m->max_live) * (room + m->align_asked) + (size_t)rng_below(8192);
    }
}

/* Creates the pool for m's geometry; buffer pools grow their buffer until create accepts it. */
static bool model_create(model *m, unsigned id, bool buffered)
{
    m->id = id;
    snprintf(m->name, sizeof m->name, "model-%u", id);
    mp_pool_opts opts = {.block_size = m->block_size,
                         .align = m->align_asked,
                         .capacity = m->capacity,
                         .flags = m->flags,
                         .name = m->name};
    m->raw = NULL;
    for (int tries = 0; tries < 24; tries++) {
        if (buffered) {
            free(m->raw);
            m->raw = malloc(m->buf_size + m->buf_off + 2 * GUARD);
            if (!m->raw)
                return false;
            m->buf = m->raw + GUARD + m->buf_off;
            memset(m->raw, 0xC3, m->buf_size + m->buf_off + 2 * GUARD);
            memset(m->buf, 0xA5, m->buf_size); /* a dirty buffer, for MP_ZERO */
            opts.buffer = m->buf;
            opts.buffer_size = m->buf_size;
        }
        errno = 0;
        m->pool = mp_pool_create(&opts);
        if (m->pool || !buffered || errno != EINVAL)
            break;
        m->buf_size += m->buf_size / 2 + 4096; /* too small for bookkeeping and a block */
    }
    if (!CHECK("model: pool created", m->pool != NULL)) {
        printf("  create failed: errno %d\n", errno);
        return false;
    }
    mp_stats s = stats_now(m);
    m->last = s;
    m->align = s.align;
    m->stride = s.stride;
    CHECK("model: mp_pool_align agrees with stats", mp_pool_align(m->pool) == m->align);
    CHECK("model: alignment at least the one asked and a pointer's",
          m->align >= m->align_asked && m->align >= sizeof(void *) &&
              (m->align & (m->align - 1)) == 0);
    size_t want =
        round_up(m->block_size < sizeof(void *) ? sizeof(void *) : m->block_size, m->align);
    if (m->flags & MP_CHECKED) /* "each block takes 16 bytes more" (canary, site) */
        CHECK("model: checked stride: block_size rounded up, plus room, aligned",
              m->stride >= want && m->stride % m->align == 0);
    else
        CHECK("model: stride is block_size rounded up to the alignment", m->stride == want);
    m->live = malloc(m->max_live * sizeof *m->live);
    m->known = malloc((m->max_live + 1) * sizeof *m->known);
    m->nlive = m->nknown = 0;
    m->free_unknown = m->buf_blocks = 0;
    m->allocs = m->frees = m->failed = m->peak = m->resets = m->trims = m->serial = 0;
    m->lowest = UINTPTR_MAX;
    m->trimmed = m->expect_lowest = false;
    m->lifo = !(m->flags & MP_THREAD_SAFE);
    m->target = rng_below(m->max_live + 1);
    treap_clear(&live_set);
    treap_clear(&free_set);
    return m->live && m->known;
}

static void model_destroy(model *m)
{
    bool intact = true;
    for (size_t i = 0; i < m->nlive && !TEST_FAILURES(); i++)
        intact = intact && pattern_ok(m->live[i].p, m->block_size, m->live[i].serial);
    CHECK("model: live blocks intact at destroy", intact);
    if (m->buf)
        CHECK("model: nothing written outside the buffer", guards_ok(m));
    errors_seen = 0;
    mp_pool_destroy(m->pool);
    if ((m->flags & MP_CHECKED) && m->nlive > 0) {
        CHECK("model: a checked pool reports its live blocks as one leak at destroy",
              errors_seen == 1 && last_error.kind == MP_ERR_LEAK && last_error.count == m->nlive &&
                  treap_floor(&live_set, (uintptr_t)last_error.addr) == (uintptr_t)last_error.addr);
    } else {
        CHECK("model: destroy reports nothing", errors_seen == 0);
    }
    errors_seen = 0;
    free(m->raw);
    free(m->live);
    free(m->known);
    m->pool = NULL;
    m->raw = m->buf = NULL;
}

static void model_describe(const model *m)
{
    mp_stats s = stats_now(m);
    printf("  last operation: %s\n", last_op);
    if (errors_seen)
        printf("  last error reported: %s\n",
               last_error.message ? last_error.message : "(no message)");
    printf("  model: in use %zu, allocs %" PRIu64 ", frees %" PRIu64 ", failed %" PRIu64
           ", peak %" PRIu64 ", free %" PRIu64 "\n",
           m->nlive, m->allocs, m->frees, m->failed, m->peak, m->nknown + m->free_unknown);
    printf("  stats: in use %" PRIu64 ", allocs %" PRIu64 ", frees %" PRIu64 ", failed %" PRIu64
           ", peak %" PRIu64 ", free %" PRIu64 ", reserved %" PRIu64 ", chunks %" PRIu64 "\n",
           s.blocks_in_use, s.allocs, s.frees, s.failed_allocs, s.blocks_peak, s.blocks_free,
           s.bytes_reserved, s.chunks);
    printf(
        "  pool #%u: block_size %zu, align %zu (asked %zu), stride %zu, capacity %zu, flags %#x, "
        "%s%zu bytes at offset %zu; live %zu, known free %zu, other free %" PRIu64 "\n",
        m->id, m->block_size, m->align, m->align_asked, m->stride, m->capacity, m->flags,
        m->buf ? "buffer " : "system, buffer ", m->buf ? m->buf_size : 0, m->buf ? m->buf_off : 0,
        m->nlive, m->nknown, m->free_unknown);
}

/* ------------------------------------------------------------------------------------------------
 * The region pattern: build, reset, build again (carving never-used space: after a reset, after a
 * trim, across chunk and run ends, up to a capacity, in a buffer), with the stats compared after
 * every step as in the random run. Blocks of 256 bytes: 255 to a 64 KiB chunk, runs of 1, 1, 2, 4
 * chunks, so 1300 blocks cross three run ends and a chunk end inside a run.
 * ---------------------------------------------------------------------------------------------- */

enum { REGION_BLOCK = 256, REGION_BLOCKS = 1300 };

typedef struct region_case {
    size_t capacity;
    unsigned flags;
    bool buffered;
} region_case;

/* Allocates until n blocks are live or an alloc is refused, recording each block in order[]. */
static size_t region_fill(model *m, size_t n, unsigned char **order)
{
    size_t got = 0;
    uint64_t failed = m->failed;
    while (m->nlive < n && m->failed == failed && !TEST_FAILURES()) {
        op_alloc(m);
        if (m->failed == failed)
            order[got++] = m->live[m->nlive - 1].p;
    }
    return got;
}

static void region_free_block(model *m, const unsigned char *p)
{
    for (size_t i = 0; i < m->nlive; i++)
        if (m->live[i].p == p) {
            op_free(m, i);
            return;
        }
    CHECK("model: region: the block to free is live", false);
}

/* A refill after a reset, with no statistics read (stats_quiet): it takes no memory, and the
 * operation after it is the first to look at what the inline path carved. */
static size_t region_refill_quiet(model *m, size_t n, unsigned char **order)
{
    op_reset(m);
    stats_quiet = true;
    size_t k = region_fill(m, n, order);
    stats_quiet = false;
    return k;
}

/* Fills the pool; resets and fills it again (the same blocks in the same order: "in the order it
 * first carved them"), each refill looked at first by another call (check, owns, trim, reset,
 * stats); frees a run's worth and reuses it before carving on; trims what a drain left free and
 * carves again. */
static void region_case_run(const region_case *c, unsigned id)
{
    static model m;
    static unsigned char *first[REGION_BLOCKS], *again[REGION_BLOCKS];
    memset(&m, 0, sizeof m);
    m.block_size = REGION_BLOCK;
    m.flags = c->flags;
    m.capacity = c->capacity;
    m.max_live = REGION_BLOCKS;
    if (c->buffered) {
        m.buf_off = 8;
        m.buf_size = 700 * REGION_BLOCK + 3000; /* about 700 blocks after the pool's struct */
    }
    if (!model_create(&m, id, c->buffered))
        return;
    size_t n = region_fill(&m, REGION_BLOCKS, first);
    op_check(&m);
    for (int round = 0; round < 5 && !TEST_FAILURES(); round++) {
        size_t k = region_refill_quiet(&m, round == 1 ? n / 3 : REGION_BLOCKS, again);
        CHECK("model: region: a refill after a reset carves as many blocks", round == 1 || k == n);
        for (size_t i = 0; m.lifo && i < k; i++)
            CHECK("model: region: a reset hands out the blocks in the order first carved",
                  again[i] == first[i]);
        if (round == 0)
            op_check(&m);
        else if (round == 1)
            op_owns(&m);
        else if (round == 2)
            op_trim(&m); /* nothing free: gives nothing back */
        else if (round == 3)
            op_free_null(&m); /* the statistics */
    }                         /* round 4's refill is looked at by the reset below */
    /* Blocks 1020-1275 (run 4's first chunk and the block its second began with) freed unseen: a
     * trim that counted only the carves made before the last chunk change would give run 4 back
     * with blocks still live in it. */
    size_t k = region_refill_quiet(&m, REGION_BLOCKS, again);
    stats_quiet = true;
    for (size_t i = 1020; i <= 1275 && i < k; i++)
        region_free_block(&m, again[i]);
    stats_quiet = false;
    op_trim(&m);
    op_check(&m);
    /* The first 255 blocks freed: reused first, then carving goes on at the cursor. Freed again,
     * a trim gives their run back (not in a buffer), and carving goes on after it. */
    op_reset(&m);
    k = region_fill(&m, REGION_BLOCKS, again);
    for (size_t i = 0; i < 255 && i < k; i++)
        region_free_block(&m, again[i]);
    k = region_fill(&m, REGION_BLOCKS, first);
    op_check(&m);
    for (size_t i = 0; i < 255 && i < k; i++)
        region_free_block(&m, first[i]);
    op_trim(&m);
    region_fill(&m, REGION_BLOCKS, again);
    op_check(&m);
    while (m.nlive > 0 && !TEST_FAILURES())
        op_free(&m, m.nlive - 1);
    op_trim(&m);
    region_fill(&m, REGION_BLOCKS, again);
    op_reset(&m);
    region_fill(&m, REGION_BLOCKS / 2, again);
    op_check(&m);
    model_destroy(&m);
}

/* Each case with every kind of pool: a plain pool carves inline, the others on their own paths,
 * and all must count the same. */
static void region_cases(void)
{
    static const region_case cases[] = {
        {0, 0, false},   /* unbounded: chunk and run ends */
        {600, 0, false}, /* a capacity inside a run's chunk */
        {510, 0, false}, /* a capacity at a run's end */
        {1, 0, false},   /* one block */
        {0, 0, true},    /* a buffer: its end */
        {300, 0, true},  /* a buffer and a capacity */
    };
    static const unsigned kinds[] = {0, MP_ZERO, MP_CHECKED, MP_SECURE, MP_THREAD_SAFE};
    unsigned id = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (size_t j = 0; j < sizeof kinds / sizeof kinds[0]; j++) {
            region_case c = cases[i];
            if (c.buffered && kinds[j] == MP_THREAD_SAFE)
                continue; /* refused at create */
            c.flags = kinds[j];
            region_case_run(&c, ++id);
        }
    printf("test_model: %u region cases\n", id);
}

/* ------------------------------------------------------------------------------------------------
 * The run
 * ---------------------------------------------------------------------------------------------- */

/* One step: mostly alloc or free steered toward the target, rarely something else. */
static void model_step(model *m)
{
    if (ops_done % 2048 == 0)
        m->target = rng_below(m->max_live + 1);
    uint64_t r = rng_below(100000);
    if (r < 20) {
        op_reset(m);
    } else if (r < 40) {
        op_trim(m);
    } else if (r < 70) {
        op_check(m);
    } else if (r < 1070) {
        op_owns(m);
    } else if (r < 1080) {
        op_free_null(m);
    } else if (r < 1090) { /* drain: everything back, in random order */
        while (m->nlive > 0 && !TEST_FAILURES())
            op_free(m, rng_below(m->nlive)), ops_done++;
    } else if (r < 1110) { /* fill until refused or at the model's limit */
        uint64_t failed = m->failed;
        while (m->nlive < m->max_live && m->failed == failed && !TEST_FAILURES())
            op_alloc(m), ops_done++;
    } else {
        bool up = m->nlive < m->target ? rng_below(100) < 65 : rng_below(100) < 35;
        if (m->nlive == 0 || (up && m->nlive < m->max_live))
            op_alloc(m);
        else
            op_free(m, rng_below(m->nlive));
    }
    ops_done++;
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
    uint64_t ops = argc > 2 ? strtoull(argv[2], NULL, 0) : (uint64_t)(2000000 * test_scale());
    if (ops < 1000)
        ops = 1000;
    printf("test_model: seed %" PRIu64 ", %" PRIu64 " ops (replay: test_model %" PRIu64 " %" PRIu64
           ")\n",
           seed, ops, seed, ops);
    fflush(stdout);
    run_seed = rng_state = seed;
    mp_set_error_handler(record_error, NULL);

    region_cases();
    static model m;
    unsigned pools = 0;
    uint64_t pool_ops_total = 0;
    while (ops_done < ops && !TEST_FAILURES()) {
        model_pick_geometry(&m);
        if (!model_create(&m, ++pools, m.buf_size > 0))
            break;
        /* Pool lifetimes scale with the run, so a short run (valgrind) still sees many pools. */
        uint64_t life = ops / 12 > 2000 ? ops / 12 : 2000;
        uint64_t end = ops_done + 500 + rng_below(life);
        if (end > ops)
            end = ops;
        uint64_t start = ops_done;
        while (ops_done < end && !TEST_FAILURES())
            model_step(&m);
        pool_ops_total += ops_done - start;
        if (TEST_FAILURES()) {
            printf("test_model: FAILED at op %" PRIu64 "; replay: test_model %" PRIu64 " %" PRIu64
                   "\n",
                   ops_done, seed, ops);
            model_describe(&m);
        }
        model_destroy(&m);
    }
    printf("test_model: %u pools, %" PRIu64 " ops\n", pools, pool_ops_total);
    return TEST_DONE();
}

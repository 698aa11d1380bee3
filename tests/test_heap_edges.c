/*
 * test_heap_edges.c: the heap behaviour at its edges, which test_heap.c's contract suite does not
 * pin down. Each section is one promise of mempool.h (heap section) or heap.c, checked so that it
 * fails if the behaviour breaks:
 *
 *   1. realloc in place or not. A block stays where it is if and only if the new size is in the
 *      block's own size class, or, for a large block, the new size is large, fits and uses at least
 *      half of the usable size. Every (origin, new size) pair of a table that crosses class
 *      boundaries both ways, stays within classes, and goes large -> class and class -> large is
 *      run on its own: the block must be in the class (or be the large block) the rule names,
 *      keep min(old usable, new) bytes, and mp_heap_free_sized(heap, q, new size) must then free it
 *      from that class, which the per-class statistics show (a free into the wrong class pool skews
 *      two classes' counts). Plain, checked and thread-safe heaps.
 *   2. Zero-size blocks: mp_heap_alloc(heap, 0) and mp_heap_aligned_alloc(heap, align, 0) for every
 *      power of two up to 1 MiB give distinct, aligned, writable blocks of usable size >= 1.
 *   3. Capacity: a capacity heap refuses only after giving back what it holds unused (class chunks
 *      left wholly free by another class, cached large blocks), so a class or a large size gets as
 *      much as on a fresh heap after another size filled the heap and was freed. failed_allocs
 *      counts exactly the refusals seen; bytes_reserved never passes the capacity and equals what
 *      the source has out.
 *   4. mp_heap_trim: what it returns is exactly what bytes_reserved (and the source) lost; 0 for
 *      NULL, a fresh heap and a heap trimmed already; live blocks keep their runs; the heap works
 *      after; a buffer heap returns only what its classes release.
 *   5. A checked heap destroyed with two large blocks live reports one MP_ERR_LEAK of count 2
 *      ("2 blocks leaked", the heap's name, the oldest block) to a handler and still gives every
 *      byte back; without a handler it aborts with that one line (in a child process).
 *   6. A failing source: every refused request (pool creation, a class run, a large block, with
 *      and without a reclaim before it) returns NULL with ENOMEM and adds exactly 1 to
 *      failed_allocs; the heap serves again when the source recovers.
 *   7. A thread-safe capacity heap: two threads churn different classes (one also large blocks)
 *      while a third calls mp_heap_trim in a loop; no block is corrupted, every refusal is ENOMEM,
 *      and once they stop the statistics are exact.
 *   8. Spill to a larger class (mempool.h, mp_heap_alloc): a request above 4 KiB whose class has no
 *      free block takes the free block of the next class or the one after, carving nothing, and
 *      mp_heap_free_sized() with the size asked for gives it back to the class it came from; a
 *      class with a free block of its own uses it; three classes up, or at 4 KiB and below, or from
 *      mp_heap_aligned_alloc(), the request's own class carves. Plain, thread-safe and checked
 *      heaps.
 *   9. A source that breaks its contract, returning memory off the alignment asked: every request
 *      that would use such memory is refused with ENOMEM and counted, and every map goes back.
 *  10. Reset keeps the totals: over the system, the caller's source and a buffer, plain, checked,
 *      thread-safe and secure, allocs, frees, failed_allocs and each class's allocs, frees and peak
 *      never go back at mp_heap_reset(), which counts every live block as freed; a checked heap's
 *      reset with blocks live reports nothing (to a handler, and with the default one in a child).
 *  11. A checked heap's invalid free (a stack address, an interior pointer of a class or large
 *      block, another heap's block) names the heap; a large block freed twice is a double free
 *      while its mapping is cached, an invalid free once it went back. To a handler, and with the
 *      default one in a child (one line, then abort).
 *  12. A damaged free list in a class of a checked or secure heap (a link zeroed, a pointer
 *      planted): mp_heap_stats and mp_heap_trim report it, with a handler (which returns: no crash,
 *      nothing trimmed) and without (one line, abort, in a child process).
 *
 * A regression test for a bug this file found (heap.c once decided "class or large" from a
 * block's usable size) says so where it is defined.
 *
 * Usage: test_heap_edges [OPS]   (ops per thread in section 7; default 200000 times
 *                                 MP_TEST_SCALE). A few seconds in a Release build.
 */
#define _POSIX_C_SOURCE 200809L

#include "counting_source.h"
#include "mempool.h"
#include "misuse.h"
#include "test.h"
#include "threads.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)
#define MAXC MP_HEAP_MAX_CLASS

/* ------------------------------------------------------------------------------------------------
 * Helpers: the class table, block contents, statistics
 * ---------------------------------------------------------------------------------------------- */

/* The header's class table (8, 16, multiples of 16 to 128, then 8 per doubling up to
 * MP_HEAP_MAX_CLASS), built from its prose, not from the library. */
static size_t ref_class[MP_HEAP_CLASSES];

static size_t ref_classes_init(void)
{
    size_t n = 0;
    ref_class[n++] = 8;
    for (size_t s = 16; s <= 128; s += 16)
        ref_class[n++] = s;
    for (size_t base = 128; base < MAXC; base *= 2)
        for (size_t j = 1; j <= 8 && n < MP_HEAP_CLASSES; j++)
            ref_class[n++] = base + j * (base / 8);
    return n;
}

/* The class of a request of n <= MAXC bytes: the smallest class of at least n bytes. */
static size_t ref_index(size_t n)
{
    for (size_t i = 0; i < MP_HEAP_CLASSES; i++)
        if (ref_class[i] >= n)
            return i;
    return MP_HEAP_CLASSES;
}

/*
 * Block contents: a pattern of (seed, offset) at every byte of the first 8 KiB and every 251st byte
 * after (a prime below the page size: every page is sampled, so a lost page or a short copy shows,
 * at a fraction of the cost of patterning megabytes). The offsets do not depend on the block's
 * size, so a block patterned over n bytes is checked over any prefix of them.
 */
enum { PAT_FULL = 8192, PAT_STEP = 251 };

static unsigned char pat_byte(uint64_t seed, size_t i)
{
    return (unsigned char)((seed * 0x9E3779B1u) ^ (i * 31u) ^ (i >> 9) ^ (seed >> 7));
}

static size_t pat_next(size_t i)
{
    return i < PAT_FULL ? i + 1 : i + PAT_STEP;
}

static void pat_fill(void *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i = pat_next(i))
        ((unsigned char *)p)[i] = pat_byte(seed, i);
}

static bool pat_ok(const void *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i = pat_next(i))
        if (((const unsigned char *)p)[i] != pat_byte(seed, i))
            return false;
    return true;
}

static bool aligned_to(const void *p, size_t align)
{
    return ((uintptr_t)p & (align - 1)) == 0;
}

static struct mp_heap_stats hstats(const mp_heap *h)
{
    struct mp_heap_stats s;
    memset(&s, 0xEE, sizeof s);
    if (mp_heap_stats(h, &s) != 0)
        memset(&s, 0xEE, sizeof s);
    return s;
}

/* Nothing in use anywhere: totals, large blocks, and every class on its own (allocs == frees and
 * nothing in use, so a block freed into the wrong class pool shows in both classes). */
static bool balanced(const mp_heap *h, const char *what, tally *t)
{
    struct mp_heap_stats s = hstats(h);
    bool ok = tally_expect(
        t,
        s.blocks_in_use == 0 && s.allocs == s.frees && s.large_in_use == 0 && s.bytes_in_use == 0,
        "%s: blocks_in_use %" PRIu64 ", allocs %" PRIu64 ", frees %" PRIu64
        ", large_in_use %" PRIu64 ", bytes_in_use %" PRIu64,
        what, s.blocks_in_use, s.allocs, s.frees, s.large_in_use, s.bytes_in_use);
    for (size_t c = 0; c < MP_HEAP_CLASSES; c++) {
        const mp_heap_class_stats *k = &s.classes[c];
        ok &= tally_expect(t, k->blocks_in_use == 0 && k->allocs == k->frees,
                           "%s: class %zu (%zu bytes): blocks_in_use %" PRIu64 ", allocs %" PRIu64
                           ", frees %" PRIu64,
                           what, c, k->size, k->blocks_in_use, k->allocs, k->frees);
    }
    return ok;
}

/* Exactly one block in use, and it is in class `cls` (MP_HEAP_CLASSES: a large block). */
static bool one_block_in(const mp_heap *h, size_t cls, const char *what, tally *t)
{
    struct mp_heap_stats s = hstats(h);
    bool ok = tally_expect(
        t, s.blocks_in_use == 1 && s.large_in_use == (cls == MP_HEAP_CLASSES ? 1u : 0u),
        "%s: blocks_in_use %" PRIu64 ", large_in_use %" PRIu64 " (want the block %s)", what,
        s.blocks_in_use, s.large_in_use, cls == MP_HEAP_CLASSES ? "large" : "in a class");
    for (size_t c = 0; c < MP_HEAP_CLASSES; c++)
        ok &= tally_expect(t, s.classes[c].blocks_in_use == (c == cls ? 1u : 0u),
                           "%s: class %zu (%zu bytes) has %" PRIu64 " blocks in use, want %d", what,
                           c, s.classes[c].size, s.classes[c].blocks_in_use, c == cls);
    return ok;
}

/* ------------------------------------------------------------------------------------------------
 * A heap over a counting source (counting_source.h), which can be made to fail
 * ---------------------------------------------------------------------------------------------- */

typedef struct eheap {
    mp_heap *h;
    counting_source s;
    mp_source src;
} eheap;

/* A heap over e's counting source. */
static bool eheap_make(eheap *e, unsigned flags, size_t capacity, const char *name)
{
    memset(e, 0, sizeof *e);
    e->src = counting_source_of(&e->s);
    e->h = mp_heap_create(
        &(mp_heap_opts){.flags = flags, .capacity = capacity, .name = name, .source = &e->src});
    return e->h != NULL;
}

/* Destroys the heap; true if every byte went back and the contract was kept. */
static bool eheap_done(eheap *e)
{
    mp_heap_destroy(e->h);
    e->h = NULL;
    return counting_all_back(&e->s);
}

/* ------------------------------------------------------------------------------------------------
 * 1. realloc: in place exactly when the rule says, free_sized valid after, contents kept
 * ---------------------------------------------------------------------------------------------- */

/* Where realloc's block comes from: mp_heap_alloc(size), or aligned_alloc(align, size). */
typedef struct origin {
    size_t size;
    size_t align; /* 0: mp_heap_alloc */
} origin;

/* Sizes around class edges (8|9, 16|17, 112|113, 128|129, 1024|1025, 4096|4097), within a class
 * (100 and 112, 113 and 128, 3000, 4000 and 4096), the largest class and its neighbours, and large
 * sizes that keep (>= half) or leave (< half) a large block. */
static const size_t rsizes[] = {1,        8,      9,      16,      17,         100,      112,
                                113,      128,    129,    1000,    1024,       1025,     3000,
                                4000,     4096,   4097,   65536,   200000,     MAXC - 1, MAXC,
                                MAXC + 1, 300000, 600000, 1 * MiB, MiB + 5000, 3 * MiB};
enum { NRSIZES = sizeof rsizes / sizeof rsizes[0] };

/* Does the header's rule keep a block (large or in a class, of `usable` bytes) for `size`? */
static bool stays(bool large, size_t usable, size_t size)
{
    if (!large)
        return size <= MAXC && ref_index(size) == ref_index(usable);
    return size > MAXC && size <= usable && size >= usable / 2;
}

/* One pair on its own: make the block, realloc it, check where it went, free_sized it, check the
 * heap is back to nothing in use. True if every promise held; each broken one is noted. */
static bool realloc_pair(mp_heap *h, const char *heap_name, origin o, size_t size, uint64_t seed,
                         tally *place, tally *content, tally *freed)
{
    char what[160];
    if (o.align != 0)
        snprintf(what, sizeof what, "%s: aligned_alloc(%zu, %zu) -> realloc %zu", heap_name,
                 o.align, o.size, size);
    else
        snprintf(what, sizeof what, "%s: alloc(%zu) -> realloc %zu", heap_name, o.size, size);
    unsigned char *p =
        o.align ? mp_heap_aligned_alloc(h, o.align, o.size) : mp_heap_alloc(h, o.size);
    if (!tally_expect(place, p != NULL, "%s: the first alloc failed, errno %d", what, errno))
        return false;
    bool large = o.size > MAXC || o.align > 4096; /* how the header says the block was made */
    size_t usable = mp_heap_usable_size(h, p);
    if (!large &&
        !tally_expect(place, usable == ref_class[ref_index(usable)] && usable >= o.size,
                      "%s: a class block of usable size %zu, not a class size", what, usable)) {
        mp_heap_free(h, p);
        return false;
    }
    pat_fill(p, usable, seed);
    bool want_stay = stays(large, usable, size);

    errno = 0;
    unsigned char *q = mp_heap_realloc(h, p, size);
    if (!tally_expect(place, q != NULL, "%s: realloc failed, errno %d", what, errno)) {
        mp_heap_free(h, p);
        return false;
    }
    size_t qu = mp_heap_usable_size(h, q);
    bool ok = tally_expect(place, (q == p) == want_stay,
                           "%s: block (%s, usable %zu) %s, the rule says it %s", what,
                           large ? "large" : "in a class", usable, q == p ? "stayed" : "moved",
                           want_stay ? "stays" : "moves");
    /* Where it must be now: its old place, else where mp_heap_alloc(size) puts a block. */
    bool q_large = want_stay ? large : size > MAXC;
    size_t cls = q_large ? MP_HEAP_CLASSES : ref_index(want_stay ? usable : size);
    ok &=
        tally_expect(place, qu >= size && (q_large ? qu > MAXC || want_stay : qu == ref_class[cls]),
                     "%s: usable size %zu after (want >= %zu, %s)", what, qu, size,
                     q_large ? "a large block" : "its class's size");
    ok &=
        tally_expect(place, aligned_to(q, size > 8 ? 16 : 8), "%s: %p misaligned", what, (void *)q);
    ok &= one_block_in(h, cls, what, place);
    size_t keep = usable < size ? usable : size;
    ok &= tally_expect(content, pat_ok(q, keep, seed), "%s: the first %zu bytes not kept", what,
                       keep);

    mp_heap_free_sized(h, q, size);
    ok &= balanced(h, what, freed);
    return ok;
}

/* Every origin against every size of rsizes; three CHECKs for the heap. */
static void realloc_matrix(mp_heap *h, const char *heap_name, const origin *origins,
                           size_t norigins, const char *label)
{
    tally place = {0}, content = {0}, freed = {0};
    uint64_t seed = 1;
    for (size_t i = 0; i < norigins; i++)
        for (size_t j = 0; j < NRSIZES; j++)
            realloc_pair(h, heap_name, origins[i], rsizes[j], seed++, &place, &content, &freed);
    char msg[400];
    snprintf(msg, sizeof msg,
             "%s %s: realloc stays iff the same class (large: large, fits, >= half), "
             "and the block is then in the class of the new size",
             label, heap_name);
    CHECK(msg, place.bad == 0);
    snprintf(msg, sizeof msg, "%s %s: realloc keeps min(old usable, new size) bytes", label,
             heap_name);
    CHECK(msg, content.bad == 0);
    snprintf(msg, sizeof msg,
             "%s %s: free_sized(q, new size) after realloc frees from the right "
             "class: nothing in use, allocs == frees, per class too",
             label, heap_name);
    CHECK(msg, freed.bad == 0);
}

/* Every class of rsizes and its two neighbours made once (alloc + free_sized), so that a
 * free_sized naming a wrong class finds a pool and does the damage there instead of falling back
 * to mp_heap_free (which finds the block's pool by its address and would hide the mistake). */
static void warm_classes(mp_heap *h)
{
    for (size_t j = 0; j < NRSIZES; j++) {
        if (rsizes[j] > MAXC)
            continue;
        size_t c = ref_index(rsizes[j]);
        for (size_t k = c > 0 ? c - 1 : 0; k <= c + 1 && k < MP_HEAP_CLASSES; k++)
            mp_heap_free_sized(h, mp_heap_alloc(h, ref_class[k]), ref_class[k]);
    }
}

/* Class blocks from aligned_alloc, in a class above their size's: realloc to a size of that class
 * keeps them, to any other size moves them. The other origins are mp_heap_alloc(rsizes[i]). */
static const origin aligned_origins[] = {{100, 4096}, {10, 256}, {3000, 4096}};
enum { NORIGINS = NRSIZES + sizeof aligned_origins / sizeof aligned_origins[0] };

static void test_realloc(void)
{
    const struct {
        unsigned flags;
        const char *name;
    } kinds[] = {{0, "plain"}, {MP_CHECKED, "checked"}, {MP_THREAD_SAFE, "thread-safe"}};
    origin origins[NORIGINS];
    for (size_t i = 0; i < NORIGINS; i++)
        origins[i] = i < NRSIZES ? (origin){rsizes[i], 0} : aligned_origins[i - NRSIZES];
    for (size_t k = 0; k < 3; k++) {
        eheap e;
        if (!CHECK("realloc: heap", eheap_make(&e, kinds[k].flags, 0, kinds[k].name)))
            continue;
        log_start(); /* a checked heap must report nothing here */
        warm_classes(e.h);
        realloc_matrix(e.h, kinds[k].name, origins, NORIGINS, "realloc:");
        tally t = {0};
        CHECK("realloc: heap balanced at the end", balanced(e.h, kinds[k].name, &t));
        CHECK("realloc: no error reported (checked heap: no false positive)", log_none("realloc"));
        mp_set_error_handler(NULL, NULL);
        CHECK("realloc: destroy gives every byte back", eheap_done(&e));
    }
}

/*
 * Regression (found by this file; heap.c now asks what a block is, not how big). A large block
 * whose usable size is not above MP_HEAP_MAX_CLASS, which only mp_heap_aligned_alloc() with an
 * alignment above 4096 makes (aligned_alloc(8192, 0) and aligned_alloc(1 MiB, 1000): usable 4096;
 * aligned_alloc(65536, 200000): usable 200704), was kept in place by mp_heap_realloc() for a new
 * size in the class of its usable size (4000 or 4096; 200000). It stayed a large block, not one of
 * class_of(size), so mp_heap_free_sized(heap, q, size) pushed it onto that class pool's free list:
 * it stayed "in use" in the statistics forever, and the class's next alloc handed out its address.
 * Each pair runs on a fresh heap, so one broken pair does not spill into the next; all of it in a
 * child process, since a broken heap is corrupted.
 */
static const origin large_small_usable[] = {{0, 8192}, {200000, 65536}, {1000, MiB}, {1, 16384}};

static void realloc_large_small_usable(void *arg)
{
    (void)arg;
    tally place = {0}, content = {0}, freed = {0};
    uint64_t seed = 1;
    /* Under ASan or Valgrind the library tracks every block's state, so the wrong free_sized is
     * reported (as an invalid free in the class pool) instead of corrupting it: logged, not fatal.
     */
    log_start();
    for (size_t i = 0; i < sizeof large_small_usable / sizeof large_small_usable[0]; i++) {
        for (size_t j = 0; j < NRSIZES; j++) {
            eheap e;
            if (!tally_expect(&place, eheap_make(&e, 0, 0, "plain"), "heap"))
                continue;
            /* the classes a wrong free_sized would reach exist (see warm_classes) */
            const size_t warm[] = {rsizes[j], 4096, 200704};
            for (size_t w = 0; w < 3; w++)
                if (warm[w] <= MAXC)
                    mp_heap_free_sized(e.h, mp_heap_alloc(e.h, warm[w]), warm[w]);
            realloc_pair(e.h, "plain", large_small_usable[i], rsizes[j], seed++, &place, &content,
                         &freed);
            mp_heap_destroy(e.h); /* plain: no free list walked; the large block unmapped once */
        }
    }
    CHECK(
        "realloc: a large block (aligned_alloc, align > 4096) with usable <= "
        "MP_HEAP_MAX_CLASS stays iff the rule says so (large, fits, >= half); else it moves to the "
        "class of the new size",
        place.bad == 0);
    CHECK(
        "realloc (large block, usable <= MP_HEAP_MAX_CLASS): keeps min(old usable, new size) bytes",
        content.bad == 0);
    CHECK("realloc: free_sized(q, new size) after realloc of such a block leaves "
          "nothing in use",
          freed.bad == 0);
    if (elog.n != 0) {
        printf(
            "  errors the library reported on the way (ASan/Valgrind builds track block state):\n");
        log_show();
    }
    mp_set_error_handler(NULL, NULL);
}

/* ------------------------------------------------------------------------------------------------
 * 2. Zero-size blocks with every alignment
 * ---------------------------------------------------------------------------------------------- */

/* Two blocks of (align, 0): distinct, aligned, usable >= 1 and every usable byte writable. */
static void zero_pair(mp_heap *h, size_t align, const char *name, tally *t)
{
    void *a = align ? mp_heap_aligned_alloc(h, align, 0) : mp_heap_alloc(h, 0);
    void *b = align ? mp_heap_aligned_alloc(h, align, 0) : mp_heap_alloc(h, 0);
    size_t ua = mp_heap_usable_size(h, a), ub = mp_heap_usable_size(h, b);
    bool ok = tally_expect(t, a != NULL && b != NULL && a != b,
                           "%s: %s(%zu, 0) twice = %p, %p (want two distinct blocks)", name,
                           align ? "aligned_alloc" : "alloc", align, a, b);
    if (ok) {
        size_t want = align > 8 ? align : 8;
        ok &= tally_expect(
            t, ua >= 1 && ub >= 1 && aligned_to(a, want) && aligned_to(b, want),
            "%s: (%zu, 0): usable %zu and %zu, addresses %p %p (want usable >= 1, aligned to "
            "%zu)",
            name, align, ua, ub, a, b, want);
        memset(a, 0x5A, ua);
        memset(b, 0xA5, ub);
        ok &= tally_expect(
            t,
            ((unsigned char *)a)[0] == 0x5A && ((unsigned char *)a)[ua - 1] == 0x5A &&
                ((unsigned char *)b)[0] == 0xA5 && ((unsigned char *)b)[ub - 1] == 0xA5,
            "%s: (%zu, 0): the blocks overlap", name, align);
    }
    mp_heap_free(h, a);
    mp_heap_free(h, b);
}

static void test_zero_size(void)
{
    const struct {
        unsigned flags;
        const char *name;
    } kinds[] = {{0, "plain"},
                 {MP_CHECKED, "checked"},
                 {MP_THREAD_SAFE, "thread-safe"},
                 {MP_ZERO, "zero"},
                 {MP_SECURE, "secure"}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        eheap e;
        if (!CHECK("zero size: heap", eheap_make(&e, kinds[k].flags, 0, kinds[k].name)))
            continue;
        log_start();
        tally t = {0}, big = {0};
        zero_pair(e.h, 0, kinds[k].name, &t);
        for (size_t align = 1; align <= MiB; align *= 2)
            zero_pair(e.h, align, kinds[k].name, align > 4096 ? &big : &t);
        CHECK("zero size: alloc(0) and aligned_alloc(align <= 4096, 0): distinct, aligned, "
              "usable >= 1, writable",
              t.bad == 0);
        CHECK("zero size: aligned_alloc(8 KiB .. 1 MiB, 0): distinct, aligned, usable >= 1, "
              "writable",
              big.bad == 0);
        errno = 0;
        void *no = mp_heap_aligned_alloc(e.h, 2 * MiB, 0);
        CHECK("zero size: aligned_alloc(2 MiB, 0) is NULL with ENOMEM",
              no == NULL && errno == ENOMEM);
        tally b = {0};
        CHECK("zero size: heap balanced", balanced(e.h, kinds[k].name, &b));
        CHECK("zero size: no error reported", log_none("zero size"));
        mp_set_error_handler(NULL, NULL);
        CHECK("zero size: destroy gives every byte back", eheap_done(&e));
    }
}

/* ------------------------------------------------------------------------------------------------
 * 3. Capacity: reclaim before refusing; failed_allocs exact; never past the capacity
 * ---------------------------------------------------------------------------------------------- */

enum { MAXBLOCKS = 1 << 15 };
static void *blocks[MAXBLOCKS];

typedef struct capstate {
    eheap e;
    size_t cap;
    uint64_t nulls;  /* refusals seen */
    unsigned errnos; /* refusals without ENOMEM */
    tally t;         /* reserved > capacity, or != what the source has out */
} capstate;

/* The capacity and accounting promises at one moment. */
static void cap_look(capstate *c, const char *when)
{
    struct mp_heap_stats s = hstats(c->e.h);
    tally_expect(&c->t, s.bytes_reserved <= c->cap && s.bytes_reserved == c->e.s.bytes_out,
                 "%s: bytes_reserved %" PRIu64 ", capacity %zu, source has %zu out", when,
                 s.bytes_reserved, c->cap, c->e.s.bytes_out);
}

/* Allocates blocks of `size` until refused (at most MAXBLOCKS); the count. Touches each block. */
static size_t cap_fill(capstate *c, size_t size)
{
    size_t n = 0;
    for (;;) {
        if (n == MAXBLOCKS)
            return n;
        errno = 0;
        unsigned char *p = mp_heap_alloc(c->e.h, size);
        if (p == NULL) {
            c->nulls++;
            c->errnos += errno != ENOMEM;
            cap_look(c, "after a refusal");
            return n;
        }
        p[0] = p[size - 1] = (unsigned char)n;
        blocks[n++] = p;
    }
}

static void cap_free(capstate *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mp_heap_free(c->e.h, blocks[i]);
}

/* What a fresh heap of the same capacity gives of one size before refusing. */
static size_t fresh_count(size_t cap, size_t size)
{
    capstate f;
    memset(&f, 0, sizeof f);
    f.cap = cap;
    if (!eheap_make(&f.e, 0, cap, "fresh"))
        return 0;
    size_t n = cap_fill(&f, size);
    cap_free(&f, n);
    eheap_done(&f.e);
    return n;
}

static void test_capacity(void)
{
    const size_t cap = 24 * MiB, a = 4096, b = 1000, big = 4 * MiB, huge = 10 * MiB;
    const size_t ref_a = fresh_count(cap, a), ref_b = fresh_count(cap, b),
                 ref_big = fresh_count(cap, big);
    printf("  capacity %zu MiB, a fresh heap gives: %zu x %zu, %zu x %zu, %zu x %zu\n", cap / MiB,
           ref_a, a, ref_b, b, ref_big, big);
    CHECK("capacity: a fresh heap fills most of its capacity with each size",
          ref_a * a >= cap / 2 && ref_b * b >= cap / 2 && ref_big >= 4 && ref_a < MAXBLOCKS &&
              ref_b < MAXBLOCKS);

    capstate c;
    memset(&c, 0, sizeof c);
    c.cap = cap;
    if (!CHECK("capacity: heap", eheap_make(&c.e, 0, cap, "cap")))
        return;
    cap_look(&c, "created");

    /* One class to exhaustion; freed; then another class gets what a fresh heap gives it. */
    size_t na = cap_fill(&c, a);
    CHECK("capacity: class A fills the heap as on a fresh heap, then NULL + ENOMEM",
          na == ref_a && c.nulls == 1 && c.errnos == 0);
    CHECK("capacity: failed_allocs is 1 after 1 refusal", hstats(c.e.h).failed_allocs == 1);
    cap_free(&c, na);
    size_t nb = cap_fill(&c, b);
    printf("  after %zu x %zu freed: %zu x %zu (fresh: %zu)\n", na, a, nb, b, ref_b);
    CHECK("capacity: after class A's blocks are freed, class B gets as much as on a fresh heap "
          "(A's free chunks given back before refusing)",
          nb == ref_b);
    cap_free(&c, nb);

    /* Large blocks after class B: the same. */
    size_t nl = cap_fill(&c, big);
    CHECK("capacity: after class B's blocks are freed, large blocks get as many as on a fresh heap",
          nl == ref_big);
    cap_free(&c, nl);
    struct mp_heap_stats s = hstats(c.e.h);
    printf("  %zu large blocks of %zu MiB freed: %" PRIu64 " cached\n", nl, big / MiB,
           s.large_cached);
    CHECK("capacity: freed large blocks are cached", s.large_cached > 0 && s.large_cached <= nl);

    /* With the cache holding most of the capacity, a class gets all it would on a fresh heap. */
    size_t na2 = cap_fill(&c, a);
    s = hstats(c.e.h);
    CHECK("capacity: with large blocks cached, class A still gets as much as on a fresh heap (the "
          "cache dropped before refusing)",
          na2 == ref_a && s.large_cached == 0);
    cap_free(&c, na2);

    /* Cached blocks too small for a request give way to it. */
    nl = cap_fill(&c, big);
    cap_free(&c, nl);
    CHECK("capacity: large blocks cached again", hstats(c.e.h).large_cached > 0);
    void *h1 = mp_heap_alloc(c.e.h, huge), *h2 = mp_heap_alloc(c.e.h, huge);
    CHECK("capacity: two 10 MiB blocks fit once the 4 MiB blocks cached are dropped",
          h1 != NULL && h2 != NULL);
    cap_look(&c, "two 10 MiB blocks");
    /* Refusals of every kind, each counted once: the heap is nearly full of the two blocks. */
    uint64_t before = hstats(c.e.h).failed_allocs;
    errno = 0;
    void *r = mp_heap_alloc(c.e.h, huge);
    c.nulls += r == NULL, c.errnos += r == NULL && errno != ENOMEM;
    errno = 0;
    void *ra = mp_heap_aligned_alloc(c.e.h, 65536, huge);
    c.nulls += ra == NULL, c.errnos += ra == NULL && errno != ENOMEM;
    errno = 0;
    void *rr = mp_heap_realloc(c.e.h, h1, 2 * huge);
    c.nulls += rr == NULL, c.errnos += rr == NULL && errno != ENOMEM;
    errno = 0;
    void *rc = mp_heap_calloc(c.e.h, huge, 1);
    c.nulls += rc == NULL, c.errnos += rc == NULL && errno != ENOMEM;
    CHECK("capacity: alloc, aligned_alloc, realloc and calloc past the capacity: NULL + ENOMEM",
          r == NULL && ra == NULL && rr == NULL && rc == NULL && c.errnos == 0);
    CHECK("capacity: each of those 4 refusals counted once",
          hstats(c.e.h).failed_allocs == before + 4);
    mp_heap_free(c.e.h, h1);
    mp_heap_free(c.e.h, h2);

    s = hstats(c.e.h);
    printf("  refusals seen %" PRIu64 ", failed_allocs %" PRIu64 ", source peak %zu\n", c.nulls,
           s.failed_allocs, c.e.s.peak);
    CHECK("capacity: failed_allocs == the refusals seen, exactly", s.failed_allocs == c.nulls);
    cap_look(&c, "the end");
    CHECK("capacity: bytes_reserved <= capacity and == the source's bytes out, at every step",
          c.t.bad == 0);
    CHECK("capacity: the source never held more than the capacity (bookkeeping included)",
          c.e.s.peak <= cap);
    tally t = {0};
    CHECK("capacity: heap balanced", balanced(c.e.h, "cap", &t));
    CHECK("capacity: destroy gives every byte back", eheap_done(&c.e));
}

/* ------------------------------------------------------------------------------------------------
 * 4. mp_heap_trim
 * ---------------------------------------------------------------------------------------------- */

/* Trims; checks that the return is exactly what bytes_reserved and the source lost. */
static size_t trim_exact(eheap *e, const char *when, tally *t)
{
    uint64_t before = hstats(e->h).bytes_reserved;
    size_t out = e->s.bytes_out;
    size_t got = mp_heap_trim(e->h);
    uint64_t after = hstats(e->h).bytes_reserved;
    tally_expect(t, before - after == got && out - e->s.bytes_out == got && after == e->s.bytes_out,
                 "%s: trim returned %zu; bytes_reserved %" PRIu64 " -> %" PRIu64
                 ", source %zu -> %zu",
                 when, got, before, after, out, e->s.bytes_out);
    return got;
}

/* The sum of the classes' bytes_reserved (their chunks and pool bookkeeping). */
static uint64_t class_reserved(const struct mp_heap_stats *s)
{
    uint64_t n = 0;
    for (size_t c = 0; c < MP_HEAP_CLASSES; c++)
        n += s->classes[c].bytes_reserved;
    return n;
}

static void test_trim(void)
{
    CHECK("trim: NULL gives 0", mp_heap_trim(NULL) == 0);
    eheap e;
    if (!CHECK("trim: heap", eheap_make(&e, 0, 0, "trim")))
        return;
    tally t = {0}, ok = {0};
    const uint64_t r0 = hstats(e.h).bytes_reserved; /* the heap's own bookkeeping */
    CHECK("trim: a fresh heap gives 0", trim_exact(&e, "fresh", &t) == 0);

    /* A class's blocks, all freed: its chunks go, its pool's bookkeeping stays. */
    const size_t n = 1200, a = 4096, ca = ref_index(a);
    for (size_t i = 0; i < n; i++)
        blocks[i] = mp_heap_alloc(e.h, a);
    for (size_t i = 0; i < n; i++)
        mp_heap_free(e.h, blocks[i]);
    uint64_t held = hstats(e.h).classes[ca].bytes_reserved;
    size_t got = trim_exact(&e, "class freed", &t);
    struct mp_heap_stats s = hstats(e.h);
    printf("  trim: class %zu held %" PRIu64 " bytes; trim gave back %zu, left %" PRIu64 "\n", a,
           held, got, s.classes[ca].bytes_reserved);
    CHECK("trim: after a class's blocks are freed, > 0, all its chunks (what is left of the class "
          "is less than one 2 MiB chunk)",
          got > 0 && held - s.classes[ca].bytes_reserved == got &&
              s.classes[ca].bytes_reserved < 2 * MiB);
    CHECK("trim: bytes_reserved is then the heap's bookkeeping and the classes' own",
          s.bytes_reserved == r0 + class_reserved(&s));
    CHECK("trim: a trimmed idle heap gives 0", trim_exact(&e, "again", &t) == 0);

    /* Cached large blocks. */
    void *l[3];
    for (size_t i = 0; i < 3; i++)
        l[i] = mp_heap_alloc(e.h, MiB);
    for (size_t i = 0; i < 3; i++)
        mp_heap_free(e.h, l[i]);
    const uint64_t cached = hstats(e.h).large_cached;
    CHECK("trim: freed large blocks are cached", cached > 0);
    got = trim_exact(&e, "large cached", &t);
    s = hstats(e.h);
    CHECK("trim: cached large blocks given back (>= 1 MiB each), the cache empty",
          got >= cached * MiB && s.large_cached == 0);
    CHECK("trim: and then 0", trim_exact(&e, "again", &t) == 0);

    /* A live block keeps its run; the rest goes. */
    for (size_t i = 0; i < n; i++)
        blocks[i] = mp_heap_alloc(e.h, a);
    pat_fill(blocks[0], a, 77);
    for (size_t i = 1; i < n; i++)
        mp_heap_free(e.h, blocks[i]);
    held = hstats(e.h).classes[ca].bytes_reserved;
    got = trim_exact(&e, "one block live", &t);
    s = hstats(e.h);
    CHECK("trim: with one block live, the other runs go, its own stays",
          got > 0 && held - got >= 2 * MiB && s.classes[ca].blocks_in_use == 1 &&
              pat_ok(blocks[0], a, 77));
    mp_heap_free(e.h, blocks[0]);
    CHECK("trim: its run goes once it is freed", trim_exact(&e, "freed", &t) >= 2 * MiB);

    /* The heap works after trimming: classes, large blocks, cached or not. */
    const size_t sizes[] = {a, 100, 5000, MiB, 3 * MiB};
    void *p[5];
    for (size_t i = 0; i < 5; i++) {
        p[i] = mp_heap_alloc(e.h, sizes[i]);
        if (tally_expect(&ok, p[i] != NULL, "after trim: alloc(%zu) failed", sizes[i]))
            pat_fill(p[i], sizes[i], 100 + i);
    }
    for (size_t i = 0; i < 5; i++)
        if (p[i] != NULL)
            tally_expect(&ok, pat_ok(p[i], sizes[i], 100 + i), "after trim: block %zu corrupted",
                         i);
    for (size_t i = 0; i < 5; i++)
        mp_heap_free_sized(e.h, p[i], sizes[i]);
    CHECK("trim: the heap works after (classes trimmed before, large blocks)", ok.bad == 0);
    CHECK("trim: after the heap is used again, > 0", trim_exact(&e, "used again", &t) > 0);
    CHECK("trim: return == drop of bytes_reserved == drop of the source's bytes out, every time",
          t.bad == 0);
    tally b = {0};
    CHECK("trim: heap balanced", balanced(e.h, "trim", &b));
    CHECK("trim: destroy gives every byte back", eheap_done(&e));

    /* A buffer heap: its classes' chunks count, its large cache does not ("reusable after reset").
     */
    const size_t bsize = 24 * MiB;
    void *buf = malloc(bsize);
    mp_heap *h = buf ? mp_heap_create(&(mp_heap_opts){
                           .buffer = buf, .buffer_size = bsize, .name = "trim-buffer"})
                     : NULL;
    if (!CHECK("trim: buffer heap", h != NULL)) {
        free(buf);
        return;
    }
    for (size_t i = 0; i < 600; i++)
        blocks[i] = mp_heap_alloc(h, a);
    for (size_t i = 0; i < 600; i++)
        mp_heap_free(h, blocks[i]);
    void *lb = mp_heap_alloc(h, MiB);
    mp_heap_free(h, lb);
    uint64_t before = hstats(h).bytes_reserved;
    got = mp_heap_trim(h);
    s = hstats(h);
    CHECK("trim: a buffer heap gives back its free class chunks, counted in bytes_reserved",
          lb != NULL && got >= 2 * MiB && before - s.bytes_reserved == got);
    CHECK("trim: a buffer heap keeps its large cache (not part of what it returns)",
          s.large_cached == 1 && mp_heap_trim(h) == 0);
    mp_heap_reset(h);
    void *again = mp_heap_alloc(h, a);
    CHECK("trim: a buffer heap works after trim and reset", again != NULL);
    mp_heap_free(h, again);
    mp_heap_destroy(h);
    free(buf);
}

/* ------------------------------------------------------------------------------------------------
 * 5. A checked heap's leaked large blocks
 * ---------------------------------------------------------------------------------------------- */

static void die_leaking_large(void *arg)
{
    (void)arg;
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.flags = MP_CHECKED, .name = "leaky"});
    if (h == NULL)
        _exit(CHILD_NO_POOL);
    void *a = mp_heap_alloc(h, 300 * KiB), *b = mp_heap_alloc(h, 2 * MiB);
    if (a == NULL || b == NULL)
        _exit(CHILD_NO_POOL);
    child_note(a); /* the message names the oldest leaked block */
    mp_heap_destroy(h);
}

static void test_leak(void)
{
    eheap e;
    if (!CHECK("leak: checked heap", eheap_make(&e, MP_CHECKED, 0, "leaky")))
        return;
    log_start();
    void *small = mp_heap_alloc(e.h, 100); /* class blocks come and go: no leak of theirs */
    mp_heap_free(e.h, small);
    void *a = mp_heap_alloc(e.h, 300 * KiB), *b = mp_heap_alloc(e.h, 2 * MiB);
    CHECK("leak: two large blocks", a != NULL && b != NULL);
    mp_heap_destroy(e.h);
    const logged_error *l = &elog.e[0];
    bool one = CHECK("leak: exactly one error reported at destroy", elog.n == 1);
    if (one) {
        CHECK("leak: kind MP_ERR_LEAK, count 2", l->kind == MP_ERR_LEAK && l->count == 2);
        CHECK("leak: the message says \"2 blocks leaked\" and names the heap",
              text_has(l->message, "2 blocks leaked") && text_has_pool(l->message, "leaky") &&
                  strcmp(l->pool_name, "leaky") == 0);
        CHECK("leak: one line, \"mempool: ...\", naming the oldest block (addr and message)",
              l->message_one_line && strncmp(l->message, "mempool: ", 9) == 0 && l->addr == a &&
                  text_has_addr(l->message, a));
    }
    if (!one || elog.n != 1)
        log_show();
    mp_set_error_handler(NULL, NULL);
    CHECK("leak: the leaked blocks' memory still goes back",
          e.s.bytes_out == 0 && e.s.maps == e.s.unmaps);

    expect_death("leak: without a handler, destroy aborts with one line \"2 blocks leaked\" naming "
                 "the heap and the oldest block",
                 die_leaking_large, NULL, "2 blocks leaked", "leaky");
}

/* ------------------------------------------------------------------------------------------------
 * 6. A failing source: each refusal NULL + ENOMEM, counted once
 * ---------------------------------------------------------------------------------------------- */

typedef struct failrun {
    eheap e;
    uint64_t refusals; /* NULLs seen */
    tally t;
} failrun;

/* One request that must be refused: NULL, ENOMEM, failed_allocs + 1. */
static void refused(failrun *f, const char *what, int kind, size_t size)
{
    uint64_t before = hstats(f->e.h).failed_allocs;
    errno = 0;
    void *p = kind == 0   ? mp_heap_alloc(f->e.h, size)
              : kind == 1 ? mp_heap_calloc(f->e.h, 1, size)
                          : mp_heap_aligned_alloc(f->e.h, kind == 2 ? 64 : 8192, size);
    int err = errno;
    uint64_t after = hstats(f->e.h).failed_allocs;
    f->refusals += p == NULL;
    tally_expect(&f->t, p == NULL && err == ENOMEM && after == before + 1,
                 "%s (size %zu): %p, errno %d, failed_allocs %" PRIu64 " -> %" PRIu64, what, size,
                 p, err, before, after);
    if (p != NULL)
        mp_heap_free(f->e.h, p);
}

/* A large block freed, so that the cache holds it and a refusal reclaims it first. */
static void cache_one(failrun *f)
{
    f->e.s.dead = false;
    mp_heap_free(f->e.h, mp_heap_alloc(f->e.h, MiB));
    f->e.s.dead = true;
}

static void test_failing_source(void)
{
    failrun f;
    memset(&f, 0, sizeof f);
    if (!CHECK("failing source: heap", eheap_make(&f.e, 0, 0, "failing")))
        return;
    f.e.s.dead = true;
    /* No class pool can be made (its bookkeeping page is refused). */
    for (int i = 0; i < 3; i++)
        refused(&f, "pool creation refused", 0, 100);
    refused(&f, "pool creation refused, another class", 0, 5000);
    refused(&f, "pool creation refused, calloc", 1, 300);
    refused(&f, "pool creation refused, aligned_alloc(64)", 2, 10);
    /* No large block. */
    refused(&f, "large block refused", 0, MiB);
    refused(&f, "large block refused, aligned_alloc(8192)", 3, 10);
    CHECK("failing source: pool creation and large maps refused: NULL, ENOMEM, failed_allocs + 1 "
          "each",
          f.t.bad == 0);

    /* The pool exists with no chunk (trimmed): its run is refused. */
    f.e.s.dead = false;
    mp_heap_free(f.e.h, mp_heap_alloc(f.e.h, 100));
    mp_heap_trim(f.e.h);
    f.e.s.dead = true;
    tally run = f.t;
    refused(&f, "class run refused", 0, 100);
    refused(&f, "class run refused", 0, 100);
    CHECK("failing source: a class's run refused: NULL, ENOMEM, failed_allocs + 1 each",
          f.t.bad == run.bad);

    /* A refusal after a reclaim that gave something back (the large cache) still counts once. */
    tally rec = f.t;
    cache_one(&f);
    refused(&f, "class run refused after reclaiming the cache", 0, 100);
    CHECK("failing source: reclaim happened", hstats(f.e.h).large_cached == 0);
    cache_one(&f);
    refused(&f, "pool creation refused after reclaiming the cache", 0, 20000);
    cache_one(&f);
    refused(&f, "large block (no cached fit) refused after reclaiming the cache", 0, 3 * MiB);
    CHECK("failing source: refused after a reclaim that freed memory: still counted once each",
          f.t.bad == rec.bad);

    /* The source recovers: everything works. */
    f.e.s.dead = false;
    const size_t sizes[] = {100, 5000, 20000, MiB, 3 * MiB};
    bool all = true;
    for (size_t i = 0; i < 5; i++) {
        void *p = mp_heap_alloc(f.e.h, sizes[i]);
        all &= p != NULL;
        mp_heap_free(f.e.h, p);
    }
    struct mp_heap_stats s = hstats(f.e.h);
    printf("  failing source: %" PRIu64 " refusals seen, failed_allocs %" PRIu64 "\n", f.refusals,
           s.failed_allocs);
    CHECK("failing source: the heap serves again when the source recovers", all);
    CHECK("failing source: failed_allocs == refusals seen", s.failed_allocs == f.refusals);
    tally b = {0};
    CHECK("failing source: heap balanced", balanced(f.e.h, "failing", &b));
    CHECK("failing source: every byte given back", eheap_done(&f.e));
}

/* ------------------------------------------------------------------------------------------------
 * 7. Threads: churn against a capacity heap while it is trimmed
 * ---------------------------------------------------------------------------------------------- */

typedef struct churner {
    mp_heap *heap;
    size_t size;     /* class blocks of this size */
    size_t max_live; /* the most held at once */
    bool large_too;  /* also 1 MiB blocks, now and then */
    uint64_t ops, seed;
    uint64_t allocs, frees, nulls, bad_errno, corrupt; /* this thread's own, read after join */
} churner;

static atomic_bool churn_done;
static atomic_ulong trim_calls, trim_bytes, trim_over_cap;

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A held block: its address, size and stamp (written at both ends and the middle). */
typedef struct held {
    unsigned char *p;
    size_t size;
    uint64_t stamp;
} held;

static void stamp_put(held *b)
{
    memcpy(b->p, &b->stamp, 8);
    memcpy(b->p + b->size / 2 - 4, &b->stamp, 8);
    memcpy(b->p + b->size - 8, &b->stamp, 8);
}

static bool stamp_ok(const held *b)
{
    return memcmp(b->p, &b->stamp, 8) == 0 && memcmp(b->p + b->size / 2 - 4, &b->stamp, 8) == 0 &&
           memcmp(b->p + b->size - 8, &b->stamp, 8) == 0;
}

static void *churn(void *arg)
{
    churner *c = arg;
    held *live = calloc(c->max_live, sizeof *live);
    if (live == NULL) {
        c->corrupt++;
        return NULL;
    }
    size_t n = 0, target = c->max_live / 2;
    uint64_t s = c->seed;
    for (uint64_t op = 0; op < c->ops; op++) {
        uint64_t r = xorshift(&s);
        if (op % 2048 == 0)
            target = (size_t)(r % (c->max_live + 1));
        if (n > 0 && (n >= target || (r >> 20) % 4 == 0)) {
            size_t i = (size_t)((r >> 24) % n);
            c->corrupt += !stamp_ok(&live[i]);
            if (live[i].size <= MAXC && (r >> 40) % 2 == 0)
                mp_heap_free_sized(c->heap, live[i].p, live[i].size);
            else
                mp_heap_free(c->heap, live[i].p);
            c->frees++;
            live[i] = live[--n];
            continue;
        }
        size_t size = c->large_too && (r >> 32) % 64 == 0 ? MiB : c->size;
        errno = 0;
        unsigned char *p = mp_heap_alloc(c->heap, size);
        if (p == NULL) {
            c->nulls++;
            c->bad_errno += errno != ENOMEM;
            continue;
        }
        c->allocs++;
        live[n] = (held){p, size, (c->seed << 40) ^ op ^ 0x5A5A5A5A5A5A5A5Au};
        stamp_put(&live[n++]);
    }
    while (n > 0) {
        c->corrupt += !stamp_ok(&live[--n]);
        mp_heap_free(c->heap, live[n].p);
        c->frees++;
    }
    free(live);
    return NULL;
}

typedef struct trimmer {
    mp_heap *heap;
    size_t cap;
} trimmer;

static void *trim_loop(void *arg)
{
    trimmer *t = arg;
    while (!atomic_load(&churn_done)) {
        size_t got = mp_heap_trim(t->heap);
        atomic_fetch_add(&trim_calls, 1);
        atomic_fetch_add(&trim_bytes, got);
        struct mp_heap_stats s;
        if (mp_heap_stats(t->heap, &s) != 0 || s.bytes_reserved > t->cap)
            atomic_fetch_add(&trim_over_cap, 1);
    }
    return NULL;
}

static void test_threads(uint64_t ops)
{
    const size_t cap = 16 * MiB;
    mp_heap *h = mp_heap_create(
        &(mp_heap_opts){.flags = MP_THREAD_SAFE, .capacity = cap, .name = "edges-mt"});
    if (!CHECK("threads: thread-safe capacity heap", h != NULL))
        return;
    churner c[2] = {
        {.heap = h, .size = 4096, .max_live = 3000, .large_too = false, .ops = ops, .seed = 11},
        {.heap = h, .size = 200, .max_live = 40000, .large_too = true, .ops = ops, .seed = 23},
    };
    trimmer tr = {h, cap};
    atomic_store(&churn_done, false);
    atomic_store(&trim_calls, 0);
    atomic_store(&trim_bytes, 0);
    atomic_store(&trim_over_cap, 0);
    pthread_t tc[2], tt;
    bool started = thread_start(&tt, trim_loop, &tr);
    bool churned = started && threads_start(tc, 2, churn, c, sizeof c[0]);
    if (churned)
        threads_join(tc, 2);
    atomic_store(&churn_done, true);
    if (started)
        pthread_join(tt, NULL);
    if (!CHECK("threads: all threads started", churned)) {
        mp_heap_destroy(h);
        return;
    }
    uint64_t allocs = c[0].allocs + c[1].allocs, frees = c[0].frees + c[1].frees,
             nulls = c[0].nulls + c[1].nulls;
    struct mp_heap_stats s = hstats(h);
    printf("  threads: %" PRIu64 " allocs, %" PRIu64 " refused, %lu trims gave back %lu bytes\n",
           allocs, nulls, (unsigned long)atomic_load(&trim_calls),
           (unsigned long)atomic_load(&trim_bytes));
    CHECK("threads: no block corrupted, every refusal ENOMEM",
          c[0].corrupt + c[1].corrupt == 0 && c[0].bad_errno + c[1].bad_errno == 0);
    CHECK("threads: bytes_reserved never above the capacity (trimmer's snapshots)",
          atomic_load(&trim_over_cap) == 0 && s.bytes_reserved <= cap);
    CHECK("threads: final stats exact: allocs == frees == the threads' counts, nothing in use",
          s.allocs == allocs && s.frees == frees && allocs == frees && s.blocks_in_use == 0 &&
              s.large_in_use == 0 && s.bytes_in_use == 0);
    CHECK("threads: failed_allocs == the refusals the threads saw", s.failed_allocs == nulls);
    tally t = {0};
    CHECK("threads: every class balanced", balanced(h, "edges-mt", &t));
    mp_heap_trim(h);
    s = hstats(h);
    CHECK("threads: a last trim leaves only bookkeeping (less than one chunk)",
          s.bytes_reserved < 2 * MiB && s.large_cached == 0);
    mp_heap_destroy(h);
}

/* ------------------------------------------------------------------------------------------------
 * 8. Spill to a larger class
 * ---------------------------------------------------------------------------------------------- */

/* A block of class index c, allocated and freed, so that class c holds exactly one free block. */
static void *park_free_block(mp_heap *h, size_t c)
{
    void *p = mp_heap_alloc(h, ref_class[c]);
    mp_heap_free(h, p);
    return p;
}

static void test_spill_on(unsigned flags, const char *name)
{
    char what[160];
    const size_t c = ref_index(20 * KiB); /* a class above 4 KiB, with two classes above it */
    tally t = {0};
    for (size_t up = 0; up <= 3; up++) {
        mp_heap *h = mp_heap_create(&(mp_heap_opts){.flags = flags, .name = "spill"});
        if (!CHECK("spill: a heap", h != NULL))
            return;
        /* Class c exists (a block of it stays live) but has no free block. */
        void *keep = mp_heap_alloc(h, ref_class[c]);
        void *parked = up == 0 ? NULL : park_free_block(h, c + up);
        const size_t ask = ref_class[c] - 100;
        void *p = mp_heap_alloc(h, ask);
        struct mp_heap_stats s = hstats(h);
        bool spilled = up >= 1 && up <= 2;
        size_t home = spilled ? c + up : c;
        snprintf(what, sizeof what, "spill (%s): class %zu has no free block, class %zu has one",
                 name, c, c + up);
        CHECK(what, p != NULL && keep != NULL && (!spilled || p == parked) &&
                        s.classes[c].blocks_in_use == (spilled ? 1u : 2u) &&
                        s.classes[c].blocks_peak == (spilled ? 1u : 2u) &&
                        (!spilled || s.classes[home].blocks_in_use == 1) &&
                        mp_heap_usable_size(h, p) == ref_class[home]);
        pat_fill(p, ask, up);
        CHECK(what, pat_ok(p, ask, up));
        mp_heap_free_sized(h, p, ask);
        s = hstats(h);
        snprintf(what, sizeof what, "spill (%s, %zu up): free_sized gives it back to class %zu",
                 name, up, home);
        uint64_t home_live = home == c ? 1 : 0; /* the kept block */
        CHECK(what, s.classes[c].blocks_in_use == 1 &&
                        s.classes[home].allocs == s.classes[home].frees + home_live);
        mp_heap_free(h, keep);
        CHECK(what, balanced(h, what, &t));
        /* Now class c has free blocks of its own: a request uses one. */
        void *q = mp_heap_alloc(h, ask);
        snprintf(what, sizeof what, "spill (%s): a class with a free block uses it", name);
        CHECK(what, q != NULL && one_block_in(h, c, what, &t));
        mp_heap_free_sized(h, q, ask);
        mp_heap_destroy(h);
    }

    /* At 4 KiB and below: never. */
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.flags = flags, .name = "spill"});
    if (!CHECK("spill: a heap", h != NULL))
        return;
    const size_t small = ref_index(4 * KiB);
    park_free_block(h, small + 1);
    void *p = mp_heap_alloc(h, 4 * KiB);
    snprintf(what, sizeof what, "spill (%s): a 4 KiB request never takes a larger class's block",
             name);
    CHECK(what, p != NULL && one_block_in(h, small, what, &t));
    mp_heap_free(h, p);

    /* From aligned_alloc: never (a larger class may be less aligned). 16 KiB: a page-aligned
     * class, as every power of two. */
    const size_t pc = ref_index(16 * KiB);
    park_free_block(h, pc + 1);
    p = mp_heap_aligned_alloc(h, 4096, ref_class[pc]);
    snprintf(what, sizeof what, "spill (%s): aligned_alloc never takes a larger class's block",
             name);
    CHECK(what, p != NULL && aligned_to(p, 4096) && one_block_in(h, pc, what, &t));
    mp_heap_free(h, p);
    CHECK("spill: all balanced", balanced(h, name, &t));
    mp_heap_destroy(h);
    CHECK("spill: no unexpected statistic", t.bad == 0);
}

static void test_spill(void)
{
    test_spill_on(0, "plain");
    test_spill_on(MP_THREAD_SAFE, "thread-safe");
    test_spill_on(MP_CHECKED, "checked");
}

/* ------------------------------------------------------------------------------------------------
 * 9. A source that breaks its contract: memory misaligned for the request is refused
 * ---------------------------------------------------------------------------------------------- */

/* Every large request over a source whose maps are one page off a 2 MiB boundary (page-aligned,
 * so the heap's and the pools' own pages are fine) is refused with ENOMEM and counted; freeing what
 * such a heap gave would read a header outside the mapping. Every map goes back. The page is the
 * one the library aligns its own pages to, sysconf's (16 or 64 KiB on some ARM64 kernels). */
static void misaligned_large(void *arg)
{
    unsigned flags = *(const unsigned *)arg;
    counting_source cs;
    memset(&cs, 0, sizeof cs);
    long page = sysconf(_SC_PAGESIZE);
    cs.skew = page > 0 ? (size_t)page : 4096;
    mp_source src = counting_source_of(&cs);
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.flags = flags, .name = "skewed", .source = &src});
    if (!CHECK("misaligned: heap (its page is aligned as asked)", h != NULL))
        return;
    tally t = {0};
    /* 100: a class, whose runs its pool refuses */
    const size_t sizes[] = {MAXC + 1, MiB, 3 * MiB, 100};
    for (int kind = 0; kind < 4; kind++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            uint64_t before = hstats(h).failed_allocs;
            errno = 0;
            void *p = kind == 0   ? mp_heap_alloc(h, sizes[i])
                      : kind == 1 ? mp_heap_calloc(h, 1, sizes[i])
                      : kind == 2 ? mp_heap_aligned_alloc(h, 8192, sizes[i])
                                  : mp_heap_realloc(h, NULL, sizes[i]);
            int err = errno;
            tally_expect(&t, p == NULL && err == ENOMEM && hstats(h).failed_allocs == before + 1,
                         "kind %d, size %zu: %p, errno %d", kind, sizes[i], p, err);
            mp_heap_free(h, p); /* what was accepted must at least free */
        }
    }
    CHECK("misaligned: every request refused: NULL, ENOMEM, failed_allocs + 1", t.bad == 0);
    struct mp_heap_stats s = hstats(h);
    CHECK("misaligned: nothing in use", s.blocks_in_use == 0 && s.large_in_use == 0);
    mp_heap_destroy(h);
    CHECK("misaligned: every map given back",
          atomic_load(&cs.bytes_out) == 0 && atomic_load(&cs.maps) == atomic_load(&cs.unmaps));
}

/* A source whose maps are 64 bytes off a page: the heap's own page is refused at create. */
static void test_misaligned(void)
{
    static const unsigned flags[] = {0, MP_CHECKED, MP_THREAD_SAFE};
    for (size_t i = 0; i < 3; i++)
        run_isolated("misaligned: a source off its alignment (plain, checked, thread-safe)",
                     misaligned_large, (void *)&flags[i]);
    counting_source cs;
    memset(&cs, 0, sizeof cs);
    cs.skew = 64;
    mp_source src = counting_source_of(&cs);
    errno = 0;
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.source = &src});
    CHECK("misaligned: a heap whose page is off its alignment is refused with ENOMEM",
          h == NULL && errno == ENOMEM);
    mp_heap_destroy(h);
    CHECK("misaligned: and its page goes back",
          atomic_load(&cs.bytes_out) == 0 && atomic_load(&cs.maps) == atomic_load(&cs.unmaps));
}

/* ------------------------------------------------------------------------------------------------
 * 10. Reset: the totals never go back, and a checked heap's reset is no leak
 * ---------------------------------------------------------------------------------------------- */

enum { RESET_CAP = 8 * 1024 * 1024, RESET_BUF = 24 * 1024 * 1024 };

/* Where a heap's memory comes from, and its flags. */
typedef struct rkind {
    const char *name;
    int where; /* 0: the system, 1: the caller's source, 2: the caller's buffer */
    unsigned flags;
} rkind;

static const rkind rkinds[] = {
    {"system", 0, 0},
    {"system checked", 0, MP_CHECKED},
    {"system thread-safe", 0, MP_THREAD_SAFE},
    {"source", 1, 0},
    {"source checked", 1, MP_CHECKED},
    {"source thread-safe", 1, MP_THREAD_SAFE},
    {"buffer", 2, 0},
    {"buffer checked", 2, MP_CHECKED}, /* reset_checked_buffer's */
    {"buffer secure", 2, MP_SECURE},
};

/* A heap of kind k with a capacity of RESET_CAP; buf: RESET_BUF bytes for a buffer heap. */
static mp_heap *rkind_make(const rkind *k, counting_source *cs, mp_source *src, void *buf)
{
    memset(cs, 0, sizeof *cs);
    *src = counting_source_of(cs);
    mp_heap_opts o = {.flags = k->flags, .capacity = RESET_CAP, .name = "reset"};
    if (k->where == 1)
        o.source = src;
    if (k->where == 2) {
        o.buffer = buf;
        o.buffer_size = RESET_BUF;
    }
    return mp_heap_create(&o);
}

/* One round of use that leaves blocks live, a large one among them, and failures counted both by
 * a class pool (the capacity) and by the heap (an impossible alignment). */
static void reset_round(mp_heap *h, void **ps, size_t max)
{
    mp_heap_free(h, mp_heap_alloc(h, 400 * KiB));
    void *big = mp_heap_alloc(h, 300 * KiB);
    size_t n = 0;
    while (n < max && (ps[n] = mp_heap_alloc(h, 3000)) != NULL)
        n++;
    for (size_t i = 0; i < n; i += 2)
        mp_heap_free(h, ps[i]);
    (void)mp_heap_alloc(h, 100);
    (void)mp_heap_aligned_alloc(h, 2 * MiB, 1); /* refused, counted by the heap */
    (void)big;                                  /* live at the reset */
}

/* after is before's totals, every block counted freed, no figure lower. */
static void reset_kept(const char *kind, const struct mp_heap_stats *before,
                       const struct mp_heap_stats *after, tally *t)
{
    tally_expect(t,
                 after->allocs == before->allocs && after->frees == after->allocs &&
                     after->failed_allocs == before->failed_allocs && after->blocks_in_use == 0,
                 "%s: allocs %" PRIu64 " -> %" PRIu64 ", frees %" PRIu64 " -> %" PRIu64
                 ", failed %" PRIu64 " -> %" PRIu64,
                 kind, before->allocs, after->allocs, before->frees, after->frees,
                 before->failed_allocs, after->failed_allocs);
    for (size_t c = 0; c < MP_HEAP_CLASSES; c++) {
        const mp_heap_class_stats *b = &before->classes[c], *a = &after->classes[c];
        tally_expect(t,
                     a->allocs == b->allocs && a->frees == a->allocs &&
                         a->blocks_peak == b->blocks_peak && a->blocks_in_use == 0,
                     "%s: class %zu: allocs %" PRIu64 " -> %" PRIu64 ", frees %" PRIu64
                     " -> %" PRIu64 ", peak %" PRIu64 " -> %" PRIu64,
                     kind, a->size, b->allocs, a->allocs, b->frees, a->frees, b->blocks_peak,
                     a->blocks_peak);
    }
}

static void test_reset_totals(void)
{
    enum { MAXB = 4096 };
    static void *ps[MAXB];
    unsigned char *buf = malloc(RESET_BUF);
    if (!CHECK("reset: buffer", buf != NULL))
        return;
    for (size_t i = 0; i < sizeof rkinds / sizeof rkinds[0]; i++) {
        const rkind *k = &rkinds[i];
        counting_source cs;
        mp_source src;
        mp_heap *h = rkind_make(k, &cs, &src, buf);
        if (!CHECK("reset: heap", h != NULL))
            continue;
        log_start();
        tally t = {0};
        struct mp_heap_stats s[4];
        reset_round(h, ps, MAXB);
        s[0] = hstats(h);
        mp_heap_reset(h);
        s[1] = hstats(h);
        reset_kept(k->name, &s[0], &s[1], &t);
        reset_round(h, ps, MAXB); /* the heap serves as before, and counts on */
        s[2] = hstats(h);
        tally_expect(&t, s[2].allocs > s[1].allocs && s[2].failed_allocs > s[1].failed_allocs,
                     "%s: second round: allocs %" PRIu64 " -> %" PRIu64 ", failed %" PRIu64
                     " -> %" PRIu64,
                     k->name, s[1].allocs, s[2].allocs, s[1].failed_allocs, s[2].failed_allocs);
        mp_heap_reset(h);
        s[3] = hstats(h);
        reset_kept(k->name, &s[2], &s[3], &t);
        mp_heap_destroy(h);
        printf("  %-18s allocs %" PRIu64 ", failed %" PRIu64 " after two resets\n", k->name,
               s[3].allocs, s[3].failed_allocs);
        CHECK("reset: allocs, frees, failed_allocs and every class's figures never go back; the "
              "reset blocks count as freed",
              t.bad == 0);
        if (!CHECK("reset: nothing reported, neither at reset (live blocks are no leak) nor at "
                   "destroy",
                   elog.n == 0))
            log_show();
        mp_set_error_handler(NULL, NULL);
        CHECK("reset: every byte back to the source", k->where != 1 || counting_all_back(&cs));
    }
    free(buf);
}

/* With the default handler: a checked buffer heap reset with blocks live (class and large) is no
 * leak, and the process goes on. */
static void reset_checked_buffer(void *arg)
{
    counting_source cs;
    mp_source src;
    static void *ps[4096];
    mp_heap *h = rkind_make(&rkinds[7], &cs, &src, arg);
    if (h == NULL)
        _exit(CHILD_NO_POOL);
    reset_round(h, ps, 4096);
    mp_heap_reset(h);
    mp_heap_destroy(h);
}

static void test_reset_child(void)
{
    unsigned char *buf = malloc(RESET_BUF);
    if (!CHECK("reset: buffer", buf != NULL))
        return;
    child_result r;
    child_die(reset_checked_buffer, buf, &r);
    char why[64];
    if (!CHECK("reset: a checked buffer heap reset with blocks live, default handler: no report, "
               "no abort",
               WIFEXITED(r.status) && WEXITSTATUS(r.status) == CHILD_SURVIVED && r.err[0] == '\0'))
        printf("    child: %s; stderr: %s\n", status_text(r.status, why, sizeof why), r.err);
    free(buf);
}

/* ------------------------------------------------------------------------------------------------
 * 11. A checked heap's reports name the heap, and a large block's double free is one
 * ---------------------------------------------------------------------------------------------- */

/* A large block freed twice (its mapping still cached): "double free", naming the heap. */
static void die_large_double_free(void *arg)
{
    (void)arg;
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.flags = MP_CHECKED, .name = "ckheap"});
    void *p = h != NULL ? mp_heap_alloc(h, MAXC + 1) : NULL;
    if (p == NULL)
        _exit(CHILD_NO_POOL);
    child_note(p);
    mp_heap_free(h, p);
    mp_heap_free(h, p);
}

/* arg: 0 a stack address, 1 an interior pointer of a class block, 2 of a large block, 3 another
 * heap's block. */
static void die_invalid_free(void *arg)
{
    int which = *(const int *)arg;
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.flags = MP_CHECKED, .name = "ckheap"});
    mp_heap *other = mp_heap_create(&(mp_heap_opts){.flags = MP_CHECKED, .name = "other"});
    char stack_bytes[64];
    unsigned char *small = h != NULL ? mp_heap_alloc(h, 100) : NULL;
    unsigned char *large = h != NULL ? mp_heap_alloc(h, MiB) : NULL;
    void *foreign = other != NULL ? mp_heap_alloc(other, 48) : NULL;
    if (small == NULL || large == NULL || foreign == NULL)
        _exit(CHILD_NO_POOL);
    void *p = which == 0   ? (void *)stack_bytes
              : which == 1 ? (void *)(small + 16)
              : which == 2 ? (void *)(large + 64)
                           : foreign;
    child_note(p);
    mp_heap_free(h, p);
}

static void test_checked_reports(void)
{
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.flags = MP_CHECKED, .name = "ckheap"});
    mp_heap *other = mp_heap_create(&(mp_heap_opts){.flags = MP_CHECKED, .name = "other"});
    if (!CHECK("reports: checked heaps", h != NULL && other != NULL))
        return;
    log_start();
    char stack_bytes[64];
    unsigned char *small = mp_heap_alloc(h, 100), *large = mp_heap_alloc(h, MiB);
    void *foreign = mp_heap_alloc(other, 48);
    mp_heap_free(h, stack_bytes);
    log_one("reports: a stack address: invalid free, naming the heap", MP_ERR_INVALID_FREE, NULL,
            "ckheap", stack_bytes);
    mp_heap_free(h, small + 16);
    log_one("reports: an interior pointer of a class block: invalid free, naming the heap",
            MP_ERR_INVALID_FREE, NULL, "ckheap", small + 16);
    mp_heap_free(h, large + 64);
    log_one("reports: an interior pointer of a large block: invalid free, naming the heap",
            MP_ERR_INVALID_FREE, NULL, "ckheap", large + 64);
    mp_heap_free(h, foreign);
    log_one("reports: another heap's block: invalid free, naming the heap", MP_ERR_INVALID_FREE,
            NULL, "ckheap", foreign);
    mp_heap_free(h, large);
    log_none("reports: a large block's free is not reported");
    mp_heap_free(h, large);
    log_one("reports: a large block freed twice: double free, naming the heap", MP_ERR_DOUBLE_FREE,
            NULL, "ckheap", large);

    /* One freed so long ago that its mapping went back (the cache keeps 32 runs): the heap cannot
     * tell its address from any other, so this one is an invalid free (mp_heap_free's contract). */
    void *bigs[40];
    for (int i = 0; i < 40; i++)
        bigs[i] = mp_heap_alloc(h, MiB + (size_t)i * 4096);
    for (int i = 0; i < 40; i++)
        mp_heap_free(h, bigs[i]);
    log_none("reports: large frees are not reported");
    mp_heap_free(h, bigs[0]);
    log_one("reports: a large block freed twice after its mapping went back: invalid free",
            MP_ERR_INVALID_FREE, NULL, "ckheap", bigs[0]);
    mp_heap_free(h, small);
    mp_heap_free(other, foreign);
    mp_heap_destroy(other);
    mp_heap_destroy(h);
    log_none("reports: nothing more at destroy");
    mp_set_error_handler(NULL, NULL);

    expect_death("reports: default handler: a large double free aborts with \"double free\" "
                 "naming the heap",
                 die_large_double_free, NULL, "double free of", "ckheap");
    static const int which[] = {0, 1, 2, 3};
    static const char *const what[] = {
        "reports: default handler: a stack address aborts with \"invalid free\" naming the heap",
        "reports: default handler: an interior class pointer: \"invalid free\" naming the heap",
        "reports: default handler: an interior large pointer: \"invalid free\" naming the heap",
        "reports: default handler: another heap's block: \"invalid free\" naming the heap"};
    for (size_t i = 0; i < 4; i++)
        expect_death(what[i], die_invalid_free, (void *)&which[i], "invalid free of", "ckheap");
}

/* ------------------------------------------------------------------------------------------------
 * 12. A damaged free list in a class of a checked or secure heap: mp_heap_stats and mp_heap_trim
 *    walk it, and report it as the class pool's next alloc would, instead of following it
 * ---------------------------------------------------------------------------------------------- */

typedef struct heap_walk {
    unsigned flags;
    bool trim; /* mp_heap_trim, else mp_heap_stats */
} heap_walk;

/* The 32-byte class of heap h gets a live block (*live) and the list B -> A; B's link is zeroed (a
 * checked heap: a write after free) or a raw pointer to the live block is planted there (a secure
 * heap). Returns B. */
static void *heap_damage_stage(mp_heap *h, unsigned flags, void **live)
{
    void *l = mp_heap_alloc(h, 32), *a = mp_heap_alloc(h, 32), *b = mp_heap_alloc(h, 32);
    mp_heap_free(h, a);
    mp_heap_free(h, b);
    if ((flags & MP_CHECKED) != 0)
        stray_zero(b, sizeof(void *));
    else
        stray_link_set(b, (uintptr_t)l);
    *live = l;
    return b;
}

/* The walk; true if its result is sane once a handler returns (nothing trimmed, stats agree). */
static bool heap_walk_call(const heap_walk *k, mp_heap *h)
{
    if (k->trim)
        return mp_heap_trim(h) == 0;
    struct mp_heap_stats s;
    return mp_heap_stats(h, &s) == 0 && s.allocs - s.frees == s.blocks_in_use;
}

static mp_error_kind heap_damage_kind(unsigned flags)
{
    return (flags & MP_CHECKED) != 0 ? MP_ERR_WRITE_AFTER_FREE : MP_ERR_CORRUPT_FREE_LIST;
}

/* One report of the damage, about B, naming the class pool "hp/32"; clears the log. */
static bool heap_damage_reported(const char *what, unsigned flags, const void *b)
{
    const logged_error *l = &elog.e[0];
    bool ok = CHECK(what, elog.n == 1) &&
              CHECK(what, l->kind == heap_damage_kind(flags) && l->addr == b &&
                              l->message_one_line && strncmp(l->message, "mempool: ", 9) == 0 &&
                              text_has(l->message, mp_error_name(l->kind)) &&
                              text_has_pool(l->message, "hp/32") && text_has_addr(l->message, b));
    if (!ok)
        log_show();
    log_clear();
    return ok;
}

static void bug_heap_walk(void *arg)
{
    const heap_walk *k = arg;
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.flags = k->flags, .name = "hp"});
    if (h == NULL)
        _exit(CHILD_NO_POOL);
    void *live, *b = heap_damage_stage(h, k->flags, &live);
    child_note(b);
    (void)heap_walk_call(k, h);
}

static void h_heap_walk(void *arg)
{
    const heap_walk *k = arg;
    char what[160];
    snprintf(what, sizeof what, "damaged list: %s of a heap with flags %#x, with a handler",
             k->trim ? "mp_heap_trim" : "mp_heap_stats", k->flags);
    log_start();
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.flags = k->flags, .name = "hp"});
    if (!CHECK(what, h != NULL))
        return;
    void *live, *b = heap_damage_stage(h, k->flags, &live);
    log_none(what);
    CHECK(what, heap_walk_call(k, h));
    heap_damage_reported(what, k->flags, b);
    void *p = mp_heap_alloc(h, 32); /* reported again, B handed out, the list cut */
    heap_damage_reported(what, k->flags, b);
    CHECK(what, p == b && heap_walk_call(k, h));
    log_none(what);
    mp_heap_free(h, p);
    mp_heap_free(h, live);
    mp_heap_destroy(h);
    log_none(what);
    mp_set_error_handler(NULL, NULL);
}

static void test_damaged_lists(void)
{
    static const unsigned flags[] = {MP_CHECKED, MP_SECURE, MP_CHECKED | MP_THREAD_SAFE};
    char what[200];
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        for (int trim = 0; trim < 2; trim++) {
            heap_walk k = {flags[i], trim != 0};
            snprintf(what, sizeof what,
                     "damaged list: %s of a heap with flags %#x aborts with "
                     "one line",
                     trim ? "mp_heap_trim" : "mp_heap_stats", flags[i]);
            expect_death(what, bug_heap_walk, &k,
                         flags[i] & MP_CHECKED ? "write after free" : "corrupted free list",
                         "hp/32");
            snprintf(what, sizeof what,
                     "damaged list: %s of a heap with flags %#x, with a "
                     "handler",
                     trim ? "mp_heap_trim" : "mp_heap_stats", flags[i]);
            run_isolated(what, h_heap_walk, &k);
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 */

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    (void)misuse_static_bytes; /* misuse.h's foreign addresses: no test here frees one */
    uint64_t ops = argc > 1 ? strtoull(argv[1], NULL, 10) : scaled(200000);
    CHECK("the header's class table has MP_HEAP_CLASSES classes up to MP_HEAP_MAX_CLASS",
          ref_classes_init() == MP_HEAP_CLASSES && ref_class[MP_HEAP_CLASSES - 1] == MAXC);

    printf("1. realloc\n");
    test_realloc();
    run_isolated("realloc: a large block with usable <= MP_HEAP_MAX_CLASS",
                 realloc_large_small_usable, NULL);
    printf("2. zero-size blocks\n");
    test_zero_size();
    printf("3. capacity\n");
    test_capacity();
    printf("4. trim\n");
    test_trim();
    printf("5. checked heap leaks\n");
    test_leak();
    printf("6. failing source\n");
    test_failing_source();
    printf("7. threads\n");
    test_threads(ops);
    printf("8. spill to a larger class\n");
    test_spill();
    printf("9. a source that returns misaligned memory\n");
    test_misaligned();
    printf("10. reset keeps the totals\n");
    test_reset_totals();
    test_reset_child();
    printf("11. a checked heap's reports\n");
    test_checked_reports();
    printf("12. a damaged free list in a checked or secure heap\n");
    test_damaged_lists();
    return TEST_DONE();
}

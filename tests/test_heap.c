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
 * Then the errors a checked heap reports (in child processes, so a crash fails one check) and
 * MEMPOOL_CHECKED (1; a bad value said once). Making heaps, the class table and statistics
 * output: test_heap_create.c; reset, destroy, capacity, buffers, a failing source and fresh
 * pages: test_heap_memory.c; helpers the three share: test_heap.h.
 * Statistics are compared as deltas, so the same code checks the process-wide heap.
 *
 * Usage: test_heap. Nothing here is random. Runs in a few seconds in a Release build (most of it
 * the kernel faulting in fresh chunks and large blocks), about 30 s under valgrind.
 */
#define _DEFAULT_SOURCE /* mincore, MAP_ANONYMOUS, MADV_POPULATE_WRITE */

#include "test_heap.h"
#include "child.h"

/* ------------------------------------------------------------------------------------------------
 * The class table against the header's (it fills the table the suite's class checks use)
 * ---------------------------------------------------------------------------------------------- */

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

/* ------------------------------------------------------------------------------------------------
 * The contract suite, part 1: every size up to MP_HEAP_MAX_CLASS
 * ---------------------------------------------------------------------------------------------- */

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
                 "%s: batch of %zu blocks, %" PRIu64 " bytes: stats say %" PRIu64
                 " blocks, %" PRIu64 " bytes, %" PRIu64 " large more",
                 t->name, w->nb, w->bytes, s.blocks_in_use - w->base.blocks_in_use,
                 s.bytes_in_use - w->base.bytes_in_use, s.large_in_use - w->base.large_in_use);
    for (size_t c = 0; c < MP_HEAP_CLASSES; c++)
        tally_expect(&w->klass,
                     s.classes[c].blocks_in_use - w->base.classes[c].blocks_in_use ==
                             w->per_class[c] &&
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
                 s.blocks_in_use == w->base.blocks_in_use &&
                     s.bytes_in_use == w->base.bytes_in_use && s.frees - w->base.frees == w->nb &&
                     s.allocs - w->base.allocs == w->nb,
                 "%s: after freeing a batch of %zu: in use %" PRIu64 " (was %" PRIu64
                 "), allocs +%" PRIu64 ", frees +%" PRIu64,
                 t->name, w->nb, s.blocks_in_use, w->base.blocks_in_use, s.allocs - w->base.allocs,
                 s.frees - w->base.frees);
    for (size_t c = 0; c < MP_HEAP_CLASSES; c++)
        tally_expect(&w->klass, s.classes[c].blocks_in_use == w->base.classes[c].blocks_in_use,
                     "%s: class %zu bytes keeps %" PRIu64 " blocks in use after freeing all",
                     t->name, cls[c],
                     s.classes[c].blocks_in_use - w->base.classes[c].blocks_in_use);
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
        tally_expect(&w.usable, x.usable >= n, "%s: usable size %zu < %zu asked", t->name, x.usable,
                     n);
        tally_expect(&w.usable, x.usable == cls[c],
                     "%s: alloc(%zu): usable size %zu, not its class's %zu", t->name, n, x.usable,
                     cls[c]);
        /* "requests of 65 to 128 bytes may waste up to 15/80 (18.75%) of their block; above 128
         * bytes no request wastes more than 12.5%" */
        tally_expect(&w.waste,
                     n <= 64 || (n <= 128 ? 80 * (x.usable - n) <= 15 * x.usable
                                          : 8 * (x.usable - n) <= x.usable),
                     "%s: alloc(%zu) wastes %zu of %zu bytes", t->name, n, x.usable - n, x.usable);
        tally_expect(&w.align, aligned_to(x.p, natural_align(n)),
                     "%s: alloc(%zu) = %p not %zu-aligned", t->name, n, (void *)x.p,
                     natural_align(n));
        tally_expect(&w.place, in_buffer(t, x.p, x.usable),
                     "%s: alloc(%zu) = %p outside the buffer", t->name, n, (void *)x.p);
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
        if (!tally_expect(&ta, x.p != NULL, "%s: alloc(%zu) failed, errno %d", t->name, sizes[i],
                          errno))
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

/* Whether a class's blocks are aligned to a, as mp_heap_aligned_alloc's contract says. */
static bool class_aligned(size_t size, size_t a)
{
    bool natural = size <= 4096 || (size & (size - 1)) == 0;
    return size % a == 0 && (natural || a <= 64);
}

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
            if (!tally_expect(&ta, x.p != NULL, "%s: aligned_alloc(%zu, %zu) failed, errno %d",
                              t->name, a, n, errno))
                continue;
            x.usable = t_usable(t, x.p);
            tally_expect(&ta,
                         aligned_to(x.p, a) && aligned_to(x.p, natural_align(n)) && x.usable >= n &&
                             in_buffer(t, x.p, x.usable),
                         "%s: aligned_alloc(%zu, %zu) = %p, usable %zu", t->name, a, n, (void *)x.p,
                         x.usable);
            /* "Alignments up to 4096 come from the size classes (the smallest class whose blocks
             * are so aligned: a class of up to 4096 bytes or a power of two is aligned to its
             * size's lowest set bit, at most 4096; any other class is 64-aligned); larger ones
             * are large blocks." Exact from 32 on, where no other class would do; below it only
             * the size and the alignment are promised. */
            bool is_large = a > 4096 || n > MP_HEAP_MAX_CLASS;
            large += is_large;
            if (!is_large && a >= 32) {
                size_t c = 0;
                while (c < MP_HEAP_CLASSES && (cls[c] < n || !class_aligned(cls[c], a)))
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
                     "%s: align %zu: %" PRIu64 " large blocks in use more, expected %zu", t->name,
                     a, s1.large_in_use - s0.large_in_use, large);
        for (size_t i = 0; i < nb; i++)
            tally_expect(&content, filled(b[i].p, b[i].usable, b[i].usable, b[i].seed),
                         "%s: aligned block (%zu, %zu) lost its contents", t->name, a, b[i].size);
        tally_expect(&content, disjoint(b, nb, t->name), "%s: aligned blocks overlap", t->name);
        for (size_t i = 0; i < nb; i++)
            t_free(t, b[i].p);
        s1 = t_stats(t);
        tally_expect(&ta,
                     s1.blocks_in_use == s0.blocks_in_use && s1.large_in_use == s0.large_in_use,
                     "%s: align %zu: blocks left in use after freeing all", t->name, a);
    }
    CHECK("aligned: 1 .. 64 KiB and 1 MiB alignments honoured, usable >= size", ta.bad == 0);
    CHECK("aligned: up to 4096 from the classes, larger alignments are large blocks",
          klass.bad == 0);
    CHECK("aligned: contents kept, blocks disjoint", content.bad == 0);

    /* Not a power of two: EINVAL. */
    const size_t bad[] = {0,        3,
                          24,       48,
                          100,      4095,
                          65537,    3 * MiB,
                          SIZE_MAX, ((size_t)1 << (sizeof(size_t) * 8 - 24)) + 1}; /* 2^40 + 1 */
    tally inval = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        void *p = t_aligned(t, bad[i], 64);
        tally_expect(&inval, p == NULL && errno == EINVAL,
                     "%s: aligned_alloc(%zu, 64) = %p, errno %d", t->name, bad[i], p, errno);
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
        tally_expect(&nomem, p == NULL && errno == ENOMEM,
                     "%s: aligned_alloc(%zu, 1) = %p, errno %d", t->name, huge_align[i], p, errno);
    }
    errno = 0;
    void *p = t_aligned(t, 64, (size_t)PTRDIFF_MAX + 1);
    tally_expect(&nomem, p == NULL && errno == ENOMEM,
                 "%s: aligned_alloc(64, PTRDIFF_MAX + 1): errno %d", t->name, errno);
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
                     "%s: calloc(%zu, %zu) = %p not zeroed, short or misaligned", t->name,
                     shapes[i][0], shapes[i][1], (void *)p);
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
        tally_expect(&ov, p == NULL && errno == ENOMEM, "%s: calloc(%zu, %zu) = %p, errno %d",
                     t->name, over[i][0], over[i][1], p, errno);
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
        tally_expect(
            &st,
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
                         g == NULL && errno == ENOMEM && t_usable(t, f) == fu &&
                             filled(f, fu, fu, 99),
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
              src_kept_contract(t->source));
    printf("-- %s: %.2f s\n", t->name, lap());
}

/* ------------------------------------------------------------------------------------------------
 * Checked heaps: each user bug reported (in a child process: a crash fails one check)
 * ---------------------------------------------------------------------------------------------- */

/* A bug run in a child by in_child(). */
typedef struct bug_case {
    const char *what;
    bool (*fn)(void *);
    void *arg;
} bug_case;

static void bug_case_run(void *arg)
{
    const bug_case *c = arg;
    errs_clear();
    if (!CHECK(c->what, c->fn(c->arg))) {
        printf("  child saw %u errors\n", errs.n);
        errs_show();
    }
}

/* Checks fn(arg) in a child with the recording handler (a crash fails this one check). */
static void in_child(const char *what, bool (*fn)(void *), void *arg)
{
    run_isolated(what, bug_case_run, &(bug_case){what, fn, arg});
}

static bool one_error(mp_error_kind kind, const void *addr)
{
    return errs.n == 1 && errs.kind[0] == kind && (addr == NULL || errs.addr[0] == addr);
}

static mp_heap *checked_heap(void)
{
    return mp_heap_create(&(mp_heap_opts){.flags = MP_CHECKED, .name = "checked"});
}

/* "reported in a checked one: ... a block freed twice": a double free, for a class block (as for
 * pools) and for a large block whose mapping is still cached (freed just before). */
static bool bug_double_free(void *arg)
{
    size_t n = *(size_t *)arg;
    mp_heap *h = checked_heap();
    void *keep = mp_heap_alloc(h, n), *p = mp_heap_alloc(h, n);
    mp_heap_free(h, p);
    mp_heap_free(h, p);
    bool ok = one_error(MP_ERR_DOUBLE_FREE, p);
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

static void double_free_in_checked_heap(void *arg)
{
    (void)arg;
    mp_heap *h = checked_heap();
    void *p = mp_heap_alloc(h, 40);
    mp_heap_free(h, p);
    mp_heap_free(h, p);
}

/* The default handler: one line "mempool: double free of 0x..." on stderr, then abort(). */
static bool default_handler_aborts(void)
{
    child_result r;
    child_die(double_free_in_checked_heap, NULL, &r);
    bool ok = r.status != -1 && WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT &&
              strncmp(r.err, "mempool: double free of 0x", 26) == 0;
    if (!ok)
        printf("  default handler: status %#x, stderr: %s\n", r.status, r.err);
    return ok;
}

static void test_checked_bugs(void)
{
    size_t small = 48, large = MP_HEAP_MAX_CLASS + 1;
    in_child("checked: double free of a class block reported", bug_double_free, &small);
    in_child("checked: double free of a large block reported", bug_double_free, &large);
    in_child("checked: free of an interior pointer reported", bug_interior, NULL);
    in_child("checked: free of another heap's block reported", bug_other_heap, NULL);
    const int which[] = {0, 1, 2};
    in_child("checked: free of a stack address reported", bug_foreign, (void *)&which[0]);
    in_child("checked: free of a static address reported", bug_foreign, (void *)&which[1]);
    in_child("checked: free of a C-library block reported", bug_foreign, (void *)&which[2]);
    size_t sizes[] = {24, 100, 5000};
    for (size_t i = 0; i < 3; i++)
        in_child("checked: a write past the usable size reported at free", bug_overflow, &sizes[i]);
    in_child("checked: a write after free reported", bug_write_after_free, NULL);
    bool no = false, yes = true;
    in_child("checked: live class blocks reported as leaks at destroy", bug_leak, &no);
    in_child("checked: a live large block is reported as a leak too", bug_leak, &yes);
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

/* MEMPOOL_CHECKED is 0 or 1 exactly: any other value (arg) is said once on stderr when the
 * process-wide heap is made, and is not fatal; 0 is said nothing about. Also run first. */
static bool env_value_child(void *arg)
{
    const char *value = arg;
    FILE *err = tmpfile();
    if (err == NULL || dup2(fileno(err), 2) < 0)
        return false;
    setenv("MEMPOOL_CHECKED", value, 1);
    mp_free(mp_malloc(40));
    mp_free(mp_malloc(50));
    char text[1024] = {0};
    rewind(err);
    size_t len = fread(text, 1, sizeof text - 1, err);
    text[len] = '\0';
    const char *said = strstr(text, "bad value in MEMPOOL_CHECKED");
    bool bad = strcmp(value, "0") != 0;
    bool once = bad ? said != NULL && strstr(said + 1, "bad value") == NULL : len == 0;
    if (!once)
        printf("  MEMPOOL_CHECKED=%s: stderr: %s\n", value, text);
    return once && errs.n == 0;
}

/* ------------------------------------------------------------------------------------------------
 * The run
 * ---------------------------------------------------------------------------------------------- */

static mp_heap *make(unsigned flags, const char *name, counting_source *s, size_t capacity)
{
    static mp_source sources[8];
    static int used;
    mp_heap_opts o = {.flags = flags, .name = name, .capacity = capacity};
    if (s != NULL && used < 8) {
        sources[used] = counting_source_of(s);
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
    in_child("MEMPOOL_CHECKED=1 makes the process-wide heap checked", env_checked_child, NULL);
    static const char *const values[] = {"0", "yes", "10", ""};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        in_child("MEMPOOL_CHECKED: a value but 0 and 1 said once on stderr, not fatal",
                 env_value_child, (void *)values[i]);

    lap();
    test_classes();
    printf("-- classes: %.2f s\n", lap());

    /* The process-wide heap. */
    CHECK("default heap: mp_default_heap() is the same heap each time",
          mp_default_heap() != NULL && mp_default_heap() == mp_default_heap());
    target def = {"process-wide heap (mp_malloc)", NULL, 0, NULL, NULL, 25 * MiB, NULL};
    suite(&def);
    void *p = mp_malloc(1234);
    CHECK("default heap: mp_usable_size agrees with the heap's",
          p && mp_usable_size(p) == mp_heap_usable_size(mp_default_heap(), p));
    mp_free(p);

    counting_source *ds = src_new(), *cs = src_new();
    const struct {
        const char *name;
        unsigned flags;
        counting_source *s;
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
                  kinds[i].s->bytes_out == 0 && kinds[i].s->maps == kinds[i].s->unmaps);
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

    const heap_part parts[] = {{"checked heap bugs", test_checked_bugs}};
    run_parts(parts, sizeof parts / sizeof parts[0]);
    return TEST_DONE();
}

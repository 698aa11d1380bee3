/*
 * test_heap_memory.c: where a heap's memory comes from and goes: reset and destroy (every byte back
 * to the source), capacity exhaustion, buffer exhaustion and reset, a source that fails at every
 * step in turn, and the pages of a fresh block (over the system source all resident before the
 * program writes them, and no others; over the caller's source left alone: mincore), large blocks
 * reused and against a model. The contract suite every kind of heap runs is test_heap.c; helpers
 * shared: test_heap.h.
 *
 * Usage: test_heap_memory. Nothing here is random (the large model has fixed seeds); a few seconds.
 */
#define _GNU_SOURCE /* mincore, MAP_ANONYMOUS, MADV_POPULATE_WRITE, mremap */

#include "test_heap.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

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
    counting_source *s = src_new();
    mp_source source = counting_source_of(s);
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
    CHECK("reset: the heap keeps its class chunks", s1.bytes_reserved > 0 && s->bytes_out > 0);
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
          s->bytes_out == 0 && s->maps == s->unmaps && s->regions == 0);
    CHECK("destroy: the source contract kept", src_kept_contract(s));
    free(s);
}

static void test_capacity(void)
{
    /* Class blocks: fill a 4 MiB heap with 1000-byte blocks. */
    counting_source *s = src_new();
    mp_source source = counting_source_of(s);
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
           st.bytes_reserved, (size_t)s->peak);
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
    CHECK("capacity: destroy gives back every byte", s->bytes_out == 0 && s->maps == s->unmaps);

    /* Large blocks: a 16 MiB heap, 1 MiB blocks. */
    memset(s, 0, sizeof *s);
    s->fail_at = s->fail_from = 0;
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
    CHECK("capacity: destroy gives back every byte (large)",
          s->bytes_out == 0 && s->maps == s->unmaps);
    CHECK("capacity: the source contract kept", src_kept_contract(s));
    free(s);
}

static void test_buffer_exhaustion(void)
{
    const size_t size = 24 * MiB, off = GUARD + 5;
    unsigned char *raw = malloc(size + off + GUARD);
    if (!CHECK("buffer: memory", raw != NULL))
        return;
    memset(raw, 0xC3, size + off + GUARD);
    unsigned char *buf = raw + off;
    memset(buf, 0x5C, size); /* dirty, for calloc */
    counting_source *s = src_new();
    mp_heap *h =
        mp_heap_create(&(mp_heap_opts){.buffer = buf,
                                       .buffer_size = size,
                                       .name = "buf",
                                       .source = &(mp_source){counting_map, counting_unmap, s}});
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
    CHECK("buffer: the source is never called", s->calls == 0);
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
            counting_source *s = src_new();
            s->dirty = 0; /* 2 MiB chunks dirtied hundreds of times take too long */
            s->fail_at = (unsigned long long)k + 1; /* k counts calls from 0 */
            s->fail_from = mode == 1 ? s->fail_at : 0;
            mp_source source = counting_source_of(s);
            errno = 0;
            mp_heap *h = mp_heap_create(&(mp_heap_opts){.source = &source, .name = "failing"});
            size_t refused = 0;
            if (h == NULL) {
                tally_expect(&ta, errno == ENOMEM, "create with map %ld failing: errno %d", k,
                             errno);
            } else {
                tally_expect(
                    &ta, failing_workload(h, &refused),
                    "map %ld failing%s: a refusal without ENOMEM, a block lost or miscounted", k,
                    mode ? " and after" : "");
                if (mode == 1) { /* the source recovers: the heap must serve again */
                    s->fail_at = s->fail_from = 0;
                    void *p = mp_heap_alloc(h, 5000), *q = mp_heap_alloc(h, 3 * MiB);
                    tally_expect(&ta, p != NULL && q != NULL, "map %ld: no recovery", k);
                    mp_heap_free(h, p);
                    mp_heap_free(h, q);
                }
                mp_heap_destroy(h);
            }
            tally_expect(&ta, s->bytes_out == 0 && s->maps == s->unmaps,
                         "map %ld failing: %zu bytes not given back, %llu maps, %llu unmaps", k,
                         (size_t)s->bytes_out, (unsigned long long)s->maps,
                         (unsigned long long)s->unmaps);
            violations += s->violations + s->bad_unmaps;
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

/* The pages strictly inside a block of `stride` bytes at p (neither its first nor its last page):
 * those a write to its two ends leaves alone. */
static void interior(const void *p, size_t stride, uintptr_t *lo, size_t *n)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    *lo = ((uintptr_t)p & ~(page - 1)) + page;
    uintptr_t hi = ((uintptr_t)p + stride - 1) & ~(page - 1);
    *n = hi > *lo ? (size_t)(hi - *lo) : 0;
}

/* Resident pages inside a block (see interior()). */
static long interior_resident(const void *p, size_t stride)
{
    uintptr_t lo;
    size_t n;
    interior(p, stride, &lo, &n);
    return n == 0 ? 0 : resident_pages((const void *)lo, n);
}

/* Pages a block of `stride` bytes at p spans. */
static long spanned_pages(const void *p, size_t stride)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    return (long)((((uintptr_t)p + stride + page - 1) & ~(page - 1)) / page -
                  ((uintptr_t)p & ~(page - 1)) / page);
}

/* One heap over the system source, the policy step by step (docs/design.md, "The heap"): a fresh
 * block of at most two pages is resident whole before a write; of a larger class, the first fresh
 * block is a sample left to fault, and so is every later one while the last sample had a page
 * inside it unwritten; once a sample was written whole, the next POPULATE_RUN (7) fresh blocks are
 * resident whole before a write, and the one after is a sample again. Never a page past the block
 * just handed out. */
static void populate_policy(unsigned flags, bool thp_always, const char *kind)
{
    char what[160];
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.flags = flags});
    unsigned char *small = h != NULL ? mp_heap_alloc(h, 3000) : NULL;
    snprintf(what, sizeof what, "populate, %s: heap and a small block", kind);
    if (CHECK(what, small != NULL)) {
        size_t stride = mp_heap_usable_size(h, small);
        snprintf(what, sizeof what,
                 "populate, %s: a small fresh block resident whole before a write", kind);
        CHECK(what, resident_pages(small, stride) == spanned_pages(small, stride));
    }
    /* Blocks of three or four pages, each written at its ends only: all samples, none
     * populated. */
    bool none = true;
    for (int i = 0; h != NULL && i < 6; i++) {
        unsigned char *q = mp_heap_alloc(h, 9 * KiB);
        size_t stride = q != NULL ? mp_heap_usable_size(h, q) : 0;
        none = none && q != NULL && interior_resident(q, stride) == 0;
        if (q != NULL)
            q[0] = q[stride - 1] = 1;
    }
    snprintf(what, sizeof what,
             "populate, %s: blocks of 3-4 pages written at their ends: none "
             "populated",
             kind);
    if (!thp_always)
        CHECK(what, none);
    enum { BIG = 100 * KiB, N = 12 }; /* a class block of 26 pages: its stride is its class size */
    unsigned char *b[N] = {0};
    for (size_t i = 0; small != NULL && i < N; i++) {
        b[i] = mp_heap_alloc(h, BIG);
        if (b[i] == NULL)
            break;
        size_t stride = mp_heap_usable_size(h, b[i]);
        long in = interior_resident(b[i], stride);
        /* b[0]: the first, a sample, written at its ends; b[1]: a sample again (the last was
         * sparse), written whole; b[2..8]: populated; b[9]: a sample, written at its ends;
         * b[10]: a sample again; b[11] likewise. */
        bool populated = i >= 2 && i <= 8;
        uintptr_t lo;
        size_t n;
        interior(b[i], stride, &lo, &n);
        long want = populated ? (long)(n / (size_t)sysconf(_SC_PAGESIZE)) : 0;
        snprintf(what, sizeof what, "populate, %s: large block %zu %s before a write", kind, i,
                 populated ? "resident whole" : "a sample, its inside left to fault");
        if (!thp_always && !CHECK(what, in == want))
            printf("  %ld inner pages resident, %ld wanted\n", in, want);
        if (populated && !thp_always)
            CHECK("populate: a populated block resident to its last page",
                  resident_pages(b[i], stride) == spanned_pages(b[i], stride));
        if (i == 1)
            memset(b[i], 1, stride);
        else
            b[i][0] = b[i][stride - 1] = 1;
        if (!thp_always && i == N - 1) {
            uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
            uintptr_t after = ((uintptr_t)b[i] + stride + page - 1) & ~(page - 1);
            CHECK("populate: no page after the last block asked for",
                  resident_pages((void *)after, 8 * page) == 0);
        }
    }
    snprintf(what, sizeof what, "populate, %s: the large blocks", kind);
    CHECK(what, b[N - 1] != NULL);
    mp_heap_destroy(h);
}

/* A heap over the system source asks for a never-used block's pages as it hands the block out
 * while it sees its blocks written whole (populate_policy); over the caller's source it asks for
 * nothing: a fresh block's pages past its first fault in as the program writes them. */
static void test_populate(void)
{
    bool thp_always;
    if (!can_populate(&thp_always)) {
        printf("  populate: skipped, the kernel cannot populate (MADV_POPULATE_WRITE)\n");
        return;
    }
    /* Under ASan or Valgrind every pool tells the tool about its blocks, and a thread-safe pool
     * that does keeps no caches: each call takes the lock, where nothing is populated. */
    populate_policy(0, thp_always, "plain heap");
    if (!TEST_ASAN && !TEST_ON_VALGRIND())
        populate_policy(MP_THREAD_SAFE, thp_always, "thread-safe heap (its caches' refill)");
    const size_t n = 100 * KiB;
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

/* Blocks of a class above a page that is not a power of two start 64 bytes before a page boundary
 * (mempool.h: such classes are 64-aligned), so a program that writes only each block's two ends
 * shares the page where one object ends with the next one's start: K fresh blocks of the 12 KiB
 * class, each asked for 11.5 KiB, make K + 1 pages resident, where page-aligned blocks made 2K.
 * Over the caller's source, which the heap never populates, what is resident is what was written.
 */
static void test_shared_ends(void)
{
    enum { K = 16 };
    const size_t ask = 11 * KiB + 512;
    mp_source anon = {anon_map, anon_unmap, NULL};
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.source = &anon, .name = "ends"});
    unsigned char *b[K] = {0};
    bool ok = h != NULL, aligned = true;
    for (size_t i = 0; ok && i < K; i++) {
        b[i] = mp_heap_alloc(h, ask);
        ok = b[i] != NULL && mp_heap_usable_size(h, b[i]) == 12 * KiB;
        if (ok) {
            aligned = aligned && aligned_to(b[i], 64);
            b[i][0] = b[i][ask - 1] = 1;
        }
    }
    if (CHECK("shared ends: 16 blocks of the 12 KiB class, 64-aligned", ok && aligned)) {
        bool thp_always;
        (void)can_populate(&thp_always);
        const unsigned char *lo = b[0], *hi = b[0];
        for (size_t i = 1; i < K; i++) {
            lo = b[i] < lo ? b[i] : lo;
            hi = b[i] > hi ? b[i] : hi;
        }
        long in = resident_pages(lo, (size_t)(hi - lo) + ask);
        if (!thp_always &&
            !CHECK("shared ends: blocks written at their ends share pages", in >= 0 && in <= K + 1))
            printf("  %ld pages resident for %d blocks\n", in, K);
    }
    mp_heap_destroy(h);
}

/* ------------------------------------------------------------------------------------------------
 * The run
 * ---------------------------------------------------------------------------------------------- */

/* ------------------------------------------------------------------------------------------------
 * Large blocks: freed pages serve later requests of any size
 * ---------------------------------------------------------------------------------------------- */

static long minor_faults(void)
{
    struct rusage u;
    return getrusage(RUSAGE_SELF, &u) == 0 ? u.ru_minflt : 0;
}

static void touch_pages(unsigned char *p, size_t n)
{
    for (size_t k = 0; k < n; k += 4096)
        p[k] = (unsigned char)k;
    p[n - 1] = 1;
}

/* A large block's mapping: its block starts less than 2 MiB after the mapping's 2 MiB-aligned
 * start (mp_heap_free finds the header by masking), and its usable size runs to the mapping's
 * end. */
static size_t mapping_of(const mp_heap *h, const void *p)
{
    return mp_heap_usable_size(h, p) + ((uintptr_t)p & (2 * MiB - 1));
}

static uint64_t reserved(const mp_heap *h)
{
    struct mp_heap_stats s;
    return mp_heap_stats(h, &s) == 0 ? s.bytes_reserved : 0;
}

/* A block reused in place for a smaller request keeps the rest of its pages cached, and a larger
 * request takes them: no page faults in again, and bytes_reserved says exactly what is mapped. */
static void test_large_any_size(void)
{
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.name = "anysize"});
    if (!CHECK("any size: heap", h != NULL))
        return;
    uint64_t base = reserved(h);
    unsigned char *p = mp_heap_alloc(h, 4 * MiB);
    if (!CHECK("any size: 4 MiB", p != NULL))
        return;
    touch_pages(p, 4 * MiB);
    size_t whole = (mapping_of(h, p) + 2 * MiB - 1) & ~(2 * MiB - 1); /* whole chunks mapped */
    mp_heap_free(h, p);
    unsigned char *q = mp_heap_alloc(h, MiB);
    struct mp_heap_stats s;
    mp_heap_stats(h, &s);
    CHECK("any size: a 1 MiB request reuses a freed 4 MiB block where it lies", q == p);
    CHECK("any size: the rest of its pages stay cached, one run", s.large_cached == 1);
    CHECK("any size: bytes_reserved unchanged: nothing mapped, nothing lost",
          s.bytes_reserved == base + whole);
    long f0 = minor_faults();
    unsigned char *r = mp_heap_alloc(h, 3 * MiB - 64 * KiB);
    if (CHECK("any size: 3 MiB - 64 KiB", r != NULL))
        touch_pages(r, 3 * MiB - 64 * KiB);
    long faults = minor_faults() - f0;
    mp_heap_stats(h, &s);
    CHECK("any size: bytes_reserved exact: still the first block's pages, moved, none added",
          s.bytes_reserved == base + whole);
    size_t two = mapping_of(h, q) + mapping_of(h, r);
    size_t back = mp_heap_trim(h);
    mp_heap_stats(h, &s);
    CHECK("any size: trim gives back what the two blocks left cached",
          back == whole - two && s.bytes_reserved == base + two && s.large_cached == 0);
    mp_heap_free(h, q);
    mp_heap_free(h, r);
    back = mp_heap_trim(h);
    mp_heap_stats(h, &s);
    CHECK("any size: and, both freed, everything",
          back == two && s.bytes_reserved == base && s.large_cached == 0);
    /* the same block's faults with the cache empty, in this run (a tool may add its own) */
    f0 = minor_faults();
    unsigned char *fresh = mp_heap_alloc(h, 3 * MiB - 64 * KiB);
    if (CHECK("any size: a fresh 3 MiB - 64 KiB", fresh != NULL))
        touch_pages(fresh, 3 * MiB - 64 * KiB);
    long fresh_faults = minor_faults() - f0;
    printf("  3 MiB from the cached rest of a 4 MiB block: %ld faults; from nothing: %ld\n", faults,
           fresh_faults);
    if (!TEST_TSAN) /* TSan's shadow faults in as the program writes, several pages a page */
        CHECK("any size: a larger request takes the cached pages: no refault",
              faults < fresh_faults / 2);
    mp_heap_free(h, fresh);
    mp_heap_destroy(h);
}

/* A cached run that starts a 2 MiB chunk (a tail cut at a multiple of 2 MiB) may hold the old
 * user's bytes where free looks for a block's owner: reused, it must read as a large block. */
static void test_large_tail_owner(void)
{
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.name = "tailowner"});
    if (!CHECK("tail at a chunk: heap", h != NULL))
        return;
    unsigned char *p = mp_heap_alloc(h, 4 * MiB);
    if (!CHECK("tail at a chunk: 4 MiB", p != NULL))
        return;
    memset(p, 0xA5, 4 * MiB); /* the second chunk's first words too */
    mp_heap_free(h, p);
    /* header + block = 2 MiB exactly: the rest of the mapping is cached from the next chunk on */
    void *head = mp_heap_alloc(h, 2 * MiB - ((uintptr_t)p & (2 * MiB - 1)));
    void *tail = mp_heap_alloc(h, 512 * 1024);
    CHECK("tail at a chunk: both served", head != NULL && tail != NULL);
    mp_heap_free(h, tail); /* crashed: the owner word was the old user's bytes */
    mp_heap_free(h, head);
    struct mp_heap_stats s;
    CHECK("tail at a chunk: both freed as large blocks",
          mp_heap_stats(h, &s) == 0 && s.large_in_use == 0 && s.blocks_in_use == 0 && s.frees == 3);
    mp_heap_destroy(h);
}

/* Freed large pages are reused where they lie, with no mapping and no pages moved: a block cut
 * from a cached run and freed joins the rest again, so a request of the whole size takes it back;
 * and a smaller request takes a run that starts mid-chunk from its first chunk boundary. */
static void test_large_in_place(void)
{
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.name = "inplace"});
    if (!CHECK("in place: heap", h != NULL))
        return;
    unsigned char *p = mp_heap_alloc(h, 4 * MiB);
    if (!CHECK("in place: 4 MiB", p != NULL))
        return;
    touch_pages(p, 4 * MiB);
    mp_heap_free(h, p);
    uint64_t held = reserved(h);
    unsigned char *q = mp_heap_alloc(h, MiB);
    CHECK("in place: 1 MiB where the 4 MiB block was", q == p);
    mp_heap_free(h, q);
    struct mp_heap_stats s;
    CHECK("in place: the freed block and the rest cut off it are one run again",
          mp_heap_stats(h, &s) == 0 && s.large_cached == 1);
    unsigned char *r = mp_heap_alloc(h, 4 * MiB);
    CHECK("in place: 4 MiB again where it was, nothing mapped", r == p && reserved(h) == held);
    mp_heap_free(h, r);
    q = mp_heap_alloc(h, MiB);
    r = mp_heap_alloc(h, 2 * MiB); /* the rest starts mid-chunk; the next chunk has room */
    CHECK("in place: 2 MiB from the rest of the run, at its chunk boundary",
          q == p && r == p + 2 * MiB && reserved(h) == held);
    mp_heap_free(h, q);
    mp_heap_free(h, r);
    CHECK("in place: all one run again", mp_heap_stats(h, &s) == 0 && s.large_cached == 1);
    uint64_t back = mp_heap_trim(h);
    CHECK("in place: trim gives it back", back != 0 && reserved(h) == held - back);
    mp_heap_destroy(h);
}

/* Blocks of random large sizes (300 KiB..4 MiB) freed and allocated in turn, as malloc_large
 * does: the pages come from the cache, so few fault in, and what the heap holds stays within the
 * cache's bound above what is in use. */
static void test_large_churn(void)
{
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.name = "churn"});
    if (!CHECK("churn: heap", h != NULL))
        return;
    enum { SLOTS = 20, ROUNDS = 400 };
    unsigned char *b[SLOTS] = {0};
    uint64_t base = reserved(h), rng = 0x9E3779B97F4A7C15u, worst = 0;
    long pages = 0, faults = 0;
    int r = 0;
    for (; r < ROUNDS; r++) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        size_t i = (size_t)(rng >> 33) % SLOTS, size = 300 * KiB + (size_t)(rng >> 20) % (4 * MiB);
        mp_heap_free(h, b[i]);
        b[i] = mp_heap_alloc(h, size);
        if (b[i] == NULL)
            break;
        long f0 = minor_faults();
        touch_pages(b[i], size);
        if (r >= ROUNDS / 2) { /* past the warm-up */
            faults += minor_faults() - f0;
            pages += (long)((size + 4095) / 4096);
        }
        uint64_t live = 0;
        for (size_t k = 0; k < SLOTS; k++)
            live += b[k] != NULL ? mapping_of(h, b[k]) : 0;
        uint64_t held = reserved(h) - base - live;
        worst = held > worst ? held : worst;
    }
    printf("  churn: %ld faults for %ld pages written; at most %" PRIu64 " KiB held unused\n",
           faults, pages, worst / KiB);
    CHECK("churn: every block allocated", r == ROUNDS);
    if (!TEST_TSAN) /* as above */
        CHECK("churn: freed pages serve later sizes: under 1 in 8 pages faults",
              faults < pages / 8);
    CHECK("churn: unused bytes held stay within the cache's 32 MiB", worst <= 32 * MiB);
    for (size_t k = 0; k < SLOTS; k++)
        mp_heap_free(h, b[k]);
    mp_heap_trim(h);
    CHECK("churn: trim gives every byte back", reserved(h) == base);
    mp_heap_destroy(h);
}

/* A caller's source takes back only whole regions: a cached block is reused only by a request it
 * fits within 25%, never split, and trim returns it whole. */
static void test_large_source_whole(void)
{
    counting_source *cs = src_new();
    mp_source source = counting_source_of(cs);
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.source = &source, .name = "whole"});
    if (!CHECK("source: heap", h != NULL && cs != NULL))
        return;
    uint64_t base = reserved(h);
    void *p = mp_heap_alloc(h, 4 * MiB);
    mp_heap_free(h, p);
    unsigned long long maps = cs->maps;
    void *q = mp_heap_alloc(h, MiB);
    CHECK("source: a 4 MiB block is not split for 1 MiB: a new mapping",
          q != NULL && q != p && cs->maps == maps + 1);
    void *r = mp_heap_alloc(h, 4 * MiB - 4096);
    CHECK("source: a request it fits within 25% reuses it", r == p && cs->maps == maps + 1);
    mp_heap_free(h, q);
    mp_heap_free(h, r);
    mp_heap_trim(h);
    CHECK("source: trim gives both back whole",
          reserved(h) == base && cs->bad_unmaps == 0 && src_kept_contract(cs));
    mp_heap_destroy(h);
    CHECK("source: everything back at destroy", cs->bytes_out == 0);
    free(cs);
}

/* While old_mremap is set, mremap(MREMAP_FIXED) unmaps the destination and then fails, as Linux
 * before 6.17 does when the range to move spans several mappings (a run cached from pages moved
 * before, or joined with its neighbour); the system's mremap otherwise. The heap is a static
 * library: this definition is the one it calls. */
static bool old_mremap;

void *mremap(void *from, size_t size, size_t new_size, int flags, ...)
{
    void *to = NULL;
    if ((flags & MREMAP_FIXED) != 0) {
        va_list ap;
        va_start(ap, flags);
        to = va_arg(ap, void *);
        va_end(ap);
    }
    if (old_mremap && to != NULL) {
        munmap(to, new_size);
        errno = EFAULT;
        return MAP_FAILED;
    }
    return (void *)syscall(SYS_mremap, from, size, new_size, flags, to);
}

/* A block gathered from cached runs whose move fails as above is mapped whole all the same (it
 * was left with holes where the moves failed: SIGSEGV). In a child, which such a fault kills. */
static void test_large_move_fails(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        mp_heap *h = mp_heap_create(&(mp_heap_opts){.name = "movefail"});
        unsigned char *a = mp_heap_alloc(h, 3 * MiB), *b = mp_heap_alloc(h, 3 * MiB);
        if (h == NULL || a == NULL || b == NULL)
            _exit(2);
        touch_pages(a, 3 * MiB);
        touch_pages(b, 3 * MiB);
        mp_heap_free(h, a);
        mp_heap_free(h, b);
        old_mremap = true; /* no run is long enough: a fresh mapping, the runs moved into it */
        unsigned char *c = mp_heap_alloc(h, 12 * MiB);
        old_mremap = false;
        if (c == NULL)
            _exit(3);
        touch_pages(c, 12 * MiB);
        mp_heap_free(h, c);
        mp_heap_trim(h);
        mp_heap_destroy(h);
        _exit(0);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        printf("  move fails: the child %s %d\n", WIFSIGNALED(status) ? "died of signal" : "exited",
               WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    CHECK("move fails: the gathered block is mapped whole (the child neither faulted nor failed)",
          pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ------------------------------------------------------------------------------------------------
 * Large blocks against a reference model
 * ---------------------------------------------------------------------------------------------- */

/* One live block of the large model: where, what was asked, its usable size and pattern seed. */
typedef struct lblock {
    unsigned char *p;
    size_t size, usable, align;
    uint64_t seed;
} lblock;

/* The bytes the model writes in a large block of n bytes: the first 8 of every 64 (a block is
 * 64-aligned, so these take in every chunk's header and owner words it covers) and its last 64;
 * or checks those of them below `upto`. */
static bool lmodel_marks(unsigned char *p, size_t n, size_t upto, uint64_t seed, bool write)
{
    bool ok = true;
    for (size_t i = 0; i < upto; i += (i & 63) == 7 && i + 64 < n ? 57 : 1) {
        if (write)
            p[i] = pat(seed, i);
        else
            ok &= p[i] == pat(seed, i);
    }
    return ok;
}

static bool lmodel_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i += i + 1 < 64 || i + 64 >= n ? 1 : 4096)
        if (p[i] != 0)
            return false;
    return p[n - 1] == 0;
}

/* Every block's mapping (its 2 MiB-aligned start to the end of its usable bytes) apart from the
 * others'; and the stats: blocks, usable bytes, counts, the cache's bound. */
static bool lmodel_consistent(const mp_heap *h, const lblock *b, size_t n,
                              const struct mp_heap_stats *base, uint64_t allocs, uint64_t frees)
{
    uint64_t live = 0, bytes = 0;
    bool apart = true;
    for (size_t i = 0; i < n; i++) {
        if (b[i].p == NULL)
            continue;
        live++;
        bytes += b[i].usable;
        uintptr_t lo = (uintptr_t)b[i].p & ~(uintptr_t)(2 * MiB - 1);
        uintptr_t hi = (uintptr_t)b[i].p + b[i].usable;
        for (size_t k = 0; k < n; k++) {
            uintptr_t klo = (uintptr_t)b[k].p & ~(uintptr_t)(2 * MiB - 1);
            if (k != i && b[k].p != NULL && klo < hi && lo < (uintptr_t)b[k].p + b[k].usable)
                apart = false;
        }
    }
    struct mp_heap_stats s;
    mp_heap_stats(h, &s);
    return apart && s.large_in_use == live && s.blocks_in_use == live && s.bytes_in_use == bytes &&
           s.allocs - base->allocs == allocs && s.frees - base->frees == frees &&
           s.failed_allocs == base->failed_allocs && s.large_cached <= 32;
}

/* Random large allocs (some aligned, some calloc), reallocs that grow and shrink, frees and trims
 * against a model of the live blocks: after each step their contents, alignment, usable size
 * (asked again: the same) and the heap's statistics; after each trim, bytes_reserved is exactly
 * the live blocks' mappings; at the end every byte is back. */
/* A model step's check: false, with the line that failed printed once. */
static bool lm_ok(bool ok, int line)
{
    static int said;
    if (!ok && said++ == 0)
        printf("  large model: the check at line %d failed\n", line);
    return ok;
}

static void large_model(mp_heap *h, const char *kind, uint64_t seed, int ops)
{
    enum { SLOTS = 8 };
    lblock b[SLOTS] = {0};
    struct mp_heap_stats base;
    mp_heap_stats(h, &base);
    uint64_t rng = seed, allocs = 0, frees = 0;
    bool zero = strcmp(kind, "zero") == 0, ok = true;
    int op = 0;
    for (; op < ops && ok; op++) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        uint64_t r = rng >> 16;
        lblock *x = &b[r % SLOTS];
        size_t size =
            MP_HEAP_MAX_CLASS + 1 + (size_t)((r >> 8) % ((r >> 30) % 4 == 0 ? 5 * MiB : MiB));
        if ((r >> 40) % 4 == 0)
            size = (size_t)1 << (18 + (r >> 44) % 5); /* 256 KiB .. 4 MiB exactly: chunk edges */
        size += size == MP_HEAP_MAX_CLASS;
        unsigned what = (unsigned)((r >> 50) % 10);
        if (x->p != NULL && what < 3) { /* realloc: grow or shrink */
            ok &= lm_ok(lmodel_marks(x->p, x->size, x->size, x->seed, false), __LINE__);
            unsigned char *q = mp_heap_realloc(h, x->p, size);
            if (!(ok &= lm_ok(q != NULL, __LINE__)))
                break;
            size_t kept = size < x->size ? size : x->size;
            ok &= lm_ok(lmodel_marks(q, x->size, kept, x->seed, false), __LINE__);
            allocs += q != x->p;
            frees += q != x->p;
            *x = (lblock){q, size, mp_heap_usable_size(h, q), 64, rng};
            lmodel_marks(q, size, size, rng, true);
        } else if (x->p != NULL) {
            ok &= lm_ok(lmodel_marks(x->p, x->size, x->size, x->seed, false), __LINE__);
            mp_heap_free(h, x->p);
            frees++;
            *x = (lblock){0};
        } else {
            size_t align = what < 6 ? 64 : (size_t)1 << (6 + (r >> 54) % 15); /* to 1 MiB */
            unsigned char *q =
                what == 9 ? mp_heap_calloc(h, 1, size) : mp_heap_aligned_alloc(h, align, size);
            if (!(ok &= lm_ok(q != NULL, __LINE__)))
                break;
            allocs++;
            ok &= lm_ok(((uintptr_t)q & (align - 1)) == 0, __LINE__);
            ok &= lm_ok((what != 9 && !zero) || lmodel_zero(q, size), __LINE__);
            *x = (lblock){q, size, mp_heap_usable_size(h, q), align, rng};
            ok &= lm_ok(x->usable >= size, __LINE__);
            lmodel_marks(q, size, size, rng, true);
        }
        for (size_t i = 0; i < SLOTS; i++)
            ok &= lm_ok(b[i].p == NULL || mp_heap_usable_size(h, b[i].p) == b[i].usable, __LINE__);
        ok &= lm_ok(lmodel_consistent(h, b, SLOTS, &base, allocs, frees), __LINE__);
        if ((r >> 58) == 0) { /* 1 step in 64 */
            mp_heap_trim(h);
            struct mp_heap_stats s;
            mp_heap_stats(h, &s);
            uint64_t mapped = 0;
            for (size_t i = 0; i < SLOTS; i++)
                mapped += b[i].p != NULL ? mapping_of(h, b[i].p) : 0;
            ok &= lm_ok(s.large_cached == 0 && s.bytes_reserved == base.bytes_reserved + mapped,
                        __LINE__);
        }
    }
    if (!ok)
        printf("  large model (%s): wrong after step %d (seed %" PRIu64 ")\n", kind, op, seed);
    char what[80];
    snprintf(what, sizeof what, "large model (%s): every step as the model says", kind);
    CHECK(what, ok);
    for (size_t i = 0; i < SLOTS; i++)
        mp_heap_free(h, b[i].p);
    mp_heap_trim(h);
    snprintf(what, sizeof what, "large model (%s): all freed and trimmed, every byte back", kind);
    CHECK(what, reserved(h) == base.bytes_reserved);
}

static void test_large_model(void)
{
    int ops = (int)(200 * test_scale()) + 20;
    static const struct {
        const char *kind;
        unsigned flags;
    } kinds[] = {{"plain", 0}, {"zero", MP_ZERO}, {"checked", MP_CHECKED}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        mp_heap *h = mp_heap_create(&(mp_heap_opts){.flags = kinds[k].flags, .name = "lmodel"});
        if (CHECK("large model: heap", h != NULL))
            large_model(h, kinds[k].kind, 1 + k, ops);
        mp_heap_destroy(h);
    }
    counting_source *cs = src_new();
    mp_source source = counting_source_of(cs);
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.source = &source, .name = "lmodel"});
    if (CHECK("large model: heap over a source", h != NULL && cs != NULL))
        large_model(h, "source", 7, ops);
    mp_heap_destroy(h);
    CHECK("large model (source): the source's contract kept", cs != NULL && src_kept_contract(cs));
    free(cs);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    mp_set_error_handler(record_error, NULL);
    const heap_part parts[] = {{"reset and destroy", test_reset_destroy},
                               {"capacity", test_capacity},
                               {"buffer exhaustion", test_buffer_exhaustion},
                               {"failing source", test_failing_source},
                               {"pages of fresh blocks", test_populate},
                               {"pages shared by neighbours' ends", test_shared_ends},
                               {"large blocks reused at any size", test_large_any_size},
                               {"a cached tail at a chunk's start", test_large_tail_owner},
                               {"large blocks reused in place", test_large_in_place},
                               {"large blocks churned", test_large_churn},
                               {"large blocks over a caller's source", test_large_source_whole},
                               {"large blocks against a model", test_large_model},
                               {"large blocks gathered where a move fails", test_large_move_fails}};
    run_parts(parts, sizeof parts / sizeof parts[0]);
    return TEST_DONE();
}

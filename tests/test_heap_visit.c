/*
 * test_heap_visit.c: mp_heap_visit() (issue 21, part 2): EINVAL, an empty heap, class and large
 * blocks each with its usable size, stopping early, a callback that frees its block (class and
 * large), after a reset; then a model run per kind of heap (plain, MP_ZERO, checked, secure,
 * thread-safe, in a buffer): random sizes (zero, small, large, aligned), visited set == live set.
 * Args: [SEED [OPS]]; OPS scales with MP_TEST_SCALE.
 */
#define _DEFAULT_SOURCE /* posix_memalign, in counting_source.h */
#include "test_heap.h"
#include "visit.h"

static uint64_t rng_state;

static uint64_t rng(void)
{
    uint64_t x = (rng_state += 0x9E3779B97F4A7C15u);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
    return x ^ (x >> 31);
}

static size_t usable(void *ctx, const void *block)
{
    return mp_heap_usable_size(ctx, block);
}

/* Visits heap into a fresh log; true if it returned 0 and saw exactly live[0..n), each with its
 * usable size. */
static bool heap_visit_is(mp_heap *heap, void *const *live, size_t n)
{
    visit_log v;
    if (!visit_log_init(&v, n + 16))
        return false;
    bool ok = mp_heap_visit(heap, visit_record, &v) == 0 &&
              visit_log_equals(&v, live, n, 0, usable, heap);
    visit_log_done(&v);
    return ok;
}

static bool count_call(void *block, size_t size, void *ctx)
{
    (void)block, (void)size;
    (*(int *)ctx)++;
    return true;
}

static void test_contract(unsigned flags, const char *what)
{
    char msg[160];
    mp_heap *heap = mp_heap_create(&(mp_heap_opts){.flags = flags, .name = what});
    int calls = 0;
    snprintf(msg, sizeof msg, "heap visit (%s): NULL heap or fn gives EINVAL", what);
    CHECK(msg, mp_heap_visit(NULL, count_call, &calls) == EINVAL &&
                   mp_heap_visit(heap, NULL, &calls) == EINVAL && calls == 0);
    snprintf(msg, sizeof msg, "heap visit (%s): a new heap has no live block", what);
    CHECK(msg, mp_heap_visit(heap, count_call, &calls) == 0 && calls == 0);

    static const size_t sizes[] = {0, 1, 8, 17, 100, 4000, 70000, 300000, 3 * MiB};
    enum { NS = sizeof sizes / sizeof *sizes };
    void *ps[2 * NS];
    for (size_t i = 0; i < NS; i++) {
        ps[i] = mp_heap_alloc(heap, sizes[i]);
        ps[NS + i] = mp_heap_alloc(heap, sizes[i]);
    }
    snprintf(msg, sizeof msg, "heap visit (%s): class and large blocks, usable sizes", what);
    CHECK(msg, heap_visit_is(heap, ps, 2 * NS));
    for (size_t i = 0; i < NS; i++)
        mp_heap_free(heap, ps[NS + i]);
    snprintf(msg, sizeof msg, "heap visit (%s): freed blocks (class, large) are not visited", what);
    CHECK(msg, heap_visit_is(heap, ps, NS));

    visit_log v;
    visit_log_init(&v, 2 * NS);
    v.stop_after = NS - 1; /* in the large blocks, after the classes */
    snprintf(msg, sizeof msg, "heap visit (%s): fn returning false stops it", what);
    CHECK(msg, mp_heap_visit(heap, visit_record, &v) == 0 && v.n == NS - 1);
    v.n = 0;
    v.stop_after = 2;
    CHECK(msg, mp_heap_visit(heap, visit_record, &v) == 0 && v.n == 2);
    v.n = 0;
    v.stop_after = 0;
    v.free_heap = heap;
    snprintf(msg, sizeof msg, "heap visit (%s): fn may free the block it is given", what);
    CHECK(msg, mp_heap_visit(heap, visit_record, &v) == 0 && v.n == NS &&
                   mp_heap_visit(heap, count_call, &calls) == 0 && calls == 0);
    struct mp_heap_stats s;
    CHECK(msg, mp_heap_stats(heap, &s) == 0 && s.blocks_in_use == 0);
    visit_log_done(&v);

    for (size_t i = 0; i < NS; i++)
        ps[i] = mp_heap_alloc(heap, sizes[i]);
    mp_heap_reset(heap);
    snprintf(msg, sizeof msg, "heap visit (%s): nothing live after a reset", what);
    CHECK(msg, mp_heap_visit(heap, count_call, &calls) == 0 && calls == 0);
    mp_heap_destroy(heap);
}

typedef struct heap_kind {
    const char *name;
    unsigned flags;
    size_t buffer;
} heap_kind;

static const heap_kind heap_kinds[] = {
    {"plain", 0, 0},
    {"zero", MP_ZERO, 0},
    {"checked", MP_CHECKED, 0},
    {"secure", MP_SECURE, 0},
    {"thread-safe", MP_THREAD_SAFE, 0},
    {"buffer", 0, 64 * MiB},
};

static size_t random_size(void)
{
    uint64_t r = rng() % 100;
    if (r < 3)
        return 0;
    if (r < 70)
        return (size_t)(rng() % 256);
    if (r < 95)
        return (size_t)(rng() % 8192);
    return (size_t)(rng() % (600 * KiB));
}

static void heap_model(const heap_kind *k, uint64_t ops)
{
    char msg[160];
    void *buf = k->buffer != 0 ? aligned_alloc(2 * MiB, k->buffer) : NULL;
    mp_heap *heap = mp_heap_create(&(mp_heap_opts){
        .flags = k->flags, .buffer = buf, .buffer_size = k->buffer, .name = k->name});
    enum { MAXLIVE = 3000 };
    void **live = malloc(MAXLIVE * sizeof *live);
    size_t n = 0;
    tally t = {0};
    snprintf(msg, sizeof msg, "heap visit model (%s): made", k->name);
    if (!CHECK(msg, heap != NULL && live != NULL))
        return;
    for (uint64_t op = 0; op < ops; op++) {
        uint64_t r = rng() % 1000;
        if (r == 0 && k->buffer == 0) {
            mp_heap_trim(heap);
        } else if (n < MAXLIVE && (n == 0 || r < 500 + (op / 2048 % 2) * 150)) {
            void *p = r % 7 == 0
                          ? mp_heap_aligned_alloc(heap, (size_t)1 << (rng() % 13), random_size())
                          : mp_heap_alloc(heap, random_size());
            if (p != NULL)
                live[n++] = p;
        } else if (n != 0) {
            size_t i = (size_t)(rng() % n);
            mp_heap_free(heap, live[i]);
            live[i] = live[--n];
        }
        if (op % 61 == 0 || op + 1 == ops)
            tally_expect(&t, heap_visit_is(heap, live, n), "%s: op %llu, %zu live", k->name,
                         (unsigned long long)op, n);
    }
    snprintf(msg, sizeof msg, "heap visit model (%s): visited == live at every check", k->name);
    CHECK(msg, t.bad == 0);
    for (size_t i = 0; i < n; i++)
        mp_heap_free(heap, live[i]);
    mp_heap_destroy(heap);
    free(live);
    free(buf);
}

int main(int argc, char **argv)
{
    rng_state = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
    const char *sc = getenv("MP_TEST_SCALE");
    double f = sc ? strtod(sc, NULL) : 1.0;
    uint64_t ops = argc > 2 ? strtoull(argv[2], NULL, 0) : (uint64_t)(50000 * (f > 0 ? f : 1.0));
    static const unsigned flags[] = {0, MP_ZERO, MP_CHECKED, MP_SECURE, MP_THREAD_SAFE};
    static const char *const names[] = {"plain", "zero", "checked", "secure", "thread-safe"};
    for (int i = 0; i < 5; i++)
        test_contract(flags[i], names[i]);
    for (size_t i = 0; i < sizeof heap_kinds / sizeof *heap_kinds; i++)
        heap_model(&heap_kinds[i], ops < 500 ? 500 : ops);
    return TEST_DONE();
}

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
    visit_ctxless_calls = 0;
    snprintf(msg, sizeof msg, "heap visit (%s): ctx may be NULL: every live block visited", what);
    CHECK(msg, mp_heap_visit(heap, visit_count_ctxless, NULL) == 0 && visit_ctxless_calls == NS);

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
    uint64_t r = visit_rng() % 100;
    if (r < 3)
        return 0;
    if (r < 70)
        return (size_t)(visit_rng() % 256);
    if (r < 95)
        return (size_t)(visit_rng() % 8192);
    return (size_t)(visit_rng() % (600 * KiB));
}

static void *heap_alloc_of(void *obj)
{
    return visit_rng() % 7 == 0
               ? mp_heap_aligned_alloc(obj, (size_t)1 << (visit_rng() % 13), random_size())
               : mp_heap_alloc(obj, random_size());
}

static void heap_free_of(void *obj, void *p)
{
    mp_heap_free(obj, p);
}

static bool heap_visit_of(void *obj, void *const *live, size_t n)
{
    return heap_visit_is(obj, live, n);
}

static void heap_trim_of(void *obj)
{
    mp_heap_trim(obj);
}

static void heap_model(const heap_kind *k, uint64_t ops)
{
    char msg[160];
    void *buf = k->buffer != 0 ? aligned_alloc(2 * MiB, k->buffer) : NULL;
    mp_heap *heap = mp_heap_create(&(mp_heap_opts){
        .flags = k->flags, .buffer = buf, .buffer_size = k->buffer, .name = k->name});
    snprintf(msg, sizeof msg, "heap visit model (%s): made", k->name);
    if (!CHECK(msg, heap != NULL))
        return;
    visit_model m = {k->name,
                     heap,
                     heap_alloc_of,
                     heap_free_of,
                     heap_visit_of,
                     NULL,
                     k->buffer == 0 ? heap_trim_of : NULL,
                     3000,
                     61};
    snprintf(msg, sizeof msg, "heap visit model (%s): visited == live at every check", k->name);
    CHECK(msg, visit_model_run(&m, ops));
    mp_heap_destroy(heap);
    free(buf);
}

int main(int argc, char **argv)
{
    visit_rng_state = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
    uint64_t ops = argc > 2 ? strtoull(argv[2], NULL, 0) : (uint64_t)(50000 * test_scale());
    static const unsigned flags[] = {0, MP_ZERO, MP_CHECKED, MP_SECURE, MP_THREAD_SAFE};
    static const char *const names[] = {"plain", "zero", "checked", "secure", "thread-safe"};
    for (int i = 0; i < 5; i++)
        test_contract(flags[i], names[i]);
    for (size_t i = 0; i < sizeof heap_kinds / sizeof *heap_kinds; i++)
        heap_model(&heap_kinds[i], ops < 500 ? 500 : ops);
    return TEST_DONE();
}

/*
 * test_visit.c: mp_pool_visit() and MP_POOL_BUFFER_SIZE (issue 21, parts 2 and 4).
 *   - the contract: EINVAL for NULL arguments, an empty pool, stopping early, after reset and trim,
 *     a callback that frees its block, a thread-safe pool whose caches (this thread's and a
 *     parked thread's) hold blocks that are not visited, the scratch mapped for a large pool and
 *     ENOMEM when the system refuses it (in a child under an address-space limit), a damaged list
 *     in a plain pool reported and not followed;
 *   - a model test: random allocs and frees (and resets, trims) in every kind of pool, visited set
 *     == the model's live set after each step of a batch;
 *   - MP_POOL_BUFFER_SIZE: a compile-time use, then for every block size 1..1024, alignments and
 *     counts, and the flags: a buffer of exactly that many bytes holds count blocks, one byte less
 *     and a cache line less hold fewer.
 * Args: [SEED [OPS]]; OPS and the sizes stepped through scale with MP_TEST_SCALE.
 */
#define _DEFAULT_SOURCE /* posix_memalign, in counting_source.h */
#include "child.h"
#include "test_pool.h"
#include "visit.h"

#include <assert.h>
#include <pthread.h>
#include <sys/resource.h>

/* Visits pool into a fresh log; true if it returned 0 and saw exactly live[0..n). */
static bool visit_is(mp_pool *pool, void *const *live, size_t n)
{
    visit_log v;
    if (!visit_log_init(&v, n + 16))
        return false;
    bool ok = mp_pool_visit(pool, visit_record, &v) == 0 &&
              visit_log_equals(&v, live, n, mp_pool_block_size(pool), NULL, NULL);
    visit_log_done(&v);
    return ok;
}

static bool never_called(void *block, size_t size, void *ctx)
{
    (void)block, (void)size;
    (*(int *)ctx)++;
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * The contract
 * ---------------------------------------------------------------------------------------------- */

static void test_errors(void)
{
    mp_pool *pool = make(32, 0, 0, 0);
    int calls = 0;
    void *p = mp_pool_alloc(pool);
    CHECK("visit: NULL pool gives EINVAL", mp_pool_visit(NULL, never_called, &calls) == EINVAL);
    CHECK("visit: NULL fn gives EINVAL", mp_pool_visit(pool, NULL, &calls) == EINVAL);
    CHECK("visit: fn not called on EINVAL", calls == 0);
    visit_ctxless_calls = 0;
    CHECK("visit: ctx may be NULL: the live block visited",
          mp_pool_visit(pool, visit_count_ctxless, NULL) == 0 && visit_ctxless_calls == 1);
    mp_pool_free(pool, p);
    mp_pool_destroy(pool);
}

static void test_empty_stop_reset_trim(unsigned flags, const char *what)
{
    char msg[160];
    mp_pool *pool = make(40, 0, 0, flags);
    int calls = 0;
    snprintf(msg, sizeof msg, "visit (%s): a new pool has no live block", what);
    CHECK(msg, mp_pool_visit(pool, never_called, &calls) == 0 && calls == 0);
    enum { N = 300 };
    void *ps[N];
    for (int i = 0; i < N; i++)
        ps[i] = mp_pool_alloc(pool);
    snprintf(msg, sizeof msg, "visit (%s): every live block, once, with the block size", what);
    CHECK(msg, visit_is(pool, ps, N));
    for (int i = 0; i < N; i += 2)
        mp_pool_free(pool, ps[i]);
    void *odd[N / 2];
    for (int i = 1; i < N; i += 2)
        odd[i / 2] = ps[i];
    snprintf(msg, sizeof msg, "visit (%s): freed blocks are not visited", what);
    CHECK(msg, visit_is(pool, odd, N / 2));

    visit_log v;
    visit_log_init(&v, N);
    v.stop_after = 3;
    snprintf(msg, sizeof msg, "visit (%s): fn returning false stops it; 0 returned", what);
    CHECK(msg, mp_pool_visit(pool, visit_record, &v) == 0 && v.n == 3);
    visit_log_done(&v);

    mp_pool_reset(pool);
    snprintf(msg, sizeof msg, "visit (%s): nothing live after a reset", what);
    CHECK(msg, mp_pool_visit(pool, never_called, &calls) == 0 && calls == 0);
    for (int i = 0; i < 5; i++)
        ps[i] = mp_pool_alloc(pool);
    snprintf(msg, sizeof msg, "visit (%s): after a reset, the blocks handed out since", what);
    CHECK(msg, visit_is(pool, ps, 5));
    for (int i = 5; i < N; i++)
        ps[i] = mp_pool_alloc(pool);
    for (int i = 0; i < N; i++)
        if (i != 7)
            mp_pool_free(pool, ps[i]);
    mp_pool_trim(pool);
    snprintf(msg, sizeof msg, "visit (%s): after a trim, the block still live", what);
    CHECK(msg, visit_is(pool, &ps[7], 1));
    mp_pool_free(pool, ps[7]);
    mp_pool_trim(pool);
    snprintf(msg, sizeof msg, "visit (%s): a trimmed pool has no live block", what);
    CHECK(msg, mp_pool_visit(pool, never_called, &calls) == 0 && calls == 0);
    mp_pool_destroy(pool);
}

/* The callback frees each block it is given: every block visited once, none left, the pool valid.
 * The example: close every connection older than a deadline. */
static void test_free_in_callback(unsigned flags, const char *what)
{
    char msg[160];
    mp_pool *pool = make(24, 0, 0, flags);
    enum { N = 5000 }; /* more than the stack's scratch: the mapped one */
    static void *ps[N];
    for (int i = 0; i < N; i++)
        ps[i] = mp_pool_alloc(pool);
    visit_log v;
    visit_log_init(&v, N);
    v.free_pool = pool;
    snprintf(msg, sizeof msg, "visit (%s): fn may free the block it is given", what);
    CHECK(msg, mp_pool_visit(pool, visit_record, &v) == 0 &&
                   visit_log_equals(&v, ps, N, 24, NULL, NULL));
    mp_stats s = stats_of(pool);
    snprintf(msg, sizeof msg, "visit (%s): after freeing in fn, nothing live, pool valid", what);
    CHECK(msg, s.blocks_in_use == 0 && mp_pool_check(pool));
    visit_log_done(&v);
    mp_pool_destroy(pool);
}

/* A thread that allocates and frees in a thread-safe pool, so its cache holds blocks, then waits
 * (alive, its cache kept) until told to go. */
typedef struct parked {
    mp_pool *pool;
    void *live[64];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stage; /* 1: blocks in its cache; 2: may exit */
} parked;

static void *parked_run(void *arg)
{
    parked *t = arg;
    void *tmp[64];
    for (int i = 0; i < 64; i++)
        t->live[i] = mp_pool_alloc(t->pool);
    for (int i = 0; i < 64; i++)
        tmp[i] = mp_pool_alloc(t->pool);
    for (int i = 0; i < 64; i++)
        mp_pool_free(t->pool, tmp[i]); /* into this thread's cache */
    pthread_mutex_lock(&t->mu);
    t->stage = 1;
    pthread_cond_broadcast(&t->cv);
    while (t->stage != 2)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void test_thread_caches(void)
{
    mp_pool *pool = make(48, 0, 0, MP_THREAD_SAFE);
    parked t = {.pool = pool, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    pthread_t th;
    if (!CHECK("visit (thread-safe): a thread", pthread_create(&th, NULL, parked_run, &t) == 0))
        return;
    pthread_mutex_lock(&t.mu);
    while (t.stage != 1)
        pthread_cond_wait(&t.cv, &t.mu);
    pthread_mutex_unlock(&t.mu);
    void *mine[100 + 64], *tmp[50];
    for (int i = 0; i < 100; i++)
        mine[i] = mp_pool_alloc(pool);
    for (int i = 0; i < 50; i++)
        tmp[i] = mp_pool_alloc(pool);
    for (int i = 0; i < 50; i++)
        mp_pool_free(pool, tmp[i]); /* into this thread's cache */
    memcpy(mine + 100, t.live, sizeof t.live);
    mp_stats s = stats_of(pool);
    CHECK("visit (thread-safe): the caches hold blocks", s.blocks_in_use == 164);
    CHECK("visit (thread-safe): live blocks of both threads, none of either cache",
          visit_is(pool, mine, 164));
    pthread_mutex_lock(&t.mu);
    t.stage = 2;
    pthread_cond_broadcast(&t.cv);
    pthread_mutex_unlock(&t.mu);
    pthread_join(th, NULL);
    CHECK("visit (thread-safe): after the thread exits, the same", visit_is(pool, mine, 164));
    mp_pool_destroy(pool);
}

/* In a child: visits a pool under an address-space limit that leaves no room for its scratch. */
static void enomem_child(void *arg)
{
    (void)arg;
    mp_pool *pool = make(8, 0, 0, 0);
    int n = 0;
    while (n < 200000 && mp_pool_alloc(pool) != NULL) /* 25 KB of scratch */
        n++;
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    bool statm = f != NULL && fscanf(f, "%lu", &pages) == 1;
    if (f != NULL)
        fclose(f);
    struct rlimit r = {pages * page_size() + 4096, pages * page_size() + 4096};
    if (!CHECK("visit: ENOMEM setup (blocks, statm, limit)",
               n == 200000 && statm && setrlimit(RLIMIT_AS, &r) == 0))
        return;
    int calls = 0;
    int rc = mp_pool_visit(pool, never_called, &calls);
    CHECK("visit: ENOMEM, fn never called, when the scratch cannot be mapped",
          rc == ENOMEM && calls == 0);
}

/* ENOMEM: a pool whose scratch must be mapped, visited under an address-space limit that leaves
 * no room for it (a child process; not under the sanitizers or Valgrind, which map as they go). */
static void test_enomem(void)
{
    /* qemu-user (the cross stage sets MP_TEST_EMULATED) maps for itself under the same limit */
    if (TEST_ASAN || TEST_TSAN || TEST_ON_VALGRIND() || getenv("MP_TEST_EMULATED") != NULL)
        return;
    run_isolated("visit: ENOMEM in a child", enomem_child, NULL);
}

/* A plain pool whose free list the program damaged: reported, nothing visited, nothing followed. */
static void test_damaged_list(void)
{
    if (!free_blocks_touchable())
        return;
    seen e = {0};
    mp_set_error_handler(record_error, &e);
    mp_pool *pool = make(32, 0, 0, 0);
    void *live = mp_pool_alloc(pool), *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool);
    mp_pool_free(pool, a);
    mp_pool_free(pool, b);
    static char elsewhere[64];
    void *bad = elsewhere;
    memcpy(b, &bad, sizeof bad);
    int calls = 0;
    CHECK("visit: a damaged plain list is reported, nothing visited",
          mp_pool_visit(pool, never_called, &calls) == 0 && calls == 0 && e.n == 1 &&
              e.last.kind == MP_ERR_CORRUPT_FREE_LIST);
    mp_set_error_handler(NULL, NULL);
    (void)live;
    mp_pool_destroy(pool);
}

/* ------------------------------------------------------------------------------------------------
 * The model test: the visited set is the live set
 * ---------------------------------------------------------------------------------------------- */

typedef struct kind {
    const char *name;
    size_t block_size, align;
    unsigned flags;
    size_t buffer; /* bytes of a caller's buffer, 0 for none */
} kind;

static const kind kinds[] = {
    {"plain", 24, 0, 0, 0},
    {"zero", 100, 0, MP_ZERO, 0},
    {"checked", 40, 0, MP_CHECKED, 0},
    {"secure", 64, 64, MP_SECURE, 0},
    {"thread-safe", 16, 0, MP_THREAD_SAFE, 0},
    {"thread-safe checked", 32, 0, MP_THREAD_SAFE | MP_CHECKED, 0},
    {"buffer", 32, 0, 0, 1 << 18},
    {"buffer secure", 8, 0, MP_SECURE, 1 << 16},
    {"buffer checked", 200, 0, MP_CHECKED, 1 << 20},
};

static void *pool_alloc_of(void *obj)
{
    return mp_pool_alloc(obj);
}

static void pool_free_of(void *obj, void *p)
{
    mp_pool_free(obj, p);
}

static bool pool_visit_is(void *obj, void *const *live, size_t n)
{
    return visit_is(obj, live, n);
}

static void pool_reset_of(void *obj)
{
    mp_pool_reset(obj);
}

static void pool_trim_of(void *obj)
{
    mp_pool_trim(obj);
}

static void model_run(const kind *k, uint64_t ops)
{
    char msg[160];
    void *buf = k->buffer != 0 ? aligned_alloc(4096, k->buffer) : NULL;
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = k->block_size,
                                                   .align = k->align,
                                                   .flags = k->flags,
                                                   .buffer = buf,
                                                   .buffer_size = k->buffer,
                                                   .name = k->name});
    snprintf(msg, sizeof msg, "visit model (%s): made", k->name);
    if (!CHECK(msg, pool != NULL))
        return;
    visit_model m = {k->name,      pool,          pool_alloc_of,
                     pool_free_of, pool_visit_is, pool_reset_of,
                     pool_trim_of, 6000,          97};
    snprintf(msg, sizeof msg, "visit model (%s): visited == live at every check", k->name);
    CHECK(msg, visit_model_run(&m, ops));
    mp_pool_destroy(pool);
    free(buf);
}

/* ------------------------------------------------------------------------------------------------
 * MP_POOL_BUFFER_SIZE
 * ---------------------------------------------------------------------------------------------- */

static _Alignas(MP_POOL_BUFFER_ALIGN(24,
                                     0)) unsigned char static_buf[MP_POOL_BUFFER_SIZE(24, 0, 100)];
static_assert(sizeof static_buf == MP_POOL_BUFFER_SIZE(24, 0, 100), "a constant expression");

/* How many blocks a pool made in buf[0..size) holds (0 when create refuses), up to want + 1. */
static size_t holds(unsigned char *buf, size_t size, size_t bs, size_t align, unsigned flags,
                    size_t want)
{
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){
        .block_size = bs, .align = align, .flags = flags, .buffer = buf, .buffer_size = size});
    void *got[128];
    size_t n = 0;
    while (pool != NULL && n <= want && n < 128 && (got[n] = mp_pool_alloc(pool)) != NULL)
        n++;
    for (size_t i = 0; i < n; i++)
        mp_pool_free(pool, got[i]); /* a checked pool reports leaks */
    mp_pool_destroy(pool);
    return n;
}

static void test_buffer_size(void)
{
    size_t n = holds(static_buf, sizeof static_buf, 24, 0, 0, 100);
    CHECK("buffer size: the static buffer holds its 100 blocks, exactly", n == 100);

    static const size_t aligns[] = {0, 8, 16, 64, 256, 4096};
    static const size_t counts[] = {1, 2, 3, 7, 100};
    static const unsigned flagset[] = {0,          MP_ZERO,    MP_SECURE,
                                       MP_CHECKED, MP_HANDLES, MP_HANDLES | MP_SECURE | MP_ZERO};
    size_t cap = 2 * MiB;
    unsigned char *buf = aligned_alloc(4096, cap);
    size_t step = test_scale() >= 1 ? 1 : (size_t)(1 / test_scale());
    tally fit = {0}, tight = {0}, line = {0}, al = {0};
    for (size_t bs = 1; bs <= 1024; bs += (bs < 64 ? 1 : step)) {
        for (size_t ai = 0; ai < sizeof aligns / sizeof *aligns; ai++) {
            size_t a = aligns[ai];
            for (size_t fi = 0; fi < sizeof flagset / sizeof *flagset; fi++) {
                unsigned f = flagset[fi];
                for (size_t ci = 0; ci < sizeof counts / sizeof *counts; ci++) {
                    size_t c = counts[ci], size = MP_POOL_BUFFER_SIZE_FLAGS(bs, a, c, f);
                    if (size > cap)
                        continue;
                    tally_expect(&al, MP_POOL_BUFFER_ALIGN(bs, a) <= 4096, "align %zu", a);
                    size_t got = holds(buf, size, bs, a, f, c);
                    tally_expect(&fit, got >= c, "bs %zu align %zu flags %u count %zu: %zu fit", bs,
                                 a, f, c, got);
                    got = holds(buf, size - 1, bs, a, f, c);
                    tally_expect(&tight, got < c,
                                 "bs %zu align %zu flags %u count %zu: %zu fit 1 less", bs, a, f, c,
                                 got);
                    got = size > 64 ? holds(buf, size - 64, bs, a, f, c) : 0;
                    tally_expect(&line, got < c,
                                 "bs %zu align %zu flags %u count %zu: %zu fit 64 less", bs, a, f,
                                 c, got);
                }
            }
        }
    }
    CHECK("buffer size: the buffer alignment is a valid _Alignas", al.bad == 0);
    CHECK("buffer size: MP_POOL_BUFFER_SIZE bytes hold count blocks", fit.bad == 0);
    CHECK("buffer size: one byte less holds fewer (exact)", tight.bad == 0);
    CHECK("buffer size: a cache line less holds fewer", line.bad == 0);
    free(buf);
}

int main(int argc, char **argv)
{
    visit_rng_state = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
    uint64_t ops = argc > 2 ? strtoull(argv[2], NULL, 0) : (uint64_t)(200000 * test_scale());
    test_errors();
    static const unsigned flags[] = {0, MP_ZERO, MP_CHECKED, MP_SECURE, MP_THREAD_SAFE};
    static const char *const names[] = {"plain", "zero", "checked", "secure", "thread-safe"};
    for (int i = 0; i < 5; i++) {
        test_empty_stop_reset_trim(flags[i], names[i]);
        test_free_in_callback(flags[i], names[i]);
    }
    test_thread_caches();
    test_enomem();
    test_damaged_list();
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        model_run(&kinds[i], ops < 1000 ? 1000 : ops);
    test_buffer_size();
    return TEST_DONE();
}

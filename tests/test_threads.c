/*
 * test_threads.c: the life of thread-safe pools (MP_THREAD_SAFE) and their thread caches, in
 * scenarios small enough to count exactly; the load tests are in test_threads_stress.c and fork()
 * in test_threads_fork.c.
 *
 * Usage: test_threads [SEED]   (SEED, default 1, drives the small random mixes; printed)
 *
 * Threads are ordered with joins and barriers only, never sleeps, so every count below is exact:
 *  1. A thread that exits gives its cached blocks back: after it allocated and freed N blocks
 *     (N below and above the cache size, and exiting through pthread_exit), blocks_in_use == 0,
 *     allocs == frees == N, and another thread that allocates as many blocks as were ever carved
 *     gets back every block the exited thread freed (the pool carving less than one refill batch
 *     more). A free-only thread (it frees blocks another
 *     thread allocated, then exits) loses nothing: in_use + free == peak, allocs == frees. A live
 *     thread's cached blocks count as free. Two threads that each free thousands of 8-byte
 *     blocks through caches of 2 (a magazine a block) lose none and get them back. A thread
 *     without a cache (allocating from a key destructor after its exit) while ~500 magazines are
 *     parked takes the newest one first (O(1)), gets back every parked block, stats exact.
 *  2. Trim and reset while another thread holds a cache: trim keeps every block a parked thread
 *     caches (the thread uses them again afterwards; the counting source frees what trim gives
 *     back, so ASan would see a use of it); after a reset, a parked thread's cache is not handed
 *     out twice (its blocks and the main thread's are all distinct). Trim gives back every chunk
 *     once an exited thread has freed all it allocated. A pool grown by a handover (one thread
 *     allocates a few chunks' worth, another frees them, four times, both alive): stats exact
 *     after each step, the peak within two caches of the live blocks, trim gives back everything.
 *  3. Destroy after use: 4 threads use a pool, free everything, and park; the main thread destroys
 *     the pool (every byte goes back to the source although the threads cache blocks of it) and
 *     creates another one (which may reuse the dead pool's cache slot); the threads use it,
 *     passing blocks to each other; its statistics are exact, before and after they exit. Also:
 *     threads that exit after their pool was destroyed; threads that create, use and destroy their
 *     own pools concurrently while sharing a long-lived one; 50 pools used by 8 threads (each pool
 *     by 4), 10 of them destroyed while the threads live, the threads exiting with 20 caches each;
 *     600 pools used by one thread (its table's entries span pages), twice; 32768 pools at once,
 *     the last of which finds every cache id taken and keeps no caches (a block it frees goes
 *     straight back, where another thread gets it), yet works with exact statistics, and ids
 *     freed by destroys serve a new pool with caches again.
 *  4. Statistics and mp_pool_check() read while threads allocate without ever freeing: every
 *     snapshot has frees == 0 and blocks_in_use == allocs, and check is true.
 *  5. Options: thread_cache 1, 2^20 and SIZE_MAX; thread_cache on a pool that is not thread-safe;
 *     MP_THREAD_SAFE with MP_CHECKED (a double free across threads, an invalid free, concurrent
 *     double frees, an overflow and a leak are each reported once, through the handler, from any
 *     thread), with MP_SECURE (a double free across threads caught), with MP_ZERO (every block
 *     zero when handed out, in every thread), with a capacity and a 4096 alignment; MP_THREAD_SAFE
 *     with a buffer gives EINVAL; capacity is not lost to another thread's cache; a thread's
 *     default cache holds at most 64 KiB of large blocks, and 1000 blocks of 64 bytes.
 * Runs in well under a second in a Release build.
 */
#define _POSIX_C_SOURCE 200809L

#include "threads.h"

#include <stdalign.h>

static uint64_t g_seed = 1;

/* ------------------------------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------------------------------- */

static counting_source g_cs; /* every pool here maps through it, unless it says otherwise */
static mp_source g_src;

static mp_pool *ts_pool(const char *name, size_t block_size, size_t thread_cache, unsigned flags)
{
    return mp_pool_create(&(mp_pool_opts){.block_size = block_size,
                                          .flags = MP_THREAD_SAFE | flags,
                                          .name = name,
                                          .source = &g_src,
                                          .thread_cache = thread_cache});
}

static bool source_all_back(void)
{
    return atomic_load(&g_cs.bytes_out) == 0 &&
           atomic_load(&g_cs.maps) == atomic_load(&g_cs.unmaps);
}

/* Allocates n stamped blocks into out[]; false (with a failure) if the pool runs out. */
static bool take_n(mp_pool *pool, size_t size, void **out, size_t n, uint32_t who)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = mp_pool_alloc(pool);
        if (out[i] == NULL) {
            tfail("%s: alloc %zu of %zu failed (errno %d)", mp_pool_name(pool), i, n, errno);
            while (i > 0)
                mp_pool_free(pool, out[--i]);
            return false;
        }
        block_fill(out[i], size, stamp_make(who, i + 1));
    }
    return true;
}

/* Verifies and frees n blocks. */
static void give_n(mp_pool *pool, size_t size, void **blocks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!block_verify(blocks[i], size, NULL))
            tfail("%s: block %p corrupted while live", mp_pool_name(pool), blocks[i]);
        mp_pool_free(pool, blocks[i]);
    }
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

/* True if the n pointers are all distinct (sorts them). */
static bool all_distinct(void **p, size_t n)
{
    qsort(p, n, sizeof *p, cmp_ptr);
    for (size_t i = 1; i < n; i++)
        if (p[i] == p[i - 1])
            return false;
    return true;
}

/* A job for one thread: allocate `alloc` blocks into `blocks` (when alloc > 0), then free `free`
 * of `blocks` (when free > 0), then exit, through pthread_exit when `via_exit`. */
typedef struct job {
    mp_pool *pool;
    size_t size;
    void **blocks;
    size_t alloc, free;
    uint32_t who;
    bool via_exit;
} job;

static void *job_thread(void *arg)
{
    job *j = arg;
    if (j->alloc > 0 && !take_n(j->pool, j->size, j->blocks, j->alloc, j->who))
        return NULL;
    if (j->free > 0)
        give_n(j->pool, j->size, j->blocks, j->free);
    if (j->via_exit)
        pthread_exit(NULL);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------
 * 1. Thread exit gives cached blocks back
 * ---------------------------------------------------------------------------------------------- */

/*
 * After the threads that used the pool exited (the main thread has no cache of it either), every
 * carved block is on the pool's list. Another thread allocates as many blocks as were ever carved:
 * it must get back every block in prior[] (the blocks the exited threads freed, some of them
 * into their caches), and the pool may carve fewer than one refill batch (`batch`: half a
 * cache, mempool.h) more, for its last refill. A third thread frees them all, then exits.
 */
static void check_all_reusable(mp_pool *pool, size_t size, size_t batch, void **prior,
                               size_t nprior, const char *what)
{
    mp_stats before = stats_of(pool);
    size_t n = (size_t)before.blocks_peak;
    void **blocks = malloc(sizeof(void *) * (n + nprior));
    if (blocks == NULL)
        return;
    job a = {.pool = pool, .size = size, .blocks = blocks, .alloc = n, .who = 99};
    job f = {.pool = pool, .size = size, .blocks = blocks, .free = n};
    thread_run(job_thread, &a);
    mp_stats mid = stats_of(pool);
    /* Every prior block is among the n handed out: sort both, then count the prior ones found. */
    void **sorted = malloc(sizeof(void *) * (n + nprior));
    size_t found = 0;
    if (sorted != NULL) {
        memcpy(sorted, blocks, sizeof(void *) * n);
        qsort(sorted, n, sizeof *sorted, cmp_ptr);
        for (size_t i = 0; i < nprior; i++)
            found += bsearch(&prior[i], sorted, n, sizeof *sorted, cmp_ptr) != NULL;
        free(sorted);
    }
    thread_run(job_thread, &f);
    mp_stats after = stats_of(pool);
    char msg[160];
    snprintf(msg, sizeof msg, "%s: another thread gets back all %zu blocks the exited ones freed",
             what, nprior);
    CHECK(msg, found == nprior);
    snprintf(msg, sizeof msg, "%s: allocating all %zu carved blocks carves less than a batch more",
             what, n);
    CHECK(msg, mid.blocks_peak < before.blocks_peak + (batch > 0 ? batch : 1) &&
                   mid.blocks_in_use == n && mid.failed_allocs == 0);
    snprintf(msg, sizeof msg, "%s: and after a third thread frees them, all free again", what);
    CHECK(msg, after.blocks_in_use == 0 && after.allocs == before.allocs + n &&
                   after.frees == after.allocs && after.blocks_free == after.blocks_peak);
    free(blocks);
}

static void test_exit_gives_back(size_t n, bool via_exit)
{
    char what[96];
    snprintf(what, sizeof what, "exit gives back (%zu blocks%s)", n,
             via_exit ? ", pthread_exit" : "");
    mp_pool *pool = ts_pool("exit", 64, 0, 0);
    void **blocks = malloc(sizeof(void *) * n);
    if (!CHECK("exit gives back: create", pool != NULL && blocks != NULL))
        return;
    job j = {
        .pool = pool, .size = 64, .blocks = blocks, .alloc = n, .free = n, .via_exit = via_exit};
    thread_run(job_thread, &j);
    mp_stats st = stats_of(pool);
    char msg[160];
    snprintf(msg, sizeof msg, "%s: blocks_in_use == 0, allocs == frees == N", what);
    CHECK(msg, st.blocks_in_use == 0 && st.allocs == n && st.frees == n);
    snprintf(msg, sizeof msg, "%s: every carved block is free", what);
    CHECK(msg, st.blocks_free == st.blocks_peak && st.blocks_peak >= n);
    check_all_reusable(pool, 64, 256, blocks, n, what); /* the default batch */
    CHECK("exit gives back: no thread failure", tfail_take() == 0);
    CHECK("exit gives back: mp_pool_check", mp_pool_check(pool));
    mp_pool_destroy(pool);
    free(blocks);
}

/* A thread parks on `bar` after its job, and exits after the second wait. */
typedef struct parked {
    job j;
    pthread_barrier_t *bar;
} parked;

static void *parked_thread(void *arg)
{
    parked *p = arg;
    job_thread(&p->j);
    pthread_barrier_wait(p->bar);
    pthread_barrier_wait(p->bar);
    return NULL;
}

static void test_free_only_thread(void)
{
    enum { N = 300 };
    mp_pool *pool = ts_pool("free-only", 40, 0, 0);
    void *blocks[N];
    if (!CHECK("free-only thread: create", pool != NULL))
        return;
    job a = {.pool = pool, .size = 40, .blocks = blocks, .alloc = N, .who = 1};
    thread_run(job_thread, &a); /* exits holding N blocks, and a cache */

    /* The freeing thread parks before exiting: its cached blocks count as free while it lives. */
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    parked f = {{.pool = pool, .size = 40, .blocks = blocks, .free = N}, &bar};
    pthread_t t;
    if (!CHECK("free-only thread: start", threads_start(&t, 1, parked_thread, &f, 0))) {
        mp_pool_destroy(pool);
        return;
    }
    pthread_barrier_wait(&bar);
    mp_stats st = stats_of(pool);
    CHECK("free-only thread, alive: blocks_in_use == 0, allocs == frees == N",
          st.blocks_in_use == 0 && st.allocs == N && st.frees == N);
    CHECK("free-only thread, alive: in_use + free == peak (its cache counts as free)",
          st.blocks_in_use + st.blocks_free == st.blocks_peak);
    pthread_barrier_wait(&bar);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&bar);
    st = stats_of(pool);
    CHECK("free-only thread, exited: nothing lost: in_use + free == peak, allocs == frees == N",
          st.blocks_in_use == 0 && st.blocks_free == st.blocks_peak && st.allocs == N &&
              st.frees == N);
    check_all_reusable(pool, 40, 256, blocks, N, "free-only thread");
    CHECK("free-only thread: no thread failure", tfail_take() == 0);
    CHECK("free-only thread: mp_pool_check", mp_pool_check(pool));
    mp_pool_destroy(pool);
}

/* Two threads each allocate N 8-byte blocks, free them and allocate them again, through caches
 * of 2 (a magazine of one block): thousands of magazines in the depot of a pool of one-word
 * blocks, whose array both threads grow at once. Nothing is lost or handed out twice, and the
 * second round reuses the first round's blocks. */
typedef struct one_word {
    mp_pool *pool;
    void **blocks;
    uint32_t who;
} one_word;

enum { OW_N = 3000 };

static void *one_word_thread(void *arg)
{
    one_word *w = arg;
    for (uint32_t round = 0; round < 2; round++)
        if (take_n(w->pool, 8, w->blocks, OW_N, w->who * 2 + round))
            give_n(w->pool, 8, w->blocks, OW_N);
    return take_n(w->pool, 8, w->blocks, OW_N, w->who * 2 + 9) ? w : NULL;
}

static void test_one_word_depot(void)
{
    mp_pool *pool = ts_pool("one-word", 8, 2, 0);
    void **blocks = calloc(2 * OW_N, sizeof *blocks);
    if (!CHECK("one-word depot: create", pool != NULL && blocks != NULL)) {
        mp_pool_destroy(pool);
        free(blocks);
        return;
    }
    one_word w[2] = {{pool, blocks, 1}, {pool, blocks + OW_N, 2}};
    pthread_t t[2];
    if (threads_start(t, 2, one_word_thread, w, sizeof w[0]))
        threads_join(t, 2);
    mp_stats st = stats_of(pool);
    CHECK("one-word depot: both threads hold their N blocks, as stats count",
          st.blocks_in_use == 2 * OW_N);
    CHECK("one-word depot: the later rounds reused the first round's blocks",
          st.blocks_in_use + st.blocks_free <= 2 * OW_N + 4);
    give_n(pool, 8, blocks, 2 * OW_N);
    CHECK("one-word depot: no block handed out twice", all_distinct(blocks, 2 * OW_N));
    CHECK("one-word depot: no thread failure", tfail_take() == 0);
    CHECK("one-word depot: mp_pool_check", mp_pool_check(pool));
    st = stats_of(pool);
    CHECK("one-word depot: all freed", st.blocks_in_use == 0);
    mp_pool_destroy(pool);
    free(blocks);
}

/*
 * A thread without a cache (here: one whose cache its exit retired, allocating from a key
 * destructor that runs after the library's) while the depot holds many magazines: the main thread
 * frees K blocks through a cache of 4, parking ~K/2 magazines of 2. Its allocs go to the pool
 * under the lock and take one magazine at a time, the newest: so its first block is one of the
 * last freed (a drain of the whole depot, O(parked blocks) under the lock, gave the oldest). It
 * gets back every parked block, and the statistics are exact midway and after.
 */
enum { CL_K = 1000 };
typedef struct cacheless {
    mp_pool *pool, *other;
    size_t size;
    void *blocks[CL_K];
    mp_stats mid;
    bool again;
} cacheless;
static pthread_key_t cacheless_key;

static void cacheless_dtor(void *arg)
{
    cacheless *c = arg;
    if (!c->again) { /* run once more: by then the library's exit hook has surely run */
        c->again = true;
        pthread_setspecific(cacheless_key, c);
        return;
    }
    if (!take_n(c->pool, c->size, c->blocks, CL_K / 2, 5))
        return;
    c->mid = stats_of(c->pool);
    take_n(c->pool, c->size, c->blocks + CL_K / 2, CL_K - CL_K / 2, 6);
}

static void *cacheless_thread(void *arg)
{
    cacheless *c = arg;
    mp_pool_free(c->other,
                 mp_pool_alloc(c->other)); /* a cache (of another pool): exit retires it */
    pthread_setspecific(cacheless_key, c);
    return NULL;
}

static void test_cacheless_thread(size_t size)
{
    char what[64], msg[160];
    snprintf(what, sizeof what, "cacheless thread (%zu-byte blocks)", size);
    mp_pool *pool = ts_pool("cacheless", size, 4, 0), *other = ts_pool("other", 64, 0, 0);
    void **freed = malloc(sizeof(void *) * CL_K);
    cacheless *c = calloc(1, sizeof *c);
    snprintf(msg, sizeof msg, "%s: create", what);
    if (!CHECK(msg, pool != NULL && other != NULL && freed != NULL && c != NULL &&
                        pthread_key_create(&cacheless_key, cacheless_dtor) == 0))
        goto out;
    *c = (cacheless){.pool = pool, .other = other, .size = size};
    if (take_n(pool, size, freed, CL_K, 4))
        give_n(pool, size, freed, CL_K); /* parks ~K/2 magazines */
    thread_run(cacheless_thread, c);
    pthread_key_delete(cacheless_key);
    snprintf(msg, sizeof msg, "%s: every alloc succeeds", what);
    CHECK(msg, tfail_take() == 0 && c->again);
    bool recent = false;
    for (size_t i = CL_K - 8; i < CL_K; i++)
        recent |= c->blocks[0] == freed[i];
    snprintf(msg, sizeof msg, "%s: the first block is of the newest magazine (one taken, O(1))",
             what);
    CHECK(msg, recent);
    size_t found = 0;
    qsort(freed, CL_K, sizeof *freed, cmp_ptr);
    for (size_t i = 0; i < CL_K; i++)
        found += bsearch(&c->blocks[i], freed, CL_K, sizeof *freed, cmp_ptr) != NULL;
    mp_stats st = stats_of(pool);
    snprintf(msg, sizeof msg, "%s: it gets back every parked block, none twice", what);
    CHECK(msg, found >= CL_K - 4 && st.blocks_peak <= CL_K + 4 && all_distinct(c->blocks, CL_K));
    snprintf(msg, sizeof msg, "%s: statistics exact midway and after", what);
    CHECK(msg, c->mid.blocks_in_use == CL_K / 2 && c->mid.allocs == CL_K + CL_K / 2 &&
                   c->mid.frees == CL_K && st.blocks_in_use == CL_K && st.allocs == 2 * CL_K &&
                   st.frees == CL_K && st.blocks_in_use + st.blocks_free == st.blocks_peak);
    give_n(pool, size, c->blocks, CL_K);
    st = stats_of(pool);
    snprintf(msg, sizeof msg, "%s: all freed, check holds", what);
    CHECK(msg, st.blocks_in_use == 0 && st.frees == 2 * CL_K && mp_pool_check(pool));
out:
    mp_pool_destroy(pool);
    mp_pool_destroy(other);
    free(freed);
    free(c);
}

/* ------------------------------------------------------------------------------------------------
 * 2. Trim and reset while another thread holds a cache
 * ---------------------------------------------------------------------------------------------- */

/* Allocates and frees n, parks, then allocates n again, writes them all, checks ownership, frees.
 * */
typedef struct again {
    mp_pool *pool;
    size_t size, n;
    void **blocks;
    pthread_barrier_t *bar;
} again;

static void *again_thread(void *arg)
{
    again *a = arg;
    if (take_n(a->pool, a->size, a->blocks, a->n, 1))
        give_n(a->pool, a->size, a->blocks, a->n);
    pthread_barrier_wait(a->bar); /* cache full of blocks; the main thread trims or resets */
    pthread_barrier_wait(a->bar);
    if (take_n(a->pool, a->size, a->blocks, a->n, 2)) {
        for (size_t i = 0; i < a->n; i++)
            if (!mp_pool_owns(a->pool, a->blocks[i]))
                tfail("after trim/reset: block %p handed out is not the pool's", a->blocks[i]);
    }
    pthread_barrier_wait(a->bar); /* the main thread allocates too, and compares */
    pthread_barrier_wait(a->bar);
    give_n(a->pool, a->size, a->blocks, a->n);
    return NULL;
}

static void test_trim_reset_with_cache(bool reset)
{
    const char *what =
        reset ? "reset with a parked thread's cache" : "trim with a parked thread's cache";
    enum { N = 3000, SIZE = 64 }; /* several chunk runs */
    mp_pool *pool = ts_pool(reset ? "reset" : "trim", SIZE, 0, 0);
    void **theirs = malloc(sizeof(void *) * N), **mine = malloc(sizeof(void *) * N * 2);
    if (!CHECK("trim/reset with cache: create", pool != NULL && theirs != NULL && mine != NULL))
        return;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    again a = {pool, SIZE, N, theirs, &bar};
    pthread_t t;
    if (!threads_start(&t, 1, again_thread, &a, 0)) {
        CHECK("trim/reset with cache: start", false);
        return;
    }
    pthread_barrier_wait(&bar);
    size_t given = 0;
    if (reset)
        mp_pool_reset(pool);
    else
        given = mp_pool_trim(pool);
    mp_stats st = stats_of(pool);
    char msg[160];
    snprintf(msg, sizeof msg, "%s: blocks_in_use == 0 after the %s", what,
             reset ? "reset" : "trim");
    CHECK(msg, st.blocks_in_use == 0 && st.frees == st.allocs);
    pthread_barrier_wait(&bar);
    pthread_barrier_wait(&bar); /* the thread holds N blocks again */
    bool took = take_n(pool, SIZE, mine, N, 3);
    if (took) {
        memcpy(mine + N, theirs, sizeof(void *) * N);
        for (size_t i = 0; i < 2 * N; i++)
            if (!block_verify(mine[i], SIZE, NULL))
                tfail("%s: block %p handed out to both threads", what, mine[i]);
        snprintf(msg, sizeof msg, "%s: the thread's blocks and the main thread's are all distinct",
                 what);
        CHECK(msg, all_distinct(mine, 2 * N));
        /* all_distinct sorted mine[]; free the main thread's half, found by stamp. */
        for (size_t i = 0; i < 2 * N; i++) {
            uint64_t stamp;
            block_verify(mine[i], SIZE, &stamp);
            if (stamp >> 40 == 4) /* stamp_make(3, ...) */
                mp_pool_free(pool, mine[i]);
        }
    }
    pthread_barrier_wait(&bar);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&bar);
    st = stats_of(pool);
    snprintf(msg, sizeof msg, "%s: final stats exact", what);
    CHECK(msg, st.blocks_in_use == 0 && st.allocs == (uint64_t)(took ? 3 * N : 2 * N) &&
                   st.frees == st.allocs && st.failed_allocs == 0);
    snprintf(msg, sizeof msg, "%s: no thread failure (blocks intact, all owned)", what);
    CHECK(msg, tfail_take() == 0);
    CHECK("trim/reset with cache: mp_pool_check", mp_pool_check(pool));
    printf("  %s: %zu bytes trimmed\n", what, given);
    mp_pool_destroy(pool);
    CHECK("trim/reset with cache: all memory back", source_all_back());
    free(theirs);
    free(mine);
}

/*
 * Trim gives back every chunk once an exited thread freed all it allocated. The thread allocates
 * N blocks (many cache batches) and frees them all, so its cache overflows into the pool many times
 * and gives back the rest when it exits: every block is free, wherever the pool keeps it, and trim
 * must give back every chunk.
 */
static void test_trim_after_exit(void)
{
    enum { N = 20000, SIZE = 64 };
    mp_pool *pool = ts_pool("trim after exit", SIZE, 0, 0);
    void **blocks = malloc(sizeof(void *) * N);
    if (!CHECK("trim after exit: create", pool != NULL && blocks != NULL))
        return;
    job j = {.pool = pool, .size = SIZE, .blocks = blocks, .alloc = N, .free = N, .who = 5};
    thread_run(job_thread, &j);
    mp_stats before = stats_of(pool);
    size_t given = mp_pool_trim(pool);
    mp_stats after = stats_of(pool);
    CHECK("trim after exit: before the trim, every block is free, none in use",
          before.blocks_in_use == 0 && before.blocks_free == before.blocks_peak &&
              before.blocks_peak >= N);
    CHECK("trim after exit: every chunk is given back",
          given > 0 && after.chunks == 0 && after.blocks_free == 0 &&
              after.bytes_reserved < before.bytes_reserved);
    void *b = mp_pool_alloc(pool);
    CHECK("trim after exit: the pool still works", b != NULL && mp_pool_check(pool));
    mp_pool_free(pool, b);
    printf("  trim after exit: %zu bytes given back of %" PRIu64 "\n", given,
           before.bytes_reserved);
    CHECK("trim after exit: no thread failure", tfail_take() == 0);
    mp_pool_destroy(pool);
    free(blocks);
    CHECK("trim after exit: all memory back", source_all_back());
}

/*
 * A pool grown by a handover (issue 17): a builder thread allocates HO_N stamped blocks (a few
 * chunks' worth, so refills carve never-used ranges that a chunk's end cuts short) and a freer
 * thread verifies and frees them all, HO_ROUNDS times, both threads alive with their caches
 * throughout. After each step the main thread reads stats, which also empties the depot onto the
 * free list, so the next round refills from that list and from carving: in use exactly what the
 * builder holds, all of it distinct; after the free, nothing in use, allocs == frees, every carved
 * block free; the peak above HO_N by at most the two threads' caches (the freer's, which the
 * builder cannot reach, and a refill of the builder's). Once both exit, trim gives back every
 * chunk.
 */
enum { HO_N = 12000, HO_ROUNDS = 4, HO_SIZE = 24 };

typedef struct ho_test {
    mp_pool *pool;
    void **blocks;
    pthread_barrier_t step; /* the builder, the freer and the main thread */
} ho_test;

typedef struct ho_role {
    ho_test *t;
    bool builder;
} ho_role;

static void *ho_thread(void *arg)
{
    ho_role *r = arg;
    ho_test *t = r->t;
    for (uint32_t round = 0; round < HO_ROUNDS; round++) {
        if (r->builder && !take_n(t->pool, HO_SIZE, t->blocks, HO_N, round + 1))
            memset(t->blocks, 0, sizeof(void *) * HO_N);
        pthread_barrier_wait(&t->step); /* built; the main thread reads stats */
        pthread_barrier_wait(&t->step);
        if (!r->builder && t->blocks[0] != NULL)
            give_n(t->pool, HO_SIZE, t->blocks, HO_N);
        pthread_barrier_wait(&t->step); /* freed; the main thread reads stats */
        pthread_barrier_wait(&t->step);
    }
    return NULL;
}

static void test_handover_grown(void)
{
    ho_test t = {.pool = ts_pool("handover", HO_SIZE, 0, 0)};
    t.blocks = calloc(HO_N, sizeof(void *));
    void **sorted = malloc(sizeof(void *) * HO_N);
    pthread_t th[2];
    ho_role roles[2] = {{&t, true}, {&t, false}};
    if (!CHECK("handover: create", t.pool != NULL && t.blocks != NULL && sorted != NULL))
        goto out;
    pthread_barrier_init(&t.step, NULL, 3);
    if (!CHECK("handover: start", threads_start(th, 2, ho_thread, roles, sizeof roles[0]))) {
        pthread_barrier_destroy(&t.step);
        goto out;
    }
    const uint64_t caches = 2 * 1024; /* two default caches of 24-byte blocks (mempool.h) */
    bool built = true, distinct = true, freed = true, bounded = true, checked = true;
    for (uint32_t round = 0; round < HO_ROUNDS; round++) {
        pthread_barrier_wait(&t.step);
        mp_stats st = stats_of(t.pool);
        built = built && st.blocks_in_use == HO_N && st.allocs == (uint64_t)(round + 1) * HO_N &&
                st.frees == (uint64_t)round * HO_N && t.blocks[0] != NULL;
        memcpy(sorted, t.blocks, sizeof(void *) * HO_N);
        distinct = distinct && all_distinct(sorted, HO_N);
        checked = checked && mp_pool_check(t.pool);
        pthread_barrier_wait(&t.step);
        pthread_barrier_wait(&t.step);
        st = stats_of(t.pool);
        freed = freed && st.blocks_in_use == 0 && st.frees == st.allocs &&
                st.allocs == (uint64_t)(round + 1) * HO_N && st.blocks_free == st.blocks_peak;
        bounded = bounded && st.blocks_peak >= HO_N && st.blocks_peak <= HO_N + caches;
        checked = checked && mp_pool_check(t.pool);
        pthread_barrier_wait(&t.step);
    }
    threads_join(th, 2);
    pthread_barrier_destroy(&t.step);
    CHECK("handover: in use exactly the builder's blocks, allocs and frees counted", built);
    CHECK("handover: no block handed out twice", distinct);
    CHECK("handover: after each free, nothing in use and every carved block free", freed);
    CHECK("handover: the peak exceeds the live blocks by at most two caches", bounded);
    CHECK("handover: mp_pool_check after every step", checked);
    mp_stats before = stats_of(t.pool);
    size_t given = mp_pool_trim(t.pool);
    mp_stats after = stats_of(t.pool);
    CHECK("handover: after both threads exit, trim gives back every chunk",
          before.blocks_in_use == 0 && given > 0 && after.chunks == 0 && after.blocks_free == 0 &&
              after.bytes_reserved < before.bytes_reserved);
    CHECK("handover: no thread failure", tfail_take() == 0);
out:
    mp_pool_destroy(t.pool);
    free(t.blocks);
    free(sorted);
    CHECK("handover: all memory back", source_all_back());
}

/* ------------------------------------------------------------------------------------------------
 * 2b. The depot's shelves: a thread gets back the magazines it gave, others take them before
 * the pool carves, trim and exit give them back
 * ---------------------------------------------------------------------------------------------- */

enum { SH_N = 20000, SH_SIZE = 64 };

/* True if p is one of the n sorted pointers in set. */
static bool ptr_in(void *const *set, size_t n, void *p)
{
    return bsearch(&p, set, n, sizeof *set, cmp_ptr) != NULL;
}

/* A thread takes SH_N blocks into `first`, waits on `bar`, frees them (into its shelf), waits
 * twice; then, when `again`, takes SH_N blocks into `second`, waits twice, frees them and waits
 * twice before it exits. */
typedef struct shelf_worker {
    mp_pool *pool;
    void **first, **second;
    pthread_barrier_t *bar;
    bool again;
} shelf_worker;

static void *shelf_thread(void *arg)
{
    shelf_worker *w = arg;
    bool took = take_n(w->pool, SH_SIZE, w->first, SH_N, 8);
    pthread_barrier_wait(w->bar);
    if (took)
        give_n(w->pool, SH_SIZE, w->first, SH_N);
    pthread_barrier_wait(w->bar);
    pthread_barrier_wait(w->bar);
    if (!w->again)
        return NULL;
    took = take_n(w->pool, SH_SIZE, w->second, SH_N, 9);
    pthread_barrier_wait(w->bar);
    pthread_barrier_wait(w->bar);
    if (took)
        give_n(w->pool, SH_SIZE, w->second, SH_N);
    pthread_barrier_wait(w->bar);
    pthread_barrier_wait(w->bar);
    return NULL;
}

/* The closing checks of the shelf tests, each message led by `name`: nothing lost, no thread
 * failure, mp_pool_check; then the pool is destroyed and all its memory must be back. */
static void shelf_pool_close(const char *name, mp_pool *pool)
{
    char msg[4][80];
    snprintf(msg[0], sizeof msg[0], "%s: nothing lost", name);
    snprintf(msg[1], sizeof msg[1], "%s: no thread failure", name);
    snprintf(msg[2], sizeof msg[2], "%s: mp_pool_check", name);
    snprintf(msg[3], sizeof msg[3], "%s: all memory back", name);
    mp_stats st = stats_of(pool);
    CHECK(msg[0], st.blocks_in_use == 0 && st.frees == st.allocs);
    CHECK(msg[1], tfail_take() == 0);
    CHECK(msg[2], mp_pool_check(pool));
    mp_pool_destroy(pool);
    CHECK(msg[3], source_all_back());
}

/*
 * Two threads, A and B, each take SH_N blocks; A frees its own, then B its own, then A takes SH_N
 * again: A gets back the blocks it freed (from its shelf), not B's (the newest magazines of the
 * pool), but for those B's cache could not hold. A shared stack of magazines gave A B's.
 */
static void test_shelf_affinity(void)
{
    mp_pool *pool = ts_pool("shelf affinity", SH_SIZE, 0, 0);
    void **a1 = malloc(sizeof(void *) * SH_N), **a2 = malloc(sizeof(void *) * SH_N);
    if (!CHECK("shelf affinity: create", pool != NULL && a1 != NULL && a2 != NULL))
        return;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    shelf_worker a = {pool, a1, a2, &bar, true};
    pthread_t t;
    if (CHECK("shelf affinity: start", threads_start(&t, 1, shelf_thread, &a, 0))) {
        /* B takes its blocks, and exits holding them, before A frees: a thread that takes while
         * another frees may take that one's magazines (another cache's shelf) */
        void **b1 = malloc(sizeof(void *) * SH_N);
        job b = {.pool = pool, .size = SH_SIZE, .blocks = b1, .alloc = SH_N, .who = 10};
        thread_run(job_thread, &b);
        pthread_barrier_wait(&bar); /* A took its blocks */
        pthread_barrier_wait(&bar); /* A freed its blocks */
        b.alloc = 0, b.free = SH_N;
        thread_run(job_thread,
                   &b); /* another thread frees B's: its shelf goes to the shared stack */
        pthread_barrier_wait(&bar);
        pthread_barrier_wait(&bar); /* A took its blocks again */
        qsort(a1, SH_N, sizeof *a1, cmp_ptr);
        size_t own = 0;
        for (size_t i = 0; i < SH_N; i++)
            own += ptr_in(a1, SH_N, a2[i]);
        printf("  shelf affinity: %zu of %d blocks A took again were its own\n", own, SH_N);
        /* Under ASan or Valgrind every pool is checked, and checked pools keep no caches. */
        if (!TEST_ASAN && !TEST_ON_VALGRIND())
            CHECK("shelf affinity: a thread gets back the blocks it freed",
                  own >= SH_N - SH_N / 10);
        for (int i = 0; i < 3; i++)
            pthread_barrier_wait(&bar); /* A frees them and exits */
        pthread_join(t, NULL);
        free(b1);
    }
    pthread_barrier_destroy(&bar);
    shelf_pool_close("shelf affinity", pool);
    free(a1);
    free(a2);
}

/* A thread that takes `n` blocks, waits on `bar`, then in each of MRU_TURNS turns frees the next
 * give[turn] of them and waits on `bar`; it waits once more before it exits. */
enum { MRU_TURNS = 3, MRU_BATCH = 512 /* half the default cache of 64-byte blocks */ };
typedef struct mru_worker {
    mp_pool *pool;
    void **blocks;
    size_t n, give[MRU_TURNS];
    pthread_barrier_t *bar;
} mru_worker;

static void *mru_thread(void *arg)
{
    mru_worker *w = arg;
    bool took = take_n(w->pool, SH_SIZE, w->blocks, w->n, 12);
    pthread_barrier_wait(w->bar);
    for (size_t turn = 0, done = 0; turn < MRU_TURNS; done += w->give[turn++]) {
        if (took)
            give_n(w->pool, SH_SIZE, w->blocks + done, w->give[turn]);
        pthread_barrier_wait(w->bar);
    }
    pthread_barrier_wait(w->bar);
    return NULL;
}

/*
 * A thread with no magazine of its own takes the newest of the shelf pushed last: A frees into its
 * shelf, then B into its own, then A pushes one more magazine; a third thread's first block is
 * A's (the newest magazine in the depot), not B's (the shelf that was stocked last).
 */
static void test_shelf_steal_newest(void)
{
    mp_pool *pool = ts_pool("shelf newest", SH_SIZE, 0, 0);
    void **a = malloc(sizeof(void *) * 4 * MRU_BATCH), **b = malloc(sizeof(void *) * 3 * MRU_BATCH);
    if (!CHECK("shelf newest: create", pool != NULL && a != NULL && b != NULL))
        return;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 3);
    mru_worker wa = {pool, a, 4 * MRU_BATCH, {3 * MRU_BATCH, 0, MRU_BATCH}, &bar};
    mru_worker wb = {pool, b, 3 * MRU_BATCH, {0, 3 * MRU_BATCH, 0}, &bar};
    pthread_t ta, tb;
    if (CHECK("shelf newest: start", threads_start(&ta, 1, mru_thread, &wa, 0) &&
                                         threads_start(&tb, 1, mru_thread, &wb, 0))) {
        for (int i = 0; i < 1 + MRU_TURNS; i++)
            pthread_barrier_wait(&bar); /* took theirs; A freed, B freed; A pushed once more */
        void *c[1];
        job j = {.pool = pool, .size = SH_SIZE, .blocks = c, .alloc = 1, .free = 1, .who = 13};
        thread_run(job_thread, &j);
        pthread_barrier_wait(&bar); /* both exit */
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        qsort(a, 4 * MRU_BATCH, sizeof *a, cmp_ptr);
        /* Under ASan or Valgrind every pool is checked, and checked pools keep no caches. */
        if (!TEST_ASAN && !TEST_ON_VALGRIND())
            CHECK("shelf newest: a thread without a shelf takes the depot's newest magazine",
                  ptr_in(a, 4 * MRU_BATCH, c[0]));
    }
    pthread_barrier_destroy(&bar);
    shelf_pool_close("shelf newest", pool);
    free(a);
    free(b);
}

/*
 * A thread frees SH_N blocks into its shelf and stays: a trim meanwhile gives back the chunks the
 * shelf holds; when it has freed them again, another thread that takes SH_N blocks takes them
 * from that shelf, so the pool carves no more than two caches' worth beyond SH_N; once every
 * thread exited, a trim gives back every chunk.
 */
static void test_shelf_bound_and_trim(void)
{
    mp_pool *pool = ts_pool("shelf bound", SH_SIZE, 0, 0);
    void **a1 = malloc(sizeof(void *) * SH_N), **a2 = malloc(sizeof(void *) * SH_N);
    void **b1 = malloc(sizeof(void *) * SH_N);
    if (!CHECK("shelf bound: create", pool != NULL && a1 != NULL && a2 != NULL && b1 != NULL))
        return;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    shelf_worker a = {pool, a1, a2, &bar, true};
    pthread_t t;
    if (CHECK("shelf bound: start", threads_start(&t, 1, shelf_thread, &a, 0))) {
        pthread_barrier_wait(&bar);
        pthread_barrier_wait(&bar); /* A freed its blocks, and lives on with its shelf */
        mp_stats before = stats_of(pool);
        size_t given = mp_pool_trim(pool);
        mp_stats after = stats_of(pool);
        CHECK("shelf bound: trim gives back the chunks of a live thread's shelf",
              given > 0 && after.bytes_reserved < before.bytes_reserved &&
                  after.blocks_in_use == 0);
        pthread_barrier_wait(&bar);
        pthread_barrier_wait(&bar); /* A took SH_N blocks again */
        pthread_barrier_wait(&bar);
        pthread_barrier_wait(&bar); /* and freed them into its shelf */
        job b = {.pool = pool, .size = SH_SIZE, .blocks = b1, .alloc = SH_N, .who = 11};
        thread_run(job_thread, &b);
        mp_stats st = stats_of(pool);
        CHECK("shelf bound: another thread takes a live thread's shelf before the pool carves",
              st.blocks_in_use == SH_N && st.blocks_peak <= SH_N + 2 * 1024);
        b.alloc = 0, b.free = SH_N;
        thread_run(job_thread, &b); /* B's blocks go to the shelf of an exited thread */
        pthread_barrier_wait(&bar); /* A exits */
        pthread_join(t, NULL);
        before = stats_of(pool);
        given = mp_pool_trim(pool);
        after = stats_of(pool);
        CHECK("shelf bound: once every thread exited, trim gives back every chunk",
              before.blocks_in_use == 0 && given > 0 && after.chunks == 0 &&
                  after.blocks_free == 0);
    }
    pthread_barrier_destroy(&bar);
    CHECK("shelf bound: no thread failure", tfail_take() == 0);
    CHECK("shelf bound: mp_pool_check", mp_pool_check(pool));
    mp_pool_destroy(pool);
    free(a1);
    free(a2);
    free(b1);
    CHECK("shelf bound: all memory back", source_all_back());
}

/* ------------------------------------------------------------------------------------------------
 * 3. Destroy after use; many pools
 * ---------------------------------------------------------------------------------------------- */

enum { DA_THREADS = 4, DA_N = 200 };

typedef struct da_shared {
    mp_pool *pool; /* set by the main thread between barriers */
    pthread_barrier_t bar;
    void *pass[DA_THREADS][DA_N]; /* blocks handed to the next thread */
    bool use_second;              /* false: exit right after the destroy */
} da_shared;

typedef struct da_worker {
    da_shared *sh;
    uint32_t no;
} da_worker;

/* Allocates 2n, hands n to the next thread, frees its own n and the n from the previous thread. */
static void da_round(da_worker *w, size_t n, uint32_t who)
{
    da_shared *sh = w->sh;
    void *mine[DA_N];
    if (!take_n(sh->pool, 32, mine, n, who) || !take_n(sh->pool, 32, sh->pass[w->no], n, who + 100))
        tfail("destroy after use: allocation failed");
    pthread_barrier_wait(&sh->bar);
    give_n(sh->pool, 32, mine, n);
    give_n(sh->pool, 32, sh->pass[(w->no + DA_THREADS - 1) % DA_THREADS], n);
}

static void *da_thread(void *arg)
{
    da_worker *w = arg;
    da_shared *sh = w->sh;
    da_round(w, DA_N / 2, w->no);
    pthread_barrier_wait(&sh->bar); /* 1: all freed; caches full; the main thread destroys */
    pthread_barrier_wait(&sh->bar); /* 2: the main thread made the second pool */
    if (sh->use_second) {
        da_round(w, DA_N, w->no + 10);
        pthread_barrier_wait(&sh->bar); /* 3: the main thread reads stats while we live */
        pthread_barrier_wait(&sh->bar); /* 4 */
    }
    return NULL;
}

static void test_destroy_after_use(bool use_second)
{
    const char *what =
        use_second ? "destroy after use, then a new pool" : "destroy after use, then exit";
    static da_shared sh;
    memset(&sh, 0, sizeof sh);
    sh.use_second = use_second;
    sh.pool = ts_pool("first", 32, 0, 0);
    if (!CHECK("destroy after use: create", sh.pool != NULL))
        return;
    pthread_barrier_init(&sh.bar, NULL, DA_THREADS + 1);
    da_worker w[DA_THREADS];
    pthread_t t[DA_THREADS];
    for (uint32_t i = 0; i < DA_THREADS; i++)
        w[i] = (da_worker){&sh, i};
    /* The workers' first round has its own barrier wait, joined here by the main thread. */
    if (!CHECK("destroy after use: start", threads_start(t, DA_THREADS, da_thread, w, sizeof w[0])))
        return;
    pthread_barrier_wait(&sh.bar); /* round 1: blocks exchanged */
    pthread_barrier_wait(&sh.bar); /* 1 */
    mp_stats st = stats_of(sh.pool);
    char msg[160];
    snprintf(msg, sizeof msg, "%s: first pool exact before destroy (caches hold its blocks)", what);
    CHECK(msg, st.blocks_in_use == 0 && st.allocs == DA_THREADS * DA_N && st.frees == st.allocs);
    mp_pool_destroy(sh.pool);
    snprintf(msg, sizeof msg, "%s: destroy gave every byte back though live threads cached blocks",
             what);
    CHECK(msg, source_all_back());
    sh.pool = use_second ? ts_pool("second", 32, 0, 0) : NULL;
    pthread_barrier_wait(&sh.bar); /* 2 */
    if (use_second && sh.pool != NULL) {
        pthread_barrier_wait(&sh.bar); /* round 2: blocks exchanged */
        pthread_barrier_wait(&sh.bar); /* 3 */
        st = stats_of(sh.pool);
        snprintf(msg, sizeof msg, "%s: second pool exact while its threads live", what);
        CHECK(msg, st.blocks_in_use == 0 && st.allocs == DA_THREADS * DA_N * 2 &&
                       st.frees == st.allocs && st.failed_allocs == 0);
        pthread_barrier_wait(&sh.bar); /* 4 */
    }
    threads_join(t, DA_THREADS);
    pthread_barrier_destroy(&sh.bar);
    snprintf(msg, sizeof msg, "%s: no thread failure", what);
    CHECK(msg, tfail_take() == 0);
    if (sh.pool != NULL) {
        st = stats_of(sh.pool);
        CHECK("destroy after use: second pool exact after its threads exit",
              st.blocks_in_use == 0 && st.allocs == DA_THREADS * DA_N * 2 &&
                  st.frees == st.allocs && st.blocks_free == st.blocks_peak);
        CHECK("destroy after use: second pool check", mp_pool_check(sh.pool));
        mp_pool_destroy(sh.pool);
    }
    CHECK("destroy after use: all memory back", source_all_back());
}

/* Threads that create, use and destroy their own pools while sharing one. */
enum { CHURN_THREADS = 4, CHURN_POOLS = 150, CHURN_N = 20 };

typedef struct churn {
    mp_pool *shared;
    uint32_t no;
} churn;

static void *churn_thread(void *arg)
{
    churn *c = arg;
    void *mine[CHURN_N], *common[CHURN_N];
    for (int i = 0; i < CHURN_POOLS; i++) {
        mp_pool *own = ts_pool("own", 24 + (size_t)(i % 5) * 8, (size_t)(i % 3) * 4, 0);
        if (own == NULL) {
            tfail("churn: create failed (errno %d)", errno);
            return NULL;
        }
        size_t size = mp_pool_block_size(own);
        if (take_n(own, size, mine, CHURN_N, c->no) &&
            take_n(c->shared, 48, common, CHURN_N, c->no)) {
            give_n(own, size, mine, CHURN_N / 2);
            give_n(c->shared, 48, common, CHURN_N);
            mp_stats st = stats_of(own);
            if (st.blocks_in_use != CHURN_N - CHURN_N / 2 || st.allocs != CHURN_N)
                tfail("churn: own pool's stats: in use %" PRIu64 ", allocs %" PRIu64,
                      st.blocks_in_use, st.allocs);
        }
        mp_pool_destroy(own); /* with blocks live and cached: all dropped */
    }
    return NULL;
}

static void test_pool_churn(void)
{
    mp_pool *shared = ts_pool("shared", 48, 8, 0);
    if (!CHECK("pool churn: create", shared != NULL))
        return;
    churn c[CHURN_THREADS];
    pthread_t t[CHURN_THREADS];
    for (uint32_t i = 0; i < CHURN_THREADS; i++)
        c[i] = (churn){shared, i};
    if (CHECK("pool churn: start", threads_start(t, CHURN_THREADS, churn_thread, c, sizeof c[0])))
        threads_join(t, CHURN_THREADS);
    CHECK("pool churn: no thread failure (own pools exact, blocks intact)", tfail_take() == 0);
    mp_stats st = stats_of(shared);
    CHECK("pool churn: shared pool exact",
          st.blocks_in_use == 0 && st.allocs == (uint64_t)CHURN_THREADS * CHURN_POOLS * CHURN_N &&
              st.frees == st.allocs);
    CHECK("pool churn: shared pool check", mp_pool_check(shared));
    mp_pool_destroy(shared);
    CHECK("pool churn: all memory back", source_all_back());
}

/* 50 pools, 8 threads: thread t uses pool j when j and t have the same parity (4 threads a pool).
 * */
enum { MP_POOLS = 50, MP_THREADS = 8, MP_K = 30, MP_DOOMED = 10 };

typedef struct many_shared {
    mp_pool *pools[MP_POOLS];
    pthread_barrier_t bar;
    void *handed[MP_THREADS][MP_POOLS][MP_K / 2]; /* freed by the main thread after the join */
} many_shared;

typedef struct many_worker {
    many_shared *sh;
    uint32_t no;
} many_worker;

static void many_pass(many_worker *w, bool skip_doomed, bool hand)
{
    for (uint32_t j = w->no % 2; j < MP_POOLS; j += 2) {
        if (skip_doomed && j < MP_DOOMED)
            continue;
        mp_pool *pool = w->sh->pools[j];
        size_t size = mp_pool_block_size(pool);
        void *b[MP_K];
        if (!take_n(pool, size, b, MP_K, w->no))
            continue;
        /* Blocks of the doomed pools are not handed on: they die with their pool. */
        size_t keep = hand && j >= MP_DOOMED ? MP_K / 2 : MP_K;
        give_n(pool, size, b, keep);
        if (keep < MP_K)
            memcpy(w->sh->handed[w->no][j], b + keep, sizeof(void *) * (MP_K - keep));
    }
}

static void *many_thread(void *arg)
{
    many_worker *w = arg;
    many_pass(w, false, false);
    pthread_barrier_wait(&w->sh->bar); /* the main thread destroys the doomed pools */
    pthread_barrier_wait(&w->sh->bar);
    many_pass(w, true, true);
    return NULL; /* exits with a cache of each of its 20 surviving pools */
}

static void test_many_pools(void)
{
    static many_shared sh;
    memset(&sh, 0, sizeof sh);
    bool ok = true;
    for (int j = 0; j < MP_POOLS; j++) {
        char name[16];
        snprintf(name, sizeof name, "many%d", j);
        sh.pools[j] = ts_pool(name, 16 + (size_t)(j % 7) * 24, (size_t)(j % 4) * 5, 0);
        ok = ok && sh.pools[j] != NULL;
    }
    if (!CHECK("many pools: create 50", ok))
        return;
    pthread_barrier_init(&sh.bar, NULL, MP_THREADS + 1);
    many_worker w[MP_THREADS];
    pthread_t t[MP_THREADS];
    for (uint32_t i = 0; i < MP_THREADS; i++)
        w[i] = (many_worker){&sh, i};
    if (!CHECK("many pools: start", threads_start(t, MP_THREADS, many_thread, w, sizeof w[0])))
        return;
    pthread_barrier_wait(&sh.bar);
    for (int j = 0; j < MP_DOOMED; j++) {
        mp_stats st = stats_of(sh.pools[j]);
        if (st.blocks_in_use != 0 || st.allocs != 4 * MP_K)
            tfail("many pools: pool %d before destroy: in use %" PRIu64 ", allocs %" PRIu64, j,
                  st.blocks_in_use, st.allocs);
        mp_pool_destroy(sh.pools[j]);
        sh.pools[j] = NULL;
    }
    pthread_barrier_wait(&sh.bar);
    threads_join(t, MP_THREADS);
    pthread_barrier_destroy(&sh.bar);
    /* The threads have exited; the main thread frees what they handed on. */
    for (int i = 0; i < MP_THREADS; i++)
        for (int j = MP_DOOMED + i % 2; j < MP_POOLS; j += 2)
            give_n(sh.pools[j], mp_pool_block_size(sh.pools[j]), sh.handed[i][j], MP_K / 2);
    int exact = 0, checked = 0;
    for (int j = MP_DOOMED; j < MP_POOLS; j++) {
        mp_stats st = stats_of(sh.pools[j]);
        exact += st.blocks_in_use == 0 && st.allocs == 8 * MP_K && st.frees == st.allocs &&
                 st.blocks_free == st.blocks_peak;
        checked += mp_pool_check(sh.pools[j]);
        mp_pool_destroy(sh.pools[j]);
    }
    CHECK("many pools: no thread failure", tfail_take() == 0);
    CHECK("many pools: each of the 40 surviving pools exact after the threads exit", exact == 40);
    CHECK("many pools: each passes mp_pool_check", checked == 40);
    CHECK("many pools: all memory back", source_all_back());
}

/* One thread uses 600 pools: its cache table's entries span several pages. */
enum { WIDE = 600 };

typedef struct wide {
    mp_pool **pools;
} wide;

static void *wide_thread(void *arg)
{
    wide *w = arg;
    for (int j = 0; j < WIDE; j++) {
        void *b[3];
        if (take_n(w->pools[j], 16, b, 3, 1))
            give_n(w->pools[j], 16, b, 3);
    }
    return NULL;
}

static void test_wide_table(void)
{
    static mp_pool *pools[WIDE];
    for (int round = 0; round < 2; round++) {
        int created = 0, exact = 0;
        for (int j = 0; j < WIDE; j++)
            created += (pools[j] = ts_pool("wide", 16, 0, 0)) != NULL;
        if (!CHECK("wide table: create 600 pools", created == WIDE))
            return;
        wide w = {pools};
        thread_run(wide_thread, &w);
        for (int j = 0; j < WIDE; j++) {
            mp_stats st = stats_of(pools[j]);
            exact += st.blocks_in_use == 0 && st.allocs == 3 && st.blocks_free == st.blocks_peak;
            mp_pool_destroy(pools[j]);
        }
        CHECK("wide table: each pool exact after the thread exits", exact == WIDE);
        CHECK("wide table: no thread failure", tfail_take() == 0);
    }
    CHECK("wide table: all memory back", source_all_back());
}

/*
 * Every cache id taken (mempool.h: a pool made while 32767 other thread-safe pools with caches
 * exist keeps none). Whether a pool keeps caches shows in where a freed block goes: into this
 * thread's cache, where another thread cannot get it, or straight back to the pool, where it can. A
 * pool with no caches still works and its statistics stay exact; the ids of destroyed pools serve
 * new pools, with caches, again.
 */
enum { ALL_IDS = 32768 };

typedef struct handoff {
    mp_pool *pool;
    void *got;
} handoff;

static void *take_one(void *arg)
{
    handoff *h = arg;
    h->got = mp_pool_alloc(h->pool);
    return NULL;
}

static bool keeps_caches(mp_pool *pool)
{
    void *mine = mp_pool_alloc(pool);
    mp_pool_free(pool, mine);
    handoff h = {pool, NULL};
    thread_run(take_one, &h);
    mp_pool_free(pool, h.got);
    return h.got != NULL && h.got != mine;
}

static void test_all_ids_taken(void)
{
    mp_pool **pools = calloc(ALL_IDS, sizeof *pools);
    size_t made = 0;
    while (pools != NULL && made < ALL_IDS && (pools[made] = ts_pool("ids", 16, 0, 0)) != NULL)
        made++;
    /* Under ASan or Valgrind every pool is checked, and checked pools keep no caches at all. */
    const bool cached = !TEST_ASAN && !TEST_ON_VALGRIND();
    if (CHECK("all ids taken: 32768 thread-safe pools", made == ALL_IDS)) {
        mp_pool *last = pools[ALL_IDS - 1];
        CHECK("all ids taken: the first pool keeps caches", keeps_caches(pools[0]) == cached);
        CHECK("all ids taken: the last pool keeps none", !keeps_caches(last));
        void *b[100];
        bool taken = take_n(last, 16, b, 100, 7);
        mp_stats st = stats_of(last);
        CHECK("all ids taken: the last pool works, its stats exact",
              taken && st.blocks_in_use == 100 && st.allocs == 102 && st.frees == 2 &&
                  mp_pool_check(last));
        if (taken)
            give_n(last, 16, b, 100);
        for (size_t j = 1; j < ALL_IDS; j++)
            mp_pool_destroy(pools[j]);
        mp_pool *fresh = ts_pool("ids again", 16, 0, 0);
        CHECK("all ids taken: after destroys, a new pool keeps caches again",
              fresh != NULL && keeps_caches(fresh) == cached);
        mp_pool_destroy(fresh);
        mp_pool_destroy(pools[0]);
    } else {
        for (size_t j = 0; j < made; j++)
            mp_pool_destroy(pools[j]);
    }
    free(pools);
    CHECK("all ids taken: no thread failure", tfail_take() == 0);
    CHECK("all ids taken: all memory back", source_all_back());
}

/* ------------------------------------------------------------------------------------------------
 * 4. Statistics while threads only allocate
 * ---------------------------------------------------------------------------------------------- */

enum { AO_THREADS = 4, AO_N = 20000 };

typedef struct ao_shared {
    mp_pool *pool;
    atomic_int running;
    void *blocks[AO_THREADS][AO_N];
    uint64_t snapshots, bad_stats, bad_checks;
} ao_shared;

typedef struct ao_worker {
    ao_shared *sh;
    uint32_t no;
} ao_worker;

static void *ao_thread(void *arg)
{
    ao_worker *w = arg;
    for (size_t i = 0; i < AO_N; i++) {
        w->sh->blocks[w->no][i] = mp_pool_alloc(w->sh->pool);
        if (w->sh->blocks[w->no][i] == NULL)
            tfail("alloc-only: alloc failed");
    }
    atomic_fetch_sub(&w->sh->running, 1);
    return NULL;
}

static void test_stats_while_allocating(size_t thread_cache)
{
    static ao_shared sh;
    memset(&sh, 0, sizeof sh);
    sh.pool = ts_pool("alloc-only", 16, thread_cache, 0);
    if (!CHECK("alloc-only: create", sh.pool != NULL))
        return;
    atomic_store(&sh.running, AO_THREADS);
    ao_worker w[AO_THREADS];
    pthread_t t[AO_THREADS];
    for (uint32_t i = 0; i < AO_THREADS; i++)
        w[i] = (ao_worker){&sh, i};
    if (!CHECK("alloc-only: start", threads_start(t, AO_THREADS, ao_thread, w, sizeof w[0])))
        return;
    mp_stats first_bad = {0};
    while (atomic_load(&sh.running) > 0) {
        mp_stats st = stats_of(sh.pool);
        sh.snapshots++;
        if (st.frees != 0 || st.blocks_in_use != st.allocs) {
            if (sh.bad_stats++ == 0)
                first_bad = st;
        }
        if (!mp_pool_check(sh.pool))
            sh.bad_checks++;
    }
    threads_join(t, AO_THREADS);
    printf("  alloc-only, thread_cache %zu: %" PRIu64 " snapshots, %" PRIu64 " with frees != 0 or "
           "in_use != allocs, %" PRIu64 " with mp_pool_check false\n",
           thread_cache, sh.snapshots, sh.bad_stats, sh.bad_checks);
    if (sh.bad_stats != 0)
        printf("    first: allocs %" PRIu64 ", frees %" PRIu64 ", blocks_in_use %" PRIu64 "\n",
               first_bad.allocs, first_bad.frees, first_bad.blocks_in_use);
    CHECK("alloc-only: every snapshot has frees == 0 and blocks_in_use == allocs",
          sh.bad_stats == 0);
    CHECK("alloc-only: mp_pool_check true in every snapshot", sh.bad_checks == 0);
    mp_stats st = stats_of(sh.pool);
    CHECK("alloc-only: final stats exact",
          st.allocs == AO_THREADS * AO_N && st.blocks_in_use == AO_THREADS * AO_N && st.frees == 0);
    CHECK("alloc-only: no thread failure", tfail_take() == 0);
    mp_pool_destroy(sh.pool);
}

/* ------------------------------------------------------------------------------------------------
 * 5. Options
 * ---------------------------------------------------------------------------------------------- */

/* A small multi-thread mix with cross-thread frees, for option combinations. */
enum { MINI_THREADS = 4, MINI_SLOTS = 64, MINI_LOCAL = 32 };

typedef struct mini_shared {
    mp_pool *pool;
    size_t size;
    bool zero;
    _Atomic(void *) slots[MINI_SLOTS];
} mini_shared;

typedef struct mini_worker {
    mini_shared *sh;
    uint32_t no;
    uint64_t ops, allocs;
} mini_worker;

static void mini_free(mini_shared *sh, void *b)
{
    if (!block_verify(b, sh->size, NULL))
        tfail("%s: block %p corrupted while live", mp_pool_name(sh->pool), b);
    mp_pool_free(sh->pool, b);
}

static void *mini_thread(void *arg)
{
    mini_worker *w = arg;
    mini_shared *sh = w->sh;
    rng r = rng_make(g_seed, 1000 + w->no);
    void *local[MINI_LOCAL];
    uint32_t n = 0;
    for (uint64_t i = 0; i < w->ops; i++) {
        uint32_t c = rng_below(&r, 100);
        if ((c < 50 && n < MINI_LOCAL) || n == 0) {
            void *b = mp_pool_alloc(sh->pool);
            if (b == NULL) {
                tfail("%s: alloc failed (errno %d)", mp_pool_name(sh->pool), errno);
                continue;
            }
            if (sh->zero && !all_zero(b, sh->size))
                tfail("%s: block %p not zeroed", mp_pool_name(sh->pool), b);
            block_fill(b, sh->size, stamp_make(w->no, ++w->allocs));
            local[n++] = b;
        } else {
            uint32_t k = rng_below(&r, n);
            void *b = local[k];
            local[k] = local[--n];
            if (c < 75)
                b = atomic_exchange(&sh->slots[rng_below(&r, MINI_SLOTS)], b);
            if (b != NULL)
                mini_free(sh, b);
        }
    }
    while (n > 0)
        mini_free(sh, local[--n]);
    return NULL;
}

static void mini_stress(mp_pool *pool, bool zero, uint64_t ops, const char *what)
{
    static mini_shared sh;
    memset(&sh, 0, sizeof sh);
    sh.pool = pool;
    sh.size = mp_pool_block_size(pool);
    sh.zero = zero;
    for (int i = 0; i < MINI_SLOTS; i++)
        atomic_init(&sh.slots[i], NULL);
    mini_worker w[MINI_THREADS];
    pthread_t t[MINI_THREADS];
    for (uint32_t i = 0; i < MINI_THREADS; i++)
        w[i] = (mini_worker){.sh = &sh, .no = i, .ops = ops / MINI_THREADS};
    char msg[160];
    if (!threads_start(t, MINI_THREADS, mini_thread, w, sizeof w[0])) {
        snprintf(msg, sizeof msg, "%s: threads start", what);
        CHECK(msg, false);
        return;
    }
    threads_join(t, MINI_THREADS);
    for (int i = 0; i < MINI_SLOTS; i++) {
        void *b = atomic_exchange(&sh.slots[i], NULL);
        if (b != NULL)
            mini_free(&sh, b);
    }
    uint64_t allocs = 0;
    for (int i = 0; i < MINI_THREADS; i++)
        allocs += w[i].allocs;
    mp_stats st = stats_of(pool);
    snprintf(msg, sizeof msg, "%s: blocks intact (and zeroed) in every thread", what);
    CHECK(msg, tfail_take() == 0);
    snprintf(msg, sizeof msg, "%s: stats exact after cross-thread frees", what);
    CHECK(msg, st.blocks_in_use == 0 && st.allocs == allocs && st.frees == allocs &&
                   st.failed_allocs == 0);
    snprintf(msg, sizeof msg, "%s: mp_pool_check", what);
    CHECK(msg, mp_pool_check(pool));
}

static void test_thread_cache_sizes(void)
{
    uint64_t ops = scaled_at_least(200000, 2000);
    mp_pool *pool = ts_pool("cache1", 32, 1, 0);
    if (CHECK("thread_cache 1: create", pool != NULL))
        mini_stress(pool, false, ops, "thread_cache 1");
    mp_pool_destroy(pool);

    /* A cache as large as a thread's whole working set: all of it parked in the thread until exit.
     * */
    enum { BIG = 100000 };
    pool = ts_pool("cache2^20", 16, (size_t)1 << 20, 0);
    if (CHECK("thread_cache 2^20: create", pool != NULL))
        mini_stress(pool, false, ops, "thread_cache 2^20");
    mp_pool_destroy(pool);
    pool = ts_pool("cache2^20", 16, (size_t)1 << 20, 0); /* one the main thread has no cache of */
    void **blocks = malloc(sizeof(void *) * BIG);
    if (CHECK("thread_cache 2^20: create", pool != NULL && blocks != NULL)) {
        job j = {.pool = pool, .size = 16, .blocks = blocks, .alloc = BIG, .free = BIG};
        thread_run(job_thread, &j);
        mp_stats st = stats_of(pool);
        CHECK("thread_cache 2^20: a thread's 100000 cached blocks are free after it exits",
              st.blocks_in_use == 0 && st.blocks_free == st.blocks_peak && st.frees == st.allocs);
        check_all_reusable(pool, 16, (size_t)1 << 19, blocks, BIG, "thread_cache 2^20");
    }
    mp_pool_destroy(pool);
    free(blocks);

    /*
     * SIZE_MAX: accepted (mempool.h lists no bound) and working. Through a source capped at
     * 64 MiB, so that a pool that tried to fill a cache of that size at once would be refused
     * memory rather than exhaust the machine's: handing out a few 24-byte blocks must not come
     * near that.
     */
    static counting_source capped;
    memset(&capped, 0, sizeof capped);
    capped.cap = (size_t)64 << 20;
    mp_source capped_src = counting_source_of(&capped);
    pool = mp_pool_create(&(mp_pool_opts){.block_size = 24,
                                          .flags = MP_THREAD_SAFE,
                                          .name = "cachemax",
                                          .source = &capped_src,
                                          .thread_cache = SIZE_MAX});
    if (CHECK("thread_cache SIZE_MAX: create", pool != NULL)) {
        mini_stress(pool, false, ops / 10, "thread_cache SIZE_MAX");
        mp_stats st = stats_of(pool);
        printf("  thread_cache SIZE_MAX: %" PRIu64 " allocs took %" PRIu64 " KiB from the source, "
               "%llu maps refused by its 64 MiB cap\n",
               st.allocs, st.bytes_reserved / 1024,
               (unsigned long long)atomic_load(&capped.refused));
        CHECK("thread_cache SIZE_MAX: a few thousand 24-byte blocks take far less than 64 MiB",
              atomic_load(&capped.refused) == 0);
    }
    mp_pool_destroy(pool);
    CHECK("thread_cache SIZE_MAX: all memory back", atomic_load(&capped.bytes_out) == 0);

    pool = mp_pool_create(&(mp_pool_opts){.block_size = 24, .thread_cache = 7});
    void *b = pool != NULL ? mp_pool_alloc(pool) : NULL;
    CHECK("thread_cache on a pool that is not thread-safe: accepted, works", b != NULL);
    mp_pool_free(pool, b);
    mp_pool_destroy(pool);
    CHECK("thread_cache: all memory back", source_all_back());
}

/* The error handler: counts each kind, keeps the last report. */
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long err_count[MP_ERR_CORRUPT_FREE_LIST + 1];
static mp_error err_last;

static void on_error(const mp_error *e, void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&err_lock);
    if ((unsigned)e->kind <= MP_ERR_CORRUPT_FREE_LIST)
        err_count[e->kind]++;
    err_last = *e;
    err_last.message = NULL;
    pthread_mutex_unlock(&err_lock);
}

/* The errors reported since the last call (all kinds), with the last one in *last. */
static unsigned long errors_take(mp_error *last, unsigned long *by_kind)
{
    pthread_mutex_lock(&err_lock);
    unsigned long n = 0;
    for (int k = 0; k <= MP_ERR_CORRUPT_FREE_LIST; k++) {
        n += err_count[k];
        if (by_kind != NULL)
            by_kind[k] = err_count[k];
        err_count[k] = 0;
    }
    if (last != NULL)
        *last = err_last;
    pthread_mutex_unlock(&err_lock);
    return n;
}

/* Frees one block in another thread. */
typedef struct free_job {
    mp_pool *pool;
    void *block;
} free_job;

static void *free_thread(void *arg)
{
    free_job *f = arg;
    mp_pool_free(f->pool, f->block);
    return NULL;
}

/* A double free across threads: allocated and freed in one thread, freed again in another. */
static void check_cross_double_free(mp_pool *pool, const char *what)
{
    void *b[1];
    job a = {.pool = pool, .size = mp_pool_block_size(pool), .blocks = b, .alloc = 1, .free = 1};
    thread_run(job_thread, &a);
    mp_stats before = stats_of(pool);
    free_job f = {pool, b[0]};
    thread_run(free_thread, &f);
    mp_error last;
    unsigned long kinds[MP_ERR_CORRUPT_FREE_LIST + 1];
    unsigned long n = errors_take(&last, kinds);
    char msg[160];
    snprintf(msg, sizeof msg, "%s: double free in another thread reported once, as a double free",
             what);
    CHECK(msg, n == 1 && kinds[MP_ERR_DOUBLE_FREE] == 1 && last.addr == b[0] && last.pool == pool);
    mp_stats after = stats_of(pool);
    snprintf(msg, sizeof msg, "%s: the double free is ignored (stats unchanged)", what);
    CHECK(msg, after.blocks_in_use == before.blocks_in_use && after.frees == before.frees &&
                   after.blocks_free == before.blocks_free);
}

/*
 * Each thread allocates K and frees them; once every thread has (a barrier: no thread allocates
 * afterwards, so no freed block can have been handed out again), each frees its K again, all
 * threads at once: K double frees each, all reported.
 */
enum { DF_THREADS = 4, DF_K = 50 };

static pthread_barrier_t df_bar;

static void *double_free_thread(void *arg)
{
    job *j = arg;
    bool ok = take_n(j->pool, j->size, j->blocks, DF_K, j->who);
    if (ok)
        give_n(j->pool, j->size, j->blocks, DF_K);
    pthread_barrier_wait(&df_bar);
    for (int i = 0; ok && i < DF_K; i++)
        mp_pool_free(j->pool, j->blocks[i]);
    return NULL;
}

static void test_checked(void)
{
    mp_pool *pool = ts_pool("ts-checked", 48, 0, MP_CHECKED);
    if (!CHECK("checked thread-safe: create", pool != NULL))
        return;
    mini_stress(pool, false, scaled_at_least(100000, 2000), "checked thread-safe");
    CHECK("checked thread-safe: correct use reports nothing", errors_take(NULL, NULL) == 0);
    check_cross_double_free(pool, "checked thread-safe");

    void *b[1];
    job a = {.pool = pool, .size = 48, .blocks = b, .alloc = 1};
    thread_run(job_thread, &a);
    free_job f = {pool, (char *)b[0] + 8};
    thread_run(free_thread, &f);
    mp_error last;
    unsigned long kinds[MP_ERR_CORRUPT_FREE_LIST + 1];
    unsigned long n = errors_take(&last, kinds);
    CHECK("checked thread-safe: an interior pointer freed in another thread: invalid free",
          n == 1 && kinds[MP_ERR_INVALID_FREE] == 1 && last.addr == (char *)b[0] + 8);

    if (!TEST_ASAN &&
        !TEST_ON_VALGRIND()) { /* the tools guard the canary: writing it is their report */
        ((unsigned char *)b[0])[48] ^= 0xFF; /* the first byte past the block */
        f.block = b[0];
        thread_run(free_thread, &f);
        n = errors_take(&last, kinds);
        CHECK("checked thread-safe: an overflow written in one thread found at free in another",
              n == 1 && kinds[MP_ERR_OVERFLOW] == 1 && last.addr == b[0]);
    } else {
        mp_pool_free(pool, b[0]);
    }

    job d[DF_THREADS];
    void *dblocks[DF_THREADS][DF_K];
    pthread_t t[DF_THREADS];
    for (uint32_t i = 0; i < DF_THREADS; i++)
        d[i] = (job){.pool = pool, .size = 48, .blocks = dblocks[i], .who = i};
    pthread_barrier_init(&df_bar, NULL, DF_THREADS);
    if (CHECK("checked thread-safe: start",
              threads_start(t, DF_THREADS, double_free_thread, d, sizeof d[0])))
        threads_join(t, DF_THREADS);
    pthread_barrier_destroy(&df_bar);
    n = errors_take(&last, kinds);
    CHECK("checked thread-safe: concurrent double frees in 4 threads each reported",
          n == DF_THREADS * DF_K && kinds[MP_ERR_DOUBLE_FREE] == DF_THREADS * DF_K);
    mp_stats st = stats_of(pool);
    CHECK("checked thread-safe: nothing in use after the ignored double frees",
          st.blocks_in_use == 0 && st.frees == st.allocs);

    /* A thread leaks 3 blocks and exits; the destroy reports them. */
    void *leaked[3];
    job l = {.pool = pool, .size = 48, .blocks = leaked, .alloc = 3};
    thread_run(job_thread, &l);
    mp_pool_destroy(pool);
    n = errors_take(&last, kinds);
    CHECK("checked thread-safe: 3 blocks leaked by an exited thread reported at destroy",
          n == 1 && kinds[MP_ERR_LEAK] == 1 && last.count == 3);
    CHECK("checked thread-safe: no thread failure", tfail_take() == 0);
    CHECK("checked thread-safe: all memory back", source_all_back());
}

static void test_secure(void)
{
    mp_pool *pool = ts_pool("ts-secure", 40, 0, MP_SECURE);
    if (!CHECK("secure thread-safe: create", pool != NULL))
        return;
    mini_stress(pool, false, scaled_at_least(100000, 2000), "secure thread-safe");
    CHECK("secure thread-safe: correct use reports nothing", errors_take(NULL, NULL) == 0);
    check_cross_double_free(pool, "secure thread-safe");
    mp_pool_destroy(pool);
    CHECK("secure thread-safe: all memory back", source_all_back());
}

static void test_zero(void)
{
    uint64_t ops = scaled_at_least(200000, 2000);
    mp_pool *pool = ts_pool("ts-zero", 72, 0, MP_ZERO);
    if (CHECK("zero thread-safe: create", pool != NULL))
        mini_stress(pool, true, ops, "zero thread-safe");
    mp_pool_destroy(pool);
    pool = ts_pool("ts-zero-cache1", 24, 1, MP_ZERO);
    if (CHECK("zero thread-safe, thread_cache 1: create", pool != NULL))
        mini_stress(pool, true, ops, "zero thread-safe, thread_cache 1");
    mp_pool_destroy(pool);
    pool = mp_pool_create(&(mp_pool_opts){.block_size = 100,
                                          .align = 4096,
                                          .capacity = 5000,
                                          .flags = MP_THREAD_SAFE | MP_ZERO,
                                          .name = "ts-zero-4096",
                                          .source = &g_src});
    if (CHECK("zero thread-safe, capacity, align 4096: create", pool != NULL)) {
        mini_stress(pool, true, ops / 4, "zero thread-safe, capacity, align 4096");
        void *b = mp_pool_alloc(pool);
        CHECK("zero thread-safe, align 4096: aligned", b != NULL && (uintptr_t)b % 4096 == 0);
        mp_pool_free(pool, b);
    }
    mp_pool_destroy(pool);
    CHECK("zero thread-safe: all memory back", source_all_back());
}

static void test_buffer_refused(void)
{
    static alignas(64) unsigned char buf[1 << 16];
    unsigned flag_sets[] = {0, MP_CHECKED, MP_ZERO};
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
        errno = 0;
        mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 32,
                                                       .buffer = buf,
                                                       .buffer_size = sizeof buf,
                                                       .flags = MP_THREAD_SAFE | flag_sets[i]});
        CHECK("MP_THREAD_SAFE with a buffer: NULL, EINVAL", pool == NULL && errno == EINVAL);
        mp_pool_destroy(pool);
    }
    mp_pool *pool =
        mp_pool_create(&(mp_pool_opts){.block_size = 32, .buffer = buf, .buffer_size = sizeof buf});
    CHECK("the same buffer without MP_THREAD_SAFE: accepted", pool != NULL);
    mp_pool_destroy(pool);
}

/*
 * mempool.h: alloc returns NULL (ENOMEM) "if and only if the pool holds `capacity` live blocks, or
 * the source could not give memory". So blocks another thread caches, free, cannot make an alloc
 * fail.
 */
/* A thread allocates n blocks of `size` bytes into theirs, frees them into its cache and parks;
 * meanwhile the main thread allocates up to n blocks into mine (the pool's stats before and after
 * that in *before and *after), then frees them and lets the thread exit. Returns how many the main
 * thread got, or -1 when the thread could not start. */
static long alloc_beside_parked(mp_pool *pool, size_t size, void **theirs, void **mine, uint32_t n,
                                mp_stats *before, mp_stats *after)
{
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    parked p = {{.pool = pool, .size = size, .blocks = theirs, .alloc = n, .free = n}, &bar};
    pthread_t t;
    long got = -1;
    if (threads_start(&t, 1, parked_thread, &p, 0)) {
        pthread_barrier_wait(&bar); /* it allocated n and freed them into its cache */
        *before = stats_of(pool);
        got = 0;
        while (got < (long)n && (mine[got] = mp_pool_alloc(pool)) != NULL)
            got++;
        *after = stats_of(pool);
        for (long i = got; i > 0; i--)
            mp_pool_free(pool, mine[i - 1]);
        pthread_barrier_wait(&bar);
        pthread_join(t, NULL);
    }
    pthread_barrier_destroy(&bar);
    tfail_take();
    return got;
}

static void test_capacity_not_lost_to_caches(void)
{
    enum { CAP = 10 };
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 32,
                                                   .capacity = CAP,
                                                   .flags = MP_THREAD_SAFE,
                                                   .name = "cap-cache",
                                                   .source = &g_src});
    if (!CHECK("capacity vs caches: create", pool != NULL))
        return;
    void *theirs[CAP], *mine[CAP];
    mp_stats st, after;
    long got = alloc_beside_parked(pool, 32, theirs, mine, CAP, &st, &after);
    if (got >= 0) {
        printf("  capacity %d, all %d free but cached by a parked thread: %" PRIu64
               " in use, the main thread got %ld\n",
               CAP, CAP, st.blocks_in_use, got);
        CHECK("capacity vs caches: with 0 blocks live, an alloc succeeds", got > 0);
        CHECK("capacity vs caches: all capacity blocks can be allocated by another thread",
              got == CAP);
    }
    mp_pool_destroy(pool);
}

/* What a parked thread's caches of a pool of `size`-byte blocks hold after it allocated and freed
 * n blocks, counted as the blocks the pool carved beyond the n another thread then allocates (that
 * thread's own partly used magazine counts too: at most half a cache). */
static uint64_t parked_cache_blocks(size_t size, uint32_t n)
{
    mp_pool *pool = ts_pool("held", size, 0, 0);
    void **theirs = calloc(n, sizeof *theirs), **mine = calloc(n, sizeof *mine);
    uint64_t held = UINT64_MAX;
    mp_stats before, after;
    if (pool != NULL && theirs != NULL && mine != NULL &&
        alloc_beside_parked(pool, size, theirs, mine, n, &before, &after) == (long)n)
        held = after.blocks_peak - n;
    mp_pool_destroy(pool);
    free(theirs);
    free(mine);
    return held;
}

/* A default cache holds at most 64 KiB of large blocks a thread, yet a batch of 1000 64-byte
 * blocks whole (the blocks a thread frees and allocates again never reach the pool's lock). */
static void test_cache_bytes_bounded(void)
{
    const bool cached = !TEST_ASAN && !TEST_ON_VALGRIND(); /* checked pools keep no caches */
    const size_t sizes[] = {1024, 4096};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint64_t held = parked_cache_blocks(sizes[i], 300);
        printf("  %zu-byte blocks: %" PRIu64 " carved beyond the live ones\n", sizes[i], held);
        char msg[120];
        snprintf(msg, sizeof msg, "cache bytes: %zu-byte blocks, at most 64 KiB cached a thread",
                 sizes[i]);
        CHECK(msg, held != UINT64_MAX && held * sizes[i] <= 64 * 1024 + 32 * 1024);
    }
    uint64_t small = parked_cache_blocks(64, 1000);
    CHECK("cache bytes: a parked thread keeps a batch of 1000 64-byte blocks",
          small != UINT64_MAX && (!cached || small >= 1000));
}

/* ------------------------------------------------------------------------------------------------
 * */

int main(int argc, char **argv)
{
    g_seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
    printf("test_threads: seed %" PRIu64 ", MP_TEST_SCALE %g\n", g_seed, test_scale());
    g_src = counting_source_of(&g_cs);
    mp_set_error_handler(on_error, NULL);

    printf("1. thread exit gives cached blocks back\n");
    test_exit_gives_back(10, false);
    test_exit_gives_back(1000, false);
    test_exit_gives_back(77, true);
    test_free_only_thread();
    test_one_word_depot();
    test_cacheless_thread(64);
    test_cacheless_thread(8);
    printf("2. trim and reset with a parked thread's cache\n");
    test_trim_reset_with_cache(false);
    test_trim_reset_with_cache(true);
    test_trim_after_exit();
    test_handover_grown();
    test_shelf_affinity();
    test_shelf_steal_newest();
    test_shelf_bound_and_trim();
    printf("3. destroy after use, many pools\n");
    test_destroy_after_use(true);
    test_destroy_after_use(false);
    test_pool_churn();
    test_many_pools();
    test_wide_table();
    test_all_ids_taken();
    printf("4. statistics while threads allocate\n");
    test_stats_while_allocating(2);
    test_stats_while_allocating(64);
    printf("5. options\n");
    test_thread_cache_sizes();
    test_checked();
    test_secure();
    test_zero();
    test_buffer_refused();
    test_capacity_not_lost_to_caches();
    test_cache_bytes_bounded();
    CHECK("no error reported outside the misuse cases", errors_take(NULL, NULL) == 0);
    return TEST_DONE();
}

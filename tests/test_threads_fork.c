/*
 * test_threads_fork.c: fork() and thread-safe pools and heaps (MP_THREAD_SAFE). The library takes
 * every lock it has around fork() (pthread_atfork) and, in the child, gives back the caches of the
 * threads that did not survive, so the child can go on using its pools and heaps and make new ones.
 *
 * Usage: test_threads_fork [SEED]   (SEED, default 1, drives the hammering threads; printed)
 *
 * The children of 1. to 3. below run the same routine (child_main) and report through their exit
 * status, one bit per failed step (child_fail_names); the parent CHECKs that each child exited
 * with 0. A child that deadlocks on a lock left held by fork() is killed by an alarm after 120 s
 * (a hang guard, not a timing assertion; 5 s in 4.) and reported as such. The child:
 *   - verifies and frees the blocks the parent's threads had put in the exchange (live at the
 *     fork, their contents intact in the child's copy);
 *   - allocates 1000 blocks from the same pool, all distinct and intact, frees them: the
 *     statistics move by exactly that (allocs + 1000, blocks_in_use back where it was), their
 *     invariants hold and mp_pool_check() is true;
 *   - starts a thread that uses the pool and a new thread-safe pool, and exits; the new pool's
 *     statistics are exact; destroys both pools.
 * The parent forks:
 *   1. with no other thread running (the main thread holds blocks and a cache; the child also
 *      forks a grandchild);
 *   2. 12 times while 4 threads hammer the pool (a 2-block cache, so the lock is always busy, and
 *      the default cache), each fork after the hammers made progress since the last;
 *   3. from one of the hammering threads rather than the main thread;
 *   4. 100 times (scaled, at least 20) while 4 threads hammer every kind of object: the pool, a
 *      thread-safe heap and mp_malloc's (class, large and aligned blocks, stats, trim), and each
 *      thread's own plain pool and arena. That child (every_child) uses every object the main
 *      thread can, and a new heap and pool, within 5 s.
 * Afterwards the parent's objects are exact: the children changed nothing in them.
 * Runs in one to four seconds in a Release build for 1. to 3., most of it the hammering threads
 * running, and 4. in about ten to thirty, most of it in fork() and the children.
 */
#define _POSIX_C_SOURCE 200809L

#include "threads.h"

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * ThreadSanitizer does not support starting threads in the child of a multi-threaded fork (it
 * dies by default, and with die_after_fork=0 its thread registry breaks: "dup thread with used
 * id"), although glibc does. Under TSan such a child therefore skips its thread; the child of a
 * single-threaded fork still starts one.
 */
#if TEST_TSAN
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}
#endif

static uint64_t g_seed = 1;

/* In the child of a fork() from a multi-threaded process: the blocks the other threads held only in
 * their registers (and glibc's records of the forking thread) can no longer be reached, which
 * memcheck would report as leaks at the child's exit: no leak check there. */
static void child_no_leak_check(void)
{
#if TEST_VALGRIND
    if (RUNNING_ON_VALGRIND)
        VALGRIND_CLO_CHANGE("--leak-check=no");
#endif
}

enum { BSIZE = 56, SLOTS = 256, CHILD_N = 1000, HAMMERS = 4, CHILD_DEADLINE = 120 };

typedef struct shared {
    mp_pool *pool;
    _Atomic(void *) slots[SLOTS]; /* live blocks passed between threads */
    atomic_bool stop;
    atomic_uint_fast64_t progress[HAMMERS];
    atomic_int forks_from_thread; /* > 0: hammer 0 forks this many times */
} shared;

static shared sh;

/* ------------------------------------------------------------------------------------------------
 * The child
 * ---------------------------------------------------------------------------------------------- */

enum {
    CF_SLOT_BLOCK = 1 << 0, /* a block from the exchange was corrupted */
    CF_ALLOC = 1 << 1,      /* an alloc failed */
    CF_DISTINCT = 1 << 2,   /* two allocs returned the same block, or a block was overwritten */
    CF_STATS = 1 << 3,      /* statistics did not move by exactly the child's work */
    CF_CHECK = 1 << 4,      /* mp_pool_check false */
    CF_THREAD = 1 << 5,     /* the child's thread failed, or could not start */
    CF_NEW_POOL = 1 << 6,   /* the new pool failed, or its statistics were wrong */
    CF_GRANDCHILD = 1 << 7, /* a grandchild failed */
};

static const char *const child_fail_names[] = {
    "exchange block corrupted", "alloc failed",  "blocks not distinct", "stats not exact",
    "mp_pool_check false",      "thread failed", "new pool wrong",      "grandchild failed",
};

static bool stats_invariants(const mp_stats *st)
{
    return st->frees <= st->allocs && st->allocs - st->frees == st->blocks_in_use &&
           st->blocks_in_use <= st->blocks_peak && st->bytes_used <= st->bytes_reserved;
}

/* Allocates n stamped blocks, checks them, frees them. 0 or CF_* bits. */
static int child_churn(mp_pool *pool, size_t n, uint32_t who)
{
    void **b = malloc(sizeof(void *) * n);
    if (b == NULL)
        return CF_ALLOC;
    int fail = 0;
    size_t got = 0;
    for (; got < n; got++) {
        if ((b[got] = mp_pool_alloc(pool)) == NULL) {
            fail |= CF_ALLOC;
            break;
        }
        block_fill(b[got], BSIZE, stamp_make(who, got + 1));
    }
    for (size_t i = 0; i < got; i++) {
        uint64_t stamp;
        if (!block_verify(b[i], BSIZE, &stamp) || stamp != stamp_make(who, i + 1))
            fail |= CF_DISTINCT;
        mp_pool_free(pool, b[i]);
    }
    free(b);
    return fail;
}

typedef struct child_thread_arg {
    mp_pool *old_pool, *new_pool;
    int fail;
} child_thread_arg;

static void *child_thread(void *arg)
{
    child_thread_arg *a = arg;
    a->fail |= child_churn(a->old_pool, CHILD_N, 900);
    a->fail |= child_churn(a->new_pool, CHILD_N, 901) ? CF_NEW_POOL : 0;
    return NULL;
}

static int wait_child(pid_t pid);

/* The whole child; returns its exit status. parent_had_threads: other threads ran at the fork. */
static int child_main(mp_pool *pool, bool fork_grandchild, bool parent_had_threads)
{
    alarm(CHILD_DEADLINE);
    if (parent_had_threads)
        child_no_leak_check();
    int fail = 0;
    for (size_t i = 0; i < SLOTS; i++) {
        void *b = atomic_exchange(&sh.slots[i], NULL);
        if (b == NULL)
            continue;
        if (!block_verify(b, BSIZE, NULL))
            fail |= CF_SLOT_BLOCK;
        mp_pool_free(pool, b);
    }
    mp_stats st0, st1;
    if (mp_pool_stats(pool, &st0) != 0 || !stats_invariants(&st0))
        fail |= CF_STATS;
    fail |= child_churn(pool, CHILD_N, 800);
    if (mp_pool_stats(pool, &st1) != 0 || !stats_invariants(&st1) ||
        st1.allocs != st0.allocs + CHILD_N || st1.blocks_in_use != st0.blocks_in_use)
        fail |= CF_STATS;
    if (!mp_pool_check(pool))
        fail |= CF_CHECK;

    child_thread_arg a = {pool,
                          mp_pool_create(&(mp_pool_opts){
                              .block_size = BSIZE, .flags = MP_THREAD_SAFE, .name = "child"}),
                          0};
    if (a.new_pool == NULL)
        fail |= CF_NEW_POOL;
    else if (TEST_TSAN && parent_had_threads)
        child_thread(&a); /* in this thread: see __tsan_default_options above */
    else if (!thread_run(child_thread, &a))
        fail |= CF_THREAD;
    if (a.new_pool != NULL) {
        fail |= a.fail;
        mp_stats st;
        if (mp_pool_stats(a.new_pool, &st) != 0 || st.allocs != CHILD_N || st.blocks_in_use != 0 ||
            st.blocks_free != st.blocks_peak || !mp_pool_check(a.new_pool))
            fail |= CF_NEW_POOL;
        if (mp_pool_stats(pool, &st1) != 0 || st1.allocs != st0.allocs + 2 * CHILD_N ||
            st1.blocks_in_use != st0.blocks_in_use)
            fail |= CF_STATS;
    }
    if (fork_grandchild) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(child_main(pool, false, parent_had_threads));
        if (pid < 0 || wait_child(pid) != 0)
            fail |= CF_GRANDCHILD;
    }
    mp_pool_destroy(a.new_pool);
    mp_pool_destroy(pool);
    return fail;
}

/* Waits for a child; its exit status, or 256 + the signal that killed it. */
static int wait_child(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return 512;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 256 + WTERMSIG(status) : 512;
}

/* Forks, runs the child routine in the child; returns the child's result (wait_child). */
static int fork_and_wait(bool grandchild, bool threads_running)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return 1024;
    if (pid == 0)
        _exit(child_main(sh.pool, grandchild, threads_running));
    return wait_child(pid);
}

/* Explains a child's result on stdout (parent side): names[i] for bit i of its exit status, and
 * the child's alarm after `deadline` seconds. */
static void report_child(int r, const char *when, const char *const names[8], int deadline)
{
    if (r == 0)
        return;
    if (r == 256 + SIGALRM)
        printf("  child (%s) hung for %d s: a lock left held across fork()?\n", when, deadline);
    else if (r > 256)
        printf("  child (%s) killed by signal %d\n", when, r - 256);
    else
        for (int i = 0; i < 8; i++)
            if (r & (1 << i))
                printf("  child (%s): %s\n", when, names[i]);
}

/* ------------------------------------------------------------------------------------------------
 * The parent's threads
 * ---------------------------------------------------------------------------------------------- */

typedef struct hammer {
    uint32_t no;
    uint64_t allocs;
    int fork_results; /* OR of the results of this thread's forks */
} hammer;

static void hammer_release(void *b)
{
    if (!block_verify(b, BSIZE, NULL))
        tfail("hammer: block %p corrupted", b);
    mp_pool_free(sh.pool, b);
}

static void *hammer_thread(void *arg)
{
    hammer *h = arg;
    rng r = rng_make(g_seed, h->no);
    enum { LOCAL = 16 };
    void *local[LOCAL];
    uint32_t n = 0;
    while (!atomic_load_explicit(&sh.stop, memory_order_relaxed)) {
        uint32_t c = rng_below(&r, 100);
        if ((c < 50 && n < LOCAL) || n == 0) {
            void *b = mp_pool_alloc(sh.pool);
            if (b == NULL) {
                tfail("hammer: alloc failed (errno %d)", errno);
                continue;
            }
            block_fill(b, BSIZE, stamp_make(h->no, ++h->allocs));
            local[n++] = b;
            if (h->no == 0 && (h->allocs & 1023) == 0 && atomic_load(&sh.forks_from_thread) > 0) {
                atomic_fetch_sub(&sh.forks_from_thread, 1);
                h->fork_results |= fork_and_wait(false, true);
            }
        } else {
            uint32_t k = rng_below(&r, n);
            void *b = local[k];
            local[k] = local[--n];
            if (c < 75)
                b = atomic_exchange(&sh.slots[rng_below(&r, SLOTS)], b);
            if (b != NULL)
                hammer_release(b);
        }
        atomic_fetch_add_explicit(&sh.progress[h->no], 1, memory_order_relaxed);
    }
    while (n > 0)
        hammer_release(local[--n]);
    return NULL;
}

/* Waits until every hammer has made `ops` more operations (yielding; no clock involved). */
static void await_progress(uint64_t ops)
{
    uint64_t start[HAMMERS];
    for (int i = 0; i < HAMMERS; i++)
        start[i] = atomic_load(&sh.progress[i]);
    for (int i = 0; i < HAMMERS; i++)
        while (atomic_load(&sh.progress[i]) - start[i] < ops)
            sched_yield();
}

static uint64_t drain_slots(void)
{
    uint64_t n = 0;
    for (size_t i = 0; i < SLOTS; i++) {
        void *b = atomic_exchange(&sh.slots[i], NULL);
        if (b != NULL) {
            hammer_release(b);
            n++;
        }
    }
    return n;
}

static bool setup(size_t thread_cache, const char *name)
{
    memset(&sh, 0, sizeof sh);
    for (size_t i = 0; i < SLOTS; i++)
        atomic_init(&sh.slots[i], NULL);
    sh.pool = mp_pool_create(&(mp_pool_opts){
        .block_size = BSIZE, .flags = MP_THREAD_SAFE, .name = name, .thread_cache = thread_cache});
    return CHECK("fork: create the pool", sh.pool != NULL);
}

/* ------------------------------------------------------------------------------------------------
 * 1. No other thread
 * ---------------------------------------------------------------------------------------------- */

static void test_fork_single(void)
{
    if (!setup(0, "single"))
        return;
    /* The main thread holds 100 blocks, 50 of them in the exchange, and a cache. */
    void *held[50];
    for (int i = 0; i < 100; i++) {
        void *b = mp_pool_alloc(sh.pool);
        if (b == NULL)
            break;
        block_fill(b, BSIZE, stamp_make(7, (uint64_t)i + 1));
        if (i < 50)
            held[i] = b;
        else
            atomic_store(&sh.slots[i], b);
    }
    void *spare[20];
    for (int i = 0; i < 20; i++)
        spare[i] = mp_pool_alloc(sh.pool);
    for (int i = 0; i < 20; i++)
        mp_pool_free(sh.pool, spare[i]);
    mp_stats before = stats_of(sh.pool);
    int r = fork_and_wait(true, false);
    report_child(r, "no other thread", child_fail_names, CHILD_DEADLINE);
    CHECK("fork, no other thread: the child (and a grandchild) used the pool and a new one, exit 0",
          r == 0);
    mp_stats after = stats_of(sh.pool);
    CHECK("fork, no other thread: the parent's pool is as before",
          after.allocs == before.allocs && after.blocks_in_use == before.blocks_in_use &&
              after.blocks_in_use == 100);
    for (int i = 0; i < 50; i++)
        hammer_release(held[i]);
    CHECK("fork, no other thread: the parent's blocks intact",
          drain_slots() == 50 && tfail_take() == 0);
    after = stats_of(sh.pool);
    CHECK("fork, no other thread: parent exact at the end",
          after.blocks_in_use == 0 && after.allocs == 120);
    CHECK("fork, no other thread: mp_pool_check", mp_pool_check(sh.pool));
    mp_pool_destroy(sh.pool);
}

/* ------------------------------------------------------------------------------------------------
 * 2 and 3. Forks while threads hammer the pool
 * ---------------------------------------------------------------------------------------------- */

static void test_fork_hammered(size_t thread_cache, int forks, bool from_thread)
{
    char what[96];
    snprintf(what, sizeof what, "fork %s while %d threads hammer (thread_cache %zu)",
             from_thread ? "from a hammering thread" : "from the main thread", HAMMERS,
             thread_cache);
    if (!setup(thread_cache, "hammered"))
        return;
    hammer h[HAMMERS];
    pthread_t t[HAMMERS];
    for (uint32_t i = 0; i < HAMMERS; i++)
        h[i] = (hammer){.no = i};
    if (from_thread)
        atomic_store(&sh.forks_from_thread, forks);
    if (!CHECK("fork: start the hammers",
               threads_start(t, HAMMERS, hammer_thread, h, sizeof h[0]))) {
        mp_pool_destroy(sh.pool);
        return;
    }
    int results = 0, failed = 0;
    if (from_thread) {
        while (atomic_load(&sh.forks_from_thread) > 0)
            sched_yield();
    } else {
        for (int i = 0; i < forks; i++) {
            await_progress(2000);
            int r = fork_and_wait(false, true);
            report_child(r, what, child_fail_names, CHILD_DEADLINE);
            results |= r;
            failed += r != 0;
        }
    }
    await_progress(1000);
    atomic_store(&sh.stop, true);
    threads_join(t, HAMMERS);
    uint64_t allocs = 0;
    for (int i = 0; i < HAMMERS; i++) {
        allocs += h[i].allocs;
        results |= h[i].fork_results;
    }
    if (from_thread) {
        report_child(h[0].fork_results, what, child_fail_names, CHILD_DEADLINE);
        failed = h[0].fork_results != 0;
    }
    drain_slots();
    char msg[160];
    snprintf(msg, sizeof msg, "%s: every child exit 0 (%d of %d runs failed)", what, failed, forks);
    CHECK(msg, results == 0);
    snprintf(msg, sizeof msg, "%s: parent's blocks intact", what);
    CHECK(msg, tfail_take() == 0);
    mp_stats st = stats_of(sh.pool);
    snprintf(msg, sizeof msg, "%s: parent exact at the end (%" PRIu64 " allocs)", what, allocs);
    CHECK(msg, st.blocks_in_use == 0 && st.allocs == allocs && st.frees == allocs &&
                   st.failed_allocs == 0);
    snprintf(msg, sizeof msg, "%s: mp_pool_check", what);
    CHECK(msg, mp_pool_check(sh.pool));
    mp_pool_destroy(sh.pool);
}

/* ------------------------------------------------------------------------------------------------
 * 4. Forks while threads hammer every kind of object
 *
 * Around fork() the library takes every lock it has, the thread-safe heaps' own included (their
 * large blocks, aligned allocations, stats and trim take it), so the child can use every object.
 * Plain pools and arenas are not thread-safe: each thread has its own, and the child uses the main
 * thread's (whole at the fork, since the main thread forks). Hammer 0 runs the loop that found the
 * bug: mp_free(mp_malloc(1 MiB)), and the same on the shared heap.
 * ---------------------------------------------------------------------------------------------- */

enum { LARGE = 1 << 20, LARGE_ALIGN = 1 << 16, EVERY_DEADLINE = 5, EVERY_N = 100 };

typedef struct every {
    mp_heap *heap;   /* thread-safe, shared (the thread-safe pool is sh.pool) */
    mp_pool *pool;   /* the main thread's plain pool */
    mp_arena *arena; /* the main thread's arena */
} every;

static every ev;

enum {
    EF_TS_POOL = 1 << 0, /* the thread-safe pool failed an alloc, a check or its statistics */
    EF_POOL = 1 << 1,    /* the main thread's plain pool, the same */
    EF_HEAP = 1 << 2,    /* the shared heap: an alloc (class, large or aligned) or its statistics */
    EF_DEFAULT = 1 << 3, /* mp_malloc's heap, the same */
    EF_ARENA = 1 << 4,   /* the main thread's arena or a new one */
    EF_NEW = 1 << 5,     /* a heap or thread-safe pool made in the child */
};

static const char *const every_fail_names[] = {
    "thread-safe pool wrong",
    "plain pool wrong",
    "heap wrong",
    "mp_malloc's heap wrong",
    "arena wrong",
    "new heap or pool wrong",
    "",
    "",
};

/* Allocates and frees a stamped block of `size` (>= 64) from `heap` (aligned to `align` if not 0);
 * false if the alloc failed or the block came back changed. */
static bool heap_round(mp_heap *heap, size_t size, size_t align, uint64_t stamp)
{
    void *b = align != 0 ? mp_heap_aligned_alloc(heap, align, size) : mp_heap_alloc(heap, size);
    if (b == NULL || (align != 0 && (uintptr_t)b % align != 0))
        return false;
    block_fill(b, 64, stamp);
    bool ok = block_verify(b, 64, NULL);
    mp_heap_free(heap, b);
    return ok;
}

/* The child's use of a heap: blocks of every kind held at once, counted exactly by the statistics
 * (no other thread runs), all freed, the heap trimmed. */
static bool child_heap(mp_heap *heap, bool via_malloc)
{
    struct mp_heap_stats s0, s1, s2;
    if (mp_heap_stats(heap, &s0) != 0)
        return false;
    void *large = via_malloc ? mp_malloc(LARGE) : mp_heap_alloc(heap, LARGE);
    void *small = mp_heap_alloc(heap, 100);
    void *mid = mp_heap_alloc(heap, 20000);
    void *aligned = mp_heap_aligned_alloc(heap, LARGE_ALIGN, 1000);
    bool ok = large != NULL && small != NULL && mid != NULL && aligned != NULL;
    if (large != NULL) { /* its first and last pages */
        memset(large, 0xA5, 4096);
        memset((char *)large + LARGE - 4096, 0xA5, 4096);
    }
    ok = ok && mp_heap_stats(heap, &s1) == 0 && s1.blocks_in_use == s0.blocks_in_use + 4 &&
         s1.large_in_use == s0.large_in_use + 2 && s1.allocs == s0.allocs + 4;
    if (via_malloc)
        mp_free(large);
    else
        mp_heap_free(heap, large);
    mp_heap_free(heap, small);
    mp_heap_free(heap, mid);
    mp_heap_free(heap, aligned);
    (void)mp_heap_trim(heap);
    ok = ok && mp_heap_stats(heap, &s2) == 0 && s2.blocks_in_use == s0.blocks_in_use &&
         s2.large_in_use == s0.large_in_use && s2.large_cached == 0 && s2.frees == s0.frees + 4;
    return ok && heap_round(heap, LARGE, 0, 1);
}

/* The child's use of a pool: blocks held at once, exact statistics, the pool's check. */
static bool child_pool(mp_pool *pool)
{
    mp_stats st0, st1;
    return mp_pool_stats(pool, &st0) == 0 && child_churn(pool, EVERY_N, 700) == 0 &&
           mp_pool_stats(pool, &st1) == 0 && st1.allocs == st0.allocs + EVERY_N &&
           st1.blocks_in_use == st0.blocks_in_use && mp_pool_check(pool);
}

static bool child_arena(mp_arena *arena)
{
    mp_arena *mine = mp_arena_create(NULL);
    bool ok = mine != NULL;
    for (int i = 0; ok && i < EVERY_N; i++) {
        void *a = mp_arena_alloc(arena, 1000), *b = mp_arena_alloc(mine, 1000);
        ok = a != NULL && b != NULL;
        if (ok) {
            memset(a, i, 1000);
            memset(b, i, 1000);
        }
    }
    mp_arena_destroy(mine);
    return ok;
}

/* A thread-safe heap and pool made in the child, used and destroyed. */
static bool child_new_objects(void)
{
    mp_heap *heap = mp_heap_create(&(mp_heap_opts){.flags = MP_THREAD_SAFE, .name = "child"});
    mp_pool *pool = mp_pool_create(
        &(mp_pool_opts){.block_size = BSIZE, .flags = MP_THREAD_SAFE, .name = "child"});
    bool ok = heap != NULL && pool != NULL && child_heap(heap, false) && child_pool(pool);
    mp_pool_destroy(pool);
    mp_heap_destroy(heap);
    return ok;
}

/* The whole child of test_fork_every; its exit status (EF_* bits). */
static int every_child(void)
{
    alarm(EVERY_DEADLINE);
    child_no_leak_check();
    int fail = 0;
    fail |= child_heap(mp_default_heap(), true) ? 0 : EF_DEFAULT;
    fail |= child_heap(ev.heap, false) ? 0 : EF_HEAP;
    fail |= child_pool(sh.pool) ? 0 : EF_TS_POOL;
    fail |= child_pool(ev.pool) ? 0 : EF_POOL;
    fail |= child_arena(ev.arena) ? 0 : EF_ARENA;
    fail |= child_new_objects() ? 0 : EF_NEW;
    return fail;
}

typedef struct every_hammer {
    uint32_t no;
    uint64_t ops;
} every_hammer;

/* One operation of a hammer on one object; each block is freed before the next operation. */
static void every_op(every_hammer *h, rng *r, mp_pool *pool, mp_arena *arena)
{
    uint64_t stamp = stamp_make(h->no, ++h->ops);
    bool ok = true;
    uint32_t op = h->no == 0 ? (uint32_t)(h->ops & 1) : rng_below(r, 10);
    switch (op) {
    case 0: { /* the loop: a large block of mp_malloc's heap */
        void *b = mp_malloc(LARGE);
        ok = b != NULL;
        mp_free(b);
        break;
    }
    case 1:
        ok = heap_round(ev.heap, LARGE, 0, stamp);
        break;
    case 2:
        ok = heap_round(ev.heap, 64 + rng_below(r, 300000), 0, stamp) &&
             heap_round(mp_default_heap(), 64 + rng_below(r, 5000), 0, stamp);
        break;
    case 3:
        ok = heap_round(ev.heap, 1000, LARGE_ALIGN, stamp) &&
             heap_round(mp_default_heap(), 100, 4096, stamp);
        break;
    case 4: {
        struct mp_heap_stats s;
        ok = mp_heap_stats(rng_below(r, 2) ? ev.heap : mp_default_heap(), &s) == 0;
        break;
    }
    case 5:
        if (rng_below(r, 20) == 0)
            (void)mp_heap_trim(rng_below(r, 2) ? ev.heap : mp_default_heap());
        break;
    case 6:
    case 7: {
        mp_pool *p = op == 6 ? sh.pool : pool;
        void *b = mp_pool_alloc(p);
        ok = b != NULL;
        if (ok) {
            block_fill(b, BSIZE, stamp);
            ok = block_verify(b, BSIZE, NULL);
            mp_pool_free(p, b);
        }
        break;
    }
    default:
        if ((h->ops & 1023) == 0)
            mp_arena_reset(arena);
        ok = mp_arena_alloc(arena, 1 + rng_below(r, 2000)) != NULL;
        break;
    }
    if (!ok)
        tfail("every hammer %u: operation %u failed (errno %d)", h->no, op, errno);
}

static void *every_hammer_thread(void *arg)
{
    every_hammer *h = arg;
    rng r = rng_make(g_seed, 100 + h->no);
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = BSIZE, .name = "own"});
    mp_arena *arena = mp_arena_create(NULL);
    if (pool == NULL || arena == NULL)
        tfail("every hammer %u: no pool or arena", h->no);
    while (pool != NULL && arena != NULL && !atomic_load_explicit(&sh.stop, memory_order_relaxed)) {
        every_op(h, &r, pool, arena);
        atomic_fetch_add_explicit(&sh.progress[h->no], 1, memory_order_relaxed);
    }
    mp_pool_destroy(pool);
    mp_arena_destroy(arena);
    return NULL;
}

/* Forks while the hammers run; the OR of the children's results, failed ones counted in *failed. */
static int every_forks(int forks, int *failed)
{
    int results = 0;
    for (int i = 0; i < forks; i++) {
        await_progress(100);
        void *mine = mp_pool_alloc(ev.pool); /* the main thread's own objects, between forks */
        (void)mp_arena_alloc(ev.arena, 100);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0)
            _exit(every_child());
        int r = pid < 0 ? 1024 : wait_child(pid);
        mp_pool_free(ev.pool, mine);
        report_child(r, "fork while threads hammer every object", every_fail_names, EVERY_DEADLINE);
        results |= r;
        *failed += r != 0;
    }
    return results;
}

static void test_fork_every(int forks)
{
    if (!setup(0, "every ts"))
        return;
    ev.heap = mp_heap_create(&(mp_heap_opts){.flags = MP_THREAD_SAFE, .name = "every"});
    ev.pool = mp_pool_create(&(mp_pool_opts){.block_size = BSIZE, .name = "main"});
    ev.arena = mp_arena_create(NULL);
    every_hammer h[HAMMERS];
    pthread_t t[HAMMERS];
    for (uint32_t i = 0; i < HAMMERS; i++)
        h[i] = (every_hammer){.no = i};
    if (CHECK("fork every object: create the heap, pool and arena",
              ev.heap != NULL && ev.pool != NULL && ev.arena != NULL) &&
        CHECK("fork every object: start the hammers",
              threads_start(t, HAMMERS, every_hammer_thread, h, sizeof h[0]))) {
        int failed = 0, results = every_forks(forks, &failed);
        atomic_store(&sh.stop, true);
        threads_join(t, HAMMERS);
        char msg[160];
        snprintf(msg, sizeof msg,
                 "fork every object: every child used every object and exited 0 "
                 "within %d s (%d of %d failed)",
                 EVERY_DEADLINE, failed, forks);
        CHECK(msg, results == 0);
        CHECK("fork every object: the hammers' operations all succeeded", tfail_take() == 0);
        struct mp_heap_stats s;
        CHECK("fork every object: the parent's heap is exact at the end",
              mp_heap_stats(ev.heap, &s) == 0 && s.blocks_in_use == 0 && s.large_in_use == 0 &&
                  s.allocs == s.frees);
        mp_stats st = stats_of(sh.pool);
        CHECK("fork every object: the parent's pools are exact at the end",
              st.blocks_in_use == 0 && mp_pool_check(sh.pool) && mp_pool_check(ev.pool) &&
                  stats_of(ev.pool).blocks_in_use == 0);
    }
    mp_arena_destroy(ev.arena);
    mp_pool_destroy(ev.pool);
    mp_heap_destroy(ev.heap);
    mp_pool_destroy(sh.pool);
}

int main(int argc, char **argv)
{
    g_seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
    int forks = (int)scaled_at_least(12, 3);
    printf("test_threads_fork: seed %" PRIu64 ", %d forks per hammered run\n", g_seed, forks);
    printf("1. fork with no other thread\n");
    test_fork_single();
    printf("2. fork while threads hammer the pool\n");
    test_fork_hammered(2, forks, false);
    test_fork_hammered(0, forks, false);
    printf("3. fork from a hammering thread\n");
    test_fork_hammered(2, (forks + 1) / 2, true);
    printf("4. fork while threads hammer every kind of object\n");
    test_fork_every((int)scaled_at_least(100, 20));
    return TEST_DONE();
}

/*
 * test_threads_fork.c: fork() and thread-safe pools (MP_THREAD_SAFE). The library takes every
 * pool's lock around fork() (pthread_atfork) and, in the child, gives back the caches of the
 * threads that did not survive, so the child can go on using its pools and make new ones.
 *
 * Usage: test_threads_fork [SEED]   (SEED, default 1, drives the hammering threads; printed)
 *
 * Every child runs the same routine (child_main) and reports through its exit status, one bit per
 * failed step (child_fail_names); the parent CHECKs that each child exited with 0. A child that
 * deadlocks on a lock left held by fork() is killed by an alarm after 120 s (a hang guard, not a
 * timing assertion) and reported as such. The child:
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
 *   3. from one of the hammering threads rather than the main thread.
 * Afterwards the parent's pool is exact: the children changed nothing in it.
 * Runs in one to four seconds in a Release build, most of it the hammering threads running.
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

enum { BSIZE = 56, SLOTS = 256, CHILD_N = 1000, HAMMERS = 4 };

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
    CF_SLOT_BLOCK = 1 << 0,  /* a block from the exchange was corrupted */
    CF_ALLOC = 1 << 1,       /* an alloc failed */
    CF_DISTINCT = 1 << 2,    /* two allocs returned the same block, or a block was overwritten */
    CF_STATS = 1 << 3,       /* statistics did not move by exactly the child's work */
    CF_CHECK = 1 << 4,       /* mp_pool_check false */
    CF_THREAD = 1 << 5,      /* the child's thread failed, or could not start */
    CF_NEW_POOL = 1 << 6,    /* the new pool failed, or its statistics were wrong */
    CF_GRANDCHILD = 1 << 7,  /* a grandchild failed */
};

static const char *const child_fail_names[] = {
    "exchange block corrupted", "alloc failed", "blocks not distinct", "stats not exact",
    "mp_pool_check false", "thread failed", "new pool wrong", "grandchild failed",
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
    alarm(120);
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

    child_thread_arg a = {pool, mp_pool_create(&(mp_pool_opts){.block_size = BSIZE,
                                                               .flags = MP_THREAD_SAFE,
                                                               .name = "child"}), 0};
    pthread_t t;
    if (a.new_pool == NULL)
        fail |= CF_NEW_POOL;
    else if (TEST_TSAN && parent_had_threads)
        child_thread(&a); /* in this thread: see __tsan_default_options above */
    else if (pthread_create(&t, NULL, child_thread, &a) != 0)
        fail |= CF_THREAD;
    else
        pthread_join(t, NULL);
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

/* Explains a child's result on stdout (parent side). */
static void report_child(int r, const char *when)
{
    if (r == 0)
        return;
    if (r == 256 + SIGALRM)
        printf("  child (%s) hung for 120 s: a lock left held across fork()?\n", when);
    else if (r > 256)
        printf("  child (%s) killed by signal %d\n", when, r - 256);
    else
        for (int i = 0; i < 8; i++)
            if (r & (1 << i))
                printf("  child (%s): %s\n", when, child_fail_names[i]);
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
    sh.pool = mp_pool_create(&(mp_pool_opts){.block_size = BSIZE, .flags = MP_THREAD_SAFE,
                                             .name = name, .thread_cache = thread_cache});
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
    report_child(r, "no other thread");
    CHECK("fork, no other thread: the child (and a grandchild) used the pool and a new one, exit 0", r == 0);
    mp_stats after = stats_of(sh.pool);
    CHECK("fork, no other thread: the parent's pool is as before",
          after.allocs == before.allocs && after.blocks_in_use == before.blocks_in_use &&
              after.blocks_in_use == 100);
    for (int i = 0; i < 50; i++)
        hammer_release(held[i]);
    CHECK("fork, no other thread: the parent's blocks intact", drain_slots() == 50 && tfail_take() == 0);
    after = stats_of(sh.pool);
    CHECK("fork, no other thread: parent exact at the end", after.blocks_in_use == 0 && after.allocs == 120);
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
             from_thread ? "from a hammering thread" : "from the main thread", HAMMERS, thread_cache);
    if (!setup(thread_cache, "hammered"))
        return;
    hammer h[HAMMERS];
    pthread_t t[HAMMERS];
    for (uint32_t i = 0; i < HAMMERS; i++)
        h[i] = (hammer){.no = i};
    if (from_thread)
        atomic_store(&sh.forks_from_thread, forks);
    if (!CHECK("fork: start the hammers", threads_start(t, HAMMERS, hammer_thread, h, sizeof h[0]))) {
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
            report_child(r, what);
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
        report_child(h[0].fork_results, what);
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
    CHECK(msg, st.blocks_in_use == 0 && st.allocs == allocs && st.frees == allocs && st.failed_allocs == 0);
    snprintf(msg, sizeof msg, "%s: mp_pool_check", what);
    CHECK(msg, mp_pool_check(sh.pool));
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
    return TEST_DONE();
}

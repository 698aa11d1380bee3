/*
 * test_threads_stress.c: thread-safe pools (MP_THREAD_SAFE) under load from many threads, checked
 * block by block and with exact statistics at the end.
 *
 * Usage: test_threads_stress [SEED [OPS]]
 *   SEED  seeds every thread's generator (default 1); printed, with the line that replays the run
 *   OPS   operations of part 1 over all threads and pool shapes (default 40,000,000 times
 *         MP_TEST_SCALE, each an alloc with a fill or a verify with a free; parts 2 and 3 scale
 *         with MP_TEST_SCALE too). A soak: MP_TEST_SCALE=10, or a larger OPS.
 * The seed fixes each thread's choices; the interleaving is the machine's, so a failure names the
 * seed and the part, and a rerun with the same seed exercises the same mix.
 *
 * 1. Stress. For each of three pool shapes (48-byte blocks with the default thread cache, 24-byte
 *    blocks with a 3-block cache so the locked path is hot, 200-byte blocks aligned to 64), rounds
 *    of 8 threads run a random mix: allocate, free a block of their own, put a block into a shared
 *    exchange array (an atomic exchange, freeing or keeping what was there) and take one out. At
 *    the end of its round each thread puts all it holds into the exchange, so blocks outlive the
 *    threads that allocated them and are freed by threads of later rounds (and, at the very end,
 *    by the main thread). Every block is stamped and verified before it is freed (threads.h).
 *    During each round an observer thread reads the statistics (their invariants must hold in
 *    every snapshot), runs mp_pool_check() (must be true), mp_pool_owns() on blocks in the
 *    exchange (must be true) and mp_pool_trim() (must not give back a block a thread still holds
 *    or caches). At the end: blocks_in_use == 0, allocs == frees == the test's count of
 *    allocations, no failed allocation, mp_pool_check() true, and after destroy the source has
 *    every byte back.
 * 2. Producer to consumer. One thread allocates and fills blocks and passes them through a ring of
 *    256 slots to another thread, which verifies and frees them, for a million transfers. Memory
 *    stays bounded by a limit derived from the ring and the thread cache, not from the number of
 *    transfers: blocks_peak <= ring + 3 * thread_cache + 2 (each thread's cache, the half a refill
 *    may carve at once, one block in each thread's hands), and bytes_reserved within what that
 *    many blocks take in chunks. Checked during the run and at the end, for a 32-block cache and
 *    the default one.
 * 3. Capacity. Pools capped at 1, 7, 100 and 1000 blocks (which keep no thread cache, mempool.h,
 *    whatever thread_cache says) are hammered by 4 threads (allocating,
 *    freeing, passing blocks to each other); an atomic count of live blocks (raised after an alloc
 *    returns, lowered before a free) never exceeds the capacity, every NULL comes with ENOMEM and
 *    is counted in failed_allocs, blocks_peak <= capacity; once the threads have exited, the main
 *    thread alone can allocate exactly `capacity` blocks (none is lost in a dead thread's cache).
 * 4. Structures larger than any cache (issue 17). 32 threads share a pool (16-byte blocks; 8-byte
 *    blocks, which keep no magazines; 64-byte blocks with an 8-block cache); each builds structures
 *    of N stamped blocks (up to 2^14) and frees them itself, or every other round hands a whole
 *    one over to a queue and frees the oldest there, most likely another thread's. An observer
 *    reads stats, checks and trims meanwhile (which empties the depot under the threads). Threads
 *    exit with full caches. 50,000,000 allocations in all at MP_TEST_SCALE=1, each verified before
 *    its free; at the end blocks_in_use == 0, and with every thread gone trim gives back every
 *    block.
 * Runs in about 2 s in a Release build on 2 idle cores at MP_TEST_SCALE=1 (about 20 s under
 * ASan+UBSan, 30-45 s under TSan; MP_TEST_SCALE=10 takes about 30 s).
 */
#define _POSIX_C_SOURCE 200809L

#include "threads.h"

#include <sched.h>

/* ------------------------------------------------------------------------------------------------
 * 1. Stress
 * ---------------------------------------------------------------------------------------------- */

enum {
    STRESS_THREADS = 8,
    STRESS_ROUNDS = 6,
    STRESS_SLOTS = 1024, /* the exchange */
    STRESS_LOCAL = 64,   /* blocks a thread holds itself */
};

typedef struct stress_shape {
    const char *name;
    size_t block_size, align, thread_cache;
    unsigned share; /* percent of OPS */
} stress_shape;

static const stress_shape stress_shapes[] = {
    {"ts48", 48, 0, 0, 50},
    {"ts24-cache3", 24, 0, 3, 25},
    {"ts200-align64", 200, 64, 0, 25},
};

typedef struct stress_shared {
    mp_pool *pool;
    size_t block_size, align;
    _Atomic(void *) slots[STRESS_SLOTS];
    atomic_bool stop; /* tells the observer the round is over */
} stress_shared;

typedef struct stress_worker {
    stress_shared *sh;
    uint64_t seed, ops;
    uint32_t no; /* unique in the run: stamps and generator stream */
    uint64_t allocs, released;
} stress_worker;

/* Verifies a block the worker owns and frees it. */
static void stress_release(stress_worker *w, void *b)
{
    uint64_t stamp;
    if (!block_verify(b, w->sh->block_size, &stamp))
        tfail("stress %s: block %p (stamp %#" PRIx64 ") corrupted while live",
              mp_pool_name(w->sh->pool), b, stamp);
    if (w->sh->align > 0 && (uintptr_t)b % w->sh->align != 0)
        tfail("stress: block %p not aligned to %zu", b, w->sh->align);
    mp_pool_free(w->sh->pool, b);
    w->released++;
}

static void *stress_alloc(stress_worker *w, uint64_t *count)
{
    void *b = mp_pool_alloc(w->sh->pool);
    if (b == NULL) {
        tfail("stress %s: alloc failed (errno %d) in an unbounded pool", mp_pool_name(w->sh->pool),
              errno);
        return NULL;
    }
    block_fill(b, w->sh->block_size, stamp_make(w->no, ++*count));
    w->allocs++;
    return b;
}

/* Puts b into a random slot of the exchange; what was there is kept (if there is room) or freed. */
static void stress_put(stress_worker *w, rng *r, void *b, void **local, uint32_t *n)
{
    _Atomic(void *) *slot = &w->sh->slots[rng_below(r, STRESS_SLOTS)];
    void *old = atomic_exchange_explicit(slot, b, memory_order_acq_rel);
    if (old == NULL)
        return;
    if (*n < STRESS_LOCAL && (rng_next(r) & 1)) {
        if (!block_verify(old, w->sh->block_size, NULL))
            tfail("stress: block %p taken from the exchange is corrupted", old);
        local[(*n)++] = old;
    } else {
        stress_release(w, old);
    }
}

static void *stress_thread(void *arg)
{
    stress_worker *w = arg;
    rng r = rng_make(w->seed, w->no);
    void *local[STRESS_LOCAL];
    uint32_t n = 0;
    uint64_t count = 0;
    for (uint64_t i = 0; i < w->ops; i++) {
        uint32_t c = rng_below(&r, 100);
        if ((c < 40 && n < STRESS_LOCAL) || (c < 70 && n == 0)) {
            void *b = stress_alloc(w, &count);
            if (b != NULL)
                local[n++] = b;
        } else if (c < 70) {
            uint32_t k = rng_below(&r, n);
            void *b = local[k];
            local[k] = local[--n];
            stress_release(w, b);
        } else if (c < 85) {
            void *b;
            if (n > 0 && (rng_next(&r) & 1)) {
                uint32_t k = rng_below(&r, n);
                b = local[k];
                local[k] = local[--n];
            } else if ((b = stress_alloc(w, &count)) == NULL) {
                continue;
            }
            stress_put(w, &r, b, local, &n);
        } else {
            _Atomic(void *) *slot = &w->sh->slots[rng_below(&r, STRESS_SLOTS)];
            void *b = atomic_exchange_explicit(slot, NULL, memory_order_acq_rel);
            if (b != NULL)
                stress_release(w, b);
        }
    }
    /* Leave everything held to the threads of later rounds: blocks outlive this thread. */
    while (n > 0) {
        void *b = local[--n];
        _Atomic(void *) *slot = &w->sh->slots[rng_below(&r, STRESS_SLOTS)];
        void *old = atomic_exchange_explicit(slot, b, memory_order_acq_rel);
        if (old != NULL)
            stress_release(w, old);
    }
    return NULL;
}

/* Reads statistics and validates the pool while the workers run; see part 1 in the file header. */
static void *stress_observer(void *arg)
{
    stress_shared *sh = arg;
    for (uint64_t it = 0; !atomic_load(&sh->stop); it++) {
        mp_stats st = stats_of(sh->pool);
        stats_consistent(&st, "stats during stress");
        if (st.failed_allocs != 0)
            tfail("stress: failed_allocs %" PRIu64 " during the run", st.failed_allocs);
        if (it % 8 == 0 && !mp_pool_check(sh->pool))
            tfail("stress: mp_pool_check false while threads run");
        /* A block in the exchange was live when loaded; only this thread trims, so it stays owned.
         * */
        void *b = atomic_load(&sh->slots[(it * 7) % STRESS_SLOTS]);
        if (b != NULL && !mp_pool_owns(sh->pool, b))
            tfail("stress: mp_pool_owns false for block %p from the exchange", b);
        if (it % 32 == 31)
            mp_pool_trim(sh->pool);
        sched_yield();
    }
    return NULL;
}

static void stress_shape_run(const stress_shape *shape, uint64_t seed, uint64_t ops,
                             uint32_t *next_no)
{
    static stress_shared sh; /* 8 KiB of slots: not on the stack */
    counting_source cs = {0};
    mp_source src = counting_source_of(&cs);
    memset(&sh, 0, sizeof sh);
    sh.block_size = shape->block_size;
    sh.align = shape->align;
    sh.pool = mp_pool_create(&(mp_pool_opts){.block_size = shape->block_size,
                                             .align = shape->align,
                                             .flags = MP_THREAD_SAFE,
                                             .name = shape->name,
                                             .source = &src,
                                             .thread_cache = shape->thread_cache});
    if (!CHECK("stress: create a thread-safe pool", sh.pool != NULL))
        return;
    for (size_t i = 0; i < STRESS_SLOTS; i++)
        atomic_init(&sh.slots[i], NULL);

    uint64_t per_thread = ops / (STRESS_ROUNDS * STRESS_THREADS);
    if (per_thread < 100)
        per_thread = 100;
    uint64_t allocs = 0, released = 0;
    bool started = true;
    for (int round = 0; round < STRESS_ROUNDS && started; round++) {
        stress_worker w[STRESS_THREADS];
        pthread_t t[STRESS_THREADS], obs;
        for (int i = 0; i < STRESS_THREADS; i++)
            w[i] = (stress_worker){.sh = &sh, .seed = seed, .ops = per_thread, .no = (*next_no)++};
        atomic_store(&sh.stop, false);
        started = threads_start(&obs, 1, stress_observer, &sh, 0);
        if (!started)
            break;
        started = threads_start(t, STRESS_THREADS, stress_thread, w, sizeof w[0]);
        if (started)
            threads_join(t, STRESS_THREADS);
        atomic_store(&sh.stop, true);
        pthread_join(obs, NULL);
        for (int i = 0; i < STRESS_THREADS; i++) {
            allocs += w[i].allocs;
            released += w[i].released;
        }
    }
    CHECK("stress: threads started", started);

    /* The main thread frees what the last round left in the exchange. */
    for (size_t i = 0; i < STRESS_SLOTS; i++) {
        void *b = atomic_exchange(&sh.slots[i], NULL);
        if (b == NULL)
            continue;
        if (!block_verify(b, sh.block_size, NULL))
            tfail("stress: block %p left in the exchange is corrupted", b);
        mp_pool_free(sh.pool, b);
        released++;
    }
    CHECK("stress: no failure in any thread (blocks intact, stats consistent, check and owns true)",
          tfail_take() == 0);
    CHECK("stress: every block allocated was verified and freed once", released == allocs);
    mp_stats st = stats_of(sh.pool);
    CHECK("stress: final blocks_in_use == 0", st.blocks_in_use == 0);
    CHECK("stress: final allocs == the test's count", st.allocs == allocs);
    CHECK("stress: final frees == allocs", st.frees == st.allocs);
    CHECK("stress: no failed allocation", st.failed_allocs == 0);
    CHECK("stress: bytes_used == 0", st.bytes_used == 0);
    CHECK("stress: every carved block is free", st.blocks_free <= st.blocks_peak);
    CHECK("stress: mp_pool_check true at the end", mp_pool_check(sh.pool));
    printf("  %-14s %" PRIu64 " allocs, peak %" PRIu64 " blocks, %" PRIu64 " KiB reserved\n",
           shape->name, allocs, st.blocks_peak, st.bytes_reserved / 1024);
    mp_pool_destroy(sh.pool);
    CHECK("stress: destroy gave every mapped byte back",
          atomic_load(&cs.bytes_out) == 0 && atomic_load(&cs.maps) == atomic_load(&cs.unmaps));
}

static void test_stress(uint64_t seed, uint64_t ops)
{
    uint32_t next_no = 0;
    for (size_t i = 0; i < sizeof stress_shapes / sizeof stress_shapes[0]; i++)
        stress_shape_run(&stress_shapes[i], seed + i, ops / 100 * stress_shapes[i].share, &next_no);
}

/* ------------------------------------------------------------------------------------------------
 * 2. Producer to consumer
 * ---------------------------------------------------------------------------------------------- */

enum { RING = 256, PC_BLOCK = 64 };

typedef struct pc_shared {
    mp_pool *pool;
    uint64_t transfers;
    uint64_t max_blocks, max_bytes; /* the bound */
    _Atomic(void *) ring[RING];
    atomic_uint_fast64_t head, tail; /* head: produced so far; tail: consumed so far */
} pc_shared;

static void pc_check_bound(pc_shared *pc, const char *when)
{
    mp_stats st = stats_of(pc->pool);
    stats_consistent(&st, "producer/consumer stats");
    if (st.blocks_peak > pc->max_blocks || st.bytes_reserved > pc->max_bytes)
        tfail("producer/consumer %s: peak %" PRIu64 " blocks (bound %" PRIu64 "), %" PRIu64
              " bytes reserved (bound %" PRIu64 ")",
              when, st.blocks_peak, pc->max_blocks, st.bytes_reserved, pc->max_bytes);
}

static void *pc_producer(void *arg)
{
    pc_shared *pc = arg;
    for (uint64_t i = 0; i < pc->transfers; i++) {
        while (i - atomic_load_explicit(&pc->tail, memory_order_acquire) >= RING)
            sched_yield();
        void *b = mp_pool_alloc(pc->pool);
        if (b == NULL) {
            tfail("producer: alloc failed (errno %d)", errno);
            b = NULL; /* the consumer skips a NULL */
        } else {
            block_fill(b, PC_BLOCK, stamp_make(1, i + 1));
        }
        atomic_store_explicit(&pc->ring[i % RING], b, memory_order_relaxed);
        atomic_store_explicit(&pc->head, i + 1, memory_order_release);
    }
    return NULL;
}

static void *pc_consumer(void *arg)
{
    pc_shared *pc = arg;
    for (uint64_t i = 0; i < pc->transfers; i++) {
        while (atomic_load_explicit(&pc->head, memory_order_acquire) == i)
            sched_yield();
        void *b = atomic_load_explicit(&pc->ring[i % RING], memory_order_relaxed);
        uint64_t stamp;
        if (b != NULL) {
            if (!block_verify(b, PC_BLOCK, &stamp) || stamp != stamp_make(1, i + 1))
                tfail("consumer: transfer %" PRIu64 ": block %p corrupted", i, b);
            mp_pool_free(pc->pool, b);
        }
        atomic_store_explicit(&pc->tail, i + 1, memory_order_release);
        if (i % 16384 == 0)
            pc_check_bound(pc, "during the run");
    }
    return NULL;
}

static void pc_run(size_t thread_cache, size_t effective_cache, uint64_t transfers)
{
    static pc_shared pc;
    memset(&pc, 0, sizeof pc);
    pc.pool = mp_pool_create(&(mp_pool_opts){.block_size = PC_BLOCK,
                                             .flags = MP_THREAD_SAFE,
                                             .name = "pc",
                                             .thread_cache = thread_cache});
    if (!CHECK("producer/consumer: create", pc.pool != NULL))
        return;
    pc.transfers = transfers;
    /* Blocks exist in the ring, in each thread's hands (1 each) and cache (effective_cache each),
     * and on the pool's list. A block is carved only when the list is empty, in batches of at most
     * a cache's worth: so carved <= RING + 2 + 2 * cache + cache. */
    pc.max_blocks = RING + 2 + 3 * effective_cache;
    /* In bytes: the pool's bookkeeping page (64 KiB is generous), and runs that at most double
     * what the blocks need, with up to an eighth of each 64 KiB chunk lost to its tail and one
     * partly used chunk. */
    uint64_t need = pc.max_blocks * PC_BLOCK * 8 / 7 + 64 * 1024;
    pc.max_bytes = 64 * 1024 + 2 * need;
    for (size_t i = 0; i < RING; i++)
        atomic_init(&pc.ring[i], NULL);
    atomic_init(&pc.head, 0);
    atomic_init(&pc.tail, 0);

    pthread_t t[2];
    bool ok = threads_start(&t[0], 1, pc_producer, &pc, 0) &&
              (threads_start(&t[1], 1, pc_consumer, &pc, 0) || (pthread_join(t[0], NULL), false));
    if (!CHECK("producer/consumer: threads started", ok)) {
        mp_pool_destroy(pc.pool);
        return;
    }
    threads_join(t, 2);
    pc_check_bound(&pc, "at the end");
    CHECK("producer/consumer: every transfer intact, memory bounded throughout", tfail_take() == 0);
    mp_stats st = stats_of(pc.pool);
    CHECK("producer/consumer: allocs == transfers", st.allocs == transfers);
    CHECK("producer/consumer: blocks_in_use == 0", st.blocks_in_use == 0 && st.frees == st.allocs);
    CHECK("producer/consumer: mp_pool_check", mp_pool_check(pc.pool));
    printf("  thread_cache %-4zu %" PRIu64 " transfers (%" PRIu64
           " KiB through the pool): peak %" PRIu64 " blocks (bound %" PRIu64 "), %" PRIu64
           " KiB reserved (bound %" PRIu64 ")\n",
           thread_cache, transfers, transfers * PC_BLOCK / 1024, st.blocks_peak, pc.max_blocks,
           st.bytes_reserved / 1024, pc.max_bytes / 1024);
    mp_pool_destroy(pc.pool);
}

static void test_producer_consumer(void)
{
    uint64_t transfers = scaled_at_least(1000000, 20000);
    pc_run(32, 32, transfers);
    pc_run(0, 1024, transfers); /* the default for 64-byte blocks (mempool.h, thread_cache) */
}

/* ------------------------------------------------------------------------------------------------
 * 3. Capacity across threads
 * ---------------------------------------------------------------------------------------------- */

enum { CAP_THREADS = 4, CAP_LOCAL = 48, CAP_SLOTS = 16, CAP_BLOCK = 32 };

typedef struct cap_shared {
    mp_pool *pool;
    uint64_t capacity;
    atomic_long live; /* a lower bound of the blocks live at any moment (see cap_note_*) */
    atomic_long max_live;
    _Atomic(void *) slots[CAP_SLOTS];
} cap_shared;

typedef struct cap_worker {
    cap_shared *sh;
    uint64_t seed, ops;
    uint32_t no;
    uint64_t allocs, nulls;
} cap_worker;

/* Raised after alloc returns, lowered before free: each block counts only while it is surely live,
 * so the count never exceeds the blocks truly live, and a count above capacity is a real breach. */
static void cap_note_alloc(cap_shared *sh)
{
    long l = atomic_fetch_add(&sh->live, 1) + 1;
    long m = atomic_load(&sh->max_live);
    while (l > m && !atomic_compare_exchange_weak(&sh->max_live, &m, l))
        ;
    if ((uint64_t)l > sh->capacity)
        tfail("capacity %" PRIu64 ": %ld blocks live", sh->capacity, l);
}

static void cap_free(cap_shared *sh, void *b)
{
    if (!block_verify(b, CAP_BLOCK, NULL))
        tfail("capacity: block %p corrupted", b);
    atomic_fetch_sub(&sh->live, 1);
    mp_pool_free(sh->pool, b);
}

static void *cap_thread(void *arg)
{
    cap_worker *w = arg;
    cap_shared *sh = w->sh;
    rng r = rng_make(w->seed, w->no);
    void *local[CAP_LOCAL];
    uint32_t n = 0;
    for (uint64_t i = 0; i < w->ops; i++) {
        uint32_t c = rng_below(&r, 100);
        if ((c < 55 && n < CAP_LOCAL) || n == 0) {
            errno = 0;
            void *b = mp_pool_alloc(sh->pool);
            if (b == NULL) {
                if (errno != ENOMEM)
                    tfail("capacity: alloc returned NULL with errno %d, not ENOMEM", errno);
                w->nulls++;
                /* Take a block another thread passed on, so none stays parked in the exchange. */
                void *got = atomic_exchange(&sh->slots[rng_below(&r, CAP_SLOTS)], NULL);
                if (got != NULL)
                    local[n++] = got;
                continue;
            }
            cap_note_alloc(sh);
            w->allocs++;
            block_fill(b, CAP_BLOCK, stamp_make(w->no, w->allocs));
            local[n++] = b;
        } else if (c < 85) {
            uint32_t k = rng_below(&r, n);
            void *b = local[k];
            local[k] = local[--n];
            cap_free(sh, b);
        } else {
            /* Pass a block to whichever thread takes it; free what was there. */
            uint32_t k = rng_below(&r, n);
            void *b = local[k];
            local[k] = local[--n];
            void *old = atomic_exchange(&sh->slots[rng_below(&r, CAP_SLOTS)], b);
            if (old != NULL)
                cap_free(sh, old);
        }
    }
    while (n > 0)
        cap_free(sh, local[--n]);
    return NULL;
}

static void cap_run(uint64_t capacity, size_t thread_cache, uint64_t seed, uint64_t ops)
{
    static cap_shared sh;
    memset(&sh, 0, sizeof sh);
    sh.capacity = capacity;
    sh.pool = mp_pool_create(&(mp_pool_opts){.block_size = CAP_BLOCK,
                                             .capacity = capacity,
                                             .flags = MP_THREAD_SAFE,
                                             .name = "capped",
                                             .thread_cache = thread_cache});
    if (!CHECK("capacity: create", sh.pool != NULL))
        return;
    for (size_t i = 0; i < CAP_SLOTS; i++)
        atomic_init(&sh.slots[i], NULL);
    cap_worker w[CAP_THREADS];
    pthread_t t[CAP_THREADS];
    for (uint32_t i = 0; i < CAP_THREADS; i++)
        w[i] = (cap_worker){.sh = &sh, .seed = seed, .ops = ops / CAP_THREADS, .no = i};
    if (!CHECK("capacity: threads started",
               threads_start(t, CAP_THREADS, cap_thread, w, sizeof w[0]))) {
        mp_pool_destroy(sh.pool);
        return;
    }
    threads_join(t, CAP_THREADS);
    uint64_t allocs = 0, nulls = 0;
    for (int i = 0; i < CAP_THREADS; i++) {
        allocs += w[i].allocs;
        nulls += w[i].nulls;
    }
    CHECK("capacity: never more than capacity blocks live; NULL only with ENOMEM",
          tfail_take() == 0);
    mp_stats st = stats_of(sh.pool);
    CHECK("capacity: blocks_in_use == blocks left in the exchange <= capacity",
          st.blocks_in_use == (uint64_t)atomic_load(&sh.live) && st.blocks_in_use <= capacity);
    CHECK("capacity: blocks_peak <= capacity", st.blocks_peak <= capacity);
    CHECK("capacity: allocs and failed_allocs as counted",
          st.allocs == allocs && st.failed_allocs == nulls);
    for (size_t i = 0; i < CAP_SLOTS; i++) {
        void *b = atomic_exchange(&sh.slots[i], NULL);
        if (b != NULL)
            cap_free(&sh, b);
    }
    st = stats_of(sh.pool);
    CHECK("capacity: all freed: blocks_in_use == 0",
          st.blocks_in_use == 0 && st.frees == st.allocs);

    /* The threads have exited: their caches are back, so the whole capacity is available here. */
    void **held = malloc(sizeof(void *) * capacity);
    uint64_t got = 0;
    while (held != NULL && got < capacity && (held[got] = mp_pool_alloc(sh.pool)) != NULL)
        got++;
    CHECK("capacity: after the threads exit, one thread allocates exactly capacity blocks",
          got == capacity);
    errno = 0;
    void *extra = mp_pool_alloc(sh.pool);
    CHECK("capacity: and then ENOMEM", extra == NULL && errno == ENOMEM);
    if (extra != NULL)
        mp_pool_free(sh.pool, extra);
    while (got > 0)
        mp_pool_free(sh.pool, held[--got]);
    free(held);
    CHECK("capacity: mp_pool_check", mp_pool_check(sh.pool));
    printf("  capacity %-5" PRIu64 " thread_cache %-3zu %" PRIu64 " allocs, %" PRIu64
           " NULLs, most live at once (lower bound) %ld\n",
           capacity, thread_cache, allocs, nulls, atomic_load(&sh.max_live));
    mp_pool_destroy(sh.pool);
}

static void test_capacity(uint64_t seed)
{
    uint64_t ops = scaled_at_least(400000, 4000);
    cap_run(100, 0, seed, ops);
    cap_run(1000, 16, seed + 1, ops);
    cap_run(1, 0, seed + 2, ops / 4);
    cap_run(7, 1, seed + 3, ops / 4);
}

/* ------------------------------------------------------------------------------------------------
 * 4. Structures larger than any cache
 * ---------------------------------------------------------------------------------------------- */

enum { ST_THREADS = 32 };

/* A structure: n stamped blocks, listed in an array of the test's own. */
typedef struct st_list {
    struct st_list *next; /* on the hand-over queue */
    uint64_t n;
    void *b[];
} st_list;

typedef struct st_shape {
    const char *name;
    size_t block_size, thread_cache;
    uint64_t n;     /* blocks a structure */
    unsigned share; /* percent of the allocations */
} st_shape;

static const st_shape st_shapes[] = {
    {"ts16-n16384", 16, 0, 16384, 60},
    {"ts8-n4096", 8, 0, 4096, 20},
    {"ts64-cache8-n1024", 64, 8, 1024, 20},
};

typedef struct st_shared {
    mp_pool *pool;
    size_t block_size;
    uint64_t n, rounds;
    pthread_mutex_t qlock;
    st_list *queue; /* structures handed over, not yet freed */
    atomic_bool stop;
} st_shared;

typedef struct st_worker {
    st_shared *sh;
    uint32_t no;
    uint64_t allocs, released;
} st_worker;

static st_list *st_build(st_worker *w)
{
    st_shared *sh = w->sh;
    st_list *s = malloc(sizeof *s + sh->n * sizeof(void *));
    if (s == NULL) {
        tfail("structures: malloc failed");
        return NULL;
    }
    s->n = 0;
    for (uint64_t i = 0; i < sh->n; i++) {
        void *b = mp_pool_alloc(sh->pool);
        if (b == NULL) {
            tfail("structures %s: alloc failed (errno %d)", mp_pool_name(sh->pool), errno);
            break;
        }
        block_fill(b, sh->block_size, stamp_make(w->no, ++w->allocs));
        s->b[s->n++] = b;
    }
    return s;
}

/* Verifies every block of s, then frees them newest first, and s. */
static void st_free(st_shared *sh, st_list *s, uint64_t *released)
{
    for (uint64_t i = 0; i < s->n; i++)
        if (!block_verify(s->b[i], sh->block_size, NULL))
            tfail("structures %s: block %p corrupted while live", mp_pool_name(sh->pool), s->b[i]);
    for (uint64_t i = s->n; i-- > 0;)
        mp_pool_free(sh->pool, s->b[i]);
    *released += s->n;
    free(s);
}

/* Rounds of: build a structure; free it, or (every other round) hand it over and free the oldest
 * structure on the queue, most likely another thread's. Exits with its cache full. */
static void *st_thread(void *arg)
{
    st_worker *w = arg;
    st_shared *sh = w->sh;
    for (uint64_t r = 0; r < sh->rounds; r++) {
        st_list *s = st_build(w);
        if (s == NULL)
            return NULL;
        if ((w->no + r) % 2 == 0) {
            st_free(sh, s, &w->released);
            continue;
        }
        pthread_mutex_lock(&sh->qlock);
        s->next = sh->queue;
        sh->queue = s;
        st_list **oldest = &sh->queue;
        while ((*oldest)->next != NULL)
            oldest = &(*oldest)->next;
        st_list *take = *oldest;
        *oldest = NULL;
        pthread_mutex_unlock(&sh->qlock);
        st_free(sh, take, &w->released);
    }
    return NULL;
}

/* While the threads run: stats consistent, check true, trim (which empties the depot). */
static void *st_observer(void *arg)
{
    st_shared *sh = arg;
    while (!atomic_load(&sh->stop)) {
        mp_stats st = stats_of(sh->pool);
        stats_consistent(&st, "structures stats");
        if (!mp_pool_check(sh->pool))
            tfail("structures: mp_pool_check false while threads run");
        mp_pool_trim(sh->pool);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* Frees what is left on the queue, from a thread that then exits (its cache goes back). */
static void *st_drain(void *arg)
{
    st_worker *w = arg;
    while (w->sh->queue != NULL) {
        st_list *s = w->sh->queue;
        w->sh->queue = s->next;
        st_free(w->sh, s, &w->released);
    }
    return NULL;
}

static void st_run(const st_shape *shape, uint64_t allocs_wanted)
{
    static st_shared sh;
    counting_source cs = {0};
    mp_source src = counting_source_of(&cs);
    memset(&sh, 0, sizeof sh);
    pthread_mutex_init(&sh.qlock, NULL);
    sh.block_size = shape->block_size;
    sh.n = shape->n;
    sh.rounds = allocs_wanted / (ST_THREADS * shape->n);
    if (sh.rounds < 2)
        sh.rounds = 2;
    sh.pool = mp_pool_create(&(mp_pool_opts){.block_size = shape->block_size,
                                             .flags = MP_THREAD_SAFE,
                                             .name = shape->name,
                                             .source = &src,
                                             .thread_cache = shape->thread_cache});
    if (!CHECK("structures: create a thread-safe pool", sh.pool != NULL))
        return;
    static st_worker w[ST_THREADS + 1];
    pthread_t t[ST_THREADS], obs;
    for (uint32_t i = 0; i <= ST_THREADS; i++)
        w[i] = (st_worker){.sh = &sh, .no = 1000 + i};
    atomic_store(&sh.stop, false);
    bool started = threads_start(&obs, 1, st_observer, &sh, 0);
    if (started) {
        started = threads_start(t, ST_THREADS, st_thread, w, sizeof w[0]);
        if (started)
            threads_join(t, ST_THREADS);
        atomic_store(&sh.stop, true);
        pthread_join(obs, NULL);
    }
    if (!CHECK("structures: threads started", started) ||
        !CHECK("structures: the queue drained", thread_run(st_drain, &w[ST_THREADS])))
        return;
    uint64_t allocs = 0, released = 0;
    for (uint32_t i = 0; i <= ST_THREADS; i++) {
        allocs += w[i].allocs;
        released += w[i].released;
    }
    CHECK("structures: no failure in any thread (blocks intact, stats consistent, check true)",
          tfail_take() == 0);
    CHECK("structures: every block allocated was verified and freed once", released == allocs);
    mp_stats st = stats_of(sh.pool);
    CHECK("structures: final blocks_in_use == 0", st.blocks_in_use == 0);
    CHECK("structures: final allocs == the test's count", st.allocs == allocs);
    CHECK("structures: mp_pool_check true at the end", mp_pool_check(sh.pool));
    uint64_t peak = st.blocks_peak;
    mp_pool_trim(sh.pool);
    st = stats_of(sh.pool);
    CHECK("structures: every thread has exited, so trim gives every block back",
          st.blocks_free == 0 && st.blocks_in_use == 0);
    printf("  %-18s %" PRIu64 " allocs by %d threads, peak %" PRIu64 " blocks\n", shape->name,
           allocs, ST_THREADS, peak);
    mp_pool_destroy(sh.pool);
    pthread_mutex_destroy(&sh.qlock);
    CHECK("structures: destroy gave every mapped byte back",
          atomic_load(&cs.bytes_out) == 0 && atomic_load(&cs.maps) == atomic_load(&cs.unmaps));
}

static void test_structures(uint64_t allocs)
{
    for (size_t i = 0; i < sizeof st_shapes / sizeof st_shapes[0]; i++)
        st_run(&st_shapes[i], allocs / 100 * st_shapes[i].share);
}

/* ------------------------------------------------------------------------------------------------
 * */

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
    uint64_t ops = argc > 2 ? strtoull(argv[2], NULL, 0) : scaled_at_least(40000000, 20000);
    printf("test_threads_stress: seed %" PRIu64 ", %" PRIu64 " stress ops, MP_TEST_SCALE %g "
           "(replay: test_threads_stress %" PRIu64 " %" PRIu64 ")\n",
           seed, ops, test_scale(), seed, ops);
    printf("1. stress: %d rounds of %d threads, exchange of %d slots\n", STRESS_ROUNDS,
           STRESS_THREADS, STRESS_SLOTS);
    fflush(stdout);
    test_stress(seed, ops);
    printf("2. producer to consumer through a ring of %d\n", RING);
    fflush(stdout);
    test_producer_consumer();
    printf("3. capacity across %d threads\n", CAP_THREADS);
    fflush(stdout);
    test_capacity(seed);
    uint64_t st_allocs = scaled_at_least(50000000, 200000);
    printf("4. structures: %d threads, %" PRIu64 " allocations\n", ST_THREADS, st_allocs);
    fflush(stdout);
    test_structures(st_allocs);
    return TEST_DONE();
}

/*
 * suite_peer_mt.c: the peer program's workloads with threads and with variable sizes (issues 3, 5
 * and 7), built into every suite_<peer> beside suite_peer.c, with the same adapter and the same
 * rules (see suite_peer.c's header): the timed loops hold the peer's calls, the touch, the NULL
 * check and the workload's own bookkeeping, the same for every peer.
 *
 *   threads_pair, threads_batch   T threads, each its own loop on the one shared handle (a peer
 *       that is not thread-safe: on a handle of its own): a pair loop, or rounds of SUITE_BATCH
 *       allocations freed oldest first. Timed for M microseconds from the moment all T threads are
 *       released at once; the figure is the wall time over the ops of all threads (so 1e3 / ns is
 *       the throughput in Mops/s).
 *   prodcons   a producer thread allocates and touches blocks and hands them over in batches of
 *       SUITE_PC_BATCH through a ring of SUITE_PC_RING slots; a consumer thread frees them. Timed
 *       for M microseconds, then the consumer drains the ring; the figure is the wall time over the
 *       blocks freed.
 *   varsize    each of T threads keeps its own M/T live objects of sizes drawn from
 *       suite_var_bands and churns them: free a random one, allocate a new one of the next drawn
 *       size, touch every page of it. The same seeds, so the same sequence of sizes and victims,
 *       for every peer. N/T steps timed in each thread, after the fill and a tenth as many untimed;
 *       the figure is the wall time over the N steps.
 *   varsize_sparse   the same, writing only each object's first and last byte, as a program that
 *       sizes its buffers for the worst case: what the allocator makes resident that the program
 *       does not write shows in the peak RSS.
 *
 * Waiting: the threads meet at barriers outside the timed sections; the producer and the consumer
 * wait for each other spinning a little and then yielding, so on a machine with fewer CPUs than
 * threads a waiting thread gives its CPU to the one it waits for.
 */
#define _DEFAULT_SOURCE /* pthread_barrier_t, nanosleep */

#include "suite.h"

/* The adapter's setup functions are plain statics that only suite_peer.c uses all of. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include SUITE_PEER_HEADER
#pragma GCC diagnostic pop

#include "suite_peer.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define CACHE_LINE 64
#define MAX_THREADS SUITE_MAX_THREADS

/* ================================================================================================
 * Threads: a crew released at once, stopped by a flag; waiting
 * ============================================================================================== */

typedef struct crew {
    pthread_barrier_t go; /* the workers and the main thread */
    atomic_bool stop;     /* set by the main thread when the timed section is over */
    unsigned n;
    pthread_t ids[MAX_THREADS];
} crew;

static void crew_start(crew *c, unsigned n, void *(*fn)(void *), void *args, size_t arg_size)
{
    if (n == 0 || n > MAX_THREADS)
        die("%u threads: 1 to %d", n, MAX_THREADS);
    c->n = n;
    atomic_init(&c->stop, false);
    if (pthread_barrier_init(&c->go, NULL, n + 1) != 0)
        die("pthread_barrier_init failed");
    for (unsigned i = 0; i < n; i++) {
        int err = pthread_create(&c->ids[i], NULL, fn, (char *)args + i * arg_size);
        if (err != 0)
            die("pthread_create: %s", strerror(err));
    }
}

static void crew_join(crew *c)
{
    for (unsigned i = 0; i < c->n; i++)
        pthread_join(c->ids[i], NULL);
    pthread_barrier_destroy(&c->go);
}

static bool crew_stopped(crew *c)
{
    return atomic_load_explicit(&c->stop, memory_order_relaxed);
}

/* The main thread's part of a timed section: releases the crew, sleeps `us` microseconds and raises
 * the stop flag. The workers take the time themselves when released (the section runs from the
 * first one's start to the last one's end): with more threads than CPUs the main thread may wake
 * from the barrier after the workers have run for a while. */
static void crew_time(crew *c, uint64_t us)
{
    pthread_barrier_wait(&c->go);
    struct timespec ts = {.tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    atomic_store_explicit(&c->stop, true, memory_order_relaxed);
}

/* A worker's timed section: its ops, and when it was released and saw the stop flag. */
typedef struct worker_span {
    uint64_t ops;
    double start_ns, end_ns;
} worker_span;

/* The figure of n workers whose spans lie `stride` bytes apart from `first`: the wall time from
 * the first start to the last end over all their ops. */
static void crew_figure(result *r, const worker_span *first, size_t stride, unsigned n)
{
    double t0 = first->start_ns, end = first->end_ns;
    for (unsigned i = 0; i < n; i++) {
        const worker_span *s = (const worker_span *)((const char *)first + i * stride);
        r->ops += s->ops;
        t0 = fmin(t0, s->start_ns);
        end = fmax(end, s->end_ns);
    }
    r->ns = (end - t0) / (double)(r->ops ? r->ops : 1);
}

/* One turn of a wait loop: a pause while the other thread is likely running, then yields. */
static inline void spin_wait(unsigned *spins)
{
    if (++*spins < 128) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield();
    }
}

static void require_thread_safe(const char *workload)
{
    if (!PEER_THREAD_SAFE)
        die("%s shares one handle between threads: a peer with PEER_THREAD_SAFE 0 cannot run it",
            workload);
}

/* ================================================================================================
 * threads_pair, threads_batch: T independent threads on one handle
 * ============================================================================================== */

typedef struct tw_arg {
    _Alignas(CACHE_LINE) peer_handle *h; /* a line each: no false sharing between the workers */
    size_t size;
    void **slots; /* batch: SUITE_BATCH pointers of this thread's own */
    bool batch;
    crew *crew;
    worker_span span;
} tw_arg;

/* One round: 1000 pairs, or one batch of SUITE_BATCH freed oldest first. Returns its ops. */
static NOINLINE uint64_t tw_round(peer_handle *h, size_t size, void **slots, bool batch)
{
    if (!batch) {
        for (uint64_t i = 0; i < 1000; i++) {
            char *p = alloc_touched(h, size, i, "threads_pair");
            peer_free(h, p, size);
        }
        return 1000;
    }
    for (size_t i = 0; i < SUITE_BATCH; i++) {
        slots[i] = alloc_touched(h, size, i, "threads_batch");
    }
    for (size_t i = 0; i < SUITE_BATCH; i++)
        peer_free(h, slots[i], size);
    ESCAPE(slots);
    return SUITE_BATCH;
}

/* A worker: a few untimed rounds (this thread's first use: its cache, arena or heap), the release,
 * rounds until the stop flag. */
static void *tw_main(void *arg)
{
    tw_arg *a = arg;
    for (int i = 0; i < 20; i++)
        tw_round(a->h, a->size, a->slots, a->batch);
    pthread_barrier_wait(&a->crew->go);
    a->span.start_ns = now_ns();
    uint64_t ops = 0;
    while (!crew_stopped(a->crew))
        ops += tw_round(a->h, a->size, a->slots, a->batch);
    a->span.end_ns = now_ns();
    a->span.ops = ops;
    return NULL;
}

/* us: the timed section's length; threads: how many workers. A peer that is not thread-safe (the
 * floor) gives each worker a handle of its own: nothing is shared, so its scaling is the machine's
 * for this loop, the most an allocator shared by the threads could show. */
static result threads_run(size_t size, uint64_t us, unsigned threads, bool batch)
{
    result r = {0};
    static crew c;
    size_t slots_bytes = (size_t)threads * SUITE_BATCH * sizeof(void *);
    void **slots = scratch_get(slots_bytes);
    tw_arg *args = scratch_get(threads * sizeof *args);
    peer_first_use(size);
    frame_begin(&r);
    peer_handle *h =
        open_or_die(size, PEER_THREAD_SAFE ? (size_t)threads * SUITE_BATCH : SUITE_BATCH);
    for (unsigned i = 0; i < threads; i++)
        args[i] = (tw_arg){.h = PEER_THREAD_SAFE || i == 0 ? h : open_or_die(size, SUITE_BATCH),
                           .size = size,
                           .slots = slots + (size_t)i * SUITE_BATCH,
                           .batch = batch,
                           .crew = &c};
    crew_start(&c, threads, tw_main, args, sizeof *args);
    crew_time(&c, us);
    crew_join(&c);
    crew_figure(&r, &args[0].span, sizeof *args, threads);
    frame_end(&r, 0, 0);
    for (unsigned i = 0; i < threads; i++)
        if (!PEER_THREAD_SAFE || i == 0)
            peer_close(args[i].h);
    scratch_put(args, threads * sizeof *args);
    scratch_put(slots, slots_bytes);
    return r;
}

result wl_threads_pair(size_t size, uint64_t n, uint64_t us, unsigned threads)
{
    (void)n; /* the time decides */
    return threads_run(size, us, threads, false);
}

result wl_threads_batch(size_t size, uint64_t n, uint64_t us, unsigned threads)
{
    (void)n;
    return threads_run(size, us, threads, true);
}

/* ================================================================================================
 * prodcons: blocks allocated on one thread, freed on another
 *
 *   producer:  wait until ring[i] is empty; fill it with SUITE_PC_BATCH new blocks; mark it full
 *   consumer:  wait until ring[j] is full; free its blocks; mark it empty
 * A slot's `full` is stored with release and loaded with acquire, so the pointers (and the blocks'
 * contents) written before it are seen by the other side. When the stop flag is up, the producer
 * publishes how many batches it made; the consumer stops after freeing that many.
 * ============================================================================================== */

typedef struct pc_slot {
    _Alignas(CACHE_LINE) atomic_uint full;
    void *p[SUITE_PC_BATCH];
} pc_slot;

typedef struct pc_state {
    peer_handle *h;
    size_t size;
    pc_slot *ring; /* SUITE_PC_RING slots */
    crew crew;
    _Alignas(CACHE_LINE) atomic_bool done; /* the producer has stopped ... */
    atomic_uint_fast64_t made;             /* ... after this many batches */
    uint64_t freed;                        /* batches the consumer freed */
    double start_ns[2];                    /* when the producer and the consumer were released */
    double end_ns;                         /* when the consumer freed the last batch */
} pc_state;

/* The thread's first use of the handle, untimed (for the consumer, its first free too). */
static void pc_first_use(pc_state *s)
{
    char *p = peer_alloc(s->h, s->size);
    if (p == NULL)
        die_oom("prodcons");
    touch(p, s->size, 0);
    ESCAPE(p);
    peer_free(s->h, p, s->size);
}

static NOINLINE void *pc_producer(void *arg)
{
    pc_state *s = arg;
    pc_first_use(s);
    pthread_barrier_wait(&s->crew.go);
    s->start_ns[0] = now_ns();
    uint64_t i = 0;
    for (; !crew_stopped(&s->crew); i++) {
        pc_slot *slot = &s->ring[i % SUITE_PC_RING];
        unsigned spins = 0;
        while (atomic_load_explicit(&slot->full, memory_order_acquire) != 0)
            spin_wait(&spins);
        for (size_t k = 0; k < SUITE_PC_BATCH; k++) {
            slot->p[k] = alloc_touched(s->h, s->size, k, "prodcons");
        }
        atomic_store_explicit(&slot->full, 1, memory_order_release);
    }
    atomic_store_explicit(&s->made, i, memory_order_relaxed);
    atomic_store_explicit(&s->done, true, memory_order_release);
    return NULL;
}

static NOINLINE void *pc_consumer(void *arg)
{
    pc_state *s = arg;
    pc_first_use(s);
    pthread_barrier_wait(&s->crew.go);
    s->start_ns[1] = now_ns();
    uint64_t j = 0;
    for (;; j++) {
        pc_slot *slot = &s->ring[j % SUITE_PC_RING];
        unsigned spins = 0;
        while (atomic_load_explicit(&slot->full, memory_order_acquire) == 0) {
            if (atomic_load_explicit(&s->done, memory_order_acquire) &&
                atomic_load_explicit(&s->made, memory_order_relaxed) == j)
                goto drained;
            spin_wait(&spins);
        }
        for (size_t k = 0; k < SUITE_PC_BATCH; k++)
            peer_free(s->h, slot->p[k], s->size);
        atomic_store_explicit(&slot->full, 0, memory_order_release);
    }
drained:
    s->end_ns = now_ns();
    s->freed = j;
    return NULL;
}

/* A thread's part: the crew's first thread produces, the second consumes. */
typedef struct pc_role {
    pc_state *s;
    bool producer;
} pc_role;

static void *pc_main(void *arg)
{
    pc_role *role = arg;
    return role->producer ? pc_producer(role->s) : pc_consumer(role->s);
}

/* us: the timed section's length. threads: 2 (a producer and a consumer). */
result wl_prodcons(size_t size, uint64_t n, uint64_t us, unsigned threads)
{
    (void)n;
    require_thread_safe("prodcons");
    if (threads != 2)
        die("prodcons runs on 2 threads");
    result r = {0};
    static pc_state s;
    s.ring = scratch_get(SUITE_PC_RING * sizeof *s.ring);
    peer_first_use(size);
    frame_begin(&r);
    s.h = open_or_die(size, SUITE_PC_RING * SUITE_PC_BATCH + 2);
    s.size = size;
    atomic_init(&s.done, false);
    atomic_init(&s.made, 0);
    for (size_t i = 0; i < SUITE_PC_RING; i++)
        atomic_init(&s.ring[i].full, 0);
    pc_role roles[2] = {{&s, true}, {&s, false}};
    crew_start(&s.crew, 2, pc_main, roles, sizeof roles[0]);
    crew_time(&s.crew, us);
    crew_join(&s.crew);
    double t0 = fmin(s.start_ns[0], s.start_ns[1]);
    r.ops = s.freed * SUITE_PC_BATCH;
    r.ns = (s.end_ns - t0) / (double)(r.ops ? r.ops : 1);
    frame_end(&r, 0, 0);
    peer_close(s.h);
    scratch_put(s.ring, SUITE_PC_RING * sizeof *s.ring);
    return r;
}

/* ================================================================================================
 * varsize: churn among live objects of mixed sizes, one working set per thread
 * ============================================================================================== */

#define VS_TABLE ((size_t)1 << 16) /* sizes drawn in advance; a step picks one by 16 random bits */
#define VS_SEED UINT64_C(0x9E3779B97F4A7C15)
#define VS_PAGE ((size_t)4096)

typedef struct vs_arg {
    _Alignas(CACHE_LINE) peer_handle *h; /* shared, or this thread's own (PEER_THREAD_SAFE 0) */
    const uint32_t *table;               /* VS_TABLE sizes, shared */
    void **slots;                        /* this thread's live objects ... */
    uint32_t *sizes;                     /* ... and their sizes */
    size_t live;
    uint64_t n;
    uint64_t rng; /* this thread's own sequence */
    bool sparse;  /* varsize_sparse: write only the first and last byte */
    crew *crew;
    pthread_barrier_t *done; /* the timed steps are over, the objects still live (then frame_end) */
    double fill_ns;          /* this thread's fill, per object */
    double start_ns;         /* when the timed steps began ... */
    double end_ns;           /* ... and ended */
    double live_bytes;
} vs_arg;

/* The size table: VS_TABLE draws from suite_var_bands, with a fixed seed. */
static void vs_table_fill(uint32_t *table)
{
    uint64_t x = VS_SEED ^ 0x5851F42D4C957F2Du;
    for (size_t i = 0; i < VS_TABLE; i++) {
        x = rng_step(x);
        double u = (double)(x >> 11) / 9007199254740992.0; /* [0, 1) */
        x = rng_step(x);
        double v = (double)(x >> 11) / 9007199254740992.0;
        const suite_var_band *b = &suite_var_bands[SUITE_VAR_BANDS - 1];
        double acc = 0;
        for (int k = 0; k < SUITE_VAR_BANDS; k++) {
            acc += suite_var_bands[k].pct / 100.0;
            if (u < acc) {
                b = &suite_var_bands[k];
                break;
            }
        }
        double lo = (double)b->lo,
               hi = (double)b->hi + 1; /* [lo, hi + 1): every size in [lo, hi] */
        double s = b->shape == SUITE_UNIFORM ? lo + v * (hi - lo) /* inverse CDFs */
                   : b->shape == SUITE_LOG   ? lo * exp(v * log(hi / lo))
                                             : 1 / (1 / lo - v * (1 / lo - 1 / hi));
        table[i] = (uint32_t)fmin(s, (double)b->hi);
    }
}

/* Writes the object's first word, a byte in every page it spans and its last byte: a program uses
 * the memory it asks for, so the resident set is the allocator's, not the luck of untouched pages.
 * */
static inline void touch_pages(char *p, size_t size, uint64_t v)
{
    *(uint64_t *)p = v;
    for (size_t off = VS_PAGE; off < size; off += VS_PAGE)
        p[off] = (char)v;
    p[size - 1] = (char)v;
}

/* varsize_sparse: the first and last byte only, so a page between them is resident only if the
 * allocator made it so. */
static inline void vs_touch(const vs_arg *a, char *p, size_t size, uint64_t v)
{
    if (a->sparse) {
        p[0] = (char)v;
        p[size - 1] = (char)v;
    } else {
        touch_pages(p, size, v);
    }
}

static NOINLINE void vs_fill(vs_arg *a)
{
    for (size_t i = 0; i < a->live; i++) {
        a->rng = rng_step(a->rng);
        uint32_t size = a->table[a->rng & (VS_TABLE - 1)];
        char *p = peer_alloc(a->h, size);
        if (UNLIKELY(p == NULL))
            die_oom("the varsize fill");
        vs_touch(a, p, size, i);
        ESCAPE(p);
        a->slots[i] = p;
        a->sizes[i] = size;
    }
}

/* `steps` times: free a random live object, allocate one of the next size and touch it. The victim
 * is chosen by the high bits of the random word, the size by its low 16. */
static NOINLINE void vs_steps(vs_arg *a, uint64_t steps)
{
    uint64_t x = a->rng;
    for (uint64_t s = 0; s < steps; s++) {
        x = rng_step(x);
        size_t i = rng_index(x, a->live);
        uint32_t size = a->table[x & (VS_TABLE - 1)];
        peer_free(a->h, a->slots[i], a->sizes[i]);
        char *p = peer_alloc(a->h, size);
        if (UNLIKELY(p == NULL))
            die_oom("varsize");
        vs_touch(a, p, size, s);
        ESCAPE(p);
        a->slots[i] = p;
        a->sizes[i] = size;
    }
    a->rng = x;
}

static void *vs_main(void *arg)
{
    vs_arg *a = arg;
    double t0 = now_ns();
    vs_fill(a);
    a->fill_ns = (now_ns() - t0) / (double)a->live;
    vs_steps(a, a->n / 10 + 1);
    pthread_barrier_wait(&a->crew->go);
    a->start_ns = now_ns();
    vs_steps(a, a->n);
    a->end_ns = now_ns();
    double bytes = 0;
    for (size_t i = 0; i < a->live; i++)
        bytes += a->sizes[i];
    a->live_bytes = bytes;
    pthread_barrier_wait(a->done); /* the main thread takes the figures, objects live */
    pthread_barrier_wait(a->done);
    for (size_t i = 0; i < a->live; i++)
        peer_free(a->h, a->slots[i], a->sizes[i]);
    return NULL;
}

/* n: steps timed, live: objects live, both in all (each thread has its share). */
static result varsize_run(uint64_t n, uint64_t live64, unsigned threads, bool sparse)
{
    if (PEER_FIXED_SIZE)
        die("varsize asks for any size: a peer with PEER_FIXED_SIZE 1 cannot run it");
    if (live64 < threads || live64 > ((uint64_t)1 << 30) || n < threads)
        die("varsize wants THREADS <= live <= 2^30 and N >= THREADS");
    result r = {0};
    static crew c;
    static pthread_barrier_t done;
    size_t live = (size_t)live64 / threads, per = live * (sizeof(void *) + sizeof(uint32_t));
    n /= threads;
    uint32_t *table = scratch_get(VS_TABLE * sizeof *table);
    char *sets = scratch_get(threads * per);
    vs_arg *args = scratch_get(threads * sizeof *args);
    peer_handle *hs[MAX_THREADS];
    vs_table_fill(table);
    peer_first_use(64);
    frame_begin(&r);
    for (unsigned i = 0; i < threads; i++) {
        hs[i] = PEER_THREAD_SAFE && i > 0 ? hs[0] : open_or_die(0, live);
        char *set = sets + i * per;
        args[i] = (vs_arg){.h = hs[i],
                           .table = table,
                           .slots = (void **)set,
                           .sizes = (uint32_t *)(set + live * sizeof(void *)),
                           .live = live,
                           .n = n,
                           .rng = VS_SEED + i * UINT64_C(0xD1B54A32D192ED03),
                           .sparse = sparse,
                           .crew = &c,
                           .done = &done};
    }
    if (pthread_barrier_init(&done, NULL, threads + 1) != 0)
        die("pthread_barrier_init failed");
    crew_start(&c, threads, vs_main, args, sizeof *args);
    pthread_barrier_wait(&c.go);
    pthread_barrier_wait(&done);
    double t0 = args[0].start_ns, end = args[0].end_ns, fill = 0, bytes = 0;
    for (unsigned i = 0; i < threads; i++) {
        t0 = fmin(t0, args[i].start_ns);
        end = fmax(end, args[i].end_ns);
        fill += args[i].fill_ns / threads;
        bytes += args[i].live_bytes;
    }
    r.ops = n * threads;
    r.ns = (end - t0) / (double)r.ops;
    r.fill_ns = fill;
    frame_end(&r, live * threads, bytes);
    pthread_barrier_wait(&done);
    crew_join(&c);
    pthread_barrier_destroy(&done);
    for (unsigned i = 0; i < threads; i++)
        if (!PEER_THREAD_SAFE || i == 0)
            peer_close(hs[i]);
    scratch_put(args, threads * sizeof *args);
    scratch_put(sets, threads * per);
    scratch_put(table, VS_TABLE * sizeof *table);
    return r;
}

result wl_varsize(size_t size, uint64_t n, uint64_t live, unsigned threads)
{
    (void)size; /* sizes of its own */
    return varsize_run(n, live, threads, false);
}

result wl_varsize_sparse(size_t size, uint64_t n, uint64_t live, unsigned threads)
{
    (void)size;
    return varsize_run(n, live, threads, true);
}

/* ================================================================================================
 * own, handover: whole structures of N blocks (issue 17)
 *
 *   own        each of T threads builds a list of N blocks (each block's first word links the one
 *              built before it, its last byte is written), walks it reading every block, and frees
 *              it in list order (newest first); repeated until the stop flag.
 *   handover   a builder thread builds such lists and hands each whole one over through a ring of
 *              HO_RING slots; a freer thread walks and frees them.
 * Both hold far more blocks live than a thread's cache: what a thread frees must go back to the
 * shared allocator and come out again on the next build. An op is one block built, walked and
 * freed; the figure is the wall time over all of them.
 * ============================================================================================== */

#define HO_RING 4

/* Builds a list of n blocks; returns its newest. */
static NOINLINE void *st_build(peer_handle *h, size_t size, uint64_t n)
{
    void *head = NULL;
    for (uint64_t i = 0; i < n; i++) {
        char *p = peer_alloc(h, size);
        if (UNLIKELY(p == NULL))
            die_oom("own/handover");
        if (size > sizeof(void *)) /* an 8-byte block is all link */
            p[size - 1] = (char)i;
        *(void **)p = head;
        head = p;
    }
    return head;
}

/* Walks the list reading every block, then frees it in list order; returns its length. */
static NOINLINE uint64_t st_free(peer_handle *h, size_t size, void *head)
{
    uint64_t n = 0, sum = 0;
    for (char *p = head; p != NULL; p = *(char **)p, n++)
        sum += (unsigned char)p[size - 1];
    ESCAPE(sum);
    while (head != NULL) {
        void *next = *(void **)head;
        peer_free(h, head, size);
        head = next;
    }
    return n;
}

typedef struct own_arg {
    _Alignas(CACHE_LINE) peer_handle *h;
    size_t size;
    uint64_t n;
    crew *crew;
    worker_span span;
} own_arg;

static void *own_main(void *arg)
{
    own_arg *a = arg;
    st_free(a->h, a->size, st_build(a->h, a->size, a->n < 1024 ? a->n : 1024)); /* first use */
    pthread_barrier_wait(&a->crew->go);
    a->span.start_ns = now_ns();
    uint64_t ops = 0;
    while (!crew_stopped(a->crew))
        ops += st_free(a->h, a->size, st_build(a->h, a->size, a->n));
    a->span.end_ns = now_ns();
    a->span.ops = ops;
    return NULL;
}

/* n: blocks a structure; us: the timed section's length. */
result wl_own(size_t size, uint64_t n, uint64_t us, unsigned threads)
{
    require_thread_safe("own");
    result r = {0};
    static crew c;
    own_arg *args = scratch_get(threads * sizeof *args);
    peer_first_use(size);
    frame_begin(&r);
    peer_handle *h = open_or_die(size, (size_t)(threads * n + threads));
    for (unsigned i = 0; i < threads; i++)
        args[i] = (own_arg){.h = h, .size = size, .n = n, .crew = &c};
    crew_start(&c, threads, own_main, args, sizeof *args);
    crew_time(&c, us);
    crew_join(&c);
    crew_figure(&r, &args[0].span, sizeof *args, threads);
    frame_end(&r, 0, 0);
    peer_close(h);
    scratch_put(args, threads * sizeof *args);
    return r;
}

/* handover: a slot holds a list's newest block, or NULL when empty (release/acquire, as prodcons's
 * `full`). The builder publishes how many lists it built once stopped; the freer stops after
 * freeing that many. At each build's end the builder counts the lists outstanding (built, this one
 * included, less those freed whole: the one being freed counts): the benchmark's live set at its
 * peak, which depends on how fast the builder runs against the freer, not on the allocator's
 * layout. Up to HO_RING + 1: the ring full (the freer's slot among them) and one waiting. */
typedef struct ho_state {
    peer_handle *h;
    size_t size;
    uint64_t n;
    crew crew;
    _Alignas(CACHE_LINE) _Atomic(void *) ring[HO_RING];
    _Alignas(CACHE_LINE) atomic_bool done;
    atomic_uint_fast64_t made;
    uint64_t freed; /* blocks */
    double start_ns[2];
    double end_ns;
    _Alignas(CACHE_LINE) atomic_uint_fast64_t lists_freed; /* written by the freer only */
    _Alignas(CACHE_LINE) uint64_t depth_max, depth_sum;    /* written by the builder only */
} ho_state;

typedef struct ho_role {
    ho_state *s;
    bool builder;
} ho_role;

static void ho_builder(ho_state *s)
{
    uint64_t i = 0;
    for (; !crew_stopped(&s->crew); i++) {
        void *head = st_build(s->h, s->size, s->n);
        uint64_t depth = i + 1 - atomic_load_explicit(&s->lists_freed, memory_order_relaxed);
        s->depth_max = depth > s->depth_max ? depth : s->depth_max;
        s->depth_sum += depth;
        _Atomic(void *) *slot = &s->ring[i % HO_RING];
        unsigned spins = 0;
        while (atomic_load_explicit(slot, memory_order_acquire) != NULL)
            spin_wait(&spins);
        atomic_store_explicit(slot, head, memory_order_release);
    }
    atomic_store_explicit(&s->made, i, memory_order_relaxed);
    atomic_store_explicit(&s->done, true, memory_order_release);
}

static void ho_freer(ho_state *s)
{
    uint64_t j = 0, blocks = 0;
    for (;; j++) {
        _Atomic(void *) *slot = &s->ring[j % HO_RING];
        unsigned spins = 0;
        void *head;
        while ((head = atomic_load_explicit(slot, memory_order_acquire)) == NULL) {
            if (atomic_load_explicit(&s->done, memory_order_acquire) &&
                atomic_load_explicit(&s->made, memory_order_relaxed) == j)
                goto drained;
            spin_wait(&spins);
        }
        blocks += st_free(s->h, s->size, head);
        atomic_store_explicit(&s->lists_freed, j + 1, memory_order_relaxed);
        atomic_store_explicit(slot, NULL, memory_order_release);
    }
drained:
    s->end_ns = now_ns();
    s->freed = blocks;
}

static void *ho_main(void *arg)
{
    ho_role *role = arg;
    ho_state *s = role->s;
    st_free(s->h, s->size, st_build(s->h, s->size, 1)); /* first use */
    pthread_barrier_wait(&s->crew.go);
    s->start_ns[role->builder ? 0 : 1] = now_ns();
    if (role->builder)
        ho_builder(s);
    else
        ho_freer(s);
    return NULL;
}

/* n: blocks a structure; us: the timed section's length; threads: 2 (a builder and a freer). */
result wl_handover(size_t size, uint64_t n, uint64_t us, unsigned threads)
{
    require_thread_safe("handover");
    if (threads != 2)
        die("handover runs on 2 threads");
    result r = {0};
    static ho_state s;
    peer_first_use(size);
    frame_begin(&r);
    s.h = open_or_die(size, (size_t)((HO_RING + 2) * n + 2));
    s.size = size;
    s.n = n;
    atomic_init(&s.done, false);
    atomic_init(&s.made, 0);
    atomic_init(&s.lists_freed, 0);
    s.depth_max = s.depth_sum = 0;
    for (size_t i = 0; i < HO_RING; i++)
        atomic_init(&s.ring[i], NULL);
    ho_role roles[2] = {{&s, true}, {&s, false}};
    crew_start(&s.crew, 2, ho_main, roles, sizeof roles[0]);
    crew_time(&s.crew, us);
    crew_join(&s.crew);
    r.ops = s.freed;
    r.ns = (s.end_ns - fmin(s.start_ns[0], s.start_ns[1])) / (double)(r.ops ? r.ops : 1);
    r.depth_max = s.depth_max;
    uint64_t made = atomic_load_explicit(&s.made, memory_order_relaxed);
    r.depth_mean = made ? (double)s.depth_sum / (double)made : 0;
    frame_end(&r, 0, 0);
    peer_close(s.h);
    return r;
}

/*
 * bench_locality.c: where a thread-safe pool's blocks go between threads, measured without a clock
 * (issue 17's "own structures" at N = 2^18, 16-byte blocks). T threads share one MP_THREAD_SAFE
 * pool; each, for R rounds, builds a list of N blocks (writing each block's first word and last
 * byte), walks it reading every block, and frees it newest first, as the suite's `own` workload
 * does. The pool's chunks come from one reserved region, so a table beside it says for every
 * 16-byte block which thread holds it live and which thread freed it last. Printed per thread:
 *   other   of the blocks it allocated that were used before, the share another thread freed last;
 *   line    of the blocks it walked, the share whose 64-byte line held a live block of another
 *           thread at that moment (false sharing on every touch of that line);
 *   fresh   the share of its allocations that were never used before (carved).
 * These depend on how the threads' phases overlap, not on how fast the machine is: a figure holds
 * on a loaded machine. --lockstep makes every thread build, walk and free at once (a barrier
 * between rounds), the worst case for a shared depot; free-running is the suite's workload.
 * --time leaves the tables out and prints instead the CPU time a block (each thread's own clock,
 * so time the process spent waiting for a CPU on a loaded machine does not count); --pin puts
 * thread i on CPU i, so that the threads run on different cores; --cache N sets the pool's
 * thread_cache.
 * Usage: bench_locality [--threads T] [--n N] [--rounds R] [--cache N] [--lockstep] [--time]
 *                       [--pin] [--quick]
 */
#define _GNU_SOURCE

#include <mempool.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define BLOCK 16u
#define LINE 64u
#define REGION ((size_t)1 << 30)
#define MAX_THREADS 64

/* The region the pool's source carves from the bottom up (nothing is given back before the end). */
static char *region;
static atomic_size_t region_used;
static _Atomic unsigned char *live_owner; /* a block's holder + 1, 0 when free; one a block */
static unsigned char *last_freer;         /* the thread that freed it last + 1, 0 if never */

static void *region_map(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    size_t old = atomic_load(&region_used), at;
    uintptr_t base = (uintptr_t)region; /* the address is aligned, not the offset */
    do {
        at = (size_t)(((base + old + align - 1) & ~(uintptr_t)(align - 1)) - base);
        if (at + size > REGION)
            return NULL;
    } while (!atomic_compare_exchange_weak(&region_used, &old, at + size));
    return region + at;
}

static void region_unmap(void *ctx, void *p, size_t size)
{
    (void)ctx, (void)p, (void)size;
}

static const mp_source region_source = {region_map, region_unmap, NULL};

static size_t slot(const void *p)
{
    return (size_t)((const char *)p - region) / BLOCK;
}

/* Whether the line of block p holds a live block of a thread other than `me` (+ 1). */
static bool line_shared(const void *p, unsigned me)
{
    size_t first = slot(p) & ~(size_t)(LINE / BLOCK - 1);
    for (size_t s = first; s < first + LINE / BLOCK; s++) {
        unsigned o = atomic_load_explicit(&live_owner[s], memory_order_relaxed);
        if (o != 0 && o != me)
            return true;
    }
    return false;
}

typedef struct worker {
    mp_pool *pool;
    unsigned id; /* + 1 */
    uint64_t n, rounds;
    pthread_barrier_t *lockstep;
    bool probe; /* false: --time, no tables */
    bool pin;   /* --pin: thread i on CPU i */
    uint64_t allocs, fresh, reused, other, walked, shared;
    double cpu_ns; /* this thread's CPU time over its rounds */
    pthread_t tid;
} worker;

static double cpu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    if (w->pin) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET((w->id - 1) % (unsigned)CPU_SETSIZE, &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    }
    double t0 = cpu_now_ns();
    for (uint64_t r = 0; r < w->rounds; r++) {
        if (w->lockstep != NULL)
            pthread_barrier_wait(w->lockstep);
        void *head = NULL;
        for (uint64_t i = 0; i < w->n; i++) {
            char *p = mp_pool_alloc(w->pool);
            if (p == NULL) {
                fprintf(stderr, "bench_locality: out of memory\n");
                exit(1);
            }
            if (w->probe) {
                unsigned f = last_freer[slot(p)];
                w->allocs++;
                w->fresh += f == 0;
                w->reused += f != 0;
                w->other += f != 0 && f != w->id;
                atomic_store_explicit(&live_owner[slot(p)], (unsigned char)w->id,
                                      memory_order_relaxed);
            }
            p[BLOCK - 1] = (char)i;
            *(void **)p = head;
            head = p;
        }
        if (w->lockstep != NULL)
            pthread_barrier_wait(w->lockstep);
        unsigned sum = 0;
        for (char *p = head; p != NULL; p = *(char **)p) {
            sum += (unsigned char)p[BLOCK - 1];
            if (w->probe) {
                w->walked++;
                w->shared += line_shared(p, w->id);
            }
        }
        __asm__ __volatile__("" ::"r"(sum));
        while (head != NULL) {
            void *next = *(void **)head;
            if (w->probe) {
                last_freer[slot(head)] = (unsigned char)w->id;
                atomic_store_explicit(&live_owner[slot(head)], 0, memory_order_relaxed);
            }
            mp_pool_free(w->pool, head);
            head = next;
        }
    }
    w->cpu_ns = cpu_now_ns() - t0;
    return NULL;
}

static uint64_t arg_u64(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "bench_locality: %s needs a value\n", argv[*i]);
        exit(2);
    }
    return strtoull(argv[++*i], NULL, 10);
}

int main(int argc, char **argv)
{
    uint64_t threads = 2, n = 1u << 18, rounds = 30, cache = 0;
    bool lockstep = false, probe = true, pin = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0)
            threads = arg_u64(argc, argv, &i);
        else if (strcmp(argv[i], "--n") == 0)
            n = arg_u64(argc, argv, &i);
        else if (strcmp(argv[i], "--rounds") == 0)
            rounds = arg_u64(argc, argv, &i);
        else if (strcmp(argv[i], "--cache") == 0)
            cache = arg_u64(argc, argv, &i);
        else if (strcmp(argv[i], "--lockstep") == 0)
            lockstep = true;
        else if (strcmp(argv[i], "--pin") == 0)
            pin = true;
        else if (strcmp(argv[i], "--time") == 0)
            probe = false;
        else if (strcmp(argv[i], "--quick") == 0)
            n = 1u << 12, rounds = 4;
        else {
            fprintf(stderr, "usage: bench_locality [--threads T] [--n N] [--rounds R] [--cache N] "
                            "[--lockstep] [--time] [--pin] [--quick]\n");
            return 2;
        }
    }
    if (threads == 0 || threads > MAX_THREADS || n == 0 || threads * n * BLOCK * 4 > REGION) {
        fprintf(stderr, "bench_locality: threads in [1, %d], n > 0, threads * n <= 2^24\n",
                MAX_THREADS);
        return 2;
    }
    int prot = PROT_READ | PROT_WRITE, flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    region = mmap(NULL, REGION, prot, flags, -1, 0);
    live_owner = mmap(NULL, REGION / BLOCK, prot, flags, -1, 0);
    last_freer = mmap(NULL, REGION / BLOCK, prot, flags, -1, 0);
    if (region == MAP_FAILED || (void *)live_owner == MAP_FAILED || last_freer == MAP_FAILED) {
        perror("bench_locality: mmap");
        return 1;
    }
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = BLOCK,
                                                   .flags = MP_THREAD_SAFE,
                                                   .source = &region_source,
                                                   .name = "probe",
                                                   .thread_cache = cache});
    if (pool == NULL) {
        perror("bench_locality: mp_pool_create");
        return 1;
    }
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, (unsigned)threads);
    worker w[MAX_THREADS];
    for (unsigned t = 0; t < threads; t++) {
        w[t] = (worker){
            .pool = pool, .id = t + 1, .n = n, .rounds = rounds, .probe = probe, .pin = pin};
        w[t].lockstep = lockstep ? &barrier : NULL;
        pthread_create(&w[t].tid, NULL, worker_main, &w[t]);
    }
    uint64_t allocs = 0, fresh = 0, reused = 0, other = 0, walked = 0, shared = 0;
    double cpu_ns = 0;
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(w[t].tid, NULL);
        allocs += w[t].allocs, fresh += w[t].fresh, reused += w[t].reused;
        other += w[t].other, walked += w[t].walked, shared += w[t].shared;
        cpu_ns += w[t].cpu_ns;
    }
    if (!probe) {
        printf("threads %" PRIu64 " n %" PRIu64 " rounds %" PRIu64 " %s: cpu %.3f ns/block\n",
               threads, n, rounds, lockstep ? "lockstep" : "free-running",
               cpu_ns / (double)(threads * n * rounds));
        mp_pool_destroy(pool);
        return 0;
    }
    printf("threads %" PRIu64 " n %" PRIu64 " rounds %" PRIu64 " %s: other %.4f line %.4f "
           "fresh %.4f region %.1f MiB\n",
           threads, n, rounds, lockstep ? "lockstep" : "free-running",
           reused != 0 ? (double)other / (double)reused : 0.0,
           walked != 0 ? (double)shared / (double)walked : 0.0, (double)fresh / (double)allocs,
           (double)atomic_load(&region_used) / 1048576.0);
    mp_stats st;
    mp_pool_stats(pool, &st);
    bool ok = st.blocks_in_use == 0;
    mp_pool_destroy(pool);
    return ok ? 0 : 1;
}

/*
 * sh8.c: sh6's rounds, but every block is freed by another thread than the one that allocated it,
 * after MicroQuill's SmartHeap benchmark sh8bench. Each of T threads, ROUNDS times, allocates a
 * batch of N blocks of random sizes of 1..MAX bytes (mostly up to 64), marks each, and hands the
 * batch to the next thread (ring order); a thread checks and frees the batches handed to it, in
 * reverse order of allocation or in a random order by turns, between its own rounds. A thread
 * with more than AHEAD batches waiting for its receiver frees its own inbox until that drains.
 *   sh8 [THREADS=2] [ROUNDS=2000] [N=1000] [MAX=512]
 * Prints the blocks allocated and bytes asked (the same on every malloc).
 */
#include "workload.h"

#include <sched.h>
#include <stdatomic.h>

#define AHEAD 4

typedef struct batch {
    struct batch *next;
    size_t n;
    unsigned char *p[];
} batch;

typedef struct worker {
    uint64_t rng, free_rng; /* sizes; free orders (kept apart: those depend on timing) */
    long rounds, n, max, bad;
    unsigned long long blocks, bytes, frees;
    _Atomic(batch *) inbox; /* pushed by the previous thread, taken whole by this one */
    atomic_long waiting;    /* batches in inbox */
    char pad[64];
} worker;

static worker *workers;
static int nthreads;
static atomic_int done; /* threads through their rounds */

/* A block of a random size, holding its size in its first word and a mark in its last byte. */
static unsigned char *block_new(worker *w)
{
    size_t n = wl_range(&w->rng, 0, 3) != 0 ? wl_range(&w->rng, 1, 64)
                                            : wl_range(&w->rng, 1, (size_t)w->max);
    n = n < 8 ? 8 : n;
    unsigned char *p = wl_got(malloc(n));
    wl_mark(p, n, n);
    w->blocks++;
    w->bytes += n;
    return p;
}

static void block_free(worker *w, unsigned char *p)
{
    uint64_t n;
    memcpy(&n, p, sizeof n);
    w->bad += n < 8 || n > (uint64_t)w->max || !wl_check(p, (size_t)n, n);
    free(p);
}

/* Checks and frees every batch in w's inbox; a batch's blocks in reverse or random order. */
static void inbox_drain(worker *w)
{
    batch *b = atomic_exchange_explicit(&w->inbox, NULL, memory_order_acquire);
    while (b != NULL) {
        batch *next = b->next;
        if ((w->frees++ & 1) == 0) {
            for (size_t i = b->n; i-- > 0;)
                block_free(w, b->p[i]);
        } else {
            for (size_t i = b->n; i > 0; i--) {
                size_t j = wl_range(&w->free_rng, 0, i - 1);
                block_free(w, b->p[j]);
                b->p[j] = b->p[i - 1];
            }
        }
        free(b);
        atomic_fetch_sub(&w->waiting, 1);
        b = next;
    }
}

static void *sh8(void *arg)
{
    worker *w = arg, *to = &workers[(w - workers + 1) % nthreads];
    for (long r = 0; r < w->rounds; r++) {
        batch *b = wl_got(malloc(sizeof *b + (size_t)w->n * sizeof b->p[0]));
        b->n = (size_t)w->n;
        for (size_t i = 0; i < b->n; i++)
            b->p[i] = block_new(w);
        while (atomic_load(&to->waiting) >= AHEAD) {
            inbox_drain(w);
            sched_yield();
        }
        atomic_fetch_add(&to->waiting, 1);
        b->next = atomic_load_explicit(&to->inbox, memory_order_relaxed);
        while (!atomic_compare_exchange_weak_explicit(&to->inbox, &b->next, b, memory_order_release,
                                                      memory_order_relaxed))
            ;
        inbox_drain(w);
    }
    atomic_fetch_add(&done, 1);
    while (atomic_load(&done) < nthreads) {
        inbox_drain(w);
        sched_yield();
    }
    inbox_drain(w); /* every sender is through: the last batches */
    return NULL;
}

int main(int argc, char **argv)
{
    nthreads = (int)wl_arg(argc, argv, 1, 2);
    long rounds = wl_arg(argc, argv, 2, 2000);
    long n = wl_arg(argc, argv, 3, 1000);
    long max = wl_arg(argc, argv, 4, 512);
    if (nthreads < 1 || n < 1 || max < 8)
        return 2;
    workers = wl_got(calloc((size_t)nthreads, sizeof *workers));
    for (int i = 0; i < nthreads; i++) {
        workers[i].rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);
        workers[i].free_rng = workers[i].rng ^ 0x5851F42D4C957F2DULL;
        workers[i].rounds = rounds;
        workers[i].n = n;
        workers[i].max = max;
    }
    wl_run(nthreads, sh8, workers, sizeof *workers);
    long bad = 0;
    unsigned long long blocks = 0, bytes = 0;
    for (int i = 0; i < nthreads; i++) {
        bad += workers[i].bad;
        blocks += workers[i].blocks;
        bytes += workers[i].bytes;
    }
    printf("sh8: %d threads, %llu blocks, %llu bytes asked, %ld damaged\n", nthreads, blocks, bytes,
           bad);
    free(workers);
    return bad != 0;
}

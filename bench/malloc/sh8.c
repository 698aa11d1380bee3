/*
 * sh8.c: sh6's rounds, but every block is freed by another thread than the one that allocated it,
 * after MicroQuill's SmartHeap benchmark sh8bench. Each of T threads, ROUNDS times, allocates a
 * batch of N blocks of random sizes of 1..MAX bytes (mostly up to 64), marks each, and hands the
 * batch to the next thread (ring order); a thread checks and frees the batches handed to it, in
 * reverse order of allocation or in a random order by turns, between its own rounds. A thread
 * whose receiver has AHEAD batches waiting frees its own inbox and waits until that drains.
 *   sh8 [THREADS=2] [ROUNDS=2000] [N=1000] [MAX=512]
 * Prints the blocks allocated and bytes asked (the same on every malloc).
 */
#include "workload.h"

#include <time.h>

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
    pthread_mutex_t lock; /* over inbox and waiting */
    pthread_cond_t cond;  /* broadcast when inbox gains a batch or is emptied */
    batch *inbox;         /* pushed by the previous thread, taken whole by this one */
    int waiting;          /* batches in inbox */
    char pad[64];
} worker;

static worker *workers;
static int nthreads;
static int done; /* threads through their rounds, under workers[0].lock */

/* A block of a random size, holding its size in its first word and a mark in its last byte. */
static unsigned char *block_new(worker *w)
{
    size_t n = wl_range(&w->rng, 0, 3) != 0
                   ? wl_range(&w->rng, 1, w->max < 64 ? (size_t)w->max : 64)
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

/* Waits on w's condition for at most a millisecond (w->lock held). */
static void worker_wait(worker *w)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_nsec += 1000000;
    if (t.tv_nsec >= 1000000000) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&w->cond, &w->lock, &t);
}

/* Checks and frees every batch in w's inbox; a batch's blocks in reverse or random order. */
static void inbox_drain(worker *w)
{
    pthread_mutex_lock(&w->lock);
    batch *b = w->inbox;
    w->inbox = NULL;
    w->waiting = 0;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
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
        b = next;
    }
}

/* Hands b to thread to, first waiting while AHEAD batches wait there; a thread that waits frees
 * its own inbox meanwhile (its sender may be waiting on it), so a ring of waits always moves. */
static void batch_send(worker *w, worker *to, batch *b)
{
    pthread_mutex_lock(&to->lock);
    while (to->waiting >= AHEAD) {
        pthread_mutex_unlock(&to->lock);
        inbox_drain(w);
        pthread_mutex_lock(&to->lock);
        if (to->waiting >= AHEAD)
            worker_wait(to);
    }
    b->next = to->inbox;
    to->inbox = b;
    to->waiting++;
    pthread_cond_broadcast(&to->cond);
    pthread_mutex_unlock(&to->lock);
}

/* Whether every thread is through its rounds. */
static int all_done(void)
{
    pthread_mutex_lock(&workers[0].lock);
    int d = done == nthreads;
    pthread_mutex_unlock(&workers[0].lock);
    return d;
}

static void *sh8(void *arg)
{
    worker *w = arg, *to = &workers[(w - workers + 1) % nthreads];
    for (long r = 0; r < w->rounds; r++) {
        batch *b = wl_got(malloc(sizeof *b + (size_t)w->n * sizeof b->p[0]));
        b->n = (size_t)w->n;
        for (size_t i = 0; i < b->n; i++)
            b->p[i] = block_new(w);
        batch_send(w, to, b);
        inbox_drain(w);
    }
    pthread_mutex_lock(&workers[0].lock);
    done++;
    pthread_mutex_unlock(&workers[0].lock);
    while (!all_done()) {
        inbox_drain(w);
        pthread_mutex_lock(&w->lock);
        if (w->inbox == NULL)
            worker_wait(w);
        pthread_mutex_unlock(&w->lock);
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
        pthread_mutex_init(&workers[i].lock, NULL);
        pthread_cond_init(&workers[i].cond, NULL);
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
    for (int i = 0; i < nthreads; i++) {
        pthread_mutex_destroy(&workers[i].lock);
        pthread_cond_destroy(&workers[i].cond);
    }
    free(workers);
    return bad != 0;
}

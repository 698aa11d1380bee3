/*
 * rptest.c: a sliding window of live blocks per thread, some handed to other threads to free,
 * after the alloc-test and rptest benchmarks of the rpmalloc suite. Each of T threads keeps a
 * window of WINDOW blocks and, ROUNDS times, replaces a random one with a new block of a random
 * size (15 in 16 of 16..1024 bytes, most others up to 8 KiB, one in 256 up to 64 KiB); one old
 * block in 8 is not freed but pushed onto a random other thread's inbox, which that thread checks
 * and frees every 64 rounds (and main after the threads are done).
 *   rptest [THREADS=4] [ROUNDS=500000] [WINDOW=2000]
 * Prints the blocks allocated and bytes asked (the same on every malloc).
 */
#include "workload.h"

#include <stdatomic.h>

#define MAX_SIZE 65536

/* A block: its first word links it in an inbox, the rest carries its size as the mark. */
typedef struct block {
    struct block *next;
} block;

typedef struct worker {
    uint64_t rng;
    long rounds;
    size_t window;
    long bad;
    unsigned long long bytes, handed;
    _Atomic(block *) inbox; /* pushed by any thread, taken whole by this one */
    char pad[64];
} worker;

static worker *workers;
static int nthreads;

static size_t block_size(uint64_t *rng)
{
    uint64_t k = wl_range(rng, 0, 255);
    if (k == 0)
        return wl_range(rng, 8193, MAX_SIZE);
    return k < 240 ? wl_range(rng, 16, 1024) : wl_range(rng, 1025, 8192);
}

static block *block_new(worker *w)
{
    size_t n = block_size(&w->rng);
    unsigned char *p = wl_got(malloc(n));
    wl_mark(p + 8, n - 8, n);
    w->bytes += n;
    return (block *)p;
}

static void block_free(worker *w, block *b)
{
    if (b == NULL)
        return;
    unsigned char *p = (unsigned char *)b;
    uint64_t n;
    memcpy(&n, p + 8, sizeof n);
    w->bad += n < 16 || n > MAX_SIZE || !wl_check(p + 8, (size_t)n - 8, n);
    free(p);
}

static void inbox_push(worker *to, block *b)
{
    b->next = atomic_load_explicit(&to->inbox, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&to->inbox, &b->next, b, memory_order_release,
                                                  memory_order_relaxed))
        ;
}

static void inbox_drain(worker *w, worker *from)
{
    block *b = atomic_exchange_explicit(&from->inbox, NULL, memory_order_acquire);
    while (b != NULL) {
        block *next = b->next;
        block_free(w, b);
        b = next;
    }
}

static void *rptest(void *arg)
{
    worker *w = arg;
    block **win = wl_got(calloc(w->window, sizeof *win));
    for (size_t i = 0; i < w->window; i++)
        win[i] = block_new(w);
    for (long r = 0; r < w->rounds; r++) {
        size_t i = wl_range(&w->rng, 0, w->window - 1);
        if ((wl_next(&w->rng) & 7) == 0 && nthreads > 1) {
            size_t k = wl_range(&w->rng, 1, (size_t)nthreads - 1);
            inbox_push(&workers[((size_t)(w - workers) + k) % (size_t)nthreads], win[i]);
            w->handed++;
        } else {
            block_free(w, win[i]);
        }
        win[i] = block_new(w);
        if ((r & 63) == 63)
            inbox_drain(w, w);
    }
    for (size_t i = 0; i < w->window; i++)
        block_free(w, win[i]);
    free(win);
    inbox_drain(w, w);
    return NULL;
}

int main(int argc, char **argv)
{
    nthreads = (int)wl_arg(argc, argv, 1, 4);
    long rounds = wl_arg(argc, argv, 2, 500000);
    size_t window = (size_t)wl_arg(argc, argv, 3, 2000);
    if (nthreads < 1 || window < 1)
        return 2;
    workers = wl_got(calloc((size_t)nthreads, sizeof *workers));
    for (int i = 0; i < nthreads; i++) {
        workers[i].rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);
        workers[i].rounds = rounds;
        workers[i].window = window;
    }
    wl_run(nthreads, rptest, workers, sizeof *workers);
    worker last = {0};
    for (int i = 0; i < nthreads; i++) /* blocks pushed after their receiver was done */
        inbox_drain(&last, &workers[i]);
    long bad = last.bad;
    unsigned long long bytes = 0, handed = 0;
    for (int i = 0; i < nthreads; i++) {
        bad += workers[i].bad;
        bytes += workers[i].bytes;
        handed += workers[i].handed;
    }
    printf("rptest: %d threads, %ld rounds each, %llu bytes asked, %llu handed over, %ld damaged\n",
           nthreads, rounds, bytes, handed, bad);
    free(workers);
    return bad != 0;
}

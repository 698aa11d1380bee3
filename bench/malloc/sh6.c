/*
 * sh6.c: rounds of small blocks freed in reverse and in random order, after MicroQuill's SmartHeap
 * benchmark sh6bench. Each of T threads, ROUNDS times, allocates N blocks of random sizes of
 * 1..MAX bytes (mostly up to 64), marks each, then checks and frees them: in reverse order of
 * allocation on even rounds, in a random order on odd ones; a third of the blocks of each round
 * are freed early and allocated again at another size before the round's frees, so free lists
 * are reused while half full. Every thread keeps to its own blocks.
 *   sh6 [THREADS=2] [ROUNDS=2000] [N=1000] [MAX=512]
 * Prints the blocks allocated and bytes asked (the same on every malloc).
 */
#include "workload.h"

typedef struct worker {
    uint64_t rng;
    long rounds, n, max, bad;
    unsigned long long blocks, bytes;
    char pad[64];
} worker;

/* A block of a random size, carrying its size as its mark (sizes under 8 get 8). */
static unsigned char *block_new(worker *w, size_t *size)
{
    size_t n = wl_range(&w->rng, 0, 3) != 0
                   ? wl_range(&w->rng, 1, w->max < 64 ? (size_t)w->max : 64)
                   : wl_range(&w->rng, 1, (size_t)w->max);
    n = n < 8 ? 8 : n;
    unsigned char *p = wl_got(malloc(n));
    wl_mark(p, n, n ^ (uintptr_t)size);
    *size = n;
    w->blocks++;
    w->bytes += n;
    return p;
}

static void block_free(worker *w, unsigned char *p, size_t *size)
{
    w->bad += !wl_check(p, *size, *size ^ (uintptr_t)size);
    free(p);
}

static void *sh6(void *arg)
{
    worker *w = arg;
    size_t n = (size_t)w->n;
    unsigned char **p = wl_got(malloc(n * sizeof *p));
    size_t *size = wl_got(malloc(n * sizeof *size));
    size_t *order = wl_got(malloc(n * sizeof *order));
    for (long r = 0; r < w->rounds; r++) {
        for (size_t i = 0; i < n; i++)
            p[i] = block_new(w, &size[i]);
        for (size_t i = 0; i < n; i += 3) { /* a third freed early and replaced */
            block_free(w, p[i], &size[i]);
            p[i] = block_new(w, &size[i]);
        }
        for (size_t i = 0; i < n; i++)
            order[i] = (r & 1) == 0 ? n - 1 - i : i;
        for (size_t i = n - 1; (r & 1) != 0 && i > 0; i--) { /* Fisher-Yates */
            size_t j = wl_range(&w->rng, 0, i), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (size_t i = 0; i < n; i++)
            block_free(w, p[order[i]], &size[order[i]]);
    }
    free(order);
    free(size);
    free(p);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = (int)wl_arg(argc, argv, 1, 2);
    long rounds = wl_arg(argc, argv, 2, 2000);
    long n = wl_arg(argc, argv, 3, 1000);
    long max = wl_arg(argc, argv, 4, 512);
    if (threads < 1 || n < 1 || max < 1)
        return 2;
    worker *w = wl_got(calloc((size_t)threads, sizeof *w));
    for (int i = 0; i < threads; i++)
        w[i] = (worker){0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1), rounds, n, max, 0, 0, 0, {0}};
    wl_run(threads, sh6, w, sizeof *w);
    long bad = 0;
    unsigned long long blocks = 0, bytes = 0;
    for (int i = 0; i < threads; i++) {
        bad += w[i].bad;
        blocks += w[i].blocks;
        bytes += w[i].bytes;
    }
    printf("sh6: %d threads, %llu blocks, %llu bytes asked, %ld damaged\n", threads, blocks, bytes,
           bad);
    free(w);
    return bad != 0;
}

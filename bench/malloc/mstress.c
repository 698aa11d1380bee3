/*
 * mstress.c: many threads under a mixed load, after the stress tests of the allocator benchmark
 * suites. Each of T threads keeps a table of SLOTS blocks and, ROUNDS times, replaces a random
 * slot's block with one of a random size (three in four of 8..128 bytes, most others up to 4 KiB,
 * one in 64 up to 64 KiB), and every 16th round trades its block with a random slot of a table all
 * threads share, so blocks move between threads and are freed by one that did not allocate them
 * (often after it allocated many others). Every block carries its size and a mark at both ends,
 * checked before it is freed. Then R rounds of that again, with the threads made anew (the shared
 * table's blocks outlive their threads).
 *   mstress [THREADS=4] [ROUNDS=200000] [REPEATS=3] [SLOTS=500]
 * Prints the operations done and the bytes asked (the same on every malloc).
 */
#include "workload.h"

#include <stdatomic.h>

#define SHARED 256
#define MAX_SIZE 65536

static _Atomic(unsigned char *) shared[SHARED];

typedef struct worker {
    uint64_t rng;
    long rounds;
    size_t slots;
    long bad;
    unsigned long long bytes;
    char pad[64];
} worker;

static size_t block_size(uint64_t *rng)
{
    uint64_t k = wl_range(rng, 0, 63);
    if (k == 0)
        return wl_range(rng, 4097, MAX_SIZE);
    return k < 48 ? wl_range(rng, 8, 128) : wl_range(rng, 129, 4096);
}

/* A block of n bytes holding n in its first word and a mark in its last byte. */
static unsigned char *block_new(worker *w)
{
    size_t n = block_size(&w->rng);
    unsigned char *p = malloc(n);
    if (p == NULL)
        exit(3);
    wl_mark(p, n, n);
    w->bytes += n;
    return p;
}

/* Checks and frees a block (NULL: nothing). */
static void block_free(worker *w, unsigned char *p)
{
    if (p == NULL)
        return;
    uint64_t n;
    memcpy(&n, p, sizeof n);
    w->bad += n < 8 || n > MAX_SIZE || !wl_check(p, (size_t)n, n);
    free(p);
}

static void *stress(void *arg)
{
    worker *w = arg;
    unsigned char **blocks = calloc(w->slots, sizeof *blocks);
    if (blocks == NULL)
        exit(3);
    for (long r = 0; r < w->rounds; r++) {
        size_t i = wl_range(&w->rng, 0, w->slots - 1);
        if ((r & 15) == 15) { /* trade with the shared table */
            size_t j = wl_range(&w->rng, 0, SHARED - 1);
            blocks[i] = atomic_exchange(&shared[j], blocks[i]);
            continue;
        }
        block_free(w, blocks[i]);
        blocks[i] = block_new(w);
    }
    for (size_t i = 0; i < w->slots; i++)
        block_free(w, blocks[i]);
    free(blocks);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = (int)wl_arg(argc, argv, 1, 4);
    long rounds = wl_arg(argc, argv, 2, 200000);
    long repeats = wl_arg(argc, argv, 3, 3);
    size_t slots = (size_t)wl_arg(argc, argv, 4, 500);
    worker *w = calloc((size_t)threads, sizeof *w);
    if (w == NULL || threads < 1 || slots < 1)
        return 2;
    for (int i = 0; i < threads; i++)
        w[i] = (worker){0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1), rounds, slots, 0, 0, {0}};
    for (long k = 0; k < repeats; k++)
        wl_run(threads, stress, w, sizeof *w);
    worker last = {0};
    for (size_t j = 0; j < SHARED; j++)
        block_free(&last, atomic_exchange(&shared[j], NULL));
    long bad = last.bad;
    unsigned long long bytes = 0;
    for (int i = 0; i < threads; i++) {
        bad += w[i].bad;
        bytes += w[i].bytes;
    }
    printf("mstress: %d threads, %ld rounds each, %ld times, %llu bytes asked, %ld damaged\n",
           threads, rounds, repeats, bytes, bad);
    free(w);
    return bad != 0;
}

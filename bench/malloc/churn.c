/*
 * churn.c: tight malloc and free of small blocks, after glibc's bench-malloc-simple and
 * bench-malloc-thread. Each of T threads keeps a table of SLOTS blocks and, ROUNDS times, frees a
 * random slot's block and allocates one of a random size there, sizes mostly small (16..256 bytes,
 * one in eight up to 4 KiB); then a burst of BURST blocks of one size allocated and freed at once.
 * One thread is glibc-simple's case, several glibc-thread's.
 *   churn [THREADS=1] [ROUNDS=2000000] [SLOTS=512]
 * Prints the operations done (the same on every malloc).
 */
#include "workload.h"

#define BURST 100

typedef struct worker {
    uint64_t rng;
    long rounds;
    size_t slots;
    unsigned long long sum;
    char pad[64];
} worker;

static void *churn(void *arg)
{
    worker *w = arg;
    void **blocks = wl_got(calloc(w->slots, sizeof *blocks));
    void *burst[BURST];
    for (long r = 0; r < w->rounds; r++) {
        size_t i = wl_range(&w->rng, 0, w->slots - 1);
        free(blocks[i]);
        size_t n = (r & 7) == 0 ? wl_range(&w->rng, 16, 4096) : wl_range(&w->rng, 16, 256);
        blocks[i] = wl_got(malloc(n));
        *(volatile char *)blocks[i] = (char)n;
        w->sum += n;
        if (r % 10000 == 0) {
            for (int k = 0; k < BURST; k++)
                burst[k] = wl_got(malloc(n));
            for (int k = 0; k < BURST; k++)
                free(burst[k]);
        }
    }
    for (size_t i = 0; i < w->slots; i++)
        free(blocks[i]);
    free(blocks);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = (int)wl_arg(argc, argv, 1, 1);
    long rounds = wl_arg(argc, argv, 2, 2000000);
    size_t slots = (size_t)wl_arg(argc, argv, 3, 512);
    worker *w = wl_got(calloc((size_t)threads, sizeof *w));
    for (int i = 0; i < threads; i++)
        w[i] = (worker){0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1), rounds, slots, 0, {0}};
    wl_run(threads, churn, w, sizeof *w);
    unsigned long long sum = 0;
    for (int i = 0; i < threads; i++)
        sum += w[i].sum;
    printf("churn: %d threads, %ld operations each, %llu bytes asked\n", threads, rounds, sum);
    free(w);
    return 0;
}

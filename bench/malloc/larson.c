/*
 * larson.c: a server's pattern, after Larson and Krishnan's benchmark. Each of T threads owns a
 * table of SLOTS blocks of 8..1000 bytes and, ROUNDS times, frees a random slot's block and
 * allocates a new one there. Then the threads exit and new ones take the tables over, each the
 * table another thread filled, for GENERATIONS generations: every block is freed by a thread other
 * than the one that allocated it, often after that thread has exited.
 *   larson [THREADS=4] [GENERATIONS=10] [ROUNDS=20000] [SLOTS=1000]
 * Prints the operations done and the bytes live at the end (the same on every malloc).
 */
#include "workload.h"

typedef struct table {
    void **blocks;
    size_t *sizes;
    uint64_t rng;
    long rounds;
    size_t slots;
    long bad;
    char pad[64];
} table;

static void *serve(void *arg)
{
    table *t = arg;
    for (long r = 0; r < t->rounds; r++) {
        size_t i = wl_range(&t->rng, 0, t->slots - 1);
        if (t->blocks[i] != NULL) {
            t->bad += !wl_check(t->blocks[i], t->sizes[i], t->sizes[i] * 31 + i);
            free(t->blocks[i]);
        }
        size_t n = wl_range(&t->rng, 8, 1000);
        t->blocks[i] = wl_got(malloc(n));
        t->sizes[i] = n;
        wl_mark(t->blocks[i], n, n * 31 + i);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = (int)wl_arg(argc, argv, 1, 4);
    long gens = wl_arg(argc, argv, 2, 10), rounds = wl_arg(argc, argv, 3, 20000);
    size_t slots = (size_t)wl_arg(argc, argv, 4, 1000);
    table *tables = wl_got(calloc((size_t)threads, sizeof *tables));
    table *run = wl_got(calloc((size_t)threads, sizeof *run));
    for (int i = 0; i < threads; i++) {
        tables[i] = (table){wl_got(calloc(slots, sizeof(void *))),
                            wl_got(calloc(slots, sizeof(size_t))),
                            0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1),
                            rounds,
                            slots,
                            0,
                            {0}};
    }
    for (long g = 0; g < gens; g++) {
        /* Thread i of this generation takes table (i + g) % threads: not the one it had. */
        for (int i = 0; i < threads; i++)
            run[i] = tables[(i + g) % threads];
        wl_run(threads, serve, run, sizeof *run);
        for (int i = 0; i < threads; i++)
            tables[(i + g) % threads] = run[i];
    }
    long bad = 0;
    unsigned long long live = 0;
    for (int i = 0; i < threads; i++) {
        for (size_t k = 0; k < slots; k++) {
            if (tables[i].blocks[k] != NULL)
                bad +=
                    !wl_check(tables[i].blocks[k], tables[i].sizes[k], tables[i].sizes[k] * 31 + k);
            live += tables[i].sizes[k];
            free(tables[i].blocks[k]);
        }
        bad += tables[i].bad;
        free(tables[i].blocks);
        free(tables[i].sizes);
    }
    printf("larson: %d threads, %ld operations, %llu bytes live at the end, %ld damaged\n", threads,
           (long)threads * gens * rounds, live, bad);
    free(tables);
    free(run);
    return bad != 0;
}

/*
 * cache_scratch.c: false sharing, after Hoard's cache-scratch and cache-thrash. Each of T threads
 * allocates an object of SIZE bytes, writes every byte of it WRITES times, frees it, ROUNDS times.
 * In scratch mode (the default) the main thread first allocates one object per thread, side by
 * side, and each thread begins by freeing the one it was given: a malloc that hands the freed
 * object (or its cache line) back to that thread makes threads write one line. In thrash mode no
 * object is passed: a malloc that gives threads neighbouring objects makes them share lines.
 *   cache_scratch [scratch|thrash] [THREADS=4] [ROUNDS=2000] [WRITES=200] [SIZE=8]
 * Prints the sums of what was written (the same on every malloc).
 */
#include "workload.h"

typedef struct worker {
    char *given;
    long rounds, writes;
    size_t size;
    unsigned long long sum;
    char pad[64];
} worker;

static void *scratch(void *arg)
{
    worker *w = arg;
    free(w->given);
    for (long r = 0; r < w->rounds; r++) {
        volatile char *p = wl_got(malloc(w->size));
        for (long k = 0; k < w->writes; k++) {
            for (size_t i = 0; i < w->size; i++)
                p[i] = (char)(p[i] * 0 + (char)(k + (long)i));
        }
        w->sum += (unsigned char)p[w->size - 1];
        free((void *)p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int thrash = argc > 1 && strcmp(argv[1], "thrash") == 0;
    int threads = (int)wl_arg(argc, argv, 2, 4);
    long rounds = wl_arg(argc, argv, 3, 2000), writes = wl_arg(argc, argv, 4, 200);
    size_t size = (size_t)wl_arg(argc, argv, 5, 8);
    worker *w = wl_got(calloc((size_t)threads, sizeof *w));
    for (int i = 0; i < threads; i++)
        w[i] = (worker){thrash ? NULL : wl_got(malloc(size)), rounds, writes, size, 0, {0}};
    wl_run(threads, scratch, w, sizeof *w);
    unsigned long long sum = 0;
    for (int i = 0; i < threads; i++)
        sum += w[i].sum;
    printf("cache_%s: %d threads, %ld objects of %zu bytes each, sum %llu\n",
           thrash ? "thrash" : "scratch", threads, rounds, size, sum);
    free(w);
    return 0;
}

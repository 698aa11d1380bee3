/*
 * malloc_large.c: large blocks, after mimalloc-bench's malloc-large. A table of SLOTS blocks of
 * 64 KiB..4 MiB; ROUNDS times a random slot's block is freed and a new one of a random size put
 * there, with one byte written on each of its pages (so a malloc that gives its pages back and
 * maps them again on every reuse pays a fault per page).
 *   malloc_large [ROUNDS=5000] [SLOTS=20]
 * Prints the pages touched (the same on every malloc).
 */
#include "workload.h"

int main(int argc, char **argv)
{
    long rounds = wl_arg(argc, argv, 1, 5000);
    size_t slots = (size_t)wl_arg(argc, argv, 2, 20);
    unsigned char **blocks = wl_got(calloc(slots, sizeof *blocks));
    size_t *sizes = wl_got(calloc(slots, sizeof *sizes));
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    unsigned long long pages = 0;
    long bad = 0;
    for (long r = 0; r < rounds; r++) {
        size_t i = wl_range(&rng, 0, slots - 1);
        if (blocks[i] != NULL) {
            bad += blocks[i][sizes[i] - 1] != (unsigned char)i;
            free(blocks[i]);
        }
        size_t n = wl_range(&rng, (size_t)64 << 10, (size_t)4 << 20);
        unsigned char *p = wl_got(malloc(n));
        for (size_t k = 0; k < n; k += 4096, pages++)
            p[k] = (unsigned char)k;
        p[n - 1] = (unsigned char)i;
        blocks[i] = p;
        sizes[i] = n;
    }
    for (size_t i = 0; i < slots; i++)
        free(blocks[i]);
    printf("malloc_large: %ld blocks, %llu pages written, %ld damaged\n", rounds, pages, bad);
    free(blocks);
    free(sizes);
    return bad != 0;
}

/*
 * mleak.c: a program that leaks, after the leak tests of the allocator benchmark suites. ROUNDS
 * times, it allocates N blocks of random sizes (mostly 16..256 bytes, one in 16 up to 4 KiB),
 * marks them, then checks and frees all but one in LEAK of them, whose pointers it forgets; the
 * next round's blocks come from memory the leaked ones are scattered through. At the end the
 * resident set (/proc/self/statm) must be within 2x the bytes leaked plus 64 MiB (a malloc that
 * does not reuse what the round freed grows without bound), else the exit status is 1.
 *   mleak [ROUNDS=2000] [N=2000] [LEAK=100]
 * Prints the blocks and bytes leaked (the same on every malloc).
 */
#include "workload.h"

#include <unistd.h>

static size_t block_size(uint64_t *rng)
{
    return wl_range(rng, 0, 15) == 0 ? wl_range(rng, 257, 4096) : wl_range(rng, 16, 256);
}

/* The resident set in bytes, or 0 when it cannot be read. */
static unsigned long long resident(void)
{
    unsigned long long size = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * (unsigned long long)sysconf(_SC_PAGESIZE);
}

int main(int argc, char **argv)
{
    long rounds = wl_arg(argc, argv, 1, 2000);
    size_t n = (size_t)wl_arg(argc, argv, 2, 2000);
    long leak = wl_arg(argc, argv, 3, 100);
    if (rounds < 1 || n < 1 || leak < 1)
        return 2;
    unsigned char **p = wl_got(malloc(n * sizeof *p));
    size_t *size = wl_got(malloc(n * sizeof *size));
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    unsigned long long leaked = 0, bytes = 0;
    long bad = 0;
    for (long r = 0; r < rounds; r++) {
        for (size_t i = 0; i < n; i++) {
            size[i] = block_size(&rng);
            p[i] = wl_got(malloc(size[i]));
            wl_mark(p[i], size[i], size[i] * 2654435761u + i);
        }
        for (size_t i = 0; i < n; i++) {
            bad += !wl_check(p[i], size[i], size[i] * 2654435761u + i);
            if (wl_range(&rng, 1, (size_t)leak) == 1) {
                leaked++;
                bytes += size[i];
            } else {
                free(p[i]);
            }
        }
    }
    free(size);
    free(p);
    unsigned long long rss = resident();
    int sane = rss <= 2 * bytes + (64ULL << 20);
    if (!sane)
        fprintf(stderr, "mleak: resident %llu bytes for %llu leaked\n", rss, bytes);
    printf("mleak: %ld rounds, %llu blocks and %llu bytes leaked, %ld damaged\n", rounds, leaked,
           bytes, bad);
    return bad != 0 || !sane;
}

/*
 * bench_util.h: the clock, the random numbers and the order of medians every benchmark program
 * here uses (bench_pool, the suite's peer programs and its report), so that all time, draw and
 * sort exactly alike.
 */
#ifndef MP_BENCH_UTIL_H
#define MP_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* qsort's order of doubles, for the medians. */
static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Monotonic nanoseconds. */
static inline double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* xorshift64 (Marsaglia 2003): three shifts, the same sequence wherever it is seeded alike. */
static inline uint64_t rng_step(uint64_t x)
{
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

/* A uniform index below n (n <= 2^32) by multiply-shift (Lemire 2019): no division in the loops. */
static inline size_t rng_index(uint64_t x, size_t n)
{
    return (size_t)(((x >> 32) * (uint64_t)n) >> 32);
}

#endif /* MP_BENCH_UTIL_H */

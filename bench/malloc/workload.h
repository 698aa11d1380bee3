/*
 * workload.h: what the allocation-pattern programs of bench/malloc/ share. Each program is written
 * against plain malloc and free, built with no library of ours, and run as it is or under
 * LD_PRELOAD (scripts/preload.sh, scripts/bench-preload.sh). Its output depends on its arguments
 * alone, never on timing or on the malloc, so a run on glibc and a run on another malloc print the
 * same lines; a block found damaged is counted and printed, and makes the exit status 1.
 */
#ifndef WORKLOAD_H
#define WORKLOAD_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A small, fast random generator (xorshift64*): one state per thread, seeded by the caller. */
static inline uint64_t wl_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* A number in [lo, hi]. */
static inline size_t wl_range(uint64_t *s, size_t lo, size_t hi)
{
    return lo + (size_t)(wl_next(s) % (hi - lo + 1));
}

/* Argument i as a number, or def when absent. */
static inline long wl_arg(int argc, char **argv, int i, long def)
{
    return argc > i ? strtol(argv[i], NULL, 10) : def;
}

/* Marks a block of n bytes (n >= 8) with a tag in its first and last bytes; wl_check tells whether
 * the marks are still there (a malloc that handed the block out twice, or corrupted it, fails). */
static inline void wl_mark(void *p, size_t n, uint64_t tag)
{
    ((unsigned char *)p)[n - 1] = (unsigned char)(tag >> 8);
    memcpy(p, &tag, 8);
}

static inline int wl_check(const void *p, size_t n, uint64_t tag)
{
    uint64_t t;
    memcpy(&t, p, 8);
    return t == tag && (n == 8 || ((const unsigned char *)p)[n - 1] == (unsigned char)(tag >> 8));
}

/* p, the result of an allocation: a NULL stops the program with a message and the status 3 (a
 * benchmark out of memory has nothing left to measure). */
static inline void *wl_got(void *p)
{
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(3);
    }
    return p;
}

/* Runs fn(arg + i * size) on n threads and waits for them; exits when a thread cannot start. */
static inline void wl_run(int n, void *(*fn)(void *), void *arg, size_t size)
{
    pthread_t *t = wl_got(malloc((size_t)n * sizeof *t));
    for (int i = 0; i < n; i++) {
        if (pthread_create(&t[i], NULL, fn, (char *)arg + (size_t)i * size) != 0) {
            fprintf(stderr, "cannot start a thread\n");
            exit(2);
        }
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    free(t);
}

#endif

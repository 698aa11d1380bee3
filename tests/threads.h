/*
 * threads.h: what the multi-thread tests share (test_threads*.c, and other tests that include
 * it): a seeded generator, stamped block contents, failure reporting from worker threads, the
 * counting chunk source (counting_source.h), thread helpers and the MP_TEST_SCALE factor.
 *
 * Stamped blocks: every block a test holds carries, in its first 8 bytes, a stamp unique to the
 * allocation, and after it a pattern derived from the block's address and the stamp. A holder
 * verifies the whole block before freeing it, so a block handed out twice at once, a block written
 * by the library while live (a link stored in it), or a block moved between threads without the
 * ordering that makes its contents visible shows up as a mismatch. Blocks are therefore at least
 * 8 bytes in these tests.
 *
 * Worker threads must not use CHECK (the harness counters are plain variables): they call
 * tfail(), which counts atomically and prints the first TFAIL_MAX_REPORTS lines; the main thread
 * then CHECKs tfail_take() == 0 once per scenario.
 */
#ifndef MP_TEST_THREADS_H
#define MP_TEST_THREADS_H

#include "counting_source.h"
#include "mempool.h"
#include "test.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * Scale and randomness
 * ---------------------------------------------------------------------------------------------- */

/* n times the scale, at least `floor`. */
static inline uint64_t scaled_at_least(uint64_t n, uint64_t floor)
{
    double r = (double)n * test_scale();
    return r < (double)floor ? floor : (uint64_t)r;
}

/* SplitMix64's finaliser: a good 64-bit mix, used to seed and to derive patterns. */
static inline uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15u;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
    return x ^ (x >> 31);
}

/* xorshift64*: one per thread, seeded from (seed, stream) so each thread's choices are fixed. */
typedef struct rng {
    uint64_t s;
} rng;

static inline rng rng_make(uint64_t seed, uint64_t stream)
{
    rng r = {mix64(seed ^ mix64(stream + 0x1234567u))};
    if (r.s == 0)
        r.s = 1;
    return r;
}

static inline uint64_t rng_next(rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Du;
}

/* Uniform enough in [0, n) for n far below 2^32. */
static inline uint32_t rng_below(rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * n) >> 32);
}

/* ------------------------------------------------------------------------------------------------
 * Failures in worker threads
 * ---------------------------------------------------------------------------------------------- */

#define TFAIL_MAX_REPORTS 20

static atomic_ulong tfail_count; /* each test program has its own */

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 1, 2)))
#endif
static inline void
tfail(const char *fmt, ...)
{
    unsigned long n = atomic_fetch_add(&tfail_count, 1) + 1;
    if (n > TFAIL_MAX_REPORTS)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    printf("  thread failure: %s\n", line); /* one call: stdio keeps the line whole */
    fflush(stdout);
}

/* The failures reported since the last call. */
static inline unsigned long tfail_take(void)
{
    return atomic_exchange(&tfail_count, 0);
}

/* ------------------------------------------------------------------------------------------------
 * Stamped blocks
 * ---------------------------------------------------------------------------------------------- */

/* A stamp no other allocation of the run shares: the allocating thread's number and a count. */
static inline uint64_t stamp_make(uint32_t thread_no, uint64_t count)
{
    return ((uint64_t)(thread_no + 1) << 40) | (count & ((UINT64_C(1) << 40) - 1));
}

static inline uint64_t pattern_word(const void *block, uint64_t stamp, size_t i)
{
    return mix64((uint64_t)(uintptr_t)block ^ (stamp * 0x9E3779B97F4A7C15u)) + i * 0x10001u;
}

/* Writes the stamp and the pattern over all `size` bytes (size >= 8). */
static inline void block_fill(void *block, size_t size, uint64_t stamp)
{
    unsigned char *p = block;
    memcpy(p, &stamp, 8);
    size_t i = 8;
    for (; i + 8 <= size; i += 8) {
        uint64_t w = pattern_word(block, stamp, i);
        memcpy(p + i, &w, 8);
    }
    if (i < size) {
        uint64_t w = pattern_word(block, stamp, i);
        memcpy(p + i, &w, size - i);
    }
}

/* True if the block holds a stamp and the pattern that stamp and its address give; the stamp in
 * *out. */
static inline bool block_verify(const void *block, size_t size, uint64_t *out)
{
    const unsigned char *p = block;
    uint64_t stamp;
    memcpy(&stamp, p, 8);
    if (out != NULL)
        *out = stamp;
    if (stamp == 0)
        return false;
    size_t i = 8;
    for (; i + 8 <= size; i += 8) {
        uint64_t w = pattern_word(block, stamp, i), v;
        memcpy(&v, p + i, 8);
        if (v != w)
            return false;
    }
    if (i < size) {
        uint64_t w = pattern_word(block, stamp, i), v = 0;
        memcpy(&v, p + i, size - i);
        if (memcmp(&v, &w, size - i) != 0)
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * Threads
 * ---------------------------------------------------------------------------------------------- */

/* Starts one thread running fn(arg); false, with the reason printed, on failure. */
static inline bool thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int e = pthread_create(t, NULL, fn, arg);
    if (e != 0)
        printf("pthread_create: %s\n", strerror(e));
    return e == 0;
}

/* Starts n threads running fn(args + i * arg_size); false (and nothing left running) on failure. */
static inline bool threads_start(pthread_t *t, size_t n, void *(*fn)(void *), void *args,
                                 size_t arg_size)
{
    for (size_t i = 0; i < n; i++) {
        if (!thread_start(&t[i], fn, (char *)args + i * arg_size)) {
            for (size_t j = 0; j < i; j++)
                pthread_join(t[j], NULL);
            return false;
        }
    }
    return true;
}

static inline void threads_join(pthread_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

/* Runs fn(arg) in one new thread and waits for it to exit. */
static inline bool thread_run(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    if (!threads_start(&t, 1, fn, arg, 0))
        return false;
    pthread_join(t, NULL);
    return true;
}

/* Statistics, or all zero with a failure when they cannot be read. */
static inline mp_stats stats_of(const mp_pool *pool)
{
    mp_stats st;
    memset(&st, 0, sizeof st);
    if (mp_pool_stats(pool, &st) != 0)
        tfail("mp_pool_stats failed");
    return st;
}

/*
 * The invariants mp_pool_stats() promises, which hold in any snapshot, even one taken while other
 * threads use the pool: allocs - frees == in_use (so frees <= allocs), in_use <= peak,
 * bytes_used == in_use * block_size <= bytes_reserved. Reports each broken one with `what`.
 */
static inline bool stats_consistent(const mp_stats *st, const char *what)
{
    bool ok = true;
    if (st->frees > st->allocs || st->allocs - st->frees != st->blocks_in_use) {
        tfail("%s: allocs %" PRIu64 " - frees %" PRIu64 " != blocks_in_use %" PRIu64, what,
              st->allocs, st->frees, st->blocks_in_use);
        ok = false;
    }
    if (st->blocks_in_use > st->blocks_peak) {
        tfail("%s: blocks_in_use %" PRIu64 " > blocks_peak %" PRIu64, what, st->blocks_in_use,
              st->blocks_peak);
        ok = false;
    }
    if (st->bytes_used != st->blocks_in_use * st->block_size ||
        st->bytes_used > st->bytes_reserved) {
        tfail("%s: bytes_used %" PRIu64 " (in use %" PRIu64 " x %zu), bytes_reserved %" PRIu64,
              what, st->bytes_used, st->blocks_in_use, st->block_size, st->bytes_reserved);
        ok = false;
    }
    return ok;
}

#endif /* MP_TEST_THREADS_H */

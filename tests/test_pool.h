/*
 * test_pool.h: what the pool suites (test_pool_*.c) share: small pools made in one line, exact
 * statistics, the EINVAL check of create, block patterns, and an error handler that records.
 * Only the public API is used.
 */
#ifndef MP_TEST_POOL_H
#define MP_TEST_POOL_H

#include "counting_source.h"
#include "mempool.h"
#include "test.h"
#include "utf8.h"

#include <errno.h>
#include <signal.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------------------------------- */

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

/*
 * Whether a test may touch free blocks (read or write them), as the corruption cases of
 * mp_pool_check and the misuse cases of checked and secure pools do. Not in an AddressSanitizer
 * build, nor under Valgrind: there the library poisons free blocks (and a plain pool keeps its list
 * out of them), so touching one is a tool error rather than the corruption the test means.
 */
static inline bool free_blocks_touchable(void)
{
    return !TEST_ASAN && !TEST_ON_VALGRIND();
}

static inline size_t page_size(void)
{
    long n = sysconf(_SC_PAGESIZE);
    return n > 0 ? (size_t)n : 4096;
}

static inline bool is_aligned(const void *p, size_t align)
{
    return ((uintptr_t)p & (align - 1)) == 0;
}

static inline size_t round_up(size_t n, size_t align)
{
    return (n + align - 1) / align * align;
}

static inline mp_pool *make(size_t block_size, size_t align, size_t capacity, unsigned flags)
{
    return mp_pool_create(&(mp_pool_opts){
        .block_size = block_size, .align = align, .capacity = capacity, .flags = flags});
}

static inline mp_stats stats_of(const mp_pool *pool)
{
    mp_stats s;
    memset(&s, 0xEE, sizeof s);
    int rc = mp_pool_stats(pool, &s);
    CHECK("stats: mp_pool_stats of a live pool returns 0", rc == 0);
    return s;
}

/* Creates a pool that must fail; true if it did with errno == err. Destroys it if it did not. */
static inline bool create_fails(const mp_pool_opts *opts, int err)
{
    errno = 0;
    mp_pool *pool = mp_pool_create(opts);
    int e = errno;
    mp_pool_destroy(pool);
    return pool == NULL && e == err;
}

/* The default alignment as the header defines it, computed independently of the library. */
static inline size_t default_align(size_t block_size)
{
    size_t a = block_size & (~block_size + 1); /* largest power of two dividing block_size */
    if (a > alignof(max_align_t))
        a = alignof(max_align_t);
    if (a < alignof(void *))
        a = alignof(void *);
    return a;
}

/* Fills n bytes with a pattern seeded by `seed`; pattern_ok verifies it. */
static inline void pattern_fill(void *p, size_t n, unsigned seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed * 131u + i * 7u + (i >> 8));
}

static inline bool pattern_ok(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed * 131u + i * 7u + (i >> 8)))
            return false;
    return true;
}

static inline int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return (x > y) - (x < y);
}

/* True if the n blocks of `size` bytes at ps[] are pairwise disjoint (sorts ps). */
static inline bool disjoint(void **ps, size_t n, size_t size)
{
    qsort(ps, n, sizeof *ps, cmp_ptr);
    for (size_t i = 1; i < n; i++)
        if ((uintptr_t)ps[i - 1] + size > (uintptr_t)ps[i])
            return false;
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * Errors reported to a handler: recorded
 * ---------------------------------------------------------------------------------------------- */

typedef struct seen {
    int n;
    mp_error last; /* its pointers are compared, never followed, after the call */
    char message[256];
    char pool_name[MP_NAME_MAX];
} seen;

static inline void record_error(const mp_error *e, void *ctx)
{
    seen *s = ctx;
    s->n++;
    s->last = *e;
    snprintf(s->message, sizeof s->message, "%s", e->message ? e->message : "(null)");
    snprintf(s->pool_name, sizeof s->pool_name, "%s", e->pool_name ? e->pool_name : "(null)");
}

#endif /* MP_TEST_POOL_H */

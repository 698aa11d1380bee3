/*
 * suite_peer.h: what the two files of a peer program share. suite_peer.c has main, the helpers and
 * the one-thread workloads; suite_peer_mt.c the workloads with threads and variable sizes. Both are
 * compiled with the peer's adapter (SUITE_PEER_HEADER), which must be included before this file:
 * the helpers that open and use a handle are declared with its types.
 *
 * Everything here measures without calling the allocator under test (stdio's buffers come from
 * malloc, which is the peer itself in some programs): /proc is read with plain system calls, the
 * workloads' own arrays are mapped (scratch_get), and threads are made by pthread_create, whose
 * stacks are mapped too.
 */
#ifndef MP_BENCH_SUITE_PEER_H
#define MP_BENCH_SUITE_PEER_H

#include "../bench_util.h"
#include "suite.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* No instruction, but `p` escapes and all memory may be read or written here: the compiler can
 * neither drop an allocation nor its touch, nor merge one iteration with the next. */
#define ESCAPE(p) __asm__ __volatile__("" : : "r"(p) : "memory")

/* What one measurement reports (the result line of suite.h). */
typedef struct result {
    double ns;      /* ns per op of the timed section (threads: wall time over all threads' ops) */
    double fill_ns; /* churn and varsize: ns per object of opening and filling */
    uint64_t ops;   /* ops timed */
    size_t live;    /* objects live at rss_end */
    double live_bytes; /* their payload, bytes */
    long minflt;       /* minor faults from the frame's start to its end */
    double rss_base, rss_end, hwm;
    uint64_t depth_max; /* handover: most structures outstanding at a build's end (0: others) */
    double depth_mean;  /* handover: their mean over the builds */
} result;

/* One workload: size, N and M as suite.h says, and the threads that run it (1 for the one-thread
 * workloads). */
typedef result workload_fn(size_t size, uint64_t n, uint64_t m, unsigned threads);

/* ------------------------------------------------------------------------------------------------
 * Helpers (suite_peer.c)
 * ---------------------------------------------------------------------------------------------- */

_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void die_oom(const char *where);
/* Zeroed memory for the workload's own arrays, mapped and faulted in before any figure is taken,
 * so it is in the baseline and never in a peer's figures. */
void *scratch_get(size_t bytes);
void scratch_put(void *p, size_t bytes);
/* The measurement frame: the baseline before the workload, the figures at the end of its timed
 * section (every object still live). */
void frame_begin(result *r);
void frame_end(result *r, size_t live, double live_bytes);
/* One alloc and free of `size` through a handle of its own, before the baseline: the peer's
 * one-time setup (arenas, thread caches, its code's pages) is not charged to the workload. */
void peer_first_use(size_t size);
peer_handle *open_or_die(size_t size, size_t max_live);

/* The workloads with threads and variable sizes (suite_peer_mt.c). */
workload_fn wl_threads_pair, wl_threads_batch, wl_prodcons, wl_varsize, wl_varsize_sparse, wl_own,
    wl_handover;

/* ------------------------------------------------------------------------------------------------
 * Inline helpers: the touch (the clock and random numbers: bench_util.h)
 * ---------------------------------------------------------------------------------------------- */

/* Writes the object's first word and last byte, as initialising an object would. */
static inline void touch(void *p, size_t size, uint64_t v)
{
    *(uint64_t *)p = v;
    ((char *)p)[size - 1] = (char)v;
}

/* A new object of `size` bytes, touched with v and escaped; dies naming `where` when the peer has
 * none. Always inlined: each workload's loop compiles as it did with these lines written out. */
static inline __attribute__((always_inline)) char *alloc_touched(peer_handle *h, size_t size,
                                                                 uint64_t v, const char *where)
{
    char *p = peer_alloc(h, size);
    if (UNLIKELY(p == NULL))
        die_oom(where);
    touch(p, size, v);
    ESCAPE(p);
    return p;
}

#endif /* MP_BENCH_SUITE_PEER_H */

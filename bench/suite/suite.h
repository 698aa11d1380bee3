/*
 * suite.h: what the driver (suite.c) and the peer programs (suite_peer.c) agree on: the workloads,
 * the block sizes and the one-line protocol between them.
 *
 * The driver starts a fresh peer process for every measurement:
 *     suite_<peer> --info
 *     suite_<peer> WORKLOAD SIZE N M
 * where SIZE is the block size (0 for the server, which has its own sizes) and N, M say how much:
 *     pair, batch_*   at most N ops timed, fewer if that fills M microseconds (a slow peer is timed
 *                     over fewer ops rather than for longer; see calibrate() in suite_peer.c)
 *     churn           N steps timed, M objects live (fixed: the memory figures depend on them)
 *     server          N ticks timed, after M ticks untimed (fixed, likewise)
 * The peer answers with one line on stdout (anything else it prints goes to stderr):
 *     info <one line: what the peer is, its version, how it is linked and called>
 *     unusable <why>      and exit status SUITE_EXIT_UNUSABLE, if the peer cannot be measured here
 *     result ns=<ns per op> fill_ns=<ns per object> ops=<n> live=<n> live_bytes=<bytes> minflt=<n>
 *            rss_base=<bytes> rss_end=<bytes> hwm=<bytes>
 * ns is the figure of the timed section; fill_ns only churn reports (its fill phase); live is the
 * objects live at rss_end and live_bytes their payload; minflt the minor page faults from opening
 * the peer to the end of the timed section; rss_base the resident set just before the workload,
 * rss_end at the end of the timed section (its objects still live), hwm the process's peak
 * resident set (VmHWM).
 *
 * An "op" is one allocation and its free in every workload: a pair, one object of a batch, one
 * churn step (free a victim, allocate its replacement), one object of the server's life.
 */
#ifndef MP_BENCH_SUITE_H
#define MP_BENCH_SUITE_H

#include <stddef.h>
#include <string.h>

/* The workloads. To add one (threads and variable sizes are next): an enum value here, a row in
 * suite_workloads, a function in suite_peer.c's workload table and its counts in suite.c. */
enum suite_workload {
    WL_PAIR,       /* alloc, touch, free, repeated */
    WL_BATCH_FIFO, /* alloc SUITE_BATCH objects, then free them oldest first */
    WL_BATCH_LIFO, /* the same, newest first */
    WL_CHURN,      /* LIVE objects live; free a random one, allocate and touch its replacement */
    WL_SERVER,     /* a server's life: four object types, exponential lifetimes (fixed sizes) */
    /* WL_THREADS:  later, with thread-safe pools (peers declare PEER_THREAD_SAFE). */
    /* WL_VARSIZE:  later, with mp_malloc (peers declare PEER_FIXED_SIZE 0). */
    WL_COUNT
};

typedef struct suite_workload_info {
    const char *name;  /* on the command line, in file names */
    const char *title; /* in the table */
    int sized;         /* 1: run at every size in suite_sizes; 0: one size mix of its own */
} suite_workload_info;

static const suite_workload_info suite_workloads[WL_COUNT] = {
    [WL_PAIR] = { "pair", "pair: alloc, touch, free", 1 },
    [WL_BATCH_FIFO] = { "batch_fifo", "batch FIFO: alloc 1000, free them oldest first", 1 },
    [WL_BATCH_LIFO] = { "batch_lifo", "batch LIFO: alloc 1000, free them newest first", 1 },
    [WL_CHURN] = { "churn", "churn: free a random live object, alloc and touch a new one", 1 },
    [WL_SERVER] = { "server", "server: requests with exponential lifetimes, 4 object sizes", 0 },
};

/* The block sizes of the sized workloads, bytes. */
static const size_t suite_sizes[] = { 16, 64, 256, 1024 };
#define SUITE_NSIZES (sizeof suite_sizes / sizeof suite_sizes[0])

/* A peer's exit status when it cannot be measured in this build (see peer_init in suite_peer.c). */
#define SUITE_EXIT_UNUSABLE 3

/* The server's object types: every `every` ticks `count` objects of `size` bytes arrive, each living
 * for a time drawn from an exponential distribution of mean `mean` ticks (the longest drawn is ~9.0 x
 * the mean: 73.8k ticks for a session, within the peer's timing wheel). */
typedef struct suite_server_type {
    const char *name;
    size_t size;
    unsigned every, count;
    double mean;
} suite_server_type;

#define SUITE_SERVER_TYPES 4
static const suite_server_type suite_server_types[SUITE_SERVER_TYPES] = {
    { "session", 384, 2, 1, 8192 },
    { "request", 160, 1, 8, 128 },
    { "header", 48, 1, 24, 32 },
    { "buffer", 1024, 1, 8, 4 },
};

/* Objects per batch round. */
#define SUITE_BATCH 1000

static inline int suite_workload_find(const char *name)
{
    for (int w = 0; w < WL_COUNT; w++)
        if (strcmp(suite_workloads[w].name, name) == 0)
            return w;
    return -1;
}

#endif /* MP_BENCH_SUITE_H */

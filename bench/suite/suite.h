/*
 * suite.h: what the driver (suite.c) and the peer programs (suite_peer.c) agree on: the workloads,
 * the block sizes and the one-line protocol between them.
 *
 * The driver starts a fresh peer process for every measurement:
 *     suite_<peer> --info
 *     suite_<peer> WORKLOAD SIZE N M [THREADS]
 * where SIZE is the block size (0 for a workload with sizes of its own), THREADS the threads that
 * run it (1 when absent; the thread workloads and varsize), and N, M say how much:
 *     pair, ts_pair, batch_*  at most N ops timed, fewer if that fills M microseconds (a slow peer
 *                     is timed over fewer ops rather than for longer; see calibrate() in
 *                     suite_peer.c)
 *     churn           N steps timed, M objects live (fixed: the memory figures depend on them)
 *     server          N ticks timed, after M ticks untimed (fixed, likewise)
 *     threads_*, prodcons  timed for M microseconds, as many ops as fit (N unused but positive):
 *                     with threads, the peers' rates decide the work, so a fixed time is the fair
 *                     cut
 *     own, handover   timed for M microseconds, as many whole structures of N blocks as fit
 *     varsize, varsize_sparse  N steps timed and M objects live, in all: each of the THREADS
 *                     threads has M / THREADS objects of its own and takes N / THREADS steps
 *                     (fixed)
 *     region          SIZE is the tree's node count (each node SUITE_REGION_NODE bytes), N the
 *                     nodes timed in all: N / SIZE rounds (at least one) after one untimed round;
 *                     an op is one node's alloc, its share of the walk and of the release
 * The peer answers with one line on stdout (anything else it prints goes to stderr):
 *     info <one line: what the peer is, its version, how it is linked and called>
 *     unusable <why>      and exit status SUITE_EXIT_UNUSABLE, if the peer cannot be measured here
 *     result ns=<ns per op> fill_ns=<ns per object> ops=<n> live=<n> live_bytes=<bytes> minflt=<n>
 *            rss_base=<bytes> rss_end=<bytes> hwm=<bytes> [depth_max=<n> depth_mean=<x>]
 * ns is the figure of the timed section (with threads: its wall time over the ops of all threads,
 * the inverse of the throughput); fill_ns only churn and varsize report (their fill phase); live is
 * the objects live at rss_end and live_bytes their payload; minflt the minor page faults from
 * opening the peer to the end of the timed section; rss_base the resident set just before the
 * workload, rss_end at the end of the timed section (its objects still live), hwm the process's
 * peak resident set (VmHWM); depth_max and depth_mean only handover reports: the structures
 * outstanding at a build's end (built and not yet freed whole), the most and the mean, so its peak
 * resident set can be read against the live set the two threads' relative speed made.
 *
 * An "op" is one allocation and its free in every workload: a pair, one object of a batch, one
 * churn step (free a victim, allocate its replacement), one object of the server's life, one block
 * handed from the producer to the consumer.
 *
 * Which peers run which workload: each workload belongs to a group (suite_group), and the driver's
 * peer table says which groups each peer joins (suite.c's peer_defs). A peer outside a workload's
 * group is n/a there: Boost.Pool is single-threaded, the fixed-size pools have no variable sizes,
 * and the variants (the thread-safe pool, mp_malloc, mp_heap) join only the groups they were made
 * for. The floor, single-threaded too, runs threads (b) with a pool of its own in each thread:
 * nothing shared, so its scaling is what the machine gives that loop.
 */
#ifndef MP_BENCH_SUITE_H
#define MP_BENCH_SUITE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The workloads. To add one: an enum value here, a row in suite_workloads, a function in
 * suite_peer.c's workload table, its counts in suite.c (plan, cell_args) and its section in
 * suite_report.c. */
enum suite_workload {
    WL_PAIR,          /* alloc, touch, free, repeated */
    WL_BATCH_FIFO,    /* alloc SUITE_BATCH objects, then free them oldest first */
    WL_BATCH_LIFO,    /* the same, newest first */
    WL_CHURN,         /* LIVE objects live; free a random one, allocate and touch its replacement */
    WL_SERVER,        /* a server's life: four object types, exponential lifetimes (fixed sizes) */
    WL_TS_PAIR,       /* the pair on one thread, the thread-safe pool beside the plain one */
    WL_THREADS_PAIR,  /* T threads, each its own pair loop on the one shared allocator */
    WL_THREADS_BATCH, /* T threads, each its own FIFO batch loop on the one shared allocator */
    WL_PRODCONS,      /* one thread allocates, hands blocks over in batches, another frees them */
    WL_VARSIZE, /* churn among objects of mixed sizes (suite_var_bands), one working set a thread */
    WL_VARSIZE_SPARSE, /* the same, writing only each object's first and last byte */
    WL_REGION, /* build a binary tree of N 16-byte nodes, walk it, release it all at once; repeat */
    WL_OWN, /* T threads, each builds a structure of N blocks, walks it and frees it (issue 17) */
    WL_HANDOVER, /* one thread builds structures of N blocks, another walks and frees them */
    WL_COUNT
};

/* Groups of workloads; a peer joins some (suite.c's peer_defs). */
enum suite_group {
    SG_POOLS = 1u << 0,   /* fixed sizes, one thread: pools and allocators alike */
    SG_TS_PAIR = 1u << 1, /* the pair on one thread: thread-safe allocators and the plain pool */
    SG_THREADS =
        1u << 2, /* threads (b), T independent loops: one allocator, or one pool a thread */
    SG_PRODCONS = 1u << 4, /* threads (c), blocks freed by another thread: thread-safe peers only */
    SG_VARSIZE = 1u << 3,  /* any size: the malloc family and mempool's heaps */
    SG_REGION = 1u << 5,   /* region: releases all at once (pools, arenas, APR) or node by node */
    SG_STRUCT = 1u << 6,   /* threads (d, e), structures larger than any cache: thread-safe peers */
};

typedef struct suite_workload_info {
    const char *name;  /* on the command line, in file names */
    const char *title; /* in the table */
    int sized;         /* 1: run at every size in suite_sizes; 0: at `size` only */
    unsigned group;    /* one of enum suite_group */
    size_t size;       /* when not sized: the block size; 0 = sizes of its own */
    uint64_t threads;  /* bit t set: a run with t threads; 0: one run, on the main thread */
} suite_workload_info;

#define SUITE_T(t) ((uint64_t)1 << (t))
#define SUITE_MAX_THREADS 32 /* the most threads of a run (the masks are 64 bits) */

static const suite_workload_info suite_workloads[WL_COUNT] = {
    [WL_PAIR] = {"pair", "pair: alloc, touch, free", 1, SG_POOLS, 0, 0},
    [WL_BATCH_FIFO] = {"batch_fifo", "batch FIFO: alloc 1000, free them oldest first", 1, SG_POOLS,
                       0, 0},
    [WL_BATCH_LIFO] = {"batch_lifo", "batch LIFO: alloc 1000, free them newest first", 1, SG_POOLS,
                       0, 0},
    [WL_CHURN] = {"churn", "churn: free a random live object, alloc and touch a new one", 1,
                  SG_POOLS, 0, 0},
    [WL_SERVER] = {"server", "server: requests with exponential lifetimes, 4 object sizes", 0,
                   SG_POOLS, 0, 0},
    [WL_TS_PAIR] = {"ts_pair",
                    "threads (a): pair on one thread, 64 B, thread-safe pool beside the plain one",
                    0, SG_TS_PAIR, 64, 0},
    [WL_THREADS_PAIR] = {"threads_pair",
                         "threads (b): T independent threads, each a pair loop, 64 B", 0,
                         SG_THREADS, 64, SUITE_T(1) | SUITE_T(2) | SUITE_T(4) | SUITE_T(8)},
    [WL_THREADS_BATCH] =
        {"threads_batch",
         "threads (b): T independent threads, each alloc 1000 then free them oldest first, 64 B", 0,
         SG_THREADS, 64, SUITE_T(1) | SUITE_T(2) | SUITE_T(4) | SUITE_T(8)},
    [WL_PRODCONS] = {"prodcons", "threads (c): producer -> consumer, batches of 64 blocks, 64 B", 0,
                     SG_PRODCONS, 64, SUITE_T(2)},
    [WL_VARSIZE] = {"varsize",
                    "variable sizes: churn among mixed sizes, one working set per thread", 0,
                    SG_VARSIZE, 0, SUITE_T(1) | SUITE_T(2)},
    [WL_VARSIZE_SPARSE] = {"varsize_sparse",
                           "variable sizes, sparse: the same churn, writing only each object's "
                           "first and last byte",
                           0, SG_VARSIZE, 0, SUITE_T(1) | SUITE_T(2)},
    [WL_REGION] =
        {"region",
         "region: build a binary tree of N 16-byte nodes, walk it, release it all at once", 0,
         SG_REGION, 0, 0},
    [WL_OWN] = {"own",
                "threads (d): T threads, each builds a structure of N blocks, walks it, frees it",
                0, SG_STRUCT, 16, SUITE_T(1) | SUITE_T(2) | SUITE_T(4) | SUITE_T(8) | SUITE_T(32)},
    [WL_HANDOVER] = {"handover",
                     "threads (e): one thread builds structures of N blocks, another frees them", 0,
                     SG_STRUCT, 16, SUITE_T(2)},
};

/* region: the node counts of its cells (a cell's `size` is its node count, SIZE on the command
 * line), and the bytes of a node (two pointers). The timed rounds are SUITE_REGION_NODES_TIMED
 * nodes in all, at least one round. */
static const size_t suite_region_nodes[] = {1u << 10, 1u << 14, 1u << 17, 1u << 20};
#define SUITE_REGION_COUNTS (sizeof suite_region_nodes / sizeof suite_region_nodes[0])
#define SUITE_REGION_NODE 16

/* The block sizes of the sized workloads, bytes. */
static const size_t suite_sizes[] = {16, 64, 256, 1024};
#define SUITE_NSIZES (sizeof suite_sizes / sizeof suite_sizes[0])

/* A peer's exit status when it cannot be measured in this build (see peer_init in suite_peer.c). */
#define SUITE_EXIT_UNUSABLE 3

/* The server's object types: every `every` ticks `count` objects of `size` bytes arrive, each
 * living for a time drawn from an exponential distribution of mean `mean` ticks (the longest drawn
 * is ~9.0 x the mean: 73.8k ticks for a session, within the peer's timing wheel). */
typedef struct suite_server_type {
    const char *name;
    size_t size;
    unsigned every, count;
    double mean;
} suite_server_type;

#define SUITE_SERVER_TYPES 4
static const suite_server_type suite_server_types[SUITE_SERVER_TYPES] = {
    {"session", 384, 2, 1, 8192},
    {"request", 160, 1, 8, 128},
    {"header", 48, 1, 24, 32},
    {"buffer", 1024, 1, 8, 4},
};

/* Objects per batch round (batch_*, threads_batch). */
#define SUITE_BATCH 1000

/* prodcons: the producer fills batches of SUITE_PC_BATCH pointers into a ring of SUITE_PC_RING
 * slots; the consumer empties them. At most SUITE_PC_BATCH * SUITE_PC_RING blocks are in flight. */
#define SUITE_PC_BATCH 64
#define SUITE_PC_RING 16

/* varsize: the sizes, in bands. A request falls in a band with probability pct / 100, and within
 * it has one of these shapes, over [lo, hi]: */
enum suite_var_shape {
    SUITE_UNIFORM, /* every size equally likely */
    SUITE_LOG,     /* density ~ 1/size: every doubling equally likely */
    SUITE_PARETO,  /* density ~ 1/size^2: each doubling half as likely as the one below (a tail) */
};

/* The mean request is ~1.1 KiB (the three bands hold ~5%, ~24% and ~71% of the bytes): 100K live
 * objects are ~110 MiB of payload. The same seed gives every peer the same sequence. */
typedef struct suite_var_band {
    unsigned pct;
    size_t lo, hi;
    int shape; /* enum suite_var_shape */
} suite_var_band;

#define SUITE_VAR_BANDS 3
static const suite_var_band suite_var_bands[SUITE_VAR_BANDS] = {
    {70, 8, 128, SUITE_UNIFORM},
    {25, 129, 4096, SUITE_LOG},
    {5, 4097, 256 * 1024, SUITE_PARETO},
};

static inline int suite_workload_find(const char *name)
{
    for (int w = 0; w < WL_COUNT; w++)
        if (strcmp(suite_workloads[w].name, name) == 0)
            return w;
    return -1;
}

#endif /* MP_BENCH_SUITE_H */

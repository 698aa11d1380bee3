/*
 * suite_driver.h: what the driver's two files share: suite.c runs the measurements into a `study`,
 * suite_report.c turns it into the table, the doc, the plots and the CSV.
 */
#ifndef MP_BENCH_SUITE_DRIVER_H
#define MP_BENCH_SUITE_DRIVER_H

#include "suite.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_PEERS 16
#define MAX_RUNS 51
#define MAX_SIZES 8
#define MAX_CELLS (WL_COUNT * MAX_SIZES)
#define MAX_THREAD_COUNTS                                                                          \
    8 /* thread counts of one workload (bits of suite_workload_info.threads) */
#define TEXT 256

/* A peer the suite knows (suite.c's peer_defs). */
typedef struct peer_def {
    const char *name;
    const char *package;
    unsigned groups; /* the workload groups it runs (enum suite_group); n/a in the others */
    bool general; /* a general-purpose allocator from outside this tree: the goals' "best malloc" */
} peer_def;

/* A peer found for this run. */
typedef struct peer {
    const peer_def *def;
    int index; /* its row in peer_defs: its colour in every plot */
    char path[PATH_MAX];
    char about[TEXT]; /* its --info line */
    char version[64]; /* its package's version, from dpkg */
} peer;

/* How much each measurement does. A full run is ~90 s per run on this project's 2-core machine
 * (~100 s when it is busy), most of it the churn at 1024 bytes (each of its processes faults in
 * 1 GiB); the workloads with threads and variable sizes take ~25 s of it, most of that the varsize
 * fills (~110 MiB faulted in by each process, at ~30 us a page fault on that virtual machine). */
typedef struct plan {
    int runs;
    uint64_t loop_max;     /* pair, ts_pair and batch: the most ops timed ... */
    uint64_t loop_us;      /* ... or fewer, if that fills this many microseconds */
    uint64_t churn_n;      /* steps */
    uint64_t churn_live;   /* live objects */
    uint64_t server_n;     /* ticks timed */
    uint64_t server_warm;  /* ticks before */
    uint64_t threads_us;   /* threads_*, prodcons: microseconds timed */
    unsigned max_threads;  /* the most threads of a thread workload */
    uint64_t var_n;        /* varsize: steps timed in each thread ... */
    uint64_t var_live;     /* ... and objects live in each thread */
    uint64_t region_nodes; /* region: nodes timed in each cell (rounds of its node count) */
    uint64_t struct_n;     /* own, handover: blocks a structure (timed for threads_us) */
} plan;

/* One workload at one size and thread count, with its counts (the N and M of suite.h's protocol).
 * */
typedef struct cell {
    int wl;
    size_t size;      /* 0 for a workload with its own sizes */
    unsigned threads; /* 1 for the one-thread workloads */
    uint64_t n, m;
} cell;

/* One measurement, as the peer reported it (suite.h). */
typedef struct sample {
    double ns, fill_ns, ops, live, live_bytes, minflt, rss_base, rss_end, hwm;
} sample;

/* The command line (suite.c's usage()). */
typedef struct options {
    plan plan;
    size_t sizes[MAX_SIZES]; /* block sizes of the sized workloads */
    int nsizes;
    bool quick;
    bool allow_missing;
    const char *doc;       /* markdown to write, or NULL */
    const char *plots;     /* directory for the PNGs, or NULL */
    const char *csv;       /* raw figures to write, or NULL */
    const char *command;   /* the command to record in the doc */
    const char *revision;  /* the source revision to record */
    const char *only;      /* comma-separated peer names, or NULL for all */
    const char *workloads; /* comma-separated workload names, or NULL for all */
} options;

/* Everything one run of the driver measured: s[cell][peer][run]. */
typedef struct study {
    options opt;
    peer peers[MAX_PEERS];
    int npeers, nmissing;
    cell cells[MAX_CELLS];
    int ncells;
    bool on[MAX_CELLS][MAX_PEERS]; /* the peer runs the cell (its groups have the workload's) */
    sample s[MAX_CELLS][MAX_PEERS][MAX_RUNS];
    double seconds;
    char date[64], load_start[64], load_end[64];
} study;

/* suite.c */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* snprintf into a fixed field, truncating silently (see its definition). */
void textf(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool file_field(const char *path, const char *key, char *out, size_t n);
void command_line(const char *cmd, char *out, size_t n);

/* suite_report.c: prints the tables; draws the plots, writes the CSV and the doc where st->opt
 * asks.
 * Returns whether plots were drawn. */
bool report(const study *st);

#endif /* MP_BENCH_SUITE_DRIVER_H */

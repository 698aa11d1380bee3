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
#define TEXT 256

/* A peer the suite knows (suite.c's peer_defs). */
typedef struct peer_def {
    const char *name;
    const char *package;
} peer_def;

/* A peer found for this run. */
typedef struct peer {
    const peer_def *def;
    char path[PATH_MAX];
    char about[TEXT];   /* its --info line */
    char version[64];   /* its package's version, from dpkg */
} peer;

/* How much each measurement does. A full run is ~100 s per run on a quiet 2-core machine, most of it
 * the churn at 1024 bytes: each of its processes faults in 1 GiB. */
typedef struct plan {
    int runs;
    uint64_t loop_max;    /* pair and batch: the most ops timed ... */
    uint64_t loop_us;     /* ... or fewer, if that fills this many microseconds */
    uint64_t churn_n;     /* steps */
    uint64_t churn_live;  /* live objects */
    uint64_t server_n;    /* ticks timed */
    uint64_t server_warm; /* ticks before */
} plan;

/* One workload at one size, with its counts (the N and M of suite.h's protocol). */
typedef struct cell {
    int wl;
    size_t size; /* 0 for a workload with its own sizes */
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
    const char *doc;      /* markdown to write, or NULL */
    const char *plots;    /* directory for the PNGs, or NULL */
    const char *csv;      /* raw figures to write, or NULL */
    const char *command;  /* the command to record in the doc */
    const char *revision; /* the source revision to record */
    const char *only;     /* comma-separated peer names, or NULL for all */
} options;

/* Everything one run of the driver measured: s[cell][peer][run]. */
typedef struct study {
    options opt;
    peer peers[MAX_PEERS];
    int npeers, nmissing;
    cell cells[MAX_CELLS];
    int ncells;
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

/* suite_report.c: prints the tables; draws the plots, writes the CSV and the doc where st->opt asks.
 * Returns whether plots were drawn. */
bool report(const study *st);

#endif /* MP_BENCH_SUITE_DRIVER_H */

/*
 * suite_report.h: what the report's two files share. suite_report.c has the statistics, the tables,
 * the plots, the doc and the sections of the fixed-size workloads; suite_report_mt.c the sections
 * of the workloads with threads and variable sizes, with the goals the issues set for them.
 */
#ifndef MP_BENCH_SUITE_REPORT_H
#define MP_BENCH_SUITE_REPORT_H

#include "suite_driver.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* ------------------------------------------------------------------------------------------------
 * Statistics
 * ---------------------------------------------------------------------------------------------- */

typedef struct summary {
    double med, lo, hi;
} summary;

/* A figure of one sample, for summaries and plots. */
typedef double metric_fn(const sample *s);

metric_fn m_ns, m_mops, m_fill, m_live, m_minflt, m_hwm_mib, m_bytes_per_obj, m_over_payload;

summary summarize(const double *v, int n);
/* Three significant digits, no exponent: 0.123, 1.23, 12.3, 123, 1234. */
const char *fmt3(char *buf, size_t n, double v);
/* The metric over the runs of peer p in cell c (which p must run). */
summary cell_summary(const study *st, int c, int p, metric_fn *m);
/* The lowest (or, with `most`, the highest) median of the metric over the peers running cell c;
 * `general`: over the general-purpose allocators only (the goals' "best malloc"). *who is that
 * peer, or -1 when none runs the cell (the result is then NAN). who may be NULL. */
double cell_best_of(const study *st, int c, metric_fn *m, bool general, bool most, int *who);
double cell_best(const study *st, int c, metric_fn *m);
/* The cell of workload wl at this size and thread count; -1 if the run has none. */
int cell_find(const study *st, int wl, size_t size, unsigned threads);
/* The index of a peer of this run by name; -1 if it is not in the run. */
int peer_find(const study *st, const char *name);
/* The peers running cell c, in table order; returns how many. */
int cell_peers(const study *st, int c, int *idx);

/* ------------------------------------------------------------------------------------------------
 * Tables and sections
 * ---------------------------------------------------------------------------------------------- */

#define MAX_GOALS 32
#define MAX_SECTION_GOALS 8
/* a table's rows: a header and a row per peer, or per goal in the goals' table */
#define MAX_ROWS ((MAX_PEERS > MAX_GOALS ? MAX_PEERS : MAX_GOALS) + 1)
#define MAX_COLS 12
#define CELL 128

typedef struct table {
    int rows, cols;
    char c[MAX_ROWS][MAX_COLS][CELL];
    bool best[MAX_ROWS][MAX_COLS]; /* bold in markdown */
    int text_cols; /* the leading columns aligned left in markdown (0 counts as 1: the peer) */
} table;

/* Sets the header row from a list of column titles. */
void table_head(table *t, int cols, const char *const *head);

/* A goal an issue sets, judged on this run's medians. */
typedef struct goal {
    char what[TEXT];     /* "mempool_ts pair <= 0.5 x the best malloc's" */
    char measured[TEXT]; /* "x0.31 (mempool_ts 3.10 ns, tcmalloc 10.0 ns)" */
    int met; /* 1 met, 0 not met, 2 not met but within the looser limit, -1 not measured */
} goal;

typedef struct section {
    const char *title; /* stdout heading; the doc's too */
    const char *note;  /* one paragraph under it */
    table t;
    const char *plot;             /* the PNG's base name, or NULL */
    const char *plot2;            /* a second PNG, or NULL */
    int goals[MAX_SECTION_GOALS]; /* indexes into the report's goals, listed under the table */
    int ngoals;
} section;

#define MAX_SECTIONS 24

/* The report's goals, filled by goals_region and build_mt_sections. */
typedef struct goal_list {
    goal g[MAX_GOALS];
    int n;
} goal_list;

/* suite_report_mt.c: appends the sections of the thread and varsize workloads that this run has to
 * sec[n..], and their goals to gl; returns the new number of sections. */
int build_mt_sections(const study *st, section *sec, int n, goal_list *gl);
/* suite_report_mt.c: appends the region's goals (issue 18) to gl, listed under section s. */
void goals_region(const study *st, section *s, goal_list *gl);
/* "met", "NOT met", "NOT met (within the limit)" or "not measured". */
const char *goal_met_text(int met);
/* The goals as one table (goal, measured, met). */
void table_goals(const goal_list *gl, table *t);
/* The doc's method paragraphs for those workloads (nothing for workloads not in this run). */
void write_mt_method(const study *st, FILE *f);
/* Their plots: data files in dir, commands on g, PNGs to out_dir. */
void plot_mt(const study *st, FILE *g, const char *dir, const char *out_dir);

/* ------------------------------------------------------------------------------------------------
 * Plots (suite_report.c)
 * ---------------------------------------------------------------------------------------------- */

/* Writes `name`.dat: one row per cell of workload wl, per peer running it the metric's median, min
 * and max (NaN for a peer that does not run it). */
void plot_data(const study *st, const char *dir, const char *name, int wl, metric_fn *m);
/* The plot of `name`.dat: `rows` clusters of bars, one bar per peer of workload wl, each peer in
 * its colour. */
void plot_script(const study *st, FILE *g, const char *dir, const char *out_dir, const char *name,
                 int wl, int rows, const char *title, const char *ylabel, bool logy);

#endif /* MP_BENCH_SUITE_REPORT_H */

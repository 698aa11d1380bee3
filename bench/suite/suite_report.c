/*
 * suite_report.c: the benchmark suite's report. From what suite.c measured (a `study`): the medians
 * with their min-max and the ratios to the best peer, printed as aligned tables on stdout; and,
 * when asked, docs/benchmarks.md (the machine, the command, the method and the same tables in
 * markdown), PNG plots drawn by gnuplot, and every measurement as CSV.
 *
 * Every table is built once (`table`) and printed either way, so stdout and the doc cannot
 * disagree. The sections of the workloads with threads and variable sizes, and the goals the issues
 * set for them, are built in suite_report_mt.c; a peer that does not run a workload (n/a: not in
 * its groups) has no row in its tables.
 */
#define _DEFAULT_SOURCE /* mkdtemp, realpath */

#include "suite_report.h"

#include "../bench_util.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef SUITE_C_COMPILER
#define SUITE_C_COMPILER "unknown"
#endif
#ifndef SUITE_CXX_COMPILER
#define SUITE_CXX_COMPILER "none"
#endif

/* ================================================================================================
 * Statistics: medians, ranges, ratios
 * ============================================================================================== */

summary summarize(const double *v, int n)
{
    double s[MAX_RUNS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return (summary){n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, s[0], s[n - 1]};
}

const char *fmt3(char *buf, size_t n, double v)
{
    const char *f = v < 1 ? "%.3f" : v < 10 ? "%.2f" : v < 100 ? "%.1f" : "%.0f";
    snprintf(buf, n, f, v);
    return buf;
}

double m_ns(const sample *s)
{
    return s->ns;
}
double m_mops(const sample *s)
{
    return s->ns > 0 ? 1e3 / s->ns : 0;
}
double m_fill(const sample *s)
{
    return s->fill_ns;
}
double m_live(const sample *s)
{
    return s->live;
}
double m_minflt(const sample *s)
{
    return s->minflt;
}
double m_hwm_mib(const sample *s)
{
    return s->hwm / 1048576.0;
}
double m_bytes_per_obj(const sample *s)
{
    return s->live > 0 ? (s->rss_end - s->rss_base) / s->live : 0;
}
double m_over_payload(const sample *s)
{
    return s->live_bytes > 0 ? (s->rss_end - s->rss_base) / s->live_bytes : 0;
}

summary cell_summary(const study *st, int c, int p, metric_fn *m)
{
    double v[MAX_RUNS];
    for (int r = 0; r < st->opt.plan.runs; r++)
        v[r] = m(&st->s[c][p][r]);
    return summarize(v, st->opt.plan.runs);
}

double cell_best_of(const study *st, int c, metric_fn *m, bool general, bool most, int *who)
{
    double best = NAN;
    int at = -1;
    for (int p = 0; p < st->npeers; p++) {
        if (!st->on[c][p] || (general && !st->peers[p].def->general))
            continue;
        double v = cell_summary(st, c, p, m).med;
        if (at < 0 || (most ? v > best : v < best))
            best = v, at = p;
    }
    if (who != NULL)
        *who = at;
    return best;
}

double cell_best(const study *st, int c, metric_fn *m)
{
    return cell_best_of(st, c, m, false, false, NULL);
}

int cell_find(const study *st, int wl, size_t size, unsigned threads)
{
    for (int c = 0; c < st->ncells; c++)
        if (st->cells[c].wl == wl && st->cells[c].size == size && st->cells[c].threads == threads)
            return c;
    return -1;
}

static int cell_index(const study *st, int wl, size_t size)
{
    return cell_find(st, wl, size, 1);
}

int peer_find(const study *st, const char *name)
{
    for (int p = 0; p < st->npeers; p++)
        if (strcmp(st->peers[p].def->name, name) == 0)
            return p;
    return -1;
}

int cell_peers(const study *st, int c, int *idx)
{
    int n = 0;
    for (int p = 0; p < st->npeers; p++)
        if (st->on[c][p])
            idx[n++] = p;
    return n;
}

/* Whether this run measured workload wl (at any size). */
static bool wl_planned(const study *st, int wl)
{
    for (int c = 0; c < st->ncells; c++)
        if (st->cells[c].wl == wl)
            return true;
    return false;
}

/* ================================================================================================
 * Tables: built once, printed as aligned text (stdout) or markdown (the doc)
 * ============================================================================================== */

void table_head(table *t, int cols, const char *const *head)
{
    t->cols = cols;
    for (int k = 0; k < cols; k++)
        textf(t->c[0][k], CELL, "%s", head[k]);
}

static void table_print_text(const table *t, FILE *f)
{
    int w[MAX_COLS] = {0};
    for (int r = 0; r < t->rows; r++)
        for (int k = 0; k < t->cols; k++)
            w[k] = (int)fmax(w[k], (double)strlen(t->c[r][k]));
    for (int r = 0; r < t->rows; r++) {
        for (int k = 0; k < t->cols; k++)
            fprintf(f, k == 0 ? "  %-*s" : "  %*s", w[k], t->c[r][k]);
        fputc('\n', f);
    }
}

static void table_print_md(const table *t, FILE *f)
{
    for (int r = 0; r < t->rows; r++) {
        for (int k = 0; k < t->cols; k++)
            fprintf(f, t->best[r][k] ? "| **%s** " : "| %s ", t->c[r][k]);
        fputs("|\n", f);
        if (r == 0) {
            for (int k = 0; k < t->cols; k++)
                fputs(k == 0 || k < t->text_cols ? "|---" : "|---:", f);
            fputs("|\n", f);
        }
    }
}

static void size_header(table *t, const char *first, size_t size, int col)
{
    textf(t->c[0][0], CELL, "%s", first);
    if (size != 0)
        textf(t->c[0][col], CELL, "%zu B", size);
}

/* Time table of a sized workload: peers x sizes, "median [min-max] xratio". */
static void table_time(const study *st, int wl, table *t)
{
    memset(t, 0, sizeof *t);
    t->cols = st->opt.nsizes + 1;
    size_header(t, "peer", 0, 0);
    for (int k = 0; k < st->opt.nsizes; k++) {
        int c = cell_index(st, wl, st->opt.sizes[k]), idx[MAX_PEERS];
        int n = cell_peers(st, c, idx);
        t->rows = n + 1;
        size_header(t, "peer", st->opt.sizes[k], k + 1);
        double best = cell_best(st, c, m_ns);
        for (int i = 0; i < n; i++) {
            summary s = cell_summary(st, c, idx[i], m_ns);
            char a[16], b[16], d[16];
            textf(t->c[i + 1][0], CELL, "%s", st->peers[idx[i]].def->name);
            textf(t->c[i + 1][k + 1], CELL, "%s [%s-%s] x%.2f", fmt3(a, sizeof a, s.med),
                  fmt3(b, sizeof b, s.lo), fmt3(d, sizeof d, s.hi), s.med / best);
            t->best[i + 1][k + 1] = s.med == best;
        }
    }
}

/* A memory table of a sized workload: peers x sizes, the median of `m` (with `suffix`, e.g. the
 * ratio to the payload). */
static void table_metric(const study *st, int wl, metric_fn *m, metric_fn *m2, const char *fmt2,
                         table *t)
{
    memset(t, 0, sizeof *t);
    t->cols = st->opt.nsizes + 1;
    for (int k = 0; k < st->opt.nsizes; k++) {
        int c = cell_index(st, wl, st->opt.sizes[k]), idx[MAX_PEERS];
        int n = cell_peers(st, c, idx);
        t->rows = n + 1;
        size_header(t, "peer", st->opt.sizes[k], k + 1);
        double best = cell_best(st, c, m);
        for (int i = 0; i < n; i++) {
            int p = idx[i];
            double v = cell_summary(st, c, p, m).med;
            char a[16], b[24] = "";
            if (m2 != NULL)
                textf(b, sizeof b, fmt2, cell_summary(st, c, p, m2).med);
            textf(t->c[i + 1][0], CELL, "%s", st->peers[p].def->name);
            textf(t->c[i + 1][k + 1], CELL, "%s%s", fmt3(a, sizeof a, v), b);
            t->best[i + 1][k + 1] = v == best;
        }
    }
}

/* The server table: one row per peer, time and memory side by side. */
static void table_server(const study *st, table *t)
{
    memset(t, 0, sizeof *t);
    int c = cell_index(st, WL_SERVER, 0), idx[MAX_PEERS];
    const char *head[] = {"peer",      "ns/op [min-max]", "x best",      "bytes/live obj",
                          "x payload", "peak RSS MiB",    "minor faults"};
    int n = cell_peers(st, c, idx);
    t->rows = n + 1;
    table_head(t, 7, head);
    double best = cell_best(st, c, m_ns);
    for (int i = 0; i < n; i++) {
        int p = idx[i];
        summary s = cell_summary(st, c, p, m_ns);
        char a[16], b[16], d[16];
        char(*row)[CELL] = t->c[i + 1];
        textf(row[0], CELL, "%s", st->peers[p].def->name);
        textf(row[1], CELL, "%s [%s-%s]", fmt3(a, sizeof a, s.med), fmt3(b, sizeof b, s.lo),
              fmt3(d, sizeof d, s.hi));
        textf(row[2], CELL, "x%.2f", s.med / best);
        textf(row[3], CELL, "%s", fmt3(a, sizeof a, cell_summary(st, c, p, m_bytes_per_obj).med));
        textf(row[4], CELL, "x%.2f", cell_summary(st, c, p, m_over_payload).med);
        textf(row[5], CELL, "%s", fmt3(a, sizeof a, cell_summary(st, c, p, m_hwm_mib).med));
        textf(row[6], CELL, "%.0f", cell_summary(st, c, p, m_minflt).med);
        t->best[i + 1][1] = t->best[i + 1][2] = s.med == best;
    }
}

/* Summary of the fixed-size workloads (SG_POOLS, their peers): per peer and workload, the geometric
 * mean over sizes of (median / best median). */
static void table_summary(const study *st, table *t)
{
    memset(t, 0, sizeof *t);
    int idx[MAX_PEERS], n = 0;
    for (int p = 0; p < st->npeers; p++)
        if (st->peers[p].def->groups & SG_POOLS)
            idx[n++] = p;
    t->rows = n + 1;
    t->cols = 1;
    textf(t->c[0][0], CELL, "peer");
    for (int w = 0; w < WL_COUNT; w++) {
        if (suite_workloads[w].group != SG_POOLS || !wl_planned(st, w))
            continue;
        int col = t->cols++;
        textf(t->c[0][col], CELL, "%s", suite_workloads[w].name);
        double lo = INFINITY, g[MAX_PEERS];
        for (int i = 0; i < n; i++) {
            double sum = 0;
            int k = 0;
            for (int c = 0; c < st->ncells; c++)
                if (st->cells[c].wl == w) {
                    sum += log(cell_summary(st, c, idx[i], m_ns).med / cell_best(st, c, m_ns));
                    k++;
                }
            g[i] = exp(sum / k);
            lo = fmin(lo, g[i]);
        }
        for (int i = 0; i < n; i++) {
            textf(t->c[i + 1][0], CELL, "%s", st->peers[idx[i]].def->name);
            textf(t->c[i + 1][col], CELL, "x%.2f", g[i]);
            t->best[i + 1][col] = g[i] == lo;
        }
    }
}

/* ================================================================================================
 * The report: stdout and markdown share the sections
 * ============================================================================================== */

/* The churn's memory and fill tables. */
static int build_churn_sections(const study *st, section *sec, int n, char (*notes)[TEXT])
{
    int runs = st->opt.plan.runs;
    sec[n].title = "churn memory: bytes per live object";
    textf(notes[n], TEXT,
          "(resident set at the end - before the workload) / %" PRIu64 " live objects, "
          "median of %d fresh processes; (x) = over the payload (the block size).",
          st->opt.plan.churn_live, runs);
    sec[n].note = notes[n];
    table_metric(st, WL_CHURN, m_bytes_per_obj, m_over_payload, " (x%.2f)", &sec[n].t);
    sec[n++].plot = "churn_memory";
    sec[n].title = "churn memory: peak resident set of the process, MiB";
    sec[n].note =
        "VmHWM, the whole process: program, libraries and the workload's own pointer array "
        "(8 bytes per live object) included, the same for every peer.";
    table_metric(st, WL_CHURN, m_hwm_mib, NULL, NULL, &sec[n].t);
    sec[n++].plot = NULL;
    sec[n].title = "churn memory: minor page faults";
    sec[n].note = "from opening the peer to the end of the timed steps (fill and churn).";
    table_metric(st, WL_CHURN, m_minflt, NULL, NULL, &sec[n].t);
    sec[n++].plot = NULL;
    sec[n].title = "churn: creating the pool and filling it, ns per object";
    sec[n].note =
        "peer_open and the fill of the live objects, page faults included (the floor links its "
        "whole region at creation).";
    table_metric(st, WL_CHURN, m_fill, NULL, NULL, &sec[n].t);
    sec[n++].plot = NULL;
    return n;
}

/* The region table: peers x node counts, "median [min-max] xratio" in ns per node, then the
 * minor faults of the largest count's run (a peer that gives its memory back at each release
 * faults it in again every round). */
static void table_region(const study *st, table *t)
{
    memset(t, 0, sizeof *t);
    t->cols = (int)SUITE_REGION_COUNTS + 2;
    textf(t->c[0][0], CELL, "peer");
    textf(t->c[0][t->cols - 1], CELL, "minor faults, 2^20");
    for (int k = 0; k < (int)SUITE_REGION_COUNTS; k++) {
        size_t nodes = suite_region_nodes[k];
        int c = cell_index(st, WL_REGION, nodes), idx[MAX_PEERS];
        if (c < 0)
            continue;
        int n = cell_peers(st, c, idx);
        t->rows = n + 1;
        int log2n = 0;
        while (((size_t)1 << log2n) < nodes)
            log2n++;
        textf(t->c[0][k + 1], CELL, "2^%d nodes", log2n);
        double best = cell_best(st, c, m_ns);
        for (int i = 0; i < n; i++) {
            int p = idx[i];
            summary s = cell_summary(st, c, p, m_ns);
            char a[16], b[16], d[16];
            textf(t->c[i + 1][0], CELL, "%s", st->peers[p].def->name);
            textf(t->c[i + 1][k + 1], CELL, "%s [%s-%s] x%.2f", fmt3(a, sizeof a, s.med),
                  fmt3(b, sizeof b, s.lo), fmt3(d, sizeof d, s.hi), s.med / best);
            t->best[i + 1][k + 1] = s.med == best;
            if (k == (int)SUITE_REGION_COUNTS - 1)
                textf(t->c[i + 1][t->cols - 1], CELL, "%.0f", cell_summary(st, c, p, m_minflt).med);
        }
    }
}

/* The sections of the fixed-size workloads this run has, then the others' (suite_report_mt.c), then
 * the goals. */
static int build_sections(const study *st, section *sec, goal_list *gl)
{
    static char notes[MAX_SECTIONS][TEXT];
    int n = 0, runs = st->opt.plan.runs;
    memset(sec, 0, MAX_SECTIONS * sizeof *sec);
    gl->n = 0;
    for (int w = 0; w < WL_COUNT; w++) {
        if (!suite_workloads[w].sized || !wl_planned(st, w))
            continue;
        sec[n].title = suite_workloads[w].title;
        textf(notes[n], TEXT,
              "ns per op (one alloc and its free): median [min-max] of %d runs; "
              "x = median / the best median at that size.",
              runs);
        sec[n].note = notes[n];
        table_time(st, w, &sec[n].t);
        sec[n].plot = suite_workloads[w].name;
        n++;
    }
    if (wl_planned(st, WL_CHURN))
        n = build_churn_sections(st, sec, n, notes);
    if (wl_planned(st, WL_SERVER)) {
        sec[n].title = suite_workloads[WL_SERVER].title;
        textf(notes[n], TEXT,
              "ns per op (one object's alloc and free, the simulation included): median "
              "[min-max] of %d runs; memory: medians, at the end of the timed ticks.",
              runs);
        sec[n].note = notes[n];
        table_server(st, &sec[n].t);
        sec[n++].plot = "server";
    }
    if (wl_planned(st, WL_REGION)) {
        sec[n].title = suite_workloads[WL_REGION].title;
        textf(notes[n], TEXT,
              "ns per node (its alloc, its share of the walk and of the release): median [min-max] "
              "of %d runs; x = median / the best median at that count. Released at once: bump, "
              "mempool (mp_pool_reset), mp_arena (mp_arena_reset), apr (apr_pool_clear); the "
              "mallocs free node by node.",
              runs);
        sec[n].note = notes[n];
        table_region(st, &sec[n].t);
        goals_region(st, &sec[n], gl);
        sec[n++].plot = NULL;
    }
    bool pools = false;
    for (int w = 0; w < WL_COUNT; w++)
        pools |= suite_workloads[w].group == SG_POOLS && wl_planned(st, w);
    if (pools) {
        sec[n].title = "summary: time over the best peer's";
        sec[n].note =
            "per workload, the geometric mean over the block sizes of (median / best median); "
            "x1.00 = the fastest at every size.";
        table_summary(st, &sec[n].t);
        sec[n++].plot = NULL;
    }
    n = build_mt_sections(st, sec, n, gl);
    if (gl->n > 0) {
        sec[n].title = "goals from the issues, judged on this run";
        sec[n].note =
            "each goal as issues 3, 5, 7, 17 and 18 set it, against this run's medians (the ratio "
            "of two "
            "medians); on a noisy machine a ratio near its bound may fall either side in another "
            "run.";
        table_goals(gl, &sec[n].t);
        sec[n++].plot = NULL;
    }
    return n;
}

const char *goal_met_text(int met)
{
    return met == 1   ? "met"
           : met == 2 ? "NOT met (within the limit)"
           : met == 0 ? "NOT met"
                      : "not measured";
}

static void print_sections(const section *sec, int n, const goal_list *gl)
{
    for (int i = 0; i < n; i++) {
        printf("\n== %s\n   %s\n", sec[i].title, sec[i].note);
        table_print_text(&sec[i].t, stdout);
        for (int k = 0; k < sec[i].ngoals; k++) {
            const goal *g = &gl->g[sec[i].goals[k]];
            printf("  goal: %s: %s: %s\n", g->what, g->measured, goal_met_text(g->met));
        }
    }
}

/* ================================================================================================
 * Plots: one gnuplot script, a data file per plot, in a temporary directory
 * ============================================================================================== */

/* A cell's label on the x axis: its size, its thread count, or the workload's name. */
static void cell_label(const study *st, int c, char *buf, size_t n)
{
    const cell *k = &st->cells[c];
    unsigned t = suite_workloads[k->wl].threads;
    if (suite_workloads[k->wl].sized)
        textf(buf, n, "%zu B", k->size);
    else if (t != 0 && (t & (t - 1)) != 0) /* several thread counts */
        textf(buf, n, "%u thread%s", k->threads, k->threads > 1 ? "s" : "");
    else
        textf(buf, n, "%s", suite_workloads[k->wl].name);
}

void plot_data(const study *st, const char *dir, const char *name, int wl, metric_fn *m)
{
    char path[PATH_MAX], label[64];
    snprintf(path, sizeof path, "%s/%s.dat", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        die("%s: %s", path, strerror(errno));
    for (int c = 0; c < st->ncells; c++) {
        if (st->cells[c].wl != wl)
            continue;
        cell_label(st, c, label, sizeof label);
        fprintf(f, "\"%s\"", label);
        for (int p = 0; p < st->npeers; p++) {
            summary s = st->on[c][p] ? cell_summary(st, c, p, m) : (summary){NAN, NAN, NAN};
            fprintf(f, " %g %g %g", s.med, s.lo, s.hi);
        }
        fputc('\n', f);
    }
    fclose(f);
}

/* A colour per row of peer_defs (suite.c), so a peer has the same colour in every plot. */
static const char *const peer_colours[] = {"#7f7f7f", "#1f77b4", "#17becf", "#2ca02c",
                                           "#98df8a", "#d62728", "#ff7f0e", "#9467bd",
                                           "#8c564b", "#e377c2", "#bcbd22", "#393b79"};

void plot_script(const study *st, FILE *g, const char *dir, const char *out_dir, const char *name,
                 int wl, int rows, const char *title, const char *ylabel, bool logy)
{
    int ncol = (int)(sizeof peer_colours / sizeof peer_colours[0]);
    fprintf(g, "set output '%s/%s.png'\nset title \"%s\"\nset ylabel \"%s\"\n", out_dir, name,
            title, ylabel);
    fprintf(g, "set xrange [-0.6:%d.6]\n", rows - 1);
    fprintf(g,
            logy ? "set logscale y\nset yrange [*:*]\n" : "unset logscale y\nset yrange [0:*]\n");
    fprintf(g, "plot ");
    bool first = true;
    for (int p = 0; p < st->npeers; p++) {
        if ((st->peers[p].def->groups & suite_workloads[wl].group) == 0)
            continue;
        fprintf(g, "%s'%s/%s.dat' using %d:%d:%d%s lc rgb '%s' title '%s'", first ? "" : ", ", dir,
                name, 3 * p + 2, 3 * p + 3, 3 * p + 4, first ? ":xtic(1)" : "",
                peer_colours[st->peers[p].index % ncol], st->peers[p].def->name);
        first = false;
    }
    fputc('\n', g);
}

/* Draws the PNGs into opt.plots; returns false (with a note) if gnuplot is missing or fails. */
static bool draw_plots(const study *st)
{
    char dir[] = "/tmp/bench_suite.XXXXXX", cmd[PATH_MAX * 2], path[PATH_MAX];
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        printf("note: no plots: gnuplot is not installed (apt-get install gnuplot-nox)\n");
        return false;
    }
    if (mkdtemp(dir) == NULL)
        die("mkdtemp: %s", strerror(errno));
    mkdir(st->opt.plots, 0777);
    char out_dir[PATH_MAX];
    if (realpath(st->opt.plots, out_dir) == NULL)
        die("%s: %s", st->opt.plots, strerror(errno));
    snprintf(path, sizeof path, "%s/plots.gp", dir);
    FILE *g = fopen(path, "w");
    if (g == NULL)
        die("%s: %s", path, strerror(errno));
    fprintf(g,
            "set terminal pngcairo size 1000,520 font 'sans,10' noenhanced\n"
            "set style data histogram\nset style histogram errorbars gap 2 lw 1\n"
            "set style fill solid 0.85 border -1\nset boxwidth 0.9 relative\n"
            "set grid ytics mytics\nset key outside right top vertical\nset xlabel 'block size'\n");
    char title[TEXT];
    int runs = st->opt.plan.runs;
    for (int w = 0; w < WL_COUNT; w++) {
        if (!suite_workloads[w].sized || !wl_planned(st, w))
            continue;
        plot_data(st, dir, suite_workloads[w].name, w, m_ns);
        snprintf(title, sizeof title,
                 "%s\\nns per op, median of %d runs (whiskers: min-max); log scale",
                 suite_workloads[w].title, runs);
        plot_script(st, g, dir, out_dir, suite_workloads[w].name, w, st->opt.nsizes, title,
                    "ns per op (log)", true);
    }
    if (wl_planned(st, WL_CHURN)) {
        plot_data(st, dir, "churn_memory", WL_CHURN, m_over_payload);
        snprintf(title, sizeof title,
                 "churn, %" PRIu64 " live objects: resident bytes per live object over the "
                 "block size (1 = no overhead)\\nmedian of %d fresh processes (whiskers: min-max)",
                 st->opt.plan.churn_live, runs);
        plot_script(st, g, dir, out_dir, "churn_memory", WL_CHURN, st->opt.nsizes, title,
                    "resident bytes / payload bytes", false);
    }
    if (wl_planned(st, WL_SERVER)) {
        plot_data(st, dir, "server", WL_SERVER, m_ns);
        snprintf(title, sizeof title, "%s\\nns per op, median of %d runs (whiskers: min-max)",
                 suite_workloads[WL_SERVER].title, runs);
        fprintf(g, "set xlabel ''\n");
        plot_script(st, g, dir, out_dir, "server", WL_SERVER, 1, title, "ns per op", false);
    }
    plot_mt(st, g, dir, out_dir);
    fclose(g);
    snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>'%s/gnuplot.log'", path, dir);
    bool ok = system(cmd) == 0;
    if (!ok) {
        printf("note: gnuplot failed; its messages:\n");
        snprintf(cmd, sizeof cmd, "cat '%s/gnuplot.log'", dir);
        if (system(cmd) != 0)
            printf("(none)\n");
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("note: could not remove %s\n", dir);
    return ok;
}

/* ================================================================================================
 * The doc and the CSV
 * ============================================================================================== */

static void write_csv(const study *st)
{
    FILE *f = fopen(st->opt.csv, "w");
    if (f == NULL)
        die("%s: %s", st->opt.csv, strerror(errno));
    fprintf(f, "run,workload,size,threads,peer,ns_per_op,fill_ns,ops,live,live_bytes,minflt,rss_"
               "base,rss_end,"
               "hwm\n");
    for (int r = 0; r < st->opt.plan.runs; r++)
        for (int c = 0; c < st->ncells; c++)
            for (int p = 0; p < st->npeers; p++) {
                const sample *s = &st->s[c][p][r];
                if (!st->on[c][p])
                    continue;
                fprintf(f, "%d,%s,%zu,%u,%s,%.4f,%.4f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f\n", r + 1,
                        suite_workloads[st->cells[c].wl].name, st->cells[c].size,
                        st->cells[c].threads, st->peers[p].def->name, s->ns, s->fill_ns, s->ops,
                        s->live, s->live_bytes, s->minflt, s->rss_base, s->rss_end, s->hwm);
            }
    fclose(f);
}

/* The plots directory as the doc links it: relative to the doc's directory when inside it. */
static const char *plots_link(const study *st, char *buf, size_t n)
{
    char doc_dir[PATH_MAX], plots[PATH_MAX], tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", st->opt.doc);
    char *slash = strrchr(tmp, '/');
    if (slash != NULL)
        *slash = '\0';
    else
        snprintf(tmp, sizeof tmp, ".");
    if (realpath(tmp, doc_dir) == NULL || realpath(st->opt.plots, plots) == NULL)
        return st->opt.plots;
    size_t len = strlen(doc_dir);
    if (strncmp(plots, doc_dir, len) == 0 && plots[len] == '/')
        snprintf(buf, n, "%s", plots + len + 1);
    else
        snprintf(buf, n, "%s", plots);
    return buf;
}

static void write_machine(const study *st, FILE *f)
{
    char cpu[TEXT] = "?", family[32] = "?", model[32] = "?", stepping[32] = "?", cache[32] = "?",
         mhz[32] = "?";
    char flags[4096] = "", mem[64] = "0", os[TEXT] = "?", glibc[64] = "", gp[TEXT] = "",
         thp[TEXT] = "?";
    struct utsname u;
    file_field("/proc/cpuinfo", "model name", cpu, sizeof cpu);
    file_field("/proc/cpuinfo", "cpu family", family, sizeof family);
    file_field("/proc/cpuinfo", "model\t", model, sizeof model);
    file_field("/proc/cpuinfo", "stepping", stepping, sizeof stepping);
    file_field("/proc/cpuinfo", "cache size", cache, sizeof cache);
    file_field("/proc/cpuinfo", "cpu MHz", mhz, sizeof mhz);
    file_field("/proc/cpuinfo", "flags", flags, sizeof flags);
    file_field("/proc/meminfo", "MemTotal", mem, sizeof mem);
    file_field("/sys/kernel/mm/transparent_hugepage/enabled", "", thp, sizeof thp);
    file_field("/etc/os-release", "PRETTY_NAME", os, sizeof os);
    confstr(_CS_GNU_LIBC_VERSION, glibc, sizeof glibc);
    command_line("gnuplot --version 2>/dev/null", gp, sizeof gp);
    if (uname(&u) != 0)
        memset(&u, 0, sizeof u);
    fprintf(f, "| | |\n|---|---|\n");
    fprintf(f, "| date | %s |\n", st->date);
    fprintf(f, "| command | `%s` |\n", st->opt.command);
    if (st->opt.revision != NULL)
        fprintf(f, "| source revision | %s |\n", st->opt.revision);
    fprintf(
        f, "| CPU | %s (family %s, model %s, stepping %s; %s cache; %s MHz), %ld CPUs online%s |\n",
        cpu, family, model, stepping, cache, mhz, sysconf(_SC_NPROCESSORS_ONLN),
        strstr(flags, " hypervisor") ? ", a virtual machine" : "");
    fprintf(f, "| memory | %.1f GiB |\n", atof(mem) / 1048576.0);
    fprintf(f, "| kernel | %s %s %s %s; transparent huge pages: %s |\n", u.sysname, u.release,
            u.version, u.machine, thp);
    fprintf(f, "| system | %s, %s |\n", os, glibc);
    fprintf(f, "| C compiler | %s (every peer program: -O2) |\n", SUITE_C_COMPILER);
    fprintf(f, "| C++ compiler | %s (the Boost.Pool adapter) |\n", SUITE_CXX_COMPILER);
    fprintf(f, "| plots | %s |\n", gp[0] ? gp : "no gnuplot");
    fprintf(f, "| load average | %s at the start, %s at the end |\n", st->load_start, st->load_end);
    fprintf(f, "| time | %.0f s of measurements |\n", st->seconds);
}

/* Whether other work shared the CPUs: the 1-minute load average, at the start or the end, above
 * half the CPUs (the suite itself keeps about one busy). */
static bool machine_busy(const study *st)
{
    double cpus = (double)sysconf(_SC_NPROCESSORS_ONLN);
    return atof(st->load_start) > 0.5 * cpus || atof(st->load_end) > 0.5 * cpus + 1;
}

/* The groups a peer runs, for the doc's peer table. */
static void groups_text(unsigned groups, char *buf, size_t n)
{
    static const struct {
        unsigned group;
        const char *text;
    } names[] = {{SG_POOLS, "fixed sizes"},    {SG_REGION, "region"},
                 {SG_TS_PAIR, "threads (a)"},  {SG_THREADS, "threads (b)"},
                 {SG_PRODCONS, "threads (c)"}, {SG_VARSIZE, "variable sizes"},
                 {SG_STRUCT, "threads (d, e)"}};
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (groups & names[i].group)
            textf(buf + strlen(buf), n - strlen(buf), "%s%s", buf[0] ? "; " : "", names[i].text);
}

static void write_doc(const study *st, const section *sec, int nsec, const goal_list *gl,
                      bool plots)
{
    FILE *f = fopen(st->opt.doc, "w");
    if (f == NULL)
        die("%s: %s", st->opt.doc, strerror(errno));
    const plan *pl = &st->opt.plan;
    char link[PATH_MAX], sizes[128] = "";
    for (int k = 0; k < st->opt.nsizes; k++)
        textf(sizes + strlen(sizes), sizeof sizes - strlen(sizes), "%s%zu", k ? ", " : "",
              st->opt.sizes[k]);
    char types[4 * TEXT] = "", server_live[32] = "no";
    for (int t = 0; t < SUITE_SERVER_TYPES; t++) {
        const suite_server_type *ty = &suite_server_types[t];
        textf(types + strlen(types), sizeof types - strlen(types),
              "%s%s (%zu B, %u every %u tick%s, mean %.0f "
              "ticks)",
              t ? ", " : "", ty->name, ty->size, ty->count, ty->every, ty->every > 1 ? "s" : "",
              ty->mean);
    }
    int server = cell_index(st, WL_SERVER, 0);
    if (server >= 0 && st->npeers > 0) {
        double live[MAX_PEERS];
        int idx[MAX_PEERS], n = cell_peers(st, server, idx);
        for (int i = 0; i < n; i++)
            live[i] = cell_summary(st, server, idx[i], m_live).med;
        if (n > 0)
            textf(server_live, sizeof server_live, "%.0f", summarize(live, n).med);
    }
    fprintf(f,
            "# mempool benchmarks\n\n"
            "Written by `bench_suite` (bench/suite/), do not edit: run `bash scripts/bench.sh` to "
            "measure "
            "again on your machine.\nThe figures are this machine's, on the day below; on another "
            "machine expect other figures, and maybe another order.\n\n");
    if (machine_busy(st))
        fprintf(f,
                "**The machine was busy during this run** (load average %s at the start, %s at the "
                "end, "
                "on %ld CPUs): expect wide min-max ranges and less steady medians than on a quiet "
                "machine.\n\n",
                st->load_start, st->load_end, sysconf(_SC_NPROCESSORS_ONLN));
    fprintf(f, "## Machine and run\n\n");
    write_machine(st, f);
    fprintf(
        f, "\n## Peers\n\nEach peer is a program of its own (`suite_<peer>`), built from the same "
           "loops "
           "(`bench/suite/suite_peer.c`, `suite_peer_mt.c`) with its alloc and free called "
           "directly: the "
           "pools' inline functions inlined, the allocators' functions called as a program calls "
           "them. "
           "A peer runs the workloads its column names and is n/a (no row) in the others: the "
           "floor and "
           "Boost.Pool are single-threaded pools, the fixed-size pools take no variable sizes, and "
           "mempool's variants run the workloads made for them.\n\n"
           "| peer | what and how | workloads | package |\n|---|---|---|---|\n");
    for (int p = 0; p < st->npeers; p++) {
        char groups[TEXT];
        groups_text(st->peers[p].def->groups, groups, sizeof groups);
        fprintf(f, "| %s | %s | %s | %s %s |\n", st->peers[p].def->name, st->peers[p].about, groups,
                st->peers[p].def->package ? st->peers[p].def->package : "this tree",
                st->peers[p].version);
    }
    if (st->nmissing > 0)
        fprintf(f, "\n**%d peer(s) missing from this run** (their programs were not built).\n",
                st->nmissing);
    fprintf(
        f,
        "\n## Method\n\n"
        "- **Fixed-size workloads**, at block sizes of %s bytes (the server has its own four). "
        "An *op* is one allocation and its free, everywhere; the *touch* writes the object's first "
        "word and last byte, as initialising an object would.\n"
        "  - *pair*: alloc, touch, free.\n"
        "  - *batch FIFO / LIFO*: alloc and touch %d objects, then free them oldest first / newest "
        "first.\n"
        "  - pair and batch are timed for about %.0f ms each (at most %" PRIu64 " ops), after an "
        "untimed warm-up of doubling length that also measures the peer's rate: a slow peer is "
        "timed over fewer ops rather than for longer.\n"
        "  - *churn*: %" PRIu64 " objects live; each step frees a random one and allocates and "
        "touches its replacement (one xorshift step and a random slot load included); %" PRIu64
        " steps timed after a tenth as many untimed. The fill before them is reported apart.\n"
        "  - *server*: time in ticks; requests arrive and bring objects of %d types, with "
        "lifetimes drawn from exponential distributions: %s. %s objects were live at the end "
        "(median). Deaths sit in a timing wheel linked through the objects, so a free reads its "
        "object as a destructor would; each object's stamp is checked at its death. %" PRIu64
        " ticks timed after %" PRIu64 " untimed.\n",
        sizes, SUITE_BATCH, (double)pl->loop_us / 1e3, pl->loop_max, pl->churn_live, pl->churn_n,
        SUITE_SERVER_TYPES, types, server_live, pl->server_n, pl->server_warm);
    write_mt_method(st, f);
    fprintf(
        f,
        "- **Fresh processes**: every measurement (one workload, one size, one peer, one run) is a "
        "process of its own, so no peer inherits another's heap, and the memory figures are that "
        "peer's alone. Before the baseline the peer allocates and frees one block, so its one-time "
        "setup is not charged to the workload.\n"
        "- **Interleaving**: run 1 of every workload and size on every peer, then run 2, and so "
        "on; "
        "within a cell the peers' order rotates each run. Drift and other load hit all peers "
        "alike.\n"
        "- **Figures**: the median of %d runs with the min-max; *x* is the median over the best "
        "peer's median in the same cell. Nothing is judged but the goals the issues set, each "
        "against "
        "its bound as measured: a missed goal is reported as missed.\n"
        "- **Memory**: resident set from `/proc/self/statm` before the workload and at the end of "
        "its timed section (every object live), peak from `VmHWM`, minor faults from "
        "`getrusage`.\n"
        "- **Every measurement is in CSV**: `results.csv` beside the plots, one line per run, peer "
        "and cell (minor faults and resident sets of every workload included).\n"
        "\nWhat the designs imply, to read the figures by (the figures themselves are measured, "
        "none is written here):\n\n"
        "- the floor's region is fixed: it is sized for the most blocks a workload can hold and "
        "linked, so touched, at creation. Its memory figures are that region, and in the server "
        "it is sized for the longest lifetime drawn.\n"
        "- mempool and boost::pool<> grow; mempool carves blocks lazily from 64 KiB chunks, "
        "boost::pool<> doubles its next chunk and links every block of a new chunk at once, so "
        "its newest chunk is resident whole.\n"
        "- the pools are inline (floor, mempool; Boost through LTO when GCC compiles both "
        "languages); the allocators are calls into shared libraries, and find the size class "
        "from the size or the pointer on every call.\n"
        "- glibc gives the top of its heap back to the system once more than `M_TRIM_THRESHOLD` "
        "(128 KiB by default) is free there, so a batch of large blocks freed each round may be "
        "faulted in again in the next (see its minor faults in the CSV).\n",
        pl->runs);
    for (int i = 0; i < nsec; i++) {
        fprintf(f, "\n## %s\n\n%s\n\n", sec[i].title, sec[i].note);
        table_print_md(&sec[i].t, f);
        if (sec[i].ngoals > 0)
            fputc('\n', f);
        for (int k = 0; k < sec[i].ngoals; k++) {
            const goal *g = &gl->g[sec[i].goals[k]];
            fprintf(f, "- goal: %s. Measured: %s: **%s**.\n", g->what, g->measured,
                    goal_met_text(g->met));
        }
        if (plots && sec[i].plot != NULL)
            fprintf(f, "\n![%s](%s/%s.png)\n", sec[i].title, plots_link(st, link, sizeof link),
                    sec[i].plot);
        if (plots && sec[i].plot2 != NULL)
            fprintf(f, "\n![%s](%s/%s.png)\n", sec[i].title, plots_link(st, link, sizeof link),
                    sec[i].plot2);
    }
    fclose(f);
}

/* The whole report, in the order a reader wants it: stdout first, then the files. */
bool report(const study *st)
{
    static section sec[MAX_SECTIONS];
    static goal_list gl;
    int nsec = build_sections(st, sec, &gl);
    print_sections(sec, nsec, &gl);
    if (machine_busy(st))
        printf("\nnote: the machine was busy (load average %s at the start, %s at the end, on %ld "
               "CPUs): "
               "expect wide min-max ranges\n",
               st->load_start, st->load_end, sysconf(_SC_NPROCESSORS_ONLN));
    bool plots = st->opt.plots != NULL && draw_plots(st);
    if (st->opt.csv != NULL)
        write_csv(st);
    if (st->opt.doc != NULL)
        write_doc(st, sec, nsec, &gl, plots);
    return plots;
}

/*
 * suite_report_mt.c: the report's sections for the workloads with threads and variable sizes
 * (suite_peer_mt.c): their tables, plots and method text, and the goals issues 3, 5, 7, 17 and 18
 * set for them, each judged on this run's medians and listed under the table it concerns.
 *
 * The goals, as the issues state them ("best malloc" is the fastest, or for memory the smallest, of
 * the general-purpose allocators in the same cell: glibc, jemalloc, tcmalloc, mimalloc, TBB):
 *   - the thread-safe pool's pair: <= 0.5 x the best malloc's time, and <= 2 x the plain pool's;
 *   - producer -> consumer: <= 0.5 x the best malloc's time per block;
 *   - two independent threads: >= 1.8 x the throughput of one;
 *   - mp_malloc in the mixed-size churn: <= 0.8 x the best malloc's time and <= 1.1 x its peak
 *     resident set;
 *   - structures larger than any cache (issue 17), for the thread-safe pool and mp_malloc alike:
 *     own structures at 2 threads <= 0.7 x the best malloc's time (at most 1.0 x), at 8 and 32
 *     threads <= 1.0 x; handover <= 0.3 x (at most 0.5 x); peak resident set <= 1.1 x the best
 *     malloc's in every cell;
 *   - the region (issue 18), for mp_pool + mp_pool_reset (the peer mempool) and mp_arena +
 *     mp_arena_reset alike: <= 0.8 x APR's time (at most 1.0 x) and <= 1.3 x the bare bump
 *     pointer's, at every node count (judged on the worst).
 * A goal whose peers are not in the run is "not measured". Nothing here changes a figure; a missed
 * goal is reported as missed.
 */
#define _DEFAULT_SOURCE /* PATH_MAX in suite_driver.h */

#include "suite_report.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define TS_SIZE 64 /* the block size of the thread workloads (suite.h) */
#define ST_SIZE 16 /* own and handover's block size (suite.h) */
#define NOTE (2 * TEXT)

/* ================================================================================================
 * Goals
 * ============================================================================================== */

/* Adds a goal on a ratio: met when ratio <= bound (or >= bound with `at_least`). A NaN ratio (a
 * peer missing) is "not measured". Returns its index; the section lists it. */
static int goal_add(goal_list *gl, section *s, const char *what, double ratio, double bound,
                    bool at_least, const char *detail)
{
    if (gl->n == MAX_GOALS || s->ngoals == MAX_SECTION_GOALS)
        die("too many goals: raise MAX_GOALS or MAX_SECTION_GOALS");
    goal *g = &gl->g[gl->n];
    textf(g->what, TEXT, "%s", what);
    if (isnan(ratio)) {
        g->met = -1;
        textf(g->measured, TEXT, "n/a (%s)", detail);
    } else {
        g->met = at_least ? ratio >= bound : ratio <= bound;
        textf(g->measured, TEXT, "x%.2f (%s)", ratio, detail);
    }
    s->goals[s->ngoals++] = gl->n;
    return gl->n++;
}

/* A goal with a looser limit beside its bound ("<= 0.7 x, at most 1.0 x"): a miss within the limit
 * is reported apart from a miss past it. */
static void goal_add_limit(goal_list *gl, section *s, const char *what, double ratio, double bound,
                           double limit, const char *detail)
{
    int i = goal_add(gl, s, what, ratio, bound, false, detail);
    if (gl->g[i].met == 0 && ratio <= limit)
        gl->g[i].met = 2;
}

void table_goals(const goal_list *gl, table *t)
{
    static const char *const head[] = {"goal", "measured", "met"};
    memset(t, 0, sizeof *t);
    table_head(t, 3, head);
    t->text_cols = 2;
    t->rows = 1;
    for (int i = 0; i < gl->n && t->rows < MAX_ROWS; i++, t->rows++) {
        textf(t->c[t->rows][0], CELL, "%s", gl->g[i].what);
        textf(t->c[t->rows][1], CELL, "%s", gl->g[i].measured);
        textf(t->c[t->rows][2], CELL, "%s", goal_met_text(gl->g[i].met));
        t->best[t->rows][2] = gl->g[i].met == 1;
    }
}

/* The median of peer `name` in cell c (NaN if the peer is not in the run or not in the cell). */
static double peer_med(const study *st, int c, const char *name, metric_fn *m)
{
    int p = peer_find(st, name);
    return c >= 0 && p >= 0 && st->on[c][p] ? cell_summary(st, c, p, m).med : NAN;
}

/* "best malloc tcmalloc 10.2 ns" for the best malloc of a cell, or "no malloc measured". */
static const char *best_malloc_text(const study *st, int c, metric_fn *m, const char *unit,
                                    char *buf, size_t n)
{
    int who;
    double v = cell_best_of(st, c, m, true, false, &who);
    char a[16];
    if (who < 0)
        textf(buf, n, "no malloc measured");
    else
        textf(buf, n, "best malloc %s %s %s", st->peers[who].def->name, fmt3(a, sizeof a, v), unit);
    return buf;
}

/* The goal "peer `name`'s median of m in cell c <= bound x the best malloc's" (m's unit in the
 * detail), with a looser limit (NAN: none). */
static void goal_vs_malloc(const study *st, section *s, goal_list *gl, int c, const char *name,
                           metric_fn *m, const char *unit, const char *what, double bound,
                           double limit)
{
    char detail[TEXT], b[TEXT], x[16];
    if (c < 0) {
        goal_add(gl, s, what, NAN, bound, false, "its cell is not in this run");
        return;
    }
    double mine = peer_med(st, c, name, m), mb = cell_best_of(st, c, m, true, false, NULL);
    textf(detail, TEXT, "%s %s %s, %s", name, fmt3(x, sizeof x, mine), unit,
          best_malloc_text(st, c, m, unit, b, sizeof b));
    goal_add_limit(gl, s, what, mine / mb, bound, limit, detail);
}

/* The goal "peer `name`'s peak resident set <= bound x the best malloc's in every cell of wl",
 * judged on the worst cell. */
static void goal_hwm_cells(const study *st, section *s, goal_list *gl, int wl, const char *name,
                           const char *what, double bound)
{
    double worst = NAN;
    int at = -1;
    for (int c = 0; c < st->ncells; c++) {
        if (st->cells[c].wl != wl)
            continue;
        double r =
            peer_med(st, c, name, m_hwm_mib) / cell_best_of(st, c, m_hwm_mib, true, false, NULL);
        if (!isnan(r) && (at < 0 || r > worst))
            worst = r, at = c;
    }
    char detail[TEXT], b[TEXT], x[16];
    if (at < 0)
        textf(detail, TEXT, "%s or no malloc measured", name);
    else
        textf(detail, TEXT, "worst at %u thread%s: %s %s MiB, %s", st->cells[at].threads,
              st->cells[at].threads > 1 ? "s" : "", name,
              fmt3(x, sizeof x, peer_med(st, at, name, m_hwm_mib)),
              best_malloc_text(st, at, m_hwm_mib, "MiB", b, sizeof b));
    goal_add(gl, s, what, worst, bound, false, detail);
}

/* ================================================================================================
 * Tables
 * ============================================================================================== */

/* "median [min-max]" of a metric. */
static void range_text(char *out, summary s)
{
    char a[16], b[16], d[16];
    textf(out, CELL, "%s [%s-%s]", fmt3(a, sizeof a, s.med), fmt3(b, sizeof b, s.lo),
          fmt3(d, sizeof d, s.hi));
}

/* A ratio to a reference, "x0.42", or "n/a" when there is no reference. */
static void ratio_text(char *out, double v, double ref)
{
    if (isnan(ref) || ref <= 0)
        textf(out, CELL, "n/a");
    else
        textf(out, CELL, "x%.2f", v / ref);
}

/* ts_pair: ns/op, against the best peer, the best malloc and the plain pool. */
static void table_ts_pair(const study *st, int c, table *t)
{
    static const char *const head[] = {"peer", "ns/op [min-max]", "x best", "x best malloc",
                                       "x plain pool"};
    memset(t, 0, sizeof *t);
    table_head(t, 5, head);
    int idx[MAX_PEERS], n = cell_peers(st, c, idx);
    double best = cell_best(st, c, m_ns),
           malloc_best = cell_best_of(st, c, m_ns, true, false, NULL);
    double plain = peer_med(st, c, "mempool", m_ns);
    t->rows = n + 1;
    for (int i = 0; i < n; i++) {
        summary s = cell_summary(st, c, idx[i], m_ns);
        char(*row)[CELL] = t->c[i + 1];
        textf(row[0], CELL, "%s", st->peers[idx[i]].def->name);
        range_text(row[1], s);
        ratio_text(row[2], s.med, best);
        ratio_text(row[3], s.med, malloc_best);
        ratio_text(row[4], s.med, plain);
        t->best[i + 1][1] = t->best[i + 1][2] = s.med == best;
    }
}

/* threads_*: throughput at each thread count, and the scaling from 1 to 2 threads. */
static void table_threads(const study *st, int wl, table *t)
{
    memset(t, 0, sizeof *t);
    textf(t->c[0][0], CELL, "peer");
    t->cols = 1;
    int c1 = cell_find(st, wl, TS_SIZE, 1), c2 = cell_find(st, wl, TS_SIZE, 2), idx[MAX_PEERS],
        n = 0;
    for (unsigned th = 1; th <= SUITE_MAX_THREADS; th++) {
        int c = cell_find(st, wl, TS_SIZE, th);
        if (c < 0)
            continue;
        int col = t->cols++;
        textf(t->c[0][col], CELL, "%u thread%s, Mops/s", th, th > 1 ? "s" : "");
        n = cell_peers(st, c, idx);
        double best = cell_best_of(st, c, m_mops, false, true, NULL);
        for (int i = 0; i < n; i++) {
            summary s = cell_summary(st, c, idx[i], m_mops);
            range_text(t->c[i + 1][col], s);
            t->best[i + 1][col] = s.med == best;
        }
    }
    int col = t->cols++;
    textf(t->c[0][col], CELL, "2 threads / 1");
    t->rows = n + 1;
    for (int i = 0; i < n; i++) {
        textf(t->c[i + 1][0], CELL, "%s", st->peers[idx[i]].def->name);
        if (c1 >= 0 && c2 >= 0)
            ratio_text(t->c[i + 1][col], cell_summary(st, c2, idx[i], m_mops).med,
                       cell_summary(st, c1, idx[i], m_mops).med);
    }
}

/* prodcons, handover: ns per block handed over, with throughput and memory. */
static void table_handoff(const study *st, int c, table *t)
{
    static const char *const head[] = {"peer",          "ns/block [min-max]", "x best",
                                       "x best malloc", "Mblocks/s",          "peak RSS MiB",
                                       "x best malloc", "minor faults"};
    memset(t, 0, sizeof *t);
    table_head(t, 8, head);
    int idx[MAX_PEERS], n = cell_peers(st, c, idx);
    double best = cell_best(st, c, m_ns),
           malloc_best = cell_best_of(st, c, m_ns, true, false, NULL),
           malloc_mbest = cell_best_of(st, c, m_hwm_mib, true, false, NULL);
    t->rows = n + 1;
    for (int i = 0; i < n; i++) {
        summary s = cell_summary(st, c, idx[i], m_ns);
        char a[16];
        char(*row)[CELL] = t->c[i + 1];
        textf(row[0], CELL, "%s", st->peers[idx[i]].def->name);
        range_text(row[1], s);
        ratio_text(row[2], s.med, best);
        ratio_text(row[3], s.med, malloc_best);
        textf(row[4], CELL, "%s", fmt3(a, sizeof a, cell_summary(st, c, idx[i], m_mops).med));
        double hwm = cell_summary(st, c, idx[i], m_hwm_mib).med;
        textf(row[5], CELL, "%s", fmt3(a, sizeof a, hwm));
        ratio_text(row[6], hwm, malloc_mbest);
        textf(row[7], CELL, "%.0f", cell_summary(st, c, idx[i], m_minflt).med);
        t->best[i + 1][1] = t->best[i + 1][2] = s.med == best;
    }
}

/* varsize at one thread count: time and peak memory against the best peer and the best malloc; with
 * c1 >= 0 (the one-thread cell), the scaling too. */
static void table_varsize(const study *st, int c, int c1, table *t)
{
    static const char *const head[] = {"peer",          "ns/op [min-max]",        "x best",
                                       "x best malloc", "peak RSS MiB [min-max]", "x best",
                                       "x best malloc", "RSS growth / payload",   "fill ns/obj",
                                       "2 threads / 1"};
    memset(t, 0, sizeof *t);
    table_head(t, c1 >= 0 ? 10 : 9, head);
    int idx[MAX_PEERS], n = cell_peers(st, c, idx);
    double best = cell_best(st, c, m_ns),
           malloc_best = cell_best_of(st, c, m_ns, true, false, NULL);
    double mbest = cell_best(st, c, m_hwm_mib),
           malloc_mbest = cell_best_of(st, c, m_hwm_mib, true, false, NULL);
    t->rows = n + 1;
    for (int i = 0; i < n; i++) {
        int p = idx[i];
        summary s = cell_summary(st, c, p, m_ns), h = cell_summary(st, c, p, m_hwm_mib);
        char a[16];
        char(*row)[CELL] = t->c[i + 1];
        textf(row[0], CELL, "%s", st->peers[p].def->name);
        range_text(row[1], s);
        ratio_text(row[2], s.med, best);
        ratio_text(row[3], s.med, malloc_best);
        range_text(row[4], h);
        ratio_text(row[5], h.med, mbest);
        ratio_text(row[6], h.med, malloc_mbest);
        textf(row[7], CELL, "x%.2f", cell_summary(st, c, p, m_over_payload).med);
        textf(row[8], CELL, "%s", fmt3(a, sizeof a, cell_summary(st, c, p, m_fill).med));
        if (c1 >= 0 && st->on[c1][p])
            ratio_text(row[9], cell_summary(st, c, p, m_mops).med,
                       cell_summary(st, c1, p, m_mops).med);
        t->best[i + 1][1] = t->best[i + 1][2] = s.med == best;
        t->best[i + 1][4] = t->best[i + 1][5] = h.med == mbest;
    }
}

/* own: at each thread count, ns per block against the best malloc's; then the peak resident set
 * at each thread count against the best malloc's. */
static void table_own(const study *st, table *t)
{
    memset(t, 0, sizeof *t);
    textf(t->c[0][0], CELL, "peer");
    int cs[SUITE_MAX_THREADS], ncs = 0, idx[MAX_PEERS], n = 0;
    for (unsigned th = 1; th <= SUITE_MAX_THREADS; th++)
        if ((cs[ncs] = cell_find(st, WL_OWN, ST_SIZE, th)) >= 0)
            ncs++;
    if (ncs == 0 || 1 + 2 * ncs > MAX_COLS)
        return;
    t->cols = 1 + 2 * ncs;
    for (int k = 0; k < ncs; k++) {
        int c = cs[k], time_col = 1 + k, mem_col = 1 + ncs + k;
        unsigned th = st->cells[c].threads;
        textf(t->c[0][time_col], CELL, "%u thread%s: ns/block [min-max], x best malloc", th,
              th > 1 ? "s" : "");
        textf(t->c[0][mem_col], CELL, "%u thread%s: peak RSS MiB, x best malloc", th,
              th > 1 ? "s" : "");
        n = cell_peers(st, c, idx);
        double mb = cell_best_of(st, c, m_ns, true, false, NULL),
               hb = cell_best_of(st, c, m_hwm_mib, true, false, NULL);
        for (int i = 0; i < n; i++) {
            summary s = cell_summary(st, c, idx[i], m_ns);
            double h = cell_summary(st, c, idx[i], m_hwm_mib).med;
            char r[CELL], a[16];
            range_text(t->c[i + 1][time_col], s);
            ratio_text(r, s.med, mb);
            textf(t->c[i + 1][time_col] + strlen(t->c[i + 1][time_col]),
                  CELL - strlen(t->c[i + 1][time_col]), " %s", r);
            ratio_text(r, h, hb);
            textf(t->c[i + 1][mem_col], CELL, "%s %s", fmt3(a, sizeof a, h), r);
            t->best[i + 1][time_col] = s.med == cell_best(st, c, m_ns);
            t->best[i + 1][mem_col] = h == cell_best(st, c, m_hwm_mib);
        }
    }
    t->rows = n + 1;
    for (int i = 0; i < n; i++)
        textf(t->c[i + 1][0], CELL, "%s", st->peers[idx[i]].def->name);
}

/* ================================================================================================
 * Sections
 * ============================================================================================== */

/* Section n, for workload wl: its title, and `note` under it (which the caller fills). */
static section *section_of(section *sec, int n, int wl, const char *note)
{
    sec[n].title = suite_workloads[wl].title;
    sec[n].note = note;
    return &sec[n];
}

static int section_ts_pair(const study *st, section *sec, int n, goal_list *gl, char *note)
{
    int c = cell_find(st, WL_TS_PAIR, TS_SIZE, 1);
    if (c < 0)
        return n;
    section *s = section_of(sec, n, WL_TS_PAIR, note);
    textf(
        note, NOTE,
        "ns per pair (alloc, touch, free of %d B on one thread): median [min-max] of %d runs. The "
        "thread-safe pool (mempool_ts) against the allocators, which are all thread-safe, and the "
        "plain pool.",
        TS_SIZE, st->opt.plan.runs);
    table_ts_pair(st, c, &s->t);
    s->plot = "ts_pair";
    char detail[TEXT], x[16], y[16];
    double ts = peer_med(st, c, "mempool_ts", m_ns), plain = peer_med(st, c, "mempool", m_ns);
    goal_vs_malloc(st, s, gl, c, "mempool_ts", m_ns, "ns",
                   "thread-safe pool pair <= 0.5 x the best malloc's time (issue 5)", 0.5, NAN);
    textf(detail, TEXT, "mempool_ts %s ns, plain mempool %s ns", fmt3(x, sizeof x, ts),
          fmt3(y, sizeof y, plain));
    goal_add(gl, s, "thread-safe pool pair <= 2 x the plain pool's time (issue 5)", ts / plain, 2.0,
             false, detail);
    return n + 1;
}

static int section_threads(const study *st, section *sec, int n, goal_list *gl, int wl, char *note)
{
    int c1 = cell_find(st, wl, TS_SIZE, 1), c2 = cell_find(st, wl, TS_SIZE, 2);
    if (c1 < 0 && c2 < 0)
        return n;
    section *s = section_of(sec, n, wl, note);
    textf(note, NOTE,
          "total throughput of all threads on one shared allocator (the floor: a pool per thread), "
          "Mops/s "
          "(an op is an alloc and its free): median [min-max] of %d runs, each timed for %.0f ms. "
          "This machine has %ld CPUs: more threads "
          "share them, so the throughput can only hold, not grow.",
          st->opt.plan.runs, (double)st->opt.plan.threads_us / 1e3, sysconf(_SC_NPROCESSORS_ONLN));
    table_threads(st, wl, &s->t);
    s->plot = suite_workloads[wl].name;
    double one = peer_med(st, c1, "mempool_ts", m_mops),
           two = peer_med(st, c2, "mempool_ts", m_mops);
    char detail[TEXT], what[TEXT], x[16], y[16], z[16];
    /* the best malloc's own scaling, for scale: the malloc fastest at two threads */
    int who = -1;
    if (c2 >= 0)
        cell_best_of(st, c2, m_mops, true, true, &who);
    double ref = who >= 0 && c1 >= 0
                     ? cell_summary(st, c2, who, m_mops).med / cell_summary(st, c1, who, m_mops).med
                     : NAN;
    textf(detail, TEXT, "mempool_ts %s -> %s Mops/s", fmt3(x, sizeof x, one),
          fmt3(y, sizeof y, two));
    if (who >= 0)
        textf(detail + strlen(detail), TEXT - strlen(detail),
              "; the fastest malloc at 2 threads, %s, scales x%s", st->peers[who].def->name,
              fmt3(z, sizeof z, ref));
    /* the machine's own scaling for this loop: the floor, a pool per thread, shares nothing */
    double floor1 = peer_med(st, c1, "floor", m_mops), floor2 = peer_med(st, c2, "floor", m_mops);
    if (floor1 > 0 && floor2 > 0)
        textf(detail + strlen(detail), TEXT - strlen(detail),
              "; the floor, a pool per thread, scales x%s", fmt3(z, sizeof z, floor2 / floor1));
    textf(what, TEXT, "thread-safe pool, %s: 2 threads >= 1.8 x the throughput of 1 (issue 5)",
          suite_workloads[wl].name);
    goal_add(gl, s, what, two / one, 1.8, true, detail);
    return n + 1;
}

/* Section n for the hand-off workload wl (prodcons, handover) of blocks of `size` bytes at 2
 * threads, in cell *c: its title, note, table and plot; NULL (and *c < 0) when the run has none. */
static section *section_handoff(const study *st, section *sec, int n, int wl, int size, char *note,
                                int *c)
{
    *c = cell_find(st, wl, size, 2);
    if (*c < 0)
        return NULL;
    section *s = section_of(sec, n, wl, note);
    table_handoff(st, *c, &s->t);
    s->plot = suite_workloads[wl].name;
    return s;
}

static int section_prodcons(const study *st, section *sec, int n, goal_list *gl, char *note)
{
    int c;
    section *s = section_handoff(st, sec, n, WL_PRODCONS, TS_SIZE, note, &c);
    if (s == NULL)
        return n;
    textf(
        note, NOTE,
        "ns per block handed over (allocated and touched by the producer, freed by the consumer), "
        "wall time over blocks: median [min-max] of %d runs, each timed for %.0f ms; memory: "
        "medians.",
        st->opt.plan.runs, (double)st->opt.plan.threads_us / 1e3);
    goal_vs_malloc(
        st, s, gl, c, "mempool_ts", m_ns, "ns",
        "thread-safe pool producer -> consumer <= 0.5 x the best malloc's time per block (issue 5)",
        0.5, NAN);
    return n + 1;
}

/* The two peers issue 17's goals hold to the best malloc: the thread-safe pool and mp_malloc. */
static const char *const st_peers[] = {"mempool_ts", "mp_malloc"};

static int section_own(const study *st, section *sec, int n, goal_list *gl, char *note)
{
    if (cell_find(st, WL_OWN, ST_SIZE, 1) < 0 && cell_find(st, WL_OWN, ST_SIZE, 2) < 0)
        return n;
    section *s = section_of(sec, n, WL_OWN, note);
    textf(note, NOTE,
          "ns per block (allocated and written, read in the walk, freed) of structures of %" PRIu64
          " blocks of %d B, wall time over the blocks of all threads: median [min-max] of %d runs, "
          "each timed for %.0f ms; x = median / the best malloc's median at that thread count. "
          "Peak RSS: VmHWM of the process, median. This machine has %ld CPUs: more threads share "
          "them.",
          st->opt.plan.struct_n, ST_SIZE, st->opt.plan.runs, (double)st->opt.plan.threads_us / 1e3,
          sysconf(_SC_NPROCESSORS_ONLN));
    table_own(st, &s->t);
    s->plot = "own";
    static const struct {
        unsigned threads;
        double bound, limit;
    } goals[] = {{2, 0.7, 1.0}, {8, 1.0, NAN}, {SUITE_MAX_THREADS, 1.0, NAN}};
    for (size_t p = 0; p < sizeof st_peers / sizeof st_peers[0]; p++) {
        char what[TEXT];
        for (size_t k = 0; k < sizeof goals / sizeof goals[0]; k++) {
            int lim = !isnan(goals[k].limit);
            textf(
                what, TEXT,
                "%s, own structures, %u threads: <= %.1f x the best malloc's time%s%s%s (issue 17)",
                st_peers[p], goals[k].threads, goals[k].bound, lim ? " (at most " : "",
                lim ? "1.0 x" : "", lim ? ")" : "");
            goal_vs_malloc(st, s, gl, cell_find(st, WL_OWN, ST_SIZE, goals[k].threads), st_peers[p],
                           m_ns, "ns", what, goals[k].bound, goals[k].limit);
        }
        textf(what, TEXT,
              "%s, own structures: peak RSS <= 1.1 x the best malloc's at every thread count "
              "(issue 17)",
              st_peers[p]);
        goal_hwm_cells(st, s, gl, WL_OWN, st_peers[p], what, 1.1);
    }
    return n + 1;
}

static int section_handover(const study *st, section *sec, int n, goal_list *gl, char *note)
{
    int c;
    section *s = section_handoff(st, sec, n, WL_HANDOVER, ST_SIZE, note, &c);
    if (s == NULL)
        return n;
    textf(note, NOTE,
          "ns per block (allocated and written by the builder, read and freed by the other "
          "thread) of structures of %" PRIu64 " blocks of %d B, wall time over the blocks freed: "
          "median [min-max] of %d runs, each timed for %.0f ms; memory: medians.",
          st->opt.plan.struct_n, ST_SIZE, st->opt.plan.runs, (double)st->opt.plan.threads_us / 1e3);
    for (size_t p = 0; p < sizeof st_peers / sizeof st_peers[0]; p++) {
        char what[TEXT];
        textf(what, TEXT,
              "%s, handover: <= 0.3 x the best malloc's time per block (at most 0.5 x) (issue 17)",
              st_peers[p]);
        goal_vs_malloc(st, s, gl, c, st_peers[p], m_ns, "ns", what, 0.3, 0.5);
        textf(what, TEXT, "%s, handover: peak RSS <= 1.1 x the best malloc's (issue 17)",
              st_peers[p]);
        goal_vs_malloc(st, s, gl, c, st_peers[p], m_hwm_mib, "MiB", what, 1.1, NAN);
    }
    return n + 1;
}

/* varsize or varsize_sparse (wl) at one thread count. */
static int section_varsize(const study *st, section *sec, int n, goal_list *gl, int wl,
                           unsigned threads, char *note)
{
    bool sparse = wl == WL_VARSIZE_SPARSE;
    int c = cell_find(st, wl, 0, threads), c1 = threads > 1 ? cell_find(st, wl, 0, 1) : -1;
    if (c < 0)
        return n;
    section *s = &sec[n];
    static const char *const titles[2][2] = {
        {"variable sizes: mixed-size churn, 1 thread",
         "variable sizes: mixed-size churn, 2 threads, each its own working set"},
        {"variable sizes, sparse: mixed-size churn writing each object's first and last byte, 1 "
         "thread",
         "variable sizes, sparse: mixed-size churn writing each object's first and last byte, 2 "
         "threads, each its own working set"}};
    s->title = titles[sparse][threads > 1];
    textf(
        note, NOTE,
        "ns per step (free a random live object, allocate and write one of the next size%s), wall "
        "time over the steps of all threads: median [min-max] of %d runs; peak RSS: VmHWM of the "
        "process, "
        "median [min-max]; RSS growth: the resident set at the end of the timed steps less the "
        "one before "
        "the workload, over the live payload; %" PRIu64 " objects live in all%s.%s",
        sparse ? ": its first and last byte only" : "", st->opt.plan.runs, st->opt.plan.var_live,
        threads > 1 ? ", half in each thread" : "",
        threads > 1 ? " 2 threads / 1: throughput at two threads over one." : "");
    s->note = note;
    table_varsize(st, c, c1, &s->t);
    if (threads == 1) {
        s->plot = sparse ? "varsize_sparse" : "varsize";
        s->plot2 = sparse ? "varsize_sparse_memory" : "varsize_memory";
    }
    const char *issue = sparse ? "issue 18" : "issue 7";
    char what[TEXT];
    textf(what, TEXT, "mp_malloc, %s, %u thread%s: <= 0.8 x the best malloc's time (%s)",
          suite_workloads[wl].name, threads, threads > 1 ? "s" : "", issue);
    goal_vs_malloc(st, s, gl, c, "mp_malloc", m_ns, "ns", what, 0.8, NAN);
    textf(what, TEXT, "mp_malloc, %s, %u thread%s: peak RSS <= 1.1 x the best malloc's (%s)",
          suite_workloads[wl].name, threads, threads > 1 ? "s" : "", issue);
    goal_vs_malloc(st, s, gl, c, "mp_malloc", m_hwm_mib, "MiB", what, 1.1, NAN);
    return n + 1;
}

/* The goal "peer `name`'s time <= bound x peer `ref`'s in the region" at every node count,
 * judged on the worst count, with a looser limit (NAN: none). */
static void goal_region(const study *st, section *s, goal_list *gl, const char *name,
                        const char *ref, const char *what, double bound, double limit)
{
    double worst = NAN;
    int at = -1;
    for (int k = 0; k < (int)SUITE_REGION_COUNTS; k++) {
        int c = cell_find(st, WL_REGION, suite_region_nodes[k], 1);
        double r = peer_med(st, c, name, m_ns) / peer_med(st, c, ref, m_ns);
        if (!isnan(r) && (at < 0 || r > worst))
            worst = r, at = c;
    }
    char detail[TEXT], x[16], y[16];
    if (at < 0)
        textf(detail, TEXT, "%s or %s not measured", name, ref);
    else
        textf(detail, TEXT, "worst at %zu nodes: %s %s ns, %s %s ns", st->cells[at].size, name,
              fmt3(x, sizeof x, peer_med(st, at, name, m_ns)), ref,
              fmt3(y, sizeof y, peer_med(st, at, ref, m_ns)));
    goal_add_limit(gl, s, what, worst, bound, limit, detail);
}

void goals_region(const study *st, section *s, goal_list *gl)
{
    static const char *const peers[][2] = {{"mempool", "mp_pool + mp_pool_reset"},
                                           {"mp_arena", "mp_arena + mp_arena_reset"}};
    char what[TEXT];
    for (size_t p = 0; p < sizeof peers / sizeof peers[0]; p++) {
        textf(what, TEXT,
              "%s, region: <= 0.8 x apr's time (at most 1.0 x) at every node count (issue 18)",
              peers[p][1]);
        goal_region(st, s, gl, peers[p][0], "apr", what, 0.8, 1.0);
        textf(what, TEXT,
              "%s, region: <= 1.3 x the bare bump pointer's time at every node count (issue 18)",
              peers[p][1]);
        goal_region(st, s, gl, peers[p][0], "bump", what, 1.3, NAN);
    }
}

int build_mt_sections(const study *st, section *sec, int n, goal_list *gl)
{
    static char notes[10][NOTE];
    n = section_ts_pair(st, sec, n, gl, notes[0]);
    n = section_threads(st, sec, n, gl, WL_THREADS_PAIR, notes[1]);
    n = section_threads(st, sec, n, gl, WL_THREADS_BATCH, notes[2]);
    n = section_prodcons(st, sec, n, gl, notes[3]);
    n = section_own(st, sec, n, gl, notes[8]);
    n = section_handover(st, sec, n, gl, notes[9]);
    n = section_varsize(st, sec, n, gl, WL_VARSIZE, 1, notes[4]);
    n = section_varsize(st, sec, n, gl, WL_VARSIZE, 2, notes[5]);
    n = section_varsize(st, sec, n, gl, WL_VARSIZE_SPARSE, 1, notes[6]);
    n = section_varsize(st, sec, n, gl, WL_VARSIZE_SPARSE, 2, notes[7]);
    if (n > MAX_SECTIONS - 1)
        die("too many sections: raise MAX_SECTIONS");
    return n;
}

/* ================================================================================================
 * Method text and plots
 * ============================================================================================== */

static bool planned(const study *st, int wl)
{
    for (int c = 0; c < st->ncells; c++)
        if (st->cells[c].wl == wl)
            return true;
    return false;
}

void write_mt_method(const study *st, FILE *f)
{
    const plan *pl = &st->opt.plan;
    double ms = (double)pl->threads_us / 1e3;
    if (planned(st, WL_TS_PAIR))
        fprintf(f,
                "- **threads (a)**, *ts_pair*: the pair above at %d B on one thread, run by the "
                "thread-safe "
                "pool (mempool_ts: `mp_pool_create` with `.flags = MP_THREAD_SAFE`), the plain "
                "pool and the "
                "allocators (all thread-safe), so the cost of thread safety is the ratio of the "
                "first two.\n",
                TS_SIZE);
    if (planned(st, WL_THREADS_PAIR) || planned(st, WL_THREADS_BATCH))
        fprintf(f,
                "- **threads (b)**: T = 1, 2, 4, 8 threads share one allocator (one thread-safe "
                "pool of %d-B "
                "blocks; the allocators' malloc/free of %d B); each runs its own loop: rounds of "
                "1000 pairs "
                "(*threads_pair*), or rounds of %d allocations freed oldest first "
                "(*threads_batch*: every "
                "block is touched, so a thread's working set is its batch). Each thread runs 20 "
                "untimed rounds, then all are released at once; the main thread sleeps %.0f ms and "
                "raises a "
                "stop flag, which each thread reads between rounds. The figure is the ops of all "
                "threads "
                "over the wall time from the release to the last thread's stop, as a throughput "
                "(Mops/s); "
                "the scaling is the throughput at 2 threads over 1. The floor, single-threaded, "
                "runs the "
                "same loops with a pool of its own in each thread: nothing is shared, so its "
                "scaling is "
                "what this machine gives the loop, the most a shared allocator could show. "
                "Boost.Pool and "
                "the plain pool are single-threaded: n/a.\n",
                TS_SIZE, TS_SIZE, SUITE_BATCH, ms);
    if (planned(st, WL_PRODCONS))
        fprintf(
            f,
            "- **threads (c)**, *prodcons*: a producer thread allocates and touches %d-B blocks "
            "and puts "
            "them, %d pointers at a time, into a ring of %d slots; a consumer thread frees each "
            "batch and "
            "gives its slot back (a flag per slot, stored with release and loaded with acquire; a "
            "waiting thread spins 128 times, then yields its CPU). Timed for %.0f ms, then the "
            "ring is "
            "drained; the figure is the wall time over the blocks freed, ns per block.\n",
            TS_SIZE, SUITE_PC_BATCH, SUITE_PC_RING, ms);
    if (planned(st, WL_OWN))
        fprintf(f,
                "- **threads (d)**, *own*: T = 1, 2, 4, 8, %d threads share one allocator (one "
                "thread-safe pool of %d-B blocks, mp_malloc, the allocators' malloc/free of %d B); "
                "each thread repeatedly builds a list of %" PRIu64
                " blocks (each block's first word links the one built before it, its last byte is "
                "written), walks it reading every block, and frees it newest first. Such a "
                "structure holds far more blocks than any per-thread cache, so what a thread "
                "frees goes back to the shared allocator and comes out again in the next build. "
                "Timed for %.0f ms as threads (b) are; the figure is the wall time over the blocks "
                "of all threads, ns per block.\n",
                SUITE_MAX_THREADS, ST_SIZE, ST_SIZE, pl->struct_n, ms);
    if (planned(st, WL_HANDOVER))
        fprintf(f,
                "- **threads (e)**, *handover*: one thread builds such lists and passes each "
                "whole one through a ring of 4 slots to another thread, which walks it and frees "
                "every block; timed for %.0f ms, then the ring is drained; the figure is the wall "
                "time over the blocks freed, ns per block.\n",
                ms);
    if (planned(st, WL_VARSIZE)) {
        char bands[TEXT] = "";
        for (int k = 0; k < SUITE_VAR_BANDS; k++) {
            const suite_var_band *b = &suite_var_bands[k];
            static const char *const shape[] = {
                "uniform", "log-uniform (each doubling alike)",
                "Pareto (density ~ 1/size^2: each doubling half as likely)"};
            textf(bands + strlen(bands), sizeof bands - strlen(bands), "%s%u%% %s in %zu-%zu B",
                  k ? ", " : "", b->pct, shape[b->shape], b->lo, b->hi);
        }
        fprintf(
            f,
            "- **variable sizes**, *varsize*: %" PRIu64
            " objects live in all, of sizes drawn %s (a "
            "table of 65536 sizes drawn from a fixed seed). With 1 thread, or 2 threads each with "
            "half "
            "the objects as a working set of its own; each thread has its own fixed seed for its "
            "victims "
            "and sizes, so every peer sees the same sequence. The fill, a tenth of the steps "
            "untimed, "
            "then %" PRIu64
            " timed steps in all (split between the threads), each: free a random live "
            "object (the size is passed; only mp_heap uses it, by `mp_heap_free_sized`), allocate "
            "one "
            "of the next size and touch it: its first word, a byte in every 4 KiB and its last "
            "byte, so "
            "its memory is resident as a program's would be. The figure is the wall time over the "
            "steps. mp_malloc and the allocators are shared by the threads; a plain mp_heap is not "
            "thread-safe, so each thread has its own. Memory: VmHWM of the process (the peak), and "
            "the "
            "growth of the resident set from before the workload to the end of the timed steps, "
            "over "
            "the live payload.\n",
            pl->var_live, bands, pl->var_n);
    }
    if (planned(st, WL_VARSIZE_SPARSE))
        fprintf(f,
                "- **variable sizes, sparse**, *varsize_sparse*: the same churn, but each object "
                "gets only its first and last byte written, as a program that sizes its buffers "
                "for the worst case or keeps spare capacity: the pages between are resident only "
                "if the allocator made them so, which the peak RSS shows.\n");
    if (planned(st, WL_TS_PAIR) || planned(st, WL_PRODCONS) || planned(st, WL_VARSIZE) ||
        planned(st, WL_VARSIZE_SPARSE) || planned(st, WL_OWN) || planned(st, WL_HANDOVER))
        fprintf(
            f,
            "- **Goals** (issues 3, 5, 7, 17, 18) are listed under the tables they concern and "
            "together at "
            "the end, each judged on the medians of this run: *best malloc* is the best of glibc, "
            "jemalloc, tcmalloc, mimalloc and TBB in the same cell. A goal with a limit beside its "
            "bound (\"<= 0.7 x, at most 1.0 x\") missed within the limit says so.\n");
}

void plot_mt(const study *st, FILE *g, const char *dir, const char *out_dir)
{
    char title[TEXT];
    int runs = st->opt.plan.runs;
    fprintf(g, "set xlabel ''\n");
    if (planned(st, WL_TS_PAIR)) {
        plot_data(st, dir, "ts_pair", WL_TS_PAIR, m_ns);
        snprintf(title, sizeof title,
                 "%s\\nns per op, median of %d runs (whiskers: min-max); log scale",
                 suite_workloads[WL_TS_PAIR].title, runs);
        plot_script(st, g, dir, out_dir, "ts_pair", WL_TS_PAIR, 1, title, "ns per op (log)", true);
    }
    fprintf(g, "set xlabel 'threads sharing one allocator'\n");
    for (int wl = WL_THREADS_PAIR; wl <= WL_THREADS_BATCH; wl++) {
        if (!planned(st, wl))
            continue;
        int rows = 0;
        for (int c = 0; c < st->ncells; c++)
            rows += st->cells[c].wl == wl;
        plot_data(st, dir, suite_workloads[wl].name, wl, m_mops);
        snprintf(title, sizeof title,
                 "%s\\ntotal throughput, Mops/s (higher is better), median of %d runs "
                 "(whiskers: min-max); log scale",
                 suite_workloads[wl].title, runs);
        plot_script(st, g, dir, out_dir, suite_workloads[wl].name, wl, rows, title, "Mops/s (log)",
                    true);
    }
    if (planned(st, WL_OWN)) {
        int rows = 0;
        for (int c = 0; c < st->ncells; c++)
            rows += st->cells[c].wl == WL_OWN;
        plot_data(st, dir, "own", WL_OWN, m_ns);
        snprintf(title, sizeof title,
                 "%s\\nns per block, median of %d runs (whiskers: min-max); log scale",
                 suite_workloads[WL_OWN].title, runs);
        plot_script(st, g, dir, out_dir, "own", WL_OWN, rows, title, "ns per block (log)", true);
    }
    fprintf(g, "set xlabel ''\n");
    if (planned(st, WL_HANDOVER)) {
        plot_data(st, dir, "handover", WL_HANDOVER, m_ns);
        snprintf(title, sizeof title,
                 "%s\\nns per block handed over, median of %d runs (whiskers: min-max); "
                 "log scale",
                 suite_workloads[WL_HANDOVER].title, runs);
        plot_script(st, g, dir, out_dir, "handover", WL_HANDOVER, 1, title, "ns per block (log)",
                    true);
    }
    if (planned(st, WL_PRODCONS)) {
        plot_data(st, dir, "prodcons", WL_PRODCONS, m_ns);
        snprintf(title, sizeof title,
                 "%s\\nns per block handed over, median of %d runs (whiskers: min-max); "
                 "log scale",
                 suite_workloads[WL_PRODCONS].title, runs);
        plot_script(st, g, dir, out_dir, "prodcons", WL_PRODCONS, 1, title, "ns per block (log)",
                    true);
    }
    for (int wl = WL_VARSIZE; wl <= WL_VARSIZE_SPARSE; wl++) {
        if (!planned(st, wl))
            continue;
        const char *name = suite_workloads[wl].name;
        char mem[64];
        textf(mem, sizeof mem, "%s_memory", name);
        int rows = 0;
        for (int c = 0; c < st->ncells; c++)
            rows += st->cells[c].wl == wl;
        plot_data(st, dir, name, wl, m_ns);
        snprintf(title, sizeof title, "%s\\nns per step, median of %d runs (whiskers: min-max)",
                 suite_workloads[wl].title, runs);
        plot_script(st, g, dir, out_dir, name, wl, rows, title, "ns per step", false);
        plot_data(st, dir, mem, wl, m_hwm_mib);
        snprintf(title, sizeof title,
                 "%s\\npeak resident set of the process (VmHWM), MiB, median of %d runs "
                 "(whiskers: min-max)",
                 suite_workloads[wl].title, runs);
        plot_script(st, g, dir, out_dir, mem, wl, rows, title, "peak RSS, MiB", false);
    }
}

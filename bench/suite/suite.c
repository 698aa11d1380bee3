/*
 * suite.c: the benchmark suite's driver, bench_suite. It runs every workload (suite.h) on every
 * peer, each measurement in a fresh peer process (suite_peer.c), and hands the figures to
 * suite_report.c, which prints the table on stdout and, when asked, writes docs/benchmarks.md with
 * PNG plots drawn by gnuplot and every raw figure as CSV.
 *
 *     bench_suite [--quick] [--runs N] [--doc FILE] [--plots DIR] [--csv FILE] [--command TEXT]
 *                 [--revision TEXT] [--peers a,b,...] [--workloads a,b,...] [--allow-missing]
 *
 * How it measures (the same text goes into the doc):
 *   - a peer is one program, suite_<peer>, found next to this one; the peer table below says which
 *     Debian package provides each. A peer whose program is missing, or says it cannot be measured
 *     in this build (a sanitizer's malloc replaced its allocator), is skipped with a note; in the
 *     full run (not --quick) that also makes the exit status 1, since the doc would lack it.
 *   - a peer runs the workloads of its groups (peer_defs below); it is n/a in the others.
 *   - runs are interleaved: run 1 of every cell (workload x size x threads) on every peer, then run
 *   2, ...;   within a cell the peers' order rotates by one each run. Drift of clock or load over
 *   the   minutes of a run thus hits every peer alike, and no peer always follows the same
 *   neighbour.
 *   - each figure is the median of the runs, with their min-max; "x" is a peer's median over the
 *     best peer's median in that cell. Memory figures (resident set, page faults) are medians too,
 *     each from a process that ran only that one measurement.
 * The driver never judges a figure: it exits nonzero only if a peer fails or (full run) is missing.
 *
 * Adding a peer: a row in `peer_defs`, its adapter peer_<name>.h and one line in CMakeLists.txt.
 * Adding a workload: see suite.h; its counts go in `plan` and `cell_args` here.
 */
#define _DEFAULT_SOURCE /* realpath */

#include "suite_driver.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ================================================================================================
 * The peers and the plan
 * ============================================================================================== */

/* Every peer the suite knows, in the order of the tables. `package` is the Debian package whose
 * absence explains a missing program (NULL: built from this tree); `groups` the workloads it runs
 * (suite.h): the floor and Boost.Pool are single-threaded pools, and the floor runs threads (b)
 * with a pool per thread, as the machine's own scaling; the plain pool joins the one-thread pair of
 * the thread-safe pool, as the figure that pool is held to; mempool's variants join only the
 * workloads they were made for; the general-purpose allocators run every workload, and `general`
 * makes them the "best malloc" of the goals (suite_report_mt.c). */
#define ALLOCATOR                                                                                  \
    (SG_POOLS | SG_TS_PAIR | SG_THREADS | SG_PRODCONS | SG_VARSIZE | SG_REGION | SG_STRUCT)
static const peer_def peer_defs[] = {
    {"floor", NULL, SG_POOLS | SG_THREADS, false},
    {"bump", NULL, SG_REGION, false},
    {"mempool", NULL, SG_POOLS | SG_TS_PAIR | SG_REGION, false},
    {"mp_arena", NULL, SG_REGION, false},
    {"apr", "libapr1-dev", SG_REGION, false},
    {"mempool_ts", NULL, SG_TS_PAIR | SG_THREADS | SG_PRODCONS | SG_STRUCT, false},
    {"mp_malloc", NULL, SG_VARSIZE | SG_STRUCT, false},
    {"mp_heap", NULL, SG_VARSIZE, false},
    {"glibc", "libc6", ALLOCATOR, true},
    {"jemalloc", "libjemalloc-dev", ALLOCATOR, true},
    {"tcmalloc", "libgoogle-perftools-dev", ALLOCATOR, true},
    {"mimalloc", "libmimalloc-dev", ALLOCATOR, true},
    {"tbb", "libtbb-dev", ALLOCATOR, true},
    {"boost", "libboost-dev", SG_POOLS, false},
};
#define NPEER_DEFS (sizeof peer_defs / sizeof peer_defs[0])
_Static_assert(NPEER_DEFS <= MAX_PEERS, "raise MAX_PEERS");

/* The two plans (struct plan in suite_driver.h): the full run's counts make each timed section last
 * 0.05-0.5 s; the quick run's, milliseconds. */
static const plan full_plan = {.runs = 5,
                               .loop_max = 100000000,
                               .loop_us = 100000,
                               .churn_n = 1000000,
                               .churn_live = 1u << 20,
                               .server_n = 100000,
                               .server_warm = 3 * 8192,
                               .threads_us = 100000,
                               .max_threads = 32,
                               .struct_n = 1u << 18,
                               .var_n = 400000,
                               .var_live = 100000,
                               .region_nodes = 1u << 24};
static const plan quick_plan = {.runs = 2,
                                .loop_max = 1000000,
                                .loop_us = 2000,
                                .churn_n = 20000,
                                .churn_live = 1u << 12,
                                .server_n = 1000,
                                .server_warm = 1000,
                                .threads_us = 2000,
                                .max_threads = 2,
                                .struct_n = 1u << 10,
                                .var_n = 2000,
                                .var_live = 2000,
                                .region_nodes = 1u << 16};

static void cell_args(const plan *pl, cell *c)
{
    switch (c->wl) {
    case WL_PAIR:
    case WL_TS_PAIR:
    case WL_BATCH_FIFO:
    case WL_BATCH_LIFO:
        c->n = pl->loop_max, c->m = pl->loop_us;
        break;
    case WL_CHURN:
        c->n = pl->churn_n, c->m = pl->churn_live;
        break;
    case WL_SERVER:
        c->n = pl->server_n, c->m = pl->server_warm;
        break;
    case WL_THREADS_PAIR:
    case WL_THREADS_BATCH:
    case WL_PRODCONS:
        c->n = 1, c->m = pl->threads_us;
        break;
    case WL_OWN:
    case WL_HANDOVER:
        c->n = pl->struct_n, c->m = pl->threads_us;
        break;
    case WL_VARSIZE:
    case WL_VARSIZE_SPARSE:
        c->n = pl->var_n, c->m = pl->var_live;
        break;
    case WL_REGION:
        c->n = pl->region_nodes, c->m = 0;
        break;
    default:
        die("no counts for workload %s", suite_workloads[c->wl].name);
    }
}

/* ================================================================================================
 * Small helpers
 * ============================================================================================== */

_Noreturn void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_suite: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* snprintf into a fixed field, truncating silently: for table cells and labels, whose sizes are
 * ample for what they hold (a direct snprintf would have GCC warn of each possible truncation). */
void textf(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

/* The first line of a file that starts with `key`, after the key and any ':' and blanks. */
bool file_field(const char *path, const char *key, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    bool found = false;
    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, strlen(key)) != 0)
            continue;
        const char *v = line + strlen(key);
        v += strspn(v, " \t:=\"");
        snprintf(out, n, "%s", v);
        out[strcspn(out, "\"\n")] = '\0';
        found = true;
    }
    fclose(f);
    return found;
}

/* The first line a shell command prints, or "" (for dpkg-query and gnuplot --version). */
void command_line(const char *cmd, char *out, size_t n)
{
    out[0] = '\0';
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return;
    if (fgets(out, (int)n, f) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    pclose(f);
}

static void load_average(char *out, size_t n)
{
    snprintf(out, n, "?");
    FILE *f = fopen("/proc/loadavg", "r");
    if (f == NULL)
        return;
    double a, b, c;
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
        snprintf(out, n, "%.2f %.2f %.2f", a, b, c);
    fclose(f);
}

/* ================================================================================================
 * Running a peer program
 * ============================================================================================== */

/* Runs argv[0] with stdout captured into out; returns its exit status (-1 if it did not exit).
 * Its stderr passes through. */
static int run_program(char *const argv[], char *out, size_t n)
{
    int fds[2];
    fflush(NULL);
    if (pipe(fds) != 0)
        die("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], argv);
        fprintf(stderr, "bench_suite: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    while ((r = read(fds[0], out + got, n - 1 - got)) > 0 || (r < 0 && errno == EINTR))
        got += r > 0 ? (size_t)r : 0;
    out[got] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid: %s", strerror(errno));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool field(const char *line, const char *key, double *v)
{
    char pat[32];
    snprintf(pat, sizeof pat, " %s=", key);
    const char *at = strstr(line, pat);
    if (at == NULL)
        return false;
    char *end;
    *v = strtod(at + strlen(pat), &end);
    return end != at + strlen(pat);
}

static bool parse_sample(const char *out, sample *s)
{
    const char *line = strstr(out, "result ");
    if (line == NULL)
        return false;
    line += strlen("result") - 1; /* keep the blank: every key is matched as " key=" */
    return field(line, "ns", &s->ns) && field(line, "fill_ns", &s->fill_ns) &&
           field(line, "ops", &s->ops) && field(line, "live", &s->live) &&
           field(line, "live_bytes", &s->live_bytes) && field(line, "minflt", &s->minflt) &&
           field(line, "rss_base", &s->rss_base) && field(line, "rss_end", &s->rss_end) &&
           field(line, "hwm", &s->hwm);
}

static void measure(const peer *p, const cell *c, sample *s)
{
    char size[32], n[32], m[32], threads[32], out[1024];
    snprintf(size, sizeof size, "%zu", c->size);
    snprintf(n, sizeof n, "%" PRIu64, c->n);
    snprintf(m, sizeof m, "%" PRIu64, c->m);
    snprintf(threads, sizeof threads, "%u", c->threads);
    char *argv[] = {
        (char *)p->path, (char *)suite_workloads[c->wl].name, size, n, m, threads, NULL};
    if (run_program(argv, out, sizeof out) != 0 || !parse_sample(out, s))
        die("peer %s failed on %s %s %s %s %s (output: %s)", p->def->name, argv[1], size, n, m,
            threads, out);
}

/* ================================================================================================
 * Options
 * ============================================================================================== */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: bench_suite [--quick] [--runs N] [--doc FILE] [--plots DIR] [--csv FILE]\n"
        "                   [--command TEXT] [--revision TEXT] [--peers a,b,...] [--workloads "
        "a,b,...]\n"
        "                   [--allow-missing]\n"
        "  --quick          tiny counts, %d runs, sizes 16 and 1024, at most 2 threads: seconds, a "
        "smoke\n"
        "                   test (ctest)\n"
        "  --sizes LIST     block sizes, e.g. 16,64 (default: 16,64,256,1024)\n"
        "  --runs N         interleaved runs per figure (default %d; the median is reported)\n"
        "  --doc FILE       write the report as markdown (docs/benchmarks.md)\n"
        "  --plots DIR      draw PNG plots there with gnuplot (docs/bench); the doc links them\n"
        "  --csv FILE       write every measurement, one line each\n"
        "  --command TEXT   the command line to record in the doc (default: this one)\n"
        "  --revision TEXT  the source revision to record in the doc\n"
        "  --peers LIST     only these peers\n"
        "  --workloads LIST only these workloads (pair, batch_fifo, batch_lifo, churn, server, "
        "ts_pair,\n"
        "                   threads_pair, threads_batch, prodcons, varsize, varsize_sparse,\n"
        "                   region, own, handover)\n"
        "  --allow-missing  a full run skips missing peers without failing\n",
        quick_plan.runs, full_plan.runs);
}

static options parse_options(int argc, char **argv)
{
    options o = {.plan = full_plan};
    int runs = 0;
    const char *sizes = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--quick") == 0)
            o.quick = true;
        else if (strcmp(a, "--allow-missing") == 0)
            o.allow_missing = true;
        else if (strcmp(a, "--runs") == 0 && has)
            runs = atoi(argv[++i]);
        else if (strcmp(a, "--doc") == 0 && has)
            o.doc = argv[++i];
        else if (strcmp(a, "--plots") == 0 && has)
            o.plots = argv[++i];
        else if (strcmp(a, "--csv") == 0 && has)
            o.csv = argv[++i];
        else if (strcmp(a, "--command") == 0 && has)
            o.command = argv[++i];
        else if (strcmp(a, "--revision") == 0 && has)
            o.revision = argv[++i];
        else if (strcmp(a, "--peers") == 0 && has)
            o.only = argv[++i];
        else if (strcmp(a, "--workloads") == 0 && has)
            o.workloads = argv[++i];
        else if (strcmp(a, "--sizes") == 0 && has)
            sizes = argv[++i];
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            usage(stdout), exit(0);
        else
            usage(stderr), die("bad option %s", a);
    }
    if (o.quick)
        o.plan = quick_plan;
    if (sizes == NULL) {
        for (size_t k = 0; k < SUITE_NSIZES; k++)
            if (!o.quick || suite_sizes[k] == 16 || suite_sizes[k] == 1024)
                o.sizes[o.nsizes++] = suite_sizes[k];
    }
    for (const char *p = sizes; p != NULL; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        long v = atol(p);
        if (o.nsizes == MAX_SIZES || v < 8 || v > (1L << 20))
            die("--sizes wants at most %d sizes, each from 8 to 2^20", MAX_SIZES);
        o.sizes[o.nsizes++] = (size_t)v;
    }
    for (const char *p = o.workloads; p != NULL; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        char name[64];
        textf(name, sizeof name, "%.*s", (int)strcspn(p, ","), p);
        if (suite_workload_find(name) < 0)
            die("--workloads: unknown workload %s", name);
    }
    if (runs != 0)
        o.plan.runs = runs;
    if (o.plan.runs < 1 || o.plan.runs > MAX_RUNS)
        die("--runs wants 1 to %d", MAX_RUNS);
    return o;
}

/* ================================================================================================
 * Finding the peers
 * ============================================================================================== */

static bool name_listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p != NULL && *p != '\0';
         p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

/* Why CMake did not build a peer, from suite_skipped.txt beside the programs ("name reason" lines).
 * */
static bool skip_reason(const char *dir, const char *name, char *out, size_t n)
{
    char path[PATH_MAX], key[64];
    textf(path, sizeof path, "%s/suite_skipped.txt", dir);
    textf(key, sizeof key, "%s ", name);
    return file_field(path, key, out, n);
}

/* Fills peers[] with the peers whose programs exist; notes the others. Returns how many exist;
 * *missing counts the skipped ones. */
static int find_peers(const options *o, peer *peers, int *missing)
{
    char self[PATH_MAX], dir[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        die("cannot find my own program: %s", strerror(errno));
    self[len] = '\0';
    snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(self, '/') - self), self);
    int n = 0;
    *missing = 0;
    for (size_t i = 0; i < NPEER_DEFS; i++) {
        const peer_def *d = &peer_defs[i];
        if (o->only != NULL && !name_listed(o->only, d->name))
            continue;
        peer *p = &peers[n];
        p->def = d;
        p->index = (int)i;
        if (snprintf(p->path, sizeof p->path, "%s/suite_%s", dir, d->name) >= (int)sizeof p->path)
            die("path too long: %s", dir);
        char why[TEXT];
        bool skipped =
            skip_reason(dir, d->name, why, sizeof why); /* even if an old program is left */
        if (skipped || access(p->path, X_OK) != 0) {
            if (!skipped)
                textf(why, sizeof why, "its program %s was not built%s%s%s", p->path,
                      d->package ? " (install " : "", d->package ? d->package : "",
                      d->package ? ", then re-run cmake)" : "");
            printf("note: skipping %s: %s\n", d->name, why);
            (*missing)++;
            continue;
        }
        char out[1024], *argv[] = {p->path, "--info", NULL};
        int status = run_program(argv, out, sizeof out);
        if (status == SUITE_EXIT_UNUSABLE && strncmp(out, "unusable ", 9) == 0) {
            out[strcspn(out, "\n")] = '\0';
            printf("note: skipping %s: %s\n", d->name, out + 9);
            (*missing)++;
            continue;
        }
        if (status != 0 || strncmp(out, "info ", 5) != 0)
            die("peer %s failed (--info said: %s)", d->name, out);
        textf(p->about, sizeof p->about, "%s", out + 5);
        p->about[strcspn(p->about, "\n")] = '\0';
        p->version[0] = '\0';
        if (d->package != NULL) {
            char cmd[256];
            snprintf(cmd, sizeof cmd, "dpkg-query -W -f='${Version}' %s 2>/dev/null", d->package);
            command_line(cmd, p->version, sizeof p->version);
        }
        n++;
    }
    return n;
}

/* ================================================================================================
 * The measurements: every run, every cell, every peer
 * ============================================================================================== */

/* Every workload (of --workloads) at every size or thread count it runs at; a workload no peer of
 * this run joins is left out. */
static void plan_cells(study *st)
{
    st->ncells = 0;
    for (int w = 0; w < WL_COUNT; w++) {
        const suite_workload_info *wi = &suite_workloads[w];
        bool any = false;
        for (int p = 0; p < st->npeers; p++)
            any |= (st->peers[p].def->groups & wi->group) != 0;
        if (!any || (st->opt.workloads != NULL && !name_listed(st->opt.workloads, wi->name)))
            continue;
        int nsizes = wi->sized ? st->opt.nsizes : w == WL_REGION ? (int)SUITE_REGION_COUNTS : 1;
        for (int k = 0; k < nsizes; k++)
            for (unsigned t = 1; t <= SUITE_MAX_THREADS; t++) {
                if (wi->threads == 0
                        ? t != 1
                        : (wi->threads & SUITE_T(t)) == 0 || t > st->opt.plan.max_threads)
                    continue;
                cell *c = &st->cells[st->ncells];
                c->wl = w;
                c->size = wi->sized        ? st->opt.sizes[k]
                          : w == WL_REGION ? suite_region_nodes[k]
                                           : wi->size;
                c->threads = t;
                cell_args(&st->opt.plan, c);
                for (int p = 0; p < st->npeers; p++)
                    st->on[st->ncells][p] = (st->peers[p].def->groups & wi->group) != 0;
                st->ncells++;
            }
    }
}

static void run_all(study *st)
{
    double t0 = now_s();
    int runs = st->opt.plan.runs;
    for (int r = 0; r < runs; r++) {
        for (int c = 0; c < st->ncells; c++)
            for (int k = 0; k < st->npeers; k++) {
                int p = (k + r) % st->npeers;
                if (st->on[c][p])
                    measure(&st->peers[p], &st->cells[c], &st->s[c][p][r]);
            }
        double t = now_s() - t0;
        fprintf(stderr, "bench_suite: run %d/%d done, %.0f s elapsed, about %.0f s to go\n", r + 1,
                runs, t, t / (r + 1) * (runs - r - 1));
    }
    st->seconds = now_s() - t0;
}

/* ================================================================================================
 * Main
 * ============================================================================================== */

static void print_header(const study *st)
{
    printf("bench_suite: mempool against its peers, %s run: %d runs per figure, each in a fresh "
           "process\n",
           st->opt.quick ? "quick" : "full", st->opt.plan.runs);
    printf("command: %s\n", st->opt.command);
    printf("date: %s; load average: %s\n", st->date, st->load_start);
    for (int p = 0; p < st->npeers; p++)
        printf("  %-10s %s%s%s\n", st->peers[p].def->name, st->peers[p].about,
               st->peers[p].version[0] ? "; package " : "", st->peers[p].version);
}

int main(int argc, char **argv)
{
    static study st;
    static char command[4096];
    double t0 = now_s();
    st.opt = parse_options(argc, argv);
    if (st.opt.command == NULL) {
        for (int i = 0; i < argc; i++)
            snprintf(command + strlen(command), sizeof command - strlen(command), "%s%s",
                     i ? " " : "", argv[i]);
        st.opt.command = command;
    }
    time_t now = time(NULL);
    strftime(st.date, sizeof st.date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    load_average(st.load_start, sizeof st.load_start);
    st.npeers = find_peers(&st.opt, st.peers, &st.nmissing);
    if (st.npeers == 0)
        die("no peer to measure");
    plan_cells(&st);
    if (st.ncells == 0)
        die("no workload to run");
    print_header(&st);
    fflush(stdout);
    run_all(&st);
    load_average(st.load_end, sizeof st.load_end);

    bool plots = report(&st);
    printf("\ntotal time: %.0f s%s%s%s%s\n", now_s() - t0, st.opt.doc ? "; wrote " : "",
           st.opt.doc ? st.opt.doc : "", plots ? " and plots in " : "", plots ? st.opt.plots : "");
    if (st.nmissing > 0 && !st.opt.quick && !st.opt.allow_missing) {
        printf("%d peer(s) missing: the full run wants them all (scripts/bench-suite.sh installs "
               "them)\n",
               st.nmissing);
        return 1;
    }
    return 0;
}

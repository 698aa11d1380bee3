/*
 * bench_pool.c: mempool's 64-byte pools beside "the floor" (floor.h), the free-list pool of the
 * original design, as ratios measured within one run.
 *
 * Workloads (each run does the floor, then mempool; the median of the per-run figures and ratios
 * is printed with their min-max, so drift in clock speed or load hits both sides alike):
 *   1. pairs:  alloc, touch one byte, free; ns per pair.       target: mempool <= 1.5 x floor
 *   2. churn:  fill `live` blocks, then replace a random live block per step (free it, alloc,
 *              touch); ns per step, the random index included.  target: mempool <= 1.3 x floor
 *      Beside it, create + fill of those `live` blocks, ns per block, page faults included: no
 *      target; it shows where each design pays for its memory.
 *   3. RSS:    resident-set growth of a fresh forked child that creates a pool, allocates `live`
 *              blocks and touches each, over the payload (live * 64 bytes); mempool grows
 *              (capacity 0).                                     target: mempool <= 1.10
 *   4. create: mp_pool_create() with capacity for 4 GiB of 64-byte blocks: its time (median, us;
 *              target < 1 ms), the RSS it adds (target ~0, checked as <= 64 KiB) and its stats'
 *              bytes_reserved (the contract: one page of bookkeeping, no chunk before an alloc).
 *   5. kinds:  the pair loop of workload 1 on a plain pool and on pools with each flag (MP_ZERO,
 *              MP_THREAD_SAFE, MP_SECURE, MP_CHECKED), interleaved run by run; ns per pair and the
 *              ratio to the plain pool of the same run. Goals from the issues: a thread-safe pool
 *              <= 2 x plain, a secure pool <= 1.5 x plain; checked and zeroing pools have none.
 *
 * Honesty rules kept here: every figure is measured in this run, nothing is hard-coded; the timed
 * loops contain only the pool calls, the touch, the caller's NULL check (which real code has, and
 * which stops the compiler deleting the floor's empty-list test) and a compiler barrier that
 * emits no instruction; both sides run the same loop text (BENCH_LOOPS). The exit status is 0
 * unless a pool misbehaves (or, with --strict, a target is missed): the machine may be noisy, the
 * code is not.
 */
#define _POSIX_C_SOURCE 200809L

#include "bench_util.h"
#include "floor.h"

#include <mempool.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 64         /* the block size measured, bytes */
#define MAX_RUNS 101     /* the most runs a row can hold */
#define RSS_LIMIT_KIB 64 /* "RSS delta ~0" is checked as at most this */
#define GIB4 ((uint64_t)4 << 30)

/* A compiler barrier: no instruction, but the compiler must assume any memory may be read or
 * written here, so the touch is not dead and no iteration is merged with the next. */
#define BARRIER() __asm__ __volatile__("" ::: "memory")

/* ================================================================================================
 * Options
 * ============================================================================================== */

typedef struct bench_opts {
    int runs;        /* interleaved runs per workload (the median is printed) */
    uint64_t pairs;  /* alloc+free pairs per run */
    size_t live;     /* live blocks for churn and RSS */
    uint64_t steps;  /* churn replace steps per run */
    int create_runs; /* mp_pool_create() timings for the 4 GiB row */
    bool quick;
    bool strict;   /* exit 2 when a target is missed */
    unsigned only; /* bit w set: run workload w (1..5); 0: all */
} bench_opts;

static const bench_opts default_opts = {7, 50000000, 1u << 20, 10000000, 51, false, false, 0};
static const bench_opts quick_opts = {5, 1000000, 1u << 16, 300000, 11, true, false, 0};

/* ================================================================================================
 * Small helpers: errors, clock, random numbers, medians, RSS
 * ============================================================================================== */

static _Noreturn void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_pool: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* Median, min and max of v[0..n). */
static void summarize(const double *v, int n, double *med, double *lo, double *hi)
{
    double s[MAX_RUNS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    *med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    *lo = s[0];
    *hi = s[n - 1];
}

/* The resident set now, bytes: /proc/self/statm (read with plain syscalls, so measuring allocates
 * nothing), or the peak from getrusage() where there is no /proc. */
static bool rss_from_proc = true;

static double rss_now(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n > 0) {
            buf[n] = '\0';
            char *end;
            strtoull(buf, &end, 10); /* total size, skipped */
            unsigned long long pages = strtoull(end, NULL, 10);
            return (double)pages * (double)sysconf(_SC_PAGESIZE);
        }
    }
    rss_from_proc = false;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss * 1024.0;
}

/* ================================================================================================
 * The pools under test
 * ============================================================================================== */

static mp_pool *mempool_create_64(size_t capacity, const char *name)
{
    mp_pool *pool =
        mp_pool_create(&(mp_pool_opts){.block_size = BLOCK, .capacity = capacity, .name = name});
    if (pool == NULL)
        die("mp_pool_create(%s, capacity %zu): %s", name, capacity, strerror(errno));
    return pool;
}

/* The pool's counters must match what the loop did, or its figures mean nothing. */
static void mempool_expect(const mp_pool *pool, uint64_t allocs, uint64_t in_use)
{
    mp_stats st;
    if (mp_pool_stats(pool, &st) != 0)
        die("mp_pool_stats failed");
    if (st.allocs != allocs || st.blocks_in_use != in_use ||
        st.allocs - st.frees != st.blocks_in_use)
        die("pool \"%s\": allocs %" PRIu64 " (expected %" PRIu64 "), in use %" PRIu64
            " (expected %" PRIu64 "), frees %" PRIu64,
            st.name, st.allocs, allocs, st.blocks_in_use, in_use, st.frees);
    if (!mp_pool_check(pool))
        die("pool \"%s\": mp_pool_check failed", st.name);
}

/*
 * The timed loops, written once and stamped out for each pool so both sides run the same text
 * around their inline alloc/free. (One function taking alloc and free as function pointers would
 * read better, but would leave inlining to the optimizer, and an indirect call would swamp what is
 * measured.) Not inlined into their callers, so each loop can be read in a disassembly as it ran.
 *   _pairs: n pairs, ns per pair.
 *   _fill:  allocates and touches slots[0..live), ns per block.
 *   _churn: `steps` random replacements over slots[0..live), ns per step.
 */
#define BENCH_LOOPS(side, pool_type, alloc_fn, free_fn)                                            \
    static MP_NOINLINE double side##_pairs(pool_type *pool, uint64_t n)                            \
    {                                                                                              \
        double t0 = now_ns();                                                                      \
        for (uint64_t i = 0; i < n; i++) {                                                         \
            char *p = alloc_fn(pool);                                                              \
            if (MP_UNLIKELY(p == NULL))                                                            \
                die(#side ": alloc failed in the pair loop");                                      \
            p[BLOCK - 1] = (char)i;                                                                \
            free_fn(pool, p);                                                                      \
            BARRIER();                                                                             \
        }                                                                                          \
        return (now_ns() - t0) / (double)n;                                                        \
    }                                                                                              \
    static MP_NOINLINE double side##_fill(pool_type *pool, void **slots, size_t live)              \
    {                                                                                              \
        double t0 = now_ns();                                                                      \
        for (size_t i = 0; i < live; i++) {                                                        \
            char *p = alloc_fn(pool);                                                              \
            if (MP_UNLIKELY(p == NULL))                                                            \
                die(#side ": alloc failed filling block %zu", i);                                  \
            p[BLOCK - 1] = (char)i;                                                                \
            slots[i] = p;                                                                          \
            BARRIER();                                                                             \
        }                                                                                          \
        return (now_ns() - t0) / (double)live;                                                     \
    }                                                                                              \
    static MP_NOINLINE double side##_churn(pool_type *pool, void **slots, size_t live,             \
                                           uint64_t steps)                                         \
    {                                                                                              \
        uint64_t x = 0x9E3779B97F4A7C15u;                                                          \
        double t0 = now_ns();                                                                      \
        for (uint64_t s = 0; s < steps; s++) {                                                     \
            x = rng_step(x);                                                                       \
            size_t i = rng_index(x, live);                                                         \
            free_fn(pool, slots[i]);                                                               \
            char *p = alloc_fn(pool);                                                              \
            if (MP_UNLIKELY(p == NULL))                                                            \
                die(#side ": alloc failed in churn step %" PRIu64, s);                             \
            p[BLOCK - 1] = (char)s;                                                                \
            slots[i] = p;                                                                          \
            BARRIER();                                                                             \
        }                                                                                          \
        return (now_ns() - t0) / (double)steps;                                                    \
    }

BENCH_LOOPS(floor, floor_pool, floor_pool_alloc, floor_pool_free)
BENCH_LOOPS(mempool, mp_pool, mp_pool_alloc, mp_pool_free)

/* ================================================================================================
 * Rows of the table
 * ============================================================================================== */

enum check_kind { CHECK_NONE, CHECK_RATIO, CHECK_MEMPOOL };

typedef struct row_spec {
    const char *what;      /* workload and unit */
    const char *fmt;       /* printf format of one figure */
    const char *target;    /* as printed */
    enum check_kind check; /* which median the target bounds */
    double limit;          /* the bound (inclusive) */
    bool has_floor;
} row_spec;

typedef struct row {
    row_spec spec;
    int n; /* runs recorded */
    double floor[MAX_RUNS], mempool[MAX_RUNS], ratio[MAX_RUNS];
} row;

enum { PAIRS, CHURN, FILL, RSS, CREATE_TIME, CREATE_RSS, CREATE_RESERVED, NROWS };

static const row_spec row_specs[NROWS] = {
    [PAIRS] = {"1 alloc+free pair, ns/op", "%.2f", "ratio <= 1.5", CHECK_RATIO, 1.5, true},
    [CHURN] = {"2 churn, ns/step", "%.2f", "ratio <= 1.3", CHECK_RATIO, 1.3, true},
    [FILL] = {"  create+fill, ns/block", "%.2f", "-", CHECK_NONE, 0, true},
    [RSS] = {"3 RSS growth / payload", "%.3f", "mempool <= 1.10", CHECK_MEMPOOL, 1.10, true},
    [CREATE_TIME] = {"4 create cap 4 GiB, us", "%.1f", "< 1000 us", CHECK_MEMPOOL, 1000, false},
    [CREATE_RSS] = {"  create cap 4 GiB, RSS KiB", "%.0f", "~0 (<= 64 KiB)", CHECK_MEMPOOL,
                    RSS_LIMIT_KIB, false},
    /* The limit is the page size, set in main(). */
    [CREATE_RESERVED] = {"  create cap 4 GiB, bytes_reserved", "%.0f", "<= 1 page", CHECK_MEMPOOL,
                         0, false},
};

static void row_add(row *r, double floor_v, double mempool_v)
{
    r->floor[r->n] = floor_v;
    r->mempool[r->n] = mempool_v;
    r->ratio[r->n] = floor_v > 0 ? mempool_v / floor_v : 0;
    r->n++;
}

/* "median [min-max]" of v, or "n/a". */
static void cell(char *out, size_t size, const char *fmt, const double *v, int n, bool present)
{
    if (!present || n == 0) {
        snprintf(out, size, "n/a");
        return;
    }
    double med, lo, hi;
    char a[32], b[32], c[32];
    summarize(v, n, &med, &lo, &hi);
    snprintf(a, sizeof a, fmt, med);
    snprintf(b, sizeof b, fmt, lo);
    snprintf(c, sizeof c, fmt, hi);
    snprintf(out, size, "%s [%s-%s]", a, b, c);
}

/* Prints the row; returns whether it meets its target (true when it has none). */
static bool row_print(const row *r)
{
    const row_spec *s = &r->spec;
    char f[128], m[128], q[128];
    cell(f, sizeof f, s->fmt, r->floor, r->n, s->has_floor);
    cell(m, sizeof m, s->fmt, r->mempool, r->n, true);
    cell(q, sizeof q, "%.2f", r->ratio, r->n, s->has_floor);
    double med, lo, hi;
    bool ok = true;
    if (s->check != CHECK_NONE) {
        summarize(s->check == CHECK_RATIO ? r->ratio : r->mempool, r->n, &med, &lo, &hi);
        ok = med <= s->limit;
    }
    const char *verdict = s->check == CHECK_NONE ? "" : ok ? "ok" : "MISS";
    printf("%-34s %-24s %-24s %-18s %-16s %s\n", s->what, f, m, q, s->target, verdict);
    fflush(stdout);
    return ok;
}

/* ================================================================================================
 * Workload 5: the pair loop on each kind of pool
 * ============================================================================================== */

typedef struct kind_spec {
    const char *name;
    unsigned flags;
    const char *goal; /* as printed: the goal for the ratio to plain, or "-" */
    double limit;     /* 0: none */
} kind_spec;

static const kind_spec kinds[] = {
    {"plain", 0, "-", 0},
    {"MP_ZERO", MP_ZERO, "-", 0},
    {"MP_THREAD_SAFE", MP_THREAD_SAFE, "<= 2 x plain", 2.0},
    {"MP_SECURE", MP_SECURE, "<= 1.5 x plain", 1.5},
    {"MP_CHECKED", MP_CHECKED, "-", 0},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static double kind_pairs(const kind_spec *k, uint64_t warm, uint64_t n)
{
    mp_pool *mp =
        mp_pool_create(&(mp_pool_opts){.block_size = BLOCK, .flags = k->flags, .name = k->name});
    if (mp == NULL)
        die("mp_pool_create(%s): %s", k->name, strerror(errno));
    mempool_pairs(mp, warm);
    double ns = mempool_pairs(mp, n);
    mempool_expect(mp, warm + n, 0);
    mp_pool_destroy(mp);
    return ns;
}

/* The churn of row 2 on each kind of pool, over `live` blocks: ns per step (a random block freed,
 * a new one allocated and touched). Every block is freed before the pool is destroyed (a checked
 * pool would report leaks). */
static double kind_churn(const kind_spec *k, void **slots, size_t live, uint64_t warm,
                         uint64_t steps)
{
    mp_pool *mp =
        mp_pool_create(&(mp_pool_opts){.block_size = BLOCK, .flags = k->flags, .name = k->name});
    if (mp == NULL)
        die("mp_pool_create(%s): %s", k->name, strerror(errno));
    mempool_fill(mp, slots, live);
    mempool_churn(mp, slots, live, warm);
    double ns = mempool_churn(mp, slots, live, steps);
    mempool_expect(mp, live + warm + steps, live);
    for (size_t i = 0; i < live; i++)
        mp_pool_free(mp, slots[i]);
    mp_pool_destroy(mp);
    return ns;
}

/* Live blocks of the churn by kind: a 4 MiB working set, so that each run takes milliseconds. */
#define KIND_CHURN_LIVE 65536u

/* Prints its own table; returns whether every goal was met. */
static bool run_kinds(const bench_opts *o)
{
    static double ns[NKINDS][MAX_RUNS], ratio[NKINDS][MAX_RUNS];
    static double cns[NKINDS][MAX_RUNS], cratio[NKINDS][MAX_RUNS];
    uint64_t n = o->pairs / 5 + 1, warm = n / 16 + 1;
    size_t live = o->live < KIND_CHURN_LIVE ? o->live : KIND_CHURN_LIVE;
    uint64_t csteps = o->steps / 5 + 1, cwarm = 4 * (uint64_t)live;
    void **slots = malloc(live * sizeof *slots);
    if (slots == NULL)
        die("out of memory for %zu slots", live);
    for (int r = 0; r < o->runs; r++) {
        for (size_t k = 0; k < NKINDS; k++) {
            ns[k][r] = kind_pairs(&kinds[k], warm, n);
            ratio[k][r] = ns[0][r] > 0 ? ns[k][r] / ns[0][r] : 0;
            cns[k][r] = kind_churn(&kinds[k], slots, live, cwarm, csteps);
            cratio[k][r] = cns[0][r] > 0 ? cns[k][r] / cns[0][r] : 0;
        }
    }
    free(slots);
    printf("\n5 by kind of pool, %d runs interleaved: the alloc+free pair (%" PRIu64
           " pairs a run), and\n"
           "  the churn of row 2 over %zu live blocks (%" PRIu64 " steps a run, after %" PRIu64
           " untimed)\n",
           o->runs, n, live, csteps, cwarm);
    printf("%-16s %-22s %-20s %-14s %-6s %-22s %s\n", "pool", "pair ns", "pair / plain", "goal", "",
           "churn ns/step", "churn / plain");
    bool ok = true;
    for (size_t k = 0; k < NKINDS; k++) {
        char a[128], b[128], c[128], d[128];
        cell(a, sizeof a, "%.2f", ns[k], o->runs, true);
        cell(b, sizeof b, "%.2f", ratio[k], o->runs, true);
        cell(c, sizeof c, "%.2f", cns[k], o->runs, true);
        cell(d, sizeof d, "%.2f", cratio[k], o->runs, true);
        double med, lo, hi;
        summarize(ratio[k], o->runs, &med, &lo, &hi);
        bool met = kinds[k].limit == 0 || med <= kinds[k].limit;
        ok &= met;
        printf("%-16s %-22s %-20s %-14s %-6s %-22s %s\n", kinds[k].name, a, b, kinds[k].goal,
               kinds[k].limit == 0 ? ""
               : met               ? "ok"
                                   : "MISS",
               c, d);
    }
    fflush(stdout);
    return ok;
}

/* ================================================================================================
 * Workloads 1 and 2: pairs, churn (and create + fill)
 * ============================================================================================== */

static void run_pairs(const bench_opts *o, row *r)
{
    uint64_t warm = o->pairs / 16 + 1;
    for (int i = 0; i < o->runs; i++) {
        floor_pool *fp = floor_pool_create(BLOCK, 64);
        if (fp == NULL)
            die("floor_pool_create failed");
        floor_pairs(fp, warm);
        double fl = floor_pairs(fp, o->pairs);
        floor_pool_destroy(fp);

        mp_pool *mp = mempool_create_64(0, "pairs");
        mempool_pairs(mp, warm);
        double me = mempool_pairs(mp, o->pairs);
        mempool_expect(mp, warm + o->pairs, 0);
        mp_pool_destroy(mp);
        row_add(r, fl, me);
    }
}

/*
 * Untimed churn steps before the timed ones: enough to visit nearly every live block (4 * live
 * random picks miss 2% of them), since a block's first visit costs a cache miss the steady state
 * does not have. With less, short runs measure the warm-up and the ratio swings (seen at 64K live
 * with 37K steps: 1.6-2x either way, from which side the caches happened to favour).
 */
static uint64_t churn_warm_steps(const bench_opts *o)
{
    uint64_t visit_all = 4 * (uint64_t)o->live;
    return o->steps / 8 > visit_all ? o->steps / 8 : visit_all;
}

/* One run of churn for each side; the create + fill figures go to `fill`. */
static void run_churn_once(const bench_opts *o, void **slots, row *churn, row *fill)
{
    uint64_t warm = churn_warm_steps(o);
    double t0 = now_ns();
    floor_pool *fp = floor_pool_create(BLOCK, o->live);
    if (fp == NULL)
        die("floor_pool_create(%zu blocks) failed", o->live);
    double fl_create = now_ns() - t0;
    double fl_fill = floor_fill(fp, slots, o->live);
    floor_churn(fp, slots, o->live, warm);
    double fl_churn = floor_churn(fp, slots, o->live, o->steps);
    floor_pool_destroy(fp);

    t0 = now_ns();
    mp_pool *mp = mempool_create_64(0, "churn");
    double me_create = now_ns() - t0;
    double me_fill = mempool_fill(mp, slots, o->live);
    mempool_churn(mp, slots, o->live, warm);
    double me_churn = mempool_churn(mp, slots, o->live, o->steps);
    mempool_expect(mp, o->live + warm + o->steps, o->live);
    mp_pool_destroy(mp);

    row_add(churn, fl_churn, me_churn);
    row_add(fill, fl_create / (double)o->live + fl_fill, me_create / (double)o->live + me_fill);
}

static void run_churn(const bench_opts *o, row *churn, row *fill)
{
    void **slots = malloc(o->live * sizeof *slots);
    if (slots == NULL)
        die("out of memory for %zu slots", o->live);
    memset(slots, 0, o->live * sizeof *slots); /* fault the array in before any timing */
    for (int i = 0; i < o->runs; i++)
        run_churn_once(o, slots, churn, fill);
    free(slots);
}

/* ================================================================================================
 * Workloads 3 and 4: RSS in a forked child, the 4 GiB create
 * ============================================================================================== */

typedef struct phase_result {
    double rss;      /* resident-set growth over the phase, bytes */
    double reserved; /* mempool's bytes_reserved at the end (0 for the floor) */
    double chunks;   /* mempool's stats.chunks at the end */
    int err;         /* errno of a failure, 0 if none */
} phase_result;

typedef phase_result phase_fn(const bench_opts *o);

/* Row 4's pool: capacity for 4 GiB of blocks (a block less with a 32-bit size_t, which 4 GiB
 * would overflow). */
#define CAP_4GIB ((size_t)(GIB4 / BLOCK < SIZE_MAX / BLOCK ? GIB4 / BLOCK : SIZE_MAX / BLOCK))
static const mp_pool_opts opts_4gib = {.block_size = BLOCK, .capacity = CAP_4GIB, .name = "4g"};

/* Faults in the code and data a phase uses, so the child's baseline excludes them. */
static void phase_warm_up(void)
{
    mp_pool *mp = mempool_create_64(0, "warm");
    mp_stats st;
    mp_pool_free(mp, mp_pool_alloc(mp));
    mp_pool_stats(mp, &st);
    mp_pool_destroy(mp);
    floor_pool_destroy(floor_pool_create(BLOCK, 1));
    rss_now();
}

static phase_result phase_floor_live(const bench_opts *o)
{
    phase_result r = {0};
    double before = rss_now();
    floor_pool *fp = floor_pool_create(BLOCK, o->live);
    if (fp == NULL) {
        r.err = ENOMEM;
        return r;
    }
    for (size_t i = 0; i < o->live; i++) {
        char *p = floor_pool_alloc(fp);
        p[BLOCK - 1] = 1;
    }
    BARRIER();
    r.rss = rss_now() - before;
    return r;
}

static phase_result phase_mempool_live(const bench_opts *o)
{
    phase_result r = {0};
    mp_stats st;
    double before = rss_now();
    mp_pool *mp = mempool_create_64(0, "rss");
    for (size_t i = 0; i < o->live; i++) {
        char *p = mp_pool_alloc(mp);
        if (p == NULL) {
            r.err = errno;
            return r;
        }
        p[BLOCK - 1] = 1;
    }
    BARRIER();
    r.rss = rss_now() - before;
    mp_pool_stats(mp, &st);
    r.reserved = (double)st.bytes_reserved;
    r.chunks = (double)st.chunks;
    return r;
}

static phase_result phase_mempool_4gib(const bench_opts *o)
{
    (void)o;
    phase_result r = {0};
    mp_stats st;
    double before = rss_now();
    mp_pool *mp = mp_pool_create(&opts_4gib);
    if (mp == NULL) {
        r.err = errno;
        return r;
    }
    r.rss = rss_now() - before;
    mp_pool_stats(mp, &st);
    r.reserved = (double)st.bytes_reserved;
    r.chunks = (double)st.chunks;
    return r;
}

/* Runs fn in a fresh child process and returns what it measured; dies if the child does. */
static phase_result in_child(phase_fn *fn, const bench_opts *o)
{
    int fds[2];
    phase_result r = {0};
    fflush(NULL);
    if (pipe(fds) != 0)
        die("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        phase_warm_up();
        r = fn(o);
        _exit(write(fds[1], &r, sizeof r) == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fds[1]);
    ssize_t got = read(fds[0], &r, sizeof r);
    close(fds[0]);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        got != (ssize_t)sizeof r)
        die("a measuring child failed (status 0x%x)", status);
    return r;
}

static void run_rss(const bench_opts *o, row *r, phase_result *last_mempool)
{
    double payload = (double)o->live * BLOCK;
    rss_now(); /* here, not only in the children, so the notes know whether /proc was there */
    for (int i = 0; i < o->runs; i++) {
        phase_result fl = in_child(phase_floor_live, o);
        phase_result me = in_child(phase_mempool_live, o);
        if (fl.err || me.err)
            die("RSS phase: allocation failed: %s", strerror(fl.err ? fl.err : me.err));
        row_add(r, fl.rss / payload, me.rss / payload);
        *last_mempool = me;
    }
}

/* The create time in the parent (no fork in the way), the RSS and stats in children. */
static void run_create_4gib(const bench_opts *o, row *time_us, row *rss_kib, row *reserved)
{
    for (int i = 0; i < o->create_runs && i < MAX_RUNS; i++) {
        double t0 = now_ns();
        mp_pool *mp = mp_pool_create(&opts_4gib);
        double t = now_ns() - t0;
        if (mp == NULL)
            die("mp_pool_create(capacity %zu blocks = 4 GiB): %s", CAP_4GIB, strerror(errno));
        mp_pool_destroy(mp);
        row_add(time_us, 0, t / 1e3);
    }
    for (int i = 0; i < o->runs; i++) {
        phase_result me = in_child(phase_mempool_4gib, o);
        if (me.err)
            die("mp_pool_create(4 GiB) in a child: %s", strerror(me.err));
        row_add(rss_kib, 0, me.rss / 1024);
        row_add(reserved, 0, me.reserved);
    }
}

/* ================================================================================================
 * Main: options, the runs, the table
 * ============================================================================================== */

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: bench_pool [--quick] [--runs N] [--pairs N] [--live N] [--steps N]\n"
        "                  [--create-runs N] [--strict] [--only W[,W...]]\n"
        "  --quick         small sizes, a fraction of a second (a smoke test)\n"
        "  --runs N        interleaved floor/mempool runs per workload (default %d)\n"
        "  --pairs N       alloc+free pairs per run (default %" PRIu64 ")\n"
        "  --live N        live blocks for churn and RSS (default %zu)\n"
        "  --steps N       churn steps per run (default %" PRIu64 ")\n"
        "  --create-runs N mp_pool_create timings for the 4 GiB row (default %d)\n"
        "  --strict        exit 2 if a target is missed (the default exits 0: timings are noisy)\n"
        "  --only W,...    run only these workloads (numbers 1-5, as in the table)\n",
        default_opts.runs, default_opts.pairs, default_opts.live, default_opts.steps,
        default_opts.create_runs);
}

static uint64_t parse_count(const char *arg, const char *flag, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = arg ? strtoull(arg, &end, 10) : 0;
    if (arg == NULL || errno != 0 || *end != '\0' || v < min || v > max)
        die("%s wants a number in [%" PRIu64 ", %" PRIu64 "]", flag, min, max);
    return v;
}

/* "1,5" -> bits 1 and 5. */
static unsigned parse_only(const char *arg)
{
    unsigned bits = 0;
    for (const char *s = arg; s != NULL && *s != '\0'; s++) {
        if (*s >= '1' && *s <= '5')
            bits |= 1u << (*s - '0');
        else if (*s != ',')
            die("--only wants workload numbers 1-5 separated by commas");
    }
    if (bits == 0)
        die("--only wants workload numbers 1-5 separated by commas");
    return bits;
}

static bench_opts parse_args(int argc, char **argv)
{
    bench_opts o = default_opts;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0)
            o = quick_opts;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0)
            continue;
        else if (strcmp(a, "--strict") == 0)
            o.strict = true;
        else if (strcmp(a, "--runs") == 0)
            o.runs = (int)parse_count(v, a, 1, MAX_RUNS), i++;
        else if (strcmp(a, "--pairs") == 0)
            o.pairs = parse_count(v, a, 1, UINT64_MAX / 2), i++;
        else if (strcmp(a, "--live") == 0)
            o.live = (size_t)parse_count(v, a, 1, (uint64_t)1 << 30), i++;
        else if (strcmp(a, "--steps") == 0)
            o.steps = parse_count(v, a, 1, UINT64_MAX / 2), i++;
        else if (strcmp(a, "--create-runs") == 0)
            o.create_runs = (int)parse_count(v, a, 1, MAX_RUNS), i++;
        else if (strcmp(a, "--only") == 0)
            o.only = parse_only(v), i++;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            usage(stdout), exit(0);
        else
            usage(stderr), die("unknown option %s", a);
    }
    return o;
}

static bool wants(const bench_opts *o, unsigned workload)
{
    return o->only == 0 || (o->only & (1u << workload)) != 0;
}

static void print_header(const bench_opts *o, int argc, char **argv)
{
    char load[64] = "?";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fgets(load, sizeof load, f) != NULL)
            load[strcspn(load, "\n")] = '\0';
        fclose(f);
    }
    printf("bench_pool: %d-byte blocks, mempool %d.%d.%d vs the floor (bench/floor.h)\ncommand:",
           BLOCK, MP_VERSION_MAJOR, MP_VERSION_MINOR, MP_VERSION_PATCH);
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\noptions: %s--runs %d --pairs %" PRIu64 " --live %zu --steps %" PRIu64
           " --create-runs %d%s\n",
           o->quick ? "--quick (" : "", o->runs, o->pairs, o->live, o->steps, o->create_runs,
           o->quick ? ")" : "");
#ifdef __OPTIMIZE__
    const char *optimized = "yes";
#else
    const char *optimized = "NO: figures are meaningless, build Release";
#endif
    printf("compiler: %s, optimized: %s; load average: %s\n", __VERSION__, optimized, load);
    printf("figures: median [min-max] of %d runs, floor then mempool in each; "
           "ratio = mempool/floor per run\n\n",
           o->runs);
    printf("%-34s %-24s %-24s %-18s %-16s %s\n", "workload", "floor", "mempool", "ratio", "target",
           "");
}

int main(int argc, char **argv)
{
    bench_opts o = parse_args(argc, argv);
    double t_start = now_ns();
    static row rows[NROWS]; /* static: each holds three arrays of MAX_RUNS */
    for (int i = 0; i < NROWS; i++)
        rows[i].spec = row_specs[i];
    rows[CREATE_RESERVED].spec.limit = (double)sysconf(_SC_PAGESIZE);
    phase_result last = {0};

    print_header(&o, argc, argv);
    bool ok = true;
    if (wants(&o, 1)) {
        run_pairs(&o, &rows[PAIRS]);
        ok &= row_print(&rows[PAIRS]);
    }
    if (wants(&o, 2)) {
        run_churn(&o, &rows[CHURN], &rows[FILL]);
        ok &= row_print(&rows[CHURN]);
        row_print(&rows[FILL]);
    }
    if (wants(&o, 3)) {
        run_rss(&o, &rows[RSS], &last);
        ok &= row_print(&rows[RSS]);
    }
    if (wants(&o, 4)) {
        run_create_4gib(&o, &rows[CREATE_TIME], &rows[CREATE_RSS], &rows[CREATE_RESERVED]);
        for (int i = CREATE_TIME; i <= CREATE_RESERVED; i++)
            ok &= row_print(&rows[i]);
    }
    if (wants(&o, 5))
        ok &= run_kinds(&o);

    double payload = (double)o.live * BLOCK;
    printf("\nnotes:\n");
    printf("  churn and RSS hold %zu live blocks (%.1f MiB payload); churn's ns/step includes\n"
           "  one xorshift step and a random slot load on both sides. mempool grows (capacity 0)\n"
           "  in every row but 4.\n",
           o.live, payload / 1048576);
    if (wants(&o, 3))
        printf(
            "  RSS: %s delta in a fresh forked child; mempool then held\n"
            "  bytes_reserved %.1f MiB (%.3f x payload), stats.chunks %.0f: RSS counts the pages\n"
            "  touched, bytes_reserved what was taken from the system.\n",
            rss_from_proc ? "/proc/self/statm" : "getrusage maxrss (no /proc)",
            last.reserved / 1048576, last.reserved / payload, last.chunks);
    printf("  the floor has no row 4: it writes every link at creation, so a 4 GiB floor takes\n"
           "  and touches 4 GiB (its create+fill row above is that cost per block).\n");
    if (o.quick)
        printf("  --quick is a smoke test: its sizes are too small for steady-state figures.\n");
    printf("total time: %.2f s; %s\n", (now_ns() - t_start) / 1e9,
           ok ? "all targets met" : "some targets MISSED (provisional on a noisy machine)");
    return !ok && o.strict ? 2 : 0;
}

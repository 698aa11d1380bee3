/*
 * suite_peer.c: one peer of the benchmark suite: runs one measurement of one workload in a fresh
 * process and prints one line of figures (the protocol is in suite.h).
 *
 * It is compiled once per peer: CMake passes SUITE_PEER_HEADER, the peer's adapter (peer_*.h), and
 * the loops below call the adapter's functions directly. So every peer runs at its natural speed:
 * the pools' static inline alloc and free are inlined into the loops, the allocators' are the plain
 * calls a program makes, and no peer pays for a function pointer the others skip. (One program
 * with a table of function pointers would read better but would slow the inline pools by a call;
 * and a program per peer is the only way to hold several allocators that each replace malloc.)
 *
 * The workloads with threads and variable sizes are in suite_peer_mt.c, built into the same
 * program; suite_peer.h is what the two files share.
 *
 * The adapter contract, what each peer_<name>.h defines:
 *   PEER_NAME              its short name, "mempool"
 *   PEER_FIXED_SIZE        1: a handle serves one block size (a pool); 0: any size (the malloc
 *   family) PEER_THREAD_SAFE       1: one handle may be used by several threads at once (the
 *   threads                        workloads share one); 0: a handle is one thread's at a time
 *   (varsize                        gives such a peer a handle per thread; the other thread
 *   workloads                        refuse it)
 *   peer_handle            the type of a handle (one per block size a workload uses)
 *   bool peer_init(char *about, size_t n)
 *                          once per process: writes one line saying what the peer is (version, how
 *                          it is linked and called); or returns false, with the reason in `about`,
 *                          if the peer is not what it claims here (e.g. a sanitizer's malloc
 *                          replaced the allocator it should call); the program then exits 3 and the
 *                          driver skips the peer as if it were not built
 *   peer_handle *peer_open(size_t size, size_t max_live)
 *                          a handle for blocks of `size` bytes (0 in varsize, for any size: only
 *                          PEER_FIXED_SIZE 0 peers run it); max_live is the most blocks the
 *                          workload will hold at once (only the fixed-region floor needs it). NULL
 *                          if out of memory. Called on the main thread; a thread-safe handle is
 *                          then used by every thread of the workload
 *   void *peer_alloc(peer_handle *h, size_t size)      `size` is the handle's size (varsize: any);
 *   NULL                                                    if out of memory
 *   void peer_free(peer_handle *h, void *p, size_t size)   `size` as asked of peer_alloc
 *   void peer_close(peer_handle *h)                    after the workload has freed every block
 *   PEER_RELEASE_ALL       optional, for the region workload: defined when the peer releases
 *   void peer_release_all(peer_handle *h)    every block of a handle at once (a pool's reset, an
 *                          arena's, APR's clear); without it the region frees node by node
 * alloc and free are static inline; everything else may be a plain static function (suite_peer_mt.c
 * leaves some unused and says so to the compiler).
 *
 * Honesty rules: every figure is measured here, nothing is hard-coded; the timed loops hold only
 * the peer's calls, the touch (the object's first word and last byte are written, as a program
 * initialising an object would), the caller's NULL check, the workload's own bookkeeping (the same
 * for every peer) and an escape that emits no instruction but makes the compiler keep every
 * allocation, its touch and its free. The program never judges a figure: it exits nonzero only if
 * a peer fails (out of memory, an overlapping block, not the allocator it claims).
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */

#include "suite.h"

#include SUITE_PEER_HEADER

#include "suite_peer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

/* ================================================================================================
 * Small helpers: errors, clock, random numbers, resident set, page faults, scratch memory
 * ============================================================================================== */

_Noreturn void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "suite_%s: ", PEER_NAME);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

NOINLINE _Noreturn void die_oom(const char *where)
{
    die("out of memory in %s", where);
}

/* Reads a /proc file with plain system calls: measuring must not call the allocator under test
 * (stdio's buffers come from malloc, which is the peer itself in some programs). */
static size_t proc_read(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

/* The resident set now, bytes (/proc/self/statm: size, then resident pages). */
static double rss_now(void)
{
    char buf[128], *end;
    if (proc_read("/proc/self/statm", buf, sizeof buf) == 0)
        return 0;
    strtoull(buf, &end, 10);
    return (double)strtoull(end, NULL, 10) * (double)sysconf(_SC_PAGESIZE);
}

/* The peak resident set of this process, bytes (VmHWM in /proc/self/status, else getrusage). */
static double hwm_now(void)
{
    char buf[4096];
    const char *line =
        proc_read("/proc/self/status", buf, sizeof buf) ? strstr(buf, "VmHWM:") : NULL;
    if (line != NULL)
        return (double)strtoull(line + 6, NULL, 10) * 1024.0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss * 1024.0;
}

static long minflt_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

void *scratch_get(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap of %zu bytes of scratch: %s", bytes, strerror(errno));
    memset(p, 0, bytes);
    return p;
}

void scratch_put(void *p, size_t bytes)
{
    munmap(p, bytes);
}

/* ================================================================================================
 * Measurement frame and the peer's first use
 * ============================================================================================== */

void frame_begin(result *r)
{
    r->rss_base = rss_now();
    r->minflt = minflt_now();
}

/* Called at the end of the timed section, every object still live. */
void frame_end(result *r, size_t live, double live_bytes)
{
    r->minflt = minflt_now() - r->minflt;
    r->rss_end = rss_now();
    r->hwm = hwm_now();
    r->live = live;
    r->live_bytes = live_bytes;
}

void peer_first_use(size_t size)
{
    peer_handle *h = peer_open(size, 1);
    void *p = h ? peer_alloc(h, size) : NULL;
    if (p == NULL)
        die_oom("the first use");
    touch(p, size, 1);
    ESCAPE(p);
    peer_free(h, p, size);
    peer_close(h);
}

peer_handle *open_or_die(size_t size, size_t max_live)
{
    peer_handle *h = peer_open(size, max_live);
    if (h == NULL)
        die_oom("peer_open");
    return h;
}

/* ================================================================================================
 * Workloads 1 and 2: pair, batch (FIFO and LIFO)
 * ============================================================================================== */

static NOINLINE void pair_loop(peer_handle *h, size_t size, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        char *p = alloc_touched(h, size, i, "pair");
        peer_free(h, p, size);
    }
}

/*
 * How many units of a loop (pairs, batch rounds) to time: runs the loop untimed on 1, 2, 4, ...
 * units until one call lasts a tenth of the target, then returns the count that fills the target at
 * that rate, at most `max`. So a slow peer is timed over fewer ops rather than for longer (glibc's
 * FIFO batch of 1024-byte blocks runs at microseconds per op, where a pool takes nanoseconds), and
 * the calls double as the warm-up. One indirect call per call of the loop, none per op.
 */
static uint64_t calibrate(void (*run)(void *ctx, uint64_t units), void *ctx, double target_ns,
                          uint64_t max)
{
    double t;
    uint64_t k = 1;
    for (;;) {
        double t0 = now_ns();
        run(ctx, k);
        t = now_ns() - t0;
        if (t >= target_ns / 10 || k >= max)
            break;
        k *= 2;
    }
    double n = target_ns / (t > 0 ? t / (double)k : 1);
    return n >= (double)max ? max : n < 1 ? 1 : (uint64_t)n;
}

typedef struct loop_ctx {
    peer_handle *h;
    size_t size;
    void **slots;
    bool lifo;
} loop_ctx;

static void pair_run(void *ctx, uint64_t units)
{
    loop_ctx *c = ctx;
    pair_loop(c->h, c->size, units * 1000);
}

/* n: the most pairs timed; target_us: the timed section's intended length (see calibrate). */
static result wl_pair(size_t size, uint64_t n, uint64_t target_us, unsigned threads)
{
    (void)threads; /* 1: the main thread */
    result r = {0};
    peer_first_use(size);
    frame_begin(&r);
    loop_ctx c = {.h = open_or_die(size, 64), .size = size};
    uint64_t units = calibrate(pair_run, &c, (double)target_us * 1e3, (n + 999) / 1000);
    double t0 = now_ns();
    pair_loop(c.h, size, units * 1000);
    r.ops = units * 1000;
    r.ns = (now_ns() - t0) / (double)r.ops;
    frame_end(&r, 0, 0);
    peer_close(c.h);
    return r;
}

/* `rounds` times: allocate and touch SUITE_BATCH objects, then free them all, oldest or newest
 * first. */
static NOINLINE void batch_loop(peer_handle *h, size_t size, void **slots, uint64_t rounds,
                                bool lifo)
{
    for (uint64_t r = 0; r < rounds; r++) {
        for (size_t i = 0; i < SUITE_BATCH; i++) {
            slots[i] = alloc_touched(h, size, i, "batch");
        }
        if (lifo)
            for (size_t i = SUITE_BATCH; i-- > 0;)
                peer_free(h, slots[i], size);
        else
            for (size_t i = 0; i < SUITE_BATCH; i++)
                peer_free(h, slots[i], size);
        ESCAPE(slots);
    }
}

static void batch_run(void *ctx, uint64_t rounds)
{
    loop_ctx *c = ctx;
    batch_loop(c->h, c->size, c->slots, rounds, c->lifo);
}

/* n: the most objects timed (in whole rounds); target_us: as for the pair. */
static result wl_batch(size_t size, uint64_t n, uint64_t target_us, bool lifo)
{
    result r = {0};
    void **slots = scratch_get(SUITE_BATCH * sizeof *slots);
    peer_first_use(size);
    frame_begin(&r);
    loop_ctx c = {.h = open_or_die(size, SUITE_BATCH), .size = size, .slots = slots, .lifo = lifo};
    uint64_t rounds =
        calibrate(batch_run, &c, (double)target_us * 1e3, (n + SUITE_BATCH - 1) / SUITE_BATCH);
    double t0 = now_ns();
    batch_loop(c.h, size, slots, rounds, lifo);
    r.ops = rounds * SUITE_BATCH;
    r.ns = (now_ns() - t0) / (double)r.ops;
    frame_end(&r, 0, 0);
    peer_close(c.h);
    scratch_put(slots, SUITE_BATCH * sizeof *slots);
    return r;
}

static result wl_batch_fifo(size_t size, uint64_t n, uint64_t target_us, unsigned threads)
{
    (void)threads;
    return wl_batch(size, n, target_us, false);
}

static result wl_batch_lifo(size_t size, uint64_t n, uint64_t target_us, unsigned threads)
{
    (void)threads;
    return wl_batch(size, n, target_us, true);
}

/* ================================================================================================
 * Workload 3: churn in a large working set
 * ============================================================================================== */

static NOINLINE void churn_fill(peer_handle *h, size_t size, void **slots, size_t live)
{
    for (size_t i = 0; i < live; i++) {
        slots[i] = alloc_touched(h, size, i, "the churn fill");
    }
}

/* `steps` times: free a random live object, allocate and touch its replacement. Returns the random
 * state, so the timed steps continue the warm-up's sequence. */
static NOINLINE uint64_t churn_steps(peer_handle *h, size_t size, void **slots, size_t live,
                                     uint64_t steps, uint64_t x)
{
    for (uint64_t s = 0; s < steps; s++) {
        x = rng_step(x);
        size_t i = rng_index(x, live);
        peer_free(h, slots[i], size);
        slots[i] = alloc_touched(h, size, s, "churn");
    }
    return x;
}

/* n: steps timed, after n/10 untimed; live: objects live throughout. */
static result wl_churn(size_t size, uint64_t n, uint64_t live64, unsigned threads)
{
    (void)threads;
    result r = {0};
    if (live64 == 0 || live64 > ((uint64_t)1 << 32) || live64 > SIZE_MAX / sizeof(void *))
        die("churn wants 1 <= live <= 2^32, and room for that many slots");
    size_t live = (size_t)live64;
    void **slots = scratch_get(live * sizeof *slots);
    peer_first_use(size);
    frame_begin(&r);
    double t0 = now_ns();
    peer_handle *h = open_or_die(size, live);
    churn_fill(h, size, slots, live);
    r.fill_ns = (now_ns() - t0) / (double)live;
    uint64_t x = churn_steps(h, size, slots, live, n / 10 + 1, 0x9E3779B97F4A7C15u);
    t0 = now_ns();
    churn_steps(h, size, slots, live, n, x);
    r.ns = (now_ns() - t0) / (double)n;
    r.ops = n;
    frame_end(&r, live, (double)live * (double)size);
    for (size_t i = 0; i < live; i++)
        peer_free(h, slots[i], size);
    peer_close(h);
    scratch_put(slots, live * sizeof *slots);
    return r;
}

/* ================================================================================================
 * Workload 4: a server's life
 *
 * Time goes in ticks. Every tick, requests arrive, and each brings objects of four types, each with
 * a lifetime drawn from an exponential distribution of the type's mean: long-lived sessions,
 * requests, their headers, and short-lived I/O buffers. At its death tick an object is freed. The
 * sizes are not powers of two, as a program's structs are not. The types are in suite.h (the driver
 * describes them in the doc). Steady state holds about
 *     rate * mean = 4096 sessions + 1024 requests + 768 headers + 32 buffers  (~1.9 MB of payload),
 * about 40 allocations and as many frees a tick.
 *
 * Deaths are kept in a timing wheel: one list per tick, linked through the objects themselves (the
 * object's first word), so freeing reads the object as a program's destructor would, and the
 * bookkeeping costs every peer the same. Each object carries a stamp derived from its address and
 * type, checked at its death: two live objects sharing memory would be caught.
 * ============================================================================================== */

#define SV_WHEEL ((size_t)1 << 17) /* ticks the wheel spans: above any lifetime (see sv_types) */
#define SV_QUANTILES 4096          /* lifetimes are drawn from this many quantiles of Exp(1) */
#define SV_TYPES SUITE_SERVER_TYPES
#define SV_KEY UINT32_C(0x9E3779B9)

typedef suite_server_type sv_type;
#define sv_types suite_server_types

typedef struct sv_obj {
    struct sv_obj *next; /* the next object dying at the same tick */
    uint32_t type;
    uint32_t stamp; /* sv_stamp(this, type) while live */
} sv_obj;

typedef struct sv_state {
    peer_handle *h[SV_TYPES];
    sv_obj **wheel;  /* SV_WHEEL lists, by death tick modulo SV_WHEEL */
    float *quantile; /* SV_QUANTILES samples of Exp(1), ascending */
    uint64_t now;    /* the current tick */
    uint64_t rng;
    size_t live[SV_TYPES]; /* objects live, by type */
    uint64_t allocs;
} sv_state;

static inline uint32_t sv_stamp(const sv_obj *o, uint32_t type)
{
    return (uint32_t)((uintptr_t)o >> 4) ^ (type * SV_KEY);
}

/* Lifetime in ticks, >= 1: the mean times a random quantile of Exp(1). */
static inline uint64_t sv_lifetime(sv_state *s, double mean)
{
    s->rng = rng_step(s->rng);
    return 1 + (uint64_t)(mean * (double)s->quantile[rng_index(s->rng, SV_QUANTILES)]);
}

static NOINLINE _Noreturn void sv_corrupt(const sv_obj *o)
{
    die("server: object %p was overwritten while live (overlapping blocks?)", (const void *)o);
}

static inline void sv_free_list(sv_state *s, sv_obj *o)
{
    while (o != NULL) {
        sv_obj *next = o->next;
        uint32_t t = o->type;
        if (UNLIKELY(t >= SV_TYPES || o->stamp != sv_stamp(o, t)))
            sv_corrupt(o);
        peer_free(s->h[t], o, sv_types[t].size);
        s->live[t]--;
        o = next;
    }
}

static NOINLINE void sv_ticks(sv_state *s, uint64_t ticks)
{
    for (uint64_t end = s->now + ticks; s->now < end; s->now++) {
        sv_obj **slot = &s->wheel[s->now & (SV_WHEEL - 1)];
        sv_obj *dying = *slot;
        *slot = NULL;
        sv_free_list(s, dying);
        for (uint32_t t = 0; t < SV_TYPES; t++) {
            const sv_type *ty = &sv_types[t];
            if (s->now % ty->every != 0)
                continue;
            for (uint32_t c = 0; c < ty->count; c++) {
                sv_obj *o = peer_alloc(s->h[t], ty->size);
                if (UNLIKELY(o == NULL))
                    die_oom("server");
                sv_obj **at = &s->wheel[(s->now + sv_lifetime(s, ty->mean)) & (SV_WHEEL - 1)];
                o->next = *at;
                o->type = t;
                o->stamp = sv_stamp(o, t);
                ((char *)o)[ty->size - 1] = (char)c;
                ESCAPE(o);
                *at = o;
                s->live[t]++;
                s->allocs++;
            }
        }
    }
}

/* n: ticks timed; warm: ticks before, untimed (the live set needs a few session lifetimes to
 * settle). size: unused, the workload has its own sizes. */
static result wl_server(size_t size, uint64_t n, uint64_t warm, unsigned threads)
{
    (void)size, (void)threads;
    result r = {0};
    sv_state s = {.rng = 0x2545F4914F6CDD1Du};
    s.wheel = scratch_get(SV_WHEEL * sizeof *s.wheel);
    s.quantile = scratch_get(SV_QUANTILES * sizeof *s.quantile);
    for (size_t i = 0; i < SV_QUANTILES; i++)
        s.quantile[i] = (float)-log(1.0 - ((double)i + 0.5) / SV_QUANTILES);
    for (uint32_t t = 0; t < SV_TYPES; t++) {
        double longest = 1 + sv_types[t].mean * (double)s.quantile[SV_QUANTILES - 1];
        if (longest >= (double)SV_WHEEL)
            die("server: type %s lives up to %.0f ticks, beyond the wheel", sv_types[t].name,
                longest);
        peer_first_use(sv_types[t].size);
    }
    frame_begin(&r);
    for (uint32_t t = 0; t < SV_TYPES; t++) {
        /* The most live at once: every arrival within the longest lifetime (or the whole run, if
         * shorter), plus one batch. */
        double longest =
            fmin(1 + sv_types[t].mean * (double)s.quantile[SV_QUANTILES - 1], (double)(warm + n));
        size_t bound = sv_types[t].count * ((size_t)longest / sv_types[t].every + 2);
        s.h[t] = open_or_die(sv_types[t].size, bound);
    }
    sv_ticks(&s, warm);
    uint64_t allocs0 = s.allocs;
    double t0 = now_ns();
    sv_ticks(&s, n);
    r.ops = s.allocs - allocs0;
    r.ns = (now_ns() - t0) / (double)(r.ops ? r.ops : 1);
    size_t live = 0;
    double live_bytes = 0;
    for (uint32_t t = 0; t < SV_TYPES; t++) {
        live += s.live[t];
        live_bytes += (double)s.live[t] * (double)sv_types[t].size;
    }
    frame_end(&r, live, live_bytes);
    for (size_t i = 0; i < SV_WHEEL; i++)
        sv_free_list(&s, s.wheel[i]);
    for (uint32_t t = 0; t < SV_TYPES; t++) {
        peer_close(s.h[t]);
        if (s.live[t] != 0)
            die("server: %zu %s objects unaccounted for", s.live[t], sv_types[t].name);
    }
    scratch_put(s.quantile, SV_QUANTILES * sizeof *s.quantile);
    scratch_put(s.wheel, SV_WHEEL * sizeof *s.wheel);
    return r;
}

/* ================================================================================================
 * region: build a tree, walk it, release it all at once (issue 18)
 * ============================================================================================== */

typedef struct rg_node {
    struct rg_node *left, *right;
} rg_node;
_Static_assert(sizeof(rg_node) <= SUITE_REGION_NODE, "a region node is two pointers");

/* A tree of n nodes, the left subtree built first (depth first, as a parser builds its tree). */
static rg_node *rg_build(peer_handle *h, size_t n)
{
    if (n == 0)
        return NULL;
    rg_node *t = peer_alloc(h, SUITE_REGION_NODE);
    if (UNLIKELY(t == NULL))
        die_oom("region");
    size_t left = (n - 1) / 2;
    t->left = rg_build(h, left);
    t->right = rg_build(h, n - 1 - left);
    return t;
}

static size_t rg_walk(const rg_node *t)
{
    return t == NULL ? 0 : 1 + rg_walk(t->left) + rg_walk(t->right);
}

/* All at once where the peer can, else node by node (children first), as a program with malloc. */
static void rg_release(peer_handle *h, rg_node *t)
{
#ifdef PEER_RELEASE_ALL
    (void)t;
    peer_release_all(h);
#else
    if (t == NULL)
        return;
    rg_release(h, t->left);
    rg_release(h, t->right);
    peer_free(h, t, SUITE_REGION_NODE);
#endif
}

static size_t rg_round(peer_handle *h, size_t nodes)
{
    rg_node *t = rg_build(h, nodes);
    ESCAPE(t);
    size_t walked = rg_walk(t);
    rg_release(h, t);
    return walked;
}

static result wl_region(size_t nodes, uint64_t n, uint64_t m, unsigned threads)
{
    (void)m, (void)threads;
    result r = {0};
    if (nodes == 0)
        die("region: SIZE (the node count) must be positive");
    uint64_t rounds = n / nodes > 0 ? n / nodes : 1;
    peer_first_use(SUITE_REGION_NODE);
    frame_begin(&r);
    peer_handle *h = open_or_die(SUITE_REGION_NODE, nodes);
    size_t walked = rg_round(h, nodes); /* untimed: the steady state is what a region loop sees */
    double t0 = now_ns();
    for (uint64_t i = 0; i < rounds; i++)
        walked += rg_round(h, nodes);
    r.ops = rounds * nodes;
    r.ns = (now_ns() - t0) / (double)r.ops;
    frame_end(&r, 0, 0);
    if (walked != (rounds + 1) * nodes)
        die("region: walked %zu nodes of %" PRIu64, walked, (rounds + 1) * nodes);
    peer_close(h);
    return r;
}

/* ================================================================================================
 * Main: `--info`, or one measurement
 * ============================================================================================== */

/* Indexed by enum suite_workload. The thread-safe pool's pair on one thread (ts_pair) is the pair:
 * it differs in its peers, not its loop. */
static workload_fn *const workload_fns[WL_COUNT] = {
    [WL_PAIR] = wl_pair,
    [WL_BATCH_FIFO] = wl_batch_fifo,
    [WL_BATCH_LIFO] = wl_batch_lifo,
    [WL_CHURN] = wl_churn,
    [WL_SERVER] = wl_server,
    [WL_TS_PAIR] = wl_pair,
    [WL_THREADS_PAIR] = wl_threads_pair,
    [WL_THREADS_BATCH] = wl_threads_batch,
    [WL_PRODCONS] = wl_prodcons,
    [WL_VARSIZE] = wl_varsize,
    [WL_VARSIZE_SPARSE] = wl_varsize_sparse,
    [WL_REGION] = wl_region,
    [WL_OWN] = wl_own,
    [WL_HANDOVER] = wl_handover,
};

static uint64_t parse_u64(const char *s, const char *what)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        die("%s: not a number: %s", what, s);
    return v;
}

int main(int argc, char **argv)
{
    char about[256] = "";
    if (!peer_init(about, sizeof about)) {
        printf("unusable %s\n", about);
        return SUITE_EXIT_UNUSABLE;
    }
    if (argc == 2 && strcmp(argv[1], "--info") == 0) {
        printf("info %s\n", about);
        return 0;
    }
    if (argc != 5 && argc != 6)
        die("usage: suite_%s --info | WORKLOAD SIZE N M [THREADS] (see bench/suite/suite.h)",
            PEER_NAME);
    int w = suite_workload_find(argv[1]);
    if (w < 0)
        die("unknown workload %s", argv[1]);
    const suite_workload_info *wi = &suite_workloads[w];
    size_t size = (size_t)parse_u64(argv[2], "size");
    uint64_t n = parse_u64(argv[3], "N"), m = parse_u64(argv[4], "M");
    uint64_t threads = argc == 6 ? parse_u64(argv[5], "THREADS") : 1;
    if ((wi->sized || wi->size != 0) && (size < sizeof(uint64_t) || size > ((size_t)1 << 30)))
        die("size %zu out of range [8, 2^30]", size);
    if (n == 0)
        die("N must be positive");
    if (wi->threads == 0 ? threads != 1
                         : threads > SUITE_MAX_THREADS || (wi->threads & SUITE_T(threads)) == 0)
        die("%s does not run with %" PRIu64 " threads", wi->name, threads);
    result r = workload_fns[w](size, n, m, (unsigned)threads);
    printf("result ns=%.4f fill_ns=%.4f ops=%" PRIu64
           " live=%zu live_bytes=%.0f minflt=%ld rss_base=%.0f "
           "rss_end=%.0f hwm=%.0f",
           r.ns, r.fill_ns, r.ops, r.live, r.live_bytes, r.minflt, r.rss_base, r.rss_end, r.hwm);
    if (r.depth_max != 0) /* handover */
        printf(" depth_max=%" PRIu64 " depth_mean=%.2f", r.depth_max, r.depth_mean);
    printf("\n");
    return 0;
}

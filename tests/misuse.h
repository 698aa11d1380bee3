/*
 * misuse.h: what the misuse tests of checked and secure pools (test_checked.c, test_secure.c, and
 * test_heap_edges.c for checked and secure heaps) share.
 *
 *   - Death tests. child_die() (child.h) runs a function that commits one user bug in a child
 *     process whose stderr is a pipe, with the default error handler; expect_death() then checks
 *     that the child died by SIGABRT and that stderr holds exactly one line, "mempool: ...",
 *     naming the bug, the pool and the block address (as %p prints it) that the child noted with
 *     child_note() just before committing the bug (the parent cannot know the child's addresses
 *     otherwise).
 *   - Isolated tests. run_isolated() (child.h) runs a test function in a child and adds the
 *     child's CHECK counts to the parent's, so a library crash on one misuse fails that test
 *     instead of ending the program.
 *   - An error log: a handler that returns (the library must then "go on safely", mempool.h) and
 *     records each error it receives, with helpers to check one error's fields.
 *   - Stray accesses. The tests write into free blocks and canaries on purpose. Under ASan (or
 *     memcheck, with MEMPOOL_VALGRIND) the library makes those bytes inaccessible to the program,
 * and the tool would report the write before the library can; stray_open() reopens the bytes first,
 *     so what is tested is the library's own detection, which must work without any tool.
 *   - Pool helpers: exact statistics, a counting source (all memory given back?), allocating many
 *     blocks and checking that none is handed out twice or overlaps a live one.
 *   - The walks over a damaged free list (test_walks_damaged): mp_pool_stats, mp_pool_trim and
 *     mp_pool_check report a damaged link as the alloc would, with the default handler (death
 *     test) and with one that returns (no crash, a sane result, the pool going on after).
 *   - The randomized no-false-positive run (random_run), for checked and for secure pools.
 *
 * Everything is static inline so that a program using only part of it compiles without warnings.
 * POSIX: fork, pipe, waitpid, alarm. Only the public API of mempool.h is used.
 */
#ifndef MP_MISUSE_H
#define MP_MISUSE_H

#include "child.h"
#include "counting_source.h"
#include "mempool.h"
#include "test.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------
 * Stray accesses: the deliberate bugs, made visible to the library rather than to a tool
 * ---------------------------------------------------------------------------------------------- */

static inline void stray_open(const void *p, size_t n)
{
    (void)p, (void)n;
#if TEST_ASAN
    __asan_unpoison_memory_region(p, n);
#endif
#if TEST_VALGRIND
    VALGRIND_MAKE_MEM_DEFINED(p, n);
#endif
}

/* Writes the byte at block + off (a free block's body, or the canary past a live block). */
static inline void stray_byte(void *block, size_t off, unsigned char value)
{
    stray_open((char *)block + off, 1);
    ((volatile unsigned char *)block)[off] = value;
}

/* Reads and writes a free block's first word, its free-list link (mempool.h: "the link is the
 * block's first word"). memcpy, since an attacker's word need not be a valid pointer. */
static inline uintptr_t stray_link_get(const void *block)
{
    uintptr_t v;
    stray_open(block, sizeof v);
    memcpy(&v, block, sizeof v);
    return v;
}

static inline void stray_link_set(void *block, uintptr_t value)
{
    stray_open(block, sizeof value);
    memcpy(block, &value, sizeof value);
}

/* ------------------------------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------------------------------- */

/* Blocks that no pool hands out: the stack, static memory, the C heap. The heap block a death-test
 * child frees is kept here, so that memcheck does not count it lost when the child dies. */
static alignas(64) char misuse_static_bytes[512];
static void *volatile misuse_heap_block;

static inline mp_stats stats_get(const mp_pool *pool)
{
    mp_stats s;
    memset(&s, 0xEE, sizeof s);
    if (mp_pool_stats(pool, &s) != 0)
        memset(&s, 0xEE, sizeof s);
    return s;
}

/* The statistics a misuse may not disturb: exact counts, and the header's equations. */
static inline bool stats_are(const mp_pool *pool, uint64_t in_use, uint64_t allocs, uint64_t frees)
{
    mp_stats s = stats_get(pool);
    return s.blocks_in_use == in_use && s.allocs == allocs && s.frees == frees &&
           s.allocs - s.frees == s.blocks_in_use && s.blocks_in_use <= s.blocks_peak &&
           s.bytes_used == s.blocks_in_use * s.block_size && s.bytes_used <= s.bytes_reserved;
}

static inline bool text_has(const char *text, const char *part)
{
    return strstr(text, part) != NULL;
}

/* Does `text` name the block at p, written as %p writes it (a whole token, not a prefix)? */
static inline bool text_has_addr(const char *text, const void *p)
{
    char want[64];
    snprintf(want, sizeof want, "%p", p);
    size_t n = strlen(want);
    for (const char *s = strstr(text, want); s != NULL; s = strstr(s + 1, want)) {
        char next = s[n];
        bool hex = (next >= '0' && next <= '9') || (next >= 'a' && next <= 'f') ||
                   (next >= 'A' && next <= 'F');
        if (!hex)
            return true;
    }
    return false;
}

/* Does `text` contain one of the '|'-separated alternatives in `parts`? */
static inline bool text_has_any(const char *text, const char *parts)
{
    char one[128];
    for (const char *s = parts;;) {
        const char *bar = strchr(s, '|');
        size_t len = bar ? (size_t)(bar - s) : strlen(s);
        snprintf(one, sizeof one, "%.*s", (int)len, s);
        if (text_has(text, one))
            return true;
        if (bar == NULL)
            return false;
        s = bar + 1;
    }
}

static inline bool text_has_pool(const char *text, const char *name)
{
    char want[MP_NAME_MAX + 16];
    snprintf(want, sizeof want, "in pool \"%s\"", name);
    return text_has(text, want);
}

/* A pattern for block contents, seeded per block; pattern_ok verifies it. */
static inline void pattern_fill(void *p, size_t n, uint64_t seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed * 131u + i * 7u + (i >> 8) + (seed >> 13));
}

static inline bool pattern_ok(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed * 131u + i * 7u + (i >> 8) + (seed >> 13)))
            return false;
    return true;
}

static inline int ptr_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return (x > y) - (x < y);
}

/* True if no two of the n blocks of `size` bytes at ps[] overlap (sorts ps). */
static inline bool disjoint(void **ps, size_t n, size_t size)
{
    qsort(ps, n, sizeof *ps, ptr_cmp);
    for (size_t i = 1; i < n; i++)
        if ((uintptr_t)ps[i - 1] + size > (uintptr_t)ps[i])
            return false;
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * The error log: a handler that returns
 * ---------------------------------------------------------------------------------------------- */

enum { LOG_MAX = 64 };

typedef struct logged_error {
    mp_error_kind kind;
    const mp_pool *pool;
    char pool_name[MP_NAME_MAX];
    const void *addr;
    const void *site;
    uint64_t count;
    char message[512];
    bool message_one_line; /* no newline in it */
} logged_error;

typedef struct error_log {
    unsigned n; /* errors received, also past LOG_MAX */
    logged_error e[LOG_MAX];
} error_log;

static error_log elog;

static inline void log_error(const mp_error *error, void *ctx)
{
    error_log *log = ctx;
    if (log->n < LOG_MAX) {
        logged_error *l = &log->e[log->n];
        l->kind = error->kind;
        l->pool = error->pool;
        snprintf(l->pool_name, sizeof l->pool_name, "%s",
                 error->pool_name ? error->pool_name : "(null)");
        l->addr = error->addr;
        l->site = error->site;
        l->count = error->count;
        snprintf(l->message, sizeof l->message, "%s", error->message ? error->message : "(null)");
        l->message_one_line = error->message != NULL && strchr(error->message, '\n') == NULL;
    }
    log->n++;
}

/* Installs the logging handler with an empty log. */
static inline void log_start(void)
{
    memset(&elog, 0, sizeof elog);
    mp_set_error_handler(log_error, &elog);
}

static inline void log_clear(void)
{
    elog.n = 0;
}

/* Prints the log, for a failed check. */
static inline void log_show(void)
{
    for (unsigned i = 0; i < elog.n && i < LOG_MAX; i++)
        printf("    error %u: kind %d, addr %p: %s\n", i, (int)elog.e[i].kind, elog.e[i].addr,
               elog.e[i].message);
}

/*
 * Checks that error i of the log is `kind` in `pool` (named `name`) about the block at addr: the
 * handler's fields, and its message (the line the default handler would print) naming the bug, the
 * pool and the address. Returns true if all held.
 */
static inline bool log_entry_is(const char *what, unsigned i, mp_error_kind kind,
                                const mp_pool *pool, const char *name, const void *addr)
{
    if (!CHECK(what, elog.n > i)) {
        log_show();
        return false;
    }
    const logged_error *l = &elog.e[i];
    bool ok = true;
    ok &= CHECK(what, l->kind == kind);
    ok &= CHECK(what, l->pool == pool);
    ok &= CHECK(what, strcmp(l->pool_name, name) == 0);
    ok &= CHECK(what, l->addr == addr);
    ok &= CHECK(what, kind == MP_ERR_LEAK || l->count == 1);
    ok &= CHECK(what, l->message_one_line);
    ok &= CHECK(what, strncmp(l->message, "mempool: ", 9) == 0);
    ok &= CHECK(what, kind == MP_ERR_LEAK || text_has(l->message, mp_error_name(kind)));
    ok &= CHECK(what, text_has_pool(l->message, name));
    ok &= CHECK(what, text_has_addr(l->message, addr));
    if (!ok)
        log_show();
    return ok;
}

/* Checks that the log holds exactly one error, as log_entry_is() describes, and clears it. */
static inline bool log_one(const char *what, mp_error_kind kind, const mp_pool *pool,
                           const char *name, const void *addr)
{
    bool ok = CHECK(what, elog.n == 1);
    ok = log_entry_is(what, 0, kind, pool, name, addr) && ok;
    if (!ok)
        log_show();
    log_clear();
    return ok;
}

/* Checks that the log is empty (no false positive). */
static inline bool log_none(const char *what)
{
    if (CHECK(what, elog.n == 0))
        return true;
    log_show();
    log_clear();
    return false;
}

/* ------------------------------------------------------------------------------------------------
 * Death tests (child.h runs the child)
 * ---------------------------------------------------------------------------------------------- */

/*
 * Runs the bug fn(arg) in a child and checks the death the header promises: SIGABRT after exactly
 * one line on stderr, "mempool: ...", containing `words` (or one of its '|'-separated
 * alternatives), `in pool "NAME"` and the address the child noted first.
 */
static inline void expect_death(const char *what, void (*fn)(void *), void *arg, const char *words,
                                const char *pool_name)
{
    child_result r;
    child_die(fn, arg, &r);
    char line[1024], why[64];
    unsigned lines = stderr_lines(r.err, line, sizeof line);
    bool ok = true;
    ok &= CHECK(what, r.status != -1 && WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT);
    ok &= CHECK(what, lines == 1);
    ok &= CHECK(what, strncmp(line, "mempool: ", 9) == 0);
    ok &= CHECK(what, text_has_any(line, words));
    ok &= CHECK(what, text_has_pool(line, pool_name));
    ok &= CHECK(what, r.nnotes >= 1 && text_has_addr(line, r.notes[0]));
    if (!ok) {
        printf("    child: %s; noted %p; stderr:\n%s\n", status_text(r.status, why, sizeof why),
               r.nnotes ? r.notes[0] : NULL, r.err);
        fflush(stdout);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Test pools: a geometry, and what to release after
 * ---------------------------------------------------------------------------------------------- */

typedef struct geo {
    const char *name;
    size_t block_size;
    size_t align;
    unsigned flags; /* MP_CHECKED or MP_SECURE, and maybe MP_ZERO */
    bool buffer;    /* in a caller's buffer of GEO_BUFFER_SIZE bytes */
} geo;

enum { GEO_BUFFER_SIZE = 1 << 20 };

/* A test's pool, with its buffer (buffer pools) and its counting source (when asked for). */
typedef struct tpool {
    mp_pool *pool;
    void *buffer;
    counting_source count;
    mp_source source;
} tpool;

/* Creates a pool of geometry g named `name`; counted: memory from a counting source. */
static inline bool tpool_make(tpool *t, const geo *g, const char *name, bool counted)
{
    memset(t, 0, sizeof *t);
    t->source = counting_source_of(&t->count);
    if (g->buffer)
        t->buffer = malloc(GEO_BUFFER_SIZE);
    t->pool = mp_pool_create(&(mp_pool_opts){.block_size = g->block_size,
                                             .align = g->align,
                                             .flags = g->flags,
                                             .buffer = t->buffer,
                                             .buffer_size = t->buffer ? GEO_BUFFER_SIZE : 0,
                                             .name = name,
                                             .source = counted ? &t->source : NULL});
    return t->pool != NULL;
}

/* A handler test's start: the error log cleared, then its pool of geometry g (named as g), checked
 * to be made; NULL if it was not. */
static inline mp_pool *tpool_begin(tpool *t, const geo *g, bool counted)
{
    log_start();
    return CHECK("checked handler: create", tpool_make(t, g, g->name, counted)) ? t->pool : NULL;
}

/* Destroys the pool (unless already done: t->pool NULL) and frees the buffer. */
static inline void tpool_done(tpool *t)
{
    mp_pool_destroy(t->pool);
    t->pool = NULL;
    free(t->buffer);
    t->buffer = NULL;
}

/* In a death-test child: the pool of geometry g, or the child ends with CHILD_NO_POOL. The child
 * never gives its memory back: it is meant to die. */
static inline mp_pool *child_pool(const geo *g, const char *name)
{
    tpool t;
    if (!tpool_make(&t, g, name, false))
        _exit(CHILD_NO_POOL);
    return t.pool;
}

static inline size_t stride_of(const mp_pool *pool)
{
    return stats_get(pool).stride;
}

/* ------------------------------------------------------------------------------------------------
 * Allocating many: nothing handed out twice, nothing overlapping, nothing outside the pool
 * ---------------------------------------------------------------------------------------------- */

/*
 * Allocates n blocks while live[0..nlive) are live, and checks that each new block is the pool's
 * (mp_pool_owns), aligned, distinct from and disjoint with every other live block, and that the
 * contents of all survive: each live and each new block is filled with its own pattern (the live
 * blocks' contents are overwritten), then all are verified. Then frees the n new blocks. Returns
 * true if every check held. Uses the C heap for its bookkeeping.
 */
static inline bool alloc_many_safe(const char *what, mp_pool *pool, void *const *live, size_t nlive,
                                   size_t n)
{
    size_t bs = mp_pool_block_size(pool), align = mp_pool_align(pool);
    void **got = calloc(n, sizeof *got), **all = calloc(n + nlive, sizeof *all);
    if (!CHECK(what, got != NULL && all != NULL)) {
        free(got), free(all);
        return false;
    }
    for (size_t i = 0; i < nlive; i++)
        pattern_fill(live[i], bs, 0x11FE0000u + i);
    bool ok = true;
    size_t k = 0;
    for (; k < n; k++) {
        got[k] = mp_pool_alloc(pool);
        if (got[k] == NULL)
            break;
        ok &= CHECK(what, mp_pool_owns(pool, got[k]));
        ok &= CHECK(what, ((uintptr_t)got[k] & (align - 1)) == 0);
        pattern_fill(got[k], bs, 0xA11C0000u + k);
    }
    ok &= CHECK(what, k == n);
    for (size_t i = 0; i < k; i++)
        ok &= CHECK(what, pattern_ok(got[i], bs, 0xA11C0000u + i));
    for (size_t i = 0; i < nlive; i++)
        ok &= CHECK(what, pattern_ok(live[i], bs, 0x11FE0000u + i));
    for (size_t i = 0; i < k; i++)
        all[i] = got[i];
    for (size_t i = 0; i < nlive; i++)
        all[k + i] = live[i];
    ok &= CHECK(what, disjoint(all, k + nlive, bs));
    for (size_t i = k; i-- > 0;)
        mp_pool_free(pool, got[i]);
    free(got), free(all);
    return ok;
}

/* ------------------------------------------------------------------------------------------------
 * Walks over a corrupted free list: a pool that validates its links (checked, secure) validates
 * them wherever it walks the list, not only where it pops it (mempool.h, mp_pool_stats)
 * ---------------------------------------------------------------------------------------------- */

/* The calls that walk a pool's whole free list without popping it. */
typedef enum list_walker { WALK_STATS, WALK_TRIM, WALK_CHECK, NWALKERS } list_walker;

static const char *const walker_names[NWALKERS] = {"mp_pool_stats", "mp_pool_trim",
                                                   "mp_pool_check"};

/* How a free block's link word is corrupted: zeroed (a write after free of that word alone), or
 * overwritten with a raw pointer to a live block (a planted pointer). */
typedef enum link_damage { DAMAGE_ZERO, DAMAGE_PLANT } link_damage;

static inline void stray_zero(void *p, size_t n)
{
    stray_open(p, n);
    memset(p, 0, n);
}

/* Gives pool (fresh) a live block (*live), then frees two blocks A and B (the list: B -> A) and
 * damages B's link. Returns B, the block whose link the report must name. */
static inline void *link_damage_stage(mp_pool *pool, link_damage d, void **live_out)
{
    void *live = mp_pool_alloc(pool), *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool);
    *live_out = live;
    mp_pool_free(pool, a);
    mp_pool_free(pool, b);
    if (d == DAMAGE_ZERO)
        stray_zero(b, sizeof(void *));
    else
        stray_link_set(b, (uintptr_t)live);
    return b;
}

/* Runs walker w on a pool whose list is damaged past its head; true if what it returned is what
 * such a pool promises once the handler returns: stats of the part before the damage (consistent,
 * at most the 2 blocks freed), nothing trimmed, the check false. */
static inline bool walker_call(list_walker w, mp_pool *pool)
{
    if (w == WALK_STATS) {
        mp_stats s;
        return mp_pool_stats(pool, &s) == 0 && s.blocks_free <= 2 &&
               s.allocs - s.frees == s.blocks_in_use;
    }
    if (w == WALK_TRIM)
        return mp_pool_trim(pool) == 0;
    return !mp_pool_check(pool);
}

/* One case: the geometry, the walk, the damage. */
typedef struct walk_case {
    const geo *g;
    list_walker w;
    link_damage d;
} walk_case;

/* What a damaged link is reported as: a write after free (of the link) in a checked pool, a
 * corrupted free list in a secure one. */
static inline mp_error_kind link_damage_kind(const geo *g)
{
    return (g->flags & MP_CHECKED) != 0 ? MP_ERR_WRITE_AFTER_FREE : MP_ERR_CORRUPT_FREE_LIST;
}

static inline const char *link_damage_words(const geo *g)
{
    return (g->flags & MP_CHECKED) != 0 ? "write after free" : "corrupted free list";
}

/* Death test: the walk finds the damage and the default handler aborts. */
static inline void bug_walk_damaged(void *arg)
{
    const walk_case *k = arg;
    mp_pool *pool = child_pool(k->g, k->g->name);
    void *live, *b = link_damage_stage(pool, k->d, &live);
    child_note(b);
    (void)walker_call(k->w, pool);
}

/* With a handler that returns: the walk reports the damage once, does not crash and returns what
 * walker_call() allows; the next alloc reports it again, cuts the list there and hands B out; then
 * the pool is healthy and goes on with no further report. */
static inline void h_walk_damaged(void *arg)
{
    const walk_case *k = arg;
    const geo *g = k->g;
    char what[200];
    snprintf(what, sizeof what, "%s handler (%s): %s over a damaged link",
             g->flags & MP_CHECKED ? "checked" : "secure", g->name, walker_names[k->w]);
    tpool t;
    log_start();
    if (!CHECK(what, tpool_make(&t, g, g->name, false)))
        return;
    void *live, *b = link_damage_stage(t.pool, k->d, &live);
    log_none(what);
    CHECK(what, walker_call(k->w, t.pool));
    log_one(what, link_damage_kind(g), t.pool, g->name, b);
    void *p = mp_pool_alloc(t.pool);
    log_one(what, link_damage_kind(g), t.pool, g->name, b);
    CHECK(what, p == b && mp_pool_check(t.pool));
    void *held[2] = {live, p};
    CHECK(what, alloc_many_safe(what, t.pool, held, 2, 200));
    mp_pool_free(t.pool, p);
    mp_pool_free(t.pool, live);
    log_none(what);
    mp_stats s;
    CHECK(what, mp_pool_stats(t.pool, &s) == 0 && s.allocs - s.frees == s.blocks_in_use);
    tpool_done(&t);
    log_none(what);
}

/* Both tests for every walker (trim only where it walks the list: not in a caller's buffer, whose
 * memory a trim never gives back). */
static inline void test_walks_damaged(const geo *g, link_damage d)
{
    char what[200];
    for (int w = 0; w < NWALKERS; w++) {
        if (w == WALK_TRIM && g->buffer)
            continue;
        walk_case k = {g, (list_walker)w, d};
        snprintf(what, sizeof what, "%s death (%s): %s over a damaged link",
                 g->flags & MP_CHECKED ? "checked" : "secure", g->name, walker_names[w]);
        expect_death(what, bug_walk_damaged, &k, link_damage_words(g), g->name);
        snprintf(what, sizeof what, "%s handler (%s): %s over a damaged link",
                 g->flags & MP_CHECKED ? "checked" : "secure", g->name, walker_names[w]);
        run_isolated(what, h_walk_damaged, &k);
    }
}

/* ------------------------------------------------------------------------------------------------
 * No false positives: a randomized run against a model
 * ---------------------------------------------------------------------------------------------- */

static uint64_t rr_state;

static inline uint64_t rr_next(void)
{
    uint64_t z = (rr_state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static inline uint64_t rr_below(uint64_t n)
{
    return n ? rr_next() % n : 0;
}

/* One pool's shape in the random run. */
typedef struct rr_shape {
    size_t block_size;
    size_t align;
    size_t capacity;
    unsigned flags;     /* beyond the run's MP_CHECKED or MP_SECURE: MP_ZERO */
    size_t buffer_size; /* 0: memory from the system */
} rr_shape;

typedef struct rr_block {
    void *p;
    uint64_t seed;
} rr_block;

typedef struct rr_model {
    rr_block *live;
    size_t nlive, max_live;
    uint64_t allocs, frees, failed, peak, resets, trims;
} rr_model;

static inline bool rr_stats_ok(const mp_pool *pool, const rr_model *m)
{
    mp_stats s = stats_get(pool);
    return s.blocks_in_use == m->nlive && s.allocs == m->allocs && s.frees == m->frees &&
           s.failed_allocs == m->failed && s.blocks_peak == m->peak && s.resets == m->resets &&
           s.trims == m->trims && s.bytes_used == m->nlive * s.block_size;
}

/* Verifies and frees live block i (swapped with the last). */
static inline bool rr_free(mp_pool *pool, rr_model *m, size_t i, size_t bs)
{
    rr_block b = m->live[i];
    bool ok = pattern_ok(b.p, bs, b.seed);
    m->live[i] = m->live[--m->nlive];
    mp_pool_free(pool, b.p);
    m->frees++;
    return ok;
}

/*
 * Runs `ops` random operations on a pool of `shape` with `flags` (MP_CHECKED or MP_SECURE) and
 * the logging handler installed: alloc (steered toward a wandering target of live blocks), free of
 * a random live block, and rarely reset, trim, check, and the statistics compared with the model.
 * Every block is filled with its own pattern at alloc and verified at free (and all live blocks at
 * every check), MP_ZERO blocks verified zero first, every address checked for alignment and
 * ownership. Returns the number of failed checks (0: no false positive, contents and stats exact).
 */
static inline unsigned long long random_run(const char *what, unsigned flags, const rr_shape *shape,
                                            uint64_t seed, uint64_t ops)
{
    unsigned long long failed_before = TEST_FAILURES();
    char name[MP_NAME_MAX];
    snprintf(name, sizeof name, "rr-%zu-%zu", shape->block_size, shape->align);
    void *buffer = shape->buffer_size ? malloc(shape->buffer_size) : NULL;
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = shape->block_size,
                                                   .align = shape->align,
                                                   .capacity = shape->capacity,
                                                   .flags = flags | shape->flags,
                                                   .buffer = buffer,
                                                   .buffer_size = shape->buffer_size,
                                                   .name = name});
    if (!CHECK(what, pool != NULL)) {
        free(buffer);
        return 1;
    }
    size_t bs = shape->block_size, align = mp_pool_align(pool);
    rr_model m = {0};
    m.max_live = shape->capacity ? shape->capacity : 3000;
    m.live = calloc(m.max_live + 1, sizeof *m.live);
    uint64_t target = 1 + rr_below(m.max_live), serial = 0;
    log_start();
    rr_state = seed;
    for (uint64_t op = 0; op < ops && TEST_FAILURES() == failed_before; op++) {
        uint64_t dice = rr_below(10000);
        if (dice < 3) { /* reset: every block free at once */
            mp_pool_reset(pool);
            m.frees += m.nlive;
            m.nlive = 0;
            m.resets++;
        } else if (dice < 8) { /* trim: gives back only what is wholly free */
            mp_pool_trim(pool);
            m.trims++;
        } else if (dice < 12) {
            bool ok = mp_pool_check(pool) && rr_stats_ok(pool, &m);
            for (size_t i = 0; i < m.nlive; i++)
                ok &= pattern_ok(m.live[i].p, bs, m.live[i].seed);
            CHECK(what, ok);
        } else if (dice < 40) {
            target = 1 + rr_below(m.max_live);
        } else if (m.nlive > 0 &&
                   (m.nlive >= target || m.nlive >= m.max_live || rr_below(2) == 0)) {
            CHECK(what, rr_free(pool, &m, (size_t)rr_below(m.nlive), bs));
        } else {
            errno = 0;
            void *p = mp_pool_alloc(pool);
            if (p == NULL) {
                m.failed++;
                /* Allowed only at capacity, or when a buffer is full. */
                CHECK(what, errno == ENOMEM && ((shape->capacity && m.nlive == shape->capacity) ||
                                                buffer != NULL));
                if (m.nlive > 0)
                    target = m.nlive / 2; /* drain a while */
                continue;
            }
            CHECK(what, ((uintptr_t)p & (align - 1)) == 0);
            if ((flags | shape->flags) & MP_ZERO)
                CHECK(what, all_zero(p, bs));
            if (rr_below(64) == 0)
                CHECK(what, mp_pool_owns(pool, p));
            m.allocs++;
            if (m.nlive >= m.max_live) {
                CHECK(what, m.nlive < m.max_live); /* the pool gave more than its capacity */
                break;
            }
            m.live[m.nlive++] = (rr_block){p, ++serial};
            pattern_fill(p, bs, serial);
            if (m.nlive > m.peak)
                m.peak = m.nlive;
        }
        if (elog.n != 0) {
            CHECK(what, elog.n == 0);
            printf("    false positive at op %" PRIu64 " (seed %" PRIu64 "):\n", op, seed);
            log_show();
        }
    }
    CHECK(what, mp_pool_check(pool) && rr_stats_ok(pool, &m));
    while (m.nlive > 0)
        CHECK(what, rr_free(pool, &m, m.nlive - 1, bs));
    CHECK(what, rr_stats_ok(pool, &m));
    mp_pool_destroy(pool);
    if (elog.n != 0) {
        CHECK(what, elog.n == 0);
        log_show();
    }
    mp_set_error_handler(NULL, NULL);
    free(m.live);
    free(buffer);
    unsigned long long failed = TEST_FAILURES() - failed_before;
    if (failed)
        printf("    %s: block_size %zu align %zu capacity %zu flags %#x buffer %zu, seed %" PRIu64
               "\n",
               what, shape->block_size, shape->align, shape->capacity, flags | shape->flags,
               shape->buffer_size, seed);
    return failed;
}

/* The shapes of the random run: sizes odd and even, small and large, default and large alignments,
 * MP_ZERO, a capacity, and pools in a caller's buffer. */
static const rr_shape rr_shapes[] = {
    {1, 0, 0, 0, 0},        {8, 0, 0, MP_ZERO, 0},        {20, 0, 0, 0, 0},
    {48, 16, 500, 0, 0},    {64, 64, 0, MP_ZERO, 0},      {100, 0, 0, 0, 0},
    {256, 128, 0, 0, 0},    {4000, 0, 0, MP_ZERO, 0},     {24, 4096, 100, 0, 0},
    {33, 0, 0, 0, 1 << 16}, {64, 0, 0, MP_ZERO, 1 << 18}, {700, 32, 200, 0, 1 << 20},
};

/* Scale from the environment (MP_TEST_SCALE, as in tests/CMakeLists.txt), at least one op. */
static inline uint64_t scaled(uint64_t n)
{
    double r = (double)n * test_scale();
    return r < 1 ? 1 : (uint64_t)r;
}

#endif /* MP_MISUSE_H */

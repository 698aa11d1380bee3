/*
 * test_secure.c: a secure pool (MP_SECURE) withstands the classic attacks on free lists, reports
 * them as mempool.h promises, never hands out an overlapping or foreign block, and reports nothing
 * in a correct program.
 *
 * Usage: test_secure [SEED [OPS]]
 *   SEED  the seed of the randomized no-false-positive run (default 1)
 *   OPS   its operations over all pool shapes (default 300,000 times MP_TEST_SCALE)
 *
 * The attacks, modelled on known heap exploitation against singly linked free lists (glibc's tcache
 * and fastbins, which secure pools answer with mimalloc's and glibc's defences):
 *   - free-list poisoning ("tcache poisoning"): after a block A is freed, its first word (the link)
 *     is overwritten so that the next allocations return an address the attacker chose: a stack
 *     buffer, another live block, A itself (a loop: A handed out twice), or a block interior. Done
 *     blind (a raw pointer) and, harder, with a leaked link: the attacker reads A's encoded link,
 *     knows the block it points to, and so learns the mask for A's address (for an XOR encoding,
 *     mask = stored ^ next) and plants a correctly masked pointer. The blind cases must decode to
 *     garbage; the leaked-mask cases must be stopped by validation (the target is not a free block
 *     of this pool), never handed out.
 *   - double free into overlapping allocations ("fastbin dup"): free A, free B, free A, then the
 *     list would return A twice.
 *   - overlapping blocks by overflow: a write past live block A runs into the link of the free
 *     block B that follows it in memory (a blind overwrite, and a planted pointer into A).
 *   - freeing what was never handed out ("house of spirit" and friends): stack, static, interior,
 *     other pools' blocks, an unused slot.
 * Each attack runs (1) in a child with the default handler, which must die by SIGABRT after one
 * line naming "corrupted free list", "double free" or "invalid free", the pool and the block, and
 * (2) in a child with a handler that returns, checking the reported kind and block and that of many
 * later allocations none is foreign (mp_pool_owns), a duplicate, or overlapping a live block, with
 * mp_pool_check() true and consistent statistics. Three geometries: a 64-byte pool from the system,
 * a 24-byte pool in a caller's buffer, a 100-byte MP_ZERO pool aligned to 64; and a pool both
 * checked and secure. The walks over a free list with a planted pointer (mp_pool_stats,
 * mp_pool_trim, mp_pool_check) report it as the alloc would (misuse.h, test_walks_damaged). Then
 * a randomized run of correct use: no error, contents and stats exact.
 * It takes about a second in a Release build.
 */
#define _POSIX_C_SOURCE 200809L

#include "misuse.h"

#include <stdalign.h>

static const geo geos[] = {
    {"sessions", 64, 0, MP_SECURE, false},
    {"sec-buffer", 24, 0, MP_SECURE, true},
    {"sec-zero-64", 100, 64, MP_SECURE | MP_ZERO, false},
};
enum { NGEOS = sizeof geos / sizeof geos[0] };

/* ------------------------------------------------------------------------------------------------
 * The attacks on the free list. Each sets up a pool, corrupts it, and says which block the report
 * must name; the allocations that follow are the death test's or the handler test's.
 * ---------------------------------------------------------------------------------------------- */

typedef enum attack {
    POISON_STACK,            /* A's link := a stack address (raw) */
    POISON_LIVE,             /* A's link := live block L (raw) */
    POISON_KEYED_STACK,      /* A's link := a stack address, masked with the leaked mask */
    POISON_KEYED_STATIC,     /* ... a static address */
    POISON_KEYED_LIVE,       /* ... live block L: L would be handed out twice */
    POISON_KEYED_SELF,       /* ... A itself: A would be handed out twice */
    POISON_KEYED_INTERIOR,   /* ... L + 8: overlapping L */
    OVERFLOW_BLIND,          /* live A's overflow runs over free B's link with 0x41 bytes */
    OVERFLOW_PLANT_INTERIOR, /* live A's overflow plants a masked A + 8 in free B's link */
    NATTACKS
} attack;

static const char *const attack_names[NATTACKS] = {
    "poisoning with a raw stack address",
    "poisoning with a raw pointer to a live block",
    "poisoning with a masked stack address (leaked mask)",
    "poisoning with a masked static address (leaked mask)",
    "poisoning with a masked live block (leaked mask)",
    "poisoning with a masked pointer to the block itself (leaked mask)",
    "poisoning with a masked interior pointer of a live block (leaked mask)",
    "overflow into the next free block's link (blind)",
    "overflow planting a masked interior pointer in the next free block's link",
};

/* A staged attack: the pool, its live blocks (which must never be handed out again), the block
 * whose link was corrupted (to be named in the report), and the attacker's target address. */
typedef struct staged {
    mp_pool *pool;
    void *live[4];
    size_t nlive;
    void *victim;
    uintptr_t target;
} staged;

/*
 * Sets up attack `a` on `pool`, a fresh pool, with `stack` a stack buffer of the caller. Blocks are
 * carved in address order from a fresh pool, so consecutive allocations are adjacent, stride apart.
 */
static void attack_stage(attack a, mp_pool *pool, char *stack, staged *s)
{
    size_t stride = stride_of(pool), bs = mp_pool_block_size(pool);
    memset(s, 0, sizeof *s);
    s->pool = pool;
    if (a == OVERFLOW_BLIND || a == OVERFLOW_PLANT_INTERIOR) {
        char *A = mp_pool_alloc(pool), *B = mp_pool_alloc(pool), *E = mp_pool_alloc(pool);
        s->live[0] = A, s->live[1] = E, s->nlive = 2;
        s->victim = B;
        mp_pool_free(pool, B); /* B is the only free block: its link encodes NULL */
        uintptr_t mask = stray_link_get(B);
        s->target =
            a == OVERFLOW_BLIND ? (uintptr_t)0x4141414141414141u : (uintptr_t)(A + 8) ^ mask;
        /* The overflow: A's block, then its padding, then B's first word. */
        stray_open(A + bs, (size_t)(B - A) - bs + sizeof(void *));
        memset(A, 0x41, (size_t)(B - A));
        (void)stride;
        stray_link_set(B, s->target);
        return;
    }
    char *C = mp_pool_alloc(pool), *A = mp_pool_alloc(pool), *L = mp_pool_alloc(pool);
    char *M = mp_pool_alloc(pool);
    s->live[0] = L, s->live[1] = M, s->nlive = 2;
    s->victim = A;
    mp_pool_free(pool, C);
    mp_pool_free(pool, A);                             /* the list: A -> C; A's link encodes C */
    uintptr_t mask = stray_link_get(A) ^ (uintptr_t)C; /* the leak */
    uintptr_t want = 0;
    switch (a) {
    case POISON_STACK:
    case POISON_KEYED_STACK:
        want = (uintptr_t)stack;
        break;
    case POISON_LIVE:
    case POISON_KEYED_LIVE:
        want = (uintptr_t)L;
        break;
    case POISON_KEYED_STATIC:
        want = (uintptr_t)misuse_static_bytes;
        break;
    case POISON_KEYED_SELF:
        want = (uintptr_t)A;
        break;
    default: /* POISON_KEYED_INTERIOR */
        want = (uintptr_t)(L + sizeof(void *));
        break;
    }
    bool keyed = a != POISON_STACK && a != POISON_LIVE;
    s->target = keyed ? want ^ mask : want;
    stray_link_set(A, s->target);
}

/* The address the attack wants handed out (decoded), for the handler test to watch for; 0 when the
 * harm is a block handed out a second time (caught as an overlap with a live block). */
static uintptr_t attack_want(attack a, const staged *s, const char *stack)
{
    switch (a) {
    case POISON_STACK:
    case POISON_KEYED_STACK:
        return (uintptr_t)stack;
    case POISON_LIVE:
    case POISON_KEYED_LIVE:
        return (uintptr_t)s->live[0];
    case POISON_KEYED_STATIC:
        return (uintptr_t)misuse_static_bytes;
    case POISON_KEYED_SELF:
        return 0; /* A is free, so handing it out once is right; twice is an overlap, watched for */
    case POISON_KEYED_INTERIOR:
        return (uintptr_t)s->live[0] + sizeof(void *);
    case OVERFLOW_PLANT_INTERIOR:
        return (uintptr_t)s->live[0] + 8;
    default:
        return (uintptr_t)0x4141414141414141u;
    }
}

/* ------------------------------------------------------------------------------------------------
 * 1. Death tests
 * ---------------------------------------------------------------------------------------------- */

typedef struct death_arg {
    const geo *g;
    attack a;
} death_arg;

/* Stages the attack, then allocates until the child dies; it must not get far. */
static void bug_attack(void *arg)
{
    const death_arg *d = arg;
    alignas(64) char stack[512];
    memset(stack, 0, sizeof stack);
    mp_pool *pool = child_pool(d->g, d->g->name);
    staged s;
    attack_stage(d->a, pool, stack, &s);
    child_note(s.victim);
    for (int i = 0; i < 4; i++) {
        void *p = mp_pool_alloc(pool);
        if (p != NULL)
            memset(p, 0x66,
                   d->g->block_size); /* as a program would: this is what the attacker wants */
    }
}

static void bug_double_free(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    void *a = mp_pool_alloc(pool);
    mp_pool_free(pool, a);
    child_note(a);
    mp_pool_free(pool, a);
}

static void bug_fastbin_dup(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool);
    mp_pool_free(pool, a);
    mp_pool_free(pool, b);
    child_note(a);
    mp_pool_free(pool, a);
}

typedef enum invalid {
    INV_STACK,
    INV_STATIC,
    INV_HEAP,
    INV_INTERIOR,
    INV_INTERIOR_FREE,
    INV_OTHER_SECURE,
    INV_OTHER_PLAIN,
    INV_UNUSED_SLOT,
    NINVALID
} invalid;

static const char *const invalid_names[NINVALID] = {
    "a stack address (house of spirit)",
    "a static address",
    "a malloc()ed address",
    "an interior pointer of a live block",
    "an interior pointer of a free block",
    "another secure pool's block",
    "a plain pool's block",
    "a slot never handed out",
};

/* The invalid pointer of kind `k` for pool (with its live block p and free block f). */
static void *invalid_ptr(invalid k, const geo *g, char *p, char *f, char *stack, mp_pool *other,
                         mp_pool *plain, void *heap)
{
    switch (k) {
    case INV_STACK:
        return stack;
    case INV_STATIC:
        return misuse_static_bytes;
    case INV_HEAP:
        return heap;
    case INV_INTERIOR:
        return p + sizeof(void *);
    case INV_INTERIOR_FREE:
        return f + sizeof(void *);
    case INV_OTHER_SECURE:
        return mp_pool_alloc(other);
    case INV_OTHER_PLAIN:
        return mp_pool_alloc(plain);
    default:
        (void)g;
        return f + stride_of(other); /* p, f, then this slot (other has the same geometry) */
    }
}

typedef struct inv_arg {
    const geo *g;
    invalid k;
} inv_arg;

static void bug_invalid(void *arg)
{
    const inv_arg *d = arg;
    alignas(64) char stack[512];
    memset(stack, 0, sizeof stack);
    mp_pool *pool = child_pool(d->g, d->g->name), *other = child_pool(d->g, "other");
    mp_pool *plain = mp_pool_create(&(mp_pool_opts){.block_size = d->g->block_size});
    char *p = mp_pool_alloc(pool), *f = mp_pool_alloc(pool);
    mp_pool_free(pool, f);
    misuse_heap_block = malloc(d->g->block_size);
    void *bad = invalid_ptr(d->k, d->g, p, f, stack, other, plain, misuse_heap_block);
    child_note(bad);
    mp_pool_free(pool, bad);
}

static void test_deaths(const geo *g)
{
    char what[200];
    void *ga = (void *)(uintptr_t)g;
    for (int a = 0; a < NATTACKS; a++) {
        death_arg d = {g, (attack)a};
        snprintf(what, sizeof what, "secure death (%s): %s", g->name, attack_names[a]);
        expect_death(what, bug_attack, &d, "corrupted free list", g->name);
    }
    snprintf(what, sizeof what, "secure death (%s): double free", g->name);
    expect_death(what, bug_double_free, ga, "double free", g->name);
    snprintf(what, sizeof what, "secure death (%s): free A, free B, free A", g->name);
    expect_death(what, bug_fastbin_dup, ga, "double free", g->name);
    for (int k = 0; k < NINVALID; k++) {
        inv_arg d = {g, (invalid)k};
        snprintf(what, sizeof what, "secure death (%s): invalid free of %s", g->name,
                 invalid_names[k]);
        expect_death(what, bug_invalid, &d, "invalid free", g->name);
    }
}

/* ------------------------------------------------------------------------------------------------
 * 2. With a handler that returns: reported, and nothing bad ever handed out
 * ---------------------------------------------------------------------------------------------- */

enum { AFTER = 64 }; /* allocations made after each attack, one at a time, each inspected */

/*
 * Allocates n blocks one at a time while live[0..nlive) are live, checking that none is the
 * attacker's target, foreign to the pool, or overlapping any live block (so, not a duplicate
 * either). Adds them to live[]. Returns true if all held.
 */
static bool alloc_watch(const char *what, mp_pool *pool, uintptr_t want, void **live, size_t *nlive,
                        size_t n)
{
    size_t bs = mp_pool_block_size(pool);
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        char *p = mp_pool_alloc(pool);
        if (!CHECK(what, p != NULL))
            return false;
        ok &= CHECK(what, (uintptr_t)p != want);
        ok &= CHECK(what, mp_pool_owns(pool, p));
        for (size_t j = 0; j < *nlive; j++) {
            uintptr_t q = (uintptr_t)live[j];
            ok &= CHECK(what, (uintptr_t)p + bs <= q || q + bs <= (uintptr_t)p);
        }
        memset(p, 0x66, bs);
        live[(*nlive)++] = p;
    }
    return ok;
}

typedef struct h_attack_arg {
    const geo *g;
    attack a;
} h_attack_arg;

static void h_attack(void *arg)
{
    const h_attack_arg *d = arg;
    const geo *g = d->g;
    char what[200];
    snprintf(what, sizeof what, "secure handler (%s): %s", g->name, attack_names[d->a]);
    alignas(64) char stack[512];
    memset(stack, 0, sizeof stack);
    tpool t;
    log_start();
    if (!CHECK(what, tpool_make(&t, g, g->name, false)))
        return;
    staged s;
    attack_stage(d->a, t.pool, stack, &s);
    uintptr_t want = attack_want(d->a, &s, stack);
    log_none(what); /* nothing is noticed until the link is used */
    void *live[AFTER + 8];
    size_t nlive = 0;
    for (size_t i = 0; i < s.nlive; i++) {
        pattern_fill(s.live[i], g->block_size, 100 + i);
        live[nlive++] = s.live[i];
    }
    bool ok = alloc_watch(what, t.pool, want, live, &nlive, AFTER);
    for (size_t i = 0; i < s.nlive; i++)
        ok &= CHECK(what, pattern_ok(s.live[i], g->block_size, 100 + i));
    CHECK(what, ok);
    /* A pool that is checked too may name it a write after free (of the link), which it is. */
    mp_error_kind kind = MP_ERR_CORRUPT_FREE_LIST;
    if ((g->flags & MP_CHECKED) && elog.n > 0 && elog.e[0].kind == MP_ERR_WRITE_AFTER_FREE)
        kind = MP_ERR_WRITE_AFTER_FREE;
    log_one(what, kind, t.pool, g->name, s.victim);
    CHECK(what, mp_pool_check(t.pool));
    mp_stats st = stats_get(t.pool);
    CHECK(what, st.allocs - st.frees == st.blocks_in_use && st.blocks_in_use >= nlive &&
                    st.blocks_in_use <= st.blocks_peak);
    /* The pool goes on: all freed, all allocated again, no error. */
    for (size_t i = 0; i < nlive; i++)
        mp_pool_free(t.pool, live[i]);
    if ((g->flags & MP_CHECKED) && d->a >= OVERFLOW_BLIND)
        log_one(what, MP_ERR_OVERFLOW, t.pool, g->name, s.live[0]); /* A's canary, at its free */
    else
        log_none(what);
    CHECK(what, alloc_many_safe(what, t.pool, NULL, 0, 500));
    CHECK(what, mp_pool_check(t.pool));
    tpool_done(&t);
    log_none(what);
}

/* free A, free B, free A with a handler that returns: A must not come out twice. */
static void h_fastbin_dup(void *arg)
{
    const geo *g = arg;
    tpool t;
    log_start();
    if (!CHECK("secure handler: create", tpool_make(&t, g, g->name, false)))
        return;
    mp_pool *pool = t.pool;
    void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool);
    mp_pool_free(pool, a);
    mp_pool_free(pool, b);
    mp_pool_free(pool, a);
    log_one("secure handler: free A, free B, free A reported", MP_ERR_DOUBLE_FREE, pool, g->name,
            a);
    CHECK("secure handler: A,B,A: ignored, stats exact", stats_are(pool, 0, 2, 2));
    CHECK("secure handler: A,B,A: mp_pool_check", mp_pool_check(pool));
    void *live[AFTER + 2];
    size_t nlive = 0;
    CHECK("secure handler: A,B,A: no overlapping allocations",
          alloc_watch("secure handler: A,B,A: alloc", pool, 0, live, &nlive, AFTER));
    CHECK("secure handler: A,B,A: each block once", disjoint(live, nlive, g->block_size));
    log_none("secure handler: A,B,A: nothing more reported");
    CHECK("secure handler: A,B,A: stats", stats_are(pool, AFTER, 2 + AFTER, 2));
    tpool_done(&t);
    log_none("secure handler: A,B,A: destroy reports nothing (leaks are a checked pool's)");

    /* And the plain double free. */
    if (!CHECK("secure handler: create", tpool_make(&t, g, g->name, false)))
        return;
    pool = t.pool;
    a = mp_pool_alloc(pool);
    mp_pool_free(pool, a);
    mp_pool_free(pool, a);
    log_one("secure handler: double free reported", MP_ERR_DOUBLE_FREE, pool, g->name, a);
    CHECK("secure handler: double free ignored", stats_are(pool, 0, 1, 1) && mp_pool_check(pool));
    CHECK("secure handler: double free: alloc many",
          alloc_many_safe("secure handler: double free", pool, NULL, 0, 300));
    tpool_done(&t);
    log_none("secure handler: double free: nothing more reported");
}

static void h_invalid(void *arg)
{
    const geo *g = arg;
    char what[200];
    alignas(64) char stack[512];
    memset(stack, 0, sizeof stack);
    tpool t, o;
    log_start();
    if (!CHECK("secure handler: create",
               tpool_make(&t, g, g->name, false) && tpool_make(&o, g, "other", false)))
        return;
    mp_pool *pool = t.pool, *other = o.pool;
    mp_pool *plain = mp_pool_create(&(mp_pool_opts){.block_size = g->block_size});
    void *heap = malloc(g->block_size);
    char *p = mp_pool_alloc(pool), *f = mp_pool_alloc(pool);
    mp_pool_free(pool, f);
    pattern_fill(p, g->block_size, 7);
    uint64_t other_allocs = 0;
    for (int k = 0; k < NINVALID; k++) {
        snprintf(what, sizeof what, "secure handler (%s): invalid free of %s", g->name,
                 invalid_names[k]);
        void *bad = invalid_ptr((invalid)k, g, p, f, stack, other, plain, heap);
        other_allocs += k == INV_OTHER_SECURE;
        mp_pool_free(pool, bad);
        log_one(what, MP_ERR_INVALID_FREE, pool, g->name, bad);
        CHECK(what, stats_are(pool, 1, 2, 1) && mp_pool_check(pool));
    }
    CHECK("secure handler: invalid frees: the live block untouched",
          pattern_ok(p, g->block_size, 7));
    CHECK("secure handler: invalid frees: the other pool untouched",
          stats_are(other, other_allocs, other_allocs, 0) && mp_pool_check(other));
    void *again = mp_pool_alloc(pool);
    CHECK("secure handler: invalid frees: the free block comes back", again == f);
    void *live[2] = {p, again};
    CHECK("secure handler: invalid frees: alloc many",
          alloc_many_safe("secure invalid many", pool, live, 2, 300));
    log_none("secure handler: invalid frees: nothing more reported");
    tpool_done(&t);
    tpool_done(&o);
    mp_pool_destroy(plain);
    free(heap);
}

/* The links are encoded: neither the raw pointer, nor glibc's unkeyed safe-linking of it. */
static void h_links_encoded(void *arg)
{
    const geo *g = arg;
    tpool t;
    log_start();
    if (!CHECK("secure: create", tpool_make(&t, g, g->name, false)))
        return;
    char *c = mp_pool_alloc(t.pool), *a = mp_pool_alloc(t.pool);
    mp_pool_free(t.pool, c);
    uintptr_t end = stray_link_get(c);
    mp_pool_free(t.pool, a);
    uintptr_t link = stray_link_get(a);
    CHECK("secure: the last link is not a plain NULL", end != 0);
    CHECK("secure: a link is not the plain pointer", link != (uintptr_t)c);
    CHECK("secure: a link is not glibc's unkeyed safe-linking",
          link != ((uintptr_t)c ^ ((uintptr_t)a >> 12)) && end != ((uintptr_t)c >> 12));
    tpool_done(&t);
    log_none("secure: nothing reported");
}

/*
 * Each pool has its own random secret: two children of this process, identical up to the fork, each
 * make the same secure pool and free the same two blocks. Their pools land at the same addresses
 * (the same mappings in the same address space), so only a secret drawn per pool can make the links
 * differ. When the addresses differ after all (address randomisation per mapping), nothing can be
 * concluded.
 */
static void child_links(void *arg)
{
    const geo *g = arg;
    tpool t;
    if (!tpool_make(&t, g, g->name, false))
        _exit(CHILD_NO_POOL);
    char *c = mp_pool_alloc(t.pool), *a = mp_pool_alloc(t.pool);
    mp_pool_free(t.pool, c);
    mp_pool_free(t.pool, a);
    child_note(a);
    child_note(c);
    child_note((void *)stray_link_get(a));
    tpool_done(&t);
}

static void test_secret_per_pool(const geo *g)
{
    child_result r1, r2;
    child_die(child_links, (void *)(uintptr_t)g, &r1);
    child_die(child_links, (void *)(uintptr_t)g, &r2);
    if (!CHECK("secure: secret test children ran", r1.nnotes == 3 && r2.nnotes == 3))
        return;
    if (r1.notes[0] != r2.notes[0] || r1.notes[1] != r2.notes[1]) {
        printf("    (secure: pools at different addresses in two children: secret not tested)\n");
        return;
    }
    CHECK("secure: the same pool in two processes encodes its links differently (per-pool secret)",
          r1.notes[2] != r2.notes[2]);
}

/*
 * A secure pool finds a block's run through a table from chunks to runs, and walks its runs when
 * the table does not say. Runs come and go: a pool grown to several runs and emptied gives them all
 * back at trim, after which a free of one of its old blocks is an invalid free found without
 * reading the memory that is gone (a stale table entry would be read, and crash); grown again, its
 * blocks are accepted and a double free is still caught.
 */
static void h_after_trim(void *arg)
{
    const geo *g = arg;
    enum { N = 12000 }; /* more than a few chunks: several runs */
    char what[200];
    void **v = malloc(N * sizeof *v);
    tpool t;
    log_start();
    if (!CHECK("secure trim: create", v != NULL && tpool_make(&t, g, g->name, false)))
        return;
    mp_pool *pool = t.pool;
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < N; i++)
            v[i] = mp_pool_alloc(pool);
        for (size_t i = 0; i < N; i++)
            mp_pool_free(pool, v[i]);
        snprintf(what, sizeof what, "secure trim (%s), round %d: %d frees accepted", g->name, round,
                 N);
        log_none(what);
        mp_stats st;
        CHECK("secure trim: stats", mp_pool_stats(pool, &st) == 0);
        CHECK("secure trim: several runs", st.source_maps >= 4);
        CHECK("secure trim: every run given back", mp_pool_trim(pool) > 0 &&
                                                       mp_pool_stats(pool, &st) == 0 &&
                                                       st.chunks == 0 && mp_pool_check(pool));
        for (size_t i = 0; i < N; i += N / 7) {
            mp_pool_free(pool, v[i]); /* its run is gone */
            snprintf(what, sizeof what, "secure trim (%s): free of block %zu after its run went",
                     g->name, i);
            log_one(what, MP_ERR_INVALID_FREE, pool, g->name, v[i]);
        }
    }
    for (size_t i = 0; i < N; i++)
        v[i] = mp_pool_alloc(pool);
    for (size_t i = 0; i < N; i += 2)
        mp_pool_free(pool, v[i]);
    log_none("secure trim: frees after regrowing accepted");
    mp_pool_free(pool, v[N / 2]);
    log_one("secure trim: a double free after regrowing", MP_ERR_DOUBLE_FREE, pool, g->name,
            v[N / 2]);
    for (size_t i = 1; i < N; i += 2)
        mp_pool_free(pool, v[i]);
    log_none("secure trim: the rest freed");
    CHECK("secure trim: healthy at the end", mp_pool_check(pool));
    tpool_done(&t);
    free(v);
}

static void test_handlers(const geo *g)
{
    char what[200];
    void *ga = (void *)(uintptr_t)g;
    for (int a = 0; a < NATTACKS; a++) {
        h_attack_arg d = {g, (attack)a};
        snprintf(what, sizeof what, "secure handler (%s): %s", g->name, attack_names[a]);
        run_isolated(what, h_attack, &d);
    }
    run_isolated("secure handler: double frees", h_fastbin_dup, ga);
    run_isolated("secure handler: invalid frees", h_invalid, ga);
    run_isolated("secure: links encoded", h_links_encoded, ga);
    if (!g->buffer)
        run_isolated("secure: runs given back and taken again", h_after_trim, ga);
    test_secret_per_pool(g);
}

/* ------------------------------------------------------------------------------------------------
 * 3. No false positives
 * ---------------------------------------------------------------------------------------------- */

static void test_random(uint64_t seed, uint64_t ops)
{
    size_t n = sizeof rr_shapes / sizeof rr_shapes[0];
    for (size_t i = 0; i < n; i++)
        random_run("secure random: no false positive, contents and stats exact", MP_SECURE,
                   &rr_shapes[i], seed * 1000 + i, ops / n + 1);
    /* Checked and secure at once, on a third of the shapes. */
    for (size_t i = 0; i < n; i += 3)
        random_run("checked+secure random: no false positive", MP_SECURE | MP_CHECKED,
                   &rr_shapes[i], seed * 1000 + 500 + i, ops / n + 1);
}

/* A pool both checked and secure: every attack is still stopped (a checked pool may name a
 * corrupted link as a write after free, since that is what it is). */
static void test_checked_and_secure(void)
{
    static const geo both = {"both", 48, 0, MP_CHECKED | MP_SECURE, false};
    char what[200];
    for (int a = 0; a < NATTACKS; a++) {
        death_arg d = {&both, (attack)a};
        snprintf(what, sizeof what, "secure death (both): %s", attack_names[a]);
        expect_death(what, bug_attack, &d, "corrupted free list|write after free", both.name);
        h_attack_arg h = {&both, (attack)a};
        snprintf(what, sizeof what, "secure handler (both): %s", attack_names[a]);
        run_isolated(what, h_attack, &h);
    }
    expect_death("secure death (both): free A, free B, free A", bug_fastbin_dup,
                 (void *)(uintptr_t)&both, "double free", both.name);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
    uint64_t ops = argc > 2 ? strtoull(argv[2], NULL, 0) : scaled(300000);
    printf("test_secure: seed %" PRIu64 ", %" PRIu64 " random ops\n", seed, ops);
    for (size_t i = 0; i < NGEOS; i++)
        test_deaths(&geos[i]);
    for (size_t i = 0; i < NGEOS; i++)
        test_handlers(&geos[i]);
    for (size_t i = 0; i < NGEOS; i++)
        test_walks_damaged(&geos[i], DAMAGE_PLANT);
    test_checked_and_secure();
    test_random(seed, ops);
    return TEST_DONE();
}

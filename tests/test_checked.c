/*
 * test_checked.c: a checked pool (MP_CHECKED) catches each user bug mempool.h lists, reports it as
 * promised, goes on safely when the handler returns, and reports nothing in a correct program.
 *
 * Usage: test_checked [SEED [OPS]]
 *   SEED  the seed of the randomized no-false-positive run (default 1)
 *   OPS   its operations over all pool shapes (default 300,000 times MP_TEST_SCALE)
 *
 * Three parts, each run over three pool geometries (a 48-byte pool from the system, a 20-byte pool
 * in a caller's buffer, a 100-byte MP_ZERO pool aligned to 64):
 *   1. Death tests: each bug in a child process with the default handler; the child must die by
 *      SIGABRT after one line on stderr naming the bug, `in pool "NAME"` and the block's address:
 *      double free (right after the free, and with another free in between); invalid free of
 * another checked pool's block, a plain pool's block, an interior pointer (word and byte offsets,
 * and into a free block), a stack, a static and a C-heap address, and a never handed out slot;
 * write after free (first byte after the link, last byte) found when the block is handed out again,
 *      and found at destroy; overflow (the byte just past block_size, and the 8th canary byte)
 * found at free, and at destroy; a leak of 3 blocks ("3 blocks leaked").
 *   2. The same bugs with a handler that returns (each test in a child process, so that a crash
 *      fails one test only): the handler gets the right kind, pool, name, address, count (and a
 *      site for leaks), once; then the library goes on as mempool.h promises (a double or invalid
 *      free ignored, a written-after-free block still handed out, an overflowed block still freed,
 *      a destroy with leaks giving all memory back) with exact statistics, mp_pool_check() true,
 *      and hundreds of further blocks handed out without a duplicate or an overlap.
 *   Then the walks over a damaged free list (misuse.h, test_walks_damaged: B's link word
 *      zeroed), and the link word (test_link_word): a free block's link word zeroed, and the link
 *      and the fill after it (one write, one report), in blocks of 1, 8, 16, 24 and 100 bytes, is
 *      found at the next alloc, at trim (which then gives nothing back) and at
 *      destroy, a link rewritten to another free block is found, and trim verifies the fill of
 *      the blocks it would give back; each with the default handler and with one that returns.
 *   3. A randomized run of correct use with the handler logging: no error at all, every block's
 *      contents intact, statistics exact (misuse.h, random_run).
 * It takes about a second in a Release build.
 */
#define _POSIX_C_SOURCE 200809L

#include "misuse.h"

#include <stdalign.h>

/* ------------------------------------------------------------------------------------------------
 * Pool geometries
 * ---------------------------------------------------------------------------------------------- */

static const geo geos[] = {
    {"conns", 48, 0, MP_CHECKED, false},
    {"odd-in-buffer", 20, 0, MP_CHECKED, true},
    {"zeroed-64", 100, 64, MP_CHECKED | MP_ZERO, false},
};
enum { NGEOS = sizeof geos / sizeof geos[0] };

/* ------------------------------------------------------------------------------------------------
 * 1. Death tests: the bugs, each run in a child that must die of it
 * ---------------------------------------------------------------------------------------------- */

static void bug_double_free(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    void *p = mp_pool_alloc(pool);
    mp_pool_free(pool, p);
    child_note(p);
    mp_pool_free(pool, p);
}

static void bug_double_free_later(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    void *p = mp_pool_alloc(pool), *q = mp_pool_alloc(pool);
    mp_pool_free(pool, p);
    mp_pool_free(pool, q);
    child_note(p);
    mp_pool_free(pool, p);
}

static void bug_free_other_checked(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name), *other = child_pool(g, "other");
    void *q = mp_pool_alloc(other);
    (void)mp_pool_alloc(pool);
    child_note(q);
    mp_pool_free(pool, q);
}

static void bug_free_other_plain(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    mp_pool *plain = mp_pool_create(&(mp_pool_opts){.block_size = g->block_size, .name = "plain"});
    void *q = mp_pool_alloc(plain);
    (void)mp_pool_alloc(pool);
    child_note(q);
    mp_pool_free(pool, q);
}

static void bug_free_interior_word(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    char *p = mp_pool_alloc(pool);
    child_note(p + sizeof(void *));
    mp_pool_free(pool, p + sizeof(void *));
}

static void bug_free_interior_byte(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    char *p = mp_pool_alloc(pool);
    child_note(p + 1);
    mp_pool_free(pool, p + 1);
}

static void bug_free_interior_of_free(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    char *p = mp_pool_alloc(pool);
    mp_pool_free(pool, p);
    child_note(p + sizeof(void *));
    mp_pool_free(pool, p + sizeof(void *));
}

static void bug_free_stack(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    alignas(64) char buf[256];
    memset(buf, 0, sizeof buf);
    (void)mp_pool_alloc(pool);
    child_note(buf);
    mp_pool_free(pool, buf);
}

static void bug_free_static(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    (void)mp_pool_alloc(pool);
    child_note(misuse_static_bytes);
    mp_pool_free(pool, misuse_static_bytes);
}

static void bug_free_heap(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    misuse_heap_block = malloc(g->block_size);
    (void)mp_pool_alloc(pool);
    child_note(misuse_heap_block);
    mp_pool_free(pool, misuse_heap_block);
}

/* A block-aligned slot of the pool's own memory that it has not handed out yet. */
static void bug_free_unused_slot(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    char *p = mp_pool_alloc(pool);
    char *next = p + stride_of(pool);
    child_note(next);
    mp_pool_free(pool, next);
}

static void bug_waf_first_byte(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    char *p = mp_pool_alloc(pool);
    mp_pool_free(pool, p);
    stray_byte(p, sizeof(void *), 0x00); /* the first byte after the link */
    child_note(p);
    (void)mp_pool_alloc(pool);
}

static void bug_waf_last_byte(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    char *p = mp_pool_alloc(pool);
    mp_pool_free(pool, p);
    stray_byte(p, g->block_size - 1, 0x42);
    child_note(p);
    (void)mp_pool_alloc(pool);
}

static void bug_waf_at_destroy(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    char *p = mp_pool_alloc(pool);
    mp_pool_free(pool, p);
    stray_byte(p, g->block_size / 2 + sizeof(void *) / 2, 0x00);
    child_note(p);
    mp_pool_destroy(pool);
}

static void bug_overflow_at_free(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    char *p = mp_pool_alloc(pool);
    (void)mp_pool_alloc(pool);
    stray_byte(p, g->block_size, 0x00); /* one byte past the block */
    child_note(p);
    mp_pool_free(pool, p);
}

/* "at least 8 bytes" of canary: the 8th byte past the block is guarded too. */
static void bug_overflow_far_at_free(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    char *p = mp_pool_alloc(pool);
    stray_byte(p, g->block_size + 7, (unsigned char)~MP_FILL_CANARY);
    child_note(p);
    mp_pool_free(pool, p);
}

/* A live block overflowed, never freed: the destroy's verification finds the overflow (before it
 * reports the block as leaked, so the one line names the overflow). */
static void bug_overflow_at_destroy(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    char *p = mp_pool_alloc(pool);
    stray_byte(p, g->block_size, 0x00);
    child_note(p);
    mp_pool_destroy(pool);
}

static void bug_leak(void *arg)
{
    const geo *g = arg;
    mp_pool *pool = child_pool(g, g->name);
    void *b[5];
    for (int i = 0; i < 5; i++)
        b[i] = mp_pool_alloc(pool);
    mp_pool_free(pool, b[1]);
    mp_pool_free(pool, b[3]);
    child_note(b[0]); /* the first leaked block */
    mp_pool_destroy(pool);
}

static void test_deaths(const geo *g)
{
    void *a = (void *)(uintptr_t)g; /* the bug functions only read it */
    const char *n = g->name;
    expect_death("checked death: double free", bug_double_free, a, "double free", n);
    expect_death("checked death: double free, another free between", bug_double_free_later, a,
                 "double free", n);
    expect_death("checked death: invalid free of another checked pool's block",
                 bug_free_other_checked, a, "invalid free", n);
    expect_death("checked death: invalid free of a plain pool's block", bug_free_other_plain, a,
                 "invalid free", n);
    expect_death("checked death: invalid free of an interior pointer (word)",
                 bug_free_interior_word, a, "invalid free", n);
    expect_death("checked death: invalid free of an interior pointer (byte)",
                 bug_free_interior_byte, a, "invalid free", n);
    expect_death("checked death: invalid free of an interior pointer of a free block",
                 bug_free_interior_of_free, a, "invalid free", n);
    expect_death("checked death: invalid free of a stack address", bug_free_stack, a,
                 "invalid free", n);
    expect_death("checked death: invalid free of a static address", bug_free_static, a,
                 "invalid free", n);
    expect_death("checked death: invalid free of a malloc()ed address", bug_free_heap, a,
                 "invalid free", n);
    expect_death("checked death: invalid free of a slot never handed out", bug_free_unused_slot, a,
                 "invalid free", n);
    expect_death("checked death: write after free (first byte after the link), at alloc",
                 bug_waf_first_byte, a, "write after free", n);
    expect_death("checked death: write after free (last byte), at alloc", bug_waf_last_byte, a,
                 "write after free", n);
    expect_death("checked death: write after free, at destroy", bug_waf_at_destroy, a,
                 "write after free", n);
    expect_death("checked death: overflow by one byte, at free", bug_overflow_at_free, a,
                 "overflow", n);
    expect_death("checked death: overflow into the 8th canary byte, at free",
                 bug_overflow_far_at_free, a, "overflow", n);
    expect_death("checked death: overflow of a live block, at destroy", bug_overflow_at_destroy, a,
                 "overflow", n);
    expect_death("checked death: 3 blocks leaked, at destroy", bug_leak, a, "3 blocks leaked", n);
}

/* ------------------------------------------------------------------------------------------------
 * 2. The same bugs with a handler that returns: reported once, exactly, then survived
 * ---------------------------------------------------------------------------------------------- */

static void h_double_free(void *arg)
{
    const geo *g = arg;
    tpool t;
    mp_pool *pool = tpool_begin(&t, g, false);
    if (pool == NULL)
        return;
    void *p = mp_pool_alloc(pool), *q = mp_pool_alloc(pool);
    mp_pool_free(pool, p);
    log_none("checked handler: a correct free reports nothing");
    mp_pool_free(pool, p);
    log_one("checked handler: double free reported once, exactly", MP_ERR_DOUBLE_FREE, pool,
            g->name, p);
    CHECK("checked handler: double free ignored: stats exact", stats_are(pool, 1, 2, 1));
    CHECK("checked handler: double free ignored: mp_pool_check", mp_pool_check(pool));
    /* The block must come back once: p is on the free list once, not twice. */
    CHECK("checked handler: double free: no block handed out twice",
          alloc_many_safe("checked handler: double free: alloc many", pool, &q, 1, 300));
    log_none("checked handler: double free: nothing more reported");
    mp_pool_free(pool, q);
    CHECK("checked handler: double free: stats after", stats_are(pool, 0, 302, 302));
    tpool_done(&t);
    log_none("checked handler: double free: clean destroy");
}

/* free A, free B, free A: the "fastbin dup" of glibc exploits, which in a plain free list makes A
 * come out twice (A, B, A). */
static void h_double_free_later(void *arg)
{
    const geo *g = arg;
    tpool t;
    mp_pool *pool = tpool_begin(&t, g, false);
    if (pool == NULL)
        return;
    void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool), *c = mp_pool_alloc(pool);
    mp_pool_free(pool, a);
    mp_pool_free(pool, b);
    mp_pool_free(pool, a);
    log_one("checked handler: free A, free B, free A reported", MP_ERR_DOUBLE_FREE, pool, g->name,
            a);
    CHECK("checked handler: A,B,A: stats exact", stats_are(pool, 1, 3, 2));
    CHECK("checked handler: A,B,A: mp_pool_check", mp_pool_check(pool));
    void *x = mp_pool_alloc(pool), *y = mp_pool_alloc(pool), *z = mp_pool_alloc(pool);
    CHECK("checked handler: A,B,A: three allocs give three blocks",
          x != NULL && y != NULL && z != NULL && x != y && y != z && x != z);
    CHECK("checked handler: A,B,A: LIFO order kept (B, then A)", x == b && y == a);
    void *live[4] = {c, x, y, z};
    CHECK("checked handler: A,B,A: alloc many", alloc_many_safe("A,B,A many", pool, live, 4, 300));
    log_none("checked handler: A,B,A: nothing more reported");
    tpool_done(&t); /* 4 blocks leaked: reported, and the pool still destroyed */
    CHECK("checked handler: A,B,A: the leak at destroy", elog.n == 1 && elog.e[0].count == 4);
}

/* Each kind of pointer the pool never handed out, freed: reported, ignored, nothing disturbed. */
static void h_invalid_free(void *arg)
{
    const geo *g = arg;
    tpool t, o;
    log_start();
    if (!CHECK("checked handler: create",
               tpool_make(&t, g, g->name, false) && tpool_make(&o, g, "other", false)))
        return;
    mp_pool *pool = t.pool, *other = o.pool;
    mp_pool *plain = mp_pool_create(&(mp_pool_opts){.block_size = g->block_size});
    alignas(64) char stack[256];
    memset(stack, 0, sizeof stack);
    char *heap = malloc(g->block_size);
    char *p = mp_pool_alloc(pool), *f = mp_pool_alloc(pool), *q = mp_pool_alloc(other);
    char *r = mp_pool_alloc(plain);
    mp_pool_free(pool, f);
    pattern_fill(p, g->block_size, 1);
    pattern_fill(q, g->block_size, 2);
    char *next = f + stride_of(pool); /* the slot after f: never handed out */
    struct {
        const char *what;
        void *ptr;
    } bad[] = {
        {"checked handler: invalid free of another checked pool's block", q},
        {"checked handler: invalid free of a plain pool's block", r},
        {"checked handler: invalid free of an interior pointer (word)", p + sizeof(void *)},
        {"checked handler: invalid free of an interior pointer (byte)", p + 1},
        {"checked handler: invalid free of an interior pointer of a free block",
         f + sizeof(void *)},
        {"checked handler: invalid free of a stack address", stack},
        {"checked handler: invalid free of a static address", misuse_static_bytes},
        {"checked handler: invalid free of a malloc()ed address", heap},
        {"checked handler: invalid free of a slot never handed out", next},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mp_pool_free(pool, bad[i].ptr);
        log_one(bad[i].what, MP_ERR_INVALID_FREE, pool, g->name, bad[i].ptr);
        CHECK(bad[i].what, stats_are(pool, 1, 2, 1) && mp_pool_check(pool));
    }
    CHECK("checked handler: invalid frees: the live block untouched",
          pattern_ok(p, g->block_size, 1));
    CHECK("checked handler: invalid frees: the other pool untouched",
          pattern_ok(q, g->block_size, 2) && stats_are(other, 1, 1, 0) && mp_pool_check(other));
    mp_pool_free(other, q);
    log_none("checked handler: the other pool's block freed there without error");
    /* f is on the free list once; `next` comes from carving once. */
    void *again = mp_pool_alloc(pool);
    CHECK("checked handler: invalid frees: the freed block comes back", again == f);
    void *live[2] = {p, again};
    CHECK("checked handler: invalid frees: alloc many",
          alloc_many_safe("invalid frees many", pool, live, 2, 300));
    log_none("checked handler: invalid frees: nothing more reported");
    mp_pool_free(pool, again);
    mp_pool_free(pool, p);
    tpool_done(&t);
    tpool_done(&o);
    mp_pool_destroy(plain);
    free(heap);
    log_none("checked handler: invalid frees: clean destroy");
}

/* Written after free, found when handed out again: reported, and the block still handed out. */
static void h_waf_at_alloc(void *arg)
{
    const geo *g = arg;
    size_t offs[] = {sizeof(void *), g->block_size - 1};
    for (size_t i = 0; i < 2; i++) {
        tpool t;
        mp_pool *pool = tpool_begin(&t, g, false);
        if (pool == NULL)
            return;
        char *p = mp_pool_alloc(pool), *q = mp_pool_alloc(pool);
        mp_pool_free(pool, p);
        stray_byte(p, offs[i], 0x00);
        log_none("checked handler: write after free not reported before the block is reused");
        char *r = mp_pool_alloc(pool);
        log_one("checked handler: write after free reported at alloc", MP_ERR_WRITE_AFTER_FREE,
                pool, g->name, p);
        CHECK("checked handler: write after free: the block still handed out", r == p);
        if (g->flags & MP_ZERO)
            CHECK("checked handler: write after free: MP_ZERO block still zeroed",
                  r != NULL && all_zero(r, g->block_size));
        CHECK("checked handler: write after free: stats", stats_are(pool, 2, 3, 1));
        CHECK("checked handler: write after free: mp_pool_check", mp_pool_check(pool));
        mp_pool_free(pool, r);
        r = mp_pool_alloc(pool);
        log_none("checked handler: write after free: the refilled block is clean next time");
        void *live[2] = {r, q};
        CHECK("checked handler: write after free: alloc many",
              alloc_many_safe("waf many", pool, live, 2, 300));
        mp_pool_free(pool, r);
        mp_pool_free(pool, q);
        tpool_done(&t);
        log_none("checked handler: write after free: clean destroy");
    }
}

/* Written after free, found at destroy: reported, and all memory still given back. */
static void h_waf_at_destroy(void *arg)
{
    const geo *g = arg;
    tpool t;
    mp_pool *pool = tpool_begin(&t, g, true);
    if (pool == NULL)
        return;
    char *p = mp_pool_alloc(pool);
    char *q = mp_pool_alloc(pool);
    mp_pool_free(pool, q);
    mp_pool_free(pool, p);
    stray_byte(q, g->block_size - 1, 0x00);
    mp_pool_destroy(pool);
    t.pool = NULL;
    log_one("checked handler: write after free reported at destroy", MP_ERR_WRITE_AFTER_FREE, pool,
            g->name, q);
    if (!g->buffer)
        CHECK("checked handler: write after free at destroy: all memory given back",
              t.count.maps > 0 && t.count.maps == t.count.unmaps && t.count.bytes_out == 0);
    tpool_done(&t);
}

/* Overflowed, found at free: reported, the block still freed, its canary whole again. */
static void h_overflow_at_free(void *arg)
{
    const geo *g = arg;
    size_t offs[] = {g->block_size, g->block_size + 7};
    for (size_t i = 0; i < 2; i++) {
        tpool t;
        mp_pool *pool = tpool_begin(&t, g, false);
        if (pool == NULL)
            return;
        char *p = mp_pool_alloc(pool), *q = mp_pool_alloc(pool);
        pattern_fill(q, g->block_size, 3);
        stray_byte(p, offs[i], (unsigned char)~MP_FILL_CANARY);
        mp_pool_free(pool, p);
        log_one("checked handler: overflow reported at free", MP_ERR_OVERFLOW, pool, g->name, p);
        CHECK("checked handler: overflow: the block still freed", stats_are(pool, 1, 2, 1));
        CHECK("checked handler: overflow: mp_pool_check", mp_pool_check(pool));
        CHECK("checked handler: overflow: the neighbour untouched",
              pattern_ok(q, g->block_size, 3));
        char *r = mp_pool_alloc(pool);
        CHECK("checked handler: overflow: the freed block is reused first", r == p);
        log_none("checked handler: overflow: nothing reported when it is reused");
        mp_pool_free(pool, r);
        log_none("checked handler: overflow: reported once, not again at the next free");
        void *live[1] = {q};
        CHECK("checked handler: overflow: alloc many",
              alloc_many_safe("overflow many", pool, live, 1, 300));
        mp_pool_free(pool, q);
        tpool_done(&t);
        log_none("checked handler: overflow: clean destroy");
    }
}

/* Overflowed and never freed: the destroy reports the overflow and the leak, gives all back. */
static void h_overflow_at_destroy(void *arg)
{
    const geo *g = arg;
    tpool t;
    mp_pool *pool = tpool_begin(&t, g, true);
    if (pool == NULL)
        return;
    char *p = mp_pool_alloc(pool);
    stray_byte(p, g->block_size, 0x00);
    mp_pool_destroy(pool);
    t.pool = NULL;
    CHECK("checked handler: overflow at destroy: two reports (overflow, leak)", elog.n == 2);
    if (elog.n == 2) {
        unsigned o = elog.e[0].kind == MP_ERR_OVERFLOW ? 0 : 1;
        log_entry_is("checked handler: overflow at destroy: the overflow", o, MP_ERR_OVERFLOW, pool,
                     g->name, p);
        log_entry_is("checked handler: overflow at destroy: the leak", 1 - o, MP_ERR_LEAK, pool,
                     g->name, p);
        CHECK("checked handler: overflow at destroy: the overflow first", o == 0);
    } else {
        log_show();
    }
    if (!g->buffer)
        CHECK("checked handler: overflow at destroy: all memory given back",
              t.count.maps == t.count.unmaps && t.count.bytes_out == 0);
    tpool_done(&t);
}

/* A checked pool of geometry g with n blocks allocated into b; NULL if it could not be made. */
static mp_pool *leak_begin(tpool *t, const geo *g, void **b, int n)
{
    mp_pool *pool = tpool_begin(t, g, true);
    for (int i = 0; pool != NULL && i < n; i++)
        b[i] = mp_pool_alloc(pool);
    return pool;
}

static void h_leak(void *arg)
{
    const geo *g = arg;
    tpool t;
    void *b[5];
    mp_pool *pool = leak_begin(&t, g, b, 5);
    if (pool == NULL)
        return;
    mp_pool_free(pool, b[1]);
    mp_pool_free(pool, b[3]);
    log_none("checked handler: no leak reported before destroy");
    mp_pool_destroy(pool);
    t.pool = NULL;
    if (log_entry_is("checked handler: leak reported at destroy", 0, MP_ERR_LEAK, pool, g->name,
                     b[0])) {
        const logged_error *l = &elog.e[0];
        CHECK("checked handler: leak: exactly one report", elog.n == 1);
        CHECK("checked handler: leak: count 3", l->count == 3);
        CHECK("checked handler: leak: \"3 blocks leaked\"",
              text_has(l->message, "3 blocks leaked"));
        CHECK("checked handler: leak: the allocation site is known", l->site != NULL);
        CHECK("checked handler: leak: the message names the site",
              l->site != NULL && text_has_addr(l->message, l->site));
    }
    if (!g->buffer)
        CHECK("checked handler: leak: all memory given back",
              t.count.maps > 0 && t.count.maps == t.count.unmaps && t.count.bytes_out == 0);
    tpool_done(&t);
}

/* More leaks than the message lists (4 by default): the first ones named, then ", ...". */
static void h_leak_many(void *arg)
{
    void *b[7];
    tpool t;
    mp_pool *pool = leak_begin(&t, arg, b, 7);
    if (pool == NULL)
        return;
    mp_pool_destroy(pool); /* all 7 leaked */
    t.pool = NULL;
    if (log_entry_is("checked handler: many leaks reported", 0, MP_ERR_LEAK, pool,
                     ((const geo *)arg)->name, b[0])) {
        const char *m = elog.e[0].message;
        size_t n = strlen(m);
        CHECK("checked handler: many leaks: count 7", elog.e[0].count == 7);
        CHECK("checked handler: many leaks: the first blocks named",
              text_has_addr(m, b[0]) && text_has_addr(m, b[1]));
        CHECK("checked handler: many leaks: the message ends with \", ...\"",
              n > 5 && strcmp(m + n - 5, ", ...") == 0);
    }
    tpool_done(&t);
}

/* Two call sites: the site a leak report gives must tell them apart, and be stable for one. The
 * store after the call keeps it from being a tail call, so the return address is in these. */
static void *volatile site_sink;

static MP_NOINLINE void *alloc_at_site_one(mp_pool *pool)
{
    void *p = mp_pool_alloc(pool);
    site_sink = p;
    return p;
}

static void *volatile site_sink_two; /* a body unlike the first, so the two are never merged */

static MP_NOINLINE void *alloc_at_site_two(mp_pool *pool)
{
    void *p = mp_pool_alloc(pool);
    site_sink_two = p;
    return p;
}

static const void *leak_site(const geo *g, void *(*alloc)(mp_pool *))
{
    tpool t;
    log_start();
    if (!tpool_make(&t, g, "sites", false))
        return NULL;
    void *p = alloc(t.pool);
    mp_pool_destroy(t.pool);
    t.pool = NULL;
    tpool_done(&t);
    bool one = elog.n == 1 && elog.e[0].kind == MP_ERR_LEAK && elog.e[0].addr == p;
    return one ? elog.e[0].site : NULL;
}

static void h_leak_sites(void *arg)
{
    const geo *g = arg;
    const void *s1 = leak_site(g, alloc_at_site_one), *s2 = leak_site(g, alloc_at_site_two);
    const void *s3 = leak_site(g, alloc_at_site_one);
    CHECK("checked handler: leak sites known", s1 != NULL && s2 != NULL && s3 != NULL);
    CHECK("checked handler: one call site gives one site", s1 == s3);
    CHECK("checked handler: two call sites give two sites", s1 != s2);
}

static void test_handlers(const geo *g)
{
    void *a = (void *)(uintptr_t)g;
    run_isolated("checked handler: double free", h_double_free, a);
    run_isolated("checked handler: free A, free B, free A", h_double_free_later, a);
    run_isolated("checked handler: invalid frees", h_invalid_free, a);
    run_isolated("checked handler: write after free at alloc", h_waf_at_alloc, a);
    run_isolated("checked handler: write after free at destroy", h_waf_at_destroy, a);
    run_isolated("checked handler: overflow at free", h_overflow_at_free, a);
    run_isolated("checked handler: overflow at destroy", h_overflow_at_destroy, a);
    run_isolated("checked handler: leak", h_leak, a);
    run_isolated("checked handler: many leaks", h_leak_many, a);
    run_isolated("checked handler: leak sites", h_leak_sites, a);
}

/* ------------------------------------------------------------------------------------------------
 * The link word: a write to a free block's first word is a write after free too, at every block
 * size (a block no larger than a pointer is nothing but its link word while free), found when the
 * block is handed out again, at trim (before its run is given back) and at destroy; a write over
 * the link and the fill after it is the same one write after free, reported once
 * ---------------------------------------------------------------------------------------------- */

static const size_t link_sizes[] = {1, 8, 16, 24, 100};
enum { NLINK_SIZES = sizeof link_sizes / sizeof link_sizes[0] };

typedef enum found_at { AT_ALLOC, AT_TRIM, AT_DESTROY, NFOUND } found_at;
static const char *const found_names[NFOUND] = {"the next alloc", "trim", "destroy"};

typedef struct link_case {
    size_t size;
    size_t len; /* bytes zeroed from the block's start: the link word, or it and some fill */
    found_at at;
} link_case;

static mp_pool *link_pool(size_t size)
{
    return mp_pool_create(
        &(mp_pool_opts){.block_size = size, .flags = MP_CHECKED, .name = "links"});
}

/* Frees two blocks (the list: B -> A, their run wholly free) and zeroes B's first len bytes. */
static void *link_zero_stage(mp_pool *pool, size_t len)
{
    void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool);
    mp_pool_free(pool, a);
    mp_pool_free(pool, b);
    stray_zero(b, len);
    return b;
}

/* What a case writes, for its messages. */
static void link_case_name(char *what, size_t size, const char *kind, const link_case *k)
{
    if (k->len == sizeof(void *))
        snprintf(what, size, "checked %s: the link word of a free %zu-byte block zeroed, at %s",
                 kind, k->size, found_names[k->at]);
    else
        snprintf(what, size,
                 "checked %s: the link word and %zu fill bytes of a free %zu-byte block zeroed, "
                 "at %s",
                 kind, k->len - sizeof(void *), k->size, found_names[k->at]);
}

/* The call that must find the write: its result, as a handler that returns leaves it. */
static bool link_found_by(found_at at, mp_pool *pool, void *b)
{
    if (at == AT_ALLOC)
        return mp_pool_alloc(pool) == b; /* still handed out */
    if (at == AT_TRIM)
        return mp_pool_trim(pool) == 0; /* nothing given back */
    mp_pool_destroy(pool);
    return true;
}

static void bug_link_zeroed(void *arg)
{
    const link_case *k = arg;
    mp_pool *pool = link_pool(k->size);
    if (pool == NULL)
        _exit(CHILD_NO_POOL);
    void *b = link_zero_stage(pool, k->len);
    child_note(b);
    (void)link_found_by(k->at, pool, b);
}

static void h_link_zeroed(void *arg)
{
    const link_case *k = arg;
    char what[200];
    link_case_name(what, sizeof what, "handler", k);
    log_start();
    mp_pool *pool = link_pool(k->size);
    if (!CHECK(what, pool != NULL))
        return;
    void *b = link_zero_stage(pool, k->len);
    log_none(what);
    CHECK(what, link_found_by(k->at, pool, b));
    log_one(what, MP_ERR_WRITE_AFTER_FREE, pool, "links", b);
    if (k->at == AT_DESTROY)
        return;
    if (k->at == AT_ALLOC) { /* the list was cut at B: it goes on from never-used blocks */
        CHECK(what, mp_pool_check(pool) && alloc_many_safe(what, pool, &b, 1, 100));
        mp_pool_free(pool, b);
    }
    log_none(what);
    mp_pool_destroy(pool);
    if (k->at == AT_TRIM) /* B is still free, and still written */
        log_one(what, MP_ERR_WRITE_AFTER_FREE, pool, "links", b);
    log_none(what);
}

/*
 * The link word rewritten so that it still decodes to a free block of the pool: C's link, which
 * encodes B, made to encode A (C -> B -> A becomes C -> A, B cut off unseen). The link alone is
 * valid; its copy is not. With a handler: reported at the alloc that pops C, and C handed out.
 */
static void h_link_still_valid(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < NLINK_SIZES; i++) {
        char what[160];
        snprintf(what, sizeof what,
                 "checked handler: a %zu-byte free block's link rewritten to another free block",
                 link_sizes[i]);
        log_start();
        mp_pool *pool = link_pool(link_sizes[i]);
        if (!CHECK(what, pool != NULL))
            continue;
        void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool), *c = mp_pool_alloc(pool);
        mp_pool_free(pool, a);
        mp_pool_free(pool, b);
        mp_pool_free(pool, c);
        stray_link_set(c, stray_link_get(c) ^ (uintptr_t)b ^ (uintptr_t)a);
        CHECK(what, mp_pool_alloc(pool) == c);
        log_one(what, MP_ERR_WRITE_AFTER_FREE, pool, "links", c);
        mp_pool_reset(pool);
        mp_pool_destroy(pool);
        log_none(what);
    }
}

/* A write into the fill of a free block in a wholly free run: trim verifies the run's blocks before
 * giving it back, reports the block and keeps the run. */
static void h_trim_verifies_fill(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < NLINK_SIZES; i++) {
        size_t size = link_sizes[i];
        if (size <= sizeof(void *))
            continue; /* no fill: the link word is all there is (h_link_zeroed) */
        char what[160];
        snprintf(what, sizeof what,
                 "checked handler: trim verifies the fill of a free %zu-byte "
                 "block before giving its run back",
                 size);
        log_start();
        mp_pool *pool = link_pool(size);
        if (!CHECK(what, pool != NULL))
            continue;
        void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool);
        mp_pool_free(pool, b);
        mp_pool_free(pool, a);
        stray_byte(b, size - 1, 0x00);
        CHECK(what, mp_pool_trim(pool) == 0);
        log_one(what, MP_ERR_WRITE_AFTER_FREE, pool, "links", b);
        CHECK(what, mp_pool_owns(pool, b) && mp_pool_check(pool)); /* the run was kept */
        mp_pool_destroy(pool);
        log_one(what, MP_ERR_WRITE_AFTER_FREE, pool, "links", b);
    }
}

static void bug_trim_fill(void *arg)
{
    (void)arg;
    mp_pool *pool = link_pool(100);
    if (pool == NULL)
        _exit(CHILD_NO_POOL);
    void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool);
    mp_pool_free(pool, b);
    mp_pool_free(pool, a);
    stray_byte(b, 50, 0x00);
    child_note(b);
    (void)mp_pool_trim(pool);
}

static void test_link_word(void)
{
    char what[200];
    for (size_t i = 0; i < NLINK_SIZES; i++) {
        /* The link word alone; then it and the fill after it, where the block has fill */
        size_t size = link_sizes[i], word = sizeof(void *);
        size_t lens[2] = {word, size < 2 * word ? size : 2 * word};
        for (int l = 0; l < (size > word ? 2 : 1); l++) {
            for (int at = 0; at < NFOUND; at++) {
                link_case k = {size, lens[l], (found_at)at};
                link_case_name(what, sizeof what, "death", &k);
                expect_death(what, bug_link_zeroed, &k, "write after free", "links");
                run_isolated(what, h_link_zeroed, &k);
            }
        }
    }
    run_isolated("checked handler: a link rewritten to another free block", h_link_still_valid,
                 NULL);
    run_isolated("checked handler: trim verifies the fill", h_trim_verifies_fill, NULL);
    expect_death("checked death: write after free found by trim", bug_trim_fill, NULL,
                 "write after free", "links");
}

/* ------------------------------------------------------------------------------------------------
 * Odds and ends: error names, the cost claim, a plain pool unaffected
 * ---------------------------------------------------------------------------------------------- */

static void test_error_names(void)
{
    CHECK("mp_error_name: double free",
          strcmp(mp_error_name(MP_ERR_DOUBLE_FREE), "double free") == 0);
    CHECK("mp_error_name: invalid free",
          strcmp(mp_error_name(MP_ERR_INVALID_FREE), "invalid free") == 0);
    CHECK("mp_error_name: write after free",
          strcmp(mp_error_name(MP_ERR_WRITE_AFTER_FREE), "write after free") == 0);
    CHECK("mp_error_name: overflow", strcmp(mp_error_name(MP_ERR_OVERFLOW), "overflow") == 0);
    CHECK("mp_error_name: leak", strcmp(mp_error_name(MP_ERR_LEAK), "leak") == 0);
    CHECK("mp_error_name: corrupted free list",
          strcmp(mp_error_name(MP_ERR_CORRUPT_FREE_LIST), "corrupted free list") == 0);
    CHECK("mp_error_name: 0 is unknown", strcmp(mp_error_name((mp_error_kind)0), "unknown") == 0);
    CHECK("mp_error_name: 7 is unknown", strcmp(mp_error_name((mp_error_kind)7), "unknown") == 0);
    CHECK("mp_error_name: -1 is unknown", strcmp(mp_error_name((mp_error_kind)-1), "unknown") == 0);
}

/* "each block takes 16 bytes more" (at most), blocks stay aligned, and nothing is reported for
 * correct use of many shapes, alloc to free. */
static void test_geometry(void)
{
    static const size_t sizes[] = {1, 7, 8, 9, 20, 48, 64, 100, 1000, 4096, 70000};
    static const size_t aligns[] = {0, 8, 16, 64, 4096};
    log_start();
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (size_t j = 0; j < sizeof aligns / sizeof aligns[0]; j++) {
            mp_pool_opts o = {.block_size = sizes[i], .align = aligns[j], .name = "geometry"};
            mp_pool *plain = mp_pool_create(&o);
            o.flags = MP_CHECKED;
            mp_pool *checked = mp_pool_create(&o);
            if (!CHECK("checked: create", plain != NULL && checked != NULL))
                continue;
            size_t align = mp_pool_align(checked), ps = stride_of(plain), cs = stride_of(checked);
            CHECK("checked: same alignment as a plain pool", align == mp_pool_align(plain));
            CHECK("checked: block_size as asked", mp_pool_block_size(checked) == sizes[i]);
            /* At most 16 bytes more, rounded to the alignment (they may fit in its padding), and
             * room for the canary's at least 8 bytes. */
            CHECK("checked: each block takes at most 16 bytes more, rounded to the alignment",
                  cs >= sizes[i] + 8 && cs >= ps && cs <= (ps + 16 + align - 1) / align * align);
            void *b[20];
            for (int k = 0; k < 20; k++) {
                b[k] = mp_pool_alloc(checked);
                CHECK("checked: aligned", b[k] != NULL && ((uintptr_t)b[k] & (align - 1)) == 0);
                if (b[k] != NULL)
                    memset(b[k], 0x5A, sizes[i]); /* the whole block is the user's */
            }
            for (int k = 0; k < 20; k++)
                mp_pool_free(checked, b[k]);
            CHECK("checked: stats after correct use", stats_are(checked, 0, 20, 20));
            mp_pool_destroy(plain);
            mp_pool_destroy(checked);
        }
    }
    log_none("checked: nothing reported for correct use of any shape");
    mp_set_error_handler(NULL, NULL);
}

/* ------------------------------------------------------------------------------------------------
 * 3. No false positives
 * ---------------------------------------------------------------------------------------------- */

static void test_random(uint64_t seed, uint64_t ops)
{
    size_t n = sizeof rr_shapes / sizeof rr_shapes[0];
    for (size_t i = 0; i < n; i++)
        random_run("checked random: no false positive, contents and stats exact", MP_CHECKED,
                   &rr_shapes[i], seed * 1000 + i, ops / n + 1);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
    uint64_t ops = argc > 2 ? strtoull(argv[2], NULL, 0) : scaled(300000);
    printf("test_checked: seed %" PRIu64 ", %" PRIu64 " random ops\n", seed, ops);
    test_error_names();
    for (size_t i = 0; i < NGEOS; i++)
        test_deaths(&geos[i]);
    for (size_t i = 0; i < NGEOS; i++)
        test_handlers(&geos[i]);
    for (size_t i = 0; i < NGEOS; i++)
        test_walks_damaged(&geos[i], DAMAGE_ZERO);
    test_link_word();
    test_geometry();
    test_random(seed, ops);
    return TEST_DONE();
}

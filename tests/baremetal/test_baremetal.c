/*
 * test_baremetal.c: the contract of fixed-size pools and arenas in a caller's buffer, on a
 * Cortex-M4 with no operating system (MP_FREESTANDING): every block inside the buffer, aligned and
 * distinct; exhaustion with ENOMEM in mp_errno; reuse; zeroing; statistics as numbers; reset;
 * checks; a checked pool's report to the error handler, without stdio; a pool over the caller's
 * mp_source; mp_pool_visit of pools too large for a scratch on the stack; and ENOSYS for what
 * needs a system. Built also with MP_FREESTANDING_CHECKED=0 (the library and this file), where
 * MP_CHECKED is refused with ENOSYS. Output goes through semihosting (startup.c).
 */
#include "mempool.h"
#include "semihost.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static _Alignas(16) unsigned char buffer[8192];

static bool in_buffer(const void *p, size_t n)
{
    return (uintptr_t)p >= (uintptr_t)buffer &&
           (uintptr_t)p + n <= (uintptr_t)(buffer + sizeof buffer);
}

static mp_pool *pool_in_buffer(size_t block_size, size_t align, unsigned flags, size_t capacity)
{
    return mp_pool_create(&(mp_pool_opts){.block_size = block_size,
                                          .align = align,
                                          .flags = flags,
                                          .capacity = capacity,
                                          .buffer = buffer,
                                          .buffer_size = sizeof buffer,
                                          .name = "bare"});
}

/* Every block of a buffer pool: inside the buffer, aligned, distinct, until ENOMEM. */
static void test_pool_fill(void)
{
    static void *blocks[1024];
    mp_pool *pool = pool_in_buffer(24, 8, 0, 0);
    if (!CHECK("pool: created in a buffer", pool != NULL))
        return;
    size_t n = 0;
    void *p;
    while (n < 1024 && (p = mp_pool_alloc(pool)) != NULL)
        blocks[n++] = p;
    CHECK("pool: a buffer of 8 KiB holds some hundreds of 24-byte blocks", n > 200 && n < 1024);
    CHECK("pool: past the buffer's last block, NULL with ENOMEM",
          mp_pool_alloc(pool) == NULL && mp_errno == ENOMEM);
    bool inside = true, aligned = true, distinct = true;
    for (size_t i = 0; i < n; i++) {
        inside &= in_buffer(blocks[i], 24);
        aligned &= ((uintptr_t)blocks[i] & 7) == 0;
        if (i > 0)
            distinct &= (char *)blocks[i] >= (char *)blocks[i - 1] + 24 ||
                        (char *)blocks[i] + 24 <= (char *)blocks[i - 1];
        memset(blocks[i], (int)i, 24);
    }
    CHECK("pool: every block inside the buffer", inside);
    CHECK("pool: every block aligned", aligned);
    CHECK("pool: blocks do not overlap", distinct);

    mp_stats st;
    CHECK("stats: read", mp_pool_stats(pool, &st) == 0);
    CHECK("stats: in use, allocs and the two failures counted",
          st.blocks_in_use == n && st.allocs == n && st.failed_allocs == 2 && st.blocks_peak == n);

    mp_pool_free(pool, blocks[5]);
    mp_pool_free(pool, blocks[9]);
    CHECK("pool: the last block freed comes back first", mp_pool_alloc(pool) == blocks[9]);
    CHECK("pool: then the one before", mp_pool_alloc(pool) == blocks[5]);
    for (size_t i = 0; i < n; i++)
        mp_pool_free(pool, blocks[i]);
    CHECK("stats: all free", mp_pool_stats(pool, &st) == 0 && st.blocks_in_use == 0 &&
                                 st.frees == st.allocs && st.blocks_peak == n);
    CHECK("pool: check passes", mp_pool_check(pool));
    CHECK("pool: owns its block", mp_pool_owns(pool, blocks[3]));
    CHECK("pool: does not own the stack", !mp_pool_owns(pool, &st));

    mp_pool_reset(pool);
    size_t again = 0;
    while (mp_pool_alloc(pool) != NULL)
        again++;
    CHECK("pool: after reset, the same number of blocks", again == n);
    mp_pool_destroy(pool);
}

static void test_pool_capacity_zero(void)
{
    mp_pool *pool = pool_in_buffer(40, 0, 0, 3);
    void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool), *c = mp_pool_alloc(pool);
    CHECK("capacity: three blocks", a != NULL && b != NULL && c != NULL);
    CHECK("capacity: a fourth fails with ENOMEM",
          mp_pool_alloc(pool) == NULL && mp_errno == ENOMEM);
    mp_pool_destroy(pool);

    pool = pool_in_buffer(64, 16, MP_ZERO, 0);
    unsigned char *p = mp_pool_alloc(pool);
    if (!CHECK("zero: alloc", p != NULL))
        return;
    CHECK("zero: aligned to 16", ((uintptr_t)p & 15) == 0);
    memset(p, 0xa5, 64);
    mp_pool_free(pool, p);
    unsigned char *q = mp_pool_alloc(pool);
    bool zero = q != NULL;
    for (size_t i = 0; zero && i < 64; i++)
        zero = q[i] == 0;
    CHECK("zero: a reused block comes back zeroed", q == p && zero);
    mp_pool_destroy(pool);
}

static mp_error_kind seen_kind;
static unsigned seen;
static char seen_message[128];

static void on_error(const mp_error *e, void *ctx)
{
    (void)ctx;
    seen_kind = e->kind;
    seen++;
    size_t n = strlen(e->message);
    memcpy(seen_message, e->message, n < sizeof seen_message - 1 ? n + 1 : sizeof seen_message - 1);
}

#if !defined(MP_FREESTANDING_CHECKED) || MP_FREESTANDING_CHECKED
/* A checked pool reports to the handler, with its message built without stdio. */
static void test_checked(void)
{
    mp_set_error_handler(on_error, NULL);
    mp_pool *pool = pool_in_buffer(32, 0, MP_CHECKED, 0);
    if (!CHECK("checked: created in a buffer", pool != NULL))
        return;
    char *p = mp_pool_alloc(pool);
    mp_pool_free(pool, p);
    mp_pool_free(pool, p);
    CHECK("checked: a double free reaches the handler",
          seen == 1 && seen_kind == MP_ERR_DOUBLE_FREE);
    CHECK("checked: with the hosted message, less the address",
          strcmp(seen_message, "mempool: double free in pool \"bare\"") == 0);
    p = mp_pool_alloc(pool);
    p[32] = 'x';
    mp_pool_free(pool, p);
    CHECK("checked: an overflow into the canary is reported",
          seen == 2 && seen_kind == MP_ERR_OVERFLOW);
    (void)mp_pool_alloc(pool);
    mp_pool_destroy(pool);
    CHECK("checked: a leak is reported at destroy", seen == 3 && seen_kind == MP_ERR_LEAK);
    mp_set_error_handler(NULL, NULL);
}

/* A handle pool in a buffer: a live block's handle derefs to it, a freed one's to NULL, even once
 * its slot is reused. */
static void test_handles(void)
{
    mp_pool *pool = pool_in_buffer(16, 0, MP_HANDLES, 0);
    if (!CHECK("handles: created in a buffer", pool != NULL))
        return;
    void *b = mp_pool_alloc(pool);
    mp_handle h = mp_pool_handle(pool, b);
    CHECK("handles: a live block's handle derefs to it", h != 0 && mp_pool_deref(pool, h) == b);
    mp_pool_free(pool, b);
    CHECK("handles: stale once freed", mp_pool_deref(pool, h) == NULL);
    void *again = mp_pool_alloc(pool);
    CHECK("handles: stale after the slot is reused",
          again == b && mp_pool_deref(pool, h) == NULL &&
              mp_pool_deref(pool, mp_pool_handle(pool, again)) == again);
    mp_pool_destroy(pool);
}
#else
/* Checked pools left out of the library (MP_FREESTANDING_CHECKED=0): refused, and no handler is
 * called. */
static void test_checked(void)
{
    mp_set_error_handler(on_error, NULL);
    mp_errno = 0;
    CHECK("checked left out: MP_CHECKED is refused with ENOSYS",
          pool_in_buffer(32, 0, MP_CHECKED, 0) == NULL && mp_errno == ENOSYS);
    mp_errno = 0;
    CHECK("checked left out: with MP_ZERO too",
          pool_in_buffer(32, 0, MP_CHECKED | MP_ZERO, 0) == NULL && mp_errno == ENOSYS);
    mp_errno = 0;
    CHECK("checked left out: MP_HANDLES too (its buffer pools take the general path)",
          pool_in_buffer(32, 0, MP_HANDLES, 0) == NULL && mp_errno == ENOSYS);
    CHECK("checked left out: nothing reported", seen == 0);
    mp_set_error_handler(NULL, NULL);
}
#endif

/* A caller's source: static regions of 64 KiB, each handed out once at a time. */
enum { REGIONS = 3 };
static _Alignas(65536) unsigned char region[REGIONS * 65536];
static bool region_taken[REGIONS];

static int regions_taken(void)
{
    int n = 0;
    for (int i = 0; i < REGIONS; i++)
        n += region_taken[i];
    return n;
}

static void *region_map(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    for (int i = 0; i < REGIONS; i++) {
        if (!region_taken[i] && size <= 65536 && 65536 % align == 0) {
            region_taken[i] = true;
            return region + i * 65536;
        }
    }
    return NULL;
}

static void region_unmap(void *ctx, void *p, size_t size)
{
    (void)ctx, (void)size;
    region_taken[((unsigned char *)p - region) / 65536] = false;
}

static void test_source(void)
{
    mp_source src = {region_map, region_unmap, NULL};
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 100, .source = &src});
    if (!CHECK("source: a pool over the caller's source", pool != NULL))
        return;
    void *p = mp_pool_alloc(pool);
    CHECK("source: its block is in the source's memory",
          (uintptr_t)p >= (uintptr_t)region && (uintptr_t)p < (uintptr_t)(region + sizeof region));
    mp_pool_free(pool, p);
    mp_pool_destroy(pool);
    CHECK("source: everything given back", regions_taken() == 0);
}

static bool count_live(void *block, size_t size, void *ctx)
{
    (void)block, (void)size;
    (*(size_t *)ctx)++;
    return true;
}

/* Allocates n blocks, frees every other one, and visits: true if it saw the n / 2 left. */
static bool visit_half(mp_pool *pool, void **blocks, size_t n, int *held)
{
    size_t got = 0, live = 0;
    while (got < n && (blocks[got] = mp_pool_alloc(pool)) != NULL)
        got++;
    for (size_t i = 0; i < got; i += 2)
        mp_pool_free(pool, blocks[i]);
    *held = regions_taken(); /* the pool's own, before the visit takes its scratch */
    return got == n && mp_pool_visit(pool, count_live, &live) == 0 && live == n / 2;
}

/* mp_pool_visit of pools of more than 4096 blocks, whose scratch bitmap (a bit a block) is more
 * than the stack's: a buffer pool's is in its buffer, a source pool's comes from its source (there
 * is no system), for the call. */
static void test_visit_large(void)
{
    enum { N = 5000 };
    static void *blocks[N];
    int held = 0;
    static _Alignas(16) unsigned char big[MP_POOL_BUFFER_SIZE(8, 8, N)];
    mp_pool *pool = mp_pool_create(
        &(mp_pool_opts){.block_size = 8, .align = 8, .buffer = big, .buffer_size = sizeof big});
    CHECK("visit: a buffer pool of 5000 blocks visits its live ones",
          pool != NULL && visit_half(pool, blocks, N, &held));
    mp_pool_destroy(pool);
    mp_source src = {region_map, region_unmap, NULL};
    pool = mp_pool_create(&(mp_pool_opts){.block_size = 8, .source = &src});
    CHECK("visit: a pool of 5000 blocks over the caller's source visits its live ones",
          pool != NULL && visit_half(pool, blocks, N, &held));
    CHECK("visit: the scratch went back to the source", regions_taken() == held);
    mp_pool_destroy(pool);
    CHECK("visit: everything given back", regions_taken() == 0);
}

static void test_enosys(void)
{
    mp_errno = 0;
    CHECK("enosys: a pool with neither buffer nor source",
          mp_pool_create(&(mp_pool_opts){.block_size = 8}) == NULL && mp_errno == ENOSYS);
    mp_errno = 0;
    CHECK("enosys: a thread-safe pool",
          pool_in_buffer(8, 0, MP_THREAD_SAFE, 0) == NULL && mp_errno == ENOSYS);
    mp_errno = 0;
    CHECK("enosys: a secure pool (no entropy)",
          pool_in_buffer(8, 0, MP_SECURE, 0) == NULL && mp_errno == ENOSYS);
    mp_errno = 0;
    CHECK("enosys: an arena with neither buffer nor source",
          mp_arena_create(NULL) == NULL && mp_errno == ENOSYS);
    mp_errno = 0;
    CHECK("einval stays einval", mp_pool_create(NULL) == NULL && mp_errno == EINVAL);
}

static void test_arena(void)
{
    mp_arena *a = mp_arena_create(
        &(mp_arena_opts){.buffer = buffer, .buffer_size = sizeof buffer, .name = "bare"});
    if (!CHECK("arena: created in a buffer", a != NULL))
        return;
    char *p = mp_arena_alloc(a, 10), *q = mp_arena_alloc(a, 1);
    CHECK("arena: blocks inside the buffer, aligned, in order",
          in_buffer(p, 10) && in_buffer(q, 1) && ((uintptr_t)q & (MP_ARENA_ALIGN - 1)) == 0 &&
              q >= p + 10);
    char *r = mp_arena_alloc_aligned(a, 5, 256);
    CHECK("arena: an aligned allocation", r != NULL && ((uintptr_t)r & 255) == 0);
    mp_arena_pos pos = mp_arena_mark(a);
    char *s = mp_arena_alloc(a, 100);
    CHECK("arena: rewind", mp_arena_rewind(a, pos) == 0 && mp_arena_alloc(a, 100) == s);
    size_t n = 0;
    while (mp_arena_alloc(a, 64) != NULL)
        n++;
    CHECK("arena: full, NULL with ENOMEM", mp_errno == ENOMEM && n > 100 && n < 128);
    struct mp_arena_stats st;
    CHECK("arena: stats as numbers", mp_arena_stats(a, &st) == 0 && st.failed_allocs == 1 &&
                                         st.bytes_used > 7900 &&
                                         st.bytes_reserved == sizeof buffer);
    mp_arena_reset(a);
    CHECK("arena: after reset, the first block again", mp_arena_alloc(a, 10) == p);
    mp_arena_destroy(a);
}

int main(void)
{
    test_pool_fill();
    test_pool_capacity_zero();
    test_checked();
#if !defined(MP_FREESTANDING_CHECKED) || MP_FREESTANDING_CHECKED
    test_handles();
#endif
    test_source();
    test_visit_large();
    test_enosys();
    test_arena();
    return TEST_DONE();
}

/*
 * check.c: how errors are reported, the fill patterns of checked pools, and what AddressSanitizer
 * and Valgrind's memcheck are told about pool blocks.
 *
 * Every user error a checked or secure pool catches goes through mpi_report(), which writes one
 * line (`mempool: double free of 0x... in pool "conns"`) and calls the handler the program
 * installed, or the default, which prints the line and aborts. The checks themselves live with the
 * data they read (pool.c); this file keeps what they share. Invariant for the tools: a free block
 * is inaccessible to the tools except while the library itself opens it (mpi_tool_open/close), so
 * any access by the program to a free block is reported.
 */
#include "internal.h"

#include <stdatomic.h>
#include <string.h>
#if !MP_FREESTANDING
#include <stdio.h> /* snprintf */
#endif

#if MP_ASAN
#include <sanitizer/asan_interface.h>
#endif
#if MP_VALGRIND
#include <valgrind/memcheck.h>
#endif

static void tool_alloc(const mp_pool *pool, void *block); /* the tools' side, below */

/* ================================================================================================
 * Error reports
 * ============================================================================================== */

static _Atomic(mp_error_fn *) error_handler;
static _Atomic(void *) error_ctx;

void mp_set_error_handler(mp_error_fn *handler, void *ctx)
{
    atomic_store(&error_ctx, ctx);
    atomic_store(&error_handler, handler);
}

const char *mp_error_name(mp_error_kind kind)
{
    switch (kind) {
    case MP_ERR_DOUBLE_FREE:
        return "double free";
    case MP_ERR_INVALID_FREE:
        return "invalid free";
    case MP_ERR_WRITE_AFTER_FREE:
        return "write after free";
    case MP_ERR_OVERFLOW:
        return "overflow";
    case MP_ERR_LEAK:
        return "leak";
    case MP_ERR_CORRUPT_FREE_LIST:
        return "corrupted free list";
    }
    return "unknown";
}

#if !MP_FREESTANDING
void mpi_assert_fail(const char *cond, const char *file, int line)
{
    char line_text[1024]; /* a stringified condition and a path: far less in practice */
    snprintf(line_text, sizeof line_text, "mempool: internal assertion failed: %s (%s:%d)", cond,
             file, line);
    mpi_os_error_line(line_text);
    mpi_os_abort();
}

static void default_handler(const mp_error *error)
{
    mpi_os_error_line(error->message);
    mpi_os_abort();
}

static void report_format(char *message, size_t size, mp_error_kind kind, const char *name,
                          const void *addr, uint64_t count, const char *detail)
{
    if (kind == MP_ERR_LEAK)
        snprintf(message, size, "mempool: %llu block%s leaked in pool \"%s\"%s",
                 (unsigned long long)count, count == 1 ? "" : "s", name, detail ? detail : "");
    else
        snprintf(message, size, "mempool: %s of %p in pool \"%s\"%s", mp_error_name(kind), addr,
                 name, detail ? detail : "");
}
#else
/* Bare metal: no stream to print to and no abort(); a trap stops the program where it is. */
void mpi_assert_fail(const char *cond, const char *file, int line)
{
    (void)cond, (void)file, (void)line;
    __builtin_trap();
}

static void default_handler(const mp_error *error)
{
    (void)error;
    __builtin_trap();
}

/* Appends the string s at *at, keeping one byte of message[size] for the NUL. */
static void report_append(char *message, size_t size, size_t *at, const char *s)
{
    while (*s != '\0' && *at + 1 < size)
        message[(*at)++] = *s++;
    message[*at] = '\0';
}

/* The hosted message without its numbers (no printf here): the address and the count are in the
 * mp_error the handler gets. */
static void report_format(char *message, size_t size, mp_error_kind kind, const char *name,
                          const void *addr, uint64_t count, const char *detail)
{
    (void)addr, (void)count;
    size_t at = 0;
    const char *parts[] = {"mempool: ", mp_error_name(kind), " in pool \"", name,
                           "\"",        detail ? detail : ""};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        report_append(message, size, &at, parts[i]);
}
#endif

void mpi_report(mp_error_kind kind, const mp_pool *pool, const void *addr, const void *site,
                uint64_t count, const char *detail)
{
    mpi_report_as(kind, pool != NULL ? pool->name : "", pool, addr, site, count, detail);
}

void mpi_report_as(mp_error_kind kind, const char *name, const mp_pool *pool, const void *addr,
                   const void *site, uint64_t count, const char *detail)
{
    char message[512];
    report_format(message, sizeof message, kind, name, addr, count, detail);
    mp_error error = {kind, pool, name, addr, site, count, message};
    mp_error_fn *handler = atomic_load(&error_handler);
    if (handler == NULL)
        default_handler(&error);
    else
        handler(&error, atomic_load(&error_ctx));
}

/* ================================================================================================
 * Fill patterns of checked pools
 * ============================================================================================== */

/* The user part of a free block after its link: [sizeof(void *), block_size). */
static size_t fill_len(const mp_pool *pool)
{
    return pool->block_size > sizeof(void *) ? pool->block_size - sizeof(void *) : 0;
}

static void fill_freed(const mp_pool *pool, void *block)
{
    memset((char *)block + sizeof(void *), MP_FILL_FREED, fill_len(pool));
}

static bool bytes_are(const unsigned char *p, size_t n, unsigned char value)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != value)
            return false;
    }
    return true;
}

static bool fill_is_intact(const mp_pool *pool, const void *block)
{
    return bytes_are((const unsigned char *)block + sizeof(void *), fill_len(pool), MP_FILL_FREED);
}

/* The canary runs from the end of the user part to the site word. */
static void canary_set(const mp_pool *pool, void *block)
{
    memset((char *)block + pool->block_size, MP_FILL_CANARY, pool->site_off - pool->block_size);
}

static bool canary_is_intact(const mp_pool *pool, const void *block)
{
    return bytes_are((const unsigned char *)block + pool->block_size,
                     pool->site_off - pool->block_size, MP_FILL_CANARY);
}

/* ================================================================================================
 * The checks around alloc, free and destroy
 * ============================================================================================== */

static const void *site_get(const mp_pool *pool, const void *block)
{
    const void *site;
    memcpy(&site, (const char *)block + pool->site_off, sizeof site);
    return site;
}

void mpi_check_alloc(mp_pool *pool, void *block, bool fresh, const void *site)
{
    if ((pool->checks & MPI_CHECK_FILL) != 0) {
        /* A block whose link was overwritten was reported as the pop read it; a write that also
         * reached its fill is that same write, reported once (as mpi_check_freed() does). */
        bool verify = !fresh && mpi_pool_link_is_intact(pool, block);
        mpi_tool_open(pool, block, pool->stride);
        if (verify && !fill_is_intact(pool, block))
            mpi_report(MP_ERR_WRITE_AFTER_FREE, pool, block, NULL, 1, NULL);
        canary_set(pool, block);
        memcpy((char *)block + pool->site_off, &site, sizeof site);
    }
    if ((pool->checks & MPI_CHECK_STATE) != 0 && fresh) { /* a popped block's bit is clear */
        mpi_slot s;
        bool found = mpi_pool_find_slot(pool, block, &s);
        mp_assert(found);
        if (found)
            mpi_slot_set_free(&s, false);
    }
    if ((pool->checks & MPI_CHECK_TOOLS) != 0)
        tool_alloc(pool, block);
}

/* Three steps: is it a block this pool handed out; is it live (not free already); is its guard
 * intact. Then the freed fill goes in, and the free bit is set. */
bool mpi_check_free(mp_pool *pool, void *block)
{
    mpi_slot s;
    if (!mpi_pool_free_is_valid(pool, block, &s))
        return false;
    if ((pool->checks & MPI_CHECK_FILL) != 0) {
        mpi_tool_open(pool, block, pool->stride);
        if (!canary_is_intact(pool, block))
            mpi_report(MP_ERR_OVERFLOW, pool, block, site_get(pool, block), 1, NULL);
        fill_freed(pool, block);
    }
    mpi_slot_set_free(&s, true);
    return true;
}

/* Appends " 0x... (allocated at 0x...)" for the n-th leaked block to the leak message, or ", ..."
 * for the first one past MP_LEAKS_LISTED (hosted only: bare metal has no printf, and its message
 * names no addresses). */
static void leak_note(char *detail, size_t size, uint64_t n, const void *block, const void *site)
{
#if !MP_FREESTANDING
    if (n > MP_LEAKS_LISTED + 1)
        return; /* the list ended with ", ..." */
    size_t used = strlen(detail);
    if (n <= MP_LEAKS_LISTED && used + 1 < size)
        snprintf(detail + used, size - used, "%s %p (allocated at %p)", used == 0 ? ":" : ",",
                 block, site);
    else if (n == MP_LEAKS_LISTED + 1 && used + 5 < size)
        memcpy(detail + used, ", ...", sizeof ", ...");
#else
    (void)detail, (void)size, (void)n, (void)block, (void)site;
#endif
}

bool mpi_check_freed(const mp_pool *pool, void *block)
{
    mpi_tool_open(pool, block, pool->stride);
    bool link = mpi_pool_link_is_intact(pool, block);
    bool fill = link && fill_is_intact(pool, block);
    mpi_tool_close(pool, block, pool->stride);
    if (!link)
        mpi_pool_link_bad(pool, block);
    else if (!fill)
        mpi_report(MP_ERR_WRITE_AFTER_FREE, pool, block, NULL, 1, NULL);
    return link && fill;
}

/* Verifies a free block at destroy (write after free); goes on whatever it finds. */
static bool destroy_free_block(void *block, size_t size, void *ctx)
{
    (void)size;
    (void)mpi_check_freed(ctx, block);
    return true;
}

/* A leak report in the making: each live block a checked pool's destroy visits. */
typedef struct leak_list {
    const mp_pool *pool;
    uint64_t n;
    const void *first, *first_site;
    char detail[384];
} leak_list;

/* Verifies a live block's canary and adds it to the report (the first MP_LEAKS_LISTED named). */
static bool destroy_live_block(void *block, size_t size, void *ctx)
{
    leak_list *l = ctx;
    (void)size;
    mpi_tool_open(l->pool, block, l->pool->stride);
    const void *site = site_get(l->pool, block);
    if (!canary_is_intact(l->pool, block))
        mpi_report(MP_ERR_OVERFLOW, l->pool, block, site, 1, NULL);
    if (l->n++ == 0) {
        l->first = block;
        l->first_site = site;
    }
    leak_note(l->detail, sizeof l->detail, l->n, block, site);
    return true;
}

/* The free blocks first (written after free?), then the live ones: the leaks, found as
 * mp_pool_visit() finds live blocks. */
void mpi_check_destroy(mp_pool *pool)
{
    leak_list l = {.pool = pool};
    (void)mpi_pool_each_slot(pool, true, destroy_free_block, pool);
    (void)mpi_pool_each_slot(pool, false, destroy_live_block, &l);
    if (l.n != 0)
        mpi_report(MP_ERR_LEAK, pool, l.first, l.first_site, l.n, l.detail);
}

/* ================================================================================================
 * AddressSanitizer and Valgrind
 * ============================================================================================== */

unsigned mpi_tool_checks(void)
{
    unsigned checks = 0;
    if (MP_ASAN)
        checks |= MPI_CHECK_ASAN;
#if MP_VALGRIND
    if (RUNNING_ON_VALGRIND)
        checks |= MPI_CHECK_VALGRIND;
#endif
    return checks;
}

void mpi_tool_open(const mp_pool *pool, const void *p, size_t n)
{
    (void)pool, (void)p, (void)n;
#if MP_ASAN
    if (pool->checks & MPI_CHECK_ASAN)
        ASAN_UNPOISON_MEMORY_REGION(p, n);
#endif
#if MP_VALGRIND
    if (pool->checks & MPI_CHECK_VALGRIND)
        VALGRIND_MAKE_MEM_DEFINED(p, n);
#endif
}

void mpi_tool_close(const mp_pool *pool, const void *p, size_t n)
{
    (void)pool, (void)p, (void)n;
#if MP_ASAN
    if (pool->checks & MPI_CHECK_ASAN)
        ASAN_POISON_MEMORY_REGION(p, n);
#endif
#if MP_VALGRIND
    if (pool->checks & MPI_CHECK_VALGRIND)
        VALGRIND_MAKE_MEM_NOACCESS(p, n);
#endif
}

/* The block becomes the user's: block_size bytes accessible (to memcheck: undefined until written).
 * */
static void tool_alloc(const mp_pool *pool, void *block)
{
    (void)pool, (void)block;
#if MP_ASAN
    if (pool->checks & MPI_CHECK_ASAN) {
        ASAN_POISON_MEMORY_REGION(block, pool->stride);
        ASAN_UNPOISON_MEMORY_REGION(block, pool->block_size);
    }
#endif
#if MP_VALGRIND
    if (pool->checks & MPI_CHECK_VALGRIND) {
        VALGRIND_MAKE_MEM_NOACCESS(block, pool->stride);
        VALGRIND_MALLOCLIKE_BLOCK(block, pool->block_size, 0, 0);
    }
#endif
}

/* The block is the pool's again: its whole slot inaccessible. */
void mpi_tool_free(const mp_pool *pool, void *block)
{
    (void)pool, (void)block;
#if MP_ASAN
    if (pool->checks & MPI_CHECK_ASAN)
        ASAN_POISON_MEMORY_REGION(block, pool->stride);
#endif
#if MP_VALGRIND
    if (pool->checks & MPI_CHECK_VALGRIND) {
        VALGRIND_FREELIKE_BLOCK(block, 0);
        VALGRIND_MAKE_MEM_NOACCESS(block, pool->stride);
    }
#endif
}

/*
 * Memcheck is told of blocks as malloc-like blocks (VALGRIND_MALLOCLIKE_BLOCK), which its leak
 * check covers, rather than as mempool chunks, which it does not report as leaks. So when a reset
 * or a destroy frees the live blocks at once, memcheck must be told of each (O(blocks carved),
 * under Valgrind only): the live ones are the carved slots whose free bit is clear.
 */
#if MP_VALGRIND
static bool tool_forget_block(void *block, size_t size, void *ctx)
{
    (void)size;
    (void)ctx;
    VALGRIND_FREELIKE_BLOCK(block, 0);
    return true;
}
#endif

void mpi_tool_forget_live(const mp_pool *pool)
{
    (void)pool;
#if MP_VALGRIND
    if ((pool->checks & MPI_CHECK_VALGRIND) != 0)
        (void)mpi_pool_each_slot(pool, false, tool_forget_block, NULL);
#endif
}

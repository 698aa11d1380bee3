/*
 * pool.c: fixed-size pools, the core of mempool.
 *
 * A pool hands out blocks of one stride from two places: the free list of blocks given back (LIFO,
 * linked through each free block's first word, as in the original design) and, when that is empty,
 * the never-used space at the carving cursor (a bump pointer). Creation takes no chunk and touches
 * no block; the first alloc takes a run of chunks from the source, and each chunk's header is
 * written only when carving reaches it. So memory is committed as the pool's peak grows and no
 * sooner.
 *
 * The fast path (pop/push on fast.free and a count; with an empty list, a bump of fast.bump, not
 * counted) is inline in mempool.h; this file holds the slow paths and everything else, and counts
 * what the inline bump carved (pool_fold_carves) before it reads a count. Layout and invariants:
 * internal.h (struct mpi_run, struct mp_pool) and docs/design.md. The invariant that makes exact
 * statistics free: the pool carves only when its free list is empty, inline or not, so the peak of
 * blocks in use is the number of blocks carved (see mpi_pool_peak()).
 */
#include "internal.h"

#include <errno.h>
#include <stdalign.h>
#include <string.h>

static_assert(sizeof(mpi_run) <= MP_CHUNK_HEADER, "a run header must fit in a chunk header");
static_assert(offsetof(struct mp_pool, fast) == 0,
              "the inline fast path reads the pool as its head");
static_assert((MP_CHUNK_SIZE & (MP_CHUNK_SIZE - 1)) == 0, "MP_CHUNK_SIZE must be a power of two");
/* A buffer pool's header (mempool.h, MP_POOL_BUFFER_SIZE): the struct fits in the bytes the macro
 * counts, and a buffer aligned as it assumes needs no padding before the struct. */
static_assert(sizeof(mp_pool) <= MP_POOL_HEADER_BYTES && alignof(mp_pool) <= alignof(max_align_t),
              "struct mp_pool outgrew MP_POOL_HEADER_BYTES");

/* The layouts the inline fast path compiles into programs, as of MP_ABI_VERSION (mempool.h,
 * "Internals"). Changing one breaks programs built against the old header: bump MP_ABI_VERSION (the
 * soname) and record the new layout here. Each field is checked, at its offset for any data model.
 * */
#define ABI_U64_AFTER_PTR                                                                          \
    ((sizeof(void *) + alignof(uint64_t) - 1) / alignof(uint64_t) * alignof(uint64_t))
#define ABI_PTR_AFTER_U32(off) (((off) + 4 + sizeof(void *) - 1) / sizeof(void *) * sizeof(void *))
#if MP_ABI_VERSION == 5
/* 5: hfree and hmask after stride, then hgens, hbase, hlen, and recip (every pool's, was hrecip),
 * and a block on hfree keeps its generation's index after its link; 4 had hfree, hmask, hrecip
 * after hlen, and struct mp_chunk_fast (the inline handle path); 3 ended at hlen, with hbits after
 * tsoff and hgens, hbase, hlen after stride (mp_pool_deref); 2 ended at stride; 1 at tsoff. */
static_assert(MP_FAST_SLOW == 1 && offsetof(struct mp_pool_fast, free) == 0 &&
                  offsetof(struct mp_pool_fast, allocs) == ABI_U64_AFTER_PTR &&
                  sizeof(((struct mp_pool_fast *)0)->allocs) == 8 &&
                  offsetof(struct mp_pool_fast, tsoff) == ABI_U64_AFTER_PTR + 8 &&
                  sizeof(((struct mp_pool_fast *)0)->tsoff) == 4 &&
                  offsetof(struct mp_pool_fast, hbits) == ABI_U64_AFTER_PTR + 12 &&
                  sizeof(((struct mp_pool_fast *)0)->hbits) == 4 &&
                  offsetof(struct mp_pool_fast, bump) ==
                      ABI_PTR_AFTER_U32(ABI_U64_AFTER_PTR + 12) &&
                  offsetof(struct mp_pool_fast, end) ==
                      offsetof(struct mp_pool_fast, bump) + sizeof(void *) &&
                  offsetof(struct mp_pool_fast, stride) ==
                      offsetof(struct mp_pool_fast, end) + sizeof(void *) &&
                  offsetof(struct mp_pool_fast, hfree) ==
                      offsetof(struct mp_pool_fast, stride) + sizeof(size_t) &&
                  offsetof(struct mp_pool_fast, hmask) ==
                      offsetof(struct mp_pool_fast, hfree) + sizeof(void *) &&
                  offsetof(struct mp_pool_fast, hgens) ==
                      offsetof(struct mp_pool_fast, hmask) + sizeof(uintptr_t) &&
                  offsetof(struct mp_pool_fast, hbase) ==
                      offsetof(struct mp_pool_fast, hgens) + sizeof(void *) &&
                  offsetof(struct mp_pool_fast, hlen) ==
                      offsetof(struct mp_pool_fast, hbase) + sizeof(void *) &&
                  sizeof(((struct mp_pool_fast *)0)->hlen) == 4 &&
                  offsetof(struct mp_pool_fast, recip) ==
                      (offsetof(struct mp_pool_fast, hlen) + 4 + alignof(uint64_t) - 1) /
                          alignof(uint64_t) * alignof(uint64_t) &&
                  sizeof(((struct mp_pool_fast *)0)->recip) == 8,
              "struct mp_pool_fast changed: bump MP_ABI_VERSION");
static_assert(offsetof(struct mp_chunk_fast, hbias) == 2 * sizeof(void *) &&
                  sizeof(((struct mp_chunk_fast *)0)->hbias) == sizeof(uintptr_t) &&
                  offsetof(mpi_chunk, hbias) == offsetof(struct mp_chunk_fast, hbias),
              "struct mp_chunk_fast changed: bump MP_ABI_VERSION");
static_assert(offsetof(struct mp_tcache_fast, free) == 0 &&
                  offsetof(struct mp_tcache_fast, pops) == ABI_U64_AFTER_PTR &&
                  offsetof(struct mp_tcache_fast, pushes) == ABI_U64_AFTER_PTR + 8 &&
                  offsetof(struct mp_tcache_fast, stop) == ABI_U64_AFTER_PTR + 16,
              "struct mp_tcache_fast changed: bump MP_ABI_VERSION");
static_assert(offsetof(struct mp_arena_fast, bump) == 0 &&
                  offsetof(struct mp_arena_fast, end) == sizeof(uintptr_t) &&
                  offsetof(struct mp_arena_fast, allocs) ==
                      (2 * sizeof(uintptr_t) + alignof(uint64_t) - 1) / alignof(uint64_t) *
                          alignof(uint64_t) &&
                  sizeof(((struct mp_arena_fast *)0)->allocs) == 8,
              "struct mp_arena_fast changed: bump MP_ABI_VERSION");
#else
#error "record the layouts of this MP_ABI_VERSION above"
#endif

/* Flags this version implements. */
#define POOL_KNOWN_FLAGS                                                                           \
    ((unsigned)(MP_ZERO | MP_CHECKED | MP_SECURE | MP_THREAD_SAFE | MP_HANDLES))

/* Bare metal without checked pools (config.h) has plain and MP_ZERO pools only: no threads, no
 * secure or checked pool, no tool. The constant lets the compiler leave the other paths out. */
#define POOL_LEAN_ONLY (MP_FREESTANDING && !MPI_CHECKS_BUILT)
/* Pools of these flags have handles; never in the lean build, which refuses MP_HANDLES, so the
 * compiler leaves the handle code out there. */
#define POOL_HANDLES(flags) (!POOL_LEAN_ONLY && ((flags)&MP_HANDLES) != 0)
static_assert(POOL_KNOWN_FLAGS == (MP_ZERO | MP_CHECKED | MP_SECURE | MP_THREAD_SAFE | MP_HANDLES),
              "POOL_LEAN_ONLY knows these flags: route or refuse a new flag's pools in it");

/* A value of mpi_run.scratch that no count reaches: trim marks runs to give back with it. */
#define RUN_RELEASE UINT64_MAX

/* ================================================================================================
 * Helpers
 * ============================================================================================== */

/* Where the free list lives: fast.free for a plain pool, fast.hfree for a handle pool with an
 * inline path (fast.hmask set), `list` for any other slow one (see struct mp_pool). */
static bool pool_is_slow(const mp_pool *pool)
{
    return (uintptr_t)pool->fast.free == MP_FAST_SLOW;
}

static void *const *pool_head_where(const mp_pool *pool)
{
    if (!pool_is_slow(pool))
        return &pool->fast.free;
    return !POOL_LEAN_ONLY && pool->fast.hmask != 0 ? &pool->fast.hfree : &pool->list;
}

static void **pool_head(mp_pool *pool)
{
    return (void **)pool_head_where(pool);
}

static void *const *pool_head_const(const mp_pool *pool)
{
    return pool_head_where(pool);
}

/* The run holding a block of a pool that takes chunks from a source: mask to the chunk header. */
static mpi_run *pool_run_of(const mp_pool *pool, const void *block)
{
    uintptr_t chunk = mpi_chunk_of(block, pool->chunk_size);
    return ((const mpi_chunk *)chunk)->run;
}

/*
 * x / stride, with the remainder in *rem. By Lemire's multiply-shift when x fits in 32 bits
 * (Lemire, Kaser, Kurz, "Faster Remainder by Direct Computation", 2019: with M = 2^64 / d rounded
 * up, x / d == (M * x) >> 64 for every 32-bit x and d), else by a division, several times slower.
 * x is an address difference (in a chunk or a run): a 32-bit target divides in 32 bits, with no
 * 64-bit division from libgcc.
 */
static uint64_t stride_div(const mp_pool *pool, uintptr_t x, uint64_t *rem)
{
    uint64_t q;
#ifdef __SIZEOF_INT128__
    if (x <= UINT32_MAX && pool->fast.recip != 0)
        q = (uint64_t)(((mpi_u128)pool->fast.recip * x) >> 64);
    else
#else /* a 32-bit target: one divide instruction, not a 64-bit division's loop in libgcc */
    if (x <= UINT32_MAX && pool->stride <= UINT32_MAX)
        q = (uint32_t)x / (uint32_t)pool->stride;
    else
#endif
        q = x / pool->stride;
    *rem = x - q * pool->stride;
    return q;
}

/* The free bitmap of the chunk at `chunk`, in a pool from a source. */
static MP_ALWAYS_INLINE unsigned char *chunk_bits(const mp_pool *pool, uintptr_t chunk)
{
    return (unsigned char *)chunk + pool->bitmap_off;
}

/* Fills in the free bit of slot `in_chunk` of the chunk at `chunk` (MPI_CHECK_STATE pools). The
 * *_as functions take the pool's checks as an argument, so that the lean path (below), which passes
 * a constant, is compiled without the tests it never needs. */
static MP_ALWAYS_INLINE void slot_locate_bit(const mp_pool *pool, mpi_slot *s, uintptr_t chunk,
                                             uint64_t in_chunk, unsigned checks)
{
    if ((checks & MPI_CHECK_STATE) == 0) {
        s->byte = NULL;
        s->bit = 0;
        return;
    }
    unsigned char *bits =
        (pool->state & MPI_IN_BUFFER) != 0 ? pool->buffer_bitmap : chunk_bits(pool, chunk);
    s->byte = bits + in_chunk / 8;
    s->bit = (unsigned char)(1u << (in_chunk % 8));
}

/* The address of chunk i of a run. */
static uintptr_t run_chunk(const mpi_run *run, uint64_t i)
{
    return (uintptr_t)run->base + (uintptr_t)i * run->span;
}

/*
 * If p is the start of a block slot of `run`, describes the slot in *s and returns true. Pure
 * arithmetic on the address, with no division: never dereferences p. Chunks of a run from the
 * source are chunk_size apart (a power of two); a buffer pool's run is one chunk.
 */
static MP_ALWAYS_INLINE bool run_block_index(const mp_pool *pool, const mpi_run *run, const void *p,
                                             mpi_slot *s, unsigned checks)
{
    uintptr_t a = (uintptr_t)p, base = (uintptr_t)run->base;
    if (a < base || a - base >= (uintptr_t)run->nchunks * run->span)
        return false;
    uintptr_t off = a - base, chunk = 0, in = off;
    if (run->nchunks > 1) {
        chunk = off >> pool->chunk_shift;
        in = off & (pool->chunk_size - 1);
    }
    uint64_t rem, slot;
    if (in < run->first_off)
        return false;
    slot = stride_div(pool, in - run->first_off, &rem);
    if (rem != 0 || slot >= run->per_chunk)
        return false;
    s->run = run;
    s->k = (uint64_t)chunk * run->per_chunk + slot;
    slot_locate_bit(pool, s, run_chunk(run, chunk), slot, checks);
    return true;
}

/* Newest run first: runs double in size, so the newest holds about half the blocks. O(runs). */
static MP_ALWAYS_INLINE bool pool_find_slot_as(const mp_pool *pool, const void *p, mpi_slot *s,
                                               unsigned checks)
{
    for (const mpi_run *run = pool->last; run != NULL; run = run->prev) {
        if (run_block_index(pool, run, p, s, checks))
            return true;
    }
    return false;
}

static bool pool_find_slot(const mp_pool *pool, const void *p, mpi_slot *s)
{
    return pool_find_slot_as(pool, p, s, pool->checks);
}

bool mpi_pool_find_slot(const mp_pool *pool, const void *p, mpi_slot *s)
{
    return pool_find_slot(pool, p, s);
}

/* The first two checks of a free in a pool with free bits: the block is a carved slot of the pool
 * (else an invalid free) whose bit is clear (else a double free). Reports and returns false when
 * the free must not be done; *s is the block's slot. */
static MP_ALWAYS_INLINE bool slot_free_is_valid(mp_pool *pool, void *block, mpi_slot *s,
                                                unsigned checks)
{
    if (MP_UNLIKELY(!pool_find_slot_as(pool, block, s, checks) || s->k >= s->run->carved)) {
        mpi_report(MP_ERR_INVALID_FREE, pool, block, NULL, 1, NULL);
        return false;
    }
    if (MP_UNLIKELY(mpi_slot_is_free(s))) {
        mpi_report(MP_ERR_DOUBLE_FREE, pool, block, NULL, 1, NULL);
        return false;
    }
    return true;
}

bool mpi_pool_free_is_valid(mp_pool *pool, void *block, mpi_slot *s)
{
    return slot_free_is_valid(pool, block, s, pool->checks);
}

/* The free bit of a block known to be a slot of the pool (one that was checked on its way onto the
 * free list): by masking to its chunk, with no run walk, in a pool from a source; s->run and s->k
 * are left unset there. False only if the block was no slot after all (a bug of ours). */
static MP_ALWAYS_INLINE bool pool_own_slot_bit(const mp_pool *pool, const void *block, mpi_slot *s,
                                               unsigned checks)
{
    if ((pool->state & MPI_IN_BUFFER) != 0)
        return pool_find_slot_as(pool, block, s, checks);
    uintptr_t chunk = mpi_chunk_of(block, pool->chunk_size);
    uint64_t rem, slot = stride_div(pool, (uintptr_t)block - chunk - pool->first_off, &rem);
    mp_assert(rem == 0 && slot < pool->per_chunk);
    slot_locate_bit(pool, s, chunk, slot, checks);
    return true;
}

mpi_slot mpi_pool_slot_of(const mp_pool *pool, const mpi_run *run, uint64_t k)
{
    mpi_slot s = {run, k, NULL, 0};
    slot_locate_bit(pool, &s, run_chunk(run, k / run->per_chunk), k % run->per_chunk, pool->checks);
    return s;
}

void *mpi_pool_slot(const mp_pool *pool, const mpi_run *run, uint64_t k)
{
    return run->base + (k / run->per_chunk) * run->span + run->first_off +
           (k % run->per_chunk) * pool->stride;
}

/* A handle pool's block's generation (mempool.h, struct mp_pool_fast): masking to the chunk's
 * header for its hbias (internal.h), plus the block's offset in the chunk divided by the stride. */
static MP_ALWAYS_INLINE uint32_t *block_gen(const mp_pool *pool, const void *block)
{
    uint64_t rem;
    if (MP_UNLIKELY((pool->state & MPI_IN_BUFFER) != 0))
        return (uint32_t *)pool->fast.hgens + 1 +
               stride_div(pool, (uintptr_t)block - (uintptr_t)pool->buffer_run.base, &rem);
    uintptr_t chunk = mpi_chunk_of(block, pool->chunk_size);
    return (uint32_t *)pool->fast.hgens +
           (uintptr_t)(((const mpi_chunk *)chunk)->hbias +
                       (uintptr_t)stride_div(pool, (uintptr_t)block - chunk, &rem));
}

/* The same, on the HANDLES path, whose geometry pool_select_path() made sure of (chunks from a
 * source no larger than 2^32 bytes, a stride with a reciprocal): the inline path's. */
static MP_ALWAYS_INLINE uintptr_t block_index_lean(const mp_pool *pool, const void *block)
{
    return mpi_pool_hindex_of(&pool->fast, mpi_chunk_of(block, pool->chunk_size), block);
}

static MP_ALWAYS_INLINE uint32_t *block_gen_lean(const mp_pool *pool, const void *block)
{
    return (uint32_t *)pool->fast.hgens + block_index_lean(pool, block);
}

/* A block becomes live or free: its generation moves on to odd or to even. An atomic store, as
 * derefs read it from other threads in a thread-safe pool (relaxed: mempool.h says what a racing
 * deref sees); only the pool's calls write it (a thread-safe pool's under its lock). */
static MP_ALWAYS_INLINE void gen_advance(const mp_pool *pool, const void *block, bool lean)
{
    uint32_t *gen = lean ? block_gen_lean(pool, block) : block_gen(pool, block);
    MP_STORE_RELAXED(*gen, *gen + 1);
}

/* ------------------------------------------------------------------------------------------------
 * Free-list links. A plain pool stores the next block's address as it is (the inline fast path
 * reads it); a checked or secure pool stores it encoded with its secret and the link's own address
 * (glibc's safe-linking, with mimalloc's per-heap key), so a pointer planted in a free block
 * decodes to garbage and is caught where the list is walked.
 *
 * A checked pool keeps a copy of each free block's link in the block's site word (the trailer,
 * internal.h), encoded with that word's address. The link word is the user's first word, where a
 * write after free is most likely; the copy lies beyond the user part and the canary, so a write to
 * the link word (a whole word or one byte) makes the two disagree, even where the new value still
 * decodes to a free block. A block of 8 bytes or less is nothing but its link word while free.
 * ---------------------------------------------------------------------------------------------- */

static uintptr_t link_mask(const mp_pool *pool, const void *at)
{
    return pool->key ^ ((uintptr_t)at * (uintptr_t)0x9E3779B97F4A7C15u);
}

/* The word at `at` (in a free block), opened to the tools for the instant it is read or written. */
static MP_ALWAYS_INLINE uintptr_t word_get_as(const mp_pool *pool, const void *at, unsigned checks)
{
    uintptr_t v;
    if ((checks & MPI_CHECK_TOOLS) != 0)
        mpi_tool_open(pool, at, sizeof v);
    memcpy(&v, at, sizeof v);
    if ((checks & MPI_CHECK_TOOLS) != 0)
        mpi_tool_close(pool, at, sizeof v);
    return v;
}

static MP_ALWAYS_INLINE void word_set_as(const mp_pool *pool, void *at, uintptr_t v,
                                         unsigned checks)
{
    if ((checks & MPI_CHECK_TOOLS) != 0)
        mpi_tool_open(pool, at, sizeof v);
    memcpy(at, &v, sizeof v);
    if ((checks & MPI_CHECK_TOOLS) != 0)
        mpi_tool_close(pool, at, sizeof v);
}

static MP_ALWAYS_INLINE void *link_get_as(const mp_pool *pool, void *block, unsigned checks)
{
    uintptr_t v = word_get_as(pool, block, checks);
    return (void *)(!POOL_LEAN_ONLY && pool->key != 0 ? v ^ link_mask(pool, block) : v);
}

static MP_ALWAYS_INLINE void link_set_as(const mp_pool *pool, void *block, void *next,
                                         unsigned checks)
{
    uintptr_t v = (uintptr_t)next;
    word_set_as(pool, block, !POOL_LEAN_ONLY && pool->key != 0 ? v ^ link_mask(pool, block) : v,
                checks);
    if ((checks & MPI_CHECK_FILL) != 0) {
        char *copy = (char *)block + pool->site_off;
        word_set_as(pool, copy, v ^ link_mask(pool, copy), checks);
    }
}

static void link_set(const mp_pool *pool, void *block, void *next)
{
    link_set_as(pool, block, next, pool->checks);
}

/* A checked pool's free block: does its link word agree with the copy (next, decoded)? */
static MP_ALWAYS_INLINE bool link_copy_agrees(const mp_pool *pool, const void *block,
                                              const void *next, unsigned checks)
{
    const char *copy = (const char *)block + pool->site_off;
    return (word_get_as(pool, copy, checks) ^ link_mask(pool, copy)) == (uintptr_t)next;
}

bool mpi_pool_link_is_intact(const mp_pool *pool, void *block)
{
    return link_copy_agrees(pool, block, link_get_as(pool, block, pool->checks), pool->checks);
}

/* A link found bad, reported about the block holding it: a write after free in a checked pool (the
 * program's stray write is the likely cause), else a corrupted free list; the same words wherever
 * it is found. */
MP_NOINLINE void mpi_pool_link_bad(const mp_pool *pool, const void *block)
{
    if ((pool->checks & MPI_CHECK_FILL) != 0)
        mpi_report(MP_ERR_WRITE_AFTER_FREE, pool, block, NULL, 1, " (its link was overwritten)");
    else
        mpi_report(MP_ERR_CORRUPT_FREE_LIST, pool, block, NULL, 1, NULL);
}

/*
 * The one way to step along a free list: *next = the link of free block `block`, decoded. A pool
 * with free bits (checked, secure; every pool under a tool) validates it first: NULL or a carved
 * slot of the pool whose free bit is set, and in a checked pool the link word agrees with its
 * copy. A link that fails is reported and false returned; the caller stops there, so a corrupted
 * list is never followed. A plain pool follows it unchecked (undefined, mempool.h).
 */
static MP_ALWAYS_INLINE bool list_next_as(const mp_pool *pool, void *block, void **next,
                                          unsigned checks)
{
    *next = link_get_as(pool, block, checks);
    if ((checks & MPI_CHECK_STATE) == 0)
        return true;
    mpi_slot s;
    bool copy_ok = (checks & MPI_CHECK_FILL) == 0 || link_copy_agrees(pool, block, *next, checks);
    if (MP_LIKELY(copy_ok && (*next == NULL || (pool_find_slot_as(pool, *next, &s, checks) &&
                                                s.k < s.run->carved && mpi_slot_is_free(&s)))))
        return true;
    mpi_pool_link_bad(pool, block);
    return false;
}

/*
 * A walk along the free list (free_len, trim, the validator), each step by list_next_as(). It stops
 * at the list's end, at a bad link (reported; `bad` set), or after more steps than blocks carved (a
 * cycle, `bad` set; reported in a pool with free bits, where it can only come of a corrupted link).
 * `n` counts the blocks visited, `at` among them. Use:
 *     for (walk_start(pool, &w); w.at != NULL; walk_next(pool, &w)) ... w.at ...
 */
typedef struct list_walk {
    void *at; /* the block the walk is at; NULL when it has stopped */
    uint64_t n;
    bool bad;
} list_walk;

static void walk_start(const mp_pool *pool, list_walk *w)
{
    w->at = *pool_head_const(pool);
    w->n = w->at != NULL;
    w->bad = false;
}

static void walk_next(const mp_pool *pool, list_walk *w)
{
    void *next;
    if (!list_next_as(pool, w->at, &next, pool->checks)) {
        next = NULL;
        w->bad = true;
    } else if (next != NULL && ++w->n > pool->carved) {
        if ((pool->checks & MPI_CHECK_STATE) != 0)
            mpi_pool_link_bad(pool, w->at);
        next = NULL;
        w->bad = true;
    }
    w->at = next;
}

/* The free list's head; a pool with free bits is always a slow one (see struct mp_pool). */
static MP_ALWAYS_INLINE void **pool_head_as(mp_pool *pool, unsigned checks)
{
    return (checks & MPI_CHECK_STATE) != 0 ? &pool->list : pool_head(pool);
}

static MP_ALWAYS_INLINE void list_push_as(mp_pool *pool, void *block, unsigned checks)
{
    void **head = pool_head_as(pool, checks);
    link_set_as(pool, block, *head, checks);
    *head = block;
}

static void list_push(mp_pool *pool, void *block)
{
    list_push_as(pool, block, mpi_checks(pool));
}

/*
 * Pops the head. The head was checked when it became the head; the link to the next block is
 * checked now (list_next_as), and where it fails the list is cut (the blocks behind it are
 * abandoned, never handed out). The head's free bit is cleared first, so that a link back to it (a
 * cycle) fails.
 */
static MP_ALWAYS_INLINE void *list_pop_as(mp_pool *pool, unsigned checks)
{
    void **head = pool_head_as(pool, checks);
    void *block = *head;
    if (block == NULL)
        return NULL;
    mpi_slot s;
    if ((checks & MPI_CHECK_STATE) != 0 && pool_own_slot_bit(pool, block, &s, checks))
        mpi_slot_set_free(&s, false);
    void *next;
    if (!list_next_as(pool, block, &next, checks))
        next = NULL;
    *head = next;
    return block;
}

static void *list_pop(mp_pool *pool)
{
    return list_pop_as(pool, mpi_checks(pool));
}

/* Before an operation lowers `carved`, keep the peak it stands for (see struct mp_pool). */
static void pool_keep_peak(mp_pool *pool)
{
    pool->peak_before = mpi_pool_peak(pool);
}

/* ================================================================================================
 * Creation: geometry, then placement in a buffer or in a page from the source
 * ============================================================================================== */

/*
 * Works out align, stride, chunk_size, first_off and per_chunk from the options into `pool`; lead:
 * as for mpi_pool_create_chunked.
 * Returns 0 or EINVAL. The chunk is the smallest power of two >= MP_CHUNK_SIZE holding
 * MP_CHUNK_MIN_BLOCKS blocks after its header, so at most 1/MP_CHUNK_MIN_BLOCKS of it is lost.
 */
static int pool_geometry(mp_pool *pool, const mp_pool_opts *opts, size_t fixed_chunk, size_t lead)
{
    unsigned checks = mpi_checks(pool);
    size_t align = opts->align;
    if (align == 0) {
        align = opts->block_size & (~opts->block_size + 1); /* lowest set bit */
        if (align > alignof(max_align_t))
            align = alignof(max_align_t);
    } else if (!mpi_is_pow2(align)) {
        return EINVAL;
    }
    if (align < alignof(void *))
        align = alignof(void *); /* the free-list link is a pointer */
    size_t size = opts->block_size < sizeof(void *) ? sizeof(void *) : opts->block_size;
    if (size > SIZE_MAX - (align - 1))
        return EINVAL;
    /* The product mempool.h names, with the stride a plain pool would have: the capacity only
     * bounds live blocks and runs are taken as needed, so a checked pool's guard bytes need no
     * room in size_t for all of them at once. */
    if (opts->capacity != 0 && (size_t)mpi_align_up(size, align) > SIZE_MAX / opts->capacity)
        return EINVAL;
    if ((checks & MPI_CHECK_FILL) != 0) { /* room for the canary and the site (internal.h) */
        if (opts->block_size > SIZE_MAX / 2)
            return EINVAL;
        pool->site_off = (size_t)mpi_align_up(opts->block_size, 8) + MPI_CANARY_EXTRA;
        size = pool->site_off + sizeof(void *);
        if (size > SIZE_MAX - (align - 1))
            return EINVAL;
    }
    size_t stride = (size_t)mpi_align_up(size, align);

    size_t chunk = fixed_chunk != 0 ? fixed_chunk : MP_CHUNK_SIZE, bitmap, first_off;
    size_t bitmap_off = MP_CHUNK_HEADER + (fixed_chunk != 0 ? MPI_OWNER_ROOM : 0); /* a heap's */
    for (;;) {
        /* the free bitmap (checked, secure) follows the header: a bit for each slot that could fit
         * */
        bitmap =
            (checks & MPI_CHECK_STATE) != 0 ? (size_t)mpi_align_up((chunk / stride + 7) / 8, 8) : 0;
        first_off = (size_t)mpi_align_up(bitmap_off + bitmap, align);
        if (lead != 0) /* a heap class's blocks start lead bytes before a page (heap.c) */
            first_off = (size_t)mpi_align_up(first_off + lead, MPI_LEAD_PAGE) - lead;
        if ((chunk > first_off && (chunk - first_off) / stride >= MP_CHUNK_MIN_BLOCKS) ||
            chunk > SIZE_MAX / 4 || fixed_chunk != 0)
            break;
        chunk *= 2;
    }
    if (chunk <= first_off || (chunk - first_off) / stride == 0)
        return EINVAL; /* not even one block fits in the largest chunk */

    pool->block_size = opts->block_size;
    pool->align = align;
    pool->stride = stride;
    pool->fast.stride = stride;
    pool->chunk_size = chunk;
    while (((size_t)1 << pool->chunk_shift) < chunk)
        pool->chunk_shift++;
#ifdef __SIZEOF_INT128__
    pool->fast.recip = stride <= UINT32_MAX ? UINT64_MAX / stride + 1 : 0;
#else /* no 128-bit product to use it (stride_div, chunk_slot): 1 marks a stride below 2^32,
         and a 32-bit target needs no 64-bit division in libgcc */
    pool->fast.recip = stride <= UINT32_MAX;
#endif
    pool->first_off = first_off;
    pool->bitmap_bytes = bitmap;
    pool->bitmap_off = bitmap_off;
    pool->per_chunk = (chunk - first_off) / stride;
    pool->slots_bytes = pool->per_chunk * stride;
    pool->capacity = opts->capacity;
    pool->capacity_max = opts->capacity != 0 ? opts->capacity : UINT64_MAX;
    return 0;
}

/*
 * The blocks a plain pool's inline path carved (struct mp_pool, `counted`), counted. They lie
 * below fast.bump in chunk cur_chunk of cur, so all of them count in cur. The inline path moves
 * only fast.bump; every move of the cursor by the library comes after this and keeps counted equal
 * to fast.bump, so this sees only the inline path's blocks.
 */
static void pool_fold_carves(mp_pool *pool)
{
    char *bump = pool->fast.bump;
    if (MP_LIKELY(bump == pool->counted))
        return;
    uint64_t rem, n = stride_div(pool, (uintptr_t)(bump - pool->counted), &rem);
    mp_assert(rem == 0 && pool->cur != NULL);
    pool->carved += n;
    pool->cur->carved += n;
    pool->fast.allocs += n;
    pool->counted = bump;
}

/* A const reader folds too (internal.h): it writes only after the inline path carved, which no
 * call can overlap. */
void mpi_pool_fold_carves(const mp_pool *pool)
{
    pool_fold_carves((mp_pool *)pool);
}

/*
 * Opens the cursor's chunk to the inline path (fast.end, internal.h's invariant): up to the chunk's
 * end, or fewer blocks where the capacity allows fewer. Only a plain pool that does not populate:
 * every other pool's carve needs the slow path (checks, zeroing, its lock, populating the pages).
 * Called, with carved counted, whenever the library moves the cursor or lowers carved.
 */
static void cursor_expose(mp_pool *pool)
{
    if (pool->path != MPI_PATH_PLAIN || (pool->state & MPI_POPULATE) != 0)
        return; /* end stays NULL; written under a thread-safe pool's lock, it would race */
    pool->fast.end = NULL;
    if (pool->fast.bump == NULL)
        return;
    pool->fast.end = pool->bump_end;
    uint64_t left = pool->capacity_max - pool->carved; /* <= capacity: left * stride fits */
    if (pool->capacity_max != UINT64_MAX &&
        left * pool->stride < (uint64_t)(pool->bump_end - pool->fast.bump))
        pool->fast.end = pool->fast.bump + left * pool->stride;
}

static void cursor_clear(mp_pool *pool)
{
    pool->cur = NULL;
    pool->cur_chunk = 0;
    pool->fast.bump = pool->bump_end = pool->counted = pool->fast.end = NULL;
}

/* Writes the header of a chunk of run, and for a heap's chunk its owner word (internal.h); clears
 * its free bits (a source need not give zeroed memory). */
static void chunk_header_write(const mp_pool *pool, mpi_run *run, char *chunk)
{
    mpi_chunk *hdr = (mpi_chunk *)chunk;
    hdr->pool = (mp_pool *)pool;
    hdr->run = run;
    if (!MP_FREESTANDING &&
        pool->bitmap_off >= MP_CHUNK_HEADER + MPI_OWNER_ROOM) /* no heap on bare metal */
        *mpi_owner_word((uintptr_t)chunk, pool->chunk_shift) = (mp_pool *)pool;
    if (MPI_CHECKS_BUILT && pool->bitmap_bytes != 0)
        memset(chunk_bits(pool, (uintptr_t)chunk), 0, pool->bitmap_bytes);
    if (POOL_HANDLES(pool->flags)) /* chunk i of run: run is chunk 0 (internal.h) */
        hdr->hbias =
            (((uintptr_t)run->hnum + (((uintptr_t)chunk - (uintptr_t)run) >> pool->chunk_shift))
             << pool->fast.hbits) +
            1 - pool->first_off / pool->stride;
}

/* Points the carving cursor at the first block of chunk i of run, writing its header if new, and
 * opens it to the inline path. Carves since the last move must be counted. */
static void cursor_set(mp_pool *pool, mpi_run *run, uint32_t i)
{
    char *chunk = run->base + (size_t)i * run->span;
    if (i >= run->inited) {
        mp_assert(i == run->inited);
        chunk_header_write(pool, run, chunk);
        run->inited = i + 1;
    }
    pool->cur = run;
    pool->cur_chunk = i;
    pool->fast.bump = pool->counted = chunk + run->first_off;
    pool->bump_end = pool->fast.bump + run->per_chunk * pool->stride;
    pool->populated = NULL;
    cursor_expose(pool);
}

/* A buffer pool's blocks start after its header and its bitmap of n bits (one byte at least), at
 * the alignment: from `after` (the header's end), n >= 1 blocks end at the returned address, or
 * at 0 when they do not fit below UINTPTR_MAX. */
static uintptr_t buffer_blocks_end(const mp_pool *proto, uintptr_t after, uintptr_t n)
{
    if (POOL_HANDLES(proto->flags))
        after += (uintptr_t)(n + 1) * sizeof(uint32_t); /* the generations (n < UINT32_MAX) */
    uintptr_t bits = after + (uintptr_t)((n + 7) / 8);
    if (bits < after || bits > UINTPTR_MAX - proto->align)
        return 0;
    uintptr_t blocks = mpi_align_up(bits, proto->align);
    if (n > (UINTPTR_MAX - blocks) / proto->stride)
        return 0;
    return blocks + (uintptr_t)n * proto->stride;
}

/*
 * Places the pool at the start of the caller's buffer and makes the rest its only run:
 *   [ the pool: MP_POOL_HEADER_BYTES ][ MP_HANDLES: n generations ][ a free bit per block ]
 *   [ pad to align ][ n blocks ]
 * with n the most that fit (found by bisection: the bitmap grows with n). The layout is the same
 * whatever the flags and tools, so MP_POOL_BUFFER_SIZE (mempool.h) is exact in every build; a pool
 * without free bits uses the bitmap as mp_pool_visit()'s scratch. Returns NULL (errno EINVAL) when
 * the buffer cannot hold the pool and one block.
 */
static mp_pool *pool_place_in_buffer(const mp_pool *proto, void *buffer, size_t buffer_size)
{
    uintptr_t end;
    uintptr_t at =
        mpi_buffer_place(buffer, buffer_size, alignof(mp_pool), MP_POOL_HEADER_BYTES, &end);
    if (at == 0)
        return NULL;
    uintptr_t after = at + MP_POOL_HEADER_BYTES;
    uintptr_t lo = 0, hi = (end - after) / proto->stride; /* n fits if n <= lo; not if n > hi */
    if (POOL_HANDLES(proto->flags) && hi >= UINT32_MAX)
        hi = UINT32_MAX - 1; /* a handle's index, slot + 1, has 32 bits */
    while (lo < hi) {
        uintptr_t mid = hi - (hi - lo) / 2;
        uintptr_t e = buffer_blocks_end(proto, after, mid);
        if (e != 0 && e <= end)
            lo = mid;
        else
            hi = mid - 1;
    }
    if (lo == 0)
        return NULL;

    mp_pool *pool = (mp_pool *)at;
    *pool = *proto;
    pool->state |= MPI_IN_BUFFER;
    size_t gens = POOL_HANDLES(pool->flags) ? (size_t)(lo + 1) * sizeof(uint32_t) : 0;
    pool->buffer_bitmap = (unsigned char *)after + gens;
    memset(pool->buffer_bitmap, 0, (size_t)(lo + 7) / 8);
    mpi_run *run = &pool->buffer_run;
    run->per_chunk = lo;
    run->span = (size_t)lo * proto->stride;
    run->base = (char *)(buffer_blocks_end(proto, after, lo) - run->span);
    run->nchunks = run->inited = 1;
    pool->first = pool->last = run;
    pool->nruns = 1;
    pool->held = run->per_chunk;
    pool->bytes_reserved = buffer_size;
    if (gens != 0)
        mpi_handles_init_buffer(pool, (uint32_t *)after, lo);
    cursor_set(pool, run, 0);
    return pool;
}

/*
 * Places the pool in a page (or more) of its own from the source. NULL (errno ENOMEM) on failure.
 * The struct starts at one of the cache lines its page has room for, picked by the page's address:
 * at the page's start, the fast fields of every pool would fall in one L1 set, and a heap's class
 * pools missed L1 on most allocations of the suite's varsize churn. The page is the struct's
 * address rounded down to a page (mp_pool_destroy() unmaps it from there).
 */
static mp_pool *pool_place_in_source(const mp_pool *proto)
{
    size_t page = mpi_os_page_size();
    size_t meta = (size_t)mpi_align_up(sizeof(mp_pool), page);
    char *mem = mpi_source_map(&proto->source, meta, page);
    if (mem == NULL)
        return NULL;
    size_t colors = (meta - sizeof(mp_pool)) / 64 + 1;
    mp_pool *pool = (mp_pool *)(mem + ((uintptr_t)mem / page % colors) * 64);
    *pool = *proto;
    pool->meta_size = meta;
    pool->bytes_reserved = meta;
    pool->source_maps = 1;
    return pool;
}

/* What the slow paths check (before the geometry, which makes room for it): free bits for a secure
 * or checked pool or a watching tool, fills and canaries for a checked one, encoded links for both.
 * */
static void pool_select_checks(mp_pool *proto, unsigned flags)
{
    if (!MPI_CHECKS_BUILT)
        return; /* no checks, no tool (config.h) */
    proto->checks = mpi_tool_checks();
    if ((flags & MP_CHECKED) != 0)
        proto->checks |= MPI_CHECK_FILL;
    if (proto->checks != 0 || (flags & MP_SECURE) != 0)
        proto->checks |= MPI_CHECK_STATE;
    if ((flags & (MP_CHECKED | MP_SECURE)) != 0)
        proto->key = mpi_os_random() | 1; /* never 0, which means links stored as they are */
}

/* A thread-safe pool keeps per-thread caches unless every call must take its lock: a checked or
 * secure pool (the checks run under it), one with a capacity (exact, see mempool.h), or a handle
 * pool (a free advances the block's generation, which the inline cache push cannot). */
static bool pool_may_cache(const mp_pool *pool)
{
    return pool->checks == 0 && pool->capacity == 0 && !POOL_HANDLES(pool->flags);
}

/*
 * Chooses the pool's path (internal.h, enum mpi_path; the table is in docs/design.md, "Paths") and
 * what follows from it: whether the inline path may pop the pool's list (else fast.free holds
 * MP_FAST_SLOW), the thread cache entry the inline path reads (tsoff), the secure path's run table,
 * populating. The one place that does; called once the pool is placed (and a thread-safe pool's
 * cache slot taken), before anyone else sees it.
 */
static void pool_select_path(mp_pool *pool, bool populate)
{
    bool secure_geometry = pool->chunk_size <= UINT32_MAX && pool->fast.recip != 0;
    if (!MP_FREESTANDING && (pool->flags & MP_THREAD_SAFE) != 0) /* bare metal: no threads */
        pool->path = pool->ts_id != 0 ? MPI_PATH_CACHED : MPI_PATH_LOCKED;
    else if ((mpi_checks(pool) & ~(unsigned)MPI_CHECK_STATE) != 0 ||
             (POOL_HANDLES(pool->flags) &&
              (mpi_checks(pool) != 0 || (pool->state & MPI_IN_BUFFER) != 0 || !secure_geometry)))
        pool->path = MPI_PATH_CHECKED; /* a handle pool that HANDLES cannot take: general */
    else if (POOL_HANDLES(pool->flags))
        pool->path = MPI_PATH_HANDLES;
    else if (mpi_checks(pool) == 0)
        pool->path = (pool->flags & MP_ZERO) != 0 ? MPI_PATH_ZERO : MPI_PATH_PLAIN;
    else if ((pool->flags & MP_ZERO) == 0 && (pool->state & MPI_IN_BUFFER) == 0 && secure_geometry)
        pool->path = MPI_PATH_SECURE;
    else
        pool->path = MPI_PATH_SECURE_LEAN;
    if (pool->path != MPI_PATH_PLAIN)
        pool->fast.free = (void *)MP_FAST_SLOW; /* a slow pool (see mempool.h) */
    /* The inline handle path (internal.h): a free block keeps its link and its index. */
    if (pool->path == MPI_PATH_HANDLES && (pool->flags & MP_ZERO) == 0 &&
        pool->stride >= sizeof(void *) + sizeof(uint32_t))
        pool->fast.hmask = ~(uintptr_t)(pool->chunk_size - 1);
    if (!MP_FREESTANDING && pool->path == MPI_PATH_CACHED && (pool->flags & MP_ZERO) == 0)
        pool->fast.tsoff = pool->ts_id * (uint32_t)sizeof(struct mp_tcache_fast);
    if (populate && MP_HEAP_POPULATE)
        pool->state |= MPI_POPULATE;
    pool->fast.end = NULL; /* a buffer pool's cursor was set before its path was known */
    cursor_expose(pool);
}

/* Creates a pool; chunk_size 0 chooses it (pool_geometry), else it is fixed (the heap's). */
static mp_pool *pool_create(const mp_pool_opts *opts, size_t chunk_size, bool populate, size_t lead)
{
    if (opts == NULL || opts->block_size == 0 || (opts->flags & ~POOL_KNOWN_FLAGS) != 0) {
        errno = EINVAL;
        return NULL;
    }
    /* Bare metal has no threads, no entropy and no system source, and may leave checked pools
     * out (config.h), and with them handle pools, whose buffer pools take the general path. */
    if (MP_FREESTANDING && ((opts->flags & (MP_THREAD_SAFE | MP_SECURE)) != 0 ||
                            (!MPI_CHECKS_BUILT && (opts->flags & (MP_CHECKED | MP_HANDLES)) != 0) ||
                            (opts->buffer == NULL && opts->source == NULL))) {
        errno = ENOSYS;
        return NULL;
    }
    mp_pool proto;
    memset(&proto, 0, sizeof proto);
    pool_select_checks(&proto, opts->flags);
    int err = pool_geometry(&proto, opts, chunk_size, lead);
    if (err != 0) {
        errno = err;
        return NULL;
    }
    proto.flags = opts->flags;
    if (POOL_HANDLES(proto.flags) && opts->buffer == NULL &&
        (err = mpi_handles_init(&proto, proto.per_chunk)) != 0) {
        errno = err;
        return NULL;
    }
    proto.source = opts->source != NULL ? *opts->source : mpi_os_source;
    mpi_name_copy(proto.name, opts->name);
    if (proto.source.map == NULL || proto.source.unmap == NULL) {
        errno = EINVAL;
        return NULL;
    }

    mp_pool *pool;
    if (opts->buffer != NULL) {
        pool = pool_place_in_buffer(&proto, opts->buffer, opts->buffer_size);
        err = EINVAL;
    } else {
        pool = pool_place_in_source(&proto);
        err = ENOMEM;
    }
    if (!MP_FREESTANDING && pool != NULL && (pool->flags & MP_THREAD_SAFE) != 0 &&
        (err = mpi_ts_create(pool, opts->thread_cache, pool_may_cache(pool))) != 0) {
        pool->flags &= ~(unsigned)MP_THREAD_SAFE;
        mp_pool_destroy(pool);
        pool = NULL;
    }
    if (pool == NULL) {
        errno = err;
        return NULL;
    }
    pool_select_path(pool, populate);
    return pool;
}

mp_pool *mp_pool_create(const mp_pool_opts *opts)
{
    return pool_create(opts, 0, false, 0);
}

#if !MP_FREESTANDING /* the heap's; bare metal has none, and pool_create() folds into the above */
mp_pool *mpi_pool_create_chunked(const mp_pool_opts *opts, size_t chunk_size, bool populate,
                                 size_t lead)
{
    return pool_create(opts, chunk_size, populate, lead);
}
#endif

/* Opens a run's memory to the tools before it goes back to the source or the caller. */
static void run_open(const mp_pool *pool, const mpi_run *run)
{
    if ((mpi_checks(pool) & MPI_CHECK_TOOLS) != 0)
        mpi_tool_open(pool, run->base, run->size != 0 ? run->size : run->span);
}

static void run_table_drop(mp_pool *pool);

/* A pool on the secure path. Never on bare metal, which refuses MP_SECURE (config.h): there the
 * constant false leaves the secure path's code out of the program. */
static inline bool pool_is_secure(const mp_pool *pool)
{
    return !MP_FREESTANDING && pool->path == MPI_PATH_SECURE;
}

void mp_pool_destroy(mp_pool *pool)
{
    if (pool == NULL)
        return;
    if (!MP_FREESTANDING && (pool->flags & MP_THREAD_SAFE) != 0)
        mpi_ts_destroy(pool);
    if ((mpi_checks(pool) & MPI_CHECK_FILL) != 0)
        mpi_check_destroy(pool);
    mpi_tool_forget_live(pool);
    if ((pool->state & MPI_IN_BUFFER) != 0) {
        run_open(pool, &pool->buffer_run);
        return;
    }
    mp_source source = pool->source;
    mpi_run *run = pool->first;
    while (run != NULL) {
        mpi_run *next = run->next;
        run_open(pool, run);
        source.unmap(source.ctx, run->base, run->size);
        run = next;
    }
    run_table_drop(pool);
    if (POOL_HANDLES(pool->flags))
        mpi_handles_destroy(pool);
    source.unmap(source.ctx, (void *)((uintptr_t)pool & ~(uintptr_t)(mpi_os_page_size() - 1)),
                 pool->meta_size);
}

/* ================================================================================================
 * The slow paths: carving never-used space, taking runs
 * ============================================================================================== */

/*
 * The run table of a secure pool (struct mp_pool): writes or clears run's slots. Registering grows
 * the table first to twice the chunks of all runs; if the system refuses, the pool goes on without
 * one (every lookup walks the runs). Library bookkeeping, so from the system, as the thread tables
 * are.
 */
static void run_table_put(mp_pool *pool, const mpi_run *run, const mpi_run *value)
{
    for (uint32_t i = 0; i < run->nchunks; i++) {
        size_t slot = (((uintptr_t)run->base >> pool->chunk_shift) + i) & (pool->run_slots - 1);
        if (value != NULL || pool->run_table[slot] == run)
            pool->run_table[slot] = value;
    }
}

static void run_table_add(mp_pool *pool, const mpi_run *run)
{
    if (!pool_is_secure(pool))
        return;
    size_t chunks = 0;
    for (const mpi_run *r = pool->first; r != NULL; r = r->next)
        chunks += r->nchunks;
    if (pool->run_slots < 2 * chunks) {
        size_t page = mpi_os_page_size(), slots = page / sizeof *pool->run_table;
        while (slots < 2 * chunks)
            slots *= 2;
        const mpi_run **table = mpi_os_source.map(NULL, slots * sizeof *table, page);
        if (pool->run_table != NULL)
            mpi_os_source.unmap(NULL, (void *)pool->run_table, pool->run_slots * sizeof *table);
        pool->run_table = table;
        pool->run_slots = table != NULL ? slots : 0;
        if (table == NULL)
            return;
        for (const mpi_run *r = pool->first; r != NULL; r = r->next)
            if (r != run)
                run_table_put(pool, r, r);
    }
    run_table_put(pool, run, run);
}

static void run_table_drop(mp_pool *pool)
{
    if (pool->run_table != NULL)
        mpi_os_source.unmap(NULL, (void *)pool->run_table,
                            pool->run_slots * sizeof *pool->run_table);
    pool->run_table = NULL;
    pool->run_slots = 0;
}

/*
 * Takes a new run from the source and appends it. Its size follows the geometric growth (config.h,
 * MP_RUN_MAX_CHUNKS) but never holds more blocks than the capacity still allows. NULL on failure.
 */
static mpi_run *pool_take_run(mp_pool *pool)
{
    if ((pool->state & MPI_IN_BUFFER) != 0)
        return NULL;
    /* Geometric growth: the new run holds as many chunks as the pool already does (1, 1, 2, 4,
     * ...). */
    uint64_t n = (size_t)pool->held / (size_t)pool->per_chunk; /* < SIZE_MAX: held in memory */
    if (n == 0)
        n = 1;
    if (n > MP_RUN_MAX_CHUNKS)
        n = MP_RUN_MAX_CHUNKS;
    if (pool->capacity_max != UINT64_MAX) {
        /* > 0: pool_carve() checked it; <= capacity, which fits size_t (pool_geometry) */
        size_t need = (size_t)(pool->capacity_max - pool->carved);
        uint64_t chunks = (need + (size_t)pool->per_chunk - 1) / (size_t)pool->per_chunk;
        if (chunks < n)
            n = chunks;
    }
    while (n > 1 && n > SIZE_MAX / pool->chunk_size)
        n /= 2;
    size_t size = (size_t)n * pool->chunk_size;
    char *mem = mpi_source_map(&pool->source, size, pool->chunk_size);
    if (mem == NULL)
        return NULL;

    mpi_run *run = (mpi_run *)mem;
    memset(run, 0, sizeof *run);
    if (POOL_HANDLES(pool->flags) && !mpi_handles_run_add(pool, run, mem, (uint32_t)n)) {
        pool->source.unmap(pool->source.ctx, mem, size); /* no number left, or no memory */
        return NULL;
    }
    chunk_header_write(pool, run, mem);
    run->base = mem;
    run->size = size;
    run->span = pool->chunk_size;
    run->first_off = pool->first_off;
    run->nchunks = (uint32_t)n;
    run->inited = 1;
    run->per_chunk = pool->per_chunk;
    run->prev = pool->last;
    if (pool->last != NULL)
        pool->last->next = run;
    else
        pool->first = run;
    pool->last = run;
    run_table_add(pool, run);

    pool->nruns++;
    pool->source_maps++;
    pool->held += n * pool->per_chunk;
    pool->bytes_reserved += size;
    return run;
}

/* Moves the carving cursor to the next never-used chunk, taking a run when none is left. */
static bool pool_next_chunk(mp_pool *pool)
{
    mpi_run *run = pool->cur;
    if (run != NULL && pool->cur_chunk + 1 < run->nchunks) {
        cursor_set(pool, run, pool->cur_chunk + 1);
        return true;
    }
    run = run != NULL ? run->next : NULL;
    if (run == NULL && (run = pool_take_run(pool)) == NULL)
        return false;
    cursor_set(pool, run, 0);
    return true;
}

/* Hands out the first of up to n (> 0) never-used blocks at the cursor, contiguous in its chunk,
 * and counts them carved; *got: how many. NULL when the capacity or the memory is used up. O(1),
 * but for a new chunk's header or run. */
static void *pool_carve_range(mp_pool *pool, uint64_t n, uint64_t *got)
{
    pool_fold_carves(pool);
    *got = 0;
    if (pool->carved >= pool->capacity_max)
        return NULL;
    if (pool->fast.bump == pool->bump_end && !pool_next_chunk(pool))
        return NULL;
    if (n > 1) { /* else the tests above showed room for one */
        uint64_t rem, left = stride_div(pool, (uintptr_t)(pool->bump_end - pool->fast.bump), &rem);
        left = left < pool->capacity_max - pool->carved ? left : pool->capacity_max - pool->carved;
        n = n < left ? n : left;
    }
    void *block = pool->fast.bump;
    pool->fast.bump += n * pool->stride; /* n <= blocks left in the chunk: in the chunk */
    pool->counted = pool->fast.bump;
    pool->carved += n;
    pool->cur->carved += n;
    *got = n;
    return block;
}

/* Hands out the block at the cursor. NULL when the capacity or the memory is used up. */
static void *pool_carve(mp_pool *pool)
{
    uint64_t got;
    return pool_carve_range(pool, 1, &got);
}

static bool pool_is_valid(const mp_pool *pool);

/*
 * Populating (MPI_POPULATE: a heap's class pools over the system source). The pages of a never-used
 * block would fault in one by one at the first write to each; the system can fault them in with one
 * call for less (mpi_os_populate; docs/design.md, "The heap"). A carve asks for the pages of the
 * block it hands out and no more; `populated` keeps each page to one carve.
 *
 * That is free only where the program writes the pages. A block of one or two pages has every page
 * written by a write to its two ends, so it is always populated. A larger block has inner pages a
 * program may never write (a buffer sized for the worst case, an array's spare capacity), so the
 * pool populates such blocks only while it sees them written whole: its first one, and one in
 * POPULATE_RUN + 1 after, is a sample left to fault as written, and the next large carve asks the
 * system whether every inner page of the sample is resident (mpi_os_resident). If so, the next
 * POPULATE_RUN large blocks are populated; if not, the next is a sample too. A program that writes
 * part of its blocks so pays no memory; one that writes all of them loses the gain on one in
 * POPULATE_RUN + 1.
 */
#define POPULATE_RUN 7u

/* The pages strictly inside the block at b (neither its first nor its last), as [*lo, *hi). */
static void block_inner_pages(const mp_pool *pool, const void *b, uintptr_t *lo, uintptr_t *hi)
{
    uintptr_t page = mpi_os_page_size();
    *lo = ((uintptr_t)b & ~(page - 1)) + page;
    *hi = ((uintptr_t)b + pool->stride - 1) & ~(page - 1);
}

void mpi_pool_fresh_pages(mp_pool *pool, const void *block, uint64_t n, mpi_pages *r)
{
    uintptr_t page = mpi_os_page_size(), mark = (uintptr_t)pool->populated;
    uintptr_t lo = (uintptr_t)block & ~(page - 1); /* hi: at most the chunk's end, page-aligned */
    uintptr_t hi = ((uintptr_t)block + n * pool->stride + page - 1) & ~(page - 1);
    if (n == 1 && hi - lo > 2 * page)
        r->large = block;
    if (lo < mark)
        lo = mark;
    if (hi <= lo)
        return;
    pool->populated = (char *)hi;
    if (r->lo == r->hi)
        *r = (mpi_pages){lo, hi, r->large};
    else if (r->hi == lo)
        r->hi = hi;
}

/* Whether to populate the large block just carved; if not, it is the pool's next sample. Threads
 * refilling at once may each take a verdict or a sample: the policy is a guess either way. */
static bool pool_populates_large(mp_pool *pool, const void *block)
{
    const void *sample = __atomic_exchange_n(&pool->sample, NULL, __ATOMIC_RELAXED);
    uint32_t dense = __atomic_load_n(&pool->dense, __ATOMIC_RELAXED);
    if (sample != NULL) {
        uintptr_t lo, hi;
        block_inner_pages(pool, sample, &lo, &hi);
        dense = mpi_os_resident((const void *)lo, hi - lo) ? POPULATE_RUN : 0;
    }
    if (dense == 0)
        __atomic_store_n(&pool->sample, block, __ATOMIC_RELAXED);
    __atomic_store_n(&pool->dense, dense > 0 ? dense - 1 : 0, __ATOMIC_RELAXED);
    return dense > 0;
}

void mpi_pool_populate(mp_pool *pool, const mpi_pages *r)
{
    if (r->lo == r->hi || (r->large != NULL && !pool_populates_large(pool, r->large)))
        return;
    mpi_os_populate((void *)r->lo, r->hi - r->lo);
}

void *mpi_pool_take(mp_pool *pool, bool *fresh)
{
    void *block = list_pop(pool);
    *fresh = block == NULL;
    return block != NULL ? block : pool_carve(pool);
}

void *mpi_pool_carve_range(mp_pool *pool, uint64_t n, uint64_t *got)
{
    return pool_carve_range(pool, n, got);
}

void **mpi_pool_head(mp_pool *pool)
{
    return pool_head(pool);
}

void mpi_pool_give_chain(mp_pool *pool, void *first, void *last)
{
    void **head = pool_head(pool);
    link_set(pool, last, *head);
    *head = first;
}

void *mpi_pool_alloc_general(mp_pool *pool, const void *site)
{
    bool fresh;
    void *block = mpi_pool_take(pool, &fresh);
    if (block == NULL) {
        pool->failed_allocs++;
        errno = ENOMEM;
        return NULL;
    }
    /* A thread-safe pool populates in its caches' refill, with no lock held; one with no caches
     * holds its lock here, and does not populate. */
    if (!MP_FREESTANDING /* no heap, whose pools alone populate */ && fresh &&
        (pool->state & MPI_POPULATE) != 0 && (pool->flags & MP_THREAD_SAFE) == 0) {
        mpi_pages r = {0, 0, NULL};
        mpi_pool_fresh_pages(pool, block, 1, &r);
        mpi_pool_populate(pool, &r);
    }
    pool->fast.allocs++;
    if (mpi_checks(pool) != 0)
        mpi_check_alloc(pool, block, fresh, site);
    if ((pool->flags & MP_ZERO) != 0)
        memset(block, 0, pool->block_size);
    if (POOL_HANDLES(pool->flags))
        gen_advance(pool, block, false); /* live */
    if (MP_DEBUG >= 2)
        mp_assert(pool_is_valid(pool));
    return block;
}

void mpi_pool_free_general(mp_pool *pool, void *block)
{
    if (mpi_checks(pool) != 0 && !mpi_check_free(pool, block))
        return; /* reported; the free is not done */
    if (POOL_HANDLES(pool->flags))
        gen_advance(pool, block, false); /* free: its handles go stale */
    list_push(pool, block);
    if ((mpi_checks(pool) & MPI_CHECK_TOOLS) != 0)
        mpi_tool_free(pool, block);
    if (MP_DEBUG >= 2)
        mp_assert(pool_is_valid(pool));
}

/*
 * The lean slow path (paths PLAIN, ZERO and SECURE_LEAN: no fill, no tool, not thread-safe) runs
 * the same list operations and checks as the general path, compiled for a constant `checks` (0, or
 * MPI_CHECK_STATE for a secure pool): one slot lookup a side in a secure pool (two on alloc while
 * the list holds more blocks, to check the next link), and no call but to report or to zero.
 */
static MP_ALWAYS_INLINE void *lean_alloc(mp_pool *pool, unsigned checks)
{
    void *block = list_pop_as(pool, checks);
    if (MP_UNLIKELY(block == NULL))
        return mpi_pool_alloc_general(pool, NULL); /* carve: the general path */
    pool->fast.allocs++;
    if ((pool->flags & MP_ZERO) != 0)
        memset(block, 0, pool->block_size);
    return block;
}

/* With free bits, like mpi_check_free() then list_push(); else list_push(). */
static MP_ALWAYS_INLINE void lean_free(mp_pool *pool, void *block, unsigned checks)
{
    mpi_slot s;
    if ((checks & MPI_CHECK_STATE) != 0) {
        if (!slot_free_is_valid(pool, block, &s, checks))
            return; /* reported; the free is not done */
        mpi_slot_set_free(&s, true);
    }
    list_push_as(pool, block, checks);
}

/*
 * The secure pool's own path (path SECURE: a secure pool and nothing else, chunks from a source, a
 * chunk's offsets below 2^32; other secure pools take lean_alloc/lean_free). It makes
 * the checks of the lean path with lookups cut to what a pool from a source needs:
 *   - a popped block is the list's head, checked when it became the head: its free bit is found by
 *     masking it to its chunk;
 *   - the next link, decoded, must be a slot of a chunk the pool has written, with its free bit
 *     set: tested at once when it is in the popped block's chunk (blocks are often reused near
 *     where they were freed), else after finding its run (out of line);
 *   - a freed block must be a carved slot whose bit is clear: its run is found through the run
 *     table (source_run_of), and the rest by masking.
 * A slot's offset in its chunk is divided by the stride with one multiplication, which also tells
 * whether it divides exactly (Lemire, Kaser, Kurz 2019: with M = 2^64 / d rounded up and n < 2^32,
 * d divides n iff (M * n) mod 2^64 < M). A set free bit also says the slot was carved (struct
 * mp_pool's invariants), so a link needs no carved count. The rare cases are functions of their
 * own, so that the common ones save no registers.
 */
static MP_ALWAYS_INLINE bool chunk_slot(const mp_pool *pool, uintptr_t chunk, uintptr_t p,
                                        uint64_t *slot)
{
    uintptr_t off = p - chunk - pool->first_off; /* below the first slot: wraps, fails the test */
    if (off >= pool->slots_bytes)
        return false;
#ifdef __SIZEOF_INT128__
    mpi_u128 m = (mpi_u128)pool->fast.recip * off;
    *slot = (uint64_t)(m >> 64);
    return (uint64_t)m < pool->fast.recip;
#else
    *slot = off / pool->stride;
    return off % pool->stride == 0;
#endif
}

static MP_ALWAYS_INLINE unsigned char *bit_byte(const mp_pool *pool, uintptr_t chunk, uint64_t slot)
{
    return chunk_bits(pool, chunk) + slot / 8;
}

/* The index in its run of the chunk at `chunk` (a pool from a source). */
static MP_ALWAYS_INLINE uint64_t run_chunk_index(const mp_pool *pool, const mpi_run *run,
                                                 uintptr_t chunk)
{
    return (chunk - (uintptr_t)run->base) >> pool->chunk_shift;
}

/* The run of a pool from a source that holds address a, or NULL. Never dereferences a: the run
 * table's entry for a's chunk is a guess, kept if its range holds a; else the runs are walked,
 * newest first, with a range test each. */
static MP_ALWAYS_INLINE const mpi_run *source_run_of(const mp_pool *pool, uintptr_t a)
{
    if (MP_LIKELY(pool->run_slots != 0)) {
        const mpi_run *run = pool->run_table[(a >> pool->chunk_shift) & (pool->run_slots - 1)];
        if (MP_LIKELY(run != NULL && a - (uintptr_t)run->base < run->size)) /* below: wraps */
            return run;
    }
    const mpi_run *run = pool->last;
    while (run != NULL && a - (uintptr_t)run->base >= run->size)
        run = run->prev;
    return run;
}

/* secure_alloc's check of a next link in another chunk than the popped block: a slot of a chunk
 * the pool has written, with its free bit set. Out of line, so that secure_alloc needs few
 * registers; reports and cuts the list if the link fails. */
static MP_NOINLINE void *secure_alloc_far(mp_pool *pool, void *block, void *next)
{
    uintptr_t n = (uintptr_t)next, chunk = mpi_chunk_of(next, pool->chunk_size);
    const mpi_run *run = next != NULL ? source_run_of(pool, n) : NULL; /* the list's end: no walk */
    uint64_t slot = 0;
    if (next != NULL && (run == NULL || run_chunk_index(pool, run, chunk) >= run->inited ||
                         !chunk_slot(pool, chunk, n, &slot) ||
                         (*bit_byte(pool, chunk, slot) >> (slot % 8) & 1u) == 0)) {
        mpi_pool_link_bad(pool, block);
        next = NULL; /* the list is cut: what the link led to is never handed out */
    }
    pool->list = next;
    pool->fast.allocs++;
    return block;
}

/* The secure path carves here, and a secure pool that cannot take it (path SECURE_LEAN) allocates.
 * */
static MP_NOINLINE void *secure_lean_alloc(mp_pool *pool)
{
    return lean_alloc(pool, MPI_CHECK_STATE);
}

static MP_NOINLINE void *secure_alloc(mp_pool *pool)
{
    void *block = pool->list;
    if (MP_UNLIKELY(block == NULL))
        return secure_lean_alloc(pool);
    uintptr_t mask = ~(uintptr_t)(pool->chunk_size - 1), chunk = (uintptr_t)block & mask;
    uint64_t slot = 0;
    bool own = chunk_slot(pool, chunk, (uintptr_t)block, &slot);
    mp_assert(own);
    (void)own;
    /* cleared first, so that a link back to the block (a cycle) fails the check below */
    *bit_byte(pool, chunk, slot) &= (unsigned char)~(1u << (slot % 8));
    uintptr_t v;
    memcpy(&v, block, sizeof v);
    void *next =
        (void *)(v ^ link_mask(pool, block)); /* key != 0: link_get_as() without its tests */
    if (MP_UNLIKELY(((uintptr_t)next & mask) != chunk) ||
        MP_UNLIKELY(!chunk_slot(pool, chunk, (uintptr_t)next, &slot) ||
                    (*bit_byte(pool, chunk, slot) >> (slot % 8) & 1u) == 0))
        return secure_alloc_far(pool, block, next); /* NULL, another chunk, or no free slot */
    pool->list = next;
    pool->fast.allocs++;
    return block;
}

static MP_NOINLINE void secure_free_bad(mp_pool *pool, void *block, mp_error_kind kind)
{
    mpi_report(kind, pool, block, NULL, 1, NULL);
}

static MP_NOINLINE void secure_free(mp_pool *pool, void *block)
{
    uintptr_t a = (uintptr_t)block, chunk = mpi_chunk_of(block, pool->chunk_size);
    const mpi_run *run = source_run_of(pool, a);
    uint64_t slot = 0;
    if (MP_UNLIKELY(run == NULL || !chunk_slot(pool, chunk, a, &slot) ||
                    run_chunk_index(pool, run, chunk) * run->per_chunk + slot >= run->carved)) {
        secure_free_bad(pool, block, MP_ERR_INVALID_FREE); /* not a block this pool handed out */
        return;
    }
    unsigned char *byte = bit_byte(pool, chunk, slot), bit = (unsigned char)(1u << (slot % 8));
    if (MP_UNLIKELY((*byte & bit) != 0)) {
        secure_free_bad(pool, block, MP_ERR_DOUBLE_FREE);
        return;
    }
    *byte |= bit;
    uintptr_t v = (uintptr_t)pool->list ^ link_mask(pool, block); /* link_set_as(), key != 0 */
    memcpy(block, &v, sizeof v);
    pool->list = block;
}

/*
 * The handle pool's path (HANDLES: MP_HANDLES, maybe MP_ZERO, nothing else): the lean path's pop
 * and push on `list`, and the block's generation advanced (to odd on alloc, to even on free). A
 * carve takes the general path, which advances it too.
 * Intended cost: the pop or push, a mask, a load of the chunk's generations, a multiplication and
 * a store, past the inline path's call.
 */
static MP_NOINLINE void *handles_alloc(mp_pool *pool)
{
    void **head = pool_head(pool);
    void *block = *head;
    if (MP_UNLIKELY(block == NULL))
        return mpi_pool_alloc_general(pool, NULL);
    *head = *(void **)block;
    pool->fast.allocs++;
    gen_advance(pool, block, true);
    if ((pool->flags & MP_ZERO) != 0)
        memset(block, 0, pool->block_size);
    return block;
}

static MP_NOINLINE void handles_free(mp_pool *pool, void *block)
{
    gen_advance(pool, block, true);
    if (pool->fast.hmask != 0) /* a block on hfree keeps its index (mempool.h) */
        *mpi_pool_hindex(block) = (uint32_t)block_index_lean(pool, block);
    void **head = pool_head(pool);
    *(void **)block = *head;
    *head = block;
}

mp_handle mp_pool_handle_slow(const mp_pool *pool, const void *block)
{
    if (pool == NULL || block == NULL || !POOL_HANDLES(pool->flags)) {
        errno = EINVAL;
        return 0;
    }
    const uint32_t *at =
        pool->path == MPI_PATH_HANDLES ? block_gen_lean(pool, block) : block_gen(pool, block);
    uint32_t gen = MP_LOAD_RELAXED(*at);
    uint64_t index = (uint64_t)(at - pool->fast.hgens);
    if ((gen & 1) == 0) {
        errno = EINVAL; /* a free block */
        return 0;
    }
    return index << 31 | gen >> 1; /* mempool.h, struct mp_pool_fast */
}

static MP_NOINLINE void *null_alloc(void)
{
    errno = EINVAL;
    return NULL;
}

static MP_NOINLINE void *plain_alloc(mp_pool *pool)
{
    return lean_alloc(pool, 0);
}

/* Each path is a function of its own (a tail call from here), so that none pays for another's
 * registers. The secure path, the cheapest of those that come here on every call, is tested
 * first and alone. The site is taken here: this is the function the caller's inline path called. */
void *mp_pool_alloc_slow(mp_pool *pool)
{
    if (MP_UNLIKELY(pool == NULL))
        return null_alloc();
    if (POOL_LEAN_ONLY)
        return plain_alloc(pool);
    if (pool_is_secure(pool))
        return secure_alloc(pool);
    switch (pool->path) {
    case MPI_PATH_PLAIN:
    case MPI_PATH_ZERO:
        return plain_alloc(pool);
    case MPI_PATH_SECURE: /* above */
    case MPI_PATH_SECURE_LEAN:
        if (!MP_FREESTANDING) /* bare metal has no secure pools: leaves the code out */
            return secure_lean_alloc(pool);
        break;
    case MPI_PATH_CACHED:
    case MPI_PATH_LOCKED:
        return mpi_ts_alloc(pool, MPI_RETURN_ADDRESS(), false);
    case MPI_PATH_CHECKED:
    case MPI_PATH_HANDLES: /* after the switch: the other paths' compares stay as they were */
        break;
    }
    if (pool->path == MPI_PATH_HANDLES)
        return handles_alloc(pool);
    return mpi_pool_alloc_general(pool, MPI_RETURN_ADDRESS());
}

void *mpi_pool_alloc_reused(mp_pool *pool)
{
    if ((pool->flags & MP_THREAD_SAFE) != 0) {
        if (mpi_tcache_of(pool)->free != NULL)
            return mp_pool_alloc(pool); /* this thread's cache: the inline pop */
        return mpi_ts_alloc(pool, NULL, true);
    }
    return *pool_head(pool) != NULL ? mp_pool_alloc(pool) : NULL;
}

void mp_pool_free_slow(mp_pool *pool, void *block)
{
    if (block == NULL || pool == NULL)
        return;
    if (POOL_LEAN_ONLY) {
        lean_free(pool, block, 0);
        return;
    }
    if (pool_is_secure(pool)) {
        secure_free(pool, block);
        return;
    }
    switch (pool->path) {
    case MPI_PATH_PLAIN:
    case MPI_PATH_ZERO:
        lean_free(pool, block, 0);
        return;
    case MPI_PATH_SECURE: /* above */
    case MPI_PATH_SECURE_LEAN:
        if (MP_FREESTANDING) /* bare metal has no secure pools: leaves the code out */
            break;
        lean_free(pool, block, MPI_CHECK_STATE);
        return;
    case MPI_PATH_CACHED:
    case MPI_PATH_LOCKED:
        mpi_ts_free(pool, block);
        return;
    case MPI_PATH_CHECKED:
    case MPI_PATH_HANDLES: /* below, as in mp_pool_alloc_slow() */
        break;
    }
    if (pool->path == MPI_PATH_HANDLES) {
        handles_free(pool, block);
        return;
    }
    mpi_pool_free_general(pool, block);
}

/* ================================================================================================
 * Reset, trim
 * ============================================================================================== */

/* After a reset: every block slot of every written chunk becomes inaccessible to the tools. */
static void pool_close_all(mp_pool *pool)
{
    for (mpi_run *run = pool->first; run != NULL; run = run->next) {
        for (uint32_t i = 0; i < run->inited; i++)
            mpi_tool_close(pool, run->base + (size_t)i * run->span + run->first_off,
                           run->per_chunk * pool->stride);
    }
}

/* After a reset: no slot is free, so no free bit is set (the invariant in struct mp_pool). */
static void pool_clear_bits(mp_pool *pool)
{
    if ((pool->checks & MPI_CHECK_STATE) == 0)
        return;
    if ((pool->state & MPI_IN_BUFFER) != 0) {
        memset(pool->buffer_bitmap, 0, (size_t)(pool->buffer_run.per_chunk + 7) / 8);
        return;
    }
    for (mpi_run *run = pool->first; run != NULL; run = run->next)
        for (uint32_t i = 0; i < run->inited; i++)
            memset(chunk_bits(pool, (uintptr_t)run->base + (size_t)i * run->span), 0,
                   pool->bitmap_bytes);
}

void mp_pool_reset(mp_pool *pool)
{
    if (pool == NULL)
        return;
    mpi_ts_lock(pool);
    if ((pool->flags & MP_THREAD_SAFE) != 0)
        mpi_ts_reset(pool);
    mpi_tool_forget_live(pool);
    pool_fold_carves(pool);
    *pool_head(pool) = NULL;
    pool_keep_peak(pool);
    pool->carved = 0;
    for (mpi_run *run = pool->first; run != NULL; run = run->next)
        run->carved = 0;
    pool_clear_bits(pool);
    if (POOL_HANDLES(pool->flags))
        mpi_handles_reset(pool);
    pool->resets++;
    if (pool->first != NULL)
        cursor_set(pool, pool->first, 0);
    else
        cursor_clear(pool);
    if ((pool->checks & MPI_CHECK_TOOLS) != 0)
        pool_close_all(pool);
    mpi_ts_unlock(pool);
}

/* Unlinks a run and gives it back to the source; returns its size. */
static size_t pool_release_run(mp_pool *pool, mpi_run *run)
{
    size_t size = run->size;
    if (run->next == NULL)
        pool->last = run->prev;
    MPI_LIST_UNLINK(pool->first, run, next, prev);
    if (run == pool->cur)
        cursor_clear(pool);
    pool->carved -= run->carved;
    pool->held -= run->nchunks * run->per_chunk;
    pool->bytes_reserved -= size;
    pool->nruns--;
    if (pool->run_slots != 0)
        run_table_put(pool, run, NULL);
    run_open(pool, run);
    pool->source.unmap(pool->source.ctx, run->base, size);
    return size;
}

/* Before a checked pool gives a wholly free run back: every block in it is as free() left it (fill,
 * link word), else it is reported and the run kept, since the program still writes to it. */
static bool run_blocks_are_intact(mp_pool *pool, const mpi_run *run)
{
    bool intact = true;
    for (uint64_t k = 0; (pool->checks & MPI_CHECK_FILL) != 0 && k < run->carved; k++)
        intact &= mpi_check_freed(pool, mpi_pool_slot(pool, run, k));
    return intact;
}

/*
 * Four steps: count each run's free blocks (one walk of the free list, finding runs by masking);
 * mark the runs whose carved blocks are all free; drop their blocks from the free list; give them
 * back. A run at or after the cursor with nothing carved is wholly free too, so when the cursor's
 * run goes, so does every run after it, and the cursor is simply cleared.
 */
static size_t pool_trim_locked(mp_pool *pool)
{
    pool_fold_carves(pool);
    pool->trims++;
    if ((pool->state & MPI_IN_BUFFER) != 0 || pool->first == NULL)
        return 0;

    mpi_run *run;
    void **head = pool_head(pool);
    list_walk w;
    for (run = pool->first; run != NULL; run = run->next)
        run->scratch = 0;
    for (walk_start(pool, &w); w.at != NULL; walk_next(pool, &w))
        pool_run_of(pool, w.at)->scratch++;
    if (w.bad)
        return 0; /* a corrupted list (reported): which runs are free is not known */
    bool any = false;
    for (run = pool->first; run != NULL; run = run->next) {
        if (run->scratch == run->carved && run_blocks_are_intact(pool, run)) {
            run->scratch = RUN_RELEASE;
            any = true;
        }
    }
    if (!any)
        return 0;

    void *kept = NULL; /* the last block kept: its link is the one to mend */
    for (walk_start(pool, &w); w.at != NULL;) {
        void *b = w.at;
        walk_next(pool, &w); /* before b's link is mended below */
        if (pool_run_of(pool, b)->scratch != RUN_RELEASE)
            kept = b;
        else if (kept != NULL)
            link_set(pool, kept, w.at);
        else
            *head = w.at;
    }
    mp_assert(!w.bad);
    pool_keep_peak(pool);
    size_t given = 0;
    for (run = pool->first; run != NULL;) {
        mpi_run *next = run->next;
        if (run->scratch == RUN_RELEASE)
            given += pool_release_run(pool, run);
        run = next;
    }
    cursor_expose(pool); /* carved fell: a capacity may allow the inline path more */
    if (MP_DEBUG >= 2)
        mp_assert(pool_is_valid(pool));
    return given;
}

void mpi_pool_forgive_failure(mp_pool *pool)
{
    mpi_ts_lock(pool);
    pool->failed_allocs--;
    mpi_ts_unlock(pool);
}

size_t mp_pool_trim(mp_pool *pool)
{
    if (pool == NULL)
        return 0;
    mpi_ts_lock(pool);
    size_t given = pool_trim_locked(pool);
    mpi_ts_unlock(pool);
    return given;
}

/* ================================================================================================
 * Queries and the invariant validator
 * ============================================================================================== */

uint64_t mpi_pool_free_len(const mp_pool *pool)
{
    list_walk w;
    for (walk_start(pool, &w); w.at != NULL; walk_next(pool, &w))
        ;
    return w.n;
}

/* ------------------------------------------------------------------------------------------------
 * Visiting live blocks. A pool with free bits knows its live blocks: the carved slots whose bit is
 * clear. Any other pool marks its free ones (the free list, and a thread-safe pool's caches) in a
 * scratch bitmap of a bit per carved slot, run->scratch being the index of a run's first bit; the
 * rest of its carved slots are live. The callback runs with no lock held, after the marking, so
 * it may free the block it is given (mempool.h).
 * ---------------------------------------------------------------------------------------------- */

bool mpi_pool_each_slot(const mp_pool *pool, bool is_free, mp_visit_fn *fn, void *ctx)
{
    for (const mpi_run *run = pool->first; run != NULL; run = run->next)
        for (uint64_t k = 0; k < run->carved; k++) {
            mpi_slot s = mpi_pool_slot_of(pool, run, k);
            if (mpi_slot_is_free(&s) == is_free &&
                !fn(mpi_pool_slot(pool, run, k), pool->block_size, ctx))
                return false;
        }
    return true;
}

/* Sets the scratch bit of free block `block`; false when it is no carved slot of the pool (a
 * damaged list: nothing is written, nor read). By arithmetic on the address, O(runs), not by
 * masking as trim does: a damaged link may point anywhere. */
static bool visit_mark(const mp_pool *pool, const void *block, void *bits)
{
    mpi_slot s;
    if (!pool_find_slot_as(pool, block, &s, 0) || s.k >= s.run->carved)
        return false;
    uint64_t i = s.run->scratch + s.k;
    ((unsigned char *)bits)[i / 8] |= (unsigned char)(1u << (i % 8));
    return true;
}

/* Marks every free block of a pool without free bits in `bits` (zeroed, a bit per carved slot);
 * false, after reporting it, when the free list (or a cache) is damaged. Locks held. */
static bool visit_mark_free(const mp_pool *pool, unsigned char *bits)
{
    uint64_t first = 0;
    for (mpi_run *run = pool->first; run != NULL; run = run->next) {
        run->scratch = first;
        first += run->carved;
    }
    list_walk w;
    const void *prev = NULL;
    for (walk_start(pool, &w); w.at != NULL; walk_next(pool, &w)) {
        if (!visit_mark(pool, w.at, bits))
            break;
        prev = w.at;
    }
    bool ok = w.at == NULL && !w.bad &&
              ((pool->flags & MP_THREAD_SAFE) == 0 || mpi_ts_each_cached(pool, visit_mark, bits));
    if (!ok)
        mpi_pool_link_bad(pool, prev != NULL ? prev : w.at);
    return ok;
}

/* Calls fn for each carved slot whose bit is clear, until it returns false (false then). */
static bool visit_unmarked(const mp_pool *pool, const unsigned char *bits, mp_visit_fn *fn,
                           void *ctx)
{
    for (const mpi_run *run = pool->first; run != NULL; run = run->next)
        for (uint64_t k = 0, i = run->scratch; k < run->carved; k++, i++)
            if ((bits[i / 8] & (1u << (i % 8))) == 0 &&
                !fn(mpi_pool_slot(pool, run, k), pool->block_size, ctx))
                return false;
    return true;
}

/* The scratch bitmaps up to this many bytes live on the stack. */
#define VISIT_LOCAL_BYTES 512u

/* Where a larger scratch is mapped from: the system, never the pool's source (a heap's class pool
 * would spend the heap's budget); on bare metal, which has no system, the pool's own source. */
static const mp_source *visit_scratch_source(const mp_pool *pool)
{
    return MP_FREESTANDING ? &pool->source : &mpi_os_source;
}

int mpi_pool_visit(const mp_pool *pool, mp_visit_fn *fn, void *ctx, bool *stopped)
{
    mpi_pool_fold_carves(pool); /* the inline bump's carves are live blocks too */
    if ((pool->checks & MPI_CHECK_STATE) != 0) {
        *stopped = !mpi_pool_each_slot(pool, false, fn, ctx);
        return 0;
    }
    /* The size is read before the lock (no other thread may use the pool, mempool.h) so that the
     * system is never called under it. */
    size_t bytes = (size_t)((pool->carved + 7) / 8), mapped = 0;
    unsigned char local[VISIT_LOCAL_BYTES], *bits = local;
    const mp_source *source = visit_scratch_source(pool);
    if ((pool->state & MPI_IN_BUFFER) != 0) {
        bits = pool->buffer_bitmap; /* unused by a pool without free bits */
    } else if (bytes > sizeof local) {
        mapped = (size_t)mpi_align_up(bytes, mpi_os_page_size());
        bits = mpi_source_map(source, mapped, mpi_os_page_size());
        if (bits == NULL)
            return ENOMEM;
    }
    memset(bits, 0, bytes);
    mpi_ts_lock(pool);
    mp_assert((pool->carved + 7) / 8 == bytes);
    bool ok = visit_mark_free(pool, bits);
    mpi_ts_unlock(pool);
    *stopped = ok && !visit_unmarked(pool, bits, fn, ctx);
    if (mapped != 0)
        source->unmap(source->ctx, bits, mapped);
    return 0;
}

int mp_pool_visit(const mp_pool *pool, mp_visit_fn *fn, void *ctx)
{
    bool stopped;
    return pool == NULL || fn == NULL ? EINVAL : mpi_pool_visit(pool, fn, ctx, &stopped);
}

bool mp_pool_owns(const mp_pool *pool, const void *p)
{
    mpi_slot s;
    if (pool == NULL || p == NULL)
        return false;
    mpi_ts_lock(pool);
    mpi_pool_fold_carves(pool);
    bool owned = mpi_pool_find_slot(pool, p, &s) && s.k < s.run->carved;
    mpi_ts_unlock(pool);
    return owned;
}

/* The runs' list and counts agree with the pool's totals. */
static bool pool_runs_are_valid(const mp_pool *pool)
{
    uint64_t carved = 0, held = 0, n = 0;
    const mpi_run *prev = NULL;
    for (const mpi_run *run = pool->first; run != NULL; prev = run, run = run->next) {
        if (run->prev != prev || run->inited > run->nchunks ||
            run->carved > (uint64_t)run->nchunks * run->per_chunk)
            return false;
        carved += run->carved;
        held += (uint64_t)run->nchunks * run->per_chunk;
        if (++n > pool->nruns)
            return false;
    }
    return prev == pool->last && n == pool->nruns && carved == pool->carved && held == pool->held;
}

/* No free bit is set for a slot that was not carved (struct mp_pool's invariants). O(slots). */
static bool pool_bits_are_carved(const mp_pool *pool)
{
    for (const mpi_run *run = pool->first; run != NULL; run = run->next)
        for (uint64_t k = run->carved; k < (uint64_t)run->inited * run->per_chunk; k++) {
            mpi_slot s = mpi_pool_slot_of(pool, run, k);
            if (mpi_slot_is_free(&s))
                return false;
        }
    return true;
}

/*
 * Every free block is a carved slot of the pool, there are at most carved of them, and at most
 * allocs blocks are in use.
 * A link is followed only after the block holding it is known to be the pool's, so a corrupted
 * list is found, not followed into the wild (and reported, in a pool with free bits, by the walk);
 * the walk's count bound stops a cycle.
 */
static bool pool_free_list_is_valid(const mp_pool *pool, bool locked_all)
{
    list_walk w;
    for (walk_start(pool, &w); w.at != NULL; walk_next(pool, &w)) {
        mpi_slot s;
        if (!mpi_pool_find_slot(pool, w.at, &s) || s.k >= s.run->carved ||
            ((uintptr_t)w.at & (pool->align - 1)) != 0)
            return false;
        if ((pool->checks & MPI_CHECK_STATE) != 0 && !mpi_slot_is_free(&s))
            return false;
        if (POOL_HANDLES(pool->flags) && (MP_LOAD_RELAXED(*block_gen(pool, w.at)) & 1) != 0)
            return false; /* a free block's generation says live */
        if (pool->fast.hmask != 0 && *mpi_pool_hindex(w.at) != block_index_lean(pool, w.at))
            return false; /* the index the inline alloc reads (internal.h) */
    }
    if (w.bad)
        return false;
    uint64_t n = w.n;
    if ((pool->checks & MPI_CHECK_STATE) != 0 && !pool_bits_are_carved(pool))
        return false;
    /* a handle pool (never with caches): exactly the blocks in use have a live generation */
    if (POOL_HANDLES(pool->flags) && locked_all && mpi_handles_live(pool) != pool->carved - n)
        return false;
    /* blocks in use (not free, nor in a thread's cache) were each allocated */
    if ((pool->flags & MP_THREAD_SAFE) != 0) {
        /* Threads move their caches' counters while this runs, so only a bound that no race can
         * break is checked: the free list and a floor of the cached blocks fit in what was carved.
         * The caches cannot be read at all without the registry lock. */
        return !locked_all || n + mpi_ts_cached_floor(pool) <= pool->carved;
    }
    return n <= pool->carved && pool->carved - n <= pool->fast.allocs;
}

/* The cursor and the inline path's window (internal.h, struct mp_pool), with carved counted. */
static bool pool_cursor_is_valid(const mp_pool *pool)
{
    const char *bump = pool->fast.bump, *end = pool->fast.end;
    if (pool->counted != bump || (uintptr_t)pool->bump_end < (uintptr_t)bump ||
        (size_t)(pool->bump_end - bump) % pool->stride != 0 || pool->fast.stride != pool->stride)
        return false;
    if (end == NULL)
        return true;
    return pool->path == MPI_PATH_PLAIN && (pool->state & MPI_POPULATE) == 0 &&
           (uintptr_t)bump <= (uintptr_t)end && (uintptr_t)end <= (uintptr_t)pool->bump_end &&
           (size_t)(end - bump) % pool->stride == 0 &&
           (uint64_t)(end - bump) / pool->stride <= pool->capacity_max - pool->carved;
}

static bool pool_is_valid_as(const mp_pool *pool, bool locked_all)
{
    mpi_pool_fold_carves(pool);
    if (pool->carved > pool->capacity_max || pool->carved > pool->held)
        return false;
    if (!pool_is_slow(pool) && pool->list != NULL)
        return false;
    if (pool->fast.hmask == 0 ? pool->fast.hfree != NULL
                              : pool->path != MPI_PATH_HANDLES || (pool->flags & MP_ZERO) != 0)
        return false; /* the inline handle path's (internal.h) */
    if (!pool_cursor_is_valid(pool))
        return false;
    return pool_runs_are_valid(pool) && pool_free_list_is_valid(pool, locked_all);
}

/* The validator as the slow paths call it (MP_DEBUG 2): a thread-safe pool's lock is held, but
 * not the registry's. */
static bool pool_is_valid(const mp_pool *pool)
{
    return pool_is_valid_as(pool, false);
}

bool mp_pool_check(const mp_pool *pool)
{
    if (pool == NULL)
        return false;
    mpi_ts_lock(pool);
    bool valid = pool_is_valid_as(pool, true);
    mpi_ts_unlock(pool);
    return valid;
}

size_t mp_pool_block_size(const mp_pool *pool)
{
    return pool != NULL ? pool->block_size : 0;
}

size_t mp_pool_align(const mp_pool *pool)
{
    return pool != NULL ? pool->align : 0;
}

const char *mp_pool_name(const mp_pool *pool)
{
    return pool != NULL ? pool->name : "";
}

/*
 * mempool.h: the whole public API of mempool, a C11 library of memory pools.
 *
 * A pool hands out blocks of one size. It takes memory from the system (or from a buffer the caller
 * gives it) in large chunks, lazily, and hands blocks out and back through an intrusive free list,
 * so mp_pool_alloc() and mp_pool_free() are a handful of instructions inlined into the caller.
 *
 *     mp_pool *pool = mp_pool_create(&(mp_pool_opts){ .block_size = 64, .name = "conns" });
 *     void *p = mp_pool_alloc(pool);
 *     mp_pool_free(pool, p);
 *     mp_pool_destroy(pool);
 *
 * Conventions on every declaration below: allocating functions return NULL and set errno; setup
 * functions return 0 or an errno code; checks return bool. Unless a declaration says otherwise, a
 * pool is not thread-safe: calls on one pool must not overlap, calls on different pools may.
 * The design and its invariants are written down in docs/design.md.
 *
 * Bare metal: a library built with MP_FREESTANDING=1 (src/config.h) has no system under it. The
 * program defines MP_FREESTANDING=1 as well before it includes this header. Then: errors set
 * mp_errno, not errno; pools and arenas live in a caller's buffer or over a caller's mp_source
 * (without either, create fails with ENOSYS, as do MP_THREAD_SAFE and MP_SECURE, and MP_CHECKED
 * and MP_HANDLES in a library built with MP_FREESTANDING_CHECKED=0, which leaves checked pools
 * out); the heaps (mp_heap_*, mp_malloc and its family, mp_default_heap), mp_stats_write(),
 * mp_heap_stats_write() and mp_stats_print() are not defined (a call fails to link); statistics
 * are numbers only; an error report reaches only the handler of mp_set_error_handler(), else
 * traps.
 */
#ifndef MEMPOOL_H
#define MEMPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#if !defined(MP_FREESTANDING) || !MP_FREESTANDING
#include <stdio.h>
#endif

#ifdef __cplusplus
extern "C" {
/* In C++, -Wshadow (GCC) warns that mp_heap_stats() and mp_arena_stats() hide their structs'
 * names, which C code names with `struct`, as this header does. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#endif
#endif

#define MP_VERSION_MAJOR 0
#define MP_VERSION_MINOR 1
#define MP_VERSION_PATCH 0

#if defined(__GNUC__) || defined(__clang__)
#define MP_LIKELY(x) __builtin_expect(!!(x), 1)
#define MP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MP_NOINLINE __attribute__((noinline))
/* The fast path is inlined even at -O0, so a checked pool's leak report names the caller's line. */
#define MP_ALWAYS_INLINE inline __attribute__((always_inline))
/* Tells the compiler a fact the library keeps, so an inlined path need not test it again. */
#define MP_ASSUME(x) ((x) ? (void)0 : __builtin_unreachable())
#else
#define MP_LIKELY(x) (x)
#define MP_UNLIKELY(x) (x)
#define MP_NOINLINE
#define MP_ALWAYS_INLINE inline
#define MP_ASSUME(x) ((void)0)
#endif

/* ------------------------------------------------------------------------------------------------
 * Options
 * ---------------------------------------------------------------------------------------------- */

/* Flags for mp_pool_opts.flags. */
enum {
    /* Blocks come zero-filled from mp_pool_alloc(), like calloc(). Costs a memset per alloc. */
    MP_ZERO = 1u << 0,
    /*
     * A thread-safe pool may be used from any number of threads at once: any thread allocates, any
     * thread frees any block, including blocks another thread allocated. Each thread keeps a small
     * cache of free blocks (opts.thread_cache) that its alloc and free use inline, with no lock and
     * no atomic read-modify-write; a full or empty cache moves half its size to or from the pool
     * under the pool's lock, at most once per half its size of operations. A thread that exits
     * gives its cached blocks back. Reset and destroy need every other thread to have stopped using
     * the pool; alloc, free, trim, owns, check and stats may be called from any thread. What
     * differs from a plain pool: reuse is LIFO within a thread's cache, not across threads; blocks
     * taken into a cache count as handed out (mp_pool_owns() is true for them) and count in
     * blocks_peak; stats read while other threads allocate are a snapshot of each thread's
     * counters, exact once they stop.
     * fork() may be called from any thread at any time: the library takes all its locks around
     * it, so the child can use every thread-safe pool and heap (mp_malloc's included) at once; the
     * blocks the other threads held stay in use there, their caches' free blocks are given back.
     * A plain pool or heap, or an arena, is whole in the child only if no other thread used it.
     */
    MP_THREAD_SAFE = 1u << 1,
    /*
     * A checked pool stops user bugs with a clear message (see mp_set_error_handler()): double
     * free, invalid free (a pointer the pool never handed out: another pool's block, an interior
     * pointer, a stack or static address), write after free (freed blocks are filled with
     * MP_FILL_FREED after their first word, verified when handed out again, at destroy and by
     * mp_pool_trim() before it gives their memory back; the first word, the free-list link, is kept
     * twice, and a write to it is found in the same places and wherever the list is walked, for
     * every block size), overflow (MP_FILL_CANARY bytes after each block, verified at free and at
     * destroy) and leaks (at destroy, with the address each leaked block was allocated from). A
     * damaged link is reported as a write after free, "... (its link was overwritten)", once for
     * the block even where the write reached its fill too. Every call takes the slow path: several
     * times slower than a plain pool, and each block takes 16 bytes more. A plain pool pays
     * nothing for it.
     */
    MP_CHECKED = 1u << 2,
    /*
     * A secure pool resists heap corruption: free-list links are encoded with a per-pool random
     * secret and the link's address, and each link is validated wherever the list is walked: when
     * popped, and by mp_pool_stats(), mp_pool_trim() and mp_pool_check() (a planted pointer is
     * reported as a corrupted free list instead of followed); every free is checked against a
     * per-block state bit kept out of band, in the chunk header (double free and invalid free are
     * reported). Every call takes the slow path.
     */
    MP_SECURE = 1u << 3,
    /*
     * A handle pool gives each live block a handle (mp_pool_handle()): a 64-bit reference that
     * mp_pool_deref() turns back into the block while it is live, and into NULL once it has been
     * freed, even after its memory was handed out again, so a reference to a freed object is caught
     * instead of reading whatever reuses the memory (the slot maps of entity systems). Blocks are
     * still allocated and freed with mp_pool_alloc() and mp_pool_free(). Each block slot has a
     * 32-bit generation, kept out of band in tables the pool maps from its source (4 bytes a block,
     * up to 16 with the tables' rounding and the copies a growth leaves until destroy), advanced at
     * each alloc and each free. A pool of MP_HANDLES alone, from a source, with blocks of at least
     * a pointer and 4 bytes (the stride), chunks below 4 GiB, and no tool watching (a library
     * built for ASan, or built for Valgrind and run under it) keeps alloc (of a block freed
     * before), free and mp_pool_handle() inline with no call: alloc pops the block and adds one to
     * the generation whose index the free left after the block's link, free finds that index by a
     * mask and a multiplication; carving a never-used block, and every call on any other handle
     * pool, takes the slow path. A thread-safe handle pool keeps no thread caches (its calls take
     * the lock). Combines with every other flag and with a buffer (size it with
     * MP_POOL_BUFFER_SIZE_FLAGS).
     */
    MP_HANDLES = 1u << 4,
};

/* A handle of a block of a MP_HANDLES pool (see mp_pool_handle()); 0 is never a valid handle. */
typedef uint64_t mp_handle;

/* The byte a checked pool fills freed blocks with (after the link in their first word). */
#define MP_FILL_FREED 0xDF
/* The byte of the guard a checked pool keeps after each block (at least 8 bytes of it). */
#define MP_FILL_CANARY 0xCA

/* The longest pool name kept, terminator included; longer names are cut on a UTF-8 character
 * boundary (see mp_pool_opts.name). */
#define MP_NAME_MAX 32

/*
 * Where a pool gets its chunks: the system by default, or these functions (SQLite's pluggable
 * backend, one struct of function pointers). Tests wrap it to inject failures; programs may use it
 * for huge pages, shared memory or accounting.
 *   map:   returns `size` bytes aligned to `align` (a power of two, at least 4096; `size` is a
 *          multiple of 4096), or NULL when no memory can be had. The memory need not be zeroed.
 *   unmap: gives back exactly a region that map returned, with the same size.
 * Memory that map returns not aligned as asked is given back at once and counts as a refusal
 * (so the request fails with ENOMEM), whatever the source.
 * Both are called with `ctx`. The pool calls them only from inside mp_pool_* calls on that pool.
 */
typedef struct mp_source {
    void *(*map)(void *ctx, size_t size, size_t align);
    void (*unmap)(void *ctx, void *p, size_t size);
    void *ctx;
} mp_source;

/*
 * What a pool is made of. Zero-initialise what you do not set: only block_size is required.
 *   block_size:  bytes in each block (>= 1). Blocks smaller than a pointer take a pointer's room.
 *   align:       0 for the default, which suits any object of block_size (the largest power of two
 *                dividing block_size, capped at alignof(max_align_t), at least alignof(void *));
 *                otherwise a power of two, any size. Blocks are aligned to at least this.
 *   capacity:    the most blocks live at once; 0 = unbounded (limited by memory).
 *   flags:       MP_ZERO, ... (above).
 *   buffer, buffer_size: when buffer is not NULL the pool lives entirely inside it, its own
 *                bookkeeping included, and never calls the system or malloc. The buffer must stay
 *                valid until mp_pool_destroy(); the pool does not free it.
 *   name:        shown in statistics and messages; copied, cut to at most MP_NAME_MAX - 1 bytes on
 *                a character boundary: a UTF-8 sequence is kept whole or dropped with the rest, and
 *                a byte that begins no well-formed sequence counts as one character, kept as it is
 *                (so a name in UTF-8 stays UTF-8). NULL = "".
 *   source:      where chunks come from (above); NULL = the system (mmap). Ignored with a buffer.
 *   thread_cache: MP_THREAD_SAFE pools: the most free blocks each thread keeps for itself; 0 = the
 *                default (1024, fewer for large blocks: at most 64 KiB a thread; at least 2). Half
 *                of it moves between a cache and the pool at once, in O(1) (at most 256 blocks
 *                when they come from the pool's free list or are carved). Thread-safe pools that
 *                are checked, secure or have a capacity keep none: every call takes the pool's
 *                lock, so every check runs and no thread is refused a block while another
 *                thread's cache holds free ones. So does a pool made while 32767 other thread-safe
 *                pools with caches exist.
 */
typedef struct mp_pool_opts {
    size_t block_size;
    size_t align;
    size_t capacity;
    unsigned flags;
    void *buffer;
    size_t buffer_size;
    const char *name;
    const mp_source *source;
    size_t thread_cache;
} mp_pool_opts;

typedef struct mp_pool mp_pool;

/*
 * Buffers sized at compile time: the bytes a buffer must have so that a pool made in it
 * (opts.buffer) with that block size and align (as in mp_pool_opts: 0 for the default, else a
 * power of two) holds `count` live blocks at once. Exact: one byte less holds fewer. An integer
 * constant expression of type size_t, usable as a static array's length. It assumes the buffer is
 * aligned to MP_POOL_BUFFER_ALIGN(size, align) (less aligned, it may hold fewer):
 *
 *     static _Alignas(MP_POOL_BUFFER_ALIGN(24, 0)) unsigned char b[MP_POOL_BUFFER_SIZE(24, 0, 9)];
 *     mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 24, .buffer = b,
 *                                                     .buffer_size = sizeof b});
 *
 * For plain, MP_ZERO and MP_SECURE pools, in every build (with AddressSanitizer or under Valgrind
 * too); for a checked pool, whose blocks carry guard bytes, or a handle pool, use
 * MP_POOL_BUFFER_SIZE_FLAGS. No overflow check is made: the arguments must be those of a pool that
 * mp_pool_create() accepts. The layout of a buffer pool, which it follows (docs/design.md):
 *   [ the pool: MP_POOL_HEADER_BYTES ][ MP_HANDLES: a generation per block and one, 4 bytes each ]
 *   [ a bit per block ][ pad to align ][ count blocks ]
 * each block taking its size (at least a pointer's) rounded up to the alignment. C11 or C++11.
 */
#define MP_POOL_BUFFER_SIZE(size, align, count) MP_POOL_BUFFER_SIZE_FLAGS(size, align, count, 0)

/* MP_POOL_BUFFER_SIZE for a pool with these flags: MP_CHECKED blocks take room for their guard
 * and allocation site, MP_HANDLES blocks 4 bytes each (and 4 more) for their generations; the
 * other flags change nothing. */
#define MP_POOL_BUFFER_SIZE_FLAGS(size, align, count, flags)                                       \
    (MP_ROUND_UP_(MP_POOL_HEADER_BYTES + MP_GENS_BYTES_(count, flags) + ((size_t)(count) + 7) / 8, \
                  MP_ALIGN_OF_(size, align)) +                                                     \
     (size_t)(count)*MP_STRIDE_(size, align, flags))

/* The alignment MP_POOL_BUFFER_SIZE assumes of the buffer: the larger of the blocks' alignment (as
 * mp_pool_align() would say) and alignof(max_align_t), for _Alignas on a static buffer. */
#define MP_POOL_BUFFER_ALIGN(size, align)                                                          \
    MP_MAX_(MP_ALIGN_OF_(size, align), MP_ALIGNOF_(max_align_t))

/* The bytes a pool's own bookkeeping takes at the start of its buffer, whatever the flags. */
#define MP_POOL_HEADER_BYTES ((size_t)96 * sizeof(void *) + 512)

/* ------------------------------------------------------------------------------------------------
 * Creating and destroying pools
 * ---------------------------------------------------------------------------------------------- */

/*
 * Creates a pool of blocks of opts->block_size bytes.
 * Complexity: O(1); no block is touched and no chunk is taken until the first mp_pool_alloc(). A
 * pool that is not in a buffer takes one page from the source for its own bookkeeping.
 * Returns NULL if and only if:
 *   - errno = EINVAL: opts is NULL; block_size is 0; align is not 0 and not a power of two; flags
 *     has an unknown bit; a source lacks map or unmap; MP_THREAD_SAFE with a buffer; a block
 *     (rounded up to align, plus a chunk header) that no chunk of at most SIZE_MAX / 4 bytes holds;
 *     block_size rounded up to align, times capacity, overflows size_t (whatever the flags: a
 *     checked pool's guard bytes are not counted, since the capacity only bounds live blocks); a
 *     buffer is given with a size too small for the pool's bookkeeping and one block;
 *   - errno = ENOMEM: the source could not give the page for the pool's bookkeeping;
 *   - errno = ENOSYS (MP_FREESTANDING only): MP_THREAD_SAFE or MP_SECURE, or neither a buffer nor
 *     a source; MP_CHECKED or MP_HANDLES where the library leaves checked pools out
 *     (MP_FREESTANDING_CHECKED=0).
 * Thread-safety: may be called from any thread at any time.
 */
mp_pool *mp_pool_create(const mp_pool_opts *opts);

/*
 * Destroys the pool and gives all its memory back to the source, like freeing every block at once.
 * A thread-safe pool may be destroyed once no other thread uses it, even if threads that used it
 * still run (their caches of it are dropped, and they may exit later).
 * Blocks still live become invalid. Does nothing when pool is NULL. A checked pool first verifies
 * every block (write after free, overflow) and reports blocks still live as a leak.
 * Complexity: O(number of chunk runs): runs double up to MP_RUN_MAX_CHUNKS chunks (16 MiB by
 * default), so O(log(peak bytes)) up to there and then one run per 16 MiB held.
 * Undefined: using the pool or any of its blocks afterwards.
 */
void mp_pool_destroy(mp_pool *pool);

/* ------------------------------------------------------------------------------------------------
 * Allocating and freeing (the fast path is inline; see "Internals" at the end of this file)
 * ---------------------------------------------------------------------------------------------- */

#ifdef MP_NO_INLINE /* exported functions (see "Internals" at the end of this file) */
void *mp_pool_alloc(mp_pool *pool);
void mp_pool_free(mp_pool *pool, void *block);
#else
static inline void *mp_pool_alloc(mp_pool *pool);
static inline void mp_pool_free(mp_pool *pool, void *block);
#endif

/*
 * mp_pool_alloc: like malloc(block_size), but from the pool.
 * Guarantees: the block is aligned to the pool's alignment and does not overlap any other live
 * block; its contents are unspecified (zero with MP_ZERO). The most recently freed block is reused
 * first.
 * Complexity: O(1). The fast path (a block on the free list) is about five instructions with no
 * call; with the list empty, a never-used block of the chunk being carved costs about five more,
 * still with no call (a bump pointer: so does every block after mp_pool_reset(), as long as the
 * pool is plain). The slow path moves to the next chunk and, when a chunk run is used up, takes a
 * new run from the source (at most one source call).
 * Returns NULL if and only if:
 *   - errno = ENOMEM: the pool holds `capacity` live blocks, or the source could not give memory
 *     (a buffer pool: its buffer is full; a MP_HANDLES pool: also for its generation tables, or
 *     when its chunks would need more than the 2^32 indexes a handle names). The pool counts it in
 *     failed_allocs and stays usable;
 *   - errno = EINVAL: pool is NULL.
 * Thread-safety: none; see the file header.
 *
 * mp_pool_free: like free(), but the block goes back to its pool. Does nothing when block is NULL.
 * Complexity: O(1), never a call into the system.
 * Undefined: freeing a block twice, a pointer the pool did not hand out (another pool's block, an
 * interior pointer), a NULL pool with a non-NULL block; using a block after freeing it. A checked
 * pool catches all but the NULL pool (and a use after free that only reads); a secure pool catches
 * double and invalid frees and a corrupted link.
 */

/*
 * Makes every block free at once, as if each had been freed, without touching any block, like
 * apr_pool_clear(). What a reset keeps: every chunk the pool holds (memory goes back only with
 * mp_pool_trim() or mp_pool_destroy()), its options, and its statistics' totals (allocs; frees
 * count the reset blocks as freed; blocks_peak is kept; resets counts it). blocks_free is 0
 * afterwards, since every block is never-used space again. The blocks are handed out again as
 * they were first carved: in a plain pool by the inline bump pointer, with a call only at each
 * chunk's end, so a build-use-reset loop costs what carving fresh space costs. The order is the
 * first carving's: chunk run by chunk run in the order the runs were taken, each from its lowest
 * address up. So the first block after a reset is the first block of the oldest run the pool
 * holds, which need not be its lowest address (the source may place a later run below it).
 * Does nothing when pool is NULL.
 * Complexity: O(number of chunk runs); a checked or secure pool also clears the free bits of every
 * chunk it has used (one bit per block, kept beside the chunk's header, not in the blocks).
 * Undefined: using a block that was live before the reset.
 */
void mp_pool_reset(mp_pool *pool);

/*
 * Gives back to the source every chunk run whose blocks are all free, like malloc_trim(). Returns
 * the number of bytes given back (0 for a NULL pool or a buffer pool, which never gives memory
 * back). A checked or secure pool validates each link it follows: a damaged one is reported (as the
 * alloc that reached it would) and nothing is given back. A checked pool also verifies every block
 * of a run before giving it back: a block written after free is reported and its run kept.
 * Complexity: O(free blocks + chunk runs): it walks the free list once (twice when a run goes); a
 * checked or secure pool O(free blocks * chunk runs), and a checked pool reads every block it gives
 * back.
 */
size_t mp_pool_trim(mp_pool *pool);

/*
 * True if and only if `p` is the start of a block of this pool that has been handed out at least
 * once since the last reset or trim (it may be live or free now). False for NULL arguments,
 * interior pointers and any other address. Never dereferences `p`.
 * Complexity: O(number of chunk runs).
 */
bool mp_pool_owns(const mp_pool *pool, const void *p);

/*
 * Runs the pool's invariant validator (docs/design.md, "Invariants"): the free list is acyclic,
 * each free block lies in the pool and is aligned, and the counts add up
 * (in_use + free + never_used == blocks the chunks can hold). True if every invariant holds; false
 * for a NULL pool or a broken invariant (user memory corruption, or a bug here). A checked or
 * secure pool also reports a damaged link it finds, as its alloc would (the default handler
 * aborts), and returns false if the handler returns. In a thread-safe pool
 * that other threads use meanwhile, the blocks in their caches are counted from counters that move
 * as it runs, so only the bounds no race can break are checked (never a false alarm). A checked or
 * secure pool also checks that no slot not handed out since the last reset is marked free.
 * Complexity: O(free blocks + chunk runs); a checked or secure pool: also O(slots of its chunks
 * that were not carved since the last reset).
 */
bool mp_pool_check(const mp_pool *pool);

#ifdef MP_NO_INLINE
mp_handle mp_pool_handle(const mp_pool *pool, const void *block);
void *mp_pool_deref(const mp_pool *pool, mp_handle handle);
#else
static inline mp_handle mp_pool_handle(const mp_pool *pool, const void *block);
static inline void *mp_pool_deref(const mp_pool *pool, mp_handle handle);
#endif

/*
 * Handles (MP_HANDLES pools): a reference to a block that knows when the block is freed, like the
 * handle of a slot map (a generation per slot).
 *
 * mp_pool_handle: the handle of a live block: mp_pool_deref(pool, handle) gives back `block` while
 * it is live. The same block gives the same handle until it is freed; a block handed out again
 * gets a new one. A handle is the block's chunk number and slot, and the slot's generation.
 * Complexity: O(1), inline for a pool whose free is (see MP_HANDLES): a mask, a multiplication and
 * two loads; a call for other handle pools.
 * Returns 0 if and only if (a handle is never 0):
 *   - errno = EINVAL: pool or block is NULL; the pool was made without MP_HANDLES; block is a free
 *     block of the pool (its generation says free).
 * Undefined: a block that is not one of this pool's (another pool's, an interior pointer).
 * Thread-safety: a thread-safe pool's, from any thread with no lock, while the block is live.
 *
 * mp_pool_deref: the block a handle refers to while it is live; NULL once it has been freed (even
 * after its memory was handed out again), once mp_pool_reset() made every block free, once
 * mp_pool_trim() gave its chunk back (its generations are kept, so a chunk that later takes its
 * number does not revive it), and for any value the pool never made (0, another pool's handle,
 * random bits: never a fault, whatever the value), a NULL pool or a pool without MP_HANDLES.
 * Handles survive mp_pool_trim() of other chunks. errno is not set.
 * Wrap-around: each alloc and each free advance the slot's 32-bit generation by one (odd: live;
 * a handle holds the generation halved), so it wraps after 2^31 reuses of the same slot; a handle
 * made exactly a multiple of 2^31 reuses of its slot earlier would then deref again, to the slot's
 * new block (the limit of every slot map with 32-bit generations; slots are not retired).
 * Complexity: O(1), inline: a bound, the slot's generation, a compare, the chunk's base; no lock,
 * no store, no call.
 * Thread-safety: a thread-safe pool's, from any thread with no lock, while other threads allocate,
 * free and trim. The generation is read with a relaxed atomic load: a deref that races the block's
 * free may return the block (as a pointer read just before the free would be); the caller must
 * order its use of the block against frees itself, as with any pointer. A plain pool's handles
 * follow its rule: no call overlaps another on the pool.
 */

/*
 * Visiting live blocks (mimalloc's mi_heap_visit_blocks): mp_pool_visit() calls fn(block, size,
 * ctx) once for every live block of the pool (handed out and not freed), with size the pool's
 * block size, and never for a free one, nor one held in a thread's cache; in slot order (each chunk
 * run from its lowest address up, the runs in the order they were taken). fn returns true to go on,
 * false to stop.
 *   fn may free the block it was given (and only that block) into the pool; it must make no other
 *   call on this pool (or, for mp_heap_visit, on this heap); it may use any other pool or heap.
 *   Complexity: O(blocks carved since the last reset + chunk runs), plus the calls; a pool without
 *   free bits (plain, MP_ZERO, MP_THREAD_SAFE) also finds each free block's slot from its address:
 *   O(free blocks * chunk runs). Such a pool needs a bit of scratch memory per carved block: a
 *   buffer pool has it in its buffer; a pool from a source holding up to 4096 carved blocks uses
 *   the stack, a larger one maps it for the call from the system (not from the pool's source), or
 *   on bare metal (MP_FREESTANDING), which has no system, from the pool's source.
 *   A checked or secure pool reads its free bits: no scratch, and its free list is not walked.
 *   A pool without free bits whose list (or a thread's cache) leads to an address that is no block
 *   it carved reports a corrupted free list (as a checked pool's walks do, mp_set_error_handler())
 *   and visits nothing; any other damage the program did to its free blocks is undefined.
 *   Thread-safety: none on the pool: no other thread may use the pool meanwhile, as for
 *   mp_pool_reset(), even a thread-safe one (its threads' caches are read as they stand); other
 *   pools and heaps may be used from any thread, fn included.
 *   Returns 0 (also when fn stopped the visit), EINVAL when pool or fn is NULL, or ENOMEM when the
 *   scratch memory could not be had; fn is never called then.
 * mp_heap_visit() does the same for a heap: every live block of each class pool (by increasing
 * class, size the usable size: the class's block size), then every large block in use (the newest
 * first, size its usable size). Same rules: no other thread may use the heap meanwhile. Returns 0,
 * EINVAL, or ENOMEM when a class's scratch could not be had (the classes before it were visited).
 */
typedef bool mp_visit_fn(void *block, size_t size, void *ctx);
int mp_pool_visit(const mp_pool *pool, mp_visit_fn *fn, void *ctx);

/* The pool's block size as asked for, the alignment it uses (the default worked out when 0 was
 * asked for) and its name (0, 0 and "" for a NULL pool). O(1). */
size_t mp_pool_block_size(const mp_pool *pool);
size_t mp_pool_align(const mp_pool *pool);
const char *mp_pool_name(const mp_pool *pool);

/* ------------------------------------------------------------------------------------------------
 * Errors caught in checked and secure pools
 * ---------------------------------------------------------------------------------------------- */

typedef enum mp_error_kind {
    MP_ERR_DOUBLE_FREE = 1,   /* "double free" */
    MP_ERR_INVALID_FREE,      /* "invalid free" */
    MP_ERR_WRITE_AFTER_FREE,  /* "write after free" */
    MP_ERR_OVERFLOW,          /* "overflow" */
    MP_ERR_LEAK,              /* "leak" */
    MP_ERR_CORRUPT_FREE_LIST, /* "corrupted free list" */
} mp_error_kind;

/* What a handler receives about one error. Valid only during the call. */
typedef struct mp_error {
    mp_error_kind kind;
    const mp_pool *pool;
    const char *pool_name;
    const void *addr;    /* the block concerned; for MP_ERR_LEAK, the first leaked block */
    const void *site;    /* where addr was allocated (a return address in the caller of
                            mp_pool_alloc), when known; else NULL */
    uint64_t count;      /* MP_ERR_LEAK: the number of blocks leaked; otherwise 1 */
    const char *message; /* the one line the default handler prints, without a newline */
} mp_error;

/* An error handler: receives each error and the ctx given to mp_set_error_handler(). */
typedef void mp_error_fn(const mp_error *error, void *ctx);

/*
 * Installs the handler called for each error a checked or secure pool catches; NULL restores the
 * default, which prints error->message and a newline to stderr and calls abort(). The message reads
 *     mempool: double free of 0x5581c0a2f040 in pool "conns"
 * If a handler returns, the library goes on safely and loses nothing it can keep: a double or
 * invalid free is ignored; a block found written after free is still handed out; an overflowed
 * block is still freed; a destroy with leaks still gives all memory back; a corrupted free list is
 * cut at the corruption by the alloc that reaches it (the blocks after it are abandoned, never
 * handed out), and a walk that finds it (stats, trim, check) stops there: stats count the blocks
 * before it, trim gives nothing back, check returns false; a trim keeps a run holding a block
 * written after free.
 * Thread-safety: set it before other threads use pools; the handler may be called from any thread.
 */
void mp_set_error_handler(mp_error_fn *handler, void *ctx);

/* The name of an error kind as it appears in messages ("double free", ...); "unknown" otherwise. */
const char *mp_error_name(mp_error_kind kind);

/* ------------------------------------------------------------------------------------------------
 * Statistics: exact and always on
 * ---------------------------------------------------------------------------------------------- */

/* A pool's statistics, as mp_pool_stats() fills them. */
typedef struct mp_stats {
    char name[MP_NAME_MAX];
    size_t block_size;       /* as asked for */
    size_t align;            /* as used */
    size_t stride;           /* bytes between two blocks: block_size rounded up to align (in a
                              checked pool, after room for the guard and the caller's address) */
    size_t capacity;         /* the most blocks live at once; 0 = unbounded */
    uint64_t blocks_in_use;  /* handed out and not freed */
    uint64_t blocks_peak;    /* the most blocks in use at once since creation (in a thread-safe
                               pool, blocks in threads' caches count too) */
    uint64_t blocks_free;    /* on the free list, ready for reuse */
    uint64_t allocs;         /* successful mp_pool_alloc() calls */
    uint64_t frees;          /* blocks given back (mp_pool_free() of a block, and by reset) */
    uint64_t failed_allocs;  /* mp_pool_alloc() calls that returned NULL */
    uint64_t bytes_reserved; /* taken from the source or the buffer, and not given back */
    uint64_t bytes_used;     /* blocks_in_use * block_size: what the program asked for and holds */
    uint64_t chunks;         /* chunks held (a buffer pool's buffer counts as one) */
    uint64_t source_maps; /* regions the source's map has given, for chunk runs and bookkeeping */
    uint64_t resets;      /* mp_pool_reset() calls */
    uint64_t trims;       /* mp_pool_trim() calls */
} mp_stats;

/*
 * Fills *out with the pool's statistics, exactly. Invariants: allocs - frees == blocks_in_use;
 * blocks_in_use <= blocks_peak; bytes_used <= bytes_reserved.
 * Complexity: O(blocks on the free list). The inline fast path counts allocations only, to stay as
 * fast as the original free list; blocks in use are the blocks carved minus the free list's length,
 * which this walks, and frees are allocs - blocks_in_use. A checked or secure pool validates each
 * link it follows (O(free blocks * chunk runs)): a damaged one is reported as its alloc would
 * report it, and if the handler returns, the free blocks counted are those up to the damage (the
 * rest are lost to the program, as the alloc that reaches the damage cuts the list there).
 * Undefined in a plain pool: a free list damaged by the program (it is followed as it is).
 * Returns 0, or EINVAL when pool or out is NULL (out untouched).
 */
int mp_pool_stats(const mp_pool *pool, mp_stats *out);

/* Output formats for mp_stats_write(). */
enum { MP_FORMAT_TEXT = 0, MP_FORMAT_JSON = 1 };

/* Receives output text: `len` bytes at `text`, not NUL-terminated. */
typedef void mp_write_fn(void *ctx, const char *text, size_t len);

/*
 * Writes the statistics as human-readable text (one "key: value" per line, headed by the name) or
 * as one JSON object with the field names of mp_stats, through `write`. The library never prints
 * unless asked to here. The name is the bytes of stats->name before its first NUL (at most
 * MP_NAME_MAX - 1). Text writes them as they are. JSON (RFC 8259) is valid UTF-8 whatever they
 * are: the quote and the backslash are escaped with a backslash, control characters below 0x20 as
 * \u00XX, well-formed UTF-8 sequences are written as they are, and each other byte (a continuation
 * byte out of place, an overlong form, a surrogate, above U+10FFFF, a sequence cut short) as
 * \ufffd, the replacement character.
 * Returns 0, or EINVAL when stats or write is NULL or format is unknown (nothing written).
 */
int mp_stats_write(const mp_stats *stats, int format, mp_write_fn *write, void *ctx);

#if !defined(MP_FREESTANDING) || !MP_FREESTANDING
/* Like mp_stats_write(), to a stdio stream. Returns 0, EINVAL as above, or EIO if the stream
 * failed. */
int mp_stats_print(const mp_stats *stats, int format, FILE *out);
#else
/* Bare metal's errno (MP_FREESTANDING): set where a hosted library sets errno. One word, not per
 * thread: there are no threads, and an interrupt handler that allocates should save it. */
extern int mp_errno;
#endif

/* ------------------------------------------------------------------------------------------------
 * Heaps: any size, made of pools (one per size class), large blocks straight from the source
 * ---------------------------------------------------------------------------------------------- */

typedef struct mp_heap mp_heap;

/* Size classes of a heap: 8, 16, then multiples of 16 (32, 48, 64, 80, 96, 112, 128), then 8
 * classes per doubling up to MP_HEAP_MAX_CLASS (144, 160, ..., 256, 288, ...). Every class above 8
 * is a multiple of 16, so every block of more than 8 bytes is 16-aligned as C asks of malloc; the
 * price is that requests of 65 to 128 bytes may waste up to 15/80 (18.75%) of their block; above
 * 128 bytes no request wastes more than 12.5%. Requests above MP_HEAP_MAX_CLASS are large blocks,
 * mapped from the source one by one. */
#define MP_HEAP_CLASSES 97
#define MP_HEAP_MAX_CLASS ((size_t)256 * 1024)

/*
 * What a heap is made of; zero-initialise what you do not set, or pass NULL for all defaults.
 *   flags:    MP_THREAD_SAFE (any thread may allocate and free, with per-thread caches), MP_CHECKED
 *             (every class pool checked: double free, invalid free, write after free, overflow and
 *             leaks are reported as for pools), MP_SECURE, MP_ZERO.
 *   capacity: the most bytes the heap takes from its source (or buffer) at once, its own
 *             bookkeeping included; 0 = unbounded.
 *   buffer, buffer_size: the heap lives inside this buffer, its bookkeeping included, and never
 *             calls the system or malloc (then MP_THREAD_SAFE is refused). Memory of freed large
 *             blocks and trimmed chunks is not reused from a buffer until mp_heap_reset(). Each
 *             class in use takes a 2 MiB chunk aligned to 2 MiB, so the first block of a class may
 *             cost up to 4 MiB of the buffer: size it for the classes the program uses.
 *   name, source: as for pools.
 */
typedef struct mp_heap_opts {
    unsigned flags;
    size_t capacity;
    void *buffer;
    size_t buffer_size;
    const char *name;
    const mp_source *source;
} mp_heap_opts;

/*
 * Creates a heap. O(1): class pools are made when a class is first used.
 * Returns NULL if and only if: errno = EINVAL: flags has an unknown bit, or MP_THREAD_SAFE with a
 * buffer, or a buffer too small for the heap's bookkeeping, or a source lacks map or unmap;
 * errno = ENOMEM: no memory for the bookkeeping.
 * Thread-safety: may be called from any thread.
 */
mp_heap *mp_heap_create(const mp_heap_opts *opts);

/*
 * Like malloc(): a block of at least `size` bytes, aligned to 16 bytes (to 8 for sizes of 8 or
 * less), from the size class that fits, or a large block. mp_heap_alloc(heap, 0) returns a unique
 * block. A request above 4 KiB whose class has no free block may get a free block of one of the
 * next two classes instead of new memory (so sparse large classes share their free blocks); its
 * usable size says so. Complexity: O(1); a class block costs a class lookup and an inline pool
 * alloc.
 * Memory: in a heap over the system (no source, no buffer; not a checked or secure thread-safe
 * heap), a class block never handed out before comes with its pages already faulted in, by one
 * system call (MADV_POPULATE_WRITE, Linux 5.14), cheaper than a fault per page at the first
 * writes, when it spans at most two pages (a write to its two ends would fault them all), or when
 * its class's last block left to fault was seen written whole (mincore): then 7 blocks of the
 * class are populated, and the 8th is left to fault as written, to be looked at again. So where a
 * program leaves its blocks' inner pages unwritten, they stay out of its resident set (but for up
 * to 7 blocks a class after it last wrote one whole). A large block's pages are freed large
 * blocks' where the cache has them (see mp_heap_free()), else fault in as written.
 * Returns NULL if and only if: errno = ENOMEM: the size is above PTRDIFF_MAX, or the capacity or
 * the source is exhausted; errno = EINVAL: heap is NULL.
 * Thread-safety: as the heap's flags say (MP_THREAD_SAFE: any thread at any time).
 */
void *mp_heap_alloc(mp_heap *heap, size_t size);

/* Like calloc(): n * size zeroed bytes. NULL with errno = ENOMEM when n * size overflows, else as
 * mp_heap_alloc(). */
void *mp_heap_calloc(mp_heap *heap, size_t n, size_t size);

/*
 * Like realloc(): moves the contents to a block of at least `size` bytes when the block's class (or
 * large size) does not already fit, keeping min(old usable size, size) bytes. realloc(heap, NULL,
 * n) is mp_heap_alloc(heap, n). realloc(heap, p, 0) frees p and returns NULL (errno untouched), as
 * glibc does. On failure returns NULL with errno = ENOMEM and leaves p untouched.
 */
void *mp_heap_realloc(mp_heap *heap, void *p, size_t size);

/*
 * Like aligned_alloc(), without C11's demand that size be a multiple of align: a block of at least
 * `size` bytes aligned to `align`. Alignments up to 4096 come from the size classes (the smallest
 * class whose blocks are so aligned: a class of up to 4096 bytes or a power of two is aligned to
 * its size's lowest set bit, at most 4096; any other class is 64-aligned, so an alignment above
 * 64 with a size above 4096 takes the next power of two); larger ones, up to 1 MiB, are large
 * blocks.
 * Returns NULL if and only if: errno = EINVAL: align is not a power of two, or heap is NULL;
 * errno = ENOMEM: align is above 1 MiB (a block so aligned would leave no room for the header that
 * free finds by masking), or as for mp_heap_alloc().
 */
void *mp_heap_aligned_alloc(mp_heap *heap, size_t align, size_t size);

/*
 * Like free(): gives a block back to its class pool, which is found from the block's address (its
 * chunk header, found by masking), or caches a large block's pages for reuse, so later large
 * allocations do not fault pages in again: at most 32 MiB (in at most 32 runs), the oldest
 * unmapped past that. In a heap over the system source (no source, no buffer) cached pages serve a
 * later large request of any size (a larger run is cut where it lies, neighbouring runs join, or
 * pages are moved into a new mapping by mremap); over a caller's source a cached block is reused
 * whole, by a request it fits within 25%.
 * NULL does nothing.
 * Undefined in a plain heap, reported in a checked one: a pointer the heap did not hand out (an
 * invalid free, in the heap's name), a block freed twice (a double free: a class block's in its
 * class pool's name, "HEAP/SIZE"; a large block's in the heap's name while its mapping is cached
 * whole, and once the mapping went back or was cut up, an invalid free).
 */
void mp_heap_free(mp_heap *heap, void *p);

/* Like mp_heap_free(), faster: the caller says the size it asked for (or any size up to the usable
 * size that is in the same class), so no lookup is needed for sizes up to 4 KiB (above, where a
 * block may come from a larger class, it is looked up as mp_heap_free() does). A block that
 * mp_heap_realloc() returned is freed with the size last asked of realloc. Undefined if the size
 * belongs to another class, and for blocks from mp_heap_aligned_alloc(), whose class may be above
 * their size's: free those with mp_heap_free(). A checked heap ignores the size and checks the
 * block as mp_heap_free() does. */
void mp_heap_free_sized(mp_heap *heap, void *p, size_t size);

/* The usable size of a block of the heap (>= what was asked for); 0 for NULL. */
size_t mp_heap_usable_size(const mp_heap *heap, const void *p);

/* Calls fn for every live block of the heap, with its usable size; see mp_pool_visit(). */
int mp_heap_visit(const mp_heap *heap, mp_visit_fn *fn, void *ctx);

/* Gives back what the heap holds but does not use: the cached large blocks, and every class pool's
 * wholly free chunks (as mp_pool_trim()). Returns the bytes given back (0 for NULL; for a buffer
 * heap only what the classes release, reusable after mp_heap_reset()). A capacity heap also gives
 * its cached large blocks back by itself before it refuses a request. Thread-safe as the heap is.
 * Complexity: O(classes + free blocks). */
size_t mp_heap_trim(mp_heap *heap);

/* Frees every block at once, as mp_pool_reset() does: the statistics count every live block as
 * freed, and no total goes back (allocs, frees, failed_allocs, and each class's allocs, frees and
 * peak). A checked heap reports no leak. Large blocks are unmapped, cached ones too; a heap over a
 * source keeps its class chunks, a buffer heap starts its buffer over (its class pools are made
 * anew when next used). Not thread-safe: no other thread may use the heap meanwhile. */
void mp_heap_reset(mp_heap *heap);

/* Destroys the heap and gives all its memory back. NULL does nothing. A checked heap reports leaks
 * first (each class pool's, then the large blocks still in use, as "N blocks leaked"). Not
 * thread-safe: no other thread may use the heap meanwhile. */
void mp_heap_destroy(mp_heap *heap);

/* One size class's figures in mp_heap_stats. */
typedef struct mp_heap_class_stats {
    size_t size; /* the class's block size */
    uint64_t blocks_in_use;
    uint64_t blocks_peak;
    uint64_t allocs;
    uint64_t frees;
    uint64_t bytes_reserved;
} mp_heap_class_stats;

/* A struct tag with no typedef: in C the function mp_heap_stats() takes the ordinary name. */
struct mp_heap_stats {
    char name[MP_NAME_MAX];
    uint64_t allocs; /* all successful allocations, class and large */
    uint64_t frees;
    uint64_t failed_allocs;
    uint64_t blocks_in_use;
    uint64_t bytes_in_use;   /* usable bytes of the blocks in use */
    uint64_t bytes_reserved; /* taken from the source (or the buffer) and not given back */
    uint64_t large_in_use;   /* large blocks in use */
    uint64_t large_cached;   /* runs of freed large blocks' pages kept for reuse */
    mp_heap_class_stats classes[MP_HEAP_CLASSES]; /* by increasing size */
};

/* Fills *out. Returns 0, or EINVAL when heap or out is NULL. O(classes + free blocks). */
int mp_heap_stats(const mp_heap *heap, struct mp_heap_stats *out);

/* Writes the heap's statistics (totals and the classes in use) as text or JSON, as
 * mp_stats_write() does. 0, or EINVAL. */
int mp_heap_stats_write(const struct mp_heap_stats *stats, int format, mp_write_fn *write,
                        void *ctx);

/* ------------------------------------------------------------------------------------------------
 * The process-wide heap: malloc's contract, no setup. Thread-safe. With MEMPOOL_CHECKED=1 in the
 * environment when it is first used, it is a checked heap.
 * ---------------------------------------------------------------------------------------------- */

void *mp_malloc(size_t size);                      /* NULL + ENOMEM as mp_heap_alloc() */
void *mp_calloc(size_t n, size_t size);            /* NULL + ENOMEM on overflow */
void *mp_realloc(void *p, size_t size);            /* as mp_heap_realloc(): (p, 0) frees, NULL */
void *mp_aligned_alloc(size_t align, size_t size); /* NULL + EINVAL for a bad align */
void mp_free(void *p);                             /* NULL does nothing */
size_t mp_usable_size(const void *p);              /* >= the size asked for; 0 for NULL */
/* The process-wide heap itself, for mp_heap_stats() (created on first use; NULL if that failed). */
mp_heap *mp_default_heap(void);

/* ------------------------------------------------------------------------------------------------
 * Arenas: bump allocation over chunks, everything freed at once (APR and nginx pools)
 * ---------------------------------------------------------------------------------------------- */

typedef struct mp_arena mp_arena;

/*
 * What an arena is made of; zero-initialise what you do not set, or pass NULL for all defaults.
 *   chunk_size: bytes taken from the source at a time (0 = 64 KiB; a larger request takes a chunk
 *               of its own);
 *   capacity:   the most bytes the arena takes from its source at once; 0 = unbounded;
 *   buffer, buffer_size: the arena lives in this buffer, bookkeeping included, never calling the
 *               system or malloc;
 *   max_keep:   the most bytes of chunks the arena holds after a reset or a rewind, kept empty
 *               for the allocations after it (a rewind never gives back the chunk the cursor
 *               stands in nor those before it; a reset always keeps the first chunk, so 1 keeps
 *               the first chunk only). 0 = what the arena last used: the chunks up to the cursor
 *               before the reset or rewind (so a loop that builds the same structure and resets
 *               takes no memory from the source after its first round); SIZE_MAX = every chunk.
 *               mp_arena_trim() gives back what is kept. Ignored in a buffer;
 *   name, source: as for pools.
 */
typedef struct mp_arena_opts {
    size_t chunk_size;
    size_t capacity;
    void *buffer;
    size_t buffer_size;
    const char *name;
    const mp_source *source;
    size_t max_keep;
} mp_arena_opts;

/* A position in an arena, from mp_arena_mark(), to rewind to. */
typedef struct mp_arena_pos {
    void *chunk;
    size_t used;
} mp_arena_pos;

/* A struct tag with no typedef, as for struct mp_heap_stats. */
struct mp_arena_stats {
    char name[MP_NAME_MAX];
    uint64_t allocs;
    uint64_t failed_allocs;
    uint64_t bytes_used; /* handed out since the last reset (alignment padding included) */
    uint64_t bytes_peak;
    uint64_t bytes_reserved; /* taken from the source or the buffer */
    uint64_t chunks;
    uint64_t resets;
    uint64_t rewinds;
    uint64_t bytes_kept; /* of empty chunks after the cursor, held for reuse (in bytes_reserved) */
};

/* Creates an arena. O(1), no chunk taken. NULL with EINVAL (bad options, buffer too small),
 * ENOMEM, or ENOSYS (MP_FREESTANDING only: neither a buffer nor a source). */
mp_arena *mp_arena_create(const mp_arena_opts *opts);
#ifdef MP_NO_INLINE
void *mp_arena_alloc(mp_arena *arena, size_t size);
#else
static inline void *mp_arena_alloc(mp_arena *arena, size_t size);
#endif

/*
 * mp_arena_alloc: like malloc(size), but from the arena, freed only all at once (reset, rewind,
 * destroy). Aligned to alignof(max_align_t). O(1) but for taking a chunk: inline, a bump of the
 * cursor; a chunk that cannot hold the request makes it take a kept chunk or map a new one.
 * Returns NULL (errno ENOMEM) if and only if memory or capacity is exhausted or size overflows;
 * NULL and EINVAL for a NULL arena. size 0 gives a unique pointer. Not thread-safe.
 */

/* As mp_arena_alloc() with a power-of-two alignment (NULL + EINVAL otherwise); out of line. */
void *mp_arena_alloc_aligned(mp_arena *arena, size_t size, size_t align);
/* The current position; mp_arena_rewind() frees everything allocated after it. */
mp_arena_pos mp_arena_mark(mp_arena *arena);
/* Frees everything allocated after the mark: first runs, newest first, the cleanups added after
 * it; then keeps the chunks after the cursor for reuse within the bound of mp_arena_opts.max_keep
 * and gives the rest back. Returns 0, or EINVAL (nothing changed, no cleanup run) when arena is
 * NULL or pos lies outside the arena's chunks or beyond its current position, which is what most
 * marks made stale by a reset or by an earlier rewind past them are. Rewinding to any other stale
 * mark is undefined. O(chunks + cleanups run). */
int mp_arena_rewind(mp_arena *arena, mp_arena_pos pos);
/* Frees everything at once: runs every cleanup, newest first; then keeps the first chunk and the
 * chunks after it within the bound of mp_arena_opts.max_keep (by default the chunks the arena used
 * since the last reset, so the next round reuses them without calling the source) and gives the
 * rest back. NULL does nothing. O(chunks + cleanups). */
void mp_arena_reset(mp_arena *arena);
/* Like mp_pool_trim(): gives back to the source every chunk the arena keeps empty for reuse (after
 * the cursor), and the first chunk too when nothing is allocated. Returns the bytes given back (0
 * for NULL or an arena in a buffer). Allocations stay valid. O(chunks). */
size_t mp_arena_trim(mp_arena *arena);
/*
 * Registers fn(ctx) to run when the memory allocated so far is released (as
 * apr_pool_cleanup_register, ngx_pool_cleanup_add): cleanups run newest first, all of them at
 * mp_arena_reset() and mp_arena_destroy(), and at mp_arena_rewind() those added after the mark.
 * They run before the memory is released, so ctx may live in the arena. The record is an allocation
 * from the arena itself (counted in its stats, freed with the rest). Returns 0, ENOMEM (nothing
 * registered) when the arena cannot hold the record, EINVAL when arena or fn is NULL. O(1) but for
 * taking a chunk. Undefined: a cleanup that allocates from, adds a cleanup to, marks, rewinds,
 * resets, trims or destroys the arena that is running it.
 */
int mp_arena_add_cleanup(mp_arena *arena, void (*fn)(void *ctx), void *ctx);
/* Runs every cleanup (newest first), then gives the chunks back to the source (in a buffer it gives
 * nothing back: the buffer stays the caller's). NULL does nothing. O(chunks + cleanups).
 * Undefined: using the arena or anything allocated from it afterwards. */
void mp_arena_destroy(mp_arena *arena);
/* Fills *out. Returns 0, or EINVAL when arena or out is NULL. O(chunks kept) (bytes_kept). */
int mp_arena_stats(const mp_arena *arena, struct mp_arena_stats *out);

/* ================================================================================================
 * Internals. Nothing below is part of the API: do not use these names or touch these fields.
 *
 * The fast path of mp_pool_alloc() and mp_pool_free() is inline: it reads the head of every pool
 * (struct mp_pool_fast), this thread's caches (struct mp_tcache_fast) and a handle pool's chunk
 * headers (struct mp_chunk_fast) in the caller's code;
 * mp_arena_alloc()'s bump reads the head of every arena (struct mp_arena_fast). Those layouts are
 * therefore part of the library's binary interface: MP_ABI_VERSION names them, the library checks
 * them against it when it is built (src/pool.c), and it is the shared
 * library's soname number (libmempool.so.MP_ABI_VERSION), so a program inlined against one layout
 * never runs on a library with another.
 *
 * Define MP_NO_INLINE before including this header to call exported functions instead: for other
 * compilers (the inline path needs C11 or C++11 thread-locals, and uses GCC/Clang builtins), for
 * bindings from other languages, or to step through calls in a debugger. Same behaviour, a call
 * more per operation. (MP_NOINLINE, above, is unrelated: the attribute that keeps a function out of
 * line.)
 * ============================================================================================== */

/* The helpers of MP_POOL_BUFFER_SIZE. The default alignment is pool_geometry()'s (src/pool.c):
 * the lowest set bit of the size, at most alignof(max_align_t), at least alignof(void *); a checked
 * block is followed by its canary (to 8 bytes, then 8 more) and its allocation site. */
#ifdef __cplusplus
#define MP_ALIGNOF_(type) alignof(type)
#else
#define MP_ALIGNOF_(type) _Alignof(type)
#endif
#define MP_MAX_(a, b) ((size_t)(a) > (size_t)(b) ? (size_t)(a) : (size_t)(b))
#define MP_MIN_(a, b) ((size_t)(a) < (size_t)(b) ? (size_t)(a) : (size_t)(b))
#define MP_ROUND_UP_(x, a) (((size_t)(x) + (size_t)(a)-1) / (size_t)(a) * (size_t)(a))
#define MP_ALIGN_OF_(size, align)                                                                  \
    MP_MAX_((align) != 0                                                                           \
                ? (size_t)(align)                                                                  \
                : MP_MIN_((size_t)(size) & (~(size_t)(size) + 1), MP_ALIGNOF_(max_align_t)),       \
            MP_ALIGNOF_(void *))
#define MP_GENS_BYTES_(count, flags)                                                               \
    (((flags)&MP_HANDLES) != 0 ? ((size_t)(count) + 1) * 4 : (size_t)0)
#define MP_STRIDE_(size, align, flags)                                                             \
    MP_ROUND_UP_(((flags)&MP_CHECKED) != 0 ? MP_ROUND_UP_(size, 8) + 8 + sizeof(void *)            \
                                           : MP_MAX_(size, sizeof(void *)),                        \
                 MP_ALIGN_OF_(size, align))

#define MP_ABI_VERSION 5

/* Every pool begins with this struct (the rest is private to the library). The fast path pops and
 * pushes `free` and counts; everything rare folds into one test on each side:
 *   - a plain pool's `free` is the head of its free list (NULL when empty);
 *   - a pool whose blocks need more than a pop and a push (MP_ZERO, MP_CHECKED, MP_SECURE,
 *     MP_THREAD_SAFE, every pool in a build for ASan or under Valgrind) keeps its list elsewhere
 *     and `free` always MP_FAST_SLOW, a value no block has, so alloc leaves the fast path on
 *     `free <= MP_FAST_SLOW` (empty, or such a pool) and free on `free == MP_FAST_SLOW` (or a NULL
 *     block or pool).
 * Off the fast path, still inline: a plain pool with an empty list carves the never-used block at
 * `bump` while bump < end (a bump pointer: no call, and not counted: see below); every other pool
 * keeps end == NULL. Then a plain thread-safe pool (tsoff != 0) uses this thread's cache of it, the
 * entry at byte offset tsoff of this thread's table mpi_tcaches, with no lock; an inline handle
 * pool pops and pushes `hfree` (below); the rest goes to the *_slow functions in pool.c.
 * Only pops are counted inline: one store more than the original free list, where a second
 * counter would cost a third more time in an alloc+free loop. A block carved inline is counted
 * by the library from `bump` (the blocks below it), as is everything else: blocks in use are
 * derived (blocks carved minus the free blocks), and frees from them; see mp_pool_stats(). */
#define MP_FAST_SLOW ((uintptr_t)1)

struct mp_pool_fast {
    void *free;      /* head of a plain pool's free list; the link is the block's first word */
    uint64_t allocs; /* successful allocations, but the inline bump's since the library last
                        counted them (thread-safe pools: see struct mp_tcache_fast) */
    uint32_t tsoff;  /* a plain thread-safe pool's entry in every thread's cache table, as a byte
                        offset (a multiple of sizeof(struct mp_tcache_fast)); else 0 */
    uint32_t hbits;  /* MP_HANDLES: bits of the slot in a handle's index (below) */
    char *bump;      /* the carving cursor: the pool's next never-used block */
    char *end;       /* the inline path carves while bump < end: the cursor's chunk end, or less
                        (a capacity); NULL in every pool but a plain one */
    size_t stride;   /* bytes from one block to the next */
    /* An inline handle pool (MP_HANDLES alone, from a source, blocks of a pointer and 4 bytes at
     * least; see pool.c, pool_select_path): its free list, and the mask that finds a block's
     * chunk, ~(chunk size - 1). A block on hfree keeps its generation's index after its link
     * (mpi_pool_hindex), so that alloc finds the generation with one load. hmask is 0 and hfree
     * NULL in every other pool. */
    void *hfree;
    uintptr_t hmask;
    /* MP_HANDLES (mp_pool_deref): a handle is index << 31 | generation / 2, with index = (chunk
     * number << hbits) + slot + 1. hgens holds a generation per index, odd while its block is
     * live, even otherwise (index 0 of each number, and those past its chunk's last slot, stay 0);
     * hbase[number] is the chunk's first block less (number << hbits) + 1 strides, so that the
     * block is hbase[number] + index * stride. Entries of both are read and written atomically
     * (relaxed: a later run may take a trimmed chunk's number). Both tables are replaced when they
     * grow (the old ones kept until destroy, so a racing deref reads either); hlen is stored after
     * them with release, and read first, with acquire. Other pools: hlen 0, so every deref gives
     * NULL. */
    const uint32_t *hgens;
    const uintptr_t *hbase;
    uint32_t hlen; /* indexes in hgens: a handle's index is below */
    /* Every pool: 2^64 / stride rounded up, for a division by a multiplication, where a 128-bit
     * product exists (else 1), when the stride fits in 32 bits; else 0. */
    uint64_t recip;
};

/* The head of every chunk of a pool from a source (the rest is private): in a handle pool, a
 * block's index (above) is hbias + (block - chunk) / stride, modulo the width of uintptr_t. */
struct mp_chunk_fast {
    const void *pool;
    const void *run;
    uintptr_t hbias;
};

/* The part of one thread's cache of one thread-safe pool that the inline path reads (the rest of
 * the cache's record is private, struct mpi_tcache in src/tcache.c). Only its thread writes it (but
 * for mp_pool_destroy() and mp_pool_reset(), which no thread may race); stats read the two counters
 * from other threads, so those are written with release stores: a reader that loads one counter
 * with acquire, then the other, sees the pair in an order the thread passed through (pushes >=
 * pops), even where stores and loads may be reordered (ARM64). One counter a side: blocks on
 * `free` and in the cache's private previous magazine == pushes - pops, and the thread's
 * allocations == pops less its flushes. A free pushes
 * only while pushes < stop, where stop <= pops + the cache's limit, so a cache never holds more
 * than its limit. All zero: no cache (alloc and free both take the slow path, which makes one). */
struct mp_tcache_fast {
    void *free;      /* the cached blocks, linked through their first word */
    uint64_t pops;   /* blocks taken: allocations, and flushes to the pool */
    uint64_t pushes; /* blocks added: frees, and refills from the pool */
    uint64_t stop;   /* a free pushes only while pushes < stop */
};

/* The out-of-line rest of mp_pool_alloc() and mp_pool_free(); each also does the whole operation
 * for any pool, so MP_NO_INLINE's exported functions are these. */
void *mp_pool_alloc_slow(mp_pool *pool);
void mp_pool_free_slow(mp_pool *pool, void *block);
/* The whole of mp_pool_handle() for any pool; its inline part calls it off the inline handle path
 * and for every error. */
mp_handle mp_pool_handle_slow(const mp_pool *pool, const void *block);

/* Every arena begins with this struct: its cursor, the free bytes [bump, end) of its current chunk
 * (0, 0 before it has one, so nothing fits), and its allocation count. */
struct mp_arena_fast {
    uintptr_t bump;
    uintptr_t end;
    uint64_t allocs;
};

/* The alignment of mp_arena_alloc(). */
#define MP_ARENA_ALIGN MP_ALIGNOF_(max_align_t)

/* The whole of mp_arena_alloc() for any arena; the inline bump calls it when the chunk is full. */
void *mp_arena_alloc_slow(mp_arena *arena, size_t size);

#if defined(__GNUC__) || defined(__clang__)
#define MP_LOAD_RELAXED(lvalue) __atomic_load_n(&(lvalue), __ATOMIC_RELAXED)
#define MP_LOAD_ACQUIRE(lvalue) __atomic_load_n(&(lvalue), __ATOMIC_ACQUIRE)
#else
#define MP_LOAD_RELAXED(lvalue) (lvalue)
#define MP_LOAD_ACQUIRE(lvalue) (lvalue)
#endif

/* The whole of mp_pool_deref() (inline, and exported by noinline.c). Intended cost: a pool test,
 * a bound, the generation (one load past the pool's head, as a slot map's) against the handle's
 * 2 * g + 1 in 32 bits (only odd ones, live, can match; g < 2^31, so each live block has one
 * handle, and handle 0 wants generation 1 at index 0, which stays 0), then the chunk's base (a
 * load independent of the generation's) plus index * stride: no call, no store, no lock. */
static MP_ALWAYS_INLINE void *mpi_pool_deref(const mp_pool *pool, mp_handle handle)
{
    const struct mp_pool_fast *f = (const struct mp_pool_fast *)pool;
    if (MP_UNLIKELY(pool == NULL))
        return NULL;
    uint64_t index = handle >> 31;
    if (MP_UNLIKELY(index >= MP_LOAD_ACQUIRE(f->hlen)))
        return NULL;
    uint32_t gen = MP_LOAD_RELAXED(MP_LOAD_ACQUIRE(f->hgens)[index]);
    if (MP_UNLIKELY(gen != (uint32_t)handle * 2 + 1)) /* bit 31 of handle is the index's */
        return NULL;
    return (void *)(uintptr_t)(MP_LOAD_RELAXED(MP_LOAD_ACQUIRE(f->hbase)[index >> f->hbits]) +
                               (uintptr_t)index * f->stride);
}

/* (block - chunk) / stride for a block of a handle pool from a source, whose chunks hold at most
 * 2^32 bytes: one multiply-shift (Lemire's, as pool.c's stride_div) where a 128-bit product
 * exists, else one 32-bit division. */
#ifdef __SIZEOF_INT128__
__extension__ typedef unsigned __int128 mpi_u128;
static MP_ALWAYS_INLINE uintptr_t mpi_pool_hslot(const struct mp_pool_fast *f, uintptr_t off)
{
    return (uintptr_t)(((mpi_u128)f->recip * off) >> 64);
}
#else
static MP_ALWAYS_INLINE uintptr_t mpi_pool_hslot(const struct mp_pool_fast *f, uintptr_t off)
{
    return (uint32_t)off / (uint32_t)f->stride;
}
#endif

/* The index of a block's generation in a handle pool from a source (struct mp_chunk_fast):
 * the chunk's hbias plus the block's slot (the sum wraps back below 2^32: hbias may not). */
static MP_ALWAYS_INLINE uintptr_t mpi_pool_hindex_of(const struct mp_pool_fast *f, uintptr_t chunk,
                                                     const void *block)
{
    return ((const struct mp_chunk_fast *)chunk)->hbias +
           mpi_pool_hslot(f, (uintptr_t)block - chunk);
}

/* Where a free block of an inline handle pool keeps its generation's index: after its link. */
static MP_ALWAYS_INLINE uint32_t *mpi_pool_hindex(void *block)
{
    return (uint32_t *)((char *)block + sizeof(void *));
}

#ifndef MP_NO_INLINE

/* This thread's table of caches, one entry per thread-safe pool, at byte offset tsoff. A thread
 * that has none points at a shared all-zero table, so the inline path needs no bounds test. */
#if defined(__GNUC__) || defined(__clang__) /* one %fs-relative load, in the library as well */
#define MP_TLS_MODEL __attribute__((tls_model("initial-exec")))
#else
#define MP_TLS_MODEL
#endif
#if defined(MP_FREESTANDING) && MP_FREESTANDING /* no threads: one table, always empty */
extern struct mp_tcache_fast *mpi_tcaches;
#elif defined(__cplusplus) && (defined(__GNUC__) || defined(__clang__))
/* __thread, not thread_local: C++ must assume an extern thread_local may have a dynamic
 * initializer, and calls its possible init function before each use, on the fast path. */
extern __thread struct mp_tcache_fast *mpi_tcaches MP_TLS_MODEL;
#elif defined(__cplusplus)
extern thread_local struct mp_tcache_fast *mpi_tcaches MP_TLS_MODEL;
#else
extern _Thread_local struct mp_tcache_fast *mpi_tcaches MP_TLS_MODEL;
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MP_STORE_RELAXED(lvalue, value) __atomic_store_n(&(lvalue), (value), __ATOMIC_RELAXED)
#define MP_STORE_RELEASE(lvalue, value) __atomic_store_n(&(lvalue), (value), __ATOMIC_RELEASE)
#else
#define MP_STORE_RELAXED(lvalue, value) ((lvalue) = (value))
#define MP_STORE_RELEASE(lvalue, value) ((lvalue) = (value))
#endif

/* Adds 1 to a cache counter, which only its thread writes and other threads read with atomic
 * loads: what MP_STORE_RELEASE(c, c + 1) means, but as one instruction on x86-64, where an aligned
 * 8-byte store is single-copy atomic and every store is a release (an atomic store compiles to a
 * load, an add and a store). Volatile, so the compiler keeps the two counters' adds in program
 * order. Written in both assembler dialects, so -masm=intel builds too. ThreadSanitizer builds
 * keep the atomic store, which it must see. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MP_TSAN_BUILD 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define MP_TSAN_BUILD 1
#endif
#if defined(MP_FREESTANDING) && MP_FREESTANDING /* no threads: nothing reads it concurrently */
#define MP_COUNT_ONE(lvalue) ((lvalue)++)
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(MP_TSAN_BUILD)
#define MP_COUNT_ONE(lvalue) __asm__ __volatile__("add{q $1, %0| QWORD PTR %0, 1}" : "+m"(lvalue))
#else
#define MP_COUNT_ONE(lvalue) MP_STORE_RELEASE(lvalue, (lvalue) + 1)
#endif

/* This thread's cache of a plain thread-safe pool. Other pools have tsoff 0, and entry 0 of every
 * table stays zero (no cache). */
static MP_ALWAYS_INLINE struct mp_tcache_fast *mpi_tcache_of(mp_pool *pool)
{
    return (struct mp_tcache_fast *)((char *)mpi_tcaches + ((struct mp_pool_fast *)pool)->tsoff);
}

/* Off the fast path, after the thread cache's test: an inline handle pool's pop or push (hfree,
 * hmask), which moves the block's generation on, else the slow path. Only that pool is not
 * thread-safe, so nothing reads the generation meanwhile. Intended cost: alloc, the pop, the index
 * the block kept and an add to memory; free, a mask, the chunk's hbias, a multiplication, an add to
 * memory and the push with the index. */
static MP_ALWAYS_INLINE void *mpi_pool_alloc_handle(mp_pool *pool)
{
    struct mp_pool_fast *f = (struct mp_pool_fast *)pool;
    void *block = f->hfree;
    if (block != NULL) {
        f->hfree = *(void **)block;
        f->allocs++;
        ((uint32_t *)f->hgens)[*mpi_pool_hindex(block)]++; /* to odd: live */
        return block;
    }
    return mp_pool_alloc_slow(pool);
}

static MP_ALWAYS_INLINE void mpi_pool_free_handle(mp_pool *pool, void *block)
{
    struct mp_pool_fast *f = (struct mp_pool_fast *)pool;
    if (f->hmask != 0) {
        uintptr_t index = mpi_pool_hindex_of(f, (uintptr_t)block & f->hmask, block);
        ((uint32_t *)f->hgens)[index]++; /* to even: its handles go stale */
        *mpi_pool_hindex(block) = (uint32_t)index;
        *(void **)block = f->hfree;
        f->hfree = block;
        return;
    }
    mp_pool_free_slow(pool, block);
}

/* Off the fast path, for a pool that is not NULL (nor its block) and not plain: this thread's
 * cache of a plain thread-safe pool (tsoff != 0) when it has a block or room, else the handle
 * path. Tested first, so that a thread-safe pool's hits pay nothing for handles.
 * Intended cost: two loads (tsoff, the TLS table), a pop or a push and two stores; no lock, no
 * atomic read-modify-write. */
static MP_ALWAYS_INLINE void *mpi_pool_alloc_cached(mp_pool *pool)
{
    struct mp_tcache_fast *c = mpi_tcache_of(pool);
    void *block = c->free;
    if (block != NULL) {
        c->free = *(void **)block;
        MP_COUNT_ONE(c->pops);
        return block;
    }
    return mpi_pool_alloc_handle(pool);
}

static MP_ALWAYS_INLINE void mpi_pool_free_cached(mp_pool *pool, void *block)
{
    struct mp_tcache_fast *c = mpi_tcache_of(pool);
    if (c->pushes < c->stop) {
        *(void **)block = c->free;
        c->free = block;
        MP_COUNT_ONE(c->pushes);
        return;
    }
    mpi_pool_free_handle(pool, block);
}

/* Off the fast path, for a plain pool with an empty list: carves at the cursor, counting nothing
 * (the library counts the blocks below `bump`). Other pools never read bump and end here: a
 * thread-safe pool's cursor moves under its lock.
 * Intended cost: three loads from the line `free` was on, a compare and one store, as a bare bump
 * pointer. */
static MP_ALWAYS_INLINE void *mpi_pool_alloc_bump(mp_pool *pool)
{
    struct mp_pool_fast *f = (struct mp_pool_fast *)pool;
    char *block = f->bump;
    if (MP_LIKELY((uintptr_t)block < (uintptr_t)f->end)) {
        f->bump = block + f->stride;
        MP_ASSUME(block != NULL); /* end is NULL but in a chunk: the caller's NULL test goes */
        return block;
    }
    return mp_pool_alloc_slow(pool);
}

/* Intended cost: a load and a test of the head, a load of the link, two stores (head, count). The
 * NULL test comes first so the rare paths need not repeat it. */
static MP_ALWAYS_INLINE void *mp_pool_alloc(mp_pool *pool)
{
    struct mp_pool_fast *f = (struct mp_pool_fast *)pool;
    if (MP_UNLIKELY(pool == NULL))
        return mp_pool_alloc_slow(pool);
    void *block = f->free;
    if (MP_UNLIKELY((uintptr_t)block <= MP_FAST_SLOW)) /* only a plain pool's list is ever empty */
        return block == NULL ? mpi_pool_alloc_bump(pool) : mpi_pool_alloc_cached(pool);
    f->free = *(void **)block;
    f->allocs++;
    return block;
}

/* Intended cost: a load and a test of the head, two stores (the link, the head). */
static MP_ALWAYS_INLINE void mp_pool_free(mp_pool *pool, void *block)
{
    struct mp_pool_fast *f = (struct mp_pool_fast *)pool;
    if (MP_UNLIKELY(block == NULL || pool == NULL)) {
        mp_pool_free_slow(pool, block); /* does nothing for a NULL block or pool */
        return;
    }
    void *head = f->free;
    if (MP_UNLIKELY((uintptr_t)head == MP_FAST_SLOW)) {
        mpi_pool_free_cached(pool, block);
        return;
    }
    *(void **)block = head;
    f->free = block;
}

static MP_ALWAYS_INLINE void *mp_pool_deref(const mp_pool *pool, mp_handle handle)
{
    return mpi_pool_deref(pool, handle);
}

/* Intended cost: three tests, a mask, the chunk's hbias, a multiplication, the generation and its
 * test (mempool.h above: index << 31 | generation / 2); every other case calls the library. */
static MP_ALWAYS_INLINE mp_handle mp_pool_handle(const mp_pool *pool, const void *block)
{
    const struct mp_pool_fast *f = (const struct mp_pool_fast *)pool;
    if (MP_UNLIKELY(pool == NULL || block == NULL || f->hmask == 0))
        return mp_pool_handle_slow(pool, block);
    uintptr_t index = mpi_pool_hindex_of(f, (uintptr_t)block & f->hmask, block);
    uint32_t g = f->hgens[index];
    if (MP_UNLIKELY((g & 1) == 0))
        return mp_pool_handle_slow(pool, block); /* a free block: EINVAL */
    return (mp_handle)index << 31 | g >> 1;
}

/* Intended cost: a load of the cursor, an add and a mask, a compare (two for a size not known at
 * compile time), two stores (bump, count). size 0 takes one byte, so every pointer is unique;
 * SIZE_MAX stays itself and fails. The aligned cursor p passes end only in the last 15 bytes of a
 * chunk (bump <= end): end - p is then negative as a signed difference, so one signed compare
 * covers both, for any n up to PTRDIFF_MAX. */
static MP_ALWAYS_INLINE void *mp_arena_alloc(mp_arena *arena, size_t size)
{
    struct mp_arena_fast *f = (struct mp_arena_fast *)arena;
    if (MP_UNLIKELY(arena == NULL))
        return mp_arena_alloc_slow(arena, size);
    size_t n = size + (size == 0);
    uintptr_t p = (f->bump + (MP_ARENA_ALIGN - 1)) & ~(uintptr_t)(MP_ARENA_ALIGN - 1);
    if (MP_UNLIKELY(n > PTRDIFF_MAX || (intptr_t)(f->end - p) < (intptr_t)n))
        return mp_arena_alloc_slow(arena, size);
    f->bump = p + n;
    f->allocs++;
    MP_ASSUME(p != 0); /* a chunk is never at 0: the caller's NULL test goes */
    return (void *)p;
}

#endif /* MP_NO_INLINE */

#ifdef __cplusplus
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
}
#endif

#endif /* MEMPOOL_H */

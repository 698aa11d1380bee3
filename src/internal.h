/*
 * internal.h: the library's internal types with their invariants, and the internal prototypes grouped
 * by the file that defines them. Nothing here is public; tests use include/mempool.h only.
 *
 * Memory layout of a pool that takes its memory from a source (docs/design.md has the whole design):
 *
 *   run (one source map: nchunks * chunk_size bytes, aligned to chunk_size)
 *   +---------------------------------------+---------------------------------------+----
 *   | chunk 0                               | chunk 1                               |
 *   | [mpi_run header][pad][blk][blk]...[w] | [mpi_chunk hdr][pad][blk][blk]...[w]  | ...
 *   +---------------------------------------+---------------------------------------+----
 *   ^ chunk address = block address & ~(chunk_size - 1)
 *
 *   first_off = MP_CHUNK_HEADER rounded up to the alignment; the first block of every chunk starts
 *   there; per_chunk blocks of `stride` bytes follow; [w] is the waste, less than one stride.
 *
 * A chunk's header is written when carving reaches the chunk, never before, so a run costs no
 * resident memory until it is used. The first chunk's header is the run's header (struct mpi_run
 * begins with struct mpi_chunk).
 */
#ifndef MP_INTERNAL_H
#define MP_INTERNAL_H

#include "config.h"
#include "mempool.h"

#include <assert.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define MPI_HIDDEN __attribute__((visibility("hidden")))
#else
#define MPI_HIDDEN
#endif

/* Debug asserts for our own invariants (MP_DEBUG >= 1); user errors are never checked with these. */
#if MP_DEBUG >= 1
#define mp_assert(cond) assert(cond)
#else
#define mp_assert(cond) ((void)0)
#endif

/* ------------------------------------------------------------------------------------------------
 * Types
 * ---------------------------------------------------------------------------------------------- */

struct mpi_run;

/* The header at the start of every chunk of a run. */
typedef struct mpi_chunk {
    mp_pool *pool;       /* the owner */
    struct mpi_run *run; /* the run holding this chunk; the run itself for chunk 0 */
} mpi_chunk;

/*
 * One contiguous region of blocks: a run of chunks from the source, or a buffer pool's buffer.
 * Blocks are carved in address order: chunk 0's blocks, then chunk 1's, and so on, so
 *   block k of the run is at  base + (k / per_chunk) * span + first_off + (k % per_chunk) * stride,
 * and exactly the blocks with index < carved have been handed out since the last reset.
 * Invariants: carved <= nchunks * per_chunk; inited <= nchunks; the chunks with index < inited have
 * their header written, and every chunk holding a carved block is among them.
 */
typedef struct mpi_run {
    mpi_chunk chunk;      /* chunk 0's header (unused in a buffer pool) */
    struct mpi_run *next; /* the pool's runs, in the order they were taken */
    struct mpi_run *prev;
    char *base;         /* chunk 0; for a buffer pool, its first block */
    size_t size;        /* bytes taken from the source (0 for a buffer pool) */
    size_t span;        /* bytes from one chunk to the next */
    size_t first_off;   /* offset of a chunk's first block from the chunk */
    uint32_t nchunks;   /* chunks in the run (1 for a buffer pool) */
    uint32_t inited;    /* chunks whose header is written */
    uint64_t carved;    /* blocks carved from this run since the last reset */
    uint64_t per_chunk; /* blocks in one chunk */
    uint64_t scratch;   /* mp_pool_trim()'s count of this run's free blocks */
} mpi_run;

/* Bits of mp_pool.state. */
enum {
    MPI_IN_BUFFER = 1u << 0, /* the pool lives in the caller's buffer: no source, no masking */
};

/*
 * A pool. `fast` comes first: the inline fast path in mempool.h reads it through a cast.
 *
 * Free list: the blocks on it are linked through their first word. A plain pool keeps it in
 * fast.free; a slow pool (MP_ZERO) keeps it in `list` and fast.free stays MP_FAST_SLOW, so that every
 * alloc and free reaches the *_slow functions.
 *
 * Invariants (checked by pool_is_valid(), i.e. mp_pool_check()):
 *   in_use + free_len == carved == sum of run.carved, where free_len is the free list's length
 *   (this is how in_use is known: the fast path counts allocations only), and frees = allocs - in_use
 *   carved <= capacity_max
 *   carving happens only when the free list is empty, so at every carve in_use == carved; hence
 *   blocks_peak == max(peak_before, carved), where peak_before keeps the carved count from before
 *   each reset and trim (the only operations that lower carved).
 *   Blocks never carved since the last reset lie at or after the cursor: in run `cur` from `bump`
 *   on, and in every run after `cur` (their carved is 0).
 */
struct mp_pool {
    struct mp_pool_fast fast;
    void *list; /* the free list of a slow pool */

    /* The carving cursor: never-used blocks from bump up to bump_end, in chunk cur_chunk of cur. */
    char *bump;
    char *bump_end;
    mpi_run *cur;
    uint32_t cur_chunk;

    mpi_run *first; /* the runs, oldest first */
    mpi_run *last;

    /* Geometry, fixed at creation. */
    size_t block_size;
    size_t align;
    size_t stride;    /* block_size rounded up to align (at least a pointer) */
    size_t chunk_size; /* a power of two >= MP_CHUNK_SIZE */
    size_t first_off; /* offset of a chunk's first block */
    uint64_t per_chunk;
    uint64_t capacity;     /* as asked for; 0 = unbounded */
    uint64_t capacity_max; /* capacity, or UINT64_MAX when unbounded */

    /* Counters beyond the fast path's (see mp_stats). */
    uint64_t carved;
    uint64_t held; /* blocks the runs can hold: sum of nchunks * per_chunk */
    uint64_t peak_before;
    uint64_t failed_allocs;
    uint64_t bytes_reserved;
    uint64_t nruns;
    uint64_t source_maps;
    uint64_t resets;
    uint64_t trims;

    unsigned flags; /* MP_ZERO, ... as created */
    unsigned state; /* MPI_IN_BUFFER, ... */
    mp_source source;
    size_t meta_size; /* bytes of this struct's own mapping (0 in a buffer) */
    mpi_run buffer_run; /* a buffer pool's only run */
    char name[MP_NAME_MAX];
};

/* ------------------------------------------------------------------------------------------------
 * os.c: the system source. Nothing else in the library knows the operating system.
 * ---------------------------------------------------------------------------------------------- */

/* The default mp_source: anonymous private mappings, aligned by trimming an oversized one. */
MPI_HIDDEN extern const mp_source mpi_os_source;

/* The system page size (cached after the first call). */
MPI_HIDDEN size_t mpi_os_page_size(void);

/* ------------------------------------------------------------------------------------------------
 * pool.c
 * ---------------------------------------------------------------------------------------------- */

/*
 * Blocks on the free list, found by walking it: O(free blocks). The walk stops after `carved` steps,
 * so a list that a user bug made cyclic cannot hang it; it then returns carved + 1.
 */
MPI_HIDDEN uint64_t mpi_pool_free_len(const mp_pool *pool);

/* The most blocks in use at once since creation (see the invariants of struct mp_pool). */
static inline uint64_t mpi_pool_peak(const mp_pool *pool)
{
    return pool->carved > pool->peak_before ? pool->carved : pool->peak_before;
}

#endif /* MP_INTERNAL_H */

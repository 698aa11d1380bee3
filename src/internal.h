/*
 * internal.h: the library's internal types with their invariants, and the internal prototypes
 * grouped by the file that defines them. Nothing here is public; tests use include/mempool.h only.
 *
 * Memory layout of a pool that takes its memory from a source (docs/design.md has the whole
 * design):
 *
 *   run (one source map: nchunks * chunk_size bytes, aligned to chunk_size)
 *   +---------------------------------------+---------------------------------------+----
 *   | chunk 0                               | chunk 1                               |
 *   | [mpi_run header][pad][blk][blk]...[w] | [mpi_chunk hdr][pad][blk][blk]...[w]  | ...
 *   +---------------------------------------+---------------------------------------+----
 *   ^ chunk address = block address & ~(chunk_size - 1)
 *
 *   first_off = MP_CHUNK_HEADER rounded up to the alignment (a heap class with a lead: to `lead`
 *   bytes before a page boundary, mpi_pool_create_chunked); the first block of every chunk starts
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

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

/* A lock: a pthread mutex, or (MP_FREESTANDING: no threads, no thread-safe objects) a placeholder
 * that only keeps the layout's fields. The system's threads are reached only through the port
 * layer below (os.c's section): mpi_lock_*, mpi_once_run, mpi_os_*. */
#if MP_FREESTANDING
#define static_assert _Static_assert /* <assert.h> is not among the freestanding headers */
typedef struct mpi_lock {
    char unused;
} mpi_lock;
/* The C library's errno can be a call (newlib's __errno()); bare metal has the library's own
 * mp_errno (mempool.h), which every `errno` in the library's files names. */
#undef errno
#define errno mp_errno
#else
#include <assert.h> /* static_assert */
#include <pthread.h>
typedef pthread_mutex_t mpi_lock;
#define MPI_LOCK_INIT PTHREAD_MUTEX_INITIALIZER
typedef pthread_once_t mpi_once;
#define MPI_ONCE_INIT PTHREAD_ONCE_INIT
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MPI_HIDDEN __attribute__((visibility("hidden")))
#else
#define MPI_HIDDEN
#endif

/* The return address of the current function: the allocation site a checked pool records. */
#if defined(__GNUC__) || defined(__clang__)
#define MPI_RETURN_ADDRESS() __builtin_return_address(0)
#else
#define MPI_RETURN_ADDRESS() NULL
#endif

/* Debug asserts for our own invariants (MP_DEBUG >= 1); user errors are never checked with these.
 * */
#if MP_DEBUG >= 1
#define mp_assert(cond) ((cond) ? (void)0 : mpi_assert_fail(#cond, __FILE__, __LINE__))
#else
#define mp_assert(cond) ((void)(0 && (cond))) /* still type-checked, never run */
#endif

/* ------------------------------------------------------------------------------------------------
 * Helpers every file uses
 * ---------------------------------------------------------------------------------------------- */

static inline bool mpi_is_pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

/* Rounds x up to a multiple of the power of two a; the caller has ruled out overflow. */
static inline uintptr_t mpi_align_up(uintptr_t x, size_t a)
{
    return (x + (a - 1)) & ~(uintptr_t)(a - 1);
}

/* Where a header of `need` bytes aligned to `align` goes at the start of the caller's buffer (not
 * NULL) of `size` bytes: its address, and the buffer's end in *end. 0 when the buffer wraps around
 * the address space or cannot hold the header. */
static inline uintptr_t mpi_buffer_place(const void *buffer, size_t size, size_t align, size_t need,
                                         uintptr_t *end)
{
    uintptr_t start = (uintptr_t)buffer;
    if (size > UINTPTR_MAX - start)
        return 0;
    *end = start + size;
    uintptr_t at = mpi_align_up(start, align);
    return at < start || at > *end || *end - at < need ? 0 : at;
}

/* log2 of a heap's chunk size (heap.c): no heap block starts at a multiple of it, since each
 * starts after its chunk's header, so malloc.c tells its own over-aligned blocks by that. */
#define MPI_HEAP_SHIFT 21u
#define MPI_HEAP_CHUNK ((size_t)1 << MPI_HEAP_SHIFT)
/* The largest alignment a heap serves: a large block starts within a chunk of its header. */
#define MPI_HEAP_MAX_ALIGN (MPI_HEAP_CHUNK / 2)
/* A heap class pool made with a lead starts its blocks `lead` bytes before a multiple of this. */
#define MPI_LEAD_PAGE ((size_t)4096)

/* The start of the chunk of chunk_size bytes (a power of two, chunks aligned to it) holding p. */
static inline uintptr_t mpi_chunk_of(const void *p, size_t chunk_size)
{
    return (uintptr_t)p & ~(uintptr_t)(chunk_size - 1);
}

/* Unlinks `node` from a doubly-linked list whose links are the fields `next` and `prev` and whose
 * first node is the lvalue `head` (nginx's ngx_queue, without a sentinel: NULL ends the list). */
#define MPI_LIST_UNLINK(head, node, next, prev)                                                    \
    do {                                                                                           \
        if ((node)->prev != NULL)                                                                  \
            (node)->prev->next = (node)->next;                                                     \
        else                                                                                       \
            (head) = (node)->next;                                                                 \
        if ((node)->next != NULL)                                                                  \
            (node)->next->prev = (node)->prev;                                                     \
    } while (0)

/* Puts `node` first on such a list. */
#define MPI_LIST_PUSH(head, node, next, prev)                                                      \
    do {                                                                                           \
        (node)->prev = NULL;                                                                       \
        (node)->next = (head);                                                                     \
        if ((head) != NULL)                                                                        \
            (head)->prev = (node);                                                                 \
        (head) = (node);                                                                           \
    } while (0)

/* ------------------------------------------------------------------------------------------------
 * Types
 * ---------------------------------------------------------------------------------------------- */

struct mpi_run;
struct mpi_tcache;

/* The header at the start of every chunk of a run; the inline handle path reads it as struct
 * mp_chunk_fast (mempool.h). */
typedef struct mpi_chunk {
    mp_pool *pool;       /* the owner */
    struct mpi_run *run; /* the run holding this chunk; the run itself for chunk 0 */
    uintptr_t hbias;     /* MP_HANDLES: a block's index less (block - chunk) / stride (below) */
} mpi_chunk;

/*
 * The owner word of a heap's chunk (mpi_pool_create_chunked): a second copy of the chunk's pool
 * pointer, which the heap reads to find a freed block's pool. Heap chunks are all aligned to their
 * size, so their headers share one cache set at every level, and reading them missed the caches
 * (docs/design.md, "The heap"). The owner
 * word's line is picked by the chunk's address among MPI_OWNER_COLORS lines after the header, so
 * the words of consecutive chunks fall in different sets. A large block keeps NULL at the same
 * place.   heap chunk:  [mpi_chunk / mpi_run: MP_CHUNK_HEADER][owner lines:
 * MPI_OWNER_ROOM][bitmap][blocks]
 */
#define MPI_OWNER_COLORS 64u
#define MPI_OWNER_ROOM ((size_t)MPI_OWNER_COLORS * 64u)

static inline mp_pool **mpi_owner_word(uintptr_t chunk, unsigned chunk_shift)
{
    return (mp_pool **)(chunk + MP_CHUNK_HEADER +
                        ((chunk >> chunk_shift) % MPI_OWNER_COLORS) * 64u);
}

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
    uint64_t scratch;   /* mp_pool_trim()'s count of this run's free blocks; mp_pool_visit()'s
                           index of the run's first bit in its scratch bitmap */
    uint32_t hnum;      /* MP_HANDLES: chunk i of the run has handle number hnum + i */
} mpi_run;

/* Bits of mp_pool.state. */
enum {
    MPI_IN_BUFFER = 1u << 0, /* the pool lives in the caller's buffer: no source, no masking */
    MPI_POPULATE = 1u << 1,  /* a carve asks for its block's pages (mpi_pool_fresh_pages) */
};

/*
 * The path a pool's calls take (mp_pool.path), chosen once at creation by pool_select_path() in
 * pool.c; mp_pool_alloc_slow() and mp_pool_free_slow() switch on it and nothing else. The table,
 * with what makes each path and where it leads, is in docs/design.md ("Paths").
 */
typedef enum mpi_path {
    MPI_PATH_PLAIN,       /* no flag: the inline list; the slow path only carves (lean, checks 0) */
    MPI_PATH_ZERO,        /* MP_ZERO alone: lean_alloc/lean_free, and a memset */
    MPI_PATH_SECURE,      /* MP_SECURE alone, from a source: secure_alloc/secure_free */
    MPI_PATH_SECURE_LEAN, /* MP_SECURE with MP_ZERO, or in a buffer: lean with free bits */
    MPI_PATH_CHECKED,     /* MP_CHECKED, or a tool watching: the general path, every check */
    MPI_PATH_HANDLES,     /* MP_HANDLES, no check, not thread-safe: a pop or push, a generation */
    MPI_PATH_CACHED,      /* MP_THREAD_SAFE with per-thread caches (tcache.c) */
    MPI_PATH_LOCKED,      /* MP_THREAD_SAFE without caches: the general path under the lock */
} mpi_path;

/* Bits of mp_pool.checks: what the slow paths verify or tell a tool. Any bit makes a slow pool. */
enum {
    MPI_CHECK_STATE =
        1u << 0, /* a free bit per block slot, kept in the chunk header (checked, secure) */
    MPI_CHECK_FILL =
        1u << 1, /* fill freed blocks, guard each with a canary, record sites (checked) */
    MPI_CHECK_ASAN = 1u << 2,     /* poison free blocks for AddressSanitizer */
    MPI_CHECK_VALGRIND = 1u << 3, /* tell memcheck about blocks (running under Valgrind) */
};
#define MPI_CHECK_TOOLS (MPI_CHECK_ASAN | MPI_CHECK_VALGRIND)

/* Whether this build has checks at all: not on bare metal with checked pools left out (config.h,
 * MP_FREESTANDING_CHECKED), where no pool has any MPI_CHECK_* bit. */
#define MPI_CHECKS_BUILT (!MP_FREESTANDING || MP_FREESTANDING_CHECKED)

/*
 * A checked block's slot (stride bytes):
 *   [ user: block_size ][ canary: MP_FILL_CANARY up to the next 8 bytes, plus 8 ][ site: 8 ][ pad ]
 * site is the allocation's return address. A free block holds its link in its first word,
 * MP_FILL_FREED in the rest of the user part, and a copy of its link in the site word (pool.c).
 */
#define MPI_CANARY_EXTRA 8u
#define MPI_TRAILER (MPI_CANARY_EXTRA + sizeof(void *))

/*
 * A pool. `fast` comes first: the inline fast path in mempool.h reads it through a cast.
 *
 * Free list: the blocks on it are linked through their first word. A plain pool keeps it in
 * fast.free; a slow pool (MP_ZERO) keeps it in `list` and fast.free stays MP_FAST_SLOW, so that
 * every alloc and free reaches the *_slow functions.
 *
 * Invariants (checked by pool_is_valid(), i.e. mp_pool_check()):
 *   in_use + free_len == carved == sum of run.carved, where free_len is the free list's length
 *   (this is how in_use is known: the fast path counts allocations only), and frees = allocs -
 *   in_use carved <= capacity_max
 *   with free bits (MPI_CHECK_STATE): a slot's bit is set when the slot is on the free list, and
 *   otherwise only if a corrupted link cut it off the list (abandoned, never handed out again); so
 *   a set bit says the slot was carved (a fresh carve and a pop clear it, a free sets it, a reset
 *   clears them all)
 *   carving happens only when the free list is empty, inline or in the library, so at every carve
 *   in_use == carved (counted or not yet: the inline path's carves are folded in before anything
 *   reads carved); hence blocks_peak == max(peak_before, carved), where peak_before keeps the
 *   carved count from before each reset and trim (the only operations that lower carved).
 *   Blocks never carved since the last reset lie at or after the cursor: in run `cur` from
 *   `fast.bump` on, and in every run after `cur` (their carved is 0).
 *   The inline window: fast.end is NULL, or (a plain pool that does not populate) fast.bump <=
 *   fast.end <= bump_end and carved + (fast.end - fast.bump) / stride <= capacity_max, so the
 *   inline path never carves past the chunk or the capacity.
 */
/*
 * MP_HANDLES (handles.c; the handle's layout and the tables are in mempool.h, struct mp_pool_fast):
 * every chunk of a handle pool has a number; index (number << hbits) + slot + 1 names its slots in
 * fast.hgens (a generation each, one uint32_t, odd while the slot's block is live, even while it is
 * free or never used; the number's index 0 and those past the chunk's last slot stay 0), and
 * fast.hbase[number] places its blocks. Numbers are given to a run's chunks when it is taken
 * (consecutive: chunk i has run->hnum + i) and taken back with the run when it is trimmed (a number
 * is in use exactly while a run holds it), to be given to a later run; the generations stay, so a
 * new chunk's carry on from the trimmed one's and the trimmed chunk's handles stay stale. Each
 * chunk keeps in its header hbias = (number << hbits) + 1 - first_off / stride, so alloc, free and
 * mp_pool_handle() find a block's index by masking, as hbias + (block - chunk) / stride (a buffer
 * pool has one number, 0, and hbits 32; its generations are in the buffer). A pool on the HANDLES
 * path without MP_ZERO whose stride holds a pointer and 4 bytes keeps its free list in fast.hfree
 * and has fast.hmask set: mempool.h's inline alloc and free pop and push it and move the
 * generation on themselves; each block on it keeps its generation's index after its link.
 * Invariants: hlen == hchunks << hbits (a buffer pool: its slots + 1); a block is live iff its
 * generation is odd (alloc and free each add one; reset adds one to each odd one); hfree == NULL
 * unless hmask != 0, and hmask != 0 only on the HANDLES path without MP_ZERO, where every block on
 * hfree holds its own index (mpi_pool_hindex).
 */
/* A mapping the handle store keeps until destroy (a table, or the generations of numbers). */
typedef struct mpi_hmap {
    struct mpi_hmap *next;
    size_t size;
} mpi_hmap;

struct mp_pool {
    struct mp_pool_fast fast;
    void *list; /* the free list of a slow pool but an inline handle pool (pool.c, pool_head) */

    /* The carving cursor: never-used blocks from fast.bump up to bump_end, in chunk cur_chunk of
     * cur. The inline path carves from fast.bump up to fast.end (pool.c, cursor_expose) without
     * counting: blocks from `counted` up to fast.bump are carved but not yet in carved, cur->carved
     * and fast.allocs, until the library folds them in (mpi_pool_fold_carves). */
    char *bump_end;
    char *counted;
    mpi_run *cur;
    uint32_t cur_chunk;
    char *populated; /* MPI_POPULATE: chunk cur_chunk's pages below it were seen (or NULL) */
    /* MPI_POPULATE, blocks of more than two pages (pool.c, "Populating"): a block carved and left
     * to fault, whose inner pages tell whether the program writes such blocks whole (or NULL),
     * and how many such blocks to populate before the next sample. Atomic: refills decide after
     * dropping the lock. */
    const void *sample;
    uint32_t dense;

    mpi_run *first; /* the runs, oldest first */
    mpi_run *last;

    /* Geometry, fixed at creation. */
    size_t block_size;
    size_t align;
    size_t stride;        /* block_size rounded up to align (at least a pointer) */
    size_t chunk_size;    /* a power of two >= MP_CHUNK_SIZE */
    unsigned chunk_shift; /* log2(chunk_size) */
    size_t first_off;     /* offset of a chunk's first block */
    uint64_t per_chunk;
    uint64_t slots_bytes;  /* per_chunk * stride: the bytes of a chunk's slots */
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

    unsigned flags;      /* MP_ZERO, ... as created */
    unsigned state;      /* MPI_IN_BUFFER, ... */
    mpi_path path;       /* fixed at creation (pool_select_path) */
    unsigned checks;     /* MPI_CHECK_*, fixed at creation */
    uintptr_t key;       /* the secret that encodes free-list links; 0: links stored as they are */
    size_t site_off;     /* MPI_CHECK_FILL: offset of the site word in a slot */
    size_t bitmap_bytes; /* MPI_CHECK_STATE: bytes of the free bitmap in each chunk header */
    size_t bitmap_off;   /* where a chunk's bitmap starts: after the header and any owner lines */
    unsigned char *buffer_bitmap; /* MPI_CHECK_STATE in a buffer pool: the one bitmap */
    mp_source source;
    size_t meta_size; /* bytes of this struct's own mapping (0 in a buffer) */
    /* MPI_PATH_SECURE: a hint from a chunk to its run, slot (chunk address >> chunk_shift) modulo
     * run_slots; a run's chunks are written when it is taken, so a later run may overwrite an
     * earlier one's (the lookup verifies, and walks the runs on a miss). NULL: none (pool.c). */
    const struct mpi_run **run_table;
    size_t run_slots;   /* a power of two, at least twice the chunks of all runs; 0 with no table */
    mpi_run buffer_run; /* a buffer pool's only run */
    /* MP_HANDLES (handles.c): the numbers handed out, the tables' room, the most numbers, the
     * mappings kept until destroy, and a buffer pool's one first block. */
    uint32_t hchunks;
    uint32_t hcap;
    uint32_t hlimit;
    mpi_hmap *hmaps;
    uintptr_t buffer_base; /* a buffer pool's hbase[0] */
    char name[MP_NAME_MAX];

    /* MP_THREAD_SAFE (tcache.c). `lock` guards everything above but the caches' own fields;
     * the registry lock guards the lists. */
    mpi_lock lock;
    uint32_t ts_id;             /* this pool's slot in every thread's cache table; 0: no caches */
    uint64_t cache_limit;       /* blocks a thread's cache may hold */
    struct mpi_tcache *caches;  /* the threads' caches of this pool */
    mp_pool *ts_next, *ts_prev; /* all thread-safe pools */
    uint64_t retired_allocs;    /* allocations counted by caches since dropped */
    /* The depot (tcache.c, "The depot"): the full magazines that caches gave back, stacks
     * (LIFO) of any depth: each cache's shelf and the shared stack `mags` (exited threads'
     * shelves), nmags magazines in all. A magazine is a NULL-terminated chain of exactly the
     * pool's batch of blocks (cache_batch) whose first block's second word links the next;
     * a pool of one-word blocks keeps the first blocks in an array instead (`mag_tops`, room for
     * `mag_cap`, grown with the lock dropped). Written only by tcache.c, under `lock`. Blocks:
     * every carved block is in use, on the free list, in exactly one cache (its loaded list or
     * its previous magazine) or in exactly one magazine of the depot; so in_use = carved -
     * free_len - cached - nmags * batch. mpi_ts_lock empties it onto the free list, so pool.c's
     * walks of the list (trim, reset, stats, check) see every free block. */
    void *mags;
    struct mpi_tcache *stocked; /* caches with a shelf in the depot (tcache.c) */
    void **mag_tops;
    uint64_t nmags, mag_cap;
};

/* A pool's checks as the library reads them: the constant 0 where the build has none
 * (MPI_CHECKS_BUILT), so the compiler leaves every check's code out. */
static inline unsigned mpi_checks(const mp_pool *pool)
{
    return MPI_CHECKS_BUILT ? pool->checks : 0;
}

/* ------------------------------------------------------------------------------------------------
 * os.c: the system source. Nothing else in the library knows the operating system.
 * ---------------------------------------------------------------------------------------------- */

/* The default mp_source: anonymous private mappings, aligned by trimming an oversized one. */
MPI_HIDDEN extern const mp_source mpi_os_source;

/* source->map(size, align), refusing what a source that broke its contract returned: memory not
 * aligned to `align` goes straight back, and NULL comes out. Pools, heaps and arenas map their
 * chunks and large blocks through here, so none ever masks an address outside its mapping. */
static inline void *mpi_source_map(const mp_source *source, size_t size, size_t align)
{
    void *p = source->map(source->ctx, size, align);
    if (p != NULL && ((uintptr_t)p & (align - 1)) != 0) {
        source->unmap(source->ctx, p, size);
        return NULL;
    }
    return p;
}

/* The system page size (cached after the first call). */
MPI_HIDDEN size_t mpi_os_page_size(void);

/* Faults in the pages of [p, p + size) (page-aligned, mapped by mpi_os_source) with one call, as
 * writes would; does nothing for size 0, or where the system cannot (the pages then fault in when
 * written). */
MPI_HIDDEN void mpi_os_populate(void *p, size_t size);

/* Whether every page of [p, p + size) (page-aligned) is resident, by one mincore() call over at
 * most its first 64 pages; false when the system cannot tell (or the range is not mapped). */
MPI_HIDDEN bool mpi_os_resident(const void *p, size_t size);

/* Moves the pages of [from, from + size) of a mapping by mpi_os_source, contents and all, over
 * [to, to + size) of another, which they replace; `from` is then unmapped. All page-aligned. False
 * (nothing moved, `to` still mapped) where the system cannot. */
MPI_HIDDEN bool mpi_os_move(void *from, size_t size, void *to);

/* A random word from the kernel (getrandom), or a mix of clock and addresses if it has none. */
MPI_HIDDEN uintptr_t mpi_os_random(void);

#if !MP_FREESTANDING
/* Threads, the environment and stopping: the rest of the port (docs/design.md, "Porting"). Taking
 * and dropping a lock are inline over the system's mutex, so the lock paths pay no extra call. */

/* Makes a lock; adaptive: spins a little before sleeping where the system can. 0 or ENOMEM. */
MPI_HIDDEN int mpi_lock_init(mpi_lock *lock, bool adaptive);
static inline void mpi_lock_destroy(mpi_lock *lock)
{
    pthread_mutex_destroy(lock);
}
static inline void mpi_lock_acquire(mpi_lock *lock)
{
    pthread_mutex_lock(lock);
}
static inline void mpi_lock_release(mpi_lock *lock)
{
    pthread_mutex_unlock(lock);
}
/* Runs fn once in the process, whichever thread comes first; the others wait until it returned.
 * A fork() child runs again an initialisation the fork interrupted (glibc does). */
static inline void mpi_once_run(mpi_once *once, void (*fn)(void))
{
    pthread_once(once, fn);
}
/* Registers fn to run at a thread's exit with the argument the thread armed (nothing if it armed
 * none); called once, before any arm. */
MPI_HIDDEN void mpi_os_thread_exit_hook(void (*fn)(void *arg));
/* Arms this thread's exit hook with arg (not NULL). An arm made after the hook ran for this thread
 * (by a destructor that runs later at its exit) is never run: the caller must not need it. */
MPI_HIDDEN void mpi_os_thread_exit_arm(void *arg);
/* Registers handlers run by fork(): prepare in the parent before, parent and child after. */
MPI_HIDDEN void mpi_os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));
/* Whether the process surely has one thread now (false when it cannot be told). */
MPI_HIDDEN bool mpi_os_single_threaded(void);
/* The value of an environment variable, or NULL. */
MPI_HIDDEN const char *mpi_os_getenv(const char *name);
/* An option read from the environment as MEMPOOL_<name>: its accepted values, in order (the index
 * is what it reads as), and what each means (for MEMPOOL_VERBOSE). */
#define MPI_OPTION_VALUES 3
typedef struct mpi_option {
    const char *name;
    const char *values[MPI_OPTION_VALUES]; /* unused ones NULL; at least two */
    const char *meaning[MPI_OPTION_VALUES];
} mpi_option;
/* MEMPOOL_CHECKED: 0 or 1, a checked process-wide heap (read by heap.c when it makes that heap). */
MPI_HIDDEN extern const mpi_option mpi_option_checked;
/* The index of `value` among the option's values, or -1 (a bad value). */
MPI_HIDDEN int mpi_option_value(const mpi_option *o, const char *value);
/* Says on stderr that `value` is bad for the option and is ignored (one line, not fatal). */
MPI_HIDDEN void mpi_option_say_bad(const mpi_option *o, const char *value);
/* The option's value from the environment: 0 when unset; a bad value is said and reads as 0. */
MPI_HIDDEN int mpi_os_option(const mpi_option *o);
/* Grows a table of *cap items of `size` bytes, mapped from the system (never malloc: mempool may
 * be malloc), to hold at least `need` items: from a page's worth, doubled; the items kept, the
 * rest zero (a fresh mapping's). False (the table as it was) on ENOMEM. */
MPI_HIDDEN bool mpi_os_table_grow(void **table, size_t *cap, size_t size, size_t need);
/* Writes one line (line and a newline) where the program's errors go (stderr), at once. */
MPI_HIDDEN void mpi_os_error_line(const char *line);
/* Stops the program abnormally (abort()). */
MPI_HIDDEN _Noreturn void mpi_os_abort(void);
#endif

/* ------------------------------------------------------------------------------------------------
 * tcache.c: thread-safe pools, and fork()
 *
 * The library's locks, in the order a thread may take them: it never waits for an earlier one
 * while it holds a later one, nor for a second one of the same level. fork() takes them all in
 * this order (tcache.c's atfork handlers), so it cannot deadlock with a thread inside, and the
 * child can use every thread-safe object:
 *   1. the registry (tcache.c): threads' caches, the list of thread-safe pools, fork()'s list of
 *      heaps' locks;
 *   2. a thread-safe pool's `lock` (taken alone, or after the registry: mpi_ts_lock);
 *   3. a thread-safe heap's own lock (heap.c: its large blocks and counters), innermost: nothing is
 *      taken under it (class pools call the heap's source under their own lock, and it takes none).
 * Plain pools and arenas have no lock; a heap without MP_THREAD_SAFE takes its lock only in the
 * one thread using it, so no other thread's fork() finds it held. The two mpi_once_run
 * (registry_init, the default heap) are safe in a child: glibc runs again there an initialisation
 * that a fork() interrupted.
 * ---------------------------------------------------------------------------------------------- */

/* Makes a new pool thread-safe: its lock, its place in the registry and, when `caches` (the path's
 * choice: pool_select_path), a cache limit (thread_cache, or the default for its stride) and a slot
 * in every thread's table, if one is left (pool->ts_id stays 0 if not). 0 or an errno code. */
MPI_HIDDEN int mpi_ts_create(mp_pool *pool, size_t thread_cache, bool caches);
/* Drops every thread's cache of the pool and takes it out of the registry. */
MPI_HIDDEN void mpi_ts_destroy(mp_pool *pool);
/* The slow alloc and free of a thread-safe pool: through this thread's cache, or the lock. With
 * reuse_only, alloc takes only a block freed before (NULL, counting no failure, if it would carve).
 * */
MPI_HIDDEN void *mpi_ts_alloc(mp_pool *pool, const void *site, bool reuse_only);
MPI_HIDDEN void mpi_ts_free(mp_pool *pool, void *block);
/* Takes and drops the registry lock and the pool's lock, in that order (no-ops for other pools). */
MPI_HIDDEN void mpi_ts_lock(const mp_pool *pool);
MPI_HIDDEN void mpi_ts_unlock(const mp_pool *pool);
/* With mpi_ts_lock held: the blocks held by caches and the allocations they counted. */
MPI_HIDDEN void mpi_ts_sum(const mp_pool *pool, uint64_t *cached, uint64_t *allocs);
/* With mpi_ts_lock held: at most the blocks the caches hold, however their threads race. */
MPI_HIDDEN uint64_t mpi_ts_cached_floor(const mp_pool *pool);
/* With mpi_ts_lock held, no other thread using the pool: every cache emptied (mp_pool_reset). */
MPI_HIDDEN void mpi_ts_reset(mp_pool *pool);
/* With mpi_ts_lock held, no other thread using the pool: mark(pool, block, ctx) for every block the
 * caches hold, each checked by mark before its link is read; false at once when mark returns
 * false or a cache's list and counters disagree (mp_pool_visit). */
MPI_HIDDEN bool mpi_ts_each_cached(const mp_pool *pool,
                                   bool (*mark)(const mp_pool *pool, const void *block, void *ctx),
                                   void *ctx);

/* A lock of level 3 (a thread-safe heap's), on fork()'s list while it exists. */
typedef struct mpi_fork_lock {
    mpi_lock *mutex;
    struct mpi_fork_lock *next;
} mpi_fork_lock;
/* Puts the lock on fork()'s list; takes it off (before the mutex is destroyed). */
MPI_HIDDEN void mpi_fork_lock_add(mpi_fork_lock *l);
MPI_HIDDEN void mpi_fork_lock_remove(mpi_fork_lock *l);

/* ------------------------------------------------------------------------------------------------
 * check.c: error reports, fill patterns, and what AddressSanitizer and Valgrind are told
 * ---------------------------------------------------------------------------------------------- */

/* A failed mp_assert: prints the condition and where, and aborts (independent of NDEBUG). */
MPI_HIDDEN _Noreturn void mpi_assert_fail(const char *cond, const char *file, int line);

/* Builds the one-line message and calls the installed handler (default: print and abort). */
MPI_HIDDEN void mpi_report(mp_error_kind kind, const mp_pool *pool, const void *addr,
                           const void *site, uint64_t count, const char *detail);
/* The same, naming `name` (a heap's, say) where pool is NULL or not the one to name. */
MPI_HIDDEN void mpi_report_as(mp_error_kind kind, const char *name, const mp_pool *pool,
                              const void *addr, const void *site, uint64_t count,
                              const char *detail);

/* The checks of a pool with any MPI_CHECK_* bit, around the list operations of pool.c:
 * check_alloc readies a block popped or carved (fresh) for the user, with `site` its caller;
 * check_free returns false when the block must not be freed (the error was reported);
 * check_destroy verifies every block of a checked pool and reports leaks. */
MPI_HIDDEN void mpi_check_alloc(mp_pool *pool, void *block, bool fresh, const void *site);
MPI_HIDDEN bool mpi_check_free(mp_pool *pool, void *block);
MPI_HIDDEN void mpi_check_destroy(mp_pool *pool);

/* A checked pool's free block is as the free left it (link word and fill), else it is reported as a
 * write after free and false returned (destroy, and trim before it gives a run back). */
MPI_HIDDEN bool mpi_check_freed(const mp_pool *pool, void *block);

/* The tools' view of a block (MPI_CHECK_TOOLS pools only; each costs nothing elsewhere). open/close
 * let the library itself touch n bytes of a free block; free takes a block back from the user; the
 * pool hooks keep memcheck's idea of the pool in step. */
MPI_HIDDEN void mpi_tool_open(const mp_pool *pool, const void *p, size_t n);
MPI_HIDDEN void mpi_tool_close(const mp_pool *pool, const void *p, size_t n);
MPI_HIDDEN void mpi_tool_free(const mp_pool *pool, void *block);
MPI_HIDDEN unsigned mpi_tool_checks(void);
MPI_HIDDEN void mpi_tool_forget_live(const mp_pool *pool);

/* ------------------------------------------------------------------------------------------------
 * stats.c: names, and writing statistics
 * ---------------------------------------------------------------------------------------------- */

/* Copies the name src (NULL: "") into dst[MP_NAME_MAX], cut to at most MP_NAME_MAX - 1 bytes on a
 * character boundary: a UTF-8 sequence is kept whole or not at all; a byte that begins no sequence
 * counts as one character and is kept as it is (the JSON writer replaces it). */
MPI_HIDDEN void mpi_name_copy(char *dst, const char *src);

/* ------------------------------------------------------------------------------------------------
 * pool.c
 * ---------------------------------------------------------------------------------------------- */

/* mp_pool_create() with every chunk exactly chunk_size bytes (a power of two holding a block):
 * the heap's pools, whose blocks it finds by masking with one mask. populate: the pool's source
 * maps with mpi_os_source, so a carve may ask for its block's pages (MPI_POPULATE). lead: 0, or
 * (a multiple of the alignment) the first block starts lead bytes before a multiple of
 * MPI_LEAD_PAGE, so with a stride of whole pages every block does (heap.c, class_leads). */
MPI_HIDDEN mp_pool *mpi_pool_create_chunked(const mp_pool_opts *opts, size_t chunk_size,
                                            bool populate, size_t lead);
/* Pages to fault in at once: [lo, hi), page-aligned; empty when lo == hi. large: the block of
 * more than two pages they are (at most one in a range), or NULL for smaller blocks. */
typedef struct mpi_pages {
    uintptr_t lo, hi;
    const void *large;
} mpi_pages;
/* MPI_POPULATE: adds to *r the pages of the n never-used blocks just carved from block on that
 * no carve saw before, when they extend *r (a chunk change leaves the new chunk's to fault in).
 * The caller then calls mpi_pool_populate() on *r before anything writes to the blocks. */
MPI_HIDDEN void mpi_pool_fresh_pages(mp_pool *pool, const void *block, uint64_t n, mpi_pages *r);
/* Faults in the pages of *r with one call, unless they are a large block the pool's policy leaves
 * to fault (pool.c, "Populating"). Called with no lock held: it may ask the system twice. */
MPI_HIDDEN void mpi_pool_populate(mp_pool *pool, const mpi_pages *r);
/* Takes a block from the free list or else the cursor (*fresh: from the cursor); counts nothing.
 * NULL when the capacity or the memory is used up. */
MPI_HIDDEN void *mpi_pool_take(mp_pool *pool, bool *fresh);
/* Carves up to n (> 0) never-used blocks at once, in O(1): the first of them, which lie one stride
 * apart in one chunk, unlinked and counted as carved; *got: how many (fewer when the cursor's
 * chunk or the capacity ends first). NULL, with *got 0, when the capacity or the memory is used
 * up. Counts no allocation. */
MPI_HIDDEN void *mpi_pool_carve_range(mp_pool *pool, uint64_t n, uint64_t *got);
/* mp_pool_alloc(), but only a block freed before: NULL, with no failure counted and errno kept,
 * when the pool would have to carve a never-used one (the heap's spill to a larger class). */
MPI_HIDDEN void *mpi_pool_alloc_reused(mp_pool *pool);
/* Puts a chain of free blocks, linked first to last, on the free list. */
/* The free list's head (thread-safe pools: their lock held). */
MPI_HIDDEN void **mpi_pool_head(mp_pool *pool);
MPI_HIDDEN void mpi_pool_give_chain(mp_pool *pool, void *first, void *last);
/* The general alloc and free: every check and hook the pool has, for any pool (a thread-safe
 * one's caller holds its lock). The lean paths come here to carve. */
MPI_HIDDEN void *mpi_pool_alloc_general(mp_pool *pool, const void *site);
MPI_HIDDEN void mpi_pool_free_general(mp_pool *pool, void *block);

/* A block slot: its run, its carving index k in the run, and where its free bit is (byte and bit;
 * MPI_CHECK_STATE pools only, else NULL and 0). */
typedef struct mpi_slot {
    const mpi_run *run;
    uint64_t k;
    unsigned char *byte;
    unsigned char bit;
} mpi_slot;

/* Describes the block slot at p in *s; false when p is no slot of the pool. Pure arithmetic on the
 * address, no division, never a dereference of p. O(runs). */
MPI_HIDDEN bool mpi_pool_find_slot(const mp_pool *pool, const void *p, mpi_slot *s);
/* A free's first checks in a pool with free bits: the block is a carved slot (else an invalid free)
 * whose bit is clear (else a double free); reported, and false, when the free must not be done.
 * *s is the block's slot. */
MPI_HIDDEN bool mpi_pool_free_is_valid(mp_pool *pool, void *block, mpi_slot *s);
/* Slot k of run (for walks over every slot: divides). */
MPI_HIDDEN mpi_slot mpi_pool_slot_of(const mp_pool *pool, const mpi_run *run, uint64_t k);
/* The address of slot k of run. */
MPI_HIDDEN void *mpi_pool_slot(const mp_pool *pool, const mpi_run *run, uint64_t k);
static inline bool mpi_slot_is_free(const mpi_slot *s)
{
    return (*s->byte & s->bit) != 0;
}
static inline void mpi_slot_set_free(const mpi_slot *s, bool is_free)
{
    *s->byte = (unsigned char)(is_free ? *s->byte | s->bit : *s->byte & ~s->bit);
}
/* Takes back one failed allocation the pool counted: a heap that refused, reclaimed memory and then
 * succeeded (or failed again, counted again) reports one outcome per request. */
MPI_HIDDEN void mpi_pool_forgive_failure(mp_pool *pool);
/* A checked pool's free block: its link word agrees with the copy in its site word (pool.c,
 * "Free-list links"); false when the program wrote to the link word after the free. */
MPI_HIDDEN bool mpi_pool_link_is_intact(const mp_pool *pool, void *block);
/* Reports a bad link found in free block `block`, in the same words wherever it is found: a write
 * after free ("its link was overwritten") in a checked pool, else a corrupted free list. */
MPI_HIDDEN void mpi_pool_link_bad(const mp_pool *pool, const void *block);

/*
 * Blocks on the free list, found by walking it: O(free blocks). The walk stops after `carved`
 * steps, so a list that a user bug made cyclic cannot hang it; it then returns carved + 1. A pool
 * with free bits validates each link it follows: at a bad one (reported, as an alloc reaching it
 * would) it stops, and counts the blocks up to the one holding it (the rest are lost to the
 * program).
 */
MPI_HIDDEN uint64_t mpi_pool_free_len(const mp_pool *pool);

/* mp_pool_visit() (mempool.h); *stopped tells whether fn stopped it (mp_heap_visit goes on
 * otherwise). */
MPI_HIDDEN int mpi_pool_visit(const mp_pool *pool, mp_visit_fn *fn, void *ctx, bool *stopped);
/* Calls fn(block, block_size, ctx) for each carved slot of a pool with free bits whose bit is
 * is_free, in slot order, until fn returns false (false then). Each bit is read as the walk reaches
 * it, so fn may free the block it is given. O(carved + runs). */
MPI_HIDDEN bool mpi_pool_each_slot(const mp_pool *pool, bool is_free, mp_visit_fn *fn, void *ctx);
/* Counts the blocks a plain pool's inline path carved since the last call (struct mp_pool:
 * `counted`) into carved, cur->carved and fast.allocs. Every library call that reads those, or
 * moves the cursor, calls it first. O(1); writes nothing unless the inline path carved, which only
 * a plain pool's does (whose calls never overlap), so a reader of a const pool may call it. */
MPI_HIDDEN void mpi_pool_fold_carves(const mp_pool *pool);

/* The most blocks in use at once since creation (see the invariants of struct mp_pool). */
static inline uint64_t mpi_pool_peak(const mp_pool *pool)
{
    return pool->carved > pool->peak_before ? pool->carved : pool->peak_before;
}

/* ------------------------------------------------------------------------------------------------
 * handles.c: MP_HANDLES, the chunk numbers and their generations (see struct mp_pool above)
 * ---------------------------------------------------------------------------------------------- */

/* Sets up the store of a pool from a source, with `slots` slots a chunk; EINVAL if too many. */
MPI_HIDDEN int mpi_handles_init(mp_pool *pool, uint64_t slots);
/* A buffer pool's: number 0 for its run, whose `slots` + 1 generations are at gens (zeroed). */
MPI_HIDDEN void mpi_handles_init_buffer(mp_pool *pool, uint32_t *gens, uint64_t slots);
/* Gives numbers to the nchunks chunks of a run being taken at mem (sets run->hnum); false, with
 * nothing changed but mappings kept for later, when the numbers or the source ran out. */
MPI_HIDDEN bool mpi_handles_run_add(mp_pool *pool, mpi_run *run, char *mem, uint32_t nchunks);
/* Makes every live slot's generation free (mp_pool_reset). O(slots of the pool's chunks). */
MPI_HIDDEN void mpi_handles_reset(mp_pool *pool);
/* Gives every mapping back (mp_pool_destroy). */
MPI_HIDDEN void mpi_handles_destroy(mp_pool *pool);
/* The live generations (odd) among the slots of the pool's chunks (mp_pool_check). */
MPI_HIDDEN uint64_t mpi_handles_live(const mp_pool *pool);

/* ------------------------------------------------------------------------------------------------
 * heap.c: blocks aligned beyond a heap's reach (MPI_HEAP_MAX_ALIGN), for the drop-in malloc's
 * memalign family. Each is a mapping of its own on one process-wide table (its lock on fork()'s
 * list), since a heap finds a block's header by masking to its chunk, which such a block would
 * start; so each starts at a multiple of MPI_HEAP_CHUNK, where no heap block does, and a free
 * needs the table only for such an address.
 * ---------------------------------------------------------------------------------------------- */

/* A block of `size` bytes (whole pages) aligned to `align` (a power of two); NULL with ENOMEM. */
MPI_HIDDEN void *mpi_heap_huge_alloc(size_t align, size_t size);
/* The bytes mapped for the table's block at p; 0 if p is none of the table's. */
MPI_HIDDEN size_t mpi_heap_huge_size(const void *p);
/* Unmaps the table's block at p and takes it off the table (errno kept); false if p is none. */
MPI_HIDDEN bool mpi_heap_huge_free(void *p);

/* ------------------------------------------------------------------------------------------------
 * heap.c: the process-wide heap's cache path (mp_malloc, mp_free, the drop-in malloc). A small
 * request is served from this thread's cache of its class pool, found without the pool: the heap's
 * mpi_heap_fast holds each class pool's cache entry (its tsoff, mempool.h) by request size in steps
 * of 8 bytes, and 0 (the entry every thread's table keeps empty) until that pool is made, or for a
 * pool with no cache, so such a request finds nothing there and takes the full path. A free finds
 * the entry through the block's owner word and pool, as mp_heap_free does, but only where the heap
 * may read owner words before it knows the block (owner_direct: not a checked heap).
 * ---------------------------------------------------------------------------------------------- */

/* The largest request the table serves: every class size is a multiple of 8 (MP_HEAP_CLASSES), so
 * the requests of one step fall in one class; and no class up to it spills (heap.c). */
#define MPI_HEAP_FAST_MAX ((size_t)MP_HEAP_SPILL_MIN)

struct mpi_heap_fast {
    bool owner_direct; /* free may read a block's owner word before it knows the block */
    /* [(size + 7) / 8]: the tsoff of the class pool of `size` bytes, or 0. Written once a pool is
     * published (a reader finding 0 takes the full path), read relaxed. */
    _Atomic uint32_t tsoff[MPI_HEAP_FAST_MAX / 8 + 1];
};

/* The process-wide heap's, once it is made (acquire); before, one whose table is all 0. */
MPI_HIDDEN extern _Atomic(const struct mpi_heap_fast *) mpi_heap_fast_default;

static inline const struct mpi_heap_fast *mpi_heap_fast_get(void)
{
    return atomic_load_explicit(&mpi_heap_fast_default, memory_order_acquire);
}

/* This thread's cache entry at byte offset tsoff of its table (0: an empty one). */
static inline struct mp_tcache_fast *mpi_heap_cache(uint32_t tsoff)
{
    return (struct mp_tcache_fast *)((char *)mpi_tcaches + tsoff);
}

/* A block of `size` (<= MPI_HEAP_FAST_MAX) bytes from this thread's cache of its class, counted as
 * the inline pool path counts; NULL when the cache is empty or there is none (the caller then takes
 * the full path). The pop raises the free's bound `stop` too, which the slow path set to pops plus
 * the room it left (tcache.c, cache_set_stop): so frees fill the loaded list to its magazine
 * before one takes the slow path, where the inline pool path, which leaves stop, stops them after
 * as many pushes as there was room when the bound was set. Intended cost: the table's entry, the
 * thread's table, a pop and two adds. */
static inline void *mpi_heap_alloc_cached(const struct mpi_heap_fast *h, size_t size)
{
    uint32_t tsoff = atomic_load_explicit(&h->tsoff[(size + 7) / 8], memory_order_relaxed);
    struct mp_tcache_fast *c = mpi_heap_cache(tsoff);
    void *block = c->free;
    if (MP_LIKELY(block != NULL)) {
        c->free = *(void **)block;
        MP_COUNT_ONE(c->pops);
        c->stop++; /* only its thread reads it */
    }
    return block;
}

/* Frees p, a block of the process-wide heap (not NULL, nor at a chunk's start), to this thread's
 * cache of its pool; false when it cannot (a checked heap, a large block, a pool with no cache, a
 * full cache): the caller then takes the full path. Intended cost: the owner_direct test, the owner
 * word, the pool's tsoff, the thread's table, a test, a push and a count. */
static inline bool mpi_heap_free_cached(void *p)
{
    if (!mpi_heap_fast_get()->owner_direct)
        return false;
    uintptr_t chunk = mpi_chunk_of(p, MPI_HEAP_CHUNK);
    const mp_pool *pool = *mpi_owner_word(chunk, MPI_HEAP_SHIFT);
    if (MP_UNLIKELY(pool == NULL))
        return false;
    struct mp_tcache_fast *c = mpi_heap_cache(((const struct mp_pool_fast *)pool)->tsoff);
    if (MP_UNLIKELY(c->pushes >= c->stop))
        return false;
    *(void **)p = c->free;
    c->free = p;
    MP_COUNT_ONE(c->pushes);
    return true;
}

#endif /* MP_INTERNAL_H */

/*
 * heap.c: any size, from pools. A heap is one fixed-size pool per size class, made when the class
 * is first used, and large blocks mapped from the source one by one.
 *
 * Every class pool takes its chunks at exactly HEAP_CHUNK bytes, aligned to HEAP_CHUNK, so a
 * block's chunk, and through the chunk's owner word (internal.h) the block's pool, is the block's
 * address masked by ~(HEAP_CHUNK - 1): free needs no size. A large block's mapping is
 * HEAP_CHUNK-aligned too and starts with a struct mpi_large; its owner word is NULL and the block
 * starts less than HEAP_CHUNK bytes after it, so the same mask finds it.
 *
 *   class chunk:  [mpi_chunk {pool, run}][owner lines: one holds the pool][bitmap][blocks ...]
 *   large block:  [mpi_large][owner lines: one holds NULL][pad][the user's block ...........]
 *
 * Every byte the heap takes goes through heap_map()/heap_unmap() (the heap's own mp_source over the
 * caller's source or buffer), which keeps bytes_reserved and enforces the capacity. Freed large
 * blocks' pages are cached (LARGE_CACHE_MAX runs, LARGE_CACHE_BYTES bytes), so a program that
 * allocates and frees large blocks does not map and fault in its pages every time (a refault
 * storm). Over the system source a cached mapping is cut into runs at any page, and runs that are
 * address-neighbours join again (cache_coalesce; fresh mappings are whole chunks, which the system
 * places side by side): a request takes a run with room from its first chunk boundary where it
 * lies and leaves the rest cached (run_cut), or has cached runs moved into a fresh mapping
 * (cache_gather), so freed pages serve any size. A caller's source takes back only
 * whole regions: there a run is a whole mapping, reused by a request it fits within 25%.
 * Invariants: pools[c] is NULL or a pool of class_size(c) with HEAP_CHUNK chunks; every large
 * block in use is on `large`, every cached run on `cache`, never both; bytes_reserved is the sum
 * of what heap_map gave and heap_unmap has not taken back, less the runs moved into another
 * mapping (their pages are counted there); a class's totals (mp_heap_stats) are its pool's plus,
 * in a buffer heap, carry[c], what its pools made before a reset had counted.
 */
#include "internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#define HEAP_SHIFT MPI_HEAP_SHIFT
#define HEAP_CHUNK MPI_HEAP_CHUNK
#define HEAP_MAX_ALIGN MPI_HEAP_MAX_ALIGN
/* A class's blocks are aligned to its size's lowest bit, capped here (but see class_leads). */
#define CLASS_MAX_ALIGN ((size_t)4096)
/* A leading class's blocks start this many bytes before a page boundary (class_leads). */
#define CLASS_LEAD ((size_t)64)
/* A large block starts after its header and the owner lines (internal.h), which hold NULL. */
#define LARGE_HEADER (MP_CHUNK_HEADER + MPI_OWNER_ROOM)
/* The cache's bounds: the unused pages a heap holds, and the runs each large alloc may scan. */
#define LARGE_CACHE_MAX 32
#define LARGE_CACHE_BYTES ((size_t)32 * 1024 * 1024)

static_assert(MP_HEAP_MAX_CLASS <= HEAP_CHUNK / 8,
              "a class chunk holds several of the largest blocks");
static_assert(MPI_HEAP_FAST_MAX <= MP_HEAP_SPILL_MIN && MPI_HEAP_FAST_MAX % 8 == 0,
              "the cache path's classes never spill");

/* A large block's header at the start of its mapping, or a cached run's at its first page. */
typedef struct mpi_large {
    struct mpi_large *next;
    struct mpi_large *prev;
    size_t map_size; /* bytes mapped */
    size_t usable;   /* bytes from the block's start to the mapping's end */
    void *block;     /* where the user's block starts (a run cut from a mapping's tail: NULL) */
} mpi_large;
static_assert(sizeof(mpi_large) <= MP_CHUNK_HEADER && LARGE_HEADER % 64 == 0,
              "the large header fits before the owner lines");

/* A buffer heap's totals of one class from before its resets, which make the class pools anew:
 * mp_heap_stats adds them to the pool's own, so a reset never lowers a total. */
typedef struct heap_carry {
    uint64_t allocs, frees, failed, peak;
} heap_carry;

struct mp_heap {
    _Atomic(mp_pool *) pools[MP_HEAP_CLASSES];
    struct mpi_heap_fast fast; /* the cache path's table (internal.h): pools' tsoff by size */
    mpi_lock lock;             /* the large lists and counters; the innermost lock (internal.h) */
    mpi_fork_lock fork_lock;   /* MP_THREAD_SAFE: `lock`, on fork()'s list */
    mpi_large *large;          /* large blocks in use */
    mpi_large *cache;          /* freed large blocks kept for reuse, most recent first */
    uint64_t large_allocs, large_frees, ncache;
    uint64_t failed; /* failed requests no class pool counted (large, pool creation) */
    unsigned flags;
    mp_source source; /* the caller's source (for a buffer: unused) */
    mp_source mine;   /* heap_map/heap_unmap over it, given to every class pool */
    size_t capacity;
    _Atomic size_t reserved;
    char *buf_next, *buf_end; /* a buffer heap: the unused rest of the buffer */
    char *buf_first;          /* where the buffer's space for chunks begins */
    heap_carry *carry;        /* a buffer heap: one per class, after this struct; else NULL */
    size_t meta_size;         /* this struct's mapping (0 in a buffer) */
    char name[MP_NAME_MAX];
};

/* ================================================================================================
 * Size classes
 * ============================================================================================== */

static unsigned floor_log2(size_t x) /* x > 0 */
{
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)(sizeof(unsigned long long) * 8 - 1) - (unsigned)__builtin_clzll(x);
#else
    unsigned n = 0;
    while (x >>= 1)
        n++;
    return n;
#endif
}

/* The class of a request of `size` (<= MP_HEAP_MAX_CLASS) bytes: see MP_HEAP_CLASSES. */
static unsigned class_of(size_t size)
{
    if (size <= 16)
        return size <= 8 ? 0 : 1;
    if (size <= 128)
        return 2 + (unsigned)((size - 17) / 16);
    unsigned lg = floor_log2(size - 1); /* the block is in (2^lg, 2^(lg+1)], in 8 steps */
    return 9 + (lg - 7) * 8 + (unsigned)((size - 1 - ((size_t)1 << lg)) >> (lg - 3));
}

static size_t class_size(unsigned c)
{
    if (c < 2)
        return c == 0 ? 8 : 16;
    if (c < 9)
        return 32 + (size_t)(c - 2) * 16;
    unsigned lg = 7 + (c - 9) / 8, j = (c - 9) % 8;
    return ((size_t)1 << lg) + ((size_t)(j + 1) << (lg - 3));
}

static size_t lowest_bit(size_t x)
{
    return x & (~x + 1);
}

/* Whether class c's blocks start CLASS_LEAD bytes before a page boundary, 64-aligned, instead of
 * at their size's lowest bit: the classes above a page but powers of two. An object written at its
 * two ends shares its last page with the next block's object unless a page boundary falls in the
 * gap between them (the class's rounding). A block starting at a boundary puts one at the gap's
 * end, so that page is never shared; one starting 64 bytes before it shares it for any gap up to
 * 4032 bytes. Without the lead, every block of a page-multiple class starts at a boundary, but in
 * the other classes (4.5 to 30 KiB, aligned to 512 to 2048 bytes) only one block in 2 to 8 does.
 * A program writing its blocks whole makes the same pages resident either way. The powers of two
 * stay page-aligned for mp_heap_aligned_alloc. */
static bool class_leads(unsigned c)
{
    size_t size = class_size(c);
    return size > CLASS_MAX_ALIGN && lowest_bit(size) != size;
}

static size_t class_align(unsigned c)
{
    size_t a = lowest_bit(class_size(c));
    if (class_leads(c))
        return CLASS_LEAD;
    return a > CLASS_MAX_ALIGN ? CLASS_MAX_ALIGN : a;
}

/* ================================================================================================
 * The heap's source: capacity, buffer, accounting
 * ============================================================================================== */

/* Takes `size` bytes of the budget; false when the capacity would be passed. */
static bool budget_take(mp_heap *heap, size_t size)
{
    size_t cur = atomic_load(&heap->reserved);
    do {
        if (heap->capacity != 0 && (size > heap->capacity || cur > heap->capacity - size))
            return false;
    } while (!atomic_compare_exchange_weak(&heap->reserved, &cur, cur + size));
    return true;
}

/* Carves an aligned region from the rest of the buffer (lock-free: a buffer heap is never
 * thread-safe, but class pools call this under their own locks in any order). */
static void *buffer_take(mp_heap *heap, size_t size, size_t align)
{
    uintptr_t at = mpi_align_up((uintptr_t)heap->buf_next, align);
    if (at < (uintptr_t)heap->buf_next || at > (uintptr_t)heap->buf_end ||
        (uintptr_t)heap->buf_end - at < size)
        return NULL;
    heap->buf_next = (char *)at + size;
    return (void *)at;
}

static void heap_unmap(void *ctx, void *p, size_t size)
{
    mp_heap *heap = ctx;
    if (heap->buf_end == NULL)
        heap->source.unmap(heap->source.ctx, p, size);
    atomic_fetch_sub(&heap->reserved, size); /* a buffer's bytes come back at reset */
}

static void *heap_map(void *ctx, size_t size, size_t align)
{
    mp_heap *heap = ctx;
    if (!budget_take(heap, size))
        return NULL;
    void *p = heap->buf_end != NULL ? buffer_take(heap, size, align)
                                    : mpi_source_map(&heap->source, size, align);
    if (p == NULL)
        atomic_fetch_sub(&heap->reserved, size);
    return p;
}

/* ================================================================================================
 * Creation and the class pools
 * ============================================================================================== */

static mp_heap *heap_place(const mp_heap_opts *o, const mp_source *source)
{
    mp_heap *heap;
    size_t meta = 0;
    if (o->buffer != NULL) {
        size_t need = sizeof(mp_heap) + MP_HEAP_CLASSES * sizeof(heap_carry);
        uintptr_t end;
        uintptr_t at = mpi_buffer_place(o->buffer, o->buffer_size, 64, need, &end);
        if (at == 0) {
            errno = EINVAL;
            return NULL;
        }
        heap = (mp_heap *)at;
        memset(heap, 0, need);
        heap->carry = (heap_carry *)(heap + 1);
        heap->buf_first = heap->buf_next = (char *)heap + need;
        heap->buf_end = (char *)end;
    } else {
        size_t page = mpi_os_page_size();
        meta = (sizeof(mp_heap) + page - 1) & ~(page - 1);
        heap = mpi_source_map(source, meta, page);
        if (heap == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        memset(heap, 0, sizeof *heap);
    }
    heap->meta_size = meta;
    return heap;
}

mp_heap *mp_heap_create(const mp_heap_opts *opts)
{
    static const mp_heap_opts defaults;
    const mp_heap_opts *o = opts != NULL ? opts : &defaults;
    const mp_source *source = o->source != NULL ? o->source : &mpi_os_source;
    unsigned known = MP_THREAD_SAFE | MP_CHECKED | MP_SECURE | MP_ZERO;
    if ((o->flags & ~known) != 0 || ((o->flags & MP_THREAD_SAFE) != 0 && o->buffer != NULL) ||
        source->map == NULL || source->unmap == NULL) {
        errno = EINVAL;
        return NULL;
    }
    mp_heap *heap = heap_place(o, source);
    if (heap == NULL)
        return NULL;
    if (mpi_lock_init(&heap->lock, false) != 0) {
        if (heap->meta_size != 0)
            source->unmap(source->ctx, heap, heap->meta_size);
        errno = ENOMEM;
        return NULL;
    }
    heap->flags = o->flags;
    heap->fast.owner_direct = (o->flags & MP_CHECKED) == 0;
    heap->source = *source;
    heap->mine = (mp_source){heap_map, heap_unmap, heap};
    heap->capacity = o->capacity;
    atomic_store(&heap->reserved, heap->meta_size); /* the capacity counts the bookkeeping too */
    mpi_name_copy(heap->name, o->name);
    if ((heap->flags & MP_THREAD_SAFE) != 0) { /* other threads may hold the lock at a fork() */
        heap->fork_lock.mutex = &heap->lock;
        mpi_fork_lock_add(&heap->fork_lock);
    }
    return heap;
}

static void count_failed(mp_heap *heap)
{
    errno = ENOMEM;
    mpi_lock_acquire(&heap->lock);
    heap->failed++;
    mpi_lock_release(&heap->lock);
}

/* Puts the class pool's cache entry in the cache path's table (internal.h), for every request
 * size of its class up to MPI_HEAP_FAST_MAX; a pool with no cache puts 0 there (as before). */
static void heap_fast_publish(mp_heap *heap, unsigned c, const mp_pool *pool)
{
    uint32_t tsoff = ((const struct mp_pool_fast *)pool)->tsoff;
    size_t hi = class_size(c) < MPI_HEAP_FAST_MAX ? class_size(c) : MPI_HEAP_FAST_MAX;
    for (size_t i = c == 0 ? 0 : class_size(c - 1) / 8 + 1; i <= hi / 8; i++)
        atomic_store_explicit(&heap->fast.tsoff[i], tsoff, memory_order_relaxed);
}

/* Makes the pool of class c. Made with no lock held (the heap's lock stays innermost), and
 * published by one compare-exchange: a thread that loses the race destroys its own pool and takes
 * the winner's. NULL on failure. */
static MP_NOINLINE mp_pool *heap_pool_slow(mp_heap *heap, unsigned c)
{
    char name[MP_NAME_MAX + 24]; /* "heap/size", truncated by the pool to MP_NAME_MAX */
    snprintf(name, sizeof name, "%s/%zu", heap->name, class_size(c));
    mp_pool_opts opts = {.block_size = class_size(c),
                         .align = class_align(c),
                         .flags = heap->flags,
                         .name = name,
                         .source = &heap->mine};
    bool from_os = heap->buf_end == NULL && heap->source.map == mpi_os_source.map;
    size_t lead = class_leads(c) ? CLASS_LEAD : 0;
    mp_pool *mine = mpi_pool_create_chunked(&opts, HEAP_CHUNK, from_os, lead), *seen = NULL;
    if (mine == NULL)
        return NULL;
    if (!atomic_compare_exchange_strong_explicit(&heap->pools[c], &seen, mine, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        mp_pool_destroy(mine);
        mine = seen;
    }
    heap_fast_publish(heap, c, mine);
    return mine;
}

static mp_pool *heap_pool(mp_heap *heap, unsigned c)
{
    mp_pool *pool = atomic_load_explicit(&heap->pools[c], memory_order_acquire);
    return pool != NULL ? pool : heap_pool_slow(heap, c);
}

/* ================================================================================================
 * Large blocks
 * ============================================================================================== */

static void large_link(mpi_large **list, mpi_large *l)
{
    MPI_LIST_PUSH(*list, l, next, prev);
}

static void large_unlink(mpi_large **list, mpi_large *l)
{
    MPI_LIST_UNLINK(*list, l, next, prev);
}

/* Whether a large block's mapping may be cut into runs: the system source's may (munmap of any
 * page-aligned part of a mapping; mremap moves one); a caller's source takes back only whole
 * regions, and a buffer takes nothing back before a reset. */
static bool heap_splits(const mp_heap *heap)
{
    return heap->buf_end == NULL && heap->source.unmap == mpi_os_source.unmap;
}

/* The bytes from the run r to its first chunk boundary, where a block's mapping may start. */
static size_t run_lead(const mpi_large *r)
{
    return (size_t)(-(uintptr_t)r & (HEAP_CHUNK - 1));
}

static void cache_unlink(mp_heap *heap, mpi_large *r)
{
    large_unlink(&heap->cache, r);
    heap->ncache--;
}

/* Whether the run `from` may become part of another: a checked heap keeps the header of a run
 * that starts a freed block, which tells a double free of it from an invalid one. */
static bool run_absorbable(const mp_heap *heap, const mpi_large *from)
{
    return from->block == NULL || (heap->flags & MP_CHECKED) == 0;
}

/* Joins the run r (map_size set, not yet cached) with its cached address-neighbours, unlinked, so
 * a block and the tail cut off it, or neighbouring mappings, serve a request in place again
 * instead of being moved (cache_gather). The joined run, still to link. A splitting heap only
 * (munmap takes any pages back, whatever mappings they lie in). Lock held. */
static mpi_large *cache_coalesce(mp_heap *heap, mpi_large *r)
{
    for (mpi_large *c = heap->cache, *next; c != NULL; c = next) {
        next = c->next;
        if ((char *)c + c->map_size == (char *)r && run_absorbable(heap, r)) {
            cache_unlink(heap, c);
            c->map_size += r->map_size;
            r = c;
        } else if ((char *)r + r->map_size == (char *)c && run_absorbable(heap, c)) {
            cache_unlink(heap, c);
            r->map_size += c->map_size;
        }
    }
    return r;
}

/* Puts the run r of `size` bytes in the cache, newest first, and unlinks the oldest runs past the
 * limits (never r itself): returned, for the caller to unmap with no lock held. Lock held. */
static mpi_large *cache_put_locked(mp_heap *heap, mpi_large *r, size_t size)
{
    r->map_size = size;
    r = heap_splits(heap) ? cache_coalesce(heap, r) : r;
    large_link(&heap->cache, r);
    heap->ncache++;
    mpi_large *evict = NULL;
    size_t bytes = 0, n = 0;
    for (mpi_large *c = heap->cache; c != NULL && evict == NULL; c = c->next) {
        bytes += c->map_size;
        n++;
        if (c != r && (bytes > LARGE_CACHE_BYTES || n > LARGE_CACHE_MAX))
            evict = c; /* this one and every older one go */
    }
    if (evict != NULL) {
        evict->prev->next = NULL; /* evict is not the head: r is */
        for (mpi_large *c = evict; c != NULL; c = c->next)
            heap->ncache--;
    }
    return evict;
}

/* Gives back the mappings of a list of runs or large blocks, unlinked. No lock held. */
static void cache_unmap(mp_heap *heap, mpi_large *list)
{
    for (mpi_large *l = list, *next; l != NULL; l = next) {
        next = l->next;
        heap_unmap(heap, l, l->map_size);
    }
}

/* Puts the run r of `size` bytes in the cache, unmapping what that evicts. No lock held. */
static void cache_put(mp_heap *heap, mpi_large *r, size_t size)
{
    mpi_lock_acquire(&heap->lock);
    mpi_large *evict = cache_put_locked(heap, r, size);
    mpi_lock_release(&heap->lock);
    cache_unmap(heap, evict);
}

/* Keeps the last `size` bytes of the run r as a run of the cache (a splitting heap only). The new
 * run starts no block (block NULL), so a checked heap never takes a pointer into it for a double
 * free. No lock held (it takes it). */
static void cache_put_tail(mp_heap *heap, mpi_large *r, size_t keep, size_t size)
{
    mpi_large *tail = (mpi_large *)((char *)r + keep);
    tail->block = NULL;
    cache_put(heap, tail, size - keep);
    r->map_size = keep;
}

/* Makes the picked run r, of at least its lead and `need` bytes, a block's mapping of `need`
 * bytes at its first chunk boundary; the pages before it and after it stay cached, so a larger
 * run serves a smaller request where it lies, with no system call. A splitting heap only; no
 * lock held. */
static mpi_large *run_cut(mp_heap *heap, mpi_large *r, size_t need)
{
    size_t lead = run_lead(r), size = r->map_size;
    mpi_large *l = (mpi_large *)((char *)r + lead);
    if (lead != 0)
        cache_put(heap, r, lead); /* r keeps its header, and the block it last started */
    l->map_size = size - lead;
    if (l->map_size > need)
        cache_put_tail(heap, l, need, l->map_size);
    return l;
}

/* Whether the cached run l of at least `need` bytes can be a block of `need` bytes where it lies.
 * Where mappings split, any run with `need` bytes from its first chunk boundary will do (run_cut
 * keeps the pages before and after as runs); elsewhere every run is a whole mapping, and only one
 * that fits within 25% (its tail stays with the block). */
static bool run_serves(const mp_heap *heap, const mpi_large *l, size_t need)
{
    return heap_splits(heap) ? l->map_size - need >= run_lead(l) : l->map_size - need <= need / 4;
}

/* The smallest cached run of at least `need` bytes, unlinked. Only one that can be the block where
 * it lies when in_place (large_alloc); otherwise any, and the largest when none is long enough
 * (cache_gather). NULL if none. Lock held. */
static mpi_large *cache_pick(mp_heap *heap, size_t need, bool in_place)
{
    mpi_large *best = NULL;
    for (mpi_large *l = heap->cache; l != NULL; l = l->next) {
        if (in_place && (l->map_size < need || !run_serves(heap, l, need)))
            continue;
        bool better = best == NULL ||
                      (l->map_size >= need ? best->map_size < need || l->map_size < best->map_size
                                           : best->map_size < l->map_size);
        best = better ? l : best;
    }
    if (best != NULL)
        cache_unlink(heap, best);
    return best;
}

/* Fills the fresh mapping `to` of `need` bytes with the pages of cached runs, moved (mpi_os_move:
 * no copy, no fault) instead of faulted in anew, so the cache's pages serve a request of any size
 * as if its runs were coalesced; what the last run has over stays cached. A splitting heap only;
 * no lock held (it takes it). */
static void cache_gather(mp_heap *heap, char *to, size_t need)
{
    for (size_t at = 0; at < need;) {
        mpi_lock_acquire(&heap->lock);
        mpi_large *r = cache_pick(heap, need - at, false);
        mpi_lock_release(&heap->lock);
        if (r == NULL)
            return;
        if (r->map_size > need - at)
            cache_put_tail(heap, r, need - at, r->map_size);
        size_t len = r->map_size;
        if (mpi_os_move(r, len, to + at)) {
            atomic_fetch_sub(&heap->reserved, len); /* those bytes of `to` are the run's pages */
            at += len;
        } else { /* a run of several mappings (or no mremap): its pages go back */
            heap_unmap(heap, r, len);
        }
    }
}

/* Gives every cached run back; the bytes given back. Takes the lock (so: not called from under a
 * class pool's lock, where heap_map runs). */
static size_t large_cache_drop(mp_heap *heap)
{
    mpi_lock_acquire(&heap->lock);
    mpi_large *list = heap->cache;
    heap->cache = NULL;
    heap->ncache = 0;
    mpi_lock_release(&heap->lock);
    size_t bytes = 0;
    for (const mpi_large *l = list; l != NULL; l = l->next)
        bytes += l->map_size;
    cache_unmap(heap, list);
    return bytes;
}

/* Before a heap refuses a request it gives back what it holds unused (mp_heap_trim) and tries once
 * more, so memory that freed blocks left in one class or in the large cache serves another. True
 * when that freed anything (a buffer heap cannot reuse what it gives back before a reset). */
static bool heap_reclaim(mp_heap *heap)
{
    return heap->buf_end == NULL && mp_heap_trim(heap) != 0;
}

/*
 * Spill to a larger class: a request whose class holds no free block takes a free block of one of
 * the next MP_HEAP_SPILL_CLASSES classes, if they have one, before its own class carves a
 * never-used block. Each class's pool grows to the peak of its own live count, and with few blocks
 * per class (the large classes) those peaks add up to far more than the peak of their sum; spilling
 * lets neighbouring classes share their slack, at the cost of at most (9/8)^MP_HEAP_SPILL_CLASSES
 * of internal waste for a spilled block. Only for classes above MP_HEAP_SPILL_MIN bytes, where the
 * slack is large, and only for requests with no alignment beyond malloc's (a larger class may be
 * less aligned). mp_heap_free_sized() therefore looks up such blocks by address. Figures:
 * docs/design.md, "The heap".
 */
static void *class_reuse(mp_heap *heap, unsigned c)
{
    for (unsigned k = c; k <= c + MP_HEAP_SPILL_CLASSES && k < MP_HEAP_CLASSES; k++) {
        mp_pool *pool = atomic_load_explicit(&heap->pools[k], memory_order_acquire);
        void *p = pool != NULL ? mpi_pool_alloc_reused(pool) : NULL;
        if (p != NULL)
            return p;
    }
    return NULL;
}

/* Whether requests of class c spill: those of classes above MP_HEAP_SPILL_MIN's. So a request of at
 * most MP_HEAP_SPILL_MIN bytes never spills (mp_heap_alloc's fast path counts on it). */
static bool class_spills(unsigned c)
{
    return c > class_of(MP_HEAP_SPILL_MIN);
}

/* The pool's alloc failed (and counted it): try once more if reclaiming freed memory, counting only
 * the second try's outcome. */
static MP_NOINLINE void *class_retry(mp_heap *heap, mp_pool *pool)
{
    if (!heap_reclaim(heap))
        return NULL;
    mpi_pool_forgive_failure(pool);
    return mp_pool_alloc(pool);
}

/* A block of class c, with the reclaiming retry; a failure is counted once, by the pool that
 * refused or, when no pool could be made, by the heap. */
static void *class_alloc(mp_heap *heap, unsigned c)
{
    mp_pool *pool = heap_pool(heap, c);
    if (pool == NULL && heap_reclaim(heap))
        pool = heap_pool(heap, c);
    if (pool == NULL) {
        count_failed(heap);
        return NULL;
    }
    void *p = mp_pool_alloc(pool);
    return p != NULL ? p : class_retry(heap, pool);
}

/* A fresh mapping for a block of `need` bytes, map_size set. Where mappings split it is whole
 * chunks, which the system places next to each other, so freed blocks coalesce into longer runs
 * (cache_coalesce); the pages past `need`, never touched, are cached; the block's own are cached
 * runs' moved there where there are some (cache_gather). */
static mpi_large *large_map(mp_heap *heap, size_t need)
{
    size_t size = heap_splits(heap) ? (need + HEAP_CHUNK - 1) & ~(HEAP_CHUNK - 1) : need;
    mpi_large *l = heap_map(heap, size, HEAP_CHUNK);
    if (l == NULL && heap_reclaim(heap))
        l = heap_map(heap, size, HEAP_CHUNK);
    if (l == NULL && size != need) { /* a capacity may fit the block but not its last chunk */
        size = need;
        l = heap_map(heap, size, HEAP_CHUNK);
    }
    if (l == NULL)
        return NULL;
    if (heap_splits(heap))
        cache_gather(heap, (char *)l, need);
    l->map_size = size;
    if (size > need)
        cache_put_tail(heap, l, need, size);
    return l;
}

static void *large_alloc(mp_heap *heap, size_t size, size_t align)
{
    size_t page = mpi_os_page_size();
    if (size == 0)
        size = 1;                       /* a unique block with a usable size, as for the classes */
    size_t a = align > 64 ? align : 64; /* LARGE_HEADER is a multiple of 64 */
    size_t off = (LARGE_HEADER + a - 1) & ~(a - 1);
    if (size > (size_t)PTRDIFF_MAX - off - page) {
        count_failed(heap);
        return NULL;
    }
    size_t need = (off + size + page - 1) & ~(page - 1);
    mpi_lock_acquire(&heap->lock);
    mpi_large *l = cache_pick(heap, need, true);
    mpi_lock_release(&heap->lock);
    if (l == NULL) { /* the system is called with no lock held */
        l = large_map(heap, need);
        if (l == NULL) {
            count_failed(heap);
            return NULL;
        }
    } else if (heap_splits(heap)) {
        l = run_cut(heap, l, need);
    }
    /* heap_chunk_owner(): a large block; a reused run may have been a tail, holding user bytes */
    *mpi_owner_word((uintptr_t)l, HEAP_SHIFT) = NULL;
    l->block = (char *)l + off;
    l->usable = l->map_size - off;
    mpi_lock_acquire(&heap->lock);
    large_link(&heap->large, l);
    heap->large_allocs++;
    mpi_lock_release(&heap->lock);
    if ((heap->flags & MP_ZERO) != 0)
        memset(l->block, 0, size);
    return l->block;
}

/* Keeps the block's mapping as a cached run, evicting the oldest runs past the limits. */
static MP_NOINLINE void large_free(mp_heap *heap, mpi_large *l)
{
    mpi_lock_acquire(&heap->lock);
    large_unlink(&heap->large, l);
    heap->large_frees++;
    mpi_large *evict = cache_put_locked(heap, l, l->map_size);
    mpi_lock_release(&heap->lock);
    cache_unmap(heap, evict); /* the system is called with no lock held */
}

/* mp_heap_visit(): every class pool's live blocks, then the large blocks in use, newest first. No
 * lock is held while fn runs (no other thread may use the heap), so fn may free its block: a
 * large block's successor is read first, and the walk is bounded by the count of large blocks in
 * use, so a damaged list ends it. */
int mp_heap_visit(const mp_heap *heap, mp_visit_fn *fn, void *ctx)
{
    if (heap == NULL || fn == NULL)
        return EINVAL;
    bool stopped = false;
    for (unsigned c = 0; c < MP_HEAP_CLASSES && !stopped; c++) {
        const mp_pool *pool = atomic_load(&heap->pools[c]);
        int err = pool != NULL ? mpi_pool_visit(pool, fn, ctx, &stopped) : 0;
        if (err != 0)
            return err;
    }
    uint64_t n = heap->large_allocs - heap->large_frees;
    for (const mpi_large *l = heap->large, *next; l != NULL && n != 0 && !stopped; l = next, n--) {
        next = l->next;
        stopped = !fn(l->block, l->usable, ctx);
    }
    return 0;
}

/* The large block of `list` (heap->large or heap->cache) that starts at p; NULL if none. A cached
 * block still holds where its last block started. Lock held. */
static mpi_large *large_find(mpi_large *list, const void *p)
{
    for (mpi_large *l = list; l != NULL; l = l->next) {
        if (l->block == p)
            return l;
    }
    return NULL;
}

/* ================================================================================================
 * Allocating and freeing
 * ============================================================================================== */

/* mp_heap_alloc() past its fast path: no heap, a large block, a spilling class, a class pool still
 * to make, or one whose alloc took its slow path and failed. */
static MP_NOINLINE void *heap_alloc_slow(mp_heap *heap, size_t size)
{
    if (heap == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if (size > MP_HEAP_MAX_CLASS)
        return large_alloc(heap, size, 0);
    unsigned c = class_of(size);
    void *p = class_spills(c) ? class_reuse(heap, c) : NULL;
    return p != NULL ? p : class_alloc(heap, c);
}

/* Fast path: a class that never spills and whose pool exists, served by the pool's inline alloc. */
void *mp_heap_alloc(mp_heap *heap, size_t size)
{
    if (MP_LIKELY(heap != NULL && size <= MP_HEAP_SPILL_MIN)) {
        mp_pool *pool = atomic_load_explicit(&heap->pools[class_of(size)], memory_order_acquire);
        if (MP_LIKELY(pool != NULL)) {
            void *p = mp_pool_alloc(pool);
            return p != NULL ? p : class_retry(heap, pool);
        }
    }
    return heap_alloc_slow(heap, size);
}

size_t mp_heap_trim(mp_heap *heap)
{
    if (heap == NULL)
        return 0;
    size_t bytes = heap->buf_end != NULL ? 0 : large_cache_drop(heap);
    for (unsigned c = 0; c < MP_HEAP_CLASSES; c++)
        bytes += mp_pool_trim(atomic_load_explicit(&heap->pools[c], memory_order_acquire));
    return bytes;
}

void *mp_heap_calloc(mp_heap *heap, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = mp_heap_alloc(heap, n * size);
    if (p != NULL && (heap->flags & MP_ZERO) == 0)
        memset(p, 0, n * size);
    return p;
}

void *mp_heap_aligned_alloc(mp_heap *heap, size_t align, size_t size)
{
    if (!mpi_is_pow2(align) || heap == NULL) {
        errno = EINVAL;
        return NULL;
    }
    /* A block so aligned would be its own chunk's start, with no room for a header before it. */
    if (align > HEAP_MAX_ALIGN) {
        count_failed(heap);
        return NULL;
    }
    if (align <= CLASS_MAX_ALIGN && size <= MP_HEAP_MAX_CLASS) {
        /* the smallest class that fits and whose blocks are aligned enough */
        for (unsigned c = class_of(size > align ? size : align); c < MP_HEAP_CLASSES; c++) {
            if (class_align(c) >= align)
                return class_alloc(heap, c);
        }
    }
    return large_alloc(heap, size, align);
}

/* The chunk (or large block's mapping) holding p, and the pool its owner word names (NULL: a large
 * block). Masking reads memory only through heap_chunk_owner(). */
static uintptr_t heap_chunk(const void *p)
{
    return mpi_chunk_of(p, HEAP_CHUNK);
}

static mp_pool *heap_chunk_owner(uintptr_t chunk)
{
    return *mpi_owner_word(chunk, HEAP_SHIFT);
}

/* heap_owner() in a checked heap: a search of every class pool, then of the large blocks. What is
 * none of them is reported in the heap's name: the start of a freed large block still cached as a
 * double free, anything else (a freed large block given back too) as an invalid free. */
static MP_NOINLINE mp_pool *heap_owner_checked(const mp_heap *heap, const void *p, bool *bad)
{
    for (unsigned c = 0; c < MP_HEAP_CLASSES; c++) {
        mp_pool *pool = atomic_load(&heap->pools[c]);
        if (pool != NULL && mp_pool_owns(pool, p))
            return pool;
    }
    mpi_lock_acquire((mpi_lock *)&heap->lock);
    *bad = large_find(heap->large, p) == NULL;
    bool freed = *bad && large_find(heap->cache, p) != NULL;
    mpi_lock_release((mpi_lock *)&heap->lock);
    if (freed)
        mpi_report_as(MP_ERR_DOUBLE_FREE, heap->name, NULL, p, NULL, 1, " (a large block)");
    else if (*bad)
        mpi_report_as(MP_ERR_INVALID_FREE, heap->name, NULL, p, NULL, 1,
                      " (not a block of this heap)");
    return NULL;
}

/* The pool of a block, or NULL for a large block; in a checked heap, a pointer that is neither is
 * reported as an invalid free (*bad set). Masking reads the chunk header, which a checked heap does
 * only after it knows the address is its own. Inline: in a plain heap it is one load. */
static inline mp_pool *heap_owner(const mp_heap *heap, const void *p, bool *bad)
{
    *bad = false;
    if (MP_UNLIKELY((heap->flags & MP_CHECKED) != 0))
        return heap_owner_checked(heap, p, bad);
    return heap_chunk_owner(heap_chunk(p));
}

/* mp_heap_free() in a checked heap, which first finds out whether the block is its own. */
static MP_NOINLINE void heap_free_checked(mp_heap *heap, void *p)
{
    bool bad;
    mp_pool *pool = heap_owner(heap, p, &bad);
    if (pool != NULL)
        mp_pool_free(pool, p);
    else if (!bad)
        large_free(heap, (mpi_large *)heap_chunk(p));
}

void mp_heap_free(mp_heap *heap, void *p)
{
    if (p == NULL || heap == NULL)
        return;
    if (MP_UNLIKELY((heap->flags & MP_CHECKED) != 0)) {
        heap_free_checked(heap, p);
        return;
    }
    uintptr_t chunk = heap_chunk(p);
    mp_pool *pool = heap_chunk_owner(chunk);
    if (MP_LIKELY(pool != NULL))
        mp_pool_free(pool, p);
    else
        large_free(heap, (mpi_large *)chunk);
}

void mp_heap_free_sized(mp_heap *heap, void *p, size_t size)
{
    if (p == NULL || heap == NULL)
        return;
    mp_pool *pool;
    if (size > MP_HEAP_MAX_CLASS || (heap->flags & MP_CHECKED) != 0 ||
        class_spills(class_of(size)) ||
        (pool = atomic_load_explicit(&heap->pools[class_of(size)], memory_order_acquire)) == NULL)
        mp_heap_free(heap, p);
    else
        mp_pool_free(pool, p);
}

size_t mp_heap_usable_size(const mp_heap *heap, const void *p)
{
    if (p == NULL || heap == NULL)
        return 0;
    bool bad;
    mp_pool *pool = heap_owner(heap, p, &bad);
    if (pool != NULL)
        return mp_pool_block_size(pool);
    return bad ? 0 : ((const mpi_large *)heap_chunk(p))->usable;
}

/* The heap's alloc and free, or (the process-wide heap) mp_malloc and mp_free, its cache path. */
static void *heap_alloc_as(mp_heap *heap, size_t size, bool dflt)
{
    return dflt ? mp_malloc(size) : mp_heap_alloc(heap, size);
}

static void heap_free_as(mp_heap *heap, void *p, bool dflt)
{
    if (dflt)
        mp_free(p);
    else
        mp_heap_free(heap, p);
}

/* A block stays where it is when mp_heap_alloc(size) would have given a block of the same kind: the
 * same class, or a large block that the size fits using at least half of it. So the block is then
 * one of class_of(size) (or spilled, which free_sized looks up), and mp_heap_free_sized(heap, p,
 * size) stays valid. dflt: the heap is the process-wide one (mp_realloc). */
static void *heap_realloc(mp_heap *heap, void *p, size_t size, bool dflt)
{
    if (p == NULL)
        return heap_alloc_as(heap, size, dflt);
    if (size == 0) {
        heap_free_as(heap, p, dflt);
        return NULL;
    }
    bool bad;
    mp_pool *pool = heap_owner(heap, p, &bad);
    if (bad) {
        errno = EINVAL; /* reported already in a checked heap */
        return NULL;
    }
    /* What the block is decides, not its size: an aligned large block may be small. */
    size_t usable =
        pool != NULL ? mp_pool_block_size(pool) : ((const mpi_large *)heap_chunk(p))->usable;
    bool same_kind = pool != NULL
                         ? size <= usable && class_of(size) == class_of(usable)
                         : size > MP_HEAP_MAX_CLASS && size <= usable && size >= usable / 2;
    if (same_kind)
        return p;
    void *q = heap_alloc_as(heap, size, dflt);
    if (q != NULL) {
        memcpy(q, p, size < usable ? size : usable);
        heap_free_as(heap, p, dflt);
    }
    return q;
}

void *mp_heap_realloc(mp_heap *heap, void *p, size_t size)
{
    return heap_realloc(heap, p, size, false);
}

/* ================================================================================================
 * Reset, destroy, statistics
 * ============================================================================================== */

/* Unmaps every large block, in use and cached. */
static void heap_drop_large(mp_heap *heap)
{
    mpi_large *large = heap->large, *cache = heap->cache;
    heap->large = heap->cache = NULL;
    heap->ncache = 0;
    cache_unmap(heap, large);
    cache_unmap(heap, cache);
}

static void heap_destroy_pools(mp_heap *heap)
{
    for (unsigned c = 0; c < MP_HEAP_CLASSES; c++) {
        mp_pool_destroy(atomic_load(&heap->pools[c]));
        atomic_store(&heap->pools[c], NULL);
    }
}

/* Adds the class totals carried over a buffer heap's resets to a class pool's (a zeroed *s when
 * the class has no pool). */
static void carry_add(mp_stats *s, const heap_carry *k)
{
    s->allocs += k->allocs;
    s->frees += k->frees;
    s->failed_allocs += k->failed;
    if (k->peak > s->blocks_peak)
        s->blocks_peak = k->peak;
}

/* A buffer heap's bytes come back only by starting the buffer over, and its class pools' chunks
 * (and the pools themselves) lie in it: the pools, reset already (so no leak is reported), are
 * destroyed with their totals carried, and made anew on use. */
static void heap_restart_buffer(mp_heap *heap)
{
    for (unsigned c = 0; c < MP_HEAP_CLASSES; c++) {
        mp_stats s;
        if (mp_pool_stats(atomic_load(&heap->pools[c]), &s) != 0)
            continue;
        carry_add(&s, &heap->carry[c]);
        heap->carry[c] = (heap_carry){s.allocs, s.frees, s.failed_allocs, s.blocks_peak};
    }
    heap_destroy_pools(heap);
    heap->buf_next = heap->buf_first;
}

/* Every block is freed and counted so: the totals never go back (a class pool's reset keeps its
 * own; a buffer heap carries them over its new pools). */
void mp_heap_reset(mp_heap *heap)
{
    if (heap == NULL)
        return;
    heap->large_frees += heap->large_allocs - heap->large_frees;
    heap_drop_large(heap);
    for (unsigned c = 0; c < MP_HEAP_CLASSES; c++)
        mp_pool_reset(atomic_load(&heap->pools[c]));
    if (heap->buf_end != NULL)
        heap_restart_buffer(heap);
}

/* A checked heap's leaked large blocks, reported as a checked pool reports its own. */
static void heap_report_leaks(const mp_heap *heap)
{
    uint64_t n = 0;
    const void *first = NULL;
    for (const mpi_large *l = heap->large; l != NULL; l = l->next, n++)
        first = l->block; /* the list is newest first: this ends at the oldest */
    if (n != 0) {
        char detail[64];
        snprintf(detail, sizeof detail, " (large blocks; the oldest at %p)", first);
        mpi_report_as(MP_ERR_LEAK, heap->name, NULL, first, NULL, n, detail);
    }
}

void mp_heap_destroy(mp_heap *heap)
{
    if (heap == NULL)
        return;
    heap_destroy_pools(heap); /* a checked pool reports its leaks here */
    if ((heap->flags & MP_CHECKED) != 0)
        heap_report_leaks(heap);
    heap_drop_large(heap);
    if ((heap->flags & MP_THREAD_SAFE) != 0)
        mpi_fork_lock_remove(&heap->fork_lock);
    mpi_lock_destroy(&heap->lock);
    if (heap->meta_size != 0)
        heap->source.unmap(heap->source.ctx, heap, heap->meta_size);
}

int mp_heap_stats(const mp_heap *heap, struct mp_heap_stats *out)
{
    if (heap == NULL || out == NULL)
        return EINVAL;
    memset(out, 0, sizeof *out);
    memcpy(out->name, heap->name, sizeof out->name);
    for (unsigned c = 0; c < MP_HEAP_CLASSES; c++) {
        mp_heap_class_stats *k = &out->classes[c];
        mp_stats s = {0};
        k->size = class_size(c);
        if (mp_pool_stats(atomic_load(&heap->pools[c]), &s) != 0 && heap->carry == NULL)
            continue;
        if (heap->carry != NULL)
            carry_add(&s, &heap->carry[c]);
        *k = (mp_heap_class_stats){k->size,  s.blocks_in_use, s.blocks_peak,
                                   s.allocs, s.frees,         s.bytes_reserved};
        out->allocs += s.allocs;
        out->frees += s.frees;
        out->failed_allocs += s.failed_allocs;
        out->blocks_in_use += s.blocks_in_use;
        out->bytes_in_use += s.blocks_in_use * k->size;
    }
    mpi_lock_acquire((mpi_lock *)&heap->lock);
    out->allocs += heap->large_allocs;
    out->frees += heap->large_frees;
    out->failed_allocs += heap->failed;
    for (const mpi_large *l = heap->large; l != NULL; l = l->next) {
        out->large_in_use++;
        out->bytes_in_use += l->usable;
    }
    out->blocks_in_use += out->large_in_use;
    out->large_cached = heap->ncache;
    mpi_lock_release((mpi_lock *)&heap->lock);
    out->bytes_reserved = atomic_load(&heap->reserved);
    return 0;
}

/* ================================================================================================
 * Blocks aligned beyond a heap's reach: a mapping each, on one process-wide table
 * ============================================================================================== */

typedef struct huge_block {
    void *p;
    size_t size; /* bytes mapped */
} huge_block;

/* The table's lock is taken by fork() with the heaps' (on its list, as a heap's lock is). The
 * table grows under it, calling the system: a rare path, and no other lock is held there. */
static mpi_lock huge_lock = MPI_LOCK_INIT;
static mpi_fork_lock huge_fork = {&huge_lock, NULL};
static mpi_once huge_once = MPI_ONCE_INIT;
static huge_block *huge_table; /* huge_count entries in use of huge_cap */
static size_t huge_count, huge_cap;

static void huge_init(void)
{
    mpi_fork_lock_add(&huge_fork);
}

void *mpi_heap_huge_alloc(size_t align, size_t size)
{
    size_t page = mpi_os_page_size();
    if (size > (size_t)PTRDIFF_MAX - align) {
        errno = ENOMEM;
        return NULL;
    }
    size_t len = size == 0 ? page : (size + page - 1) & ~(page - 1);
    mpi_once_run(&huge_once, huge_init);
    void *p = mpi_os_source.map(NULL, len, align);
    if (p == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    mpi_lock_acquire(&huge_lock);
    bool ok =
        mpi_os_table_grow((void **)&huge_table, &huge_cap, sizeof *huge_table, huge_count + 1);
    if (ok)
        huge_table[huge_count++] = (huge_block){p, len};
    mpi_lock_release(&huge_lock);
    if (!ok) {
        mpi_os_source.unmap(NULL, p, len);
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

/* The mapped size of the block at p, taken off the table when `take`; 0 if p is none. */
static size_t huge_find(const void *p, bool take)
{
    size_t size = 0;
    mpi_lock_acquire(&huge_lock);
    for (size_t i = 0; i < huge_count && size == 0; i++) {
        if (huge_table[i].p != p)
            continue;
        size = huge_table[i].size;
        if (take)
            huge_table[i] = huge_table[--huge_count];
    }
    mpi_lock_release(&huge_lock);
    return size;
}

size_t mpi_heap_huge_size(const void *p)
{
    return huge_find(p, false);
}

bool mpi_heap_huge_free(void *p)
{
    size_t size = huge_find(p, true);
    if (size != 0)
        mpi_os_source.unmap(NULL, p, size); /* errno kept */
    return size != 0;
}

/* ================================================================================================
 * The process-wide heap
 * ============================================================================================== */

/* Published once by default_init; every later call reads it with one acquire load. */
static _Atomic(mp_heap *) default_heap;
static mpi_once default_once = MPI_ONCE_INIT;
/* The cache path's table before the heap is made: every entry 0, so every request goes on. */
static const struct mpi_heap_fast no_heap_fast;
_Atomic(const struct mpi_heap_fast *) mpi_heap_fast_default = &no_heap_fast;

static void default_init(void)
{
    unsigned flags = MP_THREAD_SAFE;
    if (mpi_os_option(&mpi_option_checked) == 1) /* a bad value is said here, once */
        flags |= MP_CHECKED;
    mp_heap *heap = mp_heap_create(&(mp_heap_opts){.flags = flags, .name = "mp_malloc"});
    if (heap != NULL)
        atomic_store_explicit(&mpi_heap_fast_default, &heap->fast, memory_order_release);
    atomic_store_explicit(&default_heap, heap, memory_order_release);
}

static MP_NOINLINE mp_heap *default_heap_first(void)
{
    mpi_once_run(&default_once, default_init);
    return atomic_load_explicit(&default_heap, memory_order_acquire);
}

mp_heap *mp_default_heap(void)
{
    mp_heap *heap = atomic_load_explicit(&default_heap, memory_order_acquire);
    return MP_LIKELY(heap != NULL) ? heap : default_heap_first();
}

/* mp_malloc() past the cache path. */
static MP_NOINLINE void *malloc_slow(size_t size)
{
    mp_heap *heap = mp_default_heap();
    if (heap == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    return mp_heap_alloc(heap, size);
}

void *mp_malloc(size_t size)
{
    if (MP_LIKELY(size <= MPI_HEAP_FAST_MAX)) {
        void *p = mpi_heap_alloc_cached(mpi_heap_fast_get(), size);
        if (MP_LIKELY(p != NULL))
            return p;
    }
    return malloc_slow(size);
}

void *mp_calloc(size_t n, size_t size)
{
    if (MP_LIKELY(n <= MPI_HEAP_FAST_MAX && size <= MPI_HEAP_FAST_MAX &&
                  n * size <= MPI_HEAP_FAST_MAX)) { /* no overflow: each factor is small */
        size_t total = n * size;
        void *p = mpi_heap_alloc_cached(mpi_heap_fast_get(), total);
        if (MP_LIKELY(p != NULL))
            return memset(p, 0, total); /* the process-wide heap is never MP_ZERO */
    }
    mp_heap *heap = mp_default_heap();
    if (heap == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    return mp_heap_calloc(heap, n, size);
}

void *mp_realloc(void *p, size_t size)
{
    mp_heap *heap = mp_default_heap();
    if (heap == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    return heap_realloc(heap, p, size, true);
}

void *mp_aligned_alloc(size_t align, size_t size)
{
    mp_heap *heap = mp_default_heap();
    if (heap == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    return mp_heap_aligned_alloc(heap, align, size);
}

void mp_free(void *p)
{
    if (p == NULL || mpi_heap_free_cached(p))
        return;
    mp_heap_free(mp_default_heap(), p);
}

size_t mp_usable_size(const void *p)
{
    return p != NULL ? mp_heap_usable_size(mp_default_heap(), p) : 0;
}

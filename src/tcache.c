/*
 * tcache.c: thread-safe pools, by per-thread caches over a locked pool.
 *
 * The design is Bonwick's magazines (Bonwick and Adams, "Magazines and Vmem", USENIX 2001) in the
 * shape of DPDK's per-lcore mempool cache: each thread keeps, for each thread-safe pool it uses, a
 * loaded LIFO list of at most limit/2 free blocks (struct mp_tcache_fast, public so that alloc and
 * free use it inline) and a previous magazine of limit/2. A full list and an empty one are
 * exchanged whole with the previous magazine (with no lock: cache_swap) and the pool's unbounded
 * depot (below, under the pool's mutex), so the lock is taken at most once per limit/2 operations,
 * never by a thread whose blocks fit in its cache, and a producer -> consumer pair moves blocks in
 * batches. Nothing on the inline path is a lock or an atomic
 * read-modify-write; the two counters other threads read are written with release stores (plain
 * stores on x86-64), which their readers pair with an acquire load.
 *
 * Bookkeeping, all under the registry lock (the lock order is in internal.h, "tcache.c"):
 *   - a thread record per thread that has a cache: its table of TS_IDS entries (struct
 *     mp_tcache, the public part the inline path reads through mpi_tcaches, at the pools' ts_id)
 *     and beside it the private record of each entry in use; one mapping, whose pages are touched
 *     only for the ids the thread uses. The record is freed by the thread-exit hook (os.c) when the
 *     thread exits, which first gives every cached block back: O(pools the thread used);
 *   - a list of each pool's caches, so that mp_pool_destroy() can drop them while their threads
 *     live on, and stats can add them up; and a list of each thread's, for its exit;
 *   - the list of thread-safe pools, and of thread-safe heaps' locks, so that fork() can take
 *     every lock first (mpi_os_atfork).
 * Invariants: a cache is in its pool's list, its thread's list and its thread's table at ts_id, or
 * in none of them (and its table entry is all zero); a carved block is in use, on the pool's free
 * list, in exactly one cache, or in exactly one of the depot's magazines; in_use = carved -
 * free_len - cached - nmags * batch.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

/* Thread-safe pools that can have caches at once: the entries of every thread's table (entry 0
 * stays zero). A pool created while all are taken keeps no caches (every call takes its lock).
 * A table is TS_IDS * 40 bytes of address space, 1.25 MiB, of which a thread touches one page per
 * 128 ids it uses. */
#define TS_IDS 32768u

/* The private side of a thread's cache of a pool; `pub` is its entry in the thread's table. */
typedef struct mpi_tcache {
    struct mp_tcache_fast *pub;
    uint64_t limit;   /* the most blocks the cache may hold: two magazines (cache_batch) */
    uint64_t flushed; /* blocks given back to the pool (counted in pub->pops, not allocations) */
    /* Bonwick's previous magazine: NULL, or a NULL-terminated chain of exactly the pool's batch
     * of blocks, counted in pub->pushes - pub->pops with the loaded list pub->free. Traded with
     * the loaded list by its thread alone (cache_swap), with the depot under the pool's lock. */
    void *prev;
    mp_pool *pool;
    struct mpi_thread *thread;
    struct mpi_tcache *pool_next; /* the pool's caches */
    struct mpi_tcache *pool_prev;
    struct mpi_tcache *thread_next; /* the thread's caches */
    struct mpi_tcache *thread_prev;
    /* This cache's shelf in the depot ("The depot"): the full magazines its thread gave back and
     * has not taken again, a stack linked as the shared one, newest `shelf`, oldest `shelf_last`.
     * Under the pool's lock; a cache with a shelf is on the pool's list `stocked`. */
    void *shelf;
    void *shelf_last;
    struct mpi_tcache *stocked_next;
    struct mpi_tcache *stocked_prev;
} mpi_tcache;

/* A thread that has caches: its table (what its mpi_tcaches points at) and their records. */
typedef struct mpi_thread {
    struct mp_tcache_fast *table; /* TS_IDS entries */
    mpi_tcache **side;       /* TS_IDS records, NULL where the thread has no cache; after table */
    mpi_tcache *caches;      /* the thread's caches, a list */
    struct mpi_thread *next; /* all threads with caches */
    struct mpi_thread *prev;
} mpi_thread;

#define TABLE_BYTES ((size_t)TS_IDS * (sizeof(struct mp_tcache_fast) + sizeof(mpi_tcache *)))

/* What a thread without caches reads: no cache of any pool. Never written. */
static struct mp_tcache_fast no_caches[TS_IDS];
_Thread_local struct mp_tcache_fast *mpi_tcaches MP_TLS_MODEL = no_caches;
static _Thread_local mpi_thread *self;
/* Set when the thread's record is retired at its exit: frees made after that (the C library's own,
 * after every exit hook ran, e.g. strerror's buffer) take the locked path, since a record made
 * then would never be retired (the exit hook does not run twice) and would leak. */
static _Thread_local bool exited;

static mpi_lock registry = MPI_LOCK_INIT;
static mpi_once registry_once = MPI_ONCE_INIT;
static mpi_thread *threads;
static mp_pool *ts_pools;
static mpi_fork_lock *fork_locks; /* thread-safe heaps' locks */
static bool fork_handlers_ran;    /* set by fork_prepare: see registry_init */
static uint32_t next_id = 1;      /* slot 0 means "no cache" */
static uint32_t *free_ids;        /* ids of destroyed pools, for reuse */
static uint32_t nfree_ids;
static size_t free_ids_cap;
static mp_pool *cache_meta; /* where mpi_tcache and mpi_thread records come from */
static mp_pool *thread_meta;

/* Cache limits: the default, the most bytes a default cache may hold, and the most blocks moved
 * between a cache and its pool at once (however large a cache the program asks for). The bytes
 * bound what each thread keeps per class of the heap beyond its live blocks; it still lets a
 * cache of 64-byte blocks hold the full 1024. */
#define CACHE_DEFAULT 1024u
#define CACHE_BYTES_MAX (64u * 1024u)
#define REFILL_MAX 256u /* the most blocks a refill takes from the free list or carves */
#define CACHE_FRESH_BYTES (4u * 1024u) /* never-used space a refill carves at most: a page */

static void thread_exit(void *arg);
static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

/* glibc runs this again in a fork() child when the fork interrupted it: handlers that were
 * registered ran in that fork, and are not registered twice (fork_prepare would then take the
 * registry twice). */
static void registry_init(void)
{
    mpi_os_thread_exit_hook(thread_exit);
    if (!fork_handlers_ran)
        mpi_os_atfork(fork_prepare, fork_parent, fork_child);
}

/* A record a cache line (or more) of its own: a thread writes its cache's record in its slow path
 * (cache_swap, with no lock), which must not take the line of another thread's record. */
#define RECORD_ALIGN 64u

static void *meta_alloc(mp_pool **meta, size_t size)
{
    if (*meta == NULL)
        *meta = mp_pool_create(
            &(mp_pool_opts){.block_size = size, .align = RECORD_ALIGN, .name = "mempool.tcache"});
    void *p = *meta != NULL ? mp_pool_alloc(*meta) : NULL;
    if (p != NULL)
        memset(p, 0, size);
    return p;
}

/* ================================================================================================
 * Creating and destroying thread-safe pools
 * ============================================================================================== */

/* The pool's lock is mostly held for a few dozen instructions (a magazine moves to or from the
 * depot, and a refill carves a range, in O(1); only a refill from the free list takes up to
 * REFILL_MAX blocks under it), so a thread that finds it taken spins a little before it sleeps (an
 * adaptive lock): two threads that refill and flush at once would otherwise trade futex sleeps and
 * wake-ups. */
int mpi_ts_create(mp_pool *pool, size_t thread_cache, bool caches)
{
    if ((pool->state & MPI_IN_BUFFER) != 0)
        return EINVAL;
    mpi_once_run(&registry_once, registry_init);
    size_t limit = thread_cache;
    if (limit == 0) {
        limit = CACHE_BYTES_MAX / pool->stride;
        limit = limit > CACHE_DEFAULT ? CACHE_DEFAULT : limit;
    }
    limit = limit < 2 ? 2 : limit; /* room for a loaded and a previous magazine */
    if (mpi_lock_init(&pool->lock, true) != 0)
        return ENOMEM;
    pool->cache_limit = caches ? limit : 0;

    mpi_lock_acquire(&registry);
    if (caches && nfree_ids != 0)
        pool->ts_id = free_ids[--nfree_ids];
    else if (caches && next_id < TS_IDS)
        pool->ts_id = next_id++;
    MPI_LIST_PUSH(ts_pools, pool, ts_next, ts_prev);
    mpi_lock_release(&registry);
    return 0;
}

/* Unlinks a cache from its pool and its thread, zeroes its entry, and frees it. Registry lock held.
 * */
static void cache_drop(mpi_tcache *c)
{
    mp_pool *pool = c->pool;
    mpi_thread *t = c->thread;
    MPI_LIST_UNLINK(pool->caches, c, pool_next, pool_prev);
    MPI_LIST_UNLINK(t->caches, c, thread_next, thread_prev);
    memset(c->pub, 0, sizeof *c->pub);
    t->side[pool->ts_id] = NULL;
    mp_pool_free(cache_meta, c);
}

void mpi_ts_destroy(mp_pool *pool)
{
    mpi_lock_acquire(&registry);
    while (pool->caches != NULL)
        cache_drop(pool->caches);
    MPI_LIST_UNLINK(ts_pools, pool, ts_next, ts_prev);
    if (pool->ts_id != 0 &&
        mpi_os_table_grow((void **)&free_ids, &free_ids_cap, sizeof *free_ids, nfree_ids + 1))
        free_ids[nfree_ids++] = pool->ts_id; /* else the id is simply never reused */
    mpi_lock_release(&registry);
    mpi_lock_destroy(&pool->lock);
    if (pool->mag_tops != NULL)
        mpi_os_source.unmap(NULL, pool->mag_tops, pool->mag_cap * sizeof(void *));
}

/* ================================================================================================
 * This thread's cache of a pool
 * ============================================================================================== */

/* This thread's record and table, made on its first cache. Registry lock held. NULL on ENOMEM. */
static mpi_thread *thread_self_locked(void)
{
    if (self != NULL)
        return self;
    mpi_thread *t = meta_alloc(&thread_meta, sizeof(mpi_thread));
    if (t == NULL)
        return NULL;
    t->table = mpi_os_source.map(NULL, TABLE_BYTES, mpi_os_page_size());
    if (t->table == NULL) {
        mp_pool_free(thread_meta, t);
        return NULL;
    }
    t->side = (mpi_tcache **)(t->table + TS_IDS);
    MPI_LIST_PUSH(threads, t, next, prev);
    mpi_os_thread_exit_arm(t);
    mpi_tcaches = t->table;
    return self = t;
}

/* Creates this thread's cache of the pool. Registry lock held. NULL on ENOMEM. */
static mpi_tcache *cache_create_locked(mp_pool *pool)
{
    mpi_thread *t = thread_self_locked();
    mpi_tcache *c = t != NULL ? meta_alloc(&cache_meta, sizeof(mpi_tcache)) : NULL;
    if (c == NULL)
        return NULL;
    c->pub = &t->table[pool->ts_id];
    c->limit = pool->cache_limit;
    c->pool = pool;
    c->thread = t;
    MPI_LIST_PUSH(pool->caches, c, pool_next, pool_prev);
    MPI_LIST_PUSH(t->caches, c, thread_next, thread_prev);
    t->side[pool->ts_id] = c;
    return c;
}

/* This thread's cache of the pool, created on first use; NULL if the pool keeps none. */
static mpi_tcache *cache_get(mp_pool *pool)
{
    uint32_t id = pool->ts_id;
    if (id == 0)
        return NULL;
    if (self != NULL && self->side[id] != NULL)
        return self->side[id];
    if (exited)
        return NULL;
    mpi_lock_acquire(&registry);
    mpi_tcache *c = cache_create_locked(pool);
    mpi_lock_release(&registry);
    return c;
}

/* The size of a magazine: half the cache, so that it holds a loaded and a previous one. */
static uint64_t cache_batch(const mpi_tcache *c)
{
    return c->limit / 2;
}

/* The blocks of the previous magazine: 0 or the batch. */
static uint64_t cache_prev_len(const mpi_tcache *c)
{
    return c->prev != NULL ? cache_batch(c) : 0;
}

/* Lets the inline free push until the loaded list holds a magazine and no more: pops only grows,
 * so the bound holds until the slow path runs again. */
static void cache_set_stop(mpi_tcache *c)
{
    c->pub->stop = c->pub->pops + cache_prev_len(c) + cache_batch(c);
}

/* The last block of a NULL-terminated chain: O(its length). */
static void *chain_last(void *first)
{
    void *last = first;
    while (*(void **)last != NULL)
        last = *(void **)last;
    return last;
}

/* ================================================================================================
 * The depot: whole magazines moved in O(1)
 *
 * As in Bonwick's design, a cache holds two magazines of `batch` (limit/2) blocks: the loaded one,
 * the list pub->free that the inline path pushes and pops, and the previous one (c->prev), held
 * whole. A free that finds the loaded list full makes it the previous magazine, after pushing the
 * old previous one (if any) onto the pool's depot; an alloc that finds it empty loads the
 * previous one, else pops the newest magazine from the depot. So the lock is taken at most once
 * per batch of operations however they alternate, and no exchange walks a block: a magazine is a
 * NULL-terminated chain whose first block's second word links the next magazine (MAG_NEXT), the
 * loaded list is NULL-terminated when it becomes the previous one, and the depot is a stack. The
 * blocks were last written by the core that freed them; walking them in the exchange (as a
 * cache that gave back half its list had to, to cut it) cost the freeing thread a stall per
 * batch, and the thread that takes the magazine then reads each link in turn anyway.
 * The stack has no bound (as Bonwick's depot): it holds only blocks that were carved and freed, so
 * it is bounded by the pool's peak, and mpi_ts_lock (trim, reset, stats, check) empties it onto
 * the free list. A pool whose blocks have no room for a second word (stride 8) keeps the same
 * stack as an array of the magazines' first blocks: a chain of n one-word blocks has only its
 * last block's word spare, which only a walk reaches. The array costs a word a magazine (so it
 * is bounded by the pool's peak too), is grown by doubling with the lock dropped (no system call
 * under a lock), and is kept until the pool is destroyed; if the system has no memory to grow it,
 * the magazine is spliced onto the free list after a walk to its end.
 * The depot is a shelf per cache and a shared stack, all linked alike: a cache pushes onto its own
 * shelf and pops its own shelf's newest, else the shared stack's, else that of the first cache on
 * the pool's list `stocked` (caches with a shelf, the last to push first), all O(1). So a thread
 * gets back the blocks it freed, whose lines its own core last wrote (from one shared stack, a
 * thread building while another freed took the other's newest magazines, lines still in the other
 * core's cache: see docs/design.md), and the pool carves only when the whole depot is empty, so
 * the bound is the same. An exiting thread's shelf goes whole onto the shared stack (shelf_last
 * makes the splice O(1)); mpi_ts_lock empties every shelf with the rest. Pools of one-word blocks
 * keep the shared array only. Pool lock held in all.
 * ============================================================================================== */

#define MAG_NEXT(first) (((void **)(first))[1])

static bool depot_usable(const mp_pool *pool)
{
    return pool->stride >= 2 * sizeof(void *);
}

/* Pushes the magazine that begins at `first` onto the shelf of cache c (NULL: the shared stack);
 * false if the array of a pool of one-word blocks (which has no shelves) is full (depot_grow). */
static bool depot_push(mp_pool *pool, mpi_tcache *c, void *first)
{
    if (depot_usable(pool) && c != NULL) {
        MAG_NEXT(first) = c->shelf;
        if (c->shelf == NULL)
            c->shelf_last = first;
        else if (pool->stocked != c)
            MPI_LIST_UNLINK(pool->stocked, c, stocked_next, stocked_prev);
        if (pool->stocked != c) /* the last to push heads `stocked`: see depot_pop */
            MPI_LIST_PUSH(pool->stocked, c, stocked_next, stocked_prev);
        c->shelf = first;
    } else if (depot_usable(pool)) {
        MAG_NEXT(first) = pool->mags;
        pool->mags = first;
    } else if (pool->nmags < pool->mag_cap) {
        pool->mag_tops[pool->nmags] = first;
    } else {
        return false;
    }
    pool->nmags++;
    return true;
}

/* Pops the newest magazine of the shelf of cache s, which has one. */
static void *shelf_pop(mp_pool *pool, mpi_tcache *s)
{
    void *first = s->shelf;
    s->shelf = MAG_NEXT(first);
    if (s->shelf == NULL) {
        s->shelf_last = NULL;
        MPI_LIST_UNLINK(pool->stocked, s, stocked_next, stocked_prev);
    }
    return first;
}

/* Pops a magazine for cache c (NULL: a thread without one): the newest of its own shelf, else of
 * the shared stack, else of the shelf that was pushed last (the head of `stocked`), whose newest
 * is the depot's newest unless a pop took it: the lines most likely still in a cache, where the
 * shelf that was stocked last may be that of a thread preempted long ago. NULL if there is none. */
static void *depot_pop(mp_pool *pool, mpi_tcache *c)
{
    if (pool->nmags == 0)
        return NULL;
    pool->nmags--;
    if (!depot_usable(pool))
        return pool->mag_tops[pool->nmags];
    if (c != NULL && c->shelf != NULL)
        return shelf_pop(pool, c);
    void *first = pool->mags;
    if (first == NULL)
        return shelf_pop(pool, pool->stocked);
    pool->mags = MAG_NEXT(first);
    return first;
}

/* Moves the shelf of cache c onto the shared stack whole: O(1). */
static void shelf_give(mp_pool *pool, mpi_tcache *c)
{
    if (c->shelf == NULL)
        return;
    MAG_NEXT(c->shelf_last) = pool->mags;
    pool->mags = c->shelf;
    c->shelf = c->shelf_last = NULL;
    MPI_LIST_UNLINK(pool->stocked, c, stocked_next, stocked_prev);
}

/* Doubles the array of a pool of one-word blocks, mapping it with the lock dropped (another
 * thread may grow it meanwhile: then the new one goes back). False on ENOMEM. */
static bool depot_grow(mp_pool *pool)
{
    uint64_t cap = pool->mag_cap;
    size_t page = mpi_os_page_size();
    uint64_t cap2 = cap != 0 ? 2 * cap : page / sizeof(void *);
    mpi_lock_release(&pool->lock);
    void **grown = mpi_os_source.map(NULL, cap2 * sizeof(void *), page);
    mpi_lock_acquire(&pool->lock);
    if (grown == NULL)
        return false;
    void **spare = grown;
    uint64_t spare_cap = cap2;
    if (pool->mag_cap == cap) {
        if (cap != 0)
            memcpy(grown, pool->mag_tops, pool->nmags * sizeof(void *));
        spare = pool->mag_tops;
        spare_cap = cap;
        pool->mag_tops = grown;
        pool->mag_cap = cap2;
    }
    if (spare != NULL) {
        mpi_lock_release(&pool->lock);
        mpi_os_source.unmap(NULL, spare, spare_cap * sizeof(void *));
        mpi_lock_acquire(&pool->lock);
    }
    return true;
}

/* Makes a magazine of the depot (depot_pop's) the pool's free list, which must be empty: O(1) (a
 * magazine is a NULL-terminated chain of raw links, a whole list as it stands: a pool with caches
 * has no checks, so its links are not encoded). For a thread without a cache, which allocates
 * from the list: at most a batch is moved, and in_use = carved - free_len - cached - nmags * batch
 * still holds. Nothing happens when the depot is empty. */
static void depot_pop_to_list(mp_pool *pool)
{
    void **head = mpi_pool_head(pool);
    mp_assert(*head == NULL);
    *head = depot_pop(pool, NULL);
}

/* Empties the depot onto the free list: O(blocks in it); only for mpi_ts_lock, whose callers walk
 * the list anyway. */
static void depot_drain(mp_pool *pool)
{
    while (pool->nmags != 0) {
        void *first = depot_pop(pool, NULL);
        mpi_pool_give_chain(pool, first, chain_last(first));
    }
}

/* Gives the previous magazine back to the pool: onto the depot, else (a pool of one-word blocks
 * with no memory to grow its array) onto the free list; counts it as flushed. The counters move
 * under the lock, with the blocks, so that stats (which take the lock) never see blocks in neither
 * place. May drop the lock and take it again (depot_grow); c->prev is this thread's meanwhile. */
static void cache_give_prev(mp_pool *pool, mpi_tcache *c)
{
    uint64_t n = cache_batch(c);
    bool pushed;
    while (!(pushed = depot_push(pool, c, c->prev)) && depot_grow(pool)) {
    }
    if (!pushed) {
        mpi_lock_release(&pool->lock);
        void *last = chain_last(c->prev);
        mpi_lock_acquire(&pool->lock);
        mpi_pool_give_chain(pool, c->prev, last);
    }
    c->prev = NULL;
    __atomic_store_n(&c->flushed, c->flushed + n, __ATOMIC_RELAXED);
    MP_STORE_RELEASE(c->pub->pops, c->pub->pops + n);
}

/* Moves the one magazine between the loaded list and the previous one (the other is empty):
 * thread-local, no lock and no counter moves (both count in pushes - pops), so a loop whose blocks
 * fit in the cache takes no lock at all. The one reader that may race it is a fork() child
 * retiring this cache (any other reader of a thread's magazines wants the pool unused): the chain
 * is stored in its new place first and the old place cleared with a release store after, so the
 * child finds it in one place or the same chain in both, which cache_retire gives back once. */
static void cache_swap(mpi_tcache *c)
{
    if (c->prev == NULL) {
        c->prev = c->pub->free;
        MP_STORE_RELEASE(c->pub->free, NULL);
    } else {
        c->pub->free = c->prev;
        MP_STORE_RELEASE(c->prev, NULL);
    }
}

/* Links n blocks lying one stride apart from first into a NULL-terminated chain, in address order
 * (so that a fresh pool still hands out its lowest addresses first). */
static void chain_link_range(void *first, uint64_t n, size_t stride)
{
    char *b = first;
    for (uint64_t i = 1; i < n; i++, b += stride)
        *(void **)b = b + stride;
    if (n != 0)
        *(void **)b = NULL;
}

/* Fills the empty loaded list from the free list (block by block in the pool's order; only
 * threads without a cache and mpi_ts_lock feed it), else with never-used blocks: one range carved
 * under the lock in O(1) and linked after the lock is dropped, so that the writes that fault
 * their pages in (or the one call that populates them, with MPI_POPULATE) hold up no other thread.
 * Calls the source at most once. Counts a failure if it gets none. Drops the lock. */
static void cache_refill_unlock(mp_pool *pool, mpi_tcache *c, bool reuse_only)
{
    uint64_t want = cache_batch(c), got = 0, nfresh = 0;
    want = want > REFILL_MAX ? REFILL_MAX : want;
    void *first = NULL, **tail = &first;
    if (*mpi_pool_head(pool) != NULL) {
        for (bool fresh; got < want && *mpi_pool_head(pool) != NULL; got++) {
            void *block = mpi_pool_take(pool, &fresh);
            *tail = block;
            tail = (void **)block;
        }
        *tail = NULL;
    } else if (!reuse_only) {
        /* Linking a never-used block writes to it, which faults its page in: carve a page's worth
         * (at least a block) ahead of use, so large blocks cost no memory before they are used. */
        uint64_t ahead = (CACHE_FRESH_BYTES + pool->stride - 1) / pool->stride;
        first = mpi_pool_carve_range(pool, want < ahead ? want : ahead, &nfresh);
    }
    if (got + nfresh == 0 && !reuse_only)
        pool->failed_allocs++;
    mpi_pages pages = {0, 0, NULL};
    if (nfresh != 0 && (pool->state & MPI_POPULATE) != 0)
        mpi_pool_fresh_pages(pool, first, nfresh, &pages); /* writes pool->populated: locked */
    MP_STORE_RELEASE(c->pub->pushes, c->pub->pushes + got + nfresh);
    mpi_lock_release(&pool->lock);
    mpi_pool_populate(pool, &pages);
    chain_link_range(first, nfresh, pool->stride);
    c->pub->free = first;
}

/* Loads the empty cache c: its previous magazine (no lock: see cache_swap), else the depot's
 * newest, else blocks from the free list or carved. */
static void cache_exchange_empty(mp_pool *pool, mpi_tcache *c, bool reuse_only)
{
    if (c->prev != NULL) {
        cache_swap(c);
        return;
    }
    mpi_lock_acquire(&pool->lock);
    void *first;
    if ((first = depot_pop(pool, c)) != NULL) {
        MP_STORE_RELEASE(c->pub->pushes, c->pub->pushes + cache_batch(c));
    } else {
        cache_refill_unlock(pool, c, reuse_only);
        return;
    }
    c->pub->free = first;
    mpi_lock_release(&pool->lock);
}

/* Makes the full loaded list of c (exactly a batch) its previous magazine, after giving the
 * previous one back (under the lock; with no previous one, the lock is not taken). */
static void cache_exchange_full(mp_pool *pool, mpi_tcache *c)
{
    if (c->prev != NULL) {
        mpi_lock_acquire(&pool->lock);
        cache_give_prev(pool, c);
        mpi_lock_release(&pool->lock);
    }
    cache_swap(c);
}

/* ================================================================================================
 * The slow alloc and free of a thread-safe pool
 * ============================================================================================== */

void *mpi_ts_alloc(mp_pool *pool, const void *site, bool reuse_only)
{
    mpi_tcache *c = cache_get(pool);
    if (c == NULL) {
        mpi_lock_acquire(&pool->lock);
        if (*mpi_pool_head(pool) == NULL) /* no cache here, others may have given magazines */
            depot_pop_to_list(pool);
        void *block =
            reuse_only && *mpi_pool_head(pool) == NULL ? NULL : mpi_pool_alloc_general(pool, site);
        int err = errno;
        mpi_lock_release(&pool->lock);
        errno = err;
        return block;
    }
    struct mp_tcache_fast *pub = c->pub;
    if (pub->free == NULL)
        cache_exchange_empty(pool, c, reuse_only);
    cache_set_stop(c);
    void *block = pub->free;
    if (block == NULL) {
        if (!reuse_only)
            errno = ENOMEM;
        return NULL;
    }
    pub->free = *(void **)block;
    MP_STORE_RELEASE(pub->pops, pub->pops + 1);
    if ((pool->flags & MP_ZERO) != 0)
        memset(block, 0, pool->block_size);
    return block;
}

void mpi_ts_free(mp_pool *pool, void *block)
{
    mpi_tcache *c = cache_get(pool);
    if (c == NULL) {
        mpi_lock_acquire(&pool->lock);
        mpi_pool_free_general(pool, block);
        mpi_lock_release(&pool->lock);
        return;
    }
    struct mp_tcache_fast *pub = c->pub;
    if (pub->pushes - pub->pops - cache_prev_len(c) >= cache_batch(c))
        cache_exchange_full(pool, c);
    cache_set_stop(c);
    *(void **)block = pub->free;
    pub->free = block;
    MP_STORE_RELEASE(pub->pushes, pub->pushes + 1);
}

/* ================================================================================================
 * Thread exit, reading, reset
 * ============================================================================================== */

/* Gives every block of a cache back (walking to the end of its loaded list, which is whole at
 * every instruction boundary, so this also serves a cache whose thread a fork() left behind; a
 * fork() in the middle of cache_swap leaves the same chain in both places, given back once) and
 * folds its count of allocations into the pool's. A range that such a thread had carved and not
 * yet linked (cache_refill_unlock) is in no list: the child keeps it counted in use, at most a
 * page a thread. Registry lock held. */
static void cache_retire(mpi_tcache *c)
{
    mp_pool *pool = c->pool;
    mpi_lock_acquire(&pool->lock);
    void *first = c->pub->free;
    if (first != NULL && first != c->prev) /* the same: a fork() split a cache_swap, see there */
        mpi_pool_give_chain(pool, first, chain_last(first));
    if (c->prev != NULL)
        cache_give_prev(pool, c);
    shelf_give(pool, c);
    pool->retired_allocs += c->pub->pops - c->flushed;
    mpi_lock_release(&pool->lock);
    cache_drop(c);
}

/* Retires all caches of a thread and frees its record. Registry lock held. */
static void thread_retire(mpi_thread *t)
{
    while (t->caches != NULL)
        cache_retire(t->caches);
    MPI_LIST_UNLINK(threads, t, next, prev);
    mpi_os_source.unmap(NULL, t->table, TABLE_BYTES);
    mp_pool_free(thread_meta, t);
}

/* The thread-exit hook: O(pools this thread used). */
static void thread_exit(void *arg)
{
    mpi_lock_acquire(&registry);
    thread_retire(arg);
    mpi_lock_release(&registry);
    self = NULL;
    exited = true;
    mpi_tcaches = no_caches;
}

void mpi_ts_lock(const mp_pool *pool)
{
    if ((pool->flags & MP_THREAD_SAFE) == 0)
        return;
    mpi_lock_acquire(&registry);
    mpi_lock_acquire((mpi_lock *)&pool->lock);
    depot_drain((mp_pool *)pool); /* the caller may walk the free list: every free block on it */
}

void mpi_ts_unlock(const mp_pool *pool)
{
    if ((pool->flags & MP_THREAD_SAFE) == 0)
        return;
    mpi_lock_release((mpi_lock *)&pool->lock);
    mpi_lock_release(&registry);
}

void mpi_ts_sum(const mp_pool *pool, uint64_t *cached, uint64_t *allocs)
{
    *cached = 0;
    *allocs = pool->retired_allocs;
    for (const mpi_tcache *c = pool->caches; c != NULL; c = c->pool_next) {
        /* pops first, with acquire: the pushes its thread had made by then are seen too, and a
         * racing free can only make pushes larger, so the count is never negative */
        uint64_t pops = __atomic_load_n(&c->pub->pops, __ATOMIC_ACQUIRE);
        uint64_t pushes = __atomic_load_n(&c->pub->pushes, __ATOMIC_RELAXED);
        *cached += pushes - pops;
        *allocs += pops - __atomic_load_n(&c->flushed, __ATOMIC_RELAXED);
    }
}

uint64_t mpi_ts_cached_floor(const mp_pool *pool)
{
    uint64_t cached = 0;
    for (const mpi_tcache *c = pool->caches; c != NULL; c = c->pool_next) {
        /* pushes first, with acquire: the pops made by then are seen too, and a racing alloc can
         * only make pops larger, so this never overcounts */
        uint64_t pushes = __atomic_load_n(&c->pub->pushes, __ATOMIC_ACQUIRE);
        uint64_t pops = __atomic_load_n(&c->pub->pops, __ATOMIC_RELAXED);
        cached += pushes > pops ? pushes - pops : 0;
    }
    return cached;
}

/* Marks the n blocks of a chain; false if mark does, or if the chain is not n long. */
static bool chain_mark(const mp_pool *pool, const void *b, uint64_t n,
                       bool (*mark)(const mp_pool *pool, const void *block, void *ctx), void *ctx)
{
    for (; b != NULL && n != 0; n--) {
        if (!mark(pool, b, ctx))
            return false;
        b = *(void *const *)b;
    }
    return b == NULL && n == 0;
}

bool mpi_ts_each_cached(const mp_pool *pool,
                        bool (*mark)(const mp_pool *pool, const void *block, void *ctx), void *ctx)
{
    for (const mpi_tcache *c = pool->caches; c != NULL; c = c->pool_next) {
        uint64_t n = __atomic_load_n(&c->pub->pushes, __ATOMIC_ACQUIRE) -
                     __atomic_load_n(&c->pub->pops, __ATOMIC_RELAXED);
        uint64_t nprev = cache_prev_len(c);
        if (n < nprev || !chain_mark(pool, c->pub->free, n - nprev, mark, ctx) ||
            !chain_mark(pool, c->prev, nprev, mark, ctx))
            return false;
    }
    return true;
}

void mpi_ts_reset(mp_pool *pool)
{
    for (mpi_tcache *c = pool->caches; c != NULL; c = c->pool_next) {
        c->pub->free = NULL; /* the cached blocks count as taken back by a flush */
        c->prev = NULL;
        c->flushed += c->pub->pushes - c->pub->pops;
        MP_STORE_RELEASE(c->pub->pops, c->pub->pushes);
    }
}

/* ================================================================================================
 * fork(): every lock is taken before, released after; in the child, the caches of threads that
 * did not survive are given back to their pools. A thread-safe heap puts its own lock on the list
 * fork_locks (a heap is above this file: it hands over the lock, not itself)
 * ============================================================================================== */

void mpi_fork_lock_add(mpi_fork_lock *l)
{
    mpi_once_run(&registry_once, registry_init);
    mpi_lock_acquire(&registry);
    l->next = fork_locks;
    fork_locks = l;
    mpi_lock_release(&registry);
}

/* O(heaps): a program makes few, and destroys them rarely. */
void mpi_fork_lock_remove(mpi_fork_lock *l)
{
    mpi_lock_acquire(&registry);
    mpi_fork_lock **at = &fork_locks;
    while (*at != l)
        at = &(*at)->next;
    *at = l->next;
    mpi_lock_release(&registry);
}

/* Whether this fork() took the objects' locks. A process with one thread (a shell, make) has no
 * other thread that could hold one, and taking them would write every pool's page, which the
 * parent and the child then each copy (two copy-on-write faults per pool and fork). */
static bool fork_locked;

/* Every lock, in the library's lock order (internal.h). */
static void fork_prepare(void)
{
    mpi_lock_acquire(&registry);
    fork_handlers_ran = true;
    fork_locked = !mpi_os_single_threaded();
    if (!fork_locked)
        return;
    for (mp_pool *p = ts_pools; p != NULL; p = p->ts_next)
        mpi_lock_acquire(&p->lock);
    for (mpi_fork_lock *l = fork_locks; l != NULL; l = l->next)
        mpi_lock_acquire(l->mutex);
}

/* Every lock but the registry, in the parent or the child (where the forking thread, the one that
 * took them, is the only thread). */
static void fork_unlock_objects(void)
{
    if (!fork_locked)
        return;
    for (mpi_fork_lock *l = fork_locks; l != NULL; l = l->next)
        mpi_lock_release(l->mutex);
    for (mp_pool *p = ts_pools; p != NULL; p = p->ts_next)
        mpi_lock_release(&p->lock);
}

static void fork_parent(void)
{
    fork_unlock_objects();
    mpi_lock_release(&registry);
}

static void fork_child(void)
{
    fork_unlock_objects();
    for (mpi_thread *t = threads, *next; t != NULL; t = next) {
        next = t->next;
        if (t != self)
            thread_retire(t);
    }
    mpi_lock_release(&registry);
}

/*
 * handles.c: MP_HANDLES, the store behind mp_pool_deref(): chunk numbers and the two tables, the
 * chunks' bases and the slots' generations (internal.h, mpi_hchunk; the layout: mempool.h).
 *
 * What a deref may read stays mapped until destroy: the tables are replaced when they grow (the
 * generations copied), the old ones kept; a trimmed run's numbers keep their generations for the
 * next run. So a deref that races a trim or a growth reads memory that is still there, and a handle
 * of a trimmed chunk stays stale when a new chunk takes its number (its generations go on from the
 * trimmed chunk's, all even). The per-block work (advancing a generation) is in pool.c, on the
 * alloc and free paths. Everything here runs in the pool's calls that may change its chunks (a
 * thread-safe pool's under its lock) and maps from the pool's source.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

/* Maps `size` bytes (a multiple of the page) from the pool's source, kept on the pool's list until
 * destroy; the caller's part starts after the list's header. NULL when the source refuses. */
static void *hmap_take(mp_pool *pool, size_t size)
{
    mpi_hmap *m = mpi_source_map(&pool->source, size, mpi_os_page_size());
    if (m == NULL)
        return NULL;
    m->next = pool->hmaps;
    m->size = size;
    pool->hmaps = m;
    pool->bytes_reserved += size;
    return m + 1;
}

static size_t page_round(size_t n)
{
    return (size_t)mpi_align_up(n, mpi_os_page_size());
}

/* Bits that hold every slot index below `slots` (the generations of a number's indexes past its
 * chunk's slots stay 0: a power of two per number costs at most twice the generations' room). */
static unsigned slot_bits(uint64_t slots)
{
    unsigned bits = 0;
    while (bits < 32 && ((uint64_t)1 << bits) < slots)
        bits++;
    return bits;
}

int mpi_handles_init(mp_pool *pool, uint64_t slots)
{
    if (slots >= UINT32_MAX)
        return EINVAL; /* a handle's index, slot + 1, has 32 bits */
    unsigned bits = slot_bits(slots + 1);
    pool->fast.hbits = bits;
    pool->hlimit = UINT32_MAX >> bits; /* hlen = numbers << bits fits in 32 bits */
    return 0;
}

void mpi_handles_init_buffer(mp_pool *pool, uint32_t *gens, uint64_t slots)
{
    memset(gens, 0, (size_t)(slots + 1) * sizeof *gens);
    pool->fast.hbits = 32; /* one number, 0: the index is the slot + 1 */
    pool->buffer_base = (uintptr_t)pool->buffer_run.base - pool->stride;
    pool->fast.hgens = gens;
    pool->fast.hbase = &pool->buffer_base;
    pool->fast.hlen = (uint32_t)(slots + 1);
    pool->hchunks = 1;
}

/* Makes room for `need` numbers: larger tables (bases, then generations, in one mapping),
 * the numbers in use copied, the rest zero, published with release stores; the old ones are kept
 * for the derefs that still read them. */
static bool tables_reserve(mp_pool *pool, uint32_t need)
{
    if (need <= pool->hcap)
        return true;
    size_t cap = pool->hcap != 0 ? (size_t)pool->hcap * 2 : 64;
    while (cap < need)
        cap *= 2;
    if (cap > pool->hlimit)
        cap = pool->hlimit;
    size_t per = (size_t)1 << pool->fast.hbits; /* indexes of one number */
    size_t bases = (size_t)mpi_align_up(cap * sizeof(uintptr_t), 64);
    char *mem = hmap_take(pool, page_round(sizeof(mpi_hmap) + bases + cap * per * 4));
    if (mem == NULL)
        return false;
    uintptr_t *base = (uintptr_t *)mem;
    uint32_t *gens = (uint32_t *)(mem + bases);
    size_t used = pool->hchunks;
    if (used != 0) {
        memcpy(base, pool->fast.hbase, used * sizeof *base);
        memcpy(gens, pool->fast.hgens, used * per * sizeof *gens);
    }
    memset(gens + used * per, 0,
           (cap - used) * per * sizeof *gens); /* need not be 0 from a source */
    MP_STORE_RELEASE(pool->fast.hgens, gens);
    MP_STORE_RELEASE(pool->fast.hbase, base);
    pool->hcap = (uint32_t)cap;
    return true;
}

/* The lowest first number of the runs that hold a number at or after n, or UINT32_MAX when none
 * does; that run's end in *end. O(runs). */
static uint32_t number_held(const mp_pool *pool, uint32_t n, uint32_t *end)
{
    uint32_t best = UINT32_MAX;
    for (const mpi_run *r = pool->first; r != NULL; r = r->next) {
        if (r->hnum + r->nchunks > n && r->hnum < best) {
            best = r->hnum;
            *end = r->hnum + r->nchunks;
        }
    }
    return best;
}

bool mpi_handles_run_add(mp_pool *pool, mpi_run *run, char *mem, uint32_t nchunks)
{
    uint32_t used = pool->hchunks, at = 0, end = 0;
    for (;;) { /* first fit among the numbers no run holds (runs given back free theirs) */
        uint32_t held = number_held(pool, at, &end);
        if (held == UINT32_MAX || (held > at && held - at >= nchunks))
            break; /* no run holds a number from at on, or a gap of nchunks at at */
        at = end;
    }
    if (at + (uint64_t)nchunks > used &&
        (at + (uint64_t)nchunks > pool->hlimit || !tables_reserve(pool, at + nchunks)))
        return false;
    uintptr_t *base = (uintptr_t *)pool->fast.hbase;
    for (uint32_t i = 0; i < nchunks; i++) /* block = base + index * stride (mempool.h) */
        MP_STORE_RELAXED(base[at + i],
                         (uintptr_t)mem + (size_t)i * pool->chunk_size + pool->first_off -
                             ((((uintptr_t)(at + i) << pool->fast.hbits) + 1) * pool->stride));
    if (at + nchunks > used) {
        pool->hchunks = at + nchunks;
        /* after the tables and their entries: a deref that reads it reads them */
        MP_STORE_RELEASE(pool->fast.hlen, pool->hchunks << pool->fast.hbits);
    }
    run->hnum = at;
    return true;
}

void mpi_handles_reset(mp_pool *pool)
{
    uint32_t *gens = (uint32_t *)pool->fast.hgens;
    for (uint64_t i = 0; i < pool->fast.hlen; i++) {
        uint32_t g = MP_LOAD_RELAXED(gens[i]);
        if ((g & 1) != 0)
            MP_STORE_RELAXED(gens[i], g + 1);
    }
}

uint64_t mpi_handles_live(const mp_pool *pool)
{
    uint64_t live = 0;
    for (uint64_t i = 0; i < pool->fast.hlen; i++)
        live += MP_LOAD_RELAXED(pool->fast.hgens[i]) & 1;
    return live;
}

void mpi_handles_destroy(mp_pool *pool)
{
    for (mpi_hmap *m = pool->hmaps, *next; m != NULL; m = next) {
        next = m->next;
        pool->source.unmap(pool->source.ctx, m, m->size);
    }
    pool->hmaps = NULL;
}

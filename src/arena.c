/*
 * arena.c: arenas, the region allocator of mempool (as APR and nginx pools): a bump pointer over a
 * list of chunks, everything freed at once by mp_arena_reset() or back to a mark by
 * mp_arena_rewind(). Nothing is freed one by one, so an allocation is an add, a mask and a compare.
 *
 * An arena's struct lives in a page of its own from the source, or at the start of the caller's
 * buffer, whose rest is then the arena's only chunk. Chunks come from the source as the arena
 * grows: chunk_size bytes (rounded up to the page size), or sized to fit a request too large for
 * one. Each begins with its header; the chunks form one list, in the order the cursor uses them:
 *
 *   arena page          chunk (chunk_size bytes)            chunk (a large request's own)
 *   +----------+        +-----+----------------+------+     +-----+-----+-------------+
 *   | mp_arena | first->| hdr | allocations... | tail |---->| hdr | pad | the request |--> kept
 *   +----------+        +-----+----------------+------+     +-----+-----+-------------+
 *                                                           ^cur              ^bump   ^end
 *
 * What does not fit in the current chunk goes to the next one, and the tail left behind is lost
 * until a rewind or a reset returns there; the tail is smaller than the request that did not fit.
 *
 * A position is (chunk, offset from the chunk's start), ordered along the list. A rewind or a reset
 * moves the cursor back and keeps chunks after it, empty, for reuse: by default the chunks the
 * cursor had reached (what the last round used, so a loop that builds and releases the same
 * structure maps nothing after its first round, where giving them back would fault every page in
 * again), else as many as fit in max_keep bytes of chunks held; the rest go back, as
 * mp_arena_trim() gives back every kept chunk. When the arena grows again it takes the first kept
 * chunk that can hold the request (moved to just after the cursor's chunk: empty chunks have no
 * order that matters) and maps a new chunk only when none can. Before that map it gives back kept
 * chunks, in order, until it has given back as many bytes as it maps (or has none left), so a loop
 * that rewinds and then allocates one ever larger block does not keep every size it ever saw: the
 * bytes held stay within the most that the chunks up to the cursor ever spanned.
 *
 * Cleanups (mp_arena_add_cleanup()) are records allocated from the arena, on a stack newest first;
 * each holds bytes_used just after itself, so a rewind to a mark runs exactly those whose records
 * lie after the mark (bytes_used is monotonic along positions), before their memory goes.
 *
 * Invariants (arena_is_valid() checks them; MP_DEBUG 2 after every slow operation):
 *   first == NULL iff cur == NULL; cur is on the list; the chunks after cur are empty (kept);
 *   cur + HDR <= bump <= end == cur + cur->size;
 *   first->before == 0; for each chunk c before cur,
 *     c->next->before == c->before + c->used - HDR,
 *   so bytes_used == cur->before + (bump - cur - HDR), read in O(1);
 *   bytes_peak == max(peak_before, bytes_used): bytes_used falls only at a rewind or a reset,
 *   which first fold it into peak_before, so allocation never updates the peak;
 *   reserved == meta_size + the chunks' sizes (a buffer arena: the buffer's size) <= cap_max;
 *   nchunks == the list's length.
 *
 * Choices the public header leaves open: capacity and bytes_reserved count everything taken from
 * the source, the arena's own page included (so the source never has more than capacity bytes out
 * to an arena; a capacity below that page plus one chunk page is refused), and a last chunk is cut
 * short to fit the capacity. A buffer arena ignores chunk_size and capacity (the buffer bounds it)
 * and reports the whole buffer as reserved. failed_allocs counts every alloc on an arena that
 * returns NULL (ENOMEM or a bad alignment). The start of an arena is marked {arena, 0}, valid for
 * its lifetime. Not thread-safe, like a plain pool.
 */
#include "internal.h"

#include <errno.h>
#include <stdalign.h>
#include <string.h>

/* ================================================================================================
 * Types
 * ============================================================================================== */

/* The header at the start of every chunk. */
typedef struct arena_chunk {
    struct arena_chunk *next; /* the next chunk the cursor goes to; after cur's, the kept ones */
    size_t size;              /* bytes of the chunk, header included (what the source mapped) */
    size_t used;              /* offset of the first free byte, once the cursor has left it */
    uint64_t before;          /* bytes_used in the chunks before this one when the cursor came */
} arena_chunk;

/* The alignment of mp_arena_alloc() and of every chunk's payload. */
#define ARENA_ALIGN MP_ARENA_ALIGN
/* The header's room: allocations start ARENA_HDR bytes into a chunk (before their own padding). */
#define ARENA_HDR ((sizeof(arena_chunk) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))
#define ARENA_DEFAULT_CHUNK ((size_t)64 * 1024)

static_assert((ARENA_ALIGN & (ARENA_ALIGN - 1)) == 0, "max_align_t's alignment is a power of two");
static_assert(MP_ARENA_ALIGN == alignof(max_align_t), "the header's alignment is max_align_t's");
static_assert(ARENA_HDR < 4096, "a chunk header fits in the smallest page with room to spare");

/* Bits of mp_arena.state. */
enum {
    ARENA_IN_BUFFER = 1u << 0, /* lives in the caller's buffer: one chunk, no source */
};

/* A cleanup, allocated from the arena itself; the records form a stack, newest first. */
typedef struct arena_cleanup {
    struct arena_cleanup *prev; /* the one added before it */
    void (*fn)(void *ctx);
    void *ctx;
    uint64_t end; /* bytes_used just after the record: a rewind to below it runs the cleanup */
} arena_cleanup;

struct mp_arena {
    /* The cursor, the free bytes [bump, end) of chunk cur, and allocs, as the inline bump reads
     * them (0, 0, NULL before the first chunk). */
    struct mp_arena_fast fast;
    arena_chunk *cur;
    arena_chunk *first;
    arena_cleanup *cleanups; /* the newest cleanup, or NULL */

    uint64_t failed_allocs;
    uint64_t peak_before; /* the most bytes_used before the last rewind or reset */
    uint64_t reserved;    /* bytes taken from the source (meta_size included) or the buffer */
    uint64_t cap_max;     /* the capacity, or UINT64_MAX when unbounded (always in a buffer) */
    uint64_t nchunks;
    uint64_t resets;
    uint64_t rewinds;

    size_t chunk_size; /* a regular chunk's size: a multiple of the page size */
    size_t meta_size;  /* bytes of this struct's own mapping (0 in a buffer) */
    size_t max_keep;   /* mp_arena_opts.max_keep */
    unsigned state;    /* ARENA_IN_BUFFER */
    mp_source source;
    char name[MP_NAME_MAX];
};
static_assert(offsetof(struct mp_arena, fast) == 0, "the inline bump reads the arena as its head");

/* ================================================================================================
 * Helpers
 * ============================================================================================== */

/* Bytes handed out since the last reset, padding included (see the invariants). */
static uint64_t arena_used(const mp_arena *a)
{
    return a->cur != NULL ? a->cur->before + (a->fast.bump - (uintptr_t)a->cur - ARENA_HDR) : 0;
}

/* The offset of chunk c's first free byte (c is cur or a chunk before it). */
static size_t arena_chunk_used(const mp_arena *a, const arena_chunk *c)
{
    return c == a->cur ? (size_t)(a->fast.bump - (uintptr_t)c) : c->used;
}

/* Before bytes_used falls (rewind, reset), keep the peak it stands for. */
static void arena_keep_peak(mp_arena *a)
{
    uint64_t used = arena_used(a);
    if (used > a->peak_before)
        a->peak_before = used;
}

/* Puts the cursor at offset `used` of chunk c. */
static void arena_point(mp_arena *a, arena_chunk *c, size_t used)
{
    a->cur = c;
    a->fast.bump = (uintptr_t)c + used;
    a->fast.end = (uintptr_t)c + c->size;
}

/* Gives a chunk, already off the list, back to the source. */
static void arena_unmap(mp_arena *a, arena_chunk *c)
{
    a->reserved -= c->size;
    a->nchunks--;
    a->source.unmap(a->source.ctx, c, c->size);
}

static bool arena_is_valid(const mp_arena *a);
static void arena_run_cleanups(mp_arena *a, uint64_t used);

/* ================================================================================================
 * Creation and destruction
 * ============================================================================================== */

/*
 * Works out the chunk size and the capacity from the options into `proto`. 0 or EINVAL.
 * A capacity is refused when it cannot hold the arena's own page and one page of chunk: no
 * allocation could ever succeed.
 */
static int arena_setup(mp_arena *proto, const mp_arena_opts *o)
{
    size_t page = mpi_os_page_size();
    proto->source = o->source != NULL ? *o->source : mpi_os_source;
    if (proto->source.map == NULL || proto->source.unmap == NULL)
        return EINVAL;
    size_t chunk = o->chunk_size != 0 ? o->chunk_size : ARENA_DEFAULT_CHUNK;
    if (chunk > PTRDIFF_MAX)
        return EINVAL;
    proto->chunk_size = (size_t)mpi_align_up(chunk, page);
    proto->meta_size = (size_t)mpi_align_up(sizeof(mp_arena), page);
    proto->max_keep = o->max_keep;
    proto->cap_max = UINT64_MAX;
    if (o->buffer == NULL && o->capacity != 0) {
        if (o->capacity < proto->meta_size + page)
            return EINVAL;
        proto->cap_max = o->capacity;
    }
    mpi_name_copy(proto->name, o->name);
    return 0;
}

/*
 * Places the arena at the start of the caller's buffer (aligned) and makes the rest its only chunk.
 * NULL when the buffer cannot hold the arena, a chunk header and one byte.
 */
static mp_arena *arena_place_in_buffer(const mp_arena *proto, void *buffer, size_t buffer_size)
{
    uintptr_t end;
    uintptr_t at = mpi_buffer_place(buffer, buffer_size, alignof(mp_arena), sizeof(mp_arena), &end);
    if (at == 0)
        return NULL;
    uintptr_t chunk = mpi_align_up(at + sizeof(mp_arena), ARENA_ALIGN);
    if (chunk < at || chunk > end || end - chunk <= ARENA_HDR)
        return NULL;

    mp_arena *a = (mp_arena *)at;
    *a = *proto;
    a->state |= ARENA_IN_BUFFER;
    a->meta_size = 0;
    a->reserved = buffer_size;
    arena_chunk *c = (arena_chunk *)chunk;
    memset(c, 0, sizeof *c);
    c->size = end - chunk;
    a->first = c;
    a->nchunks = 1;
    arena_point(a, c, ARENA_HDR);
    return a;
}

/* Places the arena in a page of its own from the source. NULL when the source has none. */
static mp_arena *arena_place_in_source(const mp_arena *proto)
{
    mp_arena *a = proto->source.map(proto->source.ctx, proto->meta_size, mpi_os_page_size());
    if (a == NULL)
        return NULL;
    *a = *proto;
    a->reserved = proto->meta_size;
    return a;
}

mp_arena *mp_arena_create(const mp_arena_opts *opts)
{
    static const mp_arena_opts defaults;
    const mp_arena_opts *o = opts != NULL ? opts : &defaults;
    mp_arena proto;
    memset(&proto, 0, sizeof proto);
    int err = arena_setup(&proto, o);
    if (MP_FREESTANDING && err == 0 && o->buffer == NULL && o->source == NULL)
        err = ENOSYS; /* bare metal has no system source (config.h) */
    if (err != 0) {
        errno = err;
        return NULL;
    }
    int saved = errno;
    mp_arena *a = o->buffer != NULL ? arena_place_in_buffer(&proto, o->buffer, o->buffer_size)
                                    : arena_place_in_source(&proto);
    errno = a != NULL ? saved : o->buffer != NULL ? EINVAL : ENOMEM;
    if (a != NULL && MP_DEBUG >= 2)
        mp_assert(arena_is_valid(a));
    return a;
}

void mp_arena_destroy(mp_arena *arena)
{
    if (arena == NULL)
        return;
    arena_run_cleanups(arena, 0);
    if ((arena->state & ARENA_IN_BUFFER) != 0)
        return;
    int saved = errno;
    mp_source source = arena->source;
    for (arena_chunk *c = arena->first, *next; c != NULL; c = next) {
        next = c->next;
        source.unmap(source.ctx, c, c->size);
    }
    source.unmap(source.ctx, arena, arena->meta_size);
    errno = saved;
}

/* ================================================================================================
 * Allocation: the bump, and the slow path that moves to the next chunk
 * ============================================================================================== */

/*
 * n bytes at the cursor aligned to align, or NULL when they do not fit in the current chunk.
 * Intended cost: an add and a mask, three compares, a store. Before the first chunk
 * bump == end == 0, so nothing fits; a huge align wraps p below bump, which is caught.
 */
static inline void *arena_bump(mp_arena *a, size_t n, size_t align)
{
    uintptr_t p = mpi_align_up(a->fast.bump, align);
    if (MP_UNLIKELY(p < a->fast.bump || p > a->fast.end || n > a->fast.end - p))
        return NULL;
    a->fast.bump = p + n;
    return (void *)p;
}

/*
 * The bytes a chunk needs to hold n bytes aligned to align after its header, whatever the chunk's
 * address (a multiple of the page size): align_up(HDR, align) is the worst offset for any align
 * (for align above the page, a chunk that happens to be aligned to it puts the block a whole align
 * in). Rounded up to the page; 0 when that passes PTRDIFF_MAX (no object may be larger).
 */
static size_t arena_chunk_need(size_t n, size_t align)
{
    size_t first = (size_t)mpi_align_up(ARENA_HDR, align);
    if (first < ARENA_HDR || first > PTRDIFF_MAX || n > PTRDIFF_MAX - first)
        return 0;
    return (size_t)mpi_align_up(first + n, mpi_os_page_size());
}

/* The first kept chunk (after the cursor's) of at least need bytes, moved to just after the
 * cursor's chunk; NULL when there is none. O(kept chunks). */
static arena_chunk *arena_take_kept(mp_arena *a, size_t need)
{
    if (a->cur == NULL)
        return NULL;
    for (arena_chunk *prev = a->cur, *c = prev->next; c != NULL; prev = c, c = c->next) {
        if (c->size >= need) {
            prev->next = c->next;
            c->next = a->cur->next;
            a->cur->next = c;
            return c;
        }
    }
    return NULL;
}

/* Bytes of the kept chunks. O(kept chunks). */
static uint64_t arena_kept_bytes(const mp_arena *a)
{
    uint64_t n = 0;
    for (const arena_chunk *c = a->cur != NULL ? a->cur->next : NULL; c != NULL; c = c->next)
        n += c->size;
    return n;
}

/* Gives back kept chunks, first first, until as many bytes as a new chunk of `size` have gone back
 * (the bound in the file header) and the new chunk fits in the capacity, or none is left. */
static void arena_release_kept(mp_arena *a, size_t size)
{
    uint64_t given = 0;
    while (a->cur != NULL && a->cur->next != NULL &&
           (given < size || size > a->cap_max - a->reserved)) {
        arena_chunk *c = a->cur->next;
        a->cur->next = c->next;
        given += c->size;
        arena_unmap(a, c);
    }
}

/*
 * Maps a chunk of at least need bytes (a page multiple) and links it just after the cursor's chunk:
 * chunk_size bytes, or need when that is more; less (but at least need) when the capacity leaves
 * less room. Kept chunks are given back first (the file header says why). NULL when the capacity
 * or the source refuses; the source's contract is checked (page-aligned memory).
 */
static arena_chunk *arena_map_chunk(mp_arena *a, size_t need)
{
    size_t page = mpi_os_page_size();
    size_t size = need > a->chunk_size ? need : a->chunk_size;
    if (a->cap_max != UINT64_MAX) {
        uint64_t room = a->cap_max - (a->reserved - arena_kept_bytes(a));
        if (need > room)
            return NULL;
        if (size > room)
            size = (size_t)(room & ~(uint64_t)(page - 1)); /* >= need: need is a page multiple */
    }
    arena_release_kept(a, size);
    arena_chunk *c = mpi_source_map(&a->source, size, page);
    if (c == NULL)
        return NULL;
    c->size = size;
    if (a->cur != NULL) {
        c->next = a->cur->next;
        a->cur->next = c;
    } else {
        c->next = NULL;
        a->first = c;
    }
    a->reserved += size;
    a->nchunks++;
    return c;
}

/* Moves the cursor to the start of chunk c, the one after the cursor's (or the first). */
static void arena_enter(mp_arena *a, arena_chunk *c)
{
    c->before = arena_used(a);
    if (a->cur != NULL)
        a->cur->used = (size_t)(a->fast.bump - (uintptr_t)a->cur);
    arena_point(a, c, ARENA_HDR);
}

/* Moves the cursor to a chunk of at least need bytes: a kept one, else a new one. */
static bool arena_advance(mp_arena *a, size_t need)
{
    if ((a->state & ARENA_IN_BUFFER) != 0)
        return false;
    arena_chunk *c = arena_take_kept(a, need);
    if (c == NULL && (c = arena_map_chunk(a, need)) == NULL)
        return false;
    arena_enter(a, c);
    return true;
}

static void *arena_fail(mp_arena *a, int err)
{
    a->failed_allocs++;
    errno = err;
    return NULL;
}

/* Everything the bump could not do: a NULL arena, a bad alignment, a new chunk. errno is kept on
 * success whatever the source does to it. */
static MP_NOINLINE void *arena_alloc_slow(mp_arena *a, size_t size, size_t align)
{
    if (a == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if (!mpi_is_pow2(align))
        return arena_fail(a, EINVAL);
    size_t n = size + (size == 0);
    size_t need = arena_chunk_need(n, align);
    int saved = errno;
    if (need == 0 || !arena_advance(a, need))
        return arena_fail(a, ENOMEM);
    errno = saved;
    void *p = arena_bump(a, n, align);
    mp_assert(p != NULL); /* the chunk holds need bytes, which fit the request at any address */
    a->fast.allocs++;
    if (MP_DEBUG >= 2)
        mp_assert(arena_is_valid(a));
    return p;
}

/* An alloc in the library: the bump, one unlikely branch to the slow path. size 0 takes one byte,
 * so every pointer is unique; SIZE_MAX stays itself and fails. The header's inline
 * mp_arena_alloc() is the same bump for the default alignment. */
static inline void *arena_alloc(mp_arena *a, size_t size, size_t align)
{
    void *p;
    if (MP_UNLIKELY(a == NULL || !mpi_is_pow2(align) ||
                    (p = arena_bump(a, size + (size == 0), align)) == NULL))
        return arena_alloc_slow(a, size, align);
    a->fast.allocs++;
    return p;
}

/* Also the exported mp_arena_alloc() of MP_NO_INLINE (noinline.c), so the whole operation. */
void *mp_arena_alloc_slow(mp_arena *arena, size_t size)
{
    return arena_alloc(arena, size, ARENA_ALIGN);
}

void *mp_arena_alloc_aligned(mp_arena *arena, size_t size, size_t align)
{
    return arena_alloc(arena, size, align);
}

/* ================================================================================================
 * Marks, rewind, reset
 * ============================================================================================== */

/* Runs and pops the cleanups whose records end after `used` bytes (all for 0), newest first. Each
 * is popped before it runs, so it is never run twice. */
static void arena_run_cleanups(mp_arena *a, uint64_t used)
{
    while (a->cleanups != NULL && a->cleanups->end > used) {
        arena_cleanup *c = a->cleanups;
        a->cleanups = c->prev;
        c->fn(c->ctx);
    }
}

/* Bytes of the chunks from the first through cur (0 before the first chunk). O(chunks). */
static uint64_t arena_span_bytes(const mp_arena *a)
{
    uint64_t n = 0;
    for (const arena_chunk *c = a->first; c != NULL; c = c->next) {
        n += c->size;
        if (c == a->cur)
            break;
    }
    return n;
}

/* Gives back the chunks after the cursor from the first that would take the chunks held past
 * `bound` bytes on: what a reset or a rewind keeps (mp_arena_opts.max_keep). */
static void arena_keep_within(mp_arena *a, uint64_t bound)
{
    if (a->cur == NULL)
        return;
    uint64_t held = arena_span_bytes(a);
    arena_chunk *last = a->cur;
    while (last->next != NULL && held <= bound && last->next->size <= bound - held) {
        held += last->next->size;
        last = last->next;
    }
    while (last->next != NULL) {
        arena_chunk *c = last->next;
        last->next = c->next;
        arena_unmap(a, c);
    }
}

/* The bound of a reset or rewind from the cursor where it stands now: max_keep, or by default the
 * chunks the arena spans up to it. */
static uint64_t arena_keep_bound(const mp_arena *a)
{
    return a->max_keep != 0 ? a->max_keep : arena_span_bytes(a);
}

/*
 * The cursor's position. At the start (nothing allocated since creation, the last reset or a rewind
 * to the start) it is {arena, 0}, whether or not there is a chunk yet: one name for one position,
 * valid forever (a chunk is never at the arena's own address, so it cannot be mistaken for one).
 */
mp_arena_pos mp_arena_mark(mp_arena *arena)
{
    if (arena == NULL)
        return (mp_arena_pos){NULL, 0};
    if (arena->cur == NULL || (arena->cur == arena->first && arena_used(arena) == 0))
        return (mp_arena_pos){arena, 0};
    return (mp_arena_pos){arena->cur, (size_t)(arena->fast.bump - (uintptr_t)arena->cur)};
}

/* Chunk `chunk` if it is cur or before it; NULL otherwise. Compares addresses only, so a stale
 * mark into a chunk given back is never dereferenced. O(chunks up to the cursor). */
static arena_chunk *arena_find(const mp_arena *a, const void *chunk)
{
    for (arena_chunk *c = a->first; c != NULL; c = c->next) {
        if (c == chunk)
            return c;
        if (c == a->cur)
            break;
    }
    return NULL;
}

/* What a rewind and a reset share: runs the cleanups added after offset `used` of chunk c (c is
 * NULL while the arena has no chunk), counts the call, moves the cursor there and keeps the chunks
 * after it within the bound. */
static void arena_back(mp_arena *a, arena_chunk *c, size_t used, uint64_t *count)
{
    arena_run_cleanups(a, c != NULL ? c->before + (used - ARENA_HDR) : 0);
    arena_keep_peak(a);
    (*count)++;
    uint64_t bound = arena_keep_bound(a);
    if (c != NULL)
        arena_point(a, c, used);
    int saved = errno;
    arena_keep_within(a, bound);
    errno = saved;
    if (MP_DEBUG >= 2)
        mp_assert(arena_is_valid(a));
}

/*
 * Validates pos as a position at or before the cursor, then moves the cursor there. What can be
 * checked is only that: a stale mark (from before a reset, or rewound past) that the arena has
 * grown past again is a position at or before the cursor and is accepted. Catching it would take
 * a generation count in mp_arena_pos, which has no room for one.
 */
int mp_arena_rewind(mp_arena *arena, mp_arena_pos pos)
{
    if (arena == NULL)
        return EINVAL;
    arena_chunk *c = arena->first;
    size_t used = ARENA_HDR;
    if (pos.chunk != (void *)arena || pos.used != 0) {
        c = arena_find(arena, pos.chunk);
        if (c == NULL || pos.used < ARENA_HDR || pos.used > arena_chunk_used(arena, c))
            return EINVAL;
        used = pos.used;
    }
    arena_back(arena, c, used, &arena->rewinds);
    return 0;
}

/* Runs the cleanups, puts the cursor back at the start of the first chunk and keeps the chunks
 * after it within the bound; a buffer arena just goes back to its start. */
void mp_arena_reset(mp_arena *arena)
{
    if (arena != NULL)
        arena_back(arena, arena->first, ARENA_HDR, &arena->resets);
}

/* The kept chunks, and the first one when nothing is allocated (the arena is then as created). */
size_t mp_arena_trim(mp_arena *arena)
{
    if (arena == NULL || arena->cur == NULL || (arena->state & ARENA_IN_BUFFER) != 0)
        return 0;
    int saved = errno;
    uint64_t before = arena->reserved;
    arena_keep_within(arena, 0);
    if (arena->cur == arena->first && arena_used(arena) == 0) {
        arena_unmap(arena, arena->first);
        arena->first = arena->cur = NULL;
        arena->fast.bump = arena->fast.end = 0;
    }
    errno = saved;
    if (MP_DEBUG >= 2)
        mp_assert(arena_is_valid(arena));
    return (size_t)(before - arena->reserved);
}

/* The record is an allocation like any other (counted, freed by the rewind past it); `end` is
 * bytes_used just after it, so a rewind to a mark taken before it (at or below end - record) runs
 * it and one taken after it (at or above end) does not. */
int mp_arena_add_cleanup(mp_arena *arena, void (*fn)(void *ctx), void *ctx)
{
    if (arena == NULL || fn == NULL)
        return EINVAL;
    int saved = errno;
    arena_cleanup *c = arena_alloc(arena, sizeof *c, alignof(arena_cleanup));
    if (c == NULL) {
        errno = saved;
        return ENOMEM;
    }
    *c = (arena_cleanup){arena->cleanups, fn, ctx, arena_used(arena)};
    arena->cleanups = c;
    return 0;
}

/* ================================================================================================
 * Statistics and the invariant validator
 * ============================================================================================== */

int mp_arena_stats(const mp_arena *arena, struct mp_arena_stats *out)
{
    if (arena == NULL || out == NULL)
        return EINVAL;
    uint64_t used = arena_used(arena);
    memset(out, 0, sizeof *out);
    memcpy(out->name, arena->name, sizeof out->name);
    out->allocs = arena->fast.allocs;
    out->failed_allocs = arena->failed_allocs;
    out->bytes_used = used;
    out->bytes_peak = used > arena->peak_before ? used : arena->peak_before;
    out->bytes_reserved = arena->reserved;
    out->chunks = arena->nchunks;
    out->resets = arena->resets;
    out->rewinds = arena->rewinds;
    out->bytes_kept = arena_kept_bytes(arena);
    return 0;
}

/* The cursor lies in its chunk, and the chunks up to it chain their `before` counts. */
static bool arena_cursor_is_valid(const mp_arena *a)
{
    if (a->cur == NULL)
        return a->first == NULL && a->fast.bump == 0 && a->fast.end == 0;
    uintptr_t base = (uintptr_t)a->cur;
    if (a->first == NULL || a->first->before != 0 || a->fast.end != base + a->cur->size ||
        a->fast.bump < base + ARENA_HDR || a->fast.bump > a->fast.end)
        return false;
    for (const arena_chunk *c = a->first; c != a->cur; c = c->next) {
        if (c == NULL || c->used < ARENA_HDR || c->used > c->size ||
            c->next->before != c->before + (c->used - ARENA_HDR))
            return false;
    }
    return true;
}

/* Every invariant of the file header. O(chunks). */
static bool arena_is_valid(const mp_arena *a)
{
    uint64_t n = 0, bytes = a->meta_size;
    bool seen_cur = a->cur == NULL;
    for (const arena_chunk *c = a->first; c != NULL; c = c->next) {
        if (++n > a->nchunks || c->size <= ARENA_HDR)
            return false;
        seen_cur = seen_cur || c == a->cur;
        bytes += c->size;
    }
    if ((a->state & ARENA_IN_BUFFER) != 0)
        bytes = a->reserved; /* the buffer's size, bookkeeping included */
    return seen_cur && n == a->nchunks && bytes == a->reserved && a->reserved <= a->cap_max &&
           arena_cursor_is_valid(a);
}

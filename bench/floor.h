/*
 * floor.h: "the floor", the free-list pool of the original design, written the way its C++ class
 * is.
 *
 * The benchmark measures mempool against this and nothing else: it is the least a fixed-size pool
 * can do, so a ratio near 1 means mempool's extras (growth, statistics, capacity, the checks of
 * its contract) cost next to nothing. Like the class it copies:
 *   - the object is a struct reached through a pointer, holding the free-list head;
 *   - one region, taken at creation and cut into `count` equal blocks of `stride` bytes;
 *   - every block's link is written at creation, so creating touches the whole region
 *     (O(count) time, and the whole region is resident from the start);
 *   - alloc and free are static inline: a pop and a push on the list, the link being the block's
 *     first word; alloc returns NULL when the list is empty, free checks nothing.
 *
 *     region:  [blk 0][blk 1][blk 2] ... [blk count-1]
 *     links:    0 -> 1 -> 2 -> ... -> count-1 -> NULL        head = blk 0
 *
 * Invariant: free blocks + blocks handed out == count; the list holds each free block once.
 * It keeps no statistics and never grows: both are what mempool adds, and what the ratios price.
 */
#ifndef MP_BENCH_FLOOR_H
#define MP_BENCH_FLOOR_H

#include <stddef.h>
#include <stdlib.h>

typedef struct floor_pool {
    void *head;    /* the free list; a block's first word links to the next free block */
    char *region;  /* count * stride bytes, the blocks */
    size_t stride; /* bytes between two blocks (>= sizeof(void *), a multiple of it) */
    size_t count;  /* blocks in the region */
} floor_pool;

/* The region's alignment: a page, so blocks sit on cache lines as mempool's do (its chunks are
 * page-aligned) and neither side is charged for a block straddling two lines. */
#define FLOOR_ALIGN 4096u

/* Creates a pool of `count` blocks of `block_size` bytes, linking every block. NULL if out of
 * memory or the sizes overflow. The struct and the region come from the C library, as new[] would
 * give them. */
static inline floor_pool *floor_pool_create(size_t block_size, size_t count)
{
    size_t stride = (block_size + sizeof(void *) - 1) / sizeof(void *) * sizeof(void *);
    if (count == 0 || stride > ((size_t)-1 - FLOOR_ALIGN) / count)
        return NULL;
    /* C11 aligned_alloc wants the size to be a multiple of the alignment. */
    size_t bytes = (stride * count + FLOOR_ALIGN - 1) / FLOOR_ALIGN * FLOOR_ALIGN;
    floor_pool *fp = malloc(sizeof *fp);
    char *region = aligned_alloc(FLOOR_ALIGN, bytes);
    if (fp == NULL || region == NULL) {
        free(fp);
        free(region);
        return NULL;
    }
    for (size_t i = 0; i + 1 < count; i++)
        *(void **)(region + i * stride) = region + (i + 1) * stride;
    *(void **)(region + (count - 1) * stride) = NULL;
    fp->head = region;
    fp->region = region;
    fp->stride = stride;
    fp->count = count;
    return fp;
}

static inline void floor_pool_destroy(floor_pool *fp)
{
    if (fp != NULL)
        free(fp->region);
    free(fp);
}

/* Pop: a load, a test, a load, a store. NULL when every block is handed out. */
static inline void *floor_pool_alloc(floor_pool *fp)
{
    void *block = fp->head;
    if (block == NULL)
        return NULL;
    fp->head = *(void **)block;
    return block;
}

/* Push: a load and two stores. `block` must come from this pool and be handed out. */
static inline void floor_pool_free(floor_pool *fp, void *block)
{
    *(void **)block = fp->head;
    fp->head = block;
}

#endif /* MP_BENCH_FLOOR_H */

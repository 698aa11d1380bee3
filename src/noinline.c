/*
 * noinline.c: mp_pool_alloc(), mp_pool_free(), mp_pool_handle(), mp_pool_deref() and
 * mp_arena_alloc() as exported functions, for programs built with MP_NO_INLINE (mempool.h,
 * "Internals"): other compilers, bindings from other languages, debugging. Each slow function
 * already does the whole operation for any pool or arena, so these only forward to it (a tail
 * call: a checked pool still records the caller's return address as the allocation site);
 * mp_pool_deref() is the inline deref itself.
 * This file must see the header without its inline path, so the one-file build (all.c) leaves it
 * out.
 */
#define MP_NO_INLINE
#include "mempool.h"

void *mp_pool_alloc(mp_pool *pool)
{
    return mp_pool_alloc_slow(pool);
}

void mp_pool_free(mp_pool *pool, void *block)
{
    mp_pool_free_slow(pool, block);
}

mp_handle mp_pool_handle(const mp_pool *pool, const void *block)
{
    return mp_pool_handle_slow(pool, block);
}

void *mp_pool_deref(const mp_pool *pool, mp_handle handle)
{
    return mpi_pool_deref(pool, handle);
}

void *mp_arena_alloc(mp_arena *arena, size_t size)
{
    return mp_arena_alloc_slow(arena, size);
}

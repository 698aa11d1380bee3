/*
 * paths.c: runs each path of mp_pool_alloc() and mp_pool_free() on a plain pool in a buffer once,
 * between two calls of path_mark(), so that an instruction trace of QEMU (run.sh, "paths") counts
 * the instructions each takes: the README's worst-case figures. Each path ends in a volatile store,
 * so the compiler keeps its result.
 */
#include "mempool.h"
#include "semihost.h"

#include <stdint.h>

#define BLOCK 24
static _Alignas(8) unsigned char buffer[1024], twin[1024], small[1024];
void *volatile sink;

/* The marks that the trace is cut at: `name` ends the path before it and names the next. */
__attribute__((noinline)) void path_mark(const char *name);
void path_mark(const char *name)
{
    __asm__ volatile("" : : "r"(name) : "memory");
}

int main(void)
{
    mp_pool *pool = mp_pool_create(
        &(mp_pool_opts){.block_size = BLOCK, .buffer = buffer, .buffer_size = sizeof buffer});
    mp_pool *capped = mp_pool_create(&(mp_pool_opts){
        .block_size = BLOCK, .capacity = 2, .buffer = small, .buffer_size = sizeof small});
    /* The blocks the buffer holds, counted on a twin, so that `pool` can be carved to its end by
     * the inline path alone and its next alloc folds them all. */
    mp_pool *counter = mp_pool_create(
        &(mp_pool_opts){.block_size = BLOCK, .buffer = twin, .buffer_size = sizeof twin});
    if (pool == NULL || capped == NULL || counter == NULL) {
        semihost_puts("paths: a pool could not be created\n");
        return 1;
    }
    unsigned n = 0;
    while (mp_pool_alloc(counter) != NULL)
        n++;
    path_mark("empty");
    path_mark("alloc: bump (inline carve)");
    void *a = mp_pool_alloc(pool);
    sink = a;
    path_mark("free: push");
    mp_pool_free(pool, a);
    path_mark("alloc: pop");
    sink = mp_pool_alloc(pool);
    path_mark("free: NULL");
    mp_pool_free(pool, NULL);
    path_mark("end");
    for (unsigned i = 1; i < n; i++) /* the buffer carved to its end inline (one taken above) */
        sink = mp_pool_alloc(pool);
    mp_pool_free(capped, mp_pool_alloc(capped));
    sink = mp_pool_alloc(capped);
    sink = mp_pool_alloc(capped);
    path_mark("alloc: buffer used up (fold the inline carves, fail with ENOMEM)");
    sink = mp_pool_alloc(pool);
    path_mark("alloc: used up again (fail with ENOMEM)");
    sink = mp_pool_alloc(pool);
    path_mark("alloc: capacity reached (fail with ENOMEM)");
    sink = mp_pool_alloc(capped);
    path_mark("end");
    semihost_puts("paths done\n");
    return 0;
}

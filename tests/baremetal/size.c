/*
 * size.c: the least program that uses a fixed-size pool in a buffer (create, alloc, free,
 * destroy), linked with --gc-sections: the library code it pulls in is the pool's flash cost that
 * run.sh reports.
 */
#include "mempool.h"

static _Alignas(8) unsigned char buffer[4096];
void *volatile sink;
int main(void);

int main(void)
{
    mp_pool *pool = mp_pool_create(
        &(mp_pool_opts){.block_size = 32, .buffer = buffer, .buffer_size = sizeof buffer});
    void *block = mp_pool_alloc(pool);
    sink = block;
    mp_pool_free(pool, block);
    mp_pool_destroy(pool);
    return 0;
}

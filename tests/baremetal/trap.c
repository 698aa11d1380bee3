/*
 * trap.c: with no error handler installed, a checked pool's report on bare metal traps (there is
 * no stderr to print to, no abort()): the double free below must end the program in the fault
 * handler (startup.c), never reach the line after it. run.sh expects the fault.
 */
#include "mempool.h"
#include "semihost.h"

static _Alignas(8) unsigned char buffer[2048];

int main(void)
{
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){
        .block_size = 16, .flags = MP_CHECKED, .buffer = buffer, .buffer_size = sizeof buffer});
    void *block = mp_pool_alloc(pool);
    mp_pool_free(pool, block);
    mp_pool_free(pool, block);
    semihost_puts("trap: the double free was not stopped\n");
    return 1;
}

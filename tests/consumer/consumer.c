/* Built against an installed mempool by scripts/test.sh: proves the headers, library, CMake package
 * and pkg-config file are installed and usable. */
#include <mempool.h>

int main(void)
{
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 64, .name = "consumer"});
    void *p = mp_pool_alloc(pool);
    if (p == NULL || !mp_pool_owns(pool, p))
        return 1;
    mp_pool_free(pool, p);
    mp_stats s;
    int bad = mp_pool_stats(pool, &s) != 0 || s.allocs != 1 || s.frees != 1 || !mp_pool_check(pool);
    mp_pool_destroy(pool);
    puts(bad ? "consumer: FAILED" : "consumer: ok");
    return bad;
}

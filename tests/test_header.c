/*
 * test_header.c: mempool.h as other builds see it. CMake compiles this file twice: as C99 with
 * MP_NO_INLINE (no thread-locals, no builtins: the exported functions), and, on x86-64, with
 * -masm=intel, where the inline path's assembly must take the Intel dialect. Both run a plain and a
 * thread-safe pool and check that the counts the fast path keeps come out exact.
 */
#include "mempool.h"
#include "test.h"

/* n allocations and frees in a pool of the given flags; the stats count each. */
static void run_pool(unsigned flags, const char *what)
{
    mp_pool_opts opts = {0};
    opts.block_size = 24;
    opts.flags = flags;
    mp_pool *pool = mp_pool_create(&opts);
    if (!CHECK(what, pool != NULL))
        return;
    void *blocks[100];
    int distinct = 1;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 100; i++) {
            blocks[i] = mp_pool_alloc(pool);
            distinct &= blocks[i] != NULL && (i == 0 || blocks[i] != blocks[i - 1]);
        }
        for (int i = 0; i < 100; i++)
            mp_pool_free(pool, blocks[i]);
    }
    mp_stats st;
    CHECK("every alloc gives a block", distinct);
    CHECK("stats of the pool", mp_pool_stats(pool, &st) == 0);
    CHECK("allocs are counted exactly", st.allocs == 300);
    CHECK("frees are counted exactly", st.frees == 300 && st.blocks_in_use == 0);
    CHECK("the pool is valid", mp_pool_check(pool));
    mp_pool_destroy(pool);
}

int main(void)
{
    run_pool(0, "plain pool");
    run_pool(MP_THREAD_SAFE, "thread-safe pool");
    CHECK("NULL pool: alloc gives NULL", mp_pool_alloc(NULL) == NULL);
    mp_pool_free(NULL, NULL);
    return TEST_DONE();
}

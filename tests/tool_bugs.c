/*
 * tool_bugs.c: one deliberate bug inside a pool per run, for tests/tool_check.sh to show that the
 * tools see it: AddressSanitizer in a -fsanitize=address build (freed blocks are poisoned), and
 * Valgrind's memcheck in a MEMPOOL_VALGRIND=ON build (blocks are announced as heap blocks).
 *
 * Usage: tool_bugs MODE, where MODE is
 *   write-after-free   writes into a freed pool block
 *   read-after-free    reads a freed pool block
 *   uninit-read        branches on a byte of a fresh block that nobody wrote
 *   leak               loses the only pointer to a live block and exits without destroying the pool
 *   heap-after-free    writes into a freed mp_malloc block (a heap class pool's block)
 *   clean              the same calls without a bug (the tools must stay silent)
 * Exits 0 when the bug did not stop it (the tool, if any, reports it on stderr).
 */
#include "mempool.h"

#include <stdio.h>
#include <string.h>

/* Read and written through a volatile pointer so the compiler keeps the bad access. */
static volatile char sink;

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    mp_pool *pool = mp_pool_create(&(mp_pool_opts){.block_size = 64, .name = "tool-bugs"});
    if (pool == NULL)
        return 2;
    char *volatile p = mp_pool_alloc(pool);
    char *volatile q = mp_pool_alloc(pool); /* a live neighbour: the bug is inside the pool */
    if (p == NULL || q == NULL)
        return 2;
    memset(q, 1, 64);
    if (strcmp(mode, "write-after-free") == 0) {
        mp_pool_free(pool, p);
        ((volatile char *)p)[16] = 7;
    } else if (strcmp(mode, "read-after-free") == 0) {
        mp_pool_free(pool, p);
        sink = ((volatile char *)p)[16];
    } else if (strcmp(mode, "uninit-read") == 0) {
        if (p[40] == 42) /* p was never written */
            puts("forty-two");
        mp_pool_free(pool, p);
    } else if (strcmp(mode, "leak") == 0) {
        p = NULL; /* the block is lost; the pool stays, as a long-lived program's would */
        mp_pool_free(pool, q);
        return 0;
    } else if (strcmp(mode, "heap-after-free") == 0) {
        char *volatile h = mp_malloc(100);
        if (h == NULL)
            return 2;
        mp_free(h);
        ((volatile char *)h)[20] = 7;
        mp_pool_free(pool, p);
    } else if (strcmp(mode, "clean") == 0) {
        memset(p, 2, 64);
        sink = p[40];
        mp_pool_free(pool, p);
        char *volatile h = mp_malloc(100);
        if (h == NULL)
            return 2;
        h[20] = 7;
        mp_free(h);
    } else {
        fprintf(stderr, "usage: tool_bugs write-after-free|read-after-free|uninit-read|leak|"
                        "heap-after-free|clean\n");
        return 2;
    }
    mp_pool_free(pool, q);
    mp_pool_destroy(pool);
    return 0;
}

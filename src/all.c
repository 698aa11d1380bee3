/*
 * all.c: the one-file build. Compile this file alone (cc -c -Iinclude src/all.c) to drop mempool
 * into a tree without its build system; it is the same code as the library.
 */
#include "arena.c"
#include "check.c"
#include "heap.c"
#include "os.c"
#include "pool.c"
#include "stats.c"
#include "tcache.c"
/* noinline.c is not included: it needs the header without its inline path (see that file). */

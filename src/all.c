/*
 * all.c: the one-file build. Compile this file alone (cc -c -Iinclude src/all.c) to drop mempool
 * into a tree without its build system; it is the same code as the library.
 */
/* os.c comes first, for the feature macros it defines before any header: not sorted. */
/* clang-format off */
#include "os.c"
#include "pool.c"
#include "stats.c"
#include "check.c"
#if !MP_FREESTANDING /* threads and the heap need the system (config.h) */
#include "tcache.c"
#include "heap.c"
#endif
#include "arena.c"
#include "handles.c"
/* clang-format on */
/* noinline.c is not included: it needs the header without its inline path (see that file). */

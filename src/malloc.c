/*
 * malloc.c: the drop-in malloc. libmempool_malloc.so (LD_PRELOAD) and libmempool_malloc.a (linked
 * ahead of the C library) define the C library's allocation functions over the process-wide heap,
 * the one behind mp_malloc(), so blocks from malloc and from mp_malloc are one family: any of them
 * may be freed through any free (free, mp_free, sized and aligned delete), but for blocks aligned
 * beyond the heap's reach (below), which only the drop-in's functions know.
 *
 * Contracts are the C standard's and POSIX's, errno included, as glibc implements them where the
 * standards leave a choice: malloc(0) returns a unique block, realloc(p, 0) frees p and returns
 * NULL, memalign rounds a non-power-of-two alignment up, free preserves errno.
 *
 * Early start: the heap makes itself on first use (once, mmap, getenv; no call that may
 * allocate), so calls made before constructors run, from the dynamic loader, dlsym or TLS set-up,
 * are served like any other. The options (below) are read by a constructor, once.
 *
 * Alignments above the heap's largest (1 MiB) are served by heap.c's table of over-aligned blocks
 * (mpi_heap_huge_*), each a mapping of its own at a multiple of 2 MiB, where no heap block starts,
 * so free, realloc and malloc_usable_size look at the table only for such addresses.
 *
 * Foreign pointers: free finds a block's pool by masking its address, so a pointer this library
 * did not hand out is undefined in the default mode, but for two kinds that cost nothing to tell
 * (one unlikely branch on free's path, taken for NULL too): a misaligned pointer (not a multiple of
 * 8, which every block is), and one at a multiple of 2 MiB that is not on the table; both are
 * reported as invalid frees and abort. MEMPOOL_CHECKED=1 makes the heap a checked one, which
 * reports any pointer that is not its own (see mp_heap_free()).
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* glibc's internal names, which some programs and libraries call directly. */
void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void __libc_free(void *p);
void __libc_cfree(void *p);
void *__libc_memalign(size_t align, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);
int __posix_memalign(void **out, size_t align, size_t size);
void cfree(void *p);

/* ================================================================================================
 * Options from the environment
 * ============================================================================================== */

enum { SHOW_NONE, SHOW_TEXT, SHOW_JSON };
static int show_stats = SHOW_NONE;
/* Where the stats go: a copy of stderr made at start, since some programs close stderr before they
 * exit (coreutils' close_stdout). */
static int stats_fd = STDERR_FILENO;

extern char **environ;

static void write_all(int fd, const char *text, size_t len)
{
    while (len != 0) {
        ssize_t n = write(fd, text, len);
        if (n <= 0)
            return;
        text += n;
        len -= (size_t)n;
    }
}

/* The options, by their OPT_ indexes; their values are parsed by os.c's one rule. */
static const mpi_option show_stats_option = {
    "SHOW_STATS", {"0", "1", "json"}, {"no stats", "stats at exit, text", "stats at exit, JSON"}};
static const mpi_option verbose_option = {
    "VERBOSE", {"0", "1", NULL}, {"quiet", "say what was read", NULL}};
enum { OPT_SHOW_STATS, OPT_CHECKED, OPT_VERBOSE };
static const mpi_option *const options[] = {[OPT_SHOW_STATS] = &show_stats_option,
                                            [OPT_CHECKED] = &mpi_option_checked,
                                            [OPT_VERBOSE] = &verbose_option};
#define NOPTIONS (sizeof options / sizeof options[0])

/* The index in options[] of the option `var` ("NAME=value" after MEMPOOL_) names, or -1. */
static int option_find(const char *var)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        size_t len = strlen(options[i]->name);
        if (strncmp(var, options[i]->name, len) == 0 && var[len] == '=')
            return (int)i;
    }
    return -1;
}

/* Reads every MEMPOOL_ variable once; an unknown name or a bad value is said once, never fatal.
 * MEMPOOL_CHECKED is the heap's: it reads the variable when it is made (usually earlier) and says
 * a bad value itself, so here it is only parsed, by the same rule, for MEMPOOL_VERBOSE. */
static void options_read(void)
{
    char line[512];
    int values[NOPTIONS] = {0};
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, "MEMPOOL_", 8) != 0)
            continue;
        const char *var = *e + 8;
        int i = option_find(var);
        if (i < 0) {
            snprintf(line, sizeof line, "mempool: unknown option %.200s (ignored)", *e);
            mpi_os_error_line(line);
            continue;
        }
        const char *value = var + strlen(options[i]->name) + 1;
        int v = mpi_option_value(options[i], value);
        if (v < 0 && i != OPT_CHECKED)
            mpi_option_say_bad(options[i], value);
        values[i] = v < 0 ? 0 : v;
    }
    show_stats = values[OPT_SHOW_STATS];
    if (show_stats != SHOW_NONE) {
        int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
        stats_fd = fd >= 0 ? fd : STDERR_FILENO;
    }
    if (values[OPT_VERBOSE] == 1) {
        for (size_t i = 0; i < NOPTIONS; i++) {
            snprintf(line, sizeof line, "mempool: MEMPOOL_%s=%s (%s)", options[i]->name,
                     options[i]->values[values[i]], options[i]->meaning[values[i]]);
            mpi_os_error_line(line);
        }
    }
}

static void write_stats(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    write_all(stats_fd, text, len);
}

/* MEMPOOL_SHOW_STATS: the heap's statistics on stderr when the program exits. */
static void stats_at_exit(void)
{
    static struct mp_heap_stats s; /* large: not on a stack that may be small */
    mp_heap *heap = mp_default_heap();
    if (show_stats == SHOW_NONE || heap == NULL || mp_heap_stats(heap, &s) != 0)
        return;
    char head[64];
    snprintf(head, sizeof head, "mempool: stats at exit (pid %ld)\n", (long)getpid());
    write_stats(NULL, head, strlen(head));
    mp_heap_stats_write(&s, show_stats == SHOW_JSON ? MP_FORMAT_JSON : MP_FORMAT_TEXT, write_stats,
                        NULL);
}

__attribute__((constructor)) static void malloc_start(void)
{
    options_read();
    (void)mp_default_heap();
}

__attribute__((destructor)) static void malloc_end(void)
{
    int err = errno;
    stats_at_exit();
    errno = err;
}

/* Whether p needs a look before the heap's free: NULL, misaligned, or at a multiple of 2 MiB (a
 * block of the heap's table of over-aligned ones, or none). */
static inline bool is_odd(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    return (a & 7) != 0 || (a & (MPI_HEAP_CHUNK - 1)) == 0;
}

/* A block aligned to `align` (a power of two), from the heap or, above its reach, the table. */
static void *aligned(size_t align, size_t size)
{
    return align > MPI_HEAP_MAX_ALIGN ? mpi_heap_huge_alloc(align, size)
                                      : mp_aligned_alloc(align, size);
}

/* ================================================================================================
 * The C library's functions
 * ============================================================================================== */

/* free() of an odd pointer (is_odd): NULL, a block of the table, or a pointer no block can be,
 * reported as the default error handler does, by aborting. */
static MP_NOINLINE void free_odd(void *p)
{
    if (p == NULL)
        return;
    if (((uintptr_t)p & 7) != 0 || !mpi_heap_huge_free(p))
        mpi_report_as(MP_ERR_INVALID_FREE, "malloc", NULL, p, NULL, 1,
                      ((uintptr_t)p & 7) != 0 ? " (not a block: misaligned)"
                                              : " (not a block: at a 2 MiB boundary)");
}

void *malloc(size_t size)
{
    return mp_malloc(size);
}

/* free() past the cache path; the heap's free may call the system, so errno is kept here. */
static MP_NOINLINE void free_slow(void *p)
{
    if (is_odd(p)) {
        free_odd(p);
        return;
    }
    int err = errno;
    mp_free(p);
    errno = err;
}

void free(void *p)
{
    if (MP_LIKELY(!is_odd(p)) && mpi_heap_free_cached(p))
        return;
    free_slow(p);
}

void cfree(void *p)
{
    free(p);
}

void *calloc(size_t n, size_t size)
{
    return mp_calloc(n, size);
}

/* realloc() of a block of the table (a rare case: moved to an ordinary block). */
static MP_NOINLINE void *realloc_odd(void *p, size_t size)
{
    size_t old = ((uintptr_t)p & 7) == 0 ? mpi_heap_huge_size(p) : 0;
    if (old == 0) {
        free_odd(p); /* reports it */
        errno = EINVAL;
        return NULL;
    }
    if (size == 0) {
        free(p);
        return NULL;
    }
    void *q = mp_malloc(size);
    if (q != NULL) {
        memcpy(q, p, size < old ? size : old);
        free(p);
    }
    return q;
}

/* realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns NULL (glibc's choice). */
void *realloc(void *p, size_t size)
{
    if (MP_UNLIKELY(is_odd(p)) && p != NULL)
        return realloc_odd(p, size);
    return mp_realloc(p, size);
}

void *reallocarray(void *p, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, n * size);
}

/* POSIX: EINVAL unless align is a power of two multiple of sizeof(void *); errno untouched. */
int posix_memalign(void **out, size_t align, size_t size)
{
    if (align % sizeof(void *) != 0 || !mpi_is_pow2(align))
        return EINVAL;
    int err = errno;
    void *p = aligned(align, size);
    int ret = p != NULL ? 0 : errno;
    errno = err;
    if (p != NULL)
        *out = p;
    return ret;
}

/* C11, as glibc: any power-of-two alignment and any size (no multiple of align demanded); EINVAL
 * for any other alignment. */
void *aligned_alloc(size_t align, size_t size)
{
    if (!mpi_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return aligned(align, size);
}

/* An alignment that is not a power of two is rounded up to one (glibc's choice); EINVAL past the
 * largest. */
void *memalign(size_t align, size_t size)
{
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    size_t a = sizeof(void *);
    while (a < align)
        a *= 2;
    return aligned(a, size);
}

void *valloc(size_t size)
{
    return mp_aligned_alloc(mpi_os_page_size(), size);
}

/* valloc, with the size rounded up to whole pages (0 to one page). */
void *pvalloc(size_t size)
{
    size_t page = mpi_os_page_size();
    if (size > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    size_t rounded = size == 0 ? page : (size + page - 1) & ~(page - 1);
    return mp_aligned_alloc(page, rounded);
}

size_t malloc_usable_size(void *p)
{
    if (MP_UNLIKELY(is_odd(p)))
        return ((uintptr_t)p & 7) == 0 && p != NULL ? mpi_heap_huge_size(p) : 0;
    return mp_usable_size(p);
}

/* Gives back every wholly free chunk and the cached large blocks; `pad` is ignored (the heap
 * keeps no top to shrink to it). 1 when memory went back, 0 if not, as glibc. */
int malloc_trim(size_t pad)
{
    (void)pad;
    int err = errno;
    size_t bytes = mp_heap_trim(mp_default_heap());
    errno = err;
    return bytes != 0;
}

void *__libc_malloc(size_t size)
{
    return malloc(size);
}

void *__libc_calloc(size_t n, size_t size)
{
    return calloc(n, size);
}

void *__libc_realloc(void *p, size_t size)
{
    return realloc(p, size);
}

void __libc_free(void *p)
{
    free(p);
}

void __libc_cfree(void *p)
{
    free(p);
}

void *__libc_memalign(size_t align, size_t size)
{
    return memalign(align, size);
}

void *__libc_valloc(size_t size)
{
    return valloc(size);
}

void *__libc_pvalloc(size_t size)
{
    return pvalloc(size);
}

int __posix_memalign(void **out, size_t align, size_t size)
{
    return posix_memalign(out, align, size);
}

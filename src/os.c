/*
 * os.c: the system source, the only file that knows the operating system.
 *
 * Contract (mp_source in mempool.h): map(size, align) returns `size` bytes aligned to `align`, or
 * NULL; unmap(p, size) gives back exactly a region that map returned. Memory comes from anonymous
 * private mappings, so it is zero, costs no resident memory until touched, and goes back to the
 * system at once on unmap. An alignment above the page size is had by mapping size + align - page
 * bytes and unmapping the misaligned head and the tail (the technique jemalloc and mimalloc use for
 * their aligned chunks); it costs up to three system calls and no resident memory.
 *
 * The port's checklist, what this file owes the rest, is in docs/design.md ("Porting"). Bare metal
 * (MP_FREESTANDING) has the first half of the file: no system source, no threads.
 */
#define _GNU_SOURCE /* MAP_ANONYMOUS, mremap */
#include "internal.h"

#if MP_FREESTANDING
/* ================================================================================================
 * Bare metal: no system. Pools and arenas take a caller's buffer or mp_source (the system source
 * is refused before it is used, pool.c and arena.c); the thread-safe half of the library is not
 * built, and its entry points below stand in for tcache.c for the pools that remain (never thread
 * safe: mp_pool_create refuses MP_THREAD_SAFE with ENOSYS).
 * ============================================================================================== */

int mp_errno;

/* The page size geometry rounds to (a caller's source, an arena's own page): 4 KiB, as hosted. */
size_t mpi_os_page_size(void)
{
    return 4096;
}

static void *os_map(void *ctx, size_t size, size_t align)
{
    (void)ctx, (void)size, (void)align;
    return NULL;
}

static void os_unmap(void *ctx, void *p, size_t size)
{
    (void)ctx, (void)p, (void)size;
}

const mp_source mpi_os_source = {os_map, os_unmap, NULL};

void mpi_os_populate(void *p, size_t size)
{
    (void)p, (void)size;
}

bool mpi_os_resident(const void *p, size_t size)
{
    (void)p, (void)size;
    return false;
}

bool mpi_os_move(void *from, size_t size, void *to)
{
    (void)from, (void)size, (void)to;
    return false;
}

/* No entropy: only reached by MP_SECURE, which is refused; never 0 all the same. */
uintptr_t mpi_os_random(void)
{
    return (uintptr_t)&mp_errno | 1;
}

/* Every pool's table of thread caches: tsoff is 0 for every pool, and entry 0 stays empty. */
static struct mp_tcache_fast no_caches[1];
struct mp_tcache_fast *mpi_tcaches = no_caches;

int mpi_ts_create(mp_pool *pool, size_t thread_cache, bool caches)
{
    (void)pool, (void)thread_cache, (void)caches;
    return ENOSYS;
}

void mpi_ts_destroy(mp_pool *pool)
{
    (void)pool;
}

void *mpi_ts_alloc(mp_pool *pool, const void *site, bool reuse_only)
{
    (void)pool, (void)site, (void)reuse_only;
    errno = ENOSYS;
    return NULL;
}

void mpi_ts_free(mp_pool *pool, void *block)
{
    (void)pool, (void)block;
}

void mpi_ts_lock(const mp_pool *pool)
{
    (void)pool;
}

void mpi_ts_unlock(const mp_pool *pool)
{
    (void)pool;
}

void mpi_ts_sum(const mp_pool *pool, uint64_t *cached, uint64_t *allocs)
{
    (void)pool;
    *cached = 0;
    *allocs = 0;
}

uint64_t mpi_ts_cached_floor(const mp_pool *pool)
{
    (void)pool;
    return 0;
}

void mpi_ts_reset(mp_pool *pool)
{
    (void)pool;
}

bool mpi_ts_each_cached(const mp_pool *pool,
                        bool (*mark)(const mp_pool *pool, const void *block, void *ctx), void *ctx)
{
    (void)pool, (void)mark, (void)ctx;
    return true;
}

#else /* !MP_FREESTANDING */
/* ================================================================================================
 * A POSIX system (Linux): mmap, madvise, mincore, getrandom; pthreads, getenv, stderr, abort
 * ============================================================================================== */

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#if defined(__GLIBC__) && defined(__has_include)
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define OS_KNOWS_THREADS 1 /* glibc 2.32's __libc_single_threaded */
#endif
#endif
#include <time.h>
#include <unistd.h>

size_t mpi_os_page_size(void)
{
    static _Atomic size_t cached; /* racing first calls store the same value */
    size_t page = atomic_load_explicit(&cached, memory_order_relaxed);
    if (page == 0) {
        long n = sysconf(_SC_PAGESIZE);
        page = n > 0 ? (size_t)n : 4096;
        atomic_store_explicit(&cached, page, memory_order_relaxed);
    }
    return page;
}

static void *os_map(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    size_t page = mpi_os_page_size();
    if (align < page)
        align = page;
    size_t over = size + (align - page);
    if (over < size)
        return NULL;
    int saved = errno; /* a failed mmap is reported as NULL; errno is the caller's to set */
    char *raw = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        errno = saved;
        return NULL;
    }
    uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = start - (uintptr_t)raw;
    size_t tail = over - head - size;
    if (head != 0)
        munmap(raw, head);
    if (tail != 0)
        munmap((char *)start + size, tail);
    return (void *)start;
}

/* Heap chunks (MPI_HEAP_CHUNK bytes at that alignment, one per class at least) are cut from a
 * reservation of RESERVE_CHUNKS of them, mapped once at a multiple of its own size: a chunk then
 * costs no system call (an aligned mapping of its own cost three), and the process's start, which
 * makes a chunk per class it uses, makes a few reservations instead. Each chunk goes back alone
 * (munmap of its range). `reserve_next` is the next chunk to hand out; at a multiple of the
 * reservation's size (or 0) the reservation is used up. Untouched, it costs no resident memory. */
#define RESERVE_CHUNKS 16u
#define RESERVE_SIZE (RESERVE_CHUNKS * MPI_HEAP_CHUNK)
static _Atomic uintptr_t reserve_next;

static void os_unmap(void *ctx, void *p, size_t size);

static void *os_map_chunk(void)
{
    uintptr_t next = atomic_load_explicit(&reserve_next, memory_order_relaxed);
    while (next % RESERVE_SIZE != 0)
        if (atomic_compare_exchange_weak_explicit(&reserve_next, &next, next + MPI_HEAP_CHUNK,
                                                  memory_order_relaxed, memory_order_relaxed))
            return (void *)next;
    char *fresh = os_map(NULL, RESERVE_SIZE, RESERVE_SIZE);
    if (fresh == NULL)
        return os_map(NULL, MPI_HEAP_CHUNK, MPI_HEAP_CHUNK);
    /* A thread that made one at the same time keeps its own: this one's rest goes back. */
    if (!atomic_compare_exchange_strong_explicit(&reserve_next, &next,
                                                 (uintptr_t)fresh + MPI_HEAP_CHUNK,
                                                 memory_order_relaxed, memory_order_relaxed))
        os_unmap(NULL, fresh + MPI_HEAP_CHUNK, RESERVE_SIZE - MPI_HEAP_CHUNK);
    return fresh;
}

static void os_unmap(void *ctx, void *p, size_t size)
{
    (void)ctx;
    int saved = errno;
    munmap(p, size);
    errno = saved;
}

/* One MADV_POPULATE_WRITE call (Linux 5.14) costs less than the faults it saves (docs/design.md,
 * "The heap"). A kernel that
 * does not know it (EINVAL), or a sandbox that refuses it (EPERM, ENOSYS), answers once and is not
 * asked again; a failure to fault the pages in (ENOMEM, EFAULT) leaves them to fault as written. */
void mpi_os_populate(void *p, size_t size)
{
#ifdef MADV_POPULATE_WRITE
    static _Atomic bool unknown;
    if (size == 0 || atomic_load_explicit(&unknown, memory_order_relaxed))
        return;
    int saved = errno;
    if (madvise(p, size, MADV_POPULATE_WRITE) != 0 &&
        (errno == EINVAL || errno == EPERM || errno == ENOSYS))
        atomic_store_explicit(&unknown, true, memory_order_relaxed);
    errno = saved;
#else
    (void)p;
    (void)size;
#endif
}

bool mpi_os_resident(const void *p, size_t size)
{
    unsigned char vec[64];
    size_t page = mpi_os_page_size(), n = size / page;
    if (n > sizeof vec)
        n = sizeof vec; /* the first 64 pages stand for the rest */
    int saved = errno;
    bool all = mincore((void *)p, n * page, vec) == 0;
    for (size_t i = 0; all && i < n; i++)
        all = (vec[i] & 1) != 0;
    errno = saved;
    return all;
}

/* mremap(MREMAP_FIXED) (Linux) moves page table entries: no copy, no fault. Before Linux 6.17 it
 * fails (EFAULT) when the range spans two mappings, as a block gathered from several runs does,
 * but only after unmapping `to`: fresh pages go back there (NOREPLACE: never over another's). */
bool mpi_os_move(void *from, size_t size, void *to)
{
#ifdef MREMAP_FIXED
    int saved = errno;
    bool ok = mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, to) != MAP_FAILED;
#ifdef MAP_FIXED_NOREPLACE
    void *back = ok ? to
                    : mmap(to, size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (back != MAP_FAILED && back != to) /* a system that takes NOREPLACE as a hint */
        munmap(back, size);
#endif
    errno = saved;
    return ok;
#else
    (void)from, (void)size, (void)to;
    return false;
#endif
}

uintptr_t mpi_os_random(void)
{
    uintptr_t r = 0;
    int saved = errno;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        /* mixed in 64 bits and folded, so a 32-bit uintptr_t keeps the seconds too */
        uint64_t mix = (uint64_t)t.tv_nsec * 0x9E3779B97F4A7C15u ^ (uint64_t)t.tv_sec << 32;
        r = (uintptr_t)(mix ^ mix >> 32) ^ (uintptr_t)&r;
    }
    errno = saved;
    return r | 1; /* never 0, which means "no encoding" */
}

static void *os_map_source(void *ctx, size_t size, size_t align)
{
    if (size == MPI_HEAP_CHUNK && align == MPI_HEAP_CHUNK)
        return os_map_chunk();
    return os_map(ctx, size, align);
}

const mp_source mpi_os_source = {os_map_source, os_unmap, NULL};

/* ------------------------------------------------------------------------------------------------
 * Threads (pthreads), the environment and stopping
 * ---------------------------------------------------------------------------------------------- */

int mpi_lock_init(mpi_lock *lock, bool adaptive)
{
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    if (adaptive) {
        pthread_mutexattr_t attr;
        if (pthread_mutexattr_init(&attr) != 0)
            return ENOMEM;
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
        int err = pthread_mutex_init(lock, &attr);
        pthread_mutexattr_destroy(&attr);
        return err != 0 ? ENOMEM : 0;
    }
#else
    (void)adaptive;
#endif
    return pthread_mutex_init(lock, NULL) != 0 ? ENOMEM : 0;
}

static pthread_key_t exit_key; /* the one thread-exit hook (tcache.c's) */

void mpi_os_thread_exit_hook(void (*fn)(void *arg))
{
    pthread_key_create(&exit_key, fn);
}

void mpi_os_thread_exit_arm(void *arg)
{
    pthread_setspecific(exit_key, arg);
}

void mpi_os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    pthread_atfork(prepare, parent, child);
}

/* glibc 2.32's __libc_single_threaded: true only while the process has one thread (it may stay
 * false after the others exit, which costs only the skipped saving). Elsewhere: never known. */
bool mpi_os_single_threaded(void)
{
#ifdef OS_KNOWS_THREADS
    return __libc_single_threaded != 0;
#else
    return false;
#endif
}

const char *mpi_os_getenv(const char *name)
{
    return getenv(name);
}

/* The options' one rule, for the heap's reading and the drop-in malloc's alike: a value is one of
 * the option's words exactly; anything else is said once by its reader and read as the first. */
const mpi_option mpi_option_checked = {
    "CHECKED", {"0", "1", NULL}, {"a plain heap", "a checked heap", NULL}};

int mpi_option_value(const mpi_option *o, const char *value)
{
    for (int i = 0; i < MPI_OPTION_VALUES && o->values[i] != NULL; i++) {
        if (strcmp(o->values[i], value) == 0)
            return i;
    }
    return -1;
}

void mpi_option_say_bad(const mpi_option *o, const char *value)
{
    char line[320];
    const char *const *v = o->values;
    if (v[2] == NULL)
        snprintf(line, sizeof line,
                 "mempool: bad value in MEMPOOL_%s=%.200s (ignored; expected %s or %s)", o->name,
                 value, v[0], v[1]);
    else
        snprintf(line, sizeof line,
                 "mempool: bad value in MEMPOOL_%s=%.200s (ignored; expected %s, %s or %s)",
                 o->name, value, v[0], v[1], v[2]);
    mpi_os_error_line(line);
}

int mpi_os_option(const mpi_option *o)
{
    char name[64];
    snprintf(name, sizeof name, "MEMPOOL_%s", o->name);
    const char *value = mpi_os_getenv(name);
    int v = value != NULL ? mpi_option_value(o, value) : 0;
    if (v < 0)
        mpi_option_say_bad(o, value);
    return v < 0 ? 0 : v;
}

bool mpi_os_table_grow(void **table, size_t *cap, size_t size, size_t need)
{
    if (need <= *cap)
        return true;
    size_t page = mpi_os_page_size();
    size_t cap2 = *cap != 0 ? *cap : page / size;
    while (cap2 < need)
        cap2 *= 2;
    void *grown = os_map(NULL, cap2 * size, page);
    if (grown == NULL)
        return false;
    if (*table != NULL) {
        memcpy(grown, *table, *cap * size);
        os_unmap(NULL, *table, *cap * size);
    }
    *table = grown;
    *cap = cap2;
    return true;
}

void mpi_os_error_line(const char *line)
{
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
}

void mpi_os_abort(void)
{
    abort();
}

#endif /* MP_FREESTANDING */

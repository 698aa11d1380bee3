/*
 * test_malloc.c: the drop-in malloc (src/malloc.c) through the C library's own names. Built twice:
 * linked against libmempool_malloc.a (ctest malloc_static), and against the C library alone, run
 * with LD_PRELOAD=libmempool_malloc.so (malloc_preload). The mempool functions it reads stats with
 * are weak: in the preload build they come from the preloaded library, and their absence says the
 * library is not in use (a failure).
 *
 * Covers: each function's contract with errno, families mixed, malloc_trim, blocks freed after a
 * thread's cache is gone (key destructors), fork from 8 busy threads 100 times with the child
 * allocating from its main thread and from a new one (each block checked, the heap's count
 * too), calls before main and from dlsym, a misaligned free caught, MEMPOOL_CHECKED=1 catching a
 * double free, and the options' messages. Scale: MP_TEST_SCALE multiplies the forks.
 */
#define _GNU_SOURCE
#include "mempool.h"
#include "test.h"
#include "threads.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#pragma weak mp_default_heap
#pragma weak mp_heap_stats

static void *volatile sink; /* keeps the compiler from pairing malloc with free away */
static void *early_block;   /* allocated by a constructor, before main */

/* Values the compiler cannot see through, so that it neither warns about the misuse and the huge
 * sizes the tests make on purpose nor folds the calls away. */
static size_t opaque(size_t x)
{
    volatile size_t v = x;
    return v;
}

/* A result the compiler must keep: clang folds `malloc(n) == NULL` to false when the block is
 * otherwise unused (allocation elision), whatever n. */
static void *kept(void *p)
{
    sink = p;
    return sink;
}

/* A pointer by its address, kept before a call that may (or, on purpose, must) free it. */
static void *opaque_ptr(uintptr_t address)
{
    return (void *)opaque(address);
}

__attribute__((constructor)) static void before_main(void)
{
    early_block = malloc(100);
}

/* The heap's statistics (zeroed when the library is not in use). */
static struct mp_heap_stats heap_stats(void)
{
    static struct mp_heap_stats s;
    memset(&s, 0, sizeof s);
    if (&mp_default_heap != NULL && &mp_heap_stats != NULL)
        mp_heap_stats(mp_default_heap(), &s);
    return s;
}

/* The blocks in use of the class of `size` bytes. */
static uint64_t class_in_use(size_t size)
{
    struct mp_heap_stats s = heap_stats();
    for (unsigned c = 0; c < MP_HEAP_CLASSES; c++) {
        if (s.classes[c].size >= size)
            return s.classes[c].blocks_in_use;
    }
    return 0;
}

/* ================================================================================================
 * Contracts
 * ============================================================================================== */

static void test_in_use(void)
{
    struct mp_heap_stats before = heap_stats();
    void *p = malloc(24);
    sink = p;
    struct mp_heap_stats after = heap_stats();
    CHECK("malloc: the process-wide heap serves malloc (the library is in use)",
          &mp_default_heap != NULL && after.allocs > before.allocs);
    CHECK("malloc: a block from before main is the heap's", malloc_usable_size(early_block) >= 100);
    free(early_block);
    free(p);
}

static void test_malloc_free(void)
{
    void *a = malloc(0), *b = malloc(0);
    CHECK("malloc(0): two unique blocks", a != NULL && b != NULL && a != b);
    free(a);
    free(b);
    free(NULL);
    errno = 0;
    CHECK("malloc(SIZE_MAX): NULL with ENOMEM",
          kept(malloc(opaque(SIZE_MAX))) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK("malloc(PTRDIFF_MAX + 1): NULL with ENOMEM",
          kept(malloc(opaque((size_t)PTRDIFF_MAX + 1))) == NULL && errno == ENOMEM);
    static const size_t sizes[] = {1, 8, 9, 16, 17, 100, 1000, 4096, 5000, 70000, 1 << 20, 3 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = malloc(sizes[i]);
        size_t align = sizes[i] <= 8 ? 8 : 16;
        if (!CHECK("malloc: aligned, usable size at least the request",
                   p != NULL && (uintptr_t)p % align == 0 && malloc_usable_size(p) >= sizes[i]))
            continue;
        memset(p, 0xAB, sizes[i]);
        errno = 1234;
        free(p);
        CHECK("free: errno untouched", errno == 1234);
    }
    CHECK("malloc_usable_size(NULL) is 0", malloc_usable_size(NULL) == 0);
}

static void test_calloc(void)
{
    errno = 0;
    CHECK("calloc: n * size overflows: NULL with ENOMEM",
          kept(calloc(opaque(SIZE_MAX / 2), 3)) == NULL && errno == ENOMEM);
    for (size_t size = 24; size <= (1u << 21); size *= 7) {
        unsigned char *dirty = malloc(size);
        memset(dirty, 0xFF, size);
        free(dirty);
        unsigned char *p = calloc(1, size);
        size_t nonzero = 0;
        for (size_t i = 0; p != NULL && i < size; i++)
            nonzero += p[i] != 0;
        CHECK("calloc: zeroed, also where a freed block was", p != NULL && nonzero == 0);
        free(p);
    }
    void *z = calloc(0, 0);
    CHECK("calloc(0, 0): a unique block", z != NULL);
    free(z);
}

static void test_realloc(void)
{
    char *p = realloc(NULL, 10);
    CHECK("realloc(NULL, n) is malloc(n)", p != NULL);
    memcpy(p, "0123456789", 10);
    for (size_t size = 20; size <= (4u << 20); size *= 3) {
        p = realloc(p, size);
        if (!CHECK("realloc: grows, contents kept", p != NULL && memcmp(p, "0123456789", 10) == 0))
            return;
    }
    p = realloc(p, 5);
    CHECK("realloc: shrinks, contents kept", p != NULL && memcmp(p, "01234", 5) == 0);
    errno = 0;
    uintptr_t pa = (uintptr_t)p;
    char *q = realloc(p, opaque(SIZE_MAX - 4096));
    CHECK("realloc: too large: NULL with ENOMEM, the block untouched",
          q == NULL && errno == ENOMEM && memcmp(p, "01234", 5) == 0);
    CHECK("realloc(p, 0): frees and returns NULL", realloc(opaque_ptr(pa), 0) == NULL);
    p = malloc(16);
    pa = (uintptr_t)p;
    errno = 0;
    CHECK("reallocarray: n * size overflows: NULL with ENOMEM",
          reallocarray(p, opaque(SIZE_MAX / 2), 3) == NULL && errno == ENOMEM);
    q = reallocarray(opaque_ptr(pa), 100, 10);
    CHECK("reallocarray: n * size bytes", q != NULL && malloc_usable_size(q) >= 1000);
    free(q);
}

static void test_aligned(void)
{
    void *p = (void *)1;
    errno = 77;
    CHECK("posix_memalign: align 3: EINVAL, errno untouched",
          posix_memalign(&p, 3, 8) == EINVAL && errno == 77 && p == (void *)1);
    CHECK("posix_memalign: half a pointer's size (a power of two, not a multiple of a pointer): "
          "EINVAL",
          posix_memalign(&p, sizeof(void *) / 2, 8) == EINVAL);
    CHECK("posix_memalign: size too large: ENOMEM, errno untouched",
          posix_memalign(&p, 64, opaque(SIZE_MAX / 2)) == ENOMEM && errno == 77);
    for (size_t align = 8; align <= (1u << 22); align *= 4) { /* 2 MiB: beyond the heap's */
        for (size_t size = 0; size <= 3 * align; size += align + 1) {
            void *q = NULL;
            int err = posix_memalign(&q, align, size);
            CHECK("posix_memalign: aligned, freed by free", err == 0 && q != NULL &&
                                                                (uintptr_t)q % align == 0 &&
                                                                malloc_usable_size(q) >= size);
            free(q);
            q = aligned_alloc(align, size);
            CHECK("aligned_alloc: aligned", q != NULL && (uintptr_t)q % align == 0);
            q = realloc(q, size + 100);
            CHECK("aligned_alloc then realloc", q != NULL);
            free(q);
        }
    }
    void *h = NULL;
    CHECK("posix_memalign: 4 MiB alignment", posix_memalign(&h, 4u << 20, 100) == 0 &&
                                                 (uintptr_t)h % (4u << 20) == 0 &&
                                                 malloc_usable_size(h) >= 100);
    memset(h, 7, 100);
    h = realloc(h, 200);
    CHECK("realloc of a 4 MiB-aligned block: moved, contents kept",
          h != NULL && ((unsigned char *)h)[99] == 7);
    free(h);
    errno = 0;
    CHECK("aligned_alloc: align 24: NULL with EINVAL",
          kept(aligned_alloc(opaque(24), 48)) == NULL && errno == EINVAL);
    void *m = memalign(opaque(24), 100);
    CHECK("memalign: align 24 rounded up to 32", m != NULL && (uintptr_t)m % 32 == 0);
    free(m);
    long page = sysconf(_SC_PAGESIZE);
    void *v = valloc(10);
    CHECK("valloc: page-aligned", v != NULL && (uintptr_t)v % (uintptr_t)page == 0);
    free(v);
    v = pvalloc(10);
    CHECK("pvalloc: page-aligned, a page usable", v != NULL &&
                                                      (uintptr_t)v % (uintptr_t)page == 0 &&
                                                      malloc_usable_size(v) >= (size_t)page);
    free(v);
}

static void test_trim(void)
{
    enum { N = 2000 };
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = malloc(i % 2 == 0 ? 3000 : 300000);
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    uint64_t before = heap_stats().bytes_reserved;
    int trimmed = malloc_trim(0);
    uint64_t after = heap_stats().bytes_reserved;
    CHECK("malloc_trim(0): gives memory back, says so", trimmed == 1 && after < before);
}

/* ================================================================================================
 * Threads: exit, destructors, fork
 * ============================================================================================== */

enum { DTOR_BLOCKS = 500, DTOR_SIZE = 2900 };
static pthread_key_t dtor_key;

static void dtor_free(void *arg)
{
    void **blocks = arg;
    for (int i = 0; i < DTOR_BLOCKS; i++)
        free(blocks[i]);
    free(blocks);
}

static void *dtor_thread(void *arg)
{
    (void)arg;
    void **blocks = malloc(DTOR_BLOCKS * sizeof *blocks);
    for (int i = 0; i < DTOR_BLOCKS; i++)
        blocks[i] = malloc(DTOR_SIZE);
    pthread_setspecific(dtor_key, blocks);
    return NULL;
}

/* A key made after the library's runs its destructor after the library retired the thread's
 * cache: the blocks freed there must still come back. */
static void test_thread_exit(void)
{
    pthread_key_create(&dtor_key, dtor_free);
    uint64_t before = class_in_use(DTOR_SIZE);
    for (int round = 0; round < 4; round++) {
        thread_run(dtor_thread, NULL);
    }
    CHECK("thread exit: blocks freed by a key destructor after the cache went come back",
          class_in_use(DTOR_SIZE) == before);
}

/* The process's address space in KiB (VmSize), or -1. */
static long vm_size_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmSize:", 7) == 0)
            kib = atol(line + 7);
    }
    if (f != NULL)
        fclose(f);
    return kib;
}

static void *strerror_thread(void *arg)
{
    void *p = malloc(100); /* the thread has a cache */
    free(p);
    return strerror((int)(uintptr_t)arg); /* an unknown number: glibc allocates the text */
}

/* glibc frees a thread's strerror buffer after every key destructor ran, the library's too: that
 * free must not make the thread a new cache, which nothing would retire (a leaked record: 1.25 MiB
 * of address space per thread). */
static void test_free_after_exit(void)
{
    enum { THREADS = 200 };
    long before = vm_size_kib();
    for (int i = 0; i < THREADS; i++) {
        thread_run(strerror_thread, (void *)(uintptr_t)(5000 + i));
    }
    long grew = vm_size_kib() - before;
    CHECK("thread exit: the C library's frees after the destructors leak no thread record",
          before > 0 && grew < THREADS * 256);
}

static _Atomic int churn_stop;

static void *churn(void *arg)
{
    unsigned seed = *(const unsigned *)arg;
    void *held[64] = {0};
    while (!churn_stop) {
        seed = seed * 1103515245u + 12345u;
        unsigned i = (seed >> 8) % 64;
        free(held[i]);
        held[i] = malloc((seed >> 16) % 5000);
    }
    for (int i = 0; i < 64; i++)
        free(held[i]);
    return NULL;
}

/* In a fork() child: mallocs, writes and frees CHILD_ALLOCS blocks; the number it got. */
enum { CHILD_ALLOCS = 1000 };
static void *child_allocs(void *arg)
{
    (void)arg;
    uintptr_t got = 0;
    for (size_t i = 0; i < CHILD_ALLOCS; i++) {
        unsigned char *p = kept(malloc(1 + i * 7 % 5000)); /* kept: not elided */
        if (p != NULL) {
            memset(p, 0x5A, 1 + i * 7 % 5000);
            got++;
        }
        free(p);
    }
    return (void *)got;
}

/* The child allocates at once from its main thread, then from a new thread; exits with 0 when
 * every block came, and from the library (its heap counted them all), else with the step that
 * failed: 2 the main thread, 3 the thread's creation, 4 the thread's, 5 the heap's count. */
static void fork_child(void)
{
    alarm(10); /* a lock left held would hang it */
    uint64_t before = heap_stats().allocs;
    if ((uintptr_t)child_allocs(NULL) != CHILD_ALLOCS)
        _exit(2);
    pthread_t t;
    void *got = NULL;
    if (pthread_create(&t, NULL, child_allocs, NULL) != 0)
        _exit(3);
    pthread_join(t, &got);
    if ((uintptr_t)got != CHILD_ALLOCS)
        _exit(4);
    if (heap_stats().allocs - before < 2 * CHILD_ALLOCS)
        _exit(5);
    _exit(0);
}

static void test_fork(void)
{
    enum { THREADS = 8 };
    pthread_t t[THREADS];
    unsigned seeds[THREADS];
    for (unsigned i = 0; i < THREADS; i++)
        seeds[i] = i + 1;
    churn_stop = 0;
    bool started = threads_start(t, THREADS, churn, seeds, sizeof seeds[0]);
    CHECK("fork: the 8 busy threads start", started);
    int forks = (int)(100 * test_scale()), good = 0;
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid == 0)
            fork_child();
        int status = -1;
        while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok && good == i) /* the first failure says which step */
            printf("fork child %d: status %#x (exit 2..5: see fork_child)\n", i, status);
        good += ok;
    }
    churn_stop = 1;
    if (started)
        threads_join(t, THREADS);
    CHECK("fork from 8 busy threads: every child allocates, from its main thread and a new one",
          good == forks);
}

/* ================================================================================================
 * Early and odd callers, misuse, options
 * ============================================================================================== */

/* Preloaded into this C program, the library brings no C++ runtime with it (its operator new
 * hands failures to the runtime's own, looked up when needed): no libstdc++ in the maps. */
static void test_no_cxx_runtime(void)
{
    const char *preload = getenv("LD_PRELOAD");
    if (preload == NULL || strstr(preload, "libmempool_malloc") == NULL)
        return;
    FILE *f = fopen("/proc/self/maps", "r");
    bool cxx = false;
    char line[512];
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        cxx |= strstr(line, "libstdc++") != NULL;
    CHECK("preloaded: no C++ runtime loaded with the library", f != NULL && !cxx);
    if (f != NULL)
        fclose(f);
}

static void test_dlsym(void)
{
    void *h = dlopen("libm.so.6", RTLD_NOW);
    void *f = h != NULL ? dlsym(h, "cos") : NULL;
    void *none = h != NULL ? dlsym(h, "no_such_function_here") : NULL;
    const char *err = dlerror(); /* glibc allocates the message */
    CHECK("dlopen, dlsym and dlerror work over the library",
          f != NULL && none == NULL && err != NULL);
    if (h != NULL)
        dlclose(h);
}

/* Runs this program again with `arg` and the environment variable `env` set; its stderr into
 * err. The exit status as waitpid gives it. */
static int rerun(const char *arg, const char *env, char *err, size_t cap)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        /* only the variable under test: any other MEMPOOL_* the caller set would be reported */
        for (char **e = environ; *e != NULL;) {
            char name[64];
            size_t n = strcspn(*e, "=");
            if (strncmp(*e, "MEMPOOL_", 8) != 0 || n >= sizeof name) {
                e++;
                continue;
            }
            memcpy(name, *e, n);
            name[n] = '\0';
            unsetenv(name); /* moves the entries after it down: *e is the next one */
        }
        putenv((char *)env);
        execl("/proc/self/exe", "test_malloc", arg, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t r;
    while ((r = read(fds[0], err + len, cap - 1 - len)) > 0 && len < cap - 1)
        len += (size_t)r;
    err[len] = '\0';
    close(fds[0]);
    int status = -1;
    waitpid(pid, &status, 0);
    return status;
}

static int child_main(const char *what)
{
    char *p = malloc(64);
    uintptr_t pa = (uintptr_t)p;
    if (strcmp(what, "misaligned") == 0)
        free(opaque_ptr(pa + 1));
    if (strcmp(what, "boundary") == 0) {
        void *m = mmap(NULL, 4u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        free(opaque_ptr(((uintptr_t)m + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1)));
    }
    if (strcmp(what, "fill") == 0) { /* exits 1 if the heap is a checked one, which fills */
        memset(p, 0, 64);
        free(p);
        return ((volatile unsigned char *)opaque_ptr(pa))[32] == MP_FILL_FREED;
    }
    if (strcmp(what, "double") == 0) {
        free(p);
        free(opaque_ptr(pa));
    }
    return 0;
}

/* How many times `what` is in text. */
static int count_of(const char *text, const char *what)
{
    int n = 0;
    for (const char *t = strstr(text, what); t != NULL; t = strstr(t + 1, what))
        n++;
    return n;
}

/* MEMPOOL_CHECKED, one rule for the heap and the option table: 0 and 1 exactly; any other value is
 * said once (by the heap, not again by the table), not fatal, and makes a plain heap. */
static void test_checked_option(void)
{
    static const struct {
        const char *env;
        int checked; /* the "fill" child's exit status: 1 for a checked heap */
        bool bad;
    } cases[] = {{"MEMPOOL_CHECKED=0", 0, false},  {"MEMPOOL_CHECKED=1", 1, false},
                 {"MEMPOOL_CHECKED=yes", 0, true}, {"MEMPOOL_CHECKED=10", 0, true},
                 {"MEMPOOL_CHECKED=", 0, true},    {"MEMPOOL_CHECKED= 1", 0, true}};
    char err[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = rerun("fill", cases[i].env, err, sizeof err);
        bool ok = WIFEXITED(st) && WEXITSTATUS(st) == cases[i].checked &&
                  count_of(err, "bad value in MEMPOOL_CHECKED") == (cases[i].bad ? 1 : 0) &&
                  count_of(err, "mempool:") == (cases[i].bad ? 1 : 0);
        if (!CHECK("MEMPOOL_CHECKED: 0 and 1 exactly; anything else said once, a plain heap", ok))
            printf("  %s: status %#x, stderr: %s\n", cases[i].env, (unsigned)st, err);
    }
}

static void test_misuse_and_options(void)
{
    char err[4096];
    int st = rerun("misaligned", "MEMPOOL_X_UNUSED=0", err, sizeof err);
    CHECK("free of a misaligned pointer: reported, aborts",
          WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(err, "invalid free") != NULL);
    st = rerun("boundary", "MEMPOOL_X_UNUSED=0", err, sizeof err);
    CHECK("free of a pointer at a 2 MiB boundary that is no block: reported, aborts",
          WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(err, "invalid free") != NULL);
    st = rerun("double", "MEMPOOL_CHECKED=1", err, sizeof err);
    CHECK("MEMPOOL_CHECKED=1: a double free is reported, aborts",
          WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(err, "double free") != NULL);
    st = rerun("none", "MEMPOOL_BOGUS=1", err, sizeof err);
    CHECK("an unknown MEMPOOL_ name: said once, not fatal",
          WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(err, "unknown option MEMPOOL_BOGUS") &&
              strstr(strstr(err, "MEMPOOL_BOGUS") + 1, "MEMPOOL_BOGUS") == NULL);
    st = rerun("none", "MEMPOOL_SHOW_STATS=yes", err, sizeof err);
    CHECK("a bad value: said, not fatal",
          WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(err, "bad value in MEMPOOL_SHOW_STATS"));
    test_checked_option();
    st = rerun("none", "MEMPOOL_SHOW_STATS=json", err, sizeof err);
    CHECK("MEMPOOL_SHOW_STATS=json: the heap's stats as JSON at exit",
          WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(err, "\"allocs\"") != NULL);
    st = rerun("none", "MEMPOOL_VERBOSE=1", err, sizeof err);
    CHECK("MEMPOOL_VERBOSE=1: says what was read",
          WIFEXITED(st) && strstr(err, "MEMPOOL_CHECKED=0") != NULL);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return child_main(argv[1]);
    test_in_use();
    test_malloc_free();
    test_calloc();
    test_realloc();
    test_aligned();
    test_trim();
    test_thread_exit();
    if (getenv("MP_TEST_EMULATED") == NULL) /* under qemu-user VmSize is the emulator's */
        test_free_after_exit();
    test_dlsym();
    test_no_cxx_runtime();
    /* qemu-user (the cross stage sets MP_TEST_EMULATED) aborts in a fork from threads, and cannot
     * exec this program again for its children (no binfmt handler for the guest's binaries). */
    if (getenv("MP_TEST_EMULATED") != NULL) {
        printf("fork from threads and the re-run children skipped under emulation\n");
    } else {
        test_fork();
        test_misuse_and_options();
    }
    return TEST_DONE();
}

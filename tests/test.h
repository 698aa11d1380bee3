/*
 * test.h: the tiny harness every test program includes.
 *
 *     if (!CHECK("pool: alloc past capacity gives ENOMEM", p == NULL && errno == ENOMEM))
 *         return;
 *     ...
 *     return TEST_DONE();
 *
 * CHECK() counts a pass or a failure and evaluates to 1 or 0, so a test can stop before using
 * something a failed check says is broken. A failure prints one line, "file:line: FAIL message
 * (expression)"; after TEST_MAX_REPORTS of them only the count goes on, so a broken loop cannot
 * flood the log. TEST_DONE() prints the last line, exactly "N passed, N failed", and is the
 * program's exit status: 0 if and only if nothing failed. TEST_FAILURES() is the count so far.
 * Header-only: each test program is one file.
 */
#ifndef MP_TEST_H
#define MP_TEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define TEST_MAX_REPORTS 50

/* The factor from MP_TEST_SCALE (see tests/CMakeLists.txt); 1 when unset or not positive. */
static inline double test_scale(void)
{
    const char *s = getenv("MP_TEST_SCALE");
    double f = s ? strtod(s, NULL) : 1.0;
    return f > 0 ? f : 1.0;
}

/*
 * The tool watching this run, so that a test can skip, or open to the tool first, what it forbids
 * (writing into a poisoned free block, say): TEST_ASAN and TEST_TSAN are 1 in such builds, else 0;
 * TEST_VALGRIND is 1 where Valgrind's headers are (memcheck.h is then included, for its client
 * requests), and TEST_ON_VALGRIND() says whether this run is under it.
 */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_ASAN
#define TEST_ASAN 0
#endif
#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif
#ifndef TEST_TSAN
#define TEST_TSAN 0
#endif
#if TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define TEST_VALGRIND 1
#define TEST_ON_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef TEST_VALGRIND
#define TEST_VALGRIND 0
#define TEST_ON_VALGRIND() false
#endif

static unsigned long long harness_passed, harness_failed;

static inline int harness_check(const char *file, int line, const char *msg, const char *expr,
                                int ok)
{
    if (ok) {
        harness_passed++;
        return 1;
    }
    if (++harness_failed <= TEST_MAX_REPORTS)
        printf("%s:%d: FAIL %s (%s)\n", file, line, msg, expr);
    if (harness_failed == TEST_MAX_REPORTS)
        printf("(further failures are counted, not shown)\n");
    fflush(stdout);
    return 0;
}

#define CHECK(msg, expr) harness_check(__FILE__, __LINE__, (msg), #expr, (expr) ? 1 : 0)

static inline int harness_done(void)
{
    printf("%llu passed, %llu failed\n", harness_passed, harness_failed);
    return harness_failed != 0;
}

#define TEST_DONE() harness_done()

/* A loop's failures: the first TALLY_DETAILS are printed as "  detail: ..." lines, and the loop
 * then makes one CHECK of t.bad == 0, so a broken loop costs one failure and a few lines:
 *     tally t = {0};
 *     for (...) tally_expect(&t, p != NULL, "size %zu: NULL, errno %d", n, errno);
 *     CHECK("every size allocates", t.bad == 0);
 * tally_expect returns ok. */
#define TALLY_DETAILS 6

typedef struct tally {
    unsigned bad;
} tally;

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 4)))
#endif
static inline bool
tally_expect(tally *t, bool ok, const char *fmt, ...)
{
    if (ok)
        return true;
    if (t->bad++ < TALLY_DETAILS) {
        va_list ap;
        va_start(ap, fmt);
        printf("  detail: ");
        vprintf(fmt, ap);
        printf("\n");
        va_end(ap);
        fflush(stdout);
    }
    return false;
}

/* The n bytes at p are all zero. */
static inline bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p; /* also C++ */
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

/* Whether the text at s is the line qemu-user adds to a child's stderr when the program it runs
 * dies of a signal (tests that read what a dying child printed skip it). */
static inline bool test_emulator_line(const char *s)
{
    static const char qemu[] = "qemu: uncaught target signal";
    for (size_t i = 0; i < sizeof qemu - 1; i++)
        if (s[i] != qemu[i])
            return false;
    return true;
}

/* The failures so far, for tests that stop at the first one (the model test). */
#define TEST_FAILURES() harness_failed

#endif /* MP_TEST_H */

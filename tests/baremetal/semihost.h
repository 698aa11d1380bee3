/*
 * semihost.h: the bare-metal tests' harness. CHECK(msg, expr) counts a pass or a failure as
 * tests/test.h does (a failure prints "file:line: FAIL msg"), and TEST_DONE() prints the same last
 * line, "N passed, N failed", through semihosting (startup.c) instead of stdio.
 */
#ifndef MP_SEMIHOST_H
#define MP_SEMIHOST_H

void semihost_puts(const char *s);
_Noreturn void semihost_exit(int status);

static unsigned test_passed, test_failed;

/* Writes n in decimal. */
static inline void test_put_uint(unsigned long n)
{
    char buf[24], *p = buf + sizeof buf;
    *--p = '\0';
    do
        *--p = (char)('0' + n % 10);
    while ((n /= 10) != 0);
    semihost_puts(p);
}

static inline int test_check(int ok, const char *msg, const char *file, unsigned long line)
{
    if (ok) {
        test_passed++;
        return 1;
    }
    test_failed++;
    semihost_puts(file);
    semihost_puts(":");
    test_put_uint(line);
    semihost_puts(": FAIL ");
    semihost_puts(msg);
    semihost_puts("\n");
    return 0;
}

#define CHECK(msg, expr) test_check((expr) != 0, msg, __FILE__, __LINE__)

static inline int test_done(void)
{
    test_put_uint(test_passed);
    semihost_puts(" passed, ");
    test_put_uint(test_failed);
    semihost_puts(" failed\n");
    return test_failed != 0;
}
#define TEST_DONE() test_done()

#endif /* MP_SEMIHOST_H */

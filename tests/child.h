/*
 * child.h: running part of a test in a child process, for tests whose object may abort or crash
 * (misuse.h builds its death tests on it; test_heap.c and test_pool_errors.c use it directly).
 *
 *   - child_die() runs fn(arg) in a child whose stderr is a pipe, with the default error handler,
 *     and returns the child's status, its stderr, and the addresses it noted with child_note().
 *     stderr_lines() reads that stderr without the lines a tool (Valgrind, qemu-user) adds.
 *   - run_isolated() runs a test function in a child and adds the child's CHECK counts to the
 *     parent's, so a crash fails that test instead of ending the program.
 *
 * POSIX: fork, pipe, waitpid, alarm. Only the public API of mempool.h is used.
 */
#ifndef MP_TEST_CHILD_H
#define MP_TEST_CHILD_H

#include "mempool.h"
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    CHILD_SURVIVED = 77, /* the bug was not caught: the child ran to its end */
    CHILD_NO_POOL = 78,  /* the child could not even create its pool */
    CHILD_NOTES = 8,
    CHILD_TIMEOUT = 30, /* seconds before SIGALRM ends a hung child */
};

typedef struct child_result {
    int status;     /* from waitpid */
    char err[8192]; /* the child's stderr */
    const void *notes[CHILD_NOTES];
    unsigned nnotes;
} child_result;

static int child_note_fd = -1;

/* In a child: tells the parent an address the coming error message must name. */
static inline void child_note(const void *p)
{
    if (child_note_fd >= 0 && write(child_note_fd, &p, sizeof p) != (ssize_t)sizeof p)
        _exit(CHILD_NO_POOL);
}

/* Reads fd to its end into buf (cap bytes, NUL-terminated when text); returns the bytes read. */
static inline size_t read_all(int fd, void *buf, size_t cap)
{
    size_t len = 0;
    char sink[256];
    for (;;) {
        ssize_t r =
            len < cap ? read(fd, (char *)buf + len, cap - len) : read(fd, sink, sizeof sink);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return len;
        if (len < cap)
            len += (size_t)r;
    }
}

/* Runs fn(arg) in a child with the default error handler, stderr into r->err. */
static inline void child_die(void (*fn)(void *), void *arg, child_result *r)
{
    int errp[2], notep[2];
    memset(r, 0, sizeof *r);
    r->status = -1;
    fflush(stdout);
    fflush(stderr);
    if (pipe(errp) != 0 || pipe(notep) != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        close(errp[0]);
        close(notep[0]);
        dup2(errp[1], 2);
        close(errp[1]);
        child_note_fd = notep[1];
        alarm(CHILD_TIMEOUT);
#if TEST_VALGRIND
        /* A child meant to die mid-bug leaves blocks it can no longer reach: no leak check */
        if (RUNNING_ON_VALGRIND)
            VALGRIND_CLO_CHANGE("--leak-check=no");
#endif
        mp_set_error_handler(NULL, NULL);
        fn(arg);
        _exit(CHILD_SURVIVED);
    }
    close(errp[1]);
    close(notep[1]);
    if (pid > 0) {
        /* The notes come before the bug and are a few words: they fit the pipe, so reading stderr
         * first cannot deadlock. */
        size_t n = read_all(errp[0], r->err, sizeof r->err - 1);
        r->err[n] = '\0';
        r->nnotes = (unsigned)(read_all(notep[0], r->notes, sizeof r->notes) / sizeof r->notes[0]);
        while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
            ;
    }
    close(errp[0]);
    close(notep[0]);
}

/*
 * Counts the lines of the child's stderr and copies the first into line. Lines Valgrind writes
 * ("==PID== ...", when run under memcheck without a log file) are not the program's and are
 * skipped.
 */
static inline unsigned stderr_lines(const char *err, char *line, size_t cap)
{
    unsigned n = 0;
    line[0] = '\0';
    for (const char *s = err; *s != '\0';) {
        const char *end = strchr(s, '\n');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        bool tool = (len > 2 && s[0] == '=' && s[1] == '=' && s[2] >= '0' && s[2] <= '9') ||
                    test_emulator_line(s);
        if (!tool) {
            if (n++ == 0)
                snprintf(line, cap, "%.*s", (int)len, s);
        }
        s += len + (end != NULL);
    }
    return n;
}

static inline const char *status_text(int status, char *buf, size_t cap)
{
    if (status == -1)
        snprintf(buf, cap, "fork or pipe failed");
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by signal %d", WTERMSIG(status));
    else if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_SURVIVED)
        snprintf(buf, cap, "survived: the bug went unnoticed");
    else if (WIFEXITED(status))
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(buf, cap, "status %d", status);
    return buf;
}

/*
 * Runs test fn(arg) in a child and adds the child's CHECK counts to this process's: a crash fails
 * this test (reported with its signal) and the program goes on with the next. The child's own
 * failure lines go to the shared stdout. The counters are test.h's; only this helper touches them.
 */
static inline void run_isolated(const char *what, void (*fn)(void *), void *arg)
{
    int p[2];
    unsigned long long counts[2] = {0, 0};
    fflush(stdout);
    if (!CHECK(what, pipe(p) == 0))
        return;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        alarm(CHILD_TIMEOUT * 4);
        harness_passed = harness_failed = 0;
        fn(arg);
        counts[0] = harness_passed;
        counts[1] = harness_failed;
        fflush(stdout);
        _exit(write(p[1], counts, sizeof counts) == (ssize_t)sizeof counts ? 0 : 1);
    }
    close(p[1]);
    int status = -1;
    size_t n = pid > 0 ? read_all(p[0], counts, sizeof counts) : 0;
    close(p[0]);
    if (pid > 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    char why[64];
    if (!CHECK(what, n == sizeof counts && WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        printf("    isolated test %s: %s\n", what, status_text(status, why, sizeof why));
        return;
    }
    harness_passed += counts[0];
    harness_failed += counts[1];
}

#endif /* MP_TEST_CHILD_H */

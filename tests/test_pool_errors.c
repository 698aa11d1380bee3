/*
 * test_pool_errors.c: the error handler's contract with checked and secure pools: mp_error_name,
 * mp_set_error_handler (each error's kind, pool, block and one-line message), and the default
 * handler (one line, then abort, in a child process).
 * Only the public API is used (the helpers they share: test_pool.h). The misuse tests of
 * checked and secure pools are test_checked.c and test_secure.c.
 *
 * Usage: test_pool_errors            (no arguments; under a second)
 */
#define _POSIX_C_SOURCE 200809L

#include "child.h"
#include "test_pool.h"

/* ------------------------------------------------------------------------------------------------
 * Errors caught by checked and secure pools: mp_error_name, mp_set_error_handler
 * ---------------------------------------------------------------------------------------------- */

/* A static object, not in any pool: a free of it is invalid. */
static char static_bytes[64];

/* Exactly one error since *s was cleared, of this kind, about this pool and block. */
static bool saw_one(const seen *s, mp_error_kind kind, const mp_pool *pool, const void *addr)
{
    return s->n == 1 && s->last.kind == kind && s->last.pool == pool && s->last.addr == addr;
}

/* The message is one line beginning "mempool: ", with the kind's name as mp_error_name() gives it
 * (the header's example puts it first; a leak message may count first: "2 blocks leaked") and the
 * pool as `in pool "<name>"`. */
static bool message_names(const seen *s, mp_error_kind kind, const char *name)
{
    char tail[64];
    snprintf(tail, sizeof tail, "in pool \"%s\"", name);
    return strncmp(s->message, "mempool: ", 9) == 0 && strstr(s->message, mp_error_name(kind)) &&
           strstr(s->message, tail) != NULL && strchr(s->message, '\n') == NULL;
}

static void test_error_names(void)
{
    static const struct {
        mp_error_kind kind;
        const char *name;
    } names[] = {
        {MP_ERR_DOUBLE_FREE, "double free"},
        {MP_ERR_INVALID_FREE, "invalid free"},
        {MP_ERR_WRITE_AFTER_FREE, "write after free"},
        {MP_ERR_OVERFLOW, "overflow"},
        {MP_ERR_LEAK, "leak"},
        {MP_ERR_CORRUPT_FREE_LIST, "corrupted free list"},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        CHECK("errors: mp_error_name gives the documented name",
              strcmp(mp_error_name(names[i].kind), names[i].name) == 0);
    CHECK("errors: mp_error_name of 0 is \"unknown\"",
          strcmp(mp_error_name((mp_error_kind)0), "unknown") == 0);
    CHECK("errors: mp_error_name of 99 is \"unknown\"",
          strcmp(mp_error_name((mp_error_kind)99), "unknown") == 0);
}

static void test_checked_errors(void)
{
    static seen s;
    mp_set_error_handler(record_error, &s);
    mp_pool *pool =
        mp_pool_create(&(mp_pool_opts){.block_size = 24, .flags = MP_CHECKED, .name = "conns"});
    mp_pool *other = make(24, 0, 0, 0);
    if (!CHECK("create: checked pool", pool && other)) {
        mp_pool_destroy(pool);
        mp_pool_destroy(other);
        mp_set_error_handler(NULL, NULL);
        return;
    }
    void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool), *o = mp_pool_alloc(other);

    mp_pool_free(pool, a);
    memset(&s, 0, sizeof s);
    mp_pool_free(pool, a);
    CHECK("errors: a checked pool reports a double free", saw_one(&s, MP_ERR_DOUBLE_FREE, pool, a));
    char want[160];
    snprintf(want, sizeof want, "mempool: double free of %p in pool \"conns\"", a);
    CHECK("errors: the message is the documented line", strcmp(s.message, want) == 0);
    CHECK("errors: pool_name and count", strcmp(s.pool_name, "conns") == 0 && s.last.count == 1);
    mp_stats st = stats_of(pool);
    CHECK("errors: an ignored double free frees nothing more",
          st.frees == 1 && st.blocks_in_use == 1);
    void *x = mp_pool_alloc(pool), *y = mp_pool_alloc(pool);
    CHECK("errors: the double-freed block comes back once, not twice",
          x == a && y != a && y != NULL);

    int local = 0;
    void *invalid[] = {(char *)b + 8, (char *)b + 1, &local, o, static_bytes};
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        memset(&s, 0, sizeof s);
        mp_pool_free(pool, invalid[i]);
        CHECK(
            "errors: a checked pool reports an invalid free (interior, stack, other pool, static)",
            saw_one(&s, MP_ERR_INVALID_FREE, pool, invalid[i]) &&
                message_names(&s, MP_ERR_INVALID_FREE, "conns"));
    }
    mp_stats st2 = stats_of(pool);
    CHECK("errors: ignored invalid frees change nothing",
          st2.frees == st.frees && st2.blocks_in_use == st.blocks_in_use + 2);
    CHECK("errors: the pool is healthy after the ignored errors", mp_pool_check(pool));

    if (free_blocks_touchable()) {
        mp_pool_free(pool, y);
        ((unsigned char *)y)[10] = 0x00; /* after the link: the pool filled it with MP_FILL_FREED */
        memset(&s, 0, sizeof s);
        void *z = mp_pool_alloc(pool);
        CHECK("errors: a write after free is reported when the block is handed out again",
              z == y && saw_one(&s, MP_ERR_WRITE_AFTER_FREE, pool, y) &&
                  message_names(&s, MP_ERR_WRITE_AFTER_FREE, "conns"));
        memset(&s, 0, sizeof s);
        ((unsigned char *)z)[24] = 0x00; /* one past block_size: the canary */
        uint64_t frees = stats_of(pool).frees;
        mp_pool_free(pool, z);
        CHECK("errors: an overflow is reported at free",
              saw_one(&s, MP_ERR_OVERFLOW, pool, z) && message_names(&s, MP_ERR_OVERFLOW, "conns"));
        CHECK("errors: an overflowed block is still freed", stats_of(pool).frees == frees + 1);
    } else {
        mp_pool_free(pool, y);
    }
    mp_pool_free(pool, x);
    mp_pool_free(pool, b);
    memset(&s, 0, sizeof s);
    mp_pool_destroy(pool);
    CHECK("errors: no leak reported when every block was freed", s.n == 0);

    /* Leaks: blocks still live at destroy are reported once, with their count. */
    mp_pool *leaky =
        mp_pool_create(&(mp_pool_opts){.block_size = 13, .flags = MP_CHECKED, .name = "leaky"});
    if (leaky) {
        void *p0 = mp_pool_alloc(leaky), *p1 = mp_pool_alloc(leaky), *p2 = mp_pool_alloc(leaky);
        mp_pool_free(leaky, p1);
        if (free_blocks_touchable()) {
            memset(&s, 0, sizeof s);
            ((unsigned char *)p2)[13] = 0x00; /* overflow an odd block size by one */
            mp_pool_free(leaky, p2);
            CHECK("errors: an overflow of a 13-byte block by one byte is reported",
                  saw_one(&s, MP_ERR_OVERFLOW, leaky, p2));
            p2 = mp_pool_alloc(leaky);
        }
        memset(&s, 0, sizeof s);
        mp_pool_destroy(leaky);
        CHECK("errors: a checked pool reports its live blocks as one leak at destroy",
              s.n == 1 && s.last.kind == MP_ERR_LEAK && s.last.pool == leaky && s.last.count == 2 &&
                  (s.last.addr == p0 || s.last.addr == p2));
        CHECK("errors: the leak message names the pool", message_names(&s, MP_ERR_LEAK, "leaky"));
    }
    mp_pool_free(other, o);
    mp_pool_destroy(other);
    mp_set_error_handler(NULL, NULL);
}

static void test_secure_errors(void)
{
    static seen s;
    mp_set_error_handler(record_error, &s);
    mp_pool *pool =
        mp_pool_create(&(mp_pool_opts){.block_size = 32, .flags = MP_SECURE, .name = "sec"});
    if (!CHECK("create: secure pool", pool != NULL)) {
        mp_set_error_handler(NULL, NULL);
        return;
    }
    void *a = mp_pool_alloc(pool), *b = mp_pool_alloc(pool), *c = mp_pool_alloc(pool);
    mp_pool_free(pool, a);
    memset(&s, 0, sizeof s);
    mp_pool_free(pool, a);
    CHECK("errors: a secure pool reports a double free",
          saw_one(&s, MP_ERR_DOUBLE_FREE, pool, a) && message_names(&s, MP_ERR_DOUBLE_FREE, "sec"));
    memset(&s, 0, sizeof s);
    mp_pool_free(pool, (char *)b + 8);
    CHECK("errors: a secure pool reports an invalid free",
          saw_one(&s, MP_ERR_INVALID_FREE, pool, (char *)b + 8));
    CHECK("errors: secure pool healthy after ignored errors", mp_pool_check(pool));

    if (free_blocks_touchable()) {
        /* Plant a pointer to a live block over every word of a free block: the list is b -> a. */
        mp_pool_free(pool, b);
        for (size_t off = 0; off + sizeof c <= 32; off += sizeof c)
            memcpy((char *)b + off, &c, sizeof c);
        memset(&s, 0, sizeof s);
        void *x1 = mp_pool_alloc(pool), *x2 = mp_pool_alloc(pool);
        CHECK("errors: a planted free-list link is reported as a corrupted free list",
              s.n == 1 && s.last.kind == MP_ERR_CORRUPT_FREE_LIST && s.last.pool == pool);
        CHECK("errors: the planted pointer is never handed out",
              x1 && x2 && x1 != c && x2 != c && x1 != x2);
        CHECK("errors: secure pool healthy after the cut", mp_pool_check(pool));
    }
    mp_pool_destroy(pool);
    mp_set_error_handler(NULL, NULL);
}

/* The bug the default handler must report: a double free in a checked pool named "conns". */
static void double_free_conns(void *arg)
{
    (void)arg;
    mp_pool *pool =
        mp_pool_create(&(mp_pool_opts){.block_size = 24, .flags = MP_CHECKED, .name = "conns"});
    void *a = mp_pool_alloc(pool);
    mp_pool_free(pool, a);
    mp_pool_free(pool, a);
}

/* The default handler prints the one line to stderr and aborts: in a child process. */
static void test_default_handler(void)
{
    child_result r;
    child_die(double_free_conns, NULL, &r);
    char line[512];
    unsigned lines = stderr_lines(r.err, line, sizeof line);
    CHECK("errors: the default handler aborts",
          r.status != -1 && WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT);
    const char *head = "mempool: double free of 0x", *tail = " in pool \"conns\"";
    size_t len = strlen(line);
    CHECK("errors: the default handler prints exactly the one line",
          lines == 1 && strncmp(line, head, strlen(head)) == 0 && len > strlen(tail) &&
              strcmp(line + len - strlen(tail), tail) == 0 && strstr(r.err, line)[len] == '\n');
}

/* ------------------------------------------------------------------------------------------------
 * Main
 * ---------------------------------------------------------------------------------------------- */

int main(void)
{
    test_error_names();
    test_checked_errors();
    test_secure_errors();
    test_default_handler();
    return TEST_DONE();
}

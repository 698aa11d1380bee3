/*
 * sqlite_heap.c: SQLite with a mempool heap as its memory allocator (SQLITE_CONFIG_MALLOC).
 *
 * SQLite takes its allocator as a struct of eight functions (sqlite3_mem_methods), installed before
 * sqlite3_initialize(). Over a heap they are one call each:
 *     xInit      creates the heap (MP_THREAD_SAFE: SQLite may call from any thread it is used from)
 *     xMalloc    mp_heap_alloc          (SQLite needs 8-byte alignment; a heap gives 16 above 8
 * bytes) xFree      mp_heap_free           (SQLite does not pass sizes) xRealloc   mp_heap_realloc
 *     xSize      mp_heap_usable_size    (SQLite's memory accounting, and its use of slack)
 *     xRoundup   the size class a request lands in (mempool.h: 8, 16, multiples of 16 to 128, then
 *                8 classes per doubling to MP_HEAP_MAX_CLASS); checked against xSize at start-up
 *     xShutdown  takes the final statistics, then destroys the heap
 * SQLite's realloc compares xRoundup(new size) with xSize(old block) and keeps the block when they
 * are equal, so xRoundup must never promise more than the heap gives; the start-up check makes
 * sure.
 *
 * The workload, on an in-memory database (its pages come from the heap too): 20,000 rows inserted
 * in one transaction through a prepared statement, an index, then queries whose results are
 * checked against what C computes from the same data: counts and sums, an indexed range with ORDER
 * BY ... LIMIT, GROUP BY, an update, a delete, LIKE, a sort with no index, and rows with 300-600
 * KiB blobs (large blocks). After sqlite3_close() and sqlite3_shutdown() the heap must have nothing
 * in use (blocks_in_use == 0) and SQLite must account no memory in use.
 *
 * Usage: sqlite_heap [-v]. Rows scale with MP_TEST_SCALE (20,000 at 1; at least 2,000).
 * Build: needs SQLite 3 (Debian: libsqlite3-dev); see examples/CMakeLists.txt.
 */
#include "mempool.h"

#include <sqlite3.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * The allocator
 * ---------------------------------------------------------------------------------------------- */

typedef struct mem_ctx {
    mp_heap *heap;
    struct mp_heap_stats final; /* taken by xShutdown */
    bool shut_down;
    int inits;
} mem_ctx;

static mem_ctx mem;

/* The class a request of n bytes lands in, as mempool.h describes the classes; above
 * MP_HEAP_MAX_CLASS, n rounded to 8 (a large block's usable size is at least that). */
static size_t class_roundup(size_t n)
{
    if (n <= 8)
        return 8;
    if (n <= 128)
        return (n + 15) & ~(size_t)15;
    if (n > MP_HEAP_MAX_CLASS)
        return (n + 7) & ~(size_t)7;
    size_t p2 = 128;
    while (p2 * 2 < n)
        p2 *= 2;
    size_t step = p2 / 8; /* n is in (p2, 2 * p2], in 8 steps */
    return p2 + (n - p2 + step - 1) / step * step;
}

static int mem_init(void *app)
{
    mem_ctx *m = app;
    m->heap = mp_heap_create(&(mp_heap_opts){.flags = MP_THREAD_SAFE, .name = "sqlite"});
    m->inits++;
    return m->heap != NULL ? SQLITE_OK : SQLITE_NOMEM;
}

static void mem_shutdown(void *app)
{
    mem_ctx *m = app;
    mp_heap_stats(m->heap, &m->final);
    mp_heap_destroy(m->heap);
    m->heap = NULL;
    m->shut_down = true;
}

static void *mem_malloc(int n)
{
    return mp_heap_alloc(mem.heap, (size_t)n);
}

static void mem_free(void *p)
{
    mp_heap_free(mem.heap, p);
}

static void *mem_realloc(void *p, int n)
{
    return mp_heap_realloc(mem.heap, p, (size_t)n);
}

static int mem_size(void *p)
{
    return (int)mp_heap_usable_size(mem.heap, p);
}

static int mem_roundup(int n)
{
    return (int)class_roundup((size_t)n);
}

static const sqlite3_mem_methods heap_methods = {
    mem_malloc, mem_free, mem_realloc, mem_size, mem_roundup, mem_init, mem_shutdown, &mem,
};

/* ------------------------------------------------------------------------------------------------
 * Checks and small helpers
 * ---------------------------------------------------------------------------------------------- */

static int failures;

static bool check(bool ok, const char *what)
{
    if (!ok) {
        printf("FAIL: %s\n", what);
        failures++;
    }
    return ok;
}

static bool exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        printf("SQL error (%s): %s\n", sql, err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    return check(rc == SQLITE_OK, "statement runs");
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        printf("SQL error (%s): %s\n", sql, sqlite3_errmsg(db));
        check(false, "statement prepares");
    }
    return st;
}

/* The single integer a query returns (or -1). */
static long long query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = prepare(db, sql);
    long long v = -1;
    if (st != NULL && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* ------------------------------------------------------------------------------------------------
 * The data, known to C as well as to SQL
 * ---------------------------------------------------------------------------------------------- */

static const char *const words[] = {"alpha", "bravo",   "charlie", "delta",
                                    "echo",  "foxtrot", "golf"};

typedef struct row {
    long long id;
    int category;
    long long price; /* in cents */
    int blob_len;
    char name[48];
} row;

static void make_row(row *r, long long id)
{
    r->id = id;
    r->category = (int)(id % 37);
    r->price = (id * 7919) % 100003;
    r->blob_len = (int)((id * 31) % 300) + 1;
    snprintf(r->name, sizeof r->name, "item-%06lld-%s", id, words[id % 7]);
}

/* Order of "ORDER BY price DESC, id ASC". */
static int by_price_desc(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->price != y->price)
        return x->price < y->price ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* ------------------------------------------------------------------------------------------------
 * The workload
 * ---------------------------------------------------------------------------------------------- */

static void insert_rows(sqlite3 *db, long long n)
{
    exec(db, "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, category INTEGER,"
             " price INTEGER, payload BLOB)");
    exec(db, "BEGIN");
    sqlite3_stmt *st = prepare(db, "INSERT INTO items VALUES(?1, ?2, ?3, ?4, ?5)");
    unsigned char blob[300];
    bool ok = st != NULL;
    for (long long id = 1; id <= n && ok; id++) {
        row r;
        make_row(&r, id);
        for (int i = 0; i < r.blob_len; i++)
            blob[i] = (unsigned char)(id + i);
        sqlite3_bind_int64(st, 1, r.id);
        sqlite3_bind_text(st, 2, r.name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 3, r.category);
        sqlite3_bind_int64(st, 4, r.price);
        sqlite3_bind_blob(st, 5, blob, r.blob_len, SQLITE_TRANSIENT);
        ok = sqlite3_step(st) == SQLITE_DONE && sqlite3_reset(st) == SQLITE_OK;
    }
    check(ok, "every insert succeeds");
    sqlite3_finalize(st);
    exec(db, "COMMIT");
    exec(db, "CREATE INDEX items_cat ON items(category, price)");
}

static void queries(sqlite3 *db, long long n)
{
    /* What C knows: totals, per-category counts, the category-7 rows. */
    long long sum_cat = 0, blob_total = 0, like_golf = 0, cat_count[37] = {0};
    row *cat7 = malloc(sizeof *cat7 * (size_t)(n / 37 + 2));
    size_t n7 = 0;
    row max_name;
    make_row(&max_name, 1);
    for (long long id = 1; id <= n; id++) {
        row r;
        make_row(&r, id);
        sum_cat += r.category;
        blob_total += r.blob_len;
        like_golf += id % 7 == 6;
        cat_count[r.category]++;
        if (r.category == 7 && cat7 != NULL)
            cat7[n7++] = r;
        if (strcmp(r.name, max_name.name) > 0)
            max_name = r;
    }

    check(query_int(db, "SELECT count(*) FROM items") == n, "count(*)");
    check(query_int(db, "SELECT sum(category) FROM items") == sum_cat, "sum(category)");
    check(query_int(db, "SELECT sum(length(payload)) FROM items") == blob_total, "blob lengths");
    check(query_int(db, "SELECT count(*) FROM items WHERE category = 5") == cat_count[5],
          "indexed count");
    check(query_int(db, "SELECT count(*) FROM items WHERE name LIKE '%-golf'") == like_golf,
          "LIKE");

    /* An indexed range with ORDER BY ... LIMIT, against C's sort of the same rows. */
    if (cat7 != NULL) {
        qsort(cat7, n7, sizeof *cat7, by_price_desc);
        sqlite3_stmt *st = prepare(db, "SELECT id, name, price FROM items WHERE category = 7"
                                       " ORDER BY price DESC, id ASC LIMIT 10");
        size_t i = 0;
        bool same = st != NULL;
        while (same && sqlite3_step(st) == SQLITE_ROW) {
            same = i < n7 && sqlite3_column_int64(st, 0) == cat7[i].id &&
                   strcmp((const char *)sqlite3_column_text(st, 1), cat7[i].name) == 0 &&
                   sqlite3_column_int64(st, 2) == cat7[i].price;
            i++;
        }
        check(same && i == (n7 < 10 ? n7 : 10), "top 10 of category 7 by price");
        sqlite3_finalize(st);
    }

    /* GROUP BY: one row per category with C's count. */
    sqlite3_stmt *st = prepare(db, "SELECT category, count(*), avg(price) FROM items"
                                   " GROUP BY category ORDER BY category");
    int groups = 0;
    bool counts_ok = st != NULL;
    while (counts_ok && sqlite3_step(st) == SQLITE_ROW) {
        int c = sqlite3_column_int(st, 0);
        counts_ok = c == groups && sqlite3_column_int64(st, 1) == cat_count[c];
        groups++;
    }
    check(counts_ok && groups == 37, "GROUP BY category counts");
    sqlite3_finalize(st);

    /* A sort with no index to help: the sorter's memory comes from the heap. */
    st = prepare(db, "SELECT name FROM items ORDER BY name DESC LIMIT 1");
    check(st != NULL && sqlite3_step(st) == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(st, 0), max_name.name) == 0,
          "ORDER BY name with no index");
    sqlite3_finalize(st);

    /* Changes. */
    exec(db, "UPDATE items SET price = price * 2 WHERE id % 10 = 0");
    check(sqlite3_changes(db) == n / 10, "UPDATE changes every tenth row");
    long long deleted = 0;
    for (int c = 31; c < 37; c++)
        deleted += cat_count[c];
    exec(db, "DELETE FROM items WHERE category > 30");
    check(sqlite3_changes(db) == deleted, "DELETE changes");
    check(query_int(db, "SELECT count(*) FROM items") == n - deleted, "count after DELETE");
    st = prepare(db, "PRAGMA integrity_check");
    check(st != NULL && sqlite3_step(st) == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0,
          "PRAGMA integrity_check says ok");
    sqlite3_finalize(st);
    free(cat7);
}

/* Rows with blobs of 300-600 KiB: SQLite's buffers for them are the heap's large blocks. */
static void large_rows(sqlite3 *db)
{
    exec(db, "CREATE TABLE big(id INTEGER PRIMARY KEY, data BLOB)");
    sqlite3_stmt *st = prepare(db, "INSERT INTO big VALUES(?1, ?2)");
    enum { ROWS = 12 };
    size_t max = 600 * 1024;
    unsigned char *data = malloc(max);
    long long total = 0;
    bool ok = st != NULL && data != NULL;
    for (int i = 0; i < ROWS && ok; i++) {
        size_t len = 300 * 1024 + (size_t)i * 25 * 1024;
        for (size_t k = 0; k < len; k++)
            data[k] = (unsigned char)(k * 7 + (size_t)i);
        sqlite3_bind_int(st, 1, i);
        sqlite3_bind_blob(st, 2, data, (int)len, SQLITE_TRANSIENT);
        ok = sqlite3_step(st) == SQLITE_DONE && sqlite3_reset(st) == SQLITE_OK;
        total += (long long)len;
    }
    check(ok, "inserting large blobs");
    sqlite3_finalize(st);
    check(query_int(db, "SELECT sum(length(data)) FROM big") == total, "large blob lengths");
    st = prepare(db, "SELECT id, data FROM big ORDER BY id DESC");
    bool same = st != NULL;
    while (same && data != NULL && sqlite3_step(st) == SQLITE_ROW) {
        int i = sqlite3_column_int(st, 0);
        const unsigned char *b = sqlite3_column_blob(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        same = len == 300 * 1024 + (size_t)i * 25 * 1024;
        for (size_t k = 0; same && k < len; k += 4093)
            same = b[k] == (unsigned char)(k * 7 + (size_t)i);
    }
    check(same, "large blobs read back intact");
    sqlite3_finalize(st);
    free(data);
}

/* xRoundup must agree with what the heap gives: checked over sizes up to MP_HEAP_MAX_CLASS. */
static void check_roundup(void)
{
    mp_heap *h = mp_heap_create(NULL);
    size_t bad = 0, checked = 0;
    for (size_t n = 1; n <= MP_HEAP_MAX_CLASS && h != NULL; n += n < 4096 ? 1 : n / 64) {
        void *p = mp_heap_alloc(h, n);
        size_t u = mp_heap_usable_size(h, p);
        if (u != class_roundup(n) && bad++ < 3)
            printf("  xRoundup(%zu) = %zu but the heap gives %zu\n", n, class_roundup(n), u);
        mp_heap_free(h, p);
        checked++;
    }
    mp_heap_destroy(h);
    check(h != NULL && bad == 0, "xRoundup is the usable size the heap gives");
    printf("xRoundup agrees with the heap over %zu sizes\n", checked);
}

static void print_line(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    fwrite(text, 1, len, stdout);
}

int main(int argc, char **argv)
{
    bool verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    const char *scale_env = getenv("MP_TEST_SCALE");
    double scale = scale_env ? strtod(scale_env, NULL) : 1.0;
    if (!(scale > 0))
        scale = 1.0;
    long long n = (long long)(20000 * scale);
    if (n < 2000)
        n = 2000;

    check_roundup();
    if (!check(sqlite3_config(SQLITE_CONFIG_MALLOC, &heap_methods) == SQLITE_OK,
               "SQLITE_CONFIG_MALLOC accepted") ||
        !check(sqlite3_initialize() == SQLITE_OK && mem.inits == 1, "sqlite3_initialize"))
        return 1;
    printf("SQLite %s on a mempool heap, %lld rows\n", sqlite3_libversion(), n);

    sqlite3 *db = NULL;
    if (!check(sqlite3_open(":memory:", &db) == SQLITE_OK, "open an in-memory database"))
        return 1;
    insert_rows(db, n);
    queries(db, n);
    large_rows(db);
    struct mp_heap_stats live;
    mp_heap_stats(mem.heap, &live);
    printf("while open: %" PRIu64 " blocks (%" PRIu64 " KiB) in use, %" PRIu64
           " large; SQLite counts %lld KiB in use, %lld KiB at most\n",
           live.blocks_in_use, live.bytes_in_use / 1024, live.large_in_use,
           (long long)sqlite3_memory_used() / 1024, (long long)sqlite3_memory_highwater(0) / 1024);
    check(sqlite3_close(db) == SQLITE_OK, "sqlite3_close");
    check(sqlite3_memory_used() == 0, "SQLite accounts no memory in use after close");
    check(sqlite3_shutdown() == SQLITE_OK && mem.shut_down, "sqlite3_shutdown calls xShutdown");

    const struct mp_heap_stats *s = &mem.final;
    unsigned classes = 0;
    for (size_t i = 0; i < MP_HEAP_CLASSES; i++)
        classes += s->classes[i].allocs != 0;
    printf("heap at shutdown: %" PRIu64 " allocs, %" PRIu64 " frees, %" PRIu64
           " blocks in use, %u classes used, %" PRIu64 " KiB reserved, %" PRIu64
           " large blocks cached\n",
           s->allocs, s->frees, s->blocks_in_use, classes, s->bytes_reserved / 1024,
           s->large_cached);
    if (verbose)
        mp_heap_stats_write(s, MP_FORMAT_TEXT, print_line, NULL);
    check(s->blocks_in_use == 0 && s->bytes_in_use == 0 && s->large_in_use == 0,
          "every block back after close and shutdown (blocks_in_use == 0)");
    check(s->allocs == s->frees && s->allocs > (uint64_t)n, "allocs == frees, and many of them");
    printf("%s\n", failures ? "sqlite_heap: FAILED" : "sqlite_heap: ok");
    return failures != 0;
}

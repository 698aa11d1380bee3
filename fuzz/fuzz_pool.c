/*
 * fuzz_pool.c: a libFuzzer harness for pools, checked against a reference model.
 *
 * The input is a program. Its first 5 bytes choose the pool, the rest are operations:
 *
 *   byte 0   kind: bits 0-1 plain / MP_CHECKED / MP_SECURE / both; bit 2 MP_ZERO; bit 3 the pool
 *            lives in a caller's buffer; bit 4 (checked pools) destroy with live blocks: a leak
 *   byte 1   block size (an index into block_sizes[], or a literal size 1..256)
 *   byte 2   alignment (an index into aligns[])
 *   byte 3   capacity (0: unbounded; else 1..255)
 *   byte 4   buffer size (an index into buffer_sizes[]) and the buffer's offset (a multiple of 8)
 *   then     one byte per operation (op % 16), some followed by an argument byte:
 *            0-5 alloc, 6-9 free live block [arg % live], 10 reset, 11 trim, 12 check + stats,
 *            13 and 15 re-verify every live block (contents, mp_pool_owns), 14 misuse (checked and
 *            secure pools only, with the arg: a double free, an interior or a stack address freed)
 *
 * The model knows the live blocks and the pattern each was filled with (verified at free), which
 * blocks are free since the last reset or trim, most recent on top (so it predicts the next alloc:
 * "the most recently freed block is reused first"), every statistic, and which errors the pool must
 * report (only for the deliberate misuse: anything else is a false positive). Any disagreement
 * aborts, which libFuzzer reports with the input.
 *
 * Build with libFuzzer: fuzz/run.sh (defines MP_FUZZ_LIBFUZZER). Without it, this file has a main()
 * that runs the inputs named on the command line (files, or directories of files; stdin when none),
 * which is how ctest replays fuzz/corpus/ as a regression test.
 */
#define _POSIX_C_SOURCE 200809L
#define _FILE_OFFSET_BITS 64 /* 32-bit readdir fails (EOVERFLOW) on 64-bit inode numbers */

#include "mempool.h"

#include <errno.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The model's own loops (patterns, overlap scans) are not what is being fuzzed: left out of the
 * coverage instrumentation, which otherwise takes most of the time comparing pattern bytes. */
#if defined(__clang__) && __clang_major__ >= 13
#define MODEL_LOOP __attribute__((no_sanitize("coverage"), noinline))
#else
#define MODEL_LOOP
#endif

/* ------------------------------------------------------------------------------------------------
 * Assertions: a failure prints what and where, then aborts (libFuzzer saves the input)
 * ---------------------------------------------------------------------------------------------- */

#define MODEL(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            model_fail(__LINE__, #cond);                                                           \
    } while (0)

static char last_message[512];    /* the last error the pool reported, for a failure's message */
static const char *current_input; /* the file being replayed (not under libFuzzer, which says) */

static void model_fail(int line, const char *expr)
{
    fprintf(stderr, "fuzz_pool.c:%d: model disagrees: %s\n", line, expr);
    if (current_input != NULL)
        fprintf(stderr, "fuzz_pool.c: input %s\n", current_input);
    if (last_message[0] != '\0')
        fprintf(stderr, "fuzz_pool.c: the last error reported: %s\n", last_message);
    fflush(stderr);
    abort();
}

/* ------------------------------------------------------------------------------------------------
 * The input
 * ---------------------------------------------------------------------------------------------- */

typedef struct input {
    const uint8_t *data;
    size_t size, at;
} input;

static bool input_more(const input *in)
{
    return in->at < in->size;
}

/* The next byte, 0 past the end. */
static uint8_t input_byte(input *in)
{
    return in->at < in->size ? in->data[in->at++] : 0;
}

static const size_t block_sizes[] = {1,   7,   8,   9,   16,   20,   24,   48,    64,
                                     100, 128, 255, 256, 1000, 4096, 5000, 65536, 70000};
static const size_t aligns[] = {0, 0, 0, 8, 16, 32, 64, 128, 4096, 65536};
static const size_t buffer_sizes[] = {512, 4096, 16384, 65536, 1 << 18};

/* ------------------------------------------------------------------------------------------------
 * The model
 * ---------------------------------------------------------------------------------------------- */

enum { MAX_LIVE = 256, MAX_FREED = 1024, MAX_BYTES = 1 << 20 };

typedef struct live_block {
    unsigned char *p;
    uint32_t seed;
} live_block;

typedef struct model {
    mp_pool *pool;
    size_t block_size, align, capacity;
    unsigned flags;
    bool in_buffer;
    live_block live[MAX_LIVE];
    size_t nlive;
    /* Blocks freed since the last reset or trim and not handed out since: the top of the free list,
     * most recent last. Older free blocks (from before a trim) are in the list below, order
     * unknown. */
    void *freed[MAX_FREED];
    size_t nfreed;
    bool freed_overflowed; /* more were freed than freed[] holds: the bottom entries were dropped */
    uint64_t allocs, frees, failed, peak, resets, trims;
    uint32_t serial;
    /* Errors: expected from deliberate misuse, and received. */
    unsigned expected, received;
    mp_error_kind last_kind;
    const void *last_addr;
    uint64_t last_count;
} model;

static void on_error(const mp_error *error, void *ctx)
{
    model *m = ctx;
    m->received++;
    m->last_kind = error->kind;
    m->last_addr = error->addr;
    m->last_count = error->count;
    snprintf(last_message, sizeof last_message, "%s", error->message ? error->message : "(null)");
    MODEL(error->message != NULL && (error->kind == MP_ERR_LEAK ||
                                     strstr(error->message, mp_error_name(error->kind)) != NULL));
    MODEL(error->pool == m->pool);
}

MODEL_LOOP static void fill(unsigned char *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 31u + (i >> 7));
}

MODEL_LOOP static bool filled(const unsigned char *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 31u + (i >> 7)))
            return false;
    return true;
}

static bool is_checked_or_secure(const model *m)
{
    return (m->flags & (MP_CHECKED | MP_SECURE)) != 0;
}

static void stats_match(const model *m)
{
    mp_stats s;
    MODEL(mp_pool_stats(m->pool, &s) == 0);
    MODEL(s.blocks_in_use == m->nlive);
    MODEL(s.allocs == m->allocs);
    MODEL(s.frees == m->frees);
    MODEL(s.failed_allocs == m->failed);
    MODEL(s.blocks_peak == m->peak);
    MODEL(s.resets == m->resets);
    MODEL(s.trims == m->trims);
    MODEL(s.bytes_used == m->nlive * m->block_size);
    MODEL(s.bytes_used <= s.bytes_reserved);
    MODEL(s.blocks_free >= m->nfreed);
    MODEL(s.block_size == m->block_size);
    MODEL(s.capacity == m->capacity);
}

MODEL_LOOP static bool disjoint_from_live(const model *m, const unsigned char *p)
{
    for (size_t i = 0; i < m->nlive; i++)
        if (!(p + m->block_size <= m->live[i].p || m->live[i].p + m->block_size <= p))
            return false;
    return true;
}

MODEL_LOOP static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

static void freed_push(model *m, void *p)
{
    if (m->nfreed == MAX_FREED) {
        memmove(m->freed, m->freed + 1, (MAX_FREED - 1) * sizeof m->freed[0]);
        m->nfreed--;
        m->freed_overflowed = true;
    }
    m->freed[m->nfreed++] = p;
}

static void op_alloc(model *m)
{
    if (m->nlive == MAX_LIVE || (m->nlive + 1) * m->block_size > MAX_BYTES)
        return;
    errno = 0;
    unsigned char *p = mp_pool_alloc(m->pool);
    if (p == NULL) {
        MODEL(errno == ENOMEM);
        /* Refused only at capacity, or when a buffer is full (never with a free block at hand). */
        MODEL((m->capacity != 0 && m->nlive == m->capacity) || (m->in_buffer && m->nfreed == 0));
        m->failed++;
        return;
    }
    MODEL(m->capacity == 0 || m->nlive < m->capacity);
    if (m->nfreed > 0)
        MODEL(p == m->freed[--m->nfreed]); /* LIFO */
    MODEL(((uintptr_t)p & (m->align - 1)) == 0);
    MODEL(disjoint_from_live(m, p));
    if (m->flags & MP_ZERO)
        MODEL(all_zero(p, m->block_size));
    m->allocs++;
    uint32_t seed = ++m->serial * 2654435761u;
    fill(p, m->block_size, seed);
    m->live[m->nlive++] = (live_block){p, seed};
    if (m->nlive > m->peak)
        m->peak = m->nlive;
}

static void op_free(model *m, uint8_t arg)
{
    if (m->nlive == 0) {
        mp_pool_free(m->pool, NULL); /* does nothing */
        return;
    }
    size_t i = arg % m->nlive;
    live_block b = m->live[i];
    MODEL(filled(b.p, m->block_size, b.seed));
    m->live[i] = m->live[--m->nlive];
    mp_pool_free(m->pool, b.p);
    m->frees++;
    freed_push(m, b.p);
}

/* Every live block keeps its contents; every live and recently freed block is the pool's. */
MODEL_LOOP static void op_reverify(const model *m)
{
    for (size_t i = 0; i < m->nlive; i++) {
        MODEL(filled(m->live[i].p, m->block_size, m->live[i].seed));
        MODEL(mp_pool_owns(m->pool, m->live[i].p));
        MODEL(!mp_pool_owns(m->pool, m->live[i].p + 1));
    }
    for (size_t i = 0; i < m->nfreed; i++)
        MODEL(mp_pool_owns(m->pool, m->freed[i]));
}

/* A deliberate bug in a checked or secure pool, with the handler returning: reported, ignored. */
static void op_misuse(model *m, uint8_t arg)
{
    if (!is_checked_or_secure(m))
        return;
    void *bad;
    mp_error_kind kind;
    char local[64];
    if ((arg & 3) == 0 && m->nfreed > 0) {
        bad = m->freed[(arg >> 2) % m->nfreed];
        kind = MP_ERR_DOUBLE_FREE;
    } else if ((arg & 3) == 1 && m->nlive > 0) {
        bad = m->live[(arg >> 2) % m->nlive].p + 1; /* never a block: alignment is at least 8 */
        kind = MP_ERR_INVALID_FREE;
    } else if ((arg & 3) == 2) {
        bad = local;
        kind = MP_ERR_INVALID_FREE;
    } else {
        return;
    }
    unsigned before = m->received;
    mp_pool_free(m->pool, bad);
    m->expected++;
    MODEL(m->received == before + 1);
    MODEL(m->last_kind == kind && m->last_addr == bad);
}

static void op_trim(model *m)
{
    mp_pool_trim(m->pool);
    m->trims++;
    m->nfreed = 0; /* the free list's order is open after a trim */
    m->freed_overflowed = false;
}

static void op_reset(model *m)
{
    mp_pool_reset(m->pool);
    m->resets++;
    m->frees += m->nlive;
    m->nlive = 0;
    m->nfreed = 0;
    m->freed_overflowed = false;
}

/* ------------------------------------------------------------------------------------------------
 * One input
 * ---------------------------------------------------------------------------------------------- */

static model the_model;

/* Creates the pool the first bytes describe into m; false if those options are refused (as the
 * header says they must be, checked here). */
static bool model_create(model *m, input *in, void **buffer_out, uint8_t *kind_out)
{
    static const unsigned kinds[4] = {0, MP_CHECKED, MP_SECURE, MP_CHECKED | MP_SECURE};
    uint8_t kind = input_byte(in), bsel = input_byte(in), asel = input_byte(in);
    uint8_t cap = input_byte(in), bufsel = input_byte(in);
    size_t nsizes = sizeof block_sizes / sizeof block_sizes[0];
    memset(m, 0, sizeof *m);
    m->flags = kinds[kind & 3] | ((kind & 4) ? MP_ZERO : 0);
    m->block_size = bsel < 128 ? block_sizes[bsel % nsizes] : (size_t)(bsel - 127);
    m->capacity = cap;
    m->in_buffer = (kind & 8) != 0;
    size_t align = aligns[asel % (sizeof aligns / sizeof aligns[0])];
    size_t buffer_size = buffer_sizes[bufsel % (sizeof buffer_sizes / sizeof buffer_sizes[0])];
    size_t offset = (size_t)(bufsel >> 3) * 8;
    *kind_out = kind;
    *buffer_out = NULL;
    unsigned char *raw = NULL;
    if (m->in_buffer) {
        raw = malloc(buffer_size + offset);
        if (raw == NULL)
            return false;
        *buffer_out = raw;
    }
    errno = 0;
    m->pool = mp_pool_create(&(mp_pool_opts){.block_size = m->block_size,
                                             .align = align,
                                             .capacity = m->capacity,
                                             .flags = m->flags,
                                             .buffer = raw ? raw + offset : NULL,
                                             .buffer_size = raw ? buffer_size : 0,
                                             .name = "fuzz"});
    if (m->pool == NULL) {
        /* Only a buffer too small may be refused, or memory for alignments that large. */
        MODEL(errno == EINVAL ? m->in_buffer : errno == ENOMEM);
        return false;
    }
    m->align = mp_pool_align(m->pool);
    size_t least = alignof(void *); /* the link's alignment: 8 on 64-bit systems, 4 on 32-bit */
    MODEL(align == 0 ? m->align >= least : m->align == (align < least ? least : align));
    MODEL(mp_pool_block_size(m->pool) == m->block_size);
    MODEL(strcmp(mp_pool_name(m->pool), "fuzz") == 0);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = {data, size, 0};
    last_message[0] = '\0';
    model *m = &the_model;
    void *buffer;
    uint8_t kind;
    if (!model_create(m, &in, &buffer, &kind)) {
        free(buffer);
        return 0;
    }
    mp_set_error_handler(on_error, m);
    while (input_more(&in)) {
        uint8_t op = input_byte(&in) % 16;
        if (op <= 5)
            op_alloc(m);
        else if (op <= 9)
            op_free(m, input_byte(&in));
        else if (op == 10)
            op_reset(m);
        else if (op == 11)
            op_trim(m);
        else if (op == 12) {
            MODEL(mp_pool_check(m->pool));
            stats_match(m);
        } else if (op == 13 || op == 15)
            op_reverify(m);
        else
            op_misuse(m, input_byte(&in));
        MODEL(m->received == m->expected); /* no false positive, no missed misuse */
    }
    MODEL(mp_pool_check(m->pool));
    stats_match(m);
    op_reverify(m);
    bool leak = (kind & 16) != 0 && (m->flags & MP_CHECKED) != 0 && m->nlive > 0;
    while (!leak && m->nlive > 0)
        op_free(m, 0);
    size_t nleaked = m->nlive;
    unsigned before = m->received;
    mp_pool_destroy(m->pool);
    if (leak) {
        MODEL(m->received == before + 1);
        MODEL(m->last_kind == MP_ERR_LEAK && m->last_count == nleaked);
    } else {
        MODEL(m->received == before);
    }
    mp_set_error_handler(NULL, NULL);
    free(buffer);
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * Without libFuzzer: replay inputs from files, directories or stdin
 * ---------------------------------------------------------------------------------------------- */

#ifndef MP_FUZZ_LIBFUZZER
#include <dirent.h>
#include <sys/stat.h>

static unsigned long replayed;

static void run_stream(FILE *f, const char *name)
{
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (buf == NULL) {
            fprintf(stderr, "fuzz_pool: out of memory reading %s\n", name);
            exit(2);
        }
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        uint8_t *more = realloc(buf, cap * 2);
        if (more == NULL)
            free(buf);
        buf = more;
        cap *= 2;
    }
    current_input = name;
    LLVMFuzzerTestOneInput(buf, len);
    current_input = NULL;
    free(buf);
    replayed++;
}

static void run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        exit(2);
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *dir = opendir(path);
        struct dirent *e;
        errno = 0;
        while (dir != NULL && (e = readdir(dir)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            run_path(sub);
            errno = 0;
        }
        if (dir == NULL || errno != 0) { /* a directory not read is no replay: say so */
            perror(path);
            exit(2);
        }
        closedir(dir);
        return;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    run_stream(f, path);
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        run_stream(stdin, "stdin");
    for (int i = 1; i < argc; i++)
        run_path(argv[i]);
    /* The harness's last line, like every test program's (a failure aborts before it). */
    printf("%lu passed, 0 failed\n", replayed);
    return replayed > 0 ? 0 : 1;
}
#endif

/*
 * stats.c: reading a pool's statistics and writing them as text or JSON, and the names they carry
 * (copied cut on a UTF-8 character boundary, written to JSON as valid UTF-8 whatever they hold).
 *
 * Nothing here is counted: the fast path keeps one counter (allocs), the slow paths keep the rest,
 * and this file derives what follows from them: blocks free by walking the free list, then in use
 * (carved - free), frees (allocs - in use), peak and bytes used. Exact, at O(free blocks) a read.
 * The writers go through one table of fields so that the text and JSON forms, and mp_stats itself,
 * cannot drift apart.
 */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

/* ================================================================================================
 * Names: cut on a UTF-8 character boundary
 * ============================================================================================== */

/* The length of the well-formed UTF-8 sequence (RFC 3629) that s begins with, 1 to 4; 0 when s[0]
 * begins none: a continuation byte, an overlong form, a surrogate, a code point above U+10FFFF, or
 * a sequence cut short (by the terminator too). Reads no byte past a NUL. */
static size_t utf8_len(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned char lo = 0x80, hi = 0xBF; /* the second byte's range (Unicode, table 3-7) */
    size_t n;
    if (u[0] < 0x80)
        return 1;
    if (u[0] >= 0xC2 && u[0] <= 0xDF)
        n = 2;
    else if (u[0] >= 0xE0 && u[0] <= 0xEF)
        n = 3;
    else if (u[0] >= 0xF0 && u[0] <= 0xF4)
        n = 4;
    else
        return 0; /* a continuation byte, C0 and C1 (overlong), or above U+10FFFF */
    if (u[0] == 0xE0)
        lo = 0xA0; /* overlong below U+0800 */
    else if (u[0] == 0xED)
        hi = 0x9F; /* surrogates */
    else if (u[0] == 0xF0)
        lo = 0x90; /* overlong below U+10000 */
    else if (u[0] == 0xF4)
        hi = 0x8F; /* above U+10FFFF */
    if (u[1] < lo || u[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((u[i] & 0xC0) != 0x80) /* stops at a NUL */
            return 0;
    return n;
}

void mpi_name_copy(char *dst, const char *src)
{
    size_t n = 0;
    while (src != NULL && src[n] != '\0') {
        size_t len = utf8_len(src + n);
        len = len != 0 ? len : 1;
        if (n + len > MP_NAME_MAX - 1)
            break;
        n += len;
    }
    if (n != 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ================================================================================================
 * Reading
 * ============================================================================================== */

int mp_pool_stats(const mp_pool *pool, mp_stats *out)
{
    if (pool == NULL || out == NULL)
        return EINVAL;
    mpi_ts_lock(pool);
    mpi_pool_fold_carves(pool);
    uint64_t cached = 0, allocs = 0;
    if ((pool->flags & MP_THREAD_SAFE) != 0)
        mpi_ts_sum(pool, &cached, &allocs);
    allocs += pool->fast.allocs;
    uint64_t free_len = mpi_pool_free_len(pool) + cached;
    if (free_len > pool->carved)
        free_len = pool->carved; /* a cyclic list (user bug): report what can be known */
    uint64_t in_use = pool->carved - free_len;
    memset(out, 0, sizeof *out);
    memcpy(out->name, pool->name, sizeof out->name);
    out->block_size = pool->block_size;
    out->align = pool->align;
    out->stride = pool->stride;
    out->capacity = pool->capacity;
    out->blocks_in_use = in_use;
    out->blocks_peak = mpi_pool_peak(pool);
    out->blocks_free = free_len;
    out->allocs = allocs;
    out->frees = allocs - in_use;
    out->failed_allocs = pool->failed_allocs;
    out->bytes_reserved = pool->bytes_reserved;
    out->bytes_used = in_use * pool->block_size;
    out->chunks = (pool->state & MPI_IN_BUFFER) != 0 ? 1 : pool->held / pool->per_chunk;
    out->source_maps = pool->source_maps;
    out->resets = pool->resets;
    out->trims = pool->trims;
    mpi_ts_unlock(pool);
    return 0;
}

/* ================================================================================================
 * Writing: one table of the numeric fields, two formats (hosted only: they format with the C
 * library's snprintf; bare metal has the numbers above)
 * ============================================================================================== */
#if !MP_FREESTANDING

typedef struct stat_field {
    const char *key;
    size_t offset;
    bool is_size; /* size_t, else uint64_t */
} stat_field;

/* The stat_field of member f of struct type T. */
#define STAT_FIELD(T, f, is_size)                                                                  \
    {                                                                                              \
#f, offsetof(T, f), is_size                                                                \
    }
#define SIZE_FIELD(f) STAT_FIELD(mp_stats, f, true)
#define U64_FIELD(f) STAT_FIELD(mp_stats, f, false)

static const stat_field stat_fields[] = {
    SIZE_FIELD(block_size),   SIZE_FIELD(align),         SIZE_FIELD(stride),
    SIZE_FIELD(capacity),     U64_FIELD(blocks_in_use),  U64_FIELD(blocks_peak),
    U64_FIELD(blocks_free),   U64_FIELD(allocs),         U64_FIELD(frees),
    U64_FIELD(failed_allocs), U64_FIELD(bytes_reserved), U64_FIELD(bytes_used),
    U64_FIELD(chunks),        U64_FIELD(source_maps),    U64_FIELD(resets),
    U64_FIELD(trims),
};

static uint64_t stat_value(const void *s, const stat_field *f)
{
    const char *at = (const char *)s + f->offset;
    if (f->is_size) {
        size_t v;
        memcpy(&v, at, sizeof v);
        return v;
    }
    uint64_t v;
    memcpy(&v, at, sizeof v);
    return v;
}

static void write_str(mp_write_fn *write, void *ctx, const char *text)
{
    write(ctx, text, strlen(text));
}

/* Writes s as a JSON string (RFC 8259): the quote, the backslash and control characters escaped,
 * well-formed UTF-8 as it is, and each byte that begins no well-formed sequence as \ufffd, so that
 * the output is valid UTF-8 whatever the name holds. */
static void write_json_string(mp_write_fn *write, void *ctx, const char *s)
{
    write_str(write, ctx, "\"");
    for (size_t len; *s != '\0'; s += len) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        len = utf8_len(s);
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            write(ctx, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            write_str(write, ctx, esc);
        } else if (len == 0) {
            write_str(write, ctx, "\\ufffd"); /* U+FFFD, the replacement character */
            len = 1;
        } else {
            write(ctx, s, len);
        }
    }
    write_str(write, ctx, "\"");
}

/* Writes `n` fields of the struct at `base`, as "key: value" lines or ,"key":value pairs. */
static void write_fields(const void *base, const stat_field *fields, size_t n, int format,
                         const char *indent, mp_write_fn *write, void *ctx)
{
    char line[96];
    for (size_t i = 0; i < n; i++) {
        uint64_t v = stat_value(base, &fields[i]);
        if (format == MP_FORMAT_TEXT)
            snprintf(line, sizeof line, "%s%s: %" PRIu64 "\n", indent, fields[i].key, v);
        else
            snprintf(line, sizeof line, "%s\"%s\":%" PRIu64, i == 0 ? "" : ",", fields[i].key, v);
        write_str(write, ctx, line);
    }
}

int mp_stats_write(const mp_stats *stats, int format, mp_write_fn *write, void *ctx)
{
    if (stats == NULL || write == NULL || (format != MP_FORMAT_TEXT && format != MP_FORMAT_JSON))
        return EINVAL;
    char name[MP_NAME_MAX];
    memcpy(name, stats->name, sizeof name);
    name[MP_NAME_MAX - 1] = '\0';
    size_t n = sizeof stat_fields / sizeof stat_fields[0];
    if (format == MP_FORMAT_TEXT) {
        write_str(write, ctx, "pool \"");
        write_str(write, ctx, name);
        write_str(write, ctx, "\"\n");
        write_fields(stats, stat_fields, n, format, "  ", write, ctx);
        return 0;
    }
    write_str(write, ctx, "{\"name\":");
    write_json_string(write, ctx, name);
    write_str(write, ctx, ",");
    write_fields(stats, stat_fields, n, format, "", write, ctx);
    write_str(write, ctx, "}\n");
    return 0;
}

typedef struct file_sink {
    FILE *out;
    bool failed;
} file_sink;

static void file_write(void *ctx, const char *text, size_t len)
{
    file_sink *sink = ctx;
    if (fwrite(text, 1, len, sink->out) != len)
        sink->failed = true;
}

int mp_stats_print(const mp_stats *stats, int format, FILE *out)
{
    if (out == NULL)
        return EINVAL;
    file_sink sink = {out, false};
    int err = mp_stats_write(stats, format, file_write, &sink);
    if (err == 0 && (sink.failed || fflush(out) != 0))
        err = EIO;
    return err;
}

/* ================================================================================================
 * Heap statistics: the totals, then one entry for each class that has been used
 * ============================================================================================== */

#define HEAP_TOTAL(f) STAT_FIELD(struct mp_heap_stats, f, false)
#define CLASS_FIELD(f) STAT_FIELD(mp_heap_class_stats, f, false)

static const stat_field heap_fields[] = {
    HEAP_TOTAL(allocs),        HEAP_TOTAL(frees),        HEAP_TOTAL(failed_allocs),
    HEAP_TOTAL(blocks_in_use), HEAP_TOTAL(bytes_in_use), HEAP_TOTAL(bytes_reserved),
    HEAP_TOTAL(large_in_use),  HEAP_TOTAL(large_cached),
};

static const stat_field class_fields[] = {
    CLASS_FIELD(blocks_in_use), CLASS_FIELD(blocks_peak),    CLASS_FIELD(allocs),
    CLASS_FIELD(frees),         CLASS_FIELD(bytes_reserved),
};

int mp_heap_stats_write(const struct mp_heap_stats *stats, int format, mp_write_fn *write,
                        void *ctx)
{
    if (stats == NULL || write == NULL || (format != MP_FORMAT_TEXT && format != MP_FORMAT_JSON))
        return EINVAL;
    char name[MP_NAME_MAX], line[64];
    memcpy(name, stats->name, sizeof name);
    name[MP_NAME_MAX - 1] = '\0';
    size_t nh = sizeof heap_fields / sizeof heap_fields[0];
    size_t nc = sizeof class_fields / sizeof class_fields[0];
    bool first = true;
    if (format == MP_FORMAT_TEXT) {
        write_str(write, ctx, "heap \"");
        write_str(write, ctx, name);
        write_str(write, ctx, "\"\n");
        write_fields(stats, heap_fields, nh, format, "  ", write, ctx);
    } else {
        write_str(write, ctx, "{\"name\":");
        write_json_string(write, ctx, name);
        write_str(write, ctx, ",");
        write_fields(stats, heap_fields, nh, format, "", write, ctx);
        write_str(write, ctx, ",\"classes\":[");
    }
    for (size_t c = 0; c < MP_HEAP_CLASSES; c++) {
        const mp_heap_class_stats *k = &stats->classes[c];
        if (k->allocs == 0 && k->bytes_reserved == 0)
            continue;
        if (format == MP_FORMAT_TEXT) {
            snprintf(line, sizeof line, "  class %zu:\n", k->size);
            write_str(write, ctx, line);
            write_fields(k, class_fields, nc, format, "    ", write, ctx);
        } else {
            snprintf(line, sizeof line, "%s{\"size\":%zu,", first ? "" : ",", k->size);
            write_str(write, ctx, line);
            write_fields(k, class_fields, nc, format, "", write, ctx);
            write_str(write, ctx, "}");
        }
        first = false;
    }
    if (format == MP_FORMAT_JSON)
        write_str(write, ctx, "]}\n");
    return 0;
}
#endif /* !MP_FREESTANDING */

/*
 * test_heap_create.c: making heaps (mp_heap_create's options and every EINVAL case) and the
 * statistics writers (text and JSON, names in UTF-8 and not).
 * The class table and the contract suite every kind of heap runs are test_heap.c; helpers shared:
 * test_heap.h.
 *
 * Usage: test_heap_create. Nothing here is random; under a second.
 */
#define _DEFAULT_SOURCE /* mincore, MAP_ANONYMOUS, MADV_POPULATE_WRITE */

#include "test_heap.h"

/* ------------------------------------------------------------------------------------------------
 * Creating heaps, the class table, statistics output
 * ---------------------------------------------------------------------------------------------- */

static void test_create(void)
{
    mp_heap *h = mp_heap_create(NULL);
    CHECK("create: NULL options give a default heap", h != NULL);
    mp_heap_destroy(h);
    mp_heap_destroy(NULL); /* does nothing */

    const unsigned bad_flags[] = {1u << 4, 1u << 8, 1u << 31};
    for (size_t i = 0; i < 3; i++) {
        errno = 0;
        h = mp_heap_create(&(mp_heap_opts){.flags = bad_flags[i]});
        CHECK("create: an unknown flag gives EINVAL", h == NULL && errno == EINVAL);
        mp_heap_destroy(h);
    }
    static alignas(64) unsigned char buf[1 << 20];
    errno = 0;
    h = mp_heap_create(
        &(mp_heap_opts){.flags = MP_THREAD_SAFE, .buffer = buf, .buffer_size = sizeof buf});
    CHECK("create: MP_THREAD_SAFE with a buffer gives EINVAL", h == NULL && errno == EINVAL);
    mp_heap_destroy(h);
    errno = 0;
    h = mp_heap_create(&(mp_heap_opts){.buffer = buf, .buffer_size = 16});
    CHECK("create: a buffer too small for the bookkeeping gives EINVAL",
          h == NULL && errno == EINVAL);
    mp_heap_destroy(h);
    /* The smallest buffer that takes the bookkeeping: every smaller one gives EINVAL, and the
     * bookkeeping stays inside the buffer (the bytes after it keep their fill). */
    size_t least = 0;
    tally fit = {0};
    for (size_t n = 16; least == 0 && n < 64 * KiB; n++) {
        memset(buf, 0xA5, n + 64);
        errno = 0;
        h = mp_heap_create(&(mp_heap_opts){.buffer = buf, .buffer_size = n});
        if (h == NULL)
            tally_expect(&fit, errno == EINVAL, "buffer of %zu: NULL, errno %d", n, errno);
        else
            least = n;
        tally_expect(&fit, buf[n] == 0xA5 && buf[n + 63] == 0xA5, "buffer of %zu: written past", n);
        mp_heap_destroy(h);
    }
    CHECK("create: a buffer just too small gives EINVAL, the least one works, nothing written past",
          least != 0 && fit.bad == 0);
    counting_source *s = src_new();
    mp_source half = {counting_map, NULL, s}, other = {NULL, counting_unmap, s};
    errno = 0;
    h = mp_heap_create(&(mp_heap_opts){.source = &half});
    CHECK("create: a source without unmap gives EINVAL", h == NULL && errno == EINVAL);
    mp_heap_destroy(h);
    errno = 0;
    h = mp_heap_create(&(mp_heap_opts){.source = &other});
    CHECK("create: a source without map gives EINVAL", h == NULL && errno == EINVAL);
    mp_heap_destroy(h);

    /* Flags that are fine together. */
    const unsigned good[] = {
        0,         MP_ZERO,        MP_CHECKED,
        MP_SECURE, MP_THREAD_SAFE, MP_THREAD_SAFE | MP_CHECKED | MP_SECURE | MP_ZERO};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        h = mp_heap_create(&(mp_heap_opts){.flags = good[i]});
        void *p = mp_heap_alloc(h, 100);
        CHECK("create: every combination of known flags works", h != NULL && p != NULL);
        mp_heap_free(h, p);
        mp_heap_destroy(h);
    }

    /* The name: kept, truncated to MP_NAME_MAX - 1 bytes. */
    const char *longname = "a-heap-name-much-longer-than-thirty-two-bytes";
    h = mp_heap_create(&(mp_heap_opts){.name = longname});
    struct mp_heap_stats st;
    if (CHECK("create: a long name", h != NULL && mp_heap_stats(h, &st) == 0))
        CHECK("create: the name is truncated to MP_NAME_MAX - 1 bytes",
              strlen(st.name) == MP_NAME_MAX - 1 &&
                  strncmp(st.name, longname, MP_NAME_MAX - 1) == 0);
    CHECK("stats: NULL out gives EINVAL", mp_heap_stats(h, NULL) == EINVAL);
    CHECK("stats: NULL heap gives EINVAL", mp_heap_stats(NULL, &st) == EINVAL);
    mp_heap_destroy(h);

    /* A NULL heap. */
    errno = 0;
    void *p = mp_heap_alloc(NULL, 10);
    CHECK("alloc: a NULL heap gives EINVAL", p == NULL && errno == EINVAL);
    errno = 0;
    p = mp_heap_aligned_alloc(NULL, 64, 10);
    CHECK("aligned_alloc: a NULL heap gives EINVAL", p == NULL && errno == EINVAL);
    errno = 0;
    p = mp_heap_calloc(NULL, 2, 10);
    CHECK("calloc: a NULL heap gives EINVAL", p == NULL && errno == EINVAL);
    /* Creating a heap takes no class chunk: class pools come on first use. */
    h = mp_heap_create(&(mp_heap_opts){.source = &(mp_source){counting_map, counting_unmap, s}});
    size_t before = s->bytes_out;
    p = mp_heap_alloc(h, 24);
    CHECK("create: classes are made on first use", h != NULL && p != NULL && s->bytes_out > before);
    mp_heap_free(h, p);
    mp_heap_destroy(h);
    CHECK("create: destroy gives back every byte", s->bytes_out == 0 && s->maps == s->unmaps);
    free(s);
}

typedef struct textbuf {
    char text[1 << 16];
    size_t len;
} textbuf;

static void text_write(void *ctx, const char *text, size_t len)
{
    textbuf *b = ctx;
    if (b->len + len < sizeof b->text) {
        memcpy(b->text + b->len, text, len);
        b->len += len;
        b->text[b->len] = '\0';
    }
}

static void test_stats_write(void)
{
    mp_heap *h = mp_heap_create(&(mp_heap_opts){.name = "writer"});
    void *p = mp_heap_alloc(h, 100), *q = mp_heap_alloc(h, MiB);
    struct mp_heap_stats s;
    static textbuf b;
    if (!CHECK("stats write: a heap", h && p && q && mp_heap_stats(h, &s) == 0))
        return;
    b.len = 0;
    CHECK("stats write: text", mp_heap_stats_write(&s, MP_FORMAT_TEXT, text_write, &b) == 0);
    CHECK("stats write: text names the heap and its counts",
          b.len > 0 && strstr(b.text, "writer") && strstr(b.text, "allocs"));
    b.len = 0;
    CHECK("stats write: JSON", mp_heap_stats_write(&s, MP_FORMAT_JSON, text_write, &b) == 0);
    size_t end = b.len;
    while (end > 0 && (b.text[end - 1] == '\n' || b.text[end - 1] == ' '))
        end--;
    CHECK("stats write: JSON is one object with the field names",
          b.len > 0 && b.text[0] == '{' && end > 0 && b.text[end - 1] == '}' &&
              strstr(b.text, "\"blocks_in_use\"") && strstr(b.text, "\"large_in_use\""));
    b.len = 0;
    CHECK("stats write: an unknown format gives EINVAL and writes nothing",
          mp_heap_stats_write(&s, 7, text_write, &b) == EINVAL && b.len == 0);
    CHECK("stats write: NULL stats or writer give EINVAL",
          mp_heap_stats_write(NULL, MP_FORMAT_TEXT, text_write, &b) == EINVAL &&
              mp_heap_stats_write(&s, MP_FORMAT_TEXT, NULL, &b) == EINVAL);
    mp_heap_free(h, p);
    mp_heap_free(h, q);
    mp_heap_destroy(h);
}

/* The heap's statistics in JSON are valid UTF-8 with sane strings whatever its name, and a UTF-8
 * name is cut to its longest prefix of whole characters. */
static void test_stats_write_names(void)
{
    static textbuf b;
    const char *const *lists[] = {utf8_names, raw_names};
    const size_t counts[] = {sizeof utf8_names / sizeof *utf8_names,
                             sizeof raw_names / sizeof *raw_names};
    for (size_t l = 0; l < 2; l++) {
        for (size_t i = 0; i < counts[l]; i++) {
            mp_heap *h = mp_heap_create(&(mp_heap_opts){.name = lists[l][i]});
            struct mp_heap_stats s;
            void *p = h ? mp_heap_alloc(h, 100) : NULL;
            if (!CHECK("stats write: a named heap", p && mp_heap_stats(h, &s) == 0)) {
                mp_heap_destroy(h);
                continue;
            }
            CHECK("stats write: a UTF-8 name is cut on a character boundary",
                  l != 0 || name_is_longest_prefix(s.name, lists[l][i]));
            b.len = 0;
            CHECK("stats write: JSON of any name is valid UTF-8 with sane strings",
                  mp_heap_stats_write(&s, MP_FORMAT_JSON, text_write, &b) == 0 &&
                      utf8_valid(b.text, b.len) && json_strings_sane(b.text, b.len));
            b.len = 0;
            CHECK("stats write: text of a UTF-8 name is valid UTF-8",
                  mp_heap_stats_write(&s, MP_FORMAT_TEXT, text_write, &b) == 0 &&
                      (l != 0 || utf8_valid(b.text, b.len)));
            mp_heap_free(h, p);
            mp_heap_destroy(h);
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * The run
 * ---------------------------------------------------------------------------------------------- */

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    mp_set_error_handler(record_error, NULL);
    const heap_part parts[] = {{"create", test_create},
                               {"stats output", test_stats_write},
                               {"stats output, names", test_stats_write_names}};
    run_parts(parts, sizeof parts / sizeof parts[0]);
    return TEST_DONE();
}

/*
 * arena_cleanup.c: a request handler's arena, as an HTTP server keeps one per connection (APR's
 * and nginx's pools): each request's strings and a temporary file live until the request ends,
 * then go at once. The file is closed by a cleanup registered on the arena, so no path out of the
 * handler can leak it; a mark taken before an optional step (a compressed copy) lets the handler
 * give up that step alone, closing only its own file. The arena keeps its chunks across requests
 * (a reset keeps what the last request used), so the source is called only while the requests
 * grow; mp_arena_trim() gives them back when the connection goes idle.
 * Checks its own results; exits nonzero on the first failed check.
 */
#include <mempool.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check(const char *what, int ok)
{
    if (!ok) {
        fprintf(stderr, "arena_cleanup: FAILED: %s\n", what);
        failures++;
    }
}

static int open_files;

/* The cleanup: closes a file the request opened (ctx is the FILE *). */
static void close_file(void *ctx)
{
    fclose(ctx);
    open_files--;
}

/* A temporary file that closes itself when the arena releases what was allocated before it. */
static FILE *request_tmpfile(mp_arena *arena)
{
    FILE *f = tmpfile();
    if (f == NULL)
        return NULL;
    if (mp_arena_add_cleanup(arena, close_file, f) != 0) {
        fclose(f);
        return NULL;
    }
    open_files++;
    return f;
}

/* One request: copies its header lines into the arena, spools the body to a temporary file and,
 * for large bodies, tries a compressed copy that it may abandon (a rewind: that file alone
 * closes). */
static int handle_request(mp_arena *arena, int id, size_t body)
{
    char **lines = mp_arena_alloc(arena, 16 * sizeof *lines);
    if (lines == NULL)
        return ENOMEM;
    for (int i = 0; i < 16; i++) {
        lines[i] = mp_arena_alloc(arena, 64);
        if (lines[i] == NULL)
            return ENOMEM;
        snprintf(lines[i], 64, "X-Request-%d-Header-%d: value", id, i);
    }
    FILE *spool = request_tmpfile(arena);
    if (spool == NULL)
        return errno != 0 ? errno : EIO;
    for (size_t n = 0; n < body; n++)
        fputc('a' + (int)(n % 26), spool);

    mp_arena_pos before_copy = mp_arena_mark(arena);
    FILE *copy = request_tmpfile(arena);
    char *scratch = mp_arena_alloc(arena, body / 2 + 1); /* the compressor's window */
    if (copy != NULL && scratch != NULL && body < 100000)
        return 0; /* kept: both files close when the request ends */
    /* Not worth it (or no memory): give up the copy; only its file closes now. */
    int before = open_files;
    check("rewind to the mark succeeds", mp_arena_rewind(arena, before_copy) == 0);
    check("the rewind closed the copy's file, not the spool",
          open_files == before - (copy != NULL) && ftell(spool) == (long)body);
    return 0;
}

int main(void)
{
    mp_arena *arena = mp_arena_create(&(mp_arena_opts){.name = "connection"});
    check("create", arena != NULL);
    if (arena == NULL)
        return 1;
    struct mp_arena_stats s;
    uint64_t chunks_after_first = 0;
    for (int id = 0; id < 200; id++) {
        size_t body = id % 50 == 49 ? 200000 : 1000 + (size_t)(id % 7) * 3000;
        check("request handled", handle_request(arena, id, body) == 0);
        mp_arena_reset(arena); /* the request ends: every cleanup runs, then the memory goes */
        check("every file of the request closed at the reset", open_files == 0);
        mp_arena_stats(arena, &s);
        if (id == 49)
            chunks_after_first = s.chunks;
    }
    mp_arena_stats(arena, &s);
    printf("arena_cleanup: 200 requests, %llu allocations, %llu resets, %llu chunks kept "
           "(%llu bytes reserved, %llu of them kept empty)\n",
           (unsigned long long)s.allocs, (unsigned long long)s.resets, (unsigned long long)s.chunks,
           (unsigned long long)s.bytes_reserved, (unsigned long long)s.bytes_kept);
    check("the chunks were reused, not taken again", s.chunks <= chunks_after_first);

    /* The connection goes idle: give the memory back, keeping the arena. */
    size_t given = mp_arena_trim(arena);
    mp_arena_stats(arena, &s);
    printf("arena_cleanup: idle: trim gave back %zu bytes, %llu chunks left\n", given,
           (unsigned long long)s.chunks);
    check("trim gave back every chunk of the idle arena", given > 0 && s.chunks == 0);

    /* A cleanup still registered when the arena is destroyed runs then. */
    check("a last request's file", request_tmpfile(arena) != NULL && open_files == 1);
    mp_arena_destroy(arena);
    check("destroy ran the last cleanup", open_files == 0);
    return failures == 0 ? 0 : 1;
}

/*
 * visit_conns.c: walking the live blocks of a pool (mp_pool_visit) and sizing a static buffer at
 * compile time (MP_POOL_BUFFER_SIZE).
 *
 * A server keeps its connections in a pool that lives in a static buffer sized for exactly
 * MAX_CONNS of them: no malloc, no mmap, and no guessing. Every tick it finds the connections idle
 * since before a deadline by visiting the pool's live blocks, with no list of its own to keep in
 * step, and closes them from the callback (which may free the block it is given). The same walk
 * over a heap (mp_heap_visit) counts the bytes each connection's buffers hold.
 *
 * Checks its own results and exits nonzero on the first failure, so ctest runs it as a test.
 */
#include <mempool.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONNS 500

struct conn {
    int fd;
    unsigned long last_active; /* the tick of its last request */
    char peer[40];
    void *rx; /* a receive buffer, from the heap */
};

/* Exactly the bytes for MAX_CONNS connections, aligned as the macro assumes. */
static _Alignas(MP_POOL_BUFFER_ALIGN(
    sizeof(struct conn),
    0)) unsigned char conn_buf[MP_POOL_BUFFER_SIZE(sizeof(struct conn), 0, MAX_CONNS)];

static int failures;

static void expect(int ok, const char *what)
{
    if (!ok) {
        printf("FAIL: %s\n", what);
        failures++;
    }
}

/* What the reaper needs in its callback: the deadline, the pool and heap to free into, a count. */
struct reaper {
    unsigned long deadline;
    mp_pool *conns;
    mp_heap *bufs;
    unsigned closed;
};

/* Closes a connection idle since before the deadline; always goes on to the next. */
static bool reap_idle(void *block, size_t size, void *ctx)
{
    struct reaper *r = ctx;
    struct conn *c = block;
    (void)size;
    if (c->last_active < r->deadline) {
        mp_heap_free(r->bufs, c->rx);
        mp_pool_free(r->conns, c); /* allowed: the block the visit gave us */
        r->closed++;
    }
    return true;
}

/* Adds up the usable bytes of the heap's live blocks. */
static bool add_bytes(void *block, size_t size, void *ctx)
{
    (void)block;
    *(size_t *)ctx += size;
    return true;
}

/* Counts the connections idle since before the deadline, without closing them. */
static bool find_stale(void *block, size_t size, void *ctx)
{
    struct reaper *r = ctx;
    (void)size;
    r->closed += ((struct conn *)block)->last_active < r->deadline;
    return true;
}

/* Stops at the first connection from a given peer. */
struct finder {
    const char *peer;
    struct conn *found;
};

static bool find_peer(void *block, size_t size, void *ctx)
{
    struct finder *f = ctx;
    struct conn *c = block;
    (void)size;
    if (strcmp(c->peer, f->peer) != 0)
        return true;
    f->found = c;
    return false; /* stop the visit */
}

int main(void)
{
    mp_pool *conns = mp_pool_create(&(mp_pool_opts){.block_size = sizeof(struct conn),
                                                    .buffer = conn_buf,
                                                    .buffer_size = sizeof conn_buf,
                                                    .name = "conns"});
    mp_heap *bufs = mp_heap_create(&(mp_heap_opts){.name = "rx"});
    expect(conns != NULL && bufs != NULL, "the pool in its static buffer, and a heap");
    if (conns == NULL || bufs == NULL)
        return 1;

    /* Fill the table: exactly MAX_CONNS fit, the next is refused. */
    unsigned long tick = 0;
    for (int i = 0; i < MAX_CONNS; i++) {
        struct conn *c = mp_pool_alloc(conns);
        if (c == NULL)
            break;
        c->fd = 100 + i;
        c->last_active = tick;
        snprintf(c->peer, sizeof c->peer, "10.0.%d.%d", i / 250, i % 250);
        c->rx = mp_heap_alloc(bufs, 512 + (size_t)(i % 4) * 1024);
        tick += i % 3 == 0; /* connections come in over a few hundred ticks */
    }
    mp_stats st;
    mp_pool_stats(conns, &st);
    expect(st.blocks_in_use == MAX_CONNS, "MP_POOL_BUFFER_SIZE holds MAX_CONNS connections");
    errno = 0;
    expect(mp_pool_alloc(conns) == NULL && errno == ENOMEM, "and not one more");

    size_t rx_bytes = 0;
    expect(mp_heap_visit(bufs, add_bytes, &rx_bytes) == 0, "visit the receive buffers");
    printf("%llu connections, %zu bytes of receive buffers\n", (unsigned long long)st.blocks_in_use,
           rx_bytes);

    struct finder f = {"10.0.1.7", NULL};
    expect(mp_pool_visit(conns, find_peer, &f) == 0 && f.found != NULL && f.found->fd == 357,
           "find a connection by its peer, stopping there");

    /* The reaper: everything idle for more than 100 ticks goes. */
    struct reaper r = {tick > 100 ? tick - 100 : 0, conns, bufs, 0};
    expect(mp_pool_visit(conns, reap_idle, &r) == 0, "visit the connections");
    mp_pool_stats(conns, &st);
    printf("closed %u idle connections (deadline tick %lu), %llu left\n", r.closed, r.deadline,
           (unsigned long long)st.blocks_in_use);
    expect(r.closed > 0 && st.blocks_in_use == MAX_CONNS - r.closed, "the idle ones are closed");
    r.closed = 0;

    /* What is left is what was active since the deadline, and its buffers alone are held. */
    expect(mp_pool_visit(conns, find_stale, &r) == 0 && r.closed == 0, "none left is idle");
    size_t left = 0;
    expect(mp_heap_visit(bufs, add_bytes, &left) == 0 && left < rx_bytes, "their buffers freed");

    /* Close the rest at shutdown, the same way. */
    r.deadline = (unsigned long)-1;
    mp_pool_visit(conns, reap_idle, &r);
    mp_pool_stats(conns, &st);
    expect(st.blocks_in_use == 0, "every connection closed at shutdown");
    struct mp_heap_stats hs;
    mp_heap_stats(bufs, &hs);
    expect(hs.blocks_in_use == 0, "every buffer freed");
    mp_pool_destroy(conns);
    mp_heap_destroy(bufs);
    printf("%s\n", failures == 0 ? "visit_conns: ok" : "visit_conns: FAILED");
    return failures != 0;
}

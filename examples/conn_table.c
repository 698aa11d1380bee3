/*
 * conn_table.c: a server's connection table on two pools, simulated tick by tick.
 *
 * Connections (struct conn, about 200 bytes) arrive in waves and live for a random number of ticks.
 * Each takes one block from the "conns" pool, capped at MAX_CONNS (the server's connection limit),
 * and a receive buffer from the "buffers" pool; a reply takes a second buffer until it is sent. The
 * buffers pool lives in a fixed static arena and never calls the system, like a server that
 * budgets its I/O memory up front. The conns pool takes its chunks through an accounting source
 * (an mp_source over aligned_alloc) so the program knows to the byte what the table costs.
 *
 * When a pool is full, mp_pool_alloc() returns NULL with errno ENOMEM and the server degrades
 * gracefully: a connection without a block or a receive buffer is refused (its slot is given back),
 * and a reply without a buffer waits for the next tick.
 *
 * The program checks itself as it goes: each connection carries a guard derived from its id and a
 * checksum of what it received, both verified at close, so blocks that overlapped or were handed
 * out twice would be caught; every few hundred ticks the pools' statistics must agree with the
 * table's own counts, and mp_pool_check() must pass. It prints a summary and both pools'
 * statistics, as text and as JSON, and exits 1 on the first failed check.
 * Usage: conn_table [seed]
 */
#include <mempool.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONNS 128 /* the connection limit: the conns pool's capacity */
#define CONN_ALIGN 64 /* each connection starts a cache line */
#define BUF_SIZE 1024 /* one receive or send buffer */
/* The buffers pool's whole memory: its bookkeeping and ~135 buffers, a few more than MAX_CONNS, so
 * busy waves run short of buffers as well as of connection slots. */
#define ARENA_SIZE (136u * 1024)
#define TICKS 4000
#define WAVE 500         /* ticks per busy or quiet half of a traffic wave */
#define MAX_LIFETIME 300 /* ticks */
#define CHECK_EVERY 250  /* ticks between full consistency checks */
#define GUARD_KEY UINT64_C(0x9E3779B97F4A7C15)

/* ================================================================================================
 * Checks and randomness
 * ============================================================================================== */

static void expect(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "conn_table: check failed: %s\n", what);
        exit(1);
    }
}

static uint64_t rng_state = 0x2545F4914F6CDD1Du;

/* xorshift64 (Marsaglia 2003); below() is uniform enough for a simulation. */
static uint32_t below(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)((rng_state >> 32) % n);
}

/* ================================================================================================
 * The accounting source: chunks from aligned_alloc(), with a running total
 * ============================================================================================== */

typedef struct accounting {
    size_t held;   /* bytes mapped and not yet unmapped */
    uint64_t maps; /* successful map calls */
    uint64_t unmaps;
} accounting;

static void *acct_map(void *ctx, size_t size, size_t align)
{
    accounting *acct = ctx;
    void *p = aligned_alloc(align, size); /* the source contract makes size a multiple of align */
    if (p != NULL) {
        acct->held += size;
        acct->maps++;
    }
    return p;
}

static void acct_unmap(void *ctx, void *p, size_t size)
{
    accounting *acct = ctx;
    acct->held -= size;
    acct->unmaps++;
    free(p);
}

/* ================================================================================================
 * Connections and the table
 * ============================================================================================== */

enum conn_state { CONN_READING, CONN_REPLYING };

struct conn {
    uint64_t id;
    uint64_t guard; /* id ^ GUARD_KEY, checked at close and by every server_check() */
    int fd;         /* -1: the simulation opens no socket */
    enum conn_state state;
    char peer[48]; /* "198.51.100.23:40123" */
    uint64_t opened_at, expires_at, last_active;
    uint64_t bytes_in, bytes_out;
    uint32_t requests;
    uint32_t rx_sum; /* sum of the bytes now in rx: rx's content is checked against it */
    unsigned char *rx;
    size_t rx_len;
    unsigned char *tx; /* NULL unless a reply is waiting to be sent */
    size_t tx_len;
    char user_agent[40];
};
static_assert(sizeof(struct conn) >= 160 && sizeof(struct conn) <= 256, /* 176 on 32-bit */
              "a connection is ~200 bytes");

typedef struct server {
    mp_pool *conns;
    mp_pool *buffers;
    accounting acct;
    struct conn *live[MAX_CONNS]; /* the table: open connections, in no order */
    size_t nlive;
    size_t ntx; /* live connections holding a tx buffer */
    uint64_t next_id;
    uint64_t accepted, refused_full, refused_nobuf, deferred_replies, replies, closed;
} server;

static alignas(64) unsigned char buffer_arena[ARENA_SIZE];

static uint32_t checksum(const unsigned char *p, size_t n)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += p[i];
    return sum;
}

/* A connection arrives: take a block and a receive buffer, or refuse it. */
static void conn_open(server *s, uint64_t now)
{
    struct conn *c = mp_pool_alloc(s->conns);
    if (c == NULL) {
        expect(errno == ENOMEM, "a full conns pool reports ENOMEM");
        s->refused_full++;
        return;
    }
    expect((uintptr_t)c % CONN_ALIGN == 0, "connections are cache-line aligned");
    unsigned char *rx = mp_pool_alloc(s->buffers);
    if (rx == NULL) {
        expect(errno == ENOMEM, "a full buffers pool reports ENOMEM");
        mp_pool_free(s->conns, c); /* graceful: give the slot back and refuse */
        s->refused_nobuf++;
        return;
    }
    memset(c, 0, sizeof *c);
    c->id = s->next_id++;
    c->guard = c->id ^ GUARD_KEY;
    c->fd = -1;
    snprintf(c->peer, sizeof c->peer, "198.51.100.%u:%u", 1 + below(254), 1024 + below(60000));
    snprintf(c->user_agent, sizeof c->user_agent, "client/%u.%u", below(10), below(100));
    c->opened_at = c->last_active = now;
    c->expires_at = now + 1 + below(MAX_LIFETIME);
    c->rx = rx;
    s->live[s->nlive++] = c;
    s->accepted++;
}

/* Verifies what only a block of our own, untouched by anyone else, can still hold. */
static void conn_verify(const server *s, const struct conn *c)
{
    expect(c->guard == (c->id ^ GUARD_KEY),
           "a connection's guard is intact (no overlapping blocks)");
    expect(c->rx_len <= BUF_SIZE && checksum(c->rx, c->rx_len) == c->rx_sum,
           "a receive buffer holds what was received (no overlapping buffers)");
    expect(mp_pool_owns(s->conns, c) && mp_pool_owns(s->buffers, c->rx),
           "blocks come from their pools");
}

static void conn_close(server *s, size_t i)
{
    struct conn *c = s->live[i];
    conn_verify(s, c);
    if (c->tx != NULL) {
        mp_pool_free(s->buffers, c->tx);
        s->ntx--;
    }
    mp_pool_free(s->buffers, c->rx);
    mp_pool_free(s->conns, c);
    s->live[i] = s->live[--s->nlive];
    s->closed++;
}

/* Data arrives; a full request (the buffer filled up) is answered with a reply in a tx buffer. */
static void conn_receive(struct conn *c, uint64_t now)
{
    size_t n = 1 + below(200);
    if (c->rx_len + n > BUF_SIZE)
        n = BUF_SIZE - c->rx_len;
    unsigned char byte = (unsigned char)(c->id + now);
    memset(c->rx + c->rx_len, byte, n);
    c->rx_len += n;
    c->rx_sum += (uint32_t)byte * (uint32_t)n;
    c->bytes_in += n;
    c->last_active = now;
    if (c->rx_len == BUF_SIZE && c->state == CONN_READING) {
        c->requests++;
        c->rx_len = 0;
        c->rx_sum = 0;
        c->state = CONN_REPLYING;
    }
}

/* A waiting reply gets its buffer (or waits: ENOMEM defers it), then drains over a few ticks. */
static void conn_send(server *s, struct conn *c)
{
    if (c->tx == NULL) {
        c->tx = mp_pool_alloc(s->buffers);
        if (c->tx == NULL) {
            expect(errno == ENOMEM, "a full buffers pool reports ENOMEM");
            s->deferred_replies++;
            return;
        }
        s->ntx++;
        c->tx_len = BUF_SIZE;
        memset(c->tx, 'r', BUF_SIZE);
    }
    size_t n = c->tx_len < 256 ? c->tx_len : 256;
    c->tx_len -= n;
    c->bytes_out += n;
    if (c->tx_len == 0) {
        mp_pool_free(s->buffers, c->tx);
        c->tx = NULL;
        s->ntx--;
        c->state = CONN_READING;
        s->replies++;
    }
}

/* One tick: arrivals (many in the busy half of a wave), then each connection reads, replies or
 * ends. */
static void server_tick(server *s, uint64_t now)
{
    uint32_t arrivals = below((now / WAVE) % 2 == 0 ? 4 : 2);
    for (uint32_t a = 0; a < arrivals; a++)
        conn_open(s, now);
    for (size_t i = 0; i < s->nlive;) {
        struct conn *c = s->live[i];
        if (c->expires_at <= now) {
            conn_close(s, i); /* moves the last connection into slot i */
            continue;
        }
        if (c->state == CONN_REPLYING)
            conn_send(s, c);
        else if (below(4) == 0)
            conn_receive(c, now);
        i++;
    }
}

/* ================================================================================================
 * Consistency: the pools' statistics against the table's own counts
 * ============================================================================================== */

static mp_stats stats_of(const mp_pool *pool)
{
    mp_stats st;
    expect(mp_pool_stats(pool, &st) == 0, "mp_pool_stats succeeds");
    return st;
}

static void server_check(const server *s)
{
    mp_stats c = stats_of(s->conns), b = stats_of(s->buffers);
    expect(mp_pool_check(s->conns) && mp_pool_check(s->buffers), "mp_pool_check passes");
    expect(c.blocks_in_use == s->nlive && b.blocks_in_use == s->nlive + s->ntx,
           "blocks in use match the table");
    expect(c.blocks_peak <= MAX_CONNS, "the connection limit holds");
    expect(c.failed_allocs == s->refused_full, "every refusal for a full table is counted");
    expect(b.failed_allocs == s->refused_nobuf + s->deferred_replies,
           "every buffer shortage is counted");
    expect(c.allocs == s->accepted + s->refused_nobuf, "conns allocs match");
    expect(c.bytes_reserved == s->acct.held && c.source_maps == s->acct.maps,
           "the conns pool holds exactly what the accounting source gave it");
    expect(b.bytes_reserved <= ARENA_SIZE && b.source_maps == 0,
           "the buffers pool stays in its arena");
    for (size_t i = 0; i < s->nlive; i++)
        conn_verify(s, s->live[i]);
}

/* ================================================================================================
 * Main
 * ============================================================================================== */

static void print_stats(const char *title, const mp_pool *pool, int format)
{
    mp_stats st = stats_of(pool);
    if (title[0] != '\0')
        printf("%s\n", title);
    expect(mp_stats_print(&st, format, stdout) == 0, "mp_stats_print succeeds");
}

int main(int argc, char **argv)
{
    static server s; /* static: the table is large and zero-initialised */
    if (argc > 1)
        rng_state = strtoull(argv[1], NULL, 0) | 1;
    mp_source acct_source = {acct_map, acct_unmap, &s.acct};
    s.conns = mp_pool_create(&(mp_pool_opts){.block_size = sizeof(struct conn),
                                             .align = CONN_ALIGN,
                                             .capacity = MAX_CONNS,
                                             .name = "conns",
                                             .source = &acct_source});
    s.buffers = mp_pool_create(&(mp_pool_opts){.block_size = BUF_SIZE,
                                               .buffer = buffer_arena,
                                               .buffer_size = sizeof buffer_arena,
                                               .name = "buffers"});
    expect(s.conns != NULL && s.buffers != NULL, "the pools are created");

    for (uint64_t now = 0; now < TICKS; now++) {
        server_tick(&s, now);
        if (now % CHECK_EVERY == 0)
            server_check(&s);
    }
    mp_stats peak_conns = stats_of(s.conns), peak_bufs = stats_of(s.buffers);
    while (s.nlive > 0) /* shutdown: close whatever is still open */
        conn_close(&s, s.nlive - 1);
    server_check(&s);
    expect(s.refused_full > 0 && s.deferred_replies + s.refused_nobuf > 0,
           "the busy waves filled both pools (the scenario exercises ENOMEM)");

    printf("conn_table: %d ticks, %" PRIu64 " connections accepted, %" PRIu64
           " closed; refused %" PRIu64 " (table full) + %" PRIu64 " (no buffer); %" PRIu64
           " replies, %" PRIu64 " deferred for a buffer\n",
           TICKS, s.accepted, s.closed, s.refused_full, s.refused_nobuf, s.replies,
           s.deferred_replies);
    printf("peak %" PRIu64 " connections (limit %d), %" PRIu64 " buffers; "
           "the conns pool holds %zu bytes from the accounting source\n\n",
           peak_conns.blocks_peak, MAX_CONNS, peak_bufs.blocks_peak, s.acct.held);
    print_stats("statistics (text):", s.conns, MP_FORMAT_TEXT);
    print_stats("", s.buffers, MP_FORMAT_TEXT);
    print_stats("\nstatistics (JSON):", s.conns, MP_FORMAT_JSON);
    print_stats("", s.buffers, MP_FORMAT_JSON);

    mp_pool_destroy(s.buffers);
    mp_pool_destroy(s.conns);
    expect(s.acct.held == 0 && s.acct.maps == s.acct.unmaps,
           "destroy gives every chunk back to the source");
    printf("conn_table: all checks passed\n");
    return 0;
}

/*
 * test_handles.c: MP_HANDLES (mp_pool_handle, mp_pool_deref): the contract of each function, errors
 * included; stale handles after free, reuse of the same memory, reset and trim; forged handles; a
 * reference-model run on every kind of handle pool; a thread that derefs while another allocates,
 * frees and trims.
 * Args: [SEED [OPS]]; OPS (the model's steps per pool kind, 200k by default) scales with
 * MP_TEST_SCALE.
 */
#define _POSIX_C_SOURCE 200809L /* posix_memalign (counting_source.h) */

#include "threads.h"

#include <stdalign.h>

static uint64_t seed = 1;

static mp_pool *make(unsigned flags, size_t block_size)
{
    return mp_pool_create(&(mp_pool_opts){.block_size = block_size, .flags = flags | MP_HANDLES});
}

/* ------------------------------------------------------------------------------------------------
 * Contracts
 * ---------------------------------------------------------------------------------------------- */

static void test_errors(void)
{
    mp_pool *plain = mp_pool_create(&(mp_pool_opts){.block_size = 32});
    mp_pool *pool = make(0, 32);
    void *p = mp_pool_alloc(plain), *q = mp_pool_alloc(pool);
    errno = 0;
    CHECK("handle: NULL pool gives 0, EINVAL", mp_pool_handle(NULL, q) == 0 && errno == EINVAL);
    errno = 0;
    CHECK("handle: NULL block gives 0, EINVAL", mp_pool_handle(pool, NULL) == 0 && errno == EINVAL);
    errno = 0;
    CHECK("handle: a pool without MP_HANDLES gives 0, EINVAL",
          mp_pool_handle(plain, p) == 0 && errno == EINVAL);
    mp_handle h = mp_pool_handle(pool, q);
    CHECK("handle: a live block's is not 0", h != 0);
    CHECK("deref: NULL pool gives NULL", mp_pool_deref(NULL, h) == NULL);
    CHECK("deref: handle 0 gives NULL", mp_pool_deref(pool, 0) == NULL);
    CHECK("deref: a pool without MP_HANDLES gives NULL", mp_pool_deref(plain, h) == NULL);
    mp_pool_free(pool, q);
    errno = 0;
    CHECK("handle: a free block gives 0, EINVAL", mp_pool_handle(pool, q) == 0 && errno == EINVAL);
    CHECK("pool: check holds", mp_pool_check(pool));
    mp_pool_free(plain, p);
    mp_pool_destroy(plain);
    mp_pool_destroy(pool);
}

static void test_live_and_stale(unsigned flags, size_t size)
{
    mp_pool *pool = make(flags, size);
    if (!CHECK("create: a handle pool", pool != NULL))
        return;
    enum { N = 3000 }; /* several chunks */
    static void *b[N];
    static mp_handle h[N];
    bool ok = true, distinct = true;
    for (int i = 0; i < N; i++) {
        b[i] = mp_pool_alloc(pool);
        h[i] = mp_pool_handle(pool, b[i]);
        ok &= b[i] != NULL && h[i] != 0 && mp_pool_deref(pool, h[i]) == b[i] &&
              mp_pool_handle(pool, b[i]) == h[i];
        distinct &= i == 0 || h[i] != h[i - 1];
    }
    CHECK("deref: each live block's handle gives the block", ok);
    CHECK("handle: blocks have their own handles", distinct);
    void *p = b[7];
    mp_pool_free(pool, p);
    CHECK("deref: stale after free", mp_pool_deref(pool, h[7]) == NULL);
    void *again = mp_pool_alloc(pool);
    mp_handle h2 = mp_pool_handle(pool, again);
    CHECK("alloc: the freed memory is handed out again (LIFO)", again == p);
    CHECK("deref: stale after the same memory is reused", mp_pool_deref(pool, h[7]) == NULL);
    CHECK("deref: the new handle gives the block", h2 != h[7] && mp_pool_deref(pool, h2) == p);
    CHECK("deref: neighbours unaffected",
          mp_pool_deref(pool, h[6]) == b[6] && mp_pool_deref(pool, h[8]) == b[8]);
    b[7] = again;
    h[7] = h2;
    /* Forged from a live handle: other generations, slots beyond the chunk, other chunk numbers. */
    bool none = true;
    for (uint64_t d = 1; d < 64; d++) {
        none &= mp_pool_deref(pool, h[5] + 2 * d) == NULL; /* later generations */
        none &= mp_pool_deref(pool, h[5] - 2 * d) == NULL || d > (uint32_t)h[5] / 2;
        none &= mp_pool_deref(pool, h[5] ^ (d << 31 << 20)) == NULL; /* chunk numbers not made */
        none &= mp_pool_deref(pool, h[5] + 1) == NULL;               /* the next generation */
        mp_handle other = h[5] + ((uint64_t)d << 31); /* other slots: a live one's handle */
        void *q = mp_pool_deref(pool, other);
        none &= q == NULL || mp_pool_handle(pool, q) == other;
    }
    CHECK("deref: forged near a live handle gives NULL", none);
    CHECK("pool: check holds", mp_pool_check(pool));
    mp_pool_reset(pool);
    ok = true;
    for (int i = 0; i < N; i++)
        ok &= mp_pool_deref(pool, h[i]) == NULL;
    CHECK("deref: every handle stale after reset", ok);
    void *r = mp_pool_alloc(pool);
    mp_handle hr = mp_pool_handle(pool, r);
    CHECK("reset: the first block again, with a new handle", r == b[0] && hr != h[0] &&
                                                                 mp_pool_deref(pool, hr) == r &&
                                                                 mp_pool_deref(pool, h[0]) == NULL);
    CHECK("pool: check holds after reset", mp_pool_check(pool));
    mp_pool_free(pool, r);
    mp_pool_destroy(pool);
}

/* Handles survive a trim of other chunks; a trimmed chunk's handles stay stale, also once new
 * chunks take their numbers. */
static void test_trim(void)
{
    counting_source cs;
    memset(&cs, 0, sizeof cs);
    cs.dirty = 1 << 20; /* the generations must not be taken from what the source gives */
    mp_source src = counting_source_of(&cs);
    mp_pool *pool =
        mp_pool_create(&(mp_pool_opts){.block_size = 64, .flags = MP_HANDLES, .source = &src});
    enum { N = 8000 }; /* runs of 1, 1, 2, 4 chunks of ~1000 blocks */
    static void *b[N];
    static mp_handle h[N];
    for (int i = 0; i < N; i++) {
        b[i] = mp_pool_alloc(pool);
        h[i] = mp_pool_handle(pool, b[i]);
    }
    for (int i = 100; i < N; i++)
        mp_pool_free(pool, b[i]);
    size_t given = mp_pool_trim(pool);
    CHECK("trim: gives the runs back whose blocks are all free", given > 0);
    bool live = true, stale = true;
    for (int i = 0; i < 100; i++)
        live &= mp_pool_deref(pool, h[i]) == b[i];
    for (int i = 100; i < N; i++)
        stale &= mp_pool_deref(pool, h[i]) == NULL;
    CHECK("deref: handles survive a trim of other chunks", live);
    CHECK("deref: a trimmed chunk's handles give NULL", stale);
    CHECK("pool: check holds after trim", mp_pool_check(pool));
    static mp_handle h2[N];
    bool fresh = true;
    for (int i = 100; i < N; i++) {
        void *p = mp_pool_alloc(pool);
        h2[i] = mp_pool_handle(pool, p);
        fresh &= mp_pool_deref(pool, h2[i]) == p;
    }
    stale = true;
    for (int i = 100; i < N; i++)
        stale &= mp_pool_deref(pool, h[i]) == NULL;
    CHECK("deref: new chunks' blocks have working handles", fresh);
    CHECK("deref: stale handles stay stale when new chunks take the trimmed ones' place", stale);
    CHECK("pool: check holds", mp_pool_check(pool));
    mp_pool_destroy(pool);
    CHECK("destroy: every byte back to the source", counting_all_back(&cs));
}

/* Random 64-bit values never deref to a block but a live block's own handle, and never fault. */
static void test_forged(void)
{
    mp_pool *pool = make(0, 16);
    enum { N = 5000 };
    static void *b[N];
    for (int i = 0; i < N; i++)
        b[i] = mp_pool_alloc(pool);
    for (int i = 0; i < N; i += 2)
        mp_pool_free(pool, b[i]);
    rng r = rng_make(seed, 99);
    uint64_t bad = 0, n = scaled_at_least(2000000, 10000);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = rng_next(&r);
        if (i % 4 == 1)
            v &= 0x0000007f800000ffu; /* small numbers and slots: the ranges in use */
        else if (i % 4 == 2)
            v = (v & 0xffffffff00000000u) >> 12 << 12 | (v & 0xff);
        void *p = mp_pool_deref(pool, v);
        bad += p != NULL && mp_pool_handle(pool, p) != v;
    }
    CHECK("deref: random values give NULL (or a live block whose handle they are)", bad == 0);
    mp_pool_destroy(pool);
}

/* ------------------------------------------------------------------------------------------------
 * The model: a reference list of live blocks with their handles, and of handles gone stale
 * ---------------------------------------------------------------------------------------------- */

typedef struct kind {
    const char *name;
    unsigned flags;
    bool buffer;
    size_t size; /* the block size; 0: 40 */
} kind;

/* "plain" takes mempool.h's inline handle path (where no tool watches); "plain 8", whose blocks
 * cannot keep a link and an index on a 64-bit target, the library's. */
static const kind kinds[] = {
    {"plain", 0, false, 0},
    {"plain 8", 0, false, 8},
    {"zero", MP_ZERO, false, 0},
    {"checked", MP_CHECKED, false, 0},
    {"secure", MP_SECURE, false, 0},
    {"secure zero", MP_SECURE | MP_ZERO, false, 0},
    {"thread-safe", MP_THREAD_SAFE, false, 0},
    {"thread-safe checked", MP_THREAD_SAFE | MP_CHECKED, false, 0},
    {"buffer", 0, true, 0},
    {"buffer secure", MP_SECURE, true, 0},
};

#define LIVE_MAX 4096
#define STALE_MAX 4096

static void model_run(const kind *k, uint64_t ops)
{
    static alignas(64) unsigned char buffer[1 << 18];
    size_t size = k->size != 0 ? k->size : 40;
    mp_pool_opts o = {.block_size = size, .flags = k->flags | MP_HANDLES, .name = k->name};
    if (k->buffer) {
        o.buffer = buffer;
        o.buffer_size = sizeof buffer;
    }
    mp_pool *pool = mp_pool_create(&o);
    if (!CHECK("model: create", pool != NULL))
        return;
    static void *live[LIVE_MAX];
    static mp_handle lh[LIVE_MAX], stale[STALE_MAX];
    size_t nlive = 0, nstale = 0, stale_at = 0;
    rng r = rng_make(seed, (uint64_t)(k - kinds));
    uint64_t wrong = 0, zero_bad = 0, fails = 0;
    for (uint64_t i = 0; i < ops; i++) {
        uint32_t op = rng_below(&r, 1000);
        if (op < 450 && nlive < LIVE_MAX) {
            void *p = mp_pool_alloc(pool);
            if (p == NULL) {
                fails++; /* a full buffer */
                continue;
            }
            if ((k->flags & MP_ZERO) != 0)
                zero_bad += ((unsigned char *)p)[size - 1] != 0;
            memset(p, 0xab, size);
            live[nlive] = p;
            lh[nlive++] = mp_pool_handle(pool, p);
        } else if (op < 900 && nlive > 0) {
            size_t j = rng_below(&r, (uint32_t)nlive);
            mp_pool_free(pool, live[j]);
            stale[stale_at] = lh[j];
            stale_at = (stale_at + 1) % STALE_MAX;
            nstale += nstale < STALE_MAX;
            live[j] = live[--nlive];
            lh[j] = lh[nlive];
        } else if (op < 997) {
            for (int t = 0; t < 4 && nlive > 0; t++) {
                size_t j = rng_below(&r, (uint32_t)nlive);
                wrong += mp_pool_deref(pool, lh[j]) != live[j];
            }
            for (int t = 0; t < 4 && nstale > 0; t++)
                wrong += mp_pool_deref(pool, stale[rng_below(&r, (uint32_t)nstale)]) != NULL;
        } else if (op < 998) {
            for (size_t j = 0; j < nlive; j++) {
                stale[stale_at] = lh[j];
                stale_at = (stale_at + 1) % STALE_MAX;
                nstale += nstale < STALE_MAX;
            }
            mp_pool_reset(pool);
            nlive = 0;
        } else if (op < 999) {
            mp_pool_trim(pool);
        } else {
            wrong += !mp_pool_check(pool);
        }
    }
    for (size_t j = 0; j < nlive; j++)
        wrong += mp_pool_deref(pool, lh[j]) != live[j];
    for (size_t j = 0; j < nstale; j++)
        wrong += mp_pool_deref(pool, stale[j]) != NULL;
    char msg[96];
    snprintf(msg, sizeof msg, "model %s: live handles give their block, stale ones NULL", k->name);
    CHECK(msg, wrong == 0);
    snprintf(msg, sizeof msg, "model %s: zeroed blocks", k->name);
    CHECK(msg, zero_bad == 0);
    snprintf(msg, sizeof msg, "model %s: no failed alloc but in a full buffer", k->name);
    CHECK(msg, fails == 0 || k->buffer);
    CHECK("model: check holds at the end", mp_pool_check(pool));
    for (size_t j = 0; j < nlive; j++)
        mp_pool_free(pool, live[j]); /* a checked pool reports leaks */
    mp_pool_destroy(pool);
}

/* ------------------------------------------------------------------------------------------------
 * Threads: derefs with no lock while another thread allocates, frees and trims
 * ---------------------------------------------------------------------------------------------- */

#define SHARED 512
static _Atomic uint64_t shared[SHARED]; /* handles, published by the writer */
static atomic_bool writer_done;

typedef struct thread_arg {
    mp_pool *pool;
    uint64_t ops;
} thread_arg;

static void *writer(void *arg)
{
    thread_arg *a = arg;
    static void *mine[SHARED];
    rng r = rng_make(seed, 7);
    for (uint64_t i = 0; i < a->ops; i++) {
        uint32_t j = rng_below(&r, SHARED);
        if (mine[j] != NULL) {
            mp_pool_free(a->pool, mine[j]); /* the handle stays published: now stale */
            mine[j] = NULL;
        } else {
            mine[j] = mp_pool_alloc(a->pool);
            if (mine[j] == NULL) {
                tfail("writer: alloc failed");
                break;
            }
            atomic_store_explicit(&shared[j], mp_pool_handle(a->pool, mine[j]),
                                  memory_order_release);
        }
        if (i % 4096 == 4095) { /* free most, so that whole chunks go back */
            for (uint32_t t = 0; t < SHARED; t++)
                if (mine[t] != NULL && t % 16 != 0) {
                    mp_pool_free(a->pool, mine[t]);
                    mine[t] = NULL;
                }
            mp_pool_trim(a->pool);
        }
    }
    for (uint32_t t = 0; t < SHARED; t++) {
        mp_pool_free(a->pool, mine[t]);
        mine[t] = NULL;
    }
    atomic_store(&writer_done, true);
    return NULL;
}

static void *reader(void *arg)
{
    thread_arg *a = arg;
    rng r = rng_make(seed, 8);
    uint64_t seen = 0;
    while (!atomic_load(&writer_done)) {
        uint64_t h = atomic_load_explicit(&shared[rng_below(&r, SHARED)], memory_order_acquire);
        void *p = mp_pool_deref(a->pool, h);
        seen += p != NULL;
        if (p != NULL && ((uintptr_t)p & 7) != 0)
            tfail("reader: deref gave a misaligned pointer %p", p);
    }
    (void)seen;
    return NULL;
}

static void test_threads(unsigned flags)
{
    mp_pool *pool = make(MP_THREAD_SAFE | flags, 256);
    thread_arg a = {pool, scaled_at_least(400000, 20000)};
    memset(shared, 0, sizeof shared);
    atomic_store(&writer_done, false);
    pthread_t w, rd;
    if (!CHECK("threads: the reader starts", thread_start(&rd, reader, &a))) {
        mp_pool_destroy(pool);
        return;
    }
    if (CHECK("threads: the writer starts", thread_start(&w, writer, &a)))
        pthread_join(w, NULL);
    else
        atomic_store(&writer_done, true); /* the reader loops until the writer is done */
    pthread_join(rd, NULL);
    CHECK("threads: no failure in the threads", tfail_take() == 0);
    bool stale = true;
    for (int j = 0; j < SHARED; j++)
        stale &= mp_pool_deref(pool, shared[j]) == NULL;
    CHECK("threads: every handle stale once every block is freed", stale);
    CHECK("threads: check holds", mp_pool_check(pool));
    mp_pool_destroy(pool);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        seed = strtoull(argv[1], NULL, 10);
    uint64_t ops = argc > 2 ? strtoull(argv[2], NULL, 10) : scaled_at_least(200000, 5000);
    test_errors();
    static const unsigned flag_sets[] = {0, MP_ZERO, MP_SECURE, MP_CHECKED, MP_THREAD_SAFE};
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++)
        test_live_and_stale(flag_sets[i], 48);
    /* strides below, near and above a chunk header's bytes: a block's index from its offset in the
     * chunk (mempool.h, struct mp_chunk_fast) */
    static const size_t sizes[] = {8, 24, 100, 136, 200, 3000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        test_live_and_stale(0, sizes[i]);
    test_trim();
    test_forged();
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        model_run(&kinds[i], ops);
    test_threads(0);
    test_threads(MP_SECURE);
    return TEST_DONE();
}

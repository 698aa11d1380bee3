/*
 * particles.c: a game's particle system on two pools, over three levels.
 *
 * Every frame each emitter spawns a few particles (one pool block each) and every particle moves,
 * ages and, at the end of its life, goes back to its pool: thousands of allocs and frees a second,
 * each a handful of inline instructions. Two moments show what a pool adds over malloc:
 *   - level change: mp_pool_reset() drops every particle of the old level at once, in O(chunk runs)
 *     instead of one free per particle, and the next level reuses the same memory from its start;
 *   - after an explosion (a burst of BURST particles in one frame, on the second level) has died
 *     out, mp_pool_trim() gives the memory the burst needed back to the system.
 *
 * Explosions take their particles from a pool of their own ("effects"), apart from the steady
 * emitters' ("ambient"). That is what makes the trim work: mp_pool_trim() gives back only chunk
 * runs whose blocks are all free, and in a shared pool the LIFO free list would hand the burst's
 * freed blocks to new ambient particles, one here and one there, pinning the runs the burst made
 * the pool take. Give short-lived bursts their own pool and trim it when they are over.
 *
 * The program checks itself: the game keeps, beside each particle pointer, the serial it gave that
 * particle, and every frame each particle must still carry its serial and a check word derived from
 * it (two live particles sharing memory would break this); after a reset, a trim and at the end the
 * pool's statistics must agree with the game's own counts. It prints one line per level and exits 1
 * on the first failed check.
 */
#include <mempool.h>

#include <inttypes.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define LEVELS 3
#define FRAMES 240     /* per level, at 60 per second */
#define MAX_LIVE 16384 /* the most particles the game tracks */
#define BURST 10000    /* particles in the explosion */
#define BURST_LEVEL 1  /* the level (from 0) with the explosion */
#define BURST_FRAME 60 /* and the frame it happens */
#define CHECK_KEY UINT64_C(0xD6E8FEB86659FD93)

static const float dt = 1.0f / 60.0f;

/* ================================================================================================
 * Checks and randomness
 * ============================================================================================== */

static void expect(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "particles: check failed: %s\n", what);
        exit(1);
    }
}

static uint64_t rng_state = 0x853C49E6748FEA9Bu;

/* xorshift64 (Marsaglia 2003). */
static uint32_t below(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)((rng_state >> 32) % n);
}

/* A uniform float in [-1, 1). */
static float spread(void)
{
    return (float)below(2000) / 1000.0f - 1.0f;
}

/* ================================================================================================
 * Particles and the world
 * ============================================================================================== */

struct particle {
    float pos[3], vel[3];
    float size;
    uint32_t color;       /* RGBA */
    uint16_t frames_left; /* dies when it reaches 0 */
    uint16_t is_burst;
    uint32_t serial;
    uint64_t check; /* serial * CHECK_KEY */
};

typedef struct particle_ref {
    struct particle *p;
    uint32_t serial; /* what p->serial must read */
} particle_ref;

/* The two kinds of particle, each with its pool; counts are kept per kind. */
enum { AMBIENT, EFFECT, KINDS };

typedef struct world {
    mp_pool *pool[KINDS];
    particle_ref live[MAX_LIVE]; /* the live particles of both kinds, in no order */
    size_t nlive, peak;
    uint32_t next_serial;
    uint64_t alive[KINDS], spawned[KINDS], died[KINDS], dropped_by_reset[KINDS];
} world;

static void spawn(world *w, const float at[3], int burst)
{
    expect(w->nlive < MAX_LIVE, "the game never tracks more than MAX_LIVE particles");
    struct particle *p = mp_pool_alloc(w->pool[burst]);
    expect(p != NULL, "a growing pool gives a block while memory lasts");
    expect((uintptr_t)p % alignof(struct particle) == 0, "particles are aligned");
    float speed = burst ? 12.0f : 3.0f;
    for (int k = 0; k < 3; k++) {
        p->pos[k] = at[k];
        p->vel[k] = speed * spread();
    }
    p->size = 0.1f + 0.05f * (float)below(4);
    p->color = burst ? 0xFF8020FFu : 0x80C0FFFFu;
    p->frames_left = (uint16_t)(burst ? 20 + below(20) : 30 + below(60));
    p->is_burst = (uint16_t)burst;
    p->serial = w->next_serial++;
    p->check = p->serial * CHECK_KEY;
    w->live[w->nlive++] = (particle_ref){p, p->serial};
    if (w->nlive > w->peak)
        w->peak = w->nlive;
    w->alive[burst]++;
    w->spawned[burst]++;
}

/* Moves and ages every particle; the dead go back to the pool. */
static void update(world *w)
{
    for (size_t i = 0; i < w->nlive;) {
        struct particle *p = w->live[i].p;
        expect(p->serial == w->live[i].serial && p->check == p->serial * CHECK_KEY,
               "a live particle is untouched by any other (no overlapping blocks)");
        for (int k = 0; k < 3; k++)
            p->pos[k] += p->vel[k] * dt;
        p->vel[1] -= 9.81f * dt;
        if (--p->frames_left > 0) {
            i++;
            continue;
        }
        w->alive[p->is_burst]--;
        w->died[p->is_burst]++;
        mp_pool_free(w->pool[p->is_burst], p);
        w->live[i] = w->live[--w->nlive];
    }
}

static mp_stats stats_of(const mp_pool *pool)
{
    mp_stats st;
    expect(mp_pool_stats(pool, &st) == 0, "mp_pool_stats succeeds");
    return st;
}

/* The pools' counters against the game's. */
static void check_counts(const world *w)
{
    for (int k = 0; k < KINDS; k++) {
        mp_stats st = stats_of(w->pool[k]);
        expect(mp_pool_check(w->pool[k]), "mp_pool_check passes");
        expect(st.blocks_in_use == w->alive[k], "blocks in use match the live particles");
        expect(st.allocs == w->spawned[k] && st.frees == w->died[k] + w->dropped_by_reset[k],
               "allocs and frees match spawns, deaths and resets");
        expect(st.failed_allocs == 0, "no allocation failed");
    }
}

/* ================================================================================================
 * Level change (reset) and the end of a burst (trim)
 * ============================================================================================== */

static void change_level(world *w, int level)
{
    for (int k = 0; k < KINDS; k++) {
        mp_stats before = stats_of(w->pool[k]);
        mp_pool_reset(w->pool[k]);
        w->dropped_by_reset[k] += w->alive[k];
        w->alive[k] = 0;
        mp_stats after = stats_of(w->pool[k]);
        expect(after.blocks_in_use == 0 && after.resets == (uint64_t)level,
               "reset frees every particle");
        expect(after.bytes_reserved == before.bytes_reserved,
               "reset keeps the memory for the next level");
        expect(after.blocks_peak == before.blocks_peak, "reset keeps the peak");
    }
    w->nlive = w->peak = 0;
    check_counts(w);
}

/* Gives the burst's memory back once its last particle is gone; returns the bytes trimmed. */
static size_t trim_after_burst(world *w)
{
    mp_stats before = stats_of(w->pool[EFFECT]);
    size_t given = mp_pool_trim(w->pool[EFFECT]);
    mp_stats after = stats_of(w->pool[EFFECT]);
    expect(given == before.bytes_reserved - after.bytes_reserved, "trim returns what it gave back");
    expect(given > 0 && after.chunks == 0, "with no particle left, trim gives back every chunk");
    check_counts(w);
    return given;
}

/* ================================================================================================
 * Main: three levels of frames
 * ============================================================================================== */

/* One frame: emitters spawn, everything updates; the explosion on its frame. */
static void frame(world *w, int level, int f)
{
    int emitters = level + 2;
    for (int e = 0; e < emitters; e++) {
        const float at[3] = {10.0f * (float)e, 1.0f, 0.0f};
        for (uint32_t n = 3 + below(4); n > 0; n--)
            spawn(w, at, 0);
    }
    if (level == BURST_LEVEL && f == BURST_FRAME) {
        const float at[3] = {5.0f, 2.0f, 5.0f};
        for (int n = 0; n < BURST; n++)
            spawn(w, at, 1);
    }
    update(w);
}

/* Plays one level's frames and prints its line. `first_block` is level 0's first particle. */
static void play_level(world *w, int level, void **first_block)
{
    size_t trimmed = 0, reserved_peak = 0;
    int trimmed_at = -1;
    uint64_t spawned0 = w->spawned[AMBIENT] + w->spawned[EFFECT];
    for (int f = 0; f < FRAMES; f++) {
        frame(w, level, f);
        if (f == 0 && level <= 1) {
            /* Level 0's first particle is the pool's lowest block; after the first reset (no
             * trim yet) that block is handed out first again. No particle dies in its first
             * frame. */
            if (level == 0)
                *first_block = w->live[0].p;
            expect(w->live[0].p == *first_block, "a reset pool hands out its lowest block first");
        }
        size_t reserved = (size_t)(stats_of(w->pool[AMBIENT]).bytes_reserved +
                                   stats_of(w->pool[EFFECT]).bytes_reserved);
        if (reserved > reserved_peak)
            reserved_peak = reserved;
        if (level == BURST_LEVEL && f > BURST_FRAME && w->alive[EFFECT] == 0 && trimmed_at < 0) {
            trimmed = trim_after_burst(w);
            trimmed_at = f;
        }
    }
    check_counts(w);
    printf("level %d: %d frames, %" PRIu64 " particles spawned, peak %zu live, "
           "%zu KiB reserved at peak",
           level + 1, FRAMES, w->spawned[AMBIENT] + w->spawned[EFFECT] - spawned0, w->peak,
           reserved_peak / 1024);
    if (trimmed_at >= 0)
        printf("; burst of %d at frame %d, gone by frame %d: trim gave back %zu KiB", BURST,
               BURST_FRAME, trimmed_at, trimmed / 1024);
    printf("\n");
}

int main(void)
{
    static world w; /* static: the live table is large */
    static const char *const names[KINDS] = {"ambient", "effects"};
    for (int k = 0; k < KINDS; k++) {
        w.pool[k] = mp_pool_create(
            &(mp_pool_opts){.block_size = sizeof(struct particle), .name = names[k]});
        expect(w.pool[k] != NULL, "the pools are created");
    }
    void *first_block = NULL;
    for (int level = 0; level < LEVELS; level++) {
        if (level > 0)
            change_level(&w, level);
        play_level(&w, level, &first_block);
    }

    for (int k = 0; k < KINDS; k++) {
        mp_stats st = stats_of(w.pool[k]);
        printf("pool \"%s\": %" PRIu64 " spawned, %" PRIu64 " died, %" PRIu64 " dropped by %" PRIu64
               " resets; peak %" PRIu64 " blocks, %" PRIu64 " KiB reserved at the end\n",
               st.name, w.spawned[k], w.died[k], w.dropped_by_reset[k], st.resets, st.blocks_peak,
               st.bytes_reserved / 1024);
        mp_pool_destroy(w.pool[k]); /* the last level's particles go with it */
    }
    printf("particles: all checks passed\n");
    return 0;
}

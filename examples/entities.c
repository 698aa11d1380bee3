/*
 * entities.c: an entity system whose entities refer to each other by handle (MP_HANDLES).
 *
 * Monsters chase a target: each monster keeps its target as an mp_handle, not a pointer. Every
 * tick some entities die (mp_pool_free) and new ones spawn, often in the very memory of the dead
 * (a pool reuses the most recently freed block first). A pointer to a dead target would then read
 * the newcomer and chase it by mistake; the handle derefs to NULL instead, and the monster picks a
 * new target. At the level's end mp_pool_reset() drops every entity at once, and every handle the
 * game still holds goes stale with it.
 *
 * The program checks itself: each entity carries a serial; a monster remembers its target's serial
 * beside the handle, and a deref that gives a block must give the entity with that serial (a stale
 * handle that derefs to a newcomer would break this). It prints one line per level and exits 1 on
 * the first failed check.
 */
#include <mempool.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define ENTITIES 2000
#define TICKS 200
#define LEVELS 2

typedef struct entity {
    uint64_t serial;
    float x, y;
    mp_handle target;       /* another entity, or 0 */
    uint64_t target_serial; /* the serial the target had when it was chosen */
} entity;

static mp_pool *pool;
static entity *alive[ENTITIES];
static mp_handle handles[ENTITIES];
static uint64_t next_serial = 1, rng_state = 88172645463325252u;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void fail(const char *what)
{
    printf("entities: FAILED: %s\n", what);
    exit(1);
}

static void spawn(size_t i)
{
    entity *e = mp_pool_alloc(pool);
    if (e == NULL)
        fail("spawn: out of memory");
    e->serial = next_serial++;
    e->x = (float)(rnd() % 1000);
    e->y = (float)(rnd() % 1000);
    e->target = 0;
    alive[i] = e;
    handles[i] = mp_pool_handle(pool, e);
    if (handles[i] == 0 || mp_pool_deref(pool, handles[i]) != e)
        fail("a new entity's handle gives it back");
}

/* Picks a target at random among the living. */
static void aim(entity *e)
{
    size_t j = rnd() % ENTITIES;
    e->target = handles[j];
    e->target_serial = alive[j]->serial;
}

/* One tick: every entity moves toward its target, if the target still lives. Returns the number of
 * targets found dead (stale handles). */
static unsigned tick(void)
{
    unsigned lost = 0;
    for (size_t i = 0; i < ENTITIES; i++) {
        entity *e = alive[i];
        entity *t = mp_pool_deref(pool, e->target);
        if (t == NULL) {
            lost += e->target != 0;
            aim(e);
            continue;
        }
        if (t->serial != e->target_serial)
            fail("a handle gave another entity than the one it was made for");
        e->x += (t->x - e->x) * 0.1f;
        e->y += (t->y - e->y) * 0.1f;
    }
    for (int k = 0; k < ENTITIES / 20; k++) { /* deaths and births, in the same memory */
        size_t i = rnd() % ENTITIES;
        mp_handle old = handles[i];
        mp_pool_free(pool, alive[i]);
        spawn(i);
        if (mp_pool_deref(pool, old) != NULL)
            fail("a dead entity's handle still gives a block");
    }
    return lost;
}

int main(void)
{
    pool = mp_pool_create(
        &(mp_pool_opts){.block_size = sizeof(entity), .flags = MP_HANDLES, .name = "entities"});
    if (pool == NULL)
        fail("create");
    for (int level = 1; level <= LEVELS; level++) {
        for (size_t i = 0; i < ENTITIES; i++)
            spawn(i);
        for (size_t i = 0; i < ENTITIES; i++)
            aim(alive[i]);
        unsigned long lost = 0;
        for (int t = 0; t < TICKS; t++)
            lost += tick();
        mp_handle kept = handles[0];
        mp_pool_reset(pool); /* the level ends: every entity goes, every handle goes stale */
        if (mp_pool_deref(pool, kept) != NULL)
            fail("a handle survived the reset");
        printf("level %d: %d entities, %d ticks, %lu stale targets caught, 0 misdirected\n", level,
               ENTITIES, TICKS, lost);
        if (lost == 0)
            fail("no target died: the test saw nothing");
    }
    if (!mp_pool_check(pool))
        fail("mp_pool_check");
    mp_pool_destroy(pool);
    return 0;
}

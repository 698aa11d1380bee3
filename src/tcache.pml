/*
 * tcache.pml: a Promela model of tcache.c's cross-thread protocol (issue 17), checked exhaustively
 * by spin (scripts/test.sh, stage "model"; scripts/spin-tcache.sh runs it for 2 and 3 threads).
 *
 * What is modelled: NT threads, each with its cache of one thread-safe pool (Bonwick's two
 * magazines: a loaded LIFO list through the blocks' first words, of at most BATCH blocks, and a
 * previous magazine of exactly BATCH blocks or none), over the pool's free list, its carving of NB
 * blocks and its depot (stacks of magazines of BATCH blocks linked through their first blocks'
 * second words: a shelf per cache, of the magazines its thread gave back, and a shared stack, of
 * the shelves of exited threads), all under the pool's one lock. A cache that needs a magazine
 * takes its own shelf's newest, else the shared stack's, else another shelf's (any: the code
 * takes the one at the head of the pool's list of stocked caches). A thread allocates, frees a
 * block it holds (one it allocated or one handed to it: frees from other threads), hands a block
 * it holds to the next thread, empties the depot as mpi_ts_lock does (trim, reset, stats, check),
 * allocates as a thread without a cache does (from the free list, which an empty one refills with
 * a magazine of the depot), and at its end exits, giving its cache and its shelf back. Each step
 * names the function of tcache.c it stands for. A section under the lock is one atomic step (the
 * lock serializes them: no other thread touches what it reads), and so is each stretch of a
 * thread's work on its own cache between them; the interleavings explored are those of these
 * steps. Locals are zeroed after each operation to keep states few.
 * What is checked: no block is handed out twice (the assertion in alloc), none is lost (at the
 * end every carved block is on the free list, in a magazine or held by the program, exactly once,
 * and no exited thread left a shelf; a depot that has no magazine anywhere counts none),
 * every magazine holds exactly BATCH blocks (as nmags * batch in the statistics assumes),
 * the lock is only released by its holder, and no deadlock (spin's invalid end states).
 * Not modelled: frees without a cache (a push on the free list under the lock, the mirror of the
 * cacheless alloc's pop), the statistics counters (pops, pushes, flushed), the registry lock
 * (taken alone or before the pool's, so it adds no cycle), pools of 8-byte blocks (the same stack
 * kept as an array; a push that must grow it drops the lock and takes it again, holding only its
 * own previous magazine, which no step moves meanwhile: the states it passes are those before the
 * push), populating (a system call on the reserved range's pages before they are linked:
 * thread-local), fork.
 */

#ifndef NT
#define NT 2
#endif
#ifndef NB
#define NB 5 /* blocks the pool can carve */
#endif
#ifndef LIMIT
#define LIMIT 4 /* a cache's limit; cache_batch, a magazine, is LIMIT / 2 */
#endif
#define BATCH (LIMIT / 2)
#ifndef STEPS
#define STEPS 6 /* operations a thread makes before it exits */
#endif
#define NIL 255

byte next[NB];    /* a free block's first word: the link of the free list, a cache, a magazine */
byte magnext[NB]; /* a magazine's first block's second word: MAG_NEXT */
byte owner[NB];   /* 0: the allocator's; t + 1: held by the program in thread t */
byte head = NIL;  /* the pool's free list */
byte mags = NIL;  /* the depot's shared stack's newest magazine (pool->mags) */
byte nmags = 0;
byte carved = 0;  /* blocks 0 .. carved - 1 were carved */
byte lock = 0;    /* pool->lock: 0, or t + 1 while thread t holds it */
byte cfree[NT];   /* each thread's loaded list (pub->free) */
byte ccount[NT];  /* and its length (pushes - pops, less the previous magazine) */
byte cprev[NT];   /* each thread's previous magazine (c->prev), or NIL */
byte shelf[NT];   /* each cache's shelf in the depot: its newest magazine (c->shelf), or NIL */
byte shelflast[NT]; /* and its oldest (c->shelf_last), or NIL */
byte done = 0;

inline lock_take(t) { atomic { lock == 0 -> lock = t + 1 } }
inline lock_give(t) { assert(lock == t + 1); lock = 0 }

/* Walks from `last` to the end of its chain (at most NB links: no cycle). */
inline chain_end()
{
    i = 0;
    do
    :: next[last] != NIL -> last = next[last]; i++; assert(i < NB)
    :: else -> break
    od
}

/* shelf_pop: the newest magazine of shelf u, which has one, into `first`. */
inline shelf_pop(u)
{
    first = shelf[u]; shelf[u] = magnext[first];
    if
    :: shelf[u] == NIL -> shelflast[u] = NIL
    :: else -> skip
    fi
}

/* depot_pop for the cache of thread t (t == NT: a thread without a cache) into `first`: its own
 * shelf's newest, else the shared stack's, else any other shelf's (NIL if the depot is empty). */
inline depot_pop(t)
{
    if
    :: t < NT && shelf[t] != NIL -> shelf_pop(t)
    :: else ->
        if
        :: mags != NIL -> first = mags; mags = magnext[first]
        :: else ->
            first = NIL;
            v = NIL;                   /* any stocked shelf (v), not only the first: */
            u = 0;
            do
            :: u < NT && shelf[u] != NIL -> v = u;
                if
                :: break               /* this one */
                :: u++                 /* or a later one, else this (the last seen) */
                fi
            :: u < NT && shelf[u] == NIL -> u++
            :: u == NT -> break
            od;
            if
            :: v != NIL -> shelf_pop(v)
            :: else -> skip
            fi
        fi
    fi;
    if
    :: first != NIL -> nmags--
    :: else -> assert(nmags == 0) /* an empty depot holds no magazine anywhere */
    fi;
    u = 0; v = 0
}

/* depot_push of thread t's previous magazine onto its shelf (cache_give_prev). */
inline depot_push(t)
{
    magnext[cprev[t]] = shelf[t];
    if
    :: shelf[t] == NIL -> shelflast[t] = cprev[t]
    :: else -> skip
    fi;
    shelf[t] = cprev[t]; nmags++; cprev[t] = NIL
}

/* cache_exchange_empty's locked part: depot_pop, else cache_refill_unlock: blocks popped from a
 * free list that has some, else a range of never-used blocks reserved in O(1)
 * (mpi_pool_carve_range: a batch, or what the capacity leaves; a chunk's end, not modelled, cuts
 * it short as the capacity does), which the thread links after the lock (chain_link_range). */
inline cache_exchange_locked(t)
{
    atomic {
    lock_take(t);
    first = NIL; got = 0; i = NIL;
    depot_pop(t);
    if
    :: first != NIL -> got = BATCH
    :: first == NIL && head != NIL ->
        do
        :: got < BATCH && head != NIL -> b = head; head = next[b];  /* mpi_pool_take: a pop */
            if :: first == NIL -> first = b :: else -> next[last] = b fi;
            last = b; next[b] = NIL; got++
        :: else -> break
        od
    :: first == NIL && head == NIL && carved < NB ->
        i = carved; got = BATCH;                           /* mpi_pool_carve_range */
        if :: carved + got > NB -> got = NB - carved :: else -> skip fi;
        carved = carved + got
    :: else -> skip /* ENOMEM */
    fi;
    lock_give(t)
    };
    atomic {
    if
    :: i != NIL ->                                         /* chain_link_range */
        first = i;
        do
        :: i + 1 < first + got -> next[i] = i + 1; i++
        :: else -> break
        od;
        next[i] = NIL
    :: else -> skip
    fi;
    cfree[t] = first; ccount[t] = got; first = 0; last = 0; got = 0; b = 0; i = 0
    }
}

/* cache_exchange_empty: the previous magazine by cache_swap (thread-local, no lock), else under
 * the lock depot_pop, else cache_refill_unlock (the free list and carving). */
inline cache_exchange_empty(t)
{
    if
    :: cprev[t] != NIL -> atomic { cfree[t] = cprev[t]; cprev[t] = NIL; ccount[t] = BATCH }
    :: else -> cache_exchange_locked(t)
    fi
}

/* mp_pool_alloc: the inline pop, through mpi_ts_alloc's exchange when the loaded list is empty. */
inline pool_alloc(t)
{
    if
    :: cfree[t] == NIL -> cache_exchange_empty(t)
    :: else -> skip
    fi;
    atomic {
    if
    :: cfree[t] != NIL ->
        b = cfree[t]; cfree[t] = next[b]; ccount[t]--;
        assert(owner[b] == 0); /* never handed out twice */
        owner[b] = t + 1
    :: else -> skip /* ENOMEM: every block carved and held elsewhere */
    fi;
    b = 0
    }
}

/* cache_exchange_full: the previous magazine, if any, pushed on the depot under the lock
 * (cache_give_prev, depot_push); then, thread-local (cache_swap), the full loaded list made the
 * previous one. */
inline cache_exchange_full(t)
{
    if
    :: cprev[t] != NIL ->
        atomic {
        lock_take(t);
        depot_push(t);
        lock_give(t)
        }
    :: else -> skip
    fi;
    atomic { cprev[t] = cfree[t]; cfree[t] = NIL; ccount[t] = 0 }
}

/* mp_pool_free: the inline push, through mpi_ts_free's exchange when the loaded list is full. */
inline pool_free(t)
{
    owner[b] = 0;
    if
    :: ccount[t] >= BATCH -> cache_exchange_full(t)
    :: else -> skip
    fi;
    atomic { next[b] = cfree[t]; cfree[t] = b; ccount[t]++; b = 0 }
}

/* mpi_ts_alloc for a thread without a cache (cache_get gives NULL: e.g. a key destructor run after
 * thread_exit retired the thread's caches), under the lock: an empty free list takes a magazine of
 * the depot whole (depot_pop_to_list: no walk; no shelf of its own), then mpi_pool_alloc_general
 * pops the list or carves. */
inline cacheless_alloc(t)
{
    atomic {
    lock_take(t);
    if
    :: head == NIL -> depot_pop(NT); head = first; first = 0
    :: else -> skip
    fi;
    if
    :: head != NIL -> b = head; head = next[b]
    :: head == NIL && carved < NB -> b = carved; carved++
    :: else -> b = NIL /* ENOMEM */
    fi;
    if
    :: b != NIL -> assert(owner[b] == 0); owner[b] = t + 1 /* never handed out twice */
    :: else -> skip
    fi;
    lock_give(t); b = 0
    }
}

/* mpi_ts_lock's depot_drain: every magazine (the shelves' and the shared stack's) spliced onto
 * the free list. */
inline depot_drain(t)
{
    atomic {
    lock_take(t);
    do
    :: nmags != 0 ->
        depot_pop(NT); last = first;
        chain_end();
        next[last] = head; head = first                   /* mpi_pool_give_chain */
    :: else -> break
    od;
    lock_give(t); first = 0; last = 0; i = 0
    }
}

/* thread_exit's cache_retire: the loaded list spliced onto the free list, the previous magazine
 * pushed on its shelf (cache_give_prev), the shelf spliced whole onto the shared stack
 * (shelf_give). */
inline cache_retire(t)
{
    atomic {
    lock_take(t);
    if
    :: cfree[t] != NIL -> first = cfree[t]; last = first; chain_end(); next[last] = head; head = first
    :: else -> skip
    fi;
    if
    :: cprev[t] != NIL -> depot_push(t)
    :: else -> skip
    fi;
    if
    :: shelf[t] != NIL ->
        magnext[shelflast[t]] = mags; mags = shelf[t]; shelf[t] = NIL; shelflast[t] = NIL
    :: else -> skip
    fi;
    lock_give(t)
    };
    atomic { cfree[t] = NIL; ccount[t] = 0; first = 0; last = 0; i = 0 }
}

/* A block thread t holds, chosen by the model checker, or NIL if it holds none. */
inline pick_held(t)
{
    b = 0;
    do
    :: owner[b] == t + 1 -> break
    :: b < NB - 1 -> b++
    :: b == NB - 1 && owner[b] != t + 1 -> b = NIL; break
    od
}

proctype thread(byte t)
{
    byte first, last, b, i, u, v, got, steps = 0;
    do
    :: steps < STEPS -> steps++;
        if
        :: pool_alloc(t)
        :: cacheless_alloc(t)
        :: atomic { pick_held(t) }; if :: b != NIL -> pool_free(t) :: else -> b = 0 fi
        :: atomic { pick_held(t); if :: b != NIL -> owner[b] = (t + 1) % NT + 1 :: else -> skip fi; b = 0 }
        :: depot_drain(t)
        fi
    :: else -> break
    od;
    cache_retire(t);
    done++
}

init
{
    byte k, b, n, i, first;
    bool seen[NB];
    atomic {
        k = 0;
        do
        :: k < NB -> next[k] = NIL; magnext[k] = NIL; k++
        :: else -> break
        od;
        k = 0;
        do
        :: k < NT -> cfree[k] = NIL; cprev[k] = NIL; shelf[k] = NIL; shelflast[k] = NIL;
           run thread(k); k++
        :: else -> break
        od
    }
    done == NT;
    k = 0;
    do
    :: k < NT -> assert(shelf[k] == NIL); k++ /* an exited thread left no shelf */
    :: else -> break
    od;
    /* Nothing lost: every carved block is on the free list, in a magazine, or held, once. */
    n = 0;
    b = head;
    do
    :: b != NIL -> assert(b < carved && !seen[b]); seen[b] = true; n++; b = next[b]
    :: else -> break
    od;
    k = 0;
    first = mags;
    do
    :: first != NIL ->
        k++;
        b = first;
        i = 0;
        do
        :: b != NIL -> assert(b < carved && !seen[b]); seen[b] = true; n++; i++; b = next[b]
        :: else -> break
        od;
        assert(i == BATCH); /* a magazine is exactly a batch */
        first = magnext[first]
    :: else -> break
    od;
    assert(k == nmags);
    b = 0;
    do
    :: b < NB -> if :: owner[b] != 0 -> assert(b < carved && !seen[b]); n++ :: else -> skip fi; b++
    :: else -> break
    od;
    assert(n == carved)
}

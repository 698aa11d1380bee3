/*
 * peer_mempool_ts.h: mempool's thread-safe fixed-size pools (MP_THREAD_SAFE) as a suite peer: the
 * adapter of peer_mempool.h with the flag set. alloc and free are the same inline
 * mp_pool_alloc/mp_pool_free; off their plain fast path they go through this thread's cache of the
 * pool (default size), inline too, and to the pool's lock only when the cache is empty or full.
 * One handle is shared by every thread of a thread workload.
 */
#ifndef MP_BENCH_PEER_MEMPOOL_TS_H
#define MP_BENCH_PEER_MEMPOOL_TS_H

#define PEER_MEMPOOL_TS
#include "peer_mempool.h"

#endif /* MP_BENCH_PEER_MEMPOOL_TS_H */

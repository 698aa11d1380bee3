/*
 * boost_pool.h: a C face for boost::pool<> (boost_pool.cpp, compiled with g++), so the suite's C
 * loops can drive Boost.Pool. Each function is one call of the pool's own member function; where
 * the C and C++ compilers are both GCC the suite links the boost peer with link-time optimization,
 * so these calls are inlined into the loops like the C pools' inline functions (peer_init says
 * which).
 */
#ifndef MP_BENCH_BOOST_POOL_H
#define MP_BENCH_BOOST_POOL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct suite_boost_pool suite_boost_pool;

/* A boost::pool<> of `size`-byte blocks; NULL if out of memory. */
suite_boost_pool *suite_boost_open(size_t size);
/* pool.malloc(): NULL if out of memory. */
void *suite_boost_alloc(suite_boost_pool *h);
/* pool.free(p): the unordered free, O(1). */
void suite_boost_free(suite_boost_pool *h, void *p);
/* Destroys the pool, giving back all its memory (live blocks included). */
void suite_boost_close(suite_boost_pool *h);
/* Boost's version, "1_74". */
const char *suite_boost_version(void);

#ifdef __cplusplus
}
#endif

#endif /* MP_BENCH_BOOST_POOL_H */

/*
 * peer_boost.h: Boost.Pool's boost::pool<> (malloc/free of one block size) as a suite peer, through
 * the C adapter in boost_pool.h. SUITE_BOOST_LTO is 1 when CMake links this peer with link-time
 * optimization (C and C++ compilers both GCC), which inlines the adapter into the loops; otherwise
 * every alloc and free is one call more than boost::pool<> costs in C++.
 */
#ifndef MP_BENCH_PEER_BOOST_H
#define MP_BENCH_PEER_BOOST_H

#include "boost_pool.h"

#include <stdbool.h>
#include <stdio.h>

#ifndef SUITE_BOOST_LTO
#define SUITE_BOOST_LTO 0
#endif

#define PEER_NAME "boost"
#define PEER_FIXED_SIZE 1
#define PEER_THREAD_SAFE 0

typedef suite_boost_pool peer_handle;

static bool peer_init(char *about, size_t n)
{
    snprintf(
        about, n, "Boost %s boost::pool<> malloc/free via a C++ adapter, %s", suite_boost_version(),
        SUITE_BOOST_LTO ? "inlined by LTO" : "one call per op (no LTO across C and C++ compilers)");
    return true;
}

static peer_handle *peer_open(size_t size, size_t max_live)
{
    (void)max_live; /* the pool grows */
    return suite_boost_open(size);
}

static inline void *peer_alloc(peer_handle *h, size_t size)
{
    (void)size;
    return suite_boost_alloc(h);
}

static inline void peer_free(peer_handle *h, void *p, size_t size)
{
    (void)size;
    suite_boost_free(h, p);
}

static void peer_close(peer_handle *h)
{
    suite_boost_close(h);
}

#endif /* MP_BENCH_PEER_BOOST_H */

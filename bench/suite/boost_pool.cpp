// boost_pool.cpp: the C adapter over boost::pool<> declared in boost_pool.h.
//
// boost::pool<> and not object_pool<>: object_pool::destroy() is ordered_free(), which walks the
// free list to keep it sorted (O(free blocks) per free), and would measure that walk rather than
// the pool. pool<>::free() is the O(1) push. The pool's chunks come from new[] (its default user
// allocator), which is glibc's malloc in this peer's program; it grows by doubling its next chunk.
#include "boost_pool.h"

#include <boost/pool/pool.hpp>
#include <boost/version.hpp>

#include <new>

struct suite_boost_pool {
    boost::pool<> pool;
    explicit suite_boost_pool(size_t size) : pool(size)
    {
    }
};

suite_boost_pool *suite_boost_open(size_t size)
{
    return new (std::nothrow) suite_boost_pool(size);
}

void *suite_boost_alloc(suite_boost_pool *h)
{
    return h->pool.malloc();
}

void suite_boost_free(suite_boost_pool *h, void *p)
{
    h->pool.free(p);
}

void suite_boost_close(suite_boost_pool *h)
{
    delete h;
}

const char *suite_boost_version(void)
{
    return BOOST_LIB_VERSION;
}

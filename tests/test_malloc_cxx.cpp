/*
 * test_malloc_cxx.cpp: the drop-in malloc's operator new and delete (src/malloc_new.cpp), every
 * form, linked against libmempool_malloc.a (malloc_cxx_static) and run under LD_PRELOAD
 * (malloc_cxx_preload). Checks that new's blocks are the heap's (their count in its stats),
 * std::bad_alloc and the new-handler, nothrow forms, alignments, families mixed, and containers
 * filled and emptied across std::thread.
 */
#include "mempool.hpp" /* for mempool.h, which it includes with g++'s -Wshadow quieted */
#include "test.h"

#include <cstdint>
#include <cstdlib>
#include <map>
#include <new>
#include <string>
#include <thread>
#include <vector>

#pragma weak mp_default_heap
#pragma weak mp_heap_stats

namespace
{

std::uint64_t heap_allocs()
{
    static struct mp_heap_stats s;
    if (&mp_default_heap == nullptr || &mp_heap_stats == nullptr)
        return 0;
    mp_heap_stats(mp_default_heap(), &s);
    return s.allocs;
}

std::size_t opaque(std::size_t x)
{
    volatile std::size_t v = x;
    return v;
}

int handler_calls;
void *handler_reserve;

// Frees a reserve the first time, so the retry can succeed; then gives up (no handler).
void release_reserve()
{
    handler_calls++;
    std::free(handler_reserve);
    handler_reserve = nullptr;
    std::set_new_handler(nullptr);
}

void test_forms()
{
    std::uint64_t before = heap_allocs();
    int *volatile one = new int(5); // volatile: the pair may not be elided
    int *volatile many = new int[100];
    CHECK("new: the heap serves it (the library is in use)", heap_allocs() >= before + 2);
    delete one;
    delete[] many;
    void *p = ::operator new(24);
    ::operator delete(p, 24); // sized
    p = ::operator new[](1000);
    ::operator delete[](p, 1000);
    p = ::operator new(10, std::nothrow);
    CHECK("nothrow new: a block", p != nullptr);
    ::operator delete(p, std::nothrow);
    for (std::size_t a = 16; a <= (std::size_t(4) << 20); a *= 8) {
        auto al = std::align_val_t(a);
        p = ::operator new(100, al);
        CHECK("aligned new: aligned", reinterpret_cast<std::uintptr_t>(p) % a == 0);
        ::operator delete(p, 100, al);
        p = ::operator new[](a + 1, al, std::nothrow);
        CHECK("aligned nothrow new[]: aligned",
              p != nullptr && reinterpret_cast<std::uintptr_t>(p) % a == 0);
        ::operator delete[](p, al);
    }
    struct alignas(256) wide {
        char c[300];
    };
    wide *w = new wide[3];
    CHECK("new of an over-aligned type: aligned", reinterpret_cast<std::uintptr_t>(w) % 256 == 0);
    delete[] w;
    // families mixed: posix_memalign then delete is not C++, but free of new's block must work in
    // a drop-in; and new then sized delete, as the issue asks
    p = ::operator new(64);
    std::free(reinterpret_cast<void *>(opaque(reinterpret_cast<std::uintptr_t>(p))));
    CHECK("posix_memalign then delete", posix_memalign(&p, 128, 100) == 0);
    ::operator delete(reinterpret_cast<void *>(opaque(reinterpret_cast<std::uintptr_t>(p))));
}

void test_failure()
{
    bool threw = false;
    try {
        void *p = ::operator new(opaque(SIZE_MAX / 2));
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK("new: too large throws std::bad_alloc", threw);
    CHECK("nothrow new: too large gives nullptr",
          ::operator new(opaque(SIZE_MAX / 2), std::nothrow) == nullptr);
    CHECK("aligned nothrow new: too large gives nullptr",
          ::operator new(opaque(SIZE_MAX / 2), std::align_val_t(64), std::nothrow) == nullptr);
    handler_reserve = std::malloc(100);
    std::set_new_handler(release_reserve);
    threw = false;
    try {
        void *p = ::operator new(opaque(SIZE_MAX / 2));
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK("new: the new-handler is called before bad_alloc", threw && handler_calls == 1);
}

void test_threads()
{
    std::vector<std::thread> threads;
    std::vector<std::size_t> totals(4);
    for (unsigned t = 0; t < 4; t++) {
        threads.emplace_back([t, &totals] {
            std::map<int, std::string> m;
            std::vector<std::vector<int>> v;
            for (int i = 0; i < 20000; i++) {
                m[i] = std::string(static_cast<std::size_t>(i % 50), 'x');
                v.emplace_back(static_cast<std::size_t>(i % 17), i);
                if (i % 3 == 0)
                    m.erase(i / 2);
            }
            totals[t] = m.size() + v.size();
        });
    }
    for (auto &th : threads)
        th.join();
    bool same = true;
    for (auto n : totals)
        same = same && n == totals[0] && n > 0;
    CHECK("containers across std::thread: every thread's result the same", same);
}

} // namespace

int main()
{
    test_forms();
    test_failure();
    test_threads();
    return TEST_DONE();
}

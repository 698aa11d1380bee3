/*
 * test_cxx.cpp: mempool.hpp, the C++17 layer: every container family (vector, list, map,
 * unordered_map, deque, string) on every memory_resource and allocator, with the C object's
 * statistics showing the memory came from it and all went back; routing and alignment of the pool
 * resources; exceptions (bad_alloc, bad_array_new_length, invalid_argument); object_pool's
 * construction and destruction counts, throwing constructors, the live objects destroyed with the
 * pool or reported by a checked one; the RAII owners' moves; threads on the thread-safe resources.
 * Loop counts scale with MP_TEST_SCALE. Prints "N passed, N failed" last.
 */
#include "mempool.hpp"

#include "test.h"

#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <memory_resource>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace
{

std::size_t scaled(std::size_t n)
{
    std::size_t r = static_cast<std::size_t>(static_cast<double>(n) * test_scale());
    return r < 50 ? 50 : r;
}

/* ---- every container family over one memory_resource ---- */

/* Builds, edits and checks each std::pmr container on `r`; true when every content check held. */
bool pmr_containers(std::pmr::memory_resource *r, std::size_t n)
{
    bool ok = true;
    {
        std::pmr::vector<int> v(r);
        for (std::size_t i = 0; i < n; i++)
            v.push_back(static_cast<int>(i));
        ok &= v.size() == n && v[n / 2] == static_cast<int>(n / 2);
        std::pmr::list<int> l(v.begin(), v.end(), r);
        l.remove_if([](int x) { return x % 2 == 0; });
        ok &= l.size() == n / 2;
        std::pmr::map<int, std::pmr::string> m(r);
        for (std::size_t i = 0; i < n; i++)
            m.emplace(static_cast<int>(i), std::string(40, static_cast<char>('a' + i % 26)));
        for (std::size_t i = 0; i < n; i += 3)
            m.erase(static_cast<int>(i));
        ok &= m.size() == n - (n + 2) / 3 && m.at(1)[39] == 'b';
        ok &= m.at(1).get_allocator().resource() == r;
        std::pmr::unordered_map<int, int> u(r);
        for (std::size_t i = 0; i < n; i++)
            u[static_cast<int>(i)] = static_cast<int>(2 * i);
        for (std::size_t i = 0; i < n; i += 2)
            u.erase(static_cast<int>(i));
        ok &= u.size() == n / 2 && u.at(1) == 2;
        std::pmr::deque<int> d(r);
        for (std::size_t i = 0; i < n; i++) {
            d.push_back(static_cast<int>(i));
            d.push_front(-static_cast<int>(i));
        }
        while (d.size() > n)
            d.pop_front();
        ok &= d.front() == 0 && d.back() == static_cast<int>(n - 1);
        std::pmr::string s(r);
        for (std::size_t i = 0; i < n; i++)
            s += "mempool";
        ok &= s.size() == 7 * n && s.compare(7 * (n - 1), 7, "mempool") == 0;
    }
    return ok;
}

/* The same families with an STL allocator A<T> (rebound per container). */
template <template <class> class A, class... Args> bool alloc_containers(std::size_t n, Args... a)
{
    bool ok = true;
    using str = std::basic_string<char, std::char_traits<char>, A<char>>;
    std::vector<int, A<int>> v{A<int>(a...)};
    for (std::size_t i = 0; i < n; i++)
        v.push_back(static_cast<int>(i));
    ok &= v.size() == n && v[n - 1] == static_cast<int>(n - 1);
    std::list<int, A<int>> l(v.begin(), v.end(), A<int>(a...));
    l.remove_if([](int x) { return x % 2 == 0; });
    ok &= l.size() == n / 2;
    std::map<int, str, std::less<int>, A<std::pair<const int, str>>> m{
        A<std::pair<const int, str>>(a...)};
    for (std::size_t i = 0; i < n; i++)
        m.emplace(static_cast<int>(i), str(40, 'x', A<char>(a...)));
    for (std::size_t i = 0; i < n; i += 3)
        m.erase(static_cast<int>(i));
    ok &= m.size() == n - (n + 2) / 3;
    std::unordered_map<int, int, std::hash<int>, std::equal_to<int>, A<std::pair<const int, int>>>
        u{A<std::pair<const int, int>>(a...)};
    for (std::size_t i = 0; i < n; i++)
        u[static_cast<int>(i)] = static_cast<int>(i);
    for (std::size_t i = 0; i < n; i += 2)
        u.erase(static_cast<int>(i));
    ok &= u.size() == n / 2;
    std::deque<int, A<int>> d{A<int>(a...)};
    for (std::size_t i = 0; i < n; i++)
        d.push_front(static_cast<int>(i));
    ok &= d.size() == n && d.back() == 0;
    str s{A<char>(a...)};
    for (std::size_t i = 0; i < n; i++)
        s += "mempool";
    ok &= s.size() == 7 * n;
    return ok;
}

/* A memory_resource that counts what reaches it, over new_delete_resource(). */
struct counting_resource : std::pmr::memory_resource {
    std::size_t allocs = 0, frees = 0, live = 0;
    void *do_allocate(std::size_t b, std::size_t a) override
    {
        allocs++;
        live++;
        return std::pmr::new_delete_resource()->allocate(b, a);
    }
    void do_deallocate(void *p, std::size_t b, std::size_t a) override
    {
        frees++;
        live--;
        std::pmr::new_delete_resource()->deallocate(p, b, a);
    }
    bool do_is_equal(const memory_resource &o) const noexcept override
    {
        return this == &o;
    }
};

/* The bytes std::list<T> asks for a node (libstdc++: two links, then the value, each aligned). */
template <class T> constexpr std::size_t list_node_bytes()
{
    return (2 * sizeof(void *) + alignof(T) - 1) / alignof(T) * alignof(T) + sizeof(T);
}

uint64_t pool_in_use(mp_pool *p)
{
    mp_stats s{};
    mp_pool_stats(p, &s);
    return s.blocks_in_use;
}

uint64_t mp_pool_stats_allocs(mp_pool *p)
{
    mp_stats s{};
    mp_pool_stats(p, &s);
    return s.allocs;
}

uint64_t heap_allocs(mp_heap *h)
{
    struct mp_heap_stats s {
    };
    mp_heap_stats(h, &s);
    return s.allocs;
}

uint64_t heap_in_use(mp_heap *h)
{
    struct mp_heap_stats s {
    };
    mp_heap_stats(h, &s);
    return s.blocks_in_use;
}

void test_heap_resource(std::size_t n)
{
    mempool::heap_resource own;
    CHECK("heap_resource: owns a heap of its own", own.get() != nullptr);
    CHECK("heap_resource: every container family works", pmr_containers(&own, n));
    CHECK("heap_resource: the containers' memory came from its heap", heap_allocs(own.get()) > n);
    CHECK("heap_resource: and all went back", heap_in_use(own.get()) == 0);

    mp_heap_opts o{};
    o.flags = MP_THREAD_SAFE;
    mempool::heap caller(o);
    {
        mempool::heap_resource borrowed(caller.get());
        CHECK("heap_resource: over the caller's thread-safe heap", pmr_containers(&borrowed, n));
        CHECK("heap_resource: two over one heap are equal",
              borrowed == mempool::heap_resource(caller.get()) && !(borrowed == own));
    }
    CHECK("heap_resource: a borrowed heap outlives it, emptied",
          heap_allocs(caller.get()) > n && heap_in_use(caller.get()) == 0);

    mp_heap_opts co{};
    co.flags = MP_CHECKED;
    mempool::heap_resource checked(co);
    CHECK("heap_resource: over a checked heap", pmr_containers(&checked, n));
}

void test_pool_resource(std::size_t n)
{
    counting_resource up;
    mempool::pool_options po;
    po.upstream = &up;
    {
        mempool::pool_resource r(po);
        CHECK("pool_resource: every container family works", pmr_containers(&r, n));
        mp_pool *node = r.pool_for(list_node_bytes<int>(), 8);
        mp_stats s{};
        mp_pool_stats(node, &s);
        CHECK("pool_resource: list nodes came from a pool", node != nullptr && s.allocs >= n);
        CHECK("pool_resource: and went back to it", s.blocks_in_use == 0);
        CHECK("pool_resource: large blocks went upstream and back", up.allocs > 0 && up.live == 0);
    }
    {
        mempool::pool_resource r(po);
        std::size_t ups = up.allocs;
        void *a = r.allocate(17, 8), *b = r.allocate(24, 8), *c = r.allocate(24, 16);
        CHECK("pool_resource: 17 and 24 bytes share the 24-byte pool",
              r.pool_for(17, 8) == r.pool_for(24, 8) && mp_pool_owns(r.pool_for(24, 8), a) &&
                  mp_pool_owns(r.pool_for(24, 8), b));
        CHECK("pool_resource: 24 bytes aligned to 16 come from the 32-byte pool",
              r.pool_for(24, 16) == r.pool_for(32, 8) &&
                  mp_pool_block_size(r.pool_for(24, 16)) == 32 &&
                  reinterpret_cast<std::uintptr_t>(c) % 16 == 0);
        void *big = r.allocate(1025, 8), *wide = r.allocate(64, 64);
        CHECK("pool_resource: above max_block_size and alignments above 16 go upstream",
              up.allocs == ups + 2 && r.pool_for(1025) == nullptr && r.pool_for(64, 64) == nullptr);
        CHECK("pool_resource: the upstream alignment is honoured",
              reinterpret_cast<std::uintptr_t>(wide) % 64 == 0);
        void *zero = r.allocate(0, 1);
        CHECK("pool_resource: a zero-byte request gets a block", zero != nullptr && zero != a);
        void *z16a = r.allocate(0, 16), *z16b = r.allocate(0, 16);
        CHECK("pool_resource: zero-byte requests aligned to 16 are aligned to 16",
              reinterpret_cast<std::uintptr_t>(z16a) % 16 == 0 &&
                  reinterpret_cast<std::uintptr_t>(z16b) % 16 == 0);
        r.deallocate(z16a, 0, 16);
        r.deallocate(z16b, 0, 16);
        r.deallocate(zero, 0, 1);
        r.deallocate(wide, 64, 64);
        r.deallocate(big, 1025, 8);
        r.deallocate(a, 17, 8);
        r.deallocate(b, 24, 8);
        r.deallocate(c, 24, 16);
        mp_stats s{};
        mp_pool_stats(r.pool_for(24, 8), &s);
        CHECK("pool_resource: deallocate routes back by the same rule",
              s.blocks_in_use == 0 && up.live == 0);
    }
    {
        /* The caller's pools serve their sizes; the rest are made. */
        mempool::pool p48(48);
        mempool::pool p24(24);
        {
            mempool::pool_resource r({p48.get(), p24.get()});
            void *a = r.allocate(40, 16), *b = r.allocate(20, 4), *c = r.allocate(56, 8);
            CHECK("pool_resource: borrowed pools serve their sizes",
                  mp_pool_owns(p48.get(), a) && mp_pool_owns(p24.get(), b) &&
                      r.pool_for(56, 8) != nullptr && r.pool_for(56, 8) != p48.get());
            r.deallocate(a, 40, 16);
            r.deallocate(b, 20, 4);
            r.deallocate(c, 56, 8);
            CHECK("pool_resource: containers on borrowed pools", pmr_containers(&r, n));
        }
        CHECK("pool_resource: borrowed pools outlive it, emptied",
              p48.stats().blocks_in_use == 0 && p48.check());
        bool threw = false;
        try {
            mempool::pool p20(20);
            mempool::pool_resource bad({p20.get()});
        } catch (const std::invalid_argument &) {
            threw = true;
        }
        CHECK("pool_resource: a pool of no class size is refused", threw);
    }
    bool threw = false;
    try {
        mempool::pool_options big;
        big.max_block_size = 1u << 20;
        mempool::pool_resource r(big);
    } catch (const std::invalid_argument &) {
        threw = true;
    }
    CHECK("pool_resource: max_block_size above 64 KiB is refused", threw);
    {
        /* An odd multiple of 8: its largest requests aligned to 16 take a pool 8 bytes larger. */
        mempool::pool_options odd;
        odd.max_block_size = 1000;
        odd.upstream = &up;
        mempool::pool_resource r(odd);
        std::size_t ups = up.allocs;
        void *a = r.allocate(1000, 16), *b = r.allocate(1000, 8);
        CHECK("pool_resource: max_block_size bytes aligned to 16 come from a pool, aligned",
              up.allocs == ups && mp_pool_block_size(r.pool_for(1000, 16)) == 1008 &&
                  mp_pool_block_size(r.pool_for(1000, 8)) == 1000 &&
                  reinterpret_cast<std::uintptr_t>(a) % 16 == 0);
        r.deallocate(a, 1000, 16);
        r.deallocate(b, 1000, 8);
    }

    mempool::pool_options cpo;
    cpo.flags = MP_CHECKED;
    mempool::pool_resource checked(cpo);
    CHECK("pool_resource: over checked pools", pmr_containers(&checked, n));
    CHECK("pool_resource: the checked pools hold", mp_pool_check(checked.pool_for(24)));

    /* A constructor that throws inside a container leaves no block live. */
    struct thrower {
        long v;
        explicit thrower(long x) : v(x)
        {
            if (x == 3)
                throw std::runtime_error("thrower");
        }
    };
    {
        mempool::pool_resource r;
        std::pmr::list<thrower> l(&r);
        threw = false;
        try {
            for (long i = 0; i < 5; i++)
                l.emplace_back(i);
        } catch (const std::runtime_error &) {
            threw = true;
        }
        l.clear();
        CHECK("pool_resource: a throwing constructor in a container leaves nothing live",
              threw && pool_in_use(r.pool_for(list_node_bytes<thrower>(), 8)) == 0 &&
                  mp_pool_stats_allocs(r.pool_for(list_node_bytes<thrower>(), 8)) == 4);
    }

    /* Capacity reached in a caller's pool: std::bad_alloc, and the resource stays usable. */
    mp_pool_opts capo{};
    capo.block_size = 32;
    capo.capacity = 2;
    mempool::pool small(capo);
    mempool::pool_resource capped({small.get()});
    void *x = capped.allocate(32), *y = capped.allocate(32);
    threw = false;
    try {
        (void)capped.allocate(32);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK("pool_resource: an exhausted pool throws std::bad_alloc", threw);
    capped.deallocate(x, 32);
    void *z = capped.allocate(32);
    CHECK("pool_resource: and serves again once a block is back", z == x);
    capped.deallocate(y, 32);
    capped.deallocate(z, 32);
}

void test_arena_resource(std::size_t n)
{
    mempool::arena_resource r;
    CHECK("arena_resource: every container family works", pmr_containers(&r, n));
    struct mp_arena_stats s {
    };
    mp_arena_stats(r.get(), &s);
    CHECK("arena_resource: the memory came from its arena", s.allocs > n);
    bool aligned = true;
    for (std::size_t a = 1; a <= 4096; a *= 2)
        aligned &= reinterpret_cast<std::uintptr_t>(r.allocate(3, a)) % a == 0;
    CHECK("arena_resource: every alignment honoured", aligned);
    r.release();
    mp_arena_stats(r.get(), &s);
    CHECK("arena_resource: release() frees everything", s.bytes_used == 0 && s.resets == 1);

    mp_arena_opts o{};
    o.capacity = 256 * 1024;
    mempool::arena capped(o);
    mempool::arena_resource borrowed(capped.get());
    bool threw = false;
    try {
        std::pmr::vector<char> v(&borrowed);
        v.resize(1u << 20);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK("arena_resource: past the arena's capacity, std::bad_alloc", threw);
}

void test_synchronized(std::size_t n)
{
    mempool::synchronized_pool_resource r;
    CHECK("synchronized_pool_resource: every container family works", pmr_containers(&r, n));
    /* Threads race to create pools, fill lists and hand them to another thread to free. */
    std::vector<std::pmr::list<long>> lists;
    for (int t = 0; t < 4; t++)
        lists.emplace_back(&r);
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; t++)
        ts.emplace_back([&, t] {
            std::pmr::map<long, long> m(&r);
            for (std::size_t i = 0; i < n; i++) {
                lists[static_cast<std::size_t>(t)].push_back(static_cast<long>(i));
                m[static_cast<long>(i)] = t;
            }
            pmr_containers(&r, n / 4);
        });
    for (auto &t : ts)
        t.join();
    std::thread freer([&] { lists.clear(); });
    freer.join();
    mp_stats s{};
    mp_pool_stats(r.pool_for(list_node_bytes<long>(), alignof(long)), &s);
    CHECK("synchronized_pool_resource: threads' nodes all went back",
          s.allocs >= 4 * n && s.blocks_in_use == 0);

    mp_heap_opts ho{};
    ho.flags = MP_THREAD_SAFE;
    mempool::heap keeper(ho);
    mempool::heap_resource hr(keeper.get());
    std::vector<std::thread> hs;
    for (int t = 0; t < 4; t++)
        hs.emplace_back([&] { pmr_containers(&hr, n / 4); });
    for (auto &t : hs)
        t.join();
    CHECK("heap_resource: a thread-safe heap from threads", heap_in_use(hr.get()) == 0);

    /* allocator<T> is mp_malloc's: a vector built in one thread is freed in another. */
    auto *v = new std::vector<int, mempool::allocator<int>>(n, 7);
    std::thread([v] { delete v; }).join();
    CHECK("allocator: freed by another thread", true);
}

/* ---- STL allocators ---- */

struct alignas(64) wide {
    char c[64];
};

void test_allocators(std::size_t n)
{
    uint64_t before = heap_allocs(mp_default_heap());
    CHECK("allocator: every container family works", alloc_containers<mempool::allocator>(n));
    CHECK("allocator: the memory came from mp_malloc's heap",
          heap_allocs(mp_default_heap()) > before + n);
    CHECK("allocator: all instances are equal",
          mempool::allocator<int>() == mempool::allocator<double>());

    mempool::heap h;
    CHECK("heap_allocator: every container family works",
          alloc_containers<mempool::heap_allocator>(n, h.get()));
    CHECK("heap_allocator: from the given heap, all given back",
          heap_allocs(h.get()) > n && heap_in_use(h.get()) == 0);
    mempool::heap other;
    CHECK("heap_allocator: equal over the same heap only",
          mempool::heap_allocator<int>(h) == mempool::heap_allocator<long>(h.get()) &&
              mempool::heap_allocator<int>(h) != mempool::heap_allocator<int>(other));
    CHECK("heap_allocator: default-constructed, over mp_default_heap()",
          mempool::heap_allocator<int>().get() == mp_default_heap());

    std::vector<wide, mempool::allocator<wide>> v(5);
    std::vector<wide, mempool::heap_allocator<wide>> hv(5, wide{},
                                                        mempool::heap_allocator<wide>(h));
    CHECK("allocators: over-aligned types are aligned",
          reinterpret_cast<std::uintptr_t>(v.data()) % 64 == 0 &&
              reinterpret_cast<std::uintptr_t>(hv.data()) % 64 == 0);

    bool len = false, oom = false;
    try {
        (void)mempool::allocator<long>().allocate(SIZE_MAX / sizeof(long) + 1);
    } catch (const std::bad_array_new_length &) {
        len = true;
    }
    try {
        (void)mempool::heap_allocator<char>(h).allocate(SIZE_MAX / 2);
    } catch (const std::bad_array_new_length &) {
    } catch (const std::bad_alloc &) {
        oom = true;
    }
    CHECK("allocators: n * sizeof(T) overflowing throws bad_array_new_length", len);
    CHECK("allocators: no memory throws std::bad_alloc", oom);
}

/* ---- every alignment from every resource ---- */

template <class T> using pool_alloc = mempool::pool_allocator<T>;
template <class T>
using sync_pool_alloc = mempool::pool_allocator<T, mempool::synchronized_pool_resource>;

void test_pool_allocator(std::size_t n)
{
    counting_resource up;
    mempool::pool_options po;
    po.upstream = &up;
    mempool::pool_resource r(po);
    CHECK("pool_allocator: every container family works", alloc_containers<pool_alloc>(n, &r));
    mp_pool *node = r.pool_for(list_node_bytes<int>(), alignof(int));
    CHECK("pool_allocator: list nodes came from the resource's pool, and went back",
          node != nullptr && mp_pool_stats_allocs(node) >= n && pool_in_use(node) == 0);
    CHECK("pool_allocator: large blocks went upstream and back", up.allocs > 0 && up.live == 0);
    static_assert(std::is_nothrow_constructible_v<pool_alloc<long>, const pool_alloc<char> &>);
    mempool::pool_resource other;
    CHECK("pool_allocator: equal over the same resource only",
          pool_alloc<int>(&r) == pool_alloc<double>(&r) &&
              pool_alloc<int>(&r) != pool_alloc<int>(&other));

    /* Blocks are the resource's: either frees what the other gave. */
    struct node3 {
        void *a, *b, *c;
    };
    pool_alloc<node3> a(&r);
    node3 *x = a.allocate(1), *y = a.allocate(1);
    CHECK("pool_allocator: one object from the pool of its size",
          mp_pool_owns(r.pool_for(sizeof(node3), alignof(node3)), x) && x != y);
    r.deallocate(x, sizeof(node3), alignof(node3));
    void *z = r.allocate(sizeof(node3), alignof(node3));
    pool_alloc<char> copy(a);
    pool_alloc<node3>(copy).deallocate(static_cast<node3 *>(z), 1);
    a.deallocate(y, 1);
    node3 *arr = a.allocate(3);
    CHECK("pool_allocator: n objects from the pool of n * sizeof(T)",
          mp_pool_owns(r.pool_for(3 * sizeof(node3), alignof(node3)), arr));
    a.deallocate(arr, 3);
    CHECK("pool_allocator: all went back",
          pool_in_use(r.pool_for(sizeof(node3), alignof(node3))) == 0 &&
              pool_in_use(r.pool_for(3 * sizeof(node3), alignof(node3))) == 0);

    std::vector<wide, pool_alloc<wide>> v(5, wide{}, pool_alloc<wide>(&r));
    std::size_t ups = up.allocs;
    std::list<wide, pool_alloc<wide>> lw(3, wide{}, pool_alloc<wide>(&r));
    CHECK("pool_allocator: over-aligned types go upstream, aligned",
          reinterpret_cast<std::uintptr_t>(v.data()) % 64 == 0 &&
              reinterpret_cast<std::uintptr_t>(&lw.front()) % 64 == 0 && up.allocs == ups + 3);

    bool len = false, oom = false;
    try {
        (void)pool_alloc<long>(&r).allocate(SIZE_MAX / sizeof(long) + 1);
    } catch (const std::bad_array_new_length &) {
        len = true;
    }
    mp_pool_opts capo{};
    capo.block_size = 32;
    capo.capacity = 2;
    mempool::pool small(capo);
    mempool::pool_resource capped({small.get()});
    struct b32 {
        char c[32];
    };
    pool_alloc<b32> ca(&capped);
    b32 *p1 = ca.allocate(1), *p2 = ca.allocate(1);
    try {
        (void)ca.allocate(1);
    } catch (const std::bad_alloc &) {
        oom = true;
    }
    CHECK("pool_allocator: n * sizeof(T) overflowing throws bad_array_new_length", len);
    CHECK("pool_allocator: an exhausted pool throws std::bad_alloc", oom);
    ca.deallocate(p1, 1);
    CHECK("pool_allocator: and serves again once a block is back", ca.allocate(1) == p1);
    ca.deallocate(p1, 1);
    ca.deallocate(p2, 1);

    /* Over a synchronized_pool_resource: containers in threads, freed by another thread. */
    mempool::synchronized_pool_resource sr;
    using slist = std::list<long, sync_pool_alloc<long>>;
    std::vector<slist> lists;
    for (int t = 0; t < 4; t++)
        lists.emplace_back(sync_pool_alloc<long>(&sr));
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; t++)
        ts.emplace_back([&, t] {
            for (std::size_t i = 0; i < n; i++)
                lists[static_cast<std::size_t>(t)].push_back(static_cast<long>(i));
            alloc_containers<sync_pool_alloc>(n / 4, &sr);
        });
    for (auto &t : ts)
        t.join();
    std::thread([&] { lists.clear(); }).join();
    mp_pool *snode = sr.pool_for(list_node_bytes<long>(), alignof(long));
    CHECK("pool_allocator: over a synchronized_pool_resource from threads, all went back",
          mp_pool_stats_allocs(snode) >= 4 * n && pool_in_use(snode) == 0);
}

void test_alignment()
{
    mempool::heap_resource hr;
    mempool::pool_resource pr;
    mempool::synchronized_pool_resource sr;
    mempool::arena_resource ar;
    std::pmr::memory_resource *rs[] = {&hr, &pr, &sr, &ar};
    tally t{};
    for (auto *r : rs)
        for (std::size_t a = 1; a <= 8192; a *= 2)
            for (std::size_t b :
                 {std::size_t(0), std::size_t(1), a / 2, a, 3 * a + 1, std::size_t(5000)}) {
                void *p = r->allocate(b, a);
                tally_expect(&t, reinterpret_cast<std::uintptr_t>(p) % a == 0,
                             "%zu bytes aligned to %zu: %p", b, a, p);
                std::memset(p, 0x5a, b);
                r->deallocate(p, b, a);
            }
    CHECK("resources: every alignment and size honoured", t.bad == 0);
    CHECK("resources: all went back to the heap", heap_in_use(hr.get()) == 0);

    mp_heap_opts o{};
    o.capacity = 8u << 20;
    mempool::heap_resource capped(o);
    bool threw = false;
    try {
        (void)capped.allocate(64u << 20);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK("heap_resource: past the heap's capacity, std::bad_alloc", threw);
}

/* ---- object_pool ---- */

struct tracked {
    static int constructed, destroyed, throw_at;
    int v;
    std::string s;
    explicit tracked(int x) : v(x), s(40, 'q')
    {
        if (x == throw_at)
            throw std::runtime_error("tracked: refused");
        constructed++;
    }
    ~tracked()
    {
        destroyed++;
    }
};
int tracked::constructed, tracked::destroyed, tracked::throw_at = -1;

struct alignas(128) big_aligned {
    char c[200];
};

struct counted {
    static int destroyed;
    ~counted()
    {
        destroyed++;
    }
};
int counted::destroyed;

int leak_reports;
uint64_t leak_count;
void on_error(const mp_error *e, void *)
{
    if (e->kind == MP_ERR_LEAK) {
        leak_reports++;
        leak_count = e->count;
    }
}

void test_object_pool(std::size_t n)
{
    tracked::constructed = tracked::destroyed = 0;
    {
        mempool::object_pool<tracked> op;
        std::vector<tracked *> v;
        for (std::size_t i = 0; i < n; i++)
            v.push_back(op.create(static_cast<int>(i)));
        CHECK("object_pool: create constructs", tracked::constructed == static_cast<int>(n) &&
                                                    op.size() == n &&
                                                    v[n - 1]->v == static_cast<int>(n - 1));
        for (std::size_t i = 0; i < n; i += 2)
            op.destroy(v[i]);
        CHECK("object_pool: destroy destructs and frees",
              tracked::destroyed == static_cast<int>((n + 1) / 2) && op.size() == n / 2 &&
                  pool_in_use(op.get()) == n / 2);
        op.destroy(nullptr);
        {
            auto u = op.make_unique(-5);
            CHECK("object_pool: make_unique", u->v == -5 && op.size() == n / 2 + 1);
        }
        CHECK("object_pool: the unique_ptr's deleter destroys it", op.size() == n / 2);
        tracked::throw_at = 77;
        bool threw = false;
        try {
            op.create(77);
        } catch (const std::runtime_error &) {
            threw = true;
        }
        tracked::throw_at = -1;
        CHECK("object_pool: a throwing constructor leaves nothing live",
              threw && op.size() == n / 2 && pool_in_use(op.get()) == n / 2);
    }
    CHECK("object_pool: destroying the pool destroys what is live",
          tracked::destroyed == tracked::constructed);

    /* Moves, a borrowed pool, an over-aligned type. */
    tracked::constructed = tracked::destroyed = 0;
    mp_pool_opts bo{};
    bo.block_size = mempool::object_pool<tracked>::block_size();
    bo.align = mempool::object_pool<tracked>::block_align();
    mempool::pool mine(bo);
    {
        mempool::object_pool<tracked> a(mine.get());
        a.create(1);
        a.create(2);
        mempool::object_pool<tracked> b(std::move(a));
        CHECK("object_pool: a move takes the live objects", b.size() == 2 && a.size() == 0);
        mempool::object_pool<tracked> c;
        c.create(3);
        c = std::move(b);
        CHECK("object_pool: move assignment destroys the target's objects first",
              tracked::destroyed == 1 && c.size() == 2);
    }
    CHECK("object_pool: over a borrowed pool, destroyed into it",
          tracked::destroyed == 3 && mine.stats().blocks_in_use == 0 && mine.check());
    bool threw = false;
    try {
        mempool::pool tiny(8);
        mempool::object_pool<tracked> bad(tiny.get());
    } catch (const std::invalid_argument &) {
        threw = true;
    }
    CHECK("object_pool: a pool whose blocks are too small is refused", threw);
    mempool::object_pool<big_aligned> al;
    bool aligned = true;
    for (int i = 0; i < 50; i++)
        aligned &= reinterpret_cast<std::uintptr_t>(al.create()) % 128 == 0;
    CHECK("object_pool: over-aligned types are aligned", aligned);

    /* A checked pool reports its live objects at destruction instead of destroying them (a type
     * that owns no memory, which would leak). */
    mp_set_error_handler(on_error, nullptr);
    {
        mempool::object_pool<counted> chk(MP_CHECKED);
        chk.create();
        counted *t = chk.create();
        chk.create();
        chk.destroy(t);
    }
    mp_set_error_handler(nullptr, nullptr);
    CHECK("object_pool: a checked pool reports its live objects as a leak",
          leak_reports == 1 && leak_count == 2 && counted::destroyed == 1);
    threw = false;
    try {
        mempool::object_pool<tracked> ts(MP_THREAD_SAFE);
    } catch (const std::invalid_argument &) {
        threw = true;
    }
    CHECK("object_pool: MP_THREAD_SAFE is refused", threw);
}

/* ---- RAII owners ---- */

struct counting_source {
    int maps = 0, unmaps = 0;
    mp_source src{map, unmap, this};
    static void *map(void *ctx, std::size_t size, std::size_t align)
    {
        static_cast<counting_source *>(ctx)->maps++;
        return std::aligned_alloc(align, size);
    }
    static void unmap(void *ctx, void *p, std::size_t)
    {
        static_cast<counting_source *>(ctx)->unmaps++;
        std::free(p);
    }
};

void test_owners()
{
    counting_source cs;
    mp_pool_opts o{};
    o.block_size = 64;
    o.source = &cs.src;
    {
        mempool::pool a(o);
        void *p = a.allocate();
        mempool::pool b(std::move(a));
        CHECK("pool: a move leaves the source empty", !a && b && mp_pool_owns(b.get(), p));
        mempool::pool c(o);
        int before = cs.unmaps;
        c = std::move(b);
        CHECK("pool: move assignment destroys the pool it held", cs.unmaps > before && c.get());
        c.deallocate(p);
        mp_pool *raw = c.release();
        CHECK("pool: release() gives the handle up", !c && raw != nullptr);
        mempool::pool again(raw);
    }
    CHECK("pool: every map was unmapped", cs.maps > 0 && cs.maps == cs.unmaps);

    mp_pool_opts capo{};
    capo.block_size = 16;
    capo.capacity = 1;
    mempool::pool one(capo);
    void *p = one.allocate();
    bool threw = false;
    try {
        (void)one.allocate();
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK("pool: allocate() past capacity throws, try_allocate() returns nullptr",
          threw && one.try_allocate() == nullptr);
    one.deallocate(p);
    threw = false;
    try {
        mempool::pool zero(std::size_t(0));
    } catch (const std::invalid_argument &) {
        threw = true;
    }
    CHECK("pool: options the C API refuses throw std::invalid_argument", threw);

    mp_heap_opts ho{};
    ho.source = &cs.src;
    {
        mempool::heap h(ho);
        void *q = h.allocate(100, 64);
        CHECK("heap: allocate honours the alignment",
              reinterpret_cast<std::uintptr_t>(q) % 64 == 0);
        h.deallocate(q, 100, 64);
        mempool::heap h2(std::move(h));
        CHECK("heap: moved", !h && h2 && h2.stats().blocks_in_use == 0);
        mempool::heap h3;
        h3 = std::move(h2);
    }
    CHECK("heap: every map was unmapped", cs.maps == cs.unmaps);

    mp_arena_opts ao{};
    ao.source = &cs.src;
    {
        mempool::arena a(ao);
        (void)a.allocate(10);
        mp_arena_pos m = a.mark();
        (void)a.allocate(1000);
        CHECK("arena: rewind", a.rewind(m) && a.stats().rewinds == 1);
        mempool::arena b(std::move(a));
        CHECK("arena: moved", !a && b);
    }
    CHECK("arena: every map was unmapped", cs.maps == cs.unmaps);
}

} // namespace

int main()
{
    std::size_t n = scaled(20000);
    test_heap_resource(n);
    test_pool_resource(n);
    test_arena_resource(n);
    test_synchronized(n);
    test_allocators(n);
    test_pool_allocator(n);
    test_alignment();
    test_object_pool(n);
    test_owners();
    return TEST_DONE();
}

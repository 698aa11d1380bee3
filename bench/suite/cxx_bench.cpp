// cxx_bench.cpp: node-based standard containers on C++ allocators and memory resources (issue
// #20): mempool.hpp's resources and allocators against std::allocator under each malloc, std::pmr's
// pool and monotonic resources and Boost's fast_pool_allocator (as configured by default, with a
// lock, and without it, the peer of mempool's pool_allocator over an unsynchronized resource).
//
// One source, two kinds of program (as the C suite: each malloc in a process of its own):
//   bench_cxx_<malloc>  (CXX_BENCH_PEER_PROGRAM) runs one measurement and prints its ns/op:
//                           bench_cxx_<malloc> PEER WORKLOAD N
//                       bench_cxx_glibc runs every peer; the others (linked with jemalloc,
//                       tcmalloc, mimalloc, TBB's malloc proxy, which replace malloc and so
//                       operator new) run only "std" (std::allocator).
//   bench_cxx           the driver: runs every (workload, N, peer) in a fresh process, --runs times
//                       interleaved (the peers' order rotating each run), and prints the median
//                       ns/op of each, its min-max, and mempool's best over the others' best, the
//                       goal being <= 0.8.
// Workloads, each on N elements (10^3 repeated to ~2*10^6 operations, and 10^6):
//   list   std::list<int>: N push_back, then N pop_front; ns per push+pop
//   map    std::map<int, int>: N inserts of shuffled keys, then N erases in another order
//   umap   std::unordered_map<int, int> of N entries: N steps of erase one, insert a new one
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <memory_resource>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#ifdef CXX_BENCH_PEER_PROGRAM

#include <dlfcn.h>

#include <mempool.hpp>
#if CXX_BENCH_ALL_PEERS && __has_include(<boost/pool/pool_alloc.hpp>)
#include <boost/pool/pool_alloc.hpp>
#define CXX_BENCH_BOOST 1
#endif

namespace
{

using clk = std::chrono::steady_clock;

// The keys each workload uses, from a fixed seed, made before the clock starts.
std::vector<int> shuffled(std::size_t n, unsigned seed)
{
    std::vector<int> k(n);
    for (std::size_t i = 0; i < n; i++)
        k[i] = static_cast<int>(i);
    std::shuffle(k.begin(), k.end(), std::mt19937(seed));
    return k;
}

// Rounds for N elements: about 2*10^6 element operations in all, at least one round.
std::size_t rounds_for(std::size_t n)
{
    return std::max<std::size_t>(1, 2000000 / n);
}

// `reset` runs between rounds, outside the clock (the monotonic resources' release()).
// Each timed part is a function of its own, kept out of line, so that a profiler can count the
// instructions of the timed part alone.
template <class List> MP_NOINLINE long timed_list(std::size_t n, const List &proto)
{
    long sum = 0;
    List l(proto.get_allocator());
    for (std::size_t i = 0; i < n; i++)
        l.push_back(static_cast<int>(i));
    while (!l.empty()) {
        sum += l.front();
        l.pop_front();
    }
    return sum;
}

template <class List, class Reset> double run_list(std::size_t n, const List &proto, Reset reset)
{
    std::size_t rounds = rounds_for(n);
    double ns = 0;
    long sum = 0;
    for (std::size_t r = 0; r < rounds; r++) {
        auto t0 = clk::now();
        sum += timed_list(n, proto);
        ns += std::chrono::duration<double, std::nano>(clk::now() - t0).count();
        reset();
    }
    return sum < 0 ? 0 : ns / static_cast<double>(rounds * n);
}

template <class Map>
MP_NOINLINE void timed_map(const std::vector<int> &ins, const std::vector<int> &del,
                           const Map &proto)
{
    Map m(proto.get_allocator());
    for (int k : ins)
        m.emplace(k, k);
    for (int k : del)
        m.erase(k);
}

template <class Map, class Reset> double run_map(std::size_t n, const Map &proto, Reset reset)
{
    std::vector<int> ins = shuffled(n, 1), del = shuffled(n, 2);
    std::size_t rounds = rounds_for(n);
    double ns = 0;
    for (std::size_t r = 0; r < rounds; r++) {
        auto t0 = clk::now();
        timed_map(ins, del, proto);
        ns += std::chrono::duration<double, std::nano>(clk::now() - t0).count();
        reset();
    }
    return ns / static_cast<double>(rounds * n);
}

template <class Umap> MP_NOINLINE void timed_umap(Umap &u, const std::vector<int> &keys)
{
    std::size_t n = keys.size() / 2;
    for (std::size_t i = 0; i < n; i++) {
        u.erase(keys[i]);
        u.emplace(keys[n + i], 2);
    }
}

// The table is filled outside the clock; each step erases a key present and inserts a new one.
template <class Umap, class Reset> double run_umap(std::size_t n, const Umap &proto, Reset reset)
{
    std::vector<int> keys = shuffled(2 * n, 3);
    std::size_t rounds = rounds_for(n);
    double ns = 0;
    for (std::size_t r = 0; r < rounds; r++) {
        {
            Umap u(proto.get_allocator());
            for (std::size_t i = 0; i < n; i++)
                u.emplace(keys[i], 1);
            auto t0 = clk::now();
            timed_umap(u, keys);
            ns += std::chrono::duration<double, std::nano>(clk::now() - t0).count();
        }
        reset();
    }
    return ns / static_cast<double>(rounds * n);
}

// The three workloads with allocator template A (rebound per container), made from `a`.
template <template <class> class A, class... Args>
double run_alloc(const char *w, std::size_t n, Args... a)
{
    auto none = [] {};
    using pair = std::pair<const int, int>;
    if (std::strcmp(w, "list") == 0)
        return run_list(n, std::list<int, A<int>>(A<int>(a...)), none);
    if (std::strcmp(w, "map") == 0)
        return run_map(n, std::map<int, int, std::less<int>, A<pair>>(A<pair>(a...)), none);
    return run_umap(
        n, std::unordered_map<int, int, std::hash<int>, std::equal_to<int>, A<pair>>(A<pair>(a...)),
        none);
}

// The three workloads on a memory_resource; reset() runs between rounds.
template <class Reset>
double run_pmr(const char *w, std::size_t n, std::pmr::memory_resource *r, Reset reset)
{
    if (std::strcmp(w, "list") == 0)
        return run_list(n, std::pmr::list<int>(r), reset);
    if (std::strcmp(w, "map") == 0)
        return run_map(n, std::pmr::map<int, int>(r), reset);
    return run_umap(n, std::pmr::unordered_map<int, int>(r), reset);
}

[[maybe_unused]] double run_pmr(const char *w, std::size_t n, std::pmr::memory_resource *r)
{
    return run_pmr(w, n, r, [] {});
}

#ifdef CXX_BENCH_BOOST
template <class T> using boost_fast = boost::fast_pool_allocator<T>;
// Without the lock Boost takes by default: the single-threaded configuration, as mempool's
// pool_allocator over an unsynchronized pool_resource is.
template <class T>
using boost_fast_st = boost::fast_pool_allocator<T, boost::default_user_allocator_new_delete,
                                                 boost::details::pool::null_mutex>;
#endif
#if CXX_BENCH_ALL_PEERS
template <class T> using mp_pool_stl = mempool::pool_allocator<T>;
#endif

// One measurement; a negative figure means the peer is not in this program.
double measure(const char *peer, const char *w, std::size_t n)
{
    std::string p = peer;
    if (p == "std")
        return run_alloc<std::allocator>(w, n);
#if CXX_BENCH_ALL_PEERS
    if (p == "pmr_pool") {
        std::pmr::unsynchronized_pool_resource r;
        return run_pmr(w, n, &r);
    }
    if (p == "pmr_monotonic") {
        std::pmr::monotonic_buffer_resource r;
        return run_pmr(w, n, &r, [&] { r.release(); });
    }
#ifdef CXX_BENCH_BOOST
    if (p == "boost_fast")
        return run_alloc<boost_fast>(w, n);
    if (p == "boost_fast_st")
        return run_alloc<boost_fast_st>(w, n);
#endif
    if (p == "mp_pool_resource") {
        mempool::pool_resource r;
        return run_pmr(w, n, &r);
    }
    if (p == "mp_heap_resource") {
        mempool::heap_resource r;
        return run_pmr(w, n, &r);
    }
    if (p == "mp_arena_resource") {
        mempool::arena_resource r;
        return run_pmr(w, n, &r, [&] { r.release(); });
    }
    if (p == "mp_allocator")
        return run_alloc<mempool::allocator>(w, n);
    if (p == "mp_pool_allocator") {
        mempool::pool_resource r;
        return run_alloc<mp_pool_stl>(w, n, &r);
    }
#endif
    return -1;
}

// The library malloc resolves to in this program, as the figure's label.
const char *malloc_library()
{
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (m == nullptr || dladdr(m, &info) == 0 || info.dli_fname == nullptr)
        return "?";
    const char *slash = std::strrchr(info.dli_fname, '/');
    return slash != nullptr ? slash + 1 : info.dli_fname;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc == 2 && std::strcmp(argv[1], "--malloc") == 0) {
        std::printf("%s\n", malloc_library());
        return 0;
    }
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s PEER list|map|umap N | --malloc\n", argv[0]);
        return 2;
    }
    double ns = measure(argv[1], argv[2], std::strtoul(argv[3], nullptr, 10));
    if (ns < 0) {
        std::fprintf(stderr, "%s: peer %s is not in this program\n", argv[0], argv[1]);
        return 3;
    }
    std::printf("%.3f\n", ns);
    return 0;
}

#else /* the driver */

#include <unistd.h>

namespace
{

struct peer {
    const char *name;    // as the table shows it
    const char *program; // bench_cxx_<program>
    const char *arg;     // the PEER argument
    bool mempool;
};

// std::allocator under each malloc, then the resources and pool allocators (under glibc).
const peer peers[] = {
    {"std/glibc", "glibc", "std", false},
    {"std/jemalloc", "jemalloc", "std", false},
    {"std/tcmalloc", "tcmalloc", "std", false},
    {"std/mimalloc", "mimalloc", "std", false},
    {"std/tbb", "tbb", "std", false},
    {"pmr_pool", "glibc", "pmr_pool", false},
    {"pmr_monotonic", "glibc", "pmr_monotonic", false},
    {"boost_fast", "glibc", "boost_fast", false},
    {"boost_fast_st", "glibc", "boost_fast_st", false},
    {"mp_pool_res", "glibc", "mp_pool_resource", true},
    {"mp_heap_res", "glibc", "mp_heap_resource", true},
    {"mp_arena_res", "glibc", "mp_arena_resource", true},
    {"mp_allocator", "glibc", "mp_allocator", true},
    {"mp_pool_alloc", "glibc", "mp_pool_allocator", true},
};
constexpr std::size_t npeers = sizeof peers / sizeof peers[0];

std::string dir_of(const char *argv0)
{
    std::string s = argv0;
    std::size_t slash = s.rfind('/');
    return slash == std::string::npos ? "." : s.substr(0, slash);
}

// One measurement in a fresh process: its ns/op, or a negative number when it failed.
double run_one(const std::string &dir, const peer &p, const char *w, std::size_t n)
{
    std::string cmd = dir + "/bench_cxx_" + p.program + " " + p.arg + " " + w + " " +
                      std::to_string(n) + " 2>/dev/null";
    FILE *f = popen(cmd.c_str(), "r");
    double ns = -1;
    if (f == nullptr || std::fscanf(f, "%lf", &ns) != 1)
        ns = -1;
    if (f != nullptr && pclose(f) != 0)
        ns = -1;
    return ns;
}

} // namespace

int main(int argc, char **argv)
{
    int runs = 5;
    std::vector<std::size_t> sizes = {1000, 1000000};
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--quick") == 0) {
            runs = 1;
            sizes = {1000, 10000};
        } else if (std::strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = std::max(1, std::atoi(argv[++i]));
        } else if (std::strcmp(argv[i], "--max-n") == 0 && i + 1 < argc) {
            sizes = {1000, std::strtoul(argv[++i], nullptr, 10)};
        } else {
            std::fprintf(stderr, "usage: %s [--quick] [--runs N] [--max-n N]\n", argv[0]);
            return 2;
        }
    }
    std::string dir = dir_of(argv[0]);
    std::vector<bool> present(npeers);
    for (std::size_t p = 0; p < npeers; p++)
        present[p] = access((dir + "/bench_cxx_" + peers[p].program).c_str(), X_OK) == 0;

    const char *workloads[] = {"list", "map", "umap"};
    std::printf("C++ node containers: median ns per operation of %d run(s), each in a fresh process"
                " (min-max);\nx = mempool's best / the others' best (goal: <= 0.80)\n\n",
                runs);
    std::printf("%-14s", "workload");
    for (std::size_t p = 0; p < npeers; p++)
        if (present[p])
            std::printf(" %14s", peers[p].name);
    std::printf(" %7s\n", "x");
    int failed = 0;
    for (const char *w : workloads)
        for (std::size_t n : sizes) {
            std::vector<std::vector<double>> t(npeers);
            for (int r = 0; r < runs; r++)
                for (std::size_t k = 0; k < npeers; k++) {
                    std::size_t p = (k + static_cast<std::size_t>(r)) % npeers;
                    if (present[p])
                        t[p].push_back(run_one(dir, peers[p], w, n));
                }
            std::printf("%-14s", (std::string(w) + " " + std::to_string(n)).c_str());
            double best_mp = 0, best_other = 0;
            for (std::size_t p = 0; p < npeers; p++) {
                if (!present[p])
                    continue;
                std::sort(t[p].begin(), t[p].end());
                if (t[p].front() < 0) {
                    std::printf(" %14s", "failed");
                    failed = 1;
                    continue;
                }
                double med = t[p][t[p].size() / 2];
                char cell[64];
                std::snprintf(cell, sizeof cell, "%.1f(%.0f-%.0f)", med, t[p].front(), t[p].back());
                std::printf(" %14s", runs > 1 ? cell : std::to_string(med).substr(0, 6).c_str());
                double &best = peers[p].mempool ? best_mp : best_other;
                if (best == 0 || med < best)
                    best = med;
            }
            if (best_other > 0)
                std::printf(" %7.2f\n", best_mp / best_other);
            else
                std::printf(" %7s\n", "-");
        }
    std::printf("\nmalloc in each program:");
    for (const char *prog : {"glibc", "jemalloc", "tcmalloc", "mimalloc", "tbb"}) {
        std::string cmd = dir + "/bench_cxx_" + prog + " --malloc 2>/dev/null";
        FILE *f = access((dir + "/bench_cxx_" + prog).c_str(), X_OK) == 0 ? popen(cmd.c_str(), "r")
                                                                          : nullptr;
        char lib[256] = "not built";
        if (f != nullptr) {
            if (std::fscanf(f, "%255s", lib) != 1)
                std::strcpy(lib, "?");
            pclose(f);
        }
        std::printf(" %s=%s", prog, lib);
    }
    std::printf("\n");
    return failed;
}

#endif

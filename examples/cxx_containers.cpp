/*
 * cxx_containers.cpp: a server's session cache in C++ on mempool.hpp, three ways of using it.
 *
 *   - an LRU cache (std::pmr::unordered_map of keys to std::pmr::list positions) on a
 *     mempool::pool_resource: every list node, hash node and short string is a pool block of its
 *     size, so the churn of a full cache (one insert and one eviction per miss) never reaches
 *     malloc;
 *   - sessions in a mempool::object_pool<session>, held by its unique_ptr: a closed session goes
 *     back to the pool, and the sessions still open when the server stops are destroyed with it;
 *   - each request parsed into a std::pmr::vector<std::pmr::string> on a mempool::arena_resource,
 *     freed at once (release()) when the request is done.
 *
 * The program checks itself: the cache's contents against a count of hits and misses, every
 * session's destructor run exactly once, and the pools' statistics showing that every node went
 * back. It prints a summary and exits 1 on the first failed check.
 */
#include <mempool.hpp>

#include <cstdio>
#include <cstdlib>
#include <list>
#include <memory_resource>
#include <string>
#include <unordered_map>
#include <vector>

namespace
{

#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::printf("cxx_containers: check failed: %s (line %d)\n", #cond, __LINE__);          \
            std::exit(1);                                                                          \
        }                                                                                          \
    } while (0)

/* A least-recently-used cache of `capacity` entries, all its memory from one resource. */
class lru_cache
{
  public:
    lru_cache(std::size_t capacity, std::pmr::memory_resource *r)
        : capacity_(capacity), order_(r), index_(r)
    {
    }
    /* The value for key, true on a hit; a miss inserts key -> value, evicting the oldest entry. */
    bool get_or_put(long key, const char *value)
    {
        auto it = index_.find(key);
        if (it != index_.end()) {
            order_.splice(order_.begin(), order_, it->second);
            return true;
        }
        if (order_.size() == capacity_) {
            index_.erase(order_.back().first);
            order_.pop_back();
        }
        order_.emplace_front(key, value);
        index_.emplace(key, order_.begin());
        return false;
    }
    std::size_t size() const
    {
        return order_.size();
    }

  private:
    using entry = std::pair<long, std::pmr::string>;
    std::size_t capacity_;
    std::pmr::list<entry> order_;
    std::pmr::unordered_map<long, std::pmr::list<entry>::iterator> index_;
};

int sessions_open;

struct session {
    long user;
    std::pmr::string name;
    session(long u, std::pmr::memory_resource *r) : user(u), name("user-" + std::to_string(u), r)
    {
        sessions_open++;
    }
    ~session()
    {
        sessions_open--;
    }
};

} // namespace

int main()
{
    const std::size_t requests = 200000, capacity = 1000;
    mempool::pool_resource nodes;
    std::size_t hits = 0;
    {
        lru_cache cache(capacity, &nodes);
        for (std::size_t i = 0; i < requests; i++) {
            /* 1500 keys in a scrambled order, for 1000 places */
            long key = static_cast<long>(((i * 2654435761u) >> 11) % 1500);
            hits += cache.get_or_put(key, "a cached value, longer than a short string") ? 1 : 0;
        }
        EXPECT(cache.size() == capacity);
        EXPECT(hits > requests / 4 && hits < requests);
    }
    /* Every node of the cache went back to its pool. */
    mp_stats s{};
    mp_pool_stats(nodes.pool_for(sizeof(void *) * 2 + 8 + sizeof(std::pmr::string)), &s);
    EXPECT(s.allocs >= requests - hits && s.blocks_in_use == 0);

    {
        mempool::object_pool<session> sessions;
        std::vector<mempool::object_pool<session>::unique_ptr> open;
        for (long u = 0; u < 5000; u++) {
            open.push_back(sessions.make_unique(u, &nodes));
            if (u % 3 == 0)
                open.erase(open.begin() + static_cast<long>(open.size() / 2)); /* a user leaves */
        }
        EXPECT(sessions.size() == open.size() && sessions_open == static_cast<int>(open.size()));
        for (auto &p : open)
            p.release(); /* the server stops: the pool destroys what is still open */
    }
    EXPECT(sessions_open == 0);

    mempool::arena_resource scratch;
    std::size_t fields = 0;
    for (int r = 0; r < 1000; r++) {
        {
            std::pmr::vector<std::pmr::string> parsed(&scratch);
            std::string line = "GET /items/" + std::to_string(r) + " HTTP/1.1 keep-alive gzip";
            for (std::size_t b = 0, e; b < line.size(); b = e + 1) {
                e = line.find(' ', b);
                e = e == std::string::npos ? line.size() : e;
                parsed.emplace_back(line, b, e - b);
            }
            fields += parsed.size();
        }
        scratch.release(); /* the request is done: all its memory goes at once */
    }
    EXPECT(fields == 5000);

    std::printf("cxx_containers: %zu requests, %zu cache hits; 5000 sessions; %zu fields parsed\n",
                requests, hits, fields);
    return 0;
}

// Built against an installed mempool by scripts/test.sh: proves mempool.hpp is installed beside
// mempool.h and usable from C++17 with the installed library.
#include <mempool.hpp>

#include <cstdio>
#include <map>

int main()
{
    mempool::pool_resource nodes;
    bool ok;
    {
        std::pmr::map<int, int> m(&nodes);
        for (int i = 0; i < 1000; i++)
            m[i] = 2 * i;
        ok = m.size() == 1000 && m.at(999) == 1998;
    }
    mp_stats s{};
    mp_pool_stats(nodes.pool_for(sizeof(std::pmr::map<int, int>::value_type) + 32, 8), &s);
    ok = ok && s.allocs == 1000 && s.blocks_in_use == 0;
    std::puts(ok ? "consumer_cxx: ok" : "consumer_cxx: FAILED");
    return ok ? 0 : 1;
}

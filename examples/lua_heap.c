/*
 * lua_heap.c: Lua 5.4 with a mempool heap as its only allocator.
 *
 * Lua allocates through one function that it gives the block's old size on every call, which is
 * what mp_heap_free_sized() wants: frees need no lookup. The mapping (Lua manual, lua_Alloc):
 *     nsize == 0            free:    mp_heap_free_sized(heap, ptr, osize)   (ptr may be NULL)
 *     ptr == NULL           malloc:  mp_heap_alloc(heap, nsize)   (osize is then a type tag, not a
 * size) otherwise             realloc: mp_heap_realloc(heap, ptr, nsize) Lua asks that a shrinking
 * realloc not fail; a heap's never does unless the block must move and memory is exhausted, which
 * Lua then handles like any failed allocation (an emergency collection, then a memory error).
 *
 * Two runs:
 *   1. An embedded script churns tables and strings: records sorted by name, a long string built
 *      and parsed back, a hash map grown and thinned, coroutines, string buffers grown piece by
 *      piece, strings large enough to be large blocks. It checks its own results, and returns a few
 *      figures that C checks against formulas. After lua_close() every block must be back:
 *      blocks_in_use == 0.
 *   2. The same heap kind with a capacity: a script that keeps strings until memory runs out must
 *      get Lua's "not enough memory" error (through pcall), the state must still work afterwards,
 *      and lua_close() must again leave nothing in use.
 * The heap's statistics are printed at the end of each run (all of them with -v).
 *
 * Usage: lua_heap [-v]. The work scales with MP_TEST_SCALE (20,000 records at 1; at least 1,000).
 * Build: needs Lua 5.4 (Debian: liblua5.4-dev); see examples/CMakeLists.txt.
 */
#include "mempool.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * The allocator
 * ---------------------------------------------------------------------------------------------- */

static void *heap_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    mp_heap *heap = ud;
    if (nsize == 0) {
        if (ptr != NULL)
            mp_heap_free_sized(heap, ptr, osize);
        return NULL;
    }
    if (ptr == NULL)
        return mp_heap_alloc(heap, nsize);
    return mp_heap_realloc(heap, ptr, nsize);
}

/* ------------------------------------------------------------------------------------------------
 * The scripts
 * ---------------------------------------------------------------------------------------------- */

/* Global N is the number of records. Returns N, the sum parsed back, the coroutine total and the
 * number of keys left in the map; asserts everything else itself. */
static const char churn_script[] =
    "local N = N\n"
    "-- 1. records, sorted by name (descending)\n"
    "local people = {}\n"
    "for i = 1, N do\n"
    "  people[i] = { id = i, name = string.format('person-%06d', i), tags = { i % 7, i % 11, i % "
    "13 } }\n"
    "end\n"
    "table.sort(people, function(a, b) return a.name > b.name end)\n"
    "for i = 2, #people do assert(people[i - 1].name > people[i].name, 'sort order') end\n"
    "assert(people[1].id == N and people[N].id == 1, 'sort ends')\n"
    "-- 2. a long string built from pieces and parsed back\n"
    "local parts = {}\n"
    "for i = 1, N do parts[#parts + 1] = tostring(i * 3) end\n"
    "local s = table.concat(parts, ',')\n"
    "local count, sum = 0, 0\n"
    "for num in s:gmatch('%d+') do count = count + 1; sum = sum + tonumber(num) end\n"
    "assert(count == N, 'parsed count')\n"
    "-- 3. temporary strings: repeat, upper, gsub, format, and a word count\n"
    "local words, distinct = {}, 0\n"
    "for i = 1, N // 2 do\n"
    "  local w = ('w' .. (i % 97)):rep(i % 5 + 1):upper():gsub('W', 'v')\n"
    "  if not words[w] then distinct = distinct + 1 end\n"
    "  words[w] = (words[w] or 0) + 1\n"
    "end\n"
    "assert(distinct == 97 * 5 or N // 2 < 485, 'distinct words')\n"
    "-- 4. a hash map grown, then every odd key removed, then collected\n"
    "local map = {}\n"
    "for i = 1, N do map['k' .. i] = i end\n"
    "for i = 1, N, 2 do map['k' .. i] = nil end\n"
    "collectgarbage()\n"
    "local left, total = 0, 0\n"
    "for _, v in pairs(map) do left = left + 1; total = total + v end\n"
    "assert(total == (N // 2) * (N // 2 + 1), 'even keys sum')\n"
    "-- 5. coroutines and closures\n"
    "local function gen(n)\n"
    "  return coroutine.wrap(function() for i = 1, n do coroutine.yield(i) end end)\n"
    "end\n"
    "local acc = 0\n"
    "for k = 1, 20 do for v in gen(N // 20) do acc = acc + v end end\n"
    "-- 6. a string buffer grown piece by piece (luaL_Buffer: reallocs), then trimmed\n"
    "local buf = {}\n"
    "for i = 1, 200 do buf[i] = string.format('%05d:%s;', i, ('abc'):rep(i % 50)) end\n"
    "local joined = table.concat(buf)\n"
    "local back = 0\n"
    "for n in joined:gmatch('(%d+):') do back = back + tonumber(n) end\n"
    "assert(back == 200 * 201 // 2, 'buffer round trip')\n"
    "-- 7. strings big enough to be large blocks, and slices of them\n"
    "local big = string.rep('x', 300 * 1024) .. string.rep('y', 700 * 1024)\n"
    "assert(#big == 1000 * 1024, 'big length')\n"
    "local slices = {}\n"
    "for i = 1, 8 do slices[i] = big:sub(i * 100000, i * 100000 + 299999) end\n"
    "assert(slices[1]:sub(1, 1) == 'x' and slices[8]:sub(-1) == 'y', 'slices')\n"
    "-- 8. tables resized up and down (array part, hash part)\n"
    "local t = {}\n"
    "for round = 1, 5 do\n"
    "  for i = 1, N do t[i] = i end\n"
    "  for i = N, 1, -1 do t[i] = nil end\n"
    "  collectgarbage('step')\n"
    "end\n"
    "assert(next(t) == nil, 'emptied')\n"
    "return N, sum, acc, left\n";

/* Keeps strings of 64 KiB until the heap refuses; pcall catches Lua's memory error. */
static const char exhaust_script[] = "local keep = {}\n"
                                     "local ok, err = pcall(function()\n"
                                     "  local i = 0\n"
                                     "  while true do\n"
                                     "    i = i + 1\n"
                                     "    keep[i] = string.rep('z', 65536) .. i\n"
                                     "  end\n"
                                     "end)\n"
                                     "local n = #keep\n"
                                     "keep = nil\n"
                                     "collectgarbage()\n"
                                     "return ok, tostring(err), n\n";

/* ------------------------------------------------------------------------------------------------
 * Running them
 * ---------------------------------------------------------------------------------------------- */

static int failures;

static void check(bool ok, const char *what)
{
    if (!ok) {
        printf("FAIL: %s\n", what);
        failures++;
    }
}

static void print_line(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    fwrite(text, 1, len, stdout);
}

static void report(mp_heap *heap, const char *what, bool verbose)
{
    struct mp_heap_stats s;
    if (mp_heap_stats(heap, &s) != 0) {
        check(false, "mp_heap_stats");
        return;
    }
    unsigned classes = 0;
    uint64_t peak = 0;
    for (size_t i = 0; i < MP_HEAP_CLASSES; i++) {
        classes += s.classes[i].allocs != 0;
        peak += s.classes[i].blocks_peak;
    }
    printf("%s: %" PRIu64 " allocs, %" PRIu64 " frees, %" PRIu64 " refused, %" PRIu64
           " blocks in use (%" PRIu64 " bytes), %u classes used, sum of class peaks %" PRIu64
           ", %" PRIu64 " KiB reserved\n",
           what, s.allocs, s.frees, s.failed_allocs, s.blocks_in_use, s.bytes_in_use, classes, peak,
           s.bytes_reserved / 1024);
    if (verbose)
        mp_heap_stats_write(&s, MP_FORMAT_TEXT, print_line, NULL);
}

static uint64_t in_use(mp_heap *heap)
{
    struct mp_heap_stats s;
    return mp_heap_stats(heap, &s) == 0 ? s.blocks_in_use : UINT64_MAX;
}

static lua_State *open_state(mp_heap *heap)
{
    lua_State *L = lua_newstate(heap_lua_alloc, heap);
    if (L != NULL)
        luaL_openlibs(L);
    return L;
}

static void run_churn(long n, bool verbose)
{
    mp_heap *heap = mp_heap_create(&(mp_heap_opts){.name = "lua"});
    lua_State *L = heap ? open_state(heap) : NULL;
    if (L == NULL) {
        check(false, "a Lua state on a heap");
        mp_heap_destroy(heap);
        return;
    }
    lua_pushinteger(L, n);
    lua_setglobal(L, "N");
    if (luaL_loadstring(L, churn_script) != LUA_OK || lua_pcall(L, 0, 4, 0) != LUA_OK) {
        printf("script error: %s\n", lua_tostring(L, -1));
        check(false, "the churn script runs");
    } else {
        long long n2 = lua_tointeger(L, -4), sum = lua_tointeger(L, -3);
        long long acc = lua_tointeger(L, -2), left = lua_tointeger(L, -1);
        long long per = n / 20;
        check(n2 == n, "the script saw N");
        check(sum == 3LL * n * (n + 1) / 2, "sum of 3, 6, ..., 3N parsed back from one string");
        check(acc == 20 * per * (per + 1) / 2, "coroutine totals");
        check(left == n / 2, "even keys left in the map");
        printf("churn: %ld records, sum %lld, coroutine total %lld, %lld keys left\n", n, sum, acc,
               left);
    }
    lua_settop(L, 0);
    printf("Lua says it uses %d KiB before lua_close\n", lua_gc(L, LUA_GCCOUNT, 0));
    lua_close(L);
    report(heap, "heap after lua_close", verbose);
    uint64_t left_blocks = in_use(heap);
    if (left_blocks != 0)
        printf("  %" PRIu64 " blocks still in use\n", left_blocks);
    check(left_blocks == 0, "every block back after lua_close (blocks_in_use == 0)");
    mp_heap_destroy(heap);
}

static void run_exhaust(bool verbose)
{
    /* Every size class in use holds a 2 MiB chunk, so the capacity leaves room for Lua's classes
     * plus a few MiB of 64 KiB strings. */
    const size_t cap = 48u << 20;
    mp_heap *heap = mp_heap_create(&(mp_heap_opts){.name = "lua-capped", .capacity = cap});
    lua_State *L = heap ? open_state(heap) : NULL;
    if (L == NULL) {
        check(false, "a Lua state on a capped heap");
        mp_heap_destroy(heap);
        return;
    }
    if (luaL_loadstring(L, exhaust_script) != LUA_OK || lua_pcall(L, 0, 3, 0) != LUA_OK) {
        printf("script error: %s\n", lua_tostring(L, -1));
        check(false, "the exhaustion script runs");
    } else {
        int ok = lua_toboolean(L, -3);
        const char *err = lua_tostring(L, -2);
        long long kept = lua_tointeger(L, -1);
        printf("exhaust: kept %lld strings of 64 KiB, then: %s\n", kept, err ? err : "(none)");
        check(!ok && err && strstr(err, "not enough memory"),
              "running out gives Lua's memory error");
        check(kept > 10, "a useful number of strings fit first");
    }
    lua_settop(L, 0);
    /* The state still works after the memory error. */
    if (luaL_dostring(L, "local t = {} for i = 1, 1000 do t[i] = tostring(i) end return #t") !=
            LUA_OK ||
        lua_tointeger(L, -1) != 1000) {
        printf("after the memory error: %s\n", lua_tostring(L, -1));
        check(false, "the state works after a memory error (memory freed by the collector is "
                     "usable again)");
    }
    lua_settop(L, 0);
    lua_close(L);
    report(heap, "capped heap after lua_close", verbose);
    struct mp_heap_stats s;
    mp_heap_stats(heap, &s);
    check(s.failed_allocs > 0, "the capacity refused allocations");
    check(s.bytes_reserved <= cap, "the heap kept within its capacity");
    check(s.blocks_in_use == 0, "every block back after lua_close (capped heap)");
    mp_heap_destroy(heap);
}

int main(int argc, char **argv)
{
    bool verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    const char *scale_env = getenv("MP_TEST_SCALE");
    double scale = scale_env ? strtod(scale_env, NULL) : 1.0;
    if (!(scale > 0))
        scale = 1.0;
    long n = (long)(20000 * scale);
    if (n < 1000)
        n = 1000;
    printf("%s on a mempool heap\n", LUA_RELEASE);
    run_churn(n, verbose);
    run_exhaust(verbose);
    printf("%s\n", failures ? "lua_heap: FAILED" : "lua_heap: ok");
    return failures != 0;
}

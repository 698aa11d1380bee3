#!/usr/bin/env bash
# Real programs on the drop-in malloc: each workload runs once as it is and once under
# LD_PRELOAD=libmempool_malloc.so with MEMPOOL_SHOW_STATS=1; its stdout and exit status must be the
# same, and its stderr must hold the heap's stats with at least MIN_ALLOCS allocations in one
# process (so the library was in use, not merely loaded).
#   scripts/preload.sh LIB WORKDIR [workload ...]
# Workloads: python perl sqlite lua git gcc cxx, then the allocation patterns of bench/malloc/
# (larson xmalloc scratch thrash large gsimple gthread mstress sh6 sh8 rptest bignum mleak: programs
# written against plain malloc, after the standard allocator benchmarks; see bench/malloc/*.c);
# default: all. The programs come from Debian (scripts/test.sh's preload stage installs them); the
# C and C++ ones are built here.
# With BENCH=1 (scripts/bench-preload.sh) it only sets the workloads up and prints, one per line,
# "name<TAB>command" for the benchmark to time; the pattern programs then run longer (the checks
# run them briefly).
set -euo pipefail
patterns_dir=$(realpath "$(dirname "$0")/../bench/malloc")
lib=$(realpath "$1")
work=$2
shift 2
names=("$@")
[ ${#names[@]} -gt 0 ] ||
  names=(python perl sqlite lua git gcc cxx larson xmalloc scratch thrash large gsimple gthread
    mstress sh6 sh8 rptest bignum mleak)
MIN_ALLOCS=${MIN_ALLOCS:-1000}
rm -rf "$work"
mkdir -p "$work"
cd "$work"
# Our own options must not leak into the runs compared (an unknown MEMPOOL_ name is reported).
for v in $(env | grep -o '^MEMPOOL_[A-Z_]*' || true); do unset "$v"; done

# ---- the workloads: setup_NAME writes its inputs, cmd_NAME is the command run twice ----
setup_python() {
  cat >churn.py <<'EOF'
import threading, collections
def churn(seed, out):
    objs, total = {}, 0
    for i in range(60000):
        k = (i * 7919 + seed) % 5000
        objs[k] = [str(i)] * (i % 7) + [{'k': k, 'v': (i, seed)}]
        if i % 3 == 0:
            objs.pop((k * 31) % 5000, None)
        total += len(objs)
    out[seed] = (total, sum(len(v) for v in objs.values()))
out = {}
threads = [threading.Thread(target=churn, args=(s, out)) for s in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(sorted(out.items()))
print(collections.Counter(w for w in open('churn.py').read().split()).most_common(5))
EOF
}
# PYTHONMALLOC=malloc: every object from malloc, not only those pymalloc does not keep.
cmd_python() { echo "env PYTHONMALLOC=malloc /usr/bin/python3 churn.py"; }

setup_perl() {
  cat >work.pl <<'EOF'
my %h; my @a;
for my $i (1 .. 200000) { $h{"key$i"} = [$i, "v" x ($i % 13)]; push @a, "s$i" if $i % 3; }
delete $h{"key$_"} for grep { $_ % 5 == 0 } 1 .. 200000;
my @s = sort { $a cmp $b } @a;
my $n = 0; for (@s) { $n++ if /7\d*3$/ }
print scalar(keys %h), " ", scalar(@s), " $n $s[0] $s[-1]\n";
EOF
}
cmd_perl() { echo "perl work.pl"; }

setup_sqlite() {
  cat >work.sql <<'EOF'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, val REAL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO t(name, grp, val) SELECT printf('name-%06d', (i * 7919) % 100000), i % 97, i * 0.5 FROM n;
CREATE INDEX t_grp ON t(grp, name);
SELECT grp, count(*), sum(val) FROM t GROUP BY grp ORDER BY grp LIMIT 5;
SELECT name FROM t WHERE grp = 42 ORDER BY name LIMIT 3;
SELECT count(DISTINCT substr(name, 1, 8)) FROM t;
UPDATE t SET val = val * 2 WHERE grp < 10;
SELECT sum(val) FROM t;
EOF
}
cmd_sqlite() { echo "sh -c 'rm -f work.db && sqlite3 work.db < work.sql'"; }

setup_lua() {
  cat >work.lua <<'EOF'
local t, parts = {}, {}
for i = 1, 300000 do
  t[i % 20000] = {i, tostring(i), {x = i}}
  if i % 10 == 0 then parts[#parts + 1] = string.rep("ab", i % 17) end
end
local n = 0
for k, v in pairs(t) do n = n + #v[2] end
local s = table.concat(parts)
collectgarbage()
print(n, #s, #parts)
EOF
}
cmd_lua() { echo "lua5.4 work.lua"; }

setup_git() {
  mkdir -p src
  for i in $(seq 1 300); do printf 'file %d\n%s\n' "$i" "$(seq "$i" $((i + 50)))" >src/f$i.txt; done
}
# Fixed names and dates: the commit hashes, and so the log, are the same in both runs.
cmd_git() {
  echo "env GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org GIT_COMMITTER_NAME=t" \
    "GIT_COMMITTER_EMAIL=t@example.org GIT_AUTHOR_DATE=2020-01-01T00:00:00Z" \
    "GIT_COMMITTER_DATE=2020-01-01T00:00:00Z GIT_CONFIG_NOSYSTEM=1 HOME=$work" \
    "sh -c 'rm -rf repo && mkdir repo && cp -r src repo/ && cd repo && git init -q -b main &&" \
    "git add . && git commit -q -m first && echo more >> src/f1.txt && git commit -qam second &&" \
    "git log --stat --format=%H:%s | tail -5 && git count-objects'"
}

setup_gcc() {
  {
    echo '#include <stdio.h>'
    for i in $(seq 1 150); do
      echo "static int f$i(int x) { int s = 0; for (int i = 0; i < x; i++) s += i * $i % 7; return s; }"
    done
    echo 'int main(void) { long t = 0;'
    for i in $(seq 1 150); do echo "  t += f$i($i);"; done
    echo '  printf("%ld\n", t); return 0; }'
  } >prog.c
}
cmd_gcc() { echo "sh -c 'gcc -O2 -o prog prog.c && ./prog && gcc -O2 -c prog.c -o prog.o && md5sum prog.o'"; }

setup_cxx() {
  cat >prog.cpp <<'EOF'
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>
int main()
{
    std::mutex m;
    std::map<int, std::string> all;
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; t++)
        ts.emplace_back([t, &m, &all] {
            std::unordered_map<int, std::vector<int>> u;
            for (int i = 0; i < 200000; i++) {
                u[i % 5000].push_back(i);
                if (i % 4 == 0)
                    u.erase((i * 7) % 5000);
            }
            std::lock_guard<std::mutex> g(m);
            for (auto &kv : u)
                all[kv.first * 4 + t] = std::to_string(kv.second.size());
        });
    for (auto &t : ts)
        t.join();
    std::size_t len = 0;
    for (auto &kv : all)
        len += kv.second.size();
    std::printf("%zu %zu\n", all.size(), len);
}
EOF
  g++ -O2 -std=c++17 -pthread -o prog_cxx prog.cpp
}
cmd_cxx() { echo "./prog_cxx"; }

# ---- the allocation patterns: each a program of bench/malloc/, its arguments brief for the
# check and longer for the benchmark (BENCH=1): NAME -> "PROGRAM|CHECK_ARGS|BENCH_ARGS|MIN" (MIN:
# the allocations it must make, if not MIN_ALLOCS) ----
declare -A patterns=(
  # larson: threads, generations (new threads take other threads' tables), rounds, slots.
  [larson]="larson|4 4 5000 500|4 20 50000 1000|"
  # xmalloc: producer/consumer pairs, blocks per producer.
  [xmalloc]="xmalloc|2 20000|2 500000|"
  # cache_scratch: mode, threads, objects per thread, writes per object, object size.
  [scratch]="cache_scratch|scratch 4 500 50 8|scratch 4 2000 5000 8|"
  [thrash]="cache_scratch|thrash 4 500 50 8|thrash 4 2000 5000 8|"
  # malloc_large: blocks of 64 KiB..4 MiB, a byte written on each page; rounds, slots (few
  # allocations: its own minimum).
  [large]="malloc_large|400 20|3000 20|300"
  # churn (glibc's bench-malloc-simple and -thread): threads, rounds per thread.
  [gsimple]="churn|1 100000|1 5000000|"
  [gthread]="churn|4 50000|4 1500000|"
  # mstress: threads, rounds, repeats (threads made anew), slots.
  [mstress]="mstress|4 20000 2|4 300000 3|"
  # sh6 and sh8 (SmartHeap's sh6bench, sh8bench: sh8 frees on another thread): threads, rounds,
  # blocks a round, largest size.
  [sh6]="sh6|2 300 1000 512|4 3000 1000 512|"
  [sh8]="sh8|4 300 1000 512|4 3000 1000 512|"
  # rptest (rpmalloc's alloc-test and rptest): threads, rounds, window of live blocks.
  [rptest]="rptest|4 50000 500|4 1000000 2000|"
  # bignum (cfrac, espresso: one thread's short-lived objects grown by realloc): rounds, N (1..N!).
  [bignum]="bignum|2 300|10 1000|"
  # mleak: rounds, blocks a round, one block in LEAK leaked.
  [mleak]="mleak|300 2000 100|3000 5000 100|"
)

for n in "${names[@]}"; do
  min=$MIN_ALLOCS
  if [ -n "${patterns[$n]:-}" ]; then
    IFS='|' read -r prog check bench pmin <<<"${patterns[$n]}"
    gcc -O2 -Wall -Wextra -Werror -pthread -o "$prog" "$patterns_dir/$prog.c"
    [ "${BENCH:-0}" = 1 ] && cmd="./$prog $bench" || cmd="./$prog $check"
    min=${pmin:-$min}
  else
    "setup_$n"
    cmd=$(cmd_$n)
  fi
  if [ "${BENCH:-0}" = 1 ]; then
    printf '%s\t%s\n' "$n" "$cmd"
    continue
  fi
  start=$(date +%s.%N)
  rc0=0 && sh -c "$cmd" >"$n.out0" 2>"$n.err0" || rc0=$?
  rc1=0 && env LD_PRELOAD="$lib" MEMPOOL_SHOW_STATS=1 sh -c "$cmd" >"$n.out1" 2>"$n.err1" || rc1=$?
  most=$(awk '/^mempool: stats at exit/ { s = 1 } s && $1 == "allocs:" { print $2; s = 0 }' \
    "$n.err1" | sort -n | tail -1)
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  if [ "$rc0" != "$rc1" ] || ! cmp -s "$n.out0" "$n.out1" || [ "${most:-0}" -lt "$min" ]; then
    echo "preload: $n FAILED: exit $rc0 without, $rc1 with; most allocs in a process ${most:-none}"
    diff "$n.out0" "$n.out1" | head -20 || true
    echo "-- stderr without:"; head -20 "$n.err0"
    echo "-- stderr with:"; grep -v '^ ' "$n.err1" | head -20
    exit 1
  fi
  [ "$rc0" = 0 ] || { echo "preload: $n exits $rc0 even without the library"; cat "$n.err0"; exit 1; }
  printf 'preload: %-7s same output and status (%s), %s allocations in its busiest process (%.1fs)\n' \
    "$n" "$rc0" "$most" "$secs"
done

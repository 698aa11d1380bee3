#!/usr/bin/env bash
# The benchmark suite (bench/suite/): mempool (its pools, thread-safe pools, mp_malloc and mp_heap)
# against the floor, glibc, jemalloc, tcmalloc, mimalloc, TBB and Boost.Pool, on fixed sizes, threads
# and variable sizes. Builds it (Release) and runs bench_suite, which prints its tables; the full run
# (without --quick) also writes docs/benchmarks.md, its plots docs/bench/*.png and every raw figure
# in docs/bench/results.csv. It takes up to ~10 minutes; --quick takes seconds and writes nothing.
# Then bench_cxx (bench/suite/cxx_bench.cpp) prints its table of C++ node containers (std::list,
# std::map, std::unordered_map at 10^3 and 10^6 elements) on mempool.hpp's resources and allocator
# against std::allocator under each malloc, std::pmr's pool and monotonic resources and Boost's
# fast_pool_allocator (a few minutes; --quick: 10^3 and 10^4, one run; nothing written).
# Installs what it needs from Debian packages when missing (as root); without them the quick run
# skips the peers it lacks, the full run fails after printing what it measured.
# Usage: scripts/bench-suite.sh [--quick] [bench_suite options: see bench_suite --help]
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
out=${MEMPOOL_BENCH_DIR:-$src/build/bench}
# The command recorded in the doc: scripts/bench.sh passes its own.
command=${MP_BENCH_COMMAND:-"bash scripts/bench-suite.sh${*:+ $*}"}

quick=0
for arg in "$@"; do [ "$arg" = --quick ] && quick=1; done

source scripts/lib.sh
need=()
for tool in cmake:cmake gcc:gcc g++:g++ make:make gnuplot:gnuplot-nox; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
[ -f /usr/include/stdio.h ] || need+=(libc6-dev)
# The peers' libraries: jemalloc, tcmalloc (gperftools), mimalloc, TBB's scalable allocator,
# Boost.Pool, APR's pools (found by pkg-config).
mapfile -t -O ${#need[@]} need < <(missing_packages libjemalloc-dev libgoogle-perftools-dev \
  libmimalloc-dev libtbb-dev libboost-dev libapr1-dev pkg-config)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    install_missing "${need[@]}"
  else
    echo "== not root, so not installing: ${need[*]} (the peers they provide will be missing)"
  fi
fi

# Configure every time: a peer library installed since the last run is found then.
cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release -DMEMPOOL_BUILD_TESTS=OFF \
  -DMEMPOOL_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$out" -j"$(nproc 2>/dev/null || echo 2)" --target bench_suite bench_cxx >/dev/null

revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || revision="$revision with uncommitted changes"
report=()
if [ $quick = 0 ]; then
  mkdir -p docs/bench
  report=(--doc docs/benchmarks.md --plots docs/bench --csv docs/bench/results.csv)
fi
"$out/bench/suite/bench_suite" --command "$command" --revision "$revision" "${report[@]}" "$@"

echo
cxx_args=()
[ $quick = 1 ] && cxx_args=(--quick)
"$out/bench/suite/bench_cxx" "${cxx_args[@]}"

#!/usr/bin/env bash
# The main job: builds mempool (Release) and runs the benchmarks, printing their tables:
#   1. the suite against the peers (scripts/bench-suite.sh): floor, mempool (plain and thread-safe
#      pools, mp_malloc, mp_heap), glibc, jemalloc, tcmalloc, mimalloc, TBB, Boost.Pool, on fixed
#      sizes, threads and variable sizes; the full run writes docs/benchmarks.md with its plots
#      and takes up to ~10 minutes; then its C++ node containers on mempool.hpp's resources and
#      allocator against std::allocator under each malloc, std::pmr and Boost (a few minutes);
#   2. bench_pool: mempool's 64-byte pools beside the floor alone, with its targets (seconds).
# Installs what it needs from Debian packages when missing (as root).
# Usage: scripts/bench.sh [--quick] [bench_suite options]   (--quick: seconds, writes nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
out=${MEMPOOL_BENCH_DIR:-$src/build/bench}

quick=()
for arg in "$@"; do [ "$arg" = --quick ] && quick=(--quick); done

MP_BENCH_COMMAND="bash scripts/bench.sh${*:+ $*}" bash scripts/bench-suite.sh "$@"

echo
cmake --build "$out" -j"$(nproc 2>/dev/null || echo 2)" --target bench_pool >/dev/null
"$out/bench/bench_pool" "${quick[@]}"

#!/usr/bin/env bash
# The drop-in malloc against its peers on real programs: each workload of scripts/preload.sh
# (python3, perl, sqlite3, lua5.4, git, gcc, a threaded C++ program, and the allocation patterns
# of bench/malloc/: larson, xmalloc, cache scratch and thrash, large blocks, glibc's simple and
# thread benchmarks, mstress, SmartHeap's sh6bench and sh8bench, rpmalloc's rptest, a cfrac-like
# big-number churn, a leaking program) run under each malloc through
# LD_PRELOAD (glibc: none; jemalloc, tcmalloc, mimalloc, TBB's libtbbmalloc_proxy, and
# libmempool_malloc.so), RUNS times in turn; prints the median wall time and the median peak RSS
# (/usr/bin/time's %M: the largest resident set of the program or any child it waited for) of
# each, and each malloc's geometric mean against glibc's. Wall times on a loaded machine mean
# little: the load (uptime) is printed before and after, and the runs of each workload alternate
# between the mallocs so that a change of load falls on all of them alike.
#   scripts/bench-preload.sh [RUNS [WORKLOAD ...]]   (default 5 runs of all; builds
#   libmempool_malloc.so, Release)
# Installs what it needs from Debian packages when missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
out=${MEMPOOL_BENCH_DIR:-$src/build/bench-preload}
runs=${1:-5}
shift $(($# > 0 ? 1 : 0))
source scripts/lib.sh
install_missing time python3 perl sqlite3 lua5.4 git gcc g++ cmake libjemalloc2 \
  libtcmalloc-minimal4 libmimalloc2.0 libtbbmalloc2
cmake -S "$src" -B "$out/build" -DCMAKE_BUILD_TYPE=Release -DMEMPOOL_BUILD_TESTS=OFF \
  -DMEMPOOL_BUILD_BENCH=OFF -DMEMPOOL_BUILD_EXAMPLES=OFF -DMEMPOOL_BUILD_DOCS=OFF >/dev/null
cmake --build "$out/build" -j2 --target mempool_malloc_shared >/dev/null
lib=/usr/lib/$(gcc -print-multiarch)
peers=(glibc jemalloc tcmalloc mimalloc tbbmalloc mempool)
declare -A so=([glibc]="" [jemalloc]=$lib/libjemalloc.so.2 [tcmalloc]=$lib/libtcmalloc_minimal.so.4
  [mimalloc]=$lib/libmimalloc.so.2 [tbbmalloc]=$lib/libtbbmalloc_proxy.so.2
  [mempool]=$out/build/libmempool_malloc.so)

work=$out/work
mapfile -t lines < <(BENCH=1 bash "$src/scripts/preload.sh" "${so[mempool]}" "$work" "$@")
cd "$work"
echo "load before: $(uptime)"
declare -A t m
for line in "${lines[@]}"; do
  name=${line%%$'\t'*}
  cmd=${line#*$'\t'}
  for r in $(seq 1 "$runs"); do
    for p in "${peers[@]}"; do
      /usr/bin/time -f '%e %M' -o "$work/time.txt" env ${so[$p]:+LD_PRELOAD=${so[$p]}} \
        sh -c "$cmd" >/dev/null 2>&1 || { echo "$name under $p failed"; exit 1; }
      read -r secs kib <"$work/time.txt"
      t[$name,$p]+="$secs "
      m[$name,$p]+="$kib "
    done
  done
done
echo "load after:  $(uptime)"

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# table TITLE FIGURES LOGS: prints the medians of FIGURES (an array by "workload,peer") and adds
# each one's log against glibc's to LOGS (an array by peer).
table() {
  local -n fig=$2 logs=$3
  local line name p v
  printf '\n%-8s' "$1"
  for p in "${peers[@]}"; do printf '%11s' "$p"; done
  echo
  for line in "${lines[@]}"; do
    name=${line%%$'\t'*}
    printf '%-8s' "$name"
    for p in "${peers[@]}"; do
      v=$(echo "${fig[$name,$p]}" | median)
      printf '%11s' "$v"
      logs[$p]=$(awk -v a="${logs[$p]:-0}" -v v="$v" -v g="$(echo "${fig[$name,glibc]}" | median)" \
        'BEGIN { print a + log(v / g) }')
    done
    echo
  done
}
declare -A lt lm
table seconds t lt
table "peak KiB" m lm
printf '\n%-8s' "geomean"
for p in "${peers[@]}"; do printf '%11s' "$p"; done
printf '\n%-8s' "time"
for p in "${peers[@]}"; do
  printf '%11s' "$(awk -v s="${lt[$p]}" -v n="${#lines[@]}" 'BEGIN { printf "%.3f", exp(s / n) }')"
done
printf '\n%-8s' "peak RSS"
for p in "${peers[@]}"; do
  printf '%11s' "$(awk -v s="${lm[$p]}" -v n="${#lines[@]}" 'BEGIN { printf "%.3f", exp(s / n) }')"
done
echo "   (each against glibc's, median of $runs runs)"

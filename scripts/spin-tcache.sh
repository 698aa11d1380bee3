#!/usr/bin/env bash
# Checks src/tcache.pml (the model of tcache.c's cross-thread protocol) exhaustively with spin:
# every interleaving, for 2 threads (5 blocks, caches of 4, magazines of 2, 6 operations each) and
# 3 threads (3 blocks, caches of 2, magazines of 1, 4 operations each). Fails on an assertion
# violation (a block handed out twice or lost), an invalid end state (a deadlock), or a search cut
# short. Usage: scripts/spin-tcache.sh [work directory]   (needs the Debian packages spin and gcc)
set -euo pipefail
model=$(cd "$(dirname "$0")/.." && pwd)/src/tcache.pml
work=${1:-$(mktemp -d)}
mkdir -p "$work"
cd "$work"
check() {
  local name=$1; shift
  spin "$@" -a "$model" >/dev/null
  gcc -O2 -w -DSAFETY -DCOLLAPSE -o "pan-$name" pan.c
  "./pan-$name" -m100000 >"$name.out" 2>&1 || true
  grep -E "errors:|states, stored|elapsed" "$name.out" | sed "s/^/  $name: /"
  if ! grep -q "errors: 0" "$name.out" || grep -q "max search depth too small" "$name.out"; then
    cat "$name.out"
    return 1
  fi
}
check threads2 -DNT=2 -DNB=5 -DLIMIT=4 -DSTEPS=6
check threads3 -DNT=3 -DNB=3 -DLIMIT=2 -DSTEPS=4
echo "tcache.pml: no block lost or handed out twice, no deadlock, for 2 and 3 threads"

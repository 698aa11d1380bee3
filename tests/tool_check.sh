#!/bin/sh
# tool_check.sh TOOL PROGRAM: runs tool_bugs (PROGRAM) once per bug and checks that TOOL reports it
# with the tool's own words, and that a clean run stays silent.
#   asan      PROGRAM is built with -fsanitize=address: each bug must stop it with an ASan report
#   valgrind  PROGRAM is built with MEMPOOL_VALGRIND=ON: memcheck must report each bug
set -u
tool=$1 prog=$2
fails=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# expect MODE PATTERN: the run of MODE must print PATTERN (an extended regex) on stderr
expect() {
  case $tool in
  asan) "$prog" "$1" >/dev/null 2>"$out" ;;
  valgrind) valgrind --leak-check=full --errors-for-leak-kinds=definite "$prog" "$1" >/dev/null 2>"$out" ;;
  esac
  if grep -Eq "$2" "$out"; then
    echo "ok: $tool reports $1 ($(grep -Eo "$2" "$out" | head -1))"
  else
    echo "FAIL: $tool did not report $1 (expected /$2/); it printed:"
    head -30 "$out"
    fails=$((fails + 1))
  fi
}

case $tool in
asan)
  expect write-after-free "AddressSanitizer: use-after-poison"
  expect read-after-free "AddressSanitizer: use-after-poison"
  expect heap-after-free "AddressSanitizer: use-after-poison"
  ;; # (leaks: pool blocks live in chunks mapped from the OS, which LeakSanitizer does not scan)
valgrind)
  command -v valgrind >/dev/null || { echo "valgrind not installed"; exit 1; }
  expect write-after-free "Invalid write of size 1"
  expect read-after-free "Invalid read of size 1"
  expect heap-after-free "Invalid write of size 1"
  expect uninit-read "Conditional jump or move depends on uninitialised value"
  expect leak "64 bytes in 1 blocks are definitely lost"
  ;;
*)
  echo "usage: tool_check.sh asan|valgrind PROGRAM"
  exit 2
  ;;
esac

# No false positive: the same calls without the bug.
case $tool in
asan) "$prog" clean >/dev/null 2>"$out" ;;
valgrind) valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
  "$prog" clean >/dev/null 2>"$out" ;;
esac
status=$?
if [ $status -eq 0 ]; then
  echo "ok: $tool is silent on the clean run"
else
  echo "FAIL: the clean run under $tool exited $status:"
  head -30 "$out"
  fails=$((fails + 1))
fi
[ $fails -eq 0 ] && echo "tool_check $tool: all passed" || echo "tool_check $tool: $fails failed"
exit $fails

#!/usr/bin/env bash
# Builds fuzz/fuzz_pool.c with libFuzzer, ASan and UBSan (clang) over the one-file build of the
# library (src/all.c), then fuzzes for SECONDS (default 30: the CI run) on JOBS processes.
#   fuzz/run.sh [SECONDS [JOBS]]
# Inputs it finds go to build/fuzz/corpus (the checked-in seeds in fuzz/corpus are read, not written);
# a failing input is saved as build/fuzz/artifacts/crash-* and the script exits nonzero. Replay one:
#   build/fuzz/fuzz_pool build/fuzz/artifacts/crash-...
# Environment: CC (default clang), FUZZ_OUT (default build/fuzz), FUZZ_FLAGS (more libFuzzer flags),
# FUZZ_SANITIZE (default address,undefined; "undefined" alone fuzzes the paths an ASan build never
# takes: under ASan every pool poisons its free blocks, so the plain, zeroing and secure pools' own
# slow paths, chosen only when no tool watches, do not run).
# See fuzz/README.md for long runs and for adding found inputs to the seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
jobs=${2:-1}
cc=${CC:-clang}
out=${FUZZ_OUT:-build/fuzz}
sanitize=${FUZZ_SANITIZE:-address,undefined}
mkdir -p "$out/corpus" "$out/artifacts"

# libFuzzer ships with clang's runtime libraries (Debian: libclang-rt-<version>-dev). Say so plainly
# rather than fail in the linker's words.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; return (int)(n & 0); }' \
  >"$probe/probe.c"
if ! "$cc" -fsanitize=fuzzer "$probe/probe.c" -o "$probe/probe" >/dev/null 2>&1; then
  echo "fuzz/run.sh: $cc cannot link -fsanitize=fuzzer; install clang and its runtime," >&2
  echo "  e.g. apt-get install clang libclang-rt-14-dev (libclang-rt-<version>-dev for your clang)" >&2
  exit 2
fi

echo "== building $out/fuzz_pool (-fsanitize=fuzzer,$sanitize)"
"$cc" -std=c11 -g -O1 -fno-omit-frame-pointer \
  -fsanitize=fuzzer,"$sanitize" -fno-sanitize-recover=all \
  -DMP_FUZZ_LIBFUZZER -DMP_DEBUG=1 -Iinclude -Isrc \
  src/all.c fuzz/fuzz_pool.c -o "$out/fuzz_pool" -lpthread

echo "== fuzzing for ${seconds}s on $jobs process(es)"
flags=(-max_total_time="$seconds" -max_len=4096 -timeout=20 -rss_limit_mb=2048
  -artifact_prefix="$out/artifacts/" -print_final_stats=1)
if [ "$jobs" -gt 1 ]; then
  flags+=(-fork="$jobs")
fi
# shellcheck disable=SC2086
"$out/fuzz_pool" "${flags[@]}" ${FUZZ_FLAGS:-} "$out/corpus" fuzz/corpus

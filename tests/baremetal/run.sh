#!/usr/bin/env bash
# run.sh OUT: builds mempool for a Cortex-M4 with MP_FREESTANDING=1 and -ffreestanding, checks
# that the library calls nothing outside itself but memset, memcpy and the compiler's helpers,
# reports the code size of each object and of each function a buffer pool links, links
# test_baremetal.c and runs it under qemu-system-arm (mps2-an386) with semihosting, and counts the
# instructions of alloc and free. All of it also for the library without checked pools
# (MP_FREESTANDING_CHECKED=0, in OUT/lean), but trap.c, which needs them. Needs
# gcc-arm-none-eabi, libnewlib-arm-none-eabi, qemu-system-arm, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: run.sh OUT}
mkdir -p "$out"
cc=arm-none-eabi-gcc
arch=(-mthumb -mcpu=cortex-m4)
flags=(-std=c11 -Os "${arch[@]}" -ffreestanding -ffunction-sections -fdata-sections
  -DMP_FREESTANDING=1 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
  -Werror -Iinclude)
objs=() lean=()
mkdir -p "$out/lean"
for f in os pool stats check arena handles; do
  "$cc" "${flags[@]}" -c "src/$f.c" -o "$out/$f.o"
  "$cc" "${flags[@]}" -DMP_FREESTANDING_CHECKED=0 -c "src/$f.c" -o "$out/lean/$f.o"
  objs+=("$out/$f.o")
  lean+=("$out/lean/$f.o")
done
# The one-file build compiles too (it leaves out tcache.c and heap.c).
"$cc" "${flags[@]}" -c src/all.c -o "$out/all.o"
"$cc" "${flags[@]}" -DMP_FREESTANDING_CHECKED=0 -c src/all.c -o "$out/lean/all.o"

# What the library calls outside itself: memset, memcpy, and libgcc's helpers (__aeabi_*: 64-bit
# division and shifts), nothing else.
undefined=$(arm-none-eabi-nm -u "${objs[@]}" "${lean[@]}" | awk 'NF == 2 { print $2 }' | sort -u)
defined=$(arm-none-eabi-nm --defined-only "${objs[@]}" | awk 'NF == 3 { print $3 }' | sort -u)
external=$(comm -23 <(echo "$undefined") <(echo "$defined"))
outside=$(echo "$external" | grep -v -E '^(memset|memcpy|__aeabi_[a-z0-9]+)$' || true)
if [ -n "$outside" ]; then
  echo "the freestanding library calls outside itself: $outside" >&2
  exit 1
fi
echo "calls outside the library: $(echo $external)"

# Code size at -Os, -mthumb -mcpu=cortex-m4 (text: code and read-only data, bytes of flash).
arm-none-eabi-size "${objs[@]}" "${lean[@]}"

# What a program using only a buffer pool (size.c) links of each object and of each of mempool's
# functions, from the linker's map; fails above BUDGET bytes (none: no limit).
# size_report DIR BUDGET OBJECTS...
size_report() {
  local dir=$1 budget=$2
  shift 2
  "$cc" "${flags[@]}" -Itests/baremetal -nostartfiles -Wl,--gc-sections -T tests/baremetal/link.ld \
    -Wl,-Map="$dir/size.map" -o "$dir/size.elf" tests/baremetal/size.c tests/baremetal/startup.c \
    "$@" -lc -lgcc
  python3 - "$dir/size.map" ${budget:+"$budget"} <<'PY'
import re, sys, collections
m = open(sys.argv[1]).read()
m = m[m.index("Linker script and memory map"):]
size, functions = collections.Counter(), []
mine = ("os.o", "pool.o", "stats.o", "check.o", "arena.o", "handles.o")
section = r"^ \.(text|rodata)(\S*)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+)$"
for kind, name, obj_size, obj in re.findall(section, m, re.M):
    obj = obj.split("/")[-1]
    size[obj] += int(obj_size, 16)
    if obj in mine:
        functions.append("%s %s %d" % (obj[:-2], name.lstrip(".") or kind, int(obj_size, 16)))
print("a buffer pool's program links (bytes of flash):", dict(size.most_common()))
print("mempool's, by function:\n  " + "\n  ".join(functions))
total = sum(v for k, v in size.items() if k in mine)
print("mempool's part:", total)
if len(sys.argv) > 2 and total > int(sys.argv[2]):
    sys.exit("a buffer pool links %d bytes of mempool, over its budget of %s" % (total, sys.argv[2]))
PY
}
echo "== checked pools in (MP_FREESTANDING_CHECKED=1, the default)"
size_report "$out" "" "${objs[@]}"
echo "== checked pools left out (MP_FREESTANDING_CHECKED=0): the goal, 2 KiB (issue 22)"
size_report "$out/lean" 2048 "${lean[@]}"

# The test program: no C library start files; newlib's libc only for the test's own string calls
# and the library's memset and memcpy. Once with each library (the program defines
# MP_FREESTANDING_CHECKED as its library does).
for dir in "$out" "$out/lean"; do
  if [ "$dir" = "$out" ]; then lib=("${objs[@]}") def=(); else lib=("${lean[@]}") def=(-DMP_FREESTANDING_CHECKED=0); fi
  "$cc" "${flags[@]}" "${def[@]}" -Itests/baremetal -nostartfiles -Wl,--gc-sections \
    -T tests/baremetal/link.ld -Wl,-Map="$dir/test_baremetal.map" -o "$dir/test_baremetal.elf" \
    tests/baremetal/test_baremetal.c tests/baremetal/startup.c "${lib[@]}" -lc -lgcc
  arm-none-eabi-size "$dir/test_baremetal.elf"
  timeout 60 qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -kernel "$dir/test_baremetal.elf" 2>&1 |
    tee "$dir/test.log" # QEMU writes semihosting's output to its stderr
  grep -qE ' passed, 0 failed\r?$' "$dir/test.log"
done

# With no handler, a report traps: the program ends in the fault handler (trap.c).
"$cc" "${flags[@]}" -Itests/baremetal -nostartfiles -Wl,--gc-sections -T tests/baremetal/link.ld \
  -o "$out/trap.elf" tests/baremetal/trap.c tests/baremetal/startup.c "${objs[@]}" -lc -lgcc
if timeout 60 qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none \
  -semihosting-config enable=on,target=native -kernel "$out/trap.elf" >"$out/trap.log" 2>&1 ||
  ! grep -q '^fault: ' "$out/trap.log"; then
  cat "$out/trap.log"
  echo "trap.c: a double free with no handler did not trap" >&2
  exit 1
fi
echo "no handler: a double free traps"

# The paths of alloc and free on a plain pool in a buffer, counted from QEMU's trace of every
# instruction (paths.c, paths.py): the README's worst-case figures, for each library.
for dir in "$out" "$out/lean"; do
  if [ "$dir" = "$out" ]; then lib=("${objs[@]}"); else lib=("${lean[@]}"); fi
  echo "== paths: $([ "$dir" = "$out" ] && echo "checked pools in" || echo "checked pools left out")"
  "$cc" "${flags[@]}" -Itests/baremetal -nostartfiles -Wl,--gc-sections -T tests/baremetal/link.ld \
    -o "$dir/paths.elf" tests/baremetal/paths.c tests/baremetal/startup.c "${lib[@]}" -lc -lgcc
  timeout 60 qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -kernel "$dir/paths.elf" -singlestep \
    -d exec,nochain -D "$dir/paths.trace" 2>&1 | grep -q '^paths done'
  arm-none-eabi-objdump -d "$dir/paths.elf" >"$dir/paths.dis"
  python3 tests/baremetal/paths.py "$dir/paths.trace" "$dir/paths.dis"
done

# The same library through CMake (MEMPOOL_FREESTANDING=ON), with the cross compiler.
cmake -S . -B "$out/cmake" -DMEMPOOL_FREESTANDING=ON -DMEMPOOL_WERROR=ON -DMEMPOOL_BUILD_CXX=OFF \
  -DCMAKE_SYSTEM_NAME=Generic -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="${arch[*]}" \
  -DCMAKE_TRY_COMPILE_TARGET_TYPE=STATIC_LIBRARY >"$out/cmake.log" 2>&1 || { cat "$out/cmake.log"; exit 1; }
cmake --build "$out/cmake" >>"$out/cmake.log" 2>&1 || { cat "$out/cmake.log"; exit 1; }
echo "CMake, MEMPOOL_FREESTANDING=ON: $(ls "$out/cmake"/libmempool.a)"
cmake -S . -B "$out/lean/cmake" -DMEMPOOL_FREESTANDING=ON -DMEMPOOL_FREESTANDING_CHECKED=OFF \
  -DMEMPOOL_WERROR=ON -DMEMPOOL_BUILD_CXX=OFF -DCMAKE_SYSTEM_NAME=Generic -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_C_FLAGS="${arch[*]}" -DCMAKE_TRY_COMPILE_TARGET_TYPE=STATIC_LIBRARY >"$out/lean/cmake.log" 2>&1 ||
  { cat "$out/lean/cmake.log"; exit 1; }
cmake --build "$out/lean/cmake" >>"$out/lean/cmake.log" 2>&1 || { cat "$out/lean/cmake.log"; exit 1; }
arm-none-eabi-nm "$out/lean/cmake/libmempool.a" | grep -q ' T mpi_check_alloc$' &&
  { echo "MEMPOOL_FREESTANDING_CHECKED=OFF did not reach the library" >&2; exit 1; }
echo "CMake, MEMPOOL_FREESTANDING_CHECKED=OFF: $(ls "$out/lean/cmake"/libmempool.a)"

#!/usr/bin/env bash
# run.sh OUT: builds mempool for a Cortex-M4 with MP_FREESTANDING=1 and -ffreestanding, checks
# that the library calls nothing outside itself but memset, memcpy and the compiler's helpers,
# reports the code size of each object, links test_baremetal.c and runs it under qemu-system-arm
# (mps2-an386) with semihosting, and counts the instructions of alloc and free. Needs
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
objs=()
for f in os pool stats check arena handles; do
  "$cc" "${flags[@]}" -c "src/$f.c" -o "$out/$f.o"
  objs+=("$out/$f.o")
done
# The one-file build compiles too (it leaves out tcache.c and heap.c).
"$cc" "${flags[@]}" -c src/all.c -o "$out/all.o"

# What the library calls outside itself: memset, memcpy, and libgcc's helpers (__aeabi_*: 64-bit
# division and shifts), nothing else.
undefined=$(arm-none-eabi-nm -u "${objs[@]}" | awk 'NF == 2 { print $2 }' | sort -u)
defined=$(arm-none-eabi-nm --defined-only "${objs[@]}" | awk 'NF == 3 { print $3 }' | sort -u)
external=$(comm -23 <(echo "$undefined") <(echo "$defined"))
outside=$(echo "$external" | grep -v -E '^(memset|memcpy|__aeabi_[a-z0-9]+)$' || true)
if [ -n "$outside" ]; then
  echo "the freestanding library calls outside itself: $outside" >&2
  exit 1
fi
echo "calls outside the library: $(echo $external)"

# Code size at -Os, -mthumb -mcpu=cortex-m4 (text: code and read-only data, bytes of flash).
arm-none-eabi-size "${objs[@]}"

# What a program using only a buffer pool (size.c) links of each object, from the linker's map.
"$cc" "${flags[@]}" -Itests/baremetal -nostartfiles -Wl,--gc-sections -T tests/baremetal/link.ld \
  -Wl,-Map="$out/size.map" -o "$out/size.elf" tests/baremetal/size.c tests/baremetal/startup.c \
  "${objs[@]}" -lc -lgcc
python3 - "$out/size.map" <<'PY'
import re, sys, collections
m = open(sys.argv[1]).read()
m = m[m.index("Linker script and memory map"):]
size = collections.Counter()
section = r"^ \.(?:text|rodata)\S*\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+)$"
for obj_size, obj in re.findall(section, m, re.M):
    size[obj.split("/")[-1]] += int(obj_size, 16)
lib = sum(v for k, v in size.items() if k in ("os.o", "pool.o", "stats.o", "check.o", "arena.o"))
print("a buffer pool's program links (bytes of flash):", dict(size.most_common()))
print("mempool's part:", lib)
PY

# The test program: no C library start files; newlib's libc only for the test's own string calls
# and the library's memset and memcpy.
"$cc" "${flags[@]}" -Itests/baremetal -nostartfiles -Wl,--gc-sections -T tests/baremetal/link.ld \
  -Wl,-Map="$out/test_baremetal.map" -o "$out/test_baremetal.elf" tests/baremetal/test_baremetal.c \
  tests/baremetal/startup.c "${objs[@]}" -lc -lgcc
arm-none-eabi-size "$out/test_baremetal.elf"
timeout 60 qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none \
  -semihosting-config enable=on,target=native -kernel "$out/test_baremetal.elf" 2>&1 |
  tee "$out/test.log" # QEMU writes semihosting's output to its stderr
grep -qE ' passed, 0 failed\r?$' "$out/test.log"

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
# instruction (paths.c, paths.py): the README's worst-case figures.
"$cc" "${flags[@]}" -Itests/baremetal -nostartfiles -Wl,--gc-sections -T tests/baremetal/link.ld \
  -o "$out/paths.elf" tests/baremetal/paths.c tests/baremetal/startup.c "${objs[@]}" -lc -lgcc
timeout 60 qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none \
  -semihosting-config enable=on,target=native -kernel "$out/paths.elf" -singlestep \
  -d exec,nochain -D "$out/paths.trace" 2>&1 | grep -q '^paths done'
arm-none-eabi-objdump -d "$out/paths.elf" >"$out/paths.dis"
python3 tests/baremetal/paths.py "$out/paths.trace" "$out/paths.dis"

# The same library through CMake (MEMPOOL_FREESTANDING=ON), with the cross compiler.
cmake -S . -B "$out/cmake" -DMEMPOOL_FREESTANDING=ON -DMEMPOOL_WERROR=ON -DMEMPOOL_BUILD_CXX=OFF \
  -DCMAKE_SYSTEM_NAME=Generic -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="${arch[*]}" \
  -DCMAKE_TRY_COMPILE_TARGET_TYPE=STATIC_LIBRARY >"$out/cmake.log" 2>&1 || { cat "$out/cmake.log"; exit 1; }
cmake --build "$out/cmake" >>"$out/cmake.log" 2>&1 || { cat "$out/cmake.log"; exit 1; }
echo "CMake, MEMPOOL_FREESTANDING=ON: $(ls "$out/cmake"/libmempool.a)"

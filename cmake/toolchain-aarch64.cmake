# ARM64 Linux with Debian's gcc-aarch64-linux-gnu, tests run by qemu-aarch64 (qemu-user).
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(MEMPOOL_CROSS_TRIPLE aarch64-linux-gnu)
set(MEMPOOL_CROSS_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-cross.cmake)

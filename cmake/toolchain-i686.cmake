# 32-bit x86 Linux with Debian's gcc-i686-linux-gnu, tests run by qemu-i386 (qemu-user): a kernel
# built without 32-bit support cannot run them natively.
#   cmake -S . -B build/i686 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-i686.cmake
set(CMAKE_SYSTEM_PROCESSOR i686)
set(MEMPOOL_CROSS_TRIPLE i686-linux-gnu)
set(MEMPOOL_CROSS_QEMU qemu-i386)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-cross.cmake)
# Programs are linked statically: under Debian bookworm's qemu-i386 (7.2) the child of a fork() in a
# dynamically linked program spins forever, and the death tests fork.
set(CMAKE_EXE_LINKER_FLAGS_INIT -static)

# Shared part of the cross toolchains (toolchain-aarch64.cmake, toolchain-i686.cmake): a Debian
# cross gcc for MEMPOOL_CROSS_TRIPLE, its libraries from /usr/<triple>, and qemu-user to run what
# is built, so `ctest` runs the suites under the emulator (scripts/test.sh, stage cross).
# Debian: gcc-<triple with dashes>, libc6-dev-<arch>-cross and qemu-user (gcc-multilib conflicts
# with the cross compilers).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER ${MEMPOOL_CROSS_TRIPLE}-gcc)
set(CMAKE_FIND_ROOT_PATH /usr/${MEMPOOL_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# The host's .pc files describe host libraries: pkg-config looks only at the target's.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${MEMPOOL_CROSS_TRIPLE}/pkgconfig)
# The benchmark's C++ peer needs the C++ cross compiler too (Debian: g++-<triple with dashes>).
set(CMAKE_CXX_COMPILER ${MEMPOOL_CROSS_TRIPLE}-g++)
# -L: the target's dynamic loader and libc, wherever the test is run from.
set(CMAKE_CROSSCOMPILING_EMULATOR ${MEMPOOL_CROSS_QEMU} -L /usr/${MEMPOOL_CROSS_TRIPLE})

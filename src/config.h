/*
 * config.h: every compile-time option of mempool, in one place. Each is #ifndef-guarded so a build
 * can set it with -D (the CMake option of the same name, without the MP_ prefix and with MEMPOOL_,
 * sets it where one exists). Each says what it does, which values it takes and what it costs.
 */
#ifndef MP_CONFIG_H
#define MP_CONFIG_H

/* Internal assertion level: 0 none (release), 1 cheap O(1) checks, 2 also O(n) validators after
 * every slow-path operation. Costs nothing at 0. CMake: MEMPOOL_DEBUG. */
#ifndef MP_DEBUG
#define MP_DEBUG 0
#endif

/* The smallest chunk, in bytes: a power of two, at least the page size. Chunks are aligned to their
 * size, so a block's chunk header is its address masked by ~(chunk_size - 1). A larger chunk wastes
 * less to headers (MP_CHUNK_HEADER per chunk) but rounds a small pool's first reservation up. */
#ifndef MP_CHUNK_SIZE
#define MP_CHUNK_SIZE (64u * 1024u)
#endif

/* A chunk is doubled (for large blocks) until it holds at least this many blocks, which bounds the
 * space lost at a chunk's end to 1/MP_CHUNK_MIN_BLOCKS of it. */
#ifndef MP_CHUNK_MIN_BLOCKS
#define MP_CHUNK_MIN_BLOCKS 8u
#endif

/* Bytes reserved at the start of every chunk for its header (before alignment to the block
 * alignment). Must hold struct mpi_run; static_asserted in pool.c. */
#ifndef MP_CHUNK_HEADER
#define MP_CHUNK_HEADER 128u
#endif

/* A pool takes chunks from its source in runs of 1, 1, 2, 4, ... chunks, each run as large as the
 * pool already is (geometric growth, so a pool of N bytes makes O(log N) source calls), up to this
 * many chunks in one run. Larger runs mean fewer source calls and fewer runs to walk in
 * trim/owns/check; smaller runs let trim give memory back at a finer grain. */
#ifndef MP_RUN_MAX_CHUNKS
#define MP_RUN_MAX_CHUNKS 256u
#endif

/* Memcheck support (CMake MEMPOOL_VALGRIND): 1 makes every pool tell Valgrind about its blocks
 * (VALGRIND_MEMPOOL_ALLOC/FREE) when the program runs under Valgrind, so memcheck reports writes to
 * freed blocks, reads of uninitialised blocks and leaked blocks. Outside Valgrind it costs one test
 * at pool creation; under Valgrind every call takes the slow path. Needs valgrind/memcheck.h. */
#ifndef MP_VALGRIND
#define MP_VALGRIND 0
#endif

/* AddressSanitizer support, on by itself in a build with -fsanitize=address: every pool takes the
 * slow path and poisons free blocks (ASAN_POISON_MEMORY_REGION), so ASan reports a use after free
 * inside a pool. Set MP_ASAN=0 to turn it off. */
#ifndef MP_ASAN
#if defined(__SANITIZE_ADDRESS__)
#define MP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MP_ASAN 1
#endif
#endif
#endif
#ifndef MP_ASAN
#define MP_ASAN 0
#endif

/* The heap's spill to a larger class (heap.c, class_reuse): a request whose class is above that of
 * MP_HEAP_SPILL_MIN bytes (a class size) and has no free block takes one from the next
 * MP_HEAP_SPILL_CLASSES classes before carving. 0 classes: never. Cost: a few more lock trips when
 * a class runs dry, up to (9/8)^classes of waste in a spilled block; gain: far less memory for
 * large, sparse classes. */
#ifndef MP_HEAP_SPILL_MIN
#define MP_HEAP_SPILL_MIN 4096
#endif
#ifndef MP_HEAP_SPILL_CLASSES
#define MP_HEAP_SPILL_CLASSES 2
#endif

/* The heap's class pools over the system source ask the system for the pages of a never-used
 * block they hand out, in one call, instead of taking a page fault on each page at its first
 * write: blocks of up to two pages always, larger ones while the class's blocks are seen written
 * whole (pool.c, "Populating"). 0: pages fault in one by one. */
#ifndef MP_HEAP_POPULATE
#define MP_HEAP_POPULATE 1
#endif

/* How many leaked blocks a checked pool names (with their allocation sites) in its leak message. */
#ifndef MP_LEAKS_LISTED
#define MP_LEAKS_LISTED 4
#endif

/* Bare metal (CMake: MEMPOOL_FREESTANDING): 1 builds only what pools and arenas in a caller's
 * buffer, or over a caller's mp_source, need (os.c, pool.c, arena.c, stats.c, check.c, handles.c;
 * no tcache.c, no heap.c), with -ffreestanding: no C library call but memset and memcpy (and
 * libgcc's 64-bit division), no system call, no threads, no stdio. What needs the system is refused
 * with ENOSYS: MP_THREAD_SAFE, MP_SECURE (no entropy), and a pool or arena with neither buffer nor
 * source; the heap (mp_heap_*, mp_malloc...) and the text/JSON writers (mp_stats_write,
 * mp_stats_print, mp_heap_stats_write) are not defined. Errors go to mp_errno, not errno; error
 * reports go to the handler of mp_set_error_handler() only (the default traps). The program that
 * includes mempool.h must define it the same way. 0: the hosted library. */
#ifndef MP_FREESTANDING
#define MP_FREESTANDING 0
#endif

/* Checked pools on bare metal (CMake: MEMPOOL_FREESTANDING_CHECKED): 0 leaves them out of an
 * MP_FREESTANDING=1 build: MP_CHECKED is refused with ENOSYS, as is MP_HANDLES (a handle pool in a
 * buffer runs on the checked pools' general path), and a pool's slow paths compile
 * without any check, for the least flash (README, "Bare metal"). 1 (the default): checked pools as
 * hosted. No effect on the hosted library. The program defines it as the library does. */
#ifndef MP_FREESTANDING_CHECKED
#define MP_FREESTANDING_CHECKED 1
#endif

#endif /* MP_CONFIG_H */

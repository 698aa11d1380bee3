/*
 * mempool.hpp: mempool for C++17 programs, header-only, over the C API of mempool.h.
 *
 *     mempool::pool_resource nodes;                         // std::pmr, one pool per node size
 *     std::pmr::map<int, std::pmr::string> m(&nodes);
 *     std::vector<int, mempool::allocator<int>> v;          // mp_malloc, stateless
 *     mempool::object_pool<Conn> conns;                     // typed pool, live objects tracked
 *     auto c = conns.make_unique(fd);                       // destroyed into the pool
 *
 * What is here (each described on its declaration below):
 *   - RAII owners of the C objects, move-only: mempool::pool (mp_pool), mempool::heap (mp_heap),
 *     mempool::arena (mp_arena), over mempool::owner: get() gives the C handle, release() gives up
 *     ownership.
 *   - std::pmr::memory_resource implementations:
 *       heap_resource               any size, over an mp_heap (owned or borrowed);
 *       pool_resource               one fixed-size pool per (size class, alignment), for node-based
 *                                   containers, as std::pmr::unsynchronized_pool_resource;
 *       synchronized_pool_resource  the same over MP_THREAD_SAFE pools, as
 *                                   std::pmr::synchronized_pool_resource;
 *       arena_resource              bump allocation over an mp_arena, freed at once, as
 *                                   std::pmr::monotonic_buffer_resource.
 *   - STL allocators: allocator<T> (stateless, over mp_malloc, the process-wide thread-safe heap)
 *     and heap_allocator<T> (over a given mp_heap), as mimalloc's mi_stl_allocator and
 *     mi_heap_stl_allocator; pool_allocator<T> (nodes from a pool_resource's pools, inline, as
 *     Boost's fast_pool_allocator).
 *   - object_pool<T>: create(args...) / destroy(p), a std::unique_ptr deleter, and the live
 *     objects destroyed with the pool, as Boost's object_pool.
 *
 * Errors are reported as the C++ library reports them: an allocation that fails throws
 * std::bad_alloc (try_* functions return nullptr instead); options the C API refuses (EINVAL) throw
 * std::invalid_argument; an array size that overflows throws std::bad_array_new_length. Every
 * memory_resource honours the alignment it is asked for (any power of two: up to 1 MiB from the
 * heap, any from the arena, from the upstream resource above 16 in pool resources).
 * Thread-safety is that of the C object beneath: a resource or owner over a thread-safe heap or
 * pool (MP_THREAD_SAFE) may be used from any thread; the others from one thread at a time.
 * Every class here may be destroyed only once no thread uses it.
 */
#ifndef MEMPOOL_HPP
#define MEMPOOL_HPP

#include "mempool.h"

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace mempool
{

/* ================================================================================================
 * Internals: not part of the API
 * ============================================================================================== */

namespace detail
{

/* Throws what a failed create means: std::bad_alloc for ENOMEM, std::invalid_argument otherwise. */
[[noreturn]] inline void throw_create_failed(const char *what)
{
    if (errno == ENOMEM)
        throw std::bad_alloc();
    throw std::invalid_argument(what);
}

template <class H> inline H *check_created(H *handle, const char *what)
{
    if (handle == nullptr)
        throw_create_failed(what);
    return handle;
}

/* The alignment every heap block of `bytes` bytes has without asking (mp_heap_alloc's contract). */
constexpr std::size_t heap_natural_align(std::size_t bytes) noexcept
{
    return bytes <= 8 ? 8 : 16;
}

/* n objects of `size` bytes, or std::bad_array_new_length when that overflows size_t. */
inline std::size_t array_bytes(std::size_t n, std::size_t size)
{
    if (n > std::numeric_limits<std::size_t>::max() / size)
        throw std::bad_array_new_length();
    return n * size;
}

/* One allocation from a heap with the alignment asked, freed by heap_free() with the same
 * arguments: blocks the heap aligns by itself are freed sized (no lookup), the others are
 * mp_heap_aligned_alloc()'s, which mp_heap_free() must free. */
inline void *heap_try_alloc(mp_heap *h, std::size_t bytes, std::size_t align) noexcept
{
    if (align <= heap_natural_align(bytes))
        return mp_heap_alloc(h, bytes);
    return mp_heap_aligned_alloc(h, align, bytes);
}

inline void heap_free(mp_heap *h, void *p, std::size_t bytes, std::size_t align) noexcept
{
    if (align <= heap_natural_align(bytes))
        mp_heap_free_sized(h, p, bytes);
    else
        mp_heap_free(h, p);
}

} // namespace detail

/* ================================================================================================
 * RAII owners: pool, heap, arena
 * ============================================================================================== */

/*
 * The ownership of one C object, which Destroy frees (nullptr: none): the base of pool, heap and
 * arena, which add the object's operations. Move-only; a move leaves the source owning nothing.
 */
template <class T, void (*Destroy)(T *)> class owner
{
  public:
    owner(const owner &) = delete;
    owner &operator=(const owner &) = delete;

    /* The C handle (nullptr when it owns nothing); release() also gives up ownership. O(1). */
    T *get() const noexcept
    {
        return h_;
    }
    T *release() noexcept
    {
        return std::exchange(h_, nullptr);
    }
    explicit operator bool() const noexcept
    {
        return h_ != nullptr;
    }

  protected:
    explicit owner(T *h) noexcept : h_(h)
    {
    }
    owner(owner &&other) noexcept : h_(other.release())
    {
    }
    owner &operator=(owner &&other) noexcept
    {
        if (this != &other)
            Destroy(std::exchange(h_, other.release()));
        return *this;
    }
    ~owner()
    {
        Destroy(h_);
    }

    T *h_;
};

/*
 * Owns one mp_pool: creates it, destroys it in the destructor (mp_pool_destroy(), which in a
 * checked pool reports blocks still live). Move-only; a moved-from pool owns nothing (get() is
 * nullptr). Thread-safety: as the mp_pool (MP_THREAD_SAFE: any thread); moving or destroying it is
 * not.
 */
class pool : public owner<mp_pool, mp_pool_destroy>
{
  public:
    /* Creates a pool (mp_pool_create()). O(1). Throws std::invalid_argument for options the C
     * API refuses (EINVAL), std::bad_alloc when no memory is had (ENOMEM). */
    explicit pool(const mp_pool_opts &opts)
        : owner(detail::check_created(mp_pool_create(&opts), "mempool::pool: invalid options"))
    {
    }
    /* A pool of blocks of block_size bytes with the given flags (MP_THREAD_SAFE, ...). Throws as
     * above. */
    explicit pool(std::size_t block_size, unsigned flags = 0) : pool(opts_of(block_size, flags))
    {
    }
    /* Takes ownership of a pool the caller created (nullptr: owns nothing). Never throws. */
    explicit pool(mp_pool *adopt) noexcept : owner(adopt)
    {
    }
    pool(pool &&) noexcept = default;
    pool &operator=(pool &&) noexcept = default;

    /* A block (mp_pool_alloc(), inline): throws std::bad_alloc where mp_pool_alloc() returns NULL
     * (capacity reached, source exhausted, no pool); try_allocate() returns nullptr then. O(1). */
    [[nodiscard]] void *allocate()
    {
        void *b = mp_pool_alloc(h_);
        if (b == nullptr)
            throw std::bad_alloc();
        return b;
    }
    [[nodiscard]] void *try_allocate() noexcept
    {
        return mp_pool_alloc(h_);
    }
    /* Gives a block back (mp_pool_free(), inline; nullptr does nothing). O(1). */
    void deallocate(void *block) noexcept
    {
        mp_pool_free(h_, block);
    }

    /* mp_pool_reset(), mp_pool_trim(), mp_pool_check(), mp_pool_stats() (which returns the
     * figures; all zero for an empty owner), mp_pool_block_size(). Complexities as theirs. */
    void reset() noexcept
    {
        mp_pool_reset(h_);
    }
    std::size_t trim() noexcept
    {
        return mp_pool_trim(h_);
    }
    bool check() const noexcept
    {
        return mp_pool_check(h_);
    }
    mp_stats stats() const noexcept
    {
        mp_stats s{};
        mp_pool_stats(h_, &s);
        return s;
    }
    std::size_t block_size() const noexcept
    {
        return mp_pool_block_size(h_);
    }

  private:
    static mp_pool_opts opts_of(std::size_t block_size, unsigned flags) noexcept
    {
        mp_pool_opts o{};
        o.block_size = block_size;
        o.flags = flags;
        return o;
    }
};

/*
 * Owns one mp_heap: created with the given options (default: a plain heap over the system),
 * destroyed in the destructor (a checked heap reports leaks). Move-only; a moved-from heap owns
 * nothing. Thread-safety: as the mp_heap (MP_THREAD_SAFE: any thread); moving or destroying it is
 * not.
 */
class heap : public owner<mp_heap, mp_heap_destroy>
{
  public:
    /* Creates a heap (mp_heap_create()). O(1). Throws std::invalid_argument (EINVAL) or
     * std::bad_alloc (ENOMEM). */
    heap() : heap(mp_heap_opts{})
    {
    }
    explicit heap(const mp_heap_opts &opts)
        : owner(detail::check_created(mp_heap_create(&opts), "mempool::heap: invalid options"))
    {
    }
    /* Takes ownership of a heap the caller created (nullptr: owns nothing). Never throws. */
    explicit heap(mp_heap *adopt) noexcept : owner(adopt)
    {
    }
    heap(heap &&) noexcept = default;
    heap &operator=(heap &&) noexcept = default;

    /* `bytes` aligned to `align` (a power of two; up to 16 is free, up to 1 MiB from
     * mp_heap_aligned_alloc()). Throws std::bad_alloc where the C call returns NULL (no memory,
     * capacity, a bad alignment); try_allocate() returns nullptr then. O(1) but for large blocks.
     */
    [[nodiscard]] void *allocate(std::size_t bytes, std::size_t align = alignof(std::max_align_t))
    {
        void *p = try_allocate(bytes, align);
        if (p == nullptr)
            throw std::bad_alloc();
        return p;
    }
    [[nodiscard]] void *try_allocate(std::size_t bytes,
                                     std::size_t align = alignof(std::max_align_t)) noexcept
    {
        return detail::heap_try_alloc(h_, bytes, align);
    }
    /* Frees a block of allocate(bytes, align) given the same arguments (sized: no lookup for
     * small sizes). nullptr does nothing. O(1) but for large blocks. */
    void deallocate(void *p, std::size_t bytes,
                    std::size_t align = alignof(std::max_align_t)) noexcept
    {
        if (p != nullptr)
            detail::heap_free(h_, p, bytes, align);
    }

    /* mp_heap_trim(), mp_heap_reset() (no other thread may use the heap), mp_heap_stats(). */
    std::size_t trim() noexcept
    {
        return mp_heap_trim(h_);
    }
    void reset() noexcept
    {
        mp_heap_reset(h_);
    }
    struct mp_heap_stats stats() const noexcept
    {
        struct mp_heap_stats s {
        };
        mp_heap_stats(h_, &s);
        return s;
    }
};

/*
 * Owns one mp_arena (default: 64 KiB chunks from the system), destroyed in the destructor.
 * Move-only; a moved-from arena owns nothing. Not thread-safe (an arena never is).
 */
class arena : public owner<mp_arena, mp_arena_destroy>
{
  public:
    /* Creates an arena (mp_arena_create()). O(1). Throws std::invalid_argument (EINVAL) or
     * std::bad_alloc (ENOMEM). */
    arena() : arena(mp_arena_opts{})
    {
    }
    explicit arena(const mp_arena_opts &opts)
        : owner(detail::check_created(mp_arena_create(&opts), "mempool::arena: invalid options"))
    {
    }
    /* Takes ownership of an arena the caller created (nullptr: owns nothing). Never throws. */
    explicit arena(mp_arena *adopt) noexcept : owner(adopt)
    {
    }
    arena(arena &&) noexcept = default;
    arena &operator=(arena &&) noexcept = default;

    /* `bytes` aligned to `align` (any power of two), by bumping a pointer. Throws std::bad_alloc
     * where mp_arena_alloc_aligned() returns NULL (no memory, capacity, a bad alignment). O(1) but
     * for taking a chunk. */
    [[nodiscard]] void *allocate(std::size_t bytes, std::size_t align = alignof(std::max_align_t))
    {
        void *p = mp_arena_alloc_aligned(h_, bytes, align);
        if (p == nullptr)
            throw std::bad_alloc();
        return p;
    }
    /* mp_arena_mark(), mp_arena_rewind() (false when the mark is refused), mp_arena_reset(),
     * mp_arena_stats(). */
    mp_arena_pos mark() noexcept
    {
        return mp_arena_mark(h_);
    }
    bool rewind(mp_arena_pos pos) noexcept
    {
        return mp_arena_rewind(h_, pos) == 0;
    }
    void reset() noexcept
    {
        mp_arena_reset(h_);
    }
    struct mp_arena_stats stats() const noexcept
    {
        struct mp_arena_stats s {
        };
        mp_arena_stats(h_, &s);
        return s;
    }
};

/* ================================================================================================
 * memory_resources: heap_resource, arena_resource, pool_resource, synchronized_pool_resource
 * ============================================================================================== */

/*
 * A std::pmr::memory_resource over an mp_heap: any size, any power-of-two alignment up to 1 MiB.
 * Default-constructed it owns a plain heap of its own; it may own a heap made with given options,
 * or borrow one the caller keeps alive (mp_heap *), which it never destroys.
 * allocate: as mp_heap_alloc() (O(1), alignments up to 16 free, larger ones through
 * mp_heap_aligned_alloc()); throws std::bad_alloc when the heap returns NULL.
 * deallocate: sized (mp_heap_free_sized()), so a class block needs no lookup. Never throws.
 * Two heap_resources are equal when they allocate from the same heap.
 * Thread-safety: as the heap (a MP_THREAD_SAFE heap: any thread, as std::pmr's synchronized
 * resources); otherwise one thread at a time.
 */
class heap_resource : public std::pmr::memory_resource
{
  public:
    /* Owns a new heap: mp_heap_create() with these options (default: a plain heap). Throws
     * std::invalid_argument (EINVAL) or std::bad_alloc (ENOMEM). */
    heap_resource() : heap_resource(mp_heap_opts{})
    {
    }
    explicit heap_resource(const mp_heap_opts &opts) : owned_(opts), h_(owned_.get())
    {
    }
    /* Borrows the caller's heap (not destroyed here; it must outlive this resource). Never
     * throws. */
    explicit heap_resource(mp_heap *borrowed) noexcept : owned_(nullptr), h_(borrowed)
    {
    }
    heap_resource(const heap_resource &) = delete;
    heap_resource &operator=(const heap_resource &) = delete;

    /* The heap allocated from. O(1). */
    mp_heap *get() const noexcept
    {
        return h_;
    }

  protected:
    void *do_allocate(std::size_t bytes, std::size_t align) override
    {
        void *p = detail::heap_try_alloc(h_, bytes, align);
        if (p == nullptr)
            throw std::bad_alloc();
        return p;
    }
    void do_deallocate(void *p, std::size_t bytes, std::size_t align) override
    {
        detail::heap_free(h_, p, bytes, align);
    }
    bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override
    {
        auto *o = dynamic_cast<const heap_resource *>(&other);
        return o != nullptr && o->h_ == h_;
    }

  private:
    heap owned_;
    mp_heap *h_;
};

/*
 * A std::pmr::memory_resource over an mp_arena, as std::pmr::monotonic_buffer_resource: allocate
 * bumps a pointer (O(1) but for taking a chunk; any power-of-two alignment), deallocate does
 * nothing, release() frees everything at once (mp_arena_reset()), as does the destructor of an
 * owned arena. Default-constructed it owns an arena of 64 KiB chunks; it may own one made with
 * given options, or borrow one the caller keeps alive. allocate throws std::bad_alloc when the
 * arena returns NULL (capacity reached, no memory). Equal only to itself. Not thread-safe.
 */
class arena_resource : public std::pmr::memory_resource
{
  public:
    /* Owns a new arena: mp_arena_create() with these options. Throws std::invalid_argument
     * (EINVAL) or std::bad_alloc (ENOMEM). */
    arena_resource() : arena_resource(mp_arena_opts{})
    {
    }
    explicit arena_resource(const mp_arena_opts &opts) : owned_(opts), a_(owned_.get())
    {
    }
    /* Borrows the caller's arena (never reset nor destroyed here but by release()). */
    explicit arena_resource(mp_arena *borrowed) noexcept : owned_(nullptr), a_(borrowed)
    {
    }
    arena_resource(const arena_resource &) = delete;
    arena_resource &operator=(const arena_resource &) = delete;

    /* Frees every allocation at once (mp_arena_reset(): the first chunk is kept). */
    void release() noexcept
    {
        mp_arena_reset(a_);
    }
    mp_arena *get() const noexcept
    {
        return a_;
    }

  protected:
    void *do_allocate(std::size_t bytes, std::size_t align) override
    {
        void *p = mp_arena_alloc_aligned(a_, bytes, align);
        if (p == nullptr)
            throw std::bad_alloc();
        return p;
    }
    void do_deallocate(void *, std::size_t, std::size_t) override
    {
    }
    bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override
    {
        return this == &other;
    }

  private:
    arena owned_;
    mp_arena *a_;
};

/*
 * Options of pool resources; the defaults suit node-based containers.
 *   max_block_size: the largest request served from a pool, in bytes (at most 64 KiB); larger
 *                   ones, and alignments above 16, go to `upstream`.
 *   flags:          for every pool made (MP_CHECKED, MP_SECURE, MP_ZERO; a
 *                   synchronized_pool_resource adds MP_THREAD_SAFE).
 *   source, thread_cache: for every pool made, as in mp_pool_opts.
 *   upstream:       where large requests go (nullptr: std::pmr::new_delete_resource()); it must
 *                   outlive the resource, and be thread-safe under a synchronized_pool_resource.
 */
struct pool_options {
    std::size_t max_block_size = 1024;
    unsigned flags = 0;
    const mp_source *source = nullptr;
    std::size_t thread_cache = 0;
    std::pmr::memory_resource *upstream = nullptr;
};

/*
 * A std::pmr::memory_resource that serves each request up to max_block_size bytes from a
 * fixed-size pool, the role of std::pmr::unsynchronized_pool_resource (ThreadSafe = false:
 * mempool::pool_resource) or std::pmr::synchronized_pool_resource (ThreadSafe = true:
 * mempool::synchronized_pool_resource, over MP_THREAD_SAFE pools with per-thread caches).
 *
 * Routing, the same rule for allocate and deallocate (std::pmr passes both the size and the
 * alignment back): a request of `bytes` <= max_block_size aligned to `align` <= 16 goes to the
 * pool of blocks of `bytes` (0 counts as 1) rounded up to 8 (to 16 when align is 16), made on
 * first use; larger requests and alignments go to upstream. So the pools serve sizes 8, 16, 24,
 * ..., max_block_size (and max_block_size + 8, for requests aligned to 16, when max_block_size is
 * an odd multiple of 8), each block aligned to 16 when its size is a multiple of 16, else to 8.
 *
 * allocate: O(1): an index, a load, the pool's inline alloc (the first request of a size creates
 * its pool). Throws std::bad_alloc when a pool or upstream cannot give memory.
 * deallocate: O(1), the pool's inline free; never throws.
 * Destruction destroys the pools it made, freeing every block in them at once (a checked pool
 * reports those still live as leaks); blocks from upstream are NOT freed by it (unlike std's
 * release()): containers give every block back before they go. Equal only to itself.
 * Default-constructed it owns its pools; it may also be given pools the caller owns
 * (mp_pool *, see the constructor), which serve their size instead and are never destroyed here.
 * Thread-safety: pool_resource: one thread at a time. synchronized_pool_resource: any thread at
 * any time (pools are created under a lock; caller-given pools must then be MP_THREAD_SAFE).
 */
template <bool ThreadSafe> class basic_pool_resource : public std::pmr::memory_resource
{
  public:
    /* No pool is made until it is first asked for. Throws std::invalid_argument when
     * max_block_size is 0 or above 64 KiB, std::bad_alloc when the table (one pointer per 8 bytes
     * of max_block_size) cannot be allocated. */
    basic_pool_resource() : basic_pool_resource(pool_options{})
    {
    }
    explicit basic_pool_resource(const pool_options &opts)
        : opts_(checked_opts(opts)), nslots_(opts_.max_block_size / 8 + 2),
          slots_(new std::atomic<mp_pool *>[nslots_]),
          upstream_(opts.upstream != nullptr ? opts.upstream : std::pmr::new_delete_resource())
    {
        for (std::size_t i = 0; i < nslots_; i++)
            slots_[i].store(nullptr, std::memory_order_relaxed);
        opts_.flags |= ThreadSafe ? unsigned(MP_THREAD_SAFE) : 0u;
    }
    /*
     * Serves sizes from the caller's pools, which it borrows (never destroys; they must outlive
     * it): a pool of block size B (a multiple of 8, at most max_block_size, aligned to 16 when B is
     * a multiple of 16) serves the requests routed to size B; other sizes get pools of their own.
     * Throws std::invalid_argument for a pool that fits no size this way, or when two pools serve
     * the same size.
     */
    basic_pool_resource(std::initializer_list<mp_pool *> borrowed, const pool_options &opts = {})
        : basic_pool_resource(opts)
    {
        for (mp_pool *p : borrowed) {
            std::size_t b = mp_pool_block_size(p);
            if (p == nullptr || b % 8 != 0 || b > opts_.max_block_size ||
                mp_pool_align(p) < (b % 16 == 0 ? 16u : 8u) || slots_[b / 8].load() != nullptr)
                throw std::invalid_argument("mempool::pool_resource: pool fits no size class");
            slots_[b / 8].store(p, std::memory_order_release);
        }
    }
    basic_pool_resource(const basic_pool_resource &) = delete;
    basic_pool_resource &operator=(const basic_pool_resource &) = delete;
    ~basic_pool_resource() override
    {
        for (mp_pool *p : owned_)
            mp_pool_destroy(p);
    }

    /* The pool serving requests of `bytes` aligned to `align`, or nullptr when none has been made
     * yet or such requests go upstream. O(1). For statistics and checks. */
    mp_pool *pool_for(std::size_t bytes,
                      std::size_t align = alignof(std::max_align_t)) const noexcept
    {
        if (goes_upstream(bytes, align))
            return nullptr;
        return slots_[slot(bytes, align)].load(std::memory_order_acquire);
    }
    /* The resource large requests go to. */
    std::pmr::memory_resource *upstream_resource() const noexcept
    {
        return upstream_;
    }

  protected:
    /* Intended cost: two compares, the index, a load and the pool's inline alloc. */
    void *do_allocate(std::size_t bytes, std::size_t align) override
    {
        if (MP_UNLIKELY(goes_upstream(bytes, align)))
            return upstream_->allocate(bytes, align);
        std::size_t i = slot(bytes, align);
        mp_pool *p = slots_[i].load(std::memory_order_acquire);
        if (p == nullptr)
            p = make_pool(i);
        void *b = mp_pool_alloc(p);
        if (b == nullptr)
            throw std::bad_alloc();
        return b;
    }
    void do_deallocate(void *b, std::size_t bytes, std::size_t align) override
    {
        if (MP_UNLIKELY(goes_upstream(bytes, align)))
            upstream_->deallocate(b, bytes, align);
        else
            mp_pool_free(slots_[slot(bytes, align)].load(std::memory_order_acquire), b);
    }
    bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override
    {
        return this == &other;
    }

  private:
    bool goes_upstream(std::size_t bytes, std::size_t align) const noexcept
    {
        return bytes > opts_.max_block_size || align > 16;
    }
    /* The table index of a request that does not go upstream: its size (0 counts as 1) rounded up
     * to 8, or to 16 when aligned to 16, over 8. */
    static std::size_t slot(std::size_t bytes, std::size_t align) noexcept
    {
        std::size_t i = (bytes + 7) / 8;
        i += i == 0;
        return align > 8 ? (i + 1) & ~std::size_t(1) : i;
    }
    static pool_options checked_opts(const pool_options &o)
    {
        if (o.max_block_size == 0 || o.max_block_size > 65536)
            throw std::invalid_argument("mempool::pool_resource: max_block_size not in 1..65536");
        pool_options r = o;
        r.max_block_size &= ~std::size_t(7);
        if (r.max_block_size == 0)
            r.max_block_size = 8;
        return r;
    }
    /* Creates slot i's pool on its first use; under a lock in the thread-safe variant, where two
     * threads may race to make it. */
    MP_NOINLINE mp_pool *make_pool(std::size_t i)
    {
        std::unique_lock<std::mutex> lock(lock_, std::defer_lock);
        if constexpr (ThreadSafe)
            lock.lock();
        if (mp_pool *p = slots_[i].load(std::memory_order_acquire))
            return p;
        mp_pool_opts po{};
        po.block_size = i * 8;
        po.flags = opts_.flags;
        po.source = opts_.source;
        po.thread_cache = opts_.thread_cache;
        po.name = "pool_resource";
        owned_.reserve(owned_.size() + 1); /* may throw: before the pool exists */
        mp_pool *p = detail::check_created(mp_pool_create(&po), "mempool::pool_resource: flags");
        owned_.push_back(p);
        slots_[i].store(p, std::memory_order_release);
        return p;
    }

    pool_options opts_;
    std::size_t nslots_;
    std::unique_ptr<std::atomic<mp_pool *>[]> slots_;
    std::pmr::memory_resource *upstream_;
    std::vector<mp_pool *> owned_;
    std::mutex lock_;
};

/* One thread at a time, as std::pmr::unsynchronized_pool_resource. */
using pool_resource = basic_pool_resource<false>;
/* Any thread, over MP_THREAD_SAFE pools, as std::pmr::synchronized_pool_resource. */
using synchronized_pool_resource = basic_pool_resource<true>;

/* ================================================================================================
 * STL allocators: allocator<T> (mp_malloc), heap_allocator<T> (a given mp_heap), pool_allocator<T>
 * ============================================================================================== */

/*
 * A stateless STL allocator over mp_malloc's process-wide heap (thread-safe, so containers may be
 * used from any thread and freed by another), usable with every standard container; all instances
 * are equal and interchangeable. allocate(n): n * sizeof(T) bytes aligned to alignof(T)
 * (over-aligned types through mp_aligned_alloc()), O(1) but for large blocks; throws
 * std::bad_array_new_length when n * sizeof(T) overflows, std::bad_alloc when the heap returns
 * NULL. deallocate(p, n): sized (mp_heap_free_sized() on mp_default_heap()), O(1), never throws.
 */
template <class T> class allocator
{
  public:
    using value_type = T;
    using is_always_equal = std::true_type;
    using propagate_on_container_move_assignment = std::true_type;

    allocator() noexcept = default;
    template <class U> allocator(const allocator<U> &) noexcept
    {
    }

    [[nodiscard]] T *allocate(std::size_t n)
    {
        std::size_t bytes = detail::array_bytes(n, sizeof(T));
        void *p = alignof(T) <= detail::heap_natural_align(bytes)
                      ? mp_malloc(bytes)
                      : mp_aligned_alloc(alignof(T), bytes);
        if (p == nullptr)
            throw std::bad_alloc();
        return static_cast<T *>(p);
    }
    void deallocate(T *p, std::size_t n) noexcept
    {
        /* mp_malloc()'s blocks are the default heap's, which exists once one was handed out. */
        detail::heap_free(mp_default_heap(), p, n * sizeof(T), alignof(T));
    }

    template <class U> bool operator==(const allocator<U> &) const noexcept
    {
        return true;
    }
    template <class U> bool operator!=(const allocator<U> &) const noexcept
    {
        return false;
    }
};

/*
 * An STL allocator over a given mp_heap, which must outlive every container using it (default:
 * mp_default_heap(), mp_malloc's). Two are equal when they use the same heap; copies of a container
 * take its allocator, and moves and swaps carry it along (propagate_on_container_* are true), as
 * mimalloc's mi_heap_stl_allocator. allocate/deallocate as allocator<T>'s, on this heap.
 * Thread-safety: as the heap's.
 */
template <class T> class heap_allocator
{
  public:
    using value_type = T;
    using propagate_on_container_copy_assignment = std::true_type;
    using propagate_on_container_move_assignment = std::true_type;
    using propagate_on_container_swap = std::true_type;

    /* Over mp_default_heap(); throws std::bad_alloc if it cannot be created. */
    heap_allocator() : h_(mp_default_heap())
    {
        if (h_ == nullptr)
            throw std::bad_alloc();
    }
    explicit heap_allocator(mp_heap *h) noexcept : h_(h)
    {
    }
    explicit heap_allocator(const heap &h) noexcept : h_(h.get())
    {
    }
    template <class U> heap_allocator(const heap_allocator<U> &o) noexcept : h_(o.get())
    {
    }

    [[nodiscard]] T *allocate(std::size_t n)
    {
        void *p = detail::heap_try_alloc(h_, detail::array_bytes(n, sizeof(T)), alignof(T));
        if (p == nullptr)
            throw std::bad_alloc();
        return static_cast<T *>(p);
    }
    void deallocate(T *p, std::size_t n) noexcept
    {
        detail::heap_free(h_, p, n * sizeof(T), alignof(T));
    }
    /* The heap allocated from. */
    mp_heap *get() const noexcept
    {
        return h_;
    }

    template <class U> bool operator==(const heap_allocator<U> &o) const noexcept
    {
        return h_ == o.get();
    }
    template <class U> bool operator!=(const heap_allocator<U> &o) const noexcept
    {
        return h_ != o.get();
    }

  private:
    mp_heap *h_;
};

/*
 * A typed STL allocator over a pool resource (pool_resource, or synchronized_pool_resource as
 * Resource), which must outlive every container using it: single objects (allocate(1), as
 * node-based containers ask for their nodes) come from the pool serving sizeof(T) with the inline
 * mp_pool_alloc() and mp_pool_free(), with no virtual call and no routing, as Boost's
 * fast_pool_allocator but with pools per resource instead of process-wide singletons; other
 * requests (n != 1, or sizes and alignments the resource sends upstream) go through the resource.
 * The allocator keeps a pointer to its pool, so one container's node allocator uses one pool.
 * Blocks are interchangeable with the resource's: allocate(n) gives what
 * resource->allocate(n * sizeof(T), alignof(T)) gives, from the same pool, so either may free them.
 * allocate(n): O(1); the first single object of a size makes its pool; throws
 * std::bad_array_new_length when n * sizeof(T) overflows, std::bad_alloc when no memory is had.
 * deallocate(p, n): O(1), never throws. Conversions between value types (rebinding) and copies
 * never throw: a copy whose pool does not exist yet finds it on its first allocation.
 * Two are equal when they use the same resource; copies of a container take its allocator, and
 * moves and swaps carry it along (propagate_on_container_* are true). No default constructor.
 * Thread-safety: as the resource's; one allocator object (a container's) one thread at a time.
 */
template <class T, class Resource = pool_resource> class pool_allocator
{
  public:
    using value_type = T;
    using propagate_on_container_copy_assignment = std::true_type;
    using propagate_on_container_move_assignment = std::true_type;
    using propagate_on_container_swap = std::true_type;

    /* Over *r (not nullptr), as std::pmr::polymorphic_allocator over a resource. Never throws. */
    pool_allocator(Resource *r) noexcept : r_(r), p_(r->pool_for(sizeof(T), alignof(T)))
    {
    }
    template <class U>
    pool_allocator(const pool_allocator<U, Resource> &o) noexcept : pool_allocator(o.resource())
    {
    }

    /* Intended cost for n == 1: two tests and the pool's inline alloc; no call. */
    [[nodiscard]] T *allocate(std::size_t n)
    {
        if (MP_LIKELY(n == 1 && p_ != nullptr)) {
            void *b = mp_pool_alloc(p_);
            if (MP_LIKELY(b != nullptr))
                return static_cast<T *>(b);
        }
        return allocate_slow(n);
    }
    /* Intended cost for n == 1: two tests and the pool's inline free. */
    void deallocate(T *p, std::size_t n) noexcept
    {
        if (MP_LIKELY(n == 1 && p_ != nullptr))
            mp_pool_free(p_, p);
        else
            r_->deallocate(p, n * sizeof(T), alignof(T));
    }
    /* The resource allocated from. */
    Resource *resource() const noexcept
    {
        return r_;
    }

    template <class U> bool operator==(const pool_allocator<U, Resource> &o) const noexcept
    {
        return r_ == o.resource();
    }
    template <class U> bool operator!=(const pool_allocator<U, Resource> &o) const noexcept
    {
        return r_ != o.resource();
    }

  private:
    /* The resource's own path, which makes the pool, goes upstream, or throws; then the pool is
     * kept for the next single object. */
    MP_NOINLINE T *allocate_slow(std::size_t n)
    {
        void *b = r_->allocate(detail::array_bytes(n, sizeof(T)), alignof(T));
        if (n == 1)
            p_ = r_->pool_for(sizeof(T), alignof(T));
        return static_cast<T *>(b);
    }

    Resource *r_;
    mp_pool *p_;
};

/* ================================================================================================
 * object_pool<T>
 * ============================================================================================== */

/*
 * A typed pool of T, as Boost's object_pool: create(args...) constructs a T in a pool block,
 * destroy(p) destructs it and frees its block; deleter and make_unique() hand objects to
 * std::unique_ptr. The pool knows its live objects: each block holds two links before the T (an
 * intrusive doubly-linked list, so create and destroy stay O(1)), and destroying the pool destroys
 * every object still live, most recently created first, before its memory goes.
 * A checked pool (MP_CHECKED in flags) does not destroy them: it reports them instead, as a leak
 * through mp_set_error_handler()'s handler when its mp_pool is destroyed (the default handler
 * aborts); if the handler returns, their memory is freed without running their destructors.
 * Default-constructed it owns a plain pool of its own; it may own one made with given flags, or
 * borrow a pool the caller owns (whose blocks must hold block_size() bytes aligned to
 * block_align()); a borrowed pool is never destroyed here, but its live objects are destroyed and
 * freed into it. Move-only; a moved-from object_pool is empty and owns nothing.
 * Thread-safety: none (the live list is unsynchronised), whatever the pool beneath.
 */
template <class T> class object_pool
{
    struct node {
        node *prev;
        node *next;
    };
    static constexpr std::size_t align_ = alignof(T) > alignof(node) ? alignof(T) : alignof(node);
    static constexpr std::size_t offset_ = (sizeof(node) + alignof(T) - 1) & ~(alignof(T) - 1);

  public:
    /* Ends the life of one object: p->destroy(obj). */
    struct deleter {
        object_pool *pool = nullptr;
        void operator()(T *p) const noexcept
        {
            pool->destroy(p);
        }
    };
    using unique_ptr = std::unique_ptr<T, deleter>;

    /* The bytes and alignment each block needs: the T and two links before it. */
    static constexpr std::size_t block_size() noexcept
    {
        return offset_ + sizeof(T);
    }
    static constexpr std::size_t block_align() noexcept
    {
        return align_;
    }

    /* Owns a new pool (flags: MP_CHECKED, MP_SECURE, MP_ZERO; MP_THREAD_SAFE is refused, since
     * the live list is not thread-safe). O(1). Throws std::invalid_argument (bad flags) or
     * std::bad_alloc (no memory). */
    object_pool() : object_pool(0u)
    {
    }
    explicit object_pool(unsigned flags)
        : owned_(make_owned(flags)), p_(owned_.get()), checked_((flags & MP_CHECKED) != 0)
    {
    }
    /* Borrows the caller's pool (it must outlive this object_pool). Throws std::invalid_argument
     * when its blocks are too small or too loosely aligned for block_size() and block_align(). */
    explicit object_pool(mp_pool *borrowed) : owned_(nullptr), p_(borrowed), checked_(false)
    {
        if (mp_pool_block_size(p_) < block_size() || mp_pool_align(p_) < block_align())
            throw std::invalid_argument("mempool::object_pool: pool blocks do not fit T");
    }
    object_pool(object_pool &&o) noexcept
        : owned_(std::move(o.owned_)), p_(std::exchange(o.p_, nullptr)), checked_(o.checked_),
          live_(std::exchange(o.live_, nullptr)), count_(std::exchange(o.count_, 0))
    {
    }
    object_pool &operator=(object_pool &&o) noexcept
    {
        if (this != &o) {
            clear_or_report();
            owned_ = std::move(o.owned_);
            p_ = std::exchange(o.p_, nullptr);
            checked_ = o.checked_;
            live_ = std::exchange(o.live_, nullptr);
            count_ = std::exchange(o.count_, 0);
        }
        return *this;
    }
    object_pool(const object_pool &) = delete;
    object_pool &operator=(const object_pool &) = delete;
    /* Destroys the live objects (or, checked, leaves them to the leak report), then the pool if
     * owned. O(live objects + the pool's chunk runs). */
    ~object_pool()
    {
        clear_or_report();
    }

    /* Constructs a T(args...) in a new block. O(1) plus T's constructor. Throws std::bad_alloc when
     * the pool has no block (capacity, memory), and whatever T's constructor throws, in which case
     * the block is freed and nothing stays live. */
    template <class... Args> T *create(Args &&...args)
    {
        void *b = mp_pool_alloc(p_);
        if (b == nullptr)
            throw std::bad_alloc();
        T *obj;
        try {
            obj = ::new (static_cast<char *>(b) + offset_) T(std::forward<Args>(args)...);
        } catch (...) {
            mp_pool_free(p_, b);
            throw;
        }
        link(static_cast<node *>(b));
        return obj;
    }
    /* Destructs *obj and frees its block; nullptr does nothing. O(1) plus T's destructor.
     * Undefined: an object this pool did not create, or destroyed twice (a checked pool reports
     * the second free). */
    void destroy(T *obj) noexcept
    {
        if (obj == nullptr)
            return;
        obj->~T();
        node *n = node_of(obj);
        unlink(n);
        mp_pool_free(p_, n);
    }
    /* create() into a std::unique_ptr whose deleter destroys it here. Throws as create(). */
    template <class... Args> [[nodiscard]] unique_ptr make_unique(Args &&...args)
    {
        return unique_ptr(create(std::forward<Args>(args)...), deleter{this});
    }
    /* Destroys every live object (most recent first) and frees its block. O(live objects). */
    void clear() noexcept
    {
        while (live_ != nullptr)
            destroy(object_of(live_));
    }

    /* Objects created and not destroyed. O(1). */
    std::size_t size() const noexcept
    {
        return count_;
    }
    /* The pool beneath (owned or borrowed). */
    mp_pool *get() const noexcept
    {
        return p_;
    }

  private:
    static pool make_owned(unsigned flags)
    {
        if (flags & MP_THREAD_SAFE)
            throw std::invalid_argument("mempool::object_pool: MP_THREAD_SAFE is not supported");
        mp_pool_opts o{};
        o.block_size = block_size();
        o.align = block_align();
        o.flags = flags;
        o.name = "object_pool";
        return pool(o);
    }
    static node *node_of(T *obj) noexcept
    {
        return reinterpret_cast<node *>(reinterpret_cast<char *>(obj) - offset_);
    }
    static T *object_of(node *n) noexcept
    {
        return std::launder(reinterpret_cast<T *>(reinterpret_cast<char *>(n) + offset_));
    }
    void link(node *n) noexcept
    {
        n->prev = nullptr;
        n->next = live_;
        if (live_ != nullptr)
            live_->prev = n;
        live_ = n;
        count_++;
    }
    void unlink(node *n) noexcept
    {
        (n->prev != nullptr ? n->prev->next : live_) = n->next;
        if (n->next != nullptr)
            n->next->prev = n->prev;
        count_--;
    }
    /* An owned checked pool reports what is live when owned_ destroys it; others destroy it. */
    void clear_or_report() noexcept
    {
        if (!(checked_ && owned_))
            clear();
        owned_ = pool(nullptr);
        live_ = nullptr;
        count_ = 0;
    }

    pool owned_;
    mp_pool *p_;
    bool checked_;
    node *live_ = nullptr;
    std::size_t count_ = 0;
};

} // namespace mempool

#endif /* MEMPOOL_HPP */

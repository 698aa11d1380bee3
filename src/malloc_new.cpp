/*
 * malloc_new.cpp: the C++ allocation functions of the drop-in malloc (malloc.c), every form of
 * operator new and delete over the process-wide heap, so that a C++ program's allocations come
 * there too and a block may be freed through any family.
 *
 * The throwing forms follow [new.delete.single]: on failure they call the new-handler and try
 * again, and throw std::bad_alloc when there is none; the nothrow forms return nullptr where the
 * throwing form would throw. An alignment is always a power of two (std::align_val_t). Sized
 * delete passes the size on (mp_heap_free_sized()), but the aligned forms' sized delete, whose
 * blocks may belong to a class above their size, where the size would be the wrong class. The
 * aligned forms go through aligned_alloc() and free() (malloc.c), which serve any alignment.
 *
 * Built with MP_MALLOC_NEW_NEXT (libmempool_malloc.so), the file uses nothing of the C++ runtime,
 * so a preloaded C program does not load libstdc++ (about 1.3 MB of resident pages): a failed
 * request is handed to the next definition of operator new, the C++ runtime's, which calls the
 * new-handler, retries through malloc() (this library's) and throws std::bad_alloc. A C++ program
 * always has that runtime loaded; a program without one gets an abort with a message from the
 * throwing forms, nullptr from the nothrow ones.
 */
#include "mempool.h"

#include <cstddef>
#include <cstdlib>
#include <new>

#if MP_MALLOC_NEW_NEXT
#include <climits>
#include <cstdint>
#include <dlfcn.h>
#include <unistd.h>
#endif

namespace
{

// The first try of every operator new: malloc's alignment (align 0) or aligned_alloc's.
void *try_alloc(std::size_t size, std::size_t align) noexcept
{
    return align == 0 ? mp_malloc(size) : std::aligned_alloc(align, size);
}

#if MP_MALLOC_NEW_NEXT

// The Itanium C++ ABI's names of operator new, whose size_t is unsigned int or unsigned long.
#if SIZE_MAX == UINT_MAX
#define NEW_NAME(args) "_Znwj" args
#else
#define NEW_NAME(args) "_Znwm" args
#endif
#define NOTHROW_ARG "RKSt9nothrow_t"
#define ALIGN_ARG "St11align_val_t"

// The C++ runtime's definition of the operator named `name` (the next after this library); if
// there is none, nullptr for a nothrow form, and an abort for a throwing one.
void *next_new(const char *name, bool throwing)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (f == nullptr && throwing) {
        static const char msg[] = "mempool: operator new: out of memory, and no C++ runtime to "
                                  "throw std::bad_alloc\n";
        (void)!write(2, msg, sizeof msg - 1);
        std::abort();
    }
    return f;
}

// Blocks of `size` bytes aligned to `align` (0: malloc's alignment); never nullptr.
void *alloc_or_throw(std::size_t size, std::size_t align)
{
    void *p = try_alloc(size, align);
    if (p != nullptr)
        return p;
    if (align == 0)
        return reinterpret_cast<void *(*)(std::size_t)>(next_new(NEW_NAME(""), true))(size);
    return reinterpret_cast<void *(*)(std::size_t, std::align_val_t)>(
        next_new(NEW_NAME(ALIGN_ARG), true))(size, std::align_val_t(align));
}

void *alloc_or_null(std::size_t size, std::size_t align) noexcept
{
    void *p = try_alloc(size, align);
    if (p != nullptr)
        return p;
    void *f = next_new(align == 0 ? NEW_NAME(NOTHROW_ARG) : NEW_NAME(ALIGN_ARG NOTHROW_ARG), false);
    if (f == nullptr)
        return nullptr;
    const std::nothrow_t tag{}; // not std::nothrow, an object of the C++ runtime
    if (align == 0)
        return reinterpret_cast<void *(*)(std::size_t, const std::nothrow_t &) noexcept>(f)(size,
                                                                                            tag);
    return reinterpret_cast<void *(*)(std::size_t, std::align_val_t,
                                      const std::nothrow_t &) noexcept>(f)(
        size, std::align_val_t(align), tag);
}

#else

// Blocks of `size` bytes aligned to `align` (0: malloc's alignment); never nullptr.
void *alloc_or_throw(std::size_t size, std::size_t align)
{
    for (;;) {
        void *p = try_alloc(size, align);
        if (p != nullptr)
            return p;
        std::new_handler handler = std::get_new_handler();
        if (handler == nullptr)
            throw std::bad_alloc();
        handler();
    }
}

void *alloc_or_null(std::size_t size, std::size_t align) noexcept
{
    try {
        return alloc_or_throw(size, align);
    } catch (...) {
        return nullptr;
    }
}

#endif

} // namespace

void *operator new(std::size_t size)
{
    return alloc_or_throw(size, 0);
}

void *operator new[](std::size_t size)
{
    return alloc_or_throw(size, 0);
}

void *operator new(std::size_t size, const std::nothrow_t &) noexcept
{
    return alloc_or_null(size, 0);
}

void *operator new[](std::size_t size, const std::nothrow_t &) noexcept
{
    return alloc_or_null(size, 0);
}

void *operator new(std::size_t size, std::align_val_t align)
{
    return alloc_or_throw(size, static_cast<std::size_t>(align));
}

void *operator new[](std::size_t size, std::align_val_t align)
{
    return alloc_or_throw(size, static_cast<std::size_t>(align));
}

void *operator new(std::size_t size, std::align_val_t align, const std::nothrow_t &) noexcept
{
    return alloc_or_null(size, static_cast<std::size_t>(align));
}

void *operator new[](std::size_t size, std::align_val_t align, const std::nothrow_t &) noexcept
{
    return alloc_or_null(size, static_cast<std::size_t>(align));
}

void operator delete(void *p) noexcept
{
    mp_free(p);
}

void operator delete[](void *p) noexcept
{
    mp_free(p);
}

void operator delete(void *p, const std::nothrow_t &) noexcept
{
    mp_free(p);
}

void operator delete[](void *p, const std::nothrow_t &) noexcept
{
    mp_free(p);
}

// Sized delete of a block from unaligned new: the size names the class, no lookup needed.
void operator delete(void *p, std::size_t size) noexcept
{
    mp_heap_free_sized(mp_default_heap(), p, size);
}

void operator delete[](void *p, std::size_t size) noexcept
{
    mp_heap_free_sized(mp_default_heap(), p, size);
}

void operator delete(void *p, std::align_val_t) noexcept
{
    std::free(p);
}

void operator delete[](void *p, std::align_val_t) noexcept
{
    std::free(p);
}

void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept
{
    std::free(p);
}

void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept
{
    std::free(p);
}

void operator delete(void *p, std::size_t, std::align_val_t) noexcept
{
    std::free(p);
}

void operator delete[](void *p, std::size_t, std::align_val_t) noexcept
{
    std::free(p);
}

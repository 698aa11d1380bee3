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
 */
#include "mempool.h"

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace
{

// Blocks of `size` bytes aligned to `align` (0: malloc's alignment); never nullptr.
void *alloc_or_throw(std::size_t size, std::size_t align)
{
    for (;;) {
        void *p = align == 0 ? mp_malloc(size) : std::aligned_alloc(align, size);
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

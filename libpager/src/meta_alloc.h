// Metadata memory: what grows with the address space a program maps or the
// swap it fills — the page table (8 B a touched page), the slot maps (the
// slot bitmap and per-slot checksums), the clock's queues (8 B a resident
// page).
//
// It is not the emergency pool (reserve.h). The pool is sized for the work of
// freeing memory (write-back in flight, the store's buffers), which is bounded;
// metadata is not, and would fill the pool with memory that is never given
// back while its pages live (docs/reserve.md, "What the pool holds"). Like the
// kernel's page tables it comes from ordinary memory, when the program grows.
//
// It comes from a jemalloc arena of its own, explicitly, with no thread
// cache: never a paged arena, never a reserve arena, whatever the calling
// thread is bound to and whoever the process's malloc is, and never an arena
// the program's threads allocate from. The last matters: a program thread
// interrupted by a signal inside malloc holds its arena's lock, and if the
// handler then faults on paged memory, the pager thread must not need that
// lock to serve the fault.
//
// The bytes in use are counted (MetaBytes), for the stats.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

namespace pager {

// nullptr when the system is out of memory.
void* MetaAlloc(size_t bytes) noexcept;
void MetaFree(void* p, size_t bytes) noexcept;
// Metadata bytes in use by every pager in the process.
uint64_t MetaBytes() noexcept;

// For containers: a failed allocation throws std::bad_alloc, as the standard
// requires; the pager's containers are sized where that is a true OOM.
template <class T>
struct MetaAllocator {
  using value_type = T;
  MetaAllocator() = default;
  template <class U>
  MetaAllocator(const MetaAllocator<U>&) {}
  T* allocate(size_t n) {
    void* p = MetaAlloc(n * sizeof(T));
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) { MetaFree(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const MetaAllocator<U>&) const { return true; }
};

}  // namespace pager

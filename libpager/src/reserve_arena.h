// The reserve's allocator: a dedicated jemalloc arena whose extents come from
// a locked region, so that what the pager's threads allocate (request state,
// queues, libnfs's buffers) is memory set aside in advance, never memory the
// program is short of.
//
// What is covered depends on who the process's malloc is:
//  - jemalloc (libpager links it, so a program linked with libpager gets it
//    unless something earlier in symbol resolution provides malloc; the
//    LD_PRELOAD library does too): every thread that called
//    EnterPagerThread() allocates from the arena, whatever the code doing it
//    (the pager's containers, the stores' queues, libnfs's internal mallocs).
//  - anything else (a sanitizer's interceptors, another allocator preloaded,
//    a statically linked malloc): only what the pager allocates explicitly
//    through PoolAllocator / PoolNew (PagerCore's queues and op records) comes
//    from the arena; libnfs and the stores use the process's malloc.
//    captures_malloc() says which, and the pager logs it at start.
// jemalloc's own metadata for the arena (extent records, rtree nodes) is
// allocated by jemalloc from its base, outside the region, in either case.
//
// The arena is process-wide and never destroyed: a pointer allocated on a
// pager thread may be freed after its Pager is gone (libnfs's buffers freed
// by the store's teardown, a container freed by a destructor on another
// thread), and jemalloc cannot destroy an arena with live allocations. The
// first Pager in the process sizes it; later ones share it.
//
// When the region is full, extents come from mmap instead (what the default
// arena would do): counted in overflows(), never a failed malloc.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "reserve.h"

namespace pager {

class ReserveArena {
 public:
  // The process's arena, created with a region of `bytes` (rounded up to
  // pages) on the first call; later calls return it unchanged. nullptr with
  // a logged reason if jemalloc refused to create it.
  static ReserveArena* Get(uint64_t bytes);
  // The arena if one was created, else nullptr.
  static ReserveArena* Current();

  // Binds the calling thread to the arena, with its thread cache off (a
  // tcache is per thread and shared across arenas: cached regions from other
  // arenas would be handed out). Call first thing on every thread the pager
  // owns; a no-op without an arena.
  static void EnterPagerThread();

  // mallocx flags for an explicit allocation from the arena (0 without one).
  static int Flags();

  unsigned index() const { return index_; }
  uint64_t total_pages() const { return region_.total_pages(); }
  uint64_t used_pages() const { return region_.used_pages(); }
  uint64_t free_pages() const { return total_pages() - used_pages(); }
  bool Contains(const void* p) const { return region_.Contains(p); }
  // Extent allocations the region could not hold (served by mmap), and bytes.
  uint64_t overflows() const { return overflows_.load(std::memory_order_relaxed); }
  uint64_t overflow_bytes() const { return overflow_bytes_.load(std::memory_order_relaxed); }
  // True when the process's malloc is the jemalloc this arena lives in.
  bool captures_malloc() const { return captures_malloc_; }

 private:
  ReserveArena(Mapping region, bool locked);
  friend struct ArenaHooks;

  PageRuns region_;
  Mapping mapping_;
  unsigned index_ = 0;
  bool captures_malloc_ = false;
  bool refuse_grow_ = false;  // see ArenaHooks::Alloc
  std::atomic<uint64_t> overflows_{0};
  std::atomic<uint64_t> overflow_bytes_{0};
};

// On a pager thread, for the scope's life, allocations come from the
// ordinary heap: for data that is not the pager's working memory (the
// in-process store's slots, which are the swap device, not debt).
class OrdinaryHeapScope {
 public:
  OrdinaryHeapScope();
  ~OrdinaryHeapScope();
  OrdinaryHeapScope(const OrdinaryHeapScope&) = delete;
  OrdinaryHeapScope& operator=(const OrdinaryHeapScope&) = delete;

 private:
  unsigned old_ = 0;
  bool rebound_ = false;
};

// Allocation from the arena (or jemalloc's default one without it): for the
// pager's own data, so that it is pool memory even when malloc is not
// jemalloc. Throws std::bad_alloc only if the system is out of memory.
void* PoolAlloc(size_t bytes);
void PoolFree(void* p);

template <class T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() = default;
  template <class U>
  PoolAllocator(const PoolAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(PoolAlloc(n * sizeof(T))); }
  void deallocate(T* p, size_t) { PoolFree(p); }
  template <class U>
  bool operator==(const PoolAllocator<U>&) const { return true; }
};

}  // namespace pager

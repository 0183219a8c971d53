// The reserve's allocator: a jemalloc arena whose extents come from a locked
// region, so that what a pager's threads allocate (request state, the stores'
// queues, libnfs's buffers) is memory set aside in advance, never memory the
// program is short of.
//
// One arena per Pager, so that each pager's throttle reads its own debt: with
// one arena for the process, a second pager was throttled by the first one's
// allocations and could park its faults forever (issue 9, problem 8).
//
// What is covered depends on who the process's malloc is:
//  - jemalloc (libpager links it, so a program linked with libpager gets it
//    unless something earlier in symbol resolution provides malloc; the
//    LD_PRELOAD library does too): every thread bound with EnterThread()
//    allocates from the arena, whatever the code doing it (the pager's
//    containers, the stores' queues, libnfs's internal mallocs).
//  - anything else (a sanitizer's interceptors, another allocator preloaded):
//    only what the pager allocates explicitly (Alloc, PoolAllocator) comes
//    from the arena. captures_malloc() says which; the pager logs it.
// jemalloc's own metadata for the arena comes from its base, outside the
// region, in either case. What grows with the mapping (the page table, slot
// maps) is not here at all: see meta_alloc.h.
//
// Arenas are never destroyed: jemalloc cannot destroy an arena with live
// allocations, and a pointer allocated on a pager thread may be freed after
// its Pager is gone (libnfs's buffers freed by the store's teardown). An
// arena given back by its Reserve is reused by the next one of the same size,
// so the locked memory held is bounded by the pagers alive at once.
//
// When the region is full, extents come from mmap instead (what the default
// arena would do): counted in overflows(), never a failed malloc.
#pragma once

#include <jemalloc/jemalloc.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "reserve.h"

namespace pager {

class ReserveArena {
 public:
  // An arena over a locked region of `bytes` (rounded up to pages): a
  // released one of that size, or a new one. nullptr, with a logged reason,
  // if jemalloc refused to create one.
  static ReserveArena* Acquire(uint64_t bytes);
  // Gives the arena back for reuse. Allocations still live in it stay valid.
  static void Release(ReserveArena* a);

  // Binds the calling thread to arena `a`, with its thread cache off (a
  // tcache is per thread and shared across arenas: cached regions from other
  // arenas would be handed out). Called first on every thread the pager owns;
  // a no-op without an arena.
  static void EnterThread(const ReserveArena* a);

  // Explicit allocation from the arena; `a` may be null (no arena: the
  // default one). Alloc returns nullptr only when the system is out of memory.
  static void* Alloc(const ReserveArena* a, size_t bytes) noexcept;
  static void Free(void* p) noexcept;

  // True when `p` lies in the region of any reserve arena of the process
  // (tests: "did this allocation come from a pool?"). Lock-free.
  static bool InAnyRegion(const void* p);

  unsigned index() const { return index_; }
  int flags() const { return flags_; }
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

  // jemalloc calls the hooks with the address it was given, &hooks_.table:
  // the hooks find their arena from it.
  struct Hooks {
    extent_hooks_t table;  // first: a Hooks* and its table's address convert
    ReserveArena* arena;
  };
  Hooks hooks_;
  PageRuns region_;
  Mapping mapping_;
  unsigned index_ = 0;
  int flags_ = 0;  // mallocx flags: this arena, no tcache
  bool captures_malloc_ = false;
  bool refuse_grow_ = false;  // see ArenaHooks::Alloc
  std::atomic<uint64_t> overflows_{0};
  std::atomic<uint64_t> overflow_bytes_{0};
  ReserveArena* next_free_ = nullptr;  // in the released list, guarded by its mutex
  ReserveArena* next_all_ = nullptr;   // every arena ever made; set before publication
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

// For the pager's own containers: pool memory even when malloc is not
// jemalloc. A failed allocation throws std::bad_alloc (a true OOM: the
// region overflows to mmap before that).
template <class T>
struct PoolAllocator {
  using value_type = T;
  explicit PoolAllocator(const ReserveArena* a) : arena(a) {}
  template <class U>
  PoolAllocator(const PoolAllocator<U>& o) : arena(o.arena) {}
  T* allocate(size_t n) {
    void* p = ReserveArena::Alloc(arena, n * sizeof(T));
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { ReserveArena::Free(p); }
  template <class U>
  bool operator==(const PoolAllocator<U>& o) const { return arena == o.arena; }

  const ReserveArena* arena;
};

}  // namespace pager

#include "reserve_arena.h"

#include <dlfcn.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstring>
#include <mutex>

#include "log.h"
#include "pager/store.h"

namespace pager {
namespace {

// jemalloc 5.3's "experimental.arenas_create_ext" takes this (its internal
// arena_config_t): with metadata_use_hooks false, the arena's metadata comes
// from jemalloc's base, not from 2 MiB blocks of the region.
struct ArenaConfig {
  extent_hooks_t* extent_hooks;
  bool metadata_use_hooks;
};

// True when the global `malloc` is defined by the object that defines
// mallocx: the process allocator is this jemalloc.
bool MallocIsJemalloc() {
  void* global_malloc = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info a, b;
  if (global_malloc == nullptr || dladdr(global_malloc, &a) == 0 ||
      dladdr(reinterpret_cast<void*>(&mallocx), &b) == 0) {
    return false;
  }
  return a.dli_fbase == b.dli_fbase;
}

// Arenas given back by their Reserve, for the next one of the same size.
std::mutex g_free_mu;
ReserveArena* g_free = nullptr;  // guarded by g_free_mu
// Every arena made, newest first; entries are never removed.
std::atomic<ReserveArena*> g_all{nullptr};

}  // namespace

// The extent hooks, over ReserveArena::region_. They run inside jemalloc,
// under its locks, on whatever thread allocates: they must not allocate and
// must not log (the pager logs overflows from its own thread).
struct ArenaHooks {
  static ReserveArena* Of(extent_hooks_t* h) {
    return reinterpret_cast<ReserveArena::Hooks*>(h)->arena;
  }

  static void* Alloc(extent_hooks_t* h, void* new_addr, size_t size, size_t alignment, bool* zero,
                     bool* commit, unsigned) {
    ReserveArena* a = Of(h);
    // In-place growth of a large allocation: decline; jemalloc moves it.
    if (new_addr != nullptr) return nullptr;
    // With opt.retain, jemalloc first asks for a 2 MiB "grow" and keeps what
    // it does not use as retained address space, which would stay charged to
    // the pool. Declining once makes it ask again for exactly what it needs
    // (extent_alloc_wrapper after the failed grow); the second request on
    // the thread is always served.
    static thread_local size_t declined = 0;
    if (a->refuse_grow_ && declined == 0 && size > kPageSize * 4) {
      declined = size;
      return nullptr;
    }
    declined = 0;
    const uint64_t pages = size / kPageSize;
    const uint64_t align = alignment > kPageSize ? alignment / kPageSize : 1;
    void* p = a->region_.Alloc(pages, align);
    if (p != nullptr) {
      if (*zero) memset(p, 0, size);  // region pages are reused
    } else {
      // The region is full: ordinary memory, counted, never a failed malloc.
      size_t len = size + (alignment > kPageSize ? alignment : 0);
      void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m == MAP_FAILED) return nullptr;
      uintptr_t start = (reinterpret_cast<uintptr_t>(m) + alignment - 1) / alignment * alignment;
      if (start > reinterpret_cast<uintptr_t>(m)) munmap(m, start - reinterpret_cast<uintptr_t>(m));
      uintptr_t end = reinterpret_cast<uintptr_t>(m) + len;
      if (end > start + size) munmap(reinterpret_cast<void*>(start + size), end - start - size);
      p = reinterpret_cast<void*>(start);
      *zero = true;
      a->overflows_.fetch_add(1, std::memory_order_relaxed);
      a->overflow_bytes_.fetch_add(size, std::memory_order_relaxed);
    }
    *commit = true;
    return p;
  }

  static bool Dalloc(extent_hooks_t* h, void* addr, size_t size, bool, unsigned) {
    ReserveArena* a = Of(h);
    if (a->region_.Contains(addr)) {
      a->region_.Free(addr, size / kPageSize);
    } else {
      munmap(addr, size);
    }
    return false;
  }

  static void Destroy(extent_hooks_t* h, void* addr, size_t size, bool committed, unsigned ind) {
    Dalloc(h, addr, size, committed, ind);
  }

  // Region pages are always committed (locked): nothing to do.
  static bool Commit(extent_hooks_t*, void*, size_t, size_t, size_t, unsigned) { return false; }

  static bool Split(extent_hooks_t*, void*, size_t, size_t, size_t, bool, unsigned) { return false; }

  // Never merge region pages with an overflow mapping that happens to be
  // adjacent: Dalloc decides by the start address.
  static bool Merge(extent_hooks_t* h, void* a, size_t, void* b, size_t, bool, unsigned) {
    ReserveArena* r = Of(h);
    return r->region_.Contains(a) != r->region_.Contains(b);
  }
};

ReserveArena::ReserveArena(Mapping region, bool) : mapping_(std::move(region)) {
  // Decommit and purges are opted out of (nullptr): region pages stay
  // resident and locked; freed extents go back through Dalloc.
  hooks_.table = extent_hooks_t{
      ArenaHooks::Alloc, ArenaHooks::Dalloc, ArenaHooks::Destroy, ArenaHooks::Commit, nullptr,
      nullptr,           nullptr,            ArenaHooks::Split,   ArenaHooks::Merge,
  };
  hooks_.arena = this;
  region_.Reset(mapping_.data(), mapping_.size() / kPageSize);
}

ReserveArena* ReserveArena::Acquire(uint64_t bytes) {
  const uint64_t len = (bytes + kPageSize - 1) / kPageSize * kPageSize;
  {
    std::lock_guard<std::mutex> l(g_free_mu);
    for (ReserveArena** p = &g_free; *p != nullptr; p = &(*p)->next_free_) {
      if ((*p)->mapping_.size() == len) {
        ReserveArena* a = *p;
        *p = a->next_free_;
        a->next_free_ = nullptr;
        a->overflows_.store(0, std::memory_order_relaxed);
        a->overflow_bytes_.store(0, std::memory_order_relaxed);
        return a;
      }
    }
  }

  bool locked = false;
  Mapping region = MapLockedPool(len, "reserve arena", false, &locked);
  if (!region.valid()) {
    PAGER_LOG_WARN("reserve arena: mmap of %llu bytes failed (%s); the pager's threads allocate "
                   "from the general heap", static_cast<unsigned long long>(len), strerror(errno));
    return nullptr;
  }
  // Never destroyed (see reserve_arena.h): reused through the released list.
  auto* a = new ReserveArena(std::move(region), locked);

  unsigned ind = 0;
  size_t sz = sizeof ind;
  ArenaConfig cfg{&a->hooks_.table, false};
  int err = mallctl("experimental.arenas_create_ext", &ind, &sz, &cfg, sizeof cfg);
  // Declining grows is only safe when the arena's metadata does not come
  // through the hooks (its base blocks are not retried at an exact size).
  const bool own_metadata = err == 0;
  if (err != 0) {
    extent_hooks_t* h = &a->hooks_.table;
    sz = sizeof ind;
    err = mallctl("arenas.create", &ind, &sz, &h, sizeof h);
  }
  if (err != 0) {
    delete a;
    PAGER_LOG_WARN("reserve arena: jemalloc arenas.create failed (%s); the pager's threads allocate "
                   "from the general heap", strerror(err));
    return nullptr;
  }
  a->index_ = ind;
  a->flags_ = MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE;
  bool retain = false;
  sz = sizeof retain;
  a->refuse_grow_ = own_metadata && mallctl("opt.retain", &retain, &sz, nullptr, 0) == 0 && retain;
  // Freed pages go back to the region at once, so the pool's level is the
  // arena's live use, not what jemalloc would keep around for reuse.
  char name[64];
  ssize_t zero_ms = 0;
  for (const char* knob : {"dirty_decay_ms", "muzzy_decay_ms"}) {
    snprintf(name, sizeof name, "arena.%u.%s", ind, knob);
    mallctl(name, nullptr, nullptr, &zero_ms, sizeof zero_ms);
  }
  a->captures_malloc_ = MallocIsJemalloc();
  a->next_all_ = g_all.load(std::memory_order_relaxed);
  while (!g_all.compare_exchange_weak(a->next_all_, a, std::memory_order_release, std::memory_order_relaxed)) {
  }
  PAGER_LOG_INFO("reserve arena %u: %llu KiB%s; %s", ind, static_cast<unsigned long long>(len >> 10),
                 locked ? " locked" : "",
                 a->captures_malloc_ ? "malloc is jemalloc: every allocation on the pager's threads is covered"
                                     : "malloc is not jemalloc: only the pager's own containers are covered");
  return a;
}

bool ReserveArena::InAnyRegion(const void* p) {
  for (const ReserveArena* a = g_all.load(std::memory_order_acquire); a != nullptr; a = a->next_all_) {
    if (a->Contains(p)) return true;
  }
  return false;
}

void ReserveArena::Release(ReserveArena* a) {
  if (a == nullptr) return;
  std::lock_guard<std::mutex> l(g_free_mu);
  a->next_free_ = g_free;
  g_free = a;
}

void ReserveArena::EnterThread(const ReserveArena* a) {
  if (a == nullptr) return;
  bool off = false;
  mallctl("thread.tcache.enabled", nullptr, nullptr, &off, sizeof off);
  unsigned ind = a->index_;
  mallctl("thread.arena", nullptr, nullptr, &ind, sizeof ind);
}

void* ReserveArena::Alloc(const ReserveArena* a, size_t bytes) noexcept {
  return mallocx(bytes == 0 ? 1 : bytes, a != nullptr ? a->flags_ : MALLOCX_TCACHE_NONE);
}

void ReserveArena::Free(void* p) noexcept {
  if (p != nullptr) dallocx(p, MALLOCX_TCACHE_NONE);
}

OrdinaryHeapScope::OrdinaryHeapScope() {
  size_t sz = sizeof old_;
  if (mallctl("thread.arena", &old_, &sz, nullptr, 0) != 0) return;
  unsigned zero = 0;
  rebound_ = old_ != 0 && mallctl("thread.arena", nullptr, nullptr, &zero, sizeof zero) == 0;
}

OrdinaryHeapScope::~OrdinaryHeapScope() {
  if (rebound_) mallctl("thread.arena", nullptr, nullptr, &old_, sizeof old_);
}

}  // namespace pager

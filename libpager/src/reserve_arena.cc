#include "reserve_arena.h"

#include <dlfcn.h>
#include <jemalloc/jemalloc.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstring>
#include <mutex>

#include "log.h"
#include "pager/store.h"

namespace pager {
namespace {

std::atomic<ReserveArena*> g_arena{nullptr};
std::atomic<int> g_flags{0};

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

}  // namespace

// The extent hooks, over ReserveArena::region_. They run inside jemalloc,
// under its locks, on whatever thread allocates: they must not allocate and
// must not log (the pager logs overflows from its own thread).
struct ArenaHooks {
  static extent_hooks_t hooks;

  static void* Alloc(extent_hooks_t*, void* new_addr, size_t size, size_t alignment, bool* zero,
                     bool* commit, unsigned) {
    ReserveArena* a = g_arena.load(std::memory_order_acquire);
    // In-place growth of a large allocation: decline; jemalloc moves it.
    if (new_addr != nullptr || a == nullptr) return nullptr;
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

  static bool Dalloc(extent_hooks_t*, void* addr, size_t size, bool, unsigned) {
    ReserveArena* a = g_arena.load(std::memory_order_acquire);
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
  static bool Merge(extent_hooks_t*, void* a, size_t, void* b, size_t, bool, unsigned) {
    ReserveArena* r = g_arena.load(std::memory_order_acquire);
    return r->region_.Contains(a) != r->region_.Contains(b);
  }
};

// Decommit and purges are opted out of (nullptr): region pages stay
// resident and locked; freed extents go back through Dalloc.
extent_hooks_t ArenaHooks::hooks = {
    ArenaHooks::Alloc,  ArenaHooks::Dalloc, ArenaHooks::Destroy, ArenaHooks::Commit, nullptr,
    nullptr,            nullptr,            ArenaHooks::Split,   ArenaHooks::Merge,
};

ReserveArena::ReserveArena(Mapping region, bool)
    : mapping_(std::move(region)) {
  region_.Reset(mapping_.data(), mapping_.size() / kPageSize);
}

ReserveArena* ReserveArena::Get(uint64_t bytes) {
  static std::mutex mu;
  std::lock_guard<std::mutex> l(mu);
  if (ReserveArena* a = g_arena.load(std::memory_order_acquire); a != nullptr) return a;
  static bool failed = false;
  if (failed) return nullptr;
  failed = true;  // one attempt per process

  uint64_t len = (bytes + kPageSize - 1) / kPageSize * kPageSize;
  bool locked = false;
  Mapping region = MapLockedPool(len, "reserve arena", false, &locked);
  if (!region.valid()) {
    PAGER_LOG_WARN("reserve arena: mmap of %llu bytes failed (%s); the pager's threads allocate "
                   "from the general heap", static_cast<unsigned long long>(len), strerror(errno));
    return nullptr;
  }
  // Never destroyed (see reserve_arena.h): a deliberate, bounded leak.
  auto* a = new ReserveArena(std::move(region), locked);
  g_arena.store(a, std::memory_order_release);  // the hooks find it from here on

  unsigned ind = 0;
  size_t sz = sizeof ind;
  ArenaConfig cfg{&ArenaHooks::hooks, false};
  int err = mallctl("experimental.arenas_create_ext", &ind, &sz, &cfg, sizeof cfg);
  // Declining grows is only safe when the arena's metadata does not come
  // through the hooks (its base blocks are not retried at an exact size).
  const bool own_metadata = err == 0;
  if (err != 0) {
    extent_hooks_t* h = &ArenaHooks::hooks;
    sz = sizeof ind;
    err = mallctl("arenas.create", &ind, &sz, &h, sizeof h);
  }
  if (err != 0) {
    g_arena.store(nullptr, std::memory_order_release);
    delete a;
    PAGER_LOG_WARN("reserve arena: jemalloc arenas.create failed (%s); the pager's threads allocate "
                   "from the general heap", strerror(err));
    return nullptr;
  }
  a->index_ = ind;
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
  g_flags.store(MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE, std::memory_order_release);
  PAGER_LOG_INFO("reserve arena %u: %llu KiB%s; %s", ind, static_cast<unsigned long long>(len >> 10),
                 locked ? " locked" : "",
                 a->captures_malloc_ ? "malloc is jemalloc: every allocation on the pager's threads is covered"
                                     : "malloc is not jemalloc: only the pager's own containers are covered");
  return a;
}

ReserveArena* ReserveArena::Current() { return g_arena.load(std::memory_order_acquire); }

int ReserveArena::Flags() { return g_flags.load(std::memory_order_acquire); }

void ReserveArena::EnterPagerThread() {
  ReserveArena* a = Current();
  if (a == nullptr || Flags() == 0) return;
  bool off = false;
  mallctl("thread.tcache.enabled", nullptr, nullptr, &off, sizeof off);
  unsigned ind = a->index_;
  mallctl("thread.arena", nullptr, nullptr, &ind, sizeof ind);
}

OrdinaryHeapScope::OrdinaryHeapScope() {
  ReserveArena* a = ReserveArena::Current();
  size_t sz = sizeof old_;
  if (a == nullptr || mallctl("thread.arena", &old_, &sz, nullptr, 0) != 0 || old_ != a->index()) return;
  unsigned zero = 0;
  rebound_ = mallctl("thread.arena", nullptr, nullptr, &zero, sizeof zero) == 0;
}

OrdinaryHeapScope::~OrdinaryHeapScope() {
  if (rebound_) mallctl("thread.arena", nullptr, nullptr, &old_, sizeof old_);
}

void* PoolAlloc(size_t bytes) {
  void* p = mallocx(bytes == 0 ? 1 : bytes, ReserveArena::Flags());
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void PoolFree(void* p) {
  if (p != nullptr) dallocx(p, MALLOCX_TCACHE_NONE);
}

}  // namespace pager

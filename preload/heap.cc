// The heap: jemalloc, linked into the preload, with arenas whose extents live
// in paged regions.
//
// Program threads are bound (thread.arena) to one of a few manual "paged"
// arenas, created on first use with extent hooks that map each extent and
// adopt it into the pager. The pager's threads, and program threads while
// they call into the pager, use one manual arena with jemalloc's default
// hooks: the unpaged arena. Automatic arenas keep the default hooks too, so
// jemalloc's internal allocations (arena 0, which also serves allocations
// made inside a hook) and threads that were never bound stay unpaged.
//
// Paged arenas are created with metadata_use_hooks = false
// (experimental.arenas_create_ext, jemalloc 5.3): their metadata lives in
// unpaged memory, so freeing, forking and purging never read paged memory
// on behalf of jemalloc itself.
//
// Hooks, given jemalloc's defaults on Linux (retain:true): extents are never
// unmapped (dalloc = NULL makes jemalloc keep them as "retained"); decommit
// is refused, so giving memory back is always purge_forced = MADV_DONTNEED,
// which the pager sees as a REMOVE event and turns into free slots and
// frames; purge_lazy (MADV_FREE) is not offered: a lazily freed page would
// stay resident behind the pager's back.
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>

#include "log.h"  // libpager's own (libpager/src)
#include "preload.h"

// Read by jemalloc at its initialization (overrides the archive's weak
// default). Freed pages are purged after 1 s instead of 10 s: a dirty page
// left resident is a page the pager would otherwise write to swap.
extern "C" {
const char* malloc_conf = "dirty_decay_ms:1000,muzzy_decay_ms:0";
}

namespace pager::preload {
namespace {

constexpr unsigned kMaxSlots = 64;

// jemalloc 5.3's arena_config_t (internal header), the input of
// experimental.arenas_create_ext.
struct ArenaConfig {
  extent_hooks_t* extent_hooks;
  bool metadata_use_hooks;
};

std::atomic<unsigned> g_unpaged{0};
std::atomic<unsigned> g_slot_arena[kMaxSlots];
std::atomic<unsigned> g_next_slot{0};
unsigned g_slots = 8;
pthread_mutex_t g_slot_mu = PTHREAD_MUTEX_INITIALIZER;
std::atomic<uint64_t> g_extent_bytes{0};

class HookGuard {
 public:
  HookGuard() { t_hook_depth++; }
  ~HookGuard() { t_hook_depth--; }
};

void* MapExtent(void* new_addr, size_t size, size_t alignment) {
  const int prot = PROT_READ | PROT_WRITE, flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  if (new_addr != nullptr) {
    // Growing an extent in place: only exactly there will do.
    void* p = RawMmap(new_addr, size, prot, flags, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    if (p != new_addr) {
      RawMunmap(p, size);
      return nullptr;
    }
    return p;
  }
  if (alignment < kPageSize) alignment = kPageSize;
  size_t len = size + alignment - kPageSize;
  void* raw = RawMmap(nullptr, len, prot, flags, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (start + alignment - 1) & ~(uintptr_t{alignment} - 1);
  size_t head = aligned - start, tail = len - head - size;
  if (head != 0) RawMunmap(raw, head);
  if (tail != 0) RawMunmap(reinterpret_cast<void*>(aligned + size), tail);
  return reinterpret_cast<void*>(aligned);
}

void* HookAlloc(extent_hooks_t*, void* new_addr, size_t size, size_t alignment, bool* zero, bool* commit,
                unsigned) {
  HookGuard guard;
  void* p = MapExtent(new_addr, size, alignment);
  if (p == nullptr) return nullptr;
  // Inside a hook jemalloc serves this thread's allocations from arena 0
  // (its reentrancy rule), so the pager's bookkeeping lands unpaged.
  AdoptRange(p, size);
  g_extent_bytes.fetch_add(size, std::memory_order_relaxed);
  *zero = true;
  *commit = true;
  return p;
}

void HookDestroy(extent_hooks_t*, void* addr, size_t size, bool, unsigned) {
  HookGuard guard;
  RawMunmap(addr, size);  // the pager learns it from the UNMAP event
}

bool HookCommit(extent_hooks_t*, void*, size_t, size_t, size_t, unsigned) { return false; }

bool HookPurgeForced(extent_hooks_t*, void* addr, size_t, size_t offset, size_t length, unsigned) {
  HookGuard guard;
  return RawMadvise(static_cast<char*>(addr) + offset, length, MADV_DONTNEED) != 0;
}

bool HookSplit(extent_hooks_t*, void*, size_t, size_t, size_t, bool, unsigned) { return false; }
bool HookMerge(extent_hooks_t*, void*, size_t, void*, size_t, bool, unsigned) { return false; }

extent_hooks_t g_hooks = {
    HookAlloc, nullptr /* dalloc: retain */, HookDestroy, HookCommit, nullptr /* decommit */,
    nullptr /* purge_lazy */, HookPurgeForced, HookSplit, HookMerge,
};

unsigned CreatePagedArena() {
  ArenaConfig cfg{&g_hooks, false};
  unsigned ind = 0;
  size_t sz = sizeof ind;
  if (mallctl("experimental.arenas_create_ext", &ind, &sz, &cfg, sizeof cfg) != 0) return 0;
  return ind;
}

}  // namespace

bool HeapInit() {
  unsigned ind = 0;
  size_t sz = sizeof ind;
  if (mallctl("arenas.create", &ind, &sz, nullptr, 0) != 0) return false;
  g_unpaged.store(ind);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  g_slots = cpus < 1 ? 1 : (cpus * 4 > kMaxSlots ? kMaxSlots : static_cast<unsigned>(cpus * 4));
  return true;
}

unsigned UnpagedArena() { return g_unpaged.load(std::memory_order_relaxed); }

unsigned CurrentArena() {
  unsigned a = 0;
  size_t sz = sizeof a;
  if (mallctl("thread.arena", &a, &sz, nullptr, 0) != 0) return 0;
  return a;
}

void SetArena(unsigned arena, bool flush_tcache) {
  mallctl("thread.arena", nullptr, nullptr, &arena, sizeof arena);
  // The tcache keeps regions of the previous arena; flushing makes the next
  // small allocations come from the new one.
  if (flush_tcache) mallctl("thread.tcache.flush", nullptr, nullptr, nullptr, 0);
}

void BindProgramThread() {
  if (!settings().page_heap || UnpagedArena() == 0) return;
  unsigned slot = g_next_slot.fetch_add(1, std::memory_order_relaxed) % g_slots;
  unsigned a = g_slot_arena[slot].load(std::memory_order_acquire);
  if (a == 0) {
    pthread_mutex_lock(&g_slot_mu);
    a = g_slot_arena[slot].load(std::memory_order_relaxed);
    if (a == 0) {
      a = CreatePagedArena();
      g_slot_arena[slot].store(a, std::memory_order_release);
    }
    pthread_mutex_unlock(&g_slot_mu);
  }
  if (a == 0) {
    PAGER_LOG_WARN("jemalloc: cannot create a paged arena; this thread's heap is not paged");
    return;
  }
  SetArena(a, true);
}

void BindPagerThread() {
  unsigned a = UnpagedArena();
  if (a != 0) SetArena(a, true);
}

void HeapAfterForkChild() {
  g_slot_mu = PTHREAD_MUTEX_INITIALIZER;
  for (auto& s : g_slot_arena) s.store(0, std::memory_order_relaxed);
  g_next_slot.store(0, std::memory_order_relaxed);
  BindProgramThread();
}

uint64_t HeapExtentBytes() { return g_extent_bytes.load(std::memory_order_relaxed); }

PagerScope::PagerScope() {
  if (t_scope_depth++ == 0 && !t_pager_thread && t_hook_depth == 0) {
    unsigned unpaged = UnpagedArena();
    unsigned cur = unpaged != 0 ? CurrentArena() : 0;
    if (cur != 0 && cur != unpaged) {
      saved_arena_ = cur;
      SetArena(unpaged, true);
    }
  }
}

PagerScope::~PagerScope() {
  if (saved_arena_ != 0) SetArena(saved_arena_, false);
  t_scope_depth--;
}

}  // namespace pager::preload

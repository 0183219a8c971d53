#include "meta_alloc.h"

#include <jemalloc/jemalloc.h>

#include <atomic>

namespace pager {
namespace {

std::atomic<uint64_t> g_meta_bytes{0};

// The metadata arena: default extent hooks (plain mmap), used by no thread
// as its own. Arena 0 if jemalloc refuses a new one (then a signal handler's
// fault can meet a lock the program holds, as it could before).
int MetaFlags() {
  static const int flags = [] {
    unsigned ind = 0;
    size_t sz = sizeof ind;
    if (mallctl("arenas.create", &ind, &sz, nullptr, 0) != 0) ind = 0;
    return static_cast<int>(MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE);
  }();
  return flags;
}

}  // namespace

void* MetaAlloc(size_t bytes) noexcept {
  void* p = mallocx(bytes == 0 ? 1 : bytes, MetaFlags());
  if (p != nullptr) g_meta_bytes.fetch_add(bytes, std::memory_order_relaxed);
  return p;
}

void MetaFree(void* p, size_t bytes) noexcept {
  if (p == nullptr) return;
  g_meta_bytes.fetch_sub(bytes, std::memory_order_relaxed);
  dallocx(p, MALLOCX_TCACHE_NONE);
}

uint64_t MetaBytes() noexcept { return g_meta_bytes.load(std::memory_order_relaxed); }

}  // namespace pager

#include "meta_alloc.h"

#include <jemalloc/jemalloc.h>

#include <atomic>

namespace pager {
namespace {

constexpr int kMetaFlags = MALLOCX_ARENA(0) | MALLOCX_TCACHE_NONE;
std::atomic<uint64_t> g_meta_bytes{0};

}  // namespace

void* MetaAlloc(size_t bytes) noexcept {
  void* p = mallocx(bytes == 0 ? 1 : bytes, kMetaFlags);
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

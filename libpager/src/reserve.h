// The emergency pool: locked memory the pager works from, so that freeing
// memory never needs memory the program is short of.
//
// Write-back stages evicted pages here (the frame they came from is released
// at once, so resident memory falls as soon as a write is issued, and the
// pool carries the write until the store has it); swap-in reads land here
// before they are installed. The pool's level is therefore exactly the
// pager's memory debt, and the throttle reads it: below half, faults that
// need a fresh frame wait until write-back gives pages back (the kernel's
// PFMEMALLOC rule).
//
// Thread-safe: the pager thread and store threads allocate from it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "pager/status.h"
#include "unique_fd.h"

namespace pager {

class Reserve {
 public:
  // Maps, pre-faults and mlocks `bytes` (rounded up to pages). Where
  // RLIMIT_MEMLOCK forbids the lock, the pool stays pre-faulted and a
  // warning is logged once.
  static Result<std::unique_ptr<Reserve>> Create(uint64_t bytes);

  // `pages` contiguous pages, or nullptr if the pool has no such run.
  std::byte* AllocPages(uint32_t pages);
  void FreePages(std::byte* p, uint32_t pages);

  uint64_t total_pages() const { return total_pages_; }
  uint64_t free_pages() const { return free_pages_.load(std::memory_order_relaxed); }
  uint64_t min_free_pages() const { return min_free_pages_.load(std::memory_order_relaxed); }
  // True when less than half the pool is left: the throttle point.
  bool BelowHalf() const { return free_pages() * 2 < total_pages_; }
  bool locked() const { return locked_; }
  bool Contains(const void* p) const {
    auto* b = static_cast<const std::byte*>(p);
    return b >= pool_.data() && b < pool_.data() + pool_.size();
  }

 private:
  Reserve(Mapping pool, bool locked);

  Mapping pool_;
  const uint64_t total_pages_;
  const bool locked_;
  std::mutex mu_;
  std::vector<uint64_t> used_;  // bitmap, guarded by mu_
  uint64_t hint_ = 0;           // guarded by mu_
  std::atomic<uint64_t> free_pages_;
  std::atomic<uint64_t> min_free_pages_;
};

}  // namespace pager

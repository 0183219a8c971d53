// The emergency pool: locked memory the pager works from, so that freeing
// memory never needs memory the program is short of.
//
// Two parts, one level:
//  - staging pages: write-back copies evicted pages here (the frame they
//    came from is released at once, so resident memory falls as soon as a
//    write is issued, and the pool carries the write until the store has
//    it); swap-in reads land here before they are installed;
//  - the allocator's region (reserve_arena.h): everything the pager's threads
//    malloc, libnfs's request and reply buffers included. Not what grows with
//    the mapping (meta_alloc.h).
// free_pages() is what both have left, so the level is the pager's memory
// debt, and the throttle reads it: below half, faults that need a fresh
// frame wait until write-back gives pages back (the kernel's PFMEMALLOC
// rule). The region is 3/8 of the pool (3/5 of the configured reserve, on
// top of it): the allocator's own use can never by itself hold the level
// below half, which would throttle forever.
//
// Thread-safe: the pager thread and store threads allocate from it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pager/status.h"
#include "pager/store.h"
#include "unique_fd.h"

namespace pager {

class ReserveArena;

// Runs of pages inside one mapping: large runs first fit from the bottom,
// small ones last fit from the top. The mapping is small (thousands of
// pages), so a bitmap scan is cheap enough.
class PageRuns {
 public:
  PageRuns() = default;
  void Reset(std::byte* base, uint64_t pages);

  // `pages` contiguous pages aligned to `align_pages`, or nullptr.
  std::byte* Alloc(uint64_t pages, uint64_t align_pages = 1);
  // Any run inside an allocated one may be freed (jemalloc frees parts of
  // the extents it was given).
  void Free(const void* p, uint64_t pages);

  uint64_t total_pages() const { return total_; }
  uint64_t used_pages() const { return used_pages_.load(std::memory_order_relaxed); }
  bool Contains(const void* p) const {
    auto* b = static_cast<const std::byte*>(p);
    return b >= base_ && b < base_ + total_ * 4096;
  }

 private:
  bool used(uint64_t i) const { return (used_[i / 64] >> (i % 64)) & 1; }

  std::byte* base_ = nullptr;
  uint64_t total_ = 0;
  std::mutex mu_;
  std::vector<uint64_t> used_;  // bitmap, guarded by mu_
  static constexpr uint64_t kLargePages = 64;  // 256 KiB and more: from the bottom
  std::atomic<uint64_t> used_pages_{0};
};

class Reserve {
 public:
  // Bytes a pager with a reserve of `bytes` over swap `location` locks: its
  // staging pages plus its arena's region (ArenaBytes, with the store's
  // buffers for the pool in flight). What Config::Validate holds against the
  // machine's memory, and pagerctl check against RLIMIT_MEMLOCK.
  static uint64_t LockedBytes(uint64_t bytes, const std::string& location);

  // A pool of `bytes` (rounded up to pages) of staging pages, mapped,
  // pre-faulted and mlocked here, plus this pager's reserve arena of
  // `arena_bytes` (ArenaBytes). Where RLIMIT_MEMLOCK forbids the lock, the
  // pool stays pre-faulted and a warning is logged once. Without an arena
  // (jemalloc refused) the pool is all staging pages.
  static Result<std::unique_ptr<Reserve>> Create(uint64_t bytes, uint64_t arena_bytes);
  ~Reserve();
  Reserve(const Reserve&) = delete;
  Reserve& operator=(const Reserve&) = delete;
  // The arena's region for a pool of `bytes` whose store needs
  // `store_buffer_bytes` (Store::buffer_bytes of the whole pool in flight):
  // 3/5 of the pool, or what the store needs if more. Locked memory on top of
  // the pool's own (pagerctl check weighs both against RLIMIT_MEMLOCK).
  static uint64_t ArenaBytes(uint64_t bytes, uint64_t store_buffer_bytes);

  // `pages` contiguous staging pages, or nullptr if there is no such run.
  std::byte* AllocPages(uint32_t pages);
  void FreePages(std::byte* p, uint32_t pages);

  // The whole pool: staging pages plus the arena's region.
  uint64_t total_pages() const;
  uint64_t free_pages() const;
  // Lowest free_pages() seen by AllocPages or NoteLevel.
  uint64_t min_free_pages() const { return min_free_pages_.load(std::memory_order_relaxed); }
  // Records the current level in min_free_pages (the arena's use moves on
  // other threads, inside jemalloc: the pager samples it each turn).
  void NoteLevel();
  // True when less than half the pool is left: the throttle point.
  bool BelowHalf() const { return free_pages() * 2 < total_pages(); }

  uint64_t staging_pages() const { return staging_.total_pages(); }
  uint64_t staging_free_pages() const { return staging_.total_pages() - staging_.used_pages(); }
  ReserveArena* arena() const { return arena_; }
  bool locked() const { return locked_; }
  bool Contains(const void* p) const { return staging_.Contains(p); }

 private:
  Reserve(Mapping pool, bool locked, ReserveArena* arena);

  Mapping pool_;
  const bool locked_;
  ReserveArena* const arena_;  // ours until ~Reserve gives it back for reuse
  PageRuns staging_;
  std::atomic<uint64_t> min_free_pages_;
};

// Maps, pre-faults and mlocks `len` bytes; `locked` says whether the lock
// held (a warning is logged once when it did not). Shared with the arena,
// which is inherited by a fork child (`dontfork` false): the child's heap
// may hold pointers into it.
Mapping MapLockedPool(uint64_t len, const char* what, bool dontfork, bool* locked);

}  // namespace pager

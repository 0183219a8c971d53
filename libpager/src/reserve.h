// The emergency pool: locked memory the pager works from, so that freeing
// memory never needs memory the program is short of.
//
// Two parts, one level:
//  - staging pages: write-back copies evicted pages here (the frame they
//    came from is released at once, so resident memory falls as soon as a
//    write is issued, and the pool carries the write until the store has
//    it); swap-in reads land here before they are installed;
//  - the allocator's region (reserve_arena.h): everything the pager's threads
//    malloc, libnfs's request and reply buffers included.
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
#include <vector>

#include "pager/status.h"
#include "pager/store.h"
#include "unique_fd.h"

namespace pager {

class ReserveArena;

// Runs of pages inside one mapping, first fit from a rotating hint. The
// mapping is small (thousands of pages), so a bitmap scan is cheap enough.
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
  uint64_t hint_ = 0;           // guarded by mu_
  std::atomic<uint64_t> used_pages_{0};
};

class Reserve {
 public:
  // Bytes locked for a reserve of `bytes`, by the process's first Reserve:
  // its staging pages plus the arena's region (3/5 of them). What
  // Config::Validate holds against the machine's memory.
  static constexpr uint64_t ArenaBytesFor(uint64_t bytes) {
    return (bytes + kPageSize - 1) / kPageSize * 3 / 5 * kPageSize;
  }
  static constexpr uint64_t LockedBytesFor(uint64_t bytes) {
    return (bytes + kPageSize - 1) / kPageSize * kPageSize + ArenaBytesFor(bytes);
  }

  // A pool of `bytes` (rounded up to pages) of staging pages, mapped,
  // pre-faulted and mlocked here, plus the process's reserve arena: created
  // by the first Reserve with 3/5 of its size (so 3/8 of that pool), counted
  // as it is by later ones.
  // Where RLIMIT_MEMLOCK forbids the lock, the pool stays pre-faulted and a
  // warning is logged once. Without an arena (jemalloc refused) the pool is
  // all staging pages.
  static Result<std::unique_ptr<Reserve>> Create(uint64_t bytes);

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
  ReserveArena* const arena_;  // process-wide, outlives every Reserve
  PageRuns staging_;
  std::atomic<uint64_t> min_free_pages_;
};

// Maps, pre-faults and mlocks `len` bytes; `locked` says whether the lock
// held (a warning is logged once when it did not). Shared with the arena,
// which is inherited by a fork child (`dontfork` false): the child's heap
// may hold pointers into it.
Mapping MapLockedPool(uint64_t len, const char* what, bool dontfork, bool* locked);

}  // namespace pager

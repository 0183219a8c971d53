#include "reserve.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "log.h"
#include "pager/store.h"
#include "reserve_arena.h"

namespace pager {

Mapping MapLockedPool(uint64_t len, const char* what, bool dontfork, bool* locked) {
  Mapping pool = Mapping::Anonymous(len, MAP_POPULATE);
  if (!pool.valid()) return pool;
  // Staging pages are never inherited by a fork child (whose pager would
  // not own them).
  if (dontfork) madvise(pool.data(), len, MADV_DONTFORK);
  *locked = mlock(pool.data(), len) == 0;
  if (!*locked) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true)) {
      PAGER_LOG_WARN("%s: mlock of %llu bytes failed (%s); raise RLIMIT_MEMLOCK (ulimit -l) "
                     "to lock it. Continuing with the pool pre-faulted but unlocked.",
                     what, static_cast<unsigned long long>(len), strerror(errno));
    }
  }
  return pool;
}

void PageRuns::Reset(std::byte* base, uint64_t pages) {
  base_ = base;
  total_ = pages;
  used_.assign((pages + 63) / 64, 0);
  used_pages_.store(0, std::memory_order_relaxed);
}

// Large runs are taken first-fit from the bottom, small ones last-fit from
// the top: libnfs's 1.25 MiB buffers and the pager's 1 MiB write runs then
// do not find the region cut into pieces by small extents (measured: the
// demo's overflows came from 321-page requests failing with 2 MiB free in
// fragments).
std::byte* PageRuns::Alloc(uint64_t pages, uint64_t align_pages) {
  if (pages == 0 || pages > total_) return nullptr;
  const uint64_t base_page = reinterpret_cast<uintptr_t>(base_) / kPageSize;
  auto misalign = [&](uint64_t i) { return (base_page + i) % align_pages; };
  auto take = [&](uint64_t i) {
    for (uint64_t j = i; j < i + pages; j++) used_[j / 64] |= uint64_t{1} << (j % 64);
    used_pages_.fetch_add(pages, std::memory_order_relaxed);
    return base_ + i * kPageSize;
  };
  std::lock_guard<std::mutex> lock(mu_);
  if (pages >= kLargePages) {
    for (uint64_t i = 0; i + pages <= total_;) {
      if (uint64_t r = misalign(i); r != 0) {
        i += align_pages - r;
        continue;
      }
      uint64_t run = 0;
      while (run < pages && !used(i + run)) run++;
      if (run == pages) return take(i);
      i += run + 1;
    }
    return nullptr;
  }
  for (uint64_t i = total_ - pages;;) {
    const uint64_t r = misalign(i);
    if (r > i) return nullptr;
    i -= r;            // aligned, at or below
    uint64_t run = 0;  // free pages at the run's end, counted downwards
    while (run < pages && !used(i + pages - 1 - run)) run++;
    if (run == pages) return take(i);
    // Page `used_at` is taken: the next candidate ends below it.
    const uint64_t used_at = i + pages - 1 - run;
    if (used_at < pages) return nullptr;
    i = used_at - pages;
  }
}

void PageRuns::Free(const void* p, uint64_t pages) {
  uint64_t first = static_cast<uint64_t>(static_cast<const std::byte*>(p) - base_) / kPageSize;
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t j = first; j < first + pages; j++) used_[j / 64] &= ~(uint64_t{1} << (j % 64));
  used_pages_.fetch_sub(pages, std::memory_order_relaxed);
}

uint64_t Reserve::ArenaBytes(uint64_t bytes, uint64_t store_buffer_bytes) {
  const uint64_t share = (bytes + kPageSize - 1) / kPageSize * 3 / 5 * kPageSize;
  return std::max({share, (store_buffer_bytes + kPageSize - 1) / kPageSize * kPageSize, kPageSize});
}

uint64_t Reserve::LockedBytes(uint64_t bytes, const std::string& location) {
  // The store, built only to ask (no file, no connection before Start).
  auto store = OpenStore(location, 0, 0);
  const uint64_t buffers = store.ok() ? (*store)->buffer_bytes(bytes) : 0;
  return (bytes + kPageSize - 1) / kPageSize * kPageSize + ArenaBytes(bytes, buffers);
}

Result<std::unique_ptr<Reserve>> Reserve::Create(uint64_t bytes, uint64_t arena_bytes) {
  uint64_t pages = (bytes + kPageSize - 1) / kPageSize;
  if (pages == 0) return Status::Error("reserve: size must be at least one page");
  uint64_t len = pages * kPageSize;
  bool locked = false;
  Mapping pool = MapLockedPool(len, "reserve", true, &locked);
  if (!pool.valid()) return Status::FromErrno("reserve: mmap of " + std::to_string(len) + " bytes", errno);
  ReserveArena* arena = ReserveArena::Acquire(std::max<uint64_t>(kPageSize, arena_bytes));
  return std::unique_ptr<Reserve>(new Reserve(std::move(pool), locked, arena));
}

Reserve::~Reserve() { ReserveArena::Release(arena_); }

Reserve::Reserve(Mapping pool, bool locked, ReserveArena* arena)
    : pool_(std::move(pool)), locked_(locked), arena_(arena) {
  staging_.Reset(pool_.data(), pool_.size() / kPageSize);
  min_free_pages_.store(free_pages(), std::memory_order_relaxed);
}

uint64_t Reserve::total_pages() const {
  return staging_.total_pages() + (arena_ != nullptr ? arena_->total_pages() : 0);
}

uint64_t Reserve::free_pages() const {
  return staging_free_pages() + (arena_ != nullptr ? arena_->free_pages() : 0);
}

void Reserve::NoteLevel() {
  uint64_t level = free_pages();
  uint64_t min = min_free_pages_.load(std::memory_order_relaxed);
  while (level < min && !min_free_pages_.compare_exchange_weak(min, level, std::memory_order_relaxed)) {
  }
}

std::byte* Reserve::AllocPages(uint32_t pages) {
  std::byte* p = staging_.Alloc(pages);
  if (p != nullptr) NoteLevel();
  return p;
}

void Reserve::FreePages(std::byte* p, uint32_t pages) { staging_.Free(p, pages); }

}  // namespace pager

#include "reserve.h"

#include <sys/mman.h>

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
  hint_ = 0;
  used_pages_.store(0, std::memory_order_relaxed);
}

std::byte* PageRuns::Alloc(uint64_t pages, uint64_t align_pages) {
  if (pages == 0 || pages > total_) return nullptr;
  const uint64_t base_page = reinterpret_cast<uintptr_t>(base_) / kPageSize;
  auto aligned = [&](uint64_t i) {  // first i' >= i with base + i' aligned
    uint64_t r = (base_page + i) % align_pages;
    return r == 0 ? i : i + (align_pages - r);
  };
  std::lock_guard<std::mutex> lock(mu_);
  for (int pass = 0; pass < 2; pass++) {
    uint64_t start = pass == 0 ? hint_ : 0;
    uint64_t end = pass == 0 ? total_ : hint_ + pages;
    if (end > total_) end = total_;
    for (uint64_t i = aligned(start); i + pages <= end;) {
      uint64_t run = 0;
      while (run < pages && !used(i + run)) run++;
      if (run == pages) {
        for (uint64_t j = i; j < i + pages; j++) used_[j / 64] |= uint64_t{1} << (j % 64);
        hint_ = i + pages == total_ ? 0 : i + pages;
        used_pages_.fetch_add(pages, std::memory_order_relaxed);
        return base_ + i * kPageSize;
      }
      i = aligned(i + run + 1);
    }
  }
  return nullptr;
}

void PageRuns::Free(const void* p, uint64_t pages) {
  uint64_t first = static_cast<uint64_t>(static_cast<const std::byte*>(p) - base_) / kPageSize;
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t j = first; j < first + pages; j++) used_[j / 64] &= ~(uint64_t{1} << (j % 64));
  used_pages_.fetch_sub(pages, std::memory_order_relaxed);
}

Result<std::unique_ptr<Reserve>> Reserve::Create(uint64_t bytes) {
  uint64_t pages = (bytes + kPageSize - 1) / kPageSize;
  if (pages == 0) return Status::Error("reserve: size must be at least one page");
  ReserveArena* arena = ReserveArena::Get(ArenaBytesFor(bytes));
  uint64_t len = pages * kPageSize;
  bool locked = false;
  Mapping pool = MapLockedPool(len, "reserve", true, &locked);
  if (!pool.valid()) return Status::FromErrno("reserve: mmap of " + std::to_string(len) + " bytes", errno);
  return std::unique_ptr<Reserve>(new Reserve(std::move(pool), locked, arena));
}

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

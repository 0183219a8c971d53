#include "reserve.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "log.h"
#include "pager/store.h"

namespace pager {

Result<std::unique_ptr<Reserve>> Reserve::Create(uint64_t bytes) {
  uint64_t len = (bytes + kPageSize - 1) / kPageSize * kPageSize;
  if (len == 0) return Status::Error("reserve: size must be at least one page");
  Mapping pool = Mapping::Anonymous(len, MAP_POPULATE);
  if (!pool.valid()) return Status::FromErrno("reserve: mmap of " + std::to_string(len) + " bytes", errno);
  // Never merged into a huge page with neighbouring memory, never inherited
  // by a fork child (whose pager would not own it).
  madvise(pool.data(), len, MADV_DONTFORK);
  bool locked = mlock(pool.data(), len) == 0;
  if (!locked) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true)) {
      PAGER_LOG_WARN("reserve: mlock of %llu bytes failed (%s); raise RLIMIT_MEMLOCK (ulimit -l) "
                     "to lock it. Continuing with the pool pre-faulted but unlocked.",
                     static_cast<unsigned long long>(len), strerror(errno));
    }
  }
  return std::unique_ptr<Reserve>(new Reserve(std::move(pool), locked));
}

Reserve::Reserve(Mapping pool, bool locked)
    : pool_(std::move(pool)),
      total_pages_(pool_.size() / kPageSize),
      locked_(locked),
      used_((total_pages_ + 63) / 64, 0),
      free_pages_(total_pages_),
      min_free_pages_(total_pages_) {}

std::byte* Reserve::AllocPages(uint32_t pages) {
  if (pages == 0) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  auto used = [this](uint64_t i) { return (used_[i / 64] >> (i % 64)) & 1; };
  // First fit from a rotating hint; the pool is small (thousands of pages).
  for (int pass = 0; pass < 2; pass++) {
    uint64_t start = pass == 0 ? hint_ : 0;
    uint64_t end = pass == 0 ? total_pages_ : hint_ + pages;
    if (end > total_pages_) end = total_pages_;
    for (uint64_t i = start; i + pages <= end;) {
      uint64_t run = 0;
      while (run < pages && !used(i + run)) run++;
      if (run == pages) {
        for (uint64_t j = i; j < i + pages; j++) used_[j / 64] |= uint64_t{1} << (j % 64);
        hint_ = i + pages == total_pages_ ? 0 : i + pages;
        uint64_t left = free_pages_.fetch_sub(pages, std::memory_order_relaxed) - pages;
        if (left < min_free_pages_.load(std::memory_order_relaxed)) {
          min_free_pages_.store(left, std::memory_order_relaxed);
        }
        return pool_.data() + i * kPageSize;
      }
      i += run + 1;
    }
  }
  return nullptr;
}

void Reserve::FreePages(std::byte* p, uint32_t pages) {
  uint64_t first = static_cast<uint64_t>(p - pool_.data()) / kPageSize;
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t j = first; j < first + pages; j++) used_[j / 64] &= ~(uint64_t{1} << (j % 64));
  free_pages_.fetch_add(pages, std::memory_order_relaxed);
}

}  // namespace pager

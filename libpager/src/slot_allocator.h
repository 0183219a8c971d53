// Slots of the swap store, handed out in contiguous runs so that write-back
// is large sequential I/O (the same idea as the kernel's swap clusters).
//
// Next-fit from a cursor: consecutive evictions land in consecutive slots,
// and pages evicted together (neighbours in the inactive queue, mostly
// neighbours in memory) are read back together by read-ahead.
//
// Each slot carries the seal of what was written to it (page_codec.h: its
// checksum, and with encryption its generation and tag): 32 bytes a slot.
// Both maps grow with the swap in use: metadata (meta_alloc.h), not pool.
#pragma once

#include <cstdint>
#include <vector>

#include "meta_alloc.h"
#include "page_codec.h"

namespace pager {

class SlotAllocator {
 public:
  // `max_slots` caps the store (0: up to 2^32 - 1, the page table's limit).
  explicit SlotAllocator(uint64_t max_slots);

  struct Run {
    uint32_t first = 0;
    uint32_t count = 0;  // 0: the store is full
  };
  // Up to `want` consecutive free slots.
  Run Allocate(uint32_t want);
  void Free(uint32_t slot);

  const PageSeal& seal(uint32_t slot) const { return seals_[slot]; }
  void set_seal(uint32_t slot, const PageSeal& s) { seals_[slot] = s; }

  uint64_t in_use() const { return in_use_; }
  uint64_t capacity() const { return capacity_; }
  bool full() const { return in_use_ == max_slots_; }

 private:
  bool IsFree(uint64_t s) const { return !(bits_[s / 64] >> (s % 64) & 1); }
  bool ShouldGrow(uint32_t want) const;
  void Grow();

  const uint64_t max_slots_;
  uint64_t capacity_ = 0;
  uint64_t cursor_ = 0;
  uint64_t in_use_ = 0;
  std::vector<uint64_t, MetaAllocator<uint64_t>> bits_;
  std::vector<PageSeal, MetaAllocator<PageSeal>> seals_;
};

}  // namespace pager

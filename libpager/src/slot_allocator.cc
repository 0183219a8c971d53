#include "slot_allocator.h"

#include <algorithm>

namespace pager {
namespace {
// Grow in 256 MiB steps of swap: the bitmap and seals grow with it, and a
// small program never pays for a large store.
constexpr uint64_t kGrowSlots = 65536;
constexpr uint64_t kMaxSlots = 0xFFFFFFFEull;
}  // namespace

SlotAllocator::SlotAllocator(uint64_t max_slots)
    : max_slots_(max_slots == 0 ? kMaxSlots : std::min(max_slots, kMaxSlots)) {}

// Growing keeps a quarter of the store free, so that runs stay long; past
// that, freed slots are reused (wrapping to the start) rather than the file
// growing without bound under churn.
bool SlotAllocator::ShouldGrow(uint32_t want) const {
  return capacity_ < max_slots_ && (in_use_ + want) * 4 > capacity_ * 3;
}

void SlotAllocator::Grow() {
  capacity_ = std::min(max_slots_, capacity_ + kGrowSlots);
  bits_.resize((capacity_ + 63) / 64, 0);
  seals_.resize(capacity_);
}

SlotAllocator::Run SlotAllocator::Allocate(uint32_t want) {
  Run run;
  if (want == 0 || in_use_ == max_slots_) return run;
  // Two passes: from the cursor to the end (growing when at the end), then
  // from the start. A run never wraps.
  for (int pass = 0; pass < 2 && run.count == 0; pass++) {
    uint64_t s = pass == 0 ? cursor_ : 0;
    for (;;) {
      if (s >= capacity_) {
        if (pass == 0 && ShouldGrow(want)) {
          Grow();
        } else {
          break;
        }
      }
      // Skip whole used words quickly.
      if (s % 64 == 0 && s + 64 <= capacity_ && bits_[s / 64] == ~uint64_t{0}) {
        s += 64;
        continue;
      }
      if (!IsFree(s)) {
        s++;
        continue;
      }
      uint64_t e = s;
      while (e < capacity_ && e - s < want && IsFree(e)) e++;
      if (e - s < want && e == capacity_ && pass == 0 && ShouldGrow(want)) {
        Grow();
        continue;  // extend the same run into the new space
      }
      run.first = static_cast<uint32_t>(s);
      run.count = static_cast<uint32_t>(e - s);
      break;
    }
  }
  for (uint32_t i = 0; i < run.count; i++) {
    uint64_t s = run.first + i;
    bits_[s / 64] |= uint64_t{1} << (s % 64);
  }
  in_use_ += run.count;
  cursor_ = run.first + run.count;
  return run;
}

void SlotAllocator::Free(uint32_t slot) {
  bits_[slot / 64] &= ~(uint64_t{1} << (slot % 64));
  in_use_--;
}

}  // namespace pager

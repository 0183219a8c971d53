// The inactive stage's frames: where a deactivated page waits, unmapped from
// its region but still in memory, until it is re-touched (re-installed with
// no I/O) or written back.
//
// The area is registered with a second uffd that has no events: MOVE needs
// its destination registered with the uffd it is issued on, and releasing a
// frame (MADV_DONTNEED, so the next MOVE finds a hole) must not raise a
// REMOVE event that only the pager thread itself, busy calling madvise, could
// read. For the same reason a frame is filled by UFFDIO_COPY, never by a
// plain store: a store to a hole would fault to a uffd nobody reads.
//
// A released frame is reusable only after Flush() has dropped it; frames are
// released one by one and dropped in sorted, coalesced batches.
#pragma once

#include <cstdint>
#include <vector>

#include "pager/store.h"
#include "slot_allocator.h"
#include "uffd.h"
#include "unique_fd.h"

namespace pager {

class Frames {
 public:
  // The area, and the events-free uffd it is registered with.
  static Result<Frames> Create(uint32_t frames);

  // The uffd that moves pages into frames (UFFDIO_MOVE is issued on the
  // destination's uffd).
  const Uffd& staging() const { return staging_; }

  uintptr_t addr(uint32_t f) const { return reinterpret_cast<uintptr_t>(area_.data()) + uintptr_t{f} * kPageSize; }
  std::byte* at(uint32_t f) const { return area_.data() + uint64_t{f} * kPageSize; }
  bool Contains(uintptr_t a) const { return a >= addr(0) && a < addr(count_); }

  // Up to `want` consecutive free frames (count 0: none free).
  SlotAllocator::Run Allocate(uint32_t want) { return alloc_.Allocate(want); }
  // Returns an allocated frame that was never filled (MOVE failed): no drop.
  void Unuse(uint32_t f) { alloc_.Free(f); }
  void Release(uint32_t f) { released_.push_back(f); }
  // Gives back an allocated frame found holding a page (COPY or MOVE into it
  // refused with EEXIST): a free frame must be a hole. Logged, and dropped so
  // that its next use finds one.
  void ReleaseHeld(uint32_t f);
  void Flush();
  // Copies a page into an allocated frame. False if that failed; the frame
  // is then given back (dropped first if it held a page).
  bool Fill(uint32_t f, const std::byte* src);

  uint32_t count() const { return count_; }
  uint64_t in_use() const { return alloc_.in_use(); }

 private:
  Frames(Mapping area, uint32_t count, Uffd staging)
      : area_(std::move(area)), count_(count), alloc_(count), staging_(std::move(staging)) {}
  Mapping area_;
  uint32_t count_;
  SlotAllocator alloc_;
  Uffd staging_;
  std::vector<uint32_t> released_;
};

}  // namespace pager

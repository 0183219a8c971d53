// The paged ranges, as the pager thread knows them.
//
// One owner, in event order: only the pager thread changes the set, when it
// handles a Map/Adopt/Unmap command or an UNMAP/REMAP event, in the order the
// kernel and the program produced them. There is no second copy of "what is
// paged" that could disagree with it (issue 9, problem 2: a late UNMAP erased
// a region adopted at the same address meanwhile).
//
// The set can lag the kernel in one way: mremap growing a registered range in
// place raises no event (UffdContract.MremapGrowthInPlaceRaisesNoEventAndTheTailIsRegistered), and the grown tail
// is registered. A fault outside every known range is such a tail: the pager
// learns its extent from /proc/self/maps (LearnFrom). Bringing pages home
// does not depend on the set: it walks the page table.
//
// Not thread-safe: the pager thread's alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>

#include "meta_alloc.h"

namespace pager {

class RegionSet {
 public:
  // Adds [start, start+len); returns the bytes not already in the set.
  uint64_t Add(uintptr_t start, uint64_t len);
  // Removes [start, start+len) wherever it overlaps; returns the bytes removed.
  uint64_t Remove(uintptr_t start, uint64_t len);
  // True when some byte of [start, start+len) is in the set.
  bool Overlaps(uintptr_t start, uint64_t len) const;
  // True when every byte of [start, start+len) is in the set.
  bool Covers(uintptr_t start, uint64_t len) const;
  // The end of the range holding `addr`; 0 if no range does.
  uintptr_t EndOf(uintptr_t addr) const;
  // Adds the registered VMA around `addr`, per /proc/self/maps, minus what the
  // set already has; returns the bytes added (0 if nothing maps `addr`).
  // Reads a file: for the rare fault outside every known range only.
  uint64_t LearnFrom(uintptr_t addr);

  uint64_t bytes() const { return bytes_; }
  template <class Fn>
  void ForEach(Fn&& fn) const {
    for (const auto& [start, end] : ranges_) fn(start, end - start);
  }

 private:
  using Map = std::map<uintptr_t, uintptr_t, std::less<uintptr_t>,
                       MetaAllocator<std::pair<const uintptr_t, uintptr_t>>>;
  Map ranges_;  // start -> end, disjoint, adjacent ones merged
  uint64_t bytes_ = 0;
};

// The [start, end) of the mapping containing `addr`, per /proc/self/maps;
// false if none does. Allocation-free.
bool VmaAround(uintptr_t addr, uintptr_t* start, uintptr_t* end);

}  // namespace pager

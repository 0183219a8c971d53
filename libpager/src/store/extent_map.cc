#include "store/extent_map.h"

#include <algorithm>

namespace pager::replicated {

ExtentMap::ExtentMap(int servers, int replicas) : servers_(servers), replicas_(std::min(replicas, servers)) {}

const Extent* ExtentMap::Find(uint64_t e) const {
  return e < extents_.size() && extents_[e].placed() ? &extents_[e] : nullptr;
}

Extent& ExtentMap::At(uint64_t e) {
  if (e >= extents_.size()) extents_.resize(std::max<uint64_t>(e + 1, extents_.size() * 2));
  return extents_[e];
}

uint64_t ExtentMap::Shortfall(const Extent& x) const {
  return x.placed() && x.copies() < replicas_ ? x.high_water : 0;
}

void ExtentMap::SetServer(Extent& x, int slot, uint8_t s) {
  under_replicated_pages_ -= Shortfall(x);
  if (x.server[slot] != kNoServer) extents_on_[x.server[slot]]--;
  x.server[slot] = s;
  if (s != kNoServer) extents_on_[s]++;
  under_replicated_pages_ += Shortfall(x);
}

void ExtentMap::Place(uint64_t e, const Usability* usability) {
  Extent& x = At(e);
  for (int copy = 0; copy < replicas_; copy++) {
    int best = -1;
    for (int s = 0; s < servers_; s++) {
      if (x.SlotOf(s) >= 0) continue;
      if (best < 0 || usability[s] < usability[best] ||
          (usability[s] == usability[best] && extents_on_[s] < extents_on_[best])) {
        best = s;
      }
    }
    // The first copy must go somewhere; a second one only where it will be
    // written at once (a write waits for every copy): on a reconnecting
    // server it would stall write-back, on a down one it would be dropped
    // again. The extent is then copied once a server is good again.
    if (best < 0 || (copy > 0 && usability[best] != Usability::kGood)) break;
    SetServer(x, copy, static_cast<uint8_t>(best));
  }
}

void ExtentMap::AddCopy(uint64_t e, int s) {
  Extent& x = At(e);
  if (x.SlotOf(s) >= 0) return;
  SetServer(x, x.server[0] == kNoServer ? 0 : 1, static_cast<uint8_t>(s));
}

bool ExtentMap::DropCopy(uint64_t e, int s) {
  if (e >= extents_.size()) return false;
  Extent& x = extents_[e];
  const int slot = x.SlotOf(s);
  if (slot < 0 || x.copies() < 2) return false;
  SetServer(x, slot, kNoServer);
  return true;
}

uint64_t ExtentMap::DropServer(int s) {
  uint64_t dropped = 0;
  for (uint64_t e = 0; e < extents_.size() && extents_on_[s] > 0; e++) dropped += DropCopy(e, s);
  return dropped;
}

void ExtentMap::NoteWritten(uint64_t e, uint32_t first, uint32_t pages) {
  Extent& x = At(e);
  const uint16_t end = static_cast<uint16_t>(std::min(first + pages, kExtentPages));
  if (end <= x.high_water) return;
  under_replicated_pages_ -= Shortfall(x);
  x.high_water = end;
  under_replicated_pages_ += Shortfall(x);
}

void ExtentMap::NoteServed(uint64_t e, uint32_t first, uint32_t pages, int slot) {
  Extent& x = At(e);
  for (uint32_t p = first; p < first + pages && p < kExtentPages; p++) {
    const uint64_t bit = uint64_t{1} << (p % 64);
    x.served_by_second[p / 64] = slot == 1 ? x.served_by_second[p / 64] | bit : x.served_by_second[p / 64] & ~bit;
  }
}

int64_t ExtentMap::NextUnderReplicated(uint64_t* cursor, uint64_t* budget) const {
  const uint64_t n = extents_.size();
  while (n > 0 && *budget > 0) {
    --*budget;
    const uint64_t e = *cursor % n;
    *cursor = e + 1;
    const Extent& x = extents_[e];
    if (x.placed() && x.copies() < replicas_ && !x.copying) return static_cast<int64_t>(e);
  }
  return -1;
}

bool ExtentMap::Check() const {
  uint64_t on[kMaxServers] = {};
  uint64_t under = 0;
  for (const Extent& x : extents_) {
    if (x.server[0] != kNoServer && x.server[0] == x.server[1]) return false;
    for (uint8_t s : x.server) {
      if (s == kNoServer) continue;
      if (s >= servers_) return false;
      on[s]++;
    }
    under += Shortfall(x);
  }
  for (int s = 0; s < servers_; s++) {
    if (on[s] != extents_on_[s]) return false;
  }
  return under == under_replicated_pages_;
}

}  // namespace pager::replicated

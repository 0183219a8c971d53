// Copying extents again when a copy was lost (its server was marked down,
// or refused a write): from the surviving copy to another good server, the
// one with the fewest extents; with no third server, back to the lost one
// once it is back. A copy reads the extent's written pages from the
// survivor into a buffer of the store's own and writes them to the target;
// only then does the target count as a copy. Writes to the extent wait
// meanwhile, and the copy starts only once none is in flight, so the bytes
// copied are the latest (replicated_store_impl.h).
#include <cstring>
#include <new>

#include "log.h"
#include "store/replicated_store_impl.h"

namespace pager::replicated {
namespace {

constexpr uint64_t kRescanNs = 1'000'000'000;  // after a pass that found nothing to copy, or a failed copy

}  // namespace

Copy* ReplicatedStore::CopyOf(uint64_t extent) const {
  for (Copy* c : copies_) {
    if (c->extent == extent) return c;
  }
  return nullptr;
}

int ReplicatedStore::CopyTarget(const Extent& x, uint64_t now) const {
  int best = -1;
  for (const auto& s : servers_) {
    if (x.SlotOf(s->index) >= 0 || s->health.degraded() || s->health.refusing(now)) continue;
    if (best < 0 || map_.extents_on(s->index) < map_.extents_on(best)) best = s->index;
  }
  return best;
}

void ReplicatedStore::Rereplicate(uint64_t now) {
  if (stop_seen_ || replicas_ < 2 || now < next_copy_scan_ns_) return;
  uint64_t budget = map_.size();  // one pass over the map at most
  while (copies_.size() < kCopiesInFlight) {
    const int64_t e = map_.NextUnderReplicated(&copy_cursor_, &budget);
    if (e < 0) {
      next_copy_scan_ns_ = now + kRescanNs;
      return;
    }
    Extent& x = map_.At(static_cast<uint64_t>(e));
    const uint8_t from = x.server[0] != kNoServer ? x.server[0] : x.server[1];
    if (servers_[from]->health.down()) continue;  // its only copy waits for its server
    const int to = CopyTarget(x, now);
    if (to < 0) continue;
    if (x.high_water == 0 && x.writes_in_flight == 0) {
      map_.AddCopy(static_cast<uint64_t>(e), to);  // nothing written yet: nothing to copy
      continue;
    }
    auto* copy = new (std::nothrow) Copy;
    if (copy == nullptr) return;
    copy->extent = static_cast<uint64_t>(e);
    copy->from = from;
    copy->to = static_cast<uint8_t>(to);
    x.copying = true;
    copies_.push_back(copy);
    if (x.writes_in_flight == 0) StartCopyRead(copy);
  }
}

void ReplicatedStore::WriteSettled(uint64_t extent) {
  Copy* copy = CopyOf(extent);
  if (copy != nullptr && copy->phase == Copy::Phase::kWaitingForWrites && map_.At(extent).writes_in_flight == 0) {
    StartCopyRead(copy);
  }
}

void ReplicatedStore::StartCopyRead(Copy* copy) {
  copy->pages = map_.At(copy->extent).high_water;
  if (stop_seen_) return EndCopy(copy, false);
  if (copy->pages == 0) return EndCopy(copy, true);  // its first write failed: nothing to copy
  Buffer* b = Buffer::New(uint64_t{copy->pages} * kPageSize);
  ChildOp* c = b != nullptr ? NewChild(ChildOp::Purpose::kCopyRead, *servers_[copy->from],
                                       copy->extent * kExtentPages, copy->pages, b)
                            : nullptr;
  if (b != nullptr) b->Unref();
  if (c == nullptr) return EndCopy(copy, false);
  c->copy = copy;
  copy->child = c;
  copy->phase = Copy::Phase::kReading;
  Send(c);
}

void ReplicatedStore::OnCopyDone(Copy* copy, ChildOp* c) {
  copy->child = nullptr;
  if (c->io.error != 0 || stop_seen_) {
    if (c->io.error != 0) {
      if (copy->phase == Copy::Phase::kWriting) servers_[copy->to]->health.OnWriteRefused(NowNs());
      PAGER_LOG_WARN_EVERY(10, "copying extent %lu from %s to %s failed: %s; retried later",
                           static_cast<unsigned long>(copy->extent), servers_[copy->from]->name.c_str(),
                           servers_[copy->to]->name.c_str(), strerror(c->io.error));
    }
    return EndCopy(copy, false);
  }
  if (copy->phase == Copy::Phase::kReading) {
    ChildOp* w = NewChild(ChildOp::Purpose::kCopyWrite, *servers_[copy->to], c->io.slot, c->io.pages, c->buf);
    if (w == nullptr) return EndCopy(copy, false);
    w->copy = copy;
    copy->child = w;
    copy->phase = Copy::Phase::kWriting;
    Send(w);
    return;
  }
  stats_->rereplicated_bytes.fetch_add(uint64_t{copy->pages} * kPageSize, std::memory_order_relaxed);
  EndCopy(copy, true);
}

void ReplicatedStore::EndCopy(Copy* copy, bool copied) {
  if (copy->child != nullptr) Orphan(copy->child);
  if (copied) map_.AddCopy(copy->extent, copy->to);
  map_.At(copy->extent).copying = false;
  for (size_t i = 0; i < copies_.size(); i++) {
    if (copies_[i] == copy) {
      copies_.erase(copies_.begin() + static_cast<long>(i));
      break;
    }
  }
  delete copy;
  next_copy_scan_ns_ = copied ? 0 : NowNs() + kRescanNs;
}

}  // namespace pager::replicated

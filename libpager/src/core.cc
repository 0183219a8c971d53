// PagerCore's shared pieces: construction, ops, queues, admission, and the
// page lifecycle events (discard, relocate).
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "checksum.h"
#include "core.h"
#include "log.h"

namespace pager {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

PagerCore::PagerCore(const Config& cfg, Uffd uffd, std::optional<Uffd> staging, Frames frames,
                     std::unique_ptr<Reserve> reserve, Store* store, StatsBlock* stats)
    : cfg_(cfg),
      uffd_(std::move(uffd)),
      staging_(std::move(staging)),
      frames_(std::move(frames)),
      reserve_(std::move(reserve)),
      store_(store),
      stats_(stats),
      slots_(cfg.swap_max / kPageSize),
      limit_(cfg.memory_limit / kPageSize),
      high_wm_(static_cast<uint64_t>(static_cast<double>(limit_) * cfg.high_watermark)),
      low_wm_(static_cast<uint64_t>(static_cast<double>(limit_) * cfg.low_watermark)),
      inactive_target_(std::max<uint64_t>(
          64, static_cast<uint64_t>(static_cast<double>(limit_) * cfg.inactive_ratio))),
      max_run_(std::min<uint32_t>(kMaxRun, std::max<uint32_t>(1, store->max_pages_per_op()))),
      zeros_(kMaxRun * kPageSize) {
  zero_checksum_ = PageChecksum(zeros_.data());
  stats_->Set(stats_->limit_pages, limit_);
  stats_->Set(stats_->reserve_bytes, reserve_->total_pages() * kPageSize);
}

Op* PagerCore::NewOp(StoreOp::Kind kind, uint32_t slot, uint32_t pages, std::byte* buf) {
  uint32_t id;
  if (!free_ops_.empty()) {
    id = free_ops_.back();
    free_ops_.pop_back();
  } else {
    id = static_cast<uint32_t>(ops_.size());
    ops_.push_back(std::make_unique<Op>());
  }
  Op* op = ops_[id].get();
  op->io = StoreOp{};
  op->io.kind = kind;
  op->io.slot = slot;
  op->io.pages = pages;
  op->io.buf = buf;
  op->io.id = id;
  op->t0_ns = 0;
  op->fault_page = ~uint64_t{0};
  op->retries = 0;
  return op;
}

void PagerCore::FreeOp(Op* op) {
  reserve_->FreePages(op->io.buf, op->io.pages);
  free_ops_.push_back(op->io.id);
}

void PagerCore::Submit(Op* op) {
  ops_in_flight_++;
  if (op->io.kind == StoreOp::Kind::kRead) {
    stats_->Add(stats_->store_reads);
  } else {
    stats_->Add(stats_->store_writes);
  }
  store_->Submit(&op->io);
}

void PagerCore::FreeSlot(PageEntry& e) {
  if (!e.has_slot()) return;
  slots_.Free(e.slot());
  e.clear_slot();
}

void PagerCore::PushActive(uint64_t page, PageEntry& e) {
  if (e.queued_active()) return;
  e.set_queued_active(true);
  active_q_.push_back(page);
}

void PagerCore::PushInactive(uint64_t page, PageEntry& e) {
  if (e.queued_inactive()) return;
  e.set_queued_inactive(true);
  inactive_q_.push_back(page);
}

void PagerCore::SetResident(uint64_t page, PageEntry& e, bool referenced) {
  e.set_state(PageState::kResident);
  e.set_referenced(referenced);
  e.set_drop_pending(false);
  PushActive(page, e);
}

bool PagerCore::FillFrame(uint32_t frame, const std::byte* src) {
  if (staging_) {
    // The frame is a hole in a uffd-registered area: a plain store would
    // fault to a uffd nobody reads.
    return staging_->Copy(frames_.addr(frame), src, 1).done == 1;
  }
  memcpy(frames_.at(frame), src, kPageSize);
  return true;
}

bool PagerCore::throttled() const { return !draining_ && reserve_->BelowHalf(); }

bool PagerCore::eviction_paused() const {
  return NowNs() < paused_until_ns_ || slots_.full();
}

uint32_t PagerCore::Admit(uint32_t want) const {
  if (draining_) return want;
  if (throttled()) return 0;
  // While the store refuses writes nothing can be evicted: the limit turns
  // soft rather than hanging the program (stats show eviction_paused).
  if (eviction_paused() || stuck_) return want;
  if (resident_ >= limit_) return 0;
  return static_cast<uint32_t>(std::min<uint64_t>(want, limit_ - resident_));
}

bool PagerCore::InPendingDrop(uint64_t page) const {
  for (const PendingDrop& d : own_drops_) {
    if (page >= d.first && page < d.first + d.pages) return true;
  }
  return false;
}

bool PagerCore::TakeOwnDrop(uint64_t first, uint64_t pages) {
  for (PendingDrop& d : own_drops_) {
    if (!d.remove_seen && d.first == first && d.pages == pages) {
      d.remove_seen = true;
      return true;
    }
  }
  return false;
}

void PagerCore::Discard(uint64_t first, uint64_t pages) {
  table_.ForRange(first, pages, [this](uint64_t page, PageEntry& e) {
    switch (e.state()) {
      case PageState::kResident:
        resident_--;
        FreeSlot(e);
        break;
      case PageState::kReading:
        // Its frame was promised; the completion skips it, so it installs
        // nothing and wakes no one. Threads asleep on the swap-in are woken
        // here: they re-fault and find the page empty (zeros), or gone.
        resident_--;
        FreeSlot(e);
        uffd_.Wake(PageTable::AddrOf(page), 1);
        break;
      case PageState::kInactive:
        frames_.Release(e.aux());
        resident_--;
        inactive_--;
        FreeSlot(e);
        break;
      case PageState::kWriting:
        e.clear_slot();  // the op owns the slot until it completes
        break;
      case PageState::kSwapped:
        swapped_--;
        FreeSlot(e);
        break;
      case PageState::kEmpty:
      case PageState::kPoisoned:
        break;
    }
    // Queue bits stay: the queues still hold the page and drop it lazily.
    bool qa = e.queued_active(), qi = e.queued_inactive();
    e = PageEntry();
    e.set_queued_active(qa);
    e.set_queued_inactive(qi);
  });
}

void PagerCore::Relocate(uint64_t from, uint64_t to, uint64_t pages) {
  Discard(to, pages);  // whatever was there is gone (mremap replaced it)
  for (uint64_t i = 0; i < pages; i++) {
    PageEntry* src = table_.Find(from + i);
    if (src == nullptr || src->state() == PageState::kEmpty) continue;
    PageEntry moved = *src;
    PageEntry left;
    left.set_queued_active(src->queued_active());
    left.set_queued_inactive(src->queued_inactive());
    *src = left;  // the queues' entries for `from` find it empty and drop it

    PageEntry& dst = table_.At(to + i);
    bool qa = dst.queued_active(), qi = dst.queued_inactive();
    dst = moved;
    dst.set_queued_active(qa);
    dst.set_queued_inactive(qi);
    switch (moved.state()) {
      case PageState::kResident: PushActive(to + i, dst); break;
      case PageState::kInactive: PushInactive(to + i, dst); break;
      case PageState::kReading:
      case PageState::kWriting: {
        Op* op = ops_[moved.aux()].get();
        for (uint32_t k = 0; k < op->io.pages; k++) {
          if (op->pages[k] == from + i) op->pages[k] = to + i;
        }
        if (op->fault_page == from + i) op->fault_page = to + i;
        break;
      }
      default: break;
    }
  }
  table_.Trim(from, pages);
}

void PagerCore::PublishStats() {
  StatsBlock& s = *stats_;
  s.Set(s.resident_pages, resident_);
  s.Set(s.inactive_pages, inactive_);
  s.Set(s.swapped_pages, swapped_);
  s.Set(s.slots_in_use, slots_.in_use());
  reserve_->NoteLevel();
  s.Set(s.reserve_free_bytes, reserve_->free_pages() * kPageSize);
  s.Set(s.reserve_min_free_bytes, reserve_->min_free_pages() * kPageSize);
  s.Set(s.eviction_paused, eviction_paused() ? 1 : 0);
  if (const ReserveArena* a = reserve_->arena()) {
    s.Set(s.reserve_arena_bytes, a->used_pages() * kPageSize);
    s.Set(s.reserve_overflows, a->overflows());
    static std::atomic<bool> warned{false};  // the arena is process-wide
    if (a->overflows() > 0 && !warned.exchange(true)) {
      PAGER_LOG_WARN("reserve overflow: the reserve arena's %llu KiB are in use; allocations on the pager's "
                     "threads now come from ordinary memory (raise LIBPAGER_RESERVE)",
                     static_cast<unsigned long long>(a->total_pages() * kPageSize >> 10));
    }
  }
}

}  // namespace pager

// PagerCore's shared pieces: construction, ops, queues, admission, the
// regions, and the page lifecycle events (remove, unmap, remap).
#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "core.h"
#include "log.h"

namespace pager {

void PagerCore::StartWorkers(std::function<void(Op*)> done) {
  sealer_.Start(reserve_->arena(), std::move(done));
  cow_.Start();
}

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

PagerCore::PagerCore(const Config& cfg, Uffd uffd, Frames frames, std::unique_ptr<Reserve> reserve,
                     std::unique_ptr<PageCodec> codec, Store* store, StatsBlock* stats)
    : cfg_(cfg),
      uffd_(std::move(uffd)),
      frames_(std::move(frames)),
      reserve_(std::move(reserve)),
      store_(store),
      stats_(stats),
      slots_(cfg.swap_max / kPageSize),
      codec_(std::move(codec)),
      sealer_(frames_, *codec_),
      limit_(cfg.memory_limit / kPageSize),
      high_wm_(static_cast<uint64_t>(static_cast<double>(limit_) * cfg.high_watermark)),
      low_wm_(static_cast<uint64_t>(static_cast<double>(limit_) * cfg.low_watermark)),
      inactive_target_(std::max<uint64_t>(
          64, static_cast<uint64_t>(static_cast<double>(limit_) * cfg.inactive_ratio))),
      max_run_(std::min<uint32_t>(kMaxRun, std::max<uint32_t>(1, store->max_pages_per_op()))),
      zeros_(kMaxRun * kPageSize),
      retry_reads_(PoolAllocator<Op*>(reserve_->arena())),
      ops_(PoolAllocator<Op*>(reserve_->arena())),
      free_ops_(PoolAllocator<uint32_t>(reserve_->arena())),
      // Prefetch at most an eighth of the limit ahead: a stream must not
      // push out what the program will touch before it gets there.
      prefetch_(std::min(cfg.readahead_pages, max_run_),
                static_cast<uint32_t>(std::min<uint64_t>(cfg.prefetch_pages, limit_ / 8))) {
  scratch_.resize(kPageSize);
  stats_->Set(stats_->limit_pages, limit_);
  stats_->Set(stats_->reserve_bytes, reserve_->total_pages() * kPageSize);
  stats_->Set(stats_->encrypted, codec_->encrypting() ? 1 : 0);
}

PagerCore::~PagerCore() {
  for (Op* op : ops_) {
    if (op == nullptr) continue;
    op->~Op();
    ReserveArena::Free(op);
  }
}

// ---- ops ----------------------------------------------------------------

Op* PagerCore::NewOp(StoreOp::Kind kind, uint32_t slot, uint32_t pages, std::byte* buf) {
  uint32_t id;
  if (!free_ops_.empty()) {
    id = free_ops_.back();
    free_ops_.pop_back();
  } else {
    id = static_cast<uint32_t>(ops_.size());
    ops_.push_back(nullptr);
  }
  if (ops_[id] == nullptr) {
    void* mem = ReserveArena::Alloc(reserve_->arena(), sizeof(Op));
    if (mem == nullptr) throw std::bad_alloc();
    ops_[id] = new (mem) Op();
  }
  Op* op = ops_[id];
  op->io = StoreOp{};
  op->io.kind = kind;
  op->io.slot = slot;
  op->io.pages = pages;
  op->io.buf = buf;
  op->io.id = id;
  op->stage = Op::Stage::kIo;
  op->t0_ns = 0;
  op->fault_page = ~uint64_t{0};
  op->gone_since_ns = 0;
  op->stream = -1;
  op->retries = 0;
  return op;
}

void PagerCore::FreeOp(Op* op, bool with_buffer) {
  if (with_buffer) reserve_->FreePages(op->io.buf, op->io.pages);
  const uint32_t id = op->io.id;
  // An Op is ~14 KiB of the reserve arena, and the arena counts in the
  // reserve's level: kept after a burst of hundreds in flight, they held the
  // pool below half for good, and the throttle with it. A few stay for reuse.
  if (free_ops_.size() >= kSpareOps) {
    op->~Op();
    ReserveArena::Free(op);
    ops_[id] = nullptr;
  }
  free_ops_.push_back(id);
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

// ---- queues and page state ------------------------------------------------

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
  PushActive(page, e);
}

// Drops the queue entries of unmapped pages. Their queue bits were cleared
// when the pages were unmapped; a page of a region adopted later at the same
// address must not meet its predecessor's entry (the page would be on a
// queue twice). Linear in the queues; called before a region is added, only
// when something was unmapped since the last purge.
void PagerCore::PurgeQueues() {
  auto keep_if = [this](MetaDeque<uint64_t>& q, bool active) {
    MetaDeque<uint64_t> kept;
    for (uint64_t page : q) {
      const PageEntry* e = table_.Find(page);
      if (e != nullptr && (active ? e->queued_active() : e->queued_inactive())) kept.push_back(page);
    }
    q.swap(kept);
  };
  keep_if(active_q_, true);
  keep_if(inactive_q_, false);
  stale_entries_ = 0;
}

bool PagerCore::throttled() const {
  // Only write-back (and the reads and seal batches in flight) refills the
  // pool: with none in flight, nothing would ever lift the throttle, and the
  // program's threads would sleep forever. The pool is then held by the
  // arena's live allocations; faults go on, as the kernel's PFMEMALLOC
  // throttle gives up after its timeout.
  return !draining_ && ops_in_flight_ > 0 && reserve_->BelowHalf();
}

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

void PagerCore::Forget(uint64_t page, PageEntry& e) {
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
      reads_in_flight_pages_--;
      FreeSlot(e);
      uffd_.Wake(PageTable::AddrOf(page), 1);
      break;
    case PageState::kInactive:
      frames_.Release(e.aux());
      resident_--;
      inactive_--;
      FreeSlot(e);
      break;
    case PageState::kSealing:
      // Its batch keeps the frame, and gives it back when it returns.
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
}

void PagerCore::Discard(uint64_t first, uint64_t pages, bool unmapped) {
  table_.ForRange(first, pages, [&](uint64_t page, PageEntry& e) {
    Forget(page, e);
    bool qa = e.queued_active(), qi = e.queued_inactive();
    e = PageEntry();
    if (unmapped) {
      // The queues keep their entries, now stale, until PurgeQueues: the
      // chunk can go (Trim), the address can be reused.
      stale_entries_ += qa + qi;
    } else {
      // Same address, same region: the entries stay valid, dropped lazily.
      e.set_queued_active(qa);
      e.set_queued_inactive(qi);
    }
  });
}

// ---- regions ----------------------------------------------------------------

Status PagerCore::AddRegion(uintptr_t addr, uint64_t len, bool fresh) {
  // A mapping just made cannot be one the pager already holds: state still
  // there is an earlier occupant's, whose UNMAP or REMAP (from another
  // thread, queued after that thread dropped the mmap lock) is on its way.
  if (fresh && regions_.Overlaps(addr, len)) SetAside(PageTable::PageOf(addr), len / kPageSize);
  if (stale_entries_ > 0) PurgeQueues();
  // Paging works on 4 KiB pages: a huge page would be one 2 MiB unit to the
  // kernel and unmovable as pages by UFFDIO_MOVE.
  madvise(reinterpret_cast<void*>(addr), len, MADV_NOHUGEPAGE);
  Status s = uffd_.Register(reinterpret_cast<void*>(addr), len);
  if (!s.ok()) return s;
  regions_.Add(addr, len);
  // Memory adopted in use: its present pages are resident from now on (and
  // evictable), not memory the limit cannot see.
  unsigned char vec[4096];
  for (uint64_t off = 0; off < len; off += sizeof vec * kPageSize) {
    const uint64_t n = std::min<uint64_t>(sizeof vec, (len - off) / kPageSize);
    if (mincore(reinterpret_cast<void*>(addr + off), n * kPageSize, vec) != 0) break;
    for (uint64_t i = 0; i < n; i++) {
      if (!(vec[i] & 1)) continue;
      const uint64_t page = PageTable::PageOf(addr + off) + i;
      PageEntry* e = table_.Create(page);
      if (e == nullptr || e->state() != PageState::kEmpty) continue;
      SetResident(page, *e, true);
      resident_++;
    }
  }
  return Status();
}

Status PagerCore::UnmapRegion(uintptr_t addr, uint64_t len) {
  if (!regions_.Covers(addr, len)) {
    return Status::Error("Unmap: [" + std::to_string(addr) + ", +" + std::to_string(len) +
                         ") is not inside a paged region");
  }
  // Unregistered first, so that munmap raises no event this thread would
  // have to read before munmap returns.
  Status s = uffd_.Unregister(reinterpret_cast<void*>(addr), len);
  if (!s.ok()) return s;
  HandleUnmap(addr, addr + len);
  if (munmap(reinterpret_cast<void*>(addr), len) != 0) return Status::FromErrno("munmap", errno);
  return Status();
}

void PagerCore::HandleRemove(uintptr_t start, uintptr_t end) {
  Discard(PageTable::PageOf(start), (end - start) / kPageSize, false);
}

template <class Fn>
void PagerCore::ForRangeAndHeld(uint64_t first, uint64_t pages, Fn&& fn) {
  uint64_t page = first;
  const uint64_t end = first + pages;
  while (page < end) {
    // The held range that starts earliest at or after `page`, or covers it.
    size_t best = held_.size();
    for (size_t i = 0; i < held_.size(); i++) {
      const Held& h = held_[i];
      if (h.first + h.pages <= page || h.first >= end) continue;
      if (best == held_.size() || h.first < held_[best].first) best = i;
    }
    if (best == held_.size()) {
      fn(page, end - page, kNotHeld);
      return;
    }
    Held h = held_[best];
    if (h.first > page) {
      fn(page, h.first - page, kNotHeld);
      page = h.first;
    }
    const uint64_t stop = std::min(end, h.first + h.pages);
    const uint64_t n = stop - page;
    fn(page, n, h.at + (page - h.first));
    // What the event claimed leaves the record; the rest waits on.
    held_.erase(held_.begin() + static_cast<ptrdiff_t>(best));
    if (h.first < page) held_.push_back(Held{h.first, page - h.first, h.at, h.since_ns});
    if (stop < h.first + h.pages) {
      held_.push_back(Held{stop, h.first + h.pages - stop, h.at + (stop - h.first), h.since_ns});
    }
    page = stop;
  }
}

void PagerCore::HandleUnmap(uintptr_t start, uintptr_t end) {
  const uint64_t first = PageTable::PageOf(start), pages = (end - start) / kPageSize;
  // The UNMAP of the old range that follows a move's REMAP: what was there
  // has moved already, and what is there now (another thread's mapping,
  // made between the two events) is not this event's to drop.
  for (size_t i = 0; i < moved_away_.size(); i++) {
    if (moved_away_[i].first == first && moved_away_[i].pages == pages) {
      moved_away_.erase(moved_away_.begin() + static_cast<ptrdiff_t>(i));
      return;
    }
  }
  // The part set aside for this late UNMAP is dropped there; the range
  // itself belongs to its new occupant.
  ForRangeAndHeld(first, pages, [&](uint64_t from, uint64_t n, uint64_t held) {
    if (held != kNotHeld) {
      DropHeld(held, n);
      return;
    }
    Discard(from, n, true);
    table_.Trim(from, n);
    regions_.Remove(PageTable::AddrOf(from), n * kPageSize);
  });
}

void PagerCore::MovePage(uint64_t page, uint64_t dst_page, bool queue) {
  PageEntry& src = table_.At(page);
  PageEntry moved = src;
  stale_entries_ += src.queued_active() + src.queued_inactive();
  src = PageEntry();
  if (moved.state() == PageState::kEmpty) return;
  moved.set_queued_active(false);
  moved.set_queued_inactive(false);
  PageEntry* dst = table_.Create(dst_page);
  if (dst == nullptr) {
    // No memory for the table: the page's content cannot be followed.
    // SIGBUS on touch, never a silent zero page.
    PAGER_LOG_ERROR("mremap: out of memory for the page table; page at %#lx poisoned",
                    static_cast<unsigned long>(PageTable::AddrOf(dst_page)));
    Forget(page, moved);
    if (!IsHeld(dst_page)) (void)uffd_.Poison(PageTable::AddrOf(dst_page), 1);
    return;
  }
  *dst = moved;
  switch (moved.state()) {
    case PageState::kResident:
      if (queue) PushActive(dst_page, *dst);
      break;
    case PageState::kInactive:
      if (queue) PushInactive(dst_page, *dst);
      break;
    case PageState::kReading:
    case PageState::kWriting:
    case PageState::kSealing: {
      Op* op = ops_[moved.aux()];
      for (uint32_t k = 0; k < op->io.pages; k++) {
        if (op->pages[k] == page) op->pages[k] = dst_page;
      }
      if (op->fault_page == page) op->fault_page = dst_page;
      break;
    }
    default: break;
  }
}

void PagerCore::SetAside(uint64_t first, uint64_t pages) {
  bool any = false;
  table_.ForRange(first, pages, [&](uint64_t, PageEntry& e) { any = any || e.state() != PageState::kEmpty; });
  if (!any) return;
  const uint64_t at = next_held_page_;
  next_held_page_ += pages;
  table_.ForRange(first, pages, [&](uint64_t page, PageEntry&) { MovePage(page, at + (page - first), false); });
  table_.Trim(first, pages);
  held_.push_back(Held{first, pages, at, NowNs()});
  // Threads of the old occupant asleep on a swap-in there would wait for an
  // install that now happens nowhere: they retry, and meet the new mapping.
  uffd_.Wake(PageTable::AddrOf(first), pages * kPageSize);
}

void PagerCore::HandleRemap(uintptr_t from_addr, uintptr_t to_addr, uint64_t len) {
  const uint64_t from = PageTable::PageOf(from_addr), to = PageTable::PageOf(to_addr), pages = len / kPageSize;
  // A registered range at the target was unmapped by this very mremap, and
  // its UNMAP was read before this REMAP (UffdContract.MremapOntoARegisteredRangeRaisesUnmapOfItBeforeRemap);
  // state the pager still holds there is an earlier occupant's whose own
  // UNMAP or REMAP, from another thread, is still on its way: set aside.
  if (regions_.Overlaps(to_addr, len)) SetAside(to, pages);
  Discard(to, pages, true);
  // The moved pages are queued at their new addresses: no stale entry of an
  // earlier mapping there may remain (core.h: queue invariants).
  if (stale_entries_ > 0) PurgeQueues();
  ForRangeAndHeld(from, pages, [&](uint64_t src, uint64_t n, uint64_t held) {
    const uint64_t dst = to + (src - from);
    const uint64_t at = held != kNotHeld ? held : src;
    table_.ForRange(at, n, [&](uint64_t page, PageEntry&) { MovePage(page, dst + (page - at), true); });
    table_.Trim(at, n);
    // The range set aside for this REMAP is its new occupant's: it stays.
    if (held == kNotHeld) regions_.Remove(PageTable::AddrOf(src), n * kPageSize);
  });
  regions_.Add(to_addr, len);
  // The kernel follows a move's REMAP with an UNMAP of the old range
  // (UffdContract.MremapMoveRaisesRemapWithTheOldLengthThenUnmapOfTheOldRange):
  // by then another thread may have mapped something there.
  moved_away_.push_back(Held{from, pages, 0, NowNs()});
  // Threads asleep on a swap-in at the old address were waiting for an
  // install there that will now happen at the new one: wake them to re-fault
  // (UffdContract.FaulterAsleepAtAnAddressMremappedAwayIsWokenOnlyByWakeAtTheOldAddress).
  uffd_.Wake(from_addr, pages);
}

void PagerCore::ExpireHeld(uint64_t now) {
  // A REMAP with MREMAP_DONTUNMAP is followed by no UNMAP
  // (UffdContract.MremapDontunmapRaisesRemapAndKeepsTheOldRangeRegistered).
  std::erase_if(moved_away_, [&](const Held& h) { return now - h.since_ns >= kHeldNs; });
  for (size_t i = 0; i < held_.size();) {
    const Held h = held_[i];
    if (now - h.since_ns < kHeldNs) {
      i++;
      continue;
    }
    // The event this state was set aside for never came: a case the design
    // did not foresee. Said, and the state dropped (its range is gone).
    PAGER_LOG_ERROR("state of %llu pages set aside at %#lx waited %llu s for its UNMAP or REMAP; dropped",
                    static_cast<unsigned long long>(h.pages), static_cast<unsigned long>(PageTable::AddrOf(h.first)),
                    static_cast<unsigned long long>(kHeldNs / 1'000'000'000ull));
    held_.erase(held_.begin() + static_cast<ptrdiff_t>(i));
    DropHeld(h.at, h.pages);
  }
}

void PagerCore::DropHeld(uint64_t at, uint64_t pages) {
  Discard(at, pages, true);
  table_.Trim(at, pages);
}

Result<uint64_t> PagerCore::SetPinned(uintptr_t addr, uint64_t len, bool on) {
  if (!regions_.Covers(addr, len)) {
    return Status::Error((on ? "Pin: [" : "Unpin: [") + std::to_string(addr) + ", +" + std::to_string(len) +
                         ") is not inside a paged region");
  }
  uint64_t away = 0;
  const uint64_t first = PageTable::PageOf(addr), pages = len / kPageSize;
  for (uint64_t page = first; page < first + pages; page++) {
    PageEntry* e = on ? table_.Create(page) : table_.Find(page);
    if (e == nullptr) {
      away += on;
      continue;
    }
    if (!on) {
      // Back on the clock: it is evictable again.
      if (e->pinned() && e->state() == PageState::kResident) PushActive(page, *e);
      e->set_pinned(false);
      continue;
    }
    // Only a page in memory now is pinned: one on its way out (inactive,
    // sealing, writing) or away would still be away when the kernel writes
    // to it from a context that cannot fault it in (Pager::PinThisThread).
    if (e->state() == PageState::kResident) {
      e->set_pinned(true);
    } else {
      away++;
    }
  }
  return away;
}

void PagerCore::NoteFaultAddress(uintptr_t addr) {
  if (regions_.Covers(addr, 1)) return;
  // A grown tail's addresses may have been unmapped before: no stale queue
  // entry may meet its pages.
  if (regions_.LearnFrom(addr) > 0 && stale_entries_ > 0) PurgeQueues();
}

void PagerCore::UnregisterAll() {
  regions_.ForEach([this](uintptr_t start, uint64_t len) { (void)uffd_.Unregister(reinterpret_cast<void*>(start), len); });
}

void PagerCore::PublishStats() {
  StatsBlock& s = *stats_;
  s.Set(s.resident_pages, resident_);
  s.Set(s.inactive_pages, inactive_);
  s.Set(s.swapped_pages, swapped_);
  s.Set(s.slots_in_use, slots_.in_use());
  s.Set(s.mapped_bytes, regions_.bytes());
  s.Set(s.metadata_bytes, MetaBytes());
  reserve_->NoteLevel();
  s.Set(s.reserve_free_bytes, reserve_->free_pages() * kPageSize);
  s.Set(s.reserve_min_free_bytes, reserve_->min_free_pages() * kPageSize);
  s.Set(s.eviction_paused, eviction_paused() ? 1 : 0);
  if (const ReserveArena* a = reserve_->arena()) {
    s.Set(s.reserve_arena_bytes, a->used_pages() * kPageSize);
    s.Set(s.reserve_overflows, a->overflows());
    if (a->overflows() > 0 && !warned_overflow_) {
      warned_overflow_ = true;
      PAGER_LOG_WARN("reserve overflow: the reserve arena's %llu KiB are in use; allocations on the pager's "
                     "threads now come from ordinary memory (raise LIBPAGER_RESERVE)",
                     static_cast<unsigned long long>(a->total_pages() * kPageSize >> 10));
    }
  }
}

}  // namespace pager

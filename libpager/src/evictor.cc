// Eviction: CLOCK over mapped pages, an inactive stage, and clustered
// write-back.
//
// Linux offers no way to read a page's accessed bit from user space, so
// access is observed the way the kernel's own LRU observes refaults:
//  1. the clock hand passes over mapped pages in fault order; a page faulted
//     in since its last pass (referenced) gets a second chance;
//  2. an unreferenced page is deactivated: moved out of its region into an
//     inactive frame (UFFDIO_MOVE, one ioctl per run; 1.15 us/page here),
//     still in memory;
//  3. a touch of an inactive page is a cheap re-install (no I/O) and marks it
//     referenced: this is the access information;
//  4. pages reaching the head of the inactive FIFO untouched are written
//     back, unless their checksum shows them clean (the slot they came from
//     still holds these bytes: dropped with no I/O) or all zeros (dropped to
//     an empty page).
//
// The eviction race: a thread writing a page while it is evicted. The move
// is atomic under the page table lock: the write lands before the move (and
// is moved with the page) or faults after it (and is served from the frame).
// The same lock orders a move against munmap, mremap and MADV_DONTNEED of
// the page: whichever comes second finds the page gone, and the event that
// follows tells the pager (see DeactivateRun). This is why UFFDIO_MOVE is
// required (docs/design.md, "Why MOVE").
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core.h"
#include "log.h"

namespace pager {
bool PagerCore::Evict(uint32_t budget) {
  if (draining_) return false;  // shutdown brings everything back in
  if (resident_ > high_wm_ || waiting_for_memory) evicting_ = true;
  if (!evicting_) return false;
  const uint64_t now = NowNs();
  if (now < next_evict_ns_) return false;  // backing off: nothing was evictable
  const uint64_t target = cfg_.policy == EvictionPolicy::kFifo ? 0 : inactive_target_;
  uint32_t work = 0;
  mm_changing_ = false;
  while (work < budget) {
    // Pages in a batch at the seal worker leave memory when it returns:
    // counting them would evict past the watermark (and the hot set with it),
    // and faults waiting for memory get it from those batches too.
    if (resident_ - sealing_pages_ <= low_wm_ && (!waiting_for_memory || sealing_pages_ > 0)) {
      evicting_ = false;
      return false;
    }
    // Pages in a batch at the seal worker are on their way out: the stage
    // holds the others.
    const uint64_t staged = inactive_ - sealing_pages_;
    uint32_t deactivated = staged < target + max_run_ ? Deactivate(max_run_) : 0;
    // Pages get their time in the inactive stage: only what exceeds its
    // target is written back, unless nothing more can be deactivated.
    const uint64_t now_staged = inactive_ - sealing_pages_;
    uint64_t excess = now_staged > target ? now_staged - target : 0;
    uint32_t batch = deactivated == 0 ? max_run_ : static_cast<uint32_t>(std::min<uint64_t>(max_run_, excess));
    uint32_t written = batch > 0 ? WriteBack(batch) : 0;
    if (deactivated + written == 0) {
      // Nothing moved, nothing staged, and no I/O in flight (a write frees
      // a frame, a read makes a page evictable): what is resident cannot be
      // evicted (read-only or mlocked mappings refuse UFFDIO_MOVE). Waiting
      // faults would wait forever, so the limit turns soft until eviction
      // makes progress again. Said once; the stats count every time. A move
      // refused with EAGAIN is not that: the mm was changing (an event not
      // yet read), and the loop tries again in 10 ms.
      // With no I/O in flight to make room and no event pending, what is
      // resident was refused; it may move later (a fork's pages made
      // exclusive again, a lock or protection lifted): retry, backing off
      // from 10 ms to 1 s, so that an unevictable mapping costs little.
      if (ops_in_flight_ == 0 && !mm_changing_) {
        evict_backoff_ns_ = std::clamp<uint64_t>(evict_backoff_ns_ * 2, 10'000'000ull, 1'000'000'000ull);
        next_evict_ns_ = now + evict_backoff_ns_;
      }
      if (!stuck_ && waiting_for_memory && inactive_ == 0 && ops_in_flight_ == 0 && !mm_changing_) {
        stuck_ = true;
        stats_->Add(stats_->limit_overruns);
        if (!warned_stuck_) {
          warned_stuck_ = true;
          PAGER_LOG_WARN("no resident page can be evicted (read-only or locked mappings?): "
                         "going over the limit rather than waiting forever (counted in limit_overruns)");
        }
      }
      return false;  // waiting on I/O or frames
    }
    stuck_ = false;
    evict_backoff_ns_ = 0;
    work += deactivated + written;
  }
  return true;
}

uint32_t PagerCore::Deactivate(uint32_t batch) {
  uint64_t cand[kMaxRun];
  uint32_t ncand = 0;
  batch = std::min(batch, kMaxRun);
  const bool clock = cfg_.policy == EvictionPolicy::kClock;
  // Each page is passed at most twice: once to clear its bit, once to take it.
  size_t budget = active_q_.size() * 2;
  while (ncand < batch && budget-- > 0 && !active_q_.empty()) {
    uint64_t page = active_q_.front();
    active_q_.pop_front();
    PageEntry* e = table_.Find(page);
    if (e == nullptr || !e->queued_active()) {
      // An unmapped page's entry (core.h: queue invariants).
      if (stale_entries_ > 0) stale_entries_--;
      continue;
    }
    // A pinned page leaves the clock: Unpin puts it back.
    if (e->state() != PageState::kResident || e->pinned()) {
      e->set_queued_active(false);
      continue;
    }
    if (clock && e->referenced()) {
      e->set_referenced(false);
      active_q_.push_back(page);
      continue;
    }
    e->set_queued_active(false);
    cand[ncand++] = page;
  }
  std::sort(cand, cand + ncand);
  uint32_t done = 0;
  for (uint32_t i = 0; i < ncand;) {
    uint32_t j = i + 1;
    while (j < ncand && cand[j] == cand[j - 1] + 1) j++;
    done += DeactivateRun(cand[i], static_cast<uint32_t>(j - i));
    i = j;
  }
  return done;
}

uint32_t PagerCore::DeactivateRun(uint64_t first, uint32_t pages) {
  uint32_t i = 0, done = 0;
  uint32_t try_len = pages;  // pages tried at once: back to 1 after a refusal
  while (i < pages) {
    SlotAllocator::Run fr = frames_.Allocate(std::min(pages - i, try_len));
    if (fr.count == 0) break;  // every frame is taken: write-back frees some
    UffdRun r = frames_.staging().Move(frames_.addr(fr.first), PageTable::AddrOf(first + i), fr.count);
    for (uint32_t k = 0; k < r.done; k++) {
      PageEntry& e = table_.At(first + i + k);
      e.set_state(PageState::kInactive);
      e.set_aux(fr.first + k);
      e.set_referenced(false);
      PushInactive(first + i + k, e);
    }
    for (uint32_t k = static_cast<uint32_t>(r.done); k < fr.count; k++) {
      if (k == r.done && r.error == EEXIST) {
        frames_.ReleaseHeld(fr.first + k);  // MOVE refuses a destination holding a page
      } else {
        frames_.Unuse(fr.first + k);
      }
    }
    inactive_ += r.done;
    done += r.done;
    stats_->Add(stats_->deactivations, r.done);
    i += r.done;
    if (r.stop == UffdStop::kNone) {
      try_len = std::min(pages, try_len * 2);
      continue;
    }
    if (r.stop == UffdStop::kMmChanging) {  // after the events
      mm_changing_ = true;
      break;
    }
    PageEntry& e = table_.At(first + i);
    const uintptr_t addr = PageTable::AddrOf(first + i);
    unsigned char in_core;
    if (r.stop == UffdStop::kGone && mincore(reinterpret_cast<void*>(addr), kPageSize, &in_core) == 0) {
      // Mapped, but not present: dropped without an event we will read
      // (LIBPAGER_DISABLE=remove), or moved by mremap with MREMAP_DONTUNMAP,
      // which leaves the old range mapped and empty, its REMAP not yet read
      // (UffdContract.MoveFromARangeMremappedAway*). Either way nothing is
      // here to keep: the page reads as zeros at this address, and a moved
      // page, present at its new address, only goes uncounted.
      Discard(first + i, 1, false);
    } else {
      if (r.stop == UffdStop::kGone) {
        // Not mapped at all: munmap or mremap moved it away, and its event
        // is on its way (the move is issued on the staging uffd, which does
        // not see the regions' pending events). Left alone; the event says
        // where the page went (UffdContract.MoveOnAStagingUffdIgnoresAnEvent*).
        mm_changing_ = true;
      } else if (r.stop == UffdStop::kRefused) {
        // EBUSY: pinned (O_DIRECT in flight), or not exclusive since a fork
        // (cow_breaker.h makes it exclusive again, off this thread). EINVAL:
        // a read-only, PROT_NONE or mlocked VMA. Kept; looked at again on a
        // later turn of the clock.
        stats_->Add(stats_->move_refusals);
        if (r.error == EBUSY) cow_.Request(addr, 1);
      } else {
        PAGER_LOG_WARN_EVERY(10, "evict at %#lx: UFFDIO_MOVE failed: %s", static_cast<unsigned long>(addr),
                             strerror(r.error));
      }
      e.set_referenced(true);
      PushActive(first + i, e);
    }
    i++;
    try_len = 1;
  }
  for (; i < pages; i++) PushActive(first + i, table_.At(first + i));
  return done;
}

uint32_t PagerCore::WriteBack(uint32_t batch) {
  const bool paused = eviction_paused();
  // Reads always find room: writes leave an eighth of the staging pages (at
  // most one full run) to swap-ins. Not more: stalled writes must be able to
  // take the pool below half, or the throttle could never engage. The
  // reserved minimum: with no write in flight, one write may use that eighth
  // too, so write-back never stops for want of a buffer.
  const uint64_t keep = std::min<uint64_t>(reserve_->staging_pages() / 8, kMaxRun);
  const uint64_t free = reserve_->staging_free_pages();
  const uint64_t writing = writes_in_flight_pages_ + sealing_pages_;
  const uint64_t usable = free > keep ? free - keep : writing == 0 ? free : 0;
  const uint32_t room = paused ? 0 : static_cast<uint32_t>(std::min<uint64_t>(batch, usable));
  if (room == 0) return 0;

  // The head of the inactive FIFO, in order: the pages that have waited
  // longest for a re-touch.
  uint64_t picked[kMaxRun];
  uint32_t n = 0;
  while (n < room && !inactive_q_.empty()) {
    const uint64_t page = inactive_q_.front();
    inactive_q_.pop_front();
    PageEntry* e = table_.Find(page);
    if (e == nullptr || !e->queued_inactive()) {
      if (stale_entries_ > 0) stale_entries_--;  // an unmapped page's entry
      continue;
    }
    e->set_queued_inactive(false);
    if (e->state() == PageState::kInactive) picked[n++] = page;
  }
  if (n == 0) return 0;
  auto requeue = [this, &picked](uint32_t from, uint32_t to) {  // back to the head, in order
    for (uint32_t k = to; k-- > from;) {
      PageEntry& e = table_.At(picked[k]);
      e.set_queued_inactive(true);
      inactive_q_.push_front(picked[k]);
    }
  };

  // A slot for each page, allocated now: with encryption the slot is part of
  // the nonce, so the seal worker needs it. Pages found clean or all-zero give
  // theirs back when the batch returns.
  SlotAllocator::Run run = slots_.Allocate(n);
  if (run.count == 0) {
    if (!swap_full_) {
      PAGER_LOG_WARN("swap store is full (%llu slots); eviction paused, pages stay in memory",
                     static_cast<unsigned long long>(slots_.capacity()));
      stats_->Add(stats_->eviction_pauses);
    }
    swap_full_ = true;
    requeue(0, n);
    return 0;
  }
  swap_full_ = false;
  // A fragmented pool may have the pages but not the run: take a shorter one.
  std::byte* buf = nullptr;
  uint32_t staged = run.count;
  while (staged > 0 && (buf = reserve_->AllocPages(staged)) == nullptr) staged /= 2;
  for (uint32_t k = staged; k < run.count; k++) slots_.Free(run.first + k);
  if (buf == nullptr) {
    requeue(0, n);
    return 0;
  }
  Op* op = NewOp(StoreOp::Kind::kWrite, run.first, staged, buf);
  op->stage = Op::Stage::kSealing;
  for (uint32_t k = 0; k < staged; k++) {
    PageEntry& e = table_.At(picked[k]);
    op->pages[k] = picked[k];
    op->frames[k] = e.aux();
    op->has_old[k] = e.has_slot();
    op->old_sums[k] = e.has_slot() ? slots_.seal(e.slot()).sum : 0;
    op->seals[k] = PageSeal{};
    op->seals[k].gen = next_gen_++;
    e.set_state(PageState::kSealing);
    e.set_aux(op->io.id);
  }
  requeue(staged, n);
  sealing_pages_ += staged;
  ops_in_flight_++;
  sealer_.Submit(op);
  return staged;
}

void PagerCore::CompleteSeal(Op* batch) {
  ops_in_flight_--;
  sealing_pages_ -= batch->io.pages;
  uint32_t dirty_from = kMaxRun;  // first page of the dirty run being gathered
  auto write_run = [&](uint32_t from, uint32_t to) {  // pages [from, to) of the batch: one store op
    Op* op = NewOp(StoreOp::Kind::kWrite, static_cast<uint32_t>(batch->io.slot + from), to - from,
                   batch->io.buf + uint64_t{from} * kPageSize);
    for (uint32_t k = from; k < to; k++) {
      op->pages[k - from] = batch->pages[k];
      table_.At(batch->pages[k]).set_aux(op->io.id);
    }
    writes_in_flight_pages_ += to - from;
    Submit(op);
  };
  for (uint32_t k = 0; k <= batch->io.pages; k++) {
    bool written = false;
    if (k < batch->io.pages) {
      const uint32_t slot = static_cast<uint32_t>(batch->io.slot + k);
      PageEntry* e = table_.Find(batch->pages[k]);
      const bool live = e != nullptr && e->state() == PageState::kSealing && e->aux() == batch->io.id;
      const uint8_t verdict = batch->verdict[k];
      if (live && (draining_ || (verdict == Op::kDirty && batch->seals[k].gen == 0))) {
        // Bringing everything home (its install needs the frame), or the
        // cipher failed (a bug, logged): the page stays inactive, in memory.
        if (!draining_) PAGER_LOG_ERROR("page at %#lx: sealing failed; kept in memory",
                                        static_cast<unsigned long>(PageTable::AddrOf(batch->pages[k])));
        e->set_state(PageState::kInactive);
        e->set_aux(batch->frames[k]);
        PushInactive(batch->pages[k], *e);
        slots_.Free(slot);
      } else {
        frames_.Release(batch->frames[k]);  // pinned until now, whatever became of the page
        if (!live) {
          slots_.Free(slot);  // re-touched, discarded or unmapped meanwhile
        } else if (verdict != Op::kDirty) {
          slots_.Free(slot);
          inactive_--;
          resident_--;
          if (verdict == Op::kZero) {
            FreeSlot(*e);
            e->set_state(PageState::kEmpty);
          } else {
            e->set_state(PageState::kSwapped);  // its old slot still holds these bytes
            swapped_++;
          }
          stats_->Add(stats_->evictions_clean);
        } else {
          FreeSlot(*e);  // an inactive page's old slot has no write in flight
          e->set_state(PageState::kWriting);
          e->set_slot(slot);
          slots_.set_seal(slot, batch->seals[k]);
          inactive_--;
          resident_--;
          written = true;
        }
      }
    }
    // Dirty pages go out in runs of consecutive slots; the staging pages of
    // the others are given back.
    if (written) {
      if (dirty_from == kMaxRun) dirty_from = k;
      continue;
    }
    if (dirty_from != kMaxRun) {
      write_run(dirty_from, k);
      dirty_from = kMaxRun;
    }
    if (k < batch->io.pages) reserve_->FreePages(batch->io.buf + uint64_t{k} * kPageSize, 1);
  }
  FreeOp(batch, false);  // its buffer is the write ops' now, or given back
}

void PagerCore::PauseEviction(int err) {
  pause_backoff_ns_ = std::clamp<uint64_t>(pause_backoff_ns_ * 2, 100'000'000ull, 30'000'000'000ull);
  paused_until_ns_ = NowNs() + pause_backoff_ns_;
  stats_->Add(stats_->eviction_pauses);
  PAGER_LOG_WARN("write-back failed: %s; eviction paused for %.1f s, pages stay in memory", strerror(err),
                 static_cast<double>(pause_backoff_ns_) / 1e9);
}

void PagerCore::CompleteWrite(Op* op) {
  ops_in_flight_--;
  const int err = op->io.error;
  writes_in_flight_pages_ -= op->io.pages;
  for (uint32_t k = 0; k < op->io.pages; k++) {
    const uint32_t slot = static_cast<uint32_t>(op->io.slot + k);
    PageEntry* e = table_.Find(op->pages[k]);
    const bool owns = e != nullptr && e->state() == PageState::kWriting && e->aux() == op->io.id;
    if (err == 0 && owns) {
      e->set_state(PageState::kSwapped);
      swapped_++;
      stats_->Add(stats_->evictions_written);
      continue;
    }
    if (!owns) {
      slots_.Free(slot);
      continue;  // discarded or re-touched meanwhile
    }
    // The store refused the page: it goes back to the inactive stage, in
    // memory, and is written again once eviction resumes.
    const std::byte* src = Unsealed(op->io.buf + uint64_t{k} * kPageSize, slot);
    slots_.Free(slot);
    e->clear_slot();
    if (src == nullptr) {
      Poison(op->pages[k], *e, "write-back failed and its sealed copy does not open");
      continue;
    }
    SlotAllocator::Run fr = frames_.Allocate(1);
    if (fr.count == 1 && frames_.Fill(fr.first, src)) {  // else Fill gave the frame back
      e->set_state(PageState::kInactive);
      e->set_aux(fr.first);
      PushInactive(op->pages[k], *e);
      inactive_++;
      resident_++;
    } else {
      UffdRun r = uffd_.Copy(PageTable::AddrOf(op->pages[k]), src, 1);
      if (r.done == 1) {
        SetResident(op->pages[k], *e, true);
        resident_++;
      } else {
        // Frames are sized for every page in flight, so this is a bug; the
        // page's only copy is about to be freed: SIGBUS, never zeros.
        char why[96];
        snprintf(why, sizeof why, "write-back failed and no frame to keep it (%s)", strerror(r.error));
        Poison(op->pages[k], *e, why);
      }
    }
  }
  if (err != 0) {
    stats_->Add(stats_->io_errors);
    PauseEviction(err);
  } else {
    pause_backoff_ns_ = 0;
  }
  FreeOp(op);
}

}  // namespace pager

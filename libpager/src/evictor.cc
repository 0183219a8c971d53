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
// The eviction race: a thread writing a page while it is evicted. With
// UFFDIO_MOVE the move is atomic under the page table lock: the write lands
// before the move (and is moved with the page) or faults after it (and is
// served from the frame). Without MOVE (kernels before 6.8): write-protect
// the run, copy it, then MADV_DONTNEED it from the dropper thread; a writer
// meanwhile takes a WP fault and waits until the drop is done, then faults
// the page back in from the frame.
#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include "checksum.h"
#include "core.h"
#include "log.h"

namespace pager {
namespace {

// Copies a run the evictor has just write-protected. Writers block in the
// kernel until it is dropped, an ordering TSan cannot see: scripts/tsan.supp
// names this function, and only this function.
__attribute__((noinline)) void CopyWriteProtectedRun(void* dst, const void* src, size_t len) {
  memcpy(dst, src, len);
}

}  // namespace

bool PagerCore::Evict(uint32_t budget) {
  if (draining_) return false;  // shutdown brings everything back in
  if (resident_ > high_wm_ || waiting_for_memory) evicting_ = true;
  if (!evicting_) return false;
  const uint64_t target = cfg_.policy == EvictionPolicy::kFifo ? 0 : inactive_target_;
  uint32_t work = 0;
  mm_changing_ = false;
  while (work < budget) {
    if (resident_ <= low_wm_ && !waiting_for_memory) {
      evicting_ = false;
      return false;
    }
    uint32_t deactivated = inactive_ < target + max_run_ ? Deactivate(max_run_) : 0;
    // Pages get their time in the inactive stage: only what exceeds its
    // target is written back, unless nothing more can be deactivated.
    uint64_t excess = inactive_ > target ? inactive_ - target : 0;
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
    work += deactivated + written;
  }
  return true;
}

uint32_t PagerCore::Deactivate(uint32_t batch) {
  std::vector<uint64_t> cand;
  cand.reserve(batch);
  const bool clock = cfg_.policy == EvictionPolicy::kClock;
  // Each page is passed at most twice: once to clear its bit, once to take it.
  size_t budget = active_q_.size() * 2;
  while (cand.size() < batch && budget-- > 0 && !active_q_.empty()) {
    uint64_t page = active_q_.front();
    active_q_.pop_front();
    PageEntry* e = table_.Find(page);
    if (e == nullptr) continue;
    if (e->state() != PageState::kResident) {
      e->set_queued_active(false);
      continue;
    }
    if (clock && e->referenced()) {
      e->set_referenced(false);
      active_q_.push_back(page);
      continue;
    }
    e->set_queued_active(false);
    cand.push_back(page);
  }
  std::sort(cand.begin(), cand.end());
  uint32_t done = 0;
  for (size_t i = 0; i < cand.size();) {
    size_t j = i + 1;
    while (j < cand.size() && cand[j] == cand[j - 1] + 1) j++;
    done += DeactivateRun(cand[i], static_cast<uint32_t>(j - i));
    i = j;
  }
  return done;
}

uint32_t PagerCore::DeactivateRun(uint64_t first, uint32_t pages) {
  uint32_t i = 0, done = 0;
  bool cow_broken = false;  // page i had its COW broken once already
  while (i < pages) {
    SlotAllocator::Run fr = frames_.Allocate(pages - i);
    if (fr.count == 0) break;  // every frame is taken: write-back frees some
    UffdRun r;
    if (staging_) {
      r = staging_->Move(frames_.addr(fr.first), PageTable::AddrOf(first + i), fr.count);
    } else {
      Status s = uffd_.WriteProtect(PageTable::AddrOf(first + i), fr.count, true);
      if (s.ok()) {
        // Writers now block on a WP fault until the drop is done.
        CopyWriteProtectedRun(frames_.at(fr.first), reinterpret_cast<void*>(PageTable::AddrOf(first + i)),
                              uint64_t{fr.count} * kPageSize);
        r.done = fr.count;
        own_drops_.push_back({first + i, fr.count, false});
        drop_requests_.push_back({first + i, fr.count});
      } else {
        r.error = EAGAIN;
      }
    }
    for (uint32_t k = 0; k < r.done; k++) {
      PageEntry& e = table_.At(first + i + k);
      e.set_state(PageState::kInactive);
      e.set_aux(fr.first + k);
      e.set_referenced(false);
      e.set_drop_pending(!staging_);
      PushInactive(first + i + k, e);
    }
    for (uint32_t k = r.done; k < fr.count; k++) frames_.Unuse(fr.first + k);
    inactive_ += r.done;
    done += r.done;
    stats_->Add(stats_->deactivations, r.done);
    i += r.done;
    if (r.done > 0) cow_broken = false;
    if (r.done < fr.count) {
      if (r.error == EAGAIN) {  // the mm is changing: after the events
        mm_changing_ = true;
        break;
      }
      PageEntry& e = table_.At(first + i);
      if (r.error == EBUSY && staging_ && !cow_broken) {
        // Shared with a fork child (or its memory was, and the page has not
        // been written since): MOVE takes only exclusive pages. A populate-
        // write breaks the COW without changing a byte and cannot fault to
        // us (the page is present; a missing one fails the madvise instead).
        cow_broken = true;
        if (madvise(reinterpret_cast<void*>(PageTable::AddrOf(first + i)), kPageSize, MADV_POPULATE_WRITE) == 0) {
          continue;
        }
      }
      cow_broken = false;
      if (r.error == ENOENT) {
        // Not present: it went away without an event we have read (an mremap
        // in progress, or MADV_DONTNEED with the remove event disabled). The
        // kernel's view wins: the page reads as zeros.
        Discard(first + i, 1);
      } else {
        // EBUSY: pinned (O_DIRECT in flight) or shared with a fork child.
        // Keep it mapped and look again on the clock's next turn.
        e.set_referenced(true);
        PushActive(first + i, e);
      }
      i++;
    }
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
  const uint64_t usable = free > keep ? free - keep : writes_in_flight_pages_ == 0 ? free : 0;
  uint32_t room = paused ? 0 : static_cast<uint32_t>(std::min<uint64_t>(batch, usable));

  struct Dirty {
    uint64_t page;
    uint64_t sum;
  };
  Dirty dirty[kMaxRun];
  uint32_t ndirty = 0, dropped = 0;
  size_t scan = inactive_q_.size();
  while (scan-- > 0 && !inactive_q_.empty()) {
    uint64_t page = inactive_q_.front();
    PageEntry* e = table_.Find(page);
    if (e == nullptr || e->state() != PageState::kInactive) {
      inactive_q_.pop_front();
      if (e != nullptr) e->set_queued_inactive(false);
      continue;
    }
    const std::byte* frame = frames_.at(e->aux());
    uint64_t sum = PageChecksum(frame);
    bool zero = sum == zero_checksum_ && memcmp(frame, zeros_.data(), kPageSize) == 0;
    bool clean = !zero && e->has_slot() && slots_.checksum(e->slot()) == sum;
    if (!zero && !clean) {
      if (ndirty == room) break;  // no room to stage it: leave it at the head
      dirty[ndirty++] = {page, sum};
    } else {
      frames_.Release(e->aux());
      inactive_--;
      resident_--;
      if (zero) {
        FreeSlot(*e);
        e->set_state(PageState::kEmpty);
      } else {
        e->set_state(PageState::kSwapped);
        swapped_++;
      }
      stats_->Add(stats_->evictions_clean);
      dropped++;
    }
    inactive_q_.pop_front();
    e->set_queued_inactive(false);
    if (ndirty == batch) break;
  }
  if (ndirty == 0) return dropped;

  // Pages not staged now go back to the head, in order.
  auto requeue = [this, &dirty](uint32_t from, uint32_t to) {
    for (uint32_t k = to; k-- > from;) {
      PageEntry& e = table_.At(dirty[k].page);
      e.set_queued_inactive(true);
      inactive_q_.push_front(dirty[k].page);
    }
  };
  SlotAllocator::Run run = slots_.Allocate(ndirty);
  if (run.count == 0) {
    if (!swap_full_) {
      PAGER_LOG_WARN("swap store is full (%llu slots); eviction paused, pages stay in memory",
                     static_cast<unsigned long long>(slots_.capacity()));
      stats_->Add(stats_->eviction_pauses);
    }
    swap_full_ = true;
    requeue(0, ndirty);
    return dropped;
  }
  swap_full_ = false;
  // A fragmented pool may have the pages but not the run: take a shorter one.
  std::byte* buf = nullptr;
  uint32_t staged = run.count;
  while (staged > 0 && (buf = reserve_->AllocPages(staged)) == nullptr) staged /= 2;
  for (uint32_t k = staged; k < run.count; k++) slots_.Free(run.first + k);
  run.count = staged;
  if (buf == nullptr) {
    requeue(0, ndirty);
    return dropped;
  }
  Op* op = NewOp(StoreOp::Kind::kWrite, run.first, run.count, buf);
  for (uint32_t k = 0; k < run.count; k++) {
    PageEntry& e = table_.At(dirty[k].page);
    memcpy(buf + uint64_t{k} * kPageSize, frames_.at(e.aux()), kPageSize);
    frames_.Release(e.aux());
    FreeSlot(e);  // an inactive page's slot has no write in flight
    e.set_state(PageState::kWriting);
    e.set_aux(op->io.id);
    e.set_slot(run.first + k);
    slots_.set_checksum(run.first + k, dirty[k].sum);
    op->pages[k] = dirty[k].page;
  }
  inactive_ -= run.count;
  resident_ -= run.count;
  writes_in_flight_pages_ += run.count;
  requeue(run.count, ndirty);
  Submit(op);
  return dropped + run.count;
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
    slots_.Free(slot);
    if (!owns) continue;  // discarded or re-touched meanwhile
    // The store refused the page: it goes back to the inactive stage, in
    // memory, and is written again once eviction resumes.
    e->clear_slot();
    SlotAllocator::Run fr = frames_.Allocate(1);
    const std::byte* src = op->io.buf + uint64_t{k} * kPageSize;
    if (fr.count == 1 && FillFrame(fr.first, src)) {
      e->set_state(PageState::kInactive);
      e->set_aux(fr.first);
      e->set_drop_pending(false);
      PushInactive(op->pages[k], *e);
      inactive_++;
      resident_++;
    } else {
      if (fr.count == 1) frames_.Unuse(fr.first);
      UffdRun r = uffd_.Copy(PageTable::AddrOf(op->pages[k]), src, 1);
      if (r.done == 1) {
        SetResident(op->pages[k], *e, true);
        resident_++;
      } else {
        // Frames are sized for every page in flight, so this is a bug.
        PAGER_LOG_ERROR("page at %#lx: write-back failed and no frame to keep it: %s",
                        static_cast<unsigned long>(PageTable::AddrOf(op->pages[k])), strerror(r.error));
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

void PagerCore::CompleteDrop(uint64_t first, uint64_t pages) {
  table_.ForRange(first, pages, [](uint64_t, PageEntry& e) { e.set_drop_pending(false); });
  for (size_t i = 0; i < own_drops_.size(); i++) {
    if (own_drops_[i].first == first && own_drops_[i].pages == pages) {
      own_drops_.erase(own_drops_.begin() + static_cast<long>(i));
      break;
    }
  }
  // Writers that hit the write-protection wait for this; they now re-fault
  // the page as missing and get it from its frame.
  uffd_.Wake(PageTable::AddrOf(first), pages);
}

}  // namespace pager

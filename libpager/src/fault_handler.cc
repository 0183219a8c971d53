// The fault path: what a touch of a non-present page costs, by state.
//
//   empty     zero-fill, no I/O; sequential first touches fill ahead (one
//             UFFDIO_COPY of up to readahead_pages pages from a zero run)
//   inactive  re-install from the inactive frame, no I/O, no new frame
//   sealing   the same, from the frame its write-back batch has pinned
//   writing   re-install from the write-back buffer (decrypted, with
//             encryption), no I/O
//   swapped   read the slot run (read-ahead on sequential faults) into the
//             reserve; the store's completion thread opens each page
//             (checksum, or decryption and tag); install with one COPY.
//             A fault on a stream (prefetcher.h) also reads pages further
//             along, before any thread needs them
//   reading   nothing: the install of the read in flight wakes every waiter
//             (a prefetched page: the stream reads further ahead)
//   resident  a stale second message: install a zero page, which fails with
//             EEXIST and wakes the thread (the kernel's duplicate-message
//             quirk) or, if the page really went missing behind our back,
//             gives the zeros MADV_DONTNEED promised
//
// Only empty, writing and swapped pages take a fresh frame (NeedsFrame), so
// only they wait for memory or on the throttle; the loop queues them apart.
//
// Installs use UFFDIO_COPY, not UFFDIO_MOVE: here a move in measured ~2x a
// copy (70 vs 30 us; see docs/design.md), while a move out is the cheap way
// to evict.
#include <linux/userfaultfd.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core.h"
#include "log.h"

namespace pager {

uint32_t PagerCore::Window(uint64_t page) {
  if (page == next_expected_page_) {
    window_ = std::min<uint32_t>(window_ * 2, std::min(cfg_.readahead_pages, max_run_));
  } else {
    window_ = 1;
  }
  return window_;
}

PagerCore::Outcome PagerCore::Wait(Fault& f) {
  if (f.parked_ns == 0) {
    f.parked_ns = NowNs();
    if (throttled()) {
      f.throttled = true;
      stats_->Add(stats_->throttle_events);
    } else {
      stats_->Add(stats_->limit_waits);
    }
  }
  waiting_for_memory = true;
  return Outcome::kWait;
}

bool PagerCore::NeedsFrame(uintptr_t addr) {
  const PageEntry* e = table_.Find(PageTable::PageOf(addr));
  if (e == nullptr) return true;
  switch (e->state()) {
    case PageState::kEmpty:
    case PageState::kWriting:
    case PageState::kSwapped:
      return true;
    default:
      return false;
  }
}

PagerCore::Outcome PagerCore::ServeFault(Fault& f) {
  const uint64_t page = PageTable::PageOf(f.addr);
  PageEntry* e = table_.Find(page);
  if (e == nullptr) return ServeEmpty(f, page);
  PAGER_LOG_DEBUG("fault %#lx flags %#lx state %s", static_cast<unsigned long>(f.addr),
                  static_cast<unsigned long>(f.flags), PageStateName(e->state()));
  switch (e->state()) {
    case PageState::kEmpty:
      return ServeEmpty(f, page);
    case PageState::kResident: {
      UffdRun r = uffd_.Copy(PageTable::AddrOf(page), zeros_.data(), 1);
      if (r.stop == UffdStop::kMmChanging) return Outcome::kRetry;
      if (r.stop == UffdStop::kGone) uffd_.Wake(PageTable::AddrOf(page), 1);
      return Outcome::kDone;
    }
    case PageState::kInactive:
      return ServeStaged(f, page, *e, frames_.at(e->aux()), Staged::kFrame);
    case PageState::kSealing:
    case PageState::kWriting: {
      Op* op = ops_[e->aux()];
      for (uint32_t i = 0; i < op->io.pages; i++) {
        if (op->pages[i] != page) continue;
        if (e->state() == PageState::kSealing) {
          return ServeStaged(f, page, *e, frames_.at(op->frames[i]), Staged::kPinnedFrame);
        }
        return ServeStaged(f, page, *e, op->io.buf + i * kPageSize, Staged::kWriteBuffer);
      }
      PAGER_LOG_ERROR("page %#lx: %s, but not in its op %u", static_cast<unsigned long>(page * kPageSize),
                      PageStateName(e->state()), e->aux());
      return Outcome::kDone;
    }
    case PageState::kSwapped:
      return ServeSwapped(f, page, *e);
    case PageState::kReading:
      // The program caught up with a read in flight: if it was read ahead,
      // read further ahead.
      ReadAhead(prefetch_.OnHit(page));
      return Outcome::kDone;
    case PageState::kPoisoned:
      // Only reached without UFFDIO_POISON (before 6.6): deliver the SIGBUS
      // by hand to the thread that touched it.
      if (f.tid != 0) syscall(SYS_tgkill, getpid(), f.tid, SIGBUS);
      return Outcome::kDone;
  }
  return Outcome::kDone;
}

PagerCore::Outcome PagerCore::ServeEmpty(Fault& f, uint64_t page) {
  uint32_t want = Window(page);
  // Fill-ahead stays inside the ranges the pager knows, in event order. A
  // region mremapped next to this one is already mapped and registered once
  // its REMAP is read, but its pages are followed there only once that event
  // is handled, later in the batch: zeros installed there meanwhile would sit
  // over its swapped pages, which then read as zeros
  // (EvictionRace.RegionMovedDuringEvictionKeepsEveryPage).
  if (const uintptr_t end = regions_.EndOf(f.addr); end != 0) {
    want = static_cast<uint32_t>(std::min<uint64_t>(want, (end - PageTable::AddrOf(page)) / kPageSize));
  }
  uint32_t run = 0;
  while (run < want) {
    PageEntry* n = table_.Create(page + run);
    if (n == nullptr || n->state() != PageState::kEmpty) break;
    run++;
  }
  if (run == 0) {
    // Out of memory for the page table: wait, as for memory.
    PAGER_LOG_WARN("fault at %#lx: out of memory for the page table; waiting", static_cast<unsigned long>(f.addr));
    return Wait(f);
  }
  run = Admit(run);
  if (run == 0) return Wait(f);
  // Installs first, then state: pages the ioctl did not install stay empty.
  // A fill-ahead that runs into another VMA of the region (a split) is split
  // by the uffd layer; only the faulting page matters.
  UffdRun r = uffd_.Copy(f.addr & ~(kPageSize - 1), zeros_.data(), run);
  if (r.done == 0) {
    if (r.stop == UffdStop::kMmChanging) return Outcome::kRetry;
    // The region went away (its thread re-faults and gets SIGSEGV), or the
    // kernel refused: say so, never leave the thread asleep.
    if (r.stop != UffdStop::kGone) {
      PAGER_LOG_ERROR("zero-fill at %#lx failed: %s", static_cast<unsigned long>(f.addr), strerror(r.error));
    }
    uffd_.Wake(PageTable::AddrOf(page), 1);
    return Outcome::kDone;
  }
  for (uint32_t i = 0; i < r.done; i++) SetResident(page + i, table_.At(page + i), i == 0);
  resident_ += r.done;
  next_expected_page_ = page + r.done;
  stats_->Add(stats_->faults_zero);
  stats_->Add(stats_->pages_zero_filled, r.done);
  stats_->RecordFaultLatency(NowNs() - f.t0_ns);
  return Outcome::kDone;
}

PagerCore::Outcome PagerCore::ServeStaged(Fault& f, uint64_t page, PageEntry& e, const std::byte* src,
                                          Staged from) {
  // From a frame the page trades its frame for a mapped one: no admission.
  if (from == Staged::kWriteBuffer) {
    if (Admit(1) == 0) return Wait(f);
    src = Unsealed(src, e.slot());
    if (src == nullptr) {
      Poison(page, e, "its write-back copy does not open");
      return Outcome::kDone;
    }
  }
  UffdRun r = uffd_.Copy(PageTable::AddrOf(page), src, 1);
  if (r.done == 0) {
    if (r.stop == UffdStop::kMmChanging) return Outcome::kRetry;
    if (r.stop != UffdStop::kGone) {
      PAGER_LOG_ERROR("install at %#lx failed: %s", static_cast<unsigned long>(f.addr), strerror(r.error));
    }
    uffd_.Wake(PageTable::AddrOf(page), 1);
    return Outcome::kDone;  // the region went away; its unmap event discards it
  }
  switch (from) {
    case Staged::kFrame:
      frames_.Release(e.aux());
      inactive_--;
      break;
    case Staged::kPinnedFrame:
      inactive_--;  // its batch gives the frame back when it returns
      break;
    case Staged::kWriteBuffer:
      e.clear_slot();  // the write in flight owns its slot until it completes
      resident_++;
      break;
  }
  SetResident(page, e, true);
  stats_->Add(stats_->faults_inactive);
  stats_->RecordFaultLatency(NowNs() - f.t0_ns);
  return Outcome::kDone;
}

const std::byte* PagerCore::Unsealed(const std::byte* src, uint32_t slot) {
  if (!codec_->encrypting()) return src;
  memcpy(scratch_.data(), src, kPageSize);
  PageCodec::Session session = codec_->Begin();
  return session.Open(scratch_.data(), slot, slots_.seal(slot)) ? scratch_.data() : nullptr;
}

uint32_t PagerCore::ReadRun(uint64_t page, const PageEntry& e, uint32_t max) {
  uint32_t n = 1;
  while (n < max) {
    const PageEntry* next = table_.Find(page + n);
    if (next == nullptr || next->state() != PageState::kSwapped || next->slot() != e.slot() + n) break;
    n++;
  }
  return n;
}

PagerCore::Outcome PagerCore::ServeSwapped(Fault& f, uint64_t page, PageEntry& e) {
  const Prefetcher::Plan plan = prefetch_.OnMiss(page);
  uint32_t n = Admit(ReadRun(page, e, plan.sync_pages));
  if (n == 0) return Wait(f);
  std::byte* buf = reserve_->AllocPages(n);
  if (buf == nullptr && n > 1) {
    n = 1;
    buf = reserve_->AllocPages(1);
  }
  if (buf == nullptr) return Wait(f);  // the reserve is spent on writes in flight
  Op* op = StartRead(page, e, n, buf);
  op->t0_ns = f.t0_ns;
  op->fault_page = page;
  next_expected_page_ = page + n;
  stats_->Add(stats_->faults_swapin);
  stats_->Add(stats_->pages_read_ahead, n - 1);
  Submit(op);
  ReadAhead(plan);
  return Outcome::kDone;
}

Op* PagerCore::StartRead(uint64_t page, const PageEntry& e, uint32_t n, std::byte* buf) {
  Op* op = NewOp(StoreOp::Kind::kRead, e.slot(), n, buf);
  for (uint32_t i = 0; i < n; i++) {
    PageEntry& pe = table_.At(page + i);
    pe.set_state(PageState::kReading);
    pe.set_aux(op->io.id);
    op->pages[i] = page + i;
    op->seals[i] = slots_.seal(pe.slot());
  }
  resident_ += n;
  swapped_ -= n;
  reads_in_flight_pages_ += n;
  return op;
}

void PagerCore::ResumePrefetch() {
  for (int i = 0; i < Prefetcher::kStreams; i++) {
    if (prefetch_.starved(i) && PrefetchBudget(1) > 0) ReadAhead(prefetch_.OnLanded(i));
  }
}

uint32_t PagerCore::PrefetchBudget(uint32_t want) const {
  // Prefetch takes only what no fault is waiting for, and never drives the
  // pager toward its throttle: frames below the limit less one fault's own
  // read, and the reserve above five eighths (the throttle is at half; the
  // eighth between is write-back's).
  if (draining_ || waiting_for_memory || stuck_ || eviction_paused() || throttled()) return 0;
  // Each op holds an Op (14 KiB of the reserve arena, which is sized for the
  // store's buffers, not for hundreds of them) and a round trip: a stream
  // whose slots are scattered would otherwise go out as hundreds of tiny
  // reads, and overflowed the arena (python over NFS).
  if (prefetch_ops_ >= kMaxPrefetchOps) return 0;
  const uint64_t one_read = std::min(cfg_.readahead_pages, max_run_);
  const uint64_t room = limit_ > resident_ + one_read ? limit_ - resident_ - one_read : 0;
  const uint64_t keep = reserve_->total_pages() * 5 / 8;
  const uint64_t free = reserve_->free_pages();
  const uint64_t pool = free > keep ? free - keep : 0;
  return static_cast<uint32_t>(std::min<uint64_t>({want, room, pool}));
}

void PagerCore::ReadAhead(const Prefetcher::Plan& plan) {
  if (plan.ahead_pages == 0) return;
  // A run backwards is read forwards, in store-sized runs. If the budget
  // runs out part-way, the prefetcher is told where: everything short of
  // that point was read, so for a backward run, nothing was.
  const bool backwards = plan.stride == -1;
  const bool contiguous = plan.stride == 1 || backwards;
  uint64_t page = backwards ? plan.ahead_first - (plan.ahead_pages - 1) : plan.ahead_first;
  const int64_t step = contiguous ? 1 : plan.stride;
  uint32_t done = 0;
  while (done < plan.ahead_pages) {
    PageEntry* e = table_.Find(page);
    uint32_t n = 1;
    if (e != nullptr && e->state() == PageState::kSwapped) {
      n = contiguous ? ReadRun(page, *e, std::min(plan.ahead_pages - done, std::min(cfg_.readahead_pages, max_run_))) : 1;
      n = PrefetchBudget(n);
      std::byte* buf = n == 0 ? nullptr : reserve_->AllocPages(n);
      if (buf == nullptr) {
        prefetch_.Stopped(plan, backwards ? 0 : done);
        return;
      }
      Op* op = StartRead(page, *e, n, buf);
      op->stream = plan.stream;
      prefetch_ops_++;
      Submit(op);
      stats_->Add(stats_->pages_read_ahead, n);
    }
    page += static_cast<uint64_t>(step * n);
    done += n;
  }
}

void PagerCore::Poison(uint64_t page, PageEntry& e, const char* why) {
  PAGER_LOG_ERROR("page at %#lx (slot %u): %s; poisoned: the thread touching it gets SIGBUS",
                  static_cast<unsigned long>(PageTable::AddrOf(page)), e.has_slot() ? e.slot() : kNoSlot,
                  why);
  stats_->Add(stats_->checksum_failures);
  FreeSlot(e);
  e.set_state(PageState::kPoisoned);
  if (uffd_.features().poison && uffd_.Poison(PageTable::AddrOf(page), 1).stop == UffdStop::kNone) return;
  // Without UFFDIO_POISON (before 6.6): wake the waiters, whose re-fault
  // finds the page poisoned and is answered with tgkill(SIGBUS).
  uffd_.Wake(PageTable::AddrOf(page), 1);
}

void PagerCore::OpenRead(Op* op) const {
  if (op->io.error != 0) return;
  PageCodec::Session session = codec_->Begin();
  for (uint32_t i = 0; i < op->io.pages; i++) {
    op->verdict[i] = session.Open(op->io.buf + uint64_t{i} * kPageSize, static_cast<uint32_t>(op->io.slot + i),
                                  op->seals[i]);
  }
}

void PagerCore::CompleteRead(Op* op) {
  ops_in_flight_--;
  const uint32_t n = op->io.pages;
  constexpr uint64_t kDone = ~uint64_t{0};
  bool live[kMaxRun], good[kMaxRun];
  bool retry = false;
  for (uint32_t i = 0; i < n; i++) {
    PageEntry* e = op->pages[i] == kDone ? nullptr : table_.Find(op->pages[i]);
    live[i] = e != nullptr && e->state() == PageState::kReading && e->aux() == op->io.id;
    good[i] = live[i] && op->io.error == 0 && op->verdict[i] == 1;
    if (live[i] && !good[i] && op->retries == 0) retry = true;
  }
  if (retry) {
    // One more read before declaring the copy bad: a transient fault on the
    // way must not cost the program a page, and a store with several copies
    // reads another one (StoreOp::attempt).
    op->retries++;
    stats_->Add(stats_->io_retries);
    op->io.error = 0;
    op->io.attempt = op->retries;
    Submit(op);
    return;
  }
  bool again = false;
  for (uint32_t i = 0; i < n;) {
    if (!live[i]) {
      i++;
      continue;
    }
    if (!good[i]) {
      PageEntry& e = table_.At(op->pages[i]);
      char why[128];
      if (op->io.error != 0) {
        snprintf(why, sizeof why, "swap-in failed: %s", strerror(op->io.error));
        stats_->Add(stats_->io_errors);
      } else {
        snprintf(why, sizeof why, "%s", codec_->encrypting() ? "the swap copy fails its authentication tag (altered, moved or replayed)"
                                                              : "checksum mismatch in the swap copy");
      }
      Poison(op->pages[i], e, why);
      resident_--;
      reads_in_flight_pages_--;
      op->pages[i] = kDone;
      i++;
      continue;
    }
    if (IsHeld(op->pages[i])) {
      // Set aside for a late REMAP or UNMAP (core.h): installed, if at all,
      // once that event gives it an address again.
      again = true;
      i++;
      continue;
    }
    // A run of consecutive live, good pages: one install, split by the uffd
    // layer wherever a VMA boundary (mprotect, madvise of part of a region)
    // or a present page stops it.
    uint32_t j = i + 1;
    while (j < n && live[j] && good[j] && op->pages[j] == op->pages[j - 1] + 1 && !IsHeld(op->pages[j])) j++;
    const uint64_t first = op->pages[i];
    auto settle = [&](uint32_t k) {
      reads_in_flight_pages_--;
      op->pages[i + k] = kDone;
    };
    UffdRun r = InstallRun(
        first, op->io.buf + uint64_t{i} * kPageSize, 0, j - i,
        [&](uint32_t k) {
          SetResident(first + k, table_.At(first + k), first + k == op->fault_page);
          settle(k);
        },
        [&](uint32_t k) {
          // No VMA at the page's address. While an UNMAP or REMAP is
          // unread COPY gives EAGAIN, and events are handled as soon as they
          // are read (UffdContract.CopyToARangeMremappedAwayFailsWithEagainUntilTheRemapIsRead),
          // so this should mean a page no event will claim (events
          // disabled). Yet the region-move hammer met it about once in 30
          // runs, for a prefetched page of a region being moved, and the
          // discard then lost that page (EvictionRace.RegionMovedDuringEvictionKeepsEveryPage);
          // the cause is not pinned down. So the page stays in flight for
          // kGoneGraceNs, for a REMAP to move it or an UNMAP to discard it,
          // and only then is given up.
          if (op->gone_since_ns == 0) op->gone_since_ns = NowNs();
          if (NowNs() - op->gone_since_ns < kGoneGraceNs) {
            again = true;
            return;
          }
          Discard(first + k, 1, false);
          op->pages[i + k] = kDone;
        });
    if (r.stop == UffdStop::kMmChanging) {
      again = true;  // retried after the pending events, from where it stopped
    } else if (r.stop == UffdStop::kFailed) {
      // The kernel refused to install (out of memory): the pages stay
      // kReading and are retried, never dropped.
      PAGER_LOG_ERROR("swap-in install at %#lx failed: %s; retrying",
                      static_cast<unsigned long>(PageTable::AddrOf(first + r.done)), strerror(r.error));
      again = true;
    }
    i = j;
  }
  if (again) {
    ops_in_flight_++;
    retry_reads_.push_back(op);
    return;
  }
  if (op->t0_ns != 0) stats_->RecordFaultLatency(NowNs() - op->t0_ns);
  const int stream = op->stream;
  FreeOp(op);
  if (stream >= 0) {
    prefetch_ops_--;
    ReadAhead(prefetch_.OnLanded(stream));
  }
}

void PagerCore::RetryReads() {
  auto ops = std::move(retry_reads_);
  retry_reads_ = PoolVector<Op*>(PoolAllocator<Op*>(reserve_->arena()));
  for (Op* op : ops) CompleteRead(op);
}

bool PagerCore::BringHome() {
  if (pages_away() == 0 && ops_in_flight_ == 0) return true;
  table_.ForAll([&](uint64_t page, PageEntry& e) {
    if (IsHeld(page)) return;  // waits for its event (or ExpireHeld) to give it an address, or drop it
    switch (e.state()) {
      case PageState::kInactive:
      case PageState::kWriting:
      case PageState::kSwapped: {  // kSealing: inactive once its batch is back (draining)
        Fault f;
        f.addr = PageTable::AddrOf(page);
        f.t0_ns = NowNs();
        (void)ServeFault(f);
        break;
      }
      default:
        break;
    }
  });
  return false;
}

}  // namespace pager

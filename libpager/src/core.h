// The state the pager thread owns, shared by its parts: the fault handler
// (fault_handler.cc), the evictor (evictor.cc), the page lifecycle and region
// bookkeeping (core.cc) and the event loop (pager.cc).
//
// Invariants, all maintained on the pager thread:
//  - `resident` counts frames the paged data holds: pages mapped in regions,
//    pages in the inactive stage, and pages whose swap-in is in flight (their
//    frame is promised). Write-back buffers are the reserve's, not counted.
//  - A slot is freed only when no write to it is in flight; a write's slots
//    belong to its op until it completes (two writes in flight to one slot
//    could land in either order).
//  - A completion acts on a page only if the page still names the op
//    (state kReading/kWriting and aux == op id); anything else means the page
//    was discarded, unmapped or re-touched meanwhile.
//  - A page is on a queue at most once: its queue bit says so. Entries whose
//    page was discarded stay on the queue and are dropped when they reach its
//    head; entries whose page was unmapped are counted in `stale_entries_`
//    and purged before a new region could reuse their pages (PurgeQueues).
#pragma once

#include <linux/userfaultfd.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "cow_breaker.h"
#include "frames.h"
#include "meta_alloc.h"
#include "page_codec.h"
#include "page_table.h"
#include "pager/pager.h"
#include "prefetcher.h"
#include "regions.h"
#include "reserve.h"
#include "reserve_arena.h"
#include "seal_worker.h"
#include "slot_allocator.h"
#include "stats.h"
#include "uffd.h"

namespace pager {

inline constexpr uint32_t kMaxRun = 256;  // pages per store op (1 MiB)

// One store op and the pages it carries, or a write-back batch on its way
// through the seal worker. Allocated from the pager's reserve arena (NewOp):
// request state is pool memory.
struct Op {
  enum class Stage : uint8_t { kIo, kSealing };
  // What the seal worker found of each page of a batch.
  enum Verdict : uint8_t { kDirty = 0, kClean = 1, kZero = 2 };

  StoreOp io;
  Stage stage = Stage::kIo;
  uint64_t pages[kMaxRun];  // the page (address / kPageSize) of each slot of the run
  // Reads: what each slot holds (from the slot maps); the store's completion
  // thread opens the pages against them (Pager::Impl::OnComplete). Batches:
  // in, each page's generation; out, its new seal.
  PageSeal seals[kMaxRun];
  // Reads: 1 where the page opened (its tag or checksum matched). Batches:
  // Verdict.
  uint8_t verdict[kMaxRun];
  // Batches: each page's pinned frame, and its current slot's checksum
  // (has_old: whether it has a slot at all).
  uint32_t frames[kMaxRun];
  uint64_t old_sums[kMaxRun];
  bool has_old[kMaxRun];
  uint64_t t0_ns = 0;       // when the fault that started a read was read
  uint64_t fault_page = 0;  // the page that faulted (reads): installed referenced
  uint64_t gone_since_ns = 0;  // reads: when an install first found no VMA (CompleteRead)
  int stream = -1;          // a read-ahead: the prefetcher's stream (prefetcher.h)
  uint32_t retries = 0;
};

// A fault not yet resolved: its thread sleeps in the kernel until we install
// the page or wake it.
struct Fault {
  uintptr_t addr = 0;
  uint64_t flags = 0;  // UFFD_PAGEFAULT_FLAG_*
  uint32_t tid = 0;
  uint64_t t0_ns = 0;      // read from the uffd
  uint64_t parked_ns = 0;  // first found waiting for memory (0: never)
  bool throttled = false;  // counted as a throttle event
};

uint64_t NowNs();

class PagerCore {
 public:
  PagerCore(const Config& cfg, Uffd uffd, Frames frames, std::unique_ptr<Reserve> reserve,
            std::unique_ptr<PageCodec> codec, Store* store, StatsBlock* stats);
  // Starts the seal worker (`done` posts a finished batch to the loop) and
  // the cow breaker's worker.
  void StartWorkers(std::function<void(Op*)> done);
  ~PagerCore();

  // ---- fault_handler.cc ------------------------------------------------
  enum class Outcome { kDone, kWait, kRetry };
  // True when serving a fault on `addr` may take a fresh frame (first touch,
  // swap-in, re-install from a write-back buffer): such faults wait for
  // memory and are queued apart from those that never do (re-touches of
  // inactive pages, pages being read, stale messages).
  bool NeedsFrame(uintptr_t addr);
  // Serves a fault: kWait when it must wait for memory (parked by the
  // caller), kRetry when the mm is changing (retried after the next events).
  Outcome ServeFault(Fault& f);
  void CompleteRead(Op* op);
  // On the store's completion thread (thread-safe: reads only the op and the
  // codec): opens each page a read brought, recording which did.
  void OpenRead(Op* op) const;
  // Re-runs the installs that met a changing mm (call after reading events).
  void RetryReads();
  // Brings every page that is not mapped in its region (swapped, inactive,
  // being read or written) home, past the limit (shutdown, fork). True once
  // every page is mapped and no I/O is in flight; call again until then.
  bool BringHome();
  // Pages whose content is not mapped in their region.
  uint64_t pages_away() const { return swapped_ + inactive_ + writes_in_flight_pages_ + reads_in_flight_pages_; }
  void set_draining(bool on) { draining_ = on; }

  // ---- evictor.cc ------------------------------------------------------
  // Deactivates and writes back until below the low watermark, doing at most
  // `budget` pages of work. Returns true if more work is pending.
  bool Evict(uint32_t budget);
  // Read-ahead cut short for want of memory or reserve, retried now that
  // eviction or completions may have freed some (no fault is waiting).
  void ResumePrefetch();
  void CompleteWrite(Op* op);
  // A batch back from the seal worker: drops the clean and zero pages,
  // writes the dirty runs.
  void CompleteSeal(Op* batch);

  // ---- regions and the page lifecycle (core.cc) --------------------------
  // A new region: registered with the uffd; pages already present (Adopt of
  // memory in use) are counted resident.
  // `fresh`: the caller has just mmapped it (Map, the preload), so state the
  // pager holds there is an earlier occupant's, set aside (held_).
  Status AddRegion(uintptr_t addr, uint64_t len, bool fresh);
  // Pager::Unmap: unregisters (so munmap raises no event this thread would
  // have to read), forgets, then unmaps.
  Status UnmapRegion(uintptr_t addr, uint64_t len);
  // Events. REMOVE (MADV_DONTNEED, MADV_FREE): the pages read as zeros now.
  void HandleRemove(uintptr_t start, uintptr_t end);
  void HandleUnmap(uintptr_t start, uintptr_t end);
  void HandleRemap(uintptr_t from, uintptr_t to, uint64_t len);
  // Pager::Pin / Unpin. Pins the resident pages of [addr, addr+len) and
  // returns how many of its pages are not resident (the caller touches them
  // and pins again); Unpin returns 0. Fails if the range is not inside a
  // paged region.
  Result<uint64_t> SetPinned(uintptr_t addr, uint64_t len, bool on);
  // A fault outside every known region: a registered range grown in place.
  void NoteFaultAddress(uintptr_t addr);
  // Drops state set aside whose event never came (see held_); true while
  // any is held, so the loop keeps waking to expire it.
  void ExpireHeld(uint64_t now);
  bool holding() const { return !held_.empty() || !moved_away_.empty(); }
  // Unregisters every known region (shutdown; closing the uffd does the rest).
  void UnregisterAll();

  // Whether a fault needing `want` fresh frames may proceed now: the number
  // it may have (0: wait). Counts nothing.
  uint32_t Admit(uint32_t want) const;
  bool throttled() const;
  bool over_high_watermark() const { return resident_ > high_wm_; }
  // When the loop must call Evict() again although nothing else happens
  // (0: not before some other event).
  uint64_t next_evict_ns() const { return evicting_ && !draining_ ? next_evict_ns_ : 0; }
  void PublishStats();
  uint64_t ops_in_flight() const { return ops_in_flight_; }

  const Uffd& uffd() const { return uffd_; }
  StatsBlock& stats() { return *stats_; }
  PageTable& table() { return table_; }
  Frames& frames() { return frames_; }
  const ReserveArena* arena() const { return reserve_->arena(); }
  bool eviction_paused() const;
  bool waiting_for_memory = false;  // a fault is parked: evict even below high

 private:
  friend class PagerCoreTestPeer;

  // Shared helpers.
  Op* NewOp(StoreOp::Kind kind, uint32_t slot, uint32_t pages, std::byte* buf);
  // Gives the op back, and its buffer with it unless the buffer was handed on.
  void FreeOp(Op* op, bool with_buffer = true);
  void Submit(Op* op);
  void FreeSlot(PageEntry& e);
  void PushActive(uint64_t page, PageEntry& e);
  void PushInactive(uint64_t page, PageEntry& e);
  void SetResident(uint64_t page, PageEntry& e, bool referenced);
  // Releases what the page holds (frame, slot, its share of the counters);
  // the entry itself is left to the caller.
  void Forget(uint64_t page, PageEntry& e);
  // The pages are gone: they read as zeros. `unmapped`: their addresses no
  // longer belong to a region (queue entries become stale, chunks trimmed).
  void Discard(uint64_t first, uint64_t pages, bool unmapped);
  void PurgeQueues();
  // Moves a page's state, and the ops in flight that name it, to dst_page;
  // `queue`: queued there (not for held pages, which nothing may evict).
  void MovePage(uint64_t page, uint64_t dst_page, bool queue);
  // Address reuse across threads (docs/design.md). The kernel queues an
  // UNMAP, or a mremap's REMAP and its UNMAP of the old range, only after
  // the thread dropped the mmap lock, and another thread can map the freed
  // range meanwhile: its REMAP into it, or its fresh Adopt, can reach the
  // pager first. SetAside moves the state found there to a held range of
  // page numbers above user space (kHeldBase), where no fault, install or
  // eviction can reach it; the late REMAP takes it from there, the late
  // UNMAP drops it there, and the new occupant's state is left alone.
  void SetAside(uint64_t first, uint64_t pages);
  // Calls fn(first, n, held) over [first, first+pages) in pieces: held is
  // where a piece's set-aside state is (that part of the record is
  // consumed), or kNotHeld for the range's own.
  template <class Fn>
  void ForRangeAndHeld(uint64_t first, uint64_t pages, Fn&& fn);
  static bool IsHeld(uint64_t page) { return page >= kHeldBase; }
  // Drops set-aside state whose range is gone (its late UNMAP, or expiry).
  void DropHeld(uint64_t at, uint64_t pages);
  // Installs pages [from, n) of a run starting at page `first`, from src
  // (page k at src + k pages). Calls installed(k) for each page installed and
  // gone(k) for each with no registered VMA (skipped). Returns with `done` ==
  // n, or with how it stopped at `done`: kMmChanging (retry from there after
  // the events) or kFailed (errno in `error`).
  template <class Installed, class Gone>
  UffdRun InstallRun(uint64_t first, const std::byte* src, uint32_t from, uint32_t n, Installed installed,
                     Gone gone);

  // fault_handler.cc
  Outcome ServeEmpty(Fault& f, uint64_t page);
  Outcome ServeSwapped(Fault& f, uint64_t page, PageEntry& e);
  // Where a staged page's bytes are: its own frame (given up by the
  // install), a frame a batch has pinned (kept), or a write's buffer (as the
  // store got it: with encryption, sealed).
  enum class Staged { kFrame, kPinnedFrame, kWriteBuffer };
  Outcome ServeStaged(Fault& f, uint64_t page, PageEntry& e, const std::byte* src, Staged from);
  // The plaintext of the page at slot `slot` of a write buffer: `src` itself,
  // or decrypted into scratch_; nullptr if it does not open (a bug).
  const std::byte* Unsealed(const std::byte* src, uint32_t slot);
  void Poison(uint64_t page, PageEntry& e, const char* why);
  uint32_t Window(uint64_t page);
  uint32_t ReadRun(uint64_t page, const PageEntry& e, uint32_t max);
  // An op reading the `n` swapped pages from `page` (slot-contiguous) into
  // `buf`, their entries marked as being read by it; not yet submitted.
  Op* StartRead(uint64_t page, const PageEntry& e, uint32_t n, std::byte* buf);
  // Reads the swapped pages of a prefetch plan, as far as PrefetchBudget
  // allows; no thread waits on them, and they are installed unreferenced
  // (the first to go if the program never touches them).
  void ReadAhead(const Prefetcher::Plan& plan);
  uint32_t PrefetchBudget(uint32_t want) const;
  Outcome Wait(Fault& f);

  // evictor.cc
  uint32_t Deactivate(uint32_t batch);
  uint32_t DeactivateRun(uint64_t first, uint32_t pages);
  uint32_t WriteBack(uint32_t batch);
  void PauseEviction(int err);

  // First member, so destroyed last: after uffd_ is closed, a populate of
  // its worker blocked in a fault on a registered range is released.
  CowBreaker cow_;
  const Config cfg_;
  Uffd uffd_;
  Frames frames_;
  std::unique_ptr<Reserve> reserve_;
  Store* store_;
  StatsBlock* stats_;
  PageTable table_;
  SlotAllocator slots_;
  RegionSet regions_;
  std::unique_ptr<PageCodec> codec_;
  SealWorker sealer_;  // after frames_ and codec_, which it uses
  uint64_t next_gen_ = 1;        // write generations: 0 is "never written"
  uint64_t sealing_pages_ = 0;   // inactive pages in a batch at the seal worker
  std::vector<std::byte> scratch_;  // one page: a write buffer's page, decrypted

  const uint64_t limit_;
  const uint64_t high_wm_, low_wm_;
  const uint64_t inactive_target_;
  const uint32_t max_run_;
  std::vector<std::byte> zeros_;  // one run of zero pages, the source of zero-fills

  uint64_t resident_ = 0;
  uint64_t inactive_ = 0;
  uint64_t swapped_ = 0;
  // The clock's queues grow with what is resident: metadata, not pool.
  template <class T>
  using MetaDeque = std::deque<T, MetaAllocator<T>>;
  MetaDeque<uint64_t> active_q_;    // the clock: front is the hand
  MetaDeque<uint64_t> inactive_q_;  // FIFO: front is written back first
  uint64_t stale_entries_ = 0;      // queue entries of unmapped pages

  // Request state is pool memory even when malloc is not jemalloc.
  template <class T>
  using PoolVector = std::vector<T, PoolAllocator<T>>;
  PoolVector<Op*> retry_reads_;
  PoolVector<Op*> ops_;  // by op id; allocated from the arena, freed in ~PagerCore
  PoolVector<uint32_t> free_ops_;
  uint64_t ops_in_flight_ = 0;
  uint64_t writes_in_flight_pages_ = 0;
  uint64_t reads_in_flight_pages_ = 0;

  bool evicting_ = false;
  bool stuck_ = false;  // nothing resident can be evicted: the limit is soft
  bool warned_stuck_ = false;
  bool mm_changing_ = false;  // this Evict() saw EAGAIN: an event is pending
  uint64_t next_evict_ns_ = 0;    // Evict() does nothing before then
  uint64_t evict_backoff_ns_ = 0;
  uint64_t paused_until_ns_ = 0;
  uint64_t pause_backoff_ns_ = 0;
  bool swap_full_ = false;

  // Sequential detection for zero-fill-ahead.
  uint64_t next_expected_page_ = ~uint64_t{0};
  uint32_t window_ = 1;
  Prefetcher prefetch_;  // read-ahead and prefetch of swap-ins
  static constexpr uint32_t kMaxPrefetchOps = 16;
  static constexpr size_t kSpareOps = 16;  // freed Ops kept for reuse (FreeOp)
  static constexpr uint64_t kGoneGraceNs = 1'000'000'000;  // CompleteRead
  uint32_t prefetch_ops_ = 0;  // read-ahead ops in flight

  struct Held {
    uint64_t first;     // the range's own first page and length
    uint64_t pages;
    uint64_t at;        // where its state is held
    uint64_t since_ns;  // dropped after kHeldNs (ExpireHeld)
  };
  static constexpr uint64_t kHeldBase = (uint64_t{1} << 47) / kPageSize;  // above x86-64 user space
  static constexpr uint64_t kNotHeld = ~uint64_t{0};
  static constexpr uint64_t kHeldNs = 10'000'000'000ull;
  std::vector<Held, MetaAllocator<Held>> held_;  // a few at most, for microseconds
  // Old ranges of moves whose UNMAP is still to come (HandleRemap); dropped
  // after kHeldNs (MREMAP_DONTUNMAP sends none).
  std::vector<Held, MetaAllocator<Held>> moved_away_;
  uint64_t next_held_page_ = kHeldBase;

  bool draining_ = false;  // shutdown or fork: bring everything back, ignore the limit
  bool warned_overflow_ = false;
};

template <class Installed, class Gone>
UffdRun PagerCore::InstallRun(uint64_t first, const std::byte* src, uint32_t from, uint32_t n,
                              Installed installed, Gone gone) {
  UffdRun out;
  out.done = from;
  while (out.done < n) {
    const size_t at = out.done;
    UffdRun r = uffd_.Copy(PageTable::AddrOf(first + at), src + at * kPageSize, n - at);
    for (size_t k = at; k < at + r.done; k++) installed(static_cast<uint32_t>(k));
    out.done = at + r.done;
    if (r.stop == UffdStop::kNone) continue;
    if (r.stop == UffdStop::kGone) {
      // No registered VMA there. COPY fails with EAGAIN while an UNMAP or
      // REMAP is queued, and the loop handles events before it installs, so
      // a page the pager still tracks gets here only if it lost track of
      // one (events disabled). The kernel's view wins.
      gone(static_cast<uint32_t>(out.done));
      out.done++;
      continue;
    }
    out.stop = r.stop == UffdStop::kMmChanging ? UffdStop::kMmChanging : UffdStop::kFailed;
    out.error = r.error;
    break;
  }
  return out;
}

}  // namespace pager

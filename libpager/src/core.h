// The state the pager thread owns, shared by its parts: the fault handler
// (fault_handler.cc), the evictor (evictor.cc) and the event loop (pager.cc).
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
#pragma once

#include <linux/userfaultfd.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "frames.h"
#include "page_table.h"
#include "pager/pager.h"
#include "reserve.h"
#include "reserve_arena.h"
#include "slot_allocator.h"
#include "stats.h"
#include "uffd.h"

namespace pager {

inline constexpr uint32_t kMaxRun = 256;  // pages per store op (1 MiB)

// One store op and the pages it carries.
struct Op {
  StoreOp io;
  uint64_t pages[kMaxRun];  // the page (address / kPageSize) of each slot of the run
  uint64_t t0_ns = 0;       // when the fault that started a read was read
  uint64_t fault_page = 0;  // the page that faulted (reads): installed referenced
  uint32_t retries = 0;

  // Request state is pool memory even when malloc is not jemalloc.
  static void* operator new(size_t n) { return PoolAlloc(n); }
  static void operator delete(void* p) { PoolFree(p); }
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
  PagerCore(const Config& cfg, Uffd uffd, std::optional<Uffd> staging, Frames frames,
            std::unique_ptr<Reserve> reserve, Store* store, StatsBlock* stats);

  // ---- fault_handler.cc ------------------------------------------------
  enum class Outcome { kDone, kWait, kRetry };
  // Serves a fault: kWait when it must wait for memory (parked by the
  // caller), kRetry when the mm is changing (retried after the next events).
  Outcome ServeFault(Fault& f);
  void CompleteRead(Op* op);
  // Re-runs the installs that met EAGAIN (call after reading events).
  void RetryReads();
  // Installs the swapped and staged pages of [first, first+pages) back into
  // memory, ignoring the limit (shutdown). Returns false while work remains.
  bool SwapInRange(uint64_t first, uint64_t pages);
  void set_draining(bool on) { draining_ = on; }

  // ---- evictor.cc ------------------------------------------------------
  // Deactivates and writes back until below the low watermark, doing at most
  // `budget` pages of work. Returns true if more work is pending.
  bool Evict(uint32_t budget);
  void CompleteWrite(Op* op);
  void CompleteDrop(uint64_t first, uint64_t pages);  // WP mode: madvise done

  // ---- page lifecycle (pager.cc) ----------------------------------------
  // The pages are gone (MADV_DONTNEED, munmap): they read as zeros now.
  void Discard(uint64_t first, uint64_t pages);
  // The pages moved (mremap).
  void Relocate(uint64_t from, uint64_t to, uint64_t pages);
  // True when a REMOVE event for [first, first+pages) is the evictor's own
  // madvise (WP mode), consumed by the call.
  bool TakeOwnDrop(uint64_t first, uint64_t pages);

  // Whether a fault needing `want` fresh frames may proceed now: the number
  // it may have (0: wait). Counts nothing.
  uint32_t Admit(uint32_t want) const;
  bool throttled() const;
  bool over_high_watermark() const { return resident_ > high_wm_; }
  void PublishStats();
  uint64_t ops_in_flight() const { return ops_in_flight_; }

  // Requests for the loop, produced by the evictor in WP mode.
  struct DropRequest {
    uint64_t first;
    uint64_t pages;
  };
  std::vector<DropRequest> TakeDropRequests() { return std::move(drop_requests_); }

  const Uffd& uffd() const { return uffd_; }
  Store* store() { return store_; }
  StatsBlock& stats() { return *stats_; }
  PageTable& table() { return table_; }
  Frames& frames() { return frames_; }
  bool eviction_paused() const;
  bool waiting_for_memory = false;  // a fault is parked: evict even below high

 private:
  friend class PagerCoreTestPeer;

  // Shared helpers.
  Op* NewOp(StoreOp::Kind kind, uint32_t slot, uint32_t pages, std::byte* buf);
  void FreeOp(Op* op);
  void Submit(Op* op);
  void FreeSlot(PageEntry& e);
  void PushActive(uint64_t page, PageEntry& e);
  void PushInactive(uint64_t page, PageEntry& e);
  void SetResident(uint64_t page, PageEntry& e, bool referenced);

  // fault_handler.cc
  Outcome ServeEmpty(Fault& f, uint64_t page);
  Outcome ServeSwapped(Fault& f, uint64_t page, PageEntry& e);
  Outcome ServeStaged(Fault& f, uint64_t page, PageEntry& e, const std::byte* src, bool from_frame);
  void Poison(uint64_t page, PageEntry& e, uint32_t tid, const char* why);
  uint32_t Window(uint64_t page);
  uint32_t ReadRun(uint64_t page, const PageEntry& e, uint32_t max);
  Outcome Wait(Fault& f);

  // evictor.cc
  uint32_t Deactivate(uint32_t batch);
  uint32_t DeactivateRun(uint64_t first, uint32_t pages);
  uint32_t WriteBack(uint32_t batch);
  void PauseEviction(int err);

  const Config cfg_;
  Uffd uffd_;
  std::optional<Uffd> staging_;  // MOVE mode
  Frames frames_;
  std::unique_ptr<Reserve> reserve_;
  Store* store_;
  StatsBlock* stats_;
  PageTable table_;
  SlotAllocator slots_;

  const uint64_t limit_;
  const uint64_t high_wm_, low_wm_;
  const uint64_t inactive_target_;
  const uint32_t max_run_;
  std::vector<std::byte> zeros_;  // one run of zero pages, the source of zero-fills

  uint64_t resident_ = 0;
  uint64_t inactive_ = 0;
  uint64_t swapped_ = 0;
  // The pager's own containers allocate from the reserve arena explicitly
  // (reserve_arena.h: covered even when malloc is not jemalloc).
  template <class T>
  using PoolDeque = std::deque<T, PoolAllocator<T>>;
  template <class T>
  using PoolVector = std::vector<T, PoolAllocator<T>>;
  PoolDeque<uint64_t> active_q_;    // the clock: front is the hand
  PoolDeque<uint64_t> inactive_q_;  // FIFO: front is written back first

  PoolVector<Op*> retry_reads_;
  PoolVector<std::unique_ptr<Op>> ops_;
  PoolVector<uint32_t> free_ops_;
  uint64_t ops_in_flight_ = 0;
  uint64_t writes_in_flight_pages_ = 0;

  bool evicting_ = false;
  bool stuck_ = false;  // nothing resident can be evicted: the limit is soft
  bool warned_stuck_ = false;
  bool mm_changing_ = false;  // this Evict() saw EAGAIN: an event is pending
  uint64_t paused_until_ns_ = 0;
  uint64_t pause_backoff_ns_ = 0;
  bool swap_full_ = false;

  // Sequential detection for zero-fill-ahead and read-ahead.
  uint64_t next_expected_page_ = ~uint64_t{0};
  uint32_t window_ = 1;

  // WP mode: drops requested of the dropper thread, and those not yet done.
  // No page of a pending drop is installed until it is done: the madvise
  // would zap the fresh page.
  struct PendingDrop {
    uint64_t first, pages;
    bool remove_seen;
  };
  bool InPendingDrop(uint64_t page) const;
  std::vector<DropRequest> drop_requests_;
  PoolVector<PendingDrop> own_drops_;

  bool draining_ = false;  // shutdown: bring everything back, ignore the limit
  uint64_t zero_checksum_ = 0;
  bool FillFrame(uint32_t frame, const std::byte* src);
};

}  // namespace pager

// Which swapped pages to read, beyond the one a thread faulted on.
//
// A swap-in over NFS costs a round trip (~55 us for 4 KiB on loopback,
// PLATFORM.md) whatever its size up to a MiB or so, and the program's thread
// sleeps through it. Reading more than the faulting page per round trip
// (read-ahead, grown by doubling) halves the round trips of a scan each
// time; reading pages *before* any thread faults on them (prefetch, in the
// spirit of Leap) takes the round trip off the program's path altogether.
//
// Streams, not one global "next page": the threads of a program each scan
// their own part, and one expected page would take none of them for
// sequential. Up to kStreams streams are tracked, each a position and a
// stride in pages (1 for a scan, N for a column of a row-major matrix,
// negative for a scan backwards). A fault is matched to the stream whose
// path it lies on; otherwise it starts a stride candidate on the nearest
// stream, and a stride is believed once two faults in a row agree on it
// (Leap's trend, with a window of two), so a random access pattern never
// prefetches.
//
// For a believed stream, the fault's own read grows (stride 1: doubling up
// to `max_window` pages; other strides: the page alone) and pages further
// along are read ahead, up to `max_ahead` pages past the fault, with no
// thread waiting on them. A fault on a page whose read is still in flight is
// a hit: the program caught up with the prefetch, which is pushed further
// (the role of the kernel's PG_readahead mark). A hit that finds the stream
// already far enough ahead asks for nothing, so prefetch goes out in large
// requests, not a page per hit.
//
// Pure bookkeeping: it never looks at the page table. The caller reads only
// the pages of a plan that are swapped, within its memory and reserve budget.
// Not thread-safe: the pager thread owns it.
#pragma once

#include <array>
#include <cstdint>

namespace pager {

class Prefetcher {
 public:
  struct Plan {
    uint32_t sync_pages = 1;  // read for the faulting thread: the page and those after it
    uint64_t ahead_first = 0;  // first page to read ahead
    int64_t stride = 1;        // pages from one read-ahead page to the next
    uint32_t ahead_pages = 0;  // how many (0: none)
    int stream = -1;           // whose plan (for Stopped)
  };

  // `max_ahead` 0: no prefetch (read-ahead with the fault still grows).
  Prefetcher(uint32_t max_window, uint32_t max_ahead);

  // A fault at `page`, whose copy is in the store.
  Plan OnMiss(uint64_t page);
  // A fault at `page`, whose read is in flight.
  Plan OnHit(uint64_t page);
  // The caller read only the first `steps` pages of `plan`'s read-ahead
  // (out of memory or reserve to spare): the rest is asked for again later.
  void Stopped(const Plan& plan, uint32_t steps);
  // A read-ahead of `stream` completed: its memory and reserve are free
  // again, so what Stopped held back, up to `max_ahead` past the stream's
  // last fault, can go out. A program faster than the store finds its pages
  // in flight (OnHit); one slower than the store takes no fault at all until
  // the end of the read-ahead, and this keeps the reads going meanwhile.
  Plan OnLanded(int stream);
  // Streams whose read-ahead Stopped cut short, to retry (OnLanded) once
  // memory or reserve is free again.
  bool starved(int stream) const { return streams_[stream].starved; }

  static constexpr int kStreams = 8;

 private:
  struct Stream {
    uint64_t last = 0;      // the page of the stream's last fault
    int64_t stride = 0;     // believed stride (0: none yet)
    int64_t candidate = 0;  // the last fault's distance from the one before
    uint64_t expect = 0;    // the page right after the stream's last read
    uint64_t frontier = 0;  // stride > 0 (< 0): pages below (above) are requested
    uint32_t window = 1;    // stride 1: the fault's read, doubling
    uint64_t used = 0;      // for least-recently-used replacement; 0: free
    bool starved = false;   // Stopped short of its plan
  };

  // Steps (of the stream's stride) from its last fault to `page`: > 0 if
  // `page` lies ahead on its path, 0 otherwise.
  static int64_t StepsAhead(const Stream& s, uint64_t page);
  Stream* Match(uint64_t page);
  Stream& Nearest(uint64_t page);
  // Read-ahead from the frontier to `max_ahead_` pages past `page`, once
  // less than half of that is left.
  // `eager`: top up whatever is missing.
  Plan Ahead(Stream& s, uint64_t page, Plan plan, bool eager = false) const;

  const uint32_t max_window_;
  const uint32_t max_ahead_;
  std::array<Stream, kStreams> streams_{};
  uint64_t clock_ = 0;
};

}  // namespace pager

// Makes pages exclusive again for UFFDIO_MOVE, off the pager thread.
//
// After a fork, every anonymous page of the parent is marked shared, and
// UFFDIO_MOVE refuses it (EBUSY) until it is written: while the child lives,
// and after it has exited or exec'd too (the kernel clears the page's
// exclusive mark at fork and sets it again only on a write fault). Without
// help, memory that was resident at a fork — every fork+exec of a shell —
// could not be evicted until the program wrote it again.
//
// MADV_POPULATE_WRITE (5.14) takes a write fault on each page without
// changing a byte: a page no longer shared is simply marked exclusive again;
// one a live child still shares is copied (the parent's copy can then be
// evicted; the child keeps its own).
//
// It runs on a thread of its own: a page can go missing between the refused
// move and the madvise (mremap with MREMAP_DONTUNMAP leaves a registered,
// empty range), and populating a missing page of a registered range raises a
// uffd fault, which the pager thread must be free to serve
// (UffdContract.PopulateWriteOnAMissingPageRaisesAFaultAndWaitsForIt). If the range was
// unmapped and its addresses reused meanwhile, the populate touches the new
// mapping's pages: a waste, never a change of data.
//
// The worker starts with the pager's other threads (Start), not at the first
// request: a thread created later by the pager thread would read, in
// pthread_create, ld.so's list of TLS modules and the link maps of what the
// program has dlopened since (_dl_allocate_tls_init), which under the preload
// live in paged memory: a fault the pager thread itself would have to serve.
//
// Thread-safe: Request is called by the pager thread, the worker runs apart.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace pager {

class CowBreaker {
 public:
  CowBreaker() = default;
  ~CowBreaker();
  CowBreaker(const CowBreaker&) = delete;
  CowBreaker& operator=(const CowBreaker&) = delete;

  // Starts the worker. Called once, with the pager's other threads.
  void Start();
  // Asks for [addr, addr + pages * 4 KiB) to be made exclusive, soon. Never
  // blocks; a request over the queue's bound is dropped (the clock retries).
  void Request(uintptr_t addr, uint64_t pages);
  // Pages populated so far (for tests and stats).
  uint64_t pages_done() const;

 private:
  struct Range {
    uintptr_t addr;
    uint64_t pages;
  };
  void Work();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Range> queue_;  // guarded by mu_
  bool stop_ = false;         // guarded by mu_
  uint64_t done_ = 0;         // guarded by mu_
  std::thread worker_;        // started by Start
};

}  // namespace pager

// The race every paging test runs: threads writing page-specific versions
// to random pages of a region far over the limit while something goes
// wrong underneath (a server killed, stopped, corrupted), every byte
// checked afterwards. Shared by the NFS tests (nfs_pager_test.cc,
// nfs_replicated_test.cc).
//
// A hang is what these tests exist to catch, so every wait on the program's
// threads or on the pager is bounded; past the bound the test binary aborts
// (a thread stuck in a page fault cannot be joined or cancelled).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "pager/pager.h"

namespace pager::testing {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d);

// Runs `fn` on its own thread; aborts the test binary if it has not returned
// within `limit`, naming `what`.
void Within(Clock::duration limit, const char* what, std::function<void()> fn);

// Waits until eviction has written `n` pages through the store; false at
// the deadline.
bool WaitWritten(const Pager& p, uint64_t n, Clock::duration limit = std::chrono::seconds(60));

// Waits until write-back has stopped (the count of pages written holds
// still for a while): every evicted page is on the store.
void WaitWriteBackDone(Pager& p);

// The pager's thread still answers commands (it is not stuck behind the
// store): Sync() returns within 5 s.
void ExpectResponsive(Pager& p, const char* when);

// Polls the backend state, recording every state seen.
struct StateLog {
  bool seen[3] = {};
  // Until `until`.
  void Watch(const Pager& p, Clock::time_point until);
  // Up to `limit` for `want`; true if reached.
  bool WaitFor(const Pager& p, BackendState want, Clock::duration limit);
};

// Threads own disjoint pages (page % threads), and each writes a new version
// of a random own page after checking the version it wrote before. They run
// until told to stop, so they are mid-fault whenever the store fails.
class Hammer {
 public:
  Hammer(unsigned char* base, size_t pages, int threads, uint64_t seed = 1);
  ~Hammer() { Stop(); }

  void Start();
  // Stops and joins the threads; aborts if they do not finish in time.
  void Stop(Clock::duration limit = std::chrono::seconds(120));
  uint64_t ops() const { return ops_.load(); }
  // Pages read back wrong during the run.
  uint64_t bad() const { return bad_.load(); }
  // Pages whose bytes are not their last version; reports the first few.
  uint64_t Verify() const;

 private:
  bool Holds(size_t i) const;

  unsigned char* base_;
  const size_t pages_;
  const int nthreads_;
  const uint64_t seed_;
  std::vector<uint64_t> version_;  // outside paged memory; entry i written only by thread i % threads
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> ops_{0}, bad_{0};
};

}  // namespace pager::testing

// A store driven as the pager drives it, for the store benchmarks: ops of
// one size kept `qd` deep, at sequential or random slots, timed.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <random>
#include <string>

#include "pager/store.h"

namespace pager::bench {

// Collects completions; Next() waits for one.
class Waiter : public StoreListener {
 public:
  void OnComplete(StoreOp* op) override;
  void OnBackendState(BackendState, const std::string&) override {}
  StoreOp* Next();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<StoreOp*> done_;
};

// One workload: `n` ops of `pages` pages, `qd` in flight, at sequential or
// random slots within `span` slots.
struct Work {
  StoreOp::Kind kind;
  uint32_t pages;
  int qd;
  size_t n;
  bool random;
  uint64_t span;
};

uint64_t SlotOf(const Work& w, size_t i, std::mt19937_64& rng);

// Seconds for `w` on the store, whose listener is `waiter`. Exits the
// process if an op fails.
double RunStore(Store* s, Waiter* waiter, const Work& w);

}  // namespace pager::bench

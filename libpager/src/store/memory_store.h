// A store in process memory: for tests and benchmarks of the paging policy.
// Completes every op inline, unless a test delays completions (to hold reads
// and writes in flight while the program races them); a test can also make
// it fail writes or corrupt a slot.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "pager/store.h"

namespace pager {

class MemoryStore : public Store {
 public:
  // `max_slots` caps the store (0: grows without bound).
  explicit MemoryStore(uint64_t max_slots = 0) : max_slots_(max_slots) {}
  ~MemoryStore() override { Stop(); }

  Status Start(StoreListener* listener) override;
  void Submit(StoreOp* op) override;
  void Stop() override;
  std::string Describe() const override { return "memory"; }

  // Test hooks. While set, writes complete with this errno (0 clears).
  void FailWritesWith(int err) { fail_writes_.store(err); }
  // While set, each op completes after a random 0..max_us microseconds, from
  // a thread of the store's, in no particular order: a page stays kReading or
  // kWriting long enough for the program's threads to race it. 0: inline.
  void DelayCompletions(uint32_t max_us) { delay_us_.store(max_us); }
  // Flips a byte of a slot, as a corrupted disk would.
  void Corrupt(uint64_t slot);
  // A slot's bytes as stored, and overwriting them: what a hostile server
  // can do (swap two slots, restore an older copy of one).
  std::vector<std::byte> ReadSlot(uint64_t slot) const;
  void WriteSlot(uint64_t slot, const std::vector<std::byte>& bytes);
  uint64_t slots_allocated() const;

 private:
  struct Delayed {
    uint64_t due_ns;
    StoreOp* op;
  };
  static bool Later(const Delayed& a, const Delayed& b) { return a.due_ns > b.due_ns; }
  void Complete(StoreOp* op);
  void DelayLoop();

  StoreListener* listener_ = nullptr;
  const uint64_t max_slots_;
  std::atomic<int> fail_writes_{0};
  std::atomic<uint32_t> delay_us_{0};
  mutable std::mutex mu_;
  std::vector<std::byte> data_;

  std::mutex delay_mu_;
  std::condition_variable delay_cv_;
  std::vector<Delayed> delayed_;  // a min-heap on due_ns
  bool stopping_ = false;
  uint64_t rng_ = 0x9e3779b97f4a7c15ull;
  std::thread delayer_;
};

}  // namespace pager

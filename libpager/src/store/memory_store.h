// A store in process memory: for tests and benchmarks of the paging policy.
// Completes every op inline; a test can make it fail writes (ENOSPC) or
// hold completions to open race windows.
#pragma once

#include <atomic>
#include <mutex>
#include <vector>

#include "pager/store.h"

namespace pager {

class MemoryStore : public Store {
 public:
  // `max_slots` caps the store (0: grows without bound).
  explicit MemoryStore(uint64_t max_slots = 0) : max_slots_(max_slots) {}

  Status Start(StoreListener* listener) override;
  void Submit(StoreOp* op) override;
  void Stop() override;
  std::string Describe() const override { return "memory"; }

  // Test hooks. While set, writes complete with this errno (0 clears).
  void FailWritesWith(int err) { fail_writes_.store(err); }
  // Flips a byte of a slot, as a corrupted disk would.
  void Corrupt(uint64_t slot);
  uint64_t slots_allocated() const;

 private:
  StoreListener* listener_ = nullptr;
  const uint64_t max_slots_;
  std::atomic<int> fail_writes_{0};
  mutable std::mutex mu_;
  std::vector<std::byte> data_;
};

}  // namespace pager

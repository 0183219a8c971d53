// A store in memory that misbehaves on command, as a server can: it stalls
// (holds every op, moving no byte, until Resume), fails reads or writes with
// an errno, corrupts a slot, reports a backend state. The child store of the
// replicated store's unit tests, where real servers would make timing and
// failures nondeterministic (the NFS behaviour itself is tested against real
// Ganesha servers, nfs_replicated_test.cc).
//
// An op's bytes move when it completes, not when it is submitted: a late
// answer writes into (or reads from) its buffer late, as a server that
// resends after a reconnect does. Thread-safe; completes on the submitting
// thread, or on the thread that calls Resume or Stop.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "pager/store.h"

namespace pager::testing {

class FaultyStore : public Store {
 public:
  Status Start(StoreListener* listener) override;
  void Submit(StoreOp* op) override;
  // Completes what it holds with EIO: what an NFS store does to what its
  // server never answered once Stop's deadline has passed.
  void Stop() override;
  std::string Describe() const override { return "faulty memory"; }

  void Stall();
  // Completes what it held, in order, on the calling thread.
  void Resume();
  void FailReadsWith(int err) { fail_reads_.store(err); }
  void FailWritesWith(int err) { fail_writes_.store(err); }
  // Flips a byte of the slot, as a damaged disk would.
  void Corrupt(uint64_t slot);
  void ReportState(BackendState s) { listener_->OnBackendState(s, "FaultyStore::ReportState"); }

  // The bytes of `slot` (empty if it was never written).
  std::vector<std::byte> Slot(uint64_t slot) const;
  bool Has(uint64_t slot) const;
  uint64_t reads() const { return reads_.load(); }
  uint64_t writes() const { return writes_.load(); }
  size_t held() const;

 private:
  void Execute(StoreOp* op);

  StoreListener* listener_ = nullptr;
  std::atomic<int> fail_reads_{0}, fail_writes_{0};
  std::atomic<uint64_t> reads_{0}, writes_{0};
  mutable std::mutex mu_;
  bool stalled_ = false;
  std::vector<StoreOp*> held_;
  std::vector<std::byte> data_;
  std::vector<bool> written_;
};

}  // namespace pager::testing

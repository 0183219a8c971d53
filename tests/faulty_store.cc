#include "faulty_store.h"

#include <cerrno>
#include <cstring>

#include "reserve_arena.h"

namespace pager::testing {

Status FaultyStore::Start(StoreListener* listener) {
  listener_ = listener;
  return Status();
}

void FaultyStore::Submit(StoreOp* op) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stalled_) {
      OrdinaryHeapScope heap;  // the test's machinery, not the store's debt
      held_.push_back(op);
      return;
    }
  }
  Execute(op);
}

void FaultyStore::Execute(StoreOp* op) {
  const bool write = op->kind == StoreOp::Kind::kWrite;
  (write ? writes_ : reads_).fetch_add(1);
  const uint64_t begin = op->slot * kPageSize, bytes = uint64_t{op->pages} * kPageSize;
  op->error = (write ? fail_writes_ : fail_reads_).load();
  if (op->error == 0) {
    std::lock_guard<std::mutex> l(mu_);
    if (write) {
      if (data_.size() < begin + bytes) {
        OrdinaryHeapScope heap;  // the device's bytes
        data_.resize(begin + bytes);
        written_.resize(op->slot + op->pages);
      }
      memcpy(data_.data() + begin, op->buf, bytes);
      for (uint64_t s = op->slot; s < op->slot + op->pages; s++) written_[s] = true;
    } else if (data_.size() < begin + bytes) {
      op->error = EIO;  // past the end: a short read, never zeros
    } else {
      memcpy(op->buf, data_.data() + begin, bytes);
    }
  }
  listener_->OnComplete(op);
}

void FaultyStore::Stall() {
  std::lock_guard<std::mutex> l(mu_);
  stalled_ = true;
}

void FaultyStore::Resume() {
  std::vector<StoreOp*> ops;
  {
    std::lock_guard<std::mutex> l(mu_);
    stalled_ = false;
    ops.swap(held_);
  }
  for (StoreOp* op : ops) Execute(op);
}

void FaultyStore::Stop() {
  std::vector<StoreOp*> ops;
  {
    std::lock_guard<std::mutex> l(mu_);
    ops.swap(held_);
  }
  for (StoreOp* op : ops) {
    op->error = EIO;
    listener_->OnComplete(op);
  }
}

void FaultyStore::Corrupt(uint64_t slot) {
  std::lock_guard<std::mutex> l(mu_);
  if ((slot + 1) * kPageSize <= data_.size()) data_[slot * kPageSize + 99] ^= std::byte{0x5a};
}

std::vector<std::byte> FaultyStore::Slot(uint64_t slot) const {
  std::lock_guard<std::mutex> l(mu_);
  if (slot >= written_.size() || !written_[slot]) return {};
  return std::vector<std::byte>(data_.begin() + static_cast<long>(slot * kPageSize),
                                data_.begin() + static_cast<long>((slot + 1) * kPageSize));
}

bool FaultyStore::Has(uint64_t slot) const {
  std::lock_guard<std::mutex> l(mu_);
  return slot < written_.size() && written_[slot];
}

size_t FaultyStore::held() const {
  std::lock_guard<std::mutex> l(mu_);
  return held_.size();
}

}  // namespace pager::testing

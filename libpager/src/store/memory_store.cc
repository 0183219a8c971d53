#include "store/memory_store.h"

#include <cerrno>
#include <cstring>

#include "reserve_arena.h"

namespace pager {

Status MemoryStore::Start(StoreListener* listener) {
  listener_ = listener;
  return Status();
}

void MemoryStore::Submit(StoreOp* op) {
  const uint64_t end = (op->slot + op->pages) * kPageSize;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (op->kind == StoreOp::Kind::kWrite) {
      if (int err = fail_writes_.load(); err != 0) {
        op->error = err;
      } else if (max_slots_ != 0 && op->slot + op->pages > max_slots_) {
        op->error = ENOSPC;
      } else {
        if (data_.size() < end) {
          OrdinaryHeapScope heap;  // the store's slots are the swap device, not the pager's debt
          data_.resize(end);
        }
        memcpy(data_.data() + op->slot * kPageSize, op->buf, uint64_t{op->pages} * kPageSize);
        op->error = 0;
      }
    } else if (data_.size() < end) {
      op->error = EIO;  // never written: a short read, not zeros
    } else {
      memcpy(op->buf, data_.data() + op->slot * kPageSize, uint64_t{op->pages} * kPageSize);
      op->error = 0;
    }
  }
  listener_->OnComplete(op);
}

void MemoryStore::Stop() {
  std::lock_guard<std::mutex> l(mu_);
  data_.clear();
  data_.shrink_to_fit();
}

void MemoryStore::Corrupt(uint64_t slot) {
  std::lock_guard<std::mutex> l(mu_);
  if ((slot + 1) * kPageSize <= data_.size()) data_[slot * kPageSize + 123] ^= std::byte{0x5a};
}

uint64_t MemoryStore::slots_allocated() const {
  std::lock_guard<std::mutex> l(mu_);
  return data_.size() / kPageSize;
}

}  // namespace pager

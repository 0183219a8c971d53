#include "store/memory_store.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "reserve_arena.h"

namespace pager {

Status MemoryStore::Start(StoreListener* listener) {
  listener_ = listener;
  // Started here, on the thread that starts the pager, never lazily from
  // Submit: Submit runs on the pager thread, and pthread_create takes
  // glibc's dl_load_lock, which a program thread holds while pthread_create
  // writes the TLS of a new thread whose stack is paged. That thread then
  // faults with the lock held, and the pager, waiting for the lock, never
  // serves it (a TSan run of EvictionRace.Issue9CallsFromAThreadWithAPagedStack
  // hung so). The pager's threads start no threads once it runs.
  delayer_ = std::thread([this] { DelayLoop(); });
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
  Complete(op);
}

namespace {
uint64_t MonotonicNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}
}  // namespace

// The bytes moved at Submit; only the news of it is late. A real store may
// move them at any time before completing, and the pager can have a read and
// a write of one slot in flight at once: a page discarded during its swap-in
// frees its slot at once, and a write may take it. The read's bytes are then
// ignored (its page no longer names the op, core.h), so neither order, nor
// this store's, changes what the pager keeps.
void MemoryStore::Complete(StoreOp* op) {
  const uint32_t max_us = delay_us_.load();
  if (max_us == 0) {
    listener_->OnComplete(op);
    return;
  }
  {
    std::lock_guard<std::mutex> l(delay_mu_);
    rng_ ^= rng_ << 13, rng_ ^= rng_ >> 7, rng_ ^= rng_ << 17;  // xorshift64
    OrdinaryHeapScope heap;  // a test's machinery, not the pager's debt
    delayed_.push_back({MonotonicNs() + rng_ % (uint64_t{max_us} + 1) * 1000, op});
    std::push_heap(delayed_.begin(), delayed_.end(), Later);
  }
  delay_cv_.notify_one();
}

void MemoryStore::DelayLoop() {
  listener_->OnThreadStart();
  std::unique_lock<std::mutex> l(delay_mu_);
  for (;;) {
    if (delayed_.empty()) {
      if (stopping_) return;
      delay_cv_.wait(l);
      continue;
    }
    const uint64_t now = MonotonicNs();
    if (!stopping_ && delayed_.front().due_ns > now) {
      delay_cv_.wait_for(l, std::chrono::nanoseconds(delayed_.front().due_ns - now));
      continue;
    }
    std::pop_heap(delayed_.begin(), delayed_.end(), Later);
    StoreOp* op = delayed_.back().op;
    delayed_.pop_back();
    l.unlock();
    listener_->OnComplete(op);
    l.lock();
  }
}

void MemoryStore::Stop() {
  {
    std::lock_guard<std::mutex> l(delay_mu_);
    stopping_ = true;  // what is still delayed completes now
  }
  delay_cv_.notify_all();
  if (delayer_.joinable()) delayer_.join();
  std::lock_guard<std::mutex> l(mu_);
  data_.clear();
  data_.shrink_to_fit();
}

void MemoryStore::Corrupt(uint64_t slot) {
  std::lock_guard<std::mutex> l(mu_);
  if ((slot + 1) * kPageSize <= data_.size()) data_[slot * kPageSize + 123] ^= std::byte{0x5a};
}

std::vector<std::byte> MemoryStore::ReadSlot(uint64_t slot) const {
  std::lock_guard<std::mutex> l(mu_);
  if ((slot + 1) * kPageSize > data_.size()) return {};
  return std::vector<std::byte>(data_.begin() + static_cast<long>(slot * kPageSize),
                                data_.begin() + static_cast<long>((slot + 1) * kPageSize));
}

void MemoryStore::WriteSlot(uint64_t slot, const std::vector<std::byte>& bytes) {
  std::lock_guard<std::mutex> l(mu_);
  if ((slot + 1) * kPageSize <= data_.size() && bytes.size() == kPageSize) {
    memcpy(data_.data() + slot * kPageSize, bytes.data(), kPageSize);
  }
}

uint64_t MemoryStore::slots_allocated() const {
  std::lock_guard<std::mutex> l(mu_);
  return data_.size() / kPageSize;
}

}  // namespace pager

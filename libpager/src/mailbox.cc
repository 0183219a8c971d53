#include "mailbox.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pager {
namespace {

// futex(2) directly: std::atomic::wait may take a process-wide lock of its
// own on the way (libstdc++'s waiter pool).
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
void FutexWakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
}
static_assert(sizeof(std::atomic<uint32_t>) == 4 && std::atomic<uint32_t>::is_always_lock_free);

}  // namespace

Mailbox::Mailbox() : free_(~uint64_t{0}) { static_assert(kSlots == 64, "one bit a slot"); }

Mailbox::Request* Mailbox::Claim() {
  for (;;) {
    const uint32_t seq = released_seq_.load(std::memory_order_acquire);
    uint64_t free = free_.load(std::memory_order_acquire);
    while (free != 0) {
      const int i = __builtin_ctzll(free);
      if (free_.compare_exchange_weak(free, free & ~(uint64_t{1} << i), std::memory_order_acquire)) {
        Request* r = &slots_[i];
        r->done_.store(0, std::memory_order_relaxed);
        r->ok_ = true;
        r->message_[0] = '\0';
        r->out = 0;
        return r;
      }
    }
    FutexWait(&released_seq_, seq);  // 64 calls in flight: wait for one to end
  }
}

void Mailbox::Post(Request* r) {
  Request* head = posted_.load(std::memory_order_relaxed);
  do {
    r->next_ = head;
  } while (!posted_.compare_exchange_weak(head, r, std::memory_order_release, std::memory_order_relaxed));
}

Status Mailbox::Wait(Request* r) {
  while (r->done_.load(std::memory_order_acquire) == 0) FutexWait(&r->done_, 0);
  return r->ok_ ? Status() : Status::Error(r->message_);
}

void Mailbox::Release(Request* r) {
  free_.fetch_or(uint64_t{1} << (r - slots_), std::memory_order_release);
  released_seq_.fetch_add(1, std::memory_order_release);
  FutexWakeAll(&released_seq_);
}

Mailbox::Request* Mailbox::TakeAll() {
  Request* newest = posted_.exchange(nullptr, std::memory_order_acquire);
  Request* oldest = nullptr;
  while (newest != nullptr) {  // reverse: requests are handled in posting order
    Request* next = newest->next_;
    newest->next_ = oldest;
    oldest = newest;
    newest = next;
  }
  return oldest;
}

void Mailbox::Complete(Request* r, const Status& result) {
  r->ok_ = result.ok();
  if (!r->ok_) {
    strncpy(r->message_, result.message().c_str(), sizeof r->message_ - 1);
    r->message_[sizeof r->message_ - 1] = '\0';
  }
  r->done_.store(1, std::memory_order_release);
  FutexWakeAll(&r->done_);
}

}  // namespace pager

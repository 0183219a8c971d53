// Requests from the program's threads to the pager thread (Map, Unmap, Adopt,
// Sync, fork and shutdown), without a lock the program can hold.
//
// A program thread can be interrupted by a signal whose handler touches paged
// memory or unmaps it; if that thread held a lock the pager thread needs
// before it can serve the fault or read the event, the process hangs (issue
// 9: a handler's munmap). So nothing here takes a lock: requests live in
// fixed slots inside the mailbox (never on the caller's stack, which may be
// paged memory the pager thread would fault on), are claimed and posted with
// atomics, completion is a futex word, and the result's text is copied into
// the slot (no allocation shared with the caller).
//
// Thread-safe: any number of program threads; one pager thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "pager/status.h"

namespace pager {

class Mailbox {
 public:
  enum class Kind : uint8_t {
    kAdopt, kAdoptNew, kUnmap, kSync, kBeginFork, kEndFork, kShutdown, kPageState, kPageSlot, kPin, kPinIfPaged, kUnpin, kTestStall
  };

  struct Request {
    Kind kind = Kind::kSync;
    uintptr_t addr = 0;
    uint64_t len = 0;
    uint64_t out = 0;  // a result value (kPageState, kPageSlot, kPin*)

   private:
    friend class Mailbox;
    bool ok_ = true;
    char message_[256] = {};
    std::atomic<uint32_t> done_{0};  // futex word: 1 once complete
    Request* next_ = nullptr;        // in the posted stack, then the taken list
  };

  Mailbox();
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  // ---- program threads ----
  // Claims a free slot, sleeping while all are in use.
  Request* Claim();
  // Makes the request visible to TakeAll. The caller then wakes the pager.
  void Post(Request* r);
  // Sleeps until the pager completes the request; returns its result.
  Status Wait(Request* r);
  void Release(Request* r);

  // ---- the pager thread ----
  // Every request posted so far, oldest first, linked through Next().
  Request* TakeAll();
  static Request* Next(const Request* r) { return r->next_; }
  void Complete(Request* r, const Status& result);

 private:
  static constexpr int kSlots = 64;
  Request slots_[kSlots];
  std::atomic<uint64_t> free_;            // bit i: slot i is free
  std::atomic<uint32_t> released_seq_{0};  // futex word for Claim's sleepers
  std::atomic<Request*> posted_{nullptr};  // a stack: newest first
};

}  // namespace pager

// The userfaultfd: the only place that issues its ioctls, and the only place
// that reads their errnos. Callers get typed outcomes (UffdStop), so no
// caller can take "this run crosses a VMA boundary" for "this range is gone"
// and discard pages the program still has.
//
// Kernel behaviour relied on here, each pinned by a test of
// tests/uffd_contract_*_test.cc (UffdContract.*):
//  - an install whose run spans two VMAs fails whole with ENOENT and no
//    progress, a move with EINVAL (the kernel checks the run against one VMA
//    up front: CopyAcrossTwoVmas*, MoveAcrossTwoSourceVmas*): the run is
//    split and retried here, never reported to the caller;
//  - a run stopped part-way reports its progress and fails with EAGAIN (an
//    already-present page in a COPY, an absent source page in a MOVE:
//    CopyMeetingAPresentPage*, MoveStoppingAtAnAbsentSourcePage*): the rest
//    is retried here from where it stopped, which gives the real error;
//  - EAGAIN with no progress means the mm is changing: an event is queued on
//    *this* uffd and not yet read (MoveAndCopyWhileAnEventIsUnread*). A move
//    issued on the staging uffd never sees the regions' events
//    (MoveOnAStagingUffdIgnoresAnEvent*): callers must not rely on it;
//  - EEXIST from an install does not wake the faulting thread (seen ~1 in 1.5M
//    faults here, shared/PLATFORM.md; EexistDoesNotWakeTheFaulter): the run is
//    woken explicitly;
//  - a uffd opened without O_NONBLOCK reports POLLERR from poll().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "pager/status.h"
#include "uffd_compat.h"
#include "unique_fd.h"

namespace pager {

struct UffdFeatures {
  bool move = false;          // UFFDIO_MOVE, 6.8: required (eviction)
  bool poison = false;        // UFFDIO_POISON, 6.6: else SIGBUS by tgkill
  bool thread_id = false;     // tid in fault messages, 4.14: the tgkill fallback
  bool event_remove = false;  // MADV_DONTNEED/REMOVE, 4.11
  bool event_unmap = false;   // munmap, 4.11
  bool event_remap = false;   // mremap, 4.11
  bool event_fork = false;    // fork, 4.11, needs CAP_SYS_PTRACE

  std::string ToString() const;
};

// Why a run stopped short.
enum class UffdStop : uint8_t {
  kNone,        // every page done
  kMmChanging,  // EAGAIN before any progress: read the queued events, then retry
  kGone,        // the page at `done` has no registered VMA (COPY), or is not
                // present in its region (MOVE): unmapped, or dropped by an
                // event not yet read
  kRefused,     // MOVE: the page at `done` cannot move (EBUSY: pinned or
                // shared with a fork child; EINVAL: read-only, PROT_NONE or
                // mlocked VMA)
  kFailed,      // anything else; `error` says what
};
const char* UffdStopName(UffdStop s);

// Result of an ioctl on a run of pages: pages [0, done) are done; the page at
// `done` stopped it for `stop` (errno in `error`).
struct UffdRun {
  size_t done = 0;
  size_t present = 0;  // of `done`, pages COPY found already installed (EEXIST)
  UffdStop stop = UffdStop::kNone;
  int error = 0;
};

class Uffd {
 public:
  // Opens a non-blocking uffd able to handle faults raised inside the kernel
  // (read(2) into paged memory), with every feature the kernel has, minus
  // the comma-separated `disable` list (move, poison, remap, unmap, remove,
  // fork: for tests of the fallbacks). Fails with how to grant the right
  // when it is missing, and names the kernel version when UFFDIO_MOVE is.
  static Result<Uffd> Open(const std::string& disable);

  // Every UFFD_FEATURE_* bit the kernel offers, from UFFDIO_API on a
  // throwaway fd opened as Open() opens its own (so it fails, with the same
  // message, where Open() would for want of permission).
  static Result<uint64_t> Supported();

  // A second uffd with no events, only the right to be the destination of
  // UFFDIO_MOVE (see frames.h).
  static Result<Uffd> OpenForStaging();

  int fd() const { return fd_.get(); }
  const UffdFeatures& features() const { return features_; }

  Status Register(void* addr, size_t len) const;  // missing-page faults
  Status Unregister(void* addr, size_t len) const;

  // Installs `pages` pages copied from src at dst and wakes their waiters.
  // Pages already present are skipped (and woken).
  UffdRun Copy(uintptr_t dst, const void* src, size_t pages) const;
  // Moves present pages from src to dst (a hole in an area registered with
  // this uffd), without waking anyone. kRefused: EBUSY (pinned, or not
  // exclusive since a fork: MoveOfAPageSharedWithAForkChild*) or EINVAL (a
  // read-only, PROT_NONE or mlocked source: MoveFromAReadOnlyProtNone*).
  UffdRun Move(uintptr_t dst, uintptr_t src, size_t pages) const;
  void Wake(uintptr_t addr, size_t pages) const;
  // Makes pages raise SIGBUS on touch and wakes their waiters (they get it).
  // kGone when the range has no registered VMA.
  UffdRun Poison(uintptr_t addr, size_t pages) const;

  // Reads up to `max` messages without blocking; 0 when none are queued.
  int Read(uffd_msg* msgs, int max) const;

 private:
  Uffd(UniqueFd fd, UffdFeatures f) : fd_(std::move(fd)), features_(f) {}
  UniqueFd fd_;
  UffdFeatures features_;
};

}  // namespace pager

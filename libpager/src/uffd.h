// The userfaultfd: the only place that issues its ioctls.
//
// Kernel quirks are handled here, once:
//  - EEXIST from an install: the kernel sent a second message for a page that
//    is already installed (seen ~1 in 1.5M faults); the faulting thread is
//    not woken by the failed ioctl, so the range is woken explicitly.
//  - EAGAIN from any ioctl: the mm is changing (a fork, mremap, munmap or
//    madvise event is pending). The caller must read the pending events and
//    retry; the result says how far the ioctl got.
//  - A uffd opened without O_NONBLOCK reports POLLERR from poll().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "pager/status.h"
#include "uffd_compat.h"
#include "unique_fd.h"

namespace pager {

struct UffdFeatures {
  bool move = false;          // UFFDIO_MOVE, 6.8: atomic eviction, no WP fault
  bool wp = false;            // write-protect faults on anon memory, 5.7
  bool poison = false;        // UFFDIO_POISON, 6.6: SIGBUS on a corrupt page
  bool thread_id = false;     // tid in fault messages, 4.14: SIGBUS fallback
  bool event_remove = false;  // MADV_DONTNEED/REMOVE, 4.11
  bool event_unmap = false;   // munmap, 4.11
  bool event_remap = false;   // mremap, 4.11
  bool event_fork = false;    // fork, 4.11, needs CAP_SYS_PTRACE

  std::string ToString() const;
};

// Result of an ioctl on a run of pages.
struct UffdRun {
  size_t done = 0;  // pages completed from the start of the run
  int error = 0;    // 0, or the errno that stopped it at page `done`
};

class Uffd {
 public:
  // Opens a non-blocking uffd able to handle faults raised inside the kernel
  // (read(2) into paged memory), with every feature the kernel has, minus
  // the comma-separated `disable` list (move, wp, poison, remap, unmap,
  // remove, fork). Fails with how to grant the right when it is missing.
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

  Status Register(void* addr, size_t len) const;  // missing (+ wp when available)
  Status Unregister(void* addr, size_t len) const;

  // Installs `pages` pages copied from src at dst and wakes their waiters.
  // Pages found already installed (EEXIST) are skipped and woken.
  UffdRun Copy(uintptr_t dst, const void* src, size_t pages) const;
  // Moves present pages from src (a region) to dst (a hole in a registered
  // staging area). Stops at the first page that cannot move (EBUSY: pinned
  // or shared with a fork child; ENOENT: not present; EAGAIN).
  UffdRun Move(uintptr_t dst, uintptr_t src, size_t pages) const;
  Status WriteProtect(uintptr_t addr, size_t pages, bool protect) const;
  void Wake(uintptr_t addr, size_t pages) const;
  // Makes a page raise SIGBUS on touch and wakes its waiters (they get it).
  Status Poison(uintptr_t addr, size_t pages) const;

  // Reads up to `max` messages without blocking; 0 when none are queued.
  int Read(uffd_msg* msgs, int max) const;

 private:
  Uffd(UniqueFd fd, UffdFeatures f) : fd_(std::move(fd)), features_(f) {}
  UniqueFd fd_;
  UffdFeatures features_;
};

}  // namespace pager

// What the running kernel and process offer libpager, found at run time and
// never from the build machine's headers. `pagerctl check` prints it; a
// program can look before it creates a Pager.
//
//   pager::KernelFeatures k = pager::ProbeKernelFeatures();
//   if (!k.uffd.ok()) fprintf(stderr, "%s\n", k.uffd.message().c_str());
//   else if (!k.move) fprintf(stderr, "kernel %s has no UFFDIO_MOVE (6.8)\n", k.release.c_str());
//
// Thread-safe; each call probes afresh (opens and closes a userfaultfd).
#pragma once

#include <cstdint>
#include <string>

#include "pager/export.h"
#include "pager/pager.h"
#include "pager/status.h"

namespace pager {

struct KernelFeatures {
  std::string release;  // uname -r

  // Whether a userfaultfd that can handle faults raised inside the kernel
  // (read(2) into paged memory) opens, as Pager::Create opens it; if not,
  // the message says how to grant the right.
  Status uffd;
  // How it was granted: "CAP_SYS_PTRACE", "vm.unprivileged_userfaultfd=1"
  // or "/dev/userfaultfd"; empty when it was not.
  std::string access;

  // UFFDIO_API's feature bits (UFFD_FEATURE_*), 0 when uffd failed, and
  // those libpager cares about, with the kernel that brought them.
  uint64_t bits = 0;
  bool move = false;          // UFFDIO_MOVE, 6.8: eviction by moving pages out
  bool wp = false;            // write-protect faults, 5.7 (libpager does not use them)
  bool wp_async = false;      // 6.7 (libpager does not use it)
  bool poison = false;        // UFFDIO_POISON, 6.6: SIGBUS on a page that fails its checksum
  bool event_remove = false;  // MADV_DONTNEED/REMOVE, 4.11
  bool event_unmap = false;   // munmap, 4.11
  bool event_remap = false;   // mremap, 4.11
  bool event_fork = false;    // fork, 4.11 (libpager handles fork without it)
};

PAGER_EXPORT KernelFeatures ProbeKernelFeatures();

// Locked memory: what a Pager created with `config` mlocks (its reserve
// plus its reserve arena's region, docs/reserve.md)
// against what the process may lock. Short of it, the pool stays unlocked.
struct MemlockBudget {
  uint64_t locked_bytes = 0;
  uint64_t rlimit_bytes = 0;  // RLIMIT_MEMLOCK; UINT64_MAX when unlimited
  bool cap_ipc_lock = false;  // no limit applies
  bool enough() const { return cap_ipc_lock || rlimit_bytes >= locked_bytes; }
};
PAGER_EXPORT MemlockBudget ProbeMemlock(const Config& config);

}  // namespace pager

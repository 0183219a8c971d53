// ProbeKernelFeatures and ProbeMemlock (pager/features.h): the uffd probe is
// Uffd::Supported, the one that Uffd::Open runs, so what this reports is
// what a Pager would get.
#include "pager/features.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "reserve.h"
#include "uffd.h"
#include "uffd_compat.h"

namespace pager {
namespace {

constexpr int kCapIpcLock = 14;  // linux/capability.h
constexpr int kCapSysPtrace = 19;

// Bit `cap` of the effective set in /proc/self/status.
bool HasCapability(int cap) {
  FILE* f = fopen("/proc/self/status", "re");
  if (f == nullptr) return false;
  char line[256];
  unsigned long long eff = 0;
  while (fgets(line, sizeof line, f) != nullptr) {
    if (sscanf(line, "CapEff: %llx", &eff) == 1) break;
  }
  fclose(f);
  return (eff >> cap) & 1;
}

bool UnprivilegedUserfaultfd() {
  FILE* f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "re");
  if (f == nullptr) return false;
  int v = 0;
  bool on = fscanf(f, "%d", &v) == 1 && v == 1;
  fclose(f);
  return on;
}

// The way OpenRaw (uffd.cc) got its fd: the syscall first, then the device.
std::string Access() {
  if (HasCapability(kCapSysPtrace)) return "CAP_SYS_PTRACE";
  if (UnprivilegedUserfaultfd()) return "vm.unprivileged_userfaultfd=1";
  return "/dev/userfaultfd";
}

}  // namespace

KernelFeatures ProbeKernelFeatures() {
  KernelFeatures k;
  struct utsname u;
  if (uname(&u) == 0) k.release = u.release;
  auto bits = Uffd::Supported();
  if (!bits.ok()) {
    k.uffd = bits.status();
    return k;
  }
  k.access = Access();
  k.bits = *bits;
  k.move = k.bits & UFFD_FEATURE_MOVE;
  k.wp = k.bits & UFFD_FEATURE_PAGEFAULT_FLAG_WP;
  k.wp_async = k.bits & UFFD_FEATURE_WP_ASYNC;
  k.poison = k.bits & UFFD_FEATURE_POISON;
  k.event_remove = k.bits & UFFD_FEATURE_EVENT_REMOVE;
  k.event_unmap = k.bits & UFFD_FEATURE_EVENT_UNMAP;
  k.event_remap = k.bits & UFFD_FEATURE_EVENT_REMAP;
  k.event_fork = k.bits & UFFD_FEATURE_EVENT_FORK;
  return k;
}

MemlockBudget ProbeMemlock(const Config& config) {
  MemlockBudget b;
  const uint64_t reserve = config.EffectiveReserve();
  b.locked_bytes = Reserve::LockedBytes(reserve, config.EffectiveSwap());
  rlimit lim{};
  b.rlimit_bytes = getrlimit(RLIMIT_MEMLOCK, &lim) != 0 ? 0 : lim.rlim_cur == RLIM_INFINITY ? UINT64_MAX : lim.rlim_cur;
  b.cap_ipc_lock = HasCapability(kCapIpcLock);
  return b;
}

}  // namespace pager

#include "uffd.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "pager/store.h"

namespace pager {
namespace {

bool Listed(const std::string& list, const char* name) {
  size_t n = strlen(name);
  for (size_t pos = 0; pos <= list.size();) {
    size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    if (end - pos == n && list.compare(pos, n, name) == 0) return true;
    pos = end + 1;
  }
  return false;
}

// A uffd that can also serve faults raised inside the kernel: never
// UFFD_USER_MODE_ONLY, which would turn read(2) into paged memory into EFAULT.
Result<UniqueFd> OpenRaw() {
  int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd >= 0) return UniqueFd(fd);
  int sys_err = errno;
  // /dev/userfaultfd (6.1) grants the same by file permission instead of
  // CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1.
  UniqueFd dev(open("/dev/userfaultfd", O_RDWR | O_CLOEXEC));
  if (dev.valid()) {
    fd = ioctl(dev.get(), USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) return UniqueFd(fd);
  }
  if (sys_err == EPERM || sys_err == EACCES) {
    return Status::Error(
        "userfaultfd: permission denied: handling page faults raised inside the kernel "
        "needs root, CAP_SYS_PTRACE, read-write access to /dev/userfaultfd "
        "(e.g. setfacl -m u:$USER:rw /dev/userfaultfd) or sysctl vm.unprivileged_userfaultfd=1");
  }
  return Status::FromErrno("userfaultfd", sys_err);
}

Status Handshake(int fd, uint64_t features, uint64_t* granted) {
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = features;
  if (ioctl(fd, UFFDIO_API, &api) != 0) return Status::FromErrno("UFFDIO_API", errno);
  *granted = api.features;
  return Status();
}

std::string KernelRelease() {
  utsname u{};
  return uname(&u) == 0 ? u.release : "unknown";
}

// Drives an install or move ioctl over a run of pages. `attempt(at, len)`
// issues one ioctl for pages [at, at+len) and returns the kernel's progress
// field: bytes done, or a negated errno.
//
// A run that spans two VMAs fails whole with ENOENT (or, for MOVE, EINVAL or
// EBUSY when the second VMA or page refuses): the length is halved until the
// part before the boundary goes through, then grows again. Only a single page
// that fails is reported, with its typed reason. Contract tests:
// UffdContractSplit.CopyAcrossTwoVmas*, MoveAcrossTwoVmas*, Partial*.
template <class Attempt>
UffdRun Drive(size_t pages, bool is_move, Attempt attempt) {
  UffdRun run;
  size_t len = pages;
  while (run.done < pages) {
    len = std::min(len, pages - run.done);
    const int64_t r = attempt(run.done, len);
    if (r > 0) {
      // Whole or part of the attempt: continue from where it stopped.
      const size_t got = static_cast<size_t>(r) / kPageSize;
      run.done += got;
      if (got == len) len = std::min(len * 2, pages - run.done);
      continue;
    }
    const int err = r == 0 ? EIO : static_cast<int>(-r);
    if (err == EEXIST && !is_move) {
      // Already installed (the duplicate-message quirk, or a page installed
      // by an earlier partial run): done, woken by the caller of Drive.
      run.done++;
      run.present++;
      continue;
    }
    if (err == EAGAIN) {
      run.stop = UffdStop::kMmChanging;
      run.error = err;
      break;
    }
    if (len > 1 && (err == ENOENT || (is_move && (err == EINVAL || err == EBUSY)))) {
      len /= 2;  // the boundary, or the refusing page, is further on
      continue;
    }
    run.error = err;
    if (err == ENOENT) {
      run.stop = UffdStop::kGone;
    } else if (is_move && (err == EBUSY || err == EINVAL)) {
      run.stop = UffdStop::kRefused;
    } else {
      run.stop = UffdStop::kFailed;
    }
    break;
  }
  return run;
}

}  // namespace

const char* UffdStopName(UffdStop s) {
  switch (s) {
    case UffdStop::kNone: return "done";
    case UffdStop::kMmChanging: return "mm changing";
    case UffdStop::kGone: return "gone";
    case UffdStop::kRefused: return "refused";
    case UffdStop::kFailed: return "failed";
  }
  return "invalid";
}

std::string UffdFeatures::ToString() const {
  std::string s;
  auto add = [&s](bool on, const char* n) {
    if (!on) return;
    if (!s.empty()) s += ',';
    s += n;
  };
  add(move, "move");
  add(poison, "poison");
  add(thread_id, "thread_id");
  add(event_remove, "remove");
  add(event_unmap, "unmap");
  add(event_remap, "remap");
  add(event_fork, "fork");
  return s;
}

Result<uint64_t> Uffd::Supported() {
  // The supported set is only reported by a handshake, and a uffd takes one
  // handshake: probe on a throwaway fd.
  auto probe = OpenRaw();
  if (!probe.ok()) return probe.status();
  uint64_t supported = 0;
  Status s = Handshake(probe->get(), 0, &supported);
  if (!s.ok()) return s;
  return supported;
}

Result<Uffd> Uffd::Open(const std::string& disable) {
  auto probed = Supported();
  if (!probed.ok()) return probed.status();
  const uint64_t supported = *probed;
  uint64_t want = UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP |
                  UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_POISON | UFFD_FEATURE_MOVE;
  const struct {
    const char* name;
    uint64_t bit;
  } knobs[] = {{"move", UFFD_FEATURE_MOVE},         {"poison", UFFD_FEATURE_POISON},
               {"remap", UFFD_FEATURE_EVENT_REMAP}, {"unmap", UFFD_FEATURE_EVENT_UNMAP},
               {"remove", UFFD_FEATURE_EVENT_REMOVE}, {"fork", UFFD_FEATURE_EVENT_FORK}};
  for (const auto& k : knobs) {
    if (Listed(disable, k.name)) want &= ~k.bit;
  }
  want &= supported;
  if (!(want & UFFD_FEATURE_MOVE)) {
    // The write-protect fallback was retired: it cannot be made safe against
    // a program that mremaps memory mid-eviction (docs/design.md, "Why MOVE").
    return Status::Error(
        "userfaultfd: " +
        std::string(Listed(disable, "move") ? "UFFDIO_MOVE disabled by LIBPAGER_DISABLE=move"
                                            : "this kernel (" + KernelRelease() + ") lacks UFFDIO_MOVE") +
        "; libpager needs Linux 6.8 or later to evict pages without losing concurrent writes "
        "(Debian 12: install linux-image-amd64 from bookworm-backports)");
  }

  auto fd = OpenRaw();
  if (!fd.ok()) return fd.status();
  uint64_t supported_again = 0;
  Status s = Handshake(fd->get(), want, &supported_again);
  if (!s.ok()) return s;
  // UFFDIO_API answers with every supported feature; what is enabled is what
  // was asked for.
  const uint64_t granted = want;

  UffdFeatures f;
  f.move = granted & UFFD_FEATURE_MOVE;
  f.poison = granted & UFFD_FEATURE_POISON;
  f.thread_id = granted & UFFD_FEATURE_THREAD_ID;
  f.event_remove = granted & UFFD_FEATURE_EVENT_REMOVE;
  f.event_unmap = granted & UFFD_FEATURE_EVENT_UNMAP;
  f.event_remap = granted & UFFD_FEATURE_EVENT_REMAP;
  f.event_fork = granted & UFFD_FEATURE_EVENT_FORK;
  return Uffd(std::move(*fd), f);
}

Result<Uffd> Uffd::OpenForStaging() {
  auto fd = OpenRaw();
  if (!fd.ok()) return fd.status();
  uint64_t granted = 0;
  Status s = Handshake(fd->get(), UFFD_FEATURE_MOVE, &granted);
  if (!s.ok()) return s;
  UffdFeatures f;
  f.move = true;
  return Uffd(std::move(*fd), f);
}

Status Uffd::Register(void* addr, size_t len) const {
  uffdio_register reg{};
  reg.range.start = reinterpret_cast<uintptr_t>(addr);
  reg.range.len = len;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  if (ioctl(fd(), UFFDIO_REGISTER, &reg) != 0) return Status::FromErrno("UFFDIO_REGISTER", errno);
  return Status();
}

Status Uffd::Unregister(void* addr, size_t len) const {
  uffdio_range r{reinterpret_cast<uintptr_t>(addr), len};
  if (ioctl(fd(), UFFDIO_UNREGISTER, &r) != 0) return Status::FromErrno("UFFDIO_UNREGISTER", errno);
  return Status();
}

UffdRun Uffd::Copy(uintptr_t dst, const void* src, size_t pages) const {
  const auto* s = static_cast<const std::byte*>(src);
  UffdRun run = Drive(pages, false, [&](size_t at, size_t len) -> int64_t {
    uffdio_copy c{};
    c.dst = dst + at * kPageSize;
    c.src = reinterpret_cast<uintptr_t>(s + at * kPageSize);
    c.len = len * kPageSize;
    if (ioctl(fd(), UFFDIO_COPY, &c) == 0) return static_cast<int64_t>(c.len);
    return c.copy != 0 ? c.copy : -errno;
  });
  // A failed ioctl wakes nobody: a thread waiting on a page found present
  // would sleep forever (UffdContract.EexistDoesNotWakeTheFaulter).
  if (run.present != 0) Wake(dst, run.done);
  return run;
}

UffdRun Uffd::Move(uintptr_t dst, uintptr_t src, size_t pages) const {
  return Drive(pages, true, [&](size_t at, size_t len) -> int64_t {
    uffdio_move m{};
    m.dst = dst + at * kPageSize;
    m.src = src + at * kPageSize;
    m.len = len * kPageSize;
    // Nobody waits on the staging area; the region's page is not missing.
    m.mode = UFFDIO_MOVE_MODE_DONTWAKE;
    if (ioctl(fd(), UFFDIO_MOVE, &m) == 0) return static_cast<int64_t>(m.len);
    return m.move != 0 ? m.move : -errno;
  });
}

void Uffd::Wake(uintptr_t addr, size_t pages) const {
  if (pages == 0) return;  // a zero length would wake every waiter
  uffdio_range r{addr, pages * kPageSize};
  ioctl(fd(), UFFDIO_WAKE, &r);
}

UffdRun Uffd::Poison(uintptr_t addr, size_t pages) const {
  return Drive(pages, false, [&](size_t at, size_t len) -> int64_t {
    uffdio_poison p{};
    p.range.start = addr + at * kPageSize;
    p.range.len = len * kPageSize;
    if (ioctl(fd(), UFFDIO_POISON, &p) == 0) return static_cast<int64_t>(p.range.len);
    return p.updated != 0 ? p.updated : -errno;
  });
}

int Uffd::Read(uffd_msg* msgs, int max) const {
  ssize_t n = read(fd(), msgs, sizeof(uffd_msg) * max);
  if (n <= 0) return 0;
  return static_cast<int>(n / sizeof(uffd_msg));
}

}  // namespace pager

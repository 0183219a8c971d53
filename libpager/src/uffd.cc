#include "uffd.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

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

}  // namespace

std::string UffdFeatures::ToString() const {
  std::string s;
  auto add = [&s](bool on, const char* n) {
    if (!on) return;
    if (!s.empty()) s += ',';
    s += n;
  };
  add(move, "move");
  add(wp, "wp");
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
                  UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_POISON |
                  UFFD_FEATURE_MOVE;
  const struct {
    const char* name;
    uint64_t bit;
  } knobs[] = {{"move", UFFD_FEATURE_MOVE},           {"wp", UFFD_FEATURE_PAGEFAULT_FLAG_WP},
               {"poison", UFFD_FEATURE_POISON},       {"remap", UFFD_FEATURE_EVENT_REMAP},
               {"unmap", UFFD_FEATURE_EVENT_UNMAP},   {"remove", UFFD_FEATURE_EVENT_REMOVE},
               {"fork", UFFD_FEATURE_EVENT_FORK}};
  for (const auto& k : knobs) {
    if (Listed(disable, k.name)) want &= ~k.bit;
  }
  want &= supported;

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
  f.wp = granted & UFFD_FEATURE_PAGEFAULT_FLAG_WP;
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
  // WP mode is needed only by the fallback eviction (no UFFDIO_MOVE).
  if (features_.wp && !features_.move) reg.mode |= UFFDIO_REGISTER_MODE_WP;
  if (ioctl(fd(), UFFDIO_REGISTER, &reg) != 0) return Status::FromErrno("UFFDIO_REGISTER", errno);
  return Status();
}

Status Uffd::Unregister(void* addr, size_t len) const {
  uffdio_range r{reinterpret_cast<uintptr_t>(addr), len};
  if (ioctl(fd(), UFFDIO_UNREGISTER, &r) != 0) return Status::FromErrno("UFFDIO_UNREGISTER", errno);
  return Status();
}

UffdRun Uffd::Copy(uintptr_t dst, const void* src, size_t pages) const {
  UffdRun run;
  const auto* s = static_cast<const std::byte*>(src);
  bool woke_needed = false;
  while (run.done < pages) {
    uffdio_copy c{};
    c.dst = dst + run.done * kPageSize;
    c.src = reinterpret_cast<uintptr_t>(s + run.done * kPageSize);
    c.len = (pages - run.done) * kPageSize;
    if (ioctl(fd(), UFFDIO_COPY, &c) == 0) {
      run.done = pages;
      break;
    }
    int err = errno;
    if (c.copy > 0) run.done += c.copy / kPageSize;
    if (err == EEXIST) {
      // Already installed: count it as done and wake it below (the failed
      // ioctl did not wake the thread waiting on it).
      run.done++;
      woke_needed = true;
      continue;
    }
    run.error = err;
    break;
  }
  if (woke_needed) Wake(dst, run.done);
  return run;
}

UffdRun Uffd::Move(uintptr_t dst, uintptr_t src, size_t pages) const {
  UffdRun run;
  uffdio_move m{};
  m.dst = dst;
  m.src = src;
  m.len = pages * kPageSize;
  // Nobody waits on the staging area; the region's page is not missing.
  m.mode = UFFDIO_MOVE_MODE_DONTWAKE;
  if (ioctl(fd(), UFFDIO_MOVE, &m) == 0) {
    run.done = pages;
    return run;
  }
  run.error = errno;
  if (m.move > 0) run.done = m.move / kPageSize;
  return run;
}

Status Uffd::WriteProtect(uintptr_t addr, size_t pages, bool protect) const {
  uffdio_writeprotect wp{};
  wp.range.start = addr;
  wp.range.len = pages * kPageSize;
  wp.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
  if (ioctl(fd(), UFFDIO_WRITEPROTECT, &wp) != 0) {
    return Status::FromErrno("UFFDIO_WRITEPROTECT", errno);
  }
  return Status();
}

void Uffd::Wake(uintptr_t addr, size_t pages) const {
  uffdio_range r{addr, pages * kPageSize};
  ioctl(fd(), UFFDIO_WAKE, &r);
}

Status Uffd::Poison(uintptr_t addr, size_t pages) const {
  uffdio_poison p{};
  p.range.start = addr;
  p.range.len = pages * kPageSize;
  if (ioctl(fd(), UFFDIO_POISON, &p) != 0) return Status::FromErrno("UFFDIO_POISON", errno);
  return Status();
}

int Uffd::Read(uffd_msg* msgs, int max) const {
  ssize_t n = read(fd(), msgs, sizeof(uffd_msg) * max);
  if (n <= 0) return 0;
  return static_cast<int>(n / sizeof(uffd_msg));
}

}  // namespace pager

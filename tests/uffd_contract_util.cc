#include "uffd_contract_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace uffd_contract {

bool WaitUntil(const std::function<bool()>& cond, Millis timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= end) return cond();
    std::this_thread::sleep_for(Millis(1));
  }
  return true;
}

// ---------------------------------------------------------------- Area

Area::Area(size_t pages) : pages_(pages) {
  void* p = mmap(nullptr, pages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    abort();
  }
  base_ = static_cast<char*>(p);
}

Area::~Area() {
  if (base_ != nullptr) munmap(base_, pages_ * kPage);
}

Area::Area(Area&& o) noexcept : base_(o.base_), pages_(o.pages_) { o.base_ = nullptr; }

bool Area::FillHole(size_t first, size_t pages) {
  void* p = mmap(page(first), pages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                 -1, 0);
  return p == page(first);
}

Area Area::Adopt(void* addr, size_t pages) { return Area(static_cast<char*>(addr), pages); }

void Fill(char* p, size_t pages, char tag) { memset(p, tag, pages * kPage); }

bool PageIs(const char* p, char tag) {
  for (size_t i = 0; i < kPage; i++) {
    if (p[i] != tag) return false;
  }
  return true;
}

std::string Residency(const void* p, size_t pages) {
  std::vector<unsigned char> vec(pages);
  if (mincore(const_cast<void*>(p), pages * kPage, vec.data()) != 0) return std::string("mincore: ") + strerror(errno);
  std::string s;
  for (unsigned char v : vec) s += (v & 1) ? '1' : '0';
  return s;
}

// ---------------------------------------------------------------- RawUffd

std::string RawUffd::Open(uint64_t features) {
  int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd < 0) {
    // /dev/userfaultfd (6.1) grants the same by file permission.
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
      fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
      close(dev);
    }
    if (fd < 0) return std::string("cannot open a userfaultfd: ") + strerror(errno);
  }
  fd_ = fd;
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = features;
  if (ioctl(fd, UFFDIO_API, &api) != 0) {
    int err = errno;
    Close();
    // EPERM: UFFD_FEATURE_EVENT_FORK without CAP_SYS_PTRACE. EINVAL: a
    // feature this kernel does not have.
    char why[96];
    snprintf(why, sizeof why, "UFFDIO_API with features %#llx: %s", static_cast<unsigned long long>(features),
             strerror(err));
    return why;
  }
  return "";
}

void RawUffd::Close() {
  int fd = fd_.exchange(-1);
  if (fd >= 0) close(fd);
}

int RawUffd::Register(void* addr, size_t len, uint64_t mode) const {
  uffdio_register r{};
  r.range.start = reinterpret_cast<uintptr_t>(addr);
  r.range.len = len;
  r.mode = mode;
  return ioctl(fd(), UFFDIO_REGISTER, &r) == 0 ? 0 : errno;
}

namespace {

// Issues UFFDIO_COPY or UFFDIO_MOVE (same layout: dst, src, len, mode, then
// the progress field the kernel writes back).
template <typename Arg>
RangeResult RangeIoctl(int fd, unsigned long request, const void* dst, const void* src, size_t len, uint64_t mode,
                       __s64 Arg::*progress) {
  Arg a{};
  a.dst = reinterpret_cast<uintptr_t>(dst);
  a.src = reinterpret_cast<uintptr_t>(src);
  a.len = len;
  a.mode = mode;
  RangeResult r;
  r.rc = ioctl(fd, request, &a);
  r.err = r.rc == 0 ? 0 : errno;
  r.progress = a.*progress;
  return r;
}

}  // namespace

RangeResult RawUffd::Copy(void* dst, const void* src, size_t len, uint64_t mode) const {
  return RangeIoctl(fd(), UFFDIO_COPY, dst, src, len, mode, &uffdio_copy::copy);
}

RangeResult RawUffd::Move(void* dst, void* src, size_t len, uint64_t mode) const {
  return RangeIoctl(fd(), UFFDIO_MOVE, dst, src, len, mode, &uffdio_move::move);
}

int RawUffd::Wake(void* addr, size_t len) const {
  uffdio_range r{reinterpret_cast<uintptr_t>(addr), len};
  return ioctl(fd(), UFFDIO_WAKE, &r) == 0 ? 0 : errno;
}

int RawUffd::WriteProtect(void* addr, size_t len, bool on) const {
  uffdio_writeprotect wp{};
  wp.range.start = reinterpret_cast<uintptr_t>(addr);
  wp.range.len = len;
  wp.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
  return ioctl(fd(), UFFDIO_WRITEPROTECT, &wp) == 0 ? 0 : errno;
}

std::optional<uffd_msg> RawUffd::Read(Millis timeout) const {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<Millis>(end - std::chrono::steady_clock::now());
    if (left.count() < 0) return std::nullopt;
    pollfd p{fd(), POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    uffd_msg m;
    ssize_t got = read(fd(), &m, sizeof m);
    if (got == sizeof m) return m;
    // EAGAIN: a fault woken between poll and read; poll again.
    if (got < 0 && errno != EAGAIN && errno != EINTR) return std::nullopt;
  }
}

bool RawUffd::HasMessage() const {
  pollfd p{fd(), POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

RawUffd::Sleepers RawUffd::sleepers() const {
  Sleepers s;
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd());
  FILE* f = fopen(path, "re");
  if (f == nullptr) return s;
  char line[256];
  while (fgets(line, sizeof line, f) != nullptr) {
    sscanf(line, "pending: %ld", &s.pending);
    sscanf(line, "total: %ld", &s.total);
  }
  fclose(f);
  return s;
}

// ---------------------------------------------------------------- Describe

namespace {

long PageIndex(uint64_t addr, const void* base) {
  return (static_cast<long>(addr) - static_cast<long>(reinterpret_cast<uintptr_t>(base))) / static_cast<long>(kPage);
}

}  // namespace

std::string Describe(const uffd_msg& m, const void* base) {
  char s[96];
  switch (m.event) {
    case UFFD_EVENT_PAGEFAULT:
      snprintf(s, sizeof s, "fault[%ld]%s", PageIndex(m.arg.pagefault.address, base),
               (m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) ? "w" : "");
      break;
    case UFFD_EVENT_REMOVE:
    case UFFD_EVENT_UNMAP:
      snprintf(s, sizeof s, "%s[%ld,%ld)", m.event == UFFD_EVENT_REMOVE ? "remove" : "unmap",
               PageIndex(m.arg.remove.start, base), PageIndex(m.arg.remove.end, base));
      break;
    case UFFD_EVENT_REMAP: {
      long from = PageIndex(m.arg.remap.from, base), to = PageIndex(m.arg.remap.to, base);
      long n = static_cast<long>(m.arg.remap.len / kPage);
      snprintf(s, sizeof s, "remap[%ld,%ld)->[%ld,%ld)", from, from + n, to, to + n);
      break;
    }
    case UFFD_EVENT_FORK:
      snprintf(s, sizeof s, "fork");
      break;
    default:
      snprintf(s, sizeof s, "event%u", m.event);
  }
  return s;
}

std::string Describe(const std::vector<uffd_msg>& msgs, const void* base) {
  std::string s;
  for (const uffd_msg& m : msgs) {
    if (!s.empty()) s += ' ';
    s += Describe(m, base);
  }
  return s;
}

// ---------------------------------------------------------------- Reader

Reader::Reader(const RawUffd& u, std::function<void(const uffd_msg&)> after_read)
    : uffd_(u), after_read_(std::move(after_read)), stop_fd_(eventfd(0, EFD_CLOEXEC)) {
  thread_ = std::thread([this] { Run(); });
}

Reader::~Reader() {
  uint64_t one = 1;
  if (write(stop_fd_, &one, sizeof one) != sizeof one) abort();
  thread_.join();
  close(stop_fd_);
}

void Reader::Run() {
  for (;;) {
    pollfd p[2] = {{uffd_.fd(), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents != 0) return;
    uffd_msg m;
    if (read(uffd_.fd(), &m, sizeof m) != sizeof m) continue;  // woken before read
    if (after_read_) after_read_(m);
    std::lock_guard<std::mutex> l(mu_);
    msgs_.push_back(m);
    cv_.notify_all();
  }
}

bool Reader::WaitForCount(size_t n, Millis timeout) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, timeout, [&] { return msgs_.size() >= n; });
}

std::vector<uffd_msg> Reader::messages() const {
  std::lock_guard<std::mutex> l(mu_);
  return msgs_;
}

// ---------------------------------------------------------------- Background

Background::Background(RawUffd& u, std::function<void()> fn) : uffd_(u) {
  thread_ = std::thread([this, fn = std::move(fn)] {
    fn();
    std::lock_guard<std::mutex> l(mu_);
    done_ = true;
    cv_.notify_all();
  });
}

Background::~Background() {
  if (!WaitDone(Millis(0))) uffd_.Close();
  thread_.join();
}

bool Background::WaitDone(Millis timeout) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, timeout, [&] { return done_.load(); });
}

// ---------------------------------------------------------------- Child

Child::Child(const std::function<int()>& body, bool hold) {
  int go[2] = {-1, -1};
  if (hold && pipe2(go, O_CLOEXEC) != 0) abort();
  pid_ = fork();
  if (pid_ < 0) abort();
  if (pid_ == 0) {
    if (hold) {
      close(go[1]);
      char c;
      while (read(go[0], &c, 1) < 0 && errno == EINTR) {
      }
    }
    _exit(body());
  }
  if (hold) {
    close(go[0]);
    go_fd_ = go[1];
  }
}

Child::~Child() {
  if (pid_ > 0) Wait();
}

void Child::Release() {
  if (go_fd_ >= 0) close(go_fd_);  // EOF releases the child
  go_fd_ = -1;
}

int Child::Wait(Millis timeout) {
  Release();
  if (pid_ <= 0) return -1;
  int status = 0;
  bool exited = WaitUntil([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, timeout);
  if (!exited) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  return exited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ---------------------------------------------------------------- access

bool KernelCanRead(const void* p) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) abort();
  bool ok = write(fds[1], p, 1) == 1;  // the kernel reads the byte at p
  close(fds[0]);
  close(fds[1]);
  return ok;
}

bool KernelCanWrite(void* p) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) abort();
  // Writes back what is there when it can be read, so the page keeps its bytes.
  char byte = KernelCanRead(p) ? *static_cast<volatile char*>(p) : 0;
  if (write(fds[1], &byte, 1) != 1) abort();
  bool ok = read(fds[0], p, 1) == 1;  // the kernel writes the byte at p
  close(fds[0]);
  close(fds[1]);
  return ok;
}

// ---------------------------------------------------------------- PAGEMAP_SCAN

std::string Written(const void* p, size_t pages, int* err) {
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return "";
  }
  std::vector<page_region> regions(pages);
  pm_scan_arg arg{};
  arg.size = sizeof arg;
  arg.start = reinterpret_cast<uintptr_t>(p);
  arg.end = arg.start + pages * kPage;
  arg.vec = reinterpret_cast<uintptr_t>(regions.data());
  arg.vec_len = regions.size();
  arg.category_mask = PAGE_IS_WRITTEN;
  arg.return_mask = PAGE_IS_WRITTEN;
  int n = ioctl(fd, PAGEMAP_SCAN, &arg);
  *err = n < 0 ? errno : 0;
  close(fd);
  if (n < 0) return "";
  std::string s(pages, '0');
  for (int i = 0; i < n; i++) {
    for (uint64_t a = regions[i].start; a < regions[i].end; a += kPage) s[(a - arg.start) / kPage] = '1';
  }
  return s;
}

}  // namespace uffd_contract

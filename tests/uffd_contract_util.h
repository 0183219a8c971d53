// Scaffolding for the userfaultfd contract tests (uffd_contract_*_test.cc).
//
// Those tests pin down, one behaviour per test, what the kernel does for the
// calls libpager makes, so that a comment in libpager that states kernel
// behaviour can point at a test that fails if the kernel does otherwise.
// They check the kernel, not libpager: every ioctl is issued here directly,
// never through libpager's Uffd class. Constants newer than Debian 12's 6.1
// headers come from libpager/src/uffd_compat.h.
//
// Everything here is RAII. Declare, in a test, the Areas first, then the
// RawUffd, then Readers and Background threads: they are then destroyed in
// the safe order. A Background thread still asleep in a fault is released by
// closing the uffd (the kernel wakes every waiter and unregisters every
// range), Readers stop before the uffd closes, and Areas are unmapped once no
// uffd can make munmap wait for an event.
#pragma once

#include <linux/userfaultfd.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "uffd_compat.h"

namespace uffd_contract {

inline constexpr size_t kPage = 4096;

using Millis = std::chrono::milliseconds;
// How long anything the kernel does at once may take on a loaded CI machine.
// Reaching it means the behaviour under test did not happen.
inline constexpr Millis kDeadline{10000};

// Polls `cond` until it holds or `timeout` passes; returns its last value.
bool WaitUntil(const std::function<bool()>& cond, Millis timeout = kDeadline);

// An anonymous private read-write mapping, unmapped on destruction.
class Area {
 public:
  explicit Area(size_t pages);
  ~Area();
  Area(Area&& o) noexcept;
  Area(const Area&) = delete;
  Area& operator=(const Area&) = delete;

  // Takes over a mapping the kernel made (e.g. mremap's new address).
  static Area Adopt(void* addr, size_t pages);

  char* base() const { return base_; }
  char* page(size_t i) const { return base_ + i * kPage; }
  size_t pages() const { return pages_; }
  // Forgets the mapping (the test unmapped or moved all of it): unmapping a
  // range that is now a hole could remove another thread's new mapping.
  void release() { base_ = nullptr; }
  // Maps fresh pages over a hole the test made inside the area (e.g. by
  // moving pages away with mremap), so the area is whole again. False if
  // someone else mapped the hole meanwhile.
  bool FillHole(size_t first, size_t pages);

 private:
  Area(char* base, size_t pages) : base_(base), pages_(pages) {}
  char* base_ = nullptr;
  size_t pages_ = 0;
};

// Writes `tag` to every byte of `pages` pages from p.
void Fill(char* p, size_t pages, char tag);
// True if every byte of the page at p is `tag`.
bool PageIs(const char* p, char tag);
// One character per page: '1' resident (mincore), '0' not.
std::string Residency(const void* p, size_t pages);

// What a range ioctl (COPY, MOVE) returned: the ioctl's value, errno, and
// the kernel's progress field (bytes done, or a negated errno).
struct RangeResult {
  int rc = 0;
  int err = 0;
  int64_t progress = 0;
};

// A userfaultfd opened O_NONBLOCK | O_CLOEXEC (a blocking one reports
// POLLERR from poll(): shared/PLATFORM.md), with raw ioctls.
class RawUffd {
 public:
  RawUffd() = default;
  ~RawUffd() { Close(); }
  RawUffd(const RawUffd&) = delete;
  RawUffd& operator=(const RawUffd&) = delete;

  // Handshakes with `features`. Returns "" on success, else why this kernel
  // or this process cannot have them (the caller skips the test).
  std::string Open(uint64_t features);
  void Close();
  int fd() const { return fd_.load(); }

  int Register(void* addr, size_t len, uint64_t mode = UFFDIO_REGISTER_MODE_MISSING) const;  // 0 or errno
  RangeResult Copy(void* dst, const void* src, size_t len, uint64_t mode = 0) const;
  RangeResult Move(void* dst, void* src, size_t len, uint64_t mode = 0) const;
  int Wake(void* addr, size_t len) const;                    // 0 or errno
  int WriteProtect(void* addr, size_t len, bool on) const;  // 0 or errno

  // The next message, read by the calling thread (poll + read), or nothing
  // within `timeout`.
  std::optional<uffd_msg> Read(Millis timeout = kDeadline) const;
  // True if a message is queued now (poll, no wait).
  bool HasMessage() const;

  // Threads asleep in a fault on this uffd, from /proc/self/fdinfo: `total`
  // counts every one, `pending` those whose message is not read yet. A
  // thread leaves the count the moment it is woken, so right after an
  // ioctl returns this says whether the ioctl woke it.
  struct Sleepers {
    long pending = -1;
    long total = -1;
  };
  Sleepers sleepers() const;

 private:
  std::atomic<int> fd_{-1};
};

// Describes messages by page index relative to `base`, one per message,
// space-separated: "fault[3]", "fault[3]w", "remove[2,4)", "unmap[0,4)",
// "remap[0,4)->[8,12)". Assertions on events read as plain strings.
std::string Describe(const std::vector<uffd_msg>& msgs, const void* base);
std::string Describe(const uffd_msg& m, const void* base);

// A handler thread: polls the uffd and reads every message into a log.
// `after_read`, when set, runs on this thread right after each message is
// read and before the next read: a test makes the handler busy there.
class Reader {
 public:
  explicit Reader(const RawUffd& u, std::function<void(const uffd_msg&)> after_read = nullptr);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Waits until `n` messages went through (after_read included).
  bool WaitForCount(size_t n, Millis timeout = kDeadline);
  std::vector<uffd_msg> messages() const;

 private:
  void Run();
  const RawUffd& uffd_;
  std::function<void(const uffd_msg&)> after_read_;
  int stop_fd_ = -1;  // eventfd
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uffd_msg> msgs_;  // guarded by mu_
  std::thread thread_;
};

// A thread that runs `fn` once: a touch that may fault, or a system call that
// may wait for an event to be read.
class Background {
 public:
  Background(RawUffd& u, std::function<void()> fn);
  // Joins; if `fn` is still asleep in a fault or an event, closes the uffd
  // first, which releases it.
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  bool WaitDone(Millis timeout = kDeadline);
  bool done() const { return done_.load(); }

 private:
  RawUffd& uffd_;
  std::atomic<bool> done_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

// A forked child running `body` (its return value is the exit status).
// With `hold`, the child first waits for Release(), so the parent can act
// while it is alive.
class Child {
 public:
  explicit Child(const std::function<int()>& body, bool hold = false);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  void Release();
  // The exit status, or -1 if the child did not exit within the deadline
  // (then it is killed) or died of a signal.
  int Wait(Millis timeout = kDeadline);

 private:
  pid_t pid_ = -1;
  int go_fd_ = -1;  // write end of the hold pipe
};

// Whether a system call can read from / write to the byte at p: a page the
// program cannot access gives EFAULT instead of SIGSEGV. Only for pages that
// are present (a missing registered page would fault to the uffd).
bool KernelCanRead(const void* p);
bool KernelCanWrite(void* p);

// One character per page from PAGEMAP_SCAN (6.7): '1' if the page is
// "written" (no uffd-wp bit: under WP_ASYNC, written since protected).
// Returns "" and sets *err if the ioctl fails.
std::string Written(const void* p, size_t pages, int* err);

}  // namespace uffd_contract

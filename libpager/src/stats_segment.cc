#include "stats_segment.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <vector>

#include "unique_fd.h"

namespace pager {
namespace {

static_assert(std::is_standard_layout_v<SegmentHeader> && std::is_standard_layout_v<StatsBlock>,
              "the segment is read by other processes: fixed layout only");

std::atomic<uint32_t> g_next_index{0};

// This process's segments. A forked child shares their lock (a flock
// belongs to the open file, which the child's fd and its MAP_SHARED mapping
// both hold), so it would keep a segment "live" after its parent died or
// exec'd. The child lets go of the file at once: it closes its fd and swaps
// its mapping for a private copy at the same address, so a pager object the
// child still holds reads valid (frozen) counters.
//
// And a process that exits without destroying its pager (the preload's pager
// lives until exit) still removes its files, from an atexit handler.
constexpr int kMaxSegments = 64;
struct Registered {
  // -1 free, -2 being filled in, else the segment's fd: map and path are
  // written before fd is published, so the handlers never see them half set.
  std::atomic<int> fd{-1};
  void* map = nullptr;
  char path[256] = {};
};
Registered g_segments[kMaxSegments];
std::once_flag g_handlers_once;

void ReleaseSegmentsInChild() {
  for (auto& r : g_segments) {
    int fd = r.fd.load(std::memory_order_acquire);
    if (fd < 0) continue;
    r.fd.store(-1);
    close(fd);
    void* m = r.map;
    alignas(64) static char copy[kSegmentSize];  // the child runs one thread here
    memcpy(copy, m, kSegmentSize);
    if (mmap(m, kSegmentSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
      memcpy(m, copy, kSegmentSize);
    }
  }
}

// The pager may still be running: the file goes, the mapping stays.
void UnlinkSegmentsAtExit() {
  for (auto& r : g_segments) {
    if (r.fd.load(std::memory_order_acquire) >= 0) unlink(r.path);
  }
}

void Register(int fd, void* map, const std::string& path) {
  std::call_once(g_handlers_once, [] {
    pthread_atfork(nullptr, nullptr, ReleaseSegmentsInChild);
    atexit(UnlinkSegmentsAtExit);
  });
  if (path.size() >= sizeof g_segments[0].path) return;
  for (auto& r : g_segments) {
    int expected = -1;
    if (r.fd.compare_exchange_strong(expected, -2)) {
      r.map = map;
      memcpy(r.path, path.c_str(), path.size() + 1);
      r.fd.store(fd, std::memory_order_release);
      return;
    }
  }
  // More segments than slots: this one's forked children keep it looking live.
}

// False if a fork already released it (we are that child).
bool Unregister(int fd) {
  for (auto& r : g_segments) {
    int expected = fd;
    if (r.fd.compare_exchange_strong(expected, -1)) return true;
  }
  return false;
}

void CopyString(char* dst, size_t cap, const std::string& src) {
  size_t n = std::min(cap - 1, src.size());
  memcpy(dst, src.data(), n);
  dst[n] = '\0';
}

std::string ReadFile(const std::string& path) {
  std::string out;
  FILE* f = fopen(path.c_str(), "re");
  if (f == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  fclose(f);
  return out;
}

std::string OwnCommandLine() {
  std::string cmd = ReadFile("/proc/self/cmdline");
  while (!cmd.empty() && cmd.back() == '\0') cmd.pop_back();
  // One line, as ps(1) shows it: separators and control characters as spaces.
  for (char& c : cmd) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  while (!cmd.empty() && cmd.back() == ' ') cmd.pop_back();
  return cmd;
}

// Files of our pid that this process image did not make: left by the image
// before an exec (or by an exit that skipped atexit). RemoveStaleStatsFileIn
// spares our own live files (we hold their locks) and ones being created,
// and never opens what is not a regular file (a FIFO would block the open,
// and with it this program's start).
void RemoveOwnLeftovers(const StatsDir& dir, pid_t me) {
  for (const std::string& name : dir.Names()) {
    if (PidOfStatsName(name) == me) (void)RemoveStaleStatsFileIn(dir, name);
  }
}

}  // namespace

Stats ReadStatsBlock(const StatsBlock& block) {
  Stats s = block.Snapshot();
  if (s.backend == BackendState::kOk && s.eviction_paused) s.backend = BackendState::kPaused;
  return s;
}

Result<std::unique_ptr<StatsSegment>> StatsSegment::Create(const std::string& base, const Info& info) {
  auto dir = StatsDir::OpenOwn(base);
  if (!dir.ok()) return dir.status();
  std::unique_ptr<StatsSegment> seg(new StatsSegment());
  const uint32_t index = g_next_index.fetch_add(1);
  seg->owner_ = getpid();
  const std::string name = StatsFileName(seg->owner_, index);
  seg->path_ = dir->path() + "/" + name;
  // O_EXCL and O_NOFOLLOW: never write through whatever already has the name.
  const int flags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  int fd = openat(dir->fd(), name.c_str(), flags, 0600);
  if (fd < 0 && errno == EEXIST) {
    // Our pid and index, not created by this process image: a dead
    // process's, or our own from before an exec. The directory is ours.
    unlinkat(dir->fd(), name.c_str(), 0);
    fd = openat(dir->fd(), name.c_str(), flags, 0600);
  }
  if (fd < 0) return Status::FromErrno("stats file " + seg->path_, errno);
  seg->fd_ = fd;
  // Taken before the header exists: a reader that finds the lock free and
  // the header empty knows the creator died (see FindStaleStatsFiles).
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) return Status::FromErrno("flock " + seg->path_, errno);
  if (ftruncate(fd, static_cast<off_t>(kSegmentSize)) != 0) {
    Status s = Status::FromErrno("stats file " + seg->path_ + ": ftruncate", errno);
    unlink(seg->path_.c_str());
    return s;
  }
  void* m = mmap(nullptr, kSegmentSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) {
    Status s = Status::FromErrno("stats file " + seg->path_ + ": mmap", errno);
    unlink(seg->path_.c_str());
    return s;
  }
  seg->map_ = m;
  seg->map_len_ = kSegmentSize;
  // The file is zero-filled: zero is each atomic's initial value, so the
  // block is constructed in place without writing it.
  auto* h = new (m) SegmentHeader{};
  h->magic = kSegmentMagic;
  h->version = kSegmentVersion;
  h->header_size = sizeof(SegmentHeader);
  h->stats_offset = kStatsOffset;
  h->stats_size = sizeof(StatsBlock);
  h->pid = seg->owner_;
  h->start_time = ProcessStartTime(seg->owner_);
  h->created_unix_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 std::chrono::system_clock::now().time_since_epoch())
                                                 .count());
  h->limit_bytes = info.limit_bytes;
  h->reserve_bytes = info.reserve_bytes;
  h->index = index;
  CopyString(h->swap, sizeof h->swap, info.swap);
  CopyString(h->features, sizeof h->features, info.features);
  CopyString(h->cmdline, sizeof h->cmdline, OwnCommandLine());
  seg->block_ = new (static_cast<char*>(m) + kStatsOffset) StatsBlock();
  h->ready.store(1, std::memory_order_release);
  Register(fd, m, seg->path_);
  RemoveOwnLeftovers(*dir, seg->owner_);
  return seg;
}

StatsSegment::~StatsSegment() {
  if (map_ != nullptr) munmap(map_, map_len_);
  if (getpid() != owner_) return;  // a forked child's copy: the file is the parent's
  unlink(path_.c_str());
  if (fd_ >= 0 && (Unregister(fd_) || block_ == nullptr)) close(fd_);
}

}  // namespace pager

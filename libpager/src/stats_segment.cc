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

// ---- Leftover swap files (pager/monitor.h) ---------------------------------

namespace {

bool PidExists(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

// Names in `dir` for which `keep` returns true, sorted.
Result<std::vector<std::string>> ListNames(const std::string& dir, bool (*keep)(const char*)) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return Status::FromErrno("directory '" + dir + "'", errno);
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (keep(e->d_name)) names.emplace_back(e->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

namespace {

// libpager-<host>-<pid>-<n>.swap (file_store.cc); the host may hold '-'.
bool ParseSwapName(const std::string& name, std::string* host, pid_t* pid) {
  const std::string prefix = "libpager-", suffix = ".swap";
  if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return false;
  }
  std::string mid = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  size_t d2 = mid.rfind('-');
  if (d2 == std::string::npos || d2 == 0) return false;
  size_t d1 = mid.rfind('-', d2 - 1);
  if (d1 == std::string::npos || d1 == 0) return false;
  std::string p = mid.substr(d1 + 1, d2 - d1 - 1), n = mid.substr(d2 + 1);
  if (p.empty() || n.empty() || p.find_first_not_of("0123456789") != std::string::npos ||
      n.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  *host = mid.substr(0, d1);
  *pid = static_cast<pid_t>(strtol(p.c_str(), nullptr, 10));
  return *pid > 0;
}

bool IsSwapName(const char* name) {
  std::string host;
  pid_t pid;
  return ParseSwapName(name, &host, &pid);
}

// When `pid` started, in seconds since the epoch, or 0 if unknown.
int64_t ProcessStartUnix(pid_t pid) {
  uint64_t ticks = ProcessStartTime(pid);
  std::string stat = ReadFile("/proc/stat");
  size_t p = stat.find("\nbtime ");
  if (ticks == 0 || p == std::string::npos) return 0;
  long hz = sysconf(_SC_CLK_TCK);
  return strtoll(stat.c_str() + p + 7, nullptr, 10) + static_cast<int64_t>(ticks / static_cast<uint64_t>(hz));
}

}  // namespace

Result<std::vector<Leftover>> FindStaleSwapFiles(const std::string& dir) {
  auto names = ListNames(dir, IsSwapName);
  if (!names.ok()) return names.status();
  char me[64] = "localhost";
  gethostname(me, sizeof me - 1);
  std::vector<Leftover> out;
  for (const std::string& n : *names) {
    std::string host;
    pid_t pid = 0;
    ParseSwapName(n, &host, &pid);
    if (host != me) continue;  // another machine's, on a shared directory
    std::string path = dir + "/" + n;
    if (!PidExists(pid)) {
      out.push_back(Leftover{path, pid, "process " + std::to_string(pid) + " is gone"});
      continue;
    }
    // A reused pid: the file was born before the process that has the pid
    // now (with a margin for btime's one-second granularity).
    struct statx sx;
    int64_t started = ProcessStartUnix(pid);
    if (started != 0 && statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BTIME, &sx) == 0 &&
        (sx.stx_mask & STATX_BTIME) && sx.stx_btime.tv_sec + 2 < started) {
      out.push_back(Leftover{path, pid, "pid " + std::to_string(pid) + " now names a process started after the file"});
    }
  }
  return out;
}

}  // namespace pager

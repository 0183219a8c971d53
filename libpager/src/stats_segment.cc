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

constexpr uint32_t kStatsOffset = (sizeof(SegmentHeader) + 63) / 64 * 64;
constexpr size_t kSegmentSize = kStatsOffset + sizeof(StatsBlock);

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

// "libpager.<pid>.<n>" -> pid, or 0 if `name` is not a stats file's name.
pid_t PidOfStatsName(const char* name) {
  unsigned pid = 0, index = 0;
  int end = 0;
  if (sscanf(name, "libpager.%u.%u%n", &pid, &index, &end) != 2 || name[end] != '\0') return 0;
  return static_cast<pid_t>(pid);
}

// Whether the writer still holds its lock. Takes the lock if it is free and
// keeps it (the caller closes the fd).
bool WriterHoldsLock(int fd) { return flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK; }

Status ReadHeaderAndBlock(int fd, const std::string& path, PagedProcess* out) {
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::FromErrno("stat " + path, errno);
  if (static_cast<size_t>(st.st_size) < sizeof(SegmentHeader)) {
    return Status::Error(path + ": not a libpager stats file (too short; still being created?)");
  }
  void* m = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) return Status::FromErrno("mmap " + path, errno);
  const auto* h = static_cast<const SegmentHeader*>(m);
  Status s;
  if (h->magic != kSegmentMagic) {
    s = Status::Error(path + ": not a libpager stats file (bad magic)");
  } else if (h->version != kSegmentVersion) {
    s = Status::Error(path + ": stats layout version " + std::to_string(h->version) + ", this pagerctl reads " +
                      std::to_string(kSegmentVersion) + " (use the pagerctl of that libpager)");
  } else if (h->header_size != sizeof(SegmentHeader) || h->stats_size != sizeof(StatsBlock) ||
             h->stats_offset != kStatsOffset || static_cast<size_t>(st.st_size) < kSegmentSize) {
    s = Status::Error(path + ": stats layout sizes differ from this build's (same version, other build?)");
  } else if (h->ready.load(std::memory_order_acquire) != 1) {
    s = Status::Error(path + ": still being created");
  } else {
    out->path = path;
    out->pid = h->pid;
    out->index = h->index;
    out->start_time = h->start_time;
    out->created_unix_ms = h->created_unix_ms;
    out->limit_bytes = h->limit_bytes;
    out->reserve_bytes = h->reserve_bytes;
    out->swap.assign(h->swap, strnlen(h->swap, sizeof h->swap));
    out->features.assign(h->features, strnlen(h->features, sizeof h->features));
    out->command.assign(h->cmdline, strnlen(h->cmdline, sizeof h->cmdline));
    out->stats = ReadStatsBlock(*reinterpret_cast<const StatsBlock*>(static_cast<const char*>(m) + kStatsOffset));
  }
  munmap(m, static_cast<size_t>(st.st_size));
  return s;
}

// Why the file's process is no longer its writer, or "" if it still is.
// Called with `fd` open on the file; may take its lock.
std::string StaleReason(int fd, pid_t pid, uint64_t start_time) {
  if (!PidExists(pid)) return "process " + std::to_string(pid) + " is gone";
  uint64_t now_start = ProcessStartTime(pid);
  if (start_time != 0 && now_start != 0 && now_start != start_time) {
    return "pid " + std::to_string(pid) + " now names another process";
  }
  if (!WriterHoldsLock(fd)) return "process " + std::to_string(pid) + " no longer runs its pager (exec'd)";
  return "";
}

// Files of our pid that this process image did not make: left by the image
// before an exec (or by an exit that skipped atexit). RemoveStaleStatsFile
// spares our own live files (we hold their locks) and ones being created.
void RemoveOwnLeftovers(const std::string& dir, pid_t me) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  std::vector<std::string> mine;
  while (dirent* e = readdir(d)) {
    if (PidOfStatsName(e->d_name) == me) mine.push_back(dir + "/" + e->d_name);
  }
  closedir(d);
  for (const std::string& path : mine) (void)RemoveStaleStatsFile(path);
}

}  // namespace

Stats ReadStatsBlock(const StatsBlock& block) {
  Stats s = block.Snapshot();
  if (s.backend == BackendState::kOk && s.eviction_paused) s.backend = BackendState::kPaused;
  return s;
}

Result<std::unique_ptr<StatsSegment>> StatsSegment::Create(const std::string& dir, const Info& info) {
  std::unique_ptr<StatsSegment> seg(new StatsSegment());
  const uint32_t index = g_next_index.fetch_add(1);
  seg->owner_ = getpid();
  seg->path_ = dir + "/libpager." + std::to_string(seg->owner_) + "." + std::to_string(index);
  // O_NOFOLLOW and O_EXCL: /dev/shm is world-writable; never write through
  // a link someone planted under our name.
  int fd = open(seg->path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) {
    // Our pid and index, not created by this process image: a dead
    // process's, or our own from before an exec.
    unlink(seg->path_.c_str());
    fd = open(seg->path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
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
  RemoveOwnLeftovers(dir, seg->owner_);
  return seg;
}

StatsSegment::~StatsSegment() {
  if (map_ != nullptr) munmap(map_, map_len_);
  if (getpid() != owner_) return;  // a forked child's copy: the file is the parent's
  unlink(path_.c_str());
  if (fd_ >= 0 && (Unregister(fd_) || block_ == nullptr)) close(fd_);
}

// ---- Readers (pager/monitor.h) ---------------------------------------------

std::string DefaultStatsDir() {
  const char* d = getenv("LIBPAGER_STATS_DIR");
  return d != nullptr && d[0] != '\0' ? d : "/dev/shm";
}

Result<PagedProcess> ReadPagedProcess(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(path, errno);
  PagedProcess p;
  Status s = ReadHeaderAndBlock(fd.get(), path, &p);
  if (!s.ok()) return s;
  p.stale = !StaleReason(fd.get(), p.pid, p.start_time).empty();
  return p;
}

namespace {

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

bool IsStatsName(const char* name) { return PidOfStatsName(name) != 0; }

}  // namespace

Result<std::vector<PagedProcess>> ListPagedProcesses(const std::string& dir, std::vector<std::string>* skipped) {
  auto names = ListNames(dir, IsStatsName);
  if (!names.ok()) return names.status();
  std::vector<PagedProcess> out;
  for (const std::string& n : *names) {
    auto p = ReadPagedProcess(dir + "/" + n);
    if (p.ok()) {
      out.push_back(std::move(*p));
    } else if (skipped != nullptr) {
      skipped->push_back(p.status().message());
    }
  }
  std::sort(out.begin(), out.end(), [](const PagedProcess& a, const PagedProcess& b) {
    return a.pid != b.pid ? a.pid < b.pid : a.index < b.index;
  });
  return out;
}

namespace {

// Why the stats file is stale, or "" if it is live or cannot be judged.
std::string StatsFileStaleReason(int fd, const std::string& path, pid_t name_pid) {
  PagedProcess p;
  if (ReadHeaderAndBlock(fd, path, &p).ok()) return StaleReason(fd, p.pid, p.start_time);
  // No readable header: being created, or its creator died first. Only the
  // pid in the name can tell; a live one may still be writing it.
  if (!PidExists(name_pid)) return "process " + std::to_string(name_pid) + " is gone (file never completed)";
  return "";
}

}  // namespace

Result<std::vector<Leftover>> FindStaleStatsFiles(const std::string& dir) {
  auto names = ListNames(dir, IsStatsName);
  if (!names.ok()) return names.status();
  std::vector<Leftover> out;
  for (const std::string& n : *names) {
    std::string path = dir + "/" + n;
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) continue;
    pid_t pid = PidOfStatsName(n.c_str());
    std::string why = StatsFileStaleReason(fd.get(), path, pid);
    if (!why.empty()) out.push_back(Leftover{path, pid, why});
  }
  return out;
}

Result<bool> RemoveStaleStatsFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return errno == ENOENT ? Result<bool>(false) : Result<bool>(Status::FromErrno(path, errno));
  size_t slash = path.rfind('/');
  pid_t pid = PidOfStatsName(path.c_str() + (slash == std::string::npos ? 0 : slash + 1));
  if (pid == 0) return Status::Error(path + ": not a libpager stats file name");
  if (StatsFileStaleReason(fd.get(), path, pid).empty()) return false;
  // Still the file we judged: a new process with this pid replaces a stale
  // file by unlink + create, and its new file must survive.
  struct stat a, b;
  if (fstat(fd.get(), &a) != 0 || stat(path.c_str(), &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
    return false;
  }
  if (unlink(path.c_str()) != 0) return Status::FromErrno("unlink " + path, errno);
  return true;
}

}  // namespace pager

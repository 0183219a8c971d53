// pager/monitor.h: reading the stats files of the pagers this user (root:
// every user) may see, trusting none of them.
//
// A stats file is written by a process of another user as far as a reader
// running as root knows, so every step assumes a hostile writer:
//  - opening: only regular files owned by their directory's uid, looked at
//    before they are opened and opened O_NOFOLLOW|O_NONBLOCK (a FIFO would
//    hang the reader, a link would lead elsewhere): StatsDir::OpenFile;
//  - reading: pread of the whole segment into a private buffer, never a
//    mapping the writer could truncate (SIGBUS in the reader); a short read
//    is no stats file;
//  - parsing: sizes, magic, version, `ready`, and the pid in the header must
//    be the pid in the name;
//  - judging: the named process must be alive with the header's start time
//    (else the file is a leftover: stale), run as the file's owner (else it
//    is a forgery: skipped), and hold the file's lock (else it exec'd: stale);
//  - showing: every string is escaped (EscapeForDisplay), so no control
//    character or terminal escape sequence reaches a screen.
//
// A counter read while the pager changes it is read as the kernel copies
// it: aligned 8-byte words, which x86-64's copy routines never split in
// practice (not an architectural promise; a sample shown, not a ledger).
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "pager/monitor.h"
#include "stats_segment.h"
#include "unique_fd.h"

namespace pager {
namespace {

// ---- Reading and parsing ----------------------------------------------------

struct SegmentCopy {
  alignas(64) unsigned char bytes[kSegmentSize];
  const SegmentHeader& header() const { return *reinterpret_cast<const SegmentHeader*>(bytes); }
  const StatsBlock& block() const { return *reinterpret_cast<const StatsBlock*>(bytes + kStatsOffset); }
};

Status ReadSegment(int fd, const std::string& path, SegmentCopy* seg) {
  size_t got = 0;
  while (got < kSegmentSize) {
    ssize_t n = pread(fd, seg->bytes + got, kSegmentSize - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("read " + path, errno);
    if (n == 0) return Status::Error(path + ": not a libpager stats file (too short; still being created?)");
    got += static_cast<size_t>(n);
  }
  return Status();
}

std::string HeaderString(const char* s, size_t cap) { return EscapeForDisplay(std::string_view(s, strnlen(s, cap))); }

Status Parse(const SegmentCopy& seg, const std::string& path, pid_t name_pid, PagedProcess* out) {
  const SegmentHeader& h = seg.header();
  if (h.magic != kSegmentMagic) return Status::Error(path + ": not a libpager stats file (bad magic)");
  if (h.version != kSegmentVersion) {
    return Status::Error(path + ": stats layout version " + std::to_string(h.version) + ", this pagerctl reads " +
                         std::to_string(kSegmentVersion) + " (use the pagerctl of that libpager)");
  }
  if (h.header_size != sizeof(SegmentHeader) || h.stats_size != sizeof(StatsBlock) || h.stats_offset != kStatsOffset) {
    return Status::Error(path + ": stats layout sizes differ from this build's (same version, other build?)");
  }
  if (h.ready.load(std::memory_order_acquire) != 1) return Status::Error(path + ": still being created");
  if (h.pid != name_pid) {
    return Status::Error(path + ": names process " + std::to_string(h.pid) + " inside: not a stats file of its own");
  }
  out->path = path;
  out->pid = h.pid;
  out->index = h.index;
  out->start_time = h.start_time;
  out->created_unix_ms = h.created_unix_ms;
  out->limit_bytes = h.limit_bytes;
  out->reserve_bytes = h.reserve_bytes;
  out->swap = HeaderString(h.swap, sizeof h.swap);
  out->features = HeaderString(h.features, sizeof h.features);
  out->command = HeaderString(h.cmdline, sizeof h.cmdline);
  out->stats = ReadStatsBlock(seg.block());
  for (ServerStats& server : out->stats.servers) server.name = EscapeForDisplay(server.name);
  return Status();
}

// ---- Judging ------------------------------------------------------------------

// Whether the writer still holds its lock. Takes the lock if it is free and
// keeps it (the caller closes the fd).
bool WriterHoldsLock(int fd) { return flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK; }

enum class Verdict { kLive, kStale, kForged };
struct Judgement {
  Verdict verdict;
  std::string why;  // for kStale and kForged
};

// What the file open at `fd`, owned by `owner`, says about its process `p`.
// May take the file's lock.
Judgement Judge(int fd, const PagedProcess& p, uid_t owner) {
  const std::string pid = std::to_string(p.pid);
  auto id = ReadProcessInfo(p.pid);
  if (!id) return {Verdict::kStale, "process " + pid + " is gone"};
  if (id->start_time != p.start_time) return {Verdict::kStale, "pid " + pid + " now names another process"};
  // Only root or the process's own user can have written for it. (A process
  // that started as root and then changed user keeps its root-owned file.)
  if (owner != 0 && owner != id->euid) {
    return {Verdict::kForged, p.path + ": owned by uid " + std::to_string(owner) + " but process " + pid +
                                  " runs as uid " + std::to_string(id->euid) + ": not trusted"};
  }
  if (!WriterHoldsLock(fd)) return {Verdict::kStale, "process " + pid + " no longer runs its pager (exec'd)"};
  return {Verdict::kLive, ""};
}

// `name` in `dir`, opened, read, parsed and judged; an error if it is not a
// stats file or is forged.
Result<PagedProcess> Examine(const StatsDir& dir, const std::string& name) {
  auto fd = dir.OpenFile(name);
  if (!fd.ok()) return fd.status();
  const std::string path = dir.path() + "/" + name;
  SegmentCopy seg;
  PagedProcess p;
  if (Status s = ReadSegment(fd->get(), path, &seg); !s.ok()) return s;
  if (Status s = Parse(seg, path, PidOfStatsName(name), &p); !s.ok()) return s;
  p.uid = dir.uid();
  Judgement j = Judge(fd->get(), p, dir.uid());
  if (j.verdict == Verdict::kForged) return Status::Error(j.why);
  p.stale = j.verdict == Verdict::kStale;
  return p;
}

// Why the file open at `fd` is stale, or "" if it is live, forged, or
// cannot be judged.
std::string StaleReason(int fd, const StatsDir& dir, const std::string& name) {
  const std::string path = dir.path() + "/" + name;
  const pid_t name_pid = PidOfStatsName(name);
  SegmentCopy seg;
  PagedProcess p;
  if (ReadSegment(fd, path, &seg).ok() && Parse(seg, path, name_pid, &p).ok()) {
    Judgement j = Judge(fd, p, dir.uid());
    return j.verdict == Verdict::kStale ? j.why : "";
  }
  // No usable header: being created, or its creator died first. Only the
  // pid in the name can tell; a live one may still be writing it.
  if (!ReadProcessInfo(name_pid)) return "process " + std::to_string(name_pid) + " is gone (file never completed)";
  return "";
}

// "<base>/libpager-<uid>/<name>" -> its directory, opened and checked.
Result<StatsDir> DirOf(const std::string& path, std::string* name) {
  size_t slash = path.rfind('/');
  size_t dir_slash = slash == std::string::npos || slash == 0 ? std::string::npos : path.rfind('/', slash - 1);
  uid_t uid = 0;
  if (dir_slash == std::string::npos || !ParseUserDirName(path.substr(dir_slash + 1, slash - dir_slash - 1), &uid)) {
    return Status::Error(path + ": not in a per-user stats directory (<dir>/libpager-<uid>/)");
  }
  *name = path.substr(slash + 1);
  if (PidOfStatsName(*name) == 0) return Status::Error(path + ": not a libpager stats file name");
  return StatsDir::Open(path.substr(0, dir_slash), uid);
}

// Calls fn(dir) for each user directory a reader of `base` looks in; one
// that fails its checks is reported to `skipped`.
template <class Fn>
Status ForEachUserDir(const std::string& base, std::vector<std::string>* skipped, Fn fn) {
  auto users = StatsDir::Users(base);
  if (!users.ok()) return users.status();
  for (uid_t uid : *users) {
    auto dir = StatsDir::Open(base, uid);
    if (dir.ok()) {
      fn(*dir);
    } else if (skipped != nullptr) {
      skipped->push_back(dir.status().message());
    }
  }
  return Status();
}

// ---- Escaping -------------------------------------------------------------------

// The code point of the UTF-8 sequence at s[i] and its length, or 0 if there
// is no valid (shortest-form, non-surrogate) sequence there.
size_t DecodeUtf8(std::string_view s, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  uint32_t v = c & (0x7f >> n);
  for (size_t k = 1; k < n; k++) {
    if ((b(k) & 0xc0) != 0x80) return 0;
    v = v << 6 | (b(k) & 0x3f);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < kMin[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  *cp = v;
  return n;
}

// Characters that move the cursor, start an escape sequence or reorder what
// follows, rather than print: C1 controls (0x9b is CSI on 8-bit terminals),
// line and paragraph separators, and bidirectional controls.
bool IsFormatControl(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
         (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

}  // namespace

std::string EscapeForDisplay(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  auto hex = [&](unsigned char c) {
    char b[8];
    snprintf(b, sizeof b, "\\x%02x", c);
    out += b;
  };
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      if (c == '\\') out += '\\';
      out += static_cast<char>(c);
      i++;
      continue;
    }
    uint32_t cp = 0;
    size_t n = c < 0x80 ? 0 : DecodeUtf8(text, i, &cp);
    if (n != 0 && !IsFormatControl(cp)) {
      out.append(text.substr(i, n));
    } else {
      for (size_t k = 0; k < std::max<size_t>(n, 1); k++) hex(static_cast<unsigned char>(text[i + k]));
    }
    i += std::max<size_t>(n, 1);
  }
  return out;
}

Result<bool> RemoveStaleStatsFileIn(const StatsDir& dir, const std::string& name) {
  struct stat a, b;
  if (fstatat(dir.fd(), name.c_str(), &a, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT) return false;
  auto fd = dir.OpenFile(name);
  if (!fd.ok()) return fd.status();
  if (StaleReason(fd->get(), dir, name).empty()) return false;
  // Still the file we judged: a new process with this pid replaces a stale
  // file by unlink + create, and its new file must survive.
  if (fstat(fd->get(), &a) != 0 || fstatat(dir.fd(), name.c_str(), &b, AT_SYMLINK_NOFOLLOW) != 0 ||
      a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
    return false;
  }
  if (unlinkat(dir.fd(), name.c_str(), 0) != 0) return Status::FromErrno("unlink " + dir.path() + "/" + name, errno);
  return true;
}

std::string DefaultStatsDir() {
  const char* d = getenv("LIBPAGER_STATS_DIR");
  return d != nullptr && d[0] != '\0' ? d : "/dev/shm";
}

Result<std::string> UserStatsDir(const std::string& dir) {
  auto d = StatsDir::OpenOwn(dir);
  if (!d.ok()) return d.status();
  return d->path();
}

Result<PagedProcess> ReadPagedProcess(const std::string& path) {
  std::string name;
  auto dir = DirOf(path, &name);
  if (!dir.ok()) return dir.status();
  return Examine(*dir, name);
}

Result<std::vector<PagedProcess>> ListPagedProcesses(const std::string& dir, std::vector<std::string>* skipped) {
  std::vector<PagedProcess> out;
  Status s = ForEachUserDir(dir, skipped, [&](const StatsDir& d) {
    for (const std::string& name : d.Names()) {
      auto p = Examine(d, name);
      if (p.ok()) {
        out.push_back(std::move(*p));
      } else if (skipped != nullptr) {
        skipped->push_back(p.status().message());
      }
    }
  });
  if (!s.ok()) return s;
  std::sort(out.begin(), out.end(), [](const PagedProcess& a, const PagedProcess& b) {
    return a.pid != b.pid ? a.pid < b.pid : a.index < b.index;
  });
  return out;
}

Result<std::vector<Leftover>> FindStaleStatsFiles(const std::string& dir) {
  std::vector<Leftover> out;
  Status s = ForEachUserDir(dir, nullptr, [&](const StatsDir& d) {
    for (const std::string& name : d.Names()) {
      auto fd = d.OpenFile(name);
      if (!fd.ok()) continue;
      std::string why = StaleReason(fd->get(), d, name);
      if (!why.empty()) out.push_back(Leftover{d.path() + "/" + name, PidOfStatsName(name), why});
    }
  });
  if (!s.ok()) return s;
  return out;
}

Result<bool> RemoveStaleStatsFile(const std::string& path) {
  std::string name;
  auto dir = DirOf(path, &name);
  if (!dir.ok()) return dir.status();
  return RemoveStaleStatsFileIn(*dir, name);
}

}  // namespace pager

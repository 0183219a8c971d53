#include "memory_bounds.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "unique_fd.h"

#include "pager/units.h"

namespace pager {
namespace {

// With read(2), not iostreams: libpager may be loaded into a C program
// whose malloc is glibc's while operator new is jemalloc's, and libstdc++'s
// stream buffers then free with the wrong one (install_test's C consumer).
std::string ReadSmallFile(const std::string& path) {
  std::string out;
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return out;
  char buf[4096];
  for (ssize_t n; (n = read(fd.get(), buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  return out;
}

// A limit file's value: a byte count, or "max" (v2: none).
bool ParseLimit(const std::string& text, uint64_t* bytes) {
  if (text.rfind("max", 0) == 0) return false;
  char* end = nullptr;
  unsigned long long v = strtoull(text.c_str(), &end, 10);
  if (end == text.c_str()) return false;
  *bytes = v;
  return true;
}

// Takes `bytes` as the bound if it is lower: "<name> (<source>: <size>)".
void Lower(MemoryBound* b, uint64_t bytes, const std::string& name, const std::string& source) {
  if (bytes < b->bytes) *b = MemoryBound{bytes, name + " (" + source + ": " + FormatSize(bytes) + ")"};
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(strtol(s.substr(i + 1, 3).c_str(), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

struct Mount {
  std::string root, point;
};

// The non-empty fields of `text` between `sep`s (no iostreams: see
// ReadSmallFile).
std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find(sep, pos);
    if (end == std::string::npos) end = text.size();
    if (end > pos) out.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

// The mount of the v1 hierarchy with the memory controller (`v2` false) or
// of the v2 hierarchy (`v2` true), if any.
bool FindMount(const std::string& mountinfo, bool v2, Mount* m) {
  for (const std::string& line : Split(mountinfo, '\n')) {
    // id parent major:minor root mount-point options [optional...] - type source super-options
    std::vector<std::string> w = Split(line, ' ');
    size_t dash = 0;
    while (dash < w.size() && w[dash] != "-") dash++;
    if (dash < 5 || dash + 3 > w.size()) continue;
    const std::string& type = w[dash + 1];
    bool match = v2 ? type == "cgroup2"
                    : type == "cgroup" && ("," + w[dash + 3] + ",").find(",memory,") != std::string::npos;
    if (match) {
      *m = Mount{Unescape(w[3]), Unescape(w[4])};
      return true;
    }
  }
  return false;
}

// The process's cgroup path in the v1 memory hierarchy or the v2 one, from
// /proc/self/cgroup ("N:controllers:/path", v2: "0::/path").
bool FindCgroup(const std::string& cgroups, bool v2, std::string* path) {
  for (const std::string& line : Split(cgroups, '\n')) {
    size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    if (v2 ? controllers.empty() : ("," + controllers + ",").find(",memory,") != std::string::npos) {
      *path = line.substr(b + 1);
      return true;
    }
  }
  return false;
}

// Lowers `b` by the limits of the process's cgroup in one hierarchy and of
// its ancestors up to the mount.
void LowerByCgroup(const std::string& root, const std::string& mountinfo, const std::string& cgroups, bool v2,
                   MemoryBound* b) {
  Mount m;
  std::string cg;
  if (!FindMount(mountinfo, v2, &m) || !FindCgroup(cgroups, v2, &cg)) return;
  // The path is relative to the hierarchy's root, the mount shows m.root of it.
  if (m.root != "/") {
    if (cg.compare(0, m.root.size(), m.root) != 0) return;
    cg = cg.substr(m.root.size());
  }
  const std::string file = v2 ? "memory.max" : "memory.limit_in_bytes";
  const std::string leaf = m.point + (cg == "/" ? "" : cg);
  for (std::string dir = leaf;; dir = dir.substr(0, dir.rfind('/'))) {
    uint64_t v = 0;
    if (ParseLimit(ReadSmallFile(root + dir + "/" + file), &v)) {
      Lower(b, v, "the memory cgroup's limit", dir + "/" + file);
    }
    if (dir.size() <= m.point.size()) break;
  }
  // Checked last: where it equals a file on the way, that file is named.
  if (!v2) {
    std::string stat = ReadSmallFile(root + leaf + "/memory.stat");
    size_t at = stat.find("hierarchical_memory_limit ");
    uint64_t v = 0;
    if (at != std::string::npos && ParseLimit(stat.substr(at + 26), &v)) {
      Lower(b, v, "the memory cgroup's limit", leaf + "/memory.stat hierarchical_memory_limit");
    }
  }
}

}  // namespace

Status CheckFits(uint64_t limit_bytes, uint64_t locked_bytes, bool reserve_explicit, const MemoryBound& bound,
                 const std::string& limit_name, const std::string& reserve_name) {
  if (reserve_explicit && locked_bytes > bound.bytes) {
    return Status::Error(reserve_name + ": locks " + FormatSize(locked_bytes) +
                         " in every paged process (with the pager's arena), which does not fit in " + bound.what);
  }
  const uint64_t need = limit_bytes > UINT64_MAX - locked_bytes ? UINT64_MAX : limit_bytes + locked_bytes;
  if (need > bound.bytes) {
    return Status::Error(limit_name + ": " + FormatSize(limit_bytes) + ", plus the " + FormatSize(locked_bytes) +
                         " the pager locks, does not fit in " + bound.what);
  }
  return Status();
}

MemoryBound ProcessMemoryBound(const std::string& root) {
  MemoryBound b;
  std::string meminfo = ReadSmallFile(root + "/proc/meminfo");
  size_t at = meminfo.find("MemTotal:");
  if (at != std::string::npos) {
    uint64_t kib = strtoull(meminfo.c_str() + at + 9, nullptr, 10);
    if (kib != 0) Lower(&b, kib * 1024, "this machine's memory", "MemTotal");
  }
  const std::string mountinfo = ReadSmallFile(root + "/proc/self/mountinfo");
  const std::string cgroups = ReadSmallFile(root + "/proc/self/cgroup");
  LowerByCgroup(root, mountinfo, cgroups, false, &b);
  LowerByCgroup(root, mountinfo, cgroups, true, &b);
  return b;
}

}  // namespace pager

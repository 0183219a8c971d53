#include "process_id.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "unique_fd.h"

namespace pager {
namespace {

// The kernel's initial PID namespace always has this inode
// (PROC_PID_INIT_INO, include/linux/proc_ns.h).
constexpr uint64_t kInitPidNs = 0xEFFFFFFCu;

// A /proc file, whole (they are small); empty if it cannot be read.
std::string ReadAt(int dirfd, const char* name) {
  UniqueFd fd(openat(dirfd, name, O_RDONLY | O_CLOEXEC));
  std::string out;
  if (!fd.valid()) return out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return n < 0 ? std::string() : out;
}

// Field 22 (starttime) of a /proc/<pid>/stat text, or 0.
uint64_t StartTimeOf(const std::string& stat) {
  // The command (field 2) may hold spaces and parentheses: fields resume
  // after the last ')'. starttime is field 22, the 20th after it.
  size_t p = stat.rfind(')');
  if (p == std::string::npos) return 0;
  const char* s = stat.c_str() + p;
  for (int field = 3; field <= 22; field++) {
    s = strchr(s + 1, ' ');
    if (s == nullptr) return 0;
  }
  return strtoull(s + 1, nullptr, 10);
}

// The effective uid of a /proc/<pid>/status text ("Uid:" real effective ...).
bool EuidOf(const std::string& status, uid_t* euid) {
  size_t p = status.find("\nUid:");
  if (p == std::string::npos) return false;
  char* end = nullptr;
  strtoul(status.c_str() + p + 5, &end, 10);  // the real uid
  const char* e = end;
  unsigned long v = strtoul(e, &end, 10);
  if (end == e) return false;
  *euid = static_cast<uid_t>(v);
  return true;
}

uint64_t StartTimeFromStat(const char* dir) {
  UniqueFd d(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  return d.valid() ? StartTimeOf(ReadAt(d.get(), "stat")) : 0;
}

// /proc belongs to our PID namespace: /proc/self is our own pid. Without
// this, /proc/<pid> would name another process than kill(pid) does.
bool ProcIsOurs() {
  char self[32];
  ssize_t n = readlink("/proc/self", self, sizeof self - 1);
  if (n <= 0) return false;
  self[n] = '\0';
  return atoi(self) == getpid();
}

uint64_t InodeOf(const char* path, int* err) {
  struct stat st;
  if (stat(path, &st) != 0) {
    *err = errno;
    return 0;
  }
  *err = 0;
  return st.st_ino;
}

}  // namespace

uint64_t ProcessStartTime(pid_t pid) {
  if (pid <= 0 || !ProcIsOurs()) return 0;
  return StartTimeFromStat(("/proc/" + std::to_string(pid)).c_str());
}

std::optional<ProcessInfo> ReadProcessInfo(pid_t pid) {
  if (pid <= 0 || !ProcIsOurs()) return std::nullopt;
  UniqueFd dir(open(("/proc/" + std::to_string(pid)).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return std::nullopt;
  ProcessInfo info;
  info.start_time = StartTimeOf(ReadAt(dir.get(), "stat"));
  if (info.start_time == 0 || !EuidOf(ReadAt(dir.get(), "status"), &info.euid)) return std::nullopt;
  return info;
}

bool PidExists(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

ProcessIdentity ThisProcess() {
  ProcessIdentity id;
  id.pid = getpid();
  id.start_time = StartTimeFromStat("/proc/self");
  int err;
  id.pid_ns = InodeOf("/proc/self/ns/pid", &err);
  return id;
}

NamespaceState PidNamespaceState(uint64_t ns) {
  if (ns == 0) return NamespaceState::kUnknown;
  int err;
  const uint64_t own = InodeOf("/proc/self/ns/pid", &err);
  if (own == ns) return NamespaceState::kLive;
  bool saw_all = own == kInitPidNs && ProcIsOurs();
  DIR* d = opendir("/proc");
  if (d == nullptr) return NamespaceState::kUnknown;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    // The host's init is in the initial namespace by definition (and some
    // inits refuse even root a look at their ns links).
    if (own == kInitPidNs && strcmp(e->d_name, "1") == 0) continue;
    const std::string link = std::string("/proc/") + e->d_name + "/ns/pid";
    if (InodeOf(link.c_str(), &err) == ns) {
      closedir(d);
      return NamespaceState::kLive;
    }
    // ENOENT: the process ended meanwhile; anything else hides it from us.
    if (err != 0 && err != ENOENT) saw_all = false;
  }
  closedir(d);
  return saw_all ? NamespaceState::kGone : NamespaceState::kUnknown;
}

}  // namespace pager

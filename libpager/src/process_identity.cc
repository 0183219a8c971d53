#include "process_identity.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "unique_fd.h"

namespace pager {
namespace {

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

bool StartTimeFromStat(const std::string& stat, uint64_t* start_time) {
  // The command (field 2) may hold spaces and parentheses: fields resume
  // after the last ')'. starttime is field 22, the 20th after it.
  size_t p = stat.rfind(')');
  if (p == std::string::npos) return false;
  const char* s = stat.c_str() + p + 1;
  for (int field = 3; field < 22; field++) {
    s = strchr(s + 1, ' ');
    if (s == nullptr) return false;
  }
  char* end = nullptr;
  *start_time = strtoull(s + 1, &end, 10);
  return end != s + 1;
}

bool EuidFromStatus(const std::string& status, uid_t* euid) {
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

}  // namespace

std::optional<ProcessIdentity> ReadProcessIdentity(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  UniqueFd dir(open(("/proc/" + std::to_string(pid)).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return std::nullopt;
  ProcessIdentity id;
  if (!StartTimeFromStat(ReadAt(dir.get(), "stat"), &id.start_time) ||
      !EuidFromStatus(ReadAt(dir.get(), "status"), &id.euid)) {
    return std::nullopt;
  }
  return id;
}

uint64_t ProcessStartTime(pid_t pid) {
  auto id = ReadProcessIdentity(pid);
  return id ? id->start_time : 0;
}

}  // namespace pager

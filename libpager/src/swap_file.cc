#include "swap_file.h"

#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "process_id.h"

namespace pager {
namespace {

constexpr std::string_view kPrefix = "libpager-", kSuffix = ".swap";
constexpr size_t kMaxHost = 64;
constexpr size_t kRandomBytes = 16;
constexpr uint64_t kMaxPid = 4194304;  // PID_MAX_LIMIT on 64-bit kernels

bool IsHostByte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

// A canonical decimal: digits, no leading zero (but "0"), no overflow.
bool ParseDecimal(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

bool IsRandomPart(std::string_view s) {
  if (s.size() != 2 * kRandomBytes) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::string SwapFileName::Stem() const {
  return std::string(kPrefix) + host + "-" + std::to_string(pid) + "-" + std::to_string(start_time) + "-" +
         std::to_string(pid_ns) + "-" + random;
}

std::string SwapFileName::ToString() const { return Stem() + std::string(kSuffix); }

std::string SwapFileHost() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "unknown";
  std::string host(buf, std::min(strnlen(buf, sizeof buf), kMaxHost));
  for (char& c : host) {
    if (!IsHostByte(c)) c = '_';
  }
  return host;
}

Result<SwapFileName> NewSwapFileName() {
  unsigned char bytes[kRandomBytes];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::FromErrno("swap file name: getrandom", n < 0 ? errno : EIO);
    got += static_cast<size_t>(n);
  }
  static const char kHex[] = "0123456789abcdef";
  SwapFileName name;
  for (unsigned char b : bytes) {
    name.random += kHex[b >> 4];
    name.random += kHex[b & 15];
  }
  const ProcessIdentity me = ThisProcess();
  name.host = SwapFileHost();
  name.pid = me.pid;
  name.start_time = me.start_time;
  name.pid_ns = me.pid_ns;
  return name;
}

bool ParseSwapFileName(std::string_view name, SwapFileName* out) {
  if (name.size() <= kPrefix.size() + kSuffix.size() || name.substr(0, kPrefix.size()) != kPrefix ||
      name.substr(name.size() - kSuffix.size()) != kSuffix) {
    return false;
  }
  std::string_view rest = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  // The four fixed fields, from the right: the host may hold '-'.
  std::string_view field[4];  // random, pidns, start, pid
  for (std::string_view& f : field) {
    size_t dash = rest.rfind('-');
    if (dash == std::string_view::npos) return false;
    f = rest.substr(dash + 1);
    rest = rest.substr(0, dash);
  }
  SwapFileName n;
  uint64_t pid = 0;
  if (!IsRandomPart(field[0]) || !ParseDecimal(field[1], &n.pid_ns) || !ParseDecimal(field[2], &n.start_time) ||
      !ParseDecimal(field[3], &pid) || pid == 0 || pid > kMaxPid || rest.empty() || rest.size() > kMaxHost) {
    return false;
  }
  for (char c : rest) {
    if (!IsHostByte(c)) return false;
  }
  n.random = field[0];
  n.host = rest;
  n.pid = static_cast<pid_t>(pid);
  *out = std::move(n);
  return true;
}

SwapFile::Owner JudgeOwner(const SwapFileName& name, std::string* why) {
  const std::string pid = std::to_string(name.pid);
  if (name.host != SwapFileHost()) {
    *why = "made on host " + name.host + ", where this host cannot see whether process " + pid + " runs";
    return SwapFile::Owner::kUnknown;
  }
  const ProcessIdentity me = ThisProcess();
  if (name.pid_ns != me.pid_ns || name.pid_ns == 0) {
    switch (PidNamespaceState(name.pid_ns)) {
      case NamespaceState::kGone:
        *why = "PID namespace " + std::to_string(name.pid_ns) + " of process " + pid + " is gone";
        return SwapFile::Owner::kGone;
      case NamespaceState::kLive:
        *why = "process " + pid + " of PID namespace " + std::to_string(name.pid_ns) + " cannot be seen from here";
        return SwapFile::Owner::kUnknown;
      case NamespaceState::kUnknown:
        break;
    }
    *why = "made in PID namespace " + std::to_string(name.pid_ns) + ", whose processes this process cannot all see";
    return SwapFile::Owner::kUnknown;
  }
  if (!PidExists(name.pid)) {
    *why = "process " + pid + " is gone";
    return SwapFile::Owner::kGone;
  }
  const uint64_t start = ProcessStartTime(name.pid);
  if (start == 0 || name.start_time == 0) {
    *why = "process " + pid + " exists; its start time cannot be compared";
    return SwapFile::Owner::kUnknown;
  }
  if (start != name.start_time) {
    *why = "pid " + pid + " now names another process";
    return SwapFile::Owner::kGone;
  }
  *why = "process " + pid + " runs";
  return SwapFile::Owner::kLive;
}

bool DescribeSwapFile(std::string_view name, uint64_t size_bytes, int64_t mtime_unix, SwapFile* out) {
  SwapFileName n;
  if (!ParseSwapFileName(name, &n)) return false;
  SwapFile f;
  f.name = name;
  f.host = n.host;
  f.pid = n.pid;
  f.size_bytes = size_bytes;
  if (mtime_unix > 0) f.idle_seconds = std::max<int64_t>(0, static_cast<int64_t>(time(nullptr)) - mtime_unix);
  f.owner = JudgeOwner(n, &f.why);
  *out = std::move(f);
  return true;
}

}  // namespace pager

// Config defaults, validation, and the LIBPAGER_* environment: the one place
// settings are read.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "memory_bounds.h"
#include "pager/pager.h"
#include "pager/units.h"
#include "reserve.h"
#include "store/server_list.h"

namespace pager {

Result<uint64_t> ParseSize(const std::string& text) {
  const char* s = text.c_str();
  char* end = nullptr;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno != 0 || v < 0 || std::isnan(v) || std::isinf(v)) {
    return Status::Error("'" + text + "' is not a size (examples: 4096, 64K, 512M, 1.5G)");
  }
  std::string unit(end);
  for (char& c : unit) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
  if (unit.size() > 1 && unit.back() == 'I') unit.pop_back();
  double mult = 1;
  if (unit.empty() || unit == "B") {
    mult = 1;
  } else if (unit == "K") {
    mult = 1024.0;
  } else if (unit == "M") {
    mult = 1024.0 * 1024;
  } else if (unit == "G") {
    mult = 1024.0 * 1024 * 1024;
  } else if (unit == "T") {
    mult = 1024.0 * 1024 * 1024 * 1024;
  } else {
    return Status::Error("'" + text + "': unknown unit '" + std::string(end) + "' (use K, M, G or T)");
  }
  double bytes = std::round(v * mult);
  // 2^64: llround would go through int64_t and wrap above 2^63.
  if (bytes >= 18446744073709551616.0) return Status::Error("'" + text + "' is too large");
  return static_cast<uint64_t>(bytes);
}

std::string FormatSize(uint64_t bytes) {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  char buf[32];
  if (u == 0) {
    snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    snprintf(buf, sizeof buf, v < 10 ? "%.2f %s" : (v < 100 ? "%.1f %s" : "%.0f %s"), v, units[u]);
  }
  return buf;
}

namespace {

constexpr uint64_t kMinReserve = 1ull << 20;
// The default reserve: 1% of the limit, between these. The pool holds the
// writes and reads in flight (runs of up to 1 MiB) and the pager threads'
// allocations; 64 MiB stages 64 full runs at once, many times what keeps a
// store busy (docs/reserve.md), and it is locked in every paged process.
constexpr uint64_t kDefaultReserveMin = 8ull << 20, kDefaultReserveMax = 64ull << 20;

// The Config field each LIBPAGER_* variable sets: how Validate() names a
// setting by default.
struct SettingName {
  const char* variable;
  const char* field;
};
constexpr SettingName kSettingNames[] = {
    {"LIBPAGER_LIMIT", "memory_limit"},
    {"LIBPAGER_RESERVE", "reserve"},
    {"LIBPAGER_LOW_WATERMARK", "low_watermark"},
    {"LIBPAGER_HIGH_WATERMARK", "high_watermark"},
    {"LIBPAGER_INACTIVE_RATIO", "inactive_ratio"},
    {"LIBPAGER_READAHEAD", "readahead_pages"},
    {"LIBPAGER_PREFETCH", "prefetch_pages"},
    {"LIBPAGER_SWAP_MAX", "swap_max"},
    {"LIBPAGER_SWAP", "swap"},
    {"LIBPAGER_REPLICAS", "replicas"},
    {"LIBPAGER_SERVER_TIMEOUT", "server_timeout_ms"},
};

std::string FieldAndVariable(const std::string& variable) {
  for (const SettingName& n : kSettingNames) {
    if (variable == n.variable) return std::string(n.field) + " (" + variable + ")";
  }
  return variable;
}

Status BadVar(const char* var, const std::string& value, const std::string& why) {
  return Status::Error(std::string(var) + "='" + value + "': " + why);
}

Status ReadSize(const char* var, uint64_t* out) {
  const char* v = getenv(var);
  if (v == nullptr) return Status();
  auto r = ParseSize(v);
  if (!r.ok()) return BadVar(var, v, r.status().message());
  *out = *r;
  return Status();
}

Status ReadFraction(const char* var, double* out) {
  const char* v = getenv(var);
  if (v == nullptr) return Status();
  char* end = nullptr;
  double d = strtod(v, &end);
  if (end == v || *end != '\0' || !(d > 0 && d < 1)) return BadVar(var, v, "expected a fraction between 0 and 1");
  *out = d;
  return Status();
}

Status ReadUint(const char* var, uint32_t* out) {
  const char* v = getenv(var);
  if (v == nullptr) return Status();
  char* end = nullptr;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (end == v || *end != '\0' || errno != 0 || n > 0xFFFFFFFFull || v[0] == '-') {
    return BadVar(var, v, "expected a non-negative integer");
  }
  *out = static_cast<uint32_t>(n);
  return Status();
}

// A duration in milliseconds: "30s", "500ms", "2m", "1h"; a bare number is
// seconds.
Status ReadDurationMs(const char* var, uint32_t* out) {
  const char* v = getenv(var);
  if (v == nullptr) return Status();
  char* end = nullptr;
  errno = 0;
  const double d = strtod(v, &end);
  const std::string unit(end);
  const double ms_per = unit.empty() || unit == "s" ? 1000 : unit == "ms" ? 1 : unit == "m" ? 60000
                        : unit == "h"                ? 3600000
                                                     : -1;
  const double ms = d * ms_per;
  if (end == v || errno != 0 || ms_per < 0 || !(ms >= 0) || ms > 0xFFFFFFFFu) {
    return BadVar(var, v, "expected a duration (examples: 30s, 500ms, 2m)");
  }
  *out = static_cast<uint32_t>(std::llround(ms));
  return Status();
}

}  // namespace

Result<Config> Config::FromEnvironment(Config c) {
  Status s;
  if (!(s = ReadSize("LIBPAGER_LIMIT", &c.memory_limit)).ok()) return s;
  if (!(s = ReadSize("LIBPAGER_SWAP_MAX", &c.swap_max)).ok()) return s;
  if (!(s = ReadSize("LIBPAGER_RESERVE", &c.reserve)).ok()) return s;
  if (!(s = ReadFraction("LIBPAGER_HIGH_WATERMARK", &c.high_watermark)).ok()) return s;
  if (!(s = ReadFraction("LIBPAGER_LOW_WATERMARK", &c.low_watermark)).ok()) return s;
  if (!(s = ReadFraction("LIBPAGER_INACTIVE_RATIO", &c.inactive_ratio)).ok()) return s;
  if (!(s = ReadUint("LIBPAGER_READAHEAD", &c.readahead_pages)).ok()) return s;
  if (!(s = ReadUint("LIBPAGER_PREFETCH", &c.prefetch_pages)).ok()) return s;
  if (!(s = ReadUint("LIBPAGER_CONNECT_TIMEOUT_MS", &c.connect_timeout_ms)).ok()) return s;
  if (!(s = ReadUint("LIBPAGER_REPLICAS", &c.replicas)).ok()) return s;
  if (!(s = ReadDurationMs("LIBPAGER_SERVER_TIMEOUT", &c.server_timeout_ms)).ok()) return s;
  if (const char* v = getenv("LIBPAGER_SWAP")) c.swap = v;
  if (const char* v = getenv("LIBPAGER_DISABLE")) c.disable_features = v;
  if (const char* v = getenv("LIBPAGER_STATS_DIR")) c.stats_dir = v;
  if (const char* v = getenv("LIBPAGER_ENCRYPT")) {
    if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0) return BadVar("LIBPAGER_ENCRYPT", v, "expected 0 or 1");
    c.encrypt = v[0] == '1' ? Config::Encrypt::kOn : Config::Encrypt::kOff;
  }
  if (const char* v = getenv("LIBPAGER_STATS")) {
    if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0) return BadVar("LIBPAGER_STATS", v, "expected 0 or 1");
    c.publish_stats = v[0] == '1';
  }
  if (const char* v = getenv("LIBPAGER_POLICY")) {
    if (strcmp(v, "clock") == 0) {
      c.policy = EvictionPolicy::kClock;
    } else if (strcmp(v, "fifo") == 0) {
      c.policy = EvictionPolicy::kFifo;
    } else {
      return BadVar("LIBPAGER_POLICY", v, "expected clock or fifo");
    }
  }
  return c;
}

Result<Config> Config::FromEnvironment() { return FromEnvironment(Config()); }

uint64_t Config::EffectiveReserve() const {
  if (reserve != 0) return reserve;
  return std::clamp<uint64_t>(memory_limit / 100, kDefaultReserveMin, kDefaultReserveMax);
}

bool Config::Encrypting() const {
  if (encrypt != Encrypt::kAuto) return encrypt == Encrypt::kOn;
  return EffectiveSwap().rfind("nfs://", 0) == 0;
}

std::string Config::EffectiveSwap() const {
  if (!swap.empty()) return swap;
  const char* t = getenv("TMPDIR");
  return t != nullptr && t[0] == '/' ? t : "/var/tmp";
}

StoreOptions Config::store_options() const {
  StoreOptions o;
  o.max_bytes = swap_max;
  o.connect_timeout_ms = connect_timeout_ms;
  o.replicas = replicas;
  o.server_timeout_ms = server_timeout_ms;
  return o;
}

Status Config::Validate() const { return Validate(FieldAndVariable); }

Status Config::Validate(const std::function<std::string(const std::string&)>& name) const {
  const std::string limit = name("LIBPAGER_LIMIT"), reserve_name = name("LIBPAGER_RESERVE");
  if (memory_limit == 0) return Status::Error(limit + ": must be set and above 0");
  uint64_t r = EffectiveReserve();
  if (r < kMinReserve) {
    return Status::Error(reserve_name + ": " + FormatSize(r) + " is below the minimum of " + FormatSize(kMinReserve));
  }
  // A limit smaller than the pool the pager needs to free memory is a
  // misconfiguration, not something to page through (and, with the reserve's
  // 1 MiB floor, keeps the limit above a full write-back run).
  if (memory_limit < r) {
    return Status::Error(limit + ": " + FormatSize(memory_limit) + " is below the reserve of " + FormatSize(r) +
                         " (raise the limit, or lower " + reserve_name + ")");
  }
  if (!(low_watermark > 0 && low_watermark < high_watermark && high_watermark <= 1)) {
    return Status::Error(name("LIBPAGER_LOW_WATERMARK") + ", " + name("LIBPAGER_HIGH_WATERMARK") +
                         ": need 0 < low < high <= 1");
  }
  if (!(inactive_ratio > 0 && inactive_ratio < 0.5)) {
    return Status::Error(name("LIBPAGER_INACTIVE_RATIO") + ": need 0 < ratio < 0.5");
  }
  if (readahead_pages == 0 || readahead_pages > 1024) {
    return Status::Error(name("LIBPAGER_READAHEAD") + ": need 1..1024");
  }
  if (prefetch_pages > 65536) {
    return Status::Error(name("LIBPAGER_PREFETCH") + ": need 0..65536 (256 MiB)");
  }
  if (swap_max != 0 && swap_max < 256 * kPageSize) {
    return Status::Error(name("LIBPAGER_SWAP_MAX") + ": " + FormatSize(swap_max) + " is below 1 MiB");
  }
  const std::vector<std::string> servers = SplitSwapLocation(EffectiveSwap());
  if (replicas > 2 || (servers.size() < 2 && replicas > 1)) {
    return Status::Error(name("LIBPAGER_REPLICAS") + ": " + std::to_string(replicas) + " copies " +
                         (replicas > 2 ? "are not supported (1 or 2)"
                                       : "need two servers or more in " + name("LIBPAGER_SWAP")));
  }
  if (servers.size() > 1) {
    if (Status s = CheckServerList(servers, replicas); !s.ok()) return Status::Error(name("LIBPAGER_SWAP") + ": " + s.message());
    if (server_timeout_ms < 100 || server_timeout_ms > 3600000) {
      return Status::Error(name("LIBPAGER_SERVER_TIMEOUT") + ": need 100ms..1h");
    }
  }
  // Last, as it reads the machine: a limit the machine (or the cgroup) can
  // never hold is a typo, and the pool is locked in every paged process.
  return CheckFits(memory_limit, Reserve::LockedBytes(r, EffectiveSwap()), reserve != 0, ProcessMemoryBound(), limit,
                   reserve_name);
}

}  // namespace pager

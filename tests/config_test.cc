// Settings: human sizes, Config::Validate, the LIBPAGER_* environment, and
// the errors Pager::Create gives for a bad configuration.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "memory_bounds.h"
#include "pager/pager.h"
#include "pager/units.h"
#include "reserve.h"
#include "test_util.h"

namespace pager {
namespace {

// gmock is not linked: a plain substring check with a readable failure.
#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "'" << (text) << "' does not mention '" << (part) << "'"

constexpr uint64_t kKiB = 1024, kMiB = kKiB << 10, kGiB = kMiB << 10, kTiB = kGiB << 10;

// ---- ParseSize / FormatSize ----------------------------------------------

TEST(ParseSize, AcceptsPlainBytesAndBinaryUnits) {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  const Case cases[] = {
      {"0", 0},
      {"4096", 4096},
      {"64K", 64 * kKiB},
      {"64k", 64 * kKiB},
      {"64KB", 64 * kKiB},
      {"64KiB", 64 * kKiB},
      {"512M", 512 * kMiB},
      {"256MiB", 256 * kMiB},
      {"256mib", 256 * kMiB},
      {"1.5G", 3 * kGiB / 2},
      {"2g", 2 * kGiB},
      {"1t", kTiB},
      {"1TiB", kTiB},
      {"100B", 100},
      {"0.5K", 512},
  };
  for (const Case& c : cases) {
    auto r = ParseSize(c.text);
    ASSERT_TRUE(r.ok()) << c.text << ": " << r.status().message();
    EXPECT_EQ(*r, c.bytes) << c.text;
  }
}

TEST(ParseSize, RejectsWhatIsNotASizeAndQuotesIt) {
  for (const char* bad : {"", "abc", "-1", "12Q", "1e30", "K", "nan", "inf", "1.5X", "12 MB extra", "1KK"}) {
    auto r = ParseSize(bad);
    EXPECT_FALSE(r.ok()) << "'" << bad << "' parsed as " << (r.ok() ? std::to_string(*r) : "");
    if (!r.ok()) {
      EXPECT_CONTAINS(r.status().message(), std::string("'") + bad + "'") << bad;
    }
  }
}

TEST(ParseSize, RejectsSizesThatDoNotFitIn64Bits) {
  EXPECT_FALSE(ParseSize("1e30").ok());
  EXPECT_FALSE(ParseSize("20000000T").ok());  // ~2^64.1 bytes
  EXPECT_FALSE(ParseSize("18446744073709551616").ok());  // 2^64
  auto big = ParseSize("1000000T");
  ASSERT_TRUE(big.ok()) << big.status().message();
  EXPECT_EQ(*big, 1000000 * kTiB);
}

TEST(ParseSize, SizesAbove2To63AreExactNotWrapped) {
  // Between 2^63 and 2^64 a size still fits a uint64_t: it must parse to its
  // value (or be refused), never to a wrapped or saturated one.
  auto r = ParseSize("10000000T");  // 10^7 * 2^40 ~= 1.1e19, exact in a double
  if (r.ok()) {
    EXPECT_EQ(*r, 10000000 * kTiB);
  }
  auto r2 = ParseSize("12000000000000000000");
  if (r2.ok()) {
    EXPECT_EQ(*r2, 12000000000000000000ull);
  }
}

TEST(FormatSize, UsesTheLargestBinaryUnit) {
  EXPECT_EQ(FormatSize(0), "0 B");
  EXPECT_EQ(FormatSize(1023), "1023 B");
  EXPECT_EQ(FormatSize(1024), "1.00 KiB");
  EXPECT_EQ(FormatSize(64 * kKiB), "64.0 KiB");
  EXPECT_EQ(FormatSize(3 * kGiB / 2), "1.50 GiB");
  EXPECT_EQ(FormatSize(256 * kMiB), "256 MiB");
  EXPECT_EQ(FormatSize(2 * kTiB), "2.00 TiB");
  EXPECT_EQ(FormatSize(2048 * kTiB), "2048 TiB");  // no unit past TiB
}

TEST(FormatSize, RoundTripsThroughParseSize) {
  for (uint64_t v : {uint64_t{0}, uint64_t{512}, 4 * kKiB, 64 * kKiB, 3 * kGiB / 2, 256 * kMiB, 5 * kTiB}) {
    std::string text = FormatSize(v);
    std::string compact;
    for (char c : text) {
      if (c != ' ') compact += c;
    }
    auto r = ParseSize(compact);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().message();
    EXPECT_EQ(*r, v) << text;
  }
}

// ---- Config::Validate -----------------------------------------------------

Config Good() {
  Config c;
  c.memory_limit = 64 * kMiB;
  return c;
}

TEST(ConfigValidate, DefaultsWithALimitAreValid) {
  Status s = Good().Validate();
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST(ConfigValidate, ZeroLimitNamesTheSettingAndTheVariable) {
  Config c;
  Status s = c.Validate();
  ASSERT_FALSE(s.ok());
  EXPECT_CONTAINS(s.message(), "memory_limit");
  EXPECT_CONTAINS(s.message(), "LIBPAGER_LIMIT");
}

TEST(ConfigValidate, LimitBelowTheReserveIsAnError) {
  Config c = Good();
  c.memory_limit = 4 * kMiB;  // default reserve is 8 MiB
  Status s = c.Validate();
  ASSERT_FALSE(s.ok());
  EXPECT_CONTAINS(s.message(), "memory_limit");
  EXPECT_CONTAINS(s.message(), "reserve");

  c.memory_limit = 32 * kMiB;
  c.reserve = 48 * kMiB;  // explicit reserve above the limit
  s = c.Validate();
  ASSERT_FALSE(s.ok());
  EXPECT_CONTAINS(s.message(), "LIBPAGER_RESERVE");

  c.reserve = 16 * kMiB;
  EXPECT_TRUE(c.Validate().ok()) << c.Validate().message();
}

TEST(ConfigValidate, ReserveBelowOneMiBNamesTheReserve) {
  Config c = Good();
  c.reserve = kMiB - kPageSize;
  Status s = c.Validate();
  ASSERT_FALSE(s.ok());
  EXPECT_CONTAINS(s.message(), "reserve");
  EXPECT_CONTAINS(s.message(), "LIBPAGER_RESERVE");
  c.reserve = kMiB;
  EXPECT_TRUE(c.Validate().ok()) << c.Validate().message();
}

TEST(ConfigValidate, EffectiveReserveIsOnePercentBetweenEightAndSixtyFourMiB) {
  Config c = Good();
  EXPECT_EQ(c.EffectiveReserve(), 8 * kMiB);
  c.memory_limit = 2 * kGiB;
  EXPECT_EQ(c.EffectiveReserve(), 2 * kGiB / 100);
  // A terabyte limit does not lock 1% of a terabyte in every process.
  c.memory_limit = 100 * kGiB;
  EXPECT_EQ(c.EffectiveReserve(), 64 * kMiB);
  c.memory_limit = kTiB;
  EXPECT_EQ(c.EffectiveReserve(), 64 * kMiB);
  c.reserve = 3 * kMiB;
  EXPECT_EQ(c.EffectiveReserve(), 3 * kMiB);
}

TEST(ConfigValidate, BadWatermarksNameTheWatermarks) {
  struct Case {
    double low, high;
  };
  for (Case w : {Case{0.95, 0.90}, Case{0.9, 0.9}, Case{0, 0.9}, Case{-0.1, 0.9}, Case{0.5, 1.5}}) {
    Config c = Good();
    c.low_watermark = w.low;
    c.high_watermark = w.high;
    Status s = c.Validate();
    ASSERT_FALSE(s.ok()) << "low " << w.low << " high " << w.high;
    EXPECT_CONTAINS(s.message(), "WATERMARK") << "low " << w.low << " high " << w.high;
  }
  Config c = Good();
  c.low_watermark = 0.5;
  c.high_watermark = 1.0;
  EXPECT_TRUE(c.Validate().ok()) << c.Validate().message();
}

TEST(ConfigValidate, OtherBadSettingsAreNamed) {
  {
    Config c = Good();
    c.inactive_ratio = 0.6;
    Status s = c.Validate();
    ASSERT_FALSE(s.ok());
    EXPECT_CONTAINS(s.message(), "inactive_ratio");
  }
  {
    Config c = Good();
    c.readahead_pages = 0;
    Status s = c.Validate();
    ASSERT_FALSE(s.ok());
    EXPECT_CONTAINS(s.message(), "readahead");
  }
  {
    Config c = Good();
    c.swap_max = 64 * kKiB;
    Status s = c.Validate();
    ASSERT_FALSE(s.ok());
    EXPECT_CONTAINS(s.message(), "swap_max");
  }
}

// Several servers (docs/servers.md): the list, the copies and the timeout
// are checked before anything connects, each error naming the setting.
TEST(ConfigValidate, ServerListsCopiesAndTheServerTimeoutAreChecked) {
  const std::string a = "nfs://10.0.0.1/export", b = "nfs://10.0.0.2/export";
  struct Case {
    std::string swap;
    uint32_t replicas;
    uint32_t timeout_ms;
    const char* expect;  // nullptr: valid
  };
  const Case cases[] = {
      {a + "," + b, 0, 30000, nullptr},
      {a + "," + b, 1, 30000, nullptr},
      {a + "," + b, 2, 100, nullptr},
      {a, 1, 30000, nullptr},
      {a, 2, 30000, "replicas (LIBPAGER_REPLICAS): 2 copies need two servers or more in swap (LIBPAGER_SWAP)"},
      {a + "," + b, 3, 30000, "replicas (LIBPAGER_REPLICAS): 3 copies are not supported"},
      {a + "," + a, 0, 30000, "server 10.0.0.1:2049 is named twice"},
      {a + ",/var/tmp", 0, 30000, "'/var/tmp': with several servers, every entry must be an nfs:// URL"},
      {a + ",", 0, 30000, "'': with several servers"},
      {a + "," + b, 0, 50, "server_timeout_ms (LIBPAGER_SERVER_TIMEOUT): need 100ms..1h"},
  };
  for (const Case& k : cases) {
    Config c = Good();
    c.swap = k.swap;
    c.replicas = k.replicas;
    c.server_timeout_ms = k.timeout_ms;
    Status s = c.Validate();
    if (k.expect == nullptr) {
      EXPECT_TRUE(s.ok()) << k.swap << ": " << s.message();
    } else {
      EXPECT_CONTAINS(s.message(), k.expect) << k.swap;
    }
  }
}

// ---- Limits the machine can hold ----------------------------------------

// The issue's --limit 1.5T on a 24 GiB machine: accepted, and its 1% reserve
// plus arena locked ~24.6 GiB in every paged process.
TEST(ConfigValidate, LimitThatCannotFitThisMachineIsRefusedNamingTheBound) {
  const MemoryBound bound = ProcessMemoryBound();
  ASSERT_NE(bound.bytes, UINT64_MAX) << "MemTotal unreadable";
  if (bound.bytes >= 3 * kTiB / 2) GTEST_SKIP() << "this machine holds 1.5 TiB: " << bound.what;
  Config c = Good();
  c.memory_limit = 3 * kTiB / 2;
  Status s = c.Validate();
  ASSERT_FALSE(s.ok()) << "--limit 1.5T accepted on " << bound.what;
  EXPECT_CONTAINS(s.message(), "memory_limit (LIBPAGER_LIMIT): 1.50 TiB");
  EXPECT_CONTAINS(s.message(), bound.what);
  // What fits is accepted.
  c.memory_limit = bound.bytes / 2;
  EXPECT_TRUE(c.Validate().ok()) << c.Validate().message();
  // An explicit reserve too large by itself is named.
  c.memory_limit = 2 * bound.bytes;
  c.reserve = bound.bytes;
  s = c.Validate();
  ASSERT_FALSE(s.ok());
  EXPECT_CONTAINS(s.message(), "reserve (LIBPAGER_RESERVE): locks");
}

TEST(ConfigValidate, NamesSettingsAsTheCallerNamesThem) {
  Config c = Good();
  c.memory_limit = 4 * kMiB;
  Status s = c.Validate([](const std::string& var) { return var == "LIBPAGER_LIMIT" ? "--limit" : "--" + var; });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "--limit: 4.00 MiB is below the reserve of 8.00 MiB (raise the limit, or lower "
                         "--LIBPAGER_RESERVE)");
}

TEST(CheckFits, CountsTheLockedPoolAndNamesWhatDoesNotFit) {
  const MemoryBound bound{256 * kMiB, "the memory cgroup's limit (x: 256 MiB)"};
  const uint64_t locked = Reserve::LockedBytes(8 * kMiB, "/var/tmp");
  EXPECT_EQ(locked, 8 * kMiB + 2048 * 3 / 5 * kPageSize) << "the reserve plus its arena's 3/5";
  EXPECT_GT(Reserve::LockedBytes(8 * kMiB, "nfs://host/export"), 8 * kMiB * 2)
      << "over NFS the arena holds libnfs's copy of everything in flight";
  EXPECT_TRUE(CheckFits(256 * kMiB - locked, locked, false, bound, "L", "R").ok());
  Status s = CheckFits(256 * kMiB - locked + kPageSize, locked, false, bound, "L", "R");
  ASSERT_FALSE(s.ok()) << "the limit fits, the limit plus the pool does not";
  EXPECT_EQ(s.message(), "L: 243 MiB, plus the 12.8 MiB the pager locks, does not fit in the memory cgroup's "
                         "limit (x: 256 MiB)");
  s = CheckFits(300 * kMiB, 300 * kMiB, true, bound, "L", "R");
  ASSERT_FALSE(s.ok());
  EXPECT_CONTAINS(s.message(), "R: locks 300 MiB in every paged process");
  EXPECT_FALSE(CheckFits(UINT64_MAX, locked, false, bound, "L", "R").ok()) << "the sum wrapped";
}

// A fake /proc and cgroup tree under a temporary root.
class MemoryBoundTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/config_test_bound.XXXXXX";
    root_ = mkdtemp(t);
    Write("/proc/meminfo", "MemTotal:        1048576 kB\nMemFree:          524288 kB\n");
    Write("/proc/self/mountinfo",
          "24 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
          "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
          "36 31 0:33 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
          "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n");
    Write("/proc/self/cgroup", "5:cpu:/elsewhere\n4:memory:/a/b\n0::/x/y\n");
    Write("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    Write("/sys/fs/cgroup/memory/a/memory.limit_in_bytes", "9223372036854771712\n");
    Write("/sys/fs/cgroup/memory/a/b/memory.limit_in_bytes", "9223372036854771712\n");
    Write("/sys/fs/cgroup/unified/x/y/memory.max", "max\n");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void Write(const std::string& path, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(root_ + path).parent_path());
    std::ofstream(root_ + path) << text;
  }
  std::string root_;
};

TEST_F(MemoryBoundTree, NoCgroupLimitLeavesMemTotal) {
  MemoryBound b = ProcessMemoryBound(root_);
  EXPECT_EQ(b.bytes, kGiB);
  EXPECT_EQ(b.what, "this machine's memory (MemTotal: 1.00 GiB)");
}

TEST_F(MemoryBoundTree, AnAncestorsV1LimitCounts) {
  Write("/sys/fs/cgroup/memory/a/memory.limit_in_bytes", "268435456\n");
  MemoryBound b = ProcessMemoryBound(root_);
  EXPECT_EQ(b.bytes, 256 * kMiB);
  EXPECT_EQ(b.what, "the memory cgroup's limit (/sys/fs/cgroup/memory/a/memory.limit_in_bytes: 256 MiB)");
}

TEST_F(MemoryBoundTree, V1HierarchicalLimitCoversHiddenAncestors) {
  Write("/sys/fs/cgroup/memory/a/b/memory.stat", "cache 0\nhierarchical_memory_limit 67108864\nrss 0\n");
  EXPECT_EQ(ProcessMemoryBound(root_).bytes, 64 * kMiB);
}

TEST_F(MemoryBoundTree, V2MemoryMaxCounts) {
  Write("/sys/fs/cgroup/unified/x/memory.max", "134217728\n");
  MemoryBound b = ProcessMemoryBound(root_);
  EXPECT_EQ(b.bytes, 128 * kMiB);
  EXPECT_CONTAINS(b.what, "/sys/fs/cgroup/unified/x/memory.max");
}

TEST_F(MemoryBoundTree, MountOfASubtreeIsFollowed) {
  // A container sees its own cgroup mounted at the hierarchy's /a.
  Write("/proc/self/mountinfo", "35 31 0:32 /a /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
  Write("/sys/fs/cgroup/memory/b/memory.limit_in_bytes", "33554432\n");
  EXPECT_EQ(ProcessMemoryBound(root_).bytes, 32 * kMiB);
}

// The same through a real cgroup v1 memory group, in a child that joins it.
TEST(ConfigValidate, LimitAboveTheProcesssMemoryCgroupIsRefused) {
  const std::string group = "/sys/fs/cgroup/memory/libpager_config_test_" + std::to_string(getpid());
  if (access("/sys/fs/cgroup/memory/memory.limit_in_bytes", W_OK) != 0 || mkdir(group.c_str(), 0755) != 0) {
    GTEST_SKIP() << "no writable cgroup v1 memory controller (needs root and cgroup v1 memory control)";
  }
  auto write = [](const std::string& path, const std::string& v) {
    std::ofstream f(path);
    f << v;
    f.flush();
    return f.good();
  };
  ASSERT_TRUE(write(group + "/memory.limit_in_bytes", std::to_string(256 * kMiB)));
  EXPECT_TRUE(testing::FinishesWithin(10, [&] {
    if (!write(group + "/cgroup.procs", std::to_string(getpid()))) return false;
    Config c = Good();
    c.memory_limit = 512 * kMiB;
    Status s = c.Validate();
    fprintf(stderr, "%s\n", s.message().c_str());
    c.memory_limit = 128 * kMiB;
    return !s.ok() && s.message().find("the memory cgroup's limit") != std::string::npos && c.Validate().ok();
  }));
  rmdir(group.c_str());
}

// ---- Config::FromEnvironment ---------------------------------------------

const char* const kVars[] = {
    "LIBPAGER_LIMIT",          "LIBPAGER_SWAP",           "LIBPAGER_SWAP_MAX",          "LIBPAGER_RESERVE",
    "LIBPAGER_HIGH_WATERMARK", "LIBPAGER_LOW_WATERMARK",  "LIBPAGER_INACTIVE_RATIO",    "LIBPAGER_POLICY",
    "LIBPAGER_READAHEAD",      "LIBPAGER_CONNECT_TIMEOUT_MS", "LIBPAGER_DISABLE",  "LIBPAGER_REPLICAS",
    "LIBPAGER_SERVER_TIMEOUT",
};

// Every test starts and ends with no LIBPAGER_* variable set.
class ConfigEnv : public ::testing::Test {
 protected:
  void SetUp() override { ClearAll(); }
  void TearDown() override { ClearAll(); }
  static void ClearAll() {
    for (const char* v : kVars) unsetenv(v);
  }
  static void Set(const char* var, const char* value) { ASSERT_EQ(setenv(var, value, 1), 0); }
};

TEST_F(ConfigEnv, UnsetVariablesKeepTheBase) {
  Config base;
  base.memory_limit = 123 * kMiB;
  base.swap = "/base";
  base.readahead_pages = 7;
  base.policy = EvictionPolicy::kFifo;
  auto r = Config::FromEnvironment(base);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->memory_limit, 123 * kMiB);
  EXPECT_EQ(r->swap, "/base");
  EXPECT_EQ(r->readahead_pages, 7u);
  EXPECT_EQ(r->policy, EvictionPolicy::kFifo);
  EXPECT_EQ(r->high_watermark, base.high_watermark);
}

TEST_F(ConfigEnv, ReadsEveryVariable) {
  Set("LIBPAGER_LIMIT", "1.5G");
  Set("LIBPAGER_SWAP", "nfs://10.0.0.1/export/swap?version=4");
  Set("LIBPAGER_SWAP_MAX", "20G");
  Set("LIBPAGER_RESERVE", "16M");
  Set("LIBPAGER_HIGH_WATERMARK", "0.8");
  Set("LIBPAGER_LOW_WATERMARK", "0.7");
  Set("LIBPAGER_INACTIVE_RATIO", "0.25");
  Set("LIBPAGER_POLICY", "fifo");
  Set("LIBPAGER_READAHEAD", "16");
  Set("LIBPAGER_CONNECT_TIMEOUT_MS", "2500");
  Set("LIBPAGER_DISABLE", "move,wp");
  Set("LIBPAGER_REPLICAS", "1");
  Set("LIBPAGER_SERVER_TIMEOUT", "2.5s");
  auto r = Config::FromEnvironment();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->memory_limit, 3 * kGiB / 2);
  EXPECT_EQ(r->swap, "nfs://10.0.0.1/export/swap?version=4");
  EXPECT_EQ(r->swap_max, 20 * kGiB);
  EXPECT_EQ(r->reserve, 16 * kMiB);
  EXPECT_DOUBLE_EQ(r->high_watermark, 0.8);
  EXPECT_DOUBLE_EQ(r->low_watermark, 0.7);
  EXPECT_DOUBLE_EQ(r->inactive_ratio, 0.25);
  EXPECT_EQ(r->policy, EvictionPolicy::kFifo);
  EXPECT_EQ(r->readahead_pages, 16u);
  EXPECT_EQ(r->connect_timeout_ms, 2500u);
  EXPECT_EQ(r->disable_features, "move,wp");
  EXPECT_EQ(r->replicas, 1u);
  EXPECT_EQ(r->server_timeout_ms, 2500u);
  EXPECT_EQ(r->store_options().replicas, 1u);
  EXPECT_EQ(r->store_options().server_timeout_ms, 2500u);
  EXPECT_EQ(r->store_options().connect_timeout_ms, 2500u);
  EXPECT_EQ(r->store_options().max_bytes, 20 * kGiB);
  EXPECT_TRUE(r->Validate().ok()) << r->Validate().message();
}

TEST_F(ConfigEnv, ServerTimeoutTakesUnitsAndABareNumberIsSeconds) {
  for (const auto& [text, ms] : {std::pair<const char*, uint32_t>{"30", 30000}, {"500ms", 500}, {"2m", 120000},
                                 {"1h", 3600000}, {"0.25s", 250}}) {
    Set("LIBPAGER_SERVER_TIMEOUT", text);
    auto r = Config::FromEnvironment();
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().message();
    EXPECT_EQ(r->server_timeout_ms, ms) << text;
  }
}

TEST_F(ConfigEnv, PolicyClockOverridesABaseOfFifo) {
  Set("LIBPAGER_POLICY", "clock");
  Config base;
  base.policy = EvictionPolicy::kFifo;
  auto r = Config::FromEnvironment(base);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->policy, EvictionPolicy::kClock);
}

TEST_F(ConfigEnv, BadValueNamesTheVariableAndTheValue) {
  struct Case {
    const char* var;
    const char* value;
  };
  const Case cases[] = {
      {"LIBPAGER_LIMIT", "lots"},
      {"LIBPAGER_LIMIT", "-1"},
      {"LIBPAGER_LIMIT", "12Q"},
      {"LIBPAGER_SWAP_MAX", "1e30"},
      {"LIBPAGER_RESERVE", "abc"},
      {"LIBPAGER_HIGH_WATERMARK", "1.5"},
      {"LIBPAGER_HIGH_WATERMARK", "0.9x"},
      {"LIBPAGER_LOW_WATERMARK", "half"},
      {"LIBPAGER_LOW_WATERMARK", "0"},
      {"LIBPAGER_INACTIVE_RATIO", "-0.1"},
      {"LIBPAGER_POLICY", "lru"},
      {"LIBPAGER_READAHEAD", "-4"},
      {"LIBPAGER_READAHEAD", "8 pages"},
      {"LIBPAGER_READAHEAD", "4294967296"},
      {"LIBPAGER_CONNECT_TIMEOUT_MS", "10s"},
      {"LIBPAGER_CONNECT_TIMEOUT_MS", ""},
      {"LIBPAGER_REPLICAS", "two"},
      {"LIBPAGER_SERVER_TIMEOUT", "soon"},
      {"LIBPAGER_SERVER_TIMEOUT", "5 days"},
      {"LIBPAGER_SERVER_TIMEOUT", "-1s"},
  };
  for (const Case& c : cases) {
    ClearAll();
    Set(c.var, c.value);
    auto r = Config::FromEnvironment();
    ASSERT_FALSE(r.ok()) << c.var << "=" << c.value << " was accepted";
    EXPECT_CONTAINS(r.status().message(), c.var) << c.value;
    EXPECT_CONTAINS(r.status().message(), std::string("'") + c.value + "'") << c.var;
  }
}

TEST_F(ConfigEnv, ABadVariableIsReportedEvenWhenOthersAreGood) {
  Set("LIBPAGER_LIMIT", "1G");
  Set("LIBPAGER_READAHEAD", "many");
  auto r = Config::FromEnvironment();
  ASSERT_FALSE(r.ok());
  EXPECT_CONTAINS(r.status().message(), "LIBPAGER_READAHEAD");
  EXPECT_EQ(r.status().message().find("LIBPAGER_LIMIT"), std::string::npos) << r.status().message();
}

// ---- Pager::Create with a bad configuration ------------------------------

TEST(PagerCreate, ZeroLimitFailsNamingTheLimit) {
  Config c;
  c.swap = "memory:";
  auto p = Pager::Create(c);
  ASSERT_FALSE(p.ok());
  EXPECT_CONTAINS(p.status().message(), "memory_limit");
  EXPECT_CONTAINS(p.status().message(), "LIBPAGER_LIMIT");
}

TEST(PagerCreate, NonexistentSwapDirectoryIsNamed) {
  Config c = Good();
  c.swap = "/nonexistent/dir";
  auto p = Pager::Create(c);
  ASSERT_FALSE(p.ok()) << "a pager was created over a missing swap directory";
  EXPECT_CONTAINS(p.status().message(), "/nonexistent/dir");
  EXPECT_CONTAINS(p.status().message(), "swap");
}

TEST(PagerCreate, SwapPathThatIsAFileIsRejected) {
  char path[] = "/tmp/libpager-config-test-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  Config c = Good();
  c.swap = path;
  auto p = Pager::Create(c);
  unlink(path);
  ASSERT_FALSE(p.ok());
  EXPECT_CONTAINS(p.status().message(), path);
}

TEST(PagerCreate, RelativeSwapPathIsRejectedEvenWhenItExists) {
  // The directory exists relative to the working directory, so only the
  // rule "swap must be absolute" can refuse it.
  char tmpl[] = "/tmp/libpager-config-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string base = tmpl;
  ASSERT_EQ(mkdir((base + "/relative").c_str(), 0700), 0);
  ASSERT_EQ(mkdir((base + "/relative/path").c_str(), 0700), 0);
  char old_cwd[4096];
  ASSERT_NE(getcwd(old_cwd, sizeof old_cwd), nullptr);
  ASSERT_EQ(chdir(base.c_str()), 0);
  Config c = Good();
  c.swap = "relative/path";
  auto p = Pager::Create(c);
  std::string message = p.ok() ? "" : p.status().message();
  p = Status::Error("released");  // drop any pager before its directory goes
  EXPECT_EQ(chdir(old_cwd), 0);
  rmdir((base + "/relative/path").c_str());
  rmdir((base + "/relative").c_str());
  rmdir(base.c_str());
  ASSERT_FALSE(message.empty()) << "a relative swap path was accepted";
  EXPECT_CONTAINS(message, "relative/path");
  EXPECT_CONTAINS(message, "absolute");
}

TEST(PagerCreate, MemorySwapWithAGoodConfigStarts) {
  // The control for the failures above: the same config with a usable store
  // does create a pager (needs userfaultfd).
  Config c = Good();
  c.swap = "memory:";
  auto p = Pager::Create(c);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ((*p)->config().memory_limit, 64 * kMiB);
  auto mem = (*p)->Map(16 * kPageSize);
  ASSERT_TRUE(mem.ok()) << mem.status().message();
  static_cast<char*>(*mem)[5 * kPageSize] = 42;
  EXPECT_EQ(static_cast<char*>(*mem)[5 * kPageSize], 42);
  EXPECT_TRUE((*p)->Unmap(*mem, 16 * kPageSize).ok());
}

}  // namespace
}  // namespace pager

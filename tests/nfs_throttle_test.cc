// The throttle against a real NFS server (the project's Ganesha fixture):
// stalled with SIGSTOP while two threads write fast, the throttle engages at
// half the reserve, anonymous memory stays bounded, nothing deadlocks, and
// after SIGCONT every byte comes back. Then the paged program inside a
// memory cgroup sized just above limit + reserve completes with no OOM kill.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "nfs_server.h"
#include "pager/pager.h"
#include "test_util.h"

namespace pager::testing {
namespace {

class NfsThrottle : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.Start()) << server_.error(); }
  NfsServer server_;
};

TEST_F(NfsThrottle, StoppedServerThrottlesAtHalfAndEveryByteSurvives) {
  const uint64_t limit = 8u << 20, reserve = 4u << 20;
  const uint64_t per_thread = 4096;  // 2 x 16 MiB through an 8 MiB limit
  Config cfg;
  cfg.memory_limit = limit;
  cfg.reserve = reserve;
  cfg.swap = server_.url();
  cfg.publish_stats = false;
  const uint64_t rss0 = RssAnon();
  auto p = Pager::Create(cfg);
  ASSERT_TRUE(p.ok()) << p.status().message();
  Pager& pager = **p;
  auto mem = pager.Map(2 * per_thread * kPageSize);
  ASSERT_TRUE(mem.ok());
  auto* m = static_cast<unsigned char*>(*mem);

  server_.Pause();
  std::atomic<uint64_t> written{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 2; t++) {
    writers.emplace_back([&, t] {
      for (uint64_t i = t * per_thread; i < (t + 1) * per_thread; i++) {
        FillPage(m + i * kPageSize, i, 1);
        written++;
      }
    });
  }
  uint64_t last = 0, rss_max = 0;
  int still = 0;
  for (int i = 0; i < 400 && still < 10; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    uint64_t now = written;
    still = now == last ? still + 1 : 0;
    last = now;
    rss_max = std::max(rss_max, RssAnon());
  }
  Stats s = pager.GetStats();
  EXPECT_LT(last, 2 * per_thread) << "the writers should be held while the server is stopped";
  EXPECT_GT(s.throttle_events, 0u);
  EXPECT_LT(s.reserve_min_free_bytes * 2, s.reserve_bytes) << "the pool went below half";
  EXPECT_LE(s.resident_pages, s.limit_pages);
  // libnfs's buffers that overflowed the arena (reserve_overflows) must fit
  // in the same stated slack.
  ExpectRssGrowthWithinLimitPlusReserve(rss_max - rss0, limit, s);
  RecordProperty("reserve_overflows", std::to_string(s.reserve_overflows));

  server_.Resume();
  for (auto& w : writers) w.join();
  for (uint64_t i = 0; i < 2 * per_thread; i++) ASSERT_TRUE(CheckPage(m + i * kPageSize, i, 1)) << "page " << i;
  s = pager.GetStats();
  EXPECT_GT(s.throttled_ns, 0u);
  EXPECT_GT(s.evictions_written, 0u);
  ASSERT_TRUE(pager.Unmap(*mem, 2 * per_thread * kPageSize).ok());
}

// ---- a memory cgroup ------------------------------------------------------

std::string MemoryCgroupRoot() {
  for (const char* root : {"/sys/fs/cgroup/memory"}) {
    std::string r = root;
    if (access((r + "/memory.limit_in_bytes").c_str(), W_OK) == 0) return r;
  }
  return "";
}

bool WriteFile(const std::string& path, const std::string& v) {
  int fd = open(path.c_str(), O_WRONLY);
  if (fd < 0) return false;
  bool ok = write(fd, v.data(), v.size()) == static_cast<ssize_t>(v.size());
  close(fd);
  return ok;
}

// Runs fn in a child inside the cgroup; returns its wait status.
template <class Fn>
int RunInCgroup(const std::string& cg, Fn fn) {
  pid_t pid = fork();
  if (pid == 0) {
    if (!WriteFile(cg + "/cgroup.procs", std::to_string(getpid()))) _exit(3);
    _exit(fn());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

constexpr uint64_t kCgLimit = 16u << 20, kCgReserve = 2u << 20, kCgPages = 16384;  // 64 MiB of data

// The paged workload: 64 MiB written and verified through a 16 MiB limit,
// swapped to the NFS server (a local swap file would not do: its page cache
// is charged to the cgroup, 136 MiB at peak for this run, measured).
int PagedWorkload(const std::string& url) {
  Config cfg;
  cfg.memory_limit = kCgLimit;
  cfg.reserve = kCgReserve;
  cfg.swap = url;
  cfg.publish_stats = false;
  auto p = Pager::Create(cfg);
  if (!p.ok()) return 4;
  auto mem = (*p)->Map(kCgPages * kPageSize);
  if (!mem.ok()) return 5;
  auto* m = static_cast<unsigned char*>(*mem);
  std::thread other([&] {
    for (uint64_t i = kCgPages / 2; i < kCgPages; i++) FillPage(m + i * kPageSize, i, 2);
  });
  for (uint64_t i = 0; i < kCgPages / 2; i++) FillPage(m + i * kPageSize, i, 2);
  other.join();
  for (uint64_t i = 0; i < kCgPages; i++) {
    if (!CheckPage(m + i * kPageSize, i, 2)) return 6;
  }
  // Unmapped before the pager goes: its destructor would otherwise bring
  // all 64 MiB back into memory (by design), past any limit.
  if (!(*p)->Unmap(*mem, kCgPages * kPageSize).ok()) return 8;
  return 0;
}

// The same bytes in ordinary memory: the control that the cgroup bites.
int UnpagedWorkload() {
  auto* m = static_cast<unsigned char*>(malloc(kCgPages * kPageSize));
  if (m == nullptr) return 7;
  for (uint64_t i = 0; i < kCgPages; i++) FillPage(m + i * kPageSize, i, 2);
  for (uint64_t i = 0; i < kCgPages; i++) {
    if (!CheckPage(m + i * kPageSize, i, 2)) return 6;
  }
  return 0;
}

TEST_F(NfsThrottle, PagedProgramInAMemoryCgroupCompletesWithoutOomKill) {
  if (!kRssIsMeaningful) GTEST_SKIP() << "under TSan the sanitizer's shadow memory is charged to the cgroup";
  const std::string root = MemoryCgroupRoot();
  if (root.empty()) {
    GTEST_SKIP() << "no writable cgroup v1 memory controller at /sys/fs/cgroup/memory (needs root and "
                    "cgroup v1 memory control)";
  }
  const std::string cg = root + "/libpager_nfs_throttle_test_" + std::to_string(getpid());
  if (mkdir(cg.c_str(), 0755) != 0) GTEST_SKIP() << "cannot create " << cg << ": " << strerror(errno);
  // The child starts as a copy of this process: its RssAnon at fork, plus
  // limit + reserve (+ the arena's 3/5 of it) + the same stated slack.
  const uint64_t slack = 8u << 20;
  const uint64_t max = RssAnon() + kCgLimit + kCgReserve * 8 / 5 + slack;
  ASSERT_TRUE(WriteFile(cg + "/memory.limit_in_bytes", std::to_string(max)));
  WriteFile(cg + "/memory.swappiness", "0");  // the kernel must not swap for us

  int control = RunInCgroup(cg, UnpagedWorkload);
  WriteFile(cg + "/memory.max_usage_in_bytes", "0");  // the paged child's peak alone
  int paged = RunInCgroup(cg, [&] { return PagedWorkload(server_.url()); });
  std::ifstream usage(cg + "/memory.max_usage_in_bytes");
  uint64_t max_usage = 0;
  usage >> max_usage;
  std::ifstream oom(cg + "/memory.oom_control");
  std::string oom_text((std::istreambuf_iterator<char>(oom)), std::istreambuf_iterator<char>());
  rmdir(cg.c_str());
  RecordProperty("cgroup_limit_bytes", std::to_string(max));
  RecordProperty("cgroup_max_usage_bytes", std::to_string(max_usage));
  EXPECT_TRUE(WIFSIGNALED(control) && WTERMSIG(control) == SIGKILL)
      << "control: 64 MiB unpaged in a " << (max >> 20) << " MiB cgroup should be OOM-killed (status "
      << control << "); the cgroup is not enforcing";
  EXPECT_TRUE(WIFEXITED(paged) && WEXITSTATUS(paged) == 0)
      << "paged child: " << (WIFSIGNALED(paged) ? "killed by signal " + std::to_string(WTERMSIG(paged))
                                                : "exit " + std::to_string(WEXITSTATUS(paged)))
      << "; " << oom_text;
}

}  // namespace
}  // namespace pager::testing

// The published stats: what pagerctl reads from outside, how leftovers of
// gone processes are told from live pagers, and the fallback when the stats
// directory is unusable.
#include "stats_segment.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "pager/monitor.h"
#include "test_util.h"

namespace pager::testing {
namespace {

namespace fs = std::filesystem;

class StatsSegmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/stats_segment_test.XXXXXX";
    dir_ = mkdtemp(t);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Config PublishingConfig(uint64_t limit_pages) {
    Config c = TestConfig(limit_pages);
    c.stats_dir = dir_;
    return c;
  }
  std::vector<PagedProcess> List() {
    auto r = ListPagedProcesses(dir_);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : std::vector<PagedProcess>{};
  }
  // Rewrites one header field of a stats file in place.
  template <class F>
  void PokeHeader(const std::string& path, F poke) {
    int fd = open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    void* m = mmap(nullptr, sizeof(SegmentHeader), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_NE(m, MAP_FAILED);
    poke(static_cast<SegmentHeader*>(m));
    munmap(m, sizeof(SegmentHeader));
    close(fd);
  }
  // A child that publishes a segment, then execs `sleep 30` or exits, without
  // tearing it down. With `fork_first`, it first forks a grandchild that
  // outlives it (and shares its fds).
  pid_t ChildWithSegment(bool exec_sleep, bool fork_first = false) {
    int p[2];
    EXPECT_EQ(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
      auto seg = StatsSegment::Create(dir_, StatsSegment::Info{1 << 20, 1 << 20, "memory", "move"});
      char c = seg.ok() ? 'y' : 'n';
      if (fork_first) {
        int q[2];
        if (pipe(q) != 0) _exit(1);
        if (fork() == 0) {  // fork() has returned here: the atfork handlers ran
          (void)!write(q[1], "b", 1);
          sleep(5);
          _exit(0);
        }
        char b;
        (void)!read(q[0], &b, 1);
      }
      (void)!write(p[1], &c, 1);
      if (exec_sleep) execlp("sleep", "sleep", "30", nullptr);
      _exit(0);  // a crash: no destructor runs
    }
    close(p[1]);
    char c = 0;
    EXPECT_EQ(read(p[0], &c, 1), 1);
    EXPECT_EQ(c, 'y');
    close(p[0]);
    return pid;
  }

  // Until `pid` has exec'd `sleep` and is asleep in it. An fd leaves
  // /proc/pid/fd when exec closes it, but the flock goes only with the final
  // fput, which the kernel defers to the task's return to user space; a
  // task asleep in `sleep` (state S) has made that return. Under TSan the
  // gap was wide enough to read the lock as still held.
  void WaitForExec(pid_t pid) {
    const std::string proc = "/proc/" + std::to_string(pid);
    for (int i = 0; i < 500; i++, usleep(10000)) {
      std::ifstream comm(proc + "/comm");
      std::string name;
      comm >> name;
      if (name != "sleep") continue;
      bool holds = false;
      for (const auto& e : fs::directory_iterator(proc + "/fd")) {
        std::error_code ec;
        holds |= fs::read_symlink(e.path(), ec).string().rfind(dir_, 0) == 0;
      }
      if (!holds && ProcessState(proc) == 'S') return;
    }
    ADD_FAILURE() << pid << " did not exec";
  }

  static char ProcessState(const std::string& proc) {
    std::ifstream stat(proc + "/stat");
    std::string line;
    std::getline(stat, line);
    size_t paren = line.rfind(") ");  // comm may hold spaces and parentheses
    return paren == std::string::npos || paren + 2 >= line.size() ? '?' : line[paren + 2];
  }

  std::string dir_;
};

TEST_F(StatsSegmentTest, CountersAreReadFromOutsideExactlyAsThePagerCountsThem) {
  auto p = Pager::Create(PublishingConfig(256), std::make_unique<MemoryStore>());
  ASSERT_TRUE(p.ok()) << p.status().message();
  auto mem = (*p)->Map(1024 * kPageSize);
  ASSERT_TRUE(mem.ok());
  for (size_t i = 0; i < 1024; i++) FillPage(static_cast<char*>(*mem) + i * kPageSize, i, 1);
  for (size_t i = 0; i < 1024; i++) ASSERT_TRUE(CheckPage(static_cast<char*>(*mem) + i * kPageSize, i, 1));
  Settle(**p);
  Stats mine = (*p)->GetStats();
  auto procs = List();
  ASSERT_EQ(procs.size(), 1u);
  const PagedProcess& seen = procs[0];
  EXPECT_EQ(seen.pid, getpid());
  EXPECT_FALSE(seen.stale);
  EXPECT_EQ(seen.limit_bytes, 256 * kPageSize);
  EXPECT_EQ(seen.start_time, ProcessStartTime(getpid()));
  EXPECT_NE(seen.command.find("stats_segment_test"), std::string::npos) << seen.command;
  EXPECT_EQ(seen.features, (*p)->Features());
  EXPECT_GT(mine.bytes_written, 0u);
  EXPECT_EQ(seen.stats.faults_zero, mine.faults_zero);
  EXPECT_EQ(seen.stats.faults_swapin, mine.faults_swapin);
  EXPECT_EQ(seen.stats.evictions_written, mine.evictions_written);
  EXPECT_EQ(seen.stats.bytes_written, mine.bytes_written);
  EXPECT_EQ(seen.stats.bytes_read, mine.bytes_read);
  EXPECT_EQ(seen.stats.mapped_bytes, 1024 * kPageSize);
  EXPECT_EQ(memcmp(seen.stats.fault_latency_us, mine.fault_latency_us, sizeof mine.fault_latency_us), 0);
}

TEST_F(StatsSegmentTest, FileIsPrivateToItsUserAndRemovedWithThePager) {
  {
    auto p = Pager::Create(PublishingConfig(256), std::make_unique<MemoryStore>());
    ASSERT_TRUE(p.ok());
    auto procs = List();
    ASSERT_EQ(procs.size(), 1u);
    struct stat st;
    ASSERT_EQ(stat(procs[0].path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(st.st_uid, getuid());
  }
  EXPECT_TRUE(fs::is_empty(dir_)) << "the stats file outlived its pager";
}

TEST_F(StatsSegmentTest, TwoPagersInOneProcessPublishTwoFiles) {
  auto a = Pager::Create(PublishingConfig(256), std::make_unique<MemoryStore>());
  auto b = Pager::Create(PublishingConfig(512), std::make_unique<MemoryStore>());
  ASSERT_TRUE(a.ok() && b.ok());
  auto procs = List();
  ASSERT_EQ(procs.size(), 2u);
  EXPECT_NE(procs[0].index, procs[1].index);
  EXPECT_EQ(procs[0].limit_bytes + procs[1].limit_bytes, 768 * kPageSize);
}

TEST_F(StatsSegmentTest, UnusableDirectoryFallsBackToPrivateCounters) {
  Config c = PublishingConfig(256);
  c.stats_dir = dir_ + "/does-not-exist";
  auto p = Pager::Create(c, std::make_unique<MemoryStore>());
  ASSERT_TRUE(p.ok()) << "an unusable stats dir must not stop the pager: " << p.status().message();
  auto mem = (*p)->Map(512 * kPageSize);
  ASSERT_TRUE(mem.ok());
  for (size_t i = 0; i < 512; i++) FillPage(static_cast<char*>(*mem) + i * kPageSize, i, 1);
  Settle(**p);
  EXPECT_GT((*p)->GetStats().faults_zero, 0u) << "counters must still count";
}

TEST_F(StatsSegmentTest, PublishingCanBeTurnedOff) {
  Config c = PublishingConfig(256);
  c.publish_stats = false;
  auto p = Pager::Create(c, std::make_unique<MemoryStore>());
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(StatsSegmentTest, CrashedProcesssFileIsStaleAndALiveOnesIsNot) {
  auto live = Pager::Create(PublishingConfig(256), std::make_unique<MemoryStore>());
  ASSERT_TRUE(live.ok());
  pid_t child = ChildWithSegment(false);
  waitpid(child, nullptr, 0);
  auto procs = List();
  ASSERT_EQ(procs.size(), 2u);
  for (const auto& p : procs) EXPECT_EQ(p.stale, p.pid == child) << p.path;
  auto stale = FindStaleStatsFiles(dir_);
  ASSERT_TRUE(stale.ok());
  ASSERT_EQ(stale->size(), 1u);
  EXPECT_EQ((*stale)[0].pid, child);
  EXPECT_NE((*stale)[0].why.find("gone"), std::string::npos) << (*stale)[0].why;
  auto removed = RemoveStaleStatsFile((*stale)[0].path);
  ASSERT_TRUE(removed.ok() && *removed);
  EXPECT_EQ(List().size(), 1u);
}

TEST_F(StatsSegmentTest, ProcessThatExecedWithoutItsPagerIsStale) {
  pid_t child = ChildWithSegment(true);  // now `sleep 30`, same pid and start time
  WaitForExec(child);
  auto procs = List();
  ASSERT_EQ(procs.size(), 1u);
  EXPECT_EQ(procs[0].pid, child);
  EXPECT_TRUE(procs[0].stale) << "the lock went with the exec";
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
}

TEST_F(StatsSegmentTest, ForkedChildDoesNotKeepItsParentsFileLive) {
  pid_t child = ChildWithSegment(true, /*fork_first=*/true);  // its own child sleeps on
  WaitForExec(child);
  auto procs = List();
  ASSERT_EQ(procs.size(), 1u);
  EXPECT_TRUE(procs[0].stale) << "a forked child still holds the exec'd parent's lock";
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
}

TEST_F(StatsSegmentTest, ProcessExitingWithoutDestroyingItsPagerRemovesTheFile) {
  pid_t child = fork();
  if (child == 0) {
    auto* leaked = new auto(StatsSegment::Create(dir_, StatsSegment::Info{1 << 20, 1 << 20, "memory", ""}));
    exit(leaked->ok() ? 0 : 1);  // as the preload's pager: never destroyed
  }
  int st = 0;
  waitpid(child, &st, 0);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  EXPECT_TRUE(fs::is_empty(dir_)) << "exit() left the stats file behind";
}

TEST_F(StatsSegmentTest, NewSegmentRemovesOurPidsLeftoversButNotOurLiveOnes) {
  auto a = StatsSegment::Create(dir_, StatsSegment::Info{1 << 20, 1 << 20, "memory", ""});
  ASSERT_TRUE(a.ok());
  // What the process image before an exec would have left: our pid, our
  // start time, complete, and nobody's lock.
  const std::string leftover = dir_ + "/libpager." + std::to_string(getpid()) + ".999";
  fs::copy_file((*a)->path(), leftover);
  auto b = StatsSegment::Create(dir_, StatsSegment::Info{1 << 20, 1 << 20, "memory", ""});
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(fs::exists(leftover));
  EXPECT_TRUE(fs::exists((*a)->path())) << "a live segment of this process was taken for a leftover";
  EXPECT_TRUE(fs::exists((*b)->path()));
}

TEST_F(StatsSegmentTest, LiveFileIsNeverRemoved) {
  auto live = Pager::Create(PublishingConfig(256), std::make_unique<MemoryStore>());
  ASSERT_TRUE(live.ok());
  auto procs = List();
  ASSERT_EQ(procs.size(), 1u);
  auto r = RemoveStaleStatsFile(procs[0].path);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_TRUE(fs::exists(procs[0].path));
  auto stale = FindStaleStatsFiles(dir_);
  ASSERT_TRUE(stale.ok());
  EXPECT_TRUE(stale->empty());
}

TEST_F(StatsSegmentTest, ReusedPidIsRecognisedByItsStartTime) {
  auto seg = StatsSegment::Create(dir_, StatsSegment::Info{1 << 20, 1 << 20, "memory", ""});
  ASSERT_TRUE(seg.ok());
  // Our pid, but the file says another process start: a previous owner.
  PokeHeader((*seg)->path(), [](SegmentHeader* h) { h->start_time += 1; });
  auto p = ReadPagedProcess((*seg)->path());
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->stale);
}

TEST_F(StatsSegmentTest, OtherLayoutVersionIsRefusedWithAMessage) {
  auto seg = StatsSegment::Create(dir_, StatsSegment::Info{1 << 20, 1 << 20, "memory", ""});
  ASSERT_TRUE(seg.ok());
  PokeHeader((*seg)->path(), [](SegmentHeader* h) { h->version = 99; });
  auto p = ReadPagedProcess((*seg)->path());
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("version 99"), std::string::npos) << p.status().message();
  std::vector<std::string> skipped;
  auto all = ListPagedProcesses(dir_, &skipped);
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
  EXPECT_EQ(skipped.size(), 1u);
}

TEST(StatsConfig, EnvironmentTurnsPublishingOffAndMovesIt) {
  setenv("LIBPAGER_STATS", "0", 1);
  setenv("LIBPAGER_STATS_DIR", "/elsewhere", 1);
  auto c = Config::FromEnvironment();
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->publish_stats);
  EXPECT_EQ(c->stats_dir, "/elsewhere");
  setenv("LIBPAGER_STATS", "yes", 1);
  c = Config::FromEnvironment();
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("LIBPAGER_STATS='yes'"), std::string::npos) << c.status().message();
  unsetenv("LIBPAGER_STATS");
  unsetenv("LIBPAGER_STATS_DIR");
  EXPECT_TRUE(Config::FromEnvironment()->publish_stats) << "publishing is on by default";
}

TEST_F(StatsSegmentTest, BackendStateIsPublished) {
  StatsBlock b;
  b.Set(b.backend, static_cast<uint64_t>(BackendState::kReconnecting));
  EXPECT_EQ(ReadStatsBlock(b).backend, BackendState::kReconnecting);
  b.Set(b.backend, 0);
  b.Set(b.eviction_paused, 1);
  EXPECT_EQ(ReadStatsBlock(b).backend, BackendState::kPaused) << "a paused evictor shows as paused";
}

}  // namespace
}  // namespace pager::testing

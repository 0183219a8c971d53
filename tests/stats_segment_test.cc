// The published stats: what pagerctl reads from outside, how leftovers of
// gone processes are told from live pagers, the fallback when the stats
// directory is unusable, and what a hostile user of the same machine can do
// to the files (FIFOs, links, forged and truncated files, escapes).
#include "stats_segment.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

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
    mine_ = dir_ + "/libpager-" + std::to_string(geteuid());
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

  // A segment of this process, not tied to a pager.
  std::unique_ptr<StatsSegment> Segment() {
    auto seg = StatsSegment::Create(dir_, StatsSegment::Info{1 << 20, 1 << 20, "memory", ""});
    EXPECT_TRUE(seg.ok()) << seg.status().message();
    return seg.ok() ? std::move(*seg) : nullptr;
  }
  // What ListPagedProcesses skipped, one line each.
  std::vector<std::string> Skipped() {
    std::vector<std::string> skipped;
    auto r = ListPagedProcesses(dir_, &skipped);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return skipped;
  }

  std::string dir_;   // the stats base, as /dev/shm
  std::string mine_;  // this user's directory in it
};

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "'" << (text) << "' does not mention '" << (part) << "'"

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

TEST_F(StatsSegmentTest, FileIsPrivateToItsUserInItsUsersDirectoryAndRemovedWithThePager) {
  {
    auto p = Pager::Create(PublishingConfig(256), std::make_unique<MemoryStore>());
    ASSERT_TRUE(p.ok());
    auto procs = List();
    ASSERT_EQ(procs.size(), 1u);
    EXPECT_EQ(procs[0].path.rfind(mine_ + "/libpager." + std::to_string(getpid()) + ".", 0), 0u) << procs[0].path;
    EXPECT_EQ(procs[0].uid, geteuid());
    struct stat st;
    ASSERT_EQ(stat(procs[0].path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(st.st_uid, geteuid());
    ASSERT_EQ(lstat(mine_.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_EQ(st.st_uid, geteuid());
  }
  EXPECT_TRUE(fs::is_empty(mine_)) << "the stats file outlived its pager";
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
  EXPECT_TRUE(fs::is_empty(mine_)) << "exit() left the stats file behind";
}

TEST_F(StatsSegmentTest, NewSegmentRemovesOurPidsLeftoversButNotOurLiveOnes) {
  auto a = StatsSegment::Create(dir_, StatsSegment::Info{1 << 20, 1 << 20, "memory", ""});
  ASSERT_TRUE(a.ok());
  // What the process image before an exec would have left: our pid, our
  // start time, complete, and nobody's lock.
  const std::string leftover = mine_ + "/libpager." + std::to_string(getpid()) + ".999";
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

// ---- Other users: what they can put in the stats directory ----------------

TEST_F(StatsSegmentTest, UsersDirectoryThatIsALinkOrWritableByOthersIsRefused) {
  // A link, planted before the user's first pager, to a directory of the
  // planter's: the pager must not publish through it.
  const std::string elsewhere = dir_ + "/elsewhere";
  ASSERT_EQ(mkdir(elsewhere.c_str(), 0700), 0);
  ASSERT_EQ(symlink(elsewhere.c_str(), mine_.c_str()), 0);
  auto seg = StatsSegment::Create(dir_, StatsSegment::Info{});
  ASSERT_FALSE(seg.ok());
  EXPECT_CONTAINS(seg.status().message(), "not a directory");
  auto p = Pager::Create(PublishingConfig(256), std::make_unique<MemoryStore>());
  ASSERT_TRUE(p.ok()) << "a refused stats directory must not stop the pager: " << p.status().message();
  EXPECT_TRUE(fs::is_empty(elsewhere)) << "published through a link";
  EXPECT_EQ(Skipped().size(), 1u);
  p->reset();

  // A real directory anyone can write to.
  ASSERT_EQ(unlink(mine_.c_str()), 0);
  ASSERT_EQ(mkdir(mine_.c_str(), 0700), 0);
  ASSERT_EQ(chmod(mine_.c_str(), 0777), 0);
  seg = StatsSegment::Create(dir_, StatsSegment::Info{});
  ASSERT_FALSE(seg.ok());
  EXPECT_CONTAINS(seg.status().message(), "writable by group or others (mode 0777)");
  EXPECT_TRUE(fs::is_empty(mine_));
  auto skipped = Skipped();
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_CONTAINS(skipped[0], "writable by group or others");
}

TEST_F(StatsSegmentTest, UsersDirectoryMadeBySomeoneElseIsRefused) {
  if (!CanActAsNobody()) GTEST_SKIP() << "needs root and a 'nobody' user to play the other user";
  ASSERT_EQ(mkdir(mine_.c_str(), 0700), 0);
  ASSERT_EQ(chown(mine_.c_str(), NobodyUid(), NobodyUid()), 0);
  auto seg = StatsSegment::Create(dir_, StatsSegment::Info{});
  ASSERT_FALSE(seg.ok());
  EXPECT_CONTAINS(seg.status().message(), "belongs to uid " + std::to_string(NobodyUid()));
  EXPECT_TRUE(fs::is_empty(mine_));
}

// A FIFO takes no O_EXCL create and no unlink to plant, and opening it for
// reading blocks until a writer comes: the leftover sweep at a pager's start
// must never open one.
TEST_F(StatsSegmentTest, FifoUnderThisProcesssStatsNamesDoesNotBlockItsStart) {
  EXPECT_TRUE(FinishesWithin(10, [&] {
    auto first = Segment();  // learns the next index, and makes the directory
    if (first == nullptr) return false;
    const std::string next = std::to_string(std::stoul(first->path().substr(first->path().rfind('.') + 1)) + 1);
    first.reset();
    const std::string me = mine_ + "/libpager." + std::to_string(getpid()) + ".";
    if (mkfifo((me + next).c_str(), 0600) != 0 || mkfifo((me + "999").c_str(), 0600) != 0) return false;
    auto seg = StatsSegment::Create(dir_, StatsSegment::Info{});
    if (!seg.ok()) fprintf(stderr, "%s\n", seg.status().message().c_str());
    return seg.ok() && (*seg)->path() == me + next;
  }));
}

TEST_F(StatsSegmentTest, FifoLinkOrDirectoryUnderAStatsNameIsSkippedWithoutHangingReaders) {
  auto seg = Segment();
  ASSERT_NE(seg, nullptr);
  const std::string me = mine_ + "/libpager." + std::to_string(getpid()) + ".";
  ASSERT_EQ(mkfifo((me + "900").c_str(), 0600), 0);
  ASSERT_EQ(symlink(seg->path().c_str(), (me + "901").c_str()), 0);
  ASSERT_EQ(mkdir((me + "902").c_str(), 0700), 0);
  EXPECT_TRUE(FinishesWithin(10, [&] {
    std::vector<std::string> skipped;
    auto all = ListPagedProcesses(dir_, &skipped);
    auto stale = FindStaleStatsFiles(dir_);
    bool ok = all.ok() && all->size() == 1 && all->front().path == seg->path() && skipped.size() == 3 &&
              stale.ok() && stale->empty() && !ReadPagedProcess(me + "900").ok() &&
              !ReadPagedProcess(me + "901").ok() && !RemoveStaleStatsFile(me + "900").ok();
    for (const auto& why : skipped) fprintf(stderr, "skipped: %s\n", why.c_str());
    return ok;
  }));
  for (const char* n : {"900", "901", "902"}) EXPECT_TRUE(fs::exists(fs::symlink_status(me + n))) << me + n;
  const auto reasons = Skipped();
  ASSERT_EQ(reasons.size(), 3u);
  for (const auto& why : reasons) EXPECT_CONTAINS(why, "not a regular file");
}

// A forged file: the "pid 1" that root's pagerctl listed. Here the
// forger (nobody) copies a real header naming a live root process, with its
// true start time and the file's lock free or held: never trusted.
TEST_F(StatsSegmentTest, FileOfAnotherUserClaimingOurProcessIsNotListed) {
  if (!CanActAsNobody()) GTEST_SKIP() << "needs root and a 'nobody' user to play the other user";
  ASSERT_EQ(chmod(dir_.c_str(), 01777), 0);  // as /dev/shm
  const uid_t nobody = static_cast<uid_t>(NobodyUid());
  auto seg = Segment();  // ours (root's), live
  ASSERT_NE(seg, nullptr);
  const std::string name = seg->path().substr(seg->path().rfind('/') + 1);

  // nobody's own pager, live: root's reader lists it, as nobody's.
  int go[2], done[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(done), 0);
  pid_t child = fork();
  if (child == 0) {
    close(done[1]);  // the parent's close is our cue
    char c = 'n';
    std::unique_ptr<StatsSegment> theirs;
    if (BecomeNobody()) {
      auto r = StatsSegment::Create(dir_, StatsSegment::Info{2 << 20, 1 << 20, "memory", ""});
      if (r.ok()) {
        theirs = std::move(*r);
        c = 'y';
      } else {
        fprintf(stderr, "%s\n", r.status().message().c_str());
      }
    }
    (void)!write(go[1], &c, 1);
    (void)!read(done[0], &c, 1);
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(go[0], &c, 1), 1);
  ASSERT_EQ(c, 'y') << "nobody could not publish";
  // The forgery, in nobody's own directory: our header (pid, start time:
  // public in /proc), under our file's name, owned by nobody.
  const std::string forged = dir_ + "/libpager-" + std::to_string(nobody) + "/" + name;
  fs::copy_file(seg->path(), forged);
  ASSERT_EQ(chown(forged.c_str(), nobody, nobody), 0);
  // And one in our directory, owned by nobody (as root could be tricked
  // into making with a careless cp -p).
  const std::string in_ours = mine_ + "/libpager." + std::to_string(getpid()) + ".950";
  fs::copy_file(seg->path(), in_ours);
  ASSERT_EQ(chown(in_ours.c_str(), nobody, nobody), 0);

  std::vector<std::string> skipped;
  auto all = ListPagedProcesses(dir_, &skipped);
  ASSERT_TRUE(all.ok()) << all.status().message();
  std::map<pid_t, uid_t> seen;
  for (const auto& p : *all) seen[p.pid] = p.uid;
  EXPECT_EQ(all->size(), 2u) << "the forgeries were listed";
  EXPECT_EQ(seen[getpid()], geteuid());
  EXPECT_EQ(seen[child], nobody) << "nobody's own pager must be listed, as nobody's";
  std::string reasons;
  for (const auto& why : skipped) reasons += why + "\n";
  EXPECT_EQ(skipped.size(), 2u) << reasons;
  EXPECT_CONTAINS(reasons, "runs as uid 0: not trusted");
  EXPECT_CONTAINS(reasons, "owned by uid " + std::to_string(nobody));
  auto stale = FindStaleStatsFiles(dir_);
  ASSERT_TRUE(stale.ok());
  EXPECT_TRUE(stale->empty()) << "a forgery of a live process is not a leftover";
  close(done[1]);
  waitpid(child, nullptr, 0);
  close(go[0]);
  close(go[1]);
  close(done[0]);
}

TEST_F(StatsSegmentTest, DirectoryNamedForAUidItDoesNotBelongToIsSkipped) {
  if (geteuid() != 0) GTEST_SKIP() << "only root reads other users' directories";
  auto seg = Segment();
  ASSERT_NE(seg, nullptr);
  const std::string fake = dir_ + "/libpager-4242";  // root's, named for 4242
  ASSERT_EQ(mkdir(fake.c_str(), 0700), 0);
  fs::copy_file(seg->path(), fake + "/libpager.1.0");
  std::vector<std::string> skipped;
  auto all = ListPagedProcesses(dir_, &skipped);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_CONTAINS(skipped[0], "belongs to uid 0, not uid 4242");
}

TEST_F(StatsSegmentTest, HeaderNamingAnotherPidThanItsFileNameIsSkipped) {
  auto seg = Segment();
  ASSERT_NE(seg, nullptr);
  fs::copy_file(seg->path(), mine_ + "/libpager.1.0");
  auto skipped = Skipped();
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_CONTAINS(skipped[0], "names process " + std::to_string(getpid()));
}

// The SIGBUS in `pagerctl ps` (29 of 300 runs): the reader mapped
// st_size bytes, the file was cut meanwhile. Whoever owns a file can cut it;
// root reads every user's.
TEST_F(StatsSegmentTest, FileTruncatedWhileReadNeverKillsTheReader) {
  auto seg = Segment();
  ASSERT_NE(seg, nullptr);
  const std::string path = seg->path();
  EXPECT_TRUE(FinishesWithin(60, [&] {
    FileCutter cutter(path);
    if (!cutter.ok()) return false;
    int whole = 0, cut = 0;
    for (int i = 0; i < 20000; i++) (ReadPagedProcess(path).ok() ? whole : cut)++;
    fprintf(stderr, "reads: %d whole, %d cut short\n", whole, cut);
    return true;
  }));
}

TEST_F(StatsSegmentTest, EscapesInAFileReachNoReaderRaw) {
  auto seg = Segment();
  ASSERT_NE(seg, nullptr);
  const std::string command = "evil \x1b]0;owned\x07\x1b[2J \xc2\x9b" "31m \xe2\x80\xae" "cba \x7f end\xff";
  PokeHeader(seg->path(), [&](SegmentHeader* h) {
    memcpy(h->cmdline, command.c_str(), command.size() + 1);
    memcpy(h->swap, "a\nb", 4);
    memcpy(h->features, "move\r", 6);
  });
  auto p = ReadPagedProcess(seg->path());
  ASSERT_TRUE(p.ok()) << p.status().message();
  for (const std::string* s : {&p->command, &p->swap, &p->features}) {
    for (unsigned char c : *s) EXPECT_TRUE(c >= 0x20 && c != 0x7f) << "raw byte " << int(c) << " in '" << *s << "'";
  }
  EXPECT_EQ(p->command, "evil \\x1b]0;owned\\x07\\x1b[2J \\xc2\\x9b31m \\xe2\\x80\\xaecba \\x7f end\\xff");
  EXPECT_EQ(p->swap, "a\\x0ab");
  EXPECT_EQ(p->features, "move\\x0d");
}

TEST(EscapeForDisplay, LeavesPrintableTextAndEscapesEverythingElse) {
  struct Case {
    const char* in;
    const char* out;
  };
  for (Case c : {Case{"python3 big.py --n=3", "python3 big.py --n=3"},
                 Case{"caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80"},
                 Case{"a\\b", "a\\\\b"},
                 Case{"\x1b[31mred", "\\x1b[31mred"},
                 Case{"tab\there\n", "tab\\x09here\\x0a"},
                 Case{"del\x7f", "del\\x7f"},
                 Case{"csi\xc2\x9b", "csi\\xc2\\x9b"},              // C1 CSI, as UTF-8
                 Case{"raw\x9b", "raw\\x9b"},                     // C1 CSI, one byte
                 Case{"rlo\xe2\x80\xae", "rlo\\xe2\\x80\\xae"},  // right-to-left override
                 Case{"cut\xe2\x80", "cut\\xe2\\x80"},            // truncated sequence
                 Case{"long\xc0\xaf", "long\\xc0\\xaf"},          // overlong '/'
                 Case{"sur\xed\xa0\x80", "sur\\xed\\xa0\\x80"}}) {  // a surrogate
    EXPECT_EQ(EscapeForDisplay(c.in), c.out) << c.in;
  }
}

}  // namespace
}  // namespace pager::testing

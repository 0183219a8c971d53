// libpager_preload.so on real processes: the probe (preload_probe.cc) for
// each interposed call, fork and threads; unmodified python3, sort, xz and
// sqlite3 under a limit well below their peak, byte-identical to an unpaged
// run, against a local swap directory and the loopback NFS server; bad
// settings and missing rights refuse to run the program.
#include <fcntl.h>
#include <signal.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "nfs_server.h"

namespace {

constexpr int kTimeoutSeconds = 240;

using Env = std::vector<std::pair<std::string, std::string>>;

struct PagerStats {
  uint64_t evictions = 0, swapins = 0, heap_extents = 0, mapped = 0, io_errors = 0, checksum_failures = 0;
};

struct RunResult {
  int status = -1;  // exit status, or 128 + signal
  std::string out, err;
  std::map<int, PagerStats> stats;  // by pid, from LIBPAGER_STATS_AT_EXIT
  double seconds = 0;
  std::string stats_text;  // every pager's exit line, as written
};

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/preload_test.XXXXXX";
    path_ = mkdtemp(t);
    chmod(path_.c_str(), 0777);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

uint64_t Field(const std::string& line, const std::string& name) {
  std::smatch m;
  std::regex re(" " + name + "=([0-9]+)");
  return std::regex_search(line, m, re) ? std::stoull(m[1]) : 0;
}

// Runs `cmd` with /bin/sh, with the preload when `preload` is true, stdout
// and stderr captured. `uid` >= 0: as that user.
RunResult RunCommand(const std::string& cmd, const Env& env, bool preload = true, int uid = -1) {
  TempDir dir;
  const std::string out = dir.path() + "/out", err = dir.path() + "/err", stats = dir.path() + "/stats";
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    dup2(o, 1);
    dup2(e, 2);
    if (preload) {
      setenv("LD_PRELOAD", PRELOAD_SO, 1);
      setenv("LIBPAGER_STATS_AT_EXIT", stats.c_str(), 1);
    }
    for (const auto& [k, v] : env) {
      if (v == "<unset>") {
        unsetenv(k.c_str());
      } else {
        setenv(k.c_str(), v.c_str(), 1);
      }
    }
    if (uid >= 0 && (setgid(uid) != 0 || setuid(uid) != 0)) _exit(126);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(126);
  }
  RunResult r;
  int st = 0;
  // A hang (a fault nobody serves) fails the test instead of stalling ctest.
  while (waitpid(pid, &st, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(kTimeoutSeconds)) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      break;
    }
    usleep(20000);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.out = ReadAll(out);
  r.err = ReadAll(err);
  r.stats_text = ReadAll(stats);
  std::istringstream lines(r.stats_text);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (!std::regex_search(line, m, std::regex("^libpager\\[([0-9]+)\\]: stats:"))) continue;
    PagerStats& s = r.stats[std::stoi(m[1])];
    s.evictions = Field(line, "evictions");
    s.swapins = Field(line, "swapins");
    s.heap_extents = Field(line, "heap_extents");
    s.mapped = Field(line, "mapped");
    s.io_errors = Field(line, "io_errors");
    s.checksum_failures = Field(line, "checksum_failures");
  }
  return r;
}

// The stats of the process that ran the command itself (sh execs it: the
// first line written is the last process to exit... so take the largest).
PagerStats Busiest(const RunResult& r) {
  PagerStats best;
  for (const auto& [pid, s] : r.stats) {
    if (s.evictions + s.swapins >= best.evictions + best.swapins) best = s;
  }
  return best;
}

std::string Probe(const std::string& args) { return std::string(PROBE) + " " + args; }

class PreloadTest : public ::testing::Test {
 protected:
  Env Paged(const std::string& limit) { return {{"LIBPAGER_LIMIT", limit}, {"LIBPAGER_SWAP", swap_.path()}}; }
  // The probe run paged under `limit` exits 0 having printed "ok" (its own
  // checks passed); *r is its result. Call under ASSERT_NO_FATAL_FAILURE.
  void RunProbeOk(const std::string& args, const std::string& limit, RunResult* r) {
    *r = RunCommand(Probe(args), Paged(limit));
    ASSERT_EQ(r->status, 0) << r->err;
    ASSERT_EQ(r->out, "ok\n") << r->err;
  }
  TempDir swap_;
};

void ExpectPaged(const RunResult& r, const PagerStats& s) {
  EXPECT_GT(s.evictions, 0u) << r.err;
  EXPECT_GT(s.swapins, 0u) << r.err;
  EXPECT_EQ(s.io_errors, 0u);
  EXPECT_EQ(s.checksum_failures, 0u);
}

TEST_F(PreloadTest, HeapIsJemallocInPagedExtents) {
  RunResult r;
  ASSERT_NO_FATAL_FAILURE(RunProbeOk("heap 64", "16M", &r));
  ASSERT_EQ(r.stats.size(), 1u) << r.err;
  const PagerStats& s = r.stats.begin()->second;
  EXPECT_GT(s.heap_extents, 64u << 20);
  ExpectPaged(r, s);
}

TEST_F(PreloadTest, MmapMremapMunmapMadviseMprotectBehaveAsWithoutThePager) {
  // The probe's checks hold without the preload too: they describe Linux.
  RunResult plain = RunCommand(Probe("mmap 32"), {}, false);
  ASSERT_EQ(plain.status, 0) << plain.err;
  RunResult r;
  ASSERT_NO_FATAL_FAILURE(RunProbeOk("mmap 32", "8M", &r));
  ASSERT_EQ(r.stats.size(), 1u);
  ExpectPaged(r, r.stats.begin()->second);
}

TEST_F(PreloadTest, MmapBelowTheThresholdIsNotPaged) {
  Env env = Paged("8M");
  env.push_back({"LIBPAGER_MMAP_THRESHOLD", "1G"});
  env.push_back({"LIBPAGER_HEAP", "0"});
  RunResult r = RunCommand(Probe("mmap 32"), env);
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(r.stats.size(), 1u);
  EXPECT_EQ(r.stats.begin()->second.mapped, 0u);
  EXPECT_EQ(r.stats.begin()->second.evictions, 0u);
}

TEST_F(PreloadTest, ThreadsStartedAfterThePagerAreServed) {
  RunResult r;
  ASSERT_NO_FATAL_FAILURE(RunProbeOk("threads 96 4", "16M", &r));
  ASSERT_EQ(r.stats.size(), 1u);
  ExpectPaged(r, r.stats.begin()->second);
}

TEST_F(PreloadTest, ForkChildReadsEvictedPagesAndPagesItsOwnMemory) {
  RunResult r = RunCommand(Probe("fork 64"), Paged("16M"));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("child pid=([0-9]+) bad=0")));
  int child = std::stoi(m[1]);
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("parent pid=([0-9]+)")));
  int parent = std::stoi(m[1]);
  ASSERT_TRUE(r.stats.count(child)) << "the child started no pager of its own";
  ASSERT_TRUE(r.stats.count(parent));
  ExpectPaged(r, r.stats[parent]);
  // The child wrote 96 MiB (heap and mmap) under a 16 MiB limit, then read
  // it back: paged by its own pager.
  ExpectPaged(r, r.stats[child]);
}

TEST_F(PreloadTest, SystemPopenPosixSpawnWork) {
  RunResult r;
  ASSERT_NO_FATAL_FAILURE(RunProbeOk("spawn", "16M", &r));
}

TEST_F(PreloadTest, Issue9AMappingSplitAfterSwapOutReadsBackEveryByte) {
  RunResult r;
  ASSERT_NO_FATAL_FAILURE(RunProbeOk("split 64", "16M", &r));
  ASSERT_EQ(r.stats.size(), 1u);
  ExpectPaged(r, r.stats.begin()->second);
}

TEST_F(PreloadTest, Issue9MunmapInASignalHandlerNeverHangs) {
  RunResult r;
  ASSERT_NO_FATAL_FAILURE(RunProbeOk("sigunmap 20000", "16M", &r));
}

// Issue 11: every process under the preload (each child of a paged shell)
// paid ~0.1 s to start a pager it may never need. The pager now starts when
// the memory it could page reaches LIBPAGER_START_AT (default: half the
// limit): a small program starts none — no swap file, no stats segment.
TEST_F(PreloadTest, AProgramWithLittleMemoryStartsNoPager) {
  TempDir stats;
  Env env = Paged("64M");
  env.push_back({"LIBPAGER_STATS_DIR", stats.path()});
  RunResult r = RunCommand(Probe("heap 4"), env);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
  EXPECT_NE(r.stats_text.find("started=0"), std::string::npos) << r.stats_text;
  EXPECT_TRUE(std::filesystem::is_empty(swap_.path())) << "a swap file was made";
  EXPECT_TRUE(std::filesystem::is_empty(stats.path())) << "a stats segment was published";
  // Crossing the threshold starts it, and what was allocated before is paged.
  r = RunCommand(Probe("heap 64"), Paged("16M"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.stats_text.find("started=1"), std::string::npos) << r.stats_text;
  ExpectPaged(r, Busiest(r));
  // LIBPAGER_START_AT=0: before main, as a program that must know at once.
  env = Paged("64M");
  env.push_back({"LIBPAGER_START_AT", "0"});
  r = RunCommand(Probe("hello"), env);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.stats_text.find("started=1"), std::string::npos) << r.stats_text;
}

TEST_F(PreloadTest, BadVariableRefusesToRunTheProgram) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"LIBPAGER_LIMIT", "lots"},          {"LIBPAGER_LIMIT", "<unset>"},
      {"LIBPAGER_MMAP_THRESHOLD", "1Q"},   {"LIBPAGER_HEAP", "yes"},
      {"LIBPAGER_RESERVE", "-5"},          {"LIBPAGER_STATS_AT_EXIT", "sometimes"},
      {"LIBPAGER_SWAP", "relative/dir"},   {"LIBPAGER_START_AT", "soon"},
  };
  for (const auto& [var, value] : bad) {
    SCOPED_TRACE(var + "=" + value);
    Env env = Paged("16M");
    env.push_back({var, value});
    RunResult r = RunCommand(Probe("hello"), env);
    EXPECT_EQ(r.status, 127);
    EXPECT_EQ(r.out, "") << "the program ran";
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(var == "LIBPAGER_SWAP" ? "relative/dir" : var), std::string::npos) << r.err;
    if (value != "<unset>") {
      EXPECT_NE(r.err.find(value), std::string::npos) << r.err;
    }
  }
}

// The issue's LIBPAGER_LIMIT=1.5T: the pager locked a 1% reserve plus arena
// (~24.6 GiB here) in every paged process.
TEST_F(PreloadTest, LimitBeyondThisMachinesMemoryRefusesWithOneLine) {
  std::istringstream meminfo(ReadAll("/proc/meminfo"));
  std::string key;
  uint64_t kib = 0;
  meminfo >> key >> kib;
  if (kib * 1024 >= (3ull << 39)) GTEST_SKIP() << "this machine has 1.5 TiB of memory or more";
  RunResult r = RunCommand(Probe("hello"), Paged("1.5T"));
  EXPECT_EQ(r.status, 127);
  EXPECT_EQ(r.out, "") << "the program ran";
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("LIBPAGER_LIMIT): 1.50 TiB"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("does not fit in"), std::string::npos) << r.err;
}

// LIBPAGER_STATS_AT_EXIT in a directory others can write: a link there
// made root append to a root-only file; a FIFO would hang the start.
TEST_F(PreloadTest, StatsAtExitPathThatIsALinkOrAFifoIsRefusedAndNotFollowed) {
  TempDir dir;
  const std::string target = dir.path() + "/root-only", link = dir.path() + "/stats", fifo = dir.path() + "/fifo";
  std::ofstream(target) << "untouched\n";
  ASSERT_EQ(chmod(target.c_str(), 0600), 0);
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  ASSERT_EQ(mkfifo(fifo.c_str(), 0666), 0);
  for (const auto& [path, why] : {std::pair<std::string, std::string>{link, "symbolic link, not followed"},
                                  {fifo, "not a regular file"}}) {
    SCOPED_TRACE(path);
    Env env = Paged("16M");
    env.push_back({"LIBPAGER_STATS_AT_EXIT", path});
    RunResult r = RunCommand(Probe("hello"), env);
    EXPECT_EQ(r.status, 127);
    EXPECT_EQ(r.out, "") << "the program ran";
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("LIBPAGER_STATS_AT_EXIT='" + path + "': "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
    EXPECT_LT(r.seconds, 60) << "the open waited on the FIFO";
  }
  EXPECT_EQ(ReadAll(target), "untouched\n") << "the link was followed";
  // The control: a plain file there is appended to.
  Env env = Paged("16M");
  env.push_back({"LIBPAGER_STATS_AT_EXIT", dir.path() + "/plain"});
  RunResult r = RunCommand(Probe("hello"), env);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(ReadAll(dir.path() + "/plain").find("limit=16777216"), std::string::npos);
}

int NobodyUid() {
  passwd* pw = getpwnam("nobody");
  return pw != nullptr ? static_cast<int>(pw->pw_uid) : -1;
}

TEST_F(PreloadTest, NoUserfaultfdPermissionSaysHowToGrantIt) {
  int nobody = NobodyUid();
  if (getuid() != 0 || nobody < 0) GTEST_SKIP() << "needs root to run a command as nobody";
  if (ReadAll("/proc/sys/vm/unprivileged_userfaultfd") != "0\n") GTEST_SKIP() << "userfaultfd is open to all";
  RunResult r = RunCommand(Probe("hello"), Paged("16M"), true, nobody);
  EXPECT_EQ(r.status, 127) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("userfaultfd: permission denied"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("vm.unprivileged_userfaultfd=1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("/dev/userfaultfd"), std::string::npos) << r.err;
}

// The setuid probe has the preload as a DT_NEEDED library (a setuid program
// ignores LD_PRELOAD paths with slashes, so only this way does the preload's
// own AT_SECURE check get tested): with a bad LIBPAGER_LIMIT it must still
// run, unpaged.
TEST_F(PreloadTest, SetuidProgramIsNeverPaged) {
  int nobody = NobodyUid();
  if (getuid() != 0 || nobody < 0) GTEST_SKIP() << "needs root to install a setuid program";
  TempDir dir;
  struct statvfs vfs;
  if (statvfs(dir.path().c_str(), &vfs) == 0 && (vfs.f_flag & ST_NOSUID)) GTEST_SKIP() << "/tmp is nosuid";
  const std::string exe = dir.path() + "/setuid_probe";
  ASSERT_EQ(std::system(("cp " SETUID_PROBE " " + exe + " && chown root:root " + exe + " && chmod 4755 " + exe).c_str()), 0);
  Env env = {{"LIBPAGER_LIMIT", "garbage"}, {"LIBPAGER_STATS_AT_EXIT", "1"}};
  RunResult r = RunCommand(exe + " heap 8", env, false, nobody);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
  EXPECT_EQ(r.err.find("libpager"), std::string::npos) << r.err;
  // The same program, not setuid: the preload is active and refuses.
  RunResult plain = RunCommand(std::string(SETUID_PROBE) + " hello", env, false, nobody);
  EXPECT_EQ(plain.status, 127) << plain.err;
}

// ---- real programs ----------------------------------------------------------

struct Program {
  const char* name;
  const char* setup;    // makes $D/in (D: a scratch directory)
  const char* command;  // reads $D/in, writes to stdout
  const char* limit;    // well below the unpaged peak (measured in comments)
};

const Program kPrograms[] = {
    // Peak RSS ~55 MiB unpaged.
    {"python", "true",
     "/usr/bin/python3 -c \"import hashlib\n"
     "n = 300000\n"
     "a = [str(i * 7919 % n) * 3 for i in range(n)]\n"
     "d = {s: i for i, s in enumerate(a)}\n"
     "a.sort()\n"
     "h = hashlib.sha256()\n"
     "for s in a: h.update(s.encode())\n"
     "print(len(a), len(d), sum(d.values()), h.hexdigest())\"",
     "24M"},
    // 12 MiB of lines sorted in one in-memory buffer: peak ~30 MiB.
    {"sort",
     "/usr/bin/python3 -c \"import random\nr = random.Random(1)\n"
     "print(''.join('%08x %s\\n' % (r.getrandbits(32), 'x' * r.randint(10, 60)) for i in range(250000)), end='')\" > $D/in",
     "sort -S 100M --parallel=1 $D/in", "12M"},
    // xz -9 on 1 MB: peak ~18 MiB unpaged. Its match finder reads its hash
    // table at random, the worst case for any pager (2.7 MB under 16M did
    // not finish in 4 minutes): the limit is 78% of the peak.
    {"xz",
     "/usr/bin/python3 -c \"import random\nr = random.Random(2)\nw = [('%x' % r.getrandbits(40)) for i in range(5000)]\n"
     "print(' '.join(r.choice(w) for i in range(250000)))\" | head -c 1000000 > $D/in",
     // Not a pipe: sh would report sha256sum's status, and an xz that died
     // would pass for a wrong output.
     "xz -9 -T1 -c $D/in > $D/out && sha256sum < $D/out", "14M"},
    // A 300k-row table, a cache as big as the database, an aggregate. The
    // data is a function of the row number: the two runs must agree.
    {"sqlite",
     "true",
     "sqlite3 :memory: 'PRAGMA cache_size=-400000;' "
     "'CREATE TABLE t(k INTEGER, g INTEGER, s TEXT);' "
     "'WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 300000) "
     "INSERT INTO t SELECT (i * 7919) % 300007, i % 1000, hex(i * 2654435761 % 4294967296) || i FROM c;' "
     "'SELECT count(*), sum(k), count(DISTINCT s) FROM t;' "
     "'SELECT g, count(*), sum(k), max(s) FROM t GROUP BY g ORDER BY sum(k) DESC LIMIT 20;'",
     "16M"},
    // A JVM with each of its two main collectors: a 300k-entry HashMap of
    // arrays built, read and replaced at random. Peak ~100 MiB unpaged
    // (heap, GC bitmaps and card tables are large anonymous mappings).
    {"jvm_g1", "javac -d $D " PAGER_SOURCE_DIR "/tests/programs/Hog.java",
     "java -XX:+UseG1GC -Xmx300m -cp $D Hog 300000", "32M"},
    {"jvm_parallel", "javac -d $D " PAGER_SOURCE_DIR "/tests/programs/Hog.java",
     "java -XX:+UseParallelGC -Xmx300m -cp $D Hog 300000", "32M"},
    // node: V8 maps its heap in 508 KiB pieces (paged because the default
    // LIBPAGER_MMAP_THRESHOLD is 256K). Peak ~135 MiB unpaged.
    {"node", "true", "node " PAGER_SOURCE_DIR "/tests/programs/hog.js 200000", "48M"},
};

class RealProgram : public ::testing::TestWithParam<std::tuple<Program, std::string>> {
 protected:
  static void SetUpTestSuite() {
    nfs_ = new pager::testing::NfsServer();
    nfs_ok_ = nfs_->Start();
  }
  static void TearDownTestSuite() {
    delete nfs_;
    nfs_ = nullptr;
  }
  static pager::testing::NfsServer* nfs_;
  static bool nfs_ok_;
};
pager::testing::NfsServer* RealProgram::nfs_ = nullptr;
bool RealProgram::nfs_ok_ = false;

TEST_P(RealProgram, OutputIsByteIdenticalToAnUnpagedRun) {
  const Program& p = std::get<0>(GetParam());
  const std::string& store = std::get<1>(GetParam());
  TempDir d, swap;
  std::string swap_url = swap.path();
  if (store == "nfs") {
    ASSERT_TRUE(nfs_ok_) << nfs_->error();
    swap_url = nfs_->url();
  }
  const std::string prefix = "D=" + d.path() + "; ";
  const std::string cmd = p.command;
  ASSERT_EQ(std::system((prefix + p.setup).c_str()), 0);
  RunResult plain = RunCommand(prefix + cmd, {}, false);
  ASSERT_EQ(plain.status, 0) << plain.err;
  ASSERT_FALSE(plain.out.empty());
  RunResult r = RunCommand(prefix + cmd, {{"LIBPAGER_LIMIT", p.limit}, {"LIBPAGER_SWAP", swap_url}});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, plain.out) << "paged output differs; the paged run's stderr:\n"
                              << r.err << "its stats:\n" << r.stats_text;
  ExpectPaged(r, Busiest(r));
  std::cerr << p.name << " on " << store << ": " << r.seconds << " s paged, " << plain.seconds
            << " s unpaged; evictions " << Busiest(r).evictions << ", swap-ins " << Busiest(r).swapins << "\n";
}

INSTANTIATE_TEST_SUITE_P(, RealProgram,
                         ::testing::Combine(::testing::ValuesIn(kPrograms), ::testing::Values("file", "nfs")),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param);
                         });

}  // namespace

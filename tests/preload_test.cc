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

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "nfs_server.h"
#include "swap_file.h"

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

// A command started by StartCommand: its process, and where its output goes.
struct Running {
  pid_t pid = -1;
  std::unique_ptr<TempDir> dir;
  std::chrono::steady_clock::time_point t0;
};

// Starts `cmd` with /bin/sh, with the preload when `preload` is true, stdout
// and stderr captured. `uid` >= 0: as that user. `before_exec` runs in the
// child, whose pid the command's first process keeps.
Running StartCommand(const std::string& cmd, const Env& env, bool preload = true, int uid = -1,
                     const std::function<void()>& before_exec = nullptr) {
  Running run;
  run.dir = std::make_unique<TempDir>();
  const std::string out = run.dir->path() + "/out", err = run.dir->path() + "/err",
                    stats = run.dir->path() + "/stats";
  run.t0 = std::chrono::steady_clock::now();
  run.pid = fork();
  if (run.pid == 0) {
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
    if (before_exec) before_exec();
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(126);
  }
  return run;
}

// Waits for a command StartCommand started (SIGKILL past kTimeoutSeconds:
// a hang, a fault nobody serves, fails the test instead of stalling ctest)
// and collects what it wrote.
RunResult FinishCommand(Running& run) {
  const std::string dir = run.dir->path();
  RunResult r;
  int st = 0;
  while (waitpid(run.pid, &st, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() - run.t0 > std::chrono::seconds(kTimeoutSeconds)) {
      kill(run.pid, SIGKILL);
      waitpid(run.pid, &st, 0);
      break;
    }
    usleep(20000);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - run.t0).count();
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.out = ReadAll(dir + "/out");
  r.err = ReadAll(dir + "/err");
  r.stats_text = ReadAll(dir + "/stats");
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

RunResult RunCommand(const std::string& cmd, const Env& env, bool preload = true, int uid = -1) {
  Running run = StartCommand(cmd, env, preload, uid);
  return FinishCommand(run);
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

// A thread on a stack the program mapped (paged) has its control block
// there; the kernel's write to it at the thread's exit raises no userfault
// (UffdContract.ExitingThreadsClearOfItsTidWordRaisesNoFault). The preload
// pins it as the thread starts; without that, a join hung in 2 runs of 3
// (a small limit and slow, encrypted write-back make eviction sweep often).
TEST_F(PreloadTest, ThreadsOnStacksTheProgramMappedAreAlwaysJoined) {
  Env env = Paged("2M");
  env.push_back({"LIBPAGER_RESERVE", "1M"});
  env.push_back({"LIBPAGER_ENCRYPT", "1"});  // slower write-back: the race's window is wider
  RunResult r = RunCommand(Probe("stacks 16"), env);
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(r.out, "ok\n") << r.err;
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
    // redis: 150k keys populated, every seventh appended to by a Lua script,
    // then the dataset's digest. Peak ~28 MiB unpaged. A server and its
    // client under the preload; only the server grows.
    {"redis", "true",
     "redis-server --port 0 --unixsocket $D/s --save '' --appendonly no --enable-debug-command yes "
     "--logfile $D/redis.log & p=$!; "
     "for i in $(seq 400); do redis-cli -s $D/s ping >/dev/null 2>&1 && break; sleep 0.05; done; "
     "redis-cli -s $D/s DEBUG POPULATE 150000 key 100 >/dev/null && "
     "redis-cli -s $D/s EVAL \"for i=1,150000,7 do redis.call('APPEND','key:'..i,'x') end return 1\" 0 >/dev/null && "
     "redis-cli -s $D/s DEBUG DIGEST && redis-cli -s $D/s DBSIZE; "
     "redis-cli -s $D/s SHUTDOWN NOSAVE >/dev/null 2>&1; wait $p",
     "10M"},
    // node: V8 maps its heap in 508 KiB pieces (paged because the default
    // LIBPAGER_MMAP_THRESHOLD is 256K). Peak ~135 MiB unpaged.
    {"node", "true", "node " PAGER_SOURCE_DIR "/tests/programs/hog.js 200000", "48M"},
};

// A loopback NFS server for a whole test suite: its SetUpTestSuite and
// TearDownTestSuite call StartServer and StopServer.
class WithNfsServer {
 protected:
  static void StartServer() {
    nfs_ = new pager::testing::NfsServer();
    nfs_ok_ = nfs_->Start();
  }
  static void StopServer() {
    delete nfs_;
    nfs_ = nullptr;
  }
  static pager::testing::NfsServer* nfs_;
  static bool nfs_ok_;
};
pager::testing::NfsServer* WithNfsServer::nfs_ = nullptr;
bool WithNfsServer::nfs_ok_ = false;

class RealProgram : public ::testing::TestWithParam<std::tuple<Program, std::string>>, public WithNfsServer {
 protected:
  static void SetUpTestSuite() { StartServer(); }
  static void TearDownTestSuite() { StopServer(); }
};

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

// Issue 10: libcrypto frees its global state in an exit handler of its own.
// The pager still serves the program's last faults after that handler ran
// (later exit handlers, destructors, python's teardown touch swapped pages):
// a cipher used then hung python at exit and crashed JVMs. With pages
// encrypted, a program whose exit handler reads back and rewrites every page
// it filled, and python (which loads libcrypto itself), exit cleanly.
class EncryptedExit : public ::testing::TestWithParam<std::string>, public WithNfsServer {
 protected:
  static void SetUpTestSuite() { StartServer(); }
  static void TearDownTestSuite() { StopServer(); }
  // `timeout`: a hang fails in a minute, not after the runner's four.
  RunResult Run(const std::string& cmd, const std::string& limit) {
    std::string url = swap_.path();
    if (GetParam() == "nfs") {
      EXPECT_TRUE(nfs_ok_) << nfs_->error();
      url = nfs_->url();
    }
    return RunCommand("timeout -s KILL 60 " + cmd,
                      {{"LIBPAGER_LIMIT", limit}, {"LIBPAGER_SWAP", url}, {"LIBPAGER_ENCRYPT", "1"}});
  }
  TempDir swap_;
};

TEST_P(EncryptedExit, Issue10EncryptedProgramsExitCleanly) {
  RunResult r = Run(Probe("atexit 64"), "16M");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "ok\nat exit: ok\n") << r.err;
  ExpectPaged(r, Busiest(r));
  for (int i = 0; i < 3; i++) {
    r = Run(std::string("/usr/bin/python3 -c \"import hashlib\n"
                        "a = [hashlib.sha256(str(i).encode()).hexdigest() * 4 for i in range(200000)]\n"
                        "h = hashlib.sha256()\n"
                        "for s in a: h.update(s.encode())\n"
                        "print(len(a), h.hexdigest()[:16])\""),
            "24M");
    ASSERT_EQ(r.status, 0) << "python run " << i << ": " << r.err;
    EXPECT_EQ(r.out, "200000 87c06977626a6d33\n") << r.err;
    ExpectPaged(r, Busiest(r));
  }
}

INSTANTIATE_TEST_SUITE_P(, EncryptedExit, ::testing::Values("file", "nfs"),
                         [](const auto& info) { return info.param; });

// ---- lazy binding: the pager's threads never enter ld.so's lookup ---------------

// The pager's libraries are bound before the program runs (-z now for ours,
// preload/bind_now.cc for libnfs, libstdc++, libc...), each PLT slot to what
// LD_BIND_NOW=1 would have bound it to.
TEST_F(PreloadTest, PagerLibrariesAreBoundAtStartExactlyAsLdBindNowBindsThem) {
  RunResult bound = RunCommand(Probe("plt"), Paged("64M"));
  RunResult now = RunCommand(Probe("plt"), {{"LIBPAGER_LIMIT", "64M"}, {"LIBPAGER_SWAP", swap_.path()}, {"LD_BIND_NOW", "1"}});
  ASSERT_EQ(bound.status, 0) << bound.err;
  ASSERT_EQ(now.status, 0) << now.err;
  EXPECT_NE(now.out.find("\nlibnfs.so"), std::string::npos) << "no slot of libnfs listed";
  EXPECT_NE(now.out.find("\nlibstdc++.so"), std::string::npos) << "no slot of libstdc++ listed";
  std::istringstream a(bound.out), b(now.out);
  std::string la, lb;
  int differ = 0;
  std::string first;
  while (std::getline(b, lb)) {
    if (!std::getline(a, la)) la = "(missing)";
    if (la != lb && differ++ == 0) first = "bound at start: " + la + "\nLD_BIND_NOW:     " + lb;
  }
  EXPECT_EQ(differ, 0) << "slots bound otherwise than by LD_BIND_NOW=1; the first:\n" << first;
}

// A JVM paged to NFS hung, its store thread in ld.so's lookup of
// rpc_nfs3_read_async, faulting on the global scope that the JVM's
// dlopen(RTLD_GLOBAL) had reallocated in paged heap, while the pager thread
// waited for that very store thread. The probe dlopens a library, pages its
// heap out to NFS, and reads it back: the store's first reads (and its first
// call of rpc_nfs3_read_async) come after the scope's page went out. With
// lazy binding it hung every time.
class LazyBinding : public ::testing::Test, public WithNfsServer {
 protected:
  static void SetUpTestSuite() { StartServer(); }
  static void TearDownTestSuite() { StopServer(); }
};

TEST_F(LazyBinding, StoreThreadsFirstReadAfterTheProgramDlopenedDoesNotHang) {
  ASSERT_TRUE(nfs_ok_) << nfs_->error();
  // `timeout`: a hang fails in a minute, not after the runner's four.
  RunResult r = RunCommand("timeout -s KILL 60 " + Probe("dlopen 64"),
                           {{"LIBPAGER_LIMIT", "16M"}, {"LIBPAGER_SWAP", nfs_->url()}, {"LIBPAGER_START_AT", "0"}});
  ASSERT_EQ(r.status, 0) << "killed after 60 s (hung)? " << r.err;
  EXPECT_EQ(r.out, "ok\n") << r.err;
  ExpectPaged(r, Busiest(r));
}

// ---- swap files: who removes what, exec, pid reuse ----------------------------
//
// A program far over its limit (48 MiB under 16M), its output a hash of all
// it wrote: any page lost or wrong changes it.
constexpr const char* kWorkPy =
    "import hashlib, os, sys\n"
    "a = [bytes([i % 251]) * (1 << 20) for i in range(48)]\n"
    "print(hashlib.sha256(b''.join(a)).hexdigest())\n";

std::vector<std::string> SwapFilesIn(const std::string& dir) {
  std::vector<std::string> v;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".swap") v.push_back(e.path().filename());
  }
  std::sort(v.begin(), v.end());
  return v;
}

// Waits until `dir` holds no swap file; what is left at the deadline.
std::vector<std::string> SwapFilesLeftAfter(const std::string& dir, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<std::string> left;
  while (!(left = SwapFilesIn(dir)).empty() && std::chrono::steady_clock::now() < deadline) usleep(50000);
  return left;
}

// A program that pages 48 MiB, prints "ready" and sleeps, returned once it
// printed it (or after a minute): it is then killed once it has paged (sh had
// a file of its own before it exec'd).
Running StartPagedSleeper(const Env& env) {
  Running run = StartCommand("exec python3 -c 'import time\na = bytearray(48 << 20)\n"
                             "for i in range(0, len(a), 4096): a[i] = 1\nprint(\"ready\", flush=True)\n"
                             "time.sleep(600)'",
                             env);
  const std::string out = run.dir->path() + "/out";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (ReadAll(out) != "ready\n" && std::chrono::steady_clock::now() < deadline) usleep(20000);
  return run;
}

class SwapFileLifetime : public ::testing::Test, public WithNfsServer {
 protected:
  static void SetUpTestSuite() { StartServer(); }
  static void TearDownTestSuite() { StopServer(); }
  // "file", "nfs3" or "nfs4": the swap location, and *dir gets the local
  // directory its files are in. NFS: a directory of its own in the export.
  std::string Swap(const std::string& store, std::string* dir) {
    if (store == "file") {
      *dir = local_.path();
      return local_.path();
    }
    EXPECT_TRUE(nfs_ok_) << nfs_->error();
    static int n = 0;
    const std::string sub = "t" + std::to_string(getpid()) + "_" + std::to_string(n++);
    *dir = nfs_->export_dir() + "/" + sub;
    std::filesystem::create_directory(*dir);
    return nfs_->url(sub, store == "nfs4" ? "version=4" : "");
  }
  Env Paged(const std::string& swap) { return {{"LIBPAGER_LIMIT", "16M"}, {"LIBPAGER_SWAP", swap}}; }

  TempDir local_, work_;
};

class SwapFileExec : public SwapFileLifetime,
                     public ::testing::WithParamInterface<std::tuple<std::string, std::string>> {};

// Issue 9 (5b): a program that execs through a wrapper (sh -c 'exec ...',
// env, nice), each image paged with a swap file of its own: the same output
// as unpaged, and no swap file left once it exits normally. Over NFS the
// second image used to fail to start (NFS3ERR_EXIST on the first image's
// file, named for the same pid).
TEST_P(SwapFileExec, ProgramThatExecsRunsAndLeavesNoSwapFile) {
  const auto& [store, wrapper] = GetParam();
  std::string dir;
  const std::string swap = Swap(store, &dir);
  {
    std::ofstream(work_.path() + "/w.py") << kWorkPy;
  }
  const std::string py = "python3 " + work_.path() + "/w.py";
  const std::string cmd = wrapper == "none"    ? py
                          : wrapper == "sh"    ? "sh -c 'exec " + py + "'"
                          : wrapper == "env"   ? "env " + py
                                               : "nice " + py;
  RunResult plain = RunCommand(cmd, {}, false);
  ASSERT_EQ(plain.status, 0) << plain.err;
  RunResult r = RunCommand(cmd, Paged(swap));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, plain.out) << r.err;
  ExpectPaged(r, Busiest(r));
  EXPECT_EQ(SwapFilesLeftAfter(dir, std::chrono::seconds(20)), std::vector<std::string>{});
}

INSTANTIATE_TEST_SUITE_P(, SwapFileExec,
                         ::testing::Combine(::testing::Values("file", "nfs3", "nfs4"),
                                            ::testing::Values("none", "sh", "env", "nice")),
                         [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });

class SwapFileNfs : public SwapFileLifetime, public ::testing::WithParamInterface<std::string> {};

// SIGKILL runs nothing of the program's: the reaper sees its pipe end and
// removes the file.
TEST_P(SwapFileNfs, KilledProgramLeavesNoSwapFile) {
  std::string dir;
  const std::string swap = Swap(GetParam(), &dir);
  Running run = StartPagedSleeper(Paged(swap));
  ASSERT_EQ(ReadAll(run.dir->path() + "/out"), "ready\n") << ReadAll(run.dir->path() + "/err");
  ASSERT_EQ(SwapFilesIn(dir).size(), 1u) << "the program made no swap file";
  kill(run.pid, SIGKILL);
  RunResult r = FinishCommand(run);
  EXPECT_EQ(r.status, 128 + SIGKILL) << r.err;
  EXPECT_EQ(SwapFilesLeftAfter(dir, std::chrono::seconds(20)), std::vector<std::string>{});
}

// A fork child that outlives its parent must not keep the parent's file:
// the parent's goes when the parent exits, the child's when the child does.
TEST_P(SwapFileNfs, ForkChildDoesNotKeepItsParentsSwapFile) {
  std::string dir;
  const std::string swap = Swap(GetParam(), &dir);
  RunResult r = RunCommand(
      "exec python3 -c 'import os, sys, time\na = [bytes([i]) * (1 << 20) for i in range(32)]\n"
      "pid = os.fork()\nif pid == 0:\n  b = [bytes([i]) * (1 << 20) for i in range(8)]\n"
      "  time.sleep(600)\n  os._exit(0)\nprint(os.getpid(), pid)'",
      Paged(swap));
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream ids(r.out);
  int parent = 0, child = 0;
  ASSERT_TRUE(ids >> parent >> child) << r.out;
  auto files_of = [&](int pid) {
    std::vector<std::string> v;
    for (const std::string& f : SwapFilesIn(dir)) {
      if (f.find("-" + std::to_string(pid) + "-") != std::string::npos) v.push_back(f);
    }
    return v;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!files_of(parent).empty() && std::chrono::steady_clock::now() < deadline) usleep(50000);
  EXPECT_EQ(files_of(parent), std::vector<std::string>{}) << "the child kept its parent's file";
  EXPECT_EQ(kill(child, 0), 0) << "the child should still run";
  EXPECT_EQ(files_of(child).size(), 1u) << "the child pages with a file of its own";
  kill(child, SIGKILL);
  EXPECT_EQ(SwapFilesLeftAfter(dir, std::chrono::seconds(20)), std::vector<std::string>{});
}

INSTANTIATE_TEST_SUITE_P(, SwapFileNfs, ::testing::Values("nfs3", "nfs4"),
                         [](const auto& info) { return info.param; });

// Several servers (docs/servers.md): each holds a file of the same name, and
// the reaper removes them all, whether the program exits or is killed.
TEST_F(SwapFileLifetime, ServersOfAListAreAllLeftWithoutASwapFile) {
  pager::testing::NfsServer other;
  ASSERT_TRUE(other.Start()) << other.error();
  std::string dir;
  const std::string swap = Swap("nfs3", &dir) + "," + other.url();
  {
    std::ofstream(work_.path() + "/w.py") << kWorkPy;
  }
  const std::string py = "python3 " + work_.path() + "/w.py";
  RunResult plain = RunCommand(py, {}, false);
  ASSERT_EQ(plain.status, 0) << plain.err;
  RunResult r = RunCommand(py, Paged(swap));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, plain.out) << r.err;
  ExpectPaged(r, Busiest(r));
  EXPECT_EQ(SwapFilesLeftAfter(dir, std::chrono::seconds(20)), std::vector<std::string>{});
  EXPECT_EQ(SwapFilesLeftAfter(other.export_dir(), std::chrono::seconds(20)), std::vector<std::string>{});

  Running run = StartPagedSleeper(Paged(swap));
  ASSERT_EQ(ReadAll(run.dir->path() + "/out"), "ready\n") << ReadAll(run.dir->path() + "/err");
  ASSERT_EQ(SwapFilesIn(dir).size(), 1u);
  ASSERT_EQ(SwapFilesIn(other.export_dir()), SwapFilesIn(dir)) << "each server holds the file, under one name";
  kill(run.pid, SIGKILL);
  FinishCommand(run);
  EXPECT_EQ(SwapFilesLeftAfter(dir, std::chrono::seconds(20)), std::vector<std::string>{});
  EXPECT_EQ(SwapFilesLeftAfter(other.export_dir(), std::chrono::seconds(20)), std::vector<std::string>{});
}

class SwapFileAnyStore : public SwapFileLifetime, public ::testing::WithParamInterface<std::string> {};

// Issue 9 (5): the preload removed every libpager-*.swap holding
// "-<own pid>-", other hosts' files in a shared directory included. Files
// named for our pid but not ours, made before the program starts, survive
// its start and its exit.
TEST_P(SwapFileAnyStore, FilesNamedWithOurPidButNotOursSurvive) {
  std::string dir;
  const std::string swap = Swap(GetParam(), &dir);
  std::vector<std::string> planted;
  const std::string host = pager::SwapFileHost();
  Running run = StartCommand(Probe("heap 32"), Paged(swap), true, -1, [&] {
    const std::string pid = std::to_string(getpid());
    for (const std::string& name :
         {"libpager-otherhost-" + pid + "-0.swap", "libpager-" + host + "-" + pid + "-0.swap",
          "libpager-otherhost-" + pid + "-1-4026531836-0123456789abcdef0123456789abcdef.swap"}) {
      close(open((dir + "/" + name).c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600));
    }
  });
  RunResult r = FinishCommand(run);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
  const std::string pid = std::to_string(run.pid);
  std::vector<std::string> want = {"libpager-" + host + "-" + pid + "-0.swap", "libpager-otherhost-" + pid + "-0.swap",
                                   "libpager-otherhost-" + pid +
                                       "-1-4026531836-0123456789abcdef0123456789abcdef.swap"};
  std::sort(want.begin(), want.end());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (SwapFilesIn(dir) != want && std::chrono::steady_clock::now() < deadline) usleep(50000);
  EXPECT_EQ(SwapFilesIn(dir), want);
}

// Two processes with the same host and pid at once (pid 1 of two fresh PID
// namespaces, as in two containers) both start and run: their names differ
// by random bits. Over NFS the second used to fail with NFS3ERR_EXIST, as a
// restarted container did on its predecessor's file. Each is its
// namespace's init and, as an init does, waits for every child before it
// ends: the reaper must not be one of them (it would wait for its parent).
TEST_P(SwapFileAnyStore, TwoProcessesWithTheSameHostAndPidBothRun) {
  if (getuid() != 0) GTEST_SKIP() << "unshare --pid --mount-proc needs root";
  if (system("unshare --pid --fork --mount-proc true 2>/dev/null") != 0) GTEST_SKIP() << "unshare --pid fails here";
  std::string dir;
  const std::string swap = Swap(GetParam(), &dir);
  const std::string go = work_.path() + "/go";
  const std::string cmd = "exec unshare --pid --fork --mount-proc python3 -c 'import os, time\n"
                          "a = bytearray(32 << 20)\nfor i in range(0, len(a), 4096): a[i] = 1\n"
                          "print(os.getpid(), flush=True)\nwhile not os.path.exists(\"" + go + "\"): time.sleep(0.02)\n"
                          "end = time.time() + 20\nwhile True:\n"
                          "  try: pid, _ = os.waitpid(-1, os.WNOHANG)\n  except ChildProcessError: break\n"
                          "  if pid == 0 and time.time() > end: print(\"a child never ended\"); break\n"
                          "  if pid == 0: time.sleep(0.02)\n"
                          "print(sum(a[::4096]))'";
  Running runs[2] = {StartCommand(cmd, Paged(swap)), StartCommand(cmd, Paged(swap))};
  // Both started and paged, and are alive together.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (Running& run : runs) {
    const std::string out = run.dir->path() + "/out";
    while (ReadAll(out).empty() && waitpid(run.pid, nullptr, WNOHANG) == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      usleep(20000);
    }
    EXPECT_EQ(ReadAll(out), "1\n") << ReadAll(run.dir->path() + "/err");
  }
  std::ofstream(go) << "";
  for (Running& run : runs) {
    RunResult r = FinishCommand(run);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "1\n8192\n") << r.err;
    ASSERT_TRUE(r.stats.count(1)) << "no pager in pid 1: " << r.stats_text;
  }
}

INSTANTIATE_TEST_SUITE_P(, SwapFileAnyStore, ::testing::Values("file", "nfs3"),
                         [](const auto& info) { return info.param; });

}  // namespace

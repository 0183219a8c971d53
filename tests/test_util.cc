#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace pager::testing {

void FillPage(void* page, uint64_t index, uint64_t version) {
  auto* w = static_cast<uint64_t*>(page);
  uint64_t x = index * 0x9E3779B97F4A7C15ull ^ (version + 1) * 0xC2B2AE3D27D4EB4Full;
  for (size_t i = 0; i < kPageSize / 8; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w[i] = x;
  }
}

bool CheckPage(const void* page, uint64_t index, uint64_t version) {
  alignas(8) unsigned char want[kPageSize];
  FillPage(want, index, version);
  return memcmp(page, want, kPageSize) == 0;
}

bool IsZeroPage(const void* page) {
  const auto* w = static_cast<const uint64_t*>(page);
  for (size_t i = 0; i < kPageSize / 8; i++) {
    if (w[i] != 0) return false;
  }
  return true;
}

unsigned char* TestPager::Map(size_t pages) {
  auto mem = pager->Map(pages * kPageSize);
  if (!mem.ok()) {
    fprintf(stderr, "Pager::Map: %s\n", mem.status().message().c_str());
    abort();
  }
  return static_cast<unsigned char*>(*mem);
}

Stats TestPager::SyncedStats() {
  pager->Sync();
  return pager->GetStats();
}

void FillPages(unsigned char* p, size_t pages, uint64_t version) {
  for (size_t i = 0; i < pages; i++) FillPage(p + i * kPageSize, i, version);
}

long FirstWrongPage(const unsigned char* p, size_t pages, uint64_t version) {
  for (size_t i = 0; i < pages; i++) {
    if (!CheckPage(p + i * kPageSize, i, version)) return static_cast<long>(i);
  }
  return -1;
}

Config TestConfig(uint64_t limit_pages) {
  Config c;
  c.memory_limit = limit_pages * kPageSize;
  c.reserve = 1 << 20;
  c.swap = "memory:";
  return c;
}

TestPager MakePager(uint64_t limit_pages, const std::string& mode, EvictionPolicy policy) {
  Config c = TestConfig(limit_pages);
  c.policy = policy;
  return MakePager(c, mode);
}

TestPager MakePager(Config c, const std::string& mode) {
  bool slow = false;
  for (size_t pos = 0; pos <= mode.size();) {
    size_t end = std::min(mode.find(',', pos), mode.size());
    std::string item = mode.substr(pos, end - pos);
    if (item == "slow") {
      slow = true;
    } else if (item == "encrypt") {
      c.encrypt = Config::Encrypt::kOn;
    } else if (item == "noprefetch") {
      c.prefetch_pages = 0;
    } else if (!item.empty()) {
      c.disable_features += (c.disable_features.empty() ? "" : ",") + item;
    }
    pos = end + 1;
  }
  auto store = std::make_unique<MemoryStore>();
  MemoryStore* raw = store.get();
  if (slow) raw->DelayCompletions(kSlowStoreUs);
  auto p = Pager::Create(c, std::move(store));
  if (!p.ok()) {
    fprintf(stderr, "Pager::Create: %s\n", p.status().message().c_str());
    abort();
  }
  return TestPager{std::move(*p), raw};
}

void Settle(Pager& p) {
  p.Sync();
  for (int i = 0; i < 500; i++) {
    Stats s = p.GetStats();
    if (s.resident_pages <= s.limit_pages) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

uint64_t RssAnon() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("RssAnon:", 0) == 0) return std::stoull(line.substr(8)) * 1024;
  }
  return 0;
}

void ExpectRssGrowthWithinLimitPlusReserve(uint64_t growth, uint64_t limit_bytes, const Stats& s) {
  const uint64_t slack = 6u << 20;
  const uint64_t bound = limit_bytes + s.reserve_bytes + slack;
  if (kRssIsMeaningful) {
    EXPECT_LE(growth, bound) << "RssAnon grew " << growth << " > " << bound;
  }
  ::testing::Test::RecordProperty("rss_growth", std::to_string(growth));
  ::testing::Test::RecordProperty("limit_plus_reserve", std::to_string(limit_bytes + s.reserve_bytes));
}

std::string ModeName(const std::string& mode) {
  if (mode == "slow,encrypt") return "SlowStoreEncrypted";
  return mode == "slow" ? "SlowStore" : "InlineStore";
}

// ---- Processes --------------------------------------------------------------

::testing::AssertionResult FinishesWithin(double seconds, const std::function<bool()>& fn) {
  pid_t pid = fork();
  if (pid == 0) _exit(fn() ? 0 : 1);
  if (pid < 0) return ::testing::AssertionFailure() << "fork: " << strerror(errno);
  // A pidfd becomes readable when the child exits: a wait with a deadline.
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  pollfd p = {pidfd, POLLIN, 0};
  int ready = pidfd >= 0 ? poll(&p, 1, static_cast<int>(seconds * 1000)) : 1;
  if (pidfd >= 0) close(pidfd);
  int st = 0;
  if (ready == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return ::testing::AssertionFailure() << "still running after " << seconds << "s (hung), killed";
  }
  waitpid(pid, &st, 0);
  if (WIFSIGNALED(st)) {
    return ::testing::AssertionFailure() << "killed by signal " << WTERMSIG(st) << " (" << strsignal(WTERMSIG(st))
                                         << ")";
  }
  if (WEXITSTATUS(st) != 0) return ::testing::AssertionFailure() << "failed (exit status " << WEXITSTATUS(st) << ")";
  return ::testing::AssertionSuccess();
}

FileCutter::FileCutter(const std::string& path) : fd_(open(path.c_str(), O_RDWR | O_CLOEXEC)) {
  char buf[4096];
  ssize_t n;
  while (fd_ >= 0 && (n = read(fd_, buf, sizeof buf)) > 0) image_.append(buf, static_cast<size_t>(n));
  if (fd_ < 0) return;
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      (void)!ftruncate(fd_, 0);
      (void)!pwrite(fd_, image_.data(), image_.size(), 0);
    }
  });
}

FileCutter::~FileCutter() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) close(fd_);
}

int NobodyUid() {
  passwd* pw = getpwnam("nobody");
  return pw != nullptr ? static_cast<int>(pw->pw_uid) : -1;
}

bool CanActAsNobody() { return geteuid() == 0 && NobodyUid() > 0; }

bool BecomeNobody() {
  passwd* pw = getpwnam("nobody");
  return pw != nullptr && setgroups(0, nullptr) == 0 && setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == 0 &&
         setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == 0;
}

std::string SwapFd(const Store& store) {
  const std::string target = store.Describe().substr(5);
  DIR* d = opendir("/proc/self/fd");
  std::string found;
  while (dirent* e = d != nullptr ? readdir(d) : nullptr) {
    const std::string fd = std::string("/proc/self/fd/") + e->d_name;
    char link[4096];
    ssize_t n = readlink(fd.c_str(), link, sizeof link - 1);
    if (n > 0 && std::string(link, static_cast<size_t>(n)) == target) found = fd;
  }
  if (d != nullptr) closedir(d);
  return found;
}

std::string OwnSwapFile(const std::string& dir) {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const std::string prefix = std::string("libpager-") + host + "-" + std::to_string(getpid()) + "-";
  for (auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) return e.path();
  }
  return "";
}

}  // namespace pager::testing

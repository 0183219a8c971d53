// The Store contract, run against the memory store and the local-file store,
// plus what only the file store promises: a private swap file named for this
// process, unlinked at once and kept from fork children, and clear errors
// for a bad directory.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pager/store.h"
#include "process_id.h"
#include "store/memory_store.h"
#include "swap_file.h"
#include "test_util.h"

namespace pager {
namespace {

// ---- helpers ----------------------------------------------------------------

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

// A page whose every word depends on (slot, version): a page from the wrong
// slot, a stale version or zeros all fail CheckPage.
void FillPage(std::byte* page, uint64_t slot, uint64_t version) {
  auto* w = reinterpret_cast<uint64_t*>(page);
  for (size_t i = 0; i < kPageSize / 8; i++) w[i] = Mix(slot * 0x10001 + version * 0x9E3779B97F4A7C15ull + i);
}

bool CheckPage(const std::byte* page, uint64_t slot, uint64_t version) {
  const auto* w = reinterpret_cast<const uint64_t*>(page);
  for (size_t i = 0; i < kPageSize / 8; i++) {
    if (w[i] != Mix(slot * 0x10001 + version * 0x9E3779B97F4A7C15ull + i)) return false;
  }
  return true;
}

// An op with its own buffer.
struct Io {
  StoreOp op;
  std::vector<std::byte> buf;

  Io(StoreOp::Kind kind, uint64_t slot, uint32_t pages, uint32_t id) : buf(uint64_t{pages} * kPageSize) {
    op.kind = kind;
    op.slot = slot;
    op.pages = pages;
    op.buf = buf.data();
    op.id = id;
    op.error = -1;  // a store that never sets it shows up as neither 0 nor an errno
  }
  std::byte* page(uint32_t i) { return buf.data() + uint64_t{i} * kPageSize; }
};

std::unique_ptr<Io> WriteIo(uint64_t slot, uint32_t pages, uint64_t version, uint32_t id = 0) {
  auto io = std::make_unique<Io>(StoreOp::Kind::kWrite, slot, pages, id);
  for (uint32_t i = 0; i < pages; i++) FillPage(io->page(i), slot + i, version);
  return io;
}

std::unique_ptr<Io> ReadIo(uint64_t slot, uint32_t pages, uint32_t id = 0) {
  auto io = std::make_unique<Io>(StoreOp::Kind::kRead, slot, pages, id);
  // Poison the buffer: a read that completes "successfully" without filling
  // it must not pass for one that did.
  memset(io->buf.data(), 0xA5, io->buf.size());
  return io;
}

// Collects completions from any thread.
class Collector : public StoreListener {
 public:
  void OnComplete(StoreOp* op) override {
    std::lock_guard<std::mutex> l(mu_);
    completions_[op]++;
    order_.push_back(op);
    cv_.notify_all();
  }
  void OnBackendState(BackendState state, const std::string& why) override {
    std::lock_guard<std::mutex> l(mu_);
    states_.emplace_back(state, why);
  }

  // Waits until `n` completions (duplicates included) have arrived.
  bool WaitForCount(size_t n, std::chrono::seconds timeout = std::chrono::seconds(30)) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, timeout, [&] { return order_.size() >= n; });
  }
  int CompletionsOf(const StoreOp* op) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = completions_.find(op);
    return it == completions_.end() ? 0 : it->second;
  }
  size_t total() {
    std::lock_guard<std::mutex> l(mu_);
    return order_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<const StoreOp*, int> completions_;
  std::vector<const StoreOp*> order_;
  std::vector<std::pair<BackendState, std::string>> states_;
};

// A fresh directory under /tmp, removed (with anything left in it) at the end.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/libpager-store-test-XXXXXX";
    if (mkdtemp(tmpl) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    if (path_.empty()) return;
    for (const std::string& f : Files()) unlink((path_ + "/" + f).c_str());
    rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  std::vector<std::string> Files() const {
    std::vector<std::string> out;
    DIR* d = opendir(path_.c_str());
    if (d == nullptr) return out;
    while (dirent* e = readdir(d)) {
      if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) out.push_back(e->d_name);
    }
    closedir(d);
    return out;
  }

 private:
  std::string path_;
};

// A tmpfs mounted on a fresh directory for the test; unmounted at the end.
class TmpfsMount {
 public:
  explicit TmpfsMount(const std::string& options, unsigned long flags = 0) {
    if (dir_.path().empty()) {
      error_ = "mkdtemp failed";
      return;
    }
    if (mount("tmpfs", dir_.path().c_str(), "tmpfs", flags, options.c_str()) != 0) {
      error_ = std::string("mount -t tmpfs -o ") + options + " " + dir_.path() + ": " + strerror(errno);
      return;
    }
    mounted_ = true;
  }
  ~TmpfsMount() {
    if (mounted_) umount2(dir_.path().c_str(), MNT_DETACH);
  }
  bool ok() const { return mounted_; }
  const std::string& error() const { return error_; }
  const std::string& path() const { return dir_.path(); }

 private:
  TempDir dir_;
  bool mounted_ = false;
  std::string error_;
};

// ---- the contract, for every store ------------------------------------------

class StoreContract : public ::testing::TestWithParam<const char*> {
 protected:
  bool IsFile() const { return std::string(GetParam()) == "file"; }

  // Opens and starts the store under test; false (with a failure) if it can't.
  void Open(uint64_t max_bytes = 0) {
    ASSERT_FALSE(dir_.path().empty()) << "mkdtemp: " << strerror(errno);
    auto s = OpenStore(IsFile() ? dir_.path() : "memory:", max_bytes, 0);
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(*s);
    Status st = store_->Start(&listener_);
    ASSERT_TRUE(st.ok()) << st.message();
  }
  void TearDown() override {
    if (store_) store_->Stop();
  }

  // Submits and waits for one op; returns its error.
  int Do(Io& io) {
    size_t before = listener_.total();
    store_->Submit(&io.op);
    EXPECT_TRUE(listener_.WaitForCount(before + 1)) << "op on slot " << io.op.slot << " never completed";
    return io.op.error;
  }

  TempDir dir_;
  Collector listener_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreContract, WriteThenReadReturnsEachPagesBytes) {
  Open();
  // Runs of different lengths, not in slot order, including a full-size one.
  const uint32_t max = store_->max_pages_per_op();
  struct Run {
    uint64_t slot;
    uint32_t pages;
  };
  const Run runs[] = {{40, 1}, {0, 8}, {8, 32}, {100, max}, {41, 3}, {1000, 17}};
  for (const Run& r : runs) {
    auto w = WriteIo(r.slot, r.pages, 1);
    ASSERT_EQ(Do(*w), 0) << "write of " << r.pages << " at " << r.slot << ": " << strerror(w->op.error);
  }
  // Read back in the same runs, and in different splits (single pages,
  // runs straddling two writes).
  for (const Run& r : runs) {
    auto rd = ReadIo(r.slot, r.pages);
    ASSERT_EQ(Do(*rd), 0) << "read of " << r.pages << " at " << r.slot;
    for (uint32_t i = 0; i < r.pages; i++) ASSERT_TRUE(CheckPage(rd->page(i), r.slot + i, 1)) << "slot " << r.slot + i;
  }
  auto straddle = ReadIo(4, 40);  // across the 0+8 and 8+32 runs
  ASSERT_EQ(Do(*straddle), 0);
  for (uint32_t i = 0; i < 40; i++) EXPECT_TRUE(CheckPage(straddle->page(i), 4 + i, 1)) << "slot " << 4 + i;
  auto single = ReadIo(1016, 1);
  ASSERT_EQ(Do(*single), 0);
  EXPECT_TRUE(CheckPage(single->page(0), 1016, 1));
}

TEST_P(StoreContract, OverwriteReturnsTheLatestBytes) {
  Open();
  auto w1 = WriteIo(10, 4, 1);
  ASSERT_EQ(Do(*w1), 0);
  auto w2 = WriteIo(11, 2, 2);  // the middle two pages, a new version
  ASSERT_EQ(Do(*w2), 0);
  auto rd = ReadIo(10, 4);
  ASSERT_EQ(Do(*rd), 0);
  EXPECT_TRUE(CheckPage(rd->page(0), 10, 1));
  EXPECT_TRUE(CheckPage(rd->page(1), 11, 2));
  EXPECT_TRUE(CheckPage(rd->page(2), 12, 2));
  EXPECT_TRUE(CheckPage(rd->page(3), 13, 1));
}

TEST_P(StoreContract, ReadPastTheEndIsEioNeverZeros) {
  Open();
  auto empty = ReadIo(0, 1);
  EXPECT_EQ(Do(*empty), EIO) << "read of a never-written store";
  auto w = WriteIo(0, 4, 1);
  ASSERT_EQ(Do(*w), 0);
  auto beyond = ReadIo(4, 1);
  EXPECT_EQ(Do(*beyond), EIO) << "read of the slot after the last written one";
  auto far = ReadIo(100000, 2);
  EXPECT_EQ(Do(*far), EIO) << "read far past the end";
  // A run that starts in written slots and runs off the end is a short read:
  // EIO for the whole op, not a silently zero tail.
  auto partial = ReadIo(2, 4);
  EXPECT_EQ(Do(*partial), EIO) << "run partly past the end";
}

TEST_P(StoreContract, WritePastMaxBytesIsEnospcAndKeepsEarlierData) {
  const uint64_t cap_pages = 16;
  Open(cap_pages * kPageSize);
  auto fill = WriteIo(0, cap_pages, 1);
  ASSERT_EQ(Do(*fill), 0) << "a write of exactly the cap must fit: " << strerror(fill->op.error);
  auto straddle = WriteIo(cap_pages - 1, 2, 2);  // last slot + one past the cap
  EXPECT_EQ(Do(*straddle), ENOSPC);
  auto past = WriteIo(cap_pages, 1, 2);
  EXPECT_EQ(Do(*past), ENOSPC);
  auto far = WriteIo(1 << 20, 1, 2);
  EXPECT_EQ(Do(*far), ENOSPC);
  // Nothing past the cap was written, and the refused straddling write did
  // not overwrite the last slot inside it.
  auto rd = ReadIo(0, cap_pages);
  ASSERT_EQ(Do(*rd), 0);
  for (uint32_t i = 0; i < cap_pages; i++) EXPECT_TRUE(CheckPage(rd->page(i), i, 1)) << "slot " << i;
  auto beyond = ReadIo(cap_pages, 1);
  EXPECT_EQ(Do(*beyond), EIO) << "a refused write left data past the cap";
}

TEST_P(StoreContract, ManyConcurrentOpsCompleteExactlyOnce) {
  Open();
  constexpr int kThreads = 4, kOpsPerThread = 400;
  // Each thread owns a stretch of slots: writes, then reads of what it wrote.
  std::vector<std::vector<std::unique_ptr<Io>>> ios(kThreads);
  for (int t = 0; t < kThreads; t++) {
    for (int i = 0; i < kOpsPerThread; i++) {
      uint64_t slot = uint64_t(t) * 2000 + uint64_t(i) * 4;
      uint32_t id = static_cast<uint32_t>(t * kOpsPerThread + i);
      ios[t].push_back(WriteIo(slot, 1 + i % 4, 7, id));
    }
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (auto& io : ios[t]) store_->Submit(&io->op);
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(listener_.WaitForCount(kThreads * kOpsPerThread)) << "only " << listener_.total() << " writes completed";

  std::vector<std::vector<std::unique_ptr<Io>>> reads(kThreads);
  for (int t = 0; t < kThreads; t++) {
    for (auto& w : ios[t]) reads[t].push_back(ReadIo(w->op.slot, w->op.pages, w->op.id));
  }
  threads.clear();
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (auto& io : reads[t]) store_->Submit(&io->op);
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(listener_.WaitForCount(2 * kThreads * kOpsPerThread)) << "only " << listener_.total() << " ops completed";
  // Stop completes and joins everything: a duplicate completion would have
  // arrived by now.
  store_->Stop();
  EXPECT_EQ(listener_.total(), size_t{2} * kThreads * kOpsPerThread);
  for (int t = 0; t < kThreads; t++) {
    for (int i = 0; i < kOpsPerThread; i++) {
      Io& w = *ios[t][i];
      Io& r = *reads[t][i];
      ASSERT_EQ(listener_.CompletionsOf(&w.op), 1) << "write " << w.op.id;
      ASSERT_EQ(listener_.CompletionsOf(&r.op), 1) << "read " << r.op.id;
      ASSERT_EQ(w.op.error, 0) << "write " << w.op.id;
      ASSERT_EQ(r.op.error, 0) << "read " << r.op.id;
      for (uint32_t p = 0; p < r.op.pages; p++) {
        ASSERT_TRUE(CheckPage(r.page(p), r.op.slot + p, 7)) << "slot " << r.op.slot + p;
      }
    }
  }
}

TEST_P(StoreContract, ReadsQueuedBehindManyWritesComplete) {
  // Priority can't be asserted without timing; what must hold is that reads
  // submitted amid a flood of large writes all complete, with their data.
  Open();
  constexpr uint64_t kReadSlots = 64;
  auto base = WriteIo(0, kReadSlots, 1);
  ASSERT_EQ(Do(*base), 0);
  const size_t before = listener_.total();
  std::vector<std::unique_ptr<Io>> writes, reads;
  for (uint32_t i = 0; i < 300; i++) {
    writes.push_back(WriteIo(1000 + uint64_t{i} * 32, 32, 2, i));
    store_->Submit(&writes.back()->op);
    if (i % 5 == 0) {
      reads.push_back(ReadIo(i % kReadSlots, 1, 100000 + i));
      store_->Submit(&reads.back()->op);
    }
  }
  ASSERT_TRUE(listener_.WaitForCount(before + writes.size() + reads.size()))
      << listener_.total() - before << " of " << writes.size() + reads.size() << " completed";
  for (auto& r : reads) {
    EXPECT_EQ(listener_.CompletionsOf(&r->op), 1);
    ASSERT_EQ(r->op.error, 0);
    EXPECT_TRUE(CheckPage(r->page(0), r->op.slot, 1)) << "slot " << r->op.slot;
  }
  for (auto& w : writes) ASSERT_EQ(w->op.error, 0);
}

TEST_P(StoreContract, StopCompletesEverythingInFlight) {
  Open();
  std::vector<std::unique_ptr<Io>> ios;
  for (uint32_t i = 0; i < 200; i++) {
    ios.push_back(WriteIo(uint64_t{i} * 16, 16, 3, i));
    store_->Submit(&ios.back()->op);
  }
  store_->Stop();
  // No waiting: Stop returns only once every op has completed.
  EXPECT_EQ(listener_.total(), ios.size());
  for (auto& io : ios) EXPECT_EQ(listener_.CompletionsOf(&io->op), 1) << "op " << io->op.id;
  store_.reset();
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreContract, ::testing::Values("memory", "file"),
                         [](const ::testing::TestParamInfo<const char*>& i) { return std::string(i.param); });

// ---- the memory store's test hooks -----------------------------------------

TEST(MemoryStore, FailWritesWithFailsWritesUntilCleared) {
  Collector c;
  MemoryStore s;
  ASSERT_TRUE(s.Start(&c).ok());
  s.FailWritesWith(EROFS);
  auto w = WriteIo(0, 2, 1);
  s.Submit(&w->op);
  EXPECT_EQ(w->op.error, EROFS);
  auto rd = ReadIo(0, 1);
  s.Submit(&rd->op);
  EXPECT_EQ(rd->op.error, EIO) << "a refused write must not have stored anything";
  s.FailWritesWith(0);
  auto w2 = WriteIo(0, 2, 1);
  s.Submit(&w2->op);
  EXPECT_EQ(w2->op.error, 0);
  EXPECT_EQ(s.slots_allocated(), 2u);
  s.Stop();
}

TEST(MemoryStore, CorruptChangesOnlyThatSlot) {
  Collector c;
  MemoryStore s;
  ASSERT_TRUE(s.Start(&c).ok());
  auto w = WriteIo(0, 3, 1);
  s.Submit(&w->op);
  ASSERT_EQ(w->op.error, 0);
  s.Corrupt(1);
  auto rd = ReadIo(0, 3);
  s.Submit(&rd->op);
  ASSERT_EQ(rd->op.error, 0);
  EXPECT_TRUE(CheckPage(rd->page(0), 0, 1));
  EXPECT_FALSE(CheckPage(rd->page(1), 1, 1));
  EXPECT_TRUE(CheckPage(rd->page(2), 2, 1));
  s.Stop();
}

// ---- the file store's own promises ------------------------------------------

class FileStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()) << "mkdtemp: " << strerror(errno); }
  TempDir dir_;
  Collector listener_;
};

TEST_F(FileStoreTest, SwapFileIsPrivateOursByNameAndUnlinkedAtOnce) {
  auto s = OpenStore(dir_.path(), 0, 0);
  ASSERT_TRUE(s.ok()) << s.status().message();
  // A permissive umask: the 0600 must come from the store, not the umask.
  mode_t old = umask(0);
  Status st = (*s)->Start(&listener_);
  umask(old);
  ASSERT_TRUE(st.ok()) << st.message();

  // Nothing in the directory: a crash or SIGKILL can leave nothing behind.
  EXPECT_TRUE(dir_.Files().empty());
  EXPECT_EQ((*s)->swap_file_name(), "") << "a local file needs no reaper";
  const std::string fd = testing::SwapFd(**s);
  ASSERT_NE(fd, "") << "no fd of this process is " << (*s)->Describe();
  struct stat sb;
  ASSERT_EQ(stat(fd.c_str(), &sb), 0) << fd;
  EXPECT_TRUE(S_ISREG(sb.st_mode));
  EXPECT_EQ(sb.st_nlink, 0u);
  EXPECT_EQ(sb.st_mode & 07777, 0600u) << "swap file mode " << std::oct << (sb.st_mode & 07777);
  // Its name was this process's (swap_file.h).
  const std::string path = (*s)->Describe().substr(5, (*s)->Describe().size() - 5 - strlen(" (deleted)"));
  SwapFileName name;
  ASSERT_TRUE(ParseSwapFileName(path.substr(path.rfind('/') + 1), &name)) << path;
  EXPECT_EQ(path.substr(0, path.rfind('/')), dir_.path());
  EXPECT_EQ(name.pid, getpid());
  EXPECT_EQ(name.host, SwapFileHost());
  EXPECT_EQ(name.start_time, ThisProcess().start_time);

  // Data goes to that file.
  auto w = WriteIo(3, 1, 1);
  (*s)->Submit(&w->op);
  ASSERT_TRUE(listener_.WaitForCount(1));
  ASSERT_EQ(w->op.error, 0);
  ASSERT_EQ(stat(fd.c_str(), &sb), 0);
  EXPECT_GE(static_cast<uint64_t>(sb.st_size), 4 * kPageSize);

  (*s)->Stop();
  EXPECT_EQ(testing::SwapFd(**s), "") << "Stop() left the swap file open";
}

// A fork child must not keep its parent's swap file (and its blocks) alive:
// its copy of the fd refers to /dev/null at once.
TEST_F(FileStoreTest, ForkChildLetsGoOfTheSwapFile) {
  auto s = OpenStore(dir_.path(), 0, 0);
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_TRUE((*s)->Start(&listener_).ok());
  const std::string fd = testing::SwapFd(**s);
  ASSERT_NE(fd, "");
  pid_t child = fork();
  if (child == 0) {
    char link[4096];
    ssize_t n = readlink(fd.c_str(), link, sizeof link - 1);
    _exit(n > 0 && std::string(link, n) == "/dev/null" ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child still holds the swap file";
  EXPECT_EQ(testing::SwapFd(**s), fd) << "the parent lost its swap file";
  (*s)->Stop();
}

TEST_F(FileStoreTest, TwoStoresInOneDirectoryUseDistinctFiles) {
  Collector la, lb;  // outlive the stores
  auto a = OpenStore(dir_.path(), 0, 0);
  auto b = OpenStore("file://" + dir_.path(), 0, 0);
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(b.ok()) << b.status().message();
  ASSERT_TRUE((*a)->Start(&la).ok());
  Status sb = (*b)->Start(&lb);
  ASSERT_TRUE(sb.ok()) << sb.message();
  EXPECT_NE((*a)->Describe(), (*b)->Describe());
  // The same slot in each holds its own data.
  auto wa = WriteIo(0, 1, 1);
  auto wb = WriteIo(0, 1, 2);
  (*a)->Submit(&wa->op);
  (*b)->Submit(&wb->op);
  ASSERT_TRUE(la.WaitForCount(1));
  ASSERT_TRUE(lb.WaitForCount(1));
  auto ra = ReadIo(0, 1);
  (*a)->Submit(&ra->op);
  ASSERT_TRUE(la.WaitForCount(2));
  EXPECT_EQ(ra->op.error, 0);
  EXPECT_TRUE(CheckPage(ra->page(0), 0, 1));
  (*a)->Stop();
  (*b)->Stop();
}

// Holds every completion inside OnComplete until given a permit, so the
// test decides when each of the store's workers may take its next op.
class GatedCollector : public StoreListener {
 public:
  void OnComplete(StoreOp* op) override {
    std::unique_lock<std::mutex> l(mu_);
    arrived_.push_back(op);
    cv_.notify_all();
    cv_.wait(l, [&] { return open_ || permits_ > 0; });
    if (!open_) permits_--;
  }
  void OnBackendState(BackendState, const std::string&) override {}

  bool WaitForArrivals(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, timeout, [&] { return arrived_.size() >= n; });
  }
  void Permit(int n) {
    std::lock_guard<std::mutex> l(mu_);
    permits_ += n;
    cv_.notify_all();
  }
  void Open() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = true;
    cv_.notify_all();
  }
  std::vector<const StoreOp*> arrived() {
    std::lock_guard<std::mutex> l(mu_);
    return arrived_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<const StoreOp*> arrived_;
  int permits_ = 0;
  bool open_ = false;
};

TEST_F(FileStoreTest, ReadIsTakenBeforeQueuedWrites) {
  // No timing: both workers are parked in the listener, writes and then a
  // read are queued, and one worker is let go. The next op it takes must be
  // the read, though the writes were queued first.
  GatedCollector gate;
  auto s = OpenStore(dir_.path(), 0, 0);
  ASSERT_TRUE(s.ok()) << s.status().message();
  // On any early return, let the workers go before the store's destructor
  // joins them.
  struct OpenOnExit {
    GatedCollector& g;
    ~OpenOnExit() { g.Open(); }
  } open_on_exit{gate};
  ASSERT_TRUE((*s)->Start(&gate).ok());
  auto seed = WriteIo(0, 1, 1);  // so the read has something to read
  auto b1 = WriteIo(10, 1, 1), b2 = WriteIo(11, 1, 1);
  (*s)->Submit(&seed->op);
  ASSERT_TRUE(gate.WaitForArrivals(1, std::chrono::seconds(30)));
  gate.Permit(1);
  (*s)->Submit(&b1->op);
  (*s)->Submit(&b2->op);
  ASSERT_TRUE(gate.WaitForArrivals(3, std::chrono::seconds(30))) << "the blocking writes never completed";
  // Both workers are now parked. A third op must stay queued: the test
  // relies on the file store's two workers (file_store.cc).
  std::vector<std::unique_ptr<Io>> writes;
  for (uint32_t i = 0; i < 20; i++) {
    writes.push_back(WriteIo(100 + i * 8, 8, 2, i));
    (*s)->Submit(&writes.back()->op);
  }
  ASSERT_FALSE(gate.WaitForArrivals(4, std::chrono::milliseconds(300)))
      << "an op completed while both workers were parked: the store has more than two workers";
  auto rd = ReadIo(0, 1, 999);
  (*s)->Submit(&rd->op);
  gate.Permit(1);  // one worker goes back to the queues
  ASSERT_TRUE(gate.WaitForArrivals(4, std::chrono::seconds(30)));
  EXPECT_EQ(gate.arrived()[3], &rd->op) << "a queued write was taken before the read";
  gate.Open();
  (*s)->Stop();
  EXPECT_EQ(gate.arrived().size(), 4u + writes.size());
  EXPECT_EQ(rd->op.error, 0);
  EXPECT_TRUE(CheckPage(rd->page(0), 0, 1));
}

TEST_F(FileStoreTest, NonexistentDirectoryIsANamedError) {
  const std::string missing = dir_.path() + "/no/such/dir";
  auto s = OpenStore(missing, 0, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(missing), std::string::npos) << s.status().message();
  EXPECT_NE(s.status().message().find(strerror(ENOENT)), std::string::npos) << s.status().message();
}

TEST_F(FileStoreTest, FileInPlaceOfDirectoryIsANamedError) {
  const std::string file = dir_.path() + "/plain-file";
  FILE* f = fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  auto s = OpenStore(file, 0, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(file), std::string::npos) << s.status().message();
}

TEST_F(FileStoreTest, UnwritableDirectoryIsANamedError) {
  // Root ignores mode bits, so unwritable here means a read-only mount.
  TmpfsMount ro("size=1m", MS_RDONLY);
  if (!ro.ok()) GTEST_SKIP() << "cannot mount a read-only tmpfs (" << ro.error() << ")";
  auto s = OpenStore(ro.path(), 0, 0);
  std::string message;
  if (s.ok()) {
    // Refusing at Start is as good as refusing at OpenStore, if it names the directory.
    Status st = (*s)->Start(&listener_);
    ASSERT_FALSE(st.ok()) << "a swap file was created on a read-only mount";
    message = st.message();
  } else {
    message = s.status().message();
  }
  EXPECT_NE(message.find(ro.path()), std::string::npos) << message;
}

TEST_F(FileStoreTest, FullFilesystemFailsTheWriteWithEnospc) {
  TmpfsMount small("size=1m,mode=0700");
  if (!small.ok()) GTEST_SKIP() << "cannot mount a 1 MiB tmpfs (" << small.error() << ")";
  auto s = OpenStore(small.path(), 0, 0);  // no cap of our own: the filesystem fills
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_TRUE((*s)->Start(&listener_).ok());
  // 1 MiB is 256 pages; write up to twice that, one page per op.
  std::vector<std::unique_ptr<Io>> ios;
  int first_failure = -1;
  for (uint32_t i = 0; i < 512; i++) {
    ios.push_back(WriteIo(i, 1, 1, i));
    (*s)->Submit(&ios.back()->op);
    ASSERT_TRUE(listener_.WaitForCount(i + 1)) << "write " << i << " never completed (retried forever?)";
    if (ios.back()->op.error != 0) {
      first_failure = static_cast<int>(i);
      EXPECT_EQ(ios.back()->op.error, ENOSPC) << strerror(ios.back()->op.error);
      break;
    }
  }
  ASSERT_GT(first_failure, 0) << "1 MiB tmpfs took 2 MiB of writes";
  // Everything written before the failure still reads back.
  size_t done = ios.size();
  for (uint32_t slot = 0; slot < static_cast<uint32_t>(first_failure);) {
    uint32_t n = std::min(static_cast<uint32_t>(first_failure) - slot, (*s)->max_pages_per_op());
    auto rd = ReadIo(slot, n);
    (*s)->Submit(&rd->op);
    ASSERT_TRUE(listener_.WaitForCount(++done));
    ASSERT_EQ(rd->op.error, 0) << strerror(rd->op.error);
    for (uint32_t i = 0; i < n; i++) EXPECT_TRUE(CheckPage(rd->page(i), slot + i, 1)) << "slot " << slot + i;
    slot += n;
  }
  (*s)->Stop();
}

}  // namespace
}  // namespace pager

// The NFS store against a real nfs-ganesha on loopback (tests/nfs_server.h):
// every byte written is read back and compared; failures are real SIGKILLs
// and SIGSTOPs of the server.
#include "store/nfs_store.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "nfs_server.h"
#include "process_id.h"
#include "swap_file.h"

namespace pager {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using testing::FreePort;
using testing::NfsServer;

// Completions and backend states, in the order the store reported them.
class Recorder : public StoreListener {
 public:
  void OnComplete(StoreOp* op) override {
    std::lock_guard<std::mutex> l(mu_);
    order_.push_back(op->id);
    done_++;
    cv_.notify_all();
  }
  void OnBackendState(BackendState s, const std::string&) override {
    std::lock_guard<std::mutex> l(mu_);
    states_.push_back(s);
  }
  // Waits until `n` ops completed in total.
  bool WaitDone(size_t n, std::chrono::milliseconds timeout = 60s) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, timeout, [&] { return done_ >= n; });
  }
  size_t done() {
    std::lock_guard<std::mutex> l(mu_);
    return done_;
  }
  std::vector<uint32_t> order() {
    std::lock_guard<std::mutex> l(mu_);
    return order_;
  }
  std::vector<BackendState> states() {
    std::lock_guard<std::mutex> l(mu_);
    return states_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t done_ = 0;
  std::vector<uint32_t> order_;
  std::vector<BackendState> states_;
};

// A pattern no other slot or generation shares, so a misplaced, stale or
// zero page is caught.
void Fill(std::byte* p, uint64_t slot, uint64_t gen) {
  auto* w = reinterpret_cast<uint64_t*>(p);
  for (size_t i = 0; i < kPageSize / 8; i++) w[i] = (slot * 1000003 + i) ^ (gen << 48) ^ 0x9e3779b97f4a7c15ull;
}

// The first wrong slot in `pages` pages read from `slot`, or -1.
int64_t FirstBadSlot(const std::byte* p, uint64_t slot, uint32_t pages, uint64_t gen) {
  std::vector<std::byte> want(kPageSize);
  for (uint32_t i = 0; i < pages; i++) {
    Fill(want.data(), slot + i, gen);
    if (std::memcmp(p + i * kPageSize, want.data(), kPageSize) != 0) return static_cast<int64_t>(slot + i);
  }
  return -1;
}

// Ops with their buffers, laid out as runs of consecutive slots.
struct Batch {
  std::vector<StoreOp> ops;
  std::vector<std::vector<std::byte>> bufs;

  // Runs of the given lengths, back to back from slot `first`.
  static Batch Runs(StoreOp::Kind kind, uint64_t first, const std::vector<uint32_t>& lengths, uint64_t gen) {
    Batch b;
    b.ops.resize(lengths.size());
    b.bufs.resize(lengths.size());
    uint64_t slot = first;
    for (size_t i = 0; i < lengths.size(); i++) {
      b.bufs[i].assign(size_t{lengths[i]} * kPageSize, std::byte{0});
      StoreOp& op = b.ops[i];
      op.kind = kind;
      op.slot = slot;
      op.pages = lengths[i];
      op.buf = b.bufs[i].data();
      op.id = static_cast<uint32_t>(i);
      if (kind == StoreOp::Kind::kWrite)
        for (uint32_t p = 0; p < lengths[i]; p++) Fill(op.buf + p * kPageSize, slot + p, gen);
      slot += lengths[i];
    }
    return b;
  }
  void SubmitAll(Store* s) {
    for (StoreOp& op : ops) s->Submit(&op);
  }
  // Every op succeeded and, for reads, holds generation `gen`'s pattern.
  void ExpectOk(uint64_t gen) {
    for (StoreOp& op : ops) {
      ASSERT_EQ(op.error, 0) << "op at slot " << op.slot << ": " << strerror(op.error);
      if (op.kind == StoreOp::Kind::kRead) {
        ASSERT_EQ(FirstBadSlot(op.buf, op.slot, op.pages, gen), -1) << "op at slot " << op.slot;
      }
    }
  }
};

std::vector<uint32_t> Repeat(uint32_t len, size_t n) { return std::vector<uint32_t>(n, len); }

class NfsStoreTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.Start()) << server_.error(); }

  // The URL options of this instance: defaults (v3, FILE_SYNC), v3 with
  // UNSTABLE + COMMIT, or v4.
  bool v4() const { return std::string(GetParam()) == "version=4"; }
  std::string Url() const { return server_.url("", GetParam()); }

  std::unique_ptr<Store> Open(const std::string& url, uint32_t timeout_ms = 10000, uint64_t max_bytes = 0) {
    auto s = OpenNfsStore(url, max_bytes, timeout_ms);
    EXPECT_TRUE(s.ok()) << s.status().message();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::unique_ptr<Store> StartStore(Recorder* rec, const std::string& extra = "") {
    std::string url = Url();
    if (!extra.empty()) url += "&" + extra;
    auto s = Open(url);
    if (!s) return nullptr;
    Status st = s->Start(rec);
    EXPECT_TRUE(st.ok()) << st.message();
    return st.ok() ? std::move(s) : nullptr;
  }
  std::vector<std::string> SwapFiles() const {
    std::vector<std::string> v;
    for (auto& e : std::filesystem::directory_iterator(server_.export_dir()))
      if (e.path().extension() == ".swap") v.push_back(e.path().string());
    return v;
  }

  NfsServer server_;
};

INSTANTIATE_TEST_SUITE_P(Options, NfsStoreTest, ::testing::Values("", "stable=commit&conns=1", "version=4"),
                         [](const auto& info) {
                           std::string p = info.param;
                           return p.empty() ? std::string("v3_filesync") : p == "version=4" ? "v4" : "v3_commit";
                         });

TEST_P(NfsStoreTest, RunsOfEverySizeReadBackByteForByte) {
  Recorder rec;
  auto store = StartStore(&rec);
  ASSERT_TRUE(store);
  // 300 pages is past the server's 1 MiB READ/WRITE maximum (and far past
  // libnfs 4.0's 3944-byte v4 WRITE limit): the store must split it.
  const std::vector<uint32_t> lengths = {1, 2, 3, 7, 16, 64, 255, 256, 300, 1};
  Batch w = Batch::Runs(StoreOp::Kind::kWrite, 5, lengths, 1);
  w.SubmitAll(store.get());
  ASSERT_TRUE(rec.WaitDone(w.ops.size()));
  w.ExpectOk(1);
  Batch r = Batch::Runs(StoreOp::Kind::kRead, 5, lengths, 1);
  r.SubmitAll(store.get());
  ASSERT_TRUE(rec.WaitDone(w.ops.size() + r.ops.size()));
  r.ExpectOk(1);
  store->Stop();
}

TEST_P(NfsStoreTest, ManyOpsInFlightFromManyThreads) {
  Recorder rec;
  auto store = StartStore(&rec, "conns=2");
  ASSERT_TRUE(store);
  constexpr int kThreads = 4, kPerThread = 128;
  std::vector<Batch> w(kThreads), r(kThreads);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++) {
    w[t] = Batch::Runs(StoreOp::Kind::kWrite, t * kPerThread * 2, Repeat(2, kPerThread), 7);
    ts.emplace_back([&, t] { w[t].SubmitAll(store.get()); });
  }
  for (auto& t : ts) t.join();
  ASSERT_TRUE(rec.WaitDone(kThreads * kPerThread));
  for (auto& b : w) b.ExpectOk(7);
  ts.clear();
  for (int t = 0; t < kThreads; t++) {
    r[t] = Batch::Runs(StoreOp::Kind::kRead, t * kPerThread * 2, Repeat(2, kPerThread), 7);
    ts.emplace_back([&, t] { r[t].SubmitAll(store.get()); });
  }
  for (auto& t : ts) t.join();
  ASSERT_TRUE(rec.WaitDone(2 * kThreads * kPerThread));
  for (auto& b : r) b.ExpectOk(7);
  store->Stop();
}

TEST_P(NfsStoreTest, ReadIsServedBeforeQueuedWriteBack) {
  Recorder rec;
  auto store = StartStore(&rec);
  ASSERT_TRUE(store);
  Batch first = Batch::Runs(StoreOp::Kind::kWrite, 0, {1}, 3);
  first.SubmitAll(store.get());
  ASSERT_TRUE(rec.WaitDone(1));
  first.ExpectOk(3);
  // A long write-back queue (64 MiB on v3; v4's 3944-byte WRITEs are ~40x
  // slower, so less there), then one page-in.
  const size_t n = !v4() ? 64 : 8;
  Batch big = Batch::Runs(StoreOp::Kind::kWrite, 1, Repeat(256, n), 3);
  for (size_t i = 0; i < n; i++) big.ops[i].id = static_cast<uint32_t>(100 + i);
  big.SubmitAll(store.get());
  Batch read = Batch::Runs(StoreOp::Kind::kRead, 0, {1}, 3);
  read.ops[0].id = 1;
  read.SubmitAll(store.get());
  ASSERT_TRUE(rec.WaitDone(2 + n));
  read.ExpectOk(3);
  big.ExpectOk(3);
  auto order = rec.order();
  size_t read_pos = std::find(order.begin(), order.end(), 1u) - order.begin();
  // FIFO would put the read last; with priority it overtakes all but the
  // few writes already on the wire.
  EXPECT_LT(read_pos, 1 + n / 2) << "the page-in waited behind " << read_pos - 1 << " of " << n << " writes";
  store->Stop();
}

TEST_P(NfsStoreTest, SwapFileIsPrivateOursByNameAndRemovedAtStop) {
  Recorder rec;
  auto store = StartStore(&rec);
  ASSERT_TRUE(store);
  auto files = SwapFiles();
  ASSERT_EQ(files.size(), 1u);
  const std::string name = std::filesystem::path(files[0]).filename();
  SwapFileName parsed;
  ASSERT_TRUE(ParseSwapFileName(name, &parsed)) << name;
  EXPECT_EQ(parsed.host, SwapFileHost());
  EXPECT_EQ(parsed.pid, getpid());
  EXPECT_EQ(parsed.start_time, ThisProcess().start_time);
  EXPECT_EQ(store->swap_file_name(), name) << "the reaper would be told another name";
  struct stat st;
  ASSERT_EQ(stat(files[0].c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_NE(store->Describe().find(name), std::string::npos) << store->Describe();
  // A second store in the same process gets its own file.
  Recorder rec2;
  auto store2 = StartStore(&rec2);
  ASSERT_TRUE(store2);
  EXPECT_EQ(SwapFiles().size(), 2u);
  store2->Stop();
  store->Stop();
  EXPECT_TRUE(SwapFiles().empty());
}

// Issue 9 (6): the server comes back without the swap file. Every op in
// flight and every later one completes with EIO, the state says paused,
// and nothing crashes (this used to poll a torn-down context: SIGSEGV).
TEST_P(NfsStoreTest, SwapFileGoneAtReconnectFailsEveryOpWithEio) {
  Recorder rec;
  auto store = StartStore(&rec);
  ASSERT_TRUE(store);
  Batch before = Batch::Runs(StoreOp::Kind::kWrite, 0, Repeat(4, 8), 1);
  before.SubmitAll(store.get());
  ASSERT_TRUE(rec.WaitDone(8));
  before.ExpectOk(1);
  server_.Kill();
  Batch writes = Batch::Runs(StoreOp::Kind::kWrite, 100, Repeat(4, 16), 2);
  Batch reads = Batch::Runs(StoreOp::Kind::kRead, 0, Repeat(4, 8), 1);
  writes.SubmitAll(store.get());
  reads.SubmitAll(store.get());
  auto files = SwapFiles();
  ASSERT_EQ(files.size(), 1u);
  ASSERT_EQ(unlink(files[0].c_str()), 0);
  ASSERT_TRUE(server_.Restart()) << server_.error();
  ASSERT_TRUE(rec.WaitDone(8 + 16 + 8)) << rec.done() << " of 32 ops completed";
  for (const Batch* b : {&writes, &reads}) {
    for (const StoreOp& op : b->ops) EXPECT_EQ(op.error, EIO) << "op at slot " << op.slot;
  }
  Batch later = Batch::Runs(StoreOp::Kind::kRead, 0, Repeat(1, 4), 1);
  later.SubmitAll(store.get());
  ASSERT_TRUE(rec.WaitDone(32 + 4, 5s));
  for (const StoreOp& op : later.ops) EXPECT_EQ(op.error, EIO);
  auto states = rec.states();
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.front(), BackendState::kReconnecting);
  EXPECT_EQ(states.back(), BackendState::kPaused);
  store->Stop();
  EXPECT_TRUE(SwapFiles().empty());
}

// gc on another host judges an NFS swap file by its mtime: a connected
// store keeps it fresh, on v4 without disturbing its open file.
TEST_P(NfsStoreTest, ConnectedStoreKeepsItsFilesMtimeFresh) {
  nfs::SetTouchIntervalForTesting(200ms);
  Recorder rec;
  auto store = StartStore(&rec);
  nfs::SetTouchIntervalForTesting(60s);
  ASSERT_TRUE(store);
  auto files = SwapFiles();
  ASSERT_EQ(files.size(), 1u);
  const time_t hours_ago = time(nullptr) - 7200;
  const timeval old[2] = {{hours_ago, 0}, {hours_ago, 0}};
  ASSERT_EQ(utimes(files[0].c_str(), old), 0);
  struct stat st;
  const auto deadline = Clock::now() + 10s;
  do {
    std::this_thread::sleep_for(50ms);
    ASSERT_EQ(stat(files[0].c_str(), &st), 0);
  } while (st.st_mtime < time(nullptr) - 60 && Clock::now() < deadline);
  EXPECT_GE(st.st_mtime, time(nullptr) - 60) << "the store never touched its file";
  // Touched many times over by now; the file still serves.
  std::this_thread::sleep_for(1s);
  Batch w = Batch::Runs(StoreOp::Kind::kWrite, 0, {8}, 4);
  w.SubmitAll(store.get());
  ASSERT_TRUE(rec.WaitDone(1));
  w.ExpectOk(4);
  Batch r = Batch::Runs(StoreOp::Kind::kRead, 0, {8}, 4);
  r.SubmitAll(store.get());
  ASSERT_TRUE(rec.WaitDone(2));
  r.ExpectOk(4);
  EXPECT_TRUE(rec.states().empty()) << "the touch broke the connection";
  store->Stop();
}

TEST_P(NfsStoreTest, ReadPastTruncatedEndIsEioNotZeros) {
  Recorder rec;
  auto store = StartStore(&rec);
  ASSERT_TRUE(store);
  Batch w = Batch::Runs(StoreOp::Kind::kWrite, 0, {16}, 5);
  w.SubmitAll(store.get());
  ASSERT_TRUE(rec.WaitDone(1));
  w.ExpectOk(5);
  auto files = SwapFiles();
  ASSERT_EQ(files.size(), 1u);
  ASSERT_EQ(truncate(files[0].c_str(), 4 * kPageSize), 0);  // as a damaged server would
  Batch ok = Batch::Runs(StoreOp::Kind::kRead, 0, {4}, 5);
  Batch cut = Batch::Runs(StoreOp::Kind::kRead, 2, {6}, 5);  // straddles the new end
  Batch past = Batch::Runs(StoreOp::Kind::kRead, 10, {1}, 5);
  ok.SubmitAll(store.get());
  cut.SubmitAll(store.get());
  past.SubmitAll(store.get());
  ASSERT_TRUE(rec.WaitDone(4));
  ok.ExpectOk(5);
  EXPECT_EQ(cut.ops[0].error, EIO);
  EXPECT_EQ(past.ops[0].error, EIO);
  store->Stop();
}

TEST_P(NfsStoreTest, WritesPastMaxBytesFailWithEnospc) {
  Recorder rec;
  auto s = Open(Url(), 10000, 8 * kPageSize);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->Start(&rec).ok());
  Batch w = Batch::Runs(StoreOp::Kind::kWrite, 6, {2, 1}, 1);
  w.SubmitAll(s.get());
  ASSERT_TRUE(rec.WaitDone(2));
  EXPECT_EQ(w.ops[0].error, 0);
  EXPECT_EQ(w.ops[1].error, ENOSPC);
  s->Stop();
}

// SIGKILL mid-run, restart on the same port: the store reconnects, reopens
// its file, resends what was in flight; nothing fails and every byte is there.
TEST_P(NfsStoreTest, ServerKilledMidRunAndRestartedLosesNothing) {
  Recorder rec;
  auto store = StartStore(&rec);
  ASSERT_TRUE(store);
  const size_t n = !v4() ? 1000 : 300;
  Batch w = Batch::Runs(StoreOp::Kind::kWrite, 0, Repeat(16, n), 9);
  w.SubmitAll(store.get());
  while (rec.done() < 5) std::this_thread::sleep_for(100us);
  ::kill(server_.pid(), SIGKILL);
  const size_t at_kill = rec.done();
  server_.Kill();  // waits until it is gone
  std::this_thread::sleep_for(1500ms);
  ASSERT_TRUE(server_.Restart()) << server_.error();
  ASSERT_TRUE(rec.WaitDone(n, 120s)) << rec.done() << " of " << n;
  w.ExpectOk(9);
  EXPECT_LT(at_kill, n) << "the kill came too late to test anything";
  Batch r = Batch::Runs(StoreOp::Kind::kRead, 0, Repeat(16, n), 9);
  r.SubmitAll(store.get());
  ASSERT_TRUE(rec.WaitDone(2 * n, 120s));
  r.ExpectOk(9);
  auto states = rec.states();
  ASSERT_GE(states.size(), 2u);
  EXPECT_EQ(states.front(), BackendState::kReconnecting);
  EXPECT_EQ(states.back(), BackendState::kOk);
  store->Stop();
  EXPECT_TRUE(SwapFiles().empty());
}

TEST_P(NfsStoreTest, ServerStoppedTenSecondsThenContinued) {
  Recorder rec;
  auto store = StartStore(&rec);
  ASSERT_TRUE(store);
  const size_t n = !v4() ? 200 : 40;
  Batch w = Batch::Runs(StoreOp::Kind::kWrite, 0, Repeat(8, n), 11);
  server_.Pause();
  w.SubmitAll(store.get());
  std::this_thread::sleep_for(10s);
  EXPECT_EQ(rec.done(), 0u) << "writes completed while the server was stopped";
  server_.Resume();
  ASSERT_TRUE(rec.WaitDone(n, 120s)) << rec.done() << " of " << n;
  w.ExpectOk(11);
  Batch r = Batch::Runs(StoreOp::Kind::kRead, 0, Repeat(8, n), 11);
  r.SubmitAll(store.get());
  ASSERT_TRUE(rec.WaitDone(2 * n, 120s));
  r.ExpectOk(11);
  store->Stop();
}

TEST_P(NfsStoreTest, StopGivesUpWhenServerIsGone) {
  Recorder rec;
  auto s = Open(Url(), 2000);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->Start(&rec).ok());
  server_.Kill();
  Batch w = Batch::Runs(StoreOp::Kind::kWrite, 0, Repeat(4, 8), 1);
  w.SubmitAll(s.get());
  auto t0 = Clock::now();
  s->Stop();
  auto took = Clock::now() - t0;
  EXPECT_LT(took, 10s);
  ASSERT_TRUE(rec.WaitDone(8, 1s)) << "Stop returned with ops still pending";
  for (auto& op : w.ops) EXPECT_EQ(op.error, EIO);
}

// ---- connection errors: clear, and within the timeout -------------------------

class NfsStoreStartTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.Start()) << server_.error(); }
  // Start()'s error for `url`, and how long it took.
  std::string StartError(const std::string& url, uint32_t timeout_ms, Clock::duration* took) {
    auto s = OpenNfsStore(url, 0, timeout_ms);
    if (!s.ok()) return s.status().message();
    Recorder rec;
    auto t0 = Clock::now();
    Status st = (*s)->Start(&rec);
    *took = Clock::now() - t0;
    if (st.ok()) (*s)->Stop();
    return st.ok() ? "" : st.message();
  }
  NfsServer server_;
};

TEST_F(NfsStoreStartTest, NothingListeningFailsWithinTimeoutNamingHostAndPort) {
  const int port = FreePort();
  const std::string p = std::to_string(port);
  Clock::duration took{};
  std::string err = StartError("nfs://127.0.0.1/export?nfsport=" + p + "&mountport=" + p, 2000, &took);
  EXPECT_NE(err, "");
  EXPECT_NE(err.find("127.0.0.1"), std::string::npos) << err;
  EXPECT_NE(err.find(p), std::string::npos) << err;
  EXPECT_NE(err.find("/export"), std::string::npos) << err;
  EXPECT_LT(took, 4s) << err;
}

TEST_F(NfsStoreStartTest, WrongHostFailsNamingIt) {
  Clock::duration took{};
  // 127.0.0.2 is loopback too, but the server listens on 127.0.0.1 only.
  std::string url = server_.url();
  url.replace(url.find("127.0.0.1"), 9, "127.0.0.2");
  std::string err = StartError(url, 2000, &took);
  EXPECT_NE(err.find("127.0.0.2"), std::string::npos) << err;
  EXPECT_LT(took, 4s) << err;
}

TEST_F(NfsStoreStartTest, StoppedServerFailsWithinTimeout) {
  server_.Pause();
  Clock::duration took{};
  std::string err = StartError(server_.url(), 2000, &took);
  server_.Resume();
  EXPECT_NE(err, "");
  EXPECT_GE(took, 1500ms) << err;
  EXPECT_LT(took, 5s) << err;
}

// A missing export or directory, and a read-only export, are tested through
// Pager::Create in nfs_pager_test (NfsPagerStart), which reaches Start.

TEST_F(NfsStoreStartTest, DeniedExportFails) {
  Clock::duration took{};
  std::string err = StartError(server_.denied_url(), 5000, &took);
  EXPECT_NE(err, "");
  EXPECT_NE(err.find("/denied"), std::string::npos) << err;
  EXPECT_LT(took, 4s) << err;
}

TEST(NfsUrl, RejectsBadOptions) {
  EXPECT_FALSE(OpenNfsStore("nfs://h/e?version=5", 0, 1000).ok());
  EXPECT_FALSE(OpenNfsStore("nfs://h/e?conns=0", 0, 1000).ok());
  EXPECT_FALSE(OpenNfsStore("nfs://h/e?stable=maybe", 0, 1000).ok());
  EXPECT_FALSE(OpenNfsStore("nfs:///e", 0, 1000).ok());
  EXPECT_TRUE(OpenNfsStore("nfs://h:2049/e/d?version=4&conns=2&stable=sync", 0, 1000).ok());
}

}  // namespace
}  // namespace pager

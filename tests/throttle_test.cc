// The throttle: with write-back stalled, faults that need a fresh frame wait
// once half the reserve is gone; the process's memory stays bounded; nothing
// deadlocks; once the store moves again every byte comes back. The same
// against a real NFS server, and inside a memory cgroup: nfs_throttle_test.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pager/pager.h"
#include "reserve.h"
#include "test_hooks.h"
#include "test_util.h"

namespace pager::testing {
namespace {

// A store whose writes are held while stalled (a server that stopped
// answering). Its slots live in a memfd: page cache, not the process's
// anonymous memory, so RssAnon measures the pager alone.
class StallStore : public Store {
 public:
  explicit StallStore(uint64_t slots) : fd_(memfd_create("stall_store", 0)) {
    if (fd_ < 0 || ftruncate(fd_, static_cast<off_t>(slots * kPageSize)) != 0) abort();
    held_.reserve(4096);
  }
  ~StallStore() override { close(fd_); }
  Status Start(StoreListener* l) override {
    listener_ = l;
    return Status();
  }
  void Submit(StoreOp* op) override {
    if (op->kind == StoreOp::Kind::kWrite) {
      std::lock_guard<std::mutex> g(mu_);
      if (stalled_) {
        held_.push_back(op);
        return;
      }
    }
    Run(op);
  }
  void Stop() override { Release(); }
  std::string Describe() const override { return "stall"; }

  void Stall() {
    std::lock_guard<std::mutex> g(mu_);
    stalled_ = true;
  }
  // Completes the held writes (on the caller's thread) and lets later ones
  // through.
  void Release() {
    std::vector<StoreOp*> ops;
    {
      std::lock_guard<std::mutex> g(mu_);
      stalled_ = false;
      ops.swap(held_);
    }
    for (StoreOp* op : ops) Run(op);
  }
  size_t held() {
    std::lock_guard<std::mutex> g(mu_);
    return held_.size();
  }

 private:
  void Run(StoreOp* op) {
    const off_t off = static_cast<off_t>(op->slot * kPageSize);
    const size_t len = uint64_t{op->pages} * kPageSize;
    ssize_t n = op->kind == StoreOp::Kind::kRead ? pread(fd_, op->buf, len, off) : pwrite(fd_, op->buf, len, off);
    op->error = n == static_cast<ssize_t>(len) ? 0 : EIO;
    listener_->OnComplete(op);
  }

  int fd_;
  StoreListener* listener_ = nullptr;
  std::mutex mu_;
  bool stalled_ = false;
  std::vector<StoreOp*> held_;
};

// Staging pages writes leave to reads (reserve.h, evictor.cc): the floor
// the level never goes under while writes are in flight.
uint64_t ReservedMinimumBytes(uint64_t reserve_bytes) {
  return std::min<uint64_t>(reserve_bytes / kPageSize / 4, 256) * kPageSize;
}

TEST(Throttle, StalledWriteBackThrottlesAtHalfAndRecovers) {
  const uint64_t limit = 8u << 20, reserve = 4u << 20;
  const uint64_t per_thread = 4096;  // pages: 2 x 16 MiB through an 8 MiB limit
  auto owned = std::make_unique<StallStore>(2 * per_thread + 1024);
  StallStore* store = owned.get();
  Config cfg;
  cfg.memory_limit = limit;
  cfg.reserve = reserve;
  cfg.publish_stats = false;
  const uint64_t rss0 = RssAnon();
  auto p = Pager::Create(cfg, std::move(owned));
  ASSERT_TRUE(p.ok()) << p.status().message();
  Pager& pager = **p;
  auto mem = pager.Map(2 * per_thread * kPageSize);
  ASSERT_TRUE(mem.ok());
  auto* m = static_cast<unsigned char*>(*mem);

  store->Stall();
  std::atomic<uint64_t> written[2] = {0, 0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 2; t++) {
    writers.emplace_back([&, t] {
      for (uint64_t i = t * per_thread; i < (t + 1) * per_thread; i++) {
        FillPage(m + i * kPageSize, i, 1);
        written[t]++;
      }
    });
  }
  // The writers fill the limit, write-back stages pages until half the pool
  // is gone, then faults wait: progress stops, short of the end.
  uint64_t last = 0, rss_max = 0;
  int still = 0;
  for (int i = 0; i < 200 && still < 5; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    uint64_t now = written[0] + written[1];
    still = now == last ? still + 1 : 0;
    last = now;
    rss_max = std::max(rss_max, RssAnon());
  }
  Stats s = pager.GetStats();
  const uint64_t stalled_at = last;
  EXPECT_LT(stalled_at, 2 * per_thread) << "the writers should be held while write-back is stalled";
  EXPECT_GT(s.throttle_events, 0u);
  EXPECT_GT(store->held(), 0u);
  EXPECT_LT(s.reserve_min_free_bytes * 2, s.reserve_bytes) << "the pool went below half";
  EXPECT_GE(s.reserve_min_free_bytes, ReservedMinimumBytes(reserve))
      << "staging went into the reserved minimum";
  EXPECT_LE(s.resident_pages, s.limit_pages);
  ExpectRssGrowthWithinLimitPlusReserve(rss_max - rss0, limit, s);
  RecordProperty("throttle_events", std::to_string(s.throttle_events));

  store->Release();
  for (auto& w : writers) w.join();
  for (uint64_t i = 0; i < 2 * per_thread; i++) ASSERT_TRUE(CheckPage(m + i * kPageSize, i, 1)) << "page " << i;
  s = pager.GetStats();
  EXPECT_GT(s.throttled_ns, 0u);
  EXPECT_GT(s.evictions_written, 0u);
  EXPECT_GT(s.faults_swapin, 0u);
  ASSERT_TRUE(pager.Unmap(*mem, 2 * per_thread * kPageSize).ok());
}

// Issue 9, problem 11: while one fault waited for memory, every new fault
// waited behind it, re-touches of inactive pages too, which need no frame
// (and an NFS outage stalled threads that only touched memory still in
// memory). Faults that need a frame now queue apart from those that do not.
TEST(Throttle, Issue9AReTouchIsNotHeldBehindAFaultWaitingForMemory) {
  auto owned = std::make_unique<StallStore>(8192);
  StallStore* store = owned.get();
  Config cfg = TestConfig(512);
  cfg.publish_stats = false;
  auto p = Pager::Create(cfg, std::move(owned));
  ASSERT_TRUE(p.ok()) << p.status().message();
  Pager& pager = **p;
  const uint64_t pages = 4096;
  auto mem = pager.Map(pages * kPageSize);
  ASSERT_TRUE(mem.ok());
  auto* m = static_cast<unsigned char*>(*mem);
  FillPages(m, 1024, 1);

  store->Stall();
  std::atomic<uint64_t> written{1024};
  std::thread writer([&] {
    for (uint64_t i = 1024; i < pages; i++) {
      FillPage(m + i * kPageSize, i, 1);
      written++;
    }
  });
  // The writer is held: write-back is stalled and the pool below half.
  uint64_t last = 0;
  for (int still = 0, i = 0; i < 400 && still < 5; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    still = written == last ? still + 1 : 0;
    last = written;
  }
  ASSERT_LT(written.load(), pages) << "the writer should be waiting for memory";
  ASSERT_GT(pager.GetStats().throttle_events + pager.GetStats().limit_waits, 0u);
  // A page in the inactive stage: its re-touch needs no frame.
  uint64_t inactive = pages;
  for (uint64_t i = 0; i < written && inactive == pages; i++) {
    if (PagerTestPeer::StateOf(pager, m + i * kPageSize) == PageState::kInactive) inactive = i;
  }
  ASSERT_LT(inactive, pages) << "no page in the inactive stage to re-touch";
  auto retouch = std::async(std::launch::async, [&] { return CheckPage(m + inactive * kPageSize, inactive, 1); });
  const bool served = retouch.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  const uint64_t written_then = written;
  store->Release();
  writer.join();
  ASSERT_TRUE(served) << "the re-touch waited behind the fault waiting for memory";
  EXPECT_TRUE(retouch.get());
  EXPECT_LT(written_then, pages) << "the writer was still waiting when the re-touch was served";
  EXPECT_EQ(FirstWrongPage(m, pages, 1), -1);
}

// Issue 9, problem 8: one reserve arena per process, sized by the first pager
// and counted whole in every pager's level. A first pager's metadata filled
// it (the page table lived there), and a second pager with a small reserve
// sat below half for good: its faults parked forever. Each pager now has an
// arena of its own, and metadata lives outside the pool.
TEST(Throttle, Issue9ASecondPagerIsNotThrottledByTheFirstOnesMemory) {
  Config big = TestConfig(32768);  // 128 MiB
  big.reserve = 64u << 20;
  auto a = Pager::Create(big);
  ASSERT_TRUE(a.ok()) << a.status().message();
  const uint64_t span = 6144;  // 2 MiB stretches: 12 GiB of address space, one page touched in each
  auto amem = (*a)->Map(span << 21);
  ASSERT_TRUE(amem.ok());
  for (uint64_t i = 0; i < span; i++) static_cast<unsigned char*>(*amem)[i << 21] = 1;

  auto b = MakePager(256);  // 1 MiB reserve
  auto done = std::async(std::launch::async, [&] {
    unsigned char* m = b.Map(1024);
    FillPages(m, 1024, 1);
    return FirstWrongPage(m, 1024, 1);
  });
  if (done.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    fprintf(stderr, "the second pager's faults never completed\n");
    abort();  // a thread stuck in a fault cannot be joined
  }
  EXPECT_EQ(done.get(), -1);
  EXPECT_GT(b.SyncedStats().evictions_written, 0u);
  ASSERT_TRUE((*a)->Unmap(*amem, span << 21).ok());
}

}  // namespace
}  // namespace pager::testing

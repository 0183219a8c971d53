// Eviction policy and limits: resident pages stay under the limit, a hot set
// survives a cold stream (with a clear margin over FIFO), a full store pauses
// eviction without losing anything.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <random>
#include <vector>

#include "test_hooks.h"
#include "test_util.h"

namespace pager::testing {
namespace {

struct HotColdResult {
  uint64_t hot_swapins = 0;
  uint64_t hot_resident = 0;  // hot pages mapped at the end (mincore)
};

// A hot set of `hot` pages touched four times per cold page, while a cold
// stream 16x the limit passes through once.
HotColdResult RunHotCold(EvictionPolicy policy) {
  const uint64_t limit = 1024, hot = 256, cold = limit * 16;
  auto t = MakePager(limit, "", policy);
  auto hmem = t.pager->Map(hot * kPageSize);
  auto cmem = t.pager->Map(cold * kPageSize);
  if (!hmem.ok() || !cmem.ok()) abort();
  auto* h = static_cast<unsigned char*>(*hmem);
  auto* c = static_cast<unsigned char*>(*cmem);
  for (uint64_t i = 0; i < hot; i++) FillPage(h + i * kPageSize, i, 1);
  std::mt19937_64 rng(42);
  t.pager->Sync();
  uint64_t swapins0 = t.pager->GetStats().faults_swapin;
  for (uint64_t i = 0; i < cold; i++) {
    c[i * kPageSize] = 1;  // first touch of a cold page: a zero fill, never swapped in again
    for (int k = 0; k < 4; k++) {
      uint64_t j = rng() % hot;
      if (!CheckPage(h + j * kPageSize, j, 1)) abort();
    }
  }
  t.pager->Sync();
  HotColdResult r;
  r.hot_swapins = t.pager->GetStats().faults_swapin - swapins0;
  std::vector<unsigned char> vec(hot);
  if (mincore(h, hot * kPageSize, vec.data()) != 0) abort();
  for (unsigned char v : vec) r.hot_resident += v & 1;
  return r;
}

// A policy test: the store completes at once, so that swap-ins count the
// policy's choices, not write-back timing (a slow store serves re-touches
// from write buffers).
TEST(EvictionPolicyTest, HotSetStaysResidentWhileColdStreamPasses) {
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  // Re-touches of pages still at the seal worker are rescued without a
  // swap-in; under a sanitizer that worker is several times slower, and
  // FIFO's count measures its speed, not the policy (TSan: 873 vs the clock's
  // 481; ASan on a busy machine: failed 2 runs of 4, once 1818 vs 1539). The
  // plain job runs this test.
  GTEST_SKIP() << "a policy comparison; the sanitizer's slowdown of the seal worker decides it";
#endif
  HotColdResult clock = RunHotCold(EvictionPolicy::kClock);
  HotColdResult fifo = RunHotCold(EvictionPolicy::kFifo);
  RecordProperty("clock_hot_swapins", std::to_string(clock.hot_swapins));
  RecordProperty("fifo_hot_swapins", std::to_string(fifo.hot_swapins));
  // FIFO evicts every hot page once per pass of the limit through memory.
  EXPECT_GT(fifo.hot_swapins, 1000u);
  // A clear margin. (3x, not the 5x of before the seal worker: FIFO's pages
  // now wait at the worker, where a re-touch still finds them, and FIFO got
  // better, ~5600 -> ~1400 hot swap-ins; the clock did not change, ~350.)
  EXPECT_LT(clock.hot_swapins * 3, fifo.hot_swapins)
      << "clock " << clock.hot_swapins << " vs fifo " << fifo.hot_swapins;
  // Mapped at the end (mincore): hot pages sitting in the inactive stage are
  // in memory but unmapped, so not all of them show.
  EXPECT_GE(clock.hot_resident, 256u * 7 / 10) << "the hot set should end resident";
}

TEST(EvictionLimit, ResidentNeverExceedsTheLimitUnderSequentialWrites) {
  const uint64_t limit = 512;
  auto t = MakePager(limit);
  const size_t pages = limit * 16;
  auto* p = t.Map(pages);
  uint64_t max_seen = 0;
  for (size_t i = 0; i < pages; i++) {
    FillPage(p + i * kPageSize, i, 1);
    if (i % 64 == 0) max_seen = std::max(max_seen, t.pager->GetStats().resident_pages);
  }
  EXPECT_LE(max_seen, limit);
  // The process's real memory agrees: mapped pages of the region.
  std::vector<unsigned char> vec(pages);
  ASSERT_EQ(mincore(p, pages * kPageSize, vec.data()), 0);
  uint64_t mapped = 0;
  for (unsigned char v : vec) mapped += v & 1;
  EXPECT_LE(mapped, limit);
  ASSERT_EQ(FirstWrongPage(p, pages, 1), -1);
}

uint64_t MappedPages(const unsigned char* p, size_t pages) {
  std::vector<unsigned char> vec(pages);
  if (mincore(const_cast<unsigned char*>(p), pages * kPageSize, vec.data()) != 0) abort();
  uint64_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

// Pager::Pin: pinned pages stay mapped through churn many times the limit,
// pages swapped out are brought back by Pin, and Unpin makes them evictable
// again. (PinThisThread relies on this: race_test ThreadsWithPagedStacks….)
TEST(EvictionLimit, PinnedPagesStayInMemoryUntilUnpinned) {
  const uint64_t limit = 256;
  auto t = MakePager(limit);
  auto* a = t.Map(64);
  auto* churn = t.Map(limit * 8);
  FillPages(a, 64, 1);
  // Unaligned: the pages the bytes span, 8 through 23.
  ASSERT_TRUE(t.pager->Pin(a + 8 * kPageSize + 100, 16 * kPageSize - 100).ok());
  for (uint64_t v = 1; v <= 3; v++) FillPages(churn, limit * 8, v);
  EXPECT_EQ(MappedPages(a + 8 * kPageSize, 16), 16u) << "pinned pages were evicted";
  EXPECT_LT(MappedPages(a, 8) + MappedPages(a + 24 * kPageSize, 40), 8u) << "the churn must evict the rest";

  // Swapped out, then pinned: brought back, and kept.
  ASSERT_EQ(PagerTestPeer::StateOf(*t.pager, a + 40 * kPageSize), PageState::kSwapped);
  ASSERT_TRUE(t.pager->Pin(a + 40 * kPageSize, 8 * kPageSize).ok());
  for (uint64_t v = 4; v <= 5; v++) FillPages(churn, limit * 8, v);
  EXPECT_EQ(MappedPages(a + 40 * kPageSize, 8), 8u);

  ASSERT_TRUE(t.pager->Unpin(a, 64 * kPageSize).ok());
  for (uint64_t v = 6; v <= 8; v++) FillPages(churn, limit * 8, v);
  EXPECT_LT(MappedPages(a, 64), 8u) << "unpinned pages must be evictable again";
  EXPECT_EQ(FirstWrongPage(a, 64, 1), -1);
  EXPECT_EQ(FirstWrongPage(churn, limit * 8, 8), -1);

  // Not paged memory: said so, nothing done.
  std::vector<unsigned char> plain(4 * kPageSize);
  Status s = t.pager->Pin(plain.data(), plain.size());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not inside a paged region"), std::string::npos) << s.message();
  EXPECT_FALSE(t.pager->Pin(a, 0).ok());
}

TEST(EvictionLimit, ZeroPagesAreDroppedNotWritten) {
  const uint64_t limit = 256;
  auto t = MakePager(limit);
  const size_t pages = limit * 8;
  auto* p = t.Map(pages);
  for (size_t i = 0; i < pages; i++) p[i * kPageSize] = 0;  // touched, still all zeros
  Stats s = t.SyncedStats();
  EXPECT_EQ(s.bytes_written, 0u);
  EXPECT_GT(s.evictions_clean, pages / 2);
  for (size_t i = 0; i < pages; i++) ASSERT_TRUE(IsZeroPage(p + i * kPageSize));
  EXPECT_EQ(t.pager->GetStats().faults_swapin, 0u);
}

// A store that refuses writes (ENOSPC) pauses eviction: pages stay resident
// past the limit, the stats say so, nothing is lost; when space returns,
// eviction resumes.
TEST(EvictionLimit, FullStorePausesEvictionAndLosesNothing) {
  const uint64_t limit = 256;
  auto t = MakePager(limit);
  const size_t pages = limit * 4;
  auto* p = t.Map(pages);
  t.store->FailWritesWith(ENOSPC);
  FillPages(p, pages, 1);
  Stats s = t.SyncedStats();
  EXPECT_GT(s.resident_pages, limit) << "pages must stay resident while the store is full";
  EXPECT_TRUE(s.eviction_paused);
  EXPECT_EQ(s.backend, BackendState::kPaused);
  EXPECT_GT(s.eviction_pauses, 0u);
  EXPECT_GT(s.io_errors, 0u);
  ASSERT_EQ(FirstWrongPage(p, pages, 1), -1);

  t.store->FailWritesWith(0);
  // Eviction resumes after its back-off (<= a few seconds here).
  Stats after;
  for (int i = 0; i < 600; i++) {
    t.pager->Sync();
    after = t.pager->GetStats();
    if (after.resident_pages <= limit && !after.eviction_paused) break;
    usleep(10000);
  }
  EXPECT_LE(after.resident_pages, limit);
  EXPECT_FALSE(after.eviction_paused);
  ASSERT_EQ(FirstWrongPage(p, pages, 1), -1);
}

TEST(EvictionLimit, SwapMaxCapPausesEvictionAndLosesNothing) {
  Config c = TestConfig(256);
  c.swap_max = 1 << 20;  // 256 slots
  auto store = std::make_unique<MemoryStore>();
  auto pr = Pager::Create(c, std::move(store));
  ASSERT_TRUE(pr.ok()) << pr.status().message();
  auto& pager = *pr;
  const size_t pages = 1024;
  auto mem = pager->Map(pages * kPageSize);
  ASSERT_TRUE(mem.ok());
  auto* p = static_cast<unsigned char*>(*mem);
  FillPages(p, pages, 1);
  pager->Sync();
  Stats s = pager->GetStats();
  EXPECT_LE(s.slots_in_use, 256u);
  EXPECT_TRUE(s.eviction_paused);
  EXPECT_GE(s.resident_pages + s.swapped_pages, pages);
  ASSERT_EQ(FirstWrongPage(p, pages, 1), -1);
}

// A real full device: a 1 MiB tmpfs under the local-file store.
TEST(EvictionLimit, FullTmpfsPausesEvictionAndLosesNothing) {
  char dir[] = "/tmp/pager-tmpfs-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string cmd = std::string("mount -t tmpfs -o size=1m tmpfs ") + dir + " 2>/dev/null";
  if (system(cmd.c_str()) != 0) {
    rmdir(dir);
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
  }
  {
    Config c = TestConfig(256);
    c.swap = dir;
    auto pr = Pager::Create(c);
    ASSERT_TRUE(pr.ok()) << pr.status().message();
    auto& pager = *pr;
    const size_t pages = 1024;  // 4 MiB of data, 1 MiB of limit, 1 MiB of swap
    auto mem = pager->Map(pages * kPageSize);
    ASSERT_TRUE(mem.ok());
    auto* p = static_cast<unsigned char*>(*mem);
    FillPages(p, pages, 1);
    pager->Sync();
    Stats s = pager->GetStats();
    EXPECT_TRUE(s.eviction_paused);
    EXPECT_GT(s.resident_pages, 256u) << "pages the full device refused must stay in memory";
    EXPECT_GT(s.swapped_pages, 0u) << "the device should have taken what fit";
    ASSERT_EQ(FirstWrongPage(p, pages, 1), -1);
    ASSERT_TRUE(pager->Unmap(p, pages * kPageSize).ok());
  }
  cmd = std::string("umount ") + dir;
  EXPECT_EQ(system(cmd.c_str()), 0);
  rmdir(dir);
}

}  // namespace
}  // namespace pager::testing

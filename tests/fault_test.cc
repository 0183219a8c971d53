// The fault path: zero pages, swap-in, kernel-mode faults, duplicate messages.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

#include "test_util.h"

namespace pager::testing {
namespace {

class FaultTest : public ::testing::TestWithParam<const char*> {};

TEST_P(FaultTest, FirstTouchReadsZerosWithoutIo) {
  auto t = MakePager(256, GetParam());
  const size_t pages = 128;
  auto* p = t.Map(pages);
  for (size_t i = 0; i < pages; i++) EXPECT_TRUE(IsZeroPage(p + i * kPageSize)) << "page " << i;
  Stats s = t.SyncedStats();
  EXPECT_EQ(s.faults_swapin, 0u);
  EXPECT_EQ(s.bytes_read, 0u);
  EXPECT_GE(s.pages_zero_filled, pages);
  // Sequential first touches fill ahead: far fewer faults than pages.
  EXPECT_LT(s.faults_zero, pages / 4);
  ASSERT_TRUE(t.pager->Unmap(p, pages * kPageSize).ok());
}

TEST_P(FaultTest, RegionEightTimesTheLimitRoundTripsEveryByte) {
  const uint64_t limit = 512;
  auto t = MakePager(limit, GetParam());
  const size_t pages = limit * 8;
  auto* p = t.Map(pages);
  FillPages(p, pages, 1);
  Stats mid = t.SyncedStats();
  EXPECT_LE(mid.resident_pages, limit);
  EXPECT_GT(mid.evictions_written, 0u);
  ASSERT_EQ(FirstWrongPage(p, pages, 1), -1);
  // Second pass in reverse: swap-in without sequential read-ahead.
  for (size_t i = pages; i-- > 0;) ASSERT_TRUE(CheckPage(p + i * kPageSize, i, 1)) << "page " << i;
  Stats s = t.SyncedStats();
  EXPECT_GT(s.faults_swapin, 0u);
  EXPECT_LE(s.resident_pages, limit);
  EXPECT_EQ(s.checksum_failures, 0u);
}

TEST_P(FaultTest, KernelModeFaultsAreServed) {
  // read(2) into paged memory and write(2) from it fault inside the kernel:
  // with UFFD_USER_MODE_ONLY these would fail with EFAULT.
  const uint64_t limit = 256;
  auto t = MakePager(limit, GetParam());
  const size_t pages = limit * 4;
  auto* p = t.Map(pages);
  FillPages(p, pages, 7);
  char path[] = "/tmp/pager-kfault-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  // write(2) from evicted pages: the kernel faults them in.
  ASSERT_EQ(write(fd, p, pages * kPageSize), static_cast<ssize_t>(pages * kPageSize));
  // read(2) back into a second paged region, untouched so far.
  auto mem2 = t.pager->Map(pages * kPageSize);
  ASSERT_TRUE(mem2.ok());
  auto* q = static_cast<unsigned char*>(*mem2);
  ASSERT_EQ(pread(fd, q, pages * kPageSize, 0), static_cast<ssize_t>(pages * kPageSize));
  close(fd);
  ASSERT_EQ(FirstWrongPage(q, pages, 7), -1);
}

TEST_P(FaultTest, ConcurrentFaultsOnOnePageAreServedOnce) {
  const uint64_t limit = 256;
  auto t = MakePager(limit, GetParam());
  const size_t pages = limit * 4;
  auto* p = t.Map(pages);
  FillPages(p, pages, 3);
  Stats before = t.SyncedStats();
  // Page 0 was evicted long ago. Eight threads touch it at once.
  std::atomic<int> ok{0};
  std::vector<std::thread> th;
  for (int k = 0; k < 8; k++) {
    th.emplace_back([&] { ok += CheckPage(p, 0, 3) ? 1 : 0; });
  }
  for (auto& x : th) x.join();
  EXPECT_EQ(ok.load(), 8);
  Stats after = t.SyncedStats();
  EXPECT_EQ(after.faults_swapin - before.faults_swapin, 1u);
}

// Issue 9, problem 1: a program splits its own mapping after swap-out
// (madvise(MADV_RANDOM) of alternate slices, mprotect of a few pages): the
// swap-in read-ahead and the eviction runs then cross VMA boundaries, which
// UFFDIO_COPY and UFFDIO_MOVE refuse whole with ENOENT
// (UffdContractSplit.CopyAcrossTwoVmas*). Taken for "region gone", that discarded
// every page of the run: most pages read back as zeros, with no error.
TEST_P(FaultTest, Issue9PagesAcrossVmaSplitsMadeAfterSwapOutReadBack) {
  const uint64_t limit = 256;
  auto t = MakePager(limit, GetParam());
  const size_t pages = limit * 8;
  auto* p = t.Map(pages);
  FillPages(p, pages, 1);  // written back in long sequential runs
  t.pager->Sync();
  ASSERT_GT(t.SyncedStats().swapped_pages, pages / 2);
  // Split the one VMA into many: alternate 13-page slices get MADV_RANDOM
  // (a VMA flag), and every 97th page goes read-only.
  for (size_t i = 0; i < pages; i += 26) {
    ASSERT_EQ(madvise(p + i * kPageSize, std::min<size_t>(13, pages - i) * kPageSize, MADV_RANDOM), 0);
  }
  for (size_t i = 50; i < pages; i += 97) ASSERT_EQ(mprotect(p + i * kPageSize, kPageSize, PROT_READ), 0);
  // Read everything back in order (read-ahead runs span the splits), twice:
  // the second pass swaps in what the first pass's evictions (whose runs
  // span the splits too) wrote back.
  for (int pass = 0; pass < 2; pass++) {
    long wrong = FirstWrongPage(p, pages, 1);
    ASSERT_EQ(wrong, -1) << "pass " << pass << ": page " << wrong
                         << (IsZeroPage(p + wrong * kPageSize) ? " reads zeros" : " reads wrong bytes");
  }
  Stats s = t.SyncedStats();
  EXPECT_GT(s.pages_read_ahead, 0u) << "read-ahead must have run across the splits";
  EXPECT_EQ(s.checksum_failures, 0u);
}

// A page made PROT_NONE (a guard page, a GC's protected heap) while the
// pager runs: the pager never touches it itself (with the retired
// write-protect fallback it copied it and died of SIGSEGV, issue 9 problem
// 7); UFFDIO_MOVE refuses it (EINVAL: the VMAs' protections differ) and it
// stays; once readable again it holds its bytes.
TEST_P(FaultTest, Issue9ProtNonePagesAreLeftAloneAndKeepTheirBytes) {
  const uint64_t limit = 256;
  auto t = MakePager(limit, GetParam());
  const size_t pages = limit * 4;
  auto* p = t.Map(pages);
  FillPages(p, limit / 2, 1);  // resident
  ASSERT_EQ(mprotect(p, limit / 2 * kPageSize, PROT_NONE), 0);
  // Pressure: the rest of the region cycles through the limit twice.
  for (int round = 1; round <= 2; round++) {
    for (size_t i = limit / 2; i < pages; i++) FillPage(p + i * kPageSize, i, round);
  }
  Stats s = t.SyncedStats();
  EXPECT_GT(s.evictions_written, 0u);
  EXPECT_GT(s.move_refusals, 0u) << "eviction must have met the PROT_NONE pages";
  ASSERT_EQ(mprotect(p, limit / 2 * kPageSize, PROT_READ | PROT_WRITE), 0);
  EXPECT_EQ(FirstWrongPage(p, limit / 2, 1), -1);
  for (size_t i = limit / 2; i < pages; i++) ASSERT_TRUE(CheckPage(p + i * kPageSize, i, 2)) << "page " << i;
}

// Issue 11: a scan of swapped pages — forwards, backwards, or every Nth
// page — is read ahead of the program (prefetcher.h), so its threads wait on
// a small fraction of the reads they waited on without prefetch; every byte
// still reads back, with reads in flight completing late and out of order.
// Two threads scan at once, each its own half, while the region is far over
// the limit.
TEST_P(FaultTest, Issue11ScansReadAheadOfTheProgramAndReadBackEveryByte) {
  const uint64_t limit = 8192;  // 32 MiB: prefetch reaches 1024 pages ahead
  const size_t pages = limit * 3;
  struct Scan {
    const char* name;
    int64_t stride;
  };
  for (const Scan scan : {Scan{"forwards", 1}, Scan{"backwards", -1}, Scan{"every 5th page", 5}}) {
    uint64_t waited[2] = {};
    for (int prefetch = 0; prefetch < 2; prefetch++) {
      Config c = TestConfig(limit);
      c.reserve = 8 << 20;  // the default's least: the tests' 1 MiB leaves prefetch no room
      auto t = MakePager(c, std::string(GetParam()) + (prefetch ? "" : ",noprefetch"));
      auto* p = t.Map(pages);
      FillPages(p, pages, 1);
      Settle(*t.pager);
      const Stats before = t.SyncedStats();
      std::atomic<uint64_t> wrong{0};
      auto run = [&](size_t from, size_t to) {
        const size_t steps = (to - from) / static_cast<size_t>(std::abs(scan.stride));
        for (size_t k = 0; k < steps; k++) {
          const size_t i = scan.stride > 0 ? from + k * scan.stride : to - 1 - k;
          if (!CheckPage(p + i * kPageSize, i, 1)) wrong++;
        }
      };
      std::thread a(run, 0, pages / 2), b(run, pages / 2, pages);
      a.join();
      b.join();
      EXPECT_EQ(wrong.load(), 0u) << scan.name;
      const Stats after = t.SyncedStats();
      waited[prefetch] = after.faults_swapin - before.faults_swapin;
      if (prefetch) {
        EXPECT_GT(after.pages_read_ahead, before.pages_read_ahead) << scan.name;
      }
      EXPECT_EQ(after.checksum_failures, 0u);
      EXPECT_LE(after.resident_pages, limit);
      ASSERT_TRUE(t.pager->Unmap(p, pages * kPageSize).ok());
    }
    RecordProperty(std::string("swapins_waited_") + (scan.stride == 1 ? "fwd" : scan.stride < 0 ? "back" : "stride"),
                   std::to_string(waited[0]) + " -> " + std::to_string(waited[1]));
    // Forwards, the inline store makes the scan eviction-bound (every page
    // read needs one evicted, and the prefetch waits for room): 4-12x fewer
    // waits measured; backwards and strided, 30-300x.
    EXPECT_LT(waited[1] * 2, waited[0]) << scan.name << ": " << waited[0] << " faults waited on a read without prefetch, "
                                        << waited[1] << " with";
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, FaultTest, ::testing::ValuesIn(kModes),
                         [](const auto& info) { return ModeName(info.param); });

}  // namespace
}  // namespace pager::testing

// Region lifecycle: munmap, madvise and mremap of paged memory (uffd events),
// and the pager's own Map/Unmap/destruction.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <chrono>
#include <future>
#include <thread>

#include "test_util.h"

namespace pager::testing {
namespace {

constexpr uint64_t kLimit = 256;
constexpr size_t kPages = kLimit * 4;

class Lifecycle : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    t_ = MakePager(kLimit, GetParam());
    auto mem = t_.pager->Map(kPages * kPageSize);
    ASSERT_TRUE(mem.ok());
    base_ = static_cast<unsigned char*>(*mem);
    for (size_t i = 0; i < kPages; i++) FillPage(page(i), i, 1);
    t_.pager->Sync();
    ASSERT_GT(t_.pager->GetStats().swapped_pages, kPages / 2) << "most pages must be swapped out";
  }
  unsigned char* page(size_t i) { return base_ + i * kPageSize; }
  Stats stats() {
    t_.pager->Sync();
    return t_.pager->GetStats();
  }

  TestPager t_;
  unsigned char* base_ = nullptr;
};

TEST_P(Lifecycle, DontneededPagesReadZerosNotTheirSwappedCopy) {
  ASSERT_EQ(madvise(base_, kPages * kPageSize, MADV_DONTNEED), 0);
  EXPECT_EQ(stats().slots_in_use, 0u) << "discarded pages must release their slots";
  for (size_t i = 0; i < kPages; i++) ASSERT_TRUE(IsZeroPage(page(i))) << "page " << i;
  // And the region works as new memory afterwards.
  for (size_t i = 0; i < kPages; i++) FillPage(page(i), i, 2);
  for (size_t i = 0; i < kPages; i++) ASSERT_TRUE(CheckPage(page(i), i, 2)) << "page " << i;
}

TEST_P(Lifecycle, DontneedOfPartOfTheRegionLeavesTheRestIntact) {
  const size_t first = kPages / 4, n = kPages / 2;
  ASSERT_EQ(madvise(page(first), n * kPageSize, MADV_DONTNEED), 0);
  for (size_t i = 0; i < kPages; i++) {
    bool dropped = i >= first && i < first + n;
    ASSERT_TRUE(dropped ? IsZeroPage(page(i)) : CheckPage(page(i), i, 1)) << "page " << i;
  }
}

TEST_P(Lifecycle, MadvFreeNeverShowsAnotherPagesBytes) {
  // MADV_FREE raises no event: a page reads back as before or as zeros, and
  // once written keeps the write.
  ASSERT_EQ(madvise(base_, kPages * kPageSize, MADV_FREE), 0);
  for (size_t i = 0; i < kPages; i++) {
    ASSERT_TRUE(CheckPage(page(i), i, 1) || IsZeroPage(page(i))) << "page " << i;
  }
  for (size_t i = 0; i < kPages; i++) FillPage(page(i), i, 3);
  for (size_t i = 0; i < kPages; i++) ASSERT_TRUE(CheckPage(page(i), i, 3)) << "page " << i;
}

TEST_P(Lifecycle, MadvRemoveOnPrivateMemoryIsRefusedAndChangesNothing) {
  // MADV_REMOVE needs shared memory; the kernel refuses it here, and the
  // pager must not have discarded anything on its way.
  EXPECT_NE(madvise(base_, kPages * kPageSize, MADV_REMOVE), 0);
  for (size_t i = 0; i < kPages; i++) ASSERT_TRUE(CheckPage(page(i), i, 1)) << "page " << i;
}

TEST_P(Lifecycle, MunmapReleasesSlotsAndANewMappingReadsZeros) {
  ASSERT_EQ(munmap(base_, kPages * kPageSize), 0);
  // Writes still in flight own their slots until they complete.
  Stats s = StatsWhen(*t_.pager, [](const Stats& st) { return st.slots_in_use == 0; });
  EXPECT_EQ(s.slots_in_use, 0u);
  EXPECT_EQ(s.swapped_pages, 0u);
  EXPECT_EQ(s.resident_pages, 0u);
  // The same addresses, mapped again and paged again: no stale page.
  void* again = mmap(base_, kPages * kPageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  ASSERT_EQ(again, base_);
  ASSERT_TRUE(t_.pager->Adopt(base_, kPages * kPageSize).ok());
  for (size_t i = 0; i < kPages; i++) ASSERT_TRUE(IsZeroPage(page(i))) << "page " << i;
}

TEST_P(Lifecycle, MovedRegionKeepsItsContents) {
  void* dest = mmap(nullptr, kPages * kPageSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(dest, MAP_FAILED);
  void* moved = mremap(base_, kPages * kPageSize, kPages * kPageSize, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
  ASSERT_EQ(moved, dest);
  base_ = static_cast<unsigned char*>(moved);
  for (size_t i = 0; i < kPages; i++) ASSERT_TRUE(CheckPage(page(i), i, 1)) << "page " << i;
  // And it goes on paging at its new address.
  for (size_t i = 0; i < kPages; i++) FillPage(page(i), i, 4);
  for (size_t i = 0; i < kPages; i++) ASSERT_TRUE(CheckPage(page(i), i, 4)) << "page " << i;
  EXPECT_LE(stats().resident_pages, kLimit);
}

TEST_P(Lifecycle, GrownRegionKeepsItsContentsAndPagesTheNewTail) {
  void* grown = mremap(base_, kPages * kPageSize, 2 * kPages * kPageSize, MREMAP_MAYMOVE);
  ASSERT_NE(grown, MAP_FAILED);
  base_ = static_cast<unsigned char*>(grown);
  for (size_t i = 0; i < kPages; i++) ASSERT_TRUE(CheckPage(page(i), i, 1)) << "page " << i;
  for (size_t i = kPages; i < 2 * kPages; i++) ASSERT_TRUE(IsZeroPage(page(i))) << "page " << i;
  for (size_t i = 0; i < 2 * kPages; i++) FillPage(page(i), i, 5);
  for (size_t i = 0; i < 2 * kPages; i++) ASSERT_TRUE(CheckPage(page(i), i, 5)) << "page " << i;
  EXPECT_LE(stats().resident_pages, kLimit);
}

TEST_P(Lifecycle, UnmapOfTheMiddleLeavesBothEndsIntact) {
  const size_t first = kPages / 4, n = kPages / 2;
  ASSERT_TRUE(t_.pager->Unmap(page(first), n * kPageSize).ok());
  for (size_t i = 0; i < kPages; i++) {
    if (i >= first && i < first + n) continue;
    ASSERT_TRUE(CheckPage(page(i), i, 1)) << "page " << i;
  }
  EXPECT_EQ(stats().mapped_bytes, (kPages - n) * kPageSize);
}

TEST_P(Lifecycle, UnmapOutsideAnyRegionIsAnError) {
  void* other = mmap(nullptr, kPageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  Status s = t_.pager->Unmap(other, kPageSize);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not inside a paged region"), std::string::npos) << s.message();
  munmap(other, kPageSize);
}

TEST_P(Lifecycle, DestroyingThePagerBringsEveryPageHome) {
  t_.pager.reset();
  // The pager is gone: the memory is plain memory now and must hold it all.
  for (size_t i = 0; i < kPages; i++) ASSERT_TRUE(CheckPage(page(i), i, 1)) << "page " << i;
  munmap(base_, kPages * kPageSize);
}

TEST_P(Lifecycle, ReadOnlyMemoryAtTheLimitNeverHangsFaults) {
  // Read-only pages cannot be moved out (UFFDIO_MOVE wants writable
  // mappings): once they fill the limit, faults must go over it, not wait.
  ASSERT_EQ(mprotect(base_, kPages * kPageSize, PROT_READ), 0);
  auto reader = std::async(std::launch::async, [this] {
    for (size_t i = 0; i < kPages; i++) {
      if (!CheckPage(page(i), i, 1)) return static_cast<long>(i);
    }
    return -1L;
  });
  if (reader.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    fprintf(stderr, "faults on read-only memory hang at the limit\n");
    abort();  // a thread stuck in a fault cannot be joined
  }
  EXPECT_EQ(reader.get(), -1);
  ASSERT_EQ(mprotect(base_, kPages * kPageSize, PROT_READ | PROT_WRITE), 0);
  FillPages(base_, kPages, 2);
  ASSERT_EQ(FirstWrongPage(base_, kPages, 2), -1);
  Settle(*t_.pager);
  EXPECT_LE(stats().resident_pages, kLimit) << "writable again, the pages must be evictable again";
}

TEST_P(Lifecycle, ForkedChildReadsPagesEvictedBeforeTheFork) {
  t_.pager->BeginFork();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child has no pager thread: its memory must be complete as it is.
    for (size_t i = 0; i < kPages; i++) {
      if (!CheckPage(page(i), i, 1)) _exit(10);
    }
    for (size_t i = 0; i < kPages; i++) FillPage(page(i), i, 9);  // its own copy
    _exit(0);
  }
  t_.pager->EndFork();
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child read a page wrong";
  // The parent pages on, and the child's writes did not reach it.
  for (size_t i = 0; i < kPages; i++) ASSERT_TRUE(CheckPage(page(i), i, 1)) << "page " << i;
  Settle(*t_.pager);
  EXPECT_LE(stats().resident_pages, kLimit);
}

INSTANTIATE_TEST_SUITE_P(Modes, Lifecycle, ::testing::ValuesIn(kModes),
                         [](const auto& info) { return ModeName(info.param); });

}  // namespace
}  // namespace pager::testing

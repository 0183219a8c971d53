// Region lifecycle: munmap, madvise and mremap of paged memory (uffd events),
// and the pager's own Map/Unmap/destruction.
#include <gtest/gtest.h>
#include <string>
#include <vector>
#include <atomic>
#include <algorithm>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "test_hooks.h"
#include "test_util.h"

namespace pager::testing {
namespace {

constexpr uint64_t kLimit = 256;
constexpr size_t kPages = kLimit * 4;

int ThreadsNamed(const std::string& name) {
  int n = 0;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(t.path() / "comm");
    std::string line;
    if (std::getline(comm, line) && line == name) n++;
  }
  return n;
}

// Every thread of a pager starts with it. One the pager thread started later
// would read, in pthread_create, ld.so's TLS module list and the link maps of
// what the program dlopened since: paged memory under the preload
// (cow_breaker.h). The cow breaker's worker used to start at the first move
// refused after a fork.
TEST(PagerThreads, CowBreakerWorkerRunsFromTheStart) {
  ASSERT_EQ(ThreadsNamed("libpager-cow"), 0) << "another pager is running";
  TestPager t = MakePager(kLimit);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  // The worker names itself once running.
  while (ThreadsNamed("libpager-cow") == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  EXPECT_EQ(ThreadsNamed("libpager-cow"), 1);
}

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
  // Writes and seal batches in flight hold their new slots until they
  // return (a slow store, the seal worker): wait for those.
  Stats s = StatsWhen(*t_.pager, [](const Stats& st) { return st.slots_in_use == 0; });
  EXPECT_EQ(s.slots_in_use, 0u) << "discarded pages must release their slots";
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

// Issue 9, problem 3: mremap growing a region raises no event for the tail
// (UffdContract.MremapGrowth*), so the pager never knew it: mapped_bytes
// stayed at the old size (and later wrapped below zero), and destroying the
// pager left the tail's swapped pages behind (zeros).
TEST_P(Lifecycle, Issue9GrownTailIsCountedAndBroughtHome) {
  void* grown = mremap(base_, kPages * kPageSize, 2 * kPages * kPageSize, MREMAP_MAYMOVE);
  ASSERT_NE(grown, MAP_FAILED);
  base_ = static_cast<unsigned char*>(grown);
  for (size_t i = kPages; i < 2 * kPages; i++) FillPage(page(i), i, 1);  // evicts the tail's first pages
  EXPECT_EQ(stats().mapped_bytes, 2 * kPages * kPageSize);
  t_.pager.reset();
  EXPECT_EQ(FirstWrongPage(base_, 2 * kPages, 1), -1) << "every page, the tail's too, must be home";
  munmap(base_, 2 * kPages * kPageSize);
}

TEST_P(Lifecycle, Issue9UnmapOfAGrownRegionLeavesNothingMapped) {
  void* grown = mremap(base_, kPages * kPageSize, 2 * kPages * kPageSize, MREMAP_MAYMOVE);
  ASSERT_NE(grown, MAP_FAILED);
  base_ = static_cast<unsigned char*>(grown);
  FillPage(page(2 * kPages - 1), 2 * kPages - 1, 1);
  ASSERT_TRUE(t_.pager->Unmap(base_, 2 * kPages * kPageSize).ok());
  Stats s = stats();
  EXPECT_EQ(s.mapped_bytes, 0u) << "mapped_bytes must neither stay nor wrap";
  EXPECT_EQ(s.resident_pages, 0u);
  EXPECT_EQ(s.swapped_pages, 0u);
}

// Issue 9, problem 2: munmap returns once the pager has *read* the UNMAP
// event (UffdContract.MunmapReturnsOnceItsUnmapEventIsReadNotHandled). A region adopted at
// the same address right after was erased by the late handling of that
// event: Unmap refused it, and destroying the pager skipped it. A large
// region makes the event's handling long, so the race is met.
TEST_P(Lifecycle, Issue9MemoryAdoptedAtAnAddressJustUnmappedStaysPaged) {
  const size_t big = 16384;  // 64 MiB: handling its UNMAP takes a while
  unsigned char* r = t_.Map(big);
  for (int round = 1; round <= 20; round++) {
    for (size_t i = 0; i < big; i += 8) r[i * kPageSize] = 1;  // table chunks to discard
    ASSERT_EQ(munmap(r, big * kPageSize), 0);
    void* again = mmap(r, big * kPageSize, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0);
    ASSERT_EQ(again, r);
    ASSERT_TRUE(t_.pager->Adopt(r, big * kPageSize).ok());
    FillPages(r, kLimit * 2, round);  // evicted: only the pager has them
    t_.pager->Sync();
    ASSERT_EQ(stats().mapped_bytes, (kPages + big) * kPageSize) << "round " << round;
  }
  ASSERT_TRUE(t_.pager->Unmap(page(0), kPages * kPageSize).ok());
  t_.pager.reset();
  EXPECT_EQ(FirstWrongPage(r, kLimit * 2, 20), -1) << "the adopted region's pages must come home";
  munmap(r, big * kPageSize);
}

namespace {
// Puts the calling thread on `cpu`, with SCHED_FIFO `prio` if prio > 0.
bool Place(int cpu, int prio) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) return false;
  if (prio == 0) return true;
  sched_param sp{};
  sp.sched_priority = prio;
  return sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
}
// Every thread of this process but `keep` onto `cpu` (the pager's included).
void MoveOtherThreads(int cpu, const std::vector<pid_t>& keep) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    const pid_t tid = static_cast<pid_t>(std::stol(e.path().filename().string()));
    if (std::find(keep.begin(), keep.end(), tid) == keep.end()) sched_setaffinity(tid, sizeof set, &set);
  }
}
char TaskState(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  std::getline(f, line);
  const size_t close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() ? '?' : line[close + 2];
}
}  // namespace

// Address reuse across threads, in the order a hammer met about once in
// twelve runs (EvictionRace.RegionMovedIntoARangeAnotherThreadJustFreed…),
// forced here every time. Thread A mremaps its region away from X; the
// kernel queues the REMAP, then, once A runs again, the UNMAP of X. Between
// the two, thread B maps X and mremaps its own (swapped-out) region there.
// A's late UNMAP of X must not discard B's pages. The order is forced by
// holding the pager thread while A's REMAP waits, and a SCHED_FIFO spinner
// keeping A off its CPU after the REMAP is read, until B is done.
TEST_P(Lifecycle, LateUnmapOfARangeAnotherThreadMovedInKeepsItsPages) {
  cpu_set_t all;
  sched_getaffinity(0, sizeof all, &all);
  int cpus[2] = {-1, -1};
  for (int c = 0, n = 0; c < CPU_SETSIZE && n < 2; c++) {
    if (CPU_ISSET(c, &all)) cpus[n++] = c;
  }
  if (cpus[1] < 0) GTEST_SKIP() << "needs two CPUs";
  const size_t a_pages = 64;
  unsigned char* x = t_.Map(a_pages);
  for (size_t i = 0; i < a_pages; i++) FillPage(x + i * kPageSize, i, 7);
  void* z = mmap(nullptr, a_pages * kPageSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(z, MAP_FAILED);
  // B's region is the fixture's, mostly swapped out; its first a_pages go to X.
  t_.pager->Sync();
  std::atomic<pid_t> a_tid{0}, hog_tid{0};
  std::atomic<int> a_go{0}, a_calling{0}, hog_go{0}, hog_stop{0}, placed{0};
  std::atomic<bool> a_ok{false};
  std::thread a([&] {
    a_tid = static_cast<pid_t>(syscall(SYS_gettid));
    placed += Place(cpus[0], 10) ? 1 : 100;
    while (!a_go.load()) usleep(100);
    a_calling = 1;
    a_ok = mremap(x, a_pages * kPageSize, a_pages * kPageSize, MREMAP_MAYMOVE | MREMAP_FIXED, z) == z;
  });
  std::thread hog([&] {
    hog_tid = static_cast<pid_t>(syscall(SYS_gettid));
    placed += Place(cpus[0], 20) ? 1 : 100;
    while (!hog_go.load()) usleep(100);
    // At most a second: kernel work queued on this CPU (a kworker) waits
    // for the spinner too, and must not wait for long.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (!hog_stop.load() && std::chrono::steady_clock::now() < until) {
    }
  });
  while (placed.load() < 2) usleep(100);
  if (placed.load() != 2) {
    hog_go = hog_stop = a_go = 1;
    hog.join();
    a.join();
    GTEST_SKIP() << "SCHED_FIFO not permitted here";
  }
  MoveOtherThreads(cpus[1], {a_tid.load(), hog_tid.load()});
  Place(cpus[1], 0);

  std::atomic<int> stalled{0};
  std::thread stall([&] { PagerTestPeer::Stall(*t_.pager, 300, &stalled); });
  while (!stalled.load()) usleep(100);
  a_go = 1;  // A's REMAP is queued, unread: A sleeps until the pager reads it
  // The wait for an event to be read is killable: state D.
  bool asleep = false;
  for (int i = 0; i < 20000 && !asleep; i++) {
    const char st = TaskState(a_tid);
    asleep = a_calling.load() && (st == 'D' || st == 'S');
    if (!asleep) usleep(100);
  }
  hog_go = 1;  // A is asleep; once woken, it stays off CPU 0 until hog_stop
  stall.join();
  t_.pager->Sync();  // A's REMAP has been read and handled; its UNMAP is not queued yet
  // B: X is free (A's mremap unmapped it before queueing its REMAP).
  void* at = mmap(x, a_pages * kPageSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  const bool b_mapped = at == x;
  void* moved = b_mapped ? mremap(base_, a_pages * kPageSize, a_pages * kPageSize, MREMAP_MAYMOVE | MREMAP_FIXED, x)
                         : MAP_FAILED;
  t_.pager->Sync();  // B's REMAP handled, still before A's UNMAP
  const char a_state = TaskState(a_tid);
  hog_stop = 1;
  hog.join();
  a.join();
  ASSERT_TRUE(asleep) << "A never slept in its mremap: the pager did not hold its REMAP";
  ASSERT_TRUE(a_ok.load());
  ASSERT_TRUE(b_mapped) << "X was not free for B";
  ASSERT_EQ(moved, static_cast<void*>(x));
  EXPECT_EQ(a_state, 'R') << "A ran before B was done: the order was not forced";
  t_.pager->Sync();
  EXPECT_EQ(FirstWrongPage(x, a_pages, 1), -1) << "B's pages, moved to X before A's late UNMAP of X";
  EXPECT_EQ(FirstWrongPage(static_cast<unsigned char*>(z), a_pages, 7), -1) << "A's pages, moved to Z";
  munmap(x, a_pages * kPageSize);
  munmap(z, a_pages * kPageSize);
  sched_setaffinity(0, sizeof all, &all);  // later tests' threads inherit it
}

// Issue 9, problem 9: the second of two concurrent BeginFork calls replaced
// the first (which never returned), and the first EndFork resumed eviction
// for both: a child forked under the second read zeros.
TEST_P(Lifecycle, Issue9ConcurrentBeginForkCallsEachHoldEvictionUntilTheirEndFork) {
  auto first = std::async(std::launch::async, [this] { t_.pager->BeginFork(); });
  auto second = std::async(std::launch::async, [this] { t_.pager->BeginFork(); });
  for (auto* f : {&first, &second}) {
    if (f->wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      fprintf(stderr, "BeginFork never returned\n");
      abort();  // a thread stuck in BeginFork cannot be joined
    }
  }
  t_.pager->EndFork();  // one holder ends; the other still holds eviction
  for (size_t i = 0; i < kPages; i++) FillPage(page(i), i, 2);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(FirstWrongPage(base_, kPages, 2) == -1 ? 0 : 10);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child read a page wrong";
  t_.pager->EndFork();
  Settle(*t_.pager);
  EXPECT_LE(stats().resident_pages, kLimit) << "after the last EndFork, paging resumes";
  EXPECT_EQ(FirstWrongPage(base_, kPages, 2), -1);
}

// Issue 9, problem 10: mlock of part of the memory. UFFDIO_MOVE refuses
// mlocked pages (UffdContract.MoveFromAReadOnlyProtNoneOrMlockedSourceFailsWithEinval): they stay, counted as
// refusals, and the others are evicted around them. Unlocked, they go.
TEST_P(Lifecycle, Issue9MlockedPagesStayAndAreEvictedOnceUnlocked) {
  for (size_t i = 0; i < kLimit / 2; i++) ASSERT_TRUE(CheckPage(page(i), i, 1));
  // The system calls directly: the sanitizers' mlock interceptors do nothing.
  ASSERT_EQ(syscall(SYS_mlock, page(0), kLimit / 2 * kPageSize), 0) << strerror(errno);
  for (size_t i = kLimit / 2; i < kPages; i++) FillPage(page(i), i, 2);
  Stats s = stats();
  EXPECT_GT(s.move_refusals, 0u);
  for (size_t i = kLimit / 2; i < kPages; i++) ASSERT_TRUE(CheckPage(page(i), i, 2)) << "page " << i;
  ASSERT_EQ(syscall(SYS_munlock, page(0), kLimit / 2 * kPageSize), 0);
  for (size_t i = kLimit / 2; i < kPages; i++) FillPage(page(i), i, 3);
  Settle(*t_.pager);
  EXPECT_LE(stats().resident_pages, kLimit) << "unlocked pages must be evictable again";
  EXPECT_EQ(FirstWrongPage(base_, kLimit / 2, 1), -1);
}

// Issue 9, problem 13: a thread asleep on a swap-in whose region is moved
// away slept forever: the read's install happens at the new address, and the
// kernel wakes no one at the old one (UffdContract.FaulterAsleepAtAnAddressMremappedAway*). With
// MREMAP_DONTUNMAP the old range stays mapped and registered, and empty: the
// sleeper, woken, reads zeros there; the page is at the new address.
TEST_P(Lifecycle, Issue9ThreadAsleepOnASwapInIsWokenWhenTheRegionMoves) {
  t_.store->DelayCompletions(2'000'000);
  size_t victim = kPages;
  for (size_t i = 0; i < kPages && victim == kPages; i++) {
    if (PagerTestPeer::StateOf(*t_.pager, page(i)) == PageState::kSwapped) victim = i;
  }
  ASSERT_LT(victim, kPages);
  auto reader = std::async(std::launch::async, [this, victim] { return IsZeroPage(page(victim)); });
  while (PagerTestPeer::StateOf(*t_.pager, page(victim)) != PageState::kReading) std::this_thread::yield();
  // The system call directly: TSan's mremap interceptor refuses MREMAP_DONTUNMAP.
  void* moved = reinterpret_cast<void*>(syscall(SYS_mremap, base_, kPages * kPageSize, kPages * kPageSize,
                                                MREMAP_MAYMOVE | MREMAP_DONTUNMAP, nullptr));
  ASSERT_NE(moved, MAP_FAILED) << strerror(errno);
  ASSERT_EQ(reader.wait_for(std::chrono::seconds(30)), std::future_status::ready)
      << "the thread asleep at the old address was never woken";
  EXPECT_TRUE(reader.get()) << "the old range is empty after MREMAP_DONTUNMAP";
  auto* now = static_cast<unsigned char*>(moved);
  EXPECT_TRUE(CheckPage(now + victim * kPageSize, victim, 1));
  t_.store->DelayCompletions(0);
  EXPECT_EQ(FirstWrongPage(now, kPages, 1), -1);
}

// Issue 9, problem 12: page-table chunks of unmapped regions were never
// freed (queue bits kept them), a little more every round of map, touch and
// unmap. Metadata must come back to where it was.
TEST_P(Lifecycle, Issue9UnmappedRegionsGiveTheirPageTableBack) {
  const size_t big = 262144;  // 1 GiB of address space, one page in 64 touched
  uint64_t after_first = 0;
  for (int round = 1; round <= 5; round++) {
    unsigned char* r = t_.Map(big);
    for (size_t i = 0; i < big; i += 64) r[i * kPageSize] = 1;
    if (round % 2) {
      ASSERT_TRUE(t_.pager->Unmap(r, big * kPageSize).ok());
    } else {
      ASSERT_EQ(munmap(r, big * kPageSize), 0);  // the UNMAP event's path
    }
    Stats s = stats();
    if (round == 1) after_first = s.metadata_bytes;
    EXPECT_LE(s.metadata_bytes, after_first + (64u << 10)) << "round " << round;
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, Lifecycle, ::testing::ValuesIn(kModes),
                         [](const auto& info) { return ModeName(info.param); });

// Issue 9, problem 4: the write-protect fallback (kernels without UFFDIO_MOVE)
// was retired: on such a kernel Pager::Create says so, naming the version.
TEST(Retired, AKernelWithoutMoveIsRefusedWithTheVersionItNeeds) {
  Config c = TestConfig(256);
  c.disable_features = "move";
  auto p = Pager::Create(c);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("UFFDIO_MOVE"), std::string::npos) << p.status().message();
  EXPECT_NE(p.status().message().find("6.8"), std::string::npos) << p.status().message();
}

}  // namespace
}  // namespace pager::testing

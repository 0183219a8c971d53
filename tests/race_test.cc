// Hammer tests of the fault path's races. Every one writes page-specific
// patterns while eviction runs and verifies every byte afterwards; each runs
// with a store that completes at once and with one that completes late and
// out of order (test_util.h, kModes).
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/mman.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace pager::testing {
namespace {

class EvictionRace : public ::testing::TestWithParam<const char*> {};

bool HoldsVersion(const unsigned char* p, size_t i, uint64_t version) {
  return version == 0 ? IsZeroPage(p) : CheckPage(p, i, version);
}

// Checks every page of [base, base + version.size()) against its version (0:
// zeros) and reports the first few that differ, named with `where`. Returns
// how many differ.
uint64_t WrongPages(const unsigned char* base, const std::vector<uint64_t>& version, const std::string& where) {
  uint64_t wrong = 0;
  for (size_t i = 0; i < version.size(); i++) {
    if (!HoldsVersion(base + i * kPageSize, i, version[i]) && wrong++ < 5) {
      int holds = -1;
      for (uint64_t v = 0; v <= version[i] + 2; v++) {
        if (HoldsVersion(base + i * kPageSize, i, v)) holds = static_cast<int>(v);
      }
      ADD_FAILURE() << where << "page " << i << (version[i] == 0 ? " is not zeros" : " lost version ")
                    << (version[i] == 0 ? "" : std::to_string(version[i])) << " (holds " << holds << ")";
    }
  }
  return wrong;
}

// Threads own disjoint pages (page % threads), write new versions of random
// own pages and re-read random own pages, in a region 8x the limit.
TEST_P(EvictionRace, WriteDuringEvictionIsNeverLost) {
  const uint64_t limit = 256;
  auto t = MakePager(limit, GetParam());
  const size_t pages = limit * 8;
  auto* base = t.Map(pages);
  const int threads = 4;
  const int iters = 6000;
  std::vector<uint64_t> version(pages, 0);  // entry i written only by thread i % threads
  std::atomic<uint64_t> bad{0};
  std::vector<std::thread> th;
  for (int k = 0; k < threads; k++) {
    th.emplace_back([&, k] {
      std::mt19937_64 rng(k * 7919 + 1);
      const size_t mine = pages / threads;
      for (int it = 0; it < iters; it++) {
        size_t i = (rng() % mine) * threads + k;
        unsigned char* p = base + i * kPageSize;
        if (!HoldsVersion(p, i, version[i])) bad++;
        version[i]++;
        FillPage(p, i, version[i]);
      }
    });
  }
  for (auto& x : th) x.join();
  EXPECT_EQ(bad.load(), 0u) << "pages read back wrong during the run";
  EXPECT_EQ(WrongPages(base, version, ""), 0u);
  Stats s = t.SyncedStats();
  EXPECT_GT(s.evictions_written, pages) << "eviction must have run throughout";
  EXPECT_GT(s.faults_swapin, 0u);
  EXPECT_LE(s.resident_pages, limit);
}

// Every thread owns a slice of every page, so several threads fault on, and
// write, the same page at once while it is being evicted.
TEST_P(EvictionRace, ConcurrentWritersOfOnePageKeepEverySlice) {
  const uint64_t limit = 256;
  auto t = MakePager(limit, GetParam());
  const size_t pages = limit * 8;
  auto mem = t.pager->Map(pages * kPageSize);
  ASSERT_TRUE(mem.ok());
  auto* base = static_cast<uint64_t*>(*mem);
  constexpr int kThreads = 4;
  constexpr size_t kWords = kPageSize / 8 / kThreads;
  const int rounds = 6;
  std::vector<std::thread> th;
  std::atomic<uint64_t> bad{0};
  for (int k = 0; k < kThreads; k++) {
    th.emplace_back([&, k] {
      for (int r = 1; r <= rounds; r++) {
        // Threads walk the region in different orders, so they meet.
        for (size_t n = 0; n < pages; n++) {
          size_t i = (k % 2 == 0) ? n : pages - 1 - n;
          uint64_t* slice = base + i * (kPageSize / 8) + k * kWords;
          for (size_t w = 0; w < kWords; w++) {
            uint64_t want = r == 1 ? 0 : (i << 20) ^ (uint64_t(k) << 16) ^ (r - 1) ^ (w << 32);
            if (slice[w] != want) bad++;
            slice[w] = (i << 20) ^ (uint64_t(k) << 16) ^ r ^ (w << 32);
          }
        }
      }
    });
  }
  for (auto& x : th) x.join();
  EXPECT_EQ(bad.load(), 0u);
  uint64_t wrong = 0;
  for (size_t i = 0; i < pages; i++) {
    for (int k = 0; k < kThreads; k++) {
      const uint64_t* slice = base + i * (kPageSize / 8) + k * kWords;
      for (size_t w = 0; w < kWords; w++) {
        if (slice[w] != ((i << 20) ^ (uint64_t(k) << 16) ^ uint64_t(rounds) ^ (w << 32))) wrong++;
      }
    }
  }
  EXPECT_EQ(wrong, 0u);
}

// A page read back from its slot is clean; written again, it must be written
// back again, not dropped as clean (the checksum decides, not a dirty bit).
TEST_P(EvictionRace, RewrittenSwappedInPageIsWrittenBackAgain) {
  const uint64_t limit = 256;
  auto t = MakePager(limit, GetParam());
  const size_t pages = limit * 4;
  auto* base = t.Map(pages);
  std::vector<uint64_t> version(pages, 0);
  for (int round = 1; round <= 4; round++) {
    for (size_t i = 0; i < pages; i++) {
      unsigned char* p = base + i * kPageSize;
      if (version[i] != 0) {
        ASSERT_TRUE(CheckPage(p, i, version[i])) << "round " << round << " page " << i;
      }
      // Odd pages change every round; even pages only in round 1, so they
      // are swapped in clean, and a wrongly kept slot would show up on odd.
      if (round == 1 || i % 2 == 1) FillPage(p, i, ++version[i]);
    }
  }
  Stats s = t.SyncedStats();
  EXPECT_GT(s.evictions_written, pages);
}

// Clean pages are dropped without I/O: read-only passes over swapped data
// write nothing back.
TEST_P(EvictionRace, CleanPagesAreDroppedWithoutWriteBack) {
  const uint64_t limit = 256;
  auto t = MakePager(limit, GetParam());
  const size_t pages = limit * 4;
  auto* base = t.Map(pages);
  FillPages(base, pages, 1);
  t.pager->Sync();
  // Pass over everything once read-only, so resident pages were swapped in.
  for (size_t i = 0; i < pages; i++) ASSERT_TRUE(CheckPage(base + i * kPageSize, i, 1));
  Stats before = t.SyncedStats();
  for (int pass = 0; pass < 3; pass++) {
    for (size_t i = 0; i < pages; i++) ASSERT_TRUE(CheckPage(base + i * kPageSize, i, 1));
  }
  Stats after = t.SyncedStats();
  EXPECT_GT(after.faults_swapin, before.faults_swapin);
  EXPECT_GT(after.evictions_clean - before.evictions_clean, 2 * pages);
  EXPECT_EQ(after.bytes_written, before.bytes_written) << "read-only passes wrote pages back";
}

// MADV_DONTNEED and MADV_FREE (what jemalloc's purge and free() do) while
// the pages are being evicted, written back and swapped in, with the store
// holding every op in flight for up to 300 us. Threads own blocks of 8 pages
// (block b: thread b % threads). A discarded page must read as zeros, never
// as the bytes it held before: an allocator hands it out as calloc memory.
TEST_P(EvictionRace, DiscardDuringEvictionAndSwapInReadsZeros) {
  const uint64_t limit = 256;
  auto t = MakePager(limit, GetParam());
  t.store->DelayCompletions(300);
  const size_t pages = limit * 8, block = 8;
  auto* base = t.Map(pages);
  const int threads = 4;
  const int iters = 6000;
  std::vector<uint64_t> version(pages, 0);  // 0: must read as zeros
  std::vector<uint64_t> next(pages, 0);     // versions are never reused
  std::atomic<uint64_t> bad{0}, discards{0};
  std::vector<std::thread> th;
  for (int k = 0; k < threads; k++) {
    th.emplace_back([&, k] {
      std::mt19937_64 rng(k * 104729 + 3);
      const size_t blocks = pages / block / threads;
      for (int it = 0; it < iters; it++) {
        const size_t first = ((rng() % blocks) * threads + k) * block;
        const size_t i = first + rng() % block;
        unsigned char* p = base + i * kPageSize;
        if (!HoldsVersion(p, i, version[i]) && bad++ < 5) ADD_FAILURE() << "page " << i << " read wrong before op " << it;
        const unsigned r = rng() % 100;
        if (r < 20) {
          const size_t n = 1 + rng() % (first + block - i);
          const int advice = r < 15 ? MADV_DONTNEED : MADV_FREE;
          if (madvise(p, n * kPageSize, advice) != 0) bad++;
          discards++;
          if (advice == MADV_DONTNEED) {
            for (size_t j = i; j < i + n; j++) version[j] = 0;
            continue;
          }
          // After MADV_FREE a page reads its old bytes or zeros until it is
          // written; a write makes it the program's again.
          for (size_t j = i; j < i + n; j++) FillPage(base + j * kPageSize, j, version[j] = ++next[j]);
          continue;
        }
        if (r < 70) FillPage(p, i, version[i] = ++next[i]);
      }
    });
  }
  for (auto& x : th) x.join();
  EXPECT_EQ(bad.load(), 0u) << "pages read back wrong during the run";
  EXPECT_EQ(WrongPages(base, version, ""), 0u);
  Stats s = t.SyncedStats();
  EXPECT_GT(s.evictions_written, pages) << "eviction must have run throughout";
  EXPECT_GT(s.faults_swapin, pages / 2);
  EXPECT_GT(discards.load(), 1000u);
}

// A thread asleep on a page's swap-in while another thread discards the
// page: the read completes for a page that is no longer there, and the
// sleeper must still be woken (it then finds zeros). Readers share the pages
// and never write them, so every read sees version 1 or zeros.
TEST_P(EvictionRace, ThreadWaitingForASwapInOfADiscardedPageIsWoken) {
  const uint64_t limit = 256;
  auto t = MakePager(limit, GetParam());
  const size_t pages = limit * 8;
  auto* base = t.Map(pages);
  FillPages(base, pages, 1);
  Settle(*t.pager);
  t.store->DelayCompletions(2000);  // swap-ins take up to 2 ms: discards land inside them
  const int readers = 3, reads = 1500;
  std::atomic<int> finished{0};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bad{0};
  std::vector<std::thread> th;
  for (int k = 0; k < readers; k++) {
    th.emplace_back([&, k] {
      std::mt19937_64 rng(k * 31 + 7);
      for (int it = 0; it < reads; it++) {
        const size_t i = rng() % pages;
        const unsigned char* p = base + i * kPageSize;
        if (!IsZeroPage(p) && !CheckPage(p, i, 1)) bad++;
      }
      finished++;
    });
  }
  std::thread discarder([&] {
    std::mt19937_64 rng(99);
    while (!stop.load()) {
      madvise(base + (rng() % pages) * kPageSize, kPageSize, MADV_DONTNEED);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  for (int s = 0; s < 1200 && finished.load() < readers; s++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stop = true;
  discarder.join();
  if (finished.load() < readers) {
    // The sleepers cannot be joined; nothing will wake them.
    fprintf(stderr, "%d of %d readers still asleep in a fault after 120 s: a discarded page's waiters were "
            "never woken\n", readers - finished.load(), readers);
    std::abort();
  }
  for (auto& x : th) x.join();
  EXPECT_EQ(bad.load(), 0u) << "a page read neither its bytes nor zeros";
  Stats s = t.SyncedStats();
  EXPECT_GT(s.faults_swapin, 100u);
}

// Four threads each own a region and move it every 200 operations while
// its pages are being evicted, written back and swapped in (the store holds
// ops in flight): page entries, and the ops in flight for them, must follow
// the pages to the new address. With `own_targets`, each thread moves its
// region back and forth between two ranges reserved for it before the
// threads start; without, it moves to wherever a fresh mmap lands, which
// may be a range another thread's move freed an instant before.
void RegionMovesKeepEveryPage(const char* mode, bool own_targets) {
  const uint64_t limit = 256;
  auto t = MakePager(limit, mode);
  t.store->DelayCompletions(1000);
  const int threads = 4;
  const size_t pages = limit * 2;  // per region: 8x the limit in all
  const size_t len = pages * kPageSize;
  const int iters = 2000;
  std::atomic<uint64_t> bad{0}, moves{0};
  std::vector<unsigned char*> bases, targets;
  for (int k = 0; k < threads; k++) {
    bases.push_back(t.Map(pages));
    void* r = own_targets ? mmap(nullptr, 2 * len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : nullptr;
    ASSERT_NE(r, MAP_FAILED);
    targets.push_back(static_cast<unsigned char*>(r));
  }
  std::vector<std::thread> th;
  for (int k = 0; k < threads; k++) {
    th.emplace_back([&, k] {
      unsigned char* base = bases[k];
      std::vector<uint64_t> version(pages, 0);
      std::mt19937_64 rng(k * 7 + 11);
      for (int it = 1; it <= iters; it++) {
        const size_t i = rng() % pages;
        unsigned char* p = base + i * kPageSize;
        if (!HoldsVersion(p, i, version[i]) && bad++ < 5) {
          ADD_FAILURE() << "region " << k << " page " << i << " wrong at op " << it;
        }
        if (rng() % 2) FillPage(p, i, ++version[i]);
        if (it % 200 == 0) {
          void* to = own_targets ? targets[k] + (it / 200 % 2) * len
                                 : mmap(nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
          void* moved = mremap(base, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
          if (to == MAP_FAILED || moved != to) {
            bad++;
            return;
          }
          base = static_cast<unsigned char*>(moved);
          moves++;
          // Right away, while the writes started before the move are still
          // in flight: every page, at its new address.
          bad += WrongPages(base, version, "move " + std::to_string(it / 200) + ", region " + std::to_string(k) + ": ");
        }
      }
    });
  }
  for (auto& x : th) x.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_EQ(moves.load(), uint64_t{threads} * (iters / 200));
  Stats s = t.SyncedStats();
  EXPECT_GT(s.evictions_written, pages);
  EXPECT_GT(s.faults_swapin, pages);
}

TEST_P(EvictionRace, RegionMovedDuringEvictionKeepsEveryPage) { RegionMovesKeepEveryPage(GetParam(), true); }

// Address reuse across threads (docs/design.md). The kernel queues a
// mremap's REMAP and its UNMAP of the old range only after dropping the mmap
// lock; another thread can map the freed range and mremap into it in
// between, and the pager reads the events out of address order. Before the
// pager set aside the state it found at a REMAP's target, thread A's late
// UNMAP of its old range discarded B's pages there, about one run in twelve
// to thirty ("move 1, region 2: page 0 lost version 1 (holds 0)"; the event
// log showed B's REMAP into 0x7f54a3a00000 read while A's UNMAP of it was
// pending). Lifecycle.LateEventsOfARangeReusedByAnotherThread… forces the
// order every run.
TEST_P(EvictionRace, RegionMovedIntoARangeAnotherThreadJustFreedKeepsEveryPage) {
  RegionMovesKeepEveryPage(GetParam(), false);
}

// Issue 9, problem 13: API calls (Map, Unmap, Sync, GetStats) from a thread
// whose stack is paged memory (the preload adopts fiber and thread stacks of
// 1 MiB and more), while eviction moves that stack out. The pager thread
// must never read the caller's stack: a request there, evicted before the
// pager read it, made the pager thread fault on itself.
TEST_P(EvictionRace, Issue9CallsFromAThreadWithAPagedStack) {
  if (!kPagedStacksWork) GTEST_SKIP() << "TSan's thread state lives in a paged stack's TLS (test_util.h)";
  const uint64_t limit = 256;
  auto t = MakePager(limit, GetParam());
  const size_t stack_pages = 256;  // 1 MiB
  unsigned char* stack = t.Map(stack_pages);
  unsigned char* data = t.Map(limit * 8);
  std::atomic<bool> stop{false};
  std::thread churn([&] {  // keeps eviction busy, the stack's pages included
    for (uint64_t v = 1; !stop; v++) FillPages(data, limit * 8, v);
  });
  struct Args {
    TestPager* t;
    uint64_t failures = 0;
  } args{&t};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, stack, stack_pages * kPageSize);
  pthread_t caller;
  ASSERT_EQ(pthread_create(
                &caller, &attr,
                [](void* p) -> void* {
                  auto* a = static_cast<Args*>(p);
                  // Its control block is on the paged stack (ThreadsWithPagedStacks… below).
                  if (!a->t->pager->PinThisThread().ok()) a->failures++;
                  for (int i = 0; i < 1000; i++) {
                    auto m = a->t->pager->Map(64 * kPageSize);
                    if (!m.ok()) {
                      a->failures++;
                      continue;
                    }
                    static_cast<unsigned char*>(*m)[0] = 1;
                    a->t->pager->Sync();
                    if (!a->t->pager->Unmap(*m, 64 * kPageSize).ok()) a->failures++;
                  }
                  return nullptr;
                },
                &args),
            0);
  pthread_attr_destroy(&attr);
  pthread_join(caller, nullptr);
  stop = true;
  churn.join();
  EXPECT_EQ(args.failures, 0u);
  EXPECT_GT(t.SyncedStats().evictions_written, limit);
}

// Threads whose stacks are paged memory start and exit while eviction runs.
// A thread's control block, with the tid word the kernel clears as the
// thread exits, is at the top of its stack; that write raises no userfault
// (UffdContract.ExitingThreadsClearOfItsTidWordRaisesNoFault), so with the
// page swapped out then, the word stays set and pthread_join never returns.
// Each thread pins its control block first (Pager::PinThisThread); a join
// that does not return within 10 s is the bug.
TEST_P(EvictionRace, ThreadsWithPagedStacksAreJoinedWhileEvictionRuns) {
  if (!kPagedStacksWork) GTEST_SKIP() << "TSan's thread state lives in a paged stack's TLS (test_util.h)";
  const uint64_t limit = 256;
  auto t = MakePager(limit, GetParam());
  const size_t stacks = 8, stack_pages = 16;  // 64 KiB each
  unsigned char* stack_area = t.Map(stacks * stack_pages);
  unsigned char* data = t.Map(limit * 8);
  std::atomic<bool> stop{false};
  std::thread churn([&] {  // eviction takes the stacks' pages as well
    for (uint64_t v = 1; !stop; v++) FillPages(data, limit * 8, v);
  });
  struct Args {
    Pager* pager;
    std::atomic<uint64_t>* failures;
  };
  std::atomic<uint64_t> failures{0};
  Args args{t.pager.get(), &failures};
  uint64_t joined = 0, hung = 0;
  for (int round = 0; round < 100 && hung == 0; round++) {
    pthread_t th[stacks];
    for (size_t k = 0; k < stacks; k++) {
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setstack(&attr, stack_area + k * stack_pages * kPageSize, stack_pages * kPageSize);
      ASSERT_EQ(pthread_create(
                    &th[k], &attr,
                    [](void* p) -> void* {
                      auto* a = static_cast<Args*>(p);
                      if (!a->pager->PinThisThread().ok()) (*a->failures)++;
                      // A little stack work, then a pause in which the
                      // churn evicts what is cold: glibc's exit path touches
                      // parts of the control block again, but not always the
                      // page of the tid word.
                      volatile unsigned char buf[8192];
                      for (size_t i = 0; i < sizeof buf; i += 512) buf[i] = static_cast<unsigned char>(i);
                      usleep(20'000);
                      return nullptr;
                    },
                    &args),
                0);
      pthread_attr_destroy(&attr);
    }
    for (size_t k = 0; k < stacks; k++) {
      timespec deadline;
      clock_gettime(CLOCK_REALTIME, &deadline);
      deadline.tv_sec += 10;
      if (pthread_timedjoin_np(th[k], nullptr, &deadline) == 0) {
        joined++;
      } else {
        hung++;  // left behind: its stack is never unmapped by this test
      }
    }
  }
  stop = true;
  churn.join();
  EXPECT_EQ(hung, 0u) << "threads on paged stacks that exited but were never joined";
  EXPECT_EQ(failures.load(), 0u);
  EXPECT_GT(t.SyncedStats().evictions_written, limit);
  if (hung > 0) std::quick_exit(1);  // a stuck join's stack must outlive the pager; stop here
}

INSTANTIATE_TEST_SUITE_P(Modes, EvictionRace, ::testing::ValuesIn(kModes),
                         [](const auto& info) { return ModeName(info.param); });

}  // namespace
}  // namespace pager::testing

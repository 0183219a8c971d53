// The reserve: one level for staging pages and the pager's own reserve
// arena, the arena's extents inside the pool, the pager's threads allocating
// only from it, exhaustion falling back instead of failing, and one pager's
// debt never throttling another.
//
// This binary interposes malloc (forwarding to jemalloc's mallocx family) to
// count every allocation made on a thread the test did not create, i.e. on
// the pager's and the store's threads, that lands outside the reserve arena.
#include <gtest/gtest.h>
#include <jemalloc/jemalloc.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <new>
#include <cerrno>
#include <thread>
#include <vector>

#include "pager/pager.h"
#include "reserve.h"
#include "reserve_arena.h"
#include "test_util.h"

namespace {

thread_local bool t_app_thread = false;  // set by the test's own threads
std::atomic<bool> g_counting{false};
std::atomic<uint64_t> g_pager_allocs{0}, g_off_pool{0};

void* Note(void* p) {
  if (p != nullptr && !t_app_thread && g_counting.load(std::memory_order_relaxed)) {
    g_pager_allocs.fetch_add(1, std::memory_order_relaxed);
    if (!pager::ReserveArena::InAnyRegion(p)) g_off_pool.fetch_add(1, std::memory_order_relaxed);
  }
  return p;
}

struct MarkMainThread {
  MarkMainThread() { t_app_thread = true; }
} g_mark_main;

}  // namespace

extern "C" {
void* malloc(size_t n) { return Note(mallocx(n == 0 ? 1 : n, 0)); }
void free(void* p) {
  if (p != nullptr) dallocx(p, 0);
}
void* calloc(size_t n, size_t m) {
  if (m != 0 && n > SIZE_MAX / m) return nullptr;
  return Note(mallocx(n * m == 0 ? 1 : n * m, MALLOCX_ZERO));
}
void* realloc(void* p, size_t n) {
  if (p == nullptr) return malloc(n);
  if (n == 0) {
    free(p);
    return nullptr;
  }
  return Note(rallocx(p, n, 0));
}
int posix_memalign(void** out, size_t align, size_t n) {
  void* p = Note(mallocx(n == 0 ? 1 : n, MALLOCX_ALIGN(align)));
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void* aligned_alloc(size_t align, size_t n) { return Note(mallocx(n == 0 ? 1 : n, MALLOCX_ALIGN(align))); }
void* memalign(size_t align, size_t n) { return aligned_alloc(align, n); }
void* valloc(size_t n) { return aligned_alloc(4096, n); }
size_t malloc_usable_size(void* p) { return p == nullptr ? 0 : sallocx(p, 0); }
}

// jemalloc exports its own operator new: interposed too, so C++ allocations
// are counted.
void* operator new(size_t n) {
  void* p = malloc(n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept { return malloc(n); }
void* operator new[](size_t n, const std::nothrow_t&) noexcept { return malloc(n); }
void* operator new(size_t n, std::align_val_t a) {
  void* p = aligned_alloc(static_cast<size_t>(a), n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void* operator new[](size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { free(p); }
void operator delete[](void* p) noexcept { free(p); }
void operator delete(void* p, size_t) noexcept { free(p); }
void operator delete[](void* p, size_t) noexcept { free(p); }
void operator delete(void* p, std::align_val_t) noexcept { free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { free(p); }

namespace pager::testing {
namespace {

// An arena of the tests' own, as a Reserve would acquire one.
constexpr uint64_t kArenaBytes = 3u << 20;
ReserveArena* Arena() {
  static ReserveArena* a = ReserveArena::Acquire(kArenaBytes);
  if (a == nullptr) abort();
  return a;
}

// Runs fn on a thread bound to `a`, as a pager thread would be.
template <class Fn>
void OnPagerThread(const ReserveArena* a, Fn fn) {
  std::thread t([&] {
    ReserveArena::EnterThread(a);
    fn();
  });
  t.join();
}

TEST(ReserveAccounting, StagingAndArenaShareOneLevel) {
  auto r = Reserve::Create(8u << 20, Reserve::ArenaBytes(8u << 20, 0));
  ASSERT_TRUE(r.ok());
  Reserve& res = **r;
  ReserveArena* a = res.arena();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(res.total_pages(), res.staging_pages() + a->total_pages());
  const uint64_t free0 = res.free_pages();

  std::byte* run = res.AllocPages(100);
  ASSERT_NE(run, nullptr);
  EXPECT_TRUE(res.Contains(run));
  EXPECT_EQ(res.free_pages(), free0 - 100);

  void* big = nullptr;
  OnPagerThread(a, [&] { big = malloc(256 << 10); });
  ASSERT_TRUE(a->Contains(big));
  EXPECT_LE(res.free_pages(), free0 - 100 - 64) << "the arena's use is part of the level";
  res.NoteLevel();
  const uint64_t low = res.min_free_pages();
  EXPECT_LE(low, free0 - 164);

  free(big);  // decay 0: the extent goes back to the region at once
  res.FreePages(run, 100);
  EXPECT_EQ(res.free_pages(), free0);
  EXPECT_EQ(res.min_free_pages(), low) << "the lowest level is remembered";
}

TEST(ReserveAccounting, BelowHalfIsTheThrottlePoint) {
  auto r = Reserve::Create(8u << 20, Reserve::ArenaBytes(8u << 20, 0));
  ASSERT_TRUE(r.ok());
  Reserve& res = **r;
  std::vector<std::byte*> runs;
  while (!res.BelowHalf()) {
    std::byte* p = res.AllocPages(1);
    ASSERT_NE(p, nullptr) << "staging ran out before the throttle point";
    runs.push_back(p);
  }
  EXPECT_LT(res.free_pages() * 2, res.total_pages());
  EXPECT_GE((res.free_pages() + 1) * 2, res.total_pages()) << "engages exactly at half";
  for (std::byte* p : runs) res.FreePages(p, 1);
  EXPECT_FALSE(res.BelowHalf());
}

TEST(ReserveArena, ExtentsLieInsideThePool) {
  ReserveArena* a = Arena();
  const int flags = a->flags();
  ASSERT_NE(flags, 0);
  std::vector<void*> ptrs;
  for (size_t size = 8; size <= (256u << 10); size *= 2) {
    for (int k = 0; k < 3; k++) ptrs.push_back(mallocx(size + k * 24, flags));
  }
  ptrs.push_back(mallocx(64 << 10, flags | MALLOCX_ALIGN(64 << 10)));
  for (void* p : ptrs) {
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(a->Contains(p)) << p;
    unsigned ind = ~0u;
    size_t sz = sizeof ind;
    ASSERT_EQ(mallctl("arenas.lookup", &ind, &sz, &p, sizeof p), 0);
    EXPECT_EQ(ind, a->index());
  }
  const uint64_t used = a->used_pages();
  EXPECT_GT(used, 0u);
  for (void* p : ptrs) dallocx(p, 0);
  EXPECT_LT(a->used_pages(), used);
}

TEST(ReserveArena, PlainMallocOnAPagerThreadComesFromThePool) {
  ReserveArena* a = Arena();
  std::vector<void*> ptrs;
  OnPagerThread(a, [&] {
    for (size_t size : {16, 100, 3000, 20000, 300000}) ptrs.push_back(malloc(size));
    ptrs.push_back(new std::vector<int>(1000));  // C++ allocations too
  });
  for (void* p : ptrs) EXPECT_TRUE(a->Contains(p)) << p;
  // And an unbound thread does not use the arena.
  void* q = nullptr;
  std::thread([&] { q = malloc(100); }).join();
  EXPECT_FALSE(a->Contains(q));
  free(q);
  for (size_t i = 0; i + 1 < ptrs.size(); i++) free(ptrs[i]);
  delete static_cast<std::vector<int>*>(ptrs.back());
}

TEST(ReserveArena, ItsOwnShareCannotHoldThePoolBelowHalf) {
  auto r = Reserve::Create(8u << 20, Reserve::ArenaBytes(8u << 20, 0));
  ASSERT_TRUE(r.ok());
  ReserveArena* a = (*r)->arena();
  ASSERT_NE(a, nullptr);
  // Fill the arena's region completely (until it overflows).
  std::vector<void*> ptrs;
  const uint64_t overflows0 = a->overflows();
  OnPagerThread(a, [&] {
    while (a->overflows() == overflows0) ptrs.push_back(malloc(64 << 10));
  });
  EXPECT_GE(a->used_pages() * 8, a->total_pages() * 7) << "the region should be (nearly) full";
  EXPECT_FALSE((*r)->BelowHalf()) << "a full arena alone throttles: it would throttle forever";
  for (void* p : ptrs) free(p);
}

TEST(ReserveArena, ExhaustionFallsBackToOrdinaryMemory) {
  ReserveArena* a = Arena();
  const uint64_t overflows0 = a->overflows();
  const uint64_t used0 = a->used_pages();
  std::vector<char*> ptrs;
  OnPagerThread(a, [&] {
    // Twice the region, in pieces small and large: every one succeeds.
    uint64_t bytes = 0;
    while (bytes < 2 * kArenaBytes) {
      size_t n = ptrs.size() % 2 ? 1000 : (200 << 10);
      char* p = static_cast<char*>(malloc(n));
      ASSERT_NE(p, nullptr);
      memset(p, 0x5a, n);
      ptrs.push_back(p);
      bytes += n;
    }
  });
  EXPECT_GT(a->overflows(), overflows0);
  EXPECT_GT(a->overflow_bytes(), 0u);
  size_t outside = 0;
  for (char* p : ptrs) outside += !a->Contains(p);
  EXPECT_GT(outside, 0u);
  for (char* p : ptrs) free(p);
  EXPECT_LE(a->used_pages(), used0 + 16) << "freed extents go back to the region";
}

// Issue 9, problem 8: with one arena for the process, sized by the first
// Reserve and counted whole in every pager's level, one pager's allocations
// held another below half for good, and its faults parked forever.
TEST(ReserveAccounting, OnePagersDebtDoesNotThrottleAnother) {
  auto first = Reserve::Create(16u << 20, Reserve::ArenaBytes(16u << 20, 0));
  auto second = Reserve::Create(1u << 20, Reserve::ArenaBytes(1u << 20, 0));
  ASSERT_TRUE(first.ok() && second.ok());
  ReserveArena* a = (*first)->arena();
  ASSERT_NE(a, nullptr);
  EXPECT_NE(a, (*second)->arena()) << "each pager has an arena of its own";
  // The first pager's threads fill its arena.
  std::vector<void*> ptrs;
  const uint64_t overflows0 = a->overflows();
  OnPagerThread(a, [&] {
    while (a->overflows() == overflows0) ptrs.push_back(malloc(64 << 10));
  });
  EXPECT_FALSE((*second)->BelowHalf()) << "the second pager pays for the first one's allocations";
  EXPECT_EQ((*second)->free_pages(), (*second)->total_pages());
  for (void* p : ptrs) free(p);
}

TEST(ReserveArena, AReleasedArenaIsReusedBySameSizedReserve) {
  ReserveArena* before = nullptr;
  {
    auto r = Reserve::Create(5u << 20, Reserve::ArenaBytes(5u << 20, 0));
    ASSERT_TRUE(r.ok());
    before = (*r)->arena();
  }
  auto r = Reserve::Create(5u << 20, Reserve::ArenaBytes(5u << 20, 0));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->arena(), before) << "locked memory must stay bounded by the pagers alive at once";
}

TEST(PagerThreads, AllocateOnlyFromThePool) {
  char dir[] = "/tmp/reserve_test.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  g_pager_allocs = 0;
  g_off_pool = 0;
  g_counting = true;
  {
    Config cfg;
    cfg.memory_limit = 4u << 20;
    cfg.reserve = 2u << 20;
    cfg.swap = dir;
    cfg.publish_stats = false;
    auto p = Pager::Create(cfg);  // a file store: two worker threads of its own
    ASSERT_TRUE(p.ok()) << p.status().message();
    const uint64_t pages = 4096;  // 16 MiB through a 4 MiB limit
    auto mem = (*p)->Map(pages * kPageSize);
    ASSERT_TRUE(mem.ok());
    auto* m = static_cast<unsigned char*>(*mem);
    for (uint64_t i = 0; i < pages; i++) FillPage(m + i * kPageSize, i, 1);
    for (uint64_t i = 0; i < pages; i++) ASSERT_TRUE(CheckPage(m + i * kPageSize, i, 1)) << i;
    Stats s = (*p)->GetStats();
    EXPECT_GT(s.evictions_written, 0u);
    EXPECT_GT(s.faults_swapin, 0u);
    ASSERT_TRUE((*p)->Unmap(*mem, pages * kPageSize).ok());
  }
  g_counting = false;
  rmdir(dir);
  RecordProperty("pager_thread_allocs", std::to_string(g_pager_allocs.load()));
  EXPECT_GT(g_pager_allocs.load(), 0u) << "the hook saw no allocation on the pager's threads";
  EXPECT_EQ(g_off_pool.load(), 0u) << "allocations on the pager's threads outside the reserve arena";
}

}  // namespace
}  // namespace pager::testing

// SlotAllocator: contiguous, non-overlapping runs; clustering; the cap; reuse
// under churn; per-slot seals.
#include "slot_allocator.h"

#include <gtest/gtest.h>

#include <cstring>

#include <deque>
#include <random>
#include <vector>

namespace pager {
namespace {

// Marks a run in a shadow bitmap, failing if any slot of it is already taken
// or lies past the allocator's capacity.
void Take(std::vector<bool>& shadow, const SlotAllocator& a, SlotAllocator::Run r) {
  ASSERT_LE(uint64_t{r.first} + r.count, a.capacity()) << "run [" << r.first << ", +" << r.count << ")";
  if (shadow.size() < a.capacity()) shadow.resize(a.capacity(), false);
  for (uint32_t i = 0; i < r.count; i++) {
    ASSERT_FALSE(shadow[r.first + i]) << "slot " << r.first + i << " handed out twice";
    shadow[r.first + i] = true;
  }
}

TEST(SlotAllocator, ConsecutiveAllocationsAreConsecutiveSlots) {
  SlotAllocator a(0);
  uint64_t next = 0;
  for (uint32_t want : {1u, 8u, 64u, 3u, 256u, 1u, 100u}) {
    SlotAllocator::Run r = a.Allocate(want);
    EXPECT_EQ(r.count, want);
    EXPECT_EQ(r.first, next) << "run of " << want << " did not follow the previous one";
    next = r.first + r.count;
  }
  EXPECT_EQ(a.in_use(), next);
}

TEST(SlotAllocator, AllocationContinuesAfterTheCursorNotInTheFirstHole) {
  // Next-fit: a hole freed behind the cursor is not reused while there is
  // room ahead, so write-back stays sequential.
  SlotAllocator a(0);
  SlotAllocator::Run r1 = a.Allocate(16);
  SlotAllocator::Run r2 = a.Allocate(16);
  for (uint32_t i = 0; i < r1.count; i++) a.Free(r1.first + i);
  SlotAllocator::Run r3 = a.Allocate(16);
  EXPECT_EQ(r3.first, r2.first + r2.count);
  EXPECT_EQ(r3.count, 16u);
}

TEST(SlotAllocator, RunIsContiguousFreeSlotsAndStopsAtAUsedOne) {
  // Capacity 64, everything taken, then slots 10..13 and 20..29 freed: a
  // request for 8 must get a run made only of free slots.
  SlotAllocator a(64);
  SlotAllocator::Run all = a.Allocate(64);
  ASSERT_EQ(all.count, 64u);
  for (uint32_t s = 10; s < 14; s++) a.Free(s);
  for (uint32_t s = 20; s < 30; s++) a.Free(s);
  std::vector<bool> shadow(64, true);
  for (uint32_t s = 10; s < 14; s++) shadow[s] = false;
  for (uint32_t s = 20; s < 30; s++) shadow[s] = false;
  for (int i = 0; i < 3; i++) {
    SlotAllocator::Run r = a.Allocate(8);
    ASSERT_GT(r.count, 0u);
    ASSERT_LE(r.count, 8u);
    Take(shadow, a, r);
  }
  EXPECT_EQ(a.in_use(), 64u);
  EXPECT_TRUE(a.full());
}

TEST(SlotAllocator, RunsNeverOverlapUnderRandomAllocAndFree) {
  for (uint64_t cap : {0ull, 1000ull, 70000ull}) {
    SCOPED_TRACE("max_slots " + std::to_string(cap));
    SlotAllocator a(cap);
    std::vector<bool> shadow;
    std::vector<uint32_t> live;
    std::mt19937_64 rng(cap + 1);
    for (int step = 0; step < 200000; step++) {
      // Grow the live set towards ~20000 slots, then churn around it.
      bool alloc = live.size() < 20000 ? rng() % 3 != 0 : rng() % 2 == 0;
      if (alloc) {
        uint32_t want = 1 + static_cast<uint32_t>(rng() % 64);
        SlotAllocator::Run r = a.Allocate(want);
        ASSERT_LE(r.count, want);
        if (r.count == 0) {
          ASSERT_TRUE(a.full()) << "Allocate returned nothing with " << a.in_use() << " in use";
          continue;
        }
        Take(shadow, a, r);
        if (::testing::Test::HasFatalFailure()) return;
        for (uint32_t i = 0; i < r.count; i++) live.push_back(r.first + i);
      } else if (!live.empty()) {
        size_t i = rng() % live.size();
        uint32_t s = live[i];
        live[i] = live.back();
        live.pop_back();
        ASSERT_TRUE(shadow[s]);
        shadow[s] = false;
        a.Free(s);
      }
      ASSERT_EQ(a.in_use(), live.size()) << "step " << step;
      if (cap != 0) {
        ASSERT_LE(a.capacity(), cap);
      }
    }
  }
}

TEST(SlotAllocator, CapMakesFullTrueAndAllocateReturnNothing) {
  SlotAllocator a(100);
  std::vector<bool> shadow;
  uint64_t got = 0;
  while (got < 100) {
    ASSERT_FALSE(a.full()) << "full at " << got << " of 100";
    SlotAllocator::Run r = a.Allocate(7);
    ASSERT_GT(r.count, 0u) << "store not full yet: " << got << " of 100";
    Take(shadow, a, r);
    got += r.count;
  }
  EXPECT_EQ(got, 100u);
  EXPECT_EQ(a.in_use(), 100u);
  EXPECT_LE(a.capacity(), 100u);
  EXPECT_TRUE(a.full());
  EXPECT_EQ(a.Allocate(1).count, 0u);
  EXPECT_EQ(a.Allocate(64).count, 0u);
  EXPECT_EQ(a.in_use(), 100u) << "a failed Allocate must not count slots";

  // Freeing one slot makes exactly that slot available again.
  a.Free(42);
  EXPECT_FALSE(a.full());
  SlotAllocator::Run r = a.Allocate(8);
  EXPECT_EQ(r.first, 42u);
  EXPECT_EQ(r.count, 1u);
  EXPECT_TRUE(a.full());
}

TEST(SlotAllocator, CapAboveOneGrowthStepIsReachedExactly) {
  // A cap that is not a multiple of the growth step: the last slots must be
  // usable, and none past the cap handed out.
  const uint64_t cap = 65536 + 100;
  SlotAllocator a(cap);
  std::vector<bool> shadow;
  uint64_t got = 0;
  for (;;) {
    SlotAllocator::Run r = a.Allocate(256);
    if (r.count == 0) break;
    Take(shadow, a, r);
    got += r.count;
  }
  EXPECT_EQ(got, cap);
  EXPECT_EQ(a.capacity(), cap);
  EXPECT_TRUE(a.full());
}

TEST(SlotAllocator, ZeroRequestAllocatesNothing) {
  SlotAllocator a(10);
  EXPECT_EQ(a.Allocate(0).count, 0u);
  EXPECT_EQ(a.in_use(), 0u);
  EXPECT_EQ(a.Allocate(3).first, 0u);
}

TEST(SlotAllocator, ChurnWithABoundedLiveSetDoesNotGrowTheStore) {
  // A program that keeps ~4000 pages swapped while evicting and faulting
  // forever: the slots must wrap and be reused, not march through 2^32.
  SlotAllocator a(0);
  std::deque<SlotAllocator::Run> live;
  uint64_t live_slots = 0, allocated_total = 0;
  std::mt19937_64 rng(3);
  for (int step = 0; step < 300000; step++) {
    SlotAllocator::Run r = a.Allocate(1 + static_cast<uint32_t>(rng() % 32));
    ASSERT_GT(r.count, 0u);
    allocated_total += r.count;
    live_slots += r.count;
    live.push_back(r);
    // Free oldest-first (FIFO), and sometimes a random one (fragmentation).
    while (live_slots > 4000) {
      size_t i = (rng() % 4 == 0) ? rng() % live.size() : 0;
      SlotAllocator::Run f = live[i];
      live.erase(live.begin() + static_cast<long>(i));
      for (uint32_t k = 0; k < f.count; k++) a.Free(f.first + k);
      live_slots -= f.count;
    }
  }
  ASSERT_GT(allocated_total, 10u * 65536) << "the churn must pass the end of the store many times";
  // One growth step holds the live set with room to spare; the allocator may
  // grow more, but never anywhere near the total handed out.
  EXPECT_LE(a.capacity(), 2u * 65536) << "the store grew under churn with only " << live_slots << " live";
  EXPECT_EQ(a.in_use(), live_slots);
}

TEST(SlotAllocator, ReusesFreedSlotsAfterWrappingPastTheEnd) {
  // Fill one growth step, free a hole at the start, and ask for more: with
  // the store mostly free, the hole is reused rather than growing again.
  SlotAllocator a(0);
  SlotAllocator::Run first = a.Allocate(256);
  ASSERT_EQ(first.first, 0u);
  const uint64_t cap = a.capacity();
  // Walk the cursor to the end of the current capacity with short-lived runs.
  uint64_t pos = first.count;
  while (pos < cap) {
    SlotAllocator::Run r = a.Allocate(256);
    ASSERT_GT(r.count, 0u);
    pos = r.first + r.count;
    if (pos < cap) {
      for (uint32_t k = 0; k < r.count; k++) a.Free(r.first + k);
    }
  }
  for (uint32_t k = 0; k < first.count; k++) a.Free(first.first + k);
  SlotAllocator::Run r = a.Allocate(16);
  EXPECT_EQ(a.capacity(), cap) << "grew with the store almost empty";
  EXPECT_LT(uint64_t{r.first} + r.count, cap);
  EXPECT_EQ(r.count, 16u);
}

TEST(SlotAllocator, GrowsWhenMostlyFull) {
  // The other side of reuse: a store kept full is extended, not failed.
  SlotAllocator a(0);
  uint64_t got = 0;
  while (got < 3 * 65536) {
    SlotAllocator::Run r = a.Allocate(256);
    ASSERT_GT(r.count, 0u) << "uncapped allocator refused at " << got;
    got += r.count;
  }
  EXPECT_GE(a.capacity(), got);
}

// A seal with every field derived from `v`: a field kept from another slot,
// or lost, shows.
PageSeal SealOf(uint64_t v) {
  PageSeal s;
  s.sum = v;
  s.gen = ~v;
  for (int i = 0; i < 16; i++) s.tag[i] = static_cast<uint8_t>(v >> (i % 8 * 8)) ^ static_cast<uint8_t>(i);
  return s;
}

bool SameSeal(const PageSeal& a, const PageSeal& b) {
  return a.sum == b.sum && a.gen == b.gen && memcmp(a.tag, b.tag, sizeof a.tag) == 0;
}

TEST(SlotAllocator, SealsAreStoredPerSlot) {
  SlotAllocator a(0);
  SlotAllocator::Run r = a.Allocate(200);
  ASSERT_EQ(r.count, 200u);
  for (uint32_t i = 0; i < r.count; i++) a.set_seal(r.first + i, SealOf(0x9E3779B97F4A7C15ull * (i + 1)));
  for (uint32_t i = 0; i < r.count; i++) {
    EXPECT_TRUE(SameSeal(a.seal(r.first + i), SealOf(0x9E3779B97F4A7C15ull * (i + 1)))) << "slot " << r.first + i;
  }
  // Growing the store keeps the seals already recorded.
  uint64_t cap = a.capacity();
  while (a.capacity() == cap) ASSERT_GT(a.Allocate(256).count, 0u);
  for (uint32_t i = 0; i < r.count; i++) {
    ASSERT_TRUE(SameSeal(a.seal(r.first + i), SealOf(0x9E3779B97F4A7C15ull * (i + 1)))) << "lost across growth, slot " << i;
  }
  // The last slot of the store has its own seal too.
  uint32_t last = static_cast<uint32_t>(a.capacity() - 1);
  a.set_seal(last, SealOf(77));
  EXPECT_TRUE(SameSeal(a.seal(last), SealOf(77)));
  EXPECT_TRUE(SameSeal(a.seal(r.first), SealOf(0x9E3779B97F4A7C15ull)));
}

}  // namespace
}  // namespace pager

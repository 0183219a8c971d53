// The prefetcher's bookkeeping, driven as a program's faults would drive it:
// which pages get read, how many faults wait on a read, and that nothing is
// asked for twice or not at all.
#include "prefetcher.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <vector>

namespace pager {
namespace {

constexpr uint32_t kWindow = 64, kAhead = 1024;

// A program's faults against a store: pages requested by a plan are "in
// flight" until the program touches them (then resident: no more faults).
class Program {
 public:
  explicit Program(Prefetcher& p) : p_(p) {}

  // The program touches `page`.
  void Touch(uint64_t page) {
    if (resident_.count(page) != 0) return;
    if (requested_.count(page) != 0) {
      hits_++;
      resident_.insert(page);
      Apply(p_.OnHit(page));
      return;
    }
    misses_++;
    const Prefetcher::Plan plan = p_.OnMiss(page);
    for (uint32_t i = 0; i < plan.sync_pages; i++) Request(page + i);
    resident_.insert(page);
    Apply(plan);
  }

  uint64_t misses() const { return misses_; }
  uint64_t hits() const { return hits_; }
  uint64_t ahead() const { return ahead_; }
  uint64_t twice() const { return twice_; }
  const std::set<uint64_t>& requested() const { return requested_; }

 private:
  void Request(uint64_t page) {
    if (!requested_.insert(page).second) twice_++;
  }
  void Apply(const Prefetcher::Plan& plan) {
    for (uint32_t i = 0; i < plan.ahead_pages; i++) {
      Request(static_cast<uint64_t>(static_cast<int64_t>(plan.ahead_first) + plan.stride * i));
      ahead_++;
    }
  }

  Prefetcher& p_;
  std::set<uint64_t> requested_, resident_;
  uint64_t misses_ = 0, hits_ = 0, ahead_ = 0, twice_ = 0;
};

TEST(Prefetcher, ForwardScanWaitsOnAFewReadsOnlyAndReadsEachPageOnce) {
  Prefetcher p(kWindow, kAhead);
  Program prog(p);
  const uint64_t base = 1 << 20, pages = 64 * 1024;
  for (uint64_t i = 0; i < pages; i++) prog.Touch(base + i);
  // The first two faults find the stream; after that the prefetch stays
  // ahead of the program, which never waits on a read again.
  EXPECT_LE(prog.misses(), 2u);
  EXPECT_EQ(prog.twice(), 0u) << "a page was read twice";
  EXPECT_GE(prog.ahead(), pages - 2 * kAhead);
  // Never more than the prefetch distance past the program.
  EXPECT_LE(*prog.requested().rbegin(), base + pages + kAhead + 1);
}

TEST(Prefetcher, WithoutPrefetchReadAheadDoublesUpToTheWindow) {
  Prefetcher p(kWindow, 0);
  Program prog(p);
  const uint64_t pages = 64 * 1024;
  for (uint64_t i = 0; i < pages; i++) prog.Touch(i + 100);
  EXPECT_EQ(prog.ahead(), 0u);
  EXPECT_EQ(prog.twice(), 0u);
  // 1, 2, 4, ..., 64, then 64 at a time.
  EXPECT_LE(prog.misses(), pages / kWindow + 8);
  EXPECT_GE(prog.misses(), pages / kWindow);
}

TEST(Prefetcher, FourInterleavedScansAreFourStreams) {
  Prefetcher p(kWindow, kAhead);
  Program prog(p);
  const uint64_t pages = 16 * 1024;
  for (uint64_t i = 0; i < pages; i++) {
    for (uint64_t t = 0; t < 4; t++) prog.Touch((t + 1) * (1 << 24) + i);
  }
  EXPECT_LE(prog.misses(), 4u * 2);
  EXPECT_EQ(prog.twice(), 0u);
}

TEST(Prefetcher, BackwardScanIsAStream) {
  Prefetcher p(kWindow, kAhead);
  Program prog(p);
  const uint64_t top = 1 << 20, pages = 16 * 1024;
  for (uint64_t i = 0; i < pages; i++) prog.Touch(top - i);
  EXPECT_LE(prog.misses(), 3u);
  EXPECT_EQ(prog.twice(), 0u);
}

TEST(Prefetcher, FixedStrideIsAStreamAndOnlyItsPagesAreRead) {
  Prefetcher p(kWindow, kAhead);
  Program prog(p);
  const uint64_t base = 1 << 20, stride = 7;
  for (uint64_t i = 0; i < 4096; i++) prog.Touch(base + i * stride);
  EXPECT_LE(prog.misses(), 3u);
  EXPECT_EQ(prog.twice(), 0u);
  for (uint64_t page : prog.requested()) {
    ASSERT_EQ((page - base) % stride, 0u) << "page " << page << " is off the stride";
  }
}

TEST(Prefetcher, RandomFaultsNeverPrefetch) {
  Prefetcher p(kWindow, kAhead);
  Program prog(p);
  std::mt19937_64 rng(42);
  for (int i = 0; i < 100000; i++) prog.Touch(rng() % (1 << 22));
  EXPECT_EQ(prog.ahead(), 0u);
  EXPECT_EQ(prog.requested().size(), prog.misses()) << "random faults read more than their page";
}

TEST(Prefetcher, AScanAmidRandomFaultsIsStillFound) {
  Prefetcher p(kWindow, kAhead);
  Program prog(p);
  std::mt19937_64 rng(7);
  const uint64_t base = 1 << 30;
  for (uint64_t i = 0; i < 16 * 1024; i++) {
    prog.Touch(base + i);
    prog.Touch(rng() % (1 << 22));  // another thread, all over the place
  }
  // The scan's pages mostly came from prefetch, not from faults.
  uint64_t scan_misses = 0;
  Prefetcher q(kWindow, kAhead);
  Program alone(q);
  for (uint64_t i = 0; i < 16 * 1024; i++) alone.Touch(base + i);
  scan_misses = alone.misses();
  EXPECT_LE(prog.misses(), 16 * 1024 + scan_misses + 16);
  EXPECT_GE(prog.ahead(), 16 * 1024 - 2 * kAhead);
}

TEST(Prefetcher, AFaultRetriedAfterWaitingForMemoryIsTheSameRead) {
  Prefetcher p(kWindow, kAhead);
  p.OnMiss(500);
  const Prefetcher::Plan first = p.OnMiss(501);
  ASSERT_GT(first.ahead_pages, 0u);
  const Prefetcher::Plan again = p.OnMiss(501);
  EXPECT_EQ(again.sync_pages, first.sync_pages);
  EXPECT_EQ(again.ahead_pages, 0u) << "the read-ahead went out with the first try";
  // And the stream goes on from there.
  const Prefetcher::Plan next = p.OnMiss(501 + first.sync_pages + first.ahead_pages);
  EXPECT_GT(next.sync_pages, first.sync_pages);
}

}  // namespace
}  // namespace pager

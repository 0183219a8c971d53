// The store over several servers, against in-memory child stores that
// stall, fail and corrupt on command (faulty_store.h): placement (the extent
// map), server health, and the store's promises — every copy written, reads
// from the copy that answers, a retried read from the other copy, buffers
// the pager owns never touched after its op completes, a silent server
// marked down and its extents copied again, one copy waiting for its server.
// The same store over real NFS servers: nfs_replicated_test.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "faulty_store.h"
#include "hammer.h"
#include "stats.h"
#include "store/extent_map.h"
#include "store/replicated_store.h"
#include "store/server_health.h"
#include "test_util.h"

namespace pager::testing {
namespace {

using namespace std::chrono_literals;
using replicated::ExtentMap;
using replicated::kExtentPages;
using replicated::kNoServer;
using replicated::ServerHealth;
using replicated::Usability;

constexpr Usability kAllGood[kMaxServers] = {};

// ---- the extent map -------------------------------------------------------------------------

TEST(ExtentMap, TwoCopiesOnDifferentServersSpreadEvenly) {
  ExtentMap m(3, 2);
  for (uint64_t e = 0; e < 300; e++) m.Place(e, kAllGood);
  for (uint64_t e = 0; e < 300; e++) {
    const replicated::Extent* x = m.Find(e);
    ASSERT_NE(x, nullptr);
    EXPECT_EQ(x->copies(), 2) << "extent " << e;
    EXPECT_NE(x->server[0], x->server[1]) << "extent " << e;
  }
  for (int s = 0; s < 3; s++) EXPECT_EQ(m.extents_on(s), 200u) << "server " << s;
  EXPECT_TRUE(m.Check());
}

// A server back from an outage has fewer extents: new ones go to it until
// it has caught up.
TEST(ExtentMap, AServerWithFewerExtentsTakesTheNextOnes) {
  ExtentMap m(3, 1);
  Usability u[kMaxServers] = {Usability::kGood, Usability::kUnusable, Usability::kGood};
  for (uint64_t e = 0; e < 10; e++) m.Place(e, u);
  EXPECT_EQ(m.extents_on(1), 0u);
  for (uint64_t e = 10; e < 15; e++) m.Place(e, kAllGood);
  EXPECT_EQ(m.extents_on(1), 5u) << "the server back from an outage did not catch up first";
  for (uint64_t e = 15; e < 21; e++) m.Place(e, kAllGood);
  for (int s = 0; s < 3; s++) EXPECT_EQ(m.extents_on(s), 7u) << "server " << s;
}

TEST(ExtentMap, ConsecutiveExtentsStripeAcrossServers) {
  ExtentMap m(2, 1);
  for (uint64_t e = 0; e < 8; e++) m.Place(e, kAllGood);
  for (uint64_t e = 0; e < 8; e++) EXPECT_EQ(m.Find(e)->server[0], e % 2) << "extent " << e;
  ExtentMap pairs(4, 2);
  for (uint64_t e = 0; e < 8; e++) pairs.Place(e, kAllGood);
  for (uint64_t e = 1; e < 8; e++) {
    const replicated::Extent &a = *pairs.Find(e - 1), &b = *pairs.Find(e);
    EXPECT_TRUE(b.SlotOf(a.server[0]) < 0 && b.SlotOf(a.server[1]) < 0) << "extents " << e - 1 << " and " << e
                                                                        << " on the same servers";
  }
}

TEST(ExtentMap, NewExtentsAvoidADownServerAndASecondCopyAReconnectingOne) {
  ExtentMap m(3, 2);
  Usability u[kMaxServers] = {Usability::kGood, Usability::kUnusable, Usability::kGood};
  for (uint64_t e = 0; e < 10; e++) m.Place(e, u);
  EXPECT_EQ(m.extents_on(1), 0u);
  EXPECT_EQ(m.extents_on(0), 10u);
  EXPECT_EQ(m.extents_on(2), 10u);
  // Only one good server: one copy now, the second once another is good.
  Usability one[kMaxServers] = {Usability::kDegraded, Usability::kUnusable, Usability::kGood};
  m.Place(20, one);
  EXPECT_EQ(m.Find(20)->copies(), 1);
  EXPECT_EQ(m.Find(20)->server[0], 2);
  // Nothing good at all: the first copy still goes somewhere (to wait there).
  Usability none[kMaxServers] = {Usability::kUnusable, Usability::kDegraded, Usability::kUnusable};
  m.Place(21, none);
  EXPECT_EQ(m.Find(21)->copies(), 1);
  EXPECT_EQ(m.Find(21)->server[0], 1);
  EXPECT_TRUE(m.Check());
}

TEST(ExtentMap, DroppingAServerNeverDropsALastCopy) {
  ExtentMap m(2, 2);
  for (uint64_t e = 0; e < 4; e++) {
    m.Place(e, kAllGood);
    m.NoteWritten(e, 0, 10);
  }
  EXPECT_EQ(m.under_replicated_pages(), 0u);
  EXPECT_EQ(m.DropServer(0), 4u);
  EXPECT_EQ(m.extents_on(0), 0u);
  EXPECT_EQ(m.under_replicated_pages(), 40u);
  EXPECT_EQ(m.DropServer(1), 0u) << "the last copy of an extent went";
  for (uint64_t e = 0; e < 4; e++) EXPECT_EQ(m.Find(e)->copies(), 1);
  m.AddCopy(2, 0);
  EXPECT_EQ(m.under_replicated_pages(), 30u);
  EXPECT_TRUE(m.Check());
}

TEST(ExtentMap, UnderReplicatedPagesCountOnlyWrittenPages) {
  ExtentMap m(3, 2);
  Usability u[kMaxServers] = {Usability::kGood, Usability::kUnusable, Usability::kUnusable};
  m.Place(7, u);
  EXPECT_EQ(m.under_replicated_pages(), 0u) << "nothing written yet";
  m.NoteWritten(7, 100, 5);
  EXPECT_EQ(m.under_replicated_pages(), 105u) << "pages 0..104 of the extent, the high water mark";
  m.NoteWritten(7, 0, 5);
  EXPECT_EQ(m.under_replicated_pages(), 105u);
  EXPECT_TRUE(m.Check());
}

TEST(ExtentMap, NextUnderReplicatedWrapsAroundWithinItsBudget) {
  ExtentMap m(2, 2);
  Usability u[kMaxServers] = {Usability::kGood, Usability::kUnusable};
  for (uint64_t e : {3, 9}) m.Place(e, u);
  uint64_t cursor = 5, budget = 100;
  EXPECT_EQ(m.NextUnderReplicated(&cursor, &budget), 9);
  EXPECT_EQ(m.NextUnderReplicated(&cursor, &budget), 3);
  budget = 2;
  EXPECT_EQ(m.NextUnderReplicated(&cursor, &budget), -1) << "looked past its budget";
  EXPECT_EQ(budget, 0u);
}

// ---- server health ----------------------------------------------------------------------------

constexpr uint64_t kSecond = 1'000'000'000;
constexpr uint64_t kTimeout = 30 * kSecond;

TEST(ServerHealth, SilentForTheTimeoutIsDown) {
  ServerHealth h;
  const uint64_t t0 = 100 * kSecond;
  h.OnAnswer(t0);
  EXPECT_FALSE(h.Update(t0 + kTimeout - 1, kTimeout, t0 + 1, 0)) << "down before the timeout";
  EXPECT_FALSE(h.Update(t0 + kTimeout, kTimeout, t0 + 1, 0));
  EXPECT_TRUE(h.Update(t0 + kTimeout + 1, kTimeout, t0 + 1, 0));
  EXPECT_EQ(h.state(), ServerState::kDown);
}

TEST(ServerHealth, IdleOrAnsweringSlowlyIsNotDown) {
  ServerHealth h;
  EXPECT_FALSE(h.Update(1000 * kSecond, kTimeout, 0, 0)) << "nothing asked, nothing to miss";
  const uint64_t t0 = 2000 * kSecond;
  for (uint64_t t = t0; t < t0 + 5 * kTimeout; t += kTimeout / 2) {
    h.OnAnswer(t);
    EXPECT_FALSE(h.Update(t + 1, kTimeout, t0, 0)) << "an old request outstanding, answers still coming";
  }
  EXPECT_EQ(h.state(), ServerState::kOk);
}

TEST(ServerHealth, ReconnectingForTheTimeoutIsDownAndBackWhenReconnected) {
  ServerHealth h;
  const uint64_t t0 = 100 * kSecond;
  h.OnStoreState(BackendState::kReconnecting, t0);
  EXPECT_EQ(h.state(), ServerState::kReconnecting);
  EXPECT_FALSE(h.Update(t0 + kTimeout - 1, kTimeout, 0, 0));
  EXPECT_TRUE(h.Update(t0 + kTimeout, kTimeout, 0, 0));
  EXPECT_TRUE(h.down());
  EXPECT_FALSE(h.Update(t0 + 2 * kTimeout, kTimeout, 0, 0)) << "back while still reconnecting";
  h.OnStoreState(BackendState::kOk, t0 + 2 * kTimeout);
  EXPECT_TRUE(h.Update(t0 + 2 * kTimeout + 1, kTimeout, 0, 0));
  EXPECT_EQ(h.state(), ServerState::kOk);
}

// Orphans (a write whose op completed without this server) must land before
// anything new is sent there; a stalled server must answer first.
TEST(ServerHealth, BackOnlyOnceItAnsweredAndItsOrphansLanded) {
  ServerHealth h;
  const uint64_t t0 = 100 * kSecond, issued = t0 + 1;
  h.OnAnswer(t0);
  ASSERT_TRUE(h.Update(t0 + kTimeout + 2, kTimeout, issued, 3));
  const uint64_t t1 = t0 + 2 * kTimeout;
  EXPECT_FALSE(h.Update(t1, kTimeout, issued, 0)) << "back without a word from it";
  h.OnAnswer(t1 + 1);
  EXPECT_FALSE(h.Update(t1 + 2, kTimeout, issued, 2)) << "back with orphans outstanding";
  EXPECT_TRUE(h.Update(t1 + 3, kTimeout, 0, 0));
  EXPECT_FALSE(h.down());
}

TEST(ServerHealth, ALostSwapFileIsDownForGood) {
  ServerHealth h;
  h.OnStoreState(BackendState::kPaused, 5);
  EXPECT_TRUE(h.Update(6, kTimeout, 0, 0)) << "not at once";
  h.OnStoreState(BackendState::kOk, 7);
  h.OnAnswer(8);
  EXPECT_FALSE(h.Update(9, kTimeout, 0, 0));
  EXPECT_TRUE(h.down() && h.file_lost());
}

TEST(ServerHealth, HedgeDelayFollowsReadLatencyWithinItsBounds) {
  ServerHealth h;
  EXPECT_EQ(h.hedge_after_ns(), replicated::kMinHedgeNs) << "no sample yet";
  for (int i = 0; i < 50; i++) h.OnReadLatency(50'000'000, i);  // 50 ms, steady
  EXPECT_GT(h.hedge_after_ns(), 50'000'000u);
  EXPECT_LT(h.hedge_after_ns(), 100'000'000u) << "steady latency, small deviation";
  for (int i = 0; i < 50; i++) h.OnReadLatency(10 * kSecond, 100 + i);
  EXPECT_EQ(h.hedge_after_ns(), replicated::kMaxHedgeNs);
  EXPECT_GT(h.read_estimate_ns(200), kSecond);
  EXPECT_EQ(h.read_estimate_ns(200 + 2 * kSecond), 0u) << "a slow server with no recent read is never asked again";
}

// ---- the store over faulty children ---------------------------------------------------------

// Collects completions; publishes the per-server stats in a block of its own.
class Listener : public StoreListener {
 public:
  void OnComplete(StoreOp* op) override {
    std::lock_guard<std::mutex> l(mu_);
    done_.insert(op);
    cv_.notify_all();
  }
  void OnBackendState(BackendState state, const std::string&) override { state_.store(state); }
  void OnThreadStart() override { threads_++; }
  StoreServersBlock* servers_stats() override { return &block_; }

  bool WaitFor(const StoreOp* op, std::chrono::milliseconds limit = 10s) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, limit, [&] { return done_.count(op) > 0; });
  }
  bool Done(const StoreOp* op) {
    std::lock_guard<std::mutex> l(mu_);
    return done_.count(op) > 0;
  }
  void Forget(const StoreOp* op) {
    std::lock_guard<std::mutex> l(mu_);
    done_.erase(op);
  }
  const StoreServersBlock& block() const { return block_; }
  BackendState state() const { return state_.load(); }
  int threads() const { return threads_.load(); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<const StoreOp*> done_;
  std::atomic<BackendState> state_{BackendState::kOk};
  std::atomic<int> threads_{0};
  StoreServersBlock block_;
};

// An op and a buffer of its own, pages filled with FillPage(slot, version).
struct Io {
  Io(StoreOp::Kind kind, uint64_t slot, uint32_t pages, uint64_t version = 1) : buf(pages * kPageSize) {
    op.kind = kind;
    op.slot = slot;
    op.pages = pages;
    op.buf = buf.data();
    for (uint32_t i = 0; i < pages; i++) {
      if (kind == StoreOp::Kind::kWrite) {
        FillPage(buf.data() + i * kPageSize, slot + i, version);
      } else {
        memset(buf.data() + i * kPageSize, 0xA5, kPageSize);  // a read that fills nothing shows
      }
    }
  }
  bool Holds(uint64_t version) const {
    for (uint32_t i = 0; i < op.pages; i++) {
      if (!CheckPage(buf.data() + i * kPageSize, op.slot + i, version)) return false;
    }
    return true;
  }
  StoreOp op;
  std::vector<std::byte> buf;
};

class ReplicatedStoreTest : public ::testing::Test {
 protected:
  void Open(int servers, uint32_t replicas, uint32_t timeout_ms = 200) {
    std::vector<replicated::ServerStore> children;
    for (int i = 0; i < servers; i++) {
      auto s = std::make_unique<FaultyStore>();
      faulty_.push_back(s.get());
      children.push_back({std::move(s), "server" + std::to_string(i)});
    }
    StoreOptions o;
    o.replicas = replicas;
    o.server_timeout_ms = timeout_ms;
    store_ = replicated::MakeReplicatedStore(std::move(children), o);
    ASSERT_TRUE(store_->Start(&listener_).ok());
  }
  void TearDown() override {
    if (!store_) return;  // a test that destroyed the store destroyed its children too
    for (FaultyStore* f : faulty_) f->Resume();
    store_->Stop();
  }
  // Submits and waits; false if it did not complete in time.
  bool Run(Io& io, std::chrono::milliseconds limit = 10s) {
    listener_.Forget(&io.op);
    store_->Submit(&io.op);
    return listener_.WaitFor(&io.op, limit);
  }
  bool Write(uint64_t slot, uint32_t pages, uint64_t version = 1) {
    Io w(StoreOp::Kind::kWrite, slot, pages, version);
    return Run(w) && w.op.error == 0;
  }
  // The servers holding `slot`.
  std::vector<int> Holders(uint64_t slot) const {
    std::vector<int> h;
    for (size_t i = 0; i < faulty_.size(); i++) {
      if (faulty_[i]->Has(slot)) h.push_back(static_cast<int>(i));
    }
    return h;
  }
  const ServerStatsBlock& Server(int i) const { return listener_.block().server[i]; }
  template <class Pred>
  bool Eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }

  Listener listener_;
  std::vector<FaultyStore*> faulty_;  // owned by store_
  std::unique_ptr<Store> store_;
};

TEST_F(ReplicatedStoreTest, WritesReachEveryCopyAndReadBack) {
  Open(3, 2);
  for (uint64_t e = 0; e < 12; e++) ASSERT_TRUE(Write(e * kExtentPages + 3, 64));
  int on[3] = {};
  for (uint64_t e = 0; e < 12; e++) {
    const std::vector<int> h = Holders(e * kExtentPages + 3);
    ASSERT_EQ(h.size(), 2u) << "extent " << e << ": a write completed before reaching both copies";
    for (int s : h) on[s]++;
  }
  EXPECT_EQ(on[0], 8);
  EXPECT_EQ(on[1], 8);
  EXPECT_EQ(on[2], 8);
  Io r(StoreOp::Kind::kRead, 5 * kExtentPages + 3, 64);
  ASSERT_TRUE(Run(r));
  EXPECT_EQ(r.op.error, 0);
  EXPECT_TRUE(r.Holds(1));
  EXPECT_EQ(listener_.block().count.load(), 3u);
  EXPECT_EQ(listener_.block().replicas.load(), 2u);
  EXPECT_STREQ(Server(1).name, "server1");
}

// A run that straddles two extents is two pieces, each on its own copies.
TEST_F(ReplicatedStoreTest, ARunAcrossTwoExtentsReadsBackWhole) {
  Open(3, 2);
  ASSERT_TRUE(Write(kExtentPages - 10, 40));
  EXPECT_NE(Holders(kExtentPages - 1), Holders(kExtentPages)) << "both extents on the same servers";
  Io r(StoreOp::Kind::kRead, kExtentPages - 10, 40);
  ASSERT_TRUE(Run(r));
  EXPECT_EQ(r.op.error, 0);
  EXPECT_TRUE(r.Holds(1));
}

TEST_F(ReplicatedStoreTest, ANeverWrittenSlotReadsAsAnErrorNotZeros) {
  Open(2, 2);
  Io r(StoreOp::Kind::kRead, 77, 1);
  ASSERT_TRUE(Run(r));
  EXPECT_EQ(r.op.error, EIO);
}

// StoreOp::attempt: the pager reads a run again when a page fails its check;
// the second read must come from the other copy, whichever answered first.
TEST_F(ReplicatedStoreTest, ARetriedReadAsksTheOtherCopy) {
  Open(2, 2);
  ASSERT_TRUE(Write(0, 1));
  faulty_[0]->Corrupt(0);  // server 0's copy is bad, server 1's good
  for (int round = 0; round < 4; round++) {
    Io r(StoreOp::Kind::kRead, 0, 1);
    ASSERT_TRUE(Run(r));
    const bool first_good = r.Holds(1);
    r.op.attempt = 1;
    ASSERT_TRUE(Run(r));
    EXPECT_EQ(r.op.error, 0);
    EXPECT_NE(r.Holds(1), first_good) << "round " << round << ": the retry asked the copy that answered first";
  }
}

// The pager retries a whole op; for an op over two extents, each piece asks
// its other copy. With one server's copies bad, the retry must get every
// page right: a piece that was good the first time must not move to the bad
// server the second time.
TEST_F(ReplicatedStoreTest, ARetriedReadOverTwoExtentsGetsEveryPageFromGoodCopies) {
  Open(3, 2);
  for (uint64_t e = 0; e < 6; e++) ASSERT_TRUE(Write(e * kExtentPages + kExtentPages - 4, 8));
  int checked = 0;
  for (uint64_t e = 0; e < 6; e++) {
    const uint64_t first = e * kExtentPages + kExtentPages - 4;
    for (int bad = 0; bad < 3; bad++) {
      if (!faulty_[bad]->Has(first) && !faulty_[bad]->Has(first + 4)) continue;
      for (uint64_t slot = first; slot < first + 8; slot++) faulty_[bad]->Corrupt(slot);
      Io r(StoreOp::Kind::kRead, first, 8);
      ASSERT_TRUE(Run(r));
      if (!r.Holds(1)) {
        r.op.attempt = 1;
        ASSERT_TRUE(Run(r));
        EXPECT_TRUE(r.Holds(1)) << "extent " << e << ", bad copies on server " << bad
                                << ": the retry read a bad copy though a good one existed; holders "
                                << ::testing::PrintToString(Holders(first)) << " and "
                                << ::testing::PrintToString(Holders(first + 4));
        checked++;
      }
      for (uint64_t slot = first; slot < first + 8; slot++) faulty_[bad]->Corrupt(slot);  // flipped back
    }
  }
  EXPECT_GT(checked, 0) << "no read met a bad copy: the test tested nothing";
}

// The pager may free a buffer once its op completes. A stalled server's
// late answer to a hedged read must land in the store's own buffer.
TEST_F(ReplicatedStoreTest, AStalledServersReadIsHedgedAndItsLateAnswerNeverTouchesTheOpsBuffer) {
  Open(2, 2, 60000);  // never marked down here: the hedge alone serves the read
  ASSERT_TRUE(Write(0, 8));
  const int first = 0;
  faulty_[first]->Stall();
  // A server with no latency sample yet looks fastest: within two reads the
  // stalled one is asked (the first may go to the other on a tie).
  std::unique_ptr<Io> r;
  for (int i = 0; i < 2 && faulty_[first]->held() == 0; i++) {
    r = std::make_unique<Io>(StoreOp::Kind::kRead, 0, 8);
    ASSERT_TRUE(Run(*r, 5s)) << "a read waited on the stalled server";
    EXPECT_EQ(r->op.error, 0);
    EXPECT_TRUE(r->Holds(1));
  }
  ASSERT_EQ(faulty_[first]->held(), 1u) << "the stalled server was never asked";
  EXPECT_EQ(Server(1 - first).hedged_reads.load(), 1u);
  memset(r->buf.data(), 0xEE, r->buf.size());  // the pager's buffer, reused
  faulty_[first]->Resume();
  ASSERT_TRUE(Eventually([&] { return Server(first).reads.load() >= 1; }));
  for (std::byte b : r->buf) ASSERT_EQ(b, std::byte{0xEE}) << "the late answer wrote into a completed op's buffer";
}

// A write waits for every live copy; a server silent past the timeout is
// marked down, the write completes without it, and the extent is copied to
// the third server. The silent server's write, sent before, carries the
// store's copy of the bytes, never the op's buffer.
TEST_F(ReplicatedStoreTest, AWriteCompletesWhenTheSilentServerIsMarkedDownAndIsCopiedAgain) {
  Open(3, 2, 300);
  ASSERT_TRUE(Write(0, 4));
  const std::vector<int> h = Holders(0);
  ASSERT_EQ(h.size(), 2u);
  const int silent = h[0], survivor = h[1], third = 3 - h[0] - h[1];
  faulty_[silent]->Stall();
  Io w(StoreOp::Kind::kWrite, 0, 4, 2);
  listener_.Forget(&w.op);
  store_->Submit(&w.op);
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(listener_.Done(&w.op)) << "a write completed before every live copy had it";
  ASSERT_TRUE(listener_.WaitFor(&w.op, 5s)) << "the silent server was never marked down";
  EXPECT_EQ(w.op.error, 0);
  EXPECT_TRUE(Eventually([&] { return Server(silent).state.load() == static_cast<uint64_t>(ServerState::kDown); }));
  EXPECT_EQ(Server(silent).downs.load(), 1u);
  ASSERT_TRUE(Eventually([&] { return faulty_[third]->Has(0); })) << "never copied to the third server";
  ASSERT_TRUE(Eventually([&] { return listener_.block().under_replicated_pages.load() == 0; }));
  EXPECT_GE(listener_.block().rereplicated_bytes.load(), 4 * kPageSize);
  std::vector<std::byte> copied = faulty_[third]->Slot(0);
  EXPECT_TRUE(CheckPage(copied.data(), 0, 2)) << "the copy is not the latest write";
  EXPECT_TRUE(CheckPage(faulty_[survivor]->Slot(0).data(), 0, 2));

  memset(w.buf.data(), 0xEE, w.buf.size());  // the pager's buffer, reused
  faulty_[silent]->Resume();
  ASSERT_TRUE(Eventually([&] { return faulty_[silent]->writes() >= 2; }));
  EXPECT_TRUE(CheckPage(faulty_[silent]->Slot(0).data(), 0, 2)) << "the late write read a completed op's buffer";
  // Back once its orphan landed, and no longer a copy of the extent.
  ASSERT_TRUE(Eventually([&] { return Server(silent).state.load() == static_cast<uint64_t>(ServerState::kOk); }));
  Io r(StoreOp::Kind::kRead, 0, 4);
  for (int i = 0; i < 10; i++) {
    ASSERT_TRUE(Run(r));
    EXPECT_TRUE(r.Holds(2));
  }
}

// A write to an extent being copied waits for the copy: else the copy's
// older bytes could land on the new server after the write, and the two
// copies would differ. The copy's write is held on the target while the
// pager writes the extent again.
TEST_F(ReplicatedStoreTest, AWriteDuringACopyWaitsSoBothCopiesEndTheSame) {
  // The held copy makes its target silent too: with a 300 ms timeout it was
  // marked down (the copy abandoned, the write rightly let go) inside the
  // 300 ms check below on a slow (ASan) run. A second leaves room.
  Open(3, 2, 1000);
  ASSERT_TRUE(Write(0, 1, 1));
  const std::vector<int> h = Holders(0);
  const int silent = h[0], survivor = h[1], third = 3 - h[0] - h[1];
  faulty_[silent]->Stall();
  faulty_[third]->Stall();  // the copy's write to it is held
  ASSERT_TRUE(Write(0, 1, 2)) << "the write did not complete once the silent server was down";
  ASSERT_TRUE(Eventually([&] { return faulty_[third]->held() == 1; })) << "no copy was started";
  Io w(StoreOp::Kind::kWrite, 0, 1, 3);
  listener_.Forget(&w.op);
  const uint64_t written = faulty_[survivor]->writes();
  store_->Submit(&w.op);
  // Were the write not held back, it would reach the survivor now, before
  // the copy lands; held back, it waits for the copy.
  EXPECT_FALSE(Eventually([&] { return faulty_[survivor]->writes() > written; }, 300ms))
      << "a write went out while its extent was being copied";
  faulty_[third]->Resume();  // the copy (version 2) lands, then the write
  ASSERT_TRUE(listener_.WaitFor(&w.op));
  EXPECT_EQ(w.op.error, 0);
  ASSERT_TRUE(Eventually([&] { return listener_.block().under_replicated_pages.load() == 0; }));
  EXPECT_TRUE(CheckPage(faulty_[survivor]->Slot(0).data(), 0, 3));
  EXPECT_TRUE(CheckPage(faulty_[third]->Slot(0).data(), 0, 3)) << "the new copy holds what the copy read, not the "
                                                                  "later write";
}

// With one copy, a server that is down keeps its pages: ops on them wait
// for it (a hard mount), new extents go elsewhere, and it takes new ones
// again once it is back.
TEST_F(ReplicatedStoreTest, WithOneCopyADownServersOpsWaitAndItIsUsedAgainWhenBack) {
  Open(2, 1, 200);
  ASSERT_TRUE(Write(0, 1));
  const int dead = Holders(0)[0], live = 1 - dead;
  faulty_[dead]->Stall();
  faulty_[dead]->ReportState(BackendState::kReconnecting);
  Io r(StoreOp::Kind::kRead, 0, 1);
  listener_.Forget(&r.op);
  store_->Submit(&r.op);
  ASSERT_TRUE(Eventually([&] { return Server(dead).state.load() == static_cast<uint64_t>(ServerState::kDown); }));
  EXPECT_EQ(listener_.state(), BackendState::kReconnecting);
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(listener_.Done(&r.op)) << "a read of the only copy did not wait for its server";
  for (uint64_t e = 1; e <= 4; e++) {
    ASSERT_TRUE(Write(e * kExtentPages, 1));
    EXPECT_EQ(Holders(e * kExtentPages), std::vector<int>{live}) << "a new extent went to the down server";
  }
  faulty_[dead]->ReportState(BackendState::kOk);
  faulty_[dead]->Resume();
  ASSERT_TRUE(listener_.WaitFor(&r.op));
  EXPECT_EQ(r.op.error, 0);
  EXPECT_TRUE(r.Holds(1));
  ASSERT_TRUE(Eventually([&] { return Server(dead).state.load() == static_cast<uint64_t>(ServerState::kOk); }));
  EXPECT_EQ(listener_.state(), BackendState::kOk);
  bool used = false;
  for (uint64_t e = 10; e < 14; e++) {
    ASSERT_TRUE(Write(e * kExtentPages, 1));
    used |= Holders(e * kExtentPages) == std::vector<int>{dead};
  }
  EXPECT_TRUE(used) << "the server that came back took no new extent";
}

// A copy that refuses a write (full, read-only) is dropped; the write
// succeeds on the other, and the extent is copied to another server.
TEST_F(ReplicatedStoreTest, AWriteRefusedByOneCopyDropsItAndTheExtentIsCopiedElsewhere) {
  Open(3, 2);
  ASSERT_TRUE(Write(0, 2));
  const std::vector<int> h = Holders(0);
  faulty_[h[0]]->FailWritesWith(ENOSPC);
  ASSERT_TRUE(Write(0, 2, 2));
  const int third = 3 - h[0] - h[1];
  ASSERT_TRUE(Eventually([&] { return faulty_[third]->Has(0); }));
  EXPECT_TRUE(CheckPage(faulty_[third]->Slot(0).data(), 0, 2));
  // Every copy refuses: the error reaches the pager, as one server's would.
  for (FaultyStore* f : faulty_) f->FailWritesWith(ENOSPC);
  Io w(StoreOp::Kind::kWrite, 0, 2, 3);
  ASSERT_TRUE(Run(w));
  EXPECT_EQ(w.op.error, ENOSPC);
}

TEST_F(ReplicatedStoreTest, AReadFailingOnOneCopyIsAnsweredByTheOther) {
  Open(2, 2);
  ASSERT_TRUE(Write(0, 3));
  faulty_[0]->FailReadsWith(EIO);
  for (int i = 0; i < 6; i++) {
    Io r(StoreOp::Kind::kRead, 0, 3);
    ASSERT_TRUE(Run(r));
    EXPECT_EQ(r.op.error, 0);
    EXPECT_TRUE(r.Holds(1));
  }
  faulty_[1]->FailReadsWith(EIO);
  Io r(StoreOp::Kind::kRead, 0, 3);
  ASSERT_TRUE(Run(r));
  EXPECT_EQ(r.op.error, EIO) << "no copy answered, yet the read succeeded";
}

// Stop completes everything: what a dead server holds fails (its store's
// Stop gives up on it), the rest completes as it should.
TEST_F(ReplicatedStoreTest, StopCompletesEveryOpEvenWithAServerDead) {
  Open(2, 1, 60000);
  ASSERT_TRUE(Write(0, 1));
  const int dead = Holders(0)[0];
  faulty_[dead]->Stall();
  Io r(StoreOp::Kind::kRead, 0, 1);
  store_->Submit(&r.op);
  store_->Stop();
  EXPECT_EQ(faulty_[dead]->held(), 0u) << "the dead server's store was not stopped";
  EXPECT_TRUE(listener_.Done(&r.op));
  EXPECT_EQ(r.op.error, EIO);
  EXPECT_GE(listener_.threads(), 1) << "the store's thread never bound itself to the pager's reserve";
  store_.reset();
}

// What the store asks the pager to set aside is bounded by its windows, not
// by the reserve (whether it is enough is the hammer's reserve_overflows).
TEST_F(ReplicatedStoreTest, BufferBytesAreBoundedByTheWindows) {
  Open(3, 2);
  EXPECT_GE(store_->buffer_bytes(1u << 20), 2u << 20);
  EXPECT_EQ(store_->buffer_bytes(1u << 30), store_->buffer_bytes(64u << 20));
  EXPECT_EQ(store_->max_pages_per_op(), kExtentPages);
}

// ---- the whole pager over the store ---------------------------------------------------------------

// Threads write page-specific versions to random pages of a region 8x the
// limit (so eviction writes and faults read all the time) while one server
// stalls mid-run and never answers again. Every byte is checked, and the
// extents that lost a copy are copied to the third server.
class ReplicatedPager : public ::testing::TestWithParam<int> {};

TEST_P(ReplicatedPager, HammerWithAServerStalledForGoodLosesNothing) {
  constexpr uint64_t kLimit = 256;
  constexpr size_t kPages = kLimit * 8;
  const int kThreads = GetParam();
  std::vector<replicated::ServerStore> children;
  std::vector<FaultyStore*> faulty;
  for (int i = 0; i < 3; i++) {
    auto s = std::make_unique<FaultyStore>();
    faulty.push_back(s.get());
    children.push_back({std::move(s), "server" + std::to_string(i)});
  }
  StoreOptions o;
  o.replicas = 2;
  o.server_timeout_ms = 300;
  auto p = Pager::Create(TestConfig(kLimit), replicated::MakeReplicatedStore(std::move(children), o));
  ASSERT_TRUE(p.ok()) << p.status().message();
  Pager& pager = **p;
  auto mem = pager.Map(kPages * kPageSize);
  ASSERT_TRUE(mem.ok());
  auto* base = static_cast<unsigned char*>(*mem);
  const uint64_t seed = getenv("LIBPAGER_TEST_SEED") ? strtoull(getenv("LIBPAGER_TEST_SEED"), nullptr, 0) : 1;
  printf("seed %llu (LIBPAGER_TEST_SEED)\n", static_cast<unsigned long long>(seed));
  Hammer h(base, kPages, kThreads, seed);
  h.Start();
  ASSERT_TRUE(WaitWritten(pager, 4 * kLimit));
  faulty[1]->Stall();  // never answers again
  const uint64_t at_stall = pager.GetStats().evictions_written;
  EXPECT_TRUE(WaitWritten(pager, at_stall + 8 * kLimit)) << "write-back stopped with one server of three gone";
  h.Stop();
  EXPECT_EQ(h.bad(), 0u) << "pages read back wrong during the run";
  EXPECT_EQ(h.Verify(), 0u);
  Stats s = StatsWhen(pager, [](const Stats& s) { return s.under_replicated_pages == 0; }, 30s);
  EXPECT_EQ(s.under_replicated_pages, 0u) << "extents that lost their copy were not copied again";
  ASSERT_EQ(s.servers.size(), 3u);
  EXPECT_EQ(s.servers[1].state, ServerState::kDown);
  EXPECT_GT(s.rereplicated_bytes, 0u);
  EXPECT_EQ(s.io_errors, 0u);
  EXPECT_EQ(s.checksum_failures, 0u);
  // The store's buffers (the stalled server's included, held for good) are
  // in what buffer_bytes() told the pager to set aside.
  EXPECT_EQ(s.reserve_overflows, 0u) << "the reserve arena (" << s.reserve_arena_bytes << " B in use) overflowed";
  printf("%llu ops, %llu written, %llu copied again\n", static_cast<unsigned long long>(h.ops()),
         static_cast<unsigned long long>(s.evictions_written), static_cast<unsigned long long>(s.rereplicated_bytes));
  ASSERT_TRUE(pager.Unmap(*mem, kPages * kPageSize).ok());
}

// One thread first: the scaffolding without races.
INSTANTIATE_TEST_SUITE_P(Threads, ReplicatedPager, ::testing::Values(1, 4),
                         [](const auto& info) { return std::to_string(info.param); });

}  // namespace
}  // namespace pager::testing

// The health of one server of a store over several (replicated_store.h):
// its state as the store shows it, when to give up on it, when a read sent
// to it is late, and when it may be used again.
//
//   ok ----its store reports reconnecting----> reconnecting
//   reconnecting ----its store reconnected---> ok
//   ok, reconnecting ----"gone"--------------> down
//   down ----"back"--------------------------> ok
//
// "gone", at `now`, with the server timeout T:
//  - its store has been reconnecting for T; or
//  - it has had requests outstanding and answered none for T (now minus the
//    later of its last answer and its oldest outstanding request's issue);
//  - or at once, for good, when its store reports its swap file lost.
// "back": its store is connected, it has answered since it went down (or
// has nothing outstanding), and none of its orphans is outstanding. An
// orphan is a request whose op completed without it when the server went
// down; an orphaned write landing after a newer write of the same slot would
// bring old bytes back, so nothing new goes to the server before they land.
//
// Reads: a smoothed read latency and its mean deviation, as TCP estimates
// round trips (RFC 6298); a read unanswered after srtt + 4 * rttvar, within
// [kMinHedge, kMaxHedge], is late and is asked of the other copy too.
//
// Time is passed in (nanoseconds on a monotonic clock), so that tests can
// drive it. Not thread-safe: the store's coordinating thread owns it.
#pragma once

#include <cstdint>

#include "pager/pager.h"
#include "pager/store.h"

namespace pager::replicated {

inline constexpr uint64_t kMinHedgeNs = 10'000'000;     // 10 ms
inline constexpr uint64_t kMaxHedgeNs = 1'000'000'000;  // 1 s
inline constexpr uint64_t kRefusalNs = 10'000'000'000;  // 10 s
inline constexpr uint64_t kStaleNs = 1'000'000'000;     // 1 s

class ServerHealth {
 public:
  ServerState state() const;
  bool down() const { return down_; }
  // Reconnecting or down: new copies go elsewhere if they can.
  bool degraded() const { return down_ || store_state_ != BackendState::kOk; }
  // Its store reported its swap file lost: down for good.
  bool file_lost() const { return file_lost_; }

  // What its store reports (StoreListener::OnBackendState).
  void OnStoreState(BackendState s, uint64_t now_ns);
  // Any answer, to any request (an error included: the server is there).
  void OnAnswer(uint64_t now_ns) { last_answer_ns_ = now_ns; }
  // It refused a write (full, read-only, ...): for kRefusalNs, it gets no new
  // extent and no copy, so that a dropped copy is not made again there.
  void OnWriteRefused(uint64_t now_ns) { refused_until_ns_ = now_ns + kRefusalNs; }
  bool refusing(uint64_t now_ns) const { return now_ns < refused_until_ns_; }
  // A read answered after `latency_ns`, at `now_ns`.
  void OnReadLatency(uint64_t latency_ns, uint64_t now_ns);

  // How long a read may go unanswered before it is late.
  uint64_t hedge_after_ns() const;
  // The estimate reads are routed by (lower is better), in nanoseconds: 0
  // when it has no recent sample (kStaleNs), so that a server once slow is
  // asked again and its estimate renewed rather than shunned for good.
  uint64_t read_estimate_ns(uint64_t now_ns) const {
    return now_ns > last_sample_ns_ + kStaleNs ? 0 : srtt_ns_;
  }

  // Applies the "gone" and "back" rules at `now_ns`. `oldest_issue_ns`: the
  // issue time of its oldest outstanding request, 0 if none; `orphans`:
  // its outstanding orphans. True if down() changed.
  bool Update(uint64_t now_ns, uint64_t timeout_ns, uint64_t oldest_issue_ns, uint64_t orphans);

 private:
  BackendState store_state_ = BackendState::kOk;
  uint64_t store_state_since_ns_ = 0;
  bool file_lost_ = false;
  bool down_ = false;
  uint64_t down_since_ns_ = 0;
  uint64_t last_answer_ns_ = 0;
  uint64_t refused_until_ns_ = 0;
  uint64_t srtt_ns_ = 0;    // 0: no sample yet
  uint64_t last_sample_ns_ = 0;
  uint64_t rttvar_ns_ = 0;
};

}  // namespace pager::replicated

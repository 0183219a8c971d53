#include "store/server_health.h"

#include <algorithm>

namespace pager::replicated {

ServerState ServerHealth::state() const {
  if (down_) return ServerState::kDown;
  return store_state_ == BackendState::kOk ? ServerState::kOk : ServerState::kReconnecting;
}

void ServerHealth::OnStoreState(BackendState s, uint64_t now_ns) {
  if (s == BackendState::kPaused) file_lost_ = true;  // an NFS store's only use of kPaused
  if (s != store_state_) store_state_since_ns_ = now_ns;
  store_state_ = s;
}

void ServerHealth::OnReadLatency(uint64_t latency_ns, uint64_t now_ns) {
  last_sample_ns_ = now_ns;
  if (srtt_ns_ == 0) {
    srtt_ns_ = latency_ns;
    rttvar_ns_ = latency_ns / 2;
    return;
  }
  // RFC 6298 2.3, with its alpha = 1/8 and beta = 1/4.
  const uint64_t dev = latency_ns > srtt_ns_ ? latency_ns - srtt_ns_ : srtt_ns_ - latency_ns;
  rttvar_ns_ = rttvar_ns_ - rttvar_ns_ / 4 + dev / 4;
  srtt_ns_ = srtt_ns_ - srtt_ns_ / 8 + latency_ns / 8;
}

uint64_t ServerHealth::hedge_after_ns() const {
  return std::clamp(srtt_ns_ + 4 * rttvar_ns_, kMinHedgeNs, kMaxHedgeNs);
}

bool ServerHealth::Update(uint64_t now_ns, uint64_t timeout_ns, uint64_t oldest_issue_ns, uint64_t orphans) {
  if (!down_) {
    // Times compared by sum: an answer or a request may be stamped after `now_ns`.
    const bool unreachable = store_state_ != BackendState::kOk && now_ns >= store_state_since_ns_ + timeout_ns;
    const bool silent = oldest_issue_ns != 0 && now_ns >= std::max(last_answer_ns_, oldest_issue_ns) + timeout_ns;
    if (!file_lost_ && !unreachable && !silent) return false;
    down_ = true;
    down_since_ns_ = now_ns;
    // Its latency estimate was made before: it starts afresh when it is back.
    srtt_ns_ = rttvar_ns_ = 0;
    return true;
  }
  const bool answered = last_answer_ns_ > down_since_ns_ || oldest_issue_ns == 0;
  if (file_lost_ || store_state_ != BackendState::kOk || !answered || orphans != 0) return false;
  down_ = false;
  return true;
}

}  // namespace pager::replicated

#include "stats.h"

#include <bit>
#include <cstring>

namespace pager {

namespace {

int LatencyBucket(uint64_t ns) {
  uint64_t us = ns / 1000;
  int b = us == 0 ? 0 : std::bit_width(us) - 1;
  return b >= kLatencyBuckets ? kLatencyBuckets - 1 : b;
}

// Percentile (0..100) of a log2 histogram of microseconds, interpolated
// inside the bucket it falls in.
double Percentile(const uint64_t (&buckets)[kLatencyBuckets], double p) {
  uint64_t total = 0;
  for (uint64_t c : buckets) total += c;
  if (total == 0) return 0;
  double rank = p / 100.0 * static_cast<double>(total);
  uint64_t seen = 0;
  for (int i = 0; i < kLatencyBuckets; i++) {
    if (buckets[i] == 0) continue;
    if (static_cast<double>(seen + buckets[i]) >= rank) {
      // Interpolate inside the bucket [2^i, 2^(i+1)).
      double lo = i == 0 ? 0 : static_cast<double>(uint64_t{1} << i);
      double hi = static_cast<double>(uint64_t{1} << (i + 1));
      double frac = (rank - static_cast<double>(seen)) / static_cast<double>(buckets[i]);
      return lo + (hi - lo) * frac;
    }
    seen += buckets[i];
  }
  return static_cast<double>(uint64_t{1} << kLatencyBuckets);
}

ServerStats SnapshotServer(const ServerStatsBlock& b) {
  ServerStats s;
  s.name.assign(b.name, strnlen(b.name, sizeof b.name));
  const uint64_t state = b.state.load(std::memory_order_relaxed);
  s.state = state <= static_cast<uint64_t>(ServerState::kDown) ? static_cast<ServerState>(state) : ServerState::kDown;
#define PAGER_STATS_COPY(name) s.name = b.name.load(std::memory_order_relaxed);
  PAGER_SERVER_COUNTERS(PAGER_STATS_COPY)
#undef PAGER_STATS_COPY
  for (int i = 0; i < kLatencyBuckets; i++) s.latency_us[i] = b.latency_us[i].load(std::memory_order_relaxed);
  return s;
}

}  // namespace

const char* ServerStateName(ServerState s) {
  switch (s) {
    case ServerState::kOk: return "ok";
    case ServerState::kReconnecting: return "reconnecting";
    case ServerState::kDown: return "down";
  }
  return "unknown";
}

void StatsBlock::RecordFaultLatency(uint64_t ns) { Add(fault_latency_us[LatencyBucket(ns)]); }

void ServerStatsBlock::RecordLatency(uint64_t ns) {
  latency_us[LatencyBucket(ns)].fetch_add(1, std::memory_order_relaxed);
}

Stats StatsBlock::Snapshot() const {
  Stats s;
#define PAGER_STATS_COPY(name) s.name = name.load(std::memory_order_relaxed);
  PAGER_STATS_COUNTERS(PAGER_STATS_COPY)
#undef PAGER_STATS_COPY
  s.backend = static_cast<BackendState>(backend.load(std::memory_order_relaxed));
  s.eviction_paused = eviction_paused.load(std::memory_order_relaxed) != 0;
  for (int i = 0; i < Stats::kLatencyBuckets; i++) {
    s.fault_latency_us[i] = fault_latency_us[i].load(std::memory_order_relaxed);
  }
  // A count past the array is a damaged file's: show none of it.
  const uint32_t n = servers.count.load(std::memory_order_acquire);
  if (n <= kMaxServers) {
    s.replicas = servers.replicas.load(std::memory_order_relaxed);
    s.under_replicated_pages = servers.under_replicated_pages.load(std::memory_order_relaxed);
    s.rereplicated_bytes = servers.rereplicated_bytes.load(std::memory_order_relaxed);
    for (uint32_t i = 0; i < n; i++) s.servers.push_back(SnapshotServer(servers.server[i]));
  }
  return s;
}

double Stats::FaultLatencyPercentile(double p) const { return Percentile(fault_latency_us, p); }

double ServerStats::LatencyPercentile(double p) const { return Percentile(latency_us, p); }

}  // namespace pager

#include "stats.h"

#include <bit>

namespace pager {

void StatsBlock::RecordFaultLatency(uint64_t ns) {
  uint64_t us = ns / 1000;
  int b = us == 0 ? 0 : std::bit_width(us) - 1;
  if (b >= Stats::kLatencyBuckets) b = Stats::kLatencyBuckets - 1;
  Add(fault_latency_us[b]);
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
  return s;
}

double Stats::FaultLatencyPercentile(double p) const {
  uint64_t total = 0;
  for (uint64_t c : fault_latency_us) total += c;
  if (total == 0) return 0;
  double rank = p / 100.0 * static_cast<double>(total);
  uint64_t seen = 0;
  for (int i = 0; i < kLatencyBuckets; i++) {
    if (fault_latency_us[i] == 0) continue;
    if (static_cast<double>(seen + fault_latency_us[i]) >= rank) {
      // Interpolate inside the bucket [2^i, 2^(i+1)).
      double lo = i == 0 ? 0 : static_cast<double>(uint64_t{1} << i);
      double hi = static_cast<double>(uint64_t{1} << (i + 1));
      double frac = (rank - static_cast<double>(seen)) / static_cast<double>(fault_latency_us[i]);
      return lo + (hi - lo) * frac;
    }
    seen += fault_latency_us[i];
  }
  return static_cast<double>(uint64_t{1} << kLatencyBuckets);
}

}  // namespace pager

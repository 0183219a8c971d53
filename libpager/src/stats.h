// The pager's counters: plain atomics, updated with relaxed stores by the
// pager thread, read by anyone at any time without a lock. The block is a
// fixed-layout struct so it can live in shared memory for pagerctl.
#pragma once

#include <atomic>
#include <cstdint>

#include "pager/pager.h"

namespace pager {

// Every counter of Stats, in one list so the block and the snapshot cannot
// drift apart.
#define PAGER_STATS_COUNTERS(X)                                                         \
  X(limit_pages) X(resident_pages) X(inactive_pages) X(swapped_pages) X(slots_in_use)   \
  X(mapped_bytes) X(faults_zero) X(faults_inactive) X(faults_swapin)                    \
  X(pages_zero_filled) X(pages_read_ahead) X(evictions_clean) X(evictions_written)      \
  X(deactivations) X(bytes_read) X(bytes_written) X(store_reads) X(store_writes)        \
  X(io_errors) X(io_retries) X(checksum_failures) X(eviction_pauses) X(reserve_bytes)   \
  X(reserve_free_bytes) X(reserve_min_free_bytes) X(throttle_events) X(throttled_ns)    \
  X(limit_waits) X(reserve_arena_bytes) X(reserve_overflows) X(limit_overruns)      \
  X(metadata_bytes) X(move_refusals) X(encrypted)

// A store over several servers (docs/servers.md): each server's counters,
// written by the store's coordinating thread only (store/replicated_store*),
// read like the rest of the block.
inline constexpr int kMaxServers = 8;

#define PAGER_SERVER_COUNTERS(X) \
  X(reads) X(writes) X(bytes_read) X(bytes_written) X(hedged_reads) X(errors) X(downs) X(extents)

struct ServerStatsBlock {
  char name[96] = {};  // written before StoreServersBlock::count counts it; NUL-padded
  std::atomic<uint64_t> state{0};  // ServerState
#define PAGER_STATS_FIELD(name) std::atomic<uint64_t> name{0};
  PAGER_SERVER_COUNTERS(PAGER_STATS_FIELD)
#undef PAGER_STATS_FIELD
  std::atomic<uint64_t> latency_us[kLatencyBuckets] = {};

  void RecordLatency(uint64_t ns);
};

struct StoreServersBlock {
  std::atomic<uint32_t> count{0};  // servers in use; set once, with a release store, after their names
  std::atomic<uint32_t> replicas{0};
  std::atomic<uint64_t> under_replicated_pages{0};
  std::atomic<uint64_t> rereplicated_bytes{0};
  ServerStatsBlock server[kMaxServers];
};

struct StatsBlock {
#define PAGER_STATS_FIELD(name) std::atomic<uint64_t> name{0};
  PAGER_STATS_COUNTERS(PAGER_STATS_FIELD)
#undef PAGER_STATS_FIELD
  std::atomic<uint64_t> backend{0};
  std::atomic<uint64_t> eviction_paused{0};
  std::atomic<uint64_t> fault_latency_us[Stats::kLatencyBuckets] = {};
  StoreServersBlock servers;

  void Add(std::atomic<uint64_t>& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
  void Set(std::atomic<uint64_t>& c, uint64_t v) { c.store(v, std::memory_order_relaxed); }
  void RecordFaultLatency(uint64_t ns);

  Stats Snapshot() const;
};

}  // namespace pager

// libpager: keeps a program's memory under a limit by paging it, from user
// space, to a swap file on a local path or an NFS server.
//
//   pager::Config cfg;
//   cfg.memory_limit = 256 << 20;
//   cfg.swap = "nfs://127.0.0.1:2049/export/swap?version=3";
//   auto p = pager::Pager::Create(cfg);          // Result<unique_ptr<Pager>>
//   if (!p.ok()) { fprintf(stderr, "%s\n", p.status().message().c_str()); ... }
//   auto mem = (*p)->Map(8ull << 30);            // Result<void*>: 8 GiB, paged
//   ... use it like ordinary memory, from any number of threads ...
//   (*p)->Unmap(*mem, 8ull << 30);
//
// Regions are anonymous private mappings registered with userfaultfd. The
// pager keeps their resident pages at or under memory_limit: a background
// evictor moves cold pages to the swap store, and a touch of a swapped page
// faults it back, byte for byte. See docs/design.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pager/export.h"
#include "pager/status.h"
#include "pager/store.h"

namespace pager {

enum class EvictionPolicy : uint8_t {
  kClock = 0,  // second chance with an inactive stage (default)
  kFifo = 1,   // oldest fault first; a baseline for tests and benchmarks
};

// Every setting, with its unit and default. Config::FromEnvironment reads the
// LIBPAGER_* variables named beside each field.
struct PAGER_EXPORT Config {
  // Most bytes of paged memory resident at once. Required. LIBPAGER_LIMIT.
  uint64_t memory_limit = 0;

  // Where swapped pages go: a directory (a swap file is created in it),
  // file:///dir, nfs://host[:port]/export/dir[?version=3|4], or "memory:".
  // Several NFS servers, comma-separated (nfs://a/x,nfs://b/x,...): pages
  // are spread over them, `replicas` copies of each (docs/servers.md).
  // LIBPAGER_SWAP. Default: $TMPDIR, else /var/tmp.
  std::string swap;

  // With several servers in `swap`: copies of each page, 1 or 2, each on
  // another server. 0: 2. With 2, losing one server loses nothing; with 1,
  // a server that is down makes the pages on it wait for it, as a single
  // server's do. LIBPAGER_REPLICAS.
  uint32_t replicas = 0;

  // With several servers: a server that leaves requests unanswered (or
  // cannot be reached) this long is marked down: its pages are read from
  // their other copy and copied again to another server, and it gets no new
  // pages until it answers again. LIBPAGER_SERVER_TIMEOUT, a duration
  // ("30s", "500ms"; a bare number is seconds).
  uint32_t server_timeout_ms = 30000;

  // Cap on the swap file in bytes; 0 = none. A full store pauses eviction,
  // it never loses a page. LIBPAGER_SWAP_MAX.
  uint64_t swap_max = 0;

  // The pager's locked emergency pool in bytes: staging pages, plus 3/5 of
  // this again for the arena its threads allocate from (more if its store
  // needs buffers for as much in flight: nfs://; docs/reserve.md). 0 = 1% of
  // memory_limit, at least 8 MiB and at most 64 MiB; at least 1 MiB.
  // LIBPAGER_RESERVE.
  uint64_t reserve = 0;

  // Fractions of memory_limit: the evictor starts above high_watermark and
  // works down to low_watermark. LIBPAGER_HIGH_WATERMARK, LIBPAGER_LOW_WATERMARK.
  double high_watermark = 0.95;
  double low_watermark = 0.90;

  // Fraction of memory_limit kept in the inactive stage, where a page waits,
  // unmapped but still in memory, for a re-touch before it is written out.
  // LIBPAGER_INACTIVE_RATIO.
  double inactive_ratio = 0.125;

  EvictionPolicy policy = EvictionPolicy::kClock;  // LIBPAGER_POLICY=clock|fifo

  // Upper bound, in pages, of read-ahead on sequential swap-ins and of
  // zero-fill-ahead on sequential first touches. LIBPAGER_READAHEAD.
  uint32_t readahead_pages = 64;

  // How far ahead, in pages, a swap-in stream (a scan, forwards or back, or
  // a fixed stride) is read before the program gets there; at most an eighth
  // of memory_limit is used. 0: never read ahead of a fault. LIBPAGER_PREFETCH.
  uint32_t prefetch_pages = 1024;

  // Milliseconds Create() waits for the swap server. LIBPAGER_CONNECT_TIMEOUT_MS.
  uint32_t connect_timeout_ms = 10000;

  // Comma-separated kernel features to treat as absent, to exercise the
  // fallbacks: move, wp, poison, remap, unmap, remove, fork. LIBPAGER_DISABLE.
  std::string disable_features;

  // Encrypt and authenticate every page written to the store (AES-256-GCM,
  // a fresh key per pager, held only in locked memory; docs/security.md).
  // kAuto: on for nfs://, where the pages leave the machine; off for a local
  // file, which only its owner can read. LIBPAGER_ENCRYPT=0|1.
  enum class Encrypt : uint8_t { kAuto = 0, kOn = 1, kOff = 2 };
  Encrypt encrypt = Encrypt::kAuto;
  // Whether pages are encrypted with these settings (kAuto resolved).
  bool Encrypting() const;

  // Publish the stats in a shared-memory file that pagerctl reads (see
  // pager/monitor.h). A directory that cannot take the file is a logged
  // warning, never an error. LIBPAGER_STATS=0|1, LIBPAGER_STATS_DIR.
  bool publish_stats = true;
  std::string stats_dir = "/dev/shm";

  // Overlays the LIBPAGER_* variables that are set onto `base`. An unparsable
  // value is an error naming the variable and the value.
  static Result<Config> FromEnvironment(Config base);
  static Result<Config> FromEnvironment();

  // Checks every setting, and that memory_limit plus the memory the pager
  // locks (the reserve and its arena) fit in this machine's memory and in
  // the process's memory cgroup limit. The message names the offending
  // setting, as "memory_limit (LIBPAGER_LIMIT)", its value and the bound.
  Status Validate() const;
  // Same, naming each setting by `name(variable)`, given its LIBPAGER_*
  // variable (pagerctl names its options).
  Status Validate(const std::function<std::string(const std::string& variable)>& name) const;

  // The reserve in bytes after defaults are applied.
  uint64_t EffectiveReserve() const;
  // The swap location after defaults are applied: `swap`, else $TMPDIR,
  // else /var/tmp.
  std::string EffectiveSwap() const;
  // The settings OpenStore takes.
  StoreOptions store_options() const;
};

inline constexpr int kLatencyBuckets = 24;

// One server of a store over several (docs/servers.md), as published.
enum class ServerState : uint8_t {
  kOk = 0,
  kReconnecting = 1,  // the connection broke or requests go unanswered; not yet down
  kDown = 2,          // unanswered past Config::server_timeout_ms: its pages are served by the others
};
PAGER_EXPORT const char* ServerStateName(ServerState s);

struct PAGER_EXPORT ServerStats {
  std::string name;              // "host:port/export/dir", escaped for display when read from a file
  ServerState state = ServerState::kOk;
  uint64_t reads = 0;            // ops, hedges and copies included
  uint64_t writes = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  uint64_t hedged_reads = 0;     // reads sent here because the first server asked was late
  uint64_t errors = 0;           // ops it completed with an error
  uint64_t downs = 0;            // times it was marked down
  uint64_t extents = 0;          // extents with a copy on it
  // Op latency, from submit to completion: bucket i counts ops that took
  // [2^i, 2^(i+1)) microseconds.
  uint64_t latency_us[kLatencyBuckets] = {};
  double LatencyPercentile(double p) const;
};

// A consistent-enough snapshot of the counters (each counter is exact; the
// set is read without stopping the pager).
struct PAGER_EXPORT Stats {
  uint64_t limit_pages = 0;
  uint64_t resident_pages = 0;     // mapped in regions + waiting in the inactive stage
  uint64_t inactive_pages = 0;
  uint64_t swapped_pages = 0;      // content only in the store
  uint64_t slots_in_use = 0;
  uint64_t mapped_bytes = 0;       // sum of region sizes

  uint64_t faults_zero = 0;        // first touch: zero page, no I/O
  uint64_t faults_inactive = 0;    // re-touch in the inactive stage: no I/O
  uint64_t faults_swapin = 0;      // read from the store
  uint64_t pages_zero_filled = 0;  // including zero-fill-ahead
  uint64_t pages_read_ahead = 0;

  uint64_t evictions_clean = 0;    // dropped, the store's copy still valid
  uint64_t evictions_written = 0;  // written back
  uint64_t deactivations = 0;      // moved to the inactive stage
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  uint64_t store_reads = 0;        // ops
  uint64_t store_writes = 0;

  uint64_t io_errors = 0;
  uint64_t io_retries = 0;
  uint64_t checksum_failures = 0;  // pages poisoned (SIGBUS to the toucher)
  uint64_t eviction_pauses = 0;

  uint64_t reserve_bytes = 0;
  uint64_t reserve_free_bytes = 0;
  uint64_t reserve_min_free_bytes = 0;
  uint64_t throttle_events = 0;
  uint64_t throttled_ns = 0;       // total time faults waited on the throttle
  uint64_t limit_waits = 0;        // faults that waited for eviction at the limit
  uint64_t reserve_arena_bytes = 0;  // the reserve arena's share in use (in reserve_bytes)
  uint64_t reserve_overflows = 0;    // arena extents the pool could not hold (from the OS)
  uint64_t limit_overruns = 0;       // times nothing resident could be evicted (read-only
                                     // or locked mappings) and faults went over the limit
  uint64_t move_refusals = 0;        // pages eviction found pinned, shared with a fork
                                     // child, read-only or mlocked (kept in memory)
  uint64_t encrypted = 0;            // 1: pages are encrypted and authenticated in the store
  uint64_t metadata_bytes = 0;       // page tables, slot maps, queues: ordinary memory that
                                     // grows with what is mapped and swapped (every pager
                                     // of the process), not part of the reserve

  BackendState backend = BackendState::kOk;
  bool eviction_paused = false;

  // Fault service latency, from reading the fault to waking the thread:
  // bucket i counts faults that took [2^i, 2^(i+1)) microseconds.
  static constexpr int kLatencyBuckets = pager::kLatencyBuckets;
  uint64_t fault_latency_us[kLatencyBuckets] = {};
  // Percentile (0..100) of fault latency in microseconds, from the buckets.
  double FaultLatencyPercentile(double p) const;

  // A store over several servers (docs/servers.md); 0 and empty otherwise.
  uint32_t replicas = 0;                // copies each page should have
  uint64_t under_replicated_pages = 0;  // swapped pages with fewer copies than that
  uint64_t rereplicated_bytes = 0;      // copied from a survivor to another server
  std::vector<ServerStats> servers;
};

class PAGER_EXPORT Pager {
 public:
  // Opens userfaultfd, the reserve and the store, and starts the pager's
  // thread. Fails with a message naming the setting or the missing right.
  static Result<std::unique_ptr<Pager>> Create(const Config& config);
  // Same, with a store built by the caller (tests, custom backends).
  static Result<std::unique_ptr<Pager>> Create(const Config& config,
                                               std::unique_ptr<Store> store);

  // Faults every swapped page of the regions still mapped back in, then
  // stops: memory left mapped stays valid after the pager is gone.
  ~Pager();
  Pager(const Pager&) = delete;
  Pager& operator=(const Pager&) = delete;

  // A new paged region of `bytes` (rounded up to pages), zero-filled.
  Result<void*> Map(size_t bytes);
  // Unmaps a region (or a page-aligned part of one) and frees its slots.
  Status Unmap(void* addr, size_t bytes);
  // Registers an existing private anonymous mapping.
  Status Adopt(void* addr, size_t bytes);
  // Adopt for a mapping the caller has just created (mmap returned it; the
  // preload uses this). If the pager still holds state at that address for
  // a mapping another thread unmapped or moved an instant before (its event
  // not read yet), that state is kept for the late event instead of being
  // taken for the new mapping's.
  Status AdoptNew(void* addr, size_t bytes);

  // Keeps the pages spanning [addr, addr+bytes) in memory until Unpin (or
  // until they are discarded or unmapped): they are never evicted. They count
  // against the limit, and a limit filled with pinned pages turns soft
  // (Stats::limit_overruns). Fails if the range is not inside a paged region.
  Status Pin(const void* addr, size_t bytes);
  Status Unpin(const void* addr, size_t bytes);
  // Call first thing on a thread whose stack is paged memory (pthread_attr_
  // setstack on memory from Map, or Adopted): pins the few bytes of its
  // control block that the kernel writes as the thread exits. The kernel
  // does not raise a userfault for that write; if the page were swapped out
  // then, the write would be lost and pthread_join would never return
  // (UffdContract.ExitingThreadsClearOfItsTidWordRaisesNoFault). The
  // preload does this for every thread given such a stack. Does nothing for
  // a thread whose control block is not paged.
  Status PinThisThread();

  Stats GetStats() const;
  // Returns once the pager's thread has handled every fault, event and
  // completion that reached it before the call: stats read after Sync()
  // account for all of them.
  void Sync();

  // Fork support without UFFD_EVENT_FORK: BeginFork brings every page of
  // every region back into memory (past the limit if need be) and holds
  // eviction; a child forked then inherits complete memory, as plain memory
  // (its registration is not inherited). EndFork, in the parent, resumes
  // paging. Costs a swap-in of everything swapped: posix_spawn, system(3) and
  // popen(3) do not fork and never pay it.
  void BeginFork();
  void EndFork();
  const Config& config() const;
  // Kernel features in use, e.g. "move,wp,poison,remap,unmap,remove".
  std::string Features() const;

  class PAGER_NO_EXPORT Impl;

 private:
  friend class PagerTestPeer;  // tests' view of internals (src/test_hooks.h)
  explicit Pager(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pager

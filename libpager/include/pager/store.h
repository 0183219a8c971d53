// The backing store of swapped pages: an array of 4 KiB slots, read and
// written in runs of consecutive slots, asynchronously.
//
// The pager talks to every backend (memory, local file, NFS) through this
// interface, so every paging policy can be tested against MemoryStore and
// every failure injected by a test store.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "pager/export.h"
#include "pager/status.h"

namespace pager {

inline constexpr size_t kPageSize = 4096;

// One I/O on a run of consecutive slots. The submitter owns the op and its
// buffer; both stay valid and untouched until the store completes the op.
struct StoreOp {
  enum class Kind : uint8_t { kRead, kWrite };

  Kind kind = Kind::kRead;
  uint64_t slot = 0;        // first slot of the run
  uint32_t pages = 0;       // run length
  std::byte* buf = nullptr; // pages * kPageSize bytes
  // How many times the pager has submitted this op before (a read whose
  // pages failed their check is read once more): a store with several
  // copies of a slot reads another copy on a later attempt.
  uint32_t attempt = 0;
  // Set by the store before completion: 0, or a positive errno. A short read
  // (slots past the end of the file) is EIO, never a silent zero page. A slot
  // inside the file that was never written reads as whatever is there (a
  // hole reads zeros): the pager never reads one, and its checksums would
  // catch it.
  int error = 0;

  // The submitter's bookkeeping; the store never reads or writes these.
  uint32_t id = 0;
  StoreOp* next = nullptr;
};

// Health of the backend, published in the stats.
enum class BackendState : uint8_t {
  kOk = 0,
  kReconnecting = 1,  // the server went away; in-flight ops wait and are retried
  kPaused = 2,        // writes fail (ENOSPC, EROFS, ...); eviction is paused
};
PAGER_EXPORT const char* BackendStateName(BackendState s);

// Per-server counters of a store over several servers, in the pager's
// published stats (defined in libpager's src/stats.h: not for users).
struct StoreServersBlock;

// Where completions go. Called on any thread (often the store's own); must
// not block and must not call back into the store.
class PAGER_EXPORT StoreListener {
 public:
  virtual ~StoreListener() = default;
  virtual void OnComplete(StoreOp* op) = 0;
  virtual void OnBackendState(BackendState state, const std::string& why) = 0;
  // Called first on every thread the store starts, on that thread: the pager
  // binds it to its emergency pool, so that what the store allocates there
  // (queues, libnfs's buffers) is memory set aside in advance.
  virtual void OnThreadStart() {}
  // Where a store over several servers publishes each server's counters,
  // once, from Start on; nullptr: nowhere. The pager returns its block.
  virtual StoreServersBlock* servers_stats() { return nullptr; }
};

class PAGER_EXPORT Store {
 public:
  virtual ~Store() = default;

  // Connects/creates the backing file. Called once, before any Submit.
  virtual Status Start(StoreListener* listener) = 0;

  // Queues an op; completes it exactly once through the listener, possibly
  // before Submit returns. Contract, relied on by the pager:
  //  - reads are served ahead of queued writes (a fault must not wait
  //    behind a large write-back);
  //  - a completed write is stable: a later read returns its bytes even if a
  //    server restarted in between;
  //  - transient failures (a dropped connection, a restarting server) are
  //    retried inside the store, like a hard NFS mount; an op completes with
  //    an error only for a condition retrying will not fix (ENOSPC, EROFS,
  //    EACCES, a truncated file).
  virtual void Submit(StoreOp* op) = 0;

  // Completes everything in flight, then closes and removes the backing file.
  virtual void Stop() = 0;

  // Largest run the store handles in one op (the pager splits larger ones).
  virtual uint32_t max_pages_per_op() const { return 256; }

  // Bytes the store's threads allocate to carry ops of `in_flight_bytes` in
  // all at once (libnfs copies each WRITE's payload into a send buffer and
  // each READ reply into a receive buffer). The pager sizes its reserve arena
  // to hold them, so that write-back never allocates from ordinary memory.
  virtual uint64_t buffer_bytes(uint64_t in_flight_bytes) const {
    (void)in_flight_bytes;
    return 0;
  }

  // Human-readable location, e.g. "nfs 10.0.0.5:2049/export/libpager-....swap (v3, ...)".
  virtual std::string Describe() const = 0;

  // The name of the swap file Start creates in the store's location, known
  // from the store's creation on, if the file would outlive the process
  // unless Stop removed it (a file on an NFS server). A process that never
  // stops its store (the preload) hands the name to libpager-reaper before
  // Start, and the reaper removes the file once the process is gone. Empty
  // when nothing would be left behind: "memory:", or a local swap file,
  // which is unlinked as soon as it is created.
  virtual std::string swap_file_name() const { return {}; }
};

// How a store is built: the store's share of Config (Config::store_options).
struct StoreOptions {
  uint64_t max_bytes = 0;               // cap on the swap file (on each server); 0: none
  uint32_t connect_timeout_ms = 10000;  // how long Start() waits for a server
  // Several servers only (docs/servers.md): copies of each page, 1 or 2
  // (0: 2), and how long a server may leave requests unanswered before it
  // is marked down and its pages are read from, and copied to, the others.
  uint32_t replicas = 0;
  uint32_t server_timeout_ms = 30000;
};

// Builds the store for a swap location:
//   "memory:"                     in-process (tests, benchmarks)
//   "/dir", "file:///dir"         a swap file created in dir
//   "nfs://host[:port]/export/dir[?version=3|4&...]"  NFS via libnfs
//   "nfs://a/export,nfs://b/export,..."  several NFS servers: pages spread
//                                 over them, `replicas` copies of each
PAGER_EXPORT Result<std::unique_ptr<Store>> OpenStore(const std::string& location, const StoreOptions& options);
// The same with default options but these.
PAGER_EXPORT Result<std::unique_ptr<Store>> OpenStore(const std::string& location, uint64_t max_bytes,
                                         uint32_t connect_timeout_ms);

}  // namespace pager

// The pager's stats, published in a shared-memory file so that pagerctl can
// read them from outside, even while the pager's thread is stuck on a dead
// server: readers never ask the pager anything, they read the file.
//
// One file per pager: <base>/libpager-<uid>/libpager.<pid>.<n> (base:
// /dev/shm by default; the per-user directory: stats_dir.h; n: the pager's
// sequence number in its process), mode 0600, created O_EXCL|O_NOFOLLOW.
// Its layout is a SegmentHeader at offset 0, then the StatsBlock at
// header.stats_offset. The writer maps it and updates the block with relaxed
// atomic stores (the block's atomics are lock-free, so address-free and
// valid across processes); the header is written once, before `ready` is set
// with a release store.
//
// Readers (stats_reader.cc) never map the file: whoever can write it can
// truncate it under a mapping, and the reader dies of SIGBUS. They pread the
// whole segment into a buffer and check it there.
//
// Liveness. The writer holds an exclusive flock on the file for its whole
// life. The fd is close-on-exec, so the lock goes when the process dies or
// execs without destroying its pager (the pid and its start time do not
// change across an exec, so only the lock can tell); a fork shares the lock,
// so the pid and its start time are checked as well (a reused pid has
// another start time). A file is stale when its lock is free, or its pid is
// gone, or the pid now belongs to a process started at another time.
//
// Trust. A file speaks for the live process it names only if that process's
// effective uid owns it (or root does), and its directory is that uid's
// (stats_dir.h); anything else is a forgery and is skipped.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "pager/monitor.h"
#include "pager/status.h"
#include "process_id.h"
#include "stats.h"
#include "stats_dir.h"

namespace pager {

inline constexpr uint64_t kSegmentMagic = 0x5245474150424c4cull;  // "LLBPAGER" little-endian
// 2: files in per-user directories, read with pread; a reader requires the
// header's start time to match the live process's.
// 3: the block has `encrypted` and ends with a store's per-server counters
// (StoreServersBlock).
inline constexpr uint32_t kSegmentVersion = 3;

struct SegmentHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t header_size;   // sizeof(SegmentHeader)
  uint32_t stats_offset;  // of the StatsBlock, from the start of the file
  uint32_t stats_size;    // sizeof(StatsBlock)
  std::atomic<uint32_t> ready;  // 1 once every field below is written
  int32_t pid;
  uint64_t start_time;    // /proc/<pid>/stat field 22: clock ticks after boot
  uint64_t created_unix_ms;
  uint64_t limit_bytes;
  uint64_t reserve_bytes;
  uint32_t index;         // n in the file name
  uint32_t reserved;
  char swap[512];         // the store's Describe()
  char features[128];
  char cmdline[1024];     // arguments joined by spaces, truncated
};

static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<uint32_t>::is_always_lock_free,
              "shared counters must be lock-free to be address-free");

inline constexpr uint32_t kStatsOffset = (sizeof(SegmentHeader) + 63) / 64 * 64;
inline constexpr size_t kSegmentSize = kStatsOffset + sizeof(StatsBlock);

// The writer's side: a pager's segment, removed by the destructor.
class StatsSegment {
 public:
  struct Info {
    uint64_t limit_bytes = 0;
    uint64_t reserve_bytes = 0;
    std::string swap;
    std::string features;
  };

  // Creates <base>/libpager-<euid>/libpager.<pid>.<n>, locked, with the
  // header filled in and a zeroed block. Fails, saying why, if the per-user
  // directory is not this user's (see stats_dir.h). Whatever has the name
  // already (a stale file of a previous process with this pid) is replaced,
  // never opened.
  static Result<std::unique_ptr<StatsSegment>> Create(const std::string& base, const Info& info);
  ~StatsSegment();
  StatsSegment(const StatsSegment&) = delete;
  StatsSegment& operator=(const StatsSegment&) = delete;

  StatsBlock* block() { return block_; }
  const std::string& path() const { return path_; }

 private:
  StatsSegment() = default;

  std::string path_;
  int fd_ = -1;
  void* map_ = nullptr;
  size_t map_len_ = 0;
  StatsBlock* block_ = nullptr;
  pid_t owner_ = 0;  // a forked child inherits the object but must not unlink
};

// The stats a reader shows: the block's counters, with the backend state
// folded as Pager::GetStats folds it (a store's state first, then a pause).
Stats ReadStatsBlock(const StatsBlock& block);

// Removes `name` from `dir` if it is a stale stats file, re-checking under
// its lock that it is still stale and still the same file. Never opens what
// is not a regular file of the directory's owner. (stats_reader.cc)
Result<bool> RemoveStaleStatsFileIn(const StatsDir& dir, const std::string& name);

}  // namespace pager

// Swap file names: the one place they are made and read.
//
//   libpager-<host>-<pid>-<start>-<pidns>-<random>.swap
//
//   host    this host's name (gethostname), each byte outside [A-Za-z0-9._-]
//           written as '_', at most 64 bytes; may itself hold '-'
//   pid     the process that made the file, decimal
//   start   its start time in clock ticks after boot (process_id.h); 0 if
//           /proc could not tell
//   pidns   the inode of its PID namespace; 0 if /proc could not tell
//   random  128 bits from getrandom(2), as 32 lowercase hex digits
//
// Host, pid, start and pidns are for people and for gc: together they say
// whether the maker still runs (JudgeOwner). The random part is what makes
// a name unique and unguessable: a process image never meets a file of
// another one, be it an earlier image of the same pid (exec, a restarted
// container's pid 1) or a name squatted in a shared directory.
//
// A name is read only by ParseSwapFileName, which accepts exactly what
// ToString writes (canonical decimals, lowercase hex, nothing around): a
// file whose name does not parse is never ours, never listed, never removed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "pager/status.h"
#include "pager/swap_files.h"

namespace pager {

struct SwapFileName {
  std::string host;
  pid_t pid = 0;
  uint64_t start_time = 0;
  uint64_t pid_ns = 0;
  std::string random;  // 32 lowercase hex digits

  std::string ToString() const;
  // ToString without ".swap": also names the file's NFSv4 clients.
  std::string Stem() const;
  bool operator==(const SwapFileName&) const = default;
};

// A fresh name for the calling process. Fails only if getrandom(2) does.
Result<SwapFileName> NewSwapFileName();

// True, with *out filled in, if `name` is exactly a name ToString writes.
bool ParseSwapFileName(std::string_view name, SwapFileName* out);

// This host's name as swap file names write it.
std::string SwapFileHost();

// Whether the process that made a file still runs, as far as this process
// can tell (pagerctl gc):
//  - made on another host: kUnknown;
//  - in our PID namespace: kGone if its pid is gone or now names a process
//    with another start time, kLive if it names one with the same;
//  - in another PID namespace: kGone only if that namespace is gone and we
//    can see every process of the host (PidNamespaceState), else kUnknown.
// `why` says what was decided and on what ("process 123 is gone").
SwapFile::Owner JudgeOwner(const SwapFileName& name, std::string* why);

// A directory entry as gc sees it (pager/swap_files.h): false if `name` is
// not a swap file's; else *out with the owner judged now and the idle time
// from `mtime_unix` (seconds since the epoch; 0 if unknown).
bool DescribeSwapFile(std::string_view name, uint64_t size_bytes, int64_t mtime_unix, SwapFile* out);

}  // namespace pager

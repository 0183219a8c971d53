// Watching paged processes from outside: every pager publishes its stats in
// a shared-memory file (Config::publish_stats, Config::stats_dir), and these
// functions read them without asking the pager anything, so they work while
// a pager is stuck waiting for its server. pagerctl is built on them.
//
//   auto procs = pager::ListPagedProcesses(pager::DefaultStatsDir());
//   for (const auto& p : *procs) printf("%d %s\n", p.pid, p.command.c_str());
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "pager/pager.h"
#include "pager/status.h"

namespace pager {

// A pager seen through its stats file.
struct PagedProcess {
  std::string path;           // the stats file
  pid_t pid = 0;
  uint32_t index = 0;         // the pager's number in its process (0 for the first)
  uint64_t start_time = 0;    // of the process, clock ticks after boot
  uint64_t created_unix_ms = 0;
  std::string command;        // command line, arguments joined by spaces
  std::string swap;           // where its pages go, e.g. "file /var/tmp/libpager-h-12-0.swap"
  std::string features;       // kernel features in use
  uint64_t limit_bytes = 0;
  uint64_t reserve_bytes = 0;
  Stats stats;
  // The process is gone, or exec'd, or its pid now names another process:
  // the file is a leftover that `pagerctl gc` removes.
  bool stale = false;
};

// $LIBPAGER_STATS_DIR if set, else /dev/shm: where pagers publish by default.
std::string DefaultStatsDir();

// Every stats file in `dir`, sorted by pid and index, stale ones included
// (see PagedProcess::stale). Files that cannot be read (another user's, an
// incompatible layout version) are skipped; `skipped`, if given, gets a
// line per file saying why.
Result<std::vector<PagedProcess>> ListPagedProcesses(const std::string& dir,
                                                     std::vector<std::string>* skipped = nullptr);

// One stats file. Fails if it is unreadable, not a stats file, or of another
// layout version (the message says which).
Result<PagedProcess> ReadPagedProcess(const std::string& path);

// Leftovers of processes that are gone, for `pagerctl gc`.
struct Leftover {
  std::string path;
  pid_t pid = 0;
  std::string why;  // "process 123 is gone", ...
};

// Stale stats files in `dir`. A file being created (header not yet written)
// by a live process is never listed.
Result<std::vector<Leftover>> FindStaleStatsFiles(const std::string& dir);

// Swap files left behind: see pager/swap_files.h.

// Removes a stale stats file, re-checking under its lock that it is still
// stale and still the same file. Returns false, with no error, if it came
// back to life.
Result<bool> RemoveStaleStatsFile(const std::string& path);

}  // namespace pager

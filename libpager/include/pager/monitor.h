// Watching paged processes from outside: every pager publishes its stats in
// a shared-memory file (Config::publish_stats, Config::stats_dir), and these
// functions read them without asking the pager anything, so they work while
// a pager is stuck waiting for its server. pagerctl is built on them.
//
//   auto procs = pager::ListPagedProcesses(pager::DefaultStatsDir());
//   for (const auto& p : *procs) printf("%d %s\n", p.pid, p.command.c_str());
//
// Files live in a directory per user, <dir>/libpager-<uid>/ (mode 0700). A
// reader sees its own user's pagers; root sees every user's. Nothing in a
// file is trusted: a file is skipped unless it is a regular file of its
// directory's user, of this layout, naming a process that runs as that user
// (see docs/security.md), and its strings come back escaped for display.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pager/export.h"
#include "pager/pager.h"
#include "pager/status.h"

namespace pager {

// A pager seen through its stats file.
struct PagedProcess {
  std::string path;           // the stats file
  pid_t pid = 0;
  uid_t uid = 0;              // the user it runs as (its directory's)
  uint32_t index = 0;         // the pager's number in its process (0 for the first)
  uint64_t start_time = 0;    // of the process, clock ticks after boot
  uint64_t created_unix_ms = 0;
  // The three strings are escaped for display (EscapeForDisplay): safe to
  // print as they are.
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
PAGER_EXPORT std::string DefaultStatsDir();

// This user's directory under `dir` (<dir>/libpager-<euid>), created if
// missing: where this user's pagers publish. Fails, saying why, if it is
// not a directory, belongs to another user or is writable by group or
// others; a pager then runs without publishing.
PAGER_EXPORT Result<std::string> UserStatsDir(const std::string& dir);

// Every stats file under `dir` (this user's directory; for root, every
// user's), sorted by pid and index, stale ones included (see
// PagedProcess::stale). Files that cannot be trusted or read (not a regular
// file, owned by someone other than the process they name, an incompatible
// layout version, cut short) are skipped; `skipped`, if given, gets a line
// per file or directory saying why.
PAGER_EXPORT Result<std::vector<PagedProcess>> ListPagedProcesses(const std::string& dir,
                                                     std::vector<std::string>* skipped = nullptr);

// One stats file, <dir>/libpager-<uid>/libpager.<pid>.<n>. Fails if it is
// unreadable, not a stats file, untrusted or of another layout version (the
// message says which).
PAGER_EXPORT Result<PagedProcess> ReadPagedProcess(const std::string& path);

// `text` with everything that is not a printable character written as
// \xNN (each byte): control characters, escape sequences' introducers,
// bidirectional controls, invalid UTF-8; and a backslash as \\. What is
// left can be printed to a terminal without acting on it.
PAGER_EXPORT std::string EscapeForDisplay(std::string_view text);

// Leftovers of processes that are gone, for `pagerctl gc`.
struct Leftover {
  std::string path;
  pid_t pid = 0;
  std::string why;  // "process 123 is gone", ...
};

// Stale stats files under `dir` (this user's; for root, every user's). A
// file being created (header not yet written) by a live process is never
// listed, nor is anything that is not a regular file of its directory's user.
PAGER_EXPORT Result<std::vector<Leftover>> FindStaleStatsFiles(const std::string& dir);

// Swap files left behind: see pager/swap_files.h.

// Removes a stale stats file, re-checking under its lock that it is still
// stale and still the same file. Returns false, with no error, if it came
// back to life.
PAGER_EXPORT Result<bool> RemoveStaleStatsFile(const std::string& path);

}  // namespace pager

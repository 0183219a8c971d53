// Swap files left behind, seen from outside the processes that made them.
// `pagerctl gc` lists and removes them through this, and libpager-reaper
// (the preload's helper) removes a gone process's NFS swap file with it.
// docs/nfs.md, "Swap files", says how files are named and judged.
//
//   auto dir = pager::SwapDirectory::Open("nfs://filer/export/swap", 10000);
//   if (!dir.ok()) ...
//   for (const pager::SwapFile& f : *(*dir)->List())
//     if (f.owner == pager::SwapFile::Owner::kGone) (*dir)->Remove(f.name);
//
// Only names that are exactly a swap file's are ever listed or removed; a
// file's owner is judged from its name alone (host, pid, start time, PID
// namespace), and its age from its mtime.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pager/status.h"

namespace pager {

struct SwapFile {
  enum class Owner : uint8_t {
    kLive,     // the process that made it runs
    kGone,     // it does not: the file is a leftover
    kUnknown,  // this host cannot tell (another host's, another PID namespace's)
  };

  std::string name;  // libpager-<host>-<pid>-<start>-<pidns>-<random>.swap
  std::string host;  // from the name
  pid_t pid = 0;     // from the name
  uint64_t size_bytes = 0;
  // Seconds since the file was last written, or touched by its store (a
  // live NFS store sets its file's mtime every minute); -1 if unknown.
  int64_t idle_seconds = -1;
  Owner owner = Owner::kUnknown;
  std::string why;  // how `owner` was decided: "process 123 is gone", ...
};

// The locations a swap location names: several NFS servers are
// comma-separated ("nfs://a/export,nfs://b/export"), each holding its own
// swap file of the same name; any other location is a list of one.
std::vector<std::string> SplitSwapLocation(const std::string& location);

// The swap files of one swap location.
class SwapDirectory {
 public:
  // `location` as in Config::swap: a directory, file:///dir, or
  // nfs://host[:port]/export/dir[?...]. `timeout_ms` bounds connecting to a
  // server. Fails naming the location if it cannot be read.
  static Result<std::unique_ptr<SwapDirectory>> Open(const std::string& location, uint32_t timeout_ms);

  virtual ~SwapDirectory() = default;

  // Every regular file whose name is a swap file's, sorted by name, each
  // with its owner judged now.
  virtual Result<std::vector<SwapFile>> List() = 0;

  // Removes the file `name` from the directory (never what a symlink points
  // to). Refuses a name that is not a swap file's. True if it was removed,
  // false if it was already gone.
  virtual Result<bool> Remove(const std::string& name) = 0;

  // Where `name` is, for messages: "/var/tmp/NAME", "nfs://host/export/NAME".
  virtual std::string PathOf(const std::string& name) const = 0;
};

}  // namespace pager

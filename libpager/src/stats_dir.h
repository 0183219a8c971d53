// Where pagers publish their stats: a directory per user under the stats
// base (Config::stats_dir, /dev/shm by default),
//
//   <base>/libpager-<uid>/libpager.<pid>.<n>
//
// The base is world-writable: any local user can create any name in it, a
// FIFO that hangs whoever opens it, a file that claims to be another user's
// pager, a link to somewhere else. A directory per user, mode 0700, is
// writable only by its user (and root), so nobody else can forge, replace,
// truncate or squat the files in it. What the directory must be before
// anyone uses it: a real directory (not a link), owned by the uid in its
// name, not writable by group or others. One that is not (someone else made
// it first) is refused, never repaired: its pager runs without publishing
// and says so, and readers skip it.
//
// Thread-safety: a StatsDir is immutable after Open.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "pager/status.h"
#include "unique_fd.h"

namespace pager {

class StatsDir {
 public:
  // This process's directory (its effective uid's) under `base`, created
  // mode 0700 if missing, then checked as any other.
  static Result<StatsDir> OpenOwn(const std::string& base);
  // `uid`'s existing directory under `base`, checked.
  static Result<StatsDir> Open(const std::string& base, uid_t uid);
  // The users whose directories a reader of `base` looks in: every
  // libpager-<uid> there for root, else its own if it exists. Not checked.
  static Result<std::vector<uid_t>> Users(const std::string& base);

  int fd() const { return fd_.get(); }
  uid_t uid() const { return uid_; }
  const std::string& path() const { return path_; }

  // Names of the stats files in it (libpager.<pid>.<n>), sorted.
  std::vector<std::string> Names() const;
  // Opens `name` read-only, if it is a regular file owned by uid(). It is
  // looked at before it is opened, and opened O_NOFOLLOW|O_NONBLOCK, so a
  // link is never followed and a FIFO or device never opened.
  Result<UniqueFd> OpenFile(const std::string& name) const;

 private:
  StatsDir(UniqueFd fd, uid_t uid, std::string path) : fd_(std::move(fd)), uid_(uid), path_(std::move(path)) {}

  UniqueFd fd_;
  uid_t uid_;
  std::string path_;
};

// "libpager-<uid>", the directory's name.
std::string UserDirName(uid_t uid);
// The uid in a directory name, if it is "libpager-<uid>" exactly.
bool ParseUserDirName(const std::string& name, uid_t* uid);
// "libpager.<pid>.<n>", a stats file's name.
std::string StatsFileName(pid_t pid, uint32_t index);
// The pid in a stats file's name, or 0 if `name` is not one.
pid_t PidOfStatsName(const std::string& name);

}  // namespace pager

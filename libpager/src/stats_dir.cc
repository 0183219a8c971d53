#include "stats_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

namespace pager {
namespace {

// "<digits>" exactly, with no sign, no leading zero and no overflow, so a
// number has one spelling and one file name.
bool ParseNumber(const std::string& s, uint64_t max, uint64_t* out) {
  if (s.empty() || s.size() > 10 || (s[0] == '0' && s.size() > 1)) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

}  // namespace

std::string UserDirName(uid_t uid) { return "libpager-" + std::to_string(uid); }

bool ParseUserDirName(const std::string& name, uid_t* uid) {
  const std::string prefix = "libpager-";
  uint64_t v = 0;
  if (name.compare(0, prefix.size(), prefix) != 0 || !ParseNumber(name.substr(prefix.size()), 0xfffffffeu, &v)) {
    return false;
  }
  *uid = static_cast<uid_t>(v);
  return true;
}

std::string StatsFileName(pid_t pid, uint32_t index) {
  return "libpager." + std::to_string(pid) + "." + std::to_string(index);
}

pid_t PidOfStatsName(const std::string& name) {
  const std::string prefix = "libpager.";
  if (name.compare(0, prefix.size(), prefix) != 0) return 0;
  size_t dot = name.find('.', prefix.size());
  uint64_t pid = 0, index = 0;
  if (dot == std::string::npos || !ParseNumber(name.substr(prefix.size(), dot - prefix.size()), 0x7fffffff, &pid) ||
      !ParseNumber(name.substr(dot + 1), 0xffffffffu, &index) || pid == 0) {
    return 0;
  }
  return static_cast<pid_t>(pid);
}

Result<StatsDir> StatsDir::OpenOwn(const std::string& base) {
  const uid_t me = geteuid();
  const std::string path = base + "/" + UserDirName(me);
  // 0700: the files are the user's business; root reads them anyway.
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno("stats directory " + path, errno);
  return Open(base, me);
}

Result<StatsDir> StatsDir::Open(const std::string& base, uid_t uid) {
  const std::string path = base + "/" + UserDirName(uid);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ELOOP || errno == ENOTDIR) {
      return Status::Error("stats directory " + path + " is not a directory (a link?): not used; remove it");
    }
    return Status::FromErrno("stats directory " + path, errno);
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return Status::FromErrno("stats directory " + path, errno);
  if (st.st_uid != uid) {
    return Status::Error("stats directory " + path + " belongs to uid " + std::to_string(st.st_uid) +
                         ", not uid " + std::to_string(uid) + ": not used (someone else made it; remove it)");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return Status::Error("stats directory " + path + " is writable by group or others (mode " + mode +
                         "): not used (chmod 700 it)");
  }
  return StatsDir(std::move(fd), uid, path);
}

Result<std::vector<uid_t>> StatsDir::Users(const std::string& base) {
  std::vector<uid_t> users;
  const uid_t me = geteuid();
  if (me != 0) {
    struct stat st;
    if (stat(base.c_str(), &st) != 0) return Status::FromErrno("stats directory " + base, errno);
    if (lstat((base + "/" + UserDirName(me)).c_str(), &st) == 0) users.push_back(me);
    return users;
  }
  DIR* d = opendir(base.c_str());
  if (d == nullptr) return Status::FromErrno("stats directory " + base, errno);
  while (dirent* e = readdir(d)) {
    uid_t uid;
    if (ParseUserDirName(e->d_name, &uid)) users.push_back(uid);
  }
  closedir(d);
  std::sort(users.begin(), users.end());
  return users;
}

std::vector<std::string> StatsDir::Names() const {
  std::vector<std::string> names;
  // fdopendir takes the fd it is given: a fresh one on the same directory.
  int fd = openat(fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* d = fd >= 0 ? fdopendir(fd) : nullptr;
  if (d == nullptr) {
    if (fd >= 0) close(fd);
    return names;
  }
  while (dirent* e = readdir(d)) {
    if (PidOfStatsName(e->d_name) != 0) names.emplace_back(e->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

Result<UniqueFd> StatsDir::OpenFile(const std::string& name) const {
  const std::string path = path_ + "/" + name;
  auto check = [&](const struct stat& st) -> Status {
    if (!S_ISREG(st.st_mode)) return Status::Error(path + ": not a regular file");
    if (st.st_uid != uid_) {
      return Status::Error(path + ": owned by uid " + std::to_string(st.st_uid) + ", not by its directory's uid " +
                           std::to_string(uid_));
    }
    return Status();
  };
  struct stat before, after;
  if (fstatat(fd_.get(), name.c_str(), &before, AT_SYMLINK_NOFOLLOW) != 0) return Status::FromErrno(path, errno);
  if (Status s = check(before); !s.ok()) return s;
  UniqueFd fd(openat(fd_.get(), name.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(path, errno);
  if (fstat(fd.get(), &after) != 0) return Status::FromErrno(path, errno);
  if (after.st_dev != before.st_dev || after.st_ino != before.st_ino) {
    return Status::Error(path + ": replaced while opened");
  }
  if (Status s = check(after); !s.ok()) return s;
  return fd;
}

}  // namespace pager

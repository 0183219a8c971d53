// pager/swap_files.h: the swap files of a location, for gc and the reaper.
// A local directory is read here; an NFS one in store/nfs_swap_directory.cc.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "pager/swap_files.h"
#include "store/nfs_swap_directory.h"
#include "swap_file.h"
#include "unique_fd.h"

namespace pager {
namespace {

class LocalSwapDirectory final : public SwapDirectory {
 public:
  LocalSwapDirectory(std::string dir, UniqueFd fd) : dir_(std::move(dir)), fd_(std::move(fd)) {}

  Result<std::vector<SwapFile>> List() override {
    // A DIR of its own (fdopendir takes its fd), so List can run again.
    int dup = fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0);
    DIR* d = dup < 0 ? nullptr : fdopendir(dup);
    if (d == nullptr) {
      if (dup >= 0) close(dup);
      return Status::FromErrno("swap directory '" + dir_ + "'", errno);
    }
    rewinddir(d);
    std::vector<SwapFile> out;
    while (dirent* e = readdir(d)) {
      struct stat st;
      SwapFile f;
      if (fstatat(fd_.get(), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
      if (DescribeSwapFile(e->d_name, static_cast<uint64_t>(st.st_size), st.st_mtim.tv_sec, &f)) {
        out.push_back(std::move(f));
      }
    }
    closedir(d);
    std::sort(out.begin(), out.end(), [](const SwapFile& a, const SwapFile& b) { return a.name < b.name; });
    return out;
  }

  Result<bool> Remove(const std::string& name) override {
    SwapFileName parsed;
    if (!ParseSwapFileName(name, &parsed)) return Status::Error(PathOf(name) + ": not a swap file's name");
    // unlinkat removes the entry itself, a symlink included, never its target.
    if (unlinkat(fd_.get(), name.c_str(), 0) == 0) return true;
    if (errno == ENOENT) return false;
    return Status::FromErrno("unlink " + PathOf(name), errno);
  }

  std::string PathOf(const std::string& name) const override { return dir_ + "/" + name; }

 private:
  const std::string dir_;
  UniqueFd fd_;  // the directory, opened once: a renamed path changes nothing
};

}  // namespace

Result<std::unique_ptr<SwapDirectory>> SwapDirectory::Open(const std::string& location, uint32_t timeout_ms) {
  if (location.rfind("nfs://", 0) == 0) return nfs::OpenNfsSwapDirectory(location, timeout_ms);
  std::string dir = location.rfind("file://", 0) == 0 ? location.substr(7) : location;
  if (dir.empty() || dir[0] != '/') {
    return Status::Error("swap location '" + location + "': expected an absolute directory, file:///dir or nfs://...");
  }
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno("swap directory '" + dir + "'", errno);
  return std::unique_ptr<SwapDirectory>(std::make_unique<LocalSwapDirectory>(dir, std::move(fd)));
}

}  // namespace pager

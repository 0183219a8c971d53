#include "store/nfs_swap_directory.h"

#include <algorithm>
#include <cerrno>

#include "store/nfs_conn.h"
#include "store/nfs_url.h"
#include "swap_file.h"

namespace pager::nfs {
namespace {

class NfsSwapDirectory final : public SwapDirectory {
 public:
  explicit NfsSwapDirectory(UrlOptions url) : url_(std::move(url)) {}
  ~NfsSwapDirectory() override {
    if (nfs_ != nullptr) nfs_destroy_context(nfs_);
  }

  Status Mount(uint32_t timeout_ms) {
    // A v4 client of its own: never the name of a store's client.
    Result<SwapFileName> me = NewSwapFileName();
    if (!me.ok()) return me.status();
    int err = 0;
    return nfs::Mount(&nfs_, url_, me->Stem() + "-dir", Clock::now() + Ms(timeout_ms), timeout_ms, &mount_, &err);
  }

  Result<std::vector<SwapFile>> List() override {
    nfsdir* dir = nullptr;
    if (int rc = nfs_opendir(nfs_, "/", &dir); rc != 0) {
      return Status::Error("nfs: cannot list " + url_.path + " on " + url_.Where() + ": " + NfsErr(nfs_) + " (" +
                           ErrStr(-rc) + ")");
    }
    std::vector<SwapFile> out;
    while (nfsdirent* e = nfs_readdir(nfs_, dir)) {
      SwapFile f;
      // NF3REG and NF4REG are both 1: a regular file, never a symlink.
      if (e->type == NF3REG && DescribeSwapFile(e->name, e->size, e->mtime.tv_sec, &f)) out.push_back(std::move(f));
    }
    nfs_closedir(nfs_, dir);
    std::sort(out.begin(), out.end(), [](const SwapFile& a, const SwapFile& b) { return a.name < b.name; });
    return out;
  }

  Result<bool> Remove(const std::string& name) override {
    SwapFileName parsed;
    if (!ParseSwapFileName(name, &parsed)) return Status::Error(PathOf(name) + ": not a swap file's name");
    // REMOVE takes the directory entry itself: a symlink is never followed.
    int rc = nfs_unlink(nfs_, ("/" + name).c_str());
    if (rc == 0) return true;
    if (rc == -ENOENT) return false;
    return Status::Error("nfs: cannot remove " + PathOf(name) + ": " + NfsErr(nfs_));
  }

  std::string PathOf(const std::string& name) const override {
    return "nfs://" + url_.host + url_.path + (url_.path.back() == '/' ? "" : "/") + name;
  }

 private:
  const UrlOptions url_;
  SetupResult mount_;  // outlives the context: see nfs::Mount
  nfs_context* nfs_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<SwapDirectory>> OpenNfsSwapDirectory(const std::string& url, uint32_t timeout_ms) {
  Result<UrlOptions> o = ParseUrl(url);
  if (!o.ok()) return o.status();
  auto dir = std::make_unique<NfsSwapDirectory>(std::move(*o));
  Status s = dir->Mount(timeout_ms == 0 ? 10000 : timeout_ms);
  if (!s.ok()) return s;
  return std::unique_ptr<SwapDirectory>(std::move(dir));
}

}  // namespace pager::nfs

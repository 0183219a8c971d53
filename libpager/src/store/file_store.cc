// Swap file on a local path. Two worker threads (one per core here) run
// blocking pread/pwrite; reads are taken before queued writes so a fault
// never waits behind write-back.
//
// The file is unlinked as soon as it is created and served through its fd:
// nothing is left behind, whatever ends the process (exit, a crash,
// SIGKILL, an exec: the fd is close-on-exec), and no other process can
// reach the pages by name. A fork child's copy of the fd would keep the
// blocks allocated for as long as the child lives, so the child lets go of
// it at once (ReleaseInForkChild).
#include "store/file_store.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "log.h"
#include "reserve_arena.h"
#include "swap_file.h"
#include "unique_fd.h"

namespace pager {
namespace {

class FileStore : public Store {
 public:
  FileStore(std::string dir, uint64_t max_bytes) : dir_(std::move(dir)), max_bytes_(max_bytes) {}
  ~FileStore() override { Stop(); }

  Status Start(StoreListener* listener) override;
  void Submit(StoreOp* op) override;
  void Stop() override;
  // As /proc/<pid>/fd shows it.
  std::string Describe() const override { return "file " + path_ + " (deleted)"; }

 private:
  void Work();
  int Run(StoreOp* op);

  const std::string dir_;
  const uint64_t max_bytes_;
  std::string path_;
  UniqueFd fd_;
  StoreListener* listener_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<StoreOp*> reads_, writes_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

// The swap fds of this process's file stores, for the fork handler, each
// stored as fd + 1 (0: a free slot). Lock-free: a fork may come any time.
constexpr int kMaxFiles = 64;
std::atomic<int> g_swap_fds[kMaxFiles];
pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

// In a fork child: each swap fd now refers to /dev/null. The number stays
// taken, so the FileStore that owns it never closes someone else's fd.
void ReleaseInForkChild() {
  for (auto& slot : g_swap_fds) {
    const int fd = slot.exchange(0) - 1;
    if (fd < 0) continue;
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) {
      dup3(null, fd, O_CLOEXEC);
      close(null);
    }
  }
}

void RegisterSwapFd(int fd) {
  pthread_once(&g_atfork_once, [] { pthread_atfork(nullptr, nullptr, ReleaseInForkChild); });
  for (auto& slot : g_swap_fds) {
    int free_slot = 0;
    if (slot.compare_exchange_strong(free_slot, fd + 1)) return;
  }
  // More stores than slots: a fork child of this one keeps its blocks.
}

void UnregisterSwapFd(int fd) {
  for (auto& slot : g_swap_fds) {
    int mine = fd + 1;
    if (slot.compare_exchange_strong(mine, 0)) return;
  }
}

Status FileStore::Start(StoreListener* listener) {
  listener_ = listener;
  Result<SwapFileName> name = NewSwapFileName();
  if (!name.ok()) return name.status();
  path_ = dir_ + "/" + name->ToString();
  // O_EXCL with O_CREAT never follows a symlink at the name; O_NOFOLLOW
  // says so too. The name is random: nobody can have squatted it.
  fd_ = UniqueFd(open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd_.valid()) {
    return Status::FromErrno("swap directory '" + dir_ + "': cannot create swap file " + path_, errno);
  }
  if (unlink(path_.c_str()) != 0) {
    Status s = Status::FromErrno("swap directory '" + dir_ + "': cannot unlink new swap file " + path_, errno);
    fd_.reset();
    return s;
  }
  RegisterSwapFd(fd_.get());
  for (int i = 0; i < 2; i++) workers_.emplace_back([this] { Work(); });
  return Status();
}

void FileStore::Submit(StoreOp* op) {
  {
    std::lock_guard<std::mutex> l(mu_);
    (op->kind == StoreOp::Kind::kRead ? reads_ : writes_).push_back(op);
  }
  cv_.notify_one();
}

int FileStore::Run(StoreOp* op) {
  const off_t off = static_cast<off_t>(op->slot * kPageSize);
  const size_t len = uint64_t{op->pages} * kPageSize;
  if (op->kind == StoreOp::Kind::kWrite && max_bytes_ != 0 && off + len > max_bytes_) return ENOSPC;
  size_t done = 0;
  while (done < len) {
    ssize_t n = op->kind == StoreOp::Kind::kRead ? pread(fd_.get(), op->buf + done, len - done, off + done)
                                                 : pwrite(fd_.get(), op->buf + done, len - done, off + done);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return errno;
    }
    if (n == 0) return EIO;  // past the end: a truncated swap file
    done += static_cast<size_t>(n);
  }
  return 0;
}

void FileStore::Work() {
  listener_->OnThreadStart();
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [this] { return stop_ || !reads_.empty() || !writes_.empty(); });
    if (reads_.empty() && writes_.empty()) return;  // stopping, drained
    std::deque<StoreOp*>& q = reads_.empty() ? writes_ : reads_;
    StoreOp* op = q.front();
    q.pop_front();
    l.unlock();
    op->error = Run(op);
    listener_->OnComplete(op);
    l.lock();
  }
}

void FileStore::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  if (fd_.valid()) {
    UnregisterSwapFd(fd_.get());
    fd_.reset();
  }
}

}  // namespace

Result<std::unique_ptr<Store>> OpenFileStore(const std::string& dir, uint64_t max_bytes) {
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) return Status::FromErrno("swap directory '" + dir + "'", errno);
  if (!S_ISDIR(st.st_mode)) return Status::Error("swap directory '" + dir + "': not a directory");
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return Status::FromErrno("swap directory '" + dir + "': not writable", errno);
  }
  return std::unique_ptr<Store>(std::make_unique<FileStore>(dir, max_bytes));
}

}  // namespace pager

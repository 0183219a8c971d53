// The NFS store's life: Start, the I/O thread's state machine (connected,
// reconnecting, dead, stopping; drawn in nfs_store_impl.h), Stop and the
// removal of the swap file. Ops on the wire are nfs_io.cc.
#include "store/nfs_store.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <future>
#include <string>

#include "log.h"
#include "reserve_arena.h"
#include "store/nfs_store_impl.h"
#include "swap_file.h"

namespace pager::nfs {
namespace {

constexpr Ms kBackoffMin{100};
constexpr Ms kBackoffMax{5000};
// How often a connected store sets its file's mtime: gc on another host
// takes a file untouched for much longer (at least 5 minutes, its --idle)
// for abandoned. docs/nfs.md, "Swap files".
constexpr Ms kTouchEvery{60000};
std::atomic<int64_t> g_touch_every_ms{kTouchEvery.count()};

void Log(const std::string& msg) { PAGER_LOG_WARN("nfs: %s", msg.c_str()); }

}  // namespace

void SetTouchIntervalForTesting(Ms interval) { g_touch_every_ms.store(interval.count()); }

NfsStore::NfsStore(UrlOptions url, const SwapFileName& name, const std::string& client_tag, uint64_t max_bytes,
                   uint32_t connect_timeout_ms)
    : url_(std::move(url)),
      max_bytes_(max_bytes),
      connect_timeout_(connect_timeout_ms),
      file_(name.ToString()),
      client_stem_(client_tag.empty() ? name.Stem() : name.Stem() + "-" + client_tag) {
  conns_.resize(url_.conns);
}

NfsStore::~NfsStore() {
  if (thread_.joinable()) Stop();
  for (Conn& c : conns_) Drop(c);
  if (wake_fd_ >= 0) close(wake_fd_);
}

std::string NfsStore::Describe() const {
  return "nfs " + url_.host + ":" + (url_.port.empty() ? "2049" : url_.port) + url_.path + "/" + file_ + " (v" +
         std::to_string(url_.version) + ", " + std::to_string(url_.conns) + " conn" + (url_.conns > 1 ? "s" : "") +
         (url_.file_sync ? ", FILE_SYNC" : "") + ")";
}

// ---- connecting ------------------------------------------------------------

Status NfsStore::ConnectAll(Clock::time_point deadline, bool create, int* err) {
  ++generation_;
  for (size_t i = 0; i < conns_.size(); i++) {
    ConnectSpec spec{&url_,
                     FilePath(),
                     client_stem_ + "-" + std::to_string(i) + "-" + std::to_string(generation_),
                     create && i == 0,
                     connect_timeout_,
                     deadline};
    XferMax max{readmax_, writemax_};
    Status s = Connect(conns_[i], spec, err, &max);
    if (!s.ok()) {
      TeardownAll();
      return s;
    }
    readmax_ = max.read;
    writemax_ = max.write;
  }
  next_touch_ = Clock::now() + touch_every_;
  return Status();
}

// Start: connect within the timeout, retrying only what may be transient
// (refused, no answer): a missing export or a denied one fails at once.
// Runs on the I/O thread, like every use of libnfs.
Status NfsStore::FirstConnect() {
  const auto deadline = Clock::now() + Ms(connect_timeout_);
  Ms backoff = kBackoffMin;
  for (;;) {
    int err = 0;
    Status s = ConnectAll(deadline, true, &err);
    if (s.ok()) return s;
    bool transient = err == ECONNREFUSED || err == ETIMEDOUT || err == EIO || err == ECONNRESET ||
                     err == EAGAIN || err == EFAULT || err == EHOSTUNREACH || err == ENETUNREACH;
    if (!transient || Clock::now() + backoff >= deadline) {
      // ENODEV / ENOENT: export / directory missing; EACCES: denied; EROFS.
      return Status::Error(s.message() +
                           (transient ? " (gave up after " + std::to_string(connect_timeout_) + " ms)" : ""));
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, Ms(1000));
  }
}

Status NfsStore::Start(StoreListener* listener) {
  listener_ = listener;
  touch_every_ = Ms(g_touch_every_ms.load());
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return Status::FromErrno("nfs: eventfd", errno);
  std::promise<Status> started;
  std::future<Status> result = started.get_future();
  thread_ = std::thread([this, &started] {
    listener_->OnThreadStart();  // libnfs's mallocs come from the reserve
    // libnfs writes to sockets without MSG_NOSIGNAL: a server that died
    // would raise SIGPIPE and kill the process. Blocked here, the signal
    // stays pending on this thread and the write fails with EPIPE.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    Status s = FirstConnect();
    const bool ok = s.ok();
    started.set_value(std::move(s));
    if (ok) Loop();
  });
  Status s = result.get();
  if (!s.ok()) thread_.join();
  return s;
}

// ---- the state machine --------------------------------------------------------

NfsStore::StopState NfsStore::GetStopState() {
  std::lock_guard<std::mutex> l(mu_);
  return StopState{stopping_, incoming_.empty(), stop_deadline_};
}

void NfsStore::Loop() {
  for (bool go_on = true; go_on;) {
    switch (state_) {
      case State::kConnected:
      case State::kStopping:
        go_on = Serve();
        break;
      case State::kReconnecting:
        go_on = Reconnect();
        break;
      case State::kDead:
        go_on = ServeDead();
        break;
    }
  }
  TeardownAll();
}

// kConnected and kStopping: one turn of the event loop.
bool NfsStore::Serve() {
  TakeIncoming();
  Dispatch();
  if (broken_) {
    state_ = State::kReconnecting;
    return true;
  }
  const StopState stop = GetStopState();
  if (stop.requested && stop.drained) state_ = State::kStopping;
  if (state_ == State::kStopping) {
    if (Idle()) {
      RemoveFile();
      return false;
    }
    if (Clock::now() >= stop.deadline) {
      Log("Stop: " + Where() + " did not finish the I/O in flight in time; failing it with EIO");
      FailAll(EIO);
      return false;
    }
  }
  if (state_ == State::kConnected && Clock::now() >= next_touch_) {
    next_touch_ = Clock::now() + touch_every_;
    IssueTouch(conns_[0]);
  }
  pollfd fds[1 + kMaxConns];
  fds[0] = {wake_fd_, POLLIN, 0};
  for (size_t i = 0; i < conns_.size(); i++) {
    fds[i + 1] = {nfs_get_fd(conns_[i].nfs), static_cast<short>(nfs_which_events(conns_[i].nfs)), 0};
  }
  int n = poll(fds, 1 + conns_.size(), kPollMs);
  if (n < 0 && errno != EINTR) {
    Log(std::string("poll: ") + ErrStr(errno));
    return true;
  }
  if (fds[0].revents & POLLIN) {
    uint64_t v;
    (void)!read(wake_fd_, &v, sizeof(v));
  }
  const bool tick = Clock::now() - last_service_ >= Ms(kPollMs);
  if (tick) last_service_ = Clock::now();
  for (size_t i = 0; i < conns_.size() && !broken_; i++) {
    // revents 0 still runs libnfs's timeout scan; needed for kIoTimeoutMs.
    if (fds[i + 1].revents == 0 && !tick) continue;
    if (nfs_service(conns_[i].nfs, fds[i + 1].revents) < 0) {
      MarkBroken("connection error: " + NfsErr(conns_[i].nfs));
    }
  }
  return true;
}

// kReconnecting: rebuilds every connection, with back-off, until it works,
// the swap file is found gone (kDead), or Stop's deadline passes (false:
// everything left fails with EIO).
bool NfsStore::Reconnect() {
  Log("connection to " + Where() + " lost (" + broken_why_ + "); reconnecting");
  listener_->OnBackendState(BackendState::kReconnecting, broken_why_);
  TeardownAll();
  broken_ = false;
  Ms backoff = kBackoffMin;
  for (int attempt = 1;; attempt++) {
    const StopState stop = GetStopState();
    Clock::time_point deadline = Clock::now() + Ms(connect_timeout_);
    if (stop.requested) deadline = std::min(deadline, stop.deadline);
    int err = 0;
    Status s = ConnectAll(deadline, false, &err);
    if (s.ok()) {
      Log("reconnected to " + Where() + " after " + std::to_string(attempt) + " attempt(s)");
      listener_->OnBackendState(BackendState::kOk, "reconnected");
      state_ = stop.requested ? State::kStopping : State::kConnected;
      return true;
    }
    if (err == ENOENT) {
      // The server is back but our file is not: its pages are lost, so no
      // retry can succeed.
      Log(s.message() + ": swap file lost, failing all I/O");
      state_ = State::kDead;
      FailAll(EIO);
      listener_->OnBackendState(BackendState::kPaused, "swap file lost: " + s.message());
      return true;
    }
    if (attempt == 1 || attempt % 10 == 0) Log("reconnect attempt " + std::to_string(attempt) + ": " + s.message());
    const auto wake_at = Clock::now() + backoff;
    while (Clock::now() < wake_at) {
      const StopState now = GetStopState();
      if (now.requested && Clock::now() >= now.deadline) {
        Log("Stop: " + Where() + " unreachable; giving up on the I/O in flight (EIO)");
        TakeIncoming();
        FailAll(EIO);
        return false;
      }
      std::this_thread::sleep_for(Ms(20));
    }
    backoff = std::min(backoff * 2, kBackoffMax);
  }
}

// kDead: no connection; every op fails as it arrives (TakeIncoming) until
// Stop.
bool NfsStore::ServeDead() {
  TakeIncoming();
  const StopState stop = GetStopState();
  if (stop.requested && stop.drained) return false;
  pollfd wake{wake_fd_, POLLIN, 0};
  if (poll(&wake, 1, kPollMs) > 0) {
    uint64_t v;
    (void)!read(wake_fd_, &v, sizeof(v));
  }
  return true;
}

// Removes the swap file, bounded by the stop deadline.
void NfsStore::RemoveFile() {
  Conn& c = conns_[0];
  Clock::time_point deadline;
  {
    std::lock_guard<std::mutex> l(mu_);
    deadline = std::max(stop_deadline_, Clock::now() + Ms(1000));
  }
  SetupResult close_r, unlink_r;
  if (nfs_close_async(c.nfs, c.fh, SetupCb, &close_r) == 0) {
    c.fh = nullptr;
    RunUntil(c.nfs, &close_r.done, deadline);
  }
  if (nfs_unlink_async(c.nfs, FilePath().c_str(), SetupCb, &unlink_r) != 0 ||
      RunUntil(c.nfs, &unlink_r.done, deadline) != 0 || unlink_r.err < 0) {
    Log("could not remove swap file " + url_.path + FilePath() + " on " + Where() + ": " +
        (unlink_r.done ? unlink_r.msg : "no answer"));
  }
  // Now, while the results above are alive for any callback still pending.
  Drop(c);
}

void NfsStore::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    stopping_ = true;
    // A server that is gone gets this long to come back before we give up.
    stop_deadline_ = Clock::now() + Ms(std::max<uint32_t>(connect_timeout_, 1000));
  }
  uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

}  // namespace pager::nfs

namespace pager {

Result<std::unique_ptr<Store>> nfs::OpenNfsStore(const std::string& url, const SwapFileName& name,
                                                 const std::string& client_tag, uint64_t max_bytes,
                                                 uint32_t connect_timeout_ms) {
  Result<UrlOptions> o = ParseUrl(url);
  if (!o.ok()) return o.status();
  if (connect_timeout_ms == 0) connect_timeout_ms = 10000;
  return std::unique_ptr<Store>(std::make_unique<NfsStore>(std::move(*o), name, client_tag, max_bytes,
                                                           connect_timeout_ms));
}

Result<std::unique_ptr<Store>> OpenNfsStore(const std::string& url, uint64_t max_bytes,
                                            uint32_t connect_timeout_ms) {
  // A fresh random name: never an earlier process's file (same pid after an
  // exec, a restarted container), never one squatted in advance.
  Result<SwapFileName> name = NewSwapFileName();
  if (!name.ok()) return name.status();
  return nfs::OpenNfsStore(url, *name, "", max_bytes, connect_timeout_ms);
}

}  // namespace pager

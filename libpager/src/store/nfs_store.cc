// The NFS store: one I/O thread owns every libnfs context and runs their
// event loop; Submit() from any thread only queues and wakes it. The URL is
// parsed in nfs_url.cc; one connection's setup and teardown are nfs_conn.cc.
//
// Invariants and why:
//  - A libnfs context is not thread-safe, so only the I/O thread touches one.
//  - Reads are dispatched before queued writes, and each connection has a
//    cap on write bytes in flight, so a swap-in waits behind at most that
//    much write-back on the socket, never behind the whole queue.
//  - A write completes only once stable. NFSv3: WRITE UNSTABLE, then COMMIT;
//    a write is done when the COMMIT's verifier equals the one its WRITE
//    returned. A different verifier means the server rebooted in between and
//    lost the unstable data: the write is sent again (RFC 1813, 3.3.21). The
//    high-level libnfs API hides the verifier, so v3 I/O uses the raw RPCs.
//    NFSv4 goes through the high-level API (libnfs 4.0 exposes no raw v4
//    I/O), which hides the verifier: there a write counts as stable only if
//    its WRITE and the COMMIT after it were answered on the same connection.
//    A server reboot always breaks the connection, and any broken
//    connection makes the store tear all of them down and resend every
//    write not yet committed.
//  - Transient failures (a dropped or timed-out connection, a server
//    restarting) are never reported: every op in flight goes back to the
//    front of its queue, all connections are rebuilt with back-off, and the
//    swap file is reopened by name. Only errors retrying cannot fix (ENOSPC,
//    EDQUOT, EROFS, EACCES, EPERM, EFBIG, a read past the end of the file)
//    complete an op with an error.
#include "store/nfs_store.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "log.h"
#include "reserve_arena.h"
#include "store/nfs_conn.h"
#include "store/nfs_url.h"

namespace pager::nfs {
namespace {

constexpr int kMaxInflightPerConn = 32;               // Ganesha is CPU bound past QD 8
constexpr uint64_t kMaxWriteBytesPerConn = 4u << 20;  // bounds a read's wait on the socket
constexpr uint64_t kCommitEveryBytes = 4u << 20;      // COMMIT at least this often under load
constexpr Ms kBackoffMin{100};
constexpr Ms kBackoffMax{5000};

std::atomic<uint32_t> g_store_seq{0};

void Log(const std::string& msg) { PAGER_LOG_WARN("nfs: %s", msg.c_str()); }

}  // namespace

class NfsStore final : public Store {
 public:
  NfsStore(UrlOptions url, uint64_t max_bytes, uint32_t connect_timeout_ms)
      : url_(std::move(url)), max_bytes_(max_bytes), connect_timeout_(connect_timeout_ms) {
    char host[256] = "unknown";
    gethostname(host, sizeof(host) - 1);
    host_ = host;
    seq_ = g_store_seq.fetch_add(1);
    file_ = "libpager-" + host_ + "-" + std::to_string(getpid()) + "-" + std::to_string(seq_) + ".swap";
    conns_.resize(url_.conns);
  }

  ~NfsStore() override {
    if (thread_.joinable()) Stop();
    for (Conn& c : conns_) Drop(c);
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  Status Start(StoreListener* listener) override;
  void Submit(StoreOp* op) override;
  void Stop() override;
  uint32_t max_pages_per_op() const override { return kMaxXfer / kPageSize; }
  // One copy of every payload in flight, in jemalloc's size classes (a 1 MiB
  // + header buffer takes a 1.25 MiB class), and each connection's own
  // context and socket buffers.
  uint64_t buffer_bytes(uint64_t in_flight_bytes) const override {
    return in_flight_bytes / 4 * 5 + static_cast<uint64_t>(url_.conns) * (512u << 10);
  }
  std::string Describe() const override {
    return "nfs " + url_.host + ":" + (url_.port.empty() ? "2049" : url_.port) + url_.path + "/" + file_ +
           " (v" + std::to_string(url_.version) + ", " + std::to_string(url_.conns) + " conn" +
           (url_.conns > 1 ? "s" : "") + (url_.file_sync ? ", FILE_SYNC" : "") + ")";
  }

  // Callbacks, on the I/O thread inside nfs_service() or nfs_destroy_context().
  void OnRead3(Call* call, int rpc_status, READ3res* res);
  void OnWrite3(Call* call, int rpc_status, WRITE3res* res);
  // Unlinks and frees a READ/WRITE call; its chunk if the reply is to be
  // used, or nullptr once the chunk is requeued (transient failure: the
  // connection is marked broken) or finished (permanent error).
  template <class Res>
  Chunk* TakeReply(Call* call, int rpc_status, const Res* res, const char* op);
  void OnCommit3(Call* call, int rpc_status, COMMIT3res* res);
  // v4 replies (libnfs's high-level calls): err < 0 is -errno. Returns the
  // call's chunk to go on with, or nullptr when the failure was dealt with.
  Chunk* TakeReply4(Call* call, int err, const char* op);
  void OnRead4(Call* call, int err, const void* data);
  void OnWrite4(Call* call, int err);
  void OnCommit4(Call* call, int err);

 private:
  std::string Where() const { return url_.Where(); }
  std::string FilePath() const { return "/" + file_; }

  // Connection management (I/O thread, or Start before it exists).
  Status ConnectAll(Clock::time_point deadline, bool create, int* err);
  Status FirstConnect();
  // Drops a connection; whatever it had in flight goes back to the queues.
  void Drop(Conn& c);
  void TeardownAll();
  bool Reconnect(const std::string& why);

  void Loop();
  void TakeIncoming();
  void Dispatch();
  bool Issue(Conn& c, Chunk* ch);
  void IssueCommit(Conn& c);
  void Unlink(Call* call);
  void Requeue(Chunk* ch);
  void FinishChunk(Chunk* ch, int err);
  void FailAll(int err);
  bool Idle() const;
  void RemoveFile();

  const UrlOptions url_;
  const uint64_t max_bytes_;
  const uint32_t connect_timeout_;
  std::string host_, file_;
  uint32_t seq_ = 0;
  uint32_t generation_ = 0;        // bumped on every (re)connect, names v4 clients
  uint64_t readmax_ = kMaxXfer, writemax_ = kMaxXfer;
  StoreListener* listener_ = nullptr;
  std::thread thread_;
  int wake_fd_ = -1;

  // Shared with Submit/Stop.
  std::mutex mu_;
  std::vector<StoreOp*> incoming_;
  bool stopping_ = false;
  Clock::time_point stop_deadline_;

  // I/O thread only.
  std::vector<Conn> conns_;
  std::deque<Chunk*> reads_, writes_;
  bool broken_ = false;
  std::string broken_why_;
  int dead_errno_ = 0;             // the swap file is gone: every op fails with this
};

namespace {

// ---- libnfs callbacks: find the call, hand over to the store --------------

void Read3Cb(rpc_context*, int status, void* data, void* priv) {
  auto* call = static_cast<Call*>(priv);
  call->store->OnRead3(call, status, static_cast<READ3res*>(data));
}
void Write3Cb(rpc_context*, int status, void* data, void* priv) {
  auto* call = static_cast<Call*>(priv);
  call->store->OnWrite3(call, status, static_cast<WRITE3res*>(data));
}
void Commit3Cb(rpc_context*, int status, void* data, void* priv) {
  auto* call = static_cast<Call*>(priv);
  call->store->OnCommit3(call, status, static_cast<COMMIT3res*>(data));
}
void Read4Cb(int err, nfs_context*, void* data, void* priv) {
  auto* call = static_cast<Call*>(priv);
  call->store->OnRead4(call, err, data);
}
void Write4Cb(int err, nfs_context*, void*, void* priv) {
  auto* call = static_cast<Call*>(priv);
  call->store->OnWrite4(call, err);
}
void Commit4Cb(int err, nfs_context*, void*, void* priv) {
  auto* call = static_cast<Call*>(priv);
  call->store->OnCommit4(call, err);
}

}  // namespace

// ---- connecting ------------------------------------------------------------

Status NfsStore::ConnectAll(Clock::time_point deadline, bool create, int* err) {
  ++generation_;
  for (size_t i = 0; i < conns_.size(); i++) {
    ConnectSpec spec{&url_,
                     FilePath(),
                     "libpager-" + host_ + "-" + std::to_string(getpid()) + "-" + std::to_string(seq_) + "-" +
                         std::to_string(i) + "-" + std::to_string(generation_),
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
  return Status();
}

void NfsStore::Drop(Conn& c) {
  for (Chunk* ch : Teardown(c)) Requeue(ch);
}

void NfsStore::TeardownAll() {
  for (Conn& c : conns_) Drop(c);
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

// ---- submitting --------------------------------------------------------------

void NfsStore::Submit(StoreOp* op) {
  op->error = 0;
  if (op->pages == 0) {
    listener_->OnComplete(op);
    return;
  }
  if (op->kind == StoreOp::Kind::kWrite && max_bytes_ != 0 &&
      (op->slot + op->pages) * kPageSize > max_bytes_) {
    op->error = ENOSPC;  // the configured cap, like a full disk
    listener_->OnComplete(op);
    return;
  }
  bool wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    wake = incoming_.empty();
    incoming_.push_back(op);
  }
  if (wake) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }
}

void NfsStore::TakeIncoming() {
  std::vector<StoreOp*> ops;
  {
    std::lock_guard<std::mutex> l(mu_);
    ops.swap(incoming_);
  }
  for (StoreOp* op : ops) {
    if (dead_errno_) {
      op->error = dead_errno_;
      listener_->OnComplete(op);
      continue;
    }
    const bool w = op->kind == StoreOp::Kind::kWrite;
    const uint64_t bytes = uint64_t{op->pages} * kPageSize;
    const uint64_t piece = w ? writemax_ : readmax_;
    auto* p = new Pending{op, static_cast<uint32_t>((bytes + piece - 1) / piece)};
    for (uint64_t off = 0; off < bytes; off += piece) {
      auto* ch = new Chunk{p, op->slot * kPageSize + off, static_cast<uint32_t>(std::min(piece, bytes - off)),
                           0, op->buf + off, w};
      (w ? writes_ : reads_).push_back(ch);
    }
  }
}

void NfsStore::Requeue(Chunk* ch) {
  if (ch->is_write) {
    // The server may have lost any part of it: resend it whole.
    ch->done = 0;
    ch->has_verf = false;
    writes_.push_front(ch);
  } else {
    reads_.push_front(ch);
  }
}

void NfsStore::FinishChunk(Chunk* ch, int err) {
  Pending* p = ch->owner;
  if (err && !p->error) p->error = err;
  delete ch;
  if (--p->chunks_left == 0) {
    StoreOp* op = p->op;
    op->error = p->error;
    delete p;
    listener_->OnComplete(op);
  }
}

// ---- dispatching ---------------------------------------------------------------

void NfsStore::Dispatch() {
  if (broken_) return;
  // Reads first, each to the connection with the least write-back ahead of it.
  while (!reads_.empty()) {
    Conn* best = nullptr;
    for (Conn& c : conns_) {
      if (static_cast<int>(c.calls.size()) >= kMaxInflightPerConn) continue;
      if (!best || c.write_bytes < best->write_bytes ||
          (c.write_bytes == best->write_bytes && c.calls.size() < best->calls.size()))
        best = &c;
    }
    if (!best) break;
    Chunk* ch = reads_.front();
    reads_.pop_front();
    if (!Issue(*best, ch)) return;
  }
  while (!writes_.empty()) {
    Conn* best = nullptr;
    for (Conn& c : conns_) {
      if (static_cast<int>(c.calls.size()) >= kMaxInflightPerConn || c.write_bytes >= kMaxWriteBytesPerConn)
        continue;
      if (!best || c.write_bytes < best->write_bytes) best = &c;
    }
    if (!best) break;
    Chunk* ch = writes_.front();
    writes_.pop_front();
    if (!Issue(*best, ch)) return;
  }
  for (Conn& c : conns_) {
    if (!c.committing && !c.uncommitted.empty() &&
        (c.writes == 0 || c.uncommitted_bytes >= kCommitEveryBytes))
      IssueCommit(c);
  }
}

// Sends the rest of `ch` on `c`. False (and the connection marked broken)
// when libnfs could not queue it.
bool NfsStore::Issue(Conn& c, Chunk* ch) {
  auto* call = new Call{ch->is_write ? Call::kWrite : Call::kRead, this, &c, ch};
  call->len = ch->len - ch->done;
  const uint64_t off = ch->off + ch->done;
  int rc;
  if (url_.version == 3) {
    rpc_context* rpc = nfs_get_rpc_context(c.nfs);
    nfs_fh3 fh{{static_cast<u_int>(c.fh3.size()), c.fh3.data()}};
    if (ch->is_write) {
      WRITE3args a{};
      a.file = fh;
      a.offset = off;
      a.count = call->len;
      a.stable = url_.file_sync ? FILE_SYNC : UNSTABLE;
      a.data.data_len = call->len;
      a.data.data_val = reinterpret_cast<char*>(ch->buf + ch->done);
      rc = rpc_nfs3_write_async(rpc, Write3Cb, &a, call);
    } else {
      READ3args a{};
      a.file = fh;
      a.offset = off;
      a.count = call->len;
      rc = rpc_nfs3_read_async(rpc, Read3Cb, &a, call);
    }
  } else if (ch->is_write) {
    rc = nfs_pwrite_async(c.nfs, c.fh, off, call->len, ch->buf + ch->done, Write4Cb, call);
  } else {
    rc = nfs_pread_async(c.nfs, c.fh, off, call->len, Read4Cb, call);
  }
  if (rc != 0) {
    delete call;
    Requeue(ch);
    broken_ = true;
    broken_why_ = "cannot queue a request: " + NfsErr(c.nfs);
    return false;
  }
  c.calls.insert(call);
  if (ch->is_write) {
    c.write_bytes += call->len;
    c.writes++;
  }
  return true;
}

void NfsStore::IssueCommit(Conn& c) {
  auto* call = new Call{Call::kCommit, this, &c};
  call->batch.swap(c.uncommitted);
  c.uncommitted_bytes = 0;
  int rc;
  if (url_.version == 3) {
    COMMIT3args a{};
    a.file = nfs_fh3{{static_cast<u_int>(c.fh3.size()), c.fh3.data()}};
    a.offset = 0;
    a.count = 0;  // the whole file
    rc = rpc_nfs3_commit_async(nfs_get_rpc_context(c.nfs), Commit3Cb, &a, call);
  } else {
    rc = nfs_fsync_async(c.nfs, c.fh, Commit4Cb, call);
  }
  if (rc != 0) {
    for (Chunk* ch : call->batch) Requeue(ch);
    delete call;
    broken_ = true;
    broken_why_ = "cannot queue a COMMIT: " + NfsErr(c.nfs);
    return;
  }
  c.committing = true;
  c.calls.insert(call);
}

// Unlinks a call whose answer came from its connection's bookkeeping.
void NfsStore::Unlink(Call* call) {
  Conn& c = *call->conn;
  c.calls.erase(call);
  if (call->kind == Call::kWrite) {
    c.write_bytes -= call->len;
    c.writes--;
  }
  if (call->kind == Call::kCommit) c.committing = false;
}

// ---- completions -----------------------------------------------------------------

template <class Res>
Chunk* NfsStore::TakeReply(Call* call, int rpc_status, const Res* res, const char* op) {
  Unlink(call);
  Chunk* ch = call->chunk;
  delete call;
  if (rpc_status != RPC_STATUS_SUCCESS) {
    Requeue(ch);
    broken_ = true;
    broken_why_ = std::string(op) + " failed: connection lost or timed out";
    return nullptr;
  }
  if (res->status != NFS3_OK) {
    if (IsPermanentNfs3(res->status)) {
      FinishChunk(ch, Nfs3Errno(res->status));
      return nullptr;
    }
    Requeue(ch);
    broken_ = true;
    broken_why_ = std::string(op) + ": server answered " + ErrStr(Nfs3Errno(res->status));
    return nullptr;
  }
  return ch;
}

void NfsStore::OnRead3(Call* call, int rpc_status, READ3res* res) {
  if (call->orphan) return;
  Chunk* ch = TakeReply(call, rpc_status, res, "READ");
  if (ch == nullptr) return;
  const READ3resok& ok = res->READ3res_u.resok;
  uint32_t n = std::min<uint32_t>(ok.data.data_len, ch->len - ch->done);
  std::memcpy(ch->buf + ch->done, ok.data.data_val, n);  // the buffer is libnfs's
  ch->done += n;
  if (ch->done == ch->len) return FinishChunk(ch, 0);
  // Short: past the end of the file is a truncated swap file, never zeros.
  if (ok.eof || n == 0) return FinishChunk(ch, EIO);
  reads_.push_front(ch);
}

void NfsStore::OnWrite3(Call* call, int rpc_status, WRITE3res* res) {
  if (call->orphan) return;
  Conn& c = *call->conn;
  Chunk* ch = TakeReply(call, rpc_status, res, "WRITE");
  if (ch == nullptr) return;
  const WRITE3resok& ok = res->WRITE3res_u.resok;
  if (ch->has_verf && std::memcmp(ch->verf, ok.verf, sizeof(ch->verf)) != 0) {
    Requeue(ch);  // the server restarted between two pieces of this chunk
    return;
  }
  std::memcpy(ch->verf, ok.verf, sizeof(ch->verf));
  ch->has_verf = true;
  ch->done += std::min<uint32_t>(ok.count, ch->len - ch->done);
  if (ok.count == 0) {
    Requeue(ch);
    return;
  }
  if (ch->done < ch->len) {
    writes_.push_front(ch);
    return;
  }
  if (ok.committed == FILE_SYNC) return FinishChunk(ch, 0);
  c.uncommitted.push_back(ch);
  c.uncommitted_bytes += ch->len;
}

void NfsStore::OnCommit3(Call* call, int rpc_status, COMMIT3res* res) {
  if (call->orphan) return;
  Unlink(call);
  std::vector<Chunk*> batch;
  batch.swap(call->batch);
  delete call;
  if (rpc_status != RPC_STATUS_SUCCESS || (res->status != NFS3_OK && !IsPermanentNfs3(res->status))) {
    for (Chunk* ch : batch) Requeue(ch);
    broken_ = true;
    broken_why_ = "COMMIT failed";
    return;
  }
  if (res->status != NFS3_OK) {
    for (Chunk* ch : batch) FinishChunk(ch, Nfs3Errno(res->status));
    return;
  }
  const char* verf = res->COMMIT3res_u.resok.verf;
  int resent = 0;
  for (Chunk* ch : batch) {
    if (std::memcmp(ch->verf, verf, sizeof(ch->verf)) == 0) {
      FinishChunk(ch, 0);
    } else {
      Requeue(ch);  // written before a server reboot: the data may be gone
      resent++;
    }
  }
  if (resent) Log("write verifier changed (server rebooted): resending " + std::to_string(resent) + " writes");
}

Chunk* NfsStore::TakeReply4(Call* call, int err, const char* op) {
  Unlink(call);
  Chunk* ch = call->chunk;
  delete call;
  if (err >= 0) return ch;
  if (IsPermanent(-err)) {
    FinishChunk(ch, -err);
  } else {
    Requeue(ch);
    broken_ = true;
    broken_why_ = std::string(op) + " failed: " + ErrStr(-err);
  }
  return nullptr;
}

void NfsStore::OnRead4(Call* call, int err, const void* data) {
  if (call->orphan) return;
  Chunk* ch = TakeReply4(call, err, "READ");
  if (ch == nullptr) return;
  uint32_t n = std::min<uint32_t>(static_cast<uint32_t>(err), ch->len - ch->done);
  std::memcpy(ch->buf + ch->done, data, n);  // the buffer is libnfs's
  ch->done += n;
  if (ch->done == ch->len) return FinishChunk(ch, 0);
  if (n == 0) return FinishChunk(ch, EIO);  // past the end: a truncated swap file
  reads_.push_front(ch);
}

void NfsStore::OnWrite4(Call* call, int err) {
  if (call->orphan) return;
  Conn& c = *call->conn;
  Chunk* ch = TakeReply4(call, err, "WRITE");
  if (ch == nullptr) return;
  ch->done += std::min<uint32_t>(static_cast<uint32_t>(err), ch->len - ch->done);
  if (err == 0 || ch->done < ch->len) {
    writes_.push_front(ch);
    return;
  }
  c.uncommitted.push_back(ch);
  c.uncommitted_bytes += ch->len;
}

void NfsStore::OnCommit4(Call* call, int err) {
  if (call->orphan) return;
  Unlink(call);
  std::vector<Chunk*> batch;
  batch.swap(call->batch);
  delete call;
  if (err < 0 && !IsPermanent(-err)) {
    for (Chunk* ch : batch) Requeue(ch);
    broken_ = true;
    broken_why_ = "COMMIT failed: " + ErrStr(-err);
    return;
  }
  // Same connection for WRITE and COMMIT (a break tears both down): stable.
  for (Chunk* ch : batch) FinishChunk(ch, err < 0 ? -err : 0);
}

// ---- the I/O thread ------------------------------------------------------------------

bool NfsStore::Idle() const {
  if (!reads_.empty() || !writes_.empty()) return false;
  for (const Conn& c : conns_)
    if (!c.calls.empty() || !c.uncommitted.empty()) return false;
  return true;
}

void NfsStore::FailAll(int err) {
  TeardownAll();  // moves everything in flight back to the queues
  while (!reads_.empty()) {
    Chunk* ch = reads_.front();
    reads_.pop_front();
    FinishChunk(ch, err);
  }
  while (!writes_.empty()) {
    Chunk* ch = writes_.front();
    writes_.pop_front();
    FinishChunk(ch, err);
  }
}

// Rebuilds every connection, with back-off, until it works, the swap file
// is found gone, or Stop's deadline passes. False when giving up.
bool NfsStore::Reconnect(const std::string& why) {
  Log("connection to " + Where() + " lost (" + why + "); reconnecting");
  listener_->OnBackendState(BackendState::kReconnecting, why);
  TeardownAll();
  broken_ = false;
  Ms backoff = kBackoffMin;
  for (int attempt = 1;; attempt++) {
    Clock::time_point deadline = Clock::now() + Ms(connect_timeout_);
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopping_) deadline = std::min(deadline, stop_deadline_);
    }
    int err = 0;
    Status s = ConnectAll(deadline, false, &err);
    if (s.ok()) {
      Log("reconnected to " + Where() + " after " + std::to_string(attempt) + " attempt(s)");
      listener_->OnBackendState(BackendState::kOk, "reconnected");
      return true;
    }
    if (err == ENOENT) {
      // The server is back but our file is not: its data is lost, so no
      // retry can succeed. Every op (and every later one) fails with EIO.
      Log(s.message() + ": swap file lost, failing all I/O");
      dead_errno_ = EIO;
      FailAll(EIO);
      listener_->OnBackendState(BackendState::kPaused, "swap file lost: " + s.message());
      return true;
    }
    if (attempt == 1 || attempt % 10 == 0) Log("reconnect attempt " + std::to_string(attempt) + ": " + s.message());
    const auto wake_at = Clock::now() + backoff;
    while (Clock::now() < wake_at) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (stopping_ && Clock::now() >= stop_deadline_) return false;
      }
      std::this_thread::sleep_for(Ms(20));
    }
    backoff = std::min(backoff * 2, kBackoffMax);
  }
}

void NfsStore::Loop() {
  std::vector<pollfd> fds;
  auto last_service = Clock::now();
  for (;;) {
    TakeIncoming();
    Dispatch();
    bool stopping;
    Clock::time_point stop_deadline;
    {
      std::lock_guard<std::mutex> l(mu_);
      stopping = stopping_ && incoming_.empty();
      stop_deadline = stop_deadline_;
    }
    if (stopping && Idle()) break;
    if (stopping && Clock::now() >= stop_deadline) {
      Log("Stop: " + Where() + " did not finish the I/O in flight in time; failing it with EIO");
      FailAll(EIO);
      break;
    }
    if (broken_) {
      if (!Reconnect(broken_why_)) {
        Log("Stop: " + Where() + " unreachable; giving up on the I/O in flight (EIO)");
        TakeIncoming();
        FailAll(EIO);
        break;
      }
      continue;
    }
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    for (Conn& c : conns_) fds.push_back({nfs_get_fd(c.nfs), static_cast<short>(nfs_which_events(c.nfs)), 0});
    int n = poll(fds.data(), fds.size(), kPollMs);
    if (n < 0 && errno != EINTR) {
      Log(std::string("poll: ") + ErrStr(errno));
      continue;
    }
    if (fds[0].revents & POLLIN) {
      uint64_t v;
      (void)!read(wake_fd_, &v, sizeof(v));
    }
    const bool tick = Clock::now() - last_service >= Ms(kPollMs);
    if (tick) last_service = Clock::now();
    for (size_t i = 0; i < conns_.size() && !broken_; i++) {
      // revents 0 still runs libnfs's timeout scan; needed for kIoTimeoutMs.
      if (fds[i + 1].revents == 0 && !tick) continue;
      if (nfs_service(conns_[i].nfs, fds[i + 1].revents) < 0) {
        broken_ = true;
        broken_why_ = "connection error: " + NfsErr(conns_[i].nfs);
      }
    }
  }
  RemoveFile();
  TeardownAll();
}

// Removes the swap file, bounded by the stop deadline.
void NfsStore::RemoveFile() {
  if (dead_errno_ || conns_.empty() || !conns_[0].nfs) return;
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

Result<std::unique_ptr<Store>> OpenNfsStore(const std::string& url, uint64_t max_bytes,
                                            uint32_t connect_timeout_ms) {
  Result<nfs::UrlOptions> o = nfs::ParseUrl(url);
  if (!o.ok()) return o.status();
  if (connect_timeout_ms == 0) connect_timeout_ms = 10000;
  return std::unique_ptr<Store>(std::make_unique<nfs::NfsStore>(std::move(*o), max_bytes, connect_timeout_ms));
}

}  // namespace pager

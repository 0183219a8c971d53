// The NFS store: one I/O thread owns every libnfs context and runs their
// event loop; Submit() from any thread only queues and wakes it. The URL is
// parsed in nfs_url.cc; one connection's setup and teardown are nfs_conn.cc.
// The store's life, as a state machine, is nfs_store.cc; ops on the wire
// (queues, dispatch, completions) are nfs_io.cc.
//
// The I/O thread's states:
//
//   kConnected --a connection broke--> kReconnecting
//   kConnected --Stop()--------------> kStopping
//   kReconnecting --reconnected------> kConnected, or kStopping once Stop()
//   kReconnecting --swap file gone---> kDead
//   kReconnecting --Stop's deadline--> end: what is queued fails with EIO
//   kStopping --idle-----------------> end: the swap file is removed
//   kStopping --Stop's deadline------> end: what is left fails with EIO
//   kStopping --a connection broke---> kReconnecting
//   kDead --Stop()-------------------> end
//
// kDead holds no connection: the swap file is gone (found missing at a
// reconnect), every page in it is lost, and every op, in flight or later,
// completes with EIO at once; the backend state is `paused`.
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
//    EDQUOT, EROFS, EACCES, EPERM, EFBIG, a read past the end of the file,
//    the file gone) complete an op with an error.
//  - While connected, the store touches its file's mtime every minute, so
//    that gc on another host can tell a live owner from a dead one by age.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pager/store.h"
#include "store/nfs_conn.h"
#include "store/nfs_url.h"
#include "swap_file.h"

namespace pager::nfs {

class NfsStore final : public Store {
 public:
  // `name`: the swap file Start will create (swap_file.h); `client_tag`
  // tells apart, in NFSv4 client names, stores that share the name.
  NfsStore(UrlOptions url, const SwapFileName& name, const std::string& client_tag, uint64_t max_bytes,
           uint32_t connect_timeout_ms);
  ~NfsStore() override;

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
  std::string Describe() const override;
  std::string swap_file_name() const override { return file_; }

  // Callbacks, on the I/O thread inside nfs_service() or nfs_destroy_context().
  void OnRead3(Call* call, int rpc_status, READ3res* res);
  void OnWrite3(Call* call, int rpc_status, WRITE3res* res);
  void OnCommit3(Call* call, int rpc_status, COMMIT3res* res);
  void OnRead4(Call* call, int err, const void* data);
  void OnWrite4(Call* call, int err);
  void OnCommit4(Call* call, int err);
  // The mtime touch: `err` is 0, or an errno (RPC or server).
  void OnTouch(Call* call, int err);

 private:
  enum class State : uint8_t { kConnected, kReconnecting, kDead, kStopping };

  std::string Where() const { return url_.Where(); }
  std::string FilePath() const { return "/" + file_; }

  // ---- life (nfs_store.cc) ----
  Status ConnectAll(Clock::time_point deadline, bool create, int* err);
  Status FirstConnect();
  void Loop();
  // One turn of each state; false when the thread is to end.
  bool Serve();
  bool Reconnect();
  bool ServeDead();
  // Whether Stop() was called, its deadline, and whether every op
  // submitted before it has been taken from `incoming_`.
  struct StopState {
    bool requested = false;
    bool drained = false;
    Clock::time_point deadline;
  };
  StopState GetStopState();
  void IssueTouch(Conn& c);
  void RemoveFile();

  // ---- ops on the wire (nfs_io.cc) ----
  void TakeIncoming();
  void Dispatch();
  bool Issue(Conn& c, Chunk* ch);
  void IssueCommit(Conn& c);
  // Unlinks a call whose answer came from its connection's bookkeeping.
  void Unlink(Call* call);
  void Requeue(Chunk* ch);
  void FinishChunk(Chunk* ch, int err);
  // Tears every connection down and completes every op with `err`.
  void FailAll(int err);
  bool Idle() const;
  // Drops a connection; whatever it had in flight goes back to the queues.
  void Drop(Conn& c);
  void TeardownAll();
  void MarkBroken(std::string why);
  // Unlinks and frees a READ/WRITE call; its chunk if the reply is to be
  // used, or nullptr once the chunk is requeued (transient failure: the
  // connection is marked broken) or finished (permanent error).
  template <class Res>
  Chunk* TakeReply(Call* call, int rpc_status, const Res* res, const char* op);
  // v4 replies (libnfs's high-level calls): err < 0 is -errno. Returns the
  // call's chunk to go on with, or nullptr when the failure was dealt with.
  Chunk* TakeReply4(Call* call, int err, const char* op);

  const UrlOptions url_;
  const uint64_t max_bytes_;
  const uint32_t connect_timeout_;
  const std::string file_;         // the swap file's name
  const std::string client_stem_;  // v4 client names: <file stem>[-<tag>]-<conn>-<generation>
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
  State state_ = State::kConnected;
  std::vector<Conn> conns_;
  std::deque<Chunk*> reads_, writes_;
  bool broken_ = false;            // a connection failed: kReconnecting next
  std::string broken_why_;
  Clock::time_point last_service_;  // libnfs's timeout scan runs every kPollMs
  Ms touch_every_;
  Clock::time_point next_touch_;
  bool touch_warned_ = false;
};

}  // namespace pager::nfs

// The store over several servers. One coordinating thread owns all of its
// state: the extent map (extent_map.h), each server's health
// (server_health.h), the ops in flight and the copies under way. Submit()
// and the child stores' completions only queue and wake it. Its life (start,
// the loop, health, stop) is replicated_store.cc; the pager's ops (pieces,
// reads, hedges, writes) are replicated_io.cc; copying extents to another
// server when a copy was lost is rereplication.cc.
//
// An op of the pager (the parent) is cut into pieces, one per extent it
// touches (two at most: runs are at most kExtentPages long). Each piece is
// served by child ops on the servers that hold the extent:
//  - a read asks one copy, the one expected to answer first (latency and
//    load), and the other too if the first is late (a hedge) or fails; the
//    first good answer completes it;
//  - a write goes to every copy and completes when each has it stable, or
//    when the server of a copy is marked down (the copy is dropped: the
//    extent is under-replicated until it is copied again).
//
// Buffers. The pager may free an op's buffer once the op completes, and a
// child op on a slow or down server can outlive its parent (an NFS store
// resends after a reconnect). So no child op ever sees the parent's buffer:
// a write's payload is copied once into a buffer of the store's own, shared
// by its children and freed with the last of them; each child read has its
// own buffer, and the first good answer is copied into the parent's. They
// are allocated on the coordinating thread, which is bound to the pager's
// reserve arena (StoreListener::OnThreadStart), within per-server windows
// that buffer_bytes() accounts for.
//
// Invariants, and why:
//  - A child op whose piece no longer waits for it (the hedge that lost, a
//    request to a server marked down) is an orphan: it holds only its own
//    buffer, and its completion only frees it.
//  - A piece never waits on a server marked down unless that server holds
//    the extent's only copy (then the piece waits for it, as a single
//    server's store does: a hard mount).
//  - An extent being copied to another server takes no write until the copy
//    is done (Extent::copying); a copy starts only when no write to the
//    extent is in flight. So the copy's bytes are the extent's latest.
//  - A down server gets no new request before every orphan of its lands
//    (ServerHealth's "back" rule): an old write landing late must not
//    overwrite a newer one.
#pragma once

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pager/store.h"
#include "stats.h"
#include "store/extent_map.h"
#include "store/replicated_store.h"
#include "store/server_health.h"

namespace pager::replicated {

uint64_t NowNs();

// Bytes of child ops a server may have outstanding: a write is sent while
// it stays within the write window, a read within the read window, so that
// a read never waits behind a full window of write-back (the NFS store
// serves reads first too). Orphans count: a stalled server fills its window
// and gets nothing more. Three 1 MiB writes keep a server's disk and wire
// busy (docs/servers.md); more would only hold more buffers.
inline constexpr uint64_t kWriteWindowBytes = 3u << 20;
inline constexpr uint64_t kReadWindowBytes = 4u << 20;
// Extents copied at once when copies were lost.
inline constexpr size_t kCopiesInFlight = 2;

// A payload buffer of the store's own, shared by the children of one write.
struct Buffer {
  static Buffer* New(uint64_t bytes);  // nullptr when out of memory
  void Ref() { refs++; }
  void Unref();
  std::byte* data() { return reinterpret_cast<std::byte*>(this + 1); }
  uint32_t refs = 1;
};

struct Parent;
struct Copy;
struct ChildOp;

// A parent op's share of one extent.
struct Piece {
  Parent* parent = nullptr;
  uint64_t extent = 0;
  uint32_t in_extent = 0;  // its first page, from the extent's start
  uint32_t offset = 0;     // its first page, from the parent op's start
  uint32_t pages = 0;
  ChildOp* asked[kMaxCopies] = {};  // outstanding children, by the extent's copy slot
  uint8_t tried = 0;                // reads: copy slots asked (bits)
  uint8_t launched = 0;             // writes: copy slots written and not dropped (bits)
  int errors[kMaxCopies] = {};      // writes: each copy's answer
  int error = 0;                    // reads: the first failure
  bool done = false;
  uint64_t hedge_at_ns = 0;         // reads: when to ask the other copy too; 0: never
  bool is_read() const;
  uint64_t first_slot() const { return extent * kExtentPages + in_extent; }
  bool waiting() const { return asked[0] != nullptr || asked[1] != nullptr; }
};

struct Parent {
  StoreOp* op = nullptr;
  Piece piece[2];
  uint8_t pieces = 0;
  uint8_t left = 0;  // pieces not done
  // A read of two pieces: a server holding both extents, asked first for
  // both (kNoServer: none). See ReplicatedStore::CommonServer.
  uint8_t read_server = kNoServer;
  Parent* prev = nullptr;
  Parent* next = nullptr;  // the active list
};

inline bool Piece::is_read() const { return parent->op->kind == StoreOp::Kind::kRead; }

// One request to one server.
struct ChildOp {
  enum class Purpose : uint8_t { kRead, kWrite, kCopyRead, kCopyWrite };

  StoreOp io;  // first: the StoreOp* a child store completes is its ChildOp*
  Purpose purpose = Purpose::kRead;
  uint8_t server = 0;
  uint8_t slot = 0;        // the extent's copy slot it reads or writes
  bool orphan = false;
  Piece* piece = nullptr;  // kRead, kWrite: while the piece waits for it
  Copy* copy = nullptr;    // kCopyRead, kCopyWrite: while the copy waits for it
  Buffer* buf = nullptr;   // one reference, dropped when it completes
  uint64_t issued_ns = 0;
  ChildOp* prev = nullptr;
  ChildOp* next = nullptr;  // its server's outstanding list, oldest first
};

// An extent being copied from its surviving copy to another server.
struct Copy {
  enum class Phase : uint8_t { kWaitingForWrites, kReading, kWriting };
  uint64_t extent = 0;
  uint8_t from = 0, to = 0;
  uint32_t pages = 0;
  Phase phase = Phase::kWaitingForWrites;
  ChildOp* child = nullptr;  // outstanding in kReading, kWriting
};

class ReplicatedStore;

// A child store's listener: hands everything to the coordinating thread.
class ChildListener final : public StoreListener {
 public:
  ChildListener(ReplicatedStore* store, int server) : store_(store), server_(server) {}
  void OnComplete(StoreOp* op) override;
  void OnBackendState(BackendState state, const std::string& why) override;
  void OnThreadStart() override;

 private:
  ReplicatedStore* const store_;
  const int server_;
};

struct Server {
  Server(ReplicatedStore* store, int index, ServerStore s)
      : index(index), store(std::move(s.store)), name(std::move(s.name)), listener(store, index) {}

  const int index;
  std::unique_ptr<Store> store;
  const std::string name;
  ChildListener listener;
  ServerHealth health;
  ChildOp* oldest = nullptr;  // outstanding, in issue order
  ChildOp* newest = nullptr;
  uint64_t outstanding_bytes = 0;
  uint64_t outstanding_ops = 0;
  uint64_t orphans = 0;
  ServerStatsBlock* stats = nullptr;
};

class ReplicatedStore final : public Store {
 public:
  ReplicatedStore(std::vector<ServerStore> servers, const StoreOptions& options);
  ~ReplicatedStore() override;

  Status Start(StoreListener* listener) override;
  void Submit(StoreOp* op) override;
  void Stop() override;
  uint32_t max_pages_per_op() const override;
  uint64_t buffer_bytes(uint64_t in_flight_bytes) const override;
  std::string Describe() const override;
  std::string swap_file_name() const override { return servers_[0]->store->swap_file_name(); }

  // From the child stores' threads (ChildListener).
  void ChildCompleted(StoreOp* op);
  void ChildState(int server, BackendState state, const std::string& why);
  void ChildThreadStarted() { listener_->OnThreadStart(); }

 private:
  struct StateReport {
    int server;
    BackendState state;
    std::string why;
  };
  using PieceQueue = std::deque<Piece*>;

  // ---- life (replicated_store.cc) ----
  Status StartServers();
  void Loop();
  // Waits for work or `deadline_ns`, then handles what came in.
  void TakeInputs(uint64_t deadline_ns);
  void HandleReport(const StateReport& r, uint64_t now);
  void HandleCompleted(ChildOp* c, uint64_t now);
  void CheckHealth(uint64_t now);
  void MarkDown(Server& s);
  void ReportBackendState();
  void PublishStats();
  // Whether the loop may end: Stop() stopped every child, and nothing is left.
  bool Finished();

  // ---- the pager's ops (replicated_io.cc) ----
  void Accept(StoreOp* op);
  void Dispatch(uint64_t now);
  bool DispatchRead(Piece* p, uint64_t now);
  bool DispatchWrite(Piece* p);
  // The copy slot a read of `p` should ask now, or -1 (none left to ask,
  // or its server's window is full).
  int ChooseReadSlot(const Piece& p, uint64_t now) const;
  // For a read of two pieces, a server holding a copy of both, or kNoServer.
  uint8_t CommonServer(const Parent& a, uint64_t now) const;
  // How a server ranks for a read now: answering, then late or reconnecting,
  // then down (lower is better); and its expected cost within a rank.
  int ReadRank(const Server& s, uint64_t now) const;
  uint64_t ReadCost(const Server& s, uint64_t now) const;
  bool IssueRead(Piece* p, int slot, uint64_t now);
  void Hedge(uint64_t now);
  void OnReadDone(Piece* p, ChildOp* c);
  void OnWriteDone(Piece* p, ChildOp* c);
  // The write's answers are all in (or dropped with a down server).
  void SettleWrite(Piece* p);
  void FinishPiece(Piece* p, int err);
  // Detaches a child from its piece or copy: its answer will be ignored.
  void Orphan(ChildOp* c);
  // Child op plumbing.
  ChildOp* NewChild(ChildOp::Purpose purpose, Server& s, uint64_t slot, uint32_t pages, Buffer* buf);
  void Send(ChildOp* c);
  void Unlink(ChildOp* c);
  bool Late(const Server& s, uint64_t now) const;
  bool stopping() const { return drained_; }

  // ---- copies (rereplication.cc) ----
  void Rereplicate(uint64_t now);
  // A good server for a new copy of `x`, or -1.
  int CopyTarget(const Extent& x, uint64_t now) const;
  void StartCopyRead(Copy* copy);
  void OnCopyDone(Copy* copy, ChildOp* c);
  void EndCopy(Copy* copy, bool copied);
  Copy* CopyOf(uint64_t extent) const;
  // After a write to `extent` settles: a copy waiting for it may read.
  void WriteSettled(uint64_t extent);

  const StoreOptions options_;
  const int replicas_;
  std::vector<std::unique_ptr<Server>> servers_;
  StoreListener* listener_ = nullptr;
  StoreServersBlock private_stats_;
  StoreServersBlock* stats_ = &private_stats_;
  std::thread thread_;

  // Shared with Submit, the children's threads and Stop; guarded by mu_.
  std::mutex mu_;
  std::condition_variable cv_;  // wakes the loop
  std::condition_variable drained_cv_;  // wakes Stop
  std::vector<StoreOp*> incoming_;
  std::vector<ChildOp*> completed_;
  std::vector<StateReport> reports_;
  bool stop_requested_ = false;
  bool drained_shared_ = false;    // the loop queued its last child op
  bool children_stopped_ = false;  // Stop() stopped every child store

  // The coordinating thread's.
  ExtentMap map_;
  PieceQueue reads_, writes_;  // pieces waiting for a server
  Parent* active_ = nullptr;   // parents not completed
  std::vector<Copy*> copies_;
  uint64_t copy_cursor_ = 0;
  uint64_t next_copy_scan_ns_ = 0;
  uint64_t next_hedge_ns_ = UINT64_MAX;
  BackendState reported_ = BackendState::kOk;
  bool drained_ = false;  // Stop: no child op is sent any more
  bool stop_seen_ = false;
};

}  // namespace pager::replicated

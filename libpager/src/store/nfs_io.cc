// Ops on the wire: the store's queues, dispatch to its connections, the
// READ, WRITE, COMMIT and touch RPCs (raw on v3; libnfs's high-level calls
// on v4, but for the touch) and their completions. All of it runs on the I/O
// thread, except Submit. The invariants are in nfs_store_impl.h.
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <nfsc/libnfs-raw-nfs4.h>

#include "log.h"
#include "store/nfs_store_impl.h"

namespace pager::nfs {
namespace {

constexpr int kMaxInflightPerConn = 32;               // Ganesha is CPU bound past QD 8
constexpr uint64_t kMaxWriteBytesPerConn = 4u << 20;  // bounds a read's wait on the socket
constexpr uint64_t kCommitEveryBytes = 4u << 20;      // COMMIT at least this often under load

void Log(const std::string& msg) { PAGER_LOG_WARN("nfs: %s", msg.c_str()); }

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
void Touch3Cb(rpc_context*, int status, void* data, void* priv) {
  auto* res = static_cast<SETATTR3res*>(data);
  const int err = status != RPC_STATUS_SUCCESS ? EIO : Nfs3Errno(res->status);
  auto* call = static_cast<Call*>(priv);
  call->store->OnTouch(call, err);
}
void Touch4Cb(rpc_context*, int status, void* data, void* priv) {
  auto* res = static_cast<COMPOUND4res*>(data);
  // The common nfsstat4 codes are errno values (RFC 7530, 13.1).
  const int err = status != RPC_STATUS_SUCCESS ? EIO
                  : res->status == NFS4_OK    ? 0
                  : res->status < 100         ? static_cast<int>(res->status)
                                              : EIO;
  auto* call = static_cast<Call*>(priv);
  call->store->OnTouch(call, err);
}

}  // namespace

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
    if (state_ == State::kDead) {
      op->error = EIO;  // the swap file is gone with every page in it
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
    nfs_fh3 fh{{static_cast<u_int>(c.raw_fh.size()), c.raw_fh.data()}};
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
    MarkBroken("cannot queue a request: " + NfsErr(c.nfs));
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
    a.file = nfs_fh3{{static_cast<u_int>(c.raw_fh.size()), c.raw_fh.data()}};
    a.offset = 0;
    a.count = 0;  // the whole file
    rc = rpc_nfs3_commit_async(nfs_get_rpc_context(c.nfs), Commit3Cb, &a, call);
  } else {
    rc = nfs_fsync_async(c.nfs, c.fh, Commit4Cb, call);
  }
  if (rc != 0) {
    for (Chunk* ch : call->batch) Requeue(ch);
    delete call;
    MarkBroken("cannot queue a COMMIT: " + NfsErr(c.nfs));
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
    MarkBroken(std::string(op) + " failed: connection lost or timed out");
    return nullptr;
  }
  if (res->status != NFS3_OK) {
    if (IsPermanentNfs3(res->status)) {
      FinishChunk(ch, Nfs3Errno(res->status));
      return nullptr;
    }
    Requeue(ch);
    MarkBroken(std::string(op) + ": server answered " + ErrStr(Nfs3Errno(res->status)));
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
    MarkBroken("COMMIT failed");
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
    MarkBroken(std::string(op) + " failed: " + ErrStr(-err));
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
    MarkBroken("COMMIT failed: " + ErrStr(-err));
    return;
  }
  // Same connection for WRITE and COMMIT (a break tears both down): stable.
  for (Chunk* ch : batch) FinishChunk(ch, err < 0 ? -err : 0);
}

// ---- the touch ---------------------------------------------------------------------

// Sets the file's mtime to the server's clock, through the open handle: v3
// SETATTR, v4 PUTFH + SETATTR with the anonymous stateid (allowed for
// attributes other than the size, RFC 7530 9.1.4.3). libnfs's own v4
// utimes would OPEN and CLOSE the file under the store's open-owner, and
// that CLOSE would take the store's open state with it.
void NfsStore::IssueTouch(Conn& c) {
  auto* call = new Call{Call::kTouch, this, &c};
  int rc;
  if (url_.version == 3) {
    SETATTR3args a{};
    a.object = nfs_fh3{{static_cast<u_int>(c.raw_fh.size()), c.raw_fh.data()}};
    a.new_attributes.mtime.set_it = SET_TO_SERVER_TIME;
    rc = rpc_nfs3_setattr_async(nfs_get_rpc_context(c.nfs), Touch3Cb, &a, call);
  } else {
    static uint32_t mask[2] = {0, 1u << (FATTR4_TIME_MODIFY_SET - 32)};
    uint32_t how = htonl(SET_TO_SERVER_TIME4);
    nfs_argop4 op[2] = {};
    op[0].argop = OP_PUTFH;
    op[0].nfs_argop4_u.opputfh.object.nfs_fh4_len = static_cast<u_int>(c.raw_fh.size());
    op[0].nfs_argop4_u.opputfh.object.nfs_fh4_val = c.raw_fh.data();
    op[1].argop = OP_SETATTR;
    fattr4& attrs = op[1].nfs_argop4_u.opsetattr.obj_attributes;
    attrs.attrmask.bitmap4_len = 2;
    attrs.attrmask.bitmap4_val = mask;
    attrs.attr_vals.attrlist4_len = sizeof how;
    attrs.attr_vals.attrlist4_val = reinterpret_cast<char*>(&how);
    COMPOUND4args args{};
    args.argarray.argarray_len = 2;
    args.argarray.argarray_val = op;
    rc = rpc_nfs4_compound_async(nfs_get_rpc_context(c.nfs), Touch4Cb, &args, call);
  }
  if (rc != 0) {
    delete call;
    MarkBroken("cannot queue a SETATTR: " + NfsErr(c.nfs));
    return;
  }
  c.calls.insert(call);
}

void NfsStore::OnTouch(Call* call, int err) {
  if (call->orphan) return;
  Unlink(call);
  delete call;
  // A lost connection shows in nfs_service(); a refusal is worth one line.
  if (err == 0 || err == EIO || touch_warned_) return;
  touch_warned_ = true;
  Log("cannot set the mtime of swap file " + url_.path + FilePath() + " on " + Where() + ": " + ErrStr(err) +
      "; gc on other hosts judges a file by its mtime, so with --idle it may take this one for abandoned");
}

// ---- the I/O thread's bookkeeping --------------------------------------------------------

void NfsStore::MarkBroken(std::string why) {
  broken_ = true;
  broken_why_ = std::move(why);
}

void NfsStore::Drop(Conn& c) {
  for (Chunk* ch : Teardown(c)) Requeue(ch);
}

void NfsStore::TeardownAll() {
  for (Conn& c : conns_) Drop(c);
}

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

}  // namespace pager::nfs

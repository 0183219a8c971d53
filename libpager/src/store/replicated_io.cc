// The pager's ops in the store over several servers: cutting them into
// pieces, choosing the copy a read asks, hedging a late read, sending a
// write to every copy, and settling each piece from its children's answers.
// All of it on the coordinating thread; the invariants are in
// replicated_store_impl.h.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "log.h"
#include "store/replicated_store_impl.h"

namespace pager::replicated {
namespace {

constexpr int kWait = -1;      // ChooseReadSlot: a copy is left, its server's window is full
constexpr int kNoneLeft = -2;  // ChooseReadSlot: every copy was asked
constexpr uint64_t kRetryNs = 1'000'000;  // a hedge that found no room tries again this much later

uint64_t Bytes(uint32_t pages) { return uint64_t{pages} * kPageSize; }

}  // namespace

Buffer* Buffer::New(uint64_t bytes) {
  void* p = ::operator new(sizeof(Buffer) + bytes, std::nothrow);
  return p != nullptr ? new (p) Buffer : nullptr;
}

void Buffer::Unref() {
  if (--refs > 0) return;
  this->~Buffer();
  ::operator delete(this);
}

// ---- child ops ---------------------------------------------------------------------

ChildOp* ReplicatedStore::NewChild(ChildOp::Purpose purpose, Server& s, uint64_t slot, uint32_t pages, Buffer* buf) {
  auto* c = new (std::nothrow) ChildOp;
  if (c == nullptr) return nullptr;
  const bool read = purpose == ChildOp::Purpose::kRead || purpose == ChildOp::Purpose::kCopyRead;
  c->io.kind = read ? StoreOp::Kind::kRead : StoreOp::Kind::kWrite;
  c->io.slot = slot;
  c->io.pages = pages;
  c->io.buf = buf->data();
  c->purpose = purpose;
  c->server = static_cast<uint8_t>(s.index);
  c->buf = buf;
  buf->Ref();
  return c;
}

void ReplicatedStore::Send(ChildOp* c) {
  Server& s = *servers_[c->server];
  c->issued_ns = NowNs();
  c->prev = s.newest;
  (s.newest != nullptr ? s.newest->next : s.oldest) = c;
  s.newest = c;
  s.outstanding_bytes += Bytes(c->io.pages);
  s.outstanding_ops++;
  s.store->Submit(&c->io);  // may complete at once: the completion is queued, not handled here
}

void ReplicatedStore::Unlink(ChildOp* c) {
  Server& s = *servers_[c->server];
  (c->prev != nullptr ? c->prev->next : s.oldest) = c->next;
  (c->next != nullptr ? c->next->prev : s.newest) = c->prev;
  s.outstanding_bytes -= Bytes(c->io.pages);
  s.outstanding_ops--;
  if (c->orphan) s.orphans--;
}

void ReplicatedStore::Orphan(ChildOp* c) {
  c->orphan = true;
  servers_[c->server]->orphans++;
  if (c->piece != nullptr) c->piece->asked[c->slot] = nullptr;
  if (c->copy != nullptr) c->copy->child = nullptr;
  c->piece = nullptr;
  c->copy = nullptr;
}

// Late: its oldest request has waited twice as long as a read may before it
// is hedged. New reads go to the other copy meanwhile.
bool ReplicatedStore::Late(const Server& s, uint64_t now) const {
  // `now` may predate the request: it is read once per turn of the loop.
  return s.oldest != nullptr && now > s.oldest->issued_ns + 2 * s.health.hedge_after_ns();
}

// ---- accepting the pager's ops ----------------------------------------------------------

void ReplicatedStore::Accept(StoreOp* op) {
  op->error = 0;
  const bool write = op->kind == StoreOp::Kind::kWrite;
  if (op->pages == 0 || (write && options_.max_bytes != 0 && (op->slot + op->pages) * kPageSize > options_.max_bytes)) {
    if (op->pages != 0) op->error = ENOSPC;  // the configured cap, like a full disk
    listener_->OnComplete(op);
    return;
  }
  auto* a = new (std::nothrow) Parent;
  if (a == nullptr) {
    op->error = ENOMEM;
    listener_->OnComplete(op);
    return;
  }
  a->op = op;
  for (uint32_t done = 0; done < op->pages;) {
    const uint64_t slot = op->slot + done;
    Piece& p = a->piece[a->pieces++];
    p.parent = a;
    p.extent = slot / kExtentPages;
    p.in_extent = static_cast<uint32_t>(slot % kExtentPages);
    p.offset = done;
    p.pages = std::min(op->pages - done, kExtentPages - p.in_extent);
    done += p.pages;
  }
  a->left = a->pieces;
  if (!write && a->pieces == 2) a->read_server = CommonServer(*a, NowNs());
  a->next = active_;
  if (active_ != nullptr) active_->prev = a;
  active_ = a;
  const int pieces = a->pieces;
  for (int i = 0; i < pieces; i++) {
    Piece* p = &a->piece[i];
    if (write) {
      writes_.push_back(p);
    } else if (map_.Find(p->extent) == nullptr) {
      FinishPiece(p, EIO);  // never written: a short read, not zeros (may complete `a`)
    } else {
      reads_.push_back(p);
    }
  }
}

// Reads first, then writes, each in order; what cannot go yet (a full
// window, an extent being copied) keeps its place.
void ReplicatedStore::Dispatch(uint64_t now) {
  PieceQueue kept;
  while (!reads_.empty()) {
    Piece* p = reads_.front();
    reads_.pop_front();
    if (!DispatchRead(p, now)) kept.push_back(p);
  }
  reads_.swap(kept);
  kept.clear();
  while (!writes_.empty()) {
    Piece* p = writes_.front();
    writes_.pop_front();
    if (!DispatchWrite(p)) kept.push_back(p);
  }
  writes_.swap(kept);
}

// ---- reads ------------------------------------------------------------------------------------

int ReplicatedStore::ReadRank(const Server& s, uint64_t now) const {
  return s.health.down() ? 2 : s.health.degraded() || Late(s, now) ? 1 : 0;
}

uint64_t ReplicatedStore::ReadCost(const Server& s, uint64_t now) const {
  return (s.health.read_estimate_ns(now) + 1) * (1 + s.outstanding_ops);
}

// The pager retries a whole op when one of its pages fails its check
// (StoreOp::attempt), and each piece then asks its other copy. If the
// pieces had been read from different servers, the piece that was good
// would come from its other copy, which may be the bad one: so both pieces
// are read from one server when a server holds both extents (two servers,
// or three with two copies, always share one). A retry then leaves that
// server for both.
uint8_t ReplicatedStore::CommonServer(const Parent& a, uint64_t now) const {
  const Extent* x = map_.Find(a.piece[0].extent);
  const Extent* y = map_.Find(a.piece[1].extent);
  if (x == nullptr || y == nullptr) return kNoServer;
  uint8_t best = kNoServer;
  for (uint8_t sv : x->server) {
    if (sv == kNoServer || y->SlotOf(sv) < 0) continue;
    const Server& s = *servers_[sv];
    if (best == kNoServer || ReadRank(s, now) < ReadRank(*servers_[best], now) ||
        (ReadRank(s, now) == ReadRank(*servers_[best], now) && ReadCost(s, now) < ReadCost(*servers_[best], now))) {
      best = sv;
    }
  }
  return best;
}

// The copy to ask: one not asked yet, on the server expected to answer
// first: answering before late or reconnecting before down, then the
// server shared with the op's other piece (CommonServer), then the lowest
// latency estimate times the requests it already has. A retry of a read
// whose bytes failed the pager's check (attempt > 0) asks the other copy
// than the one that answered last, whatever their health.
int ReplicatedStore::ChooseReadSlot(const Piece& p, uint64_t now) const {
  const Extent* x = map_.Find(p.extent);
  if (x == nullptr) return kNoneLeft;
  int avoid = -1;
  if (p.parent->op->attempt > 0 && x->copies() == kMaxCopies) avoid = x->ServedBySecond(p.in_extent) ? 1 : 0;
  int best = kNoneLeft, best_open = kNoneLeft;
  int best_rank = 0, open_rank = 0;
  uint64_t best_cost = 0, open_cost = 0;
  for (int slot = 0; slot < kMaxCopies; slot++) {
    const uint8_t sv = x->server[slot];
    if (sv == kNoServer || ((p.tried >> slot) & 1)) continue;
    const Server& s = *servers_[sv];
    const int rank = slot == avoid ? 3 : ReadRank(s, now);
    const uint64_t cost = sv == p.parent->read_server && p.parent->op->attempt == 0 ? 0 : ReadCost(s, now);
    if (best == kNoneLeft || rank < best_rank || (rank == best_rank && cost < best_cost)) {
      best = slot, best_rank = rank, best_cost = cost;
    }
    const bool room = stop_seen_ || s.outstanding_bytes + Bytes(p.pages) <= kReadWindowBytes;
    if (room && (best_open == kNoneLeft || rank < open_rank || (rank == open_rank && cost < open_cost))) {
      best_open = slot, open_rank = rank, open_cost = cost;
    }
  }
  if (best == kNoneLeft) return kNoneLeft;
  // A copy as good as the best with room now; else wait for the best.
  return best_open != kNoneLeft && open_rank == best_rank ? best_open : kWait;
}

bool ReplicatedStore::DispatchRead(Piece* p, uint64_t now) {
  if (p->done) return true;
  const int slot = drained_ ? kNoneLeft : ChooseReadSlot(*p, now);
  if (slot == kWait) return false;
  if (slot == kNoneLeft) {
    FinishPiece(p, p->error != 0 ? p->error : EIO);
    return true;
  }
  return IssueRead(p, slot, now);
}

bool ReplicatedStore::IssueRead(Piece* p, int slot, uint64_t now) {
  const Extent& x = *map_.Find(p->extent);
  Server& s = *servers_[x.server[slot]];
  Buffer* b = Buffer::New(Bytes(p->pages));
  if (b == nullptr) return false;
  ChildOp* c = NewChild(ChildOp::Purpose::kRead, s, p->first_slot(), p->pages, b);
  b->Unref();  // the child's reference remains, or none
  if (c == nullptr) return false;
  c->slot = static_cast<uint8_t>(slot);
  c->piece = p;
  p->asked[slot] = c;
  p->tried |= static_cast<uint8_t>(1u << slot);
  // A hedge, if another copy is left to ask: never on a retry after a failed
  // check, whose point is to hear from the other copy and not this one.
  const int other = 1 - slot;
  const bool hedge = p->parent->op->attempt == 0 && x.server[other] != kNoServer && !((p->tried >> other) & 1);
  p->hedge_at_ns = hedge ? now + s.health.hedge_after_ns() : 0;
  if (hedge) next_hedge_ns_ = std::min(next_hedge_ns_, p->hedge_at_ns);
  Send(c);
  return true;
}

// Reads unanswered past their server's hedge delay ask the other copy too
// (unless its server is down); the first good answer wins.
void ReplicatedStore::Hedge(uint64_t now) {
  if (now < next_hedge_ns_) return;
  next_hedge_ns_ = UINT64_MAX;
  for (Parent* a = active_; a != nullptr; a = a->next) {
    for (int i = 0; i < a->pieces; i++) {
      Piece& p = a->piece[i];
      if (p.done || p.hedge_at_ns == 0) continue;
      if (p.hedge_at_ns > now) {
        next_hedge_ns_ = std::min(next_hedge_ns_, p.hedge_at_ns);
        continue;
      }
      const int slot = drained_ ? kNoneLeft : ChooseReadSlot(p, now);
      Server* to = slot >= 0 ? servers_[map_.Find(p.extent)->server[slot]].get() : nullptr;
      if (slot == kNoneLeft || (to != nullptr && to->health.down())) {
        p.hedge_at_ns = 0;
        continue;
      }
      if (to != nullptr && IssueRead(&p, slot, now)) {
        to->stats->hedged_reads.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      p.hedge_at_ns = now + kRetryNs;  // no room or no memory now
      next_hedge_ns_ = std::min(next_hedge_ns_, p.hedge_at_ns);
    }
  }
}

void ReplicatedStore::OnReadDone(Piece* p, ChildOp* c) {
  p->asked[c->slot] = nullptr;
  if (c->io.error == 0) {
    memcpy(p->parent->op->buf + Bytes(p->offset), c->buf->data(), Bytes(p->pages));
    map_.NoteServed(p->extent, p->in_extent, p->pages, c->slot);
    FinishPiece(p, 0);
    return;
  }
  if (p->error == 0) p->error = c->io.error;
  if (p->waiting()) return;  // the other copy may answer yet
  reads_.push_front(p);      // a copy not asked yet, or the piece fails
}

void ReplicatedStore::FinishPiece(Piece* p, int err) {
  p->done = true;
  p->hedge_at_ns = 0;
  for (ChildOp* c : p->asked) {
    if (c != nullptr) Orphan(c);
  }
  Parent* a = p->parent;
  if (err != 0 && a->op->error == 0) a->op->error = err;
  if (--a->left > 0) return;
  (a->prev != nullptr ? a->prev->next : active_) = a->next;
  if (a->next != nullptr) a->next->prev = a->prev;
  StoreOp* op = a->op;
  delete a;
  listener_->OnComplete(op);
}

// ---- writes -------------------------------------------------------------------------------------

// To every copy at once, from one buffer of the store's own. An extent
// written for the first time is placed now, on the servers then usable.
bool ReplicatedStore::DispatchWrite(Piece* p) {
  if (p->done) return true;
  if (drained_) {
    FinishPiece(p, EIO);
    return true;
  }
  Extent& x = map_.At(p->extent);
  if (!x.placed()) {
    Usability u[kMaxServers];
    const uint64_t now = NowNs();
    for (const auto& s : servers_) {
      u[s->index] = s->health.down()                                  ? Usability::kUnusable
                    : s->health.degraded() || s->health.refusing(now) ? Usability::kDegraded
                                                                      : Usability::kGood;
    }
    map_.Place(p->extent, u);
    if (x.copies() < replicas_) next_copy_scan_ns_ = 0;  // placed short of copies: copy it soon
  }
  if (x.copying) return false;
  const uint64_t bytes = Bytes(p->pages);
  for (uint8_t sv : x.server) {
    if (sv != kNoServer && !stop_seen_ && servers_[sv]->outstanding_bytes + bytes > kWriteWindowBytes) return false;
  }
  Buffer* b = Buffer::New(bytes);
  if (b == nullptr) return false;
  memcpy(b->data(), p->parent->op->buf + Bytes(p->offset), bytes);
  ChildOp* kids[kMaxCopies] = {};
  bool ok = true;
  for (int slot = 0; slot < kMaxCopies; slot++) {
    if (x.server[slot] == kNoServer) continue;
    kids[slot] = NewChild(ChildOp::Purpose::kWrite, *servers_[x.server[slot]], p->first_slot(), p->pages, b);
    ok &= kids[slot] != nullptr;
  }
  if (!ok) {
    for (ChildOp* c : kids) {
      if (c != nullptr) {
        c->buf->Unref();
        delete c;
      }
    }
    b->Unref();
    return false;
  }
  b->Unref();
  x.writes_in_flight++;
  for (int slot = 0; slot < kMaxCopies; slot++) {
    if (kids[slot] == nullptr) continue;
    kids[slot]->slot = static_cast<uint8_t>(slot);
    kids[slot]->piece = p;
    p->asked[slot] = kids[slot];
    p->launched |= static_cast<uint8_t>(1u << slot);
  }
  for (ChildOp* c : kids) {
    if (c != nullptr) Send(c);
  }
  return true;
}

void ReplicatedStore::OnWriteDone(Piece* p, ChildOp* c) {
  p->asked[c->slot] = nullptr;
  p->errors[c->slot] = c->io.error;
  if (!p->waiting()) SettleWrite(p);
}

// Every copy written answered, or was dropped with its server. One good
// copy is enough: a copy that failed (a full or read-only server) is
// dropped, and the extent is copied again elsewhere. None good: the first
// error, as a single server's store reports it.
void ReplicatedStore::SettleWrite(Piece* p) {
  Extent& x = map_.At(p->extent);
  int first_err = 0;
  bool any_ok = false;
  for (int slot = 0; slot < kMaxCopies; slot++) {
    if (!((p->launched >> slot) & 1)) continue;
    any_ok |= p->errors[slot] == 0;
    if (p->errors[slot] != 0 && first_err == 0) first_err = p->errors[slot];
  }
  if (any_ok) {
    for (int slot = 0; slot < kMaxCopies; slot++) {
      if (!((p->launched >> slot) & 1) || p->errors[slot] == 0) continue;
      const int sv = x.server[slot];
      servers_[sv]->health.OnWriteRefused(NowNs());
      PAGER_LOG_WARN_EVERY(10, "server %s refused a write (%s): its copy of extent %lu is dropped",
                           servers_[sv]->name.c_str(), strerror(p->errors[slot]),
                           static_cast<unsigned long>(p->extent));
      map_.DropCopy(p->extent, sv);
      next_copy_scan_ns_ = 0;
    }
    map_.NoteWritten(p->extent, p->in_extent, p->pages);
  }
  x.writes_in_flight--;
  const uint64_t extent = p->extent;
  FinishPiece(p, any_ok ? 0 : first_err != 0 ? first_err : EIO);
  WriteSettled(extent);
}

}  // namespace pager::replicated

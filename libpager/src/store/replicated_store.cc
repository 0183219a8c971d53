// The store over several servers, its life: building it, starting the
// servers' stores, the coordinating thread's loop, each server's health
// (marking it down, taking it back), the published per-server stats, and
// Stop. The pager's ops are replicated_io.cc; copies, rereplication.cc.
#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "log.h"
#include "store/nfs_store.h"
#include "store/replicated_store_impl.h"
#include "store/server_list.h"
#include "swap_file.h"

namespace pager::replicated {

uint64_t NowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

namespace {

constexpr uint64_t kTickNs = 100'000'000;  // health is checked at least this often

}  // namespace

// ---- the child stores' listener ------------------------------------------------

void ChildListener::OnComplete(StoreOp* op) { store_->ChildCompleted(op); }
void ChildListener::OnBackendState(BackendState state, const std::string& why) {
  store_->ChildState(server_, state, why);
}
void ChildListener::OnThreadStart() { store_->ChildThreadStarted(); }

void ReplicatedStore::ChildCompleted(StoreOp* op) {
  {
    std::lock_guard<std::mutex> l(mu_);
    completed_.push_back(reinterpret_cast<ChildOp*>(op));  // io is its first member
  }
  cv_.notify_one();
}

void ReplicatedStore::ChildState(int server, BackendState state, const std::string& why) {
  {
    std::lock_guard<std::mutex> l(mu_);
    reports_.push_back(StateReport{server, state, why});
  }
  cv_.notify_one();
}

// ---- building and starting ------------------------------------------------------

ReplicatedStore::ReplicatedStore(std::vector<ServerStore> servers, const StoreOptions& options)
    : options_(options),
      replicas_(static_cast<int>(std::min<size_t>(options.replicas == 0 ? 2 : options.replicas, servers.size()))),
      map_(static_cast<int>(servers.size()), options.replicas == 0 ? 2 : static_cast<int>(options.replicas)) {
  for (size_t i = 0; i < servers.size(); i++) {
    servers_.push_back(std::make_unique<Server>(this, static_cast<int>(i), std::move(servers[i])));
  }
}

ReplicatedStore::~ReplicatedStore() {
  if (thread_.joinable()) Stop();
}

std::string ReplicatedStore::Describe() const {
  std::string d = std::to_string(servers_.size()) + " servers, " + std::to_string(replicas_) +
                  (replicas_ == 1 ? " copy" : " copies") + " of each page:";
  for (const auto& s : servers_) d += " [" + s->store->Describe() + "]";
  return d;
}

uint32_t ReplicatedStore::max_pages_per_op() const {
  uint32_t n = kExtentPages;
  for (const auto& s : servers_) n = std::min(n, s->store->max_pages_per_op());
  return n;
}

// What the store allocates for `in_flight_bytes` of the pager's ops. Its
// own buffers: a write's payload once, a read's once per copy asked, so
// twice what is in flight; plus the orphans of servers that stopped
// answering (a down server keeps its window full until it answers, and one
// may never answer again: all but one server may be down); never more than
// every server's window; plus the copies. Then the child stores' own, for
// what they hold: each at most a window and the copies.
uint64_t ReplicatedStore::buffer_bytes(uint64_t in_flight_bytes) const {
  const uint64_t n = servers_.size();
  const uint64_t window = kReadWindowBytes + uint64_t{max_pages_per_op()} * kPageSize;
  const uint64_t copies = kCopiesInFlight * kExtentPages * kPageSize;
  const uint64_t own = std::min(2 * in_flight_bytes + (n - 1) * window, n * window) + copies;
  // A child store's need is affine in what it holds: its fixed part each,
  // and the steepest slope for all that they hold together (at most `own`).
  uint64_t fixed = 0, slope = 0;
  for (const auto& s : servers_) {
    const uint64_t base = s->store->buffer_bytes(0);
    fixed += base;
    slope = std::max(slope, s->store->buffer_bytes(window + copies) - base);
  }
  return own + fixed + slope * own / (window + copies);
}

// Every server's store starts at once (each connects within the connect
// timeout); one that cannot start fails the whole, and the others are
// stopped again (their files removed): a server named in the list that is
// not there at start is a configuration error, not an outage.
Status ReplicatedStore::StartServers() {
  std::vector<Status> results(servers_.size());
  std::vector<std::thread> starters;
  for (size_t i = 0; i < servers_.size(); i++) {
    starters.emplace_back([this, &results, i] { results[i] = servers_[i]->store->Start(&servers_[i]->listener); });
  }
  for (std::thread& t : starters) t.join();
  std::string failed;
  for (size_t i = 0; i < servers_.size(); i++) {
    if (!results[i].ok() && failed.empty()) failed = "server " + servers_[i]->name + ": " + results[i].message();
  }
  if (failed.empty()) return Status();
  for (size_t i = 0; i < servers_.size(); i++) {
    if (results[i].ok()) servers_[i]->store->Stop();
  }
  return Status::Error(failed);
}

Status ReplicatedStore::Start(StoreListener* listener) {
  listener_ = listener;
  if (StoreServersBlock* b = listener->servers_stats()) stats_ = b;
  Status s = StartServers();
  if (!s.ok()) return s;
  for (size_t i = 0; i < servers_.size(); i++) {
    Server& srv = *servers_[i];
    srv.stats = &stats_->server[i];
    const size_t n = std::min(srv.name.size(), sizeof srv.stats->name - 1);
    memcpy(srv.stats->name, srv.name.data(), n);
    srv.stats->name[n] = '\0';
  }
  stats_->replicas.store(static_cast<uint32_t>(replicas_), std::memory_order_relaxed);
  stats_->count.store(static_cast<uint32_t>(servers_.size()), std::memory_order_release);
  thread_ = std::thread([this] { Loop(); });
  return Status();
}

void ReplicatedStore::Submit(StoreOp* op) {
  {
    std::lock_guard<std::mutex> l(mu_);
    incoming_.push_back(op);
  }
  cv_.notify_one();
}

// ---- the loop ---------------------------------------------------------------------

void ReplicatedStore::Loop() {
  listener_->OnThreadStart();  // what it allocates (buffers, ops) comes from the reserve
  pthread_setname_np(pthread_self(), "libpager-repl");
  for (;;) {
    const uint64_t now = NowNs();
    TakeInputs(std::min(next_hedge_ns_, now + kTickNs));
    if (Finished()) return;
    const uint64_t t = NowNs();
    CheckHealth(t);
    Hedge(t);
    Dispatch(t);
    Rereplicate(t);
    PublishStats();
  }
}

void ReplicatedStore::TakeInputs(uint64_t deadline_ns) {
  std::vector<StoreOp*> incoming;
  std::vector<ChildOp*> completed;
  std::vector<StateReport> reports;
  {
    std::unique_lock<std::mutex> l(mu_);
    const auto deadline = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline_ns));
    cv_.wait_until(l, deadline, [&] {
      return !incoming_.empty() || !completed_.empty() || !reports_.empty() || (stop_requested_ && !stop_seen_) ||
             children_stopped_;
    });
    incoming.swap(incoming_);
    completed.swap(completed_);
    reports.swap(reports_);
    if (stop_requested_) stop_seen_ = true;
  }
  const uint64_t now = NowNs();
  for (const StateReport& r : reports) HandleReport(r, now);
  for (ChildOp* c : completed) HandleCompleted(c, now);
  for (StoreOp* op : incoming) Accept(op);
}

void ReplicatedStore::HandleReport(const StateReport& r, uint64_t now) {
  Server& s = *servers_[r.server];
  s.health.OnStoreState(r.state, now);
  PAGER_LOG_WARN("server %s: %s%s%s", s.name.c_str(), BackendStateName(r.state), r.why.empty() ? "" : ": ",
                 r.why.c_str());
}

void ReplicatedStore::HandleCompleted(ChildOp* c, uint64_t now) {
  Server& s = *servers_[c->server];
  Unlink(c);
  s.health.OnAnswer(now);
  const bool read = c->purpose == ChildOp::Purpose::kRead || c->purpose == ChildOp::Purpose::kCopyRead;
  const uint64_t bytes = uint64_t{c->io.pages} * kPageSize;
  const uint64_t latency = now > c->issued_ns ? now - c->issued_ns : 0;
  ServerStatsBlock& st = *s.stats;
  (read ? st.reads : st.writes).fetch_add(1, std::memory_order_relaxed);
  if (c->io.error != 0) {
    st.errors.fetch_add(1, std::memory_order_relaxed);
    if (!c->orphan) PAGER_LOG_WARN_EVERY(10, "server %s: %s of %u pages at slot %lu failed: %s", s.name.c_str(),
                         read ? "read" : "write", c->io.pages, static_cast<unsigned long>(c->io.slot),
                         strerror(c->io.error));
  } else {
    (read ? st.bytes_read : st.bytes_written).fetch_add(bytes, std::memory_order_relaxed);
    st.RecordLatency(latency);
    if (read) s.health.OnReadLatency(latency, now);
  }
  if (c->piece != nullptr) {
    if (c->purpose == ChildOp::Purpose::kRead) {
      OnReadDone(c->piece, c);
    } else {
      OnWriteDone(c->piece, c);
    }
  } else if (c->copy != nullptr) {
    OnCopyDone(c->copy, c);
  }
  c->buf->Unref();
  delete c;
}

// ---- health -------------------------------------------------------------------------

void ReplicatedStore::CheckHealth(uint64_t now) {
  const uint64_t timeout_ns = uint64_t{options_.server_timeout_ms} * 1'000'000;
  for (auto& sp : servers_) {
    Server& s = *sp;
    const uint64_t oldest = s.oldest != nullptr ? s.oldest->issued_ns : 0;
    if (!s.health.Update(now, timeout_ns, oldest, s.orphans)) continue;
    if (s.health.down()) {
      MarkDown(s);
    } else {
      PAGER_LOG_WARN("server %s is back: it takes new pages again", s.name.c_str());
      next_copy_scan_ns_ = 0;
    }
  }
  ReportBackendState();
}

// Its copies are dropped wherever another copy exists, and what waited for
// them goes on without them: a read asks the other copy, a write completes
// with the copies it has. Extents whose only copy it holds keep it, and
// their ops wait for it. Copies from or to it are abandoned.
void ReplicatedStore::MarkDown(Server& s) {
  const uint64_t dropped = map_.DropServer(s.index);
  s.stats->downs.fetch_add(1, std::memory_order_relaxed);
  PAGER_LOG_WARN("server %s has not answered for %u ms: marked down; %lu extents lose their copy there%s",
                 s.name.c_str(), options_.server_timeout_ms, static_cast<unsigned long>(dropped),
                 replicas_ > 1 ? " and are copied again from the other" : "");
  for (ChildOp *c = s.oldest, *next; c != nullptr; c = next) {
    next = c->next;
    if (c->copy != nullptr) {
      EndCopy(c->copy, false);
      continue;
    }
    Piece* p = c->piece;
    if (p == nullptr) continue;
    const Extent* x = map_.Find(p->extent);
    if (x != nullptr && x->SlotOf(s.index) == c->slot) continue;  // the only copy: the piece waits for it
    Orphan(c);
    if (!p->is_read()) {
      p->launched &= static_cast<uint8_t>(~(1u << c->slot));
      if (!p->waiting()) SettleWrite(p);
    } else if (!p->done && !p->waiting()) {
      reads_.push_front(p);  // the other copy, at once
    }
  }
  for (size_t i = 0; i < copies_.size();) {
    Copy* copy = copies_[i];
    if (copy->child == nullptr && (copy->from == s.index || copy->to == s.index)) {
      EndCopy(copy, false);  // removes it from copies_
      continue;
    }
    i++;
  }
  next_copy_scan_ns_ = 0;
}

// The pager's view: the store as a whole waits (reconnecting) when some
// pages may have no answering copy: with one copy, any server not ok; with
// two, two of them. With one copy and a swap file lost, writes fail: paused.
void ReplicatedStore::ReportBackendState() {
  int not_ok = 0;
  bool lost = false;
  for (const auto& s : servers_) {
    not_ok += s->health.state() != ServerState::kOk;
    lost |= s->health.file_lost();
  }
  BackendState now = not_ok >= replicas_ ? BackendState::kReconnecting : BackendState::kOk;
  if (lost && replicas_ == 1) now = BackendState::kPaused;
  if (now == reported_) return;
  reported_ = now;
  listener_->OnBackendState(now, now == BackendState::kOk ? "" : std::to_string(not_ok) + " of " +
                                                                   std::to_string(servers_.size()) +
                                                                   " servers not answering");
}

void ReplicatedStore::PublishStats() {
  for (auto& s : servers_) {
    s->stats->state.store(static_cast<uint64_t>(s->health.state()), std::memory_order_relaxed);
    s->stats->extents.store(map_.extents_on(s->index), std::memory_order_relaxed);
  }
  stats_->under_replicated_pages.store(map_.under_replicated_pages(), std::memory_order_relaxed);
}

// ---- stopping --------------------------------------------------------------------------

// Stop: the loop sends what is queued (windows no longer apply) and starts
// no copy; once it has sent its last child op, every child store is stopped
// at once (each finishes or fails what it holds, and removes its file), and
// the loop ends when their completions are in.
void ReplicatedStore::Stop() {
  if (!thread_.joinable()) return;  // never started, or stopped
  {
    std::unique_lock<std::mutex> l(mu_);
    stop_requested_ = true;
    cv_.notify_one();
    drained_cv_.wait(l, [&] { return drained_shared_; });
  }
  std::vector<std::thread> stoppers;
  for (auto& s : servers_) stoppers.emplace_back([&s] { s->store->Stop(); });
  for (std::thread& t : stoppers) t.join();
  {
    std::lock_guard<std::mutex> l(mu_);
    children_stopped_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

bool ReplicatedStore::Finished() {
  if (stop_seen_ && !drained_ && reads_.empty() && writes_.empty()) {
    // No new child op from now on: a piece that would need one fails.
    drained_ = true;
    for (Copy* copy : std::vector<Copy*>(copies_)) {
      if (copy->child == nullptr) EndCopy(copy, false);
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      drained_shared_ = true;
    }
    drained_cv_.notify_all();
  }
  bool done;
  {
    std::lock_guard<std::mutex> l(mu_);
    done = children_stopped_ && completed_.empty();
  }
  if (!done) return false;
  // Every child store has completed all it was given, so nothing should be
  // left; whatever is (a bug) fails rather than hanging the pager.
  while (active_ != nullptr) {
    Parent* p = active_;
    PAGER_LOG_ERROR("replicated store: an op at slot %lu was left at Stop; failing it",
                    static_cast<unsigned long>(p->op->slot));
    // The last FinishPiece frees p: count down instead of reading it again.
    const int pieces = p->pieces;
    int left = p->left;  // its pieces not done yet
    for (int i = 0; i < pieces && left > 0; i++) {
      if (p->piece[i].done) continue;
      left--;
      FinishPiece(&p->piece[i], EIO);
    }
  }
  return true;
}

}  // namespace pager::replicated

namespace pager {

namespace replicated {

std::unique_ptr<Store> MakeReplicatedStore(std::vector<ServerStore> servers, const StoreOptions& options) {
  return std::make_unique<ReplicatedStore>(std::move(servers), options);
}

}  // namespace replicated

Result<std::unique_ptr<Store>> OpenReplicatedStore(const std::vector<std::string>& urls, const StoreOptions& options) {
  if (Status s = CheckServerList(urls, options.replicas); !s.ok()) return s;
  // One random name for the file on every server: the reaper and gc find
  // each server's file by it.
  Result<SwapFileName> name = NewSwapFileName();
  if (!name.ok()) return name.status();
  std::vector<replicated::ServerStore> servers;
  for (size_t i = 0; i < urls.size(); i++) {
    auto store = nfs::OpenNfsStore(urls[i], *name, "s" + std::to_string(i), options.max_bytes,
                                   options.connect_timeout_ms);
    if (!store.ok()) return store.status();
    servers.push_back(replicated::ServerStore{std::move(*store), ServerName(urls[i])});
  }
  return replicated::MakeReplicatedStore(std::move(servers), options);
}

}  // namespace pager

// The pager's thread and the public API.
//
// One thread owns all paging state (core.h) and runs one loop: read uffd
// messages, dispatch each by kind (fault, remove, unmap, remap), take store
// completions and API commands, retry waiting faults, evict. Everything that
// changes a page's state is serialized here, so the races left are between
// the program's threads and the kernel, and those are closed by the uffd
// protocol itself (see evictor.cc).
//
// Events are always fully handled before eviction runs: a REMOVE read in a
// batch must mark its pages empty before the evictor could move them.
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "core.h"
#include "log.h"
#include "pager/pager.h"
#include "pager/units.h"
#include "stats_segment.h"

namespace pager {
namespace {

// The pager's threads block every signal: a handler running on them could
// touch paged memory and fault to the very thread that must serve it.
class SignalsBlocked {
 public:
  SignalsBlocked() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old_);
  }
  ~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

 private:
  sigset_t old_;
};

static_assert(offsetof(Op, io) == 0, "a StoreOp* is its Op*");

}  // namespace

class Pager::Impl : public StoreListener {
 public:
  Impl(const Config& cfg, std::unique_ptr<Store> store) : cfg_(cfg), store_(std::move(store)) {}
  ~Impl() override;

  Status Start();
  Result<void*> Map(size_t bytes);
  Status Unmap(void* addr, size_t bytes);
  Status Adopt(void* addr, size_t bytes);
  Stats GetStats() const;
  void Sync() {
    Command c{Command::Kind::kSync};
    RunCommand(&c);
  }
  void BeginFork() {
    Command c{Command::Kind::kBringHome};
    RunCommand(&c);
  }
  void EndFork() {
    Command c{Command::Kind::kEndFork};
    RunCommand(&c);
  }
  const Config& config() const { return cfg_; }
  std::string Features() const { return features_; }

  // StoreListener, on any thread.
  void OnComplete(StoreOp* op) override;
  void OnBackendState(BackendState state, const std::string& why) override;

 private:
  struct Command {
    enum class Kind { kUnmap, kSync, kBringHome, kEndFork, kShutdown } kind;
    uintptr_t addr = 0;
    size_t len = 0;
    Status result;
    bool done = false;
  };

  void Loop();
  // Waits up to `timeout_ms` for a message or a kick, then reads and
  // dispatches every queued uffd message.
  void WaitAndDispatch(int timeout_ms);
  void Dispatch(const uffd_msg& m, uint64_t now);
  void ServeParked(uint64_t now);
  void RunCommands();
  // Brings every page of every region back into memory; true when done.
  bool BringHome();
  Status RunCommand(Command* c);
  void Kick();
  void DropperLoop();
  void DropAndWait(const std::vector<PagerCore::DropRequest>& reqs);
  Status RegisterRegion(void* addr, size_t len);
  void ForgetRegion(uintptr_t addr, size_t len);

  const Config cfg_;
  // The counters live in the published segment, or here if it could not be
  // made. Set once in Start(), before any thread that writes them exists.
  StatsBlock private_stats_;
  std::unique_ptr<StatsSegment> segment_;
  StatsBlock* stats_ = &private_stats_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<PagerCore> core_;
  const Uffd* uffd_ = nullptr;  // core_'s, valid while core_ lives
  std::string features_;
  UniqueFd wake_fd_;
  std::thread thread_;

  // Completions, from store threads.
  std::mutex done_mu_;
  std::vector<StoreOp*> done_ops_;
  std::vector<PagerCore::DropRequest> done_drops_;

  // API commands, from the program's threads.
  std::mutex cmd_mu_;
  std::condition_variable cmd_cv_;
  std::deque<Command*> commands_;
  Command* home_ = nullptr;  // a kBringHome or kShutdown in progress (loop-owned)

  // Regions, for Map/Unmap validation, stats and shutdown.
  mutable std::mutex region_mu_;
  std::map<uintptr_t, size_t> regions_;

  // WP mode: the thread that calls madvise for the evictor (see frames.h).
  std::thread dropper_;
  std::mutex drop_mu_;
  std::condition_variable drop_cv_;
  std::deque<PagerCore::DropRequest> drops_;
  bool drop_stop_ = false;

  // Loop-owned.
  std::deque<Fault> parked_;
  std::vector<Fault> retry_;
};

Status Pager::Impl::Start() {
  SetLogLevelFromEnv();
  if (sysconf(_SC_PAGESIZE) != static_cast<long>(kPageSize)) {
    return Status::Error("libpager supports 4 KiB pages only (this system has " +
                         std::to_string(sysconf(_SC_PAGESIZE)) + ")");
  }
  Status s = cfg_.Validate();
  if (!s.ok()) return s;
  auto uffd = Uffd::Open(cfg_.disable_features);
  if (!uffd.ok()) return uffd.status();
  const UffdFeatures f = uffd->features();
  if (!f.move && !f.wp) {
    return Status::Error(
        "userfaultfd: this kernel has neither UFFDIO_MOVE (6.8) nor write-protect faults (5.7); "
        "pages cannot be evicted without losing concurrent writes");
  }
  if (!f.event_remove) {
    PAGER_LOG_WARN("userfaultfd: no REMOVE events: MADV_DONTNEED on paged memory may read back stale data");
  }
  std::optional<Uffd> staging;
  if (f.move) {
    auto st = Uffd::OpenForStaging();
    if (!st.ok()) return st.status();
    staging.emplace(std::move(*st));
  }
  auto reserve = Reserve::Create(cfg_.EffectiveReserve());
  if (!reserve.ok()) return reserve.status();
  // Frames for the inactive stage plus every page a write in flight could
  // hand back on failure: a refused write always finds a frame.
  uint64_t limit_pages = cfg_.memory_limit / kPageSize;
  uint64_t frames = static_cast<uint64_t>(static_cast<double>(limit_pages) * cfg_.inactive_ratio) + 64 +
                    4 * kMaxRun + (*reserve)->total_pages();
  if (frames > PageEntry::kMaxAux) frames = PageEntry::kMaxAux;
  auto fr = Frames::Create(static_cast<uint32_t>(frames), staging ? &*staging : nullptr);
  if (!fr.ok()) return fr.status();

  wake_fd_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_.valid()) return Status::FromErrno("eventfd", errno);

  if (cfg_.publish_stats) {
    // Before the store connects: a pager waiting for its server is visible.
    StatsSegment::Info info{cfg_.memory_limit, cfg_.EffectiveReserve(),
                            store_ ? store_->Describe() : cfg_.EffectiveSwap(), f.ToString()};
    auto seg = StatsSegment::Create(cfg_.stats_dir, info);
    if (seg.ok()) {
      segment_ = std::move(*seg);
      stats_ = segment_->block();
    } else {
      PAGER_LOG_WARN("stats not published (pagerctl will not see this process): %s",
                     seg.status().message().c_str());
    }
  }

  SignalsBlocked blocked;  // inherited by the store's threads and ours
  if (!store_) {
    auto st = OpenStore(cfg_.EffectiveSwap(), cfg_.swap_max, cfg_.connect_timeout_ms);
    if (!st.ok()) return st.status();
    store_ = std::move(*st);
  }
  s = store_->Start(this);
  if (!s.ok()) return s;

  features_ = f.ToString();
  core_ = std::make_unique<PagerCore>(cfg_, std::move(*uffd), std::move(staging), std::move(*fr),
                                      std::move(*reserve), store_.get(), stats_);
  uffd_ = &core_->uffd();
  PAGER_LOG_INFO("limit %s, reserve %s, store %s, features %s", FormatSize(cfg_.memory_limit).c_str(),
                 FormatSize(cfg_.EffectiveReserve()).c_str(), store_->Describe().c_str(), features_.c_str());
  thread_ = std::thread([this] { Loop(); });
  if (!f.move) dropper_ = std::thread([this] { DropperLoop(); });
  return Status();
}

Pager::Impl::~Impl() {
  if (thread_.joinable()) {
    Command c{Command::Kind::kShutdown};
    RunCommand(&c);
    thread_.join();
  }
  if (dropper_.joinable()) {
    {
      std::lock_guard<std::mutex> l(drop_mu_);
      drop_stop_ = true;
    }
    drop_cv_.notify_all();
    dropper_.join();
  }
  if (store_) store_->Stop();
  // core_ closes the uffds: memory still mapped stays, as plain memory.
}

void Pager::Impl::Kick() {
  uint64_t one = 1;
  ssize_t r = write(wake_fd_.get(), &one, sizeof one);
  (void)r;
}

void Pager::Impl::OnComplete(StoreOp* op) {
  {
    std::lock_guard<std::mutex> l(done_mu_);
    done_ops_.push_back(op);
  }
  Kick();
}

void Pager::Impl::OnBackendState(BackendState state, const std::string& why) {
  stats_->Set(stats_->backend, static_cast<uint64_t>(state));
  if (state == BackendState::kOk) {
    PAGER_LOG_WARN("store: %s", why.empty() ? "back to normal" : why.c_str());
  } else {
    PAGER_LOG_WARN("store %s: %s", BackendStateName(state), why.c_str());
  }
  Kick();
}

Status Pager::Impl::RunCommand(Command* c) {
  std::unique_lock<std::mutex> l(cmd_mu_);
  commands_.push_back(c);
  Kick();
  cmd_cv_.wait(l, [c] { return c->done; });
  return c->result;
}

void Pager::Impl::Loop() {
  pthread_setname_np(pthread_self(), "libpager");
  ReserveArena::EnterPagerThread();
  bool more = false;
  for (;;) {
    int timeout = -1;
    if (more) {
      timeout = 0;
    } else if (!parked_.empty() || !retry_.empty() || core_->ops_in_flight() > 0 || home_) {
      timeout = 10;
    } else if (core_->eviction_paused()) {
      timeout = 100;
    }
    WaitAndDispatch(timeout);
    core_->RetryReads();
    std::vector<Fault> retry = std::move(retry_);
    retry_.clear();
    for (Fault& f : retry) {
      auto o = core_->ServeFault(f);
      if (o == PagerCore::Outcome::kWait) parked_.push_back(f);
      if (o == PagerCore::Outcome::kRetry) retry_.push_back(f);
    }

    std::vector<StoreOp*> ops;
    std::vector<PagerCore::DropRequest> drops;
    {
      std::lock_guard<std::mutex> l(done_mu_);
      ops.swap(done_ops_);
      drops.swap(done_drops_);
    }
    for (StoreOp* sop : ops) {
      Op* op = reinterpret_cast<Op*>(sop);
      if (sop->kind == StoreOp::Kind::kRead) {
        stats_->Add(stats_->bytes_read, uint64_t{sop->pages} * kPageSize);
        core_->CompleteRead(op);
      } else {
        if (sop->error == 0) stats_->Add(stats_->bytes_written, uint64_t{sop->pages} * kPageSize);
        core_->CompleteWrite(op);
      }
    }
    for (const auto& d : drops) core_->CompleteDrop(d.first, d.pages);

    RunCommands();
    ServeParked(NowNs());
    more = core_->Evict(512);
    if (auto reqs = core_->TakeDropRequests(); !reqs.empty()) DropAndWait(reqs);
    core_->frames().Flush();
    core_->PublishStats();
    if (home_ && BringHome()) break;
  }
}

void Pager::Impl::WaitAndDispatch(int timeout_ms) {
  pollfd fds[2] = {{uffd_->fd(), POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
  poll(fds, 2, timeout_ms);
  if (fds[1].revents & POLLIN) {
    uint64_t v;
    ssize_t r = read(wake_fd_.get(), &v, sizeof v);
    (void)r;
  }
  const uint64_t now = NowNs();
  uffd_msg msgs[64];
  for (;;) {
    int n = uffd_->Read(msgs, 64);
    for (int i = 0; i < n; i++) Dispatch(msgs[i], now);
    if (n < 64) break;
  }
}

void Pager::Impl::Dispatch(const uffd_msg& m, uint64_t now) {
  switch (m.event) {
    case UFFD_EVENT_PAGEFAULT: {
      Fault f;
      f.addr = m.arg.pagefault.address;
      f.flags = m.arg.pagefault.flags;
      f.tid = m.arg.pagefault.feat.ptid;
      f.t0_ns = now;
      // Behind faults already waiting for memory: first come, first served.
      if (!parked_.empty()) {
        parked_.push_back(f);
        break;
      }
      auto o = core_->ServeFault(f);
      if (o == PagerCore::Outcome::kWait) parked_.push_back(f);
      if (o == PagerCore::Outcome::kRetry) retry_.push_back(f);
      break;
    }
    case UFFD_EVENT_REMOVE: {
      uint64_t first = PageTable::PageOf(m.arg.remove.start);
      uint64_t pages = (m.arg.remove.end - m.arg.remove.start) / kPageSize;
      if (!core_->TakeOwnDrop(first, pages)) core_->Discard(first, pages);
      break;
    }
    case UFFD_EVENT_UNMAP: {
      uint64_t first = PageTable::PageOf(m.arg.remove.start);
      uint64_t pages = (m.arg.remove.end - m.arg.remove.start) / kPageSize;
      core_->Discard(first, pages);
      core_->table().Trim(first, pages);
      ForgetRegion(m.arg.remove.start, m.arg.remove.end - m.arg.remove.start);
      break;
    }
    case UFFD_EVENT_REMAP: {
      uint64_t len = m.arg.remap.len;
      core_->Relocate(PageTable::PageOf(m.arg.remap.from), PageTable::PageOf(m.arg.remap.to), len / kPageSize);
      ForgetRegion(m.arg.remap.from, len);
      std::lock_guard<std::mutex> l(region_mu_);
      regions_[m.arg.remap.to] = len;
      break;
    }
    case UFFD_EVENT_FORK:
      // Not requested; a child's uffd would need a pager of its own.
      close(static_cast<int>(m.arg.fork.ufd));
      break;
    default:
      PAGER_LOG_WARN("userfaultfd: unexpected event %u", m.event);
  }
}

void Pager::Impl::ServeParked(uint64_t now) {
  while (!parked_.empty()) {
    Fault& f = parked_.front();
    auto o = core_->ServeFault(f);
    if (o == PagerCore::Outcome::kWait) break;
    if (f.throttled) stats_->Add(stats_->throttled_ns, now - f.parked_ns);
    if (o == PagerCore::Outcome::kRetry) retry_.push_back(f);
    parked_.pop_front();
  }
  core_->waiting_for_memory = !parked_.empty();
}

void Pager::Impl::RunCommands() {
  std::unique_lock<std::mutex> l(cmd_mu_);
  while (!commands_.empty()) {
    Command* c = commands_.front();
    commands_.pop_front();
    if (c->kind == Command::Kind::kShutdown || c->kind == Command::Kind::kBringHome) {
      home_ = c;
      core_->set_draining(true);
      continue;
    }
    if (c->kind == Command::Kind::kEndFork) {
      core_->set_draining(false);
      c->done = true;
      cmd_cv_.notify_all();
      continue;
    }
    if (c->kind == Command::Kind::kSync) {
      core_->PublishStats();
      c->done = true;
      cmd_cv_.notify_all();
      continue;
    }
    // kUnmap: unregister first, so munmap raises no event that this very
    // thread would have to read before munmap returns.
    l.unlock();
    Status s = uffd_->Unregister(reinterpret_cast<void*>(c->addr), c->len);
    if (s.ok()) {
      uint64_t first = PageTable::PageOf(c->addr), pages = c->len / kPageSize;
      core_->Discard(first, pages);
      core_->table().Trim(first, pages);
      if (munmap(reinterpret_cast<void*>(c->addr), c->len) != 0) s = Status::FromErrno("munmap", errno);
      ForgetRegion(c->addr, c->len);
    }
    l.lock();
    c->result = s;
    c->done = true;
    cmd_cv_.notify_all();
  }
}

bool Pager::Impl::BringHome() {
  std::map<uintptr_t, size_t> regions;
  {
    std::lock_guard<std::mutex> l(region_mu_);
    regions = regions_;
  }
  bool done = true;
  for (const auto& [addr, len] : regions) {
    if (!core_->SwapInRange(PageTable::PageOf(addr), len / kPageSize)) done = false;
  }
  if (!done || core_->ops_in_flight() > 0) return false;
  const bool shutdown = home_->kind == Command::Kind::kShutdown;
  if (shutdown) {
    for (const auto& [addr, len] : regions) uffd_->Unregister(reinterpret_cast<void*>(addr), len);
  }
  std::lock_guard<std::mutex> l(cmd_mu_);
  home_->done = true;
  home_ = nullptr;
  cmd_cv_.notify_all();
  return shutdown;
}

// WP mode: the evicted runs stay mapped (write-protected) until dropped, and
// while mapped, reads of them raise no fault: the inactive stage would learn
// nothing of their use. So the loop waits for its drops, reading the REMOVE
// events they raise (and any other message) meanwhile.
void Pager::Impl::DropAndWait(const std::vector<PagerCore::DropRequest>& reqs) {
  {
    std::lock_guard<std::mutex> l(drop_mu_);
    for (const auto& r : reqs) drops_.push_back(r);
  }
  drop_cv_.notify_one();
  size_t left = reqs.size();
  while (left > 0) {
    WaitAndDispatch(100);
    std::vector<PagerCore::DropRequest> done;
    {
      std::lock_guard<std::mutex> l(done_mu_);
      done.swap(done_drops_);
    }
    for (const auto& d : done) core_->CompleteDrop(d.first, d.pages);
    left -= std::min(left, done.size());
  }
  // The loop's other work (completions woken by the eventfd) is picked up on
  // its next turn.
  Kick();
}

void Pager::Impl::DropperLoop() {
  pthread_setname_np(pthread_self(), "libpager-drop");
  ReserveArena::EnterPagerThread();
  std::unique_lock<std::mutex> l(drop_mu_);
  for (;;) {
    drop_cv_.wait(l, [this] { return drop_stop_ || !drops_.empty(); });
    if (drops_.empty()) return;
    PagerCore::DropRequest r = drops_.front();
    drops_.pop_front();
    l.unlock();
    // Blocks until the pager thread reads the REMOVE event this raises.
    madvise(reinterpret_cast<void*>(PageTable::AddrOf(r.first)), r.pages * kPageSize, MADV_DONTNEED);
    {
      std::lock_guard<std::mutex> d(done_mu_);
      done_drops_.push_back(r);
    }
    Kick();
    l.lock();
  }
}

Status Pager::Impl::RegisterRegion(void* addr, size_t len) {
  // Paging works on 4 KiB pages: a huge page would be one 2 MiB unit to the
  // kernel and unmovable by UFFDIO_MOVE.
  madvise(addr, len, MADV_NOHUGEPAGE);
  Status s = uffd_->Register(addr, len);
  if (!s.ok()) return s;
  std::lock_guard<std::mutex> l(region_mu_);
  regions_[reinterpret_cast<uintptr_t>(addr)] = len;
  stats_->Add(stats_->mapped_bytes, len);
  return Status();
}

void Pager::Impl::ForgetRegion(uintptr_t addr, size_t len) {
  std::lock_guard<std::mutex> l(region_mu_);
  uintptr_t end = addr + len;
  // Trim every region overlapping [addr, end), splitting one that contains it.
  auto it = regions_.upper_bound(addr);
  if (it != regions_.begin()) --it;
  while (it != regions_.end() && it->first < end) {
    uintptr_t rs = it->first, re = it->first + it->second;
    if (re <= addr) {
      ++it;
      continue;
    }
    it = regions_.erase(it);
    uint64_t removed = std::min(re, end) - std::max(rs, addr);
    stats_->mapped_bytes.fetch_sub(removed, std::memory_order_relaxed);
    if (rs < addr) regions_[rs] = addr - rs;
    if (re > end) regions_[end] = re - end;
  }
}

Result<void*> Pager::Impl::Map(size_t bytes) {
  if (bytes == 0) return Status::Error("Map: size must be above 0");
  size_t len = (bytes + kPageSize - 1) / kPageSize * kPageSize;
  Mapping m = Mapping::Anonymous(len, MAP_NORESERVE);
  if (!m.valid()) return Status::FromErrno("Map: mmap of " + FormatSize(len), errno);
  Status s = RegisterRegion(m.data(), len);
  if (!s.ok()) return Status::Error("Map: " + s.message());
  void* p = m.data();
  m.release();
  return p;
}

Status Pager::Impl::Adopt(void* addr, size_t bytes) {
  if (reinterpret_cast<uintptr_t>(addr) % kPageSize != 0 || bytes % kPageSize != 0 || bytes == 0) {
    return Status::Error("Adopt: address and size must be page-aligned and non-zero");
  }
  return RegisterRegion(addr, bytes);
}

Status Pager::Impl::Unmap(void* addr, size_t bytes) {
  uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  size_t len = (bytes + kPageSize - 1) / kPageSize * kPageSize;
  if (a % kPageSize != 0 || len == 0) return Status::Error("Unmap: address must be page-aligned, size above 0");
  {
    std::lock_guard<std::mutex> l(region_mu_);
    auto it = regions_.upper_bound(a);
    if (it == regions_.begin() || (--it, it->first + it->second < a + len)) {
      return Status::Error("Unmap: [" + std::to_string(a) + ", +" + std::to_string(len) +
                           ") is not inside a paged region");
    }
  }
  Command c{Command::Kind::kUnmap, a, len};
  return RunCommand(&c);
}

Stats Pager::Impl::GetStats() const { return ReadStatsBlock(*stats_); }

// ---- Pager ----------------------------------------------------------------

Pager::Pager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pager::~Pager() = default;

Result<std::unique_ptr<Pager>> Pager::Create(const Config& config) { return Create(config, nullptr); }

Result<std::unique_ptr<Pager>> Pager::Create(const Config& config, std::unique_ptr<Store> store) {
  auto impl = std::make_unique<Impl>(config, std::move(store));
  Status s = impl->Start();
  if (!s.ok()) return s;
  return std::unique_ptr<Pager>(new Pager(std::move(impl)));
}

Result<void*> Pager::Map(size_t bytes) { return impl_->Map(bytes); }
Status Pager::Unmap(void* addr, size_t bytes) { return impl_->Unmap(addr, bytes); }
Status Pager::Adopt(void* addr, size_t bytes) { return impl_->Adopt(addr, bytes); }
Stats Pager::GetStats() const { return impl_->GetStats(); }
void Pager::Sync() { impl_->Sync(); }
void Pager::BeginFork() { impl_->BeginFork(); }
void Pager::EndFork() { impl_->EndFork(); }
const Config& Pager::config() const { return impl_->config(); }
std::string Pager::Features() const { return impl_->Features(); }

}  // namespace pager

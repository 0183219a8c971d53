// The pager's thread and the public API.
//
// One thread owns all paging state (core.h) and runs one loop: read uffd
// messages, dispatch each by kind (fault, remove, unmap, remap), take store
// completions and API commands, retry waiting faults, evict. Everything that
// changes a page's state is serialized here, so the races left are between
// the program's threads and the kernel, and those are closed by the uffd
// protocol itself (see evictor.cc).
//
// Events are always fully handled before eviction and before commands: see
// Loop().
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "core.h"
#include "mailbox.h"
#include "log.h"
#include "pager/pager.h"
#include "pager/units.h"
#include "stats_segment.h"
#include "test_hooks.h"

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
  Status Adopt(void* addr, size_t bytes, bool fresh);
  Status Pin(const void* addr, size_t bytes, Mailbox::Kind kind);
  Status Unpin(const void* addr, size_t bytes);
  Status PinThisThread();
  Stats GetStats() const;
  void Sync() { (void)Call(Mailbox::Kind::kSync); }
  void BeginFork() { (void)Call(Mailbox::Kind::kBeginFork); }
  void EndFork() { (void)Call(Mailbox::Kind::kEndFork); }
  const Config& config() const { return cfg_; }
  std::string Features() const { return features_; }

  // StoreListener, on any thread.
  void OnComplete(StoreOp* op) override;
  void OnBackendState(BackendState state, const std::string& why) override;
  void OnThreadStart() override;
  StoreServersBlock* servers_stats() override { return &stats_->servers; }
  // A finished op or seal batch, from any thread, to the loop.
  void Post(Op* op);

 private:
  void Loop();
  // Waits up to `timeout_ms` for a message or a kick, then reads and
  // dispatches every queued uffd message.
  void WaitAndDispatch(int timeout_ms);
  void Dispatch(const uffd_msg& m, uint64_t now);
  void Serve(Fault& f);
  void ServeWaiters(uint64_t now);
  void RunCommands();
  // Completes the fork and shutdown commands once every page is home; true
  // when the pager thread must stop.
  bool CompleteHoming(uint64_t now);
  // A request to the pager thread, from a program thread (mailbox.h).
  Status Call(Mailbox::Kind kind, uintptr_t addr = 0, uint64_t len = 0, uint64_t* out = nullptr);
  void Kick();

 public:
  PageState TEST_PageState(const void* addr) {
    uint64_t out = 0;
    (void)Call(Mailbox::Kind::kPageState, reinterpret_cast<uintptr_t>(addr), 0, &out);
    return static_cast<PageState>(out);
  }
  void TEST_Stall(uint32_t ms, std::atomic<int>* started) {
    (void)Call(Mailbox::Kind::kTestStall, reinterpret_cast<uintptr_t>(started), ms);
  }
  int64_t TEST_PageSlot(const void* addr) {
    uint64_t out = 0;
    (void)Call(Mailbox::Kind::kPageSlot, reinterpret_cast<uintptr_t>(addr), 0, &out);
    return static_cast<int64_t>(out);
  }

 private:

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

  Mailbox mailbox_;  // requests from the program's threads

  // Loop-owned.
  std::deque<Fault> mem_waiters_;  // faults that need a frame, first come first served
  std::vector<Fault> retry_;       // faults that met a changing mm
  std::vector<Mailbox::Request*> homing_;  // BeginFork and shutdown, waiting for every page
  uint64_t homing_since_ns_ = 0;
  uint64_t homing_logged_ns_ = 0;
  int fork_holds_ = 0;             // BeginFork calls not yet ended
  bool shutting_down_ = false;
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
  if (!f.event_remove) {
    PAGER_LOG_WARN("userfaultfd: no REMOVE events: MADV_DONTNEED on paged memory may read back stale data");
  }
  // The configured location (an unstarted store has no file to describe
  // yet); a store built by a caller who configured none describes itself.
  const std::string where = store_ && cfg_.swap.empty() ? store_->Describe() : cfg_.EffectiveSwap();
  if (!store_) {
    auto st = OpenStore(cfg_.EffectiveSwap(), cfg_.store_options());
    if (!st.ok()) return st.status();
    store_ = std::move(*st);
  }
  // Everything in flight lives in the staging pages: the store's buffers for
  // as much again go in the arena.
  const uint64_t reserve_bytes = cfg_.EffectiveReserve();
  auto reserve = Reserve::Create(reserve_bytes, Reserve::ArenaBytes(reserve_bytes, store_->buffer_bytes(reserve_bytes)));
  if (!reserve.ok()) return reserve.status();
  // Frames for the inactive stage plus every page a write in flight could
  // hand back on failure: a refused write always finds a frame.
  uint64_t limit_pages = cfg_.memory_limit / kPageSize;
  uint64_t frames = static_cast<uint64_t>(static_cast<double>(limit_pages) * cfg_.inactive_ratio) + 64 +
                    4 * kMaxRun + (*reserve)->total_pages();
  if (frames > PageEntry::kMaxAux) frames = PageEntry::kMaxAux;
  auto fr = Frames::Create(static_cast<uint32_t>(frames));
  if (!fr.ok()) return fr.status();

  wake_fd_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_.valid()) return Status::FromErrno("eventfd", errno);

  if (cfg_.publish_stats) {
    // Before the store connects: a pager waiting for its server is visible.
    StatsSegment::Info info{cfg_.memory_limit, reserve_bytes, where, f.ToString()};
    auto seg = StatsSegment::Create(cfg_.stats_dir, info);
    if (seg.ok()) {
      segment_ = std::move(*seg);
      stats_ = segment_->block();
    } else {
      PAGER_LOG_WARN("stats not published (pagerctl will not see this process): %s",
                     seg.status().message().c_str());
    }
  }

  auto codec = PageCodec::Create(cfg_.Encrypting());
  if (!codec.ok()) return codec.status();
  features_ = f.ToString();
  // The core exists before the store starts: the store's threads bind to its
  // reserve arena (OnThreadStart) as they start.
  core_ = std::make_unique<PagerCore>(cfg_, std::move(*uffd), std::move(*fr), std::move(*reserve),
                                      std::move(*codec), store_.get(), stats_);
  uffd_ = &core_->uffd();

  SignalsBlocked blocked;  // inherited by the store's threads and ours
  core_->StartWorkers([this](Op* batch) { Post(batch); });
  s = store_->Start(this);
  if (!s.ok()) return s;

  PAGER_LOG_INFO("limit %s, reserve %s, store %s, features %s", FormatSize(cfg_.memory_limit).c_str(),
                 FormatSize(cfg_.EffectiveReserve()).c_str(), store_->Describe().c_str(), features_.c_str());
  thread_ = std::thread([this] { Loop(); });
  return Status();
}

Pager::Impl::~Impl() {
  if (thread_.joinable()) {
    (void)Call(Mailbox::Kind::kShutdown);
    thread_.join();
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
  // Opening a read's pages (checksums, or decryption and tags) happens here,
  // on the store's thread: not on the pager thread's critical path.
  if (op->kind == StoreOp::Kind::kRead) core_->OpenRead(reinterpret_cast<Op*>(op));
  Post(reinterpret_cast<Op*>(op));
}

void Pager::Impl::Post(Op* op) {
  {
    std::lock_guard<std::mutex> l(done_mu_);
    done_ops_.push_back(&op->io);
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

void Pager::Impl::OnThreadStart() {
  ReserveArena::EnterThread(core_->arena());
}

Status Pager::Impl::Call(Mailbox::Kind kind, uintptr_t addr, uint64_t len, uint64_t* out) {
  Mailbox::Request* r = mailbox_.Claim();
  r->kind = kind;
  r->addr = addr;
  r->len = len;
  mailbox_.Post(r);
  Kick();
  Status result = mailbox_.Wait(r);
  if (out != nullptr) *out = r->out;
  mailbox_.Release(r);
  return result;
}

void Pager::Impl::Loop() {
  pthread_setname_np(pthread_self(), "libpager");
  ReserveArena::EnterThread(core_->arena());
  bool more = false;
  for (;;) {
    int timeout = -1;
    if (more) {
      timeout = 0;
    } else if (!mem_waiters_.empty() || !retry_.empty() || core_->ops_in_flight() > 0 || !homing_.empty() ||
               core_->holding()) {
      timeout = 10;
    } else if (core_->eviction_paused()) {
      timeout = 100;
    }
    if (uint64_t at = core_->next_evict_ns(); at != 0) {
      const uint64_t now = NowNs();
      const int wait_ms = at > now ? static_cast<int>((at - now) / 1'000'000 + 1) : 0;
      if (timeout < 0 || wait_ms < timeout) timeout = wait_ms;
    }
    // Events first, every turn: a REMOVE read in a batch must mark its pages
    // empty before the evictor could move them, and an UNMAP must be handled
    // before a command adopts memory at the same address (commands come
    // after munmap returned, which is after its event was read: regions.h).
    WaitAndDispatch(timeout);
    core_->RetryReads();
    std::vector<Fault> retry = std::move(retry_);
    retry_.clear();
    for (Fault& f : retry) Serve(f);

    std::vector<StoreOp*> ops;
    {
      std::lock_guard<std::mutex> l(done_mu_);
      ops.swap(done_ops_);
    }
    for (StoreOp* sop : ops) {
      Op* op = reinterpret_cast<Op*>(sop);
      if (op->stage == Op::Stage::kSealing) {
        core_->CompleteSeal(op);
      } else if (sop->kind == StoreOp::Kind::kRead) {
        stats_->Add(stats_->bytes_read, uint64_t{sop->pages} * kPageSize);
        core_->CompleteRead(op);
      } else {
        if (sop->error == 0) stats_->Add(stats_->bytes_written, uint64_t{sop->pages} * kPageSize);
        core_->CompleteWrite(op);
      }
    }

    RunCommands();
    const uint64_t now = NowNs();
    if (core_->holding()) core_->ExpireHeld(now);
    ServeWaiters(now);
    more = core_->Evict(512);
    if (mem_waiters_.empty()) core_->ResumePrefetch();
    core_->frames().Flush();
    core_->PublishStats();
    if (!homing_.empty() && CompleteHoming(now)) break;
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
      core_->NoteFaultAddress(f.addr);
      Serve(f);
      break;
    }
    case UFFD_EVENT_REMOVE:
      core_->HandleRemove(m.arg.remove.start, m.arg.remove.end);
      break;
    case UFFD_EVENT_UNMAP:
      core_->HandleUnmap(m.arg.remove.start, m.arg.remove.end);
      break;
    case UFFD_EVENT_REMAP:
      core_->HandleRemap(m.arg.remap.from, m.arg.remap.to, m.arg.remap.len);
      break;
    case UFFD_EVENT_FORK:
      // Not requested; a child's uffd would need a pager of its own.
      close(static_cast<int>(m.arg.fork.ufd));
      break;
    default:
      PAGER_LOG_WARN("userfaultfd: unexpected event %u", m.event);
  }
}

// Faults that need a frame wait their turn behind those already waiting for
// memory (first come, first served); the others never wait, so a parked
// first touch cannot hold up a re-touch of an inactive page, nor an NFS
// outage a thread that only touches memory still in memory.
void Pager::Impl::Serve(Fault& f) {
  if (!mem_waiters_.empty() && core_->NeedsFrame(f.addr)) {
    mem_waiters_.push_back(f);
    return;
  }
  switch (core_->ServeFault(f)) {
    case PagerCore::Outcome::kDone: break;
    case PagerCore::Outcome::kWait: mem_waiters_.push_back(f); break;
    case PagerCore::Outcome::kRetry: retry_.push_back(f); break;
  }
  core_->waiting_for_memory = !mem_waiters_.empty();
}

void Pager::Impl::ServeWaiters(uint64_t now) {
  while (!mem_waiters_.empty()) {
    Fault& f = mem_waiters_.front();
    auto o = core_->ServeFault(f);
    if (o == PagerCore::Outcome::kWait) break;
    if (f.throttled) stats_->Add(stats_->throttled_ns, now - f.parked_ns);
    if (o == PagerCore::Outcome::kRetry) retry_.push_back(f);
    mem_waiters_.pop_front();
  }
  core_->waiting_for_memory = !mem_waiters_.empty();
}

void Pager::Impl::RunCommands() {
  for (Mailbox::Request *r = mailbox_.TakeAll(), *next; r != nullptr; r = next) {
    next = Mailbox::Next(r);  // r is the caller's again once completed
    switch (r->kind) {
      case Mailbox::Kind::kAdopt:
      case Mailbox::Kind::kAdoptNew:
        mailbox_.Complete(r, core_->AddRegion(r->addr, r->len, r->kind == Mailbox::Kind::kAdoptNew));
        break;
      case Mailbox::Kind::kUnmap:
        mailbox_.Complete(r, core_->UnmapRegion(r->addr, r->len));
        break;
      case Mailbox::Kind::kSync:
        core_->PublishStats();
        mailbox_.Complete(r, Status());
        break;
      case Mailbox::Kind::kPageState:
      case Mailbox::Kind::kPageSlot: {
        const PageEntry* e = core_->table().Find(PageTable::PageOf(r->addr));
        if (r->kind == Mailbox::Kind::kPageState) {
          r->out = static_cast<uint64_t>(e != nullptr ? e->state() : PageState::kEmpty);
        } else {
          r->out = e != nullptr && e->has_slot() ? e->slot() : ~uint64_t{0};
        }
        mailbox_.Complete(r, Status());
        break;
      }
      case Mailbox::Kind::kPin:
      case Mailbox::Kind::kPinIfPaged:
      case Mailbox::Kind::kUnpin: {
        Result<uint64_t> away = core_->SetPinned(r->addr, r->len, r->kind != Mailbox::Kind::kUnpin);
        r->out = away.ok() ? *away : 0;
        mailbox_.Complete(r, away.ok() || r->kind == Mailbox::Kind::kPinIfPaged ? Status() : away.status());
        break;
      }
      case Mailbox::Kind::kTestStall:
        reinterpret_cast<std::atomic<int>*>(r->addr)->store(1);
        usleep(static_cast<useconds_t>(r->len * 1000));
        mailbox_.Complete(r, Status());
        break;
      case Mailbox::Kind::kBeginFork:
      case Mailbox::Kind::kShutdown:
        if (r->kind == Mailbox::Kind::kBeginFork) {
          fork_holds_++;
        } else {
          shutting_down_ = true;
        }
        if (homing_.empty()) homing_since_ns_ = NowNs();
        homing_.push_back(r);
        core_->set_draining(true);
        break;
      case Mailbox::Kind::kEndFork:
        if (fork_holds_ > 0) fork_holds_--;
        core_->set_draining(fork_holds_ > 0 || shutting_down_);
        mailbox_.Complete(r, Status());
        break;
    }
  }
}

bool Pager::Impl::CompleteHoming(uint64_t now) {
  if (!core_->BringHome()) {
    // Hard-mount semantics: with the server away, pages wait for it, as the
    // program's own faults would (docs/nfs.md). Say so, every 10 s.
    if (now - homing_since_ns_ > 10'000'000'000ull && now - homing_logged_ns_ > 10'000'000'000ull) {
      homing_logged_ns_ = now;
      PAGER_LOG_WARN("bringing pages home: %llu still away, store %s",
                     static_cast<unsigned long long>(core_->pages_away()),
                     BackendStateName(static_cast<BackendState>(stats_->backend.load())));
    }
    return false;
  }
  for (Mailbox::Request* r : homing_) mailbox_.Complete(r, Status());
  homing_.clear();
  if (!shutting_down_) return false;
  core_->UnregisterAll();
  return true;
}

Result<void*> Pager::Impl::Map(size_t bytes) {
  if (bytes == 0) return Status::Error("Map: size must be above 0");
  size_t len = (bytes + kPageSize - 1) / kPageSize * kPageSize;
  Mapping m = Mapping::Anonymous(len, MAP_NORESERVE);
  if (!m.valid()) return Status::FromErrno("Map: mmap of " + FormatSize(len), errno);
  Status s = Call(Mailbox::Kind::kAdoptNew, reinterpret_cast<uintptr_t>(m.data()), len);
  if (!s.ok()) return Status::Error("Map: " + s.message());
  void* p = m.data();
  m.release();
  return p;
}

Status Pager::Impl::Adopt(void* addr, size_t bytes, bool fresh) {
  if (reinterpret_cast<uintptr_t>(addr) % kPageSize != 0 || bytes % kPageSize != 0 || bytes == 0) {
    return Status::Error(std::string(fresh ? "AdoptNew" : "Adopt") +
                         ": address and size must be page-aligned and non-zero");
  }
  return Call(fresh ? Mailbox::Kind::kAdoptNew : Mailbox::Kind::kAdopt, reinterpret_cast<uintptr_t>(addr), bytes);
}

Status Pager::Impl::Unmap(void* addr, size_t bytes) {
  uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  size_t len = (bytes + kPageSize - 1) / kPageSize * kPageSize;
  if (a % kPageSize != 0 || len == 0) return Status::Error("Unmap: address must be page-aligned, size above 0");
  return Call(Mailbox::Kind::kUnmap, a, len);
}

namespace {
// The pages spanning [addr, addr+bytes).
std::pair<uintptr_t, uint64_t> PageSpan(const void* addr, size_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr) & ~(kPageSize - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(addr) + bytes + kPageSize - 1) & ~(kPageSize - 1);
  return {a, end - a};
}
}  // namespace

Status Pager::Impl::Pin(const void* addr, size_t bytes, Mailbox::Kind kind) {
  if (bytes == 0) return Status::Error("Pin: size must be above 0");
  const auto [a, len] = PageSpan(addr, bytes);
  // The pager pins only pages in memory: pin, touch what was away, and pin
  // again (a page can be evicted between the touch and the pin: rarely, the
  // touch made it recent). Nothing is touched before the pager has said the
  // range is paged, and only bytes inside [addr, addr+bytes).
  const uintptr_t first = reinterpret_cast<uintptr_t>(addr);
  for (int attempt = 0; attempt < 100; attempt++) {
    uint64_t away = 0;
    Status s = Call(kind, a, len, &away);
    if (!s.ok() || away == 0) return s;
    // Every page of the span starts below addr+bytes, so max(page, first) is a
    // byte of the caller's range.
    for (uintptr_t p = a; p < a + len; p += kPageSize) {
      (void)*reinterpret_cast<const volatile char*>(std::max(p, first));
    }
  }
  return Status::Error("Pin: pages kept being evicted before they could be pinned; is the limit far too small?");
}

Status Pager::Impl::Unpin(const void* addr, size_t bytes) {
  if (bytes == 0) return Status::Error("Unpin: size must be above 0");
  const auto [a, len] = PageSpan(addr, bytes);
  return Call(Mailbox::Kind::kUnpin, a, len);
}

Status Pager::Impl::PinThisThread() {
  // What the kernel writes or reads of this thread when it exits: the word
  // it clears for pthread_join (CLONE_CHILD_CLEARTID) and the robust-futex
  // list. glibc and musl keep both in the thread's control block, at the top
  // of its stack. Exact addresses where the kernel tells them
  // (PR_GET_TID_ADDRESS needs CONFIG_CHECKPOINT_RESTORE), else the control
  // block at pthread_self().
  const void* spots[2] = {reinterpret_cast<const void*>(pthread_self()), nullptr};
  int* tid_word = nullptr;
  if (prctl(PR_GET_TID_ADDRESS, &tid_word, 0, 0, 0) == 0 && tid_word != nullptr) spots[0] = tid_word;
  void* head = nullptr;
  size_t head_len = 0;
  if (syscall(SYS_get_robust_list, 0, &head, &head_len) == 0 && head != nullptr) spots[1] = head;
  for (const void* p : spots) {
    if (p == nullptr) continue;
    // kPinIfPaged: a control block outside the paged regions needs nothing.
    Status s = Pin(p, sizeof(uint64_t) * 3, Mailbox::Kind::kPinIfPaged);
    if (!s.ok()) return s;
  }
  return Status();
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
PageState PagerTestPeer::StateOf(Pager& p, const void* addr) { return p.impl_->TEST_PageState(addr); }
int64_t PagerTestPeer::SlotOf(Pager& p, const void* addr) { return p.impl_->TEST_PageSlot(addr); }
void PagerTestPeer::Stall(Pager& p, uint32_t ms, std::atomic<int>* started) { p.impl_->TEST_Stall(ms, started); }
Status Pager::Unmap(void* addr, size_t bytes) { return impl_->Unmap(addr, bytes); }
Status Pager::Adopt(void* addr, size_t bytes) { return impl_->Adopt(addr, bytes, false); }
Status Pager::AdoptNew(void* addr, size_t bytes) { return impl_->Adopt(addr, bytes, true); }
Status Pager::Pin(const void* addr, size_t bytes) { return impl_->Pin(addr, bytes, Mailbox::Kind::kPin); }
Status Pager::Unpin(const void* addr, size_t bytes) { return impl_->Unpin(addr, bytes); }
Status Pager::PinThisThread() { return impl_->PinThisThread(); }
Stats Pager::GetStats() const { return impl_->GetStats(); }
void Pager::Sync() { impl_->Sync(); }
void Pager::BeginFork() { impl_->BeginFork(); }
void Pager::EndFork() { impl_->EndFork(); }
const Config& Pager::config() const { return impl_->config(); }
std::string Pager::Features() const { return impl_->Features(); }

}  // namespace pager

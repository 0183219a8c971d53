// libpager_preload.so: settings, start-up, fork and the stats line at exit.
// See docs/preload.md for what is paged and what each variable does.
//
// Start-up runs in a constructor, before the program's own: read and check
// every variable, check that userfaultfd and the swap location can work (any
// failure: one line on stderr and exit status 127, the program never runs),
// create the unpaged arena, then bind the calling thread to a paged arena.
// The pager itself starts later, when the program has memory worth paging
// (start.cc; LIBPAGER_START_AT=0 starts it here), and with it, for an NFS
// swap file, its reaper. In a setuid/setgid program (AT_SECURE) nothing
// happens at all: the heap is jemalloc's, unpaged.
//
// Fork (pthread_atfork). Without UFFD_EVENT_FORK a child's copy of paged
// memory is unregistered plain memory, and would read zeros where the parent
// had evicted pages. So:
//  - prepare: Pager::BeginFork brings every page home (past the limit if need
//    be) and holds eviction, so the child inherits complete memory;
//  - parent: EndFork resumes paging;
//  - child: the parent's pager is abandoned (its threads do not exist here;
//    the object is leaked, the child's copies of its userfaultfds and of
//    its reaper's pipe are closed), and the child gets a pager of its own,
//    started by the same rule as the parent's (start.cc), so fork+exec pays
//    nothing in the child.
//    New heap allocations come from fresh paged arenas; what the child
//    inherited stays plain memory.
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pager/features.h"
#include "pager/pager.h"
#include "pager/units.h"
#include "log.h"  // libpager's own (libpager/src)
#include "page_codec.h"
#include "preload.h"

namespace pager::preload {

PRELOAD_TLS bool t_pager_thread = false;
PRELOAD_TLS int t_scope_depth = 0;
PRELOAD_TLS int t_hook_depth = 0;

namespace {

constexpr int kRefuseExit = 127;
constexpr int kMaxUffds = 8;

Settings g_settings;
Config* g_config = nullptr;  // allocated in pager context
std::atomic<Pager*> g_pager{nullptr};
// Paging is configured and the pager has not failed to start.
std::atomic<bool> g_active{false};
// Held while a pager starts, and across fork (so that a child never copies
// a half-started pager, or a reaper pipe ReaperAfterForkChild does not know).
pthread_mutex_t g_start_mu = PTHREAD_MUTEX_INITIALIZER;
// The store Init checked, handed to the pager when it starts (not in a fork
// child, which opens its own).
Store* g_store = nullptr;
int g_uffds[kMaxUffds];  // the running pager's userfaultfds
int g_nuffds = 0;

[[noreturn]] void Refuse(const std::string& why) {
  std::string line = "libpager: " + why + " (program not started, exit status 127)\n";
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
  _exit(kRefuseExit);
}

Status ReadFlag(const char* var, bool* out) {
  const char* v = getenv(var);
  if (v == nullptr) return Status();
  if (strcmp(v, "0") == 0) {
    *out = false;
  } else if (strcmp(v, "1") == 0) {
    *out = true;
  } else {
    return Status::Error(std::string(var) + "='" + v + "': expected 0 or 1");
  }
  return Status();
}

// The stats-at-exit file: appended to, created if missing. The path may be
// in a directory others can write (/tmp), so a link planted there is not
// followed (it could point root's stats into any file), and only a regular
// file is written: a FIFO would block the open, and with it the program's
// start (O_NONBLOCK turns that into ENXIO).
Status OpenStatsFile(const char* path, const std::string& what, int* out) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
  if (fd < 0 && errno == ELOOP) {
    return Status::Error(what + ": is a symbolic link, not followed (name the file itself)");
  }
  if (fd < 0 && errno == ENXIO) return Status::Error(what + ": not a regular file");
  if (fd < 0) return Status::FromErrno(what, errno);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return Status::Error(what + ": not a regular file");
  }
  *out = fd;
  return Status();
}

Status ReadSettings(Settings* s) {
  if (const char* v = getenv("LIBPAGER_MMAP_THRESHOLD")) {
    auto r = ParseSize(v);
    if (!r.ok()) return Status::Error(std::string("LIBPAGER_MMAP_THRESHOLD='") + v + "': " + r.status().message());
    s->mmap_threshold = *r;
  }
  Status st = ReadFlag("LIBPAGER_HEAP", &s->page_heap);
  if (!st.ok()) return st;
  if (const char* v = getenv("LIBPAGER_START_AT")) {
    auto r = ParseSize(v);
    if (!r.ok()) return Status::Error(std::string("LIBPAGER_START_AT='") + v + "': " + r.status().message());
    s->start_at = *r;
    s->start_at_set = true;
  }
  const char* v = getenv("LIBPAGER_STATS_AT_EXIT");
  if (v == nullptr || strcmp(v, "0") == 0) return Status();
  const std::string what = std::string("LIBPAGER_STATS_AT_EXIT='") + v + "'";
  if (strcmp(v, "1") == 0) {
    // A duplicate, taken now: programs like sort(1) close stderr before exit.
    s->stats_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
    if (s->stats_fd < 0) return Status::FromErrno(what, errno);
  } else if (v[0] == '/') {
    st = OpenStatsFile(v, what, &s->stats_fd);
    if (!st.ok()) return st;
  } else {
    return Status::Error(what + ": expected 0, 1 or an absolute path");
  }
  s->stats_at_exit = true;
  return Status();
}

// The process's userfaultfds, by their /proc/self/fd link.
std::vector<int> UffdFds() {
  std::vector<int> fds;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return fds;
  while (dirent* e = readdir(d)) {
    char path[300], link[64];
    snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n <= 0) continue;
    link[n] = '\0';
    if (strcmp(link, "anon_inode:[userfaultfd]") == 0) fds.push_back(atoi(e->d_name));
  }
  closedir(d);
  return fds;
}

// In pager context, under g_start_mu.
Pager* StartPager(std::string* err) {
  std::vector<int> before = UffdFds();
  const std::string location = g_config->EffectiveSwap();
  // The store Init checked, or (a fork child) one of our own.
  std::unique_ptr<Store> store(std::exchange(g_store, nullptr));
  if (!store) {
    auto opened = OpenStore(location, g_config->store_options());
    if (!opened.ok()) {
      *err = opened.status().message();
      return nullptr;
    }
    store = std::move(*opened);
  }
  // A file that only Stop would remove (NFS), and the pager is never
  // stopped: its reaper watches from before the file exists, so that no
  // moment of the process's life can leave it behind.
  const std::string leftover = store->swap_file_name();
  if (!leftover.empty()) SpawnReaper(location, leftover, g_config->connect_timeout_ms);
  auto r = Pager::Create(*g_config, std::move(store));
  if (!r.ok()) {
    CancelReaper();
    *err = r.status().message();
    return nullptr;
  }
  g_nuffds = 0;
  for (int fd : UffdFds()) {
    bool old = false;
    for (int b : before) old |= b == fd;
    if (!old && g_nuffds < kMaxUffds) g_uffds[g_nuffds++] = fd;
  }
  return r->release();
}

// The start lock is held across fork: a pager starting in another thread
// finishes first, so the child never inherits a reaper pipe that
// ReaperAfterForkChild does not know of.
void ForkPrepare() {
  pthread_mutex_lock(&g_start_mu);
  if (Pager* p = g_pager.load()) {
    PagerScope scope;
    p->BeginFork();
  }
}

void ForkParent() {
  if (Pager* p = g_pager.load()) {
    PagerScope scope;
    p->EndFork();
  }
  pthread_mutex_unlock(&g_start_mu);
}

void ForkChild() {
  if (!g_active.load()) return;
  // The parent's pager (its threads are gone) and the store object it was
  // to be given: leaked, never touched again.
  g_pager.store(nullptr);
  g_store = nullptr;
  // The child's copies would keep the parent's userfaultfd context alive
  // after the parent closes it.
  for (int i = 0; i < g_nuffds; i++) close(g_uffds[i]);
  g_nuffds = 0;
  // The parent's swap file goes when the parent does, not when we do.
  ReaperAfterForkChild();
  ResetStartAfterForkChild();
  g_start_mu = PTHREAD_MUTEX_INITIALIZER;  // held across the fork (ForkPrepare)
  HeapAfterForkChild();
}

// What a pager would need, checked now so that a process that cannot be
// paged is refused before it runs, not when it first has memory to page.
// Cheap: a userfaultfd handshake, and the store's own checks of its location
// (a directory's existence and rights, an nfs:// URL's syntax; the server is
// first contacted when the pager starts).
Status CheckCanPage(const Config& cfg) {
  KernelFeatures k = ProbeKernelFeatures();
  if (!k.uffd.ok()) return k.uffd;
  if (!k.move || ("," + cfg.disable_features + ",").find(",move,") != std::string::npos) {
    // Pager::Create says why, naming the kernel: let it.
    auto p = Pager::Create(cfg);
    return p.ok() ? Status() : p.status();
  }
  auto store = OpenStore(cfg.EffectiveSwap(), cfg.store_options());
  if (!store.ok()) return store.status();
  g_store = store->release();
  return Status();
}

__attribute__((constructor)) void Init() {
  if (getauxval(AT_SECURE) != 0) return;  // setuid/setgid: never paged
  // First, while the program has dlopened nothing: bind_now.cc.
  BindPagerLibrariesNow();
  ResolveInterposed();
  auto cfg = Config::FromEnvironment();
  if (!cfg.ok()) Refuse(cfg.status().message());
  Status s = ReadSettings(&g_settings);
  if (!s.ok()) Refuse(s.message());
  s = cfg->Validate();
  if (!s.ok()) Refuse(s.message());
  // Before the program can initialise OpenSSL itself: page_codec.h.
  if (cfg->Encrypting()) KeepCryptoAtExit();
  if (!g_settings.start_at_set) g_settings.start_at = cfg->memory_limit / 2;
  if (!HeapInit()) Refuse("jemalloc: cannot create the pager's arena");
  LocateReaper();
  {
    PagerScope scope;
    g_config = new Config(*cfg);
    if (g_settings.start_at == 0) {
      std::string err;
      pthread_mutex_lock(&g_start_mu);
      Pager* p = StartPager(&err);
      pthread_mutex_unlock(&g_start_mu);
      if (p == nullptr) Refuse(err);
      g_pager.store(p);
    } else if (Status c = CheckCanPage(*g_config); !c.ok()) {
      Refuse(c.message());
    }
  }
  g_active.store(true);
  pthread_atfork(ForkPrepare, ForkParent, ForkChild);
  BindProgramThread();
}

// The pager is never stopped: stopping brings every swapped page home, which
// at exit would cost a full swap-in past the limit, and the program's last
// exit handlers, other threads (a JVM's) and stdio's final flush may still
// touch paged memory after this runs. Its threads end with the process.
//
// So the swap file is not removed from in here either: a late swap-in
// would find it gone and turn into a SIGBUS. Instead:
//  - a local file was unlinked by its store as soon as it was created (the
//    store serves it through its fd): the kernel frees it when the process
//    ends, however it ends;
//  - an NFS file is removed by libpager-reaper (reaper.cc), spawned just
//    before the store creates it, once the last thread of this image is gone:
//    at exit, crash, SIGKILL or exec. A fork child's copy of the reaper's
//    pipe is closed at once, so a child that outlives us does not keep our
//    file; an exec'd program makes a file of its own, with a new random
//    name.
__attribute__((destructor)) void Fini() {
  if (!g_settings.stats_at_exit) return;
  // A process whose pager never started (it never had memory worth paging)
  // says so: started=0, zero counters.
  Pager* p = g_pager.load();
  PagerScope scope;
  Stats st;
  if (p != nullptr) {
    p->Sync();
    st = p->GetStats();
  } else if (g_config != nullptr) {
    st.limit_pages = g_config->memory_limit / kPageSize;
  }
  char line[1024];
  int n = snprintf(line, sizeof line,
          "libpager[%d]: stats: started=%d limit=%llu resident=%llu mapped=%llu heap_extents=%llu evictions=%llu "
          "written=%llu clean=%llu swapins=%llu zero_faults=%llu inactive_faults=%llu bytes_written=%llu "
          "bytes_read=%llu io_errors=%llu checksum_failures=%llu\n",
          getpid(), p != nullptr ? 1 : 0,
          static_cast<unsigned long long>(st.limit_pages * kPageSize),
          static_cast<unsigned long long>(st.resident_pages * kPageSize),
          static_cast<unsigned long long>(st.mapped_bytes),
          static_cast<unsigned long long>(HeapExtentBytes()),
          static_cast<unsigned long long>(st.evictions_written + st.evictions_clean),
          static_cast<unsigned long long>(st.evictions_written),
          static_cast<unsigned long long>(st.evictions_clean),
          static_cast<unsigned long long>(st.faults_swapin),
          static_cast<unsigned long long>(st.faults_zero),
          static_cast<unsigned long long>(st.faults_inactive),
          static_cast<unsigned long long>(st.bytes_written),
          static_cast<unsigned long long>(st.bytes_read),
          static_cast<unsigned long long>(st.io_errors),
          static_cast<unsigned long long>(st.checksum_failures));
  if (n > 0) {
    ssize_t ignored = write(g_settings.stats_fd, line, std::min<size_t>(n, sizeof line - 1));
    (void)ignored;
  }
}

}  // namespace

const Settings& settings() { return g_settings; }

Pager* RunningPager() { return g_pager.load(std::memory_order_acquire); }

bool PagingWanted() { return g_active.load(std::memory_order_acquire); }

void StartPagerLazily() {
  PagerScope scope;
  std::string err;
  pthread_mutex_lock(&g_start_mu);
  Pager* p = StartPager(&err);
  pthread_mutex_unlock(&g_start_mu);
  if (p == nullptr) {
    // The program is running: it cannot be refused now. Said once, loudly.
    g_active.store(false);
    std::string line = "libpager: cannot start the pager (" + err + "); this process goes on unpaged\n";
    ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
    (void)ignored;
    return;
  }
  g_pager.store(p, std::memory_order_release);
  AdoptPendingRanges(p);
}

}  // namespace pager::preload

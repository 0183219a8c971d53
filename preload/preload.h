// libpager_preload.so: the parts of the preload and what they share.
//
//   preload.cc    settings, start-up, fork, the stats line at exit
//   heap.cc       jemalloc: paged arenas (extent hooks), the pager's own
//                 unpaged arena, binding threads to them
//   interpose.cc  mmap, mmap64, madvise, pthread_create; adoption of ranges
//   start.cc      when the pager starts; the ranges noted until then
//   bind_now.cc   binding the pager's libraries before the program runs
//   reaper_spawn.cc  spawning libpager-reaper (reaper.cc), which removes an
//                 NFS swap file once this process image is gone
//
// Who may touch paged memory. A fault in paged memory is served by the
// pager's thread; if that thread (or a thread it waits for, like a store
// worker) touches paged memory itself, nothing serves the fault and the
// process hangs. So:
//  - every thread the pager starts is a "pager thread" (t_pager_thread): it
//    allocates from the unpaged arena and its mmaps are never adopted;
//  - a program thread calling into the pager does so inside a PagerScope,
//    which moves its allocations to the unpaged arena for the duration (the
//    pager keeps what it allocates there, e.g. its region map);
//  - jemalloc's own metadata never lives in paged extents.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "pager/store.h"  // kPageSize

namespace pager {
class Pager;
}

namespace pager::preload {

inline constexpr size_t PageUp(size_t v) { return (v + kPageSize - 1) & ~(kPageSize - 1); }

// ---- settings (preload.cc) -------------------------------------------------
struct Settings {
  // LIBPAGER_MMAP_THRESHOLD; 0 = no mmap is paged. 256 KiB: V8 (node) maps
  // its heap in 508 KiB pieces, CPython its arenas in 256 KiB ones.
  uint64_t mmap_threshold = 256ull << 10;
  bool page_heap = true;                 // LIBPAGER_HEAP=0|1
  // LIBPAGER_STATS_AT_EXIT: 0 (default), 1 (stderr as it was at start), or
  // an absolute path the line is appended to.
  bool stats_at_exit = false;
  int stats_fd = -1;
  // LIBPAGER_START_AT: the pager starts once the memory it could page reaches
  // this many bytes (start.cc); 0 starts it before main. Default: half the
  // limit.
  uint64_t start_at = 0;
  bool start_at_set = false;
};
const Settings& settings();

// The running pager, or nullptr (not started yet, or it could not start).
Pager* RunningPager();
// Paging is configured here and has not failed.
bool PagingWanted();
// Starts the pager now (start.cc decides when, and calls it once); on
// failure says so on stderr and turns paging off for the process.
void StartPagerLazily();

// ---- thread roles ------------------------------------------------------------
// Initial-exec TLS: no allocation on first access, so usable inside malloc's
// hooks.
#define PRELOAD_TLS __attribute__((tls_model("initial-exec"))) thread_local
extern PRELOAD_TLS bool t_pager_thread;  // started by the pager
extern PRELOAD_TLS int t_scope_depth;    // inside a PagerScope
extern PRELOAD_TLS int t_hook_depth;     // inside a jemalloc extent hook

// True when this thread's allocations and mmaps belong to the pager.
inline bool InPagerContext() { return t_pager_thread || t_scope_depth > 0 || t_hook_depth > 0; }

// Program thread calling into the pager: allocations go to the unpaged arena
// (and threads created meanwhile are pager threads) until the scope ends.
class PagerScope {
 public:
  PagerScope();
  ~PagerScope();
  PagerScope(const PagerScope&) = delete;
  PagerScope& operator=(const PagerScope&) = delete;

 private:
  unsigned saved_arena_ = 0;  // 0: nothing to restore
};

// ---- heap (heap.cc) ----------------------------------------------------------
// Creates the unpaged arena; after this, BindPagerThread works. Returns false
// with jemalloc unusable (message logged).
bool HeapInit();
// Binds the calling thread: a program thread to one of the paged arenas
// (when the heap is paged), a pager thread to the unpaged arena.
void BindProgramThread();
void BindPagerThread();
// The arena the calling thread allocates from now; 0 if unknown.
unsigned CurrentArena();
void SetArena(unsigned arena, bool flush_tcache);
unsigned UnpagedArena();
// Fork child: paged arenas are forgotten (their extents are plain memory in
// the child) and the calling thread is bound to a fresh one.
void HeapAfterForkChild();
// Extents handed to the pager so far (for the stats line).
uint64_t HeapExtentBytes();

// ---- adoption and the lazy start (start.cc) -----------------------------------
// Hands [addr, addr+len) to the pager, or notes it for when the pager starts
// (and starts it, once enough is noted). A refused adoption is logged once
// and the range stays plain. What happens to an adopted range afterwards
// (munmap, mremap, MADV_DONTNEED) the pager learns from the kernel's events,
// in order: the preload keeps no copy of "what is paged".
void AdoptRange(void* addr, size_t len);
// munmap/mremap before the pager started: the range is no longer to adopt.
void ForgetPending(uintptr_t addr, size_t len);
// Adopts what was noted before the pager started.
void AdoptPendingRanges(Pager* p);
void ResetStartAfterForkChild();

// ---- the reaper (reaper_spawn.cc) ----------------------------------------------
// Finds libpager-reaper from the preload's own path. Called once at start,
// before the program can change its working directory.
void LocateReaper();
// Spawns the reaper for the swap file `name` that the store at `location`
// is about to create. Caller holds the start lock. A failure is logged (the
// file will then outlive the program); it never stops the program.
void SpawnReaper(const std::string& location, const std::string& name, uint32_t timeout_ms);
// The store did not start: the reaper exits without removing anything.
void CancelReaper();
// Fork child: closes its copy of the parent's reaper pipe.
void ReaperAfterForkChild();

// ---- eager binding (bind_now.cc) ---------------------------------------------
// Binds now every lazily bound PLT slot of the libraries the pager's threads
// run (the preload's dependencies, transitively), as ld.so would: a pager
// thread must never enter ld.so's symbol lookup, which reads memory the
// program's dlopen calls allocated, paged. Called before the program runs.
void BindPagerLibrariesNow();

// ---- raw system calls (interpose.cc) -------------------------------------------
// Never interposed: the preload, jemalloc and libpager map their own memory
// with these (the link wraps their mmap/munmap/madvise/mremap calls here).
void* RawMmap(void* addr, size_t len, int prot, int flags, int fd, long off);
int RawMunmap(void* addr, size_t len);
int RawMadvise(void* addr, size_t len, int advice);
// Looks up what the interposed calls forward to (dlsym walks ld.so's scope:
// bind_now.cc says why a pager thread must not). Called before the program
// runs.
void ResolveInterposed();

}  // namespace pager::preload

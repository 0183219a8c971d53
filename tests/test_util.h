// Helpers shared by the pager's tests: page-specific patterns and a pager
// over an in-memory store that the test can reach.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "pager/pager.h"
#include "store/memory_store.h"

namespace pager::testing {

// Fills a page with bytes that depend on (page index, version): a page read
// back from the wrong slot, stale, or zeroed fails CheckPage.
void FillPage(void* page, uint64_t index, uint64_t version);
// True if the page holds exactly FillPage(index, version)'s bytes.
bool CheckPage(const void* page, uint64_t index, uint64_t version);
bool IsZeroPage(const void* page);

struct TestPager {
  std::unique_ptr<Pager> pager;
  MemoryStore* store = nullptr;  // owned by the pager

  // A paged region of `pages` pages (aborts the test binary if Map fails).
  unsigned char* Map(size_t pages);
  // Stats once the pager has handled everything queued so far.
  Stats SyncedStats();
};

// FillPage(i, version) for every page i of [p, p + pages).
void FillPages(unsigned char* p, size_t pages, uint64_t version);
// The first page of [p, p + pages) that fails CheckPage(i, version), or -1.
long FirstWrongPage(const unsigned char* p, size_t pages, uint64_t version);

// A pager with `limit_pages` resident pages at most, over a MemoryStore.
// `mode` is a comma-separated list: "slow" makes the store complete every op
// late and out of order (up to kSlowStoreUs), so reads and writes are in
// flight while the program races them; "encrypt" turns encryption on;
// "noprefetch" reads no swapped page before a thread faults on it;
// anything else is passed to Config::disable_features.
TestPager MakePager(uint64_t limit_pages, const std::string& mode = "",
                    EvictionPolicy policy = EvictionPolicy::kClock);
// The same with settings of the caller's (from TestConfig, say); the swap
// location is replaced by the in-memory store.
TestPager MakePager(Config c, const std::string& mode);
inline constexpr uint32_t kSlowStoreUs = 300;
Config TestConfig(uint64_t limit_pages);

// Synced stats once `pred(stats)` holds, or the last ones after `deadline`
// (the caller's EXPECT on them then fails, naming what did not happen). For
// conditions that wait on the store's completions (a slow store).
template <class Pred>
Stats StatsWhen(Pager& p, Pred pred, std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    p.Sync();
    Stats s = p.GetStats();
    if (pred(s) || std::chrono::steady_clock::now() > end) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Waits until the pager has nothing left to do (resident under the high
// watermark and no I/O in flight), up to a few seconds.
void Settle(Pager& p);

// RssAnon of this process, in bytes (/proc/self/status).
uint64_t RssAnon();
// Under TSan, RssAnon includes the sanitizer's shadow (several times the
// program's memory): bounds on it say nothing there.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kRssIsMeaningful = false;
#else
inline constexpr bool kRssIsMeaningful = true;
#endif

// Under TSan a thread's stack may not be paged memory. TSan keeps each
// thread's state (~800 KiB) in its static TLS, which glibc puts at the top of
// a stack the program provides, and it touches that state while holding the
// runtime's lock on an atomic's metadata. The pager thread, using the same
// atomic (the mailbox), waits for that lock while the holder waits in a
// fault for the pager: a deadlock only the sanitizer makes (seen in
// EvictionRace.Issue9CallsFromAThreadWithAPagedStack).
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kPagedStacksWork = false;
#else
inline constexpr bool kPagedStacksWork = true;
#endif

// The throttle's memory bound: while write-back is stalled, anonymous RSS
// grows by at most limit + reserve + a stated 6 MiB of slack (the page table,
// queues, thread stacks, the 1 MiB zero run, gtest's heap). Checked where
// RSS means something (not under TSan); the growth is recorded either way.
void ExpectRssGrowthWithinLimitPlusReserve(uint64_t growth, uint64_t limit_bytes, const Stats& s);

// The store timings every race test runs under: ops completed at once, and
// ops completed late and out of order, with pages in clear and encrypted
// (a re-touch of a page being written then decrypts its sealed copy).
inline const char* const kModes[] = {"", "slow", "slow,encrypt"};
std::string ModeName(const std::string& mode);

// ---- Processes --------------------------------------------------------------

// Runs `fn` in a forked child and waits for it at most `seconds`: fails if
// fn returned false, the child died of a signal (a SIGBUS, say), or it was
// still running then (a hang: it is killed).
::testing::AssertionResult FinishesWithin(double seconds, const std::function<bool()>& fn);

// While it lives, a thread cuts `path` to nothing and writes its contents
// back, over and over: what a file's owner can do to a reader of it.
class FileCutter {
 public:
  explicit FileCutter(const std::string& path);
  ~FileCutter();
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
  std::string image_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The uid of `nobody`, or -1 if there is none.
int NobodyUid();
// Root, and a `nobody` to play another user with.
bool CanActAsNobody();
// In a forked child: becomes `nobody` for good (groups, gid and uid).
bool BecomeNobody();

// A local file store's open swap file, unlinked at its start, as
// /proc/self/fd/N (a path that opens and truncates it); "" if no fd of
// this process is the file the store describes ("file <path> (deleted)").
std::string SwapFd(const Store& store);
// This process's swap file in directory `dir` (an NFS export seen on the
// server's disk; ours by name: host and pid), or "".
std::string OwnSwapFile(const std::string& dir);


}  // namespace pager::testing

// Helpers shared by the pager's tests: page-specific patterns and a pager
// over an in-memory store that the test can reach.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

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
// `disable` is passed to Config::disable_features.
TestPager MakePager(uint64_t limit_pages, const std::string& disable = "",
                    EvictionPolicy policy = EvictionPolicy::kClock);
Config TestConfig(uint64_t limit_pages);

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

// The throttle's memory bound: while write-back is stalled, anonymous RSS
// grows by at most limit + reserve + a stated 6 MiB of slack (the page table,
// queues, thread stacks, the 1 MiB zero run, gtest's heap). Checked where
// RSS means something (not under TSan); the growth is recorded either way.
void ExpectRssGrowthWithinLimitPlusReserve(uint64_t growth, uint64_t limit_bytes, const Stats& s);

// A local file store's open swap file, unlinked at its start, as
// /proc/self/fd/N (a path that opens and truncates it); "" if no fd of
// this process is the file the store describes ("file <path> (deleted)").
std::string SwapFd(const Store& store);

// The eviction path modes every race test runs under.
inline const char* const kModes[] = {"", "move"};  // default (MOVE), WP fallback
std::string ModeName(const std::string& disable);

}  // namespace pager::testing

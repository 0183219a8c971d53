// The ranges this process has handed to the pager: the core keeps the
// truth (its regions follow UNMAP and REMAP events); this mirror answers
// "is this address paged?" for mremap (a grown tail must be adopted) and
// madvise (MADV_FREE on paged memory).
//
// The map's nodes are allocated in pager context (unpaged): they are touched
// under the lock by whichever thread unmaps, including inside jemalloc hooks.
#include <pthread.h>

#include <atomic>
#include <map>

#include "pager/pager.h"
#include "log.h"  // libpager's own (libpager/src)
#include "preload.h"

namespace pager::preload {
namespace {

pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
std::map<uintptr_t, uintptr_t>* g_ranges = nullptr;  // start -> end
std::atomic<bool> g_warned{false};

bool OverlapsLocked(uintptr_t start, uintptr_t end) {
  if (g_ranges == nullptr) return false;
  auto it = g_ranges->upper_bound(start);
  if (it != g_ranges->begin() && std::prev(it)->second > start) return true;
  return it != g_ranges->end() && it->first < end;
}

void ForgetLocked(uintptr_t start, uintptr_t end) {
  auto it = g_ranges->upper_bound(start);
  if (it != g_ranges->begin()) --it;
  while (it != g_ranges->end() && it->first < end) {
    uintptr_t rs = it->first, re = it->second;
    if (re <= start) {
      ++it;
      continue;
    }
    it = g_ranges->erase(it);
    if (rs < start) (*g_ranges)[rs] = start;
    if (re > end) (*g_ranges)[end] = re;
  }
}

void RecordLocked(uintptr_t start, uintptr_t end) {
  if (g_ranges == nullptr) g_ranges = new std::map<uintptr_t, uintptr_t>();
  ForgetLocked(start, end);
  (*g_ranges)[start] = end;
}

}  // namespace

void AdoptRange(void* addr, size_t len) {
  Pager* p = CurrentPager();
  if (p == nullptr || len == 0) return;
  uintptr_t start = reinterpret_cast<uintptr_t>(addr), end = PageUp(start + len);
  PagerScope scope;
  Status s = p->Adopt(addr, end - start);
  if (!s.ok()) {
    if (!g_warned.exchange(true)) {
      PAGER_LOG_WARN("cannot page %zu bytes at %p (%s); such memory stays ordinary memory", end - start, addr,
              s.message().c_str());
    }
    return;
  }
  pthread_mutex_lock(&g_mu);
  RecordLocked(start, end);
  pthread_mutex_unlock(&g_mu);
}

bool IsPaged(const void* addr, size_t len) {
  uintptr_t start = reinterpret_cast<uintptr_t>(addr), end = PageUp(start + len);
  pthread_mutex_lock(&g_mu);
  bool r = OverlapsLocked(start, end);
  pthread_mutex_unlock(&g_mu);
  return r;
}

void ForgetRanges(uintptr_t addr, size_t len) {
  uintptr_t start = addr, end = PageUp(addr + len);
  // Most unmaps are of memory never paged: find out without allocating.
  if (!IsPaged(reinterpret_cast<void*>(addr), len)) return;
  PagerScope scope;  // a split allocates a node
  pthread_mutex_lock(&g_mu);
  if (g_ranges != nullptr) ForgetLocked(start, end);
  pthread_mutex_unlock(&g_mu);
}

void RecordRange(uintptr_t addr, size_t len) {
  PagerScope scope;
  pthread_mutex_lock(&g_mu);
  RecordLocked(addr, PageUp(addr + len));
  pthread_mutex_unlock(&g_mu);
}

void RangesAfterForkChild() {
  // Another thread may have held the lock mid-update at the fork: start
  // over with a fresh lock and map (the old one is left as it is).
  g_mu = PTHREAD_MUTEX_INITIALIZER;
  g_ranges = nullptr;
}

}  // namespace pager::preload

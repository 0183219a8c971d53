// When the preload's pager starts: not before the program has memory worth
// paging.
//
// Starting a pager costs milliseconds (a userfaultfd, a locked reserve, a
// thread, and for nfs:// a mount): every process under the preload — every
// child of a paged shell, `make -j`'s every compiler — would pay it, most for
// nothing. So the pager starts when the memory it could page first reaches
// LIBPAGER_START_AT (default: half the limit; below that no paging could be
// needed). Until then the ranges it would page (big mmaps, heap extents) are
// noted here, and adopted when it starts: Adopt counts their present pages
// resident (core.cc, AddRegion).
//
// Nothing here takes a lock: ranges are noted and taken with atomics (a
// signal handler's munmap may come in the middle), and one thread wins the
// start with an exchange. Starting happens wherever the threshold is crossed,
// possibly inside a jemalloc extent hook (holding only that paged arena's grow
// lock; what the start allocates comes from the unpaged arena or, by
// jemalloc's reentrancy rule, arena 0).
#include <pthread.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "log.h"  // libpager's own (libpager/src)
#include "pager/pager.h"
#include "preload.h"

namespace pager::preload {
namespace {

// A pending range: start page << 28 | pages (addresses below 2^47, ranges
// below 1 TiB), 0 for a free slot.
constexpr int kSlots = 256;
constexpr uint64_t kPagesBits = 28;
std::atomic<uint64_t> g_pending[kSlots];
std::atomic<uint64_t> g_pending_bytes{0};
std::atomic<bool> g_start_claimed{false};

uint64_t Pack(uintptr_t addr, uint64_t len) {
  return (static_cast<uint64_t>(addr / kPageSize) << kPagesBits) | (PageUp(len) / kPageSize);
}
uintptr_t StartOf(uint64_t v) { return (v >> kPagesBits) * kPageSize; }
uint64_t LenOf(uint64_t v) { return (v & ((uint64_t{1} << kPagesBits) - 1)) * kPageSize; }

// False when the range cannot be noted (no free slot, or too big to pack).
bool Note(uintptr_t addr, uint64_t len) {
  if (PageUp(len) / kPageSize >= (uint64_t{1} << kPagesBits) || addr >= (uintptr_t{1} << 47)) return false;
  const uint64_t v = Pack(addr, len);
  for (auto& slot : g_pending) {
    uint64_t empty = 0;
    if (slot.compare_exchange_strong(empty, v, std::memory_order_acq_rel)) {
      g_pending_bytes.fetch_add(LenOf(v), std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

void AdoptNow(Pager* p, void* addr, size_t len) {
  static std::atomic<bool> warned{false};
  PagerScope scope;
  Status s = p->AdoptNew(addr, PageUp(len));  // every range the preload adopts was just mapped
  if (!s.ok() && !warned.exchange(true)) {
    PAGER_LOG_WARN("cannot page %zu bytes at %p (%s); such memory stays ordinary memory", PageUp(len), addr,
                   s.message().c_str());
  }
}

// Adopts every noted range. Each slot is taken by exactly one caller, so the
// starter and threads that noted a range meanwhile can all drain at once.
void Drain(Pager* p) {
  for (auto& slot : g_pending) {
    const uint64_t v = slot.exchange(0, std::memory_order_acq_rel);
    if (v == 0) continue;
    g_pending_bytes.fetch_sub(LenOf(v), std::memory_order_relaxed);
    AdoptNow(p, reinterpret_cast<void*>(StartOf(v)), LenOf(v));
  }
}

}  // namespace

void AdoptRange(void* addr, size_t len) {
  if (len == 0) return;
  if (Pager* p = RunningPager()) {
    AdoptNow(p, addr, len);
    return;
  }
  if (!PagingWanted()) return;
  const bool noted = Note(reinterpret_cast<uintptr_t>(addr), len);
  if (!noted || g_pending_bytes.load(std::memory_order_relaxed) >= settings().start_at) {
    if (!g_start_claimed.exchange(true)) StartPagerLazily();
  }
  Pager* p = RunningPager();
  if (p == nullptr) return;
  if (!noted) AdoptNow(p, addr, len);
  Drain(p);  // the starter may have drained before this range was noted
}

void ForgetPending(uintptr_t addr, size_t len) {
  if (g_pending_bytes.load(std::memory_order_relaxed) == 0) return;
  const uintptr_t end = addr + PageUp(len);
  for (auto& slot : g_pending) {
    uint64_t v = slot.load(std::memory_order_acquire);
    // A range unmapped in part is forgotten whole: its rest stays plain.
    if (v != 0 && StartOf(v) < end && StartOf(v) + LenOf(v) > addr &&
        slot.compare_exchange_strong(v, 0, std::memory_order_acq_rel)) {
      g_pending_bytes.fetch_sub(LenOf(v), std::memory_order_relaxed);
    }
  }
}

void AdoptPendingRanges(Pager* p) { Drain(p); }

void ResetStartAfterForkChild() {
  // The parent's noted ranges are the child's plain memory (as inherited
  // memory always is); the child starts a pager of its own by the same rule.
  for (auto& slot : g_pending) slot.store(0, std::memory_order_relaxed);
  g_pending_bytes.store(0, std::memory_order_relaxed);
  g_start_claimed.store(false, std::memory_order_relaxed);
}

uint64_t PendingBytes() { return g_pending_bytes.load(std::memory_order_relaxed); }

}  // namespace pager::preload

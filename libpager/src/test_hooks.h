// Test-only views of a pager's internals, in LevelDB's TEST_ style: not part
// of the public API, for tests that must put a page in a known state before
// racing it. Each runs on the pager thread, in order with everything else.
#pragma once

#include <atomic>
#include <cstdint>

#include "page_table.h"
#include "pager/pager.h"

namespace pager {

class PagerTestPeer {
 public:
  // The state of the page at `addr` as the pager thread sees it now.
  static PageState StateOf(Pager& p, const void* addr);
  // The slot holding the page at `addr`, or -1 if it has none.
  static int64_t SlotOf(Pager& p, const void* addr);
  // Holds the pager thread for `ms` (no event read, nothing served), so
  // that a test can line events up behind it; sets *started first. Returns
  // when the hold ends.
  static void Stall(Pager& p, uint32_t ms, std::atomic<int>* started);
};

}  // namespace pager

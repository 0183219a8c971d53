// Issue 10's attacks on a swap copy, shared by the in-memory store's test
// (integrity_test) and the real server's (nfs_pager_test): a page altered
// where it lies, two pages' copies swapped, and a page's older copy put back
// after it was written again. Each must raise SIGBUS on exactly that page,
// never give the wrong bytes, and leave every other page readable.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "pager/pager.h"

namespace pager::testing {

// Raw access to a store's slots, as whoever holds the server's disk has.
class SlotEditor {
 public:
  virtual ~SlotEditor() = default;
  virtual std::vector<std::byte> Read(uint64_t slot) = 0;
  virtual void Write(uint64_t slot, const std::vector<std::byte>& bytes) = 0;
};

// Runs in the calling process (call it in a forked child: it installs a
// SIGBUS handler). `pager` must keep at most a quarter of `pages` resident,
// so that writing the second half of a region evicts the first.
::testing::AssertionResult TamperedPagesRaiseSigbusTheRestReadBack(Pager& pager, SlotEditor& editor,
                                                                    size_t pages);

}  // namespace pager::testing

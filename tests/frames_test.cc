// The inactive stage's frames (frames.h): a frame taken from the free list
// is filled only if it is a hole.
#include "frames.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace pager {
namespace {

// COPY onto a present page reports EEXIST, which Uffd::Copy counts as done
// (UffdContract.CopyStartingAtAPresentPageFailsWithEexist): a frame freed
// without its drop would pass for filled while holding another page's
// bytes. Fill must refuse it, and drop it so that it works again.
TEST(Frames, FillOfAFreeFrameThatStillHoldsAPageFailsAndDropsIt) {
  auto frames = Frames::Create(1);
  ASSERT_TRUE(frames.ok()) << frames.status().message();
  std::vector<std::byte> old_page(kPageSize, std::byte{0xAA}), new_page(kPageSize, std::byte{0xBB});

  SlotAllocator::Run r = frames->Allocate(1);
  ASSERT_EQ(r.count, 1u);
  ASSERT_TRUE(frames->Fill(r.first, old_page.data()));
  frames->Unuse(r.first);  // the bug Fill guards against: freed, not dropped

  r = frames->Allocate(1);
  ASSERT_EQ(r.count, 1u);
  EXPECT_FALSE(frames->Fill(r.first, new_page.data())) << "a fill that kept the old page passed";
  EXPECT_EQ(frames->Allocate(1).count, 0u) << "the frame is given back only once it is dropped";

  frames->Flush();
  r = frames->Allocate(1);
  ASSERT_EQ(r.count, 1u);
  ASSERT_TRUE(frames->Fill(r.first, new_page.data()));
  EXPECT_EQ(std::memcmp(frames->at(r.first), new_page.data(), kPageSize), 0);
}

}  // namespace
}  // namespace pager

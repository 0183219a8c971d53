// The userfaultfd contract, part 4: mremap of registered memory (moves,
// growth in place and by moving, MREMAP_DONTUNMAP) and a thread asleep in a
// fault at an address that moves away.
//
// Kernel code read for these tests (v6.18-era linux-next): mm/mremap.c
// do_mremap(), move_vma(), copy_vma_and_data(), dontunmap_complete(),
// expand_vma(), expand_vma_in_place(); fs/userfaultfd.c
// mremap_userfaultfd_prep(), mremap_userfaultfd_complete(),
// userfaultfd_unmap_prep(), userfaultfd_wake_function().
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "uffd_contract_util.h"

namespace uffd_contract {
namespace {

constexpr uint64_t kEvents = UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP;

void* Mremap(void* old, size_t old_pages, size_t new_pages, int flags, void* to = nullptr) {
  return mremap(old, old_pages * kPage, new_pages * kPage, flags, to);
}

// Serves the one fault a touch of `p` raises, from the test thread, and
// checks the touch then sees the served bytes. `base` names pages in the
// expected description, e.g. "fault[6]".
void ExpectTouchFaultsToTheUffd(RawUffd& u, char* p, const char* base, const std::string& expected) {
  Area src(1);
  Fill(src.base(), 1, 'c');
  std::atomic<char> seen{0};
  Background touch(u, [&] { seen = *const_cast<volatile char*>(p); });
  auto fault = u.Read();
  ASSERT_TRUE(fault.has_value()) << "no fault reached the uffd: the page is not registered";
  EXPECT_EQ(Describe(*fault, base), expected);
  ASSERT_EQ(u.Copy(p, src.base(), kPage).rc, 0);
  ASSERT_TRUE(touch.WaitDone());
  EXPECT_EQ(seen.load(), 'c');
}

// ============================================================ moves

// mm/mremap.c copy_vma_and_data() calls mremap_userfaultfd_prep(new_vma,
// ...) (the new VMA keeps the registration with EVENT_REMAP) and do_mremap()
// ends with mremap_userfaultfd_complete(vrm->uf, vrm->addr, ret,
// vrm->old_len): one REMAP, len = the OLD length. The old VMA still carries
// the ctx when move_vma() -> unmap_source_vma() unmaps it, so with
// EVENT_UNMAP userfaultfd_unmap_prep() queues an UNMAP for the old range,
// delivered after the REMAP (userfaultfd_unmap_complete(mm, vrm->uf_unmap)).
// libpager: pager.cc Dispatch UFFD_EVENT_REMAP (Relocate, then the region
// is recorded at `to` with `len`), then UFFD_EVENT_UNMAP of the old range.
TEST(UffdContract, MremapMoveRaisesRemapWithTheOldLengthThenUnmapOfTheOldRange) {
  Area a(8);
  Fill(a.base(), 3, 'r');  // pages 0..2 present, 3 missing
  RawUffd u;
  if (auto why = u.Open(kEvents); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.Register(a.base(), 4 * kPage), 0);
  {
    Reader r(u);
    ASSERT_EQ(Mremap(a.base(), 4, 4, MREMAP_MAYMOVE | MREMAP_FIXED, a.page(4)), a.page(4));
    ASSERT_TRUE(r.WaitForCount(2));
    EXPECT_EQ(Describe(r.messages(), a.base()), "remap[0,4)->[4,8) unmap[0,4)");
  }
  ASSERT_TRUE(a.FillHole(0, 4));
  ASSERT_EQ(Residency(a.page(4), 4), "1110");  // else reading page 6 would fault
  EXPECT_TRUE(PageIs(a.page(6), 'r'));
  ExpectTouchFaultsToTheUffd(u, a.page(7), a.base(), "fault[7]");  // still registered at `to`
}

// mm/mremap.c: with MREMAP_FIXED the target is unmapped first
// (do_munmap(..., vrm->uf_unmap_early)); a registered target gets its UNMAP
// then, completed before the REMAP is even sent (userfaultfd_unmap_complete(mm,
// &uf_unmap_early) comes first at the end of do_mremap()). So when the pager
// reads a REMAP, any registered range that was at its target is already
// reported gone; state it still holds there is another mapping's, whose own
// events (from another thread) are late.
// libpager: core.cc HandleRemap sets such state aside (SetAside).
TEST(UffdContract, MremapOntoARegisteredRangeRaisesUnmapOfItBeforeRemap) {
  Area a(8);
  Fill(a.base(), 8, 'r');
  RawUffd u;
  if (auto why = u.Open(kEvents); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.Register(a.base(), 8 * kPage), 0);
  ASSERT_EQ(madvise(a.page(4), 4 * kPage, MADV_RANDOM), 0);  // VMAs [0,4) and [4,8)
  {
    Reader r(u);
    ASSERT_EQ(Mremap(a.base(), 4, 4, MREMAP_MAYMOVE | MREMAP_FIXED, a.page(4)), a.page(4));
    ASSERT_TRUE(r.WaitForCount(3));
    EXPECT_EQ(Describe(r.messages(), a.base()), "unmap[4,8) remap[0,4)->[4,8) unmap[0,4)");
  }
  ASSERT_TRUE(a.FillHole(0, 4));
}

// mm/mremap.c expand_vma(): when the range ends at its VMA's end and the
// space after is free, expand_vma_in_place() -> vma_merge_extend() grows
// the VMA itself, keeping its flags and vm_userfaultfd_ctx; vrm->uf was never
// prepared, so mremap_userfaultfd_complete() sends nothing. The grown tail is
// registered: its first touch is a MISSING fault to the uffd.
// libpager: the pager never hears of the tail (issue 9, problem 3:
// mapped_bytes, ~Pager's BringHome miss it); preload/interpose.cc adopts it.
TEST(UffdContract, MremapGrowthInPlaceRaisesNoEventAndTheTailIsRegistered) {
  Area a(8);
  Fill(a.base(), 4, 'r');
  ASSERT_EQ(munmap(a.page(4), 4 * kPage), 0);  // room to grow into
  RawUffd u;
  if (auto why = u.Open(kEvents); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.Register(a.base(), 4 * kPage), 0);

  void* got = nullptr;
  int err = 0;
  // In a thread: had it raised an event, nobody would read it and mremap
  // would not return.
  Background grow(u, [&] {
    got = Mremap(a.base(), 4, 8, 0);
    err = errno;
  });
  ASSERT_TRUE(grow.WaitDone()) << "mremap waited: it raised an event";
  ASSERT_EQ(got, a.base()) << strerror(err);
  EXPECT_FALSE(u.HasMessage());
  ExpectTouchFaultsToTheUffd(u, a.page(6), a.base(), "fault[6]");
}

// mm/mremap.c expand_vma(): no room in place and MREMAP_MAYMOVE: move_vma()
// to a new address with the new length. The event is the same as a move
// (vrm->old_len), and the whole new VMA, tail included, is registered.
TEST(UffdContract, MremapGrowthThatMovesRaisesRemapWithTheOldLength) {
  Area a(8);  // pages 4..7 stay mapped: the first four cannot grow in place
  Fill(a.base(), 4, 'r');
  std::optional<Area> moved;  // unmapped after the uffd is closed
  RawUffd u;
  if (auto why = u.Open(kEvents); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.Register(a.base(), 4 * kPage), 0);
  {
    Reader r(u);
    void* to = Mremap(a.base(), 4, 8, MREMAP_MAYMOVE);
    ASSERT_NE(to, MAP_FAILED) << strerror(errno);
    moved.emplace(Area::Adopt(to, 8));
    ASSERT_TRUE(r.WaitForCount(2));
    auto msgs = r.messages();
    ASSERT_EQ(msgs[0].event, UFFD_EVENT_REMAP);
    EXPECT_EQ(msgs[0].arg.remap.from, reinterpret_cast<uintptr_t>(a.base()));
    EXPECT_EQ(msgs[0].arg.remap.to, reinterpret_cast<uintptr_t>(to));
    EXPECT_EQ(msgs[0].arg.remap.len, 4 * kPage) << "len is the old length, not the new";
    EXPECT_EQ(Describe(msgs[1], a.base()), "unmap[0,4)");
  }
  ASSERT_TRUE(a.FillHole(0, 4));
  ASSERT_EQ(Residency(moved->base(), 8), "11110000");  // else reading page 3 would fault
  EXPECT_TRUE(PageIs(moved->page(3), 'r'));
  ExpectTouchFaultsToTheUffd(u, moved->page(6), moved->base(), "fault[6]");
}

// mm/mremap.c move_vma(): with MREMAP_DONTUNMAP, dontunmap_complete() instead
// of unmap_source_vma(): the old VMA stays, only VM_LOCKED_MASK | VM_ACCOUNT
// are cleared, its ctx and VM_UFFD_MISSING remain. The page tables moved, so
// the old range is all missing and each touch faults to the uffd; the REMAP
// is sent as for any move, and no UNMAP.
// libpager: preload/interpose.cc ("MREMAP_DONTUNMAP: the old range stays
// registered and is adopted again").
TEST(UffdContract, MremapDontunmapRaisesRemapAndKeepsTheOldRangeRegistered) {
  Area a(8);
  Fill(a.base(), 4, 'r');
  RawUffd u;
  if (auto why = u.Open(kEvents); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.Register(a.base(), 4 * kPage), 0);
  {
    Reader r(u);
    ASSERT_EQ(Mremap(a.base(), 4, 4, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, a.page(4)), a.page(4))
        << strerror(errno);
    ASSERT_TRUE(r.WaitForCount(1));
    EXPECT_EQ(Describe(r.messages(), a.base()), "remap[0,4)->[4,8)");
  }
  EXPECT_FALSE(u.HasMessage()) << "an event besides the REMAP";
  EXPECT_EQ(Residency(a.base(), 8), "00001111");
  ExpectTouchFaultsToTheUffd(u, a.page(1), a.base(), "fault[1]");
}

// ============================================================ a sleeper at the old address

// fs/userfaultfd.c: a faulting thread sleeps in handle_userfault() with its
// message's address; userfaultfd_wake_function() wakes it only for a range
// containing that address, and mremap wakes nobody. So a thread asleep on A
// stays asleep after A's page moves to B, even when B's page is installed;
// UFFDIO_WAKE on A wakes it, and it retries its access at A (whatever is
// mapped there now), never at B.
// libpager: core.cc Relocate moves page state from A to B; threads asleep
// at A must be woken by the pager itself (issue 9, problem 13).
TEST(UffdContract, FaulterAsleepAtAnAddressMremappedAwayIsWokenOnlyByWakeAtTheOldAddress) {
  Area src(1), a(8);
  Fill(src.base(), 1, 'c');
  RawUffd u;
  if (auto why = u.Open(kEvents); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.Register(a.base(), 4 * kPage), 0);

  std::atomic<char> seen{0};
  Background touch(u, [&] { seen = *const_cast<volatile char*>(a.page(1)); });
  auto fault = u.Read();
  ASSERT_TRUE(fault.has_value());
  EXPECT_EQ(Describe(*fault, a.base()), "fault[1]");

  Background move(u, [&] { Mremap(a.base(), 4, 4, MREMAP_MAYMOVE | MREMAP_FIXED, a.page(4)); });
  auto remap = u.Read();
  ASSERT_TRUE(remap.has_value());
  EXPECT_EQ(Describe(*remap, a.base()), "remap[0,4)->[4,8)");
  auto unmap = u.Read();
  ASSERT_TRUE(unmap.has_value());
  EXPECT_EQ(Describe(*unmap, a.base()), "unmap[0,4)");
  ASSERT_TRUE(move.WaitDone());
  // Something at A for a woken thread's retried access to find (else SIGSEGV).
  ASSERT_TRUE(a.FillHole(0, 4)) << "the old range was mapped by someone else";
  Fill(a.page(1), 1, 'n');
  EXPECT_EQ(u.sleepers().total, 1) << "the move woke the faulter";

  ASSERT_EQ(u.Copy(a.page(5), src.base(), kPage).rc, 0);  // the page's new address
  EXPECT_EQ(u.sleepers().total, 1) << "an install at the new address woke the faulter";
  EXPECT_FALSE(touch.done());

  ASSERT_EQ(u.Wake(a.page(1), kPage), 0);
  ASSERT_TRUE(touch.WaitDone());
  EXPECT_EQ(seen.load(), 'n') << "the woken thread read the moved page, not the old address";
}

}  // namespace
}  // namespace uffd_contract

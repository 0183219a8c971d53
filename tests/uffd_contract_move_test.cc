// The userfaultfd contract, part 2: UFFDIO_MOVE (6.8), as libpager evicts:
// present pages of a registered region moved into a registered staging area.
//
// Kernel code read for these tests (v6.18-era linux-next): fs/userfaultfd.c
// userfaultfd_move(), mm/userfaultfd.c move_pages(), validate_move_areas(),
// move_pages_pte(), move_present_pte(); mm/madvise.c madvise_populate().
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "uffd_contract_util.h"

namespace uffd_contract {
namespace {

constexpr uint64_t kMoveFeatures = UFFD_FEATURE_MOVE;

// A region of `pages` pages filled with 'r' (present, written before it is
// registered so that no touch faults) and an empty staging area of as many
// pages, both registered with `u`.
struct Layout {
  explicit Layout(size_t pages) : region(pages), staging(pages) { Fill(region.base(), pages, 'r'); }
  int Register(const RawUffd& u) const {
    int err = u.Register(region.base(), region.pages() * kPage);
    return err != 0 ? err : u.Register(staging.base(), staging.pages() * kPage);
  }
  Area region, staging;
};

// ============================================================ VMA boundaries

// mm/userfaultfd.c move_pages(): `err = -EINVAL; ... if (src_start + len >
// src_vma->vm_end) goto out_unlock;` and the same for dst, checked before
// the first page. Unlike COPY (ENOENT), a run crossing a VMA is EINVAL.
// libpager: evictor.cc DeactivateRun moves runs of the region with one MOVE
// and takes any error but EAGAIN/EBUSY/ENOENT as "leave the first page
// resident"; a run over a VMA boundary must be split first.
TEST(UffdContract, MoveAcrossTwoSourceVmasFailsWithEinvalAndNoProgress) {
  Layout l(4);
  RawUffd u;
  if (auto why = u.Open(kMoveFeatures); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(l.Register(u), 0);
  ASSERT_EQ(madvise(l.region.page(2), 2 * kPage, MADV_RANDOM), 0);

  RangeResult r = u.Move(l.staging.base(), l.region.page(1), 2 * kPage);  // region pages 1..2
  EXPECT_EQ(r.rc, -1);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.progress, -EINVAL);
  EXPECT_EQ(Residency(l.region.base(), 4), "1111");
  EXPECT_EQ(Residency(l.staging.base(), 4), "0000");

  // The same for a destination run over two VMAs.
  ASSERT_EQ(madvise(l.staging.page(2), 2 * kPage, MADV_RANDOM), 0);
  RangeResult d = u.Move(l.staging.page(1), l.region.base(), 2 * kPage);
  EXPECT_EQ(d.err, EINVAL);
  EXPECT_EQ(d.progress, -EINVAL);

  EXPECT_EQ(u.Move(l.staging.base(), l.region.base(), 2 * kPage).rc, 0);  // within one VMA: fine
}

// ============================================================ holes

// mm/userfaultfd.c move_pages_pte(): `if (pte_none(orig_src_pte)) { if
// (!(mode & UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES)) err = -ENOENT; ...}`; the
// loop breaks and move_pages() returns `moved ? moved : err`; fs/userfaultfd.c
// userfaultfd_move() turns a short move into -EAGAIN with `move` = bytes.
// libpager: uffd.h ("Stops at the first page that cannot move ... ENOENT:
// not present") and evictor.cc DeactivateRun, which reads EAGAIN as "mm
// changing" even when `done` > 0 and the real cause is a hole.
TEST(UffdContract, MoveStoppingAtAnAbsentSourcePageReturnsEagainWithProgress) {
  Layout l(4);
  ASSERT_EQ(madvise(l.region.page(2), kPage, MADV_DONTNEED), 0);  // page 2 absent
  RawUffd u;
  if (auto why = u.Open(kMoveFeatures); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(l.Register(u), 0);

  RangeResult r = u.Move(l.staging.base(), l.region.base(), 4 * kPage);
  EXPECT_EQ(r.rc, -1);
  EXPECT_EQ(r.err, EAGAIN);
  EXPECT_EQ(r.progress, static_cast<int64_t>(2 * kPage));
  EXPECT_EQ(Residency(l.region.base(), 4), "0001");
  EXPECT_EQ(Residency(l.staging.base(), 4), "1100");

  RangeResult at_hole = u.Move(l.staging.page(2), l.region.page(2), 2 * kPage);
  EXPECT_EQ(at_hole.err, ENOENT);
  EXPECT_EQ(at_hole.progress, -ENOENT);
  EXPECT_EQ(Residency(l.region.base(), 4), "0001");
}

// mm/userfaultfd.c move_pages_pte(): `if (!pte_none(orig_dst_pte)) { err =
// -EEXIST; ...}`: a destination page that is present refuses the move, and
// nothing moves. libpager: evictor.cc DeactivateRun drops a frame refused
// with EEXIST (a free frame that was not a hole) instead of reusing it.
TEST(UffdContract, MoveOntoAPresentDestinationPageFailsWithEexistAndMovesNothing) {
  Layout l(2);
  RawUffd u;
  if (auto why = u.Open(kMoveFeatures); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(l.Register(u), 0);
  ASSERT_EQ(u.Move(l.staging.base(), l.region.base(), kPage).rc, 0);  // staging page 0 now present
  RangeResult r = u.Move(l.staging.base(), l.region.page(1), kPage);
  EXPECT_EQ(r.rc, -1);
  EXPECT_EQ(r.err, EEXIST);
  EXPECT_EQ(r.progress, -EEXIST);
  EXPECT_EQ(Residency(l.region.base(), 2)[1], '1') << "the source page stays";
  EXPECT_TRUE(PageIs(l.staging.base(), 'r')) << "the destination keeps its page";
}

// ============================================================ fork and COW

// mm/userfaultfd.c move_pages_pte(): `if (!folio ||
// !PageAnonExclusive(&folio->page)) { err = -EBUSY; ...}`. After fork the
// parent's page is no longer AnonExclusive; it becomes exclusive again only
// when a write fault reuses it (mm/memory.c do_wp_page), not when the child
// exits. libpager: evictor.cc DeactivateRun ("EBUSY: ... shared with a fork
// child (or its memory was, and the page has not been written since)").
TEST(UffdContract, MoveOfAPageSharedWithAForkChildFailsWithEbusyUntilThePageIsWritten) {
  Layout l(1);
  RawUffd u;
  if (auto why = u.Open(kMoveFeatures); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(l.Register(u), 0);

  Child child([] { return 0; }, /*hold=*/true);
  RangeResult shared = u.Move(l.staging.base(), l.region.base(), kPage);
  EXPECT_EQ(shared.err, EBUSY);
  EXPECT_EQ(shared.progress, -EBUSY);

  EXPECT_EQ(child.Wait(), 0);
  RangeResult after_exit = u.Move(l.staging.base(), l.region.base(), kPage);
  // ASSERT: had it moved, the write below would fault on a missing page.
  ASSERT_EQ(after_exit.err, EBUSY) << "the child's exit alone made the page exclusive again";

  l.region.base()[0] = 'w';  // write fault: the page is reused, exclusive again
  ASSERT_EQ(u.Move(l.staging.base(), l.region.base(), kPage).rc, 0);
  EXPECT_EQ(l.staging.base()[0], 'w');
}

// mm/madvise.c madvise_populate() -> faultin_page_range(): a write GUP on a
// present page that is COW-shared takes the ordinary write-fault path
// (do_wp_page copies the page), which a MISSING-only registration never sees.
// libpager: evictor.cc DeactivateRun answers EBUSY with MADV_POPULATE_WRITE
// on the pager thread itself; this shows it cannot fault to the pager and
// leaves the bytes, and the child's copy, as they were.
TEST(UffdContract, PopulateWriteBreaksTheCowOfAForkSharedPageWithoutAFault) {
  Layout l(1);
  RawUffd u;
  if (auto why = u.Open(kMoveFeatures); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(l.Register(u), 0);

  Child child([&] { return PageIs(l.region.base(), 'r') ? 0 : 1; }, /*hold=*/true);
  ASSERT_EQ(u.Move(l.staging.base(), l.region.base(), kPage).err, EBUSY);

  ASSERT_EQ(madvise(l.region.base(), kPage, MADV_POPULATE_WRITE), 0) << strerror(errno);
  EXPECT_FALSE(u.HasMessage());
  EXPECT_EQ(u.sleepers().total, 0);
  EXPECT_TRUE(PageIs(l.region.base(), 'r'));

  ASSERT_EQ(u.Move(l.staging.base(), l.region.base(), kPage).rc, 0);
  EXPECT_TRUE(PageIs(l.staging.base(), 'r'));
  EXPECT_EQ(child.Wait(), 0) << "the child's copy changed";
}

// ============================================================ protection and mlock

// mm/userfaultfd.c validate_move_areas(): source and destination must have
// equal VM_READ|VM_WRITE|VM_EXEC and vm_page_prot, equal VM_LOCKED, and be
// writable (`if (!(src_vma->vm_flags & VM_WRITE)) return -EINVAL;`): all
// -EINVAL before any page. libpager: evictor.cc Evict ("read-only or mlocked
// mappings refuse UFFDIO_MOVE") and the stuck/limit_overruns path.
TEST(UffdContract, MoveFromAReadOnlyProtNoneOrMlockedSourceFailsWithEinval) {
  Layout l(4);
  ASSERT_EQ(mprotect(l.region.page(0), kPage, PROT_READ), 0);
  ASSERT_EQ(mprotect(l.region.page(1), kPage, PROT_NONE), 0);
  // mlock2 directly: the sanitizers' mlock interceptors do nothing.
  ASSERT_EQ(syscall(SYS_mlock2, l.region.page(2), kPage, MLOCK_ONFAULT), 0) << strerror(errno);
  RawUffd u;
  if (auto why = u.Open(kMoveFeatures); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(l.Register(u), 0);

  const char* what[] = {"PROT_READ", "PROT_NONE", "mlocked"};
  for (size_t i = 0; i < 3; i++) {
    RangeResult r = u.Move(l.staging.page(i), l.region.page(i), kPage);
    EXPECT_EQ(r.err, EINVAL) << what[i];
    EXPECT_EQ(r.progress, -EINVAL) << what[i];
  }
  EXPECT_EQ(u.Move(l.staging.page(3), l.region.page(3), kPage).rc, 0);  // the plain page moves
  EXPECT_EQ(Residency(l.region.base(), 4), "1110");
}

// ============================================================ pending events

// fs/userfaultfd.c userfaultfd_move(): `if (unlikely(atomic_read(
// &ctx->mmap_changing))) { put_user(-EAGAIN, ...->move); ...}`; the counter
// is raised by userfaultfd_remove() (and the unmap, remap and fork paths)
// before the event is queued, and dropped by the originating thread in
// userfaultfd_event_wait_completion() once the event has been read.
// COPY checks the same counter (userfaultfd_copy). libpager: uffd.h ("EAGAIN
// from any ioctl: the mm is changing"), evictor.cc mm_changing_.
TEST(UffdContract, MoveAndCopyWhileAnEventIsUnreadFailWithEagainAndNoProgress) {
  Layout l(2);
  RawUffd u;
  if (auto why = u.Open(kMoveFeatures | UFFD_FEATURE_EVENT_REMOVE); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(l.Register(u), 0);
  Area src(1);
  Fill(src.base(), 1, 'c');

  Background dontneed(u, [&] { madvise(l.region.page(1), kPage, MADV_DONTNEED); });
  ASSERT_TRUE(WaitUntil([&] { return u.HasMessage(); })) << "no REMOVE event queued";

  RangeResult m = u.Move(l.staging.base(), l.region.base(), kPage);
  EXPECT_EQ(m.err, EAGAIN);
  EXPECT_EQ(m.progress, -EAGAIN);
  RangeResult c = u.Copy(l.staging.page(1), src.base(), kPage);
  EXPECT_EQ(c.err, EAGAIN);
  EXPECT_EQ(c.progress, -EAGAIN);
  EXPECT_EQ(Residency(l.staging.base(), 2), "00");

  auto ev = u.Read();
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(Describe(*ev, l.region.base()), "remove[1,2)");
  // The counter drops when the madvise thread runs again, not at read().
  ASSERT_TRUE(dontneed.WaitDone());
  EXPECT_EQ(u.Move(l.staging.base(), l.region.base(), kPage).rc, 0);
}

// The counter is per uffd (ctx->mmap_changing of the ctx the ioctl is issued
// on). libpager moves into a staging area registered with a second uffd that
// asks for no events (uffd.h Uffd::OpenForStaging): its MOVEs never see
// EAGAIN for an event pending on the region's uffd, and can take a page out
// of a range whose MADV_DONTNEED is waiting for its REMOVE to be read.
TEST(UffdContract, MoveOnAStagingUffdIgnoresAnEventPendingOnTheRegionsUffd) {
  Layout l(2);
  RawUffd region_uffd, staging_uffd;
  if (auto why = region_uffd.Open(UFFD_FEATURE_EVENT_REMOVE); !why.empty()) GTEST_SKIP() << why;
  if (auto why = staging_uffd.Open(kMoveFeatures); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(region_uffd.Register(l.region.base(), 2 * kPage), 0);
  ASSERT_EQ(staging_uffd.Register(l.staging.base(), 2 * kPage), 0);

  Background dontneed(region_uffd, [&] { madvise(l.region.base(), 2 * kPage, MADV_DONTNEED); });
  ASSERT_TRUE(WaitUntil([&] { return region_uffd.HasMessage(); })) << "no REMOVE event queued";

  ASSERT_EQ(staging_uffd.Move(l.staging.base(), l.region.base(), kPage).rc, 0);
  EXPECT_EQ(Residency(l.staging.base(), 2), "10");
  EXPECT_TRUE(PageIs(l.staging.base(), 'r'));

  auto ev = region_uffd.Read();
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(Describe(*ev, l.region.base()), "remove[0,2)");
  ASSERT_TRUE(dontneed.WaitDone());
  EXPECT_EQ(Residency(l.region.base(), 2), "00");
}

// Same staging layout, with an mremap of the region in flight: mm/mremap.c
// moves the VMA and its pages first, and only after mmap_write_unlock() queues
// the REMAP (do_mremap: mremap_userfaultfd_complete). Until the pager reads
// it, a MOVE from the old address finds no VMA there: mm/userfaultfd.c
// find_vmas_mm_locked(), `vma = vma_lookup(mm, src_start); if (!vma) return
// -ENOENT;`. ENOENT then means "moved elsewhere", not "gone".
// libpager: evictor.cc DeactivateRun takes ENOENT for "it went away ... the
// page reads as zeros" and discards the page's state.
TEST(UffdContract, MoveFromARangeMremappedAwayFailsWithEnoentBeforeTheRemapIsRead) {
  Layout l(2);
  Area moved_to(2);
  RawUffd region_uffd, staging_uffd;
  if (auto why = region_uffd.Open(UFFD_FEATURE_EVENT_REMAP); !why.empty()) GTEST_SKIP() << why;
  if (auto why = staging_uffd.Open(kMoveFeatures); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(region_uffd.Register(l.region.base(), 2 * kPage), 0);
  ASSERT_EQ(staging_uffd.Register(l.staging.base(), 2 * kPage), 0);

  Background mremap_away(region_uffd, [&] {
    mremap(l.region.base(), 2 * kPage, 2 * kPage, MREMAP_MAYMOVE | MREMAP_FIXED, moved_to.base());
  });
  ASSERT_TRUE(WaitUntil([&] { return region_uffd.HasMessage(); })) << "no REMAP event queued";

  RangeResult from_old = staging_uffd.Move(l.staging.base(), l.region.base(), kPage);
  EXPECT_EQ(from_old.err, ENOENT);
  EXPECT_EQ(from_old.progress, -ENOENT);
  EXPECT_EQ(staging_uffd.Move(l.staging.base(), moved_to.base(), kPage).rc, 0);  // the page is there

  auto ev = region_uffd.Read();
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->event, UFFD_EVENT_REMAP);
  ASSERT_TRUE(mremap_away.WaitDone());
  EXPECT_TRUE(l.region.FillHole(0, 2));
}

}  // namespace
}  // namespace uffd_contract

// The userfaultfd contract, part 1: UFFDIO_COPY (runs, VMA boundaries,
// pages already present, waking, protection).
//
// Kernel code read for these tests (v6.18-era linux-next): fs/userfaultfd.c
// userfaultfd_copy(), mm/userfaultfd.c mfill_atomic(), uffd_mfill_lock(),
// validate_dst_vma(), mfill_atomic_install_pte().
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "uffd_contract_util.h"

namespace uffd_contract {
namespace {

// ============================================================ VMA boundaries

// How a test splits one registered area into two VMAs, as programs do.
enum class Split { kMadvRandom, kMprotectReadOnly };

void SplitAt(char* at, size_t pages, Split how) {
  int rc = how == Split::kMadvRandom ? madvise(at, pages * kPage, MADV_RANDOM) : mprotect(at, pages * kPage, PROT_READ);
  ASSERT_EQ(rc, 0) << strerror(errno);
}

class UffdContractSplit : public ::testing::TestWithParam<Split> {};

// mm/userfaultfd.c uffd_mfill_lock() -> validate_dst_vma():
//   if (dst_end > dst_vma->vm_end) return false;   => ERR_PTR(-ENOENT)
// checked once, before the first page: the whole run is refused and
// userfaultfd_copy() stores the error in `copy` (put_user(ret, ...->copy)).
// libpager: fault_handler.cc ServeEmpty retries a refused fill-ahead as one
// page; CompleteRead took this ENOENT for "region gone" and discarded the
// run (issue 9, problem 1). The typed uffd layer must split runs at VMAs.
TEST_P(UffdContractSplit, CopyAcrossTwoVmasFailsWithEnoentAndNoProgress) {
  Area src(4), dst(8);
  Fill(src.base(), 4, 'c');
  RawUffd u;
  if (auto why = u.Open(0); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.Register(dst.base(), 8 * kPage), 0);
  ASSERT_NO_FATAL_FAILURE(SplitAt(dst.page(4), 4, GetParam()));

  RangeResult r = u.Copy(dst.page(2), src.base(), 4 * kPage);  // pages 2..5
  EXPECT_EQ(r.rc, -1);
  EXPECT_EQ(r.err, ENOENT);
  EXPECT_EQ(r.progress, -ENOENT);
  EXPECT_EQ(Residency(dst.base(), 8), "00000000");

  // Each side alone installs: the VMA boundary is the only reason.
  EXPECT_EQ(u.Copy(dst.page(2), src.base(), 2 * kPage).rc, 0);
  EXPECT_EQ(u.Copy(dst.page(4), src.base(), 2 * kPage).rc, 0);
  EXPECT_EQ(Residency(dst.base(), 8), "00111100");
}

INSTANTIATE_TEST_SUITE_P(UffdContract, UffdContractSplit,
                         ::testing::Values(Split::kMadvRandom, Split::kMprotectReadOnly),
                         [](const auto& info) {
                           return info.param == Split::kMadvRandom ? std::string("MadvRandom")
                                                                   : std::string("MprotectReadOnly");
                         });

// Same check (validate_dst_vma / find_vma_and_prepare_anon): a run whose
// tail is in an unregistered VMA, or in no VMA at all, is refused whole.
// libpager: fault_handler.cc ServeEmpty ("a fill ahead past the region's end
// fails entirely").
TEST(UffdContract, CopyWhoseTailLeavesTheRegisteredAreaFailsWithEnoent) {
  Area src(4), dst(8);
  Fill(src.base(), 4, 'c');
  RawUffd u;
  if (auto why = u.Open(0); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.Register(dst.base(), 4 * kPage), 0);  // pages 4..7 stay plain memory

  RangeResult into_plain = u.Copy(dst.page(2), src.base(), 4 * kPage);
  EXPECT_EQ(into_plain.err, ENOENT);
  EXPECT_EQ(into_plain.progress, -ENOENT);

  ASSERT_EQ(munmap(dst.page(4), 4 * kPage), 0);  // now a hole after the area
  RangeResult into_hole = u.Copy(dst.page(2), src.base(), 4 * kPage);
  EXPECT_EQ(into_hole.err, ENOENT);
  EXPECT_EQ(into_hole.progress, -ENOENT);
  EXPECT_EQ(Residency(dst.base(), 4), "0000");
  // Pages 4..7 are a hole: unmap only what is still ours.
  ASSERT_EQ(munmap(dst.base(), 4 * kPage), 0);
  dst.release();
}

// ============================================================ pages already present

// mm/userfaultfd.c mfill_atomic_install_pte(): `ret = -EEXIST; if
// (!pte_none_mostly(...)) goto out_unlock;` stops mfill_atomic()'s loop,
// which returns `copied ? copied : err`: bytes done win over the error.
// fs/userfaultfd.c userfaultfd_copy() then wakes [dst, dst + copied) and
// returns `range.len == uffdio_copy.len ? 0 : -EAGAIN`.
// So a present page in the middle of a run reads as EAGAIN with progress,
// exactly like "mm changing": the errno alone cannot tell them apart.
// libpager: uffd.cc Uffd::Copy handles EEXIST only at the run's start and
// reports this case as error EAGAIN (done = pages before the present one);
// uffd.h's comment "EAGAIN: the mm is changing" is incomplete.
TEST(UffdContract, CopyMeetingAPresentPageStopsWithEagainAndProgressAndWakesWhatItInstalled) {
  Area src(4), dst(4);
  Fill(src.base(), 4, 'c');
  RawUffd u;
  if (auto why = u.Open(0); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.Register(dst.base(), 4 * kPage), 0);
  Area first(1);
  Fill(first.base(), 1, 'p');
  ASSERT_EQ(u.Copy(dst.page(2), first.base(), kPage).rc, 0);  // page 2 present

  std::atomic<char> seen{0};
  Background reader(u, [&] { seen = *const_cast<volatile char*>(dst.page(0)); });
  auto fault = u.Read();
  ASSERT_TRUE(fault.has_value());
  EXPECT_EQ(Describe(*fault, dst.base()), "fault[0]");

  RangeResult r = u.Copy(dst.base(), src.base(), 4 * kPage);
  EXPECT_EQ(r.rc, -1);
  EXPECT_EQ(r.err, EAGAIN);
  EXPECT_EQ(r.progress, static_cast<int64_t>(2 * kPage));
  EXPECT_EQ(Residency(dst.base(), 4), "1110");  // page 3 was not reached
  EXPECT_TRUE(PageIs(dst.page(2), 'p'));        // the present page is untouched
  ASSERT_TRUE(reader.WaitDone()) << "a partial COPY wakes the range it installed";
  EXPECT_EQ(seen.load(), 'c');
}

// Same install check on the first page: nothing done, so the error itself is
// returned and stored in `copy`.
// libpager: uffd.cc Uffd::Copy ("Already installed: count it as done").
TEST(UffdContract, CopyStartingAtAPresentPageFailsWithEexist) {
  Area src(2), dst(2);
  Fill(src.base(), 2, 'c');
  RawUffd u;
  if (auto why = u.Open(0); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.Register(dst.base(), 2 * kPage), 0);
  ASSERT_EQ(u.Copy(dst.base(), src.base(), kPage).rc, 0);

  RangeResult r = u.Copy(dst.base(), src.base(), 2 * kPage);
  EXPECT_EQ(r.rc, -1);
  EXPECT_EQ(r.err, EEXIST);
  EXPECT_EQ(r.progress, -EEXIST);
  EXPECT_EQ(Residency(dst.base(), 2), "10");  // the page after it is not installed either
}

// ============================================================ waking

// fs/userfaultfd.c userfaultfd_copy(): `if (ret < 0) goto out;` comes before
// wake_userfault(), and UFFDIO_COPY_MODE_DONTWAKE skips it: neither an
// install with DONTWAKE nor a COPY failing with EEXIST wakes the thread
// asleep on the page. Only UFFDIO_WAKE (userfaultfd_wake) does.
// libpager: uffd.h "EEXIST ... the faulting thread is not woken by the failed
// ioctl"; uffd.cc Uffd::Copy wakes the range itself; shared/PLATFORM.md
// ("EEXIST does not wake").
TEST(UffdContract, EexistDoesNotWakeTheFaulter) {
  Area src(1), dst(1);
  Fill(src.base(), 1, 'c');
  RawUffd u;
  if (auto why = u.Open(0); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.Register(dst.base(), kPage), 0);

  std::atomic<char> seen{0};
  Background reader(u, [&] { seen = *const_cast<volatile char*>(dst.base()); });
  auto fault = u.Read();
  ASSERT_TRUE(fault.has_value());
  EXPECT_EQ(Describe(*fault, dst.base()), "fault[0]");
  EXPECT_EQ(u.sleepers().total, 1);

  ASSERT_EQ(u.Copy(dst.base(), src.base(), kPage, UFFDIO_COPY_MODE_DONTWAKE).rc, 0);
  EXPECT_EQ(u.sleepers().total, 1) << "DONTWAKE woke the faulter";

  RangeResult again = u.Copy(dst.base(), src.base(), kPage);
  EXPECT_EQ(again.err, EEXIST);
  EXPECT_EQ(u.sleepers().total, 1) << "a COPY failing with EEXIST woke the faulter";
  EXPECT_FALSE(reader.done());

  ASSERT_EQ(u.Wake(dst.base(), kPage), 0);
  ASSERT_TRUE(reader.WaitDone());
  EXPECT_EQ(seen.load(), 'c');
  EXPECT_EQ(u.sleepers().total, 0);
}

// ============================================================ protection

// mm/userfaultfd.c mfill_atomic_install_pte(): the pte is built from
// dst_vma->vm_page_prot, writable only `if (writable)` (VM_WRITE); nothing
// checks VM_READ. So COPY installs into a PROT_READ VMA a read-only page and
// into a PROT_NONE VMA an inaccessible one, holding the copied bytes.
// libpager: the fault path installs into whatever the program mprotected
// (preload/interpose.cc: "mprotect is not interposed"); evictor.cc leaves
// such pages resident (MOVE refuses them, see the move tests).
TEST(UffdContract, CopyIntoAReadOnlyVmaInstallsAReadOnlyPage) {
  Area src(1), dst(1);
  Fill(src.base(), 1, 'c');
  RawUffd u;
  if (auto why = u.Open(0); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.Register(dst.base(), kPage), 0);
  ASSERT_EQ(mprotect(dst.base(), kPage, PROT_READ), 0);

  RangeResult r = u.Copy(dst.base(), src.base(), kPage);
  ASSERT_EQ(r.rc, 0);  // else reading the page below would fault
  EXPECT_EQ(r.progress, static_cast<int64_t>(kPage));
  EXPECT_EQ(Residency(dst.base(), 1), "1");
  EXPECT_TRUE(KernelCanRead(dst.base()));
  EXPECT_FALSE(KernelCanWrite(dst.base()));
  EXPECT_TRUE(PageIs(dst.base(), 'c'));
}

TEST(UffdContract, CopyIntoAProtNoneVmaInstallsAnInaccessiblePage) {
  Area src(1), dst(1);
  Fill(src.base(), 1, 'c');
  RawUffd u;
  if (auto why = u.Open(0); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.Register(dst.base(), kPage), 0);
  ASSERT_EQ(mprotect(dst.base(), kPage, PROT_NONE), 0);

  RangeResult r = u.Copy(dst.base(), src.base(), kPage);
  ASSERT_EQ(r.rc, 0);  // else reading the page below would fault
  EXPECT_EQ(Residency(dst.base(), 1), "1");
  EXPECT_FALSE(KernelCanRead(dst.base()));
  EXPECT_FALSE(KernelCanWrite(dst.base()));
  ASSERT_EQ(mprotect(dst.base(), kPage, PROT_READ | PROT_WRITE), 0);
  EXPECT_TRUE(PageIs(dst.base(), 'c'));  // the bytes were there all along
}

// ============================================================ mremap in flight

// A region mremapped away, its REMAP queued but not yet read: a COPY to the
// old address and to the new one both fail with EAGAIN (ctx->mmap_changing,
// raised by mremap_userfaultfd_prep, dropped when the event is read). Once
// the event is read, the old address has no VMA (ENOENT) and the new one
// takes the COPY, whether or not the monitor has *handled* the event yet.
// libpager: pager.cc handles every event it reads before any install, so
// CompleteRead's COPY goes to the new address; fault_handler.cc ServeEmpty
// fills ahead only inside ranges whose events are handled, since a
// read-but-unhandled REMAP's new range already takes COPYs.
TEST(UffdContract, CopyToARangeMremappedAwayFailsWithEagainUntilTheRemapIsRead) {
  Area region(2), moved_to(2);
  RawUffd u;
  if (auto why = u.Open(UFFD_FEATURE_EVENT_REMAP); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.Register(region.base(), 2 * kPage), 0);
  Background mremap_away(u, [&] {
    mremap(region.base(), 2 * kPage, 2 * kPage, MREMAP_MAYMOVE | MREMAP_FIXED, moved_to.base());
  });
  ASSERT_TRUE(WaitUntil([&] { return u.HasMessage(); })) << "no REMAP event queued";

  std::vector<char> page(kPage, 'c');
  EXPECT_EQ(u.Copy(region.base(), page.data(), kPage).err, EAGAIN);
  EXPECT_EQ(u.Copy(moved_to.base(), page.data(), kPage).err, EAGAIN);

  auto ev = u.Read();
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->event, UFFD_EVENT_REMAP);
  ASSERT_TRUE(mremap_away.WaitDone());
  RangeResult at_old = u.Copy(region.base(), page.data(), kPage);
  EXPECT_EQ(at_old.err, ENOENT);
  EXPECT_EQ(at_old.progress, -ENOENT);
  EXPECT_EQ(u.Copy(moved_to.base(), page.data(), kPage).rc, 0);
  EXPECT_TRUE(PageIs(moved_to.base(), 'c'));
  EXPECT_TRUE(region.FillHole(0, 2));
}

}  // namespace
}  // namespace uffd_contract

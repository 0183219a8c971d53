// The userfaultfd contract, part 5: UFFD_FEATURE_WP_ASYNC with PAGEMAP_SCAN
// (both 6.7), as a dirty-tracking design would use them: write-protect a
// range, let writes resolve in the kernel, ask which pages were written.
//
// Kernel code read for these tests (v6.18-era linux-next): fs/userfaultfd.c
// userfaultfd_api() ("WP_ASYNC relies on WP_UNPOPULATED, choose it
// unconditionally"), userfaultfd_register(); mm/userfaultfd.c
// mfill_atomic_install_pte() (`if (flags & MFILL_ATOMIC_WP) _dst_pte =
// pte_mkuffd_wp(_dst_pte);`, a marker may be overwritten: pte_none_mostly),
// move_pages_pte() (`if (!pte_none(orig_dst_pte)) err = -EEXIST;`),
// move_present_pte() (the moved pte is built fresh, without uffd-wp);
// fs/proc/task_mmu.c pagemap_scan (PAGE_IS_WRITTEN = no uffd-wp bit).
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

#include "uffd_contract_util.h"

namespace uffd_contract {
namespace {

constexpr uint64_t kWpRegister = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP;

// Opens `u` with WP_ASYNC (+ MOVE) and registers `a` for missing and WP
// faults; "" or why the test must be skipped.
std::string OpenWpAsync(RawUffd& u, const Area& a) {
  if (auto why = u.Open(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_MOVE); !why.empty()) return why;
  int err = 0;
  Written(a.base(), a.pages(), &err);
  if (err != 0) return std::string("PAGEMAP_SCAN: ") + strerror(err);
  if (int e = u.Register(a.base(), a.pages() * kPage, kWpRegister); e != 0) {
    return std::string("UFFDIO_REGISTER missing|wp: ") + strerror(e);
  }
  return "";
}

TEST(UffdContract, WpAsyncWriteToAProtectedPageMarksItWrittenWithoutAFault) {
  Area a(4);
  Fill(a.base(), 2, 'r');  // pages 0, 1 present
  RawUffd u;
  if (auto why = OpenWpAsync(u, a); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.WriteProtect(a.base(), 4 * kPage, true), 0);
  int err = 0;
  EXPECT_EQ(Written(a.base(), 4, &err), "0000") << strerror(err);

  Background write(u, [&] { a.page(1)[0] = 'w'; });
  ASSERT_TRUE(write.WaitDone()) << "the write waited for a WP fault to be served";
  EXPECT_FALSE(u.HasMessage());
  EXPECT_EQ(Written(a.base(), 4, &err), "0100");
}

// An install is "written" unless it carries the uffd-wp bit itself:
// UFFDIO_COPY_MODE_WP installs it protected, a plain COPY (or a COPY into a
// page never protected) does not. MOVE cannot install over the uffd-wp
// marker WP_UNPOPULATED leaves on a protected missing page (EEXIST), and a
// page it moves into an unprotected hole reads as written.
TEST(UffdContract, WpAsyncInstallsReadAsWrittenUnlessCopiedWithModeWp) {
  Area src(2), a(4);
  Fill(src.base(), 2, 'c');
  RawUffd u;
  if (auto why = OpenWpAsync(u, a); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.WriteProtect(a.base(), 3 * kPage, true), 0);  // page 3 never protected

  EXPECT_EQ(u.Copy(a.page(0), src.base(), kPage).rc, 0);
  EXPECT_EQ(u.Copy(a.page(1), src.base(), kPage, UFFDIO_COPY_MODE_WP).rc, 0);
  RangeResult onto_marker = u.Move(a.page(2), src.page(0), kPage);
  EXPECT_EQ(onto_marker.err, EEXIST);
  EXPECT_EQ(onto_marker.progress, -EEXIST);
  EXPECT_EQ(u.Move(a.page(3), src.page(1), kPage).rc, 0);

  int err = 0;
  EXPECT_EQ(Residency(a.base(), 4), "1101");
  EXPECT_EQ(Written(a.base(), 4, &err), "1001") << strerror(err);
}

}  // namespace
}  // namespace uffd_contract

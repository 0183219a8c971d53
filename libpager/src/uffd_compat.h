// userfaultfd constants newer than Debian 12's kernel headers (6.1).
//
// The running kernel may have them (6.18 here has all of them); whether it
// does is detected at run time from UFFDIO_API, never assumed from the build
// machine's headers. Values are the kernel's uapi ABI and never change.
#pragma once

#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)  // 6.4
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)  // 6.6
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)  // 6.7
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)  // 6.8
#endif

#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
struct uffdio_move {
  __u64 dst;
  __u64 src;
  __u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
  __u64 mode;
  __s64 move;  // bytes moved, or a negated errno
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
struct uffdio_poison {
  struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
  __u64 mode;
  __s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC 0xAA
#define USERFAULTFD_IOC_NEW _IO(USERFAULTFD_IOC, 0x00)  // /dev/userfaultfd, 6.1
#endif

// PAGEMAP_SCAN (6.7): an ioctl on /proc/<pid>/pagemap that reports page
// categories by range and can write-protect what it matches; with
// UFFD_FEATURE_WP_ASYNC, "written" means "no uffd-wp bit on the pte".
// The headers that have it put it in <linux/fs.h>; older ones get it here.
#include <linux/version.h>
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
#include <linux/fs.h>
#else
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)  // 6.8
struct page_region {
  __u64 start;
  __u64 end;         // exclusive
  __u64 categories;  // PAGE_IS_*
};
#define PM_SCAN_WP_MATCHING (1 << 0)    // write-protect the pages matched
#define PM_SCAN_CHECK_WPASYNC (1 << 1)  // fail on a page not under WP_ASYNC
struct pm_scan_arg {
  __u64 size;  // sizeof(struct pm_scan_arg)
  __u64 flags;
  __u64 start;
  __u64 end;
  __u64 walk_end;  // out: where the walk stopped
  __u64 vec;       // struct page_region[vec_len]
  __u64 vec_len;
  __u64 max_pages;
  __u64 category_inverted;
  __u64 category_mask;
  __u64 category_anyof_mask;
  __u64 return_mask;
};
#endif

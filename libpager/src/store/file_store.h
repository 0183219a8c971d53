// The local-file store: swap slots in a file under a directory (a local disk,
// tmpfs, or a kernel-mounted NFS directory).
#pragma once

#include <memory>
#include <string>

#include "pager/store.h"

namespace pager {

// Creates "<dir>/libpager-<host>-<pid>-<n>.swap" with O_EXCL and mode 0600 at
// Start and removes it at Stop. `max_bytes` caps it (0: none); writes past
// the cap fail with ENOSPC like a full disk.
Result<std::unique_ptr<Store>> OpenFileStore(const std::string& dir, uint64_t max_bytes);

}  // namespace pager

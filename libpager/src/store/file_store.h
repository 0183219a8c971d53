// The local-file store: swap slots in a file under a directory (a local disk,
// tmpfs, or a kernel-mounted NFS directory).
#pragma once

#include <memory>
#include <string>

#include "pager/store.h"

namespace pager {

// Start creates a swap file in dir with a fresh random name (swap_file.h),
// exclusively and with mode 0600, and unlinks it at once: the store keeps
// it through its fd, and the file's blocks go when the fd is closed, by
// Stop or by the end of the process. `max_bytes` caps it (0: none); writes
// past the cap fail with ENOSPC like a full disk.
Result<std::unique_ptr<Store>> OpenFileStore(const std::string& dir, uint64_t max_bytes);

}  // namespace pager

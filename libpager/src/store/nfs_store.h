// The NFS store: swap slots in a file on an NFS server, reached from user
// space with libnfs (no kernel NFS client, no mount).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "pager/store.h"
#include "swap_file.h"

namespace pager {

// `url` is nfs://host[:port]/export/dir[?version=3|4&...] (libnfs syntax).
// The store picks a fresh random name for its swap file (swap_file.h,
// swap_file_name()) at once; Start creates the file in dir, exclusively and
// with mode 0600; Stop removes it. While connected, the
// store sets the file's mtime every minute (see nfs_store_impl.h).
Result<std::unique_ptr<Store>> OpenNfsStore(const std::string& url, uint64_t max_bytes,
                                            uint32_t connect_timeout_ms);

namespace nfs {
// The same with the swap file's name given: the servers of a replicated
// store (replicated_store.h) share one. `client_tag` goes into the NFSv4
// client names, which must differ between the stores of one process.
Result<std::unique_ptr<Store>> OpenNfsStore(const std::string& url, const SwapFileName& name,
                                            const std::string& client_tag, uint64_t max_bytes,
                                            uint32_t connect_timeout_ms);

// Stores started after this call touch their file every `interval` instead
// of every minute (tests).
void SetTouchIntervalForTesting(std::chrono::milliseconds interval);
}  // namespace nfs

}  // namespace pager

// The NFS store: swap slots in a file on an NFS server, reached from user
// space with libnfs (no kernel NFS client, no mount).
#pragma once

#include <memory>
#include <string>

#include "pager/store.h"

namespace pager {

// `url` is nfs://host[:port]/export/dir[?version=3|4&...] (libnfs syntax).
// The store creates a uniquely named swap file (host and PID in the name,
// exclusive create, mode 0600) in dir when started, and removes it at Stop.
Result<std::unique_ptr<Store>> OpenNfsStore(const std::string& url, uint64_t max_bytes,
                                            uint32_t connect_timeout_ms);

}  // namespace pager

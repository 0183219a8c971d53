// The swap files of a directory on an NFS server, seen from outside any
// store (pager/swap_files.h): listed for gc, removed by gc and by
// libpager-reaper. One libnfs context, driven with libnfs's blocking calls
// by the one thread that uses the object.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "pager/swap_files.h"

namespace pager::nfs {

// Mounts `url` (nfs://host[:port]/export/dir[?...]) within `timeout_ms`.
Result<std::unique_ptr<SwapDirectory>> OpenNfsSwapDirectory(const std::string& url, uint32_t timeout_ms);

}  // namespace pager::nfs

// A swap location that names several NFS servers, comma-separated:
//
//   nfs://a/export/swap,nfs://b:2050/export?version=3,nfs://c/export
//
// The one place such a list is split and checked: the store factory,
// Config::Validate, libpager-reaper and `pagerctl gc` all read it here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pager/status.h"
#include "pager/swap_files.h"

namespace pager {

// SplitSwapLocation (pager/swap_files.h) is defined here. Empty entries (a
// trailing comma) are kept, for CheckServerList to refuse.

// For a list of two or more: each entry an nfs:// URL that parses, no
// server (host and port) twice, at most kMaxServers (stats.h); `replicas`
// 0 (the default, 2), 1 or 2. The message names the entry at fault.
Status CheckServerList(const std::vector<std::string>& urls, uint32_t replicas);

// The display name of a server of the list: "host:port/export/dir".
std::string ServerName(const std::string& url);

}  // namespace pager

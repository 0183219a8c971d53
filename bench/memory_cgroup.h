// The kernel-swap baseline's side of a memory cgroup (v1, as on these
// machines): the cell moves itself into a cgroup that bench/kernel_swap.sh
// created, then caps it. The script creates and removes cgroups and swap
// devices (root only); the cell only joins and sets the limit.
#pragma once

#include <cstdint>
#include <string>

#include "pager/status.h"

namespace bench {

// Moves this process into the memory cgroup `dir` and sets its
// memory.limit_in_bytes to what the cgroup holds now (charged since this
// process joined: its stack and buffers touched from now on) plus `budget`
// bytes. Returns the limit set.
pager::Result<uint64_t> JoinMemoryCgroup(const std::string& dir, uint64_t budget);

// Most bytes the cgroup held at once (memory.max_usage_in_bytes).
pager::Result<uint64_t> CgroupPeakBytes(const std::string& dir);

}  // namespace bench

// The most memory a pager's limit and locked pool can ever have: the
// machine's (MemTotal) or, if lower, the memory cgroup's limit for the
// calling process. Config::Validate refuses a configuration above it, so a
// typo like --limit 1.5T fails at once instead of locking the machine's
// memory in every paged process.
//
// Cgroups: v2's memory.max and v1's memory.limit_in_bytes of the process's
// cgroup and of every ancestor up to the hierarchy's mount (the lowest
// counts), plus v1's hierarchical_memory_limit from memory.stat, which also
// covers ancestors hidden by a cgroup namespace. Both versions are looked at
// (a hybrid setup mounts both; only one has the memory controller).
#pragma once

#include <cstdint>
#include <string>

#include "pager/status.h"

namespace pager {

struct MemoryBound {
  uint64_t bytes = UINT64_MAX;  // UINT64_MAX: nothing could be read
  std::string what;             // the bound in words, with its source
};

// The bound for this process. `root` prefixes every path read (/proc and
// the cgroup mounts), for tests that build a fake tree; "" is the real one.
MemoryBound ProcessMemoryBound(const std::string& root = "");

// Whether a limit of `limit_bytes` plus the `locked_bytes` a pager locks up
// front (its reserve and arena) fit under `bound`. The error names the
// reserve (`reserve_name`) if the locked pool alone does not fit and the
// reserve was set explicitly, else the limit (`limit_name`), with its value
// and the bound.
Status CheckFits(uint64_t limit_bytes, uint64_t locked_bytes, bool reserve_explicit, const MemoryBound& bound,
                 const std::string& limit_name, const std::string& reserve_name);

}  // namespace pager

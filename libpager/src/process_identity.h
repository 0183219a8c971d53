// Who a process is, read from /proc: its start time (which tells a pid from
// the same pid reused later) and its effective uid (which tells whose files
// may speak for it). pagerctl's readers judge every stats file by these.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace pager {

struct ProcessIdentity {
  uint64_t start_time = 0;  // /proc/<pid>/stat field 22: clock ticks after boot
  uid_t euid = 0;           // /proc/<pid>/status "Uid:", second field
};

// Of `pid` if it exists. Both fields are read through one open /proc/<pid>
// directory, so they belong to the same process even if it dies and its pid
// is reused meanwhile (reads through a dead process's directory fail).
std::optional<ProcessIdentity> ReadProcessIdentity(pid_t pid);

// The start time of `pid` (clock ticks after boot), or 0 if it is gone.
uint64_t ProcessStartTime(pid_t pid);

}  // namespace pager

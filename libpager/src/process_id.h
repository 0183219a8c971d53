// Who a process is, in a form that outlives it and survives pid reuse: its
// pid, its start time and its PID namespace. Two processes alive at the same
// time in one PID namespace never share a pid; a pid reused later names a
// process with another start time. Swap file names carry all three
// (swap_file.h) so that gc can tell whether their maker still runs; stats
// files carry the start time (stats_segment.h).
//
// Everything here reads /proc and is for the cold path (start-up, gc).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace pager {

// The start time of `pid` in clock ticks after boot (/proc/<pid>/stat field
// 22), or 0 if it is gone or /proc cannot tell (not mounted, or mounted for
// another PID namespace than ours).
uint64_t ProcessStartTime(pid_t pid);

// A process with this pid exists (any user's: EPERM counts as existing).
bool PidExists(pid_t pid);

// Who `pid` is now: its start time, and its effective uid (which tells whose
// files may speak for it: stats_reader.cc). Both are read through one open
// /proc/<pid> directory, so they belong to the same process even if it dies
// and its pid is reused meanwhile (reads through a dead process's directory
// fail). nullopt if it is gone or /proc cannot tell (as ProcessStartTime).
struct ProcessInfo {
  uint64_t start_time = 0;  // clock ticks after boot
  uid_t euid = 0;
};
std::optional<ProcessInfo> ReadProcessInfo(pid_t pid);

// The calling process, read through /proc/self: right even where the /proc
// mounted belongs to another PID namespace than ours.
struct ProcessIdentity {
  pid_t pid = 0;
  uint64_t start_time = 0;  // clock ticks after boot; 0 without /proc
  uint64_t pid_ns = 0;      // inode of /proc/self/ns/pid; 0 without /proc
};
ProcessIdentity ThisProcess();

// Whether PID namespace `ns` (an inode number) still holds a process.
// kGone is answered only when this process can see every process of the
// host: it runs in the initial PID namespace, its /proc is that
// namespace's, and it could read every /proc/<pid>/ns/pid (root can; a
// user cannot read other users'). Otherwise a namespace not found is
// kUnknown, never kGone.
enum class NamespaceState { kLive, kGone, kUnknown };
NamespaceState PidNamespaceState(uint64_t ns);

}  // namespace pager

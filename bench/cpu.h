// CPU time, where it goes: this thread, this process, and each thread of any
// process by name (/proc/PID/task/*/schedstat, nanoseconds), so that a cell
// can tell the program's threads from the pager's and from the NFS server's.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace bench {

double ThreadCpuSeconds();   // CLOCK_THREAD_CPUTIME_ID
double ProcessCpuSeconds();  // CLOCK_PROCESS_CPUTIME_ID: every thread, exited ones included

struct ThreadCpu {
  pid_t tid = 0;
  std::string name;  // comm
  double seconds = 0;
};

// The live threads of `pid` (0: this process). Threads that exit while
// they are listed are skipped.
std::vector<ThreadCpu> ListThreads(pid_t pid);

// Sum of ListThreads(pid): a process's CPU, threads that exited before the
// call excepted (use it for long-lived servers).
double TaskCpuSeconds(pid_t pid);

// CPU seconds between two listings of the same process, by thread name,
// for the threads present in both whose tid is not in `exclude`.
std::map<std::string, double> CpuByName(const std::vector<ThreadCpu>& before, const std::vector<ThreadCpu>& after,
                                        const std::vector<pid_t>& exclude);

}  // namespace bench

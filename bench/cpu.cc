#include "cpu.h"

#include <dirent.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace bench {
namespace {

double ClockSeconds(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

double ThreadCpuSeconds() { return ClockSeconds(CLOCK_THREAD_CPUTIME_ID); }
double ProcessCpuSeconds() { return ClockSeconds(CLOCK_PROCESS_CPUTIME_ID); }

std::vector<ThreadCpu> ListThreads(pid_t pid) {
  const std::string dir = pid == 0 ? "/proc/self/task" : "/proc/" + std::to_string(pid) + "/task";
  std::vector<ThreadCpu> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const std::string task = dir + "/" + e->d_name;
    std::ifstream comm(task + "/comm"), sched(task + "/schedstat");
    ThreadCpu t;
    t.tid = static_cast<pid_t>(std::atoi(e->d_name));
    unsigned long long run_ns = 0;
    if (!std::getline(comm, t.name) || !(sched >> run_ns)) continue;  // exited meanwhile
    t.seconds = static_cast<double>(run_ns) / 1e9;
    out.push_back(t);
  }
  closedir(d);
  return out;
}

double TaskCpuSeconds(pid_t pid) {
  double s = 0;
  for (const ThreadCpu& t : ListThreads(pid)) s += t.seconds;
  return s;
}

std::map<std::string, double> CpuByName(const std::vector<ThreadCpu>& before, const std::vector<ThreadCpu>& after,
                                        const std::vector<pid_t>& exclude) {
  std::map<std::string, double> by_name;
  for (const ThreadCpu& a : after) {
    if (std::find(exclude.begin(), exclude.end(), a.tid) != exclude.end()) continue;
    auto b = std::find_if(before.begin(), before.end(), [&](const ThreadCpu& t) { return t.tid == a.tid; });
    if (b != before.end()) by_name[a.name] += a.seconds - b->seconds;
  }
  return by_name;
}

}  // namespace bench

// bench_run: runs one program as the harness measures it, and nothing else.
//
//   bench_run --result=FILE [--timeout=SECONDS] [--cgroup=DIR] -- PROGRAM [ARGS...]
//
// Forks, optionally moves the child into the memory cgroup DIR, execs
// PROGRAM (stdin, stdout and stderr are bench_run's), waits, and writes one
// JSON line to FILE: wall seconds from fork to exit, exit status (128+N
// for a signal), CPU, and the peak RSS of the program and of the children
// it waited for. At the timeout the program's whole process group is
// killed and the line says "timed_out": true.
//
// Why not from Python: the kernel keeps a process's peak RSS across exec,
// so a program forked from the ~20 MiB Python driver would report at least
// that much. bench_run is small, and its fork is what the program inherits.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "json.h"
#include "timing.h"

namespace bench {
namespace {

int Fail(const std::string& why) {
  std::fprintf(stderr, "bench_run: %s\n", why.c_str());
  return 125;
}

double TimevalSeconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; }

int Main(int argc, char** argv) {
  std::string result, cgroup;
  double timeout_s = 3600;
  int i = 1;
  for (; i < argc && std::strcmp(argv[i], "--") != 0; i++) {
    std::string a = argv[i];
    if (a.rfind("--result=", 0) == 0) {
      result = a.substr(9);
    } else if (a.rfind("--timeout=", 0) == 0) {
      timeout_s = std::strtod(a.c_str() + 10, nullptr);
    } else if (a.rfind("--cgroup=", 0) == 0) {
      cgroup = a.substr(9);
    } else {
      return Fail("unknown option '" + a + "'");
    }
  }
  if (i + 1 >= argc || result.empty() || timeout_s <= 0) {
    return Fail("usage: bench_run --result=FILE [--timeout=SECONDS] [--cgroup=DIR] -- PROGRAM [ARGS...]");
  }
  char** program = argv + i + 1;

  // The child tells a failed exec (or cgroup join) through this pipe, which
  // closes on a successful exec.
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return Fail(std::string("pipe: ") + std::strerror(errno));
  const auto t0 = Clock::now();
  const pid_t pid = fork();
  if (pid < 0) return Fail(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    close(report[0]);
    setpgid(0, 0);
    if (!cgroup.empty()) {
      std::ofstream procs(cgroup + "/cgroup.procs");
      procs << getpid() << std::flush;
      if (!procs) {
        int e = errno;
        (void)!write(report[1], &e, sizeof e);
        _exit(125);
      }
    }
    execvp(program[0], program);
    int e = errno;
    (void)!write(report[1], &e, sizeof e);
    _exit(127);
  }
  close(report[1]);
  int child_errno = 0;
  const bool exec_failed = read(report[0], &child_errno, sizeof child_errno) == sizeof child_errno;
  close(report[0]);

  // The deadline: SIGALRM interrupts wait4, then the group is killed.
  itimerval it{};
  it.it_value.tv_sec = static_cast<time_t>(timeout_s);
  it.it_value.tv_usec = static_cast<suseconds_t>((timeout_s - static_cast<double>(it.it_value.tv_sec)) * 1e6);
  struct sigaction sa{};
  sa.sa_handler = [](int) {};
  sigaction(SIGALRM, &sa, nullptr);  // no SA_RESTART: wait4 returns EINTR
  setitimer(ITIMER_REAL, &it, nullptr);
  int wstatus = 0;
  rusage ru{};
  bool timed_out = false;
  while (wait4(pid, &wstatus, 0, &ru) < 0) {
    if (errno != EINTR) return Fail(std::string("wait4: ") + std::strerror(errno));
    timed_out = true;
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
  }
  const double seconds = SecondsSince(t0);
  kill(-pid, SIGKILL);  // what the program left running in its group

  JsonObject j;
  j.Add("seconds", seconds).Add("timed_out", timed_out);
  if (exec_failed) j.Add("exec_error", std::strerror(child_errno));
  const int status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  j.Add("status", status).Add("max_rss_bytes", static_cast<uint64_t>(ru.ru_maxrss) * 1024);
  j.Add("user_s", TimevalSeconds(ru.ru_utime)).Add("sys_s", TimevalSeconds(ru.ru_stime));
  std::ofstream out(result);
  out << j.str() << "\n";
  if (!out) return Fail("cannot write --result=" + result);
  return 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) { return bench::Main(argc, argv); }

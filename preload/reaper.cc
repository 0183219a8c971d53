// libpager-reaper: removes one NFS swap file once the process image that
// made it is gone.
//
//   libpager-reaper LOCATION NAME TIMEOUT_MS    (stdin: the read end of a pipe)
//
// LOCATION may name several servers, comma-separated (a replicated store,
// docs/servers.md): the file NAME is then removed from each of them.
//
// The preload's pager is never stopped (see Fini in preload.cc), so its
// NFS store never removes its file itself. Before that store creates its
// file, the preload spawns this program (reaper_spawn.cc) with the store's
// location, the file's exact name and the connect timeout, and keeps the
// pipe's write end, close-on-exec. The pipe reaches end-of-file once no
// process image holds that end: the program exited, crashed, was killed
// (SIGKILL included), or exec'd another program. Then this program mounts
// LOCATION, removes exactly NAME (if it was ever made) and exits. A byte
// read from the pipe instead calls the job off: the store did not start.
//
// Quiet: its stdout and stderr are /dev/null. What the preload learns is
// the exit status of the process it spawned, which decides before
// detaching:
//   0  detached: a grandchild watches the pipe
//   1  could not fork
//   2  refused: bad arguments, or NAME is not the name of a swap file made
//      by the process that spawned this one (same host, pid and PID
//      namespace). It never removes any other file.
// Detaching: the spawned process forks and exits at once, and the preload
// waits for it at once; the grandchild, in a session of its own (the
// preload spawns it with setsid), is reparented to init or a subreaper, so
// the program never sees a child it did not make and the terminal's ^C
// does not reach it.
//
// A server that is unreachable when the program ends gets a minute: the
// removal is retried with back-off for that long, then the file is left to
// `pagerctl gc`. So is the file of a program that would adopt the reaper
// (a PID namespace's init, a child subreaper): see main.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "pager/swap_files.h"
#include "process_id.h"
#include "store/server_list.h"
#include "swap_file.h"

namespace {

using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;

constexpr auto kGiveUpAfter = std::chrono::seconds(60);
constexpr Ms kBackoffMin{500}, kBackoffMax{8000};

// NAME was made by the process that spawned us.
bool MadeByParent(const std::string& name) {
  pager::SwapFileName n;
  return pager::ParseSwapFileName(name, &n) && n.host == pager::SwapFileHost() && n.pid == getppid() &&
         n.pid_ns == pager::ThisProcess().pid_ns;
}

// Blocks until the pipe on stdin reaches end-of-file: true. False if a
// byte came first (the job is called off).
bool WaitForEof() {
  char byte;
  for (;;) {
    ssize_t n = read(STDIN_FILENO, &byte, 1);
    if (n > 0) return false;
    if (n == 0 || (errno != EINTR && errno != EAGAIN)) return true;
  }
}

// Removes `name` from every location still in `left`, dropping those done.
// True when none is left.
bool RemoveOnce(std::vector<std::string>* left, const std::string& name, uint32_t timeout_ms) {
  for (size_t i = 0; i < left->size();) {
    auto dir = pager::SwapDirectory::Open((*left)[i], timeout_ms);
    if (dir.ok() && (*dir)->Remove(name).ok()) {
      left->erase(left->begin() + static_cast<long>(i));
    } else {
      i++;
    }
  }
  return left->empty();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  const std::string location = argv[1], name = argv[2];
  char* end = nullptr;
  const unsigned long timeout_ms = strtoul(argv[3], &end, 10);
  if (end == argv[3] || *end != '\0' || timeout_ms == 0 || timeout_ms > 3600000 || !MadeByParent(name)) return 2;

  const pid_t program = getppid(), first = getpid();
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid > 0) _exit(0);  // the preload reaps this one at once

  // Orphaned as soon as `first` is gone. Adopted by the program itself (it
  // is a PID namespace's init, or a child subreaper), we would be its
  // child: if it waits for all its children before it exits, it would wait
  // for us while we wait for it. The file is then left to gc.
  while (getppid() == first) usleep(200);
  if (getppid() == program) return 0;

  // Signals meant for the program must not end us before the removal: a
  // stop that signals a whole cgroup (systemd) or session, and a dying
  // server's SIGPIPE. SIGKILL still does; the file is then left to gc.
  for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE}) signal(sig, SIG_IGN);
  (void)!chdir("/");  // keep no directory of the program's busy
  if (!WaitForEof()) return 0;

  const auto give_up = Clock::now() + kGiveUpAfter;
  Ms backoff = kBackoffMin;
  std::vector<std::string> left = pager::SplitSwapLocation(location);
  while (!RemoveOnce(&left, name, static_cast<uint32_t>(timeout_ms))) {
    if (Clock::now() + backoff >= give_up) return 1;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, kBackoffMax);
  }
  return 0;
}

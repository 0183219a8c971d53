// The preload's side of libpager-reaper (reaper.cc): finding it, spawning
// it for a store's swap file before the store creates it, calling it off
// when the store does not start, and keeping its pipe out of fork children.
//
// The pipe's write end is this process image's: close-on-exec, so an exec
// ends it; closed in fork children (ReaperAfterForkChild), so a child that
// outlives its parent does not keep the parent's file alive; closed by
// nothing else. Its number is recorded under the start lock, which the
// fork handlers also take: no fork can copy the end before it is known.
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "log.h"  // libpager's own (libpager/src)
#include "preload.h"

namespace pager::preload {
namespace {

char g_reaper_path[PATH_MAX];  // "" until found
int g_reaper_fd = -1;          // the pipe's write end, this image's

}  // namespace

void LocateReaper() {
  Dl_info info;
  char self[PATH_MAX];
  if (dladdr(reinterpret_cast<void*>(&LocateReaper), &info) == 0 || info.dli_fname == nullptr ||
      realpath(info.dli_fname, self) == nullptr) {
    return;
  }
  std::string dir = self;
  dir.resize(dir.rfind('/'));
  // Beside the preload in a build tree; in the libexec directory once
  // installed (its path relative to the library directory, from CMake).
  for (const std::string& path : {dir + "/libpager-reaper", dir + "/" PAGER_REAPER_FROM_LIBDIR "/libpager-reaper"}) {
    if (path.size() < sizeof g_reaper_path && access(path.c_str(), X_OK) == 0) {
      memcpy(g_reaper_path, path.c_str(), path.size() + 1);
      return;
    }
  }
}

void SpawnReaper(const std::string& location, const std::string& name, uint32_t timeout_ms) {
  const std::string leftover = "the swap file " + name + " will stay on " + location +
                               " after the program ends ('pagerctl gc --swap LOCATION' removes it)";
  if (g_reaper_path[0] == '\0') {
    PAGER_LOG_WARN("libpager-reaper not found beside the preload or in its libexec directory: %s", leftover.c_str());
    return;
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    PAGER_LOG_WARN("libpager-reaper: pipe: %s; %s", strerror(errno), leftover.c_str());
    return;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[0], STDIN_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  // None of the program's descriptors (a pipe's write end above all) may
  // live on in the reaper.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  const std::string timeout = std::to_string(timeout_ms);
  char* argv[] = {g_reaper_path, const_cast<char*>(location.c_str()), const_cast<char*>(name.c_str()),
                  const_cast<char*>(timeout.c_str()), nullptr};
  char* envp[] = {nullptr};  // no LD_PRELOAD: the reaper is not paged
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, g_reaper_path, &actions, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(fds[0]);
  if (rc != 0) {
    close(fds[1]);
    PAGER_LOG_WARN("cannot start %s: %s; %s", g_reaper_path, strerror(rc), leftover.c_str());
    return;
  }
  // It forks and exits at once. ECHILD: the program reaped it first (a
  // SIGCHLD handler, or SIGCHLD ignored); it detached all the same.
  int status = 0;
  pid_t w;
  do {
    w = waitpid(pid, &status, 0);
  } while (w < 0 && errno == EINTR);
  if (w == pid && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    close(fds[1]);
    PAGER_LOG_WARN("%s refused the job (status %d); %s", g_reaper_path, status, leftover.c_str());
    return;
  }
  // Far from 0-2: a program that closes its stdout before exiting (sort
  // does) must not end the pipe while its exit handlers still fault pages in.
  g_reaper_fd = fcntl(fds[1], F_DUPFD_CLOEXEC, 100);
  if (g_reaper_fd < 0) g_reaper_fd = fds[1];
  else close(fds[1]);
}

void CancelReaper() {
  if (g_reaper_fd < 0) return;
  const char cancel = 'c';
  (void)!write(g_reaper_fd, &cancel, 1);
  close(g_reaper_fd);
  g_reaper_fd = -1;
}

void ReaperAfterForkChild() {
  if (g_reaper_fd >= 0) close(g_reaper_fd);
  g_reaper_fd = -1;
}

}  // namespace pager::preload

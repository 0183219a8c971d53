// A real nfs-ganesha on loopback for tests: drives scripts/nfs-server.sh.
// Each instance has its own export directory, state directory and ports, so
// tests may run in parallel. Nothing is mocked.
#pragma once

#include <string>

namespace pager::testing {

class NfsServer {
 public:
  NfsServer() = default;
  NfsServer(const NfsServer&) = delete;
  NfsServer& operator=(const NfsServer&) = delete;
  ~NfsServer() { Stop(); }

  // Starts a server exporting a fresh temporary directory. On failure
  // returns false and error() says why (the script's output).
  bool Start();
  // SIGTERM (then SIGKILL), waits, removes the state and export directories.
  void Stop();
  // A crash: SIGKILL, the state is kept for Restart().
  void Kill();
  // Starts again on the same ports and export (kills first if running).
  bool Restart();
  void Pause();   // SIGSTOP
  void Resume();  // SIGCONT

  // nfs://127.0.0.1/export[/subdir]?nfsport=P&mountport=M[&extra]
  std::string url(const std::string& subdir = "", const std::string& extra_query = "") const;
  // A read-only export and one this client may not mount, same server.
  std::string ro_url() const { return ro_url_; }
  std::string denied_url() const { return denied_url_; }
  // The exported directory on the local file system.
  const std::string& export_dir() const { return export_dir_; }
  int pid() const { return pid_; }
  const std::string& error() const { return error_; }

 private:
  bool Run(const std::string& args, std::string* out);
  void Parse(const std::string& out);
  void ReportIfFailed() const;

  std::string url_, ro_url_, denied_url_, state_, export_dir_, error_;
  int pid_ = 0;
};

// A loopback TCP port nothing listens on (bound, read, released): for
// "nothing answers there" tests.
int FreePort();

}  // namespace pager::testing

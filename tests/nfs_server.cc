#include "nfs_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <gtest/gtest.h>

#ifndef PAGER_SOURCE_DIR
#error "PAGER_SOURCE_DIR must name the source tree (set in tests/CMakeLists.txt)"
#endif

namespace pager::testing {
namespace {

std::string Script() { return std::string(PAGER_SOURCE_DIR) + "/scripts/nfs-server.sh"; }

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

bool NfsServer::Run(const std::string& args, std::string* out) {
  std::string cmd = Quote(Script()) + " " + args + " 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) {
    error_ = "popen failed: " + cmd;
    return false;
  }
  char buf[4096];
  std::string text;
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  int rc = pclose(f);
  if (out) *out = text;
  if (rc != 0 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
    error_ = cmd + " failed: " + text;
    return false;
  }
  return true;
}

// Lines KEY='value' or KEY=value, as the script prints them for eval.
void NfsServer::Parse(const std::string& out) {
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    if (v.size() >= 2 && v.front() == '\'' && v.back() == '\'') v = v.substr(1, v.size() - 2);
    if (k == "NFS_URL") url_ = v;
    if (k == "NFS_RO_URL") ro_url_ = v;
    if (k == "NFS_DENIED_URL") denied_url_ = v;
    if (k == "NFS_STATE") state_ = v;
    if (k == "NFS_PID") pid_ = atoi(v.c_str());
  }
}

bool NfsServer::Start() {
  char tmpl[] = "/tmp/libpager-nfs-export.XXXXXX";
  if (!mkdtemp(tmpl)) {
    error_ = "mkdtemp failed";
    return false;
  }
  export_dir_ = tmpl;
  std::string out;
  if (!Run("start " + Quote(export_dir_), &out)) return false;
  Parse(out);
  if (url_.empty() || state_.empty() || pid_ == 0) {
    error_ = "unexpected output of nfs-server.sh start: " + out;
    return false;
  }
  return true;
}

// A failed test against the server says what the server was doing: alive or
// not, and the end of its log (the state directory goes with Stop).
void NfsServer::ReportIfFailed() const {
  if (state_.empty() || !::testing::Test::HasFailure()) return;
  bool alive = pid_ > 0 && kill(pid_, 0) == 0;
  fprintf(stderr, "nfs server pid %d (%s), state %s; end of its log:\n", pid_, alive ? "alive" : "gone",
          state_.c_str());
  for (const char* name : {"/ganesha.log", "/ganesha.out"}) {
    std::ifstream in(state_ + name);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    for (size_t i = lines.size() > 15 ? lines.size() - 15 : 0; i < lines.size(); i++)
      fprintf(stderr, "  %s\n", lines[i].c_str());
  }
}

void NfsServer::Stop() {
  ReportIfFailed();
  if (!state_.empty()) Run("stop " + Quote(state_), nullptr);
  state_.clear();
  pid_ = 0;
  if (!export_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(export_dir_, ec);
    export_dir_.clear();
  }
}

void NfsServer::Kill() { Run("kill " + Quote(state_), nullptr); }

bool NfsServer::Restart() {
  std::string out;
  if (!Run("restart " + Quote(state_), &out)) return false;
  Parse(out);
  return true;
}

void NfsServer::Pause() { Run("pause " + Quote(state_), nullptr); }
void NfsServer::Resume() { Run("resume " + Quote(state_), nullptr); }

std::string NfsServer::url(const std::string& subdir, const std::string& extra_query) const {
  size_t q = url_.find('?');
  std::string u = url_.substr(0, q) + (subdir.empty() ? "" : "/" + subdir) + url_.substr(q);
  return extra_query.empty() ? u : u + "&" + extra_query;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

}  // namespace pager::testing

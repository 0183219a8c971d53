#include "memory_cgroup.h"

#include <unistd.h>

#include <cerrno>
#include <fstream>

namespace bench {
namespace {

pager::Status Write(const std::string& path, const std::string& value) {
  std::ofstream f(path);
  f << value;
  f.flush();
  if (!f) return pager::Status::FromErrno("write '" + value + "' to " + path, errno);
  return pager::Status();
}

pager::Result<uint64_t> ReadNumber(const std::string& path) {
  std::ifstream f(path);
  uint64_t v = 0;
  if (!(f >> v)) return pager::Status::FromErrno("read " + path, errno);
  return v;
}

}  // namespace

pager::Result<uint64_t> JoinMemoryCgroup(const std::string& dir, uint64_t budget) {
  pager::Status s = Write(dir + "/cgroup.procs", std::to_string(getpid()));
  if (!s.ok()) return s;
  auto usage = ReadNumber(dir + "/memory.usage_in_bytes");
  if (!usage.ok()) return usage.status();
  const uint64_t limit = *usage + budget;
  s = Write(dir + "/memory.limit_in_bytes", std::to_string(limit));
  if (!s.ok()) return s;
  return limit;
}

pager::Result<uint64_t> CgroupPeakBytes(const std::string& dir) { return ReadNumber(dir + "/memory.max_usage_in_bytes"); }

}  // namespace bench

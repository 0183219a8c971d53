// Command lines of the bench binaries: --key=value options only, each
// checked; the driver (bench/pager_bench.py) writes them, people rarely do.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "pager/units.h"

namespace bench {

class Args {
 public:
  // Fails (message in error()) on anything but --key=value.
  bool Parse(int argc, char** argv) {
    program_ = argv[0];
    program_ = program_.substr(program_.rfind('/') + 1);
    for (int i = 1; i < argc; i++) {
      std::string a = argv[i];
      size_t eq = a.find('=');
      if (a.rfind("--", 0) != 0 || eq == std::string::npos) {
        error_ = "'" + a + "': expected --key=value";
        return false;
      }
      values_[a.substr(2, eq - 2)] = a.substr(eq + 1);
    }
    return true;
  }

  std::string Str(const std::string& key, const std::string& def = "") const {
    auto it = values_.find(key);
    return it == values_.end() ? def : it->second;
  }
  // A size ("512M", "4096"); `def` if absent; 0 and error() if unparsable.
  uint64_t Size(const std::string& key, uint64_t def = 0) {
    auto it = values_.find(key);
    if (it == values_.end()) return def;
    auto r = pager::ParseSize(it->second);
    if (!r.ok()) {
      error_ = "--" + key + "=" + it->second + ": " + r.status().message();
      return 0;
    }
    return *r;
  }
  double Number(const std::string& key, double def) const {
    auto it = values_.find(key);
    return it == values_.end() ? def : std::strtod(it->second.c_str(), nullptr);
  }
  std::vector<std::string> List(const std::string& key, const std::string& def = "") const {
    std::vector<std::string> out;
    std::string s = Str(key, def);
    for (size_t start = 0; start <= s.size();) {
      size_t end = s.find(',', start);
      if (end == std::string::npos) end = s.size();
      if (end > start) out.push_back(s.substr(start, end - start));
      start = end + 1;
    }
    return out;
  }
  const std::string& error() const { return error_; }

  // Says why the program cannot go on, after its name, on stderr; returns
  // the exit status for it (2: the command line, as for a usage error).
  int Fail(const std::string& why) const {
    std::fprintf(stderr, "%s: %s\n", program_.c_str(), why.c_str());
    return 2;
  }

 private:
  std::map<std::string, std::string> values_;
  std::string program_, error_;
};

}  // namespace bench

// One JSON object on one line, written field by field: how the bench
// binaries hand their figures to the driver (bench/pager_bench.py). Keys
// carry their unit (seconds, bytes, _us); a figure that does not apply is
// null, never a made-up zero.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>

namespace bench {

class JsonObject {
 public:
  JsonObject& Add(const char* key, const std::string& v) { return Raw(key, Quote(v)); }
  JsonObject& Add(const char* key, const char* v) { return Raw(key, Quote(v)); }
  JsonObject& Add(const char* key, bool v) { return Raw(key, v ? "true" : "false"); }
  JsonObject& Add(const char* key, uint64_t v) { return Raw(key, std::to_string(v)); }
  JsonObject& Add(const char* key, int v) { return Raw(key, std::to_string(v)); }
  JsonObject& Add(const char* key, double v) {
    if (!std::isfinite(v)) return Raw(key, "null");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return Raw(key, buf);
  }
  JsonObject& Add(const char* key, std::optional<double> v) { return v ? Add(key, *v) : Raw(key, "null"); }
  JsonObject& Add(const char* key, const std::map<std::string, double>& m) {
    JsonObject o;
    for (const auto& [k, v] : m) o.Add(k.c_str(), v);
    return Raw(key, o.str());
  }
  JsonObject& Raw(const char* key, const std::string& json) {
    body_ += (body_.empty() ? "" : ",") + Quote(key) + ":" + json;
    return *this;
  }
  std::string str() const { return "{" + body_ + "}"; }
  // Prints the object as one line on stdout and flushes it: the driver
  // reads figures as they come (a cell killed at its deadline keeps them).
  void Print() const {
    std::printf("%s\n", str().c_str());
    std::fflush(stdout);
  }

 private:
  static std::string Quote(const std::string& s) {
    std::string q = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') {
        q += '\\';
        q += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        q += buf;
      } else {
        q += c;
      }
    }
    return q + "\"";
  }
  std::string body_;
};

}  // namespace bench

#include "common.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "pager/monitor.h"
#include "pager/units.h"

namespace pagerctl {

bool ParseArgs(const std::vector<std::string>& args, const po::options_description& desc,
               const po::positional_options_description& pos, const std::string& usage, po::variables_map* vm) {
  try {
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), *vm);
    if (vm->count("help")) {
      std::cout << usage << "\n" << desc;
      return false;
    }
    po::notify(*vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  return true;
}

uint64_t ParseSizeArg(const std::string& option, const std::string& text) {
  auto r = pager::ParseSize(text);
  if (!r.ok()) throw UsageError(option + ": " + r.status().message());
  return *r;
}

double ParseSecondsArg(const std::string& option, const std::string& text) {
  char* end = nullptr;
  double v = strtod(text.c_str(), &end);
  std::string unit(end);
  double mult = unit.empty() || unit == "s" ? 1
                : unit == "ms"               ? 0.001
                : unit == "m"                ? 60
                : unit == "h"                ? 3600
                                             : -1;
  if (end == text.c_str() || mult < 0 || !std::isfinite(v) || v < 0) {
    throw UsageError(option + ": '" + text + "' is not a duration (examples: 2, 0.5, 1.5s, 250ms, 10m, 1h)");
  }
  return v * mult;
}

std::string Size(uint64_t bytes, bool dash_zero) {
  if (bytes == 0 && dash_zero) return "-";
  return pager::FormatSize(bytes);
}

std::string Count(double n) {
  char buf[32];
  if (n < 1000) {
    snprintf(buf, sizeof buf, n == std::floor(n) ? "%.0f" : "%.1f", n);
  } else if (n < 1e6) {
    snprintf(buf, sizeof buf, "%.1fk", n / 1e3);
  } else if (n < 1e9) {
    snprintf(buf, sizeof buf, "%.1fM", n / 1e6);
  } else {
    snprintf(buf, sizeof buf, "%.1fG", n / 1e9);
  }
  return buf;
}

std::string Duration(double s) {
  char buf[32];
  if (s > 0 && s < 0.001) {
    snprintf(buf, sizeof buf, "<1ms");
  } else if (s < 1) {
    snprintf(buf, sizeof buf, "%.0fms", s * 1e3);
  } else if (s < 60) {
    snprintf(buf, sizeof buf, "%.1fs", s);
  } else if (s < 3600) {
    snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s / 60), static_cast<int>(s) % 60);
  } else {
    snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s / 3600), static_cast<int>(s / 60) % 60);
  }
  return buf;
}

std::string JsonQuote(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char b[8];
      snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += static_cast<char>(c);
    }
  }
  return o + "\"";
}

void AddStatsDirOption(po::options_description* desc) {
  desc->add_options()("stats-dir", po::value<std::string>()->value_name("DIR"),
                      "where pagers publish their stats (default: $LIBPAGER_STATS_DIR, else /dev/shm)");
}

std::string StatsDir(const po::variables_map& vm) {
  return vm.count("stats-dir") ? vm["stats-dir"].as<std::string>() : pager::DefaultStatsDir();
}

}  // namespace pagerctl

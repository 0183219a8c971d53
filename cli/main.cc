// pagerctl: runs programs under libpager and shows what every paged process
// is doing. Subcommands in the style of ip(8) and perf(1); see docs/cli.md.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "common.h"

namespace {

constexpr const char* kUsage =
    "usage: pagerctl COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "Runs programs with their memory paged by libpager, and watches paged processes.\n"
    "\n"
    "commands:\n"
    "  run      run a program under the pager:   pagerctl run --limit 256M -- PROGRAM [ARGS]\n"
    "  ps       one line per paged process\n"
    "  stats    every counter of one paged process (--json, --watch)\n"
    "  top      live view of all paged processes (q quits)\n"
    "  gc       remove swap files and stats files left by processes that are gone\n"
    "  metrics  every paged process's counters for Prometheus (--listen serves HTTP)\n"
    "  check    whether libpager can work here: kernel, rights, limits, swap location\n"
    "\n"
    "'pagerctl COMMAND --help' describes a command. Sizes take K, M, G, T (binary).\n"
    "Exit status: 0 ok, 1 runtime error, 2 usage error; run: the program's own.\n";

struct Command {
  const char* name;
  int (*fn)(const std::vector<std::string>&);
};

constexpr Command kCommands[] = {
    {"run", pagerctl::Run}, {"ps", pagerctl::Ps}, {"stats", pagerctl::StatsCmd},
    {"top", pagerctl::Top}, {"gc", pagerctl::Gc}, {"metrics", pagerctl::Metrics}, {"check", pagerctl::Check},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fputs(kUsage, stderr);
    return pagerctl::kExitUsage;
  }
  std::string cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    fputs(kUsage, stdout);
    return pagerctl::kExitOk;
  }
  if (cmd == "--version") {
    printf("pagerctl (libpager) %s\n", PAGERCTL_VERSION);
    return pagerctl::kExitOk;
  }
  for (const Command& c : kCommands) {
    if (cmd != c.name) continue;
    std::vector<std::string> args(argv + 2, argv + argc);
    try {
      return c.fn(args);
    } catch (const pagerctl::UsageError& e) {
      fprintf(stderr, "pagerctl %s: %s\nTry 'pagerctl %s --help'.\n", c.name, e.what(), c.name);
      return pagerctl::kExitUsage;
    } catch (const std::exception& e) {
      fprintf(stderr, "pagerctl %s: %s\n", c.name, e.what());
      return pagerctl::kExitError;
    }
  }
  fprintf(stderr, "pagerctl: unknown command '%s'\nTry 'pagerctl --help'.\n", cmd.c_str());
  return pagerctl::kExitUsage;
}

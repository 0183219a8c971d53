// What pagerctl's subcommands share: their entry points, the usage-error
// convention (exit 2), option parsing helpers and output formatting.
#pragma once

#include <boost/program_options.hpp>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace pagerctl {

namespace po = boost::program_options;

// Exit codes (docs/cli.md). `run` passes the program's own status through.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // something failed at run time
inline constexpr int kExitUsage = 2;  // bad arguments or settings

// A bad argument: main prints it with a hint to --help and exits 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Each subcommand takes its arguments after its name (argv[0] excluded).
int Run(const std::vector<std::string>& args);
int Ps(const std::vector<std::string>& args);
int StatsCmd(const std::vector<std::string>& args);
int Top(const std::vector<std::string>& args);
int Gc(const std::vector<std::string>& args);
int Metrics(const std::vector<std::string>& args);
int Check(const std::vector<std::string>& args);

// The preload library pagerctl run uses: `given` (--preload) if not empty,
// else $PAGERCTL_PRELOAD, else the one beside pagerctl (cli/run.cc). A
// UsageError lists where it looked.
std::string FindPreload(std::string given);

// Parses `args` against `desc` and `pos`, turning Boost's exceptions into
// UsageError. Returns false if --help was asked for (and printed with
// `usage` above the options).
bool ParseArgs(const std::vector<std::string>& args, const po::options_description& desc,
               const po::positional_options_description& pos, const std::string& usage, po::variables_map* vm);

// "64M" -> bytes; errors name the option: "--limit '64X': ...".
uint64_t ParseSizeArg(const std::string& option, const std::string& text);
// "2", "0.5", "1.5s", "250ms", "10m", "1h" -> seconds; errors name the option.
double ParseSecondsArg(const std::string& option, const std::string& text);

// "1.50 GiB" style, "-" for zero when `dash_zero`.
std::string Size(uint64_t bytes, bool dash_zero = false);
// "12.3k" style for counts and rates.
std::string Count(double n);
// "350ms", "1.2s", "3m04s", "26h05m".
std::string Duration(double seconds);

// `s` as a JSON string, quotes included.
std::string JsonQuote(const std::string& s);

// The directory pagers publish their stats in: --stats-dir if given, else
// $LIBPAGER_STATS_DIR, else /dev/shm.
void AddStatsDirOption(po::options_description* desc);
std::string StatsDir(const po::variables_map& vm);

}  // namespace pagerctl

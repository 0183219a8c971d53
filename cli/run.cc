// pagerctl run: checks every setting, the swap location (by connecting to
// it) and the program before anything starts, then execs the program with
// libpager preloaded and configured through LIBPAGER_*. After the exec the
// process is the program: its exit status is pagerctl's.
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <optional>

#include "common.h"
#include "pager/monitor.h"
#include "pager/pager.h"
#include "pager/store.h"
#include "pager/units.h"

namespace pagerctl {
namespace {

constexpr const char* kUsage =
    "usage: pagerctl run [OPTIONS] [--] PROGRAM [ARGS...]\n"
    "\n"
    "Runs PROGRAM, unmodified, with its large anonymous mappings paged by libpager\n"
    "(LD_PRELOAD of libpager_preload.so), keeping them under --limit. Everything is\n"
    "checked first, the swap location by creating a swap file there (connecting to\n"
    "an NFS server), and so is PROGRAM: a bad setting or a PROGRAM that cannot run\n"
    "exits 2 before anything starts. Then the exit status is the program's.\n"
    "\n"
    "Options not given keep their LIBPAGER_* variable's value if set. Default swap:\n"
    "a file in $TMPDIR, else in /var/tmp, removed when the program exits.\n"
    "\n"
    "examples:\n"
    "  pagerctl run --limit 512M -- python3 build_index.py\n"
    "  pagerctl run --limit 1G --swap 'nfs://filer/export/swap?version=3' -- ./sim\n"
    "  pagerctl run --limit 4G --swap nfs://a/export,nfs://b/export,nfs://c/export -- ./sim\n";

class NullListener : public pager::StoreListener {
 public:
  void OnComplete(pager::StoreOp*) override {}
  void OnBackendState(pager::BackendState, const std::string&) override {}
};

// The swap location must take a swap file now: a server that is down, an
// export that is read-only, a directory that is not writable all fail here,
// not later inside the program.
void CheckSwap(const pager::Config& cfg) {
  const std::string where = cfg.EffectiveSwap();
  auto store = pager::OpenStore(where, cfg.store_options());
  if (!store.ok()) throw UsageError("--swap: " + store.status().message());
  NullListener listener;
  pager::Status s = (*store)->Start(&listener);
  if (!s.ok()) throw UsageError("--swap: " + s.message());
  (*store)->Stop();  // removes the test swap file
}

std::string ExeDir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

bool IsFile(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

// --preload, else $PAGERCTL_PRELOAD, else beside pagerctl: the build tree
// (build/cli/pagerctl -> build/preload/) or an install (bin/ -> its libdir,
// e.g. lib/ or lib/x86_64-linux-gnu/, relative so that a tree installed
// under DESTDIR or unpacked elsewhere works too).
std::string FindPreload(std::string given) {
  if (given.empty()) {
    if (const char* e = getenv("PAGERCTL_PRELOAD"); e != nullptr && e[0] != '\0') given = e;
  }
  if (!given.empty()) {
    if (!IsFile(given)) throw UsageError("--preload: '" + given + "': no such file");
    if (given[0] != '/') {
      char cwd[PATH_MAX];
      if (getcwd(cwd, sizeof cwd) != nullptr) given = std::string(cwd) + "/" + given;
    }
    return given;
  }
  const std::string dir = ExeDir();
  const std::string candidates[] = {
      dir + "/../preload/libpager_preload.so",
      dir + "/" PAGERCTL_BINDIR_TO_LIBDIR "/libpager_preload.so",
  };
  for (const std::string& c : candidates) {
    if (IsFile(c)) {
      char real[PATH_MAX];
      return realpath(c.c_str(), real) != nullptr ? real : c;
    }
  }
  std::string msg = "libpager_preload.so not found; looked in:";
  for (const std::string& c : candidates) msg += "\n  " + c;
  throw UsageError(msg + "\nbuild preload/, or give --preload PATH or PAGERCTL_PRELOAD");
}

namespace {

// Checked before the swap location, so a typo fails fast.
void CheckProgram(const std::string& prog) {
  auto runnable = [](const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(p.c_str(), X_OK) == 0;
  };
  if (prog.find('/') != std::string::npos) {
    if (runnable(prog)) return;
    throw UsageError("'" + prog + "': " + (access(prog.c_str(), F_OK) == 0 ? "not executable" : "no such file"));
  }
  const char* path = getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  for (;;) {
    size_t end = dirs.find(':', start);
    std::string d = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (runnable((d.empty() ? "." : d) + "/" + prog)) return;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  throw UsageError("'" + prog + "': command not found in PATH");
}

// Splits at "--", or else at the first argument that is neither an option
// nor an option's value: options after PROGRAM are PROGRAM's.
void SplitCommand(const std::vector<std::string>& args, const po::options_description& desc,
                  std::vector<std::string>* ours, std::vector<std::string>* program) {
  for (size_t i = 0; i < args.size(); i++) {
    const std::string& a = args[i];
    if (a == "--") {
      program->assign(args.begin() + static_cast<long>(i) + 1, args.end());
      return;
    }
    if (a.size() > 1 && a[0] == '-') {
      ours->push_back(a);
      if (a.rfind("--", 0) == 0 && a.find('=') == std::string::npos) {
        const po::option_description* o = desc.find_nothrow(a.substr(2), false);
        if (o != nullptr && o->semantic()->max_tokens() > 0 && i + 1 < args.size()) ours->push_back(args[++i]);
      } else if (a.size() == 2) {
        const po::option_description* o = desc.find_nothrow(a.substr(1), false, false, true);
        if (o != nullptr && o->semantic()->max_tokens() > 0 && i + 1 < args.size()) ours->push_back(args[++i]);
      }
      continue;
    }
    program->assign(args.begin() + static_cast<long>(i), args.end());
    return;
  }
}

void SetEnv(const char* name, const std::string& value) { setenv(name, value.c_str(), 1); }

// How Config::Validate names a setting to a user of `run`: by its option if
// it has one (an option not given stands for its LIBPAGER_* variable).
std::string OptionFor(const std::string& variable) {
  static const std::pair<const char*, const char*> kOptions[] = {
      {"LIBPAGER_LIMIT", "--limit"},
      {"LIBPAGER_RESERVE", "--reserve"},
      {"LIBPAGER_SWAP_MAX", "--swap-max"},
      {"LIBPAGER_READAHEAD", "--readahead"},
      {"LIBPAGER_SWAP", "--swap"},
      {"LIBPAGER_REPLICAS", "--replicas"},
      {"LIBPAGER_SERVER_TIMEOUT", "--server-timeout"},
      {"LIBPAGER_PREFETCH", "--prefetch"},
  };
  for (const auto& [var, option] : kOptions) {
    if (variable == var) return option;
  }
  return variable;
}

}  // namespace

int Run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()
      ("help,h", "show this help")
      ("limit,l", po::value<std::string>()->value_name("SIZE"),
       "most paged memory resident at once, e.g. 512M (required unless LIBPAGER_LIMIT is set)")
      ("swap,s", po::value<std::string>()->value_name("LOCATION"),
       "where swapped pages go: DIR, file:///DIR, nfs://HOST[:PORT]/EXPORT[/DIR][?version=3|4], "
       "several nfs:// URLs comma-separated (pages spread over the servers, see --replicas), "
       "or memory: (default: $TMPDIR, else /var/tmp)")
      ("replicas", po::value<uint32_t>()->value_name("1|2"),
       "with several servers: copies of each page, each on another server (default: 2)")
      ("server-timeout", po::value<std::string>()->value_name("DURATION"),
       "with several servers: one unanswered this long is marked down and its pages are "
       "served and copied from the others (default: 30s)")
      ("swap-max", po::value<std::string>()->value_name("SIZE"), "cap on the swap file (default: none)")
      ("reserve", po::value<std::string>()->value_name("SIZE"),
       "the pager's locked emergency pool (default: 1% of the limit, 8M to 64M)")
      ("mmap-threshold", po::value<std::string>()->value_name("SIZE"),
       "page private anonymous mmaps at least this large; 0: none (default: 256K)")
      ("no-heap", "do not page the malloc heap (by default the preload's malloc pages it)")
      ("start-at", po::value<std::string>()->value_name("SIZE"),
       "start the pager once this much memory could be paged; 0: before the program's main "
       "(default: half the limit)")
      ("encrypt", "encrypt and authenticate every page in the store (default: on for nfs://, off for a directory)")
      ("no-encrypt", "store pages in clear, even on an NFS server")
      ("policy", po::value<std::string>()->value_name("clock|fifo"), "eviction policy (default: clock)")
      ("readahead", po::value<uint32_t>()->value_name("PAGES"), "read-ahead bound in pages, 1..1024 (default: 64)")
      ("prefetch", po::value<uint32_t>()->value_name("PAGES"),
       "how far ahead of a scan to read, in pages, 0..65536; 0: never (default: 1024)")
      ("connect-timeout", po::value<std::string>()->value_name("DURATION"),
       "how long to wait for the swap server, e.g. 10s (default: 10s)")
      ("disable", po::value<std::string>()->value_name("FEATURES"),
       "kernel features to treat as absent: move,wp,poison,remap,unmap,remove,fork")
      ("log", po::value<std::string>()->value_name("LEVEL"), "libpager's log level: error|warn|info|debug")
      ("no-stats", "do not publish stats (pagerctl ps/stats/top will not see the program)")
      ("stats-dir", po::value<std::string>()->value_name("DIR"),
       "where to publish stats, in a directory per user (default: /dev/shm)")
      ("preload", po::value<std::string>()->value_name("PATH"),
       "libpager_preload.so to use (default: $PAGERCTL_PRELOAD, else found beside pagerctl)");

  std::vector<std::string> ours, program;
  SplitCommand(args, desc, &ours, &program);
  po::variables_map vm;
  if (!ParseArgs(ours, desc, po::positional_options_description(), kUsage, &vm)) return kExitOk;
  if (program.empty()) throw UsageError("no PROGRAM given (pagerctl run [OPTIONS] -- PROGRAM [ARGS])");

  auto env = pager::Config::FromEnvironment();
  if (!env.ok()) throw UsageError(env.status().message());
  pager::Config cfg = *env;
  auto str = [&](const char* o) { return vm[o].as<std::string>(); };
  if (vm.count("limit")) cfg.memory_limit = ParseSizeArg("--limit", str("limit"));
  if (vm.count("swap")) cfg.swap = str("swap");
  if (vm.count("swap-max")) cfg.swap_max = ParseSizeArg("--swap-max", str("swap-max"));
  if (vm.count("reserve")) cfg.reserve = ParseSizeArg("--reserve", str("reserve"));
  std::optional<uint64_t> mmap_threshold;
  if (vm.count("mmap-threshold")) mmap_threshold = ParseSizeArg("--mmap-threshold", str("mmap-threshold"));
  if (vm.count("policy")) {
    if (str("policy") == "clock") {
      cfg.policy = pager::EvictionPolicy::kClock;
    } else if (str("policy") == "fifo") {
      cfg.policy = pager::EvictionPolicy::kFifo;
    } else {
      throw UsageError("--policy: '" + str("policy") + "': expected clock or fifo");
    }
  }
  if (vm.count("readahead")) cfg.readahead_pages = vm["readahead"].as<uint32_t>();
  if (vm.count("replicas")) cfg.replicas = vm["replicas"].as<uint32_t>();
  if (vm.count("server-timeout")) {
    double s = ParseSecondsArg("--server-timeout", str("server-timeout"));
    if (s > 3600) throw UsageError("--server-timeout: at most 1h");
    cfg.server_timeout_ms = static_cast<uint32_t>(s * 1000);
  }
  if (vm.count("prefetch")) cfg.prefetch_pages = vm["prefetch"].as<uint32_t>();
  if (vm.count("connect-timeout")) {
    double s = ParseSecondsArg("--connect-timeout", str("connect-timeout"));
    if (s > 3600) throw UsageError("--connect-timeout: at most 1h");
    cfg.connect_timeout_ms = static_cast<uint32_t>(s * 1000);
  }
  if (vm.count("disable")) cfg.disable_features = str("disable");
  if (vm.count("log")) {
    const std::string l = str("log");
    if (l != "error" && l != "warn" && l != "info" && l != "debug") {
      throw UsageError("--log: '" + l + "': expected error, warn, info or debug");
    }
  }
  if (vm.count("encrypt") && vm.count("no-encrypt")) throw UsageError("--encrypt and --no-encrypt: pick one");
  if (vm.count("encrypt")) cfg.encrypt = pager::Config::Encrypt::kOn;
  if (vm.count("no-encrypt")) cfg.encrypt = pager::Config::Encrypt::kOff;
  if (vm.count("no-stats")) cfg.publish_stats = false;
  if (vm.count("stats-dir")) cfg.stats_dir = str("stats-dir");
  if (cfg.memory_limit == 0) throw UsageError("--limit is required (or set LIBPAGER_LIMIT)");
  if (pager::Status s = cfg.Validate(OptionFor); !s.ok()) throw UsageError(s.message());
  if (cfg.publish_stats) {
    auto dir = pager::UserStatsDir(cfg.stats_dir);
    if (!dir.ok()) {
      throw UsageError("--stats-dir: " + dir.status().message() + " (use --no-stats to run without published stats)");
    }
  }

  CheckProgram(program[0]);
  const std::string preload = FindPreload(vm.count("preload") ? str("preload") : "");
  CheckSwap(cfg);

  SetEnv("LIBPAGER_LIMIT", std::to_string(cfg.memory_limit));
  SetEnv("LIBPAGER_SWAP", cfg.EffectiveSwap());
  if (cfg.swap_max != 0) SetEnv("LIBPAGER_SWAP_MAX", std::to_string(cfg.swap_max));
  if (cfg.reserve != 0) SetEnv("LIBPAGER_RESERVE", std::to_string(cfg.reserve));
  if (mmap_threshold) SetEnv("LIBPAGER_MMAP_THRESHOLD", std::to_string(*mmap_threshold));
  if (vm.count("no-heap")) SetEnv("LIBPAGER_HEAP", "0");
  if (vm.count("start-at")) SetEnv("LIBPAGER_START_AT", std::to_string(ParseSizeArg("--start-at", str("start-at"))));
  if (cfg.encrypt != pager::Config::Encrypt::kAuto) SetEnv("LIBPAGER_ENCRYPT", cfg.Encrypting() ? "1" : "0");
  SetEnv("LIBPAGER_POLICY", cfg.policy == pager::EvictionPolicy::kFifo ? "fifo" : "clock");
  SetEnv("LIBPAGER_READAHEAD", std::to_string(cfg.readahead_pages));
  SetEnv("LIBPAGER_PREFETCH", std::to_string(cfg.prefetch_pages));
  SetEnv("LIBPAGER_CONNECT_TIMEOUT_MS", std::to_string(cfg.connect_timeout_ms));
  if (cfg.replicas != 0) SetEnv("LIBPAGER_REPLICAS", std::to_string(cfg.replicas));
  SetEnv("LIBPAGER_SERVER_TIMEOUT", std::to_string(cfg.server_timeout_ms) + "ms");
  if (!cfg.disable_features.empty()) SetEnv("LIBPAGER_DISABLE", cfg.disable_features);
  if (vm.count("log")) SetEnv("LIBPAGER_LOG", str("log"));
  SetEnv("LIBPAGER_STATS", cfg.publish_stats ? "1" : "0");
  SetEnv("LIBPAGER_STATS_DIR", cfg.stats_dir);
  const char* old = getenv("LD_PRELOAD");
  SetEnv("LD_PRELOAD", old != nullptr && old[0] != '\0' ? preload + ":" + old : preload);

  std::vector<char*> argv;
  for (std::string& a : program) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  execvp(argv[0], argv.data());
  int err = errno;
  fprintf(stderr, "pagerctl run: %s: %s\n", program[0].c_str(), strerror(err));
  return err == ENOENT ? 127 : 126;
}

}  // namespace pagerctl

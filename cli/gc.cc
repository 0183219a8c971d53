// pagerctl gc: removes what processes that are gone left behind: their
// stats files and their swap files, local or on an NFS server. Only files
// libpager names (libpager.<pid>.<n>; swap files as pager/swap_files.h
// lists them) are touched, and only those of processes judged gone, or of
// owners this host cannot judge that were idle for --idle; see
// pager/monitor.h and pager/swap_files.h for how.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <map>

#include "common.h"
#include "pager/monitor.h"
#include "pager/pager.h"
#include "pager/swap_files.h"

namespace pagerctl {
namespace {

// A live NFS store touches its file every minute (docs/nfs.md): an idle
// time shorter than this could take a live file for an abandoned one.
constexpr double kMinIdleSeconds = 5 * 60;

struct Tally {
  int removed = 0, failures = 0;
};

void RemoveStaleStatsFiles(const std::string& stats_dir, bool dry, Tally* t) {
  auto stale = pager::FindStaleStatsFiles(stats_dir);
  if (!stale.ok()) {
    fprintf(stderr, "pagerctl gc: %s\n", stale.status().message().c_str());
    t->failures++;
    return;
  }
  for (const auto& l : *stale) {
    if (dry) {
      printf("would remove %s (%s)\n", l.path.c_str(), l.why.c_str());
      continue;
    }
    auto r = pager::RemoveStaleStatsFile(l.path);
    if (!r.ok()) {
      fprintf(stderr, "pagerctl gc: %s\n", r.status().message().c_str());
      t->failures++;
    } else if (*r) {
      printf("removed %s (%s)\n", l.path.c_str(), l.why.c_str());
      t->removed++;
    }
  }
}

// Removes the swap files of `location` whose owner is gone, or unknown and
// idle for `idle_seconds` (< 0: never), and lists the other unknown ones.
void CollectSwapFiles(const std::string& location, bool must_exist, bool dry, double idle_seconds,
                      uint32_t timeout_ms, Tally* t) {
  struct stat st;
  // A default directory may not exist here; one asked for must.
  if (!must_exist && location[0] == '/' && stat(location.c_str(), &st) != 0 && errno == ENOENT) return;
  auto dir = pager::SwapDirectory::Open(location, timeout_ms);
  auto files = dir.ok() ? (*dir)->List() : pager::Result<std::vector<pager::SwapFile>>(dir.status());
  if (!files.ok()) {
    fprintf(stderr, "pagerctl gc: %s\n", files.status().message().c_str());
    t->failures++;
    return;
  }
  for (const pager::SwapFile& f : *files) {
    const std::string path = (*dir)->PathOf(f.name);
    std::string why = f.why;
    if (f.owner == pager::SwapFile::Owner::kUnknown && f.idle_seconds >= 0) {
      why += "; untouched for " + Duration(static_cast<double>(f.idle_seconds));
    }
    const bool idle = idle_seconds >= 0 && f.idle_seconds >= 0 && f.idle_seconds >= idle_seconds;
    if (f.owner == pager::SwapFile::Owner::kLive) continue;
    if (f.owner == pager::SwapFile::Owner::kUnknown && !idle) {
      printf("kept %s (%s)\n", path.c_str(), why.c_str());
      continue;
    }
    if (dry) {
      printf("would remove %s (%s)\n", path.c_str(), why.c_str());
      continue;
    }
    auto r = (*dir)->Remove(f.name);
    if (!r.ok()) {
      fprintf(stderr, "pagerctl gc: %s\n", r.status().message().c_str());
      t->failures++;
    } else if (*r) {
      printf("removed %s (%s)\n", path.c_str(), why.c_str());
      t->removed++;
    }
  }
}

}  // namespace

int Gc(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")("dry-run,n", "list what would be removed, remove nothing")(
      "swap,s", po::value<std::vector<std::string>>()->composing()->value_name("LOCATION"),
      "also look for swap files in LOCATION: DIR, file:///DIR or nfs://HOST[:PORT]/EXPORT[/DIR][?...], "
      "or several NFS servers comma-separated (repeatable)")("idle", po::value<std::string>()->value_name("DURATION"),
                      "also remove swap files this host cannot judge (another host's, another PID namespace's) "
                      "untouched for DURATION, at least 5m")(
      "connect-timeout", po::value<std::string>()->value_name("DURATION"),
      "how long to wait for an NFS server, e.g. 10s (default: 10s)");
  AddStatsDirOption(&desc);
  po::variables_map vm;
  if (!ParseArgs(args, desc, {},
                 "usage: pagerctl gc [OPTIONS]\n"
                 "\n"
                 "Removes the stats files and swap files left by paged processes that are gone\n"
                 "(killed, crashed), and nothing else. Swap files are looked for in the default\n"
                 "swap directory ($TMPDIR, else /var/tmp), in $LIBPAGER_SWAP, and in every\n"
                 "--swap LOCATION, local or NFS. A swap file's name says which host, process and\n"
                 "PID namespace made it: this host's files go once that process is gone. Files of\n"
                 "other hosts are listed ('kept'), never removed unless --idle says how long they\n"
                 "must have been untouched (a live NFS store touches its file every minute).\n"
                 "\n"
                 "examples:\n"
                 "  pagerctl gc\n"
                 "  pagerctl gc --dry-run --swap 'nfs://filer/export/swap?version=3'\n"
                 "  pagerctl gc --swap nfs://filer/export/swap --idle 1h\n",
                 &vm)) {
    return kExitOk;
  }
  const bool dry = vm.count("dry-run") > 0;
  double idle_seconds = -1;
  if (vm.count("idle")) {
    idle_seconds = ParseSecondsArg("--idle", vm["idle"].as<std::string>());
    if (idle_seconds < kMinIdleSeconds) {
      throw UsageError("--idle: '" + vm["idle"].as<std::string>() +
                       "' is too short: a live store touches its file only every minute; use 5m or more");
    }
  }
  uint32_t timeout_ms = 10000;
  if (vm.count("connect-timeout")) {
    timeout_ms = static_cast<uint32_t>(
        ParseSecondsArg("--connect-timeout", vm["connect-timeout"].as<std::string>()) * 1000);
  }

  std::map<std::string, bool> locations;  // location -> given by --swap
  auto add = [&](std::string l, bool explicit_location) {
    if (l.rfind("file://", 0) == 0) l = l.substr(7);
    if (l.empty() || l == "memory:") return;
    if (l[0] != '/' && l.rfind("nfs://", 0) != 0) {
      if (explicit_location) {
        throw UsageError("--swap: '" + l + "': expected an absolute directory, file:///DIR or nfs://...");
      }
      return;
    }
    while (l[0] == '/' && l.size() > 1 && l.back() == '/') l.pop_back();
    locations[l] = locations[l] || explicit_location;
  };
  // A location naming several servers: each holds its own swap files.
  auto add_all = [&](const std::string& location, bool explicit_location) {
    for (const std::string& l : pager::SplitSwapLocation(location)) add(l, explicit_location);
  };
  add_all(pager::Config().EffectiveSwap(), false);
  if (const char* s = getenv("LIBPAGER_SWAP")) add_all(s, false);
  if (vm.count("swap")) {
    for (const auto& l : vm["swap"].as<std::vector<std::string>>()) add_all(l, true);
  }

  Tally t;
  RemoveStaleStatsFiles(StatsDir(vm), dry, &t);
  for (const auto& [location, explicit_location] : locations) {
    CollectSwapFiles(location, explicit_location, dry, idle_seconds, timeout_ms, &t);
  }
  if (!dry && t.removed == 0 && t.failures == 0) printf("nothing to remove\n");
  return t.failures == 0 ? kExitOk : kExitError;
}

}  // namespace pagerctl

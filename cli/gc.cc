// pagerctl gc: removes what processes that are gone left behind: their
// stats files and their local swap files. Only files libpager names
// (libpager.<pid>.<n>, libpager-<host>-<pid>-<n>.swap) of processes judged
// gone are touched; see pager/monitor.h for how.
#include <unistd.h>

#include <cstdio>
#include <cerrno>
#include <map>
#include <sys/stat.h>

#include "common.h"
#include "pager/monitor.h"
#include "pager/pager.h"

namespace pagerctl {

int Gc(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")("dry-run,n", "list what would be removed, remove nothing")(
      "swap-dir", po::value<std::vector<std::string>>()->composing()->value_name("DIR"),
      "also look for swap files in DIR (repeatable)");
  AddStatsDirOption(&desc);
  po::variables_map vm;
  if (!ParseArgs(args, desc, {},
                 "usage: pagerctl gc [OPTIONS]\n"
                 "\n"
                 "Removes the stats files and swap files left by paged processes that are gone\n"
                 "(killed, crashed), and nothing else. Swap files are looked for in the default\n"
                 "swap directory ($TMPDIR, else /var/tmp), in $LIBPAGER_SWAP if it is a local\n"
                 "directory, and in every --swap-dir; only this host's files are considered.\n"
                 "Swap files on an NFS server cannot be listed without mounting it: remove\n"
                 "libpager-<host>-<pid>-<n>.swap files of dead pids in the export by hand.\n",
                 &vm)) {
    return kExitOk;
  }
  const bool dry = vm.count("dry-run") > 0;

  std::map<std::string, bool> swap_dirs;  // dir -> given by --swap-dir
  auto add_dir = [&](std::string d, bool explicit_dir) {
    if (d.rfind("file://", 0) == 0) d = d.substr(7);
    if (d.rfind("nfs://", 0) == 0) {
      if (explicit_dir) throw UsageError("--swap-dir: '" + d + "': NFS directories cannot be listed; see --help");
      return;
    }
    if (d.empty() || d[0] != '/') {
      if (explicit_dir) throw UsageError("--swap-dir: '" + d + "': expected an absolute directory");
      return;
    }
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    swap_dirs[d] = swap_dirs[d] || explicit_dir;
  };
  add_dir(pager::Config().EffectiveSwap(), false);
  if (const char* s = getenv("LIBPAGER_SWAP")) add_dir(s, false);
  if (vm.count("swap-dir")) {
    for (const auto& d : vm["swap-dir"].as<std::vector<std::string>>()) add_dir(d, true);
  }

  int failures = 0, removed = 0;
  const std::string stats_dir = StatsDir(vm);
  auto stale = pager::FindStaleStatsFiles(stats_dir);
  if (!stale.ok()) {
    fprintf(stderr, "pagerctl gc: %s\n", stale.status().message().c_str());
    failures++;
  } else {
    for (const auto& l : *stale) {
      if (dry) {
        printf("would remove %s (%s)\n", l.path.c_str(), l.why.c_str());
        continue;
      }
      auto r = pager::RemoveStaleStatsFile(l.path);
      if (!r.ok()) {
        fprintf(stderr, "pagerctl gc: %s\n", r.status().message().c_str());
        failures++;
      } else if (*r) {
        printf("removed %s (%s)\n", l.path.c_str(), l.why.c_str());
        removed++;
      }
    }
  }
  for (const auto& [d, explicit_dir] : swap_dirs) {
    struct stat st;
    // A default directory may not exist here; one asked for must.
    if (!explicit_dir && stat(d.c_str(), &st) != 0 && errno == ENOENT) continue;
    auto files = pager::FindStaleSwapFiles(d);
    if (!files.ok()) {
      fprintf(stderr, "pagerctl gc: %s\n", files.status().message().c_str());
      failures++;
      continue;
    }
    for (const auto& l : *files) {
      if (dry) {
        printf("would remove %s (%s)\n", l.path.c_str(), l.why.c_str());
      } else if (unlink(l.path.c_str()) == 0) {
        printf("removed %s (%s)\n", l.path.c_str(), l.why.c_str());
        removed++;
      } else if (errno != ENOENT) {
        perror(("pagerctl gc: unlink " + l.path).c_str());
        failures++;
      }
    }
  }
  if (!dry && removed == 0 && failures == 0) printf("nothing to remove\n");
  return failures == 0 ? kExitOk : kExitError;
}

}  // namespace pagerctl

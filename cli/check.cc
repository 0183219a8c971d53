// pagerctl check: whether libpager can work here, item by item, like
// `criu check`: the kernel, the userfaultfd right and features (probed at run
// time through pager/features.h, as a Pager probes them), locked memory
// against the reserve, the swap location (a page written and read back
// through the real Store), the stats directory, the preload, and a small
// region paged for real.
//
// One line per item: ok, warn (works, with something lost) or missing (the
// pager cannot run); exit 1 if anything is missing. --json gives the same
// (schema in docs/cli.md).
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>

#include "common.h"
#include "pager/features.h"
#include "pager/pager.h"
#include "pager/store.h"
#include "pager/units.h"

namespace pagerctl {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kSchemaVersion = 1;

struct Item {
  std::string name, status, detail, fix;
  std::vector<std::pair<std::string, uint64_t>> numbers;  // extra JSON fields, unit in the key
};

class Report {
 public:
  Item& Add(std::string name, std::string status, std::string detail, std::string fix = "") {
    items_.push_back({std::move(name), std::move(status), std::move(detail), std::move(fix), {}});
    return items_.back();
  }
  bool ok() const {
    for (const Item& i : items_) {
      if (i.status == "missing") return false;
    }
    return true;
  }
  void PrintText() const {
    for (const Item& i : items_) {
      std::string line = i.status + std::string(9 - i.status.size(), ' ') + i.name;
      line += std::string(i.name.size() < 13 ? 13 - i.name.size() : 1, ' ') + i.detail;
      if (!i.fix.empty()) line += "; fix: " + i.fix;
      std::cout << line << "\n";
    }
  }
  void PrintJson() const {
    std::string o = "{\"schema_version\":" + std::to_string(kSchemaVersion) + ",\"ok\":" + (ok() ? "true" : "false") +
                    ",\"checks\":[";
    for (size_t k = 0; k < items_.size(); k++) {
      const Item& i = items_[k];
      o += std::string(k ? "," : "") + "{\"name\":" + JsonQuote(i.name) + ",\"status\":" + JsonQuote(i.status) +
           ",\"detail\":" + JsonQuote(i.detail) + ",\"fix\":" + JsonQuote(i.fix);
      for (const auto& [key, v] : i.numbers) o += ",\"" + key + "\":" + std::to_string(v);
      o += "}";
    }
    std::cout << o << "]}\n";
  }

 private:
  std::vector<Item> items_;
};

bool Listed(const std::string& list, const std::string& name) {
  return ("," + list + ",").find("," + name + ",") != std::string::npos;
}

// ---- The kernel -------------------------------------------------------------

void CheckKernel(const pager::KernelFeatures& k, const std::string& disable, Report* r) {
  r->Add("kernel", "ok", "Linux " + k.release);
  if (!k.uffd.ok()) {
    r->Add("userfaultfd", "missing", k.uffd.message(),
           "run as root, or grant CAP_SYS_PTRACE, or setfacl -m u:$USER:rw /dev/userfaultfd, "
           "or sysctl -w vm.unprivileged_userfaultfd=1");
    return;
  }
  r->Add("userfaultfd", "ok", "handles faults raised inside the kernel too (granted by " + k.access + ")");
  struct Feature {
    const char* name;
    bool found;
    const char* what;
    // "required", "optional" (warn when absent: something is lost) or
    // "unused" (reported only).
    const char* need;
    const char* without;
  } features[] = {
      {"move", k.move, "UFFDIO_MOVE (Linux 6.8): eviction moves pages out", "required", ""},
      {"remove", k.event_remove, "UFFD_EVENT_REMOVE (4.11): MADV_DONTNEED on paged memory", "required", ""},
      {"unmap", k.event_unmap, "UFFD_EVENT_UNMAP (4.11): munmap of paged memory", "required", ""},
      {"remap", k.event_remap, "UFFD_EVENT_REMAP (4.11): mremap of paged memory", "required",
       "a moved region would read zeros"},
      {"wp", k.wp, "write-protect faults (5.7): the eviction fallback, retired (docs/design.md)", "unused", ""},
      {"poison", k.poison, "UFFDIO_POISON (6.6): SIGBUS on a page failing its checksum", "optional",
       "a corrupt page is signalled by a SIGBUS sent to the faulting thread instead"},
      {"wp_async", k.wp_async, "UFFD_FEATURE_WP_ASYNC (6.7)", "unused", ""},
      {"fork", k.event_fork, "UFFD_EVENT_FORK (4.11, needs CAP_SYS_PTRACE)", "unused", ""},
  };
  for (const Feature& f : features) {
    const bool disabled = Listed(disable, f.name);
    const bool unused = strcmp(f.need, "unused") == 0;
    std::string detail = std::string(f.what) + (unused ? "; libpager does not use it" : "");
    if (f.found && !disabled) {
      r->Add(f.name, "ok", detail);
      continue;
    }
    detail += disabled ? ": disabled by --disable" : ": not in this kernel";
    if (!unused && strlen(f.without) > 0) detail += std::string("; ") + f.without;
    if (unused) {
      r->Add(f.name, "ok", detail);
    } else if (strcmp(f.need, "required") == 0) {
      r->Add(f.name, "missing", detail, disabled ? "drop it from --disable" : "a Linux 6.8 or later kernel");
    } else {
      r->Add(f.name, "warn", detail, disabled ? "drop it from --disable" : "a newer kernel");
    }
  }
}

// ---- Locked memory ----------------------------------------------------------

void CheckMemlock(const pager::Config& cfg, Report* r) {
  const pager::MemlockBudget b = pager::ProbeMemlock(cfg);
  const bool unlimited = b.rlimit_bytes == UINT64_MAX;
  const std::string what = "the reserve locks " + pager::FormatSize(b.locked_bytes) + " (" +
                           pager::FormatSize(cfg.EffectiveReserve()) + " pool + its arena)";
  Item* item;
  if (b.cap_ipc_lock) {
    item = &r->Add("memlock", "ok", what + "; CAP_IPC_LOCK: no limit");
  } else if (b.enough()) {
    item = &r->Add("memlock", "ok",
                   what + "; RLIMIT_MEMLOCK is " + (unlimited ? "unlimited" : pager::FormatSize(b.rlimit_bytes)));
  } else {
    item = &r->Add("memlock", "warn",
                   what + " but RLIMIT_MEMLOCK is " + pager::FormatSize(b.rlimit_bytes) +
                       ": the pool stays unlocked and the kernel may swap it out",
                   "ulimit -l " + std::to_string((b.locked_bytes + 1023) / 1024) +
                       " (KiB), LimitMEMLOCK= in a systemd unit, or memlock in /etc/security/limits.conf");
  }
  item->numbers.push_back({"locked_bytes", b.locked_bytes});
  if (!unlimited) item->numbers.push_back({"rlimit_bytes", b.rlimit_bytes});
}

// ---- The swap location ------------------------------------------------------

// Completions arrive on the store's threads.
class WaitingListener : public pager::StoreListener {
 public:
  void OnComplete(pager::StoreOp*) override {
    std::lock_guard<std::mutex> l(mu_);
    done_++;
    cv_.notify_all();
  }
  void OnBackendState(pager::BackendState, const std::string&) override {}
  // Waits until `n` ops have completed, or `deadline`.
  bool WaitFor(int n, Clock::time_point deadline) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_until(l, deadline, [&] { return done_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int done_ = 0;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Creates a swap file, writes a page, reads it back, compares, removes the
// file. Returns false if an op never completed: the store then still owns
// memory and threads, and the process must leave with _exit.
bool CheckSwap(const pager::Config& cfg, Report* r) {
  const std::string where = cfg.EffectiveSwap();
  const std::string fix = "a writable directory, or a reachable NFS export (docs/nfs.md)";
  auto t0 = Clock::now();
  auto store = pager::OpenStore(where, cfg.store_options());
  if (!store.ok()) {
    r->Add("swap", "missing", store.status().message(), fix);
    return true;
  }
  auto listener = std::make_unique<WaitingListener>();
  if (pager::Status s = (*store)->Start(listener.get()); !s.ok()) {
    r->Add("swap", "missing", s.message(), fix);
    return true;
  }
  auto t1 = Clock::now();
  auto out = std::make_unique<std::byte[]>(pager::kPageSize);
  auto in = std::make_unique<std::byte[]>(pager::kPageSize);
  for (size_t i = 0; i < pager::kPageSize; i++) out[i] = static_cast<std::byte>(i * 7 + 1);
  auto write = std::make_unique<pager::StoreOp>();
  write->kind = pager::StoreOp::Kind::kWrite;
  write->pages = 1;
  write->buf = out.get();
  auto read = std::make_unique<pager::StoreOp>();
  read->kind = pager::StoreOp::Kind::kRead;
  read->pages = 1;
  read->buf = in.get();
  // Stores retry a lost server for ever (like a hard mount): bounded here.
  const auto deadline = Clock::now() + std::chrono::milliseconds(cfg.connect_timeout_ms) + std::chrono::seconds(10);
  (*store)->Submit(write.get());
  bool done = listener->WaitFor(1, deadline);
  const bool written = done;
  auto t2 = Clock::now();
  if (done && write->error == 0) {
    (*store)->Submit(read.get());
    done = listener->WaitFor(2, deadline);
  }
  auto t3 = Clock::now();
  const std::string desc = (*store)->Describe();
  if (!done) {
    r->Add("swap", "missing",
           desc + ": a 4 KiB " + (written ? "read" : "write") +
               " got no answer within the connect timeout + 10s; its test file may be left behind",
           fix);
    // The op is still the store's: nothing here may be freed.
    (void)store->release();
    (void)listener.release();
    (void)out.release();
    (void)in.release();
    (void)write.release();
    (void)read.release();
    return false;
  }
  (*store)->Stop();  // removes the test file
  const int err = write->error != 0 ? write->error : read->error;
  if (err != 0) {
    r->Add("swap", "missing", desc + ": " + (write->error != 0 ? "write" : "read") + ": " + strerror(err), fix);
  } else if (memcmp(out.get(), in.get(), pager::kPageSize) != 0) {
    r->Add("swap", "missing", desc + ": a page read back differs from the page written", fix);
  } else {
    char d[160];
    snprintf(d, sizeof d, ": created in %.1f ms, 4 KiB written in %.2f ms and read back in %.2f ms, removed",
             Ms(t1 - t0), Ms(t2 - t1), Ms(t3 - t2));
    Item& i = r->Add("swap", "ok", desc + d);
    auto us = [](Clock::duration x) { return static_cast<uint64_t>(std::chrono::duration<double, std::micro>(x).count()); };
    i.numbers = {{"start_us", us(t1 - t0)}, {"write_us", us(t2 - t1)}, {"read_us", us(t3 - t2)}};
  }
  return true;
}

// ---- The rest ---------------------------------------------------------------

void CheckStatsDir(const pager::Config& cfg, Report* r) {
  if (access(cfg.stats_dir.c_str(), W_OK | X_OK) == 0) {
    r->Add("stats-dir", "ok", cfg.stats_dir + " is writable: paged programs show in ps, stats, top and metrics");
  } else {
    r->Add("stats-dir", "warn", cfg.stats_dir + ": " + strerror(errno) + ": programs run without published stats",
           "--stats-dir DIR (LIBPAGER_STATS_DIR) naming a writable directory");
  }
}

void CheckPreload(Report* r) {
  try {
    r->Add("preload", "ok", FindPreload("") + " (for pagerctl run)");
  } catch (const UsageError& e) {
    std::string why = e.what();
    r->Add("preload", "warn", "pagerctl run cannot work: " + why.substr(0, why.find('\n')),
           "install libpager_preload.so beside pagerctl, or set PAGERCTL_PRELOAD");
  }
}

// 32 MiB through an 8 MiB limit (the smallest with the default reserve) in
// memory: most pages evicted, faulted back and compared.
void CheckPaging(const std::string& disable, Report* r) {
  constexpr uint64_t kLimit = 8 << 20, kBytes = 32 << 20;
  pager::Config cfg;
  cfg.memory_limit = kLimit;
  cfg.swap = "memory:";
  cfg.disable_features = disable;
  cfg.publish_stats = false;
  auto p = pager::Pager::Create(cfg);
  if (!p.ok()) {
    r->Add("paging", "missing", p.status().message());
    return;
  }
  auto mem = (*p)->Map(kBytes);
  if (!mem.ok()) {
    r->Add("paging", "missing", mem.status().message());
    return;
  }
  auto* words = static_cast<uint64_t*>(*mem);
  for (uint64_t i = 0; i < kBytes / 8; i++) words[i] = i * 0x9e3779b97f4a7c15ull;
  uint64_t bad = 0;
  for (uint64_t i = 0; i < kBytes / 8; i++) bad += words[i] != i * 0x9e3779b97f4a7c15ull;
  pager::Stats s = (*p)->GetStats();
  (void)(*p)->Unmap(*mem, kBytes);
  const std::string what = pager::FormatSize(kBytes) + " through a " + pager::FormatSize(kLimit) + " limit";
  if (bad != 0) {
    r->Add("paging", "missing", what + ": " + std::to_string(bad) + " words read back wrong",
           "report it, with this output (issues)");
  } else if (s.faults_swapin == 0) {
    r->Add("paging", "missing", what + ": nothing was swapped in", "report it, with this output");
  } else {
    r->Add("paging", "ok",
           what + ": every byte read back (" + std::to_string(s.faults_swapin) + " swap-in faults, features " +
               (*p)->Features() + ")");
  }
}

constexpr const char* kUsage =
    "usage: pagerctl check [OPTIONS]\n"
    "\n"
    "Checks whether libpager can work on this machine, for this user and these\n"
    "settings: kernel, userfaultfd right and features, locked memory for the\n"
    "reserve, the swap location (a page written, read back and removed), the\n"
    "stats directory, the preload, and a small region paged for real. One line\n"
    "per item: ok, warn (works, something is lost) or missing, with how to fix it.\n"
    "Exit status 0 when nothing is missing, 1 otherwise, 2 for a bad option or setting.\n"
    "\n"
    "Options not given keep their LIBPAGER_* variable's value if set.\n"
    "\n"
    "examples:\n"
    "  pagerctl check\n"
    "  pagerctl check --limit 4G --swap 'nfs://filer/export/swap?version=3'\n"
    "  pagerctl check --json | jq '.checks[] | select(.status != \"ok\")'\n";

}  // namespace

int Check(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")("json,j", "one JSON document (schema: docs/cli.md)")(
      "limit,l", po::value<std::string>()->value_name("SIZE"),
      "the limit to check the reserve's locked memory for (default: LIBPAGER_LIMIT)")(
      "reserve", po::value<std::string>()->value_name("SIZE"), "the reserve (default: max(8M, 1% of the limit))")(
      "swap,s", po::value<std::string>()->value_name("LOCATION"),
      "the swap location to try (default: LIBPAGER_SWAP, else $TMPDIR, else /var/tmp)")(
      "connect-timeout", po::value<std::string>()->value_name("DURATION"),
      "how long to wait for the swap server (default: 10s)")(
      "disable", po::value<std::string>()->value_name("FEATURES"),
      "kernel features to treat as absent, as pagerctl run --disable does");
  AddStatsDirOption(&desc);
  po::variables_map vm;
  if (!ParseArgs(args, desc, {}, kUsage, &vm)) return kExitOk;

  auto env = pager::Config::FromEnvironment();
  if (!env.ok()) throw UsageError(env.status().message());
  pager::Config cfg = *env;
  auto str = [&](const char* o) { return vm[o].as<std::string>(); };
  if (vm.count("limit")) cfg.memory_limit = ParseSizeArg("--limit", str("limit"));
  if (vm.count("reserve")) cfg.reserve = ParseSizeArg("--reserve", str("reserve"));
  if (vm.count("swap")) cfg.swap = str("swap");
  if (vm.count("connect-timeout")) {
    cfg.connect_timeout_ms = static_cast<uint32_t>(ParseSecondsArg("--connect-timeout", str("connect-timeout")) * 1000);
  }
  if (vm.count("disable")) cfg.disable_features = str("disable");
  cfg.stats_dir = StatsDir(vm);
  // Settings that cannot work are a usage error, as for run; the limit is
  // optional here (it only sizes the default reserve).
  if (cfg.memory_limit != 0) {
    if (pager::Status s = cfg.Validate(); !s.ok()) throw UsageError(s.message());
  }

  Report r;
  const pager::KernelFeatures k = pager::ProbeKernelFeatures();
  CheckKernel(k, cfg.disable_features, &r);
  CheckMemlock(cfg, &r);
  const bool clean = CheckSwap(cfg, &r);
  CheckStatsDir(cfg, &r);
  CheckPreload(&r);
  if (k.uffd.ok()) CheckPaging(cfg.disable_features, &r);
  if (vm.count("json")) {
    r.PrintJson();
  } else {
    r.PrintText();
  }
  const int status = r.ok() ? kExitOk : kExitError;
  if (!clean) {
    std::cout.flush();
    _exit(status);  // a store op is still in flight: no destructors
  }
  return status;
}

}  // namespace pagerctl

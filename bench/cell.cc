// bench_cell: one cell of the harness (bench/pager_bench.py drives it). A
// region of --region bytes is held either by libpager (--backend=pager,
// --limit, --swap=LOCATION; through the public API only) or by nothing
// (--backend=unpaged: plain memory, which the kernel swaps when --cgroup caps
// the process). The region is filled, then the --workloads run on it in
// turn (workloads.h). Prints one JSON line for the cell, then one per
// workload, as each ends:
//
//   bench_cell --backend=pager --region=512M --limit=128M --swap=/var/tmp
//              --workloads=fill,seq,rand_read --ops=20000 --max-seconds=4
//
// Options: --server-pid=PID (an NFS server whose CPU to count),
// --cgroup=DIR and --cgroup-budget=BYTES (join DIR and cap it at what this
// process holds then plus BYTES: see memory_cgroup.h), --zram=N (report how
// well zram device N compresses what it holds after each workload),
// --twin-rounds=N (after each workload, N A/B rounds against a plain twin
// region of the same size, see AbRatio: for regions that fit the limit),
// --seed=N.
//
// Faults, bytes moved and fault latency come from the pager's Stats for a
// paged region, and from the kernel (getrusage faults, /proc/vmstat swap
// traffic, system-wide) otherwise. CPU: the workload's own threads
// (app_cpu_s), every other thread of this process (pager_cpu_s: the pager's
// and its store's), and the NFS server's threads (server_cpu_s).
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "args.h"
#include "cpu.h"
#include "json.h"
#include "memory_cgroup.h"
#include "pager/pager.h"
#include "timing.h"
#include "workloads.h"

namespace bench {
namespace {

// Pages the kernel swapped in and out, machine-wide (/proc/vmstat).
void ReadSwapCounters(uint64_t* in, uint64_t* out) {
  std::ifstream f("/proc/vmstat");
  std::string key;
  uint64_t v = 0;
  while (f >> key >> v) {
    if (key == "pswpin") *in = v;
    if (key == "pswpout") *out = v;
  }
}

// Everything a workload's figures are the difference of.
struct Snapshot {
  double process_cpu = 0;
  double server_cpu = 0;
  std::vector<ThreadCpu> threads;
  rusage ru{};
  uint64_t pswpin = 0, pswpout = 0;
  pager::Stats stats;

  static Snapshot Take(const pager::Pager* p, pid_t server) {
    Snapshot s;
    if (p != nullptr) s.stats = p->GetStats();
    s.process_cpu = ProcessCpuSeconds();
    s.threads = ListThreads(0);
    if (server > 0) s.server_cpu = TaskCpuSeconds(server);
    getrusage(RUSAGE_SELF, &s.ru);
    ReadSwapCounters(&s.pswpin, &s.pswpout);
    return s;
  }
};

// The pager's fault-service latency percentile over the faults between
// two snapshots (its histogram has power-of-two buckets).
double FaultLatencyUs(const pager::Stats& a, const pager::Stats& b, double p) {
  pager::Stats d;
  for (int i = 0; i < pager::Stats::kLatencyBuckets; i++) {
    d.fault_latency_us[i] = b.fault_latency_us[i] - a.fault_latency_us[i];
  }
  return d.FaultLatencyPercentile(p);
}

JsonObject Figures(const Workload& w, const Outcome& o, const Snapshot& a, const Snapshot& b, bool paged,
                   pid_t server) {
  JsonObject j;
  j.Add("type", "workload").Add("workload", w.name).Add("threads", w.threads);
  j.Add("seconds", o.seconds).Add("accesses", o.accesses).Add("bytes_touched", o.bytes);
  j.Add("capped", o.capped).Add("wrong_words", o.wrong_words);
  const bool random = o.access_ns.size() > 0;
  std::optional<double> none;
  j.Add("access_p50_us", random ? std::optional(o.access_ns.PercentileUs(50)) : none);
  j.Add("access_p99_us", random ? std::optional(o.access_ns.PercentileUs(99)) : none);
  j.Add("misses", static_cast<uint64_t>(o.miss_ns.size()));
  const bool misses = o.miss_ns.size() > 0;
  j.Add("miss_p50_us", misses ? std::optional(o.miss_ns.PercentileUs(50)) : none);
  j.Add("miss_p99_us", misses ? std::optional(o.miss_ns.PercentileUs(99)) : none);
  if (paged) {
    const pager::Stats &s = a.stats, &t = b.stats;
    const uint64_t faults = (t.faults_zero - s.faults_zero) + (t.faults_inactive - s.faults_inactive) +
                            (t.faults_swapin - s.faults_swapin);
    j.Add("faults", faults).Add("major_faults", t.faults_swapin - s.faults_swapin);
    j.Add("bytes_read", t.bytes_read - s.bytes_read).Add("bytes_written", t.bytes_written - s.bytes_written);
    j.Add("fault_p50_us", faults ? std::optional(FaultLatencyUs(s, t, 50)) : none);
    j.Add("fault_p99_us", faults ? std::optional(FaultLatencyUs(s, t, 99)) : none);
    j.Add("limit_waits", t.limit_waits - s.limit_waits).Add("throttled_ns", t.throttled_ns - s.throttled_ns);
    j.Add("reserve_overflows", t.reserve_overflows - s.reserve_overflows);
  } else {
    const auto major = static_cast<uint64_t>(b.ru.ru_majflt - a.ru.ru_majflt);
    j.Add("faults", major + static_cast<uint64_t>(b.ru.ru_minflt - a.ru.ru_minflt)).Add("major_faults", major);
    j.Add("bytes_read", (b.pswpin - a.pswpin) * kPage).Add("bytes_written", (b.pswpout - a.pswpout) * kPage);
    j.Add("fault_p50_us", none).Add("fault_p99_us", none);
  }
  j.Add("app_cpu_s", o.app_cpu_s);
  j.Add("pager_cpu_s", std::max(0.0, b.process_cpu - a.process_cpu - o.app_cpu_s));
  j.Add("pager_threads_cpu_s", CpuByName(a.threads, b.threads, {gettid()}));
  j.Add("server_cpu_s", server > 0 ? std::optional(b.server_cpu - a.server_cpu) : none);
  return j;
}

// The A/B comparison of --twin-rounds: `rounds` times, `w` on the plain
// twin region and on the region under test, back to back, in alternating
// order; the median of the throughput ratios (region / twin). The two sides
// of a ratio run a fraction of a second apart, so that the machine's load,
// which swings by 2x within a minute here, cancels: the only way to see a
// 5% difference.
double AbRatio(const Workload& w, char* base, char* twin, size_t bytes, const Budget& budget, uint64_t seed,
               int rounds) {
  std::vector<double> ratios;
  for (int r = 0; r < rounds; r++) {
    double thr[2];
    for (int k = 0; k < 2; k++) {
      const bool tested = (k + r) % 2 == 0;  // who goes first alternates
      char* where = tested ? base : twin;
      Warm(w, where, bytes, budget, seed);
      thr[tested ? 0 : 1] = Throughput(w, Run(w, where, bytes, budget, seed));
    }
    ratios.push_back(thr[0] / thr[1]);
  }
  std::sort(ratios.begin(), ratios.end());
  return ratios[ratios.size() / 2];
}

// zram's original / compressed bytes (mm_stat's first two fields), or none
// while it holds nothing.
std::optional<double> ZramCompression(const std::string& device) {
  std::ifstream f("/sys/block/zram" + device + "/mm_stat");
  double orig = 0, compressed = 0;
  if (!(f >> orig >> compressed) || compressed == 0) return std::nullopt;
  return orig / compressed;
}

int Main(int argc, char** argv) {
  Args args;
  if (!args.Parse(argc, argv)) return args.Fail(args.error());
  const std::string backend = args.Str("backend", "unpaged");
  const uint64_t region = args.Size("region");
  const uint64_t limit = args.Size("limit");
  const uint64_t cgroup_budget = args.Size("cgroup-budget", limit);
  const Budget budget{args.Size("ops", 20000), args.Number("max-seconds", 5)};
  const auto server = static_cast<pid_t>(args.Number("server-pid", 0));
  const auto seed = static_cast<uint64_t>(args.Number("seed", 1));
  const std::string zram = args.Str("zram");
  const int twin_rounds = static_cast<int>(args.Number("twin-rounds", 0));
  if (!args.error().empty()) return args.Fail(args.error());
  if (backend != "pager" && backend != "unpaged") return args.Fail("--backend=" + backend + ": expected pager or unpaged");
  if (region == 0 || region % kPage != 0) return args.Fail("--region: a positive multiple of 4 KiB is required");
  std::vector<const Workload*> workloads;
  for (const std::string& name : args.List("workloads", "fill,seq")) {
    const Workload* w = FindWorkload(name);
    if (w == nullptr) return args.Fail("--workloads: unknown workload '" + name + "'");
    workloads.push_back(w);
  }

  JsonObject cell;
  cell.Add("type", "cell").Add("backend", backend).Add("region_bytes", region).Add("limit_bytes", limit);
  if (const std::string cg = args.Str("cgroup"); !cg.empty()) {
    auto set = JoinMemoryCgroup(cg, cgroup_budget);
    if (!set.ok()) return args.Fail("--cgroup: " + set.status().message());
    cell.Add("cgroup_limit_bytes", *set);
  }

  std::unique_ptr<pager::Pager> pager;
  char* base = nullptr;
  if (backend == "pager") {
    pager::Config base_cfg;
    base_cfg.memory_limit = limit;
    base_cfg.swap = args.Str("swap");
    auto cfg = pager::Config::FromEnvironment(base_cfg);  // LIBPAGER_* tune a run
    if (!cfg.ok()) return args.Fail(cfg.status().message());
    const auto t0 = Clock::now();
    auto p = pager::Pager::Create(*cfg);
    if (!p.ok()) return args.Fail(p.status().message());
    pager = std::move(*p);
    cell.Add("create_seconds", SecondsSince(t0));
    auto m = pager->Map(region);
    if (!m.ok()) return args.Fail(m.status().message());
    base = static_cast<char*>(*m);
    const pager::Stats s = pager->GetStats();
    cell.Add("features", pager->Features()).Add("reserve_bytes", s.reserve_bytes);
    cell.Add("encrypted", s.encrypted != 0).Add("prefetch_pages", static_cast<uint64_t>(cfg->prefetch_pages));
  } else {
    void* m = mmap(nullptr, region, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return args.Fail("mmap of --region failed");
    base = static_cast<char*>(m);
  }
  cell.Print();

  char* twin = nullptr;
  if (twin_rounds > 0) {
    void* m = mmap(nullptr, region, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return args.Fail("mmap of the twin region failed");
    twin = static_cast<char*>(m);
    Run(*FindWorkload("fill"), twin, region, budget, seed);
  }

  for (const Workload* w : workloads) {
    Warm(*w, base, region, budget, seed);
    const Snapshot a = Snapshot::Take(pager.get(), server);
    const Outcome o = Run(*w, base, region, budget, seed);
    const Snapshot b = Snapshot::Take(pager.get(), server);
    JsonObject j = Figures(*w, o, a, b, pager != nullptr, server);
    if (pager) j.Add("metadata_bytes", b.stats.metadata_bytes);
    if (!zram.empty()) j.Add("zram_compression", ZramCompression(zram));
    if (twin != nullptr && w->pattern != Pattern::kFill) {
      j.Add("ab_vs_unpaged", AbRatio(*w, base, twin, region, budget, seed, twin_rounds)).Add("ab_rounds", twin_rounds);
    }
    j.Print();
  }

  // Unmapped first: a pager destroyed with its region mapped would fault
  // every swapped page back in.
  if (pager) {
    pager->Unmap(base, region);
  } else {
    munmap(base, region);
  }
  if (twin != nullptr) munmap(twin, region);
  return 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) { return bench::Main(argc, argv); }

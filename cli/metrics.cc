// pagerctl metrics: every live pager's counters in the Prometheus text
// exposition format, for node_exporter's textfile collector or, with
// --listen, for a Prometheus scrape (metrics_server.cc).
//
// Names follow Prometheus' conventions: a libpager_ prefix, base units in the
// name (_bytes, _seconds), _total on counters, one family per quantity with a
// label where the quantities add up (faults by kind). Every sample of a pager
// carries pid, pager (its number in the process), comm and swap. Their text
// is as pagerctl shows it (EscapeForDisplay: control characters as \xNN, so
// that another user's process name cannot put a terminal escape in front of
// whoever reads the metrics), then escaped for the format (\\, \", \n). No
// timestamps: the textfile collector refuses them.
#include <charconv>
#include <fstream>
#include <iostream>
#include <iterator>
#include <vector>

#include "common.h"
#include "metrics.h"
#include "pager/monitor.h"
#include "pager/store.h"

namespace pagerctl {
namespace {

using pager::PagedProcess;
using pager::Stats;

constexpr uint64_t kPage = pager::kPageSize;

// `s` with every invalid UTF-8 sequence replaced by U+FFFD: the exposition
// format is UTF-8, and a command line or a path need not be.
std::string ValidUtf8(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool ok = n != 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; k++) ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 0x2;
    if (ok && n > 1) {  // no overlong forms, surrogates or code points past U+10FFFF
      uint32_t cp = c & (0x7f >> n);
      for (size_t k = 1; k < n; k++) cp = cp << 6 | (static_cast<unsigned char>(s[i + k]) & 0x3f);
      const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= min[n] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    }
    if (!ok) {
      out += "\xef\xbf\xbd";
      i++;
      continue;
    }
    out.append(s, i, n);
    i += n;
  }
  return out;
}

// A label value, quoted: the format's three escapes.
std::string LabelValue(const std::string& raw) {
  std::string out = "\"";
  for (char c : ValidUtf8(raw)) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The kernel's name for the process (what ps shows as COMM), else the
// basename of the first word of its command line.
std::string Comm(const PagedProcess& p) {
  // The name may hold a newline itself: all but the file's last byte.
  std::ifstream f("/proc/" + std::to_string(p.pid) + "/comm");
  std::string comm((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (!comm.empty() && comm.back() == '\n') return pager::EscapeForDisplay(comm.substr(0, comm.size() - 1));
  std::string argv0 = p.command.substr(0, p.command.find(' '));
  return argv0.substr(argv0.rfind('/') + 1);  // p.command is escaped already
}

std::string Number(uint64_t v) { return std::to_string(v); }
// The shortest text that reads back as `v`: 2e-06, not 1.9999999999999999e-06.
std::string Number(double v) {
  char b[40];
  auto r = std::to_chars(b, b + sizeof b, v);
  return std::string(b, r.ptr);
}

// The exposition, family by family (a family's samples must be together).
class Exposition {
 public:
  explicit Exposition(const std::vector<PagedProcess>& pagers) {
    for (const auto& p : pagers) {
      labels_.push_back("pid=\"" + std::to_string(p.pid) + "\",pager=\"" + std::to_string(p.index) +
                        "\",comm=" + LabelValue(Comm(p)) + ",swap=" + LabelValue(p.swap));
      pagers_.push_back(&p);
    }
  }

  // A family with one sample per pager.
  template <class Value>
  void Each(const char* name, const char* type, const char* help, Value value) {
    Head(name, type, help);
    for (size_t i = 0; i < pagers_.size(); i++) Sample(name, labels_[i], Number(value(*pagers_[i])));
  }

  // A family with one sample per pager and per value of `label`.
  template <class Value>
  void EachOf(const char* name, const char* type, const char* help, const char* label,
              std::initializer_list<const char*> keys, Value value) {
    Head(name, type, help);
    for (size_t i = 0; i < pagers_.size(); i++) {
      for (const char* k : keys) {
        Sample(name, labels_[i] + "," + label + "=\"" + k + "\"", Number(value(*pagers_[i], std::string(k))));
      }
    }
  }

  void Latency() {
    const char* name = "libpager_fault_latency_seconds";
    Head(name, "histogram", "Time from reading a fault to waking the faulting thread.");
    for (size_t i = 0; i < pagers_.size(); i++) Histogram(name, labels_[i], pagers_[i]->stats.fault_latency_us);
  }

  // The servers of a store over several (docs/servers.md): one sample per
  // pager and server, labelled server="host:port/export".
  template <class Value>
  void EachServer(const char* name, const char* type, const char* help, Value value) {
    Head(name, type, help);
    ForEachServer([&](const std::string& labels, const pager::ServerStats& v) { Sample(name, labels, Number(value(v))); });
  }
  void ServerStates() {
    const char* name = "libpager_server_state";
    Head(name, "gauge",
         "1 for each server's state: ok, reconnecting (not answering, not yet down) or down (its pages are "
         "served and copied from the other servers).");
    ForEachServer([&](const std::string& labels, const pager::ServerStats& v) {
      for (auto st : {pager::ServerState::kOk, pager::ServerState::kReconnecting, pager::ServerState::kDown}) {
        Sample(name, labels + ",state=\"" + pager::ServerStateName(st) + "\"", Number(uint64_t{v.state == st}));
      }
    });
  }
  void ServerLatency() {
    const char* name = "libpager_server_latency_seconds";
    Head(name, "histogram", "Time from sending a request to a server to its answer.");
    ForEachServer([&](const std::string& labels, const pager::ServerStats& v) { Histogram(name, labels, v.latency_us); });
  }

  // Always 1, with what is neither a number nor wanted on every sample.
  void Info() {
    const char* name = "libpager_info";
    Head(name, "gauge", "Always 1; features: the kernel features the pager uses.");
    for (size_t i = 0; i < pagers_.size(); i++) {
      Sample(name, labels_[i] + ",features=" + LabelValue(pagers_[i]->features), "1");
    }
  }

  void Plain(const char* name, const char* type, const char* help, const std::string& value) {
    Head(name, type, help);
    out_ += std::string(name) + " " + value + "\n";
  }

  const std::string& str() const { return out_; }

 private:
  template <class Fn>
  void ForEachServer(Fn fn) {
    for (size_t i = 0; i < pagers_.size(); i++) {
      for (const pager::ServerStats& v : pagers_[i]->stats.servers) fn(labels_[i] + ",server=" + LabelValue(v.name), v);
    }
  }

  // Bucket i counts [2^i, 2^(i+1)) us, the last one everything above as
  // well, so it only shows in le="+Inf". There is no _sum: the pager keeps
  // counts per bucket, not the total time.
  void Histogram(const char* name, const std::string& labels, const uint64_t (&buckets)[pager::kLatencyBuckets]) {
    uint64_t cumulative = 0;
    for (int b = 0; b < pager::kLatencyBuckets - 1; b++) {
      cumulative += buckets[b];
      Sample(std::string(name) + "_bucket", labels + ",le=\"" + Number(static_cast<double>(uint64_t{2} << b) / 1e6) + "\"",
             Number(cumulative));
    }
    cumulative += buckets[pager::kLatencyBuckets - 1];
    Sample(std::string(name) + "_bucket", labels + ",le=\"+Inf\"", Number(cumulative));
    Sample(std::string(name) + "_count", labels, Number(cumulative));
  }

  void Head(const char* name, const char* type, const char* help) {
    out_ += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  void Sample(const std::string& name, const std::string& labels, const std::string& value) {
    out_ += name + "{" + labels + "} " + value + "\n";
  }

  std::vector<const PagedProcess*> pagers_;
  std::vector<std::string> labels_;
  std::string out_;
};

using P = const PagedProcess&;

}  // namespace

pager::Result<std::string> MetricsText(const std::string& stats_dir) {
  std::vector<std::string> skipped;
  auto all = pager::ListPagedProcesses(stats_dir, &skipped);
  if (!all.ok()) return all.status();
  std::vector<PagedProcess> live;
  for (auto& p : *all) {
    if (!p.stale) live.push_back(std::move(p));
  }
  Exposition e(live);
  e.Info();
  e.Each("libpager_start_time_seconds", "gauge", "When the pager started, in seconds since the Unix epoch.",
         [](P p) { return static_cast<double>(p.created_unix_ms) / 1e3; });

  e.Each("libpager_limit_bytes", "gauge", "Most bytes of paged memory resident at once (the limit).",
         [](P p) { return p.stats.limit_pages * kPage; });
  e.Each("libpager_resident_bytes", "gauge", "Paged memory resident: mapped in regions or in the inactive stage.",
         [](P p) { return p.stats.resident_pages * kPage; });
  e.Each("libpager_inactive_bytes", "gauge", "Resident paged memory in the inactive stage (unmapped, in memory).",
         [](P p) { return p.stats.inactive_pages * kPage; });
  e.Each("libpager_swapped_bytes", "gauge", "Paged memory whose content is only in the swap store.",
         [](P p) { return p.stats.swapped_pages * kPage; });
  e.Each("libpager_swap_used_bytes", "gauge", "Bytes of the swap store in use (4 KiB slots).",
         [](P p) { return p.stats.slots_in_use * kPage; });
  e.Each("libpager_mapped_bytes", "gauge", "Size of the paged regions.", [](P p) { return p.stats.mapped_bytes; });

  e.EachOf("libpager_faults_total", "counter",
           "Page faults served, by kind: zero (first touch), inactive (re-touch in the inactive stage), "
           "swapin (read from the store).",
           "kind", {"zero", "inactive", "swapin"}, [](P p, const std::string& k) {
             const Stats& s = p.stats;
             return k == "zero" ? s.faults_zero : k == "inactive" ? s.faults_inactive : s.faults_swapin;
           });
  e.Each("libpager_zero_filled_pages_total", "counter", "Pages zero-filled, including zero-fill-ahead.",
         [](P p) { return p.stats.pages_zero_filled; });
  e.Each("libpager_read_ahead_pages_total", "counter", "Pages read ahead of a swap-in fault.",
         [](P p) { return p.stats.pages_read_ahead; });
  e.Latency();

  e.EachOf("libpager_evictions_total", "counter",
           "Pages evicted: clean (dropped, the store's copy still valid) or written (written back).", "kind",
           {"clean", "written"},
           [](P p, const std::string& k) { return k == "clean" ? p.stats.evictions_clean : p.stats.evictions_written; });
  e.Each("libpager_deactivations_total", "counter", "Pages moved to the inactive stage.",
         [](P p) { return p.stats.deactivations; });

  e.Each("libpager_store_read_bytes_total", "counter", "Bytes read from the swap store.",
         [](P p) { return p.stats.bytes_read; });
  e.Each("libpager_store_written_bytes_total", "counter", "Bytes written to the swap store.",
         [](P p) { return p.stats.bytes_written; });
  e.Each("libpager_store_reads_total", "counter", "Read operations on the swap store.",
         [](P p) { return p.stats.store_reads; });
  e.Each("libpager_store_writes_total", "counter", "Write operations on the swap store.",
         [](P p) { return p.stats.store_writes; });
  e.Each("libpager_store_retries_total", "counter", "Store operations retried (a dropped connection, ...).",
         [](P p) { return p.stats.io_retries; });
  e.Each("libpager_store_errors_total", "counter", "Store operations that failed for good.",
         [](P p) { return p.stats.io_errors; });
  e.Each("libpager_checksum_failures_total", "counter",
         "Pages read back with a wrong checksum and poisoned (SIGBUS to the toucher).",
         [](P p) { return p.stats.checksum_failures; });
  e.EachOf("libpager_store_state", "gauge",
           "1 for the store's state: ok, reconnecting (the server went away, faults wait) or paused "
           "(writes fail or the store is full; eviction is paused).",
           "state", {"ok", "reconnecting", "paused"},
           [](P p, const std::string& k) { return uint64_t{k == pager::BackendStateName(p.stats.backend)}; });
  e.Each("libpager_encrypted", "gauge", "1 when pages are encrypted and authenticated in the store.",
         [](P p) { return uint64_t{p.stats.encrypted}; });
  e.Each("libpager_eviction_paused", "gauge", "1 while eviction is paused.",
         [](P p) { return uint64_t{p.stats.eviction_paused}; });
  e.Each("libpager_eviction_pauses_total", "counter", "Times eviction was paused.",
         [](P p) { return p.stats.eviction_pauses; });

  e.Each("libpager_under_replicated_pages", "gauge",
         "Swapped pages with fewer copies than configured (a store over several servers; 0 otherwise).",
         [](P p) { return p.stats.under_replicated_pages; });
  e.Each("libpager_rereplicated_bytes_total", "counter",
         "Bytes copied from a surviving copy to another server after a copy was lost.",
         [](P p) { return p.stats.rereplicated_bytes; });
  e.ServerStates();
  e.EachServer("libpager_server_read_bytes_total", "counter", "Bytes read from each server.",
               [](const pager::ServerStats& v) { return v.bytes_read; });
  e.EachServer("libpager_server_written_bytes_total", "counter", "Bytes written to each server.",
               [](const pager::ServerStats& v) { return v.bytes_written; });
  e.EachServer("libpager_server_reads_total", "counter", "Read requests answered by each server.",
               [](const pager::ServerStats& v) { return v.reads; });
  e.EachServer("libpager_server_writes_total", "counter", "Write requests answered by each server.",
               [](const pager::ServerStats& v) { return v.writes; });
  e.EachServer("libpager_server_hedged_reads_total", "counter",
               "Reads sent to each server because the copy asked first was late.",
               [](const pager::ServerStats& v) { return v.hedged_reads; });
  e.EachServer("libpager_server_errors_total", "counter", "Requests each server answered with an error.",
               [](const pager::ServerStats& v) { return v.errors; });
  e.EachServer("libpager_server_downs_total", "counter", "Times each server was marked down.",
               [](const pager::ServerStats& v) { return v.downs; });
  e.EachServer("libpager_server_extents", "gauge", "Extents (1 MiB of slots) with a copy on each server.",
               [](const pager::ServerStats& v) { return v.extents; });
  e.ServerLatency();

  e.Each("libpager_reserve_bytes", "gauge", "Size of the locked emergency pool.",
         [](P p) { return p.stats.reserve_bytes; });
  e.Each("libpager_reserve_free_bytes", "gauge", "Free bytes of the emergency pool.",
         [](P p) { return p.stats.reserve_free_bytes; });
  e.Each("libpager_reserve_min_free_bytes", "gauge", "Lowest free level of the emergency pool seen.",
         [](P p) { return p.stats.reserve_min_free_bytes; });
  e.Each("libpager_reserve_arena_bytes", "gauge", "The reserve arena's share of the pool in use.",
         [](P p) { return p.stats.reserve_arena_bytes; });
  e.Each("libpager_reserve_overflows_total", "counter", "Allocations the pool could not hold (served by the OS).",
         [](P p) { return p.stats.reserve_overflows; });

  e.Each("libpager_throttled_faults_total", "counter", "Faults throttled because the pool ran low.",
         [](P p) { return p.stats.throttle_events; });
  e.Each("libpager_throttled_seconds_total", "counter", "Total time faults waited on the throttle.",
         [](P p) { return static_cast<double>(p.stats.throttled_ns) / 1e9; });
  e.Each("libpager_limit_waits_total", "counter", "Faults that waited for eviction at the limit.",
         [](P p) { return p.stats.limit_waits; });
  e.Each("libpager_limit_overruns_total", "counter",
         "Times nothing resident could be evicted and faults went over the limit.",
         [](P p) { return p.stats.limit_overruns; });

  e.Plain("libpager_unreadable_stats_files", "gauge",
          "Stats files pagerctl could not read (another user's, or another libpager version's).",
          Number(static_cast<uint64_t>(skipped.size())));
  return e.str();
}

int Metrics(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")(
      "listen,l", po::value<std::string>()->value_name("[HOST:]PORT"),
      "serve the metrics over HTTP at http://HOST:PORT/metrics until SIGINT or SIGTERM "
      "(HOST: 127.0.0.1 unless given; 0.0.0.0 or [::] to serve every interface; PORT 0 picks a free one)");
  AddStatsDirOption(&desc);
  po::variables_map vm;
  if (!ParseArgs(args, desc, {},
                 "usage: pagerctl metrics [--listen [HOST:]PORT] [OPTIONS]\n"
                 "\n"
                 "Prints the counters of every paged process in the Prometheus text format\n"
                 "(names, units and labels: docs/cli.md), or serves them over HTTP.\n"
                 "\n"
                 "examples:\n"
                 "  pagerctl metrics\n"
                 "  pagerctl metrics > $DIR/libpager.prom.$$ && mv $DIR/libpager.prom.$$ $DIR/libpager.prom\n"
                 "      (DIR: node_exporter's --collector.textfile.directory)\n"
                 "  pagerctl metrics --listen 127.0.0.1:9864\n",
                 &vm)) {
    return kExitOk;
  }
  const std::string dir = StatsDir(vm);
  if (vm.count("listen")) return ServeMetrics(vm["listen"].as<std::string>(), dir);
  auto text = MetricsText(dir);
  if (!text.ok()) throw std::runtime_error(text.status().message());
  std::cout << *text << std::flush;
  return std::cout ? kExitOk : kExitError;
}

}  // namespace pagerctl

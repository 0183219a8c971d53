// pagerctl ps, stats and top: read the stats files pagers publish (see
// pager/monitor.h). Nothing here talks to a pager, so a pager stuck on a
// dead server shows up as such instead of hanging the tool.
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "common.h"
#include "pager/monitor.h"
#include "pager/units.h"

namespace pagerctl {
namespace {

using pager::PagedProcess;
using pager::Stats;

constexpr uint64_t kPage = 4096;

uint64_t NowUnixMs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

uint64_t TotalFaults(const Stats& s) { return s.faults_zero + s.faults_inactive + s.faults_swapin; }

std::string Id(const PagedProcess& p) {
  return p.index == 0 ? std::to_string(p.pid) : std::to_string(p.pid) + "." + std::to_string(p.index);
}

// Per-second rates between two samples of the same pager.
struct Rates {
  double faults = 0, read = 0, written = 0;
  bool known = false;
};

Rates RatesBetween(const PagedProcess* before, const PagedProcess& now, double seconds) {
  Rates r;
  if (before == nullptr || seconds <= 0) return r;
  auto d = [&](uint64_t a, uint64_t b) { return b >= a ? static_cast<double>(b - a) / seconds : 0.0; };
  r.faults = d(TotalFaults(before->stats), TotalFaults(now.stats));
  r.read = d(before->stats.bytes_read, now.stats.bytes_read);
  r.written = d(before->stats.bytes_written, now.stats.bytes_written);
  r.known = true;
  return r;
}

// ---- JSON -----------------------------------------------------------------

// Strings from pager/monitor.h are already escaped for display (valid UTF-8,
// no control characters); this makes any string a JSON string.
std::string Quote(const std::string& s) { return JsonQuote(s); }

// A JSON object built field by field, in order.
class Obj {
 public:
  Obj& Num(const char* k, uint64_t v) { return Raw(k, std::to_string(v)); }
  Obj& Real(const char* k, double v) {
    char b[32];
    snprintf(b, sizeof b, "%.1f", std::isfinite(v) ? v : 0.0);
    return Raw(k, b);
  }
  Obj& Str(const char* k, const std::string& v) { return Raw(k, Quote(v)); }
  Obj& Bool(const char* k, bool v) { return Raw(k, v ? "true" : "false"); }
  Obj& Raw(const char* k, const std::string& json) {
    out_ += (out_.empty() ? "{" : ",") + Quote(k) + ":" + json;
    return *this;
  }
  std::string str() const { return out_.empty() ? "{}" : out_ + "}"; }

 private:
  std::string out_;
};

std::string HistogramJson(const uint64_t (&buckets)[pager::kLatencyBuckets]) {
  std::string hist = "[";
  for (int i = 0; i < pager::kLatencyBuckets; i++) hist += (i ? "," : "") + std::to_string(buckets[i]);
  return hist + "]";
}

// The servers of a store over several (docs/servers.md); [] for one server.
std::string ServersJson(const Stats& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.servers.size(); i++) {
    const pager::ServerStats& v = s.servers[i];
    out += (i ? "," : "") + Obj()
                                .Str("name", v.name)
                                .Str("state", pager::ServerStateName(v.state))
                                .Num("reads", v.reads)
                                .Num("writes", v.writes)
                                .Num("bytes_read", v.bytes_read)
                                .Num("bytes_written", v.bytes_written)
                                .Num("hedged_reads", v.hedged_reads)
                                .Num("errors", v.errors)
                                .Num("downs", v.downs)
                                .Num("extents", v.extents)
                                .Raw("latency_us", Obj()
                                                       .Real("p50", v.LatencyPercentile(50))
                                                       .Real("p99", v.LatencyPercentile(99))
                                                       .Raw("histogram", HistogramJson(v.latency_us))
                                                       .str())
                                .str();
  }
  return out + "]";
}

std::string ProcessJson(const PagedProcess& p, const Rates* rates) {
  const Stats& s = p.stats;
  const std::string hist = HistogramJson(s.fault_latency_us);
  Obj o;
  o.Num("pid", static_cast<uint64_t>(p.pid)).Num("index", p.index).Num("uid", p.uid).Str("command", p.command);
  o.Bool("stale", p.stale).Num("start_time_ticks", p.start_time).Num("created_unix_ms", p.created_unix_ms);
  o.Num("time_unix_ms", NowUnixMs()).Str("swap", p.swap).Str("features", p.features);
  o.Raw("memory", Obj()
                      .Num("limit_bytes", s.limit_pages * kPage)
                      .Num("resident_bytes", s.resident_pages * kPage)
                      .Num("inactive_bytes", s.inactive_pages * kPage)
                      .Num("swapped_bytes", s.swapped_pages * kPage)
                      .Num("slots_in_use", s.slots_in_use)
                      .Num("mapped_bytes", s.mapped_bytes)
                      .str());
  o.Raw("faults", Obj()
                      .Num("total", TotalFaults(s))
                      .Num("zero", s.faults_zero)
                      .Num("inactive", s.faults_inactive)
                      .Num("swapin", s.faults_swapin)
                      .Num("pages_zero_filled", s.pages_zero_filled)
                      .Num("pages_read_ahead", s.pages_read_ahead)
                      .Raw("latency_us", Obj()
                                             .Real("p50", s.FaultLatencyPercentile(50))
                                             .Real("p90", s.FaultLatencyPercentile(90))
                                             .Real("p99", s.FaultLatencyPercentile(99))
                                             .Real("p999", s.FaultLatencyPercentile(99.9))
                                             .Raw("histogram", hist)
                                             .str())
                      .str());
  o.Raw("evictions", Obj()
                         .Num("clean", s.evictions_clean)
                         .Num("written", s.evictions_written)
                         .Num("deactivations", s.deactivations)
                         .str());
  o.Raw("store", Obj()
                     .Str("state", pager::BackendStateName(s.backend))
                     .Bool("encrypted", s.encrypted)
                     .Bool("eviction_paused", s.eviction_paused)
                     .Num("eviction_pauses", s.eviction_pauses)
                     .Num("bytes_read", s.bytes_read)
                     .Num("bytes_written", s.bytes_written)
                     .Num("reads", s.store_reads)
                     .Num("writes", s.store_writes)
                     .Num("retries", s.io_retries)
                     .Num("errors", s.io_errors)
                     .Num("checksum_failures", s.checksum_failures)
                     .Num("replicas", s.replicas)
                     .Num("under_replicated_pages", s.under_replicated_pages)
                     .Num("rereplicated_bytes", s.rereplicated_bytes)
                     .Raw("servers", ServersJson(s))
                     .str());
  o.Raw("reserve", Obj()
                       .Num("bytes", s.reserve_bytes)
                       .Num("free_bytes", s.reserve_free_bytes)
                       .Num("min_free_bytes", s.reserve_min_free_bytes)
                       .Num("arena_bytes", s.reserve_arena_bytes)
                       .Num("overflows", s.reserve_overflows)
                       .str());
  o.Raw("throttle", Obj()
                        .Num("events", s.throttle_events)
                        .Num("throttled_ns", s.throttled_ns)
                        .Num("limit_waits", s.limit_waits)
                        .Num("limit_overruns", s.limit_overruns)
                        .str());
  if (rates != nullptr && rates->known) {
    o.Raw("rates", Obj()
                       .Real("faults_per_s", rates->faults)
                       .Real("read_bytes_per_s", rates->read)
                       .Real("written_bytes_per_s", rates->written)
                       .str());
  }
  return o.str();
}

// ---- Tables (ps, top) -----------------------------------------------------

std::string Pad(const std::string& s, size_t w, bool left = false) {
  if (s.size() >= w) return s;
  return left ? s + std::string(w - s.size(), ' ') : std::string(w - s.size(), ' ') + s;
}

// The user's name, or the uid if it has none.
std::string UserName(uid_t uid) {
  static std::map<uid_t, std::string> names;
  auto it = names.find(uid);
  if (it != names.end()) return it->second;
  passwd pw, *found = nullptr;
  char buf[4096];
  std::string name = getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr
                         ? pager::EscapeForDisplay(pw.pw_name)
                         : std::to_string(uid);
  return names[uid] = name;
}

// The backend state, and with several servers how many answer when not all
// do: "ok 2/3 up".
std::string BackendLabel(const Stats& s) {
  std::string state = pager::BackendStateName(s.backend);
  size_t up = 0;
  for (const pager::ServerStats& v : s.servers) up += v.state == pager::ServerState::kOk;
  if (up == s.servers.size()) return state;
  return state + " " + std::to_string(up) + "/" + std::to_string(s.servers.size()) + " up";
}

std::string TableHeader(bool top) {
  std::string h = Pad("PID", 8, true) + Pad("USER", 9, true) + Pad("LIMIT", 10) + Pad("RESIDENT", 11) +
                  Pad("SWAPPED", 11) + Pad("FAULTS/S", 10);
  if (top) h += Pad("READ/S", 11) + Pad("WRITE/S", 11) + Pad("OVERRUNS", 9);
  return h + Pad("THROTTLED", 10) + "  " + Pad("BACKEND", 13, true) + "COMMAND";
}

std::string TableRow(const PagedProcess& p, const Rates& r, bool top) {
  const Stats& s = p.stats;
  std::string row = Pad(Id(p), 8, true) + Pad(UserName(p.uid).substr(0, 8), 9, true) +
                    Pad(Size(s.limit_pages * kPage), 10) +
                    Pad(Size(s.resident_pages * kPage), 11) + Pad(Size(s.swapped_pages * kPage, true), 11) +
                    Pad(r.known ? Count(std::round(r.faults)) : "?", 10);
  if (top) {
    row += Pad(r.known ? Size(static_cast<uint64_t>(r.read), true) : "?", 11) +
           Pad(r.known ? Size(static_cast<uint64_t>(r.written), true) : "?", 11) +
           Pad(s.limit_overruns == 0 ? "-" : Count(static_cast<double>(s.limit_overruns)), 9);
  }
  std::string throttled = s.throttled_ns == 0 ? "-" : Duration(static_cast<double>(s.throttled_ns) / 1e9);
  std::string state = p.stale ? "stale" : BackendLabel(s);
  return row + Pad(throttled, 10) + "  " + Pad(state, 13, true) + p.command;
}

using Sample = std::map<std::string, PagedProcess>;  // by path

// Live pagers in `dir` (and stale ones if asked). With `unreadable`, files
// that were skipped (untrusted, cut short, another layout version) are
// reported there in one line.
std::vector<PagedProcess> List(const std::string& dir, bool with_stale, std::string* unreadable = nullptr) {
  std::vector<std::string> skipped;
  auto r = pager::ListPagedProcesses(dir, &skipped);
  if (!r.ok()) throw std::runtime_error(r.status().message());
  if (unreadable != nullptr && !skipped.empty()) {
    *unreadable = std::to_string(skipped.size()) + " stats file(s) not shown (untrusted, unreadable, or of " +
                  "another libpager version); first: " + pager::EscapeForDisplay(skipped[0]);
  }
  std::vector<PagedProcess> out;
  for (auto& p : *r) {
    if (with_stale || !p.stale) out.push_back(std::move(p));
  }
  return out;
}

const PagedProcess* Find(const Sample& before, const PagedProcess& p) {
  auto it = before.find(p.path);
  return it != before.end() && it->second.start_time == p.start_time ? &it->second : nullptr;
}

Sample ToSample(const std::vector<PagedProcess>& v) {
  Sample s;
  for (const auto& p : v) s[p.path] = p;
  return s;
}

}  // namespace

// ---- ps -------------------------------------------------------------------

int Ps(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")("json", "one JSON document (schema: docs/cli.md)")(
      "all,a", "include stale entries of processes that are gone")(
      "interval,i", po::value<std::string>()->default_value("0.2")->value_name("DURATION"),
      "time between the two samples the fault rate is taken from");
  AddStatsDirOption(&desc);
  po::variables_map vm;
  if (!ParseArgs(args, desc, {}, "usage: pagerctl ps [OPTIONS]\n\nOne line per paged process.\n", &vm)) {
    return kExitOk;
  }
  double interval = ParseSecondsArg("--interval", vm["interval"].as<std::string>());
  const std::string dir = StatsDir(vm);
  const bool all = vm.count("all") > 0;
  Sample before = ToSample(List(dir, all));
  auto t0 = std::chrono::steady_clock::now();
  if (!before.empty() && interval > 0) std::this_thread::sleep_for(std::chrono::duration<double>(interval));
  std::string unreadable;
  std::vector<PagedProcess> now = List(dir, all, &unreadable);
  if (!unreadable.empty()) fprintf(stderr, "pagerctl ps: %s\n", unreadable.c_str());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (vm.count("json")) {
    std::string out = "{\"processes\":[";
    for (size_t i = 0; i < now.size(); i++) {
      Rates r = RatesBetween(Find(before, now[i]), now[i], secs);
      out += (i ? "," : "") + ProcessJson(now[i], &r);
    }
    std::cout << out << "]}\n";
    return kExitOk;
  }
  std::cout << TableHeader(false) << "\n";
  for (const auto& p : now) std::cout << TableRow(p, RatesBetween(Find(before, p), p, secs), false) << "\n";
  return kExitOk;
}

// ---- stats ----------------------------------------------------------------

namespace {

// "PID" or "PID.N" -> its live pager's file. A PID with several pagers must
// be told which.
PagedProcess Select(const std::string& dir, const std::string& target) {
  unsigned pid = 0, index = 0;
  int end = 0;
  bool has_index = sscanf(target.c_str(), "%u.%u%n", &pid, &index, &end) == 2 &&
                   static_cast<size_t>(end) == target.size();
  if (!has_index && !(sscanf(target.c_str(), "%u%n", &pid, &end) == 1 && static_cast<size_t>(end) == target.size())) {
    throw UsageError("'" + target + "' is not a PID (or PID.N)");
  }
  std::vector<PagedProcess> mine;
  for (auto& p : List(dir, true)) {
    if (p.pid == static_cast<pid_t>(pid) && (!has_index || p.index == index)) mine.push_back(std::move(p));
  }
  std::vector<PagedProcess> live;
  for (auto& p : mine) {
    if (!p.stale) live.push_back(p);
  }
  if (live.empty()) {
    if (!mine.empty()) {
      throw std::runtime_error("process " + target + " is gone; " + mine[0].path +
                               " is a leftover ('pagerctl gc' removes it)");
    }
    throw std::runtime_error("no paged process " + target + " (no stats in " + dir + ")");
  }
  if (live.size() > 1) {
    std::string ids;
    for (const auto& p : live) ids += " " + Id(p);
    throw UsageError("process " + target + " has " + std::to_string(live.size()) + " pagers; pick one of:" + ids);
  }
  return live[0];
}

void PrintHuman(const PagedProcess& p, const Rates& r) {
  const Stats& s = p.stats;
  auto line = [](const char* label, const std::string& v) { printf("  %-18s %s\n", label, v.c_str()); };
  auto n = [](uint64_t v) { return std::to_string(v); };
  printf("pid %s: %s\n", Id(p).c_str(), p.command.c_str());
  line("swap", p.swap);
  line("pages in store", s.encrypted ? "encrypted and authenticated (AES-256-GCM)" : "in clear, checksummed (XXH3-64)");
  line("features", p.features);
  char pct[32];
  snprintf(pct, sizeof pct, " (%.0f%%)",
           s.limit_pages ? 100.0 * static_cast<double>(s.resident_pages) / static_cast<double>(s.limit_pages) : 0.0);
  printf("memory\n");
  line("resident", Size(s.resident_pages * kPage) + " of " + Size(s.limit_pages * kPage) + " limit" + pct);
  line("inactive", Size(s.inactive_pages * kPage));
  line("swapped", Size(s.swapped_pages * kPage) + ", " + n(s.slots_in_use) + " slots in use");
  line("mapped", Size(s.mapped_bytes));
  printf("faults\n");
  line("zero-fill", n(s.faults_zero) + " (" + n(s.pages_zero_filled) + " pages filled)");
  line("swap-in", n(s.faults_swapin) + " (" + n(s.pages_read_ahead) + " pages read ahead)");
  line("inactive re-touch", n(s.faults_inactive));
  char lat[128];
  snprintf(lat, sizeof lat, "p50 %.0fus  p90 %.0fus  p99 %.0fus  p99.9 %.0fus", s.FaultLatencyPercentile(50),
           s.FaultLatencyPercentile(90), s.FaultLatencyPercentile(99), s.FaultLatencyPercentile(99.9));
  line("latency", lat);
  if (r.known) line("rate", Count(std::round(r.faults)) + " faults/s");
  printf("evictions\n");
  line("clean drops", n(s.evictions_clean));
  line("write-backs", n(s.evictions_written));
  line("deactivations", n(s.deactivations));
  printf("store\n");
  line("state", std::string(pager::BackendStateName(s.backend)) + (s.eviction_paused ? ", eviction paused" : "") +
                    ", " + n(s.eviction_pauses) + " pauses");
  line("read", Size(s.bytes_read) + " in " + n(s.store_reads) + " ops" +
                   (r.known ? ", " + Size(static_cast<uint64_t>(r.read)) + "/s" : ""));
  line("written", Size(s.bytes_written) + " in " + n(s.store_writes) + " ops" +
                      (r.known ? ", " + Size(static_cast<uint64_t>(r.written)) + "/s" : ""));
  line("retries", n(s.io_retries));
  line("errors", n(s.io_errors) + " (" + n(s.checksum_failures) + " checksum failures)");
  if (!s.servers.empty()) {
    printf("servers\n");
    line("copies", n(s.replicas) + " of each page; " + n(s.under_replicated_pages) + " pages short of copies; " +
                       Size(s.rereplicated_bytes) + " copied again");
    for (const pager::ServerStats& v : s.servers) {
      char lat[64];
      snprintf(lat, sizeof lat, "p50 %.0fus  p99 %.0fus", v.LatencyPercentile(50), v.LatencyPercentile(99));
      printf("  %-34s %-12s read %s in %s ops, written %s in %s ops, %s, %s extents, %s hedged, %s errors, "
             "%s downs\n",
             v.name.c_str(), pager::ServerStateName(v.state), Size(v.bytes_read).c_str(), n(v.reads).c_str(),
             Size(v.bytes_written).c_str(), n(v.writes).c_str(), lat, n(v.extents).c_str(),
             n(v.hedged_reads).c_str(), n(v.errors).c_str(), n(v.downs).c_str());
    }
  }
  printf("reserve\n");
  line("size", Size(s.reserve_bytes));
  line("free", Size(s.reserve_free_bytes) + " (lowest " + Size(s.reserve_min_free_bytes) + ")");
  line("arena in use", Size(s.reserve_arena_bytes) + " (" + n(s.reserve_overflows) + " overflows)");
  printf("throttle\n");
  line("events", n(s.throttle_events));
  line("throttled time", Duration(static_cast<double>(s.throttled_ns) / 1e9));
  line("waits at limit", n(s.limit_waits));
  line("over the limit",
       n(s.limit_overruns) + " (times nothing resident could be evicted: read-only or locked memory)");
  fflush(stdout);
}

}  // namespace

int StatsCmd(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")("json", "JSON (schema: docs/cli.md); with --watch, one line each")(
      "watch,w", po::value<std::string>()->value_name("DURATION"), "print again every DURATION until the process exits")(
      "pid", po::value<std::string>()->value_name("PID"), "the process (PID, or PID.N for its N-th pager)");
  AddStatsDirOption(&desc);
  po::positional_options_description pos;
  pos.add("pid", 1);
  po::variables_map vm;
  if (!ParseArgs(args, desc, pos,
                 "usage: pagerctl stats [OPTIONS] PID\n\nEvery counter of one paged process.\n", &vm)) {
    return kExitOk;
  }
  if (!vm.count("pid")) throw UsageError("no PID given");
  const bool json = vm.count("json") > 0;
  double watch = vm.count("watch") ? ParseSecondsArg("--watch", vm["watch"].as<std::string>()) : 0;
  if (vm.count("watch") && watch < 0.05) throw UsageError("--watch: at least 50ms");
  const std::string dir = StatsDir(vm);
  PagedProcess p = Select(dir, vm["pid"].as<std::string>());
  const bool redraw = !json && isatty(STDOUT_FILENO);
  PagedProcess prev;
  bool have_prev = false;
  auto t_prev = std::chrono::steady_clock::now();
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    Rates r = RatesBetween(have_prev ? &prev : nullptr, p, std::chrono::duration<double>(now - t_prev).count());
    if (json) {
      std::cout << ProcessJson(p, &r) << std::endl;
    } else {
      if (redraw && have_prev) printf("\x1b[H\x1b[2J");
      if (!redraw && have_prev) printf("\n");
      PrintHuman(p, r);
    }
    if (watch == 0) return kExitOk;
    prev = p;
    have_prev = true;
    t_prev = now;
    std::this_thread::sleep_for(std::chrono::duration<double>(watch));
    auto next = pager::ReadPagedProcess(p.path);
    if (!next.ok() || next->stale || next->start_time != p.start_time) {
      fprintf(stderr, "pagerctl stats: process %s exited\n", Id(p).c_str());
      return kExitOk;
    }
    p = std::move(*next);
  }
}

// ---- top ------------------------------------------------------------------

namespace {

volatile sig_atomic_t g_quit = 0;
void OnQuitSignal(int) { g_quit = 1; }

// Raw keyboard input (no echo, no line buffering) while it lives; restores
// the terminal as it found it, also on SIGINT/SIGTERM (which end the loop).
class RawTerminal {
 public:
  RawTerminal() {
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    active_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  bool active() const { return active_; }

 private:
  termios saved_{};
  bool active_ = false;
};

}  // namespace

int Top(const std::vector<std::string>& args) {
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")(
      "interval,i", po::value<std::string>()->default_value("1")->value_name("DURATION"), "time between refreshes")(
      "iterations,n", po::value<unsigned>()->default_value(0)->value_name("N"), "stop after N refreshes (0: never)");
  AddStatsDirOption(&desc);
  po::variables_map vm;
  if (!ParseArgs(args, desc, {},
                 "usage: pagerctl top [OPTIONS]\n\nLive view of all paged processes, refreshed in place; "
                 "q quits.\n",
                 &vm)) {
    return kExitOk;
  }
  double interval = ParseSecondsArg("--interval", vm["interval"].as<std::string>());
  if (interval < 0.05) throw UsageError("--interval: at least 50ms");
  const unsigned iterations = vm["iterations"].as<unsigned>();
  const std::string dir = StatsDir(vm);
  const bool tty = isatty(STDOUT_FILENO);

  struct sigaction sa = {};
  sa.sa_handler = OnQuitSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  RawTerminal term;
  if (tty) printf("\x1b[?1049h\x1b[?25l");  // alternate screen, cursor hidden
  Sample before;
  auto t_before = std::chrono::steady_clock::now();
  for (unsigned it = 0; !g_quit && (iterations == 0 || it < iterations); it++) {
    std::vector<PagedProcess> now = List(dir, false);
    auto t_now = std::chrono::steady_clock::now();
    double secs = std::chrono::duration<double>(t_now - t_before).count();
    winsize ws = {};
    size_t width = tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 1000;
    std::ostringstream out;
    if (tty) out << "\x1b[H\x1b[2J";
    uint64_t resident = 0, swapped = 0;
    double faults = 0;
    for (const auto& p : now) {
      resident += p.stats.resident_pages * kPage;
      swapped += p.stats.swapped_pages * kPage;
      faults += RatesBetween(Find(before, p), p, secs).faults;
    }
    time_t wall = time(nullptr);
    char clock[16];
    strftime(clock, sizeof clock, "%H:%M:%S", localtime(&wall));
    out << "pagerctl top - " << clock << "  " << now.size() << (now.size() == 1 ? " paged process" : " paged processes") << ", resident " << Size(resident)
        << ", swapped " << Size(swapped) << ", " << Count(std::round(faults)) << " faults/s"
        << (term.active() ? "   (q quits)" : "") << "\n\n";
    out << TableHeader(true).substr(0, width) << "\n";
    for (const auto& p : now) out << TableRow(p, RatesBetween(Find(before, p), p, secs), true).substr(0, width) << "\n";
    std::cout << out.str() << std::flush;
    before = ToSample(now);
    t_before = t_now;
    if (iterations != 0 && it + 1 == iterations) break;
    // Wait for the next refresh, or a key.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(interval);
    while (!g_quit) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd pfd = {STDIN_FILENO, POLLIN, 0};
      int n = poll(&pfd, term.active() ? 1 : 0, static_cast<int>(left.count()));
      if (n > 0) {
        char c = 0;
        if (read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q')) g_quit = 1;
      }
    }
  }
  if (tty) printf("\x1b[?25h\x1b[?1049l");
  fflush(stdout);
  return kExitOk;
}

}  // namespace pagerctl

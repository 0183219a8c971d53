// Throughput of the store over several servers (docs/servers.md) against
// loopback nfs-ganesha servers, as ratios to one server measured in the same
// run: striping over two servers (one copy of each page), two copies over
// two and over three servers.
//
//   replicated_bench [--quick]
//
// On a machine where the client and every server share a few CPUs the
// servers compete with each other: the ratio says what striping buys there,
// not what it buys across a rack.
#include <cstdio>
#include <future>
#include <string>
#include <vector>

#include "../tests/nfs_server.h"
#include "store_workload.h"

namespace {

using pager::StoreOp;
using pager::bench::Work;

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  pager::testing::NfsServer servers[3];
  std::future<bool> started[3];
  for (int i = 0; i < 3; i++) started[i] = std::async(std::launch::async, [&servers, i] { return servers[i].Start(); });
  for (int i = 0; i < 3; i++) {
    if (!started[i].get()) {
      std::fprintf(stderr, "cannot start nfs-ganesha: %s\n", servers[i].error().c_str());
      return 1;
    }
  }
  const uint64_t span = (quick ? 128 : 512) << 8;  // slots: 128 / 512 MiB
  const size_t big_n = quick ? 128 : 512;
  struct Case {
    const char* name;
    Work w;
    bool bytes;  // report MB/s (else kIOPS)
  };
  const std::vector<Case> cases = {
      {"seq write 1 MiB QD8", {StoreOp::Kind::kWrite, 256, 8, big_n, false, span}, true},
      {"seq read  1 MiB QD8", {StoreOp::Kind::kRead, 256, 8, big_n, false, span}, true},
      {"seq read  256 KiB QD4", {StoreOp::Kind::kRead, 64, 4, big_n * 4, false, span}, true},
      {"rand read 4 KiB QD16", {StoreOp::Kind::kRead, 1, 16, quick ? 5000u : 20000u, true, span}, false},
  };
  const std::string a = servers[0].url(), b = servers[1].url(), c = servers[2].url();
  struct Config {
    const char* name;
    std::string swap;
    uint32_t replicas;
  };
  const std::vector<Config> configs = {
      {"1 server", a, 0},
      {"2 servers, 1 copy (striped)", a + "," + b, 1},
      {"2 servers, 2 copies", a + "," + b, 2},
      {"3 servers, 2 copies", a + "," + b + "," + c, 2},
  };
  std::vector<double> baseline(cases.size());
  for (const Config& cfg : configs) {
    pager::StoreOptions o;
    o.replicas = cfg.replicas;
    auto s = pager::OpenStore(cfg.swap, o);
    pager::bench::Waiter waiter;
    if (!s.ok() || !(*s)->Start(&waiter).ok()) {
      std::fprintf(stderr, "%s: cannot start the store: %s\n", cfg.name, s.ok() ? "" : s.status().message().c_str());
      return 1;
    }
    std::printf("%s:\n", cfg.name);
    for (size_t i = 0; i < cases.size(); i++) {
      const Case& k = cases[i];
      const double secs = pager::bench::RunStore(s->get(), &waiter, k.w);
      const double ops = static_cast<double>(k.w.n) / secs;
      const double rate = k.bytes ? ops * k.w.pages * pager::kPageSize / 1e6 : ops / 1e3;
      if (&cfg == &configs[0]) baseline[i] = rate;
      std::printf("  %-22s %9.1f %s   %.2f x 1 server\n", k.name, rate, k.bytes ? "MB/s" : "kIOPS",
                  rate / baseline[i]);
    }
    (*s)->Stop();
  }
  return 0;
}

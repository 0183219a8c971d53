// Throughput of the NFS store against the bundled loopback nfs-ganesha,
// as ratios to a baseline measured in the same run: the same access pattern
// with pread/pwrite on a local file (page cache), and memcpy.
//
//   nfs_store_bench [--quick]
//
// Prints one line per case: absolute number, then "x local" (NFS / local
// file) so that runs on noisy machines compare.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../tests/nfs_server.h"
#include "store/nfs_store.h"
#include "store_workload.h"

namespace {

using Clock = std::chrono::steady_clock;
using pager::bench::Work;
using pager::kPageSize;
using pager::StoreOp;

// Seconds for `w` with pread/pwrite on a local file (QD 1: it is
// synchronous; the page cache answers). Writes end with one fdatasync, the
// local equivalent of the store's stability.
double RunLocal(int fd, const Work& w) {
  std::vector<std::byte> buf(size_t{w.pages} * kPageSize, std::byte{7});
  std::mt19937_64 rng(42);
  auto t0 = Clock::now();
  for (size_t i = 0; i < w.n; i++) {
    off_t off = static_cast<off_t>(pager::bench::SlotOf(w, i, rng) * kPageSize);
    ssize_t r = w.kind == StoreOp::Kind::kWrite ? pwrite(fd, buf.data(), buf.size(), off)
                                                : pread(fd, buf.data(), buf.size(), off);
    if (r != static_cast<ssize_t>(buf.size())) std::exit(1);
  }
  if (w.kind == StoreOp::Kind::kWrite) fdatasync(fd);
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double MemcpyGBs() {
  std::vector<char> a(256 << 20, 1), b(256 << 20);
  auto t0 = Clock::now();
  for (int i = 0; i < 4; i++) std::memcpy(b.data(), a.data(), a.size());
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return 4.0 * a.size() / s / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  pager::testing::NfsServer server;
  if (!server.Start()) {
    std::fprintf(stderr, "cannot start nfs-ganesha: %s\n", server.error().c_str());
    return 1;
  }
  const uint64_t span = (quick ? 64 : 256) << 8;  // slots: 64 / 256 MiB
  const size_t big_n = quick ? 64 : 256;

  std::string local_path = server.export_dir() + "/../libpager-bench-local.swap";
  int fd = open(local_path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || ftruncate(fd, span * kPageSize) != 0) return 1;

  struct Case {
    const char* name;
    Work w;
    bool bytes;  // report GB/s (else kIOPS)
  };
  const std::vector<Case> cases = {
      {"seq write 1 MiB QD8", {StoreOp::Kind::kWrite, 256, 8, big_n, false, span}, true},
      {"seq read  1 MiB QD8", {StoreOp::Kind::kRead, 256, 8, big_n, false, span}, true},
      {"rand read 4 KiB QD1", {StoreOp::Kind::kRead, 1, 1, quick ? 1000u : 4000u, true, span}, false},
      {"rand read 4 KiB QD16", {StoreOp::Kind::kRead, 1, 16, quick ? 5000u : 40000u, true, span}, false},
      {"rand write 4 KiB QD16", {StoreOp::Kind::kWrite, 1, 16, quick ? 2000u : 10000u, true, span}, false},
  };
  std::vector<double> local(cases.size());
  for (size_t i = 0; i < cases.size(); i++) local[i] = RunLocal(fd, cases[i].w);
  close(fd);
  unlink(local_path.c_str());
  std::printf("baseline: memcpy %.1f GB/s; local file (pread/pwrite, page cache):\n", MemcpyGBs());
  auto rate = [](const Case& c, double secs) {
    double ops = c.w.n / secs;
    return c.bytes ? ops * c.w.pages * kPageSize / 1e9 : ops / 1e3;
  };
  for (size_t i = 0; i < cases.size(); i++)
    std::printf("  %-22s %8.2f %s\n", cases[i].name, rate(cases[i], local[i]), cases[i].bytes ? "GB/s" : "kIOPS");

  const std::vector<std::pair<const char*, std::string>> configs = {
      {"v3 1 conn, UNSTABLE+COMMIT", ""},
      {"v3 2 conns, UNSTABLE+COMMIT", "conns=2"},
      {"v3 1 conn, FILE_SYNC", "stable=sync"},
      {"v3 2 conns, FILE_SYNC", "stable=sync&conns=2"},
      {"v4 1 conn", "version=4"},
  };
  for (const auto& [label, query] : configs) {
    auto s = pager::OpenNfsStore(server.url("", query), 0, 10000);
    pager::bench::Waiter waiter;
    if (!s.ok() || !(*s)->Start(&waiter).ok()) {
      std::fprintf(stderr, "%s: cannot start the store\n", label);
      return 1;
    }
    const bool v4 = query.find("version=4") != std::string::npos;
    std::printf("nfs %s:\n", label);
    for (size_t i = 0; i < cases.size(); i++) {
      Work w = cases[i].w;
      if (v4) {
        // v4 WRITEs go out in 3944-byte pieces, ~40x slower: a 16 MiB file.
        w.span = 4096;
        if (w.kind == StoreOp::Kind::kWrite) w.n = w.pages > 1 ? 16 : w.n / 16;
      }
      double secs = pager::bench::RunStore(s->get(), &waiter, w);
      Case c = cases[i];
      c.w = w;
      double local_rate = rate(cases[i], local[i]);
      std::printf("  %-22s %8.2f %s   %.3f x local\n", c.name, rate(c, secs), c.bytes ? "GB/s" : "kIOPS",
                  rate(c, secs) / local_rate);
    }
    (*s)->Stop();
  }
  return 0;
}

// bench_raw_io: what the swap location delivers to a plain program, the
// baseline a pager's figures are ratios of. The same file operations run
// against an NFS server through libnfs directly (no pager, no store: a
// synchronous nfs_pread/nfs_pwrite loop, as a plain reader would write it)
// or against a local directory with pread/pwrite (the page cache answers):
//
//   bench_raw_io --target=nfs://127.0.0.1/export?nfsport=P&mountport=M --bytes=512M
//   bench_raw_io --target=/var/tmp --bytes=512M
//
// A file of --bytes is written in 1 MiB writes, read back in 1 MiB reads
// (median of 3 passes), then read in 4 KiB reads at random offsets, one at
// a time, each timed (up to --ops or --max-seconds). Prints one JSON line.
// With --server-pid, the server's CPU for the 1 MiB passes.
#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nfsc/libnfs.h>

#include "args.h"
#include "cpu.h"
#include "json.h"
#include "timing.h"

namespace bench {
namespace {

constexpr size_t kBig = 1 << 20;
constexpr size_t kSmall = 4096;

// A file read and written at offsets. Each call returns false on error,
// and error() says why.
class RawFile {
 public:
  virtual ~RawFile() = default;
  virtual bool Pread(uint64_t off, size_t len, void* buf) = 0;
  virtual bool Pwrite(uint64_t off, size_t len, const void* buf) = 0;
  const std::string& error() const { return error_; }

 protected:
  std::string error_;
};

class LocalFile : public RawFile {
 public:
  explicit LocalFile(const std::string& dir) : path_(dir + "/libpager-bench-raw." + std::to_string(getpid())) {}
  ~LocalFile() override {
    if (fd_ >= 0) close(fd_);
    unlink(path_.c_str());
  }
  bool Open() {
    fd_ = open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0) error_ = path_ + ": " + std::strerror(errno);
    return fd_ >= 0;
  }
  bool Pread(uint64_t off, size_t len, void* buf) override {
    return Check(pread(fd_, buf, len, static_cast<off_t>(off)), len, "pread");
  }
  bool Pwrite(uint64_t off, size_t len, const void* buf) override {
    return Check(pwrite(fd_, buf, len, static_cast<off_t>(off)), len, "pwrite");
  }

 private:
  bool Check(ssize_t n, size_t len, const char* what) {
    if (n == static_cast<ssize_t>(len)) return true;
    error_ = std::string(what) + " " + path_ + ": " + (n < 0 ? std::strerror(errno) : "short");
    return false;
  }
  std::string path_;
  int fd_ = -1;
};

class NfsFile : public RawFile {
 public:
  ~NfsFile() override {
    if (fh_ != nullptr) nfs_close(nfs_, fh_);
    if (created_) nfs_unlink(nfs_, name_.c_str());
    if (nfs_ != nullptr) nfs_destroy_context(nfs_);
  }
  bool Open(const std::string& url) {
    nfs_ = nfs_init_context();
    if (nfs_ == nullptr) return Fail("nfs_init_context");
    nfs_url* u = nfs_parse_url_dir(nfs_, url.c_str());
    if (u == nullptr) return Fail("url '" + url + "'");
    const std::string server = u->server, path = u->path;
    nfs_destroy_url(u);
    if (nfs_mount(nfs_, server.c_str(), path.c_str()) != 0) return Fail("mount " + server + ":" + path);
    name_ = "/libpager-bench-raw." + std::to_string(getpid());
    if (nfs_create(nfs_, name_.c_str(), O_RDWR | O_TRUNC, 0600, &fh_) != 0) return Fail("create " + name_);
    created_ = true;
    return true;
  }
  bool Pread(uint64_t off, size_t len, void* buf) override {
    return nfs_pread(nfs_, fh_, off, len, buf) == static_cast<int>(len) || Fail("read");
  }
  bool Pwrite(uint64_t off, size_t len, const void* buf) override {
    return nfs_pwrite(nfs_, fh_, off, len, buf) == static_cast<int>(len) || Fail("write");
  }

 private:
  bool Fail(const std::string& what) {
    const char* e = nfs_ != nullptr ? nfs_get_error(nfs_) : nullptr;
    error_ = "nfs " + what + ": " + (e != nullptr ? e : "no details from libnfs");
    return false;
  }
  nfs_context* nfs_ = nullptr;
  nfsfh* fh_ = nullptr;
  std::string name_;
  bool created_ = false;
};

int Main(int argc, char** argv) {
  Args args;
  if (!args.Parse(argc, argv)) return args.Fail(args.error());
  const std::string target = args.Str("target");
  const uint64_t bytes = args.Size("bytes", 256 << 20) / kBig * kBig;
  const uint64_t ops = args.Size("ops", 20000);
  const double max_seconds = args.Number("max-seconds", 5);
  const auto server = static_cast<pid_t>(args.Number("server-pid", 0));
  if (!args.error().empty()) return args.Fail(args.error());
  if (target.empty() || bytes == 0) return args.Fail("--target and --bytes (at least 1M) are required");

  std::unique_ptr<RawFile> file;
  if (target.rfind("nfs://", 0) == 0) {
    auto f = std::make_unique<NfsFile>();
    if (!f->Open(target)) return args.Fail(f->error());
    file = std::move(f);
  } else {
    auto f = std::make_unique<LocalFile>(target);
    if (!f->Open()) return args.Fail(f->error());
    file = std::move(f);
  }

  std::vector<char> buf(kBig, 7);
  JsonObject j;
  j.Add("type", "raw_io").Add("target", target.rfind("nfs://", 0) == 0 ? "nfs" : "local").Add("file_bytes", bytes);
  auto t0 = Clock::now();
  for (uint64_t off = 0; off < bytes; off += kBig) {
    if (!file->Pwrite(off, kBig, buf.data())) return args.Fail(file->error());
  }
  j.Add("write_1m_gbps", static_cast<double>(bytes) / SecondsSince(t0) / 1e9);

  double server_cpu = 0;
  const double seq_s = MedianOf(3, [&] {
    const double c0 = server > 0 ? TaskCpuSeconds(server) : 0;
    const auto t = Clock::now();
    for (uint64_t off = 0; off < bytes; off += kBig) {
      if (!file->Pread(off, kBig, buf.data())) return -1.0;
    }
    const double s = SecondsSince(t);
    if (server > 0) server_cpu = TaskCpuSeconds(server) - c0;
    return s;
  });
  if (seq_s < 0) return args.Fail(file->error());
  j.Add("read_1m_gbps", static_cast<double>(bytes) / seq_s / 1e9);
  j.Add("read_1m_server_cpu_s_per_gib", server > 0 ? std::optional(server_cpu / (static_cast<double>(bytes) / (1 << 30))) : std::nullopt);

  Samples lat;
  lat.Reserve(ops);
  std::mt19937_64 rng(3);
  t0 = Clock::now();
  const uint64_t slots = bytes / kSmall;
  for (uint64_t i = 0; i < ops; i++) {
    const auto a = Clock::now();
    if (!file->Pread(rng() % slots * kSmall, kSmall, buf.data())) return args.Fail(file->error());
    const auto z = Clock::now();
    lat.Add(NanosBetween(a, z));
    if (std::chrono::duration<double>(z - t0).count() >= max_seconds) break;
  }
  j.Add("read_4k_ops", static_cast<uint64_t>(lat.size()));
  j.Add("read_4k_iops", static_cast<double>(lat.size()) / SecondsSince(t0));
  j.Add("read_4k_p50_us", lat.PercentileUs(50)).Add("read_4k_p99_us", lat.PercentileUs(99));
  j.Print();
  return 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) { return bench::Main(argc, argv); }

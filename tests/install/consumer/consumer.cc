// Uses the C++ API of an installed libpager as a program of its own would:
// every public header, a region far over the limit written and read back
// in full, and the allocator it got.
//
//   consumer SWAP   (SWAP: memory:, a directory, nfs://...)
// Prints "ok ..." and exits 0, or names what is wrong and exits 1.
#include <dlfcn.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "pager/features.h"
#include "pager/monitor.h"
#include "pager/pager.h"
#include "pager/pager_c.h"
#include "pager/status.h"
#include "pager/store.h"
#include "pager/units.h"

namespace {

constexpr uint64_t kLimit = 8 << 20;
constexpr uint64_t kBytes = 64 << 20;

uint64_t Word(uint64_t i) { return i * 0x9e3779b97f4a7c15ull ^ 0x5bd1e995; }

int Fail(const char* what, const std::string& why) {
  fprintf(stderr, "consumer: %s: %s\n", what, why.c_str());
  return 1;
}

// The shared object `malloc` resolves to in this process.
std::string MallocOwner() {
  Dl_info info{};
  void* m = dlsym(RTLD_DEFAULT, "malloc");
  return m != nullptr && dladdr(m, &info) != 0 && info.dli_fname != nullptr ? info.dli_fname : "?";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return Fail("usage", "consumer SWAP");
  auto size = pager::ParseSize("64M");
  if (!size.ok() || *size != kBytes) return Fail("ParseSize", size.status().message());

  const pager::KernelFeatures k = pager::ProbeKernelFeatures();
  if (!k.uffd.ok()) return Fail("ProbeKernelFeatures", k.uffd.message());

  pager::Config cfg;
  cfg.memory_limit = kLimit;
  cfg.swap = argv[1];
  cfg.publish_stats = false;
  auto p = pager::Pager::Create(cfg);
  if (!p.ok()) return Fail("Pager::Create", p.status().message());
  auto mem = (*p)->Map(kBytes);
  if (!mem.ok()) return Fail("Map", mem.status().message());
  auto* words = static_cast<uint64_t*>(*mem);
  for (uint64_t i = 0; i < kBytes / 8; i++) words[i] = Word(i);
  for (uint64_t i = 0; i < kBytes / 8; i++) {
    if (words[i] != Word(i)) {
      char b[128];
      snprintf(b, sizeof b, "byte %" PRIu64 ": expected %016" PRIx64 ", found %016" PRIx64, i * 8, Word(i), words[i]);
      return Fail("read back", b);
    }
  }
  (*p)->Sync();
  pager::Stats s = (*p)->GetStats();
  if (s.faults_swapin == 0 || s.evictions_written == 0) return Fail("stats", "nothing was paged out and back");
  if (s.resident_pages * pager::kPageSize > kLimit) return Fail("stats", "resident over the limit");
  if (pager::Status u = (*p)->Unmap(*mem, kBytes); !u.ok()) return Fail("Unmap", u.message());

  auto listed = pager::ListPagedProcesses(pager::DefaultStatsDir());
  if (!listed.ok()) return Fail("ListPagedProcesses", listed.status().message());

  printf("ok: %s through a %s limit on %s, every byte read back (%" PRIu64 " swap-ins, %" PRIu64
         " pages written); features %s; malloc from %s\n",
         pager::FormatSize(kBytes).c_str(), pager::FormatSize(kLimit).c_str(), (*p)->config().swap.c_str(),
         s.faults_swapin, s.evictions_written, (*p)->Features().c_str(), MallocOwner().c_str());
  return 0;
}

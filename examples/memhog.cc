// memhog: a memory-hungry program that links libpager directly. It maps a
// paged region larger than its memory limit, writes every page with a
// page-specific pattern, reads everything back in random order, verifies
// every byte, and prints the pager's stats every second.
//
//   LIBPAGER_LIMIT=256M LIBPAGER_SWAP=nfs://... memhog 2G
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>

#include "pager/pager.h"
#include "pager/units.h"

namespace {

uint64_t Pattern(uint64_t page, uint64_t word) { return (page * 0x9E3779B97F4A7C15ull) ^ (word * 0xBF58476D1CE4E5B9ull); }

void PrintStats(const pager::Pager& p, const char* phase, double secs) {
  pager::Stats s = p.GetStats();
  printf("%6.1fs %-8s resident %9s / %-9s swapped %9s  faults: zero %" PRIu64 " swap-in %" PRIu64
         " inactive %" PRIu64 "  written %9s read %9s  p50 %.0fus p99 %.0fus  reserve %s free  %s\n",
         secs, phase, pager::FormatSize(s.resident_pages * pager::kPageSize).c_str(),
         pager::FormatSize(s.limit_pages * pager::kPageSize).c_str(),
         pager::FormatSize(s.swapped_pages * pager::kPageSize).c_str(), s.faults_zero, s.faults_swapin,
         s.faults_inactive, pager::FormatSize(s.bytes_written).c_str(), pager::FormatSize(s.bytes_read).c_str(),
         s.FaultLatencyPercentile(50), s.FaultLatencyPercentile(99),
         pager::FormatSize(s.reserve_free_bytes).c_str(), pager::BackendStateName(s.backend));
  fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: memhog SIZE   (with LIBPAGER_LIMIT and LIBPAGER_SWAP set)\n");
    return 2;
  }
  auto size = pager::ParseSize(argv[1]);
  if (!size.ok()) {
    fprintf(stderr, "memhog: %s\n", size.status().message().c_str());
    return 2;
  }
  auto cfg = pager::Config::FromEnvironment();
  if (!cfg.ok()) {
    fprintf(stderr, "memhog: %s\n", cfg.status().message().c_str());
    return 2;
  }
  auto pager = pager::Pager::Create(*cfg);
  if (!pager.ok()) {
    fprintf(stderr, "memhog: %s\n", pager.status().message().c_str());
    return 1;
  }
  auto& p = **pager;
  printf("memhog: %s paged under a %s limit, swap %s, features %s\n", pager::FormatSize(*size).c_str(),
         pager::FormatSize(cfg->memory_limit).c_str(), cfg->swap.c_str(), p.Features().c_str());
  auto mem = p.Map(*size);
  if (!mem.ok()) {
    fprintf(stderr, "memhog: %s\n", mem.status().message().c_str());
    return 1;
  }
  auto* words = static_cast<uint64_t*>(*mem);
  const uint64_t pages = *size / pager::kPageSize, per_page = pager::kPageSize / 8;

  auto start = std::chrono::steady_clock::now();
  auto last = start;
  auto secs = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  auto tick = [&](const char* phase) {
    auto now = std::chrono::steady_clock::now();
    if (now - last >= std::chrono::seconds(1)) {
      last = now;
      PrintStats(p, phase, secs());
    }
  };
  for (uint64_t pg = 0; pg < pages; pg++) {
    for (uint64_t w = 0; w < per_page; w++) words[pg * per_page + w] = Pattern(pg, w);
    if (pg % 256 == 0) tick("write");
  }
  PrintStats(p, "written", secs());
  std::mt19937_64 rng(1);
  uint64_t bad = 0;
  for (uint64_t n = 0; n < pages; n++) {
    uint64_t pg = rng() % pages;
    for (uint64_t w = 0; w < per_page; w++) bad += words[pg * per_page + w] != Pattern(pg, w);
    if (n % 64 == 0) tick("random");
  }
  for (uint64_t pg = 0; pg < pages; pg++) {
    for (uint64_t w = 0; w < per_page; w++) bad += words[pg * per_page + w] != Pattern(pg, w);
    if (pg % 256 == 0) tick("verify");
  }
  PrintStats(p, "done", secs());
  if (bad != 0) {
    printf("memhog: %" PRIu64 " words differ: FAILED\n", bad);
    return 1;
  }
  printf("memhog: every byte of %s verified\n", pager::FormatSize(*size).c_str());
  p.Unmap(*mem, *size).ok();
  return 0;
}

// A paged process with known activity, for pagerctl's tests: creates a
// pager from the LIBPAGER_* environment, maps PAGES pages, writes each once
// and reads each back (verified), waits for the pager to settle, prints
// "ready" and its own counters (name=value), then idles until its stdin
// closes, destroys the pager and exits 0. Each "touch" line read meanwhile
// starts a thread that reads every page again (faulting swapped ones in).
//
//   LIBPAGER_LIMIT=1M LIBPAGER_SWAP=memory: paged_helper 1024
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "pager/pager.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: paged_helper PAGES\n");
    return 2;
  }
  const uint64_t pages = strtoull(argv[1], nullptr, 10);
  auto cfg = pager::Config::FromEnvironment();
  if (!cfg.ok()) {
    fprintf(stderr, "paged_helper: %s\n", cfg.status().message().c_str());
    return 2;
  }
  auto p = pager::Pager::Create(*cfg);
  if (!p.ok()) {
    fprintf(stderr, "paged_helper: %s\n", p.status().message().c_str());
    return 1;
  }
  auto mem = (*p)->Map(pages * pager::kPageSize);
  if (!mem.ok()) {
    fprintf(stderr, "paged_helper: %s\n", mem.status().message().c_str());
    return 1;
  }
  auto* words = static_cast<uint64_t*>(*mem);
  const uint64_t per_page = pager::kPageSize / 8;
  for (uint64_t i = 0; i < pages; i++) {
    for (uint64_t w = 0; w < per_page; w++) words[i * per_page + w] = i * 1000003 + w;
  }
  for (uint64_t i = 0; i < pages; i++) {
    for (uint64_t w = 0; w < per_page; w++) {
      if (words[i * per_page + w] != i * 1000003 + w) {
        fprintf(stderr, "paged_helper: page %" PRIu64 " corrupt\n", i);
        return 1;
      }
    }
  }
  // Settled: nothing changes between two reads 50 ms apart.
  pager::Stats s;
  for (int i = 0; i < 200; i++) {
    (*p)->Sync();
    s = (*p)->GetStats();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    (*p)->Sync();
    pager::Stats t = (*p)->GetStats();
    if (t.bytes_written == s.bytes_written && t.resident_pages == s.resident_pages &&
        t.deactivations == s.deactivations && t.resident_pages <= t.limit_pages) {
      s = t;
      break;
    }
  }
  printf("ready faults_zero=%" PRIu64 " faults_swapin=%" PRIu64 " faults_inactive=%" PRIu64
         " pages_zero_filled=%" PRIu64 " evictions_clean=%" PRIu64 " evictions_written=%" PRIu64
         " bytes_read=%" PRIu64 " bytes_written=%" PRIu64 " swapped_pages=%" PRIu64 " resident_pages=%" PRIu64
         " limit_pages=%" PRIu64 " mapped_bytes=%" PRIu64 "\n",
         s.faults_zero, s.faults_swapin, s.faults_inactive, s.pages_zero_filled, s.evictions_clean,
         s.evictions_written, s.bytes_read, s.bytes_written, s.swapped_pages, s.resident_pages, s.limit_pages,
         s.mapped_bytes);
  fflush(stdout);
  char line[64];
  std::vector<std::thread> touchers;
  while (fgets(line, sizeof line, stdin) != nullptr) {
    if (strcmp(line, "touch\n") != 0) continue;
    touchers.emplace_back([words, pages, per_page] {
      volatile uint64_t sum = 0;
      for (uint64_t i = 0; i < pages; i++) sum = sum + words[i * per_page];
    });
  }
  for (auto& t : touchers) t.join();
  return 0;
}

// The fault path's costs, each as a ratio against a baseline measured in the
// same run (these machines are shared and noisy; absolute times are printed
// for reference only).
//
//   fault_bench [--quick]
//
// Baselines: the kernel's own first touch of anonymous memory (per page) and
// memcpy of the same bytes.
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "pager/pager.h"
#include "store/memory_store.h"
#include "timing.h"
#include "uffd.h"

namespace {

using bench::Clock;
using bench::SecondsSince;

// Median of three runs of fn, in seconds.
template <class Fn>
double Median3(Fn fn) {
  return bench::MedianOf(3, fn);
}

double KernelFirstTouch(size_t pages) {
  return Median3([&] {
    auto* p = static_cast<char*>(mmap(nullptr, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    madvise(p, pages * 4096, MADV_NOHUGEPAGE);
    auto t0 = Clock::now();
    for (size_t i = 0; i < pages; i++) p[i * 4096] = 1;
    double s = SecondsSince(t0);
    munmap(p, pages * 4096);
    return s;
  });
}

double Memcpy(size_t pages) {
  std::vector<char> a(pages * 4096, 1), b(pages * 4096);
  return Median3([&] {
    auto t0 = Clock::now();
    memcpy(b.data(), a.data(), a.size());
    return SecondsSince(t0);
  });
}

std::unique_ptr<pager::Pager> MakePager(uint64_t limit_pages) {
  pager::Config c;
  c.memory_limit = limit_pages * 4096;
  c.reserve = 8 << 20;
  auto p = pager::Pager::Create(c, std::make_unique<pager::MemoryStore>());
  if (!p.ok()) {
    fprintf(stderr, "%s\n", p.status().message().c_str());
    exit(1);
  }
  return std::move(*p);
}

// First touch of `pages` pages through the pager, in order or shuffled.
double PagerFirstTouch(size_t pages, bool random) {
  std::vector<size_t> order(pages);
  for (size_t i = 0; i < pages; i++) order[i] = i;
  if (random) std::shuffle(order.begin(), order.end(), std::mt19937_64(1));
  return Median3([&] {
    auto pg = MakePager(pages * 2);
    auto* p = static_cast<char*>(*pg->Map(pages * 4096));
    auto t0 = Clock::now();
    for (size_t i : order) p[i * 4096] = 1;
    return SecondsSince(t0);
  });
}

// Writes a region 4x the limit, then reads it back (every page swapped in):
// seconds for the read pass.
double PagerSwapIn(size_t pages, bool random) {
  std::vector<size_t> order(pages);
  for (size_t i = 0; i < pages; i++) order[i] = i;
  if (random) std::shuffle(order.begin(), order.end(), std::mt19937_64(2));
  return Median3([&] {
    auto pg = MakePager(pages / 4);
    auto* p = static_cast<char*>(*pg->Map(pages * 4096));
    for (size_t i = 0; i < pages; i++) memset(p + i * 4096, static_cast<int>(i), 4096);
    pg->Sync();
    volatile char sink = 0;
    auto t0 = Clock::now();
    for (size_t i : order) sink = sink + p[i * 4096];
    return SecondsSince(t0);
  });
}

// The eviction side: writing a region 4x the limit, where 3/4 of the pages
// must be evicted while the program writes.
double PagerEvictingWrites(size_t pages) {
  return Median3([&] {
    auto pg = MakePager(pages / 4);
    auto* p = static_cast<char*>(*pg->Map(pages * 4096));
    auto t0 = Clock::now();
    for (size_t i = 0; i < pages; i++) memset(p + i * 4096, static_cast<int>(i) | 1, 4096);
    return SecondsSince(t0);
  });
}

// Installing pages without a fault: UFFDIO_COPY vs UFFDIO_MOVE, per page, in
// runs of `run` pages. Why swap-in copies.
void InstallCosts(size_t pages, size_t run, double* copy_s, double* move_s) {
  auto uffd = pager::Uffd::Open("");
  auto staging = pager::Uffd::OpenForStaging();
  if (!uffd.ok() || !staging.ok()) exit(1);
  size_t len = pages * 4096;
  auto map = [len] {
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    madvise(p, len, MADV_NOHUGEPAGE);
    return static_cast<char*>(p);
  };
  char* src = map();
  memset(src, 7, len);
  *copy_s = Median3([&] {
    char* dst = map();
    uffd->Register(dst, len);
    auto t0 = Clock::now();
    for (size_t i = 0; i < pages; i += run) uffd->Copy(reinterpret_cast<uintptr_t>(dst + i * 4096), src + i * 4096, run);
    double s = SecondsSince(t0);
    uffd->Unregister(dst, len);  // its uffd has events: an unmap would wait for a reader
    munmap(dst, len);
    return s;
  });
  *move_s = Median3([&] {
    char* from = map();
    memset(from, 7, len);  // present pages to move
    char* dst = map();
    staging->Register(dst, len);
    auto t0 = Clock::now();
    for (size_t i = 0; i < pages; i += run) {
      staging->Move(reinterpret_cast<uintptr_t>(dst + i * 4096), reinterpret_cast<uintptr_t>(from + i * 4096), run);
    }
    double s = SecondsSince(t0);
    munmap(dst, len);
    munmap(from, len);
    return s;
  });
  munmap(src, len);
}

void Row(const char* what, double secs, size_t pages, double base, const char* base_name) {
  printf("%-44s %8.2f us/page   %6.2fx %s\n", what, secs / pages * 1e6, secs / base, base_name);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  const size_t pages = quick ? 16384 : 65536;  // 64 / 256 MiB
  printf("fault_bench: %zu pages, medians of 3; ratios against baselines from this run\n\n", pages);
  double first = KernelFirstTouch(pages);
  double copy = Memcpy(pages);
  printf("%-44s %8.2f us/page   (baseline A)\n", "kernel first touch", first / pages * 1e6);
  printf("%-44s %8.2f us/page   (baseline B)\n\n", "memcpy", copy / pages * 1e6);
  Row("pager first touch, sequential (fill-ahead)", PagerFirstTouch(pages, false), pages, first, "A");
  Row("pager first touch, random", PagerFirstTouch(pages, true), pages, first, "A");
  Row("pager writes, region 4x limit (evicting)", PagerEvictingWrites(pages), pages, first, "A");
  Row("pager swap-in, sequential (read-ahead)", PagerSwapIn(pages, false), pages, first, "A");
  Row("pager swap-in, random", PagerSwapIn(pages, true), pages, first, "A");
  printf("\n");
  for (size_t run : {size_t{1}, size_t{64}}) {
    double c = 0, m = 0;
    InstallCosts(pages / 4, run, &c, &m);
    char what[64];
    snprintf(what, sizeof what, "install, %zu page(s) per ioctl: MOVE vs COPY", run);
    printf("%-44s COPY %.2f us/page, MOVE %.2f us/page: MOVE = %.2fx COPY\n", what, c / (pages / 4) * 1e6,
           m / (pages / 4) * 1e6, m / c);
  }
  return 0;
}

#include "workloads.h"

#include <sys/mman.h>

#include <algorithm>
#include <random>
#include <string>
#include <thread>

#include "cpu.h"
#include "zipf.h"

namespace bench {
namespace {

constexpr size_t kWords = kPage / sizeof(uint64_t);
constexpr uint64_t kOdd = 0x9E3779B97F4A7C15ull;

uint64_t PageWord(uint64_t page) { return (page + 1) * kOdd; }

// Word i > 0 of a page whose words carry `seed` (PageWord + the
// generation): the first half seed ^ i * kOdd, which no compressor shortens,
// the second half zeros. zram stores such a page in about half its size
// (1.9x here), as it does typical program data; a page of one repeated word
// would be its "same-filled" best case, no compression at all.
uint64_t Word(uint64_t seed, size_t i) { return i < kWords / 2 ? seed ^ (i * kOdd) : 0; }

uint64_t* PageAt(char* base, uint64_t page) { return reinterpret_cast<uint64_t*>(base + page * kPage); }

void WritePage(char* base, uint64_t page, uint64_t generation) {
  uint64_t* w = PageAt(base, page);
  const uint64_t seed = PageWord(page) + generation;
  w[0] = PageWord(page);
  for (size_t i = 1; i < kWords; i++) w[i] = Word(seed, i);
}

// Reads word 0 (a fault if the page is not mapped): 1 if it is wrong.
uint64_t ReadWord(char* base, uint64_t page) {
  return *static_cast<volatile uint64_t*>(PageAt(base, page)) != PageWord(page) ? 1 : 0;
}

// Reads every word: the count of wrong ones (word 0 not the page's, or the
// rest not all of one generation).
uint64_t ReadPage(char* base, uint64_t page) {
  const uint64_t* w = PageAt(base, page);
  uint64_t bad = w[0] != PageWord(page) ? 1 : 0;
  const uint64_t seed = w[1] ^ kOdd;
  for (size_t i = 2; i < kWords; i++) bad += w[i] != Word(seed, i) ? 1 : 0;
  return bad;
}

bool Mapped(char* base, uint64_t page) {
  unsigned char v = 0;
  return mincore(base + page * kPage, kPage, &v) == 0 && (v & 1) != 0;
}

Clock::time_point Deadline(Clock::time_point t0, double seconds) {
  return t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// The sequential patterns: one pass over the pages in order.
void RunSequential(Pattern p, char* base, uint64_t pages, const Budget& b, Outcome* out) {
  const auto t0 = Clock::now();
  // fill is not capped: the workloads after it need every page written.
  const auto deadline = p == Pattern::kFill ? Clock::time_point::max() : Deadline(t0, b.max_seconds);
  uint64_t page = 0;
  for (; page < pages; page++) {
    if (p == Pattern::kFill) {
      WritePage(base, page, 0);
    } else {
      out->wrong_words += ReadPage(base, page);
    }
    if (page % 64 == 63 && Clock::now() >= deadline) {
      out->capped = page + 1 < pages;
      page++;
      break;
    }
  }
  out->seconds = SecondsSince(t0);
  out->accesses = page;
  out->bytes = page * kPage;
}

// One thread of a random pattern: `ops` accesses from `rng`. Thread `index`
// of `threads` writes only pages p with p % threads == index, so that two
// threads never write one page at once (its words would mix generations).
struct RandomRun {
  Pattern pattern;
  char* base;
  uint64_t pages;
  uint64_t ops;
  int index, threads;
  bool classify;  // time the misses apart (mincore before each access)
  Clock::time_point deadline;
};

void RunRandomThread(const RandomRun& r, uint64_t seed, ScrambledZipf* zipf, Outcome* out) {
  const double cpu0 = ThreadCpuSeconds();
  std::mt19937_64 rng(seed);
  out->access_ns.Reserve(r.ops);
  if (r.classify) out->miss_ns.Reserve(r.ops);
  const auto t0 = Clock::now();
  uint64_t i = 0;
  for (; i < r.ops; i++) {
    const bool write = r.pattern == Pattern::kRandWrite || (r.pattern == Pattern::kMix && i % 5 == 4);
    uint64_t page = r.pattern == Pattern::kZipf ? zipf->Next(rng) : rng() % r.pages;
    if (write && r.threads > 1) {
      page = page - page % static_cast<uint64_t>(r.threads) + static_cast<uint64_t>(r.index);
      if (page >= r.pages) page -= static_cast<uint64_t>(r.threads);
    }
    const bool miss = r.classify && !Mapped(r.base, page);
    const auto a = Clock::now();
    if (write) {
      WritePage(r.base, page, rng() | 1);
    } else {
      out->wrong_words += ReadWord(r.base, page);
    }
    const auto z = Clock::now();
    out->access_ns.Add(NanosBetween(a, z));
    if (miss) out->miss_ns.Add(NanosBetween(a, z));
    out->bytes += write ? kPage : sizeof(uint64_t);
    if (z >= r.deadline) {
      out->capped = i + 1 < r.ops;
      i++;
      break;
    }
  }
  out->seconds = SecondsSince(t0);
  out->accesses = i;
  out->app_cpu_s = ThreadCpuSeconds() - cpu0;
}

uint64_t WorkloadSeed(const Workload& w, uint64_t seed) {
  // Each workload its own sequence: with one seed for all, rand_write would
  // touch the very pages rand_read had just brought in.
  return seed * 1000 + static_cast<uint64_t>(&w - AllWorkloads().data());
}

void RunRandom(const Workload& w, char* base, uint64_t pages, const Budget& b, uint64_t seed, Outcome* out) {
  std::unique_ptr<ScrambledZipf> zipf;
  if (w.pattern == Pattern::kZipf) zipf = std::make_unique<ScrambledZipf>(pages, 0.99);
  const auto t0 = Clock::now();
  const auto deadline = Deadline(t0, b.max_seconds);
  const int n = w.threads;
  std::vector<Outcome> parts(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int t = 0; t < n; t++) {
    RandomRun r{w.pattern, base, pages, b.ops / static_cast<uint64_t>(n), t, n, n == 1, deadline};
    auto body = [r, seed, t, &zipf, &parts] {
      RunRandomThread(r, seed + static_cast<uint64_t>(t), zipf.get(), &parts[static_cast<size_t>(t)]);
    };
    if (n == 1) {
      body();
    } else {
      threads.emplace_back(body);
    }
  }
  for (std::thread& t : threads) t.join();
  out->seconds = SecondsSince(t0);
  for (const Outcome& p : parts) {
    out->accesses += p.accesses;
    out->bytes += p.bytes;
    out->wrong_words += p.wrong_words;
    out->capped = out->capped || p.capped;
    out->access_ns.Merge(p.access_ns);
    out->miss_ns.Merge(p.miss_ns);
    if (n > 1) out->app_cpu_s += p.app_cpu_s;  // one thread: it ran on ours, counted by Run
  }
}

}  // namespace

const std::vector<Workload>& AllWorkloads() {
  static const std::vector<Workload> all = {
      {"fill", Pattern::kFill, 1},          {"seq", Pattern::kSeqRead, 1},
      {"rand_read", Pattern::kRandRead, 1}, {"zipf", Pattern::kZipf, 1},
      {"rand_write", Pattern::kRandWrite, 1}, {"mix1", Pattern::kMix, 1},
      {"mix2", Pattern::kMix, 2},           {"mix4", Pattern::kMix, 4},
  };
  return all;
}

const Workload* FindWorkload(std::string_view name) {
  for (const Workload& w : AllWorkloads()) {
    if (name == w.name) return &w;
  }
  return nullptr;
}

void Warm(const Workload& w, char* base, size_t bytes, const Budget& budget, uint64_t seed) {
  if (w.pattern != Pattern::kZipf) return;
  ScrambledZipf zipf(bytes / kPage, 0.99);
  std::mt19937_64 rng(WorkloadSeed(w, seed) ^ 0x5eed);
  volatile uint64_t sink = 0;
  for (uint64_t i = 0; i < budget.ops / 4; i++) sink = sink + ReadWord(base, zipf.Next(rng));
}

Outcome Run(const Workload& w, char* base, size_t bytes, const Budget& budget, uint64_t seed) {
  Outcome out;
  const double cpu0 = ThreadCpuSeconds();
  const uint64_t pages = bytes / kPage;
  if (w.pattern == Pattern::kFill || w.pattern == Pattern::kSeqRead) {
    RunSequential(w.pattern, base, pages, budget, &out);
  } else {
    RunRandom(w, base, pages, budget, WorkloadSeed(w, seed), &out);
  }
  out.app_cpu_s += ThreadCpuSeconds() - cpu0;
  return out;
}

double Throughput(const Workload& w, const Outcome& o) {
  if (o.seconds <= 0) return 0;
  const bool sequential = w.pattern == Pattern::kFill || w.pattern == Pattern::kSeqRead;
  return static_cast<double>(sequential ? o.bytes : o.accesses) / o.seconds;
}

}  // namespace bench

// The access patterns the harness runs on a region of memory, whatever holds
// it (a pager, the kernel's swap, nothing). A cell (cell.cc) fills the region
// once, then runs the workloads in AllWorkloads() order on it, each starting
// from whatever the one before left resident.
//
// Every page carries a pattern that depends on its index: word 0 is a
// function of the page's index forever, words 1..511 a function of it and
// of a generation that each whole-page write changes (so a write always
// changes the page: a pager cannot skip writing back a page whose bytes did
// not change). Half of a page does not compress, the other half is zeros:
// zram sees data it compresses about 2x, not its best case. Reads check what they see and
// count the words that are wrong: a benchmark of a pager that returns wrong
// bytes must not look fast.
//
// Latency is timed by the program around each access (app-visible: a
// fault's whole round trip, the clock read included, ~30 ns). Before each
// timed access of a single-threaded random workload, mincore(2) says whether
// the page is mapped; the accesses to pages that were not ("misses": a swap-in,
// or a re-touch of a page waiting in the pager's inactive stage) are also
// timed apart. mincore is outside the timed window.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "timing.h"

namespace bench {

inline constexpr size_t kPage = 4096;

enum class Pattern : uint8_t {
  kFill,       // first write of every page, in order (the region is new)
  kSeqRead,    // one pass reading every word, in order
  kRandRead,   // one word of a uniformly random page
  kRandWrite,  // a whole uniformly random page
  kZipf,       // one word of a page drawn from a scrambled Zipfian (theta 0.99)
  kMix,        // uniformly random pages, 4 reads of one word to 1 whole-page write
};

struct Workload {
  const char* name;
  Pattern pattern;
  int threads;
};

// Every workload, in the order a cell runs them: fill, seq, rand_read, zipf,
// rand_write, mix1, mix2, mix4.
const std::vector<Workload>& AllWorkloads();
const Workload* FindWorkload(std::string_view name);

// How much of a workload to run: random patterns make `ops` accesses (split
// between threads); every pattern stops at `max_seconds` and reports what it
// did by then.
struct Budget {
  uint64_t ops = 0;
  double max_seconds = 0;
};

struct Outcome {
  double seconds = 0;
  uint64_t accesses = 0;     // page accesses (seq, fill: pages)
  uint64_t bytes = 0;        // bytes the program read or wrote
  uint64_t wrong_words = 0;  // words read that did not hold their page's pattern
  bool capped = false;       // stopped at max_seconds
  Samples access_ns;         // random patterns: every access
  Samples miss_ns;           // single-threaded random patterns: accesses to unmapped pages
  double app_cpu_s = 0;      // CPU of the threads that ran the workload (their kernel
                             // time included: a fault's entry and exit, direct reclaim)
};

// Runs `w` (an element of AllWorkloads()) on the region [base, base + bytes)
// (page-aligned; for every pattern but kFill, filled by a kFill run before).
// Each workload draws its pages from its own sequence, derived from `seed`.
Outcome Run(const Workload& w, char* base, size_t bytes, const Budget& budget, uint64_t seed);

// What to run, untimed, before Run(w) so that it measures a steady state:
// for zipf, ops/4 accesses of its own distribution, to bring its hot set
// in. Nothing for the others.
void Warm(const Workload& w, char* base, size_t bytes, const Budget& budget, uint64_t seed);

// Bytes per second for the sequential patterns, accesses per second for
// the others.
double Throughput(const Workload& w, const Outcome& o);

}  // namespace bench

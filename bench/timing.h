// Time and latency for the benchmarks: a monotonic clock, the median of
// repeated runs, and latency samples with their percentiles.
//
// These machines are shared and noisy: every bench reports ratios against a
// baseline measured in the same run, and medians where a run is cheap.
// Not thread-safe: each thread keeps its own Samples and merges them after.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

inline double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

inline uint64_t NanosBetween(Clock::time_point a, Clock::time_point b) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

// The median of `n` runs of fn (each returns seconds or any measure).
template <class Fn>
double MedianOf(int n, Fn fn) {
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = fn();
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Latencies in nanoseconds. Reserve before the timed loop so that adding a
// sample never allocates there.
class Samples {
 public:
  void Reserve(size_t n) { ns_.reserve(n); }
  void Add(uint64_t ns) { ns_.push_back(ns); }
  void Merge(const Samples& o) { ns_.insert(ns_.end(), o.ns_.begin(), o.ns_.end()); }
  size_t size() const { return ns_.size(); }

  // Percentile p (0..100) in microseconds, nearest rank; 0 with no samples.
  double PercentileUs(double p) const {
    if (ns_.empty()) return 0;
    std::vector<uint64_t> s = ns_;
    size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(s.size() - 1) + 0.5);
    std::nth_element(s.begin(), s.begin() + static_cast<long>(rank), s.end());
    return static_cast<double>(s[rank]) / 1e3;
  }

 private:
  std::vector<uint64_t> ns_;
};

}  // namespace bench

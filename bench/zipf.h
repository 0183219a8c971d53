// A scrambled Zipfian distribution over [0, n), as YCSB draws its keys
// (Gray et al., "Quickly generating billion-record synthetic databases",
// SIGMOD 1994): rank r is drawn with probability proportional to
// 1 / (r+1)^theta, then hashed to an item, so that the hot items are spread
// over the region instead of packed at its start (which would make the
// workload look sequential to a pager's read-ahead).
//
// Construction is O(n) (the zeta sum); Next() is O(1). Not thread-safe:
// one generator per thread.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

namespace bench {

class ScrambledZipf {
 public:
  ScrambledZipf(uint64_t n, double theta) : n_(n), theta_(theta) {
    for (uint64_t i = 1; i <= n; i++) zetan_ += 1.0 / std::pow(static_cast<double>(i), theta);
    const double zeta2 = 1.0 + 1.0 / std::pow(2.0, theta);
    alpha_ = 1.0 / (1.0 - theta);
    eta_ = (1.0 - std::pow(2.0 / static_cast<double>(n), 1.0 - theta)) / (1.0 - zeta2 / zetan_);
  }

  uint64_t Next(std::mt19937_64& rng) { return Fnv(Rank(rng)) % n_; }

 private:
  uint64_t Rank(std::mt19937_64& rng) {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    const double uz = u * zetan_;
    if (uz < 1.0) return 0;
    if (uz < 1.0 + std::pow(0.5, theta_)) return 1;
    const auto r = static_cast<uint64_t>(static_cast<double>(n_) * std::pow(eta_ * u - eta_ + 1.0, alpha_));
    return r < n_ ? r : n_ - 1;
  }

  // FNV-1a of the rank's 8 bytes, YCSB's scrambler.
  static uint64_t Fnv(uint64_t v) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 8; i++) {
      h ^= v & 0xff;
      h *= 0x100000001b3ull;
      v >>= 8;
    }
    return h;
  }

  uint64_t n_;
  double theta_;
  double zetan_ = 0, alpha_ = 0, eta_ = 0;
};

}  // namespace bench

#include "hammer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <future>
#include <random>

#include "test_util.h"

namespace pager::testing {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

void Within(Clock::duration limit, const char* what, std::function<void()> fn) {
  std::packaged_task<void()> task(std::move(fn));
  auto done = task.get_future();
  std::thread t(std::move(task));
  if (done.wait_for(limit) != std::future_status::ready) {
    fprintf(stderr, "FATAL: %s did not return within %.0f s: deadlock\n", what, Seconds(limit));
    fflush(stderr);
    std::abort();
  }
  t.join();
}

bool WaitWritten(const Pager& p, uint64_t n, Clock::duration limit) {
  const auto end = Clock::now() + limit;
  while (p.GetStats().evictions_written < n) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

void WaitWriteBackDone(Pager& p) {
  p.Sync();
  uint64_t last = ~uint64_t{0};
  for (int i = 0; i < 200 && p.GetStats().evictions_written != last; i++) {
    last = p.GetStats().evictions_written;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void ExpectResponsive(Pager& p, const char* when) {
  auto t0 = Clock::now();
  Within(std::chrono::seconds(30), when, [&p] { p.Sync(); });
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5))
      << "Sync() " << when << " took " << Seconds(Clock::now() - t0) << " s";
}

void StateLog::Watch(const Pager& p, Clock::time_point until) {
  do {
    seen[static_cast<int>(p.GetStats().backend)] = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  } while (Clock::now() < until);
}

bool StateLog::WaitFor(const Pager& p, BackendState want, Clock::duration limit) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    BackendState s = p.GetStats().backend;
    seen[static_cast<int>(s)] = true;
    if (s == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

Hammer::Hammer(unsigned char* base, size_t pages, int threads, uint64_t seed)
    : base_(base), pages_(pages), nthreads_(threads), seed_(seed), version_(pages, 0) {}

bool Hammer::Holds(size_t i) const {
  const unsigned char* p = base_ + i * kPageSize;
  return version_[i] == 0 ? IsZeroPage(p) : CheckPage(p, i, version_[i]);
}

void Hammer::Start() {
  for (int k = 0; k < nthreads_; k++) {
    threads_.emplace_back([this, k] {
      std::mt19937_64 rng(k * 7919 + seed_);
      const size_t mine = pages_ / nthreads_;
      while (!stop_.load(std::memory_order_relaxed)) {
        size_t i = (rng() % mine) * nthreads_ + k;
        if (!Holds(i)) bad_++;
        FillPage(base_ + i * kPageSize, i, ++version_[i]);
        ops_++;
      }
    });
  }
}

void Hammer::Stop(Clock::duration limit) {
  stop_ = true;
  if (threads_.empty()) return;
  Within(limit, "the program's threads", [this] {
    for (auto& t : threads_) t.join();
  });
  threads_.clear();
}

uint64_t Hammer::Verify() const {
  uint64_t wrong = 0;
  for (size_t i = 0; i < pages_; i++) {
    if (!Holds(i) && wrong++ < 5) ADD_FAILURE() << "page " << i << " lost version " << version_[i];
  }
  return wrong;
}

}  // namespace pager::testing

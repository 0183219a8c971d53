#include "cow_breaker.h"

#include <pthread.h>
#include <sys/mman.h>

#include "pager/store.h"

namespace pager {
namespace {
constexpr size_t kMaxQueued = 4096;
}  // namespace

CowBreaker::~CowBreaker() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void CowBreaker::Start() { worker_ = std::thread([this] { Work(); }); }

void CowBreaker::Request(uintptr_t addr, uint64_t pages) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!queue_.empty() && queue_.back().addr + queue_.back().pages * kPageSize == addr) {
      queue_.back().pages += pages;
    } else if (queue_.size() < kMaxQueued) {
      queue_.push_back({addr, pages});
    } else {
      return;
    }
  }
  cv_.notify_one();
}

uint64_t CowBreaker::pages_done() const {
  std::lock_guard<std::mutex> l(mu_);
  return done_;
}

void CowBreaker::Work() {
  pthread_setname_np(pthread_self(), "libpager-cow");
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    std::vector<Range> batch;
    batch.swap(queue_);
    l.unlock();
    uint64_t n = 0;
    for (const Range& r : batch) {
      // Errors are expected and harmless: the range was unmapped (ENOMEM),
      // made read-only (EFAULT), or locked differently meanwhile.
      if (madvise(reinterpret_cast<void*>(r.addr), r.pages * kPageSize, MADV_POPULATE_WRITE) == 0) n += r.pages;
    }
    l.lock();
    done_ += n;
  }
}

}  // namespace pager

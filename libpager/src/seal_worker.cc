#include "seal_worker.h"

#include <pthread.h>

#include <cstring>
#include <vector>

#include "core.h"

namespace pager {
namespace {

uint64_t ZeroSum() {
  std::vector<std::byte> zeros(kPageSize);
  return PageChecksum(zeros.data());
}

bool IsZero(const std::byte* p) {
  static const std::byte kZeros[kPageSize] = {};
  return memcmp(p, kZeros, kPageSize) == 0;
}

}  // namespace

SealWorker::SealWorker(const Frames& frames, const PageCodec& codec)
    : frames_(frames), codec_(codec), zero_sum_(ZeroSum()) {}

SealWorker::~SealWorker() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SealWorker::Start(const ReserveArena* arena, std::function<void(Op*)> done) {
  done_ = std::move(done);
  thread_ = std::thread([this, arena] { Work(arena); });
}

void SealWorker::Submit(Op* batch) {
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(batch);
  }
  cv_.notify_one();
}

void SealWorker::Work(const ReserveArena* arena) {
  pthread_setname_np(pthread_self(), "libpager-seal");
  ReserveArena::EnterThread(arena);
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, with nothing left
    Op* batch = queue_.front();
    queue_.pop_front();
    l.unlock();
    Seal(batch);
    done_(batch);
    l.lock();
  }
}

void SealWorker::Seal(Op* batch) {
  PageCodec::Session session = codec_.Begin();
  for (uint32_t k = 0; k < batch->io.pages; k++) {
    // The frame is pinned: the pager thread releases it only when the batch
    // is back, whatever happens to the page meanwhile.
    const std::byte* frame = frames_.at(batch->frames[k]);
    const uint64_t sum = PageChecksum(frame);
    if (sum == zero_sum_ && IsZero(frame)) {
      batch->verdict[k] = Op::kZero;
    } else if (batch->has_old[k] && sum == batch->old_sums[k]) {
      batch->verdict[k] = Op::kClean;  // its slot still holds these bytes
    } else {
      const auto slot = static_cast<uint32_t>(batch->io.slot + k);
      std::byte* out = batch->io.buf + uint64_t{k} * kPageSize;
      // A cipher failure is a bug: the page is then treated as clean-less
      // and dirty with a seal that will never open, so it is poisoned at
      // swap-in, not returned wrong. Never seen; logged by the pager.
      if (!session.Seal(frame, out, slot, batch->seals[k].gen, sum, &batch->seals[k])) batch->seals[k].gen = 0;
      batch->verdict[k] = Op::kDirty;
    }
  }
}

}  // namespace pager

#include "store_workload.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace pager::bench {

void Waiter::OnComplete(StoreOp* op) {
  std::lock_guard<std::mutex> l(mu_);
  done_.push_back(op);
  cv_.notify_one();
}

StoreOp* Waiter::Next() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return !done_.empty(); });
  StoreOp* op = done_.front();
  done_.pop_front();
  return op;
}

uint64_t SlotOf(const Work& w, size_t i, std::mt19937_64& rng) {
  if (!w.random) return (i * w.pages) % w.span;
  return (rng() % (w.span / w.pages)) * w.pages;
}

double RunStore(Store* s, Waiter* waiter, const Work& w) {
  std::vector<StoreOp> ops(w.qd);
  std::vector<std::vector<std::byte>> bufs(w.qd, std::vector<std::byte>(size_t{w.pages} * kPageSize, std::byte{7}));
  std::mt19937_64 rng(42);
  auto t0 = std::chrono::steady_clock::now();
  size_t issued = 0, done = 0;
  for (int i = 0; i < w.qd && issued < w.n; i++, issued++) {
    ops[i] = StoreOp{w.kind, SlotOf(w, issued, rng), w.pages, bufs[i].data()};
    s->Submit(&ops[i]);
  }
  while (done < w.n) {
    StoreOp* op = waiter->Next();
    if (op->error) {
      std::fprintf(stderr, "op failed: %s\n", strerror(op->error));
      std::exit(1);
    }
    done++;
    if (issued < w.n) {
      *op = StoreOp{w.kind, SlotOf(w, issued++, rng), w.pages, op->buf};
      s->Submit(op);
    }
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace pager::bench

#include "prefetcher.h"

#include <algorithm>
#include <cstdlib>

namespace pager {
namespace {

// A fault this close to an unbelieved stream's last one is taken as its next
// step: strides up to 1 MiB (a column of a matrix with 1 MiB rows). And a
// believed stream's next fault may land this many steps past what it
// requested (a program that skips a little).
constexpr int64_t kNear = 256;
// Other strides than 1 read one page per request: keep fewer in flight.
constexpr uint32_t kMaxStridedAhead = 32;

int64_t Signed(uint64_t page) { return static_cast<int64_t>(page); }

}  // namespace

Prefetcher::Prefetcher(uint32_t max_window, uint32_t max_ahead)
    : max_window_(std::max<uint32_t>(max_window, 1)), max_ahead_(max_ahead) {}

int64_t Prefetcher::StepsAhead(const Stream& s, uint64_t page) {
  if (s.used == 0 || s.stride == 0) return 0;
  const int64_t delta = Signed(page) - Signed(s.last);
  if (delta % s.stride != 0) return 0;
  return std::max<int64_t>(delta / s.stride, 0);
}

Prefetcher::Stream* Prefetcher::Match(uint64_t page) {
  Stream* best = nullptr;
  int64_t best_steps = 0;
  for (Stream& s : streams_) {
    const int64_t steps = StepsAhead(s, page);
    // On the path, and no further than a little past what the stream has
    // requested: a fault far ahead is another stream (or none).
    const int64_t frontier_steps = (Signed(s.frontier) - Signed(s.last)) / (s.stride == 0 ? 1 : s.stride);
    if (steps == 0 || steps > frontier_steps + kNear) continue;
    if (best == nullptr || steps < best_steps) {
      best = &s;
      best_steps = steps;
    }
  }
  return best;
}

Prefetcher::Stream& Prefetcher::Nearest(uint64_t page) {
  Stream* near = nullptr;
  Stream* victim = &streams_[0];
  for (Stream& s : streams_) {
    if (s.used < victim->used) victim = &s;
    if (s.used == 0 || s.stride != 0) continue;  // believed streams are matched by path only
    const int64_t d = std::abs(Signed(page) - Signed(s.last));
    if (d != 0 && d <= kNear && (near == nullptr || d < std::abs(Signed(page) - Signed(near->last)))) near = &s;
  }
  if (near != nullptr) return *near;
  // A new stream, in the slot used longest ago. First guess: a scan forward.
  *victim = Stream{};
  victim->last = page;
  victim->expect = page + 1;
  return *victim;
}

Prefetcher::Plan Prefetcher::OnMiss(uint64_t page) {
  clock_++;
  Plan plan;
  for (Stream& s : streams_) {
    // The same fault again (it waited for memory): the same read, and the
    // read-ahead already went out.
    if (s.used != 0 && s.last == page) {
      if (s.stride == 1) plan.sync_pages = s.window;
      return plan;
    }
  }
  Stream* s = Match(page);
  if (s == nullptr) {
    Stream& n = Nearest(page);
    const bool fresh = n.used == 0;
    n.used = clock_;
    if (fresh) return plan;
    if (page != n.expect) {
      // A new candidate stride: believed if the next fault agrees.
      n.candidate = Signed(page) - Signed(n.last);
      n.last = page;
      n.expect = static_cast<uint64_t>(Signed(page) + n.candidate);
      return plan;
    }
    n.stride = Signed(n.expect) - Signed(n.last);
    n.frontier = page;
    s = &n;
  }
  s->used = clock_;
  s->last = page;
  if (s->stride == 1) {
    s->window = std::min(s->window * 2, max_window_);
    plan.sync_pages = s->window;
  }
  s->expect = static_cast<uint64_t>(Signed(page) + (s->stride == 1 ? plan.sync_pages : s->stride));
  return Ahead(*s, page, plan);
}

Prefetcher::Plan Prefetcher::OnHit(uint64_t page) {
  clock_++;
  Plan plan;
  plan.sync_pages = 0;
  Stream* s = Match(page);
  // Only pages the stream requested: those short of its frontier.
  if (s == nullptr || (Signed(s->frontier) - Signed(page)) / s->stride <= 0) return plan;
  s->used = clock_;
  s->last = page;
  return Ahead(*s, page, plan);
}

Prefetcher::Plan Prefetcher::OnLanded(int stream) {
  Plan plan;
  plan.sync_pages = 0;
  if (stream < 0 || stream >= kStreams || streams_[stream].used == 0 || streams_[stream].stride == 0) return plan;
  Stream& s = streams_[stream];
  s.starved = false;
  return Ahead(s, s.last, plan, true);
}

void Prefetcher::Stopped(const Plan& plan, uint32_t steps) {
  if (plan.stream < 0 || steps >= plan.ahead_pages) return;
  Stream& s = streams_[plan.stream];
  s.frontier = static_cast<uint64_t>(Signed(plan.ahead_first) + plan.stride * steps);
  s.starved = true;
}

Prefetcher::Plan Prefetcher::Ahead(Stream& s, uint64_t page, Plan plan, bool eager) const {
  const int64_t stride = s.stride;
  // Whatever this fault reads itself is requested too.
  const int64_t read_to = Signed(page) + (stride == 1 ? plan.sync_pages : stride);
  if ((read_to - Signed(s.frontier)) / stride > 0) s.frontier = static_cast<uint64_t>(read_to);
  if (max_ahead_ == 0) return plan;
  const int64_t steps = std::abs(stride) == 1 ? max_ahead_ : std::min(max_ahead_, kMaxStridedAhead);
  const int64_t requested = (Signed(s.frontier) - Signed(page)) / stride;  // steps already asked for
  // Top up only when less than half the distance is left: large requests.
  if (requested > (eager ? steps - 1 : steps / 2)) return plan;
  int64_t count = steps - requested + 1;
  if (stride < 0) count = std::min(count, Signed(s.frontier) / -stride + 1);  // not below page 0
  if (count <= 0) return plan;
  plan.ahead_first = s.frontier;
  plan.stride = stride;
  plan.ahead_pages = static_cast<uint32_t>(count);
  plan.stream = static_cast<int>(&s - streams_.data());
  s.frontier = static_cast<uint64_t>(Signed(s.frontier) + count * stride);
  return plan;
}

}  // namespace pager

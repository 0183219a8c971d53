#include "frames.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "log.h"

namespace pager {

Result<Frames> Frames::Create(uint32_t frames) {
  auto staging = Uffd::OpenForStaging();
  if (!staging.ok()) return staging.status();
  Mapping area = Mapping::Anonymous(uint64_t{frames} * kPageSize, MAP_NORESERVE);
  if (!area.valid()) return Status::FromErrno("inactive frames: mmap", errno);
  // MOVE refuses huge pages in the destination; a fork child has no use for
  // the pager's frames.
  madvise(area.data(), area.size(), MADV_NOHUGEPAGE);
  madvise(area.data(), area.size(), MADV_DONTFORK);
  Status s = staging->Register(area.data(), area.size());
  if (!s.ok()) return Status::Error("inactive frames: " + s.message());
  return Frames(std::move(area), frames, std::move(*staging));
}

bool Frames::Fill(uint32_t f, const std::byte* src) {
  UffdRun r = staging_.Copy(addr(f), src, 1);
  if (r.done == 1 && r.present == 0) return true;
  if (r.present != 0) {
    // COPY onto a frame that holds a page says "done" (EEXIST) and keeps the
    // old bytes: never taken as filled.
    ReleaseHeld(f);
  } else {
    Unuse(f);
  }
  return false;
}

void Frames::ReleaseHeld(uint32_t f) {
  // How the frame came to be freed undropped is the bug the line reports.
  PAGER_LOG_ERROR("inactive frame %u was free but held a page; dropped", f);
  Release(f);
}

void Frames::Flush() {
  if (released_.empty()) return;
  std::sort(released_.begin(), released_.end());
  for (size_t i = 0; i < released_.size();) {
    size_t j = i + 1;
    while (j < released_.size() && released_[j] == released_[j - 1] + 1) j++;
    if (madvise(at(released_[i]), (j - i) * kPageSize, MADV_DONTNEED) == 0) {
      for (size_t k = i; k < j; k++) alloc_.Free(released_[k]);
    } else {
      // Never on our own private mapping; if it were, a frame that is not a
      // hole must not be reused (Fill would refuse it): kept out of use.
      PAGER_LOG_ERROR("dropping %zu inactive frames failed: %s; they stay out of use", j - i, strerror(errno));
    }
    i = j;
  }
  released_.clear();
}

}  // namespace pager

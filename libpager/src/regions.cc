#include "regions.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iterator>

#include "unique_fd.h"

namespace pager {

uint64_t RegionSet::Add(uintptr_t start, uint64_t len) {
  uintptr_t end = start + len;
  const uint64_t before = bytes_;
  // Absorb every range that overlaps or touches [start, end).
  auto it = ranges_.upper_bound(start);
  if (it != ranges_.begin() && std::prev(it)->second >= start) --it;
  while (it != ranges_.end() && it->first <= end) {
    start = std::min(start, it->first);
    end = std::max(end, it->second);
    bytes_ -= it->second - it->first;
    it = ranges_.erase(it);
  }
  ranges_.emplace(start, end);
  bytes_ += end - start;
  return bytes_ - before;
}

uint64_t RegionSet::Remove(uintptr_t start, uint64_t len) {
  const uintptr_t end = start + len;
  const uint64_t before = bytes_;
  auto it = ranges_.upper_bound(start);
  if (it != ranges_.begin()) --it;
  while (it != ranges_.end() && it->first < end) {
    const uintptr_t rs = it->first, re = it->second;
    if (re <= start) {
      ++it;
      continue;
    }
    it = ranges_.erase(it);
    bytes_ -= re - rs;
    if (rs < start) {
      ranges_.emplace(rs, start);
      bytes_ += start - rs;
    }
    if (re > end) {
      it = ranges_.emplace(end, re).first;
      bytes_ += re - end;
      ++it;
    }
  }
  return before - bytes_;
}

bool RegionSet::Covers(uintptr_t start, uint64_t len) const {
  auto it = ranges_.upper_bound(start);
  if (it == ranges_.begin()) return false;
  --it;
  return it->first <= start && it->second >= start + len;  // adjacent ranges are merged
}

bool RegionSet::Overlaps(uintptr_t start, uint64_t len) const {
  // The first range ending after `start`: the one holding it, or the next.
  auto it = ranges_.upper_bound(start);
  if (it != ranges_.begin() && std::prev(it)->second > start) return true;
  return it != ranges_.end() && it->first < start + len;
}

uintptr_t RegionSet::EndOf(uintptr_t addr) const {
  auto it = ranges_.upper_bound(addr);
  if (it == ranges_.begin()) return 0;
  --it;
  return it->second > addr ? it->second : 0;
}

uint64_t RegionSet::LearnFrom(uintptr_t addr) {
  uintptr_t s = 0, e = 0;
  if (!VmaAround(addr, &s, &e)) return 0;
  return Add(s, e - s);
}

bool VmaAround(uintptr_t addr, uintptr_t* start, uintptr_t* end) {
  UniqueFd fd(open("/proc/self/maps", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  // Lines are "start-end perms ... path". Each line's first field is parsed
  // as it streams by, in a fixed buffer: no allocation on the pager thread.
  auto contains = [&](const char* line) {
    char* dash = nullptr;
    unsigned long s = strtoul(line, &dash, 16);
    if (dash == nullptr || *dash != '-') return false;
    unsigned long e = strtoul(dash + 1, nullptr, 16);
    if (addr < s || addr >= e) return false;
    *start = s;
    *end = e;
    return true;
  };
  char buf[8192];
  size_t have = 0;
  bool at_line_start = true;
  for (;;) {
    ssize_t n = read(fd.get(), buf + have, sizeof buf - 1 - have);
    if (n <= 0) return false;
    have += static_cast<size_t>(n);
    buf[have] = '\0';
    size_t pos = 0;
    while (pos < have) {
      char* nl = static_cast<char*>(memchr(buf + pos, '\n', have - pos));
      if (nl == nullptr) break;
      if (at_line_start && contains(buf + pos)) return true;
      at_line_start = true;
      pos = static_cast<size_t>(nl - buf) + 1;
    }
    if (pos == 0 && have == sizeof buf - 1) {
      // A line longer than the buffer (a long path): its addresses are here.
      if (at_line_start && contains(buf)) return true;
      at_line_start = false;
      have = 0;
      continue;
    }
    memmove(buf, buf + pos, have - pos);
    have -= pos;
  }
}

}  // namespace pager

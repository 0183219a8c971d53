#include "log.h"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace pager {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kWarn)};
const char* const kNames[] = {"error", "warn", "info", "debug"};
}  // namespace

void SetLogLevelFromEnv() {
  const char* v = getenv("LIBPAGER_LOG");
  if (v == nullptr) return;
  for (int i = 0; i < 4; i++) {
    if (strcmp(v, kNames[i]) == 0) g_level.store(i);
  }
}

void Log(LogLevel level, const char* fmt, ...) {
  if (static_cast<int>(level) > g_level.load(std::memory_order_relaxed)) return;
  char buf[512];
  int n = snprintf(buf, sizeof buf, "libpager[%d] %s: ", getpid(), kNames[static_cast<int>(level)]);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
  va_end(ap);
  size_t len = n + (m < 0 ? 0 : m);
  if (len > sizeof buf - 2) len = sizeof buf - 2;
  buf[len++] = '\n';
  // One write(2) so lines from several threads never interleave.
  ssize_t ignored = write(STDERR_FILENO, buf, len);
  (void)ignored;
}

bool LogAllowed(unsigned seconds, unsigned long long* last_ns) {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const unsigned long long now = static_cast<unsigned long long>(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
  if (*last_ns != 0 && now - *last_ns < seconds * 1000000000ull) return false;
  *last_ns = now;
  return true;
}

}  // namespace pager

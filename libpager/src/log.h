// The pager's log: one line per event to stderr, prefixed "libpager[pid]:".
// Formats into a stack buffer: safe on the pager's thread, which must not
// allocate from the general heap.
#pragma once

namespace pager {

enum class LogLevel { kError, kWarn, kInfo, kDebug };

void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// LIBPAGER_LOG=error|warn|info|debug (default warn).
void SetLogLevelFromEnv();

// True at most once every `seconds` per `last_ns` (a call site's own clock):
// for messages a failing path could repeat thousands of times a second.
bool LogAllowed(unsigned seconds, unsigned long long* last_ns);

}  // namespace pager

#define PAGER_LOG_ERROR(...) ::pager::Log(::pager::LogLevel::kError, __VA_ARGS__)
#define PAGER_LOG_WARN(...) ::pager::Log(::pager::LogLevel::kWarn, __VA_ARGS__)
#define PAGER_LOG_INFO(...) ::pager::Log(::pager::LogLevel::kInfo, __VA_ARGS__)
#define PAGER_LOG_DEBUG(...) ::pager::Log(::pager::LogLevel::kDebug, __VA_ARGS__)
// The same, at most once every `seconds` from this call site.
#define PAGER_LOG_WARN_EVERY(seconds, ...)                                \
  do {                                                                    \
    static unsigned long long pager_log_last_ns_ = 0;                     \
    if (::pager::LogAllowed((seconds), &pager_log_last_ns_)) PAGER_LOG_WARN(__VA_ARGS__); \
  } while (0)

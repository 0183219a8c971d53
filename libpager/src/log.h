// The pager's log: one line per event to stderr, prefixed "libpager[pid]:".
// Formats into a stack buffer: safe on the pager's thread, which must not
// allocate from the general heap.
#pragma once

namespace pager {

enum class LogLevel { kError, kWarn, kInfo, kDebug };

void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// LIBPAGER_LOG=error|warn|info|debug (default warn).
void SetLogLevelFromEnv();

}  // namespace pager

#define PAGER_LOG_ERROR(...) ::pager::Log(::pager::LogLevel::kError, __VA_ARGS__)
#define PAGER_LOG_WARN(...) ::pager::Log(::pager::LogLevel::kWarn, __VA_ARGS__)
#define PAGER_LOG_INFO(...) ::pager::Log(::pager::LogLevel::kInfo, __VA_ARGS__)
#define PAGER_LOG_DEBUG(...) ::pager::Log(::pager::LogLevel::kDebug, __VA_ARGS__)

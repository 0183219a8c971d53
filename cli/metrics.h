// pagerctl metrics: the counters of every live pager in the Prometheus text
// exposition format (version 0.0.4), printed or served over HTTP.
#pragma once

#include <string>

#include "pager/status.h"

namespace pagerctl {

// The exposition of every live pager publishing in `stats_dir`, read through
// pager/monitor.h. Fails only if the directory cannot be listed.
pager::Result<std::string> MetricsText(const std::string& stats_dir);

// The Content-Type of MetricsText's output.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// Serves MetricsText(stats_dir) at GET /metrics on `listen` ([HOST:]PORT,
// HOST defaulting to 127.0.0.1) until SIGINT or SIGTERM. Returns the exit
// status; a bad address is a UsageError.
int ServeMetrics(const std::string& listen, const std::string& stats_dir);

}  // namespace pagerctl

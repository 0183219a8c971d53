// Human sizes: "512", "64K", "1.5G", "256MiB" in; "1.5 GiB" out. Units are
// binary (K = 1024) and case-insensitive, with an optional "B"/"iB".
#pragma once

#include <cstdint>
#include <string>

#include "pager/export.h"
#include "pager/status.h"

namespace pager {

PAGER_EXPORT Result<uint64_t> ParseSize(const std::string& text);
PAGER_EXPORT std::string FormatSize(uint64_t bytes);

}  // namespace pager

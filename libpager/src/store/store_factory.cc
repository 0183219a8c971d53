#include <string>

#include "pager/store.h"
#include "store/file_store.h"
#include "store/memory_store.h"
#include "store/nfs_store.h"

namespace pager {

const char* BackendStateName(BackendState s) {
  switch (s) {
    case BackendState::kOk: return "ok";
    case BackendState::kReconnecting: return "reconnecting";
    case BackendState::kPaused: return "paused";
  }
  return "unknown";
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& location, uint64_t max_bytes,
                                         uint32_t connect_timeout_ms) {
  if (location == "memory:") {
    return std::unique_ptr<Store>(std::make_unique<MemoryStore>(max_bytes / kPageSize));
  }
  if (location.rfind("nfs://", 0) == 0) {
    return OpenNfsStore(location, max_bytes, connect_timeout_ms);
  }
  if (location.rfind("file://", 0) == 0) {
    return OpenFileStore(location.substr(7), max_bytes);
  }
  if (!location.empty() && location[0] == '/') {
    return OpenFileStore(location, max_bytes);
  }
  return Status::Error("swap location '" + location +
                       "': expected an absolute directory, file:///dir, "
                       "nfs://host/export/dir or memory:");
}

}  // namespace pager

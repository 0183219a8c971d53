#include <string>
#include <vector>

#include "pager/store.h"
#include "store/file_store.h"
#include "store/memory_store.h"
#include "store/nfs_store.h"
#include "store/replicated_store.h"
#include "store/server_list.h"

namespace pager {

const char* BackendStateName(BackendState s) {
  switch (s) {
    case BackendState::kOk: return "ok";
    case BackendState::kReconnecting: return "reconnecting";
    case BackendState::kPaused: return "paused";
  }
  return "unknown";
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& location, const StoreOptions& options) {
  const std::vector<std::string> servers = SplitSwapLocation(location);
  if (servers.size() > 1) {
    auto store = OpenReplicatedStore(servers, options);
    if (!store.ok()) return Status::Error("swap location '" + location + "': " + store.status().message());
    return store;
  }
  if (location == "memory:") {
    return std::unique_ptr<Store>(std::make_unique<MemoryStore>(options.max_bytes / kPageSize));
  }
  if (location.rfind("nfs://", 0) == 0) {
    return OpenNfsStore(location, options.max_bytes, options.connect_timeout_ms);
  }
  if (location.rfind("file://", 0) == 0) {
    return OpenFileStore(location.substr(7), options.max_bytes);
  }
  if (!location.empty() && location[0] == '/') {
    return OpenFileStore(location, options.max_bytes);
  }
  return Status::Error("swap location '" + location +
                       "': expected an absolute directory, file:///dir, "
                       "nfs://host/export/dir or memory:");
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& location, uint64_t max_bytes,
                                         uint32_t connect_timeout_ms) {
  StoreOptions options;
  options.max_bytes = max_bytes;
  options.connect_timeout_ms = connect_timeout_ms;
  return OpenStore(location, options);
}

}  // namespace pager

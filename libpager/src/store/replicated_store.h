// The store over several servers: pages spread over them in extents, one or
// two copies of each, read from whichever copy answers first, copied again
// when a server is lost. docs/servers.md says what it promises;
// replicated_store_impl.h how.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pager/store.h"

namespace pager {

// `urls`: two or more nfs:// locations (server_list.h checks them). One NFS
// store per server, each with its own swap file, all of the same name.
Result<std::unique_ptr<Store>> OpenReplicatedStore(const std::vector<std::string>& urls, const StoreOptions& options);

namespace replicated {

// One server's store and its name for stats and messages.
struct ServerStore {
  std::unique_ptr<Store> store;
  std::string name;
};

// The store over any child stores (tests give it in-memory ones that stall,
// fail or corrupt on command). `replicas` 0 means 2.
std::unique_ptr<Store> MakeReplicatedStore(std::vector<ServerStore> servers, const StoreOptions& options);

}  // namespace replicated
}  // namespace pager

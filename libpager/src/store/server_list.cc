#include "store/server_list.h"

#include "stats.h"
#include "store/nfs_url.h"

namespace pager {

std::vector<std::string> SplitSwapLocation(const std::string& location) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = location.find(',', start);
    out.push_back(location.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

Status CheckServerList(const std::vector<std::string>& urls, uint32_t replicas) {
  if (urls.size() > static_cast<size_t>(kMaxServers)) {
    return Status::Error(std::to_string(urls.size()) + " servers, at most " +
                         std::to_string(kMaxServers));
  }
  if (replicas > 2) return Status::Error("replicas: " + std::to_string(replicas) + " (expected 1 or 2)");
  std::vector<std::string> seen;
  for (const std::string& url : urls) {
    if (url.rfind("nfs://", 0) != 0) {
      return Status::Error("'" + url +
                           "': with several servers, every entry must be an nfs:// URL (entries are "
                           "separated by commas)");
    }
    Result<nfs::UrlOptions> o = nfs::ParseUrl(url);
    if (!o.ok()) return o.status();
    const std::string server = o->host + ":" + (o->port.empty() ? "2049" : o->port);
    for (const std::string& s : seen) {
      if (s == server) {
        return Status::Error("server " + server +
                             " is named twice: copies on one server do not survive its loss");
      }
    }
    seen.push_back(server);
  }
  return Status();
}

std::string ServerName(const std::string& url) {
  Result<nfs::UrlOptions> o = nfs::ParseUrl(url);
  if (!o.ok()) return url;
  return o->host + ":" + (o->port.empty() ? "2049" : o->port) + o->path;
}

}  // namespace pager

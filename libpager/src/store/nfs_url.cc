#include "store/nfs_url.h"

#include <cstdlib>

namespace pager::nfs {

std::string UrlOptions::Where() const {
  return host + " port " + (port.empty() ? "2049 (default)" : port) +
         (version == 3 && !mountport.empty() ? " mountport " + mountport : "") + ", export path " + path +
         ", NFSv" + std::to_string(version);
}

Result<UrlOptions> ParseUrl(const std::string& url) {
  UrlOptions o;
  const std::string scheme = "nfs://";
  if (url.rfind(scheme, 0) != 0) return Status::Error("nfs url '" + url + "': must start with nfs://");
  size_t q = url.find('?');
  std::string base = url.substr(0, q);
  std::string kept;
  if (q != std::string::npos) {
    std::string query = url.substr(q + 1);
    size_t pos = 0;
    while (pos <= query.size()) {
      size_t amp = query.find('&', pos);
      std::string kv = query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
      pos = amp == std::string::npos ? query.size() + 1 : amp + 1;
      if (kv.empty()) continue;
      size_t eq = kv.find('=');
      std::string k = kv.substr(0, eq), v = eq == std::string::npos ? "" : kv.substr(eq + 1);
      if (k == "conns") {
        o.conns = std::atoi(v.c_str());
        if (o.conns < 1 || o.conns > kMaxConns)
          return Status::Error("nfs url '" + url + "': conns=" + v + " must be 1.." + std::to_string(kMaxConns));
        continue;
      }
      if (k == "stable") {
        if (v != "sync" && v != "commit")
          return Status::Error("nfs url '" + url + "': stable=" + v + " must be sync or commit");
        o.file_sync = v == "sync";
        continue;
      }
      if (k == "version") {
        if (v != "3" && v != "4")
          return Status::Error("nfs url '" + url + "': version=" + v + " must be 3 or 4");
        o.version = std::atoi(v.c_str());
      }
      if (k == "nfsport") o.port = v;
      if (k == "mountport") o.mountport = v;
      kept += (kept.empty() ? "?" : "&") + kv;
    }
  }
  o.libnfs_url = base + kept;
  std::string rest = base.substr(scheme.size());
  size_t slash = rest.find('/');
  o.host = rest.substr(0, slash);
  o.path = slash == std::string::npos ? "/" : rest.substr(slash);
  size_t colon = o.host.rfind(':');
  if (colon != std::string::npos && o.host.find(']') == std::string::npos) {
    if (o.port.empty()) o.port = o.host.substr(colon + 1);
    o.host = o.host.substr(0, colon);
  }
  if (o.host.empty()) return Status::Error("nfs url '" + url + "': no host");
  return o;
}

}  // namespace pager::nfs

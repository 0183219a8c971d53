// The swap location of the NFS store: nfs://host[:port]/export/dir[?opts],
// in libnfs's syntax, plus the options that are the store's own.
#pragma once

#include <string>

#include "pager/status.h"

namespace pager::nfs {

constexpr int kMaxConns = 8;  // conns=N takes 1..kMaxConns

// Options of the URL that are ours, not libnfs's; libnfs rejects unknown
// ones, so they are removed before it parses the rest.
struct UrlOptions {
  std::string libnfs_url;  // the URL without our options
  std::string host, port, mountport, path;
  int version = 3;
  // Measured on loopback Ganesha (docs/nfs.md): two connections read ~1.3-2x
  // faster than one; FILE_SYNC writes beat UNSTABLE + COMMIT by ~1.4-2x
  // (Ganesha's COMMIT is an fsync of the whole file).
  int conns = 2;
  bool file_sync = true;  // stable=commit: UNSTABLE + COMMIT with verifier check

  // "HOST port P [mountport M], export path /E, NFSvN", for messages.
  std::string Where() const;
};

// Splits `url` into libnfs's part and ours (conns=, stable=), checking both
// and the version. The error names the URL and the bad option.
Result<UrlOptions> ParseUrl(const std::string& url);

}  // namespace pager::nfs

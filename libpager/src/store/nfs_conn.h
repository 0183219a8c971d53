// One libnfs connection of the NFS store, and the RPC bookkeeping it
// carries: the chunks of the store's ops, the calls on the wire, the writes
// waiting for a COMMIT. Mounting (shared with nfs_swap_directory.cc),
// connecting (mount, then create or reopen the swap file) and tearing down
// live here; queueing, dispatch and completions are the store's
// (nfs_store.cc, nfs_io.cc).
//
// A libnfs context is not thread-safe: everything here runs on the store's
// I/O thread, or in Start before that thread serves anything.
#pragma once

// libnfs.h needs these before it.
#include <stdint.h>
#include <sys/time.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-nfs.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "pager/status.h"
#include "pager/store.h"
#include "store/nfs_url.h"

namespace pager::nfs {

using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;

constexpr uint32_t kMaxXfer = 1u << 20;      // v3 servers cap READ/WRITE here anyway
constexpr uint32_t kV4ReadMax = 256u << 10;  // libnfs 4.0 breaks on v4 replies > 1 MiB + 4 KiB
constexpr uint32_t kV4WriteMax = 3944;       // libnfs 4.0 cannot encode a larger v4 WRITE
constexpr int kIoTimeoutMs = 30000;          // an RPC unanswered this long: reconnect
constexpr int kPollMs = 100;                 // libnfs needs service() calls for timeouts

std::string ErrStr(int err);
// libnfs's last error on `nfs`, or a placeholder: nfs_get_error() answers
// NULL when libnfs has nothing to say.
std::string NfsErr(nfs_context* nfs);

// Conditions that retrying will not fix. Anything else is treated as a
// transient failure of the connection or the server.
bool IsPermanent(int err);
int Nfs3Errno(nfsstat3 s);
// A v3 server's answer with an error status. NFS3ERR_IO is a disk error on
// the server: permanent. STALE (the handle died with a server-side change)
// and JUKEBOX (try later) are retried after a reconnect.
bool IsPermanentNfs3(nfsstat3 s);

// One piece of an op, at most one READ/WRITE on the wire.
struct Pending;
struct Chunk {
  Pending* owner;
  uint64_t off;
  uint32_t len;
  uint32_t done = 0;  // bytes read or written so far (servers may answer short)
  std::byte* buf;
  bool is_write;
  char verf[NFS3_WRITEVERFSIZE] = {};  // v3: the verifier of this chunk's WRITEs
  bool has_verf = false;
};

// A store op split into chunks; it completes when the last chunk does.
struct Pending {
  StoreOp* op;
  uint32_t chunks_left;
  int error = 0;
};

class NfsStore;
struct Conn;

// One RPC in flight. Owned by its connection's `calls`; the callback unlinks
// and frees it, except while the connection is being torn down (`orphan`).
struct Call {
  enum Kind { kRead, kWrite, kCommit, kTouch } kind;
  NfsStore* store;
  Conn* conn;
  Chunk* chunk = nullptr;          // kRead, kWrite
  uint32_t len = 0;                // bytes asked for
  std::vector<Chunk*> batch;       // kCommit: the writes this COMMIT makes stable
  bool orphan = false;
};

struct Conn {
  nfs_context* nfs = nullptr;
  nfsfh* fh = nullptr;
  std::vector<char> raw_fh;        // the file handle, for raw RPCs (v3 I/O, the touch)
  std::unordered_set<Call*> calls;
  uint64_t write_bytes = 0;        // WRITE payload in flight
  int writes = 0;                  // WRITEs in flight
  std::vector<Chunk*> uncommitted; // written UNSTABLE, waiting for a COMMIT
  uint64_t uncommitted_bytes = 0;
  bool committing = false;
};

// The result of one async setup call (mount, open, create, close, unlink).
struct SetupResult {
  bool done = false;
  int err = 0;
  void* data = nullptr;
  std::string msg;
};
void SetupCb(int err, nfs_context*, void* data, void* priv);

// Runs one context's event loop until *done: 0, or ETIMEDOUT at the
// deadline, or another errno when the connection fails first.
int RunUntil(nfs_context* nfs, const bool* done, Clock::time_point deadline);

// Creates a context in *nfs and mounts `url` on it within `deadline`:
// every option of the store's contexts (no libnfs auto-reconnect, the RPC
// timeout, the v4 client name). On failure *err is the positive errno
// (ETIMEDOUT past the deadline; ENODEV for a missing export) and *nfs, if
// not null, is the caller's to destroy. `r` must outlive the context: a
// call still pending when it is destroyed lands in it.
Status Mount(nfs_context** nfs, const UrlOptions& url, const std::string& client_name, Clock::time_point deadline,
             uint32_t timeout_ms, SetupResult* r, int* err);

struct ConnectSpec {
  const UrlOptions* url;
  std::string file;         // the swap file, "/name" under the mounted directory
  std::string client_name;  // v4: unique per context and per (re)connect
  bool create;              // exclusive create with mode 0600; else reopen
  uint32_t timeout_ms;      // the connect timeout, for messages
  Clock::time_point deadline;
};

// Largest READ and WRITE the connection takes.
struct XferMax {
  uint64_t read, write;
};

// Connects `c`, which must hold nothing in flight: mount, then create or
// reopen the swap file. On success fills *max. On failure *err is the
// positive errno (ETIMEDOUT past the deadline; ENODEV for a missing export,
// so that ENOENT means "the swap file is gone") and `c` is torn down.
Status Connect(Conn& c, const ConnectSpec& spec, int* err, XferMax* max);

// Drops a connection. Returns the chunks it had on the wire or waiting for a
// COMMIT, in the order the caller must requeue them (each to the front of
// its queue).
std::vector<Chunk*> Teardown(Conn& c);

}  // namespace pager::nfs

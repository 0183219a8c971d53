#include "store/nfs_conn.h"

#include <fcntl.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

// libnfs 4.0 returns this from nfs_get_fh() but keeps its layout in a
// private header (libnfs-private.h); it has been { int len; char *val; }
// since the function was added.
struct nfs_fh {
  int len;
  char* val;
};

namespace pager::nfs {
namespace {

void IgnoreCb(int, nfs_context*, void*, void*) {}

// The steps of Connect. `r` and `o` belong to the caller: see Connect.
Status ConnectSteps(Conn& c, const ConnectSpec& spec, int* err, XferMax* max, SetupResult* r, SetupResult* o) {
  Teardown(c);
  const UrlOptions& url = *spec.url;
  Status s = Mount(&c.nfs, url, spec.client_name, spec.deadline, spec.timeout_ms, r, err);
  if (!s.ok()) return s;
  const std::string& path = url.path;

  const char* file = spec.file.c_str();
  int queued = spec.create ? nfs_create_async(c.nfs, file, O_RDWR | O_EXCL, 0600, SetupCb, o)
                           : nfs_open2_async(c.nfs, file, O_RDWR, 0600, SetupCb, o);
  const std::string what = std::string(spec.create ? "create" : "reopen") + " swap file " + path + spec.file;
  if (queued != 0) {
    *err = EIO;
    return Status::Error("nfs: " + what + " on " + url.Where() + ": " + NfsErr(c.nfs));
  }
  if (int e = RunUntil(c.nfs, &o->done, spec.deadline)) {
    *err = e;
    return Status::Error("nfs: " + what + " on " + url.Where() + ": " +
                         (e == ETIMEDOUT ? "no answer in time" : NfsErr(c.nfs)));
  }
  if (o->err < 0) {
    *err = -o->err;
    std::string hint = -o->err == EROFS ? " (read-only export)"
                     : -o->err == EACCES || -o->err == EPERM ? " (permission denied)"
                     : -o->err == ENOENT ? " (directory missing?)" : "";
    return Status::Error("nfs: cannot " + what + " on " + url.Where() + ": " + o->msg + hint);
  }
  c.fh = static_cast<nfsfh*>(o->data);
  const nfs_fh* fh = nfs_get_fh(c.fh);
  c.raw_fh.assign(fh->val, fh->val + fh->len);
  if (url.version == 3) {
    max->read = std::min<uint64_t>(kMaxXfer, nfs_get_readmax(c.nfs));
    max->write = std::min<uint64_t>(kMaxXfer, nfs_get_writemax(c.nfs));
    if (max->read < kPageSize) max->read = kPageSize;
    if (max->write < kPageSize) max->write = kPageSize;
  } else {
    // v4: nfs_get_readmax/writemax answer 0; these are libnfs 4.0's limits.
    max->read = kV4ReadMax;
    max->write = kV4WriteMax;
  }
  return Status();
}

}  // namespace

std::string ErrStr(int err) { return std::strerror(err); }

Status Mount(nfs_context** out, const UrlOptions& url, const std::string& client_name, Clock::time_point deadline,
             uint32_t timeout_ms, SetupResult* r, int* err) {
  nfs_context* nfs = *out = nfs_init_context();
  if (nfs == nullptr) {
    *err = ENOMEM;
    return Status::Error("nfs: nfs_init_context failed");
  }
  nfs_url* u = nfs_parse_url_dir(nfs, url.libnfs_url.c_str());
  if (!u) {
    *err = EINVAL;
    return Status::Error("nfs url '" + url.libnfs_url + "': " + NfsErr(nfs));
  }
  std::string server = u->server, path = u->path;
  nfs_destroy_url(u);
  // We reconnect ourselves: libnfs's own reconnect would hide the break
  // from us, and unstable writes must be resent after one.
  nfs_set_autoreconnect(nfs, 0);
  nfs_set_timeout(nfs, kIoTimeoutMs);
  if (url.version == 4) {
    // Two v4 contexts made in the same second share a client id unless named
    // apart (the server then answers STALE_CLIENTID / OLD_STATEID).
    nfs4_set_client_name(nfs, client_name.c_str());
  }

  if (nfs_mount_async(nfs, server.c_str(), path.c_str(), SetupCb, r) != 0) {
    *err = EIO;
    return Status::Error("nfs: mount of " + url.Where() + ": " + NfsErr(nfs));
  }
  if (int e = RunUntil(nfs, &r->done, deadline)) {
    *err = e;
    if (e == ETIMEDOUT)
      return Status::Error("nfs: no answer from " + url.Where() + " within " + std::to_string(timeout_ms) + " ms");
    return Status::Error("nfs: cannot connect to " + url.Where() + ": " + NfsErr(nfs));
  }
  if (r->err < 0) {
    *err = -r->err;
    if (*err == ENOENT) *err = ENODEV;  // ENOENT is kept for "the swap file is gone"
    // libnfs reports a failed RPC (a dropped connection) as -EFAULT: "Bad
    // address" would send the reader after the wrong thing.
    const std::string why = -r->err == EFAULT ? "" : " (" + ErrStr(-r->err) + ")";
    return Status::Error("nfs: cannot mount " + url.Where() + ": " + r->msg + why);
  }
  *err = 0;
  return Status();
}

std::string NfsErr(nfs_context* nfs) {
  const char* e = nfs ? nfs_get_error(nfs) : nullptr;
  return e ? e : "no details from libnfs";
}

bool IsPermanent(int err) {
  switch (err) {
    case ENOSPC: case EDQUOT: case EROFS: case EACCES: case EPERM: case EFBIG:
      return true;
    default:
      return false;
  }
}

int Nfs3Errno(nfsstat3 s) {
  switch (s) {
    case NFS3_OK: return 0;
    case NFS3ERR_PERM: return EPERM;
    case NFS3ERR_NOENT: return ENOENT;
    case NFS3ERR_IO: return EIO;
    case NFS3ERR_NXIO: return ENXIO;
    case NFS3ERR_ACCES: return EACCES;
    case NFS3ERR_INVAL: return EINVAL;
    case NFS3ERR_FBIG: return EFBIG;
    case NFS3ERR_NOSPC: return ENOSPC;
    case NFS3ERR_ROFS: return EROFS;
    case NFS3ERR_DQUOT: return EDQUOT;
    case NFS3ERR_STALE: return ESTALE;
    case NFS3ERR_JUKEBOX: return EAGAIN;
    default: return EIO;
  }
}

bool IsPermanentNfs3(nfsstat3 s) { return s == NFS3ERR_IO || IsPermanent(Nfs3Errno(s)); }

void SetupCb(int err, nfs_context*, void* data, void* priv) {
  auto* r = static_cast<SetupResult*>(priv);
  r->done = true;
  r->err = err;
  if (err < 0 && data) r->msg = static_cast<const char*>(data);
  if (err >= 0) r->data = data;
}

int RunUntil(nfs_context* nfs, const bool* done, Clock::time_point deadline) {
  while (!*done) {
    auto left = std::chrono::duration_cast<Ms>(deadline - Clock::now()).count();
    if (left <= 0) return ETIMEDOUT;
    pollfd p{nfs_get_fd(nfs), static_cast<short>(nfs_which_events(nfs)), 0};
    int n = poll(&p, 1, static_cast<int>(std::min<long>(left, kPollMs)));
    if (n < 0 && errno != EINTR) return errno;
    if (nfs_service(nfs, n > 0 ? p.revents : 0) < 0) return *done ? 0 : ECONNRESET;
  }
  return 0;
}

Status Connect(Conn& c, const ConnectSpec& spec, int* err, XferMax* max) {
  // The results live here, outside ConnectSteps, so that a call still
  // pending when it gives up can land in them while Teardown destroys the
  // context (libnfs runs the callbacks of pending calls then).
  SetupResult mount, open;
  Status s = ConnectSteps(c, spec, err, max, &mount, &open);
  if (!s.ok()) Teardown(c);
  return s;
}

std::vector<Chunk*> Teardown(Conn& c) {
  std::vector<Chunk*> back;
  std::vector<Call*> calls(c.calls.begin(), c.calls.end());
  for (Call* call : calls) {
    call->orphan = true;
    if (call->chunk) back.push_back(call->chunk);
    for (Chunk* ch : call->batch) back.push_back(ch);
  }
  for (Chunk* ch : c.uncommitted) back.push_back(ch);
  c.uncommitted.clear();
  c.uncommitted_bytes = 0;
  // libnfs frees an open file only through close (v3: locally; v4: after
  // the CLOSE, which the destroy below cancels). Destroying the context may
  // run the callbacks of the calls above; they see `orphan` and leave the
  // calls to us.
  if (c.nfs && c.fh) nfs_close_async(c.nfs, c.fh, IgnoreCb, nullptr);
  if (c.nfs) nfs_destroy_context(c.nfs);
  for (Call* call : calls) delete call;
  c.calls.clear();
  c.nfs = nullptr;
  c.fh = nullptr;
  c.write_bytes = 0;
  c.writes = 0;
  c.committing = false;
  return back;
}

}  // namespace pager::nfs

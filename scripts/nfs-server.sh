#!/usr/bin/env bash
# A throw-away nfs-ganesha (VFS backend) on 127.0.0.1, for tests, benches and
# the main job. Nothing here touches /etc/ganesha or the system's rpcbind
# registrations beyond what Ganesha itself does.
#
#   nfs-server.sh start DIR     export DIR (read-write, no root squash);
#                               prints lines to eval:
#                                 NFS_URL=nfs://127.0.0.1/export?nfsport=P&mountport=M
#                                 NFS_RO_URL=...   (a read-only export, for tests)
#                                 NFS_DENIED_URL=... (an export this client may not mount)
#                                 NFS_STATE=/tmp/nfs-server.XXXX  NFS_PID=1234
#   nfs-server.sh stop STATE    SIGTERM, then SIGKILL after 5 s; removes STATE
#   nfs-server.sh kill STATE    SIGKILL (a crash); STATE is kept for restart
#   nfs-server.sh restart STATE start again on the same ports and exports
#                               (after kill, or kills first); prints NFS_PID=
#   nfs-server.sh pause STATE / resume STATE   SIGSTOP / SIGCONT
#
# Why explicit ports: every Ganesha instance unregisters NFS and MOUNT from
# rpcbind when it starts and when it stops, so with several instances (a
# parallel ctest) rpcbind's answers are wrong. Clients must use the nfsport=
# and mountport= of the URL and never ask rpcbind. Ganesha still needs rpcbind
# running to start. Its CRIT lines about D-Bus and Kerberos are harmless.
set -euo pipefail

die() { echo "nfs-server.sh: $*" >&2; exit 1; }

ensure_installed() {
  command -v ganesha.nfsd >/dev/null && command -v rpcbind >/dev/null &&
    [[ -e /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so || -n "$(ls /usr/lib/*/ganesha/libfsalvfs.so 2>/dev/null)" ]] &&
    return 0
  [[ $(id -u) == 0 ]] || die "nfs-ganesha, nfs-ganesha-vfs and rpcbind are missing (install them as root)"
  echo "nfs-server.sh: installing nfs-ganesha nfs-ganesha-vfs rpcbind" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nfs-ganesha nfs-ganesha-vfs rpcbind >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nfs-ganesha nfs-ganesha-vfs rpcbind >&2; } ||
    die "could not install nfs-ganesha"
}

ensure_rpcbind() {
  if rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then return 0; fi
  mkdir -p /run/rpcbind
  rpcbind -w 2>/dev/null || rpcbind || die "could not start rpcbind"
  for _ in $(seq 50); do rpcinfo -p 127.0.0.1 >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "rpcbind started but does not answer"
}

port_in_use() { ss -Htan "( sport = :$1 )" 2>/dev/null | grep . >/dev/null; }

# Below the kernel's ephemeral range: there, any outgoing connection (ours,
# or a parallel test's) may take the port between our check and Ganesha's bind.
free_port() {
  local p lo
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
  (( lo > 12000 )) || lo=32768
  for _ in $(seq 200); do
    p=$(( 10000 + RANDOM % (lo - 10000) ))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "no free port found"
}

write_config() {
  local state=$1 dir=$2
  # shellcheck disable=SC1091
  source "$state/ports"
  cat >"$state/ganesha.conf" <<CONF
NFS_CORE_PARAM {
  Bind_addr = 127.0.0.1;
  NFS_Port = $NFS_PORT;
  MNT_Port = $MNT_PORT;
  NLM_Port = $NLM_PORT;
  Rquota_Port = $RQUOTA_PORT;
  Enable_UDP = false;
  Enable_NLM = false;
  Enable_RQUOTA = false;
  Protocols = 3, 4;
  # v3 MOUNT takes the pseudo path, so one URL works for v3 and v4.
  Mount_Path_Pseudo = true;
}
NFSV4 {
  # No grace period after a (re)start: a restarted test server must accept
  # OPENs at once, not 90 s later.
  Graceless = true;
  RecoveryBackend = fs;
  RecoveryRoot = "$state/recovery";
}
NFS_KRB5 { Active_krb5 = false; }
# INIT at EVENT: launch() waits for "NFS SERVER INITIALIZED".
LOG { COMPONENTS { INIT = EVENT; } }
EXPORT_DEFAULTS { SecType = sys; Transports = TCP; Protocols = 3, 4; }
EXPORT {
  Export_Id = 1;
  Path = "$dir";
  Pseudo = /export;
  Access_Type = RW;
  Squash = No_Root_Squash;
  FSAL { Name = VFS; }
}
EXPORT {
  Export_Id = 2;
  Path = "$state/ro";
  Pseudo = /ro;
  Access_Type = RO;
  Squash = No_Root_Squash;
  FSAL { Name = VFS; }
}
EXPORT {
  Export_Id = 3;
  Path = "$state/denied";
  Pseudo = /denied;
  Access_Type = None;
  Squash = No_Root_Squash;
  FSAL { Name = VFS; }
}
CONF
}

# An RPC NULL call straight to a port: PORT PROG VERS. Not rpcinfo, which
# asks rpcbind for the address first even with -n, so a busy rpcbind (other
# tests' servers starting and stopping) looked like a dead server.
rpc_ping() {
  python3 - "$@" <<'PY'
import socket, struct, sys
port, prog, vers = map(int, sys.argv[1:])
# xid, CALL, RPC v2, prog, vers, proc 0, AUTH_NONE cred and verifier
body = struct.pack(">10I", 0x6c696270, 0, 2, prog, vers, 0, 0, 0, 0, 0)
try:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(struct.pack(">I", 0x80000000 | len(body)) + body)
        reply = b""
        while len(reply) < 28:
            chunk = s.recv(28 - len(reply))
            if not chunk:
                sys.exit(1)
            reply += chunk
except OSError:
    sys.exit(1)
# record mark, xid, REPLY, MSG_ACCEPTED, verifier (flavor, length), SUCCESS
_, xid, mtype, rstat, _, _, astat = struct.unpack(">7I", reply)
sys.exit(0 if (xid, mtype, rstat, astat) == (0x6c696270, 1, 0, 0) else 1)
PY
}

answers() {
  source "$1/ports"
  rpc_ping "$NFS_PORT" 100003 3 && rpc_ping "$MNT_PORT" 100005 3
}

# Lines of FILE after the first N contain PATTERN: FILE N PATTERN. (Not
# tail | grep -q under pipefail: grep quitting early fails the pipe.)
logged_since() { awk -v n="$2" -v pat="$3" 'NR > n && index($0, pat) { f = 1 } END { exit !f }' "$1" 2>/dev/null; }

# Ganesha registers each program with rpcbind by unset-then-set and exits
# ("Cannot register NFS V3 on TCP") when another instance's set lands between
# the two, *after* its ports have begun to answer. So starts are serialised
# machine-wide, and a start is over only once Ganesha logs that it is
# initialised, which comes after its registrations. (rpcbind's own list is no
# signal: a stopping instance may unregister our entries at any moment.)
# Without this, 3 of 45 parallel starts died.
START_LOCK=/tmp/libpager-nfs-server.lock

launch() {
  local state=$1 lock pid ok=1 seen
  [[ -e $START_LOCK ]] || (umask 0; : >>"$START_LOCK")
  exec {lock}<"$START_LOCK"
  flock "$lock"
  # restart appends to the same log: only lines from this launch count.
  seen=0
  [[ -f $state/ganesha.log ]] && seen=$(wc -l <"$state/ganesha.log")
  # Foreground mode under setsid, so our PID is Ganesha's and it outlives us.
  # It must not inherit the lock's descriptor, or it would hold the lock.
  setsid ganesha.nfsd -F -f "$state/ganesha.conf" -L "$state/ganesha.log" \
    -p "$state/ganesha.pid" -N NIV_WARN </dev/null >>"$state/ganesha.out" 2>&1 {lock}<&- &
  pid=$!
  echo "$pid" >"$state/pid"
  for _ in $(seq 300); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if logged_since "$state/ganesha.log" "$seen" "NFS SERVER INITIALIZED" && answers "$state"; then
      ok=0
      break
    fi
    sleep 0.1
  done
  if ((ok != 0)) && kill -0 "$pid" 2>/dev/null; then
    source "$state/ports"
    echo "nfs-server.sh: ganesha $pid is running but not ready:" \
      "$(logged_since "$state/ganesha.log" "$seen" "NFS SERVER INITIALIZED" && echo initialised || echo "not initialised")," \
      "NFS port $NFS_PORT $(rpc_ping "$NFS_PORT" 100003 3 && echo answers || echo "does not answer")," \
      "MOUNT port $MNT_PORT $(rpc_ping "$MNT_PORT" 100005 3 && echo answers || echo "does not answer");" \
      "listening: $(ss -Hltn 2>/dev/null | awk '{print $4}' | grep -E ":($NFS_PORT|$MNT_PORT)\$" | tr '\n' ' ')" >&2
    kill -9 "$pid" 2>/dev/null || true
  fi
  exec {lock}<&-
  return "$ok"
}

url_for() {
  source "$1/ports"
  echo "nfs://127.0.0.1/$2?nfsport=$NFS_PORT&mountport=$MNT_PORT"
}

print_env() {
  local state=$1
  echo "NFS_URL='$(url_for "$state" export)'"
  echo "NFS_RO_URL='$(url_for "$state" ro)'"
  echo "NFS_DENIED_URL='$(url_for "$state" denied)'"
  echo "NFS_STATE='$state'"
  echo "NFS_PID=$(cat "$state/pid")"
}

pid_of() { [[ -f "$1/pid" ]] || die "$1: not a server state dir"; cat "$1/pid"; }

kill_hard() {
  local pid
  pid=$(pid_of "$1")
  kill -CONT "$pid" 2>/dev/null || true
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
  die "pid $pid survived SIGKILL"
}

cmd_start() {
  local dir=${1:-}
  [[ -n "$dir" ]] || die "usage: nfs-server.sh start DIR"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  ensure_installed
  ensure_rpcbind
  local state
  state=$(mktemp -d /tmp/nfs-server.XXXXXX)
  mkdir -p "$state/recovery" "$state/ro" "$state/denied"
  for attempt in 1 2 3; do
    # Ports are picked free but not reserved: a parallel instance may race
    # us for one, so a failed start is retried on fresh ports.
    {
      echo "NFS_PORT=$(free_port)"; echo "MNT_PORT=$(free_port)"
      echo "NLM_PORT=$(free_port)"; echo "RQUOTA_PORT=$(free_port)"
    } >"$state/ports"
    write_config "$state" "$dir"
    if launch "$state"; then print_env "$state"; return 0; fi
    echo "nfs-server.sh: start attempt $attempt failed; log tail:" >&2
    tail -n 5 "$state/ganesha.log" "$state/ganesha.out" >&2 2>/dev/null || true
  done
  die "ganesha did not start (state kept in $state)"
}

cmd_stop() {
  local state=${1:-}
  [[ -n "$state" ]] || die "usage: nfs-server.sh stop STATE"
  local pid
  pid=$(pid_of "$state")
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill_hard "$state"; fi
  rm -rf "$state"
}

cmd_restart() {
  local state=${1:-}
  [[ -n "$state" ]] || die "usage: nfs-server.sh restart STATE"
  kill_hard "$state"
  ensure_rpcbind
  # The listening ports may linger for a moment after the kill.
  for _ in $(seq 50); do
    launch "$state" && { echo "NFS_PID=$(cat "$state/pid")"; return 0; }
    sleep 0.2
  done
  die "ganesha did not restart (see $state/ganesha.log)"
}

case "${1:-}" in
  start) cmd_start "${2:-}" ;;
  stop) cmd_stop "${2:-}" ;;
  kill) kill_hard "${2:-}" ;;
  restart) cmd_restart "${2:-}" ;;
  pause) kill -STOP "$(pid_of "${2:-}")" ;;
  resume) kill -CONT "$(pid_of "${2:-}")" ;;
  *) die "usage: nfs-server.sh start DIR | stop|kill|restart|pause|resume STATE" ;;
esac

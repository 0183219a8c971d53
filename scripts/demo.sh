#!/usr/bin/env bash
# The main job: an unmodified memory-hungry program paged to a loopback NFS
# server. Starts nfs-ganesha on free ports, then:
#  1. `pagerctl run` runs a stock python3 that fills and verifies a 1 GiB
#     bytearray under a 128 MiB limit, while `pagerctl stats --watch 1s`
#     shows its counters;
#  2. memhog (which links libpager itself) does the same with its own stats;
# and stops the server. DEMO_SIZE and DEMO_LIMIT change the sizes.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
PAGERCTL="$BUILD/cli/pagerctl"
SIZE=${DEMO_SIZE:-1G}
LIMIT=${DEMO_LIMIT:-128M}
export_dir=$(mktemp -d /tmp/libpager-demo-export.XXXXXX)
work=$(mktemp -d /tmp/libpager-demo.XXXXXX)
eval "$("$ROOT/scripts/nfs-server.sh" start "$export_dir")"
trap '"$ROOT/scripts/nfs-server.sh" stop "$NFS_STATE" >/dev/null 2>&1 || true; rm -rf "$export_dir" "$work"' EXIT
echo "demo: nfs-ganesha pid $NFS_PID serving $NFS_URL"

# The interpreter itself, not a wrapper script (pyenv's shims are bash).
python=$(python3 -c 'import sys; print(sys.executable)')
cat >"$work/fill.py" <<'PY'
# Fills a bytearray of SIZE with page-numbered pages and checks every page.
import sys, time
units = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}
s = sys.argv[1]
n = int(float(s[:-1]) * units[s[-1]]) if s[-1] in units else int(s)
page = 4096
a = bytearray(n)
t = time.time()
for i in range(0, n, page):
    a[i:i+8] = (i // page).to_bytes(8, 'little')
bad = sum(1 for i in range(0, n, page) if int.from_bytes(a[i:i+8], 'little') != i // page)
print(f'python: wrote and verified {n >> 20} MiB in {time.time() - t:.1f}s, {bad} bad pages', flush=True)
time.sleep(1.5)  # one more stats sample after the work
sys.exit(1 if bad else 0)
PY

echo "demo: pagerctl run --limit $LIMIT --swap \$NFS_URL -- python3 fill.py $SIZE"
"$PAGERCTL" run --limit "$LIMIT" --swap "$NFS_URL" -- "$python" "$work/fill.py" "$SIZE" &
pid=$!
# The pager publishes its stats once the program has started.
for _ in $(seq 100); do
  "$PAGERCTL" stats "$pid" >/dev/null 2>&1 && break
  sleep 0.1
done
"$PAGERCTL" stats "$pid" --watch 1s || true
wait "$pid"
echo "demo: python exited 0"

echo "demo: memhog $SIZE (links libpager directly)"
LIBPAGER_LIMIT=$LIMIT LIBPAGER_SWAP="$NFS_URL" "$BUILD/examples/memhog" "$SIZE"

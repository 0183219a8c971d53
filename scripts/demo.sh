#!/usr/bin/env bash
# The main job: a memory-hungry program paged to a loopback NFS server.
# Starts nfs-ganesha on free ports, runs memhog (1 GiB under a 128 MiB limit)
# with its stats printed every second, and stops the server.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export_dir=$(mktemp -d /tmp/libpager-demo-export.XXXXXX)
eval "$("$ROOT/scripts/nfs-server.sh" start "$export_dir")"
trap '"$ROOT/scripts/nfs-server.sh" stop "$NFS_STATE" >/dev/null 2>&1 || true; rm -rf "$export_dir"' EXIT
echo "demo: nfs-ganesha pid $NFS_PID serving $NFS_URL"
LIBPAGER_LIMIT=${LIBPAGER_LIMIT:-128M} LIBPAGER_SWAP="$NFS_URL" "$BUILD/examples/memhog" "${DEMO_SIZE:-1G}"

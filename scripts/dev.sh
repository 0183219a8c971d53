#!/usr/bin/env bash
# The project's one entry point on a fresh Debian 12 machine.
#
#   scripts/dev.sh deps              install the Debian packages the project needs
#   scripts/dev.sh build [SAN]       deps + build into build/ (SAN: address|thread → build-SAN/)
#   scripts/dev.sh test [SAN]        build + the whole test suite (ctest)
#   scripts/dev.sh demo              build + the main job: a memory-hungry program
#                                    paged to a loopback NFS server, stats shown live
#
# Idempotent, and fast when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PKGS=(build-essential cmake pkg-config git googletest libgtest-dev libbenchmark-dev
      libnfs-dev libjemalloc-dev libxxhash-dev libssl-dev libboost-program-options-dev
      nfs-ganesha nfs-ganesha-vfs rpcbind iproute2 procps python3 sqlite3 xz-utils coreutils
      libmicrohttpd-dev scdoc groff-base man-db dpkg-dev file python3-prometheus-client util-linux
      openjdk-17-jdk-headless nodejs)

sudo_() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

deps() {
  local missing=()
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "dev.sh: installing ${missing[*]}" >&2
    sudo_ apt-get update -q >&2
    sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
  fi
}

build() {
  local san=${1:-}
  local dir=build${san:+-$san}
  deps
  cmake -S "$ROOT" -B "$ROOT/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPAGER_SANITIZE="$san" >/dev/null
  cmake --build "$ROOT/$dir" -j"$(nproc)"
}

run_tests() {
  local san=${1:-}
  local dir=build${san:+-$san}
  build "$san"
  local select=()
  # Sanitizer jobs run the core label (in-process tests: every race, fault
  # and lifecycle test); NFS, CLI and preload tests drive uninstrumented
  # programs and servers and run in the plain job. The sanitizer runtime
  # options are set per test in tests/CMakeLists.txt.
  if [[ -n $san ]]; then select=(-L core); fi
  (cd "$ROOT/$dir" && ctest --output-on-failure -j2 --timeout 900 "${select[@]}")
}

demo() {
  build
  "$ROOT/scripts/demo.sh" "$ROOT/build"
}

case "${1:-}" in
  deps) deps ;;
  build) build "${2:-}" ;;
  test) run_tests "${2:-}" ;;
  demo) demo ;;
  *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac

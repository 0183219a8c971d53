#!/usr/bin/env bash
# The kernel-swap baseline's machinery: a swap device (a swap file on
# /var/tmp, or a zram device) and memory cgroups (v1) for the cells that run
# under it. Root only. Everything it makes has a fixed name, so that
# `teardown` (run by scripts/bench.sh on exit, and before every setup) finds
# it whatever happened to the run that made it: a killed run leaves nothing
# behind once teardown has run.
#
#   kernel_swap.sh check            exit 0, or 1 with the reason on stdout
#   kernel_swap.sh on swapfile SIZE swap file /var/tmp/libpager-bench.swap, swapon
#   kernel_swap.sh on zram SIZE     a new zram device (hot_add), swapon
#   kernel_swap.sh off              swapoff and remove what `on` made
#   kernel_swap.sh cgroup NAME      a fresh memory cgroup, its path on stdout
#   kernel_swap.sh uncgroup NAME    kill what is left in it, remove it
#   kernel_swap.sh teardown [--if-unowned]
#                                   all of the above undone; idempotent. With
#                                   --if-unowned, only if no run holds $RUN_LOCK
#
# Commands are serialised by $LOCK. A run (bench/pager_bench.py) holds
# $RUN_LOCK while it uses kernel swap, so that a second run skips the
# baseline instead of sharing the machine's swap with the first.
set -euo pipefail

SWAPFILE=/var/tmp/libpager-bench.swap
CGROOT=/sys/fs/cgroup/memory/libpager-bench
STATE=/run/libpager-bench
LOCK=/run/libpager-bench.lock
RUN_LOCK=/run/libpager-bench.run.lock

die() { echo "kernel_swap.sh: $*" >&2; exit 1; }

check() {
  [[ $(id -u) == 0 ]] || { echo "not root (swapon and memory cgroups need root)"; return 1; }
  [[ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]] ||
    { echo "no cgroup v1 memory controller at /sys/fs/cgroup/memory"; return 1; }
  command -v swapon >/dev/null && command -v mkswap >/dev/null || { echo "swapon/mkswap missing (util-linux)"; return 1; }
  local others
  others=$(awk 'NR > 1 && $1 != "'"$SWAPFILE"'" { print $1 }' /proc/swaps | while read -r d; do
    [[ -f $STATE/zram && $d == /dev/zram$(cat "$STATE/zram") ]] || echo "$d"; done)
  [[ -z $others ]] || { echo "other swap devices are active ($others): the baseline would not be alone"; return 1; }
  return 0
}

zram_on() {
  local size=$1 n
  [[ -e /sys/class/zram-control/hot_add ]] || { [[ -x /sbin/modprobe || -x /usr/sbin/modprobe ]] && modprobe zram; } ||
    die "no zram: the module is not loaded and cannot be"
  [[ -e /sys/class/zram-control/hot_add ]] || die "no zram-control in /sys/class (zram built without hot_add?)"
  n=$(cat /sys/class/zram-control/hot_add)
  mkdir -p "$STATE"
  echo "$n" >"$STATE/zram"
  echo "$size" >"/sys/block/zram$n/disksize"
  for _ in $(seq 50); do [[ -b /dev/zram$n ]] && break; sleep 0.1; done
  [[ -b /dev/zram$n ]] || die "/dev/zram$n did not appear"
  mkswap "/dev/zram$n" >/dev/null
  swapon -p 32767 "/dev/zram$n"
  echo "/dev/zram$n"
}

zram_off() {
  [[ -f $STATE/zram ]] || return 0
  local n
  n=$(cat "$STATE/zram")
  if grep -q "^/dev/zram$n " /proc/swaps; then swapoff "/dev/zram$n"; fi
  if [[ -e /sys/block/zram$n ]]; then
    echo 1 >"/sys/block/zram$n/reset"
    echo "$n" >/sys/class/zram-control/hot_remove
  fi
  rm -f "$STATE/zram"
}

file_on() {
  local size=$1
  rm -f "$SWAPFILE"
  # fallocate: no holes, which swapon refuses (ext4 here).
  fallocate -l "$size" "$SWAPFILE" || dd if=/dev/zero of="$SWAPFILE" bs=1M count=$(( size >> 20 )) status=none
  chmod 600 "$SWAPFILE"
  mkswap "$SWAPFILE" >/dev/null
  swapon -p 32767 "$SWAPFILE"
  echo "$SWAPFILE"
}

file_off() {
  if grep -q "^$SWAPFILE " /proc/swaps; then swapoff "$SWAPFILE"; fi
  rm -f "$SWAPFILE"
}

uncgroup() {
  local dir=$CGROOT/$1
  [[ -d $dir ]] || return 0
  # Only cells join these cgroups: anything left is a cell of a killed run.
  for _ in $(seq 50); do
    local pids
    pids=$(cat "$dir/cgroup.procs")
    [[ -z $pids ]] && rmdir "$dir" 2>/dev/null && return 0
    [[ -n $pids ]] && kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
  die "cannot remove cgroup $dir"
}

teardown() {
  if [[ -d $CGROOT ]]; then
    for d in "$CGROOT"/*/; do [[ -d $d ]] && uncgroup "$(basename "$d")"; done
    rmdir "$CGROOT" 2>/dev/null || true
  fi
  file_off
  zram_off
  [[ -d $STATE ]] && rmdir "$STATE" 2>/dev/null || true
}

exec {lock}>>"$LOCK"
flock "$lock"

case "${1:-}" in
  check) check ;;
  on)
    [[ $# == 3 ]] || die "usage: kernel_swap.sh on swapfile|zram SIZE_BYTES"
    case "$2" in
      swapfile) file_on "$3" ;;
      zram) zram_on "$3" ;;
      *) die "on: swapfile or zram, not '$2'" ;;
    esac ;;
  off) file_off; zram_off ;;
  cgroup)
    [[ -n ${2:-} ]] || die "usage: kernel_swap.sh cgroup NAME"
    uncgroup "$2"
    mkdir -p "$CGROOT/$2"
    echo "$CGROOT/$2" ;;
  uncgroup) [[ -n ${2:-} ]] || die "usage: kernel_swap.sh uncgroup NAME"; uncgroup "$2" ;;
  teardown)
    if [[ ${2:-} == --if-unowned ]]; then
      exec {run}>>"$RUN_LOCK"
      flock -n "$run" || { echo "kernel_swap.sh: a run in progress holds $RUN_LOCK; left alone" >&2; exit 0; }
    fi
    teardown ;;
  *) sed -n '2,21p' "$0" >&2; exit 2 ;;
esac

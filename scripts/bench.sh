#!/usr/bin/env bash
# libpager's benchmark in one command: builds (scripts/dev.sh build), then
# runs bench/pager_bench.py, which prints the tables of docs/performance.md and
# writes every figure to bench/results/MODE-DATE.json (or --json PATH).
#
#   scripts/bench.sh              the full run, under 10 minutes on 2 vCPUs
#   scripts/bench.sh --quick      smaller sizes, about 1-2 minutes
#   scripts/bench.sh --smoke      seconds; what ctest -L bench runs
#   scripts/bench.sh --help       selecting stores, workloads, baselines
#
# The kernel-swap baselines (root only) turn on a swap file or a zram device
# and create memory cgroups; whatever way the run ends, the trap below
# removes them (bench/kernel_swap.sh teardown is idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [[ $(id -u) == 0 ]]; then
  trap '"$ROOT/bench/kernel_swap.sh" teardown --if-unowned' EXIT
fi
if [[ " $* " != *" --help "* && " $* " != *" -h "* ]]; then
  "$ROOT/scripts/dev.sh" build >&2
fi
# Debian's python3, as the tests use: not a pyenv or virtualenv one first in PATH.
BENCH_COMMAND="scripts/bench.sh${*:+ $*}" /usr/bin/python3 "$ROOT/bench/pager_bench.py" "$@"

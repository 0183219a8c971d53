"""The bench harness behind scripts/bench.sh: see bench/pager_bench.py."""

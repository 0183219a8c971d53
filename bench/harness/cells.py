"""Cells: one region, one backend, one oversubscription, the workloads run on
it in turn, by bench_cell (bench/cell.cc), one process per cell.

A backend is what holds the region:
  unpaged        plain memory, no limit: the baseline every figure is a ratio of
  pager-STORE    libpager at the limit, swapping to STORE (memory, file, nfs)
  kernel-DEVICE  plain memory in a memory cgroup at the same memory, the
                 kernel swapping to DEVICE (swapfile, zram)
"""
import json
import os
import statistics
import subprocess


class Cell:
    def __init__(self, backend, over, region_bytes, limit_bytes):
        self.backend = backend
        self.over = over
        self.region_bytes = region_bytes
        self.limit_bytes = limit_bytes
        self.info = {}         # the cell line of bench_cell (of the last run)
        self.results = {}      # workload name -> [figures of each run]
        self.runs = 0
        self.error = None      # why the cell stopped early, if it did
        self.oom_kills = None  # kernel cells: processes the cgroup's OOM killer killed

    @property
    def kind(self):
        return self.backend.split("-")[0]

    def to_json(self):
        """Figures of every workload, the median of each number over the runs."""
        return {
            "backend": self.backend, "over": self.over, "region_bytes": self.region_bytes,
            "limit_bytes": self.limit_bytes, "runs": self.runs, "error": self.error,
            "cgroup_limit_bytes": self.info.get("cgroup_limit_bytes"), "oom_kills": self.oom_kills,
            "create_seconds": self.info.get("create_seconds"),
            "reserve_bytes": self.info.get("reserve_bytes"),
            "features": self.info.get("features"),
            "workloads": [median_figures(r) for r in self.results.values()],
        }


def median_figures(runs):
    """One dict of figures from several runs of a workload: the median of each number."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
            out[key] = statistics.median(values)
    return out


class CellRunner:
    def __init__(self, build_dir, *, workloads, ops, max_seconds):
        self.binary = os.path.join(build_dir, "bench", "bench_cell")
        self.workloads = workloads
        self.ops = ops
        self.max_seconds = max_seconds

    def run(self, cell, *, swap=None, server_pid=None, cgroup=None, cgroup_budget=None, zram=None, twin_rounds=0,
            env=None, workloads=None):
        """Runs the cell once more (the run's workloads, or `workloads`), adding to its figures; returns it."""
        workloads = workloads or self.workloads
        args = [self.binary, "--backend=" + ("pager" if cell.kind == "pager" else "unpaged"),
                "--region=%d" % cell.region_bytes, "--limit=%d" % cell.limit_bytes,
                "--workloads=" + ",".join(workloads), "--ops=%d" % self.ops,
                "--max-seconds=%g" % self.max_seconds]
        if swap:
            args.append("--swap=" + swap)
        if server_pid:
            args.append("--server-pid=%d" % server_pid)
        if cgroup:
            args += ["--cgroup=" + cgroup, "--cgroup-budget=%d" % cgroup_budget]
        if zram is not None:
            args.append("--zram=%s" % zram)
        if twin_rounds:
            args.append("--twin-rounds=%d" % twin_rounds)
        # Each workload stops at max_seconds; the fill is not capped but moves
        # the region once (a full run's cells take 10-40 s). A cell past this
        # is stuck, and is killed: the pager lost a fault (seen at 1x over
        # NFS, four threads waiting in handle_userfault, the pager idle).
        deadline = 60 + (len(workloads) + 1) * self.max_seconds * 2 * (1 + twin_rounds)
        lines, error = self._once(args, deadline, env)
        for line in lines:
            if line.get("type") == "cell":
                cell.info = line
            elif line.get("type") == "workload":
                cell.results.setdefault(line["workload"], []).append(line)
        if error:
            cell.error = error
        else:
            cell.runs += 1
        return cell

    @staticmethod
    def _once(args, deadline, env):
        try:
            p = subprocess.run(args, capture_output=True, text=True, timeout=deadline, env=env)
            out, error = p.stdout, None if p.returncode == 0 else "exit %d: %s" % (p.returncode, p.stderr.strip()[-500:])
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            error = "killed after %d s" % deadline
        lines = []
        for text in out.splitlines():
            try:
                lines.append(json.loads(text))
            except ValueError:  # the last line of a killed cell may be cut
                pass
        return lines, error

"""The real-program table: unmodified programs run unpaged, paged by
`pagerctl run` (the preload) at a limit of 1/3 of their unpaged peak RSS
(at least 8 MiB, the pager's smallest reserve), and under the kernel's swap
in a memory cgroup holding the same memory.

Each program's stdout must be byte-identical in every run: a wrong output
is a failed run, whatever its time.

The kernel gets the same memory as the paged process actually held: the
cgroup's limit is the paged runs' peak RSS (the paged limit, the program's
unpaged memory, the pager's locked reserve and metadata, all of it), plus
the memory the cgroup charges that RSS does not show (page tables, kernel
objects, page cache the program brings in), measured on the unpaged run as
its cgroup peak minus its peak RSS. The swap file runs a second time with
the cgroup at the paged limit itself ("kernel-swapfile-at-limit"): the whole
program in what the pager gives the program's big mappings alone, as if the
pager's own memory cost nothing. The truth for "the same memory" lies
between the two. The JVM and node are told their heap
sizes and not to size themselves from the cgroup, so they behave the same
in all three runs.
"""
import os
import random
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass

MIB = 1 << 20
MIN_LIMIT = 8 * MIB


@dataclass
class Program:
    name: str
    needs: tuple            # executables that must be on PATH
    sizes: dict             # mode -> the workload's size argument
    setup: object = None    # setup(d, n, source_dir): makes the program's input in d

    def argv(self, d, n, source_dir):
        tests = os.path.join(source_dir, "tests", "programs")
        here = os.path.join(source_dir, "bench", "programs")
        if self.name == "sort":
            return ["sort", "-S", "1G", "--parallel=1", os.path.join(d, "in")]
        if self.name == "python":
            # Debian's, not a pyenv shim first in PATH: a shim is a script that
            # execs, and each exec would start a pager of its own.
            return ["/usr/bin/python3", os.path.join(here, "word_index.py"), str(n)]
        if self.name == "sqlite":
            return ["sqlite3", ":memory:", "PRAGMA cache_size=-1000000;",
                    "CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT);",
                    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d) "
                    "INSERT INTO t SELECT i, (i * 2654435761) %% 1000003, printf('%%x-%%d', i * 40503 %% 65536, i) "
                    "FROM c;" % n,
                    "CREATE INDEX ta ON t(a);",
                    "SELECT count(*), sum(a % 97), max(b) FROM t WHERE a > 500000;",
                    "SELECT a % 100 AS g, count(*), min(b) FROM t GROUP BY g ORDER BY g LIMIT 5;"]
        if self.name in ("jvm_g1", "jvm_parallel"):
            gc = "-XX:+UseG1GC" if self.name == "jvm_g1" else "-XX:+UseParallelGC"
            return ["java", gc, "-Xms16m", "-Xmx300m", "-XX:-UseContainerSupport", "-cp", d, "Hog", str(n)]
        if self.name == "node":
            return ["node", "--max-old-space-size=512", os.path.join(tests, "hog.js"), str(n)]
        raise ValueError(self.name)


def _sort_input(d, n, _):
    rng = random.Random(1)
    with open(os.path.join(d, "in"), "w") as f:
        f.writelines("%08x %s\n" % (rng.getrandbits(32), "y" * rng.randint(10, 60)) for _ in range(n))


def _compile_hog(d, _, source_dir):
    subprocess.run(["javac", "-d", d, os.path.join(source_dir, "tests", "programs", "Hog.java")], check=True,
                   capture_output=True)


PROGRAMS = [
    Program("sort", ("sort",), {"full": 400000, "quick": 300000, "smoke": 20000}, _sort_input),
    Program("python", ("/usr/bin/python3",), {"full": 200000, "quick": 150000, "smoke": 10000}),
    Program("sqlite", ("sqlite3",), {"full": 300000, "quick": 200000, "smoke": 10000}),
    Program("jvm_g1", ("java", "javac"), {"full": 400000, "quick": 300000, "smoke": 10000}, _compile_hog),
    Program("jvm_parallel", ("java", "javac"), {"full": 400000, "quick": 300000, "smoke": 10000}, _compile_hog),
    Program("node", ("node",), {"full": 150000, "quick": 100000, "smoke": 5000}),
]


def find(names):
    by_name = {p.name: p for p in PROGRAMS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError("unknown program(s) %s; known: %s" % (", ".join(unknown), ", ".join(by_name)))
    return [by_name[n] for n in names]


class ProgramTable:
    """Runs each program unpaged, paged (per store), and under kernel swap (per device)."""

    def __init__(self, runner, source_dir, build_dir, *, mode, repeat, timeout_s, kernel):
        self.runner = runner
        self.source_dir = source_dir
        self.pagerctl = os.path.join(build_dir, "cli", "pagerctl")
        self.mode = mode
        self.repeat = repeat
        self.timeout_s = timeout_s
        self.kernel = kernel  # KernelSwap, or None when the kernel baselines are off

    def measure(self, program, stores, devices):
        """stores: {"file": a context manager yielding a fresh swap location, ...};
        devices: {"swapfile": a context manager turning that swap on, ...}.
        Returns a JSON-ready dict.

        The unpaged runs are spread over the program's measurement (one first,
        in an unlimited cgroup for its peak; one after the paged runs; one at
        the end), so that their median does not sit in one busy moment."""
        row = {"program": program.name, "size": program.sizes[self.mode], "runs": {}, "skipped": None}
        missing = [x for x in program.needs if shutil.which(x) is None]
        if missing:
            row["skipped"] = "not installed: " + ", ".join(missing)
            return row
        with tempfile.TemporaryDirectory(prefix="libpager-bench-prog.", dir="/var/tmp") as d:
            n = program.sizes[self.mode]
            if program.setup:
                program.setup(d, n, self.source_dir)
            argv = program.argv(d, n, self.source_dir)
            unpaged = [self._unpaged_once(argv, in_cgroup=self.kernel is not None)]
            peak = unpaged[0][0].max_rss_bytes
            # The pager refuses a limit below its reserve (8 MiB by default).
            limit = max(MIN_LIMIT, (peak // 3) // MIB * MIB)
            row["limit_bytes"] = limit
            expected = unpaged[0][0].stdout_sha256
            # A paged or kernel run that takes 60x the unpaged time is reported
            # as "more than that", not waited for.
            timeout = min(self.timeout_s, max(10.0, 60 * unpaged[0][0].seconds))
            for store, location in stores.items():
                with location() as where:
                    row["runs"]["pager-" + store] = self._paged(argv, limit, where, expected, d, timeout)
            if self.repeat > 1:
                unpaged.append(self._unpaged_once(argv))
            paged_peaks = [r["max_rss_bytes"] for r in row["runs"].values()]
            overhead = max(0, (unpaged[0][1] or 0) - peak)
            kernel_limit = max(paged_peaks or [limit]) + overhead
            row["kernel_limit_bytes"] = kernel_limit
            for device, swap_on in devices.items():
                with swap_on():
                    row["runs"]["kernel-" + device] = self._kernel(argv, kernel_limit, expected, timeout)
                    if device == "swapfile":
                        # The strict reading of "the same limit": the whole program
                        # in the paged limit, as if the pager's own memory were free.
                        row["runs"]["kernel-swapfile-at-limit"] = self._kernel(argv, limit, expected, timeout)
            while len(unpaged) < self.repeat:
                unpaged.append(self._unpaged_once(argv))
        runs = [r for r, _ in unpaged]
        if len({r.stdout_sha256 for r in runs}) != 1:
            raise RuntimeError("%s prints different outputs in unpaged runs: not deterministic" % argv[0])
        row["unpaged"] = {"seconds": statistics.median(r.seconds for r in runs), "runs": len(runs),
                          "max_rss_bytes": max(r.max_rss_bytes for r in runs), "cgroup_peak_bytes": unpaged[0][1],
                          "stdout_sha256": runs[0].stdout_sha256}
        return row

    def _unpaged_once(self, argv, in_cgroup=False):
        """(Finished, the cgroup's peak bytes or None). In a cgroup without a
        limit, the peak is what the cgroup charges (for the kernel runs' limit)."""
        if in_cgroup:
            with self.kernel.cgroup("prog-unpaged") as cg:
                r = self.runner.run(argv, timeout_s=self.timeout_s * 4, cgroup=cg)
                peak = self.kernel.peak_bytes(cg)
        else:
            r, peak = self.runner.run(argv, timeout_s=self.timeout_s * 4), None
        if not r.ok:
            raise RuntimeError("%s failed unpaged (status %s): %s" % (argv[0], r.status, r.stderr))
        return r, peak

    def _paged(self, argv, limit, location, expected, d, timeout):
        stats = os.path.join(d, "pager-stats")
        env = dict(os.environ, LIBPAGER_STATS_AT_EXIT=stats)
        r = self.runner.run([self.pagerctl, "run", "--limit", str(limit), "--swap", location, "--"] + argv,
                            env=env, timeout_s=timeout)
        lines = []
        if os.path.exists(stats):
            with open(stats) as f:
                lines = f.read().splitlines()
            os.unlink(stats)
        return dict(self._figures(r, expected), pager_stats=lines)

    def _kernel(self, argv, cgroup_limit, expected, timeout):
        with self.kernel.cgroup("prog-kernel") as cg:
            with open(os.path.join(cg, "memory.limit_in_bytes"), "w") as f:
                f.write(str(cgroup_limit))
            r = self.runner.run(argv, timeout_s=timeout, cgroup=cg)
            return dict(self._figures(r, expected), cgroup_limit_bytes=cgroup_limit,
                        cgroup_peak_bytes=self.kernel.peak_bytes(cg), oom_kills=self.kernel.oom_kills(cg))

    @staticmethod
    def _figures(r, expected):
        return {"seconds": r.seconds, "timed_out": r.timed_out, "status": r.status, "cpu_s": r.cpu_s,
                "max_rss_bytes": r.max_rss_bytes,
                "output_identical": (r.stdout_sha256 == expected) if r.ok else None,
                "stderr": r.stderr.strip()[-300:] if not r.ok else ""}

"""The bench harness cannot rot: its smallest mode (memory and file stores,
no NFS, no kernel swap, a few seconds) runs end to end, its JSON parses and
has every field the report and docs/performance.md rely on, every cell and
workload asked for is there, the pager read back every byte it was given
and the paged program printed what it prints unpaged. No time is asserted:
the figures are whatever this machine gives.

    smoke_test.py PAGER_BENCH_PY BUILD_DIR
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

PAGER_BENCH = os.path.abspath(sys.argv[1])
BUILD = os.path.abspath(sys.argv[2])
del sys.argv[1:3]

TOP = ["schema_version", "command", "mode", "started_unix", "seconds", "machine", "settings", "baselines", "cells",
       "pairs", "programs", "startup", "targets"]
MACHINE = ["kernel", "cpus", "cpu_model", "mem_bytes", "loadavg_start", "loadavg_end"]
SETTINGS = ["limit_bytes", "overs", "stores", "workloads", "ops", "max_seconds", "kernel", "programs",
            "program_stores", "startup_runs", "unpaged_runs", "twin_rounds", "pair_rounds"]
RAW = ["target", "file_bytes", "write_1m_gbps", "read_1m_gbps", "read_1m_server_cpu_s_per_gib", "read_4k_ops",
       "read_4k_iops", "read_4k_p50_us", "read_4k_p99_us"]
CELL = ["backend", "over", "region_bytes", "limit_bytes", "runs", "error", "cgroup_limit_bytes", "oom_kills",
        "create_seconds", "reserve_bytes", "features", "workloads"]
WORKLOAD = ["workload", "threads", "seconds", "accesses", "bytes_touched", "capped", "wrong_words", "access_p50_us",
            "access_p99_us", "misses", "miss_p50_us", "miss_p99_us", "faults", "major_faults", "bytes_read",
            "bytes_written", "fault_p50_us", "fault_p99_us", "app_cpu_s", "pager_cpu_s", "pager_threads_cpu_s",
            "server_cpu_s", "throughput", "throughput_unit", "gib_moved", "pager_cpu_s_per_gib", "app_cpu_s_per_gib",
            "server_cpu_s_per_gib", "ratios"]
PAGED_WORKLOAD = ["limit_waits", "throttled_ns", "reserve_overflows", "metadata_bytes"]
RATIOS = ["vs_unpaged", "vs_kernel_swapfile", "vs_kernel_zram", "vs_raw_1m_read", "miss_p50_vs_raw_4k_read",
          "ab_vs_unpaged"]
PROGRAM = ["program", "size", "runs", "skipped", "unpaged", "limit_bytes", "kernel_limit_bytes"]
UNPAGED_PROGRAM = ["seconds", "runs", "max_rss_bytes", "cgroup_peak_bytes", "stdout_sha256"]
PROGRAM_RUN = ["seconds", "timed_out", "status", "cpu_s", "max_rss_bytes", "output_identical", "stderr", "pager_stats"]
PAIR = ["store", "over", "region_bytes", "limit_bytes", "rounds", "variants"]
PAIR_FIGURES = ["gbps", "kops", "capped", "wrong_words", "miss_p50_us", "miss_p99_us", "fault_p50_us", "major_faults",
                "pager_cpu_s_per_gib", "server_cpu_s_per_gib", "reserve_overflows"]
STARTUP = ["what", "median_ms", "min_ms", "runs", "extra_ms", "vs_plain"]
TARGET = ["target", "goal", "measured", "met"]
WORKLOADS = ["fill", "seq", "rand_read", "zipf", "rand_write", "mix1", "mix2", "mix4"]


class SmokeRun(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="bench_smoke.")
        path = os.path.join(cls.tmp.name, "smoke.json")
        cls.bench = subprocess.run([sys.executable, PAGER_BENCH, "--smoke", "--build", BUILD, "--json", path],
                                 capture_output=True, text=True, timeout=280)
        cls.doc = None
        if cls.bench.returncode == 0:
            with open(path) as f:
                cls.doc = json.load(f)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.assertEqual(self.bench.returncode, 0, self.bench.stderr[-3000:])

    def has(self, obj, keys, where):
        missing = [k for k in keys if k not in obj]
        self.assertEqual(missing, [], "%s lacks %s" % (where, missing))

    def test_every_section_has_its_fields(self):
        d = self.doc
        self.has(d, TOP, "the document")
        self.assertEqual(d["mode"], "smoke")
        self.has(d["machine"], MACHINE, "machine")
        self.has(d["settings"], SETTINGS, "settings")
        self.has(d["baselines"]["raw_io"]["local"], RAW, "the raw local baseline")
        self.assertIn("nfs_skipped", d["baselines"]["raw_io"])
        self.assertTrue(d["baselines"]["kernel"]["skipped"], "a skipped kernel baseline says why")
        for t in d["targets"]:
            self.has(t, TARGET, "a target")
        self.assertTrue(d["targets"], "the targets are listed, measured or not")

    def test_every_cell_and_workload_is_there_with_every_figure(self):
        cells = {(c["backend"], c["over"]): c for c in self.doc["cells"]}
        expected = {(b, o) for b in ("unpaged", "pager-memory", "pager-file") for o in self.doc["settings"]["overs"]}
        self.assertEqual(set(cells), expected)
        for (backend, over), c in cells.items():
            where = "%s at %sx" % (backend, over)
            self.has(c, CELL, where)
            self.assertIsNone(c["error"], where)
            self.assertEqual([w["workload"] for w in c["workloads"]], WORKLOADS, where)
            for w in c["workloads"]:
                self.has(w, WORKLOAD, where + " " + w["workload"])
                self.has(w["ratios"], RATIOS, where + " " + w["workload"] + " ratios")
                if backend.startswith("pager-"):
                    self.has(w, PAGED_WORKLOAD, where + " " + w["workload"])
                    self.assertIsInstance(w["ratios"]["vs_unpaged"], float, where + " " + w["workload"])

    def test_the_pager_returned_every_byte(self):
        wrong = {(c["backend"], c["over"], w["workload"]): w["wrong_words"]
                 for c in self.doc["cells"] for w in c["workloads"] if w["wrong_words"]}
        self.assertEqual(wrong, {})
        swapped = [w for c in self.doc["cells"] if c["backend"] == "pager-file" and c["over"] > 1
                   for w in c["workloads"] if w["major_faults"] > 0]
        self.assertTrue(swapped, "the oversubscribed pager cell swapped pages back in")

    def test_a_real_program_ran_paged_with_the_same_output(self):
        (p,) = self.doc["programs"]
        self.has(p, PROGRAM, "program")
        self.has(p["unpaged"], UNPAGED_PROGRAM, "unpaged program run")
        run = p["runs"]["pager-file"]
        self.has(run, PROGRAM_RUN, "paged program run")
        self.assertEqual(run["status"], 0, run["stderr"])
        self.assertTrue(run["output_identical"])
        self.assertTrue(run["pager_stats"], "LIBPAGER_STATS_AT_EXIT gave the pager's stats line")

    def test_each_pair_differs_in_its_setting_alone(self):
        p = self.doc["pairs"]
        self.has(p, PAIR, "the pairs")
        self.assertEqual(p["store"], "file", "without NFS the pairs run on the file store")
        v = p["variants"]
        self.assertEqual(list(v), ["default", "no-encryption", "no-prefetch"])
        # What each pager reported it ran with, not what it was asked for.
        self.assertEqual([(v[n]["encrypted"], v[n]["prefetch_pages"] > 0) for n in v],
                         [(True, True), (False, True), (True, False)])
        for name, variant in v.items():
            self.assertIsNone(variant["error"], name)
            self.assertEqual(variant["runs"], p["rounds"], name)
            self.assertEqual(list(variant["workloads"]), ["fill", "seq", "rand_read"], name)
            for runs in variant["workloads"].values():
                self.assertEqual(len(runs), p["rounds"], name)
                for f in runs:
                    self.has(f, PAIR_FIGURES, name)
                    self.assertEqual(f["wrong_words"], 0, name)
            if name != "default":
                self.assertIsInstance(variant["vs_default"]["seq"]["gbps"], float, name)

    def test_startup_rows_and_the_report(self):
        self.assertTrue(self.doc["startup"])
        for row in self.doc["startup"]:
            self.has(row, STARTUP, "a start-up row")
        for title in ("### Throughput", "### Raw I/O baselines", "### Where the time goes", "### Settings off",
                      "### Real programs",
                      "### Start-up", "### The issue's targets"):
            self.assertIn(title, self.bench.stdout)


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
"""libpager's measuring stick (issue 11): the pager against no pager, against
what its swap location delivers to a plain program (raw libnfs, pread), and
against the kernel's own swap at the same memory, all in one run, every
figure a ratio of a baseline from that run. Run through scripts/bench.sh.

  pager_bench.py [--quick | --smoke] [--json PATH] [--stores file,nfs]
                 [--workloads seq,rand_read,...] [--over 0.5,1,2,4]
                 [--kernel swapfile,zram | none] [--programs sort,python,... | none]
                 [--program-stores file,nfs]
                 [--startup-runs N] [--limit SIZE] [--ops N] [--max-seconds S]

Sections of a run, in order:
  1. raw baselines: 1 MiB sequential and 4 KiB random reads with libnfs
     (bench_raw_io) against the loopback Ganesha, and with pread on /var/tmp;
  2. cells (bench_cell): for each region/limit ratio ("over"), a region of
     limit x over bytes, unpaged (medians of 3), paged on each store, and
     (root only) plain memory in a memory cgroup with the kernel swapping to a
     swap file on /var/tmp or to zram; on each, the workloads of workloads.h;
  3. pairs (harness/pairs.py): at the largest oversubscription, on the NFS
     store (else the file store), encryption off and prefetch off against
     the defaults, in alternating rounds;
  4. real programs at 1/3 of their unpaged peak (harness/programs.py);
  5. start-up of /bin/true (harness/startup.py);
then the report (harness/report.py): tables on stdout, everything in JSON.
"""
import argparse
import contextlib
import datetime
import functools
import json
import os
import platform
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from harness import pairs, programs, report, startup  # noqa: E402
from harness.cells import Cell, CellRunner  # noqa: E402
from harness.kernel import KernelSwap, Unavailable  # noqa: E402
from harness.nfs import NfsServer  # noqa: E402
from harness.runner import Runner  # noqa: E402
from harness.stores import Stores  # noqa: E402

SOURCE = os.path.dirname(HERE)
MIB = 1 << 20
SCHEMA_VERSION = 2
ALL_WORKLOADS = ["fill", "seq", "rand_read", "zipf", "rand_write", "mix1", "mix2", "mix4"]

# Per mode: the limit, oversubscriptions, random accesses and seconds per
# workload, unpaged repeats, A/B rounds for regions that fit, rounds of the
# setting pairs, program timeout, start-up repeats, and what runs.
MODES = {
    "full": dict(limit=128 * MIB, over="0.5,1,2,4", ops=20000, max_seconds=3.0, repeat=3, twin_rounds=21,
                 pair_rounds=3, program_timeout=45,
                 startup_runs=11, stores="memory,file,nfs", kernel="swapfile,zram",
                 # Programs paged to NFS are left to --program-stores file,nfs:
                 # they ran 15-40x unpaged or timed out (45 s each), ~3 of the
                 # full run's minutes, and the target compares the file store.
                 programs="sort,python,sqlite,jvm_g1,jvm_parallel,node", program_stores="file"),
    "quick": dict(limit=32 * MIB, over="0.5,1,2,4", ops=4000, max_seconds=0.8, repeat=3, twin_rounds=9,
                  pair_rounds=2, program_timeout=20,
                  startup_runs=5, stores="file,nfs", kernel="swapfile,zram", programs="sort,python,jvm_g1",
                  program_stores="file"),
    "smoke": dict(limit=8 * MIB, over="0.5,2", ops=200, max_seconds=0.2, repeat=1, twin_rounds=3,
                  pair_rounds=1, program_timeout=30,
                  startup_runs=2, stores="memory,file", kernel="none", programs="sort", program_stores="file"),
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  scripts/bench.sh\n  scripts/bench.sh --quick\n"
                                       "  scripts/bench.sh --stores nfs --workloads fill,seq --over 4 --programs none")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", dest="mode", const="quick", help="smaller sizes, ~1-2 minutes")
    mode.add_argument("--smoke", action="store_const", dest="mode", const="smoke",
                      help="smallest: memory and file stores, no kernel swap, seconds (the ctest)")
    p.add_argument("--json", help="where to write the results (default bench/results/MODE-DATE.json)")
    p.add_argument("--build", default=os.path.join(SOURCE, "build"), help="build directory (default build/)")
    p.add_argument("--stores", help="pager stores: memory, file, nfs")
    p.add_argument("--workloads", help="fill is always run first: " + ",".join(ALL_WORKLOADS))
    p.add_argument("--over", help="region/limit ratios; below 1 the region fits")
    p.add_argument("--kernel", help="kernel swap baselines: swapfile, zram, or none")
    p.add_argument("--programs", help="real programs (%s) or none" % ",".join(x.name for x in programs.PROGRAMS))
    p.add_argument("--program-stores", help="stores the programs are paged to (among --stores)")
    p.add_argument("--pair-rounds", type=int, help="rounds of the encryption and prefetch pairs; 0 skips them")
    p.add_argument("--startup-runs", type=int, help="repeats of each start-up case; 0 skips them")
    p.add_argument("--limit", help="the memory limit, e.g. 128M")
    p.add_argument("--ops", type=int, help="random accesses per workload")
    p.add_argument("--max-seconds", type=float, help="cap on each workload")
    args = p.parse_args(argv)
    args.mode = args.mode or "full"
    d = MODES[args.mode]
    for key in ("stores", "kernel", "programs", "over", "program_stores"):
        if getattr(args, key) is None:
            setattr(args, key, d[key])
    args.stores = [s for s in args.stores.split(",") if s]
    args.program_stores = [s for s in args.program_stores.split(",") if s in args.stores]
    args.kernel = [] if args.kernel == "none" else [k for k in args.kernel.split(",") if k]
    args.programs = [] if args.programs == "none" else args.programs.split(",")
    args.over = [float(x) for x in args.over.split(",")]
    args.over = [int(x) if x == int(x) else x for x in args.over]
    wl = args.workloads.split(",") if args.workloads else ALL_WORKLOADS
    args.workloads = ["fill"] + [w for w in wl if w != "fill"]
    args.limit = parse_size(args.limit) if args.limit else d["limit"]
    args.ops = args.ops or d["ops"]
    args.max_seconds = args.max_seconds or d["max_seconds"]
    args.startup_runs = d["startup_runs"] if args.startup_runs is None else args.startup_runs
    args.pair_rounds = d["pair_rounds"] if args.pair_rounds is None else args.pair_rounds
    args.repeat = d["repeat"]
    args.twin_rounds = d["twin_rounds"]
    for s in args.stores:
        if s not in ("memory", "file", "nfs"):
            p.error("--stores: unknown store '%s' (memory, file, nfs)" % s)
    for k in args.kernel:
        if k not in ("swapfile", "zram"):
            p.error("--kernel: unknown baseline '%s' (swapfile, zram, none)" % k)
    unknown = [w for w in args.workloads if w not in ALL_WORKLOADS]
    if unknown:
        p.error("--workloads: unknown %s" % ", ".join(unknown))
    try:
        programs.find(args.programs)
    except ValueError as e:
        p.error("--programs: %s" % e)
    return args


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().rstrip("IB")
    return int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)


def machine():
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": model, "mem_bytes": mem,
            "loadavg_start": list(os.getloadavg()), "loadavg_end": None}


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args):
        self.args = args
        self.runner = Runner(args.build)
        self.cells = CellRunner(args.build, workloads=args.workloads, ops=args.ops, max_seconds=args.max_seconds)
        self.doc = {
            "schema_version": SCHEMA_VERSION,
            "command": os.environ.get("BENCH_COMMAND") or " ".join([sys.argv[0]] + sys.argv[1:]),
            "mode": args.mode, "started_unix": int(time.time()), "seconds": None, "machine": machine(),
            "settings": {"limit_bytes": args.limit, "overs": args.over, "stores": args.stores,
                         "workloads": args.workloads, "ops": args.ops, "max_seconds": args.max_seconds,
                         "kernel": args.kernel, "programs": args.programs, "program_stores": args.program_stores,
                         "startup_runs": args.startup_runs, "unpaged_runs": args.repeat,
                         "pair_rounds": args.pair_rounds,
                         "twin_rounds": args.twin_rounds},
            "baselines": {"raw_io": {}, "kernel": {"skipped": None, "devices": {}}},
            "cells": [], "pairs": None, "programs": [], "startup": [], "targets": [],
        }
        self.kernel = None
        self.nfs = None

    def stores(self, names=None):
        """{store: a context manager yielding a fresh swap location} (harness/stores.py)."""
        pool = Stores(self.nfs)
        return {s: functools.partial(pool.location, s) for s in pool.available(names or self.args.stores)}

    def run(self):
        a = self.args
        t0 = time.monotonic()
        with contextlib.ExitStack() as cleanup:
            if a.kernel:
                kernel = KernelSwap(SOURCE)
                if kernel.acquire():
                    self.kernel = kernel
                    cleanup.callback(kernel.release)  # every swap device and cgroup gone
                else:
                    log("kernel swap baselines skipped: " + kernel.reason)
                    self.doc["baselines"]["kernel"]["skipped"] = kernel.reason
            else:
                self.doc["baselines"]["kernel"]["skipped"] = "not selected (--kernel none)"
            if "nfs" in a.stores:
                log("starting a loopback nfs-ganesha")
                self.nfs = cleanup.enter_context(NfsServer(SOURCE))
            self.raw_baselines()
            self.run_cells()
            self.run_pairs()
            self.run_programs()
            if a.startup_runs > 0:
                log("start-up")
                self.doc["startup"] = startup.measure(self.runner, a.build, self.stores(), a.startup_runs)
        self.doc["machine"]["loadavg_end"] = list(os.getloadavg())
        self.doc["seconds"] = time.monotonic() - t0
        report.derive(self.doc)
        self.doc["targets"] = report.targets(self.doc)
        return self.doc

    # ------------------------------------------------------------ baselines

    def raw_baselines(self):
        a = self.args
        size = int(a.limit * max(a.over))
        raw = self.doc["baselines"]["raw_io"]
        targets = {}
        if self.nfs:
            targets["nfs"] = self.nfs.url
        else:
            raw["nfs_skipped"] = "no nfs store selected"
        if "file" in a.stores:
            targets["local"] = "/var/tmp"
        else:
            raw["local_skipped"] = "no file store selected"
        for name, target in targets.items():
            log("raw %s baseline" % name)
            cmd = [os.path.join(a.build, "bench", "bench_raw_io"), "--target=" + target, "--bytes=%d" % size,
                   "--ops=%d" % a.ops, "--max-seconds=%g" % a.max_seconds]
            if name == "nfs":
                cmd.append("--server-pid=%d" % self.nfs.pid)
            out = self.runner.run(cmd, timeout_s=300, keep_stdout=True)
            if not out.ok:
                raise RuntimeError("bench_raw_io %s failed: %s" % (name, out.stderr))
            raw[name] = json.loads(out.stdout)

    # ------------------------------------------------------------ cells

    def run_cells(self):
        """Every cell. The unpaged baseline of each size runs a.repeat times,
        spread over the section (before and after the pager cells of its size,
        then at the end), so that its median does not sit in one quiet or busy
        minute. A region that fits (over < 1) is also compared A/B against a
        plain twin inside each cell, the unpaged cell's A/A giving the noise."""
        a = self.args
        cells = []
        unpaged = {}
        for over in a.over:
            region = int(a.limit * over) // 4096 * 4096
            twin = a.twin_rounds if over < 1 else 0
            unpaged[over] = Cell("unpaged", over, region, a.limit)
            log("cells at %gx: unpaged" % over)
            self.cells.run(unpaged[over], twin_rounds=twin)
            for store, location in self.stores().items():
                log("cells at %gx: pager-%s" % (over, store))
                with location() as where:
                    cells.append(self.cells.run(Cell("pager-" + store, over, region, a.limit), swap=where,
                                                server_pid=self.nfs.pid if store == "nfs" else None,
                                                twin_rounds=twin))
            if a.repeat > 1:
                self.cells.run(unpaged[over], twin_rounds=twin)
        if self.kernel:
            for device in a.kernel:
                cells += self.kernel_cells(device, cells)
        for over, cell in unpaged.items():
            for _ in range(cell.runs, a.repeat):
                log("cells at %gx: unpaged again" % over)
                self.cells.run(cell, twin_rounds=a.twin_rounds if over < 1 else 0)
        for cell in list(unpaged.values()) + cells:
            if cell.error:
                log("%s at %gx stopped: %s" % (cell.backend, cell.over, cell.error))
            self.doc["cells"].append(cell.to_json())

    def kernel_cells(self, device, pager_cells):
        a = self.args
        size = int(a.limit * max(a.over) * 1.25) + 64 * MIB
        cells = []
        try:
            with self.kernel.swap(device, size) as path:
                self.doc["baselines"]["kernel"]["devices"][device] = {"device": path, "bytes": size}
                zram = path[len("/dev/zram"):] if device == "zram" else None
                for over in [o for o in a.over if o >= 1]:
                    log("cells at %gx: kernel-%s" % (over, device))
                    region = int(a.limit * over) // 4096 * 4096
                    cell = Cell("kernel-" + device, over, region, a.limit)
                    with self.kernel.cgroup("cell") as cg:
                        budget = a.limit + self.pager_overhead(over, pager_cells)
                        cells.append(self.cells.run(cell, cgroup=cg, cgroup_budget=budget, zram=zram))
                        cell.oom_kills = self.kernel.oom_kills(cg)
        except Unavailable as e:
            log("kernel-%s skipped: %s" % (device, e))
            self.doc["baselines"]["kernel"]["devices"][device] = {"skipped": str(e)}
        return cells

    def pager_overhead(self, over, pager_cells):
        """What a paged process holds beyond its limit at this size (the locked
        reserve and the pager's metadata), from this run's pager cells: the
        kernel's cgroup gets it too, so both hold the same memory."""
        best = 0
        for cell in pager_cells:
            if cell.over == over:
                c = cell.to_json()
                meta = max((w.get("metadata_bytes") or 0 for w in c["workloads"]), default=0)
                best = max(best, (c["reserve_bytes"] or 0) + meta)
        # No pager cell ran: the default reserve (pager.h), pool plus arena.
        return best or max(8 * MIB, self.args.limit // 100) * 8 // 5

    # ------------------------------------------------------------ pairs

    def run_pairs(self):
        """Encryption and prefetch, each off against the defaults, at the
        largest oversubscription, on the NFS store if it runs, else the file
        store (harness/pairs.py)."""
        a = self.args
        store = next((s for s in ("nfs", "file") if s in self.stores()), None)
        if a.pair_rounds <= 0 or store is None:
            return
        over = max(a.over)
        self.doc["pairs"] = pairs.measure(self.cells, self.stores()[store], store=store, over=over,
                                          region=int(a.limit * over) // 4096 * 4096, limit=a.limit,
                                          server_pid=self.nfs.pid if store == "nfs" else None,
                                          rounds=a.pair_rounds, log=log)

    # ------------------------------------------------------------ programs

    def run_programs(self):
        a = self.args
        if not a.programs:
            return
        table = programs.ProgramTable(self.runner, SOURCE, a.build, mode=a.mode, repeat=a.repeat,
                                      timeout_s=MODES[a.mode]["program_timeout"], kernel=self.kernel)
        devices = {}
        if self.kernel:
            for device in a.kernel:
                if self.doc["baselines"]["kernel"]["devices"].get(device, {}).get("skipped"):
                    continue
                devices[device] = lambda device=device: self.kernel.swap(device, 1 << 30)
        for p in programs.find(a.programs):
            log("program %s" % p.name)
            self.doc["programs"].append(table.measure(p, self.stores(a.program_stores), devices))


def default_json(mode):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join(SOURCE, "bench", "results", "%s-%s.json" % (mode, stamp))


def main(argv):
    args = parse_args(argv)
    for binary in ("bench/bench_cell", "bench/bench_raw_io", "bench/bench_run", "cli/pagerctl"):
        if not os.access(os.path.join(args.build, binary), os.X_OK):
            sys.exit("bench: %s/%s is missing: build first (scripts/dev.sh build)" % (args.build, binary))
    # SIGTERM ends the run through the finally blocks that remove the swap
    # devices and cgroups, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    doc = Bench(args).run()
    path = args.json or default_json(args.mode)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    print(report.render(doc))
    log("results in " + path)


if __name__ == "__main__":
    main(sys.argv[1:])

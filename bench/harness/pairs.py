"""Pairs: one setting of the pager on against off, in the same run.

The cells of a pair differ in one LIBPAGER_* variable only. They run in
rounds whose order alternates (A B C, then C B A, ...), seconds apart, so
that the load of this shared machine, which swings by 2x within a minute,
falls on every side alike. Each ratio is the median over the rounds of
(setting off) / (default) within one round.

  no-encryption  LIBPAGER_ENCRYPT=0 against 1 (the NFS store's default; set
                 explicitly, so that a file-store pair measures it too): what
                 sealing every page with AES-256-GCM costs a fill, a scan and
                 a random swap-in
  no-prefetch    LIBPAGER_PREFETCH=0 against its default (1024 pages): what
                 reading ahead of a detected stream gains a scan
"""
import os
import statistics

from harness.cells import Cell

WORKLOADS = ["fill", "seq", "rand_read"]
DEFAULT = "default"
VARIANTS = [
    (DEFAULT, {"LIBPAGER_ENCRYPT": "1"}),
    ("no-encryption", {"LIBPAGER_ENCRYPT": "0"}),
    ("no-prefetch", {"LIBPAGER_ENCRYPT": "1", "LIBPAGER_PREFETCH": "0"}),
]
VARIED = {key for _, env in VARIANTS for key in env}


def measure(cells, location, *, store, over, region, limit, server_pid, rounds, log):
    """Runs every variant `rounds` times on `store` (location(): a context
    manager yielding a fresh swap location). Returns a JSON-ready dict."""
    runs = {name: Cell("pager-%s %s" % (store, name), over, region, limit) for name, _ in VARIANTS}
    for r in range(rounds):
        order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
        for name, settings in order:
            log("pairs at %gx on %s, round %d: %s" % (over, store, r + 1, name))
            env = {k: v for k, v in os.environ.items() if k not in VARIED}
            env.update(settings)
            with location() as where:
                cells.run(runs[name], swap=where, server_pid=server_pid, env=env, workloads=WORKLOADS)
    out = {"store": store, "over": over, "region_bytes": region, "limit_bytes": limit, "rounds": rounds,
           "variants": {}}
    for name, settings in VARIANTS:
        cell = runs[name]
        out["variants"][name] = {"env": settings, "runs": cell.runs, "error": cell.error,
                                 "encrypted": cell.info.get("encrypted"),
                                 "prefetch_pages": cell.info.get("prefetch_pages"),
                                 "workloads": {w: [_figures(x) for x in xs] for w, xs in cell.results.items()}}
    for name, _ in VARIANTS[1:]:
        out["variants"][name]["vs_default"] = _ratios(out["variants"][DEFAULT], out["variants"][name])
    return out


def _figures(w):
    """What a pair compares, from one run of a workload (bench_cell's line)."""
    seconds = w["seconds"] or None
    moved = (w["bytes_read"] + w["bytes_written"]) / (1 << 30)
    return {
        "gbps": w["bytes_touched"] / seconds / 1e9 if seconds else None,
        "kops": w["accesses"] / seconds / 1e3 if seconds else None,
        "capped": w["capped"], "wrong_words": w["wrong_words"],
        "miss_p50_us": w.get("miss_p50_us"), "miss_p99_us": w.get("miss_p99_us"),
        "fault_p50_us": w.get("fault_p50_us"), "major_faults": w["major_faults"],
        "pager_cpu_s_per_gib": w["pager_cpu_s"] / moved if moved * 1024 >= 1 else None,
        "server_cpu_s_per_gib": w["server_cpu_s"] / moved if w.get("server_cpu_s") is not None and moved * 1024 >= 1
        else None,
        "reserve_overflows": w.get("reserve_overflows"),
    }


def _ratios(default, variant):
    """{workload: {figure: median over rounds of variant / default}}, rounds paired by index."""
    out = {}
    for name, runs in variant["workloads"].items():
        base = default["workloads"].get(name, [])
        ratios = {}
        for key in ("gbps", "kops", "miss_p50_us", "fault_p50_us", "major_faults", "pager_cpu_s_per_gib"):
            pairs = [(b[key], v[key]) for b, v in zip(base, runs) if b[key] and v[key] is not None]
            ratios[key] = statistics.median(v / b for b, v in pairs) if pairs else None
        out[name] = ratios
    return out


def medians(variant, workload):
    """The median of each figure of `workload` over a variant's rounds."""
    runs = variant["workloads"].get(workload) or []
    out = {}
    for key in runs[0] if runs else ():
        values = [r[key] for r in runs if isinstance(r[key], (int, float)) and not isinstance(r[key], bool)]
        out[key] = statistics.median(values) if values else None
    return out

"""The report: figures derived from one run's raw results (throughput, CPU per
GiB moved, every ratio against a baseline of the same run), the issue's
targets checked against them, and the tables printed and pasted into
docs/performance.md.

Ratios are what to read: these machines are shared and noisy, so absolute
numbers are there for reference only.
"""
from harness import pairs as pairs_

GIB = 1 << 30
MIB = 1 << 20

SEQUENTIAL = ("fill", "seq")
BACKEND_ORDER = ["unpaged", "pager-memory", "pager-file", "pager-nfs", "kernel-swapfile", "kernel-zram"]


def throughput(w):
    """(value, unit): GB/s for the sequential patterns, thousands of accesses/s for the others."""
    if not w.get("seconds"):
        return None, ""
    if w["workload"] in SEQUENTIAL:
        return w["bytes_touched"] / w["seconds"] / 1e9, "GB/s"
    return w["accesses"] / w["seconds"] / 1e3, "k/s"


def _ratio(a, b):
    return a / b if a is not None and b else None


def _per_gib(cpu, moved):
    # Below 1 MiB moved, a per-GiB figure is noise.
    return cpu / (moved / GIB) if cpu is not None and moved >= MIB else None


def derive(doc):
    """Adds to every workload of every cell: throughput, CPU per GiB moved and
    the ratios against the baselines of the same run."""
    cells = {(c["backend"], c["over"]): c for c in doc["cells"]}
    raw = doc["baselines"]["raw_io"]

    def figure(backend, over, name):
        c = cells.get((backend, over))
        w = c and next((x for x in c["workloads"] if x["workload"] == name), None)
        return w

    for c in doc["cells"]:
        store = c["backend"].split("-", 1)[-1]
        raw_here = raw.get("nfs" if store == "nfs" else "local") or {}
        for w in c["workloads"]:
            thr, unit = throughput(w)
            w["throughput"], w["throughput_unit"] = thr, unit
            moved = w["bytes_read"] + w["bytes_written"]
            w["gib_moved"] = moved / GIB
            for who in ("pager", "app", "server"):
                w[who + "_cpu_s_per_gib"] = _per_gib(w.get(who + "_cpu_s"), moved)

            def vs(backend):
                other = figure(backend, c["over"], w["workload"])
                return _ratio(thr, throughput(other)[0]) if other else None

            w["ratios"] = {
                "vs_unpaged": vs("unpaged"),
                "vs_kernel_swapfile": vs("kernel-swapfile"),
                "vs_kernel_zram": vs("kernel-zram"),
                "vs_raw_1m_read": _ratio(thr, raw_here.get("read_1m_gbps")) if w["workload"] == "seq" else None,
                "miss_p50_vs_raw_4k_read": _ratio(w.get("miss_p50_us"), raw_here.get("read_4k_p50_us")),
                # Regions that fit: against a plain twin inside the same process (cell.cc, AbRatio).
                "ab_vs_unpaged": w.get("ab_vs_unpaged"),
            }


def _w(doc, backend, over, name):
    for c in doc["cells"]:
        if c["backend"] == backend and c["over"] == over:
            return next((w for w in c["workloads"] if w["workload"] == name), None)
    return None


def _target(name, goal, measured, met):
    return {"target": name, "goal": goal, "measured": measured, "met": met}


def targets(doc):
    """The issue's targets, each met (True), missed (False) or not measured in this run (None)."""
    out = []
    top = max((c["over"] for c in doc["cells"]), default=None)
    raw_nfs = doc["baselines"]["raw_io"].get("nfs") or {}

    seq = _w(doc, "pager-nfs", top, "seq")
    r = seq and seq["ratios"]["vs_raw_1m_read"]
    out.append(_target("seq scan at %sx over NFS vs raw libnfs 1 MiB reads" % top, ">= 0.50x",
                       "%.3fx (%.3f GB/s vs %.2f GB/s)" % (r, seq["throughput"], raw_nfs["read_1m_gbps"]) if r else "-",
                       r >= 0.5 if r else None))
    for dev in ("swapfile", "zram"):
        r = seq and seq["ratios"]["vs_kernel_" + dev]
        out.append(_target("seq scan at %sx over NFS vs kernel swap to %s" % (top, dev), "> 1x (ahead)",
                           "%.2fx" % r if r else "-", r > 1 if r else None))

    rnd = _w(doc, "pager-nfs", top, "rand_read")
    r = rnd and rnd["ratios"]["miss_p50_vs_raw_4k_read"]
    out.append(_target("random 4 KiB swap-in p50 over NFS vs one raw 4 KiB READ", "<= 1.5x",
                       "%.2fx (%.0f us vs %.0f us)" % (r, rnd["miss_p50_us"], raw_nfs["read_4k_p50_us"]) if r else "-",
                       r <= 1.5 if r else None))
    rf, rk = _w(doc, "pager-file", top, "rand_read"), _w(doc, "kernel-swapfile", top, "rand_read")
    ok = rf and rk and rf.get("miss_p50_us") and rk.get("miss_p50_us")
    out.append(_target("random 4 KiB swap-in p50, file store vs kernel swap file", "lower (ahead)",
                       "%.0f us vs %.0f us" % (rf["miss_p50_us"], rk["miss_p50_us"]) if ok else "-",
                       rf["miss_p50_us"] < rk["miss_p50_us"] if ok else None))

    fits = min((c["over"] for c in doc["cells"]), default=None)
    if fits is not None and fits < 1:
        aa = _w(doc, "unpaged", fits, "seq")
        noise = " (A/A, unpaged vs unpaged: %.3fx)" % aa["ab_vs_unpaged"] if aa and aa.get("ab_vs_unpaged") else ""
        for store in ("file", "nfs", "memory"):
            w = _w(doc, "pager-" + store, fits, "seq")
            r = w and w["ratios"]["ab_vs_unpaged"]
            if r:
                out.append(_target("seq scan that fits (region = %sx the limit), %s store, vs no pager, A/B"
                                   % (fits, store), ">= 0.95x", "%.3fx%s" % (r, noise), r >= 0.95))

    for row in doc["startup"]:
        if row["what"].startswith("preload"):
            out.append(_target("start-up of /bin/true, " + row["what"], "< 5 ms extra",
                               "%+.1f ms (%.1f vs %.1f ms)" % (row["extra_ms"], row["median_ms"],
                                                               row["median_ms"] - row["extra_ms"]),
                               row["extra_ms"] < 5))

    for p in doc["programs"]:
        paged, kernel = p["runs"].get("pager-file"), p["runs"].get("kernel-swapfile")
        if not paged or not kernel:
            continue
        strict = p["runs"].get("kernel-swapfile-at-limit")
        r = _ratio(paged["seconds"], kernel["seconds"])
        text = "%.2fx" % r + (" (paged timed out)" if paged["timed_out"] else "")
        if not _completed(kernel):
            text += " (the kernel's run failed: %s)" % _failure(kernel)
        if strict:
            text += "; %.2fx the kernel at the paged limit itself%s" % (
                _ratio(paged["seconds"], strict["seconds"]), "" if _completed(strict) else " (%s)" % _failure(strict))
        ok = _completed(paged) and (r <= 1 or not _completed(kernel))
        out.append(_target("%s at 1/3 of its peak, file store vs kernel swap file, same memory" % p["program"],
                           "<= 1x the kernel's time", text, ok))
    return out


def _completed(run):
    return run["status"] == 0 and not run["timed_out"] and run["output_identical"] is True


def _failure(run):
    if run["timed_out"]:
        return "timed out"
    if run.get("oom_kills"):
        return "OOM-killed"
    if run["output_identical"] is False:
        return "wrong output"
    return "exit %d" % run["status"]


# ---------------------------------------------------------------- tables

def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def _num(x, fmt="%.2f"):
    return "-" if x is None else fmt % x


def _thr(w):
    if w is None or w["throughput"] is None:
        return "-"
    t = w["throughput"]
    s = ("%.3g " % t) + w["throughput_unit"]
    return s + " (capped)" if w["capped"] else s


def _backends(doc):
    present = {c["backend"] for c in doc["cells"]}
    return [b for b in BACKEND_ORDER if b in present]


def _rows(doc):
    """(workload, over) in run order."""
    names = []
    for c in doc["cells"]:
        for w in c["workloads"]:
            if w["workload"] not in names:
                names.append(w["workload"])
    overs = sorted({c["over"] for c in doc["cells"]})
    return [(n, o) for n in names for o in overs]


# (workload, figure of harness/pairs.py, label, raw baseline figure to divide by)
PAIR_ROWS = [
    ("fill", "gbps", "GB/s", None),
    ("fill", "pager_cpu_s_per_gib", "pager CPU s/GiB moved", None),
    ("seq", "gbps", "GB/s", "read_1m_gbps"),
    ("seq", "fault_p50_us", "fault service p50 us", None),
    ("seq", "major_faults", "major faults", None),
    ("seq", "pager_cpu_s_per_gib", "pager CPU s/GiB moved", None),
    ("rand_read", "miss_p50_us", "miss p50 us", "read_4k_p50_us"),
    ("rand_read", "kops", "k accesses/s", None),
    ("rand_read", "pager_cpu_s_per_gib", "pager CPU s/GiB moved", None),
]


def _pairs(doc):
    p = doc["pairs"]
    raw = doc["baselines"]["raw_io"].get("nfs" if p["store"] == "nfs" else "local") or {}
    names = list(p["variants"])
    out = ["\n### Settings off against the defaults: pager-%s at %gx, %d alternating rounds (ratio: median of "
           "off / default within a round)\n" % (p["store"], p["over"], p["rounds"])]
    header = ["workload", "figure", names[0]]
    for name in names[1:]:
        header += [name, "ratio"]
    rows = []
    for workload, key, label, raw_key in PAIR_ROWS:
        med = {n: pairs_.medians(p["variants"][n], workload) for n in names}
        if not med[names[0]]:
            continue
        row = [workload, label, _num(med[names[0]].get(key), "%.3g")]
        for n in names[1:]:
            ratio = (p["variants"][n]["vs_default"].get(workload) or {}).get(key)
            row += [_num(med[n].get(key), "%.3g"), _num(ratio, "%.3gx")]
        rows.append(row)
        if raw_key and raw.get(raw_key):
            row = [workload, label + " / raw " + ("1 MiB reads" if raw_key == "read_1m_gbps" else "4 KiB read p50"),
                   _num(_ratio(med[names[0]].get(key), raw[raw_key]), "%.3gx")]
            for n in names[1:]:
                row += [_num(_ratio(med[n].get(key), raw[raw_key]), "%.3gx"), ""]
            rows.append(row)
    out.append(_table(header, rows))
    wrong = sum(f["wrong_words"] for v in p["variants"].values() for runs in v["workloads"].values() for f in runs)
    errors = ["%s: %s" % (n, v["error"]) for n, v in p["variants"].items() if v["error"]]
    out.append("\n%s. Wrong words read: %d%s" % ("; ".join("%s: %s" % (n, " ".join("%s=%s" % kv for kv in
                                                                                  v["env"].items()))
                                                            for n, v in p["variants"].items()),
                                                  wrong, "" if not errors else "; stopped: " + "; ".join(errors)))
    return "\n".join(out)


def render(doc):
    out = []
    s = doc["settings"]
    m = doc["machine"]
    load = lambda avg: " ".join("%.1f" % x for x in avg)  # noqa: E731
    out.append("libpager bench (%s mode): %d vCPU, kernel %s, %.1f GiB RAM, load %s at start, %s at end; "
               "limit %s MiB, %d random accesses or %g s per workload; %.0f s in all."
               % (doc["mode"], m["cpus"], m["kernel"], m["mem_bytes"] / GIB, load(m["loadavg_start"]),
                  load(m["loadavg_end"]), s["limit_bytes"] // MIB, s["ops"], s["max_seconds"], doc["seconds"]))
    out.append("command: `%s`" % doc["command"])
    backends = _backends(doc)

    out.append("\n### Throughput (x = ratio to unpaged at the same size, this run)\n")
    rows = []
    for name, over in _rows(doc):
        row = [name, "%gx" % over]
        for b in backends:
            w = _w(doc, b, over, name)
            cell = _thr(w)
            if w and b != "unpaged" and w["ratios"]["vs_unpaged"] is not None:
                cell += " %.3gx" % w["ratios"]["vs_unpaged"]
            if w and w["ratios"].get("ab_vs_unpaged") is not None:
                cell += " (A/%s %.3gx)" % ("A" if b == "unpaged" else "B", w["ratios"]["ab_vs_unpaged"])
            row.append(cell)
        if any(x != "-" for x in row[3:]):
            rows.append(row)
    out.append(_table(["workload", "region/limit"] + backends, rows))
    out.append("\nA/B: in the same process, against a plain twin region, alternating, median of %d rounds; "
               "A/A: the same for unpaged against unpaged, the noise of the A/B." % s.get("twin_rounds", 0))

    pagers = [b for b in backends if b.startswith("pager-")]
    kernels = [b for b in backends if b.startswith("kernel-")]
    if pagers and kernels:
        out.append("\n### Pager vs kernel swap at the same memory: throughput ratio (> 1: the pager is ahead)\n")
        header, rows = ["workload", "region/limit"], []
        pairs = [(p, k) for p in pagers for k in kernels]
        header += ["%s / %s" % (p[6:], k[7:]) for p, k in pairs]
        for name, over in _rows(doc):
            if over < 1:
                continue
            row = [name, "%gx" % over]
            for p, k in pairs:
                a, b = _w(doc, p, over, name), _w(doc, k, over, name)
                row.append(_num(_ratio(a and a["throughput"], b and b["throughput"])))
            rows.append(row)
        out.append(_table(header, rows))

    out.append("\n### Latency of an access to a page that was not mapped (app-visible, p50 / p99 us)\n")
    rows = []
    for name, over in _rows(doc):
        if name in SEQUENTIAL or name.startswith("mix") and name != "mix1":
            continue
        row = [name, "%gx" % over]
        for b in backends:
            if b == "unpaged":
                continue
            w = _w(doc, b, over, name)
            row.append("%s / %s" % (_num(w.get("miss_p50_us"), "%.0f"), _num(w.get("miss_p99_us"), "%.0f")) if w else "-")
        if any(x != "- / -" and x != "-" for x in row[2:]):
            rows.append(row)
    out.append(_table(["workload", "region/limit"] + [b for b in backends if b != "unpaged"], rows))

    raw = doc["baselines"]["raw_io"]
    out.append("\n### Raw I/O baselines (no pager; same server / same disk)\n")
    rows = []
    for target in ("nfs", "local"):
        r = raw.get(target)
        if not r:
            rows.append([target, "skipped: " + raw.get(target + "_skipped", "not run")] + [""] * 5)
            continue
        rows.append([target, "%.2f GB/s" % r["read_1m_gbps"], "%.2f GB/s" % r["write_1m_gbps"],
                     "%.0f / %.0f us" % (r["read_4k_p50_us"], r["read_4k_p99_us"]), "%.1f k/s" % (r["read_4k_iops"] / 1e3),
                     _num(r.get("read_1m_server_cpu_s_per_gib"), "%.2f s"), "%d MiB file" % (r["file_bytes"] // MIB)])
    out.append(_table(["target", "1 MiB reads", "1 MiB writes", "4 KiB read p50 / p99", "4 KiB reads",
                       "server CPU per GiB read", "size"], rows))
    k = doc["baselines"]["kernel"]
    if k.get("skipped"):
        out.append("\nkernel swap baselines skipped: " + k["skipped"])

    out.append("\n### Where the time goes: faults, bytes moved, fault service p50/p99 (the pager's histogram), "
               "CPU seconds per GiB moved\n")
    rows = []
    for c in doc["cells"]:
        if c["backend"] == "unpaged":
            continue
        for w in c["workloads"]:
            if not w["gib_moved"] and not w["faults"]:
                continue
            rows.append([c["backend"], w["workload"], "%gx" % c["over"], w["faults"], w["major_faults"],
                         "%.0f" % (w["gib_moved"] * 1024),
                         "%s / %s" % (_num(w["fault_p50_us"], "%.0f"), _num(w["fault_p99_us"], "%.0f")),
                         _num(w["pager_cpu_s_per_gib"]), _num(w["app_cpu_s_per_gib"]),
                         _num(w["server_cpu_s_per_gib"])])
    out.append(_table(["backend", "workload", "region/limit", "faults", "major", "MiB moved", "fault p50/p99 us",
                       "pager CPU s/GiB", "app CPU s/GiB", "NFS server CPU s/GiB"], rows))
    wrong = sum(w["wrong_words"] for c in doc["cells"] for w in c["workloads"])
    errors = ["%s %gx: %s" % (c["backend"], c["over"], c["error"]) for c in doc["cells"] if c["error"]]
    out.append("\nwrong words read: %d%s" % (wrong, "" if not errors else "; cells stopped: " + "; ".join(errors)))

    if doc.get("pairs"):
        out.append(_pairs(doc))

    if doc["programs"]:
        out.append("\n### Real programs at 1/3 of their unpaged peak (x = time / unpaged time)\n")
        runs = []
        for p in doc["programs"]:
            for r in p["runs"]:
                if r not in runs:
                    runs.append(r)
        rows = []
        for p in doc["programs"]:
            if p["skipped"]:
                rows.append([p["program"], "skipped: " + p["skipped"]] + [""] * (len(runs) + 2))
                continue
            u = p["unpaged"]
            row = [p["program"], "%.2f s" % u["seconds"], "%d MiB" % (u["max_rss_bytes"] // MIB),
                   "%d MiB" % (p["limit_bytes"] // MIB)]
            for name in runs:
                r = p["runs"].get(name)
                if r is None:
                    row.append("-")
                    continue
                text = (">%.0f s" % r["seconds"]) if r["timed_out"] else "%.2f s %.3gx" % (r["seconds"],
                                                                                            r["seconds"] / u["seconds"])
                if not r["timed_out"] and not _completed(r):
                    text += " " + _failure(r).upper()
                mem = r.get("cgroup_limit_bytes") or r["max_rss_bytes"]
                text += " (%d MiB)" % (mem // MIB)
                row.append(text)
            rows.append(row)
        out.append(_table(["program", "unpaged", "peak RSS", "paged limit"] + runs, rows))
        out.append("\n(MiB): a paged run's peak RSS; a kernel run's cgroup limit. Outputs compared byte for byte "
                   "with the unpaged run's.")

    if doc["startup"]:
        out.append("\n### Start-up of a program that maps nothing big (median of %d)\n" % doc["startup"][0]["runs"])
        out.append(_table(["what", "median", "extra", "x plain"],
                          [[r["what"], "%.2f ms" % r["median_ms"], "%+.2f ms" % r["extra_ms"], _num(r["vs_plain"])]
                           for r in doc["startup"]]))

    out.append("\n### The issue's targets (issue 11)\n")
    verdict = {True: "met", False: "MISSED", None: "not measured"}
    out.append(_table(["target", "goal", "this run", ""],
                      [[t["target"], t["goal"], t["measured"], verdict[t["met"]]] for t in doc["targets"]]))
    return "\n".join(out) + "\n"

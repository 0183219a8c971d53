"""Start-up: what a program that never maps a big region pays for being run
paged, as the median of repeated runs of /bin/true, against /bin/true
unpaged in the same run. The preload alone is what every child of a paged
shell pays; `pagerctl run` adds its own checks (it opens the swap location
once before the program starts)."""
import contextlib
import os
import statistics


def measure(runner, build_dir, stores, runs):
    """stores: {"file": a context manager yielding a swap location, ...}.
    Returns a JSON-ready list, plain first."""
    preload = os.path.join(build_dir, "preload", "libpager_preload.so")
    pagerctl = os.path.join(build_dir, "cli", "pagerctl")
    cases = [("plain /bin/true", None, lambda where: (["/bin/true"], None))]
    for store, location in stores.items():
        cases.append(("preload, %s store" % store, location, lambda where: (["/bin/true"], dict(
            os.environ, LD_PRELOAD=preload, LIBPAGER_LIMIT="64M", LIBPAGER_SWAP=where))))
        cases.append(("pagerctl run, %s store" % store, location, lambda where: (
            [pagerctl, "run", "--limit", "64M", "--swap", where, "--", "/bin/true"], None)))
    rows = []
    for what, location, command in cases:
        times = []
        with location() if location else contextlib.nullcontext() as where:
            argv, env = command(where)
            for _ in range(runs):
                r = runner.run(argv, env=env, timeout_s=30)
                if not r.ok:
                    raise RuntimeError("%s failed (status %s): %s" % (what, r.status, r.stderr))
                times.append(r.seconds * 1e3)
        rows.append({"what": what, "median_ms": statistics.median(times), "min_ms": min(times), "runs": runs})
    plain = rows[0]["median_ms"]
    for row in rows:
        row["extra_ms"] = row["median_ms"] - plain
        row["vs_plain"] = row["median_ms"] / plain if plain else None
    return rows

"""Running one measured program through bench_run (bench/spawn.cc): wall
time, exit status, peak RSS and a hash of its stdout, with a deadline and,
for the kernel-swap baseline, inside a memory cgroup.

A program that outlives its deadline is killed with its process group and
reported as timed out: a figure, not an error.
"""
import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field


@dataclass
class Finished:
    seconds: float
    status: int            # exit status, 128+N for a signal
    timed_out: bool
    max_rss_bytes: int     # the program's and its waited-for children's peak
    cpu_s: float
    stdout_sha256: str
    stdout: str = field(repr=False, default="")
    stderr: str = field(repr=False, default="")

    @property
    def ok(self):
        return self.status == 0 and not self.timed_out


class Runner:
    def __init__(self, build_dir):
        self.bench_run = os.path.join(build_dir, "bench", "bench_run")

    def run(self, argv, *, env=None, timeout_s, cgroup=None, cwd=None, keep_stdout=False):
        """Runs argv (a list, or a string for sh -c), for at most timeout_s."""
        if isinstance(argv, str):
            argv = ["/bin/sh", "-c", argv]
        # stdout is a pipe hashed as it comes, not a file: a file's page cache
        # would be charged to the program's memory cgroup.
        digest = hashlib.sha256()
        kept = []
        with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r", suffix=".json") as result:
            cmd = [self.bench_run, "--result=" + result.name, "--timeout=%g" % timeout_s]
            if cgroup:
                cmd.append("--cgroup=" + cgroup)
            p = subprocess.Popen(cmd + ["--"] + list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=err, env=env, cwd=cwd)
            for chunk in iter(lambda: p.stdout.read(1 << 16), b""):
                digest.update(chunk)
                if keep_stdout:
                    kept.append(chunk)
            rc = p.wait()
            err.seek(0)
            errtext = err.read().decode(errors="replace")
            line = result.read()
            if rc != 0 or not line:
                raise RuntimeError("bench_run failed (%d) for %s: %s" % (rc, argv, errtext[-2000:]))
            r = json.loads(line)
        if "exec_error" in r:
            raise RuntimeError("cannot run %s: %s" % (argv[0], r["exec_error"]))
        return Finished(seconds=r["seconds"], status=r["status"], timed_out=r["timed_out"],
                        max_rss_bytes=r["max_rss_bytes"], cpu_s=r["user_s"] + r["sys_s"],
                        stdout_sha256=digest.hexdigest(), stdout=b"".join(kept).decode(errors="replace"),
                        stderr=errtext[-4000:])

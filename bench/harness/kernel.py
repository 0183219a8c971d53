"""The kernel-swap baselines: the same workloads and programs as the pager's,
on plain memory, in a memory cgroup (v1) capped at the same memory, with
the kernel's swap on a swap file (on /var/tmp, the disk the file store
uses) or on zram. bench/kernel_swap.sh does the root-only work; this module
holds the run lock and makes sure that every device and cgroup is gone when
the run ends, however it ends (the finally blocks here, and
scripts/bench.sh's trap for a driver that was killed outright).
"""
import contextlib
import fcntl
import os
import subprocess

RUN_LOCK = "/run/libpager-bench.run.lock"


class Unavailable(Exception):
    """A baseline that cannot run here; its message says why."""


class KernelSwap:
    def __init__(self, source_dir):
        self.script = os.path.join(source_dir, "bench", "kernel_swap.sh")
        self.reason = None   # why the baselines cannot run, once acquire() said no
        self._lock = None

    def _sh(self, *args):
        out = subprocess.run([self.script, *map(str, args)], capture_output=True, text=True)
        if out.returncode != 0:
            raise Unavailable((out.stdout + out.stderr).strip() or "kernel_swap.sh %s failed" % args[0])
        return out.stdout.strip()

    def acquire(self):
        """True if the baselines can run; else self.reason says why not."""
        if os.geteuid() != 0:
            self.reason = "not root: swapon and memory cgroups need root"
            return False
        lock = open(RUN_LOCK, "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            self.reason = "another bench run holds %s" % RUN_LOCK
            return False
        self._lock = lock
        try:
            self._sh("teardown")  # what a killed run left behind
            self._sh("check")
        except Unavailable as e:
            self.reason = str(e)
            self.release()
            return False
        return True

    def release(self):
        if self._lock is None:
            return
        try:
            self._sh("teardown")
        finally:
            self._lock.close()
            self._lock = None

    @contextlib.contextmanager
    def swap(self, kind, size_bytes):
        """Swap on a new `kind` ("swapfile" or "zram") device of size_bytes; yields its path."""
        try:
            device = self._sh("on", kind, size_bytes)
        except Unavailable:
            self._sh("off")
            raise
        try:
            yield device
        finally:
            self._sh("off")

    @contextlib.contextmanager
    def cgroup(self, name):
        """A fresh memory cgroup; yields its directory. Removed on exit."""
        path = self._sh("cgroup", name)
        try:
            yield path
        finally:
            self._sh("uncgroup", name)

    @staticmethod
    def peak_bytes(cgroup):
        with open(os.path.join(cgroup, "memory.max_usage_in_bytes")) as f:
            return int(f.read())

    @staticmethod
    def oom_kills(cgroup):
        """Processes the cgroup's OOM killer killed (memory.oom_control, kernel 4.13+)."""
        with open(os.path.join(cgroup, "memory.oom_control")) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return None

"""Swap locations for the pager's stores. Every paged run gets a fresh
directory of its own, a local one under /var/tmp or a new directory in the
NFS export, removed afterwards with whatever a run killed at its deadline
left in it.

Why fresh: a run killed at its deadline leaves its swap file behind (on NFS
nothing of the killed process is left to remove it before libpager-reaper
does), and each run's directory is removed whole. (Before swap files were
named with random bits, a file named after a pid also blocked a later
process with the same pid: NFS3ERR_EXIST, exit 127.)
"""
import contextlib
import os
import shutil
import tempfile


class Stores:
    def __init__(self, nfs=None):
        self.nfs = nfs  # harness.nfs.NfsServer, or None

    def available(self, names):
        return [s for s in names if s != "nfs" or self.nfs]

    @contextlib.contextmanager
    def location(self, store):
        """Yields a swap location (LIBPAGER_SWAP) for `store`: memory, file or nfs."""
        if store == "memory":
            yield "memory:"
            return
        parent = self.nfs.export_dir if store == "nfs" else "/var/tmp"
        d = tempfile.mkdtemp(prefix="libpager-bench-swap.", dir=parent)
        try:
            yield self.nfs.url_for(os.path.basename(d)) if store == "nfs" else d
        finally:
            shutil.rmtree(d, ignore_errors=True)

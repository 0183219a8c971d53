"""A loopback nfs-ganesha for the NFS store and the raw libnfs baseline,
started and stopped with scripts/nfs-server.sh (the script the tests'
NfsServer drives), exporting a fresh directory under /var/tmp."""
import os
import shlex
import shutil
import subprocess
import tempfile


class NfsServer:
    def __init__(self, source_dir):
        self.script = os.path.join(source_dir, "scripts", "nfs-server.sh")
        self.export_dir = None
        self.state = None
        self.url = None
        self.pid = None

    def __enter__(self):
        self.export_dir = tempfile.mkdtemp(prefix="libpager-bench-export.", dir="/var/tmp")
        out = subprocess.run([self.script, "start", self.export_dir], capture_output=True, text=True)
        if out.returncode != 0:
            self.__exit__()
            raise RuntimeError("nfs-server.sh start failed: " + out.stderr.strip()[-2000:])
        for line in out.stdout.splitlines():
            key, _, value = line.partition("=")
            value = shlex.split(value)[0] if value else ""
            if key == "NFS_URL":
                self.url = value
            elif key == "NFS_STATE":
                self.state = value
            elif key == "NFS_PID":
                self.pid = int(value)
        if not (self.url and self.state and self.pid):
            self.__exit__()
            raise RuntimeError("unexpected output of nfs-server.sh start: " + out.stdout)
        return self

    def url_for(self, subdir):
        """The URL of a directory of the export (made in export_dir)."""
        path, _, query = self.url.partition("?")
        return "%s/%s?%s" % (path, subdir, query)

    def __exit__(self, *exc):
        if self.state:
            subprocess.run([self.script, "stop", self.state], capture_output=True)
            self.state = None
        if self.export_dir:
            shutil.rmtree(self.export_dir, ignore_errors=True)
            self.export_dir = None

"""pagerctl metrics, scraped as node_exporter's textfile collector and a
Prometheus server would, and parsed with prometheus_client's own parser
(Debian's python3-prometheus-client), against real paged processes
(tests/paged_helper.cc) publishing into a private stats directory.

The paged processes have awkward names on purpose: the comm label comes
from a symlink named with a quote, a backslash and a newline, and the swap
label from a directory named the same way, so the escaping is exercised by
real values.

    cli_metrics_test.py PAGERCTL PAGED_HELPER
"""
import concurrent.futures
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

PAGERCTL, PAGED_HELPER = sys.argv[1:3]
del sys.argv[1:3]

AWKWARD = 'a"b\\c\nd'  # a quote, a backslash, a newline
PAGES = 1024


def displayed(text):
    """EscapeForDisplay (pager/monitor.h) of an ASCII string."""
    return "".join("\\\\" if c == "\\" else f"\\x{ord(c):02x}" if ord(c) < 0x20 or ord(c) == 0x7f else c
                   for c in text)


def families(text):
    """{name: family} as prometheus_client parses `text` (it raises on bad input)."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(fams, name, **labels):
    """The samples called `name` (any family) whose labels include `labels`."""
    out = []
    for f in fams.values():
        for s in f.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                out.append(s)
    return out


class Helper:
    """A paged_helper run through `exe_name`, paged to `swap`, idling until stop()."""

    def __init__(self, tmp, stats_dir, swap, exe_name):
        link = os.path.join(tmp, exe_name)
        os.symlink(os.path.abspath(PAGED_HELPER), link)
        env = dict(os.environ, LIBPAGER_LIMIT="1M", LIBPAGER_RESERVE="1M", LIBPAGER_SWAP=swap,
                   LIBPAGER_STATS_DIR=stats_dir, LIBPAGER_LOG="error")
        self.proc = subprocess.Popen([link, str(PAGES)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                     text=True)
        ready = self.proc.stdout.readline()
        if not ready.startswith("ready "):
            self.stop()
            raise AssertionError(f"paged_helper did not start: {ready!r}")
        self.counters = {k: int(v) for k, v in (w.split("=") for w in ready.split()[1:])}

    def kill(self):
        self.proc.kill()
        self.stop()

    def stop(self):
        self.proc.stdin.close()
        self.proc.stdout.close()
        return self.proc.wait(timeout=60)


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cli_metrics_test.")
        cls.stats_dir = os.path.join(cls.tmp, "stats")
        os.mkdir(cls.stats_dir)
        cls.swap = os.path.join(cls.tmp, "swap " + AWKWARD)
        os.mkdir(cls.swap)
        cls.helper = Helper(cls.tmp, cls.stats_dir, cls.swap, AWKWARD)
        cls.plain = Helper(cls.tmp, cls.stats_dir, "memory:", "plain_helper")

    @classmethod
    def tearDownClass(cls):
        cls.helper.stop()
        cls.plain.stop()
        shutil.rmtree(cls.tmp)

    def pagerctl(self, *args):
        return subprocess.run([PAGERCTL, "metrics", "--stats-dir", self.stats_dir, *args], capture_output=True,
                              text=True, timeout=60, check=False)

    def check_exposition(self, text):
        fams = families(text)
        pid = str(self.helper.proc.pid)
        mine = {"pid": pid, "pager": "0"}
        c = self.helper.counters
        # Every label, escaped in the text and read back whole by the parser.
        info = samples(fams, "libpager_info", **mine)
        self.assertEqual(len(info), 1, text)
        # As pagerctl shows them: control characters as \xNN, backslashes
        # doubled (pager/monitor.h, EscapeForDisplay), then the format's own
        # escaping on top.
        self.assertEqual(info[0].labels["comm"], displayed(AWKWARD))
        self.assertEqual(info[0].labels["swap"], displayed(self.swap))
        self.assertIn("move", info[0].labels["features"])
        self.assertIn('comm="a\\"b\\\\\\\\c\\\\x0ad"', text)
        # The values are the process's own (it is idle, so they do not move).
        self.assertEqual(samples(fams, "libpager_limit_bytes", **mine)[0].value, 1 << 20)
        self.assertEqual(samples(fams, "libpager_mapped_bytes", **mine)[0].value, PAGES * 4096)
        self.assertEqual(samples(fams, "libpager_faults_total", kind="zero", **mine)[0].value, c["faults_zero"])
        self.assertEqual(samples(fams, "libpager_faults_total", kind="swapin", **mine)[0].value, c["faults_swapin"])
        self.assertEqual(samples(fams, "libpager_store_written_bytes_total", **mine)[0].value, c["bytes_written"])
        self.assertEqual(samples(fams, "libpager_swapped_bytes", **mine)[0].value, c["swapped_pages"] * 4096)
        self.assertGreater(c["swapped_pages"], 0)
        self.assertEqual(samples(fams, "libpager_store_state", state="ok", **mine)[0].value, 1)
        self.assertEqual(samples(fams, "libpager_store_state", state="paused", **mine)[0].value, 0)
        # Types and names as Prometheus wants them.
        self.assertEqual(fams["libpager_faults"].type, "counter")
        self.assertEqual(fams["libpager_resident_bytes"].type, "gauge")
        self.assertEqual(fams["libpager_fault_latency_seconds"].type, "histogram")
        buckets = samples(fams, "libpager_fault_latency_seconds_bucket", **mine)
        self.assertEqual(buckets[-1].labels["le"], "+Inf")
        counts = [b.value for b in buckets]
        self.assertEqual(counts, sorted(counts), "buckets are cumulative")
        self.assertEqual(counts[-1], samples(fams, "libpager_fault_latency_seconds_count", **mine)[0].value)
        self.assertGreater(counts[-1], 0)
        # Both processes, each once in every family.
        pids = {s.labels["pid"] for s in samples(fams, "libpager_resident_bytes")}
        self.assertEqual(pids, {pid, str(self.plain.proc.pid)})
        for f in fams.values():
            for s in f.samples:
                if s.name.startswith("libpager_") and "pid" in s.labels:
                    self.assertIn(s.labels["comm"], (displayed(AWKWARD), "plain_helper"), s)

    def test_prints_every_pager_in_the_text_format(self):
        r = self.pagerctl()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_exposition(r.stdout)
        for f in families(r.stdout).values():  # the textfile collector refuses timestamps
            self.assertTrue(all(s.timestamp is None for s in f.samples), f.name)

    def test_gone_processes_are_not_exported(self):
        tmp = tempfile.mkdtemp(prefix="cli_metrics_gone.")
        try:
            stats = os.path.join(tmp, "stats")
            os.mkdir(stats)
            gone = Helper(tmp, stats, "memory:", "gone_helper")
            gone.kill()  # a crash: its stats file stays behind
            self.assertTrue(os.listdir(stats))
            r = subprocess.run([PAGERCTL, "metrics", "--stats-dir", stats], capture_output=True, text=True,
                               timeout=60, check=True)
            fams = families(r.stdout)
            self.assertEqual(samples(fams, "libpager_resident_bytes"), [])
            self.assertEqual(samples(fams, "libpager_unreadable_stats_files")[0].value, 0)
        finally:
            shutil.rmtree(tmp)

    def test_a_missing_stats_directory_is_a_runtime_error(self):
        r = subprocess.run([PAGERCTL, "metrics", "--stats-dir", "/nonexistent/stats"], capture_output=True,
                           text=True, timeout=60, check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("/nonexistent/stats", r.stderr)


class Server(unittest.TestCase):
    """pagerctl metrics --listen, with the pagers of the Metrics tests."""

    @classmethod
    def setUpClass(cls):
        Metrics.setUpClass()
        cls.m = Metrics()
        cls.proc = subprocess.Popen([PAGERCTL, "metrics", "--stats-dir", Metrics.stats_dir, "--listen",
                                     "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
        line = cls.proc.stderr.readline()
        m = re.search(r"serving http://127\.0\.0\.1:(\d+)/metrics", line)
        if m is None:
            cls.proc.kill()
            raise AssertionError(f"pagerctl metrics --listen said {line!r}")
        cls.port = int(m.group(1))

    @classmethod
    def tearDownClass(cls):
        if cls.proc.poll() is None:
            cls.proc.kill()
        cls.proc.wait()
        cls.proc.stderr.close()
        Metrics.tearDownClass()

    def get(self, path="/metrics", method="GET"):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers.get("Content-Type"), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read().decode()

    def raw(self, data):
        """Sends `data` on a fresh connection; returns what came back before the server closed it."""
        out = b""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server answered and closed before reading it all
            try:
                while chunk := s.recv(65536):
                    out += chunk
            except ConnectionResetError:
                pass
        return out

    def test_a_scrape_gets_the_same_exposition(self):
        status, ctype, body = self.get()
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "text/plain; version=0.0.4; charset=utf-8")
        self.m.check_exposition(body)

    def test_concurrent_scrapes_each_get_it_whole(self):
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: self.get(), range(32)))
        for status, _, body in results:
            self.assertEqual(status, 200)
            self.m.check_exposition(body)

    def test_bad_requests_get_errors_and_the_server_goes_on(self):
        self.assertEqual(self.get("/")[0], 404)
        self.assertEqual(self.get("/metrics/x")[0], 404)
        self.assertEqual(self.get(method="POST")[0], 405)
        self.assertEqual(self.get(method="HEAD")[0], 200)
        self.assertRegex(self.raw(b"GET /metrics\r\n\r\n"), rb"^HTTP/1\.[01] 400")
        self.assertRegex(self.raw(b"GET /metrics HTTP/9.9\r\n\r\n"), rb"^HTTP/1\.[01] 505")
        self.assertRegex(self.raw(b"GARBAGE\r\n\r\n"), rb"^(HTTP/1\.[01] [45]|$)")  # an error, or closed
        self.assertRegex(self.raw(b"GET /metrics HTTP/1.1\r\nX: " + b"y" * 100000 + b"\r\n\r\n"), rb"^HTTP/1\.[01] 4")
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
            s.sendall(b"GET /met")  # and gone, mid-request
        with socket.create_connection(("127.0.0.1", self.port), timeout=30):
            # A client that connects and says nothing does not hold up others.
            status, _, body = self.get()
            self.assertEqual(status, 200)
            self.m.check_exposition(body)
        self.assertIsNone(self.proc.poll(), "the server died")

    def test_zz_sigterm_stops_it_with_status_0(self):
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=30), 0)


class Listen(unittest.TestCase):
    def test_a_taken_port_is_a_runtime_error_naming_the_address(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            r = subprocess.run([PAGERCTL, "metrics", "--listen", f"127.0.0.1:{port}"], capture_output=True,
                               text=True, timeout=60, check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f"127.0.0.1:{port}", r.stderr)
        self.assertIn("Address already in use", r.stderr)

    def test_a_bad_address_is_a_usage_error(self):
        for bad in ("127.0.0.1:http", "127.0.0.1:70000", "no.such.host.invalid:9000"):
            r = subprocess.run([PAGERCTL, "metrics", "--listen", bad], capture_output=True, text=True, timeout=60,
                               check=False)
            self.assertEqual(r.returncode, 2, (bad, r.stderr))
            self.assertIn("--listen", r.stderr)

    def test_a_port_alone_binds_the_loopback_address(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([PAGERCTL, "metrics", "--listen", str(port)], stderr=subprocess.PIPE, text=True)
        try:
            self.assertIn(f"serving http://127.0.0.1:{port}/metrics", proc.stderr.readline())
        finally:
            proc.send_signal(signal.SIGINT)
            self.assertEqual(proc.wait(timeout=30), 0)
            proc.stderr.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)

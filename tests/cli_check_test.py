"""pagerctl check, driven as a user would: on this machine everything needed
is there (exit 0); each way of taking something away (a required feature
disabled, a swap location that does not work, too little RLIMIT_MEMLOCK
without CAP_IPC_LOCK, no userfaultfd right) shows as that item's missing or
warn line with a fix, and sets the exit status. --json says the same.

    cli_check_test.py PAGERCTL
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

PAGERCTL = os.path.abspath(sys.argv[1])
del sys.argv[1]

ITEMS = ["kernel", "userfaultfd", "move", "remove", "unmap", "remap", "wp", "poison", "wp_async", "fork", "memlock",
         "swap", "stats-dir", "preload", "paging"]


def check(*args, prefix=()):
    r = subprocess.run([*prefix, PAGERCTL, "check", *args], capture_output=True, text=True, timeout=120, check=False)
    lines = {}
    for line in r.stdout.splitlines():
        m = re.fullmatch(r"(ok|warn|missing) +(\S+) +(.+)", line)
        if m is None:
            raise AssertionError(f"not an item line: {line!r}")
        lines[m.group(2)] = (m.group(1), m.group(3))
    return r.returncode, lines, r.stderr


def root():
    return os.geteuid() == 0


class Check(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cli_check_test.")
        status, lines, _ = check("--swap", "memory:")
        if lines.get("userfaultfd", ("",))[0] != "ok":
            raise unittest.SkipTest(f"no userfaultfd right here: {lines.get('userfaultfd')}")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_everything_needed_is_here_one_line_per_item(self):
        status, lines, err = check("--swap", self.tmp)
        self.assertEqual(status, 0, (lines, err))
        self.assertEqual(list(lines), ITEMS)
        for name in ("kernel", "userfaultfd", "move", "remove", "unmap", "remap", "swap", "paging"):
            self.assertEqual(lines[name][0], "ok", (name, lines[name]))
        self.assertRegex(lines["swap"][1], r"written in [0-9.]+ ms and read back in [0-9.]+ ms, removed")
        self.assertEqual(os.listdir(self.tmp), [], "the test swap file is removed")
        self.assertRegex(lines["paging"][1], r"every byte read back \([1-9]\d* swap-in faults")

    def test_json_says_the_same(self):
        status, lines, _ = check("--swap", self.tmp)
        r = subprocess.run([PAGERCTL, "check", "--swap", self.tmp, "--json"], capture_output=True, text=True,
                           timeout=120, check=False)
        self.assertEqual(r.returncode, status)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["schema_version"], 1)
        self.assertIs(doc["ok"], True)
        self.assertEqual([c["name"] for c in doc["checks"]], list(lines))
        for c in doc["checks"]:
            self.assertEqual(c["status"], lines[c["name"]][0])
            self.assertTrue(set(c) >= {"name", "status", "detail", "fix"}, c)
        swap = next(c for c in doc["checks"] if c["name"] == "swap")
        self.assertIsInstance(swap["write_us"], int)
        self.assertIsInstance(swap["read_us"], int)
        memlock = next(c for c in doc["checks"] if c["name"] == "memlock")
        self.assertGreater(memlock["locked_bytes"], 8 << 20)

    def test_a_disabled_required_feature_is_missing_and_exits_1(self):
        status, lines, _ = check("--swap", "memory:", "--disable", "move")
        self.assertEqual(status, 1)
        self.assertEqual(lines["move"][0], "missing")
        self.assertIn("disabled by --disable; fix: drop it from --disable", lines["move"][1])

    def test_a_disabled_optional_feature_is_a_warning_and_exits_0(self):
        status, lines, _ = check("--swap", "memory:", "--disable", "poison")
        self.assertEqual(status, 0, lines)
        self.assertEqual(lines["poison"][0], "warn")

    def test_a_swap_location_that_does_not_work_is_missing(self):
        for swap in (os.path.join(self.tmp, "no", "such", "dir"), "nfs://127.0.0.1:1/export?nfsport=1&mountport=1"):
            status, lines, _ = check("--swap", swap, "--connect-timeout", "2s")
            self.assertEqual(status, 1, (swap, lines))
            self.assertEqual(lines["swap"][0], "missing", lines["swap"])
            self.assertIn("fix: ", lines["swap"][1])

    def test_settings_that_cannot_work_are_a_usage_error(self):
        status, lines, err = check("--limit", "1M", "--swap", "memory:")
        self.assertEqual((status, lines), (2, {}))
        self.assertIn("below the reserve", err)

    @unittest.skipUnless(root() and shutil.which("setpriv") and shutil.which("prlimit"),
                         "needs root, setpriv and prlimit to drop CAP_IPC_LOCK and lower RLIMIT_MEMLOCK")
    def test_too_little_locked_memory_is_a_warning_with_the_limit_to_set(self):
        status, lines, _ = check("--limit", "2G", "--swap", "memory:",
                                 prefix=("prlimit", "--memlock=1048576", "setpriv", "--bounding-set=-ipc_lock",
                                         "--inh-caps=-ipc_lock"))
        self.assertEqual(status, 0, lines)
        self.assertEqual(lines["memlock"][0], "warn", lines["memlock"])
        # 2G: a 20.5 MiB reserve (1%), 32.8 MiB locked with the arena.
        self.assertIn("RLIMIT_MEMLOCK is 1.00 MiB", lines["memlock"][1])
        self.assertRegex(lines["memlock"][1], r"fix: ulimit -l \d+")

    @unittest.skipUnless(root() and shutil.which("setpriv"), "needs root to become another user")
    def test_no_userfaultfd_right_is_missing_with_how_to_grant_it(self):
        with open("/proc/sys/vm/unprivileged_userfaultfd") as f:
            if f.read().strip() != "0":
                self.skipTest("vm.unprivileged_userfaultfd=1 grants the right to everyone")
        if os.path.exists("/dev/userfaultfd") and os.stat("/dev/userfaultfd").st_mode & 0o006:
            self.skipTest("/dev/userfaultfd is open to everyone")
        status, lines, _ = check("--swap", "memory:", "--stats-dir", "/tmp",
                                 prefix=("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"))
        self.assertEqual(status, 1, lines)
        self.assertEqual(lines["userfaultfd"][0], "missing")
        self.assertIn("sysctl -w vm.unprivileged_userfaultfd=1", lines["userfaultfd"][1])
        self.assertNotIn("paging", lines)


if __name__ == "__main__":
    unittest.main(verbosity=2)

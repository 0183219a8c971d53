"""The man pages built from docs/man/*.scd: valid roff (groff with every
warning on, and man -l, print nothing on stderr), and complete: pagerctl(1)
has a section for every command `pagerctl --help` lists, with every option
that command's --help shows, and the exit codes; libpager(7) names every
LIBPAGER_* variable the library and the preload read.

    man_test.py MAN_DIR PAGERCTL SOURCE_DIR
"""
import os
import pathlib
import re
import subprocess
import sys
import unittest

MAN_DIR, PAGERCTL, SOURCE_DIR = (pathlib.Path(a) for a in sys.argv[1:4])
del sys.argv[1:4]


def render(page):
    """The page as man shows it, plain text; fails on any warning."""
    env = dict(os.environ, MANWIDTH="100", MAN_KEEP_FORMATTING="0", MANPAGER="cat", PAGER="cat", LANG="C.UTF-8")
    r = subprocess.run(["man", "--warnings=all", "-l", str(MAN_DIR / page)], env=env, capture_output=True,
                       text=True, check=False)
    if r.returncode != 0 or r.stderr:
        raise AssertionError(f"man -l {page}: exit {r.returncode}: {r.stderr}")
    return re.sub(r".\x08", "", r.stdout)  # overstrike bold/underline, if any


def sections(text):
    """{subsection title: its text} for the '   title' headings of man's output."""
    out, title = {}, None
    for line in text.splitlines():
        m = re.fullmatch(r"   (\S.*)", line)
        if m:
            title = m.group(1)
            out[title] = ""
        elif re.fullmatch(r"[A-Z][A-Z ]+", line):
            title = None
        elif title is not None:
            out[title] += line + "\n"
    return out


def pagerctl(*args):
    return subprocess.run([str(PAGERCTL), *args], capture_output=True, text=True, check=True).stdout


class ManPages(unittest.TestCase):
    def test_groff_finds_nothing_to_warn_about(self):
        for page in ("pagerctl.1", "libpager.7"):
            r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(MAN_DIR / page)], capture_output=True,
                               text=True, check=False)
            self.assertEqual((r.returncode, r.stderr), (0, ""), page)

    def test_pagerctl_page_has_every_command_and_option(self):
        text = render("pagerctl.1")
        subs = sections(text)
        common = subs.get("Options of every command", "")
        commands = re.findall(r"^  (\w+) ", pagerctl("--help").split("commands:")[1], re.M)
        self.assertGreaterEqual(len(commands), 7, commands)
        for cmd in commands:
            self.assertIn(cmd, subs, f"pagerctl(1) has no section for '{cmd}'")
            options = set(re.findall(r"--([a-z][a-z-]*)", pagerctl(cmd, "--help").split("options:")[1]))
            for opt in sorted(options):
                self.assertTrue(f"--{opt}" in subs[cmd] or f"--{opt}" in common,
                                f"pagerctl(1) does not document '{cmd} --{opt}'")

    def test_pagerctl_page_gives_the_exit_codes(self):
        exit_status = render("pagerctl.1").split("EXIT STATUS")[1].split("ENVIRONMENT")[0]
        for code in ("0", "1", "2"):
            self.assertRegex(exit_status, rf"(?m)^ +{code}$")

    def test_libpager_page_names_every_variable(self):
        read = set()
        for d in ("libpager/src", "preload"):
            for f in (SOURCE_DIR / d).rglob("*.cc"):
                read |= set(re.findall(r'"(LIBPAGER_[A-Z_]+)"', f.read_text()))
        self.assertGreaterEqual(len(read), 10, read)
        text = render("libpager.7")
        for var in sorted(read):
            self.assertIn(var, text, f"libpager(7) does not document {var}")
        for section in ("ENVIRONMENT", "EXIT STATUS", "FILES"):
            self.assertIn(f"\n{section}\n", text)


if __name__ == "__main__":
    unittest.main(verbosity=2)

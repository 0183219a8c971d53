#!/usr/bin/env bash
# The Debian packages (cmake/packaging.cmake): built with cpack, checked
# (Depends, contents), installed for real with dpkg -i, used (the packaged
# pagerctl pages an unmodified program with the packaged preload; a
# consumer builds against libpager-dev with a plain find_package), then
# purged, leaving nothing behind.
#
#   deb_test.sh BUILD_DIR CONSUMER_SOURCE_DIR VERSION
# Exit 0 passed, 1 failed, 77 skipped (not root, or libpager installed on
# this machine by someone else: it is never touched).
#
# Runs on one machine at a time (a lock, as other worktrees may run it at
# once), and never leaves the packages installed: removed on any exit, and
# by the next run if this one was killed (the marker file says who
# installed them).
set -euo pipefail
# Under pipefail, `cmd | grep -q` fails when grep exits at its first match
# and cmd then dies of SIGPIPE: every pipe into grep here reads to the end.
build=$1 consumer_src=$2 version=$3

name=deb_test
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
[[ $(id -u) == 0 ]] || skip "dpkg -i needs root"

work=$(mktemp -d "$build/deb_test.XXXXXX")
trap 'rm -rf "$work"' EXIT
arch=$(dpkg --print-architecture)

# ---- Build and inspect the packages
run "$work/cpack.log" cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/pkgs"
runtime=$work/pkgs/libpager_${version}_$arch.deb
dev=$work/pkgs/libpager-dev_${version}_$arch.deb
[[ -f $runtime && -f $dev ]] || fail "cpack made: $(ls "$work/pkgs")"

depends=$(dpkg-deb -f "$runtime" Depends)
echo "libpager Depends: $depends"
depends_names=$(tr ',' '\n' <<<"$depends" | awk '{print $1}')
for d in libc6 libstdc++6 libnfs13 libjemalloc2 libboost-program-options1.74.0 libmicrohttpd12; do
  grep -qxF "$d" <<<"$depends_names" || fail "libpager does not depend on $d: $depends"
done
dev_depends=$(dpkg-deb -f "$dev" Depends)
echo "libpager-dev Depends: $dev_depends"
[[ $dev_depends == *"libpager (= $version)"* && $dev_depends == *libjemalloc-dev* ]] ||
  fail "libpager-dev's Depends: $dev_depends"

dpkg-deb -c "$runtime" | awk '{print $6}' >"$work/runtime.files"
dpkg-deb -c "$dev" | awk '{print $6}' >"$work/dev.files"
for f in ./usr/bin/pagerctl ./usr/lib/libpager.so.$version ./usr/lib/libpager_preload.so \
         ./usr/share/man/man1/pagerctl.1.gz ./usr/share/man/man7/libpager.7.gz; do
  grep -qx "$f" "$work/runtime.files" || fail "$f is not in libpager: $(tr '\n' ' ' <"$work/runtime.files")"
done
for f in ./usr/include/pager/pager.h ./usr/lib/libpager.so ./usr/lib/pkgconfig/libpager.pc \
         ./usr/lib/cmake/libpager/libpagerConfig.cmake; do
  grep -qx "$f" "$work/dev.files" || fail "$f is not in libpager-dev: $(tr '\n' ' ' <"$work/dev.files")"
done
if grep -q include "$work/runtime.files"; then fail "libpager has headers"; fi

# ---- Install, one run at a time on this machine
mkdir -p /run/lock
exec 9>/run/lock/libpager-deb-test.lock
flock -w 600 9 || fail "another deb_test held /run/lock/libpager-deb-test.lock for 10 minutes"
marker=/var/lib/libpager-deb-test.installed
installed() { dpkg-query -W -f='${Status}\n' libpager libpager-dev 2>/dev/null | grep "ok installed" >/dev/null; }
if installed; then
  if [[ -e $marker ]]; then
    echo "deb_test: removing the packages a killed run left installed"
    dpkg -P libpager-dev libpager >/dev/null
  else
    skip "libpager is installed on this machine and not by this test: not touching it"
  fi
fi
touch "$marker"
trap 'dpkg -P libpager-dev libpager >/dev/null 2>&1 || true; rm -f "$marker"; rm -rf "$work"' EXIT
run "$work/dpkg-i.log" dpkg -i "$runtime" "$dev"

# ---- Use it
[[ $(command -v pagerctl) == /usr/bin/pagerctl ]] || fail "pagerctl is $(command -v pagerctl)"
[[ $(man -w pagerctl) == /usr/share/man/man1/pagerctl.1.gz && $(man -w 7 libpager) == /usr/share/man/man7/libpager.7.gz ]] ||
  fail "man pages: $(man -w pagerctl) $(man -w 7 libpager)"
mkdir "$work/swap"
check=$(/usr/bin/pagerctl check --swap "$work/swap" --json) || true
[[ $check == *'"name":"preload","status":"ok","detail":"/usr/lib/libpager_preload.so'* ]] ||
  fail "the packaged pagerctl does not find the packaged preload: $check"
if [[ $check == *'"name":"userfaultfd","status":"missing"'* ]]; then
  skip "no userfaultfd right here"
fi
run "$work/touch.log" gcc -O1 "$consumer_src/touch.c" -o "$work/touch"
stats=$work/preload-stats
out=$(LIBPAGER_STATS_AT_EXIT=$stats /usr/bin/pagerctl run --limit 16M --swap "$work/swap" -- "$work/touch" 96 2>&1) ||
  fail "pagerctl run: $out"
line=$(cat "$stats")
echo "pagerctl run: $out"$'\n'"preload: $line"
[[ $line =~ evictions=([0-9]+) && ${BASH_REMATCH[1]} -gt 0 ]] || fail "the program was not paged: $line"

run "$work/configure.log" cmake -S "$consumer_src" -B "$work/cmake" -DCMAKE_BUILD_TYPE=Release
grep -q "libpager_DIR:PATH=/usr/lib/cmake/libpager" "$work/cmake/CMakeCache.txt" ||
  fail "find_package(libpager) did not find the packaged config: $(grep libpager_DIR "$work/cmake/CMakeCache.txt")"
run "$work/build.log" cmake --build "$work/cmake" -j2 --target consumer
ldd "$work/cmake/consumer" | grep -E "libpager.so.* => (/usr)?/lib/libpager.so" >/dev/null ||
  fail "the consumer does not load the packaged libpager.so: $(ldd "$work/cmake/consumer" | grep libpager)"
out=$("$work/cmake/consumer" memory: 2>&1) || fail "consumer: $out"
echo "consumer: $out"

# ---- Remove: nothing is left
run "$work/dpkg-P.log" dpkg -P libpager-dev libpager
rm -f "$marker"
for f in /usr/bin/pagerctl /usr/lib/libpager.so.$version /usr/lib/libpager_preload.so /usr/include/pager \
         /usr/lib/cmake/libpager /usr/share/man/man1/pagerctl.1.gz; do
  [[ ! -e $f ]] || fail "$f is still there after dpkg -P"
done
echo "deb_test: passed"

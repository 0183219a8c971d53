#!/usr/bin/env bash
# `cmake --install` into a scratch prefix, then use the installed tree the
# way its users would, and nothing of the build tree:
#  - the files are where GNUInstallDirs puts them, libpager.so has its SONAME
#    and exports the public API only;
#  - a consumer (consumer/: C++ and C) builds with find_package(libpager)
#    and with pkg-config, links the installed libpager.so and jemalloc (its
#    malloc), and pages 64 MiB through an 8 MiB limit, memory: and a
#    directory, checking every byte;
#  - the installed pagerctl finds the installed preload and pages an
#    unmodified program (consumer/touch.c) through a 16 MiB limit.
#
#   install_test.sh BUILD_DIR CONSUMER_SOURCE_DIR LIBDIR VERSION SOVERSION
# Exit 0 passed, 1 failed, 77 skipped (no userfaultfd right here).
set -euo pipefail
# Under pipefail, `cmd | grep -q` fails when grep exits at its first match
# and cmd then dies of SIGPIPE: every pipe into grep here reads to the end.
build=$1 consumer_src=$2 libdir=$3 version=$4 soversion=$5

work=$(mktemp -d "$build/install_test.XXXXXX")
trap 'rm -rf "$work"' EXIT
name=install_test
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

prefix=$work/prefix
run "$work/install.log" cmake --install "$build" --prefix "$prefix"

# ---- What is installed, and where
for f in bin/pagerctl "$libdir/libpager.so" "$libdir/libpager.so.$soversion" "$libdir/libpager.so.$version" \
         "$libdir/libpager_preload.so" "$libdir/cmake/libpager/libpagerConfig.cmake" \
         "$libdir/cmake/libpager/libpagerConfigVersion.cmake" "$libdir/cmake/libpager/libpagerTargets.cmake" \
         "$libdir/pkgconfig/libpager.pc" include/pager/pager.h include/pager/pager_c.h include/pager/export.h \
         share/man/man1/pagerctl.1.gz share/man/man7/libpager.7.gz; do
  [[ -e $prefix/$f ]] || fail "$f is not installed (installed: $(cd "$prefix" && find . -type f | sort | tr '\n' ' '))"
done
lib=$prefix/$libdir/libpager.so.$version
readelf -d "$lib" | grep "Library soname: \[libpager.so.$soversion\]" >/dev/null || fail "SONAME of $lib is not libpager.so.$soversion"
# The public headers stand alone: no Boost, libnfs or jemalloc in them.
if grep -nE '#include.*(boost|nfsc|libnfs|jemalloc)' "$prefix"/include/pager/*.h; then
  fail "a public header includes a dependency's header"
fi
# Exported: the pager:: API and the pager_ C API; nothing of jemalloc,
# libnfs, the std templates the library instantiates, or the internals.
leaks=$(nm -DC --defined-only "$lib" | cut -c20- |
        grep -vE '^(pager::|pager_|typeinfo (name )?for pager::|vtable for pager::)' || true)
[[ -z $leaks ]] || fail "libpager.so exports more than its API:"$'\n'"$leaks"
internal=$(nm -DC --defined-only "$lib" | grep -E 'pager::(Pager::Impl::|PagerCore|PageTable|Uffd|Reserve|Evictor|SlotAllocator|FileStore|NfsStore|MemoryStore)' || true)
[[ -z $internal ]] || fail "libpager.so exports internals:"$'\n'"$internal"

# ---- Can this machine page at all? (root or CAP_SYS_PTRACE in CI)
if "$prefix/bin/pagerctl" check --swap memory: | grep '^missing  userfaultfd' >/dev/null; then
  skip "no userfaultfd right here ($("$prefix/bin/pagerctl" check | grep userfaultfd))"
fi

# ---- Consumers, built against the installed tree only
run "$work/configure.log" cmake -S "$consumer_src" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release
grep -q "libpager_DIR:PATH=$prefix/$libdir/cmake/libpager" "$work/cmake/CMakeCache.txt" ||
  fail "find_package(libpager) did not find the installed config: $(grep libpager_DIR "$work/cmake/CMakeCache.txt")"
run "$work/build.log" cmake --build "$work/cmake" -j2

export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
pc_libdir=$(realpath "$(pkg-config --variable=libdir libpager)")
[[ $pc_libdir == "$(realpath "$prefix/$libdir")" ]] || fail "libpager.pc's libdir is $pc_libdir"
[[ $(pkg-config --modversion libpager) == "$version" ]] || fail "libpager.pc's version is $(pkg-config --modversion libpager)"
read -ra pc_flags <<<"$(pkg-config --cflags --libs libpager)"
run "$work/pc.log" g++ -std=c++20 -Wall -Wextra -Werror "$consumer_src/consumer.cc" "${pc_flags[@]}" \
  -Wl,-rpath,"$pc_libdir" -o "$work/consumer_pc"
run "$work/pc_c.log" gcc -std=c11 -Wall -Wextra -Werror "$consumer_src/consumer_c.c" "${pc_flags[@]}" \
  -Wl,-rpath,"$pc_libdir" -o "$work/consumer_c_pc"

mkdir "$work/swap"
for exe in "$work/cmake/consumer" "$work/consumer_pc" "$work/cmake/consumer_c" "$work/consumer_c_pc"; do
  # The installed libpager.so, not another one.
  ldd "$exe" | grep "libpager.so.$soversion => $(realpath "$prefix/$libdir")/libpager.so.$soversion" >/dev/null ||
    fail "$exe does not load the installed libpager.so: $(ldd "$exe" | grep libpager)"
  for swap in memory: "$work/swap"; do
    out=$("$exe" "$swap" 2>&1) || fail "$exe $swap: $out"
    echo "$(basename "$exe") $swap: $out"
  done
  # jemalloc is the consumer's malloc (docs/reserve.md, "library mode").
  if [[ $exe == */consumer || $exe == */consumer_pc ]]; then
    [[ $out == *"malloc from "*libjemalloc* ]] || fail "$exe: malloc is not jemalloc's: $out"
  fi
done
[[ -z $(ls -A "$work/swap") ]] || fail "swap files left behind: $(ls "$work/swap")"

# ---- The installed pagerctl with the installed preload
check=$("$prefix/bin/pagerctl" check --swap "$work/swap" --json)
[[ $check == *"\"name\":\"preload\",\"status\":\"ok\",\"detail\":\"$(realpath "$prefix/$libdir")/libpager_preload.so"* ]] ||
  fail "the installed pagerctl does not find the installed preload: $check"
stats=$work/preload-stats
out=$(LIBPAGER_STATS_AT_EXIT=$stats "$prefix/bin/pagerctl" run --limit 16M --swap "$work/swap" -- \
        "$work/cmake/touch" 96 2>&1) || fail "pagerctl run: $out"
echo "pagerctl run: $out"
line=$(cat "$stats")
echo "preload: $line"
[[ $line =~ evictions=([0-9]+) && ${BASH_REMATCH[1]} -gt 0 ]] || fail "the program was not paged: $line"
[[ $line =~ swapins=([0-9]+) && ${BASH_REMATCH[1]} -gt 0 ]] || fail "nothing was swapped back in: $line"
echo "install_test: passed"

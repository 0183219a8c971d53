# What install_test.sh and deb_test.sh share. Sourced after setting `name`.

fail() { echo "$name: FAIL: $*" >&2; exit 1; }
skip() { echo "$name: SKIP: $*"; exit 77; }  # ctest's SKIP_RETURN_CODE
run() {  # run LOG CMD...: the command's output goes to LOG, shown if it fails
  local log=$1; shift
  local rc=0
  "$@" >"$log" 2>&1 || rc=$?
  if ((rc != 0)); then cat "$log" >&2; fail "$* (exit $rc)"; fi
}

# The tests use what they install, never the build tree's preload or the
# caller's settings.
unset PAGERCTL_PRELOAD LD_PRELOAD ${!LIBPAGER_@}

#!/bin/sh
# The real-program check of issue 16: CPython's own os, shutil and tempfile test suites, run as
# an unprivileged user, natively and under sbrun, with their files on B (a local agent, so no
# second machine is needed; --remote puts the work directory on B whatever the default rules say).
# Too slow for the integration suite (about 55 s under sbrun), so run by hand, as root:
#
#   apt-get install libpython3.11-testsuite      # Debian's copy of Lib/test
#   tests/realprog/python_suites.sh [build/tracer/sbrun] [TESTS...]
#
# Prints each run's summary and time and exits 0 when both runs give the same verdict per suite.
# What differs under sbrun today, and why: docs/user-guide.md, "Testing your setup".
set -eu

SBRUN=$(realpath "${1:-build/tracer/sbrun}")
[ $# -gt 0 ] && shift
TESTS=${*:-test_os test_shutil test_tempfile}
USER_IDS="--reuid=65534 --regid=65534 --clear-groups"   # nobody, no supplementary groups

[ "$(id -u)" = 0 ] || { echo "$0: run as root (the suites then drop to nobody)" >&2; exit 2; }
python3 -c 'import test.test_os' 2>/dev/null ||
  { echo "$0: no CPython test suite: apt-get install libpython3.11-testsuite" >&2; exit 2; }

WORK=$(mktemp -d /tmp/sb-pysuites.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/native" "$WORK/sbrun"
chmod 755 "$WORK"   # mktemp's 0700 would keep nobody out
chmod 777 "$WORK/native" "$WORK/sbrun"

run_suite() {  # NAME DIR [PREFIX...]: one suite, its verdict line
  name=$1 dir=$2
  shift 2
  start=$(date +%s)
  if (cd "$dir" && "$@" setpriv $USER_IDS env TMPDIR="$dir" HOME="$dir" \
        python3 -m test -v "$name" >"$dir/$name.log" 2>&1); then
    verdict=pass
  else
    verdict=FAIL
  fi
  echo "$name $verdict $(( $(date +%s) - start )) s"
}

status=0
for t in $TESTS; do
  native=$(run_suite "$t" "$WORK/native")
  traced=$(run_suite "$t" "$WORK/sbrun" "$SBRUN" --target local --remote "$WORK/sbrun" --)
  echo "native: $native    sbrun: $traced"
  if [ "$(echo "$native" | cut -d' ' -f2)" != "$(echo "$traced" | cut -d' ' -f2)" ]; then
    status=1
    echo "--- $t under sbrun:"
    grep -E '^(FAIL|ERROR):|^Ran|FAILED|Tests result' "$WORK/sbrun/$t.log" | head -20 || true
  fi
done
exit $status

#!/usr/bin/env bash
# Runs the whole test suite on this machine: installs what the tests need, builds, starts
# the real servers on 127.0.0.1, runs the unit tests (swift test) and the end-to-end tests
# (pytest, real binaries against real servers, Python whisper/carbonate as oracles).
#
#   scripts/test.sh                 everything
#   WSP_TEST_SERVERS=none scripts/test.sh      file:// only (no S3/Swift/carbon servers)
#   scripts/test.sh -k merge        extra arguments go to pytest
#   WSP_TEST_JOBS=1 scripts/test.sh            end-to-end tests in one process (default: 2)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

bash scripts/deps.sh --test

echo "== build" >&2
swift build --build-tests 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' || true
swift build --build-tests >/dev/null   # fail here if the build failed
export WSP_BIN="$repo/.build/debug"

all_servers="swift radosgw carbon keystone"
servers=${WSP_TEST_SERVERS-$all_servers}
# One loud line at the end, pass or fail, naming the servers (and so the store suites) left out.
not_started=$(for s in $all_servers; do case " $servers " in *" $s "*) ;; *) printf '%s ' "$s" ;; esac; done)
summary() {
    [ -z "$not_started" ] || echo "== NOT COVERED: servers not started: ${not_started% } (WSP_TEST_SERVERS=${servers:-}); their store suites were skipped" >&2
}
# Free loopback ports for the servers unless given: another instance may hold the defaults.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export SWIFT_PORT=${SWIFT_PORT:-$(free_port)} RGW_PORT=${RGW_PORT:-$(free_port)}
export RGW_MON_PORT=${RGW_MON_PORT:-$(free_port)} CARBON_PORT=${CARBON_PORT:-$(free_port)}
export KEYSTONE_PORT=${KEYSTONE_PORT:-$(free_port)} KEYSTONE_SWIFT_PORT=${KEYSTONE_SWIFT_PORT:-$(free_port)}
# Short-lived tempauth tokens, so the Swift tests see a token expire in the middle of a run.
export SWIFT_TOKEN_LIFE=${SWIFT_TOKEN_LIFE:-10}
run=$(mktemp -d "${TMPDIR:-/tmp}/wsp-test.XXXXXX")
# keystone.sh puts its Keystone-auth Swift proxy over this swift-aio's rings.
case " $servers " in *" swift "*) export SWIFT_RUNDIR=$run/swift-aio ;; esac
started=()
cleanup() {
    for s in "${started[@]}"; do bash "scripts/servers/$s.sh" stop "$run/$s" >/dev/null 2>&1 || true; done
    rm -rf "$run"
    summary
}
trap cleanup EXIT
for s in $servers; do
    [ "$s" = none ] && continue
    script=scripts/servers/$s.sh
    [ "$s" = swift ] && script=scripts/servers/swift-aio.sh
    name=$(basename "$script" .sh)
    echo "== start $name" >&2
    bash "$script" start "$run/$name"
    started+=("$name")
    eval "$(bash "$script" env "$run/$name")"
done

echo "== swift test" >&2
# The store conformance suite also runs against each real store that was started.
urls=""
[ -z "${WSP_TEST_S3_ENDPOINT:-}" ] || urls="$urls s3://wsp-conformance"
[ -z "${ST_AUTH:-}" ] || ! grep -q '"swift"' Sources/WhisperBackup/Store/StoreRegistry.swift || urls="$urls swift://wsp-conformance"
set +e
WSP_TEST_STORE_URLS="${urls# }" AWS_ENDPOINT_URL="${WSP_TEST_S3_ENDPOINT:-${AWS_ENDPOINT_URL:-}}" \
    swift test > "$run/swift-test.log" 2>&1
rc=$?
set -e
# Failures in full, then the summary lines.
grep -E "error:|failed \(|: error" "$run/swift-test.log" || true
tail -n 6 "$run/swift-test.log"
[ $rc = 0 ] || { echo "swift test failed ($rc)" >&2; exit $rc; }

echo "== end-to-end tests" >&2
# Two pytest processes (pytest-xdist), a test file to each at a time: most tests wait on
# servers, syncs and child processes, and two halve the suite's time on 2 cores. Every test
# works in its own temp directory, bucket and container. The 25 slowest tests are listed at
# the end: the suite has a time budget (CI: well under 30 minutes). pytest-benchmark, where
# installed, would only warn that xdist turns it off: no test uses it.
jobs=${WSP_TEST_JOBS:-2}
parallel=()
[ "$jobs" -le 1 ] || parallel=(-n "$jobs" --dist loadfile)
python3 -m pytest -q -p no:cacheprovider -p no:benchmark "${parallel[@]}" --durations=25 Tests/integration "$@"

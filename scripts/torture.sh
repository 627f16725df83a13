#!/usr/bin/env bash
# The long run of the safety suites: many more random crash, signal and fault trials than
# the default test run, and longer fault sequences. It prints the totals (trials, kills by
# stage, faults injected by kind) at the end.
#
#   scripts/torture.sh                 300 crash trials, 60 signal trials, 40 random-fault trials
#   scripts/torture.sh 1000            1000 crash trials (the others scale with it)
#   WSP_TEST_SERVERS=none scripts/torture.sh   file:// only (no S3 server: fault suite skipped)
#   WSP_BIN=.build/release scripts/torture.sh  against release binaries (build them first)
#
# Runs on the binaries in .build/debug (built here) unless WSP_BIN is set. Starts a Swift
# all-in-one (its S3 API) on a free loopback port for the fault trials unless
# WSP_TEST_S3_ENDPOINT is already set. Exit status: pytest's (0: every trial held).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

trials=${1:-300}
[[ "$trials" =~ ^[0-9]+$ ]] && [ "$trials" -ge 1 ] || { echo "usage: $0 [TRIALS]" >&2; exit 2; }

if [ -z "${WSP_BIN:-}" ]; then
    bash scripts/deps.sh --test >/dev/null
    swift build >/dev/null
    export WSP_BIN="$repo/.build/debug"
fi

run=$(mktemp -d "${TMPDIR:-/tmp}/wsp-torture.XXXXXX")
started=
cleanup() {
    [ -z "$started" ] || bash scripts/servers/swift-aio.sh stop "$run/swift-aio" >/dev/null 2>&1 || true
    rm -rf "$run"
}
trap cleanup EXIT
if [ "${WSP_TEST_SERVERS:-}" != none ] && [ -z "${WSP_TEST_S3_ENDPOINT:-}" ]; then
    SWIFT_PORT=${SWIFT_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    export SWIFT_PORT
    echo "== start swift-aio (S3 API) on 127.0.0.1:$SWIFT_PORT" >&2
    bash scripts/servers/swift-aio.sh start "$run/swift-aio" >&2
    started=1
    eval "$(bash scripts/servers/swift-aio.sh env "$run/swift-aio")"
fi

status=0
suite() {
    local n=$1; shift
    echo "== $* ($n trials)" >&2
    local rc=0
    WSP_TORTURE_TRIALS=$n python3 -m pytest -q -s -p no:cacheprovider "$@" > "$run/log" 2>&1 || rc=$?
    grep -E '^(crash trials|faults injected|FAILED|ERROR)|passed|failed|skipped|error' "$run/log" || true
    if [ $rc != 0 ]; then
        status=1
        cp "$run/log" "${TMPDIR:-/tmp}/wsp-torture-failed.log"
        echo "   (full output: ${TMPDIR:-/tmp}/wsp-torture-failed.log)" >&2
    fi
}
suite "$trials" Tests/integration/test_safety_crash.py
suite $(( (trials + 4) / 5 )) Tests/integration/test_safety_signals.py -k random
suite $(( (trials + 7) / 8 )) Tests/integration/test_safety_faults.py
exit $status

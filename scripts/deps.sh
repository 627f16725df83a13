#!/usr/bin/env bash
# Installs what building (and, with --test, testing) needs on a Debian machine.
# Idempotent and quiet: does nothing when everything is there.
#   scripts/deps.sh            build dependencies (C libraries' -dev packages)
#   scripts/deps.sh --test     also the Python oracles (whisper, carbonate) and pytest
set -euo pipefail

want=(make pkg-config zlib1g-dev libssl-dev libcurl4-openssl-dev libdeflate-dev)
[ "${1:-}" = "--test" ] && want+=(memcached)

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--test" ]; then
    # The install, package and operations tests: man pages rendered by man (groff), zsh to
    # parse the completions, systemd-analyze for the units, dpkg-dev for the package's
    # dependencies, a real node_exporter to read the textfile. apt_ensure keeps their
    # services from starting (no systemd here, and none of them should listen).
    . "$(dirname "$0")/servers/lib.sh"
    # faketime runs a stage with its clock ahead (the clock test of test_hostile.py); GNU time
    # measures one tool's peak memory (a child forked from pytest inherits its high-water mark).
    ops=(man-db groff-base zsh dpkg-dev bsdutils prometheus-node-exporter faketime time)
    command -v systemd-analyze >/dev/null || ops+=(systemd)
    apt_ensure "${ops[@]}"
    py() { python3 -c "$1" 2>/dev/null; }
    if ! py "import whisper, carbonate, carbon" || ! command -v whisper-fill >/dev/null; then
        echo "deps: installing whisper and carbonate (oracles)" >&2
        # Without GRAPHITE_NO_PREFIX pip puts carbon under /opt/graphite and whisper-fill fails.
        GRAPHITE_NO_PREFIX=True python3 -m pip install -q --root-user-action=ignore whisper==1.1.10 carbonate==1.1.10 >/dev/null
        py "import carbon" || GRAPHITE_NO_PREFIX=True python3 -m pip install -q --root-user-action=ignore --force-reinstall --no-deps carbon==1.1.10 >/dev/null
    fi
    # pytest-xdist: scripts/test.sh runs the end-to-end tests in two processes.
    py "import pytest, numpy, xdist" || python3 -m pip install -q --root-user-action=ignore pytest numpy pytest-xdist >/dev/null
fi

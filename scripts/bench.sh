#!/usr/bin/env bash
# Benchmark against restic and gzip -6 on a generated tree (see scripts/bench.py):
#   scripts/bench.sh              300 files, ~545 MB (10s:6h,1m:7d,10m:5y and other schemas)
#   scripts/bench.sh --large      30,000 small-schema files
#   scripts/bench.sh --filled     the 300 files with every archive full (no empty slots)
#   scripts/bench.sh --files N --runs R --processes P
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bash scripts/deps.sh
command -v restic >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null; }
[ -x /usr/bin/time ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
python3 -c 'import numpy' 2>/dev/null || python3 -m pip install -q numpy
# The tools as `make install` builds them (Swift runtime linked in: faster process start).
make build >/dev/null
args=()
for a in "$@"; do
    if [ "$a" = --large ]; then args+=(--files 30000 --schemas small); else args+=("$a"); fi
done
WSP_BIN="$repo/.build-dist/release" exec python3 scripts/bench.py "${args[@]}"

#!/usr/bin/env bash
# Benchmark against restic and gzip -6 on a generated tree (see scripts/bench.py):
#   scripts/bench.sh              300 files, ~545 MB (10s:6h,1m:7d,10m:5y and other schemas)
#   scripts/bench.sh --large      30,000 small-schema files
#   scripts/bench.sh --filled     the 300 files with every archive full (no empty slots)
#   scripts/bench.sh --files N --runs R --processes P
#   scripts/bench.sh --daily      daily versions: day 1 the tree, then each day a day of carbon's
#                                 writes into 75% of the files (gen-tree.py --advance), wsp and
#                                 restic back up each day; store growth per day, restore of the
#                                 oldest and newest version (--filled: the full-archive tree)
#   scripts/bench.sh --daily --days N --full-every K   N days (default 5); K is passed to
#                                 wsp-snap when it has --full-every (delta versions; default 10, as the tools)
#   scripts/bench.sh --daily --files 30 --days 3       a quick check
#   scripts/bench.sh --scale 100000,250000,500000      small-schema trees of these sizes: first
#                                 backup, unchanged re-run, find, restore (checked), peak RSS of
#                                 every process of every stage, and whether time per file and
#                                 peak memory stay within 10% of the smallest size's; estimates
#                                 the disk needed first and exits 2 if it cannot fit
#   scripts/bench.sh --million    --scale 1000000 (a ~24 GB tree; the disk check says what it needs)
#   --processes P, --work DIR, --delete-wait S (65: after removing a tree), --restore-alone
#                                 (remove the tree before the restore) apply to --scale
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# scripts/bench.sh --latency [...]: objects/s through a proxy with a round trip (scripts/bench-latency.py)
if [ "${1:-}" = --latency ]; then shift; make build >/dev/null; WSP_BIN="$repo/.build-dist/release" exec python3 scripts/bench-latency.py "$@"; fi
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

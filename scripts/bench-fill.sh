#!/usr/bin/env bash
# Times wsp-merge's backfill of a generated whisper tree with gaps against carbonate's
# whisper-fill (fill_archives, what the original whisper-backup ran) over the same files, in
# one run, and prints both times and the ratio.
#
#   scripts/bench-fill.sh                 300 files (gen-tree.py --schemas mixed --gaps)
#   scripts/bench-fill.sh --files 1000
#   scripts/bench-fill.sh --identical     restore onto identical files instead, and count
#                                         the files each tool changed
#   scripts/bench-fill.sh --keep DIR      work in DIR and keep it (default: a temp dir)
#
# The backup is one generated tree, the live files another generated tree with the same
# paths and schemas and other gaps and values: each tool fills the live files' gaps from the
# backup. Both run in one process over all files (carbonate in one Python process calling
# fill_archives per file, as the original tool did), on warm page caches. wsp-merge's time
# includes what it does before it writes: gunzip and SHA-256 of each fetched file, locking,
# and the fsyncs. Works from a fresh clone: installs the build dependencies and the Python
# packages when missing and builds the release wsp-merge.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
files=300
identical=0
keep=""
while [ $# -gt 0 ]; do
    case "$1" in
        --files) files=$2; shift 2 ;;
        --identical) identical=1; shift ;;
        --keep) keep=$2; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-fill: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

cd "$repo"
bash scripts/deps.sh
py() { python3 -c "$1" 2>/dev/null; }
if ! py "import whisper, carbonate.fill, numpy"; then
    echo "bench-fill: installing whisper, carbonate, numpy" >&2
    GRAPHITE_NO_PREFIX=True python3 -m pip install -q --root-user-action=ignore whisper==1.1.10 carbonate==1.1.10 numpy >/dev/null
fi
echo "bench-fill: building the release wsp-merge" >&2
swift build -c release --product wsp-merge 2>&1 | grep -E 'error|warning: unre|Compiling|Build' >&2 || true
merge_bin=$(swift build -c release --show-bin-path)/wsp-merge
[ -x "$merge_bin" ] || { echo "bench-fill: $merge_bin was not built" >&2; exit 1; }

if [ -n "$keep" ]; then
    work=$keep; rm -rf "$work"; mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/bench-fill.XXXXXX")
    trap 'rm -rf "$work"' EXIT
fi

now=$(date +%s)
echo "bench-fill: generating $files files (backup and live trees) in $work" >&2
python3 scripts/gen-tree.py "$work/backup" --files "$files" --gaps --seed 1 --now "$now" 2>/dev/null
if [ "$identical" = 1 ]; then
    cp -a "$work/backup" "$work/live"
else
    python3 scripts/gen-tree.py "$work/live" --files "$files" --gaps --seed 2 --now "$now" 2>/dev/null
fi
cp -a "$work/live" "$work/by-merge"
cp -a "$work/live" "$work/by-carbonate"

# What wsp-pull get hands wsp-merge: METRIC TIME SHA256 GZFILE, the backup gzipped in a spool.
python3 - "$work/backup" "$work/spool" > "$work/fetched" <<'EOF'
import gzip, hashlib, os, sys
root, spool = sys.argv[1], sys.argv[2]
os.makedirs(spool, exist_ok=True)
for d, _, fs in sorted(os.walk(root)):
    for f in sorted(fs):
        path = os.path.join(d, f)
        rel = os.path.relpath(path, root)[:-len(".wsp")]
        data = open(path, "rb").read()
        digest = hashlib.sha256(data).hexdigest()
        gz = os.path.join(spool, rel.replace("/", ".") + ".wsp.gz")
        with open(gz, "wb") as out:
            out.write(gzip.compress(data, 6))
        print("\t".join([rel.replace("/", "."), "20261127T000000Z", digest, gz]))
EOF
find "$work/backup" "$work/spool" "$work/by-merge" "$work/by-carbonate" -type f -exec cat {} + > /dev/null

clock() { python3 -c 'import time; print(time.monotonic())'; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

t0=$(clock)
"$merge_bin" --root "$work/by-merge" --now "@$now" --keep-spool < "$work/fetched" > "$work/merged"
t1=$(clock)
python3 - "$work/backup" "$work/by-carbonate" <<'EOF'
import os, sys, time
from carbonate.fill import fill_archives
src, dst = sys.argv[1], sys.argv[2]
for d, _, fs in sorted(os.walk(src)):
    for f in sorted(fs):
        rel = os.path.relpath(os.path.join(d, f), src)
        fill_archives(os.path.join(src, rel), os.path.join(dst, rel), time.time())
EOF
t2=$(clock)

merge_s=$(elapsed "$t0" "$t1")
carbonate_s=$(elapsed "$t1" "$t2")
points=$(awk -F'\t' '$2 == "filled" { n += $4 } END { print n + 0 }' "$work/merged")
summary=$(awk -F'\t' '{ n[$2]++ } END { for (s in n) printf "%s%d %s", sep, n[s], s; sep = ", " }' "$work/merged")
changed() { python3 - "$work/live" "$1" <<'EOF'
import filecmp, os, sys
a, b = sys.argv[1], sys.argv[2]
print(sum(1 for d, _, fs in os.walk(a) for f in fs
          if not filecmp.cmp(os.path.join(d, f), os.path.join(b, os.path.relpath(d, a), f), shallow=False)))
EOF
}
echo "files:                 $files ($( [ "$identical" = 1 ] && echo "identical to the backup" || echo "with gaps"))"
echo "wsp-merge:             ${merge_s} s  ($summary; $points points written; $(changed "$work/by-merge") files changed)"
echo "carbonate whisper-fill: ${carbonate_s} s  ($(changed "$work/by-carbonate") files changed)"
python3 -c "print(f'ratio:                 {$carbonate_s / max($merge_s, 0.01):.1f}x (carbonate time / wsp-merge time)')"

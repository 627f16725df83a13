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
# Warm caches, nothing dirty: the copies just made are flushed before either tool starts, so
# wsp-merge's fsyncs carry only its own writes.
find "$work/backup" "$work/spool" "$work/by-merge" "$work/by-carbonate" -type f -exec cat {} + > /dev/null
sync

cp -a "$work/live" "$work/by-merge-p2"
sync

# Each run timed for wall clock and CPU (user + sys, its child processes included).
python3 - "$work" "$merge_bin" "$now" "$files" "$identical" <<'EOF'
import filecmp, os, resource, subprocess, sys, time
work, merge_bin, now, files, identical = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"

def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

def timed(fn):
    w, c = time.monotonic(), cpu()
    out = fn()
    return time.monotonic() - w, cpu() - c, out

def merge(root, procs):
    # As a restore runs it: wsp-pull get | xargs -d '\n' -P PROCS -n N wsp-merge --root ROOT
    n = files if procs == 1 else max(1, min(50, files // procs))
    with open(os.path.join(work, "fetched")) as f:
        p = subprocess.run(["xargs", "-d", "\n", "-P", str(procs), "-n", str(n), merge_bin, "--root", root,
                            "--now", "@" + now, "--keep-spool"], stdin=f, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("wsp-merge failed:\n" + p.stderr[-2000:])
    return [line.split("\t") for line in p.stdout.splitlines()]

def carbonate():
    from carbonate.fill import fill_archives
    src, dst = os.path.join(work, "backup"), os.path.join(work, "by-carbonate")
    for d, _, fs in sorted(os.walk(src)):
        for f in sorted(fs):
            rel = os.path.relpath(os.path.join(d, f), src)
            fill_archives(os.path.join(src, rel), os.path.join(dst, rel), time.time())

def changed(tree):
    live = os.path.join(work, "live")
    return sum(1 for d, _, fs in os.walk(live) for f in fs
               if not filecmp.cmp(os.path.join(d, f), os.path.join(work, tree, os.path.relpath(d, live), f), shallow=False))

m1 = timed(lambda: merge(os.path.join(work, "by-merge"), 1))
m2 = timed(lambda: merge(os.path.join(work, "by-merge-p2"), 2))
c1 = timed(carbonate)
statuses = {}
for r in m1[2]:
    statuses[r[1]] = statuses.get(r[1], 0) + 1
points = sum(int(r[3]) for r in m1[2] if r[1] == "filled")
print(f"files: {files} ({'identical to the backup' if identical else 'with gaps'}); "
      f"wsp-merge: {', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}, {points} points written")
print(f"{'':36} {'wall s':>7} {'cpu s':>7}  files changed")
print(f"{'wsp-merge, 1 process':36} {m1[0]:7.2f} {m1[1]:7.2f}  {changed('by-merge')}")
print(f"{'wsp-merge, xargs -P 2':36} {m2[0]:7.2f} {m2[1]:7.2f}  {changed('by-merge-p2')}")
print(f"{'carbonate fill_archives, 1 process':36} {c1[0]:7.2f} {c1[1]:7.2f}  {changed('by-carbonate')}")
print(f"ratio (carbonate / wsp-merge), 1 process each: {c1[0] / max(m1[0], 1e-3):.1f}x wall, "
      f"{c1[1] / max(m1[1], 1e-3):.1f}x cpu")
print(f"ratio with wsp-merge under xargs -P 2:         {c1[0] / max(m2[0], 1e-3):.1f}x wall")
EOF

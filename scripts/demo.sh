#!/usr/bin/env bash
# The main job on the embedded default store, end to end:
#   scripts/demo.sh [WHISPER_ROOT]
# Installs missing Debian packages, builds release binaries, takes WHISPER_ROOT (copied, never
# changed) or generates a sample tree, backs it up to a file:// store, changes some files,
# backs up again, restores the first and the newest version into temp dirs and checks them
# byte for byte against what was backed up.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
say() { printf '\n== %s\n' "$*"; }

say "dependencies"
bash scripts/deps.sh
python3 -c 'import numpy' 2>/dev/null || python3 -m pip install -q numpy
say "build (release)"
swift build -c release 2>&1 | grep -E 'error|warning: |Compiling|Build complete' | grep -v '^\[' || true
swift build -c release >/dev/null
bin="$repo/.build/release"
export PATH="$bin:$PATH"

work=$(mktemp -d "${TMPDIR:-/tmp}/wsp-demo.XXXXXX")
root="$work/whisper"
if [ $# -ge 1 ]; then
    say "copy $1 (the demo changes files; your tree is only read)"
    cp -a "$1/." "$root"
else
    say "generate a sample whisper tree"
    python3 scripts/gen-tree.py "$root" --files 120
fi
echo "tree: $(find "$root" -name '*.wsp' | wc -l) whisper files, $(du -sh "$root" | cut -f1)"
store="file://$work/store"
mkdir -p "$work/store"
spool="$work/spool"

say "backup 1: wsp-find | wsp-snap | wsp-push"
wsp-find --root "$root" | wsp-snap --spool "$spool" | wsp-push "$store" > "$work/push1"
awk -F'\t' '{ n[$6]++ } END { for (s in n) printf "  %d %s\n", n[s], s }' "$work/push1"
cp -a "$root" "$work/expected-first"
sleep 1.1
cutoff=$(date -u +%Y%m%dT%H%M%SZ)
sleep 1.1

say "change some files, backup 2 with the wrapper (original options)"
python3 scripts/gen-tree.py "$root" --change 0.25 --seed 42
bash scripts/backup.sh -p "$root" -b "$work/store" -f 2 --state "$work/state" --nolock --nolog --nostamp disk
cp -a "$root" "$work/expected-newest"

say "versions in the store"
bash scripts/restore.sh -b "$work/store" --nolog list disk | tail -n 1
echo "  objects: $(find "$work/store" -name '*.wsp.gz' | wc -l), $(du -sh "$work/store" | cut -f1) (tree: $(du -sh "$root" | cut -f1))"

say "restore the first version (--before $cutoff)"
wsp-pull list --before "$cutoff" "$store" '*' \
    | xargs -d '\n' -P 2 -n 50 wsp-pull get --in-place --spool "$spool" "$store" \
    | wsp-merge --root "$work/restored-first" | awk -F'\t' '{ n[$2]++ } END { for (s in n) printf "  %d %s\n", n[s], s }'

say "restore the newest version (wrapper)"
bash scripts/restore.sh -p "$work/restored-newest" -b "$work/store" -f 2 --nolock --nolog --nostamp disk

say "verify byte for byte"
diff -r "$work/expected-first" "$work/restored-first" && echo "  first version: identical ($(find "$work/restored-first" -name '*.wsp' | wc -l) files)"
diff -r "$work/expected-newest" "$work/restored-newest" && echo "  newest version: identical ($(find "$work/restored-newest" -name '*.wsp' | wc -l) files)"
changed=$( (diff -rq "$work/expected-first" "$work/expected-newest" || true) | wc -l)
echo "  files that differ between the two versions: $changed"

say "by hand: gunzip + sha256sum"
obj=$(find "$work/store" -name '*.wsp.gz' -print -quit)
name=$(basename "$obj"); want=${name#*.}; want=${want%%.*}
got=$(gunzip -c "$obj" | sha256sum | cut -d' ' -f1)
echo "  $obj"
[ "$got" = "$want" ] && echo "  sha256 of the gunzipped object matches its name: $got"
echo
echo "demo OK (work dir: $work; remove it with: rm -rf $work)"

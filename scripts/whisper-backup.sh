#!/usr/bin/env bash
# Runs the whisper-backup executable of this checkout (backup.sh and restore.sh call this):
# $WSP_BIN, else beside this script, else PATH, else the build tree. See `whisper-backup --help`.
trap 'exit 130' INT; trap 'exit 143' TERM   # until exec: no helper outlives a stop
d=$(dirname "$(readlink -f "$0")")
for w in ${WSP_BIN:+"$WSP_BIN/whisper-backup"} "$d/whisper-backup" "$(command -v whisper-backup)" \
         "$d/../.build/release/whisper-backup" "$d/../.build/debug/whisper-backup"; do
    [ -x "$w" ] && [ -f "$w" ] && exec "$w" "$@"
done
echo "whisper-backup: the whisper-backup executable is missing (build it: swift build -c release)" >&2
exit 2

#!/usr/bin/env bash
# Runs the whisper-backup executable of this checkout (backup.sh and restore.sh call this):
# $WSP_BIN, else beside this script, else PATH, else the build tree. See `whisper-backup --help`.
# Until exec, a stop ends the script once its helper has exited (none outlives it). One
# command, parsed whole before the traps are set: bash 5.2 running a trap while it parses a
# command substitution mangles both ("unexpected EOF while looking for matching `)'") and
# goes on without $d. No command substitution follows.
{ trap 'exit 130' INT; trap 'exit 143' TERM; d=$(dirname "$(readlink -f "$0")"); }
for w in ${WSP_BIN:+"$WSP_BIN/whisper-backup"} "$d/whisper-backup"; do
    [ -x "$w" ] && [ -f "$w" ] && exec "$w" "$@"
done
command -v whisper-backup >/dev/null && exec whisper-backup "$@"
for w in "$d/../.build/release/whisper-backup" "$d/../.build/debug/whisper-backup"; do
    [ -x "$w" ] && [ -f "$w" ] && exec "$w" "$@"
done
echo "whisper-backup: the whisper-backup executable is missing (build it: swift build -c release)" >&2
exit 2

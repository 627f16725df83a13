#!/usr/bin/env bash
# Back up a whisper tree: `backup.sh [options] BACKEND` (also: backup.sh list|purge ...).
# Options are the original whisper-backup's; see `backup.sh --help`.
# Until exec, a stop ends the script once its helper has exited (none outlives it). One
# command, parsed whole before the traps are set: bash 5.2 running a trap while it parses a
# command substitution mangles both ("unexpected EOF while looking for matching `)'") and
# goes on without $d. No command substitution follows.
{ trap 'exit 130' INT; trap 'exit 143' TERM; d=$(dirname "$(readlink -f "$0")"); }
w=$d/whisper-backup.sh; [ -e "$w" ] || w=$d/whisper-backup
WSP_WRAPPER_MODE=backup exec "$w" "$@"

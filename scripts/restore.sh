#!/usr/bin/env bash
# Restore (all or part of) a whisper tree: `restore.sh [options] BACKEND` (also: restore.sh list ...).
# Options are the original whisper-backup's; see `restore.sh --help`. Installed as whisper-restore,
# beside whisper-backup.
# Until exec, a stop ends the script once its helper has exited (none outlives it). One
# command, parsed whole before the traps are set: bash 5.2 running a trap while it parses a
# command substitution mangles both ("unexpected EOF while looking for matching `)'") and
# goes on without $d. No command substitution follows.
{ trap 'exit 130' INT; trap 'exit 143' TERM; d=$(dirname "$(readlink -f "$0")"); }
w=$d/whisper-backup.sh; [ -e "$w" ] || w=$d/whisper-backup
WSP_WRAPPER_MODE=restore exec "$w" "$@"

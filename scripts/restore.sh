#!/usr/bin/env bash
# Restore (all or part of) a whisper tree: `restore.sh [options] BACKEND` (also: restore.sh list ...).
# Options are the original whisper-backup's; see `restore.sh --help`. Installed as whisper-restore,
# beside whisper-backup.
trap 'exit 130' INT; trap 'exit 143' TERM   # until exec: no helper outlives a stop
d=$(dirname "$(readlink -f "$0")")
w=$d/whisper-backup.sh; [ -e "$w" ] || w=$d/whisper-backup
WSP_WRAPPER_MODE=restore exec "$w" "$@"

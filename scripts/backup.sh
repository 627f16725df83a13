#!/usr/bin/env bash
# Back up a whisper tree: `backup.sh [options] BACKEND` (also: backup.sh list|purge ...).
# Options are the original whisper-backup's; see `backup.sh --help`.
trap 'exit 130' INT; trap 'exit 143' TERM   # until exec: no helper outlives a stop
d=$(dirname "$(readlink -f "$0")")
w=$d/whisper-backup.sh; [ -e "$w" ] || w=$d/whisper-backup
WSP_WRAPPER_MODE=backup exec "$w" "$@"

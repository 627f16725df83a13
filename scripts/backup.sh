#!/usr/bin/env bash
# Back up a whisper tree: `backup.sh [options] BACKEND` (also: backup.sh list|purge ...).
# Options are the original whisper-backup's; see `backup.sh --help`.
WSP_WRAPPER_MODE=backup exec "$(dirname "$(readlink -f "$0")")/whisper-backup.sh" "$@"

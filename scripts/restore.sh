#!/usr/bin/env bash
# Restore (all or part of) a whisper tree: `restore.sh [options] BACKEND` (also: restore.sh list ...).
# Options are the original whisper-backup's; see `restore.sh --help`.
WSP_WRAPPER_MODE=restore exec "$(dirname "$(readlink -f "$0")")/whisper-backup.sh" "$@"

#!/usr/bin/env bash
# whisper-backup: the original Python tool's command line over the wsp-* pipeline.
#
#   whisper-backup.sh [options] backup|restore|purge|list BACKEND [REGION]
#   BACKEND: disk | file | s3 | gcs | swift | noop, or a store URL (file:///dir, s3://b/p, swift://c/p)
#
# backup.sh and restore.sh call this with their mode. See --help.
set -uo pipefail

here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
prog=whisper-backup

usage() {
    cat <<'USAGE'
Usage: whisper-backup [options] backup|restore|purge|list BACKEND [REGION]

BACKEND is disk (a directory named by -b), s3 (bucket -b, optional REGION), gcs (bucket -b,
HMAC keys as AWS_* variables), swift (container -b), noop (read and hash, store nothing), or a
store URL: file:///dir, s3://bucket/prefix, swift://container/prefix.

Options (as the original whisper-backup):
  -p, --prefix DIR        whisper root to back up or restore into (default /opt/graphite/storage/whisper)
  -f, --processes N       parallel processes per stage (default 4)
  -r, --retention N       versions to keep per metric (default 5; backup)
  -x, --purge DAYS        keep backups of metrics gone from disk for DAYS after a run first
                          sees them gone; -1 disables (default 45; backup, purge)
  -n, --noop              change nothing: dry run of every stage
  -b, --bucket NAME       bucket, container or (disk) directory (default graphite-backups)
  -m, --metrics GLOBS     metric globs, comma-separated (commas inside {a,b} belong to the glob) (default *)
  -c, --date DATE         restore the newest version at or before DATE (ISO 8601; default now; restore, list)
      --storage-path P    key prefix inside the bucket (default none)
  -d, --debug             progress of every stage and the commands run
  -q, --quiet             only warnings and errors on stderr
      --nolog             do not write the log file
      --logfile FILE      log file (default /var/log/whisper-backup.log)
      --syslog            log to syslog (facility local3) as well
      --nolock            do not take the lock file
      --lockfile FILE     lock file (default /var/lock/whisper-backup.lock)
      --locktimeout S     seconds to wait for the lock (default 90)
      --splay S           sleep a random 0..S seconds first (default 0)
      --nostamp           do not touch the success stamp file
      --stampfile FILE    success stamp file (default /var/tmp/whisper-backup.success)
Options of this implementation:
      --spool DIR         spool directory (default: a new one under $TMPDIR or /var/tmp, removed at exit)
      --spool-max BYTES   spool bound (default 1G); batch sizes are chosen so it cannot stall
      --endpoint URL      S3 endpoint for S3-compatible stores
      --state DIR         state of this store: unchanged files cost a stat() (default
                          /var/lib/whisper-backup/state/<store>, or ~/.local/state/... if not root)
      --full              read every file, ignoring the state
      --create-bucket     create the bucket/container/directory if missing
      --force             let a purge remove more than half of the store's metrics
  -h, --help              this help

Exit status: 0 all metrics succeeded, 1 some failed (see the log), 2 bad usage or configuration.
USAGE
}

die_usage() { echo "$prog: $*" >&2; echo "Try: $prog --help" >&2; exit 2; }

mode=${WSP_WRAPPER_MODE:-}
prefix=/opt/graphite/storage/whisper processes=4 retention=5 purge=45 noop=0
bucket=graphite-backups metrics='*' date= storage_path= debug=0 quiet=0 nolog=0
logfile=/var/log/whisper-backup.log syslog=0 nolock=0 lockfile=/var/lock/whisper-backup.lock
locktimeout=90 splay=0 nostamp=0 stampfile=/var/tmp/whisper-backup.success
spool= spool_max=1G endpoint= create=0 force=0 state= full=0
set_r=0 set_x=0 set_c=0 set_sp=0
positional=()

need() { [ $# -ge 2 ] || die_usage "option $1 needs a value"; }
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        -p|--prefix) need "$@"; prefix=$2; shift ;;
        -f|--processes) need "$@"; processes=$2; shift ;;
        -r|--retention) need "$@"; retention=$2; set_r=1; shift ;;
        -x|--purge) need "$@"; purge=$2; set_x=1; shift ;;
        -n|--noop) noop=1 ;;
        -b|--bucket) need "$@"; bucket=$2; shift ;;
        -m|--metrics) need "$@"; metrics=$2; shift ;;
        -c|--date) need "$@"; date=$2; set_c=1; shift ;;
        --storage-path) need "$@"; storage_path=$2; set_sp=1; shift ;;
        -d|--debug) debug=1 ;;
        -q|--quiet) quiet=1 ;;
        --nolog) nolog=1 ;;
        --logfile) need "$@"; logfile=$2; shift ;;
        --syslog) syslog=1 ;;
        --nolock) nolock=1 ;;
        --lockfile) need "$@"; lockfile=$2; shift ;;
        --locktimeout) need "$@"; locktimeout=$2; shift ;;
        --splay) need "$@"; splay=$2; shift ;;
        --nostamp) nostamp=1 ;;
        --stampfile) need "$@"; stampfile=$2; shift ;;
        --spool) need "$@"; spool=$2; shift ;;
        --spool-max) need "$@"; spool_max=$2; shift ;;
        --endpoint) need "$@"; endpoint=$2; shift ;;
        --state) need "$@"; state=$2; shift ;;
        --full) full=1 ;;
        --create-bucket|--create-container) create=1 ;;
        --force) force=1 ;;
        --prefix=*|--processes=*|--retention=*|--purge=*|--bucket=*|--metrics=*|--date=*|--storage-path=*|--logfile=*|--lockfile=*|--locktimeout=*|--splay=*|--stampfile=*|--spool=*|--spool-max=*|--endpoint=*|--state=*)
            opt=${1%%=*}; val=${1#*=}; shift; set -- "$opt" "$val" "$@"; continue ;;
        --) shift; positional+=("$@"); break ;;
        -*) die_usage "unknown option $1" ;;
        *) positional+=("$1") ;;
    esac
    shift
done

# Mode: the first word when it names one, else the wrapper's own (backup.sh, restore.sh).
if [ ${#positional[@]} -gt 0 ]; then
    case "${positional[0]}" in backup|restore|purge|list) mode=${positional[0]}; positional=("${positional[@]:1}") ;; esac
fi
[ -n "$mode" ] || die_usage "say what to do: backup, restore, purge or list"
[ ${#positional[@]} -ge 1 ] || die_usage "name a storage backend: disk, s3, gcs, swift, noop, or a store URL"
backend=${positional[0]}
region=${positional[1]:-}
[ ${#positional[@]} -le 2 ] || die_usage "unexpected arguments: ${positional[*]:2}"

int() { [[ "$2" =~ ^-?[0-9]+$ ]] || die_usage "$1 needs a whole number, not '$2'"; }
int --processes "$processes"; int --retention "$retention"; int --purge "$purge"
int --locktimeout "$locktimeout"; int --splay "$splay"
[ "$processes" -ge 1 ] || die_usage "--processes must be at least 1"
[ "$retention" -ge 1 ] || die_usage "--retention must be at least 1"
[ "$purge" -ge -1 ] || die_usage "--purge takes DAYS or -1 (disabled)"

# Options that mean nothing for this mode are errors, not silently ignored.
case "$mode" in
    backup) [ $set_c = 0 ] || die_usage "-c/--date is for restore and list" ;;
    restore|list) [ $set_r = 0 ] || die_usage "-r/--retention is for backup"
                  [ $set_x = 0 ] || die_usage "-x/--purge is for backup and purge" ;;
    purge) [ $set_c = 0 ] || die_usage "-c/--date is for restore and list"
           [ $set_r = 0 ] || die_usage "-r/--retention is for backup" ;;
esac

# The store URL, and the store options, from the backend.
store_opts=()
sp=${storage_path#/}
[ -z "$sp" ] || sp=${sp%/}/
case "$backend" in
    disk|file)
        [ -z "$region" ] || die_usage "a REGION makes no sense for the $backend backend"
        [ -z "$endpoint" ] || die_usage "--endpoint makes no sense for the $backend backend"
        dir=$(readlink -m "$bucket")
        store="file://$dir/$sp"
        if [ $create = 1 ] && [ $noop = 0 ]; then mkdir -p "$dir/$sp" || exit 2; fi ;;
    s3)
        store="s3://$bucket/$sp"
        [ -z "$region" ] || store_opts+=(--region "$region") ;;
    gcs)
        [ -z "$region" ] || die_usage "a REGION makes no sense for gcs (buckets carry their location)"
        store="s3://$bucket/$sp"
        [ -n "$endpoint" ] || endpoint=https://storage.googleapis.com
        store_opts+=(--region auto) ;;
    swift)
        [ -z "$region" ] || die_usage "a REGION for swift comes from OS_REGION_NAME, not an argument"
        [ -z "$endpoint" ] || die_usage "--endpoint makes no sense for swift (use ST_AUTH or OS_AUTH_URL)"
        store="swift://$bucket/$sp" ;;
    noop)
        [ -z "$region" ] || die_usage "a REGION makes no sense for noop"
        [ "$mode" = backup ] || die_usage "the noop backend only makes sense for backup"
        noop=1 ;;
    *://*)
        [ -z "$region" ] || die_usage "put the region in --region-less form: give the URL and set AWS_REGION"
        [ $set_sp = 0 ] || die_usage "--storage-path: put the prefix in the store URL"
        store=$backend ;;
    *) die_usage "unknown backend '$backend' (disk, s3, gcs, swift, noop, or a store URL)" ;;
esac
[ -z "$endpoint" ] || store_opts+=(--endpoint "$endpoint")
[ $create = 0 ] || [ "$backend" = disk ] || [ "$backend" = file ] || store_opts+=(--create-bucket)

# Tools: $WSP_BIN if set, else beside this script when installed, else the build tree, else PATH.
for d in ${WSP_BIN:+"$WSP_BIN"} "$here" "$here/../.build/release" "$here/../.build/debug"; do
    if [ -x "$d/wsp-find" ]; then PATH="$d:$PATH"; break; fi
done
command -v wsp-find >/dev/null || { echo "$prog: wsp-find not found (build with: swift build -c release)" >&2; exit 2; }

# Logging: stderr of every stage, timestamped, to the terminal (unless quiet), the log file
# and syslog.
if [ $nolog = 0 ]; then
    mkdir -p "$(dirname "$logfile")" 2>/dev/null
    touch "$logfile" 2>/dev/null || { echo "$prog: cannot write log file $logfile (use --logfile or --nolog)" >&2; exit 2; }
fi
logline() {
    local line ts
    while IFS= read -r line; do
        printf -v ts '%(%Y-%m-%dT%H:%M:%S%z)T' -1
        if [ $quiet = 0 ] || [[ "$line" == *": "*": "* ]] || [[ "$line" == *error* ]] || [[ "$line" == *WARN* ]]; then
            printf '%s %s\n' "$ts" "$line" >&2
        fi
        [ $nolog = 1 ] || printf '%s %s\n' "$ts" "$line" >> "$logfile"
        [ $syslog = 0 ] || logger -p local3.info -t "$prog" -- "$line" 2>/dev/null
    done
}
exec 3>&2
exec 2> >(logline 2>&3)
log() { echo "$prog: $*" >&2; }
debug() { [ $debug = 0 ] || echo "$prog: $*" >&2; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/whisper-backup.XXXXXX") || exit 2
own_spool=0
if [ -z "$spool" ]; then spool="$work/spool"; own_spool=1; fi
children_cleanup() {
    trap - INT TERM EXIT
    # Stop every stage (they finish or undo their current record and remove temp files).
    pkill -TERM -P $$ 2>/dev/null
    wait 2>/dev/null
    rm -rf "$work"
}
trap 'children_cleanup; exit 130' INT
trap 'children_cleanup; exit 143' TERM
trap 'rm -rf "$work"' EXIT

if [ $splay -gt 0 ] && [ "$mode" != list ]; then
    s=$((RANDOM % (splay + 1)))
    debug "sleeping $s s (splay $splay)"
    sleep "$s"
fi

if [ $nolock = 0 ] && [ "$mode" != list ]; then
    exec 9>>"$lockfile" || { log "cannot open lock file $lockfile (use --lockfile or --nolock)"; exit 2; }
    if ! flock -w "$locktimeout" 9; then
        log "lock $lockfile is held by another run; gave up after $locktimeout s"
        exit 1
    fi
fi

# Globs: split -m on commas outside braces.
globs=()
split_globs() {
    local s=$1 cur= depth=0 i c
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case "$c" in
            '{') depth=$((depth + 1)); cur+=$c ;;
            '}') depth=$((depth - 1)); cur+=$c ;;
            ',') if [ $depth -eq 0 ]; then globs+=("$cur"); cur=; else cur+=$c; fi ;;
            *) cur+=$c ;;
        esac
    done
    [ -z "$cur" ] || globs+=("$cur")
}
split_globs "$metrics"
[ ${#globs[@]} -gt 0 ] || globs=('*')

dry=(); [ $noop = 0 ] || dry=(--dry-run)
# The state of this store (see README: incremental runs).
if [ -z "$state" ] && [ -n "${store:-}" ]; then
    name=$(printf '%s' "$store" | tr -c 'A-Za-z0-9._-' '_')
    if [ -w /var/lib ] || { [ -d /var/lib/whisper-backup ] && [ -w /var/lib/whisper-backup ]; }; then
        state=/var/lib/whisper-backup/state/$name
    else
        state=${XDG_STATE_HOME:-$HOME/.local/state}/whisper-backup/$name
    fi
fi
snap_state=(); push_state=()
if [ -n "$state" ]; then
    snap_state=(--state "$state"); push_state=(--state "$state")
    [ $full = 0 ] || snap_state+=(--full)
fi
prog_opt=(); [ $debug = 0 ] || prog_opt=(--progress)
[ $quiet = 0 ] || prog_opt=(--quiet)
spool_bytes=$(awk -v s="$spool_max" 'BEGIN { n = s + 0; u = toupper(substr(s, length(s))); if (u == "B") { s = substr(s, 1, length(s) - 1); u = toupper(substr(s, length(s))) }
    m = (u == "K") ? 1024 : (u == "M") ? 1048576 : (u == "G") ? 1073741824 : (u == "T") ? 1099511627776 : 1; printf "%d", n * m }')
[ "${spool_bytes:-0}" -gt 0 ] || die_usage "--spool-max $spool_max: not a byte count"

# xargs -n K holds K records before it starts a process, so the spool must hold K of the
# largest files or the pipeline could stall: choose K from the bound (gzip output of whisper
# data is never more than 1% larger than its input, plus headers).
batch_for() {
    local largest=$1 k
    [ "$largest" -gt 0 ] || largest=1
    k=$(( spool_bytes / (largest + largest / 100 + 4096) - 1 ))
    [ $k -le 200 ] || k=200
    if [ $k -lt 1 ]; then
        log "--spool-max $spool_max cannot hold two of the largest files ($largest bytes); raise it"
        exit 2
    fi
    echo $k
}

started=$(date +%s.%N)
elapsed() { awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
rc=0

case "$mode" in
backup)
    [ -d "$prefix" ] || { log "prefix $prefix is not a directory"; exit 2; }
    wsp-find --root "$prefix" "${globs[@]}" > "$work/files" 2>&2 || rc=1
    seen=$(wc -l < "$work/files")
    largest=$(cut -f2 "$work/files" | tr '\n' '\0' | xargs -0 -r stat -c %s 2>/dev/null | sort -n | tail -1)
    k=$(batch_for "${largest:-0}") || exit $?
    debug "$seen files; batches of $k; spool $spool (max $spool_max)"
    if [ "$backend" = noop ]; then
        xargs -d '\n' -r -P "$processes" -n "$k" wsp-snap "${prog_opt[@]}" --spool "$spool" --spool-max "$spool_bytes" < "$work/files" \
            > "$work/snaps"
        st=("${PIPESTATUS[@]}")
        [ "${st[0]}" = 0 ] || rc=1
        awk -F'\t' '{ print $5 }' "$work/snaps" | xargs -d '\n' -r rm -f
        awk -F'\t' -v seen="$seen" -v el="$(elapsed)" -v p="$prog" '{ n++; b += $4 } END { printf "%s: noop backup: %d files seen, %d read, %d bytes read, %s s\n", p, seen, n, b, el }' "$work/snaps" >&2
    else
        xargs -d '\n' -r -P "$processes" -n "$k" wsp-snap "${prog_opt[@]}" "${snap_state[@]}" --spool "$spool" --spool-max "$spool_bytes" < "$work/files" \
            | tee "$work/snaps" \
            | xargs -d '\n' -r -P "$processes" -n "$k" wsp-push "${prog_opt[@]}" "${dry[@]}" "${push_state[@]}" "${store_opts[@]}" "$store" \
            > "$work/pushed"
        st=("${PIPESTATUS[@]}")
        for s in "${st[@]}"; do [ "$s" = 0 ] || rc=1; done
        [ "${st[2]}" != 2 ] && [ "${st[2]}" != 123 ] || { grep -q . "$work/pushed" || { log "push failed: see above"; exit 2; }; }
        # Retention for the metrics that got a new version.
        awk -F'\t' '$6 == "stored" || $6 == "would-store" { print $1 }' "$work/pushed" > "$work/changed"
        if [ -s "$work/changed" ]; then
            wsp-prune "${prog_opt[@]}" "${dry[@]}" "${store_opts[@]}" --keep "$retention" "$store" < "$work/changed" > "$work/pruned" || rc=1
        else
            : > "$work/pruned"
        fi
        if [ "$purge" -ge 0 ]; then
            fopt=(); [ $force = 0 ] || fopt=(--force)
            cut -f1 "$work/files" | wsp-prune "${prog_opt[@]}" "${dry[@]}" "${store_opts[@]}" "${fopt[@]}" --gone-after "$purge" "$store" >> "$work/pruned" || rc=1
        fi
        failed=$(( seen - $(wc -l < "$work/pushed") ))
        awk -F'\t' -v seen="$seen" -v failed="$failed" -v el="$(elapsed)" -v p="$prog" -v pr="$(wc -l < "$work/pruned")" \
            -v rd="$(awk -F'\t' '$5 != "-" { b += $4 } END { printf "%d", b }' "$work/snaps")" '
            { s[$6]++; if ($6 == "stored" || $6 == "would-store") w += $5 }
            END { printf "%s: backup: %d files seen, %d stored, %d unchanged, %d failed, %d versions removed, %d bytes read, %d bytes written, %s s\n",
                  p, seen, s["stored"] + s["would-store"], s["unchanged"], failed, pr, rd, w, el }' "$work/pushed" >&2
    fi ;;
restore)
    bopt=(); [ -z "$date" ] || bopt=(--before "$date")
    wsp-pull list "${prog_opt[@]}" "${bopt[@]}" "${store_opts[@]}" "$store" "${globs[@]}" > "$work/versions" || rc=1
    largest=$(awk -F'\t' '$5 > m { m = $5 } END { printf "%d", m }' "$work/versions")
    k=$(batch_for "${largest:-0}") || exit $?
    mopt=(); [ $noop = 0 ] || mopt=(--dry-run)
    mkdir -p "$prefix" 2>/dev/null
    xargs -d '\n' -r -P "$processes" -n "$k" wsp-pull get "${prog_opt[@]}" "${store_opts[@]}" --spool "$spool" --spool-max "$spool_bytes" "$store" < "$work/versions" \
        | xargs -d '\n' -r -P "$processes" -n "$k" wsp-merge "${prog_opt[@]}" "${mopt[@]}" --root "$prefix" > "$work/merged"
    st=("${PIPESTATUS[@]}")
    for s in "${st[@]}"; do [ "$s" = 0 ] || rc=1; done
    awk -F'\t' -v n="$(wc -l < "$work/versions")" -v el="$(elapsed)" -v p="$prog" '
        { s[$2]++; if ($2 == "created") b += $4 }
        END { printf "%s: restore: %d versions selected, %d created, %d filled, %d unchanged, %d exist, %d failed, %d bytes written, %s s\n",
              p, n, s["created"] + s["would-create"], s["filled"] + s["would-fill"], s["unchanged"], s["exists"], n - NR + s["failed"], b, el }' "$work/merged" >&2 ;;
purge)
    [ "$purge" -ge 0 ] || { log "purge is disabled (-x -1)"; exit 0; }
    fopt=(); [ $force = 0 ] || fopt=(--force)
    wsp-find --root "$prefix" '*' | cut -f1 \
        | wsp-prune "${prog_opt[@]}" "${dry[@]}" "${store_opts[@]}" "${fopt[@]}" --gone-after "$purge" "$store" > "$work/pruned"
    st=("${PIPESTATUS[@]}")
    for s in "${st[@]}"; do [ "$s" = 0 ] || rc=1; done
    log "purge: $(wc -l < "$work/pruned") versions removed, $(elapsed) s" ;;
list)
    bopt=(--all); [ -z "$date" ] || bopt+=(--before "$date")
    # The original's listing: each metric, then its versions.
    wsp-pull list "${bopt[@]}" "${store_opts[@]}" "$store" "${globs[@]}" \
        | awk -F'\t' '$1 != last { print $1; last = $1 } { print "\tDate: " $2 "\t" $3; n++ }
                      END { print ""; if (n) printf "%d compressed whisper databases found.\n", n; else print "No backups found." }'
    st=("${PIPESTATUS[@]}")
    [ "${st[0]}" = 0 ] || rc=${st[0]} ;;
esac

if [ $rc = 0 ] && [ $nostamp = 0 ] && [ $noop = 0 ] && [ "$mode" != list ]; then
    touch "$stampfile" 2>/dev/null || log "cannot touch stamp file $stampfile"
fi
exit $rc

#!/usr/bin/env bash
# whisper-backup: the original Python tool's command line over the wsp-* pipeline.
#
#   whisper-backup.sh [options] backup|restore|purge|list BACKEND [REGION]
#   BACKEND: disk | file | s3 | gcs | swift | noop, or a store URL (file:///dir, s3://b/p, swift://c/p)
#
# backup.sh and restore.sh call this with their mode. See --help.
set -uo pipefail
# Until the run's own handlers are set below, a stop is noted and acted on there.
stop=
trap 'stop=130' INT
trap 'stop=143' TERM

here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
prog=whisper-backup

# Tools: $WSP_BIN if set, else beside this script when installed, else the build tree, else PATH.
for d in ${WSP_BIN:+"$WSP_BIN"} "$here" "$here/../.build/release" "$here/../.build/debug"; do
    if [ -x "$d/wsp-find" ]; then PATH="$d:$PATH"; break; fi
done

usage() {
    cat <<'USAGE'
Usage: whisper-backup [options] backup|restore|purge|list BACKEND [REGION]
       whisper-restore [options] BACKEND [REGION]

Backs up a Graphite whisper tree to a store, restores all or part of it, purges the backups
of metrics gone from disk, or lists what is stored, with the original Python whisper-backup's
command line. It runs the wsp-* tools: wsp-find, wsp-snap and wsp-push (then wsp-prune) for a
backup; wsp-pull list, wsp-pull get and wsp-merge for a restore. whisper-restore is
whisper-backup restore.

BACKEND is disk (a directory named by -b), s3 (bucket -b, optional REGION), gcs (bucket -b,
HMAC keys as AWS_* variables), swift (container -b), noop (read and hash, store nothing), or a
store URL: file:///dir, s3://bucket/prefix, swift://container/prefix. Credentials come from
the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE; ST_AUTH, ST_USER,
ST_KEY or OS_* for swift), never from the command line.

Options (as the original whisper-backup):
  -p, --prefix DIR        whisper root to back up or restore into (default /opt/graphite/storage/whisper)
  -f, --processes N       parallel processes per stage (default 4)
  -r, --retention N       versions to keep per metric (default 5; backup)
  -x, --purge DAYS        keep backups of metrics gone from disk for DAYS after a run first
                          sees them gone; -1 disables (default 45; backup, purge)
  -n, --noop              change nothing (store, state, target, stamp): dry run of every stage
  -b, --bucket NAME       bucket, container or (disk) directory (default graphite-backups)
  -m, --metrics GLOBS     metric globs, comma-separated (commas inside {a,b} belong to the glob); the
                          run stores, prunes and purges only these metrics (default *)
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
      --splay S           sleep a random 0..S seconds first, so many nodes do not start at once (default 0)
      --nostamp           do not touch the success stamp file
      --stampfile FILE    success stamp file, touched when every metric succeeded (default /var/tmp/whisper-backup.success)

Monitoring (backup, restore and purge runs, failed ones included):
      --metrics-file FILE  write the run's figures to FILE as a node_exporter textfile, atomically
                          (e.g. /var/lib/prometheus/node-exporter/whisper-backup.prom)
      --carbon HOST:PORT  send the run's figures to carbon's plaintext port
      --carbon-prefix P   metric path prefix for --carbon (default whisper-backup.HOSTNAME)
      --progress          files done / total, bytes, rate and ETA on stderr (default: when stderr is a terminal)
      --no-progress       no progress display
      --print-pipeline    print the wsp-* pipeline this run would be, as a shell command, and exit
                          (K: records per process, chosen at run time from --spool-max and the
                          largest file)

Options of this implementation:
      --spool DIR         spool directory (default: a new one under $TMPDIR or /var/tmp, removed at exit)
      --spool-max BYTES   spool bound (default 1G); batch sizes are chosen so it cannot stall
      --endpoint URL      S3 endpoint for S3-compatible stores
      --state DIR         state of this store: unchanged files cost a stat() (default
                          $WSP_STATE_HOME/<store>, else /var/lib/whisper-backup/state/<store>,
                          or ~/.local/state/whisper-backup/<store> if not root)
      --full              read every file, ignoring the state
      --create-bucket     create the bucket/container/directory if missing
      --force             let a purge remove more than half of the store's metrics
  -h, --help              this help
      --version           the version

Figures (of every backup, restore and purge run: node_exporter samples whisper_backup_NAME{mode="MODE"}, carbon paths PREFIX.MODE.CNAME):
  last_run_timestamp_seconds      when the run ended (CNAME last_run)
  last_success_timestamp_seconds  when the last run in which every metric succeeded ended (last_success)
  last_run_success                1 if every metric succeeded, else 0 (success)
  last_run_exit_code              the exit status (exit_code)
  last_run_duration_seconds       seconds the run took, from taking the lock (duration)
  last_run_failures               metrics that failed (failures)
  last_run_versions_removed       versions removed by retention or purge (versions_removed)
  last_run_files{status=S}        files by outcome: seen, stored, unchanged, failed (backup); seen,
                                  created, filled, unchanged, exist, failed (restore) (files.S)
  last_run_bytes{direction=D}     bytes read from disk and written to the store or disk (bytes.read, bytes.written)

Examples:
  whisper-backup -p /opt/graphite/storage/whisper -b /var/backups/graphite --create-bucket backup disk
  whisper-backup -b graphite-backups --storage-path node1 -r 7 -x 45 backup s3 eu-west-1
  whisper-restore -p /opt/graphite/storage/whisper -b /var/backups/graphite -m 'servers.web*' -c 2026-11-01T00:00:00+00:00 disk
  whisper-backup -b /var/backups/graphite list disk
  whisper-backup --splay 900 -q --metrics-file /var/lib/prometheus/node-exporter/whisper-backup.prom backup disk

Files:
  /etc/default/whisper-backup      WHISPER_BACKUP_ARGS and credentials for whisper-backup.service
  /var/log/whisper-backup.log      log (--logfile)
  /var/lock/whisper-backup.lock    lock held during backup, restore and purge (--lockfile)
  /var/tmp/whisper-backup.success  stamp touched after a run where every metric succeeded (--stampfile)

Exit status:
  0  every metric succeeded
  1  some metrics failed, the store could not be reached, or the lock was held by another run (see the log)
  2  bad usage or configuration; nothing was done
  130/143  stopped by SIGINT/SIGTERM

See also:
  wsp-find(1), wsp-snap(1), wsp-push(1), wsp-pull(1), wsp-merge(1), wsp-prune(1)
USAGE
}

die_usage() { echo "$prog: $*" >&2; echo "Try: $prog --help" >&2; exit 2; }

mode=${WSP_WRAPPER_MODE:-}
prefix=/opt/graphite/storage/whisper processes=4 retention=5 purge=45 noop=0
bucket=graphite-backups metrics='*' date= storage_path= debug=0 quiet=0 nolog=0
logfile=/var/log/whisper-backup.log syslog=0 nolock=0 lockfile=/var/lock/whisper-backup.lock
locktimeout=90 splay=0 nostamp=0 stampfile=/var/tmp/whisper-backup.success
spool= spool_max=1G endpoint= create=0 force=0 state= full=0
metrics_file= carbon= carbon_prefix= progress= print_pipeline=0
set_r=0 set_x=0 set_c=0 set_sp=0
positional=()

need() { [ $# -ge 2 ] || die_usage "option $1 needs a value"; }
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --version) v=$(wsp-find --version 2>/dev/null) || v=unknown; echo "whisper-backup $v"; exit 0 ;;
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
        --metrics-file) need "$@"; metrics_file=$2; shift ;;
        --carbon) need "$@"; carbon=$2; shift ;;
        --carbon-prefix) need "$@"; carbon_prefix=$2; shift ;;
        --progress) progress=1 ;;
        --print-pipeline) print_pipeline=1; nolock=1; nolog=1; splay=0 ;;
        --no-progress) progress=0 ;;
        --prefix=*|--processes=*|--retention=*|--purge=*|--bucket=*|--metrics=*|--date=*|--storage-path=*|--logfile=*|--lockfile=*|--locktimeout=*|--splay=*|--stampfile=*|--spool=*|--spool-max=*|--endpoint=*|--state=*|--metrics-file=*|--carbon=*|--carbon-prefix=*)
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

# Monitoring: where the run's figures go.
if [ -n "$metrics_file$carbon" ] && [ "$mode" = list ]; then
    die_usage "--metrics-file and --carbon report backup, restore and purge runs, not list"
fi
if [ -n "$metrics_file" ]; then
    [ -d "$(dirname "$metrics_file")" ] && [ -w "$(dirname "$metrics_file")" ] \
        || die_usage "--metrics-file $metrics_file: directory $(dirname "$metrics_file") is missing or not writable (node_exporter's textfile directory is usually /var/lib/prometheus/node-exporter)"
    [[ "$metrics_file" == *.prom ]] || die_usage "--metrics-file $metrics_file: node_exporter reads only files named *.prom"
fi
if [ -n "$carbon" ]; then
    [[ "$carbon" =~ ^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]+)$ ]] \
        || die_usage "--carbon $carbon: give HOST:PORT, e.g. graphite.example.net:2003 (carbon's plaintext port)"
    carbon_host=${BASH_REMATCH[1]#[}; carbon_host=${carbon_host%]}; carbon_port=${BASH_REMATCH[2]}
fi
if [ -z "$carbon_prefix" ]; then
    h=$(uname -n); h=${h%%.*}; carbon_prefix="whisper-backup.${h:-localhost}"
fi
[[ "$carbon_prefix" =~ ^[A-Za-z0-9_:.-]+$ ]] && [[ "$carbon_prefix" != *..* ]] && [[ "$carbon_prefix" != .* ]] \
    || die_usage "--carbon-prefix $carbon_prefix: use letters, digits, _ - : and single dots"
carbon_prefix=${carbon_prefix%.}

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
# --storage-path: a directory under a disk bucket; a key prefix in an object store, where a
# leading "/" is part of the key, as the original made it (s3://b//x/ lists keys /x/...).
sp=${storage_path#/}
[ -z "$sp" ] || sp=${sp%/}/
osp=$storage_path
[ -z "$osp" ] || osp=${osp%/}/
case "$backend" in
    disk|file)
        [ -z "$region" ] || die_usage "a REGION makes no sense for the $backend backend"
        [ -z "$endpoint" ] || die_usage "--endpoint makes no sense for the $backend backend"
        dir=$(readlink -m "$bucket")
        store="file://$dir/$sp"
        if [ $create = 1 ] && [ $noop = 0 ]; then mkdir -p "$dir/$sp" || exit 2; fi ;;
    s3)
        store="s3://$bucket/$osp"
        [ -z "$region" ] || store_opts+=(--region "$region") ;;
    gcs)
        [ -z "$region" ] || die_usage "a REGION makes no sense for gcs (buckets carry their location)"
        store="s3://$bucket/$osp"
        [ -n "$endpoint" ] || endpoint=https://storage.googleapis.com
        store_opts+=(--region auto) ;;
    swift)
        [ -z "$region" ] || die_usage "a REGION for swift comes from OS_REGION_NAME, not an argument"
        [ -z "$endpoint" ] || die_usage "--endpoint makes no sense for swift (use ST_AUTH or OS_AUTH_URL)"
        store="swift://$bucket/$osp" ;;
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
[ $create = 0 ] || store_opts+=(--create-bucket)

command -v wsp-find >/dev/null || { echo "$prog: wsp-find not found (build with: swift build -c release)" >&2; exit 2; }

# Logging: stderr of every stage, timestamped, to the terminal (unless quiet), the log file
# and syslog. Every line reads `TIME TOOL: [METRIC: ]MESSAGE`.
if [ $nolog = 0 ]; then
    mkdir -p "$(dirname "$logfile")" 2>/dev/null
    touch "$logfile" 2>/dev/null || { echo "$prog: cannot write log file $logfile (use --logfile FILE or --nolog)" >&2; exit 2; }
fi
# Progress: when asked, or when stderr is a terminal (and not --quiet or --debug, whose
# per-stage progress would mix with it).
tty_err=0; [ -t 2 ] && tty_err=1
if [ -z "$progress" ]; then
    progress=0; [ $tty_err = 1 ] && [ $quiet = 0 ] && [ $debug = 0 ] && progress=1
fi
[ "$mode" != list ] && [ "$mode" != purge ] || progress=0
clear=; [ $progress = 1 ] && [ $tty_err = 1 ] && clear=$'\r\e[K'
logonly=$'\x1e'   # a line that starts with it goes to the log file and syslog only
logline() {
    local line ts pri show
    while IFS= read -r line; do
        printf -v ts '%(%Y-%m-%dT%H:%M:%S%z)T' -1
        show=1; if [[ "$line" == "$logonly"* ]]; then line=${line#"$logonly"}; show=0; fi
        if [ $show = 1 ] && { [ $quiet = 0 ] || [[ "$line" == *": "*": "* ]] || [[ "$line" == *error* ]] || [[ "$line" == *WARN* ]]; }; then
            printf '%s%s %s\n' "$clear" "$ts" "$line" >&2
        fi
        [ $nolog = 1 ] || printf '%s %s\n' "$ts" "$line" >> "$logfile"
        if [ $syslog = 1 ]; then
            pri=info; [[ "$line" == wsp-*": "*": "* ]] && pri=err
            logger -p "local3.$pri" -t "$prog" -- "$line" 2>/dev/null
        fi
    done
}
exec 3>&2
exec 2> >(logline 2>&3)
logger_pid=$!
log() { echo "$prog: $*" >&2; }
debug() { [ $debug = 0 ] || echo "$prog: $*" >&2; }
# The one-line summary of a run: always in the log; on stderr too unless -q and all went well
# (so cron mails only the runs that need a look).
summary() {
    if [ $quiet = 1 ] && [ "$rc" = 0 ] && [ "$files_failed" = 0 ]; then echo "$logonly$prog: $*" >&2; else log "$*"; fi
}

# The run's figures, reported at exit (whatever the exit) to --metrics-file and --carbon.
started=$EPOCHREALTIME
elapsed() { awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
files_seen=0 files_stored=0 files_unchanged=0 files_created=0 files_filled=0 files_exist=0
files_failed=0 bytes_read=0 bytes_written=0 versions_removed=0
report() {
    local rc=$1 end last_success= ok=0 dur
    [ -n "$metrics_file$carbon" ] || return 0
    end=${EPOCHREALTIME%.*}
    dur=$(elapsed)
    # Only a success sets the success time; the textfile keeps the previous one otherwise
    # (and Graphite its last point).
    if [ "$rc" = 0 ]; then ok=1; last_success=$end; fi
    local figures
    figures=$(printf '%s\n' \
        "last_run_timestamp_seconds $end" \
        "last_success_timestamp_seconds $last_success" \
        "last_run_success $ok" "last_run_exit_code $rc" "last_run_duration_seconds $dur" \
        "last_run_failures $files_failed" "last_run_versions_removed $versions_removed" \
        "bytes read $bytes_read" "bytes written $bytes_written")
    case "$mode" in
        backup) figures+=$'\n'$(printf 'files %s\n' "seen $files_seen" "stored $files_stored" "unchanged $files_unchanged" "failed $files_failed") ;;
        restore) figures+=$'\n'$(printf 'files %s\n' "seen $files_seen" "created $files_created" "filled $files_filled" "unchanged $files_unchanged" "exist $files_exist" "failed $files_failed") ;;
    esac
    [ -z "$metrics_file" ] || write_textfile "$figures" || log "cannot write metrics file $metrics_file"
    [ -z "$carbon" ] || send_carbon "$figures" "$end"
}
# node_exporter textfile: this mode's samples replace its old ones, other modes' are kept,
# and a failed run keeps the last success time; written to a temp file and renamed.
write_textfile() {
    local tmp="$metrics_file.$$.tmp"
    {
        [ ! -f "$metrics_file" ] || grep -v '^#' "$metrics_file"
        printf '%s\n' "$1" | awk -v m="$mode" '
            $1 == "files" { printf "whisper_backup_last_run_files{mode=\"%s\",status=\"%s\"} %s\n", m, $2, $3; next }
            $1 == "bytes" { printf "whisper_backup_last_run_bytes{mode=\"%s\",direction=\"%s\"} %s\n", m, $2, $3; next }
            $2 != "" { printf "whisper_backup_%s{mode=\"%s\"} %s\n", $1, m, $2 }'
    } | awk -v m="$mode" '
        BEGIN {
            h["last_run_timestamp_seconds"] = "When the last run ended (Unix time)."
            h["last_success_timestamp_seconds"] = "When the last run in which every metric succeeded ended (Unix time)."
            h["last_run_success"] = "1 if every metric of the last run succeeded, else 0."
            h["last_run_exit_code"] = "Exit status of the last run (0 ok, 1 some metrics failed, 2 configuration)."
            h["last_run_duration_seconds"] = "Duration of the last run."
            h["last_run_failures"] = "Metrics that failed in the last run."
            h["last_run_versions_removed"] = "Stored versions removed by retention or purge in the last run."
            h["last_run_files"] = "Files of the last run by outcome."
            h["last_run_bytes"] = "Bytes read from disk and written to the store (backup) or to disk (restore) in the last run."
            split("last_run_timestamp_seconds last_success_timestamp_seconds last_run_success last_run_exit_code last_run_duration_seconds last_run_failures last_run_versions_removed last_run_files last_run_bytes", order, " ")
        }
        {
            name = $1; sub(/\{.*/, "", name); sub(/^whisper_backup_/, "", name)
            if (!(name in h)) next
            key = $1
            if (!(key in seen)) { seen[key] = 1; keys[name] = keys[name] key "\n" }
            # New samples come after the old ones: the last value of a key wins.
            val[key] = $2
        }
        END {
            for (i = 1; i in order; i++) {
                n = order[i]; if (keys[n] == "") continue
                printf "# HELP whisper_backup_%s %s\n# TYPE whisper_backup_%s gauge\n", n, h[n], n
                c = split(keys[n], ks, "\n")
                for (j = 1; j < c; j++) printf "%s %s\n", ks[j], val[ks[j]]
            }
        }' > "$tmp" && chmod 644 "$tmp" && mv -f "$tmp" "$metrics_file"
    local rc=$?
    rm -f "$tmp"
    return $rc
}
# carbon plaintext protocol: `PATH VALUE TIMESTAMP` lines over TCP, within 10 s. A failure
# is logged with its reason; it does not change the run's exit status.
send_carbon() {
    local err rc
    err=$({ printf '%s\n' "$1" | awk -v p="$carbon_prefix.$mode" -v t="$2" '
        $1 == "files" || $1 == "bytes" { printf "%s.%s.%s %s %s\n", p, $1, $2, $3, t; next }
        $2 != "" { n = $1; sub(/^last_run_timestamp_seconds$/, "last_run", n); sub(/^last_success_timestamp_seconds$/, "last_success", n)
                   sub(/^last_run_/, "", n); sub(/_seconds$/, "", n); printf "%s.%s %s %s\n", p, n, $2, t }' \
        | timeout 10 bash -c 'exec 4<>"/dev/tcp/$1/$2" && cat >&4' "$prog" "$carbon_host" "$carbon_port"; } 2>&1 >/dev/null)
    rc=$?
    [ $rc != 0 ] || return 0
    [ $rc != 124 ] || err="no answer within 10 s"
    err=${err##*$'\n'}; err=${err##*: }
    log "cannot send figures to carbon at $carbon: ${err:-exit status $rc}"
    return 0
}

work=$(mktemp -d "${TMPDIR:-/var/tmp}/whisper-backup.XXXXXX") || exit 2
own_spool=0
if [ -z "$spool" ]; then spool="$work/spool"; own_spool=1; fi
# SIGINT/SIGTERM: stop every stage. Each stage runs as a job in a process group of its own
# (set -m below), so one kill reaches every process in it, including one an xargs starts
# meanwhile. The tools finish or undo their current record, remove their temp files and
# exit; xargs and tee just die. Whatever still runs after 30 s is killed. The work directory
# goes only once the group is empty.
job=
children_cleanup() {
    trap - INT TERM EXIT
    local i
    if [ -n "$job" ]; then
        kill -TERM -- "-$job" 2>/dev/null
        for ((i = 0; i < 300; i++)); do
            kill -0 -- "-$job" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$job" 2>/dev/null
        while kill -0 -- "-$job" 2>/dev/null; do sleep 0.1; done
    fi
    [ -z "${progress_pid:-}" ] || { kill "$progress_pid" 2>/dev/null; wait "$progress_pid" 2>/dev/null; }
    rm -rf "$work"
}
# The logger writes what is left, then ends with the run.
close_log() {
    exec 2>&3
    [ -z "${logger_pid:-}" ] || wait "$logger_pid" 2>/dev/null
}
on_exit() {
    local rc=$?
    trap - EXIT
    [ -z "${progress_pid:-}" ] || { kill "$progress_pid" 2>/dev/null; wait "$progress_pid" 2>/dev/null; }
    [ "$mode" = list ] || [ $print_pipeline = 1 ] || report "$rc"
    rm -rf "$work"
    close_log
    exit "$rc"
}
trap 'children_cleanup; report 130; close_log; exit 130' INT
trap 'children_cleanup; report 143; close_log; exit 143' TERM
[ -z "$stop" ] || { rm -rf "$work"; close_log; exit "$stop"; }
trap on_exit EXIT

# Runs a command or pipeline function in the background and waits for it: bash runs an
# INT/TERM trap only between foreground commands, but it interrupts `wait` at once. The
# explicit <&0 keeps the caller's stdin (an async command would get /dev/null).
set -m
bg() {
    "$@" <&0 &
    job=$!
    wait $job
}
# bg for a pipeline function that ends with `pipestatus`: sets st=() to its PIPESTATUS.
bgp() {
    bg "$@"
    read -r -a st < "$work/status"
}
pipestatus() { echo "${PIPESTATUS[*]}" > "$work/status"; }

if [ $splay -gt 0 ] && [ "$mode" != list ]; then
    s=$((RANDOM % (splay + 1)))
    debug "sleeping $s s (splay $splay)"
    bg sleep "$s"
fi

if [ $nolock = 0 ] && [ "$mode" != list ]; then
    exec 9>>"$lockfile" || { log "cannot open lock file $lockfile (use --lockfile FILE or --nolock)"; exit 2; }
    if ! bg flock -w "$locktimeout" 9; then
        log "lock $lockfile is held by another run; gave up after $locktimeout s (raise --locktimeout, or see who holds it: fuser -v $lockfile)"
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
    if [ -n "${WSP_STATE_HOME:-}" ]; then
        state=$WSP_STATE_HOME/$name
    elif [ -w /var/lib ] || { [ -d /var/lib/whisper-backup ] && [ -w /var/lib/whisper-backup ]; }; then
        state=/var/lib/whisper-backup/state/$name
    else
        state=${XDG_STATE_HOME:-$HOME/.local/state}/whisper-backup/$name
    fi
fi
snap_state=(); push_state=()
if [ -n "$state" ]; then
    snap_state=(--state "$state"); push_state=(--state "$state")
    [ $full = 0 ] || { snap_state+=(--full); push_state+=(--full); }
    # A dry run neither creates nor touches a state (its per-run check against the store
    # rewrites journals): it reads every file.
    [ $noop = 0 ] || { snap_state=(); push_state=(); }
    # One check of the state against the store per run, shared by the run's processes.
    export WSP_RUN_ID=$$.$EPOCHREALTIME.$RANDOM
fi
prog_opt=(); [ $debug = 0 ] || prog_opt=(--progress)
[ $quiet = 0 ] || prog_opt=(--quiet)
spool_bytes=$(awk -v s="$spool_max" 'BEGIN { n = s + 0; u = toupper(substr(s, length(s))); if (u == "B") { s = substr(s, 1, length(s) - 1); u = toupper(substr(s, length(s))) }
    m = (u == "K") ? 1024 : (u == "M") ? 1048576 : (u == "G") ? 1073741824 : (u == "T") ? 1099511627776 : 1; printf "%d", n * m }')
[ "${spool_bytes:-0}" -gt 0 ] || die_usage "--spool-max $spool_max: not a byte count"

# --print-pipeline: the run as a shell pipeline an operator can read or run by hand.
if [ $print_pipeline = 1 ]; then
    q() {   # shell words, quoted only where needed
        local a out=
        for a in "$@"; do
            if [[ "$a" =~ ^[A-Za-z0-9_./:=@%+-]+$ ]]; then out+=" $a"; else out+=" '${a//\'/\'\\\'\'}'"; fi
        done
        printf '%s' "${out# }"
    }
    x="xargs -d '\n' -r -P $processes -s 1000000 -n K"
    sd=$spool; [ $own_spool = 0 ] || sd=${TMPDIR:-/var/tmp}/wsp-spool
    sp=$(q --spool "$sd" --spool-max "$spool_max")
    st=$(q "${store_opts[@]}" "$store"); g=$(q "${globs[@]}")
    pg=(); for g1 in "${globs[@]}"; do [ "$g1" = '*' ] || pg+=(--metrics "$g1"); done
    purge_cmd="wsp-find --root $(q "$prefix") $g | cut -f1 | wsp-prune $(q "${dry[@]}" --gone-after "$purge" --root "$prefix" "${pg[@]}") $st"
    case "$mode" in
    backup)
        if [ "$backend" = noop ]; then
            echo "wsp-find --root $(q "$prefix") $g | $x wsp-snap $sp | cut -f5 | xargs -d '\n' -r rm -f"
        else
            echo "wsp-find --root $(q "$prefix") $g \\"
            echo "  | $x wsp-snap $(q "${snap_state[@]}") $sp \\"
            echo "  | $x wsp-push $(q "${dry[@]}" "${push_state[@]}") $st \\"
            echo "  | awk -F'\t' '\$6 == \"stored\" || \$6 == \"would-store\"' | cut -f1 | wsp-prune $(q "${dry[@]}" --keep "$retention") $st"
            [ "$purge" -lt 0 ] || echo "$purge_cmd"
        fi ;;
    restore)
        bopt=(); [ -z "$date" ] || bopt=(--before "$date")
        echo "wsp-pull list $(q "${bopt[@]}") $st $g \\"
        echo "  | $x wsp-pull get $(q "${store_opts[@]}") $sp $(q "$store") \\"
        echo "  | $x wsp-merge $(q "${dry[@]}" --root "$prefix")" ;;
    purge) [ "$purge" -lt 0 ] && echo "# purge is disabled (-x -1)" || echo "$purge_cmd" ;;
    list)
        bopt=(--all); [ -z "$date" ] || bopt+=(--before "$date")
        echo "wsp-pull list $(q "${bopt[@]}") $st $g" ;;
    esac
    exit 0
fi

# xargs -n K holds K records before it starts a process, so the spool must hold K of the
# largest files or the pipeline could stall: choose K from the bound (gzip output of whisper
# data is never more than 1% larger than its input, plus headers).
# Within that, as many records per process as gives each of the P processes about four
# batches (a process start costs a few milliseconds; a tree of 100k files makes them add up),
# between 200 and 4000 (xargs gets -s 1000000: by default it passes at most 128 KiB of records).
batch_for() {
    local largest=$1 count=$2 k cap
    [ "$largest" -gt 0 ] || largest=1
    cap=$(( count / (4 * processes) ))
    [ $cap -ge 200 ] || cap=200
    [ $cap -le 4000 ] || cap=4000
    k=$(( spool_bytes / (largest + largest / 100 + 4096) - 1 ))
    [ $k -le $cap ] || k=$cap
    if [ $k -lt 1 ]; then
        log "--spool-max $spool_max cannot hold two of the largest files ($largest bytes); raise it"
        exit 2
    fi
    echo $k
}

# A stage after wsp-find or wsp-pull list: K records per process, P processes at once.
batched() { xargs -d '\n' -r -P "$processes" -s 1000000 -n "$k" "$@"; }

# Progress: records done (lines of DONE) of TOTAL, bytes (the sum of column COL of BYTES),
# rate and ETA; redrawn every second on a terminal, a line every 10 s otherwise.
progress_pid=
progress_loop() {
    local total=$1 donef=$2 bytesf=$3 col=$4 what=$5 t0=$EPOCHREALTIME n m b=0 prev=0 line every=1
    [ $tty_err = 1 ] || every=10
    while kill -0 $$ 2>/dev/null; do
        n=$(wc -l < "$donef" 2>/dev/null) || n=0
        m=$(wc -l < "$bytesf" 2>/dev/null) || m=0
        if [ "$m" -gt "$prev" ]; then
            # Only whole lines: a line is counted once its newline is there.
            b=$(( b + $(tail -n "+$((prev + 1))" "$bytesf" | head -n "$((m - prev))" | awk -F'\t' -v c="$col" '$5 != "-" { s += $c } END { printf "%d", s }') ))
            prev=$m
        fi
        line=$(awk -v n="$n" -v t="$total" -v b="$b" -v a="$t0" -v now="$EPOCHREALTIME" -v w="$what" -v p="$prog: $mode" '
            function hb(x,  u) { u = 0; while (x >= 1024 && u < 4) { x /= 1024; u++ }
                                 return u ? sprintf("%.1f %s", x, substr("KiBMiBGiBTiB", 3 * u - 2, 3)) : sprintf("%d B", x) }
            function hd(s) { s = int(s + 0.5); return s >= 3600 ? sprintf("%dh%02dm", s / 3600, (s % 3600) / 60) : s >= 60 ? sprintf("%dm%02ds", s / 60, s % 60) : s "s" }
            BEGIN { el = now - a; r = el > 0 ? n / el : 0
                    printf "%s: %d/%d %s (%d%%), %s, %.1f files/s, %s/s, ETA %s", p, n, t, w, t ? 100 * n / t : 100,
                           hb(b), r, hb(el > 0 ? b / el : 0), (r > 0 && t > n) ? hd((t - n) / r) : (n >= t ? "0s" : "-") }')
        if [ $tty_err = 1 ]; then printf '\r%s\e[K' "$line" >&3; else echo "$line" >&2; fi
        sleep "$every"
    done
}
progress_start() { [ $progress = 0 ] || { progress_loop "$@" & progress_pid=$!; }; }
progress_stop() {
    [ -n "$progress_pid" ] || return 0
    kill "$progress_pid" 2>/dev/null; wait "$progress_pid" 2>/dev/null; progress_pid=
    [ $tty_err = 0 ] || printf '\r\e[K' >&3
}

started=$EPOCHREALTIME
rc=0

case "$mode" in
backup)
    [ -d "$prefix" ] || { log "prefix $prefix is not a directory"; exit 2; }
    found=0
    bg wsp-find --root "$prefix" "${globs[@]}" > "$work/files" || { rc=1; found=1; }
    seen=$(wc -l < "$work/files"); files_seen=$seen
    largest=$(cut -f2 "$work/files" | tr '\n' '\0' | xargs -0 -r stat -c %s 2>/dev/null | sort -n | tail -1)
    k=$(batch_for "${largest:-0}" "$seen") || exit $?
    debug "$seen files; batches of $k; spool $spool (max $spool_max)"
    if [ "$backend" = noop ]; then
        bg batched wsp-snap "${prog_opt[@]}" --spool "$spool" --spool-max "$spool_bytes" < "$work/files" \
            > "$work/snaps" || rc=1
        awk -F'\t' '{ print $5 }' "$work/snaps" | xargs -d '\n' -r rm -f
        read -r n bytes_read < <(awk -F'\t' '{ n++; b += $4 } END { printf "%d %d\n", n, b }' "$work/snaps")
        files_failed=$(( seen - n ))
        summary "noop backup: $seen files seen, $n read, $files_failed failed, $bytes_read bytes read, $(elapsed) s"
    else
        # A store that cannot be reached stops the run here, before anything is read
        # (exit 2: configuration, e.g. credentials; 1: the store is down).
        if [ $noop = 0 ]; then
            bg wsp-push "${prog_opt[@]}" "${push_state[@]}" "${store_opts[@]}" "$store" < /dev/null || exit $?
        fi
        : > "$work/snaps"; : > "$work/pushed"
        progress_start "$seen" "$work/pushed" "$work/snaps" 4 files
        snap_push() {
            batched wsp-snap "${prog_opt[@]}" "${snap_state[@]}" --spool "$spool" --spool-max "$spool_bytes" < "$work/files" \
                | tee "$work/snaps" \
                | batched wsp-push "${prog_opt[@]}" "${dry[@]}" "${push_state[@]}" "${store_opts[@]}" "$store" \
                > "$work/pushed"
            pipestatus
        }
        bgp snap_push
        progress_stop
        for s in "${st[@]}"; do [ "$s" = 0 ] || rc=1; done
        # Retention for the metrics that got a new version.
        awk -F'\t' '$6 == "stored" || $6 == "would-store" { print $1 }' "$work/pushed" > "$work/changed"
        if [ -s "$work/changed" ]; then
            bg wsp-prune "${prog_opt[@]}" "${dry[@]}" "${store_opts[@]}" --keep "$retention" "$store" < "$work/changed" > "$work/pruned" || rc=1
        else
            : > "$work/pruned"
        fi
        if [ "$purge" -ge 0 ] && [ $found != 0 ]; then
            # The purge needs the complete listing: a walk that failed would make metrics look gone.
            log "purge skipped: the listing of $prefix is incomplete (see above)"
        elif [ "$purge" -ge 0 ]; then
            fopt=(--root "$prefix"); [ $force = 0 ] || fopt+=(--force)
            # Only the metrics of this run's globs: the others are not in its listing.
            for g in "${globs[@]}"; do [ "$g" = '*' ] || fopt+=(--metrics "$g"); done
            cut -f1 "$work/files" > "$work/names"
            sopt=(); [ -z "$state" ] || sopt=(--state "$state")
            bg wsp-prune "${prog_opt[@]}" "${dry[@]}" "${store_opts[@]}" "${fopt[@]}" "${sopt[@]}" --gone-after "$purge" "$store" < "$work/names" >> "$work/pruned" || rc=1
        fi
        files_failed=$(( seen - $(wc -l < "$work/pushed") ))
        versions_removed=$(wc -l < "$work/pruned")
        bytes_read=$(awk -F'\t' '$5 != "-" { b += $4 } END { printf "%d", b }' "$work/snaps")
        read -r files_stored files_unchanged bytes_written < <(awk -F'\t' '
            { s[$6]++; if ($6 == "stored" || $6 == "would-store") w += $5 }
            END { printf "%d %d %d\n", s["stored"] + s["would-store"], s["unchanged"], w }' "$work/pushed")
        if [ $noop = 0 ]; then
            summary "backup: $seen files seen, $files_stored stored, $files_unchanged unchanged, $files_failed failed, $versions_removed versions removed, $bytes_read bytes read, $bytes_written bytes written, $(elapsed) s"
        else
            summary "backup: $seen files seen, would store $files_stored, $files_unchanged unchanged, $files_failed failed, would remove $versions_removed versions, $bytes_read bytes read, would write $bytes_written bytes, $(elapsed) s (dry run: nothing changed)"
        fi
    fi ;;
restore)
    bopt=(); [ -z "$date" ] || bopt=(--before "$date")
    # Exit 2 (configuration: the store cannot be opened) ends the run here, nothing done.
    bg wsp-pull list "${prog_opt[@]}" "${bopt[@]}" "${store_opts[@]}" "$store" "${globs[@]}" > "$work/versions" \
        || { s=$?; [ $s != 2 ] || exit 2; rc=1; }
    largest=$(awk -F'\t' '$5 > m { m = $5 } END { printf "%d", m }' "$work/versions")
    files_seen=$(wc -l < "$work/versions")
    k=$(batch_for "${largest:-0}" "$files_seen") || exit $?
    mopt=(); [ $noop = 0 ] || mopt=(--dry-run)
    [ $noop = 1 ] || mkdir -p "$prefix" 2>/dev/null
    : > "$work/merged"
    progress_start "$files_seen" "$work/merged" "$work/versions" 5 versions
    get_merge() {
        batched wsp-pull get "${prog_opt[@]}" "${store_opts[@]}" --spool "$spool" --spool-max "$spool_bytes" "$store" < "$work/versions" \
            | batched wsp-merge "${prog_opt[@]}" "${mopt[@]}" --root "$prefix" > "$work/merged"
        pipestatus
    }
    bgp get_merge
    progress_stop
    for s in "${st[@]}"; do [ "$s" = 0 ] || rc=1; done
    read -r files_created files_filled files_unchanged files_exist files_failed bytes_written < <(awk -F'\t' -v n="$files_seen" '
        { s[$2]++; if ($2 == "created") b += $4 }
        END { printf "%d %d %d %d %d %d\n", s["created"] + s["would-create"], s["filled"] + s["would-fill"], s["unchanged"], s["exists"], n - NR + s["failed"], b }' "$work/merged")
    if [ $noop = 0 ]; then
        summary "restore: $files_seen versions selected, $files_created created, $files_filled filled, $files_unchanged unchanged, $files_exist exist, $files_failed failed, $bytes_written bytes written, $(elapsed) s"
    else
        summary "restore: $files_seen versions selected, would create $files_created, would fill $files_filled, $files_unchanged unchanged, $files_exist exist, $files_failed failed, $(elapsed) s (dry run: nothing changed)"
    fi ;;
purge)
    [ "$purge" -ge 0 ] || { log "purge is disabled (-x -1)"; exit 0; }
    fopt=(--root "$prefix"); [ $force = 0 ] || fopt+=(--force)
    for g in "${globs[@]}"; do [ "$g" = '*' ] || fopt+=(--metrics "$g"); done
    # The purge needs the complete listing: a walk that failed would make metrics look gone.
    bg wsp-find --root "$prefix" "${globs[@]}" > "$work/files" || { log "purge skipped: the listing of $prefix is incomplete (see above)"; exit 1; }
    cut -f1 "$work/files" > "$work/names"
    sopt=(); [ -z "$state" ] || sopt=(--state "$state")
    bg wsp-prune "${prog_opt[@]}" "${dry[@]}" "${store_opts[@]}" "${fopt[@]}" "${sopt[@]}" --gone-after "$purge" "$store" < "$work/names" > "$work/pruned" \
        || { s=$?; [ $s != 2 ] || exit 2; rc=1; }
    versions_removed=$(wc -l < "$work/pruned")
    if [ $noop = 0 ]; then summary "purge: $versions_removed versions removed, $(elapsed) s"
    else summary "purge: would remove $versions_removed versions, $(elapsed) s (dry run: nothing changed)"; fi ;;
list)
    bopt=(--all); [ -z "$date" ] || bopt+=(--before "$date")
    # The original's listing: each metric, then its versions.
    list_versions() {
        wsp-pull list "${bopt[@]}" "${store_opts[@]}" "$store" "${globs[@]}" \
            | awk -F'\t' '$1 != last { print $1; last = $1 } { print "\tDate: " $2 "\t" $3; n++ }
                          END { print ""; if (n) printf "%d compressed whisper databases found.\n", n; else print "No backups found." }'
        pipestatus
    }
    bgp list_versions
    [ "${st[0]}" = 0 ] || rc=${st[0]} ;;
esac

if [ $rc = 0 ] && [ $nostamp = 0 ] && [ $noop = 0 ] && [ "$mode" != list ]; then
    touch "$stampfile" 2>/dev/null || log "cannot touch stamp file $stampfile"
fi
exit $rc

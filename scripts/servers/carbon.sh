#!/usr/bin/env bash
# A real carbon-cache (Debian graphite-carbon) writing whisper files under
# RUNDIR, so tests can back up files that a live writer is locking.
#
#   carbon.sh start RUNDIR   install if needed, start, wait for the line port
#   carbon.sh stop  RUNDIR   stop what start started (safe to repeat)
#   carbon.sh env   RUNDIR   print `export` lines for the tests to eval
#
# Env: CARBON_PORT (plaintext line receiver, default 2003).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CARBON_PORT="${CARBON_PORT:-2003}"

[ $# -eq 2 ] || usage
cmd="$1"
RUNDIR="$(realpath -m "$2")"
CONF_DIR="$RUNDIR/conf"
STORAGE="$RUNDIR/storage"
WHISPER="$STORAGE/whisper"
RUN="$RUNDIR/run"
LOG="$RUNDIR/log"

write_conf() {
    # carbon reads storage-schemas.conf from the directory of carbon.conf, so
    # nothing comes from /etc/carbon. Pickle receiver off (port 0), cache query
    # on a kernel-chosen loopback port, self-metrics off so the whisper tree
    # only holds what the tests send.
    cat >"$CONF_DIR/carbon.conf" <<EOF
[cache]
STORAGE_DIR = $STORAGE
LOCAL_DATA_DIR = $WHISPER
WHISPER_DIR = $WHISPER
WHITELISTS_DIR = $STORAGE/lists
LOG_DIR = $LOG
PID_DIR = $RUN
ENABLE_LOGROTATION = False
USER =
DATABASE = whisper
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = 1000000
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = $CARBON_PORT
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = 0
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = 0
USE_FLOW_CONTROL = True
WHISPER_AUTOFLUSH = False
WHISPER_SPARSE_CREATE = False
WHISPER_FALLOCATE_CREATE = True
WHISPER_LOCK_WRITES = True
CARBON_METRIC_INTERVAL = 0
LOG_UPDATES = False
LOG_CREATES = True
LOG_CACHE_HITS = False
LOG_CACHE_QUEUE_SORTS = False
LOG_LISTENER_CONN_SUCCESS = False
ENABLE_TAGS = False
EOF
    cat >"$CONF_DIR/storage-schemas.conf" <<EOF
[default]
pattern = .*
retentions = 10s:6h,1m:7d,10m:5y
EOF
    cat >"$CONF_DIR/storage-aggregation.conf" <<EOF
[default]
pattern = .*
xFilesFactor = 0
aggregationMethod = average
EOF
}

do_stop() {
    stop_pidfile "$RUN/carbon.pid" "$CONF_DIR/carbon.conf"
    rm -f "$RUN/carbon-cache-a.pid"
}

do_start() {
    # The package's init script stays disabled (CARBON_CACHE_ENABLED=false in
    # /etc/default/graphite-carbon) and apt_ensure blocks service starts. On a
    # systemd machine, also make sure the packaged unit is not left running
    # on 2003 or enabled for the next boot.
    apt_ensure graphite-carbon
    if [[ " ${APT_INSTALLED[*]} " == *" graphite-carbon "* ]] && [ -d /run/systemd/system ]; then
        as_root systemctl disable --now carbon-cache.service >/dev/null 2>&1 || true
    fi
    do_stop
    mkdir -p "$CONF_DIR" "$WHISPER" "$STORAGE/lists" "$RUN" "$LOG"
    port_free "$CARBON_PORT"
    write_conf
    spawn "$RUN/carbon.pid" "$LOG/carbon.out" \
        carbon-cache --config="$CONF_DIR/carbon.conf" --pidfile="$RUN/carbon-cache-a.pid" \
        --logdir="$LOG" --nodaemon start
    wait_until 300 "$RUN/carbon.pid" -- tcp_open "$CARBON_PORT" && return 0
    show_logs "$LOG/carbon.out"
    do_stop
    [ -n "$WAIT_DIED" ] && die "carbon-cache exited during start"
    die "carbon-cache did not listen on 127.0.0.1:$CARBON_PORT within 30 s"
}

do_env() {
    emit WSP_TEST_CARBON "127.0.0.1:$CARBON_PORT"
    emit WSP_TEST_CARBON_WHISPER_DIR "$WHISPER"
}

case "$cmd" in
    start) do_start ;;
    stop) do_stop ;;
    env) do_env ;;
    *) usage ;;
esac

#!/usr/bin/env bash
# Ceph radosgw on loopback (one monitor, one in-memory OSD): a production S3
# and Swift gateway for the integration tests.
#
#   radosgw.sh start RUNDIR   install if needed, build a fresh cluster, wait for S3
#   radosgw.sh stop  RUNDIR   stop what start started (safe to repeat)
#   radosgw.sh env   RUNDIR   print `export` lines for the tests to eval
#
# Env: RGW_PORT (default 7480), RGW_MON_PORT (default 6789),
# RGW_MEMSTORE_MB (OSD capacity, held in RAM as used; default 1024).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RGW_PORT="${RGW_PORT:-7480}"
RGW_MON_PORT="${RGW_MON_PORT:-6789}"
RGW_MEMSTORE_MB="${RGW_MEMSTORE_MB:-1024}"
# Fixed test credentials; nothing here is secret.
RGW_UID=wsptest
RGW_ACCESS_KEY=WSPTESTACCESSKEY0001
RGW_SECRET_KEY=wsptestsecretkey0000000000000000000000001
RGW_SWIFT_USER="$RGW_UID:swift"
RGW_SWIFT_KEY=wsptestswiftkey0001
RGW_REGION=us-east-1

[ $# -eq 2 ] || usage
cmd="$1"
RUNDIR="$(realpath -m "$2")"
CONF="$RUNDIR/ceph.conf"
RUN="$RUNDIR/run"
LOG="$RUNDIR/log"
DAEMONS="radosgw osd mon"

ceph_() { ceph -c "$CONF" --connect-timeout 10 "$@"; }

write_conf() {
    local fsid="$1"
    # Every path points into RUNDIR so nothing lands in /etc/ceph, /var/lib/ceph
    # or /var/log/ceph. Auth is off inside this throwaway cluster.
    cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$RGW_MON_PORT
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr2 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
keyring = $RUNDIR/keyring
run dir = $RUN
crash dir = $RUNDIR/crash
log file = $LOG/\$name.log
log to syslog = false
err to syslog = false
mon cluster log file = $LOG/cluster.log
mon cluster log to syslog = false
mon data = $RUNDIR/mon/\$name
osd data = $RUNDIR/osd/\$id
rgw data = $RUNDIR/rgw
# One OSD: single-replica pools, few PGs (rgw makes ~8 pools), no autoscaler
# (it lives in the mgr, which this cluster does not run).
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon max pg per osd = 1000
mon allow pool delete = true
# Each pool rgw creates costs one map epoch; the default 1 s proposal
# interval made setup ~10 s slower.
paxos propose interval = 0.05
paxos min wait = 0.01

[osd]
osd objectstore = memstore
memstore device bytes = $((RGW_MEMSTORE_MB * 1024 * 1024))
osd op num shards = 1
osd op num threads per shard = 2
# With auth off, the OSD can send its start-up crush commands before it has
# the monmap and they fail with "wrong fsid", killing it. The OSD is placed
# in the crush map by this script instead.
osd crush update on start = false
osd class update on start = false

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw thread pool size = 64
rgw swift auth entry = auth
EOF
}

do_stop() {
    stop_pidfile "$RUN/radosgw.pid" "$CONF"
    stop_pidfile "$RUN/osd.pid" "$CONF"
    stop_pidfile "$RUN/mon.pid" "$CONF"
}

fail() {
    show_logs "$LOG/mon.a.log" "$LOG/osd.0.log" "$LOG/client.rgw.a.log" \
        "$LOG/mon.out" "$LOG/osd.out" "$LOG/radosgw.out" "$LOG/setup.log"
    do_stop
    die "$*"
}

# Wait up to $1 tenths of a second for the command to succeed, failing early
# if one of the started daemons died.
wait_for() {
    local n="$1" d pidfiles=(); shift
    for d in $DAEMONS; do pidfiles+=("$RUN/$d.pid"); done
    wait_until "$n" "${pidfiles[@]}" -- "$@"
}

s3_ok() {
    # rgw wants x-amz-content-sha256, which curl does not add by itself;
    # this is the hash of the empty body.
    curl -fsS -o /dev/null --aws-sigv4 "aws:amz:$RGW_REGION:s3" \
        -H 'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' \
        --user "$RGW_ACCESS_KEY:$RGW_SECRET_KEY" "http://127.0.0.1:$RGW_PORT/"
}

swift_ok() {
    curl -fsS -o /dev/null -H "X-Auth-User: $RGW_SWIFT_USER" -H "X-Auth-Key: $RGW_SWIFT_KEY" \
        "http://127.0.0.1:$RGW_PORT/auth/1.0"
}

osd_up() { ceph_ osd stat 2>/dev/null | grep -q ' 1 up'; }

do_start() {
    apt_ensure ceph-mon ceph-osd radosgw ceph-common curl
    do_stop
    # Always a fresh cluster: a restarted memstore OSD comes back empty and
    # leaves radosgw hanging on its pools.
    rm -rf "$RUNDIR/mon" "$RUNDIR/osd" "$RUNDIR/rgw" "$RUNDIR/crash" "$RUN" "$LOG" \
        "$RUNDIR/keyring" "$RUNDIR/monmap" "$CONF"
    mkdir -p "$RUNDIR/mon/mon.a" "$RUNDIR/osd/0" "$RUNDIR/rgw" "$RUNDIR/crash" "$RUN" "$LOG"
    port_free "$RGW_MON_PORT"
    port_free "$RGW_PORT"

    local fsid osd_uuid i
    fsid="$(cat /proc/sys/kernel/random/uuid)"
    osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
    write_conf "$fsid"

    local setup="$LOG/setup.log"
    {
        ceph-authtool --create-keyring "$RUNDIR/keyring" --gen-key -n mon. --cap mon 'allow *' &&
        monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$RGW_MON_PORT]" "$RUNDIR/monmap" &&
        ceph-mon -c "$CONF" --mkfs -i a --monmap "$RUNDIR/monmap" --keyring "$RUNDIR/keyring"
    } >>"$setup" 2>&1 || fail "monitor setup failed"
    spawn "$RUN/mon.pid" "$LOG/mon.out" ceph-mon -c "$CONF" -i a -f
    wait_for 300 ceph_ mon stat || fail "monitor did not come up"

    { ceph_ osd new "$osd_uuid" && ceph_ osd crush add osd.0 1 root=default host=localhost; } \
        >>"$setup" 2>&1 || fail "adding the OSD failed"
    # Right after a fresh monitor, ceph-osd can exit with "wrong fsid" (seen
    # at start-up before the crush settings above); a retry a second later
    # works, so both steps retry.
    for i in $(seq 1 10); do
        if ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$setup" 2>&1; then break; fi
        [ "$i" -eq 10 ] && fail "ceph-osd --mkfs failed"
        sleep 1
    done
    for i in 1 2 3; do
        spawn "$RUN/osd.pid" "$LOG/osd.out" ceph-osd -c "$CONF" -i 0 -f
        wait_for 300 osd_up && break
        stop_pidfile "$RUN/osd.pid" "$CONF"
        [ "$i" -eq 3 ] && fail "OSD did not come up"
        sleep 1
    done

    # Creating the user also creates rgw's pools, so it waits for the OSD.
    {
        radosgw-admin -c "$CONF" user create --uid="$RGW_UID" --display-name="WSP test" \
            --access-key="$RGW_ACCESS_KEY" --secret-key="$RGW_SECRET_KEY" &&
        radosgw-admin -c "$CONF" subuser create --uid="$RGW_UID" --subuser="$RGW_SWIFT_USER" \
            --access=full --key-type=swift --secret-key="$RGW_SWIFT_KEY"
    } >>"$setup" 2>&1 || fail "radosgw-admin user setup failed"

    spawn "$RUN/radosgw.pid" "$LOG/radosgw.out" radosgw -c "$CONF" -n client.rgw.a -f
    wait_for 600 s3_ok || fail "radosgw S3 did not answer within 60 s"
    wait_for 100 swift_ok || fail "radosgw Swift auth did not answer"
}

do_env() {
    local base="http://127.0.0.1:$RGW_PORT"
    emit WSP_TEST_RGW_ENDPOINT "$base"
    emit WSP_TEST_RGW_ACCESS_KEY_ID "$RGW_ACCESS_KEY"
    emit WSP_TEST_RGW_SECRET_ACCESS_KEY "$RGW_SECRET_KEY"
    emit WSP_TEST_RGW_REGION "$RGW_REGION"
    emit WSP_TEST_RGW_ST_AUTH "$base/auth/1.0"
    emit WSP_TEST_RGW_ST_USER "$RGW_SWIFT_USER"
    emit WSP_TEST_RGW_ST_KEY "$RGW_SWIFT_KEY"
    # For tests that change rgw settings at run time (e.g. Swift token lifetime).
    emit WSP_TEST_RGW_CEPH_CONF "$CONF"
}

case "$cmd" in
    start) do_start ;;
    stop) do_stop ;;
    env) do_env ;;
    *) usage ;;
esac

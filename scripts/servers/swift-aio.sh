#!/usr/bin/env bash
# OpenStack Swift all-in-one on loopback: Swift v1 API (tempauth) and S3 API
# (s3api) on one proxy port, for the integration tests.
#
#   swift-aio.sh start RUNDIR   install if needed, start, wait until healthy
#   swift-aio.sh stop  RUNDIR   stop what start started (safe to repeat)
#   swift-aio.sh env   RUNDIR   print `export` lines for the tests to eval
#
# Env: SWIFT_PORT (proxy, default 8080), SWIFT_TOKEN_LIFE (tempauth token
# lifetime in seconds, default 86400), WSP_CACHE (venv location),
# SWIFT_PYTHON (interpreter for the venv, default /usr/bin/python3).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SWIFT_VERSION=2.38.3
SWIFTCLIENT_VERSION=4.11.0
SWIFT_PORT="${SWIFT_PORT:-8080}"
SWIFT_TOKEN_LIFE="${SWIFT_TOKEN_LIFE:-86400}"
# Debian's interpreter, not a pyenv shim: a shim resolves per directory
# (.python-version) and could silently change the venv's Python.
SWIFT_PYTHON="${SWIFT_PYTHON:-/usr/bin/python3}"
VENV="$WSP_CACHE/swift-venv"

[ $# -eq 2 ] || usage
cmd="$1"
RUNDIR="$(realpath -m "$2")"
ETC="$RUNDIR/etc"
RUN="$RUNDIR/run"
LOG="$RUNDIR/log"
SERVERS="account container object proxy"

# Swift and swiftclient go in a private virtualenv: installed globally, the
# `swift` client shim would shadow the Swift compiler on PATH.
ensure_venv() {
    venv_ensure swift "$SWIFT_PYTHON" "$VENV" swift-proxy-server \
        "swift==$SWIFT_VERSION" "python-swiftclient==$SWIFTCLIENT_VERSION"
}

write_configs() {
    local acct_port="$1" cont_port="$2" obj_port="$3" mc_port="$4" kind
    cat >"$ETC/swift.conf" <<EOF
[swift-hash]
swift_hash_path_prefix = wsp-test
swift_hash_path_suffix = wsp-test

[storage-policy:0]
name = Policy-0
default = yes
EOF
    # Every config names swift_dir, so nothing is read from /etc/swift.
    for kind in account container object; do
        local port
        case "$kind" in
            account) port="$acct_port" ;;
            container) port="$cont_port" ;;
            object) port="$obj_port" ;;
        esac
        cat >"$ETC/$kind-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
workers = 0
user = $(id -un)
swift_dir = $ETC
devices = $RUNDIR/node
mount_check = false
disable_fallocate = true
log_name = $kind-server

[pipeline:main]
pipeline = $kind-server

[app:$kind-server]
use = egg:swift#$kind
EOF
    done
    # Legacy X-Versions-Location needs this on the container server.
    echo "allow_versions = true" >>"$ETC/container-server.conf"

    cat >"$ETC/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $SWIFT_PORT
workers = 0
user = $(id -un)
swift_dir = $ETC
log_name = proxy-server

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl s3api tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:tempauth]
use = egg:swift#tempauth
token_life = $SWIFT_TOKEN_LIFE
user_admin_admin = admin .admin .reseller_admin
user_test_tester = testing .admin
user_test2_tester2 = testing2 .admin

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:tempurl]
use = egg:swift#tempurl

[filter:versioned_writes]
use = egg:swift#versioned_writes
allow_versioned_writes = true

[filter:symlink]
use = egg:swift#symlink
EOF
    swift_proxy_filters "$mc_port" >>"$ETC/proxy-server.conf"
}

# Rings record the backend ports, so they are built once per RUNDIR (with
# ports the kernel says are free) and kept: a restart keeps the stored data.
ensure_rings() {
    if [ -f "$ETC/ports" ] && [ -f "$ETC/account.ring.gz" ] \
        && [ -f "$ETC/container.ring.gz" ] && [ -f "$ETC/object.ring.gz" ]; then
        return 0
    fi
    local a c o
    a="$(free_port)"; c="$(free_port)"; o="$(free_port)"
    while [ "$c" = "$a" ]; do c="$(free_port)"; done
    while [ "$o" = "$a" ] || [ "$o" = "$c" ]; do o="$(free_port)"; done
    rm -f "$ETC"/*.builder "$ETC"/*.ring.gz
    rm -rf "$ETC/backups"
    # Same as `swift-ring-builder X.builder create 8 1 1; add
    # r1z1-127.0.0.1:PORT/sdb1 1; rebalance` for each ring, in one process
    # instead of nine (~1 s instead of ~3 s).
    "$VENV/bin/python" - "$ETC" "$a" "$c" "$o" >>"$LOG/rings.log" 2>&1 <<'PY' || { show_logs "$LOG/rings.log"; die "ring build failed"; }
import sys
from swift.common.ring import RingBuilder
etc, ports = sys.argv[1], sys.argv[2:]
for kind, port in zip(("account", "container", "object"), ports):
    b = RingBuilder(8, 1, 1)
    b.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
               "device": "sdb1", "weight": 1, "meta": ""})
    b.rebalance()
    b.save("%s/%s.builder" % (etc, kind))
    b.get_ring().save("%s/%s.ring.gz" % (etc, kind))
PY
    echo "$a $c $o" >"$ETC/ports"
}

do_stop() {
    local s
    for s in proxy object container account; do
        stop_pidfile "$RUN/$s.pid" "$ETC/$s-server.conf"
    done
    stop_pidfile "$RUN/memcached.pid" memcached
}

do_start() {
    apt_ensure memcached curl python3-venv
    ensure_venv
    do_stop
    mkdir -p "$ETC" "$RUN" "$LOG" "$RUNDIR/node/sdb1"
    WSP_PY="$VENV/bin/python"
    export WSP_PY
    ensure_rings
    local a c o mc s
    read -r a c o <"$ETC/ports"
    mc="$(free_port)"
    for s in "$SWIFT_PORT" "$a" "$c" "$o"; do port_free "$s"; done
    write_configs "$a" "$c" "$o" "$mc"

    # memcached holds tempauth tokens and s3api's auth cache.
    spawn "$RUN/memcached.pid" "$LOG/memcached.log" \
        memcached -l 127.0.0.1 -p "$mc" -U 0 -m 32 -u "$(id -un)"
    for s in account container object proxy; do
        spawn "$RUN/$s.pid" "$LOG/$s.log" "$VENV/bin/swift-$s-server" "$ETC/$s-server.conf" -v
    done

    # Healthy means: every backend accepts connections, the proxy answers
    # /healthcheck and tempauth issues a token (which exercises memcached).
    healthy() {
        tcp_open "$a" && tcp_open "$c" && tcp_open "$o" &&
            http_ok "http://127.0.0.1:$SWIFT_PORT/healthcheck" &&
            http_ok -H 'X-Auth-User: test:tester' -H 'X-Auth-Key: testing' "http://127.0.0.1:$SWIFT_PORT/auth/v1.0"
    }
    local pidfiles=()
    for s in memcached $SERVERS; do pidfiles+=("$RUN/$s.pid"); done
    wait_until 300 "${pidfiles[@]}" -- healthy && return 0
    if [ -n "$WAIT_DIED" ]; then
        s="$(basename "$WAIT_DIED" .pid)"
        show_logs "$LOG/$s.log"; do_stop; die "$s exited during start"
    fi
    show_logs "$LOG/memcached.log" "$LOG/account.log" "$LOG/container.log" "$LOG/object.log" "$LOG/proxy.log"
    do_stop
    die "swift did not become healthy within 30 s"
}

do_env() {
    local base="http://127.0.0.1:$SWIFT_PORT"
    emit ST_AUTH "$base/auth/v1.0"
    emit ST_USER test:tester
    emit ST_KEY testing
    emit WSP_TEST_SWIFT_AUTH "$base/auth/v1.0"
    emit WSP_TEST_SWIFT_USER test:tester
    emit WSP_TEST_SWIFT_KEY testing
    # A second account, for isolation and permission tests.
    emit WSP_TEST_SWIFT_USER2 test2:tester2
    emit WSP_TEST_SWIFT_KEY2 testing2
    emit WSP_TEST_SWIFT_TOKEN_LIFE "$SWIFT_TOKEN_LIFE"
    emit WSP_TEST_S3_ENDPOINT "$base"
    emit AWS_ACCESS_KEY_ID test:tester
    emit AWS_SECRET_ACCESS_KEY testing
    emit AWS_REGION us-east-1
}

case "$cmd" in
    start) do_start ;;
    stop) do_stop ;;
    env) do_env ;;
    *) usage ;;
esac

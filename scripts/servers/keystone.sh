#!/usr/bin/env bash
# OpenStack Keystone (identity v3, SQLite, fernet tokens) on loopback, and a
# Swift proxy that accepts its tokens (authtoken + keystoneauth), for the
# Keystone integration tests of the Swift store.
#
#   keystone.sh start RUNDIR   install if needed, start Keystone, create the test
#                              domain, project, user and object-store endpoints;
#                              with SWIFT_RUNDIR (a started swift-aio.sh RUNDIR)
#                              also start the Keystone-auth Swift proxy over its rings
#   keystone.sh stop  RUNDIR   stop what start started (safe to repeat)
#   keystone.sh env   RUNDIR   print `export` lines for the tests to eval
#
# Env: KEYSTONE_PORT (default 5000), KEYSTONE_SWIFT_PORT (the Keystone-auth
# proxy, default 8081), SWIFT_RUNDIR, KEYSTONE_TOKEN_LIFE (seconds, default
# 3600), WSP_CACHE (venv location), KEYSTONE_PYTHON (default /usr/bin/python3).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KEYSTONE_VERSION=30.0.0
SWIFT_VERSION=2.38.3
KEYSTONEMIDDLEWARE_VERSION=13.0.1
KEYSTONE_PORT="${KEYSTONE_PORT:-5000}"
KEYSTONE_SWIFT_PORT="${KEYSTONE_SWIFT_PORT:-8081}"
KEYSTONE_TOKEN_LIFE="${KEYSTONE_TOKEN_LIFE:-3600}"
KEYSTONE_PYTHON="${KEYSTONE_PYTHON:-/usr/bin/python3}"
VENV="$WSP_CACHE/keystone-venv"
# Fixed test identities; nothing here is secret.
ADMIN_PASSWORD=wsp-admin-password
TEST_DOMAIN=wsp-domain
TEST_PROJECT=wsp-project
TEST_USER=wsp-user
TEST_PASSWORD=wsp-password

[ $# -eq 2 ] || usage
cmd="$1"
RUNDIR="$(realpath -m "$2")"
RUN="$RUNDIR/run"
LOG="$RUNDIR/log"
CONF="$RUNDIR/keystone.conf"
BASE="http://127.0.0.1:$KEYSTONE_PORT"

# Keystone, keystonemiddleware and Swift's proxy share one private virtualenv
# (they install together without conflicts at these versions).
ensure_venv() {
    venv_ensure keystone "$KEYSTONE_PYTHON" "$VENV" keystone-manage \
        "keystone==$KEYSTONE_VERSION" "swift==$SWIFT_VERSION" "keystonemiddleware==$KEYSTONEMIDDLEWARE_VERSION"
}

write_keystone_conf() {
    cat >"$CONF" <<EOF
[DEFAULT]
log_file = $LOG/keystone.log
[database]
connection = sqlite:///$RUNDIR/keystone.db
[identity]
# Test passwords: cheap bcrypt rounds keep each token request fast.
password_hash_rounds = 4
[token]
provider = fernet
expiration = $KEYSTONE_TOKEN_LIFE
[fernet_tokens]
key_repository = $RUNDIR/fernet-keys
[fernet_receipts]
key_repository = $RUNDIR/fernet-keys
[credential]
key_repository = $RUNDIR/credential-keys
EOF
}

# Keystone is a WSGI application; the standard library's server is enough for
# tests (one request at a time).
write_server() {
    cat >"$RUNDIR/serve.py" <<'EOF'
import os, sys
conf, port = sys.argv[1], int(sys.argv[2])
sys.argv = sys.argv[:1]  # oslo.config parses argv
os.environ["OS_KEYSTONE_CONFIG_FILES"] = conf
from wsgiref.simple_server import make_server, WSGIRequestHandler
from keystone.server import wsgi

class Handler(WSGIRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))

make_server("127.0.0.1", port, wsgi.initialize_public_application(), handler_class=Handler).serve_forever()
EOF
}

# Domain, project, user with the member role, and object-store endpoints in
# RegionOne (the Keystone-auth proxy) and RegionTwo (a port nothing listens
# on, so a client that picks the wrong region fails visibly).
write_setup() {
    cat >"$RUNDIR/setup.py" <<'EOF'
import sys
from keystoneauth1 import session
from keystoneauth1.identity import v3
from keystoneclient.v3 import client
url, admin_pw, swift1, swift2, domain, project, user, password = sys.argv[1:9]
auth = v3.Password(auth_url=url, username="admin", password=admin_pw, project_name="admin",
                   user_domain_id="default", project_domain_id="default")
ks = client.Client(session=session.Session(auth=auth))
dom = ks.domains.create(name=domain)
proj = ks.projects.create(name=project, domain=dom)
u = ks.users.create(name=user, domain=dom, password=password, default_project=proj)
ks.roles.grant([r for r in ks.roles.list() if r.name == "member"][0], user=u, project=proj)
ks.regions.create(id="RegionTwo")
svc = ks.services.create(name="swift", type="object-store")
for region, base in (("RegionOne", swift1), ("RegionTwo", swift2)):
    for iface in ("public", "internal", "admin"):
        ks.endpoints.create(service=svc, url=base + "/v1/AUTH_%(project_id)s", interface=iface, region=region)
print(proj.id, u.id, dom.id)
EOF
}

write_proxy_conf() {
    local swift_etc="$1" mc="$2"
    cat >"$RUNDIR/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $KEYSTONE_SWIFT_PORT
workers = 0
user = $(id -un)
swift_dir = $swift_etc
log_name = keystone-proxy

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk authtoken keystoneauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
www_authenticate_uri = $BASE/v3
auth_url = $BASE/v3
auth_type = password
username = admin
password = $ADMIN_PASSWORD
project_name = admin
user_domain_id = default
project_domain_id = default
delay_auth_decision = true
# A short token cache: requests stay cheap, and a token revoked in Keystone is refused
# within 2 s (the token-revocation test waits that long).
token_cache_time = 2
service_token_roles_required = false

[filter:keystoneauth]
use = egg:swift#keystoneauth
operator_roles = admin, member
EOF
    swift_proxy_filters "$mc" >>"$RUNDIR/proxy-server.conf"
}

do_stop() {
    stop_pidfile "$RUN/proxy.pid" "$RUNDIR/proxy-server.conf"
    stop_pidfile "$RUN/keystone.pid" "$RUNDIR/serve.py"
}

wait_http() {
    local url="$1" pidfile="$2" logf="$3"
    wait_until 300 "$pidfile" -- http_ok "$url" && return 0
    show_logs "$logf"; do_stop
    [ -n "$WAIT_DIED" ] && die "$(basename "$pidfile" .pid) exited during start"
    die "$url did not answer within 30 s"
}

do_start() {
    apt_ensure curl python3-venv
    ensure_venv
    do_stop
    rm -rf "$RUNDIR/keystone.db" "$RUNDIR/fernet-keys" "$RUNDIR/credential-keys" "$RUN" "$LOG" "$RUNDIR/ids"
    mkdir -p "$RUN" "$LOG" "$RUNDIR/fernet-keys" "$RUNDIR/credential-keys"
    port_free "$KEYSTONE_PORT"
    write_keystone_conf
    write_server
    write_setup
    local km="$VENV/bin/keystone-manage --config-file $CONF" setup="$LOG/setup.log"
    {
        $km db_sync &&
        $km fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" &&
        $km credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" &&
        $km bootstrap --bootstrap-password "$ADMIN_PASSWORD" \
            --bootstrap-admin-url "$BASE/v3/" --bootstrap-public-url "$BASE/v3/" \
            --bootstrap-internal-url "$BASE/v3/" --bootstrap-region-id RegionOne
    } >>"$setup" 2>&1 || { show_logs "$setup"; die "keystone-manage failed"; }
    spawn "$RUN/keystone.pid" "$LOG/keystone.out" "$VENV/bin/python" "$RUNDIR/serve.py" "$CONF" "$KEYSTONE_PORT"
    wait_http "$BASE/v3" "$RUN/keystone.pid" "$LOG/keystone.out"
    "$VENV/bin/python" "$RUNDIR/setup.py" "$BASE/v3" "$ADMIN_PASSWORD" \
        "http://127.0.0.1:$KEYSTONE_SWIFT_PORT" "http://127.0.0.1:9" \
        "$TEST_DOMAIN" "$TEST_PROJECT" "$TEST_USER" "$TEST_PASSWORD" \
        >"$RUNDIR/ids" 2>>"$setup" || { show_logs "$setup" "$LOG/keystone.log"; do_stop; die "creating test identities failed"; }

    if [ -n "${SWIFT_RUNDIR:-}" ]; then
        local swift_etc mc
        swift_etc="$(realpath -m "$SWIFT_RUNDIR")/etc"
        [ -f "$swift_etc/proxy-server.conf" ] || { do_stop; die "SWIFT_RUNDIR=$SWIFT_RUNDIR: no started swift-aio.sh there"; }
        mc="$(sed -n 's/^memcache_servers = 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$swift_etc/proxy-server.conf" | head -n1)"
        [ -n "$mc" ] || { do_stop; die "no memcache port in $swift_etc/proxy-server.conf"; }
        port_free "$KEYSTONE_SWIFT_PORT"
        write_proxy_conf "$swift_etc" "$mc"
        spawn "$RUN/proxy.pid" "$LOG/proxy.log" "$VENV/bin/swift-proxy-server" "$RUNDIR/proxy-server.conf" -v
        wait_http "http://127.0.0.1:$KEYSTONE_SWIFT_PORT/healthcheck" "$RUN/proxy.pid" "$LOG/proxy.log"
    fi
}

do_env() {
    local project_id user_id domain_id
    read -r project_id user_id domain_id <"$RUNDIR/ids" 2>/dev/null || die "$RUNDIR: not started"
    emit WSP_TEST_KEYSTONE_AUTH_URL "$BASE/v3"
    emit WSP_TEST_KEYSTONE_USERNAME "$TEST_USER"
    emit WSP_TEST_KEYSTONE_USER_ID "$user_id"
    emit WSP_TEST_KEYSTONE_PASSWORD "$TEST_PASSWORD"
    emit WSP_TEST_KEYSTONE_PROJECT_NAME "$TEST_PROJECT"
    emit WSP_TEST_KEYSTONE_PROJECT_ID "$project_id"
    emit WSP_TEST_KEYSTONE_DOMAIN_NAME "$TEST_DOMAIN"
    emit WSP_TEST_KEYSTONE_DOMAIN_ID "$domain_id"
    emit WSP_TEST_KEYSTONE_REGION RegionOne
    emit WSP_TEST_KEYSTONE_TOKEN_LIFE "$KEYSTONE_TOKEN_LIFE"
    if [ -f "$RUN/proxy.pid" ]; then
        emit WSP_TEST_KEYSTONE_SWIFT_URL "http://127.0.0.1:$KEYSTONE_SWIFT_PORT/v1/AUTH_$project_id"
    fi
}

case "$cmd" in
    start) do_start ;;
    stop) do_stop ;;
    env) do_env ;;
    *) usage ;;
esac

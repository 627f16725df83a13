# shellcheck shell=bash
# Shared helpers for the server scripts in this directory (sourced, not run).
# Each script keeps all runtime state (config, data, logs, pid files) under the
# RUNDIR it is given; only installed packages and the pip cache live outside.

WSP_CACHE="${WSP_CACHE:-$HOME/.cache/whisper-backup}"

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# Root is the normal case (CI); fall back to sudo for a developer account.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Install Debian packages that are missing. `apt-get update` runs once, and only
# when something is missing, so an installed machine starts fast. Output goes to
# a log and is shown only on failure.
_apt_updated=
APT_INSTALLED=()
apt_ensure() {
    local missing=() p log
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log="$(mktemp)"
    # Keep package maintainer scripts from starting system services (e.g. the
    # packaged carbon-cache or memcached on their default ports). The policy
    # file is temporary unless the machine already had one.
    local own_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    local rc=0
    {
        if [ -z "$_apt_updated" ]; then
            as_root apt-get update -qq && _apt_updated=1
        fi &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}"
    } >"$log" 2>&1 || rc=$?
    [ -n "$own_policy" ] && as_root rm -f /usr/sbin/policy-rc.d
    if [ "$rc" -ne 0 ]; then
        cat "$log" >&2; rm -f "$log"
        die "apt-get install ${missing[*]} failed"
    fi
    rm -f "$log"
    APT_INSTALLED+=("${missing[@]}")
}

# Start a command in the background, detached from the caller's session and
# file descriptors (so `$(...)`, pipes and CI runners do not wait on it), and
# record its pid. setsid does not fork here because a background job of a
# non-interactive shell is not a process group leader, so $! is the server.
spawn() {
    local pidfile="$1" logfile="$2"; shift 2
    setsid "$@" </dev/null >>"$logfile" 2>&1 &
    echo $! >"$pidfile"
}

# Stop the process in a pid file if it still is what we started (the cmdline
# must contain $2, so a recycled pid is left alone). TERM, then KILL after 10 s.
stop_pidfile() {
    local pidfile="$1" match="$2" pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] \
        && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$match"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            [ -d "/proc/$pid" ] || break
            # A zombie child of ours counts as gone.
            grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break
            sleep 0.1
        done
        if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$pidfile"
}

# True while the pid in the file is alive.
pid_alive() {
    local pid
    pid="$(cat "$1" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
        && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null
}

# Fail early and clearly if something else already listens on a port.
port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        die "127.0.0.1:$1 is already in use (set the port variable to move it)"
    fi
}

# A free loopback TCP port chosen by the kernel.
free_port() {
    "${WSP_PY:-python3}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Wait up to TENTHS tenths of a second for CHECK to succeed while the processes of the pid
# files stay alive (a pid file not written yet is skipped). Returns 0 when CHECK succeeded,
# 1 on timeout, 2 when one of them exited; then WAIT_DIED is its pid file.
#   wait_until TENTHS PIDFILE... -- CHECK [ARG...]
wait_until() {
    local n="$1" pidfiles=() p; shift
    while [ "$#" -gt 0 ] && [ "$1" != -- ]; do pidfiles+=("$1"); shift; done
    shift
    WAIT_DIED=
    for _ in $(seq 1 "$n"); do
        for p in "${pidfiles[@]}"; do
            [ -f "$p" ] || continue
            pid_alive "$p" || { WAIT_DIED="$p"; return 2; }
        done
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# True when 127.0.0.1:PORT accepts a connection.
tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True when curl gets a 2xx for the URL (curl options may come first).
http_ok() { curl -fsS -o /dev/null "$@" 2>/dev/null; }

# Print the tail of logs to stderr to explain a failed start.
show_logs() {
    local f
    for f in "$@"; do
        [ -f "$f" ] || continue
        echo "---- $f (last 30 lines)" >&2
        tail -n 30 "$f" >&2
    done
}

# Print `export NAME=value` lines, quoted for eval.
# A private virtualenv at VENV for Python PY holding exactly the pinned PACKAGES. A stamp
# file makes the install idempotent; flock serialises parallel first runs.
#   venv_ensure NAME PY VENV CHECK-BIN PACKAGE...
venv_ensure() {
    local name=$1 py=$2 venv=$3 check=$4 want stamp
    shift 4
    want="$* $("$py" -VV | head -n1)"
    stamp="$venv/.wsp-stamp"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/$check" ]; then
        return 0
    fi
    mkdir -p "$WSP_CACHE"
    (
        flock 9
        if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
        rm -rf "$venv"
        local log="$WSP_CACHE/$name-venv-install.log"
        if ! { "$py" -m venv "$venv" &&
               "$venv/bin/pip" install -q --disable-pip-version-check "$@"; } >"$log" 2>&1; then
            cat "$log" >&2
            rm -rf "$venv"
            die "installing $name into $venv failed"
        fi
        echo "$want" >"$stamp"
    ) 9>"$WSP_CACHE/$name-venv.lock"
}

# The proxy filter sections both Swift proxies here use (swift-aio.sh, keystone.sh), for a
# memcached on PORT; each proxy's own pipeline, app and auth filters come before them.
#   swift_proxy_filters PORT >> proxy-server.conf
swift_proxy_filters() {
    cat <<EOF

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$1
EOF
    local f
    for f in catch_errors gatekeeper healthcheck proxy-logging listing_formats bulk copy slo dlo; do
        printf '\n[filter:%s]\nuse = egg:swift#%s\n' "$f" "${f//-/_}"
        # One object that cannot be deleted ends a bulk delete ("Max delete failures
        # exceeded"), leaving the keys after it untouched: an answer clients must read right.
        if [ "$f" = bulk ]; then printf 'max_failed_deletes = 1\n'; fi
    done
}

emit() { printf 'export %s=%q\n' "$1" "$2"; }

usage() { die "usage: $0 start|stop|env RUNDIR"; }

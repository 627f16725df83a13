#!/usr/bin/env python3
"""Object stores at real latency: objects per second of whole `whisper-backup` runs through
Tests/integration/faultproxy.py --rtt, against the servers CI starts.

  scripts/bench-latency.py [--files 600] [--rtt 0,20,50] [--forks 4,8,16] [--connections 4]
                           [--stores s3,swift] [--no-direct] [--daily] [--push-only] [--keep]

It generates a small-schema tree (scripts/gen-tree.py --schemas small --now 1795000000),
starts swift-aio (S3 API `s3`, Swift API `swift`; `rgw` in --stores starts radosgw too) on
free ports in a run directory of its own, and for each store x RTT x -f x --connections (the
uploads each wsp-push keeps in flight, column `conn`) runs, through the
`whisper-backup` executable, a first backup into a new bucket or container (--create-bucket,
a new state directory), an unchanged re-run (same state) and a restore into an empty
directory, whose files are compared byte for byte with the tree (a run that fails or restores
wrong bytes stops the benchmark). With --daily, a daily run comes between the unchanged run and the restore:
`gen-tree.py --advance 86400 --share 0.75` writes a day of carbon's points into 75% of the
files (as scripts/bench.py --daily does), then the same backup runs again (delta versions,
same state); the restore then restores that newest version. RTT 0 is the proxy with no delay; `direct` (with -f 16
only, unless --no-direct) is the server without the proxy, to show the proxy's own cost.

Batches: whisper-backup gives each of the -f processes records (`xargs -n K`, K at most
files / f, see Orchestrator/BatchSize.swift), so a small tree keeps -f 16 requests in flight
as a 143k-file node does (K = 2234 with -f 16).

It prints a markdown table: objects per second (files / wall seconds) and wall seconds of each
run, and the requests per object counted in the proxy's log (listings, PUTs, object GETs,
other: auth, HEADs, bucket creation), plus the requests of the busiest connection that made no PUT in the first backup (a
`wsp-prune --keep` process: its openings and a listing per batch of its records).

With --push-only, each configuration also runs the backup's first two stages alone into
another new bucket (`wsp-find | xargs -P f wsp-snap --state | xargs -P f wsp-push --state`,
the same K, a WSP_RUN_ID as whisper-backup sets, and a 1G spool): what -f processes, each with one kept-alive connection, sustain without the
`wsp-prune --keep` that follows them in a whisper-backup run.

Tools: $WSP_BIN, else .build-dist/release (`make build`), else .build/debug with a warning.
"""
import argparse
import collections
import filecmp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEN = os.path.join(REPO, "scripts", "gen-tree.py")
PROXY = os.path.join(REPO, "Tests", "integration", "faultproxy.py")
SERVERS = os.path.join(REPO, "scripts", "servers")
NOW = 1795000000


def find_bin():
    for d in (os.environ.get("WSP_BIN"), os.path.join(REPO, ".build-dist", "release")):
        if d and os.access(os.path.join(d, "whisper-backup"), os.X_OK):
            return d
    d = os.path.join(REPO, ".build", "debug")
    if os.access(os.path.join(d, "whisper-backup"), os.X_OK):
        print("bench-latency: warning: using the debug build (.build/debug); `make build` for release numbers",
              file=sys.stderr)
        return d
    sys.exit("bench-latency: no whisper-backup built: run `make build`")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def server_env(script, rundir, ports):
    env = dict(os.environ, **ports)
    subprocess.run([os.path.join(SERVERS, script), "start", rundir], env=env, check=True)
    out = subprocess.run([os.path.join(SERVERS, script), "env", rundir], env=env, check=True,
                         capture_output=True, text=True).stdout
    vals = {}
    for line in out.splitlines():
        if line.startswith("export "):
            k, _, v = line[len("export "):].partition("=")
            vals[k] = v.strip("'\"")
    return vals


class Proxy:
    def __init__(self, work, upstream, rtt):
        tag = uuid.uuid4().hex[:6]
        self.log = os.path.join(work, f"proxy-{tag}.log")
        port_file = os.path.join(work, f"proxy-{tag}.port")
        self.p = subprocess.Popen([sys.executable, PROXY, "--upstream", upstream, "--rtt", str(rtt),
                                   "--log", self.log, "--port-file", port_file])
        for _ in range(500):
            if os.path.exists(port_file):
                break
            if self.p.poll() is not None:
                sys.exit("bench-latency: faultproxy.py exited")
            time.sleep(0.02)
        self.url = "http://127.0.0.1:" + open(port_file).read().strip()

    def lines(self):
        if not os.path.exists(self.log):
            return []
        return [l.split("\t") for l in open(self.log).read().splitlines()]

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=10)


def kind(method, target):
    if method == "GET" and ("list-type=" in target or "format=json" in target):
        return "list"
    if method == "PUT" and target.count("/") >= 3 and ".wsp" in target:
        return "put"
    if method == "GET" and ".wsp" in target and "/auth/" not in target:
        return "get"
    return "other"


def counts(entries):
    c = collections.Counter(kind(e[0], e[1]) for e in entries)
    conns = collections.defaultdict(list)
    for e in entries:
        conns[e[4]].append(e)
    # wsp-prune --keep: the connection with the most requests that made no PUT
    keep = max((len(v) for v in conns.values() if not any(kind(x[0], x[1]) == "put" for x in v)), default=0)
    return c, len(entries), keep


def store_setup(name, env, endpoint):
    """(URL of a new bucket/container, environment for the tools) with requests going to `endpoint`."""
    bucket = f"lat-{uuid.uuid4().hex[:10]}"
    base = {"OS_AUTH_URL": "", "OS_AUTH_TOKEN": "", "OS_STORAGE_URL": "", "AWS_PROFILE": "",
            "AWS_SESSION_TOKEN": "", "AWS_DEFAULT_REGION": "", "AWS_ENDPOINT_URL_S3": ""}
    if name == "swift":
        path = env["ST_AUTH"].split("/", 3)[3]
        return f"swift://{bucket}/node1/", dict(base, ST_AUTH=f"{endpoint}/{path}", ST_USER=env["ST_USER"],
                                                 ST_KEY=env["ST_KEY"])
    if name == "s3":
        key, secret, region = env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env.get("AWS_REGION", "us-east-1")
    else:
        key, secret = env["WSP_TEST_RGW_ACCESS_KEY_ID"], env["WSP_TEST_RGW_SECRET_ACCESS_KEY"]
        region = env.get("WSP_TEST_RGW_REGION") or "us-east-1"
    return f"s3://{bucket}/node1/", dict(base, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret,
                                         AWS_REGION=region, AWS_ENDPOINT_URL=endpoint, ST_AUTH="")


def run(bindir, args, env):
    e = dict(os.environ, **env)
    e["PATH"] = bindir + os.pathsep + e["PATH"]
    t0 = time.monotonic()
    p = subprocess.run([os.path.join(bindir, "whisper-backup"), "--nolog", "--nolock", "--nostamp", "--no-progress"]
                       + args, env=e, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"bench-latency: whisper-backup {' '.join(args)} exited {p.returncode}:\n{p.stderr}")
    return wall, p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""


def same_tree(a, b):
    files = []
    for d, _, fs in os.walk(a):
        files += [os.path.relpath(os.path.join(d, f), a) for f in fs]
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    return len(match) == len(files), len(files)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=600)
    ap.add_argument("--rtt", default="0,20,50", help="round trips in ms, comma-separated (0: the proxy, no delay)")
    ap.add_argument("--forks", default="4,8,16", help="whisper-backup -f values")
    ap.add_argument("--connections", default="4", help="whisper-backup --connections values (uploads in flight per process)")
    ap.add_argument("--stores", default="s3,swift", help="s3 and swift (swift-aio), rgw (radosgw's S3)")
    ap.add_argument("--no-direct", action="store_true", help="skip the runs without the proxy")
    ap.add_argument("--daily", action="store_true", help="add a daily run (75%% of the files get a day of points)")
    ap.add_argument("--push-only", action="store_true", help="also time wsp-find | wsp-snap | wsp-push alone")
    ap.add_argument("--keep", action="store_true", help="keep the work directory and leave the servers running")
    a = ap.parse_args()
    rtts = [float(x) for x in a.rtt.split(",")]
    forks = [int(x) for x in a.forks.split(",")]
    conns = [int(x) for x in a.connections.split(",")]
    stores = a.stores.split(",")
    bindir = find_bin()
    work = tempfile.mkdtemp(prefix="wsp-bench-latency-")
    started = []
    try:
        tree = os.path.join(work, "tree")
        subprocess.run([sys.executable, GEN, tree, "--files", str(a.files), "--schemas", "small", "--now", str(NOW)],
                       check=True, stderr=subprocess.DEVNULL)
        envs = {}
        day, daily, pushonly = [0], [], []
        if {"s3", "swift"} & set(stores):
            rd = os.path.join(work, "swift-aio")
            envs["swift-aio"] = server_env("swift-aio.sh", rd, {"SWIFT_PORT": str(free_port())})
            started.append(("swift-aio.sh", rd, {"SWIFT_PORT": envs["swift-aio"]["WSP_TEST_S3_ENDPOINT"].rsplit(":", 1)[1]}))
        if "rgw" in stores:
            rd = os.path.join(work, "radosgw")
            ports = {"RGW_PORT": str(free_port()), "RGW_MON_PORT": str(free_port())}
            envs["radosgw"] = server_env("radosgw.sh", rd, ports)
            started.append(("radosgw.sh", rd, ports))
        time.sleep(2)   # files changed less than 2 s before they are read are not vouched for by the state
        print(f"{a.files} small-schema files, {sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tree) for f in fs) / 1e6:.1f} MB; tools: {bindir}; "
              f"{os.cpu_count()} cores\n")
        print("| store | RTT ms | -f | conn | first obj/s | first s | unchanged obj/s | unchanged s | restore obj/s | restore s | "
              "req/obj first (list+PUT+other) | prune --keep requests | req unchanged | req/obj restore (list+GET+other) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name in stores:
            env = envs["radosgw" if name == "rgw" else "swift-aio"]
            upstream = env["WSP_TEST_RGW_ENDPOINT"] if name == "rgw" else env["WSP_TEST_S3_ENDPOINT"]
            configs = [(r, f, c) for r in rtts for f in forks for c in conns]
            if not a.no_direct:
                configs = [(None, max(forks), max(conns))] + configs
            for rtt, f, c in configs:
                proxy = Proxy(work, upstream, rtt) if rtt is not None else None
                url, tenv = store_setup(name, env, proxy.url if proxy else upstream)
                k = max(1, -(-a.files // f))   # whisper-backup's K at most (BatchSize)
                tag = uuid.uuid4().hex[:6]
                state, out = os.path.join(work, "state-" + tag), os.path.join(work, "out-" + tag)
                common = ["-f", str(f), "--connections", str(c)]
                phases = []
                mark = 0
                steps = [("first", ["-p", tree, "--state", state, "--create-bucket", *common, "backup", url]),
                         ("unchanged", ["-p", tree, "--state", state, *common, "backup", url])]
                if a.daily:
                    steps.append(("daily", ["-p", tree, "--state", state, *common, "backup", url]))
                steps.append(("restore", ["-p", out, *common, "restore", url]))
                for label, args in steps:
                    if label == "daily":
                        day[0] += 1
                        subprocess.run([sys.executable, GEN, tree, "--advance", "86400", "--share", "0.75", "--seed", "1",
                                        "--now", str(NOW + day[0] * 86400)], check=True, stderr=subprocess.DEVNULL)
                        time.sleep(2)
                    wall, summary = run(bindir, args, tenv)
                    entries = proxy.lines() if proxy else []
                    phases.append((wall, summary, counts(entries[mark:])))
                    mark = len(entries)
                ok, n = same_tree(tree, out)
                if not ok:
                    sys.exit(f"bench-latency: {name} rtt {rtt} -f {f}: the restore differs from the tree")
                if a.push_only:
                    url2, _ = store_setup(name, env, proxy.url if proxy else upstream)
                    state2, spool2 = os.path.join(work, "state2-" + tag), os.path.join(work, "spool-" + tag)
                    os.makedirs(spool2)
                    x = f"xargs -d '\\n' -r -P {f} -s 1000000 -n {k}"
                    cmd = (f"set -o pipefail; wsp-find --root {tree} | {x} wsp-snap --state {state2} --spool {spool2} "
                           f"--spool-max 1G | {x} wsp-push --state {state2} --connections {c} --create-bucket {url2} >/dev/null")
                    mark = len(proxy.lines()) if proxy else 0
                    e = dict(os.environ, **tenv)
                    e["PATH"] = bindir + os.pathsep + e["PATH"]
                    e["WSP_RUN_ID"] = uuid.uuid4().hex   # one state check per run, as whisper-backup does
                    t0 = time.monotonic()
                    p = subprocess.run(["bash", "-c", cmd], env=e, capture_output=True, text=True)
                    wp = time.monotonic() - t0
                    if p.returncode != 0:
                        sys.exit(f"bench-latency: {cmd}: exit {p.returncode}\n{p.stderr}")
                    cp, np_, _ = counts((proxy.lines() if proxy else [])[mark:])
                    pushonly.append(f"| {name} | {'direct' if rtt is None else f'{rtt:g}'} | {f} | {c} | {a.files / wp:.0f} | {wp:.1f} | "
                                    f"{f'{np_ / a.files:.2f}' if proxy else ''} |")
                if proxy:
                    proxy.stop()
                if a.daily:
                    wd, sd, (cd, nd, keepd) = phases.pop(2)
                    daily.append(f"| {name} | {'direct' if rtt is None else f'{rtt:g}'} | {f} | {c} | {a.files / wd:.0f} | {wd:.1f} | "
                                 f"{nd if proxy else ''} | {cd['put'] if proxy else ''} | {keepd if proxy else ''} | {sd.split(': ', 2)[-1]} |")
                (w1, s1, (c1, n1, keep)), (w2, s2, (c2, n2, _)), (w3, s3, (c3, n3, _)) = phases
                fl = a.files

                def per(c, n, main):
                    return f"{n / fl:.2f} ({c['list'] / fl:.2f}+{c[main] / fl:.2f}+{c['other'] / fl:.2f})" if proxy else ""
                print(f"| {name} | {'direct' if rtt is None else f'{rtt:g}'} | {f} | {c} | {fl / w1:.0f} | {w1:.1f} | {fl / w2:.0f} | "
                      f"{w2:.1f} | {fl / w3:.0f} | {w3:.1f} | {per(c1, n1, 'put')} | {keep if proxy else ''} | "
                      f"{n2 if proxy else ''} | {per(c3, n3, 'get')} |", flush=True)
                if "unchanged" not in s2 or f"{fl} unchanged" not in s2:
                    print(f"  (unchanged run: {s2})", flush=True)
        if daily:
            print("\nDaily runs (75% of the files got a day of points; files seen / wall seconds):\n")
            print("| store | RTT ms | -f | conn | files/s | wall s | requests | PUTs | prune --keep requests | summary |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            print("\n".join(daily))
        if pushonly:
            print("\nFirst backup, wsp-find | wsp-snap | wsp-push alone (no wsp-prune --keep):\n")
            print("| store | RTT ms | -f | conn | obj/s | wall s | requests/obj |")
            print("|---|---|---|---|---|---|---|")
            print("\n".join(pushonly))
    finally:
        if not a.keep:
            for script, rd, ports in started:
                subprocess.run([os.path.join(SERVERS, script), "stop", rd], env=dict(os.environ, **ports))
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept: {work}", file=sys.stderr)


if __name__ == "__main__":
    main()

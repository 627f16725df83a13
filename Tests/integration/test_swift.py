"""The tools against real OpenStack Swift APIs on loopback: Swift all-in-one with tempauth
(scripts/servers/swift-aio.sh), Ceph radosgw's Swift API (radosgw.sh) and a Swift proxy that
takes Keystone v3 tokens (keystone.sh). Each backend's tests skip, with the reason, when its
environment is absent:

  aio       WSP_TEST_SWIFT_AUTH, WSP_TEST_SWIFT_USER, WSP_TEST_SWIFT_KEY
            (WSP_TEST_SWIFT_TOKEN_LIFE <= 30 for the token-expiry test)
  rgw       WSP_TEST_RGW_ST_AUTH, WSP_TEST_RGW_ST_USER, WSP_TEST_RGW_ST_KEY
            (WSP_TEST_RGW_CEPH_CONF for the token-expiry test)
  keystone  WSP_TEST_KEYSTONE_AUTH_URL, _USERNAME, _PASSWORD, _PROJECT_NAME, _DOMAIN_NAME,
            _REGION and WSP_TEST_KEYSTONE_SWIFT_URL (the Keystone-auth proxy is running)
"""
import json
import os
import shlex
import shutil
import subprocess
import time
import urllib.request
import uuid

import pytest

from conftest import change_tree, gen_tree, read, records, run, sh, tool, wsp_files

# Every auth variable the store reads; each backend sets its own and blanks the rest (the
# store treats an empty variable as unset), so a CI-wide ST_AUTH cannot leak into a Keystone test.
AUTH_VARS = ["ST_AUTH", "ST_USER", "ST_KEY", "OS_AUTH_URL", "OS_USERNAME", "OS_USER_ID", "OS_PASSWORD",
             "OS_PROJECT_NAME", "OS_PROJECT_ID", "OS_TENANT_NAME", "OS_TENANT_ID", "OS_USER_DOMAIN_NAME",
             "OS_USER_DOMAIN_ID", "OS_PROJECT_DOMAIN_NAME", "OS_PROJECT_DOMAIN_ID", "OS_REGION_NAME",
             "OS_INTERFACE", "OS_AUTH_TOKEN", "OS_STORAGE_URL", "OS_AUTH_TYPE", "OS_APPLICATION_CREDENTIAL_ID",
             "OS_APPLICATION_CREDENTIAL_SECRET", "WSP_SWIFT_LIST_LIMIT", "WSP_HTTP_TRACE"]


def http(method, url, headers=None, body=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


class Backend:
    def __init__(self, name, env, secrets):
        self.name = name
        self.env = dict({v: "" for v in AUTH_VARS}, **env)
        self.secrets = secrets  # strings that must never appear in any output

    def token(self):
        """A token and storage URL obtained the way the store does, for tests that hand the
        tool a ready token (OS_AUTH_TOKEN + OS_STORAGE_URL)."""
        if self.name == "keystone":
            e = self.env
            body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": e["OS_USERNAME"], "domain": {"name": e["OS_USER_DOMAIN_NAME"]}, "password": e["OS_PASSWORD"]}}},
                "scope": {"project": {"name": e["OS_PROJECT_NAME"], "domain": {"name": e["OS_PROJECT_DOMAIN_NAME"]}}}}}
            st, h, b = http("POST", e["OS_AUTH_URL"] + "/auth/tokens", {"Content-Type": "application/json"},
                            json.dumps(body).encode())
            assert st == 201, b
            return h["x-subject-token"], os.environ["WSP_TEST_KEYSTONE_SWIFT_URL"]
        def get():
            st, h, _ = http("GET", self.env["ST_AUTH"], {"X-Auth-User": self.env["ST_USER"], "X-Auth-Key": self.env["ST_KEY"]})
            assert 200 <= st < 300
            return h
        h = get()
        life = int(os.environ.get("WSP_TEST_SWIFT_TOKEN_LIFE", "0") or 0)
        left = int(h.get("x-auth-token-expires", "0") or 0)
        if self.name == "aio" and life and left < life * 0.7:
            # tempauth hands out its cached token until it expires: wait for a fresh one.
            time.sleep(left + 1)
            h = get()
        return h["x-auth-token"], h["x-storage-url"]


def backend_from_env(name):
    g = os.environ.get
    if name == "aio":
        need = ["WSP_TEST_SWIFT_AUTH", "WSP_TEST_SWIFT_USER", "WSP_TEST_SWIFT_KEY"]
        if not all(g(v) for v in need):
            pytest.skip("Swift all-in-one not running: " + ", ".join(need) + " unset (scripts/servers/swift-aio.sh)")
        return Backend("aio", {"ST_AUTH": g(need[0]), "ST_USER": g(need[1]), "ST_KEY": g(need[2])}, [g(need[2])])
    if name == "rgw":
        need = ["WSP_TEST_RGW_ST_AUTH", "WSP_TEST_RGW_ST_USER", "WSP_TEST_RGW_ST_KEY"]
        if not all(g(v) for v in need):
            pytest.skip("radosgw not running: " + ", ".join(need) + " unset (scripts/servers/radosgw.sh)")
        return Backend("rgw", {"ST_AUTH": g(need[0]), "ST_USER": g(need[1]), "ST_KEY": g(need[2])}, [g(need[2])])
    need = ["WSP_TEST_KEYSTONE_AUTH_URL", "WSP_TEST_KEYSTONE_USERNAME", "WSP_TEST_KEYSTONE_PASSWORD",
            "WSP_TEST_KEYSTONE_PROJECT_NAME", "WSP_TEST_KEYSTONE_DOMAIN_NAME", "WSP_TEST_KEYSTONE_REGION",
            "WSP_TEST_KEYSTONE_SWIFT_URL"]
    if not all(g(v) for v in need):
        pytest.skip("Keystone with its Swift proxy not running: " + ", ".join(v for v in need if not g(v))
                    + " unset (scripts/servers/keystone.sh with SWIFT_RUNDIR)")
    domain = g("WSP_TEST_KEYSTONE_DOMAIN_NAME")
    return Backend("keystone", {
        "OS_AUTH_URL": g("WSP_TEST_KEYSTONE_AUTH_URL"), "OS_USERNAME": g("WSP_TEST_KEYSTONE_USERNAME"),
        "OS_PASSWORD": g("WSP_TEST_KEYSTONE_PASSWORD"), "OS_PROJECT_NAME": g("WSP_TEST_KEYSTONE_PROJECT_NAME"),
        "OS_USER_DOMAIN_NAME": domain, "OS_PROJECT_DOMAIN_NAME": domain,
        "OS_REGION_NAME": g("WSP_TEST_KEYSTONE_REGION")}, [g("WSP_TEST_KEYSTONE_PASSWORD")])


@pytest.fixture(params=["aio", "rgw", "keystone"])
def be(request):
    """Every backend: for what touches auth, naming and the wrappers."""
    return backend_from_env(request.param)


@pytest.fixture(params=["aio", "rgw"])
def be_store(request):
    """The two Swift implementations: for store logic, which does not depend on the auth style."""
    return backend_from_env(request.param)


@pytest.fixture
def url(request):
    """A fresh container per test, created by the first push (--create-container)."""
    name = request.node.callspec.params.get("be") or request.node.callspec.params.get("be_store")
    return f"swift://wsp-{name}-{uuid.uuid4().hex[:10]}/node1/"


def q(s):
    return shlex.quote(str(s))


def no_secrets(be, *texts):
    for t in texts:
        for s in be.secrets:
            assert s not in t, "a secret was printed"


def backup(be, root, url, spool, globs="'*'", env=None, check=True):
    e = dict(be.env, **(env or {}))
    p = sh(f"wsp-find --root {q(root)} {globs} | wsp-snap --spool {q(spool)} | wsp-push --create-container {q(url)}",
           env=e, check=check)
    no_secrets(be, p.stdout, p.stderr)
    return p


def restore(be, url, spool, target, globs="'*'", before="", env=None):
    b = f"--before {q(before)}" if before else ""
    e = dict(be.env, **(env or {}))
    p = sh(f"wsp-pull list {b} {q(url)} {globs} | wsp-pull get --spool {q(spool)} {q(url)} | wsp-merge --root {q(target)}",
           env=e)
    no_secrets(be, p.stdout, p.stderr)
    return p


def listing(be, url, globs=("*",), all_versions=True, env=None):
    args = ["list"] + (["--all"] if all_versions else []) + [url, *globs]
    p = run("wsp-pull", *args, env=dict(be.env, **(env or {})))
    assert p.returncode == 0, p.stderr
    no_secrets(be, p.stdout, p.stderr)
    return records(p.stdout), p.stderr


def same_tree(a, b, subset=None):
    src, dst = wsp_files(a), wsp_files(b)
    if subset is not None:
        src = {k: v for k, v in src.items() if subset(k)}
    assert sorted(src) == sorted(dst)
    for rel in src:
        assert read(src[rel]) == read(dst[rel]), rel


def trace(stderr):
    """(METHOD, URL, STATUS) of each request in a WSP_HTTP_TRACE log."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("wsp-http: "):
            method, url, _, status = line[len("wsp-http: "):].split(" ")[:4]
            out.append((method, url, status))
    return out


def test_round_trip_byte_identical(be, url, tmp_path):
    root = gen_tree(tmp_path / "w", files=24)
    p = backup(be, root, url, tmp_path / "spool")
    recs = records(p.stdout)
    assert len(recs) == 24 and {r[5] for r in recs} == {"stored"}
    out = tmp_path / "restored"
    r = restore(be, url, tmp_path / "spool2", out)
    assert [x[1] for x in records(r.stdout)] == ["created"] * 24
    same_tree(root, out)


def test_unchanged_rerun_stores_nothing(be_store, url, tmp_path):
    be = be_store
    root = gen_tree(tmp_path / "w", files=16)
    backup(be, root, url, tmp_path / "spool")
    first, _ = listing(be, url)
    p = backup(be, root, url, tmp_path / "spool", env={"WSP_HTTP_TRACE": "1"})
    assert {r[5] for r in records(p.stdout)} == {"unchanged"}
    assert not [t for t in trace(p.stderr) if t[0] == "PUT"]
    assert listing(be, url)[0] == first
    change_tree(root, 0.25, seed=5)
    p = backup(be, root, url, tmp_path / "spool")
    stored = [r for r in records(p.stdout) if r[5] == "stored"]
    assert 0 < len(stored) < 16
    assert len(listing(be, url)[0]) == 16 + len(stored)


def test_retention_keeps_newest(be_store, url, tmp_path):
    be = be_store
    root = gen_tree(tmp_path / "w", files=6)
    newest = {}
    for i in range(4):
        if i:
            time.sleep(1.1)  # versions are ordered by their TIME, which has whole seconds
            change_tree(root, 1.0, seed=10 + i)
        for r in records(backup(be, root, url, tmp_path / "spool").stdout):
            newest.setdefault(r[0], []).append(r[2])
    assert len(listing(be, url)[0]) == 24
    p = run("wsp-prune", "--keep", "2", "--all", url, env=dict(be.env, WSP_HTTP_TRACE="1"))
    assert p.returncode == 0, p.stderr
    deleted = records(p.stdout)
    assert len(deleted) == 12 and {r[5] for r in deleted} == {"deleted"}
    left = {}
    for r in listing(be, url)[0]:
        left.setdefault(r[0], []).append(r[2])
    assert {m: sorted(h) for m, h in left.items()} == {m: sorted(h[-2:]) for m, h in newest.items()}
    # One bulk delete per metric (the clusters offer the bulk middleware), no single DELETEs;
    # a token that expired under a short tempauth life shows as per-object 401s in a bulk
    # result and costs one new token and one resend.
    t = trace(p.stderr)
    renewals = len([x for x in t if "/auth/" in x[1]]) - 1
    assert len([x for x in t if x[0] == "POST" and "bulk-delete" in x[1]]) == 6 + renewals
    assert not [x for x in t if x[0] == "DELETE"]
    # Pruning again deletes nothing; deleting already-missing keys is not an error.
    p = run("wsp-prune", "--keep", "2", "--all", url, env=be.env)
    assert p.returncode == 0 and p.stdout == "", p.stderr


def test_before_restores_the_older_version(be_store, url, tmp_path):
    be = be_store
    root = gen_tree(tmp_path / "w", files=5)
    backup(be, root, url, tmp_path / "spool")
    old = tmp_path / "old"
    shutil.copytree(root, old)
    time.sleep(1.2)
    cut = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    time.sleep(1.2)
    change_tree(root, 1.0, seed=3)
    backup(be, root, url, tmp_path / "spool")
    recs, _ = listing(be, url, all_versions=False)
    p = run("wsp-pull", "list", "--before", cut, url, "*", env=be.env)
    assert p.returncode == 0, p.stderr
    before = records(p.stdout)
    assert len(before) == 5 and {r[2] for r in before}.isdisjoint({r[2] for r in recs})
    out = tmp_path / "restored"
    restore(be, url, tmp_path / "spool2", out, before=cut)
    same_tree(old, out)


def test_glob_subset(be_store, url, tmp_path):
    be = be_store
    root = gen_tree(tmp_path / "w", files=24)
    backup(be, root, url, tmp_path / "spool")
    all_metrics = {r[0] for r in listing(be, url)[0]}
    chosen = {m for m in all_metrics if m.startswith("servers.host001.") or m.endswith(".cpu.user")}
    recs, _ = listing(be, url, globs=("servers.host001.*", "servers.*.cpu.user"))
    assert {r[0] for r in recs} == chosen and len(recs) == len(chosen)
    out = tmp_path / "restored"
    restore(be, url, tmp_path / "spool2", out, globs="'servers.host001.*' 'servers.*.cpu.user'")
    same_tree(root, out, subset=lambda rel: rel.startswith("servers/host001/") or rel.endswith("/cpu/user.wsp"))


def test_listing_over_several_pages(be_store, url, tmp_path):
    be = be_store
    root = gen_tree(tmp_path / "w", files=20)
    backup(be, root, url, tmp_path / "spool")
    change_tree(root, 0.5, seed=9)
    backup(be, root, url, tmp_path / "spool")
    whole, t1 = listing(be, url, env={"WSP_HTTP_TRACE": "1"})
    paged, t2 = listing(be, url, env={"WSP_HTTP_TRACE": "1", "WSP_SWIFT_LIST_LIMIT": "3"})
    assert paged == whole and len(whole) > 20
    pages = [t for t in trace(t2) if t[0] == "GET" and "format=json" in t[1]]
    # Full pages of 3, then a short (possibly empty) one that ends the listing; each page
    # after the first starts at a marker.
    assert len(pages) == len(whole) // 3 + 1
    assert all("marker=" in t[1] for t in pages[1:])
    assert len([t for t in trace(t1) if t[0] == "GET" and "format=json" in t[1]]) == 1


ODD = ["sp ace", "plus+sign", "co:lon", "per%cent", "q?mark", "hash#tag", "amp&er=sand", "üñïçødé", "日本語", "emoji😀"]


def test_odd_metric_names(be, url, tmp_path):
    src = gen_tree(tmp_path / "g", files=1)
    (one,) = wsp_files(src).values()
    root = tmp_path / "w"
    for i, name in enumerate(ODD):
        d = root / "odd" / ("dir " + name if i % 2 else name)
        d.mkdir(parents=True)
        shutil.copy(one, d / f"{name}.wsp")
        with open(d / f"{name}.wsp", "r+b") as f:  # distinct contents
            f.seek(-8, 2)
            f.write(i.to_bytes(8, "big"))
    p = backup(be, root, url, tmp_path / "spool")
    assert len(records(p.stdout)) == len(ODD)
    recs, _ = listing(be, url)
    names = {r[0] for r in recs}
    metric = {n: f"odd.{'dir ' + n if i % 2 else n}.{n}" for i, n in enumerate(ODD)}
    assert names == set(metric.values())
    # Every stored key is exactly the layout's key (no double or lost encoding).
    for r in recs:
        assert r[3] == f"node1/{r[0]}/{r[1]}.{r[2]}.wsp.gz"
    out = tmp_path / "restored"
    restore(be, url, tmp_path / "spool2", out)
    same_tree(root, out)
    # Globs with odd literal prefixes list exactly their metric.
    for n in ("plus+sign", "per%cent", "日本語", "sp ace"):
        got, _ = listing(be, url, globs=(metric[n].rsplit(".", 1)[0] + ".*",))
        assert {r[0] for r in got} == {metric[n]}


def expire_token(be, token):
    """Makes `token` invalid the way the cluster does it, or skips when it cannot."""
    if be.name == "keystone":
        # Real revocation; the test proxy caches validated tokens for 2 s (keystone.sh).
        st, _, b = http("DELETE", be.env["OS_AUTH_URL"] + "/auth/tokens", {"X-Auth-Token": token, "X-Subject-Token": token})
        assert st == 204, b
        return 3
    if be.name == "aio":
        life = int(os.environ.get("WSP_TEST_SWIFT_TOKEN_LIFE", "86400"))
        if life > 30:
            pytest.skip(f"tempauth tokens live {life} s; start swift-aio.sh with SWIFT_TOKEN_LIFE=10 to test expiry")
        return life + 1
    raise AssertionError(be.name)


def test_token_expired_or_revoked_mid_run(be, url, tmp_path):
    root = gen_tree(tmp_path / "w", files=10)
    spool = tmp_path / "spool"
    snaps = sh(f"wsp-find --root {q(root)} '*' | wsp-snap --spool {q(spool)}").stdout.splitlines()
    conf = os.environ.get("WSP_TEST_RGW_CEPH_CONF")
    if be.name == "rgw":
        if not conf:
            pytest.skip("WSP_TEST_RGW_CEPH_CONF unset: cannot shorten radosgw's Swift token lifetime")
        subprocess.run(["ceph", "-c", conf, "--connect-timeout", "10", "config", "set", "client.rgw.a",
                        "rgw_swift_token_expiration", "5"], check=True, capture_output=True, timeout=30)
    try:
        token, storage = be.token()  # a token the tool did not get itself, so it cannot foresee its end
        env = dict(be.env, OS_AUTH_TOKEN=token, OS_STORAGE_URL=storage, WSP_HTTP_TRACE="1")
        env = {**os.environ, **env}
        p = subprocess.Popen([tool("wsp-push"), "--create-container", url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
        half = len(snaps) // 2
        out = []
        for line in snaps[:half]:
            p.stdin.write(line + "\n")
        p.stdin.flush()
        for _ in range(half):
            out.append(p.stdout.readline())
        wait = 6 if be.name == "rgw" else expire_token(be, token)
        if wait:
            time.sleep(wait)
        for line in snaps[half:]:
            p.stdin.write(line + "\n")
        rest, err = p.communicate(timeout=120)
    finally:
        if be.name == "rgw":
            subprocess.run(["ceph", "-c", conf, "--connect-timeout", "10", "config", "rm", "client.rgw.a",
                            "rgw_swift_token_expiration"], capture_output=True, timeout=30)
    no_secrets(be, "".join(out), rest, err)
    assert p.returncode == 0, err
    recs = records("".join(out) + rest)
    assert len(recs) == 10 and {r[5] for r in recs} == {"stored"}
    t = trace(err)
    refused = [i for i, x in enumerate(t) if x[2] == "401"]
    auths = [i for i, x in enumerate(t) if "/auth/" in x[1]]
    # The token was refused once in the middle, one new token was fetched, and the run went on.
    assert len(refused) == 1 and len(auths) == 1 and refused[0] + 1 == auths[0], t
    assert half <= refused[0] and all(x[2].startswith("2") for x in t[auths[0] + 1:])
    assert len(listing(be, url)[0]) == 10


def test_wrong_credentials_and_missing_container(be, url, tmp_path):
    bad = dict(be.env)
    if be.name == "keystone":
        bad["OS_PASSWORD"] = "not-the-password"
    else:
        bad["ST_KEY"] = "not-the-key"
    for args in (["wsp-pull", "list", url, "*"], ["wsp-prune", "--keep", "1", "--all", url]):
        p = run(*args, env=bad)
        assert p.returncode == 2
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "refused the credentials" in lines[0], p.stderr
        assert "not-the-" not in p.stderr and p.stdout == ""
    root = gen_tree(tmp_path / "w", files=2)
    p = sh(f"wsp-find --root {q(root)} '*' | wsp-snap --spool {q(tmp_path / 'spool')} | wsp-push {q(url)}",
           env=be.env, check=False)
    assert p.returncode == 2
    container = url.split("/")[2]
    # wsp-snap may also say that its reader went away (push exited before snap wrote all).
    lines = [l for l in p.stderr.strip().splitlines()
             if l != "wsp-snap: stopped: the reader of standard output went away; the records after it were not processed"]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(f"wsp-push: {url}: container {container} does not exist in http")
    assert lines[0].endswith("(create it, or pass --create-container)")
    no_secrets(be, p.stderr)


def test_request_counts(be, url, tmp_path):
    """Requests per metric (WSP_HTTP_TRACE) for a first backup, an unchanged re-run and a
    restore, one process per stage: per metric 2 (list, PUT), 1 (list) and 1 (GET), plus per
    process a container check, /info where needed, and token requests (more than one only when
    the token's life is shorter than the run)."""
    n = 20
    root = gen_tree(tmp_path / "w", files=n)
    counts = {}
    for phase in ("first", "unchanged"):
        p = backup(be, root, url, tmp_path / "spool", env={"WSP_HTTP_TRACE": "1"})
        counts[phase] = trace(p.stderr)
    p = restore(be, url, tmp_path / "spool2", tmp_path / "restored", env={"WSP_HTTP_TRACE": "1"})
    counts["restore"] = trace(p.stderr)
    # With a state (what the wrappers use): the first run adds the store marker, an unchanged
    # run reads no file and asks the store nothing per metric.
    url2 = url.replace("/node1/", "/node2/")
    st = q(tmp_path / "state")
    # wsp-snap trusts a file's stat only once it is 2 s old (Snap.settleNs): let the fresh
    # tree settle, or the state would not vouch for it and the re-run would list every metric.
    time.sleep(2.1)
    for phase in ("first+state", "unchanged+state"):
        p = sh(f"wsp-find --root {q(root)} '*' | wsp-snap --state {st} --spool {q(tmp_path / 'spool')} "
               f"| wsp-push --state {st} {q(url2)}", env=dict(be.env, WSP_HTTP_TRACE="1"))
        counts[phase] = trace(p.stderr)
    same_tree(root, tmp_path / "restored")
    # Token requests, and requests refused with 401 and resent (a short tempauth token life
    # in CI makes some), are counted apart.
    store = {k: [t for t in v if "/auth/" not in t[1] and t[2] != "401"] for k, v in counts.items()}
    print(f"{be.name}: {n} metrics: " + ", ".join(
        f"{k} {len(store[k])} store + {len(counts[k]) - len(store[k])} auth or refused" for k in counts))
    # First backup: container HEAD (404) and PUT, /info, then per metric one listing and one PUT.
    assert len(store["first"]) == 2 * n + 3
    assert len([t for t in store["first"] if t[0] == "PUT"]) == n + 1
    # Unchanged: container HEAD, /info, one listing per metric, no PUT.
    assert len(store["unchanged"]) == n + 2
    assert not [t for t in store["unchanged"] if t[0] == "PUT"]
    # Restore: list (HEAD, /info, one page), get (HEAD, one GET per metric).
    assert len(store["restore"]) == n + 4
    assert len([t for t in store["restore"] if t[0] == "GET" and "format=json" not in t[1] and "/info" not in t[1]]) == n
    # First with state: container HEAD, marker GET (404), PUT, GET; /info; list + PUT per metric.
    assert len(store["first+state"]) == 2 * n + 5
    # Unchanged with state: wsp-snap and wsp-push each check the container and read the
    # marker, and wsp-snap lists the store once (/info, one page) to check what the state
    # vouches for; nothing per metric.
    assert len(store["unchanged+state"]) == 6


def test_wrappers_backup_purge_restore(be, tmp_path):
    """backup.sh / restore.sh with the original tool's `swift` backend (container -b)."""
    from test_wrappers import BACKUP, RESTORE, summary, wrap
    container = f"wsp-wrap-{be.name}-{uuid.uuid4().hex[:8]}"
    common = ["--lockfile", tmp_path / "lock", "--logfile", tmp_path / "log", "--stampfile", tmp_path / "stamp",
              "--state", tmp_path / "state", "-b", container, "--storage-path", "node1"]
    root = gen_tree(tmp_path / "w", files=12)
    p = wrap(BACKUP, "-p", root, "--create-container", "-f", "3", *common, "swift", env=be.env)
    assert "12 files seen, 12 stored, 0 unchanged, 0 failed" in summary(p.stderr, "backup")
    os.unlink(root / "servers" / "host000" / "cpu" / "user.wsp")
    for _ in range(2):  # the first run marks the metric gone, the second (-x 0) purges it
        p = wrap(BACKUP, "-p", root, "-x", "0", *common, "swift", env=be.env)
    no_secrets(be, p.stdout, p.stderr, (tmp_path / "log").read_text())
    metrics = {r[0] for r in listing(be, f"swift://{container}/node1/")[0]}
    assert len(metrics) == 11 and "servers.host000.cpu.user" not in metrics
    out = tmp_path / "restored"
    p = wrap(RESTORE, "-p", out, "-f", "2", *common, "swift", env=be.env)
    assert "11 created" in summary(p.stderr, "restore")
    same_tree(root, out)

"""s3:// end to end against real S3 servers on 127.0.0.1: OpenStack Swift's s3api (it checks
SigV4 signatures, payload hashes and Content-MD5) and Ceph radosgw. Each test runs on both.

The servers come from scripts/servers (scripts/test.sh and CI start them and export their
variables); a server whose variables are missing is skipped with the reason:
  swift-s3api: WSP_TEST_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (AWS_REGION)
  radosgw:     WSP_TEST_RGW_ENDPOINT, WSP_TEST_RGW_ACCESS_KEY_ID, WSP_TEST_RGW_SECRET_ACCESS_KEY
boto3 (botocore) is the independent client that checks what the tools stored.
"""
import collections
import concurrent.futures
import gzip
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid

import pytest

import conftest
from conftest import BIN, NOW, REPO, change_tree, gen_tree, read, records, run, sh, wsp_files
from proxylib import Proxy, proxies  # noqa: F401 (a fixture)

SERVERS = {
    "swift-s3api": ("WSP_TEST_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"),
    "radosgw": ("WSP_TEST_RGW_ENDPOINT", "WSP_TEST_RGW_ACCESS_KEY_ID", "WSP_TEST_RGW_SECRET_ACCESS_KEY", "WSP_TEST_RGW_REGION"),
}


class Server:
    def __init__(self, name):
        endpoint, key, secret, region = SERVERS[name]
        missing = [v for v in (endpoint, key, secret) if not os.environ.get(v)]
        if missing:
            pytest.skip(f"{name}: {', '.join(missing)} not set (start it with scripts/servers and eval its env)")
        self.name = name
        self.endpoint = os.environ[endpoint]
        self.key = os.environ[key]
        self.secret = os.environ[secret]
        self.region = os.environ.get(region) or "us-east-1"

    def env(self, home, endpoint=None, key=None, secret=None, trace=False):
        """The tools' environment: credentials as AWS_* variables only, no profile files."""
        return {
            "AWS_ACCESS_KEY_ID": key or self.key,
            "AWS_SECRET_ACCESS_KEY": secret or self.secret,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            "AWS_ENDPOINT_URL_S3": "", "AWS_PROFILE": "", "AWS_SESSION_TOKEN": "", "AWS_DEFAULT_REGION": "",
            "AWS_CONFIG_FILE": str(home / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
            "WSP_HTTP_TRACE": "1" if trace else "",
        }

    def boto(self):
        boto3 = pytest.importorskip("boto3", reason="boto3 checks what the tools stored")
        from botocore.config import Config
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.key,
                            aws_secret_access_key=self.secret, region_name=self.region,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5},
                                          request_checksum_calculation="when_required",
                                          response_checksum_validation="when_required"))


@pytest.fixture(params=list(SERVERS))
def server(request):
    return Server(request.param)


@pytest.fixture
def bucket(server):
    """A fresh bucket name; the bucket and its objects are removed afterwards."""
    name = f"wsp-{server.name[:5]}-{uuid.uuid4().hex[:10]}"
    yield name
    try:
        c = server.boto()
        keys = [{"Key": o["Key"]} for page in c.get_paginator("list_objects_v2").paginate(Bucket=name)
                for o in page.get("Contents", [])]
        # Batches of 100 in parallel: Swift deletes the keys of one batch one by one.
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: c.delete_objects(Bucket=name, Delete={"Objects": keys[i:i + 100], "Quiet": True}),
                          range(0, len(keys), 100)))
        c.delete_bucket(Bucket=name)
    except Exception as e:  # the bucket may never have been created
        print(f"cleanup of {name}: {e}", file=sys.stderr)


def q(*args):
    return " ".join(shlex.quote(str(a)) for a in args)


def backup(store, root, spool, env, create=True):
    extra = "--create-bucket " if create else ""
    p = sh(f"wsp-find --root {q(root)} | wsp-snap --spool {q(spool)} | wsp-push {extra}{q(store)}", env=env)
    return records(p.stdout), p


def restore(store, root, spool, env, *globs, before=None):
    b = f"--before {q(before)} " if before else ""
    p = sh(f"wsp-pull list {b}{q(store)} {q(*globs)} | wsp-pull get --spool {q(spool)} {q(store)}"
           f" | wsp-merge --root {q(root)}", env=env)
    return records(p.stdout), p


def same_tree(a, b):
    fa, fb = wsp_files(a), wsp_files(b)
    assert sorted(fa) == sorted(fb)
    for k in fa:
        assert read(fa[k]) == read(fb[k]), k


def stored_objects(server, bucket, prefix):
    """key -> bytes of every object under prefix, read with boto3."""
    c = server.boto()
    out = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = c.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
    return out


def check_objects(objects, prefix, tree):
    """Every object is a gzip of a whisper file of the tree whose SHA-256 is in its key (or
    the store's marker, written by pushes with --state)."""
    files = {os.path.splitext(rel)[0].replace(os.sep, "."): read(p) for rel, p in wsp_files(tree).items()}
    seen = set()
    for key, data in objects.items():
        assert key.startswith(prefix), key
        if key == prefix + ".wsp-store-id":
            assert len(data.strip()) == 32, data
            continue
        metric, name = key[len(prefix):].rsplit("/", 1)
        digest = name.split(".")[1]
        raw = gzip.decompress(data)
        assert hashlib.sha256(raw).hexdigest() == digest, key
        assert raw == files[metric], key
        seen.add(metric)
    assert seen == set(files)


def trace_requests(stderr):
    """(METHOD, URL) of each request in a WSP_HTTP_TRACE=1 stderr."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("wsp-http: "):
            method, url = line.split(" ")[1:3]
            out.append((method, url))
    return out


def test_round_trip_dedup_and_globs(server, bucket, tmp_path):
    tree = gen_tree(tmp_path / "whisper", files=24)
    store = f"s3://{bucket}/node1"
    env = server.env(tmp_path)
    out, _ = backup(store, tree, tmp_path / "spool", env)
    assert len(out) == 24 and {r[5] for r in out} == {"stored"}
    assert all(r[3] == f"node1/{r[0]}/{r[1]}.{r[2]}.wsp.gz" for r in out)
    # What boto3 reads back: a gzip of each file, its SHA-256 in the key, nothing else.
    check_objects(stored_objects(server, bucket, "node1/"), "node1/", tree)

    # Unchanged: nothing is stored again, and no PUT is sent.
    traced = server.env(tmp_path, trace=True)
    again, p = backup(store, tree, tmp_path / "spool", traced, create=False)
    assert {r[5] for r in again} == {"unchanged"} and len(again) == 24
    assert [m for m, _ in trace_requests(p.stderr) if m == "PUT"] == []

    # Everything back, byte for byte.
    restored, _ = restore(store, tmp_path / "restored", tmp_path / "spool2", env, "*")
    assert {r[1] for r in restored} == {"created"}
    same_tree(tree, tmp_path / "restored")

    # A glob subset restores only its metrics.
    restore(store, tmp_path / "subset", tmp_path / "spool3", env, "servers.host001.*", "*.mem.free")
    want = sorted(k for k in wsp_files(tree) if k.startswith("servers/host001/") or k.endswith("mem/free.wsp"))
    assert sorted(wsp_files(tmp_path / "subset")) == want
    for k in want:
        assert read(tmp_path / "subset" / k) == read(tree / k)


def test_wrappers_with_s3_backend(server, bucket, tmp_path):
    tree = gen_tree(tmp_path / "whisper", files=8)
    env = server.env(tmp_path)
    env["PATH"] = BIN + os.pathsep + os.environ["PATH"]
    common = ["--lockfile", tmp_path / "lock", "--logfile", tmp_path / "log", "--stampfile", tmp_path / "stamp",
              "-b", bucket, "--storage-path", "node1", "--endpoint", server.endpoint]
    def wrap(script, *args):
        return conftest.wrap(os.path.join(REPO, "scripts", script), *args, env=env)
    wrap("backup.sh", "-p", tree, "--create-bucket", "-r", "2", *common, "s3", server.region)
    check_objects(stored_objects(server, bucket, "node1/"), "node1/", tree)
    again = wrap("backup.sh", "-p", tree, "-r", "2", *common, "s3", server.region)
    assert "8 files seen, 0 stored, 8 unchanged, 0 failed" in again.stderr, again.stderr[-2000:]
    listed = wrap("restore.sh", *common, "list", "s3")
    assert "8 compressed whisper databases found." in listed.stdout
    wrap("restore.sh", "-p", tmp_path / "restored", *common, "s3")
    same_tree(tree, tmp_path / "restored")


def test_retention_and_before(server, bucket, tmp_path):
    tree = gen_tree(tmp_path / "whisper", files=6, schemas="small")
    store = f"s3://{bucket}/node1"
    env = server.env(tmp_path)
    runs, contents = [], []
    for i in range(3):
        if i:
            time.sleep(1.1)  # versions one second apart: TIME has second resolution
            change_tree(tree, 1.0, seed=70 + i, now=NOW + 600 * i)
        contents.append({k: read(v) for k, v in wsp_files(tree).items()})
        out, _ = backup(store, tree, tmp_path / "spool", env)
        assert {r[5] for r in out} == {"stored"}
        runs.append({r[0]: r for r in out})
    metrics = sorted(runs[0])

    every = records(run("wsp-pull", "list", "--all", store, "*", env=env, check=True).stdout)
    assert len(every) == 18
    # --before the second run's time picks the second version of each metric.
    t2 = max(r[1] for r in runs[1].values())
    chosen = records(run("wsp-pull", "list", "--before", t2, store, "*", env=env, check=True).stdout)
    assert {r[0]: r[2] for r in chosen} == {m: runs[1][m][2] for m in metrics}
    restore(store, tmp_path / "at-t2", tmp_path / "spool2", env, "*", before=t2)
    got = {k: read(v) for k, v in wsp_files(tmp_path / "at-t2").items()}
    assert got == contents[1]

    # --keep 2 deletes the oldest version of each metric, and only that.
    dry = run("wsp-prune", "--keep", "2", "--dry-run", store, *metrics, env=env, check=True)
    assert {r[5] for r in records(dry.stdout)} == {"would-delete"}
    assert len(records(run("wsp-pull", "list", "--all", store, "*", env=env, check=True).stdout)) == 18
    pruned = records(run("wsp-prune", "--keep", "2", store, *metrics, env=env, check=True).stdout)
    assert sorted((r[0], r[2], r[5]) for r in pruned) == sorted((m, runs[0][m][2], "deleted") for m in metrics)
    left = records(run("wsp-pull", "list", "--all", store, "*", env=env, check=True).stdout)
    assert sorted((r[0], r[2]) for r in left) == sorted((m, runs[i][m][2]) for m in metrics for i in (1, 2))
    keys = set(stored_objects(server, bucket, "node1/"))
    assert keys == {r[3] for r in left}


def test_listing_pages_past_1000_objects(server, bucket, tmp_path):
    """1100 metrics under one prefix: listings page by continuation token and miss nothing."""
    one = gen_tree(tmp_path / "one", files=1, schemas="small")
    raw = read(next(iter(wsp_files(one).values())))
    body, digest = gzip.compress(raw), hashlib.sha256(raw).hexdigest()
    c = server.boto()
    c.create_bucket(Bucket=bucket)
    names = [f"big.m{i:04d}" for i in range(1100)]
    keys = [f"node1/{m}/20261101T000000Z.{digest}.wsp.gz" for m in names] + [f"node1/zz.other/20261101T000000Z.{digest}.wsp.gz"]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: c.put_object(Bucket=bucket, Key=k, Body=body), keys))
    store = f"s3://{bucket}/node1"

    p = run("wsp-pull", "list", store, "big.*", env=server.env(tmp_path, trace=True), check=True)
    listed = records(p.stdout)
    assert [r[0] for r in listed] == names
    assert all(r[2] == digest and r[4] == str(len(body)) for r in listed)
    lists = [u for m, u in trace_requests(p.stderr) if m == "GET" and "list-type=2" in u and "max-keys=1&" not in u]
    assert len(lists) == 2 and "continuation-token=" in lists[1], lists

    # The whole store, as wsp-prune --all reads it: nothing to delete with one version each.
    p = run("wsp-prune", "--all", "--keep", "1", store, env=server.env(tmp_path, trace=True), check=True)
    assert p.stdout == ""
    assert len([u for m, u in trace_requests(p.stderr) if m == "GET" and "list-type=2" in u and "max-keys=1&" not in u]) == 2

    restore(store, tmp_path / "restored", tmp_path / "spool", server.env(tmp_path), "big.m000?")
    got = wsp_files(tmp_path / "restored")
    assert len(got) == 10 and all(read(v) == raw for v in got.values())


AWKWARD = ["we ird.a b", "plus+sign.x+y", "colon:metric.a:b", "percent%20x.z%2F", "unicode.ünïcödé.日本",
           "tilde~.q", "query.a?b=c&d#e", "mixed.a+b c:d%e~f'(x)*!$,;@["]


def test_awkward_metric_names(server, bucket, tmp_path):
    src = gen_tree(tmp_path / "gen", files=len(AWKWARD), schemas="small")
    tree = tmp_path / "whisper"
    for name, path in zip(AWKWARD, sorted(wsp_files(src).values())):
        dest = tree / (name.replace(".", "/") + ".wsp")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    store = f"s3://{bucket}/node 1+"
    env = server.env(tmp_path)
    out, _ = backup(store, tree, tmp_path / "spool", env)
    assert sorted(r[0] for r in out) == sorted(AWKWARD) and {r[5] for r in out} == {"stored"}
    # Keys are the metric names exactly (encoded once on the wire, never twice).
    objects = stored_objects(server, bucket, "node 1+/")
    assert sorted(k.split("/")[1] for k in objects) == sorted(AWKWARD)
    check_objects(objects, "node 1+/", tree)
    again, _ = backup(store, tree, tmp_path / "spool", env, create=False)
    assert {r[5] for r in again} == {"unchanged"}
    restore(store, tmp_path / "restored", tmp_path / "spool2", env, "*")
    same_tree(tree, tmp_path / "restored")
    # Metric names as records: each lists its own (awkward) prefix.
    p = run("wsp-pull", "list", store, input="".join(m + "\n" for m in AWKWARD), env=env, check=True)
    assert [r[0] for r in records(p.stdout)] == AWKWARD


def test_profile_from_aws_files(server, bucket, tmp_path):
    """AWS_PROFILE with ~/.aws/credentials and ~/.aws/config, and no AWS_* keys at all."""
    aws = tmp_path / "home" / ".aws"
    aws.mkdir(parents=True)
    (aws / "credentials").write_text(f"[default]\naws_access_key_id = nobody\naws_secret_access_key = dflt-Secret-42\n\n"
                                     f"[wsp]\naws_access_key_id = {server.key}\naws_secret_access_key = {server.secret}\n")
    (aws / "config").write_text(f"[profile wsp]\nregion = {server.region}\ns3 =\n    endpoint_url = {server.endpoint}\n"
                                f"    addressing_style = path\n")
    env = {k: "" for k in server.env(tmp_path)}
    env.update({"HOME": str(tmp_path / "home"), "AWS_PROFILE": "wsp"})
    tree = gen_tree(tmp_path / "whisper", files=3, schemas="small")
    out, _ = backup(f"s3://{bucket}/node1", tree, tmp_path / "spool", env)
    assert {r[5] for r in out} == {"stored"}
    env["AWS_PROFILE"] = "default"
    p = run("wsp-pull", "list", "--endpoint", server.endpoint, f"s3://{bucket}/node1", "*", env=env)
    assert p.returncode == 2 and "wrong credentials" in p.stderr and "dflt-Secret-42" not in p.stderr


def one_line_error(p, *must):
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    for m in must:
        assert m in lines[0], lines[0]
    return lines[0]


def test_wrong_credentials_and_missing_bucket(server, bucket, tmp_path):
    tree = gen_tree(tmp_path / "whisper", files=2, schemas="small")
    store = f"s3://{bucket}/node1"
    out, _ = backup(store, tree, tmp_path / "spool", server.env(tmp_path))
    snaps = records(run("wsp-snap", "--spool", tmp_path / "spool", "--root", tree, out[0][0], check=True).stdout)
    record = "\t".join(snaps[0])

    bad = "wrong-Secret+/" + uuid.uuid4().hex
    for tool, args in [("wsp-push", [store, record]), ("wsp-pull", ["list", store, "*"]),
                       ("wsp-prune", ["--keep", "1", store, out[0][0]])]:
        p = run(tool, *args, env=server.env(tmp_path, secret=bad))
        assert p.returncode == 2, (tool, p.returncode, p.stderr)
        line = one_line_error(p, f"{tool}: {store}: ", "wrong credentials", "SignatureDoesNotMatch")
        assert bad not in p.stderr and server.secret not in p.stderr and p.stdout == ""
        assert server.key not in line
    p = run("wsp-pull", "list", store, "*", env=server.env(tmp_path, key="WSPNOSUCHKEY0000XXXX"))
    assert p.returncode == 2
    one_line_error(p, "wrong credentials")

    missing = f"s3://{bucket}-missing/node1"
    p = run("wsp-pull", "list", missing, "*", env=server.env(tmp_path))
    assert p.returncode == 2
    one_line_error(p, f"wsp-pull: {missing}: ", "does not exist", "--create-bucket")
    p = run("wsp-push", missing, record, env=server.env(tmp_path))
    assert p.returncode == 2 and p.stdout == ""
    # Nothing was created by the failed runs.
    assert f"{bucket}-missing" not in [b["Name"] for b in server.boto().list_buckets()["Buckets"]]
    # A clock 20 minutes off (the proxy moves x-amz-date as such a clock would set it).
    px = Proxy(tmp_path, server.endpoint, faults=",".join(["skew:-1200"] * 20))
    try:
        p = run("wsp-pull", "list", store, "*", env=server.env(tmp_path, endpoint=px.url))
    finally:
        px.stop()
    assert p.returncode == 2
    one_line_error(p, f"wsp-pull: {store}: list: clock skew", "RequestTimeTooSkewed")
    # A server that is down: after the retries, a failed run (exit 1), as for Swift and Keystone.
    p = run("wsp-pull", "list", "--retries", "1", store, "*", env=server.env(tmp_path, endpoint="http://127.0.0.1:9"))
    assert p.returncode == 1
    one_line_error(p, f"wsp-pull: {store}: list: ", "onnect")


def test_faults_still_give_a_complete_verified_backup(server, bucket, tmp_path, proxies):
    tree = gen_tree(tmp_path / "whisper", files=8, schemas="small")
    store = f"s3://{bucket}/node1"
    # Every request is first dropped (no answer), then answered 503 SlowDown.
    a = Proxy(tmp_path, server.endpoint, faults="drop,503")
    proxies.append(a)
    out, _ = backup(store, tree, tmp_path / "spool", server.env(tmp_path, endpoint=a.url))
    assert len(out) == 8 and {r[5] for r in out} == {"stored"}
    by_target = collections.defaultdict(list)
    for method, target, status, fault, _ in a.entries():
        by_target[(method, target)].append(fault)
    puts = {t: f for t, f in by_target.items() if t[0] == "PUT" and "/node1/" in t[1]}
    assert len(puts) == 8 and all(f[:2] == ["drop", "503"] and f[-1] == "pass" for f in puts.values()), puts
    # Verified independently of the tools.
    check_objects(stored_objects(server, bucket, "node1/"), "node1/", tree)

    # Restore through connections reset and bodies cut half way.
    b = Proxy(tmp_path, server.endpoint, faults="cut,reset")
    proxies.append(b)
    restore(store, tmp_path / "restored", tmp_path / "spool2", server.env(tmp_path, endpoint=b.url), "*")
    same_tree(tree, tmp_path / "restored")
    gets = [e for e in b.entries() if e[0] == "GET" and ".wsp.gz" in e[1]]
    assert {e[3] for e in gets} >= {"cut", "reset", "pass"}

    # A server that keeps failing: each record fails on stderr, exit 1, nothing reported stored.
    c = Proxy(tmp_path, server.endpoint, faults=",".join(["503"] * 10), match="^PUT ")
    proxies.append(c)
    tree2 = gen_tree(tmp_path / "whisper2", files=3, schemas="small", seed=9)
    p = sh(f"wsp-find --root {q(tree2)} | wsp-snap --spool {q(tmp_path / 'spool3')} | wsp-push --retries 1 {q(f's3://{bucket}/node2')}",
           env=server.env(tmp_path, endpoint=c.url), check=False)
    assert p.returncode == 1 and p.stdout == ""
    failures = [l for l in p.stderr.splitlines() if l.startswith("wsp-push: servers.")]
    assert len(failures) == 3 and all("HTTP 503 SlowDown" in l for l in failures), p.stderr


def test_request_counts(server, bucket, tmp_path, proxies):
    """Requests per metric for a first backup, an unchanged re-run and a restore, counted at
    a pass-through proxy: the bare pipeline (dedup by listing each metric), and with
    --state (unchanged files cost no request)."""
    n = 20
    tree = gen_tree(tmp_path / "whisper", files=n)
    # wsp-snap vouches for a file's stat only once it is 2 s old (see README, state).
    time.sleep(2.2)
    px = Proxy(tmp_path, server.endpoint)
    proxies.append(px)
    env = server.env(tmp_path, endpoint=px.url)
    st = tmp_path / "state"

    def stateful(store, create):
        sh(f"wsp-find --root {q(tree)} | wsp-snap --state {q(st)} --spool {q(tmp_path / 'spool')}"
           f" | wsp-push --state {q(st)} {'--create-bucket ' if create else ''}{q(store)}", env=env)

    counts = {}
    plain, state = f"s3://{bucket}/plain", f"s3://{bucket}/state"
    for phase, action in [
            ("first backup", lambda: backup(plain, tree, tmp_path / "spool", env)),
            ("unchanged re-run", lambda: backup(plain, tree, tmp_path / "spool", env, create=False)),
            ("restore", lambda: restore(plain, tmp_path / "restored", tmp_path / "spool2", env, "*")),
            ("first backup --state", lambda: stateful(state, True)),
            ("unchanged re-run --state", lambda: stateful(state, False))]:
        start = px.mark()
        action()
        counts[phase] = collections.Counter("list" if "list-type=2" in e[1] else e[0] for e in px.entries()[start:])
    same_tree(tree, tmp_path / "restored")
    print(f"\n{server.name}, requests for {n} metrics:")
    for phase, c in counts.items():
        print(f"  {phase}: {sum(c.values())} ({', '.join(f'{k} {v}' for k, v in sorted(c.items()))})")
    # One opening listing per process, then per metric: first backup a listing and a PUT;
    # unchanged a listing; restore one GET (the listing of all metrics is one page).
    assert counts["first backup"] == {"list": n + 1, "PUT": n + 1}   # + the bucket's creation
    assert counts["unchanged re-run"] == {"list": n + 1}
    assert counts["restore"] == {"list": 3, "GET": n}
    # With --state (same bucket, another prefix): the first push writes the store's marker
    # and reads it back; later wsp-snap and wsp-push each open the store and read the marker,
    # wsp-snap lists the store once (one page per 1000 objects) to check what the state
    # vouches for, and an unchanged file costs no request at all.
    assert counts["first backup --state"] == {"list": n + 1, "PUT": n + 1, "GET": 2}
    assert counts["unchanged re-run --state"] == {"list": 3, "GET": 2}

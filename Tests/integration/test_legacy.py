"""Stores written by the Python whisper-backup: `METRIC/2015-01-26T15:41:55+00:00.wsp.gz` with
the hex SHA-1 of the uncompressed file in a `.sha1` beside it, under a storage path or not.
Built here from generated trees the way the original's disk backend wrote them; the tools
list, verify, restore, prune and purge them, alone or mixed with the new layout."""
import gzip
import hashlib
import os
import shutil

import pytest
import whisper

from conftest import NOW, REPO, change_tree, gen_tree, read, records, run, sh, wsp_files
from safetylib import bad_versions, legacy_put, legacy_time, store_objects

WRAPPER = os.path.join(REPO, "scripts", "whisper-backup.sh")
DAY = 86400


def metric_of(rel):
    return rel[:-len(".wsp")].replace("/", ".")


def legacy_backup(root, bucket, storage_path="", when=NOW - 10 * DAY):
    """One run of the original's backup over `root`: every file stored at time `when`.
    Returns {metric: bytes}."""
    out = {}
    for rel, path in wsp_files(root).items():
        data = read(path)
        legacy_put(str(bucket), storage_path, metric_of(rel), when, data)
        out[metric_of(rel)] = data
    return out


@pytest.fixture(params=["", "graphite/node1/", "/graphite/node1/"], ids=["no-path", "path", "slash-path"])
def storage_path(request):
    return request.param


def store_url(bucket, storage_path):
    # The disk backend joined bucket + "/" + key: a storage path's leading "/" lands in the same place.
    return f"file://{bucket}/{storage_path.strip('/')}".rstrip("/") + "/"


def test_legacy_store_restores_byte_identical_files(tmp_path, spool, storage_path):
    root = gen_tree(tmp_path / "w", files=24)
    bucket = tmp_path / "bucket"
    old = legacy_backup(root, bucket, storage_path, NOW - 10 * DAY)
    change_tree(root, 0.5, seed=5, now=NOW + 60)
    new = legacy_backup(root, bucket, storage_path, NOW - 2 * DAY)
    store = store_url(bucket, storage_path)
    # The keys look as the original made them.
    keys = sorted(store_objects(str(bucket)))
    prefix = storage_path.lstrip("/")
    assert all(k.startswith(prefix) and (k.endswith("+00:00.wsp.gz") or k.endswith("+00:00.sha1")) for k in keys)
    assert len(keys) == 24 * 2 * 2

    listed = records(sh(f"wsp-pull list --all {store} '*'").stdout)
    assert len(listed) == 48
    for m, t, h, key, size in listed:
        assert len(h) == 40 and key.startswith(m + "/") and key.endswith("+00:00.wsp.gz")
    # Newest per metric is the second run; --before picks the first.
    for before, expect in [(None, new), (legacy_time(NOW - 5 * DAY), old)]:
        out = tmp_path / f"restored-{'new' if before is None else 'old'}"
        b = f"--before {before}" if before else ""
        p = sh(f"wsp-pull list {b} {store} '*' | wsp-pull get --spool {spool} {store} | wsp-merge --root {out}")
        assert [r[1] for r in records(p.stdout)] == ["created"] * 24
        got = {metric_of(rel): read(p) for rel, p in wsp_files(out).items()}
        assert got == expect
        for m, data in got.items():
            # the restored file's SHA-1 is the one the original stored beside it
            sha = [r for r in listed if r[0] == m and r[2] == hashlib.sha1(data).hexdigest()]
            assert sha, m
            assert whisper.info(str(out / (m.replace(".", "/") + ".wsp")))["archives"]
    # The whole store verifies with the SHA-1s.
    p = sh(f"wsp-pull verify --spool {spool} {store} '*'")
    assert [r[5] for r in records(p.stdout)] == ["ok"] * 48


def test_wrapper_restores_a_legacy_bucket_with_the_original_options(tmp_path, storage_path):
    root = gen_tree(tmp_path / "w", files=16)
    bucket = tmp_path / "bucket"
    data = legacy_backup(root, bucket, storage_path)
    out = tmp_path / "restored"
    opts = ["--nolock", "--nolog", "--nostamp"] + (["--storage-path", storage_path] if storage_path else [])
    sh(f"bash {WRAPPER} {' '.join(opts)} -p {out} -b {bucket} restore disk")
    assert {metric_of(rel): read(p) for rel, p in wsp_files(out).items()} == data
    p = sh(f"bash {WRAPPER} {' '.join(opts)} -b {bucket} list disk")
    assert "16 compressed whisper databases found." in p.stdout


def test_a_store_holding_both_layouts_lists_both(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=12)
    bucket = store[len("file://"):]
    old = legacy_backup(root, bucket, "", NOW - 10 * DAY)
    change_tree(root, 1.0, seed=9, now=NOW + 60)
    p = sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}")
    assert {r[5] for r in records(p.stdout)} == {"stored"}   # a SHA-1 cannot vouch for a SHA-256
    listed = records(sh(f"wsp-pull list --all {store} '*'").stdout)
    by_metric = {}
    for r in listed:
        by_metric.setdefault(r[0], []).append(r)
    assert len(by_metric) == 12
    for m, rs in by_metric.items():
        assert [len(r[2]) for r in rs] == [40, 64]   # oldest first: legacy, then new
    # newest is the new layout; before the new backup, the legacy one
    out = tmp_path / "old"
    sh(f"wsp-pull list --before {legacy_time(NOW - 5 * DAY)} {store} '*' | wsp-pull get --spool {spool} {store} | wsp-merge --root {out}")
    assert {metric_of(rel): read(p) for rel, p in wsp_files(out).items()} == old
    out = tmp_path / "new"
    sh(f"wsp-pull list {store} '*' | wsp-pull get --spool {spool} {store} | wsp-merge --root {out}")
    assert {rel: read(p) for rel, p in wsp_files(out).items()} == {rel: read(p) for rel, p in wsp_files(root).items()}
    assert [r[5] for r in records(sh(f"wsp-pull verify --spool {spool} {store} '*'").stdout)] == ["ok"] * 24


def test_interrupted_legacy_uploads_are_skipped_reported_and_pruned(tmp_path, store, spool):
    """The original wrote the .wsp.gz, then the .sha1: a crash between left a version it never
    saw itself. list skips it (the previous version is restored), verify reports it, and prune
    removes it (and a stray .sha1) once a later complete version exists."""
    root = gen_tree(tmp_path / "w", files=3, schemas="small")
    bucket = store[len("file://"):]
    (m, path), = [(metric_of(r), p) for r, p in wsp_files(root).items()][:1]
    data = read(path)
    k1 = legacy_put(bucket, "", m, NOW - 30 * DAY, data)
    k2 = legacy_put(bucket, "", m, NOW - 20 * DAY, data + b"")   # complete
    k3 = legacy_put(bucket, "", m, NOW - 10 * DAY, data)
    os.unlink(os.path.join(bucket, k3[:-len(".wsp.gz")] + ".sha1"))   # newest: .sha1 never written
    k0 = legacy_put(bucket, "", m, NOW - 40 * DAY, data)
    os.unlink(os.path.join(bucket, k0))   # oldest: a delete that removed only the .wsp.gz
    p = run("wsp-pull", "list", "--all", store, m)
    assert p.returncode == 0
    assert [r[3] for r in records(p.stdout)] == [k1, k2]
    assert "without their .sha1" in p.stderr
    p = run("wsp-pull", "list", store, m)
    assert [r[3] for r in records(p.stdout)] == [k2]
    p = run("wsp-pull", "verify", "--spool", spool, store, m)
    assert p.returncode == 1
    assert [(r[3], r[5]) for r in records(p.stdout)] == [(k1, "ok"), (k2, "ok"), (k3, "bad")]
    assert f"wsp-pull: {m}: {k3}: no .sha1" in p.stderr
    # Prune --keep 1: k1 and its .sha1 go; the stray .sha1 of k0 is older than what is kept and
    # goes too; k3 is newer than the kept version (it could be an upload in progress) and stays.
    p = run("wsp-prune", "--keep", "1", store, m)
    assert p.returncode == 0, p.stderr
    assert [r[3] for r in records(p.stdout)] == [k1]
    left = sorted(store_objects(bucket))
    assert left == sorted([k2, k2[:-7] + ".sha1", k3])


def test_purge_of_a_legacy_metric_removes_all_its_objects(tmp_path, store):
    root = gen_tree(tmp_path / "w", files=4, schemas="small")
    bucket = store[len("file://"):]
    legacy_backup(root, bucket, "", NOW - 100 * DAY)
    (victim,) = [r for r in wsp_files(root)][:1]
    m = metric_of(victim)
    stray = legacy_put(bucket, "", m, NOW - 50 * DAY, b"x")
    os.unlink(os.path.join(bucket, stray))   # a stray .sha1 as well
    os.unlink(os.path.join(str(root), victim))
    listing = sh(f"wsp-find --root {root}").stdout
    p = run("wsp-prune", "--gone-after", "7", "--now", f"@{NOW}", store, input=listing)
    assert p.returncode == 0 and p.stdout == ""   # first seen gone: marked, kept
    assert any(k.startswith(m + "/gone-since.") for k in store_objects(bucket))
    p = run("wsp-prune", "--gone-after", "7", "--now", f"@{NOW + 8 * DAY}", store, input=listing)
    assert p.returncode == 0, p.stderr
    assert [r[0] for r in records(p.stdout)] == [m]
    assert not [k for k in store_objects(bucket) if k.startswith(m + "/")]
    assert not os.path.exists(os.path.join(bucket, m))
    assert len({k.split("/")[0] for k in store_objects(bucket)}) == 3


def test_bad_legacy_objects_are_refused(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=4, schemas="small")
    bucket = store[len("file://"):]
    legacy_backup(root, bucket)
    keys = sorted(k for k in store_objects(bucket) if k.endswith(".wsp.gz"))
    # a flipped bit in one object, a wrong SHA-1 beside another, garbage in a third's .sha1
    p0 = os.path.join(bucket, keys[0])
    b = bytearray(read(p0)); b[len(b) // 2] ^= 0x10; open(p0, "wb").write(bytes(b))
    open(os.path.join(bucket, keys[1][:-7] + ".sha1"), "w").write("0" * 40)
    open(os.path.join(bucket, keys[2][:-7] + ".sha1"), "w").write("not a digest")
    p = run("wsp-pull", "verify", "--spool", spool, store, "*")
    assert p.returncode == 1
    status = {r[3]: r[5] for r in records(p.stdout)}
    assert status == {keys[0]: "bad", keys[1]: "bad", keys[2]: "bad", keys[3]: "ok"}
    assert "SHA-1" in p.stderr and "not a SHA-1 digest" in p.stderr
    out = tmp_path / "restored"
    p = sh(f"wsp-pull list {store} '*' | wsp-pull get --spool {spool} {store} | wsp-merge --root {out}", check=False)
    assert p.returncode == 1
    assert len(wsp_files(out)) == 1   # only the good one; nothing unverified was written
    assert [f for f in os.listdir(spool) if not f.startswith(".")] == []


# ---- an S3 bucket or a Swift container the Python tool filled -----------------------------------

class S3Legacy:
    """A fresh bucket on the test S3 server, filled through boto3 as the original did."""

    def __init__(self, tmp_path):
        missing = [v for v in ("WSP_TEST_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not os.environ.get(v)]
        if missing:
            pytest.skip(f"{', '.join(missing)} not set (scripts/servers/swift-aio.sh)")
        boto3 = pytest.importorskip("boto3")
        from botocore.config import Config
        self.client = boto3.client("s3", endpoint_url=os.environ["WSP_TEST_S3_ENDPOINT"],
                                   region_name=os.environ.get("AWS_REGION", "us-east-1"),
                                   config=Config(s3={"addressing_style": "path"}))
        self.bucket = f"wsp-legacy-{os.urandom(5).hex()}"
        self.client.create_bucket(Bucket=self.bucket)
        self.backend = "s3"
        self.env = {"AWS_ENDPOINT_URL": os.environ["WSP_TEST_S3_ENDPOINT"], "AWS_PROFILE": "",
                    "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}

    def url(self, prefix):
        return f"s3://{self.bucket}/{prefix}"

    def put(self, key, body):
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)

    def keys(self):
        return [o["Key"] for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
                for o in page.get("Contents", [])]

    def close(self):
        for k in self.keys():
            self.client.delete_object(Bucket=self.bucket, Key=k)
        self.client.delete_bucket(Bucket=self.bucket)


class SwiftLegacy:
    """A fresh container on the test Swift server (v1 auth), filled over its HTTP API."""

    def __init__(self, tmp_path):
        import urllib.request
        missing = [v for v in ("ST_AUTH", "ST_USER", "ST_KEY") if not os.environ.get(v)]
        if missing:
            pytest.skip(f"{', '.join(missing)} not set (scripts/servers/swift-aio.sh)")
        self.req = urllib.request
        self.auth()
        self.container = f"wsp-legacy-{os.urandom(5).hex()}"
        self.call("PUT", "")
        self.backend = "swift"
        self.bucket = self.container
        self.env = {}

    def auth(self):
        r = self.req.urlopen(self.req.Request(os.environ["ST_AUTH"], headers={
            "X-Auth-User": os.environ["ST_USER"], "X-Auth-Key": os.environ["ST_KEY"]}))
        self.storage, self.token = r.headers["X-Storage-Url"], r.headers["X-Auth-Token"]

    def request(self, path, method="GET", body=None):
        """One request; a token that expired (the tests run with short-lived tokens) is renewed once."""
        import urllib.error
        for attempt in (1, 2):
            try:
                return self.req.urlopen(self.req.Request(path, data=body, method=method,
                                                         headers={"X-Auth-Token": self.token})).read()
            except urllib.error.HTTPError as e:
                if e.code != 401 or attempt == 2:
                    raise
                self.auth()

    def call(self, method, key, body=None):
        import urllib.parse
        path = f"{self.storage}/{self.container}" + ("/" + urllib.parse.quote(key, safe="/") if key else "")
        return self.request(path, method, body)

    def url(self, prefix):
        return f"swift://{self.container}/{prefix}"

    def put(self, key, body):
        self.call("PUT", key, body)

    def keys(self):
        import json
        return [o["name"] for o in json.loads(self.request(f"{self.storage}/{self.container}?format=json") or b"[]")]

    def close(self):
        for k in self.keys():
            self.call("DELETE", k)
        self.call("DELETE", "")


@pytest.fixture(params=["s3", "swift"])
def legacy_store(request, tmp_path):
    s = {"s3": S3Legacy, "swift": SwiftLegacy}[request.param](tmp_path)
    yield s
    s.close()


@pytest.mark.parametrize("storage_path", ["", "graphite/node1/", "/graphite/node1/"], ids=["no-path", "path", "slash-path"])
def test_legacy_object_store_restores_with_the_original_options(tmp_path, legacy_store, storage_path):
    """The original's keys are storage path + metric + "/" + time: with a storage path that
    starts with "/", the keys start with "/" too. The same --storage-path finds them, and new
    backups land beside them."""
    st = legacy_store
    root = gen_tree(tmp_path / "w", files=8, schemas="small")
    data = {}
    for rel, path in wsp_files(root).items():
        m, blob = metric_of(rel), read(path)
        key = f"{storage_path}{m}/{legacy_time(NOW - 5 * DAY)}"
        st.put(key + ".wsp.gz", gzip.compress(blob))
        st.put(key + ".sha1", hashlib.sha1(blob).hexdigest().encode())
        data[m] = blob
    keys = st.keys()
    assert all(k.startswith(storage_path) for k in keys) and (storage_path != "/graphite/node1/" or keys[0][0] == "/")
    opts = f"--nolock --nolog --nostamp -b {st.bucket}" + (f" --storage-path {storage_path}" if storage_path else "")
    out = tmp_path / "restored"
    sh(f"bash {WRAPPER} {opts} -p {out} restore {st.backend}", env=st.env)
    assert {metric_of(rel): read(p) for rel, p in wsp_files(out).items()} == data
    # a backup with the same options lands beside the legacy keys; both layouts are listed
    sh(f"bash {WRAPPER} {opts} -p {root} -x -1 backup {st.backend}", env=st.env)
    keys = [k for k in st.keys() if not k.endswith(".wsp-store-id")]
    assert len(keys) == 8 * 3 and all(k.startswith(storage_path) for k in keys)
    p = sh(f"bash {WRAPPER} {opts} list {st.backend}", env=st.env)
    assert "16 compressed whisper databases found." in p.stdout
    url = st.url(storage_path)
    assert [r[5] for r in records(sh(f"wsp-pull verify --spool {tmp_path / 'v'} {url} '*'", env=st.env).stdout)] == ["ok"] * 16

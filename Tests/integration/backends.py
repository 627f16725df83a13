"""Stores the tests change behind the tools' back: a file:// directory, S3 (Swift's s3api and
radosgw, through boto3) and Swift (its HTTP API), each with the keys under `node1/`, and one
node's tree, spool and state backed up to one of them. A server whose variables are missing
is skipped with the reason."""
import os
import shlex
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from conftest import gen_tree, read, records, sh, wsp_files


S3_SERVERS = {
    "swift-s3api": ("WSP_TEST_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"),
    "radosgw": ("WSP_TEST_RGW_ENDPOINT", "WSP_TEST_RGW_ACCESS_KEY_ID", "WSP_TEST_RGW_SECRET_ACCESS_KEY", "WSP_TEST_RGW_REGION"),
}
SWIFT_VARS = ["WSP_TEST_SWIFT_AUTH", "WSP_TEST_SWIFT_USER", "WSP_TEST_SWIFT_KEY"]


def q(*args):
    return " ".join(shlex.quote(str(a)) for a in args)


class FileBackend:
    """A store directory, read and changed with plain file operations."""

    def __init__(self, tmp_path):
        self.dir = tmp_path / "store"
        (self.dir / "node1").mkdir(parents=True)
        self.url = f"file://{self.dir}/node1/"
        self.env = {}
        self.create = ""
        self.root = str(self.dir / "node1") + "/"

    def keys(self):
        out = []
        for d, _, fs in os.walk(self.root):
            out += [os.path.relpath(os.path.join(d, f), self.root) for f in fs if not f.startswith(".wsp-tmp.")]
        return sorted(out)

    def get(self, key):
        return read(self.root + key)

    def put(self, key, data):
        os.makedirs(os.path.dirname(self.root + key), exist_ok=True)
        with open(self.root + key, "wb") as f:
            f.write(data)

    def delete(self, key):
        os.unlink(self.root + key)

    def cleanup(self):
        pass


class S3Backend:
    def __init__(self, name, tmp_path):
        endpoint, key, secret, region = S3_SERVERS[name]
        missing = [v for v in (endpoint, key, secret) if not os.environ.get(v)]
        if missing:
            pytest.skip(f"{name}: {', '.join(missing)} not set (start it with scripts/servers and eval its env)")
        boto3 = pytest.importorskip("boto3", reason="boto3 changes the store behind the tools' back")
        from botocore.config import Config
        self.endpoint, self.region = os.environ[endpoint], os.environ.get(region) or "us-east-1"
        self.bucket = f"wsp-st-{uuid.uuid4().hex[:10]}"
        self.url = f"s3://{self.bucket}/node1/"
        self.create = "--create-bucket"
        self.env = {
            "AWS_ACCESS_KEY_ID": os.environ[key], "AWS_SECRET_ACCESS_KEY": os.environ[secret],
            "AWS_REGION": self.region, "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_S3": "", "AWS_PROFILE": "", "AWS_SESSION_TOKEN": "", "AWS_DEFAULT_REGION": "",
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        }
        self.c = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=os.environ[key],
                              aws_secret_access_key=os.environ[secret], region_name=self.region,
                              config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5},
                                            request_checksum_calculation="when_required",
                                            response_checksum_validation="when_required"))

    def keys(self):
        out = []
        for page in self.c.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="node1/"):
            out += [o["Key"][len("node1/"):] for o in page.get("Contents", [])]
        return sorted(out)

    def get(self, key):
        return self.c.get_object(Bucket=self.bucket, Key="node1/" + key)["Body"].read()

    def put(self, key, data):
        self.c.put_object(Bucket=self.bucket, Key="node1/" + key, Body=data)

    def delete(self, key):
        self.c.delete_object(Bucket=self.bucket, Key="node1/" + key)

    def cleanup(self):
        try:
            keys = [{"Key": "node1/" + k} for k in self.keys()]
            for i in range(0, len(keys), 1000):
                self.c.delete_objects(Bucket=self.bucket, Delete={"Objects": keys[i:i + 1000], "Quiet": True})
            self.c.delete_bucket(Bucket=self.bucket)
        except Exception:
            pass


class SwiftBackend:
    def __init__(self, tmp_path):
        if not all(os.environ.get(v) for v in SWIFT_VARS):
            pytest.skip("Swift all-in-one not running: " + ", ".join(SWIFT_VARS) + " unset (scripts/servers/swift-aio.sh)")
        g = os.environ.get
        self.env = {"ST_AUTH": g(SWIFT_VARS[0]), "ST_USER": g(SWIFT_VARS[1]), "ST_KEY": g(SWIFT_VARS[2]),
                    "OS_AUTH_URL": "", "OS_AUTH_TOKEN": "", "OS_STORAGE_URL": "", "OS_USERNAME": "", "OS_PASSWORD": ""}
        self.container = f"wsp-st-{uuid.uuid4().hex[:10]}"
        self.url = f"swift://{self.container}/node1/"
        self.create = "--create-container"
        self.auth()

    def auth(self, min_life=0):
        """A token; with min_life, one with at least that many seconds left (tempauth hands out
        the user's current token until it expires, however little of its life is left)."""
        while True:
            req = urllib.request.Request(self.env["ST_AUTH"], headers={"X-Auth-User": self.env["ST_USER"], "X-Auth-Key": self.env["ST_KEY"]})
            with urllib.request.urlopen(req, timeout=30) as r:
                self.token, self.storage = r.headers["X-Auth-Token"], r.headers["X-Storage-Url"]
                left = r.headers.get("X-Auth-Token-Expires")
            if left is None or int(left) >= min_life:
                return
            time.sleep(int(left) + 1)

    def http(self, method, path, data=None):
        for attempt in (1, 2):
            req = urllib.request.Request(f"{self.storage}/{self.container}{path}", data=data, method=method,
                                         headers={"X-Auth-Token": self.token})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.read()
            except urllib.error.HTTPError as e:
                if e.code != 401 or attempt == 2:
                    raise
                self.auth()   # the test servers' tokens live seconds (SWIFT_TOKEN_LIFE)

    def keys(self):
        out, marker = [], ""
        while True:
            page = self.http("GET", f"?prefix=node1/&marker={urllib.parse.quote(marker)}").decode().splitlines()
            if not page:
                return sorted(out)
            out += [k[len("node1/"):] for k in page]
            marker = page[-1]

    def get(self, key):
        return self.http("GET", "/" + urllib.parse.quote("node1/" + key))

    def put(self, key, data):
        self.http("PUT", "/" + urllib.parse.quote("node1/" + key), data)

    def delete(self, key):
        self.http("DELETE", "/" + urllib.parse.quote("node1/" + key))

    def cleanup(self):
        try:
            for k in self.keys():
                self.delete(k)
            self.http("DELETE", "")
        except Exception:
            pass


def backend(kind, tmp_path):
    """A fresh store of `kind`: file, swift-s3api, radosgw or swift (skipped when its server is absent)."""
    if kind == "file":
        return FileBackend(tmp_path)
    if kind == "swift":
        return SwiftBackend(tmp_path)
    return S3Backend(kind, tmp_path)


@pytest.fixture(params=["file", "swift-s3api", "radosgw", "swift"])
def be(request, tmp_path):
    b = backend(request.param, tmp_path)
    yield b
    b.cleanup()


@pytest.fixture(params=["file", "swift-s3api", "swift"])
def be3(request, tmp_path):
    """One store of each API (file://, S3, Swift): for the longer suites, which radosgw, a
    second S3 server, would only repeat."""
    b = backend(request.param, tmp_path)
    yield b
    b.cleanup()


class Node:
    """One node's whisper tree, spool and state, backed up to one store."""

    def __init__(self, be, tmp_path, files, name="w", seed=1, schemas="mixed"):
        self.be = be
        self.tmp = tmp_path
        self.root = gen_tree(tmp_path / name, files=files, seed=seed, schemas=schemas)
        self.spool = tmp_path / f"spool-{name}"
        self.spool.mkdir()
        self.state = tmp_path / f"state-{name}"
        self.settle()

    @staticmethod
    def settle():
        # The state vouches for a file's stat only once the file is 2 s old (README, state).
        time.sleep(2.1)

    def backup(self, extra_snap="", extra_push="", env=None, check=True):
        p = sh(f"wsp-find --root {q(self.root)} | wsp-snap --spool {q(self.spool)} --state {q(self.state)} {extra_snap}"
               f" | tee {q(self.spool)}.snaps | wsp-push --state {q(self.state)} {self.be.create} {extra_push} {q(self.be.url)}",
               env=dict(self.be.env, **(env or {})), check=check)
        snaps = records(open(f"{self.spool}.snaps").read())
        return records(p.stdout), snaps, p

    def restore_and_compare(self):
        out = self.tmp / f"restored-{uuid.uuid4().hex[:6]}"
        spool = self.tmp / f"rspool-{uuid.uuid4().hex[:6]}"
        spool.mkdir()
        sh(f"wsp-pull list {q(self.be.url)} '*' | wsp-pull get --spool {q(spool)} {q(self.be.url)} | wsp-merge --root {q(out)}",
           env=self.be.env)
        src, dst = wsp_files(self.root), wsp_files(out)
        assert sorted(src) == sorted(dst)
        for rel in src:
            assert read(src[rel]) == read(dst[rel]), rel


def metric_keys(be, metric):
    return [k for k in be.keys() if k.startswith(metric + "/")]


def versions(be):
    """Keys of every version, full (`.wsp.gz`) and delta (`.wspd.gz`)."""
    return [k for k in be.keys() if k.endswith(".wsp.gz") or k.endswith(".wspd.gz")]


def by_status(out):
    s = {}
    for r in out:
        s.setdefault(r[5], set()).add(r[0])
    return s

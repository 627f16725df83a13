"""The operator matrix: every mode (backup, restore, purge, list) x -m set/unset x -n x -x
(unset, -1, 0, N) on each store (disk, S3 and Swift on the servers scripts/test.sh starts),
with invariants checked after every cell:

- no stored version of a metric that exists on disk was deleted;
- a run with -m changed nothing of a stored metric outside its globs;
- a dry run changed no byte of store, state, target or stamp;
- the summary's numbers equal what the store and the target show;
- the exit status is the documented one (2, nothing done, for -x with restore or list);
- no work directory is left and the lock is free.
"""
import itertools
import os
import re
import shutil
import subprocess
import uuid

import pytest

from conftest import BIN, REPO, gen_tree, records, run

BACKUP = os.path.join(REPO, "scripts", "backup.sh")
RESTORE = os.path.join(REPO, "scripts", "restore.sh")
MODES = ["backup", "restore", "purge", "list"]
GLOB = "*.cpu.*"
GONE = "servers.host000.gone.metric"   # stored, then gone from disk; outside GLOB


def matches(metric):
    return ".cpu." in metric


class Store:
    """One store the wrappers reach through a backend word, and a way to read it back."""

    def __init__(self, kind, tmp):
        g = os.environ.get
        self.kind = kind
        self.env = {}
        if kind == "disk":
            self.args, self.url = ["-b", tmp / "bucket"], f"file://{tmp / 'bucket'}/"
        elif kind == "s3":
            need = ["WSP_TEST_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
            if not all(g(v) for v in need):
                pytest.skip(f"S3 cells SKIPPED: {', '.join(v for v in need if not g(v))} unset "
                            "(start scripts/servers/swift-aio.sh and eval its env)")
            b = f"wsp-matrix-{uuid.uuid4().hex[:10]}"
            self.env = {"AWS_ACCESS_KEY_ID": g("AWS_ACCESS_KEY_ID"), "AWS_SECRET_ACCESS_KEY": g("AWS_SECRET_ACCESS_KEY"),
                        "AWS_REGION": g("AWS_REGION") or "us-east-1", "AWS_ENDPOINT_URL": g("WSP_TEST_S3_ENDPOINT"),
                        "AWS_PROFILE": "", "AWS_CONFIG_FILE": str(tmp / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none")}
            self.args, self.url = ["-b", b, "--storage-path", "node1"], f"s3://{b}/node1/"
        else:
            need = ["WSP_TEST_SWIFT_AUTH", "WSP_TEST_SWIFT_USER", "WSP_TEST_SWIFT_KEY"]
            if not all(g(v) for v in need):
                pytest.skip(f"Swift cells SKIPPED: {', '.join(v for v in need if not g(v))} unset "
                            "(start scripts/servers/swift-aio.sh and eval its env)")
            c = f"wsp-matrix-{uuid.uuid4().hex[:10]}"
            self.env = {"ST_AUTH": g("WSP_TEST_SWIFT_AUTH"), "ST_USER": g("WSP_TEST_SWIFT_USER"),
                        "ST_KEY": g("WSP_TEST_SWIFT_KEY")}
            self.args, self.url = ["-b", c, "--storage-path", "node1"], f"swift://{c}/node1/"
        self.tmp = tmp

    def versions(self):
        """{metric: set of version keys}, from the store's own listing."""
        out = {}
        for r in records(run("wsp-pull", "list", "--all", self.url, "*", env=self.env, check=True).stdout):
            out.setdefault(r[0], set()).add(r[3])
        return out

    def fingerprint(self):
        """Every object with its size and content (disk) or ETag (S3, Swift), markers included."""
        if self.kind == "disk":
            return tree_fingerprint(self.tmp / "bucket")
        if self.kind == "s3":
            import boto3
            from botocore.config import Config
            c = boto3.client("s3", endpoint_url=self.env["AWS_ENDPOINT_URL"], aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                             aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"], region_name=self.env["AWS_REGION"],
                             config=Config(s3={"addressing_style": "path"}))
            bucket = self.url[5:].split("/")[0]
            return sorted((o["Key"], o["Size"], o["ETag"]) for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                          for o in page.get("Contents", []))
        import json
        import urllib.error
        import urllib.request
        container = self.url[8:].split("/")[0]
        # tempauth hands out the user's current token, which may expire a moment later (the
        # tests run with short-lived tokens): a 401 gets a new one, once.
        for attempt in (1, 2):
            req = urllib.request.Request(self.env["ST_AUTH"], headers={"X-Auth-User": self.env["ST_USER"], "X-Auth-Key": self.env["ST_KEY"]})
            with urllib.request.urlopen(req) as r:
                token, storage = r.headers["X-Auth-Token"], r.headers["X-Storage-Url"]
            req = urllib.request.Request(f"{storage}/{container}?format=json&limit=10000", headers={"X-Auth-Token": token})
            try:
                with urllib.request.urlopen(req) as r:
                    return sorted((o["name"], o["bytes"], o["hash"]) for o in json.load(r))
            except urllib.error.HTTPError as e:
                if e.code != 401 or attempt == 2:
                    raise


def tree_fingerprint(*tops):
    out = {}
    for top in map(str, tops):
        if not os.path.exists(top):
            out[top] = None
            continue
        if os.path.isfile(top):
            st = os.stat(top)
            out[top] = (st.st_size, st.st_mtime_ns, open(top, "rb").read())
            continue
        for d, _, fs in os.walk(top):
            out[d] = "dir"
            for f in fs:
                p = os.path.join(d, f)
                st = os.stat(p)
                out[p] = (st.st_size, st.st_mtime_ns, open(p, "rb").read())
    return out


def numbers(stderr, pattern):
    lines = [l for l in stderr.splitlines() if re.search(pattern, l)]
    assert lines, stderr
    return [int(x) for x in re.search(pattern, lines[-1]).groups()]


def wrapper(script, args, env, tmp):
    e = dict(os.environ, WSP_BIN=BIN, TMPDIR=str(tmp / "tmp"), **env)
    e["PATH"] = BIN + os.pathsep + e["PATH"]
    return subprocess.run(["bash", script, *map(str, args)], capture_output=True, text=True, env=e, timeout=120)


@pytest.mark.parametrize("kind", ["disk", "s3", "swift"])
def test_operator_matrix(kind, tmp_path):
    store = Store(kind, tmp_path)
    (tmp_path / "tmp").mkdir()
    root = gen_tree(tmp_path / "w", files=6, schemas="small")
    on_disk = sorted(records(run("wsp-find", "--root", root, check=True).stdout))
    on_disk = [r[0] for r in on_disk]
    gone_path = os.path.join(root, *GONE.split(".")) + ".wsp"
    common = ["--lockfile", tmp_path / "lock", "--logfile", tmp_path / "log", "--stampfile", tmp_path / "stamp",
              "--state", tmp_path / "state", "-p", root, *store.args]

    def reset():
        """The tree's metrics and GONE stored, GONE's file gone from disk, no marker."""
        os.makedirs(os.path.dirname(gone_path), exist_ok=True)
        shutil.copy(os.path.join(root, "servers", "host000", "cpu", "user.wsp"), gone_path)
        p = wrapper(BACKUP, [*common, "--create-bucket", "-x", "3", kind], store.env, tmp_path)
        assert p.returncode == 0, p.stderr
        os.unlink(gone_path)
        os.rmdir(os.path.dirname(gone_path))

    cells = 0
    for mode in MODES:
        reset()
        for subset, dry, x in itertools.product([False, True], [False, True], [None, "-1", "0", "3"]):
            cell = f"{kind} {mode} -m={subset} -n={dry} -x={x}"
            cells += 1
            target = tmp_path / f"target{cells}"
            args = [*common]
            if mode == "restore":
                args = [a if a != root else target for a in args]
            if subset:
                args += ["-m", GLOB]
            if dry:
                args += ["-n"]
            if x is not None:
                args += ["-x", x]
            before, before_fp = store.versions(), store.fingerprint()
            local_before = tree_fingerprint(tmp_path / "state", tmp_path / "stamp", target)
            p = wrapper(RESTORE if mode == "restore" else BACKUP, [*args, mode, kind], store.env, tmp_path)
            after = store.versions()
            why = f"{cell}: exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"

            # exit status as documented
            usage = x is not None and mode in ("restore", "list")
            assert p.returncode == (2 if usage else 0), why
            # no stored version of a metric on disk deleted; -m leaves other metrics alone
            for m in on_disk:
                assert before.get(m, set()) <= after.get(m, set()), why
            if subset:
                outside = lambda v: {m: k for m, k in v.items() if not matches(m)}
                assert outside(after) == outside(before), why
            # a dry run (or a refused command line) changes nothing; a restore, nothing in the
            # store (from a disk store it reads the objects where they lie)
            if dry or usage or mode in ("list", "restore"):
                assert store.fingerprint() == before_fp, why
            if dry or usage or mode == "list":
                assert tree_fingerprint(tmp_path / "state", tmp_path / "stamp", target) == local_before, why
            assert os.listdir(tmp_path / "tmp") == [], why
            assert subprocess.run(["flock", "-n", str(tmp_path / "lock"), "true"]).returncode == 0, why
            if usage:
                continue
            # the summary's numbers are what the store and the target show
            removed = sum(len(v) for v in before.values()) - sum(len(v) for v in after.values())
            wanted = [m for m in on_disk if matches(m) or not subset]
            if mode == "backup":
                seen, stored, unchanged, failed = numbers(
                    p.stderr, r"backup: (\d+) files seen, (?:would store )?(\d+)(?: stored)?, (\d+) unchanged, (\d+) failed")
                assert (seen, stored + unchanged, failed) == (len(wanted), len(wanted), 0), why
                if not dry:
                    assert all(after.get(m) for m in wanted), why
                    assert numbers(p.stderr, r"(\d+) versions removed")[0] == removed, why
                    if x == "0" and not subset:
                        assert GONE not in after or GONE not in before or after[GONE] == before[GONE], why
                    if x == "-1" or subset:
                        assert after.get(GONE) == before.get(GONE), why
            elif mode == "purge":
                if x == "-1":
                    assert "purge is disabled" in p.stderr and removed == 0, why
                elif dry:
                    assert numbers(p.stderr, r"purge: would remove (\d+) versions")[0] >= 0, why
                else:
                    assert numbers(p.stderr, r"purge: (\d+) versions removed")[0] == removed, why
                    assert removed == 0 or (not subset and x == "0"), why
            elif mode == "restore":
                selected = [m for m in after if after[m] and (matches(m) or not subset)]
                n, created = numbers(p.stderr, r"restore: (\d+) versions selected, (?:would create )?(\d+)")
                assert n == created == len(selected), why
                if dry:
                    assert not os.path.exists(target), why
                else:
                    got = sorted(records(run("wsp-find", "--root", target, check=True).stdout))
                    assert [r[0] for r in got] == sorted(selected), why
            else:
                listed = sum(len(v) for m, v in after.items() if matches(m) or not subset)
                assert f"{listed} compressed whisper databases found." in p.stdout, why
    assert cells == 64

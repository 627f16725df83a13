"""wsp-push --connections N: a batch of records (from xargs) is uploaded with up to N PUTs in
flight at once, each over a kept-alive connection of its own, in one process; each upload is
still checked on its own, and one that fails fails alone. Real S3 (swift-aio's s3api) and
Swift servers, behind Tests/integration/faultproxy.py (--rtt: a store a round trip away;
--faults: one upload of the batch failing).
"""
import contextlib
import re
import time

import pytest

from backends import Node, S3Backend, SwiftBackend, by_status, q, versions
from conftest import records, sh
from proxylib import proxies, store_proxy  # noqa: F401 (a fixture)


@contextlib.contextmanager
def node_and_bucket(kind, tmp_path, files):
    """A node of `files` small-schema files and an empty bucket (container) on `kind`'s
    server; the server's bucket removed at the end."""
    be = SwiftBackend(tmp_path) if kind == "swift" else S3Backend(kind, tmp_path)
    try:
        n = Node(be, tmp_path, files, schemas="small")
        sh(f"wsp-push --create-bucket {q(be.url)} < /dev/null", env=be.env)
        yield be, n
    finally:
        be.cleanup()


def snap(n, name, state=True):
    """Snapshot records of the node's tree (spool files in its spool) in a file."""
    path = n.tmp / name
    with_state = f"--state {q(n.state)}" if state else ""
    sh(f"wsp-find --root {q(n.root)} | wsp-snap --spool {q(n.spool)} {with_state} > {q(path)}")
    return path


def object_puts(entries):
    return [e for e in entries if e[0] == "PUT" and ".wsp" in e[1]]


@pytest.mark.parametrize("kind", ["swift-s3api", "swift"])
def test_a_batch_goes_up_over_n_connections_at_once(kind, tmp_path, proxies):
    with node_and_bucket(kind, tmp_path, 24) as (be, n):
        px, env = store_proxy(kind, be, tmp_path, proxies, credentials=True, rtt=150)
        walls = {}
        for conns in (1, 6):
            for key in be.keys():   # a first backup each time: every record uploaded
                be.delete(key)
            snaps = snap(n, f"snaps-{conns}", state=False)
            start = px.mark()
            t0 = time.monotonic()
            # One process, all 24 records as arguments: one batch.
            p = sh(f"xargs -d '\\n' -n 100 wsp-push --connections {conns} {q(be.url)} < {q(snaps)}", env=env)
            walls[conns] = time.monotonic() - t0
            out = records(p.stdout)
            assert len(out) == 24 and {r[5] for r in out} == {"stored"}, p.stderr
            puts = object_puts(px.entries()[start:])
            # (A Swift token that expires while uploads are in flight has them sent again.)
            stored = [e for e in puts if e[2] in ("200", "201")]
            assert len(stored) == 24 and len(puts) - 24 == len([e for e in puts if e[2] == "401"])
            # Each in-flight upload has a connection of its own, kept alive for the next.
            assert len({e[4] for e in stored}) >= conns
        print(f"24 uploads at 150 ms: --connections 1 {walls[1]:.2f} s, --connections 6 {walls[6]:.2f} s")
        # One after another 24 round trips (3.6 s at least); six at once about four, plus the
        # openings (and on Swift, a token that expires in the batch: a new one, a round more).
        assert walls[1] >= 3.6
        assert walls[6] < walls[1] * 0.65
        n.restore_and_compare()


@pytest.mark.parametrize("kind", ["swift-s3api", "swift"])
def test_an_upload_that_fails_in_a_batch_fails_alone_and_is_stored_by_the_next_run(kind, tmp_path, proxies):
    with node_and_bucket(kind, tmp_path, 20) as (be, n):
        snaps = snap(n, "snaps")
        metrics = sorted(r[0] for r in records(open(snaps).read()))
        failing = metrics[3:5]
        # Every attempt at the two metrics' uploads is dropped; the others pass.
        pattern = "|".join(re.escape(m) for m in failing)
        px, env = store_proxy(kind, be, tmp_path, proxies, credentials=True, faults="drop," * 9 + "drop",
                              match=f"PUT .*({pattern})/")
        p = sh(f"xargs -d '\\n' -n 100 wsp-push --retries 1 --connections 8 --state {q(n.state)} {q(be.url)} < {q(snaps)}",
               env=env, check=False)
        assert p.returncode == 123, p.stderr   # xargs: a wsp-push exited 1 (some records failed)
        out = by_status(records(p.stdout))
        assert out == {"stored": set(metrics) - set(failing)}, p.stderr
        named = [m for line in p.stderr.splitlines() for m in metrics if line.startswith(f"wsp-push: {m}: ")]
        assert sorted(named) == failing, p.stderr
        assert len(versions(be)) == 18
        # The state vouches only for what was stored: the next run stores the two, and
        # leaves the rest unchanged.
        out, _, _ = n.backup()
        assert by_status(out) == {"stored": set(failing), "unchanged": set(metrics) - set(failing)}
        n.restore_and_compare()


def test_uploads_of_a_batch_refused_for_their_token_go_again_with_one_new_token(tmp_path, proxies):
    """A Swift token that expires while a batch is in flight: every upload answered 401 goes
    again, together, after the process got one new token."""
    with node_and_bucket("swift", tmp_path, 12) as (be, n):
        snaps = snap(n, "snaps", state=False)
        px, env = store_proxy("swift", be, tmp_path, proxies, credentials=True, faults="401", match=r"^PUT .*\.wsp\.gz")
        p = sh(f"xargs -d '\\n' -n 100 wsp-push --connections 4 {q(be.url)} < {q(snaps)}", env=env)
        out = records(p.stdout)
        assert len(out) == 12 and {r[5] for r in out} == {"stored"}, p.stderr
        entries = px.entries()
        puts = object_puts(entries)
        assert sorted(e[2] for e in puts) == ["201"] * 12 + ["401"] * 12
        # The opening's token, and one more for the whole batch.
        assert len([e for e in entries if e[1].startswith("/auth/")]) == 2
        n.restore_and_compare()

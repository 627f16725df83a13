"""Stores written by earlier versions of this project keep listing, verifying and restoring.
Each fixture under fixtures/ is a store as a release wrote it, with the versions it holds;
they are copied, never rewritten."""
import datetime
import hashlib
import os
import shutil

import pytest

from conftest import REPO, records, sh, wsp_files

FIXTURES = os.path.join(REPO, "Tests", "integration", "fixtures")
STORES = sorted(d for d in os.listdir(FIXTURES) if d.startswith("store-"))


def versions(name):
    with open(os.path.join(FIXTURES, name, "versions.tsv")) as f:
        return [tuple(l.rstrip("\n").split("\t")) for l in f if l.strip()]


@pytest.fixture(params=STORES)
def fixture_store(request, tmp_path):
    dst = tmp_path / "store"
    shutil.copytree(os.path.join(FIXTURES, request.param, "store"), dst)
    return request.param, f"file://{dst}/"


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_fixture_store_lists_every_version(fixture_store):
    name, store = fixture_store
    listed = [tuple(r[:3]) for r in records(sh(f"wsp-pull list --all {store} '*'").stdout)]
    assert sorted(listed) == sorted(versions(name))


def test_fixture_store_verifies(fixture_store):
    name, store = fixture_store
    out = records(sh(f"wsp-pull verify {store} '*'").stdout)
    assert len(out) == len(versions(name)) and all(r[-1] == "ok" for r in out)


@pytest.mark.parametrize("get", ["", "--in-place"])
def test_fixture_store_restores_newest_and_older_versions(fixture_store, tmp_path, spool, get):
    """Through a spool, and read where they lie (the wrappers' restore from a disk store)."""
    name, store = fixture_store
    by_metric = {}
    for m, t, h in versions(name):
        by_metric.setdefault(m, []).append((t, h))
    for vs in by_metric.values():
        vs.sort()

    def restore(target, before=""):
        sh(f"wsp-pull list {before} {store} '*' | wsp-pull get {get} --spool {spool} {store} | wsp-merge --root {target}")
        return {rel[:-4].replace("/", "."): sha256_of(p) for rel, p in wsp_files(target).items()}

    newest = restore(tmp_path / "new")
    assert newest == {m: vs[-1][1] for m, vs in by_metric.items()}

    # Just before the newest version of a metric that has two: the older one comes back.
    m, vs = next((m, vs) for m, vs in by_metric.items() if len(vs) > 1)
    t = vs[-1][0]
    # --before takes versions at or before the time it names: one second earlier.
    when = datetime.datetime.strptime(t, "%Y%m%dT%H%M%SZ") - datetime.timedelta(seconds=1)
    before = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    older = restore(tmp_path / "old", f"--before {before}")
    assert older[m] == vs[-2][1]

"""Purge (`wsp-prune --gone-after DAYS`): a metric gone from disk keeps its backups for DAYS
counted from when a run first saw it gone, however old its last backup (the original purged
an idle metric's backups at once); the clock lives in the store; a metric that comes back is
forgiven; and a purge that would remove most of the store refuses without --force."""
import os
import time

import pytest

from conftest import NOW, REPO, gen_tree, records, run, sh, wsp_files
from safetylib import store_dir, store_objects

DAY = 86400
WRAPPER = os.path.join(REPO, "scripts", "whisper-backup.sh")


def age_store(sdir, when):
    """Makes every stored version look taken at `when` (an idle metric: its last change long ago)."""
    t = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    for key, path in store_objects(sdir).items():
        if key.endswith(".wsp.gz"):
            d, name = os.path.split(path)
            os.rename(path, os.path.join(d, t + name[16:]))


def metrics(sdir):
    return sorted({k.split("/")[0] for k in store_objects(sdir) if "/" in k and k.endswith(".wsp.gz")})


def purge(store, listing, now, *extra):
    return run("wsp-prune", "--gone-after", "45", "--now", f"@{now}", *extra, store, input=listing)


@pytest.fixture
def node(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=16, schemas="small")
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}")
    age_store(store_dir(store), NOW - 400 * DAY)   # last backed up over a year ago: idle
    return root


def listing(root):
    return sh(f"wsp-find --root {root}").stdout


def test_an_idle_metric_that_disappears_keeps_its_backups_for_days_more(node, store):
    root, sdir = node, store_dir(store)
    victim = "servers.host000.cpu.user"
    os.unlink(root / "servers" / "host000" / "cpu" / "user.wsp")
    p = purge(store, listing(root), NOW)
    assert p.returncode == 0 and p.stdout == "", p.stderr
    assert victim in metrics(sdir)                      # the original would have purged it now
    assert "1 metric(s) newly seen gone" in p.stderr
    for day in (1, 20, 44):
        p = purge(store, listing(root), NOW + day * DAY)
        assert p.returncode == 0 and p.stdout == "" and victim in metrics(sdir), day
    # the marker, not local state, holds the clock: a later run from anywhere agrees
    markers = [k for k in store_objects(sdir) if k.startswith(victim + "/gone-since.")]
    assert len(markers) == 1
    p = purge(store, listing(root), NOW + 46 * DAY)
    assert p.returncode == 0, p.stderr
    assert [r[0] for r in records(p.stdout)] == [victim] and records(p.stdout)[0][5] == "purged"
    assert victim not in metrics(sdir) and not os.path.exists(os.path.join(sdir, victim))
    assert len(metrics(sdir)) == 15


def test_a_metric_that_comes_back_is_forgiven(node, store, spool):
    root, sdir = node, store_dir(store)
    path = root / "servers" / "host001" / "mem" / "free.wsp"
    data = path.read_bytes()
    path.unlink()
    purge(store, listing(root), NOW)
    path.write_bytes(data)                               # back (a remount, a restore)
    p = purge(store, listing(root), NOW + 30 * DAY)
    assert "1 back on disk" in p.stderr
    assert not [k for k in store_objects(sdir) if "gone-since" in k]
    path.unlink()                                        # gone again: the clock starts over
    purge(store, listing(root), NOW + 40 * DAY)
    p = purge(store, listing(root), NOW + 60 * DAY)
    assert p.stdout == "" and "servers.host001.mem.free" in metrics(sdir)
    p = purge(store, listing(root), NOW + 86 * DAY)
    assert [r[0] for r in records(p.stdout)] == ["servers.host001.mem.free"]


def test_the_mass_purge_guard_holds(node, store, tmp_path):
    root, sdir = node, store_dir(store)
    before = sorted(store_objects(sdir))
    empty = tmp_path / "unmounted"
    empty.mkdir()                                        # the mount point of a volume not mounted
    assert purge(store, listing(empty), NOW).returncode == 0          # every metric marked, none removed
    p = purge(store, listing(empty), NOW + 50 * DAY)
    assert p.returncode == 1
    assert "refusing to purge 16 of 16 metrics" in p.stderr and "--force" in p.stderr
    assert p.stdout == ""
    assert [k for k in sorted(store_objects(sdir)) if "gone-since" not in k] == before
    # a dry run says what it would do, and does nothing
    p = purge(store, listing(empty), NOW + 50 * DAY, "--force", "--dry-run")
    assert p.returncode == 0 and {r[5] for r in records(p.stdout)} == {"would-purge"}
    assert [k for k in sorted(store_objects(sdir)) if "gone-since" not in k] == before
    # the volume comes back: every marker goes, nothing was lost
    p = purge(store, listing(root), NOW + 51 * DAY)
    assert p.returncode == 0 and "16 back on disk" in p.stderr
    assert sorted(store_objects(sdir)) == before


def test_the_guard_counts_shares(node, store):
    root, sdir = node, store_dir(store)
    files = sorted(wsp_files(root).values())
    for f in files[:9]:                                  # 9 of 16 gone: more than half
        os.unlink(f)
    purge(store, listing(root), NOW)
    p = purge(store, listing(root), NOW + 50 * DAY)
    assert p.returncode == 1 and "refusing to purge 9 of 16" in p.stderr
    p = purge(store, listing(root), NOW + 50 * DAY, "--max-share", "0.6")
    assert p.returncode == 0 and len({r[0] for r in records(p.stdout)}) == 9
    assert len(metrics(sdir)) == 7


def test_the_wrapper_purges_only_from_a_complete_listing(node, store):
    """A walk that fails part way must not make metrics look gone: the wrapper then skips the
    purge and says so (here a file whose name is no metric name makes wsp-find fail)."""
    root, sdir = node, store_dir(store)
    os.unlink(sorted(wsp_files(root).values())[5])
    (root / "servers" / "bad\nname.wsp").write_bytes(b"")
    p = sh(f"bash {WRAPPER} --nolock --nolog --nostamp -x 0 -p {root} -b {sdir} backup disk", check=False)
    assert p.returncode == 1
    assert "purge skipped" in p.stderr
    assert not [k for k in store_objects(sdir) if "gone-since" in k]
    (root / "servers" / "bad\nname.wsp").unlink()
    p = sh(f"bash {WRAPPER} --nolock --nolog --nostamp -x 0 -p {root} -b {sdir} backup disk")
    assert [k for k in store_objects(sdir) if "gone-since" in k]

"""Delta versions on every store (file://, S3 through Swift's s3api and radosgw, Swift): a
day of carbon writes is stored as the pages it changed; every version of every day restores
byte for byte; a chain broken behind the tools' back fails by name, restores nothing of that
version, and heals with the next backup; prune keeps what kept versions depend on; a backup
or a restore killed at any moment leaves the store and the target sound."""
import gzip
import hashlib
import os
import random
import signal
import struct
import subprocess
import time

import whisper

from backends import Node, be, be3, q, versions  # noqa: F401 (be, be3: fixtures)
from conftest import BIN, NOW, read, records, run, sh, wsp_files
from safetylib import temp_files

DAY = 86400


def carbon_day(root, day, rels=None):
    """A day of 1-minute points written into each file (or those of `rels`) the way carbon
    writes them: whisper.update_many, which fills every archive's slots in place."""
    end = NOW + day * DAY
    rng = random.Random(day)
    for rel, path in sorted(wsp_files(root).items()):
        if rels is None or rel in rels:
            whisper.update_many(path, [(t, rng.uniform(0, 100)) for t in range(end - DAY + 60, end + 1, 60)], now=end)


def shas(root):
    return {rel: hashlib.sha256(read(p)).hexdigest() for rel, p in wsp_files(root).items()}


def metric(rel):
    return rel[:-len(".wsp")].replace("/", ".")


def restore(n, target, before=None, check=True):
    when = f"--before {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(before))}" if before else ""
    spool = n.tmp / f"rspool-{os.path.basename(target)}"
    spool.mkdir(exist_ok=True)
    return sh(f"wsp-pull list {when} {q(n.be.url)} '*' | wsp-pull get --spool {q(spool)} {q(n.be.url)}"
              f" | wsp-merge --root {q(target)}", env=n.be.env, check=check)


def daily(n, days):
    """Backs up day 1, then `days - 1` days of carbon writes; the tree's SHA-256s and a time
    between that day's backup and the next, per day."""
    hist = []
    for day in range(1, days + 1):
        if day > 1:
            carbon_day(n.root, day)
            n.settle()
        out, _, p = n.backup()
        assert p.returncode == 0, p.stderr
        hist.append((shas(n.root), int(time.time()) + 1))
        time.sleep(1.1)   # the next day's versions are stamped after this one's time
    return hist


def test_daily_versions_are_deltas_and_every_day_restores(be, tmp_path):
    n = Node(be, tmp_path, 4, schemas="bench")
    hist = daily(n, 4)
    keys = versions(be)
    full = {k.split("/")[0]: k for k in keys if k.endswith(".wsp.gz") and k.count("/") == 1}
    deltas = [k for k in keys if k.endswith(".wspd.gz")]
    # Every metric changed every day: one full version, then deltas (4 files x 3 days).
    assert len(full) == 4 and len(deltas) == 12, keys
    sizes = {k: len(be.get(k)) for k in keys}
    for d in deltas:
        m, name = d.split("/")
        base = name.split(".")[2] + "." + name.split(".")[3]
        assert any(k.startswith(f"{m}/{base}.") for k in keys), f"{d}: its base is not in the store"
        # A day of 1-minute points: a few pages of each archive (1440 points of 12 bytes are
        # five pages), not the file. (Young trees compress to little, so the ratio to the
        # gzipped full version is measured by the benchmark on mature trees.)
        raw = len(gzip.decompress(be.get(full[m])))
        pages = struct.unpack("<I", gzip.decompress(be.get(d))[96:100])[0]
        assert pages <= 24 and sizes[d] < 0.1 * raw, (d, pages, sizes[d], raw)
    # Each day restores byte for byte into an empty directory.
    for day, (want, t) in enumerate(hist, 1):
        target = tmp_path / f"day{day}"
        restore(n, target, before=t)
        assert shas(target) == want, f"day {day}"
    assert run("wsp-pull", "verify", "--spool", n.spool, n.be.url, "*", env=n.be.env).returncode == 0


def test_a_broken_chain_fails_by_name_restores_nothing_and_heals(be3, tmp_path):
    be = be3
    n = Node(be, tmp_path, 3, schemas="bench")
    hist = daily(n, 3)
    keys = versions(be)
    victim = sorted(k for k in keys if k.endswith(".wspd.gz"))[0]   # a day-2 delta
    m = victim.split("/")[0]
    rel = next(r for r in hist[0][0] if metric(r) == m)
    be.delete(victim)
    # The newest version of that metric (day 3) depends on the deleted day 2.
    target = tmp_path / "broken"
    p = restore(n, target, check=False)
    assert p.returncode == 1
    assert f"{m}: " in p.stderr and "is not in the store" in p.stderr, p.stderr
    got = shas(target)
    assert rel not in got, "nothing of a broken chain reaches the target"
    assert {r: h for r, h in got.items()} == {r: h for r, h in hist[2][0].items() if r != rel}
    v = run("wsp-pull", "verify", "--spool", n.spool, n.be.url, "*", env=n.be.env)
    assert v.returncode == 1 and m in v.stderr, v.stderr
    # The next backup does not trust the broken newest version: the file is stored again.
    out, snaps, p = n.backup()
    assert p.returncode == 0, p.stderr
    assert [r[5] for r in out if r[0] == m] == ["stored"], out
    restore(n, tmp_path / "healed")
    assert shas(tmp_path / "healed") == shas(n.root)


def test_prune_keeps_what_kept_versions_depend_on(be3, tmp_path):
    be = be3
    n = Node(be, tmp_path, 2, schemas="bench")
    hist = daily(n, 4)
    before = set(versions(be))
    out = records(run("wsp-prune", "--keep", "2", "--all", n.be.url, env=n.be.env, check=True).stdout)
    after = set(versions(be))
    assert {r[3] for r in out} == before - after
    # Days 3 and 4 restore byte for byte, with every version their chains reach.
    for day in (3, 4):
        target = tmp_path / f"day{day}"
        restore(n, target, before=hist[day - 1][1])
        assert shas(target) == hist[day - 1][0]
    assert run("wsp-pull", "verify", "--spool", n.spool, n.be.url, "*", env=n.be.env).returncode == 0
    # A metric gone from disk is purged whole: its full version and every delta.
    gone = sorted(wsp_files(n.root))[0]
    os.unlink(wsp_files(n.root)[gone])
    for now in ("", "--now 2099-01-01T00:00:00Z"):
        sh(f"wsp-find --root {q(n.root)} | wsp-prune --gone-after 0 --force {now} {q(n.be.url)}", env=n.be.env)
    assert not [k for k in be.keys() if k.startswith(metric(gone) + "/")]
    assert {k.split("/")[0] for k in versions(be)} == {metric(r) for r in wsp_files(n.root)}


def killed(cmd, env, rnd, span):
    """Runs the shell pipeline `cmd` in a process group of its own and SIGKILLs the group at a
    random moment within `span` seconds; True if it was still running then."""
    p = subprocess.Popen(["bash", "-c", cmd], env=dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", **env),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        p.wait(timeout=rnd.uniform(0, span))
        return False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return True


def test_sigkill_during_a_delta_backup_and_a_chain_restore(be3, tmp_path):
    be = be3
    rnd = random.Random(7)
    n = Node(be, tmp_path, 6, schemas="bench")
    n.backup()
    snap = f"wsp-find --root {q(n.root)} | wsp-snap --spool {q(n.spool)} --state {q(n.state)}"
    push = f"wsp-push --state {q(n.state)} {q(n.be.url)}"
    kills = 0
    for day in (2, 3, 4):
        carbon_day(n.root, day)
        n.settle()
        t = time.monotonic()
        kills += killed(f"{snap} | {push}", n.be.env, rnd, 1.5)
        took = time.monotonic() - t
        # Whatever the kill left, every listed version restores (verify checks whole chains),
        # and the next run stores the rest as deltas or full versions.
        assert run("wsp-pull", "verify", "--spool", n.spool, n.be.url, "*", env=n.be.env).returncode == 0
        out, _, p = n.backup()
        assert p.returncode == 0, p.stderr
        assert temp_files(n.spool) == []   # a killed stage's temp files are gone with the next run
        restore(n, tmp_path / f"after{day}")
        assert shas(tmp_path / f"after{day}") == shas(n.root)
    assert any(k.endswith(".wspd.gz") for k in versions(be))
    # A restore of chains killed at random: each target file is absent or whole.
    want = shas(n.root)
    for trial in range(3):
        target = tmp_path / f"killed{trial}"
        spool = tmp_path / f"kspool{trial}"
        spool.mkdir()
        kills += killed(f"wsp-pull list {q(n.be.url)} '*' | wsp-pull get --spool {q(spool)} {q(n.be.url)}"
                        f" | wsp-merge --root {q(target)}", n.be.env, rnd, max(took, 0.5))
        got = shas(target) if target.exists() else {}
        assert all(want[r] == h for r, h in got.items()), "a restored file is incomplete"
        restore(n, target)
        assert shas(target) == want
    assert kills >= 1, "no run was killed: the trials measured nothing"

"""wsp-merge and other writers: it waits for a writer holding flock(LOCK_EX), gives up on
time without touching the file, and a merge killed with SIGKILL leaves valid whisper files
whose existing points are intact (and a second merge finishes the job)."""
import fcntl
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import whisper

from conftest import NOW, gen_tree, read, records, tool
from test_merge_backfill import (POINT, archives, assert_existing_points_kept, fetched, merge,
                                 metric_of, punch, windows, wsp_files)


def one_gappy_file(tmp_path):
    src = gen_tree(tmp_path / "src", files=1, schemas="small", seed=4)
    rel = sorted(wsp_files(src))[0]
    root = tmp_path / "whisper"
    shutil.copytree(src, root)
    target = os.path.join(root, rel)
    assert len(punch(target, 0, range(20, 40))) == 20
    return os.path.join(src, rel), root, target, metric_of(rel)


def test_merge_waits_for_a_writer_holding_the_lock_then_proceeds(tmp_path):
    src, root, target, metric = one_gappy_file(tmp_path)
    before = read(target)
    with open(target, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        p = subprocess.Popen([tool("wsp-merge"), "--root", root, "--now", f"@{NOW}", "--lock-timeout", "60",
                              fetched(tmp_path / "spool", metric, src)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        assert p.poll() is None, "merge did not wait for the lock"
        assert read(target) == before
        fcntl.flock(held, fcntl.LOCK_UN)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert records(out)[0][1:] == ["filled", target, "20"]
    assert read(target) == read(src)


def test_lock_timeout_fails_the_record_and_leaves_the_file(tmp_path):
    src, root, target, metric = one_gappy_file(tmp_path)
    before = read(target)
    with open(target, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        started = time.monotonic()
        p = merge(root, [fetched(tmp_path / "spool", metric, src)], "--lock-timeout", "1")
        elapsed = time.monotonic() - started
    assert p.returncode == 1
    rec = records(p.stdout)[0]
    assert rec[1] == "failed" and "lock not granted within 1" in rec[3]
    assert f"wsp-merge: {metric}: " in p.stderr
    assert 1 <= elapsed < 30
    assert read(target) == before


def slots(data, path):
    return [np.frombuffer(data, dtype=POINT, count=n, offset=o) for o, _, n in archives(path)]


def test_sigkill_during_merge_leaves_valid_files_with_existing_points_intact(tmp_path):
    # Big files (10s:6h,1m:7d,10m:5y, every slot holding a point) with every other slot
    # emptied: each merge writes ~137,000 separate runs, so a kill lands inside a file.
    src = gen_tree(tmp_path / "src", files=4, schemas="big", days=1900, seed=6)
    root = tmp_path / "whisper"
    shutil.copytree(src, root)
    files = wsp_files(root)
    for k, (rel, path) in enumerate(sorted(files.items())):
        for ai, (_, _, points) in enumerate(archives(path)):
            punch(path, ai, range(1 + k % 2, points, 2), stale=(ai % 2 == 1))
    source = {rel: read(os.path.join(src, rel)) for rel in files}
    recs = lambda: [fetched(tmp_path / "spool", metric_of(rel), os.path.join(src, rel)) for rel in sorted(files)]

    source_fetch = {rel: windows(os.path.join(src, rel)) for rel in files}
    fetched_now = {rel: windows(p) for rel, p in files.items()}
    rng = np.random.default_rng(1)
    killed_mid_file = 0
    for attempt in range(3):
        before = {rel: read(p) for rel, p in files.items()}
        before_fetch = dict(fetched_now)
        p = subprocess.Popen([tool("wsp-merge"), "--root", root, "--now", f"@{NOW}", *recs()],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(float(rng.uniform(0.2, 1.2)))
        assert p.poll() is None, "merge finished before it could be killed"
        p.send_signal(signal.SIGKILL)
        p.communicate()
        assert p.returncode == -signal.SIGKILL
        for rel, path in files.items():
            after = read(path)
            assert len(after) == len(before[rel])
            info = whisper.info(path)                     # still a valid whisper file
            assert [(a["offset"], a["secondsPerPoint"], a["points"]) for a in info["archives"]] == archives(path)
            after_fetch = fetched_now[rel] = windows(path)
            assert_existing_points_kept(before_fetch[rel], after_fetch)
            # Every slot is as it was, or the backup's point, or (cut between the two
            # passes) its old timestamp with the backup's value: never a point that reads
            # as something neither file held.
            for b, a, s in zip(slots(before[rel], path), slots(after, path), slots(source[rel], path)):
                same = (a["t"] == b["t"]) & (a["v"] == b["v"])
                restored = (a["t"] == s["t"]) & (a["v"] == s["v"])
                half = (a["t"] == b["t"]) & (a["v"] == s["v"])
                assert np.all(same | restored | half)
            for a, w in zip(after_fetch, source_fetch[rel]):
                assert all(v is None or v == w[t] for t, v in a.items())
            if before[rel] != after and after != source[rel]:
                killed_mid_file += 1
        assert not [f for _, _, fs in os.walk(root) for f in fs if not f.endswith(".wsp")]
    assert killed_mid_file > 0

    # A merge run to the end completes the restore.
    p = merge(root, recs())
    assert p.returncode == 0, p.stderr
    for rel, path in files.items():
        assert read(path) == source[rel]


def test_batch_never_holds_locks_while_waiting_and_takes_a_metric_twice(tmp_path):
    """Records from arguments are backfilled in batches that hold their files' locks until
    the batch is durable. A busy file makes the merge finish (and report) the batch before it
    waits, so two merges can never wait for each other; a metric twice in one batch (two
    versions) is merged twice, the second time onto the first's result."""
    src = gen_tree(tmp_path / "src", files=3, schemas="small", seed=8)
    root = tmp_path / "whisper"
    shutil.copytree(src, root)
    rels = sorted(wsp_files(root))
    for rel in rels:
        assert len(punch(os.path.join(root, rel), 0, range(30, 40))) == 10
    older = tmp_path / "older.wsp"                      # an older version of the first metric
    shutil.copy(os.path.join(src, rels[0]), older)
    punch(str(older), 0, range(35, 40))
    recs = [fetched(tmp_path / "spool", metric_of(rels[0]), older),
            fetched(tmp_path / "spool", metric_of(rels[0]), os.path.join(src, rels[0])),
            fetched(tmp_path / "spool", metric_of(rels[1]), os.path.join(src, rels[1])),
            fetched(tmp_path / "spool", metric_of(rels[2]), os.path.join(src, rels[2]))]
    busy = os.path.join(root, rels[2])
    with open(busy, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        p = subprocess.Popen([tool("wsp-merge"), "--root", root, "--now", f"@{NOW}", *recs],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The first three records are done and reported while the merge waits for the fourth.
        lines = [p.stdout.readline() for _ in range(3)]
        assert p.poll() is None
        assert [r[1:] for r in records("".join(lines))] == [
            ["filled", os.path.join(root, rels[0]), "5"],
            ["filled", os.path.join(root, rels[0]), "5"],
            ["filled", os.path.join(root, rels[1]), "10"]]
        assert read(os.path.join(root, rels[0])) == read(os.path.join(src, rels[0]))
        fcntl.flock(held, fcntl.LOCK_UN)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert records(out)[0][1:] == ["filled", busy, "10"]
    for rel in rels:
        assert read(os.path.join(root, rel)) == read(os.path.join(src, rel))


def test_a_restore_of_more_new_files_than_a_batch_killed_anywhere_leaves_each_whole_or_absent(tmp_path):
    """Restoring into an empty directory, new files go into place a batch at a time (1024 per
    sync, records as arguments), each batch's sync running while the next batch is written:
    SIGKILL at any moment leaves every target either absent or whole, a `created` record only
    for a file in place, and a second run completes the restore."""
    src = gen_tree(tmp_path / "src", files=2600, schemas="small", seed=9)
    files = wsp_files(src)
    source = {rel: read(p) for rel, p in files.items()}
    recs = lambda: [fetched(tmp_path / "spool", metric_of(rel), p) for rel, p in sorted(files.items())]
    cmd = lambda root: [tool("wsp-merge"), "--root", root, "--now", f"@{NOW}", *recs()]
    started = time.monotonic()
    p = subprocess.run(cmd(tmp_path / "whole"), capture_output=True, text=True, timeout=300)
    whole = time.monotonic() - started
    assert p.returncode == 0, p.stderr
    assert [r[1] for r in records(p.stdout)] == ["created"] * len(files)
    rng = np.random.default_rng(3)
    cut = 0
    killed = set()
    root = tmp_path / "restored"
    for attempt in range(3):
        shutil.rmtree(root, ignore_errors=True)
        p = subprocess.Popen(cmd(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed.add(p.pid)
        time.sleep(float(rng.uniform(0.3, 0.9)) * whole)
        p.send_signal(signal.SIGKILL)
        out, _ = p.communicate()
        placed = wsp_files(root)
        for rel, path in placed.items():
            assert read(path) == source[rel], f"{rel}: in place but not whole"
        created = [r[2] for r in records(out) if r[1] == "created"]
        assert all(os.path.relpath(t, root) in placed for t in created)
        assert not [f for _, _, fs in os.walk(root) for f in fs if not f.endswith(".wsp") and not f.startswith(".wsp-tmp.")]
        cut += 0 < len(placed) < len(files)
    assert cut > 0, "no kill landed between the first file placed and the last"
    p = subprocess.run(cmd(root), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert {rel: read(path) for rel, path in wsp_files(root).items()} == source
    # What the last kill left (README: hidden temp files), and nothing of the run that finished.
    assert {int(f.split(".")[2]) for _, _, fs in os.walk(root) for f in fs if f.startswith(".wsp-tmp.")} <= killed

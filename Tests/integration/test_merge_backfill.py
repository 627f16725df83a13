"""wsp-merge backfills existing whisper files: only empty slots are written, every existing
point stays as it was, and the Python whisper module (fetch, aggregate) is the oracle.

The helpers here are shared with test_merge_oracle.py and test_merge_safety.py."""
import gzip
import hashlib
import os
import shutil
import struct

import numpy as np
import pytest
import whisper

from conftest import NOW, gen_tree, read, records, run, sh, wsp_files

POINT = np.dtype([("t", ">u4"), ("v", ">f8")])


# ---- helpers -------------------------------------------------------------------------------

def metric_of(rel):
    return rel[:-len(".wsp")].replace(os.sep, ".")


def fetched(spool, metric, path):
    """A fetched record (wsp-pull get's output) for the whisper file at `path`."""
    os.makedirs(spool, exist_ok=True)
    data = read(path)
    digest = hashlib.sha256(data).hexdigest()
    # Named as wsp-pull get names its downloads (PID.RANDOM.wsp.gz): wsp-merge removes only such files.
    name = int(hashlib.sha256(f"{metric}/{digest}".encode()).hexdigest()[:15], 16)   # one per metric and content
    gz = os.path.join(str(spool), f"{os.getpid()}.{name}.wsp.gz")
    with open(gz, "wb") as f:
        f.write(gzip.compress(data))
    return f"{metric}\t20261118T000000Z\t{digest}\t{gz}"


def merge(root, recs, *args, now=NOW, timeout=300):
    extra = ["--now", f"@{now}"] if now is not None else []
    return run("wsp-merge", "--root", root, *extra, *args, input="".join(r + "\n" for r in recs), timeout=timeout)


def archives(path):
    """[(offset, secondsPerPoint, points)] from the header."""
    with open(path, "rb") as f:
        head = f.read(16)
        count = struct.unpack(">LLfL", head)[3]
        return [struct.unpack(">LLL", f.read(12)) for _ in range(count)]


def ring(data, archive):
    offset, _, points = archive
    return np.frombuffer(data, dtype=POINT, count=points, offset=offset)


def slot_of(t, base, step, points):
    return ((t - base) // step) % points


def windows(path, now=NOW):
    """whisper.fetch of every archive over the intervals it retains at `now`: a list (one per
    archive) of {interval: value or None}."""
    out = []
    for a in whisper.info(path)["archives"]:
        (start, _, step), values = whisper.fetch(path, now - a["retention"], now, now=now,
                                                 archiveToSelect=a["secondsPerPoint"])
        out.append({start + i * step: v for i, v in enumerate(values)})
    return out


def assert_existing_points_kept(before, after):
    for i, (b, a) in enumerate(zip(before, after)):
        changed = {t: (v, a[t]) for t, v in b.items() if v is not None and a[t] != v}
        assert not changed, f"archive {i}: existing points changed: {list(changed.items())[:5]}"


def write_ring(path, schema, agg, xff, now, rng):
    """A whisper file whose archives are full over their whole retention and have wrapped:
    the first slot (the base) holds an interval from the middle of the window."""
    head = struct.pack(">LLfL", whisper.aggregationMethodToType[agg], max(s * p for s, p in schema), xff, len(schema))
    offset = 16 + 12 * len(schema)
    body = b""
    for step, points in schema:
        head += struct.pack(">LLL", offset, step, points)
        offset += 12 * points
        newest = now - now % step
        ts = newest - step * np.arange(points - 1, -1, -1, dtype=np.int64)
        phase = int(ts[int(rng.integers(1, points))])      # the interval that sits in slot 0
        arr = np.zeros(points, dtype=POINT)
        slots = ((ts - phase) // step) % points
        arr["t"][slots] = ts
        arr["v"][slots] = np.round(np.cumsum(rng.normal(0, 1, points)) + 50, 3)
        body += arr.tobytes()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(head + body)


def punch(path, archive_index, slots, stale=False):
    """Empties slots of one archive: zeroes them, or (stale) leaves the previous lap of the
    ring there, as after carbon was down for a while. Returns the slots that held a point."""
    offset, step, points = archives(path)[archive_index]
    data = bytearray(read(path))
    arr = np.frombuffer(data, dtype=POINT, count=points, offset=offset)
    chosen = np.unique(np.asarray(list(slots), dtype=np.int64))
    hit = chosen[arr["t"][chosen] != 0]
    if stale:
        arr["t"][hit] = arr["t"][hit] - step * points
        arr["v"][hit] = 12345.678
    else:
        arr["t"][hit] = 0
        arr["v"][hit] = 0
    with open(path, "r+b") as f:
        f.write(data)
    return [int(x) for x in hit]


def changed_slots(before, after, path):
    n = 0
    for a in archives(path):
        n += int(np.count_nonzero(ring(before, a).view(np.void) != ring(after, a).view(np.void)))
    return n


# ---- byte-identical restore ---------------------------------------------------------------

def cmp_trees(a, b):
    sh(f"cd {a} && find . -name '*.wsp' | sort | while read f; do cmp \"$f\" \"{b}/$f\" || exit 1; done")
    assert sorted(wsp_files(a)) == sorted(wsp_files(b))
    assert not [f for _, _, fs in os.walk(b) for f in fs if not f.endswith(".wsp")]


def test_restoring_onto_identical_files_changes_no_byte(tmp_path):
    root = gen_tree(tmp_path / "whisper", files=320, gaps=True)
    pristine = tmp_path / "pristine"
    shutil.copytree(root, pristine)
    files = sorted(wsp_files(root))
    # With a fixed now (the tree's) and with the real clock: no run writes a byte.
    for now in (NOW, None):
        recs = [fetched(tmp_path / "spool", metric_of(rel), os.path.join(pristine, rel)) for rel in files]
        p = merge(root, recs, now=now)
        assert p.returncode == 0, p.stderr
        out = records(p.stdout)
        assert len(out) == 320
        assert {(r[1], r[3]) for r in out} == {("unchanged", "0")}
        cmp_trees(pristine, root)


def test_pipeline_restore_onto_identical_files_changes_no_byte(tmp_path, store, spool):
    root = gen_tree(tmp_path / "whisper", files=40, gaps=True, seed=9)
    pristine = tmp_path / "pristine"
    shutil.copytree(root, pristine)
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool}/snap | wsp-push {store} >/dev/null")
    p = sh(f"wsp-pull list {store} '*' | wsp-pull get --spool {spool}/get {store} "
           f"| wsp-merge --root {root} --now @{NOW}")
    out = records(p.stdout)
    assert len(out) == 40 and {(r[1], r[3]) for r in out} == {("unchanged", "0")}
    cmp_trees(pristine, root)


# ---- punched gaps come back, nothing else moves ---------------------------------------------

def test_punched_gaps_come_back_and_existing_points_stay(tmp_path):
    src = gen_tree(tmp_path / "src", files=24, schemas="mixed", seed=7)
    rng = np.random.default_rng(11)
    rings = [("10s:1h,1m:1d,10m:7d", [(10, 360), (60, 1440), (600, 1008)], "average", 0.5),
             ("60s:1d,5m:30d", [(60, 1440), (300, 8640)], "sum", 0.0),
             ("1m:2d,1h:60d", [(60, 2880), (3600, 1440)], "absmax", 0.5),
             ("30s:12h,5m:14d", [(30, 1440), (300, 4032)], "min", 0.3)]
    for i, (_, schema, agg, xff) in enumerate(rings):
        write_ring(os.path.join(src, "ring", f"m{i}.wsp"), schema, agg, xff, NOW, rng)
    dst = tmp_path / "dst"
    shutil.copytree(src, dst)

    punched = {}
    for k, (rel, path) in enumerate(sorted(wsp_files(dst).items())):
        for ai, (offset, step, points) in enumerate(archives(path)):
            data = ring(read(path), (offset, step, points))
            base = int(data["t"][0])
            if base == 0:
                continue
            newest = NOW - NOW % step
            oldest = newest - (points - 1) * step
            slots = list(rng.integers(0, points, 3))                          # single slots
            run0 = int(rng.integers(0, points))
            slots += [(run0 + j) % points for j in range(min(300, points // 3))]  # a long run
            slots += [0, points - 1]                                          # the archive's byte ends
            slots += [slot_of(t, base, step, points) for t in (oldest, oldest + step, newest)]  # its time ends
            if rel.startswith("ring"):
                slots += [(points - 3 + j) % points for j in range(6)]        # across the ring's wrap
            punched.setdefault(rel, 0)
            punched[rel] += len(punch(path, ai, slots, stale=(k + ai) % 2 == 1))

    files = wsp_files(dst)
    before = {rel: read(p) for rel, p in files.items()}
    before_fetch = {rel: windows(p) for rel, p in files.items()}
    recs = [fetched(tmp_path / "spool", metric_of(rel), os.path.join(src, rel)) for rel in sorted(files)]
    p = merge(dst, recs)
    assert p.returncode == 0, p.stderr
    out = {r[0]: r for r in records(p.stdout)}
    assert len(out) == len(files)
    for rel, path in files.items():
        after = read(path)
        r = out[metric_of(rel)]
        n = changed_slots(before[rel], after, path)
        if punched.get(rel):
            assert r[1] == "filled" and int(r[3]) == n, (rel, r, n)
        else:
            assert r[1] == "unchanged" and r[3] == "0", (rel, r)
        # Every punched slot is back: the file is the source again, byte for byte ...
        assert after == read(os.path.join(src, rel)), rel
        # ... and as whisper reads it, every archive matches the source and keeps what it had.
        after_fetch = windows(path)
        assert after_fetch == windows(os.path.join(src, rel)), rel
        assert_existing_points_kept(before_fetch[rel], after_fetch)
    assert sum(punched.values()) > 1000


# ---- different schemas: same resolution first, finer aggregated, never coarse into fine --------

def build(path, schema, agg, xff, points):
    whisper.create(str(path), schema, xFilesFactor=xff, aggregationMethod=agg)
    points = sorted(points)
    for k in range(0, len(points), 2000):
        whisper.update_many(str(path), points[k:k + 2000], now=NOW)


def source_points(rng, gaps):
    """1 minute points for the last day, 5 minute points for the week before, hourly ones
    for the month before (what a 1m:1d,5m:7d,1h:30d file holds); some minutes missing."""
    pts = []
    for step, frm, to in ((60, 0, 86400), (300, 86400, 7 * 86400), (3600, 7 * 86400, 30 * 86400)):
        for age in range(frm, to, step):
            if gaps and rng.random() < 0.15:
                continue
            pts.append((NOW - age, float(round(rng.uniform(1, 100), 3))))
    return pts


def expected_value(src_windows, src_info, t, step, method, xff):
    """The semantics, written out with whisper's own fetch and aggregate: the source archive
    of the same step where it covers t (its retention before the source's newest point),
    else the finest finer one that covers t, aggregated; else nothing."""
    latest = max(u for w in src_windows for u, v in w.items() if v is not None)
    by_step = {a["secondsPerPoint"]: (a, w) for a, w in zip(src_info["archives"], src_windows)}

    def covers(a):
        return latest - a["retention"] < t <= latest

    if step in by_step and covers(by_step[step][0]):
        return by_step[step][1].get(t)
    for s in sorted(by_step):
        a, w = by_step[s]
        if s < step and step % s == 0 and covers(a):
            vals = [w.get(t + j * s) for j in range(step // s)]
            known = [v for v in vals if v is not None]
            if not known or float(len(known)) / len(vals) < xff:
                return None
            return whisper.aggregate(method, known, vals)
    return None


TARGETS = {
    "other-steps": ([(60, 2 * 1440), (600, 30 * 144)], "sum", 0.0),
    "fewer": ([(300, 30 * 288)], "sum", 0.0),
    "more": ([(30, 1440), (60, 2 * 1440), (300, 14 * 288), (3600, 60 * 24), (86400, 365)], "sum", 0.0),
    "average": ([(60, 2 * 1440), (600, 30 * 144)], "average", 0.5),
    "avg_zero": ([(60, 2 * 1440), (900, 30 * 96)], "avg_zero", 0.5),
}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_other_schemas_get_same_resolution_points_or_finer_aggregates(tmp_path, name):
    schema, agg, xff = TARGETS[name]
    rng = np.random.default_rng(5)
    src = tmp_path / "backup.wsp"
    build(src, [(60, 1440), (300, 7 * 288), (3600, 30 * 24)], agg, xff, source_points(rng, gaps=agg != "sum"))
    root = tmp_path / "whisper"
    target = root / "m" / f"{name}.wsp"
    target.parent.mkdir(parents=True)
    # The node runs again: carbon wrote the last 30 minutes before the restore.
    build(target, schema, agg, xff, [(NOW - 60 * i, 1000.0 + i) for i in range(30)])
    before = windows(target)
    p = merge(root, [fetched(tmp_path / "spool", f"m.{name}", src)])
    assert p.returncode == 0, p.stderr
    status = records(p.stdout)[0]
    after = windows(target)
    assert_existing_points_kept(before, after)

    src_info = whisper.info(str(src))
    src_windows = windows(src)
    tinfo = whisper.info(str(target))
    written = 0
    for a, b, w in zip(tinfo["archives"], before, after):
        step = a["secondsPerPoint"]
        for t, v in w.items():
            if b[t] is not None:
                continue
            assert v == expected_value(src_windows, src_info, t, step, agg, tinfo["xFilesFactor"]), (step, t)
            written += v is not None
    assert status[1] == "filled" and int(status[3]) == written

    # No coarse data in fine slots: nothing finer than 1 minute, and the 1 minute archive
    # holds nothing older than the backup's 1 minute archive (a day).
    for a, b, w in zip(tinfo["archives"], before, after):
        if a["secondsPerPoint"] < 60:
            assert w == b
        if a["secondsPerPoint"] == 60:
            assert not [t for t, v in w.items() if v is not None and t <= NOW - 86400]

    if agg == "sum":
        # Sums stay true: a day of the backup's minutes adds up to the same total in every
        # coarser target archive that was filled from them.
        src_minutes = src_windows[0]
        for a, b, w in zip(tinfo["archives"], before, after):
            step = a["secondsPerPoint"]
            if step <= 60 or step > 3600:
                continue
            lo = NOW - NOW % step - 12 * 3600            # whole intervals inside the backup's day
            hi = lo + 6 * 3600
            filled = [t for t in w if lo <= t < hi]
            assert all(b[t] is None and w[t] is not None for t in filled)
            assert sum(w[t] for t in filled) == pytest.approx(
                sum(v for t, v in src_minutes.items() if lo <= t < hi and v is not None), rel=1e-12)


# ---- result records, dry run, targets that are not whisper ---------------------------------

def test_records_dry_run_and_creation(tmp_path):
    src = gen_tree(tmp_path / "src", files=8, schemas="mixed", seed=3)
    root = tmp_path / "whisper"
    shutil.copytree(src, root)
    files = sorted(wsp_files(root))
    gappy, missing, same = files[0], files[1], files[2]
    path = os.path.join(root, gappy)
    offset, step, points = archives(path)[0]
    assert len(punch(path, 0, range(10, 60))) == 50
    os.unlink(os.path.join(root, missing))
    recs = lambda: [fetched(tmp_path / "spool", metric_of(r), os.path.join(src, r)) for r in (gappy, missing, same)]
    snapshot = {r: read(p) for r, p in wsp_files(root).items()}

    p = merge(root, recs(), "--dry-run")
    assert p.returncode == 0, p.stderr
    assert [r[1:] for r in records(p.stdout)] == [
        ["would-fill", path, "50"],
        ["would-create", os.path.join(root, missing), str(os.path.getsize(os.path.join(src, missing)))],
        ["unchanged", os.path.join(root, same), "0"]]
    assert {r: read(p) for r, p in wsp_files(root).items()} == snapshot

    p = merge(root, recs())
    assert p.returncode == 0, p.stderr
    assert [r[1:] for r in records(p.stdout)] == [
        ["filled", path, "50"],
        ["created", os.path.join(root, missing), str(os.path.getsize(os.path.join(src, missing)))],
        ["unchanged", os.path.join(root, same), "0"]]
    for r in (gappy, missing, same):
        assert read(os.path.join(root, r)) == read(os.path.join(src, r))
    # The spool files are gone.
    assert os.listdir(tmp_path / "spool") == []


@pytest.mark.parametrize("kind", ["text", "compressed", "truncated", "bad-header", "directory"])
def test_targets_that_are_not_whisper_are_left_untouched_and_fail(tmp_path, kind):
    src = gen_tree(tmp_path / "src", files=1, schemas="small", seed=2)
    rel = sorted(wsp_files(src))[0]
    root = tmp_path / "whisper"
    target = os.path.join(root, rel)
    os.makedirs(os.path.dirname(target))
    data = read(os.path.join(src, rel))
    if kind == "directory":
        os.mkdir(target)
    else:
        content = {"text": b"hello, not whisper\n" * 40,
                   "compressed": b"whisper_compressed" + bytes(200),
                   "truncated": data[:-12],
                   "bad-header": data[:12] + struct.pack(">L", 0) + data[16:]}[kind]
        with open(target, "wb") as f:
            f.write(content)
        st = os.stat(target)
    p = merge(root, [fetched(tmp_path / "spool", metric_of(rel), os.path.join(src, rel))])
    assert p.returncode == 1
    rec = records(p.stdout)[0]
    assert rec[0] == metric_of(rel) and rec[1] == "failed"
    assert f"wsp-merge: {metric_of(rel)}: " in p.stderr
    if kind == "directory":
        assert os.path.isdir(target) and os.listdir(target) == []
    else:
        assert read(target) == content
        assert os.stat(target).st_mtime_ns == st.st_mtime_ns
        assert "left untouched" in rec[3]
    if kind == "compressed":
        assert "go-carbon compressed" in rec[3]
    assert sorted(os.listdir(os.path.dirname(target))) == [os.path.basename(target)]


def test_usage(tmp_path):
    p = run("wsp-merge", "--root", tmp_path, "--now", "yesterday-ish", input="")
    assert p.returncode == 2 and "--now" in p.stderr
    # --help is checked whole in test_help.py.


def test_now_is_one_time_in_any_accepted_form(tmp_path):
    src = gen_tree(tmp_path / "src", files=2, schemas="small", seed=12)
    root = tmp_path / "whisper"
    shutil.copytree(src, root)
    rels = sorted(wsp_files(root))
    for rel in rels:
        path = os.path.join(root, rel)
        punch(path, 0, range(1, archives(path)[0][2], 3))
    recs = lambda: [fetched(tmp_path / "spool", metric_of(r), os.path.join(src, r)) for r in rels]
    counts = []
    for now in (f"@{NOW}", "2026-11-18T11:06:40Z", "20261118T110640Z", "2026-11-18T12:06:40+01:00"):
        p = run("wsp-merge", "--root", root, "--now", now, "--dry-run", *recs())
        assert p.returncode == 0, p.stderr
        counts.append([r[3] for r in records(p.stdout)])
    assert counts[0] == counts[1] == counts[2] == counts[3] and all(int(c) > 0 for c in counts[0])
    # An hour later the oldest hour of each first archive is beyond its retention: fewer points.
    later = run("wsp-merge", "--root", root, "--now", f"@{NOW + 3600}", "--dry-run", *recs())
    assert all(int(a) < int(b) for a, b in zip([r[3] for r in records(later.stdout)], counts[0]))


def test_a_target_that_leads_outside_the_root_is_left_alone(tmp_path):
    src = gen_tree(tmp_path / "src", files=1, schemas="small", seed=13)
    rel = sorted(wsp_files(src))[0]
    outside = tmp_path / "outside.wsp"
    shutil.copy(os.path.join(src, rel), outside)
    punch(str(outside), 0, range(10, 20))
    before = read(outside)
    root = tmp_path / "whisper"
    target = os.path.join(root, rel)
    os.makedirs(os.path.dirname(target))
    os.symlink(outside, target)
    p = merge(root, [fetched(tmp_path / "spool", metric_of(rel), os.path.join(src, rel))])
    assert p.returncode == 1
    rec = records(p.stdout)[0]
    assert rec[1] == "failed" and "leads outside the root" in rec[3]
    assert read(outside) == before and os.path.islink(target)

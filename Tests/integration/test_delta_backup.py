"""Delta versions, the write side: a changed file whose last version the state vouches for is
stored as the pages that differ (METRIC/TIME.SHA.BASETIME.BASESHA.wspd.gz), rebuilt byte for
byte from its base with scripts/wsp-apply-delta.py; and stored full whenever a delta would be
unsafe or not worth it (no state, --full, --full-every, half the file changed, a long name,
a base gone from the store)."""
import gzip
import hashlib
import os
import random
import shutil
import struct
import subprocess
import sys
import time

import whisper

from conftest import REPO, records, run, sh, wrap
from test_live import carbon, live, valid_for_whisper  # noqa: F401 (fixtures: a real carbon-cache)
from backends import Node, be3  # noqa: F401 (be3: the store fixture, file, S3 and Swift)

APPLY = os.path.join(REPO, "scripts", "wsp-apply-delta.py")
BACKUP = os.path.join(REPO, "scripts", "backup.sh")
# A week of minutes, a month of 5 minutes, a year of hours: 330 KB, 81 pages of 4 KiB.
SCHEMA = [(60, 10080), (300, 8640), (3600, 8760)]


def make_tree(root, names, schema=SCHEMA, seed=1):
    rng = random.Random(seed)
    now = int(time.time())
    paths = {}
    for name in names:
        path = os.path.join(root, *name.split(".")) + ".wsp"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        whisper.create(path, schema)
        whisper.update_many(path, [(now - 60 * k, rng.uniform(0, 1000)) for k in range(1, 10080)])
        paths[name] = path
    return paths


def add_points(path, seed):
    """What carbon does in a few minutes: new points at the head of every archive."""
    rng = random.Random(seed)
    now = int(time.time())
    whisper.update_many(path, [(now - 60 * k, rng.uniform(0, 1000)) for k in range(3)])


def settle(paths):
    # The state trusts a stat only for files whose mtime and ctime are 2 s old at the read
    # (Snap.settleNs), and a delta needs the state's entry: wait until they are.
    newest = max(max(os.stat(p).st_mtime_ns, os.stat(p).st_ctime_ns) for p in paths)
    while (left := newest + 2_050_000_000 - time.time_ns()) > 0:
        time.sleep(left / 1e9)


def backup(paths, root, store, spool, state, extra="", settled=True):
    if settled:
        settle(paths)
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool} --state {state} {extra} > {spool}.snaps")
    snaps = records(open(f"{spool}.snaps").read())
    p = sh(f"wsp-push --state {state} {store} < {spool}.snaps")
    return {r[0]: r for r in records(p.stdout)}, {r[0]: r for r in snaps}


def store_dir(store):
    return store[len("file://"):]


def objects(store, metric):
    d = os.path.join(store_dir(store), metric)
    return sorted(f for f in os.listdir(d) if not f.startswith("."))


def gunzip(path, out):
    with gzip.open(path, "rb") as f, open(out, "wb") as o:
        o.write(f.read())


def apply_delta(base, delta, out):
    with open(out, "wb") as o:
        return subprocess.run([sys.executable, APPLY, base, delta], stdout=o, stderr=subprocess.PIPE, text=True)


def page_indexes(state):
    """{metric: its last page index} from STATE/pageindex/, one file per parent of whisper
    directories (and, past 256 KiB, per directory), of records
    "WPI1" u32 nameBytes u32 indexBytes NAME INDEX checksum[8] (docs/stores.md)."""
    d = os.path.join(state, "pageindex")
    out = {}
    for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        b = open(os.path.join(d, f), "rb").read()
        i = 0
        while i < len(b):
            assert b[i:i + 4] == b"WPI1", (f, i)
            n, m = struct.unpack("<II", b[i + 4:i + 12])
            assert hashlib.sha256(b[i:i + 12 + n + m]).digest()[:8] == b[i + 12 + n + m:i + 20 + n + m], (f, i)
            out[b[i + 12:i + 12 + n].decode()] = b[i + 12 + n:i + 12 + n + m]
            i += 20 + n + m
    return out


def test_changed_files_are_stored_as_deltas_and_rebuild_byte_for_byte(tmp_path, store, spool):
    root, state = tmp_path / "w", tmp_path / "state"
    paths = make_tree(root, ["web.a", "web.b", "web.c"])
    out, snaps = backup(paths.values(), root, store, spool, state)
    assert {r[5] for r in out.values()} == {"stored"} and all(r[3].endswith(".wsp.gz") for r in out.values())
    assert all(len(r) == 6 for r in snaps.values()), "a first version is full: no BASE"
    assert set(page_indexes(state)) == {"web.a", "web.b", "web.c"}
    # One file for the whisper directory web and its siblings (named by their parent, the
    # top: @), not one per metric or per directory (an inode each on a first backup).
    assert os.listdir(state / "pageindex") == ["@"] and not os.path.exists(state / "pages")
    day1 = {m: (r[1], r[2], os.path.join(store_dir(store), r[3])) for m, r in out.items()}
    files1 = {m: open(p, "rb").read() for m, p in paths.items()}

    # Day 2: two files get new points, one does not.
    add_points(paths["web.a"], 2)
    add_points(paths["web.b"], 3)
    out, snaps = backup(paths.values(), root, store, spool, state)
    assert out["web.c"][5] == "unchanged" and objects(store, "web.c") == [os.path.basename(day1["web.c"][2])]
    for m in ["web.a", "web.b"]:
        assert out[m][5] == "stored"
        key = out[m][3]
        t1, h1, full = day1[m]
        assert key == f"{m}/{out[m][1]}.{out[m][2]}.{t1}.{h1}.wspd.gz"
        assert snaps[m][6:] == ["-", "-", f"{t1}.{h1}"]
        assert snaps[m][3] == str(os.path.getsize(paths[m])), "SIZE is the whole file's"
        delta = os.path.join(store_dir(store), key)
        assert os.path.getsize(delta) * 10 < os.path.getsize(full), (os.path.getsize(delta), os.path.getsize(full))
        # By hand: the day-1 version gunzipped, the delta applied, the day-2 file exactly.
        gunzip(full, tmp_path / "base.wsp")
        p = apply_delta(tmp_path / "base.wsp", delta, tmp_path / "new.wsp")
        assert p.returncode == 0, p.stderr
        assert open(tmp_path / "new.wsp", "rb").read() == open(paths[m], "rb").read()
        assert open(paths[m], "rb").read() != files1[m]
    # Unchanged since: not read, and the record names the delta version's key.
    again, snaps = backup(paths.values(), root, store, spool, state)
    assert all(s[4] == "-" for s in snaps.values())
    assert {m: r[3] for m, r in again.items() if m != "web.c"} == {m: r[3] for m, r in out.items() if m != "web.c"}
    assert {r[5] for r in again.values()} == {"unchanged"}
    # A delta applied to another base: nothing written, one line, exit 1.
    gunzip(day1["web.c"][2], tmp_path / "other.wsp")
    open(tmp_path / "other.wsp", "r+b").write(b"\0")
    p = apply_delta(tmp_path / "other.wsp", os.path.join(store_dir(store), out["web.a"][3]), tmp_path / "x.wsp")
    assert p.returncode == 1 and len(p.stderr.splitlines()) == 1 and "does not apply to this base" in p.stderr
    assert os.path.getsize(tmp_path / "x.wsp") == 0

    # Day 3 with --full-every 2: the chain full + 1 delta is as long as allowed: full.
    day2 = {m: (out[m][1], out[m][2]) for m in ["web.a", "web.b"]}
    add_points(paths["web.a"], 4)
    out, snaps = backup(paths.values(), root, store, spool, state, "--full-every 2")
    assert out["web.a"][3].endswith(".wsp.gz") and len(snaps["web.a"]) == 6
    # Day 4, default --full-every: a delta against day 3's full version.
    add_points(paths["web.a"], 5)
    day3 = (out["web.a"][1], out["web.a"][2])
    out, snaps = backup(paths.values(), root, store, spool, state)
    assert out["web.a"][3].endswith(f".{day3[0]}.{day3[1]}.wspd.gz")
    # A delta against a delta: web.b's day-2 version.
    add_points(paths["web.b"], 6)
    out, snaps = backup(paths.values(), root, store, spool, state)
    assert out["web.b"][3].endswith(f".{day2['web.b'][0]}.{day2['web.b'][1]}.wspd.gz")
    # --full: a full version, and the page index is still written so the next can be a delta.
    add_points(paths["web.a"], 7)
    out, snaps = backup(paths.values(), root, store, spool, state, "--full")
    assert out["web.a"][3].endswith(".wsp.gz") and out["web.a"][5] == "stored"
    full_time, full_hash = out["web.a"][1], out["web.a"][2]
    add_points(paths["web.a"], 8)
    out, snaps = backup(paths.values(), root, store, spool, state)
    assert out["web.a"][3].endswith(f".{full_time}.{full_hash}.wspd.gz")


def test_no_state_and_dry_runs_store_full_and_write_no_page_index(tmp_path, store, spool):
    root, state = tmp_path / "w", tmp_path / "state"
    paths = make_tree(root, ["db.x", "db.y"])
    backup(paths.values(), root, store, spool, state)
    index = page_indexes(state)
    assert len(index) == 2
    add_points(paths["db.x"], 2)
    settle(paths.values())
    # wsp-snap without --state (what a dry run gets): a full snapshot, the index untouched.
    p = sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push --dry-run {store}")
    out = {r[0]: r for r in records(p.stdout)}
    assert out["db.x"][5] == "would-store" and out["db.x"][3].endswith(".wsp.gz")
    assert page_indexes(state) == index
    # whisper-backup -n (dry run) with a state: writes no page index either.
    other = tmp_path / "state2"
    wrap(BACKUP, "-n", "-p", root, "-b", tmp_path / "bucket", "--create-bucket", "--nolock", "--nolog", "--nostamp",
         "--state", other, "disk")
    assert not os.path.exists(other / "pageindex") and not os.path.exists(other / "pages")
    # The orchestrator passes --full-every on: K=1 makes every version full.
    bucket = tmp_path / "bucket2"
    args = ["-p", root, "-b", bucket, "--create-bucket", "--nolock", "--nolog", "--nostamp", "--state", tmp_path / "state3"]
    wrap(BACKUP, *args, "disk")
    add_points(paths["db.x"], 3)
    settle(paths.values())
    wrap(BACKUP, *args, "--full-every", "1", "disk")
    assert all(f.endswith(".wsp.gz") for f in os.listdir(bucket / "db.x"))
    add_points(paths["db.x"], 4)
    settle(paths.values())
    wrap(BACKUP, *args, "disk")
    assert sum(f.endswith(".wspd.gz") for f in os.listdir(bucket / "db.x")) == 1
    p = wrap(BACKUP, *args, "--full-every", "0", "disk", check=False)
    assert p.returncode == 2 and "--full-every" in p.stderr
    p = run("wsp-snap", "--full-every", "0", "--spool", spool, input="")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--full-every" in p.stderr, p.stderr


def test_resized_files_and_long_names_are_stored_full(tmp_path, store, spool):
    root, state = tmp_path / "w", tmp_path / "state"
    long_name = ".".join(["a" * 200, "b" * 200, "c" * 200, "m"])
    assert len(long_name.encode()) > 600
    paths = make_tree(root, ["r.resized", "r.ok", long_name])
    backup(paths.values(), root, store, spool, state)
    # whisper-resize rewrites every archive: every page differs, more than half the file.
    subprocess.run(["whisper-resize.py", "--nobackup", paths["r.resized"], "60s:3d", "300s:30d", "1h:1y"],
                   check=True, capture_output=True)
    add_points(paths["r.ok"], 2)
    add_points(paths[long_name], 3)
    out, snaps = backup(paths.values(), root, store, spool, state)
    assert out["r.resized"][5] == "stored" and out["r.resized"][3].endswith(".wsp.gz") and len(snaps["r.resized"]) == 6
    assert out[long_name][5] == "stored" and out[long_name][3].endswith(".wsp.gz") and len(snaps[long_name]) == 6
    assert out["r.ok"][3].endswith(".wspd.gz"), "the same run makes deltas of the others"
    # The resized file's index is its new content's: its next change is a delta again.
    add_points(paths["r.resized"], 4)
    out, snaps = backup(paths.values(), root, store, spool, state)
    assert out["r.resized"][3].endswith(".wspd.gz")


def test_a_state_with_the_page_files_of_earlier_versions_keeps_making_deltas(tmp_path, store, spool):
    """Earlier versions kept a file per metric, STATE/pages/XX/HASH32 (XX, HASH32: the first
    2 and 32 hex digits of the SHA-256 of the name). Such a state still makes deltas, and each
    file goes once its metric's index is written the new way."""
    root, state = tmp_path / "w", tmp_path / "state"
    paths = make_tree(root, ["up.a", "up.b", "up.c"])
    backup(paths.values(), root, store, spool, state)
    # The state as an earlier version left it: the same indexes, a file each.
    for metric, index in page_indexes(state).items():
        h = hashlib.sha256(metric.encode()).hexdigest()
        os.makedirs(state / "pages" / h[:2], exist_ok=True)
        (state / "pages" / h[:2] / h[:32]).write_bytes(index)
    shutil.rmtree(state / "pageindex")
    legacy = {m: state / "pages" / hashlib.sha256(m.encode()).hexdigest()[:2] / hashlib.sha256(m.encode()).hexdigest()[:32]
              for m in paths}
    add_points(paths["up.a"], 2)
    add_points(paths["up.b"], 3)
    out, snaps = backup(paths.values(), root, store, spool, state)
    assert out["up.a"][3].endswith(".wspd.gz") and out["up.b"][3].endswith(".wspd.gz"), out
    assert out["up.c"][5] == "unchanged"
    # Replaced: the changed metrics' files are gone, the unchanged one's stays until it changes.
    assert not legacy["up.a"].exists() and not legacy["up.b"].exists() and legacy["up.c"].exists()
    assert set(page_indexes(state)) == {"up.a", "up.b"}
    add_points(paths["up.c"], 4)
    out, _ = backup(paths.values(), root, store, spool, state)
    assert out["up.c"][3].endswith(".wspd.gz") and not legacy["up.c"].exists()
    # Every version restores byte for byte through the chain.
    restored = tmp_path / "restored"
    sh(f"wsp-pull list {store} 'up.*' | wsp-pull get --spool {spool} {store} | wsp-merge --root {restored}")
    for m, p in paths.items():
        assert open(p, "rb").read() == open(os.path.join(restored, *m.split(".")) + ".wsp", "rb").read(), m


def test_the_previous_versions_page_index_files_of_directories_still_make_deltas(tmp_path, store, spool):
    """The previous version kept a file per whisper directory, named by it: its indexes are
    still read, so the first run after an upgrade stores changed files as deltas."""
    root, state = tmp_path / "w", tmp_path / "state"
    paths = make_tree(root, ["app.web.a", "app.web.b", "app.db.c"])
    backup(paths.values(), root, store, spool, state)
    assert os.listdir(state / "pageindex") == ["app"]
    indexes = page_indexes(state)
    shutil.rmtree(state / "pageindex")
    os.makedirs(state / "pageindex")
    for d in ("app.web", "app.db"):
        with open(state / "pageindex" / d, "wb") as f:
            for m, index in indexes.items():
                if m.rsplit(".", 1)[0] == d:
                    n = m.encode()
                    rec = b"WPI1" + struct.pack("<II", len(n), len(index)) + n + index
                    f.write(rec + hashlib.sha256(rec).digest()[:8])
    for p in paths.values():
        add_points(p, 2)
    out, snaps = backup(paths.values(), root, store, spool, state)
    assert all(r[3].endswith(".wspd.gz") for r in out.values()), out
    # The new indexes are in the shared file; the old files stay, read only when it has none.
    assert sorted(os.listdir(state / "pageindex")) == ["app", "app.db", "app.web"]
    restored = tmp_path / "restored"
    sh(f"wsp-pull list {store} 'app.*' | wsp-pull get --spool {spool} {store} | wsp-merge --root {restored}")
    for m, p in paths.items():
        assert open(p, "rb").read() == open(os.path.join(restored, *m.split(".")) + ".wsp", "rb").read(), m


def test_processes_snapping_one_directory_share_its_page_index_file(tmp_path, store, spool):
    """xargs -P splits a directory's metrics among processes: they append to one page index
    file at once, and every record stays whole, so the next day each metric is a delta."""
    root, state = tmp_path / "w", tmp_path / "state"
    names = [f"many.m{i:02d}" for i in range(40)]
    paths = make_tree(root, names, schema=[(60, 1440)])
    settle(paths.values())
    x = "xargs -d '\\n' -r -P 4 -n 3"
    sh(f"wsp-find --root {root} | {x} wsp-snap --spool {spool} --state {state} | {x} wsp-push --state {state} {store} > /dev/null")
    assert os.listdir(state / "pageindex") == ["@"] and set(page_indexes(state)) == set(names)
    for p in paths.values():
        add_points(p, 5)
    settle(paths.values())
    p = sh(f"wsp-find --root {root} | {x} wsp-snap --spool {spool} --state {state} | {x} wsp-push --state {state} {store}")
    out = {r[0]: r for r in records(p.stdout)}
    assert set(out) == set(names) and all(r[3].endswith(".wspd.gz") for r in out.values()), out


def test_a_base_gone_from_the_store_makes_the_next_version_full(tmp_path, store, spool):
    root, state = tmp_path / "w", tmp_path / "state"
    paths = make_tree(root, ["g.checked", "g.raced"])
    out, _ = backup(paths.values(), root, store, spool, state)
    # Removed behind the state's back before a run: the state check drops the entry, and
    # the file is stored full.
    os.remove(os.path.join(store_dir(store), out["g.checked"][3]))
    add_points(paths["g.checked"], 2)
    out2, snaps = backup(paths.values(), root, store, spool, state)
    assert out2["g.checked"][5] == "stored" and out2["g.checked"][3].endswith(".wsp.gz")
    assert len(snaps["g.checked"]) == 6
    # Removed between wsp-snap and wsp-push: the push fails the record by name and the state
    # forgets the metric; the next run stores it full.
    add_points(paths["g.raced"], 3)
    settle(paths.values())
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool} --state {state} > {spool}.snaps")
    snaps = {r[0]: r for r in records(open(f"{spool}.snaps").read())}
    base = out["g.raced"]
    assert snaps["g.raced"][8] == f"{base[1]}.{base[2]}"
    # A delta record is checked against its spool file's delta header, not its gzip trailer:
    # a full gzip, or a delta against another base, stores nothing.
    rec = list(snaps["g.raced"])
    shutil.copy(os.path.join(store_dir(store), base[3]), tmp_path / "full.gz")
    p = run("wsp-push", store, input="\t".join(rec[:4] + [str(tmp_path / "full.gz")] + rec[5:]) + "\n")
    assert p.returncode == 1 and "not the delta the record describes (not a delta version" in p.stderr, p.stderr
    shutil.copy(rec[4], tmp_path / "delta.gz")
    p = run("wsp-push", store, input="\t".join(rec[:4] + [str(tmp_path / "delta.gz")] + rec[5:8] + [f"{base[1]}.{'0' * 64}"]) + "\n")
    assert p.returncode == 1 and "that the record describes" in p.stderr, p.stderr
    assert len(os.listdir(os.path.join(store_dir(store), "g.raced"))) == 1
    os.remove(os.path.join(store_dir(store), base[3]))
    p = sh(f"wsp-push --state {state} {store} < {spool}.snaps", check=False)
    assert p.returncode == 1
    assert f"g.raced: base version {base[1]}.{base[2][:12]}… is not in the store (or is damaged); the next run stores a full version" in p.stderr, p.stderr
    assert os.listdir(os.path.join(store_dir(store), "g.raced")) == [], "nothing stored"
    out3, snaps = backup(paths.values(), root, store, spool, state)
    assert out3["g.raced"][5] == "stored" and out3["g.raced"][3].endswith(".wsp.gz")


def test_a_file_read_right_after_a_write_is_still_the_next_deltas_base(tmp_path, store, spool):
    root, state = tmp_path / "w", tmp_path / "state"
    paths = make_tree(root, ["live.a"])
    backup(paths.values(), root, store, spool, state)
    # Read within 2 s of carbon's write: its stat is not trusted, but its version is recorded.
    add_points(paths["live.a"], 2)
    out, snaps = backup(paths.values(), root, store, spool, state, settled=False)
    assert snaps["live.a"][5] == "-" and out["live.a"][3].endswith(".wspd.gz")
    day2 = out["live.a"]
    # The next change is a delta against it (the state's entry matches no stat, so the
    # file is read, but names the version).
    add_points(paths["live.a"], 3)
    out, snaps = backup(paths.values(), root, store, spool, state)
    assert out["live.a"][3].endswith(f".{day2[1]}.{day2[2]}.wspd.gz")
    # Unchanged since, and now settled: read once more, then trusted.
    out, snaps = backup(paths.values(), root, store, spool, state)
    assert snaps["live.a"][4] == "-" and out["live.a"][5] == "unchanged"


def test_deltas_on_every_store(be3, tmp_path):
    be = be3
    paths = make_tree(tmp_path / "mine", ["s.a", "s.b"])
    n = Node(be, tmp_path, 1)   # waits until the files are settled
    n.root = tmp_path / "mine"
    out, _, _ = n.backup()
    full = {r[0]: r[3][r[3].index(r[0] + "/"):] for r in out}   # keys under the store's prefix
    add_points(paths["s.a"], 2)
    settle(paths.values())
    out, snaps, _ = n.backup()
    out = {r[0]: r for r in out}
    assert out["s.b"][5] == "unchanged"
    key = out["s.a"][3][out["s.a"][3].index("s.a/"):]
    assert out["s.a"][5] == "stored" and key.endswith(".wspd.gz") and key in be.keys()
    (tmp_path / "full.gz").write_bytes(be.get(full["s.a"]))
    (tmp_path / "delta.gz").write_bytes(be.get(key))
    gunzip(tmp_path / "full.gz", tmp_path / "base.wsp")
    p = apply_delta(tmp_path / "base.wsp", tmp_path / "delta.gz", tmp_path / "new.wsp")
    assert p.returncode == 0, p.stderr
    assert open(tmp_path / "new.wsp", "rb").read() == open(paths["s.a"], "rb").read()


def test_deltas_while_carbon_writes(live, tmp_path, store, spool):
    """Carbon writes every file all the time, so no stat is ever settled: the state still
    names each stored version, and the next runs store deltas, each of which rebuilds along
    its chain into the file content its name promises."""
    feeder, wdir, prefix = live
    state = tmp_path / "state"
    feeder.start(rate=50)
    stored = []
    try:
        for _ in range(4):
            p = sh(f"wsp-find --root {wdir} '{prefix}.*' | wsp-snap --spool {spool} --state {state} | wsp-push --state {state} {store}")
            stored.append([r[3] for r in records(p.stdout) if r[5] == "stored"])
    finally:
        feeder.stop()
    assert len(stored[0]) == len(feeder.metrics) and all(k.endswith(".wsp.gz") for k in stored[0])
    later = sum(stored[1:], [])
    assert later and all(k.endswith(".wspd.gz") for k in later), "every later version is a delta"
    root = store_dir(store)
    keys = {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
            if f.endswith((".wsp.gz", ".wspd.gz"))}
    deltas = sorted(k for k in keys if k.endswith(".wspd.gz"))
    assert sorted(later) == deltas
    built = {}

    def build(key):
        if key not in built:
            metric, name = key.split("/")
            if name.endswith(".wsp.gz"):
                gunzip(os.path.join(root, key), tmp_path / "v.wsp")
            else:
                base = name[:-len(".wspd.gz")][82:]
                [base_key] = [k for k in keys if k.startswith(f"{metric}/{base}.")]
                open(tmp_path / "b.wsp", "wb").write(build(base_key))
                p = apply_delta(tmp_path / "b.wsp", os.path.join(root, key), tmp_path / "v.wsp")
                assert p.returncode == 0, p.stderr
            data = open(tmp_path / "v.wsp", "rb").read()
            assert hashlib.sha256(data).hexdigest() == name[17:81], key
            built[key] = data
        return built[key]

    for key in deltas:
        valid_for_whisper(build(key), str(tmp_path))

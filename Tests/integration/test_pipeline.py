"""The six tools end to end on a file:// store: round trip, dedup, --before, retention,
globs, parallelism, corruption and bad input."""
import gzip
import hashlib
import os
import shutil
import stat
import subprocess
import time
import zlib

import pytest
import whisper

from conftest import NOW, change_tree, gen_tree, read, records, run, sh, wsp_files


def backup(root, store, spool, globs="", extra=""):
    return sh(f"wsp-find --root {root} {globs} | wsp-snap --spool {spool} | wsp-push {extra} {store}")


def restore(store, spool, target, globs="'*'", before=""):
    b = f"--before {before}" if before else ""
    return sh(f"wsp-pull list {b} {store} {globs} | wsp-pull get --spool {spool} {store} | wsp-merge --root {target}")


def versions(store_dir):
    out = {}
    for d, _, fs in os.walk(store_dir):
        for f in fs:
            if f.endswith(".wsp.gz"):
                out.setdefault(os.path.basename(d), []).append(f)
    return out


def test_round_trip_byte_identical_and_valid_for_whisper(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=200)
    p = backup(root, store, spool)
    recs = records(p.stdout)
    assert len(recs) == 200 and all(r[5] == "stored" for r in recs)
    out = tmp_path / "restored"
    r = restore(store, spool, out)
    assert [x[1] for x in records(r.stdout)] == ["created"] * 200
    src, dst = wsp_files(root), wsp_files(out)
    assert sorted(src) == sorted(dst)
    for rel in src:
        assert read(src[rel]) == read(dst[rel]), rel
        info = whisper.info(dst[rel])
        assert info["archives"]
        for a in info["archives"]:
            # fetch every archive through the oracle, same result as the source
            frm = NOW - a["retention"] + a["secondsPerPoint"]
            assert whisper.fetch(dst[rel], frm, NOW, now=NOW) == whisper.fetch(src[rel], frm, NOW, now=NOW)
    # the spool is drained by the last stage
    assert [f for f in os.listdir(spool) if not f.startswith(".")] == []


def test_store_objects_readable_by_hand(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=8)
    backup(root, store, spool)
    store_dir = store[len("file://"):]
    long_zero_runs = 0
    for metric, files in versions(store_dir).items():
        (f,) = files
        time_part, digest, _ = f.split(".", 2)
        assert len(time_part) == 16 and time_part.endswith("Z") and "T" in time_part
        blob = read(os.path.join(store_dir, metric, f))
        data = gzip.decompress(blob)
        assert hashlib.sha256(data).hexdigest() == digest
        assert data == read(os.path.join(root, *metric.split(".")) + ".wsp")
        # exactly one gzip member, nothing after it (zlib stops at the end of the first)
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        assert d.decompress(blob) + d.flush() == data and d.eof and d.unused_data == b""
        long_zero_runs += b"\0" * 70000 in data
        assert subprocess.run(["gunzip", "-t"], input=blob).returncode == 0
    # preallocated, mostly empty archives: the compressor's zero-run path was exercised
    assert long_zero_runs >= 2


def test_unchanged_tree_stores_nothing_and_changed_files_get_new_versions(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=40)
    backup(root, store, spool)
    store_dir = store[len("file://"):]
    first = versions(store_dir)
    p = backup(root, store, spool)
    assert {r[5] for r in records(p.stdout)} == {"unchanged"}
    assert versions(store_dir) == first
    change_tree(root, 0.3, seed=7, now=NOW + 60)
    p = backup(root, store, spool)
    stored = {r[0] for r in records(p.stdout) if r[5] == "stored"}
    assert 0 < len(stored) < 40
    after = versions(store_dir)
    for metric in after:
        assert len(after[metric]) == (2 if metric in stored else 1)


def test_before_restores_the_older_version(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=16)
    backup(root, store, spool)
    old = {rel: read(p) for rel, p in wsp_files(root).items()}
    store_dir = store[len("file://"):]
    # Make the first versions look a day old, so --before can tell them apart.
    for d, _, fs in os.walk(store_dir):
        for f in fs:
            t = f[:16]
            os.rename(os.path.join(d, f), os.path.join(d, "20200101T000000Z" + f[16:]))
    change_tree(root, 1.0, seed=3, now=NOW + 60)
    backup(root, store, spool)
    new = {rel: read(p) for rel, p in wsp_files(root).items()}
    restore(store, spool, tmp_path / "old", before="2020-01-02T00:00:00Z")
    restore(store, spool, tmp_path / "new")
    assert {rel: read(p) for rel, p in wsp_files(tmp_path / "old").items()} == old
    assert {rel: read(p) for rel, p in wsp_files(tmp_path / "new").items()} == new
    assert old != new


def test_keep_three_after_five_changing_runs(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=12)
    store_dir = store[len("file://"):]
    for i in range(5):
        if i:
            change_tree(root, 1.0, seed=100 + i, now=NOW + 60 * i)
        backup(root, store, spool)
    assert all(len(v) == 5 for v in versions(store_dir).values())
    newest = {m: sorted(v)[-3:] for m, v in versions(store_dir).items()}
    p = sh(f"wsp-find --root {root} | wsp-prune --keep 3 {store}")
    assert len(records(p.stdout)) == 12 * 2
    assert {m: sorted(v) for m, v in versions(store_dir).items()} == newest
    # idempotent: nothing more to delete
    assert sh(f"wsp-find --root {root} | wsp-prune --keep 3 {store}").stdout == ""


def test_prune_dry_run_deletes_nothing(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=4)
    for i in range(3):
        change_tree(root, 1.0, seed=10 + i, now=NOW + 60 * i)
        backup(root, store, spool)
    before = versions(store[7:])
    p = run("wsp-prune", "--keep", "1", "--all", "--dry-run", store, check=True)
    assert {r[5] for r in records(p.stdout)} == {"would-delete"} and len(records(p.stdout)) == 8
    assert versions(store[7:]) == before


def test_glob_subsets_backup_and_restore(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=48)
    found = records(run("wsp-find", "--root", root, "servers.host00{1,3}.cpu.*", check=True).stdout)
    assert sorted(r[0] for r in found) == ["servers.host001.cpu.system", "servers.host001.cpu.user",
                                           "servers.host003.cpu.system", "servers.host003.cpu.user"]
    # '*' crosses dots, as fnmatch did
    across = records(run("wsp-find", "--root", root, "servers*rx", check=True).stdout)
    assert sorted(r[0] for r in across) == [f"servers.host{i:03d}.net.eth0.rx" for i in range(6)]
    q = records(run("wsp-find", "--root", root, "servers.host00?.disk.sd[a-b].reads", check=True).stdout)
    assert len(q) == 6
    backup(root, store, spool, globs="'servers.host00[0-2].*'")
    assert sorted(versions(store[7:])) == sorted(
        m for m in (r[0] for r in records(run("wsp-find", "--root", root, check=True).stdout))
        if m.startswith(("servers.host000.", "servers.host001.", "servers.host002.")))
    restore(store, spool, tmp_path / "r", globs="'servers.host00{0,2}.*.user' 'servers*free'")
    got = sorted(wsp_files(tmp_path / "r"))
    assert got == ["servers/host000/cpu/user.wsp", "servers/host000/mem/free.wsp",
                   "servers/host001/mem/free.wsp", "servers/host002/cpu/user.wsp", "servers/host002/mem/free.wsp"]


def test_metric_names_on_stdin_select_versions(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=8)
    backup(root, store, spool)
    p = sh(f"printf 'servers.host000.cpu.user\\nservers.host000.mem.free\\tignored\\n' | wsp-pull list {store}")
    assert [r[0] for r in records(p.stdout)] == ["servers.host000.cpu.user", "servers.host000.mem.free"]
    assert sh(f"echo no.such.metric | wsp-pull list {store}", check=False).returncode == 1


def test_parallel_equals_serial(tmp_path, spool):
    root = gen_tree(tmp_path / "w", files=120)
    s1, s2 = tmp_path / "s1", tmp_path / "s2"
    s1.mkdir(); s2.mkdir()
    serial = sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push file://{s1}")
    par = sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | xargs -d '\\n' -P 4 -n 7 wsp-push file://{s2}")
    rs, rp = records(serial.stdout), records(par.stdout)
    assert len(rp) == 120 and all(len(r) == 6 for r in rp)   # no interleaved records
    strip = lambda rs: sorted((r[0], r[2], r[5]) for r in rs)
    assert strip(rs) == strip(rp)
    same = lambda d: sorted((m, sorted(x[17:] for x in v)) for m, v in versions(str(d)).items())
    assert same(s1) == same(s2)
    a = sh(f"wsp-pull list file://{s1} '*' | wsp-pull get --spool {spool} file://{s1} | wsp-merge --root {tmp_path}/ra")
    b = sh(f"wsp-pull list file://{s2} '*' | xargs -d '\\n' -P 4 -n 5 wsp-pull get --spool {spool} file://{s2}"
           f" | xargs -d '\\n' -P 3 -n 4 wsp-merge --root {tmp_path}/rb")
    assert len(records(b.stdout)) == 120 and all(len(r) == 4 and r[1] == "created" for r in records(b.stdout))
    fa, fb = wsp_files(tmp_path / "ra"), wsp_files(tmp_path / "rb")
    assert sorted(fa) == sorted(fb) == sorted(wsp_files(root))
    assert all(read(fa[k]) == read(fb[k]) == read(wsp_files(root)[k]) for k in fa)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_object_fails_that_metric_only(tmp_path, store, spool, damage):
    root = gen_tree(tmp_path / "w", files=16)
    backup(root, store, spool)
    store_dir = store[7:]
    victim = "servers.host001.mem.free"
    (obj,) = versions(store_dir)[victim]
    path = os.path.join(store_dir, victim, obj)
    data = bytearray(read(path))
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    else:
        data = data[: len(data) - 9]
    with open(path, "wb") as f:
        f.write(data)
    p = sh(f"wsp-pull list {store} '*' | wsp-pull get --spool {spool} {store} | wsp-merge --root {tmp_path}/r", check=False)
    assert p.returncode == 1
    errs = [l for l in p.stderr.splitlines() if l.startswith("wsp-merge:")]
    assert len(errs) == 1 and victim in errs[0] and "bad object" in errs[0]
    got = wsp_files(tmp_path / "r")
    assert len(got) == 15 and "servers/host001/mem/free.wsp" not in got
    assert {r[0]: r[1] for r in records(p.stdout)}[victim] == "failed"


def test_existing_target_is_never_overwritten(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=4)
    backup(root, store, spool)
    out = tmp_path / "r"
    target = out / "servers" / "host000" / "cpu" / "user.wsp"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"operator's own file")
    # An existing target that is not whisper cannot be backfilled: it fails, untouched.
    p = sh(f"wsp-pull list {store} '*' | wsp-pull get --spool {spool} {store} | wsp-merge --root {out}", check=False)
    assert p.returncode == 1
    assert [r[1] for r in records(p.stdout) if r[0] == "servers.host000.cpu.user"] == ["failed"]
    assert target.read_bytes() == b"operator's own file"


def test_bad_input_is_reported_per_record(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=6)
    (root / "bogus.wsp").write_bytes(b"this is not whisper" * 10)
    (root / "empty.wsp").write_bytes(b"")
    locked = root / "servers" / "host000" / "cpu" / "user.wsp"
    os.chmod(locked, 0)
    unreadable_expected = os.geteuid() != 0   # root reads anyway
    p = sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}", check=False)
    assert p.returncode == 1
    errs = [l for l in p.stderr.splitlines() if l.startswith("wsp-snap:")]
    assert any(l.startswith("wsp-snap: bogus:") and "not a whisper file" in l for l in errs)
    assert any(l.startswith("wsp-snap: empty:") and "empty file" in l for l in errs)
    assert len(errs) == 2 + (1 if unreadable_expected else 0)
    assert len(versions(store[7:])) == 6 - (1 if unreadable_expected else 0)
    os.chmod(locked, 0o644)
    # names that would leave the root
    for bad in ["..\tx", "a..b\tx", "/etc/passwd\tx", "a/b\tx"]:
        r = run("wsp-snap", "--spool", spool, bad)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and r.stdout == ""
    fake = tmp_path / "x.gz"
    fake.write_bytes(gzip.compress(b"x"))
    r = run("wsp-merge", "--root", tmp_path / "r", "..\t20260101T000000Z\t" + "0" * 64 + f"\t{fake}")
    assert r.returncode == 1 and "wsp-merge: ..:" in r.stderr
    assert not os.path.exists(tmp_path / "r" / ".wsp")


def test_full_spool_fails_clearly(tmp_path, store):
    root = gen_tree(tmp_path / "w", files=3, schemas="big", days=400)
    spool = tmp_path / "tiny"
    p = sh(f"wsp-find --root {root} | wsp-snap --spool {spool} --spool-max 64K --spool-wait 1", check=False)
    assert p.returncode == 1
    assert len([l for l in p.stderr.splitlines() if "spool" in l and "--spool-max" in l]) == 3
    assert records(p.stdout) == []


def test_spool_bound_holds_while_next_stage_drains(tmp_path, store):
    root = gen_tree(tmp_path / "w", files=24, schemas="big", days=30)
    spool = tmp_path / "sp"
    # room for about two compressed files: snap must wait for push to drain
    p = sh(f"wsp-find --root {root} | wsp-snap --spool {spool} --spool-max 400K --spool-wait 60 | wsp-push {store}")
    assert len(records(p.stdout)) == 24


def test_restore_through_a_spool_of_a_few_files_completes(tmp_path, store, spool):
    """A restore whose spool holds only a few files, under xargs -P 2 -n 3: wsp-pull get waits
    for room that only wsp-merge's hand-backs make (grouped when its records are arguments),
    and the run still ends with every file back."""
    root = gen_tree(tmp_path / "w", files=12, schemas="small")
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}")
    largest = max(os.path.getsize(os.path.join(store[len("file://"):], d, f))
                  for d in os.listdir(store[len("file://"):]) if not d.startswith(".")
                  for f in os.listdir(os.path.join(store[len("file://"):], d)))
    out, tight = tmp_path / "r", tmp_path / "tight"
    p = sh(f"wsp-pull list {store} '*' | xargs -d '\\n' -P 2 -n 3 wsp-pull get --spool {tight} --spool-max {4 * largest}"
           f" --spool-wait 60 {store} | xargs -d '\\n' -P 2 -n 3 wsp-merge --root {out}", timeout=120)
    assert sorted(r[1] for r in records(p.stdout)) == ["created"] * 12
    for rel, path in wsp_files(root).items():
        assert read(out / rel) == read(path), rel
    assert [f for f in os.listdir(tight) if not f.startswith(".")] == []


def test_usage_errors_exit_2_and_help_lists_columns():
    for tool, args in [("wsp-find", []), ("wsp-push", []), ("wsp-prune", ["file:///tmp"]),
                       ("wsp-merge", ["--bogus"]), ("wsp-pull", ["list"]), ("wsp-snap", ["--level", "0"])]:
        p = run(tool, *args)
        assert p.returncode == 2, (tool, p.stderr)
        assert p.stdout == ""
    assert run("wsp-push", "nope://x").returncode == 2
    assert run("wsp-push", "file:///does/not/exist").returncode == 2
    assert run("wsp-prune", "--keep", "0", "file:///tmp").returncode == 2
    for n in ("0", "65"):
        p = run("wsp-push", "--connections", n, "file:///tmp")
        assert p.returncode == 2 and f"--connections {n}: not a number from 1 to 64" in p.stderr, p.stderr
    # Each tool's --help is checked whole in test_help.py.
    for tool in ("wsp-find", "wsp-snap", "wsp-push", "wsp-pull", "wsp-merge", "wsp-prune"):
        v = run(tool, "--version")
        assert v.returncode == 0 and v.stdout.strip()


def test_symlinks_out_of_root_are_skipped(tmp_path):
    root = gen_tree(tmp_path / "w", files=2)
    outside = gen_tree(tmp_path / "outside", files=1)
    os.symlink(next(iter(wsp_files(outside).values())), root / "escape.wsp")
    os.symlink(wsp_files(root)["servers/host000/cpu/user.wsp"], root / "inside.wsp")
    os.symlink(outside, root / "linkdir")
    names = sorted(r[0] for r in records(run("wsp-find", "--root", root, check=True).stdout))
    assert names == ["inside", "servers.host000.cpu.system", "servers.host000.cpu.user"]


def test_restore_never_writes_through_a_symlinked_directory(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=2)
    backup(root, store, spool)
    out = tmp_path / "r"
    (out / "servers").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "servers" / "host000")
    p = restore.__wrapped__ if hasattr(restore, "__wrapped__") else None
    r = sh(f"wsp-pull list {store} '*' | wsp-pull get --spool {spool} {store} | wsp-merge --root {out}", check=False)
    assert r.returncode == 1 and "outside the root" in r.stderr
    assert os.listdir(elsewhere) == []


def test_a_batch_creating_a_file_twice_backfills_the_second_into_the_first(tmp_path, store, spool):
    """New files of a batch are linked into place only at its flush; a target that appears
    meanwhile (here: an earlier record of the same batch) is backfilled, never replaced."""
    root = gen_tree(tmp_path / "w", files=3)
    backup(root, store, spool)
    for d, _, fs in os.walk(store[7:]):
        for f in fs:
            if f.endswith(".wsp.gz"):
                os.rename(os.path.join(d, f), os.path.join(d, "20200101T000000Z" + f[16:]))
    change_tree(root, 1.0, seed=9, now=NOW + 600)
    backup(root, store, spool)
    listed = sh(f"wsp-pull list --all {store} '*'").stdout
    p = sh(f"printf '%s' '{listed}' | wsp-pull get --spool {spool} {store} | xargs -d '\\n' wsp-merge --now @{NOW + 600} --root {tmp_path}/r")
    status = [(r[0], r[1]) for r in records(p.stdout)]
    assert sorted(s for _, s in status) == ["created"] * 3 + ["filled"] * 3
    # the newest point of each changed file came from the second version
    for rel, path in wsp_files(root).items():
        out = tmp_path / "r" / rel
        new = whisper.fetch(str(path), NOW - 3600, NOW + 600, now=NOW + 600)
        got = whisper.fetch(str(out), NOW - 3600, NOW + 600, now=NOW + 600)
        assert got == new, rel


def test_a_restore_of_many_small_files_holds_no_descriptor_per_new_file(tmp_path, store, spool):
    """wsp-merge links new files into place in batches of up to 1024 per sync, and a waiting
    new file holds no descriptor: one process restores 1100 files under `ulimit -n 64`."""
    root = gen_tree(tmp_path / "w", files=1100, schemas="small")
    backup(root, store, spool)
    out = tmp_path / "restored"
    x = "xargs -d '\\n' -r -s 1000000 -n 5000"
    r = sh(f"wsp-pull list {store} '*' | {x} wsp-pull get --spool {spool} {store} > {tmp_path}/got && "
           f"ulimit -n 64 && {x} wsp-merge --root {out} < {tmp_path}/got")
    assert [x[1] for x in records(r.stdout)] == ["created"] * 1100
    src, dst = wsp_files(root), wsp_files(out)
    assert sorted(src) == sorted(dst)
    assert all(read(src[rel]) == read(dst[rel]) for rel in src)
    assert not [f for d, _, fs in os.walk(out) for f in fs if f.startswith(".wsp-tmp")]


def stored_objects(store_dir):
    """Every object file of a file:// store: its inode, link count and SHA-256."""
    out = {}
    for d, _, fs in os.walk(store_dir):
        for f in fs:
            if f.endswith(".gz"):
                p = os.path.join(d, f)
                st = os.stat(p)
                out[p] = (st.st_ino, st.st_nlink, hashlib.sha256(open(p, "rb").read()).hexdigest())
    return out


def test_a_restore_in_place_reads_the_stored_objects_and_leaves_them_alone(tmp_path, store, spool):
    """wsp-pull get --in-place (the wrappers' restore from a file:// store) hands each full
    version over as the stored object itself, neither copied nor linked, and rebuilds delta
    versions in the spool; wsp-merge reads both and removes the spool's files only. Every
    object keeps its bytes, its inode and its one name: after the restore, after a reader
    that went away, and when an object was deleted since the listing (that record fails by
    name, the others are fetched)."""
    root = gen_tree(tmp_path / "w", files=12, schemas="mixed", days=400)
    state = tmp_path / "state"
    store_dir = store[len("file://"):]
    time.sleep(2.1)   # the state vouches for a file's stat once it is 2 s old
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool} --state {state} | wsp-push --state {state} {store}")
    change_tree(root, fraction=0.5, seed=3)
    time.sleep(2.1)
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool} --state {state} | wsp-push --state {state} {store}")
    before = stored_objects(store_dir)
    assert any(p.endswith(".wspd.gz") for p in before), "no delta version to rebuild"
    assert all(nlink == 1 for _, nlink, _ in before.values())
    listed = sh(f"wsp-pull list {store} '*'").stdout
    fetched = records(sh(f"printf '%s' '{listed}' | wsp-pull get --in-place --spool {spool} {store}").stdout)
    keys = {r[0]: r[3] for r in records(listed)}
    assert len(fetched) == 12
    rebuilt = 0
    for r in fetched:
        key = keys[r[0]]
        if key.endswith(".wspd.gz"):
            assert os.path.dirname(r[3]) == str(spool), r   # rebuilt in the spool
            rebuilt += 1
        else:
            assert r[3] == os.path.join(store_dir, key), r   # the object itself
    assert 0 < rebuilt < 12
    (tmp_path / "fetched").write_text("".join("\t".join(r) + "\n" for r in fetched))
    out = tmp_path / "restored"
    merged = sh(f"wsp-merge --root {out} < {tmp_path / 'fetched'}")
    assert sorted(r[1] for r in records(merged.stdout)) == ["created"] * 12
    for rel, path in wsp_files(root).items():
        assert read(out / rel) == read(path), rel
    assert stored_objects(store_dir) == before, "wsp-merge removed or changed a stored object"
    # A reader that goes away after the first record: nothing of the store is discarded.
    sh(f"printf '%s' '{listed}' | wsp-pull get --in-place --spool {spool} {store} | head -c 1 > /dev/null", check=False)
    assert stored_objects(store_dir) == before
    # An object deleted since the listing: its record fails by name, the rest are fetched.
    victim = next(r for r in records(listed) if r[3].endswith(".wsp.gz") and not any(
        k.endswith(".wspd.gz") and k.startswith(r[0] + "/") for k in keys.values()))
    os.unlink(os.path.join(store_dir, victim[3]))
    p = sh(f"printf '%s' '{listed}' | wsp-pull get --in-place --spool {spool} {store}", check=False)
    assert p.returncode == 1, p.stderr
    assert f"wsp-pull: {victim[0]}: {victim[3]}: not in the store" in p.stderr, p.stderr
    assert len(records(p.stdout)) == 11
    # An object pruned after wsp-pull get handed it over, before wsp-merge reads it: that
    # record fails by name in wsp-merge, the others are restored, no other object is touched.
    handed = records(p.stdout)
    pruned = next(r for r in handed if r[3].startswith(store_dir + "/") and r[0] != victim[0])
    os.unlink(pruned[3])
    (tmp_path / "handed").write_text("".join("\t".join(r) + "\n" for r in handed))
    m = sh(f"wsp-merge --root {tmp_path / 'late'} < {tmp_path / 'handed'}", check=False)
    assert m.returncode == 1, m.stderr
    errors = [line for line in m.stderr.splitlines() if pruned[0] in line]
    assert len(errors) == 1 and pruned[3] in errors[0], m.stderr
    merged = {r[0]: r for r in records(m.stdout)}
    assert merged.pop(pruned[0])[1] == "failed"
    assert sorted(r[1] for r in merged.values()) == ["created"] * 10, m.stdout
    assert len(wsp_files(tmp_path / "late")) == 10   # nothing written for the pruned record
    gone = {victim[3], os.path.relpath(pruned[3], store_dir)}
    assert stored_objects(store_dir) == {k: v for k, v in before.items() if os.path.relpath(k, store_dir) not in gone}
    # Not a file:// store: a usage error, nothing done.
    p = run("wsp-pull", "get", "--in-place", "--spool", spool, "s3://bucket/node1/", input=listed)
    assert p.returncode == 2 and "--in-place is for file:// stores" in p.stderr, p.stderr


def test_a_restore_from_a_directory_store_links_objects_and_never_writes_through(tmp_path, store, spool):
    """From a file:// store on the spool's filesystem, wsp-pull get hands each object over as
    a hard link (no copy written out). Whatever wsp-merge and the next backup do with the
    spool afterwards (its emptied files are reused, small ones keep their blocks), the stored
    objects keep their bytes and their one name."""
    root = gen_tree(tmp_path / "w", files=16, schemas="mixed", days=400)
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}")
    store_dir = store[len("file://"):]
    objects = lambda: stored_objects(store_dir)
    before = objects()
    sizes = [os.path.getsize(p) for p in before]
    assert min(sizes) <= 64 << 10 < max(sizes), sizes   # both kinds of spool discard
    fetched = sh(f"wsp-pull list {store} '*' | wsp-pull get --spool {spool} {store}").stdout
    inodes = {ino for ino, _, _ in before.values()}
    for r in records(fetched):
        assert os.stat(r[3]).st_ino in inodes, r
    assert all(os.stat(p).st_nlink == 2 for p in before)
    out = tmp_path / "restored"
    (tmp_path / "fetched").write_text(fetched)
    merged = sh(f"wsp-merge --root {out} < {tmp_path / 'fetched'}")
    assert sorted(r[1] for r in records(merged.stdout)) == ["created"] * 16
    assert objects() == before, "a stored object changed, or kept a second name"
    assert not {os.stat(os.path.join(spool, f)).st_ino for f in os.listdir(spool)} & inodes
    for rel, path in wsp_files(root).items():
        assert read(out / rel) == read(path), rel
    # the next backup writes its spool files into whatever the spool kept
    change_tree(root, fraction=1.0, seed=7)
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}")
    after = objects()
    assert all(after[p] == before[p] for p in before)
    assert len(after) == 32

"""Bad input: broken whisper files, broken stored objects, hostile metric names, keys and
paths, symlinks out of the root. Each bad record gets one clear line on stderr
(`tool: METRIC: reason`), the good ones go through, the exit status is 1, and nothing is
written (or removed) outside the root, the spool and the store."""
import gzip
import hashlib
import os
import struct

import pytest

from conftest import NOW, gen_tree, read, records, run, sh, wsp_files
from safetylib import bad_versions, store_dir, store_objects, temp_files

COUNTS = {}   # bad inputs tried, by suite (printed at the end of the run by conftest-less summary)


def count(kind, n=1):
    COUNTS[kind] = COUNTS.get(kind, 0) + n


def tree_snapshot(top):
    """Every path under `top` with its size and mtime: to show nothing changed outside."""
    out = {}
    for d, dirs, fs in os.walk(str(top)):
        for name in dirs + fs:
            p = os.path.join(d, name)
            st = os.lstat(p)
            out[p] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def err_lines(stderr, tool):
    return [l for l in stderr.splitlines() if l.startswith(tool + ": ")]


def bad_whisper_files(good):
    """name -> bytes of broken whisper files, made from a good one."""
    count_ = struct.unpack(">L", good[12:16])[0]
    off0 = struct.unpack(">L", good[16:20])[0]
    wrong_offset = bytearray(good)
    wrong_offset[16:20] = struct.pack(">L", off0 + 12)
    overlapping = bytearray(good)
    if count_ > 1:
        overlapping[28:32] = struct.pack(">L", off0)   # second archive starts where the first does
    huge_count = bytearray(good)
    huge_count[12:16] = struct.pack(">L", 1000)
    bad_agg = bytearray(good)
    bad_agg[0:4] = struct.pack(">L", 99)
    nan_xff = bytearray(good)
    nan_xff[8:12] = struct.pack(">f", float("nan"))
    return {
        "empty": b"",
        "truncated-header": good[:10],
        "truncated-archive-table": good[:20],
        "truncated-data": good[:len(good) // 2],
        "one-byte-long": good + b"\0",
        "text": b"this is not a whisper file\n" * 40,
        "gzip": gzip.compress(good),
        "wrong-offset": bytes(wrong_offset),
        "overlapping-archives": bytes(overlapping),
        "archive-count": bytes(huge_count),
        "aggregation": bytes(bad_agg),
        "xff-nan": bytes(nan_xff),
        "go-carbon": b"whisper_compressed" + good[18:],
    }


def test_broken_whisper_files_are_refused_one_line_each(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=8, schemas="mixed")
    good = read(sorted(wsp_files(root).values())[0])
    bad = bad_whisper_files(good)
    (root / "bad").mkdir()
    for name, data in bad.items():
        (root / "bad" / f"{name}.wsp").write_bytes(data)
    os.mkfifo(root / "bad" / "fifo.wsp")             # find skips it; snap given its path must not hang
    (root / "bad" / "dir.wsp").mkdir()                # a directory named like a metric
    before = tree_snapshot(tmp_path)
    p = sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}", check=False)
    assert p.returncode == 1
    lines = err_lines(p.stderr, "wsp-snap")
    assert sorted(l.split(": ")[1] for l in lines) == sorted(f"bad.{n}" for n in bad), p.stderr
    assert all(len(l) < 400 for l in lines)
    assert len(records(p.stdout)) == 8   # the good ones were stored
    count("broken whisper files", len(bad))
    # A FIFO or a directory given directly: refused at once, not waited on.
    p = run("wsp-snap", "--spool", spool, "--lock-timeout", "2", f"bad.fifo\t{root}/bad/fifo.wsp",
            f"bad.dir\t{root}/bad/dir.wsp", timeout=20)
    assert p.returncode == 1 and p.stdout == ""
    assert len(err_lines(p.stderr, "wsp-snap")) == 2, p.stderr
    count("broken whisper files", 2)
    # nothing changed in the tree; the spool holds nothing
    after = tree_snapshot(tmp_path)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert all(k.startswith(store_dir(store)) or k.startswith(spool) for k in changed), changed
    assert [f for f in os.listdir(spool) if not f.startswith(".")] == []
    assert bad_versions(store_dir(store)) == {}


def stored_objects_damaged(tmp_path, store, spool):
    """A store with one version per metric, then each object damaged differently."""
    root = gen_tree(tmp_path / "w", files=12, schemas="small")
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}")
    objs = sorted((k, p) for k, p in store_objects(store_dir(store)).items() if k.endswith(".wsp.gz"))
    blobs = {k: read(p) for k, p in objs}
    damage = {}

    def put(i, name, data):
        k, p = objs[i]
        open(p, "wb").write(data)
        damage[k.split("/")[0]] = name

    b = blobs[objs[0][0]]
    put(0, "truncated gzip", b[:len(b) // 2])
    flipped = bytearray(blobs[objs[1][0]]); flipped[len(flipped) // 2] ^= 0x04
    put(1, "bit flip in the deflate data", bytes(flipped))
    crc = bytearray(blobs[objs[2][0]]); crc[-6] ^= 0x01
    put(2, "bit flip in the CRC", bytes(crc))
    size = bytearray(blobs[objs[3][0]]); size[-2] ^= 0x01
    put(3, "wrong length in the trailer", bytes(size))
    other = gzip.decompress(blobs[objs[5][0]])
    put(4, "another file's content (hash mismatch)", gzip.compress(other))
    put(6, "empty object", b"")
    put(7, "trailing garbage", blobs[objs[7][0]] + b"garbage")
    # right hash, but not whisper: a stored name that matches non-whisper content
    junk = b"not whisper at all\n" * 100
    k8, p8 = objs[8]
    os.unlink(p8)
    name = k8.split("/")[0]
    new = os.path.join(os.path.dirname(p8), f"{k8.split('/')[1][:16]}.{hashlib.sha256(junk).hexdigest()}.wsp.gz")
    open(new, "wb").write(gzip.compress(junk))
    damage[name] = "non-whisper content with a matching hash"
    put(9, "not gzip at all", b"PK\x03\x04 a zip file")
    # objs[5], [10], [11] stay good; one more good one made of two gzip members
    data = gzip.decompress(blobs[objs[10][0]])
    open(objs[10][1], "wb").write(gzip.compress(data[:1000]) + gzip.compress(data[1000:]))
    return root, damage


def test_damaged_objects_are_never_restored(tmp_path, store, spool):
    root, damage = stored_objects_damaged(tmp_path, store, spool)
    count("damaged stored objects", len(damage))
    out = tmp_path / "restored"
    before = tree_snapshot(tmp_path)
    p = sh(f"wsp-pull list {store} '*' | wsp-pull get --spool {spool} {store} | wsp-merge --root {out}", check=False)
    assert p.returncode == 1
    failed = {l.split(": ")[1]: l for l in err_lines(p.stderr, "wsp-merge")}
    assert sorted(failed) == sorted(damage), p.stderr
    res = {r[0]: r[1] for r in records(p.stdout)}
    assert {m for m, s in res.items() if s == "created"} == {m for m in res if m not in damage}
    restored = {rel.replace("/", ".")[:-4]: read(p) for rel, p in wsp_files(out).items()}
    src = {rel.replace("/", ".")[:-4]: read(p) for rel, p in wsp_files(root).items()}
    assert set(restored) == set(src) - set(damage)
    assert all(restored[m] == src[m] for m in restored)
    assert [f for f in os.listdir(spool) if not f.startswith(".")] == []
    assert temp_files(out) == []
    after = tree_snapshot(tmp_path)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert all(k.startswith(str(out)) or k.startswith(spool) for k in changed), changed
    # verify names exactly the damaged ones
    p = run("wsp-pull", "verify", "--spool", spool, store, "*")
    assert p.returncode == 1
    assert {r[0] for r in records(p.stdout) if r[5] == "bad"} == set(damage)
    assert sorted(l.split(": ")[1] for l in err_lines(p.stderr, "wsp-pull")) == sorted(damage)


HOSTILE = {
    "dotdot": "..",
    "dotdot-inside": "servers..x",
    "dotdot-component": "servers.../etc.passwd",
    "absolute": "/etc/passwd",
    "slash": "servers/../../x",
    "leading-dot": ".hidden",
    "trailing-dot": "servers.",
    "empty-component": "a..b",
    "newline": "servers.x\nservers.y",
    "carriage-return": "servers.x\rservers.y",
    "very-long": "a" * 5000,
    "many-components": ".".join(["d"] * 600),
}
# A 300-byte component is no longer hostile: the store layout holds names longer than a path
# component allows (test_hostile.py::test_long_metric_names_are_stored_and_restored_on_every_store).


@pytest.mark.parametrize("tool", ["snap", "push", "list", "get", "merge", "prune", "verify"])
def test_hostile_metric_names_are_refused_by_every_tool(tmp_path, store, spool, tool):
    root = gen_tree(tmp_path / "w", files=2, schemas="small")
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}")
    good = records(sh(f"wsp-pull list {store} '*'").stdout)[0]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    h = "0" * 64
    gz = tmp_path / "x.wsp.gz"
    gz.write_bytes(gzip.compress(b"x"))
    fields = {
        "snap": lambda m: [m, str(outside / "keep")],
        "push": lambda m: [m, "20261127T035433Z", h, "1", str(gz)],
        "list": lambda m: [m],
        "get": lambda m: [m, "20261127T035433Z", h],
        "merge": lambda m: [m, "20261127T035433Z", h, str(gz)],
        "prune": lambda m: [m],
        "verify": lambda m: [m],
    }[tool]
    args = {
        "snap": ["wsp-snap", "--spool", spool, "--root", root],
        "push": ["wsp-push", store],
        "list": ["wsp-pull", "list", store],
        "get": ["wsp-pull", "get", "--spool", spool, store],
        "merge": ["wsp-merge", "--root", tmp_path / "restored"],
        "prune": ["wsp-prune", "--keep", "1", store],
        "verify": ["wsp-pull", "verify", "--spool", spool, store],
    }[tool]
    names = dict(HOSTILE)
    before = tree_snapshot(tmp_path)
    p = run(*args, *["\t".join(fields(m)) for m in names.values()])
    assert p.returncode == 1, p.stderr
    # wsp-merge also reports failures as records; nobody else writes any
    assert all(r[1] == "failed" for r in records(p.stdout)) if tool == "merge" else p.stdout == ""
    assert len(err_lines(p.stderr, args[0])) == len(names), p.stderr
    assert all(len(l) < 1500 for l in err_lines(p.stderr, args[0]))
    # NUL cannot be in an argument: it comes on stdin
    p = run(*args, input="\t".join(fields("servers.x\0evil")) + "\n")
    assert p.returncode == 1 and (tool == "merge" or p.stdout == "")
    assert "NUL" in p.stderr and len(err_lines(p.stderr, args[0])) == 1, p.stderr
    count("hostile metric names", len(names) + 1)
    after = tree_snapshot(tmp_path)
    assert (outside / "keep").read_text() == "x"
    assert gz.exists()
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    allowed = (spool, store_dir(store), str(tmp_path / "restored"))
    assert all(k.startswith(allowed) for k in changed), changed
    assert bad_versions(store_dir(store)) == {}


def test_keys_and_files_named_by_records_cannot_escape(tmp_path, store, spool):
    """Records name keys (get) and files (push, merge): a key outside the metric's prefix is
    refused, and a file that is not a spool file is never removed."""
    root = gen_tree(tmp_path / "w", files=2, schemas="small")
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}")
    m, t, h, key, size = records(sh(f"wsp-pull list {store} '*'").stdout)[0]
    secret = tmp_path / "secret.wsp.gz"
    secret.write_bytes(read(os.path.join(store_dir(store), key)))
    for k in ["../x", f"{m}/../other/x.wsp.gz", "/etc/passwd", f"other.metric/{key.split('/')[1]}", f"{m}/..", f"{m}/../../../etc/passwd"]:
        p = run("wsp-pull", "get", "--spool", spool, store, f"{m}\t{t}\t{h}\t{k}")
        assert p.returncode == 1 and p.stdout == "", k
        assert len(err_lines(p.stderr, "wsp-pull")) == 1, p.stderr
        count("hostile keys")
    # merge and push given a file outside the spool: merge restores from it (it verifies) but
    # does not delete it; push refuses what is not a gzip of the stated size, and keeps it.
    notgz = tmp_path / "precious.txt"
    notgz.write_text("do not delete me")
    p = run("wsp-merge", "--root", tmp_path / "r", f"{m}\t{t}\t{h}\t{secret}")
    assert p.returncode == 0 and secret.exists()
    p = run("wsp-merge", "--root", tmp_path / "r2", f"{m}\t{t}\t{h}\t{notgz}")
    assert p.returncode == 1 and notgz.read_text() == "do not delete me"
    p = run("wsp-push", store, f"new.metric\t{t}\t{h}\t100\t{notgz}")
    assert p.returncode == 1 and notgz.read_text() == "do not delete me"
    assert "new.metric" not in os.listdir(store_dir(store))
    count("hostile file fields", 3)


def test_symlinks_out_of_the_root_are_not_followed(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=4, schemas="small")
    outside = tmp_path / "outside"
    gen_tree(outside, files=2, schemas="small", seed=9)
    victim = sorted(wsp_files(outside).values())[0]
    os.symlink(victim, root / "servers" / "link.wsp")                    # file symlink out
    os.symlink(outside / "servers", root / "elsewhere")                   # directory symlink out
    os.symlink(root / "servers" / "host000", root / "servers" / "inside")  # directory symlink in (not followed: loops)
    p = sh(f"wsp-find --root {root} '*'", check=False)
    found = {r[0] for r in records(p.stdout)}
    assert "servers.link" not in found and not any(m.startswith("elsewhere.") for m in found)
    assert "symlink leads outside the root" in p.stderr
    count("symlinks", 3)
    # restore must not write through a directory symlink that leads out of the root
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}")
    out = tmp_path / "restored"
    (out / "servers").mkdir(parents=True)
    os.symlink(outside / "servers", out / "servers" / "host000")
    before = tree_snapshot(outside)
    p = sh(f"wsp-pull list {store} '*' | wsp-pull get --spool {spool} {store} | wsp-merge --root {out}", check=False)
    assert p.returncode == 1
    assert "leads outside the root" in p.stderr
    assert tree_snapshot(outside) == before
    count("symlinks")

"""Delta versions read back by the real binaries: a file:// store written here by hand (full
`.wsp.gz` versions and `.wspd.gz` deltas made by a small encoder of the format) from whisper
files made with the whisper module. Every version restores byte-identical through
`wsp-pull list/get | wsp-merge`; a broken chain fails with the link named and leaves the target
alone; `wsp-pull verify` reports the break; `wsp-prune --keep` keeps what kept versions need."""
import gzip
import hashlib
import os
import struct
import time

import whisper

from conftest import read, records, sh

PAGE = 4096
DAY = 86400
T0 = 1790000000


def stamp(t):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


def encode_delta(base, new):
    """The delta format: header, ascending page index, the changed pages of `new`."""
    pages = [i for i in range((len(new) + PAGE - 1) // PAGE)
             if new[i * PAGE:(i + 1) * PAGE] != base[i * PAGE:(i + 1) * PAGE] or (i + 1) * PAGE > len(base)]
    out = b"WSPDELTA" + struct.pack("<IIQQ", 1, PAGE, len(base), len(new))
    out += hashlib.sha256(base).digest() + hashlib.sha256(new).digest()
    out += struct.pack("<I", len(pages)) + b"".join(struct.pack("<I", p) for p in pages)
    return out + b"".join(new[p * PAGE:(p + 1) * PAGE] for p in pages)


def write_chain(bucket, metric, contents, full):
    """Stores `contents` a day apart: full where index in `full`, else a delta against the one
    before. Returns the keys, oldest first."""
    keys = []
    base = None
    for i, data in enumerate(contents):
        t, h = T0 + i * DAY, hashlib.sha256(data).hexdigest()
        if i in full:
            key, body = f"{metric}/{stamp(t)}.{h}.wsp.gz", gzip.compress(data)
        else:
            key, body = f"{metric}/{stamp(t)}.{h}.{base}.wspd.gz", gzip.compress(encode_delta(contents[i - 1], data))
        path = os.path.join(bucket, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(body)
        keys.append(key)
        base = f"{stamp(t)}.{h}"
    return keys


def versions(tmp_path):
    """Six versions of one whisper file: points written between versions, a resize (another
    archive list) in the middle."""
    now = int(time.time())
    path = str(tmp_path / "src.wsp")
    whisper.create(path, [(60, 1440), (3600, 720)])
    out = []
    for i in range(6):
        if i == 3:
            os.unlink(path)
            whisper.create(path, [(60, 2880), (3600, 720)])
        whisper.update_many(path, [(now - 60 * (k * 37 + i), float(i * 1000 + k)) for k in range(20)])
        out.append(read(path))
    return out


def test_every_delta_version_restores_byte_identical(tmp_path, spool):
    bucket = tmp_path / "bucket"
    contents = versions(tmp_path)
    keys = write_chain(str(bucket), "a.b", contents, full={0})
    store = f"file://{bucket}"
    listed = records(sh(f"wsp-pull list --all {store} a.b").stdout)
    assert [r[3] for r in listed] == keys
    for i, rec in enumerate(listed):
        out = tmp_path / f"restored{i}"
        p = sh(f"printf '%s\\n' '{chr(9).join(rec)}' | wsp-pull get --spool {spool} {store} | wsp-merge --root {out}")
        assert [r[1] for r in records(p.stdout)] == ["created"]
        target = out / "a" / "b.wsp"
        assert read(target) == contents[i], keys[i]
        src = tmp_path / "oracle.wsp"
        src.write_bytes(contents[i])
        now = int(time.time())  # one "now" for both: fetch clamps its start to now - retention
        assert whisper.fetch(str(target), 0, now=now) == whisper.fetch(str(src), 0, now=now)
    # The whole chain through one get, into one target: created, then backfilled.
    out = tmp_path / "all"
    p = sh(f"wsp-pull list --all {store} a.b | wsp-pull get --spool {spool} {store} | wsp-merge --root {out}")
    assert [r[1] for r in records(p.stdout)][0] == "created" and len(records(p.stdout)) == 6
    assert [n for n in os.listdir(spool) if not n.startswith(".")] == []


def test_a_broken_chain_fails_named_and_touches_nothing(tmp_path, spool):
    bucket = tmp_path / "bucket"
    contents = versions(tmp_path)
    keys = write_chain(str(bucket), "a.b", contents[:5], full={0})
    os.unlink(bucket / keys[2])
    store = f"file://{bucket}"
    # A target exists: the restore would backfill it.
    out = tmp_path / "restored"
    (out / "a").mkdir(parents=True)
    whisper.create(str(out / "a" / "b.wsp"), [(60, 1440), (3600, 720)])
    before = read(out / "a" / "b.wsp")
    newest = records(sh(f"wsp-pull list {store} a.b").stdout)
    assert [r[3] for r in newest] == [keys[4]]
    p = sh(f"wsp-pull list {store} a.b | wsp-pull get --spool {spool} {store} | wsp-merge --root {out}", check=False)
    assert p.returncode == 1
    base = keys[2].split("/")[1][:81]
    assert f"wsp-pull: a.b: {keys[4]}: its chain is broken: delta {keys[3]}: its base {base} is not in the store" in p.stderr
    assert p.stdout == ""
    assert read(out / "a" / "b.wsp") == before
    assert [n for n in os.listdir(spool) if not n.startswith(".")] == []

    # verify reports every version that depends on the break, and marks nothing.
    p = sh(f"wsp-pull verify --spool {spool} {store} a.b", check=False)
    assert p.returncode == 1
    assert [(r[3], r[5]) for r in records(p.stdout)] == [(keys[0], "ok"), (keys[1], "ok"), (keys[3], "bad"), (keys[4], "bad")]
    assert f"delta {keys[3]}: its base {base} is not in the store" in p.stderr
    assert not [f for f in os.listdir(bucket / "a.b") if f.endswith(".bad")]


def test_prune_keeps_the_bases_of_kept_deltas(tmp_path):
    bucket = tmp_path / "bucket"
    contents = versions(tmp_path)
    keys = write_chain(str(bucket), "a.b", contents[:5], full={0, 2})
    store = f"file://{bucket}"
    p = sh(f"wsp-prune --keep 2 {store} a.b")
    # 3 and 4 kept, and 2, which they are built on; 1 (a delta) and its base 0 deleted.
    assert [(r[3], r[5]) for r in records(p.stdout)] == [(keys[0], "deleted"), (keys[1], "deleted")]
    assert sorted(os.listdir(bucket / "a.b")) == sorted(k.split("/")[1] for k in keys[2:])
    sh(f"wsp-pull list --all {store} a.b | wsp-pull get --spool {tmp_path / 'spool'} {store} | wsp-merge --root {tmp_path / 'r'}")

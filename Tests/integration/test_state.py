"""Incremental runs: the local state makes an unchanged file cost a stat(), and never hides a
change, a damaged state, or a store emptied or replaced behind its back."""
import os
import time

from conftest import NOW, change_tree, gen_tree, read, records, run, sh, wsp_files


def settled_tree(path, files, **kw):
    root = gen_tree(path, files=files, **kw)
    # The state trusts a stat only for files whose mtime and ctime are 2 s old at the read
    # (Snap.settleNs): wait until the newest file's are, by the clock the tools read.
    stats = [os.stat(p) for p in wsp_files(root).values()]
    newest = max(max(st.st_mtime_ns, st.st_ctime_ns) for st in stats)
    while (left := newest + 2_050_000_000 - time.time_ns()) > 0:
        time.sleep(left / 1e9)
    return root


def backup(root, store, spool, state, extra=""):
    p = sh(f"wsp-find --root {root} | wsp-snap --spool {spool} --state {state} {extra}"
           f" | tee {spool}.snaps | wsp-push --state {state} {store}")
    snaps = records(open(f"{spool}.snaps").read())
    global last_stderr
    last_stderr = p.stderr
    return records(p.stdout), snaps


last_stderr = ""


def objects(store_dir):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(store_dir) for f in fs if f.endswith((".wsp.gz", ".wspd.gz")))


def test_unchanged_run_reads_nothing_and_changes_are_seen(tmp_path, store, spool):
    root = settled_tree(tmp_path / "w", 30)
    state = tmp_path / "state"
    out, snaps = backup(root, store, spool, state)
    assert {r[5] for r in out} == {"stored"} and all(s[4] != "-" for s in snaps)
    out2, snaps2 = backup(root, store, spool, state)
    assert all(s[4] == "-" for s in snaps2), ("unchanged files must not be read", [s for s in snaps2 if s[4] != "-"], snaps, last_stderr)
    assert {r[5] for r in out2} == {"unchanged"}
    # the unchanged records name the stored versions exactly
    assert sorted((r[0], r[1], r[2], r[3], r[4]) for r in out2) == sorted((r[0], r[1], r[2], r[3], r[4]) for r in out)
    assert [f for f in os.listdir(spool) if not f.startswith(".")] == []
    change_tree(root, 0.3, seed=5, now=NOW + 60)
    out3, snaps3 = backup(root, store, spool, state)
    stored = {r[0] for r in out3 if r[5] == "stored"}
    read_again = {s[0] for s in snaps3 if s[4] != "-"}
    assert stored and stored == read_again
    assert len(objects(store[7:])) == 30 + len(stored)
    # --full reads every file again; nothing new is stored
    out4, snaps4 = backup(root, store, spool, state, extra="--full")
    assert all(s[4] != "-" for s in snaps4) and {r[5] for r in out4} == {"unchanged"}


def test_a_write_that_keeps_size_and_mtime_is_still_seen(tmp_path, store, spool):
    root = settled_tree(tmp_path / "w", 4)
    state = tmp_path / "state"
    backup(root, store, spool, state)
    f = root / "servers" / "host000" / "cpu" / "user.wsp"
    st = os.stat(f)
    data = bytearray(read(f))
    data[-5] ^= 0xFF
    with open(f, "r+b") as fh:
        fh.write(data)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))   # mtime restored, ctime moves
    out, snaps = backup(root, store, spool, state)
    assert {s[0] for s in snaps if s[4] != "-"} == {"servers.host000.cpu.user"}
    assert [r[0] for r in out if r[5] == "stored"] == ["servers.host000.cpu.user"]


def test_store_emptied_behind_the_state_is_refilled_in_full(tmp_path, store, spool):
    root = settled_tree(tmp_path / "w", 12)
    state = tmp_path / "state"
    backup(root, store, spool, state)
    store_dir = store[7:]
    for name in os.listdir(store_dir):
        p = os.path.join(store_dir, name)
        sh(f"rm -rf '{p}'")
    out, snaps = backup(root, store, spool, state)
    assert {r[5] for r in out} == {"stored"} and len(objects(store_dir)) == 12
    # and the state is trusted again for the refilled store
    out, snaps = backup(root, store, spool, state)
    assert all(s[4] == "-" for s in snaps)


def test_state_of_another_store_is_not_trusted(tmp_path, spool):
    root = settled_tree(tmp_path / "w", 8)
    state = tmp_path / "state"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(); b.mkdir()
    backup(root, f"file://{a}", spool, state)
    # The same state pointed at another (empty) store: never a silent "unchanged". Whether
    # wsp-snap checks the state before or after wsp-push claims it for b is a race: a file is
    # then either read and stored in b, or refused loudly, never reported unchanged.
    p = sh(f"wsp-find --root {root} | wsp-snap --spool {spool} --state {state} | wsp-push --state {state} file://{b}", check=False)
    refused = [l for l in p.stderr.splitlines() if "state for another store" in l]
    stored = [r for r in records(p.stdout) if r[5] == "stored"]
    assert not any(r[5] == "unchanged" for r in records(p.stdout))
    assert len(refused) + len(stored) == 8 and p.returncode == (1 if refused else 0)
    # The push claimed the state for b (dropping a's entries): the next run fills b in full.
    # Only what the run before stored in b may be unchanged now; every other file is stored.
    out, snaps = backup(root, f"file://{b}", spool, state)
    before = {r[0] for r in stored}
    assert len(out) == 8 and len(objects(b)) == 8
    assert {r[0] for r in out if r[5] == "unchanged"} == before, out
    assert {r[0] for r in out if r[5] == "stored"} == {r[0] for r in out} - before, out


def test_damaged_or_lost_state_costs_a_reread_only(tmp_path, store, spool):
    root = settled_tree(tmp_path / "w", 16)
    state = tmp_path / "state"
    backup(root, store, spool, state)
    shards = state / "shards"
    names = sorted(os.listdir(shards))
    # flip a byte in one journal, truncate another mid-line, delete a third
    p = shards / names[0]
    data = bytearray(p.read_bytes()); data[len(data) // 2] ^= 1; p.write_bytes(bytes(data))
    p = shards / names[1]
    p.write_bytes(p.read_bytes()[:-7])
    os.unlink(shards / names[2])
    out, snaps = backup(root, store, spool, state)
    reread = {s[0] for s in snaps if s[4] != "-"}
    assert 3 <= len(reread) < 16
    assert {r[5] for r in out} == {"unchanged"}
    assert len(objects(store[7:])) == 16
    sh(f"rm -rf {state}")
    out, snaps = backup(root, store, spool, state)
    assert all(s[4] != "-" for s in snaps) and {r[5] for r in out} == {"unchanged"}


def test_parallel_pushes_share_one_state(tmp_path, store, spool):
    root = settled_tree(tmp_path / "w", 80)
    state = tmp_path / "state"
    sh(f"wsp-find --root {root} | xargs -d '\\n' -P 3 -n 6 wsp-snap --spool {spool} --state {state}"
       f" | xargs -d '\\n' -P 4 -n 5 wsp-push --state {state} {store}")
    p = sh(f"wsp-find --root {root} | xargs -d '\\n' -P 3 -n 6 wsp-snap --spool {spool} --state {state}")
    assert all(r[4] == "-" for r in records(p.stdout)) and len(records(p.stdout)) == 80
    # one marker for the store
    assert len(open(os.path.join(store[7:], ".wsp-store-id")).read().split()) == 1

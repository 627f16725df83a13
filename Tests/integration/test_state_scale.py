"""The check of a state against a file:// store, made entry by entry as the records come,
holds nothing per journal or per metric: the peak memory of a wsp-snap given N records
is the same for a state of N journals and of 4N (a large tree makes one journal per whisper
directory, close to one per file). Measured as the peak RSS the kernel reports for the
process, on synthetic states that are real ones: the journals' lines as wsp-push writes
them, each vouching for an object that is in the store and for the stat of the file the
record names (hard links of one whisper file, so that an unchanged file costs a stat)."""
import hashlib
import os
import subprocess
import uuid

import pytest

from backends import q
from conftest import BIN, gen_tree, sh

TIME = "20260101T000000Z"
EPOCH = 1767225600


def sealed(line):
    return f"{line}\t{hashlib.sha256(line.encode()).hexdigest()[:16]}\n"


def synthetic_state(tmp_path, journals):
    """A state and its file:// store after a real backup of one file, then `journals` more
    journals of one metric each, whose versions are in the store and whose files are hard
    links of that one file (so each entry matches its file's stat); one of them (the last by
    name) has lost its version. Returns the state, the spool, that metric, and the records of
    every metric (the one file's first)."""
    root, store, state, spool = (tmp_path / d for d in ("root", "store", "state", "spool"))
    for d in (store, spool):
        d.mkdir(parents=True)
    gen_tree(root, files=1)
    first = sh(f"wsp-find --root {q(root)}").stdout
    sh(f"wsp-find --root {q(root)} | wsp-snap --spool {q(spool)} --state {q(state)}"
       f" | wsp-push --state {q(state)} file://{q(store)}")
    src = first.split("\t")[1].rstrip("\n")
    shards = state / "shards"
    victim = f"syn.d{journals - 1:07d}.m"
    metrics = [f"syn.d{i:07d}.m" for i in range(journals)]
    paths = [root / "syn" / m.split(".")[1] / "m.wsp" for m in metrics]
    for path in paths:
        path.parent.mkdir(parents=True)
        os.link(src, path)
    st = os.stat(src)   # after the links, which change it
    for i, (metric, path) in enumerate(zip(metrics, paths)):
        digest = hashlib.sha256(metric.encode()).hexdigest()
        body = digest.encode()
        if metric != victim:
            (store / metric).mkdir()
            (store / metric / f"{TIME}.{digest}.wsp.gz").write_bytes(body)
        line = "\t".join(map(str, (metric, st.st_size, st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns, digest, EPOCH, len(body))))
        (shards / metric.rsplit(".", 1)[0]).write_text(sealed(line))
    records = first + "".join(f"{m}\t{p}\n" for m, p in zip(metrics, paths))
    return state, spool, victim, records


def checking_peak_kb(state, spool, records, tmp_path, timeout=120):
    """The peak RSS (KB) of a wsp-snap given `records`, which checks their journals (a run
    of its own), and its stderr. Taken by GNU time, which forks from a small process: a child
    of this Python would count Python's memory from before its exec."""
    env = dict(os.environ, WSP_RUN_ID=uuid.uuid4().hex)
    peak = tmp_path / "peak"
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(peak), os.path.join(BIN, "wsp-snap"),
                        "--spool", str(spool), "--state", str(state)],
                       input=records, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return int(peak.read_text().split()[-1]), p.stderr


def test_the_checks_memory_does_not_grow_with_the_number_of_journals(tmp_path):
    n = 6000
    peaks = {}
    for journals in (n, 4 * n):
        state, spool, victim, records = synthetic_state(tmp_path / str(journals), journals)
        peak, err = checking_peak_kb(state, spool, records, tmp_path)
        # Every journal was read and compared: the one version missing is found, the others
        # confirmed.
        assert f"{victim}: reading it again: the store holds no version of it" in err, err
        assert f"1 file(s) the state vouched for are missing" in err and f"{journals} entries confirmed" in err, err
        peaks[journals] = peak
    print(f"\npeak RSS of the checking wsp-snap: {peaks[n]} KB at {n} journals, {peaks[4 * n]} KB at {4 * n}")
    # About 100 bytes a journal, as a table of marks and a list of names, would be 1.8 MB
    # more at 4N.
    assert peaks[4 * n] - peaks[n] < 600, peaks


def test_the_check_takes_no_journal_lock_and_rewrites_no_journal(tmp_path):
    """A journal held locked (another process compacting it, or stuck doing so): the check of
    its entry reads it without waiting, whether the store confirms the entry or not, and an
    entry dropped stays in its journal (the file's new version supersedes it). A journal
    holding a superseded line is compacted, under its lock (no line appended meanwhile is
    lost)."""
    import fcntl
    state, spool, victim, records = synthetic_state(tmp_path, 50)
    journal = state / "shards" / "syn.d0000007"
    line = journal.read_bytes()
    held = os.open(journal, os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        # (A journal's lock is waited for a minute.)
        _, err = checking_peak_kb(state, spool, records, tmp_path, timeout=20)
        assert f"{victim}: reading it again" in err and "50 entries confirmed" in err, err
        # The store loses the held journal's version: found at once, the journal untouched.
        sh(f"rm -r {q(state.parent / 'store' / 'syn.d0000007.m')}")
        _, err = checking_peak_kb(state, spool, records, tmp_path, timeout=20)
        assert "syn.d0000007.m: reading it again: the store holds no version of it" in err, err
        assert "2 file(s) the state vouched for are missing" in err and "49 entries confirmed" in err, err
        assert journal.read_bytes() == line
        # A superseded line: the journal is compacted, once its lock is free.
        journal.write_bytes(line + line)
        p = subprocess.Popen([os.path.join(BIN, "wsp-snap"), "--spool", str(spool), "--state", str(state)],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, WSP_RUN_ID=uuid.uuid4().hex))
        p.stdin.write(records)
        p.stdin.close()
        with pytest.raises(subprocess.TimeoutExpired):
            p.wait(timeout=2)
    finally:
        fcntl.flock(held, fcntl.LOCK_UN)
        os.close(held)
    p.wait(timeout=60)
    err = p.stderr.read()
    assert p.returncode == 0 and "syn.d0000007.m: reading it again: the store holds no version of it" in err, err
    assert journal.read_bytes() == line


def test_a_check_that_drops_many_entries_names_the_first_20_by_name(tmp_path):
    """The check keeps only the dropped entries it names: the first 20 by name, whatever the
    order the journals are read in, and counts the rest."""
    state, spool, victim, records = synthetic_state(tmp_path, 60)
    store = state.parent / "store"
    gone = sorted(f"syn.d{i:07d}.m" for i in range(60) if i % 4 != 1)   # 45, the last one included
    for metric in gone:
        if metric != victim:
            sh(f"rm -r {q(store / metric)}")
    _, err = checking_peak_kb(state, spool, records, tmp_path)
    named = [line.split(": ")[1] for line in err.splitlines() if ": reading it again: " in line]
    assert named == gone[:20], err
    assert "45 file(s) the state vouched for are missing, replaced or damaged in the store (25 not named above)" in err, err
    assert "16 entries confirmed" in err, err

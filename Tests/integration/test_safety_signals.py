"""SIGINT/SIGTERM: every tool stops taking records, finishes or undoes the one in hand,
removes its temp files and exits 130/143; the wrappers stop every process they started."""
import fcntl
import gzip
import os
import queue
import random
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import BIN, REPO, change_tree, gen_tree, records, run, sh, wsp_files
from safetylib import (bad_versions, kill_tree, popen_pipeline, processes_mentioning, store_dir,
                       temp_files, tool_env, trials, wait_for)

SIGS = {"INT": (signal.SIGINT, 130), "TERM": (signal.SIGTERM, 143)}



def spool_files(spool):
    """The spool's entries but the emptied files it keeps for reuse (`.wsp-free.N`: at most
    64 KiB, the blocks a small file keeps for the next one; a larger one is emptied)."""
    free = [f for f in os.listdir(spool) if f.startswith(".wsp-free.")]
    assert all(os.path.getsize(os.path.join(spool, f)) <= 64 << 10 for f in free)
    return sorted(f for f in os.listdir(spool) if not f.startswith(".wsp-free."))

def start(args, **kw):
    """A tool with its stdin a pipe we hold, and its stdout read line by line by a thread."""
    p = subprocess.Popen([os.path.join(BIN, args[0]), *map(str, args[1:])], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    p.lines = queue.Queue()

    def pump(stream=p.stdout):
        for line in stream:
            p.lines.put(line)
        p.lines.put(None)
    p.pump = threading.Thread(target=pump, daemon=True)
    p.pump.start()
    return p


def readline(p, timeout=30):
    """One line of a tool's stdout, waiting at most `timeout` seconds."""
    try:
        line = p.lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError("no output")
    assert line is not None, "the tool ended"
    return line


def finish(p, timeout=10):
    """Waits for the tool's end; returns (exit status, rest of stdout, stderr)."""
    if p.stdin:
        p.stdin.close()
        p.stdin = None
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError(f"still running {timeout} s after the signal")
    p.pump.join(5)
    out = []
    while not p.lines.empty():
        line = p.lines.get()
        if line is not None:
            out.append(line)
    return p.returncode, "".join(out), p.stderr.read()


def stop(p, sig, timeout=10):
    p.send_signal(sig)
    return finish(p, timeout)


@pytest.fixture
def backed_up(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=12, schemas="small")
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}")
    return root


@pytest.mark.parametrize("sig", ["INT", "TERM"])
@pytest.mark.parametrize("tool", ["snap", "push", "list", "get", "verify", "merge", "prune", "purge"])
def test_every_tool_stops_while_waiting_for_records(tmp_path, store, spool, backed_up, tool, sig):
    """Each tool takes one record, answers it, then waits on its (open) input: a signal ends it
    at once with 128+signal, leaving no temp file."""
    signum, code = SIGS[sig]
    root = backed_up
    metric, path = sorted(records(sh(f"wsp-find --root {root}").stdout))[0]
    version = records(sh(f"wsp-pull list {store} {metric}").stdout)[0]
    gz = records(run("wsp-pull", "get", "--spool", spool, store, "\t".join(version), check=True).stdout)[0][3]
    out = tmp_path / "restore"
    cmds = {
        "snap": (["wsp-snap", "--spool", spool], f"{metric}\t{path}\n", True),
        "push": (["wsp-push", store], None, True),
        "list": (["wsp-pull", "list", store], f"{metric}\n", True),
        "get": (["wsp-pull", "get", "--spool", spool, store], "\t".join(version) + "\n", True),
        "verify": (["wsp-pull", "verify", "--spool", spool, store], f"{metric}\n", True),
        "merge": (["wsp-merge", "--root", out], f"{metric}\t{version[1]}\t{version[2]}\t{gz}\n", True),
        "prune": (["wsp-prune", "--keep", "1", store], f"{metric}\n", False),   # no output: nothing to prune
        "purge": (["wsp-prune", "--gone-after", "1", store], f"{metric}\n", False),   # reads all first
    }
    args, first, answers = cmds[tool]
    if tool == "push":
        first = sh(f"printf '%s\\t%s\\n' {metric} {path} | wsp-snap --spool {spool}").stdout
    p = start(args)
    p.stdin.write(first)
    p.stdin.flush()
    if answers:
        assert readline(p).startswith(metric)
    else:
        time.sleep(0.5)
    rc, _, err = stop(p, signum)
    assert rc == code, err
    assert temp_files(spool, store_dir(store), tmp_path) == []


@pytest.mark.parametrize("sig", ["INT", "TERM"])
def test_find_stops_while_its_reader_does_not_read(tmp_path, sig):
    """A tool blocked writing to a stalled pipe still honours the signal."""
    signum, code = SIGS[sig]
    root = tmp_path / "w"
    for i in range(1500):   # about 150 KB of records: more than a pipe holds
        d = root / f"dir{i // 100:03d}-{'x' * 40}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"metric{i:05d}.wsp").write_bytes(b"")
    p = subprocess.Popen([os.path.join(BIN, "wsp-find"), "--root", str(root)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    time.sleep(1.0)
    assert p.poll() is None
    p.send_signal(signum)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError("wsp-find ignored the signal while its reader stalled")
    assert p.returncode == code


@pytest.mark.parametrize("sig", ["INT", "TERM"])
def test_snap_stops_while_waiting_for_a_lock(tmp_path, spool, sig):
    """A record waiting for a file's lock is abandoned; the snapshots already written are
    whole and each one was reported; nothing else is left in the spool."""
    signum, code = SIGS[sig]
    root = gen_tree(tmp_path / "w", files=10, schemas="small")
    files = sorted(records(sh(f"wsp-find --root {root}").stdout))
    held = open(files[6][1], "rb")
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        p = start(["wsp-snap", "--spool", spool, "--lock-timeout", "120"])
        p.stdin.write("".join(f"{m}\t{f}\n" for m, f in files))
        p.stdin.close()
        p.stdin = None
        for _ in range(6):
            readline(p)
        time.sleep(0.3)   # now waiting on the lock
        rc, out, err = stop(p, signum)
    finally:
        fcntl.flock(held, fcntl.LOCK_UN)
        held.close()
    assert rc == code, err
    assert "interrupted" in err
    spooled = sorted(f for f in os.listdir(spool) if not f.startswith("."))
    assert temp_files(spool) == []
    assert len(spooled) == 6
    for name in spooled:
        gzip.decompress(open(os.path.join(spool, name), "rb").read())


@pytest.mark.parametrize("sig", ["INT", "TERM"])
def test_merge_stops_while_waiting_for_a_targets_lock(tmp_path, store, spool, backed_up, sig):
    """A backfill waits for the target's lock (carbon writing): a signal ends the wait; the
    target is untouched and the targets done before are complete."""
    signum, code = SIGS[sig]
    root = backed_up
    target = tmp_path / "target"
    shutil.copytree(root, target)
    fetched = records(sh(f"wsp-pull list {store} '*' | wsp-pull get --spool {spool} {store}").stdout)
    locked = sorted(wsp_files(target).values())[3]
    before = {p: open(p, "rb").read() for p in wsp_files(target).values()}
    held = open(locked, "rb")
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        p = start(["wsp-merge", "--root", target, "--lock-timeout", "120"])
        p.stdin.write("".join("\t".join(r) + "\n" for r in fetched))
        p.stdin.close()
        p.stdin = None
        for _ in range(3):
            readline(p)
        time.sleep(0.5)
        rc, out, err = stop(p, signum)
    finally:
        fcntl.flock(held, fcntl.LOCK_UN)
        held.close()
    assert rc == code, err
    assert open(locked, "rb").read() == before[locked]
    assert temp_files(target) == []


@pytest.mark.parametrize("sig", ["INT", "TERM"])
@pytest.mark.parametrize("tool", ["snap", "get"])
def test_producers_stop_while_waiting_for_spool_room(tmp_path, store, spool, backed_up, tool, sig):
    """A producer waiting for room in a full spool gives up its reservation on a signal."""
    signum, code = SIGS[sig]
    root = backed_up
    with open(os.path.join(spool, "filler"), "wb") as f:   # the spool is full of someone else's data
        f.truncate(1 << 20)
    if tool == "snap":
        args = ["wsp-snap", "--spool", spool, "--spool-max", "1M", "--root", root]
        feed = "".join(m + "\n" for m, _ in records(sh(f"wsp-find --root {root}").stdout))
    else:
        args = ["wsp-pull", "get", "--spool", spool, "--spool-max", "1M", store]
        feed = sh(f"wsp-pull list {store} '*'").stdout
    p = start(args)
    p.stdin.write(feed)
    p.stdin.close()
    p.stdin = None
    time.sleep(1.0)
    assert p.poll() is None
    rc, out, err = stop(p, signum)
    assert rc == code, err
    assert out == ""
    assert spool_files(spool) == [".wsp-spool.lock", "filler"]


def test_a_killed_producer_leaves_a_reservation_the_next_one_removes(tmp_path, store, spool, backed_up):
    """SIGKILL cannot be caught: the dead process's reservation stays in the spool's ledger, and
    the file it was writing in the spool, until the next tool sees that their process is gone.
    The file is named as spool files are (`PID.TOKEN.wsp.gz`, TOKEN the reservation's; an
    earlier version wrote `.wsp-tmp.PID.TOKEN`): both go, and a finished file of the same dead
    process, which a record may name, stays."""
    with open(os.path.join(spool, "filler"), "wb") as f:
        f.truncate(1 << 20)
    p = start(["wsp-snap", "--spool", spool, "--spool-max", "1M", "--root", backed_up])
    p.stdin.write("servers.host000.cpu.user\n")
    p.stdin.flush()
    time.sleep(1.0)
    # The snap waits for room without a reservation; leave one as a dead process would.
    dead = subprocess.Popen(["true"])
    dead.wait()
    p.kill()
    p.wait()
    ledger = os.path.join(spool, ".wsp-spool.lock")
    with open(ledger, "w") as f:
        f.write(f"wsp-spool 1\nspooled 0\nfree 0\nresv {dead.pid} 123 {900 << 10}\n")
    stale = os.path.join(spool, f".wsp-tmp.{dead.pid}.123")
    open(stale, "wb").truncate(900 << 10)
    unfinished = os.path.join(spool, f"{dead.pid}.123.wsp.gz")
    open(unfinished, "wb").truncate(900 << 10)
    finished = os.path.join(spool, f"{dead.pid}.124.wsp.gz")
    open(finished, "wb").truncate(10)
    os.unlink(os.path.join(spool, "filler"))
    sh(f"wsp-pull list {store} '*' > {tmp_path / 'listed'}")
    sh(f"head -3 {tmp_path / 'listed'} | wsp-pull get --spool {spool} --spool-max 1M {store}")
    assert not os.path.exists(stale)
    assert not os.path.exists(unfinished)
    assert os.path.exists(finished)
    assert f"resv {dead.pid} " not in open(ledger).read()


@pytest.mark.parametrize("trial", range(trials(6)))
def test_signal_at_random_moments_leaves_a_clean_state(tmp_path, store, spool, trial):
    """SIGINT or SIGTERM to a whole backup or restore pipeline at a random moment: every
    stage exits (0 if it had finished, else 128+signal), no temp file remains, the store
    verifies, restored files are whole, and a second run completes the job."""
    rnd = random.Random(trial)
    root = gen_tree(tmp_path / "w", files=40, schemas="mixed", seed=trial)
    signum, code = SIGS[rnd.choice(["INT", "TERM"])]
    restore = trial % 2 == 1
    out = tmp_path / "restored"
    backup_cmd = f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}"
    restore_cmd = f"wsp-pull list {store} '*' | wsp-pull get --spool {spool} {store} | wsp-merge --root {out}"
    if restore:
        sh(backup_cmd)
    status = tmp_path / "status"
    # The shell ignores the signal and records how each stage ended (the tools set their own handlers).
    p = popen_pipeline(f"trap '' INT TERM; {restore_cmd if restore else backup_cmd}; echo ${{PIPESTATUS[*]}} > {status}", BIN)
    time.sleep(rnd.uniform(0.05, 1.5))
    try:
        os.killpg(p.pid, signum)
    except ProcessLookupError:
        pass
    try:
        _, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        raise AssertionError("pipeline still running 30 s after the signal")
    stages = status.read_text().split()
    assert len(stages) == 3 and all(int(c) in (0, code) for c in stages), (stages, err)
    assert temp_files(spool, store_dir(store), out) == []
    assert bad_versions(store_dir(store)) == {}
    src = wsp_files(root)
    for rel, path in wsp_files(out).items():
        assert open(path, "rb").read() == open(src[rel], "rb").read(), rel
    sh(backup_cmd)
    sh(f"wsp-pull list {store} '*' | wsp-pull get --spool {spool} {store} | wsp-merge --root {out}")
    assert sorted(wsp_files(out)) == sorted(src)
    for rel, path in src.items():
        assert open(path, "rb").read() == open(wsp_files(out)[rel], "rb").read()


# ---- the wrappers ------------------------------------------------------------------------------

WRAPPER = os.path.join(REPO, "scripts", "whisper-backup.sh")


def start_wrapper(tmp_path, *args):
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    env = tool_env(BIN, {"TMPDIR": str(tmp)})
    common = ["--lockfile", tmp_path / "lock", "--logfile", tmp_path / "log", "--stampfile", tmp_path / "stamp",
              "--state", tmp_path / "state"]
    return subprocess.Popen(["bash", WRAPPER, *map(str, common), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cmdline(pid):
    """A process's command line, or "" once it has exited (it may between listing and reading)."""
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read()
    except OSError:
        return ""


@pytest.mark.parametrize("sig", ["INT", "TERM"])
@pytest.mark.parametrize("mode", ["backup", "restore", "splay"])
def test_wrapper_stops_every_process_it_started(tmp_path, sig, mode):
    """A signal to the wrapper alone (as `kill PID` or a service manager sends it) stops the
    stages under xargs too, promptly, and removes the run's temp files."""
    signum, code = SIGS[sig]
    root = gen_tree(tmp_path / "w", files=16, schemas="small")
    bucket = tmp_path / "bucket"
    spool = tmp_path / "spool"
    spool.mkdir()
    tag = str(tmp_path)
    if mode == "restore":
        # Delta versions: a restore from a disk store reads full versions where they lie and
        # rebuilds only delta versions in the spool, where it then waits for room.
        state = tmp_path / "state"
        time.sleep(2.1)   # the state vouches for a file's stat once it is 2 s old
        sh(f"bash {WRAPPER} --nolock --nolog --nostamp -p {root} -b {bucket} --create-bucket --state {state} backup disk")
        change_tree(root, fraction=1.0, seed=5)
        time.sleep(2.1)
        sh(f"bash {WRAPPER} --nolock --nolog --nostamp -p {root} -b {bucket} --state {state} backup disk")
        assert any(f.endswith(".wspd.gz") for _, _, fs in os.walk(bucket) for f in fs), "no delta version"
        args = ["-p", tmp_path / "r", "-b", bucket, "--state", state, "restore", "disk"]
    else:
        args = ["-p", root, "-b", bucket, "--create-bucket", "backup", "disk"]
    if mode == "splay":
        args = ["--splay", "30000", *args]
    else:
        # A spool someone else has filled: the producing stage waits for room.
        (spool / "filler").write_bytes(b"")
        os.truncate(spool / "filler", (64 << 20) - 100)
        args = ["--spool", spool, "--spool-max", "64M", *args]
    p = start_wrapper(tmp_path, *args)
    try:
        if mode == "splay":
            time.sleep(1.5)   # sleeping its random 0..30000 s
        else:
            stage = "wsp-pull" if mode == "restore" else "wsp-snap"
            wait_for(lambda: [q for q in processes_mentioning(str(spool)) if stage in cmdline(q)], what=stage)
            time.sleep(0.5)
        assert p.poll() is None
        t0 = time.monotonic()
        p.send_signal(signum)
        try:
            _, err = p.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the wrapper did not exit within 40 s of {sig}")
        assert p.returncode == code, err
        assert time.monotonic() - t0 < 15
        time.sleep(0.2)
        assert processes_mentioning(tag) == []
        assert os.listdir(tmp_path / "tmp") == []   # the run's work directory is gone
        assert temp_files(spool, bucket) == []
        assert spool_files(spool) in ([], ["filler"], [".wsp-spool.lock", "filler"])
    finally:
        if p.poll() is None:
            p.kill()
        kill_tree(tag)

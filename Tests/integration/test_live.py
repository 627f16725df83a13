"""Live writes: a real carbon-cache (Debian graphite-carbon, WHISPER_LOCK_WRITES = True) is fed
metrics on loopback while a backup runs and while a restore runs into its own whisper tree.
Every snapshot is a valid whisper file for the Python whisper module, and no point carbon
wrote is lost by the restore.

The carbon comes from scripts/servers/carbon.sh: the one named by WSP_TEST_CARBON and
WSP_TEST_CARBON_WHISPER_DIR (scripts/test.sh starts it), else one started here on a free
port; without graphite-carbon installed the tests are skipped."""
import gzip
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import whisper

from conftest import REPO, records, run, sh, wsp_files
from safetylib import store_objects, whisper_problem

CARBON_SH = os.path.join(REPO, "scripts", "servers", "carbon.sh")
STEP = 10          # the finest archive of carbon.sh's schema: 10s:6h,1m:7d,10m:5y


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def carbon(tmp_path_factory):
    addr, wdir = os.environ.get("WSP_TEST_CARBON"), os.environ.get("WSP_TEST_CARBON_WHISPER_DIR")
    if addr and wdir:
        host, port = addr.rsplit(":", 1)
        yield host, int(port), wdir
        return
    if not shutil.which("carbon-cache"):
        pytest.skip("no carbon-cache (apt-get install graphite-carbon, or scripts/servers/carbon.sh start DIR)")
    rundir = tmp_path_factory.mktemp("carbon")
    port = free_port()
    env = dict(os.environ, CARBON_PORT=str(port))
    subprocess.run(["bash", CARBON_SH, "start", str(rundir)], env=env, check=True, capture_output=True, timeout=120)
    try:
        yield "127.0.0.1", port, str(rundir / "storage" / "whisper")
    finally:
        subprocess.run(["bash", CARBON_SH, "stop", str(rundir)], env=env, capture_output=True, timeout=60)


class Feeder:
    """Sends points to carbon from a thread: each metric gets a new, never repeated, 10 s slot
    of the last 6 hours each round (walking back from now), so the value carbon must keep for
    every slot is known. `sent` maps (metric, timestamp) -> (value, when sent)."""

    def __init__(self, host, port, metrics, now):
        self.addr = (host, port)
        self.metrics = metrics
        self.now = now - now % STEP
        self.sent = {}
        self.next = {m: 0 for m in metrics}
        self.stopping = threading.Event()
        self.thread = None
        self.rnd = random.Random(7)
        self.paused = set()
        self.lock = threading.Lock()

    def round(self, sock):
        lines = []
        t = time.time()
        with self.lock:
            active = [m for m in self.metrics if m not in self.paused]
        for m in active:
            k = self.next[m]
            self.next[m] += 1
            ts = self.now - STEP * k
            v = round(self.rnd.uniform(-1e6, 1e6), 3)
            self.sent[(m, ts)] = (v, t)
            lines.append(f"{m} {v} {ts}\n")
        sock.sendall("".join(lines).encode())

    def start(self, rate=20):
        def loop():
            with socket.create_connection(self.addr) as sock:
                while not self.stopping.is_set():
                    self.round(sock)
                    time.sleep(1.0 / rate)
        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def once(self):
        with socket.create_connection(self.addr) as sock:
            self.round(sock)

    def pause(self, metrics):
        with self.lock:
            self.paused = set(metrics)
        time.sleep(0.2)   # a round in flight finishes

    def resume(self):
        with self.lock:
            self.paused = set()

    def stop(self):
        self.stopping.set()
        if self.thread:
            self.thread.join(10)


def value_at(path, ts):
    """The value a whisper file holds for `ts` in its finest archive (None if empty). whisper
    fetches the slots after `from`, so ask from one step before."""
    (start, end, step), values = whisper.fetch(path, ts - STEP, ts, now=ts)
    assert start == ts, (start, ts)
    return values[0] if values else None


def wait_written(feeder, wdir, metrics, timeout=90):
    """Waits until carbon has written every point sent to `metrics` (its cache drains
    asynchronously)."""
    deadline = time.time() + timeout
    while True:
        missing = [(m, ts) for (m, ts), (v, _) in list(feeder.sent.items())
                   if m in metrics and (not os.path.exists(path_of(wdir, m)) or value_at(path_of(wdir, m), ts) != v)]
        if not missing:
            return
        if time.time() > deadline:
            raise AssertionError(f"{len(missing)} points never written by carbon, e.g. {missing[:3]}")
        time.sleep(0.3)


def path_of(wdir, metric):
    return os.path.join(wdir, *metric.split(".")) + ".wsp"


def valid_for_whisper(data, scratch):
    """The Python whisper module reads the bytes as a whisper file."""
    assert whisper_problem(data) is None, whisper_problem(data)
    p = os.path.join(scratch, "snap.wsp")
    with open(p, "wb") as f:
        f.write(data)
    info = whisper.info(p)
    assert info["archives"] and info["archives"][0]["secondsPerPoint"] == STEP
    whisper.fetch(p, int(time.time()) - 3600)


@pytest.fixture
def live(carbon, tmp_path):
    host, port, wdir = carbon
    prefix = f"live{uuid.uuid4().hex[:8]}"
    metrics = [f"{prefix}.host{h}.{n}" for h in range(6) for n in ("cpu", "mem", "disk", "net", "load")]
    feeder = Feeder(host, port, metrics, int(time.time()))
    feeder.once()
    # carbon creates the files on its first flush
    deadline = time.time() + 60
    while not all(os.path.exists(path_of(wdir, m)) for m in metrics):
        assert time.time() < deadline, "carbon did not create the files"
        time.sleep(0.2)
    yield feeder, wdir, prefix
    feeder.stop()
    shutil.rmtree(os.path.join(wdir, prefix), ignore_errors=True)


def test_backups_during_live_writes_are_valid_whisper_files(live, tmp_path, store, spool):
    feeder, wdir, prefix = live
    feeder.start(rate=50)
    snaps = tmp_path / "snaps"
    try:
        for i in range(4):
            p = sh(f"wsp-find --root {wdir} '{prefix}.*' | wsp-snap --spool {spool} | tee -a {snaps} | wsp-push {store}")
            assert len(records(p.stdout)) == len(feeder.metrics)
            time.sleep(0.3)
    finally:
        feeder.stop()
    objs = {k: p for k, p in store_objects(store[len("file://"):]).items() if k.endswith(".wsp.gz")}
    assert len(objs) > len(feeder.metrics)   # the files changed between runs: new versions
    scratch = tempfile.mkdtemp(dir=tmp_path)
    for key, path in objs.items():
        valid_for_whisper(gzip.decompress(open(path, "rb").read()), scratch)
    assert [r[5] for r in records(sh(f"wsp-pull verify --spool {spool} {store} '{prefix}.*'").stdout)] == ["ok"] * len(objs)
    # Each snapshot holds only points carbon was sent, with the values sent: never a torn write.
    sent = dict(feeder.sent)
    for key, path in objs.items():
        m = key.split("/")[0]
        p = os.path.join(scratch, "v.wsp")
        open(p, "wb").write(gzip.decompress(open(path, "rb").read()))
        (start, end, step), values = whisper.fetch(p, feeder.now - 6 * 3600 + 60, feeder.now + STEP, now=feeder.now + STEP)
        n = 0
        for i, v in enumerate(values):
            if v is not None:
                assert sent[(m, start + i * step)][0] == v, f"{key}: slot {start + i * step} holds {v}"
                n += 1
        assert n > 0


def test_restore_during_live_writes_loses_no_point(live, tmp_path, store, spool):
    """A backup, then a third of the files are lost while carbon keeps writing to them (carbon
    recreates them) and another third are lost while idle; then a restore into the live tree,
    and the idle ones get points again. Every point carbon wrote is there afterwards, and the
    files the restore created (or backfilled) hold their backup's points too."""
    feeder, wdir, prefix = live
    feeder.start(rate=30)
    metrics = feeder.metrics
    idle, busy = set(metrics[0::3]), set(metrics[1::3])
    try:
        time.sleep(2)
        sh(f"wsp-find --root {wdir} '{prefix}.*' | wsp-snap --spool {spool} | wsp-push {store}")
        backup = {r[0]: r for r in records(sh(f"wsp-pull list {store} '{prefix}.*'").stdout)}
        assert len(backup) == len(metrics)
        # The loss: no point of these may be in flight meanwhile (one written into a file
        # being deleted would go down with it, which is the disaster's doing, not the restore's).
        feeder.pause(idle | busy)
        wait_written(feeder, wdir, idle | busy)
        for m in idle | busy:
            os.unlink(path_of(wdir, m))
        lost_at = time.time()
        # carbon recreates the busy ones with the points that keep coming
        feeder.pause(idle)
        deadline = time.time() + 30
        while not all(os.path.exists(path_of(wdir, m)) for m in busy):
            assert time.time() < deadline, "carbon did not recreate the files"
            time.sleep(0.1)
        p = sh(f"wsp-pull list {store} '{prefix}.*' | wsp-pull get --spool {spool} {store}"
               f" | wsp-merge --root {wdir}", check=False)
        feeder.resume()   # the idle ones get points again, in the restored files
        time.sleep(2)
    finally:
        feeder.stop()
    assert p.returncode == 0, p.stderr
    status = {r[0]: r[1] for r in records(p.stdout)}
    assert set(status) == set(metrics)
    assert all(status[m] == "created" for m in idle), status
    assert all(status[m] in ("exists", "filled", "unchanged") for m in set(metrics) - idle), status
    # Every point carbon was sent is in the files, except those that went down with a lost file.
    deadline = time.time() + 90
    while True:
        missing = [(m, ts, v) for (m, ts), (v, sent_at) in feeder.sent.items()
                   if not (m in idle | busy and sent_at <= lost_at) and value_at(path_of(wdir, m), ts) != v]
        if not missing:
            break
        assert time.time() < deadline, f"{len(missing)} points carbon was sent are not in the files, e.g. {missing[:3]}"
        time.sleep(0.5)
    # The restored files hold their backup's points (where carbon did not write the slot since).
    scratch = tempfile.mkdtemp(dir=tmp_path)
    checked = 0
    for m in metrics:
        if status[m] not in ("created", "filled"):
            continue
        data = gzip.decompress(open(os.path.join(store[len("file://"):], backup[m][3]), "rb").read())
        bp = os.path.join(scratch, "b.wsp")
        open(bp, "wb").write(data)
        (start, end, step), values = whisper.fetch(bp, feeder.now - 6 * 3600 + 60, feeder.now + STEP, now=feeder.now + STEP)
        for i, v in enumerate(values):
            ts = start + i * step
            if v is None or feeder.sent.get((m, ts), (None, 0))[1] > lost_at:
                continue
            assert value_at(path_of(wdir, m), ts) == v, f"{m}@{ts}: the backup's point is missing"
            checked += 1
    assert checked > 0

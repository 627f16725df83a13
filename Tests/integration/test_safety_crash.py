"""Crash trials: SIGKILL one stage (or the whole pipeline, or the wrapper's whole process
group) at a random moment of a backup, a restore, a prune or a purge. After every crash:
the store shows no version that fails verification and lost no version it had; every
target is untouched, a complete new file, or validly backfilled; and running the job again
completes it. WSP_TORTURE_TRIALS sets the number of trials (scripts/torture.sh runs many)."""
import os
import random
import shutil
import signal
import subprocess
import time

import pytest

from conftest import (BIN, NOW, REPO, change_tree, gen_tree, memory_spools, read, records, run, sh,
                      spool_owner_alive, wsp_files)
from safetylib import (bad_versions, kill_tree, slotwise_between, spool_leftovers, store_dir, store_objects,
                       temp_files, tool_env, trials)

WRAPPER = os.path.join(REPO, "scripts", "whisper-backup.sh")
TOTALS = {"trials": 0, "killed": 0, "finished-before-kill": 0, "store-temp-files": 0, "target-temp-files": 0}


def tool(name):
    return os.path.join(BIN, name)


class Chain:
    """A pipeline of tools, each a process of one new process group, so that one stage or all
    can be killed. stdout of the last goes to a file."""

    def __init__(self, cmds, out, err, env=None):
        self.procs = []
        prev = None
        for i, cmd in enumerate(cmds):
            last = i == len(cmds) - 1
            p = subprocess.Popen([str(c) for c in cmd], stdin=prev.stdout if prev else subprocess.DEVNULL,
                                 stdout=out if last else subprocess.PIPE, stderr=err,
                                 process_group=self.procs[0].pid if self.procs else 0, env=env)
            if prev:
                prev.stdout.close()
            self.procs.append(p)
            prev = p

    def alive(self):
        return [i for i, p in enumerate(self.procs) if p.poll() is None]

    def done(self):
        return not self.alive()

    def name(self, i):
        if i is None:
            return "whole pipeline"
        args = self.procs[i].args
        name = os.path.basename(str(args[0]))
        return name + " " + args[1] if name == "wsp-pull" else name

    def kill(self, which):
        """SIGKILL stage `which` (an index), or the whole group (None). False if already done."""
        if all(p.poll() is not None for p in self.procs):
            return False
        if which is not None and self.procs[which].poll() is not None:
            return False
        try:
            if which is None:
                os.killpg(self.procs[0].pid, signal.SIGKILL)
            else:
                self.procs[which].kill()
        except ProcessLookupError:
            return False
        return True

    def wait(self, timeout=120):
        deadline = time.monotonic() + timeout
        for p in self.procs:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        return [p.returncode for p in self.procs]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A tree, and the same tree after half its files changed (seen by a second backup)."""
    base = tmp_path_factory.mktemp("crash-template")
    v1 = gen_tree(base / "v1", files=48, schemas="mixed", seed=11)
    v2 = base / "v2"
    shutil.copytree(v1, v2)
    change_tree(v2, 0.5, seed=12, now=NOW + 600)
    return v1, v2


def copy(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return dst


def backup_chain(root, store, spool, out, err):
    return Chain([[tool("wsp-find"), "--root", root], [tool("wsp-snap"), "--spool", spool],
                  [tool("wsp-push"), store]], out, err)


def restore_chain(store, spool, target, out, err):
    return Chain([[tool("wsp-pull"), "list", store, "*"], [tool("wsp-pull"), "get", "--spool", spool, store],
                  [tool("wsp-merge"), "--now", f"@{NOW}", "--root", target]], out, err)


def full_backup(root, store, spool):
    return sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}")


def full_restore(store, spool, target, fixed_now=True):
    """A complete restore; a backfill's "now" is the trees' (or the clock's, as the wrapper's)."""
    now = f"--now @{NOW}" if fixed_now else ""
    return sh(f"wsp-pull list {store} '*' | wsp-pull get --spool {spool} {store} | wsp-merge {now} --root {target}")


def contents(root):
    return {rel: read(p) for rel, p in wsp_files(root).items()}


SPAN = {}   # seconds a job of each kind takes here, learnt from the trials that finished first


def crash(job, rnd, kind, guess):
    """Kills one stage (or all) at a random moment of the job's expected run, and waits for
    the rest of it to end."""
    t0 = time.monotonic()
    deadline = t0 + rnd.uniform(0, min(SPAN.get(kind, guess), guess))
    while time.monotonic() < deadline and not job.done():
        time.sleep(0.005)
    if job.done():   # it was quicker than that: learn how long it takes
        TOTALS["finished-before-kill"] += 1
        SPAN[kind] = 0.9 * (time.monotonic() - t0)
        return None, False
    which = rnd.choice(job.alive() + [None])   # a stage still running, or all of them
    killed = job.kill(which)
    job.wait()
    if killed:
        TOTALS["killed"] += 1
        stage = job.name(which)
        TOTALS.setdefault("by stage", {})[stage] = TOTALS.get("by stage", {}).get(stage, 0) + 1
    else:
        TOTALS["finished-before-kill"] += 1
        SPAN[kind] = 0.9 * (time.monotonic() - t0)
    return which, killed


def check_store(sdir, before):
    """No visible version fails verification, and every version that was there still is."""
    assert bad_versions(sdir) == {}
    now = store_objects(sdir)
    lost = [k for k in before if k.endswith(".wsp.gz") and k not in now]
    assert lost == [], f"versions lost: {lost[:5]}"
    TOTALS["store-temp-files"] += len(temp_files(sdir))


def check_targets(target, before, expected, merged):
    """Each target file is untouched (it existed), absent or complete (it did not), or a valid
    partial backfill: every slot as it was or as the full merge makes it."""
    now = contents(target)
    for rel, data in now.items():
        if rel in before:
            assert data == before[rel] or slotwise_between(data, before[rel], merged[rel]), f"{rel}: damaged"
        else:
            assert data == expected[rel], f"{rel}: incomplete new file"
    for rel in before:
        assert rel in now, f"{rel}: an existing target disappeared"
    leftovers = temp_files(target)
    assert all(os.path.basename(p).startswith(".wsp-tmp.") for p in leftovers)
    TOTALS["target-temp-files"] += len(leftovers)


def trial_kinds():
    n = trials(24)
    kinds = ["backup", "restore", "wrapper-backup", "wrapper-restore", "prune", "purge"]
    return [(i, kinds[i % len(kinds)]) for i in range(n)]


@pytest.fixture(autouse=True)
def remove_memory_spools():
    """A restore the trial kills with SIGKILL leaves its spool in /dev/shm (README: Sizing the
    spool); the trials remove what they leave there: the new spools whose run is gone (a test
    beside this one may have a live run's spool there)."""
    before = memory_spools()
    yield
    for n in memory_spools() - before:
        if not spool_owner_alive(n):
            shutil.rmtree(os.path.join("/dev/shm", n), ignore_errors=True)


@pytest.mark.parametrize("trial,kind", trial_kinds())
def test_crash_trial(tmp_path, template, trial, kind):
    rnd = random.Random(1000 + trial)
    v1, v2 = template
    sdir = tmp_path / "store"
    sdir.mkdir()
    store = f"file://{sdir}"
    spool = tmp_path / "spool"
    spool.mkdir()
    out = open(tmp_path / "out", "w")
    err = open(tmp_path / "err", "w")
    TOTALS["trials"] += 1
    root = copy(v1, tmp_path / "w")
    t = time.monotonic()
    full_backup(root, store, spool)
    took = time.monotonic() - t   # a full backup: the scale of the jobs below
    # The tree moves on: the crashed run has changed files to store, or versions to restore.
    shutil.rmtree(root)
    copy(v2, root)
    try:
        if kind in ("backup", "wrapper-backup"):
            before = store_objects(str(sdir))
            t0 = time.monotonic()
            if kind == "backup":
                job = backup_chain(root, store, spool, out, err)
                crash(job, rnd, kind, took)
            else:
                job = wrapper(tmp_path, ["-p", root, "-b", sdir, "-f", str(rnd.choice([1, 2, 3])), "backup", "disk"])
                crash(job, rnd, kind, took + 1.0)
            check_store(str(sdir), before)
            assert temp_files(root) == [] and contents(root) == contents(v2)   # the source is never written
            # again, to completion: every file's newest version is the tree as it is
            full_backup(root, store, spool)
            assert temp_files(spool) == []   # a dead stage's temp files are gone with the next run
            assert spool_leftovers(spool) == []   # and its unfinished spool files and reservations
            check_store(str(sdir), before)
            restored = tmp_path / "check"
            full_restore(store, spool, restored)
            assert contents(restored) == contents(root)
        elif kind in ("restore", "wrapper-restore"):
            full_backup(root, store, spool)
            expected = contents(root)
            target = tmp_path / "target"
            # Some targets exist already (older contents), the rest are missing.
            existing = sorted(wsp_files(v1))[::3]
            for rel in existing:
                os.makedirs(os.path.dirname(target / rel), exist_ok=True)
                shutil.copyfile(os.path.join(v1, rel), target / rel)
            before_targets = contents(target)
            # What a complete restore makes of the existing targets (exists: untouched; backfill: filled).
            ref = copy(target, tmp_path / "reference")
            t = time.monotonic()
            full_restore(store, spool, ref, fixed_now=kind == "restore")
            took = time.monotonic() - t
            merged = contents(ref)
            before = store_objects(str(sdir))
            if kind == "restore":
                job = restore_chain(store, spool, target, out, err)
                crash(job, rnd, kind, took)
            else:
                job = wrapper(tmp_path, ["-p", target, "-b", sdir, "-f", str(rnd.choice([1, 2, 3])), "restore", "disk"])
                crash(job, rnd, kind, took + 1.0)
            check_store(str(sdir), before)
            check_targets(target, before_targets, expected, merged)
            full_restore(store, spool, target, fixed_now=kind == "restore")
            assert contents(target) == merged
            assert spool_leftovers(spool) == []
        elif kind == "prune":
            for i in range(3):   # five versions per changed metric
                change_tree(root, 1.0, seed=100 + i, now=NOW + 1200 + 60 * i)
                full_backup(root, store, spool)
            full_backup(root, store, spool)
            before = store_objects(str(sdir))
            newest = {m: sorted(v)[-2:] for m, v in versions(sdir).items()}
            t = time.monotonic()
            run("wsp-prune", "--keep", "2", "--all", "--dry-run", store, check=True)
            took = time.monotonic() - t
            p = subprocess.Popen([tool("wsp-prune"), "--keep", "2", "--all", store], stdout=out, stderr=err)
            crash(Proc(p), rnd, kind, took * 1.5)
            assert bad_versions(str(sdir)) == {}
            now = versions(sdir)
            for m, keep in newest.items():
                assert all(k in now[m] for k in keep), f"{m}: a kept version was deleted"
            run("wsp-prune", "--keep", "2", "--all", store, check=True)
            assert {m: sorted(v) for m, v in versions(sdir).items()} == newest
        elif kind == "purge":
            gone = sorted(wsp_files(root))[::2]
            for rel in gone:
                os.unlink(root / rel)
            listing = sh(f"wsp-find --root {root}").stdout
            run("wsp-prune", "--gone-after", "1", "--now", f"@{NOW}", "--force", store, input=listing, check=True)
            kept = {m: v for m, v in versions(sdir).items() if m.replace(".", "/") + ".wsp" not in gone}
            t = time.monotonic()
            run("wsp-prune", "--gone-after", "1", "--now", f"@{NOW + 2 * 86400}", "--force", "--dry-run", store,
                input=listing, check=True)
            took = time.monotonic() - t
            p = subprocess.Popen([tool("wsp-prune"), "--gone-after", "1", "--now", f"@{NOW + 2 * 86400}", "--force", store],
                                 stdin=subprocess.PIPE, stdout=out, stderr=err, text=True)
            p.stdin.write(listing)
            p.stdin.close()
            crash(Proc(p), rnd, kind, took * 1.5)
            assert bad_versions(str(sdir)) == {}
            now = versions(sdir)
            assert all(now.get(m) == v for m, v in kept.items()), "a metric on disk lost versions"
            run("wsp-prune", "--gone-after", "1", "--now", f"@{NOW + 2 * 86400}", "--force", store, input=listing, check=True)
            assert versions(sdir) == kept
            # Nothing of a purged metric is left (a crash between the last unlink and the
            # rmdir may leave its directory empty: no listing shows it).
            for name in set(os.listdir(sdir)) - set(kept) - {".wsp-store-id"}:
                assert os.listdir(os.path.join(sdir, name)) == [], name
    finally:
        out.close()
        err.close()
        kill_tree(str(tmp_path))


def versions(sdir):
    out = {}
    for key in store_objects(str(sdir)):
        if key.endswith(".wsp.gz"):
            m, name = key.split("/")
            out.setdefault(m, []).append(name)
    return {m: sorted(v) for m, v in out.items()}


class Proc:
    def __init__(self, p):
        self.p = p

    def alive(self):
        return []

    def done(self):
        return self.p.poll() is not None

    def name(self, i):
        if "bash" in str(self.p.args[0]):
            return "wrapper " + str(self.p.args[-2])   # backup or restore, with everything it started
        return os.path.basename(str(self.p.args[0])) + " " + str(self.p.args[1])

    def kill(self, which):
        if self.p.poll() is not None:
            return False
        self.p.kill()
        return True

    def wait(self, timeout=120):
        return self.p.wait(timeout=timeout)


class Wrapper(Proc):
    """The wrapper in its own process group: a crash kills it and everything it started."""

    def kill(self, which):
        if self.p.poll() is not None:
            return False
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True


def wrapper(tmp_path, args):
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    env = tool_env(BIN, {"TMPDIR": str(tmp)})
    common = ["--nolock", "--nolog", "--nostamp", "--state", str(tmp_path / "state")]
    if "backup" in args:
        common += ["-x", "-1"]
    p = subprocess.Popen(["bash", WRAPPER, *common, *map(str, args)], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    return Wrapper(p)


def test_versions_taken_within_one_second_keep_their_order(tmp_path, store, spool):
    """Backups in quick succession: the newest version is always the last content stored."""
    root = gen_tree(tmp_path / "w", files=6, schemas="small")
    for i in range(4):
        if i:
            change_tree(root, 1.0, seed=50 + i, now=NOW + 60 * i)
        full_backup(root, store, spool)
        out = tmp_path / f"r{i}"
        full_restore(store, spool, out)
        assert contents(out) == contents(root), f"run {i}: the restore took an older version"
    for m, names in versions(store[len("file://"):]).items():
        assert len({n[:16] for n in names}) == len(names), f"{m}: two versions share a second"


def test_crash_totals():
    """Runs last: the trials really crashed runs part way (trials whose kills all came after
    the job ended would leave every check above green and prove nothing). -s shows the counts."""
    print(f"\ncrash trials: {TOTALS}")
    if TOTALS["trials"] == 0:
        pytest.skip("no crash trial ran in this session")
    assert TOTALS["killed"] + TOTALS["finished-before-kill"] >= TOTALS["trials"], TOTALS
    assert TOTALS["killed"] >= TOTALS["trials"] / 2, f"most trials finished before their kill: {TOTALS}"

"""SIGINT/SIGTERM at random moments of each mode of the wrappers, 50 trials: no process of the
run left, no work directory left, the lock released, and the exit status 130/143 (or 0 when
the run had finished before the signal)."""
import os
import random
import signal
import subprocess
import time

from conftest import BIN, REPO, gen_tree, memory_spools

BACKUP = os.path.join(REPO, "scripts", "backup.sh")
TRIALS = 50


def session_members(sid):
    """Processes whose session is `sid` (the wrapper starts one; its stages stay in it)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(pid))
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read().replace("\0", " ")
    except OSError:
        return ""


def test_signals_at_random_moments_leave_nothing_behind(tmp_path):
    seed = int(os.environ.get("WSP_TEST_SEED", time.time_ns() % 100000))
    rng = random.Random(seed)
    root = gen_tree(tmp_path / "w", files=16, schemas="small")
    bucket = tmp_path / "bucket"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    lock = tmp_path / "lock"
    env = dict(os.environ, WSP_BIN=BIN, TMPDIR=str(tmp), PATH=BIN + os.pathsep + os.environ["PATH"])
    common = ["--lockfile", lock, "--logfile", tmp_path / "log", "--stampfile", tmp_path / "stamp",
              "--state", tmp_path / "state", "-b", bucket, "-f", "2"]
    subprocess.run(["bash", BACKUP, *map(str, common), "-p", root, "--create-bucket", "disk"], env=env,
                   check=True, capture_output=True)
    modes = {
        "backup": ["-p", root, "--full", "backup", "disk"],
        "restore": ["-p", tmp_path / "restored", "restore", "disk"],
        "purge": ["-p", root, "purge", "disk"],
        "list": ["list", "disk"],
    }
    # How long each mode takes here: the signals fall within that.
    took = {}
    for mode, args in modes.items():
        t0 = time.monotonic()
        subprocess.run(["bash", BACKUP, *map(str, common), *map(str, args)], env=env, check=True, capture_output=True)
        took[mode] = time.monotonic() - t0
        subprocess.run(["rm", "-rf", str(tmp_path / "restored")], check=True)
    stopped = 0
    for trial in range(TRIALS):
        mode = list(modes)[trial % len(modes)]
        sig, code = rng.choice([(signal.SIGINT, 130), (signal.SIGTERM, 143)])
        delay = rng.uniform(0, took[mode])
        what = f"seed {seed} trial {trial}: {mode}, {sig.name} after {delay:.2f} s"
        p = subprocess.Popen(["bash", BACKUP, *map(str, common), *map(str, modes[mode])], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        time.sleep(delay)   # a random moment of the run, not a synchronisation
        p.send_signal(sig)
        try:
            _, err = p.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            raise AssertionError(f"{what}: no exit within 40 s")
        # -sig: killed before its handlers were set (a shell reports that as 128+sig too).
        assert p.returncode in (0, code, -sig), f"{what}: exit {p.returncode}\n{err[-2000:]}"
        stopped += p.returncode != 0
        left = session_members(p.pid)
        assert left == [], f"{what}: processes left: {[cmdline(q) for q in left]}"
        assert os.listdir(tmp) == [], f"{what}: work directory left: {os.listdir(tmp)}"
        assert memory_spools(p.pid) == set(), f"{what}: a restore's spool left in /dev/shm"
        assert subprocess.run(["flock", "-n", str(lock), "true"]).returncode == 0, f"{what}: lock held"
        if mode == "restore":
            subprocess.run(["rm", "-rf", str(tmp_path / "restored")], check=True)
    assert stopped >= TRIALS // 4, f"seed {seed}: only {stopped} of {TRIALS} runs were still going at the signal"

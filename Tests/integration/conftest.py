"""Shared fixtures for the end-to-end tests: the real binaries, generated whisper trees, and
the Python whisper module as the oracle for the format."""
import collections
import os
import subprocess
import tempfile
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("WSP_BIN", os.path.join(REPO, ".build", "debug"))
GEN = os.path.join(REPO, "scripts", "gen-tree.py")
NOW = 1795000000  # a fixed "now" (2026-11-18) so generated trees are reproducible

# Wrappers run without --state keep their state here, not in the machine's /var/lib.
os.environ.setdefault("WSP_STATE_HOME", tempfile.mkdtemp(prefix="wsp-test-state."))


def pytest_terminal_summary(terminalreporter):
    """One loud line naming what was skipped and why (a server not started, mostly), so a
    green run cannot hide the store suites it did not run."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons = collections.Counter()
    for rep in skipped:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    why = "; ".join(f"{n} x {r}" for r, n in reasons.most_common())
    terminalreporter.write_line(f"NOT COVERED: {len(skipped)} test(s) skipped: {why}", red=True, bold=True)


def tool(name):
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        pytest.fail(f"{path} missing: build first (scripts/test.sh does)")
    return path


def run(name, *args, input=None, check=False, env=None, cwd=None, timeout=300):
    """Runs a tool; returns CompletedProcess with text stdout/stderr."""
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run([tool(name), *map(str, args)], input=input, capture_output=True, text=True,
                       env=e, cwd=cwd, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{name} {args} exited {p.returncode}\nstderr:\n{p.stderr}")
    return p


def sh(cmd, check=True, env=None, timeout=600):
    """Runs a shell pipeline with the tools on PATH."""
    e = dict(os.environ)
    e["PATH"] = BIN + os.pathsep + e["PATH"]
    if env:
        e.update(env)
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, env=e, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd!r} exited {p.returncode}\nstdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}")
    return p


def wrap(script, *args, check=True, env=None, timeout=600):
    """Runs a wrapper script (a path) with the tools on PATH."""
    e = dict(os.environ)
    e["PATH"] = BIN + os.pathsep + e["PATH"]
    if env:
        e.update(env)
    p = subprocess.run(["bash", script, *map(str, args)], capture_output=True, text=True, env=e, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{script} {args} -> {p.returncode}\n{p.stderr[-4000:]}")
    return p


def records(text):
    return [line.split("\t") for line in text.splitlines() if line]


def memory_spools(pid=None):
    """The restore spools the wrappers made in /dev/shm (MemorySpool: whisper-backup.PID.XXXXXX)
    that are there now; with pid, those of that run only (tests run side by side, so another
    test's spool may come and go meanwhile)."""
    prefix = "whisper-backup." if pid is None else f"whisper-backup.{pid}."
    return {n for n in os.listdir("/dev/shm") if n.startswith(prefix)} if os.path.isdir("/dev/shm") else set()


def spool_owner_alive(name):
    """Whether the run whose pid a memory spool's name carries is still running."""
    try:
        os.kill(int(name.split(".")[1]), 0)
    except ProcessLookupError:
        return False
    except (ValueError, IndexError, PermissionError):
        return True
    return True


def gen_tree(root, files=40, schemas="mixed", seed=1, days=30, gaps=False, now=NOW):
    args = [sys.executable, GEN, str(root), "--files", str(files), "--schemas", schemas, "--seed", str(seed),
            "--days", str(days), "--now", str(now)]
    if gaps:
        args.append("--gaps")
    subprocess.run(args, check=True, capture_output=True)
    return root


def change_tree(root, fraction, seed, now=NOW):
    subprocess.run([sys.executable, GEN, str(root), "--change", str(fraction), "--seed", str(seed), "--now", str(now)],
                   check=True, capture_output=True)


def wsp_files(root):
    root = str(root)
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            if f.endswith(".wsp"):
                p = os.path.join(d, f)
                out[os.path.relpath(p, root)] = p
    return out


def read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def tree(tmp_path):
    return gen_tree(tmp_path / "whisper")


@pytest.fixture
def store(tmp_path):
    d = tmp_path / "store"
    d.mkdir()
    return f"file://{d}"


@pytest.fixture
def spool(tmp_path):
    d = tmp_path / "spool"
    d.mkdir()
    return str(d)

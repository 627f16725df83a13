"""scripts/bench.py --scale, the tree-size benchmark, on trees small enough for the suite: it
refuses a size the disk cannot hold before generating anything, and a small run restores
every file, measures every process of every stage and leaves nothing behind."""
import os
import re
import subprocess
import sys

from conftest import BIN, REPO

BENCH = os.path.join(REPO, "scripts", "bench.py")


def bench(work, *args):
    return subprocess.run([sys.executable, BENCH, "--work", str(work), *args], capture_output=True, text=True,
                          env=dict(os.environ, WSP_BIN=BIN), timeout=300)


def test_scale_refuses_a_size_the_disk_cannot_hold(tmp_path):
    # A billion small-schema files: tens of terabytes, on no disk this suite runs on.
    p = bench(tmp_path, "--scale", "1000,1000000000")
    assert p.returncode == 2, p.stderr
    assert re.fullmatch(r"bench: not enough room: 1000000000 files need about \d+\.\d GB .* free\n", p.stderr), p.stderr
    assert re.search(r"^Disk: .* has \d+\.\d GB and \d+\.\d\d M inodes free\.$", p.stdout, re.M), p.stdout
    assert os.listdir(tmp_path) == []   # the sample is gone, no size was generated


def test_scale_small_run_measures_every_process(tmp_path):
    p = bench(tmp_path, "--scale", "48,96", "--delete-wait", "0", "--restore-alone")
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout
    rows = re.findall(r"^\| (48|96) \| [\d.]+ \| [\d.]+ \| \d+ \| [\d.]+ \| [\d.]+ \| [\d.]+x \| [\d.]+ \| \d+ \|((?: [\d.]+ \|){6})$", out, re.M)
    assert [n for n, _ in rows] == ["48", "96"], out
    for _, peaks in rows:
        assert all(1 < float(x) < 1000 for x in peaks.split("|")[:-1]), peaks
    # every stage's processes are counted: 96 files, 50 records per process, 2 per stage
    for run, stage, n in (("first backup", "wsp-find", 1), ("first backup", "wsp-snap", 2), ("unchanged re-run", "wsp-push", 2),
                          ("restore", "wsp-pull list", 1), ("restore", "wsp-pull get", 2), ("restore", "wsp-merge", 2)):
        assert re.search(rf"^\| 96 \| {run} \| {stage} \| {n} \| [\d.]+ \| [\d.]+ \|$", out, re.M), (run, stage, out)
    assert "Versions stored: 48 files: first backup 48, unchanged re-run 0; 96 files: first backup 96, unchanged re-run 0." in out
    assert "At 96 files the tree and the state were removed before the restore (--restore-alone)." in out
    assert re.search(r"^- linear \(.*\): (yes|no: .*)$", out, re.M), out
    assert re.search(r"^- every process <= 64 MB: (yes|NO) \(the largest: wsp-[a-z ]+ [\d.]+ MB at (48|96) files\)$", out, re.M), out
    assert os.listdir(tmp_path) == []

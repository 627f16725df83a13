"""scripts/bench-layout.py, the benchmark's "store layout alone" baseline: for every whisper
file it creates what a first backup into a file:// store must create (the metric's directory
and one version file, written under a temp name and renamed), split over the processes, and
nothing else."""
import os
import subprocess
import sys

from conftest import REPO

LAYOUT = os.path.join(REPO, "scripts", "bench-layout.py")
GEN = os.path.join(REPO, "scripts", "gen-tree.py")


def test_layout_alone_creates_a_directory_and_a_version_per_metric(tmp_path):
    root, dest = tmp_path / "root", tmp_path / "layout"
    subprocess.run([sys.executable, GEN, root, "--files", "37", "--schemas", "small"], check=True, capture_output=True)
    sources = {os.path.relpath(os.path.join(d, f), root)[:-len(".wsp")].replace("/", "."): os.path.getsize(os.path.join(d, f))
               for d, _, fs in os.walk(root) for f in fs if f.endswith(".wsp")}
    assert len(sources) == 37
    subprocess.run([sys.executable, LAYOUT, root, dest, "3"], check=True, timeout=120)
    assert sorted(os.listdir(dest)) == sorted(sources)
    for metric, size in sources.items():
        files = os.listdir(dest / metric)
        assert files == ["20261205T000000Z." + "0" * 64 + ".wsp.gz"], (metric, files)   # no temp file left
        assert os.path.getsize(dest / metric / files[0]) == size // 2

"""gen-tree.py --advance, the daily change of the delta benchmark, checked with the whisper
module: the files stay valid, every archive returns the new span's points (coarser ones the
aggregates of the finer), and nothing else changes."""
import shutil
import subprocess
import sys

import numpy as np
import whisper

from conftest import GEN, NOW, gen_tree, read, wsp_files

DAY = 86400


def advance(root, now, seed=3, share=0.75):
    subprocess.run([sys.executable, GEN, str(root), "--advance", str(DAY), "--share", str(share),
                    "--seed", str(seed), "--now", str(now)], check=True, capture_output=True)


def test_advance_writes_a_day_as_carbon_would(tmp_path):
    root = gen_tree(tmp_path / "t", files=24, schemas="mixed")
    before = tmp_path / "before"
    shutil.copytree(root, before)
    advance(root, NOW + DAY)
    files = wsp_files(root)
    changed = [m for m, p in files.items() if read(p) != read(before / m)]
    assert 12 <= len(changed) < len(files)
    for m in changed:
        path, old = files[m], str(before / m)
        info = whisper.info(path)
        assert info == whisper.info(old)
        for ar in info["archives"]:
            step, points = ar["secondsPerPoint"], ar["points"]
            span = min(DAY, ar["retention"] - step)
            (_, _, got_step), vals = whisper.fetch(path, NOW + DAY - span, NOW + DAY, now=NOW + DAY,
                                                   archiveToSelect=step)
            assert got_step == step and None not in vals, (m, step)
            # Only the span's slots changed: at most one per new interval, plus the one
            # interval the span's start shares with older points.
            a, b = (np.frombuffer(read(p)[ar["offset"]:ar["offset"] + 12 * points], dtype=">u4").reshape(-1, 3)
                    for p in (path, old))
            assert (a != b).any(axis=1).sum() <= min(points, DAY // step + 1), (m, step)
        # A coarser archive holds the aggregate of the finer one (average: their mean).
        fine, coarse = info["archives"][:2]
        if info["aggregationMethod"] == "average":
            fs, cs = fine["secondsPerPoint"], coarse["secondsPerPoint"]
            u = NOW + DAY - (NOW + DAY) % cs - cs   # the newest whole coarse interval
            a = u - (fine["retention"] - 2 * cs) // cs * cs
            _, c = whisper.fetch(path, a, u, now=NOW + DAY, archiveToSelect=cs)
            _, f = whisper.fetch(path, a + cs - fs, u + cs - fs, now=NOW + DAY, archiveToSelect=fs)
            assert np.allclose(np.mean(np.reshape(f, (-1, cs // fs)), axis=1), c), m
    # The same seed picks the same files on the next day.
    day2 = {m: read(p) for m, p in files.items()}
    advance(root, NOW + 2 * DAY)
    assert sorted(m for m, p in files.items() if read(p) != day2[m]) == sorted(changed)

"""carbonate's whisper-fill as an oracle, on the cases where its semantics and wsp-merge's
agree: the same schema on both sides, no zero values (carbonate takes 0 for a gap), gaps
wider than one step, each punched where carbonate looks for it (an archive's gaps are
searched only over the time its finer archive does not cover) and away from the edges
where carbonate's re-aggregation would see partial data. Both must then restore the same
file, and whisper-fetch must print the same thing for every archive.

Time is fixed for both: wsp-merge takes --now, and carbonate's whisper-fill and
whisper-fetch.py run with time.time() pinned to the same second."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import whisper

from conftest import NOW, read, records
from test_merge_backfill import archives, fetched, merge, metric_of, slot_of, wsp_files

FILL = """
import sys, time
now = int(sys.argv[1])
time.time = lambda: now
from carbonate.cli import whisper_fill
pairs = sys.argv[2:]
for src, dst in zip(pairs[::2], pairs[1::2]):
    sys.argv = ["whisper-fill", src, dst]
    whisper_fill()
"""

FETCH = """
import os, runpy, sys, sysconfig, time
now = int(sys.argv[1])
time.time = lambda: now
script = os.path.join(sysconfig.get_path("scripts"), "whisper-fetch.py")
sys.argv = ["whisper-fetch.py"] + sys.argv[2:]
runpy.run_path(script, run_name="__main__")
"""

SCHEMAS = {
    "10s:1h,1m:1d,10m:7d": [(10, 360), (60, 1440), (600, 1008)],
    "1m:6h,5m:2d,1h:14d": [(60, 360), (300, 576), (3600, 336)],
}
METHODS = ["average", "sum", "last", "max", "min", "avg_zero", "absmax", "absmin"]


def build(path, schema, agg, rng):
    """A file as carbon writes it: each archive's own span fed at its step, the coarser
    archives propagated by whisper; every value positive (no zeros)."""
    whisper.create(path, schema, xFilesFactor=0.5, aggregationMethod=agg)
    pts, covered = [], 0
    for step, points in schema:
        for age in range(covered, step * points, step):
            pts.append((NOW - age, float(round(rng.uniform(1, 100), 3))))
        covered = step * points
    pts.sort()
    for k in range(0, len(pts), 2000):
        whisper.update_many(path, pts[k:k + 2000], now=NOW)


def punch_agreeing_gaps(path, rng):
    """Runs of 2 to 12 empty slots: in the finest archive anywhere but its oldest hour; in
    each coarser archive only older than the finer archive's retention, and not within a
    coarser interval of either end of its own span. Returns the number of slots emptied."""
    n = 0
    arcs = archives(path)
    data = bytearray(read(path))
    finer_retention = 0
    for i, (offset, step, points) in enumerate(arcs):
        base = int.from_bytes(data[offset:offset + 4], "big")
        margin = (arcs[i + 1][1] if i + 1 < len(arcs) else step) * 2
        newest = NOW - NOW % step
        lo = newest - (points - 1) * step + margin            # away from the oldest edge
        hi = NOW - finer_retention - margin if i else newest - 2 * step
        hi -= hi % step
        for _ in range(4):
            length = int(rng.integers(2, 13))
            if hi - lo < length * step * 2:
                break
            start = lo + step * int(rng.integers(0, (hi - lo) // step - length))
            for t in range(start, start + length * step, step):
                s = slot_of(t, base, step, points)
                if s == 0:
                    continue                                  # keep the base: carbonate needs it
                at = offset + 12 * s
                if int.from_bytes(data[at:at + 4], "big") == t:
                    data[at:at + 12] = bytes(12)
                    n += 1
        finer_retention = step * points
    with open(path, "wb") as f:
        f.write(data)
    return n


def fetch_all(path):
    """whisper-fetch.py's output for each archive (a --from inside each one's retention)."""
    out = []
    for step, points in [(a["secondsPerPoint"], a["points"]) for a in whisper.info(path)["archives"]]:
        p = subprocess.run([sys.executable, "-c", FETCH, str(NOW), "--from", str(NOW - step * points + 60),
                            "--until", str(NOW), path], capture_output=True, text=True, check=True)
        out.append(p.stdout)
    return out


def test_same_results_as_carbonate_whisper_fill_where_semantics_agree(tmp_path):
    rng = np.random.default_rng(42)
    src, a, b = tmp_path / "src", tmp_path / "carbonate", tmp_path / "whisper"
    for name, schema in SCHEMAS.items():
        for agg in METHODS:
            path = os.path.join(src, name.replace(":", "_").replace(",", "-"), f"{agg}.wsp")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            build(path, schema, agg, rng)
    shutil.copytree(src, a)
    punched = {rel: punch_agreeing_gaps(p, rng) for rel, p in sorted(wsp_files(a).items())}
    assert all(n > 0 for n in punched.values()) and sum(punched.values()) > 500
    shutil.copytree(a, b)

    pairs = [x for rel in sorted(punched) for x in (os.path.join(src, rel), os.path.join(a, rel))]
    subprocess.run([sys.executable, "-c", FILL, str(NOW), *pairs], check=True, capture_output=True)
    p = merge(b, [fetched(tmp_path / "spool", metric_of(rel), os.path.join(src, rel)) for rel in sorted(punched)])
    assert p.returncode == 0, p.stderr
    assert {r[0]: int(r[3]) for r in records(p.stdout)} == {metric_of(rel): n for rel, n in punched.items()}

    for rel in sorted(punched):
        original = fetch_all(os.path.join(src, rel))
        by_carbonate = fetch_all(os.path.join(a, rel))
        by_merge = fetch_all(os.path.join(b, rel))
        assert by_merge == by_carbonate, rel
        assert by_merge == original, rel
        assert all(len(o.splitlines()) > 100 for o in by_merge)
        # wsp-merge restored the very bytes the backup holds.
        assert read(os.path.join(b, rel)) == read(os.path.join(src, rel)), rel

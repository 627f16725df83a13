#!/usr/bin/env python3
"""Generate a tree of whisper files for demos, tests and benchmarks.

Writes the whisper format directly (numpy, big-endian), so hundreds of multi-megabyte files
take seconds. Deterministic for a given --seed and --now.

  gen-tree.py ROOT [--files N] [--schemas mixed|big|small|bench] [--days D] [--filled] [--seed S] [--now T]
  gen-tree.py ROOT --change FRACTION [--seed S]   # change that share of existing files
  gen-tree.py ROOT --advance SECONDS [--share F] [--seed S] [--now T]
      # carbon's writes of the SECONDS up to T into share F of the files (the same --seed picks
      # the same files): every archive gets its new points, coarser ones their aggregates
"""
import argparse
import os
import struct
import sys
import time

import numpy as np

AGG = {"average": 1, "sum": 2, "last": 3, "max": 4, "min": 5, "avg_zero": 6, "absmax": 7, "absmin": 8}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}

# (retentions, aggregation, xFilesFactor)
SCHEMAS = {
    "big": [("10s:6h,1m:7d,10m:5y", "average", 0.5)],
    "small": [("1m:1d,1h:30d", "average", 0.5), ("10s:1h,1m:1d", "sum", 0.0)],
    # About 562 MB for 300 files, half of them 10s:6h,1m:7d,10m:5y (3.3 MB each).
    "bench": [
        ("10s:6h,1m:7d,10m:5y", "average", 0.5),
        ("60s:7d,5m:90d,1h:2y", "sum", 0.0),
        ("10s:6h,1m:7d,10m:5y", "max", 0.5),
        ("1m:7d,1h:2y", "average", 0.5),
    ],
    "mixed": [
        ("10s:6h,1m:7d,10m:5y", "average", 0.5),
        ("60s:1d,5m:30d,1h:1y", "sum", 0.0),
        ("1m:7d,1h:2y", "max", 0.5),
        ("10s:1h,1m:1d,1h:30d", "min", 0.3),
        ("1m:1d,10m:30d", "last", 0.5),
        ("10s:6h,1m:7d", "avg_zero", 0.5),
        ("1m:2d,1h:60d", "absmax", 0.5),
        ("30s:12h,5m:14d", "absmin", 0.1),
    ],
}
NAMES = ["cpu.user", "cpu.system", "mem.free", "disk.sda.reads", "net.eth0.rx", "load.1m", "req.count", "lat.p99"]
POINT = np.dtype([("t", ">u4"), ("v", ">f8")])


def parse_retentions(text):
    out = []
    for part in text.split(","):
        a, b = part.split(":")
        step = int(a[:-1]) * UNITS[a[-1]]
        span = int(b[:-1]) * UNITS[b[-1]]
        out.append((step, span // step))
    return out


def metric_path(i, files):
    host = f"host{i // len(NAMES):03d}"
    return os.path.join("servers", host, *NAMES[i % len(NAMES)].split(".")) + ".wsp"


def write_file(path, archives, agg, xff, now, days, rng, gaps):
    header = struct.pack(">LLfL", AGG[agg], max(s * p for s, p in archives), xff, len(archives))
    offset = 16 + 12 * len(archives)
    infos = b""
    for step, points in archives:
        infos += struct.pack(">LLL", offset, step, points)
        offset += 12 * points
    parts = [header, infos]
    for step, points in archives:
        arr = np.zeros(points, dtype=POINT)
        n = min(points, (days * 86400) // step)
        if n > 0:
            end = now - now % step
            start = end - (n - 1) * step
            ts = start + step * np.arange(n, dtype=np.int64)
            vals = np.cumsum(rng.normal(0, 1, n)) + rng.uniform(0, 100)
            if agg in ("sum", "avg_zero"):
                vals = np.abs(vals)
            vals = np.round(vals, 3)
            keep = np.ones(n, dtype=bool)
            if gaps:
                for _ in range(int(rng.integers(0, 4))):
                    g0 = int(rng.integers(0, n))
                    keep[g0:g0 + int(rng.integers(1, 50))] = False
            # Slot of a timestamp = ((ts - base) / step) mod points, base = oldest point here.
            slots = np.arange(n) % points
            arr["t"][slots[keep]] = ts[keep]
            arr["v"][slots[keep]] = vals[keep]
        parts.append(arr.tobytes())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".gen-tmp"
    with open(tmp, "wb") as f:
        for p in parts:
            f.write(p)
    os.replace(tmp, path)


def change_files(root, fraction, rng, now):
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".wsp"))
    chosen = [f for f in files if rng.random() < fraction]
    for path in chosen:
        with open(path, "r+b") as f:
            meta = f.read(16)
            count = struct.unpack(">LLfL", meta)[3]
            offset, step, points = struct.unpack(">LLL", f.read(12))
            # Write the newest point of the first archive at its slot, as carbon would.
            f.seek(offset)
            base = struct.unpack(">L", f.read(4))[0]
            ts = now - now % step
            slot = ((ts - base) // step) % points if base else 0
            f.seek(offset + 12 * slot)
            f.write(struct.pack(">Ld", ts, float(rng.normal(0, 1000))))
    return chosen


def aggregate(agg, vals, starts, ratio):
    """Whisper's aggregation of the finest points vals into the groups beginning at starts
    (ratio: finest points per coarse interval, for avg_zero's missing points)."""
    counts = np.diff(np.append(starts, len(vals)))
    if agg in ("sum", "average", "avg_zero"):
        s = np.add.reduceat(vals, starts)
        return s if agg == "sum" else s / (counts if agg == "average" else ratio)
    if agg in ("max", "min"):
        return (np.maximum if agg == "max" else np.minimum).reduceat(vals, starts)
    if agg == "last":
        return vals[starts + counts - 1]
    a = np.abs(vals)   # absmax, absmin: the value of largest (smallest) magnitude, sign kept
    pick = [i + (np.argmax if agg == "absmax" else np.argmin)(a[i:i + c]) for i, c in zip(starts, counts)]
    return vals[pick]


def advance_files(root, seconds, share, seed, now):
    """Writes what carbon writes into a live file as SECONDS pass up to NOW: the finest
    archive's points at their ring slots, every coarser archive the aggregates of them (as
    whisper's propagate does), so only that span's slots change in each archive. Slot =
    ((t - base) // step) % points, base = the timestamp in the archive's first slot, or the
    first new interval when the archive is empty."""
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".wsp"))
    pick = np.random.default_rng(seed)
    chosen = [f for f in files if pick.random() < share]
    rng = np.random.default_rng([seed, now])
    for path in chosen:
        with open(path, "r+b") as f:
            agg_id, _, _, count = struct.unpack(">LLfL", f.read(16))
            agg = {v: k for k, v in AGG.items()}[agg_id]
            archives = [struct.unpack(">LLL", f.read(12)) for _ in range(count)]
            step0 = archives[0][1]
            first = now - seconds - (now - seconds) % step0 + step0
            ts = np.arange(first, now - now % step0 + 1, step0, dtype=np.int64)
            if len(ts) == 0:
                continue
            vals = np.round(np.cumsum(rng.normal(0, 1, len(ts))) + rng.uniform(0, 100), 3)
            if agg in ("sum", "avg_zero"):
                vals = np.abs(vals)
            for offset, step, points in archives:
                iv = ts - ts % step
                starts = np.flatnonzero(np.diff(iv, prepend=-1))
                t, v = iv[starts], aggregate(agg, vals, starts, step // step0)
                f.seek(offset)
                base = struct.unpack(">L", f.read(4))[0] or int(t[0])
                t, v = t[-points:], v[-points:]   # older ones are overwritten within the span
                slots = ((t - base) // step) % points
                arr = np.zeros(len(t), dtype=POINT)
                arr["t"], arr["v"] = t, v
                for run in np.split(np.arange(len(t)), np.flatnonzero(np.diff(slots) != 1) + 1):
                    f.seek(offset + 12 * int(slots[run[0]]))
                    f.write(arr[run].tobytes())
    return chosen


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root")
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--schemas", choices=sorted(SCHEMAS), default="mixed")
    ap.add_argument("--days", type=int, default=30, help="days of data before --now (default 30)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--now", type=int, default=None, help="epoch seconds (default: now)")
    ap.add_argument("--gaps", action="store_true", help="leave random runs of empty slots")
    ap.add_argument("--filled", action="store_true",
                    help="every archive full: long-lived metrics only (no preallocated, empty slots)")
    ap.add_argument("--change", type=float, default=None, help="change this share of the existing files")
    ap.add_argument("--advance", type=int, default=None, metavar="SECONDS",
                    help="write the points carbon writes in SECONDS up to --now into --share of the files")
    ap.add_argument("--share", type=float, default=0.75, help="share of the files --advance writes to (default 0.75)")
    a = ap.parse_args()
    now = a.now if a.now is not None else int(time.time())
    rng = np.random.default_rng(a.seed)
    if a.change is not None:
        changed = change_files(a.root, a.change, rng, now)
        print(f"changed {len(changed)} files under {a.root}", file=sys.stderr)
        return
    if a.advance is not None:
        changed = advance_files(a.root, a.advance, a.share, a.seed, now)
        print(f"advanced {len(changed)} files under {a.root} by {a.advance} s to {now}", file=sys.stderr)
        return
    schemas = SCHEMAS[a.schemas]
    for i in range(a.files):
        ret, agg, xff = schemas[i % len(schemas)]
        # Vary how much history each file holds: new, recent and long-lived metrics.
        days = [a.days, max(1, a.days // 30), a.days * 2, 0][(i // len(schemas)) % 4] if a.schemas in ("mixed", "bench") else a.days
        if a.filled:
            days = max(step * points for step, points in parse_retentions(ret)) // 86400 + 1
        write_file(os.path.join(a.root, metric_path(i, a.files)), parse_retentions(ret), agg, xff, now, days, rng, a.gaps)
    print(f"generated {a.files} whisper files under {a.root}", file=sys.stderr)


if __name__ == "__main__":
    main()

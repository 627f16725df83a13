#!/usr/bin/env python3
"""Generate a tree of whisper files for demos, tests and benchmarks.

Writes the whisper format directly (numpy, big-endian), so hundreds of multi-megabyte files
take seconds. Deterministic for a given --seed and --now.

  gen-tree.py ROOT [--files N] [--schemas mixed|big|small|bench] [--days D] [--filled] [--seed S] [--now T]
  gen-tree.py ROOT --change FRACTION [--seed S]   # change that share of existing files
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
    a = ap.parse_args()
    now = a.now if a.now is not None else int(time.time())
    rng = np.random.default_rng(a.seed)
    if a.change is not None:
        changed = change_files(a.root, a.change, rng, now)
        print(f"changed {len(changed)} files under {a.root}", file=sys.stderr)
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

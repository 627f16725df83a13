#!/usr/bin/env python3
"""What page size a delta version should use: generate a tree, copy it, write a day of carbon's
points into the copy (gen-tree.py --advance), and for each page size sum what the changed pages
of every file cost gzipped, and the page hashes the state keeps, against the gzipped full files.

  scripts/bench-page-size.py [--files 60] [--filled] [--schemas bench]
"""
import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile

GEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen-tree.py")
NOW = 1795000000
SIZES = [1024, 2048, 4096, 8192, 16384]


def files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=60)
    ap.add_argument("--schemas", default="bench")
    ap.add_argument("--filled", action="store_true")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="wsp-pages.")
    try:
        old, new = os.path.join(work, "old"), os.path.join(work, "new")
        subprocess.run([sys.executable, GEN, old, "--files", str(a.files), "--schemas", a.schemas, "--now", str(NOW)]
                       + (["--filled"] if a.filled else []), check=True, stderr=subprocess.DEVNULL)
        shutil.copytree(old, new)
        subprocess.run([sys.executable, GEN, new, "--advance", "86400", "--share", "1", "--seed", "1", "--now", str(NOW + 86400)],
                       check=True, stderr=subprocess.DEVNULL)
        full, delta, index = 0, dict.fromkeys(SIZES, 0), dict.fromkeys(SIZES, 0)
        raw = 0
        for rel in files(old):
            a_, b_ = open(os.path.join(old, rel), "rb").read(), open(os.path.join(new, rel), "rb").read()
            raw += len(b_)
            full += len(gzip.compress(b_, 5))
            for s in SIZES:
                pages = [i for i in range(0, len(b_), s) if a_[i:i + s] != b_[i:i + s]]
                body = b"".join(b_[i:i + s] for i in pages)
                delta[s] += len(gzip.compress(b"\0" * 100 + b"\0\0\0\0" * len(pages) + body, 5))
                index[s] += 8 * ((len(b_) + s - 1) // s)
        print(f"{len(files(old))} files, {raw / 1e6:.1f} MB ({a.schemas} schemas{', every archive full' if a.filled else ''}); "
              f"a day of points into every file; full versions gzipped: {full / 1e6:.2f} MB\n")
        print("| page size | day's deltas, MB | % of the full versions | page hashes in the state, MB |")
        print("|---:|---:|---:|---:|")
        for s in SIZES:
            print(f"| {s} | {delta[s] / 1e6:.2f} | {100 * delta[s] / full:.1f}% | {index[s] / 1e6:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

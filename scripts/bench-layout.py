#!/usr/bin/env python3
"""What DESIGN's store layout costs this filesystem by itself: for every whisper file under
ROOT, what a first backup into a file:// store must create whatever it computes: the metric's
directory and one version file in it, written under a temp name and renamed into place (no
read of the source, no compression, no sync). The bytes written per file are half the source
file's size (about what gzip leaves of a small-schema tree). P processes split the files as
xargs -P would. A baseline for scripts/bench.py: the part of a first backup no code change can
remove while the layout stays (a directory and a file per metric), measured in the same run
as restic, which writes a few pack files for the whole tree.

    bench-layout.py ROOT DEST P
"""
import multiprocessing
import os
import sys


def files(root):
    out = []
    for d, dirs, fs in os.walk(root):
        dirs.sort()
        out.extend(os.path.join(d, f) for f in sorted(fs) if f.endswith(".wsp"))
    return out


def work(root, dest, part):
    zeros = bytes(1 << 20)
    for path in part:
        metric = os.path.relpath(path, root)[:-len(".wsp")].replace("/", ".")
        d = os.path.join(dest, metric)
        os.mkdir(d)
        tmp = os.path.join(d, f".wsp-tmp.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        n = os.stat(path).st_size // 2
        while n > 0:
            n -= os.write(fd, zeros[:min(n, len(zeros))])
        os.close(fd)
        os.rename(tmp, os.path.join(d, "20261205T000000Z." + "0" * 64 + ".wsp.gz"))


def main():
    root, dest, p = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(dest, exist_ok=True)
    all_files = files(root)
    # contiguous parts, as xargs hands out records in order
    size = (len(all_files) + p - 1) // p
    procs = [multiprocessing.Process(target=work, args=(root, dest, all_files[i * size:(i + 1) * size])) for i in range(p)]
    for q in procs:
        q.start()
    for q in procs:
        q.join()
        if q.exitcode != 0:
            sys.exit(f"bench-layout: a process failed ({q.exitcode})")


if __name__ == "__main__":
    main()

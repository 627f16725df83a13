#!/usr/bin/env python3
"""Benchmark: this project against restic and a gzip -6 baseline, in one run, on one tree.

Times whole runs (wall, user, sys, peak RSS of the largest process) and reports medians over
--runs and ratios to restic measured in the same run. Called by scripts/bench.sh."""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("WSP_BIN", os.path.join(REPO, ".build", "release"))
GEN = os.path.join(REPO, "scripts", "gen-tree.py")
NOW = 1795000000


def timed(cmd, env=None):
    """Runs a shell command under GNU time: (wall, user, sys, maxrss_kb)."""
    e = dict(os.environ)
    e["PATH"] = BIN + os.pathsep + e["PATH"]
    e["RESTIC_PASSWORD"] = "bench"
    if env:
        e.update(env)
    fmt = "%e %U %S %M"
    out = tempfile.NamedTemporaryFile(delete=False)
    out.close()
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-o", out.name, "-f", fmt, "bash", "-o", "pipefail", "-c", cmd],
                       env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"bench: command failed ({p.returncode}): {cmd}\n{p.stderr[-2000:]}")
    with open(out.name) as f:
        parts = f.read().split()[-4:]
    os.unlink(out.name)
    return wall, float(parts[1]), float(parts[2]), int(parts[3])


def du(path):
    total = 0
    for d, _, fs in os.walk(path):
        for f in fs:
            total += os.lstat(os.path.join(d, f)).st_size
    return total


def fresh_copy(src, dst):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    subprocess.run(["cp", "-a", src, dst], check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--schemas", default="bench")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--work", default=None)
    ap.add_argument("--filled", action="store_true", help="every archive full (gen-tree.py --filled)")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="wsp-bench.", dir=os.environ.get("TMPDIR", "/var/tmp"))
    os.makedirs(work, exist_ok=True)
    pristine = os.path.join(work, "pristine")
    if not os.path.exists(pristine):
        subprocess.run([sys.executable, GEN, pristine, "--files", str(a.files), "--schemas", a.schemas,
                        "--now", str(NOW)] + (["--filled"] if a.filled else []), check=True, stderr=subprocess.DEVNULL)
    tree_bytes = du(pristine)
    nfiles = sum(1 for d, _, fs in os.walk(pristine) for f in fs if f.endswith(".wsp"))
    P = a.processes
    # Records per process as the wrappers choose them: about four batches per process (a
    # process start costs a few milliseconds), at least 50 and at most 4000; the spool (1G)
    # holds a batch of the largest files either way. xargs gets -s 1000000: by default it
    # passes at most 128 KiB of records to a process, whatever -n says.
    K = max(50, min(4000, nfiles // (4 * P)))
    results = {}   # (scenario, tool) -> list of (wall, user, sys, rss)
    sizes = {}

    def add(scn, tool, r):
        results.setdefault((scn, tool), []).append(r)

    # Nothing is deleted while the tools run: every run works in directories of its own, and
    # they are removed at the end. (On ext4 without a journal, as here, creating a file right
    # after many were deleted is slow, whoever deletes them: a rm -rf before a measurement
    # would slow down whichever tool creates the most files.)
    old = [os.path.join(work, d) for d in os.listdir(work) if d != "pristine"]
    for d in old:
        shutil.rmtree(d, ignore_errors=True)
    if old:
        time.sleep(65)   # let the kernel stop protecting the freed inodes (RECENTCY_MIN, 60 s)
    for run in range(a.runs):
        rundir = os.path.join(work, f"run{run}")
        root = os.path.join(rundir, "root")
        os.makedirs(rundir)
        fresh_copy(pristine, root)
        time.sleep(2.5)   # let the files settle, so the state may trust their stat
        store = os.path.join(rundir, "store")
        state = os.path.join(rundir, "state")
        spool = os.path.join(rundir, "spool")
        repo = os.path.join(rundir, "restic")
        os.makedirs(store)
        subprocess.run(["restic", "init", "--repo", repo], env=dict(os.environ, RESTIC_PASSWORD="bench"),
                       check=True, capture_output=True)
        backup = (f"wsp-find --root {root} | xargs -d '\\n' -r -P {P} -s 1000000 -n {K} wsp-snap --spool {spool} --state {state}"
                  f" | xargs -d '\\n' -r -P {P} -s 1000000 -n {K} wsp-push --state {state} file://{store}")
        rbackup = f"restic --repo {repo} backup --quiet {root}"
        order = [("wsp", backup), ("restic", rbackup)]
        if run % 2:
            order.reverse()
        for scn in ("first backup", "unchanged re-run"):
            for tool, cmd in order:
                add(scn, tool, timed(cmd))
        subprocess.run([sys.executable, GEN, root, "--change", "0.3", "--seed", str(run + 1), "--now", str(NOW + 60)],
                       check=True, stderr=subprocess.DEVNULL)
        time.sleep(2.5)
        for tool, cmd in order:
            add("re-run, 30% changed", tool, timed(cmd))
        sizes["wsp store"] = du(store)
        sizes["restic repo"] = du(repo)
        # gzip -6 over the same files: the compression baseline
        gz = os.path.join(rundir, "gz")
        os.makedirs(gz)
        add("first backup", "gzip -6", timed(
            f"cd {root} && find . -name '*.wsp' -print0 | xargs -0 -P {P} -n 20 sh -c "
            f"'for f; do mkdir -p \"{gz}/$(dirname \"$f\")\"; gzip -6 -c \"$f\" > \"{gz}/$f.gz\"; done' sh"))
        sizes["gzip -6 files"] = du(gz)
        add("unchanged re-run", "find -printf ''", timed(f"find {root} -name '*.wsp' -printf ''"))
        # restores
        for scn, target_fn in (("restore into empty dir", lambda t: None),):
            r1, r2, r3 = (os.path.join(rundir, d) for d in ("r-wsp", "r-restic", "r-restic-sync"))
            restore = (f"wsp-pull list file://{store} '*' | xargs -d '\\n' -r -P {P} -s 1000000 -n {K} wsp-pull get --spool {spool} file://{store}"
                       f" | xargs -d '\\n' -r -P {P} -s 1000000 -n {K} wsp-merge --root {r1}")
            rrestore = f"restic --repo {repo} restore latest --target {r2} --quiet"
            for tool, cmd in ([("wsp", restore), ("restic", rrestore)] if run % 2 == 0 else [("restic", rrestore), ("wsp", restore)]):
                add(scn, tool, timed(cmd))
            # byte-identical check: the bench measures correct runs only
            subprocess.run(["diff", "-rq", root, r1], check=True)
            # wsp-merge makes every restored file durable before it links it into place;
            # restic leaves that to the kernel. The same restore followed by sync(1):
            add(scn, "restic + sync", timed(f"restic --repo {repo} restore latest --target {r3} --quiet && sync"))
        onto = (f"wsp-pull list file://{store} '*' | xargs -d '\\n' -r -P {P} -s 1000000 -n {K} wsp-pull get --spool {spool} file://{store}"
                f" | xargs -d '\\n' -r -P {P} -s 1000000 -n {K} wsp-merge --root {root}")
        add("restore onto identical files", "wsp", timed(onto))
        subprocess.run(["diff", "-rq", root, r1], check=True)

    def med(rs, i):
        return statistics.median(r[i] for r in rs)

    print(f"\nTree: {nfiles} whisper files, {tree_bytes / 1e6:.1f} MB ({a.schemas} schemas{', every archive full' if a.filled else ''}); "
          f"{a.runs} runs, medians; {P} processes per stage, {K} records per process; {os.cpu_count()} cores.\n")
    print("| scenario | tool | wall s | user s | sys s | peak RSS MB | wall vs restic |")
    print("|---|---|---:|---:|---:|---:|---:|")
    scenarios = ["first backup", "unchanged re-run", "re-run, 30% changed", "restore into empty dir", "restore onto identical files"]
    for scn in scenarios:
        tools = [t for (s, t) in results if s == scn]
        ref = results.get((scn, "restic"))
        for tool in sorted(tools, key=lambda t: (t != "wsp", t != "restic", t)):
            rs = results[(scn, tool)]
            ratio = f"{med(rs, 0) / med(ref, 0):.2f}x" if ref and tool != "restic" else ("1.00x" if tool == "restic" else "")
            print(f"| {scn} | {tool} | {med(rs, 0):.2f} | {med(rs, 1):.2f} | {med(rs, 2):.2f} | {med(rs, 3) / 1024:.0f} | {ratio} |")
    print("| first backup | original whisper-backup (reported in issue, gzip 9, 2 processes, 300 files/562 MB; not measured here) | 10 | | | | |")
    print()
    print("| storage after 3 backups (first, unchanged, 30% changed) | MB |")
    print("|---|---:|")
    for k, v in sizes.items():
        print(f"| {k} | {v / 1e6:.1f} |")
    for run in range(a.runs):
        shutil.rmtree(os.path.join(work, f"run{run}"), ignore_errors=True)


if __name__ == "__main__":
    main()

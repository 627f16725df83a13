#!/usr/bin/env python3
"""Benchmark: this project against restic and a gzip -6 baseline, in one run, on one tree.

Times whole runs (wall, user, sys, peak RSS of the largest process) and reports medians over
--runs and ratios to restic measured in the same run. --daily: the daily-versions scenario
(store growth per day while carbon writes, restore of the oldest and newest version). Called
by scripts/bench.sh."""
import argparse
import hashlib
import json
import math
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
DAY = 86400
SHARE = 0.75   # share of the files carbon writes to each day in --daily (live metrics)


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


def tree_hashes(root):
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.relpath(os.path.join(d, f), root)] = hashlib.file_digest(fh, "sha256").hexdigest()
    return out


def daily(a, work):
    """Day 1 backs up the generated tree; each later day, carbon's writes of a day
    (gen-tree.py --advance) into SHARE of the files, then the same backup. wsp (the first
    backup's pipeline, --state) and restic back up into stores of their own in the same run;
    at the end the oldest and newest versions are restored into empty directories and
    checked against the SHA-256 of every file of that day's tree."""
    rundir = os.path.join(work, "daily")
    shutil.rmtree(rundir, ignore_errors=True)
    root, store, state, spool, repo = (os.path.join(rundir, d) for d in ("root", "store", "state", "spool", "restic"))
    os.makedirs(store)
    subprocess.run([sys.executable, GEN, root, "--files", str(a.files), "--schemas", a.schemas, "--now", str(NOW)]
                   + (["--filled"] if a.filled else []), check=True, stderr=subprocess.DEVNULL)
    subprocess.run(["restic", "init", "--repo", repo], env=dict(os.environ, RESTIC_PASSWORD="bench"),
                   check=True, capture_output=True)
    tree_bytes, nfiles = du(root), sum(1 for d, _, fs in os.walk(root) for f in fs)
    P = a.processes
    K = max(50, min(4000, nfiles // (4 * P)))
    # --full-every only when this wsp-snap has it (delta versions); without, every version is full.
    snap_help = subprocess.run([os.path.join(BIN, "wsp-snap"), "--help"], capture_output=True, text=True).stdout
    full_every = a.full_every if "--full-every" in snap_help else None
    snap = f"wsp-snap --spool {spool} --state {state}" + (f" --full-every {full_every}" if full_every else "")
    xargs = f"xargs -d '\\n' -r -P {P} -s 1000000 -n {K}"
    sizes = {"wsp": [du(store)], "restic": [du(repo)]}
    days, hashes, marks = [], [], []
    for day in range(1, a.days + 1):
        if day > 1:
            subprocess.run([sys.executable, GEN, root, "--advance", str(DAY), "--share", str(SHARE), "--seed", "1",
                            "--now", str(NOW + (day - 1) * DAY)], check=True, stderr=subprocess.DEVNULL)
        time.sleep(2.5)   # let the files settle, so the state may trust their stat
        hashes.append(tree_hashes(root))
        pushed = os.path.join(rundir, f"pushed.{day}")
        order = [("wsp", f"wsp-find --root {root} | {xargs} {snap} | {xargs} wsp-push --state {state} file://{store} > {pushed}"),
                 ("restic", f"restic --repo {repo} backup --quiet {root}")]
        wall = {}
        for tool, cmd in (order if day % 2 else order[::-1]):
            wall[tool] = timed(cmd)[0]
            sizes[tool].append(du(store if tool == "wsp" else repo))
        with open(pushed) as f:
            stored = [r for r in (line.rstrip("\n").split("\t") for line in f) if r[5] == "stored"]
        days.append((wall, sum(int(r[4]) for r in stored), len(stored), sum(r[3].endswith(".wspd.gz") for r in stored)))
        marks.append(int(time.time()) + 1)   # after this day's versions, before the next day's
    snaps = sorted(json.loads(subprocess.run(["restic", "--repo", repo, "snapshots", "--json"], check=True, text=True,
                                             capture_output=True, env=dict(os.environ, RESTIC_PASSWORD="bench")).stdout),
                   key=lambda s: s["time"])
    restores = {}
    for label, day in ((f"newest (day {a.days})", a.days), ("oldest (day 1)", 1)):
        t_wsp, t_restic = (os.path.join(rundir, f"r-{t}-{day}") for t in ("wsp", "restic"))
        restores[label] = (
            timed(f"wsp-pull list --before @{marks[day - 1]} file://{store} '*' | {xargs} wsp-pull get --spool {spool} file://{store}"
                  f" | {xargs} wsp-merge --root {t_wsp}")[0],
            timed(f"restic --repo {repo} restore {snaps[day - 1]['id']} --target {t_restic} --quiet")[0])
        # the bench measures correct runs only: every file byte-identical to that day's tree
        for got in (t_wsp, os.path.join(t_restic, root.lstrip("/"))):
            if tree_hashes(got) != hashes[day - 1]:
                sys.exit(f"bench: {got} is not the tree of day {day}")

    full = {t: sizes[t][1] - sizes[t][0] for t in sizes}
    growth = {t: [(sizes[t][d + 1] - sizes[t][d]) / full[t] for d in range(a.days)] for t in sizes}
    print(f"\nTree: {nfiles} whisper files, {tree_bytes / 1e6:.1f} MB ({a.schemas} schemas{', every archive full' if a.filled else ''}); "
          f"{a.days} days, each day a day of points into {SHARE:.0%} of the files; {P} processes per stage, {K} records per process; "
          f"wsp-snap {f'--full-every {full_every}' if full_every else 'without --full-every (every version full)'}; {os.cpu_count()} cores.\n")
    print(f"One full version: wsp store {full['wsp'] / 1e6:.2f} MB, restic repo {full['restic'] / 1e6:.2f} MB.\n")
    print("| day | wsp store growth, % of full | wsp upload bytes | wsp versions stored (deltas) | wsp backup s | restic growth, % of full | restic backup s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for d, (wall, up, n, nd) in enumerate(days):
        print(f"| {d + 1} | {100 * growth['wsp'][d]:.1f}% | {up} | {n} ({nd}) | {wall['wsp']:.2f} | {100 * growth['restic'][d]:.1f}% | {wall['restic']:.2f} |")
    print("\n| restore into empty dir | wsp s | restic s |\n|---|---:|---:|")
    for label, (w, r) in restores.items():
        print(f"| {label} | {w:.2f} | {r:.2f} |")
    total = {t: (sizes[t][-1] - sizes[t][0]) / full[t] for t in sizes}
    print(f"\n{a.days} versions: wsp store {total['wsp']:.2f}x one full version, restic repo {total['restic']:.2f}x.\n")
    # Targets. A daily version: the median of days 2..N (a periodic full version is one day).
    # 30 versions: measured with --days 30 or more, else projected from that median with a
    # full version every --full-every. Restore: the newest (the end of a chain) against the
    # oldest (a full version) of the same run.
    med = statistics.median(growth["wsp"][1:]) if a.days > 1 else float("nan")
    fulls = math.ceil(30 / full_every) if full_every else 1
    v30, how = ((sizes["wsp"][30] - sizes["wsp"][0]) / full["wsp"], "measured") if a.days >= 30 else (fulls + (30 - fulls) * med, "projected")
    (rn, _), (ro, _) = restores.values()
    for what, value, target, ok in (("daily version (median of days 2..N), % of a full version", f"{100 * med:.1f}%", "<= 10%", med <= 0.10),
                                    (f"30 daily versions ({how}), x one full version", f"{v30:.2f}x", "<= 4x", v30 <= 4),
                                    ("restore of the newest / restore of the oldest (full)", f"{rn / ro:.2f}x", "<= 1.20x", rn / ro <= 1.2)):
        print(f"- {what}: {value} (target {target}: {'met' if ok else 'NOT met'})")
    shutil.rmtree(rundir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--schemas", default="bench")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--work", default=None)
    ap.add_argument("--filled", action="store_true", help="every archive full (gen-tree.py --filled)")
    ap.add_argument("--daily", action="store_true", help="the daily-versions scenario (see daily())")
    ap.add_argument("--days", type=int, default=5, help="days of --daily (default 5)")
    ap.add_argument("--full-every", type=int, default=10, help="wsp-snap --full-every in --daily, when it has it (its default)")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="wsp-bench.", dir=os.environ.get("TMPDIR", "/var/tmp"))
    os.makedirs(work, exist_ok=True)
    if a.daily:
        daily(a, work)
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
        return
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

#!/usr/bin/env python3
"""Benchmark: this project against restic and a gzip -6 baseline, in one run, on one tree.

Times whole runs (wall, user, sys, peak RSS of the largest process) and reports medians over
--runs and ratios to restic measured in the same run. --daily: the daily-versions scenario
(store growth per day while carbon writes, restore of the oldest and newest version). Called
by scripts/bench.sh. --scale N1,N2,... (--million: 1000000): the first backup, unchanged
re-run and restore of small-schema trees of those sizes, with the peak memory of every
process (see scale())."""
import argparse
import hashlib
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("WSP_BIN", os.path.join(REPO, ".build", "release"))
GEN = os.path.join(REPO, "scripts", "gen-tree.py")
LAYOUT = os.path.join(REPO, "scripts", "bench-layout.py")
NOW = 1795000000
DAY = 86400
SHARE = 0.75   # share of the files carbon writes to each day in --daily (live metrics)


DROP_CACHES = "/proc/sys/vm/drop_caches"
CACHE = "warm"   # main(): --cache


def cold_possible():
    return os.access(DROP_CACHES, os.W_OK)


def level_cache(reads):
    """Gives every tool's run the same page cache: `cold` empties it (what a backup of files
    nobody read lately meets); `warm` reads `reads` (the tree, the store or the repository
    the command will read) just before. Without it, whichever tool ran second found the
    first one's reads in memory, and this machine drops pages left unread for a minute."""
    if CACHE == "cold":
        os.sync()
        with open(DROP_CACHES, "w") as f:
            f.write("3\n")
    else:
        for path in (p for p in reads if os.path.exists(p)):
            subprocess.run(f"find {path} -type f -print0 | xargs -0 -r cat > /dev/null", shell=True, check=True)


def timed(cmd, env=None, reads=None):
    """Runs a shell command under GNU time: (wall, user, sys, maxrss_kb). `reads`: the
    directories it reads, for `level_cache` (None: the cache is left as it is)."""
    e = dict(os.environ)
    e["PATH"] = BIN + os.pathsep + e["PATH"]
    e["RESTIC_PASSWORD"] = "bench"
    if env:
        e.update(env)
    fmt = "%e %U %S %M"
    out = tempfile.NamedTemporaryFile(delete=False)
    out.close()
    # What earlier commands left dirty is written out first, untimed: else a command that
    # syncs (wsp-push, wsp-merge) pays for the one before it (gzip -6's 1.3 GB, the layout's
    # 100,000 directories), and one that leaves its writes to the kernel does not.
    os.sync()
    if reads is not None:
        level_cache(reads)
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


def memory_spool_fits(spool_max):
    """Whether the wrappers would put a restore's spool in /dev/shm (MemorySpool.fits)."""
    if not os.path.isdir("/dev/shm"):
        return False
    kind = subprocess.run(["stat", "-f", "-c", "%T", "/dev/shm"], capture_output=True, text=True).stdout.strip()
    st = os.statvfs("/dev/shm")
    return kind == "tmpfs" and st.f_bavail * st.f_bsize >= 2 * spool_max + (256 << 20)


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
    K = records_per_process(nfiles, P)
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
            timed(f"wsp-pull list --before @{marks[day - 1]} file://{store} '*' | {xargs} wsp-pull get --in-place --spool {spool} file://{store}"
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

SAMPLE = 1000         # files of the sample tree --scale measures the disk estimate on
SPOOL = 1 << 30       # the spool's bound (the tools' --spool-max default), counted whole
CHECKED = 1000        # restored files --scale compares byte for byte
MEM_TARGET = 64       # MB: the peak memory any one process may reach, at any tree size
STAGES = ("wsp-find", "wsp-snap", "wsp-push", "wsp-pull list", "wsp-pull get", "wsp-merge")
RUNS = (("first", "first backup", STAGES[:3]), ("unchanged", "unchanged re-run", STAGES[:3]),
        ("restore", "restore", STAGES[3:]))


def usage(path):
    """(bytes in its files, bytes allocated to its files and directories, inodes) under path."""
    size = alloc = inodes = 0
    for d, _, fs in os.walk(path):
        st = os.lstat(d)
        alloc, inodes = alloc + 512 * st.st_blocks, inodes + 1
        for f in fs:
            st = os.lstat(os.path.join(d, f))
            size, alloc, inodes = size + st.st_size, alloc + 512 * st.st_blocks, inodes + 1
    return size, alloc, inodes


def scale_dirs(rundir):
    d = {k: os.path.join(rundir, k) for k in ("root", "store", "state", "spool", "restore", "logs")}
    os.makedirs(d["store"])
    os.makedirs(d["logs"])
    return d


def scale_pipeline(kind, d, P, K, run):
    """The first backup's pipeline (wsp-find | wsp-snap --state | wsp-push --state) or the
    restore (wsp-pull list | wsp-pull get | wsp-merge into d["restore"]) as main() runs them,
    every process under GNU time: one line per process, STAGE<TAB>peak RSS KB<TAB>wall s, in
    a log per run and stage (logs/RUN.STAGE). The label is fixed: %C would be every record."""
    xargs = f"xargs -d '\\n' -r -P {P} -s 1000000 -n {K}"

    def t(stage):
        return f"/usr/bin/time -a -o {os.path.join(d['logs'], run + '.' + stage.replace(' ', '-'))} -f '{stage}\\t%M\\t%e'"
    store = f"file://{d['store']}"
    if kind == "backup":
        return (f"{t('wsp-find')} wsp-find --root {d['root']}"
                f" | {xargs} {t('wsp-snap')} wsp-snap --spool {d['spool']} --state {d['state']}"
                f" | {xargs} {t('wsp-push')} wsp-push --state {d['state']} {store} > {os.path.join(d['logs'], run + '.pushed')}")
    return (f"{t('wsp-pull list')} wsp-pull list {store} '*'"
            f" | {xargs} {t('wsp-pull get')} wsp-pull get --in-place --spool {d['spool']} {store}"
            f" | {xargs} {t('wsp-merge')} wsp-merge --root {d['restore']}")


def peaks(logs, run):
    """{stage: [peak RSS in KB of each of its processes]} of one run."""
    out = {}
    for stage in STAGES:
        path = os.path.join(logs, run + "." + stage.replace(" ", "-"))
        if os.path.exists(path):
            with open(path) as f:
                out[stage] = [int(p[1]) for p in (line.rstrip("\n").split("\t") for line in f) if len(p) == 3 and p[0] == stage]
    return out


def records_per_process(n, P):
    # About four batches per process, at least 50, at most 4000; then, as the wrappers do
    # (BatchSize), evened out to a multiple of P batches, so the last ones run side by side.
    k = max(50, min(4000, n // (4 * P)))
    batches = -(-(-(-n // k)) // P) * P
    return max(1, min(k, -(-n // max(batches, 1))))


def scale_sample(work, P):
    """What one small-schema file costs on this disk: its bytes and inodes in the tree (its
    directories included), the store, the state and the restored copy, measured on a
    SAMPLE-file tree through the same pipelines: {part: (bytes, inodes) per file}."""
    rundir = os.path.join(work, "scale-sample")
    d = scale_dirs(rundir)
    subprocess.run([sys.executable, GEN, d["root"], "--files", str(SAMPLE), "--schemas", "small", "--now", str(NOW)],
                   check=True, stderr=subprocess.DEVNULL)
    K = records_per_process(SAMPLE, P)
    timed(scale_pipeline("backup", d, P, K, "sample"))
    timed(scale_pipeline("restore", d, P, K, "sample"))
    per = {}
    for part in ("root", "store", "state", "restore"):
        _, alloc, inodes = usage(d[part])
        per[part] = (alloc / SAMPLE, inodes / SAMPLE)
    shutil.rmtree(rundir)
    return per


def scale_room(work, per, n):
    """(mode, one line): whether n files fit on the file system of work with a 10% margin,
    in bytes and inodes: "keep" with the tree kept beside its restored copy, "remove" when
    only if the tree and the state are removed before the restore, None when not at all."""
    b = {k: n * v[0] for k, v in per.items()}
    i = {k: n * v[1] for k, v in per.items()}
    keep = (sum(b.values()) + SPOOL, sum(i.values()))
    remove = (max(b["root"] + b["store"] + b["state"], b["store"] + b["restore"]) + SPOOL,
              max(i["root"] + i["store"] + i["state"], i["store"] + i["restore"]))
    free = shutil.disk_usage(work).free
    ifree = os.statvfs(work).f_favail
    mode = next((m for m, (nb, ni) in (("keep", keep), ("remove", remove)) if 1.1 * nb <= free and 1.1 * ni <= ifree), None)
    return mode, (f"{n} files need about {keep[0] / 1e9:.1f} GB and {keep[1] / 1e6:.2f} M inodes ({1.1 * keep[0] / 1e9:.1f} GB "
                  f"and {1.1 * keep[1] / 1e6:.2f} M with a 10% margin), or {remove[0] / 1e9:.1f} GB and {remove[1] / 1e6:.2f} M "
                  f"({1.1 * remove[0] / 1e9:.1f} GB and {1.1 * remove[1] / 1e6:.2f} M) with the tree and the state removed before "
                  f"the restore; {work} has {free / 1e9:.1f} GB and {ifree / 1e6:.2f} M inodes free")


def scale(a, work):
    """Small-schema trees of each size in --scale (gen-tree.py --schemas small): the first
    backup's pipeline (--state), its unchanged re-run, `find -printf ''` over the same tree,
    and the restore into an empty directory, each timed whole, with the peak RSS of every
    process of every stage (GNU time around each, inside xargs). The restore is checked: every
    file present at its size, and CHECKED files picked at random by SHA-256 (reading the whole
    tree twice would cost minutes at a million files). The disk needed is estimated first,
    from a SAMPLE-file tree; the run refuses (exit 2) when the largest size would not fit with
    a 10% margin even with the tree and the state removed before the restore (which it does
    when only that fits, or with --restore-alone). Each size works in a directory of its own,
    removed before the next size is generated; the measurements wait --delete-wait seconds
    after the last removal (see main(): creating files right after many were deleted is slow
    on this machine)."""
    try:
        sizes = sorted({int(x) for x in a.scale.split(",")})
    except ValueError:
        sizes = []
    if not sizes or sizes[0] < 1:
        print(f"bench: --scale {a.scale}: want a comma-separated list of file counts, such as 100000,250000,500000", file=sys.stderr)
        sys.exit(2)
    P = a.processes
    per = scale_sample(work, P)
    deleted = time.monotonic()
    print(f"Disk, measured on a {SAMPLE}-file small-schema sample: a file takes {per['root'][0] / 1e3:.1f} KB in the tree "
          f"(its directories included), {per['store'][0] / 1e3:.1f} KB in the store, {per['state'][0] / 1e3:.1f} KB of state "
          f"and {per['restore'][0] / 1e3:.1f} KB restored; plus the spool, {SPOOL >> 30} GiB at most.")
    mode, line = scale_room(work, per, sizes[-1])
    print(f"Disk: {line}.", flush=True)
    if not mode:
        print(f"bench: not enough room: {line}", file=sys.stderr)
        sys.exit(2)
    rows = []
    for n in sizes:
        mode, line = scale_room(work, per, n)   # the machine is shared: ask again
        if not mode:
            scale_report(rows, P)
            print(f"bench: not enough room: {line}", file=sys.stderr)
            sys.exit(2)
        rundir = os.path.join(work, f"scale-{n}")
        d = scale_dirs(rundir)
        t0 = time.monotonic()
        subprocess.run([sys.executable, GEN, d["root"], "--files", str(n), "--schemas", "small", "--now", str(NOW)],
                       check=True, stderr=subprocess.DEVNULL)
        generated = time.monotonic() - t0
        tree_bytes, _, _ = usage(d["root"])
        # let the files settle, so the state may trust their stat, and the kernel stop
        # protecting the inodes freed by the last removal
        time.sleep(max(2.5, a.delete_wait - (time.monotonic() - deleted)))
        K = records_per_process(n, P)
        row = {"files": n, "bytes": tree_bytes, "K": K}
        row["first"] = timed(scale_pipeline("backup", d, P, K, "first"))[0]
        row["unchanged"] = timed(scale_pipeline("backup", d, P, K, "unchanged"))[0]
        row["find"] = timed(f"find {d['root']} -name '*.wsp' -printf ''")[0]
        # What the restore must give back: every file at its size, CHECKED of them (picked at
        # random) with these SHA-256 digests.
        want = {os.path.relpath(os.path.join(p, f), d["root"]): os.lstat(os.path.join(p, f)).st_size
                for p, _, fs in os.walk(d["root"]) for f in fs}
        checked = {}
        for rel in random.Random(n).sample(sorted(want), min(CHECKED, n)):
            with open(os.path.join(d["root"], rel), "rb") as f:
                checked[rel] = hashlib.file_digest(f, "sha256").hexdigest()
        row["removed"] = "--restore-alone" if a.restore_alone else ("too little disk for both copies" if mode == "remove" else None)
        if row["removed"]:
            shutil.rmtree(d["root"])
            shutil.rmtree(d["state"])
            time.sleep(a.delete_wait)
        row["restore"] = timed(scale_pipeline("restore", d, P, K, "restore"))[0]
        got = {os.path.relpath(os.path.join(p, f), d["restore"]): os.lstat(os.path.join(p, f)).st_size
               for p, _, fs in os.walk(d["restore"]) for f in fs}
        if len(want) != n or got != want:
            sys.exit(f"bench: the restore of {n} files differs from the tree ({len(got)} files restored, {len(want)} in the tree)")
        for rel, digest in checked.items():
            with open(os.path.join(d["restore"], rel), "rb") as f:
                if hashlib.file_digest(f, "sha256").hexdigest() != digest:
                    sys.exit(f"bench: restored {rel} differs from the tree")
        for run, _, _ in RUNS:
            row[run + " peaks"] = peaks(d["logs"], run)
        for run in ("first", "unchanged"):
            with open(os.path.join(d["logs"], run + ".pushed")) as f:
                row[run + " stored"] = sum(1 for line in f if line.rstrip("\n").split("\t")[5:6] == ["stored"])
        rows.append(row)
        sys.stdout.flush()
        print(f"bench: {n} files generated in {generated:.0f} s; first backup {row['first']:.1f} s, unchanged {row['unchanged']:.1f} s, "
              f"restore {row['restore']:.1f} s", file=sys.stderr, flush=True)
        shutil.rmtree(rundir)
        deleted = time.monotonic()
    scale_report(rows, P)


def scale_report(rows, P):
    if not rows:
        return
    mb = lambda kb: kb / 1024   # noqa: E731
    stage_max = [{s: max(v for run, _, _ in RUNS for v in r[run + " peaks"].get(s, [0])) for s in STAGES} for r in rows]
    print(f"\nSmall-schema trees (gen-tree.py --schemas small, 21.6 and 25.9 KB files); {P} processes per stage, "
          f"records per process max(50, min(4000, files / {4 * P})) evened out to a multiple of {P} batches; {os.cpu_count()} cores. Restores checked: every file "
          f"present at its size, up to {CHECKED} picked at random checked by SHA-256 (not all: that would read the tree twice)."
          + "".join(f" At {r['files']} files the tree and the state were removed before the restore ({r['removed']})."
                    for r in rows if r["removed"]) + "\n")
    print("| files | tree GB | first backup s | µs per file | unchanged s | find s | unchanged / find | restore s | µs per file | "
          + " | ".join(f"{s} peak MB" for s in STAGES) + " |")
    print("|" + "---:|" * (9 + len(STAGES)))
    for r, m in zip(rows, stage_max):
        n = r["files"]
        print(f"| {n} | {r['bytes'] / 1e9:.3f} | {r['first']:.2f} | {1e6 * r['first'] / n:.0f} | {r['unchanged']:.2f} | "
              f"{r['find']:.2f} | {r['unchanged'] / max(r['find'], 0.005):.1f}x | {r['restore']:.2f} | {1e6 * r['restore'] / n:.0f} | "
              + " | ".join(f"{mb(m[s]):.1f}" for s in STAGES) + " |")
    print("\n| files | run | stage | processes | peak RSS max MB | median MB |\n|---:|---|---|---:|---:|---:|")
    for r in rows:
        for run, label, stages in RUNS:
            for s in stages:
                ps = r[run + " peaks"].get(s, [])
                if ps:
                    print(f"| {r['files']} | {label} | {s} | {len(ps)} | {mb(max(ps)):.1f} | {mb(statistics.median(ps)):.1f} |")
    print("\nVersions stored: " + "; ".join(f"{r['files']} files: first backup {r['first stored']}, unchanged re-run {r['unchanged stored']}"
                                            for r in rows) + ".")
    # Linearity: time per file and peak memory of each stage against the smallest size.
    base, base_m = rows[0], stage_max[0]
    keys = [("first backup µs/file", lambda r, m: r["first"] / r["files"]),
            ("unchanged µs/file", lambda r, m: r["unchanged"] / r["files"]),
            ("restore µs/file", lambda r, m: r["restore"] / r["files"])] + \
           [(f"{s} MB", lambda r, m, s=s: m[s]) for s in STAGES]
    outside = []
    if len(rows) > 1:
        print(f"\nAgainst the smallest size ({base['files']} files):\n")
        print("| files | " + " | ".join(k for k, _ in keys) + " |\n|---:|" + "---:|" * len(keys))
        for r, m in zip(rows, stage_max):
            ratios = [f(r, m) / f(base, base_m) for _, f in keys]
            outside += [f"{k} {x:.2f}x at {r['files']}" for (k, _), x in zip(keys, ratios) if abs(x - 1) > 0.10]
            print(f"| {r['files']} | " + " | ".join(f"{x:.2f}x" for x in ratios) + " |")
        print(f"\n- linear (time per file and peak memory of every stage within 10% of the smallest size's): "
              + ("yes" if not outside else "no: " + "; ".join(outside)))
    else:
        print("\n- linear: one size only, nothing to compare")
    top = max(((m[s], s, r["files"]) for r, m in zip(rows, stage_max) for s in STAGES))
    print(f"- every process <= {MEM_TARGET} MB: {'yes' if mb(top[0]) <= MEM_TARGET else 'NO'} "
          f"(the largest: {top[1]} {mb(top[0]):.1f} MB at {top[2]} files)", flush=True)


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
    ap.add_argument("--scale", metavar="N1,N2,...", help="first backup, unchanged re-run and restore of small-schema trees of these sizes (see scale())")
    ap.add_argument("--million", action="store_const", dest="scale", const="1000000", help="--scale 1000000")
    ap.add_argument("--delete-wait", type=float, default=65, help="--scale: seconds between removing a tree and the next measurement (default 65)")
    ap.add_argument("--restore-alone", action="store_true",
                    help="--scale: remove the tree and the state before the restore (done anyway when the disk holds no more)")
    ap.add_argument("--cache", choices=["cold", "warm"], default=None,
                    help="page cache before each timed run of the main benchmark: cold (emptied; needs root; the default "
                         "when possible) or warm (the files the run reads, read just before)")
    a = ap.parse_args()
    global CACHE
    CACHE = a.cache or ("cold" if cold_possible() else "warm")
    if CACHE == "cold" and not cold_possible():
        sys.exit(f"bench: --cache cold needs to write {DROP_CACHES} (root)")
    work = a.work or tempfile.mkdtemp(prefix="wsp-bench.", dir=os.environ.get("TMPDIR", "/var/tmp"))
    os.makedirs(work, exist_ok=True)
    if a.scale:
        try:
            scale(a, work)
        finally:
            if not a.work:
                shutil.rmtree(work, ignore_errors=True)
        return
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
    # process start costs a few milliseconds), at least 50 and at most 4000, evened out to a
    # multiple of P batches (records_per_process); the spool (1G)
    # holds a batch of the largest files either way. xargs gets -s 1000000: by default it
    # passes at most 128 KiB of records to a process, whatever -n says.
    K = records_per_process(nfiles, P)
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
        # What each tool's backup reads: the tree, and what it keeps of earlier runs (for
        # --cache warm; the state's check reads the store's directories).
        order = [("wsp", backup, [root, state, store]), ("restic", rbackup, [root, repo])]
        if run % 2:
            order.reverse()
        for scn in ("first backup", "unchanged re-run"):
            for tool, cmd, reads in order:
                add(scn, tool, timed(cmd, reads=reads))
        # The baselines of the unchanged run, right after it: this machine's disk is slower by
        # up to half for minutes at a time (`find` alone took 11 and 23 s a minute apart), so
        # a baseline measured later in the run compares two speeds of the disk.
        add("unchanged re-run", "find -printf ''", timed(f"find {root} -name '*.wsp' -printf ''", reads=[root]))
        # The least a run that notices a changed file must read: every file's inode.
        add("unchanged re-run", "find -printf '%s' (a stat per file)", timed(f"find {root} -name '*.wsp' -printf '%s' > /dev/null", reads=[root]))
        subprocess.run([sys.executable, GEN, root, "--change", "0.3", "--seed", str(run + 1), "--now", str(NOW + 60)],
                       check=True, stderr=subprocess.DEVNULL)
        time.sleep(2.5)
        for tool, cmd, reads in order:
            add("re-run, 30% changed", tool, timed(cmd, reads=reads))
        sizes["wsp store"] = du(store)
        sizes["restic repo"] = du(repo)
        # gzip -6 over the same files: the compression baseline
        gz = os.path.join(rundir, "gz")
        os.makedirs(gz)
        add("first backup", "gzip -6", timed(
            f"cd {root} && find . -name '*.wsp' -print0 | xargs -0 -P {P} -n 20 sh -c "
            f"'for f; do mkdir -p \"{gz}/$(dirname \"$f\")\"; gzip -6 -c \"$f\" > \"{gz}/$f.gz\"; done' sh", reads=[root]))
        sizes["gzip -6 files"] = du(gz)
        # What the store's layout alone costs here: a directory and a version file per metric,
        # written and renamed, nothing read or compressed (scripts/bench-layout.py).
        add("first backup", "store layout alone", timed(f"{sys.executable} {LAYOUT} {root} {os.path.join(rundir, 'layout')} {P}", reads=[root]))
        # restores
        for scn, target_fn in (("restore into empty dir", lambda t: None),):
            r1, r2, r3 = (os.path.join(rundir, d) for d in ("r-wsp", "r-restic", "r-restic-sync"))
            # --in-place: what the wrappers' restore from a file:// store runs
            restore = (f"wsp-pull list file://{store} '*' | xargs -d '\\n' -r -P {P} -s 1000000 -n {K} wsp-pull get --in-place --spool {spool} file://{store}"
                       f" | xargs -d '\\n' -r -P {P} -s 1000000 -n {K} wsp-merge --root {r1}")
            rrestore = f"restic --repo {repo} restore latest --target {r2} --quiet"
            for tool, cmd in ([("wsp", restore), ("restic", rrestore)] if run % 2 == 0 else [("restic", rrestore), ("wsp", restore)]):
                add(scn, tool, timed(cmd, reads=[store if tool == "wsp" else repo]))
            # byte-identical check: the bench measures correct runs only
            subprocess.run(["diff", "-rq", root, r1], check=True)
            # wsp-merge makes every restored file durable before it links it into place;
            # restic leaves that to the kernel. The same restore followed by sync(1):
            add(scn, "restic + sync", timed(f"restic --repo {repo} restore latest --target {r3} --quiet && sync", reads=[repo]))
            # The wrappers' restore puts the spool in /dev/shm when it is a tmpfs with room
            # (MemorySpool): on disk, every sync of the restore writes the waiting spool files out.
            if memory_spool_fits(1 << 30):
                mspool = tempfile.mkdtemp(prefix="wsp-bench-spool.", dir="/dev/shm")
                r4 = os.path.join(rundir, "r-wsp-memory-spool")
                add(scn, "wsp, spool in /dev/shm (the wrappers' choice)", timed(restore.replace(f"--spool {spool} ", f"--spool {mspool} ").replace(f"--root {r1}", f"--root {r4}"), reads=[store]))
                shutil.rmtree(mspool, ignore_errors=True)
                subprocess.run(["diff", "-rq", root, r4], check=True)
        onto = restore.replace(f"--root {r1}", f"--root {root}")
        add("restore onto identical files", "wsp", timed(onto, reads=[store, root]))
        subprocess.run(["diff", "-rq", root, r1], check=True)

    def med(rs, i):
        return statistics.median(r[i] for r in rs)

    print(f"\nTree: {nfiles} whisper files, {tree_bytes / 1e6:.1f} MB ({a.schemas} schemas{', every archive full' if a.filled else ''}); "
          f"{a.runs} runs, medians; {P} processes per stage, {K} records per process; {os.cpu_count()} cores; "
          f"page cache {'emptied' if CACHE == 'cold' else 'holding what each command reads'} before each command (--cache {CACHE}).\n")
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
    unchanged = results.get(("unchanged re-run", "wsp"))
    if unchanged:
        floors = [(t, results[("unchanged re-run", t)]) for t in ("find -printf ''", "find -printf '%s' (a stat per file)")
                  if ("unchanged re-run", t) in results]
        print("| unchanged re-run | wsp against " + "; ".join(f"{t}: **{med(unchanged, 0) / med(rs, 0):.2f}x**" for t, rs in floors) + " | | | | | |")
    print("| first backup | original whisper-backup (reported in issue, gzip 9, 2 processes, 300 files/562 MB; not measured here) | 10 | | | | |")
    print()
    print("store layout alone: what a first backup into file:// must create whatever it computes (DESIGN's layout: a "
          "directory and a version file per metric, written under a temp name and renamed; nothing read, compressed or "
          "synced; scripts/bench-layout.py). restic writes a few pack files for the whole tree.")
    print()
    print("| storage after 3 backups (first, unchanged, 30% changed) | MB |")
    print("|---|---:|")
    for k, v in sizes.items():
        print(f"| {k} | {v / 1e6:.1f} |")
    for run in range(a.runs):
        shutil.rmtree(os.path.join(work, f"run{run}"), ignore_errors=True)
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)   # the generated tree too (kept with --work, for reuse)


if __name__ == "__main__":
    main()

"""Hostile input: names that do not map one-to-one to a metric, globs built to explode, a
reader that goes away, a clock that ran ahead, option values at the edge of their types.
Each is refused with one line (or handled), never turned into wrong data, a hang or a lie."""
import gzip
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BIN, gen_tree, read, records, run, sh, tool, wsp_files


def lines(stderr, tool_name):
    return [l for l in stderr.splitlines() if l.startswith(tool_name + ": ")]


def store_versions(store_dir):
    """metric -> [(key, sha256 of the gunzipped object)] read straight from a file:// store."""
    out = {}
    for d, _, fs in os.walk(store_dir):
        for f in fs:
            if f.endswith(".wsp.gz"):
                p = os.path.join(d, f)
                metric = os.path.relpath(d, store_dir)
                out.setdefault(metric, []).append((f, hashlib.sha256(gzip.decompress(read(p))).hexdigest()))
    return out


# ---- 1. names that do not map one-to-one -------------------------------------------------

def test_names_that_do_not_map_back_are_refused(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=2, schemas="small")
    good = read(sorted(wsp_files(root).values())[0])
    other = bytearray(good)
    other[-12:] = b"\x01" * 12                          # different data, same header
    (root / "x" / "a").mkdir(parents=True)
    (root / "x" / "a" / "b.wsp").write_bytes(good)      # metric x.a.b
    (root / "x" / "a.b.wsp").write_bytes(bytes(other))  # also x.a.b
    (root / "d.wsp").mkdir()
    (root / "d.wsp" / "m.wsp").write_bytes(good)        # d.wsp.m would restore as d/wsp/m.wsp
    (root / "n").mkdir()
    with open(os.path.join(bytes(root), b"n/bad\xff.wsp"), "wb") as f:   # not UTF-8
        f.write(good)

    p = sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}", check=False)
    assert p.returncode == 1, p.stderr
    err = lines(p.stderr, "wsp-find")
    assert len(err) == 3, p.stderr
    assert any("x/a.b.wsp" in l and "x/a/b.wsp" in l and "another file on disk" in l for l in err), err
    assert any(l.startswith("wsp-find: d.wsp.m: d.wsp/:") and "d/wsp/" in l for l in err), err
    assert any("n/bad" in l and "not valid UTF-8" in l for l in err), err

    stored = store_versions(store[len("file://"):])
    assert stored["x.a.b"] == [(stored["x.a.b"][0][0], hashlib.sha256(good).hexdigest())]
    assert not any(m.startswith("d.") or m.startswith("n.") for m in stored)

    # The restore puts x.a.b's own data back at x/a/b.wsp and nothing anywhere else.
    out = tmp_path / "r"
    sh(f"wsp-pull list {store} '*' | wsp-pull get --spool {spool} {store} | wsp-merge --root {out}")
    assert read(out / "x" / "a" / "b.wsp") == good
    assert not (out / "x" / "a.b.wsp").exists() and not (out / "d").exists()


def test_names_with_combining_marks_at_separators_restore_to_their_own_paths(tmp_path, store, spool):
    """A '/' or '.' next to a combining mark (U+0301) or a prepended character (U+0600) is
    still a separator: names are bytes, not characters. Each file comes back at its own path
    with its own bytes; a directory whose name holds such a '.' is refused like any dotted
    directory; `.wsp` after a prepended character is still a whisper file."""
    root = gen_tree(tmp_path / "w", files=4, schemas="small")
    files = sorted(wsp_files(root).values())
    odd = {"a/\u0301b.wsp": files[0], "c\u0600/d.wsp": files[1], "e/f\u0600.wsp": files[2]}
    for rel, src in odd.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, root / rel)
    (root / "g.\u0301h").mkdir()
    shutil.copyfile(files[3], root / "g.\u0301h" / "x.wsp")   # would restore under g/\u0301h/

    p = sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}", check=False)
    assert p.returncode == 1, p.stderr
    err = lines(p.stderr, "wsp-find")
    assert len(err) == 1 and "g.\u0301h/" in err[0] and "g/\u0301h/" in err[0], p.stderr
    stored = store_versions(store[len("file://"):])
    assert {"a.\u0301b", "c\u0600.d", "e.f\u0600"} <= set(stored), sorted(stored)
    assert not any(m.startswith("g.") for m in stored), sorted(stored)

    # A glob's literal start is a listing prefix matched by bytes too.
    listed = [l.split("\t")[0] for l in sh(f"wsp-pull list {store} 'a.*'").stdout.splitlines()]
    assert listed == ["a.\u0301b"], listed
    out = tmp_path / "r"
    sh(f"wsp-pull list {store} '*' | wsp-pull get --spool {spool} {store} | wsp-merge --root {out}")
    for rel, src in odd.items():
        assert read(out / rel) == read(src), rel
    restored = {os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs}
    want = {os.path.relpath(p, root) for p in wsp_files(root).values()} - {"g.\u0301h/x.wsp"}
    assert restored == want


def test_canonically_equivalent_names_are_two_metrics(tmp_path, store, spool):
    """`café` (U+00E9) and `cafe` + U+0301 are two files on disk, so two metrics in the store,
    each restored with its own bytes (Swift's == calls the names equal: a listing took both
    for one metric and restored one of them)."""
    root = gen_tree(tmp_path / "w", files=2, schemas="small")
    files = sorted(wsp_files(root).values())
    (root / "a").mkdir()
    shutil.copyfile(files[0], root / "a" / "caf\u00e9.wsp")
    shutil.copyfile(files[1], root / "a" / "cafe\u0301.wsp")
    pushed = sh(f"wsp-find --root {root} | xargs -d '\\n' wsp-snap --spool {spool} | xargs -d '\\n' wsp-push {store}").stdout
    assert sorted(r[0] for r in records(pushed) if r[0].startswith("a.")) == sorted(["a.caf\u00e9", "a.cafe\u0301"])
    listed = records(sh(f"wsp-pull list {store} 'a.*'").stdout)
    assert sorted(r[0].encode() for r in listed) == sorted(["a.caf\u00e9".encode(), "a.cafe\u0301".encode()])
    out = tmp_path / "r"
    merged = sh(f"wsp-pull list {store} '*' | xargs -d '\\n' wsp-pull get --spool {spool} {store}"
                f" | xargs -d '\\n' wsp-merge --root {out}").stdout
    assert [r[1] for r in records(merged)] == ["created"] * 4, merged
    assert read(out / "a" / "caf\u00e9.wsp") == read(files[0])
    assert read(out / "a" / "cafe\u0301.wsp") == read(files[1])


def test_prune_and_purge_tell_canonically_equivalent_names_apart(tmp_path, store, spool):
    """`wsp-prune --keep 1` given both names in a row prunes both; a purge sees the one whose
    file is gone from disk as gone, though a name equal to it by Swift's == is still there."""
    root = gen_tree(tmp_path / "w", files=2, schemas="small")
    files = sorted(wsp_files(root).values())
    (root / "a").mkdir()
    nfc, nfd = root / "a" / "caf\u00e9.wsp", root / "a" / "cafe\u0301.wsp"
    shutil.copyfile(files[0], nfc)
    shutil.copyfile(files[1], nfd)
    backup = f"wsp-find --root {root} | xargs -d '\\n' wsp-snap --spool {spool} | xargs -d '\\n' wsp-push {store}"
    sh(backup)
    for f in (nfc, nfd):                       # a second version of each
        data = bytearray(read(f))
        data[-12:] = os.urandom(12)
        f.write_bytes(bytes(data))
    time.sleep(1.1)
    sh(backup)
    sdir = store[len("file://"):]
    def versions(name):
        return [f for f in os.listdir(os.path.join(sdir, name)) if f.endswith(".wsp.gz")]
    assert len(versions("a.caf\u00e9")) == 2 and len(versions("a.cafe\u0301")) == 2
    sh(f"printf 'a.caf\u00e9\\na.cafe\u0301\\n' | wsp-prune --keep 1 {store}")
    assert len(versions("a.caf\u00e9")) == 1 and len(versions("a.cafe\u0301")) == 1
    nfd.unlink()
    p = sh(f"wsp-find --root {root} | wsp-prune --gone-after 45 {store}")
    assert "1 metric(s) newly seen gone" in p.stderr, p.stderr
    assert any(f.startswith("gone-since.") for f in os.listdir(os.path.join(sdir, "a.cafe\u0301")))
    assert not any(f.startswith("gone-since.") for f in os.listdir(os.path.join(sdir, "a.caf\u00e9")))


# ---- 2. globs: linear matching, fuzzed against a reference -------------------------------

def run_measured(args, timeout=20):
    """(returncode, stdout, stderr, seconds, peak RSS in MiB) of one process, measured by GNU
    time: a child forked from pytest itself would report pytest's high-water mark as its own
    (Linux keeps it across fork and exec), and RUSAGE_CHILDREN the largest of every child
    the run reaped."""
    import tempfile
    with tempfile.NamedTemporaryFile("r") as m:
        t0 = time.monotonic()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", m.name, *args], capture_output=True, text=True, timeout=timeout)
        seconds = time.monotonic() - t0
        return p.returncode, p.stdout, p.stderr, seconds, int(m.read().split()[-1]) / 1024


def test_brace_bomb_is_linear_for_find_and_pull_list(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=4, schemas="small")
    (root / "ab").mkdir()
    shutil.copy(sorted(wsp_files(root).values())[0], root / "ab" / ("ab" * 15 + ".wsp"))
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}")
    bomb = "ab." + "{a,b}" * 30          # 2^30 alternatives if expanded
    for args in ([tool("wsp-find"), "--root", str(root), bomb], [tool("wsp-pull"), "list", store, bomb]):
        rc, out, err, seconds, rss = run_measured(args)
        assert rc == 0, err
        assert [r[0] for r in records(out)] == ["ab." + "ab" * 15]
        assert seconds < 5 and rss < 200, (args[0], seconds, rss)


def test_sigterm_stops_a_tool_within_a_second(tmp_path):
    root = gen_tree(tmp_path / "w", files=300, schemas="small")
    bomb = "{a,b}" * 40 + "*"
    p = subprocess.Popen([tool("wsp-find"), "--root", str(root), bomb, "*"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    # Before any output is read the pipe fills or the walk runs; either way SIGTERM must end it.
    time.sleep(0.3)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=1.5)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("wsp-find ignored SIGTERM for more than 1.5 s")
    assert time.monotonic() - t0 < 1.5
    assert p.returncode in (0, 143)


def glob_to_regex(glob):
    """An independent reference: the glob as a Python regular expression."""
    out, i, depth = [], 0, 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = glob.index("]", i + 2 if glob[i + 1] in "!^" else i + 1 + (glob[i + 1] == "]"))
            body = glob[i + 1:j]
            neg = body[:1] in ("!", "^")
            if neg:
                body = body[1:]
            out.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\").replace("^", "\\^") + "]")
            i = j
        elif c == "{":
            out.append("(?:")
            depth += 1
        elif c == "}" and depth:
            out.append(")")
            depth -= 1
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.S)


def random_glob(rng, groups):
    alphabet = "abc"

    def atom(depth):
        r = rng.random()
        if r < 0.08:
            return "*"
        if r < 0.16:
            return "?"
        if r < 0.26:
            body = "".join(rng.sample(alphabet, rng.randint(1, 2)))
            return "[" + ("!" if rng.random() < 0.3 else "") + body + "]"
        if r < 0.32:
            return "."
        return rng.choice(alphabet)

    def group(depth):
        # Alternatives start with distinct letters, so the regex reference never backtracks
        # exponentially (the tool must be fast whatever; the reference must be too).
        firsts = rng.sample(alphabet, rng.randint(1, 3))
        alts = []
        for f in firsts:
            alt = f + "".join(atom(depth) if rng.random() < 0.7 else "" for _ in range(rng.randint(0, 2)))
            alt = alt.replace("*", "")
            if depth < 2 and rng.random() < 0.15:
                alt += group(depth + 1)
            alts.append(alt)
        return "{" + ",".join(alts) + "}"

    parts = []
    stars = 0
    for _ in range(groups):
        parts.append(group(0))
        if rng.random() < 0.3:
            a = atom(0)
            if a == "*":
                stars += 1
                if stars > 3:
                    a = "a"
            parts.append(a)
    glob = "".join(parts).strip(".").replace("..", ".")
    return glob or "a"


def expand_one(rng, glob):
    """A random name the glob matches (so half the fuzz cases are hits)."""
    out, i = [], 0

    def alt_end(s, k):
        depth = 0
        while k < len(s):
            if s[k] == "{":
                depth += 1
            elif s[k] == "}":
                if depth == 0:
                    return k
                depth -= 1
            k += 1
        return k

    stack = []
    while i < len(glob):
        c = glob[i]
        if c == "{":
            # choose an alternative: collect top-level alternatives of this group
            end = alt_end(glob, i + 1)
            body = glob[i + 1:end]
            alts, depth, start = [], 0, 0
            for k, ch in enumerate(body):
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                elif ch == "," and depth == 0:
                    alts.append(body[start:k])
                    start = k + 1
            alts.append(body[start:])
            out.append(expand_one(rng, rng.choice(alts)))
            i = end + 1
            continue
        if c == "*":
            out.append("".join(rng.choice("abc") for _ in range(rng.randint(0, 3))))
        elif c == "?":
            out.append(rng.choice("abc"))
        elif c == "[":
            j = glob.index("]", i + 1)
            body = glob[i + 1:j]
            if body.startswith("!"):
                choices = [x for x in "abcd" if x not in body[1:]]
            else:
                choices = list(body)
            out.append(rng.choice(choices))
            i = j
        else:
            out.append(c)
        i += 1
    return "".join(out)


def test_glob_fuzz_against_a_reference_matcher(tmp_path):
    rng = random.Random(14)
    root = tmp_path / "w"
    root.mkdir()
    good = read(sorted(wsp_files(gen_tree(tmp_path / "g", files=1, schemas="small")).values())[0])
    globs = [random_glob(rng, rng.choice([1, 2, 3, 5, 10, 40])) for _ in range(60)]
    names = set()
    for g in globs:
        for _ in range(3):
            names.add(expand_one(rng, g))
    for _ in range(150):
        names.add(".".join("".join(rng.choice("abc") for _ in range(rng.randint(1, 4)))
                           for _ in range(rng.randint(1, 3))))
    # Names that are a file and also a directory prefix of another (a.wsp beside a/) are fine.
    names = {n for n in names if n and ".." not in n and not n.startswith(".") and not n.endswith(".")
             and len(n) < 200 and all(len(c) < 250 for c in n.split("."))}
    for n in names:
        p = root.joinpath(*n.split("."))
        p = p.with_name(p.name + ".wsp")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(good)
    checked = hits = 0
    t0 = time.monotonic()
    for g in globs:
        expect = sorted(n for n in names if glob_to_regex(g).fullmatch(n))
        rc, out, err, seconds, rss = run_measured([tool("wsp-find"), "--root", str(root), g])
        got = sorted(r[0] for r in records(out))
        assert got == expect, (g, set(got) ^ set(expect))
        assert rc == (0 if expect else 0), err
        assert seconds < 5 and rss < 200, (g, seconds, rss)
        checked += len(names)
        hits += len(expect)
    assert hits > 60 and checked > 10000
    # The same globs through a store's listing (every tenth; a glob that selects nothing fails there).
    store = f"file://{tmp_path / 'store'}"
    (tmp_path / "store").mkdir()
    sh(f"wsp-find --root {root} | wsp-snap --spool {tmp_path / 'spool'} --spool-max 64M | wsp-push {store}")
    for g in globs[::10] + ["{a,b,c}" * 40 + "*"]:
        expect = sorted(n for n in names if glob_to_regex(g).fullmatch(n))
        rc, out, err, seconds, rss = run_measured([tool("wsp-pull"), "list", store, g])
        assert sorted(r[0] for r in records(out)) == expect, g
        assert rc == (0 if expect else 1), err
        assert seconds < 5 and rss < 200, (g, seconds, rss)
    assert time.monotonic() - t0 < 60


# ---- 3. a reader that goes away ----------------------------------------------------------

def closed_pipe():
    r, w = os.pipe()
    os.close(r)
    return w


@pytest.mark.parametrize("stage", ["wsp-find", "wsp-snap", "wsp-push", "wsp-pull list", "wsp-pull get",
                                   "wsp-merge", "wsp-prune"])
def test_a_stage_whose_reader_left_does_not_exit_0(tmp_path, store, spool, stage):
    root = gen_tree(tmp_path / "w", files=6, schemas="small")
    finds = sh(f"wsp-find --root {root}").stdout

    def pipe(name, *args, input=""):
        return subprocess.run([tool(name), *args], input=input, capture_output=True, text=True, check=True).stdout

    def change_and_snap():
        for f in wsp_files(root).values():
            data = bytearray(read(f))
            data[-1] ^= 1
            open(f, "wb").write(bytes(data))
        return pipe("wsp-snap", "--spool", spool, input=finds)

    pipe("wsp-push", store, input=change_and_snap())
    pipe("wsp-push", store, input=change_and_snap())       # two versions each: prune has work
    snaps = change_and_snap()
    listed = pipe("wsp-pull", "list", store, "*")
    fetched = pipe("wsp-pull", "get", "--spool", spool, store, input=listed)
    args, stdin = {
        "wsp-find": (["wsp-find", "--root", str(root)], ""),
        "wsp-snap": (["wsp-snap", "--spool", spool], finds),
        "wsp-push": (["wsp-push", store], snaps),
        "wsp-pull list": (["wsp-pull", "list", store, "*"], ""),
        "wsp-pull get": (["wsp-pull", "get", "--spool", spool, store], listed),
        "wsp-merge": (["wsp-merge", "--root", str(tmp_path / "r")], fetched),
        "wsp-prune": (["wsp-prune", "--keep", "1", "--dry-run", store], finds),
    }[stage]
    w = closed_pipe()
    p = subprocess.run([tool(args[0]), *args[1:]], input=stdin.encode(), stdout=w, stderr=subprocess.PIPE)
    os.close(w)
    err = p.stderr.decode()
    assert p.returncode == 141, (stage, p.returncode, err)
    assert err.count("the reader of standard output went away") == 1, err


def test_pipeline_into_head_fails_the_stages_that_lost_records(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=60, schemas="small")
    p = sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store} | head -1; "
           "echo \"${PIPESTATUS[@]}\" >&2", check=False)
    codes = p.stderr.strip().splitlines()[-1].split()
    assert codes[2] == "141", p.stderr
    assert codes[1] in ("0", "141"), p.stderr


# ---- 4. a clock that ran ahead -----------------------------------------------------------

def test_a_run_with_the_clock_ahead_hides_no_later_version(tmp_path, store, spool):
    if shutil.which("faketime") is None:
        pytest.skip("faketime not installed (scripts/deps.sh --test installs it)")
    root = gen_tree(tmp_path / "w", files=2, schemas="small")
    metric = records(sh(f"wsp-find --root {root}").stdout)[0]
    sh(f"wsp-find --root {root} {metric[0]} | faketime -f '+365d' wsp-snap --spool {spool} | wsp-push {store}")
    future = records(run("wsp-pull", "list", "--all", store, metric[0]).stdout)
    assert len(future) == 1 and future[0][1] > time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + 300 * 86400))

    versions = []
    for i in range(2):
        data = bytearray(read(metric[1]))
        data[-1] = (data[-1] + 1) % 256
        open(metric[1], "wb").write(bytes(data))
        t0 = int(time.time())
        out = records(sh(f"wsp-find --root {root} {metric[0]} | wsp-snap --spool {spool} | wsp-push {store}").stdout)
        assert out[0][5] == "stored"
        stamped = int(time.mktime(time.strptime(out[0][1], "%Y%m%dT%H%M%SZ"))) - time.timezone
        assert t0 - 1 <= stamped <= time.time() + 2, out       # the time it was read, not after the future one
        versions.append(out[0])
    # Unchanged since: not stored again, though a "newer" version is stamped in the future.
    again = records(sh(f"wsp-find --root {root} {metric[0]} | wsp-snap --spool {spool} | wsp-push {store}").stdout)
    assert again[0][5] == "unchanged" and again[0][2] == versions[-1][2]
    now = "@" + str(int(time.time()) + 1)    # a version taken in the newest's second is stamped one later
    chosen = records(run("wsp-pull", "list", "--before", now, store, metric[0]).stdout)
    assert chosen[0][2] == versions[-1][2], chosen
    # Without --before the version stamped in the future is the newest by time (README).
    assert records(run("wsp-pull", "list", store, metric[0]).stdout)[0][1] == future[0][1]


# ---- 6. option values at the edge of their types -----------------------------------------

@pytest.mark.parametrize("args,option", [
    (["wsp-snap", "--spool-max", "99999999999G"], "--spool-max"),
    (["wsp-snap", "--spool-max", "nan"], "--spool-max"),
    (["wsp-snap", "--spool-max", "0x10G"], "--spool-max"),
    (["wsp-snap", "--spool-wait", "inf"], "--spool-wait"),
    (["wsp-snap", "--lock-timeout", "nan"], "--lock-timeout"),
    (["wsp-merge", "--root", "R", "--lock-timeout", "nan"], "--lock-timeout"),
    (["wsp-merge", "--root", "R", "--now", "2026-02-29"], "--now"),
    (["wsp-pull", "list", "--before", "2026-02-30", "STORE", "*"], "--before"),
    (["wsp-pull", "list", "--before", "2026-11-01T00:00:00+99:00", "STORE", "*"], "--before"),
    (["wsp-pull", "list", "--before", "@99999999999999", "STORE", "*"], "--before"),
    (["wsp-pull", "verify", "--before", "2026-04-31", "STORE", "*"], "--before"),
    (["wsp-prune", "--keep", "1", "--now", "2026-13-01", "STORE"], "--now"),
])
def test_bad_option_values_exit_2_with_one_line(tmp_path, store, spool, args, option):
    args = [a.replace("STORE", store).replace("R", str(tmp_path / "r")) if a in ("STORE", "R") else a for a in args]
    if args[0] == "wsp-snap":
        args[1:1] = ["--spool", spool]
    if args[:2] == ["wsp-pull", "verify"]:
        args[2:2] = ["--spool", spool]
    p = subprocess.run([os.path.join(BIN, args[0]), *args[1:]], input="", capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, (args, p.returncode, p.stderr)
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{args[0]}: {option} "), err
    assert "e.g." in err[0] or "2026-11-01T12:00:00Z" in err[0], err


def test_good_dates_still_parse(store):
    for good in ["2024-02-29", "2026-11-01T12:00:00+14:00", "2026-11-01T12:00:00-05:30", "20261101T120000Z",
                 "@1795000000", "2026-11-01 12:00"]:
        p = run("wsp-pull", "list", "--before", good, store, "*")
        assert p.returncode == 1 and "not a date" not in p.stderr, (good, p.stderr)


# ---- 7. directories whose paths the records carry ------------------------------------------

@pytest.mark.parametrize("flaw", ["line\nbreak", "carriage\rreturn", "ta\tb", "long"])
def test_directories_whose_paths_records_cannot_carry_are_refused(tmp_path, store, spool, flaw):
    """Records carry paths under a whisper root (wsp-find, wsp-merge), the spool (wsp-snap,
    wsp-pull get) and a file:// store read in place. A tab or a line break there would split
    every such record (the next stage would open a field that is not a path), and a directory
    over 1024 bytes could push a record past PIPE_BUF. Each is refused, exit 2 and one line
    saying why, before anything is created."""
    name = "/".join(["x" * 200] * 6) if flaw == "long" else flaw
    why = {"long": "longer than 1024 bytes", "ta\tb": "tab"}.get(flaw, "line break")
    root = gen_tree(tmp_path / "w", files=2, schemas="small")
    fetched = sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store} > /dev/null"
                 f" && wsp-pull list {store} '*' | wsp-pull get --spool {spool} {store}").stdout
    assert len(records(fetched)) == 2
    bad_root = tmp_path / "trees" / name          # holds a copy of the tree: wsp-find reads it
    shutil.copytree(root, bad_root)
    missing = tmp_path / "new" / name             # must stay uncreated
    store_dir = tmp_path / "stores" / name
    cases = [
        (["wsp-find", "--root", bad_root], ""),
        (["wsp-snap", "--spool", missing], sh(f"wsp-find --root {root}").stdout),
        (["wsp-pull", "get", "--spool", missing, store], sh(f"wsp-pull list {store} '*'").stdout),
        (["wsp-pull", "get", "--in-place", "--spool", tmp_path / "new" / "spool", f"file://{store_dir}"], ""),
        (["wsp-merge", "--root", missing], fetched),
    ]
    for args, stdin in cases:
        p = subprocess.run([os.path.join(BIN, args[0]), *map(str, args[1:])], input=stdin, capture_output=True, text=True, timeout=60)
        err = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(err) == 1 and why in err[0], (args[:2], p.returncode, p.stderr)
        assert err[0].startswith(args[0] + ":") and p.stdout == "", (args[:2], p.stderr, p.stdout)
        assert not (tmp_path / "new").exists(), args[:2]
    # What they were given is left as it was: the fetched spool files, and the tree.
    assert all(os.path.exists(r[3]) for r in records(fetched))
    assert sorted(wsp_files(bad_root)) == sorted(wsp_files(root))


# ---- 8. smaller lies and silences --------------------------------------------------------

def test_smaller_cases_each_say_what_happened(tmp_path, store, spool):
    root = gen_tree(tmp_path / "w", files=2, schemas="small")
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}")
    d = store[len("file://"):]
    metric = sorted(os.listdir(d))[0]
    key = sorted(os.listdir(os.path.join(d, metric)))[0]
    # Keys that fit no layout: counted in one warning.
    stem = key[:-len(".wsp.gz")]
    shutil.copy(os.path.join(d, metric, key), os.path.join(d, metric, stem.upper() + ".wsp.gz"))
    shutil.copy(os.path.join(d, metric, key), os.path.join(d, metric, stem[:16] + ".wsp.gz"))
    open(os.path.join(d, "README"), "w").write("notes\n")
    # A legacy metric whose only version lacks its .sha1.
    os.mkdir(os.path.join(d, "legacy.only"))
    open(os.path.join(d, "legacy.only", "2015-01-26T15:41:55+00:00.wsp.gz"), "wb").write(gzip.compress(b"x"))
    p = run("wsp-pull", "list", store, "*")
    assert p.returncode == 0, p.stderr
    assert len(records(p.stdout)) == 2
    err = lines(p.stderr, "wsp-pull")
    assert f"wsp-pull: {store}: skipped 3 key(s) that fit no layout of this tool (e.g. README)" in err, err
    assert "wsp-pull: legacy.only: skipped 1 legacy version(s) without their .sha1 (an interrupted upload)" in err, err
    assert len(err) == 2, err

    # A CR is a carriage return, not a newline.
    p = run("wsp-prune", "--keep", "1", store, "a.b\rc\tx")
    assert p.returncode == 1 and "wsp-prune: a.b\\rc: metric name contains a carriage return" in p.stderr, p.stderr

    # Blank lines are no records, in every tool alike.
    for name, args in [("wsp-merge", ["--root", str(tmp_path / "r")]), ("wsp-prune", ["--keep", "1", store]),
                       ("wsp-push", [store]), ("wsp-pull", ["get", "--spool", spool, store]),
                       ("wsp-snap", ["--spool", spool])]:
        p = run(name, *args, input="\n \n\t\n\r\n")
        assert p.returncode == 0 and p.stdout == "" and p.stderr == "", (name, p.stderr)

    # A file larger than the whole spool says so, at once.
    t0 = time.monotonic()
    p = sh(f"wsp-find --root {root} | wsp-snap --spool {spool} --spool-max 1K --spool-wait 30", check=False)
    assert p.returncode == 1 and time.monotonic() - t0 < 20
    err = lines(p.stderr, "wsp-snap")
    assert len(err) == 2 and all("is larger than --spool-max (1024 B): raise --spool-max" in l for l in err), err


# ---- 7. a server that echoes secrets -----------------------------------------------------

class EchoServer:
    """An HTTP server on loopback that answers every request with `status` and a body that
    echoes the request's body, line and headers (as some auth endpoints do)."""

    def __init__(self, status, xml=False):
        import http.server
        import threading

        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                echo = body + f"\n{self.requestline}\n{self.headers}".encode()
                if xml:
                    echo = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InvalidRequest</Code><Message>"
                            + echo.replace(b"<", b"&lt;").replace(b"&", b"&amp;") + b"</Message></Error>")
                self.send_response(status)
                self.send_header("Content-Length", str(len(echo)))
                self.end_headers()
                self.wfile.write(echo)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = answer

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


SECRET_VARS = ["ST_AUTH", "ST_USER", "ST_KEY", "OS_AUTH_URL", "OS_USERNAME", "OS_PASSWORD", "OS_PROJECT_NAME",
               "OS_USER_DOMAIN_NAME", "OS_PROJECT_DOMAIN_NAME", "OS_AUTH_TOKEN", "OS_STORAGE_URL",
               "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"]


@pytest.mark.parametrize("kind", ["swift-v1", "keystone", "s3"])
def test_secrets_echoed_by_a_server_never_reach_the_output(tmp_path, kind):
    key, password, token = "st-key-0123456789", "pw-0123456789", "session-token-0123456789"
    server = EchoServer(401 if kind != "s3" else 400, xml=(kind == "s3"))
    try:
        env = {v: "" for v in SECRET_VARS}
        env["HOME"] = str(tmp_path)
        if kind == "swift-v1":
            env.update(ST_AUTH=server.url + "/auth/v1.0", ST_USER="test:tester", ST_KEY=key)
            args = ["list", "swift://ct/node1", "*"]
        elif kind == "keystone":
            env.update(OS_AUTH_URL=server.url + "/v3", OS_USERNAME="backup", OS_PASSWORD=password,
                       OS_PROJECT_NAME="graphite", OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default")
            args = ["list", "swift://ct/node1", "*"]
        else:
            env.update(AWS_ACCESS_KEY_ID="AKIAEXAMPLE", AWS_SECRET_ACCESS_KEY=key, AWS_SESSION_TOKEN=token)
            args = ["list", "--endpoint", server.url, "--retries", "0", "s3://bucket/node1", "*"]
        p = run("wsp-pull", *args, env=env, timeout=60)
    finally:
        server.close()
    out = p.stdout + p.stderr
    assert p.returncode == 2, p.stderr
    for secret in (key, password, token):
        assert secret not in out, out
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wsp-pull: "), err
    assert "User-Agent" not in out, out          # the server's text is cut to its first line


# ---- 5. metric names longer than a store's path component or key --------------------------

def long_store(kind, tmp_path):
    """(store URL, env) for a fresh store of `kind`; skips with the reason when its server is absent."""
    import uuid
    name = "wsp-long-" + uuid.uuid4().hex[:8]
    if kind == "file":
        d = tmp_path / "store"
        d.mkdir()
        return f"file://{d}", {}
    if kind == "s3":
        need = ("WSP_TEST_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        if not all(os.environ.get(v) for v in need):
            pytest.skip("swift-s3api: WSP_TEST_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY not set "
                        "(start scripts/servers/swift-aio.sh and eval its env)")
        return f"s3://{name}/node1", {"AWS_ENDPOINT_URL": os.environ["WSP_TEST_S3_ENDPOINT"], "AWS_PROFILE": "",
                                       "AWS_SESSION_TOKEN": "", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                                       "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    need = ("WSP_TEST_SWIFT_AUTH", "WSP_TEST_SWIFT_USER", "WSP_TEST_SWIFT_KEY")
    if not all(os.environ.get(v) for v in need):
        pytest.skip("swift aio: WSP_TEST_SWIFT_AUTH, WSP_TEST_SWIFT_USER, WSP_TEST_SWIFT_KEY not set "
                    "(start scripts/servers/swift-aio.sh and eval its env)")
    return f"swift://{name}/node1", {"ST_AUTH": os.environ["WSP_TEST_SWIFT_AUTH"], "ST_USER": os.environ["WSP_TEST_SWIFT_USER"],
                                     "ST_KEY": os.environ["WSP_TEST_SWIFT_KEY"], "OS_AUTH_URL": "", "OS_AUTH_TOKEN": ""}


@pytest.mark.parametrize("kind", ["file", "s3", "swift"])
def test_long_metric_names_are_stored_and_restored_on_every_store(tmp_path, spool, kind):
    store, env = long_store(kind, tmp_path)
    root = gen_tree(tmp_path / "w", files=1, schemas="small")
    good = read(sorted(wsp_files(root).values())[0])
    # 300 bytes: over a file name's 255, within an object key's 1024 (stored as today there).
    # 1000 bytes: over every store's limit. Both with multi-byte characters at the cut.
    names = {
        "medium": ".".join(["é" * 20 + "m%02d" % i for i in range(7)]),
        "long": ".".join(["ü" * 50 + "l%02d" % i for i in range(9)]) + ".end",
    }
    assert 255 < len(names["medium"].encode()) < 400 and 900 < len(names["long"].encode()) <= 1024
    for n in names.values():
        p = root.joinpath(*n.split("."))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.with_name(p.name + ".wsp").write_bytes(good)
    create = "" if kind == "file" else "--create-bucket"
    pushed = records(sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {create} {store}", env=env).stdout)
    keys = {r[0]: r[3] for r in pushed}
    assert set(keys) >= set(names.values()) and all(r[5] == "stored" for r in pushed)
    for label, n in names.items():
        head = keys[n].split("/")[-2]
        long = kind == "file" or label == "long"
        if long:
            # HEAD~H: the name's first 200 bytes (whole characters) and 32 hex digits of its SHA-256.
            cut = n.encode()[:200].decode("utf-8", "ignore")
            assert head == cut + "~" + hashlib.sha256(n.encode()).hexdigest()[:32], head
        else:
            assert head == n
    if kind == "file":
        d = store[len("file://"):]
        for n in names.values():
            dirname = keys[n].split("/")[-2]
            assert read(os.path.join(d, dirname, "full-name")).decode() == n      # findable by hand
            obj = os.path.join(d, keys[n])
            assert gzip.decompress(read(obj)) == good                                 # a plain gzip per version

    # Listed under their whole names, by glob and by name; a second run stores nothing.
    listed = records(run("wsp-pull", "list", store, "*", env=env).stdout)
    assert {r[0] for r in listed} >= set(names.values())
    assert [r[0] for r in records(run("wsp-pull", "list", store, names["long"], env=env).stdout)] == [names["long"]]
    glob = names["long"][:400] + "*"
    assert [r[0] for r in records(run("wsp-pull", "list", store, glob, env=env).stdout)] == [names["long"]]
    again = records(sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}", env=env).stdout)
    assert all(r[5] == "unchanged" for r in again), again

    # Restored byte for byte, verified, and pruned like any other metric.
    out = tmp_path / "r"
    sh(f"wsp-pull list {store} '*' | wsp-pull get --spool {spool} {store} | wsp-merge --root {out}", env=env)
    for n in names.values():
        assert read(out.joinpath(*n.split(".")).with_name(n.split(".")[-1] + ".wsp")) == good
    assert run("wsp-pull", "verify", "--spool", spool, store, "*", env=env).returncode == 0
    p = root.joinpath(*names["long"].split("."))
    p = p.with_name(p.name + ".wsp")
    data = bytearray(good)
    data[-1] ^= 1
    p.write_bytes(bytes(data))
    sh(f"wsp-find --root {root} | wsp-snap --spool {spool} | wsp-push {store}", env=env)
    pruned = records(run("wsp-prune", "--keep", "1", store, names["long"], env=env).stdout)
    assert [(r[0], r[5]) for r in pruned] == [(names["long"], "deleted")]
    assert len(records(run("wsp-pull", "list", "--all", store, names["long"], env=env).stdout)) == 1


def test_the_state_does_not_vouch_for_a_version_stamped_in_the_future(tmp_path, store, spool):
    """A run with the clock ahead and a state: once the clock is right again, the state's
    entry (a version stamped in the future) is not trusted, and the unchanged file gets a
    version stamped when it was read, which --before now finds."""
    if shutil.which("faketime") is None:
        pytest.skip("faketime not installed (scripts/deps.sh --test installs it)")
    root = gen_tree(tmp_path / "w", files=1, schemas="small")
    for path in wsp_files(root).values():
        os.utime(path, (time.time() - 3600, time.time() - 3600))   # settled: the state may vouch for it
    state = tmp_path / "state"
    ahead = "NO_FAKE_STAT=1 faketime -f '+365d'"   # the clock ahead, the files' times as they are
    sh(f"wsp-find --root {root} | {ahead} wsp-snap --spool {spool} --state {state}"
       f" | {ahead} wsp-push --state {state} {store}")
    out = records(sh(f"wsp-find --root {root} | wsp-snap --spool {spool} --state {state}"
                     f" | wsp-push --state {state} {store}").stdout)
    assert out[0][5] == "stored", out
    metric, path = records(sh(f"wsp-find --root {root}").stdout)[0]
    now = "@" + str(int(time.time()) + 1)
    chosen = records(run("wsp-pull", "list", "--before", now, store, metric).stdout)
    assert chosen and chosen[0][2] == hashlib.sha256(read(path)).hexdigest(), chosen

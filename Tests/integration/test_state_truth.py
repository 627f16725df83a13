"""The state is a cache of the store, never more: whatever happens to the store behind its
back (versions deleted, the store emptied or rolled back to an older copy, another node's
purge, a damaged newest version), the next run re-stores exactly what is missing or bad, says
so on stderr, and a restore is then byte-identical to the tree. On file://, on S3 (Swift's
s3api and radosgw) and on Swift; a server whose variables are missing is skipped with the
reason (see test_s3.py and test_swift.py)."""
import concurrent.futures
import os
import random
import shutil
import signal
import subprocess
import time

import pytest

from backends import FileBackend, Node, S3Backend, SwiftBackend, be, by_status, metric_keys, q, versions  # noqa: F401 (be: a fixture)
from conftest import BIN, NOW, change_tree, gen_tree, read, records, sh, wsp_files
from proxylib import proxies, store_proxy  # noqa: F401 (a fixture)

def test_versions_deleted_behind_the_states_back_are_stored_again(be, tmp_path):
    """One metric's versions deleted (as after `wsp-pull verify` called them bad), then
    another node's purge under the shared prefix, then every version with the marker kept:
    each time the next run re-stores exactly what is missing and says so."""
    n = Node(be, tmp_path, 8)
    out, _, _ = n.backup()
    assert {r[5] for r in out} == {"stored"}
    everything = {r[0] for r in out}
    victim = sorted(everything)[3]
    for k in metric_keys(be, victim):
        be.delete(k)
    out, snaps, p = n.backup()
    assert by_status(out) == {"stored": {victim}, "unchanged": everything - {victim}}, p.stderr
    assert p.returncode == 0
    assert f"{victim}: reading it again: the store holds no version of it" in p.stderr
    assert "1 file(s) the state vouched for are missing" in p.stderr
    assert [s[0] for s in snaps if s[4] != "-"] == [victim]   # read again exactly that file
    n.restore_and_compare()

    # Node B shares the prefix, has other metrics, and purges what is not on its disk.
    b = tmp_path / "b"
    gen_tree(b / "nodeb", files=3, seed=2)
    for now in ("", "--now 2099-01-01T00:00:00Z"):   # mark gone, then purge
        sh(f"wsp-find --root {q(b)} | wsp-prune --gone-after 0 --force {now} {q(be.url)}", env=be.env)
    assert versions(be) == []
    out, _, p = n.backup()
    assert by_status(out) == {"stored": everything}, p.stderr
    assert "8 file(s) the state vouched for are missing" in p.stderr
    n.restore_and_compare()

    # Every version deleted, the store's marker kept.
    for k in versions(be):
        be.delete(k)
    assert ".wsp-store-id" in be.keys() and versions(be) == []
    out, _, p = n.backup()
    assert by_status(out) == {"stored": everything} and p.returncode == 0, p.stderr
    assert "8 file(s) the state vouched for are missing" in p.stderr
    assert len(versions(be)) == 8
    n.restore_and_compare()
    # and the state is trusted again afterwards
    out, snaps, _ = n.backup()
    assert all(s[4] == "-" for s in snaps) and {r[5] for r in out} == {"unchanged"}


def test_store_rolled_back_to_an_older_copy(be, tmp_path):
    n = Node(be, tmp_path, 10)
    n.backup()
    mirror = {k: be.get(k) for k in be.keys()}   # rclone sync to a mirror
    change_tree(n.root, 0.4, seed=7, now=NOW + 3600)
    n.settle()
    out, _, _ = n.backup()
    changed = by_status(out)["stored"]
    assert 0 < len(changed) < 10
    # the mirror restored into place: same marker, the newer versions gone
    for k in be.keys():
        if k not in mirror:
            be.delete(k)
    for k, data in mirror.items():
        be.put(k, data)
    out, snaps, p = n.backup()
    assert by_status(out)["stored"] == changed, p.stderr
    assert {s[0] for s in snaps if s[4] != "-"} == changed
    for m in changed:
        assert f"{m}: reading it again: the store's newest version is" in p.stderr
    n.restore_and_compare()


def corrupt(be, key):
    data = bytearray(be.get(key))
    data[len(data) // 2] ^= 0x10
    be.put(key, bytes(data))


def test_damaged_newest_versions_heal(be, tmp_path):
    """A newest version found damaged by `wsp-pull verify` is replaced by the next run; one
    nobody found yet is replaced by a --full run (which re-checks what it deduplicates
    against). The good content is stored again, the damaged object removed after."""
    n = Node(be, tmp_path, 6)
    out, _, _ = n.backup()
    everything = {r[0] for r in out}
    victim, other = sorted(out)[2], sorted(out)[4]
    metric, bad_key = victim[0], victim[3]
    rel = bad_key[bad_key.index(metric + "/"):]
    corrupt(be, rel)
    vspool = tmp_path / "vspool"
    vspool.mkdir()
    p = sh(f"wsp-pull verify --spool {q(vspool)} {q(be.url)} '*'", env=be.env, check=False)
    line = [l for l in p.stderr.splitlines() if l.startswith(f"wsp-pull: {metric}: ")]
    assert p.returncode == 1 and len(line) == 1 and rel.split('/')[1] in line[0], p.stderr
    assert line[0].endswith("; marked bad: the next backup of this file stores it again"), p.stderr
    out, snaps, p = n.backup()
    assert by_status(out) == {"stored": {metric}, "unchanged": everything - {metric}}, p.stderr
    assert p.returncode == 0
    assert "was found damaged (wsp-pull verify)" in p.stderr
    assert f"{metric}: removed damaged {rel.split('/')[1]}" in p.stderr
    # the same content under a new key; the damaged object and its record are gone
    new = [r for r in out if r[0] == metric][0]
    assert new[2] == victim[2] and new[3] != victim[3]
    assert metric_keys(be, metric) == [new[3][new[3].index(metric + "/"):]]
    n.restore_and_compare()
    sh(f"wsp-pull verify --spool {q(vspool)} {q(be.url)} '*'", env=be.env)

    # A damage nobody has read yet: a normal run trusts the state, --full finds it.
    metric, bad_key = other[0], other[3]
    rel = bad_key[bad_key.index(metric + "/"):]
    corrupt(be, rel)
    out, snaps, p = n.backup(extra_snap="--full", extra_push="--full")
    assert by_status(out) == {"stored": {metric}, "unchanged": everything - {metric}}, p.stderr
    assert f"{metric}: {bad_key}: bad object" in p.stderr
    assert len(metric_keys(be, metric)) == 1 and metric_keys(be, metric)[0] != rel
    n.restore_and_compare()


@pytest.fixture
def small_fs(tmp_path):
    """A 1 MiB tmpfs (needs root: mount), unmounted afterwards."""
    d = tmp_path / "small"
    d.mkdir()
    p = sh(f"mount -t tmpfs -o size=1m tmpfs {q(d)}", check=False)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for a full state disk (needs root): {p.stderr.strip()}")
    yield d
    sh(f"umount {q(d)}", check=False)


def test_full_state_disk_reports_records_stored(small_fs, tmp_path):
    be = FileBackend(tmp_path)
    n = Node(be, tmp_path, 30)
    n.state = small_fs / "state"
    # the state claims the store, then its disk fills up
    sh(f"wsp-push --state {q(n.state)} {q(be.url)} < /dev/null")
    sh(f"dd if=/dev/zero of={q(small_fs / 'fill')} bs=4k", check=False)
    out, _, p = n.backup(check=False)
    assert p.returncode == 0, p.stderr
    assert {r[5] for r in out} == {"stored"} and len(out) == 30 and len(versions(be)) == 30
    warned = [l for l in p.stderr.splitlines() if "stored, but the state could not be updated" in l]
    assert len(warned) == 30 and "the next run reads this file again" in warned[0], p.stderr
    assert not [l for l in p.stderr.splitlines() if l not in warned], p.stderr
    # room again: the next run reads every file (nothing was vouched for) and stores nothing
    os.unlink(small_fs / "fill")
    out, snaps, p = n.backup()
    assert all(s[4] != "-" for s in snaps) and {r[5] for r in out} == {"unchanged"}
    out, snaps, p = n.backup()
    assert all(s[4] == "-" for s in snaps)


def state_size(state):
    """(bytes, lines) of the state's journals."""
    total = lines = 0
    for name in os.listdir(state / "shards"):
        data = read(state / "shards" / name)
        total += len(data)
        lines += data.count(b"\n")
    return total, lines


def unchanged_run_work(root, spool, state, url):
    """Bytes an unchanged wsp-snap run reads (its rchar, taken from /proc once it has exited
    and before it is reaped), checking that it read no whisper file."""
    files = sh(f"wsp-find --root {q(root)}").stdout
    p = subprocess.Popen([os.path.join(BIN, "wsp-snap"), "--spool", str(spool), "--state", str(state)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(files.encode())
    p.stdin.close()
    out = p.stdout.read().decode()
    err = p.stderr.read().decode()
    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
    io = dict(line.split(": ") for line in open(f"/proc/{p.pid}/io").read().splitlines())
    assert p.wait() == 0, err
    assert all(r[4] == "-" for r in records(out)), (out, err)
    return int(io["rchar"])


def test_journals_stay_small_over_200_runs_where_every_file_changes(tmp_path):
    """The state's size and the work of an unchanged run stay flat however many runs changed
    every file (journals are compacted), measured as bytes and lines, not time."""
    be = FileBackend(tmp_path)
    n = Node(be, tmp_path, 6)
    paths = sorted(wsp_files(n.root).values())
    names = {os.path.splitext(os.path.relpath(p, n.root))[0].replace(os.sep, "."): p for p in paths}
    files = sh(f"wsp-find --root {q(n.root)}").stdout.splitlines()
    measured = {}
    for run in range(1, 201):
        for i, path in enumerate(paths):
            with open(path, "r+b") as f:
                f.seek(-8, os.SEEK_END)
                f.write(run.to_bytes(4, "big") + i.to_bytes(4, "big"))
        snaps = sh(f"wsp-snap --spool {q(n.spool)} --state {q(n.state)} " + q(*files)).stdout
        # A file is vouched for only once it is 2 s old; time does not pass here, so the test
        # hands wsp-push the stat each file has (and keeps) until the next change.
        recs = []
        for r in records(snaps):
            assert r[4] != "-", "a changed file was not read"
            st = os.stat(names[r[0]])
            r[5] = f"{st.st_ino}:{st.st_dev}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_size}"
            recs.append("\t".join(r))
        out = sh(f"wsp-push --state {q(n.state)} {q(be.url)} " + q(*recs)).stdout
        assert {r[5] for r in records(out)} == {"stored"}
        if run % 20 == 0:
            sh(f"wsp-prune --keep 2 {q(be.url)} " + q(*names))
        if run in (2, 200):
            measured[run] = state_size(n.state) + (unchanged_run_work(n.root, n.spool, n.state, be.url),)
    (b2, l2, w2), (b200, l200, w200) = measured[2], measured[200]
    print(f"\nstate after run 2: {b2} bytes, {l2} lines; unchanged run read {w2} bytes"
          f"\nstate after run 200: {b200} bytes, {l200} lines; unchanged run read {w200} bytes")
    assert b200 <= 2 * b2 and l200 <= 2 * l2 and w200 <= 2 * w2
    assert l200 <= 2 * len(paths)


def filler(be, count):
    """`count` objects of another node's metrics under the same prefix (empty: they are
    only listed)."""
    keys = [f"other.m{i:05d}/20260101T000000Z.{i:064x}.wsp.gz" for i in range(count)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: be.put(k, b""), keys))


@pytest.mark.parametrize("kind", ["swift-s3api", "radosgw", "swift"])
def test_requests_of_an_unchanged_run(kind, tmp_path, proxies):
    """An unchanged run with a state asks nothing per metric: each process opens the store
    and reads its marker, and the run lists the store once (one page per 1000 objects on S3),
    counted at a pass-through proxy; processes share the run's check through WSP_RUN_ID."""
    be = SwiftBackend(tmp_path) if kind == "swift" else S3Backend(kind, tmp_path)
    try:
        n = Node(be, tmp_path, 20)
        out, _, _ = n.backup()
        assert {r[5] for r in out} == {"stored"}
        px, env = store_proxy(kind, be, tmp_path, proxies)

        def unchanged_run(run_id, wrapper=""):
            if kind == "swift":
                # The test servers' tokens live seconds (SWIFT_TOKEN_LIFE): a fresh one for each
                # run (from the server, not through the proxy), so that no request is repeated,
                # with most of its life left (the server hands out its current one until then).
                be.auth(min_life=int(os.environ.get("WSP_TEST_SWIFT_TOKEN_LIFE", "10")) * 2 // 3)
                env["OS_AUTH_TOKEN"] = be.token
            start = px.mark()
            p = sh(f"wsp-find --root {q(n.root)} | xargs -d '\\n' -n 5 -P 2 {wrapper} wsp-snap --spool {q(n.spool)} --state {q(n.state)}"
                   f" | xargs -d '\\n' -n 5 -P 2 wsp-push --state {q(n.state)} {q(be.url)}", env=dict(env, WSP_RUN_ID=run_id))
            assert {r[5] for r in records(p.stdout)} == {"unchanged"} and len(records(p.stdout)) == 20, p.stderr
            entries = px.entries()[start:]
            full = [e for e in entries if e[0] == "GET" and ("list-type=2" in e[1] or "format=json" in e[1])
                    and "max-keys=1&" not in e[1] + "&" and "limit=1&" not in e[1] + "&"]
            return entries, len(full)

        first, pages = unchanged_run("run-1")
        # 4 wsp-snap and 4 wsp-push processes (20 records, 5 each): per process the store's
        # opening and its marker; one listing pass for the run.
        by_kind = {}
        for e in first:
            by_kind[e[0]] = by_kind.get(e[0], 0) + 1
        print(f"\n{kind}, unchanged run of 20 metrics in 8 processes: {len(first)} requests {by_kind}, {pages} listing page(s) of the store")
        assert "PUT" not in by_kind and pages == 1
        # Without WSP_RUN_ID, the processes one xargs starts are one run as well, also through
        # GNU time (which forks).
        bare, bare_pages = unchanged_run("")
        assert bare_pages == 1 and len(bare) == len(first), bare
        timed, timed_pages = unchanged_run("", wrapper="/usr/bin/time -o /dev/null")
        assert timed_pages == 1 and len(timed) == len(first), timed
        # nothing per metric: 2 per process, the listing (and on Swift its /info, read once)
        assert len(first) == 8 * 2 + pages + (1 if kind == "swift" else 0), first
        # More objects in the store: one listing page more per 1000 on S3 (shown on radosgw,
        # which writes them fastest), per listing limit on Swift (10 here; the store takes
        # 1000, or the cluster's limit if lower).
        if kind == "radosgw":
            filler(be, 1000)
        elif kind == "swift":
            env["WSP_SWIFT_LIST_LIMIT"] = "10"
        else:
            return
        second, pages2 = unchanged_run("run-2")
        what = "1000 more objects" if kind != "swift" else "pages of 10 objects (21 objects)"
        print(f"{kind}, the same with {what}: {len(second)} requests, {pages2} listing page(s)")
        assert pages2 == (2 if kind != "swift" else 3) and len(second) == len(first) + pages2 - pages
    finally:
        be.cleanup()


@pytest.mark.parametrize("kind", ["swift-s3api", "swift"])
def test_requests_of_a_first_backup_and_its_prune(kind, tmp_path, proxies):
    """Records from xargs are listed a batch at a time: one listing of the batch's range of
    metrics (a page per 1000 keys), not one per metric, by wsp-push (before it stores or
    deduplicates) and wsp-prune --keep. A store a round trip away then costs about one
    request per new version. The listings are whole: a backup without the state finds every
    version in them (all unchanged), and a restore is the tree."""
    be = SwiftBackend(tmp_path) if kind == "swift" else S3Backend(kind, tmp_path)
    try:
        n = Node(be, tmp_path, 40, schemas="small")
        px, env = store_proxy(kind, be, tmp_path, proxies)

        if kind == "swift":
            # The test servers' tokens live seconds (SWIFT_TOKEN_LIFE): with the credentials
            # set, a rejected token is renewed (at the server, not through the proxy).
            env.update(ST_AUTH=be.env["ST_AUTH"], ST_USER=be.env["ST_USER"], ST_KEY=be.env["ST_KEY"])

        def run(state):
            start = px.mark()
            s = f"--state {q(n.state)}" if state else ""
            p = sh(f"wsp-find --root {q(n.root)} | xargs -d '\\n' -n 20 wsp-snap --spool {q(n.spool)} {s}"
                   f" | xargs -d '\\n' -n 20 wsp-push {s} {be.create} {q(be.url)}"
                   f" | xargs -d '\\n' -n 40 wsp-prune --keep 1 {q(be.url)}", env=env)
            entries = [e for e in px.entries()[start:] if e[2] != "401"]   # a request its renewed token repeats
            lists = [e for e in entries if e[0] == "GET" and ("list-type=2" in e[1] or "format=json" in e[1])
                     and "max-keys=1&" not in e[1] + "&" and "limit=1&" not in e[1] + "&"]
            puts = [e for e in entries if e[0] == "PUT" and ".wsp.gz" in e[1]]
            return p, entries, len(lists), len(puts)

        p, first, lists, puts = run(state=True)
        print(f"\n{kind}, first backup of 40 metrics (2 wsp-push batches of 20, one wsp-prune of 40): "
              f"{len(first)} requests, {lists} listings, {puts} PUTs")
        assert puts == 40 and lists == 3, first
        p, again, lists, puts = run(state=False)
        assert puts == 0 and lists == 3, again     # every version found in the batch listings
        n.restore_and_compare()
    finally:
        be.cleanup()


def test_the_processes_one_xargs_starts_share_a_check_and_the_next_xargs_checks_again(tmp_path):
    """Without WSP_RUN_ID (the README's bare pipeline), the wsp-snap processes one xargs starts
    are one run: one check of the store, not one per process. A later pipeline (another
    xargs) checks again and catches what changed in the store between the two; a wsp-snap
    started by the shell itself checks on its own."""
    be = FileBackend(tmp_path)
    n = Node(be, tmp_path, 20)
    n.backup()
    metrics = sorted(r[0] for r in records(sh(f"wsp-find --root {q(n.root)}").stdout))

    def run(victim, xargs=True):
        for k in metric_keys(be, victim):
            be.delete(k)
        snap = f"wsp-snap --spool {q(n.spool)} --state {q(n.state)}"
        p = sh(f"wsp-find --root {q(n.root)} | " + (f"xargs -d '\\n' -n 5 -P 2 {snap}" if xargs else snap)
               + f" | wsp-push --state {q(n.state)} {q(be.url)}", env={"WSP_RUN_ID": ""})
        assert by_status(records(p.stdout))["stored"] == {victim}, p.stderr
        return p.stderr.count("file(s) the state vouched for are missing")

    assert run(metrics[2]) == 1     # 4 processes, one check
    assert run(metrics[7]) == 1     # the next xargs checked again: the deleted versions are found
    assert run(metrics[11], xargs=False) == 1


def test_metrics_purged_while_their_directory_was_away_are_stored_again(be, tmp_path):
    """`mv` keeps the files' inodes and change times: the state still matches them when the
    directory comes back after a purge. The purge drops what the state vouches for the
    metrics it removes, and the run's check of the store would catch it anyway."""
    n = Node(be, tmp_path, 8)
    out, _, _ = n.backup()
    _, snaps, p = n.backup(env={"WSP_RUN_ID": "run-1"})   # run-1's check of the store is done
    assert all(s[4] == "-" for s in snaps), p.stderr
    away, home = tmp_path / "away", n.root / "servers" / "host000" / "cpu"
    gone = {r[0] for r in out if r[0].startswith("servers.host000.cpu.")}
    assert 0 < len(gone) < 8

    def purge(state_opt):
        os.rename(home, away)
        for now in ("", "--now 2099-01-01T00:00:00Z"):   # mark gone, then purge
            sh(f"wsp-find --root {q(n.root)} | wsp-prune --gone-after 1 --force {now} {state_opt} {q(be.url)}", env=be.env)
        os.rename(away, home)
        assert not [k for k in be.keys() if k.split("/")[0] in gone]

    # wsp-prune --state drops the purged metrics' entries: even within the run whose check
    # is done (WSP_RUN_ID), they are read again
    purge(f"--state {q(n.state)}")
    snaps = records(sh(f"wsp-find --root {q(n.root)} | wsp-snap --spool {q(n.spool)} --state {q(n.state)}",
                       env=dict(be.env, WSP_RUN_ID="run-1")).stdout)
    assert {s[0] for s in snaps if s[4] != "-"} == gone
    for s in snaps:
        if s[4] != "-":
            os.unlink(s[4])
    out, _, p = n.backup()
    assert by_status(out)["stored"] == gone, p.stderr
    n.restore_and_compare()
    # without it, the next run's check of the store finds them gone
    purge("")
    out, _, p = n.backup()
    assert by_status(out)["stored"] == gone, p.stderr
    assert all(f"{m}: reading it again: the store holds no version of it" in p.stderr for m in gone)
    n.restore_and_compare()


def journals(state):
    """{journal name: its lines' metric names} of a state."""
    return {name: [l.split(b"\t")[0].decode() for l in read(state / "shards" / name).splitlines()]
            for name in sorted(os.listdir(state / "shards")) if not name.startswith(".")}


def test_a_metric_whose_lines_are_in_two_journals_is_vouched_for_by_the_newest(be, tmp_path):
    """Sibling directories share a journal named by their parent (a.b and a.c: "a"). A
    directory that gains a subdirectory becomes a parent: its journal ("a.b") is made, and
    takes its own metrics' lines from then on, while "a" keeps their earlier ones. Through
    the real tools on each store: a purge forgets a metric in both journals (its only line
    may be in "a" with the file's current stat), a metric's newer line is the one trusted,
    its older one is neither trusted nor reported by the check, and a version deleted behind
    the state's back is stored again and reported once."""
    n = Node(be, tmp_path, 2)
    sources = sorted(wsp_files(n.root).values())
    for d in ("src0", "src1"):
        shutil.copy(sources[int(d[-1])], tmp_path / d)
    shutil.rmtree(n.root)
    place = {"a.b.m": "src0", "a.c.k": "src1", "a.b.c.n": "src0", "a.c.d.p": "src1"}

    def add(metric):
        path = n.root / (metric.replace(".", "/") + ".wsp")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / place[metric], path)
        return path

    def change(path):
        with open(path, "r+b") as f:   # the last point's value: still a whisper file
            f.seek(-1, 2)
            b = f.read(1)
            f.seek(-1, 2)
            f.write(bytes([b[0] ^ 1]))

    m, k = add("a.b.m"), add("a.c.k")
    n.settle()
    out, _, p = n.backup()
    assert by_status(out) == {"stored": {"a.b.m", "a.c.k"}}, p.stderr
    assert journals(n.state) == {"a": ["a.b.m", "a.c.k"]}
    add("a.b.c.n")
    n.settle()
    out, _, p = n.backup(env={"WSP_RUN_ID": "run-1"})   # run-1's check of the store is done
    assert by_status(out) == {"stored": {"a.b.c.n"}, "unchanged": {"a.b.m", "a.c.k"}}, p.stderr
    assert journals(n.state) == {"a": ["a.b.m", "a.c.k"], "a.b": ["a.b.c.n"]}

    # a.b.m's only line is in "a" and a.b's journal exists: a purge (of a.b while away: `mv`
    # keeps its files' inodes and change times) forgets it in both, so that, within the run
    # whose check is done (run-1), it is read again.
    away, home = tmp_path / "away", n.root / "a" / "b"
    os.rename(home, away)
    for now in ("", "--now 2099-01-01T00:00:00Z"):   # mark gone, then purge
        sh(f"wsp-find --root {q(n.root)} | wsp-prune --gone-after 1 --force {now} --state {q(n.state)} {q(be.url)}", env=be.env)
    os.rename(away, home)
    assert not metric_keys(be, "a.b.m") and not metric_keys(be, "a.b.c.n")
    snaps = records(sh(f"wsp-find --root {q(n.root)} | wsp-snap --spool {q(n.spool)} --state {q(n.state)}",
                       env=dict(be.env, WSP_RUN_ID="run-1")).stdout)
    assert {s[0] for s in snaps if s[4] != "-"} == {"a.b.m", "a.b.c.n"}, snaps
    for s in snaps:
        if s[4] != "-":
            os.unlink(s[4])
    out, _, p = n.backup()
    assert by_status(out) == {"stored": {"a.b.m", "a.b.c.n"}, "unchanged": {"a.c.k"}}, p.stderr
    assert journals(n.state)["a.b"][-1] == "a.b.m"   # after a.b.c.n's line and the forget line

    # a.c gains a subdirectory, then a.c.k changes: its newer line goes to "a.c".
    add("a.c.d.p")
    n.settle()
    n.backup()
    change(k)
    n.settle()
    out, _, p = n.backup()
    assert by_status(out) == {"stored": {"a.c.k"}, "unchanged": {"a.b.m", "a.b.c.n", "a.c.d.p"}}, p.stderr
    assert "a.c.k" in journals(n.state)["a.c"] and "a.c.k" in journals(n.state)["a"]
    # Unchanged: nothing read, nothing reported (the check passes over "a"'s older line).
    out, snaps, p = n.backup()
    assert {r[5] for r in out} == {"unchanged"} and all(s[4] == "-" for s in snaps), p.stderr
    assert "reading it again" not in p.stderr and "vouched for" not in p.stderr, p.stderr
    # The one-pass check of an S3 or Swift store drops the older line (file:// asks about the
    # entries a lookup uses, here never "a"'s).
    assert "a.c.k" not in journals(n.state)["a"] or isinstance(be, FileBackend)

    # a.c.k's newest version deleted behind the state's back: stored again, reported once.
    newest = sorted(metric_keys(be, "a.c.k"))[-1]
    be.delete(newest)
    out, snaps, p = n.backup()
    assert by_status(out) == {"stored": {"a.c.k"}, "unchanged": {"a.b.m", "a.b.c.n", "a.c.d.p"}}, p.stderr
    assert [s[0] for s in snaps if s[4] != "-"] == ["a.c.k"]
    assert len([l for l in p.stderr.splitlines() if "reading it again" in l]) == 1, p.stderr
    assert "a.c.k: reading it again" in p.stderr and "1 file(s) the state vouched for" in p.stderr, p.stderr
    n.restore_and_compare()
    out, snaps, p = n.backup()
    assert {r[5] for r in out} == {"unchanged"} and all(s[4] == "-" for s in snaps), p.stderr


CRASH_TRIALS = int(os.environ.get("WSP_TORTURE_TRIALS", "4"))


def killed_at_random(cmd, seconds, env=None, stdin=None):
    """Runs `cmd`, SIGKILLs it at a random moment within `seconds`; True if it was killed."""
    e = dict(os.environ, **(env or {}))
    p = subprocess.Popen(cmd, stdin=stdin or subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=e)
    try:
        p.wait(timeout=random.uniform(0, seconds))
        return False
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
        return True


def test_sigkill_during_compaction_loses_nothing(tmp_path):
    """wsp-snap killed while it checks and compacts the journals: the next run trusts what is
    left (the old journal or the new one, never a part), stores nothing, loses nothing."""
    be = FileBackend(tmp_path)
    n = Node(be, tmp_path, 24)
    n.backup()
    # Journals with a long history: every line repeated, so every journal is compacted.
    for name in os.listdir(n.state / "shards"):
        p = n.state / "shards" / name
        p.write_bytes(p.read_bytes() * 400)
    base = tmp_path / "state-base"
    shutil.copytree(n.state, base)
    files = sh(f"wsp-find --root {q(n.root)}").stdout
    snap = [os.path.join(BIN, "wsp-snap"), "--spool", str(n.spool), "--state", str(n.state)]
    start = time.monotonic()
    subprocess.run(snap, input=files.encode(), capture_output=True, check=True)
    took = time.monotonic() - start
    killed = midway = 0
    for _ in range(CRASH_TRIALS):
        shutil.rmtree(n.state)
        shutil.copytree(base, n.state)
        with open(tmp_path / "files", "w") as f:
            f.write(files)
        with open(tmp_path / "files") as f:
            killed += killed_at_random(snap, took, stdin=f)
        sizes = [(n.state / "shards" / name).stat().st_size < (base / "shards" / name).stat().st_size
                 for name in os.listdir(base / "shards")]
        midway += 0 < sum(sizes) < len(sizes)
        for name in os.listdir(n.spool):
            if not name.startswith("."):
                os.unlink(n.spool / name)
        out, snaps, p = n.backup()
        assert {r[5] for r in out} == {"unchanged"} and len(out) == 24, p.stderr
        assert not [name for name in os.listdir(n.state / "shards") if name.startswith(".")]
        out, snaps, p = n.backup()
        assert all(s[4] == "-" for s in snaps), p.stderr
        assert len(versions(be)) == 24
    print(f"\ncompaction crash trials: {killed} of {CRASH_TRIALS} killed before the end, {midway} with some"
          f" journals compacted and others not (a run took {took:.2f} s)")
    n.restore_and_compare()


def test_sigkill_during_a_healing_run_loses_nothing(tmp_path):
    """wsp-push killed while it replaces damaged versions: the next run finishes the job; no
    metric is left without a good newest version."""
    be = FileBackend(tmp_path)
    n = Node(be, tmp_path, 10)
    out, _, _ = n.backup()
    for r in out:
        corrupt(be, r[3][r[3].index(r[0] + "/"):])
    vspool = tmp_path / "vspool"
    vspool.mkdir()
    p = sh(f"wsp-pull verify --spool {q(vspool)} {q(be.url)} '*'", check=False)
    assert p.stderr.count("marked ") == 10, p.stderr
    base_store, base_state = tmp_path / "store-base", tmp_path / "state-base"
    shutil.copytree(be.dir, base_store)
    shutil.copytree(n.state, base_state)
    killed = 0
    for trial in range(CRASH_TRIALS):
        shutil.rmtree(be.dir)
        shutil.copytree(base_store, be.dir)
        shutil.rmtree(n.state)
        shutil.copytree(base_state, n.state)
        snaps = sh(f"wsp-find --root {q(n.root)} | wsp-snap --spool {q(n.spool)} --state {q(n.state)}").stdout
        assert all(r[4] != "-" for r in records(snaps))
        (tmp_path / "snaps").write_text(snaps)
        # SIGKILL after a random number of records were healed: in the middle of the run,
        # between one replacement and the next, or inside one
        after = random.randint(1, 9)
        with open(tmp_path / "snaps") as f:
            p = subprocess.Popen([os.path.join(BIN, "wsp-push"), "--state", str(n.state), be.url], stdin=f,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            for _ in range(after):
                p.stdout.readline()
            p.send_signal(signal.SIGKILL)
            killed += p.wait() == -signal.SIGKILL
            p.stdout.close()
        for name in os.listdir(n.spool):
            if not name.startswith("."):
                os.unlink(n.spool / name)
        out, _, p = n.backup()
        assert {r[0] for r in out} == {r[0] for r in records(snaps)}, p.stderr
        # every damaged object is gone, each metric's newest version is good
        sh(f"wsp-pull verify --spool {q(vspool)} {q(be.url)} '*'")
        assert not [k for k in be.keys() if k.endswith(".bad")]
        n.restore_and_compare()
    print(f"\nhealing crash trials: {killed} of {CRASH_TRIALS} killed before the end")


def test_on_file_each_process_checks_the_entries_of_its_own_records(tmp_path):
    """On file:// each wsp-snap checks the entries of its own records as they come (README,
    state): each process of one xargs names what it dropped, a run over part of the tree
    checks that part only, and what it left out is found by the next whole run: nothing is
    vouched for unchecked."""
    be = FileBackend(tmp_path)
    n = Node(be, tmp_path, 20)
    out, _, _ = n.backup()
    order = [r[0] for r in records(sh(f"wsp-find --root {q(n.root)}").stdout)]
    assert len(order) == 20 and {r[5] for r in out} == {"stored"}
    snap = f"xargs -d '\\n' -n 5 -P 2 wsp-snap --spool {q(n.spool)} --state {q(n.state)}"
    push = f"xargs -d '\\n' -n 5 -P 2 wsp-push --state {q(n.state)} {q(be.url)}"

    # One version lost in the first batch of five records and one in the last: two processes
    # each find their own.
    first, last = order[1], order[17]
    for victim in (first, last):
        for k in metric_keys(be, victim):
            be.delete(k)
    p = sh(f"wsp-find --root {q(n.root)} | {snap} | {push}")
    assert by_status(records(p.stdout)) == {"stored": {first, last}, "unchanged": set(order) - {first, last}}, p.stderr
    for victim in (first, last):
        assert f"{victim}: reading it again: the store holds no version of it" in p.stderr, p.stderr
    assert p.stderr.count("1 file(s) the state vouched for are missing") == 2, p.stderr

    # host000's versions lost, and one of host001's: a run over host001 finds that one only...
    inside, outside = "servers.host001.mem.free", sorted(m for m in order if m.startswith("servers.host000."))
    for victim in [inside] + outside:
        for k in metric_keys(be, victim):
            be.delete(k)
    p = sh(f"wsp-find --root {q(n.root)} 'servers.host001.*' | {snap} | {push}")
    assert by_status(records(p.stdout))["stored"] == {inside}, p.stderr
    assert f"{inside}: reading it again" in p.stderr and "servers.host000." not in p.stderr, p.stderr
    # ...and the next whole run stores host000's files again, and only them.
    p = sh(f"wsp-find --root {q(n.root)} | {snap} | {push}")
    assert by_status(records(p.stdout)) == {"stored": set(outside), "unchanged": set(order) - set(outside)}, p.stderr
    for victim in outside:
        assert f"{victim}: reading it again: the store holds no version of it" in p.stderr, p.stderr
    n.restore_and_compare()


def test_on_file_an_entry_is_asked_about_once_however_the_records_are_split(tmp_path):
    """One whisper directory of 40 metrics (one journal) split among 8 processes of 5 records:
    each process asks the store about its own records' entries only (README, state), so the
    run asks 40 times, not 8 x 40."""
    be = FileBackend(tmp_path)
    n = Node(be, tmp_path, 1)
    src = records(sh(f"wsp-find --root {q(n.root)}").stdout)[0][1]
    flat = n.root / "flat"
    flat.mkdir()
    for i in range(40):
        shutil.copyfile(src, flat / f"m{i:02d}.wsp")
    Node.settle()
    out, _, _ = n.backup()
    order = [r[0] for r in records(sh(f"wsp-find --root {q(n.root)} 'flat.*'").stdout)]
    assert len(order) == 40 and len(out) == 41
    victims = order[::5]   # the first record of each process
    for victim in victims:
        for k in metric_keys(be, victim):
            be.delete(k)
    p = sh(f"wsp-find --root {q(n.root)} 'flat.*' | xargs -d '\\n' -n 5 -P 2 wsp-snap --spool {q(n.spool)} --state {q(n.state)}"
           f" | xargs -d '\\n' -n 5 -P 2 wsp-push --state {q(n.state)} {q(be.url)}")
    assert by_status(records(p.stdout)) == {"stored": set(victims), "unchanged": set(order) - set(victims)}, p.stderr
    summaries = [line for line in p.stderr.splitlines() if "the state vouched for are missing" in line]
    assert len(summaries) == 8 and all("1 file(s)" in s and s.endswith("; 4 entries confirmed") for s in summaries), p.stderr
    n.restore_and_compare()

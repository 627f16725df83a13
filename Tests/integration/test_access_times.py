"""Backups and restores leave access times alone: the whisper tree's and the store's (files and
directories are read with O_NOATIME, as restic reads them), so `find -atime` still tells which
metrics someone reads and a run writes back no inode per file it read. Where the kernel refuses
O_NOATIME (a file of another user, without CAP_FOWNER), the tools read as before."""
import os
import subprocess
import sys

import pytest

from conftest import read, records, sh, wsp_files
from test_delta_backup import add_points, make_tree, settle

OLD = 946684800   # 2000-01-01: older than every mtime, so a read under relatime records a new atime
NO_FOWNER = "setpriv --bounding-set -fowner --"


def entries(*dirs):
    """Every file and directory under `dirs` (listing them reads the directories: call it
    before setting the access times)."""
    out = []
    for d in dirs:
        for p, _, fs in os.walk(d):
            out.append(p)
            out += [os.path.join(p, f) for f in fs]
    return out


def age(paths):
    for p in paths:
        os.utime(p, (OLD, os.stat(p).st_mtime))


def assert_reads_record_atimes(tmp_path):
    """The control: on this filesystem a plain read of a file with an old atime records a new
    one (a mount with noatime would make the test below pass whatever the tools do)."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    age([probe])
    read(probe)
    if os.stat(probe).st_atime == OLD:
        pytest.skip("this filesystem records no access times (mounted noatime)")


def pipelines(root, store, spool, state, out, prefix=""):
    backup = (f"{prefix} wsp-find --root {root} | {prefix} wsp-snap --spool {spool} --state {state}"
              f" | {prefix} wsp-push --state {state} {store}")
    restore = (f"{prefix} wsp-pull list {store} '*' | {prefix} wsp-pull get --spool {spool} {store}"
               f" | {prefix} wsp-merge --root {out}")
    return backup, restore


def test_backup_and_restore_of_delta_versions_leave_access_times_alone(tmp_path):
    assert_reads_record_atimes(tmp_path)
    root, store_dir, spool, state, out = (tmp_path / d for d in ("w", "store", "spool", "state", "r"))
    store_dir.mkdir()
    spool.mkdir()
    store = f"file://{store_dir}"
    paths = make_tree(root, [f"a.m{i}" for i in range(6)])
    backup, restore = pipelines(root, store, spool, state, out)
    for seed in (1, 2):
        settle(paths.values())
        sh(backup)
        for p in paths.values():
            add_points(p, seed)
    assert any(f.endswith(".wspd.gz") for f in entries(store_dir)), "no delta version to rebuild"
    settle(paths.values())
    before = entries(root, store_dir)
    age(before)
    # A backup that reads every file (each changed) and every directory of the tree and the
    # store, then a restore that rebuilds the delta versions from the objects in place.
    assert [r[5] for r in records(sh(backup).stdout)] == ["stored"] * 6
    assert [r[1] for r in records(sh(restore).stdout)] == ["created"] * 6
    touched = [p for p in before if os.stat(p).st_atime != OLD]
    assert touched == []
    src, dst = wsp_files(root), wsp_files(out)
    assert sorted(src) == sorted(dst) and all(read(src[k]) == read(dst[k]) for k in src)


def test_files_of_another_user_are_read_without_o_noatime(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root, to read files of another user without CAP_FOWNER")
    root, store_dir, spool, state, out = (tmp_path / d for d in ("w", "store", "spool", "state", "r"))
    store_dir.mkdir()
    spool.mkdir()
    store = f"file://{store_dir}"
    paths = make_tree(root, [f"b.m{i}" for i in range(4)])
    for p in entries(root):
        os.chown(p, 65534, 65534)
    # The control: without CAP_FOWNER the kernel refuses O_NOATIME on these files.
    probe = subprocess.run(NO_FOWNER.split() + [sys.executable, "-c", f"import os; os.open({str(next(iter(paths.values())))!r}, os.O_RDONLY | os.O_NOATIME)"],
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "Operation not permitted" in probe.stderr
    settle(paths.values())
    backup, restore = pipelines(root, store, spool, state, out, prefix=NO_FOWNER)
    assert [r[5] for r in records(sh(backup).stdout)] == ["stored"] * 4
    assert [r[1] for r in records(sh(restore).stdout)] == ["created"] * 4
    src, dst = wsp_files(root), wsp_files(out)
    assert sorted(src) == sorted(dst) and all(read(src[k]) == read(dst[k]) for k in src)

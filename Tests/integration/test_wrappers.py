"""backup.sh / restore.sh: the original tool's options over the pipeline, on file:// stores."""
import os
import re
import subprocess

import pytest


def metrics_in(d):
    """Metric directories of a file:// store (the store marker and temp files start with a dot)."""
    return sorted(n for n in os.listdir(d) if not n.startswith("."))

from conftest import NOW, REPO, change_tree, gen_tree, read, records, wrap, wsp_files

BACKUP = os.path.join(REPO, "scripts", "backup.sh")
RESTORE = os.path.join(REPO, "scripts", "restore.sh")


@pytest.fixture
def common(tmp_path):
    return ["--lockfile", tmp_path / "lock", "--logfile", tmp_path / "log", "--stampfile", tmp_path / "stamp",
            "--state", tmp_path / "state"]


def summary(stderr, word):
    lines = [l for l in stderr.splitlines() if f"whisper-backup: {word}:" in l]
    assert lines, stderr
    return lines[-1]


def test_backup_restore_round_trip_with_original_options(tmp_path, common):
    root = gen_tree(tmp_path / "w", files=60)
    bucket = tmp_path / "bucket"
    p = wrap(BACKUP, "-p", root, "-b", bucket, "--create-bucket", "-f", "3", *common, "disk")
    assert "60 files seen, 60 stored, 0 unchanged, 0 failed" in summary(p.stderr, "backup")
    assert os.path.exists(tmp_path / "stamp")
    log = (tmp_path / "log").read_text()
    assert "backup: 60 files seen" in log and log.splitlines()[0][:4].isdigit()   # timestamped
    p = wrap(BACKUP, "-p", root, "-b", bucket, *common, "backup", "disk")
    assert "0 stored, 60 unchanged" in summary(p.stderr, "backup")
    out = tmp_path / "restored"
    p = wrap(RESTORE, "-p", out, "-b", bucket, "-f", "2", *common, "disk")
    assert "60 created" in summary(p.stderr, "restore")
    src, dst = wsp_files(root), wsp_files(out)
    assert sorted(src) == sorted(dst) and all(read(src[k]) == read(dst[k]) for k in src)



def test_restore_spools_in_memory_when_it_fits_and_where_told_otherwise(tmp_path, common):
    """Without --spool a restore's spool goes to /dev/shm when that is a tmpfs with room for
    twice --spool-max and 256 MiB (on disk every sync of the restore writes it out), and is
    gone after the run; --spool puts it where it says; a backup keeps it on disk."""
    root = gen_tree(tmp_path / "w", files=30)
    bucket = tmp_path / "b"
    p = wrap(BACKUP, "-p", root, "-b", bucket, "--create-bucket", "-d", *common, "disk")
    assert "/dev/shm" not in p.stderr
    st = os.statvfs("/dev/shm") if os.path.isdir("/dev/shm") else None
    fs_type = subprocess.run(["stat", "-f", "-c", "%T", "/dev/shm"], capture_output=True, text=True).stdout.strip()
    fits = fs_type == "tmpfs" and st.f_bavail * st.f_bsize >= 2 * (8 << 20) + (256 << 20)
    out = tmp_path / "r1"
    p = wrap(RESTORE, "-p", out, "-b", bucket, "--spool-max", "8M", "-d", *common, "disk")
    assert "30 created" in summary(p.stderr, "restore")
    spool_lines = [l for l in p.stderr.splitlines() if "whisper-backup: spool " in l]
    assert len(spool_lines) == 1, p.stderr
    memory = re.search(r"spool (/dev/shm/whisper-backup\.\d+\.\w{6}) ", spool_lines[0])
    assert bool(memory) == fits, (fits, spool_lines)
    assert not memory or not os.path.exists(memory.group(1)), "the run removes its memory spool"
    src, dst = wsp_files(root), wsp_files(out)
    assert sorted(src) == sorted(dst) and all(read(src[k]) == read(dst[k]) for k in src)
    # Too large for memory (more than half of it): on disk, in the work directory.
    if st:
        huge = (st.f_bavail * st.f_bsize) // (1 << 20)
        p = wrap(RESTORE, "-p", tmp_path / "r2", "-b", bucket, "--spool-max", f"{huge}M", "-d", *common, "disk")
        assert "spool /dev/shm" not in p.stderr and "30 created" in summary(p.stderr, "restore")
    told = tmp_path / "myspool"
    p = wrap(RESTORE, "-p", tmp_path / "r3", "-b", bucket, "--spool", told, "-d", *common, "disk")
    assert f"spool {told} " in p.stderr and "30 created" in summary(p.stderr, "restore")
    assert os.path.isdir(told) and "/dev/shm" not in p.stderr


def test_metrics_globs_storage_path_and_list_mode(tmp_path, common):
    root = gen_tree(tmp_path / "w", files=40)
    bucket = tmp_path / "b"
    wrap(BACKUP, "-p", root, "-b", bucket, "--create-bucket", "--storage-path", "/node1", "-m",
         "servers.host00{0,1}.cpu.*,*.mem.free", *common, "disk")
    stored = metrics_in(bucket / "node1")
    assert stored == ["servers.host000.cpu.system", "servers.host000.cpu.user", "servers.host000.mem.free",
                      "servers.host001.cpu.system", "servers.host001.cpu.user", "servers.host001.mem.free",
                      "servers.host002.mem.free", "servers.host003.mem.free", "servers.host004.mem.free"]
    p = wrap(RESTORE, "-b", bucket, "--storage-path", "node1", *common, "list", "disk")
    assert "servers.host000.cpu.user\n\tDate: " in p.stdout and "9 compressed whisper databases found." in p.stdout
    wrap(RESTORE, "-p", tmp_path / "r", "-b", bucket, "--storage-path", "node1", "-m", "*.cpu.user", *common, "disk")
    assert sorted(wsp_files(tmp_path / "r")) == ["servers/host000/cpu/user.wsp", "servers/host001/cpu/user.wsp"]


def test_retention_and_date(tmp_path, common):
    root = gen_tree(tmp_path / "w", files=6)
    bucket = tmp_path / "b"
    contents = []
    for i in range(4):
        if i:
            change_tree(root, 1.0, seed=50 + i, now=NOW + 60 * i)
        contents.append({k: read(v) for k, v in wsp_files(root).items()})
        # Full versions only: the test moves one back in time, which a delta's base would not follow.
        wrap(BACKUP, "-p", root, "-b", bucket, "--create-bucket", "-r", "2", "--full-every", "1", *common, "disk")
    assert {len(os.listdir(bucket / m)) for m in metrics_in(bucket)} == {2}
    # Date the older kept version (run 3) in 2020 so -c can pick it.
    for m in metrics_in(bucket):
        older = sorted(os.listdir(bucket / m))[0]
        os.rename(bucket / m / older, bucket / m / ("20200101T000000Z" + older[16:]))
    wrap(RESTORE, "-p", tmp_path / "r3", "-b", bucket, "-c", "2021-01-01T00:00:00+00:00", *common, "disk")
    assert {k: read(v) for k, v in wsp_files(tmp_path / "r3").items()} == contents[2]
    wrap(RESTORE, "-p", tmp_path / "r4", "-b", bucket, *common, "disk")
    assert {k: read(v) for k, v in wsp_files(tmp_path / "r4").items()} == contents[3]
    # Nothing that old: a loud failure, not a silent empty restore.
    p = wrap(RESTORE, "-p", tmp_path / "r", "-b", bucket, "-c", "2000-01-01T00:00:00+00:00", *common, "disk", check=False)
    assert p.returncode == 1 and not wsp_files(tmp_path / "r")
    assert "no version at or before 20000101T000000Z" in p.stderr


def test_noop_changes_nothing(tmp_path, common):
    root = gen_tree(tmp_path / "w", files=10)
    bucket = tmp_path / "b"
    bucket.mkdir()
    p = wrap(BACKUP, "-p", root, "-b", bucket, "-n", *common, "disk")
    assert "would store 10" in summary(p.stderr, "backup") and metrics_in(bucket) == []
    assert not os.path.exists(tmp_path / "stamp")
    p = wrap(BACKUP, "-p", root, *common, "noop")
    assert "10 read" in summary(p.stderr, "noop backup")


def test_usage_errors(tmp_path, common):
    for args in [["disk", "us-east-1"], ["-c", "2026-01-01", "disk"], ["bogus"], [], ["-f", "x", "disk"],
                 ["--storage-path", "x", "file:///tmp"], ["--frobnicate", "disk"], ["swift", "RegionOne"]]:
        p = wrap(BACKUP, *common, *args, check=False)
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.strip(), args
    p = wrap(RESTORE, "-r", "3", *common, "disk", check=False)
    assert p.returncode == 2 and "-r/--retention is for backup" in p.stderr
    assert "USAGE: whisper-backup" in wrap(BACKUP, "--help").stdout


def test_lock_excludes_a_second_run(tmp_path, common):
    root = gen_tree(tmp_path / "w", files=2)
    lock = tmp_path / "lock"
    holder = subprocess.Popen(["flock", str(lock), "sh", "-c", "echo locked; exec sleep 30"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"   # the lock is held from here on
        p = wrap(BACKUP, "-p", root, "-b", tmp_path / "b", "--create-bucket", *common, "--locktimeout", "1", "disk", check=False)
        assert p.returncode == 1 and "lock" in p.stderr
        assert not os.path.exists(tmp_path / "b") or metrics_in(tmp_path / "b") == []
    finally:
        holder.kill()
        holder.wait()


def test_failed_file_fails_the_run_and_skips_the_stamp(tmp_path, common):
    root = gen_tree(tmp_path / "w", files=5)
    (root / "broken.wsp").write_bytes(b"\0" * 10)
    p = wrap(BACKUP, "-p", root, "-b", tmp_path / "b", "--create-bucket", *common, "disk", check=False)
    assert p.returncode == 1
    assert "5 stored" in summary(p.stderr, "backup") and "1 failed" in summary(p.stderr, "backup")
    assert any(l.endswith("too short for a whisper header (10 bytes)") for l in p.stderr.splitlines())
    assert not os.path.exists(tmp_path / "stamp")


def test_purge_keeps_idle_metric_for_days_after_it_disappears(tmp_path, common):
    root = gen_tree(tmp_path / "w", files=8)
    bucket = tmp_path / "b"
    wrap(BACKUP, "-p", root, "-b", bucket, "--create-bucket", *common, "disk")
    gone = root / "servers" / "host000" / "cpu" / "user.wsp"
    os.unlink(gone)
    # The idle metric's backup is old, but the clock starts when a run first sees it gone.
    p = wrap(BACKUP, "-p", root, "-b", bucket, "-x", "0", *common, "disk")
    assert "servers.host000.cpu.user" in metrics_in(bucket)
    marker = [f for f in os.listdir(bucket / "servers.host000.cpu.user") if f.startswith("gone-since.")]
    assert len(marker) == 1
    p = wrap(BACKUP, "-p", root, "-b", bucket, "-x", "0", *common, "disk")
    assert "servers.host000.cpu.user" not in metrics_in(bucket)
    assert len(metrics_in(bucket)) == 7

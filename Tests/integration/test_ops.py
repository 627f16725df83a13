"""Watching the wrappers: the node_exporter textfile (read back by a real node_exporter), the
figures sent to a real carbon-cache (read back with whisper-fetch), progress on a terminal
and not in a file, log lines with timestamp, tool and metric, and errors that say the fix."""
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import BIN, REPO, gen_tree, run, tool

WRAPPER = os.path.join(REPO, "scripts", "whisper-backup.sh")
STAMP_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"


def wrap(*args, check=True, env=None, timeout=300):
    e = dict(os.environ, WSP_BIN=BIN)
    if env:
        e.update(env)
    p = subprocess.run(["bash", WRAPPER, *map(str, args)], capture_output=True, text=True, env=e, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} -> {p.returncode}\n{p.stderr[-4000:]}")
    return p


@pytest.fixture
def common(tmp_path):
    return ["--lockfile", tmp_path / "lock", "--logfile", tmp_path / "log", "--stampfile", tmp_path / "stamp",
            "--state", tmp_path / "state"]


def samples(text):
    """Parses a Prometheus text exposition strictly: HELP and TYPE once per family, before its
    samples, families not interleaved; returns {(name, frozenset(labels)): value}."""
    out, families, current = {}, [], None
    for line in text.splitlines():
        m = re.fullmatch(r"# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)", line)
        if m:
            if m.group(1) == "HELP":
                assert m.group(2) not in families, f"family {m.group(2)} twice"
                families.append(m.group(2))
                current = m.group(2)
            else:
                assert m.group(2) == current and m.group(3) == "gauge", line
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*",?)*)\} (-?[0-9.eE+]+)', line)
        assert m, f"not a sample line: {line!r}"
        assert m.group(1) == current, f"{m.group(1)} outside its family"
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"', m.group(2)))
        key = (m.group(1), labels)
        assert key not in out, f"duplicate sample {line}"
        out[key] = float(m.group(3))
    return out


def value(s, name, **labels):
    return s[("whisper_backup_" + name, frozenset(labels.items()))]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape_with_node_exporter(directory):
    """Runs Debian's prometheus-node-exporter on the textfile directory (loopback, a free port)
    and returns its /metrics page."""
    exe = shutil.which("prometheus-node-exporter")
    assert exe, "prometheus-node-exporter missing (scripts/deps.sh --test installs it)"
    port = free_port()
    proc = subprocess.Popen([exe, "--collector.disable-defaults", "--collector.textfile",
                             f"--collector.textfile.directory={directory}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    return r.read().decode()
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(proc.stderr.read().decode())
                time.sleep(0.1)
        raise AssertionError("node_exporter did not answer")
    finally:
        proc.terminate()
        proc.wait(10)


def test_metrics_file_is_a_valid_textfile_kept_across_runs(tmp_path, common):
    root = gen_tree(tmp_path / "w", files=10)
    bucket, prom_dir = tmp_path / "b", tmp_path / "textfile"
    prom_dir.mkdir()
    prom = prom_dir / "whisper-backup.prom"
    before = time.time()
    wrap("-p", root, "-b", bucket, "--create-bucket", *common, "--metrics-file", prom, "backup", "disk")
    s = samples(prom.read_text())
    assert value(s, "last_run_success", mode="backup") == 1
    assert value(s, "last_run_exit_code", mode="backup") == 0
    assert value(s, "last_run_files", mode="backup", status="seen") == 10
    assert value(s, "last_run_files", mode="backup", status="stored") == 10
    assert value(s, "last_run_files", mode="backup", status="failed") == 0
    assert value(s, "last_run_bytes", mode="backup", direction="read") == sum(
        os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
    assert value(s, "last_run_bytes", mode="backup", direction="written") > 0
    ok_time = value(s, "last_success_timestamp_seconds", mode="backup")
    assert before - 1 <= ok_time <= time.time() + 1
    assert 0 < value(s, "last_run_duration_seconds", mode="backup") < 300

    # A failed run: success 0, exit code 1, the last success time kept.
    (root / "broken.wsp").write_bytes(b"\0" * 10)
    time.sleep(1.1)
    p = wrap("-p", root, "-b", bucket, *common, "--metrics-file", prom, "backup", "disk", check=False)
    assert p.returncode == 1
    s = samples(prom.read_text())
    assert value(s, "last_run_success", mode="backup") == 0
    assert value(s, "last_run_exit_code", mode="backup") == 1
    assert value(s, "last_run_files", mode="backup", status="failed") == 1
    assert value(s, "last_run_files", mode="backup", status="unchanged") == 10
    assert value(s, "last_success_timestamp_seconds", mode="backup") == ok_time
    assert value(s, "last_run_timestamp_seconds", mode="backup") > ok_time

    # A restore into the same file keeps the backup's samples beside its own.
    wrap("-p", tmp_path / "r", "-b", bucket, *common, "--metrics-file", prom, "restore", "disk")
    s = samples(prom.read_text())
    assert value(s, "last_run_files", mode="restore", status="created") == 10
    assert value(s, "last_run_success", mode="restore") == 1
    assert value(s, "last_run_success", mode="backup") == 0
    # Written by rename: nothing else is left in node_exporter's directory.
    assert os.listdir(prom_dir) == ["whisper-backup.prom"]

    # The consumer agrees: node_exporter reads it without a scrape error.
    page = scrape_with_node_exporter(prom_dir)
    assert "node_textfile_scrape_error 0" in page, page[-2000:]
    assert 'whisper_backup_last_run_files{mode="restore",status="created"} 10' in page
    assert re.search(r'whisper_backup_last_success_timestamp_seconds\{mode="backup"\} \S+', page)


def test_a_run_stopped_early_still_reports(tmp_path, common):
    """A run that cannot take the lock exits 1 and says so in the figures."""
    root = gen_tree(tmp_path / "w", files=2)
    prom = tmp_path / "m.prom"
    holder = subprocess.Popen(["flock", str(tmp_path / "lock"), "sleep", "30"])
    try:
        time.sleep(0.3)
        p = wrap("-p", root, "-b", tmp_path / "b", "--create-bucket", *common, "--locktimeout", "1",
                 "--metrics-file", prom, "backup", "disk", check=False)
    finally:
        holder.kill()
        holder.wait()
    assert p.returncode == 1 and "fuser -v" in p.stderr
    s = samples(prom.read_text())
    assert value(s, "last_run_exit_code", mode="backup") == 1
    assert ("whisper_backup_last_success_timestamp_seconds", frozenset({("mode", "backup")})) not in s


def whisper_fetch():
    for name in ("whisper-fetch.py", "whisper-fetch"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("whisper-fetch missing (graphite-carbon or the whisper package provides it)")


def test_carbon_receives_the_figures(tmp_path, common):
    carbon = os.environ.get("WSP_TEST_CARBON")
    whisper_dir = os.environ.get("WSP_TEST_CARBON_WHISPER_DIR")
    if not carbon or not whisper_dir:
        pytest.skip("no carbon-cache: scripts/test.sh starts one (scripts/servers/carbon.sh)")
    root = gen_tree(tmp_path / "w", files=7)
    prefix = f"wsptest.ops{os.getpid()}x{int(time.time())}"
    before = int(time.time())
    wrap("-p", root, "-b", tmp_path / "b", "--create-bucket", *common, "--carbon", carbon,
         "--carbon-prefix", prefix, "backup", "disk")
    base = os.path.join(whisper_dir, *prefix.split("."), "backup")
    wanted = {"files/seen.wsp": 7, "files/stored.wsp": 7, "files/failed.wsp": 0, "success.wsp": 1,
              "exit_code.wsp": 0, "failures.wsp": 0}
    deadline = time.time() + 60
    while time.time() < deadline and not all(os.path.exists(os.path.join(base, f)) for f in
                                               list(wanted) + ["last_success.wsp", "duration.wsp", "bytes/read.wsp"]):
        time.sleep(0.2)

    def fetched(rel):
        p = subprocess.run([whisper_fetch(), "--from", str(before - 60), "--until", str(int(time.time()) + 60),
                            os.path.join(base, rel)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return [float(v) for _, v in (l.split("\t") for l in p.stdout.splitlines()) if v != "None"]

    # carbon-cache writes points as it drains its cache: wait for each value, not just the file.
    for rel, want in wanted.items():
        while time.time() < deadline and not fetched(rel):
            time.sleep(0.2)
        assert fetched(rel) == [want], rel
    last = fetched("last_success.wsp")
    assert len(last) == 1 and before - 1 <= last[0] <= time.time() + 1
    assert fetched("bytes/read.wsp")[0] > 0


def pty_run(cmd, env):
    """Runs cmd under a pseudo-terminal (script -qec); stdout holds what the terminal showed,
    carriage returns kept."""
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, env=env, timeout=300)
    p.stdout = p.stdout.decode(errors="replace")
    return p


def test_progress_on_a_terminal_only(tmp_path, common):
    root = gen_tree(tmp_path / "w", files=8)
    env = dict(os.environ, WSP_BIN=BIN)
    cmd = f"bash {WRAPPER} -p {root} -b {tmp_path}/b --create-bucket " + " ".join(map(str, common)) + " backup disk"
    # Under a pseudo-terminal (script -qc): files done / total, rate and ETA, redrawn in place.
    p = pty_run(cmd, env)
    assert p.returncode == 0, p.stdout
    assert re.search(r"\rwhisper-backup: backup: \d+/8 files \(\d+%\), .*files/s, .*ETA ", p.stdout), p.stdout
    assert "8 files seen, 8 stored, 0 unchanged, 0 failed" in p.stdout
    # stderr into a file: no progress, only the log lines.
    with open(tmp_path / "err", "w") as err:
        p = subprocess.run(["bash", "-c", cmd], stdout=subprocess.PIPE, stderr=err, text=True, env=env, timeout=300)
    assert p.returncode == 0
    text = (tmp_path / "err").read_text()
    assert "\r" not in text and "ETA" not in text and "\x1b" not in text
    assert re.fullmatch(STAMP_RE + r" whisper-backup: backup: 8 files seen, 0 stored, 8 unchanged, .*\n", text), text
    # The tools alike: a progress line with the total on a terminal, nothing in a file.
    files = tmp_path / "files"
    files.write_text(run("wsp-find", "--root", root, check=True).stdout)
    p = pty_run(f"{tool('wsp-snap')} --spool {tmp_path}/sp < {files} > /dev/null", env)
    assert re.search(r"\rwsp-snap: \d/8 records \(\d+%\), 0 failed, .* in, .* out, .*ETA", p.stdout), p.stdout
    assert "wsp-snap: 8 records (8 snapped), 0 failed" in p.stdout
    p = subprocess.run(f"{tool('wsp-snap')} --spool {tmp_path}/sp2 < {files} > /dev/null 2> {tmp_path}/err2",
                       shell=True, timeout=300)
    assert p.returncode == 0 and (tmp_path / "err2").read_text() == ""


def test_log_lines_carry_time_tool_and_metric(tmp_path, common):
    root = gen_tree(tmp_path / "w", files=3)
    (root / "servers" / "broken.wsp").write_bytes(b"\0" * 10)
    p = wrap("-p", root, "-b", tmp_path / "b", "--create-bucket", *common, "backup", "disk", check=False)
    assert p.returncode == 1
    log = (tmp_path / "log").read_text().splitlines()
    assert log and all(re.match(STAMP_RE + r" (whisper-backup|wsp-[a-z]+): ", l) for l in log), log
    assert any(re.fullmatch(STAMP_RE + r" wsp-snap: servers\.broken: .*too short.*", l) for l in log), log
    assert re.search(STAMP_RE + r" whisper-backup: backup: 4 files seen, 3 stored, 0 unchanged, 1 failed, "
                     r"0 versions removed, \d+ bytes read, \d+ bytes written, [0-9.]+ s$", log[-1]), log[-1]
    # --quiet keeps the failures and the summary on stderr, and the log complete.
    p = wrap("-p", root, "-b", tmp_path / "b", *common, "-q", "backup", "disk", check=False)
    lines = p.stderr.splitlines()
    assert any("wsp-snap: servers.broken:" in l for l in lines) and "1 failed" in lines[-1]
    # ... and a run where all went well says nothing (cron mails nothing), but logs its summary.
    os.unlink(root / "servers" / "broken.wsp")
    p = wrap("-p", root, "-b", tmp_path / "b", *common, "-q", "backup", "disk")
    assert p.stderr == ""
    assert re.search(r"whisper-backup: backup: 3 files seen, 0 stored, 3 unchanged, 0 failed", (tmp_path / "log").read_text().splitlines()[-1])


def test_monitoring_options_are_checked_before_anything_runs(tmp_path, common):
    for args, said in [(["--carbon", "nohost", "backup", "disk"], "HOST:PORT"),
                       (["--carbon", "h:2003", "--carbon-prefix", "a..b", "backup", "disk"], "--carbon-prefix"),
                       (["--metrics-file", tmp_path / "nodir" / "x.prom", "backup", "disk"], "node-exporter"),
                       (["--metrics-file", tmp_path / "x.txt", "backup", "disk"], "*.prom"),
                       (["--metrics-file", tmp_path / "x.prom", "list", "disk"], "not list")]:
        p = wrap(*common, *args, check=False)
        assert p.returncode == 2 and said in p.stderr, (args, p.stderr)
    assert not os.path.exists(tmp_path / "log") or (tmp_path / "log").read_text() == ""


def test_unreachable_carbon_is_reported_not_fatal(tmp_path, common):
    root = gen_tree(tmp_path / "w", files=2)
    p = wrap("-p", root, "-b", tmp_path / "b", "--create-bucket", *common, "--carbon", f"127.0.0.1:{free_port()}",
             "backup", "disk")
    assert re.search(r"whisper-backup: cannot send figures to carbon at 127\.0\.0\.1:\d+: Connection refused\n", p.stderr), p.stderr
    assert p.stderr.count("\n") == 2, p.stderr   # that line and the summary, nothing from bash


def test_dry_run_of_a_first_backup_creates_nothing(tmp_path, common):
    """-n with --create-bucket against a store that does not exist yet: a dry run against the
    empty store it would create, not an error, and nothing created."""
    root = gen_tree(tmp_path / "w", files=3)
    p = wrap("-n", "-p", root, "-b", tmp_path / "new" / "bucket", "--create-bucket", *common, "backup", "disk")
    assert "3 files seen, would store 3" in p.stderr and not os.path.exists(tmp_path / "new")
    p = run("wsp-pull", "list", f"file://{tmp_path}/new", "*")
    assert p.returncode == 2 and "pass --create-bucket" in p.stderr


def test_errors_suggest_the_fix(tmp_path):
    p = run("wsp-push", f"file://{tmp_path}/missing", input="")
    assert p.returncode == 2 and "pass --create-bucket" in p.stderr
    p = run("wsp-push", "--create-bucket", f"file://{tmp_path}/made", input="")
    assert p.returncode == 0 and os.path.isdir(tmp_path / "made")
    (tmp_path / "afile").write_text("")
    p = wrap("--logfile", tmp_path / "afile" / "log", "-b", tmp_path, "backup", "disk", check=False)
    assert p.returncode == 2 and "--nolog" in p.stderr


def test_every_help_shows_an_example_pipeline():
    for cmd in [["wsp-find"], ["wsp-snap"], ["wsp-push"], ["wsp-pull"], ["wsp-pull", "list"], ["wsp-pull", "get"],
                ["wsp-merge"], ["wsp-prune"]]:
        out = run(*cmd, "--help", check=True).stdout
        assert "EXAMPLE" in out and "|" in out.split("EXAMPLE", 1)[1], cmd
    assert "Examples:" in wrap("--help").stdout

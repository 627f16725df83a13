"""make install, make uninstall and the Debian package: the installed commands run a backup and
a restore with no build tree in sight, man renders every page, the completions load, and the
systemd units pass systemd-analyze verify.

One release build serves the whole session (the `installed` fixture): on 2 cores it takes a
minute or two the first time, seconds when .build-dist is current."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO, gen_tree, read, wsp_files

TOOLS = ["wsp-find", "wsp-snap", "wsp-push", "wsp-pull", "wsp-merge", "wsp-prune"]
COMMANDS = TOOLS + ["whisper-backup", "whisper-restore"]
PAGES = TOOLS + ["whisper-backup", "whisper-restore"]


def clean_env(bindir, home):
    """An environment with the installed bindir and the system's directories only: no build
    tree on PATH and no WSP_BIN (the wrapper would prefer it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSP_")}
    env["PATH"] = f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin"
    env["HOME"] = str(home)
    env["TMPDIR"] = str(home)
    return env


def run(args, env, check=True, **kw):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, timeout=600, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} -> {p.returncode}\nstdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}")
    return p


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """`make install` into a temp prefix (the settings file into a temp SYSCONFDIR)."""
    base = tmp_path_factory.mktemp("install")
    prefix, etc = base / "prefix", base / "etc"
    p = subprocess.run(["make", "-C", REPO, "install", f"PREFIX={prefix}", f"SYSCONFDIR={etc}"],
                       capture_output=True, text=True, timeout=1500)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return prefix, etc


def backup_and_restore(bindir, work, env):
    root = gen_tree(work / "whisper", files=12)
    bucket, out = work / "bucket", work / "restored"
    files = ["--logfile", work / "log", "--lockfile", work / "lock", "--stampfile", work / "stamp", "--state", work / "state"]
    p = run([f"{bindir}/whisper-backup", "-p", root, "-b", bucket, "--create-bucket", *files, "backup", "disk"], env)
    assert "12 files seen, 12 stored, 0 unchanged, 0 failed" in p.stderr
    p = run([f"{bindir}/whisper-restore", "-p", out, "-b", bucket, *files, "disk"], env)
    assert "12 created" in p.stderr
    src, dst = wsp_files(root), wsp_files(out)
    assert sorted(src) == sorted(dst) and all(read(src[k]) == read(dst[k]) for k in src)
    assert os.path.exists(work / "stamp")


def test_installed_commands_back_up_and_restore_without_the_build_tree(installed, tmp_path):
    prefix, etc = installed
    bindir = prefix / "bin"
    env = clean_env(bindir, tmp_path)
    for c in COMMANDS:
        assert os.access(bindir / c, os.X_OK), c
    assert run(["which", "wsp-snap"], env).stdout.strip() == f"{bindir}/wsp-snap"
    assert run([bindir / "whisper-backup", "--version"], env).stdout.startswith("whisper-backup ")
    # The Swift runtime is linked in: nothing from the toolchain at run time.
    ldd = run(["ldd", bindir / "wsp-pull"], env).stdout
    assert "/opt/swift" not in ldd and "libswift" not in ldd and "libFoundation" not in ldd, ldd
    # A copy of the installed tree, far from the repository, runs just the same.
    moved = tmp_path / "moved"
    shutil.copytree(bindir, moved)
    backup_and_restore(moved, tmp_path, clean_env(moved, tmp_path))
    # The settings file the service reads was created from the example, readable by root only.
    default = etc / "default" / "whisper-backup"
    assert read(default) == read(os.path.join(REPO, "contrib", "default", "whisper-backup"))
    assert os.stat(default).st_mode & 0o777 == 0o600
    assert read(etc / "logrotate.d" / "whisper-backup") == read(os.path.join(REPO, "contrib", "logrotate.d", "whisper-backup"))


def test_man_renders_every_page(installed, tmp_path):
    prefix, _ = installed
    mandir = prefix / "share" / "man" / "man1"
    env = clean_env(prefix / "bin", tmp_path)
    env["MANWIDTH"] = "100"
    for page in PAGES:
        p = run(["man", "-l", mandir / f"{page}.1"], env, cwd=mandir.parent)
        assert p.stderr == "", (page, p.stderr)
        assert "NAME" in p.stdout and "SYNOPSIS" in p.stdout, page
    # Pages say what --help says: every option of a tool, every option of the wrapper.
    snap = run(["man", "-l", mandir / "wsp-snap.1"], env).stdout
    for opt in ["--spool-max", "--lock-timeout", "--level", "--progress", "EXIT STATUS", "EXAMPLE"]:
        assert opt in snap, opt
    page = run(["man", "-l", mandir / "whisper-backup.1"], env).stdout
    helptext = run([prefix / "bin" / "whisper-backup", "--help"], env).stdout
    opts = {w.rstrip(",") for line in helptext.splitlines() if line.lstrip().startswith("-")
            for w in line.split()[:2] if w.startswith("-")}
    assert len(opts) > 30
    missing = [o for o in opts if o not in page]
    assert not missing, missing
    # man finds them by name through MANPATH, whisper-restore through its .so link.
    env["MANPATH"] = str(prefix / "share" / "man")
    assert re.search(r"NAME\s+whisper-backup,\s+whisper-restore", run(["man", "whisper-restore"], env).stdout)


def test_completions_load(installed, tmp_path):
    prefix, _ = installed
    bash_dir = prefix / "share" / "bash-completion" / "completions"
    zsh_dir = prefix / "share" / "zsh" / "site-functions"
    env = clean_env(prefix / "bin", tmp_path)
    script = "".join(f"source {bash_dir}/{c}; " for c in TOOLS + ["whisper-backup"]) + "complete -p"
    out = run(["bash", "-c", script], env).stdout
    for c in COMMANDS:
        assert f" {c}" in out, c
    # The wrapper's completion offers its options, modes and backends.
    # Called as bash calls a completion function: COMP_LINE, COMP_POINT, and (command, word, previous word).
    def complete(*words):
        return ("COMPREPLY=(); COMP_WORDS=(" + " ".join(f"'{w}'" for w in words) + f"); COMP_CWORD={len(words) - 1}; "
                f"COMP_LINE='{' '.join(words)}'; COMP_POINT=${{#COMP_LINE}}; "
                f"_whisper-backup {words[0]} '{words[-1]}' '{words[-2]}'; echo ${{COMPREPLY[*]}}; ")
    probe = (f"source {bash_dir}/whisper-backup; " + complete("whisper-backup", "--metr")
             + complete("whisper-backup", "-q", "") + complete("whisper-restore", ""))
    lines = run(["bash", "-c", probe], env).stdout.splitlines()
    assert lines == ["--metrics --metrics-file", "backup restore purge list", "disk s3 gcs swift noop file:// s3:// swift://"]
    # zsh parses every completion function and registers them with compinit.
    zsh = shutil.which("zsh")
    assert zsh, "zsh missing (scripts/deps.sh --test installs it)"
    for f in os.listdir(zsh_dir):
        run([zsh, "-n", zsh_dir / f], env)
    out = run([zsh, "-fc", f"fpath=({zsh_dir} $fpath); autoload -U compinit; compinit -u -d {tmp_path}/zcd; "
                          "print -l ${_comps[wsp-find]} ${_comps[whisper-backup]} ${_comps[whisper-restore]}"], env).stdout
    assert out.split() == ["_wsp-find", "_whisper-backup", "_whisper-backup"], out


def test_systemd_units_verify(installed, tmp_path):
    prefix, etc = installed
    units = prefix / "lib" / "systemd" / "system"
    service = (units / "whisper-backup.service").read_text()
    assert f"ExecStart={prefix}/bin/whisper-backup $WHISPER_BACKUP_ARGS" in service
    assert f"EnvironmentFile={etc}/default/whisper-backup" in service
    assert "RandomizedDelaySec=" in (units / "whisper-backup.timer").read_text()
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing (scripts/deps.sh --test installs systemd)"
    env = dict(os.environ, MANPATH=str(prefix / "share" / "man"))   # verify runs `man` on Documentation=
    p = subprocess.run([analyze, "verify", units / "whisper-backup.service", units / "whisper-backup.timer"],
                       capture_output=True, text=True, env=env, timeout=120)
    ours = [l for l in (p.stdout + p.stderr).splitlines() if "whisper-backup" in l]
    assert p.returncode == 0 and not ours, p.stdout + p.stderr
    # The service's command line, as systemd would run it with the shipped settings (a dry run
    # of a real backup: the example's paths replaced by temp ones).
    root = gen_tree(tmp_path / "w", files=3)
    args = f"-p {root} -b {tmp_path}/b --create-bucket --logfile {tmp_path}/log --lockfile {tmp_path}/lock " \
           f"--stampfile {tmp_path}/stamp --state {tmp_path}/state --metrics-file {tmp_path}/m.prom backup disk"
    env = clean_env(prefix / "bin", tmp_path)
    env["WHISPER_BACKUP_ARGS"] = args
    run(["bash", "-c", f"exec {prefix}/bin/whisper-backup $WHISPER_BACKUP_ARGS"], env)
    assert "whisper_backup_last_run_success{mode=\"backup\"} 1" in (tmp_path / "m.prom").read_text()


def test_cron_example_is_installed_with_the_bindir(installed):
    prefix, _ = installed
    cron = (prefix / "share" / "doc" / "whisper-backup" / "cron.d-whisper-backup").read_text()
    line = [l for l in cron.splitlines() if l and not l.startswith("#") and "=" not in l.split()[0]][0]
    assert line.split()[:6] == ["30", "2", "*", "*", "*", "root"]
    assert f"{prefix}/bin/whisper-backup --splay 3600" in line


def test_uninstall_removes_what_install_put(installed, tmp_path):
    prefix, etc = installed
    copy, copy_etc = tmp_path / "prefix", tmp_path / "etc"
    shutil.copytree(prefix, copy, symlinks=True)
    shutil.copytree(etc, copy_etc)
    with open(copy_etc / "default" / "whisper-backup", "a") as f:
        f.write("# edited\n")
    p = subprocess.run(["make", "-C", REPO, "uninstall", f"PREFIX={copy}", f"SYSCONFDIR={copy_etc}"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    left = [os.path.join(d, f) for d, _, fs in os.walk(copy) for f in fs]
    assert left == [], left
    assert "kept" in p.stdout and os.path.exists(copy_etc / "default" / "whisper-backup")
    assert not os.path.exists(copy_etc / "logrotate.d" / "whisper-backup")


def dpkg_status(name):
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else ""


def test_debian_package_installs_runs_and_removes(installed, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("dpkg -i needs root")
    assert "installed" not in dpkg_status("whisper-backup").split(), "whisper-backup is already installed here"
    for f in ["/etc/default/whisper-backup", "/etc/logrotate.d/whisper-backup", "/usr/bin/whisper-backup"]:
        assert not os.path.exists(f), f"{f} exists (left by a make install?): the package would take it over"
    p = subprocess.run(["bash", os.path.join(REPO, "packaging", "build-deb.sh"), "--out", tmp_path / "dist"],
                       capture_output=True, text=True, timeout=900, cwd=REPO)
    assert p.returncode == 0, p.stderr
    deb = p.stdout.strip().splitlines()[-1]
    info = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True, text=True, check=True).stdout
    for lib in ["libcurl4", "libdeflate0", "zlib1g", "libssl3", "libc6"]:
        assert lib in info, info
    assert "swift" not in info and "-dev" not in info, info
    try:
        p = subprocess.run(["dpkg", "-i", deb], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        env = clean_env("/usr/bin", tmp_path)
        for c in COMMANDS:
            assert os.path.exists(f"/usr/bin/{c}"), c
        assert run(["wsp-find", "--version"], env).stdout.strip()
        backup_and_restore("/usr/bin", tmp_path, env)
        assert "/usr/share/man/man1/whisper-backup.1.gz" in run(["man", "-w", "whisper-backup"], env).stdout
        assert os.path.exists("/usr/lib/systemd/system/whisper-backup.timer")
        assert os.path.exists("/etc/default/whisper-backup")
        assert os.path.exists("/etc/logrotate.d/whisper-backup")
        if shutil.which("logrotate"):
            run(["logrotate", "-d", "/etc/logrotate.d/whisper-backup"], env)
    finally:
        p = subprocess.run(["dpkg", "-P", "whisper-backup"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert dpkg_status("whisper-backup") in ("", "unknown ok not-installed")
    for c in COMMANDS:
        assert not os.path.exists(f"/usr/bin/{c}"), c
    assert not os.path.exists("/etc/default/whisper-backup")
    assert not os.path.exists("/etc/logrotate.d/whisper-backup")

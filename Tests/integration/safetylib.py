"""Helpers for the safety suites (crash, signal, fault, bad-input, legacy and live tests):
independent checks of a store and a whisper tree, a Python tool layout builder, and
process bookkeeping. Nothing here uses the tools under test to check them."""
import datetime
import gzip
import hashlib
import os
import signal
import struct
import subprocess
import time
import zlib

TEMP_PREFIX = ".wsp-tmp."


def trials(default):
    """How many random trials a suite runs: WSP_TORTURE_TRIALS scales the default run up."""
    n = os.environ.get("WSP_TORTURE_TRIALS")
    return int(n) if n else default


# ---- whisper files -------------------------------------------------------------------------

def whisper_problem(data):
    """Why `data` is not a valid whisper file (the checks whisper.py's header reader and the
    tools make: header, archive table, offsets and sizes that tile the file), or None."""
    if len(data) < 16:
        return "shorter than a whisper header"
    agg, max_ret, xff, count = struct.unpack(">LLfL", data[:16])
    if not 1 <= agg <= 8:
        return f"aggregation type {agg}"
    if count < 1 or 16 + 12 * count > len(data):
        return f"archive count {count}"
    expected = 16 + 12 * count
    for i in range(count):
        offset, spp, points = struct.unpack(">LLL", data[16 + 12 * i:28 + 12 * i])
        if offset != expected or spp < 1 or points < 1:
            return f"archive {i}: offset {offset} (expected {expected}), {spp} s/point, {points} points"
        expected += 12 * points
    if expected != len(data):
        return f"archives end at {expected}, file is {len(data)} bytes"
    return None


def archive_points(data):
    """[(archive index, slot index, 12 bytes)] of every slot of a whisper file."""
    _, _, _, count = struct.unpack(">LLfL", data[:16])
    out = []
    for i in range(count):
        offset, _, points = struct.unpack(">LLL", data[16 + 12 * i:28 + 12 * i])
        for j in range(points):
            out.append((i, j, data[offset + 12 * j:offset + 12 * j + 12]))
    return out


def slotwise_between(crashed, before, after):
    """True when the header is unchanged and every slot of `crashed` is as in `before` or as
    in `after` (the complete merge), or is a slot the merge fills whose timestamp is not
    written yet (its value then means nothing: whisper reads a slot only by its timestamp).
    That is what a backfill interrupted part way may leave."""
    if len(crashed) != len(before) or len(after) != len(before):
        return False
    if whisper_problem(crashed) is not None:
        return False
    hdr = 16 + 12 * struct.unpack(">L", before[12:16])[0]
    if crashed[:hdr] != before[:hdr]:
        return False
    for (_, _, c), (_, _, b), (_, _, a) in zip(archive_points(crashed), archive_points(before), archive_points(after)):
        if c == b or c == a:
            continue
        if c[:4] == b[:4] and b[:4] != a[:4]:
            continue   # value written, timestamp not yet: still empty
        return False
    return True


# ---- stores -----------------------------------------------------------------------------------

def store_dir(url):
    assert url.startswith("file://"), url
    return url[len("file://"):]


def store_objects(directory):
    """{key: path} of what a listing of a file:// store shows (its own temp files skipped)."""
    out = {}
    for d, dirs, fs in os.walk(directory):
        dirs[:] = [x for x in dirs if not x.startswith(TEMP_PREFIX)]
        for f in fs:
            if f.startswith(TEMP_PREFIX):
                continue
            p = os.path.join(d, f)
            out[os.path.relpath(p, directory)] = p
    return out


def spool_leftovers(spool):
    """What a spool must not hold once a run has followed a crash: a spool file that is not a
    whole gzip (a producer killed while it wrote; such files have their final name from the
    start) and a reservation in the ledger (a run that ended releases its own, and a dead
    process's lapse at the next update). Finished files of a killed run may stay: a record may
    name them."""
    bad = []
    for f in os.listdir(str(spool)):
        if f.endswith(".wsp.gz"):
            try:
                with gzip.open(os.path.join(str(spool), f)) as g:
                    g.read()
            except (OSError, EOFError) as e:
                bad.append(f"{f}: {e}")
    ledger = os.path.join(str(spool), ".wsp-spool.lock")
    if os.path.exists(ledger):
        bad += [line for line in open(ledger).read().splitlines() if line.startswith("resv ")]
    return bad


def temp_files(*roots):
    """Temp files the tools make (`.wsp-tmp.*`), under any of `roots`."""
    out = []
    for root in roots:
        for d, _, fs in os.walk(str(root)):
            out += [os.path.join(d, f) for f in fs if f.startswith(TEMP_PREFIX)]
    return out


def object_problem(key, blob, sha1=None):
    """Why a stored object fails verification (gzip, the hash in its key or its `.sha1`,
    the whisper header), or None."""
    try:
        data = gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as e:
        return f"gzip: {e}"
    name = os.path.basename(key)
    if sha1 is not None:
        if hashlib.sha1(data).hexdigest() != sha1:
            return "SHA-1 mismatch"
    else:
        digest = name.split(".")[1]
        if hashlib.sha256(data).hexdigest() != digest:
            return "SHA-256 mismatch"
    return whisper_problem(data)


def bad_versions(directory):
    """{key: problem} for every version a listing of the file:// store shows that fails
    verification. Must be empty after any crash."""
    objs = store_objects(directory)
    bad = {}
    for key, path in objs.items():
        if not key.endswith(".wsp.gz"):
            continue
        with open(path, "rb") as f:
            blob = f.read()
        name = os.path.basename(key)
        if ":" in name:   # legacy: verified with its .sha1 (a version without one is not listed)
            sha_key = key[:-len(".wsp.gz")] + ".sha1"
            if sha_key not in objs:
                continue
            with open(objs[sha_key]) as f:
                problem = object_problem(key, blob, f.read().strip())
        else:
            problem = object_problem(key, blob)
        if problem:
            bad[key] = problem
    return bad


# ---- the Python whisper-backup's layout --------------------------------------------------------

def legacy_time(seconds):
    """The original's key timestamp: `2015-01-26T15:41:55+00:00`."""
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def legacy_put(bucket_dir, storage_path, metric, seconds, data):
    """Stores one version as the Python tool's disk backend did: the key is storage path +
    metric + "/" + time, joined to the bucket directory with "/" (so a storage path that
    starts with "/" lands in the same place); `.wsp.gz` first, then the hex SHA-1 of the
    uncompressed bytes, without a newline, in `.sha1`. Returns the `.wsp.gz` key."""
    key = f"{storage_path}{metric}/{legacy_time(seconds)}"
    base = bucket_dir + "/" + key
    os.makedirs(os.path.dirname(base), exist_ok=True)
    with open(base + ".wsp.gz", "wb") as f:
        f.write(gzip.compress(data))
    with open(base + ".sha1", "w") as f:
        f.write(hashlib.sha1(data).hexdigest())
    return key + ".wsp.gz"


# ---- processes --------------------------------------------------------------------------------

def processes_mentioning(text):
    """Pids of live processes whose command line contains `text` (zombies excluded)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            out.append(int(pid))
    return out


def wait_for(cond, timeout=30, step=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def kill_tree(text):
    """SIGKILLs whatever still mentions `text` (cleanup after a failed test)."""
    for pid in processes_mentioning(text):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def tool_env(bin_dir, extra=None):
    e = dict(os.environ)
    e["PATH"] = bin_dir + os.pathsep + e["PATH"]
    if extra:
        e.update(extra)
    return e


def popen_pipeline(cmd, bin_dir, env=None, **kw):
    """A bash pipeline in its own session (so the whole group can be signalled)."""
    return subprocess.Popen(["bash", "-o", "pipefail", "-c", cmd], env=tool_env(bin_dir, env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)

"""Object stores that misbehave, end to end through faultproxy.py in front of real servers: a
bulk delete that partly fails, a listing whose continuation tokens go round, an answer whose
body never ends or trickles, a giant header, an upload corrupted on the way, a container the
user may not use. Each ends with one clear line and exit 1; nothing is reported deleted that
is still there, and no upload that failed its check stays to be trusted.

Needs real stores: the S3 and Swift APIs of scripts/servers/swift-aio.sh (WSP_TEST_S3_ENDPOINT,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; ST_AUTH, ST_USER, ST_KEY) and radosgw's S3
(WSP_TEST_RGW_ENDPOINT, WSP_TEST_RGW_ACCESS_KEY_ID, WSP_TEST_RGW_SECRET_ACCESS_KEY); the
undeletable object needs SWIFT_RUNDIR (the swift-aio run directory) and chattr. Each is
skipped with the reason when its variables are missing."""
import hashlib
import os
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import change_tree, gen_tree, records, run, sh
import proxylib
from proxylib import proxies  # noqa: F401 (a fixture)


def scheme_built(scheme):
    return "unknown store scheme" not in run("wsp-pull", "list", f"{scheme}://probe/x", "a.b").stderr


class S3:
    """S3 at an endpoint: swift-aio's s3api, or radosgw."""
    VARS = {"s3": ("WSP_TEST_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
            "rgw": ("WSP_TEST_RGW_ENDPOINT", "WSP_TEST_RGW_ACCESS_KEY_ID", "WSP_TEST_RGW_SECRET_ACCESS_KEY")}
    listing = r"list-type=2&prefix"          # a listing page (not the one-key probe)
    put = r"^PUT .*\.wsp\.gz"

    def __init__(self, name):
        self.name = name
        missing = [v for v in self.VARS[name] if not os.environ.get(v)]
        if missing:
            pytest.skip(f"{name}: {', '.join(missing)} not set (scripts/servers/swift-aio.sh or radosgw.sh env)")
        if not scheme_built("s3"):
            pytest.skip("s3: the s3:// backend is not built in")
        self.upstream, key, secret = (os.environ[v] for v in self.VARS[name])
        self.keys = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}

    def url(self, container, prefix):
        return f"s3://{container}/{prefix}"

    def env(self, tmp_path, via=None):
        return {"AWS_ENDPOINT_URL": via or self.upstream, "AWS_REGION": "us-east-1", "AWS_PROFILE": "",
                "AWS_SESSION_TOKEN": "", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), **self.keys}


class Swift:
    name = "swift"
    listing = r"format=json"
    put = r"^PUT .*\.wsp\.gz"

    def __init__(self):
        missing = [v for v in ("ST_AUTH", "ST_USER", "ST_KEY") if not os.environ.get(v)]
        if missing:
            pytest.skip(f"swift: {', '.join(missing)} not set (scripts/servers/swift-aio.sh env)")
        if not scheme_built("swift"):
            pytest.skip("swift: the swift:// backend is not built in")
        self.auth = os.environ["ST_AUTH"]
        self.upstream = self.auth.split("/auth")[0]

    def url(self, container, prefix):
        return f"swift://{container}/{prefix}"

    def env(self, tmp_path, via=None):
        auth = via + "/" + self.auth.split("/", 3)[3] if via else self.auth
        return {"ST_AUTH": auth, "OS_AUTH_URL": "", "OS_AUTH_TOKEN": "", "OS_STORAGE_URL": ""}


def backend(name):
    return Swift() if name == "swift" else S3(name)


@pytest.fixture
def container():
    return f"wsp-edge-{uuid.uuid4().hex[:10]}"


def proxy(proxies, tmp_path, be, faults, match):
    px = proxylib.Proxy(tmp_path, be.upstream, faults=faults, match=match)
    proxies.append(px)
    return px


def backup(tree, store, spool, env, retries=0, check=True):
    return sh(f"wsp-find --root {tree} | wsp-snap --spool {spool} | wsp-push --retries {retries} --create-bucket {store}",
              env=env, check=check)


def listed(be, store, tmp_path):
    p = run("wsp-pull", "list", "--all", store, "*", env=be.env(tmp_path))
    assert p.returncode == 0 or "no metric in" in p.stderr, p.stderr
    return {r[3] for r in records(p.stdout)}


def one_line_failure(p, tool, needle):
    """Exit 1 and one line naming the cause (no backtrace, no libcurl's bare words)."""
    lines = p.stderr.splitlines()
    assert p.returncode == 1, p.stderr
    hits = [l for l in lines if l.startswith(f"{tool}: ") and needle in l]
    assert hits, p.stderr
    print(hits[0])
    assert "Fatal error" not in p.stderr and "Out of memory" not in p.stderr, p.stderr


# --- bulk delete ------------------------------------------------------------------------------

def swift_object_dir(container, key):
    """The directory of an object in swift-aio's one-replica ring (hash_path_prefix and suffix
    are `wsp-test` in swift-aio.sh)."""
    run_dir = os.environ.get("SWIFT_RUNDIR")
    if not run_dir or not shutil.which("chattr"):
        pytest.skip("SWIFT_RUNDIR (swift-aio's run directory) or chattr missing: cannot make an object undeletable")
    h = hashlib.md5(f"wsp-test/AUTH_test/{container}/{key}wsp-test".encode()).hexdigest()
    for d, dirs, _ in os.walk(os.path.join(run_dir, "node")):
        if h in dirs:
            return os.path.join(d, h)
    raise AssertionError(f"{key}: not found under {run_dir}/node")


def versions(tree, store, tmp_path, env, n):
    """n versions of each metric of `tree`, each pushed after a change."""
    for i in range(n):
        if i:
            change_tree(tree, 1.0, seed=i)
        backup(tree, store, tmp_path / "spool", env)


def test_swift_bulk_delete_that_partly_fails_reports_only_what_is_gone(tmp_path, container):
    """Swift stops a bulk delete at its max_failed_deletes ("400 Bad Request", "Max delete
    failures exceeded") and never tries the keys after the failure. Only keys the cluster
    confirmed gone are reported deleted; the undeletable one fails on stderr; exit 1."""
    be = Swift()
    tree = gen_tree(tmp_path / "w", files=1, schemas="small")
    store = be.url(container, "n/")
    versions(tree, store, tmp_path, be.env(tmp_path), 4)
    keys = sorted(listed(be, store, tmp_path))
    assert len(keys) == 4
    # The middle one of the three to delete: whatever order they are sent in, one is after it.
    stuck = keys[1]
    d = swift_object_dir(container, stuck)
    subprocess.run(["chattr", "+i", d], check=True)
    try:
        p = run("wsp-prune", "--keep", "1", "--all", "--retries", "0", store, env=be.env(tmp_path))
    finally:
        subprocess.run(["chattr", "-i", d], check=True)
    deleted = {r[3] for r in records(p.stdout) if r[5] == "deleted"}
    assert p.returncode == 1, p.stderr
    assert deleted == {keys[0], keys[2]}, (p.stdout, p.stderr)
    hits = [l for l in p.stderr.splitlines() if stuck in l and "503" in l]
    assert hits, p.stderr
    print(hits[0])
    assert listed(be, store, tmp_path) == {stuck, keys[3]}


def test_swift_bulk_delete_405_falls_back_to_single_deletes(tmp_path, container, proxies):
    be = Swift()
    tree = gen_tree(tmp_path / "w", files=1, schemas="small")
    store = be.url(container, "n/")
    versions(tree, store, tmp_path, be.env(tmp_path), 3)
    keys = sorted(listed(be, store, tmp_path))
    px = proxy(proxies, tmp_path, be, "405", r"bulk-delete")
    p = run("wsp-prune", "--keep", "1", "--all", "--retries", "0", store, env=be.env(tmp_path, px.url))
    assert p.returncode == 0, p.stderr
    assert {r[3] for r in records(p.stdout) if r[5] == "deleted"} == set(keys[:2])
    assert px.faults() == {"405": 1}
    assert listed(be, store, tmp_path) == {keys[2]}


# --- listings and answers ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["s3", "rgw"])
def test_s3_listing_whose_tokens_go_round_fails_at_once(tmp_path, container, proxies, name):
    be = backend(name)
    store = be.url(container, "n/")
    backup(gen_tree(tmp_path / "w", files=2, schemas="small"), store, tmp_path / "spool", be.env(tmp_path))
    px = proxy(proxies, tmp_path, be, "cycle", be.listing)
    p = run("wsp-pull", "list", "--retries", "0", store, "*", env=be.env(tmp_path, px.url), timeout=30)
    one_line_failure(p, "wsp-pull", "the listing went round")
    assert px.faults()["cycle"] <= 3


@pytest.mark.parametrize("name", ["s3", "rgw", "swift"])
def test_endless_answer_is_cut_at_the_memory_cap(tmp_path, container, proxies, name):
    """A listing answer that never ends: read up to the documented 16 MiB, then one line."""
    be = backend(name)
    store = be.url(container, "n/")
    backup(gen_tree(tmp_path / "w", files=2, schemas="small"), store, tmp_path / "spool", be.env(tmp_path))
    px = proxy(proxies, tmp_path, be, "endless", be.listing)
    p = run("wsp-pull", "list", "--retries", "0", store, "*", env=be.env(tmp_path, px.url), timeout=120)
    one_line_failure(p, "wsp-pull", "passed 16 MiB")


@pytest.mark.parametrize("name", ["s3", "rgw", "swift"])
def test_trickling_answer_ends_at_the_deadline(tmp_path, container, proxies, name):
    """A byte every 0.4 s never trips the no-progress rule; the request deadline (2 s here,
    WSP_HTTP_DEADLINE) ends it."""
    be = backend(name)
    store = be.url(container, "n/")
    backup(gen_tree(tmp_path / "w", files=2, schemas="small"), store, tmp_path / "spool", be.env(tmp_path))
    px = proxy(proxies, tmp_path, be, "trickle", be.listing)
    t0 = time.monotonic()
    p = run("wsp-pull", "list", "--retries", "0", store, "*", env={**be.env(tmp_path, px.url), "WSP_HTTP_DEADLINE": "2"},
            timeout=30)
    one_line_failure(p, "wsp-pull", "no complete answer within the deadline of 2.")
    assert time.monotonic() - t0 < 20


@pytest.mark.parametrize("name", ["s3", "rgw", "swift"])
def test_giant_header_is_named(tmp_path, container, proxies, name):
    """A 300 KB header: libcurl refuses it (100 KB a line) and says only "Out of memory"."""
    be = backend(name)
    store = be.url(container, "n/")
    backup(gen_tree(tmp_path / "w", files=1, schemas="small"), store, tmp_path / "spool", be.env(tmp_path))
    px = proxy(proxies, tmp_path, be, "bigheader", be.listing)
    p = run("wsp-pull", "list", "--retries", "0", store, "*", env=be.env(tmp_path, px.url), timeout=60)
    one_line_failure(p, "wsp-pull", "a header of the answer is too large")


# --- uploads that fail their check ------------------------------------------------------------

@pytest.mark.parametrize("name", ["s3", "rgw", "swift"])
def test_upload_that_fails_its_check_is_not_kept(tmp_path, container, proxies, name):
    """Swift: the body corrupted on the way and its ETag header dropped, so the cluster stores
    it and answers the corrupt bytes' MD5. S3 (which checks the signed payload hash itself):
    an answer whose ETag is not the MD5 sent. Either way the push fails and the object is
    deleted; the next push stores the file again instead of calling it unchanged."""
    be = backend(name)
    tree = gen_tree(tmp_path / "w", files=1, schemas="small")
    store = be.url(container, "n/")
    run("wsp-push", "--create-bucket", store, input="", env=be.env(tmp_path), check=True)
    # Twice: an attempt refused for an expired token (the test servers' tokens live 10 s)
    # spends a fault, and the push (without retries) sends once more only after such a 401.
    px = proxy(proxies, tmp_path, be, "flipput,flipput" if name == "swift" else "badetag,badetag", be.put)
    p = backup(tree, store, tmp_path / "spool", be.env(tmp_path, px.url), check=False)
    one_line_failure(p, "wsp-push", "the object was deleted")
    assert listed(be, store, tmp_path) == set()
    p = backup(tree, store, tmp_path / "spool", be.env(tmp_path))
    assert [r[5] for r in records(p.stdout)] == ["stored"], p.stdout
    p = run("wsp-pull", "verify", "--spool", tmp_path / "v", store, "*", env=be.env(tmp_path))
    assert p.returncode == 0 and [r[5] for r in records(p.stdout)] == ["ok"], p.stderr


# --- what to fix ------------------------------------------------------------------------------

def test_swift_container_403_says_what_to_fix(tmp_path, container):
    """A user without rights on the account's container: the line names the container and
    the fix (its ACL or the user's role), not just `403`."""
    be = Swift()
    store = be.url(container, "n/")
    run("wsp-push", "--create-bucket", store, input="", env=be.env(tmp_path), check=True)
    if not os.environ.get("WSP_TEST_SWIFT_USER2"):
        pytest.skip("WSP_TEST_SWIFT_USER2/KEY2 not set (a second swift-aio user)")
    storage = be.auth.split("/auth")[0] + "/v1/AUTH_test"
    env = {**be.env(tmp_path), "ST_USER": os.environ["WSP_TEST_SWIFT_USER2"], "ST_KEY": os.environ["WSP_TEST_SWIFT_KEY2"],
           "OS_STORAGE_URL": storage}
    p = run("wsp-pull", "list", "--retries", "0", store, "*", env=env)
    assert p.returncode in (1, 2), p.stderr
    hits = [l for l in p.stderr.splitlines() if f"container {container}: access denied (403" in l and "ACL" in l]
    assert hits, p.stderr
    print(hits[0], f"(exit {p.returncode})")


@pytest.mark.parametrize("name", ["s3", "rgw"])
def test_credentials_file_under_tilde(tmp_path, container, name):
    be = backend(name)
    store = be.url(container, "n/")
    run("wsp-push", "--create-bucket", store, input="", env=be.env(tmp_path), check=True)
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    (home / "keys" / "creds").write_text(
        f"[default]\naws_access_key_id = {be.keys['AWS_ACCESS_KEY_ID']}\naws_secret_access_key = {be.keys['AWS_SECRET_ACCESS_KEY']}\n")
    env = {**be.env(tmp_path), "HOME": str(home), "AWS_SHARED_CREDENTIALS_FILE": "~/keys/creds",
           "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    # The bucket is probed with the keys from ~/keys/creds; a wrong key would fail.
    p = run("wsp-push", store, input="", env=env)
    assert p.returncode == 0, p.stderr
    (home / "keys" / "creds").write_text(
        f"[default]\naws_access_key_id = {be.keys['AWS_ACCESS_KEY_ID']}\naws_secret_access_key = wrong\n")
    p = run("wsp-push", store, input="", env=env)
    assert p.returncode == 2 and "SignatureDoesNotMatch" in p.stderr, p.stderr
